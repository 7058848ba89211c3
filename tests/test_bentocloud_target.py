"""The bentocloud deploy target, driving the real `bentoml` client against a stand-in of BentoCloud that really
serves the pushed Bentos of the default project."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from demo import post, project_env, sh
from helpers import copy_project
from mlgitops.bentocloud_target import DEFAULT_ENDPOINT, BentoCloud, BentoCloudTarget
from mlgitops.targets import DeployError, Target, get_target
from standins.bentocloud import StandinBentoCloud

TOKEN = f"standin-{uuid.uuid4().hex}"
DEPLOYMENT = "cancer-classifier-staging"


@dataclass
class Bentos:
    """The default project's Bento name and its exported archives by version."""

    name: str
    archives: dict[str, Path]

    def tag(self, version: str) -> str:
        return f"{self.name}:{version}"


@pytest.fixture(scope="module")
def bentos(default_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Bentos:
    """The default project built as Bentos v1 and v2, and as `crashes`, whose service raises as it starts."""
    folder = tmp_path_factory.mktemp("bentocloud-bentos")
    project = copy_project(default_project, folder)
    env = project_env(project, folder / "bentoml")
    package = project.name.replace("-", "_")
    sh(["python", "-m", package, "register"], project, env)
    service = project / "src" / package / "service.py"
    archives = {}
    for version in ("v1", "v2", "crashes"):
        if version == "crashes":
            text, start = service.read_text(encoding="utf-8"), "    def __init__(self) -> None:\n"
            assert text.count(start) == 1
            crash = start + '        raise RuntimeError("the model file is corrupt")\n'
            service.write_text(text.replace(start, crash), encoding="utf-8")
        sh(["bentoml", "build", "--version", version, "--output", "tag"], project, env)
        archives[version] = folder / f"{version}.bento"
        sh(["bentoml", "export", f"{project.name}:{version}", str(archives[version])], project, env)
    return Bentos(project.name, archives)


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory):
    """One stand-in of BentoCloud for the module; afterwards none of the servers it started is left running."""
    root = tmp_path_factory.mktemp("bentocloud")
    standin = StandinBentoCloud(root, TOKEN)
    yield standin
    standin.close()
    left = [process for process in psutil.process_iter() if works_under(process, root)]
    for process in left:
        process.kill()
    assert not left, f"processes left running: {[process.cmdline() for process in left]}"


def works_under(process: psutil.Process, folder: Path) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE and Path(process.cwd()).is_relative_to(folder)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@pytest.fixture(autouse=True)
def credentials(cloud: StandinBentoCloud, monkeypatch: pytest.MonkeyPatch):
    """The job's credentials for the stand-in; after each test, the stand-in was asked for no route it lacks."""
    monkeypatch.setenv("BENTO_CLOUD_API_KEY", TOKEN)
    monkeypatch.setenv("BENTO_CLOUD_API_ENDPOINT", cloud.url)
    monkeypatch.delenv("MLGITOPS_URL", raising=False)
    yield
    assert cloud.unknown == []


@pytest.fixture
def target() -> BentoCloudTarget:
    return BentoCloudTarget("cancer-classifier", poll_seconds=0.5)


def deploy(target: BentoCloudTarget, bentos: Bentos, version: str, environment: str = "staging") -> str:
    archive = bentos.archives[version]
    return target.deploy(
        environment, tag=bentos.tag(version), archive=archive, version=version, port=0, ready_timeout=180
    )


def served_version(url: str) -> str:
    """The Bento version the service at url reports."""
    status, info = post(f"{url}/model_info", {})
    assert status == 200, info
    return info["bento_version"]


def updates(cloud: StandinBentoCloud) -> list[str]:
    """The Bentos that update requests of the staging deployment named, in order."""
    return [request.body["bento"] for request in cloud.sent("PUT", f"/api/v2/deployments/{DEPLOYMENT}")]


def ensure_serving(target: BentoCloudTarget, bentos: Bentos, version: str = "") -> tuple[str, str]:
    """Staging's URL and version once it serves `version` (by default any of v1 and v2), deploying only when it
    does not already: each deploy starts a server, which takes seconds."""
    serving = target.current("staging")
    if serving and serving["alive"] and serving["version"] in ([version] if version else ["v1", "v2"]):
        return serving["url"], serving["version"]
    return deploy(target, bentos, version or "v1"), version or "v1"


