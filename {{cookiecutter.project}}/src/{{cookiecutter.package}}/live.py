{%- set regression = cookiecutter.task == "regression" -%}
"""Live metrics from feedback: each release's metric on the requests users labelled, with a bootstrap interval,
and whether two releases' metrics differ by more than chance. The metrics are the evaluate stage's own."""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import pandas as pd

from .evaluate import METRICS


def resampled(
    rows: dict[str, list], metric: str, classes: list[str], resamples: int, rng: np.random.Generator
) -> tuple[float, np.ndarray]:
    """The metric on the rows, and on `resamples` bootstrap resamples of them (NaN where one cannot be scored)."""
{%- if regression %}
    y, pred = np.asarray(rows["y"], dtype=float), np.asarray(rows["pred"], dtype=float)
    score = METRICS[metric].score
    with warnings.catch_warnings():
        # A resample of equal true values leaves r2 undefined (NaN, with a warning): it is skipped.
        warnings.simplefilter("ignore")
        value = float(score(pd.Series(y), pred, None, classes))
        samples = np.full(resamples, np.nan)
        for i in range(resamples):
            pick = rng.integers(0, len(y), len(y))
            with contextlib.suppress(ValueError):
                samples[i] = score(pd.Series(y[pick]), pred[pick], None, classes)
    return value, samples
{%- else %}
    y, pred = np.asarray(rows["y"], dtype=object), np.asarray(rows["pred"], dtype=object)
    proba = np.asarray(rows["proba"], dtype=float)
    score = METRICS[metric].score
    with warnings.catch_warnings():
        # A resample may miss a class: the metric is still defined (sklearn warns) or it is skipped (ValueError).
        warnings.simplefilter("ignore")
        value = float(score(pd.Series(y), pred, proba, classes))
        samples = np.full(resamples, np.nan)
        for i in range(resamples):
            pick = rng.integers(0, len(y), len(y))
            with contextlib.suppress(ValueError):
                samples[i] = score(pd.Series(y[pick]), pred[pick], proba[pick], classes)
    return value, samples
{%- endif %}


def bounds(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of bootstrap samples at a confidence level."""
    kept = samples[~np.isnan(samples)]
    tail = (1 - confidence) / 2
    return float(np.quantile(kept, tail)), float(np.quantile(kept, 1 - tail))


def live_metrics(request: dict[str, Any]) -> dict[str, Any]:
    """Each version's live metric with its interval, and the comparison of the two versions with most labels.
{% if regression %}
    `request`: metric, confidence, resamples, seed and versions: {version: {y, pred}} (true and predicted numbers).
{%- else %}
    `request`: metric, classes, confidence, resamples, seed and versions: {version: {y, pred, proba}}.
{%- endif %}
    """
    metric, classes = request["metric"], [str(c) for c in request.get("classes") or []]
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: one of {', '.join(METRICS)}.")
    confidence, resamples = float(request.get("confidence", 0.95)), int(request.get("resamples", 1000))
    rng = np.random.default_rng(int(request.get("seed", 0)))
    versions: dict[str, Any] = {}
    samples: dict[str, np.ndarray] = {}
    for version, rows in request["versions"].items():
        if not rows["y"]:
            continue
        value, samples[version] = resampled(rows, metric, classes, resamples, rng)
        low, high = bounds(samples[version], confidence)
        versions[version] = {
            "rows": len(rows["y"]),
            "value": round(value, 6),
            "low": round(low, 6),
            "high": round(high, 6),
        }
    answer: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": METRICS[metric].higher_is_better,
        "confidence": confidence,
        "versions": versions,
        "comparison": None,
    }
    ranked = sorted(versions, key=lambda v: -versions[v]["rows"])
    if len(ranked) >= 2:
        a, b = sorted(ranked[:2])
        # The two samples are independent: resample i of each, differenced, is a draw of the difference.
        difference = samples[b] - samples[a]
        low, high = bounds(difference, confidence)
        significant = low > 0 or high < 0
        b_ahead = (high < 0) != METRICS[metric].higher_is_better
        answer["comparison"] = {
            "a": a,
            "b": b,
            "difference": round(versions[b]["value"] - versions[a]["value"], 6),
            "low": round(low, 6),
            "high": round(high, 6),
            "significant": significant,
            "better": (b if b_ahead else a) if significant else None,
        }
    return answer
