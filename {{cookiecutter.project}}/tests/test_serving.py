"""Request validation and prediction, without starting a server."""

import asyncio
import math

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package }} import serving, train

FEATURES = [
    {"name": "size", "kind": "numeric"},
    {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]},
]


def test_valid_instance_predicts_a_label_with_probabilities(prepared, model_params):
    train.train(prepared[0], "label", model_params, seed=0)
    model = train.joblib.load(train.MODEL_FILE)
    instance = serving.instance_model(FEATURES).model_validate({"size": 9.0, "colour": "red"})
    [prediction] = serving.predict(model, [instance], ["size", "colour"])
    assert prediction.label in {"big", "small"}
    assert math.isclose(sum(prediction.probabilities.values()), 1.0, abs_tol=1e-5)


@pytest.mark.parametrize(
    "payload",
    [
        {"size": 1.0},
        {"size": "big", "colour": "red"},
        {"size": float("nan"), "colour": "red"},
        {"size": 1.0, "colour": "red", "extra": 1},
        {"size": 1.0, "colour": None},
        {"size": 1.7e308, "colour": "red"},
    ],
    ids=["missing", "not-a-number", "nan", "unknown-field", "null", "beyond-magnitude-guard"],
)
def test_invalid_instance_is_rejected(payload):
    with pytest.raises(ValidationError):
        serving.instance_model(FEATURES).model_validate(payload)


def run_asgi(app, content_type: bytes) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}"}

    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": [(b"content-type", content_type)]}
    asyncio.run(app(scope, receive, send))
    return sent


def test_non_json_bodies_get_415_before_reaching_the_service():
    reached = []

    async def service(scope, receive, send):
        reached.append(scope["path"])

    middleware = serving.JsonOnly(service, paths=("/predict",))
    assert run_asgi(middleware, b"multipart/form-data")[0]["status"] == 415
    assert reached == []
    run_asgi(middleware, b"application/json; charset=utf-8")
    assert reached == ["/predict"]
