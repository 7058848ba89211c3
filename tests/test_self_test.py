"""The Self-test workflow, run for real with act: every action it names runs from this checkout on a baked project."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from act_world import PINS, STANDINS
from helpers import ROOT
from mlgitops.local_target import LocalTarget

pytestmark = pytest.mark.slow

WORKFLOW = ROOT / ".github" / "workflows" / "self-test.yml"


def test_the_self_test_names_every_action_but_those_needing_github_or_a_cloud():
    steps = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))["jobs"]["actions"]["steps"]
    used = {step["uses"].removeprefix("./actions/") for step in steps if step.get("uses", "").startswith("./")}
    every = {path.parent.name for path in (ROOT / "actions").glob("*/action.yml")}
    assert every - used == {"post-report", "template-update", "dvc-remote-login"}


def test_the_self_test_runs_the_kits_actions_from_a_pull_request_to_production(template_repo, tmp_path):
    # Given a checkout of the kit (act runs the job in a copy of it),
    kit = shutil.copytree(template_repo, tmp_path / "kit", symlinks=True)
    home, event = tmp_path / "home", tmp_path / "push.json"
    event.write_text(json.dumps({"ref": "refs/heads/main", "repository": {"full_name": "octo/mlgitops"}}))
    command = ["act", "push", "-W", ".github/workflows/self-test.yml", "-e", str(event)]
    command += ["-P", "ubuntu-latest=-self-hosted", "--env", f"STANDIN_VENV={tmp_path.parent / 'standin-venv'}"]
    command += ["--env", f"MLGITOPS_HOME={home}", "--env", f"BENTOML_HOME={tmp_path / 'bentoml'}"]
    for action in ("actions/checkout", "actions/setup-python"):
        command += ["--local-repository", f"{action}@{PINS[action]}={STANDINS / action.split('/')[1]}"]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "act-cache")}
    # when the Self-test workflow runs on a push to main,
    try:
        run = subprocess.run(command, cwd=kit, env=env, capture_output=True, text=True, timeout=1500, check=False)
    finally:
        for environment in ("staging", "production"):
            LocalTarget("cancer-classifier", home).stop(environment)
    log = run.stdout + run.stderr
    (tmp_path / "act.log").write_text(log, encoding="utf-8")  # kept for a person reading a failure
    # then every step passed: the report's gate, both environments' release and the monitor's check,
    assert run.returncode == 0, log[-6000:]
    assert "Job succeeded" in log
    assert "## ✅ Model report for `self-test`" in log
    for environment in ("staging", "production"):
        assert re.search(rf"{environment}: \S+ is live at http://127\.0\.0\.1:\d+", log), log[-6000:]
    assert "no evidence" in log  # nobody called the fresh release yet
    # and the kit's own checkout was left as it was.
    assert (kit / "cookiecutter.json").is_file() and (kit / "hooks").is_dir()
