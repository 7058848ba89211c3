"""Request and response models of the service and the prediction itself, free of BentoML so they test fast."""

from typing import Annotated, Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

MAX_INSTANCES = 1000
# Numbers beyond this magnitude are refused: real features do not reach it, and sums of values near the
# float limit overflow to inf/NaN inside the model.
MAX_MAGNITUDE = 1e12


def instance_model(features: list[dict[str, Any]]) -> type[BaseModel]:
    """A pydantic model with one required field per feature, so bad requests fail with a readable 400."""
    fields: dict[str, Any] = {}
    for index, feature in enumerate(features):
        if feature["kind"] == "numeric":
            kind: Any = Annotated[
                float, Field(alias=feature["name"], allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)
            ]
        else:
            kind = Annotated[str, Field(alias=feature["name"], max_length=200)]
        fields[f"f{index}"] = (kind, ...)
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
    frame = pd.DataFrame([item.model_dump(by_alias=True) for item in instances], columns=feature_names)
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
