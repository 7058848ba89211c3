"""Training and evaluation on a small dataset: a saved, described model and sane metrics."""

import json

import pandera.pandas as pa
import pytest

from {{ cookiecutter.package }} import evaluate, registry, schema, train
from {{ cookiecutter.package }}.params import ModelParams


def test_train_writes_model_and_metadata_that_match(prepared, model_params, declared):
    meta, _ = train.train(prepared[0], "label", model_params, seed=0, declared=declared)
    assert meta["sha256"] == train.sha256(train.MODEL_FILE)
    assert meta["classes"] == ["big", "small"]
    assert [f["kind"] for f in meta["features"]] == ["numeric", "categorical"]
    assert json.loads(train.META_FILE.read_text(encoding="utf-8")) == meta


def test_features_carry_the_declared_categories_and_nullability(frame):
    # Given a schema that allows a missing size and a colour the rows lack
    declared = pa.DataFrameSchema(
        {
            "size": pa.Column(float, nullable=True),
            "colour": pa.Column(str, pa.Check.isin(["red", "green", "blue"])),
            "label": pa.Column(str),
        }
    )
    # When the features are described for serving
    features = train.features_of(frame, "label", declared)
    # Then they say what the schema declares, not only what the rows show
    assert features == [
        {"name": "size", "kind": "numeric", "nullable": True},
        {"name": "colour", "kind": "categorical", "nullable": False, "categories": ["blue", "green", "red"]},
    ]


def test_text_column_declared_without_its_values_stays_free_text(frame):
    declared = pa.DataFrameSchema({"size": pa.Column(float), "colour": pa.Column(str), "label": pa.Column(str)})
    [_, colour] = train.features_of(frame, "label", declared)
    assert colour == {"name": "colour", "kind": "categorical", "nullable": False}


def test_feature_missing_from_the_schema_is_refused(frame):
    declared = schema.infer(frame.drop(columns=["colour"]), "label")
    with pytest.raises(ValueError, match="feature 'colour' is not declared in the data schema"):
        train.features_of(frame, "label", declared)


def test_model_metadata_without_a_format_reads_as_format_1(workdir):
    (workdir / "model.json").write_text(json.dumps({"sha256": "0" * 64}), encoding="utf-8")
    assert registry.read_meta(workdir / "model.json") == {"sha256": "0" * 64}


def test_model_metadata_of_a_newer_format_is_refused(workdir):
    (workdir / "model.json").write_text(json.dumps({"format": train.META_FORMAT + 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="has format 2, but this code reads formats up to 1"):
        registry.read_meta(workdir / "model.json")


def test_evaluate_writes_metrics_and_plots(prepared, model_params, declared):
    train.train(prepared[0], "label", model_params, seed=0, declared=declared)
    scores = evaluate.evaluate(train.MODEL_FILE, prepared[1], "label", seed=0)
    assert set(scores) == set(evaluate.METRICS)
    assert scores["accuracy"] > 0.9
    assert (evaluate.PLOTS_DIR / "confusion.csv").is_file()
    assert (evaluate.PLOTS_DIR / "importance.csv").read_text(encoding="utf-8").startswith("feature,importance")


def test_log_loss_is_the_only_lower_is_better_metric():
    assert [name for name, m in evaluate.METRICS.items() if not m.higher_is_better] == ["log_loss"]


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown model family"):
        train.build(ModelParams(family="svm"), [], seed=0)
