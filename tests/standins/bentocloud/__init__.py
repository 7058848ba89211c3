"""Stand-in for BentoCloud: only the REST requests `bentoml` 1.4.39 sends to push a Bento and drive a deployment.

Not BentoCloud. BentoCloud publishes no description of its API, so these requests were read from the pinned
client's code (bentoml/_internal/cloud/client.py, bento.py, model.py, deployment.py, config.py and
bentoml_cli/deployment.py), and every answer carries the fields the client's schemas require
(bentoml/_internal/cloud/schemas/schemasv1.py, schemasv2.py, modelschemas.py). The real `bentoml` CLI runs
against it unmodified.

Credentials: the client itself reads BENTO_CLOUD_API_KEY and BENTO_CLOUD_API_ENDPOINT (default
https://cloud.bentoml.com) when the key is set (CloudClientConfig.get_context), so no `bentoml cloud login`
(GET /api/v1/auth/current and /api/v1/current_org, then the token written to $BENTOML_HOME/.yatai.yaml) is
needed. Every request carries the key in the X-YATAI-API-TOKEN header; a missing or wrong one gets 401 with
`{"message": ...}` (401 is what the client's own login reads as bad credentials).

Push (`bentoml push TAG`, and the push `bentoml deploy` and `bentoml deployment update` do first), for each
model of the Bento and then for the Bento, under /api/v1/model_repositories/{name}/models/{version} and
/api/v1/bento_repositories/{name}/bentos/{version}:
  GET   /api/v1/{kind}_repositories/{name}                        404 until created
  POST  /api/v1/{kind}_repositories                               {name, description}
  GET   /api/v1/{kind}_repositories/{name}/{kind}s/{version}      404 until created; an uploaded one ends the push
  POST  /api/v1/{kind}_repositories/{name}/{kind}s                {description, version, manifest, build_at, labels}
  PATCH /api/v1/{kind}_repositories/{name}/{kind}s/{version}      {description, manifest, labels}: re-register
                                                                  one whose upload never finished
  PATCH /api/v1/{kind}_repositories/{name}/{kind}s/{version}/start_upload
  PUT   /api/v1/{kind}_repositories/{name}/{kind}s/{version}/upload   its folder as a tar (a Bento's without models/)
Answers name transmission_strategy "proxy", so the client uploads through the API rather than to presigned
storage URLs (which would need presign_upload_url, multipart and finish_upload requests besides).

Deployments:
  `bentoml deploy TAG --name NAME --no-wait`   POST /api/v2/deployments?cluster=   {name, bento, services, ...}
  `bentoml deployment update NAME --bento TAG` GET /api/v2/deployments/NAME?cluster=, then
                                               PUT /api/v2/deployments/NAME?cluster=CLUSTER {bento, services, ...}
  `bentoml deployment get NAME -o json`        GET /api/v2/deployments/NAME?cluster=   (404: no such deployment)
  `bentoml deployment terminate NAME`          POST /api/v2/deployments/NAME/terminate?cluster=
(`bentoml deploy` without --no-wait would also open websockets under /ws/ to tail the image builder's log.)

Any other route gets 404 and is recorded in `unknown`, so a test can prove the client asked for nothing else.

Serving: a created or updated deployment really serves its Bento. Uploads are unpacked into the stand-in's own
BentoML store (bentos/NAME/VERSION/ and models/NAME/VERSION/, the layout `bentoml pull` leaves), and the kit's
`local` target serves the deployment's Bento there with `bentoml serve` on a port of its own, which is the
deployment's URL. Its status is "deploying" until the server answers /readyz, then "running"; "failed" when the
server exits or is not ready within `rollout_seconds` (as Kubernetes gives up on a rollout past its progress
deadline); "unhealthy" when a running server stops answering; "terminating", then "terminated". Unlike
BentoCloud's default rolling update, an update replaces the server (BentoCloud's Recreate strategy): a failed
update leaves nothing serving until the next one.
"""

from __future__ import annotations

import datetime
import io
import json
import re
import tarfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from demo import free_port
from mlgitops.local_target import LocalTarget
from mlgitops.targets import DeployError

TOKEN_HEADER = "X-YATAI-API-TOKEN"
CLUSTER = "standin-cluster"
ORGANIZATION = "standin-org"
USER = {"name": "standin", "email": "standin@example.com", "first_name": "", "last_name": ""}
FAILED = "failed"

Answer = tuple[int, Any]


