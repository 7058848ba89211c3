"""package: build a commit's release artifact (a Bento archive), smoke-test it, describe it, and store it.

Run at the project's root, in the project's environment. A release's version comes from its commit:
`<committer time, UTC, YYYYMMDD.HHMMSS>.<first 8 hex digits of the commit>`, e.g. `20250314.092653.1a2b3c4d`.
It is a valid BentoML version (lowercase letters, digits and dots), unique per commit, and sorts by
commit time as text. A version already in the artifact store is reused, never rebuilt: `bentoml export`
archives are not byte-reproducible, and staging and production must run one digest.

Otherwise the pipeline is reproduced, the model registered under its content-derived tag, the Bento
built and exported, a frozen reference sample written, and the archive smoke-tested: imported into an
empty BentoML home and served on 127.0.0.1, it must become ready, answer the reference requests with the
release's model, refuse an invalid request with 400, keep its predictions off a single class, and score
the reference metric the model scores in process. Then come the model card and the SBOM, and the whole
release goes into the store in one put.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from . import contract, gha, gitrefs, trust
from . import markdown as md
from .model_report import majority_guard
from .supervisor import STARTUP_FAILED
from .train import has_remote, run_within

FORMAT = 1
VERSION = re.compile(r"[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?")
BENTO_TAG = re.compile(r"^__tag__:(?P<name>[^:\s]+):(?P<version>\S+)$", re.MULTILINE)
# Packages whose versions decide what the model computes and how it is served and reproduced.
PACKAGES = ("bentoml", "scikit-learn", "pandas", "numpy", "dvc")
REFERENCE = "reference"
REFERENCE_FILES = ("reference.csv", "reference.json", "reference_requests.json")
# The training data's profile travels with the release: the model monitor compares live inputs with it.
PROFILE_FILE = "data_profile.json"
RELEASE_FILE, CARD_FILE, SBOM_FILE = "release.json", "model_card.md", "sbom.cdx.json"
# The service accepts up to 1000 instances a request; smaller batches keep each answer quick.
BATCH = 100
UNKNOWN_FEATURE = "mlgitops smoke test: no such feature"
# What a server log says when the service cannot start (uvicorn) or its model failed its readiness probe (the
# generated service): the server would only retry, so the smoke test stops waiting.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception)\b.*$", re.MULTILINE)
# Defaults of the release settings when the project's contract names none.
SKEW_TOLERANCE = 0.001
READY_SECONDS = 120.0


# REGISTRY[:PORT]/PATH in lower case, as `docker push` accepts it (the tag is the release version).
IMAGE_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\.[a-z0-9-]+)*(?::[0-9]+)?"  # registry host and port
    r"(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)+"  # path components
)


class PackageError(RuntimeError):
    """A reason the package step cannot release this commit, in one sentence."""


@dataclass(frozen=True)
class Project:
    """What the package step needs to know of the project: its Bento's name, its package and its contract."""

    name: str
    package: str
    settings: dict[str, Any] = field(repr=False)

    @property
    def paths(self) -> dict[str, str]:
        return self.settings["paths"]

    @property
    def max_majority_share(self) -> float:
        return float(self.settings["report"]["max_majority_share"])

    @property
    def min_spread_ratio(self) -> float:
        return float(self.settings["report"]["min_spread_ratio"])

    def release_setting(self, key: str, default: float) -> float:
        return float((self.settings.get("release") or {}).get(key, default))


def read_project(root: Path = Path()) -> Project:
    """The project at root: the Bento's name and the service's package from bentofile.yaml, the contract from params."""
    bentofile = root / "bentofile.yaml"
    if not bentofile.is_file():
        raise PackageError(f"{bentofile} is missing: run the package step at the root of a generated project.")
    spec = yaml.safe_load(bentofile.read_text(encoding="utf-8")) or {}
    name, service = spec.get("name"), spec.get("service")
    if not isinstance(name, str) or not isinstance(service, str) or ":" not in service:
        raise PackageError(f"{bentofile} must name the Bento (name:) and its service (service: package.module:Class).")
    try:
        settings = contract.load(root / contract.PARAMS_FILE)
    except contract.ContractError as err:
        raise PackageError(str(err)) from None
    return Project(name=name, package=service.split(".")[0].split(":")[0], settings=settings)


# --- the version ---


def version_for(commit: str, committed_at: int) -> str:
    """The release version of a commit: its committer time in UTC, then its first 8 hex digits."""
    stamp = datetime.fromtimestamp(committed_at, UTC).strftime("%Y%m%d.%H%M%S")
    return f"{stamp}.{commit[:8].lower()}"


