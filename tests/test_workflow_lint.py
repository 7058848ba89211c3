"""Workflow gates: zizmor (pedantic), actionlint and GitHub's JSON schemas find nothing, here and in every bake."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from helpers import COOKIECUTTER_JSON, MATRIX, ROOT, SHA, matrix_id, options_context


def lint(target: Path) -> None:
    """Run every workflow linter on a repository folder and fail with their output."""
    workflows = sorted(str(p) for p in (target / ".github" / "workflows").glob("*.yml"))
    actions = sorted(
        str(p) for pattern in ("actions/*/action.yml", ".github/actions/*/action.yml") for p in target.glob(pattern)
    )
    commands = [
        ["zizmor", "--offline", "--strict-collection", "--persona", "pedantic", "--no-progress", "."],
        ["actionlint", *workflows],
        ["check-jsonschema", "--builtin-schema", "vendor.github-workflows", *workflows],
        ["check-jsonschema", "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml"],
    ]
    if actions:
        commands.append(["check-jsonschema", "--builtin-schema", "vendor.github-actions", *actions])
    for command in commands:
        result = subprocess.run(command, cwd=target, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{command[0]} found problems in {target}:\n{result.stdout}{result.stderr}"


def test_this_repository_workflows_and_actions_are_clean():
    lint(ROOT)


@pytest.mark.parametrize("python", COOKIECUTTER_JSON["python_version"])
@pytest.mark.parametrize("source", ["vendored", f"my-org/ml-actions@{SHA}"], ids=["vendored", "remote"])
def test_baked_workflows_are_clean(shared_bake, source, python):
    project = shared_bake(actions_source=source, python_version=python)
    lint(project)
    assert f'python-version: "{python}"' in (project / ".github/workflows/ci.yml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "options", [options for options in MATRIX if options["deploy_target"] != "local"], ids=matrix_id
)
def test_baked_workflows_of_every_kubernetes_and_bentocloud_combination_are_clean(shared_bake, churn_csv, options):
    lint(shared_bake(**options_context(options, churn_csv)))


def test_linters_do_catch_template_injection(fast_bake):
    """Guard against a gate that cannot fail: an injected expression in run: must be reported."""
    project = fast_bake()
    ci = project / ".github" / "workflows" / "ci.yml"
    ci.write_text(
        ci.read_text(encoding="utf-8").replace(
            "run: pytest", "run: pytest -k '${{ github.event.pull_request.title }}'"
        ),
        encoding="utf-8",
    )
    with pytest.raises(AssertionError, match="template-injection"):
        lint(project)
