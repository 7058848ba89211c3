{%- set regression = cookiecutter.task == "regression" -%}
"""Score the model on the held-out split and write the metrics and plots DVC tracks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.inspection import permutation_importance

{% if regression %}
@dataclass(frozen=True)
class Metric:
    """A metric, whether a higher value is better, and how to compute it from true and predicted numbers."""

    higher_is_better: bool
    # (truth, predictions, probabilities, classes): a regressor has neither of the last two, given as None and [].
    score: Callable[[pd.Series, np.ndarray, np.ndarray | None, list[str]], float]


METRICS: dict[str, Metric] = {
    "rmse": Metric(False, lambda y, p, _q, _c: skm.root_mean_squared_error(y, p)),
    "mae": Metric(False, lambda y, p, _q, _c: skm.mean_absolute_error(y, p)),
    "r2": Metric(True, lambda y, p, _q, _c: skm.r2_score(y, p)),
}
{%- else %}
@dataclass(frozen=True)
class Metric:
    """A metric, whether a higher value is better, and how to compute it from labels and probabilities."""

    higher_is_better: bool
    score: Callable[[pd.Series, np.ndarray, np.ndarray, list[str]], float]


def _roc_auc(y: pd.Series, _pred: np.ndarray, proba: np.ndarray, classes: list[str]) -> float:
    if len(classes) == 2:
        return skm.roc_auc_score(y == classes[1], proba[:, 1])
    return skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)


METRICS: dict[str, Metric] = {
    "accuracy": Metric(True, lambda y, p, _q, _c: skm.accuracy_score(y, p)),
    "balanced_accuracy": Metric(True, lambda y, p, _q, _c: skm.balanced_accuracy_score(y, p)),
    "f1_macro": Metric(True, lambda y, p, _q, c: skm.f1_score(y, p, average="macro", labels=c)),
    "roc_auc": Metric(True, _roc_auc),
    "log_loss": Metric(False, lambda y, _p, q, c: skm.log_loss(y, q, labels=c)),
}
{%- endif %}


def score(y: pd.Series, pred: np.ndarray, proba: np.ndarray | None, classes: list[str]) -> dict[str, float]:
    """Every metric, rounded so unchanged models give unchanged files."""
    return {name: round(float(m.score(y, pred, proba, classes)), 6) for name, m in METRICS.items()}


def evaluate(
    model_file: Path,
    test_csv: Path,
    target: str,
    seed: int,
    metrics_file: Path,
{%- if regression %}
    predictions_file: Path,
{%- else %}
    confusion_file: Path,
{%- endif %}
    importance_file: Path,
) -> dict[str, float]:
{%- if regression %}
    """Write the metrics, each test row's prediction and residual, and the feature importances; return the metrics."""
    model = joblib.load(model_file)
    frame = pd.read_csv(test_csv)
    x, y = frame.drop(columns=[target]), frame[target].astype(float)
    pred = model.predict(x)
    scores = score(y, pred, None, [])
    for path in (metrics_file, predictions_file, importance_file):
        path.parent.mkdir(parents=True, exist_ok=True)
    metrics_file.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    # DVC draws predicted against actual, and the residuals against the predictions, from this one file.
    rows = {"actual": y.round(6), "predicted": pred.round(6), "residual": (y - pred).round(6)}
    pd.DataFrame(rows).to_csv(predictions_file, index=False)
{%- else %}
    """Write the metrics, the confusion matrix and the feature importances; return the metrics."""
    model = joblib.load(model_file)
    frame = pd.read_csv(test_csv)
    x, y = frame.drop(columns=[target]), frame[target].astype(str)
    classes = [str(c) for c in model.classes_]
    pred, proba = model.predict(x), model.predict_proba(x)
    scores = score(y, pred, proba, classes)
    for path in (metrics_file, confusion_file, importance_file):
        path.parent.mkdir(parents=True, exist_ok=True)
    metrics_file.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    pd.DataFrame({"actual": y, "predicted": pred}).to_csv(confusion_file, index=False)
{%- endif %}
    importance = permutation_importance(model, x, y, n_repeats=5, random_state=seed, n_jobs=1)
    pd.DataFrame({"feature": x.columns, "importance": importance.importances_mean.round(6)}).sort_values(
        "importance", ascending=False
    ).to_csv(importance_file, index=False)
    return scores
