"""monitor: judge each environment's live model on its recent traffic, and keep the evidence in one sticky issue.

A model can be up and wrong. For every environment that serves a release, the monitor reads a window of
recent traffic (the served model's prediction log and `/metrics` on the `local` target; Prometheus on
`kubernetes`) and checks it: how many predictions it saw (too few is "no evidence", never "healthy"),
the share of the commonest answer (one answer for nearly everyone fails however healthy the service
looks), the shift of the answers against the release's reference set, each input feature against the
training data's profile (the data check's drift statistics), the 5xx rate and the 95th percentile latency.
The verdict goes to the job summary and to one issue per environment ("Model monitor: production"),
opened when the environment fails, updated on every run and closed once it is healthy again. The issue
keeps the monitor's memory between runs in a hidden JSON block: consecutive failing windows, the last
verdict and a snapshot of the counters. After `rollback_after` failing windows in a row the monitor asks
for the Rollback workflow of that environment (`dispatch`, a job of its own with `actions: write`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import re
import sys
import urllib.parse
import urllib.request
from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import contract, data_check, gha, state
from . import markdown as md
from .github_api import GitHub, GitHubError

# The served model's monitor (service.py logs through `bentoml.monitor(MONITOR_NAME)`).
MONITOR_NAME = "predictions"
LABEL = "model-monitor"
TITLE = "Model monitor: {environment}"
MARKER = "<!-- mlgitops-monitor: {environment} -->"
STATE = re.compile(r"<!-- mlgitops-monitor-state (\{.*?\}) -->", re.DOTALL)
STATE_FORMAT = 1
PASS, FAIL, NO_EVIDENCE = "pass", "fail", "no evidence"
HEALTHY, FAILING = "healthy", "failing"
ICONS = {PASS: "✅", FAIL: "❌", NO_EVIDENCE: "⚪", HEALTHY: "✅", FAILING: "❌"}
# The histogram BentoML keeps of each request's duration, and its request counter.
DURATION = "bentoml_service_request_duration_seconds"
REQUESTS = "bentoml_service_request_total"
PREDICT = "/predict"
SAMPLE_LINE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
LABEL_PAIR = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
SHOWN_FEATURES = 10


class MonitorError(RuntimeError):
    """The monitor cannot judge an environment; the message is one sentence for the user."""


@dataclass
class Traffic:
    """What an environment answered in the window: its predictions and inputs, and its request counters."""

    source: str
    predictions: int = 0
    labels: Counter[str] = field(default_factory=Counter)
    numeric: dict[str, array] = field(default_factory=dict)
    categorical: dict[str, Counter[str]] = field(default_factory=dict)
    missing: Counter[str] = field(default_factory=Counter)
    # None: the source has no inputs (Prometheus holds counters only).
    has_inputs: bool = True
    requests: float | None = None
    errors: float | None = None
    p95_seconds: float | None = None
    counters: dict[str, Any] = field(default_factory=dict)
    unreadable: int = 0


@dataclass
class Check:
    """One check of the window: its outcome, the figure it measured, its limit and a sentence."""

    name: str
    outcome: str
    value: str = ""
    limit: str = ""
    message: str = ""


# --- reading the window ---


def log_files(folder: Path) -> list[Path]:
    """The prediction log's files under a BentoML monitoring folder, rotated ones included, oldest first."""
    return sorted((folder / MONITOR_NAME / "data").glob("data.*.log*"), key=lambda path: path.stat().st_mtime)


def read_log(
    files: Iterable[Path], version: str, since: dt.datetime, profile: dict[str, Any], skip: set[str]
) -> Traffic:
    """The window's predictions of the release `version` from JSON-lines log files, streamed line by line.

    Numeric features (as the training profile says) are kept as floats in arrays, other features as counts:
    100,000 logged predictions of 30 features take about 24 MB.
    """
    traffic = Traffic(source="the prediction log")
    kinds = {name: column["kind"] for name, column in profile["columns"].items() if name != profile.get("target")}
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                record = parse_record(line)
                if record is None:
                    traffic.unreadable += 1
                    continue
                if record.get("bento_version") != version or not after(record.get("timestamp"), since):
                    continue
                labels = record.get("label")
                if not isinstance(labels, list):
                    traffic.unreadable += 1
                    continue
                traffic.predictions += len(labels)
                traffic.labels.update(str(label) for label in labels)
                for name, kind in kinds.items():
                    values = record.get(f"input.{name}")
                    if name in skip or not isinstance(values, list):
                        continue
                    add_values(traffic, name, kind, values)
    return traffic