def check_version(version: str) -> str:
    """The version, if BentoML accepts it (lowercase letters, digits, '.', '_', '-'; ends alphanumeric; ≤ 63)."""
    if VERSION.fullmatch(version) is None:
        raise PackageError(
            f"{version!r} is not a valid release version: use at most 63 lowercase letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit."
        )
    return version


def resolve_commit(requested: str) -> tuple[str, int]:
    """The full hash and committer time of the commit to package, which must be what the workspace has checked out."""
    head = gitrefs.git("rev-parse", "--verify", "HEAD^{commit}")
    if head.returncode != 0:
        raise PackageError("the working directory is not a git repository with a commit to package.")
    sha = head.stdout.strip()
    if requested:
        wanted = gitrefs.git("rev-parse", "--verify", "--quiet", f"{requested}^{{commit}}")
        if requested.startswith("-") or wanted.returncode != 0:
            raise PackageError(f"{requested!r} is not a commit of this repository.")
        if wanted.stdout.strip() != sha:
            raise PackageError(
                f"the workspace has {sha[:12]} checked out, not {requested}: check out the commit first."
            )
    stamp = gitrefs.git("show", "-s", "--format=%ct", sha)
    return sha, int(stamp.stdout.strip())


# --- running the tools ---


def last_line(text: str) -> str:
    """The last non-empty line of a tool's output: usually its reason for failing."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def run(command: Sequence[str], title: str, *, timeout: float = 900, env: dict[str, str] | None = None) -> str:
    """Run a tool, fold its output into the log as untrusted text, and return its stdout; fail with its last line."""
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise PackageError(f"{title} did not finish within {timeout:g} s.") from None
    except OSError as err:
        raise PackageError(f"{title} could not start: {err}.") from None
    gha.log_untrusted(title, done.stdout + done.stderr)
    if done.returncode != 0:
        raise PackageError(f"{title} failed (exit {done.returncode}): {last_line(done.stderr or done.stdout)}")
    return done.stdout


def python(*args: str) -> list[str]:
    """A command of this interpreter: the project's environment has every tool the step runs."""
    return [sys.executable, "-m", *args]


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- reproducing and building ---


def reproduce(budget_minutes: float, warnings: list[str]) -> None:
    """Pull what a DVC remote holds (a failure is only a warning), then reproduce the pipeline within its budget."""
    if has_remote():
        done = subprocess.run(
            python("dvc", "pull", "--run-cache", "--allow-missing"), capture_output=True, text=True, check=False
        )
        gha.log_untrusted("dvc pull", done.stdout + done.stderr)
        if done.returncode != 0:
            warnings.append(f"dvc pull failed, so the pipeline ran without the remote: {last_line(done.stderr)}")
    returncode, output = run_within(python("dvc", "repro"), budget_minutes * 60)
    gha.log_untrusted("dvc repro", output)
    if returncode is None:
        raise PackageError(f"the pipeline ran past its budget of {budget_minutes:g} minutes and was stopped.")
    if returncode != 0:
        raise PackageError(f"the pipeline failed: {last_line(output)}")


def model_digests(meta_path: str, commit: str) -> tuple[str, str | None]:
    """The model digest models/model.json names after CI's run, and the one the commit holds (None if it holds none)."""
    reproduced = json.loads(Path(meta_path).read_text(encoding="utf-8"))["sha256"]
    committed = gitrefs.show_json(commit, meta_path)
    return reproduced, committed.get("sha256") if isinstance(committed, dict) else None


def parse_bento_tag(output: str) -> str:
    """The Bento tag `bentoml build --output tag` printed as `__tag__:NAME:VERSION`."""
    found = BENTO_TAG.findall(output)
    if not found:
        raise PackageError(f"bentoml build printed no __tag__ line: {last_line(output)}")
    name, version = found[-1]
    return f"{name}:{version}"


def build_bento(project: Project, version: str) -> tuple[str, str]:
    """Register the model and build the Bento at this version; return the model's tag and the Bento's."""
    model = last_line(run(python(project.package, "register"), "register the model"))
    tag = f"{project.name}:{version}"
    command = python("bentoml", "build", "--version", version, "--output", "tag")
    try:
        output = run(command, "bentoml build")
    except PackageError as err:
        if "already exists" not in str(err):
            raise
        # An earlier run on this machine left a Bento of this version, which the artifact store lacks: replace it.
        run(python("bentoml", "delete", tag, "--yes"), "bentoml delete")
        output = run(command, "bentoml build")
    built = parse_bento_tag(output)
    if built != tag:
        raise PackageError(f"bentoml build made {built}, not {tag}: bentofile.yaml names another Bento.")
    return model, built


