"""The `local` deploy target: each environment is a supervised `bentoml serve` on this machine, detached from CI jobs.

Layout under home (default $MLGITOPS_HOME, else ~/.local/state/mlgitops, outside any workspace):
`<project>/bentoml/` is the BentoML store the environments serve from, `<project>/<environment>/`
holds the environment's state.json, serve.log and supervisor, and `<project>/<environment>.lock` is
held by the release that is deploying it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import gha, supervisor
from .targets import DeployError

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BENTO_TAG = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<version>[A-Za-z0-9][A-Za-z0-9_.-]*)")
STORE = "bentoml"
SUPERVISOR_LOG = "supervisor.log"
MONITORING = "monitoring"
# The served model's own index of answered requests and their feedback (MLGITOPS_FEEDBACK_DIR), in the folder above.
FEEDBACK, FEEDBACK_VARIABLE = "feedback", "MLGITOPS_FEEDBACK_DIR"
# Variables the runner sets for a job: a server that outlives the job must neither carry its tokens nor
# RUNNER_TRACKING_ID, by which the runner finds and kills what a job left running.
JOB_VARIABLES = re.compile(r"^(?:GITHUB_|RUNNER_|ACTIONS_|INPUT_|STATE_)|^CI$")
# The supervisor's own stop: the server's grace (20 s) and two rounds of 5 s for what it left behind.
STOP_TIMEOUT = 45.0
LOCK_TIMEOUT = 900.0


def default_home() -> Path:
    """$MLGITOPS_HOME, else ~/.local/state/mlgitops: state that must outlive every job's workspace."""
    configured = os.environ.get("MLGITOPS_HOME")
    return Path(configured).expanduser() if configured else Path.home() / ".local" / "state" / "mlgitops"


def port_taken(port: int) -> bool:
    """Whether something listens on (or holds) port on 127.0.0.1, so a server could not bind it now."""
    with socket.socket() as sock:
        # A closed connection's TIME_WAIT does not stop a server, which sets this option too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((supervisor.HOST, port))
        except OSError:
            return True
    return False


