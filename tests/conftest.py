"""Fixtures shared by the template's tests: default answers, a user CSV, and a fast-bake helper."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import COOKIECUTTER_JSON, ROOT, write_churn_csv


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
