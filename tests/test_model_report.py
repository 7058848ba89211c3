"""model-report: verdicts in each metric's direction, params diff, the prediction guard, the board and the gate."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import yaml

from mlgitops import model_report

RULES = model_report.settings({})


def verdicts(base, head, rules=RULES):
    return {r.name: r.verdict for r in model_report.compare(base, head, rules)}


def test_higher_is_better_metric_verdicts_respect_the_tolerance():
    got = verdicts({"a": 0.90, "b": 0.90, "c": 0.90, "d": 0.90}, {"a": 0.95, "b": 0.90, "c": 0.895, "d": 0.85})
    assert got == {"a": "better", "b": "same", "c": "worse", "d": "regression"}


def test_lower_is_better_metric_regresses_when_it_grows():
    assert verdicts({"log_loss": 0.10}, {"log_loss": 0.20}) == {"log_loss": "regression"}
    assert verdicts({"log_loss": 0.20}, {"log_loss": 0.10}) == {"log_loss": "better"}


def test_per_metric_tolerance_overrides_the_default():
    rules = model_report.settings({"report": {"tolerance": {"accuracy": 0.1}}})
    assert verdicts({"accuracy": 0.9}, {"accuracy": 0.85}, rules) == {"accuracy": "worse"}


def test_missing_baseline_marks_every_metric_new():
    assert set(verdicts(None, {"a": 0.5}).values()) == {"new"}


def test_params_diff_names_changed_added_and_removed_keys_but_not_report_settings():
    base = {"model": {"C": 1.0, "old": 1}, "report": {"tolerance": {"default": 0.01}}}
    head = {"model": {"C": 0.5, "new": 2}, "report": {"tolerance": {"default": 0.5}}}
    assert model_report.params_diff(base, head) == [
        ("model.C", 1.0, 0.5),
        ("model.new", None, 2),
        ("model.old", 1, None),
    ]


def write_confusion(path, pairs):
    path.write_text("actual,predicted\n" + "".join(f"{a},{p}\n" for a, p in pairs))
    return path


def test_prediction_guard_fails_a_model_that_predicts_one_class_for_everyone(tmp_path):
    confusion = write_confusion(tmp_path / "c.csv", [("yes", "no")] * 40 + [("no", "no")] * 60)
    ok, text, shares = model_report.prediction_guard(confusion, 0.95)
    assert not ok and "predicts 'no' for 100%" in text
    assert shares == {"no": 1.0}


def test_prediction_guard_accepts_a_majority_that_the_labels_share(tmp_path):
    confusion = write_confusion(tmp_path / "c.csv", [("no", "no")] * 97 + [("yes", "yes")] * 3)
    assert model_report.prediction_guard(confusion, 0.95)[0]


def git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.name=Ada Lovelace", "-c", "user.email=ada@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A repository whose base commit holds results, params and a schema."""
    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q", "-b", "main")
    params = {"evaluate": {"metric": "f1_macro"}, "model": {"family": "logistic_regression", "C": 1.0}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "metrics.json").write_text(json.dumps({"f1_macro": 0.90, "log_loss": 0.30}))
    (tmp_path / "plots").mkdir()
    write_confusion(tmp_path / "plots/confusion.csv", [("a", "a")] * 50 + [("b", "b")] * 50)
    (tmp_path / "plots/importance.csv").write_text("feature,importance\nmean radius,0.2\nplan,0.1\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data/schema.yaml").write_text(
        "columns:\n  mean radius:\n    dtype: float64\n  plan:\n    dtype: str\n"
    )
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    return tmp_path


def build(project, **changes):
    args = ["--base-ref", "main", "--head-label", changes.pop("label", "feature/x")]
    return model_report.main(args)


def test_unchanged_branch_passes_and_the_report_has_every_section(project):
    assert build(project) == 0
    text = (project / "reports/pr/model_report.md").read_text()
    for part in (
        "## ✅ Model report for `feature/x`",
        "### Metrics",
        "```mermaid",
        "### Parameters",
        "### Predictions",
    ):
        assert part in text
    assert "| `mean radius` | 0.2000 | Ada Lovelace |" in text
    assert json.loads((project / "reports/pr/model_report.json").read_text())["passed"] is True


