{%- set regression = cookiecutter.task == "regression" -%}
"""Request validation, prediction and what the service records of it, without starting a server."""

import asyncio
import datetime
import hashlib
import json
import math
from pathlib import Path

import bentoml
import numpy as np
import pandas as pd
import prometheus_client
import pytest
from pydantic import ValidationError
from sklearn.preprocessing import MinMaxScaler

from {{ cookiecutter.package }} import data, schema, serving, train
from {{ cookiecutter.package }}.params import ModelParams, MonitorParams, load_monitor

ROOT = Path(__file__).resolve().parents[1]

FEATURES = [
    {"name": "size", "kind": "numeric", "nullable": False},
    {"name": "colour", "kind": "categorical", "nullable": False, "categories": ["blue", "red"]},
]
NULLABLE = [{**feature, "nullable": True} for feature in FEATURES]

{% if regression %}
def test_valid_instance_predicts_a_number(prepared, model_params, declared, paths):
    train.train(prepared[0], "label", model_params, 0, declared, paths.model, paths.model_meta)
    model = train.joblib.load(paths.model)
    instance = serving.instance_model(FEATURES)
    numbers = serving.numpy_numbers(model, instance)
    [prediction] = serving.predictions(numbers([instance.model_validate({"size": 9.0, "colour": "red"})]))
    # the frame's target is 3 * size, plus 5 for red: a model that learned it answers near 32
    assert math.isfinite(prediction.value) and 20 < prediction.value < 40
    assert prediction.value == round(prediction.value, 6)
{%- else %}
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
{%- endif %}


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

{% if regression %}
PATHS = {
    "pipeline": lambda model, instance: serving.pipeline_numbers(model, ["size", "colour"]),
    "numpy": serving.numpy_numbers,
}
{%- else %}
PATHS = {
    "pipeline": lambda model, instance: serving.pipeline_probabilities(model, ["size", "colour"]),
    "numpy": serving.numpy_probabilities,
}
{%- endif %}


@pytest.mark.parametrize("path", PATHS)
def test_null_features_are_imputed_by_the_model_as_in_training(gappy_model, path):
    # Given a model trained with gaps, and requests that leave the colour or the size out
    instance = serving.instance_model(NULLABLE)
{%- if regression %}
    numbers = PATHS[path](gappy_model, instance)

    # When each is predicted on its own (a column of nothing but nulls is where a None would slip through)
    def predict(payload):
        return serving.predictions(numbers([instance.model_validate(payload)]))[0]

    # Then a missing colour counts as the commonest one, as the imputer learned, not as an unknown value
    assert predict({"size": 7.0, "colour": None}) == predict({"size": 7.0, "colour": "red"})
    assert math.isfinite(predict({"size": None, "colour": "red"}).value)
{%- else %}
    probabilities = PATHS[path](gappy_model, instance)

    # When each is predicted on its own (a column of nothing but nulls is where a None would slip through)
    def predict(payload):
        return serving.predictions(["big", "small"], probabilities([instance.model_validate(payload)]))[0]

    # Then a missing colour counts as the commonest one, as the imputer learned, not as an unknown value
    assert predict({"size": 7.0, "colour": None}) == predict({"size": 7.0, "colour": "red"})
    assert predict({"size": None, "colour": "red"}).label in {"big", "small"}
{%- endif %}


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
{%- if regression %}
            "label": np.round(rng.normal(50, 5, rows) + 20 * (species == "gentoo"), 2),
{%- else %}
            "label": species,
{%- endif %}
        }
    )
    frame.loc[frame.index % 11 == 2, ["bill", "mass"]] = None
    frame.loc[frame.index % 13 == 5, "island"] = None
    frame.loc[frame.index % 7 == 3, "sex"] = None
    frame.to_csv(workdir / "data.csv", index=False)
    return frame, *data.prepare(data_params, paths.train, paths.test)


