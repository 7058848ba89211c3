"""The `kubernetes` target: a release is a commit pinning its image in the environment's overlay, a rollback reverts it.

A stand-in for the cluster and its GitOps controller syncs from the remote's main branch: it reads the image
each overlay pins and serves the release built as that image (from the stand-in store) at the environment's
fixed URL, as a Service would. State and overlay commits go to a real git remote in a temporary folder.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mlgitops import contract, kubernetes_target, release, state, targets
from release_standins import SCORE, FolderStore, Served, git

OVERLAY = """\
# Written by hand once; the release workflow pins the image below on every release.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop-{environment}
resources:
  - ../../base
images:
  - name: shop
    newName: ghcr.io/octo/shop
    newTag: unreleased
"""


def image(version: str) -> str:
    return f"ghcr.io/octo/shop@sha256:{version.encode().hex().ljust(64, '0')}"


class Pods(Served):
    """What a Service answers: the synced release, or 503 on /readyz while nothing runs."""

    def do_GET(self):
        if self.server.release is None:
            return self.reply(503, {})
        return self.reply(200, {})

    def do_POST(self):
        if self.server.release is None:
            return self.reply(503, {})
        return super().do_POST()


def read(path: Path) -> dict | None:
    """A release manifest, or None while the store is still writing it."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


class StandInCluster:
    """Stand-in for a cluster synced by Argo CD or Flux: serves what each overlay on the remote's main pins.

    A release whose version is in `aborted` stands for one whose Argo Rollouts canary analysis fails: the
    stable release keeps serving, as Argo Rollouts leaves it when it aborts a rollout.
    """

    def __init__(self, origin: Path, store: FolderStore, environments: list[str]) -> None:
        self.origin, self.store = origin, store
        self.aborted: set[str] = set()
        self.servers = {}
        for environment in environments:
            server = ThreadingHTTPServer(("127.0.0.1", 0), Pods)
            server.release = None
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self.servers[environment] = server
        self.running = True
        self.thread = threading.Thread(target=self.sync_forever, daemon=True)
        self.thread.start()

    def url(self, environment: str) -> str:
        return f"http://127.0.0.1:{self.servers[environment].server_address[1]}"

    def sync_forever(self) -> None:
        while self.running:
            for environment, server in self.servers.items():
                text = git(self.origin, "show", f"main:{kubernetes_target.overlay_path('deploy/k8s', environment)}")
                pinned = kubernetes_target.pinned_image(text, "shop")
                releases = [release for path in self.store.root.glob("*/release.json") if (release := read(path))]
                found = next((r for r in releases if r.get("image") == pinned), None)
                if found is None or found["version"] not in self.aborted:
                    server.release = found
            time.sleep(0.1)

    def close(self) -> None:
        self.running = False
        self.thread.join()
        for server in self.servers.values():
            server.shutdown()
            server.server_close()


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """A project with overlays whose remote takes the commits, a stand-in cluster syncing it, and a store."""
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    project = tmp_path / "shop"
    git(tmp_path, "clone", "-q", str(origin), str(project))
    (project / "shop").mkdir()
    (project / "shop" / "__main__.py").write_text(SCORE)
    for environment in ("staging", "production"):
        overlay = project / kubernetes_target.overlay_path("deploy/k8s", environment)
        overlay.parent.mkdir(parents=True)
        overlay.write_text(OVERLAY.format(environment=environment))
    git(project, "add", ".")
    git(project, "commit", "-qm", "Start")
    git(project, "push", "-q", "origin", "HEAD:main")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", str(project))
    for name in ("GITHUB_TOKEN", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "work").mkdir()
    store = FolderStore(tmp_path / "store")
    cluster = StandInCluster(origin, store, ["staging", "production"])
    settings = {
        "target": "kubernetes",
        "environments": ["staging", "production"],
        "ports": {},
        "skew_tolerance": 0.001,
        "ready_seconds": 10,
        "max_majority_share": 0.95,
        "kubernetes": {"overlays": "deploy/k8s"},
        "canary": contract.DEFAULTS["release"]["canary"],
        "monitor": {"drop": [], "hash": []},
    }
    branch = state.StateBranch("main")
    target = targets.for_release("kubernetes", "shop", settings, branch)
    target.poll_seconds = 0.1
    context = release.Context("shop", "shop", settings, store, target, branch, tmp_path / "work", by="dev")
    context.cluster, context.origin = cluster, origin
    yield context
    cluster.close()


