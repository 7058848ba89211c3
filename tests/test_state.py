"""The environments' state files: their transitions, and commits that never lose a concurrent run's change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlgitops import state


def release(version: str, digest: str = "") -> dict:
    return {
        "version": version,
        "bento": f"shop:{version}",
        "model": "shop:abc",
        "digest": digest or f"sha256:{version}",
        "commit": "0" * 40,
    }


def test_a_release_that_goes_live_replaces_the_live_one_and_both_stay_in_the_history():
    first = state.went_live(state.empty("staging"), release("v1"), "http://x", "t1", "dev", {}, "verified")
    second = state.went_live(first, release("v2"), "http://x", "t2", "dev", {}, "verified")

    assert second["live"]["version"] == "v2" and second["live"]["digest"] == "sha256:v2"
    assert [(h["version"], h["outcome"]) for h in second["history"]] == [("v1", "replaced"), ("v2", "live")]
    assert second["history"][0]["reason"] == "replaced by v2"
    assert state.previous_good(second) == "v1"


def test_a_failed_release_leaves_the_live_one_and_records_why():
    live = state.went_live(state.empty("production"), release("v1"), "http://x", "t1", "dev", {}, "verified")
    started = state.begin(live, release("v2"), "t2", "dev")
    assert started["pending"]["version"] == "v2"

    after = state.failed(started, release("v2"), "f1 served 0.5 but 0.9 offline", "t3", "dev")

    assert after["live"]["version"] == "v1" and after["pending"] is None
    assert after["history"][-1] == {
        "version": "v2",
        "digest": "sha256:v2",
        "outcome": "failed",
        "reason": "f1 served 0.5 but 0.9 offline",
        "at": "t3",
        "by": "dev",
    }


def test_a_rollback_marks_the_bad_release_and_never_offers_it_again():
    s = state.empty("production")
    for version in ("v1", "v2", "v3"):
        s = state.went_live(s, release(version), "http://x", version, "dev", {}, "verified")
    s = state.rolled_back(s, release("v2"), "http://x", "v3 answers slowly", "t4", "ops", {})

    assert s["live"]["version"] == "v2"
    outcomes = [(h["version"], h["outcome"]) for h in s["history"]]
    assert outcomes == [("v1", "replaced"), ("v2", "replaced"), ("v3", "rolled-back"), ("v2", "live")]
    assert state.previous_good(s) == "v1", "the rolled-back v3 is not a good release to return to"


def test_state_files_round_trip_and_refuse_what_they_cannot_read():
    s = state.went_live(state.empty("staging"), release("v1"), "http://x", "t1", "dev", {"served": 0.9}, "verified")
    text = state.render(s)
    assert text.startswith("# Written by the release workflow")
    assert state.parse(text, "staging") == s
    assert state.parse(None, "staging") == state.empty("staging")
    with pytest.raises(state.StateError, match=r"releases/staging\.yaml is not valid YAML"):
        state.parse("live: [", "staging")
    with pytest.raises(state.StateError, match="newer format"):
        state.parse("format: 9\nhistory: []\n", "staging")


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def clones(tmp_path, monkeypatch):
    """A remote with one commit on main and two clones of it, as two release runs would have."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(origin), str(seed))
    (seed / "README.md").write_text("shop\n", encoding="utf-8")
    git(seed, "add", "README.md")
    git(seed, "commit", "-qm", "Start")
    git(seed, "push", "-q", "origin", "HEAD:main")
    runs = []
    for name in ("run-a", "run-b"):
        git(tmp_path, "clone", "-q", str(origin), str(tmp_path / name))
        runs.append(tmp_path / name)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    return origin, seed, runs


def test_a_state_change_is_one_commit_on_the_branch_and_a_repeat_makes_none(clones, monkeypatch):
    _origin, seed, (run, _) = clones
    monkeypatch.chdir(run)
    branch = state.StateBranch("main")

    def go_live(s):
        return state.went_live(s, release("v1"), "http://x", "t1", "dev", {}, "verified")

    written, commit = branch.update("staging", go_live, lambda _o, _n: "Release v1 to staging")
    assert commit and written["live"]["version"] == "v1"
    _, again = branch.update("staging", lambda s: s, lambda _o, _n: "nothing")
    assert again is None

    git(seed, "pull", "-q", "origin", "main")
    assert git(seed, "log", "-1", "--format=%s") == "Release v1 to staging"
    assert yaml.safe_load((seed / "releases" / "staging.yaml").read_text())["live"]["version"] == "v1"
    assert git(run, "status", "--porcelain") == "", "the workspace's checkout is untouched"


WRITER = """
import sys
from mlgitops import state
name = sys.argv[1]
for i in range(5):
    r = {"version": f"{name}-{i}", "digest": None}
    state.StateBranch("main").update(
        "staging", lambda s: state.failed(s, r, "test", "t", "dev"), lambda o, n: f"Record {name}-{i}"
    )
"""


def test_two_runs_writing_the_same_state_at_once_lose_nothing(clones):
    _, seed, runs = clones
    actions = str(Path(__file__).resolve().parents[1] / "actions")
    env = {**os.environ, "PYTHONPATH": actions}
    env.pop("GITHUB_TOKEN", None)

    # Two runners, each with its own clone, pushing five changes to one file as fast as they can.
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, name], cwd=path, env=env, stderr=subprocess.PIPE, text=True)
        for name, path in zip(("a", "b"), runs, strict=True)
    ]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()

    git(seed, "pull", "-q", "origin", "main")
    history = yaml.safe_load((seed / "releases" / "staging.yaml").read_text())["history"]
    assert sorted(h["version"] for h in history) == sorted(f"{n}-{i}" for n in "ab" for i in range(5))
    assert len(git(seed, "log", "--format=%s").splitlines()) == 11
