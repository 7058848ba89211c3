"""Typed access to params.yaml, the one file that holds every tunable of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")


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
    confusion: Path
    importance: Path


@dataclass(frozen=True)
class Params:
    """All pipeline parameters, and the paths the contract declares."""

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
            data=DataParams(**raw["data"]),
            model=ModelParams(family=model.pop("family"), hyperparameters=model),
            evaluate=EvaluateParams(**raw["evaluate"]),
            paths=Paths(**{name: Path(value) for name, value in raw["mlgitops"]["paths"].items()}),
        )
    except (KeyError, TypeError) as err:
        raise ValueError(f"{path} is missing or has an unknown key: {err}") from None
