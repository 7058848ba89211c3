"""Baking the template: the exact file set for every file-changing option, valid files, clear refusals."""

from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from cookiecutter.main import cookiecutter

import bake
from helpers import (
    COOKIECUTTER_JSON,
    GATES,
    HOSTILE_BUT_VALID,
    MATRIX,
    ROOT,
    SHA,
    UNSPLITTABLE_IDS,
    UNSPLITTABLE_LABELS,
    matrix_id,
    options_context,
    run_cookiecutter,
    write_cookiecutter_config,
    write_labels_csv,
)
from mlgitops import contract

GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
# Argo Rollouts' own template syntax in the canary's AnalysisTemplate, which the template keeps verbatim.
ARGO_ARGUMENT = re.compile(r"\{\{args\.[a-z-]+\}\}")


def expected_files(options: dict, package: str = "", recorded: bool = True) -> set[str]:
    """Every file a fresh bake writes (before the first pipeline run), derived from the options; `recorded`: the
    template was a git checkout, so the hook wrote its version in .cruft.json."""
    # Each task's default project name names the package.
    package = package or ("diabetes_progression" if options.get("task") == "regression" else "cancer_classifier")
    files = {
        ".dvc/.gitignore",
        ".dvc/config",
        ".dvcignore",
        ".gitignore",
        ".pre-commit-config.yaml",
        ".github/dependabot.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/release.yml",
        ".github/workflows/rollback.yml",
        ".github/workflows/model-report.yml",
        ".github/workflows/post-model-report.yml",
        ".github/workflows/template-update.yml",
        "Makefile",
        "README.md",
        "bentofile.yaml",
        "dvc.yaml",
        "params.yaml",
        "pyproject.toml",
        "requirements/serve.txt",
        *(
            f"src/{package}/{name}.py"
            for name in (
                "__init__",
                "__main__",
                "data",
                "evaluate",
                "feedback",
                "live",
                "metadata",
                "params",
                "reference",
                "registry",
                "schema",
                "service",
                "serving",
                "train",
            )
        ),
        *(
            f"tests/{name}.py"
            for name in (
                "conftest",
                "test_data",
                "test_feedback",
                "test_model",
                "test_project",
                "test_reference",
                "test_schema",
                "test_serving",
            )
        ),
    }
    if recorded:
        files.add(".cruft.json")
    if options["license"] != "Proprietary":
        files.add("LICENSE")
    if options["deploy_target"] != "bentocloud":  # BentoCloud watches its deployments itself
        files.add(".github/workflows/monitor.yml")
    if options["dataset"] in ("csv", "parquet"):
        files.add(f"data/raw/dataset.{options['dataset']}")
    if options["deploy_target"] == "kubernetes":
        files |= {"tests/test_deploy.py", "deploy/flux/source.yaml"}
        for environment in ("staging", "production"):
            files |= {
                f"deploy/argocd/{environment}.yaml",
                f"deploy/flux/{environment}.yaml",
                f"deploy/kubernetes/overlays/{environment}/kustomization.yaml",
            }
        files |= {
            f"deploy/kubernetes/base/{name}.yaml"
            for name in ("kustomization", "namespace", "deployment", "service", "poddisruptionbudget")
        }
        files |= {
            f"deploy/kubernetes/components/{name}.yaml"
            for name in (
                "canary/kustomization",
                "canary/rollout",
                "canary/rollout-fields",
                "canary/analysistemplate",
                "prometheus/kustomization",
                "prometheus/podmonitor",
            )
        }
    if options["actions_source"] == "vendored":
        root = Path(__file__).resolve().parents[1] / "actions"
        files.add(".github/zizmor.yml")
        files |= {
            f".github/actions/{p.relative_to(root)}"
            for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.name not in ("docs.py", "kit_release.py")
        }
    return files


def tracked_files(project: Path) -> set[str]:
    out = subprocess.run(["git", "ls-files"], cwd=project, capture_output=True, text=True, check=True).stdout
    return set(out.splitlines())


@pytest.mark.parametrize("options", MATRIX, ids=matrix_id)
def test_bake_writes_exactly_the_expected_files(shared_bake, churn_csv, options):
    project = shared_bake(**options_context(options, churn_csv))
    assert tracked_files(project) == expected_files(options)


@pytest.mark.parametrize("options", MATRIX, ids=matrix_id)
def test_baked_files_are_rendered_and_parse(shared_bake, churn_csv, options):
    project = shared_bake(**options_context(options, churn_csv))
    assert_rendered(project, options, churn_csv)


def assert_rendered(project: Path, options: dict, churn_csv: Path) -> None:
    """Every tracked file of a bake is rendered (no Jinja left) and parses as its kind; copies equal their source."""
    for relative in tracked_files(project):
        path = project / relative
        if relative.startswith("data/raw/"):
            # The user's data, copied byte for byte by the hook (parquet is binary).
            assert (
                path.read_bytes()
                == Path(options_context(options, churn_csv)[f"{options['dataset']}_path"]).read_bytes()
            )
            continue
        text = path.read_text(encoding="utf-8")
        if relative == ".cruft.json":
            # cruft's record of the answers (its format names them "cookiecutter"), not a rendered file.
            assert json.loads(text)["context"]["cookiecutter"]["project"] == project.name
            continue
        if relative.startswith(".github/actions/"):
            # Copied verbatim by the hook, not rendered: it must equal the kit's own file.
            assert text == (ROOT / "actions" / relative.removeprefix(".github/actions/")).read_text(encoding="utf-8")
            continue
        jinja_only = ARGO_ARGUMENT.sub("", GITHUB_EXPRESSION.sub("", text))
        assert "{{" not in jinja_only and "{%" not in jinja_only, f"unrendered Jinja in {relative}"
        assert "cookiecutter" not in text, f"template variable name left in {relative}"
        if path.suffix == ".py":
            ast.parse(text, filename=relative)
        elif path.suffix in {".yml", ".yaml"}:
            yaml.safe_load(text)
        elif path.suffix == ".toml":
            tomllib.loads(text)
        elif path.suffix == ".json":
            json.loads(text)


# Every task x dataset x model x metric the questions offer and the hook accepts. `auto` renders what it resolves
# to (the hook's tests hold cookiecutter.json's resolution equal to the hook's table), so it is baked once per
# task, all three `auto`, beside every explicit combination; the hook's tests refuse the others for a named reason.
VALID_COMBINATIONS = [
    {"task": task, "dataset": dataset, "model": model, "metric": metric}
    for task, fits in bake.FITS.items()
    for dataset in fits["dataset"]
    for model in fits["model"]
    for metric in fits["metric"]
] + [{"task": task, "dataset": bake.AUTO, "model": bake.AUTO, "metric": bake.AUTO} for task in bake.FITS]


@pytest.mark.parametrize("options", VALID_COMBINATIONS, ids=lambda o: "-".join(o.values()))
def test_every_valid_combination_renders_parses_and_lints(shared_bake, churn_csv, options):
    # Given one combination of task, dataset, model family and metric
    project = shared_bake(**options_context(options, churn_csv))
    # then every file is rendered and parses, and the stages are set up for what `auto` resolved to,
    assert_rendered(project, options, churn_csv)
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    chosen = (params["task"], params["data"]["source"], params["model"]["family"], params["evaluate"]["metric"])
    assert chosen == (options["task"], *(bake.resolved(options, name) for name in ("dataset", "model", "metric")))
    # and the project's Python passes its own linter and formatter as generated.
    for command in (["check"], ["format", "--check"]):
        lint = subprocess.run(["ruff", *command, "--no-cache", "."], cwd=project, capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_projects_that_run_their_gates_cover_every_option_value_task_model_and_metric():
    for entry in MATRIX:
        for key, value in entry.items():
            assert any(gate[key] == value for gate in GATES), f"no gated project has {key}={value}"
    pairs = {(gate["task"], bake.resolved(gate, "model")) for gate in GATES}
    assert pairs == {(task, model) for task, fits in bake.FITS.items() for model in fits["model"]}
    metrics = {bake.resolved(gate, "metric") for gate in GATES}
    assert metrics == {metric for fits in bake.FITS.values() for metric in fits["metric"]}
    assert bake.AUTO in {gate["model"] for gate in GATES} and len(GATES) < len(MATRIX)


@pytest.mark.parametrize("way", ["relative-path", "absolute-path", "gh-abbreviation", "git-archive-zip"])
def test_every_documented_way_to_bake_writes_the_project(tmp_path, template_repo, way):
    # Given the template as a folder, on "GitHub" (a bare clone that gh: is mapped to) and as a `git archive` zip,
    github = tmp_path / "github"
    subprocess.run(["git", "clone", "-q", "--bare", str(template_repo), str(github / "octo/mlgitops.git")], check=True)
    archive = ["git", "archive", "--format=zip", "--prefix=mlgitops/", "-o", str(tmp_path / "mlgitops.zip"), "HEAD"]
    subprocess.run(archive, cwd=template_repo, check=True)
    template = {
        "relative-path": os.path.relpath(ROOT, tmp_path),
        "absolute-path": str(ROOT),
        "gh-abbreviation": "gh:octo/mlgitops",
        "git-archive-zip": "mlgitops.zip",
    }[way]
    # when cookiecutter is given it the way the README says,
    config = write_cookiecutter_config(tmp_path, github)
    result = run_cookiecutter(template, tmp_path, config, "_reproduce_baseline=false")
    # then the hooks find their module and the whole project is written and committed.
    assert result.returncode == 0, result.stderr[-3000:]
    # (a zip is no git checkout: there is no commit to record for updates, and the hook says how to add one)
    recorded = way != "git-archive-zip"
    assert tracked_files(tmp_path / "out" / "cancer-classifier") == expected_files(MATRIX[0], recorded=recorded)
    assert ("cruft link" in result.stderr) != recorded


def test_bake_makes_one_commit_on_main(shared_bake):
    project = shared_bake()
    git = lambda *args: subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, check=True).stdout  # noqa: E731
    assert git("branch", "--show-current").strip() == "main"
    assert git("log", "--format=%s").splitlines() == ["Create project from template"]
    assert git("status", "--porcelain") == ""


