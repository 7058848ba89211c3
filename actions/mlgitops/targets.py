"""Where a release is served: the operations every deploy target implements, and the registry that names them."""

from __future__ import annotations

import importlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# The environment's URL where a target that does not serve on the runner verifies a release.
URL_VARIABLE = "MLGITOPS_URL"
# Sent with every request the kit makes to a served model: the service neither counts nor logs these as live traffic.
SYNTHETIC = {"X-MLGitOps-Synthetic": "release-check"}


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


# --- what every target that serves elsewhere asks of the environment's URL ---


def get_json(url: str, payload: Any = None, timeout: float = 30) -> tuple[int, Any]:
    """GET (no payload) or POST JSON; the status code and the decoded answer, for errors too (0 and the reason
    when nothing answered; the start of the text when the answer is not JSON)."""
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"content-type": "application/json", **SYNTHETIC} if data is not None else {}
    request = urllib.request.Request(url, data=data, headers=headers, method="GET" if data is None else "POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as err:
        body, status = err.read(), err.code
    except (OSError, urllib.error.URLError) as err:
        return 0, str(getattr(err, "reason", err))
    try:
        return status, json.loads(body) if body else None
    except json.JSONDecodeError:
        return status, body.decode(errors="replace")[:200]


def environment_url(environment: str) -> str:
    """The environment's URL from the job's environment; `{environment}` in it is replaced by the environment's
    name, so one variable can serve every environment (https://{environment}.models.example.com)."""
    return os.environ.get(URL_VARIABLE, "").strip().rstrip("/").replace("{environment}", environment)


def served_version(url: str) -> tuple[str | None, str]:
    """The Bento version the URL serves when it is ready, else None; and what was seen, for an error message."""
    status, _ = get_json(f"{url}/readyz", timeout=10)
    if status != 200:
        return None, f"/readyz answered {status or 'nothing'}"
    status, info = get_json(f"{url}/model_info", {}, timeout=10)
    version = info.get("bento_version") if isinstance(info, dict) else None
    return (version if status == 200 else None), f"it serves version {version!r}"
