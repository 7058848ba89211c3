"""Post or update the one sticky pull request comment, speaking CML's watermark protocol over GitHub's REST API."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import gha, github_api
from .github_api import GitHubError

WATERMARK_IMAGE = "https://cml.dev/watermark.png"
# GitHub's comment limit is 65,536 characters; leave room for the watermark and the truncation note.
MAX_BODY = 65_000
# The one place the default poster is named; action.yml's default must agree (tests/test_post_report.py checks).
POSTERS = ("cml", "builtin")
DEFAULT_POSTER = "cml"
# Who GITHUB_TOKEN posts as. GET /user answers 403 to installation tokens, so the login cannot be asked for.
DEFAULT_AUTHOR = "github-actions[bot]"
DEFAULT_SERVER_URL = "https://github.com"
# Any image markdown pointing at CML's watermark, however spelled: CML's own regex is exact and case-sensitive,
# but a looser net costs nothing and also catches what other sticky-comment tools might match.
FORGED_WATERMARK = re.compile(
    r"(!\s*)\[(?=[^\]]{0,200}\]\s*\(\s*<?\s*(?:https?:)?//(?:www\.)?cml\.dev/watermark\.png)", re.IGNORECASE
)
# What GitHub says when cml fails: the last line of its log, cut to fit one annotation.
MAX_REASON = 300
CML_TIMEOUT = 300


def watermark_title(label: str) -> str:
    """CML's watermark title, with the characters GitHub escapes in stored markdown escaped the same way."""
    title = f"CML watermark {label}".strip()
    for char in ("_", "*", "[", "<"):
        title = title.replace(char, "\\" + char)
    return title


def watermark(label: str, sha: str) -> str:
    """The watermark line CML appends: an invisible image whose title marks the comment as ours."""
    return f'![]({WATERMARK_IMAGE}#{sha} "{watermark_title(label)}")'


def has_watermark(body: str, label: str) -> bool:
    """Whether a comment carries the watermark of this label, whatever commit it was made for."""
    pattern = rf'!\[\]\({re.escape(WATERMARK_IMAGE)}#[0-9a-fA-F]+ "{re.escape(watermark_title(label))}"\)'
    return re.search(pattern, body) is not None


def neutralise_watermarks(report: str) -> str:
    """The report with every watermark-shaped image escaped into plain text, so no sticky-comment search matches it."""
    return FORGED_WATERMARK.sub(r"\1\\[", report)


def comment_text(report: str) -> str:
    """The untrusted report made safe to post: forged watermarks neutralised, cut to fit a comment."""
    report = neutralise_watermarks(report)
    if len(report) > MAX_BODY:
        report = report[:MAX_BODY] + "\n\n…the report was cut to fit a comment; the full report is in the job summary."
    return report


def with_watermark(report: str, label: str, sha: str) -> str:
    """The comment body: the safe report followed by the one watermark, ours."""
    return f"{comment_text(report)}\n\n{watermark(label, sha)}"


class GitHub(github_api.GitHub):
    """The few REST calls the poster needs, with retries on rate limits and server errors."""

    def __init__(self, api_url: str, token: str, retries: int = 3, backoff: float = 2.0) -> None:
        super().__init__(api_url, token, retries, backoff, agent="mlgitops-comment")

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Every comment of an issue or pull request, following pagination."""
        return self.paginate(f"/repos/{repo}/issues/{number}/comments?per_page=100")

    def pull(self, repo: str, number: int) -> dict[str, Any]:
        """One pull request."""
        return self.request("GET", f"/repos/{repo}/pulls/{number}")[0]

    def upsert(
        self, repo: str, number: int, body: str, label: str, author: str = DEFAULT_AUTHOR
    ) -> tuple[str, dict[str, Any]]:
        """Update the author's last comment with the label's watermark, or create one; say which, return the comment."""
        # A participant can paste our watermark into their own comment; only what we wrote is ours to edit.
        ours = [
            c
            for c in self.comments(repo, number)
            if str((c.get("user") or {}).get("login", "")).lower() == author.lower()
            and has_watermark(c.get("body") or "", label)
        ]
        if ours:
            comment, _ = self.request("PATCH", f"/repos/{repo}/issues/comments/{ours[-1]['id']}", {"body": body})
            return "updated", comment
        comment, _ = self.request("POST", f"/repos/{repo}/issues/{number}/comments", {"body": body})
        return "created", comment


def target_from(path: Path) -> tuple[str, str]:
    """The pull request number and head commit saved by the report job; validated, as they crossed a trust boundary."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    number, sha = str(data.get("number", "")), str(data.get("head_sha", ""))
    if not number.isdigit() or not re.fullmatch(r"[0-9a-f]{40}", sha):
        raise ValueError(f"{path} does not hold a pull request number and a 40-character commit SHA")
    return number, sha


def server_url() -> str:
    """The web address of the GitHub the runner belongs to (GitHub Enterprise Server too)."""
    url = os.environ.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d+)?(/[\w.~-]+)*/?", url):
        raise GitHubError(f"GITHUB_SERVER_URL {url!r} is not a web address")
    return url.rstrip("/")


