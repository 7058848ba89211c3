"""Request and response models of the service and the prediction itself, free of BentoML so they test fast."""

import logging
import math
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Annotated, Any, Literal

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
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

MAX_INSTANCES = 1000
# Numbers beyond this magnitude are refused: real features do not reach it, and sums of values near the
# float limit overflow to inf/NaN inside the model.
MAX_MAGNITUDE = 1e12


LOG = logging.getLogger(__name__)

# An error message lists at most this many allowed values; /docs lists them all.
SHOWN_CATEGORIES = 10


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


def instance_model(features: list[dict[str, Any]]) -> type[BaseModel]:
    """A pydantic model with one required field per feature, so bad requests fail with a readable 400."""
    fields = {
        f"f{index}": (Annotated[feature_type(feature), Field(alias=feature["name"])], ...)
        for index, feature in enumerate(features)
    }
    return create_model("Instance", __config__=ConfigDict(extra="forbid", populate_by_name=False), **fields)


class Prediction(BaseModel):
    """One prediction: the label and the probability of each class."""

    label: str
    probabilities: dict[str, float]


class Predictions(BaseModel):
    """The predictions, in request order, and the tag of the model that made them."""

    model: str
    predictions: list[Prediction]


# From validated instances to an array of class probabilities, or of features, one row per instance.
Probabilities = Callable[[list[BaseModel]], np.ndarray]
Block = Callable[[list[BaseModel]], np.ndarray]
Values = Callable[[BaseModel], tuple[Any, ...]]


def pipeline_probabilities(model: Any, feature_names: list[str]) -> Probabilities:
    """Class probabilities from the sklearn pipeline itself, fed a DataFrame as in training."""

    def probabilities(instances: list[BaseModel]) -> np.ndarray:
        # NaN, not None, marks a missing value: the imputers do not see None in a text column as missing.
        rows = [{k: math.nan if v is None else v for k, v in i.model_dump(by_alias=True).items()} for i in instances]
        return model.predict_proba(pd.DataFrame(rows, columns=feature_names))

    return probabilities


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


def numpy_probabilities(model: Any, instance: type[BaseModel]) -> Probabilities | None:
    """Class probabilities that skip pandas and the ColumnTransformer's per-call checks, or None if not applicable.

    Applies to the pipelines `train.build` makes (impute and scale, impute and one-hot, then the estimator),
    using their fitted statistics; a random forest's trees are called directly. Any other pipeline gets None.
    """
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

    if isinstance(estimator, RandomForestClassifier) and estimator.n_outputs_ == 1:
        estimate = forest_probabilities(estimator)
    else:
        estimate = estimator.predict_proba

    def probabilities(instances: list[BaseModel]) -> np.ndarray:
        return estimate(np.hstack([block(instances) for block in blocks]))

    return probabilities


def predictions(classes: list[str], probabilities: np.ndarray) -> list[Prediction]:
    """One prediction per row of probabilities: the most probable class, and each class's probability rounded."""
    # The most probable class is what predict() returns for these estimators; one predict_proba call
    # instead of two halves the model's time per request.
    labels = probabilities.argmax(axis=1).tolist()
    return [
        Prediction(label=classes[label], probabilities={c: round(p, 6) for c, p in zip(classes, row, strict=True)})
        for label, row in zip(labels, probabilities.tolist(), strict=True)
    ]


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
