"""Benchmark: the validate stage and the kit's data check on a large CSV, side by side with pandas reading it.

The template's validate stage reads each split, checks it against the declared schema (pandera) and
profiles it; the kit's data check then applies its quality and drift rules to that profile, whose
size depends on the columns, not the rows. This times both on a generated CSV of mixed types (numbers,
category strings, missing values), next to `pandas.read_csv` of the same file, for growing row counts,
and measures the stage's peak memory in a fresh process against the frame's own size.
Run: `.venv/bin/python benchmarks/bench_data_check.py [--rows 10000 100000] [--columns 30]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness import ACTIONS, mib, peak_rss, table, template_module, timed, verdict

sys.path.insert(0, str(ACTIONS))

from mlgitops import data_check

TARGET = "label"
GOAL_TIME = 2.0  # validate stage + data check, in reads of the same CSV
GOAL_MEMORY = 4.0  # the stage's peak RSS, in sizes of the frame in memory (strictly below)


def frame(rows: int, columns: int = 30, seed: int = 0) -> pd.DataFrame:
    """Mixed data: two thirds numbers (some with missing values), the rest category strings, and a label."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    texts = max(1, (columns - 1) // 3)
    for i in range(columns - 1 - texts):
        values = rng.normal(i, 1 + i, rows)
        if i % 3 == 0:  # a few missing values, under the data check's 5% rule
            values[rng.random(rows) < 0.02] = np.nan
        data[f"x{i}"] = values.round(4) if i % 4 else rng.integers(0, 100, rows)
    for i in range(texts):
        choices = np.array([f"c{i}_{k}" for k in range(3 + 4 * i)], dtype=object)
        values = rng.choice(choices, rows)
        if i % 2 == 0:
            values[rng.random(rows) < 0.01] = None
        data[f"cat{i}"] = values
    data[TARGET] = rng.choice(np.array(["yes", "no"], dtype=object), rows, p=[0.3, 0.7])
    return pd.DataFrame(data)


def rules() -> dict[str, Any]:
    """The kit's default data-check settings."""
    return data_check.settings(Path("/nonexistent"))


def stage(csv: Path, schema_file: Path, out: Path) -> dict[str, Any]:
    """The validate stage's functions on one CSV (no size guard), then the kit's quality and drift rules."""
    schema = template_module("schema")
    declared = schema.load(schema_file)
    violations = schema.validate({"train": csv}, declared, TARGET, out / "data_check.json", out / "data_profile.json")
    profile = json.loads((out / "data_profile.json").read_text(encoding="utf-8"))
    settings = rules()
    # The profile is its own base: drift's cost depends on the columns only, not on how far they moved.
    findings = data_check.quality(profile, settings) + data_check.drift(profile, profile, settings["drift"])
    return {"violations": len(violations), "findings": len(findings), "failed": sum(not f.passed for f in findings)}


def measure_memory(csv: Path, schema_file: Path, out: Path) -> tuple[int, int]:
    """Peak RSS of a fresh process that only reads the CSV, and of one that runs the stage on it."""
    setup = f"import sys; sys.path[:0] = [{str(Path(__file__).parent)!r}]; import bench_data_check as b\n"
    read, _ = peak_rss(f"{setup}import pandas as pd; pd.read_csv({str(csv)!r})")
    staged, _ = peak_rss(
        f"{setup}from pathlib import Path\nRESULT = b.stage(Path({str(csv)!r}), "
        f"Path({str(schema_file)!r}), Path({str(out)!r}))"
    )
    return read, staged


def main(argv: list[str] | None = None) -> int:
    """Print the timing and memory tables; goals are printed beside the ratios, never asserted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    args = parser.parse_args(argv)
    schema = template_module("schema")
    print(f"Data check: validate stage + kit data check vs pandas.read_csv, {args.columns} mixed columns")
    rows_out, memory_rows, seconds, parts = [], [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for rows in args.rows:
            csv, schema_file = out / f"data-{rows}.csv", out / f"schema-{rows}.yaml"
            frame(rows, args.columns).to_csv(csv, index=False)
            data, read = timed(lambda c=csv: pd.read_csv(c))
            declared, inferred = timed(lambda d=data: schema.infer(d, TARGET))
            schema.save(declared, schema_file)
            result, staged = timed(lambda c=csv, s=schema_file: stage(c, s, out))
            if result["violations"] or result["failed"]:
                raise RuntimeError(f"the generated data should pass every check, got {result}")
            ratio = staged / read
            seconds[rows] = staged
            rows_out.append(
                [
                    f"{rows:,}",
                    f"{csv.stat().st_size / 2**20:,.0f}",
                    f"{read:.2f}",
                    f"{inferred:.2f}",
                    f"{staged:.2f}",
                    f"{ratio:.2f}x",
                    f"<= {GOAL_TIME:g}x {verdict(ratio, GOAL_TIME)}",
                ]
            )
            if rows == max(args.rows):
                # Where the stage's time goes beyond its own read: the same calls on the frame already read.
                loaded = schema.load(schema_file)
                parts = {
                    "read_csv": read,
                    "check (schema)": timed(lambda d=data, s=loaded: schema.check(d, s, "train"))[1],
                    "profile": timed(lambda d=data: schema.profile(d, TARGET))[1],
                }
            if not args.no_memory and rows == max(args.rows):
                size = int(data.memory_usage(deep=True).sum())
                del data
                read_peak, stage_peak = measure_memory(csv, schema_file, out)
                memory_rows = [
                    ["pandas.read_csv", mib(read_peak), f"{read_peak / size:.2f}x", ""],
                    [
                        "validate + data check",
                        mib(stage_peak),
                        f"{stage_peak / size:.2f}x",
                        f"< {GOAL_MEMORY:g}x {verdict(stage_peak / size, GOAL_MEMORY, strict=True)}",
                    ],
                ]
                memory_heading = f"Peak RSS of a fresh process, {rows:,} rows (frame in memory: {mib(size)})"
    headers = ["rows", "CSV MiB", "read s", "infer s", "validate+check s", "vs read", "goal"]
    print(table(headers, rows_out))
    print("infer: the schema stage proposing data/schema.yaml (runs once, when the file is absent); not in the ratio.")
    if len(seconds) > 1:
        small, large = min(seconds), max(seconds)
        growth = seconds[large] / seconds[small]
        print(f"scaling {small:,} -> {large:,} rows (x{large / small:g}): validate+check time x{growth:.1f}")
    print(f"where the time goes at {max(args.rows):,} rows: " + ", ".join(f"{k} {v:.2f} s" for k, v in parts.items()))
    if memory_rows:
        print()
        print(memory_heading)
        print(table(["process", "peak RSS", "vs frame", "goal"], memory_rows))
        if stage_peak <= read_peak * 1.05:
            print("peak RSS is a high-water mark: read_csv's parsing sets it; checking and profiling stay under it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