def parse_record(line: str) -> dict[str, Any] | None:
    """One logged request, or None for a line that is not a JSON object (a torn write, a foreign line)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def after(stamp: Any, since: dt.datetime) -> bool:
    """Whether BentoML's timestamp (the server's local time, ISO 8601) is at or after `since`."""
    try:
        return dt.datetime.fromisoformat(str(stamp)) >= since
    except ValueError:
        return False


def add_values(traffic: Traffic, name: str, kind: str, values: list[Any]) -> None:
    """Add one request's values of a feature to the window: floats for numeric features, counts for the others."""
    if kind == "numeric":
        column = traffic.numeric.setdefault(name, array("d"))
        for value in values:
            if value is None or isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                traffic.missing[name] += 1
            else:
                column.append(float(value))
    else:
        counts = traffic.categorical.setdefault(name, Counter())
        for value in values:
            if value is None:
                traffic.missing[name] += 1
            else:
                counts[str(value)] += 1


def parse_metrics(text: str) -> dict[str, Any]:
    """The /predict endpoint's request counts by status and its duration histogram, from Prometheus text."""
    requests: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for line in text.splitlines():
        match = SAMPLE_LINE.match(line)
        if not match:
            continue
        labels = dict(LABEL_PAIR.findall(match["labels"] or ""))
        if labels.get("endpoint") != PREDICT:
            continue
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if match["name"] == REQUESTS:
            requests[labels.get("http_response_code", "")] += value
        elif match["name"] == f"{DURATION}_bucket" and "le" in labels:
            buckets[labels["le"]] += value
    return {"requests": dict(requests), "buckets": dict(buckets)}


def read_metrics(url: str) -> dict[str, Any]:
    """The server's /predict counters from its /metrics, or none when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return parse_metrics(response.read().decode("utf-8", errors="replace"))
    except OSError:
        return {}


def window_counters(now: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """The counters' growth since the snapshot `before`; all of them when there is none or the server restarted."""
    if before and all(now["requests"].get(code, 0) >= count for code, count in before.get("requests", {}).items()):
        return {
            "requests": {code: count - before["requests"].get(code, 0) for code, count in now["requests"].items()},
            "buckets": {le: count - before.get("buckets", {}).get(le, 0) for le, count in now["buckets"].items()},
            "since": "the previous run",
        }
    return {**now, "since": "the server started"}


