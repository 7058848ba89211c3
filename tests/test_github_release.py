"""Publishing a release's files as a GitHub Release and fetching them back, against the GitHub stand-in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from fake_github import ASSET_STORAGE_PATH, FakeGitHub
from mlgitops import github_api, github_release
from mlgitops.github_api import GitHubError
from mlgitops.github_release import download, expand, publish

REPO = "octo/churn"
TAG = "model-1.0.0"
SHA = "c" * 40


@pytest.fixture
def github(monkeypatch):
    with FakeGitHub() as fake:
        monkeypatch.setenv("GITHUB_API_URL", fake.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_release")
        monkeypatch.setattr(github_api.time, "sleep", lambda _seconds: None)
        yield fake


@pytest.fixture
def files(tmp_path) -> list[Path]:
    """A release's public files: the exported Bento (bytes of every value) and its manifest."""
    folder = tmp_path / "release"
    folder.mkdir()
    archive = folder / "churn_model-1.0.0.bento"
    archive.write_bytes(bytes(range(256)) * 300)
    manifest = folder / "release.json"
    manifest.write_text('{"archive": "churn_model-1.0.0.bento"}')
    return [archive, manifest]


def release_of(github: FakeGitHub, tag: str = TAG) -> dict:
    [release] = [release for release in github.releases("octo", "churn") if release["tag_name"] == tag]
    return release


def release_of_published(github: FakeGitHub) -> dict:
    [release] = [release for release in github.releases("octo", "churn") if not release["draft"]]
    return release


def uploads(github: FakeGitHub) -> list[str]:
    """The asset names uploaded so far, in order."""
    return [r.query["name"] for r in github.requests if r.method == "POST" and r.path.endswith("/assets")]


def publish_files(files: list[Path], **overrides) -> str:
    arguments = {"name": "churn-model 1.0.0", "body": "Accuracy 0.91.", "files": files, "target_commitish": SHA}
    return publish(REPO, TAG, **(arguments | overrides))


def test_given_no_release_when_publishing_then_it_is_created_on_the_commit_with_every_file_as_an_asset(github, files):
    url = publish_files(files)

    release = release_of(github)
    assert url == release["html_url"] == f"https://github.com/{REPO}/releases/tag/{TAG}"
    assert (release["name"], release["body"], release["target_commitish"]) == (
        "churn-model 1.0.0",
        "Accuracy 0.91.",
        SHA,
    )
    assert [asset["name"] for asset in release["assets"]] == [path.name for path in files]
    for path in files:
        assert github.asset_bytes("octo", "churn", TAG, path.name) == path.read_bytes()
    posted = [r for r in github.requests if r.method == "POST" and r.path.endswith("/assets")]
    assert {r.headers["content-type"] for r in posted} == {"application/octet-stream"}
    # Made as a draft, published once whole: nobody sees a release without its archive.
    writes = [(r.method, r.path.rsplit("/", 1)[-1], r.body) for r in github.requests if r.method in ("POST", "PATCH")]
    assert writes[0][0] == "POST" and writes[0][2]["draft"] is True
    assert writes[-1] == ("PATCH", str(release["id"]), {"draft": False})
    assert release["draft"] is False and release["published_at"] is not None


def test_given_a_published_release_when_publishing_again_then_nothing_is_uploaded_twice(github, files):
    first = publish_files(files)
    assert uploads(github) == [path.name for path in files]

    assert publish_files(files) == first

    assert uploads(github) == [path.name for path in files]
    assert len(github.releases("octo", "churn")) == 1


def test_given_a_repository_with_immutable_releases_when_publishing_then_it_takes_every_asset(monkeypatch, files):
    with FakeGitHub(immutable_releases=True) as github:
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_release")
        publish_files(files)
        publish_files(files)
        release = release_of(github)
    assert release["immutable"] is True
    assert [asset["name"] for asset in release["assets"]] == [path.name for path in files]


def test_given_a_draft_left_by_a_stopped_run_when_publishing_again_then_it_is_completed_and_published(github, files):
    archive, manifest = files
    github.add_release("octo", "churn", TAG, assets={archive.name: archive.read_bytes()}, draft=True)

    url = publish_files(files)

    [release] = github.releases("octo", "churn")
    assert (release["draft"], url) == (False, f"https://github.com/{REPO}/releases/tag/{TAG}")
    assert [asset["name"] for asset in release["assets"]] == [archive.name, manifest.name]
    assert uploads(github) == [manifest.name]


def test_given_a_run_that_stopped_after_one_asset_when_publishing_again_then_only_the_rest_is_uploaded(github, files):
    archive, manifest = files
    github.add_release("octo", "churn", TAG, assets={archive.name: archive.read_bytes()})

    publish_files(files)

    assert uploads(github) == [manifest.name]
    assert [asset["name"] for asset in release_of(github)["assets"]] == [archive.name, manifest.name]


