"""The package step: versions from commits, the release record, the smoke test's checks, reuse from the store."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from demo import bake, post, project_env, serve, sh
from mlgitops import package

STANDINS = Path(__file__).parent / "standins"

COMMIT_TIME = "2025-03-14T09:26:53+00:00"
EPOCH = 1741944413  # COMMIT_TIME as a Unix time


# --- the version ---


def test_version_is_the_commit_time_in_utc_and_the_commits_first_8_hex_digits():
    assert package.version_for("1A2B3C4D5E6F" + "0" * 28, EPOCH) == "20250314.092653.1a2b3c4d"


def test_versions_sort_by_commit_time_and_differ_for_commits_of_the_same_second():
    early = package.version_for("f" * 40, EPOCH)
    late = package.version_for("0" * 40, EPOCH + 1)
    same_second = package.version_for("e" * 40, EPOCH)
    assert sorted([late, early]) == [early, late]
    assert same_second != early


def test_derived_versions_are_valid_bentoml_versions():
    import bentoml

    for sha, when in (("0" * 40, 0), ("abcdef12" * 5, EPOCH), ("9" * 40, 4102444799)):
        version = package.check_version(package.version_for(sha, when))
        assert str(bentoml.Tag("project", version)) == f"project:{version}"


@pytest.mark.parametrize("version", ["V1", "1.0.", "-1", "a b", "x" * 64, ""])
def test_a_version_bentoml_would_refuse_or_rewrite_is_refused_in_one_sentence(version):
    with pytest.raises(package.PackageError, match="is not a valid release version") as refused:
        package.check_version(version)
    assert "\n" not in str(refused.value)


def test_the_bento_tag_is_read_from_bentoml_builds_tag_line():
    output = "Building...\n__tag__:cancer-classifier:20250314.092653.1a2b3c4d\n"
    assert package.parse_bento_tag(output) == "cancer-classifier:20250314.092653.1a2b3c4d"
    with pytest.raises(package.PackageError, match="printed no __tag__ line: Error: no bentofile"):
        package.parse_bento_tag("Error: no bentofile\n")


# --- the smoke test's checks ---


def test_the_distribution_guard_passes_a_model_whose_predictions_follow_the_labels():
    truth = ["benign"] * 63 + ["malignant"] * 37
    package.check_distribution(truth, ["benign"] * 60 + ["malignant"] * 40, max_share=0.95)


def test_the_distribution_guard_refuses_one_class_for_everyone_naming_the_class_and_the_setting():
    truth = ["benign"] * 63 + ["malignant"] * 37
    with pytest.raises(package.PackageError) as refused:
        package.check_distribution(truth, ["benign"] * 100, max_share=0.95)
    assert str(refused.value) == (
        "the model predicts 'benign' for 100% of the reference rows, where it is 63% of labels, beyond "
        "mlgitops.report.max_majority_share (0.95): a degenerate model is not released."
    )


def test_the_distribution_guard_accepts_a_majority_that_the_labels_share_too():
    package.check_distribution(["a"] * 97 + ["b"] * 3, ["a"] * 98 + ["b"] * 2, max_share=0.95)


def test_a_served_metric_off_the_in_process_one_fails_naming_both():
    package.check_skew("f1_macro", 0.962067, 0.9621, tolerance=0.001)
    with pytest.raises(package.PackageError, match=r"scores f1_macro = 0\.900000 .* scores 0\.962067 in process"):
        package.check_skew("f1_macro", 0.962067, 0.9, tolerance=0.001)


def test_a_failed_server_is_explained_by_the_last_exception_in_its_log():
    log = "INFO starting\nTraceback (most recent call last):\n  File x\nRuntimeError: model missing\nINFO Exiting.\n"
    assert package.failure_reason(log) == "RuntimeError: model missing"
    assert package.failure_reason("INFO starting\nINFO still starting\n") == "INFO still starting"


def start(tmp_path: Path, code: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A stand-in server process running the code, its output in a log."""
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, log


