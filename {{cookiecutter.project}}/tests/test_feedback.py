{%- set regression = cookiecutter.task == "regression" -%}
"""Feedback: true {{ "values" if regression else "labels" }} for answered requests are stored once, and live metrics say what is significant."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from {{ cookiecutter.package }}.feedback import FeedbackRefused, FeedbackStore
from {{ cookiecutter.package }}.live import live_metrics
{%- if regression %}


def answer(*values):
    return [SimpleNamespace(value=value) for value in values]


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def store(tmp_path):
    return FeedbackStore(tmp_path / "feedback", "model:1", "v1")


def test_feedback_for_an_answered_request_is_stored_once(store):
    store.record("11", answer(120.5, 80.0))
    assert lines(store.index)[0]["labels"] == [120.5, 80.0]
    store.accept("11", [118.0, 95.0])
    with pytest.raises(FeedbackRefused, match="has its feedback already; it is stored once"):
        store.accept("11", [1.0, 2.0])
    assert [record["labels"] for record in lines(store.feedback)] == [[118.0, 95.0]]


@pytest.mark.parametrize(
    ("request_id", "labels", "message"),
    [
        ("99", [1.0], "no request '99' was answered here"),
        ("11", [1.0], "request '11' had 2 instance(s): send one value per instance, in order"),
    ],
    ids=["unknown-id", "wrong-count"],
)
def test_bad_feedback_is_refused_in_one_sentence_and_nothing_is_stored(store, request_id, labels, message):
    store.record("11", answer(1.0, 2.0))
    with pytest.raises(FeedbackRefused) as err:
        store.accept(request_id, labels)
    assert message in str(err.value) and str(err.value).endswith(".")
    assert not store.feedback.exists()


def test_a_worker_accepts_feedback_for_a_request_another_worker_answered(tmp_path):
    # Given two workers of one service sharing the folder, each with its own index file,
    first = FeedbackStore(tmp_path, "model:1", "v1")
    second = FeedbackStore(tmp_path, "model:1", "v1")
    second.index = tmp_path / "requests.other.jsonl"
    first.record("7", answer(3.5))
    # when the other worker gets the feedback, it finds the request; a replay to the first worker is refused.
    second.accept("7", [4.0])
    with pytest.raises(FeedbackRefused, match="stored once"):
        first.accept("7", [4.0])
    assert len(lines(tmp_path / "feedback.jsonl")) == 1


def rows(noise: float, n: int, seed: int) -> dict:
    """n answers off the truth by normal errors of standard deviation `noise`."""
    rng = np.random.default_rng(seed)
    y = rng.normal(150, 70, n)
    return {"y": y.tolist(), "pred": (y + rng.normal(0, noise, n)).tolist()}


def request(**versions):
    return {"metric": "rmse", "confidence": 0.95, "resamples": 500, "versions": versions}


def test_a_truly_better_release_is_named_with_its_interval():
    # rmse is lower-is-better: the release with the smaller errors is the better one.
    found = live_metrics(request(v1=rows(60, 400, 1), v2=rows(40, 400, 2)))
    v2 = found["versions"]["v2"]
    assert not found["higher_is_better"]
    assert v2["low"] <= v2["value"] <= v2["high"] and v2["rows"] == 400
    comparison = found["comparison"]
    assert comparison["significant"] and comparison["better"] == "v2" and comparison["high"] < 0


def test_equal_releases_show_no_significant_difference():
    comparison = live_metrics(request(v1=rows(50, 400, 3), v2=rows(50, 400, 4)))["comparison"]
    assert not comparison["significant"] and comparison["better"] is None
    assert comparison["low"] < 0 < comparison["high"]


def test_higher_is_better_r2_names_the_higher_one_better():
    found = live_metrics({**request(v1=rows(70, 400, 5), v2=rows(20, 400, 6)), "metric": "r2"})
    assert found["higher_is_better"]
    assert found["comparison"]["better"] == "v2"
{%- else %}

CLASSES = ["big", "small"]


def answer(*labels):
    return [SimpleNamespace(label=label, probabilities={"big": 0.8, "small": 0.2}) for label in labels]


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def store(tmp_path):
    return FeedbackStore(tmp_path / "feedback", CLASSES, "model:1", "v1")


def test_feedback_for_an_answered_request_is_stored_once(store):
    store.record("11", answer("big", "small"))
    store.accept("11", ["small", "small"])
    with pytest.raises(FeedbackRefused, match="has its feedback already; it is stored once"):
        store.accept("11", ["big", "small"])
    assert [record["labels"] for record in lines(store.feedback)] == [["small", "small"]]


@pytest.mark.parametrize(
    ("request_id", "labels", "message"),
    [
        ("99", ["big"], "no request '99' was answered here"),
        ("11", ["medium", "big"], "'medium' is not one of the model's classes ('big', 'small')"),
        ("11", ["big"], "request '11' had 2 instance(s): send one label per instance, in order"),
    ],
    ids=["unknown-id", "label-outside-the-classes", "wrong-count"],
)
def test_bad_feedback_is_refused_in_one_sentence_and_nothing_is_stored(store, request_id, labels, message):
    store.record("11", answer("big", "small"))
    with pytest.raises(FeedbackRefused) as err:
        store.accept(request_id, labels)
    assert message in str(err.value) and str(err.value).endswith(".")
    assert not store.feedback.exists()


def test_a_worker_accepts_feedback_for_a_request_another_worker_answered(tmp_path):
    # Given two workers of one service sharing the folder, each with its own index file,
    first = FeedbackStore(tmp_path, CLASSES, "model:1", "v1")
    second = FeedbackStore(tmp_path, CLASSES, "model:1", "v1")
    second.index = tmp_path / "requests.other.jsonl"
    first.record("7", answer("big"))
    # when the other worker gets the feedback, it finds the request; a replay to the first worker is refused.
    second.accept("7", ["small"])
    with pytest.raises(FeedbackRefused, match="stored once"):
        first.accept("7", ["small"])
    assert len(lines(tmp_path / "feedback.jsonl")) == 1


def test_a_torn_last_line_of_another_worker_is_read_once_it_is_whole(tmp_path):
    store = FeedbackStore(tmp_path, CLASSES, "model:1", "v1")
    other = tmp_path / "requests.other.jsonl"
    record = json.dumps({"request_id": "5", "labels": ["big"]})
    other.write_text(record[:10])
    with pytest.raises(FeedbackRefused, match="no request '5'"):
        store.accept("5", ["big"])
    other.write_text(record + "\n")
    store.accept("5", ["big"])


def rows(accuracy: float, n: int, seed: int) -> dict:
    """n binary answers of which a share `accuracy` are right."""
    rng = np.random.default_rng(seed)
    y = rng.choice(CLASSES, n).tolist()
    right = rng.random(n) < accuracy
    pred = [t if ok else ("small" if t == "big" else "big") for t, ok in zip(y, right, strict=True)]
    proba = [[0.9, 0.1] if p == "big" else [0.1, 0.9] for p in pred]
    return {"y": y, "pred": pred, "proba": proba}


def request(**versions):
    return {"metric": "accuracy", "classes": CLASSES, "confidence": 0.95, "resamples": 500, "versions": versions}


def test_a_truly_better_release_is_named_with_its_interval():
    found = live_metrics(request(v1=rows(0.75, 400, 1), v2=rows(0.9, 400, 2)))
    v2 = found["versions"]["v2"]
    assert v2["low"] <= v2["value"] <= v2["high"] and v2["rows"] == 400
    comparison = found["comparison"]
    assert comparison["significant"] and comparison["better"] == "v2" and comparison["low"] > 0


def test_equal_releases_show_no_significant_difference():
    comparison = live_metrics(request(v1=rows(0.85, 400, 3), v2=rows(0.85, 400, 4)))["comparison"]
    assert not comparison["significant"] and comparison["better"] is None
    assert comparison["low"] < 0 < comparison["high"]


def test_lower_is_better_metrics_name_the_lower_one_better():
    found = live_metrics({**request(v1=rows(0.6, 400, 5), v2=rows(0.95, 400, 6)), "metric": "log_loss"})
    assert not found["higher_is_better"]
    assert found["comparison"]["better"] == "v2"
{%- endif %}
