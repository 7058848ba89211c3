"""The GitHub stand-in: its endpoints, pagination, failures, and that its checks against GitHub's description bite."""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from typing import Any, NamedTuple

import pytest

from fake_github import ACTIONS_BOT, ASSET_STORAGE_PATH, MAX_COMMENT_LENGTH, FakeGitHub, openapi, webhook_example

HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
BASE_SHA = "fedcba9876543210fedcba9876543210fedcba98"
COMMENTS = "/repos/octo/models/issues/7/comments"
RELEASES = "/repos/octo/models/releases"


class Response(NamedTuple):
    status: int
    headers: Message
    body: Any


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hands a redirect back as the response, so a test can look at it."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def call(
    fake: FakeGitHub,
    method: str,
    path: str,
    body: Any = None,
    *,
    authorization: str | None = "Bearer ghs_test",
    raw: bytes | None = None,
    content_type: str = "application/json",
    accept: str = "application/vnd.github+json",
) -> Response:
    """One request with urllib, as the product's client would send it; HTTP errors and redirects are returned."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    headers = {"Accept": accept, "X-GitHub-Api-Version": "2022-11-28"}
    if data is not None:
        headers["Content-Type"] = content_type
    if authorization is not None:
        headers["Authorization"] = authorization
    url = path if path.startswith("http") else fake.url + path
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=10) as response:
            return Response(response.status, response.headers, _json(response.read(), response.headers))
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, error.headers, _json(error.read(), error.headers))


def _json(payload: bytes, headers: Message) -> Any:
    """A response body: JSON when it is JSON, bytes when it is a file, text otherwise."""
    if headers.get_content_type() == "application/octet-stream":
        return payload
    try:
        return json.loads(payload) if payload else None
    except ValueError:
        return payload.decode()


def links(response: Response) -> dict[str, str]:
    """The rel → URL pairs of a Link header."""
    return {rel: url for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', response.headers.get("link", ""))}


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def test_given_a_fresh_stand_in_then_it_listens_on_loopback_only_and_stops_on_exit():
    with FakeGitHub() as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert call(server, "GET", COMMENTS).status == 200
    with pytest.raises(urllib.error.URLError):
        call(server, "GET", COMMENTS)


def test_given_no_comments_when_posting_listing_and_updating_then_each_read_sees_the_last_write(fake):
    created = call(fake, "POST", COMMENTS, {"body": "first report"})
    assert created.status == 201
    assert created.headers["location"] == created.body["url"]
    assert created.body["user"]["login"] == ACTIONS_BOT
    assert created.body["html_url"].endswith(f"/octo/models/issues/7#issuecomment-{created.body['id']}")

    listed = call(fake, "GET", COMMENTS)
    assert [comment["body"] for comment in listed.body] == ["first report"]

    updated = call(fake, "PATCH", f"/repos/octo/models/issues/comments/{created.body['id']}", {"body": "second report"})
    assert updated.status == 200
    assert updated.body["id"] == created.body["id"]
    assert updated.body["body"] == "second report"
    assert [comment["body"] for comment in call(fake, "GET", COMMENTS).body] == ["second report"]
    assert fake.comments("octo", "models", 7)[0]["body"] == "second report"
    assert call(fake, "GET", "/repos/octo/models/issues/8/comments").body == []


def test_given_comments_on_two_repositories_then_each_issue_lists_only_its_own(fake):
    fake.add_comment("octo", "models", 7, "mine")
    fake.add_comment("octo", "other", 7, "theirs")
    assert [comment["body"] for comment in call(fake, "GET", COMMENTS).body] == ["mine"]


def test_given_250_comments_when_following_next_links_by_100_then_three_pages_cover_all_oldest_first(fake):
    ids = [fake.add_comment("octo", "models", 7, f"comment {n}", user="octocat") for n in range(250)]

    first = call(fake, "GET", f"{COMMENTS}?per_page=100")
    assert set(links(first)) == {"next", "last"}
    assert "page=3" in links(first)["last"]
    assert "per_page=100" in links(first)["next"]

    seen, response, pages = [], first, 1
    seen += [comment["id"] for comment in response.body]
    while "next" in links(response):
        response = call(fake, "GET", links(response)["next"])
        seen += [comment["id"] for comment in response.body]
        pages += 1
    assert pages == 3
    assert seen == ids
    assert set(links(response)) == {"prev", "first"}


def test_given_250_comments_when_paging_by_default_then_30_per_page_and_per_page_is_capped_at_100(fake):
    for n in range(250):
        fake.add_comment("octo", "models", 7, f"comment {n}")
    default = call(fake, "GET", COMMENTS)
    assert len(default.body) == 30
    assert "page=9" in links(default)["last"]
    middle = call(fake, "GET", f"{COMMENTS}?page=2")
    assert set(links(middle)) == {"prev", "next", "last", "first"}
    assert middle.body[0]["body"] == "comment 30"
    assert len(call(fake, "GET", f"{COMMENTS}?per_page=500").body) == 100
    assert "link" not in call(fake, "GET", "/repos/octo/models/issues/1/comments").headers


def test_given_an_unknown_comment_when_patching_then_404_like_github(fake):
    response = call(fake, "PATCH", "/repos/octo/models/issues/comments/424242", {"body": "x"})
    assert response.status == 404
    assert response.body["message"] == "Not Found"
    assert response.body["documentation_url"].startswith("https://docs.github.com/")


def test_given_a_comment_longer_than_github_allows_when_posting_then_422(fake):
    response = call(fake, "POST", COMMENTS, {"body": "x" * (MAX_COMMENT_LENGTH + 1)})
    assert response.status == 422
    assert "too long" in response.body["errors"][0]["message"]


def test_given_no_authorization_when_calling_then_401_requires_authentication(fake):
    response = call(fake, "GET", COMMENTS, authorization=None)
    assert response.status == 401
    assert response.body["message"] == "Requires authentication"
    assert fake.tokens == []
    assert fake.comments("octo", "models", 7) == []


@pytest.mark.parametrize("authorization", ["Bearer ghs_abc", "token ghs_abc"])
def test_given_either_authorization_scheme_then_the_token_is_accepted_and_recorded(fake, authorization):
    assert call(fake, "POST", COMMENTS, {"body": "hi"}, authorization=authorization).status == 201
    assert fake.tokens == ["ghs_abc"]


def test_given_an_expected_token_when_another_is_sent_then_401_bad_credentials():
    with FakeGitHub(token="right") as server:
        assert call(server, "GET", COMMENTS, authorization="Bearer wrong").body["message"] == "Bad credentials"
        assert call(server, "GET", COMMENTS, authorization="Bearer right").status == 200


def test_given_requests_then_each_is_recorded_with_query_headers_and_body(fake):
    call(fake, "POST", COMMENTS, {"body": "hi"})
    call(fake, "GET", f"{COMMENTS}?per_page=5")
    posted, listed = fake.requests
    assert (posted.method, posted.path, posted.body) == ("POST", COMMENTS, {"body": "hi"})
    assert posted.headers["authorization"] == "Bearer ghs_test"
    assert (listed.method, listed.query, listed.body) == ("GET", {"per_page": "5"}, None)


@pytest.mark.parametrize(
    ("status", "header", "message"),
    [
        (403, "x-ratelimit-remaining", "API rate limit exceeded"),
        (429, "retry-after", "secondary rate limit"),
        (500, None, "Server Error"),
        (502, None, "Bad Gateway"),
        (503, None, "Service Unavailable"),
    ],
)
def test_given_an_injected_failure_twice_then_exactly_two_matching_requests_fail(fake, status, header, message):
    fake.fail("POST", r"/issues/\d+/comments$", status, times=2)
    answers = [call(fake, "POST", COMMENTS, {"body": f"try {n}"}) for n in range(3)]
    assert [answer.status for answer in answers] == [status, status, 201]
    assert message in answers[0].body["message"]
    assert answers[0].body["documentation_url"].startswith("https://docs.github.com/")
    if header is not None:
        assert answers[0].headers[header] is not None
    assert [comment["body"] for comment in fake.comments("octo", "models", 7)] == ["try 2"]


def test_given_an_injected_rate_limit_then_it_carries_github_headers_and_only_matches_its_method(fake):
    fake.fail("POST", "comments", 403)
    assert call(fake, "GET", COMMENTS).status == 200
    limited = call(fake, "POST", COMMENTS, {"body": "hi"})
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) >= int(time.time())
    assert call(fake, "POST", COMMENTS, {"body": "hi"}).status == 201


def test_given_a_failure_with_custom_headers_and_body_then_they_replace_the_defaults(fake):
    forbidden = {
        "message": "Resource not accessible by integration",
        "documentation_url": "https://docs.github.com/rest",
    }
    fake.fail("PATCH", ".", 403, headers={"x-ratelimit-remaining": None}, body=forbidden)
    fake.fail("GET", ".", 429, headers={"Retry-After": "0"})
    fake.fail("GET", ".", 502, body="<html>Unicorn!</html>")
    denied = call(fake, "PATCH", "/repos/octo/models/issues/comments/1", {"body": "x"})
    assert denied.body == forbidden
    assert denied.headers["x-ratelimit-remaining"] != "0"
    assert call(fake, "GET", COMMENTS).headers["retry-after"] == "0"
    assert call(fake, "GET", COMMENTS).body == "<html>Unicorn!</html>"


def test_given_a_pull_request_when_getting_it_then_head_and_base_are_what_was_added(fake):
    fake.add_pull("octo", "models", 7, head_sha=HEAD_SHA, head_ref="feature/better-model", base_sha=BASE_SHA)
    fake.add_pull("octo", "models", 8, head_sha=HEAD_SHA, head_ref="patch-1", head_repo_full_name="stranger/models")
    pull = call(fake, "GET", "/repos/octo/models/pulls/7").body
    assert pull["number"] == 7
    assert (pull["head"]["sha"], pull["head"]["ref"]) == (HEAD_SHA, "feature/better-model")
    assert (pull["base"]["ref"], pull["base"]["sha"]) == ("main", BASE_SHA)
    assert pull["head"]["repo"]["full_name"] == pull["base"]["repo"]["full_name"] == "octo/models"
    fork = call(fake, "GET", "/repos/octo/models/pulls/8").body
    assert fork["head"]["repo"]["full_name"] == "stranger/models"
    assert fork["head"]["repo"]["fork"] is True
    assert fork["head"]["label"] == "stranger:patch-1"


def test_given_no_such_pull_request_when_getting_it_then_404(fake):
    assert call(fake, "GET", "/repos/octo/models/pulls/99").status == 404


def test_given_a_comment_on_a_pull_request_then_its_html_url_points_at_the_pull(fake):
    fake.add_pull("octo", "models", 7, head_sha=HEAD_SHA, head_ref="x")
    assert "/pull/7#issuecomment-" in call(fake, "POST", COMMENTS, {"body": "hi"}).body["html_url"]


def test_given_a_short_head_sha_when_adding_a_pull_then_it_is_refused(fake):
    with pytest.raises(ValueError, match="40-character"):
        fake.add_pull("octo", "models", 7, head_sha="abc123", head_ref="x")


def test_given_a_response_missing_a_required_field_then_the_block_fails(monkeypatch):
    render = FakeGitHub._render_comment

    def without_node_id(self: FakeGitHub, comment: Any) -> dict[str, Any]:
        rendered = render(self, comment)
        del rendered["node_id"]
        return rendered

    monkeypatch.setattr(FakeGitHub, "_render_comment", without_node_id)
    expected = r"issues/create-comment: response body: 'node_id' is a required property"
    with pytest.raises(AssertionError, match=expected), FakeGitHub() as server:
        assert call(server, "POST", COMMENTS, {"body": "hi"}).status == 201


def test_given_a_response_with_a_wrongly_typed_field_then_it_is_a_spec_error(monkeypatch):
    render = FakeGitHub._render_pull

    def with_string_number(self: FakeGitHub, pull: Any) -> dict[str, Any]:
        return {**render(self, pull), "number": "7", "created_at": "yesterday"}

    monkeypatch.setattr(FakeGitHub, "_render_pull", with_string_number)
    server = FakeGitHub().start()
    server.add_pull("octo", "models", 7, head_sha=HEAD_SHA, head_ref="x")
    call(server, "GET", "/repos/octo/models/pulls/7")
    server.stop()
    assert any("'7' is not of type 'integer' (at $.number)" in error for error in server.spec_errors)
    assert any("'yesterday' is not a 'date-time'" in error for error in server.spec_errors)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "problem"),
    [
        ("POST", COMMENTS, {"body": 5}, 422, "5 is not of type 'string'"),
        ("POST", COMMENTS, {"text": "hi"}, 422, "'body' is a required property"),
        ("POST", COMMENTS, None, 422, "the required JSON request body is missing"),
        ("POST", COMMENTS, b"{not json", 400, "not valid JSON"),
        ("GET", "/repos/octo/models/issues/seven/comments", None, 404, "issue_number='seven' is not of type integer"),
        ("GET", f"{COMMENTS}?per_page=many", None, 404, "per_page='many' is not of type integer"),
        ("GET", f"{COMMENTS}?sort=created", None, 404, "'sort' is not documented"),
        ("GET", f"{COMMENTS}?since=yesterday", None, 404, "since='yesterday'"),
    ],
)
def test_given_a_request_github_would_not_accept_then_it_is_refused_and_the_block_fails(
    method, path, body, status, problem
):
    with pytest.raises(AssertionError, match=re.escape(problem)), FakeGitHub() as server:
        raw = body if isinstance(body, bytes) else None
        response = call(server, method, path, None if raw else body, raw=raw)
        assert response.status == status
        assert len(server.spec_errors) == 1


@pytest.mark.parametrize(
    ("method", "path", "documented"),
    [
        ("GET", "/repos/octo/models/issues/comments/1", "GitHub documents it as issues/get-comment"),
        ("DELETE", "/repos/octo/models/issues/comments/1", "GitHub documents it as issues/delete-comment"),
        ("GET", "/repos/octo/models/nonsense", "has no such endpoint either"),
    ],
)
def test_given_an_endpoint_the_stand_in_lacks_then_404_and_the_block_fails(method, path, documented):
    with (
        pytest.raises(AssertionError, match="endpoint not implemented by the stand-in") as caught,
        FakeGitHub() as server,
    ):
        assert call(server, method, path).status == 404
    assert documented in str(caught.value)


def test_given_spec_errors_and_an_exception_in_the_block_then_the_exception_is_not_masked():
    with pytest.raises(KeyError, match="the test's own failure"), FakeGitHub() as server:
        call(server, "GET", "/nowhere")
        raise KeyError("the test's own failure")


@pytest.mark.parametrize(("event", "action"), [("pull_request", "opened"), ("pull_request", "synchronize")])
def test_given_a_pull_request_event_then_the_example_has_the_fields_a_workflow_reads(event, action):
    payload = webhook_example(event, action)
    assert payload["action"] == action
    assert {"number", "pull_request", "repository", "sender"} <= set(payload)
    assert re.fullmatch(r"[0-9a-f]{40}", payload["pull_request"]["head"]["sha"])
    assert payload["pull_request"]["base"]["repo"]["full_name"] == payload["repository"]["full_name"]


def test_given_a_completed_workflow_run_then_the_example_has_its_conclusion_and_head():
    payload = webhook_example("workflow_run", "completed")
    assert payload["action"] == "completed"
    assert {"conclusion", "head_sha", "head_branch", "pull_requests", "id", "status"} <= set(payload["workflow_run"])
    # The examples are contributed payloads: the first is still queued, the third ran for a pull request.
    run = webhook_example("workflow_run", "completed", index=2)["workflow_run"]
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert run["pull_requests"][0]["number"] > 0


def test_given_a_synchronize_event_then_the_example_names_the_commits_before_and_after():
    payload = webhook_example("pull_request", "synchronize")
    assert payload["after"] == payload["pull_request"]["head"]["sha"]
    assert re.fullmatch(r"[0-9a-f]{40}", payload["before"])


def test_given_examples_are_copies_then_changing_one_does_not_change_the_next():
    webhook_example("pull_request", "opened")["number"] = -1
    assert webhook_example("pull_request", "opened")["number"] != -1


@pytest.mark.parametrize(
    ("event", "action", "index"),
    [("no_such_event", None, 0), ("pull_request", "teleported", 0), ("pull_request", "opened", 99)],
)
def test_given_an_example_that_does_not_exist_then_lookup_error_names_what_does(event, action, index):
    with pytest.raises(LookupError):
        webhook_example(event, action, index)


def test_given_the_npm_packages_are_not_installed_then_the_error_says_how_to_install_them(monkeypatch, tmp_path):
    monkeypatch.setattr(openapi, "OPENAPI_JSON", tmp_path / "api.github.com.json")
    with pytest.raises(FileNotFoundError, match=re.escape("npm ci --prefix tests")):
        openapi.openapi_spec.__wrapped__()


def test_given_tokens_of_two_identities_then_each_comment_is_authored_by_its_tokens_identity():
    with FakeGitHub(identities={"ghs_app": "model-bot[bot]"}) as server:
        by_app = call(server, "POST", COMMENTS, {"body": "from the app"}, authorization="Bearer ghs_app")
        by_default = call(server, "POST", COMMENTS, {"body": "from GITHUB_TOKEN"}, authorization="Bearer ghs_other")
    assert by_app.body["user"]["login"] == "model-bot[bot]"
    assert by_default.body["user"]["login"] == ACTIONS_BOT


def upload(fake: FakeGitHub, release: dict[str, Any], name: str, data: bytes) -> Response:
    """Upload an asset where the release's upload_url template says, as a client that expands it would."""
    url = release["upload_url"].replace("{?name,label}", f"?name={name}")
    return call(fake, "POST", url, raw=data, content_type="application/octet-stream")


