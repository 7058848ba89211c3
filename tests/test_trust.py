"""The gate believes only results CI reproduced, or results identical to the base branch's, on a real DVC repo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlgitops import baseline, data_check, train, trust

# A one-stage pipeline: a git-tracked metric computed from a parameter, and a DVC-cached model file.
SCRIPT = """\
import json, yaml
x = yaml.safe_load(open("params.yaml"))["x"]
json.dump({"score": x * 2}, open("metrics.json", "w"))
open("model.bin", "w").write(str(x))
"""
DVC_YAML = f"""\
stages:
  evaluate:
    cmd: {sys.executable} evaluate.py
    deps: [evaluate.py]
    params: [x]
    outs: [model.bin]
    metrics:
      - metrics.json:
          cache: false
"""


def sh(cwd: Path, *args: str) -> str:
    command = list(args)
    if command[0] == "git":
        command[1:1] = ["-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout


def new_project(tmp_path: Path, monkeypatch, files: dict[str, str]) -> Path:
    """A git and DVC repository on main holding the files (not yet committed), as the working directory."""
    project = tmp_path / "repo"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")
    sh(project, "git", "init", "-q", "-b", "main")
    sh(project, "dvc", "init", "-q")
    for name, text in files.items():
        (project / name).write_text(text)
    return project


PIPELINE = {"dvc.yaml": DVC_YAML, "evaluate.py": SCRIPT, "params.yaml": "x: 1\n"}


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A DVC project whose main branch holds reproduced results (score 2), with a pull request branch checked out."""
    project = new_project(tmp_path, monkeypatch, {**PIPELINE, "README.md": "A project.\n"})
    sh(project, "dvc", "repro", "-q")
    commit(project, "Baseline")
    sh(project, "git", "checkout", "-qb", "pr")
    return project


