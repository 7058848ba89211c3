"""dvc-remote-login: the cloud comes from the project's default DVC remote, and a missing variable is one sentence."""

from __future__ import annotations

import subprocess

import pytest

from mlgitops import remote_login

ALL_VARIABLES = {
    name: f"value-of-{name.lower()}"
    for name in (
        "AWS_ROLE_ARN",
        "AWS_REGION",
        "GCP_WORKLOAD_IDENTITY_PROVIDER",
        "GCP_SERVICE_ACCOUNT",
        *remote_login.CLOUDS["azure"].variables,
    )
}


@pytest.fixture
def project(tmp_path, monkeypatch):
    """An empty git + DVC project as the working directory, with the runner's output file."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "output"))
    for name in ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def add_remote(url: str) -> None:
    subprocess.run(["dvc", "remote", "add", "-d", "storage", url], check=True, capture_output=True)


@pytest.mark.parametrize(
    ("url", "cloud"), [("s3://ml-data/cancer", "aws"), ("gs://ml-data/cancer", "gcp"), ("azure://models/x", "azure")]
)
def test_the_default_remote_names_the_cloud_to_log_in_to(project, monkeypatch, url, cloud):
    add_remote(url)
    for name, value in ALL_VARIABLES.items():
        monkeypatch.setenv(name, value)
    assert remote_login.main([]) == 0
    assert "cloud<<" in (project / "output").read_text() and f"\n{cloud}\n" in (project / "output").read_text()


def test_azure_storage_account_is_set_for_this_runner_only(project, monkeypatch):
    add_remote("azure://models/x")
    for name, value in ALL_VARIABLES.items():
        monkeypatch.setenv(name, value)
    assert remote_login.main([]) == 0
    assert "account_name = value-of-azure_storage_account" in (project / ".dvc/config.local").read_text()
    assert "account_name" not in (project / ".dvc/config").read_text()


def test_a_missing_variable_is_named_in_one_sentence(project, monkeypatch, capsys):
    add_remote("s3://ml-data/cancer")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert remote_login.main([]) == 1
    out = capsys.readouterr().out
    assert "::error title=dvc-remote-login::Set the repository variable AWS_ROLE_ARN (Settings" in out
    assert "keyless AWS login to the DVC remote s3://ml-data/cancer." in out
    assert not (project / "output").exists()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda: None, "The project has no default DVC remote: add one with `dvc remote add -d storage"),
        (lambda: add_remote("ssh://host/srv/dvc"), "is not on S3, Google Cloud Storage or Azure Blob Storage"),
    ],
    ids=["no-remote", "ssh-remote"],
)
def test_a_remote_without_a_keyless_login_is_one_sentence(project, monkeypatch, capsys, setup, message):
    setup()
    for name, value in ALL_VARIABLES.items():
        monkeypatch.setenv(name, value)
    assert remote_login.main([]) == 1
    assert message in capsys.readouterr().out


def test_s3_compatible_storage_is_not_logged_in_to_aws(project, monkeypatch, capsys):
    add_remote("s3://ml-data/cancer")
    subprocess.run(["dvc", "remote", "modify", "storage", "endpointurl", "https://minio.example"], check=True)
    for name, value in ALL_VARIABLES.items():
        monkeypatch.setenv(name, value)
    assert remote_login.main([]) == 1
    assert "S3-compatible storage at https://minio.example, not AWS" in capsys.readouterr().out
