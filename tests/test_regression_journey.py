"""A regression project baked from its task's defaults, through the generated workflows under act: a pull request's
report and gate, then releases to staging and production with the canary, and a degenerate model stopped at
packaging. The classifier's journeys (test_pr_workflow, test_release_workflow) cover the rest of each workflow.
"""

from __future__ import annotations

import json
import re

import pytest

from act_world import make_world, set_param
from demo import first_test_instance, sh
from release_world import make_release_world, release_json

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The project `task=regression` alone makes (diabetes, ridge, rmse), baked with its reproduced baseline."""
    with make_world(tmp_path_factory.mktemp("regression-pr"), task="regression") as world:
        yield world


@pytest.fixture(scope="module")
def release_world(tmp_path_factory):
    with make_release_world(tmp_path_factory.mktemp("regression-release"), task="regression") as world:
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
    print(report)
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


def test_merges_go_live_with_numbers_the_canary_compares_and_a_degenerate_model_stays_in_packaging(release_world):
    world = release_world
    # Given a first release on both environments
    world.merge(set_param("  alpha: 1.0", "  alpha: 0.5"), "Regularise less")
    first = world.release()
    assert first.returncode == 0, first.log[-6000:]
    production = world.state("production")["live"]
    manifest = release_json(world, production["version"])
    assert manifest["metric"]["name"] == "rmse" and manifest["metric"]["higher_is_better"] is False
    assert manifest["smoke"]["spread_ratio"] >= manifest["smoke"]["min_spread_ratio"] == 0.1
    # the served numbers are the pipeline's model's, in process
    instance = first_test_instance(world.project, world.world.env)
    [answer] = world.predict("production", [instance])["predictions"]
    code = (
        "import json, sys, joblib, pandas as pd\n"
        "model = joblib.load('models/model.joblib')\n"
        "print(round(float(model.predict(pd.DataFrame([json.loads(sys.argv[1])]))[0]), 6))\n"
    )
    assert answer["value"] == float(sh(["python", "-c", code, json.dumps(instance)], world.project, world.world.env))

    # When a second merge is released, the canary compares it with production by the answers' decile bins
    world.merge(set_param("  alpha: 0.5", "  alpha: 0.8"), "Regularise a little more")
    second = world.release()
    assert second.returncode == 0, second.log[-6000:]
    live = world.state("production")["live"]
    assert live["version"] > production["version"]
    canary = live["verified"]["canary"]
    assert canary["agreement"] >= 0.9 and canary["psi"] <= 0.25 and canary["metric"] == "rmse"
    assert canary["reference_rows"] == manifest["reference"]["rows"]

    # And a model that answers nearly one number never leaves packaging; production keeps the second release
    world.merge(set_param("  alpha: 0.8", "  alpha: 100000000.0"), "Regularise everything away")
    third = world.release()
    assert third.returncode != 0
    assert world.state("production")["live"]["version"] == live["version"]
    failed = world.state("staging")["history"][-1]
    assert failed["outcome"] == "failed" and "a degenerate model is not released" in failed["reason"]
