"""End to end: each baked project passes its own gates, serves its pinned model, and refuses bad data and requests."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bake import resolved
from demo import bake, build_bento, first_test_instance, post, project_env, serve, sh
from helpers import (
    COOKIECUTTER_JSON,
    GATES,
    ROOT,
    copy_project,
    matrix_id,
    options_context,
    run_cookiecutter,
    write_churn_csv,
    write_cookiecutter_config,
    write_penguins_csv,
)
from mlgitops import contract, monitor
from mlgitops import prometheus as promql
from prometheus_server import prometheus, scraped

pytestmark = pytest.mark.slow


def git_tracked(project: Path) -> set[str]:
    return set(sh(["git", "ls-files"], project, project_env(project, project)).splitlines())


@pytest.mark.parametrize("options", GATES, ids=lambda o: f"{matrix_id(o)}-{o['model']}-{o['metric']}")
def test_baked_project_passes_its_own_gates(tmp_path, options):
    csv = write_churn_csv(tmp_path / "churn.csv")
    project = bake(tmp_path / "out", **options_context(options, csv))
    env = project_env(project, tmp_path / "bentoml")

    # The first commit already holds a reproduced baseline of the chosen model and metric.
    regression = options["task"] == "regression"
    plots = "plots/predictions.csv" if regression else "plots/confusion.csv"
    assert {"dvc.lock", "metrics.json", "data/schema.yaml", "models/model.json", plots} <= git_tracked(project)
    assert sh(["git", "status", "--porcelain"], project, env) == ""
    assert "up to date" in sh(["dvc", "status"], project, env)
    assert "schema" in yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    model, metric = resolved(options, "model"), resolved(options, "metric")
    assert (params["model"]["family"], params["evaluate"]["metric"]) == (model, metric)
    metrics = json.loads((project / "metrics.json").read_text(encoding="utf-8"))
    meta = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))
    if regression:
        # A regressor that learned something: r2 above 0.3 on the test split, its answers counted in nine edges' bins
        assert metrics["r2"] > 0.3 and metrics["rmse"] >= metrics["mae"] > 0
        assert meta["task"] == "regression" and len(meta["bins"]) == 9
    else:
        assert metrics[metric] > 0
        assert len(meta["classes"]) == {"breast_cancer": 2, "wine": 3, "csv": 2, "parquet": 2}[options["dataset"]]

    sh(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, env)
    sh(["ruff", "check", "--no-cache", "."], project, env)
    sh(["ruff", "format", "--no-cache", "--check", "."], project, env)
    sh(["pre-commit", "run", "--all-files", "--show-diff-on-failure"], project, env)
    assert sh(["git", "status", "--porcelain"], project, env) == "", "the gates changed tracked files"
    tag = build_bento(project, env)
    assert tag.startswith(f"{project.name}:")


def build_and_serve(root: Path, project: Path) -> Iterator[tuple[Path, dict[str, str], str, str]]:
    """Build a baked project's Bento, then serve it on 127.0.0.1 without access to the source tree."""
    env = project_env(project, root / "bentoml")
    tag = build_bento(project, env)
    serve_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    with serve(tag, root, serve_env) as url:
        yield project, env, tag, url


@pytest.fixture(scope="module")
def served(tmp_path_factory, default_project):
    """The default project, served."""
    root = tmp_path_factory.mktemp("served")
    yield from build_and_serve(root, copy_project(default_project, root / "out"))


# What the penguin project's params.yaml says the served model logs: half the requests, without the sex, the
# island hashed.
PENGUIN_MONITOR = {"sample: 1.0": "sample: 0.5", "drop: []": "drop: [sex]", "hash: []": "hash: [island]"}


@pytest.fixture(scope="module")
def served_penguins(tmp_path_factory):
    """A project of penguin-like data (string categories, gaps in numbers and categories), served; it logs as
    PENGUIN_MONITOR says."""
    root = tmp_path_factory.mktemp("penguins")
    csv = write_penguins_csv(root / "penguins.csv")
    project = bake(root / "out", dataset="csv", csv_path=str(csv), target_column="species", project_name="Penguins")
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    for default, setting in PENGUIN_MONITOR.items():
        assert f"    {default}" in text
        text = text.replace(f"    {default}", f"    {setting}")
    params.write_text(text, encoding="utf-8")
    yield from build_and_serve(root, project)


