"""The monitor's ground truth: feedback joined with the answers it labels, scored by the project's own metrics.

A project is baked (its `live` command holds the evaluate stage's metrics); the served model's index of answered
requests and its feedback file are written as the project's feedback.py writes them, for two releases.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import pytest

from fake_github import FakeGitHub
from mlgitops import contract, ground_truth, monitor
from mlgitops.local_target import LocalTarget

CLASSES = ["benign", "malignant"]
NOW = dt.datetime.now(dt.UTC)


def served(folder: Path, version: str, accuracy: float, n: int, seed: int, *, labelled: bool = True, days: float = 0):
    """n one-instance requests answered by `version`, a share `accuracy` of them right, and their feedback."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = (NOW - dt.timedelta(days=days)).isoformat()
    with (folder / f"requests.{seed}.jsonl").open("a") as index, (folder / "feedback.jsonl").open("a") as feedback:
        for i in range(n):
            truth = rng.choice(CLASSES)
            answer = truth if rng.random() < accuracy else next(c for c in CLASSES if c != truth)
            request_id = f"{seed}{i:06d}"
            proba = [0.9, 0.1] if answer == CLASSES[0] else [0.1, 0.9]
            record = {"request_id": request_id, "timestamp": stamp, "bento_version": version, "model": "m",
                      "labels": [answer], "classes": CLASSES, "probabilities": [proba]}  # fmt: skip
            index.write(json.dumps(record) + "\n")
            if labelled:
                feedback.write(json.dumps({"request_id": request_id, "labels": [truth]}) + "\n")


@pytest.fixture
def ctx(fast_bake, tmp_path, monkeypatch):
    """A baked project's monitor context on the local target, with the live release's manifest at hand."""
    project = fast_bake()
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", str(project / "src"))
    monkeypatch.setenv("MLGITOPS_HOME", str(tmp_path / "home"))
    manifests = {"v2": {"metric": {"name": "accuracy", "offline": 0.93, "higher_is_better": True}}}
    monkeypatch.setattr(monitor, "release_manifest", lambda _ctx, live: manifests[live["version"]])
    settings = contract.from_params({})
    (tmp_path / "work").mkdir()
    package = project.name.replace("-", "_")
    context = monitor.MonitorContext(project.name, package, settings, "", tmp_path / "work", None, "")
    context.folder = LocalTarget(project.name).feedback_dir("production")
    return context


def test_the_monitor_names_the_truly_better_release_with_its_interval(ctx):
    # Given the week's labelled answers: v1 right 75% of the time before the release, v2 92% since,
    served(ctx.folder, "v1", 0.75, 400, 1)
    served(ctx.folder, "v2", 0.92, 400, 2)
    # when the monitor judges production's live v2,
    checks, comparison = monitor.feedback_checks(ctx, "production", {"version": "v2"})
    # then v2's live accuracy holds against its offline 0.93, and the comparison names v2, significantly.
    (check,) = checks
    assert check.outcome == monitor.PASS and check.value.startswith("accuracy 0.9")
    assert comparison.startswith("A/B on accuracy: `v1` 0.7")
    assert "at 95%: `v2` is better, significantly." in comparison


def test_equal_releases_are_no_significant_difference(ctx):
    served(ctx.folder, "v1", 0.9, 300, 3)
    served(ctx.folder, "v2", 0.9, 300, 4)
    checks, comparison = monitor.feedback_checks(ctx, "production", {"version": "v2"})
    assert comparison.endswith("at 95%: no significant difference.")
    assert checks[0].outcome == monitor.PASS


def test_a_live_metric_below_the_offline_one_is_a_decay_alarm_in_the_sticky_issue(ctx):
    # Given v2 right only 70% of the time on what users labelled, against 0.93 offline,
    served(ctx.folder, "v2", 0.70, 400, 5)
    checks, _ = monitor.feedback_checks(ctx, "production", {"version": "v2"})
    (check,) = checks
    assert check.outcome == monitor.FAIL and check.message.startswith("decay: accuracy on 400 labelled answers")
    # then the environment's issue opens with the decay alarm in it.
    traffic = monitor.Traffic(source="the prediction log")
    report = monitor.render("production", {"version": "v2"}, traffic, monitor.FAILING, checks, 24, {}, 0)
    with FakeGitHub() as fake:
        github = monitor.GitHub(fake.url, "ghs_test", backoff=0)
        body = monitor.MARKER.format(environment="production") + "\n\n" + report
        assert monitor.sync_issue(github, "octo/models", "production", monitor.FAILING, body, None) == "opened issue #1"
        (issue,) = fake.issues("octo", "models")
    assert issue["title"] == "Model monitor: production" and "decay: accuracy" in issue["body"]


