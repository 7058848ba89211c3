"""The GitOps state of each environment: `releases/<environment>.yaml`, its transitions, and safe commits of it.

One file per environment says which release is live there (version, Bento, model, archive digest, commit,
URL, when and by whom) and keeps the story of every release that went through it (`history`, newest
last). A promotion in flight is `pending`, so a run killed midway leaves a trace the next run recovers
from. The transitions below are pure functions of a state; `commit_state` writes one as a commit on top
of the state branch and pushes it, retrying on a fresh copy when another run pushed first
(compare-and-swap), without touching the workspace's checkout.
"""

from __future__ import annotations

import base64
import os
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

FORMAT = 1
STATE_DIR = "releases"
# Outcomes of a history entry: live now; replaced by a newer release; failed before going live; rolled
# back after going live; superseded (a newer release was live already); interrupted (its run was killed).
OUTCOMES = ("live", "replaced", "failed", "rolled-back", "superseded", "interrupted")
HEADER = (
    "# Written by the release workflow: which release serves {environment}, and the story of each one that\n"
    "# went through it (newest last). Every change is a commit that says why; edit it only to repair it.\n"
)
MAX_REASON = 500
PUSH_ATTEMPTS = 10


class StateError(RuntimeError):
    """A state file or state commit the kit cannot use; the message is one sentence for the user."""


def now() -> str:
    """The current time as the state files write it: UTC, to the second."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def empty(environment: str) -> dict[str, Any]:
    """The state of an environment nothing was ever released to."""
    return {"format": FORMAT, "environment": environment, "live": None, "pending": None, "history": []}


def path_of(environment: str) -> str:
    """Where the environment's state lives in the repository."""
    return f"{STATE_DIR}/{environment}.yaml"


def parse(text: str | None, environment: str) -> dict[str, Any]:
    """The state from a file's text; a missing file is an environment nothing was released to."""
    if text is None or not text.strip():
        return empty(environment)
    try:
        state = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise StateError(f"{path_of(environment)} is not valid YAML: {str(err).splitlines()[0]}.") from None
    if not isinstance(state, dict) or not isinstance(state.get("history", []), list):
        raise StateError(f"{path_of(environment)} must be a mapping with a `history` list.")
    if isinstance(state.get("format", FORMAT), int) and state.get("format", FORMAT) > FORMAT:
        raise StateError(f"{path_of(environment)} is written in a newer format than this kit reads; update the kit.")
    return {**empty(environment), **state, "environment": environment}


def render(state: dict[str, Any]) -> str:
    """The file's text: a header, then the state in a stable key order."""
    ordered = {key: state.get(key) for key in ("format", "environment", "live", "pending", "history")}
    return HEADER.format(environment=state["environment"]) + yaml.safe_dump(
        ordered, sort_keys=False, allow_unicode=True, width=100
    )


def entry(release: dict[str, Any], outcome: str, reason: str, at: str, by: str = "") -> dict[str, Any]:
    """One history entry for a release."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}")
    item = {"version": release["version"], "digest": release.get("digest"), "outcome": outcome}
    item["reason"] = " ".join(str(reason).split())[:MAX_REASON]
    item["at"] = at
    if by:
        item["by"] = by
    return item


def live_record(release: dict[str, Any], url: str, at: str, by: str, verified: dict[str, Any]) -> dict[str, Any]:
    """The `live:` block for a release that passed verification in the environment."""
    return {
        "version": release["version"],
        "bento": release["bento"],
        "model": release["model"],
        "digest": release["digest"],
        **({"image": release["image"]} if release.get("image") else {}),
        "commit": release["commit"],
        "url": url,
        "at": at,
        "by": by,
        "verified": verified,
    }


def begin(state: dict[str, Any], release: dict[str, Any], at: str, by: str) -> dict[str, Any]:
    """The state once a promotion of the release has started."""
    pending = {"version": release["version"], "digest": release["digest"], "started_at": at, "by": by}
    return {**state, "pending": pending}


def _close_live(history: list[dict[str, Any]], version: str, outcome: str, reason: str, at: str) -> None:
    """Mark the live release's newest `live` entry with how its time as the live release ended."""
    for item in reversed(history):
        if item.get("version") == version and item.get("outcome") == "live":
            item.update(outcome=outcome, reason=reason, ended_at=at)
            return


