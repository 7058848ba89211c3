"""data-check: statistics, quality rules, drift against the base branch, and the files and annotations it writes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from mlgitops import data_check


def profile(rows=100, *, shift=0.0, counts=None, missing=0, duplicates=0, labels=None) -> dict:
    quantiles = [i + shift for i in range(21)]
    return {
        "rows": rows,
        "duplicates": duplicates,
        "target": "label",
        "columns": {
            "size": {"kind": "numeric", "missing": missing, "mean": 10 + shift, "std": 6.0, "quantiles": quantiles},
            "plan": {"kind": "categorical", "missing": 0, "counts": counts or {"basic": 50, "pro": 50}},
            "label": {"kind": "categorical", "missing": 0, "counts": labels or {"no": 60, "yes": 40}},
        },
    }


RULES = data_check.settings(Path("/nonexistent"))


def by_rule(findings, rule, column=""):
    return next(f for f in findings if f.rule == rule and f.column == column)


def test_psi_is_zero_for_equal_shares_and_grows_with_change():
    assert data_check.psi({"a": 5, "b": 5}, {"a": 50, "b": 50}) == pytest.approx(0.0)
    small = data_check.psi({"a": 50, "b": 50}, {"a": 55, "b": 45})
    large = data_check.psi({"a": 50, "b": 50}, {"a": 90, "b": 10})
    assert 0 < small < 0.1 < 0.2 < large


def test_psi_of_a_new_category_is_large_but_finite():
    assert 1 < data_check.psi({"a": 100}, {"a": 50, "new": 50}) < 100


def test_wasserstein_measures_a_shift_in_base_standard_deviations():
    base = profile()["columns"]["size"]
    moved = profile(shift=3.0)["columns"]["size"]
    assert data_check.wasserstein_std(base, base) == 0
    assert data_check.wasserstein_std(base, moved) == pytest.approx(0.5)


def test_healthy_data_passes_every_quality_rule():
    assert all(f.passed for f in data_check.quality(profile(), RULES))


@pytest.mark.parametrize(
    ("data", "rule", "column"),
    [
        (profile(rows=10), "min_rows", ""),
        (profile(missing=20), "missing_values", "size"),
        (profile(duplicates=30), "duplicates", ""),
        (profile(labels={"no": 98, "yes": 2}), "label_balance", "label"),
        (profile(labels={"no": 100}), "label_balance", "label"),
    ],
    ids=["too-few-rows", "missing-values", "duplicates", "imbalanced", "one-class"],
)
def test_each_quality_rule_fails_on_its_fault(data, rule, column):
    finding = by_rule(data_check.quality(data, RULES), rule, column)
    assert not finding.passed


def test_drift_flags_the_moved_columns_only():
    findings = data_check.drift(profile(), profile(shift=3.0, counts={"basic": 90, "pro": 10}), RULES["drift"])
    assert not by_rule(findings, "drift:wasserstein_std", "size").passed
    assert not by_rule(findings, "drift:psi", "plan").passed
    assert by_rule(findings, "drift:psi", "label").passed


def test_settings_merge_params_over_defaults(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("data_check:\n  min_rows: 5\n  drift:\n    fail: false\n")
    rules = data_check.settings(params)
    assert rules["min_rows"] == 5
    assert rules["drift"] == {"numeric_threshold": 0.25, "categorical_threshold": 0.2, "fail": False}


def git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True, capture_output=True
    )


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository whose base commit holds a data profile, with a working tree for the head."""
    monkeypatch.chdir(tmp_path)
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/data_profile.json").write_text(json.dumps(profile()))
    (tmp_path / "reports/data_check.json").write_text(json.dumps({"valid": True, "violations": []}))
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "base")
    return tmp_path


def run_main(*extra):
    return data_check.main(["--stage", "", "--base-ref", "main", *extra])


