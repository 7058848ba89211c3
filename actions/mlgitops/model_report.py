"""model-report: compare the pull request's results with the base branch's, decide the gate, write the report."""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from . import baseline, contract, gha, gitrefs, trust
from . import markdown as md

TOP_FEATURES = 10
# Bars of the residuals' histogram in a regression's report.
RESIDUAL_BINS = 10
# Sections of params.yaml that configure the gate rather than the pipeline: read from the base branch.
GATE_SETTINGS = (f"{contract.SECTION}.", "report.", "data_check.")
# The kit's own code inside a project with vendored actions: a pull request that changes it runs its own gate.
KIT_PATHS = (".github/actions/",)


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
    """The report settings of the contract in parsed params.yaml, over the kit's defaults."""
    return contract.from_params(params)["report"]


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys, the way `dvc params diff` names them."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
    return flat


def params_diff(
    base: dict[str, Any] | None, head: dict[str, Any], gate_settings: bool = False
) -> list[tuple[str, Any, Any]]:
    """(name, base value, head value) for every pipeline parameter that differs, or every gate setting."""
    if base is None:
        return []
    old, new = flatten(base), flatten(head)
    names = sorted(n for n in set(old) | set(new) if n.startswith(GATE_SETTINGS) == gate_settings)
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
    return majority_guard(pairs, max_share, "the test set")


def majority_guard(pairs: Sequence[tuple[str, str]], max_share: float, rows: str) -> tuple[bool, str, dict[str, float]]:
    """The prediction guard on (actual, predicted) pairs of the named rows: its verdict, sentence and class shares."""
    if not pairs:
        return False, f"{rows} is empty", {}
    predicted = Counter(p for _, p in pairs)
    actual = Counter(a for a, _ in pairs)
    shares = {label: round(count / len(pairs), 4) for label, count in predicted.most_common()}
    top, top_share = next(iter(shares.items()))
    actual_share = actual.get(top, 0) / len(pairs)
    degenerate = (len(predicted) == 1 and len(actual) > 1) or (top_share > max_share and actual_share <= max_share)
    if degenerate:
        return (
            False,
            f"the model predicts {top!r} for {top_share:.0%} of {rows}, where it is {actual_share:.0%} of labels",
            shares,
        )
    return (
        True,
        f"the most predicted class, {top!r}, is {top_share:.0%} of predictions ({actual_share:.0%} of labels)",
        shares,
    )


def read_predictions(predictions_csv: Path) -> list[tuple[float, float]]:
    """A regression's (actual, predicted) test rows, as the evaluate stage wrote them."""
    with predictions_csv.open(newline="", encoding="utf-8") as handle:
        try:
            return [(float(row["actual"]), float(row["predicted"])) for row in csv.DictReader(handle)]
        except (KeyError, TypeError, ValueError):
            raise contract.ContractError(
                f"{predictions_csv} must hold the numeric columns actual and predicted, one row per test row."
            ) from None


def spread_guard(pairs: Sequence[tuple[float, float]], min_ratio: float, rows: str) -> tuple[bool, str, dict[str, Any]]:
    """Fail a regressor whose answers barely vary (near one number for everyone) while the truth does."""
    if len(pairs) < 2:
        return False, f"{rows} has fewer than two rows", {}
    actual, predicted = [a for a, _ in pairs], [p for _, p in pairs]
    spread = {
        name: (statistics.pstdev(values), statistics.fmean(values))
        for name, values in (("actual", actual), ("predicted", predicted))
    }
    truth, answers = spread["actual"][0], spread["predicted"][0]
    ratio = answers / truth if truth > 0 else 0.0
    details = {
        "ratio": round(ratio, 4),
        "rows": [
            ["mean", spread["actual"][1], spread["predicted"][1]],
            ["standard deviation", truth, answers],
            ["lowest", min(actual), min(predicted)],
            ["highest", max(actual), max(predicted)],
        ],
    }
    if len(set(predicted)) == 1 or ratio < min_ratio:
        return (
            False,
            f"the model's predictions on {rows} spread {ratio:.0%} as wide as the truth (standard deviation "
            f"{answers:.4g} against {truth:.4g}): nearly one number for everyone",
            details,
        )
    return (
        True,
        f"the predictions spread {ratio:.0%} as wide as the truth "
        f"(standard deviation {answers:.4g} against {truth:.4g})",
        details,
    )


