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

    def deploy(
        self,
        environment: str,
        *,
        tag: str,
        archive: Path,
        version: str,
        port: int,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 120,
    ) -> str:
        """Serve the Bento `tag` (from the exported `archive`) as `environment`, wait until ready, return its URL."""
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
TARGETS = {"local": "local_target:LocalTarget"}


def get_target(name: str, project: str, **options: Any) -> Target:
    """The deploy target called `name` for `project`; options go to its constructor (`home=` for local)."""
    if name not in TARGETS:
        raise DeployError(f"unknown deploy target {name!r}: this kit deploys to {', '.join(sorted(TARGETS))}")
    module, _, cls = TARGETS[name].partition(":")
    target: Target = getattr(importlib.import_module(f".{module}", __package__), cls)(project, **options)
    return target
