"""data-check: schema, quality rules and drift against the base branch, from the pipeline's data reports."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import baseline, contract, gha, trust
from . import markdown as md

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
    """The data_check settings of the contract, from the base revision's params file when one is named.

    A pull request must not loosen the checks that judge it: its own settings take effect once merged.
    """
    return contract.load(params_file, base_ref)["data_check"]


def _levels(profile: dict[str, Any], column: dict[str, Any]) -> list[float]:
    """The probability levels of a column's quantiles; evenly spaced when the profile does not say."""
    levels = column.get("levels") or profile.get("quantile_levels")
    count = len(column["quantiles"])
    if isinstance(levels, list) and len(levels) == count:
        return [float(level) for level in levels]
    return [i / (count - 1) for i in range(count)] if count > 1 else [0.5]


def _quantile(levels: list[float], values: list[float], p: float) -> float:
    """The quantile at level p, interpolated linearly between the recorded levels."""
    if p <= levels[0]:
        return values[0]
    for i in range(1, len(levels)):
        if p <= levels[i]:
            l0, l1, v0, v1 = levels[i - 1], levels[i], values[i - 1], values[i]
            return v0 if l1 == l0 else v0 + (v1 - v0) * (p - l0) / (l1 - l0)
    return values[-1]


def wasserstein_std(
    base: dict[str, Any],
    head: dict[str, Any],
    base_levels: list[float] | None = None,
    head_levels: list[float] | None = None,
) -> float:
    """Wasserstein-1 distance of two distributions from their quantile functions, in base standard deviations.

    The two profiles may record different quantile levels (an owner can change them): both quantile
    functions are read on one grid of 21 levels.
    """
    base_levels = base_levels or _levels({}, base)
    head_levels = head_levels or _levels({}, head)
    grid = [i / 20 for i in range(21)]
    gaps = [
        abs(_quantile(base_levels, base["quantiles"], p) - _quantile(head_levels, head["quantiles"], p)) for p in grid
    ]
    return (sum(gaps) / len(gaps)) / (base["std"] or 1.0)


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
    """Minimum rows, missing values, duplicates, and label balance (a classifier's) or target spread (a regressor's)."""
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
    entry = profile["columns"].get(target, {})
    if entry.get("kind") == "numeric":
        findings.append(target_spread(profile, target, entry, rules))
        return findings
    counts = entry.get("counts", {})
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


def target_spread(profile: dict[str, Any], target: str, entry: dict[str, Any], rules: dict[str, Any]) -> Finding:
    """A regression's target must vary: enough distinct values, and a middle half that is not one value."""
    least = rules["min_target_values"]
    distinct = entry.get("distinct")
    levels = _levels(profile, entry) if entry.get("quantiles") else []
    middle = (
        _quantile(levels, entry["quantiles"], 0.75) - _quantile(levels, entry["quantiles"], 0.25) if levels else 0.0
    )
    if distinct is not None and distinct < least:
        passed, message = False, f"{distinct} distinct value(s); at least {least:g}"
    elif middle <= 0:
        passed, message = False, "the middle half of the rows share one value (interquartile range 0)"
    else:
        shown = "" if distinct is None else f"{distinct} distinct values, "
        passed, message = True, f"{shown}interquartile range {middle:.4g} (at least {least:g} values, a range above 0)"
    return Finding(
        "target_spread", target, passed, distinct if distinct is not None else round(middle, 6), least, message
    )


def drift(base: dict[str, Any], head: dict[str, Any], rules: dict[str, Any]) -> list[Finding]:
    """Per-column drift of head against base: Wasserstein for numbers, PSI for categories."""
    findings = []
    for name, column in head["columns"].items():
        before = base["columns"].get(name)
        if before is None or before["kind"] != column["kind"]:
            findings.append(Finding("drift", name, True, None, None, "new column or new type; nothing to compare with"))
            continue
        if column["kind"] == "numeric":
            if not before.get("quantiles") or not column.get("quantiles"):
                findings.append(
                    Finding("drift", name, True, None, None, "no quantiles on one side; nothing to compare")
                )
                continue
            distance = wasserstein_std(before, column, _levels(base, before), _levels(head, column))
            value, limit, statistic = distance, rules["numeric_threshold"], "wasserstein_std"
        else:
            value, limit, statistic = psi(before["counts"], column["counts"]), rules["categorical_threshold"], "psi"
        findings.append(
            Finding(f"drift:{statistic}", name, value <= limit, round(value, 4), limit, f"{statistic} {value:.3f}")
        )
    return findings