def test_too_few_labels_unlabelled_answers_and_old_requests_are_no_evidence(ctx):
    served(ctx.folder, "v2", 0.5, 30, 6)  # labelled, but fewer than min_labels
    served(ctx.folder, "v2", 0.5, 400, 7, labelled=False)
    served(ctx.folder, "v2", 0.5, 400, 8, days=30)  # answered before the feedback window
    (check,), comparison = monitor.feedback_checks(ctx, "production", {"version": "v2"})
    assert (check.outcome, check.value, comparison) == (monitor.NO_EVIDENCE, "30 labelled", "")


def test_torn_and_foreign_lines_are_skipped_and_a_label_counts_once(tmp_path):
    served(tmp_path, "v2", 1.0, 2, 9)
    with (tmp_path / "feedback.jsonl").open("a") as feedback:
        feedback.write('{"request_id": "9000000", "labels": ["malignant"]}\n[1, 2]\n{"torn": ')
    versions, classes = ground_truth.joined(tmp_path, NOW - dt.timedelta(days=1))
    assert classes == CLASSES and len(versions["v2"]["y"]) == 2


def served_numbers(folder: Path, version: str, noise: float, n: int, seed: int):
    """n one-instance requests a regressor answered, off the truth by normal errors of deviation `noise`, labelled."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"requests.{seed}.jsonl").open("a") as index, (folder / "feedback.jsonl").open("a") as feedback:
        for i in range(n):
            truth = rng.gauss(150, 70)
            request_id = f"{seed}{i:06d}"
            # A regressor's index holds its numbers only: no classes, no probabilities.
            record = {"request_id": request_id, "timestamp": NOW.isoformat(), "bento_version": version, "model": "m",
                      "labels": [round(truth + rng.gauss(0, noise), 6)]}  # fmt: skip
            index.write(json.dumps(record) + "\n")
            feedback.write(json.dumps({"request_id": request_id, "labels": [round(truth, 6)]}) + "\n")


def test_a_regressors_numbers_are_joined_as_numbers(tmp_path):
    served_numbers(tmp_path, "v1", 10.0, 3, 1)
    versions, classes = ground_truth.joined(tmp_path, NOW - dt.timedelta(days=1))
    assert classes == [] and versions["v1"]["proba"] == []
    assert all(isinstance(value, float) for value in versions["v1"]["y"] + versions["v1"]["pred"])


@pytest.fixture
def regression_ctx(ctx, fast_bake, tmp_path, monkeypatch):
    """The same context on a regression project, its live release judged by rmse (54 offline)."""
    project = fast_bake(task="regression")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", str(project / "src"))
    manifests = {"v2": {"metric": {"name": "rmse", "offline": 54.0, "higher_is_better": False}}}
    monkeypatch.setattr(monitor, "release_manifest", lambda _ctx, live: manifests[live["version"]])
    settings = contract.from_params({"mlgitops": {"watch": {"feedback": {"tolerance": 2.0}}}})
    context = monitor.MonitorContext(project.name, project.name.replace("-", "_"), settings, "", ctx.work, None, "")
    context.folder = LocalTarget(project.name).feedback_dir("production")
    return context


def test_a_regressors_live_rmse_names_the_better_release_and_flags_decay(regression_ctx):
    # Given v1 off by 80 on average and v2 by 50, against v2's offline rmse of 54
    served_numbers(regression_ctx.folder, "v1", 80.0, 400, 11)
    served_numbers(regression_ctx.folder, "v2", 50.0, 400, 12)
    (check,), comparison = monitor.feedback_checks(regression_ctx, "production", {"version": "v2"})
    # then v2 holds, and is named better: its rmse is the lower one (lower is better)
    assert check.outcome == monitor.PASS and check.value.startswith("rmse ")
    assert "at 95%: `v2` is better, significantly." in comparison
    # and when v2's errors grow to 90 on what users labelled, that is decay
    for path in regression_ctx.folder.glob("*.jsonl"):
        path.unlink()
    served_numbers(regression_ctx.folder, "v2", 90.0, 400, 13)
    (check,), _ = monitor.feedback_checks(regression_ctx, "production", {"version": "v2"})
    assert check.outcome == monitor.FAIL and check.message.startswith("decay: rmse on 400 labelled answers")