@pytest.fixture(scope="module")
def served_regression(tmp_path_factory):
    """The project `task=regression` alone makes (diabetes, ridge, rmse), served."""
    root = tmp_path_factory.mktemp("regression")
    yield from build_and_serve(root, bake(root / "out", task="regression"))


def logged(env: dict[str, str], tag: str) -> dict[str, dict]:
    """The records a served Bento's monitor wrote, by request id: BentoML's default log path is in the Bento's src/."""
    name, version = tag.split(":")
    folder = Path(env["BENTOML_HOME"]) / "bentos" / name / version / "src" / "monitoring" / "predictions" / "data"
    records = [json.loads(line) for log in sorted(folder.glob("data.*.log*")) for line in log.read_text().splitlines()]
    return {record["request_id"]: record for record in records}


def predictions_counted(url: str) -> dict[tuple[str, str], float]:
    """mlgitops_predictions_total on /metrics, by (class, model)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    series = re.findall(r'^mlgitops_predictions_total\{class="([^"]*)",model="([^"]*)"\} (\S+)$', text, re.MULTILINE)
    return {(label, model): float(value) for label, model, value in series}


def predict_with_headers(url: str, instances: list[dict], **headers: str) -> tuple[dict, dict[str, str]]:
    request = urllib.request.Request(
        f"{url}/predict",
        data=json.dumps({"instances": instances}).encode(),
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read()), {key.lower(): value for key, value in response.headers.items()}


def test_served_bento_predicts_with_the_pinned_model(served):
    project, env, tag, url = served
    meta = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))
    status, answer = post(f"{url}/predict", {"instances": [first_test_instance(project, env)] * 3})
    assert status == 200, answer
    assert answer["model"] == f"{project.name}:{meta['sha256'][:20]}"
    assert len(answer["predictions"]) == 3
    assert all(p["label"] in meta["classes"] for p in answer["predictions"])
    status, info = post(f"{url}/model_info", {})
    assert status == 200
    assert info["sha256"] == meta["sha256"]
    # The served Bento says which release it is: deploy targets wait for it during a rollout.
    assert info["bento_version"] == tag.split(":")[1]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x: {k: v for k, v in list(x.items())[1:]}, "Field required"),
        (lambda x: {**x, next(iter(x)): "not a number"}, "valid number"),
        (lambda x: {**x, "no such feature": 1.0}, "Extra inputs are not permitted"),
        (lambda x: {**x, next(iter(x)): None}, "valid number"),
    ],
    ids=["missing-feature", "not-a-number", "unknown-feature", "null"],
)
def test_served_bento_rejects_invalid_instances_with_400(served, mutate, message):
    project, env, _tag, url = served
    status, answer = post(f"{url}/predict", {"instances": [mutate(first_test_instance(project, env))]})
    assert status == 400
    assert message in json.dumps(answer)


@pytest.mark.parametrize(
    ("change", "refused"),
    [
        ({}, None),
        ({"sex": None, "bill_length_mm": None, "bill_depth_mm": None}, None),
        ({"island": "Atlantis"}, ("island", "Input should be one of 'Biscoe', 'Dream', 'Torgersen'")),
        ({"sex": "MALE"}, ("sex", "Input should be one of 'female', 'male'")),
        ({"island": None}, ("island", "Input should be one of 'Biscoe', 'Dream', 'Torgersen'")),
        ({"body_mass_g": None}, ("body_mass_g", "Input should be a valid number")),
    ],
    ids=["known-categories", "null-where-nullable", "unknown-island", "unknown-sex", "null-island", "null-body-mass"],
)
def test_served_bento_holds_requests_to_the_declared_schema(served_penguins, change, refused):
    # Given the example request of a project whose schema declares categories and nullable columns
    project, env, _tag, url = served_penguins
    instance = first_test_instance(project, env)
    # When one value changes
    status, answer = post(f"{url}/predict", {"instances": [{**instance, **change}]})
    # Then the service answers as the schema says, naming the field and the allowed values when it refuses
    if refused is None:
        assert status == 200, answer
        assert len(answer["predictions"]) == 1
    else:
        assert status == 400, answer
        [error] = answer["detail"]
        assert (error["loc"][-1], error["msg"]) == refused


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "Invalid JSON"),
        ({"instances": []}, "at least 1 item"),
        ({"rows": []}, "Field required"),
    ],
    ids=["not-json", "empty", "wrong-key"],
)
def test_served_bento_rejects_malformed_requests_with_400(served, payload, message):
    _project, _env, _tag, url = served
    status, answer = post(f"{url}/predict", payload)
    assert status == 400
    assert message in json.dumps(answer)


def test_served_bento_rejects_oversized_batches(served):
    project, env, _tag, url = served
    status, answer = post(f"{url}/predict", {"instances": [first_test_instance(project, env)] * 1001})
    assert status == 400
    assert "at most 1000 items" in json.dumps(answer)


def test_served_bento_logs_each_request_under_the_id_it_answers_with(served):
    # Given the default project served: every request logged, every feature in clear
    project, env, tag, url = served
    first = first_test_instance(project, env)
    name = next(iter(first))
    second = {**first, name: first[name] * 2}
    # When a request of two instances is answered
    answer, headers = predict_with_headers(url, [first, second])
    # Then the answer keeps its fields and adds the request's id, BentoML's own (its header has it in hex)
    assert set(answer) == {"model", "predictions", "request_id"}
    assert headers["x-bentoml-request-id"] == format(int(answer["request_id"]), "016x")
    # And one record under that id names the model and the Bento and holds each instance's inputs and output
    record = logged(env, tag)[answer["request_id"]]
    assert (record["model"], record["bento_version"]) == (answer["model"], tag.split(":")[1])
    assert {name: record[f"input.{name}"] for name in first} == {name: [first[name], second[name]] for name in first}
    assert record["label"] == [p["label"] for p in answer["predictions"]]
    for label in answer["predictions"][0]["probabilities"]:
        assert record[f"probability.{label}"] == [p["probabilities"][label] for p in answer["predictions"]]
    assert record["timestamp"]


def test_served_bento_neither_counts_nor_logs_the_releases_own_requests(served):
    # Given the served project, and a request as the kit's verification, smoke test and canary send it
    project, env, tag, url = served
    before = predictions_counted(url)
    instance = first_test_instance(project, env)
    synthetic = {"X-MLGitOps-Synthetic": "release-check"}
    # When it is answered
    answer, _ = predict_with_headers(url, [instance] * 3, **synthetic)
    # Then it got its answer, but no counter moved and no record was written under its id
    assert len(answer["predictions"]) == 3
    assert predictions_counted(url) == before
    assert answer["request_id"] not in logged(env, tag)


def test_served_bento_stores_feedback_for_an_answered_request_once(served):
    # Given a request of two instances the served project answered, and one of the release's own checks,
    project, env, tag, url = served
    classes = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))["classes"]
    instance = first_test_instance(project, env)
    request_id = post(f"{url}/predict", {"instances": [instance, instance]})[1]["request_id"]
    synthetic, _ = predict_with_headers(url, [instance], **{"X-MLGitOps-Synthetic": "release-check"})
    # when its true labels are sent, they are stored,
    labels = [classes[0], classes[-1]]
    assert post(f"{url}/feedback", {"request_id": request_id, "labels": labels}) == (
        200,
        {"request_id": request_id, "stored": 2},
    )
    # and every bad feedback gets a 400 saying why: a replay, an unknown id, the release's own request (never
    # indexed), a label outside the classes, a count that differs, a missing field.
    refused = [
        ({"request_id": request_id, "labels": labels}, "stored once"),
        ({"request_id": "123", "labels": [classes[0]]}, "no request '123' was answered here"),
        ({"request_id": synthetic["request_id"], "labels": [classes[0]]}, "was answered here"),
        ({"request_id": request_id, "labels": ["not-a-class", classes[0]]}, "is not one of the model's classes"),
        ({"request_id": request_id, "labels": [classes[0]]}, "had 2 instance(s)"),
        ({"request_id": request_id}, "labels"),
    ]
    for payload, message in refused:
        status, body = post(f"{url}/feedback", payload)
        assert status == 400 and isinstance(body, dict) and message in json.dumps(body), (payload, status, body)
    # Nothing was stored twice: one feedback line, beside the prediction log in the Bento's working folder.
    name, version = tag.split(":")
    folder = Path(env["BENTOML_HOME"]) / "bentos" / name / version / "src" / "monitoring" / "feedback"
    stored = [json.loads(line) for line in (folder / "feedback.jsonl").read_text().splitlines()]
    assert [(record["request_id"], record["labels"]) for record in stored] == [(request_id, labels)]


def test_served_bento_counts_every_prediction_by_class_on_metrics(served):
    # Given the served project's counters, one series per class from the start
    project, env, _tag, url = served
    before = predictions_counted(url)
    classes = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))["classes"]
    assert {label for label, _model in before} == set(classes)
    # When requests of one and of three instances are answered
    answers = [post(f"{url}/predict", {"instances": [first_test_instance(project, env)] * n})[1] for n in (1, 3)]
    # Then each class's counter went up by the predictions of that class, under the model's tag
    after = predictions_counted(url)
    model = answers[0]["model"]
    expected = {label: sum(p["label"] == label for a in answers for p in a["predictions"]) for label in classes}
    assert {label: after[label, model] - before[label, model] for label in classes} == expected
    assert sum(expected.values()) == 4


def analysis_queries(namespace: str, canary_hash: str) -> dict[str, str]:
    """The canary AnalysisTemplate's PromQL by metric, from the template, with Argo Rollouts' arguments filled in."""
    path = ROOT / "{{cookiecutter.project}}" / "deploy" / "kubernetes" / "components" / "canary"
    path /= "analysistemplate.yaml"
    text = path.read_text(encoding="utf-8").replace("{% raw %}", "").replace("{% endraw %}", "")
    template = yaml.safe_load(text.replace("{{ cookiecutter.project }}", "shop"))
    return {
        metric["name"]: metric["provider"]["prometheus"]["query"]
        .replace("{{args.namespace}}", namespace)
        .replace("{{args.canary-hash}}", canary_hash)
        for metric in template["spec"]["metrics"]
    }


def test_prometheus_scraping_the_served_bento_gives_the_monitor_and_the_canary_analysis_their_figures(
    served, tmp_path, monkeypatch
):
    # Given a real Prometheus scraping the served Bento as a canary pod of shop-production,
    project, env, tag, url = served
    target = url.removeprefix("http://")
    labels = {"namespace": "shop-production", "rollouts_pod_template_hash": "canary1"}
    (model,) = {model for _label, model in predictions_counted(url)}
    live = {"version": tag.split(":")[1], "model": model}
    analysis = analysis_queries("shop-production", "canary1")
    # (BentoML creates a route's request series at its first request: Prometheus must see them from before.)
    instance = first_test_instance(project, env)
    post(f"{url}/predict", {"instances": [instance]})
    with prometheus(tmp_path / "prometheus", {target: labels}) as prom:
        scraped(prom, target)
        # when nobody has called it yet, then every class counts 0 and the analysis has no figure (inconclusive),
        quiet = promql.evidence(prom, namespace="shop-production", window_seconds=60, **live)
        assert set(quiet["labels"].values()) == {0.0}
        assert [promql.query(prom, q) for q in analysis.values()] == [[], []]
        # and when 30 users get the same answer, the monitor's figures and the analysis' share both show it.
        answers = [post(f"{url}/predict", {"instances": [instance]})[1] for _ in range(30)]
        (label,) = {answer["predictions"][0]["label"] for answer in answers}
        scraped(prom, target)
        found = promql.evidence(prom, namespace="shop-production", window_seconds=60, **live)
        # (`increase` extrapolates to the window's edges: counts are close to, not exactly, what was served)
        assert 27 <= found["labels"][label] <= 60
        assert {other for other, count in found["labels"].items() if count} == {label}
        assert 27 <= found["requests"] <= 60 and found["errors"] == 0.0
        assert 0 < found["p95_seconds"] < 5
        ((_, share),) = promql.query(prom, analysis["top-class-share"])
        ((_, errors),) = promql.query(prom, analysis["error-rate"])
        assert share > contract.DEFAULTS["report"]["max_majority_share"] and errors == 0.0
        # A namespace Prometheus scrapes nothing of has no data at all, which the monitor calls "no evidence".
        monkeypatch.setenv("PROMETHEUS_URL", prom)
        traffic = monitor.prometheus_traffic("shop", "staging", live, 3600)
        assert (traffic.predictions, traffic.requests, traffic.errors, traffic.p95_seconds) == (0, None, None, None)
        reference = {"labels": [label] * 10}
        verdict, _checks = monitor.judge(traffic, reference, None, contract.from_params({}))
        assert verdict == monitor.NO_EVIDENCE
        # and the production window of the same traffic, judged with 20 predictions as enough evidence, fails on
        # its top class share.
        settings = contract.from_params({})
        settings["watch"]["min_predictions"] = 20
        traffic = monitor.prometheus_traffic("shop", "production", live, 60)
        verdict, checks = monitor.judge(traffic, reference, None, settings)
        assert verdict == monitor.FAILING
        assert any(check.name == "top class share" and check.outcome == monitor.FAIL for check in checks)


def test_served_bento_drops_hashes_and_samples_as_its_params_say(served_penguins):
    # Given the penguin project, built to log half the requests, without the sex and with the island hashed
    project, env, tag, url = served_penguins
    instance = first_test_instance(project, env)
    before = predictions_counted(url)
    # When requests are answered until some were logged and some not (the sample follows the request id)
    answers = []
    while len(answers) < 60 and len({sampled(a["request_id"], 0.5) for a in answers}) < 2:
        status, answer = post(f"{url}/predict", {"instances": [instance]})
        assert status == 200, answer
        answers.append(answer)
    # Then exactly the sampled requests are logged, no record holds the sex, and the island is its SHA-256
    records = logged(env, tag)
    ids = {a["request_id"] for a in answers}
    assert {i for i in ids if i in records} == {i for i in ids if sampled(i, 0.5)} != ids
    for request_id in ids & set(records):
        record = records[request_id]
        assert not [key for key in record if "sex" in key]
        assert record["input.island"] == [hashlib.sha256(instance["island"].encode()).hexdigest()]
        assert record["input.bill_length_mm"] == [instance["bill_length_mm"]]
    # And /metrics counted every prediction, logged or not
    after = predictions_counted(url)
    assert sum(after.values()) - sum(before.values()) == len(answers)


def sampled(request_id: str, share: float) -> bool:
    """The README's rule: a request is logged when the first 8 bytes of the SHA-256 of its id, as a number, fall
    below the share of 2**64."""
    digest = hashlib.sha256(request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def test_bad_monitor_settings_stop_the_bento_build_with_one_sentence(served, tmp_path):
    # Given a project whose params.yaml hashes a column the model does not have
    project = Path(shutil.copytree(served[0], tmp_path / served[0].name))
    env = project_env(project, tmp_path / "bentoml")
    params = project / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("    hash: []", "    hash: [email]"))
    sentence = "mlgitops.monitor.hash in params.yaml names 'email', which is not a feature of the model ("
    # When the model is registered, and when the Bento is built anyway
    register = subprocess.run(
        ["python", "-m", project.name.replace("-", "_"), "register"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    build = subprocess.run(["bentoml", "build"], cwd=project, env=env, capture_output=True, text=True)
    # Then both refuse, saying why in one sentence, and no Bento is built
    assert register.returncode == 1
    assert register.stderr.startswith(f"error: {sentence}") and register.stderr.count("\n") == 1
    assert build.returncode != 0
    assert sentence in build.stdout + build.stderr
    assert json.loads(sh(["bentoml", "list", "-o", "json"], project, env)) == []


def test_rebuilding_reuses_the_content_addressed_model(served):
    project, env, _tag, _url = served
    before = sh(["bentoml", "models", "list", "-o", "json"], project, env)
    build_bento(project, env)
    assert sh(["bentoml", "models", "list", "-o", "json"], project, env) == before


def test_tampered_model_is_refused_and_the_store_is_unchanged(served, tmp_path):
    project = Path(shutil.copytree(served[0], tmp_path / served[0].name))
    env = project_env(project, tmp_path / "bentoml")
    model = project / "models" / "model.joblib"
    model.write_bytes(model.read_bytes() + b"tampered")
    result = subprocess.run(
        ["python", "-m", project.name.replace("-", "_"), "register"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "does not match models/model.json" in result.stderr
    assert json.loads(sh(["bentoml", "models", "list", "-o", "json"], project, env)) == []


def test_schema_violation_stops_the_pipeline_and_keeps_the_last_results(tmp_path):
    csv = write_churn_csv(tmp_path / "churn.csv")
    project = bake(tmp_path / "out", dataset="csv", csv_path=str(csv), target_column="churned")
    env = project_env(project, tmp_path / "bentoml")
    kept = {
        name: (project / name).read_bytes() for name in ("metrics.json", "models/model.json", "models/model.joblib")
    }
    lock_before = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    data = project / "data" / "raw" / "dataset.csv"
    lines = data.read_text(encoding="utf-8").splitlines()
    lines[1] = "9999," + lines[1].split(",", 1)[1]
    lines[2] = lines[2].replace("basic", "platinum").replace("plus", "platinum").replace("pro", "platinum")
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(["dvc", "repro"], cwd=project, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "column 'tenure_months'" in output
    assert "column 'plan'" in output
    assert {name: (project / name).read_bytes() for name in kept} == kept
    # prepare did run on the new data, so DVC records it; the model's stages keep their last good state.
    lock_after = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))["stages"]
    assert {s: lock_after[s] for s in ("train", "evaluate")} == {s: lock_before[s] for s in ("train", "evaluate")}
    report = json.loads((project / "reports" / "data_check.json").read_text(encoding="utf-8"))
    assert report["valid"] is False


def test_project_baked_without_the_pipeline_packages_completes_with_plain_dvc_repro(tmp_path, cookiecutter_only_python):
    # Given cookiecutter run by path from a Python without the pipeline's packages, as pipx and uvx install it,
    config = write_cookiecutter_config(tmp_path)
    result = run_cookiecutter(str(ROOT), tmp_path, config, python=str(cookiecutter_only_python))
    assert result.returncode == 0, result.stderr[-3000:]
    project = tmp_path / "out" / "cancer-classifier"
    env = project_env(project, tmp_path / "bentoml")
    # the first commit holds no results and no schema, and the bake said what to run.
    assert "run `pip install -e '.[dev]'` and `dvc repro`" in result.stderr
    assert sh(["git", "log", "--format=%s"], project, env).splitlines() == ["Create project from template"]
    assert not {"dvc.lock", "metrics.json", "data/schema.yaml"} & git_tracked(project)
    # When plain `dvc repro` runs where the project's packages are installed,
    out = sh(["dvc", "repro"], project, env)
    # then the pipeline completes, declaring the schema from the data and saying so.
    assert "declared data/schema.yaml from the data" in out
    assert (project / "data" / "schema.yaml").is_file()
    assert json.loads((project / "metrics.json").read_text(encoding="utf-8"))["f1_macro"] > 0
    assert "up to date" in sh(["dvc", "status"], project, env)


def test_dvc_repro_never_overwrites_a_declared_schema(tmp_path, baked_default):
    # Given a baked project whose declared schema a reviewer has edited,
    project = baked_default
    env = project_env(project, tmp_path / "bentoml")
    path = project / "data" / "schema.yaml"
    schema = yaml.safe_load(path.read_text(encoding="utf-8"))
    schema["columns"]["mean radius"]["in_range"]["max_value"] = 1000.0
    path.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")
    edited = path.read_text(encoding="utf-8")
    # when the pipeline runs again, plain and forced,
    sh(["dvc", "repro"], project, env)
    sh(["dvc", "repro", "--force", "schema"], project, env)
    # then the edit stands, and the pipeline's record holds the edited schema.
    assert path.read_text(encoding="utf-8") == edited
    assert "up to date" in sh(["dvc", "status"], project, env)


def test_generated_ci_workflow_runs_under_act(tmp_path, baked_default):
    """The generated CI workflow on main, run for real by act: hooks, tests and pipeline pass, no Bento built twice."""
    project = baked_default
    env = project_env(project, tmp_path / "bentoml")
    # pre-commit's hook environments are the ones the gates above use, not installed again for this run.
    hooks = env.get("PRE_COMMIT_HOME") or str(Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache", "pre-commit"))
    # act keeps its workspaces under the cache folder; BentoML refuses paths inside hidden folders like ~/.cache.
    env["XDG_CACHE_HOME"] = str(tmp_path / "act-cache")
    event = tmp_path / "push.json"
    event.write_text(json.dumps({"ref": "refs/heads/main", "repository": {"full_name": f"octo/{project.name}"}}))
    standins = Path(__file__).parent / "standins"
    pins = {name: value.split(" # ")[0] for name, value in COOKIECUTTER_JSON["_pins"].items()}
    command = ["act", "push", "-W", ".github/workflows/ci.yml", "-e", str(event), "-P", "ubuntu-latest=-self-hosted"]
    command += ["--env", f"BENTOML_HOME={tmp_path / 'bentoml'}", "--env", f"STANDIN_CACHE={tmp_path / 'cache'}"]
    # The jobs run one after the other in one environment, installed from scratch by the first: the second job's
    # install finds it done, as a warm setup-python cache would have it (and the machine installs once, not twice).
    command += ["--concurrent-jobs", "1", "--env", f"STANDIN_VENV={tmp_path / 'venv'}"]
    command += ["--env", f"PRE_COMMIT_HOME={hooks}"]
    for name in ("checkout", "setup-python", "cache"):
        command += ["--local-repository", f"actions/{name}@{pins[f'actions/{name}']}={standins / name}"]
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=1500)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-5000:]
    for step in ("Run pre-commit hooks", "Run tests", "Reproduce the pipeline"):
        assert f"Success - Main {step}" in log, step
    # The release workflow packages main's Bento, once: CI on main builds none.
    assert "Main Build the Bento" not in log
    assert not list((tmp_path / "bentoml").glob("bentos/*/*"))
    assert log.count("Job succeeded") == 2
    # A push to main keeps its DVC cache (outputs and run cache) for pull requests to restore.
    assert "stand-in cache: saved dvc-" in log and any((tmp_path / "cache").glob("dvc-*/runs"))


def fuzz(url: str, env: dict[str, str], folder: Path, examples: int, seed: int) -> subprocess.CompletedProcess[str]:
    """Schemathesis on the served Bento's /docs.json with the kit's checks (fuzz_checks.py); fails on any finding."""
    command = ["schemathesis", "run", f"{url}/docs.json", "--max-examples", str(examples), "--seed", str(seed)]
    command += ["--workers", "1"]
    command += ["--checks", "not_a_server_error,client_errors_explain_themselves,schema_valid_predictions_are_accepted"]
    fuzz_env = {**env, "SCHEMATHESIS_HOOKS": "fuzz_checks", "PYTHONPATH": str(Path(__file__).parent)}
    # Run in folder: schemathesis keeps its example database in the working directory.
    result = subprocess.run(command, cwd=folder, env=fuzz_env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:]
    return result


def test_fuzzing_the_openapi_description_finds_no_server_error(served_penguins, tmp_path):
    """Over a thousand requests generated from /docs.json: no 5xx, refusals explain themselves, valid ones pass."""
    # The penguin project's description has numbers, declared categories and nullable fields of both kinds.
    _project, env, _tag, url = served_penguins
    result = fuzz(url, env, tmp_path, examples=900, seed=1)
    generated = int(re.search(r"(\d+) generated", result.stdout).group(1))
    assert generated >= 1000, result.stdout[-2000:]


def test_service_that_crashes_on_start_fails_fast_with_its_reason(served, tmp_path):
    _project, env, tag, _url = served
    home = Path(shutil.copytree(env["BENTOML_HOME"], tmp_path / "bentoml"))
    next(home.glob("models/*/*/model.joblib")).write_bytes(b"not a model")
    crash_env = {k: v for k, v in env.items() if k != "PYTHONPATH"} | {"BENTOML_HOME": str(home)}
    with (
        pytest.raises(AssertionError, match="does not match its digest"),
        serve(tag, tmp_path, crash_env, ready_within=60),
    ):
        pass


def test_with_a_dvc_remote_ci_runs_only_the_stages_a_change_affects(tmp_path, baked_default):
    """The train action on a fresh clone: unchanged stages come from the remote, only the affected stage runs."""
    project = baked_default
    env = project_env(project, tmp_path / "bentoml")
    sh(["dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")], project, env)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "Add a DVC remote"], project, env)
    sh(["dvc", "push", "--run-cache"], project, env)
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(project), str(clone)], tmp_path, env)
    params = clone / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("  metric: f1_macro", "  metric: accuracy"))
    clone_env = {**env, "PYTHONPATH": os.pathsep.join([str(ROOT / "actions"), str(clone / "src")])}
    sh(["python", "-m", "mlgitops.train", "--out-dir", "reports/pr"], clone, clone_env)
    result = json.loads((clone / "reports/pr/train.json").read_text(encoding="utf-8"))
    assert result["remote"] is True
    assert result["ran"] == ["evaluate"]
    assert set(result["skipped"]) == {"schema", "prepare", "validate", "train"}


# --- a regression project, served ---


def in_process_numbers(project: Path, env: dict[str, str], instances: list[dict]) -> list[float]:
    """What the pipeline's model predicts for the instances in process, rounded as the service rounds."""
    code = (
        "import json, sys, joblib, pandas as pd\n"
        "model = joblib.load('models/model.joblib')\n"
        "print(json.dumps([round(v, 6) for v in model.predict(pd.DataFrame(json.loads(sys.argv[1]))).tolist()]))\n"
    )
    return json.loads(sh(["python", "-c", code, json.dumps(instances)], project, env))


