"""End to end: each baked project passes its own gates, serves its pinned model, and refuses bad data and requests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import COOKIECUTTER_JSON, write_churn_csv
from demo import bake, build_bento, first_test_instance, post, project_env, serve, sh
from test_bake import MATRIX, matrix_id, options_context

pytestmark = pytest.mark.slow


def git_tracked(project: Path) -> set[str]:
    return set(sh(["git", "ls-files"], project, project_env(project, project)).splitlines())


@pytest.mark.parametrize("options", MATRIX, ids=matrix_id)
def test_baked_project_passes_its_own_gates(tmp_path, options):
    csv = write_churn_csv(tmp_path / "churn.csv")
    project = bake(tmp_path / "out", **options_context(options, csv))
    env = project_env(project, tmp_path / "bentoml")

    # The first commit already holds a reproduced baseline, and nothing is left over.
    assert {"dvc.lock", "metrics.json", "data/schema.yaml", "models/model.json", "plots/confusion.csv"} <= git_tracked(
        project
    )
    assert sh(["git", "status", "--porcelain"], project, env) == ""
    assert "up to date" in sh(["dvc", "status"], project, env)

    sh(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, env)
    sh(["ruff", "check", "--no-cache", "."], project, env)
    sh(["ruff", "format", "--no-cache", "--check", "."], project, env)
    sh(["pre-commit", "run", "--all-files", "--show-diff-on-failure"], project, env)
    assert sh(["git", "status", "--porcelain"], project, env) == "", "the gates changed tracked files"
    tag = build_bento(project, env)
    assert tag.startswith(f"{project.name}:")


# Every metric once, both model families, both embedded datasets: each bake reproduces the pipeline.
CONTENT = [
    {"metric": metric, "model": COOKIECUTTER_JSON["model"][i % 2], "dataset": ["breast_cancer", "wine"][i % 2]}
    for i, metric in enumerate(COOKIECUTTER_JSON["metric"])
]


@pytest.mark.parametrize("options", CONTENT, ids=lambda o: "-".join(o.values()))
def test_every_model_and_metric_reproduces(tmp_path, options):
    project = bake(tmp_path, **options)
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    assert params["model"]["family"] == options["model"]
    assert params["evaluate"]["metric"] == options["metric"]
    metrics = json.loads((project / "metrics.json").read_text(encoding="utf-8"))
    assert 0 < metrics[options["metric"]] < 1 or options["metric"] == "log_loss"
    classes = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))["classes"]
    assert len(classes) == (2 if options["dataset"] == "breast_cancer" else 3)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The default project, baked and built, its Bento served on 127.0.0.1 without access to the source tree."""
    root = tmp_path_factory.mktemp("served")
    project = bake(root / "out")
    env = project_env(project, root / "bentoml")
    tag = build_bento(project, env)
    serve_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    with serve(tag, root, serve_env) as url:
        yield project, env, tag, url


def test_served_bento_predicts_with_the_pinned_model(served):
    project, _env, _tag, url = served
    meta = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))
    status, answer = post(f"{url}/predict", {"instances": [first_test_instance(project)] * 3})
    assert status == 200, answer
    assert answer["model"] == f"{project.name}:{meta['sha256'][:20]}"
    assert len(answer["predictions"]) == 3
    assert all(p["label"] in meta["classes"] for p in answer["predictions"])
    status, info = post(f"{url}/model_info", {})
    assert status == 200
    assert info["sha256"] == meta["sha256"]


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
    project, _env, _tag, url = served
    status, answer = post(f"{url}/predict", {"instances": [mutate(first_test_instance(project))]})
    assert status == 400
    assert message in json.dumps(answer)


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
    project, _env, _tag, url = served
    status, answer = post(f"{url}/predict", {"instances": [first_test_instance(project)] * 1001})
    assert status == 400
    assert "at most 1000 items" in json.dumps(answer)


def test_rebuilding_reuses_the_content_addressed_model(served):
    project, env, _tag, _url = served
    before = sh(["bentoml", "models", "list", "-o", "json"], project, env)
    build_bento(project, env)
    assert sh(["bentoml", "models", "list", "-o", "json"], project, env) == before


def test_tampered_model_is_refused_and_the_store_is_unchanged(tmp_path):
    project = bake(tmp_path / "out")
    env = project_env(project, tmp_path / "bentoml")
    model = project / "models" / "model.joblib"
    model.write_bytes(model.read_bytes() + b"tampered")
    result = subprocess.run(
        ["python", "-m", project.name.replace("-", "_"), "register"], cwd=project, env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "does not match models/model.json" in result.stderr
    assert json.loads(sh(["bentoml", "models", "list", "-o", "json"], project, env)) == []


def test_schema_violation_stops_the_pipeline_and_keeps_the_last_results(tmp_path):
    csv = write_churn_csv(tmp_path / "churn.csv")
    project = bake(tmp_path / "out", dataset="csv", csv_path=str(csv), target_column="churned")
    env = project_env(project, tmp_path / "bentoml")
    kept = {name: (project / name).read_bytes() for name in ("metrics.json", "models/model.json", "dvc.lock")}
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
    report = json.loads((project / "reports" / "data_check.json").read_text(encoding="utf-8"))
    assert report["valid"] is False
