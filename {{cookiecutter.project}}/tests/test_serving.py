"""Request validation and prediction, without starting a server."""

import asyncio
import math

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.preprocessing import MinMaxScaler

from {{ cookiecutter.package }} import data, schema, serving, train
from {{ cookiecutter.package }}.params import ModelParams

FEATURES = [
    {"name": "size", "kind": "numeric", "nullable": False},
    {"name": "colour", "kind": "categorical", "nullable": False, "categories": ["blue", "red"]},
]
NULLABLE = [{**feature, "nullable": True} for feature in FEATURES]


def test_valid_instance_predicts_a_label_with_probabilities(prepared, model_params, declared, paths):
    train.train(prepared[0], "label", model_params, 0, declared, paths.model, paths.model_meta)
    model = train.joblib.load(paths.model)
    instance = serving.instance_model(FEATURES)
    probabilities = serving.numpy_probabilities(model, instance)
    [prediction] = serving.predictions(
        ["big", "small"], probabilities([instance.model_validate({"size": 9.0, "colour": "red"})])
    )
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
        {"size": None, "colour": "red"},
        {"size": 1.0, "colour": "green"},
        {"size": 1.7e308, "colour": "red"},
    ],
    ids=[
        "missing",
        "not-a-number",
        "nan",
        "unknown-field",
        "null-category",
        "null-number",
        "unknown-category",
        "beyond-magnitude-guard",
    ],
)
def test_invalid_instance_is_rejected(payload):
    with pytest.raises(ValidationError):
        serving.instance_model(FEATURES).model_validate(payload)


def test_unknown_category_is_refused_naming_the_field_and_the_allowed_values():
    with pytest.raises(ValidationError) as refused:
        serving.instance_model(FEATURES).model_validate({"size": 1.0, "colour": "green"})
    [error] = refused.value.errors()
    assert error["loc"] == ("colour",)
    assert error["msg"] == "Input should be one of 'blue', 'red'"


def test_a_long_list_of_allowed_values_is_shortened_in_the_error():
    shades = [f"shade{i:02}" for i in range(30)]
    features = [{"name": "shade", "kind": "categorical", "nullable": False, "categories": shades}]
    with pytest.raises(ValidationError, match=r"'shade09' and 20 more \(see /docs\)"):
        serving.instance_model(features).model_validate({"shade": "shade99"})


def test_allowed_values_are_published_in_the_request_schema():
    properties = serving.instance_model(NULLABLE).model_json_schema(by_alias=True)["properties"]
    assert {"enum": ["blue", "red"], "type": "string"} in properties["colour"]["anyOf"]
    assert {"type": "null"} in properties["size"]["anyOf"]


def test_text_feature_without_declared_values_accepts_any_short_text():
    features = [{"name": "note", "kind": "categorical", "nullable": False}]
    assert serving.instance_model(features).model_validate({"note": "anything at all"})
    with pytest.raises(ValidationError, match="at most 200 characters"):
        serving.instance_model(features).model_validate({"note": "x" * 201})


def test_nullable_features_accept_null():
    instance = serving.instance_model(NULLABLE).model_validate({"size": None, "colour": None})
    assert instance.model_dump(by_alias=True) == {"size": None, "colour": None}


@pytest.fixture
def gappy_model(workdir, frame, data_params, model_params, paths):
    """A model trained on data where some sizes and colours are missing, and red is the commonest colour."""
    frame.loc[frame.index % 8 == 0, "colour"] = "red"
    frame.loc[frame.index % 10 == 3, "size"] = None
    frame.loc[frame.index % 10 == 4, "colour"] = None
    frame.to_csv(workdir / "data.csv", index=False)
    train_csv, _ = data.prepare(data_params, paths.train, paths.test)
    declared = schema.infer(frame, "label")
    train.train(train_csv, "label", model_params, 0, declared, paths.model, paths.model_meta)
    return train.joblib.load(paths.model)


PATHS = {
    "pipeline": lambda model, instance: serving.pipeline_probabilities(model, ["size", "colour"]),
    "numpy": serving.numpy_probabilities,
}


@pytest.mark.parametrize("path", PATHS)
def test_null_features_are_imputed_by_the_model_as_in_training(gappy_model, path):
    # Given a model trained with gaps, and requests that leave the colour or the size out
    instance = serving.instance_model(NULLABLE)
    probabilities = PATHS[path](gappy_model, instance)

    # When each is predicted on its own (a column of nothing but nulls is where a None would slip through)
    def predict(payload):
        return serving.predictions(["big", "small"], probabilities([instance.model_validate(payload)]))[0]

    # Then a missing colour counts as the commonest one, as the imputer learned, not as an unknown value
    assert predict({"size": 7.0, "colour": None}) == predict({"size": 7.0, "colour": "red"})
    assert predict({"size": None, "colour": "red"}).label in {"big", "small"}


