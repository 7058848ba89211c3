"""Promotion, verification and rollback decisions, against a stand-in deploy target that serves canned models over HTTP.

The stand-in target serves each release with a small HTTP server speaking the generated service's API;
how it answers comes from the release (honest, skewed, one class for everyone, or failing to start), so
each test states the fault it injects. State commits go to a real git remote in a temporary folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import sys
import tempfile
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mlgitops import canary, contract, release, state, targets
from release_standins import LABELS, SCORE, FolderStore, Served, git


class StandInTarget:
    """Stand-in for a deploy target: serves each environment's release from an HTTP server in this process."""

    name = "stand-in"
    needs_archive = True
    canary = True

    def __init__(self) -> None:
        self.servers: dict[str, ThreadingHTTPServer] = {}
        self.deploys: list[tuple[str, str]] = []
        self.logs = Path(tempfile.mkdtemp(prefix="standin-monitoring-"))

    def monitoring_dir(self, environment):
        return self.logs / environment

    def deploy(self, environment, *, tag, archive, version, port, env=None, ready_timeout=120.0, image=""):
        self.stop(environment)
        manifest = json.loads(Path(archive).read_text())
        self.deploys.append((environment, version))
        if manifest["behaviour"] == "crash":
            raise targets.DeployError(f"{environment}: {version} exited before it was ready: ImportError")
        server = ThreadingHTTPServer(("127.0.0.1", 0), Served)
        server.release = manifest
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers[environment] = server
        return f"http://127.0.0.1:{server.server_address[1]}"

    def current(self, environment):
        server = self.servers.get(environment)
        if not server:
            return None
        return {
            "version": server.release["version"],
            "alive": True,
            "url": f"http://127.0.0.1:{server.server_address[1]}",
        }

    def stop(self, environment):
        server = self.servers.pop(environment, None)
        if server:
            server.shutdown()
            server.server_close()

    @contextlib.contextmanager
    def lock(self, environment):
        yield


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """A project clone whose remote takes the state commits, a stand-in target and a store of releases."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    project = tmp_path / "shop"
    git(tmp_path, "clone", "-q", str(origin), str(project))
    (project / "shop").mkdir()
    (project / "shop" / "__main__.py").write_text(SCORE)
    git(project, "add", ".")
    git(project, "commit", "-qm", "Start")
    git(project, "push", "-q", "origin", "HEAD:main")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", str(project))
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    (tmp_path / "work").mkdir()
    target = StandInTarget()
    context = release.Context(
        project="shop",
        package="shop",
        settings={
            "environments": ["staging", "production"],
            "ports": {"staging": 3001, "production": 3000},
            "skew_tolerance": 0.001,
            "ready_seconds": 5,
            "max_majority_share": 0.95,
            "canary": contract.DEFAULTS["release"]["canary"],
            "monitor": {"drop": [], "hash": []},
        },
        store=FolderStore(tmp_path / "store"),
        target=target,
        branch=state.StateBranch("main"),
        work=tmp_path / "work",
        by="dev",
    )
    context.origin = origin
    yield context
    for environment in list(target.servers):
        target.stop(environment)


def history(ctx, environment: str) -> list[tuple[str, str]]:
    return [(h["version"], h["outcome"]) for h in ctx.branch.read(environment, ctx.branch.fetch())["history"]]


def subjects(ctx) -> list[str]:
    return git(Path.cwd(), "log", "--format=%s", "refs/mlgitops/state/main").splitlines()


def test_an_honest_release_goes_live_on_staging_then_production_with_the_same_digest(ctx):
    ctx.store.add("v1")
    assert release.promote("staging", "v1", ctx) == 0
    assert release.promote("production", "v1", ctx) == 0

    staging, production = (ctx.branch.read(e, ctx.branch.fetch())["live"] for e in ("staging", "production"))
    assert staging["digest"] == production["digest"] == "sha256:v1"
    assert production["verified"]["served"]["value"] == 1.0
    assert subjects(ctx)[0] == "Release v1 to production: verified, accuracy 1.0000 served, 1.0000 offline"


def test_a_release_cannot_skip_staging(ctx):
    ctx.store.add("v1")
    with pytest.raises(release.ReleaseError, match=r"v1 is not live on staging .* so it cannot go to production"):
        release.promote("production", "v1", ctx)


def test_re_running_a_finished_promotion_makes_no_commit(ctx):
    ctx.store.add("v1")
    release.promote("staging", "v1", ctx)
    before = subjects(ctx)

    assert release.promote("staging", "v1", ctx) == 0

    assert subjects(ctx) == before


def test_train_serve_skew_fails_verification_and_the_last_good_release_serves_again(ctx):
    ctx.store.add("v1")
    ctx.store.add("v2", behaviour="skewed")
    release.promote("staging", "v1", ctx)

    assert release.promote("staging", "v2", ctx) == 1

    current = ctx.branch.read("staging", ctx.branch.fetch())
    assert current["live"]["version"] == "v1"
    assert ctx.target.current("staging")["version"] == "v1"
    failure = current["history"][-1]
    assert failure["outcome"] == "failed" and "train/serve skew" in failure["reason"]
    assert "accuracy served 0.5000 on the reference set but 1.0000 in process" in failure["reason"]
    assert subjects(ctx)[0] == "Keep staging on v1: v2 failed"


def test_a_model_answering_one_class_for_everyone_fails_even_when_its_metric_matches(ctx):
    ctx.store.add("v1", behaviour="degenerate")
    # Offline, this model also said "no" for everyone: its metric matches what it serves.
    manifest_path = ctx.store.root / "v1" / "release.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["metric"]["offline"] = LABELS.count("no") / len(LABELS)
    manifest_path.write_text(json.dumps(manifest))
    (ctx.store.root / "v1" / "shop.bento").write_text(json.dumps(manifest))
    ctx.settings["max_majority_share"] = 0.6

    assert release.promote("staging", "v1", ctx) == 1

    current = ctx.branch.read("staging", ctx.branch.fetch())
    assert current["live"] is None and ctx.target.current("staging") is None
    assert "100% of the reference set got the same class" in current["history"][-1]["reason"]


def test_a_release_that_does_not_start_keeps_the_previous_one_and_records_the_targets_reason(ctx):
    ctx.store.add("v1")
    ctx.store.add("v2", behaviour="crash")
    release.promote("staging", "v1", ctx)

    assert release.promote("staging", "v2", ctx) == 1

    assert history(ctx, "staging")[-1] == ("v2", "failed")
    assert "exited before it was ready: ImportError" in ctx.branch.read("staging")["history"][-1]["reason"]
    assert ctx.target.current("staging")["version"] == "v1"


def test_an_older_release_arriving_after_a_newer_one_is_recorded_as_superseded(ctx):
    for version in ("v1", "v2"):
        ctx.store.add(version)
    release.promote("staging", "v2", ctx)

    assert release.promote("staging", "v1", ctx) == 0

    assert ctx.branch.read("staging", ctx.branch.fetch())["live"]["version"] == "v2"
    assert history(ctx, "staging") == [("v2", "live"), ("v1", "superseded")]


def test_rollback_serves_the_previous_good_release_or_a_named_one(ctx):
    for version in ("v1", "v2", "v3"):
        ctx.store.add(version)
        release.promote("staging", version, ctx)

    assert release.rollback("staging", None, "v3 is slow", ctx) == 0
    assert ctx.target.current("staging")["version"] == "v2"
    assert release.rollback("staging", "v1", "", ctx) == 0

    assert ctx.branch.read("staging", ctx.branch.fetch())["live"]["version"] == "v1"
    assert history(ctx, "staging")[-3:] == [("v3", "rolled-back"), ("v2", "rolled-back"), ("v1", "live")]
    assert subjects(ctx)[1] == "Roll back staging from v3 to v2"


def test_rollback_without_an_earlier_good_release_says_so(ctx):
    ctx.store.add("v1")
    release.promote("staging", "v1", ctx)
    with pytest.raises(release.ReleaseError, match="staging has no earlier release that served it well"):
        release.rollback("staging", None, "", ctx)


def test_a_promotion_interrupted_midway_is_recovered_by_the_next_run(ctx):
    for version in ("v1", "v2", "v3"):
        ctx.store.add(version)
    release.promote("staging", "v1", ctx)
    # A run that recorded its start and was killed while serving v2.
    ctx.branch.update("staging", lambda s: state.begin(s, ctx.store.manifest("v2"), "t", "dev"), lambda _o, _n: "start")
    ctx.target.deploy("staging", tag="", archive=ctx.store.root / "v2" / "shop.bento", version="v2", port=0)

    assert release.promote("staging", "v3", ctx) == 0

    assert history(ctx, "staging") == [("v1", "replaced"), ("v2", "interrupted"), ("v3", "live")]
    assert ctx.target.deploys[-2:] == [("staging", "v1"), ("staging", "v3")], "v1 served again before v3"
    assert "Recover staging: the release of v2 was interrupted" in subjects(ctx)


def test_a_failure_before_staging_is_recorded_in_its_history(ctx):
    assert release.record_failure("staging", "v9", "the smoke test got 500 from /predict", ctx) == 0
    entry = ctx.branch.read("staging", ctx.branch.fetch())["history"][-1]
    assert (entry["version"], entry["outcome"], entry["digest"]) == ("v9", "failed", None)
    assert yaml.safe_load(git(Path.cwd(), "show", "refs/mlgitops/state/main:releases/staging.yaml"))["live"] is None


def test_the_command_line_names_a_bad_environment_in_one_sentence(ctx, capsys, monkeypatch):
    (Path.cwd() / "bentofile.yaml").write_text('service: "shop.service:Svc"\nname: shop\n')
    monkeypatch.setattr(release.targets, "for_release", lambda name, project, settings, branch: ctx.target)
    monkeypatch.setattr(release.store, "open_store", lambda url, project: ctx.store)
    ctx.store.add("v1")
    code = release.main(["--store", str(ctx.store.root), "promote", "--environment", "qa", "--version", "v1"])
    assert code == 1
    assert "'qa' is not one of the environments in mlgitops.release" in capsys.readouterr().err
    assert sys.modules["mlgitops.release"] is release


# --- the canary before production ---


def log_live_rows(ctx, environment: str, rows: range) -> None:
    """Live traffic the environment logged: one request per row, as the served model's monitor writes it."""
    folder = ctx.target.monitoring_dir(environment) / "predictions" / "data"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"bento_version": "v1", "input.row": [row], "label": ["no"]}) for row in rows]
    (folder / "data.1.log").write_text("\n".join(lines) + "\n", encoding="utf-8")