def test_a_server_that_exits_before_it_is_ready_fails_with_its_reason(tmp_path):
    server, log = start(tmp_path, "import sys; print('ValueError: no model', flush=True); sys.exit(3)")
    server.wait()
    with pytest.raises(package.PackageError, match=r"exited \(code 3\) before it was ready: ValueError: no model"):
        package.wait_ready(server, "http://127.0.0.1:9", log, ready_within=30)


def test_a_service_whose_startup_fails_is_given_up_at_once_though_its_server_lives_on(tmp_path):
    code = "import time; print('KeyError: features\\nApplication startup failed. Exiting.', flush=True); time.sleep(60)"
    server, log = start(tmp_path, code)
    try:
        time.sleep(0.5)
        started = time.monotonic()
        with pytest.raises(package.PackageError, match="the Bento's service failed to start: KeyError: features"):
            package.wait_ready(server, "http://127.0.0.1:9", log, ready_within=30)
        assert time.monotonic() - started < 5
    finally:
        package.stop(server)
    assert server.poll() is not None


def test_a_server_that_never_gets_ready_fails_after_the_timeout_and_is_stopped(tmp_path):
    server, log = start(tmp_path, "import time; print('loading', flush=True); time.sleep(60)")
    try:
        with pytest.raises(package.PackageError, match="was not ready within 1 s: loading"):
            package.wait_ready(server, "http://127.0.0.1:9", log, ready_within=1)
    finally:
        package.stop(server)
    assert server.poll() is not None


class StandinService(BaseHTTPRequestHandler):
    """A stand-in for a served Bento: answers /predict naming `model`, and refuses unknown features with `refusal`."""

    model = "demo:abc"
    refusal = 400

    def do_POST(self) -> None:
        instances = json.loads(self.rfile.read(int(self.headers["content-length"])))["instances"]
        if any(package.UNKNOWN_FEATURE in instance for instance in instances):
            status, body = self.refusal, {"error": "extra field"}
        else:
            predictions = [{"label": "a", "probabilities": {"a": 1.0}} for _ in instances]
            status, body = 200, {"model": self.model, "predictions": predictions}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@contextlib.contextmanager
def standin_service(**behaviour: object):
    handler = type("Configured", (StandinService,), behaviour)
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_reference_requests_go_in_batches_of_100_and_every_answer_must_name_the_release_model():
    instances = [{"x": float(i)} for i in range(250)]
    with standin_service() as url:
        assert len(package.predict_all(url, instances, "demo:abc")) == 250
    with standin_service(model="demo:other") as url, pytest.raises(package.PackageError) as refused:
        package.predict_all(url, instances, "demo:abc")
    assert (
        str(refused.value)
        == "the served Bento answered reference requests 1-100 with model 'demo:other', not demo:abc."
    )


def test_a_service_that_accepts_an_unknown_feature_fails_the_smoke_test():
    with standin_service() as url:
        assert package.check_refuses_invalid(url, {"x": 1.0}) == 400
    with standin_service(refusal=200) as url, pytest.raises(package.PackageError, match="answered 200 to a request"):
        package.check_refuses_invalid(url, {"x": 1.0})


def test_an_sbom_that_cannot_be_written_fails_the_step_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(package, "python", lambda *args: [sys.executable, "-m", "no_such_sbom_tool"])
    with pytest.raises(package.PackageError) as refused:
        package.write_sbom(tmp_path / "sbom.cdx.json")
    assert str(refused.value).startswith("the SBOM could not be written (is cyclonedx-bom installed?): ")
    assert "No module named no_such_sbom_tool" in str(refused.value) and "\n" not in str(refused.value)


# --- what the release records ---

LOCK = """\
schema: '2.0'
stages:
  prepare:
    cmd: python -m demo prepare
    deps:
    - path: data/raw/dataset.csv
      hash: md5
      md5: 11111111111111111111111111111111
      size: 10
    outs:
    - path: data/prepared/test.csv
      hash: md5
      md5: 22222222222222222222222222222222
      size: 5
    - path: data/prepared/train.csv
      hash: md5
      md5: 33333333333333333333333333333333
      size: 5
  train:
    cmd: python -m demo train
    deps:
    - path: data/prepared/train.csv
      md5: 33333333333333333333333333333333
    outs:
    - path: models/model.joblib
      md5: 44444444444444444444444444444444
"""


