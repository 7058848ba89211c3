"""Run the generated release and rollback workflows with act, on a project whose origin is a local bare repository.

Each release run starts from its own clone of origin at the merged commit, as a runner's checkout would,
so concurrent runs never share a working tree. The `local` target serves the environments from a kit
home folder of the world's own (MLGITOPS_HOME) on free ports, and the artifact store is a folder.
Shared by the end-to-end release tests and the release benchmark.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from act_world import OWNER, PINS, POST_TOKEN, STANDINS, Background, World, make_world
from demo import free_port, sh
from fake_github import webhook_example

ENVIRONMENTS = ("staging", "production")
# git's configuration by environment: origin's GitHub URL is rewritten to the bare repository, for the test's own
# git commands and for the workflows' steps alike.
GIT_REWRITE = ("GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0")


@dataclass
class ReleaseRun:
    """One act run of a release or rollback workflow: its exit code, its log and how long it took."""

    returncode: int
    log: str
    seconds: float


@dataclass
class ReleaseWorld:
    """A baked project on main, its bare origin, the kit's home on the serving machine and the artifact store."""

    world: World
    origin: Path
    home: Path
    store: Path
    attestations: Path
    # act arguments a deploy target's stand-ins need (their PATH, variables, secrets).
    extra: tuple[str, ...] = ()

    @property
    def project(self) -> Path:
        return self.world.project

    def git(self, *args: str) -> str:
        return self.world.git(*args)

    def merge(self, change: Callable[[Path], None], message: str) -> str:
        """Land a change on main as a merged pull request would, with its reproduced results; push it to origin."""
        self.git("checkout", "-q", "main")
        self.git("pull", "-q", "--rebase", "origin", "main")
        change(self.project)
        sh(["dvc", "repro", "--quiet"], self.project, self.world.env)
        self.git("commit", "-qam", message)
        self.git("push", "-q", "origin", "main")
        return self.git("rev-parse", "HEAD")

    def revert(self, sha: str) -> None:
        """Land the revert of a merged commit on main, as its revert pull request would."""
        self.git("checkout", "-q", "main")
        self.git("pull", "-q", "--rebase", "origin", "main")
        self.git("revert", "--no-edit", sha)
        self.git("push", "-q", "origin", "main")

    def checkout(self, sha: str) -> Path:
        """A fresh clone of origin at the commit: the runner's checkout for one run."""
        self.world.runs += 1
        clone = self.world.root / f"checkout-{self.world.runs}"
        subprocess.run(["git", "clone", "-q", self.url, str(clone)], env=self.world.env, check=True)
        subprocess.run(["git", "checkout", "-q", sha], cwd=clone, check=True)
        return clone

    @property
    def url(self) -> str:
        """Origin's GitHub URL (act reads the repository's name from it); git rewrites it to the bare repository."""
        return f"https://github.com/{OWNER}/{self.project.name}.git"

    def _command(self, event_name: str, workflow: str, event: dict[str, Any]) -> list[str]:
        command = self.world.act_command(event_name, workflow, event)
        command += ["-P", "self-hosted=-self-hosted", "--env", f"MLGITOPS_HOME={self.home}"]
        command += [arg for key in GIT_REWRITE for arg in ("--env", f"{key}={self.world.env[key]}")]
        command += [
            "--env",
            f"GITHUB_API_URL={self.world.github.url}",
            "--env",
            f"STANDIN_ATTESTATIONS={self.attestations}",
        ]
        command += ["--var", f"RELEASE_STORE={self.store}", "-s", f"GITHUB_TOKEN={POST_TOKEN}"]
        attest = "actions/attest-build-provenance"
        command += ["--local-repository", f"{attest}@{PINS[attest]}={STANDINS / 'attest-build-provenance'}"]
        return command + list(self.extra)

    def _push_event(self, sha: str) -> dict[str, Any]:
        event = webhook_example("push")
        event.update(ref="refs/heads/main", after=sha)
        event["repository"].update(
            full_name=f"{OWNER}/{self.project.name}", name=self.project.name, visibility="public"
        )
        event["repository"]["private"] = False
        return event

    def _run(self, command: list[str], cwd: Path) -> ReleaseRun:
        started = time.monotonic()
        done = subprocess.run(command, cwd=cwd, env=self.world.env, capture_output=True, text=True, timeout=1500)
        return ReleaseRun(done.returncode, done.stdout + done.stderr, time.monotonic() - started)

    def release(self, sha: str | None = None) -> ReleaseRun:
        """Run "Release" for a push of the commit (main's head by default) to main."""
        sha = sha or self.git("rev-parse", "origin/main")
        clone = self.checkout(sha)
        return self._run(self._command("push", "release.yml", self._push_event(sha)), clone)

    def release_in_background(self, sha: str, runner: str = "") -> Background:
        """Start "Release" for the commit without waiting, in its own process group so it can be killed whole.

        A named runner gets a Python environment of its own, as two runners of one release would have; runs
        on the same runner share one (act takes the last value given for a variable).
        """
        clone = self.checkout(sha)
        command = self._command("push", "release.yml", self._push_event(sha))
        if runner:
            command += ["--env", f"STANDIN_VENV={self.world.root / f'standin-venv-{runner}'}"]
        log = self.world.root / f"release-{self.world.runs}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=clone, env=self.world.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return Background(process, log, self.world.root)

    def rollback(self, environment: str, version: str = "", reason: str = "by hand") -> ReleaseRun:
        """Run "Rollback" by hand from main, as the Actions tab's form would."""
        self.git("fetch", "-q", "origin")
        sha = self.git("rev-parse", "origin/main")
        event = {
            "inputs": {"environment": environment, "version": version, "reason": reason},
            "ref": "refs/heads/main",
            "repository": self._push_event(sha)["repository"],
            "sender": {"login": "octocat"},
        }
        return self._run(self._command("workflow_dispatch", "rollback.yml", event), self.checkout(sha))

    def monitor(self) -> ReleaseRun:
        """Run "Model monitor" from main, as its hourly schedule would."""
        self.git("fetch", "-q", "origin")
        sha = self.git("rev-parse", "origin/main")
        repository = {**self._push_event(sha)["repository"], "default_branch": "main"}
        event = {"schedule": "17 * * * *", "ref": "refs/heads/main", "repository": repository}
        run = self._run(self._command("schedule", "monitor.yml", event), self.checkout(sha))
        # Kept whole for reading after a failure (an assertion shows only its end).
        (self.world.root / f"monitor-{self.world.runs}.log").write_text(run.log, encoding="utf-8")
        return run

    def state(self, environment: str) -> dict[str, Any]:
        """The environment's state file as origin's main holds it (empty when there is none yet)."""
        shown = subprocess.run(
            ["git", "--git-dir", str(self.origin), "show", f"main:releases/{environment}.yaml"],
            capture_output=True,
            text=True,
            check=False,
        )
        return yaml.safe_load(shown.stdout) if shown.returncode == 0 else {"live": None, "history": []}

    def history(self, environment: str) -> list[tuple[str, str]]:
        return [(h["version"], h["outcome"]) for h in self.state(environment)["history"]]

    def commits(self) -> list[str]:
        """Subjects of origin's main, newest first."""
        log = ["git", "--git-dir", str(self.origin), "log", "--format=%s", "main"]
        return subprocess.run(log, capture_output=True, text=True, check=True).stdout.splitlines()

    def ask(self, environment: str, route: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The environment's answer to a POST on `route`, at the URL its state records; it must be a 200."""
        from demo import post

        status, answer = post(f"{self.state(environment)['live']['url']}/{route}", payload)
        assert status == 200, answer
        return answer

    def predict(self, environment: str, instances: list[dict[str, Any]]) -> dict[str, Any]:
        """The environment's answer to a /predict request (its model and predictions), at the URL its state records."""
        answer = self.ask(environment, "predict", {"instances": instances})
        # Each request has an id of its own; what the model answered is the rest.
        return {key: value for key, value in answer.items() if key != "request_id"}

    def stop_serving(self) -> None:
        """Stop every environment this world's releases started on the serving machine."""
        from mlgitops.local_target import LocalTarget

        for environment in ENVIRONMENTS:
            LocalTarget(self.project.name, self.home).stop(environment)


def use_free_ports(project: Path) -> None:
    """Give each environment a port nothing else listens on, so worlds and test workers never collide."""
    path = project / "params.yaml"
    params = path.read_text(encoding="utf-8")
    for environment, default in (("staging", 3001), ("production", 3000)):
        params = params.replace(f"      {environment}: {default}\n", f"      {environment}: {free_port()}\n")
    params = params.replace("      port: 3002\n", f"      port: {free_port()}\n")  # the canary's
    path.write_text(params, encoding="utf-8")


@contextlib.contextmanager
def make_release_world(root: Path, **answers: object) -> Iterator[ReleaseWorld]:
    """Bake a project, push it to a bare origin with free ports for its environments; stop its servers afterwards."""
    with make_world(root, **answers) as world:
        origin = root / "origin.git"
        sh(["git", "init", "-q", "--bare", "-b", "main", str(origin)], root, world.env)
        github_url = f"https://github.com/{OWNER}/{world.project.name}.git"
        world.env.update(
            GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0=f"url.{origin}.insteadOf", GIT_CONFIG_VALUE_0=github_url
        )
        world.git("remote", "set-url", "origin", github_url)
        if answers.get("deploy_target", "local") == "local":
            use_free_ports(world.project)
            world.git("commit", "-qam", "Serve staging and production on free ports")
        world.git("push", "-q", "origin", "main")
        release_world = ReleaseWorld(world, origin, root / "home", root / "store", root / "attestations.txt")
        try:
            yield release_world
        finally:
            release_world.stop_serving()


def release_json(world: ReleaseWorld, version: str) -> dict[str, Any]:
    """The manifest the store keeps for a release."""
    return json.loads((world.store / world.project.name / version / "release.json").read_text(encoding="utf-8"))