@pytest.mark.parametrize(
    ("stored", "reason"),
    [
        (b"\x00" * (256 * 300), r"its digest sha256:[0-9a-f]{64} is not the sha256 of"),
        (b"an older build", r"it has 14 bytes and .* has 76800"),
    ],
    ids=["same-size-other-bytes", "other-size"],
)
def test_given_an_asset_of_that_name_with_other_contents_when_publishing_then_it_fails_naming_it(
    github, files, stored, reason
):
    github.add_release("octo", "churn", TAG, assets={files[0].name: stored})

    with pytest.raises(GitHubError, match=f"already has an asset churn_model-1.0.0.bento that differs: {reason}"):
        publish_files(files)

    assert github.asset_bytes("octo", "churn", TAG, files[0].name) == stored
    assert uploads(github) == []


def test_given_the_tag_is_published_by_someone_else_while_ours_is_a_draft_then_the_error_says_so(github, files):
    # Their release appears after this run's look-ups, while its draft is being filled.
    github.fail("GET", r"/releases/tags/", 404, times=1)
    github.add_release("octo", "churn", TAG, name="published by hand")

    with pytest.raises(GitHubError, match=f"the tag {TAG} of {REPO} got a published release while this one was"):
        publish_files(files)

    drafts = [release for release in github.releases("octo", "churn") if release["draft"]]
    assert len(drafts) == 1 and release_of_published(github)["name"] == "published by hand"


def test_given_a_transient_upload_failure_then_the_upload_is_retried_once_and_succeeds(github, files):
    github.fail("POST", r"/assets$", 502, times=1)

    publish_files(files)

    assert uploads(github) == [files[0].name, files[0].name, files[1].name]
    assert github.asset_bytes("octo", "churn", TAG, files[0].name) == files[0].read_bytes()


@pytest.mark.parametrize("stream_assets", [False, True], ids=["redirected-to-storage", "streamed-by-the-api"])
def test_given_a_published_release_when_downloading_an_asset_then_the_same_bytes_come_back(
    monkeypatch, tmp_path, files, stream_assets
):
    with FakeGitHub(stream_assets=stream_assets) as github:
        monkeypatch.setenv("GITHUB_API_URL", github.url)
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_release")
        publish_files(files)
        into_folder = download(REPO, TAG, files[0].name, tmp_path)
        to_file = download(REPO, TAG, files[1].name, tmp_path / "fetched" / "manifest.json")

    assert into_folder == tmp_path / files[0].name and into_folder.read_bytes() == files[0].read_bytes()
    assert to_file.read_bytes() == files[1].read_bytes()
    storage = [r for r in github.requests if r.path.startswith(ASSET_STORAGE_PATH)]
    assert len(storage) == (0 if stream_assets else 2)
    # The signed storage URL is the credential there: the token must not travel with the redirect.
    assert all("authorization" not in r.headers for r in storage)
    assert not list(tmp_path.glob(".*.part")) and not list((tmp_path / "fetched").glob(".*"))


def test_given_an_asset_corrupted_in_storage_when_downloading_then_it_is_refused_and_nothing_is_written(
    github, files, tmp_path
):
    publish_files(files)
    github.replace_asset_bytes("octo", "churn", TAG, files[0].name, b"\x00" * files[0].stat().st_size)
    out = tmp_path / "out"
    out.mkdir()

    digest = hashlib.sha256(files[0].read_bytes()).hexdigest()
    with pytest.raises(GitHubError, match=f"arrived as 76800 bytes with sha256:[0-9a-f]+, not .*sha256:{digest}"):
        download(REPO, TAG, files[0].name, out)

    assert list(out.iterdir()) == []


def test_given_no_such_release_or_asset_when_downloading_then_the_error_says_which(github, files, tmp_path):
    with pytest.raises(GitHubError, match=f"^{REPO} has no published release tagged {TAG}$"):
        download(REPO, TAG, files[0].name, tmp_path)
    publish_files(files)
    with pytest.raises(
        GitHubError, match=r"has no asset named model\.onnx; its assets: churn_model-1\.0\.0\.bento, release"
    ):
        download(REPO, TAG, "model.onnx", tmp_path)


def test_given_a_token_without_contents_write_when_publishing_then_the_error_names_the_permission(github, files):
    forbidden = {
        "message": "Resource not accessible by integration",
        "documentation_url": "https://docs.github.com/rest",
    }
    github.fail("POST", r"/releases$", 403, headers={"x-ratelimit-remaining": None}, body=forbidden)

    with pytest.raises(GitHubError) as error:
        publish_files(files)

    assert str(error.value) == (
        f"GitHub refused POST /repos/{REPO}/releases (403: Resource not accessible by integration); "
        "the token needs contents: write"
    )
    assert github.releases("octo", "churn") == []


