"""Keep a generated project on its template's newest version: one pull request, reused, conflicts listed.

cruft records the template and the commit a project was rendered from (`.cruft.json`). This runs `cruft update`
on a branch of its own with the template's hooks in update mode (`MLGITOPS_TEMPLATE_UPDATE=1`: they add nothing
from outside the template, no data, no git repository, no pipeline run), commits what changed, lists every hunk
cruft's three-way merge left in conflict (committed with their markers) or could not apply at all (its `.rej`
files, not committed) in the pull request's body, pushes the branch and opens the pull request, or updates the
one already open. A project already on the newest version is left alone.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from . import gha
from . import markdown as md
from .github_api import GitHub, GitHubError
from .gitrefs import BOT, auth

BRANCH = "template-update"
TITLE = "Update from the template"
CRUFT_FILE = ".cruft.json"
UPDATE_VARIABLE = "MLGITOPS_TEMPLATE_UPDATE"
# How much of each rejected hunk the pull request's body shows (GitHub caps a body at 65,536 characters).
SHOWN_REJECT = 4000


class UpdateError(RuntimeError):
    """The update cannot go on; the message is one sentence for the user."""


def git(args: Sequence[str], cwd: Path, *, check: bool = True, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, env=env, check=False)
    if check and done.returncode != 0:
        raise UpdateError(f"`git {' '.join(args[:2])}` failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return done.stdout.strip()


def record(project: Path) -> dict:
    """The project's `.cruft.json`: where its template lives and the commit it was rendered from."""
    path = project / CRUFT_FILE
    if not path.is_file():
        raise UpdateError(
            f"{CRUFT_FILE} is missing, so the project does not say which template version made it: run "
            "`cruft link <the template's git URL>` in the project and commit the file."
        )
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UpdateError(f"{CRUFT_FILE} is not valid JSON ({err.msg} at line {err.lineno}).") from None
    if not isinstance(found, dict) or not found.get("template") or not found.get("commit"):
        raise UpdateError(f"{CRUFT_FILE} must name the template and its commit, as `cruft create` writes it.")
    return found


def cruft(args: Sequence[str], project: Path) -> subprocess.CompletedProcess[str]:
    """cruft, with the template's hooks in update mode."""
    env = {**os.environ, UPDATE_VARIABLE: "1"}
    return subprocess.run(
        [sys.executable, "-m", "cruft", *args], cwd=project, capture_output=True, text=True, env=env, check=False
    )


def rejected(project: Path) -> dict[str, str]:
    """The hunks cruft could not apply, by file (its `.rej` files), which are then removed from the workspace."""
    found: dict[str, str] = {}
    listed = git(["ls-files", "--others", "--exclude-standard", "-z"], project).split("\0")
    for name in sorted(filter(None, listed)):
        if name.endswith(".rej"):
            path = project / name
            found[name.removesuffix(".rej")] = path.read_text(encoding="utf-8", errors="replace")
            path.unlink()
    return found


def unmerged(project: Path) -> dict[str, str]:
    """Files where cruft's three-way merge left conflict markers, with the conflicting regions."""
    found: dict[str, str] = {}
    for name in git(["diff", "--name-only", "--diff-filter=U"], project).splitlines():
        text = (project / name).read_text(encoding="utf-8", errors="replace")
        regions = re.findall(r"^<<<<<<< .*?^>>>>>>> [^\n]*$", text, re.MULTILINE | re.DOTALL)
        found[name] = "\n".join(regions)
    return found


def body_of(template: str, before: str, after: str, changed: list[str], conflicts: dict[str, str]) -> str:
    """The pull request's body: the versions, the files changed, and every hunk left for a person."""
    lines = [
        f"The template {md.code(template)} moved from {md.code(before[:12])} to {md.code(after[:12])}; this pull "
        "request applies what changed between the two renders of your answers, with `cruft update`.",
        "",
    ]
    if conflicts:
        lines += [
            f"### ⚠️ {len(conflicts)} file(s) need a person",
            "",
            "The project changed the same lines as the template. A file with conflict markers is committed as it "
            "is (its `<<<<<<< ours` side is the project's, `>>>>>>> theirs` the template's; pre-commit fails until "
            "they are resolved); a hunk that did not apply at all is shown here only. Resolve each on this branch "
            "and push:",
            "",
        ]
        for name, hunk in conflicts.items():
            shown = hunk if len(hunk) <= SHOWN_REJECT else hunk[:SHOWN_REJECT] + "\n... (cut)"
            summary = f"<details><summary>{md.text(name)}</summary>"
            lines += [summary, "", md.fenced(shown, "diff"), "", "</details>", ""]
    else:
        lines += ["Every change applied cleanly.", ""]
    lines += [f"Files changed ({len(changed)}):", "", *(f"- {md.code(name)}" for name in changed), ""]
    lines += [
        "Review it like any change: the project's CI and model report run on this pull request when it was "
        "opened with a token that starts workflows (the `TEMPLATE_UPDATE_TOKEN` secret: a GitHub App's)."
    ]
    return "\n".join(lines)