def live_on_both(ctx, version: str, behaviour: str = "honest") -> None:
    ctx.store.add(version, behaviour)
    assert release.promote("staging", version, ctx) == 0
    assert release.promote("production", version, ctx) == 0


def test_a_candidate_that_disagrees_with_live_on_live_inputs_is_stopped_before_production(ctx):
    # Given v1 live, users' rows logged, and v2: honest on the reference set, contrary on any other row
    live_on_both(ctx, "v1")
    log_live_rows(ctx, "production", range(8, 40))
    ctx.store.add("v2", "drifts")
    assert release.promote("staging", "v2", ctx) == 0  # the reference set alone cannot tell

    # When v2 is promoted to production
    assert release.promote("production", "v2", ctx) == 1

    # Then the canary stopped it: production never switched, and the reason is in git
    state_ = ctx.branch.read("production", ctx.branch.fetch())
    assert state_["live"]["version"] == "v1" and ("v2", "failed") in history(ctx, "production")
    reason = state_["history"][-1]["reason"]
    assert "agreed with the live release on 20.0% of 40 requests (at least 90%)" in reason
    assert "without a gain on the reference set (accuracy 1.0000 against the live release's 1.0000)" in reason
    assert subjects(ctx)[0] == "Keep production on v1: v2 failed its canary"
    assert ("production", "v2") not in ctx.target.deploys and ("production-canary", "v2") in ctx.target.deploys
    assert "production-canary" not in ctx.target.servers  # the canary is stopped afterwards