def test_metrics_chart_draws_the_pull_request_as_bars_and_the_base_as_a_line_so_neither_hides():
    rows = [
        model_report.MetricRow("f1_macro", 0.95, 0.96, 0.01, 0.01, True, "better"),
        model_report.MetricRow("log_loss", 0.2, 1.7, 1.5, 0.01, False, "regression"),  # off the 0-1 scale
    ]
    chart = model_report.metrics_chart(rows).splitlines()
    assert '    x-axis ["f1_macro"]' in chart
    # Two bar series of one xychart are drawn over each other: exactly one bar series, and the base as a line.
    assert [line for line in chart if line.lstrip().startswith(("bar", "line"))] == [
        "    bar [0.96]",
        "    line [0.95]",
    ]


def test_regression_beyond_tolerance_fails_the_gate_with_the_reason(project, capsys):
    (project / "metrics.json").write_text(json.dumps({"f1_macro": 0.80, "log_loss": 0.30}))
    (project / "params.yaml").write_text(
        yaml.safe_dump({"evaluate": {"metric": "f1_macro"}, "model": {"family": "logistic_regression", "C": 0.01}})
    )
    assert build(project) == 1
    text = (project / "reports/pr/model_report.md").read_text()
    assert "**Gate: failed.**" in text
    assert "f1\\_macro regressed by 0\\.1000 \\(tolerance 0\\.01\\)" in text
    assert "| `model.C` | `1.0` | `0.01` |" in text
    assert "::error title=model-report gate::f1_macro regressed by 0.1000" in capsys.readouterr().out


def test_missing_baseline_is_a_clear_line_not_a_crash(project):
    assert model_report.main(["--base-ref", "0" * 40]) == 0
    text = (project / "reports/pr/model_report.md").read_text()
    assert "No `metrics\\.json` on the base branch" in text
    assert "no results to compare with yet" in text


def test_degenerate_model_fails_however_good_its_metric(project):
    write_confusion(project / "plots/confusion.csv", [("a", "a")] * 99 + [("b", "a")] * 40)
    (project / "metrics.json").write_text(json.dumps({"f1_macro": 0.99, "log_loss": 0.1}))
    assert build(project) == 1
    assert "the model predicts 'a' for 100%" in (project / "reports/pr/model_report.md").read_text()


def test_failed_data_check_fails_the_gate_and_its_section_is_included(project):
    (project / "reports/pr").mkdir(parents=True)
    (project / "reports/pr/data_check.json").write_text(json.dumps({"passed": False}))
    (project / "reports/pr/data_check.md").write_text("### Data check: failed\n")
    assert build(project) == 1
    text = (project / "reports/pr/model_report.md").read_text()
    assert "- the data check failed" in text and "### Data check: failed" in text


def test_hostile_branch_name_is_shown_not_executed(project):
    assert build(project, label="x`$(id)`<img src=x>") == 0
    first = (project / "reports/pr/model_report.md").read_text().splitlines()[0]
    assert first == "## ✅ Model report for ``x`$(id)`<img src=x>``"


def test_a_main_metric_that_disappears_fails_the_gate(project):
    (project / "metrics.json").write_text(json.dumps({"log_loss": 0.30}))
    assert build(project) == 1
    text = (project / "reports/pr/model_report.md").read_text()
    assert "the main metric f1\\_macro is missing" in text and "f1\\_macro is no longer reported" in text


def test_a_step_that_left_no_result_fails_the_gate_when_results_are_required(project):
    assert model_report.main(["--base-ref", "main", "--require-sections"]) == 1
    text = (project / "reports/pr/model_report.md").read_text()
    assert "the data check step left no result" in text and "the train step left no result" in text


