"""The contract: the `mlgitops:` section of params.yaml over the kit's defaults, and versioned exchange formats."""

from __future__ import annotations

import re

import pytest

from mlgitops import contract


def test_a_project_without_the_section_gets_the_defaults():
    assert contract.from_text(None) == contract.DEFAULTS
    assert contract.from_text("model: {C: 1.0}\n") == contract.DEFAULTS


def test_given_values_replace_defaults_and_per_metric_tolerances_are_kept():
    found = contract.from_text(
        "mlgitops:\n  paths: {metrics: results/metrics.json}\n"
        "  report: {tolerance: {default: 0.02, log_loss: 0.05}}\n  data_check: {drift: {fail: false}}\n"
    )
    assert found["paths"]["metrics"] == "results/metrics.json"
    assert found["paths"]["test"] == contract.DEFAULTS["paths"]["test"]
    assert found["report"]["tolerance"] == {"default": 0.02, "log_loss": 0.05}
    assert found["data_check"]["drift"] == {**contract.DEFAULTS["data_check"]["drift"], "fail": False}


def test_projects_made_before_the_section_keep_their_top_level_settings():
    found = contract.from_text("report:\n  max_majority_share: 0.9\ndata_check:\n  min_rows: 10\n")
    assert found["report"]["max_majority_share"] == 0.9 and found["data_check"]["min_rows"] == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mlgitops: [1]\n", "mlgitops in params.yaml must be a mapping"),
        ("mlgitops: {report: {max_majority_share: lots}}\n", "mlgitops.report.max_majority_share in params.yaml"),
        ("mlgitops: {data_check: {drift: {fail: 'no'}}}\n", "must be true or false"),
        ("mlgitops: {report: {tolerance: {f1: -1}}}\n", "mlgitops.report.tolerance.f1 in params.yaml must be a number"),
        ("mlgitops: {paths: {metrics: ''}}\n", "must be a non-empty path"),
        ("mlgitops: {report: {lower_is_better: log_loss}}\n", "must be a list of names"),
        ("mlgitops: [\n", "params.yaml is not valid YAML"),
        ("mlgitops: {monitor: {sample: 1.5}}\n", "mlgitops.monitor.sample in params.yaml must be a number from 0 to 1"),
        (
            "mlgitops: {monitor: {sample: -0.1}}\n",
            "mlgitops.monitor.sample in params.yaml must be a number of at least 0",
        ),
        ("mlgitops: {monitor: {hash: email}}\n", "mlgitops.monitor.hash in params.yaml must be a list of names"),
    ],
)
def test_a_bad_contract_is_refused_with_one_sentence(text, message):
    with pytest.raises(contract.ContractError, match=re.escape(message)) as caught:
        contract.from_text(text)
    assert "\n" not in str(caught.value)


def test_a_monitor_sample_at_either_end_of_its_range_is_accepted():
    for share in (0, 1):
        found = contract.from_text(f"mlgitops:\n  monitor:\n    sample: {share}\n")
        assert found["monitor"] == {**contract.DEFAULTS["monitor"], "sample": share}


def test_files_without_a_format_are_version_one_and_newer_ones_are_refused():
    contract.check_format({"rows": 1}, "data_profile", "p.json")
    contract.check_format({"format": 1}, "model_meta", "m.json")
    with pytest.raises(contract.ContractError, match=r"m\.json is written in model_meta format 3, newer than this kit"):
        contract.check_format({"format": 3}, "model_meta", "m.json")
