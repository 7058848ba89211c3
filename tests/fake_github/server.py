"""The stand-in's HTTP server on 127.0.0.1: GitHub's endpoints the product calls, over in-memory state."""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import math
import re
import secrets
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from .openapi import (
    DOCS_URL,
    JSON,
    OPERATIONS,
    Operation,
    body_problems,
    documented_as,
    operations,
    parameter_problems,
    response_problems,
    routes,
)

RATE_LIMIT_DOCS_URL = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
API_VERSION = "2022-11-28"
RATE_LIMIT = 5000
MAX_COMMENT_LENGTH = 65536
# The identity GitHub gives a workflow's GITHUB_TOKEN: what it posts is authored by this bot.
ACTIONS_BOT = "github-actions[bot]"
ACTIONS_BOT_ID = 41898282

_FAULT_MESSAGES = {
    403: ("API rate limit exceeded for installation ID 1.", f"{RATE_LIMIT_DOCS_URL}#about-primary-rate-limits"),
    429: (
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
        f"{RATE_LIMIT_DOCS_URL}#about-secondary-rate-limits",
    ),
    500: ("Server Error", DOCS_URL),
}


class RecordedRequest(NamedTuple):
    """One request the stand-in received; headers have lowercase names, body is the parsed JSON, raw bytes or None."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class _Reply:
    """What the stand-in answers: a JSON value (or raw text, or nothing) with headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Fault:
    """A failure to answer instead of the real response, for the next `remaining` matching requests."""

    method: str
    path: re.Pattern[str]
    reply: _Reply
    remaining: int


@dataclass
class _Comment:
    """An issue comment as stored; rendered into GitHub's shape on every response."""

    id: int
    owner: str
    repo: str
    issue_number: int
    body: str
    login: str
    created_at: str
    updated_at: str


@dataclass
class _Issue:
    """An issue as stored; rendered into GitHub's shape on every response."""

    owner: str
    repo: str
    number: int
    title: str
    body: str | None
    labels: list[str]
    login: str
    created_at: str
    updated_at: str
    state: str = "open"
    state_reason: str | None = None
    closed_at: str | None = None


@dataclass
class _Pull:
    """The facts about a pull request a test chose; every other field is derived."""

    owner: str
    repo: str
    number: int
    head_sha: str
    head_ref: str
    base_ref: str
    base_sha: str
    head_repo_full_name: str
    title: str
    body: str | None
    state: str
    draft: bool
    login: str
    created_at: str


@dataclass
class _Asset:
    """A release asset as stored: its bytes, and where the redirect for downloading it points."""

    id: int
    release_id: int
    name: str
    label: str | None
    content_type: str
    data: bytes
    size: int
    digest: str
    login: str
    created_at: str
    secret: str = field(default_factory=lambda: secrets.token_hex(16))
    download_count: int = 0


@dataclass
class _Release:
    """A release as stored; its assets are kept by id in FakeGitHub."""

    id: int
    owner: str
    repo: str
    tag_name: str
    target_commitish: str
    name: str | None
    body: str | None
    draft: bool
    prerelease: bool
    login: str
    created_at: str
    published_at: str | None
    assets: list[int] = field(default_factory=list)


# Where a download redirect points: the stand-in for GitHub's signed storage host, served by the same server.
ASSET_STORAGE_PATH = "/release-assets/"


def _now() -> str:
    """The current time as GitHub writes it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _node_id(kind: str, number: int) -> str:
    """A global node ID in GitHub's legacy encoding, such as MDQ6VXNlcjE= for user 1."""
    return base64.b64encode(f"0{len(kind)}:{kind}{number}".encode()).decode()


