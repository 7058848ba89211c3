"""The contract between the kit and a project: the `mlgitops:` section of params.yaml and the formats both sides write.

The project declares there the files its stages write and the settings of the checks that judge a
pull request; no stage lists the section as a DVC parameter, so changing it re-runs nothing. Values
a project leaves out take the defaults below, the one place the kit's defaults live.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from . import gitrefs

SECTION = "mlgitops"
PARAMS_FILE = "params.yaml"
DEFAULTS: dict[str, Any] = {
    "paths": {
        "train": "data/prepared/train.csv",
        "test": "data/prepared/test.csv",
        "schema": "data/schema.yaml",
        "data_check": "reports/data_check.json",
        "data_profile": "reports/data_profile.json",
        "model": "models/model.joblib",
        "model_meta": "models/model.json",
        "metrics": "metrics.json",
        "confusion": "plots/confusion.csv",
        # A regression project's evaluate stage writes each test row's actual, predicted and residual here.
        "predictions": "plots/predictions.csv",
        "importance": "plots/importance.csv",
    },
    "data_check": {
        "min_rows": 50,
        "max_missing_share": 0.05,
        "max_duplicate_share": 0.05,
        "min_class_share": 0.05,
        # A regression target must take at least this many distinct values (the spread rule).
        "min_target_values": 10,
        "drift": {"numeric_threshold": 0.25, "categorical_threshold": 0.2, "fail": True},
    },
    "budget": {
        "pipeline_minutes": 30,
        "report_minutes": 45,
    },
    "report": {
        "tolerance": {"default": 0.01},
        "lower_is_better": ["log_loss"],
        "max_majority_share": 0.95,
        # A regression model whose predictions' standard deviation is below this share of the target's fails.
        "min_spread_ratio": 0.1,
    },
    "release": {
        "target": "local",
        "environments": ["staging", "production"],
        "ports": {"staging": 3001, "production": 3000},
        "skew_tolerance": 0.001,
        "ready_seconds": 120,
        # Where the `kubernetes` target pins each environment's image (one kustomize overlay per environment).
        "kubernetes": {"overlays": "deploy/kubernetes/overlays"},
        # Before the last environment switches, the candidate answers beside the live release (canary.py).
        "canary": {
            "enabled": True,
            "port": 3002,
            "min_agreement": 0.9,
            "max_psi": 0.25,
            "min_gain": 0.0,
            "live_rows": 500,
        },
    },
    # What the served model logs of each prediction; the service reads it from the params.yaml in its Bento.
    "monitor": {"sample": 1.0, "drop": [], "hash": []},
    # What the scheduled model monitor checks of each environment's recent traffic (monitor.py).
    "watch": {
        "window_hours": 24,
        "min_predictions": 100,
        "max_prediction_psi": 0.25,
        "max_error_rate": 0.01,
        "max_p95_seconds": 1.0,
        # A window is a sample of live traffic, noisier than the datasets the data check compares:
        # the same statistics, wider limits (a mean moved by a whole standard deviation).
        "drift": {"numeric_threshold": 1.0, "categorical_threshold": 0.25},
        "rollback_after": 0,
        # True labels sent to /feedback: each release's live metric over the requests of the last `window_hours`
        # that got one, with an interval at `confidence`; below the offline metric by more than `tolerance`
        # (interval and all) is decay. Labels arrive late, so the window is longer than the traffic's.
        "feedback": {"window_hours": 168, "min_labels": 50, "confidence": 0.95, "tolerance": 0.02},
    },
}
# What a project's model predicts (params.yaml's top-level `task`); projects made before it existed classify.
TASKS = ("classification", "regression")
# Settings that are a share of something, from 0 to 1.
SHARES = {
    f"{SECTION}.monitor.sample",
    f"{SECTION}.watch.max_error_rate",
    f"{SECTION}.release.canary.min_agreement",
    f"{SECTION}.watch.feedback.confidence",
}
# The newest version of each file format the two sides exchange that this kit reads.
FORMATS = {"data_profile": 1, "data_check": 1, "model_meta": 2}


class ContractError(ValueError):
    """A contract or exchanged file the kit cannot use; the message is one sentence for the user."""


def _merge(defaults: Any, given: Any, where: str) -> Any:
    """Given values over the defaults, keeping the defaults' shape and refusing values of the wrong kind."""
    if isinstance(defaults, dict):
        if given is None:
            return copy.deepcopy(defaults)
        if not isinstance(given, dict):
            raise ContractError(f"{where} in {PARAMS_FILE} must be a mapping, got {given!r}.")
        merged = {key: _merge(value, given.get(key), f"{where}.{key}") for key, value in defaults.items()}
        if where.endswith(".tolerance"):  # per-metric tolerances beside the default
            merged |= {key: _number(value, f"{where}.{key}") for key, value in given.items() if key not in defaults}
        return merged
    if given is None:
        return copy.deepcopy(defaults)
    if isinstance(defaults, bool):
        if not isinstance(given, bool):
            raise ContractError(f"{where} in {PARAMS_FILE} must be true or false, got {given!r}.")
        return given
    if isinstance(defaults, int | float):
        number = _number(given, where)
        if where in SHARES and number > 1:
            raise ContractError(f"{where} in {PARAMS_FILE} must be a number from 0 to 1, got {given!r}.")
        return number
    if isinstance(defaults, list):
        if not isinstance(given, list) or not all(isinstance(item, str) for item in given):
            raise ContractError(f"{where} in {PARAMS_FILE} must be a list of names, got {given!r}.")
        return given
    if not isinstance(given, str) or not given.strip():
        raise ContractError(f"{where} in {PARAMS_FILE} must be a non-empty path, got {given!r}.")
    return given


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ContractError(f"{where} in {PARAMS_FILE} must be a number of at least 0, got {value!r}.")
    return value


