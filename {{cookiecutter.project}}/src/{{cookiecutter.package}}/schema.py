{%- set polars = cookiecutter.data_backend == "polars" -%}
{%- set regression = cookiecutter.task == "regression" -%}
"""Declare the data's schema (pandera) once, then check every prepared split against it{% if polars %} with polars{% endif %}."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
{%- if polars %}
import pandera.polars as pap
import polars as pl
from pandas._libs.parsers import STR_NA_VALUES  # the strings pandas reads as missing
{%- endif %}
from pandera.errors import SchemaErrors

# Versions of the two reports' layouts, which the kit's data check reads; it refuses newer ones.
PROFILE_FORMAT = 1
REPORT_FORMAT = 1
# Quantiles kept per numeric column: enough to compare distributions between branches without the data.
QUANTILES = [i / 20 for i in range(21)]
# Ranges are widened by this share of the observed span, so unseen but plausible values pass.
RANGE_SLACK = 0.1
# A text column with at most this many distinct values is a category whose values are declared.
MAX_CATEGORIES = 50


def infer(frame: pd.DataFrame, target: str) -> pa.DataFrameSchema:
    """Propose a schema from data: dtypes, no missing values, widened numeric ranges, known categories."""
    columns: dict[str, pa.Column] = {}
    for name in frame.columns:
        values = frame[name]
        nullable = bool(values.isna().any())
{%- if regression %}
        # The target is a number too, declared with a range; it may never be missing.
        if pd.api.types.is_numeric_dtype(values):
{%- else %}
        # The target is a class label, declared as text with its classes even when the labels are numbers.
        if pd.api.types.is_numeric_dtype(values) and name != target:
{%- endif %}
            low, high = float(values.min()), float(values.max())
            slack = (high - low) * RANGE_SLACK
            in_range = pa.Check.in_range(low - slack, high + slack)
            columns[name] = pa.Column(float, in_range, nullable=nullable and name != target, coerce=True)
        else:
            categories = sorted(values.dropna().astype(str).unique())
            checks = [pa.Check.isin(categories)] if len(categories) <= MAX_CATEGORIES or name == target else []
            columns[name] = pa.Column(str, checks, nullable=nullable and name != target, coerce=True)
    return pa.DataFrameSchema(columns, strict=True, name="dataset")


def load(path: Path) -> pa.DataFrameSchema:
    """Read the declared schema."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m {__package__} schema`, review it and commit it.")
    return pa.DataFrameSchema.from_yaml(path)


