{%- set regression = cookiecutter.task == "regression" -%}
"""A frozen sample of the test split with the model's own answers, and the score of a service's answers on it.

A release carries the sample: the requests to send, the labels and the metric the model gives them in
process, with {{ "numbers" if regression else "probabilities" }} rounded as the service rounds them. A service that serves this model
honestly reproduces that metric exactly, which is what the release's smoke test and verification check.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from . import serving
from .evaluate import METRICS
{%- if regression %}
from .metadata import bin_of
{%- endif %}

# The layout of reference.json; readers refuse a newer one instead of misreading it.
REFERENCE_FORMAT = 1
ROWS_FILE = "reference.csv"
REQUESTS_FILE = "reference_requests.json"
SUMMARY_FILE = "reference.json"


class ReferenceError(ValueError):
    """A reference or a set of predictions that cannot be scored; the message says why in one sentence."""


def instance_of(row: dict[str, Any], features: list[dict[str, Any]]) -> dict[str, Any]:
    """One request instance from a data row: plain floats and strings, null for a missing value."""
    instance: dict[str, Any] = {}
    for feature in features:
        value = row[feature["name"]]
        if value is None or (isinstance(value, float) and math.isnan(value)):
            instance[feature["name"]] = None
        elif feature["kind"] == "numeric":
            instance[feature["name"]] = float(value)
        else:
            instance[feature["name"]] = str(value)
    return instance


def servable(frame: pd.DataFrame, features: list[dict[str, Any]]) -> tuple[pd.DataFrame, list[BaseModel]]:
    """The rows the service accepts (a null only where the schema allows it, known categories), validated."""
    instance = serving.instance_model(features)
    kept, validated = [], []
    for index, row in zip(frame.index, frame.to_dict("records"), strict=True):
        try:
            validated.append(instance.model_validate(instance_of(row, features)))
        except ValidationError:
            continue
        kept.append(index)
    return frame.loc[kept], validated


def sample(frame: pd.DataFrame, features: list[dict[str, Any]], rows: int, seed: int) -> pd.DataFrame:
    """Up to `rows` servable rows, drawn with the seed and kept in the test split's order."""
    if rows < 1:
        raise ReferenceError(f"a reference needs at least one row, not {rows}.")
    candidates, _ = servable(frame, features)
    if candidates.empty:
        raise ReferenceError("no row of the test split makes a valid request, so there is nothing to refer to.")
    return candidates.sample(n=min(rows, len(candidates)), random_state=seed).sort_index()


def read_summary(reference: Path) -> dict[str, Any]:
    """reference.json of a reference folder, refused when missing or of a newer format."""
    path = reference / SUMMARY_FILE
    if not path.is_file():
        raise ReferenceError(f"{path} is missing: make the reference with `reference --out {reference}` first.")
    summary = json.loads(path.read_text(encoding="utf-8"))
    if summary.get("format", 1) > REFERENCE_FORMAT:
        raise ReferenceError(f"{path} has format {summary['format']!r}, newer than this code reads; update it.")
    return summary

{% if regression %}
def top_class_share(labels: list[str]) -> float:
    """The share of the commonest label (for a regressor, of the commonest decile bin)."""
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else 0.0


def metric_value(metric: str, truth: pd.Series, predictions: list[serving.Prediction]) -> float:
    """The metric as the evaluate stage defines it, on the true numbers and the numbers as the service sends them."""
    return float(METRICS[metric].score(truth, np.array([p.value for p in predictions]), None, []))


def spread_ratio(values: list[float], truth: pd.Series) -> float:
    """The predictions' standard deviation as a share of the truth's: near 0, the model answers one number."""
    spread = float(truth.std(ddof=0))
    return float(np.std(values)) / spread if spread > 0 else 0.0


def build(
    model: Any, meta: dict[str, Any], test: pd.DataFrame, metric: str, rows: int, seed: int, out: Path
) -> dict[str, Any]:
    """Write reference.csv, reference_requests.json and reference.json into `out`; return the summary."""
    if metric not in METRICS:
        raise ReferenceError(f"evaluate.metric {metric!r} is not one of {', '.join(METRICS)}.")
    features, target = meta["features"], meta["target"]
    frame = sample(test, features, rows, seed)
    chosen, instances = servable(frame, features)
    names = [f["name"] for f in features]
    answered = serving.predictions(serving.pipeline_numbers(model, names)(instances))
    values = [p.value for p in answered]
    labels = [bin_of(value, meta["bins"]) for value in values]
    truth = chosen[target].astype(float)
    summary = {
        "format": REFERENCE_FORMAT,
        "task": "regression",
        "metric": metric,
        "higher_is_better": METRICS[metric].higher_is_better,
        "offline": metric_value(metric, truth, answered),
        "rows": len(chosen),
        "target": target,
        "bins": meta["bins"],
        "values": values,
        # The decile bins of the answers: what the monitor and the canary compare, as a classifier's labels.
        "labels": labels,
        "top_class_share": top_class_share(labels),
        "spread_ratio": spread_ratio(values, truth),
        "model_sha256": meta["sha256"],
    }
    out.mkdir(parents=True, exist_ok=True)
    chosen.to_csv(out / ROWS_FILE, index=False)
    requests = {"instances": [i.model_dump(by_alias=True) for i in instances]}
    (out / REQUESTS_FILE).write_text(json.dumps(requests) + "\n", encoding="utf-8")
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def parse_predictions(answers: Any, rows: int) -> list[serving.Prediction]:
    """The service's predictions, one finite number per reference row."""
    if not isinstance(answers, list):
        raise ReferenceError("the predictions must be a JSON list of the service's prediction objects.")
    if len(answers) != rows:
        raise ReferenceError(
            f"there are {len(answers)} predictions but the reference has {rows} rows; "
            "send every reference request and keep the answers in order."
        )
    parsed = []
    for number, answer in enumerate(answers, start=1):
        try:
            prediction = serving.Prediction.model_validate(answer)
        except ValidationError:
            raise ReferenceError(
                f"prediction {number} is not an object with a value: {json.dumps(answer)[:120]}"
            ) from None
        if not math.isfinite(prediction.value):
            raise ReferenceError(f"prediction {number} is {prediction.value}, not a finite number.")
        parsed.append(prediction)
    return parsed


