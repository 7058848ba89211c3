"""The project the Self-test workflow runs every action on: the default bake, beside the kit's actions.

`bake` (in the kit's checkout, on a runner): bake the template with the default answers, then make the
workspace that project plus the checkout's `actions/` folder, so the workflow's `uses: ./actions/<name>` steps
run the kit under test on it. Its environments get free ports and its origin is a bare repository in the
runner's temporary folder, where the release's state commits go.
`baseline` (once the project is installed): reproduce and commit main's results, push them, then change one
parameter on a branch as a pull request would; the base commit is the step output `base`.
`main`: check out main as the releases left it on origin, where the scheduled monitor reads the live releases.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

IDENTITY = ["-c", "user.name=mlgitops self-test", "-c", "user.email=self-test@example.invalid"]
# The reviewed change retrains the default answers' logistic regression and leaves its scores as they were (the
# solver converges long before), so the report's gate passes and the release goes on.
CHANGE = ("  max_iter: 1000\n", "  max_iter: 2000\n")


def git(workspace: Path, *args: str) -> str:
    done = subprocess.run(["git", *IDENTITY, *args], cwd=workspace, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bake(workspace: Path, temp: Path) -> None:
    """Replace the kit's checkout, except its actions, by the default project with free ports and a bare origin."""
    out = temp / "self-test-bake"
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(workspace), "-o", str(out)]
    subprocess.run([*command, "_reproduce_baseline=false"], check=True)
    (project,) = out.iterdir()
    for entry in workspace.iterdir():
        if entry.name == "actions":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    for entry in project.iterdir():
        shutil.move(str(entry), str(workspace / entry.name))
    # The kit under test sits beside the project; it is no file of the project's.
    with (workspace / ".git" / "info" / "exclude").open("a", encoding="utf-8") as exclude:
        exclude.write("/actions/\n")
    params = workspace / "params.yaml"
    text = params.read_text(encoding="utf-8")
    # Every environment's port, and the canary's, become ports nothing listens on.
    text = re.sub(
        r"^(      (?:staging|production): |      port: )\d+$", lambda m: f"{m[1]}{free_port()}", text, flags=re.M
    )
    params.write_text(text, encoding="utf-8")
    origin = temp / "self-test-origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    git(workspace, "remote", "add", "origin", str(origin))
    git(workspace, "commit", "-qam", "Serve the environments on free ports")
    git(workspace, "push", "-q", "origin", "main")


def baseline(workspace: Path) -> str:
    """Commit main's reproduced results, push them, and branch with a parameter change; return main's commit."""
    subprocess.run([sys.executable, "-m", "dvc", "repro", "--quiet"], cwd=workspace, check=True)
    git(workspace, "add", "-A")
    git(workspace, "commit", "-qm", "Reproduce the baseline")
    git(workspace, "push", "-q", "origin", "main")
    base = git(workspace, "rev-parse", "HEAD")
    git(workspace, "checkout", "-q", "-b", "self-test")
    params = workspace / "params.yaml"
    text = params.read_text(encoding="utf-8")
    if CHANGE[0] not in text:
        raise SystemExit(f"params.yaml has no {CHANGE[0].strip()!r} to change.")
    params.write_text(text.replace(*CHANGE, 1), encoding="utf-8")
    git(workspace, "commit", "-qam", "Give the solver more iterations")
    return base


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["bake", "baseline", "main"])
    args = parser.parse_args(argv)
    # It deletes the checkout it runs in: only ever on a runner's workspace.
    workspace = Path(os.environ.get("GITHUB_WORKSPACE", ""))
    if os.environ.get("GITHUB_ACTIONS") != "true" or Path.cwd() != workspace:
        print("error: the self-test project is made on a runner, in GITHUB_WORKSPACE only.", file=sys.stderr)
        return 1
    if args.step == "bake":
        bake(workspace, Path(os.environ["RUNNER_TEMP"]))
    elif args.step == "main":
        git(workspace, "checkout", "-q", "main")
        git(workspace, "pull", "-q", "--ff-only", "origin", "main")
    else:
        base = baseline(workspace)
        with Path(os.environ["GITHUB_OUTPUT"]).open("a", encoding="utf-8") as output:
            output.write(f"base={base}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