def p95(buckets: dict[str, float]) -> float | None:
    """The 95th percentile of a cumulative histogram, interpolated inside its bucket as Prometheus does."""
    bounds = sorted(((math.inf if le == "+Inf" else float(le), count) for le, count in buckets.items()))
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = 0.95 * bounds[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return None


def local_traffic(
    project: str, environment: str, live: dict[str, Any], since: dt.datetime, profile: dict, skip: set[str]
) -> Traffic:
    """The window on the `local` target: the environment's prediction log and its server's /metrics."""
    from .local_target import LocalTarget

    target = LocalTarget(project)
    folder = target.monitoring_dir(environment)
    traffic = read_log(log_files(folder), live["version"], since, profile, skip)
    traffic.source = f"the prediction log in {folder}"
    serving = target.current(environment) or {}
    url = serving.get("url") or live.get("url")
    if url:
        traffic.counters = read_metrics(f"{url}/metrics")
    return traffic


def prometheus_traffic(project: str, environment: str, live: dict[str, Any], window_seconds: int) -> Traffic:
    """The window on the `kubernetes` target: Prometheus' counters of the environment's pods (no inputs)."""
    url = os.environ.get("PROMETHEUS_URL", "")
    if not url.startswith(("http://", "https://")):
        raise MonitorError(
            "the kubernetes target's monitor reads Prometheus: set the PROMETHEUS_URL variable to its address."
        )
    from . import prometheus

    try:
        found = prometheus.evidence(
            url,
            namespace=f"{project}-{environment}",
            model=str(live.get("model", "")),
            version=str(live["version"]),
            window_seconds=window_seconds,
            token=os.environ.get("PROMETHEUS_TOKEN", ""),
        )
    except prometheus.PrometheusError as err:
        raise MonitorError(str(err)) from None
    labels = Counter({str(name): round(count) for name, count in found["labels"].items() if round(count) > 0})
    return Traffic(
        source=found["source"],
        predictions=sum(labels.values()),
        labels=labels,
        has_inputs=False,
        requests=found["requests"],
        errors=found["errors"],
        p95_seconds=found["p95_seconds"],
    )


# --- judging it ---


def live_profile(traffic: Traffic, training: dict[str, Any]) -> dict[str, Any]:
    """A profile of the window's inputs in the data check's format, at the training profile's quantile levels."""
    import numpy as np

    levels = [float(level) for level in training.get("quantile_levels") or data_check_levels()]
    columns: dict[str, dict[str, Any]] = {}
    for name, values in traffic.numeric.items():
        if len(values):
            present = np.frombuffer(values, dtype=np.float64)
            columns[name] = {
                "kind": "numeric",
                "missing": traffic.missing[name],
                "mean": float(present.mean()),
                "std": float(present.std()),
                "quantiles": [float(q) for q in np.quantile(present, levels)],
            }
    for name, counts in traffic.categorical.items():
        if counts:
            columns[name] = {"kind": "categorical", "missing": traffic.missing[name], "counts": dict(counts)}
    return {"quantile_levels": levels, "rows": traffic.predictions, "columns": columns}


def data_check_levels() -> list[float]:
    """Quantile levels for a training profile that does not record its own."""
    return [i / 20 for i in range(21)]


def judge(
    traffic: Traffic,
    reference: dict[str, Any],
    training: dict[str, Any] | None,
    settings: dict[str, Any],
) -> tuple[str, list[Check]]:
    """The window's checks and the environment's verdict: failing, healthy, or no evidence."""
    watch = settings["watch"]
    needed = int(watch["min_predictions"])
    checks = [
        Check(
            "predictions in the window",
            PASS if traffic.predictions >= needed else NO_EVIDENCE,
            f"{traffic.predictions:,}",
            f"≥ {needed:,}",
            "" if traffic.predictions >= needed else "too few to judge the answers: no evidence, not healthy",
        )
    ]
    if traffic.predictions >= needed:
        checks += answer_checks(traffic, reference, settings)
        checks += input_checks(traffic, training, settings)
    checks += service_checks(traffic, watch)
    # Healthy needs enough answers to judge; a check without evidence of its own (no counters) is shown as such.
    outcomes = {check.outcome for check in checks}
    verdict = FAILING if FAIL in outcomes else NO_EVIDENCE if checks[0].outcome == NO_EVIDENCE else HEALTHY
    return verdict, checks


def answer_checks(traffic: Traffic, reference: dict[str, Any], settings: dict[str, Any]) -> list[Check]:
    """The share of the commonest answer, and the answers' shift against the release's reference set.

    A regressor's answers are counted by the bin of the training target's deciles each falls in (its "classes").
    """
    top, count = traffic.labels.most_common(1)[0]
    share, limit = count / traffic.predictions, float(settings["report"]["max_majority_share"])
    regression = reference.get("task") == "regression"
    within = f"in the decile bin {md.code(top)}" if regression else md.code(top)
    kinds = "bins" if regression else "classes"
    checks = [
        Check(
            "top bin share" if regression else "top class share",
            PASS if share <= limit else FAIL,
            f"{share:.1%} ({md.code(top)})",
            f"≤ {limit:.0%}",
            "" if share <= limit else f"{share:.1%} of the window's predictions are {within}",
        )
    ]
    expected = Counter(str(label) for label in reference.get("labels") or [])
    if expected:
        shift = data_check.psi(dict(expected), dict(traffic.labels))
        most = float(settings["watch"]["max_prediction_psi"])
        checks.append(
            Check(
                "prediction shift (PSI against the reference set)",
                PASS if shift <= most else FAIL,
                f"{shift:.3f}",
                f"≤ {most:g}",
                "" if shift <= most else f"the {kinds}' shares moved by PSI {shift:.3f} from the reference set's",
            )
        )
    return checks


def input_checks(traffic: Traffic, training: dict[str, Any] | None, settings: dict[str, Any]) -> list[Check]:
    """Each logged feature against the training profile, with the data check's statistics and thresholds."""
    if not traffic.has_inputs:
        return [Check("input drift", NO_EVIDENCE, "", "", "Prometheus holds counters, not inputs: see the README")]
    if not training:
        return [Check("input drift", NO_EVIDENCE, "", "", "no training profile to compare the inputs with")]
    rules = settings["watch"]["drift"]
    head = live_profile(traffic, training)
    base = {**training, "columns": {k: v for k, v in training["columns"].items() if k in head["columns"]}}
    findings = [f for f in data_check.drift(base, head, rules) if f.value is not None]
    if not findings:
        return [Check("input drift", NO_EVIDENCE, "", "", "no logged feature to compare (dropped or hashed)")]
    drifted = sorted((f for f in findings if f.value > f.threshold), key=lambda f: -f.value)
    largest = max(findings, key=lambda f: f.value / (f.threshold or 1))
    if drifted:
        named = ", ".join(f"{md.code(f.column)} ({md.text(f.message)})" for f in drifted[:SHOWN_FEATURES])
        more = f" and {len(drifted) - SHOWN_FEATURES} more" if len(drifted) > SHOWN_FEATURES else ""
        return [
            Check(
                "input drift",
                FAIL,
                f"{len(drifted)} of {len(findings)} features",
                limits(rules),
                f"drifted from the training data: {named}{more}",
            )
        ]
    return [
        Check(
            "input drift",
            PASS,
            f"{len(drifted)} of {len(findings)} features",
            limits(rules),
            f"largest: {md.code(largest.column)}, {md.text(largest.message)}",
        )
    ]


def limits(rules: dict[str, Any]) -> str:
    """The drift limits, in words."""
    return f"Wasserstein ≤ {rules['numeric_threshold']:g} std, PSI ≤ {rules['categorical_threshold']:g}"


def service_checks(traffic: Traffic, watch: dict[str, Any]) -> list[Check]:
    """The 5xx rate and the 95th percentile latency of /predict in the window."""
    if traffic.requests is None and traffic.counters:
        window = traffic.counters
        traffic.requests = float(sum(window["requests"].values()))
        traffic.errors = float(sum(count for code, count in window["requests"].items() if code.startswith("5")))
        traffic.p95_seconds = p95(window["buckets"])
    if not traffic.requests:
        return [Check("error rate (5xx)", NO_EVIDENCE, "", "", "no request counters for the window")]
    needed = int(watch["min_predictions"])
    rate, most = (traffic.errors or 0) / traffic.requests, float(watch["max_error_rate"])
    checks = [
        Check(
            "error rate (5xx)",
            NO_EVIDENCE if traffic.requests < needed and rate <= most else PASS if rate <= most else FAIL,
            f"{rate:.1%} of {traffic.requests:,.0f}",
            f"≤ {most:.1%}",
            "" if rate <= most else f"{traffic.errors:,.0f} of {traffic.requests:,.0f} requests failed with 5xx",
        )
    ]
    if traffic.p95_seconds is not None:
        slow, most = traffic.p95_seconds, float(watch["max_p95_seconds"])
        checks.append(
            Check(
                "latency p95",
                PASS if slow <= most else FAIL,
                f"{slow:.3f} s",
                f"≤ {most:g} s",
                "" if slow <= most else f"the 95th percentile of /predict took {slow:.3f} s",
            )
        )
    return checks


# --- the sticky issue ---


def read_memory(body: str | None) -> dict[str, Any]:
    """The monitor's memory from an issue body; a missing or edited-beyond-use block starts afresh."""
    match = STATE.search(body or "")
    if not match:
        return {}
    try:
        memory = json.loads(match.group(1))
    except ValueError:
        return {}
    if not isinstance(memory, dict) or memory.get("format") != STATE_FORMAT:
        return {}
    windows = memory.get("failing_windows")
    memory["failing_windows"] = windows if isinstance(windows, int) and windows >= 0 else 0
    return memory


def write_memory(memory: dict[str, Any]) -> str:
    """The hidden block that carries the monitor's memory to its next run ("--" cannot end the comment early)."""
    text = json.dumps({**memory, "format": STATE_FORMAT}, sort_keys=True).replace("--", "\\u002d\\u002d")
    return f"<!-- mlgitops-monitor-state {text} -->"


def find_issue(github: GitHub, repository: str, environment: str) -> dict[str, Any] | None:
    """The environment's monitor issue (open or closed), found by its label and the marker in its body."""
    marker = MARKER.format(environment=environment)
    query = urllib.parse.urlencode({"state": "all", "labels": LABEL, "per_page": 100})
    for issue in github.paginate(f"/repos/{repository}/issues?{query}"):
        if "pull_request" not in issue and marker in (issue.get("body") or ""):
            return issue
    return None


def sync_issue(
    github: GitHub, repository: str, environment: str, verdict: str, body: str, issue: dict[str, Any] | None
) -> str:
    """Open, update or close the environment's issue for the verdict; return what was done, in words."""
    if issue is None:
        if verdict != FAILING:
            return "no issue (none is open)"
        created, _ = github.request(
            "POST",
            f"/repos/{repository}/issues",
            {"title": TITLE.format(environment=environment), "body": body, "labels": [LABEL]},
        )
        return f"opened issue #{created['number']}"
    number, is_open = issue["number"], issue.get("state") == "open"
    change: dict[str, Any] = {"body": body}
    if verdict == FAILING and not is_open:
        change["state"] = "open"
    elif verdict == HEALTHY and is_open:
        change |= {"state": "closed", "state_reason": "completed"}
    github.request("PATCH", f"/repos/{repository}/issues/{number}", change)
    if "state" in change:
        return f"{'reopened' if verdict == FAILING else 'closed'} issue #{number}"
    return f"updated issue #{number}"


# --- one environment ---


@dataclass
class Outcome:
    """One environment's verdict, what the issue got, and whether a rollback is due."""

    environment: str
    verdict: str
    report: str
    issue: str = ""
    rollback: str = ""


def render(
    environment: str,
    live: dict[str, Any],
    traffic: Traffic,
    verdict: str,
    checks: list[Check],
    window_hours: float,
    memory: dict[str, Any],
    rollback_after: int,
) -> str:
    """The environment's report: the verdict, what was read, one row per check, and the failing-window count."""
    lines = [
        f"### {ICONS[verdict]} Model monitor: {environment} is {verdict}",
        "",
        f"Release {md.code(live.get('version'))} (model {md.code(live.get('model'))}), the last {window_hours:g} h "
        f"of traffic up to {state.now()}, read from {md.text(traffic.source)}.",
        "",
        md.table(
            ["check", "value", "limit", "", "finding"],
            # Each message is markdown already, its untrusted parts (labels, feature names) made inert where built.
            [[c.name, c.value, c.limit, ICONS[c.outcome], c.message] for c in checks],
        ),
        "",
    ]
    if traffic.unreadable:
        lines.append(f"{traffic.unreadable} log lines could not be read and were skipped.")
    windows = memory.get("failing_windows", 0)
    if verdict == FAILING:
        lines.append(f"Failing windows in a row: {windows}.")
    if rollback_after:
        lines.append(f"Automatic rollback: after {rollback_after} failing windows in a row.")
    else:
        lines.append("Automatic rollback: off (`mlgitops.watch.rollback_after` in params.yaml).")
    return "\n".join(lines)


def release_files(ctx: MonitorContext, live: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
    """The live release's reference answers and its training profile (the workspace's when the store has none)."""
    from . import store

    folder = ctx.work / live["version"]
    folder.mkdir(parents=True, exist_ok=True)
    release_store = ctx.open_store()
    reference = json.loads(release_store.get(live["version"], "reference.json", folder / "reference.json").read_text())
    try:
        path = release_store.get(live["version"], "data_profile.json", folder / "data_profile.json")
        return reference, json.loads(path.read_text(encoding="utf-8")), "the release's training profile"
    except (store.StoreError, OSError):
        workspace = Path(ctx.settings["paths"]["data_profile"])
        if workspace.is_file():
            return reference, json.loads(workspace.read_text(encoding="utf-8")), f"{workspace} of this commit"
        return reference, None, ""


@dataclass
class MonitorContext:
    """What every environment's run needs."""

    project: str
    package: str
    settings: dict[str, Any]
    store_url: str
    work: Path
    github: GitHub | None
    repository: str

    def open_store(self) -> Any:
        from . import store

        return store.open_store(self.store_url or store.default_url(), self.project)


def watch_environment(environment: str, ctx: MonitorContext) -> Outcome | None:
    """Judge one environment's window, update its issue and memory; None when nothing is live there."""
    path = Path(state.path_of(environment))
    current = state.parse(path.read_text(encoding="utf-8") if path.is_file() else None, environment)
    live = current.get("live")
    if not live:
        return None
    watch = ctx.settings["watch"]
    window_hours = float(watch["window_hours"])
    reference, training, profile_source = release_files(ctx, live)
    skip = set(ctx.settings["monitor"]["drop"]) | set(ctx.settings["monitor"]["hash"])
    target = ctx.settings["release"]["target"]
    if target == "local":
        since = dt.datetime.now() - dt.timedelta(hours=window_hours)
        traffic = local_traffic(ctx.project, environment, live, since, training or {"columns": {}}, skip)
    elif target == "kubernetes":
        traffic = prometheus_traffic(ctx.project, environment, live, int(window_hours * 3600))
    else:
        raise MonitorError(
            f"the monitor reads the local and kubernetes targets' traffic; {target!r} keeps its own (see the README)."
        )
    issue = None
    memory: dict[str, Any] = {}
    if ctx.github:
        issue = find_issue(ctx.github, ctx.repository, environment)
        memory = read_memory(issue.get("body") if issue else None)
    if traffic.counters:
        now = traffic.counters
        same = memory.get("version") == live["version"]
        traffic.counters = window_counters(now, memory.get("counters") if same else None)
        memory["counters"] = now
    verdict, checks = judge(traffic, reference, training, ctx.settings)
    comparison = ""
    if target == "local":
        found, comparison = feedback_checks(ctx, environment, live)
        checks += found
        if any(check.outcome == FAIL for check in found):
            verdict = FAILING
    if memory.get("version") != live["version"]:
        memory["failing_windows"] = 0
        memory.pop("rollback_requested", None)
    windows = int(memory.get("failing_windows", 0))
    memory["failing_windows"] = windows + 1 if verdict == FAILING else 0 if verdict == HEALTHY else windows
    memory |= {"version": live["version"], "last_verdict": verdict, "at": state.now()}
    rollback_after = int(watch["rollback_after"])
    rollback = ""
    due = verdict == FAILING and rollback_after and memory["failing_windows"] >= rollback_after
    if due and memory.get("rollback_requested") != live["version"]:
        failed = "; ".join(c.message for c in checks if c.outcome == FAIL)
        windows = memory["failing_windows"]
        rollback = f"the model monitor found {live['version']} failing {windows} windows in a row: {failed}"
        memory["rollback_requested"] = live["version"]
    report = render(environment, live, traffic, verdict, checks, window_hours, memory, rollback_after)
    if profile_source and traffic.has_inputs:
        report += f"\n\nInputs were compared with {md.text(profile_source)}."
    if comparison:
        report += f"\n\n{comparison}"
    if rollback:
        report += f"\n\nRollback requested: the Rollback workflow serves {environment}'s previous good release."
    outcome = Outcome(environment, verdict, report, rollback=rollback)
    if ctx.github:
        body = "\n\n".join([MARKER.format(environment=environment), report, write_memory(memory)])
        outcome.issue = sync_issue(ctx.github, ctx.repository, environment, verdict, body, issue)
    return outcome


def feedback_checks(ctx: MonitorContext, environment: str, live: dict[str, Any]) -> tuple[list[Check], str]:
    """The live release's metric on the answers users labelled through /feedback, against its offline metric
    (decay), and the comparison of two releases that answered in the feedback window; `local` target only."""
    from . import ground_truth
    from .local_target import LocalTarget

    rules = ctx.settings["watch"]["feedback"]
    name = "live metric (feedback)"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=float(rules["window_hours"]))
    versions, classes = ground_truth.joined(LocalTarget(ctx.project).feedback_dir(environment), since)
    needed = int(rules["min_labels"])
    labelled = len(versions.get(live["version"], {"y": []})["y"])
    scored = {version: rows for version, rows in versions.items() if len(rows["y"]) >= needed}
    too_few = Check(name, NO_EVIDENCE, f"{labelled:,} labelled", f"≥ {needed:,}", "too few true labels yet")
    if not scored:
        return [too_few], ""
    manifest = release_manifest(ctx, live)
    metric = manifest["metric"]
    try:
        found = ground_truth.live_metrics(
            ctx.package, scored, classes, metric["name"], float(rules["confidence"]), ctx.work
        )
    except ground_truth.GroundTruthError as err:
        raise MonitorError(str(err)) from None
    comparison = ground_truth.comparison_text(found)
    entry = found["versions"].get(live["version"])
    if entry is None:
        return [too_few], comparison
    offline, tolerance = float(metric["offline"]), float(rules["tolerance"])
    higher = bool(found["higher_is_better"])
    decayed = entry["high"] < offline - tolerance if higher else entry["low"] > offline + tolerance
    check = Check(
        name,
        FAIL if decayed else PASS,
        f"{metric['name']} {ground_truth.figure(entry)}",
        f"offline {offline:.4f} ± {tolerance:g}",
        (
            f"decay: {metric['name']} on {entry['rows']:,} labelled answers is {entry['value']:.4f}, its interval "
            f"beyond the offline {offline:.4f} by more than {tolerance:g}"
        )
        if decayed
        else "",
    )
    return [check], comparison


def release_manifest(ctx: MonitorContext, live: dict[str, Any]) -> dict[str, Any]:
    """The live release's manifest (release.json) from the store: its metric and offline value."""
    return ctx.open_store().manifest(live["version"])


def check(args: argparse.Namespace) -> int:
    """Judge every environment (or the named ones); write the summary, the issues and the rollbacks due."""
    import tempfile

    from .release import project_names

    project, package = project_names()
    settings = contract.load()
    environments = args.environment or settings["release"]["environments"]
    github = None
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    if not args.no_issue:
        github = GitHub.from_env(needs="issues: write", agent="mlgitops-monitor")
        if not repository:
            raise MonitorError("GITHUB_REPOSITORY is not set, so the monitor does not know where its issues live.")
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="mlgitops-monitor-") as work:
        ctx = MonitorContext(project, package, settings, args.store, Path(work), github, repository)
        for environment in environments:
            outcome = watch_environment(environment, ctx)
            if outcome is None:
                gha.add_summary(f"### Model monitor: {environment}\n\nNothing is live there; nothing to watch.")
                print(f"{environment}: nothing is live; nothing to watch")
                continue
            outcomes.append(outcome)
            gha.add_summary(outcome.report)
            print(outcome.report, flush=True)
            print(f"{environment}: {outcome.verdict}; {outcome.issue or 'no issue kept (--no-issue)'}", flush=True)
            if outcome.verdict == FAILING:
                gha.annotate("error", f"{environment} is failing its model monitor (see the job summary).")
    rollbacks = [{"environment": o.environment, "reason": o.rollback} for o in outcomes if o.rollback]
    gha.set_output("rollback", json.dumps(rollbacks))
    gha.set_output("verdicts", json.dumps({o.environment: o.verdict for o in outcomes}))
    return 1 if any(o.verdict == FAILING for o in outcomes) else 0