@pytest.mark.parametrize("family", sorted(train.ESTIMATORS))
def test_numpy_path_gives_the_pipelines_{{ "numbers" if regression else "probabilities_and_labels" }}(penguins, paths, family):
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
{% if regression %}
    # When the reference rows are predicted through the numpy path
    numbers = serving.numpy_numbers(model, instance)
    assert numbers is not None
    fast = numbers(instances)

    # Then the numbers are the pipeline's on a DataFrame
    np.testing.assert_allclose(fast, model.predict(rows), rtol=0, atol=1e-9)
    assert meta["task"] == "regression"
{%- else %}
    # When the reference rows are predicted through the numpy path
    probabilities = serving.numpy_probabilities(model, instance)
    assert probabilities is not None
    fast = probabilities(instances)

    # Then the probabilities are the pipeline's on a DataFrame, and the labels its predictions
    np.testing.assert_allclose(fast, model.predict_proba(rows), rtol=0, atol=1e-9)
    assert [p.label for p in serving.predictions(meta["classes"], fast)] == list(model.predict(rows))
{%- endif %}


def test_pipelines_the_numpy_path_does_not_know_are_served_by_the_pipeline(gappy_model):
    # Given a pipeline whose preprocessing differs from the one train.build makes
    gappy_model[0].transformers_[0][1].steps[1] = ("scale", MinMaxScaler())

    # When the service asks for the numpy path, then there is none and it falls back to the pipeline
    assert serving.numpy_{{ "numbers" if regression else "probabilities" }}(gappy_model, serving.instance_model(NULLABLE)) is None


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


# --- what the service records ---
{% if regression %}
# The recorder counts a regressor's answers in the bins between the training target's deciles: here four edges.
BINS = [10.0, 20.0, 30.0, 40.0]
BIG = serving.Prediction(value=45.5)  # above the last edge: q5
SMALL = serving.Prediction(value=12.25)  # between the first two: q2
{%- else %}
BIG = serving.Prediction(label="big", probabilities={"big": 0.75, "small": 0.25})
SMALL = serving.Prediction(label="small", probabilities={"big": 0.1, "small": 0.9})
{%- endif %}


@pytest.fixture
def monitor(tmp_path):
    """A BentoML monitor of the test's own, writing its JSON lines under tmp_path as the service's does under its log
    path, and a reader of the records it wrote."""
    name = f"predictions-{tmp_path.name}"

    def open_monitor():
        return bentoml.monitor(name, monitor_class="default", monitor_options={"log_path": str(tmp_path)})

    def records() -> list[dict]:
        lines = [line for log in sorted(tmp_path.glob(f"{name}/data/*.log")) for line in log.read_text().splitlines()]
        return [json.loads(line) for line in lines]

    return open_monitor, records


@pytest.fixture
def request_id():
    """The id of a request, as the service reads it from BentoML; cleared afterwards, as the next request finds it."""
    from bentoml._internal.context import trace_context

    from {{ cookiecutter.package }}.service import current_request_id

    yield current_request_id()
    trace_context.request_id = None


def counted(model: str, label: str) -> float:
    """What /metrics would say of a model's predictions of one class."""
    found = prometheus_client.REGISTRY.get_sample_value(
        f"{serving.PREDICTIONS_METRIC}_total", {"class": label, "model": model}
    )
    return 0.0 if found is None else found


def record(settings: MonitorParams, monitor, request_id: int, rows: list[dict], found, model: str = "m:1") -> bool:
    recorder = serving.Recorder(settings, NULLABLE, {{ "BINS" if regression else '["big", "small"]' }}, model, "20250314.092653.1a2b3c4d")
    instance = serving.instance_model(NULLABLE)
    return recorder.record(request_id, [instance.model_validate(row) for row in rows], found, monitor[0])


