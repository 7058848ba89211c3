"""The `bentocloud` deploy target: each environment is the BentoCloud deployment `<project>-<environment>`.

Deploying pushes the release's Bento (imported from its archive into a BENTOML_HOME of the call's own, in a
temporary folder) and creates the deployment with `bentoml deploy`, or points the existing one at it with
`bentoml deployment update`; going back to an earlier release is the same update naming the earlier Bento. A
release is out once BentoCloud reports the deployment running and its URL answers /readyz and reports the
release's Bento version on several requests in a row (old and new replicas answer side by side during a rolling
update). The URL is the one BentoCloud gives the deployment, unless MLGITOPS_URL names another (a custom domain;
`{environment}` in it is replaced by the environment's name).

Credentials come from the job's environment only: BENTO_CLOUD_API_KEY (a secret of the GitHub environment) and,
optionally, BENTO_CLOUD_API_ENDPOINT. The `bentoml` client reads both itself, so nothing logs in and no token
is written to disk; the key never appears in an error message.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import supervisor

# The same URL rule and version probe as the kubernetes target: MLGITOPS_URL means one thing for every target.
from .local_target import split_tag
from .targets import URL_VARIABLE, DeployError, environment_url, get_json, served_version

API_KEY = "BENTO_CLOUD_API_KEY"
ENDPOINT = "BENTO_CLOUD_API_ENDPOINT"
DEFAULT_ENDPOINT = "https://cloud.bentoml.com"
# BentoCloud names deployments like Kubernetes objects: a DNS label.
DEPLOYMENT_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
# The statuses `bentoml deploy --wait` gives up on, and those it calls ready.
FAILED = frozenset({"failed", "image-build-failed", "unhealthy", "terminating", "terminated"})
SERVING = frozenset({"running", "scaled-to-zero"})
REFUSED = re.compile(r"status code (401|403)\b")
# Answers in a row that must report the new version before the rollout counts as done.
SETTLED = 3
POLL_SECONDS = 2.0
# A push uploads the Bento and its models; one command gets this long.
COMMAND_SECONDS = 1800.0
STOP_SECONDS = 300.0


class BentoCloud:
    """Runs `bentoml` for one environment against BentoCloud, with the job's credentials and a private store."""

    def __init__(self, environment: str, home: Path) -> None:
        key = os.environ.get(API_KEY, "").strip()
        if not key:
            raise DeployError(
                f"{API_KEY} is not set, so {environment} cannot be reached on BentoCloud:"
                f" add the API token as a secret of the GitHub environment {environment}"
            )
        self.environment, self.key = environment, key
        # An unset GitHub variable arrives as an empty string, which the client would take for the endpoint.
        self.endpoint = os.environ.get(ENDPOINT, "").strip() or DEFAULT_ENDPOINT
        self.env = {name: value for name, value in os.environ.items() if name not in (API_KEY, ENDPOINT)}
        self.env |= {API_KEY: key, ENDPOINT: self.endpoint, "BENTOML_HOME": str(home)}
        self.env |= {"BENTOML_DO_NOT_TRACK": "true", "NO_COLOR": "1"}

    def call(self, *args: str) -> tuple[int, str, str]:
        """Run `bentoml ARGS`: its exit code, its standard output and both outputs together, the key redacted."""
        command = [supervisor.bentoml_executable(), *args]
        try:
            done = subprocess.run(
                command, env=self.env, capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"`bentoml {args[0]}` did not finish within {COMMAND_SECONDS:g} s for {self.environment}"
            ) from None
        return done.returncode, self.redact(done.stdout), self.redact(done.stdout + done.stderr)

    def run(self, *args: str, doing: str) -> str:
        """Run `bentoml ARGS` and return its output; a DeployError saying what failed while `doing` otherwise."""
        code, stdout, output = self.call(*args)
        if code != 0:
            raise self.error(output, doing)
        return stdout

    def error(self, output: str, doing: str) -> DeployError:
        """The one-sentence error for a failed command, told apart: refused credentials, or what bentoml said."""
        refused = REFUSED.search(output)
        if refused:
            return DeployError(
                f"BentoCloud ({self.endpoint}) refused the API key in {API_KEY} with HTTP {refused[1]} while"
                f" {doing}; check that secret of the GitHub environment {self.environment}"
            )
        said = supervisor.meaningful_line(supervisor.tail_lines(output)) or "nothing"
        return DeployError(f"{doing} failed on BentoCloud: bentoml said {said!r}")

    def redact(self, text: str) -> str:
        return text.replace(self.key, "***")

    def describe(self, name: str) -> dict[str, Any] | None:
        """`bentoml deployment get NAME -o json`, or None when BentoCloud has no such deployment."""
        doing = f"reading {self.environment}'s deployment {name}"
        code, stdout, output = self.call("deployment", "get", name, "-o", "json")
        # The client turns BentoCloud's 404 (and its older 400 "record not found") into this sentence.
        if code != 0 and f"Deployment {name} is not found" in output:
            return None
        if code != 0:
            raise self.error(output, doing)
        try:
            described = json.loads(stdout[stdout.index("{") :])
        except ValueError:
            raise self.error(output, doing) from None
        if not isinstance(described, dict):
            raise self.error(output, doing)
        return described

    def import_bento(self, archive: Path, version: str) -> None:
        """Import the release's archive into the private store, where `bentoml deploy` finds and pushes it."""
        if not archive.is_file():
            raise DeployError(
                f"the Bento archive {archive} does not exist, so version {version} cannot go to {self.environment}"
            )
        # BentoML 1.4 reads a relative archive path from the filesystem's root: hand it an absolute one.
        self.run("import", str(archive.absolute()), doing=f"importing {archive} for {self.environment}")


