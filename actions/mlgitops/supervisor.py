"""Keep one environment's server running: restart it when it dies, record its state, and stop it whole on request.

`python -m mlgitops.supervisor --env-dir DIR --port P --tag TAG [-- COMMAND...]` runs COMMAND (by
default `bentoml serve TAG --host 127.0.0.1 --port P`) in a process group of its own, with its output
in DIR/serve.log, and keeps DIR/state.json current. It holds an exclusive lock on DIR/supervisor.lock
for as long as it lives, so "is this environment's supervisor alive" never trusts a pid that another
program may have been given since. It imports the standard library only: it outlives the CI job (and
the workspace) that started it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

STATE = "state.json"
LOG = "serve.log"
# What BentoML logs when the service's start-up failed while its server lives on (it answers nothing).
STARTUP_FAILED = ("Application startup failed", "the model failed its first prediction")
LOCK = "supervisor.lock"
FORMAT = 1
HOST = "127.0.0.1"

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# An exception's own line ("RuntimeError: ...", "bentoml.exceptions.NotFound: ...") or a CLI's "Error: ...".
EXCEPTION_LINE = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception|NotFound|Exit)|Error): \S")
ERROR_LINE = re.compile(r"\[(?:ERROR|CRITICAL)\]|\b(?:ERROR|CRITICAL)\b")
# Lines that frame a traceback rather than say what went wrong.
FRAME_LINE = re.compile(r"^\s*(?:Traceback \(most recent call last\)|File \"|\^+$|[│╭╰─]+)")

# Local requests only: a proxy configured for the job must not see (or break) health checks.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def now() -> str:
    """The current UTC time, to the second, as ISO 8601."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def bentoml_executable() -> str:
    """The `bentoml` command beside this interpreter (its virtual environment's), else the one on PATH."""
    beside = Path(sys.executable).parent / "bentoml"
    if beside.is_file():
        return str(beside)
    return shutil.which("bentoml") or "bentoml"


def answers(url: str, timeout: float = 2) -> bool:
    """Whether GET url answers 200 within timeout."""
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return response.status == 200
    except (OSError, ValueError):
        return False


def log_tail(path: Path, lines: int = 20) -> list[str]:
    """The last non-blank lines of a log, without terminal colours; none when the log is absent."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 65536))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return tail_lines(text, lines)


def tail_lines(text: str, lines: int = 20) -> list[str]:
    """The last non-blank lines of a program's output, without terminal colours, each at most 500 characters."""
    kept = [ANSI.sub("", line).rstrip() for line in text.splitlines()]
    return [line[:500] for line in kept if line.strip()][-lines:]


def meaningful_line(lines: Sequence[str]) -> str:
    """The line of a log tail that best says what went wrong: an exception, else an error, else the last line."""
    for pattern in (EXCEPTION_LINE, ERROR_LINE):
        found = [line.strip() for line in lines if pattern.search(line.strip())]
        if found:
            return found[-1]
    plain = [line.strip() for line in lines if not FRAME_LINE.match(line)]
    return plain[-1] if plain else ""


def supervisor_alive(env_dir: Path) -> bool:
    """Whether a supervisor holds env_dir's lock, i.e. lives (a dead one's lock is released by the kernel)."""
    path = Path(env_dir) / LOCK
    if not path.exists():
        return False
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def write_state(env_dir: Path, state: dict[str, Any]) -> None:
    """Replace env_dir/state.json atomically, so a reader never sees half of it."""
    path = Path(env_dir) / STATE
    partial = path.with_name(f".{STATE}.{os.getpid()}")
    partial.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)


# A process is named by its pid and its start time, so a pid reused by another program is never signalled.
Process = tuple[int, str]