def touched_by_a_person(project: Path, remote: str, token: str) -> str | None:
    """Who last committed to the remote update branch, when it is not this workflow (None otherwise)."""
    if not git([*auth(remote, token), "ls-remote", remote, f"refs/heads/{BRANCH}"], project):
        return None
    git([*auth(remote, token), "fetch", "--quiet", remote, f"refs/heads/{BRANCH}"], project)
    author = git(["log", "-1", "--format=%an <%ae>", "FETCH_HEAD"], project)
    return None if author == f"{BOT[0]} <{BOT[1]}>" else author


def open_or_update(github: GitHub, repository: str, base: str, body: str) -> tuple[str, dict]:
    """The one pull request of the update branch: updated when open, opened otherwise."""
    owner = repository.split("/")[0]
    found = github.paginate(f"/repos/{repository}/pulls?state=open&head={owner}:{BRANCH}&per_page=100")
    if found:
        pull, _ = github.request("PATCH", f"/repos/{repository}/pulls/{found[0]['number']}", {"body": body})
        return "updated", pull
    payload = {"title": TITLE, "head": BRANCH, "base": base, "body": body}
    pull, _ = github.request("POST", f"/repos/{repository}/pulls", payload)
    return "opened", pull


def update(project: Path, *, repository: str, base: str, remote: str, token: str, github: GitHub | None) -> int:
    """Run the update; 0 when the project is current or the pull request is open with the update."""
    before = record(project)
    checked = cruft(["check"], project)
    if checked.returncode == 0:
        print(f"the project is on the template's newest commit ({before['commit'][:12]}): nothing to update")
        gha.set_output("pull-request", "")
        return 0
    person = touched_by_a_person(project, remote, token)
    if person:
        # Their conflict resolutions live there: a force-push would throw them away.
        print(f"{BRANCH} has commits by {person}: left as it is; merge or delete it to get the next update")
        gha.set_output("pull-request", "")
        return 0
    git(["checkout", "--quiet", "-B", BRANCH], project)
    done = cruft(["update", "--skip-apply-ask", "--allow-untracked-files"], project)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or done.stdout.strip().splitlines() or ["no output"])[-1]
        raise UpdateError(f"cruft update failed: {reason}")
    conflicts = unmerged(project) | rejected(project)
    after = record(project)["commit"]
    git(["add", "--all"], project)
    changed = git(["diff", "--cached", "--name-only"], project).splitlines()
    identity = ["-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}"]
    git([*identity, "commit", "--quiet", "--no-verify", "-m", f"{TITLE} ({after[:12]})"], project)
    git([*auth(remote, token), "push", "--force", "--quiet", remote, f"HEAD:refs/heads/{BRANCH}"], project)
    body = body_of(str(before["template"]), str(before["commit"]), after, changed, conflicts)
    gha.add_summary(f"## {TITLE}\n\n{body}")
    if github is None:
        print(body)
        return 0
    how, pull = open_or_update(github, repository, base, body)
    print(f"{how} pull request #{pull['number']}: {len(changed)} file(s), {len(conflicts)} conflict(s)")
    gha.set_output("pull-request", str(pull["number"]))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlgitops.template_update", description=__doc__)
    parser.add_argument("--base", default="main", help="the branch the pull request targets")
    parser.add_argument("--remote", default="", help="where to push (default: the repository on GitHub)")
    parser.add_argument("--no-pull-request", action="store_true", help="push the branch, print the body")
    args = parser.parse_args(argv)
    repository = os.environ.get("GITHUB_REPOSITORY", "")
    token = os.environ.get("GITHUB_TOKEN", "")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    remote = args.remote or f"{server}/{repository}.git"
    try:
        if not args.no_pull_request and not repository:
            raise UpdateError("GITHUB_REPOSITORY is not set, so there is no repository to open the pull request in.")
        github = None if args.no_pull_request else GitHub.from_env(needs="pull-requests: write")
        return update(Path.cwd(), repository=repository, base=args.base, remote=remote, token=token, github=github)
    except (UpdateError, GitHubError) as err:
        gha.annotate("error", str(err))
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
