"""Fixtures shared by the template's tests (default answers, a user CSV, a fast-bake helper) and their scheduling."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import COOKIECUTTER_JSON, ROOT, write_churn_csv

# Scopes whose fixture instance serves the tests of one class or module: under xdist they share a worker.
# Session (and package) fixtures are built once per worker instead, so they group nothing.
SHARED_SCOPES = ("class", "module")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Under xdist, give tests sharing a module-scoped fixture one worker, and hand out slow tests first."""
    if not hasattr(config, "workerinput"):
        return (yield)
    # Tests that share an expensive fixture (a baked world, a served Bento) run on one worker, so it is built once.
    groups = shared_fixture_groups(items)
    for item, group in zip(items, groups, strict=True):
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
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


def xdist_group_suffix(item: pytest.Item) -> str:
    """The `@group` suffix xdist gives the id of a test with xdist_group marks, or ""."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return f"@{'_'.join(sorted(names))}" if names else ""


def shared_fixture_groups(items: list[pytest.Item]) -> list[str | None]:
    """For each test, a name common to every test it shares a class- or module-scoped fixture with, or None."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys = []
    for item in items:
        definitions = item._fixtureinfo.name2fixturedefs if isinstance(item, pytest.Function) else {}
        # A key names one instance of a fixture: `world` of one module is not `world` of another.
        own = [
            f"{instance_of(item, d[-1].scope)}::{name}"
            for name, d in definitions.items()
            if d[-1].scope in SHARED_SCOPES
        ]
        for key in own[1:]:
            parent[root(key)] = root(own[0])
        keys.append(own)
    return [root(own[0]) if own else None for own in keys]


def instance_of(item: pytest.Function, scope: str) -> str:
    """The node whose instance of a fixture of this scope the test gets: its class or its module."""
    if scope == "class" and item.cls is not None:
        return item.nodeid.rsplit("::", 1)[0]
    return item.nodeid.split("::")[0]


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    return write_churn_csv(tmp_path / "churn.csv")


@pytest.fixture
def answers() -> dict:
    """The answers cookiecutter derives from cookiecutter.json when nothing is typed."""
    defaults = {k: (v[0] if isinstance(v, list) else v) for k, v in COOKIECUTTER_JSON.items() if not k.startswith("__")}
    defaults["project"] = "cancer-classifier"
    defaults["package"] = "cancer_classifier"
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
