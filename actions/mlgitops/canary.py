"""canary: before the last environment switches, the candidate answers beside the live release, on the same requests.

Both are asked the release's reference set and the newest inputs the live environment logged (only when
every feature is logged in clear: a dropped or hashed feature cannot be sent again). The canary measures
how often the two give the same answer and how far the candidate's answers' classes shift (PSI); a
regressor's answers are compared by the bin of the training target's deciles each falls in. A
candidate that disagrees beyond `mlgitops.release.canary`'s limits stops the promotion with the reason,
unless it scores better than the live release on the reference set: a better model is allowed to differ.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import data_check, targets
from .monitor import log_files, parse_record

BATCH = 100


@dataclass
class Canary:
    """What the canary measured, and why it stops the promotion ("" when it does not)."""

    checks: dict[str, Any] = field(default_factory=dict)
    failure: str = ""


def live_inputs(folder: Path, features: list[str], limit: int) -> list[dict[str, Any]]:
    """The newest `limit` instances the live environment logged with every feature, oldest of them first."""
    kept: deque[dict[str, Any]] = deque(maxlen=limit)
    for path in log_files(folder):
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                record = parse_record(line)
                columns = [record.get(f"input.{name}") for name in features] if record else []
                if not columns or not all(isinstance(column, list) for column in columns):
                    continue
                kept.extend(dict(zip(features, values, strict=True)) for values in zip(*columns, strict=False))
    return list(kept)


def bin_of(value: float, edges: list[float]) -> str:
    """The decile bin a regressor's answer falls in, named as the project's service names it (q1 to q10)."""
    return f"q{bisect.bisect_left(edges, value) + 1}"


def classes_of(found: list[dict[str, Any]], bins: list[float] | None) -> list[str]:
    """Each answer's class: a classifier's label, or a regressor's decile bin."""
    return [str(a["label"]) if bins is None else bin_of(float(a["value"]), bins) for a in found]


def answers(url: str, instances: list[dict[str, Any]], who: str) -> list[dict[str, Any]]:
    """The predictions `url` gives the instances, in order; a refused batch is an error naming who refused it."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(instances), BATCH):
        status, answer = targets.get_json(f"{url}/predict", {"instances": instances[start : start + BATCH]})
        if status != 200 or not isinstance(answer, dict):
            raise targets.DeployError(f"the {who} answered {status or 'nothing'} to the canary's request")
        found.extend(answer["predictions"])
    return found


def compare(
    live_url: str,
    candidate_url: str,
    release: dict[str, Any],
    live_rows: list[dict[str, Any]],
    settings: dict[str, Any],
    score: Callable[[Path, list[dict[str, Any]]], dict[str, Any]],
) -> Canary:
    """Send the reference set and the live rows to both; judge the candidate's agreement, shift and gain."""
    reference = Path(release["reference_dir"])
    requests = json.loads((reference / "reference_requests.json").read_text(encoding="utf-8"))["instances"]
    rows = len(requests)
    instances = requests + live_rows
    live = answers(live_url, instances, "live release")
    candidate = answers(candidate_url, instances, "candidate")
    bins = json.loads((reference / "reference.json").read_text(encoding="utf-8")).get("bins")
    live_classes, candidate_classes = classes_of(live, bins), classes_of(candidate, bins)
    same = sum(a == b for a, b in zip(live_classes, candidate_classes, strict=True))
    agreement = same / len(instances)
    shift = data_check.psi(Counter(live_classes), Counter(candidate_classes))
    live_value, candidate_value = score(reference, live[:rows])["value"], score(reference, candidate[:rows])["value"]
    metric = release["metric"]
    gain = candidate_value - live_value if metric["higher_is_better"] else live_value - candidate_value
    found = Canary(
        checks={
            "requests": len(instances),
            "reference_rows": rows,
            "live_rows": len(live_rows),
            "agreement": round(agreement, 4),
            "psi": round(shift, 4),
            "metric": metric["name"],
            "live": round(float(live_value), 6),
            "candidate": round(float(candidate_value), 6),
        }
    )
    least, most = float(settings["min_agreement"]), float(settings["max_psi"])
    if (agreement >= least and shift <= most) or gain > float(settings["min_gain"]):
        return found
    problems = []
    if agreement < least:
        problems.append(
            f"agreed with the live release on {agreement:.1%} of {len(instances)} requests (at least {least:.0%})"
        )
    if shift > most:
        problems.append(f"shifted the answers' classes by PSI {shift:.3f} (at most {most:g})")
    found.failure = (
        f"the canary {' and '.join(problems)}, without a gain on the reference set "
        f"({metric['name']} {candidate_value:.4f} against the live release's {live_value:.4f})"
    )
    return found