@dataclass
class Request:
    """One request the stand-in answered for a valid token: method, path (without query), query and JSON body."""

    method: str
    path: str
    query: str
    body: Any


@dataclass
class Deployment:
    """A deployment's record: what it should serve (`bento`, `config`), its status and its own port."""

    name: str
    bento: str
    config: dict[str, Any]
    port: int
    status: str = "deploying"
    revision: int = 0
    created_at: str = ""
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    # One rollout or termination of this deployment at a time.
    serial: threading.Lock = field(default_factory=threading.Lock)


def now() -> str:
    """The current UTC time, as BentoCloud writes it."""
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def resource(name: str, resource_type: str, labels: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The fields every BentoCloud resource carries (ResourceSchema)."""
    moment = now()
    return {
        "uid": uuid.uuid4().hex,
        "created_at": moment,
        "updated_at": moment,
        "deleted_at": None,
        "name": name,
        "resource_type": resource_type,
        "labels": labels or [],
    }


class StandinBentoCloud:
    """The stand-in's state and HTTP server; `url` is its endpoint and `token` the one API token it accepts."""

    def __init__(self, root: Path, token: str, *, rollout_seconds: float = 180) -> None:
        self.token = token
        self.rollout_seconds = rollout_seconds
        self.servers = LocalTarget("standin-bentocloud", root)
        self.store = self.servers.store
        self.repositories: dict[tuple[str, str], dict[str, Any]] = {}
        self.artifacts: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.deployments: dict[str, Deployment] = {}
        self.requests: list[Request] = []
        self.refused: list[tuple[str, str]] = []
        self.unknown: list[tuple[str, str]] = []
        self.lock = threading.Lock()  # guards statuses, which rollouts change in the background
        self.serial = threading.Lock()  # one request at a time, as a transaction would
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.standin = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        """Stop every deployment's server, then the API."""
        for deployment in list(self.deployments.values()):
            with deployment.serial:
                self.servers.stop(deployment.name)
        self.httpd.shutdown()
        self.httpd.server_close()

    def sent(self, method: str, path: str) -> list[Request]:
        """The answered requests with this method and path."""
        return [request for request in self.requests if (request.method, request.path) == (method, path)]

    # --- push ---

    def get_repository(self, kind: str, name: str) -> Answer:
        repository = self.repositories.get((kind, name))
        return (200, repository) if repository else not_found(f"{kind} repository {name}")

    def create_repository(self, kind: str, body: dict[str, Any]) -> Answer:
        name = body["name"]
        repository = {**resource(name, f"{kind}_repository"), "description": body.get("description", "")}
        repository[f"latest_{kind}"] = None
        self.repositories[(kind, name)] = repository
        return 200, repository

    def get_artifact(self, kind: str, name: str, version: str) -> Answer:
        artifact = self.artifacts.get((kind, name, version))
        return (200, artifact) if artifact else not_found(f"{kind} {name}:{version}")

    def create_artifact(self, kind: str, name: str, body: dict[str, Any]) -> Answer:
        if (kind, name) not in self.repositories:
            return not_found(f"{kind} repository {name}")
        version = body["version"]
        # A version's resource is named by its version, which is how the client rebuilds tags (repository:name).
        artifact = {
            **resource(version, kind, body.get("labels")),
            "description": body.get("description") or "",
            "version": version,
            "image_build_status": "pending",
            "upload_status": "pending",
            "upload_finished_reason": "",
            "presigned_upload_url": "",
            "presigned_download_url": "",
            "manifest": body.get("manifest"),
            "transmission_strategy": "proxy",
            "upload_id": None,
            "upload_started_at": None,
            "upload_finished_at": None,
            "build_at": body.get("build_at") or now(),
        }
        self.artifacts[(kind, name, version)] = artifact
        return 200, artifact

    def update_artifact(self, kind: str, name: str, version: str, body: dict[str, Any]) -> Answer:
        artifact = self.artifacts.get((kind, name, version))
        if artifact is None:
            return not_found(f"{kind} {name}:{version}")
        artifact.update({key: value for key, value in body.items() if value is not None}, updated_at=now())
        return 200, artifact

    def start_upload(self, kind: str, name: str, version: str) -> Answer:
        artifact = self.artifacts.get((kind, name, version))
        if artifact is None:
            return not_found(f"{kind} {name}:{version}")
        artifact.update(upload_status="uploading", upload_started_at=now())
        return 200, artifact

    def upload(self, kind: str, name: str, version: str, data: bytes) -> Answer:
        artifact = self.artifacts.get((kind, name, version))
        if artifact is None or artifact["upload_status"] != "uploading":
            return 400, {"message": f"{kind} {name}:{version} has no upload in progress"}
        folder = self.store / f"{kind}s" / name / version
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(folder, filter="data")
        artifact.update(upload_status="success", upload_finished_at=now())
        self.repositories[(kind, name)][f"latest_{kind}"] = artifact
        return 200, None

    # --- deployments ---

    def create_deployment(self, body: dict[str, Any]) -> Answer:
        name = body.get("name")
        if not name:
            return 400, {"message": "a deployment needs a name"}
        if name in self.deployments:
            return 400, {"message": f"deployment {name} already exists"}
        problem = self.unknown_bento(body.get("bento"))
        if problem:
            return problem
        deployment = Deployment(name, body["bento"], config(body), free_port(), created_at=now())
        self.deployments[name] = deployment
        self.roll_out(deployment)
        return 200, self.describe(deployment)

    def get_deployment(self, name: str) -> Answer:
        deployment = self.deployments.get(name)
        return (200, self.describe(deployment)) if deployment else not_found(f"deployment {name}")

    def update_deployment(self, name: str, body: dict[str, Any]) -> Answer:
        deployment = self.deployments.get(name)
        if deployment is None:
            return not_found(f"deployment {name}")
        problem = self.unknown_bento(body.get("bento"))
        if problem:
            return problem
        # Like `bentoml deployment start`, an update of a terminated deployment starts it again.
        deployment.bento, deployment.config = body["bento"], config(body)
        self.roll_out(deployment)
        return 200, self.describe(deployment)

    def terminate_deployment(self, name: str) -> Answer:
        deployment = self.deployments.get(name)
        if deployment is None:
            return not_found(f"deployment {name}")
        revision = self.advance(deployment, "terminating")
        threading.Thread(target=self.terminate, args=(deployment, revision), daemon=True).start()
        return 200, self.describe(deployment)

    def unknown_bento(self, tag: Any) -> Answer | None:
        """A 404 when the tag names no Bento whose upload finished, else None."""
        name, _, version = str(tag).partition(":")
        artifact = self.artifacts.get(("bento", name, version))
        if artifact is None or artifact["upload_status"] != "success":
            return not_found(f"bento {tag}")
        return None

    def advance(self, deployment: Deployment, status: str) -> int:
        """A new revision of the deployment with this status; older rollouts no longer change it."""
        with self.lock:
            deployment.revision += 1
            deployment.status = status
            return deployment.revision

    def settle(self, deployment: Deployment, revision: int, status: str) -> None:
        """Record how a revision ended, unless a newer one replaced it meanwhile."""
        with self.lock:
            if deployment.revision == revision:
                deployment.status = status

    def roll_out(self, deployment: Deployment) -> None:
        """Serve the deployment's Bento in the background, as BentoCloud rolls a revision out after answering."""
        revision = self.advance(deployment, "deploying")
        threading.Thread(target=self.serve, args=(deployment, revision), daemon=True).start()

    def serve(self, deployment: Deployment, revision: int) -> None:
        with deployment.serial:
            if deployment.revision != revision:
                return
            name, _, version = deployment.bento.partition(":")
            envs = {item["name"]: item.get("value") or "" for item in deployment.config.get("envs") or []}
            try:
                self.servers.deploy(
                    deployment.name,
                    tag=deployment.bento,
                    archive=self.store / "bentos" / name / version,  # already in the store: nothing to import
                    version=version,
                    port=deployment.port,
                    env=envs,
                    ready_timeout=self.rollout_seconds,
                )
            except DeployError:
                self.settle(deployment, revision, FAILED)
                return
            self.settle(deployment, revision, "running")

    def terminate(self, deployment: Deployment, revision: int) -> None:
        with deployment.serial:
            self.servers.stop(deployment.name)
        self.settle(deployment, revision, "terminated")

    def status(self, deployment: Deployment) -> str:
        """The deployment's status; a running one whose server stopped answering is unhealthy."""
        if deployment.status == "running":
            serving = self.servers.current(deployment.name)
            if not (serving and serving["alive"]):
                return "unhealthy"
        return deployment.status

    def describe(self, deployment: Deployment) -> dict[str, Any]:
        """The deployment as BentoCloud answers it (DeploymentFullSchema of the v2 API)."""
        name, _, version = deployment.bento.partition(":")
        bento = {**self.artifacts[("bento", name, version)], "repository": self.repositories[("bento", name)]}
        target = {
            **resource(deployment.name, "deployment_target"),
            "creator": USER,
            "config": deployment.config,
            "bento": bento,
            "kube_resource_uid": "",
            "kube_resource_version": "",
        }
        revision = {**resource(f"revision-{deployment.revision}", "deployment_revision")}
        revision |= {"creator": USER, "status": "active", "targets": [target]}
        cluster = {**resource(CLUSTER, "cluster"), "description": "", "organization_name": ORGANIZATION}
        cluster |= {"creator": USER, "is_first": True}
        return {
            **resource(deployment.name, "deployment"),
            "uid": deployment.uid,
            "created_at": deployment.created_at,
            "status": self.status(deployment),
            "kube_namespace": "standin",
            "creator": USER,
            "cluster": cluster,
            "latest_revision": revision,
            "manifest": {"dev": False},
            "urls": [f"http://127.0.0.1:{deployment.port}"],
        }


def config(body: dict[str, Any]) -> dict[str, Any]:
    """The deployment configuration a create or update request sets (DeploymentConfigSchema)."""
    keys = ("access_authorization", "envs", "labels", "secrets", "services")
    return {key: body[key] for key in keys if body.get(key) is not None}


def not_found(what: str) -> Answer:
    return 404, {"message": f"{what} not found"}


KIND = r"/api/v1/(?P<kind>bento|model)_repositories"
VERSION = KIND + r"/(?P<name>[^/]+)/(?P=kind)s/(?P<version>[^/]+)"
DEPLOYMENT = r"/api/v2/deployments/(?P<name>[^/]+)"
ROUTES: list[tuple[str, str, Callable[..., Answer]]] = [
    ("GET", KIND + r"/(?P<name>[^/]+)", lambda s, body, **p: s.get_repository(**p)),
    ("POST", KIND, lambda s, body, **p: s.create_repository(body=body, **p)),
    ("GET", VERSION, lambda s, body, **p: s.get_artifact(**p)),
    ("POST", KIND + r"/(?P<name>[^/]+)/(?P=kind)s", lambda s, body, **p: s.create_artifact(body=body, **p)),
    ("PATCH", VERSION, lambda s, body, **p: s.update_artifact(body=body, **p)),
    ("PATCH", VERSION + "/start_upload", lambda s, body, **p: s.start_upload(**p)),
    ("PUT", VERSION + "/upload", lambda s, body, **p: s.upload(data=body, **p)),
    ("POST", r"/api/v2/deployments", lambda s, body, **p: s.create_deployment(body)),
    ("GET", DEPLOYMENT, lambda s, body, **p: s.get_deployment(**p)),
    ("PUT", DEPLOYMENT, lambda s, body, **p: s.update_deployment(body=body, **p)),
    ("POST", DEPLOYMENT + "/terminate", lambda s, body, **p: s.terminate_deployment(**p)),
]


def find_route(method: str, path: str) -> tuple[Callable[..., Answer], dict[str, str]] | None:
    """The handler of a request and the parameters in its path; None for a route the client never uses."""
    for route_method, pattern, handle in ROUTES:
        matched = re.fullmatch(pattern, path)
        if matched and route_method == method:
            return handle, matched.groupdict()
    return None


class Handler(BaseHTTPRequestHandler):
    """Routes a request to the stand-in: 404 for an unknown route, 401 without the token, else its answer."""

    protocol_version = "HTTP/1.1"  # the client keeps its connection open between requests

    def do_GET(self) -> None:
        self.route()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def route(self) -> None:
        standin: StandinBentoCloud = self.server.standin  # type: ignore[attr-defined]
        path, _, query = self.path.partition("?")
        data = self.read_body()
        found = find_route(self.command, path)
        if found is None:
            standin.unknown.append((self.command, path))
            # Yatai's (BentoCloud's open-source ancestor's) answer to a route it does not have.
            return self.answer(404, {"message": f"not found this router with method {self.command}"})
        handle, parameters = found
        if self.headers.get(TOKEN_HEADER) != standin.token:
            standin.refused.append((self.command, path))
            return self.answer(401, {"message": "invalid API token"})
        is_json = "json" in (self.headers.get("content-type") or "")
        body = json.loads(data) if is_json and data else data
        standin.requests.append(Request(self.command, path, query, body))
        with standin.serial:
            status, answer = handle(standin, body, **parameters)
        self.answer(status, answer)

    def read_body(self) -> bytes:
        """The request's body, sent with a length or in chunks."""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def answer(self, status: int, body: Any) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass
