"""The local deploy target: a detached supervisor per environment that keeps its server up and stops it whole."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from demo import bake, build_bento, first_test_instance, free_port, post, project_env, sh
from helpers import ROOT
from mlgitops import supervisor
from mlgitops.local_target import LocalTarget, port_taken
from mlgitops.targets import DeployError, Target, get_target

STANDIN = Path(__file__).parent / "standins" / "bentoml_serve.py"
SERVE = [sys.executable, str(STANDIN), "serve", "{tag}", "--host", "127.0.0.1", "--port", "{port}"]
ACTIONS = str(ROOT / "actions")


def wait_for(condition: Callable[[], object], seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)


def gone(pid: int) -> bool:
    """Whether a process has ended (a zombie has ended: only its parent's bookkeeping is left)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def info(url: str) -> dict:
    """What the stand-in server says about itself: the tag it serves, its pids and its environment."""
    with urllib.request.urlopen(f"{url}/info", timeout=5) as response:
        return json.loads(response.read())


def add_bento(target: LocalTarget, tag: str) -> None:
    """Put a Bento's record in the target's store, as `bentoml import` leaves it, so no import is needed."""
    name, version = tag.split(":")
    folder = target.store / "bentos" / name / version
    folder.mkdir(parents=True)
    (folder / "bento.yaml").write_text(f"name: {name}\nversion: {version}\n", encoding="utf-8")


def processes_under(folder: Path) -> list[psutil.Process]:
    """Live processes working in folder: every supervisor and server of a target keeps its environment's folder."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and Path(process.cwd()).is_relative_to(folder):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
def target(tmp_path):
    """A local target serving the stand-in server, with Bentos demo:v1 and demo:v2 in its store.

    Afterwards every environment is stopped, and the test fails if any of its processes is left.
    """
    target = LocalTarget("demo", tmp_path / "home", command=SERVE)
    add_bento(target, "demo:v1")
    add_bento(target, "demo:v2")
    yield target
    for folder in target.root.iterdir():
        if (folder / supervisor.STATE).is_file():
            target.stop(folder.name)
    left = processes_under(target.root)
    for process in left:
        process.kill()
    assert not left, f"processes left running: {[p.cmdline() for p in left]}"


@pytest.fixture
def port() -> int:
    return free_port()


def deploy(target: LocalTarget, version: str = "v1", *, port: int, environment: str = "staging", **env: str) -> str:
    return target.deploy(
        environment,
        tag=f"demo:{version}",
        archive=target.home / "unused.bento",
        version=version,
        port=port,
        env=env,
        ready_timeout=20,
    )


def supervise(env_dir: Path, port: int, *options: str, **env: str) -> subprocess.Popen:
    """Start `python -m mlgitops.supervisor` on the stand-in server directly, with its own options."""
    command = [sys.executable, "-m", "mlgitops.supervisor", "--env-dir", str(env_dir), "--port", str(port)]
    command += ["--tag", "demo:v1", *options, "--"]
    command += [part.replace("{tag}", "demo:v1").replace("{port}", str(port)) for part in SERVE]
    environ = {**os.environ, "PYTHONPATH": ACTIONS, **env}
    env_dir.mkdir(parents=True)
    return subprocess.Popen(command, env=environ, cwd=env_dir, stdout=subprocess.DEVNULL, start_new_session=True)


def state_of(env_dir: Path) -> dict:
    return json.loads((env_dir / supervisor.STATE).read_text(encoding="utf-8"))


LAUNCHER = """
import sys, time
sys.path.insert(0, {actions!r})
from mlgitops.local_target import LocalTarget
target = LocalTarget("demo", {home!r}, command={command!r})
url = target.deploy("staging", tag="demo:v1", archive={home!r}, version="v1", port={port}, env={{"EXTRA": "given"}})
print(url, flush=True)
time.sleep(120)
"""


def test_the_supervisor_outlives_its_launcher_and_carries_nothing_the_runner_kills_by(target, port, tmp_path):
    # Given a release step, run like a CI job's step: the runner's tracking id and a token in its environment
    tracking = f"github_{uuid.uuid4()}"
    job_env = {**os.environ, "RUNNER_TRACKING_ID": tracking, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "secret"}
    job_env["GITHUB_WORKSPACE"] = str(tmp_path / "workspace")
    script = LAUNCHER.format(actions=ACTIONS, home=str(target.home), command=SERVE, port=port)
    launcher = subprocess.Popen(
        [sys.executable, "-c", script], env=job_env, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert select.select([launcher.stdout], [], [], 30)[0], "the launcher did not deploy within 30 s"
        url = launcher.stdout.readline().strip()
    finally:
        # When the job ends, the runner kills its process group
        os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
    # Then the environment is still served, by a supervisor that leads a session of its own
    state = target.current("staging")
    assert state["alive"] and state["url"] == url == f"http://127.0.0.1:{port}"
    assert os.getsid(state["pid"]) == state["pid"] != launcher.pid
    # and neither it nor its server carries the job's tracking id (the runner's cleanup finds none) or token
    carriers = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("RUNNER_TRACKING_ID") == tracking:
                carriers.append(process.cmdline())
    assert carriers == []
    served_env = info(url)["env"]
    assert "ACTIONS_ID_TOKEN_REQUEST_TOKEN" not in served_env and "GITHUB_WORKSPACE" not in served_env
    assert served_env["MLGITOPS_ENVIRONMENT"] == "staging" and served_env["EXTRA"] == "given"
    assert served_env["BENTOML_HOME"] == str(target.store)


def test_deploy_returns_once_ready_and_records_what_serves(target, port):
    url = deploy(target, "v1", port=port)
    state = target.current("staging")
    assert info(url)["tag"] == "demo:v1"
    assert {k: state[k] for k in ("tag", "version", "port", "status", "restarts", "alive", "url")} == {
        "tag": "demo:v1",
        "version": "v1",
        "port": port,
        "status": "serving",
        "restarts": 0,
        "alive": True,
        "url": url,
    }
    assert state["server_pid"] == info(url)["pid"] and state["log"].endswith("staging/serve.log")


def test_a_crashed_server_is_restarted_and_the_crash_recorded(target, port, tmp_path):
    # Given a server that crashes once, two seconds after it is ready, leaving a worker of its own behind
    once = tmp_path / "crash-once"
    once.touch()
    url = deploy(target, port=port, STANDIN_CRASH_AFTER="2", STANDIN_CRASH_ONCE=str(once), STANDIN_WORKER="1")
    first = info(url)
    # When it crashes, then the supervisor starts it again and it serves
    wait_for(lambda: target.current("staging")["restarts"] == 1)
    wait_for(lambda: target.current("staging")["status"] == "serving")
    state = target.current("staging")
    assert state["alive"] and state["last_exit"] == 1
    assert supervisor.meaningful_line(state["log_tail"]) == "RuntimeError: crashed after 2 s"
    assert info(url)["pid"] == state["server_pid"] != first["pid"]
    # and the crashed server's worker did not outlive it
    assert gone(first["pid"]) and gone(first["worker_pid"])


def test_repeated_crashes_end_in_status_crashed_with_the_logs_last_line(tmp_path, port):
    env_dir = tmp_path / "staging"
    process = supervise(
        env_dir, port, "--max-crashes", "3", "--backoff", "0.05", STANDIN_CRASH_ON_START="the model file is corrupt"
    )
    assert process.wait(timeout=30) == 1
    state = state_of(env_dir)
    assert (state["status"], state["restarts"], state["last_exit"], state["server_pid"]) == ("crashed", 2, 1, None)
    assert state["log_tail"][-1] == "RuntimeError: the model file is corrupt"
    assert processes_under(env_dir) == []


def test_the_servers_log_stays_bounded(tmp_path, port):
    env_dir = tmp_path / "staging"
    process = supervise(env_dir, port, "--log-bytes", "20000", STANDIN_CHATTER="1")
    try:
        wait_for(lambda: (env_dir / "serve.log.1").exists())
        time.sleep(2)
        logs = [env_dir / "serve.log", env_dir / "serve.log.1"]
        # The supervisor looks twice a second; the server writes about 50 kB/s.
        sizes = [log.stat().st_size for log in logs]
        assert all(size < 20000 + 40000 for size in sizes)
        # Each line is 90 bytes and numbered: far more was written than the two files hold.
        # (right after a rotation the current file may still be empty: the newest line is then in the older one)
        newest = supervisor.log_tail(logs[0]) or supervisor.log_tail(logs[1])
        written = 90 * int(newest[-1].split()[1])
        assert written > sum(sizes) + 20000
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert state_of(env_dir)["status"] == "stopped"
    assert processes_under(env_dir) == []


def test_stop_ends_the_server_its_workers_and_the_supervisor_and_can_be_repeated(target, port):
    url = deploy(target, port=port, STANDIN_WORKER="1")
    served, state = info(url), target.current("staging")
    target.stop("staging")
    assert all(gone(pid) for pid in (served["pid"], served["worker_pid"], state["pid"]))
    assert not port_taken(port)
    after = target.current("staging")
    assert (after["status"], after["alive"], after["server_pid"]) == ("stopped", False, None)
    target.stop("staging")
    target.stop("production")
    assert target.current("production") is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the server follows its supervisor on Linux")
def test_a_killed_supervisor_takes_its_server_with_it(target, port):
    url = deploy(target, port=port)
    served, state = info(url), target.current("staging")
    os.kill(state["pid"], signal.SIGKILL)
    wait_for(lambda: gone(served["pid"]), 10)
    assert not target.current("staging")["alive"]


def test_deploy_replaces_the_previous_server_on_the_same_port(target, port):
    url = deploy(target, "v1", port=port)
    before, old = info(url), target.current("staging")
    assert deploy(target, "v2", port=port) == url
    now = target.current("staging")
    assert info(url)["tag"] == "demo:v2" and (now["version"], now["alive"]) == ("v2", True)
    assert gone(before["pid"]) and gone(old["pid"])


def test_deploy_moves_an_environment_to_another_port(target, port):
    deploy(target, "v1", port=port)
    other = free_port()
    url = deploy(target, "v2", port=other)
    assert url == f"http://127.0.0.1:{other}" and info(url)["tag"] == "demo:v2"
    assert not port_taken(port)


def test_a_server_that_exits_before_it_is_ready_fails_the_deploy_with_its_last_log_line(target, port):
    with pytest.raises(DeployError) as failure:
        deploy(target, "v2", port=port, STANDIN_CRASH_ON_START="the model file is corrupt")
    assert str(failure.value) == (
        "staging did not start version v2: the server exited 1 before it was ready"
        " (last log line: RuntimeError: the model file is corrupt)"
    )
    state = target.current("staging")
    assert (state["status"], state["alive"]) == ("stopped", False)
    assert not port_taken(port)


def test_a_service_that_fails_to_start_while_its_server_lives_on_fails_the_deploy_at_once(target, port):
    started = time.monotonic()
    with pytest.raises(DeployError) as failure:
        target.deploy(
            "production",
            tag="demo:v1",
            archive=Path("unused.bento"),
            version="1.4.0",
            port=port,
            env={"STANDIN_STARTUP_FAILED": "the model file is corrupt"},
            ready_timeout=120,
        )
    assert str(failure.value) == (
        "production did not start version 1.4.0: its service failed to start"
        " (last log line: RuntimeError: the model file is corrupt)"
    )
    assert time.monotonic() - started < 60, "given up at once, not after the ready timeout"


def test_a_server_that_never_gets_ready_fails_the_deploy_after_the_timeout(target, port):
    with pytest.raises(DeployError) as failure:
        target.deploy(
            "production",
            tag="demo:v1",
            archive=Path("unused.bento"),
            version="1.4.0",
            port=port,
            env={"STANDIN_NEVER_READY": "1"},
            ready_timeout=1.5,
        )
    assert str(failure.value) == (
        "production did not start version 1.4.0: not ready within 1.5 s (last log line: waiting for the model to load)"
    )
    assert not target.current("production")["alive"] and not port_taken(port)


def test_a_port_held_by_a_stranger_is_refused_without_stopping_the_current_server(target, port):
    url = deploy(target, "v1", port=port)
    serving = target.current("staging")
    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        taken = stranger.getsockname()[1]
        for environment, busy in (("staging", taken), ("production", port)):
            with pytest.raises(DeployError) as failure:
                deploy(target, "v2", port=busy, environment=environment)
            assert str(failure.value) == (
                f"port {busy} on 127.0.0.1 is taken by a process that is not {environment}'s server,"
                " so version v2 was not deployed and nothing was stopped"
            )
    now = target.current("staging")
    assert now["alive"] and now["pid"] == serving["pid"] and info(url)["tag"] == "demo:v1"
    assert target.current("production") is None


def test_a_bento_that_cannot_be_imported_leaves_the_current_release_serving(target, port, tmp_path):
    url = deploy(target, "v1", port=port)
    junk = tmp_path / "junk.bento"
    junk.write_bytes(b"not a tar archive")
    with pytest.raises(DeployError, match=r"^could not import .*junk\.bento into .*bentoml: bentoml said '.+'$"):
        target.deploy("staging", tag="demo:v3", archive=junk, version="v3", port=port)
    with pytest.raises(DeployError) as failure:
        target.deploy("staging", tag="demo:v3", archive=tmp_path / "missing.bento", version="v3", port=port)
    assert str(failure.value) == (
        f"the Bento archive {tmp_path / 'missing.bento'} does not exist, and the store {target.store} has no demo:v3"
    )
    assert info(url)["tag"] == "demo:v1" and target.current("staging")["alive"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda t: t.deploy("../prod", tag="demo:v1", archive=Path("a"), version="1", port=1),
            "environment name '../prod' must be 1 to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit",
        ),
        (
            lambda t: t.deploy("staging", tag="demo:latest", archive=Path("a"), version="1", port=1),
            "'demo:latest' is not a Bento tag with a version (name:version)",
        ),
        (
            lambda t: t.deploy("staging", tag="demo:v1", archive=Path("a"), version="1", port=70000),
            "port 70000 is not a TCP port, so staging cannot be served on it",
        ),
        (
            lambda t: t.current("bentoml"),
            "environment 'bentoml' is not available: the Bento store of {root} uses that name",
        ),
        (
            lambda t: get_target("heroku", "demo"),
            "unknown deploy target 'heroku': this kit deploys to bentocloud, kubernetes, local",
        ),
    ],
    ids=["environment", "tag", "port", "store-name", "target"],
)
def test_bad_input_is_refused_with_one_sentence(target, call, message):
    with pytest.raises(DeployError) as failure:
        call(target)
    assert str(failure.value) == message.format(root=target.root)


def test_the_registry_gives_the_local_target_as_a_target(tmp_path):
    local = get_target("local", "demo", home=tmp_path)
    assert isinstance(local, LocalTarget) and isinstance(local, Target)
    assert local.root == tmp_path / "demo" and local.store == tmp_path / "demo" / "bentoml"


def test_home_defaults_to_mlgitops_home_and_is_refused_inside_the_workspace(tmp_path, monkeypatch, port):
    monkeypatch.setenv("MLGITOPS_HOME", str(tmp_path / "workspace" / "state"))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "workspace"))
    local = LocalTarget("demo")
    assert local.root == tmp_path / "workspace" / "state" / "demo"
    with pytest.raises(DeployError, match=r"is inside the job's workspace .*; set MLGITOPS_HOME to a folder outside"):
        local.deploy("staging", tag="demo:v1", archive=Path("a"), version="1", port=port)


LOCK_HOLDER = """
import sys, time
sys.path.insert(0, {actions!r})
from mlgitops.local_target import LocalTarget
with LocalTarget("demo", {home!r}).lock("staging"):
    with open({log!r}, "a") as log:
        log.write("start " + sys.argv[1] + "\\n")
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    with open({log!r}, "a") as log:
        log.write("end " + sys.argv[1] + "\\n")
"""


def hold_lock(home: Path, log: Path, name: str, seconds: float) -> subprocess.Popen:
    script = LOCK_HOLDER.format(actions=ACTIONS, home=str(home), log=str(log))
    return subprocess.Popen([sys.executable, "-c", script, name, str(seconds)], stdout=subprocess.PIPE, text=True)


def test_the_lock_serializes_two_release_runs(tmp_path):
    log = tmp_path / "runs.log"
    first = hold_lock(tmp_path, log, "a", 1)
    assert first.stdout.readline() == "held\n"
    second = hold_lock(tmp_path, log, "b", 0)
    assert first.wait(timeout=30) == 0 and second.wait(timeout=30) == 0
    assert log.read_text().split("\n") == ["start a", "end a", "start b", "end b", ""]


def test_a_held_lock_times_out_with_a_clear_error_and_a_killed_holder_releases_it(tmp_path):
    holder = hold_lock(tmp_path, tmp_path / "runs.log", "a", 60)
    try:
        assert holder.stdout.readline() == "held\n"
        local = LocalTarget("demo", tmp_path)
        with pytest.raises(DeployError) as failure, local.lock("staging", timeout=0.5):
            pass
        assert str(failure.value).startswith(
            f"another release is deploying staging on this machine (pid {holder.pid} since "
        )
        assert str(failure.value).endswith(f"); gave up waiting for {tmp_path / 'demo' / 'staging.lock'} after 0.5 s")
        with local.lock("production", timeout=0.5):
            pass  # another environment is not held
    finally:
        holder.kill()
        holder.wait()
    with local.lock("staging", timeout=5):
        pass


def test_a_deployed_supervisor_does_not_keep_the_release_lock(target, port, tmp_path):
    with target.lock("staging"):
        deploy(target, port=port)
    # A new process (the next release) takes the lock at once while the supervisor runs on.
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {ACTIONS!r})
        from mlgitops.local_target import LocalTarget
        with LocalTarget("demo", {str(target.home)!r}).lock("staging", timeout=2):
            print("taken")
        """
    )
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, text=True).stdout == "taken\n"
    assert target.current("staging")["alive"]


