"""Stand-ins for the release tests: a served model speaking the generated service's API, and a store of releases.

`Served` answers as its release's `behaviour` says (honest, skewed, one class for everyone, honest on the
reference rows but contrary on any other row), so each test
states the fault it injects; `FolderStore` keeps releases as folders with a stand-in archive.
"""

from __future__ import annotations

import json
import subprocess
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from mlgitops import release

CLASSES = ["no", "yes"]
LABELS = ["yes", "no", "yes", "no", "no", "yes", "no", "no"]
# The project's `score` command, reduced to accuracy and the top class's share: what verify asks of a project.
SCORE = """
import argparse, json, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("command")
parser.add_argument("--reference", type=pathlib.Path)
parser.add_argument("--predictions", type=pathlib.Path)
args = parser.parse_args()
truth = json.loads((args.reference / "reference.json").read_text())["truth"]
served = [p["label"] for p in json.loads(args.predictions.read_text())]
top = max(served.count(c) for c in set(served)) / len(served)
value = sum(a == b for a, b in zip(truth, served)) / len(truth)
print(json.dumps({"metric": "accuracy", "value": value, "top_class_share": top, "rows": len(served)}))
"""


class Served(BaseHTTPRequestHandler):
    """The generated service's routes, answering as the release's behaviour says."""

    def log_message(self, *args):  # quiet
        pass

    def reply(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.reply(200, {})

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["content-length"])) or b"{}")
        release_ = self.server.release
        if self.path == "/model_info":
            return self.reply(200, {"tag": release_["model"], "bento_version": release_["version"]})
        instances = payload.get("instances", [])
        if any("a feature no model has" in instance for instance in instances):
            return self.reply(400, {"error": "unknown feature"})
        labels = []
        for instance in instances:
            truth = LABELS[instance["row"] % len(LABELS)]
            behaviour = release_["behaviour"]
            if behaviour == "drifts" and instance["row"] >= len(LABELS):  # honest on the reference rows only
                labels.append("no" if truth == "yes" else "yes")
            elif behaviour == "degenerate":
                labels.append("no")
            elif behaviour == "skewed" and instance["row"] % 2:
                labels.append("no" if truth == "yes" else "yes")
            else:
                labels.append(truth)
        predictions = [{"label": label, "probabilities": {label: 1.0}} for label in labels]
        self.reply(200, {"model": release_["model"], "predictions": predictions})


class FolderStore:
    """Releases as folders: the manifest, a stand-in archive (the manifest again) and the reference set."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, version: str, behaviour: str = "honest", image: str = "") -> dict:
        manifest = {
            "version": version,
            "bento": f"shop:{version}",
            "model": f"shop:model-{version}",
            "digest": f"sha256:{version}",
            "commit": "0" * 40,
            "archive": "shop.bento",
            "metric": {"name": "accuracy", "higher_is_better": True, "offline": 1.0, "rows": len(LABELS)},
            "behaviour": behaviour,
            **({"image": image} if image else {}),
        }
        folder = self.root / version
        folder.mkdir(parents=True)
        (folder / "release.json").write_text(json.dumps(manifest))
        (folder / "shop.bento").write_text(json.dumps(manifest))
        (folder / "reference.json").write_text(json.dumps({"truth": LABELS}))
        (folder / "reference.csv").write_text("row\n" + "\n".join(map(str, range(len(LABELS)))))
        requests = {"instances": [{"row": i} for i in range(len(LABELS))]}
        (folder / "reference_requests.json").write_text(json.dumps(requests))
        return manifest

    def manifest(self, version: str) -> dict:
        path = self.root / version / "release.json"
        if not path.is_file():
            raise release.store.StoreError(f"the store holds no release {version}.")
        return json.loads(path.read_text())

    def get(self, version: str, name: str, dest: Path, digest: str | None = None) -> Path:
        dest.write_bytes((self.root / version / name).read_bytes())
        return dest


def git(cwd: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args]
    return subprocess.run(command, cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()