def save(schema: pa.DataFrameSchema, path: Path) -> None:
    """Write the schema as pandera YAML, the form reviewers read in diffs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(schema.to_yaml(), encoding="utf-8")


def _obviously_valid(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> bool:
    """Whether the frame meets every declaration of a schema made of what infer() declares, in one vectorised pass.

    pandera costs several reads of the data on large splits; valid data, the usual case, needs no report, so
    only data this cannot vouch for (a violation, or a declaration it does not know) goes through pandera.
    """
    if schema.checks or schema.index is not None or schema.unique or schema.ordered or schema.add_missing_columns:
        return False
    if schema.parsers or schema.dtype is not None or schema.coerce or schema.drop_invalid_rows:
        return False
    if set(frame.columns) != set(schema.columns) or frame.columns.has_duplicates or not schema.strict:
        return False
    for name, column in schema.columns.items():
        values = frame[name]
        if not (column.required and column.coerce) or column.unique or column.regex or column.parsers:
            return False
        if column.default is not None or column.drop_invalid_rows:
            return False
        kind = str(column.dtype)
        if kind == "float64" and values.dtype.kind in "if":
            numbers = values.to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(numbers)
        elif kind.startswith("str") and pd.api.types.is_string_dtype(values) and values.dtype != object:
            missing = values.isna().to_numpy()
        else:
            return False
        if missing.any() and not column.nullable:
            return False
        for rule in column.checks:
            stats = rule.statistics
            if not rule.ignore_na or rule.groupby is not None or rule.element_wise:
                return False
            if rule.name == "in_range" and kind == "float64":
                low = numbers >= stats["min_value"] if stats["include_min"] else numbers > stats["min_value"]
                high = numbers <= stats["max_value"] if stats["include_max"] else numbers < stats["max_value"]
                passed = low & high
            elif rule.name == "isin":
                passed = values.isin(stats["allowed_values"]).to_numpy()
            else:
                return False
            # Missing values pass a check (ignore_na), as pandera applies it.
            if not (passed | missing).all():
                return False
    return True


def check(frame: pd.DataFrame, schema: pa.DataFrameSchema, name: str) -> list[dict[str, str]]:
    """Every violation of the schema in one split, as {split, column, rule, case} records."""
    if _obviously_valid(frame, schema):
        return []
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases.drop_duplicates(subset=["column", "check"])
        return [
            {"split": name, "column": str(row.column), "rule": str(row.check), "case": str(row.failure_case)}
            for row in cases.itertuples()
        ]
    return []


{% if polars -%}
def for_polars(schema: pa.DataFrameSchema, columns: list[str]) -> pap.DataFrameSchema:
    """The declared schema of these columns for pandera's polars backend, for data already read as its types."""
    kinds = {"float64": pl.Float64, "str": pl.String}
    found: dict[str, pap.Column] = {}
    for name in columns:
        column = schema.columns[name]
        kind = "str" if str(column.dtype).startswith("str") else str(column.dtype)
        if kind not in kinds:
            raise ValueError(f"column {name!r} is declared as {kind}; the polars data check knows float64 and str.")
        found[name] = pap.Column(kinds[kind], checks=column.checks, nullable=column.nullable, unique=column.unique)
    return pap.DataFrameSchema(found, checks=schema.checks, name=schema.name)


