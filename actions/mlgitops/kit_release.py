"""Release the kit itself: tag the newest CHANGELOG.md entry `vX.Y.Z`, move its major tag, write its GitHub release.

A tool of the kit's own repository (the release workflow runs it on `main`), not of generated projects: the
template's hook leaves it out of the vendored actions. Re-running is safe: an existing tag is left as it is,
and the release is created only once.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from . import gha
from .github_api import GitHub, GitHubError
from .gitrefs import BOT, auth

ENTRY = re.compile(r"^## (?P<version>\S+)[ \t]*\n(?P<notes>.*?)(?=^## |\Z)", re.MULTILINE | re.DOTALL)
SEMVER = re.compile(r"^(?P<major>0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


class KitReleaseError(RuntimeError):
    """The release cannot go on; the message is one sentence for the user."""


def newest_entry(changelog: str) -> tuple[str, str]:
    """The newest entry's version and notes (the first `## X.Y.Z` section)."""
    found = ENTRY.search(changelog)
    if not found:
        raise KitReleaseError("CHANGELOG.md has no entry: add a `## X.Y.Z` section with the release's notes.")
    version, notes = found.group("version"), found.group("notes").strip()
    if not SEMVER.match(version):
        raise KitReleaseError(f"CHANGELOG.md's newest entry must be a version X.Y.Z, got {version!r}.")
    if not notes:
        raise KitReleaseError(f"CHANGELOG.md's entry {version} has no notes: say what the release changes.")
    return version, notes


def git(args: Sequence[str], cwd: Path, check: bool = True) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise KitReleaseError(f"`git {' '.join(args[:2])}` failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return done.stdout.strip()


def release(root: Path, *, remote: str, token: str, github: GitHub | None, repository: str) -> int:
    version, notes = newest_entry((root / "CHANGELOG.md").read_text(encoding="utf-8"))
    tag, major = f"v{version}", f"v{SEMVER.match(version).group('major')}"  # type: ignore[union-attr]
    head = git(["rev-parse", "HEAD"], root)
    tagged = git(["ls-remote", "--tags", remote, f"refs/tags/{tag}"], root)
    if tagged:
        print(f"{tag} exists already; nothing to tag")
    else:
        identity = ["-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}"]
        git([*identity, "tag", "-a", tag, "-m", f"mlgitops {version}", head], root)
        git(["tag", "-f", major, head], root)
        git([*auth(remote, token), "push", "--quiet", remote, f"refs/tags/{tag}"], root)
        # The major tag moves to each release of its line: users who follow v1 get it; pinned SHAs do not move.
        git([*auth(remote, token), "push", "--quiet", "--force", remote, f"refs/tags/{major}"], root)
        print(f"tagged {head[:12]} {tag} and moved {major} to it")
    gha.set_output("tag", tag)
    if github is None:
        return 0
    try:
        github.request("GET", f"/repos/{repository}/releases/tags/{tag}")
        print(f"the GitHub release {tag} exists already")
        return 0
    except GitHubError as err:
        if err.status != 404:
            raise
    body = notes + f"\n\nPin the actions by this release's commit: `{head}`."
    payload = {"tag_name": tag, "name": f"mlgitops {version}", "body": body}
    github.request("POST", f"/repos/{repository}/releases", payload)
    print(f"wrote the GitHub release {tag}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlgitops.kit_release", description=__doc__)
    parser.add_argument("--remote", default="", help="where to push the tags (default: the repository on GitHub)")
    parser.add_argument("--no-github-release", action="store_true", help="tag only")
    args = parser.parse_args(argv)
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    try:
        github = None if args.no_github_release else GitHub.from_env(needs="contents: write")
        if github is not None and not repository:
            raise KitReleaseError("GITHUB_REPOSITORY is not set, so there is no repository to write the release in.")
        remote = args.remote or f"{server}/{repository}.git"
        token = os.environ.get("GITHUB_TOKEN", "")
        return release(Path.cwd(), remote=remote, token=token, github=github, repository=repository)
    except (KitReleaseError, GitHubError) as err:
        gha.annotate("error", str(err))
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