def test_remote_actions_are_used_by_sha_and_not_vendored(shared_bake):
    project = shared_bake(actions_source=f"my-org/ml-actions@{SHA}")
    ci = (project / ".github/workflows/ci.yml").read_text(encoding="utf-8")
    assert f"uses: my-org/ml-actions/actions/setup-project@{SHA}" in ci
    assert "./.github/actions" not in ci
    assert not (project / ".github/actions").exists()


def test_default_uses_vendored_actions_never_a_stranger(shared_bake):
    ci = (shared_bake() / ".github/workflows/ci.yml").read_text(encoding="utf-8")
    assert "uses: ./.github/actions/setup-project" in ci


def assert_text_is_data(project: Path, text: str) -> None:
    """The answer appears verbatim where it is used, and every file that holds it still parses."""
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["description"] == text
    assert pyproject["project"]["authors"][0]["name"] == text
    assert yaml.safe_load((project / "bentofile.yaml").read_text(encoding="utf-8"))["description"] == text
    assert text in (project / "README.md").read_text(encoding="utf-8")
    for source in (project / "src").rglob("*.py"):
        ast.parse(source.read_text(encoding="utf-8"))


@pytest.mark.parametrize("text", HOSTILE_BUT_VALID)
def test_hostile_typed_answers_stay_data_in_every_file(tmp_path, monkeypatch, text):
    typed = {"project_name": text, "project": "hostile", "description": text, "author_name": text}
    monkeypatch.setattr(
        "cookiecutter.prompt.read_user_variable", lambda name, default, *_args, **_kw: typed.get(name, default)
    )
    monkeypatch.setattr("cookiecutter.prompt.read_user_choice", lambda name, options, *_args, **_kw: options[0])
    project = cookiecutter(str(ROOT), output_dir=str(tmp_path), extra_context={"_reproduce_baseline": False})
    assert_text_is_data(Path(project), text)


@pytest.mark.parametrize("text", HOSTILE_BUT_VALID)
def test_hostile_no_input_answers_give_valid_files(cookies, text):
    # Without prompts cookiecutter renders given values as Jinja (that is how derived defaults work),
    # so "{{ 7 * 7 }}" arrives as "49": the files must hold whatever value cookiecutter settled on.
    result = cookies.bake(
        extra_context={
            "_reproduce_baseline": False,
            "project_name": text,
            "project": "hostile",
            "description": text,
            "author_name": text,
        }
    )
    assert result.exception is None, result.exception
    assert_text_is_data(result.project_path, result.context["description"])


def test_default_github_repository_is_the_author_slug_cut_to_a_github_login(fast_bake):
    # Given an author name longer than a GitHub login (39 characters) and no github_repository answer,
    project = fast_bake(author_name="Machine Learning Platform Team at Example Corporation", deploy_target="kubernetes")
    # then the default is the name's slug cut at a word to fit, and the bake accepts it.
    source = yaml.safe_load((project / "deploy/flux/source.yaml").read_text(encoding="utf-8"))
    assert source["spec"]["url"] == "https://github.com/machine-learning-platform-team-at/cancer-classifier.git"


