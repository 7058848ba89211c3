"""The generated pull request workflows, run for real by act against the GitHub stand-in, one scenario per test.

The scenarios share one baked repository (baking is the slow part) but nothing else: each starts its own
branch from main, so any one of them passes when run alone.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml

from act_world import POST_TOKEN, make_world, set_param

pytestmark = pytest.mark.slow

# act's line when a job starts the train step; once it is printed the run is training.
TRAIN_STEP_STARTED = re.compile(r"Run Main \S*/actions/train\b")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The default project, baked with its reproduced baseline."""
    with make_world(tmp_path_factory.mktemp("pr")) as world:
        yield world


@pytest.fixture(scope="module")
def world_without_baseline(tmp_path_factory):
    """The default project as a Python without the pipeline's packages bakes it: no results, no schema."""
    with make_world(tmp_path_factory.mktemp("fresh"), _reproduce_baseline=False) as world:
        yield world


def test_param_change_gets_a_report_comment(world):
    world.start("tune", set_param("  C: 1.0", "  C: 0.3"), "Lower regularisation")
    run = world.report("tune")
    assert run.returncode == 0, run.log[-4000:]
    assert "| `model.C` | `1.0` | `0.3` |" in run.file("model_report.md")
    assert json.loads(run.file("train.json"))["ran"] == ["train", "evaluate"]
    posted = world.post(run, "tune")
    assert posted.returncode == 0, posted.stdout[-4000:]
    [comment] = world.comments("tune")
    assert comment["body"].startswith("## ✅ Model report for `tune`")
    assert '"CML watermark model-report")' in comment["body"]


def test_second_push_updates_the_same_comment(world):
    world.start("settle", set_param("  C: 1.0", "  C: 0.3"), "Lower regularisation")
    world.report_and_post("settle")
    [posted_first] = world.comments("settle")

    world.push("settle", set_param("  C: 0.3", "  C: 0.5"), "Settle on C=0.5")
    world.report_and_post("settle")

    [comment] = world.comments("settle")
    assert comment["id"] == posted_first["id"]
    assert "| `model.C` | `1.0` | `0.5` |" in comment["body"]


def test_with_report_poster_unset_cml_updates_the_same_comment_and_a_refusal_is_a_warning(world):
    world.start("switch-poster", set_param("  C: 1.0", "  C: 0.7"), "Try C=0.7")
    run = world.report_and_post("switch-poster")
    [by_builtin] = world.comments("switch-poster")

    posted = world.post(run, "switch-poster", poster="")
    assert posted.returncode == 0, posted.stdout[-4000:]
    [comment] = world.comments("switch-poster")
    assert comment["id"] == by_builtin["id"]
    assert comment["body"].rstrip().endswith('"CML watermark model-report")')

    refusal = {"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest"}
    world.github.fail("PATCH", r"/issues/comments/\d+$", 403, headers={"x-ratelimit-remaining": None}, body=refusal)
    refused = world.post(run, "switch-poster", poster="")
    assert refused.returncode == 0, refused.stdout[-4000:]
    assert "the report was not posted: cml comment update exited 1: Resource not accessible by integration" in (
        refused.stdout
    )


def test_readme_only_change_trains_nothing(world):
    def edit_readme(project: Path) -> None:
        with (project / "README.md").open("a", encoding="utf-8") as handle:
            handle.write("\nA note for readers.\n")

    world.start("docs", edit_readme, "Document the project")
    run = world.report("docs")
    assert run.returncode == 0, run.log[-4000:]
    train = json.loads(run.file("train.json"))
    assert train["ran"] == [] and train["changed"] == {}
    assert "Nothing the pipeline depends on changed, so nothing was trained" in run.file("model_report.md")
    assert world.post(run, "docs").returncode == 0


def test_regression_beyond_tolerance_fails_with_the_reason_in_the_comment(world):
    world.start("regress", set_param("  C: 1.0", "  C: 0.0005"), "Regularise hard")
    run = world.report("regress")
    assert run.returncode != 0
    report = run.file("model_report.md")
    assert "**Gate: failed.**" in report and "regressed by" in report
    assert "::error title=model-report gate::f1_macro regressed by" in run.log
    assert world.post(run, "regress").returncode == 0
    [comment] = world.comments("regress")
    assert comment["body"].startswith("## ❌ Model report") and "regressed by" in comment["body"]