@pytest.fixture
def penguins(workdir, data_params, paths):
    """Penguin-like data, two numbers and two categories with gaps in each, split as the prepare stage does."""
    rng = np.random.default_rng(0)
    rows = 160
    species = rng.choice(["adelie", "chinstrap", "gentoo"], rows)
    frame = pd.DataFrame(
        {
            "bill": np.round(rng.normal(40, 4, rows) + 8 * (species != "adelie"), 1),
            "mass": np.round(rng.normal(4000, 300, rows) + 1000 * (species == "gentoo")),
            "island": np.where(species == "chinstrap", "dream", rng.choice(["biscoe", "torgersen"], rows)),
            "sex": rng.choice(["female", "male"], rows),
            "label": species,
        }
    )
    frame.loc[frame.index % 11 == 2, ["bill", "mass"]] = None
    frame.loc[frame.index % 13 == 5, "island"] = None
    frame.loc[frame.index % 7 == 3, "sex"] = None
    frame.to_csv(workdir / "data.csv", index=False)
    return frame, *data.prepare(data_params, paths.train, paths.test)


@pytest.mark.parametrize("family", sorted(train.ESTIMATORS))
def test_numpy_path_gives_the_pipelines_probabilities_and_labels(penguins, paths, family):
    # Given a model of each family trained on data with gaps, and a schema that declares an island it never saw
    frame, train_csv, test_csv = penguins
    declared = schema.infer(frame, "label")
    meta, _ = train.train(train_csv, "label", ModelParams(family=family), 0, declared, paths.model, paths.model_meta)
    model = train.joblib.load(paths.model)
    features = [
        {**f, "categories": [*f["categories"], "atlantis"]} if f["name"] == "island" else f for f in meta["features"]
    ]
    instance = serving.instance_model(features)
    rows = pd.read_csv(test_csv).drop(columns="label")
    rows.loc[len(rows)] = [None, None, None, None]
    rows.loc[len(rows)] = [45.0, 4200.0, "atlantis", "female"]
    assert rows.isna().any().all(), "the reference rows should hold a gap in every column"
    instances = [
        instance.model_validate({k: None if pd.isna(v) else v for k, v in row.items()})
        for row in rows.to_dict("records")
    ]

    # When the reference rows are predicted through the numpy path
    probabilities = serving.numpy_probabilities(model, instance)
    assert probabilities is not None
    fast = probabilities(instances)

    # Then the probabilities are the pipeline's on a DataFrame, and the labels its predictions
    np.testing.assert_allclose(fast, model.predict_proba(rows), rtol=0, atol=1e-9)
    assert [p.label for p in serving.predictions(meta["classes"], fast)] == list(model.predict(rows))


def test_pipelines_the_numpy_path_does_not_know_are_served_by_the_pipeline(gappy_model):
    # Given a pipeline whose preprocessing differs from the one train.build makes
    gappy_model[0].transformers_[0][1].steps[1] = ("scale", MinMaxScaler())

    # When the service asks for the numpy path, then there is none and it falls back to the pipeline
    assert serving.numpy_probabilities(gappy_model, serving.instance_model(NULLABLE)) is None


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


def test_the_readiness_probe_is_a_request_the_service_accepts():
    features = [*FEATURES, {"name": "note", "kind": "categorical", "nullable": False}]
    probe = serving.probe_instance(features)
    assert serving.instance_model(features).model_validate(probe)
    assert probe == {"size": 0.0, "colour": "blue", "note": ""}


def test_readiness_is_checked_once_and_a_failed_check_keeps_the_service_unready(caplog):
    # Given one check that passes and one whose prediction fails
    calls = []
    passing = serving.readiness(lambda: calls.append("predicted"))

    def broken():
        raise ValueError("the model cannot predict")

    failing = serving.readiness(broken)
    # When each is probed repeatedly
    # Then the passing one predicts once and stays ready, and the failing one stays unready, saying why
    assert [passing(), passing(), passing()] == [True, True, True]
    assert calls == ["predicted"]
    assert [failing(), failing()] == [False, False]
    assert "the model cannot predict" in caplog.text
    assert caplog.text.count("failed its first prediction") == 1
