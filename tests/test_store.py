"""The release artifact store: a folder or a DVC remote, whole releases only, immutable, served only verified."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import uuid
from pathlib import Path

import pytest
from fsspec.implementations.memory import MemoryFileSystem

from mlgitops import store as store_module
from mlgitops.store import SUMS, Store, StoreError, open_store

PROJECT = "churn-model"
KINDS = ["folder", "file-url", "dvc-default-remote", "dvc-named-remote", "object-store"]


def write_release(folder: Path, version: str, archive_bytes: bytes | None = None) -> dict[str, Path]:
    """A release as the packaging writes it: the exported Bento, its manifest naming it by digest, and a report."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / f"churn_model-{version}.bento"
    archive.write_bytes(archive_bytes if archive_bytes is not None else f"bento archive {version}".encode() * 1000)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    manifest = folder / "release.json"
    manifest.write_text(json.dumps({"version": version, "archive": archive.name, "digest": f"sha256:{digest}"}))
    metrics = folder / "metrics.json"
    metrics.write_text(json.dumps({"accuracy": 0.91}))
    return {"release.json": manifest, archive.name: archive, "metrics.json": metrics}


def write_dvc_config(project: Path, config: str, local: str | None = None) -> Path:
    """A DVC project's .dvc/config (and config.local), in the format `dvc remote add` writes."""
    (project / ".dvc").mkdir(parents=True, exist_ok=True)
    (project / ".dvc" / "config").write_text(config)
    if local is not None:
        (project / ".dvc" / "config.local").write_text(local)
    return project


@pytest.fixture(autouse=True)
def no_user_dvc_config(tmp_path_factory, monkeypatch):
    """Keep the developer's own global and system DVC config (a default remote, say) out of these tests."""
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path_factory.mktemp("dvc-global")))
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path_factory.mktemp("dvc-system")))


def open_kind(kind: str, tmp_path: Path) -> Store:
    """An empty store of a kind; DVC remotes are local folders, configured as `dvc remote add` writes them."""
    if kind == "folder":
        return open_store(str(tmp_path / "releases"), PROJECT)
    if kind == "object-store":
        # fsspec's in-memory filesystem behaves like a bucket: no real folders, a move is a copy and a delete.
        # Its contents are shared by every instance, so each test gets a bucket of its own.
        bucket = f"/bucket-{uuid.uuid4().hex}"
        return Store(MemoryFileSystem(), f"{bucket}/releases", PROJECT, f"memory:/{bucket}/releases")
    if kind == "file-url":
        return open_store((tmp_path / "releases").as_uri(), PROJECT)
    # `dvc remote add -d shared ../remote`, run in the project, stores the path relative to .dvc/.
    config = "[core]\n    remote = shared\n['remote \"shared\"']\n    url = ../../remote\n"
    config += "['remote \"other\"']\n    url = /nonexistent/other\n"
    project = write_dvc_config(tmp_path / "project", config)
    return open_store("dvc://" if kind == "dvc-default-remote" else "dvc://shared", PROJECT, repo=project)


@pytest.fixture(params=KINDS)
def store(request, tmp_path) -> Store:
    return open_kind(request.param, tmp_path)


def read_stored(store: Store, version: str, name: str) -> bytes:
    """A stored file's bytes, read behind the store's back."""
    return store.fs.cat_file(f"{store.folder}/{version}/{name}")


def write_stored(store: Store, version: str, name: str, data: bytes) -> None:
    """Write a file into the store behind its back, as bit rot or someone with write access to the bucket would."""
    store.fs.makedirs(f"{store.folder}/{version}", exist_ok=True)
    store.fs.pipe_file(f"{store.folder}/{version}/{name}", data)


def stored_names(store: Store, version: str) -> list[str]:
    """The names of the files in a version's folder, whether or not the store counts it as a release."""
    return sorted(str(path).rsplit("/", 1)[-1] for path in store.fs.find(f"{store.folder}/{version}"))