def score(reference: Path, answers: Any) -> dict[str, Any]:
    """The reference metric of a service's predictions, their spread, their top bin's share and their agreement with
    the model's own numbers (equal to six decimals, as both are rounded)."""
    summary = read_summary(reference)
    rows = summary["rows"]
    predictions = parse_predictions(answers, rows)
    truth = pd.read_csv(reference / ROWS_FILE)[summary["target"]].astype(float)
    if len(truth) != rows:
        raise ReferenceError(f"{reference / ROWS_FILE} has {len(truth)} rows but reference.json says {rows}.")
    values = [p.value for p in predictions]
    same = sum(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6) for a, b in zip(values, summary["values"], strict=True))
    return {
        "metric": summary["metric"],
        "value": metric_value(summary["metric"], truth, predictions),
        "top_class_share": top_class_share([bin_of(value, summary["bins"]) for value in values]),
        "spread_ratio": spread_ratio(values, truth),
        "agreement": same / rows,
        "rows": rows,
    }
{%- else %}
def rounded(predictions: list[serving.Prediction], classes: list[str]) -> np.ndarray:
    """The probabilities of predictions as the service sends them, one column per class."""
    return np.array([[p.probabilities[c] for c in classes] for p in predictions], dtype=np.float64)


def top_class_share(labels: list[str]) -> float:
    """The share of the commonest label."""
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else 0.0


def metric_value(metric: str, truth: pd.Series, predictions: list[serving.Prediction], classes: list[str]) -> float:
    """The metric as the evaluate stage defines it, on labels and rounded probabilities."""
    labels = np.array([p.label for p in predictions])
    return float(METRICS[metric].score(truth, labels, rounded(predictions, classes), classes))


def build(
    model: Any, meta: dict[str, Any], test: pd.DataFrame, metric: str, rows: int, seed: int, out: Path
) -> dict[str, Any]:
    """Write reference.csv, reference_requests.json and reference.json into `out`; return the summary."""
    if metric not in METRICS:
        raise ReferenceError(f"evaluate.metric {metric!r} is not one of {', '.join(METRICS)}.")
    features, target = meta["features"], meta["target"]
    frame = sample(test, features, rows, seed)
    chosen, instances = servable(frame, features)
    classes = [str(c) for c in model.classes_]
    names = [f["name"] for f in features]
    answered = serving.predictions(classes, serving.pipeline_probabilities(model, names)(instances))
    labels = [p.label for p in answered]
    truth = chosen[target].astype(str)
    summary = {
        "format": REFERENCE_FORMAT,
        "metric": metric,
        "higher_is_better": METRICS[metric].higher_is_better,
        "offline": metric_value(metric, truth, answered, classes),
        "rows": len(chosen),
        "target": target,
        "classes": classes,
        "labels": labels,
        "top_class_share": top_class_share(labels),
        "model_sha256": meta["sha256"],
    }
    out.mkdir(parents=True, exist_ok=True)
    chosen.to_csv(out / ROWS_FILE, index=False)
    requests = {"instances": [i.model_dump(by_alias=True) for i in instances]}
    (out / REQUESTS_FILE).write_text(json.dumps(requests) + "\n", encoding="utf-8")
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def parse_predictions(answers: Any, classes: list[str], rows: int) -> list[serving.Prediction]:
    """The service's predictions, one per reference row, each naming only the model's classes."""
    if not isinstance(answers, list):
        raise ReferenceError("the predictions must be a JSON list of the service's prediction objects.")
    if len(answers) != rows:
        raise ReferenceError(
            f"there are {len(answers)} predictions but the reference has {rows} rows; "
            "send every reference request and keep the answers in order."
        )
    known = set(classes)
    parsed = []
    for number, answer in enumerate(answers, start=1):
        try:
            prediction = serving.Prediction.model_validate(answer)
        except ValidationError:
            raise ReferenceError(
                f"prediction {number} is not an object with a label and probabilities: {json.dumps(answer)[:120]}"
            ) from None
        unknown = sorted({prediction.label, *prediction.probabilities} - known)
        if unknown or set(prediction.probabilities) != known:
            named = repr(unknown[0]) if unknown else "a partial set of classes"
            raise ReferenceError(
                f"prediction {number} names {named}, but the model's classes are {', '.join(map(repr, classes))}."
            )
        parsed.append(prediction)
    return parsed


def score(reference: Path, answers: Any) -> dict[str, Any]:
    """The reference metric of a service's predictions, their top class share and their agreement with the model's."""
    summary = read_summary(reference)
    classes, rows = summary["classes"], summary["rows"]
    predictions = parse_predictions(answers, classes, rows)
    truth = pd.read_csv(reference / ROWS_FILE)[summary["target"]].astype(str)
    if len(truth) != rows:
        raise ReferenceError(f"{reference / ROWS_FILE} has {len(truth)} rows but reference.json says {rows}.")
    labels = [p.label for p in predictions]
    return {
        "metric": summary["metric"],
        "value": metric_value(summary["metric"], truth, predictions, classes),
        "top_class_share": top_class_share(labels),
        "agreement": sum(a == b for a, b in zip(labels, summary["labels"], strict=True)) / rows,
        "rows": rows,
    }
{%- endif %}
