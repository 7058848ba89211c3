"""The `kubernetes` deploy target: a release is a commit that pins its image in the environment's overlay.

The cluster is driven by a GitOps controller (Argo CD or Flux) that syncs `deploy/kubernetes/overlays/<environment>`
from the state branch; CI never holds cluster credentials. Deploying pins the release's image by digest in the
overlay's `images:` entry and pushes that as one commit; going back to the release the overlay held before is a
revert of the commit that replaced it, so git and the cluster never disagree. The rollout is done when the
environment's URL (`MLGITOPS_URL`, set per GitHub environment) answers /readyz and reports the release's Bento
version on every one of several consecutive requests (old and new pods answer side by side mid-rollout).

An overlay that uses the canary component serves through an Argo Rollouts `Rollout`: a new release reaches one pod,
and the rest only after the analysis passes. An aborted or inconclusive analysis leaves the stable release serving,
so the wait times out, the release fails with that reason and the commit that pinned it is reverted: git and the
cluster agree again.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from .state import StateBranch
from .targets import URL_VARIABLE, DeployError, environment_url, served_version

OVERLAYS = "deploy/kubernetes/overlays"
IMAGE = re.compile(r"(?P<repository>[a-z0-9][a-z0-9._/:-]*[a-z0-9])@(?P<digest>sha256:[0-9a-f]{64})")
# Answers in a row that must report the new version before the rollout counts as done.
SETTLED = 3
POLL_SECONDS = 2.0
DEPLOY_SUBJECT = "Deploy {version} to {environment}"
# How an overlay names the component that turns its Deployment into an Argo Rollouts canary.
CANARY_COMPONENT = re.compile(r"^\s*-\s*\S*components/canary/?\s*$", re.MULTILINE)


def overlay_path(overlays: str, environment: str) -> str:
    """Where the environment's kustomization lives in the repository."""
    return f"{overlays.rstrip('/')}/{environment}/kustomization.yaml"


def split_leading_comment(text: str) -> tuple[str, str]:
    """The file's leading comment block (kept as written) and the YAML after it."""
    lines = text.splitlines(keepends=True)
    count = 0
    while count < len(lines) and (lines[count].startswith("#") or not lines[count].strip()):
        count += 1
    return "".join(lines[:count]), "".join(lines[count:])


def pinned_image(text: str | None, name: str) -> str | None:
    """The image REPO@sha256:... the overlay pins for the base's image `name`, or None when it pins no digest."""
    if not text:
        return None
    entry = _images_entry(yaml.safe_load(split_leading_comment(text)[1]) or {}, name, "")
    if entry is None or not entry.get("digest"):
        return None
    return f"{entry.get('newName', name)}@{entry['digest']}"


def _images_entry(document: Any, name: str, where: str) -> dict[str, Any] | None:
    images = document.get("images") if isinstance(document, dict) else None
    for entry in images or []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    if where:
        raise DeployError(f"{where} has no `images` entry named {name!r} (the base's image) for a release to pin.")
    return None


def pin(text: str, name: str, image: str, where: str) -> str:
    """The overlay's text with its `images` entry for `name` pinned to `image` (REPO@sha256:...)."""
    matched = IMAGE.fullmatch(image)
    if not matched:
        raise DeployError(f"{image!r} is not an image pinned by digest (REPOSITORY@sha256:HEX).")
    comment, body = split_leading_comment(text)
    try:
        document = yaml.safe_load(body) or {}
    except yaml.YAMLError as err:
        raise DeployError(f"{where} is not valid YAML: {str(err).splitlines()[0]}.") from None
    entry = _images_entry(document, name, where)
    assert entry is not None
    entry.pop("newTag", None)
    entry["newName"], entry["digest"] = matched["repository"], matched["digest"]
    return comment + yaml.safe_dump(document, sort_keys=False, width=100)


