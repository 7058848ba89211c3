{%- set regression = cookiecutter.task == "regression" -%}
"""The service's request and response models, its predictions and their recording, free of BentoML to test fast."""

import collections
import functools
import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from operator import attrgetter
from typing import Annotated, Any, Literal, Protocol

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    create_model,
)
from pydantic_core import PydanticCustomError
from sklearn.compose import ColumnTransformer
{%- if not regression %}
from sklearn.ensemble import RandomForestClassifier
{%- endif %}
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
{% if regression %}
from .metadata import bin_names, bin_of
{%- endif %}
from .params import MonitorParams

MAX_INSTANCES = 1000
# Numbers beyond this magnitude are refused: real features do not reach it, and sums of values near the
# float limit overflow to inf/NaN inside the model.
MAX_MAGNITUDE = 1e12


LOG = logging.getLogger(__name__)

# An error message lists at most this many allowed values; /docs lists them all.
SHOWN_CATEGORIES = 10

# BentoML writes the monitor's JSON lines to <log path>/predictions/data/data.<worker>.log.
MONITOR = "predictions"
{%- if regression %}
# Exposed as mlgitops_predictions_total{class, model} on /metrics, a name the kit's monitor and analysis query;
# a regressor's "class" is the bin of the training target's deciles its answer falls in (model.json's bins).
{%- else %}
# Exposed as mlgitops_predictions_total{class, model} on /metrics, a name the kit's monitor and analysis query.
{%- endif %}
PREDICTIONS_METRIC = "mlgitops_predictions"
# The release's own requests (its smoke test, its verification, the canary) carry this header: they are no live
# traffic, so they are neither counted nor logged, and a window without users stays "no evidence" for the monitor.
SYNTHETIC_HEADER = "x-mlgitops-synthetic"