def from_params(params: Any) -> dict[str, Any]:
    """The contract from parsed params.yaml; projects made before the section existed keep their top-level settings."""
    params = params if isinstance(params, dict) else {}
    given = params.get(SECTION)
    if given is None:
        given = {key: params[key] for key in ("data_check", "report") if key in params}
    return _merge(DEFAULTS, given, SECTION)


def task_of(params: Any) -> str:
    """The task params.yaml declares, refused in one sentence when it is neither classification nor regression."""
    task = params.get("task", TASKS[0]) if isinstance(params, dict) else TASKS[0]
    if task not in TASKS:
        raise ContractError(f"task in {PARAMS_FILE} must be {' or '.join(TASKS)}, got {task!r}.")
    return task


def from_text(text: str | None) -> dict[str, Any]:
    """The contract from params.yaml's text (the defaults when there is none)."""
    try:
        return from_params(yaml.safe_load(text) if text else {})
    except yaml.YAMLError as err:
        raise ContractError(f"{PARAMS_FILE} is not valid YAML: {str(err).splitlines()[0]}.") from None


def load(params_file: Path | str = PARAMS_FILE, ref: str = "") -> dict[str, Any]:
    """The contract from the workspace's params file, or from the revision `ref` holds when one is named."""
    if ref:
        return from_text(gitrefs.show(ref, str(params_file)))
    path = Path(params_file)
    return from_text(path.read_text(encoding="utf-8") if path.is_file() else None)


def check_format(document: Any, kind: str, source: str) -> None:
    """Refuse a file written in a newer format than this kit reads; a file without a version is version 1."""
    version = document.get("format", 1) if isinstance(document, dict) else 1
    if not isinstance(version, int) or isinstance(version, bool) or version > FORMATS[kind]:
        raise ContractError(
            f"{source} is written in {kind} format {version!r}, newer than this kit reads "
            f"({FORMATS[kind]}); update the kit's actions."
        )