def test_a_candidate_that_agrees_goes_live_with_the_canary_figures_recorded(ctx):
    live_on_both(ctx, "v1")
    log_live_rows(ctx, "production", range(8, 40))
    ctx.store.add("v2")
    assert release.promote("staging", "v2", ctx) == 0

    assert release.promote("production", "v2", ctx) == 0

    figures = ctx.branch.read("production", ctx.branch.fetch())["live"]["verified"]["canary"]
    assert figures["agreement"] == 1.0 and figures["live_rows"] == 32 and figures["reference_rows"] == 8
    assert figures["inputs"] == "the reference set and the 32 newest live rows"


def test_hashed_inputs_are_not_replayed_and_the_canary_says_it_used_the_reference_set(ctx):
    # Given a team that logs a feature hashed: its logged rows cannot be sent again
    ctx.settings["monitor"] = {"drop": [], "hash": ["row"]}
    live_on_both(ctx, "v1")
    log_live_rows(ctx, "production", range(8, 40))
    ctx.store.add("v2", "drifts")
    assert release.promote("staging", "v2", ctx) == 0

    # When v2 goes to production, the canary compares the reference set only (where v2 is honest)
    assert release.promote("production", "v2", ctx) == 0

    figures = ctx.branch.read("production", ctx.branch.fetch())["live"]["verified"]["canary"]
    assert figures["live_rows"] == 0
    assert figures["inputs"].startswith("the reference set only: row are not logged in clear")