def one_of(categories: list[str]) -> Callable[[Any, ValidatorFunctionWrapHandler], Any]:
    """A validator that names the allowed values when a value is not one of them."""
    shown = ", ".join(repr(c) for c in categories[:SHOWN_CATEGORIES])
    if len(categories) > SHOWN_CATEGORIES:
        shown += f" and {len(categories) - SHOWN_CATEGORIES} more (see /docs)"

    def check(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise PydanticCustomError("category", "Input should be one of {allowed}", {"allowed": shown}) from None

    return check


def feature_type(feature: dict[str, Any]) -> Any:
    """The type one feature's value must have: a bounded number, a declared category, or bounded text."""
    if feature["kind"] == "numeric":
        kind: Any = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
    elif "categories" in feature:
        kind = Annotated[Literal[tuple(feature["categories"])], WrapValidator(one_of(feature["categories"]))]
    else:
        kind = Annotated[str, Field(max_length=200)]
    # The model imputes a missing value of a column the data schema declares nullable.
    return kind | None if feature.get("nullable", False) else kind


def field_name(index: int) -> str:
    """The attribute of a validated instance that holds the feature at this index (its alias is the feature's name)."""
    return f"f{index}"


def instance_model(features: list[dict[str, Any]]) -> type[BaseModel]:
    """A pydantic model with one required field per feature, so bad requests fail with a readable 400."""
    fields = {
        field_name(index): (Annotated[feature_type(feature), Field(alias=feature["name"])], ...)
        for index, feature in enumerate(features)
    }
    return create_model("Instance", __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields)

{% if regression %}
class Prediction(BaseModel):
    """One prediction: the number the model predicts."""

    value: float
{%- else %}
class Prediction(BaseModel):
    """One prediction: the label and the probability of each class."""

    label: str
    probabilities: dict[str, float]
{%- endif %}


class Predictions(BaseModel):
    """The predictions, in request order, and the tag of the model that made them."""

    model: str
    predictions: list[Prediction]


class Answer(Predictions):
    """What /predict answers: the predictions and the request's id, under which the service logs them."""

    request_id: str

{% if regression %}
# From validated instances to an array of predicted numbers, or of features, one row per instance.
Numbers = Callable[[list[BaseModel]], np.ndarray]
{%- else %}
# From validated instances to an array of class probabilities, or of features, one row per instance.
Probabilities = Callable[[list[BaseModel]], np.ndarray]
{%- endif %}
Block = Callable[[list[BaseModel]], np.ndarray]
Values = Callable[[BaseModel], tuple[Any, ...]]

{% if regression %}
def pipeline_numbers(model: Any, feature_names: list[str]) -> Numbers:
    """Predicted numbers from the sklearn pipeline itself, fed a DataFrame as in training."""

    def numbers(instances: list[BaseModel]) -> np.ndarray:
        # NaN, not None, marks a missing value: the imputers do not see None in a text column as missing.
        rows = [{k: math.nan if v is None else v for k, v in i.model_dump(by_alias=True).items()} for i in instances]
        return model.predict(pd.DataFrame(rows, columns=feature_names))

    return numbers
{%- else %}
def pipeline_probabilities(model: Any, feature_names: list[str]) -> Probabilities:
    """Class probabilities from the sklearn pipeline itself, fed a DataFrame as in training."""

    def probabilities(instances: list[BaseModel]) -> np.ndarray:
        # NaN, not None, marks a missing value: the imputers do not see None in a text column as missing.
        rows = [{k: math.nan if v is None else v for k, v in i.model_dump(by_alias=True).items()} for i in instances]
        return model.predict_proba(pd.DataFrame(rows, columns=feature_names))

    return probabilities
{%- endif %}


def values_of(fields: Sequence[str]) -> Values:
    """A getter of the given fields of an instance, as a tuple in that order."""
    get = attrgetter(*fields)
    return get if len(fields) > 1 else lambda item: (get(item),)


def numeric_block(imputer: SimpleImputer, scaler: StandardScaler, values: Values) -> Block | None:
    """Median imputation and standard scaling of the numeric fields, with the statistics fitted in training."""
    if np.isnan(imputer.statistics_).any():
        return None  # the imputer drops a column that was empty in training
    fill = imputer.statistics_
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def block(instances: list[BaseModel]) -> np.ndarray:
        x = np.array([values(item) for item in instances], dtype=np.float64)  # None becomes NaN
        x = np.where(np.isnan(x), fill, x)
        # The same operations, in the same order, as StandardScaler.transform: equal to the last bit.
        if mean is not None:
            x -= mean
        if scale is not None:
            x /= scale
        return x

    return block


def categorical_block(imputer: SimpleImputer, encoder: OneHotEncoder, values: Values) -> Block | None:
    """Most-frequent imputation and one-hot encoding of the categorical fields, unknown values all zeros."""
    fills = list(imputer.statistics_)
    texts = [*fills, *(category for categories in encoder.categories_ for category in categories)]
    if not all(isinstance(text, str) for text in texts):
        return None
    if encoder.drop is not None or encoder.handle_unknown != "ignore":
        return None
    if encoder.min_frequency is not None or encoder.max_categories is not None:
        return None  # infrequent categories share a column
    columns, start = [], 0
    for categories in encoder.categories_:
        columns.append({category: start + index for index, category in enumerate(categories)})
        start += len(categories)

    def block(instances: list[BaseModel]) -> np.ndarray:
        x = np.zeros((len(instances), start))
        for row, item in enumerate(instances):
            for value, fill, column in zip(values(item), fills, columns, strict=True):
                hot = column.get(fill if value is None else value)
                if hot is not None:
                    x[row, hot] = 1.0
        return x

    return block


{% if not regression -%}
def forest_probabilities(forest: RandomForestClassifier) -> Callable[[np.ndarray], np.ndarray]:
    """A forest's predict_proba without its per-tree checks and dispatch, which cost more than the trees."""
    trees = [tree.tree_ for tree in forest.estimators_]
    classes = forest.n_classes_

    def probabilities(x: np.ndarray) -> np.ndarray:
        # The forest's own steps: trees read float32, their class fractions are summed in order, then averaged.
        x = np.ascontiguousarray(x, dtype=np.float32)
        total = np.zeros((len(x), classes))
        for tree in trees:
            total += tree.predict(x)[:, :classes]
        total /= len(trees)
        return total

    return probabilities


{% endif -%}
{% if regression -%}
def numpy_numbers(model: Any, instance: type[BaseModel]) -> Numbers | None:
    """Predicted numbers that skip pandas and the ColumnTransformer's per-call checks, or None if not applicable.

    Applies to the pipelines `train.build` makes (impute and scale, impute and one-hot, then the estimator),
    using their fitted statistics. Any other pipeline gets None.
    """
{%- else -%}
def numpy_probabilities(model: Any, instance: type[BaseModel]) -> Probabilities | None:
    """Class probabilities that skip pandas and the ColumnTransformer's per-call checks, or None if not applicable.

    Applies to the pipelines `train.build` makes (impute and scale, impute and one-hot, then the estimator),
    using their fitted statistics; a random forest's trees are called directly. Any other pipeline gets None.
    """
{%- endif %}
    field_of = {field.alias: name for name, field in instance.model_fields.items()}
    if not isinstance(model, Pipeline) or len(model.steps) != 2 or not isinstance(model[0], ColumnTransformer):
        return None
    preprocess, estimator = model[0], model[-1]
    builders = {(SimpleImputer, StandardScaler): numeric_block, (SimpleImputer, OneHotEncoder): categorical_block}
    blocks = []
    for _name, transformer, columns in preprocess.transformers_:
        if not isinstance(columns, list):
            return None
        if not columns or transformer == "drop":
            continue
        steps = [step for _, step in transformer.steps] if isinstance(transformer, Pipeline) else []
        builder = builders.get(tuple(type(step) for step in steps))
        if builder is None or not all(isinstance(c, str) and c in field_of for c in columns):
            return None
        imputer, second = steps
        missing = imputer.missing_values
        if imputer.add_indicator or not (isinstance(missing, float) and math.isnan(missing)):
            return None
        block = builder(imputer, second, values_of([field_of[c] for c in columns]))
        if block is None:
            return None
        blocks.append(block)
{% if regression %}
    estimate = estimator.predict

    def numbers(instances: list[BaseModel]) -> np.ndarray:
        return estimate(np.hstack([block(instances) for block in blocks]))

    return numbers
{%- else %}
    if isinstance(estimator, RandomForestClassifier) and estimator.n_outputs_ == 1:
        estimate = forest_probabilities(estimator)
    else:
        estimate = estimator.predict_proba

    def probabilities(instances: list[BaseModel]) -> np.ndarray:
        return estimate(np.hstack([block(instances) for block in blocks]))

    return probabilities
{%- endif %}

{% if regression %}
def predictions(numbers: np.ndarray) -> list[Prediction]:
    """One prediction per predicted number, rounded to six decimals as the service sends it."""
    return [Prediction(value=round(number, 6)) for number in numbers.tolist()]
{%- else %}
def predictions(classes: list[str], probabilities: np.ndarray) -> list[Prediction]:
    """One prediction per row of probabilities: the most probable class, and each class's probability rounded."""
    # The most probable class is what predict() returns for these estimators; one predict_proba call
    # instead of two halves the model's time per request.
    labels = probabilities.argmax(axis=1).tolist()
    return [
        Prediction(label=classes[label], probabilities={c: round(p, 6) for c, p in zip(classes, row, strict=True)})
        for label, row in zip(labels, probabilities.tolist(), strict=True)
    ]
{%- endif %}


class Monitor(Protocol):
    """What the recorder needs of a BentoML monitor: one value of one column of the current record."""

    def log(self, data: Any, name: str, role: str, data_type: str) -> None: ...


def sampled(request_id: int, share: float) -> bool:
    """Whether a request is logged: decided by its id alone, so the same ids are logged at a share every time."""
    if share >= 1:
        return True
    # Hashed, so that a share of the ids is logged however the ids are drawn.
    digest = hashlib.sha256(str(request_id).encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def hashed(value: Any) -> str | None:
    """The unsalted SHA-256 of a value as text (a number as Python writes it, e.g. 4200.0); null stays null."""
    return None if value is None else hashlib.sha256(str(value).encode()).hexdigest()


@functools.cache
def prediction_counter() -> Any:
    """The per-class prediction counter, made once per process: prometheus_client refuses a second one."""
    # Imported here, not at the top: BentoML's workers point prometheus_client at their shared multiprocess
    # directory after importing the service, and the client reads that setting when it is first imported.
    import prometheus_client

    return prometheus_client.Counter(
        PREDICTIONS_METRIC, "Predictions served, by predicted class and model tag.", ["class", "model"]
    )


class Recorder:
    """Counts every prediction on /metrics and logs the sampled requests through a BentoML monitor.
{% if regression %}
    A logged request is one JSON line: the model's tag and the Bento's version, then one column per logged
    feature (`input.<name>`), the predicted numbers (`value`) and the decile bin each falls in (`label`, which
    the monitor compares with the reference set's), each holding one value per instance in request order;
    BentoML adds the timestamp and the request's id.
    """

    def __init__(
        self, settings: MonitorParams, features: list[dict[str, Any]], bins: list[float], model: str, version: str
    ) -> None:
        self.sample = settings.sample
        self.bins = bins
        counter = prediction_counter()
        # Every bin has its series from the start, at 0: a query about a bin not yet predicted finds 0.
        self.counters = {name: counter.labels(name, model) for name in bin_names(bins)}
{%- else %}
    A logged request is one JSON line: the model's tag and the Bento's version, then one column per logged
    feature (`input.<name>`), the labels (`label`) and each class's probabilities (`probability.<class>`),
    each holding one value per instance in request order; BentoML adds the timestamp and the request's id.
    """

    def __init__(
        self, settings: MonitorParams, features: list[dict[str, Any]], classes: list[str], model: str, version: str
    ) -> None:
        self.sample = settings.sample
        counter = prediction_counter()
        # Every class has its series from the start, at 0: a query about a class not yet predicted finds 0.
        self.counters = {name: counter.labels(name, model) for name in classes}
{%- endif %}
        self.about = ((model, "model"), (version, "bento_version"))
        kept = [(index, feature) for index, feature in enumerate(features) if feature["name"] not in settings.drop]
        # The column, BentoML type and hashing of each kept feature; a dropped one is never even read.
        self.inputs: list[tuple[str, str, bool]] = []
        for _, feature in kept:
            secret = feature["name"] in settings.hash
            kind = "numerical_sequence" if feature["kind"] == "numeric" and not secret else "categorical"
            self.inputs.append((f"input.{feature['name']}", kind, secret))
        self.values = values_of([field_name(index) for index, _ in kept]) if kept else None
{%- if not regression %}
        self.outputs = [(name, f"probability.{name}") for name in classes]
{%- endif %}

    def record(
        self,
        request_id: int,
        instances: Sequence[BaseModel],
        found: Sequence[Prediction],
        monitor: Callable[[], AbstractContextManager[Monitor]],
    ) -> bool:
        """Count the request's predictions and, if its id is sampled, log them; return whether it was logged."""
{%- if regression %}
        labels = [bin_of(prediction.value, self.bins) for prediction in found]
{%- else %}
        labels = [prediction.label for prediction in found]
{%- endif %}
        for label, count in collections.Counter(labels).items():
            self.counters[label].inc(count)
        if not sampled(request_id, self.sample):
            return False
        # One record per request, its columns lists: BentoML formats and writes a line per record, and a line per
        # instance cost 11 ms for 100 instances of 30 features on 2 cores, as much as serving them; this, 1.5 ms.
        with monitor() as log:
            # BentoML's roles are feature, prediction and target: all but the inputs describe the answer.
            for value, column in self.about:
                log.log(value, column, "prediction", "categorical")
            columns = zip(*map(self.values, instances), strict=True) if self.values else ()
            for (column, kind, secret), values in zip(self.inputs, columns, strict=True):
                log.log([hashed(value) for value in values] if secret else list(values), column, "feature", kind)
{%- if regression %}
            log.log([prediction.value for prediction in found], "value", "prediction", "numerical_sequence")
            log.log(labels, "label", "prediction", "categorical")
{%- else %}
            log.log(labels, "label", "prediction", "categorical")
            for name, column in self.outputs:
                log.log([p.probabilities[name] for p in found], column, "prediction", "numerical_sequence")
{%- endif %}
        return True


def probe_instance(features: list[dict[str, Any]]) -> dict[str, Any]:
    """A request instance built from the model's metadata alone: zero, the first declared category, or empty text."""
    return {
        f["name"]: 0.0 if f["kind"] == "numeric" else (f["categories"][0] if f.get("categories") else "")
        for f in features
    }


def readiness(check: Callable[[], object]) -> Callable[[], bool]:
    """A readiness probe that runs the check once and remembers whether it passed, logging why when it did not."""
    outcome: list[bool] = []

    def ready() -> bool:
        if not outcome:
            try:
                check()
                outcome.append(True)
            except Exception:
                LOG.exception("the model failed its first prediction; the service stays unready")
                outcome.append(False)
        return outcome[0]

    return ready


class JsonOnly:
    """ASGI middleware: API calls must send JSON. Other bodies get 415 before a parser can fail on them (a 500)."""

    def __init__(self, app: Any, paths: tuple[str, ...]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in self.paths:
            headers = dict(scope.get("headers") or [])
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if media_type not in (b"application/json", b""):
                body = b'{"error": "send the request body as JSON with Content-Type: application/json"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 415,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