def export(tag: str, archive: Path) -> str:
    """Export the Bento, model included, to one archive; return its digest."""
    archive.unlink(missing_ok=True)
    # bentoml reads a relative path as relative to the filesystem's root.
    run(python("bentoml", "export", tag, str(archive.resolve())), "bentoml export")
    if not archive.is_file():
        raise PackageError(f"bentoml export wrote no {archive.name}.")
    return f"sha256:{sha256_file(archive)}"


def image_repository(repository: str) -> str:
    """The image repository as registries name it (lower case), refused in one sentence when it is not one."""
    name = repository.strip().lower()
    if not IMAGE_REPOSITORY.fullmatch(name):
        raise PackageError(f"{repository!r} is not an image repository (REGISTRY/NAME, e.g. ghcr.io/owner/project).")
    return name


def push_image(bento: str, repository: str, version: str) -> str:
    """Build the Bento's container image, push it, and return it pinned by the digest the registry gave it."""
    reference = f"{repository}:{version}"
    run(python("bentoml", "containerize", bento, "--image-tag", reference), "bentoml containerize", timeout=3600)
    pushed = run(["docker", "push", reference], "docker push", timeout=1800)
    # The digest exists only once the registry has the image: `docker push` prints `TAG: digest: sha256:HEX size: N`.
    found = re.findall(r"digest: (sha256:[0-9a-f]{64})", pushed)
    if not found:
        raise PackageError(f"docker push {reference} printed no digest, so the image cannot be pinned.")
    return f"{repository}@{found[-1]}"


def write_sbom(target: Path) -> int:
    """The CycloneDX SBOM of this environment; return how many components it lists."""
    # The tool's own schema validation takes half a minute here; the checks below catch an unusable file.
    described = ["--pyproject", "pyproject.toml"] if Path("pyproject.toml").is_file() else []  # the project itself
    command = python("cyclonedx_py", "environment", *described, "--no-validate", "-o", str(target), sys.executable)
    try:
        run(command, "cyclonedx-py environment")
        bom = json.loads(target.read_text(encoding="utf-8"))
    except (PackageError, OSError, json.JSONDecodeError) as err:
        raise PackageError(f"the SBOM could not be written (is cyclonedx-bom installed?): {err}") from None
    if not isinstance(bom, dict) or bom.get("bomFormat") != "CycloneDX" or not bom.get("components"):
        raise PackageError(f"{target} is not a CycloneDX SBOM listing this environment's packages.")
    return len(bom["components"])


# --- the smoke test ---


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(url: str, payload: object, timeout: float = 60) -> tuple[int, Any]:
    """POST JSON; the status and the decoded answer (text when it is not JSON), for refusals too."""
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    except (OSError, TimeoutError) as err:
        return 0, str(err)
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body.decode(errors="replace")


