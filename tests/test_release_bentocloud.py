"""A BentoCloud project's release and rollback workflows, run for real by act against a stand-in of BentoCloud.

The real `bentoml` client in the release jobs pushes each release's Bento and creates, then updates, the
environment's deployment (`<project>-<environment>`) on the stand-in, which serves it; verification goes
through the deployment's URL. A rollback updates the deployment to the earlier release's Bento.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from act_world import set_param
from demo import first_test_instance
from release_world import ENVIRONMENTS, ReleaseWorld, make_release_world, release_json
from standins.bentocloud import StandinBentoCloud

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def bentocloud_world(root: Path) -> Iterator[tuple[ReleaseWorld, StandinBentoCloud]]:
    with make_release_world(root, deploy_target="bentocloud") as world:
        token = f"standin-{uuid.uuid4().hex}"
        cloud = StandinBentoCloud(root / "bentocloud", token)
        # The secret and the variable each GitHub environment would hold.
        world.extra = ("-s", f"BENTO_CLOUD_API_KEY={token}", "--var", f"BENTO_CLOUD_API_ENDPOINT={cloud.url}")
        try:
            yield world, cloud
        finally:
            cloud.close()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A BentoCloud project with two releases merged and released, then production rolled back by hand."""
    with bentocloud_world(tmp_path_factory.mktemp("bentocloud")) as (world, cloud):
        first = world.release()
        assert first.returncode == 0, first.log[-6000:]
        v1 = world.state("production")["live"]["version"]
        world.merge(set_param("  C: 1.0", "  C: 0.5"), "Regularise a little more")
        second = world.release()
        assert second.returncode == 0, second.log[-6000:]
        v2 = world.state("production")["live"]["version"]
        back = world.rollback("production", reason="conversion dropped after the release")
        assert back.returncode == 0, back.log[-6000:]
        yield world, cloud, v1, v2


def bentos_sent(cloud: StandinBentoCloud, method: str, deployment: str) -> list[str]:
    """The Bento tags the client sent to create (POST) or update (PUT) the deployment, in order."""
    path = "/api/v2/deployments" if method == "POST" else f"/api/v2/deployments/{deployment}"
    return [r.body["bento"] for r in cloud.sent(method, path) if r.body.get("name", deployment) == deployment]


def test_each_environment_is_a_deployment_created_by_the_first_release_and_updated_by_the_next(released):
    world, cloud, v1, v2 = released
    name = world.project.name
    for environment in ENVIRONMENTS:
        deployment = f"{name}-{environment}"
        assert bentos_sent(cloud, "POST", deployment) == [f"{name}:{v1}"]
    # Staging still serves v2, verified at the deployment's URL against the packaged numbers
    staging = world.state("staging")["live"]
    assert staging["version"] == v2
    assert staging["verified"]["served"]["value"] == release_json(world, v2)["metric"]["offline"]
    assert bentos_sent(cloud, "PUT", f"{name}-staging") == [f"{name}:{v2}"]
    assert cloud.unknown == []


def test_a_rollback_updates_the_deployment_to_the_earlier_bento_and_records_why(released):
    world, cloud, v1, v2 = released
    name = world.project.name
    assert bentos_sent(cloud, "PUT", f"{name}-production") == [f"{name}:{v2}", f"{name}:{v1}"]
    assert world.commits()[0] == f"Roll back production from {v2} to {v1}"
    assert world.history("production") == [(v1, "replaced"), (v2, "rolled-back"), (v1, "live")]
    answer = world.predict("production", [first_test_instance(world.project, world.world.env)])
    assert answer["model"] == release_json(world, v1)["model"]