def test_hostile_csv_target_name_stays_data(fast_bake, tmp_path):
    target = 'label "quoted" \\ ünï: x'
    path = tmp_path / "odd.csv"
    path.write_text(f'a,"{target.replace(chr(34), chr(34) * 2)}"\n' + "".join(f"{i},{i % 2}\n" for i in range(60)))
    project = fast_bake(dataset="csv", csv_path=str(path), target_column=target)
    assert yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))["data"]["target"] == target


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project": "Not A Slug"}, "project must be a lowercase slug"),
        ({"project_name": "line\nbreak"}, "project_name must be a single line"),
        ({"package": "import"}, "would shadow a Python keyword"),
        ({"dataset": "csv", "csv_path": "/no/such/file.csv"}, "is not a readable file"),
        ({"github_repository": "github.com/octo/x"}, "github_repository must be OWNER/NAME"),
        ({"dvc_remote": "ssh://host/path"}, "dvc_remote must be empty or s3://BUCKET/PATH"),
        ({"dvc_remote": "s3://Bucket With Spaces"}, "dvc_remote must be empty or s3://BUCKET/PATH"),
    ],
)
def test_bad_answer_stops_the_bake_with_its_reason_and_writes_nothing(cookies, capfd, answers, message):
    result = cookies.bake(extra_context={"_reproduce_baseline": False, **answers})
    assert result.exit_code != 0
    assert message in capfd.readouterr().err
    assert result.project_path is None or not result.project_path.exists()


@pytest.mark.parametrize(("labels", "message"), UNSPLITTABLE_LABELS, ids=UNSPLITTABLE_IDS)
def test_csv_the_split_cannot_use_stops_the_bake_and_writes_nothing(tmp_path, labels, message):
    # Given a CSV whose labels a stratified train/test split cannot use,
    path = write_labels_csv(tmp_path / "labels.csv", labels)
    answers = ["dataset=csv", f"csv_path={path}", "target_column=churned"]
    # when cookiecutter bakes it,
    result = run_cookiecutter(str(ROOT), tmp_path, write_cookiecutter_config(tmp_path), *answers)
    # then the bake stops with the reason, and no file of the project was written.
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_params_split_at_the_test_size_the_answers_were_checked_against(shared_bake):
    params = yaml.safe_load((shared_bake() / "params.yaml").read_text(encoding="utf-8"))
    assert params["data"]["test_size"] == COOKIECUTTER_JSON["_test_size"]


def test_template_dvc_files_match_what_dvc_init_writes(tmp_path, shared_bake):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    project = shared_bake()
    assert (project / ".dvc/.gitignore").read_text() == (tmp_path / ".dvc/.gitignore").read_text()
    out = subprocess.run(["dvc", "config", "--list", "--project"], cwd=project, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


# Contract settings that only one task's projects state.
TASK_ONLY = {
    "classification": [("paths", "confusion"), ("data_check", "min_class_share")],
    "regression": [("paths", "predictions"), ("data_check", "min_target_values"), ("report", "min_spread_ratio")],
}


@pytest.mark.parametrize("task", COOKIECUTTER_JSON["task"])
def test_the_baked_contract_states_the_kits_defaults(shared_bake, task):
    params = yaml.safe_load((shared_bake(task=task) / "params.yaml").read_text(encoding="utf-8"))
    expected = copy.deepcopy(contract.DEFAULTS)
    # Settings of the deploy targets the project does not use are left out (the local target is the default).
    target = params["mlgitops"]["release"]["target"]
    for other in set(COOKIECUTTER_JSON["deploy_target"]) - {target}:
        expected["release"].pop(other, None)
    if target != "local":
        expected["release"].pop("ports")
    # So are the other task's; a regression states its metrics' directions and tolerances in the target's units.
    for section, key in next(keys for other, keys in TASK_ONLY.items() if other != task):
        expected[section].pop(key)
    if task == "regression":
        expected["report"] |= {
            "lower_is_better": ["rmse", "mae"],
            "tolerance": {"default": 0.01, "rmse": 0.5, "mae": 0.5},
        }
        expected["watch"]["feedback"]["tolerance"] = 2.0
    assert params["mlgitops"] == expected


def test_vendored_actions_are_only_what_the_workflows_run(shared_bake):
    package = shared_bake() / ".github" / "actions" / "mlgitops"
    assert (package / "post_report.py").is_file() and not (package / "docs.py").exists()
    assert not (package / "kit_release.py").exists()


def test_comments_in_generated_configuration_fit_a_review_pane(shared_bake):
    project = shared_bake(package="a_rather_long_package_name_for_wrapping")
    files = [
        *project.glob(".github/**/*.yml"),
        *(project / name for name in ("dvc.yaml", "params.yaml", "bentofile.yaml")),
    ]
    files += [project / "Makefile", project / ".pre-commit-config.yaml"]
    long = [
        f"{path.relative_to(project)}:{number}"
        for path in files
        if ".github/actions" not in str(path)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if line.lstrip().startswith("#") and len(line) > 100
    ]
    assert long == []
