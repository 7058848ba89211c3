"""Where a release is served: the operations every deploy target implements, and the registry that names them."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class DeployError(Exception):
    """A deployment could not be done; the message is one sentence that says which environment and why."""


@runtime_checkable
class Target(Protocol):
    """Serves a project's environments (staging, production): deploy a Bento, say what runs, stop, serialize."""

    name: str
    # Whether deploy reads the release's .bento archive; a target that runs the release's container image does not.
    needs_archive: bool

    def deploy(
        self,
        environment: str,
        *,
        tag: str,
        archive: Path | None,
        version: str,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 120,
        image: str = "",
    ) -> str:
        """Serve the Bento `tag` (from the exported `archive`, or its container `image` REPO@sha256:...) as
        `environment`, wait until that version is ready, and return its URL."""
        ...

    def current(self, environment: str) -> dict[str, Any] | None:
        """What serves `environment` (tag, version, status, `alive`, `url`), or None if it was never deployed."""
        ...

    def stop(self, environment: str) -> None:
        """Stop serving `environment`; nothing happens when nothing serves it."""
        ...

    def lock(self, environment: str) -> AbstractContextManager[object]:
        """Hold `environment` for one release at a time, across processes."""
        ...


# name -> "module:class" inside this package, imported only when asked for.
TARGETS = {
    "local": "local_target:LocalTarget",
    "kubernetes": "kubernetes_target:KubernetesTarget",
    "bentocloud": "bentocloud_target:BentoCloudTarget",
}


def target_class(name: str) -> Any:
    """The class of the deploy target called `name`, imported on first use."""
    if name not in TARGETS:
        raise DeployError(f"unknown deploy target {name!r}: this kit deploys to {', '.join(sorted(TARGETS))}")
    module, _, cls = TARGETS[name].partition(":")
    return getattr(importlib.import_module(f".{module}", __package__), cls)


def get_target(name: str, project: str, **options: Any) -> Target:
    """The deploy target called `name` for `project`; options go to its constructor (`home=` for local)."""
    target: Target = target_class(name)(project, **options)
    return target


def for_release(name: str, project: str, settings: Mapping[str, Any], branch: Any) -> Target:
    """The deploy target a release operation uses, configured from the contract's `release` settings and able to
    commit to the state branch (targets whose deployments are commits, like `kubernetes`, need it)."""
    cls = target_class(name)
    configure = getattr(cls, "from_settings", None)
    target: Target = configure(project, settings, branch) if configure else cls(project)
    return target
