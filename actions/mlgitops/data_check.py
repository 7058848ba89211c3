"""data-check: schema, quality rules and drift against the base branch, from the pipeline's data reports."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from . import baseline, gha, gitrefs, trust
from . import markdown as md

DEFAULTS: dict[str, Any] = {
    "min_rows": 50,
    "max_missing_share": 0.05,
    "max_duplicate_share": 0.05,
    "min_class_share": 0.05,
    "drift": {"numeric_threshold": 0.25, "categorical_threshold": 0.2, "fail": True},
}
SCHEMA_FILE = "data/schema.yaml"
# Floor for category shares in PSI, so a category that one branch lacks gives a large but finite value.
PSI_FLOOR = 1e-4


@dataclass
class Finding:
    """One rule applied to the data: what, where, the measured value, the limit, and whether it passed."""

    rule: str
    column: str
    passed: bool
    value: float | str | None
    threshold: float | str | None
    message: str


def settings(params_file: Path, base_ref: str = "") -> dict[str, Any]:
    """The data_check settings over the defaults, from the base revision's params file when one is named.

    A pull request must not loosen the checks that judge it: its own settings take effect once merged.
    """
    if base_ref:
        text = gitrefs.show(base_ref, str(params_file))
        params = yaml.safe_load(text) if text else {}
    else:
        params = yaml.safe_load(params_file.read_text(encoding="utf-8")) if params_file.is_file() else {}
    given = (params or {}).get("data_check") or {}
    return {**DEFAULTS, **given, "drift": {**DEFAULTS["drift"], **(given.get("drift") or {})}}


def wasserstein_std(base: dict[str, Any], head: dict[str, Any]) -> float:
    """Wasserstein-1 distance of two distributions from matching quantiles, in base standard deviations."""
    distance = sum(abs(a - b) for a, b in zip(base["quantiles"], head["quantiles"], strict=True)) / len(
        base["quantiles"]
    )
    return distance / (base["std"] or 1.0)


def psi(base: dict[str, int], head: dict[str, int]) -> float:
    """Population stability index of two category count tables."""
    base_total, head_total = sum(base.values()) or 1, sum(head.values()) or 1
    value = 0.0
    for category in set(base) | set(head):
        expected = max(base.get(category, 0) / base_total, PSI_FLOOR)
        actual = max(head.get(category, 0) / head_total, PSI_FLOOR)
        value += (actual - expected) * math.log(actual / expected)
    return value


def quality(profile: dict[str, Any], rules: dict[str, Any]) -> list[Finding]:
    """Minimum rows, missing values, duplicates and label balance."""
    rows = profile["rows"]
    findings = [
        Finding(
            "min_rows",
            "",
            rows >= rules["min_rows"],
            rows,
            rules["min_rows"],
            f"{rows} rows (at least {rules['min_rows']})",
        )
    ]
    for name, column in profile["columns"].items():
        share = column["missing"] / rows if rows else 1.0
        findings.append(
            Finding(
                "missing_values",
                name,
                share <= rules["max_missing_share"],
                round(share, 4),
                rules["max_missing_share"],
                f"{share:.1%} missing (at most {rules['max_missing_share']:.1%})",
            )
        )
    duplicates = profile["duplicates"] / rows if rows else 0.0
    findings.append(
        Finding(
            "duplicates",
            "",
            duplicates <= rules["max_duplicate_share"],
            round(duplicates, 4),
            rules["max_duplicate_share"],
            f"{duplicates:.1%} duplicated rows (at most {rules['max_duplicate_share']:.1%})",
        )
    )
    target = profile["target"]
    counts = profile["columns"].get(target, {}).get("counts", {})
    total = sum(counts.values()) or 1
    if len(counts) < 2:
        findings.append(Finding("label_balance", target, False, len(counts), 2, f"{len(counts)} class(es); at least 2"))
    else:
        smallest = min(counts, key=counts.get)
        share = counts[smallest] / total
        findings.append(
            Finding(
                "label_balance",
                target,
                share >= rules["min_class_share"],
                round(share, 4),
                rules["min_class_share"],
                f"smallest class {smallest!r} is {share:.1%} of rows (at least {rules['min_class_share']:.1%})",
            )
        )
    return findings


def drift(base: dict[str, Any], head: dict[str, Any], rules: dict[str, Any]) -> list[Finding]:
    """Per-column drift of head against base: Wasserstein for numbers, PSI for categories."""
    findings = []
    for name, column in head["columns"].items():
        before = base["columns"].get(name)
        if before is None or before["kind"] != column["kind"]:
            findings.append(Finding("drift", name, True, None, None, "new column or new type; nothing to compare with"))
            continue
        if column["kind"] == "numeric":
            value, limit, statistic = wasserstein_std(before, column), rules["numeric_threshold"], "wasserstein_std"
        else:
            value, limit, statistic = psi(before["counts"], column["counts"]), rules["categorical_threshold"], "psi"
        findings.append(
            Finding(f"drift:{statistic}", name, value <= limit, round(value, 4), limit, f"{statistic} {value:.3f}")
        )
    return findings


def schema_findings(check: dict[str, Any]) -> list[Finding]:
    """The pipeline's schema violations as findings, one per column and rule."""
    findings = [
        Finding(f"schema:{v['rule']}", v["column"], False, v["case"], None, f"{v['split']} split breaks {v['rule']}")
        for v in check.get("violations", [])
    ]
    return findings or [Finding("schema", "", True, None, None, f"every column matches {SCHEMA_FILE}")]