def wait_until(condition: Callable[[], bool], seconds: float, step: float = 0.1) -> bool:
    """Poll condition until it holds (True) or seconds pass (False)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


class LocalTarget:
    """Serves a project's environments on this machine, one supervisor and one `bentoml serve` per environment."""

    name = "local"
    needs_archive = True
    # It can serve a candidate beside the live release on this machine, for the canary before production.
    canary = True

    def __init__(self, project: str, home: Path | None = None, *, command: Sequence[str] | None = None) -> None:
        """command replaces `bentoml serve {tag} --host 127.0.0.1 --port {port}` ({tag}, {port} filled in)."""
        check_name("project", project)
        self.project = project
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.root = self.home.absolute() / project
        self.store = self.root / STORE
        self.command = list(command) if command else None

    def env_dir(self, environment: str) -> Path:
        """The folder of one environment's state, log and supervisor."""
        check_name("environment", environment)
        if environment == STORE:
            raise DeployError(f"environment {STORE!r} is not available: the Bento store of {self.root} uses that name")
        return self.root / environment

    def monitoring_dir(self, environment: str) -> Path:
        """Where the environment's served model logs what it answers (BentoML's monitor writes under it)."""
        return self.env_dir(environment) / MONITORING

    def feedback_dir(self, environment: str) -> Path:
        """Where the environment's served model indexes the requests it answered and stores their feedback."""
        return self.monitoring_dir(environment) / FEEDBACK

    def has_bento(self, tag: str) -> bool:
        """Whether the target's store holds the Bento tag (BentoML keeps bentos/<name>/<version>/bento.yaml)."""
        name, version = split_tag(tag)
        return (self.store / "bentos" / name / version / "bento.yaml").is_file()

    def deploy(
        self,
        environment: str,
        *,
        tag: str,
        archive: Path | None,
        version: str,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 120,
        image: str = "",
    ) -> str:
        """Serve the Bento tag as environment on port, replacing what served it; return its URL once ready.

        The archive is what this machine serves; a container image the release may name is not used here.
        """
        directory = self.env_dir(environment)
        split_tag(tag)
        if archive is None:
            raise DeployError(f"the local target serves a Bento archive, and none was given for {environment}")
        if not 0 < port < 65536:
            raise DeployError(f"port {port} is not a TCP port, so {environment} cannot be served on it")
        self.check_outside_workspace()
        ours = supervisor_alive(directory) and (read_state(directory) or {}).get("port") == port
        if port_taken(port) and not ours:
            raise DeployError(
                f"port {port} on {supervisor.HOST} is taken by a process that is not {environment}'s server,"
                f" so version {version} was not deployed and nothing was stopped"
            )
        # Before stopping anything: a Bento that cannot be imported leaves the current release serving.
        self.import_bento(tag, Path(archive))
        self.stop(environment)
        if not wait_until(lambda: not port_taken(port), 10):
            raise DeployError(
                f"port {port} stayed taken after {environment}'s server stopped; version {version} was not started"
            )
        launched = self.launch(directory, environment, tag=tag, version=version, port=port, env=env or {})
        try:
            return self.wait_ready(directory, launched, environment, version, port, ready_timeout)
        except BaseException:
            self.stop(environment)
            if launched.poll() is None:
                launched.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                launched.wait(timeout=STOP_TIMEOUT)
            raise

    def current(self, environment: str) -> dict[str, Any] | None:
        """The recorded state plus `alive` (supervisor runs, server answers /livez) and `url`; None if not deployed."""
        directory = self.env_dir(environment)
        state = read_state(directory)
        if state is None:
            return None
        url = f"http://{supervisor.HOST}:{state['port']}"
        alive = supervisor_alive(directory) and supervisor.answers(f"{url}/livez")
        return {**state, "alive": alive, "url": url}

    def stop(self, environment: str) -> None:
        """Stop the environment's supervisor and, through it, its server; nothing happens when none runs."""
        directory = self.env_dir(environment)
        state = read_state(directory)
        if state is None:
            return
        pid = state.get("pid")
        if supervisor_alive(directory) and isinstance(pid, int):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not wait_until(lambda: not supervisor_alive(directory), STOP_TIMEOUT):
                self.kill(directory, pid, state.get("server_pid"))
            # It released its lock on the way out: wait for the exit itself, so no part of it outlives stop().
            wait_until(lambda: not supervisor.running((pid, "")), 5)
        state = read_state(directory) or state
        if state.get("status") not in ("stopped", "crashed"):
            supervisor.write_state(directory, {**state, "status": "stopped", "server_pid": None})

    @contextlib.contextmanager
    def lock(self, environment: str, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold environment for this release: other processes wait up to timeout, then fail; death releases it."""
        self.env_dir(environment)
        path = self.root / f"{environment}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+", encoding="utf-8") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        handle.seek(0)
                        holder = handle.read().strip() or "a process that did not say"
                        raise DeployError(
                            f"another release is deploying {environment} on this machine ({holder});"
                            f" gave up waiting for {path} after {timeout:g} s"
                        ) from None
                    time.sleep(0.1)
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} since {supervisor.now()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def check_outside_workspace(self) -> None:
        """Refuse a home inside the job's workspace, which a later checkout cleans; warn about an interpreter there."""
        workspace = os.environ.get("GITHUB_WORKSPACE")
        if not workspace:
            return
        inside = Path(workspace).resolve()
        if self.root.resolve().is_relative_to(inside):
            raise DeployError(
                f"{self.root} is inside the job's workspace {inside}, which a later checkout cleans;"
                " set MLGITOPS_HOME to a folder outside it"
            )
        if Path(sys.executable).absolute().is_relative_to(inside):
            gha.annotate(
                "warning",
                f"the servers run {sys.executable}, inside the job's workspace: once a later checkout cleans it,"
                " a crashed server cannot be restarted; install the project outside the workspace",
                title="local deploy target",
            )

    def services(self, tag: str) -> list[str]:
        """The names of the services in the stored Bento tag, as its bento.yaml lists them."""
        name, version = split_tag(tag)
        path = self.store / "bentos" / name / version / "bento.yaml"
        about = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        if not isinstance(about, dict):
            return []
        services = about.get("services") or []
        return [service["name"] for service in services if isinstance(service, dict) and service.get("name")]

    def import_bento(self, tag: str, archive: Path) -> None:
        """Import the exported Bento into the target's store unless the store holds tag already."""
        if self.has_bento(tag):
            return
        if not archive.is_file():
            raise DeployError(f"the Bento archive {archive} does not exist, and the store {self.store} has no {tag}")
        self.store.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "BENTOML_HOME": str(self.store), "BENTOML_DO_NOT_TRACK": "true"}
        # BentoML 1.4 reads a relative archive path from the filesystem's root: hand it an absolute one.
        command = [supervisor.bentoml_executable(), "import", str(archive.absolute())]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=600)
        if self.has_bento(tag):  # also when a concurrent release imported it first and this import was refused
            return
        said = supervisor.meaningful_line(supervisor.tail_lines(result.stdout + result.stderr)) or "nothing"
        if result.returncode != 0:
            raise DeployError(f"could not import {archive} into {self.store}: bentoml said {said!r}")
        raise DeployError(f"{archive} does not hold {tag}: bentoml said {said!r}")

    def launch(
        self, directory: Path, environment: str, *, tag: str, version: str, port: int, env: Mapping[str, str]
    ) -> subprocess.Popen[bytes]:
        """Start the environment's supervisor in a session of its own, with none of the job's variables."""
        directory.mkdir(parents=True, exist_ok=True)
        environ = {key: value for key, value in os.environ.items() if not JOB_VARIABLES.match(key)}
        environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
        environ.update(env)
        environ["MLGITOPS_ENVIRONMENT"] = environment
        # Each environment logs its predictions in its own folder, not in the Bento's src/ that all share.
        folder = self.monitoring_dir(environment)
        logs = [f"services.{name}.monitoring.options.log_path={folder}" for name in self.services(tag)]
        environ["BENTOML_CONFIG_OPTIONS"] = " ".join(filter(None, [environ.get("BENTOML_CONFIG_OPTIONS", ""), *logs]))
        # Its index of answered requests and the feedback sent for them, beside the log (the service's feedback.py).
        environ[FEEDBACK_VARIABLE] = str(self.feedback_dir(environment))
        # Run as a script with -P: the package's folder must not shadow modules on the server's path.
        script = str(Path(supervisor.__file__).absolute())
        command = [sys.executable, "-P", script, "--env-dir", str(directory), "--port", str(port)]
        command += ["--tag", tag, "--version", version, "--bentoml-home", str(self.store)]
        if self.command:
            command += ["--", *(part.replace("{tag}", tag).replace("{port}", str(port)) for part in self.command)]
        with (directory / SUPERVISOR_LOG).open("wb") as log:
            return subprocess.Popen(
                command,
                cwd=directory,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # no signal to the job's process group reaches it
            )

    def wait_ready(
        self,
        directory: Path,
        launched: subprocess.Popen[bytes],
        environment: str,
        version: str,
        port: int,
        ready_timeout: float,
    ) -> str:
        """Wait until the new supervisor reports its server serving and /readyz answers; the URL, else DeployError."""
        url = f"http://{supervisor.HOST}:{port}"
        deadline = time.monotonic() + ready_timeout
        while True:
            state = read_state(directory) or {}
            ours = state.get("pid") == launched.pid
            if ours and state.get("last_exit") is not None:
                line = supervisor.meaningful_line(state.get("log_tail") or [])
                raise DeployError(
                    f"{environment} did not start version {version}: the server exited"
                    f" {state['last_exit']} before it was ready ({describe(line)})"
                )
            if launched.poll() is not None:
                line = supervisor.meaningful_line(supervisor.log_tail(directory / SUPERVISOR_LOG))
                raise DeployError(
                    f"{environment} did not start version {version}: its supervisor exited ({describe(line)})"
                )
            if ours and state.get("status") == "serving" and supervisor.answers(f"{url}/readyz"):
                return url
            # The server may live on with a service that failed to start: give up at once, with its reason.
            # (Only once our server started: its start rotated the log of the one before.)
            tail = supervisor.log_tail(directory / supervisor.LOG, 60) if ours and state.get("server_pid") else []
            if any(marker in line for line in tail for marker in supervisor.STARTUP_FAILED):
                raise DeployError(
                    f"{environment} did not start version {version}: its service failed to start"
                    f" ({describe(supervisor.meaningful_line(tail))})"
                )
            if time.monotonic() > deadline:
                line = supervisor.meaningful_line(supervisor.log_tail(directory / supervisor.LOG))
                raise DeployError(
                    f"{environment} did not start version {version}:"
                    f" not ready within {ready_timeout:g} s ({describe(line)})"
                )
            time.sleep(0.25)

    def kill(self, directory: Path, pid: int, server_pid: object) -> None:
        """The last resort for a supervisor that ignored SIGTERM: kill it, give its server the same end."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not supervisor_alive(directory), 10)
        if isinstance(server_pid, int):
            # Linux already sent the server SIGTERM as its supervisor died; give it that long to stop by itself.
            wait_until(lambda: not supervisor.running((server_pid, "")), 10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server_pid, signal.SIGKILL)


def describe(line: str) -> str:
    """A log line as the end of an error sentence."""
    return f"last log line: {line}" if line else "its log is empty"


def check_name(kind: str, name: str) -> None:
    """Refuse a project or environment name that is not a plain folder name."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise DeployError(
            f"{kind} name {name!r} must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def split_tag(tag: str) -> tuple[str, str]:
    """A Bento tag's name and version; a tag without a version (or `latest`) is refused: releases pin one Bento."""
    match = BENTO_TAG.fullmatch(tag) if isinstance(tag, str) else None
    if not match or match["version"] == "latest":
        raise DeployError(f"{tag!r} is not a Bento tag with a version (name:version)")
    return match["name"], match["version"]


def supervisor_alive(directory: Path) -> bool:
    """Whether the environment's supervisor runs."""
    return supervisor.supervisor_alive(directory)


def read_state(directory: Path) -> dict[str, Any] | None:
    """The environment's state.json, or None when it has none."""
    path = directory / supervisor.STATE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as err:
        raise DeployError(
            f"{path} is not valid JSON ({err}); remove it after checking what serves on its port"
        ) from None
    if not isinstance(state, dict):
        raise DeployError(f"{path} does not hold an object; remove it after checking what serves on its port")
    return state
