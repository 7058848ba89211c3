"""Training and evaluation on a small dataset: a saved, described model and sane metrics."""

import json

import pytest

from {{ cookiecutter.package }} import evaluate, train
from {{ cookiecutter.package }}.params import ModelParams


def test_train_writes_model_and_metadata_that_match(prepared, model_params):
    meta, _ = train.train(prepared[0], "label", model_params, seed=0)
    assert meta["sha256"] == train.sha256(train.MODEL_FILE)
    assert meta["classes"] == ["big", "small"]
    assert [f["kind"] for f in meta["features"]] == ["numeric", "categorical"]
    assert json.loads(train.META_FILE.read_text(encoding="utf-8")) == meta


def test_evaluate_writes_metrics_and_plots(prepared, model_params):
    train.train(prepared[0], "label", model_params, seed=0)
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
