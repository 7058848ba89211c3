{%- set regression = cookiecutter.task == "regression" -%}
"""Training and evaluation on a small dataset: a saved, described model and sane metrics."""

import json

import pandas as pd
import pandera.pandas as pa
import pytest

from {{ cookiecutter.package }} import evaluate, metadata, schema, train
from {{ cookiecutter.package }}.params import ModelParams


def fit(prepared, model_params, declared, paths):
    return train.train(prepared[0], "label", model_params, 0, declared, paths.model, paths.model_meta)[0]


def test_train_writes_model_and_metadata_that_match(prepared, model_params, declared, paths):
    meta = fit(prepared, model_params, declared, paths)
    assert meta["sha256"] == metadata.sha256(paths.model)
{%- if regression %}
    assert meta["task"] == "regression" and "classes" not in meta
    # the bins between the training target's deciles, in which the service counts its answers
    assert len(meta["bins"]) == 9 and meta["bins"] == sorted(meta["bins"])
{%- else %}
    assert meta["task"] == "classification" and meta["classes"] == ["big", "small"]
{%- endif %}
    assert [f["kind"] for f in meta["features"]] == ["numeric", "categorical"]
    assert json.loads(paths.model_meta.read_text(encoding="utf-8")) == meta


def test_features_carry_the_declared_categories_and_nullability(frame):
    # Given a schema that allows a missing size and a colour the rows lack
    declared = pa.DataFrameSchema(
        {
            "size": pa.Column(float, nullable=True),
            "colour": pa.Column(str, pa.Check.isin(["red", "green", "blue"])),
            "label": pa.Column({{ "float" if regression else "str" }}),
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
    declared = pa.DataFrameSchema({"size": pa.Column(float), "colour": pa.Column(str), "label": pa.Column({{ "float" if regression else "str" }})})
    [_, colour] = train.features_of(frame, "label", declared)
    assert colour == {"name": "colour", "kind": "categorical", "nullable": False}


def test_feature_missing_from_the_schema_is_refused(frame):
    declared = schema.infer(frame.drop(columns=["colour"]), "label")
    with pytest.raises(ValueError, match="feature 'colour' is not declared in the data schema"):
        train.features_of(frame, "label", declared)


def test_model_metadata_without_a_format_reads_as_format_1(workdir):
    (workdir / "model.json").write_text(json.dumps({"sha256": "0" * 64}), encoding="utf-8")
    assert metadata.read_meta(workdir / "model.json") == {"sha256": "0" * 64}


def test_model_metadata_of_a_newer_format_is_refused(workdir):
    (workdir / "model.json").write_text(json.dumps({"format": metadata.META_FORMAT + 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="has format 3, but this code reads formats up to 2"):
        metadata.read_meta(workdir / "model.json")

{% if regression %}
def test_evaluate_writes_metrics_and_plots(prepared, model_params, declared, paths):
    fit(prepared, model_params, declared, paths)
    scores = evaluate.evaluate(paths.model, prepared[1], "label", 0, paths.metrics, paths.predictions, paths.importance)
    assert set(scores) == {"rmse", "mae", "r2"}
    assert scores["r2"] > 0.8 and 0 < scores["mae"] <= scores["rmse"]
    assert json.loads(paths.metrics.read_text(encoding="utf-8")) == scores
    # each test row's actual and predicted number and their difference, for DVC's two scatter plots
    plotted = pd.read_csv(paths.predictions)
    assert list(plotted.columns) == ["actual", "predicted", "residual"] and len(plotted) == 20
    assert (plotted["actual"] - plotted["predicted"] - plotted["residual"]).abs().max() < 1e-5
    assert paths.importance.read_text(encoding="utf-8").startswith("feature,importance")


def test_rmse_and_mae_are_the_lower_is_better_metrics():
    assert [name for name, m in evaluate.METRICS.items() if not m.higher_is_better] == ["rmse", "mae"]
{%- else %}
def test_evaluate_writes_metrics_and_plots(prepared, model_params, declared, paths):
    fit(prepared, model_params, declared, paths)
    scores = evaluate.evaluate(paths.model, prepared[1], "label", 0, paths.metrics, paths.confusion, paths.importance)
    assert set(scores) == set(evaluate.METRICS)
    assert scores["accuracy"] > 0.9
    assert json.loads(paths.metrics.read_text(encoding="utf-8")) == scores
    assert paths.confusion.is_file()
    assert paths.importance.read_text(encoding="utf-8").startswith("feature,importance")


def test_log_loss_is_the_only_lower_is_better_metric():
    assert [name for name, m in evaluate.METRICS.items() if not m.higher_is_better] == ["log_loss"]
{%- endif %}


def test_unknown_family_is_rejected():
    with pytest.raises(ValueError, match="unknown model family"):
        train.build(ModelParams(family="svm"), [], seed=0)


@pytest.mark.parametrize("family", sorted(train.ESTIMATORS))
def test_every_family_trains_on_a_text_column_of_many_values(workdir, family):
    # Many distinct values make the one-hot columns sparse, which some estimators refuse.
    rows = 400
    frame = pd.DataFrame(
        {
            "size": [float(i % 17) for i in range(rows)],
            "city": [f"city-{i % 60}" for i in range(rows)],
{%- if regression %}
            "label": [float(i % 17) * 2.5 + (i % 60) / 10 for i in range(rows)],
{%- else %}
            "label": ["big" if i % 17 >= 8 else "small" for i in range(rows)],
{%- endif %}
        }
    )
    frame.to_csv("train.csv", index=False)
    declared = schema.infer(frame, "label")
    model, meta_file = workdir / "model.joblib", workdir / "model.json"
    meta, _ = train.train(workdir / "train.csv", "label", ModelParams(family=family), 0, declared, model, meta_file)
{%- if regression %}
    assert meta["family"] == family and len(meta["bins"]) == 9
{%- else %}
    assert meta["classes"] == ["big", "small"]
{%- endif %}
