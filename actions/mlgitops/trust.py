"""Which committed results of a pull request can be believed: its dvc.lock against the base's, its outputs against CI's.

A pull request controls every file it commits, `dvc.lock` and the results it describes included, so
`dvc status` (which compares the workspace with the pull request's own lock) cannot tell a reproduced
result from an edited one. A stage's committed results are believed only when its lock entry and its
git-tracked outputs equal the base branch's; every other stage is forgotten from the workspace's lock,
so DVC reproduces it (or restores it from a run cache that only trusted CI writes), and afterwards
each committed output is compared with what CI produced.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import gitrefs

LOCK = "dvc.lock"
DVC_YAML = Path("dvc.yaml")
PARAMS = Path("params.yaml")
# Reproduced numbers agree with committed ones within this absolute difference (floats across machines).
TOLERANCE = 1e-6
# Keys of JSON outputs that describe the machine or a DVC-cached file rather than results: CI's own copy
# of a cached file is the one used, so its digest is never compared, nor the interpreter's patch version.
PROVENANCE_KEYS = frozenset({"sha256", "versions"})


INTERPOLATION = re.compile(r"\$\{\s*([A-Za-z0-9_.-]+)\s*\}")


def interpolate(text: str, params: dict[str, Any]) -> str:
    """Resolve `${a.b}` from params.yaml, as DVC does for dvc.yaml; an unknown name stays as written."""

    def value(match: re.Match[str]) -> str:
        node: Any = params
        for key in match.group(1).split("."):
            if not isinstance(node, dict) or key not in node:
                return match.group(0)
            node = node[key]
        return str(node)

    return INTERPOLATION.sub(value, text)


def pipeline_outputs(dvc_yaml: Path = DVC_YAML, params_file: Path = PARAMS) -> set[str]:
    """Every path a stage of dvc.yaml writes, with `${...}` resolved from params.yaml."""
    stages = (
        (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {}) if dvc_yaml.is_file() else {}
    )
    params = (yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}) if params_file.is_file() else {}
    found: set[str] = set()
    for stage in stages.values():
        for key in ("outs", "metrics", "plots"):
            for item in stage.get(key) or []:
                found.add(interpolate(next(iter(item)) if isinstance(item, dict) else str(item), params))
    return found


def unproduced(paths: list[str], dvc_yaml: Path = DVC_YAML) -> list[str]:
    """Those of the paths no stage of dvc.yaml writes: files a pull request could commit with any numbers."""
    if not dvc_yaml.is_file():
        return []  # no pipeline at all: the train step fails on its own
    produced = pipeline_outputs(dvc_yaml)
    return [path for path in paths if path not in produced]


@dataclass
class Mismatch:
    """A committed output that differs from what CI produced, with the first differing value of each."""

    path: str
    where: str
    committed: str
    reproduced: str

    def sentence(self) -> str:
        """One line for the gate: the file, where in it, and both values."""
        place = f"{self.path} ({self.where})" if self.where else self.path
        return (
            f"the committed {place} says {self.committed} but CI reproduced {self.reproduced}: "
            "the pull request's results must come from running its pipeline"
        )


def stages_of(lock_text: str | None) -> dict[str, dict[str, Any]]:
    """The stage entries of a dvc.lock text ({} when there is none or it is unreadable)."""
    if not lock_text:
        return {}
    try:
        data = yaml.safe_load(lock_text)
    except yaml.YAMLError:
        return {}
    stages = data.get("stages") if isinstance(data, dict) else None
    return stages if isinstance(stages, dict) else {}


def _by_path(items: Any) -> dict[str, Any]:
    """Deps or outs keyed by path, so that their order in the file does not matter."""
    return {str(item.get("path")): item for item in items or [] if isinstance(item, dict)}


def entry_differences(base: dict[str, Any], head: dict[str, Any]) -> list[str]:
    """Which parts of a stage's lock entry differ: cmd, deps, params, outs."""
    differs = []
    if base.get("cmd") != head.get("cmd"):
        differs.append("cmd")
    if _by_path(base.get("deps")) != _by_path(head.get("deps")):
        differs.append("deps")
    if (base.get("params") or {}) != (head.get("params") or {}):
        differs.append("params")
    if _by_path(base.get("outs")) != _by_path(head.get("outs")):
        differs.append("outs")
    return differs


def output_paths(entry: dict[str, Any]) -> list[str]:
    """Every output path of a lock entry."""
    return sorted(_by_path(entry.get("outs")))


def untrusted(base_ref: str, head_ref: str = "HEAD") -> dict[str, str]:
    """Per stage whose committed results are not the base branch's, the reason; {} when all are the base's."""
    head = stages_of(gitrefs.show(head_ref, LOCK))
    base = stages_of(gitrefs.show(base_ref, LOCK)) if base_ref else {}
    tracked = gitrefs.tracked(head_ref)
    reasons: dict[str, str] = {}
    for name, entry in head.items():
        if name not in base:
            reasons[name] = "the base branch has no results for this stage"
            continue
        differs = entry_differences(base[name], entry)
        if differs:
            reasons[name] = f"its dvc.lock entry ({', '.join(differs)}) differs from the base branch's"
            continue
        for path in output_paths(entry):
            if path in tracked and gitrefs.show(head_ref, path) != gitrefs.show(base_ref, path):
                reasons[name] = f"{path} differs from the base branch's although dvc.lock does not"
                break
    return reasons