def test_given_a_repository_the_token_cannot_see_when_publishing_then_the_404_is_one_line(github, files):
    github.fail("POST", r"/releases$", 404)

    with pytest.raises(GitHubError) as error:
        publish_files(files)

    assert str(error.value) == f"GitHub answered 404 to POST /repos/{REPO}/releases: Not Found"


@pytest.mark.parametrize("name", ["model 1.bento", ".hidden", "trailing.", "naïve.json", "a+b.json"])
def test_given_a_file_name_github_would_rename_then_publishing_refuses_before_any_call(github, tmp_path, name):
    path = tmp_path / name
    path.write_text("{}")
    with pytest.raises(GitHubError, match="GitHub would rename the asset"):
        publish_files([path])
    assert github.requests == []


def test_given_no_token_then_publishing_says_which_permission_the_token_needs(monkeypatch, files):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(GitHubError, match="GITHUB_TOKEN is not set; the step needs a token with contents: write"):
        publish_files(files)


@pytest.mark.parametrize(
    ("template", "values", "expanded"),
    [
        (
            "https://uploads.github.com/repos/o/r/releases/1/assets{?name,label}",
            {"name": "m-1.0.0.bento"},
            "https://uploads.github.com/repos/o/r/releases/1/assets?name=m-1.0.0.bento",
        ),
        (
            # GitHub Enterprise Server keeps uploads under its API URL; the template says where, so nothing is assumed.
            "https://ghe.example.com/api/uploads/repos/o/r/releases/1/assets{?name,label}",
            {"name": "m.bento", "label": "The model & its notes"},
            "https://ghe.example.com/api/uploads/repos/o/r/releases/1/assets?name=m.bento&label=The%20model%20%26%20its%20notes",
        ),
        ("https://x/a{?name,label}", {}, "https://x/a"),
        ("https://x/a{?name}{&label}", {"name": "a/b", "label": "c"}, "https://x/a?name=a%2Fb&label=c"),
        ("https://x/repos{/owner,repo}{+path}", {"owner": "o", "repo": "r", "path": "/x/y"}, "https://x/repos/o/r/x/y"),
    ],
)
def test_upload_url_templates_expand_as_rfc_6570_says(template, values, expanded):
    assert expand(template, **values) == expanded


def test_the_cli_publishes_prints_the_url_and_sets_the_url_output(github, files, tmp_path, capsys, monkeypatch):
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    notes = tmp_path / "notes.md"
    notes.write_text("## churn-model 1.0.0\n\nAccuracy 0.91.\n")

    arguments = ["publish", "--repo", REPO, "--tag", TAG, "--name", "churn-model 1.0.0", "--body-file", str(notes)]
    assert github_release.main([*arguments, "--target-commitish", SHA, *map(str, files)]) == 0

    url = f"https://github.com/{REPO}/releases/tag/{TAG}"
    assert capsys.readouterr().out.splitlines()[-1] == url
    assert output.read_text().splitlines()[1] == url
    assert release_of(github)["body"] == notes.read_text()


def test_the_cli_tags_the_runs_commit_unless_told_otherwise(github, files, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_SHA", "d" * 40)
    notes = tmp_path / "notes.md"
    notes.write_text("notes")
    arguments = ["publish", "--repo", REPO, "--tag", TAG, "--name", "n", "--body-file", str(notes), str(files[1])]
    assert github_release.main(arguments) == 0
    assert release_of(github)["target_commitish"] == "d" * 40


def test_the_cli_downloads_an_asset_and_sets_the_path_output(github, files, tmp_path, monkeypatch):
    publish_files(files)
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    arguments = ["download", "--repo", REPO, "--tag", TAG, "--asset", files[0].name, "--dest", str(tmp_path)]
    assert github_release.main(arguments) == 0
    assert (tmp_path / files[0].name).read_bytes() == files[0].read_bytes()
    assert output.read_text().splitlines()[1] == str(tmp_path / files[0].name)


def test_the_cli_reports_a_failure_as_one_error_annotation_and_exit_1(github, files, tmp_path, capsys):
    github.fail("POST", r"/releases$", 404)
    notes = tmp_path / "notes.md"
    notes.write_text("notes")
    arguments = ["publish", "--repo", REPO, "--tag", TAG, "--name", "n", "--body-file", str(notes)]
    assert github_release.main([*arguments, "--target-commitish", SHA, str(files[0])]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"::error::GitHub answered 404 to POST /repos/{REPO}/releases: Not Found"
    )


def test_the_cli_refuses_to_guess_the_commit_when_none_is_named(github, files, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("GITHUB_SHA", raising=False)
    notes = tmp_path / "notes.md"
    notes.write_text("notes")
    arguments = ["publish", "--repo", REPO, "--tag", TAG, "--name", "n", "--body-file", str(notes), str(files[0])]
    assert github_release.main(arguments) == 1
    assert "--target-commitish" in capsys.readouterr().out
    assert github.requests == []