@pytest.mark.slow
def test_a_release_creates_the_deployment_the_next_updates_it_and_a_rollback_serves_the_previous_bento(
    target, bentos, cloud
):
    # Given no deployment for staging
    assert target.current("staging") is None
    # When v1 is deployed, then the deployment <project>-staging is created with it and its URL serves v1
    url = deploy(target, bentos, "v1")
    created = cloud.sent("POST", "/api/v2/deployments")
    assert [(request.body["name"], request.body["bento"]) for request in created] == [(DEPLOYMENT, bentos.tag("v1"))]
    assert url == cloud.describe(cloud.deployments[DEPLOYMENT])["urls"][0]
    assert served_version(url) == "v1"
    # When v2 is deployed, then the deployment is updated to v2, which serves at the same URL
    assert deploy(target, bentos, "v2") == url
    assert updates(cloud) == [bentos.tag("v2")] and served_version(url) == "v2"
    # When v1 is deployed again (a rollback), then the update names v1, which serves again without a second push
    assert deploy(target, bentos, "v1") == url
    assert updates(cloud) == [bentos.tag("v2"), bentos.tag("v1")] and served_version(url) == "v1"
    pushes = cloud.sent("POST", f"/api/v1/bento_repositories/{bentos.name}/bentos")
    assert [request.body["version"] for request in pushes] == ["v1", "v2"]
    # and current() reports it
    assert target.current("staging") == {
        "tag": bentos.tag("v1"),
        "version": "v1",
        "status": "running",
        "alive": True,
        "url": url,
        "deployment": DEPLOYMENT,
    }


@pytest.mark.slow
def test_the_environments_own_url_replaces_the_deployments_for_a_custom_domain(target, bentos, cloud, monkeypatch):
    # Given staging serves v1 and answers at a domain of its own (another name of the same server here)
    ensure_serving(target, bentos, "v1")
    port = cloud.deployments[DEPLOYMENT].port
    monkeypatch.setenv("MLGITOPS_URL", f"http://localhost:{port}")
    # When v2 is deployed, then it is verified at that domain, which is the URL returned and reported
    assert deploy(target, bentos, "v2") == f"http://localhost:{port}"
    serving = target.current("staging")
    assert (serving["url"], serving["version"], serving["alive"]) == (f"http://localhost:{port}", "v2", True)


@pytest.mark.slow
def test_a_refused_api_key_fails_in_one_sentence_and_changes_nothing(target, bentos, cloud, monkeypatch):
    # Given staging serves a release
    url, version = ensure_serving(target, bentos)
    before = (cloud.deployments[DEPLOYMENT].bento, len(cloud.requests))
    # When another release is deployed with an API key BentoCloud refuses
    monkeypatch.setenv("BENTO_CLOUD_API_KEY", "revoked-key-4242")
    with pytest.raises(DeployError) as failure:
        deploy(target, bentos, "v2" if version == "v1" else "v1")
    # Then the error says so in one sentence, without the key
    assert str(failure.value) == (
        f"BentoCloud ({cloud.url}) refused the API key in BENTO_CLOUD_API_KEY with HTTP 401 while reading"
        f" staging's deployment {DEPLOYMENT}; check that secret of the GitHub environment staging"
    )
    # and BentoCloud answered nothing, so the deployment still serves what it served
    assert cloud.refused[-1] == ("GET", f"/api/v2/deployments/{DEPLOYMENT}")
    assert (cloud.deployments[DEPLOYMENT].bento, len(cloud.requests)) == before
    assert served_version(url) == version


def test_without_an_api_key_nothing_is_asked_of_bentocloud(target, cloud, monkeypatch, tmp_path):
    asked = len(cloud.requests) + len(cloud.refused)
    monkeypatch.setenv("BENTO_CLOUD_API_KEY", "")
    message = (
        "BENTO_CLOUD_API_KEY is not set, so production cannot be reached on BentoCloud:"
        " add the API token as a secret of the GitHub environment production"
    )
    with pytest.raises(DeployError) as failure:
        target.deploy("production", tag="cancer-classifier:v1", archive=tmp_path / "a.bento", version="v1", port=0)
    assert str(failure.value) == message
    with pytest.raises(DeployError) as failure:
        target.current("production")
    assert str(failure.value) == message
    assert len(cloud.requests) + len(cloud.refused) == asked