def _sha(*parts: object) -> str:
    """A stable, plausible 40-character commit SHA."""
    return hashlib.sha1("/".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


def _error(status: int, message: str, docs_url: str = DOCS_URL) -> _Reply:
    """An error response shaped like GitHub's."""
    return _Reply(status, {"message": message, "documentation_url": docs_url, "status": str(status)})


def _token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer …` or `Authorization: token …` header."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        return None
    return token.strip()


def _parse_json(raw: bytes) -> tuple[Any, bool, bool]:
    """The parsed body, whether there was one, and whether it was valid JSON."""
    if not raw.strip():
        return None, False, True
    try:
        return json.loads(raw), True, True
    except ValueError:
        return raw.decode("utf-8", "replace"), True, False


def _fault_reply(status: int, headers: Mapping[str, str | None] | None, body: Any) -> _Reply:
    """The response of an injected failure: GitHub's body and headers for the status, with the test's overrides."""
    message, docs_url = _FAULT_MESSAGES.get(status, (HTTPStatus(status).phrase, DOCS_URL))
    defaults: dict[str, str | None] = {}
    if status == 403:
        # Rate limits reset a second ahead so clients that wait for the reset keep tests fast.
        reset = str(int(time.time()) + 1)
        defaults = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset, "x-ratelimit-used": str(RATE_LIMIT)}
    elif status == 429:
        defaults = {"retry-after": "1"}
    merged = {**defaults, **{name.lower(): value for name, value in (headers or {}).items()}}
    reply = _error(status, message, docs_url) if body is None else _Reply(status, body)
    reply.headers = {name: value for name, value in merged.items() if value is not None}
    return reply


class _Server(ThreadingHTTPServer):
    """The HTTP server, knowing the FakeGitHub whose state it serves."""

    def __init__(self, fake: FakeGitHub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    """Hands every request to the FakeGitHub and writes back its answer."""

    server: _Server

    def _serve(self) -> None:
        """Read the request, let the fake answer it, write the answer."""
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, reply_headers, payload = self.server.fake._handle(self.command, self.path, headers, raw)
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request log: `FakeGitHub.requests` records every request."""


class FakeGitHub:
    """GitHub's REST API on 127.0.0.1, checked against GitHub's OpenAPI description; use it in a `with` block."""

    def __init__(
        self,
        token: str | None = None,
        identities: Mapping[str, str] | None = None,
        *,
        stream_assets: bool = False,
        immutable_releases: bool = False,
    ) -> None:
        """Any Bearer or token credential is accepted unless `token` names the only valid one.

        `identities` maps tokens to the login their comments are authored by; any other token posts as
        github-actions[bot], the identity of a workflow's GITHUB_TOKEN. An asset asked for as
        application/octet-stream is answered with a redirect to signed storage, or with its bytes when
        `stream_assets` is true: GitHub's description says clients must handle both. With `immutable_releases`,
        as in a repository that turned release immutability on, a published release takes no more assets.
        """
        self.expected_token = token
        self.identities = dict(identities or {})
        self.stream_assets = stream_assets
        self.immutable_releases = immutable_releases
        self._caller = ACTIONS_BOT
        self._request_headers: dict[str, str] = {}
        self.requests: list[RecordedRequest] = []
        self.tokens: list[str] = []
        self.spec_errors: list[str] = []
        self._lock = threading.RLock()
        self._faults: list[_Fault] = []
        self._comments: dict[int, _Comment] = {}
        self._pulls: dict[tuple[str, str, int], _Pull] = {}
        self._issues: dict[tuple[str, str, int], _Issue] = {}
        self.dispatches: list[dict[str, Any]] = []
        self._releases: dict[int, _Release] = {}
        self._assets: dict[int, _Asset] = {}
        self._next_release_id = 200_000_001
        self._next_asset_id = 300_000_001
        self._ids: dict[str, int] = {}
        self._next_comment_id = 1_000_000_001
        self._used = 0
        self._reset = int(time.time()) + 3600
        self._operations = operations()
        self._server = _Server(self)
        self._thread: threading.Thread | None = None
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        """Start serving."""
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop serving, then fail if any traffic disagreed with GitHub's description (unless already failing)."""
        self.stop()
        if exc_type is None:
            self.check()

    def start(self) -> FakeGitHub:
        """Serve requests from a background thread."""
        if self._thread is None:
            # serve_forever notices shutdown() only between polls; its default half second would slow every test.
            serve = functools.partial(self._server.serve_forever, poll_interval=0.01)
            self._thread = threading.Thread(target=serve, name="fake-github", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def check(self) -> None:
        """Raise AssertionError listing every way the traffic so far disagreed with GitHub's description."""
        with self._lock:
            errors = list(self.spec_errors)
        if errors:
            listed = "\n".join(f"- {error}" for error in errors)
            raise AssertionError(f"the GitHub stand-in saw traffic that disagrees with GitHub's API:\n{listed}")

    # -- what tests set up and read ----------------------------------------------------------------------------

    def fail(
        self,
        method: str,
        path_regex: str,
        status: int,
        times: int = 1,
        headers: Mapping[str, str | None] | None = None,
        body: Any = None,
    ) -> None:
        """Answer the next `times` requests whose method matches and whose path matches `path_regex` with an error.

        The body defaults to GitHub's for the status; 403 defaults to a primary rate limit (`x-ratelimit-remaining:
        0`, `x-ratelimit-reset` a second ahead) and 429 to a secondary one (`retry-after: 1`). `headers` override
        those defaults; a None value removes one. A str body is sent as raw text, like GitHub's HTML error pages.
        """
        if times < 1 or not 400 <= status <= 599:
            raise ValueError("fail() needs times >= 1 and an error status (400-599)")
        fault = _Fault(method.upper(), re.compile(path_regex), _fault_reply(status, headers, body), times)
        with self._lock:
            self._faults.append(fault)

    def add_pull(
        self,
        owner: str,
        repo: str,
        number: int,
        *,
        head_sha: str,
        head_ref: str,
        base_ref: str = "main",
        base_sha: str | None = None,
        head_repo_full_name: str | None = None,
        title: str | None = None,
        body: str | None = None,
        state: str = "open",
        draft: bool = False,
        user: str | None = None,
    ) -> None:
        """Make a pull request exist; from a fork when `head_repo_full_name` names another repository."""
        if re.fullmatch(r"[0-9a-f]{40}", head_sha) is None:
            raise ValueError(f"head_sha must be a full 40-character lowercase SHA, like GitHub's: {head_sha!r}")
        head_repo = head_repo_full_name or f"{owner}/{repo}"
        pull = _Pull(
            owner=owner,
            repo=repo,
            number=number,
            head_sha=head_sha,
            head_ref=head_ref,
            base_ref=base_ref,
            base_sha=base_sha or _sha(owner, repo, base_ref),
            head_repo_full_name=head_repo,
            title=title or f"Pull request #{number}",
            body=body,
            state=state,
            draft=draft,
            login=user or head_repo.split("/")[0],
            created_at=_now(),
        )
        with self._lock:
            self._pulls[(owner.lower(), repo.lower(), number)] = pull

    def add_comment(self, owner: str, repo: str, issue_number: int, body: str, *, user: str = ACTIONS_BOT) -> int:
        """Make a comment exist, as if `user` had posted it; returns its id."""
        with self._lock:
            comment_id = self._next_comment_id
            self._next_comment_id += 1
            now = _now()
            self._comments[comment_id] = _Comment(comment_id, owner, repo, issue_number, body, user, now, now)
        return comment_id

    def comments(self, owner: str, repo: str, issue_number: int) -> list[dict[str, Any]]:
        """The comments of an issue or pull request as GitHub would return them, oldest first."""
        with self._lock:
            return [self._render_comment(comment) for comment in self._issue_comments(owner, repo, issue_number)]

    def add_release(
        self,
        owner: str,
        repo: str,
        tag: str,
        *,
        assets: Mapping[str, bytes] | None = None,
        name: str | None = None,
        body: str | None = None,
        target_commitish: str = "main",
        draft: bool = False,
        user: str = ACTIONS_BOT,
    ) -> int:
        """Make a release exist with the given assets (name -> bytes), as if `user` had published it; returns its id."""
        with self._lock:
            release = self._new_release(owner, repo, tag, target_commitish, name, body, draft, False, user)
            for asset_name, data in (assets or {}).items():
                self._new_asset(release, asset_name, None, "application/octet-stream", data, user)
        return release.id

    def releases(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """A repository's releases, drafts too, as GitHub would return them, newest first."""
        with self._lock:
            found = [
                r for r in self._releases.values() if (r.owner.lower(), r.repo.lower()) == (owner.lower(), repo.lower())
            ]
            return [self._render_release(release) for release in sorted(found, key=lambda r: -r.id)]

    def asset_bytes(self, owner: str, repo: str, tag: str, name: str) -> bytes:
        """The stored bytes of a release's asset; KeyError when there is no such asset."""
        with self._lock:
            release = self._release_by_tag(owner, repo, tag, drafts=True)
            for asset_id in release.assets if release else []:
                if self._assets[asset_id].name == name:
                    return self._assets[asset_id].data
        raise KeyError(f"{owner}/{repo} has no release {tag} with an asset {name}")

    def replace_asset_bytes(self, owner: str, repo: str, tag: str, name: str, data: bytes) -> None:
        """Swap a stored asset's bytes behind GitHub's back, keeping its recorded size and digest: a corrupted asset."""
        self.asset_bytes(owner, repo, tag, name)
        with self._lock:
            release = self._release_by_tag(owner, repo, tag, drafts=True)
            assert release is not None
            for asset_id in release.assets:
                if self._assets[asset_id].name == name:
                    self._assets[asset_id].data = data

    # -- request handling --------------------------------------------------------------------------------------

    def _handle(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request and check both directions against the description; never raises."""
        parts = urlsplit(target)
        path, query = unquote(parts.path), dict(parse_qsl(parts.query, keep_blank_values=True))
        with self._lock:
            route = self._route(method, path)
            if route is not None and route[0].request_media not in (None, JSON):
                body, has_body, is_json = raw, bool(raw), True
            else:
                body, has_body, is_json = _parse_json(raw)
            self.requests.append(RecordedRequest(method, path, query, headers, body))
            if path.startswith(ASSET_STORAGE_PATH):
                reply = self._storage(method, path, query, headers)
                return reply.status, self._headers(reply), self._payload(reply)
            try:
                operation, reply = self._answer(method, path, query, headers, route, (body, has_body, is_json))
                if operation is not None:
                    for problem in response_problems(operation, reply.status, reply.body):
                        self._spec_error(f"{method} {path} -> {reply.status}: {operation.operation_id}: {problem}")
            except Exception:
                self._spec_error(f"the stand-in failed on {method} {path}:\n{traceback.format_exc()}")
                reply = _error(500, "Server Error")
            return reply.status, self._headers(reply), self._payload(reply)

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        route: tuple[Operation, dict[str, str]] | None,
        request: tuple[Any, bool, bool],
    ) -> tuple[Operation | None, _Reply]:
        """The operation the request is for (None if not implemented) and the reply."""
        if route is None:
            self._spec_error(
                f"endpoint not implemented by the stand-in: {method} {path} ({documented_as(method, path)})"
            )
            return None, _error(404, "Not Found")
        operation, params = route
        body, has_body, is_json = request
        bad_params = parameter_problems(operation, params, query)
        bad_body = body_problems(operation, body, has_body) if is_json else ["the request body is not valid JSON"]
        for problem in bad_params + bad_body:
            self._spec_error(f"{method} {path}: {operation.operation_id}: {problem}")
        token = _token(headers)
        if token is None:
            return operation, _error(401, "Requires authentication")
        self.tokens.append(token)
        if self.expected_token is not None and token != self.expected_token:
            return operation, _error(401, "Bad credentials")
        self._used += 1
        self._caller = self.identities.get(token, ACTIONS_BOT)
        self._request_headers = headers
        fault = self._take_fault(method, path)
        if fault is not None:
            return operation, copy.deepcopy(fault)
        if not is_json:
            return operation, _error(400, "Problems parsing JSON", operation.docs_url)
        if bad_params:
            return operation, _error(404, "Not Found", operation.docs_url)
        if bad_body:
            return operation, _error(422, "Invalid request.\n\n" + "\n".join(bad_body), operation.docs_url)
        handler = getattr(self, OPERATIONS[(operation.method, operation.template)])
        return operation, handler(operation, params, query, body)

    def _route(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The implemented operation for a request, with its path parameters."""
        for route_method, template, regex in routes():
            match = regex.fullmatch(path)
            if route_method == method and match:
                return self._operations[(method, template)], match.groupdict()
        return None

    def _take_fault(self, method: str, path: str) -> _Reply | None:
        """The reply of the first injected failure that matches, counting it down."""
        for fault in self._faults:
            if fault.method == method and fault.path.search(path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault.reply
        return None

    def _spec_error(self, message: str) -> None:
        """Record a disagreement with GitHub's description; the `with` block fails on it."""
        with self._lock:
            self.spec_errors.append(message)

    def _headers(self, reply: _Reply) -> dict[str, str]:
        """The headers GitHub sends on every response, then the reply's own."""
        if isinstance(reply.body, bytes):
            content_type = "application/octet-stream"
        elif isinstance(reply.body, str):
            content_type = "text/html; charset=utf-8"
        else:
            content_type = "application/json; charset=utf-8"
        headers = {
            "content-type": content_type,
            "x-github-api-version-selected": API_VERSION,
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": f"FAKE:{len(self.requests):08X}",
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(max(RATE_LIMIT - self._used, 0)),
            "x-ratelimit-reset": str(self._reset),
            "x-ratelimit-used": str(self._used),
            "x-ratelimit-resource": "core",
        }
        return {**headers, **reply.headers}

    @staticmethod
    def _payload(reply: _Reply) -> bytes:
        """The reply's body as bytes."""
        if reply.body is None:
            return b""
        if isinstance(reply.body, bytes):
            return reply.body
        return (reply.body if isinstance(reply.body, str) else json.dumps(reply.body)).encode()

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _list_comments(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """GET /repos/{owner}/{repo}/issues/{issue_number}/comments, paginated like GitHub."""
        comments = self._issue_comments(params["owner"], params["repo"], int(params["issue_number"]))
        if "since" in query:
            since = datetime.fromisoformat(query["since"])
            comments = [comment for comment in comments if datetime.fromisoformat(comment.updated_at) >= since]
        path = f"/repos/{params['owner']}/{params['repo']}/issues/{params['issue_number']}/comments"
        return self._paginated(path, query, comments, self._render_comment)

    def _paginated(self, path: str, query: dict[str, str], items: list[Any], render: Any) -> _Reply:
        """One page of a listing (per_page defaults to 30, at most 100), with GitHub's Link header."""
        per_page = min(int(query.get("per_page") or 30), 100)
        per_page = per_page if per_page > 0 else 30
        page = max(int(query.get("page") or 1), 1)
        reply = _Reply(200, [render(item) for item in items[(page - 1) * per_page : page * per_page]])
        link = self._link_header(path, query, page, math.ceil(len(items) / per_page))
        if link:
            reply.headers["link"] = link
        return reply

    def _link_header(self, path: str, query: dict[str, str], page: int, last: int) -> str:
        """An RFC 5988 Link header with GitHub's rels: prev and first after page 1, next and last before the end."""
        rels = []
        if page > 1:
            rels += [("prev", page - 1)]
        if page < last:
            rels += [("next", page + 1), ("last", last)]
        if page > 1:
            rels += [("first", 1)]
        links = [f'<{self.url}{path}?{urlencode({**query, "page": number})}>; rel="{rel}"' for rel, number in rels]
        return ", ".join(links)

    def _create_comment(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """POST /repos/{owner}/{repo}/issues/{issue_number}/comments."""
        if len(body["body"]) > MAX_COMMENT_LENGTH:
            return self._too_long(operation)
        comment_id = self.add_comment(
            params["owner"], params["repo"], int(params["issue_number"]), body["body"], user=self._caller
        )
        reply = _Reply(201, self._render_comment(self._comments[comment_id]))
        reply.headers["location"] = reply.body["url"]
        return reply

    def _update_comment(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}."""
        comment = self._comments.get(int(params["comment_id"]))
        if comment is None or (comment.owner.lower(), comment.repo.lower()) != self._repo_key(params):
            return _error(404, "Not Found", operation.docs_url)
        if len(body["body"]) > MAX_COMMENT_LENGTH:
            return self._too_long(operation)
        comment.body, comment.updated_at = body["body"], _now()
        return _Reply(200, self._render_comment(comment))

    def _list_issues(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """GET /repos/{owner}/{repo}/issues: open ones by default, newest first; `labels` must all be present."""
        wanted = query.get("state", "open")
        labels = [name.strip() for name in query.get("labels", "").split(",") if name.strip()]
        found = [
            issue
            for key, issue in self._issues.items()
            if key[:2] == self._repo_key(params)
            and wanted in ("all", issue.state)
            and all(name in issue.labels for name in labels)
        ]
        found.sort(key=lambda issue: issue.number, reverse=True)
        return self._paginated(f"/repos/{params['owner']}/{params['repo']}/issues", query, found, self._render_issue)

    def _create_issue(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """POST /repos/{owner}/{repo}/issues; issues and pull requests share one sequence of numbers, as on GitHub."""
        owner, repo = self._repo_key(params)
        taken = [key[2] for key in (*self._issues, *self._pulls) if key[:2] == (owner, repo)]
        number = max(taken, default=0) + 1
        now = _now()
        labels = [label if isinstance(label, str) else label["name"] for label in body.get("labels") or []]
        issue = _Issue(
            params["owner"],
            params["repo"],
            number,
            str(body["title"]),
            body.get("body"),
            labels,
            self._caller,
            now,
            now,
        )
        self._issues[(owner, repo, number)] = issue
        reply = _Reply(201, self._render_issue(issue))
        reply.headers["location"] = reply.body["url"]
        return reply

    def _update_issue(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """PATCH /repos/{owner}/{repo}/issues/{issue_number}: the fields given change; closing records when."""
        issue = self._issues.get((*self._repo_key(params), int(params["issue_number"])))
        if issue is None:
            return _error(404, "Not Found", operation.docs_url)
        body = body or {}
        if body.get("title") is not None:
            issue.title = str(body["title"])
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body:
            issue.labels = [label if isinstance(label, str) else label["name"] for label in body["labels"] or []]
        if body.get("state") in ("open", "closed") and body["state"] != issue.state:
            issue.state = body["state"]
            issue.closed_at = _now() if issue.state == "closed" else None
            issue.state_reason = body.get("state_reason") or ("completed" if issue.state == "closed" else "reopened")
        issue.updated_at = _now()
        return _Reply(200, self._render_issue(issue))

    def _dispatch_workflow(
        self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any
    ) -> _Reply:
        """POST /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches: recorded, answered 204."""
        self.dispatches.append(
            {"repository": f"{params['owner']}/{params['repo']}", "workflow": params["workflow_id"], **body}
        )
        return _Reply(204)

    def _get_pull(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """GET /repos/{owner}/{repo}/pulls/{pull_number}."""
        pull = self._pulls.get((*self._repo_key(params), int(params["pull_number"])))
        if pull is None:
            return _error(404, "Not Found", operation.docs_url)
        return _Reply(200, self._render_pull(pull))

    def _list_pulls(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """GET /repos/{owner}/{repo}/pulls: `state` (default open) and `head` (`owner:branch`) filter, newest first."""
        wanted, head = query.get("state", "open"), query.get("head")
        found = [
            pull
            for key, pull in self._pulls.items()
            if key[:2] == self._repo_key(params)
            and wanted in ("all", pull.state)
            and (head is None or head.lower() == f"{pull.head_repo_full_name.split('/')[0]}:{pull.head_ref}".lower())
        ]
        found.sort(key=lambda pull: pull.number, reverse=True)
        return self._paginated(f"/repos/{params['owner']}/{params['repo']}/pulls", query, found, self._render_pull)

    def _create_pull(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """POST /repos/{owner}/{repo}/pulls from a branch of the same repository; one open pull per head, as on
        GitHub (a second answers 422)."""
        owner, repo = self._repo_key(params)
        head = str(body["head"]).split(":")[-1]
        if any(k[:2] == (owner, repo) and p.head_ref == head and p.state == "open" for k, p in self._pulls.items()):
            return _error(422, "Validation Failed", operation.docs_url)
        taken = [key[2] for key in (*self._issues, *self._pulls) if key[:2] == (owner, repo)]
        number = max(taken, default=0) + 1
        self.add_pull(
            params["owner"],
            params["repo"],
            number,
            head_sha=_sha(owner, repo, head, number),
            head_ref=head,
            base_ref=str(body["base"]),
            title=str(body.get("title") or ""),
            body=body.get("body"),
            draft=bool(body.get("draft", False)),
            user=self._caller,
        )
        reply = _Reply(201, self._render_pull(self._pulls[(owner, repo, number)]))
        reply.headers["location"] = reply.body["url"]
        return reply

    def _update_pull(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """PATCH /repos/{owner}/{repo}/pulls/{pull_number}: title, body and state change when given."""
        pull = self._pulls.get((*self._repo_key(params), int(params["pull_number"])))
        if pull is None:
            return _error(404, "Not Found", operation.docs_url)
        body = body or {}
        if body.get("title") is not None:
            pull.title = str(body["title"])
        if "body" in body:
            pull.body = body["body"]
        if body.get("state") in ("open", "closed"):
            pull.state = body["state"]
        return _Reply(200, self._render_pull(pull))

    def pulls(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """Every pull request of a repository as the API renders it, oldest first."""
        with self._lock:
            found = [p for k, p in self._pulls.items() if k[:2] == (owner.lower(), repo.lower())]
            return [self._render_pull(p) for p in sorted(found, key=lambda p: p.number)]

    def _create_release(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """POST /repos/{owner}/{repo}/releases; as on GitHub, drafts may share a tag, a published release may not."""
        owner, repo = params["owner"], params["repo"]
        if not body.get("draft", False) and self._release_by_tag(owner, repo, body["tag_name"], drafts=False):
            return self._tag_taken(operation)
        release = self._new_release(
            owner,
            repo,
            body["tag_name"],
            body.get("target_commitish") or "main",
            body.get("name"),
            body.get("body"),
            bool(body.get("draft", False)),
            bool(body.get("prerelease", False)),
            self._caller,
        )
        reply = _Reply(201, self._render_release(release))
        reply.headers["location"] = reply.body["url"]
        return reply

    def _list_releases(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """GET /repos/{owner}/{repo}/releases, newest first, drafts too (the token is taken to have push access)."""
        key = self._repo_key(params)
        found = [r for r in self._releases.values() if (r.owner.lower(), r.repo.lower()) == key]
        path = f"/repos/{params['owner']}/{params['repo']}/releases"
        return self._paginated(path, query, sorted(found, key=lambda r: -r.id), self._render_release)

    def _update_release(self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any) -> _Reply:
        """PATCH /repos/{owner}/{repo}/releases/{release_id}: publishing a draft sets when it was published."""
        release = self._release_of(params)
        if release is None:
            return _error(404, "Not Found", operation.docs_url)
        publishing = body.get("draft") is False and release.draft
        tag = body.get("tag_name", release.tag_name)
        published = self._release_by_tag(release.owner, release.repo, tag, drafts=False)
        if (publishing or not release.draft) and published not in (None, release):
            return self._tag_taken(operation)
        for name in ("tag_name", "target_commitish", "name", "body", "prerelease"):
            if name in body:
                setattr(release, name, body[name])
        if publishing:
            release.draft, release.published_at = False, _now()
        elif body.get("draft") is True:
            release.draft, release.published_at = True, None
        return _Reply(200, self._render_release(release))

    def _get_release_by_tag(
        self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any
    ) -> _Reply:
        """GET /repos/{owner}/{repo}/releases/tags/{tag}: published releases only, as GitHub answers."""
        release = self._release_by_tag(params["owner"], params["repo"], params["tag"], drafts=False)
        if release is None:
            return _error(404, "Not Found", operation.docs_url)
        return _Reply(200, self._render_release(release))

    def _list_release_assets(
        self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any
    ) -> _Reply:
        """GET /repos/{owner}/{repo}/releases/{release_id}/assets, paginated like GitHub."""
        release = self._release_of(params)
        assets = [self._assets[asset_id] for asset_id in release.assets] if release else []
        path = f"/repos/{params['owner']}/{params['repo']}/releases/{params['release_id']}/assets"
        # GitHub documents no 404 here: an unknown release lists no assets.
        return self._paginated(path, query, assets, self._render_asset)

    def _upload_release_asset(
        self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any
    ) -> _Reply:
        """POST /repos/{owner}/{repo}/releases/{release_id}/assets?name=..., the upload_url's endpoint; raw bytes."""
        release = self._release_of(params)
        if release is None:
            return _error(404, "Not Found", operation.docs_url)
        content_type = self._request_headers.get("content-type", "")
        if not content_type:
            self._spec_error(f"POST {operation.template}: the upload has no Content-Type header, which GitHub requires")
            return _error(400, "Bad Content-Type header value", operation.docs_url)
        taken = any(self._assets[asset_id].name == query["name"] for asset_id in release.assets)
        if taken or (self.immutable_releases and not release.draft):
            # GitHub documents this 422 (a name taken; an immutable release refuses too) without a body.
            return _Reply(422)
        data = body if isinstance(body, bytes) else b""
        asset = self._new_asset(release, query["name"], query.get("label"), content_type, data, self._caller)
        return _Reply(201, self._render_asset(asset))

    def _get_release_asset(
        self, operation: Operation, params: dict[str, str], query: dict[str, str], body: Any
    ) -> _Reply:
        """GET /repos/{owner}/{repo}/releases/assets/{asset_id}: JSON, or the bytes when asked for octet-stream."""
        asset = self._assets.get(int(params["asset_id"]))
        release = None if asset is None else self._releases[asset.release_id]
        if asset is None or release is None or (release.owner.lower(), release.repo.lower()) != self._repo_key(params):
            return _error(404, "Not Found", operation.docs_url)
        if self._request_headers.get("accept", "").lower() != "application/octet-stream":
            return _Reply(200, self._render_asset(asset))
        if self.stream_assets:
            asset.download_count += 1
            return _Reply(200, asset.data)
        location = f"{self.url}{ASSET_STORAGE_PATH}{asset.id}?{urlencode({'sig': asset.secret})}"
        return _Reply(302, None, {"location": location})

    def _storage(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> _Reply:
        """The signed storage URL a download redirect points to: no GitHub API, so no checks against its description.

        Like the object store GitHub redirects to, it takes the signature in the URL as the only credential and
        refuses a request that also carries an Authorization header.
        """
        fault = self._take_fault(method, path)
        if fault is not None:
            return copy.deepcopy(fault)
        number = path.removeprefix(ASSET_STORAGE_PATH)
        asset = self._assets.get(int(number)) if number.isdigit() else None
        if method != "GET" or asset is None or query.get("sig") != asset.secret:
            return _Reply(403, "<Error><Code>AuthenticationFailed</Code></Error>")
        if "authorization" in headers:
            return _Reply(
                400, "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>"
            )
        asset.download_count += 1
        return _Reply(200, asset.data)

    def _new_release(
        self,
        owner: str,
        repo: str,
        tag: str,
        target_commitish: str,
        name: str | None,
        body: str | None,
        draft: bool,
        prerelease: bool,
        login: str,
    ) -> _Release:
        """Store a release with the next id."""
        now = _now()
        release = _Release(
            self._next_release_id,
            owner,
            repo,
            tag,
            target_commitish,
            name,
            body,
            draft,
            prerelease,
            login,
            now,
            None if draft else now,
        )
        self._next_release_id += 1
        self._releases[release.id] = release
        return release

    def _new_asset(
        self, release: _Release, name: str, label: str | None, content_type: str, data: bytes, login: str
    ) -> _Asset:
        """Store an asset of a release with the next id; GitHub records its size and sha256 digest."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        asset = _Asset(
            self._next_asset_id, release.id, name, label, content_type, data, len(data), digest, login, _now()
        )
        self._next_asset_id += 1
        self._assets[asset.id] = asset
        release.assets.append(asset.id)
        return asset

    def _release_by_tag(self, owner: str, repo: str, tag: str, *, drafts: bool) -> _Release | None:
        """The release of a tag (a draft only when asked for)."""
        key = (owner.lower(), repo.lower())
        for release in self._releases.values():
            ours = (release.owner.lower(), release.repo.lower()) == key and release.tag_name == tag
            if ours and (drafts or not release.draft):
                return release
        return None

    def _release_of(self, params: dict[str, str]) -> _Release | None:
        """The release a path's release_id names, if it belongs to the path's repository."""
        release = self._releases.get(int(params["release_id"]))
        if release is None or (release.owner.lower(), release.repo.lower()) != self._repo_key(params):
            return None
        return release

    @staticmethod
    def _tag_taken(operation: Operation) -> _Reply:
        """GitHub's answer to publishing a second release of a tag."""
        reply = _error(422, "Validation Failed", operation.docs_url)
        reply.body["errors"] = [{"resource": "Release", "code": "already_exists", "field": "tag_name"}]
        return reply

    @staticmethod
    def _too_long(operation: Operation) -> _Reply:
        """GitHub's answer to a comment body over 65536 characters."""
        reply = _error(422, "Validation Failed", operation.docs_url)
        message = f"Body is too long (maximum is {MAX_COMMENT_LENGTH} characters)"
        reply.body["errors"] = [{"resource": "IssueComment", "code": "custom", "field": "body", "message": message}]
        return reply

    @staticmethod
    def _repo_key(params: dict[str, str]) -> tuple[str, str]:
        """A repository's key: GitHub's owner and repository names are case-insensitive."""
        return params["owner"].lower(), params["repo"].lower()

    def _issue_comments(self, owner: str, repo: str, issue_number: int) -> list[_Comment]:
        """An issue's stored comments by ascending id, as GitHub orders them."""
        key = (owner.lower(), repo.lower(), issue_number)
        found = [c for c in self._comments.values() if (c.owner.lower(), c.repo.lower(), c.issue_number) == key]
        return sorted(found, key=lambda comment: comment.id)

    # -- GitHub's object shapes --------------------------------------------------------------------------------

    def _id(self, kind: str, name: str) -> int:
        """A stable numeric id per user or repository, made on first use (repositories exist once mentioned)."""
        key = f"{kind}:{name.lower()}"
        if key not in self._ids:
            self._ids[key] = 1000 + len(self._ids)
        return self._ids[key]

    def _render_user(self, login: str) -> dict[str, Any]:
        """A simple-user object; logins ending in [bot] are GitHub App bots, like the one GITHUB_TOKEN posts as."""
        bot = login.endswith("[bot]")
        number = ACTIONS_BOT_ID if login == ACTIONS_BOT else self._id("user", login)
        api = f"{self.url}/users/{quote(login)}"
        return {
            "login": login,
            "id": number,
            "node_id": _node_id("Bot" if bot else "User", number),
            "avatar_url": f"https://avatars.githubusercontent.com/{'in/15368' if bot else f'u/{number}'}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"https://github.com/apps/{login.removesuffix('[bot]')}"
            if bot
            else f"https://github.com/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "Bot" if bot else "User",
            "user_view_type": "public",
            "site_admin": False,
        }

    def _render_comment(self, comment: _Comment) -> dict[str, Any]:
        """An issue-comment object."""
        repo_api = f"{self.url}/repos/{comment.owner}/{comment.repo}"
        url = f"{repo_api}/issues/comments/{comment.id}"
        kind = (
            "pull" if (comment.owner.lower(), comment.repo.lower(), comment.issue_number) in self._pulls else "issues"
        )
        reactions = {"url": f"{url}/reactions", "total_count": 0, "+1": 0, "-1": 0, "laugh": 0, "hooray": 0}
        reactions |= {"confused": 0, "heart": 0, "rocket": 0, "eyes": 0}
        owner = comment.login.lower() == comment.owner.lower()
        return {
            "id": comment.id,
            "node_id": _node_id("IssueComment", comment.id),
            "url": url,
            "html_url": f"https://github.com/{comment.owner}/{comment.repo}/{kind}/{comment.issue_number}#issuecomment-{comment.id}",
            "body": comment.body,
            "user": self._render_user(comment.login),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "issue_url": f"{repo_api}/issues/{comment.issue_number}",
            "author_association": "OWNER" if owner else "NONE",
            "performed_via_github_app": None,
            "reactions": reactions,
        }

    def _render_issue(self, issue: _Issue) -> dict[str, Any]:
        """An issue object."""
        repo_api = f"{self.url}/repos/{issue.owner}/{issue.repo}"
        url = f"{repo_api}/issues/{issue.number}"
        labels = [
            {
                "id": self._id("label", f"{issue.owner}/{issue.repo}/{name}"),
                "node_id": _node_id("Label", self._id("label", f"{issue.owner}/{issue.repo}/{name}")),
                "url": f"{repo_api}/labels/{quote(name)}",
                "name": name,
                "description": None,
                "color": "ededed",
                "default": False,
            }
            for name in issue.labels
        ]
        number = self._id("issue", f"{issue.owner}/{issue.repo}#{issue.number}")
        return {
            "id": number,
            "node_id": _node_id("Issue", number),
            "url": url,
            "repository_url": repo_api,
            "labels_url": f"{url}/labels{{/name}}",
            "comments_url": f"{url}/comments",
            "events_url": f"{url}/events",
            "html_url": f"https://github.com/{issue.owner}/{issue.repo}/issues/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "user": self._render_user(issue.login),
            "labels": labels,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "locked": False,
            "active_lock_reason": None,
            "comments": len(self._issue_comments(issue.owner, issue.repo, issue.number)),
            "closed_at": issue.closed_at,
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "author_association": "NONE",
        }

    def issues(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """Every issue of a repository as GitHub would render it, oldest first."""
        with self._lock:
            found = [i for key, i in self._issues.items() if key[:2] == (owner.lower(), repo.lower())]
            return [self._render_issue(issue) for issue in sorted(found, key=lambda issue: issue.number)]

    def _render_release(self, release: _Release) -> dict[str, Any]:
        """A release object; its upload_url points at this server, as GitHub's points at its uploads host."""
        api = f"{self.url}/repos/{release.owner}/{release.repo}/releases/{release.id}"
        html = f"https://github.com/{release.owner}/{release.repo}/releases"
        archive = f"{self.url}/repos/{release.owner}/{release.repo}"
        return {
            "url": api,
            "html_url": f"{html}/tag/{quote(release.tag_name)}"
            if not release.draft
            else f"{html}/untagged-{release.id}",
            "assets_url": f"{api}/assets",
            "upload_url": f"{api}/assets{{?name,label}}",
            "tarball_url": None if release.draft else f"{archive}/tarball/{quote(release.tag_name)}",
            "zipball_url": None if release.draft else f"{archive}/zipball/{quote(release.tag_name)}",
            "id": release.id,
            "node_id": _node_id("Release", release.id),
            "tag_name": release.tag_name,
            "target_commitish": release.target_commitish,
            "name": release.name,
            "body": release.body,
            "draft": release.draft,
            "prerelease": release.prerelease,
            "immutable": self.immutable_releases and not release.draft,
            "created_at": release.created_at,
            "published_at": release.published_at,
            "updated_at": release.published_at or release.created_at,
            "author": self._render_user(release.login),
            "assets": [self._render_asset(self._assets[asset_id]) for asset_id in release.assets],
        }

    def _render_asset(self, asset: _Asset) -> dict[str, Any]:
        """A release-asset object, with the size and sha256 digest GitHub recorded when it was uploaded."""
        release = self._releases[asset.release_id]
        full_name = f"{release.owner}/{release.repo}"
        return {
            "url": f"{self.url}/repos/{full_name}/releases/assets/{asset.id}",
            "browser_download_url": f"https://github.com/{full_name}/releases/download/{quote(release.tag_name)}/"
            f"{quote(asset.name)}",
            "id": asset.id,
            "node_id": _node_id("ReleaseAsset", asset.id),
            "name": asset.name,
            "label": asset.label,
            "state": "uploaded",
            "content_type": asset.content_type,
            "size": asset.size,
            "digest": asset.digest,
            "download_count": asset.download_count,
            "created_at": asset.created_at,
            "updated_at": asset.created_at,
            "uploader": self._render_user(asset.login),
        }

    def _render_repository(self, full_name: str, fork: bool) -> dict[str, Any]:
        """A repository object; the owner is a user and the default branch is main."""
        owner, name = full_name.split("/", 1)
        api = f"{self.url}/repos/{full_name}"
        html = f"https://github.com/{full_name}"
        number = self._id("repo", full_name)
        templated = {
            "archive_url": "{archive_format}{/ref}",
            "assignees_url": "/assignees{/user}",
            "blobs_url": "/git/blobs{/sha}",
            "branches_url": "/branches{/branch}",
            "collaborators_url": "/collaborators{/collaborator}",
            "comments_url": "/comments{/number}",
            "commits_url": "/commits{/sha}",
            "compare_url": "/compare/{base}...{head}",
            "contents_url": "/contents/{+path}",
            "git_commits_url": "/git/commits{/sha}",
            "git_refs_url": "/git/refs{/sha}",
            "git_tags_url": "/git/tags{/sha}",
            "issue_comment_url": "/issues/comments{/number}",
            "issue_events_url": "/issues/events{/number}",
            "issues_url": "/issues{/number}",
            "keys_url": "/keys{/key_id}",
            "labels_url": "/labels{/name}",
            "milestones_url": "/milestones{/number}",
            "notifications_url": "/notifications{?since,all,participating}",
            "pulls_url": "/pulls{/number}",
            "releases_url": "/releases{/id}",
            "statuses_url": "/statuses/{sha}",
            "trees_url": "/git/trees{/sha}",
        }
        plain = ["contributors", "deployments", "downloads", "events", "forks", "hooks", "languages", "merges"]
        plain += ["stargazers", "subscribers", "subscription", "tags", "teams"]
        return {
            "id": number,
            "node_id": _node_id("Repository", number),
            "name": name,
            "full_name": full_name,
            "owner": self._render_user(owner),
            "private": False,
            "html_url": html,
            "description": None,
            "fork": fork,
            "url": api,
            **{key: f"{api}{suffix}" for key, suffix in templated.items()},
            **{f"{key}_url": f"{api}/{key}" for key in plain},
            "git_url": f"git://github.com/{full_name}.git",
            "ssh_url": f"git@github.com:{full_name}.git",
            "clone_url": f"{html}.git",
            "svn_url": html,
            "mirror_url": None,
            "homepage": None,
            "language": "Python",
            "forks": 0,
            "forks_count": 0,
            "stargazers_count": 0,
            "watchers": 0,
            "watchers_count": 0,
            "size": 100,
            "default_branch": "main",
            "open_issues": 1,
            "open_issues_count": 1,
            "has_issues": True,
            "has_projects": True,
            "has_wiki": True,
            "has_pages": False,
            "has_downloads": True,
            "archived": False,
            "disabled": False,
            "visibility": "public",
            "license": None,
            "topics": [],
            "pushed_at": _now(),
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": _now(),
        }

    def _render_branch(self, full_name: str, ref: str, sha: str, fork: bool) -> dict[str, Any]:
        """The head or base of a pull request."""
        owner = full_name.split("/", 1)[0]
        return {
            "label": f"{owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "user": self._render_user(owner),
            "repo": self._render_repository(full_name, fork),
        }

    def _render_pull(self, pull: _Pull) -> dict[str, Any]:
        """A pull-request object."""
        full_name = f"{pull.owner}/{pull.repo}"
        api = f"{self.url}/repos/{full_name}"
        url = f"{api}/pulls/{pull.number}"
        html = f"https://github.com/{full_name}/pull/{pull.number}"
        issue = f"{api}/issues/{pull.number}"
        fork = pull.head_repo_full_name.lower() != full_name.lower()
        links = {"self": url, "html": html, "issue": issue, "comments": f"{issue}/comments"}
        links |= {"review_comments": f"{url}/comments", "review_comment": f"{api}/pulls/comments{{/number}}"}
        links |= {"commits": f"{url}/commits", "statuses": f"{api}/statuses/{pull.head_sha}"}
        closed = pull.state == "closed"
        return {
            "url": url,
            "id": self._id("pull", f"{full_name}#{pull.number}"),
            "node_id": _node_id("PullRequest", self._id("pull", f"{full_name}#{pull.number}")),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue,
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": links["review_comment"],
            "comments_url": f"{issue}/comments",
            "statuses_url": links["statuses"],
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self._render_user(pull.login),
            "body": pull.body,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": pull.created_at,
            "updated_at": pull.created_at,
            "closed_at": pull.created_at if closed else None,
            "merged_at": None,
            "merge_commit_sha": _sha(full_name, pull.number, "merge"),
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": self._render_branch(pull.head_repo_full_name, pull.head_ref, pull.head_sha, fork),
            "base": self._render_branch(full_name, pull.base_ref, pull.base_sha, False),
            "_links": {rel: {"href": href} for rel, href in links.items()},
            "author_association": "CONTRIBUTOR" if fork else "OWNER",
            "auto_merge": None,
            "draft": pull.draft,
            "merged": False,
            "mergeable": None if closed else True,
            "rebaseable": None if closed else True,
            "mergeable_state": "unknown" if closed else ("draft" if pull.draft else "clean"),
            "merged_by": None,
            "comments": len(self._issue_comments(pull.owner, pull.repo, pull.number)),
            "review_comments": 0,
            "maintainer_can_modify": fork,
            "commits": 1,
            "additions": 1,
            "deletions": 0,
            "changed_files": 1,
        }