def test_data_hashes_are_those_of_the_stage_that_prepares_the_data():
    assert package.data_hashes(LOCK, ["data/prepared/train.csv", "data/prepared/test.csv"]) == {
        "deps": {"data/raw/dataset.csv": "md5:11111111111111111111111111111111"},
        "outs": {
            "data/prepared/test.csv": "md5:22222222222222222222222222222222",
            "data/prepared/train.csv": "md5:33333333333333333333333333333333",
        },
    }
    assert package.data_hashes(None, ["data/prepared/train.csv"]) == {"deps": {}, "outs": {}}


def test_the_recorded_params_are_the_pipelines_without_the_kits_section():
    text = "data:\n  seed: 42\nmodel:\n  C: 1.0\nmlgitops:\n  report:\n    max_majority_share: 0.9\n"
    assert package.pipeline_params(text) == {"data": {"seed": 42}, "model": {"C": 1.0}}


REFERENCE = {"metric": "f1_macro", "higher_is_better": True, "offline": 0.962067, "rows": 143, "top_class_share": 0.65}
SMOKE = {
    "passed": True,
    "served_metric": 0.962067,
    "top_class_share": 0.65,
    "agreement": 1.0,
    "rows": 143,
    "requests": 2,
    "invalid_request_status": 400,
    "max_majority_share": 0.95,
    "skew_tolerance": 0.001,
    "ready_seconds": 9.5,
    "seconds": 15.0,
}
FACTS = {
    "data": {"deps": {"data/raw/dataset.csv": "md5:1111"}, "outs": {"data/prepared/train.csv": "md5:3333"}},
    "params": {"model": {"family": "logistic_regression", "C": 1.0}},
    "metrics": {"f1_macro": 0.962067, "log_loss": 0.07759},
    "versions": {"python": "3.11.7", "bentoml": "1.4.39", "scikit-learn": "1.9.1"},
    "warnings": [],
}


def record(**changes: object) -> dict:
    given = {
        "project": "demo",
        "version": "20250314.092653.1a2b3c4d",
        "commit": "1a2b3c4d" + "0" * 32,
        "bento": "demo:20250314.092653.1a2b3c4d",
        "model": "demo:aaaa",
        "digest": "sha256:" + "b" * 64,
        "model_sha256": "a" * 64,
        "committed_model_sha256": "a" * 64,
        "reference": REFERENCE,
        "smoke": SMOKE,
        "facts": FACTS,
        "created_at": "2025-03-14T09:30:00Z",
    }
    return package.release_record(**(given | changes))


def test_release_json_names_the_artifact_its_sources_and_what_its_checks_measured():
    release = record()
    assert release["format"] == 1
    assert release["archive"] == "demo-20250314.092653.1a2b3c4d.bento"
    assert release["metric"] == {"name": "f1_macro", "higher_is_better": True, "offline": 0.962067, "rows": 143}
    assert release["reference"] == {
        "dir": "reference",
        "rows": 143,
        "top_class_share": 0.65,
        "files": [
            "reference.csv",
            "reference.json",
            "reference_requests.json",
        ],
    }
    assert release["smoke"]["passed"] is True
    assert {key: release[key] for key in FACTS} == FACTS
    # What the artifact store requires of a manifest: the archive's name and its digest.
    assert release["digest"].startswith("sha256:") and len(release["digest"]) == 7 + 64


def test_the_model_card_states_the_release_facts_and_warns_when_ci_made_another_model():
    card = package.model_card(record())
    for fact in ("1a2b3c4d" + "0" * 32, "sha256:" + "b" * 64, "md5:1111", "C: 1.0", "0.962067", "1.4.39", "≤ 95%"):
        assert fact in card, fact
    assert "same digest" in card
    other = package.model_card(record(committed_model_sha256="c" * 64))
    assert "⚠️ The commit holds another model" in other and "c" * 64 in other


