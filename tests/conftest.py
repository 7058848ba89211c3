"""Fixtures shared by the template's tests (default answers, a user CSV, a fast-bake helper) and their scheduling."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from demo import bake
from helpers import COOKIECUTTER_JSON, ROOT, copy_project, write_churn_csv


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Under xdist, keep a module's tests that share its worlds on one worker, and hand out slow tests first."""
    if not hasattr(config, "workerinput"):
        return (yield)
    for item in items:
        if uses_a_shared_fixture(item):
            # A world (a baked project, a served Bento, the GitHub stand-in) is built once per worker that needs it:
            # its module goes to one worker, where its worlds also share what they leave in the worker's tmp root.
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    result = yield
    for item in items if config.getvalue("loadgroup") else ():
        # xdist tells its scheduler a test's group by suffixing the test's id, and pytest 9.2 no longer reads the
        # field it writes (pytest-dev/pytest-xdist#1386): write the suffix where pytest reads it. Inert once fixed.
        suffix = xdist_group_suffix(item)
        if suffix and not item.nodeid.endswith(suffix):
            item._id = type(item._id).parse(item.nodeid + suffix)
    # Longest first: the workers' queues end on quick tests, so neither waits long for the other at the end.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
    return result


def uses_a_shared_fixture(item: pytest.Item) -> bool:
    """Whether the test uses a class- or module-scoped fixture, one instance of which serves several tests."""
    definitions = item._fixtureinfo.name2fixturedefs.values() if isinstance(item, pytest.Function) else ()
    return any(chain[-1].scope in ("class", "module") for chain in definitions)


def xdist_group_suffix(item: pytest.Item) -> str:
    """The `@group` suffix xdist gives the id of a test with xdist_group marks, or ""."""
    marks = item.iter_markers("xdist_group")
    names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default")) for mark in marks}
    return f"@{'_'.join(sorted(names))}" if names else ""


@pytest.fixture(scope="session")
def churn_csv(tmp_path_factory) -> Path:
    """A user's CSV, written once per worker: tests read it, never change it."""
    return write_churn_csv(tmp_path_factory.mktemp("data") / "churn.csv")


@pytest.fixture
def answers() -> dict:
    """The answers cookiecutter derives from cookiecutter.json when nothing is typed."""
    defaults = {k: (v[0] if isinstance(v, list) else v) for k, v in COOKIECUTTER_JSON.items() if not k.startswith("__")}
    defaults["project"] = "cancer-classifier"
    defaults["package"] = "cancer_classifier"
    defaults["github_repository"] = "your-name/cancer-classifier"
    defaults["_cookiecutter"] = COOKIECUTTER_JSON
    defaults["_repo_dir"] = str(ROOT)
    return defaults


@pytest.fixture
def fast_bake(cookies):
    """Bake without the first pipeline run (seconds, not a minute), failing loudly if the bake fails."""

    def bake(**answers):
        result = cookies.bake(extra_context={"_reproduce_baseline": False, **answers})
        assert result.exception is None, result.exception
        assert result.exit_code == 0
        return result.project_path

    return bake


@pytest.fixture(scope="session")
def shared_bake(cookies_session):
    """Like fast_bake, but baked once per worker for the same answers: for tests that only read the project."""
    projects: dict[str, Path] = {}

    def bake(**answers):
        # Answers equal to cookiecutter.json's defaults bake the same project as leaving them out.
        given = {k: v for k, v in answers.items() if v != default_answer(k)}
        key = json.dumps(given, sort_keys=True)
        if key not in projects:
            result = cookies_session.bake(extra_context={"_reproduce_baseline": False, **given})
            assert result.exception is None, result.exception
            assert result.exit_code == 0
            projects[key] = result.project_path
        return projects[key]

    return bake


def default_answer(name: str) -> object:
    """What cookiecutter answers for a question nobody types an answer to (the first choice of a list)."""
    value = COOKIECUTTER_JSON.get(name)
    return value[0] if isinstance(value, list) else value


@pytest.fixture(scope="session")
def default_project(tmp_path_factory) -> Path:
    """The default project baked with its reproduced baseline, once per worker; tests take copies of it."""
    return bake(tmp_path_factory.mktemp("default") / "out")


@pytest.fixture
def baked_default(default_project: Path, tmp_path: Path) -> Path:
    """A copy of the default project with its reproduced baseline, in tmp_path/out/, the test's to change."""
    return copy_project(default_project, tmp_path / "out")


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    """A git repository of the template as this working tree holds it: what a user clones or downloads."""
    repo = tmp_path_factory.mktemp("template") / "mlgitops"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        # Deleted files are still listed, and a symlinked .venv is not part of the template.
        if source.is_file() and not source.is_symlink():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "--all"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "Template"], cwd=repo, check=True)
    return repo


@pytest.fixture(scope="session")
def cookiecutter_only_python(tmp_path_factory) -> Path:
    """A Python with cookiecutter and none of the pipeline's packages, as pipx or uvx install it."""
    lock = (ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8").splitlines()
    pin = next(line for line in lock if line.startswith("cookiecutter=="))
    venv = tmp_path_factory.mktemp("pipx") / "venv"
    uv = str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), pin], check=True)
    return venv / "bin" / "python"