def residual_chart(pairs: Sequence[tuple[float, float]]) -> str:
    """The residuals (actual - predicted) of the test rows as a histogram GitHub renders (Mermaid)."""
    residuals = [a - p for a, p in pairs]
    if len(residuals) < 2 or not all(math.isfinite(r) for r in residuals):
        return ""
    low, high = min(residuals), max(residuals)
    width = (high - low) / RESIDUAL_BINS or 1.0
    counts = [0] * RESIDUAL_BINS
    for residual in residuals:
        counts[min(int((residual - low) / width), RESIDUAL_BINS - 1)] += 1
    labels = ", ".join(f'"{low + (i + 0.5) * width:.3g}"' for i in range(RESIDUAL_BINS))
    return "\n".join(
        [
            "```mermaid",
            "xychart-beta",
            '    title "Residuals, actual - predicted (test split): rows per bin"',
            f"    x-axis [{labels}]",
            f'    y-axis "rows" 0 --> {max(counts)}',
            f"    bar [{', '.join(map(str, counts))}]",
            "```",
        ]
    )


def declaration_line(feature: str, schema_file: Path) -> int | None:
    """The line of the schema file whose key declares the feature under `columns`, read from the YAML itself."""
    try:
        root = yaml.compose(schema_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if not isinstance(root, yaml.MappingNode):
        return None
    columns = next((value for key, value in root.value if key.value == "columns"), None)
    if not isinstance(columns, yaml.MappingNode):
        return None
    return next((key.start_mark.line + 1 for key, _ in columns.value if key.value == feature), None)


def declared_by(feature: str, schema_file: Path) -> str:
    """Who last changed the line of the schema file that declares the feature, from git blame."""
    number = declaration_line(feature, schema_file) if schema_file.is_file() else None
    if number is None:
        return ""
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


def mermaid_label(value: str) -> str:
    """A label that cannot break out of a Mermaid string."""
    return " ".join(str(value).replace('"', "'").replace("`", "'").split())[:40]


def metrics_chart(rows: list[MetricRow]) -> str:
    """Head as bars and base as a line, for metrics on a 0-1 scale; GitHub renders Mermaid inside the comment.

    Mermaid draws two bar series of one xychart on top of each other, so the base is a line the bars are read
    against, not a second bar that the first would hide.
    """
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
            '    title "This pull request (bars) against the base branch (line)"',
            f"    x-axis [{names}]",
            '    y-axis "score" 0 --> 1',
            f"    bar [{', '.join(str(r.head) for r in shown)}]",
            f"    line [{', '.join(str(r.base) for r in shown)}]",
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


@dataclass
class Inputs:
    """Everything the report is made from: this run's results and sections, and the base branch's."""

    params: dict[str, Any]
    primary: str
    rules: dict[str, Any]
    budget: dict[str, Any]
    head_metrics: dict[str, float]
    task: str
    base: baseline.Baseline
    base_metrics: dict[str, float] | None
    base_params: dict[str, Any] | None
    changes: list[tuple[str, Any, Any]]
    setting_changes: list[tuple[str, Any, Any]]
    kit_changes: list[str]
    sections: Path
    data: dict[str, Any] | None
    train: dict[str, Any] | None


@dataclass
class Decision:
    """The gate: the metric rows, the prediction guard, and every reason the gate fails."""

    rows: list[MetricRow]
    reasons: list[str]
    guard_ok: bool
    guard_text: str
    shares: dict[str, float]
    # A regression's guard: the spread ratio and a table of the truth's and the predictions' statistics.
    spread: dict[str, Any] | None = None
    residuals: str = ""

    @property
    def passed(self) -> bool:
        return not self.reasons


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def collect(args: argparse.Namespace) -> Inputs:
    """Read this run's results and the base branch's; the gate's settings come from the base branch."""
    params = yaml.safe_load(Path(args.params).read_text(encoding="utf-8")) or {}
    paths = contract.from_params(params)["paths"]
    for name in ("metrics", "confusion", "predictions", "importance", "schema"):
        setattr(args, name, getattr(args, name) or paths[name])
    base_params_text = gitrefs.show(args.base_ref, args.params) if args.base_ref else None
    base_params = (yaml.safe_load(base_params_text) or {}) if base_params_text else None
    # A pull request must not loosen its own gate: its settings take effect once merged.
    gate = contract.from_params(params if not args.base_ref else base_params or {})
    # The task decides which prediction guard applies: a pull request must not switch it to escape the guard.
    task = contract.task_of(base_params if base_params else params)
    rules = gate["report"]
    base = baseline.resolve(args.base_ref, args.metrics)
    sections = Path(args.sections)
    return Inputs(
        params=params,
        primary=(params.get("evaluate") or {}).get("metric", ""),
        rules=rules,
        budget=gate["budget"],
        head_metrics=read_json(Path(args.metrics)) or {},
        task=task,
        base=base,
        base_metrics=base.show_json(args.metrics),
        base_params=base_params,
        changes=params_diff(base_params, params),
        setting_changes=params_diff(base_params, params, gate_settings=True),
        kit_changes=gitrefs.changed_files(args.base_ref, KIT_PATHS) if args.base_ref else [],
        sections=sections,
        data=read_json(sections / "data_check.json"),
        train=read_json(sections / "train.json"),
    )


def report_minutes(inputs: Inputs) -> float | None:
    """Minutes since the first of the kit's steps started (the data check), or None when it left no time."""
    started = (inputs.data or {}).get("started_at")
    return (time.time() - started) / 60 if isinstance(started, int | float) else None


def cost_line(inputs: Inputs) -> str:
    """Training time and the report job's minutes against their budgets."""
    parts = []
    train = inputs.train or {}
    if "seconds" in train:
        parts.append(f"training {train['seconds']} s of {float(inputs.budget['pipeline_minutes']):g} min")
    minutes = report_minutes(inputs)
    if minutes is not None:
        parts.append(f"this job {minutes:.1f} min of {float(inputs.budget['report_minutes']):g} min")
    return f"**Cost:** {'; '.join(parts)} (budgets in `mlgitops.budget`)." if parts else ""


def decide(inputs: Inputs, args: argparse.Namespace) -> Decision:
    """Apply the gate to the collected results."""
    rows = compare(inputs.base_metrics, inputs.head_metrics, inputs.rules)
    reasons = []
    if inputs.data is not None and not inputs.data["passed"]:
        reasons.append("the data check failed")
    if inputs.train is not None and not inputs.train.get("ok", True):
        reasons.append(inputs.train["error"] if inputs.train.get("over_budget") else "the pipeline failed")
    minutes = report_minutes(inputs)
    budget = float(inputs.budget["report_minutes"])
    if minutes is not None and minutes > budget:
        reasons.append(
            f"the report job took {minutes:.1f} minutes from the data check to the gate, over its budget of "
            f"{budget:g} minutes (mlgitops.budget.report_minutes on the base branch)"
        )
    reasons += [m["sentence"] for m in (inputs.train or {}).get("mismatches", [])]
    # The contract names where results are; only files the pipeline writes (and CI re-ran) count.
    rows_file = args.predictions if inputs.task == "regression" else args.confusion
    reasons += [
        f"{path} is not written by any stage of dvc.yaml, so its numbers are not the pipeline's"
        for path in trust.unproduced([args.metrics, rows_file])
    ]
    if not inputs.head_metrics:
        reasons.append(f"{args.metrics} is missing")
    for name in ("data_check", "train") if args.require_sections else ():
        if not (inputs.sections / f"{name}.json").is_file():
            reasons.append(f"the {name.replace('_', ' ')} step left no result")
    if inputs.head_metrics and inputs.primary and inputs.primary not in inputs.head_metrics:
        reasons.append(f"the main metric {inputs.primary} is missing from {args.metrics}")
    reasons += [f"{r.name} is no longer reported" for r in rows if r.verdict == "removed"]
    reasons += [
        f"{r.name} regressed by {abs(r.delta or 0):.4f} (tolerance {r.tolerance})"
        for r in rows
        if r.verdict == "regression"
    ]
    guard_ok, guard_text, shares = (True, "", {})
    if inputs.task == "regression":
        if not Path(rows_file).is_file():
            reasons.append(f"{rows_file} is missing, so the predictions cannot be checked")
            return Decision(rows, reasons, False, "", {})
        pairs = read_predictions(Path(rows_file))
        guard_ok, guard_text, spread = spread_guard(pairs, float(inputs.rules["min_spread_ratio"]), "the test set")
        if not guard_ok:
            reasons.append(guard_text)
        return Decision(rows, reasons, guard_ok, guard_text, {}, spread, residual_chart(pairs))
    if Path(args.confusion).is_file():
        guard_ok, guard_text, shares = prediction_guard(Path(args.confusion), float(inputs.rules["max_majority_share"]))
        if not guard_ok:
            reasons.append(guard_text)
    return Decision(rows, reasons, guard_ok, guard_text, shares)


def render(inputs: Inputs, decision: Decision, args: argparse.Namespace) -> str:
    """The report's markdown."""
    title = f"## {'✅' if decision.passed else '❌'} Model report"
    if args.head_label:
        title += f" for {md.code(args.head_label, limit=80)}"
    data_ok = None if inputs.data is None else inputs.data["passed"]
    summary = summary_sentence(inputs.primary, decision.rows, data_ok, inputs.changes, inputs.base_metrics is not None)
    lines = [title, "", summary, ""]
    if decision.passed:
        lines.append("**Gate: passed.** No metric regressed beyond its tolerance and the data checks passed.")
    else:
        lines += ["**Gate: failed.**", "", *[f"- {md.text(reason, limit=400)}" for reason in decision.reasons]]
    cost = cost_line(inputs)
    if cost:
        lines += ["", cost]
    lines += ["", "### Metrics", ""]
    if inputs.base_metrics is None:
        if inputs.base.error:
            lines += [f"The base branch's results could not be reproduced: {md.text(inputs.base.error, limit=400)}", ""]
        lines += [f"No `{md.text(args.metrics)}` on the base branch: this is the first result to compare with.", ""]
    elif inputs.base.source == "reproduced":
        lines += ["The base commit holds no results, so CI reproduced them from its pipeline.", ""]
    metric_rows = [
        [
            md.code(r.name) + (" (main metric)" if r.name == inputs.primary else ""),
            fmt(r.base),
            fmt(r.head),
            "—" if r.delta is None else f"{r.delta:+.4f}",
            verdict_cell(r),
        ]
        for r in decision.rows
    ]
    lines += [md.table(["metric", inputs.base.label, "this PR", "change", "verdict"], metric_rows), ""]
    chart = metrics_chart(decision.rows)
    if chart:
        lines += [chart, ""]
    lines += ["### Parameters", ""]
    if inputs.changes:
        cells = [[md.code(n), md.code(json.dumps(a)), md.code(json.dumps(b))] for n, a, b in inputs.changes]
        lines += [md.table(["parameter", "base", "this PR"], cells), ""]
    else:
        lines += [
            "No parameter changed." if inputs.base_params is not None else "No params.yaml on the base branch.",
            "",
        ]
    if inputs.setting_changes:
        cells = [[md.code(n), md.code(json.dumps(a)), md.code(json.dumps(b))] for n, a, b in inputs.setting_changes]
        lines += [
            "This pull request changes the gate's own settings. This report applies the base branch's; "
            "the new ones take effect after merge:",
            "",
            md.table(["setting", "base (applied)", "this PR"], cells),
            "",
        ]
    if inputs.kit_changes:
        shown = ", ".join(md.code(path) for path in inputs.kit_changes[:5])
        more = f" and {len(inputs.kit_changes) - 5} more" if len(inputs.kit_changes) > 5 else ""
        lines += [
            f"⚠️ This pull request changes the kit's own actions ({shown}{more}): the checks above ran "
            "the changed code, so review those files before trusting this report.",
            "",
        ]
    if decision.guard_text:
        mark = "✅" if decision.guard_ok else "❌"
        lines += ["### Predictions", "", f"{mark} {md.text(decision.guard_text, limit=300)}", ""]
        if decision.spread is not None:
            cells = [[name, f"{truth:.4g}", f"{answer:.4g}"] for name, truth, answer in decision.spread["rows"]]
            lines += [md.table(["test split", "actual", "predicted"], cells), ""]
            if decision.residuals:
                lines += [decision.residuals, ""]
        else:
            shares = [[md.code(k), f"{v:.1%}"] for k, v in decision.shares.items()]
            lines += [md.table(["class", "share of predictions"], shares), ""]
    board = feature_board(Path(args.importance), Path(args.schema))
    if board:
        lines += [board, ""]
    for name in ("data_check.md", "train.md"):
        if (inputs.sections / name).is_file():
            lines += [(inputs.sections / name).read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def build(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Assemble the report markdown and the machine-readable gate."""
    inputs = collect(args)
    decision = decide(inputs, args)
    gate = {
        "passed": decision.passed,
        "reasons": decision.reasons,
        "metrics": [asdict(r) for r in decision.rows],
        "params": [{"name": n, "base": a, "head": b} for n, a, b in inputs.changes],
        "settings": [{"name": n, "base": a, "head": b} for n, a, b in inputs.setting_changes],
        "baseline": inputs.base_metrics is not None,
        "baseline_source": inputs.base.source if inputs.base_metrics is not None else "",
    }
    return render(inputs, decision, args), gate


def main(argv: Sequence[str] | None = None) -> int:
    """Write model_report.md and model_report.json and the job summary; exit 1 when the gate fails."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.model_report", description=__doc__)
    parser.add_argument("--base-ref", default="", help="git revision of the base branch's results")
    parser.add_argument(
        "--head-label", default="", help="what this report is about, e.g. the branch name (shown escaped)"
    )
    parser.add_argument("--params", default=contract.PARAMS_FILE)
    parser.add_argument("--metrics", default="", help="default: the contract's path")
    parser.add_argument("--confusion", default="", help="default: the contract's path (classification)")
    parser.add_argument("--predictions", default="", help="default: the contract's path (regression)")
    parser.add_argument("--importance", default="", help="default: the contract's path")
    parser.add_argument("--schema", default="", help="default: the contract's path")
    parser.add_argument("--sections", default="reports/pr", help="folder with data_check.* and train.* of this run")
    parser.add_argument("--out-dir", default="reports/pr")
    parser.add_argument("--require-sections", action="store_true", help="fail the gate if a step left no result")
    parser.add_argument("--pull-request", default="", help="number of the pull request, saved for the comment workflow")
    parser.add_argument("--head-sha", default="", help="commit the report is about, saved for the comment workflow")
    args = parser.parse_args(argv)
    try:
        report, gate = build(args)
    except contract.ContractError as err:
        gha.annotate("error", str(err), title="model-report gate")
        return 1
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
