"""The documentation site builds offline and strictly, with the pages made from the repository's sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from helpers import ROOT

PAGES = [
    "index.html",
    "report/index.html",
    "releases/index.html",
    "monitoring/index.html",
    "options/index.html",
    "architecture/index.html",
    "security/index.html",
    "fault_matrix/index.html",
    "design_decisions/index.html",
    "benchmarks/index.html",
]


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """`mkdocs build --strict` of a configuration, as `make docs` runs it."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(command, capture_output=True, text=True, env=env, check=False, cwd=config.parent)


def test_the_site_builds_strictly_with_every_page(tmp_path):
    # When the site is built as `make docs` builds it,
    done = build(ROOT / "mkdocs.yml", tmp_path / "site")
    # then it builds with no warning, every page of the navigation is there,
    assert done.returncode == 0, done.stderr
    for page in PAGES:
        assert (tmp_path / "site" / page).is_file(), page
    # the options page has every question of cookiecutter.json,
    options = (tmp_path / "site" / "options" / "index.html").read_text(encoding="utf-8")
    questions = [k for k in json.loads((ROOT / "cookiecutter.json").read_text()) if not k.startswith("_")]
    assert all(f"<code>{question}</code>" in options for question in questions)
    # and the release and monitor pages are the generated project's README, rendered.
    releases = (tmp_path / "site" / "releases" / "index.html").read_text(encoding="utf-8")
    assert "releases/&lt;environment&gt;.yaml" in releases and "{{" not in releases
    monitoring = (tmp_path / "site" / "monitoring" / "index.html").read_text(encoding="utf-8")
    assert "live metric (feedback)" in monitoring and "/feedback" in monitoring


def test_a_broken_link_fails_the_build(tmp_path):
    # Given a copy of the site's sources with a page linking to a page that does not exist,
    docs = shutil.copytree(ROOT / "docs", tmp_path / "docs")
    (docs / "security.md").write_text("# Security\n\nSee [the missing page](missing.md).\n", encoding="utf-8")
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace("!!python/name:", ""))
    config["hooks"] = [str(ROOT / "docs" / "site_pages.py")]
    config["markdown_extensions"] = [e for e in config["markdown_extensions"] if "pymdownx.superfences" not in e]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    # when it is built strictly, then the build fails naming the link.
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "missing.md" in done.stderr
