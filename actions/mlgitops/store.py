"""Where release artifacts live: a folder or a DVC remote, one immutable folder per release, served only verified.

A store is addressed by a URL: `/abs/path` or `file:///abs/path` for a folder, `dvc://NAME` for the project's DVC
remote NAME (`dvc://` for its default remote). Releases are laid out as `<root>/<project>/<version>/<files>`; in a
DVC remote the root is its `releases/` folder, beside DVC's own `files/` and `runs/`.

A release is complete once its `SHA256SUMS` (the checksum of every file, `sha256sum -c` can read it) is written,
last: a killed upload leaves no such file, so it is never listed or served, and the next upload replaces it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from . import gha

MANIFEST = "release.json"
SUMS = "SHA256SUMS"
# The folder of a DVC remote that holds releases: outside DVC's content-addressed layout, so `dvc gc` never sees it.
RELEASES = "releases"
# Plain file names only: no separators, no `..`, nothing hidden (temporary files start with a dot).
NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")
DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
CHUNK = 1 << 20


class StoreError(RuntimeError):
    """A store operation that cannot be done; the message is one sentence."""


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def format_sums(sums: Mapping[str, str]) -> str:
    """A checksum list in `sha256sum`'s format, sorted by name."""
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def parse_sums(text: str) -> dict[str, str]:
    """The name -> hex sha256 pairs of a checksum list in `sha256sum`'s format."""
    sums = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([0-9a-f]{64}) [ *](.+)", line.strip())
        if match is None:
            raise ValueError(f"{line!r} is not a sha256sum line")
        sums[match.group(2)] = match.group(1)
    return sums


def _check_name(value: str, what: str) -> str:
    """The value, if it is a plain file name (no separators, not hidden); else a StoreError."""
    if not isinstance(value, str) or NAME.fullmatch(value) is None or ".." in value:
        raise StoreError(
            f"{what} {value!r} is not a plain name (letters, digits, '.', '_', '+', '-'; no '/', no leading dot)"
        )
    return value


def _archive_of(manifest: Any, where: str) -> tuple[str, str]:
    """The archive file name and hex sha256 a manifest records, or a StoreError saying what is wrong with it."""
    if not isinstance(manifest, dict):
        raise StoreError(f"{where} does not hold a JSON object")
    archive, digest = manifest.get("archive"), manifest.get("digest")
    if not isinstance(archive, str) or NAME.fullmatch(archive) is None:
        raise StoreError(f"{where} does not name its archive file in 'archive'")
    match = DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if match is None:
        raise StoreError(f"{where} does not record the archive's digest as 'digest': \"sha256:<64 hex digits>\"")
    return archive, match.group(1)