def test_every_file_of_a_release_has_a_plain_name_in_the_store():
    files = package.layout(record())
    assert not any("/" in name for name in files)
    assert files["reference.json"] == "reference/reference.json"
    assert files["demo-20250314.092653.1a2b3c4d.bento"] == "demo-20250314.092653.1a2b3c4d.bento"


# --- reuse from the store, and failures that store nothing ---


class StandinStore:
    """A stand-in for mlgitops.store's Store: whole releases kept in memory, files fetched by plain name."""

    def __init__(self) -> None:
        self.releases: dict[str, dict[str, bytes]] = {}

    def has(self, version: str) -> bool:
        return version in self.releases

    def put(self, version: str, files: dict[str, Path]) -> None:
        self.releases[version] = {name: Path(path).read_bytes() for name, path in files.items()}

    def manifest(self, version: str) -> dict:
        return json.loads(self.releases[version]["release.json"])

    def get(self, version: str, name: str, dest: Path) -> Path:
        Path(dest).write_bytes(self.releases[version][name])
        return Path(dest)


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_COMMITTER_DATE": COMMIT_TIME, "GIT_AUTHOR_DATE": COMMIT_TIME}
    command = ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args]
    return subprocess.run(command, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A committed project with what the package step reads before building, as the working directory."""
    root = tmp_path / "demo"
    root.mkdir()
    (root / "bentofile.yaml").write_text('service: "demo_pkg.service:Classifier"\nname: demo\n')
    (root / "params.yaml").write_text("model:\n  C: 1.0\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "Project")
    monkeypatch.chdir(root)
    return root


def built_release(out: Path, commit: str, version: str) -> dict:
    """Write the files of a built release into out, as the build does; return its release.json."""
    archive = out / package.archive_name("demo", version)
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.write_bytes(b"bento archive of " + version.encode())
    release = record(
        version=version, commit=commit, digest=f"sha256:{hashlib.sha256(archive.read_bytes()).hexdigest()}"
    )
    for name in package.REFERENCE_FILES:
        (out / "reference").mkdir(exist_ok=True)
        (out / "reference" / name).write_text("{}\n")
    (out / package.CARD_FILE).write_text(package.model_card(release))
    (out / package.SBOM_FILE).write_text('{"bomFormat": "CycloneDX"}\n')
    (out / package.RELEASE_FILE).write_text(json.dumps(release))
    return release


@pytest.fixture
def store(monkeypatch):
    """The stand-in store, opened whatever --store names."""
    standin = StandinStore()
    monkeypatch.setattr(package, "open_release_store", lambda url, project: standin)
    return standin


def outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return {line.split("<<")[0]: lines[i + 1] for i, line in enumerate(lines) if "<<ghadelimiter_" in line}


def test_a_stored_version_is_fetched_and_checked_never_rebuilt(project, store, tmp_path, monkeypatch):
    # Given the store holds this commit's release
    commit = git(project, "rev-parse", "HEAD")
    version = package.version_for(commit, EPOCH)
    stored = built_release(tmp_path / "earlier", commit, version)
    store.put(version, {name: tmp_path / "earlier" / path for name, path in package.layout(stored).items()})
    monkeypatch.setattr(package, "build", lambda *args: pytest.fail("a stored release was rebuilt"))
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "outputs"))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    # When the package step runs
    assert package.main(["--out", "release", "--store", "standin"]) == 0
    # Then the release folder holds the stored files, and the outputs name the stored archive
    assert json.loads((project / "release" / "release.json").read_text()) == stored
    assert (project / "release" / "reference" / "reference.json").is_file()
    archive = project / "release" / stored["archive"]
    assert archive.read_bytes() == (tmp_path / "earlier" / stored["archive"]).read_bytes()
    assert outputs(tmp_path / "outputs") == {
        "version": version,
        "bento": stored["bento"],
        "model": stored["model"],
        "digest": stored["digest"],
        "archive": str(Path("release") / stored["archive"]),
        "release-dir": "release",
    }
    assert "already in the artifact store" in (tmp_path / "summary.md").read_text()


def test_a_stored_archive_that_does_not_match_its_digest_is_refused(project, store, tmp_path, monkeypatch, capsys):
    commit = git(project, "rev-parse", "HEAD")
    version = package.version_for(commit, EPOCH)
    stored = built_release(tmp_path / "earlier", commit, version)
    store.put(version, {name: tmp_path / "earlier" / path for name, path in package.layout(stored).items()})
    store.releases[version][stored["archive"]] = b"substituted"
    assert package.main(["--out", "release", "--store", "standin"]) == 1
    assert f"::error title=package::the stored archive of release {version} does not match" in capsys.readouterr().out


def test_a_stored_version_of_another_commit_is_refused(project, store, tmp_path, capsys):
    version = "20250314.092653.1a2b3c4d"
    stored = built_release(tmp_path / "earlier", "f" * 40, version)
    store.put(version, {name: tmp_path / "earlier" / path for name, path in package.layout(stored).items()})
    assert package.main(["--out", "release", "--store", "standin", "--version", version]) == 1
    assert "the store holds release 20250314.092653.1a2b3c4d of commit ffffffffffff" in capsys.readouterr().out


def test_a_built_release_goes_into_the_store_whole(project, store, tmp_path, monkeypatch):
    commit = git(project, "rev-parse", "HEAD")

    def build(_project, version, sha, out, _repository=""):
        return built_release(out, sha, version)

    monkeypatch.setattr(package, "build", build)
    assert package.main(["--out", "release", "--store", "standin", "--commit", "HEAD"]) == 0
    [(version, files)] = store.releases.items()
    assert version == package.version_for(commit, EPOCH)
    assert set(files) == set(package.layout(json.loads(files["release.json"])))


def test_a_failed_build_stores_nothing_and_says_why_in_one_sentence(project, store, tmp_path, monkeypatch, capsys):
    def build(*_args):
        raise package.PackageError("the Bento's service failed to start: RuntimeError: no model")

    monkeypatch.setattr(package, "build", build)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary.md"))
    assert package.main(["--out", "release", "--store", "standin"]) == 1
    assert store.releases == {}
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("::error")]
    assert errors == ["::error title=package::the Bento's service failed to start: RuntimeError: no model"]
    assert "❌" in (tmp_path / "summary.md").read_text()


def test_a_commit_other_than_the_checked_out_one_is_refused(project, capsys):
    first = git(project, "rev-parse", "HEAD")
    (project / "README.md").write_text("More.\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "More")
    assert package.main(["--out", "release", "--commit", first]) == 1
    assert f"not {first}: check out the commit first" in capsys.readouterr().out


def test_a_folder_that_is_not_a_project_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert package.main(["--out", "release"]) == 1
    assert (
        "bentofile.yaml is missing: run the package step at the root of a generated project" in capsys.readouterr().out
    )


# --- end to end, on a baked project ---

STORE_AVAILABLE = importlib.util.find_spec("mlgitops.store") is not None


@pytest.fixture(scope="module")
def baked(tmp_path_factory):
    """The default project with its reproduced baseline; each test packages a copy of its own."""
    return bake(tmp_path_factory.mktemp("package") / "out")


def copy_of(baked: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the baked project and its environment, running the actions it vendors as CI does."""
    project = Path(shutil.copytree(baked, tmp_path / baked.name, symlinks=True))
    env = project_env(project, tmp_path / "bentoml")
    env["PYTHONPATH"] = os.pathsep.join([str(project / ".github" / "actions"), str(project / "src")])
    return project, env


def run_package(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "mlgitops.package", "--out", "dist/release", *args]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=900, check=False)