def went_live(
    state: dict[str, Any], release: dict[str, Any], url: str, at: str, by: str, verified: dict[str, Any], reason: str
) -> dict[str, Any]:
    """The state once the release serves the environment and passed verification."""
    history = [dict(item) for item in state["history"]]
    previous = state.get("live")
    if previous and previous["version"] != release["version"]:
        _close_live(history, previous["version"], "replaced", f"replaced by {release['version']}", at)
    history.append(entry(release, "live", reason, at, by))
    return {**state, "live": live_record(release, url, at, by, verified), "pending": None, "history": history}


def failed(state: dict[str, Any], release: dict[str, Any], reason: str, at: str, by: str) -> dict[str, Any]:
    """The state once the release failed before going live: the live release is unchanged."""
    history = [*state["history"], entry(release, "failed", reason, at, by)]
    return {**state, "pending": None, "history": history}


def rolled_back(
    state: dict[str, Any],
    to: dict[str, Any],
    url: str,
    reason: str,
    at: str,
    by: str,
    verified: dict[str, Any],
) -> dict[str, Any]:
    """The state once the environment serves `to` again instead of its live release, which is marked rolled back."""
    history = [dict(item) for item in state["history"]]
    previous = state.get("live")
    if previous:
        _close_live(history, previous["version"], "rolled-back", reason, at)
    history.append(entry(to, "live", f"rollback: {reason}", at, by))
    return {**state, "live": live_record(to, url, at, by, verified), "pending": None, "history": history}


def closed(state: dict[str, Any], release: dict[str, Any], outcome: str, reason: str, at: str, by: str) -> dict:
    """The state once a release is recorded as not going live for a reason other than failing (e.g. superseded)."""
    return {**state, "pending": None, "history": [*state["history"], entry(release, outcome, reason, at, by)]}


def previous_good(state: dict[str, Any]) -> str | None:
    """The newest release before the live one that served the environment and was replaced, not rolled back."""
    live = (state.get("live") or {}).get("version")
    for item in reversed(state["history"]):
        if item.get("outcome") == "replaced" and item.get("version") != live:
            return item["version"]
    return None


# --- git: the state branch, read and written without touching the workspace's checkout ---


def _git(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], capture_output=True, text=True, env=env, check=False)
    if check and result.returncode != 0:
        raise StateError(f"`git {' '.join(args[:2])}` failed: {(result.stderr or result.stdout).strip()[-300:]}")
    return result


def _auth(remote: str) -> list[str]:
    """git options that let GITHUB_TOKEN push over HTTPS; nothing for other remotes or without a token."""
    url = _git("remote", "get-url", remote, check=False).stdout.strip()
    token = os.environ.get("GITHUB_TOKEN", "")
    if not token or not url.startswith("https://"):
        return []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    host = url.split("/", 3)[2].split("@")[-1]
    return ["-c", f"http.https://{host}/.extraheader=AUTHORIZATION: basic {basic}"]