class Store:
    """Releases of one project in one place, each a folder of files that never change once complete."""

    def __init__(self, fs: AbstractFileSystem, root: str, project: str, url: str) -> None:
        self.fs = fs
        self.url = url
        self.project = _check_name(project, "the project name")
        self.folder = f"{root.rstrip('/')}/{project}"

    def __repr__(self) -> str:
        return f"Store({self.url!r}, {self.project!r})"

    def _path(self, version: str, name: str = "") -> str:
        return f"{self.folder}/{version}" + (f"/{name}" if name else "")

    def has(self, version: str) -> bool:
        """Whether the release is stored whole."""
        _check_name(version, "the version")
        return self._io("look for", version, lambda: self.fs.exists(self._path(version, SUMS)))

    def versions(self) -> list[str]:
        """The versions stored whole, sorted."""
        try:
            # One listing of the project's files: on a bucket, far fewer requests than asking after each version.
            found = [str(path) for path in self.fs.find(self.folder)] if self.fs.exists(self.folder) else []
        except FileNotFoundError:
            return []
        except OSError as err:
            raise StoreError(f"the releases of {self.project} at {self.url} could not be listed: {err}") from None
        prefix = self.folder.rstrip("/") + "/"
        relative = [path.removeprefix(prefix).split("/") for path in found if path.startswith(prefix)]
        return sorted(
            parts[0] for parts in relative if len(parts) == 2 and parts[1] == SUMS and NAME.fullmatch(parts[0])
        )

    def put(self, version: str, files: Mapping[str, Path]) -> None:
        """Store a release whole, or not at all; storing the same files again is a no-op, different files an error."""
        _check_name(version, "the version")
        for name, path in files.items():
            _check_name(name, "the file name")
            if name == SUMS:
                raise StoreError(f"{SUMS} is the store's own checksum list and cannot be a file of a release")
            if not Path(path).is_file():
                raise StoreError(f"{path} (the release's {name}) is not a file")
        if MANIFEST not in files:
            raise StoreError(f"release {version} has no {MANIFEST}; every release is stored with its manifest")
        sums = {name: sha256_file(Path(path)) for name, path in files.items()}
        try:
            manifest = json.loads(Path(files[MANIFEST]).read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise StoreError(f"{files[MANIFEST]} is not JSON: {err}") from None
        archive, digest = _archive_of(manifest, f"{MANIFEST} of release {version}")
        if archive not in files:
            raise StoreError(
                f"{MANIFEST} of release {version} names the archive {archive}, which is not one of its files"
            )
        if sums[archive] != digest:
            raise StoreError(
                f"{archive} has sha256:{sums[archive]}, not the sha256:{digest} {MANIFEST} of release {version} records"
            )

        if self.has(version):
            stored = self._sums(version)
            if stored == sums:
                return
            changed = sorted(name for name in stored.keys() | sums.keys() if stored.get(name) != sums.get(name))
            raise StoreError(
                f"release {version} of {self.project} is already stored at {self.url} with other contents "
                f"({', '.join(changed)}); a release's files never change, so store a new version instead"
            )

        folder = self._path(version)

        def upload() -> None:
            # Whatever a killed upload left is not a release (no SHA256SUMS): clear it so it cannot mix with this one.
            if self.fs.exists(folder):
                self.fs.rm(folder, recursive=True)
            self.fs.makedirs(folder, exist_ok=True)
            for name, path in sorted(files.items()):
                self.fs.put_file(str(path), self._path(version, name))
            # The checksum list appears whole or not at all: a rename on a folder, a single object on a bucket.
            temporary = self._path(version, f".{SUMS}.{uuid.uuid4().hex}")
            self.fs.pipe_file(temporary, format_sums(sums).encode())
            self.fs.mv(temporary, self._path(version, SUMS))

        self._io("upload", version, upload)
        if self._sums(version) != sums:
            raise StoreError(f"another upload of release {version} of {self.project} raced this one; store it again")

    def manifest(self, version: str) -> dict[str, Any]:
        """The release's release.json, checked against the release's checksum list."""
        sums = self._sums(version)
        raw = self._io("read", version, lambda: self.fs.cat_file(self._path(version, MANIFEST)))
        if hashlib.sha256(raw).hexdigest() != sums.get(MANIFEST):
            raise StoreError(f"{MANIFEST} of release {version} at {self.url} does not match its {SUMS}: it was altered")
        try:
            manifest = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise StoreError(f"{MANIFEST} of release {version} at {self.url} is not JSON") from None
        if not isinstance(manifest, dict):
            raise StoreError(f"{MANIFEST} of release {version} at {self.url} does not hold a JSON object")
        return manifest

    def get(self, version: str, name: str, dest: Path, *, digest: str | None = None) -> Path:
        """Fetch one file of a release to dest (a file, or a folder to put it in), verified; return its path.

        The archive (a `.bento`, or the file release.json names as `archive`) must match the manifest's digest and,
        when given, `digest` ("sha256:<hex>", the one recorded where the release was promoted).
        """
        _check_name(name, "the file name")
        sums = self._sums(version)
        if name not in sums:
            listed = ", ".join(sorted(sums))
            raise StoreError(f"release {version} of {self.project} has no file {name}; it has {listed}")
        expected = {SUMS: sums[name]}
        archive, recorded = _archive_of(self.manifest(version), f"{MANIFEST} of release {version}")
        if name == archive:
            expected[MANIFEST] = recorded
        elif name.endswith(".bento") or digest is not None:
            raise StoreError(f"{name} is not the archive {MANIFEST} of release {version} names ({archive})")
        if digest is not None:
            match = DIGEST.fullmatch(digest)
            if match is None:
                raise StoreError(f"{digest!r} is not a digest of the form sha256:<64 hex digits>")
            expected["the promoted release"] = match.group(1)

        target = Path(dest) / name if Path(dest).is_dir() else Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            got = self._io("download", version, lambda: self._download(self._path(version, name), partial))
            for source, want in expected.items():
                if got != want:
                    raise StoreError(
                        f"{name} of release {version} at {self.url} has sha256:{got}, not the sha256:{want} "
                        f"{source} records: it is corrupted or was substituted, so it is not served"
                    )
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def _download(self, source: str, target: Path) -> str:
        """Copy one stored file to a local path, returning the hex sha256 of what arrived."""
        digest = hashlib.sha256()
        with self.fs.open(source, "rb") as remote, target.open("wb") as local:
            while chunk := remote.read(CHUNK):
                digest.update(chunk)
                local.write(chunk)
        return digest.hexdigest()

    def _sums(self, version: str) -> dict[str, str]:
        """The checksum list of a complete release, or a StoreError saying why there is none."""
        _check_name(version, "the version")
        try:
            text = self.fs.cat_file(self._path(version, SUMS)).decode()
        except FileNotFoundError:
            if self._io("look for", version, lambda: self.fs.exists(self._path(version))):
                raise StoreError(
                    f"release {version} of {self.project} at {self.url} was never stored whole (its upload stopped)"
                ) from None
            known = self.versions()
            listed = f"it holds {', '.join(known[-5:])}" if known else "it holds no release of it"
            raise StoreError(
                f"release {version} of {self.project} is not in the store at {self.url}; {listed}"
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise StoreError(f"release {version} of {self.project} at {self.url} could not be read: {err}") from None
        try:
            return parse_sums(text)
        except ValueError as err:
            raise StoreError(f"{SUMS} of release {version} at {self.url} is damaged: {err}") from None

    def _io(self, verb: str, version: str, action: Any) -> Any:
        """Run one filesystem action, turning the filesystem's errors into one sentence."""
        try:
            return action()
        except StoreError:
            raise
        except OSError as err:
            raise StoreError(f"could not {verb} release {version} of {self.project} at {self.url}: {err}") from None


def default_url() -> str:
    """The store used when none is named: a folder on this machine beside the serving state, outside workspaces."""
    home = os.environ.get("MLGITOPS_HOME") or str(Path.home() / ".local" / "state" / "mlgitops")
    return str(Path(home) / "store")


def open_store(url: str, project: str, *, repo: Path | None = None) -> Store:
    """The store a URL names: `/abs/path`, `file:///abs/path`, or `dvc://[REMOTE]` of the DVC project in `repo`."""
    # "default" names the folder on this machine (default_url), for callers given an empty setting.
    url = default_url() if url == "default" else url
    if not isinstance(url, str) or not url.strip():
        raise StoreError("the store URL is empty; name a folder (/abs/path) or a DVC remote (dvc://NAME)")
    url = url.strip()
    parts = urlsplit(url)
    if url.startswith("/"):
        return Store(LocalFileSystem(), str(Path(url)), project, url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise StoreError(f"{url} is not a local folder URL of the form file:///abs/path")
        return Store(LocalFileSystem(), str(Path(unquote(parts.path))), project, url)
    if parts.scheme == "dvc":
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise StoreError(f"{url} is not a DVC remote URL of the form dvc://NAME (or dvc:// for the default)")
        fs, root = _dvc_remote(parts.netloc, Path(repo or "."))
        return Store(fs, f"{root.rstrip('/')}/{RELEASES}", project, url)
    raise StoreError(
        f"{url} is not a store URL: name a folder (/abs/path or file:///abs/path) or a DVC remote (dvc://NAME)"
    )


def _dvc_remote(name: str, repo: Path) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and root path of a DVC remote, with every option the project's DVC config gives it."""
    try:
        from dvc.config import Config, ConfigError
        from dvc.fs import get_cloud_fs
    except ImportError:
        raise StoreError("a dvc:// store needs DVC installed in this Python (pip install dvc)") from None
    dvc_dir = repo / ".dvc"
    if not dvc_dir.is_dir():
        raise StoreError(f"dvc://{name} names a DVC remote, but {repo.resolve()} is not a DVC project (no .dvc folder)")
    try:
        # Reads .dvc/config, .dvc/config.local and the user's and system's, resolving relative paths: `dvc remote list`.
        config = Config(dvc_dir=str(dvc_dir))
    except ConfigError as err:
        raise StoreError(f"the DVC config of {repo.resolve()} cannot be read: {err}") from None
    remote = name or config.get("core", {}).get("remote")
    if not remote:
        raise StoreError("dvc:// names the default DVC remote, but the project sets none (dvc remote default NAME)")
    remotes = config.get("remote", {})
    if remote.lower() not in remotes:
        listed = f"it has {', '.join(sorted(remotes))}" if remotes else "it has none"
        raise StoreError(f"the project has no DVC remote named {remote!r}; {listed} (dvc remote list)")
    where = remotes[remote.lower()].get("url", "")
    try:
        cls, options, root = get_cloud_fs(config, name=remote)
        filesystem = cls(**options).fs
    except ImportError as err:
        # dvc_objects says which plugin brings the protocol's fsspec filesystem, e.g. dvc-s3 for s3fs.
        raise StoreError(f"the DVC remote {remote!r} is at {where}, but {err}") from None
    except (ConfigError, ValueError) as err:
        raise StoreError(f"the DVC remote {remote!r} ({where}) cannot be used: {err}") from None
    # DVC's filesystem classes already give the path without the protocol, as fsspec wants it.
    return filesystem, str(root)


def main(argv: Sequence[str] | None = None) -> int:
    """`put` a release's files, `get` one back verified, or list the stored `versions`."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.store", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="/abs/path, file:///abs/path, dvc://NAME or dvc://")
    parser.add_argument("--project", required=True, help="the project's name: its releases' folder in the store")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC project a dvc:// URL is resolved in")
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("put", help="store a release's files (release.json among them) whole")
    put.add_argument("version")
    put.add_argument("files", nargs="+", type=Path)
    get = commands.add_parser("get", help="fetch one file of a release, verified")
    get.add_argument("version")
    get.add_argument("name")
    get.add_argument("dest", type=Path, help="file to write, or folder to put it in")
    get.add_argument("--digest", default=None, help="sha256:<hex> the archive must have (the promoted one)")
    commands.add_parser("versions", help="print the stored versions, one a line, sorted")
    args = parser.parse_args(argv)
    try:
        store = open_store(args.url, args.project, repo=args.repo)
        if args.command == "put":
            names = [path.name for path in args.files]
            if len(set(names)) != len(names):
                raise StoreError("two of the files have the same name, and a release's files are stored by name")
            store.put(args.version, {path.name: path for path in args.files})
            print(f"stored release {args.version} of {args.project} at {args.url}")
        elif args.command == "get":
            path = store.get(args.version, args.name, args.dest, digest=args.digest)
            print(path)
            gha.set_output("path", str(path))
        else:
            print("\n".join(store.versions()))
    except StoreError as err:
        gha.annotate("error", str(err))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
