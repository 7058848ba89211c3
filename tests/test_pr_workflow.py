"""The generated pull request workflows, run for real by act against the GitHub stand-in, one scenario per test.

The scenarios share one baked repository (baking is the slow part) but nothing else: each starts its own
branch from main, so any one of them passes when run alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from demo import bake, project_env
from fake_github import FakeGitHub, webhook_example
from helpers import COOKIECUTTER_JSON

pytestmark = pytest.mark.slow

OWNER = "octo"
STANDINS = Path(__file__).parent / "standins"
PINS = {name: value.split(" # ")[0] for name, value in COOKIECUTTER_JSON["_pins"].items()}
POST_TOKEN = "ghs_post_only"
# act's line when a job starts the train step; once it is printed the run is training.
TRAIN_STEP_STARTED = re.compile(r"Run Main \S*/actions/train\b")


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

    def git(self, *args: str) -> str:
        command = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args]
        return subprocess.run(command, cwd=self.project, check=True, capture_output=True, text=True).stdout.strip()

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
        command += ["-P", "ubuntu-latest=-self-hosted", "--env", f"STANDIN_VENV={self.root.parent / 'standin-venv'}"]
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

    def report(self, branch: str, *, fork: str | None = None) -> Run:
        """Run "Model report" for the branch's pull request, as GitHub would on a push to it."""
        event = self.report_event(branch, fork)
        artifacts = self.root / f"artifacts-{self.runs + 1}"
        done = self.act("pull_request", "model-report.yml", event, "--env", f"STANDIN_ARTIFACTS={artifacts}")
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


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The default project, baked with its reproduced baseline."""
    yield from make_world(tmp_path_factory.mktemp("pr"))


@pytest.fixture(scope="module")
def world_without_baseline(tmp_path_factory):
    """The default project as a Python without the pipeline's packages bakes it: no results, no schema."""
    yield from make_world(tmp_path_factory.mktemp("fresh"), _reproduce_baseline=False)


def make_world(root: Path, **answers: object):
    project = bake(root / "out", **answers)
    env = project_env(project, root / "bentoml")
    # act keeps workspaces under the cache folder; BentoML refuses paths inside hidden folders like ~/.cache.
    env["XDG_CACHE_HOME"] = str(root / "act-cache")
    subprocess.run(["git", "remote", "add", "origin", f"https://github.com/{OWNER}/{project.name}.git"], cwd=project)
    with FakeGitHub(token=POST_TOKEN) as github:
        yield World(root, project, env, github)


def set_param(key: str, value):
    def change(project: Path) -> None:
        path = project / "params.yaml"
        path.write_text(path.read_text(encoding="utf-8").replace(key, value), encoding="utf-8")

    return change


def test_param_change_gets_a_report_comment(world):
    world.start("tune", set_param("  C: 1.0", "  C: 0.3"), "Lower regularisation")
    run = world.report("tune")
    assert run.returncode == 0, run.log[-4000:]
    assert "| `model.C` | `1.0` | `0.3` |" in run.file("model_report.md")
    assert json.loads(run.file("train.json"))["ran"] == ["train", "evaluate"]
    posted = world.post(run, "tune")
    assert posted.returncode == 0, posted.stdout[-4000:]
    [comment] = world.comments("tune")
    assert comment["body"].startswith("## ✅ Model report for `tune`")
    assert '"CML watermark model-report")' in comment["body"]


def test_second_push_updates_the_same_comment(world):
    world.start("settle", set_param("  C: 1.0", "  C: 0.3"), "Lower regularisation")
    world.report_and_post("settle")
    [posted_first] = world.comments("settle")

    world.push("settle", set_param("  C: 0.3", "  C: 0.5"), "Settle on C=0.5")
    world.report_and_post("settle")

    [comment] = world.comments("settle")
    assert comment["id"] == posted_first["id"]
    assert "| `model.C` | `1.0` | `0.5` |" in comment["body"]


def test_with_report_poster_unset_cml_updates_the_same_comment_and_a_refusal_is_a_warning(world):
    world.start("switch-poster", set_param("  C: 1.0", "  C: 0.7"), "Try C=0.7")
    run = world.report_and_post("switch-poster")
    [by_builtin] = world.comments("switch-poster")

    posted = world.post(run, "switch-poster", poster="")
    assert posted.returncode == 0, posted.stdout[-4000:]
    [comment] = world.comments("switch-poster")
    assert comment["id"] == by_builtin["id"]
    assert comment["body"].rstrip().endswith('"CML watermark model-report")')

    refusal = {"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest"}
    world.github.fail("PATCH", r"/issues/comments/\d+$", 403, headers={"x-ratelimit-remaining": None}, body=refusal)
    refused = world.post(run, "switch-poster", poster="")
    assert refused.returncode == 0, refused.stdout[-4000:]
    assert "the report was not posted: cml comment update exited 1: Resource not accessible by integration" in (
        refused.stdout
    )


def test_readme_only_change_trains_nothing(world):
    def edit_readme(project: Path) -> None:
        with (project / "README.md").open("a", encoding="utf-8") as handle:
            handle.write("\nA note for readers.\n")

    world.start("docs", edit_readme, "Document the project")
    run = world.report("docs")
    assert run.returncode == 0, run.log[-4000:]
    train = json.loads(run.file("train.json"))
    assert train["ran"] == [] and train["changed"] == {}
    assert "Nothing the pipeline depends on changed, so nothing was trained" in run.file("model_report.md")
    assert world.post(run, "docs").returncode == 0