def render(result: dict[str, Any]) -> str:
    """The data-check section of the report."""
    verdict = "passed" if result["passed"] else "failed"
    lines = [f"### Data check: {verdict}", ""]
    if result.get("error"):
        return "\n".join([*lines, md.text(result["error"], limit=2000)])
    failed = [f for f in result["findings"] if not f["passed"]]
    if failed:
        rows = [
            [md.code(f["rule"]), md.code(f["column"]) if f["column"] else "", md.text(f["message"])] for f in failed
        ]
        lines += [md.table(["rule", "column", "finding"], rows), ""]
    checked = len(result["findings"])
    lines.append(f"{checked - len(failed)} of {checked} checks passed on {result['rows']} rows.")
    drifted = [f for f in result["findings"] if f["rule"].startswith("drift:") and f["value"] is not None]
    if result["base"] is None:
        lines.append("No profile of the base branch's data, so drift was not measured.")
    elif result.get("base_source") == "reproduced":
        lines.append("The base commit holds no data profile, so CI reproduced it from the base's pipeline.")
    elif drifted:
        moved = [f for f in drifted if f["value"] > f["threshold"]]
        largest = max(drifted, key=lambda f: f["value"])
        if not moved:
            lines.append(
                "No column drifted beyond its threshold against the base branch "
                f"(largest: {md.code(largest['column'])}, {largest['rule'].split(':')[1]} {largest['value']})."
            )
        else:
            cells = [
                [md.code(f["column"]), md.code(f["rule"].split(":")[1]), f"{f['value']}", f"{f['threshold']}"]
                for f in sorted(moved, key=lambda f: -f["value"])
            ]
            lines += [
                "",
                "Columns that drifted against the base branch:",
                "",
                md.table(["column", "statistic", "value", "limit"], cells),
            ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Reproduce the data stages, then apply every rule; returns the machine-readable result."""
    if args.base_ref:
        # Results the pull request committed are believed only where they are the base branch's.
        trust.forget(set(trust.untrusted(args.base_ref)))
    if args.stage:
        done = subprocess.run(["dvc", "repro", args.stage], capture_output=True, text=True, check=False)
        sys.stdout.write(done.stdout + done.stderr)
        if done.returncode != 0:
            check = json.loads(Path(args.check).read_text(encoding="utf-8")) if Path(args.check).is_file() else {}
            # A failing stage either found violations (reported below) or never got to check: then any
            # report on disk is the committed one, about older data, and must not pass this change.
            if not check.get("violations"):
                tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
                return {"passed": False, "error": f"the data could not be prepared: {' '.join(tail)}", "rows": 0}
    if not Path(args.check).is_file() or not Path(args.profile).is_file():
        return {"passed": False, "error": f"{args.check} or {args.profile} is missing", "rows": 0}
    rules = settings(Path(args.params), args.base_ref)
    check = json.loads(Path(args.check).read_text(encoding="utf-8"))
    profile = json.loads(Path(args.profile).read_text(encoding="utf-8"))
    findings = schema_findings(check) + quality(profile, rules)
    source = baseline.resolve(args.base_ref, args.profile)
    base = source.show_json(args.profile)
    if base is not None:
        moved = drift(base, profile, rules["drift"])
        if not rules["drift"]["fail"]:
            moved = [Finding(**{**asdict(f), "passed": True}) for f in moved]
        findings += moved
    return {
        "passed": all(f.passed for f in findings),
        "rows": profile["rows"],
        "base": args.base_ref if base is not None else None,
        "base_source": source.source if base is not None else "",
        "findings": [asdict(f) for f in findings],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Check the data, write data_check.json and data_check.md, annotate failures; exit 1 when any rule fails."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.data_check", description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--check", default="reports/data_check.json", help="schema violations the pipeline wrote")
    parser.add_argument("--profile", default="reports/data_profile.json", help="data profile the pipeline wrote")
    parser.add_argument("--base-ref", default="", help="git revision whose profile is the drift baseline")
    parser.add_argument("--stage", default="validate", help="DVC stage to reproduce first ('' to skip)")
    parser.add_argument("--out-dir", default="reports/pr")
    args = parser.parse_args(argv)
    result = run(args)
    gha.save_result(args.out_dir, "data_check", result, render(result))
    if result.get("error"):
        gha.annotate("error", result["error"], title="data-check")
    for finding in result.get("findings", []):
        if not finding["passed"]:
            where = f"column {finding['column']!r}: " if finding["column"] else ""
            gha.annotate(
                "error", f"{where}{finding['rule']}: {finding['message']}", file=SCHEMA_FILE, title="data-check"
            )
    gha.set_output("passed", str(result["passed"]).lower())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