def test_given_no_release_when_creating_uploading_and_listing_then_each_read_sees_the_last_write(fake):
    created = call(fake, "POST", RELEASES, {"tag_name": "v1", "target_commitish": HEAD_SHA, "name": "One", "body": "x"})
    assert created.status == 201
    assert created.headers["location"] == created.body["url"]
    assert created.body["upload_url"] == f"{fake.url}{RELEASES}/{created.body['id']}/assets{{?name,label}}"
    assert created.body["author"]["login"] == ACTIONS_BOT
    assert created.body["html_url"] == "https://github.com/octo/models/releases/tag/v1"

    asset = upload(fake, created.body, "model.bento", b"\x00bento\xff")
    assert asset.status == 201
    assert (asset.body["name"], asset.body["size"], asset.body["state"]) == ("model.bento", 7, "uploaded")
    assert asset.body["digest"] == "sha256:" + hashlib.sha256(b"\x00bento\xff").hexdigest()
    assert asset.body["content_type"] == "application/octet-stream"
    assert fake.requests[-1].body == b"\x00bento\xff"

    by_tag = call(fake, "GET", f"{RELEASES}/tags/v1")
    assert by_tag.status == 200
    assert (by_tag.body["id"], by_tag.body["target_commitish"]) == (created.body["id"], HEAD_SHA)
    assert [a["name"] for a in by_tag.body["assets"]] == ["model.bento"]
    assert [a["id"] for a in call(fake, "GET", f"{RELEASES}/{created.body['id']}/assets").body] == [asset.body["id"]]
    assert fake.releases("octo", "models")[0]["assets"][0]["id"] == asset.body["id"]
    assert fake.asset_bytes("octo", "models", "v1", "model.bento") == b"\x00bento\xff"
    assert fake.releases("octo", "other") == []