@contextlib.contextmanager
def served(tag: str, home: Path, log: Path, ready_within: float) -> Iterator[str]:
    """Serve a Bento from an imported BentoML home on 127.0.0.1; yield its URL once /readyz says so; always stop it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "MLGITOPS_ENVIRONMENT": "smoke"}
    command = python("bentoml", "serve", tag, "--host", "127.0.0.1", "--port", str(port))
    with log.open("w", encoding="utf-8") as out:
        # Its own session, so that stopping it stops its workers too.
        server = subprocess.Popen(
            command, cwd=home, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(server, url, log, ready_within)
        yield url
    finally:
        stop(server)
        gha.log_untrusted("bentoml serve (smoke test)", log.read_text(encoding="utf-8", errors="replace"))


def failure_reason(log: str) -> str:
    """Why a server failed, from its log: the last exception it names, else its last line."""
    exceptions = EXCEPTION_LINE.findall(log)
    return exceptions[-1].strip() if exceptions else last_line(log)


def wait_ready(server: subprocess.Popen[bytes], url: str, log: Path, ready_within: float) -> None:
    """Wait for /readyz to answer 200; fail with the log's reason when the server exits, cannot start or is too slow."""
    deadline = time.monotonic() + ready_within
    while True:
        text = log.read_text(encoding="utf-8", errors="replace")
        if server.poll() is not None:
            reason = failure_reason(text)
            raise PackageError(f"the Bento's server exited (code {server.returncode}) before it was ready: {reason}")
        if any(marker in text for marker in STARTUP_FAILED):
            raise PackageError(f"the Bento's service failed to start: {failure_reason(text)}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
            if response.status == 200:
                return
        if time.monotonic() > deadline:
            raise PackageError(f"the Bento's server was not ready within {ready_within:g} s: {failure_reason(text)}")
        time.sleep(0.5)


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop a server and every process of its session: politely, then for good."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, sig)
        try:
            server.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def predict_all(url: str, instances: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """The served predictions of every instance, in order, in batches; each answer must name the release's model."""
    predictions: list[dict[str, Any]] = []
    for start in range(0, len(instances), BATCH):
        batch = instances[start : start + BATCH]
        status, answer = post(f"{url}/predict", {"instances": batch})
        where = f"reference requests {start + 1}-{start + len(batch)}"
        if status != 200 or not isinstance(answer, dict):
            raise PackageError(f"the served Bento answered {status or 'nothing'} to {where}: {str(answer)[:200]}")
        if answer.get("model") != model:
            raise PackageError(f"the served Bento answered {where} with model {answer.get('model')!r}, not {model}.")
        got = answer.get("predictions")
        if not isinstance(got, list) or len(got) != len(batch):
            raise PackageError(f"the served Bento did not answer each of {where} with one prediction.")
        predictions.extend(got)
    return predictions


def check_refuses_invalid(url: str, instance: dict[str, Any]) -> int:
    """An instance with an unknown feature must get 400: the service validates what it is sent."""
    status, answer = post(f"{url}/predict", {"instances": [{**instance, UNKNOWN_FEATURE: 1.0}]})
    if status != 400:
        raise PackageError(
            f"the served Bento answered {status or 'nothing'} to a request with an unknown feature, not 400: "
            f"{str(answer)[:200]}"
        )
    return status


def check_distribution(truth: list[str], labels: list[str], max_share: float) -> None:
    """The pull request gate's prediction guard, on the served predictions of the reference rows."""
    ok, sentence, _shares = majority_guard(list(zip(truth, labels, strict=True)), max_share, "the reference rows")
    if not ok:
        raise PackageError(
            f"{sentence}, beyond mlgitops.report.max_majority_share ({max_share:g}): "
            "a degenerate model is not released."
        )


def check_spread(ratio: float, least: float) -> None:
    """A regressor's guard, on the served predictions of the reference rows: they must vary as the truth does."""
    if ratio < least:
        raise PackageError(
            f"the served predictions of the reference rows spread {ratio:.0%} as wide as the truth, below "
            f"mlgitops.report.min_spread_ratio ({least:g}): a degenerate model is not released."
        )


def check_skew(metric: str, offline: float, served_value: float, tolerance: float) -> None:
    """The served metric must be the one the model scores in process on the same rows."""
    if abs(served_value - offline) > tolerance:
        raise PackageError(
            f"the served Bento scores {metric} = {served_value:.6f} on the reference rows, but the model scores "
            f"{offline:.6f} in process (tolerance {tolerance:g}): it does not serve the packaged model faithfully."
        )


def score(package: str, reference: Path, predictions: list[dict[str, Any]], work: Path) -> dict[str, Any]:
    """The project's own scoring of served predictions (its evaluate stage's metric definitions)."""
    answers = work / "served_predictions.json"
    answers.write_text(json.dumps(predictions), encoding="utf-8")
    output = run(
        python(package, "score", "--reference", str(reference), "--predictions", str(answers)), "score the predictions"
    )
    return json.loads(output)


def reference_truth(reference: Path, target: str) -> list[str]:
    """The reference rows' actual labels."""
    with (reference / "reference.csv").open(newline="", encoding="utf-8") as handle:
        return [row[target] for row in csv.DictReader(handle)]


def smoke_test(project: Project, archive: Path, bento: str, model: str, reference: Path) -> dict[str, Any]:
    """Import the archive into an empty BentoML home, serve it, and check it answers as the packaged model does."""
    summary = json.loads((reference / "reference.json").read_text(encoding="utf-8"))
    instances = json.loads((reference / "reference_requests.json").read_text(encoding="utf-8"))["instances"]
    ready_within = project.release_setting("ready_seconds", READY_SECONDS)
    tolerance = project.release_setting("skew_tolerance", SKEW_TOLERANCE)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlgitops-smoke-") as work:
        home = Path(work) / "bentoml"
        home.mkdir()
        env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
        run(python("bentoml", "import", str(archive.resolve())), "bentoml import (smoke test)", env=env)
        with served(bento, home, Path(work) / "serve.log", ready_within) as url:
            ready = time.perf_counter() - started
            predictions = predict_all(url, instances, model)
            refused = check_refuses_invalid(url, instances[0])
        regression = summary.get("task") == "regression"
        if not regression:
            labels = [str(p.get("label")) for p in predictions]
            check_distribution(reference_truth(reference, summary["target"]), labels, project.max_majority_share)
        scored = score(project.package, reference, predictions, Path(work))
    if regression:
        check_spread(float(scored["spread_ratio"]), project.min_spread_ratio)
    check_skew(summary["metric"], float(summary["offline"]), float(scored["value"]), tolerance)
    guard = {"spread_ratio": scored["spread_ratio"], "min_spread_ratio": project.min_spread_ratio} if regression else {}
    return {
        "passed": True,
        "served_metric": scored["value"],
        "top_class_share": scored["top_class_share"],
        **guard,
        "agreement": scored["agreement"],
        "rows": len(predictions),
        "requests": math.ceil(len(instances) / BATCH),
        "invalid_request_status": refused,
        "max_majority_share": project.max_majority_share,
        "skew_tolerance": tolerance,
        "ready_seconds": round(ready, 2),
        "seconds": round(time.perf_counter() - started, 2),
    }


# --- what the release records ---


def data_hashes(lock_text: str | None, produced: Sequence[str]) -> dict[str, dict[str, str]]:
    """The md5 of each input and output of the stages that write the given paths (the prepared data), per dvc.lock."""
    found: dict[str, dict[str, str]] = {"deps": {}, "outs": {}}
    for entry in trust.stages_of(lock_text).values():
        outs = {str(item.get("path")): item for item in entry.get("outs") or [] if isinstance(item, dict)}
        if not set(produced) & set(outs):
            continue
        for kind, items in (("deps", entry.get("deps") or []), ("outs", outs.values())):
            for item in items:
                if isinstance(item, dict) and "md5" in item:
                    found[kind][str(item["path"])] = f"md5:{item['md5']}"
    return found


def pipeline_params(params_text: str | None) -> dict[str, Any]:
    """params.yaml as the pipeline reads it: without the kit's own section."""
    params = yaml.safe_load(params_text or "") or {}
    return {key: value for key, value in params.items() if key != contract.SECTION} if isinstance(params, dict) else {}


def versions() -> dict[str, str | None]:
    """Python's version and those of the packages that matter, as installed in this environment."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def archive_name(project: str, version: str) -> str:
    """The archive's file name: the Bento's name and version."""
    return f"{project}-{version}.bento"


def release_record(
    *,
    project: str,
    version: str,
    commit: str,
    bento: str,
    model: str,
    digest: str,
    model_sha256: str,
    committed_model_sha256: str | None,
    reference: dict[str, Any],
    smoke: dict[str, Any],
    facts: dict[str, Any],
    created_at: str,
    image: str = "",
) -> dict[str, Any]:
    """release.json: what was released, from which commit, data and parameters, and what its checks measured."""
    return {
        "format": FORMAT,
        "project": project,
        "version": version,
        "commit": commit,
        "bento": bento,
        "model": model,
        "archive": archive_name(project, version),
        "digest": digest,
        **({"image": image} if image else {}),
        "model_sha256": model_sha256,
        "committed_model_sha256": committed_model_sha256,
        "metric": {
            "name": reference["metric"],
            "higher_is_better": reference["higher_is_better"],
            "offline": reference["offline"],
            "rows": reference["rows"],
        },
        "reference": {
            "dir": REFERENCE,
            "rows": reference["rows"],
            "top_class_share": reference["top_class_share"],
            **({"spread_ratio": reference["spread_ratio"]} if "spread_ratio" in reference else {}),
            "files": reference.get("files", list(REFERENCE_FILES)),
        },
        "smoke": smoke,
        "model_card": CARD_FILE,
        "sbom": SBOM_FILE,
        "created_at": created_at,
        **facts,
    }


def number(value: Any) -> str:
    """A metric's value for a table: numbers as they are, anything else made inert."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return f"{value:g}" if is_number else md.text(value)


def guard_row(release: dict[str, Any]) -> list[str]:
    """The degenerate-model guard as a row of the model card: check, in process, served, limit."""
    smoke = release["smoke"]
    if "spread_ratio" in smoke:
        spread = release["reference"].get("spread_ratio")
        return [
            "spread of the predictions (standard deviation, share of the truth's)",
            "" if spread is None else f"{spread:.1%}",
            f"{smoke['spread_ratio']:.1%}",
            f"≥ {smoke['min_spread_ratio']:.0%}",
        ]
    return [
        "share of the most predicted class",
        f"{release['reference']['top_class_share']:.1%}",
        f"{smoke['top_class_share']:.1%}",
        f"≤ {smoke['max_majority_share']:.0%}",
    ]


def answers(smoke: dict[str, Any]) -> str:
    """What the served model answers, in the card's words."""
    return "numbers" if "spread_ratio" in smoke else "labels"


def model_card(release: dict[str, Any]) -> str:
    """The model card: the release's facts for a person, from release.json."""
    metric, smoke = release["metric"], release["smoke"]
    direction = "higher" if metric["higher_is_better"] else "lower"
    same_model = release["model_sha256"] == release["committed_model_sha256"]
    lines = [
        f"# Model card: {md.code(release['project'])} release {md.code(release['version'])}",
        "",
        md.table(
            ["", ""],
            [
                ["Bento", md.code(release["bento"])],
                ["Model", f"{md.code(release['model'])}, sha256 {md.code(release['model_sha256'])}"],
                ["Code", f"commit {md.code(release['commit'])}"],
                ["Archive", f"{md.code(release['archive'])}, {md.code(release['digest'])}"],
                ["Created", md.code(release["created_at"])],
            ],
        ),
        "",
        "## Provenance of the model",
        "",
        "CI reproduced the pipeline of this commit and packaged the model it produced. "
        + (
            "That model is the one the commit holds (same digest)."
            if same_model
            else f"⚠️ The commit holds another model (sha256 {md.code(release['committed_model_sha256'])}): "
            "the committed results were not reproduced exactly. The released model is CI's."
        ),
        "",
        "## Data",
        "",
        md.table(
            ["role", "file", "hash"],
            [
                [role, md.code(path), md.code(digest)]
                for role, files in (("input", release["data"]["deps"]), ("prepared", release["data"]["outs"]))
                for path, digest in sorted(files.items())
            ],
        ),
        "",
        "## Parameters",
        "",
        "```yaml",
        yaml.safe_dump(release["params"], sort_keys=False).rstrip().replace("```", "` ` `"),
        "```",
        "",
        "## Metrics (test split, reproduced by CI)",
        "",
        md.table(
            ["metric", "value"],
            [
                [md.code(name) + (" (primary)" if name == metric["name"] else ""), number(value)]
                for name, value in release["metrics"].items()
            ],
        ),
        "",
        "## Release checks",
        "",
        f"Served from the archive in an empty BentoML home: ready in {smoke['ready_seconds']} s; "
        f"{smoke['rows']} reference rows (a frozen sample of the test split) in {smoke['requests']} requests; "
        f"an invalid request refused with {smoke['invalid_request_status']}.",
        "",
        md.table(
            ["check", "in process", "served", "limit"],
            [
                [
                    f"{md.code(metric['name'])} ({direction} is better)",
                    f"{metric['offline']:.6f}",
                    f"{smoke['served_metric']:.6f}",
                    f"± {smoke['skew_tolerance']:g}",
                ],
                guard_row(release),
                [f"{answers(smoke)} equal to the model's in process", "", f"{smoke['agreement']:.1%}", ""],
            ],
        ),
        "",
        "## Environment",
        "",
        md.table(
            ["package", "version"],
            [[md.code(k), md.code(v or "not installed")] for k, v in release["versions"].items()],
        ),
        "",
        f"Software bill of materials: {md.code(release['sbom'])} (CycloneDX).",
    ]
    return "\n".join(lines) + "\n"


def gather_facts(project: Project, warnings: list[str]) -> dict[str, Any]:
    """The model card's facts that do not come from the build: data hashes, params, metrics, versions, warnings."""
    lock = Path(trust.LOCK)
    metrics = Path(project.paths["metrics"])
    return {
        "data": data_hashes(
            lock.read_text(encoding="utf-8") if lock.is_file() else None,
            [project.paths["train"], project.paths["test"]],
        ),
        "params": pipeline_params(Path(contract.PARAMS_FILE).read_text(encoding="utf-8")),
        "metrics": json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else {},
        "versions": versions(),
        "warnings": warnings,
    }


# --- the artifact store ---


def layout(release: dict[str, Any]) -> dict[str, str]:
    """Each file of a release: its name in the store (plain names only) and its path in the release folder."""
    files = {name: name for name in (RELEASE_FILE, CARD_FILE, SBOM_FILE, release["archive"])}
    # Releases list their reference files (older ones have no training profile).
    kept = (release.get("reference") or {}).get("files") or REFERENCE_FILES
    return files | {name: f"{REFERENCE}/{name}" for name in kept}


def open_release_store(url: str, project: str) -> Any:
    """The artifact store the URL names (mlgitops.store)."""
    try:
        from .store import open_store
    except ImportError:
        raise PackageError(
            "this copy of the kit has no artifact store (mlgitops.store), so --store cannot be used."
        ) from None
    with store_errors("open"):
        return open_store(url, project)


@contextlib.contextmanager
def store_errors(doing: str) -> Iterator[None]:
    """The store's errors (one sentence each) as the package step's."""
    try:
        yield
    except PackageError:
        raise
    except (RuntimeError, OSError) as err:
        raise PackageError(f"the artifact store could not {doing}: {err}") from None


def reuse(store: Any, version: str, commit: str, out: Path) -> dict[str, Any]:
    """Fetch a stored release into the release folder, checking it is this commit's and its archive is intact."""
    with store_errors(f"fetch release {version}"):
        release = store.manifest(version)
        if release.get("commit") != commit:
            raise PackageError(
                f"the store holds release {version} of commit {str(release.get('commit'))[:12]}, not of {commit[:12]}: "
                "name another version."
            )
        for name, relative in layout(release).items():
            target = out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            store.get(version, name, target)
    archive = out / release["archive"]
    if f"sha256:{sha256_file(archive)}" != release["digest"]:
        raise PackageError(f"the stored archive of release {version} does not match its digest {release['digest']}.")
    return release


def publish(store: Any, version: str, out: Path, release: dict[str, Any]) -> None:
    """Put the whole release into the store in one put, so it is stored whole or not at all."""
    with store_errors(f"store release {version}"):
        store.put(version, {name: out / relative for name, relative in layout(release).items()})


# --- the step ---


@dataclass
class Options:
    """What to package and where to put it."""

    out: Path
    store: str = ""
    version: str = ""
    commit: str = ""
    image_repository: str = ""


def clear(out: Path) -> None:
    """Remove the files an earlier run wrote into the release folder, so none is mistaken for this run's."""
    for path in [out / REFERENCE, out / RELEASE_FILE, out / CARD_FILE, out / SBOM_FILE, *out.glob("*.bento")]:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def build(project: Project, version: str, commit: str, out: Path, repository: str = "") -> dict[str, Any]:
    """Reproduce, build, export, smoke-test and describe the release into the release folder."""
    warnings: list[str] = []
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = round(now - clock, 2)
        clock = now

    reproduce(float(project.settings["budget"]["pipeline_minutes"]), warnings)
    reproduced, committed = model_digests(project.paths["model_meta"], commit)
    if reproduced != committed:
        warnings.append(
            f"CI reproduced model sha256 {reproduced[:12]}, but the commit holds {str(committed)[:12]}: "
            "the released model is CI's"
        )
    lap("reproduce")
    model, bento = build_bento(project, version)
    archive = out / archive_name(project.name, version)
    digest = export(bento, archive)
    lap("build")
    run(python(project.package, "reference", "--out", str(out / REFERENCE)), "write the reference sample")
    profile = Path(project.paths["data_profile"])
    if profile.is_file():
        shutil.copyfile(profile, out / REFERENCE / PROFILE_FILE)
    reference = json.loads((out / REFERENCE / "reference.json").read_text(encoding="utf-8"))
    reference["files"] = [name for name in (*REFERENCE_FILES, PROFILE_FILE) if (out / REFERENCE / name).is_file()]
    lap("reference")
    smoke = smoke_test(project, archive, bento, model, out / REFERENCE)
    lap("smoke")
    # Only a Bento that passed its smoke test becomes an image; its registry digest is the release's image.
    image = push_image(bento, repository, version) if repository else ""
    if image:
        lap("image")
    components = write_sbom(out / SBOM_FILE)
    lap("sbom")
    release = release_record(
        project=project.name,
        version=version,
        commit=commit,
        bento=bento,
        model=model,
        digest=digest,
        model_sha256=reproduced,
        committed_model_sha256=committed,
        reference=reference,
        smoke=smoke,
        facts=gather_facts(project, warnings) | {"sbom_components": components, "seconds": seconds},
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        image=image,
    )
    (out / CARD_FILE).write_text(model_card(release), encoding="utf-8")
    return release


def package(options: Options) -> tuple[dict[str, Any], bool]:
    """Package the commit: reuse its stored release or build, check and store a new one. True when reused."""
    started = time.perf_counter()
    project = read_project()
    commit, committed_at = resolve_commit(options.commit)
    version = check_version(options.version or version_for(commit, committed_at))
    gha.set_output("version", version)  # set first, so a failed run can still record which release failed
    store = open_release_store(options.store, project.name) if options.store else None
    clear(options.out)
    with store_errors(f"look for release {version}"):
        stored = store is not None and store.has(version)
    repository = image_repository(options.image_repository) if options.image_repository else ""
    if stored:
        release = reuse(store, version, commit, options.out)
        if repository and not str(release.get("image", "")).startswith(f"{repository}@"):
            raise PackageError(
                f"release {version} is stored without an image in {repository}; an immutable release is not "
                "changed: package another version."
            )
        return release, True
    release = build(project, version, commit, options.out, repository)
    release.setdefault("seconds", {})["total"] = round(time.perf_counter() - started, 2)
    # Written last: a release folder with a release.json is a complete one.
    (options.out / RELEASE_FILE).write_text(json.dumps(release, indent=2) + "\n", encoding="utf-8")
    if store is not None:
        publish(store, version, options.out, release)
    return release, False


def render(release: dict[str, Any], reused: bool, stored: bool) -> str:
    """The job summary's section: what was released and what its checks found."""
    lines = ["### Package", ""]
    if reused:
        lines.append(
            f"Release {md.code(release['version'])} was already in the artifact store: its archive was fetched and "
            "its digest checked, not rebuilt."
        )
    else:
        smoke, metric, guard = release["smoke"], release["metric"], guard_row(release)
        lines.append(
            f"Built and smoke-tested release {md.code(release['version'])} in {release['seconds']['total']} s"
            + (", and stored it." if stored else " (no artifact store named: not stored).")
        )
        lines += [
            "",
            md.table(
                ["check", "result"],
                [
                    [
                        f"served {md.code(metric['name'])} = in process",
                        f"{smoke['served_metric']:.6f} = {metric['offline']:.6f} ({smoke['rows']} reference rows)",
                    ],
                    [guard[0], f"{guard[2]} {guard[3]}"],
                    ["invalid request", f"refused with {smoke['invalid_request_status']}"],
                    ["ready after", f"{smoke['ready_seconds']} s"],
                ],
            ),
        ]
        if release.get("warnings"):
            lines += ["", *(f"- ⚠️ {md.text(warning, limit=400)}" for warning in release["warnings"])]
    lines += [
        "",
        md.table(
            ["", ""],
            [
                ["Bento", md.code(release["bento"])],
                ["model", md.code(release["model"])],
                ["archive", f"{md.code(release['archive'])} {md.code(release['digest'])}"],
                *([["image", md.code(release["image"])]] if release.get("image") else []),
                ["commit", md.code(release["commit"])],
            ],
        ),
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Package the checked-out commit; exit 1 with one sentence when it cannot be released."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.package", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="release folder to write")
    parser.add_argument(
        "--store", default="", help="artifact store URL (a folder, or dvc://REMOTE); empty stores nothing"
    )
    parser.add_argument("--version", default="", help="release version (default: from the commit's time and hash)")
    parser.add_argument("--commit", default="", help="commit to package; must be the one checked out (default: HEAD)")
    parser.add_argument(
        "--image-repository", default="", help="also build the container image and push it there (REGISTRY/NAME)"
    )
    args = parser.parse_args(argv)
    options = Options(args.out, args.store, args.version, args.commit, args.image_repository)
    try:
        release, reused = package(options)
    except PackageError as err:
        gha.set_output("failure", str(err))
        gha.annotate("error", str(err), title="package")
        gha.add_summary(f"### Package\n\n❌ {md.text(str(err), limit=600)}")
        return 1
    for warning in release.get("warnings", []) if not reused else []:
        gha.annotate("warning", warning, title="package")
    gha.add_summary(render(release, reused, stored=bool(args.store)))
    outputs = {
        "version": release["version"],
        "bento": release["bento"],
        "model": release["model"],
        "digest": release["digest"],
        "archive": str(args.out / release["archive"]),
        "release-dir": str(args.out),
        **({"image": release["image"]} if release.get("image") else {}),
    }
    for name, value in outputs.items():
        gha.set_output(name, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