def commit(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", message)


def run_train(repo: Path, monkeypatch, expect: int = 0) -> tuple[Path, dict]:
    """Run the train step as CI does: in a fresh clone, whose DVC cache and run cache start empty."""
    clone = repo.parent / "ci"
    sh(repo.parent, "git", "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    assert train.main(["--base-ref", "origin/main", "--out-dir", str(clone / "out")]) == expect
    return clone, json.loads((clone / "out" / "train.json").read_text())


@pytest.mark.slow
def test_results_edited_together_with_their_lock_hashes_are_reproduced_and_fail(repo, monkeypatch, capsys):
    # Given a pull request that writes a better score and re-hashes dvc.lock to match (`dvc commit`),
    (repo / "metrics.json").write_text(json.dumps({"score": 99}))
    sh(repo, "dvc", "commit", "-fq", "evaluate")
    commit(repo, "Better numbers")
    assert sh(repo, "dvc", "status", "--json").strip() == "{}", "dvc status alone believes the forged results"
    # when CI checks it against the base branch,
    clone, result = run_train(repo, monkeypatch)
    # then the stage is reproduced, the workspace holds CI's number, and the forged one is named with both values.
    assert result["ran"] == ["evaluate"] and "evaluate" in result["untrusted"]
    assert json.loads((clone / "metrics.json").read_text()) == {"score": 2}
    [mismatch] = result["mismatches"]
    assert (mismatch["path"], mismatch["where"], mismatch["committed"], mismatch["reproduced"]) == (
        "metrics.json",
        "score",
        "99",
        "2",
    )
    assert (
        "::error file=metrics.json,title=train::the committed metrics.json (score) says 99" in capsys.readouterr().out
    )


@pytest.mark.slow
def test_an_honest_change_is_reproduced_and_agrees(repo, monkeypatch):
    (repo / "params.yaml").write_text("x: 3\n")
    sh(repo, "dvc", "repro", "-q")
    commit(repo, "x = 3")
    clone, result = run_train(repo, monkeypatch)
    assert "evaluate" in result["untrusted"]
    assert result["mismatches"] == [] and result["stale"] == []
    assert json.loads((clone / "metrics.json").read_text()) == {"score": 6}


@pytest.mark.slow
def test_a_change_without_its_results_is_stale_not_forged(repo, monkeypatch):
    (repo / "params.yaml").write_text("x: 4\n")
    commit(repo, "x = 4, pipeline not run")
    _clone, result = run_train(repo, monkeypatch)
    assert result["ran"] == ["evaluate"] and result["mismatches"] == []
    assert result["stale"] == ["metrics.json"] and result["stale_lock"] is True


@pytest.mark.slow
def test_a_hand_edited_result_with_the_base_lock_is_reproduced_and_fails(repo, monkeypatch):
    (repo / "metrics.json").write_text(json.dumps({"score": 50}))
    commit(repo, "Edit the score only")
    _clone, result = run_train(repo, monkeypatch)
    assert [m["committed"] for m in result["mismatches"]] == ["50"]


@pytest.mark.slow
def test_a_change_the_pipeline_does_not_read_trains_nothing(repo, monkeypatch):
    (repo / "README.md").write_text("A project, documented.\n")
    commit(repo, "Docs")
    _clone, result = run_train(repo, monkeypatch)
    assert result["ran"] == [] and result["untrusted"] == {} and "nothing was trained" in result["note"]


@pytest.mark.slow
def test_untrusted_names_every_kind_of_lock_difference(repo, monkeypatch):
    assert trust.untrusted("main") == {}
    lock = (repo / "dvc.lock").read_text()
    (repo / "dvc.lock").write_text(lock.replace("x: 1", "x: 7"))
    commit(repo, "Forge the params in the lock")
    assert trust.untrusted("main") == {"evaluate": "its dvc.lock entry (params) differs from the base branch's"}


def test_json_outputs_agree_within_the_tolerance_and_ignore_provenance():
    committed = {"f1": 0.9000001, "sha256": "ab", "versions": {"python": "3.11.9"}, "classes": ["a", "b"]}
    reproduced = {"f1": 0.9000004, "sha256": "cd", "versions": {"python": "3.11.14"}, "classes": ["a", "b"]}
    assert trust.difference("m.json", json.dumps(committed), json.dumps(reproduced)) is None
    reproduced["f1"] = 0.91
    assert trust.difference("m.json", json.dumps(committed), json.dumps(reproduced)) == ("f1", 0.9000001, 0.91)


def test_csv_outputs_are_compared_cell_by_cell():
    committed = "feature,importance\nsize,0.2000000\ncolour,0.1\n"
    assert trust.difference("i.csv", committed, "feature,importance\nsize,0.2\ncolour,0.1\n") is None
    assert trust.difference("i.csv", committed, "feature,importance\nsize,0.2\ncolour,0.3\n") == (
        "row 2, importance",
        "0.1",
        "0.3",
    )


@pytest.mark.slow
def test_a_base_without_results_is_reproduced_once_in_a_worktree(tmp_path, monkeypatch):
    # Given a base commit with a pipeline but no results (baked by a Python without the pipeline's packages),
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path / "runner-temp"))
    project = new_project(tmp_path, monkeypatch, PIPELINE)
    commit(project, "Create project")
    sh(project, "git", "checkout", "-qb", "pr")
    (project / "params.yaml").write_text("x: 5\n")
    commit(project, "x = 5")
    # when a step asks for the base's metrics, then the base's own pipeline ran in a worktree, once per job.
    base = baseline.resolve("main", "metrics.json")
    assert base.source == "reproduced" and base.label == "base (reproduced by CI)"
    assert base.show_json("metrics.json") == {"score": 2}
    assert not (project / "metrics.json").exists(), "the workspace is left alone"
    (base.root / "metrics.json").write_text('{"score": 3}')
    assert baseline.resolve("main", "metrics.json").show_json("metrics.json") == {"score": 3}


@pytest.mark.slow
def test_a_base_whose_pipeline_fails_says_why(repo, monkeypatch, tmp_path):
    monkeypatch.setenv("RUNNER_TEMP", str(tmp_path / "runner-temp"))
    sh(repo, "git", "checkout", "-q", "main")
    sh(repo, "git", "rm", "-q", "dvc.lock", "metrics.json")
    (repo / "evaluate.py").write_text("raise SystemExit('no data here')\n")
    commit(repo, "A broken base")
    base = baseline.resolve("main", "metrics.json")
    assert base.source == "" and "the base commit's pipeline failed" in base.error
    assert base.show_json("metrics.json") is None


