"""A regression project baked from its task's defaults, through the pull request workflows under act: its report
and gate. test_regression_release.py takes it on to production; the classifier's journeys (test_pr_workflow,
test_release_workflow) cover the rest of each workflow.
"""

from __future__ import annotations

import json
import re

import pytest

from act_world import make_world, set_param

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The project `task=regression` alone makes (diabetes, ridge, rmse), baked with its reproduced baseline."""
    with make_world(tmp_path_factory.mktemp("regression-pr"), task="regression") as world:
        yield world


def test_the_tasks_defaults_make_a_diabetes_ridge_project_judged_by_rmse(world):
    params = (world.project / "params.yaml").read_text(encoding="utf-8")
    assert "task: regression" in params and "source: diabetes" in params
    assert "family: ridge" in params and "metric: rmse" in params
    assert world.project.name == "diabetes-progression"


def test_a_param_change_gets_a_report_with_the_regression_metrics_spread_and_residuals(world):
    world.start("alpha", set_param("  alpha: 1.0", "  alpha: 0.5"), "Regularise less")
    run = world.report("alpha")
    assert run.returncode == 0, run.log[-4000:]
    report = run.file("model_report.md")
    # every metric in its own direction: rmse and mae lower is better, r2 higher
    for metric in ("rmse", "mae", "r2"):
        assert re.search(rf"\| `{metric}`( \(main metric\))? \| [0-9.]+ \| [0-9.]+ \|", report), metric
    assert "| `model.alpha` | `1.0` | `0.5` |" in report
    assert "the predictions spread" in report and "| standard deviation |" in report
    assert 'title "Residuals, actual - predicted (test split): rows per bin"' in report
    gate = json.loads(run.file("model_report.json"))
    assert {row["name"]: row["higher_is_better"] for row in gate["metrics"]} == {
        "mae": False,
        "r2": True,
        "rmse": False,
    }
    posted = world.post(run, "alpha")
    assert posted.returncode == 0, posted.stdout[-4000:]
    [comment] = world.comments("alpha")
    assert comment["body"].startswith("## ✅ Model report for `alpha`")


def test_a_model_that_answers_nearly_one_number_fails_the_gate_naming_its_spread(world):
    world.start("flat", set_param("  alpha: 1.0", "  alpha: 100000.0"), "Regularise everything away")
    run = world.report("flat")
    assert run.returncode != 0
    report = run.file("model_report.md")
    assert "**Gate: failed.**" in report
    assert "nearly one number for everyone" in report and "rmse regressed by" in report
    assert "::error title=model-report gate::the model's predictions on the test set spread" in run.log
