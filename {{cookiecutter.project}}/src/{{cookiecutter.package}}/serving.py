"""Request and response models of the service and the prediction itself, free of BentoML so they test fast."""

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

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

MAX_INSTANCES = 1000
# Numbers beyond this magnitude are refused: real features do not reach it, and sums of values near the
# float limit overflow to inf/NaN inside the model.
MAX_MAGNITUDE = 1e12


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


def predict(model: Any, instances: list[BaseModel], feature_names: list[str]) -> list[Prediction]:
    """Run the sklearn pipeline on validated instances."""
    # NaN, not None, marks a missing value: the imputers do not see None in a text column as missing.
    rows = [{k: math.nan if v is None else v for k, v in item.model_dump(by_alias=True).items()} for item in instances]
    frame = pd.DataFrame(rows, columns=feature_names)
    classes = [str(c) for c in model.classes_]
    return [
        Prediction(label=str(label), probabilities={c: round(float(p), 6) for c, p in zip(classes, row, strict=True)})
        for label, row in zip(model.predict(frame), model.predict_proba(frame), strict=True)
    ]


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