class KubernetesTarget:
    """Deploys by committing the image digest to the environment's overlay; the controller does the rest."""

    name = "kubernetes"
    needs_archive = False

    def __init__(
        self,
        project: str,
        branch: StateBranch,
        *,
        overlays: str = OVERLAYS,
        image_name: str = "",
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.project, self.branch, self.overlays = project, branch, overlays
        self.image_name = image_name or project
        self.poll_seconds = poll_seconds

    @classmethod
    def from_settings(cls, project: str, settings: Mapping[str, Any], branch: StateBranch) -> KubernetesTarget:
        """The target as the contract's `release.kubernetes` section configures it."""
        options = settings.get("kubernetes") or {}
        return cls(project, branch, overlays=options.get("overlays", OVERLAYS))

    def url(self, environment: str) -> str:
        """The environment's URL, from the job's environment (a variable of the GitHub environment)."""
        url = environment_url(environment)
        if not url.startswith(("http://", "https://")):
            raise DeployError(
                f"{environment} has no URL to verify a release at: set {URL_VARIABLE} (the release action's `url`, "
                f"from the GitHub environment's SERVICE_URL variable) to the address its Service is reachable at."
            )
        return url

    def deploy(
        self,
        environment: str,
        *,
        tag: str,
        archive: Path | None,
        version: str,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 600,
        image: str = "",
    ) -> str:
        """Pin the release's image in the overlay (a commit, or the revert of the one that replaced it), then wait
        until the environment's URL serves its version."""
        if not image:
            raise DeployError(
                f"release {version} has no container image, so it cannot go to {environment} on Kubernetes: package "
                "it with the package action's `image-repository`."
            )
        url = self.url(environment)
        self.pin_image(environment, image, version)
        self.wait_for(environment, url, version, image, ready_timeout)
        return url

    def pin_image(self, environment: str, image: str, version: str) -> str | None:
        """Commit the overlay pinning `image`: the revert of the newest overlay change when that change replaced
        exactly this image, else a new commit. Returns the commit, or None when the overlay pins it already."""
        path = overlay_path(self.overlays, environment)

        def edit(text: str | None, _parent: str) -> tuple[str, str] | None:
            if text is None:
                raise DeployError(f"{path} is missing, so {environment} has no overlay to pin {version} in.")
            if pinned_image(text, self.image_name) == image:
                return None
            last = self.branch.last_change(path)
            if last:
                before = self.branch.show(f"{last[0]}^", path)
                if before is not None and pinned_image(before, self.image_name) == image:
                    why = f"This reverts commit {last[0]}: {environment} serves {image} again."
                    return before, f'Revert "{last[1]}"\n\n{why}'
            return pin(text, self.image_name, image, path), (
                DEPLOY_SUBJECT.format(version=version, environment=environment) + f"\n\nPin {image} in {path}."
            )

        return self.branch.update_file(path, edit, what=f"the overlay of {environment}")

    def wait_for(self, environment: str, url: str, version: str, image: str, timeout: float) -> None:
        """Wait until every one of several answers in a row reports `version`; the controller syncs the commit."""
        deadline = time.monotonic() + timeout
        in_a_row, seen = 0, "nothing answered"
        while time.monotonic() < deadline:
            served, seen = served_version(url)
            in_a_row = in_a_row + 1 if served == version else 0
            if in_a_row >= SETTLED:
                return
            time.sleep(self.poll_seconds if in_a_row == 0 else 0.2)
        if self.has_canary(environment):
            raise DeployError(
                f"{environment} did not serve {version} on every pod at {url} within {timeout:.0f} s of pinning "
                f"{image} ({seen}): its Argo Rollouts canary analysis failed or was inconclusive and the stable "
                f"release kept serving (`kubectl argo rollouts get rollout {self.project} -n "
                f"{self.project}-{environment}` says which), or the controller did not sync."
            )
        raise DeployError(
            f"{environment} did not serve {version} at {url} within {timeout:.0f} s of pinning {image} ({seen}); "
            "check the controller's sync and the rollout."
        )

    def has_canary(self, environment: str) -> bool:
        """Whether the environment's overlay serves through the canary component (an Argo Rollouts Rollout)."""
        text = self.branch.show(self.branch.ref, overlay_path(self.overlays, environment)) or ""
        return bool(CANARY_COMPONENT.search(text))

    def current(self, environment: str) -> dict[str, Any] | None:
        """What the overlay pins and, when the environment's URL is known, what it serves now."""
        self.branch.fetch()
        text = self.branch.show(self.branch.ref, overlay_path(self.overlays, environment))
        image = pinned_image(text, self.image_name)
        if image is None:
            return None
        url = environment_url(environment)
        version, _ = served_version(url) if url else (None, "")
        return {"image": image, "version": version, "alive": version is not None, "url": url, "status": "pinned"}

    def stop(self, environment: str) -> None:
        """Undo the newest deploy commit of the overlay (the first release failed: nothing was live before it)."""
        path = overlay_path(self.overlays, environment)

        def edit(text: str | None, _parent: str) -> tuple[str, str] | None:
            last = self.branch.last_change(path)
            if text is None or last is None or not last[1].startswith("Deploy "):
                return None
            before = self.branch.show(f"{last[0]}^", path)
            if before is None:
                return None
            return before, f'Revert "{last[1]}"\n\nThis reverts commit {last[0]}: nothing was live on {environment}.'

        self.branch.update_file(path, edit, what=f"the overlay of {environment}")

    @contextlib.contextmanager
    def lock(self, environment: str) -> Iterator[None]:
        """Releases of an environment are serialized by the workflows' concurrency groups, and every overlay
        commit is a compare-and-swap push: no lock is held here."""
        yield