def test_given_a_tag_with_a_published_release_then_another_is_refused_but_drafts_may_share_it(fake):
    fake.add_release("octo", "models", "v1")
    refused = call(fake, "POST", RELEASES, {"tag_name": "v1"})
    assert refused.status == 422
    assert refused.body["errors"] == [{"resource": "Release", "code": "already_exists", "field": "tag_name"}]

    drafts = [call(fake, "POST", RELEASES, {"tag_name": "v1", "draft": True}) for _ in range(2)]
    assert [draft.status for draft in drafts] == [201, 201]
    assert call(fake, "PATCH", f"{RELEASES}/{drafts[0].body['id']}", {"draft": False}).status == 422
    assert [release["draft"] for release in fake.releases("octo", "models")] == [True, True, False]


def test_given_a_draft_release_then_getting_its_tag_finds_nothing_as_github_shows_only_published_ones(fake):
    fake.add_release("octo", "models", "v1", draft=True)
    assert call(fake, "GET", f"{RELEASES}/tags/v1").status == 404
    [draft] = fake.releases("octo", "models")
    assert (draft["draft"], draft["published_at"], draft["tarball_url"]) == (True, None, None)


def test_given_a_draft_when_listing_and_publishing_it_then_it_is_listed_first_and_found_by_tag_once_published(fake):
    fake.add_release("octo", "models", "v1")
    draft = call(fake, "POST", RELEASES, {"tag_name": "v2", "draft": True}).body
    assert [r["tag_name"] for r in call(fake, "GET", f"{RELEASES}?per_page=100").body] == ["v2", "v1"]

    published = call(fake, "PATCH", f"{RELEASES}/{draft['id']}", {"draft": False})

    assert (published.status, published.body["draft"]) == (200, False)
    assert published.body["published_at"] is not None
    assert published.body["html_url"] == "https://github.com/octo/models/releases/tag/v2"
    assert call(fake, "GET", f"{RELEASES}/tags/v2").body["id"] == draft["id"]
    assert call(fake, "PATCH", f"{RELEASES}/999", {"draft": False}).status == 404


