"""The kit's own release: the newest CHANGELOG.md entry becomes a tag, the major tag moves, the release is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fake_github import FakeGitHub
from mlgitops import kit_release

IDENTITY = ["-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
CHANGELOG = "# Changelog\n\nIntro.\n\n## {version}\n\n- {change}\n\n## 1.0.0\n\n- The first release.\n"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *IDENTITY, *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def kit(tmp_path, monkeypatch):
    """A checkout of the kit with a bare origin, run as the release workflow runs it."""
    origin, root = tmp_path / "origin.git", tmp_path / "kit"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(root))
    (root / "CHANGELOG.md").write_text("# Changelog\n\n## 1.0.0\n\n- The first release.\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "1.0.0")
    git(root, "push", "-q", "origin", "HEAD:main")
    monkeypatch.chdir(root)
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/mlgitops")
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_release")
    return root, origin


def release(origin) -> int:
    return kit_release.main(["--remote", str(origin)])


def test_each_entry_is_tagged_once_the_major_tag_follows_and_the_release_holds_the_notes(kit, monkeypatch):
    root, origin = kit
    with FakeGitHub() as fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        assert release(origin) == 0
        first = git(root, "rev-parse", "HEAD")
        (root / "CHANGELOG.md").write_text(CHANGELOG.format(version="1.1.0", change="Template updates."))
        git(root, "commit", "-qam", "1.1.0")
        git(root, "push", "-q", "origin", "HEAD:main")
        assert release(origin) == 0
        # A re-run (the same push delivered twice) tags and writes nothing more.
        assert release(origin) == 0
        releases = fake.releases("octo", "mlgitops")
    second = git(root, "rev-parse", "HEAD")
    tags = dict(line.split()[::-1] for line in git(origin, "show-ref", "--tags", "-d").splitlines())
    assert tags["refs/tags/v1.0.0^{}"] == first and tags["refs/tags/v1.1.0^{}"] == second
    assert tags["refs/tags/v1"] == second
    assert sorted(r["tag_name"] for r in releases) == ["v1.0.0", "v1.1.0"]
    (newest,) = [r for r in releases if r["tag_name"] == "v1.1.0"]
    assert newest["name"] == "mlgitops 1.1.0" and newest["body"].startswith("- Template updates.")
    assert f"`{second}`" in newest["body"] and "The first release" not in newest["body"]


@pytest.mark.parametrize(
    ("changelog", "message"),
    [
        ("# Changelog\n\nNothing yet.\n", "CHANGELOG.md has no entry"),
        ("# Changelog\n\n## next\n\n- Soon.\n", "must be a version X.Y.Z, got 'next'"),
        ("# Changelog\n\n## 2.0.0\n\n## 1.0.0\n\n- First.\n", "entry 2.0.0 has no notes"),
    ],
    ids=["no-entry", "not-a-version", "no-notes"],
)
def test_a_changelog_that_cannot_be_released_is_one_sentence_and_tags_nothing(kit, capsys, changelog, message):
    root, origin = kit
    (root / "CHANGELOG.md").write_text(changelog)
    assert kit_release.main(["--remote", str(origin), "--no-github-release"]) == 1
    assert message in capsys.readouterr().err
    assert git(origin, "tag") == ""


def test_the_kit_s_own_changelog_is_releasable():
    from helpers import ROOT

    version, notes = kit_release.newest_entry((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert kit_release.SEMVER.match(version) and notes
