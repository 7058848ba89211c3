"""Stand-in for a Kubernetes cluster synced by a GitOps controller (Argo CD or Flux), for the end-to-end release tests.

No cluster runs on the machines that run these tests. This stand-in does what the kit relies on a real one for:
it syncs from the repository's main branch (polling a bare repository, as a controller polls the Git server),
renders each environment's overlay with `kubectl kustomize`, and when the image the Deployment runs changes it
"pulls" that image from the docker stand-in's registry (`$STANDIN_REGISTRY/blobs/`, a Bento archive per digest)
and serves it with the kit's `local` target on a port of its own. An ingress stand-in routes
`http://127.0.0.1:PORT/<environment>/...` to the environment's server, so one URL with `{environment}` in it
serves every environment, as path-based ingress routing does. An image missing from the registry is an
image pull failure: nothing new serves, and the old server goes on (Kubernetes keeps old pods when new ones
cannot start). Production's Argo Rollouts `Rollout` (the canary component) is served like a Deployment whose
canary analysis passes: no Argo Rollouts controller runs here (tests/test_kubernetes_target.py has the abort).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from demo import free_port
from mlgitops.local_target import LocalTarget
from mlgitops.targets import DeployError


class Ingress(BaseHTTPRequestHandler):
    """Routes /<environment>/<path> to the environment's server; 503 while nothing serves it."""

    def log_message(self, *args):  # quiet
        pass

    def forward(self) -> None:
        _, environment, *rest = self.path.split("/", 2)
        port = self.server.cluster.ports.get(environment)
        body = self.rfile.read(int(self.headers.get("content-length") or 0)) or None
        status, data, kind = 503, b'{"error": "no pod is ready"}', "application/json"
        if port:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/{rest[0] if rest else ''}",
                data=body,
                method=self.command,
                headers={"content-type": self.headers.get("content-type", "application/json")},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    status, data = response.status, response.read()
                    kind = response.headers.get("content-type", kind)
            except urllib.error.HTTPError as err:
                status, data = err.code, err.read()
            except OSError:
                pass
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = forward


class StandInCluster:
    """Serves what each environment's overlay on origin's main pins, at `url` with `{environment}` filled in."""

    def __init__(self, origin: Path, project: str, registry: Path, home: Path, environments: tuple[str, ...]) -> None:
        self.origin, self.project, self.registry = origin, project, registry
        self.environments = environments
        self.target = LocalTarget(project, home)
        self.ports: dict[str, int] = {}
        self.images: dict[str, str] = {}
        self.events: list[str] = []
        self.ingress = ThreadingHTTPServer(("127.0.0.1", 0), Ingress)
        self.ingress.cluster = self
        threading.Thread(target=self.ingress.serve_forever, daemon=True).start()
        self.running = True
        self.thread = threading.Thread(target=self.sync_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ingress.server_address[1]}/{{environment}}"

    def image(self, environment: str) -> str | None:
        """The image the environment's Deployment (or Rollout) runs, rendered from origin's main as the controller
        sees it."""
        with _checkout(self.origin) as tree:
            rendered = subprocess.run(
                ["kubectl", "kustomize", str(tree / "deploy" / "kubernetes" / "overlays" / environment)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        for document in yaml.safe_load_all(rendered):
            if document and document.get("kind") in ("Deployment", "Rollout"):
                return document["spec"]["template"]["spec"]["containers"][0]["image"]
        return None

    def sync_forever(self) -> None:
        synced = ""
        while self.running:
            head = subprocess.run(["git", "--git-dir", str(self.origin), "rev-parse", "main"], capture_output=True)
            if head.stdout == synced:
                time.sleep(0.5)
                continue
            synced = head.stdout
            for environment in self.environments:
                try:
                    self.sync(environment)
                except (subprocess.CalledProcessError, DeployError, OSError) as err:
                    self.events.append(f"{environment}: sync failed: {err}")

    def sync(self, environment: str) -> None:
        image = self.image(environment)
        if not image or image == self.images.get(environment) or "@sha256:" not in image:
            return
        self.images[environment] = image
        digest = image.split("@", 1)[1]
        blob = self.registry / "blobs" / (digest.replace(":", "-") + ".bento")
        pushed = [json.loads(line) for line in (self.registry / "pushed.jsonl").read_text().splitlines()]
        reference = next((p["reference"] for p in pushed if p["digest"] == digest), None)
        if not blob.is_file() or reference is None:
            self.events.append(f"{environment}: cannot pull {image}")
            return
        version = reference.rsplit(":", 1)[1]
        port = self.ports.get(environment) or free_port()
        self.events.append(f"{environment}: rolling out {version}")
        self.target.deploy(environment, tag=f"{self.project}:{version}", archive=blob, version=version, port=port)
        self.ports[environment] = port
        self.events.append(f"{environment}: serves {version}")

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=120)
        self.ingress.shutdown()
        self.ingress.server_close()
        for environment in self.environments:
            self.target.stop(environment)


class _checkout:
    """main's tree of a bare repository in a temporary folder (what a controller's clone holds)."""

    def __init__(self, origin: Path) -> None:
        self.origin = origin

    def __enter__(self) -> Path:
        self.folder = tempfile.TemporaryDirectory()
        tree = Path(self.folder.name)
        command = ["git", "--git-dir", str(self.origin), "archive", "main"]
        archive = subprocess.run(command, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        return tree

    def __exit__(self, *exc: object) -> None:
        self.folder.cleanup()