def process_table() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, start time); start times are known on Linux only."""
    table: dict[int, tuple[int, str]] = {}
    if Path("/proc/self/stat").exists():
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                fields = _stat_fields(int(entry))
                if fields and fields[0] != "Z":
                    table[int(entry)] = (int(fields[1]), fields[19])
        return table
    listed = subprocess.run(["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True, check=False)
    for line in listed.stdout.splitlines():
        pid, _, ppid = line.strip().partition(" ")
        if pid.isdigit() and ppid.strip().isdigit():
            table[int(pid)] = (int(ppid), "")
    return table


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces): state, ppid, ... starttime at index 19."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    return text.rpartition(b")")[2].decode("ascii", errors="replace").split()


def running(process: Process) -> bool:
    """Whether this very process still runs (a zombie has finished; a reused pid is another process)."""
    pid, start = process
    if Path("/proc/self/stat").exists():
        fields = _stat_fields(pid)
        return bool(fields) and fields[0] != "Z" and (not start or fields[19] == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def family(root: int) -> set[Process]:
    """A process and all its descendants, including those that started sessions of their own (BentoML's workers)."""
    table = process_table()
    if root not in table:
        return set()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, frontier = {root}, [root]
    while frontier:
        for child in children.get(frontier.pop(), []):
            if child not in found:
                found.add(child)
                frontier.append(child)
    return {(pid, table[pid][1]) for pid in found}


def signal_all(processes: Iterable[Process], sig: int) -> None:
    """Send sig to each process that still runs."""
    for process in processes:
        if running(process):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process[0], sig)


def _die_with_parent_hook() -> Any:
    """A preexec function that has Linux send SIGTERM to the server when its supervisor dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the supervisor died before the line above took effect
            os._exit(1)

    return hook


class Supervisor:
    """Runs one server command, restarts it with backoff, gives up after too many crashes, and stops it whole."""

    def __init__(self, args: argparse.Namespace, command: list[str]) -> None:
        self.args = args
        self.env_dir: Path = args.env_dir
        self.log = self.env_dir / LOG
        self.command = command
        self.server: subprocess.Popen[bytes] | None = None
        self.tree: set[Process] = set()
        self.stopping = False
        self.state: dict[str, Any] = {
            "format": FORMAT,
            "pid": os.getpid(),
            "server_pid": None,
            "port": args.port,
            "tag": args.tag,
            "version": args.version or args.tag.partition(":")[2],
            "status": "starting",
            "restarts": 0,
            "started_at": now(),
            "updated_at": now(),
            "log": str(self.log),
            "last_exit": None,
            "log_tail": [],
        }

    def record(self, **changes: Any) -> None:
        """Update state.json."""
        self.state.update(changes, updated_at=now())
        write_state(self.env_dir, self.state)

    def say(self, message: str) -> None:
        """One line in the supervisor's own log."""
        print(f"{now()} supervisor {os.getpid()}: {message}", flush=True)

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def pause(self, seconds: float) -> None:
        """Sleep, waking early when asked to stop."""
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))

    def run(self) -> int:
        """Supervise until stopped (exit 0) or until the server crashed too often (exit 1)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.record()
        crashes: deque[float] = deque()
        while not self.stopping:
            code = self.serve_once()
            if code is None:
                break
            tail = log_tail(self.log)
            self.end_server()
            moment = time.monotonic()
            crashes.append(moment)
            while moment - crashes[0] > self.args.crash_window:
                crashes.popleft()
            if len(crashes) >= self.args.max_crashes:
                self.say(
                    f"the server exited {code}, {len(crashes)} times within {self.args.crash_window:g} s; giving up"
                )
                self.record(status="crashed", server_pid=None, last_exit=code, log_tail=tail)
                return 1
            delay = min(self.args.backoff_cap, self.args.backoff * 2 ** (len(crashes) - 1))
            self.say(f"the server exited {code}; restarting in {delay:g} s")
            self.record(status="restarting", server_pid=None, last_exit=code, log_tail=tail)
            self.pause(delay)
        self.end_server()
        self.record(status="stopped", server_pid=None)
        self.say("stopped")
        return 0

    def serve_once(self) -> int | None:
        """Start the server and watch it: its exit code when it exits by itself, None when asked to stop."""
        if self.stopping:
            return None
        if self.log.exists():  # keep one previous log, for the crash before this start
            os.replace(self.log, self.log.with_name(f"{LOG}.1"))
        env = dict(os.environ)
        if self.args.bentoml_home:
            env["BENTOML_HOME"] = str(self.args.bentoml_home)
        if self.state["status"] == "restarting":
            self.state["restarts"] += 1
        with self.log.open("ab") as out:
            try:
                self.server = subprocess.Popen(
                    self.command,
                    cwd=self.env_dir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                    # preexec_fn is unsafe only beside other threads, and the supervisor has none.
                    preexec_fn=_die_with_parent_hook(),
                )
            except OSError as err:
                out.write(f"Error: cannot run {self.command[0]}: {err}\n".encode())
                self.server = None
                return 127
        self.tree = family(self.server.pid) or {(self.server.pid, "")}
        self.say(f"started server {self.server.pid}: {' '.join(self.command)}")
        self.record(server_pid=self.server.pid)
        return self.watch(self.server)

    def watch(self, server: subprocess.Popen[bytes]) -> int | None:
        """Wait for the server to exit or for a stop request; mark it serving once it is ready; bound its log."""
        ready = False
        readyz = f"http://{HOST}:{self.args.port}/readyz"
        next_scan = 0.0
        while not self.stopping:
            code = server.poll()
            if code is not None:
                return code
            if not ready and answers(readyz, timeout=1):
                ready, next_scan = True, 0.0  # look at once for workers started while it got ready
                self.say("the server is ready")
                self.record(status="serving")
            if time.monotonic() >= next_scan:
                # Reading every process's record costs milliseconds; a served Bento rarely starts new processes.
                self.tree = {process for process in self.tree | family(server.pid) if running(process)}
                next_scan = time.monotonic() + (2 if ready else 0.5)
            self.bound_log()
            time.sleep(0.5 if ready else 0.2)
        return None

    def bound_log(self) -> None:
        """Past --log-bytes, move the log's content to serve.log.1 and empty it (the server appends, so it goes on)."""
        try:
            if self.log.stat().st_size <= self.args.log_bytes:
                return
            shutil.copyfile(self.log, self.log.with_name(f"{LOG}.1"))
            os.truncate(self.log, 0)
        except OSError as err:
            self.say(f"could not bound {self.log}: {err}")

    def end_server(self) -> None:
        """Stop the server's process group, then any process it started in a session of its own, and wait for them."""
        server = self.server
        if server is None:
            return
        if server.poll() is None:
            self.tree |= family(server.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.wait(timeout=self.args.stop_grace)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            left = {process for process in self.tree if running(process)}
            if not left and server.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(server.pid, sig)
            signal_all(left, sig)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (server.poll() is None or any(map(running, left))):
                time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=1)
        self.server, self.tree = None, set()


