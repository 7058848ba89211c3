"""Ground truth for the model monitor: the served model's answers joined with the true labels sent to /feedback.

On the `local` target each environment's service indexes the requests it answered and stores their feedback in
one folder (the project's feedback.py). This joins the two over a window, by the release that answered, and asks
the project's own `live` command for each release's live metric with a bootstrap interval and the comparison of
two releases, so the metric is the evaluate stage's definition. It then judges decay (the live release's metric
beyond tolerance below its offline one, interval and all) and reports whether two releases differ significantly.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from . import markdown as md


class GroundTruthError(RuntimeError):
    """The feedback could not be scored; the message is one sentence for the user."""


def records(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    """The JSON objects of JSON-lines files, skipping torn or foreign lines."""
    for path in paths:
        with path.open("rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError):
                    continue
                if isinstance(record, dict):
                    yield record


def after(stamp: Any, since: dt.datetime) -> bool:
    try:
        moment = dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment >= since


def truth_of(label: Any) -> Any:
    """A true label as the project scores it: a regressor's number stays a number, a class is text."""
    return label if isinstance(label, int | float) and not isinstance(label, bool) else str(label)


def joined(folder: Path, since: dt.datetime) -> tuple[dict[str, dict[str, list]], list[str]]:
    """The labelled answers of requests answered since `since`, by Bento version ({y, pred, proba}), and the
    classes in the order of the probabilities. A regressor's answers are numbers, without probabilities or classes."""
    truth: dict[str, list[Any]] = {}
    for record in records(sorted(folder.glob("feedback.jsonl"))):
        if isinstance(record.get("labels"), list):
            truth.setdefault(str(record.get("request_id")), [truth_of(label) for label in record["labels"]])
    versions: dict[str, dict[str, list]] = defaultdict(lambda: {"y": [], "pred": [], "proba": []})
    classes: list[str] = []
    for record in records(sorted(folder.glob("requests.*.jsonl"))):
        labels = truth.get(str(record.get("request_id")))
        answered = record.get("labels")
        # A classifier indexes each answer's probabilities; a regressor, only its numbers.
        regression = "probabilities" not in record
        probabilities = [] if regression else record.get("probabilities")
        if not labels or not isinstance(answered, list) or not isinstance(probabilities, list):
            continue
        if len(labels) != len(answered) or not (regression or len(probabilities) == len(labels)):
            continue
        if not after(record.get("timestamp"), since):
            continue
        classes = [str(name) for name in record.get("classes") or classes]
        rows = versions[str(record.get("bento_version"))]
        rows["y"] += labels
        rows["pred"] += [truth_of(label) for label in answered]
        rows["proba"] += probabilities
    return dict(versions), classes


def live_metrics(
    package: str, versions: dict[str, dict[str, list]], classes: list[str], metric: str, confidence: float, work: Path
) -> dict[str, Any]:
    """The project's `live` command on the joined rows: each version's metric and interval, and a comparison."""
    request = {"metric": metric, "classes": classes, "confidence": confidence, "resamples": 1000, "seed": 0}
    path = work / "feedback.json"
    path.write_text(json.dumps({**request, "versions": versions}), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", package, "live", "--feedback", str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise GroundTruthError(f"scoring the feedback failed: {reason}")
    return json.loads(done.stdout)


def figure(entry: dict[str, Any]) -> str:
    return f"{entry['value']:.4f} [{entry['low']:.4f}, {entry['high']:.4f}]"


def comparison_text(found: dict[str, Any]) -> str:
    """One sentence comparing two releases' live metrics, naming the better one only when the difference is
    significant at the configured level."""
    comparison = found.get("comparison")
    if not comparison:
        return ""
    a, b, level = comparison["a"], comparison["b"], f"{found['confidence']:.0%}"
    versions = found["versions"]
    both = f"{md.code(a)} {figure(versions[a])} ({versions[a]['rows']:,} labelled) and {md.code(b)} " + (
        f"{figure(versions[b])} ({versions[b]['rows']:,} labelled)"
    )
    difference = f"{comparison['difference']:+.4f} [{comparison['low']:+.4f}, {comparison['high']:+.4f}]"
    if comparison["significant"]:
        return (
            f"A/B on {found['metric']}: {both}; difference {difference} at {level}: "
            f"{md.code(comparison['better'])} is better, significantly."
        )
    return f"A/B on {found['metric']}: {both}; difference {difference} at {level}: no significant difference."
