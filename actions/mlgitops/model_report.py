"""model-report: compare the pull request's results with the base branch's, decide the gate, write the report."""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from . import gha, gitrefs
from . import markdown as md

DEFAULTS: dict[str, Any] = {"tolerance": {"default": 0.01}, "lower_is_better": ["log_loss"], "max_majority_share": 0.95}
TOP_FEATURES = 10


@dataclass
class MetricRow:
    """One metric on both branches and whether its change is acceptable."""

    name: str
    base: float | None
    head: float | None
    delta: float | None
    tolerance: float
    higher_is_better: bool
    verdict: str  # "better", "same", "worse", "regression", "new", "removed"


def settings(params: dict[str, Any]) -> dict[str, Any]:
    """The report settings from params.yaml over the defaults."""
    given = params.get("report") or {}
    return {**DEFAULTS, **given, "tolerance": {**DEFAULTS["tolerance"], **(given.get("tolerance") or {})}}


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys, the way `dvc params diff` names them."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def params_diff(base: dict[str, Any] | None, head: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(name, base value, head value) for every parameter that differs; the report's own settings excluded."""
    if base is None:
        return []
    old, new = flatten(base), flatten(head)
    names = sorted(n for n in set(old) | set(new) if not n.startswith(("report.", "data_check.")))
    return [(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)]


def compare(base: dict[str, float] | None, head: dict[str, float], rules: dict[str, Any]) -> list[MetricRow]:
    """Per metric: the change and its verdict against the tolerance, in the metric's own direction."""
    rows = []
    for name in sorted(set(head) | set(base or {})):
        higher = name not in rules["lower_is_better"]
        tolerance = float(rules["tolerance"].get(name, rules["tolerance"]["default"]))
        old, new = (base or {}).get(name), head.get(name)
        if old is None or new is None:
            rows.append(MetricRow(name, old, new, None, tolerance, higher, "new" if old is None else "removed"))
            continue
        delta = new - old
        gain = delta if higher else -delta
        if gain < -tolerance:
            verdict = "regression"
        elif gain < -1e-12:
            verdict = "worse"
        elif gain > 1e-12:
            verdict = "better"
        else:
            verdict = "same"
        rows.append(MetricRow(name, old, new, round(delta, 6), tolerance, higher, verdict))
    return rows


def prediction_guard(confusion_csv: Path, max_share: float) -> tuple[bool, str, dict[str, float]]:
    """Fail a model that predicts one class for (nearly) everyone when the data does not look like that."""
    with confusion_csv.open(newline="", encoding="utf-8") as handle:
        pairs = [(row["actual"], row["predicted"]) for row in csv.DictReader(handle)]
    if not pairs:
        return False, "the test split is empty", {}
    predicted = Counter(p for _, p in pairs)
    actual = Counter(a for a, _ in pairs)
    shares = {label: round(count / len(pairs), 4) for label, count in predicted.most_common()}
    top, top_share = next(iter(shares.items()))
    actual_share = actual.get(top, 0) / len(pairs)
    degenerate = (len(predicted) == 1 and len(actual) > 1) or (top_share > max_share and actual_share <= max_share)
    if degenerate:
        return (
            False,
            f"the model predicts {top!r} for {top_share:.0%} of the test set, where it is {actual_share:.0%} of labels",
            shares,
        )
    return (
        True,
        f"the most predicted class, {top!r}, is {top_share:.0%} of predictions ({actual_share:.0%} of labels)",
        shares,
    )


def declared_by(feature: str, schema_file: Path) -> str:
    """Who last changed the line of data/schema.yaml that declares the feature, from git blame."""
    if not schema_file.is_file():
        return ""
    wanted = {f"  {feature}:", f"  '{feature}':", f'  "{feature}":'}
    for number, line in enumerate(schema_file.read_text(encoding="utf-8").splitlines(), start=1):
        if line.rstrip() in wanted:
            blame = subprocess.run(
                ["git", "blame", "--porcelain", "-L", f"{number},{number}", "--", str(schema_file)],
                capture_output=True,
                text=True,
                check=False,
            )
            fields = dict(
                line.split(" ", 1) for line in blame.stdout.splitlines() if line.startswith(("author ", "author-time "))
            )
            return fields.get("author", "")
    return ""


def mermaid_label(value: str) -> str:
    """A label that cannot break out of a Mermaid string."""
    return " ".join(str(value).replace('"', "'").replace("`", "'").split())[:40]