def at(ctx, environment: str, monkeypatch) -> None:
    """Run the next operation as the job of `environment`, whose GitHub environment sets the URL."""
    monkeypatch.setenv("MLGITOPS_URL", ctx.cluster.url(environment))


def overlay(ctx, environment: str, ref: str = "refs/mlgitops/state/main") -> str:
    return git(Path.cwd(), "show", f"{ref}:{kubernetes_target.overlay_path('deploy/k8s', environment)}")


def subjects(ctx) -> list[str]:
    return git(Path.cwd(), "log", "--format=%s", "refs/mlgitops/state/main").splitlines()


def test_a_release_pins_its_image_in_the_overlay_and_goes_live_once_the_cluster_serves_it(ctx, monkeypatch):
    ctx.store.add("v1", image=image("v1"))
    at(ctx, "staging", monkeypatch)
    assert release.promote("staging", "v1", ctx) == 0
    pinned = yaml.safe_load(overlay(ctx, "staging"))["images"][0]
    assert pinned == {"name": "shop", "newName": "ghcr.io/octo/shop", "digest": image("v1").split("@")[1]}
    # The overlay's own comment survives the rewrite; the other environment's overlay is untouched.
    assert overlay(ctx, "staging").startswith("# Written by hand once")
    assert "newTag: unreleased" in overlay(ctx, "production")
    live = ctx.branch.read("staging", ctx.branch.fetch())["live"]
    assert (live["version"], live["image"], live["url"]) == ("v1", image("v1"), ctx.cluster.url("staging"))
    assert subjects(ctx)[:3] == ["Release v1 to staging: verified, accuracy 1.0000 served, 1.0000 offline",
                                 "Deploy v1 to staging", "Start releasing v1 to staging"]  # fmt: skip
    # A re-run makes no commit.
    assert release.promote("staging", "v1", ctx) == 0
    assert len(subjects(ctx)) == 4


def test_a_release_that_fails_verification_is_reverted_in_git(ctx, monkeypatch):
    ctx.store.add("v1", image=image("v1"))
    ctx.store.add("v2", behaviour="skewed", image=image("v2"))
    at(ctx, "staging", monkeypatch)
    assert release.promote("staging", "v1", ctx) == 0
    before = overlay(ctx, "staging")
    assert release.promote("staging", "v2", ctx) == 1
    # Git says what the cluster runs: the overlay is back to v1's, by a revert of v2's commit.
    assert overlay(ctx, "staging") == before
    assert subjects(ctx)[:3] == [
        "Keep staging on v1: v2 failed",
        'Revert "Deploy v2 to staging"',
        "Deploy v2 to staging",
    ]
    revert = git(Path.cwd(), "log", "-1", "--format=%B", "refs/mlgitops/state/main~1")
    deployed = git(Path.cwd(), "rev-parse", "refs/mlgitops/state/main~2")
    assert f"This reverts commit {deployed}" in revert
    assert ctx.cluster.servers["staging"].release["version"] == "v1"
    assert [(h["version"], h["outcome"]) for h in ctx.branch.read("staging")["history"]] == [
        ("v1", "live"),
        ("v2", "failed"),
    ]


def test_an_aborted_canary_analysis_is_written_back_to_git_as_a_revert_with_the_reason(ctx, monkeypatch):
    # Given production serving v1 through the canary component (an Argo Rollouts Rollout),
    ctx.store.add("v1", image=image("v1"))
    ctx.store.add("v2", image=image("v2"))
    path = Path(kubernetes_target.overlay_path("deploy/k8s", "production"))
    canary = "  - ../../base\ncomponents:\n  - ../../components/canary\n"
    path.write_text(path.read_text().replace("  - ../../base\n", canary))
    git(Path.cwd(), "commit", "-qam", "Serve production through the canary")
    git(Path.cwd(), "push", "-q", "origin", "HEAD:main")
    for environment in ("staging", "production"):
        at(ctx, environment, monkeypatch)
        assert release.promote(environment, "v1", ctx) == 0
    at(ctx, "staging", monkeypatch)
    assert release.promote("staging", "v2", ctx) == 0
    before = overlay(ctx, "production")
    # when v2's canary analysis aborts in the cluster, so the stable v1 keeps answering,
    ctx.cluster.aborted.add("v2")
    ctx.settings["ready_seconds"] = 1
    at(ctx, "production", monkeypatch)
    assert release.promote("production", "v2", ctx) == 1
    # then the release fails saying the canary kept the stable release, and git reverts to what the cluster runs.
    failed = ctx.branch.read("production", ctx.branch.fetch())["history"][-1]
    assert (failed["version"], failed["outcome"]) == ("v2", "failed")
    assert "its Argo Rollouts canary analysis failed or was inconclusive" in failed["reason"]
    assert "kubectl argo rollouts get rollout shop -n shop-production" in failed["reason"]
    assert overlay(ctx, "production") == before
    assert subjects(ctx)[:2] == ["Keep production on v1: v2 failed", 'Revert "Deploy v2 to production"']
    assert ctx.cluster.servers["production"].release["version"] == "v1"