def test_a_logged_request_is_one_record_with_its_id_model_version_and_each_instances_inputs_and_output(
    monitor, request_id
):
    # Given the default settings: every request logged, every feature in clear
    rows = [{"size": 9.0, "colour": "red"}, {"size": None, "colour": "blue"}]
    # When a request of two instances is recorded
    assert record(MonitorParams(), monitor, request_id, rows, [BIG, SMALL]) is True
    # Then BentoML wrote one JSON line under the request's id, a value per instance in each column, in order
    [logged] = monitor[1]()
    assert {key: value for key, value in logged.items() if key not in ("timestamp", "trace_id")} == {
        "model": "m:1",
        "bento_version": "20250314.092653.1a2b3c4d",
        "input.size": [9.0, None],
        "input.colour": ["red", "blue"],
{%- if regression %}
        "value": [45.5, 12.25],
        "label": ["q5", "q2"],
{%- else %}
        "label": ["big", "small"],
        "probability.big": [0.75, 0.1],
        "probability.small": [0.25, 0.9],
{%- endif %}
        "request_id": str(request_id),
    }
    logged_at = datetime.datetime.fromisoformat(logged["timestamp"])
    assert abs(datetime.datetime.now() - logged_at) < datetime.timedelta(minutes=1)


def test_dropped_features_are_absent_and_hashed_ones_are_their_sha256(monitor, request_id):
    # Given a team that must not log the size and logs the colour only hashed
    settings = MonitorParams(drop=("size",), hash=("colour",))
    # When a request is recorded
    record(settings, monitor, request_id, [{"size": 9.0, "colour": "red"}, {"size": 2.0, "colour": None}], [BIG, BIG])
    # Then the record holds no size, and the colour is the unsalted SHA-256 of its text (a missing one stays null)
    [logged] = monitor[1]()
    assert not [key for key in logged if "size" in key]
    assert logged["input.colour"] == [hashlib.sha256(b"red").hexdigest(), None]
    assert logged["label"] == {{ '["q5", "q5"]' if regression else '["big", "big"]' }}


def test_a_hashed_number_is_the_sha256_of_the_text_python_writes_for_it():
    assert serving.hashed(4200.0) == hashlib.sha256(b"4200.0").hexdigest()
    assert serving.hashed("4200.0") == serving.hashed(4200.0)
    assert serving.hashed(None) is None


def test_sample_zero_logs_nothing_and_still_counts_every_prediction(monitor, request_id, tmp_path):
    # Given recording switched off
    model, row = f"off:{tmp_path.name}", {"size": 1.0, "colour": "red"}
    # When a request of three instances is recorded
    logged = record(MonitorParams(sample=0.0), monitor, request_id, [row] * 3, [BIG] * 3, model)
    # Then nothing is logged, and the counters on /metrics count all three predictions
    assert logged is False
    assert monitor[1]() == []
{%- if regression %}
    assert (counted(model, "q5"), counted(model, "q2"), counted(model, "q1")) == (3.0, 0.0, 0.0)
{%- else %}
    assert (counted(model, "big"), counted(model, "small")) == (3.0, 0.0)
{%- endif %}

{% if regression %}
def test_the_counters_count_each_prediction_by_its_bin(monitor, request_id, tmp_path):
    # Given a recorder whose counters have counted nothing yet
    model = f"counted:{tmp_path.name}"
    row = {"size": 1.0, "colour": "red"}
    # When two requests are recorded, one of three instances and one of one
    record(MonitorParams(), monitor, request_id, [row] * 3, [BIG, SMALL, BIG], model)
    assert (counted(model, "q5"), counted(model, "q2")) == (2.0, 1.0)
    record(MonitorParams(), monitor, request_id + 1, [row], [serving.Prediction(value=20.0)], model)
    # Then each bin's counter went up by the answers in it (an edge belongs to the bin below it)
    assert (counted(model, "q5"), counted(model, "q2"), counted(model, "q3")) == (2.0, 2.0, 0.0)
{%- else %}
def test_the_counters_count_each_prediction_by_its_class(monitor, request_id, tmp_path):
    # Given a recorder whose counters have counted nothing yet
    model = f"counted:{tmp_path.name}"
    row = {"size": 1.0, "colour": "red"}
    # When two requests are recorded, one of three instances and one of one
    record(MonitorParams(), monitor, request_id, [row] * 3, [BIG, SMALL, BIG], model)
    assert (counted(model, "big"), counted(model, "small")) == (2.0, 1.0)
    record(MonitorParams(), monitor, request_id + 1, [row], [SMALL], model)
    # Then each class's counter went up by the predictions of that class
    assert (counted(model, "big"), counted(model, "small")) == (2.0, 2.0)
{%- endif %}


