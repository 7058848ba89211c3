"""Declare the data's schema (pandera) once, then check every prepared split against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa
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
        if pd.api.types.is_numeric_dtype(values) and name != target:
            low, high = float(values.min()), float(values.max())
            slack = (high - low) * RANGE_SLACK
            in_range = pa.Check.in_range(low - slack, high + slack)
            columns[name] = pa.Column(float, in_range, nullable=nullable, coerce=True)
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


def check(frame: pd.DataFrame, schema: pa.DataFrameSchema, name: str) -> list[dict[str, str]]:
    """Every violation of the schema in one split, as {split, column, rule, case} records."""
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as err:
        cases = err.failure_cases.drop_duplicates(subset=["column", "check"])
        return [
            {"split": name, "column": str(row.column), "rule": str(row.check), "case": str(row.failure_case)}
            for row in cases.itertuples()
        ]
    return []


def profile(frame: pd.DataFrame, target: str) -> dict[str, Any]:
    """A small, committed summary of the data that later branches are compared with (drift, balance, gaps)."""
    columns: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        values = frame[name]
        entry: dict[str, Any] = {"missing": int(values.isna().sum())}
        if pd.api.types.is_numeric_dtype(values) and name != target and values.notna().any():
            present = values.dropna().astype(float)
            entry |= {
                "kind": "numeric",
                "mean": round(float(present.mean()), 6),
                "std": round(float(present.std(ddof=0)), 6),
                "quantiles": [round(float(q), 6) for q in present.quantile(QUANTILES)],
            }
        else:
            counts = values.dropna().astype(str).value_counts()
            entry |= {"kind": "categorical", "counts": {str(k): int(v) for k, v in sorted(counts.items())}}
        columns[str(name)] = entry
    return {
        "format": PROFILE_FORMAT,
        "quantile_levels": QUANTILES,
        "rows": len(frame),
        "duplicates": int(frame.duplicated().sum()),
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
        violations += check(frame, schema, name)
    profile_file.parent.mkdir(parents=True, exist_ok=True)
    profile_file.write_text(json.dumps(profile(pd.concat(frames), target), indent=2) + "\n", encoding="utf-8")
    report.parent.mkdir(parents=True, exist_ok=True)
    result = {"format": REPORT_FORMAT, "valid": not violations, "rows": rows, "violations": violations}
    report.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return violations