def one_sentence(error: pytest.ExceptionInfo[StoreError]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_given_a_release_when_stored_then_it_is_listed_and_served_as_it_was(store, tmp_path):
    files = write_release(tmp_path / "build", "1.0.0")

    store.put("1.0.0", files)

    assert store.has("1.0.0")
    assert store.versions() == ["1.0.0"]
    assert store.manifest("1.0.0") == json.loads(files["release.json"].read_text())
    out = tmp_path / "fetched"
    out.mkdir()
    for name, source in files.items():
        assert store.get("1.0.0", name, out).read_bytes() == source.read_bytes()
    renamed = store.get("1.0.0", "metrics.json", tmp_path / "elsewhere" / "m.json")
    assert renamed == tmp_path / "elsewhere" / "m.json" and renamed.read_bytes() == files["metrics.json"].read_bytes()
    assert sorted(path.name for path in out.iterdir()) == sorted(files)


def test_given_a_dvc_remote_then_releases_live_in_its_releases_folder_beside_dvcs_own(tmp_path):
    store = open_kind("dvc-default-remote", tmp_path)
    store.put("1.0.0", write_release(tmp_path / "build", "1.0.0"))
    assert (tmp_path / "remote" / "releases" / PROJECT / "1.0.0" / SUMS).is_file()


def test_given_a_stored_release_when_the_same_files_are_stored_again_then_nothing_is_written(
    store, tmp_path, monkeypatch
):
    files = write_release(tmp_path / "build", "1.0.0")
    store.put("1.0.0", files)
    writes = []
    for method in ("put_file", "pipe_file", "mv", "rm"):
        monkeypatch.setattr(store.fs, method, lambda *args, method=method, **kwargs: writes.append(method))

    store.put("1.0.0", files)

    assert writes == []


def test_given_a_stored_release_when_other_files_are_stored_under_its_version_then_refused_and_it_stays(
    store, tmp_path
):
    store.put("1.0.0", write_release(tmp_path / "first", "1.0.0"))
    archive = read_stored(store, "1.0.0", "churn_model-1.0.0.bento")

    with pytest.raises(StoreError, match=r"already stored .* with other contents .*files never change") as error:
        store.put("1.0.0", write_release(tmp_path / "second", "1.0.0", archive_bytes=b"a retrained model"))

    assert "churn_model-1.0.0.bento" in one_sentence(error)
    assert read_stored(store, "1.0.0", "churn_model-1.0.0.bento") == archive


@pytest.mark.parametrize("killed_in", ["put_file", "mv"], ids=["while-uploading-files", "while-committing"])
def test_given_an_upload_killed_midway_then_the_release_is_never_served_and_a_retry_completes_it(
    store, tmp_path, monkeypatch, killed_in
):
    files = write_release(tmp_path / "build", "1.0.0")
    real = getattr(store.fs, killed_in)
    calls = []

    def killed(*args, **kwargs):
        calls.append(args)
        if killed_in == "mv" or len(calls) == 2:
            # The process dies here: no exception handler of the store runs, as with SIGKILL.
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(store.fs, killed_in, killed)
    with pytest.raises(KeyboardInterrupt):
        store.put("1.0.0", files)
    monkeypatch.setattr(store.fs, killed_in, real)

    assert stored_names(store, "1.0.0") != []
    assert not store.has("1.0.0")
    assert store.versions() == []
    with pytest.raises(StoreError, match="never stored whole") as error:
        store.get("1.0.0", "release.json", tmp_path / "out.json")
    one_sentence(error)
    with pytest.raises(StoreError, match="never stored whole"):
        store.manifest("1.0.0")
    assert not (tmp_path / "out.json").exists()

    store.put("1.0.0", files)
    assert store.versions() == ["1.0.0"]
    assert stored_names(store, "1.0.0") == sorted([*files, SUMS])


def test_given_a_corrupted_archive_in_the_store_when_fetched_then_refused_and_nothing_is_written(store, tmp_path):
    store.put("1.0.0", write_release(tmp_path / "build", "1.0.0"))
    write_stored(store, "1.0.0", "churn_model-1.0.0.bento", b"bit rot")
    out = tmp_path / "out"
    out.mkdir()

    with pytest.raises(StoreError, match="corrupted or was substituted, so it is not served") as error:
        store.get("1.0.0", "churn_model-1.0.0.bento", out)

    assert "sha256:" + hashlib.sha256(b"bit rot").hexdigest() in one_sentence(error)
    assert list(out.iterdir()) == []


def test_given_an_archive_substituted_with_its_checksum_list_then_the_manifests_digest_refuses_it(store, tmp_path):
    store.put("1.0.0", write_release(tmp_path / "build", "1.0.0"))
    archive = "churn_model-1.0.0.bento"
    write_stored(store, "1.0.0", archive, b"another model")
    sums = store_module.parse_sums(read_stored(store, "1.0.0", SUMS).decode())
    sums[archive] = hashlib.sha256(b"another model").hexdigest()
    write_stored(store, "1.0.0", SUMS, store_module.format_sums(sums).encode())

    with pytest.raises(StoreError, match=r"not the sha256:[0-9a-f]{64} release.json records") as error:
        store.get("1.0.0", archive, tmp_path / "out.bento")

    one_sentence(error)
    assert not (tmp_path / "out.bento").exists()


def test_given_the_digest_the_promotion_recorded_when_the_store_holds_another_release_then_it_is_refused(
    store, tmp_path
):
    recorded = json.loads(write_release(tmp_path / "promoted", "1.0.0")["release.json"].read_text())["digest"]
    # Someone with write access to the store replaced the whole release, checksums and manifest included.
    store.put("1.0.0", write_release(tmp_path / "replaced", "1.0.0", archive_bytes=b"not what was promoted"))

    with pytest.raises(StoreError, match="the promoted release records") as error:
        store.get("1.0.0", "churn_model-1.0.0.bento", tmp_path / "out.bento", digest=recorded)

    one_sentence(error)
    assert not (tmp_path / "out.bento").exists()
    ok = store.get("1.0.0", "churn_model-1.0.0.bento", tmp_path / "ok.bento", digest=store.manifest("1.0.0")["digest"])
    assert ok.read_bytes() == b"not what was promoted"


def test_given_a_bento_the_manifest_does_not_name_then_it_is_not_served(store, tmp_path):
    files = write_release(tmp_path / "build", "1.0.0")
    stray = tmp_path / "build" / "other.bento"
    stray.write_bytes(b"a different model")
    store.put("1.0.0", {**files, stray.name: stray})

    with pytest.raises(StoreError, match=r"other.bento is not the archive release.json of release 1.0.0 names"):
        store.get("1.0.0", "other.bento", tmp_path / "out.bento")


def test_given_an_altered_manifest_then_it_is_not_read(store, tmp_path):
    store.put("1.0.0", write_release(tmp_path / "build", "1.0.0"))
    write_stored(
        store, "1.0.0", "release.json", json.dumps({"archive": "x.bento", "digest": "sha256:" + "0" * 64}).encode()
    )

    with pytest.raises(StoreError, match="does not match its SHA256SUMS: it was altered"):
        store.manifest("1.0.0")


def test_given_an_unknown_version_then_has_is_false_and_reading_it_names_what_the_store_holds(store, tmp_path):
    assert not store.has("9.9.9")
    with pytest.raises(StoreError, match="no release of it"):
        store.manifest("9.9.9")
    store.put("1.0.0", write_release(tmp_path / "build", "1.0.0"))

    with pytest.raises(StoreError, match=r"release 9.9.9 of churn-model is not in the store at .*; it holds 1.0.0"):
        store.get("9.9.9", "release.json", tmp_path / "out.json")
    with pytest.raises(StoreError, match=r"release 1.0.0 of churn-model has no file model.onnx; it has churn_model"):
        store.get("1.0.0", "model.onnx", tmp_path / "out.json")


def test_given_several_releases_then_versions_are_sorted_and_skip_unfinished_ones(store, tmp_path):
    for version in ["2.0.0", "1.0.0", "1.1.0"]:
        store.put(version, write_release(tmp_path / version, version))
    write_stored(store, "3.0.0", "release.json", b"{}")

    assert store.versions() == ["1.0.0", "1.1.0", "2.0.0"]


def test_given_an_empty_store_then_it_lists_no_versions(store):
    assert store.versions() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda files: files.pop("release.json"), "has no release.json"),
        (lambda files: files["release.json"].write_text("{not json"), "is not JSON"),
        (lambda files: files["release.json"].write_text('{"archive": "a.bento"}'), "does not record the archive's"),
        (lambda files: files["release.json"].write_text("[1]"), "does not hold a JSON object"),
        (
            lambda files: files.pop("churn_model-1.0.0.bento"),
            "names the archive churn_model-1.0.0.bento, which is not one of its files",
        ),
        (lambda files: files["churn_model-1.0.0.bento"].write_bytes(b"rebuilt"), "not the sha256:[0-9a-f]+ release"),
        (lambda files: files.update({"../escape": files["metrics.json"]}), "is not a plain name"),
        (lambda files: files.update({SUMS: files["metrics.json"]}), "is the store's own checksum list"),
        (lambda files: files.update({"notes.md": Path("/nonexistent/notes.md")}), "is not a file"),
    ],
    ids=["no-manifest", "manifest-not-json", "no-digest", "manifest-not-object", "archive-missing", "digest-mismatch",
         "path-in-name", "reserved-name", "missing-file"],
)  # fmt: skip
def test_given_a_release_that_does_not_hold_together_when_stored_then_refused_before_anything_is_written(
    tmp_path, change, message
):
    store = open_store(str(tmp_path / "releases"), PROJECT)
    files = write_release(tmp_path / "build", "1.0.0")
    change(files)

    with pytest.raises(StoreError, match=message) as error:
        store.put("1.0.0", files)

    one_sentence(error)
    assert not (tmp_path / "releases").exists()