@pytest.mark.slow
def test_a_real_bento_is_deployed_answers_is_redeployed_and_stopped(tmp_path):
    # Given the default project's Bento, exported as a release archive
    project = bake(tmp_path)
    env = project_env(project, tmp_path / "build-bentoml")
    tag = build_bento(project, env)
    archive = tmp_path / "release.bento"
    sh(["bentoml", "export", tag, str(archive)], project, env)
    target, port = LocalTarget(project.name, tmp_path / "home"), free_port()
    try:
        # When it is deployed as staging, then it is imported into the target's store and answers a prediction
        url = target.deploy("staging", tag=tag, archive=archive, version="1.0.0", port=port, ready_timeout=180)
        assert target.has_bento(tag)
        instance = first_test_instance(project, env)
        status, answer = post(f"{url}/predict", {"instances": [instance]})
        assert status == 200 and len(answer["predictions"]) == 1
        first = target.current("staging")
        assert (first["status"], first["alive"], first["tag"]) == ("serving", True, tag)
        # When it is deployed again (from the store: the archive is gone), then a new server answers on the same URL
        archive.unlink()
        assert target.deploy("staging", tag=tag, archive=archive, version="1.0.1", port=port, ready_timeout=180) == url
        second = target.current("staging")
        assert second["pid"] != first["pid"] and (second["version"], second["alive"]) == ("1.0.1", True)
        assert post(f"{url}/predict", {"instances": [instance]})[0] == 200
    finally:
        target.stop("staging")
    assert gone(second["pid"]) and gone(second["server_pid"]) and not port_taken(port)
    assert processes_under(target.root) == []