def test_given_immutable_releases_then_a_draft_takes_assets_and_a_published_release_refuses_them():
    with FakeGitHub(immutable_releases=True) as server:
        draft = call(server, "POST", RELEASES, {"tag_name": "v1", "draft": True}).body
        assert upload(server, draft, "model.bento", b"one").status == 201
        published = call(server, "PATCH", f"{RELEASES}/{draft['id']}", {"draft": False}).body
        assert published["immutable"] is True
        assert upload(server, published, "notes.md", b"late").status == 422
    assert [a["name"] for a in server.releases("octo", "models")[0]["assets"]] == ["model.bento"]


def test_given_an_asset_name_already_taken_when_uploading_again_then_422_as_documented_without_a_body(fake):
    release = call(fake, "POST", RELEASES, {"tag_name": "v1"}).body
    assert upload(fake, release, "model.bento", b"one").status == 201
    again = upload(fake, release, "model.bento", b"two")
    assert (again.status, again.body) == (422, None)
    assert fake.asset_bytes("octo", "models", "v1", "model.bento") == b"one"


def test_given_no_such_release_or_asset_then_404(fake):
    assert call(fake, "GET", f"{RELEASES}/tags/v9").status == 404
    missing = {"upload_url": f"{fake.url}{RELEASES}/999/assets{{?name,label}}"}
    assert upload(fake, missing, "model.bento", b"x").status == 404
    assert call(fake, "GET", f"{RELEASES}/assets/999").status == 404
    assert call(fake, "GET", f"{RELEASES}/999/assets").body == []