def test_a_pull_request_cannot_raise_its_own_tolerance(project):
    # Given a pull request that regresses and, in the same change, allows any regression,
    (project / "metrics.json").write_text(json.dumps({"f1_macro": 0.80, "log_loss": 0.30}))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["report"] = {"tolerance": {"default": 1.0}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    # when the report is built, then the base branch's tolerance decides and the new one is listed for after merge.
    assert build(project) == 1
    text = (project / "reports/pr/model_report.md").read_text()
    assert "f1\\_macro regressed by 0\\.1000 \\(tolerance 0\\.01\\)" in text
    assert "the new ones take effect after merge" in text
    assert "| `report.tolerance.default` | `null` | `1.0` |" in text
    assert "`report.tolerance.default`" not in text.split("### Parameters")[1].split("gate's own settings")[0]


def test_results_ci_could_not_reproduce_fail_the_gate_with_both_values(project):
    (project / "reports/pr").mkdir(parents=True)
    mismatch = {"path": "metrics.json", "where": "f1_macro", "committed": "0.99", "reproduced": "0.9"}
    sentence = "the committed metrics.json (f1_macro) says 0.99 but CI reproduced 0.9: the pull request's results..."
    train_result = {"ok": True, "ran": ["evaluate"], "mismatches": [{**mismatch, "sentence": sentence}]}
    (project / "reports/pr/train.json").write_text(json.dumps(train_result))
    assert build(project) == 1
    assert "says 0\\.99 but CI reproduced 0\\.9" in (project / "reports/pr/model_report.md").read_text()


def test_a_change_to_the_vendored_actions_is_flagged(project):
    git(project, "checkout", "-qb", "feature")
    (project / ".github/actions/train").mkdir(parents=True)
    (project / ".github/actions/train/action.yml").write_text("name: train\n")
    git(project, "add", ".")
    git(project, "commit", "-qm", "Change the kit")
    assert build(project) == 0
    text = (project / "reports/pr/model_report.md").read_text()
    assert "changes the kit's own actions (`.github/actions/train/action.yml`)" in text


def test_a_feature_is_found_in_the_schema_whatever_its_indentation(tmp_path):
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "schema_type: dataframe\ncolumns:\n    'odd: name':\n        dtype: str\n    size: {dtype: float}\n"
    )
    assert model_report.declaration_line("odd: name", schema) == 3
    assert model_report.declaration_line("size", schema) == 5
    assert model_report.declaration_line("missing", schema) is None


def test_a_pipeline_stopped_past_its_budget_fails_the_gate_naming_the_figure(project):
    (project / "reports/pr").mkdir(parents=True)
    error = "the pipeline ran past its budget of 30 minutes (mlgitops.budget.pipeline_minutes on the base branch)"
    stopped = {"ok": False, "over_budget": True, "error": error, "seconds": 1800.2, "ran": [], "restored": []}
    (project / "reports/pr/train.json").write_text(json.dumps(stopped))
    assert build(project) == 1
    text = (project / "reports/pr/model_report.md").read_text()
    assert "ran past its budget of 30 minutes" in text and "**Cost:** training 1800.2 s of 30 min" in text


def test_a_report_job_over_its_budget_fails_the_gate(project):
    (project / "reports/pr").mkdir(parents=True)
    started = time.time() - 50 * 60
    (project / "reports/pr/data_check.json").write_text(json.dumps({"passed": True, "started_at": started}))
    assert build(project) == 1
    text = (project / "reports/pr/model_report.md").read_text()
    assert "over its budget of 45 minutes" in text and "this job 50\\.0 min of 45 min" not in text
    assert "this job 50.0 min of 45 min" in text