def check_csv(path: Path, schema: pa.DataFrameSchema, name: str) -> list[dict[str, str]]:
    """Every violation of the schema in one split's CSV, checked by polars, as {split, column, rule, case} records."""

    def violation(column: str, rule: str, case: object) -> dict[str, str]:
        return {"split": name, "column": column, "rule": rule, "case": str(case)}

    # Read as text with pandas' missing values, then made numbers here, so each value that is no number is
    # named with its column (pandera's polars coercion reports those for the whole frame).
    frame = pl.read_csv(path, infer_schema=False, null_values=sorted(STR_NA_VALUES))
    violations = [violation(c, "column_in_dataframe", c) for c in schema.columns if c not in frame.columns]
    if schema.strict:
        violations += [violation(c, "column_in_schema", c) for c in frame.columns if c not in schema.columns]
    present = [c for c in schema.columns if c in frame.columns]
    numbers = [c for c in present if str(schema.columns[c].dtype) == "float64"]
    # pandas reads these words as booleans, which the schema declares as numbers (1.0 and 0.0).
    as_number = {word: "1" for word in ("True", "TRUE", "true")} | {word: "0" for word in ("False", "FALSE", "false")}
    cast = frame.select(present).with_columns(
        pl.col(c).replace(as_number).cast(pl.Float64, strict=False) for c in numbers
    )
    unreadable: set[str] = set()
    for c in numbers:
        cases = frame.filter(pl.col(c).is_not_null() & cast[c].is_null())[c]
        if len(cases):
            unreadable.add(c)
            violations.append(violation(c, "coerce_dtype('float64')", cases[0]))
    try:
        for_polars(schema, present).validate(cast, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases.unique(subset=["column", "check"], keep="first", maintain_order=True)
        for row in cases.iter_rows(named=True):
            column, rule = str(row["column"]), str(row["check"])
            # A value that is no number reads as missing once cast; it is reported above, as what it is.
            if rule == "not_nullable" and column in unreadable and not frame[column].is_null().any():
                continue
            violations.append(violation(column, rule, row["failure_case"]))
    return violations


{% endif -%}
def _duplicates(frame: pd.DataFrame, codes: dict[str, np.ndarray]) -> int:
    """Rows equal to an earlier row, counted as `frame.duplicated().sum()` counts them, at a fraction of its cost.

    Equal rows have equal hashes (categories by their codes, numbers by value, -0.0 and NaN made one), so only
    rows whose hash repeats can be duplicates; pandas counts those exactly.
    """
    combined = np.zeros(len(frame), dtype=np.uint64)
    for name in frame.columns:
        if name in codes:
            hashed = pd.util.hash_array(codes[name])
        else:
            values = frame[name].to_numpy()
            if values.dtype.kind == "f":
                values = np.where(np.isnan(values), np.nan, values + 0.0)
            hashed = pd.util.hash_array(values)
        combined = combined * np.uint64(0x100000001B3) ^ hashed
    candidates = pd.Series(combined).duplicated(keep=False).to_numpy()
    return int(frame[candidates].duplicated().sum()) if candidates.any() else 0


def profile(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """A small, committed summary of the data that later branches are compared with (drift, balance, gaps)."""
    columns: dict[str, dict[str, Any]] = {}
    codes: dict[str, np.ndarray] = {}
    for name in frame.columns:
        values = frame[name]
{%- if regression %}
        if pd.api.types.is_numeric_dtype(values) and values.notna().any():
{%- else %}
        if pd.api.types.is_numeric_dtype(values) and name != target and values.notna().any():
{%- endif %}
            present = values.dropna().astype(float)
            entry: dict[str, Any] = {
                "missing": len(values) - len(present),
                "kind": "numeric",
                "mean": round(float(present.mean()), 6),
                "std": round(float(present.std(ddof=0)), 6),
                "quantiles": [round(float(q), 6) for q in present.quantile(QUANTILES)],
            }
{%- if regression %}
            if name == target:  # the data check's spread rule counts the target's values
                entry["distinct"] = int(present.nunique())
{%- endif %}
        elif values.dtype.kind == "f":  # factorize would merge 0.0 and -0.0, which read as two categories
            counts = values.dropna().astype(str).value_counts()
            entry = {"missing": int(values.isna().sum()), "kind": "categorical"}
            entry["counts"] = {str(k): int(v) for k, v in sorted(counts.items())}
        else:
            # One pass of factorize gives the counts, the missing values (code -1) and codes for _duplicates.
            codes[name], uniques = pd.factorize(values)
            tally = np.bincount(codes[name][codes[name] >= 0], minlength=len(uniques))
            merged: dict[str, int] = {}
            for value, count in zip(uniques, tally, strict=True):
                merged[str(value)] = merged.get(str(value), 0) + int(count)
            missing = int((codes[name] < 0).sum())
            entry = {"missing": missing, "kind": "categorical", "counts": dict(sorted(merged.items()))}
        columns[str(name)] = entry
    return {
        "format": PROFILE_FORMAT,
        "quantile_levels": QUANTILES,
        "rows": len(frame),
        "duplicates": _duplicates(frame, codes),
        "target": target,
        "columns": columns,
    }


def validate(
    splits: dict[str, Path],
    schema: pa.DataFrameSchema,
    target: str,
    report: Path,
    profile_file: Path,
) -> list[dict[str, str]]:
    """Profile the data, check each split, write both reports, and return the violations (empty when valid)."""
    violations: list[dict[str, str]] = []
    rows: dict[str, int] = {}
    frames = []
    for name, path in splits.items():
        frame = pd.read_csv(path)
        rows[name] = len(frame)
        frames.append(frame)
{%- if polars %}
        violations += check_csv(path, schema, name)
{%- else %}
        violations += check(frame, schema, name)
{%- endif %}
    profile_file.parent.mkdir(parents=True, exist_ok=True)
    profile_file.write_text(json.dumps(profile(pd.concat(frames), target), indent=2) + "\n", encoding="utf-8")
    report.parent.mkdir(parents=True, exist_ok=True)
    result = {"format": REPORT_FORMAT, "valid": not violations, "rows": rows, "violations": violations}
    report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return violations
