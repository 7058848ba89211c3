"""Read files as another git revision holds them (coping with shallow clones and revisions that lack them), and
authenticate a workflow's pushes."""

from __future__ import annotations

import base64
import json
import subprocess
from typing import Any

# The identity commits made by a workflow carry (GitHub's own for GITHUB_TOKEN's bot).
BOT = ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com")


def auth(remote: str, token: str) -> list[str]:
    """git options that authenticate to an https remote with the token, the way actions/checkout does."""
    if not token or not remote.startswith("https://"):
        return []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return ["-c", f"http.{'/'.join(remote.split('/')[:3])}/.extraheader=AUTHORIZATION: basic {basic}"]


def git(*args: str) -> subprocess.CompletedProcess[str]:
    """Run git quietly; callers decide what a failure means."""
    return subprocess.run(["git", *args], capture_output=True, text=True, check=False)


def has_commit(ref: str) -> bool:
    """Whether the revision is in this clone; a shallow clone is deepened once to find it."""
    if not ref or ref.startswith("-"):
        return False  # never let a revision be read as an option
    if git("cat-file", "-e", f"{ref}^{{commit}}").returncode == 0:
        return True
    git("fetch", "--quiet", "--depth=1", "origin", ref)
    return git("cat-file", "-e", f"{ref}^{{commit}}").returncode == 0


def show(ref: str, path: str) -> str | None:
    """The file's text at the revision, or None when the revision or the file is not there."""
    if not ref or not has_commit(ref):
        return None
    result = git("show", f"{ref}:{path}")
    return result.stdout if result.returncode == 0 else None


def show_json(ref: str, path: str) -> Any:
    """The JSON file at the revision, or None when missing or unreadable."""
    text = show(ref, path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def tracked(ref: str = "HEAD") -> set[str]:
    """Every file path the revision holds (empty when the revision is not there)."""
    if not has_commit(ref):
        return set()
    result = git("ls-tree", "-r", "--name-only", "-z", ref)
    return set(filter(None, result.stdout.split("\0"))) if result.returncode == 0 else set()


def changed_files(base: str, paths: tuple[str, ...], head: str = "HEAD") -> list[str]:
    """Files under the paths that differ between the base revision and head (empty when either is missing)."""
    if not has_commit(base):
        return []
    result = git("diff", "--name-only", "-z", base, head, "--", *paths)
    return list(filter(None, result.stdout.split("\0"))) if result.returncode == 0 else []
