{%- set regression = cookiecutter.task == "regression" -%}
"""Typed access to params.yaml, the one file that holds every tunable of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")
# A refusal of monitor settings lists at most this many of the model's features.
SHOWN_FEATURES = 10


@dataclass(frozen=True)
class DataParams:
    """Where the data comes from and how it is split."""

    source: str
    target: str
    test_size: float
    seed: int
    path: str | None = None
    max_megabytes: float = 100.0


@dataclass(frozen=True)
class ModelParams:
    """Which estimator to train and its hyperparameters."""

    family: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateParams:
    """The metric reviewers judge the model by."""

    metric: str


@dataclass(frozen=True)
class Paths:
    """Where the stages read and write: `mlgitops.paths`, the part of the contract the kit's actions read too."""

    schema: Path
    train: Path
    test: Path
    data_check: Path
    data_profile: Path
    model: Path
    model_meta: Path
    metrics: Path
{%- if regression %}
    predictions: Path
{%- else %}
    confusion: Path
{%- endif %}
    importance: Path


@dataclass(frozen=True)
class MonitorParams:
    """What the served model records of each prediction: `mlgitops.monitor`, read from the params.yaml in the Bento."""

    sample: float = 1.0  # the share of requests whose predictions are logged; 0 logs none
    drop: tuple[str, ...] = ()  # features never logged
    hash: tuple[str, ...] = ()  # features logged as the SHA-256 of their value


@dataclass(frozen=True)
class Params:
    """All pipeline parameters, and the paths the contract declares."""

    task: str
    data: DataParams
    model: ModelParams
    evaluate: EvaluateParams
    paths: Paths


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read params.yaml, failing with the name of the first missing or unknown key."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        model = dict(raw["model"])
        return Params(
            task=raw["task"],
            data=DataParams(**raw["data"]),
            model=ModelParams(family=model.pop("family"), hyperparameters=model),
            evaluate=EvaluateParams(**raw["evaluate"]),
            paths=Paths(**{name: Path(value) for name, value in raw["mlgitops"]["paths"].items()}),
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is missing or has an unknown key: {err}") from None


def load_monitor(features: list[str], path: Path = PARAMS_FILE) -> MonitorParams:
    """`mlgitops.monitor` from params.yaml (defaults where it says nothing), refused in one sentence when invalid.

    `features` are the model's: drop and hash must name some of them, and never one in both.
    """
    # A Bento without the file would log what its team asked not to: refuse rather than assume the defaults.
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: bentofile.yaml must include it, as it says what may be logged.")
    params = yaml.safe_load(path.read_text(encoding="utf-8"))
    section = params.get("mlgitops") if isinstance(params, dict) else None
    raw = section.get("monitor") if isinstance(section, dict) else None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ValueError(f"mlgitops.monitor in params.yaml must be a mapping of sample, drop and hash, got {raw!r}.")
    unknown = sorted(set(raw) - {"sample", "drop", "hash"})
    if unknown:
        raise ValueError(f"mlgitops.monitor in params.yaml has the unknown key {unknown[0]!r}; use sample, drop, hash.")
    sample = raw.get("sample", MonitorParams.sample)
    if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 <= sample <= 1:
        raise ValueError(f"mlgitops.monitor.sample in params.yaml must be a number from 0 to 1, got {sample!r}.")
    names: dict[str, tuple[str, ...]] = {}
    for key in ("drop", "hash"):
        given = [] if raw.get(key) is None else raw[key]
        if not isinstance(given, list) or not all(isinstance(name, str) for name in given):
            raise ValueError(f"mlgitops.monitor.{key} in params.yaml must be a list of feature names, got {given!r}.")
        stranger = next((name for name in given if name not in features), None)
        if stranger is not None:
            shown = ", ".join(repr(name) for name in features[:SHOWN_FEATURES])
            if len(features) > SHOWN_FEATURES:
                shown += f" and {len(features) - SHOWN_FEATURES} more (see models/model.json)"
            raise ValueError(
                f"mlgitops.monitor.{key} in params.yaml names {stranger!r}, "
                f"which is not a feature of the model ({shown})."
            )
        names[key] = tuple(given)
    both = next((name for name in names["drop"] if name in names["hash"]), None)
    if both is not None:
        raise ValueError(f"mlgitops.monitor in params.yaml names {both!r} in both drop and hash; choose one.")
    return MonitorParams(sample=float(sample), **names)