def metrics_chart(rows: list[MetricRow]) -> str:
    """A bar chart of base and head for metrics on a 0-1 scale; GitHub renders Mermaid inside the comment."""
    shown = [
        r
        for r in rows
        if r.base is not None and r.head is not None and min(r.base, r.head) >= 0 and max(r.base, r.head) <= 1
    ]
    if not shown:
        return ""
    names = ", ".join(f'"{mermaid_label(r.name)}"' for r in shown)
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            '    title "Base branch (first bar) and this pull request (second bar)"',
            f"    x-axis [{names}]",
            '    y-axis "score" 0 --> 1',
            f"    bar [{', '.join(str(r.base) for r in shown)}]",
            f"    bar [{', '.join(str(r.head) for r in shown)}]",
            "```",
        ]
    )


def feature_board(importance_csv: Path, schema_file: Path) -> str:
    """The top features by permutation importance, charted, with who last changed each one's declaration."""
    if not importance_csv.is_file():
        return ""
    with importance_csv.open(newline="", encoding="utf-8") as handle:
        top = [(row["feature"], float(row["importance"])) for row in csv.DictReader(handle)][:TOP_FEATURES]
    if not top:
        return ""
    labels = ", ".join('"' + mermaid_label(name) + '"' for name, _ in top)
    chart = [
        "```mermaid",
        "xychart-beta horizontal",
        '    title "Permutation importance (test split)"',
        f"    x-axis [{labels}]",
        f"    bar [{', '.join(str(round(value, 4)) for _, value in top)}]",
        "```",
    ]
    rows = [[md.code(name), f"{value:.4f}", md.text(declared_by(name, schema_file)) or "—"] for name, value in top]
    return "\n".join(["### Features", "", *chart, "", md.table(["feature", "importance", "declared by"], rows)])


def verdict_cell(row: MetricRow) -> str:
    return {
        "regression": "❌ regression",
        "worse": "⚠️ worse, within tolerance",
        "better": "✅ better",
        "same": "✅ same",
        "new": "new",
        "removed": "removed",
    }[row.verdict]


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def summary_sentence(primary: str, rows: list[MetricRow], data_ok: bool | None, changes: list, baseline: bool) -> str:
    """A plain-language paragraph for reviewers who are not ML engineers."""
    parts = []
    main = next((r for r in rows if r.name == primary), None)
    if not baseline:
        parts.append(
            "The base branch has no results to compare with yet, so this report shows this branch's numbers only."
        )
    elif main is not None and main.delta is not None:
        direction = {
            "better": "improves",
            "same": "does not change",
            "worse": "slightly worsens",
            "regression": "worsens",
        }
        parts.append(
            f"The main metric, {primary}, {direction.get(main.verdict, 'changes')} "
            f"({fmt(main.base)} on the base branch, {fmt(main.head)} here)."
        )
    regressions = [r.name for r in rows if r.verdict == "regression"]
    if regressions:
        parts.append(
            f"{len(regressions)} metric(s) got worse by more than the allowed tolerance: {', '.join(regressions)}."
        )
    if data_ok is not None:
        parts.append("The data passed every check." if data_ok else "The data failed at least one check (see below).")
    parts.append(f"{len(changes)} parameter(s) changed." if changes else "No parameter changed.")
    return " ".join(parts)


