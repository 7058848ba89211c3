"""The model monitor's judgement of a window of traffic, its memory and its sticky issue (GitHub stand-in)."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from fake_github import FakeGitHub
from mlgitops import contract, monitor

SETTINGS = contract.from_params({})
FEATURES = ("radius", "texture")
LEVELS = [i / 20 for i in range(21)]
REFERENCE = {"labels": ["benign"] * 60 + ["malignant"] * 40}
# /metrics of a served model, as BentoML writes it (the labels each series carries besides these are left out).
SERIES = 'service_name="Classifier",service_version="v1"'
REQUESTS = 'bentoml_service_request_total{{endpoint="{endpoint}",http_response_code="{code}",' + SERIES + "}} {value}"
BUCKET = 'bentoml_service_request_duration_seconds_bucket{{endpoint="/predict",http_response_code="200",le="{le}",'
METRICS = "\n".join(
    [
        "# HELP bentoml_service_request_total Total number of HTTP requests",
        "# TYPE bentoml_service_request_total counter",
        REQUESTS.format(endpoint="/predict", code="200", value="190.0"),
        REQUESTS.format(endpoint="/predict", code="500", value="10.0"),
        REQUESTS.format(endpoint="/readyz", code="200", value="50.0"),
        *(
            (BUCKET + SERIES + "}} {count}").format(le=le, count=count)
            for le, count in (("0.01", "100.0"), ("0.1", "180.0"), ("1.0", "190.0"), ("+Inf", "190.0"))
        ),
    ]
)


def training_profile(seed: int = 1) -> dict:
    """A data check profile of two numeric features drawn from N(10, 2) and N(20, 4), and the target."""
    rng = random.Random(seed)
    columns = {}
    for name, (mean, std) in zip(FEATURES, ((10, 2), (20, 4)), strict=True):
        values = sorted(rng.gauss(mean, std) for _ in range(2000))
        quantiles = [values[min(int(level * (len(values) - 1)), len(values) - 1)] for level in LEVELS]
        columns[name] = {"kind": "numeric", "missing": 0, "mean": mean, "std": std, "quantiles": quantiles}
    columns["target"] = {"kind": "categorical", "missing": 0, "counts": {"benign": 1200, "malignant": 800}}
    return {"format": 1, "quantile_levels": LEVELS, "rows": 2000, "target": "target", "columns": columns}


def write_log(folder: Path, requests: list[dict], version: str = "v1", when: dt.datetime | None = None) -> Path:
    """A BentoML monitor log: one JSON line per request, as the served model writes it."""
    data = folder / monitor.MONITOR_NAME / "data"
    data.mkdir(parents=True, exist_ok=True)
    path = data / "data.1.log"
    stamp = (when or dt.datetime.now()).isoformat()
    with path.open("a", encoding="utf-8") as handle:
        for number, request in enumerate(requests):
            line = {"timestamp": stamp, "request_id": str(number), "bento_version": version, "model": "m:1"}
            handle.write(json.dumps(line | request) + "\n")
    return path


def requests(count: int, *, labels: list[str] | None = None, constant: float | None = None, seed: int = 2) -> list:
    """Logged requests of ten instances each, drawn like the training data (radius constant if asked)."""
    rng = random.Random(seed)
    made = []
    for number in range(count):
        radius = [constant if constant is not None else rng.gauss(10, 2) for _ in range(10)]
        texture = [rng.gauss(20, 4) for _ in range(10)]
        answered = labels or [rng.choice(REFERENCE["labels"]) for _ in range(10)]
        made.append(
            {"input.radius": radius, "input.texture": texture, "label": answered[:10] if labels else answered}
            | {"n": number}
        )
    return made


def window(folder: Path, since_hours: float = 24) -> monitor.Traffic:
    since = dt.datetime.now() - dt.timedelta(hours=since_hours)
    return monitor.read_log(monitor.log_files(folder), "v1", since, training_profile(), set())


def test_healthy_traffic_passes_every_check(tmp_path: Path) -> None:
    # Given 30 requests (300 predictions) drawn like the training data and the reference answers
    write_log(tmp_path, requests(30))
    traffic = window(tmp_path)
    traffic.counters = monitor.window_counters(monitor.parse_metrics(METRICS.replace(" 10.0", " 0.0")), None)

    # When the monitor judges the window
    verdict, checks = monitor.judge(traffic, REFERENCE, training_profile(), SETTINGS)

    # Then it is healthy, having looked at the answers, the inputs and the service
    assert verdict == monitor.HEALTHY, checks
    assert traffic.predictions == 300
    assert {c.name for c in checks} >= {"top class share", "input drift", "error rate (5xx)", "latency p95"}


def test_one_answer_for_everyone_from_a_constant_feature_fails_naming_both(tmp_path: Path) -> None:
    # Given a broken upstream that sends radius constant, and a model answering one class for all of it
    write_log(tmp_path, requests(30, labels=["malignant"] * 10, constant=0.0))

    verdict, checks = monitor.judge(window(tmp_path), REFERENCE, training_profile(), SETTINGS)

    failed = {c.name: c for c in checks if c.outcome == monitor.FAIL}
    assert verdict == monitor.FAILING
    assert "100.0%" in failed["top class share"].value and "malignant" in failed["top class share"].message
    assert "`radius`" in failed["input drift"].message
    assert "`texture`" not in failed["input drift"].message
    assert "prediction shift (PSI against the reference set)" in failed


def test_too_little_traffic_is_no_evidence_never_healthy(tmp_path: Path) -> None:
    write_log(tmp_path, requests(3))  # 30 predictions, fewer than the 100 needed

    verdict, checks = monitor.judge(window(tmp_path), REFERENCE, training_profile(), SETTINGS)

    assert verdict == monitor.NO_EVIDENCE
    assert checks[0].outcome == monitor.NO_EVIDENCE and checks[0].value == "30"


def test_a_service_failing_every_request_fails_although_it_logged_no_prediction(tmp_path: Path) -> None:
    # Given no logged prediction at all, but /metrics counting 200 requests of which 150 answered 500
    traffic = window(tmp_path)
    failing = METRICS.replace("} 190.0", "} 50.0", 1).replace("} 10.0", "} 150.0")
    traffic.counters = monitor.window_counters(monitor.parse_metrics(failing), None)

    verdict, checks = monitor.judge(traffic, REFERENCE, training_profile(), SETTINGS)

    assert verdict == monitor.FAILING
    assert next(c for c in checks if c.name == "error rate (5xx)").value == "75.0% of 200"


def test_the_window_reads_only_the_live_release_recent_lines_and_skips_torn_ones(tmp_path: Path) -> None:
    write_log(tmp_path, requests(5))
    write_log(tmp_path, requests(7), version="v0")  # the release before
    write_log(tmp_path, requests(9), when=dt.datetime.now() - dt.timedelta(days=3))  # outside the window
    with (tmp_path / monitor.MONITOR_NAME / "data" / "data.1.log").open("a") as handle:
        handle.write('{"timestamp": "2026-01-01T00:00:00", "label": ["be\n[1, 2]\n')

    traffic = window(tmp_path)

    assert traffic.predictions == 50
    assert traffic.unreadable == 2


def test_counters_are_read_as_growth_since_the_previous_run_and_whole_after_a_restart() -> None:
    now = monitor.parse_metrics(METRICS)
    assert now["requests"] == {"200": 190.0, "500": 10.0}

    before = {"requests": {"200": 90.0, "500": 10.0}, "buckets": {"0.01": 50.0, "0.1": 80.0, "1.0": 90.0}}
    grown = monitor.window_counters(now, before)
    restarted = monitor.window_counters(now, {"requests": {"200": 1000.0}, "buckets": {}})

    assert grown["requests"] == {"200": 100.0, "500": 0.0} and grown["since"] == "the previous run"
    assert restarted["requests"] == now["requests"] and restarted["since"] == "the server started"


def test_p95_interpolates_inside_the_bucket_like_prometheus() -> None:
    # 190 observations: 100 under 10 ms, 80 between 10 and 100 ms, 10 between 0.1 and 1 s; rank 180.5 is in the last
    assert monitor.p95({"0.01": 100, "0.1": 180, "1.0": 190, "+Inf": 190}) == pytest.approx(0.1 + 0.9 * 0.05)
    assert monitor.p95({"+Inf": 0}) is None


def test_memory_survives_the_issue_body_and_an_edited_block_starts_afresh() -> None:
    memory = {"failing_windows": 2, "version": "v1", "note": "--> <!-- tricky"}
    body = "text\n\n" + monitor.write_memory(memory)

    assert monitor.read_memory(body)["failing_windows"] == 2
    assert monitor.read_memory(body)["note"] == "--> <!-- tricky"
    assert monitor.read_memory(body.replace('"failing_windows": 2', '"failing_windows": -4'))["failing_windows"] == 0
    assert monitor.read_memory("<!-- mlgitops-monitor-state {not json} -->") == {}
    assert monitor.read_memory(None) == {}


def test_the_issue_opens_on_failure_updates_in_place_and_closes_when_healthy() -> None:
    with FakeGitHub() as fake:
        github = monitor.GitHub(fake.url, "ghs_test", backoff=0)

        def sync(verdict: str, body: str) -> str:
            issue = monitor.find_issue(github, "octo/models", "production")
            return monitor.sync_issue(github, "octo/models", "production", verdict, body, issue)

        marker = monitor.MARKER.format(environment="production")
        assert sync(monitor.HEALTHY, f"{marker} fine") == "no issue (none is open)"
        assert sync(monitor.NO_EVIDENCE, f"{marker} quiet") == "no issue (none is open)"
        assert sync(monitor.FAILING, f"{marker} bad") == "opened issue #1"
        assert sync(monitor.FAILING, f"{marker} still bad") == "updated issue #1"
        assert sync(monitor.NO_EVIDENCE, f"{marker} quiet") == "updated issue #1"
        opened = fake.issues("octo", "models")
        assert sync(monitor.HEALTHY, f"{marker} fine again") == "closed issue #1"
        assert sync(monitor.FAILING, f"{marker} bad again") == "reopened issue #1"
        # Staging keeps an issue of its own.
        staging = monitor.MARKER.format(environment="staging")
        issue = monitor.find_issue(github, "octo/models", "staging")
        assert (
            monitor.sync_issue(github, "octo/models", "staging", monitor.FAILING, staging, issue) == "opened issue #2"
        )

    assert [(i["title"], i["state"]) for i in opened] == [("Model monitor: production", "open")]
    final = {i["number"]: i for i in fake.issues("octo", "models")}
    assert final[1]["body"].endswith("bad again") and final[1]["state"] == "open"
    assert [label["name"] for label in final[1]["labels"]] == [monitor.LABEL]


def test_dispatch_asks_the_rollback_workflow_for_each_environment_due(monkeypatch: pytest.MonkeyPatch) -> None:
    due = [{"environment": "production", "reason": "the model monitor found v2 failing 2 windows in a row"}]
    with FakeGitHub() as fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
        monkeypatch.setenv("GITHUB_REPOSITORY", "octo/models")
        assert monitor.main(["dispatch", "--rollbacks", json.dumps(due)]) == 0
        assert monitor.main(["dispatch", "--rollbacks", "[]"]) == 0

    assert fake.dispatches == [
        {
            "repository": "octo/models",
            "workflow": "rollback.yml",
            "ref": "main",
            "inputs": {"environment": "production", "version": "", "reason": due[0]["reason"]},
        }
    ]


def test_dispatch_refuses_what_the_check_step_did_not_write(capsys: pytest.CaptureFixture[str]) -> None:
    assert monitor.main(["dispatch", "--rollbacks", "{not json"]) == 1
    assert capsys.readouterr().err.strip() == "error: --rollbacks must be the JSON list the check step wrote."


def test_live_profile_matches_the_data_checks_statistics() -> None:
    traffic = monitor.Traffic(source="test")
    monitor.add_values(traffic, "radius", "numeric", [1.0, 2.0, None, 3.0, float("nan")])
    monitor.add_values(traffic, "colour", "categorical", ["red", "red", None, "blue"])

    profile = monitor.live_profile(traffic, training_profile())

    assert profile["columns"]["radius"]["quantiles"][0] == 1.0 and profile["columns"]["radius"]["missing"] == 2
    assert profile["columns"]["colour"]["counts"] == dict(Counter(red=2, blue=1))


def test_labels_and_feature_names_from_the_data_stay_inert_in_the_report(tmp_path: Path) -> None:
    # Given a model whose class and feature names carry markdown and HTML, answering that class for everyone
    hostile = "x|y`<img src=a onerror=b>"
    profile = training_profile()
    profile["columns"][hostile] = profile["columns"].pop("radius")
    rows = [{f"input.{hostile}": [0.0] * 10, "label": [hostile] * 10} for _ in range(30)]
    write_log(tmp_path, rows)
    since = dt.datetime.now() - dt.timedelta(hours=1)
    traffic = monitor.read_log(monitor.log_files(tmp_path), "v1", since, profile, set())

    verdict, checks = monitor.judge(traffic, REFERENCE, profile, SETTINGS)
    report = monitor.render("production", {"version": "v1", "model": "m:1"}, traffic, verdict, checks, 24, {}, 0)

    # Then each check is still one table row of five cells, and no raw tag reaches the page
    rows_ = [line for line in report.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows_) == len(checks) and verdict == monitor.FAILING
    outside_code = re.sub(r"``.*?``", "", report)
    assert "<img" not in outside_code and "``x\\|y`<img src=a onerror=b>``" in report


def test_a_regressors_answers_are_judged_by_their_decile_bins(tmp_path: Path) -> None:
    # Given a regressor's reference answers spread over its bins, and a window where every answer is in q5
    reference = {**REFERENCE, "task": "regression", "labels": [f"q{1 + i % 10}" for i in range(100)]}
    write_log(tmp_path, requests(30, labels=["q5"] * 10))

    verdict, checks = monitor.judge(window(tmp_path), reference, training_profile(), SETTINGS)

    # Then the top bin's share and the bins' shift fail, in a regressor's words
    failed = {c.name: c for c in checks if c.outcome == monitor.FAIL}
    assert verdict == monitor.FAILING
    assert failed["top bin share"].message == "100.0% of the window's predictions are in the decile bin `q5`"
    assert "the bins' shares moved by PSI" in failed["prediction shift (PSI against the reference set)"].message