class StateBranch:
    """The branch that holds `releases/`, fetched from and pushed to a remote."""

    def __init__(self, branch: str = "main", remote: str = "origin") -> None:
        self.branch, self.remote = branch, remote
        self.ref = f"refs/mlgitops/state/{branch}"

    def fetch(self) -> str:
        """Fetch the branch's newest commit into a private ref and return its SHA."""
        _git(*_auth(self.remote), "fetch", "--quiet", "--no-tags", self.remote, f"+refs/heads/{self.branch}:{self.ref}")
        return _git("rev-parse", self.ref).stdout.strip()

    def read(self, environment: str, commit: str | None = None) -> dict[str, Any]:
        """The environment's state at the commit (the newest fetched one by default)."""
        shown = _git("show", f"{commit or self.ref}:{path_of(environment)}", check=False)
        return parse(shown.stdout if shown.returncode == 0 else None, environment)

    def update(
        self, environment: str, change: Callable[[dict[str, Any]], dict[str, Any] | None], message: Callable[..., str]
    ) -> tuple[dict[str, Any], str | None]:
        """Apply `change` to the newest state and push it as one commit; retry on a fresher copy if the push loses.

        `change` returns the new state, or None when there is nothing to write (no commit is made).
        Returns the state written (or read) and the commit made (None when none was).
        """
        written: dict[str, Any] = {}

        def edit(text: str | None, _parent: str) -> tuple[str, str] | None:
            current = parse(text, environment)
            new = change(current)
            written.clear()
            written.update(new if new is not None else current)
            if new is None or render(new) == render(current):
                return None
            return render(new), message(current, new)

        commit = self.update_file(path_of(environment), edit, what=f"the state of {environment}")
        return written, commit

    def update_file(
        self, path: str, edit: Callable[[str | None, str], tuple[str, str] | None], *, what: str = ""
    ) -> str | None:
        """Replace one file of the branch by `edit(its text or None, parent commit)` -> (new text, commit message),
        pushed as one commit; None from `edit` writes nothing. Retries on a fresher copy when another run pushed
        first (compare-and-swap). Returns the commit made, or None."""
        what = what or path
        for _ in range(PUSH_ATTEMPTS):
            parent = self.fetch()
            shown = _git("show", f"{parent}:{path}", check=False)
            edited = edit(shown.stdout if shown.returncode == 0 else None, parent)
            if edited is None:
                return None
            text, subject = edited
            # [skip ci]: a state commit pushed with a token that does start workflows must not start a release.
            commit = self._commit(parent, path, text, f"{subject}\n\n[skip ci]")
            pushed = _git(
                *_auth(self.remote), "push", "--quiet", self.remote, f"{commit}:refs/heads/{self.branch}", check=False
            )
            if pushed.returncode == 0:
                _git("update-ref", self.ref, commit)
                return commit
            if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr and "stale" not in pushed.stderr:
                raise StateError(f"pushing {what} failed: {pushed.stderr.strip()[-300:]}")
        raise StateError(f"{what} kept changing under this run; {PUSH_ATTEMPTS} pushes lost.")

    def last_change(self, path: str) -> tuple[str, str] | None:
        """The newest commit of the branch that changed `path`, and its subject; None when none did."""
        shown = _git("log", "-1", "--format=%H%x00%s", self.ref, "--", path, check=False).stdout.strip()
        if not shown:
            return None
        commit, _, subject = shown.partition("\x00")
        return commit, subject

    @staticmethod
    def show(commit: str, path: str) -> str | None:
        """The file's text at the commit, or None when the commit has no such file."""
        shown = _git("show", f"{commit}:{path}", check=False)
        return shown.stdout if shown.returncode == 0 else None

    @staticmethod
    def _commit(parent: str, path: str, text: str, message: str) -> str:
        """A commit on `parent` with the one file replaced, built in a private index."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            blob = subprocess.run(
                ["git", "hash-object", "-w", "--stdin"], input=text, capture_output=True, text=True, check=True
            ).stdout.strip()
            _git("read-tree", parent, env=env)
            _git("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
            tree = _git("write-tree", env=env).stdout.strip()
        identity = {
            "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", "github-actions[bot]"),
            "GIT_AUTHOR_EMAIL": os.environ.get(
                "GIT_AUTHOR_EMAIL", "41898282+github-actions[bot]@users.noreply.github.com"
            ),
        }
        identity["GIT_COMMITTER_NAME"] = os.environ.get("GIT_COMMITTER_NAME", identity["GIT_AUTHOR_NAME"])
        identity["GIT_COMMITTER_EMAIL"] = os.environ.get("GIT_COMMITTER_EMAIL", identity["GIT_AUTHOR_EMAIL"])
        return _git("commit-tree", tree, "-p", parent, "-m", message, env={**os.environ, **identity}).stdout.strip()