class BentoCloudTarget:
    """Serves each environment as one BentoCloud deployment, driven with the `bentoml` command line."""

    # The command line rather than the Python API: it is what a user runs to look at or repair a deployment, and
    # every call gets its own BENTOML_HOME and credentials, which the API configures once per process.

    name = "bentocloud"
    needs_archive = True

    def __init__(self, project: str, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.project = project
        self.poll_seconds = poll_seconds

    def deployment_name(self, environment: str) -> str:
        """The environment's deployment: `<project>-<environment>`."""
        name = f"{self.project}-{environment}"
        if not DEPLOYMENT_NAME.fullmatch(name):
            raise DeployError(
                f"{name!r} cannot name {environment}'s BentoCloud deployment: it must be 1 to 63 lowercase letters,"
                " digits or '-', starting and ending with a letter or digit"
            )
        return name

    @contextlib.contextmanager
    def cloud(self, environment: str) -> Iterator[BentoCloud]:
        """A client for the environment with a BentoML store of its own, removed afterwards."""
        with tempfile.TemporaryDirectory(prefix="mlgitops-bentocloud-") as home:
            yield BentoCloud(environment, Path(home))

    def deploy(
        self,
        environment: str,
        *,
        tag: str,
        archive: Path | None,
        version: str,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 600,
        image: str = "",
    ) -> str:
        """Push the Bento `tag`, point the environment's deployment at it (creating it the first time), and return
        its URL once it serves `version`. BentoCloud builds its own image and picks the port: `image` and `port`
        are not used."""
        name = self.deployment_name(environment)
        split_tag(tag)
        settings = [f"--env={key}={value}" for key, value in (env or {}).items()]
        with self.cloud(environment) as cloud:
            # Without an archive the Bento must be on BentoCloud already, from an earlier push.
            if archive is not None:
                cloud.import_bento(Path(archive), version)
            doing = f"deploying version {version} to {environment}"
            if cloud.describe(name) is None:
                # --no-wait: the client's wait tails the image builder over websockets; the wait below suffices.
                cloud.run("deploy", tag, "--name", name, "--no-wait", *settings, doing=doing)
            else:
                cloud.run("deployment", "update", name, "--bento", tag, *settings, doing=doing)
            return self.wait_ready(cloud, name, version, ready_timeout)

    def wait_ready(self, cloud: BentoCloud, name: str, version: str, timeout: float) -> str:
        """Poll the deployment until it is running and its URL serves `version`; its URL, else DeployError."""
        environment = cloud.environment
        deadline = time.monotonic() + timeout
        while True:
            described = cloud.describe(name) or {}
            status = status_of(described)
            if status in FAILED:
                raise DeployError(
                    f"BentoCloud reports {environment}'s deployment {name} {status} while it rolls out version"
                    f" {version}; its logs are at {described.get('admin_console') or cloud.endpoint}"
                )
            url = self.url(environment, described)
            seen = f"BentoCloud reports it {status or 'without a status'}"
            if status in SERVING and not url:
                seen = f"BentoCloud gives it no URL; set {URL_VARIABLE}"
            elif status in SERVING:
                settled, seen = self.settled(url, version)
                if settled:
                    return url
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{environment} did not serve version {version} within {timeout:g} s of updating its BentoCloud"
                    f" deployment {name} ({seen})"
                )
            time.sleep(self.poll_seconds)

    def settled(self, url: str, version: str) -> tuple[bool, str]:
        """Whether several answers in a row report `version`; and what was seen, for an error message."""
        seen = ""
        for attempt in range(SETTLED):
            served, seen = served_version(url)
            if served != version:
                return False, f"{url} {seen}" if served is None else f"{url} serves version {served!r}"
            if attempt < SETTLED - 1:
                time.sleep(0.2)
        return True, seen

    def url(self, environment: str, described: Mapping[str, Any]) -> str:
        """MLGITOPS_URL when set (a custom domain), else the first endpoint BentoCloud gives the deployment."""
        urls = described.get("endpoint_urls") or [""]
        return environment_url(environment) or str(urls[0]).rstrip("/")

    def current(self, environment: str) -> dict[str, Any] | None:
        """The deployment's Bento (tag, version), status and URL, `alive` when that URL answers /readyz; None when
        the environment has no deployment."""
        name = self.deployment_name(environment)
        with self.cloud(environment) as cloud:
            described = cloud.describe(name)
        if described is None:
            return None
        tag, status = str(described.get("bento") or ""), status_of(described)
        url = self.url(environment, described)
        alive = status in SERVING and bool(url) and get_json(f"{url}/readyz", timeout=10)[0] == 200
        version = tag.partition(":")[2]
        return {"tag": tag, "version": version, "status": status, "alive": alive, "url": url, "deployment": name}

    def stop(self, environment: str) -> None:
        """Terminate the environment's deployment and wait until it is; nothing happens when none runs."""
        name = self.deployment_name(environment)
        with self.cloud(environment) as cloud:
            described = cloud.describe(name)
            if described is None or status_of(described) == "terminated":
                return
            cloud.run("deployment", "terminate", name, doing=f"terminating {environment}'s deployment {name}")
            deadline = time.monotonic() + STOP_SECONDS
            while (status := status_of(cloud.describe(name) or {})) not in ("terminated", ""):
                if time.monotonic() > deadline:
                    raise DeployError(
                        f"{environment}'s BentoCloud deployment {name} is still {status} {STOP_SECONDS:g} s after"
                        " it was asked to terminate"
                    )
                time.sleep(self.poll_seconds)

    def lock(self, environment: str) -> contextlib.AbstractContextManager[object]:
        """Releases of an environment are serialized by the release workflows' concurrency groups
        (release-<environment>), and BentoCloud offers no lock to take: none is held here."""
        self.deployment_name(environment)
        return contextlib.nullcontext()


def status_of(described: Mapping[str, Any]) -> str:
    """The deployment's status as `bentoml deployment get -o json` prints it ({"status": {"status": ...}})."""
    status = described.get("status")
    return str(status.get("status") or "") if isinstance(status, dict) else ""