def forget(stages: set[str], committed_ref: str = "HEAD", lock: Path = Path(LOCK)) -> list[str]:
    """Drop the stages' entries from the workspace's dvc.lock while they are still the committed ones.

    DVC then reproduces those stages (restoring from the run cache when it holds their inputs). An entry
    that CI already rewrote in this run is kept. Returns the stages forgotten.
    """
    if not stages or not lock.is_file():
        return []
    data = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    workspace = data.get("stages") or {}
    committed = stages_of(gitrefs.show(committed_ref, LOCK))
    dropped = sorted(name for name in stages if name in workspace and workspace[name] == committed.get(name))
    if dropped:
        for name in dropped:
            del workspace[name]
        lock.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return dropped


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _close(a: Any, b: Any) -> bool:
    """Equal, with numbers within the tolerance."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(a - b) <= TOLERANCE or (a != a and b != b)
    return a == b


def json_difference(committed: Any, reproduced: Any, where: str = "") -> tuple[str, Any, Any] | None:
    """The first place two JSON documents differ beyond the tolerance, ignoring provenance keys."""
    if isinstance(committed, dict) and isinstance(reproduced, dict):
        for key in sorted(set(committed) | set(reproduced), key=str):
            if key in PROVENANCE_KEYS:
                continue
            here = f"{where}.{key}" if where else str(key)
            if key not in committed or key not in reproduced:
                return here, committed.get(key, "nothing"), reproduced.get(key, "nothing")
            found = json_difference(committed[key], reproduced[key], here)
            if found:
                return found
        return None
    if isinstance(committed, list) and isinstance(reproduced, list):
        if len(committed) != len(reproduced):
            return where, f"{len(committed)} items", f"{len(reproduced)} items"
        for index, (a, b) in enumerate(zip(committed, reproduced, strict=True)):
            found = json_difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    return None if _close(committed, reproduced) else (where, committed, reproduced)


def csv_difference(committed: str, reproduced: str) -> tuple[str, Any, Any] | None:
    """The first cell where two CSV texts differ, numbers compared within the tolerance."""
    old, new = list(csv.reader(io.StringIO(committed))), list(csv.reader(io.StringIO(reproduced)))
    if len(old) != len(new):
        return "rows", f"{len(old)} rows", f"{len(new)} rows"
    header = old[0] if old else []
    for number, (a_row, b_row) in enumerate(zip(old, new, strict=True)):
        if len(a_row) != len(b_row):
            return f"row {number}", f"{len(a_row)} fields", f"{len(b_row)} fields"
        for column, (a, b) in enumerate(zip(a_row, b_row, strict=True)):
            x, y = _number(a), _number(b)
            same = abs(x - y) <= TOLERANCE if x is not None and y is not None else a == b
            if not same:
                name = header[column] if column < len(header) and number else f"column {column + 1}"
                return f"row {number}, {name}", a, b
    return None


def difference(path: str, committed: str, reproduced: str) -> tuple[str, Any, Any] | None:
    """Where and how a committed file differs from CI's copy, or None when they agree."""
    if committed == reproduced:
        return None
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        try:
            return json_difference(json.loads(committed), json.loads(reproduced))
        except json.JSONDecodeError:
            pass
    if suffix == ".csv":
        return csv_difference(committed, reproduced)
    if committed.splitlines() == reproduced.splitlines():
        return None
    return "content", "other content", "different content"


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:59] + "…"


@dataclass
class Verdict:
    """What CI made of the committed outputs: those it disagrees with, and those left as the base's (stale)."""

    mismatches: list[Mismatch]
    stale: list[str]


def check_outputs(base_ref: str, committed_ref: str = "HEAD", lock: Path = Path(LOCK)) -> Verdict:
    """Compare every git-tracked output of the pipeline as committed with the workspace's copy CI produced.

    A committed output equal to CI's is the pull request's own; one still equal to the base branch's is
    only stale (the author did not re-run the pipeline); any other is a result no run produced.
    """
    tracked = gitrefs.tracked(committed_ref)
    workspace = stages_of(lock.read_text(encoding="utf-8")) if lock.is_file() else {}
    paths = sorted({path for entry in workspace.values() for path in output_paths(entry) if path in tracked})
    mismatches, stale = [], []
    for path in paths:
        committed = gitrefs.show(committed_ref, path)
        produced = Path(path).read_text(encoding="utf-8") if Path(path).is_file() else None
        if committed is None or produced is None:
            continue
        found = difference(path, committed, produced)
        if found is None:
            continue
        if base_ref and committed == gitrefs.show(base_ref, path):
            stale.append(path)
            continue
        where, old, new = found
        mismatches.append(Mismatch(path, where, _shown(old), _shown(new)))
    return Verdict(mismatches, stale)