@pytest.mark.parametrize("version", ["..", "../1.0.0", ".hidden", "1.0.0/x", ""])
def test_given_a_version_that_is_not_a_plain_name_then_it_is_refused(tmp_path, version):
    store = open_store(str(tmp_path / "releases"), PROJECT)
    with pytest.raises(StoreError, match="is not a plain name"):
        store.has(version)
    with pytest.raises(StoreError, match="is not a plain name"):
        store.put(version, write_release(tmp_path / "build", "1.0.0"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "the store URL is empty"),
        ("releases/here", "is not a store URL"),
        ("s3://bucket/releases", "is not a store URL"),
        ("file://server/share", "is not a local folder URL"),
        ("dvc://shared/sub/folder", "is not a DVC remote URL"),
    ],
)
def test_given_a_url_that_names_no_store_then_the_error_says_what_a_store_url_is(url, message):
    with pytest.raises(StoreError, match=message) as error:
        open_store(url, PROJECT)
    one_sentence(error)


def test_given_a_project_name_with_a_path_in_it_then_it_is_refused(tmp_path):
    with pytest.raises(StoreError, match=r"the project name '\.\./x' is not a plain name"):
        open_store(str(tmp_path), "../x")


def test_given_a_local_override_of_a_remote_then_the_store_follows_dvcs_own_precedence(tmp_path):
    config = "[core]\n    remote = shared\n['remote \"shared\"']\n    url = /team/share\n"
    # `dvc remote modify --local shared url ../mine`: a developer's own copy, relative to .dvc/ as DVC writes it.
    local = "['remote \"shared\"']\n    url = ../../mine\n"
    project = write_dvc_config(tmp_path / "project", config, local)

    store = open_store("dvc://", PROJECT, repo=project)

    assert store.folder == f"{tmp_path / 'mine'}/releases/{PROJECT}"


