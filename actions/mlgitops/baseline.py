"""The base branch's results: as its commit holds them, or reproduced by CI when the commit holds none.

A project baked by a Python without the pipeline's packages starts with no committed results, so its
first pull request would have nothing to compare with. Then the base commit is checked out in a git
worktree beside the workspace and its own pipeline is run once; every step of the job reads the same
reproduced results, labelled as such in the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gitrefs

LOCK = "dvc.lock"
MARKER = ".mlgitops-baseline.json"


@dataclass(frozen=True)
class Baseline:
    """Where the base branch's results come from: "committed", "reproduced", or "" when there are none."""

    ref: str
    source: str
    root: Path | None = None
    error: str = ""

    @property
    def label(self) -> str:
        """How the report names the base column."""
        return "base (reproduced by CI)" if self.source == "reproduced" else "base"

    def show(self, path: str) -> str | None:
        """A result file's text on the base branch, or None."""
        if self.source == "committed":
            return gitrefs.show(self.ref, path)
        if self.source == "reproduced" and self.root is not None and (self.root / path).is_file():
            return (self.root / path).read_text(encoding="utf-8")
        return None

    def show_json(self, path: str) -> Any:
        """A JSON result on the base branch, or None when missing or unreadable."""
        text = self.show(path)
        try:
            return None if text is None else json.loads(text)
        except json.JSONDecodeError:
            return None


def workdir_for(sha: str) -> Path:
    """One folder per base commit outside the workspace, shared by the steps of a job."""
    return Path(os.environ.get("RUNNER_TEMP") or tempfile.gettempdir()) / f"mlgitops-base-{sha[:12]}"


def reproduce(ref: str, sha: str, root: Path) -> str:
    """Check the base commit out in a worktree and run its pipeline there; return an error text or ''."""
    added = gitrefs.git("worktree", "add", "--detach", "--force", str(root), sha)
    if added.returncode != 0:
        return f"could not check out {ref}: {added.stderr.strip()[-300:]}"
    env = dict(os.environ)
    # The base's own code, not the pull request's installed copy, computes the base's results.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root / "src"), env.get("PYTHONPATH")]))
    done = subprocess.run(["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " ".join((done.stdout + done.stderr).strip().splitlines()[-3:])
        return f"the base commit's pipeline failed: {tail}"
    return ""


def resolve(ref: str, wanted: str = "", workdir: Path | None = None) -> Baseline:
    """The base's results; when its commit holds none (no dvc.lock, no `wanted`), reproduced once per job."""
    if not ref or not gitrefs.has_commit(ref):
        return Baseline(ref, "")
    if gitrefs.show(ref, LOCK) is not None or (wanted and gitrefs.show(ref, wanted) is not None):
        return Baseline(ref, "committed")
    sha = gitrefs.git("rev-parse", f"{ref}^{{commit}}").stdout.strip()
    root = workdir or workdir_for(sha)
    marker = root / MARKER
    if not marker.is_file():
        error = reproduce(ref, sha, root)
        root.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"sha": sha, "error": error}) + "\n", encoding="utf-8")
    state = json.loads(marker.read_text(encoding="utf-8"))
    if state.get("error"):
        return Baseline(ref, "", root, state["error"])
    return Baseline(ref, "reproduced", root)
