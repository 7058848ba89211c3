"""Publish a release's public files as a GitHub Release with assets, and fetch an asset back, over GitHub's REST API."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from . import gha
from .github_api import GitHub, GitHubError

NEEDS = "contents: write"
REPO = re.compile(r"[A-Za-z0-9-]+/[A-Za-z0-9._-]+")
# Names GitHub keeps as they are: it renames asset names with other characters or a leading or trailing dot.
ASSET_NAME = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9_-])?")
TEMPLATE_EXPRESSION = re.compile(r"\{([+#./;?&]?)([A-Za-z0-9_,]+)\}")
CHUNK = 1 << 20


def expand(template: str, **values: str | None) -> str:
    """An RFC 6570 URI template (level 3, as GitHub's hypermedia URLs use) with the given values; None drops one."""

    def expression(match: re.Match[str]) -> str:
        operator, names = match.group(1), match.group(2).split(",")
        # Reserved expansion keeps reserved characters; every other operator encodes all but unreserved ones.
        safe = ":/?#[]@!$&'()*+,;=" if operator in "+#" else ""
        defined = [(name, quote(str(values[name]), safe=safe)) for name in names if values.get(name) is not None]
        if not defined:
            return ""
        if operator in "?&":
            return operator + "&".join(f"{name}={value}" for name, value in defined)
        if operator == ";":
            return "".join(f";{name}={value}" if value else f";{name}" for name, value in defined)
        first, separator = {"": ("", ","), "+": ("", ","), "#": ("#", ","), ".": (".", "."), "/": ("/", "/")}[operator]
        return first + separator.join(value for _, value in defined)

    return TEMPLATE_EXPRESSION.sub(expression, template)


def _client(github: GitHub | None) -> GitHub:
    return github if github is not None else GitHub.from_env(needs=NEEDS, agent="mlgitops-release")


def _check_repo(repo: str) -> None:
    if not REPO.fullmatch(repo):
        raise GitHubError(f"{repo!r} is not OWNER/REPO")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def release_by_tag(repo: str, tag: str, *, github: GitHub | None = None) -> dict[str, Any] | None:
    """The published release of a tag, or None when the tag has none."""
    _check_repo(repo)
    try:
        return _client(github).request("GET", f"/repos/{repo}/releases/tags/{quote(tag, safe='')}")[0]
    except GitHubError as err:
        if err.status == 404:
            return None
        raise


def draft_by_tag(repo: str, tag: str, *, github: GitHub | None = None) -> dict[str, Any] | None:
    """The draft release of a tag, which only the list of releases shows (to a token with push access)."""
    _check_repo(repo)
    releases = _client(github).paginate(f"/repos/{repo}/releases?per_page=100")
    return next((r for r in releases if r.get("draft") and r.get("tag_name") == tag), None)


def assets(repo: str, release: dict[str, Any], *, github: GitHub | None = None) -> list[dict[str, Any]]:
    """Every asset of a release, following pagination (the release object may list only some)."""
    return _client(github).paginate(f"/repos/{repo}/releases/{release['id']}/assets?per_page=100")


def _differs(asset: dict[str, Any], path: Path) -> str | None:
    """Why an uploaded asset is not the file (size, digest or an unfinished upload), or None when it is the same."""
    if asset.get("state") != "uploaded":
        return f"its upload never finished (state {asset.get('state')!r}); delete it on GitHub and publish again"
    size = path.stat().st_size
    if asset.get("size") != size:
        return f"it has {asset.get('size')} bytes and {path} has {size}"
    # GitHub records a sha256 digest of assets uploaded since mid-2025; older ones have none to compare.
    digest = asset.get("digest")
    if digest and digest != f"sha256:{_sha256(path)}":
        return f"its digest {digest} is not the sha256 of {path}"
    return None


def publish(
    repo: str,
    tag: str,
    *,
    name: str,
    body: str,
    files: Sequence[Path],
    target_commitish: str,
    github: GitHub | None = None,
) -> str:
    """Make the release of the tag (or reuse it) carry the files as assets; return its html_url.

    A new release is created as a draft and published once every asset is uploaded: nobody sees it half made,
    and a repository with immutable releases (no assets added after publishing) takes it too. Re-running is safe:
    a draft left by a stopped run is completed, an asset already there with the same name, size and digest is
    kept, and one that differs is an error naming it, as a published file never changes under the same name.
    """
    _check_repo(repo)
    client = _client(github)
    paths = [Path(path) for path in files]
    for path in paths:
        if not path.is_file():
            raise GitHubError(f"{path} is not a file, so it cannot be a release asset")
        if not ASSET_NAME.fullmatch(path.name):
            raise GitHubError(
                f"GitHub would rename the asset {path.name!r}: name it with letters, digits, '.', '_', '-' only, "
                "not starting or ending with a dot"
            )
    names = [path.name for path in paths]
    if len(set(names)) != len(names):
        raise GitHubError(f"two files are named {next(n for n in names if names.count(n) > 1)}, and assets are by name")

    release = release_by_tag(repo, tag, github=client) or draft_by_tag(repo, tag, github=client)
    if release is None:
        payload = {"tag_name": tag, "target_commitish": target_commitish, "name": name, "body": body, "draft": True}
        release = client.request("POST", f"/repos/{repo}/releases", payload)[0]
    existing = {asset["name"]: asset for asset in assets(repo, release, github=client)}
    for path in paths:
        asset = existing.get(path.name)
        if asset is None:
            client.upload(expand(release["upload_url"], name=path.name, label=None), path)
            print(f"uploaded {path.name} to the release {tag}")
            continue
        reason = _differs(asset, path)
        if reason is not None:
            raise GitHubError(f"the release {tag} of {repo} already has an asset {path.name} that differs: {reason}")
        print(f"kept {path.name}: the release {tag} already has it")
    if release.get("draft"):
        try:
            release = client.request("PATCH", f"/repos/{repo}/releases/{release['id']}", {"draft": False})[0]
        except GitHubError as err:
            if err.status != 422:
                raise
            # The release workflow serializes releases, so this is someone publishing the tag by hand meanwhile.
            raise GitHubError(
                f"the tag {tag} of {repo} got a published release while this one was a draft; the draft "
                f"{release['html_url']} is left to compare and delete",
                422,
            ) from None
        print(f"published the release {tag}")
    return str(release["html_url"])


def download(repo: str, tag: str, name: str, dest: Path, *, github: GitHub | None = None) -> Path:
    """Fetch a release's asset by name to dest (a file, or a folder for it), checked against its size and digest."""
    client = _client(github)
    release = release_by_tag(repo, tag, github=client)
    if release is None:
        raise GitHubError(f"{repo} has no published release tagged {tag}")
    found = {asset["name"]: asset for asset in assets(repo, release, github=client)}
    if name not in found:
        listed = ", ".join(sorted(found)) or "none"
        raise GitHubError(f"the release {tag} of {repo} has no asset named {name}; its assets: {listed}")
    asset = found[name]
    dest = Path(dest)
    target = dest / name if dest.is_dir() else dest
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        client.download(str(asset["url"]), partial)
        size, digest = partial.stat().st_size, f"sha256:{_sha256(partial)}"
        if size != asset.get("size") or (asset.get("digest") and digest != asset["digest"]):
            raise GitHubError(
                f"the asset {name} of the release {tag} arrived as {size} bytes with {digest}, not the "
                f"{asset.get('size')} bytes with {asset.get('digest') or 'no recorded digest'} GitHub lists"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """`publish` the files as the tag's release and print its URL, or `download` one asset of it."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.github_release", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    publishing = commands.add_parser("publish", help="create or complete the tag's release with the files")
    publishing.add_argument("--repo", required=True, help="OWNER/REPO")
    publishing.add_argument("--tag", required=True)
    publishing.add_argument("--name", required=True, help="the release's title")
    publishing.add_argument("--body-file", required=True, type=Path, help="markdown file with the release notes")
    publishing.add_argument("--target-commitish", default="", help="commit to tag; empty means $GITHUB_SHA")
    publishing.add_argument("files", nargs="+", type=Path)
    fetching = commands.add_parser("download", help="fetch one asset of the tag's release")
    fetching.add_argument("--repo", required=True, help="OWNER/REPO")
    fetching.add_argument("--tag", required=True)
    fetching.add_argument("--asset", required=True, help="the asset's name")
    fetching.add_argument("--dest", required=True, type=Path, help="file to write, or folder to put it in")
    args = parser.parse_args(argv)
    try:
        if args.command == "publish":
            commitish = args.target_commitish or os.environ.get("GITHUB_SHA", "")
            if not commitish:
                raise GitHubError("name the commit to release with --target-commitish (or run where GITHUB_SHA is set)")
            try:
                body = args.body_file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                raise GitHubError(f"the release notes {args.body_file} cannot be read: {err}") from None
            url = publish(args.repo, args.tag, name=args.name, body=body, files=args.files, target_commitish=commitish)
            print(url)
            gha.set_output("url", url)
        else:
            path = download(args.repo, args.tag, args.asset, args.dest)
            print(path)
            gha.set_output("path", str(path))
    except GitHubError as err:
        gha.annotate("error", str(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