def test_given_many_assets_when_listing_by_two_then_link_headers_page_through_them(fake):
    fake.add_release("octo", "models", "v1", assets={f"file-{n}.json": b"{}" for n in range(5)})
    release_id = fake.releases("octo", "models")[0]["id"]
    first = call(fake, "GET", f"{RELEASES}/{release_id}/assets?per_page=2")
    assert [a["name"] for a in first.body] == ["file-0.json", "file-1.json"]
    assert "page=3" in links(first)["last"]
    last = call(fake, "GET", links(first)["last"])
    assert [a["name"] for a in last.body] == ["file-4.json"]
    assert set(links(last)) == {"prev", "first"}


def test_given_an_asset_asked_for_as_octet_stream_then_302_to_signed_storage_that_refuses_a_second_credential(fake):
    fake.add_release("octo", "models", "v1", assets={"model.bento": b"\x00weights"})
    asset = fake.releases("octo", "models")[0]["assets"][0]

    found = call(fake, "GET", asset["url"], accept="application/octet-stream")
    assert (found.status, found.body) == (302, None)
    location = found.headers["location"]
    assert location.startswith(f"{fake.url}{ASSET_STORAGE_PATH}{asset['id']}?sig=")

    assert call(fake, "GET", location, authorization=None).body == b"\x00weights"
    with_token = call(fake, "GET", location)
    assert with_token.status == 400 and "Only one auth mechanism allowed" in with_token.body
    assert call(fake, "GET", location.split("?")[0], authorization=None).status == 403
    assert fake.releases("octo", "models")[0]["assets"][0]["download_count"] == 1


