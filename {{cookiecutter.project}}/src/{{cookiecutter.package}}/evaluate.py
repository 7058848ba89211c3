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


def score(y: pd.Series, pred: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Every metric, rounded so unchanged models give unchanged files."""
    return {name: round(float(m.score(y, pred, proba, classes)), 6) for name, m in METRICS.items()}


def evaluate(
    model_file: Path,
    test_csv: Path,
    target: str,
    seed: int,
    metrics_file: Path,
    confusion_file: Path,
    importance_file: Path,
) -> dict[str, float]:
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
    importance = permutation_importance(model, x, y, n_repeats=5, random_state=seed, n_jobs=1)
    pd.DataFrame({"feature": x.columns, "importance": importance.importances_mean.round(6)}).sort_values(
        "importance", ascending=False
    ).to_csv(importance_file, index=False)
    return scores