def build(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Assemble the report markdown and the machine-readable gate."""
    params = yaml.safe_load(Path(args.params).read_text(encoding="utf-8")) or {}
    rules = settings(params)
    primary = (params.get("evaluate") or {}).get("metric", "")
    sections = Path(args.sections)
    data = json.loads((sections / "data_check.json").read_text()) if (sections / "data_check.json").is_file() else None
    train = json.loads((sections / "train.json").read_text()) if (sections / "train.json").is_file() else None
    head_metrics = json.loads(Path(args.metrics).read_text(encoding="utf-8")) if Path(args.metrics).is_file() else {}
    base_metrics = gitrefs.show_json(args.base_ref, args.metrics) if args.base_ref else None
    base_params_text = gitrefs.show(args.base_ref, args.params) if args.base_ref else None
    base_params = yaml.safe_load(base_params_text) if base_params_text else None
    rows = compare(base_metrics, head_metrics, rules)
    changes = params_diff(base_params, params)
    reasons = []
    if data is not None and not data["passed"]:
        reasons.append("the data check failed")
    if train is not None and not train.get("ok", True):
        reasons.append("the pipeline failed")
    if not head_metrics:
        reasons.append(f"{args.metrics} is missing")
    for name in ("data_check", "train") if args.require_sections else ():
        if not (sections / f"{name}.json").is_file():
            reasons.append(f"the {name.replace('_', ' ')} step left no result")
    if head_metrics and primary and primary not in head_metrics:
        reasons.append(f"the main metric {primary} is missing from {args.metrics}")
    reasons += [f"{r.name} is no longer reported" for r in rows if r.verdict == "removed"]
    reasons += [
        f"{r.name} regressed by {abs(r.delta or 0):.4f} (tolerance {r.tolerance})"
        for r in rows
        if r.verdict == "regression"
    ]
    guard_ok, guard_text, shares = (True, "", {})
    if Path(args.confusion).is_file():
        guard_ok, guard_text, shares = prediction_guard(Path(args.confusion), float(rules["max_majority_share"]))
        if not guard_ok:
            reasons.append(guard_text)
    passed = not reasons
    title = f"## {'✅' if passed else '❌'} Model report"
    if args.head_label:
        title += f" for {md.code(args.head_label, limit=80)}"
    lines = [
        title,
        "",
        summary_sentence(primary, rows, None if data is None else data["passed"], changes, base_metrics is not None),
        "",
    ]
    if passed:
        lines.append("**Gate: passed.** No metric regressed beyond its tolerance and the data checks passed.")
    else:
        lines += ["**Gate: failed.**", "", *[f"- {md.text(reason, limit=300)}" for reason in reasons]]
    lines += ["", "### Metrics", ""]
    if base_metrics is None:
        lines += [f"No `{md.text(args.metrics)}` on the base branch: this is the first result to compare with.", ""]
    metric_rows = [
        [
            md.code(r.name) + (" (main metric)" if r.name == primary else ""),
            fmt(r.base),
            fmt(r.head),
            "—" if r.delta is None else f"{r.delta:+.4f}",
            verdict_cell(r),
        ]
        for r in rows
    ]
    lines += [md.table(["metric", "base", "this PR", "change", "verdict"], metric_rows), ""]
    chart = metrics_chart(rows)
    if chart:
        lines += [chart, ""]
    lines += ["### Parameters", ""]
    if changes:
        cells = [[md.code(n), md.code(json.dumps(a)), md.code(json.dumps(b))] for n, a, b in changes]
        lines += [md.table(["parameter", "base", "this PR"], cells), ""]
    else:
        lines += ["No parameter changed." if base_params is not None else "No params.yaml on the base branch.", ""]
    if guard_text:
        lines += ["### Predictions", "", f"{'✅' if guard_ok else '❌'} {md.text(guard_text, limit=300)}", ""]
        lines += [
            md.table(["class", "share of predictions"], [[md.code(k), f"{v:.1%}"] for k, v in shares.items()]),
            "",
        ]
    board = feature_board(Path(args.importance), Path(args.schema))
    if board:
        lines += [board, ""]
    for name in ("data_check.md", "train.md"):
        if (sections / name).is_file():
            lines += [(sections / name).read_text(encoding="utf-8").strip(), ""]
    gate = {
        "passed": passed,
        "reasons": reasons,
        "metrics": [asdict(r) for r in rows],
        "params": [{"name": n, "base": a, "head": b} for n, a, b in changes],
        "baseline": base_metrics is not None,
    }
    return "\n".join(lines).rstrip() + "\n", gate


def main(argv: Sequence[str] | None = None) -> int:
    """Write model_report.md and model_report.json and the job summary; exit 1 when the gate fails."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.model_report", description=__doc__)
    parser.add_argument("--base-ref", default="", help="git revision of the base branch's results")
    parser.add_argument(
        "--head-label", default="", help="what this report is about, e.g. the branch name (shown escaped)"
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--metrics", default="metrics.json")
    parser.add_argument("--confusion", default="plots/confusion.csv")
    parser.add_argument("--importance", default="plots/importance.csv")
    parser.add_argument("--schema", default="data/schema.yaml")
    parser.add_argument("--sections", default="reports/pr", help="folder with data_check.* and train.* of this run")
    parser.add_argument("--out-dir", default="reports/pr")
    parser.add_argument("--require-sections", action="store_true", help="fail the gate if a step left no result")
    parser.add_argument("--pull-request", default="", help="number of the pull request, saved for the comment workflow")
    parser.add_argument("--head-sha", default="", help="commit the report is about, saved for the comment workflow")
    args = parser.parse_args(argv)
    report, gate = build(args)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.pull_request:
        # Read later, as untrusted data, by the workflow that posts the comment with a write token.
        target = {"number": args.pull_request, "head_sha": args.head_sha}
        (out / "pull_request.json").write_text(json.dumps(target) + "\n", encoding="utf-8")
    (out / "model_report.md").write_text(report, encoding="utf-8")
    (out / "model_report.json").write_text(json.dumps(gate, indent=2) + "\n", encoding="utf-8")
    gha.add_summary(report)
    gha.set_output("passed", str(gate["passed"]).lower())
    gha.set_output("report", str(out / "model_report.md"))
    for reason in gate["reasons"]:
        gha.annotate("error", reason, title="model-report gate")
    return 0 if gate["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