def test_regression_beyond_tolerance_fails_with_the_reason_in_the_comment(world):
    world.start("regress", set_param("  C: 1.0", "  C: 0.0005"), "Regularise hard")
    run = world.report("regress")
    assert run.returncode != 0
    report = run.file("model_report.md")
    assert "**Gate: failed.**" in report and "regressed by" in report
    assert "::error title=model-report gate::f1_macro regressed by" in run.log
    assert world.post(run, "regress").returncode == 0
    [comment] = world.comments("regress")
    assert comment["body"].startswith("## ❌ Model report") and "regressed by" in comment["body"]


def test_schema_violation_fails_data_check_naming_the_column_and_loses_nothing(world):
    def tighten(project: Path) -> None:
        path = project / "data" / "schema.yaml"
        schema = yaml.safe_load(path.read_text(encoding="utf-8"))
        schema["columns"]["mean radius"]["in_range"]["max_value"] = 10
        path.write_text(yaml.safe_dump(schema, sort_keys=False), encoding="utf-8")

    world.start("tighten", tighten, "Declare small tumours only")
    run = world.report("tighten")
    assert run.returncode != 0
    assert "::error file=data/schema.yaml,title=data-check::column 'mean radius'" in run.log
    report = run.file("model_report.md")
    assert "the data check failed" in report and "`mean radius`" in report
    for kept in ("data_check.json", "train.json", "model_report.json", "pull_request.json"):
        assert (run.artifact / kept).is_file()
    assert world.post(run, "tighten").returncode == 0
    assert "Data check: failed" in world.comments("tighten")[0]["body"]


def test_results_edited_with_their_lock_hashes_fail_the_gate_and_the_report_shows_ci_numbers(world):
    reproduced = json.loads(world.git("show", "main:metrics.json"))

    def forge(project: Path) -> None:
        # What a hostile contributor does: better numbers, and dvc.lock re-hashed to match them.
        text = json.dumps({**reproduced, "f1_macro": 0.999}, indent=2) + "\n"
        (project / "metrics.json").write_text(text, encoding="utf-8")
        lock = yaml.safe_load((project / "dvc.lock").read_text(encoding="utf-8"))
        for out in lock["stages"]["evaluate"]["outs"]:
            if out["path"] == "metrics.json":
                out.update(md5=hashlib.md5(text.encode()).hexdigest(), size=len(text.encode()))
        (project / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False), encoding="utf-8")

    world.start("forge", forge, "Better numbers")
    run = world.report("forge")
    assert run.returncode != 0
    report = run.file("model_report.md")
    assert "**Gate: failed.**" in report
    assert "the committed metrics\\.json \\(f1\\_macro\\) says 0\\.999 but CI reproduced" in report
    main_metric = f"{reproduced['f1_macro']:.4f}"
    assert f"| `f1_macro` (main metric) | {main_metric} | {main_metric} | +0.0000 |" in report
    assert "::error file=metrics.json,title=train::the committed metrics.json (f1_macro) says 0.999" in run.log


def test_fork_pull_request_gets_its_report_without_any_token_in_the_build(world):
    world.start("fork-idea", set_param("  max_iter: 1000", "  max_iter: 2000"), "More iterations")
    before = len(world.github.requests)
    run = world.report("fork-idea", fork="stranger/cancer-classifier")
    assert run.returncode == 0, run.log[-4000:]
    assert len(world.github.requests) == before, "the report job must not talk to GitHub"
    assert POST_TOKEN not in run.log
    assert world.post(run, "fork-idea").returncode == 0
    [comment] = world.comments("fork-idea")
    assert "`model.max_iter`" in comment["body"]
    assert set(world.github.tokens) == {POST_TOKEN}


def test_cancelled_run_then_rerun_leaves_one_current_comment(world):
    world.start("retry", set_param("  max_iter: 1000", "  max_iter: 1500"), "More iterations")
    # GitHub cancels a run when a newer push supersedes it: kill the whole run while it trains.
    cancelled = world.report_in_background("retry")
    cancelled.wait_for(TRAIN_STEP_STARTED)
    assert cancelled.cancel() != 0
    assert not cancelled.artifacts.exists(), "the run was killed too late: it had already uploaded its report"

    run = world.report("retry")
    assert run.returncode == 0, run.log[-4000:]
    assert world.post(run, "retry").returncode == 0
    [comment] = world.comments("retry")
    assert "| `model.max_iter` | `1000` | `1500` |" in comment["body"]


def test_first_pull_request_without_a_committed_baseline_is_compared_with_one_ci_reproduces(world_without_baseline):
    world = world_without_baseline
    assert "dvc.lock" not in world.git("ls-files", "main").split(), "the bake committed no results"
    world.start("first-tune", set_param("  C: 1.0", "  C: 0.3"), "Lower regularisation")
    run = world.report("first-tune")
    assert run.returncode == 0, run.log[-4000:]
    report = run.file("model_report.md")
    assert "The base commit holds no results, so CI reproduced them from its pipeline." in report
    assert "| metric | base (reproduced by CI) | this PR | change | verdict |" in report
    assert "| `model.C` | `1.0` | `0.3` |" in report
    assert json.loads(run.file("data_check.json"))["base_source"] == "reproduced"
    assert json.loads(run.file("model_report.json"))["baseline_source"] == "reproduced"