def test_schema_violation_fails_data_check_naming_the_column_and_loses_nothing(world):
    def tighten(project: Path) -> None:
        path = project / "data" / "schema.yaml"
        schema = yaml.safe_load(path.read_text(encoding="utf-8"))
        schema["columns"]["mean radius"]["in_range"]["max_value"] = 10
        path.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")

    world.start("tighten", tighten, "Declare small tumours only")
    run = world.report("tighten")
    assert run.returncode != 0
    assert "::error file=data/schema.yaml,title=data-check::column 'mean radius'" in run.log
    report = run.file("model_report.md")
    assert "the data check failed" in report and "`mean radius`" in report
    for kept in ("data_check.json", "train.json", "model_report.json", "pull_request.json"):
        assert (run.artifact / kept).is_file()
    assert world.post(run, "tighten").returncode == 0
    assert "Data check: failed" in world.comments("tighten")[0]["body"]


def test_results_edited_with_their_lock_hashes_fail_the_gate_and_the_report_shows_ci_numbers(world):
    reproduced = json.loads(world.git("show", "main:metrics.json"))

    def forge(project: Path) -> None:
        # What a hostile contributor does: better numbers, and dvc.lock re-hashed to match them.
        text = json.dumps({**reproduced, "f1_macro": 0.999}, indent=2) + "\n"
        (project / "metrics.json").write_text(text, encoding="utf-8")
        lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
        for out in lock["stages"]["evaluate"]["outs"]:
            if out["path"] == "metrics.json":
                out.update(md5=hashlib.md5(text.encode()).hexdigest(), size=len(text.encode()))
        (project / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")

    world.start("forge", forge, "Better numbers")
    run = world.report("forge")
    assert run.returncode != 0
    report = run.file("model_report.md")
    assert "**Gate: failed.**" in report
    assert "the committed metrics\\.json \\(f1\\_macro\\) says 0\\.999 but CI reproduced" in report
    main_metric = f"{reproduced['f1_macro']:.4f}"
    assert f"| `f1_macro` (main metric) | {main_metric} | {main_metric} | +0.0000 |" in report
    assert "::error file=metrics.json,title=train::the committed metrics.json (f1_macro) says 0.999" in run.log


def test_fork_pull_request_gets_its_report_without_any_token_in_the_build(world):
    world.start("fork-idea", set_param("  max_iter: 1000", "  max_iter: 2000"), "More iterations")
    before = len(world.github.requests)
    run = world.report("fork-idea", fork="stranger/cancer-classifier")
    assert run.returncode == 0, run.log[-4000:]
    assert len(world.github.requests) == before, "the report job must not talk to GitHub"
    assert POST_TOKEN not in run.log
    assert world.post(run, "fork-idea").returncode == 0
    [comment] = world.comments("fork-idea")
    assert "`model.max_iter`" in comment["body"]
    assert set(world.github.tokens) == {POST_TOKEN}


def test_cancelled_run_then_rerun_leaves_one_current_comment(world):
    world.start("retry", set_param("  max_iter: 1000", "  max_iter: 1500"), "More iterations")
    # GitHub cancels a run when a newer push supersedes it: kill the whole run while it trains.
    cancelled = world.report_in_background("retry")
    cancelled.wait_for(TRAIN_STEP_STARTED)
    assert cancelled.cancel() != 0
    assert not cancelled.artifacts.exists(), "the run was killed too late: it had already uploaded its report"

    run = world.report("retry")
    assert run.returncode == 0, run.log[-4000:]
    assert world.post(run, "retry").returncode == 0
    [comment] = world.comments("retry")
    assert "| `model.max_iter` | `1000` | `1500` |" in comment["body"]


def test_first_pull_request_without_a_committed_baseline_is_compared_with_one_ci_reproduces(world_without_baseline):
    world = world_without_baseline
    assert "dvc.lock" not in world.git("ls-files", "main").split(), "the bake committed no results"
    world.start("first-tune", set_param("  C: 1.0", "  C: 0.3"), "Lower regularisation")
    run = world.report("first-tune")
    assert run.returncode == 0, run.log[-4000:]
    report = run.file("model_report.md")
    assert "The base commit holds no results, so CI reproduced them from its pipeline." in report
    assert "| metric | base (reproduced by CI) | this PR | change | verdict |" in report
    assert "| `model.C` | `1.0` | `0.3` |" in report
    assert json.loads(run.file("data_check.json"))["base_source"] == "reproduced"
    assert json.loads(run.file("model_report.json"))["baseline_source"] == "reproduced"