@pytest.mark.slow
def test_a_pipeline_past_its_budget_is_stopped_and_leaves_the_committed_results(repo, monkeypatch):
    # Given a base branch whose budget is 3 seconds, and a pull request whose stage takes a minute,
    sh(repo, "git", "checkout", "-q", "main")
    (repo / "params.yaml").write_text("x: 1\nmlgitops:\n  budget:\n    pipeline_minutes: 0.05\n")
    commit(repo, "A tight budget")
    sh(repo, "git", "checkout", "-q", "pr")
    sh(repo, "git", "merge", "-q", "main")
    (repo / "evaluate.py").write_text("import time\ntime.sleep(60)\n" + SCRIPT)
    commit(repo, "A slow stage")
    # when CI runs it, then the run is stopped with one sentence naming the budget, nothing half-written.
    clone, result = run_train(repo, monkeypatch, expect=1)
    assert result["over_budget"] is True and result["seconds"] < 30
    assert "ran past its budget of 0.05 minutes (mlgitops.budget.pipeline_minutes" in result["error"]
    assert json.loads((clone / "metrics.json").read_text()) == {"score": 2}
    assert sh(clone, "git", "status", "--porcelain", "--untracked-files=no").strip() == ""


VALIDATE = """\
import csv, json
rows = list(csv.DictReader(open("data.csv")))
bad = [r for r in rows if float(r["size"]) > 10]
violations = [{"split": "train", "column": "size", "rule": "in_range(0, 10)", "case": r["size"]} for r in bad]
json.dump({"valid": not bad, "violations": violations}, open("data_check.json", "w"))
labels = {}
for r in rows:
    labels[r["label"]] = labels.get(r["label"], 0) + 1
columns = {"label": {"kind": "categorical", "missing": 0, "counts": labels}}
json.dump({"rows": len(rows), "duplicates": 0, "target": "label", "columns": columns}, open("data_profile.json", "w"))
raise SystemExit(1 if bad else 0)
"""


@pytest.mark.slow
def test_a_data_check_result_forged_with_its_lock_hashes_is_reproduced_and_fails(tmp_path, monkeypatch):
    # Given a base whose data passes its check,
    dvc_yaml = (
        f"stages:\n  validate:\n    cmd: {sys.executable} validate.py\n    deps: [validate.py, data.csv]\n"
        "    outs:\n      - data_check.json:\n          cache: false\n      - data_profile.json:\n"
        "          cache: false\n"
    )
    data = "size,label\n" + "".join(f"{i % 10},{'ab'[i % 2]}\n" for i in range(60))
    project = new_project(tmp_path, monkeypatch, {"dvc.yaml": dvc_yaml, "validate.py": VALIDATE, "data.csv": data})
    sh(project, "dvc", "repro", "-q")
    commit(project, "Baseline")
    # and a pull request that adds an out-of-range row but commits the old, passing check, re-hashed,
    sh(project, "git", "checkout", "-qb", "pr")
    passing = (project / "data_check.json").read_text()
    with (project / "data.csv").open("a") as handle:
        handle.write("99,a\n")
    subprocess.run(["dvc", "repro", "-q"], cwd=project, capture_output=True, check=False)
    (project / "data_check.json").write_text(passing)
    subprocess.run(["dvc", "commit", "-fq", "validate"], cwd=project, capture_output=True, check=False)
    commit(project, "More data")
    clone = tmp_path / "ci"
    sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
    monkeypatch.chdir(clone)
    # when CI checks the data, then the validate stage runs again and its violation fails the check.
    args = ["--base-ref", "origin/main", "--check", "data_check.json", "--profile", "data_profile.json"]
    assert data_check.main([*args, "--out-dir", str(clone / "out")]) == 1
    result = json.loads((clone / "out" / "data_check.json").read_text())
    assert [f["value"] for f in result["findings"] if f["rule"].startswith("schema:")] == ["99"]
