{%- set regression = cookiecutter.task == "regression" -%}
"""The declared schema accepts the data it was inferred from and names the column of any violation."""

import pandas as pd
import pytest
from pandera.errors import SchemaErrors

from {{ cookiecutter.package }} import schema


def test_inferred_schema_round_trips_and_accepts_its_data(workdir, frame, paths):
    schema.save(schema.infer(frame, "label"), paths.schema)
    declared = schema.load(paths.schema)
    assert schema.check(frame, declared, "train") == []


def test_violations_name_split_column_and_rule(workdir, frame, prepared, paths):
    declared = schema.infer(frame, "label")
    bad = pd.read_csv(prepared[0])
    bad.loc[0, "size"] = 1e9
    bad.loc[1, "colour"] = "green"
    bad.to_csv(prepared[0], index=False)
    splits = {"train": prepared[0], "test": prepared[1]}
    violations = schema.validate(splits, declared, "label", paths.data_check, paths.data_profile)
    assert {(v["split"], v["column"]) for v in violations} == {("train", "size"), ("train", "colour")}
    assert '"valid": false' in paths.data_check.read_text(encoding="utf-8")


def test_missing_column_is_a_violation(frame):
    declared = schema.infer(frame, "label")
    violations = schema.check(frame.drop(columns=["colour"]), declared, "test")
    assert any(v["column"] == "colour" or "colour" in v["case"] for v in violations)


def test_profile_summarises_numbers_categories_and_duplicates(frame):
    summary = schema.profile(frame, "label")
    assert summary["rows"] == len(frame)
    assert summary["duplicates"] == len(frame) - len(frame.drop_duplicates())
    assert summary["columns"]["size"]["kind"] == "numeric"
    assert len(summary["columns"]["size"]["quantiles"]) == len(schema.QUANTILES)
    assert summary["columns"]["colour"]["counts"] == {"blue": 40, "red": 40}
{%- if regression %}
    # the target is a number: summarised with its quantiles, and how many distinct values it takes
    assert summary["columns"]["label"]["kind"] == "numeric"
    assert summary["columns"]["label"]["distinct"] == frame["label"].nunique()


def test_the_target_is_declared_as_a_number_within_a_range_and_never_missing(frame):
    declared = schema.infer(frame, "label").columns["label"]
    assert str(declared.dtype) == "float64" and not declared.nullable
    [in_range] = declared.checks
    low, high = in_range.statistics["min_value"], in_range.statistics["max_value"]
    assert low < frame["label"].min() < frame["label"].max() < high
    frame.loc[0, "label"] = None
    assert any(v["column"] == "label" for v in schema.check(frame, schema.infer(frame.dropna(), "label"), "test"))
{%- else %}
    assert summary["columns"]["label"]["kind"] == "categorical"
{%- endif %}


def test_duplicates_count_rows_as_pandas_does_with_zeros_and_missing_values(frame):
    frame["size"] = [(0.0, -0.0, float("nan"))[i % 3] for i in range(len(frame))]
    frame.loc[::7, "colour"] = None
    assert schema.profile(frame, "label")["duplicates"] == int(frame.duplicated().sum())


@pytest.mark.parametrize(
    "fault",
    [
        {"size": 1e9},
        {"size": None},
        {"colour": "green"},
        {"colour": None},
    ],
)
def test_check_reports_what_pandera_reports(frame, fault):
    declared = schema.infer(frame, "label")
    column, value = next(iter(fault.items()))
    frame.loc[3, column] = value
    try:
        declared.validate(frame, lazy=True)
        expected = 0
    except SchemaErrors as err:
        expected = len(err.failure_cases.drop_duplicates(subset=["column", "check"]))
    assert expected > 0
    assert len(schema.check(frame, declared, "train")) == expected
{%- if cookiecutter.data_backend == "polars" %}


@pytest.mark.parametrize(
    "fault",
    [{"size": 1e9}, {"size": None}, {"size": "big"}, {"colour": "green"}, {"colour": None}],
    ids=["out-of-range", "missing-number", "text-in-numbers", "unknown-category", "missing-category"],
)
def test_polars_check_finds_what_the_pandas_check_finds(tmp_path, frame, fault):
    declared = schema.infer(frame, "label")
    column, value = next(iter(fault.items()))
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    split = tmp_path / "split.csv"
    frame.to_csv(split, index=False)
    by_pandas = schema.check(pd.read_csv(split), declared, "train")
    by_polars = schema.check_csv(split, declared, "train")
    assert {v["column"] for v in by_polars} == {v["column"] for v in by_pandas} == {column}
    # One finding per fault: a value that is no number is not also reported as a missing one.
    assert len(by_polars) == 1, by_polars


def test_polars_check_reads_booleans_as_pandas_does(tmp_path):
    frame = pd.DataFrame({"member": [True, False] * 20, "label": ["a", "b", "b", "a"] * 10})
    declared = schema.infer(frame, "label")
    split = tmp_path / "split.csv"
    frame.to_csv(split, index=False)
    assert schema.check(pd.read_csv(split), declared, "train") == []
    assert schema.check_csv(split, declared, "train") == []


def test_polars_check_accepts_the_data_the_schema_was_declared_from(tmp_path, frame):
    split = tmp_path / "split.csv"
    frame.to_csv(split, index=False)
    assert schema.check_csv(split, schema.infer(frame, "label"), "train") == []


def test_polars_check_names_a_missing_and_an_unexpected_column(tmp_path, frame):
    split = tmp_path / "split.csv"
    frame.drop(columns=["colour"]).assign(shade="dark").to_csv(split, index=False)
    found = " ".join(str(v) for v in schema.check_csv(split, schema.infer(frame, "label"), "train"))
    assert "colour" in found and "shade" in found
{%- endif %}
