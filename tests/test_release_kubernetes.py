"""A Kubernetes project's release and rollback workflows, run for real by act against stand-ins of the cluster.

The package job builds the Bento's image with `bentoml containerize` and pushes it (the docker stand-in and
its registry); each environment's release is a commit pinning that image by digest in its overlay, which
the cluster stand-in syncs from origin's main and serves; verification goes through the environment's URL.
A rollback is a revert of the overlay commit that replaced the release.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from act_world import STANDINS, set_param
from demo import first_test_instance
from release_world import ENVIRONMENTS, ReleaseWorld, make_release_world, release_json
from standin_cluster import StandInCluster

pytestmark = pytest.mark.slow

OVERLAY = "deploy/kubernetes/overlays/{environment}/kustomization.yaml"


@contextlib.contextmanager
def kubernetes_world(root: Path) -> Iterator[tuple[ReleaseWorld, StandInCluster]]:
    with make_release_world(root, deploy_target="kubernetes") as world:
        registry = root / "registry"
        registry.mkdir()
        (registry / "pushed.jsonl").touch()
        cluster = StandInCluster(origin=world.origin, project=world.project.name, registry=registry,
                                 home=root / "cluster", environments=ENVIRONMENTS)  # fmt: skip
        path = f"{STANDINS / 'docker'}:{world.world.env['PATH']}"
        world.extra = ("--env", f"PATH={path}", "--env", f"STANDIN_REGISTRY={registry}")
        world.extra += ("--var", f"SERVICE_URL={cluster.url}", "--var", "IMAGE_REPOSITORY=ghcr.io/octo/models")
        try:
            yield world, cluster
        finally:
            cluster.close()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A Kubernetes project with two releases merged and released, then production rolled back by hand."""
    with kubernetes_world(tmp_path_factory.mktemp("kubernetes")) as (world, cluster):
        first = world.release()
        assert first.returncode == 0, first.log[-6000:] + "\n".join(cluster.events)
        v1 = world.state("production")["live"]["version"]
        overlay_v1 = show(world, "production")
        world.merge(set_param("  C: 1.0", "  C: 0.5"), "Regularise a little more")
        second = world.release()
        assert second.returncode == 0, second.log[-6000:] + "\n".join(cluster.events)
        v2 = world.state("production")["live"]["version"]
        back = world.rollback("production", reason="conversion dropped after the release")
        assert back.returncode == 0, back.log[-6000:] + "\n".join(cluster.events)
        yield world, cluster, v1, v2, overlay_v1


def show(world: ReleaseWorld, environment: str) -> str:
    command = ["git", "--git-dir", str(world.origin), "show", f"main:{OVERLAY.format(environment=environment)}"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def pinned(world: ReleaseWorld, environment: str) -> str:
    image = next(i for i in yaml.safe_load(show(world, environment))["images"] if i["name"] == world.project.name)
    return f"{image['newName']}@{image['digest']}"


def test_a_release_pins_the_pushed_image_by_digest_in_each_overlay_and_the_cluster_serves_it(released):
    world, cluster, v1, v2, _overlay = released
    manifest = release_json(world, v2)
    # The image the package job pushed is the release's, pinned by the digest the registry returned
    assert manifest["image"].startswith("ghcr.io/octo/models@sha256:")
    # and staging still serves v2 (only production was rolled back), from its overlay's pin
    assert pinned(world, "staging") == manifest["image"] == world.state("staging")["live"]["image"]
    assert cluster.images["staging"] == manifest["image"]
    staging = world.state("staging")["live"]
    assert (staging["version"], staging["url"]) == (v2, cluster.url.format(environment="staging"))
    assert staging["verified"]["served"]["value"] == manifest["metric"]["offline"]
    commits = world.commits()
    for version in (v1, v2):
        for environment in ENVIRONMENTS:
            assert f"Deploy {version} to {environment}" in commits


def test_a_rollback_reverts_the_overlay_commit_and_production_serves_the_previous_release(released):
    world, cluster, v1, v2, overlay_v1 = released
    # Production's overlay is exactly what it was under v1: the revert of v2's deploy commit
    assert show(world, "production") == overlay_v1
    commits = world.commits()
    assert commits[:2] == [f"Roll back production from {v2} to {v1}", f'Revert "Deploy {v2} to production"']
    assert world.history("production") == [(v1, "replaced"), (v2, "rolled-back"), (v1, "live")]
    assert world.state("production")["history"][-1]["reason"].startswith("rollback: conversion dropped")
    # and the cluster, synced from git, serves v1 there again
    assert cluster.images["production"] == release_json(world, v1)["image"]
    answer = world.predict("production", [first_test_instance(world.project, world.world.env)])
    assert answer["model"] == release_json(world, v1)["model"]