def test_given_remote_names_in_another_case_then_they_resolve_as_dvc_resolves_them(tmp_path):
    project = write_dvc_config(tmp_path / "project", "['remote \"shared\"']\n    url = /team/share\n")
    assert open_store("dvc://Shared", PROJECT, repo=project).folder == f"/team/share/releases/{PROJECT}"


@pytest.mark.parametrize(
    ("config", "url", "message"),
    [
        ("['remote \"shared\"']\n    url = /x\n", "dvc://", r"names the default DVC remote, but the project sets none"),
        ("['remote \"shared\"']\n    url = /x\n", "dvc://backup", r"no DVC remote named 'backup'; it has shared"),
        ("", "dvc://backup", r"no DVC remote named 'backup'; it has none"),
        ("[core\n", "dvc://", r"the DVC config of .* cannot be read"),
    ],
    ids=["no-default", "unknown-remote", "no-remotes", "broken-config"],
)
def test_given_a_dvc_url_the_config_cannot_resolve_then_the_error_says_what_to_configure(
    tmp_path, config, url, message
):
    project = write_dvc_config(tmp_path / "project", config)
    with pytest.raises(StoreError, match=message) as error:
        open_store(url, PROJECT, repo=project)
    one_sentence(error)


def test_given_no_dvc_project_then_a_dvc_url_says_so(tmp_path):
    with pytest.raises(StoreError, match="is not a DVC project"):
        open_store("dvc://", PROJECT, repo=tmp_path)


def test_given_a_cloud_remote_whose_plugin_is_missing_then_the_error_names_the_plugin(tmp_path):
    if importlib.util.find_spec("dvc_s3") is not None:
        pytest.skip("dvc-s3 is installed here, so s3 remotes open")
    project = write_dvc_config(tmp_path / "project", "['remote \"models\"']\n    url = s3://bucket/ml\n")

    with pytest.raises(StoreError, match=r"'models' is at s3://bucket/ml, but .*requires 'dvc-s3'") as error:
        open_store("dvc://models", PROJECT, repo=project)

    one_sentence(error)


def test_the_cli_stores_lists_and_fetches_a_release_and_reports_errors_as_one_annotation(tmp_path, capsys, monkeypatch):
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    files = write_release(tmp_path / "build", "1.0.0")
    where = ["--url", str(tmp_path / "releases"), "--project", PROJECT]

    assert store_module.main([*where, "put", "1.0.0", *map(str, files.values())]) == 0
    assert store_module.main([*where, "versions"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1.0.0"
    digest = json.loads(files["release.json"].read_text())["digest"]
    arguments = [*where, "get", "1.0.0", "churn_model-1.0.0.bento", str(tmp_path), "--digest", digest]
    assert store_module.main(arguments) == 0
    assert (tmp_path / "churn_model-1.0.0.bento").read_bytes() == files["churn_model-1.0.0.bento"].read_bytes()
    assert output.read_text().splitlines()[1] == str(tmp_path / "churn_model-1.0.0.bento")

    assert store_module.main([*where, "get", "2.0.0", "release.json", str(tmp_path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("::error::release 2.0.0 of churn-model is not in")