def test_given_stream_assets_then_the_api_answers_an_octet_stream_request_with_the_bytes():
    with FakeGitHub(stream_assets=True) as server:
        server.add_release("octo", "models", "v1", assets={"model.bento": b"\x00weights"})
        asset = server.releases("octo", "models")[0]["assets"][0]
        streamed = call(server, "GET", asset["url"], accept="application/octet-stream")
        as_json = call(server, "GET", asset["url"])
    assert (streamed.status, streamed.body) == (200, b"\x00weights")
    assert as_json.body["size"] == 8 and as_json.body["browser_download_url"].endswith("/download/v1/model.bento")


def test_given_a_release_response_missing_a_required_field_then_the_block_fails(monkeypatch):
    render = FakeGitHub._render_release

    def without_upload_url(self: FakeGitHub, release: Any) -> dict[str, Any]:
        rendered = render(self, release)
        del rendered["upload_url"]
        return rendered

    monkeypatch.setattr(FakeGitHub, "_render_release", without_upload_url)
    expected = r"repos/create-release: response body: 'upload_url' is a required property"
    with pytest.raises(AssertionError, match=expected), FakeGitHub() as server:
        assert call(server, "POST", RELEASES, {"tag_name": "v1"}).status == 201


@pytest.mark.parametrize(
    ("path", "body", "problem"),
    [
        (RELEASES, {"tag_name": 1}, "1 is not of type 'string'"),
        (RELEASES, {"name": "no tag"}, "'tag_name' is a required property"),
        (f"{RELEASES}/1/assets", b"bytes", "the required query parameter 'name' is missing"),
    ],
)
def test_given_a_release_request_github_would_not_accept_then_the_block_fails(path, body, problem):
    with pytest.raises(AssertionError, match=re.escape(problem)), FakeGitHub() as server:
        if isinstance(body, bytes):
            call(server, "POST", path, raw=body, content_type="application/octet-stream")
        else:
            call(server, "POST", path, body)