def test_clean_data_passes_and_writes_json_and_markdown(repo, monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    assert run_main() == 0
    result = json.loads((repo / "reports/pr/data_check.json").read_text())
    assert result["passed"] and result["base"] == "main"
    assert "### Data check: passed" in (repo / "reports/pr/data_check.md").read_text()
    assert "passed<<" in (tmp_path / "out").read_text()


def test_schema_violation_fails_with_an_annotation_naming_column_and_rule(repo, capsys):
    violation = {"split": "train", "column": "size", "rule": "in_range(0, 20)", "case": "999"}
    (repo / "reports/data_check.json").write_text(json.dumps({"valid": False, "violations": [violation]}))
    assert run_main() == 1
    out = capsys.readouterr().out
    assert "::error file=data/schema.yaml,title=data-check::column 'size': schema:in_range(0, 20)" in out
    assert "| `schema:in_range(0, 20)` | `size` |" in (repo / "reports/pr/data_check.md").read_text()


def test_drift_beyond_threshold_fails_unless_the_base_branch_says_report_only(repo):
    (repo / "reports/data_profile.json").write_text(json.dumps(profile(shift=5.0)))
    assert run_main() == 1
    # Given a pull request that turns drift failures off for itself, the base branch's setting still applies.
    (repo / "params.yaml").write_text("data_check:\n  drift:\n    fail: false\n")
    assert run_main() == 1
    # Once the setting is merged, drift is reported only.
    git(repo, "add", "params.yaml")
    git(repo, "commit", "-qm", "Report drift only")
    assert run_main() == 0
    assert "Columns that drifted" in (repo / "reports/pr/data_check.md").read_text()


def test_missing_base_profile_is_a_line_in_the_report_not_a_crash(repo):
    assert data_check.main(["--stage", "", "--base-ref", "0" * 40]) == 0
    assert "drift was not measured" in (repo / "reports/pr/data_check.md").read_text()


def test_missing_reports_fail_with_a_clear_error(repo, capsys):
    (repo / "reports/data_profile.json").unlink()
    assert run_main() == 1
    assert "data_profile.json is missing" in capsys.readouterr().out


def test_hostile_column_names_stay_inert_in_the_markdown(repo):
    hostile = "x`|<script>@all"
    data = profile()
    data["columns"][hostile] = {**data["columns"]["size"], "missing": 50}
    (repo / "reports/data_profile.json").write_text(json.dumps(data))
    assert run_main() == 1
    report = (repo / "reports/pr/data_check.md").read_text()
    # Inside a code span GitHub shows HTML and mentions literally; the pipe is escaped so the table holds.
    assert "| ``x`\\|<script>@all`` |" in report
    assert "<script>" not in re.sub(r"``.*?``", "", report)


def test_a_stage_that_fails_before_checking_cannot_pass_on_the_committed_report(repo, tmp_path, monkeypatch):
    fake_dvc = tmp_path / "bin" / "dvc"
    fake_dvc.parent.mkdir()
    fake_dvc.write_text("#!/bin/sh\necho 'ERROR: failed to reproduce prepare: bad data' >&2\nexit 1\n")
    fake_dvc.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_dvc.parent}:{os.environ['PATH']}")
    assert data_check.main(["--stage", "validate", "--base-ref", "main"]) == 1
    result = json.loads((repo / "reports/pr/data_check.json").read_text())
    assert result["error"].startswith("the data could not be prepared: ERROR: failed to reproduce prepare")


def test_profiles_with_different_quantile_levels_are_compared_not_crashed(repo):
    # Given an owner who changed the quantiles the profile keeps (5 instead of the base's 21),
    head = profile()
    levels = [0.0, 0.25, 0.5, 0.75, 1.0]
    for column in head["columns"].values():
        if column["kind"] == "numeric":
            column["quantiles"] = [column["quantiles"][int(level * 20)] for level in levels]
    head["quantile_levels"] = levels
    (repo / "reports/data_profile.json").write_text(json.dumps(head))
    # then drift is measured on one grid and the same data does not drift.
    assert run_main() == 0
    result = json.loads((repo / "reports/pr/data_check.json").read_text())
    assert [f["value"] < 0.1 for f in result["findings"] if f["rule"] == "drift:wasserstein_std"] == [True]


def test_a_profile_in_a_newer_format_is_refused_with_one_sentence(repo, capsys):
    (repo / "reports/data_profile.json").write_text(json.dumps({**profile(), "format": 2}))
    assert run_main() == 1
    out = capsys.readouterr().out
    assert "reports/data_profile.json is written in data_profile format 2, newer than this kit reads (1)" in out
    assert "Traceback" not in out


def test_a_check_result_no_stage_writes_is_refused(repo):
    (repo / "dvc.yaml").write_text("stages:\n  validate:\n    cmd: python v.py\n    outs: [other.json]\n")
    assert run_main() == 1
    result = json.loads((repo / "reports/pr/data_check.json").read_text())
    assert "reports/data_check.json is not written by any stage of dvc.yaml" in result["error"]


def regression_profile(*, distinct=214, quantiles=None) -> dict:
    """A profile whose target is a number, as a regression project's validate stage writes it."""
    found = profile()
    found["columns"]["label"] = {
        "kind": "numeric",
        "missing": 0,
        "mean": 150.0,
        "std": 77.0,
        "quantiles": quantiles or [25.0 + 16 * i for i in range(21)],
        "distinct": distinct,
    }
    return found


def test_a_regression_target_that_varies_passes_the_spread_rule_instead_of_label_balance():
    findings = data_check.quality(regression_profile(), RULES)
    assert all(f.passed for f in findings)
    spread = by_rule(findings, "target_spread", "label")
    assert spread.value == 214 and spread.threshold == 10
    assert spread.message == "214 distinct values, interquartile range 160 (at least 10 values, a range above 0)"
    assert not [f for f in findings if f.rule == "label_balance"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (regression_profile(distinct=4), "4 distinct value(s); at least 10"),
        (
            regression_profile(quantiles=[0.0] * 4 + [5.0] * 16 + [9.0]),
            "the middle half of the rows share one value (interquartile range 0)",
        ),
    ],
    ids=["few-values", "one-value-in-the-middle"],
)
def test_a_regression_target_without_spread_fails_with_its_reason(data, message):
    finding = by_rule(data_check.quality(data, RULES), "target_spread", "label")
    assert not finding.passed and finding.message == message