def test_sampling_follows_the_request_id_and_logs_about_the_share():
    ids = range(20_000)
    at = {share: {i for i in ids if serving.sampled(i, share)} for share in (0.0, 0.2, 0.5, 1.0)}
    # The same ids every time, so a test or a replay knows which requests were logged
    assert at[0.2] == {i for i in ids if serving.sampled(i, 0.2)}
    assert abs(len(at[0.2]) / len(ids) - 0.2) < 0.02
    assert abs(len(at[0.5]) / len(ids) - 0.5) < 0.02
    # Raising the share keeps logging the requests a lower share logged
    assert at[0.0] == set() and at[0.2] < at[0.5] < at[1.0] == set(ids)


def test_the_projects_params_log_every_request_and_every_feature_in_clear():
    assert load_monitor(["size", "colour"], ROOT / "params.yaml") == MonitorParams()


@pytest.mark.parametrize(
    ("monitor_settings", "message"),
    [
        ("sample: 1.5", "mlgitops.monitor.sample in params.yaml must be a number from 0 to 1, got 1.5."),
        ("sample: -0.1", "mlgitops.monitor.sample in params.yaml must be a number from 0 to 1, got -0.1."),
        ("sample: all", "mlgitops.monitor.sample in params.yaml must be a number from 0 to 1, got 'all'."),
        ("sample: true", "mlgitops.monitor.sample in params.yaml must be a number from 0 to 1, got True."),
        ("drop: size", "mlgitops.monitor.drop in params.yaml must be a list of feature names, got 'size'."),
        (
            "hash: [colour, ssn]",
            "mlgitops.monitor.hash in params.yaml names 'ssn', which is not a feature of the model ('size', 'colour').",
        ),
        ("drop: [size]\n    hash: [size]", "mlgitops.monitor in params.yaml names 'size' in both drop and hash"),
        ("smaple: 0.5", "mlgitops.monitor in params.yaml has the unknown key 'smaple'"),
    ],
    ids=["above-one", "negative", "text", "boolean", "not-a-list", "unknown-feature", "both", "unknown-key"],
)
def test_bad_monitor_settings_are_refused_with_one_sentence(workdir, monitor_settings, message):
    params = workdir / "params.yaml"
    params.write_text(f"mlgitops:\n  monitor:\n    {monitor_settings}\n", encoding="utf-8")
    with pytest.raises(ValueError) as refused:
        load_monitor(["size", "colour"], params)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value) and str(refused.value).endswith(".")


def test_a_bento_without_its_params_refuses_to_guess_what_to_log(workdir):
    with pytest.raises(FileNotFoundError, match=r"params\.yaml is missing: bentofile\.yaml must include it"):
        load_monitor(["size", "colour"], workdir / "params.yaml")


def test_a_long_feature_list_is_shortened_in_the_refusal(workdir):
    (workdir / "params.yaml").write_text("mlgitops: {monitor: {drop: [ssn]}}\n", encoding="utf-8")
    features = [f"f{i:02}" for i in range(30)]
    with pytest.raises(ValueError, match=r"'f09' and 20 more \(see models/model.json\)\)\.$"):
        load_monitor(features, workdir / "params.yaml")