def schema_findings(check: dict[str, Any], schema_file: str) -> list[Finding]:
    """The pipeline's schema violations as findings, one per column and rule."""
    findings = [
        Finding(f"schema:{v['rule']}", v["column"], False, v["case"], None, f"{v['split']} split breaks {v['rule']}")
        for v in check.get("violations", [])
    ]
    return findings or [Finding("schema", "", True, None, None, f"every column matches {schema_file}")]


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
    if result.get("base_source") == "reproduced":
        lines.append("The base commit holds no data profile, so CI reproduced it from the base's pipeline.")
    if result["base"] is None:
        lines.append("No profile of the base branch's data, so drift was not measured.")
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


def read_document(path: Path, kind: str) -> dict[str, Any]:
    """A JSON file the pipeline wrote, refused with one sentence when unreadable or in a newer format."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise contract.ContractError(f"{path} cannot be read as JSON: {err}.") from None
    contract.check_format(document, kind, str(path))
    return document


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Reproduce the data stages, then apply every rule; returns the machine-readable result."""
    started_at = time.time()
    paths = contract.load(args.params)["paths"]
    check_file, profile_file = Path(args.check or paths["data_check"]), Path(args.profile or paths["data_profile"])
    unproduced = trust.unproduced([str(check_file), str(profile_file)])
    if unproduced:
        error = f"{unproduced[0]} is not written by any stage of dvc.yaml, so it is not the pipeline's check"
        return {"passed": False, "error": error, "rows": 0, "started_at": started_at}
    if args.base_ref:
        # Results the pull request committed are believed only where they are the base branch's.
        trust.forget(set(trust.untrusted(args.base_ref)))
    if args.stage:
        done = subprocess.run(["dvc", "repro", args.stage], capture_output=True, text=True, check=False)
        sys.stdout.write(done.stdout + done.stderr)
        if done.returncode != 0:
            check = read_document(check_file, "data_check") if check_file.is_file() else {}
            # A failing stage either found violations (reported below) or never got to check: then any
            # report on disk is the committed one, about older data, and must not pass this change.
            if not check.get("violations"):
                tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
                error = f"the data could not be prepared: {' '.join(tail)}"
                return {"passed": False, "error": error, "rows": 0, "started_at": started_at}
    if not check_file.is_file() or not profile_file.is_file():
        error = f"{check_file} or {profile_file} is missing"
        return {"passed": False, "error": error, "rows": 0, "started_at": started_at}
    rules = settings(Path(args.params), args.base_ref)
    check = read_document(check_file, "data_check")
    profile = read_document(profile_file, "data_profile")
    findings = schema_findings(check, paths["schema"]) + quality(profile, rules)
    source = baseline.resolve(args.base_ref, str(profile_file))
    base = source.show_json(str(profile_file))
    if base is not None:
        contract.check_format(base, "data_profile", f"the base branch's {profile_file}")
        moved = drift(base, profile, rules["drift"])
        if not rules["drift"]["fail"]:
            moved = [Finding(**{**asdict(f), "passed": True}) for f in moved]
        findings += moved
    return {
        "format": contract.FORMATS["data_check"],
        # The report job's clock starts here: the first of the kit's steps.
        "started_at": started_at,
        "passed": all(f.passed for f in findings),
        "rows": profile["rows"],
        "base": args.base_ref if base is not None else None,
        "base_source": source.source if base is not None else "",
        "findings": [asdict(f) for f in findings],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Check the data, write data_check.json and data_check.md, annotate failures; exit 1 when any rule fails."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.data_check", description=__doc__)
    parser.add_argument("--params", default=contract.PARAMS_FILE)
    parser.add_argument("--check", default="", help="schema violations the pipeline wrote (default: the contract's)")
    parser.add_argument("--profile", default="", help="data profile the pipeline wrote (default: the contract's)")
    parser.add_argument("--base-ref", default="", help="git revision whose profile is the drift baseline")
    parser.add_argument("--stage", default="validate", help="DVC stage to reproduce first ('' to skip)")
    parser.add_argument("--out-dir", default="reports/pr")
    args = parser.parse_args(argv)
    try:
        result = run(args)
        schema_file = contract.load(args.params)["paths"]["schema"]
    except contract.ContractError as err:
        result, schema_file = {"passed": False, "error": str(err), "rows": 0}, None
    gha.save_result(args.out_dir, "data_check", result, render(result))
    if result.get("error"):
        gha.annotate("error", result["error"], title="data-check")
    for finding in result.get("findings", []):
        if not finding["passed"]:
            where = f"column {finding['column']!r}: " if finding["column"] else ""
            gha.annotate(
                "error", f"{where}{finding['rule']}: {finding['message']}", file=schema_file, title="data-check"
            )
    gha.set_output("passed", str(result["passed"]).lower())
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
