"""One source of truth: pins, versions and generated docs agree wherever they are repeated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from helpers import COOKIECUTTER_JSON, ROOT
from mlgitops import docs

USES = re.compile(
    r"^\s*-?\s*uses:\s*(?P<action>[^@\s]+)@(?P<ref>\{\{.*?\}\}|\S+)(?:\s*#\s*(?P<comment>\S+))?", re.MULTILINE
)
PINS = {name: value.split(" # ") for name, value in COOKIECUTTER_JSON["_pins"].items()}


def pins_of(requirements: str) -> dict[str, str]:
    found = {}
    for line in requirements.splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            found[name.strip().lower()] = version.strip()
    return found


def test_dev_requirements_pin_the_generated_projects_dependencies_identically():
    # The template's pyproject.toml is Jinja until baked, so read its quoted pins as text.
    template = (ROOT / "{{cookiecutter.project}}" / "pyproject.toml").read_text(encoding="utf-8")
    wanted = pins_of("\n".join(re.findall(r'^\s*"([\w-]+==[\w.]+)",$', template, re.MULTILINE)))
    assert len(wanted) > 5
    dev = pins_of((ROOT / "requirements" / "dev.in").read_text(encoding="utf-8"))
    assert {name: dev.get(name) for name in wanted} == wanted


def test_pre_commit_hook_versions_match_the_project_pins():
    config = (ROOT / "{{cookiecutter.project}}" / ".pre-commit-config.yaml").read_text(encoding="utf-8")
    locked = pins_of((ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8"))
    for name, version in re.findall(r'"([\w-]+)==([\w.]+)"', config):
        assert locked.get(name) == version, f"{name}=={version} in the pre-commit config, {locked.get(name)} locked"


def workflow_files() -> list[Path]:
    return [
        *ROOT.glob(".github/workflows/*.yml"),
        *ROOT.glob("actions/*/action.yml"),
        *ROOT.glob("{{cookiecutter.project}}/.github/workflows/*.yml"),
    ]


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_third_party_action_is_pinned_to_the_one_recorded_sha(path):
    text = path.read_text(encoding="utf-8")
    for use in USES.finditer(text):
        action, ref = use["action"], use["ref"]
        if action.startswith(("./", "{{")):
            continue
        # An action in a subfolder (actions/cache/restore) is pinned by its repository.
        repository = "/".join(action.split("/")[:2])
        assert repository in PINS, f"{path.name}: {action} is not in cookiecutter.json _pins"
        sha, version = PINS[repository]
        if ref.startswith("{{"):
            assert ref == f'{{{{ cookiecutter._pins["{repository}"] }}}}', (
                f"{path.name}: {action} must take its pin from _pins"
            )
        else:
            assert (ref, use["comment"]) == (sha, version), f"{path.name}: {action}@{ref} differs from _pins"


def test_recorded_pins_are_full_shas_with_a_version_comment():
    for action, (sha, version) in PINS.items():
        assert re.fullmatch(r"[0-9a-f]{40}", sha), action
        assert re.fullmatch(r"v\d+\.\d+\.\d+", version), action


@pytest.mark.parametrize("folder", sorted(p.parent for p in ROOT.glob("actions/*/action.yml")), ids=lambda p: p.name)
def test_action_readme_tables_match_action_yml(folder):
    assert docs.main([str(folder), "--check"]) == 0, f"run: python3 -m mlgitops.docs actions/{folder.name}"


@pytest.mark.parametrize("folder", sorted(p.parent for p in ROOT.glob("actions/*/action.yml")), ids=lambda p: p.name)
def test_every_action_input_is_required_or_has_a_default(folder):
    action = yaml.safe_load((folder / "action.yml").read_text(encoding="utf-8"))
    for name, spec in (action.get("inputs") or {}).items():
        assert spec.get("required") is True or "default" in spec, f"{folder.name}: input {name}"
        assert spec.get("description"), f"{folder.name}: input {name} has no description"


def test_docs_tables_escape_pipes_and_fold_newlines_and_refuse_a_readme_without_markers():
    action = {"inputs": {"x": {"description": "a | b\nc", "default": "1"}}, "outputs": {}}
    assert "| `x` | a \\| b c | false | `1` |" in docs.tables(action)
    with pytest.raises(ValueError, match="generated tables"):
        docs.render("# no markers\n", action)
