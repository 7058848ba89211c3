"""The project's files agree with each other."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bento_requirements_are_pinned_like_the_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    serve = [
        line.strip()
        for line in (ROOT / "requirements" / "serve.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert set(serve) <= set(project)