def take_lock(env_dir: Path, wait: float = 5) -> Any:
    """Hold env_dir's supervisor lock for this process's life; None when another supervisor holds it."""
    handle = (env_dir / LOCK).open("a")
    deadline = time.monotonic() + wait  # a reader's probe holds it for an instant
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                return None
            time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: supervise a server until SIGTERM or SIGINT (exit 0) or until it crashed too often (exit 1)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(prog="python -m mlgitops.supervisor", description=__doc__.splitlines()[0])
    parser.add_argument("--env-dir", type=Path, required=True, help="folder of state.json, serve.log and the lock")
    parser.add_argument("--port", type=int, required=True, help="port the server listens on, on 127.0.0.1")
    parser.add_argument("--tag", required=True, help="the Bento's tag (name:version)")
    parser.add_argument("--version", default="", help="the release's version, recorded in state.json")
    parser.add_argument("--bentoml-home", type=Path, help="BENTOML_HOME for the server: the store it serves from")
    parser.add_argument("--max-crashes", type=int, default=5, help="give up after this many crashes...")
    parser.add_argument("--crash-window", type=float, default=300, help="...within this many seconds")
    parser.add_argument("--backoff", type=float, default=1, help="seconds before the first restart, doubling after")
    parser.add_argument("--backoff-cap", type=float, default=30, help="longest wait before a restart")
    parser.add_argument("--stop-grace", type=float, default=20, help="seconds the server gets to stop on SIGTERM")
    parser.add_argument(
        "--log-bytes", type=int, default=16 << 20, help="serve.log is emptied into serve.log.1 past this"
    )
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port} is not a TCP port")
    if args.max_crashes < 1:
        parser.error("--max-crashes must be at least 1")
    args.env_dir = args.env_dir.absolute()
    args.env_dir.mkdir(parents=True, exist_ok=True)
    lock = take_lock(args.env_dir)
    if lock is None:
        print(f"another supervisor already serves {args.env_dir}", file=sys.stderr)
        return 2
    command = command or [bentoml_executable(), "serve", args.tag, "--host", HOST, "--port", str(args.port)]
    with lock:
        return Supervisor(args, command).run()


if __name__ == "__main__":
    sys.exit(main())