def sha256_of(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def packaged(baked, tmp_path_factory):
    """The default project after the package step, with a local-folder artifact store when this kit has one."""
    root = tmp_path_factory.mktemp("packaged")
    project, env = copy_of(baked, root)
    store = ["--store", str(root / "store")] if STORE_AVAILABLE else []
    env["GITHUB_OUTPUT"] = str(root / "outputs")
    result = run_package(project, env, *store)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    release = json.loads((project / "dist" / "release" / "release.json").read_text(encoding="utf-8"))
    return project, env, store, release


@pytest.mark.slow
def test_package_step_releases_an_archive_that_serves_the_packaged_model(packaged, tmp_path):
    # Given the default project after the package step
    project, env, _store, release = packaged
    out = project / "dist" / "release"
    # Then the release names this commit, the pinned model and the archive's digest
    commit = sh(["git", "rev-parse", "HEAD"], project, env).strip()
    meta = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))
    assert (release["commit"], release["version"][-8:]) == (commit, commit[:8])
    assert release["model"] == f"{project.name}:{meta['sha256'][:20]}"
    assert release["model_sha256"] == release["committed_model_sha256"] == meta["sha256"]
    archive = out / release["archive"]
    assert release["digest"] == sha256_of(archive) == outputs(Path(env["GITHUB_OUTPUT"]))["digest"]
    # and its smoke test served the reference metric the model scores in process
    assert release["smoke"]["passed"] is True
    assert release["smoke"]["served_metric"] == release["metric"]["offline"]
    assert release["smoke"]["invalid_request_status"] == 400
    # with a model card and an SBOM of the environment beside it
    card = (out / "model_card.md").read_text(encoding="utf-8")
    assert commit in card and meta["sha256"] in card and "data/prepared/train.csv" in card
    sbom = json.loads((out / "sbom.cdx.json").read_text(encoding="utf-8"))
    assert {"bentoml", "scikit-learn", "dvc"} <= {component["name"] for component in sbom["components"]}

    # When the archive alone is imported into an empty BentoML home and served
    serve_env = {k: v for k, v in env.items() if k != "PYTHONPATH"} | {"BENTOML_HOME": str(tmp_path / "fresh")}
    sh(["bentoml", "import", str(archive)], tmp_path, serve_env)
    reference = json.loads((out / "reference" / "reference.json").read_text(encoding="utf-8"))
    instances = json.loads((out / "reference" / "reference_requests.json").read_text(encoding="utf-8"))["instances"]
    with serve(release["bento"], tmp_path, serve_env) as url:
        status, answer = post(f"{url}/predict", {"instances": instances[:50]})
    # Then it answers with the packaged model's own predictions
    assert status == 200 and answer["model"] == release["model"]
    assert [p["label"] for p in answer["predictions"]] == reference["labels"][:50]