def dispatch(args: argparse.Namespace) -> int:
    """Run the Rollback workflow for each environment the check found due (a workflow_dispatch per environment)."""
    try:
        due = json.loads(args.rollbacks or "[]")
    except ValueError:
        raise MonitorError("--rollbacks must be the JSON list the check step wrote.") from None
    if not isinstance(due, list):
        raise MonitorError("--rollbacks must be the JSON list the check step wrote.")
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    github = GitHub.from_env(needs="actions: write", agent="mlgitops-monitor")
    for item in due:
        environment, reason = str(item["environment"]), str(item["reason"])[:1000]
        github.request(
            "POST",
            f"/repos/{repository}/actions/workflows/{args.workflow}/dispatches",
            {"ref": args.ref, "inputs": {"environment": environment, "version": "", "reason": reason}},
        )
        print(f"{environment}: asked {args.workflow} on {args.ref} to roll back ({reason})")
        gha.add_summary(f"### ↩️ {environment}: rollback requested\n\n{md.text(reason, limit=1000)}.")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m mlgitops.monitor {check,dispatch} ...`."""
    parser = argparse.ArgumentParser(prog="python -m mlgitops.monitor", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="judge each environment's recent traffic")
    check_parser.add_argument("--environment", action="append", help="default: every environment of the release")
    check_parser.add_argument("--store", default="", help="artifact store URL (default: the kit's folder)")
    check_parser.add_argument("--no-issue", action="store_true", help="write the summary only, keep no issue")
    dispatch_parser = commands.add_parser("dispatch", help="run the Rollback workflow for the environments due")
    dispatch_parser.add_argument("--rollbacks", default="[]", help="the check step's `rollback` output")
    dispatch_parser.add_argument("--workflow", default="rollback.yml")
    dispatch_parser.add_argument("--ref", default="main")
    args = parser.parse_args(argv)
    from . import store

    try:
        return check(args) if args.command == "check" else dispatch(args)
    except (MonitorError, GitHubError, contract.ContractError, state.StateError, store.StoreError) as err:
        gha.annotate("error", str(err), title="model monitor")
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