def test_a_candidate_that_differs_but_scores_better_on_the_reference_set_may_differ(ctx, tmp_path):
    # Given a live release that answers half the reference rows wrongly and an honest candidate
    ctx.store.add("v1", "skewed")
    candidate = ctx.store.add("v2")
    servers = [
        ctx.target.deploy(name, tag="", archive=ctx.store.root / v / "shop.bento", version=v, port=0)
        for name, v in (("live", "v1"), ("candidate", "v2"))
    ]
    reference = {**candidate, "reference_dir": str(ctx.store.root / "v2")}

    def score(folder, answers):
        return release.score(folder, answers, ctx)

    # When the canary compares them
    settings = contract.DEFAULTS["release"]["canary"]
    better = canary.compare(*servers, reference, [], settings, score)
    # Then the candidate disagrees on half the rows, yet passes: it scores better than live
    assert better.checks["agreement"] == 0.5 and better.checks["candidate"] > better.checks["live"]
    assert better.failure == ""
    # ... and the live release, compared the other way round, is stopped: it would be a loss
    worse = canary.compare(
        servers[1], servers[0], {**reference, "reference_dir": str(ctx.store.root / "v2")}, [], settings, score
    )
    assert "agreed with the live release on 50.0% of 8 requests" in worse.failure


def test_a_regressors_answers_are_compared_by_the_decile_bin_each_falls_in(fast_bake):
    bins = [10.0, 20.0, 30.0]
    answers = [{"value": 5.0}, {"value": 10.0}, {"value": 10.5}, {"value": 99.0}]
    assert canary.classes_of(answers, bins) == ["q1", "q1", "q2", "q4"]
    assert canary.classes_of([{"label": "yes", "probabilities": {}}], None) == ["yes"]
    # The bins are named and bounded as the project's service counts its answers on /metrics.
    project = fast_bake(task="regression")
    spec = importlib.util.spec_from_file_location("metadata", next(project.glob("src/*/metadata.py")))
    metadata = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(metadata)
    for value in (-1.0, 10.0, 10.000001, 19.5, 30.0, 31.0):
        assert canary.bin_of(value, bins) == metadata.bin_of(value, bins)
    assert metadata.bin_names(bins) == ["q1", "q2", "q3", "q4"]
