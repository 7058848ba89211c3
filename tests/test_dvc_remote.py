"""A DVC remote: main's CI job pushes the outputs and run cache, and a teammate's clone reproduces nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from demo import bake, project_env, sh

pytestmark = pytest.mark.slow


def job_step(project: Path, workflow: str, job: str, name: str) -> dict:
    """One named step of a job of one of the project's workflows."""
    jobs = yaml.safe_load((project / ".github" / "workflows" / workflow).read_text(encoding="utf-8"))["jobs"]
    return next(step for step in jobs[job]["steps"] if step.get("name") == name)


def clone(project: Path, folder: Path, remote: Path, env: dict[str, str]) -> Path:
    """A clone of the project whose DVC remote, for this clone only, is a folder standing in for the bucket."""
    subprocess.run(["git", "clone", "-q", str(project), str(folder)], check=True)
    sh(["dvc", "remote", "modify", "--local", "storage", "url", str(remote)], folder, env)
    return folder


def test_mains_push_job_fills_the_remote_and_a_clone_then_reproduces_nothing(tmp_path):
    # Given a project baked with an S3 remote and its reproduced baseline,
    project = bake(tmp_path / "out", dvc_remote="s3://ml-data/cancer-classifier")
    env = project_env(project, tmp_path / "bentoml")
    assert "storage\ts3://ml-data/cancer-classifier" in sh(["dvc", "remote", "list"], project, env).replace(" ", "\t")
    bucket = tmp_path / "bucket"

    # when CI's job on main runs with the DVC cache its pipeline job saved (the actions/cache restore),
    runner = clone(project, tmp_path / "runner", bucket, env)
    shutil.copytree(project / ".dvc" / "cache", runner / ".dvc" / "cache")
    push = job_step(runner, "ci.yml", "push-to-remote", "Push the pipeline's outputs and run cache")
    subprocess.run(["bash", "-e", "-c", push["run"]], cwd=runner, env=env, check=True, capture_output=True)

    # then a teammate's fresh clone pulls every output and finds the pipeline up to date,
    teammate = clone(project, tmp_path / "teammate", bucket, env)
    sh(["dvc", "pull", "--run-cache"], teammate, env)
    assert "up to date" in sh(["dvc", "status"], teammate, env)
    assert (teammate / "models" / "model.joblib").is_file()
    # and with a stage's outputs deleted, what was pulled restores them instead of running the stage again;
    shutil.rmtree(teammate / "data" / "prepared")
    ran = sh(["dvc", "repro", "prepare"], teammate, env)
    assert "is cached - skipping run" in ran, ran
    # the run cache went up too: the stages' runs, which `dvc repro` of any clone can reuse.
    assert any((bucket / "runs").rglob("*")), "no run cache in the remote"
