"""Run the generated workflows for real with act: a baked project, the GitHub stand-in, and act's command line.

Shared by the end-to-end workflow tests and the benchmark of the pull request workflow.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from demo import bake, project_env
from fake_github import FakeGitHub, webhook_example
from helpers import COOKIECUTTER_JSON

OWNER = "octo"
STANDINS = Path(__file__).parent / "standins"
PINS = {name: value.split(" # ")[0] for name, value in COOKIECUTTER_JSON["_pins"].items()}
POST_TOKEN = "ghs_post_only"


@dataclass
class Run:
    """One act run: its exit code, its log, and the report artifact it left."""

    returncode: int
    log: str
    artifact: Path

    def file(self, name: str) -> str:
        return (self.artifact / name).read_text(encoding="utf-8")


@dataclass
class Background:
    """An act run left running: its process (leading its own process group), its log and its artifacts folder."""

    process: subprocess.Popen
    log: Path
    artifacts: Path

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 900) -> None:
        """Return once the run has logged a line matching the pattern; fail if it ends or times out first."""
        deadline = time.monotonic() + timeout
        while True:
            # Polled before reading, so a run that has ended is judged on its whole log.
            ended = self.process.poll() is not None
            log = self.log.read_text(encoding="utf-8", errors="replace")
            if pattern.search(log):
                return
            if ended or time.monotonic() > deadline:
                if not ended:
                    self.cancel()
                raise AssertionError(
                    f"the run never logged {pattern.pattern!r} (exit {self.process.poll()}):\n{log[-4000:]}"
                )
            time.sleep(0.2)  # the poll interval of a bounded wait, not a guess at how long the run takes

    def cancel(self) -> int:
        """Kill the whole run, act and every process it started, as GitHub cancels a superseded run."""
        os.killpg(self.process.pid, signal.SIGTERM)
        return self.process.wait(timeout=60)


@dataclass
class World:
    """A baked repository on main, the GitHub stand-in, and what act needs to run the workflows."""

    root: Path
    project: Path
    env: dict[str, str]
    github: FakeGitHub
    runs: int = 0
    numbers: dict[str, int] = field(default_factory=dict)

    @property
    def standin_venv(self) -> Path:
        """The environment the setup-python stand-in makes once and every run of this test run reuses."""
        return self.root.parent / "standin-venv"

    def git(self, *args: str) -> str:
        command = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args]
        return subprocess.run(
            command, cwd=self.project, env=self.env, check=True, capture_output=True, text=True
        ).stdout.strip()

    def start(self, branch: str, change, message: str) -> str:
        """Create the branch from main with a first commit; fail if another scenario already took its name."""
        self.git("checkout", "-q", "-b", branch, "main")
        return self.commit(change, message)

    def push(self, branch: str, change, message: str) -> str:
        """Commit another change on a branch this scenario started; return the new head commit."""
        self.git("checkout", "-q", branch)
        return self.commit(change, message)

    def commit(self, change, message: str) -> str:
        """Apply the change to the checked-out branch and commit it; return the new head commit."""
        change(self.project)
        self.git("commit", "-qam", message)
        return self.git("rev-parse", "HEAD")

    def act_command(self, event_name: str, workflow: str, event: dict, *extra: str) -> list[str]:
        self.runs += 1
        path = self.root / f"event-{self.runs}.json"
        path.write_text(json.dumps(event), encoding="utf-8")
        command = ["act", event_name, "-W", f".github/workflows/{workflow}", "-e", str(path)]
        # One environment for every world of this test run, as the real setup-python's cache would keep.
        command += ["-P", "ubuntu-latest=-self-hosted", "--env", f"STANDIN_VENV={self.standin_venv}"]
        command += ["--env", f"BENTOML_HOME={self.root / 'bentoml'}", *extra]
        for action in (
            "actions/checkout",
            "actions/setup-python",
            "actions/upload-artifact",
            "actions/download-artifact",
            "actions/cache",
        ):
            command += ["--local-repository", f"{action}@{PINS[action]}={STANDINS / action.split('/')[1]}"]
        command += ["--local-repository", f"iterative/setup-cml@{PINS['iterative/setup-cml']}={STANDINS / 'setup-cml'}"]
        return command

    def act(self, event_name: str, workflow: str, event: dict, *extra: str) -> subprocess.CompletedProcess[str]:
        command = self.act_command(event_name, workflow, event, *extra)
        return subprocess.run(command, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=1200)

    def report_event(self, branch: str, fork: str | None) -> dict:
        """A pull_request event for the branch's pull request, registered with the GitHub stand-in."""
        number = self.numbers.setdefault(branch, len(self.numbers) + 1)
        self.git("checkout", "-q", branch)
        head, base = self.git("rev-parse", "HEAD"), self.git("rev-parse", "main")
        event = webhook_example("pull_request", "synchronize")
        event["number"] = number
        pull = event["pull_request"]
        pull["number"] = number
        pull["head"].update(sha=head, ref=branch)
        pull["base"].update(sha=base, ref="main")
        pull["head"]["repo"].update(full_name=fork or f"{OWNER}/{self.project.name}", fork=fork is not None)
        event["repository"].update(full_name=f"{OWNER}/{self.project.name}", name=self.project.name)
        self.github.add_pull(
            OWNER, self.project.name, number, head_sha=head, head_ref=branch, base_sha=base, head_repo_full_name=fork
        )
        return event

    def report(self, branch: str, *, fork: str | None = None, act_args: Sequence[str] = ()) -> Run:
        """Run "Model report" for the branch's pull request, as GitHub would on a push to it.

        act_args go to act as they are, e.g. `--env STANDIN_CACHE=...` for a cache main saved.
        """
        event = self.report_event(branch, fork)
        artifacts = self.root / f"artifacts-{self.runs + 1}"
        command = ("--env", f"STANDIN_ARTIFACTS={artifacts}", *act_args)
        done = self.act("pull_request", "model-report.yml", event, *command)
        return Run(done.returncode, done.stdout + done.stderr, artifacts / "model-report")

    def report_and_post(self, branch: str) -> Run:
        """Run "Model report" for the branch's pull request and post it; both must succeed."""
        run = self.report(branch)
        assert run.returncode == 0, run.log[-4000:]
        posted = self.post(run, branch)
        assert posted.returncode == 0, posted.stdout[-4000:]
        return run

    def report_in_background(self, branch: str) -> Background:
        """Start "Model report" without waiting, in its own process group so it can be cancelled whole."""
        event = self.report_event(branch, None)
        artifacts = self.root / f"artifacts-{self.runs + 1}"
        command = self.act_command("pull_request", "model-report.yml", event, "--env", f"STANDIN_ARTIFACTS={artifacts}")
        log = self.root / f"act-{self.runs}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=self.project, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Background(process, log, artifacts)

    def post(self, run: Run, branch: str, poster: str = "builtin") -> subprocess.CompletedProcess[str]:
        """Run "Post model report" for a finished report run, with the only write token in this story.

        REPORT_POSTER is the poster; "" leaves it unset, so the workflow posts with CML (here its stand-in).
        """
        head = self.git("rev-parse", branch)
        event = webhook_example("workflow_run", "completed", index=2)
        event["workflow_run"].update(
            id=1000 + self.runs,
            name="Model report",
            event="pull_request",
            conclusion="success" if run.returncode == 0 else "failure",
            head_sha=head,
            head_branch=branch,
        )
        event["repository"].update(full_name=f"{OWNER}/{self.project.name}", name=self.project.name)
        return self.act(
            "workflow_run",
            "post-model-report.yml",
            event,
            "--env",
            f"STANDIN_ARTIFACTS={run.artifact.parent}",
            "--env",
            f"GITHUB_API_URL={self.github.url}",
            "--env",
            f"STANDIN_CML={STANDINS / 'cml'}",
            "--env",
            f"STANDIN_CML_API_URL={self.github.url}",
            "-s",
            f"GITHUB_TOKEN={POST_TOKEN}",
            *(["--var", f"REPORT_POSTER={poster}"] if poster else []),
        )

    def comments(self, branch: str) -> list[dict]:
        return self.github.comments(OWNER, self.project.name, self.numbers[branch])


@contextlib.contextmanager
def make_world(root: Path, **answers: object) -> Iterator[World]:
    """Bake a project with the answers into root, give it an origin on GitHub and serve the GitHub stand-in."""
    project = bake(root / "out", **answers)
    env = project_env(project, root / "bentoml")
    # act keeps workspaces under the cache folder; BentoML refuses paths inside hidden folders like ~/.cache.
    env["XDG_CACHE_HOME"] = str(root / "act-cache")
    subprocess.run(["git", "remote", "add", "origin", f"https://github.com/{OWNER}/{project.name}.git"], cwd=project)
    with FakeGitHub(token=POST_TOKEN) as github:
        yield World(root, project, env, github)


def set_param(key: str, value: str) -> Callable[[Path], None]:
    """A change that replaces the text `key` with `value` in the project's params.yaml."""

    def change(project: Path) -> None:
        path = project / "params.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace(key, value), encoding="utf-8")

    return change
