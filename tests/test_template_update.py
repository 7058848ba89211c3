"""A project made from an older template version updates to the newer one: one pull request, conflicts listed.

The test builds its own two-commit template repository from this checkout's files (CI clones may lack history
and tags), bakes the project from the first commit as the README says (cookiecutter; the hook records the version
in `.cruft.json`), changes files the team owns, commits a second template version, and runs the Template update
workflow's command against a bare `origin` and the GitHub stand-in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fake_github import FakeGitHub
from helpers import ROOT
from mlgitops import template_update

pytestmark = pytest.mark.slow

OWNER, NAME = "octo", "cancer-classifier"
IDENTITY = ["-c", "user.name=Dev", "-c", "user.email=dev@example.com"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A template repository at v1, a project baked from it and pushed, and the template at v2."""
    root = tmp_path_factory.mktemp("update")
    template = root / "template"
    files = git(ROOT, "ls-files", "-co", "--exclude-standard", "-z").split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (template / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, template / name)
    git(template, "init", "-q", "-b", "main")
    git(template, "add", "-A")
    git(template, "commit", "-qm", "Template v1")
    v1 = git(template, "rev-parse", "HEAD").strip()
    # The project, baked as the README says, from the template's folder.
    bake = [sys.executable, "-m", "cookiecutter", "--no-input", "-o", str(root / "out"), str(template)]
    subprocess.run([*bake, "_reproduce_baseline=False"], check=True, capture_output=True, text=True)
    project = root / "out" / NAME
    # The team changes a line the template will change too, and adds a line of its own.
    edit(project / "README.md", "## Quick start", "## Quick start for our team")
    with (project / "Makefile").open("a", encoding="utf-8") as handle:
        handle.write("\n# Our own target.\nours:\n\t@echo ours\n")
    git(project, "commit", "-qam", "Our changes")
    origin = root / "origin.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    git(project, "push", "-q", str(origin), "HEAD:main")
    # The template's second version: a kit file, a generated workflow, and the README line the team changed.
    gha = template / "actions" / "mlgitops" / "gha.py"
    gha.write_text("# Template v2.\n" + gha.read_text(encoding="utf-8"), encoding="utf-8")
    ci = template / "{{cookiecutter.project}}" / ".github" / "workflows" / "ci.yml"
    ci.write_text("# Template v2.\n" + ci.read_text(encoding="utf-8"), encoding="utf-8")
    edit(template / "{{cookiecutter.project}}" / "README.md", "## Quick start", "## Quick start, version 2")
    git(template, "commit", "-qam", "Template v2")
    v2 = git(template, "rev-parse", "HEAD").strip()
    return {"template": template, "project": project, "origin": origin, "v1": v1, "v2": v2}


def run_update(world, fake, monkeypatch) -> int:
    monkeypatch.chdir(world["project"])
    monkeypatch.setenv("GITHUB_REPOSITORY", f"{OWNER}/{NAME}")
    monkeypatch.setenv("GITHUB_API_URL", fake.url)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_update")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    git(world["project"], "checkout", "-q", "main")
    return template_update.main(["--remote", str(world["origin"])])


def test_the_bake_records_the_template_version(world):
    recorded = json.loads((world["project"] / ".cruft.json").read_text())
    assert (recorded["template"], recorded["commit"]) == (str(world["template"]), world["v1"])
    assert "_repo_dir" not in recorded["context"]["cookiecutter"]
    assert ".cruft.json" in git(world["project"], "ls-files")


def test_an_update_keeps_the_team_s_changes_updates_the_kit_and_lists_conflicts(world, monkeypatch):
    with FakeGitHub() as fake:
        assert run_update(world, fake, monkeypatch) == 0
        (pull,) = fake.pulls(OWNER, NAME)
        # A second run (the next week's schedule) updates the same pull request instead of opening another.
        assert run_update(world, fake, monkeypatch) == 0
        pulls = fake.pulls(OWNER, NAME)
    assert len(pulls) == 1 and pulls[0]["number"] == pull["number"]
    assert (pull["title"], pull["head"]["ref"], pull["base"]["ref"]) == (
        template_update.TITLE,
        "template-update",
        "main",
    )
    branch = world["origin"]

    def show(path: str) -> str:
        return git(branch, "show", f"template-update:{path}")

    # The branch holds the kit's new files and the new version's record,
    assert show(".github/actions/mlgitops/gha.py").startswith("# Template v2.")
    assert show(".github/workflows/ci.yml").startswith("# Template v2.")
    assert json.loads(show(".cruft.json"))["commit"] == world["v2"]
    # keeps what the team changed,
    assert "ours:\n\t@echo ours" in show("Makefile")
    # commits no leftover of the merge, and lists the line both changed in the pull request, never hides it.
    assert not [
        name for name in git(branch, "ls-tree", "-r", "--name-only", "template-update").split() if name.endswith(".rej")
    ]
    body = pulls[0]["body"]
    assert "1 file(s) need a person" in body and "README.md" in body and "Quick start, version 2" in body
    assert "`.github/workflows/ci.yml`" in body


def test_a_project_on_the_newest_version_is_left_alone(world, monkeypatch, tmp_path, capsys):
    project = tmp_path / "current"
    git(tmp_path, "clone", "-q", "-b", "template-update", str(world["origin"]), str(project))
    monkeypatch.chdir(project)
    assert template_update.main(["--no-pull-request"]) == 0
    assert "nothing to update" in capsys.readouterr().out


def test_a_project_without_a_record_is_told_how_to_get_one(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert template_update.main(["--no-pull-request"]) == 1
    assert "run `cruft link <the template's git URL>`" in capsys.readouterr().err


def test_a_branch_a_person_committed_to_is_never_overwritten(world, monkeypatch, tmp_path, capsys):
    # Given the update branch where a person resolved the conflict and pushed,
    resolver = tmp_path / "resolver"
    git(tmp_path, "clone", "-q", "-b", "template-update", str(world["origin"]), str(resolver))
    edit(resolver / "README.md", "<<<<<<< ours\n", "")
    git(resolver, "commit", "-qam", "Resolve the README")
    git(resolver, "push", "-q", "origin", "HEAD:template-update")
    resolved = git(world["origin"], "rev-parse", "template-update")
    # when the schedule runs the update again,
    with FakeGitHub() as fake:
        assert run_update(world, fake, monkeypatch) == 0
    # then the person's commit is still the branch's tip, and the run says why it stopped.
    assert git(world["origin"], "rev-parse", "template-update") == resolved
    assert "has commits by Dev <dev@example.com>: left as it is" in capsys.readouterr().out
