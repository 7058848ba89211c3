"""The train step's reading of DVC: what changed, what a stage writes, what DVC says it ran or restored."""

from __future__ import annotations

import subprocess

from mlgitops import train, trust

OUTPUTS = {"data/prepared/train.csv", "models/model.joblib", "metrics.json"}


def test_changed_inputs_ignore_files_that_are_only_absent_from_this_machine():
    status = {
        "prepare": [{"changed outs": {"data/prepared/train.csv": "not in cache"}}],
        "validate": [{"changed deps": {"data/prepared/train.csv": "deleted"}}],
        "train": [{"changed deps": {"params.yaml": {"model": "modified"}}}],
        "evaluate": [{"changed deps": {"src/pkg/evaluate.py": "modified"}}, "changed command"],
    }
    assert train.changed_inputs(status, OUTPUTS) == {
        "train": ["params.yaml"],
        "evaluate": ["src/pkg/evaluate.py", "changed command"],
    }


def test_a_deleted_source_file_and_a_hand_edited_result_are_changes():
    status = {
        "prepare": [{"changed deps": {"data/raw/dataset.csv": "deleted"}}],
        "evaluate": [{"changed outs": {"metrics.json": "modified", "models/model.joblib": "not in cache"}}],
    }
    assert train.changed_inputs(status, OUTPUTS) == {
        "prepare": ["data/raw/dataset.csv"],
        "evaluate": ["metrics.json"],
    }


def test_pipeline_outputs_come_from_every_kind_of_stage_output(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text(
        "stages:\n  a:\n    outs: [x.csv, {m.json: {cache: false}}]\n    metrics: [{metrics.json: {cache: false}}]\n"
        "    plots: [p.csv]\n"
    )
    assert trust.pipeline_outputs(dvc_yaml) == {"x.csv", "m.json", "metrics.json", "p.csv"}


def test_run_cache_restores_are_recognised_in_dvc_3_output():
    output = "Stage 'train' is cached - skipping run, checking out outputs\nRunning stage 'evaluate':\n"
    assert train.RESTORED.findall(output) == ["train"]
    assert train.RAN.findall(output) == ["evaluate"]


def test_pipeline_outputs_resolve_paths_interpolated_from_params(tmp_path):
    dvc_yaml, params = tmp_path / "dvc.yaml", tmp_path / "params.yaml"
    dvc_yaml.write_text(
        "stages:\n  a:\n    outs: ['${mlgitops.paths.train}', {'${mlgitops.paths.meta}': {cache: false}}]\n"
        "    metrics: ['${nowhere.known}']\n"
    )
    params.write_text("mlgitops:\n  paths:\n    train: data/train.csv\n    meta: models/model.json\n")
    assert trust.pipeline_outputs(dvc_yaml, params) == {"data/train.csv", "models/model.json", "${nowhere.known}"}


def test_a_job_without_the_remotes_credentials_neither_pulls_nor_warns(tmp_path, monkeypatch, capsys):
    # Given a project with a DVC remote whose credentials this job does not have (a pull request's),
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "remote", "add", "-d", "storage", str(tmp_path / "absent")], cwd=tmp_path, check=True)
    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo hello > hello.txt\n    outs: [hello.txt]\n")
    (tmp_path / "params.yaml").write_text("mlgitops:\n  budget:\n    pipeline_minutes: 5\n")
    monkeypatch.chdir(tmp_path)
    calls: list[tuple[str, ...]] = []
    real = train.dvc
    monkeypatch.setattr(train, "dvc", lambda *args: calls.append(args) or real(*args))
    # when it reproduces with pulling off, then it runs the stage without asking the remote;
    result = train.reproduce(push=False, pull=False)
    assert result["ok"] and result["ran"] == ["hello"]
    assert not [call for call in calls if call[0] == "pull"]
    assert "could not pull" not in capsys.readouterr().out
    # with pulling on (the default), it does ask, and says when the remote cannot answer.
    (tmp_path / "dvc.yaml").write_text("stages:\n  hello:\n    cmd: echo again > hello.txt\n    outs: [hello.txt]\n")
    train.reproduce(push=False)
    assert [call for call in calls if call[0] == "pull"]