def failure_reason(stderr: str) -> str:
    """One line saying why cml failed: its last log line, or the message inside it when that line is JSON."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return "no output"
    reason = lines[-1]
    try:
        # CML logs through winston, which writes an error as one JSON object per line when not on a terminal.
        logged = json.loads(reason)
    except json.JSONDecodeError:
        logged = None
    if isinstance(logged, dict) and logged.get("message"):
        status = logged.get("status")
        reason = f"{logged['message']}{f' ({status})' if status else ''}"
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


def post_with_cml(repo: str, pr: str, report: Path, label: str, token: str) -> str:
    """Let CML post or update the comment from a neutralised copy of the report; return the comment URL CML prints."""
    if shutil.which("cml") is None:
        raise GitHubError("the cml command is not installed (add iterative/setup-cml before this step)")
    # --no-publish: the report is untrusted, and publishing would upload any local file it links to.
    # --repo: the job may have no checkout for CML to read the repository from; CML calls the API of its host.
    command = ["cml", "comment", "update", "--no-publish", "--driver=github", f"--repo={server_url()}/{repo}"]
    # CML reads options from CML_* variables and prefers REPO_TOKEN to GITHUB_TOKEN; this step's inputs decide.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CML_") and key != "repo_token"}
    env["REPO_TOKEN"] = token
    with tempfile.TemporaryDirectory(prefix="post-report-") as folder:
        # CML appends its watermark to the file as it is, so the file must already be safe.
        safe = Path(folder) / "model_report.md"
        safe.write_text(comment_text(report.read_text(encoding="utf-8")), encoding="utf-8")
        command += [f"--target=pr/{pr}", f"--watermark-title={label}", str(safe)]
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CML_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise GitHubError(f"cml comment update did not finish in {CML_TIMEOUT} seconds") from None
    # CML's log can quote the untrusted report; it is shown folded, with workflow commands switched off.
    gha.log_untrusted("cml comment update", done.stdout + done.stderr)
    if done.returncode != 0:
        raise GitHubError(f"cml comment update exited {done.returncode}: {failure_reason(done.stderr)}")
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def main(argv: Sequence[str] | None = None) -> int:
    """Post the report as the sticky comment; API failures are a warning (exit 0), as the gate is the report's job."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.post_report", description=__doc__)
    parser.add_argument("--repo", required=True, help="OWNER/REPO")
    parser.add_argument("--target", required=True, type=Path, help="pull_request.json written by the report job")
    parser.add_argument("--report", required=True, type=Path)
    parser.add_argument("--watermark-title", default="model-report")
    parser.add_argument("--expect-head-sha", default="", help="post only if the saved head commit is this one")
    # An empty --poster (an unset repository variable) means the default, so workflows need not repeat it.
    parser.add_argument("--poster", default="", help=f"{' or '.join(POSTERS)}; empty means {DEFAULT_POSTER}")
    parser.add_argument("--author", default="", help=f"login the token posts as; empty means {DEFAULT_AUTHOR}")
    args = parser.parse_args(argv)
    poster = args.poster.strip() or DEFAULT_POSTER
    if poster not in POSTERS:
        gha.annotate("error", f"refusing to post: the poster {args.poster!r} is none of {', '.join(POSTERS)}")
        return 1

    try:
        pr, sha = target_from(args.target)
    except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
        gha.annotate("error", f"refusing to post: {err}")
        return 1
    if not re.fullmatch(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+", args.repo):
        gha.annotate("error", f"refusing to post: {args.repo!r} is not OWNER/REPO")
        return 1
    if args.expect_head_sha and sha != args.expect_head_sha:
        gha.annotate(
            "error", f"refusing to post: the report is about {sha}, the finished run about {args.expect_head_sha}"
        )
        return 1
    token = os.environ.get("GITHUB_TOKEN", "")
    if not token:
        gha.annotate("warning", "no GITHUB_TOKEN, so the report was not posted; it is in the job summary and artifact")
        return 0
    github = GitHub(os.environ.get("GITHUB_API_URL", "https://api.github.com"), token)
    try:
        head = github.pull(args.repo, int(pr))["head"]["sha"]
        if head != sha:
            # A newer push is being reported on by a newer run; this older report must not overwrite it.
            gha.annotate("warning", f"not posting: pull request #{pr} moved on to {head}; a newer run reports on it")
            return 0
        if poster == "cml":
            url = post_with_cml(args.repo, pr, args.report, args.watermark_title, token)
        else:
            body = with_watermark(args.report.read_text(encoding="utf-8"), args.watermark_title, sha)
            author = args.author.strip() or DEFAULT_AUTHOR
            action, comment = github.upsert(args.repo, int(pr), body, args.watermark_title, author)
            print(f"{action} comment {comment.get('html_url', comment.get('id'))}")
            url = str(comment.get("html_url", ""))
    except GitHubError as err:
        gha.annotate("warning", f"the report was not posted: {err}. It is in the job summary and the run's artifact.")
        return 0
    gha.set_output("comment-url", url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
