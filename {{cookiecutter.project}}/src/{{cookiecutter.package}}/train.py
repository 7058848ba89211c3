{%- set regression = cookiecutter.task == "regression" -%}
"""Train the configured estimator and save it with the metadata that pins and serves it."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
{%- if regression %}
import numpy as np
{%- endif %}
import pandas as pd
import sklearn
from sklearn.compose import ColumnTransformer
{%- if regression %}
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
{%- else %}
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
{%- endif %}
from sklearn.impute import SimpleImputer
{%- if regression %}
from sklearn.linear_model import Ridge
{%- else %}
from sklearn.linear_model import LogisticRegression
{%- endif %}
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from .metadata import META_FORMAT, sha256
from .params import ModelParams

if TYPE_CHECKING:
    # Only for the type: training reads the schema pandera parsed; nothing else here needs pandera.
    import pandera.pandas as pa
{% if regression %}
ESTIMATORS = {
    "ridge": Ridge,
    "random_forest": RandomForestRegressor,
    "hist_gradient_boosting": HistGradientBoostingRegressor,
}
# The served answers are counted in the bins between the training target's deciles (the monitor's "classes").
BIN_LEVELS = [i / 10 for i in range(1, 10)]
{%- else %}
ESTIMATORS = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "hist_gradient_boosting": HistGradientBoostingClassifier,
}
{%- endif %}


def features_of(frame: pd.DataFrame, target: str, declared: pa.DataFrameSchema) -> list[dict[str, Any]]:
    """Describe each feature in training order: its kind, whether it may be missing, and its declared categories."""
    described = []
    for name in frame.columns.drop(target):
        if name not in declared.columns:
            raise ValueError(f"feature {name!r} is not declared in the data schema; declare it before training.")
        column = declared.columns[name]
        feature: dict[str, Any] = {"name": str(name), "kind": "numeric", "nullable": bool(column.nullable)}
        if not pd.api.types.is_numeric_dtype(frame[name]):
            feature["kind"] = "categorical"
            allowed = [check.statistics["allowed_values"] for check in column.checks if check.name == "isin"]
            # A text column declared without its values (too many to list) stays free text when served.
            if allowed:
                feature["categories"] = sorted(str(value) for value in allowed[0])
        described.append(feature)
    return described


def build(params: ModelParams, features: list[dict[str, Any]], seed: int) -> Pipeline:
    """An sklearn pipeline: impute, scale or one-hot encode, then the estimator."""
    if params.family not in ESTIMATORS:
        raise ValueError(f"unknown model family {params.family!r}; use one of {', '.join(ESTIMATORS)}.")
    numeric = [f["name"] for f in features if f["kind"] == "numeric"]
    categorical = [f["name"] for f in features if f["kind"] == "categorical"]
    preprocess = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                categorical,
            ),
        ],
        # Histogram gradient boosting takes dense input only; many categories would make the one-hot columns sparse.
        sparse_threshold=0.0 if params.family == "hist_gradient_boosting" else 0.3,
    )
    estimator = ESTIMATORS[params.family](random_state=seed, **params.hyperparameters)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def train(
    train_csv: Path,
    target: str,
    params: ModelParams,
    seed: int,
    declared: pa.DataFrameSchema,
    model_file: Path,
    meta_file: Path,
) -> tuple[dict[str, Any], float]:
    """Fit on the training split, save model and metadata; return the metadata and the seconds fitting took."""
    frame = pd.read_csv(train_csv)
    features = features_of(frame, target, declared)
    model = build(params, features, seed)
    started = time.perf_counter()
{%- if regression %}
    model.fit(frame.drop(columns=[target]), frame[target])
{%- else %}
    model.fit(frame.drop(columns=[target]), frame[target].astype(str))
{%- endif %}
    seconds = time.perf_counter() - started
    model_file.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_file)
    meta = {
        "format": META_FORMAT,
        "sha256": sha256(model_file),
        "family": params.family,
        "hyperparameters": params.hyperparameters,
        "task": "{{ cookiecutter.task }}",
        "target": target,
{%- if regression %}
        # Ties in the target can make two deciles one edge: the bins are between distinct edges.
        "bins": sorted({round(float(edge), 6) for edge in np.quantile(frame[target], BIN_LEVELS)}),
{%- else %}
        "classes": [str(c) for c in model.classes_],
{%- endif %}
        "features": features,
        "train_rows": len(frame),
        "versions": {"python": platform.python_version(), "scikit-learn": sklearn.__version__},
    }
    meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    # The fit time stays out of model.json so that retraining the same model rewrites identical files.
    return meta, seconds