def test_a_served_regressor_answers_the_pipelines_numbers_and_counts_them_in_decile_bins(served_regression):
    project, env, _tag, url = served_regression
    meta = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))
    instance = first_test_instance(project, env)
    changed = {**instance, "bmi": instance["bmi"] + 0.05}
    status, answer = post(f"{url}/predict", {"instances": [instance, changed, instance]})
    assert status == 200, answer
    assert answer["model"] == f"{project.name}:{meta['sha256'][:20]}"
    values = [p["value"] for p in answer["predictions"]]
    assert list(answer["predictions"][0]) == ["value"]
    assert values == in_process_numbers(project, env, [instance, changed, instance])
    status, info = post(f"{url}/model_info", {})
    assert (info["task"], info["bins"]) == ("regression", meta["bins"])
    counted = {label: value for (label, model), value in predictions_counted(url).items() if model == answer["model"]}
    assert set(counted) == {f"q{i}" for i in range(1, 11)} and sum(counted.values()) == 3


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda x: {k: v for k, v in list(x.items())[1:]}, "Field required"),
        (lambda x: {**x, next(iter(x)): "not a number"}, "valid number"),
        (lambda x: {**x, "no such feature": 1.0}, "Extra inputs are not permitted"),
        (lambda x: {**x, next(iter(x)): None}, "valid number"),
        (lambda x: {**x, next(iter(x)): 1e300}, "less than or equal to"),
    ],
    ids=["missing-feature", "not-a-number", "unknown-feature", "null", "beyond-magnitude"],
)
def test_a_served_regressor_refuses_invalid_instances_with_the_same_400s(served_regression, mutate, message):
    project, env, _tag, url = served_regression
    status, answer = post(f"{url}/predict", {"instances": [mutate(first_test_instance(project, env))]})
    assert status == 400 and message in json.dumps(answer)