def test_results_in_a_file_no_stage_writes_fail_the_gate(project):
    # Given a pull request that points the contract's metrics at a committed file of its own choosing,
    (project / "dvc.yaml").write_text(
        "stages:\n  evaluate:\n    cmd: python evaluate.py\n    metrics: [metrics.json]\n"
    )
    (project / "claimed.json").write_text(json.dumps({"f1_macro": 0.999, "log_loss": 0.01}))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["mlgitops"] = {"paths": {"metrics": "claimed.json"}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    # then its numbers are not taken as the pipeline's.
    assert build(project) == 1
    assert (
        "claimed\\.json is not written by any stage of dvc\\.yaml"
        in (project / "reports/pr/model_report.md").read_text()
    )


def write_predictions(path, pairs):
    path.write_text("actual,predicted,residual\n" + "".join(f"{a},{p},{a - p}\n" for a, p in pairs))
    return path


def test_spread_guard_fails_a_regressor_that_answers_nearly_one_number(tmp_path):
    pairs = model_report.read_predictions(
        write_predictions(tmp_path / "p.csv", [(i, 50 + i / 100) for i in range(100)])
    )
    ok, sentence, details = model_report.spread_guard(pairs, 0.1, "the test set")
    assert not ok and details["ratio"] == 0.01
    assert sentence.startswith("the model's predictions on the test set spread 1% as wide as the truth")
    assert sentence.endswith("nearly one number for everyone")


def test_spread_guard_accepts_predictions_that_vary_with_the_truth(tmp_path):
    pairs = [(float(i), 0.6 * i + 20) for i in range(100)]
    ok, sentence, details = model_report.spread_guard(pairs, 0.1, "the test set")
    assert ok and details["ratio"] == 0.6 and "spread 60% as wide as the truth" in sentence
    assert [row[0] for row in details["rows"]] == ["mean", "standard deviation", "lowest", "highest"]


def test_residual_chart_counts_every_row_in_ten_bars():
    chart = model_report.residual_chart([(float(i), float(i % 7)) for i in range(50)])
    bars = next(line for line in chart.splitlines() if line.strip().startswith("bar ["))
    assert sum(int(n) for n in bars.split("[")[1].rstrip("]").split(", ")) == 50
    assert chart.count('"') == 2 * 10 + 4  # ten quoted bins, the title and the axis name


@pytest.fixture
def regression_project(project):
    """The same repository as a regression project: rmse, mae and r2, and each test row's prediction."""
    params = {"task": "regression", "evaluate": {"metric": "rmse"}, "model": {"family": "ridge", "alpha": 1.0}}
    params["mlgitops"] = {"report": {"lower_is_better": ["rmse", "mae"], "tolerance": {"default": 0.01, "rmse": 0.5}}}
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "metrics.json").write_text(json.dumps({"rmse": 53.3, "mae": 41.5, "r2": 0.486}))
    (project / "plots/confusion.csv").unlink()
    write_predictions(project / "plots/predictions.csv", [(float(i), 0.7 * i + 30) for i in range(100)])
    git(project, "add", "-A")
    git(project, "commit", "-qm", "a regression base")
    return project


def test_a_regression_report_judges_each_metric_in_its_direction_and_shows_spread_and_residuals(regression_project):
    # Given a pull request whose rmse and mae fall and r2 rises
    (regression_project / "metrics.json").write_text(json.dumps({"rmse": 52.0, "mae": 40.0, "r2": 0.5}))
    # When the report is built, then all three are better and the predictions section is a regression's
    assert build(regression_project) == 0
    gate = json.loads((regression_project / "reports/pr/model_report.json").read_text())
    assert {row["name"]: row["verdict"] for row in gate["metrics"]} == {
        "mae": "better",
        "r2": "better",
        "rmse": "better",
    }
    text = (regression_project / "reports/pr/model_report.md").read_text()
    assert "✅ the predictions spread 70% as wide as the truth" in text
    assert "| test split | actual | predicted |" in text and "Residuals, actual - predicted" in text
    assert "share of predictions" not in text


def test_a_regression_whose_predictions_flatten_fails_the_gate_naming_the_spread(regression_project):
    write_predictions(regression_project / "plots/predictions.csv", [(float(i), 49.5 + i / 1000) for i in range(100)])
    assert build(regression_project) == 1
    [reason] = json.loads((regression_project / "reports/pr/model_report.json").read_text())["reasons"]
    assert reason.startswith("the model's predictions on the test set spread 0% as wide as the truth")


def test_a_regression_without_its_predictions_file_fails_the_gate(regression_project):
    (regression_project / "plots/predictions.csv").unlink()
    assert build(regression_project) == 1
    reasons = json.loads((regression_project / "reports/pr/model_report.json").read_text())["reasons"]
    assert "plots/predictions.csv is missing, so the predictions cannot be checked" in reasons


def test_a_pull_request_cannot_switch_the_task_to_escape_the_spread_guard(regression_project):
    # Given a pull request whose predictions flatten and whose params.yaml now claims to be a classifier
    write_predictions(regression_project / "plots/predictions.csv", [(float(i), 49.5 + i / 1000) for i in range(100)])
    params = yaml.safe_load((regression_project / "params.yaml").read_text())
    (regression_project / "params.yaml").write_text(yaml.safe_dump({**params, "task": "classification"}))
    # then the base branch's task applies, and the spread guard fails it.
    assert build(regression_project) == 1
    [reason] = json.loads((regression_project / "reports/pr/model_report.json").read_text())["reasons"]
    assert "nearly one number for everyone" in reason