@pytest.mark.slow
@pytest.mark.skipif(not STORE_AVAILABLE, reason="this kit has no artifact store (mlgitops.store)")
def test_a_second_package_run_reuses_the_stored_release(packaged, tmp_path):
    # Given a stored release, and a runner whose release folder and BentoML home are empty
    project, env, store, release = packaged
    out = project / "dist" / "release"
    shutil.rmtree(out)
    env = {**env, "BENTOML_HOME": str(tmp_path / "bentoml"), "GITHUB_OUTPUT": str(tmp_path / "outputs")}
    # When the package step runs again
    again = run_package(project, env, *store)
    # Then it fetches the stored release, same digest, and builds nothing
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert "already in the artifact store" in again.stdout
    assert json.loads((out / "release.json").read_text(encoding="utf-8")) == release
    assert sha256_of(out / release["archive"]) == release["digest"] == outputs(tmp_path / "outputs")["digest"]
    assert not (tmp_path / "bentoml" / "bentos").exists()


def crash_on_start(project: Path) -> None:
    service = project / "src" / project.name.replace("-", "_") / "service.py"
    text = service.read_text(encoding="utf-8")
    start = "    def __init__(self) -> None:\n"
    service.write_text(text.replace(start, start + '        raise RuntimeError("simulated crash on start")\n'))


