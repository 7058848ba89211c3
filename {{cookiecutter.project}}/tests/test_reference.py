{%- set regression = cookiecutter.task == "regression" -%}
{%- set metric = "rmse" if regression else "accuracy" -%}
"""The release's reference sample: requests the service accepts, the model's own answers, and scoring a service's."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package }} import {{ "metadata, " if regression }}reference, serving, train
from {{ cookiecutter.package }}.__main__ import UNSCORABLE, main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model(prepared, model_params, declared, paths):
    """A model trained on the small dataset, and its metadata."""
    meta, _ = train.train(prepared[0], "label", model_params, 0, declared, paths.model, paths.model_meta)
    return train.joblib.load(paths.model), meta


@pytest.fixture
def built(model, prepared, workdir):
    """The reference of the model on the test split, in workdir/reference."""
    fitted, meta = model
    summary = reference.build(fitted, meta, pd.read_csv(prepared[1]), "{{ metric }}", 200, 0, workdir / "reference")
    return summary, workdir / "reference"


def served(folder, model):
    """What an honest service answers to the reference requests: the numpy path, rounded, as plain JSON."""
    fitted, meta = model
    instance = serving.instance_model(meta["features"])
    requests = json.loads((folder / reference.REQUESTS_FILE).read_text(encoding="utf-8"))["instances"]
{%- if regression %}
    numbers = serving.numpy_numbers(fitted, instance)([instance.model_validate(item) for item in requests])
    return [p.model_dump() for p in serving.predictions(numbers)]
{%- else %}
    probabilities = serving.numpy_probabilities(fitted, instance)([instance.model_validate(item) for item in requests])
    return [p.model_dump() for p in serving.predictions(meta["classes"], probabilities)]
{%- endif %}


def test_reference_holds_the_test_rows_their_requests_and_the_models_answers(model, built, prepared):
    # Given a trained model, when its reference is built on the test split (fewer rows than asked for)
    fitted, meta = model
    summary, folder = built
    rows = pd.read_csv(folder / reference.ROWS_FILE)
    test = pd.read_csv(prepared[1])
    # Then every test row is in it, target included, with one request each that the service accepts
    assert summary["rows"] == len(rows) == len(test)
    assert "label" in rows.columns
    requests = json.loads((folder / reference.REQUESTS_FILE).read_text(encoding="utf-8"))["instances"]
    instance = serving.instance_model(meta["features"])
    assert [instance.model_validate(item).model_dump(by_alias=True) for item in requests] == requests
{%- if regression %}
    # and the values are the model's own predictions of those rows, as the service rounds them, with their bins
    assert summary["values"] == [round(v, 6) for v in fitted.predict(rows.drop(columns="label")).tolist()]
    assert summary["labels"] == [metadata.bin_of(v, meta["bins"]) for v in summary["values"]]
    assert summary["higher_is_better"] is False and 0.5 < summary["spread_ratio"] < 1.5
{%- else %}
    # and the labels are the model's own predictions of those rows
    assert summary["labels"] == list(fitted.predict(rows.drop(columns="label")))
    assert summary["classes"] == meta["classes"]
    assert summary["higher_is_better"] is True
{%- endif %}
    assert json.loads((folder / reference.SUMMARY_FILE).read_text(encoding="utf-8")) == summary


def test_an_honest_service_reproduces_the_offline_metric_exactly(model, built):
    summary, folder = built
    scored = reference.score(folder, served(folder, model))
    assert scored == {
        "metric": "{{ metric }}",
        "value": summary["offline"],
        "top_class_share": summary["top_class_share"],
{%- if regression %}
        "spread_ratio": summary["spread_ratio"],
{%- endif %}
        "agreement": 1.0,
        "rows": summary["rows"],
    }
{%- if regression %}


def test_a_service_that_answers_one_number_for_everyone_scores_worse_and_disagrees(built):
    summary, folder = built
    mean = float(pd.read_csv(folder / reference.ROWS_FILE)["label"].mean())
    scored = reference.score(folder, [{"value": mean}] * summary["rows"])
    # no spread, one bin for everyone, a worse rmse, and no answer equal to the model's
    assert scored["spread_ratio"] == 0.0 and scored["top_class_share"] == 1.0
    assert scored["value"] > summary["offline"]
    assert scored["agreement"] < 0.2
{%- else %}


def test_a_service_that_answers_one_class_for_everyone_scores_worse_and_disagrees(built):
    summary, folder = built
    answers = [{"label": "big", "probabilities": {"big": 1.0, "small": 0.0}}] * summary["rows"]
    scored = reference.score(folder, answers)
    assert scored["top_class_share"] == 1.0
    assert scored["value"] < summary["offline"]
    assert scored["agreement"] < 1.0
{%- endif %}


def test_the_sample_is_drawn_with_the_seed_and_kept_in_test_order(frame):
    features = [{"name": "size", "kind": "numeric", "nullable": False}]
    first = reference.sample(frame, features, rows=10, seed=3)
    assert first.equals(reference.sample(frame, features, rows=10, seed=3))
    assert not first.equals(reference.sample(frame, features, rows=10, seed=4))
    assert list(first.index) == sorted(first.index)


def test_missing_values_become_null_where_the_schema_allows_and_rows_it_refuses_are_left_out(frame):
    # Given a size missing in two rows and a colour missing in one, where only size may be missing
    frame.loc[[0, 1], "size"] = None
    frame.loc[2, "colour"] = None
    features = [
        {"name": "size", "kind": "numeric", "nullable": True},
        {"name": "colour", "kind": "categorical", "nullable": False, "categories": ["blue", "red"]},
    ]
    # When the servable rows are chosen
    rows, instances = reference.servable(frame.head(4), features)
    # Then the row the service would refuse is left out, and a missing size is sent as null
    assert list(rows.index) == [0, 1, 3]
    assert instances[0].model_dump(by_alias=True) == {"size": None, "colour": "blue"}


def test_no_servable_row_is_a_clear_error(frame):
    features = [{"name": "colour", "kind": "categorical", "nullable": False, "categories": ["green"]}]
    with pytest.raises(reference.ReferenceError, match="no row of the test split makes a valid request"):
        reference.sample(frame, features, rows=5, seed=0)

{% if regression %}
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda answers: answers[:-1], "predictions but the reference has"),
        (lambda answers: [{"value": "tall"}, *answers[1:]], "prediction 1 is not an object with a value"),
        (lambda answers: [*answers[:-1], {"label": "big"}], "is not an object with a value"),
        (lambda answers: {"predictions": answers}, "must be a JSON list"),
    ],
    ids=["wrong-row-count", "not-a-number", "no-value", "not-a-list"],
)
{%- else %}
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda answers: answers[:-1], "predictions but the reference has"),
        (lambda answers: [{**answers[0], "label": "huge"}, *answers[1:]], "prediction 1 names 'huge'"),
        (lambda answers: [*answers[:-1], {"label": "big"}], "is not an object with a label and probabilities"),
        (lambda answers: {"predictions": answers}, "must be a JSON list"),
    ],
    ids=["wrong-row-count", "unknown-class", "no-probabilities", "not-a-list"],
)
{%- endif %}
def test_predictions_that_cannot_be_scored_are_refused_in_one_sentence(model, built, change, message):
    _summary, folder = built
    with pytest.raises(reference.ReferenceError, match=message):
        reference.score(folder, change(served(folder, model)))


def test_score_command_prints_the_score_and_exits_2_on_a_wrong_row_count(model, built, workdir, capsys):
    # Given the project's params.yaml and the service's answers written to a file
    summary, folder = built
    shutil.copyfile(ROOT / "params.yaml", workdir / "params.yaml")
    answers = served(folder, model)
    good, short = workdir / "good.json", workdir / "short.json"
    good.write_text(json.dumps(answers), encoding="utf-8")
    short.write_text(json.dumps(answers[1:]), encoding="utf-8")
    # When each is scored, then the honest one scores the offline metric and the short one is refused
    assert main(["score", "--reference", str(folder), "--predictions", str(good)]) == 0
    assert json.loads(capsys.readouterr().out)["value"] == summary["offline"]
    assert main(["score", "--reference", str(folder), "--predictions", str(short)]) == UNSCORABLE
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: there are") and len(error.splitlines()) == 1


def test_reference_command_writes_the_reference_of_the_pipelines_model(model, workdir, capsys):
    shutil.copyfile(ROOT / "params.yaml", workdir / "params.yaml")
    assert main(["reference", "--out", "ref", "--rows", "5"]) == 0
    assert json.loads((workdir / "ref" / reference.SUMMARY_FILE).read_text(encoding="utf-8"))["rows"] == 5
    assert "wrote 5 reference rows" in capsys.readouterr().out
