"""Workflow gates: zizmor (pedantic), actionlint and GitHub's JSON schemas find nothing, here and in every bake."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

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


@pytest.mark.parametrize("options", MATRIX, ids=matrix_id)
def test_baked_workflows_of_every_combination_are_clean(shared_bake, churn_csv, options):
    lint(shared_bake(**options_context(options, churn_csv)))


# What GitHub's expressions see in a pull request from a fork, and in one Dependabot opens (no secrets either).
FORK_PULL_REQUEST = {
    "github.event.pull_request.head.repo.full_name": "someone/fork",
    "github.event.pull_request.user.login": "someone",
    "github.event_name": "pull_request",
    "github.repository": "octo/cancer-classifier",
}
DEPENDABOT_PULL_REQUEST = FORK_PULL_REQUEST | {
    "github.event.pull_request.head.repo.full_name": "octo/cancer-classifier",
    "github.event.pull_request.user.login": "dependabot[bot]",
}


def evaluate(expression: object, context: dict[str, str]) -> object:
    """A GitHub expression of the few forms the generated workflows use, evaluated as GitHub would."""
    text = str(expression).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    for name in sorted(context, key=len, reverse=True):
        text = text.replace(name, repr(context[name]))
    text = text.replace("&&", " and ").replace("||", " or ").replace("cancelled()", "False")
    text = re.sub(r"!(?!=)", " not ", text).replace("fromJSON(", "json.loads(")
    # The workflows under test are the only source of these expressions.
    return eval(text, {"json": json, "contains": lambda items, item: item in items})


def fork_pull_request_problems(project: Path, event: dict[str, str] = FORK_PULL_REQUEST) -> list[str]:
    """What a pull request from a fork would get that it must not: an OIDC token, a secret, a non-GitHub runner."""
    problems = []
    for path in sorted((project / ".github" / "workflows").glob("*.yml")):
        workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "pull_request" not in workflow[True]:  # YAML reads the key `on` as true
            continue
        context = dict(event)
        # GitHub decides which jobs run in order; a job's needs come before it.
        for name, job in workflow["jobs"].items():
            runs = bool(evaluate(job["if"], context)) if "if" in job else True
            context[f"needs.{name}.result"] = "success" if runs else "skipped"
            if not runs:
                continue
            where = f"{path.name}: job {name}"
            if "id-token" in job.get("permissions", {}):
                problems.append(f"{where} gets an OIDC token")
            if "secrets." in json.dumps(job):
                problems.append(f"{where} reads a secret")
            runner = evaluate(job["runs-on"], context) if "${{" in str(job["runs-on"]) else job["runs-on"]
            if runner != "ubuntu-latest":
                problems.append(f"{where} runs on {runner}")
    return problems


@pytest.mark.parametrize("options", MATRIX, ids=matrix_id)
def test_a_pull_request_from_a_fork_gets_no_cloud_token_secret_or_team_machine(shared_bake, churn_csv, options):
    project = shared_bake(**options_context(options, churn_csv))
    assert fork_pull_request_problems(project) == []
    # Dependabot's pull requests get no secrets, so they too train on GitHub's runners rather than fail.
    assert fork_pull_request_problems(project, DEPENDABOT_PULL_REQUEST) == []


@pytest.mark.parametrize(
    ("runner", "unguard", "problem"),
    [
        ("cml-cloud", "github.event.pull_request.head.repo.full_name == github.repository && ", "token"),
        ("self-hosted-gpu", "github.event.pull_request.head.repo.full_name == github.repository && ", "runs on"),
    ],
)
def test_the_fork_check_does_catch_a_job_without_its_guard(fast_bake, runner, unguard, problem):
    """Guard against a check that cannot fail: drop the condition that keeps forks off the team's cloud."""
    project = fast_bake(training_runner=runner)
    report = project / ".github" / "workflows" / "model-report.yml"
    text = report.read_text(encoding="utf-8")
    assert unguard in text
    report.write_text(text.replace(unguard, "", 1), encoding="utf-8")
    assert any(problem in found for found in fork_pull_request_problems(project))