def predict_one_class(project: Path) -> None:
    # Regularised this hard, logistic regression predicts the majority class for everyone.
    params = project / "params.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("  C: 1.0", "  C: 0.0001"), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (crash_on_start, "the Bento's service failed to start: RuntimeError: simulated crash on start"),
        (predict_one_class, "the model predicts 'benign' for 100% of the reference rows, where it is 63% of labels"),
    ],
    ids=["crash-on-start", "one-class-for-everyone"],
)
def test_package_step_refuses_a_release_that_fails_its_smoke_test(baked, tmp_path, change, reason):
    # Given a commit whose service crashes on start, or whose model predicts one class for everyone
    project, env = copy_of(baked, tmp_path)
    change(project)
    sh(["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qam", "Change"], project, env)
    # When the package step runs
    result = run_package(project, env, *(["--store", str(tmp_path / "store")] if STORE_AVAILABLE else []))
    # Then it fails with one error naming the reason, and the store holds no release
    assert result.returncode == 1, result.stdout[-3000:]
    [error] = [line for line in result.stdout.splitlines() if line.startswith("::error")]
    assert reason in error.replace("%25", "%"), error  # the runner decodes the annotation's escapes
    assert not (tmp_path / "store").exists() or not any((tmp_path / "store").rglob("release.json"))


@pytest.mark.slow
def test_the_image_step_pushes_the_bento_and_pins_the_digest_the_registry_returned(packaged, tmp_path):
    # Given a packaged Bento, and the docker stand-in with its registry first on PATH
    project, env, _store, release = packaged
    env = {**env, "PATH": f"{STANDINS / 'docker'}{os.pathsep}{env['PATH']}", "STANDIN_REGISTRY": str(tmp_path / "reg")}
    code = "import sys; from mlgitops.package import push_image; print(push_image(*sys.argv[1:]))"
    # When the image step containerizes it with bentoml and pushes it
    image = sh([sys.executable, "-c", code, release["bento"], "ghcr.io/octo/shop", release["version"]], project, env)
    # Then the release's image is the pushed one, pinned by the digest the push printed
    pushed = json.loads((tmp_path / "reg" / "pushed.jsonl").read_text(encoding="utf-8"))
    assert pushed["reference"] == f"ghcr.io/octo/shop:{release['version']}"
    assert image.strip().splitlines()[-1] == f"ghcr.io/octo/shop@{pushed['digest']}"
    # and the image holds the Bento with its model: it imports into an empty BentoML home
    blob = tmp_path / "reg" / "blobs" / (pushed["digest"].replace(":", "-") + ".bento")
    fresh = {**env, "BENTOML_HOME": str(tmp_path / "fresh")}
    sh(["bentoml", "import", str(blob)], tmp_path, fresh)
    assert release["bento"] in sh(["bentoml", "list", "-o", "json"], tmp_path, fresh)
    assert release["model"].split(":")[1] in sh(["bentoml", "models", "list", "-o", "json"], tmp_path, fresh)


def test_an_image_repository_that_registries_refuse_is_refused_in_one_sentence():
    assert package.image_repository("GHCR.io/Octo/Shop") == "ghcr.io/octo/shop"
    with pytest.raises(package.PackageError, match=r"'ghcr.io/octo/shop:v1' is not an image repository"):
        package.image_repository("ghcr.io/octo/shop:v1")


def test_the_spread_guard_refuses_a_regressor_that_answers_nearly_one_number_naming_the_setting():
    package.check_spread(0.6, least=0.1)
    with pytest.raises(package.PackageError) as refused:
        package.check_spread(0.02, least=0.1)
    assert str(refused.value) == (
        "the served predictions of the reference rows spread 2% as wide as the truth, below "
        "mlgitops.report.min_spread_ratio (0.1): a degenerate model is not released."
    )


def test_the_model_card_states_each_tasks_guard():
    smoke = {"top_class_share": 0.3, "max_majority_share": 0.95}
    classifier = {"smoke": smoke, "reference": {"top_class_share": 0.31}}
    assert package.guard_row(classifier) == ["share of the most predicted class", "31.0%", "30.0%", "≤ 95%"]
    regressor = {
        "smoke": {**smoke, "spread_ratio": 0.66, "min_spread_ratio": 0.1},
        "reference": {"top_class_share": 0.31, "spread_ratio": 0.66},
    }
    assert package.guard_row(regressor)[1:] == ["66.0%", "66.0%", "≥ 10%"]
    assert (package.answers(classifier["smoke"]), package.answers(regressor["smoke"])) == ("labels", "numbers")