def test_a_served_regressor_stores_numeric_feedback_once_and_refuses_what_is_no_number(served_regression):
    project, env, _tag, url = served_regression
    instance = first_test_instance(project, env)
    request_id = post(f"{url}/predict", {"instances": [instance, instance]})[1]["request_id"]
    assert post(f"{url}/feedback", {"request_id": request_id, "labels": [151.0, 87]}) == (
        200,
        {"request_id": request_id, "stored": 2},
    )
    refused = [
        ({"request_id": request_id, "labels": [151.0, 87.0]}, "stored once"),
        ({"request_id": "123", "labels": [1.0]}, "no request '123' was answered here"),
        ({"request_id": request_id, "labels": ["tall", 1.0]}, "valid number"),
        ({"request_id": request_id, "labels": [1.0]}, "had 2 instance(s): send one value per instance"),
    ]
    for payload, message in refused:
        status, body = post(f"{url}/feedback", payload)
        assert status == 400 and message in json.dumps(body), (payload, status, body)


def test_fuzzing_a_served_regressor_finds_no_server_error(served_regression, tmp_path):
    """Requests generated from the regressor's /docs.json: no 5xx, refusals explain themselves, valid ones pass."""
    _project, env, _tag, url = served_regression
    fuzz(url, env, tmp_path, examples=300, seed=2)