def test_a_rollback_reverts_the_overlay_and_a_named_older_release_is_pinned_anew(ctx, monkeypatch):
    for version in ("v1", "v2", "v3"):
        ctx.store.add(version, image=image(version))
    at(ctx, "staging", monkeypatch)
    for version in ("v1", "v2", "v3"):
        assert release.promote("staging", version, ctx) == 0
    assert release.rollback("staging", None, "errors after the release", ctx) == 0
    assert subjects(ctx)[:2] == ["Roll back staging from v3 to v2", 'Revert "Deploy v3 to staging"']
    assert kubernetes_target.pinned_image(overlay(ctx, "staging"), "shop") == image("v2")
    assert release.rollback("staging", "v1", "", ctx) == 0
    assert subjects(ctx)[:2] == ["Roll back staging from v2 to v1", "Deploy v1 to staging"]
    assert ctx.cluster.servers["staging"].release["version"] == "v1"


def test_a_first_release_that_fails_leaves_the_overlay_unreleased(ctx, monkeypatch):
    ctx.store.add("v1", behaviour="degenerate", image=image("v1"))
    at(ctx, "staging", monkeypatch)
    assert release.promote("staging", "v1", ctx) == 1
    assert overlay(ctx, "staging") == OVERLAY.format(environment="staging").rstrip("\n")
    assert subjects(ctx)[1] == 'Revert "Deploy v1 to staging"'


def test_a_rollout_that_never_arrives_fails_with_the_environment_and_what_it_served(ctx, monkeypatch):
    ctx.store.add("v1", image=image("v1"))
    ctx.cluster.running = False  # the controller is down: the commit is never synced
    at(ctx, "staging", monkeypatch)
    ctx.settings["ready_seconds"] = 1
    assert release.promote("staging", "v1", ctx) == 1
    failed = ctx.branch.read("staging", ctx.branch.fetch())["history"][-1]
    assert failed["outcome"] == "failed"
    assert failed["reason"].startswith("staging did not serve v1 at http://127.0.0.1:")
    assert "/readyz answered 503" in failed["reason"]


@pytest.mark.parametrize(
    ("url", "pinned", "message"),
    [
        (False, image("v1"), "staging has no URL to verify a release at: set MLGITOPS_URL"),
        (True, "", "release v1 has no container image"),
        (True, "ghcr.io/octo/shop:latest", "'ghcr.io/octo/shop:latest' is not an image pinned by digest"),
    ],
    ids=["no-url", "no-image", "tag-not-digest"],
)
def test_what_the_target_cannot_deploy_is_refused_in_one_sentence_and_nothing_is_committed(
    ctx, monkeypatch, url, pinned, message
):
    if url:
        at(ctx, "staging", monkeypatch)
    else:
        monkeypatch.delenv("MLGITOPS_URL", raising=False)
    with pytest.raises(targets.DeployError, match=message):
        ctx.target.deploy("staging", tag="shop:v1", archive=None, version="v1", port=0, image=pinned)
    assert git(ctx.origin, "log", "--format=%s", "main") == "Start"


def test_an_overlay_without_the_base_image_entry_is_refused(ctx, monkeypatch):
    text = OVERLAY.format(environment="staging").replace("name: shop", "name: other")
    with pytest.raises(targets.DeployError, match="has no `images` entry named 'shop'"):
        kubernetes_target.pin(text, "shop", image("v1"), "deploy/k8s/staging/kustomization.yaml")


def test_one_url_with_the_environment_in_it_serves_every_environment(monkeypatch):
    monkeypatch.setenv("MLGITOPS_URL", "https://{environment}.models.example.com/ ")
    assert targets.environment_url("staging") == "https://staging.models.example.com"
    assert targets.environment_url("production") == "https://production.models.example.com"