def test_an_unset_endpoint_variable_means_bentoclouds_own(monkeypatch, tmp_path):
    # An unset GitHub variable reaches the job as an empty string.
    monkeypatch.setenv("BENTO_CLOUD_API_ENDPOINT", "")
    client = BentoCloud("staging", tmp_path)
    assert client.endpoint == DEFAULT_ENDPOINT == client.env["BENTO_CLOUD_API_ENDPOINT"]
    assert client.env["BENTOML_HOME"] == str(tmp_path)


@pytest.mark.slow
def test_a_bento_that_crashes_on_start_fails_the_deploy_naming_the_environment_and_a_rollback_recovers(
    target, bentos, cloud, monkeypatch
):
    # Given staging serves a release
    _, version = ensure_serving(target, bentos)
    # When a Bento whose service raises as it starts is deployed
    with monkeypatch.context() as patched, pytest.raises(DeployError) as failure:
        patched.setattr(cloud, "rollout_seconds", 90)
        deploy(target, bentos, "crashes")
    # Then the deploy fails with one sentence naming the environment and where the logs are
    assert str(failure.value) == (
        f"BentoCloud reports staging's deployment {DEPLOYMENT} failed while it rolls out version crashes;"
        f" its logs are at {cloud.url}/deployments/{DEPLOYMENT}"
    )
    assert target.current("staging")["alive"] is False
    served_log = (cloud.servers.env_dir(DEPLOYMENT) / "serve.log").read_text(encoding="utf-8")
    assert "RuntimeError: the model file is corrupt" in served_log
    # and deploying the previous Bento again serves it
    url = deploy(target, bentos, version)
    assert served_version(url) == version and updates(cloud)[-2:] == [bentos.tag("crashes"), bentos.tag(version)]


@pytest.mark.slow
def test_stop_terminates_the_deployment_once(target, bentos, cloud):
    # Given staging serves a release
    url, version = ensure_serving(target, bentos)
    # When it is stopped, then its deployment is terminated and nothing answers at its URL
    target.stop("staging")
    stopped = target.current("staging")
    assert (stopped["status"], stopped["alive"], stopped["version"]) == ("terminated", False, version)
    with pytest.raises(OSError):
        post(f"{url}/model_info", {}, timeout=5)
    # When it is stopped again, or an environment never deployed is, then nothing is asked of BentoCloud
    target.stop("staging")
    target.stop("production")
    assert len(cloud.sent("POST", f"/api/v2/deployments/{DEPLOYMENT}/terminate")) == 1


def test_the_registry_gives_the_bentocloud_target(monkeypatch):
    target = get_target("bentocloud", "cancer-classifier")
    assert isinstance(target, BentoCloudTarget) and isinstance(target, Target)
    assert (target.name, target.needs_archive) == ("bentocloud", True)
    assert target.deployment_name("production") == "cancer-classifier-production"
    with target.lock("production"):
        pass  # the workflows' concurrency groups serialize releases: nothing to wait for
    with pytest.raises(DeployError) as failure:
        BentoCloudTarget("Cancer_Classifier").current("staging")
    assert str(failure.value) == (
        "'Cancer_Classifier-staging' cannot name staging's BentoCloud deployment: it must be 1 to 63 lowercase"
        " letters, digits or '-', starting and ending with a letter or digit"
    )


def test_a_bento_bentocloud_does_not_hold_fails_in_one_sentence_and_changes_nothing(target, cloud):
    before = {name: deployment.bento for name, deployment in cloud.deployments.items()}
    # Given no archive (nothing to push) and a Bento BentoCloud never received
    with pytest.raises(DeployError) as failure:
        target.deploy("staging", tag="cancer-classifier:v9", archive=None, version="v9", port=0, ready_timeout=10)
    # Then the deploy fails with what bentoml said, and no deployment changed
    # (bentoml words it as `deploy` or `update` failing, whether staging has a deployment yet or not)
    message = str(failure.value)
    assert message.startswith("deploying version v9 to staging failed on BentoCloud: bentoml said 'Error: ")
    assert message.endswith(" Bento cancer-classifier:v9 is not found in both local and bentocloud'")
    assert {name: deployment.bento for name, deployment in cloud.deployments.items()} == before
