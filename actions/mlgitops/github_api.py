"""GitHub's REST API over the standard library: the token, retries on rate limits and server errors, one-line errors."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

DEFAULT_API_URL = "https://api.github.com"
API_VERSION = "2022-11-28"
NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
CHUNK = 1 << 20
# Uploads and downloads of release archives take longer than a JSON call.
TIMEOUT = 30
TRANSFER_TIMEOUT = 300

T = TypeVar("T")


class GitHubError(RuntimeError):
    """A GitHub API call that failed; the message is one line for the log."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class GitHub:
    """REST calls with the token, retrying 429/5xx and rate limits; `needs` names the permission a 401/403 lacks."""

    def __init__(
        self,
        api_url: str,
        token: str,
        retries: int = 3,
        backoff: float = 2.0,
        *,
        needs: str = "pull-requests: write (fork pull requests never get it)",
        agent: str = "mlgitops",
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.retries = retries
        self.backoff = backoff
        self.needs = needs
        self.agent = agent

    @classmethod
    def from_env(cls, *, needs: str, agent: str = "mlgitops") -> GitHub:
        """A client for the runner's GitHub (GITHUB_API_URL) with its GITHUB_TOKEN, or a GitHubError without one."""
        token = os.environ.get("GITHUB_TOKEN", "")
        if not token:
            raise GitHubError(f"GITHUB_TOKEN is not set; the step needs a token with {needs}")
        return cls(os.environ.get("GITHUB_API_URL") or DEFAULT_API_URL, token, needs=needs, agent=agent)

    def _url(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else self.api_url + url

    def _headers(self, request: urllib.request.Request, accept: str) -> None:
        request.add_header("Accept", accept)
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", self.agent)

    def request(self, method: str, url: str, payload: Any = None) -> tuple[Any, dict[str, str]]:
        """Send one JSON request; retry 429/5xx and secondary rate limits; raise GitHubError with a clear reason."""
        data = None if payload is None else json.dumps(payload).encode()

        def send() -> tuple[Any, dict[str, str]]:
            request = urllib.request.Request(self._url(url), data=data, method=method)
            request.add_header("Authorization", f"Bearer {self.token}")
            self._headers(request, "application/vnd.github+json")
            if data is not None:
                request.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                body = response.read()
                return (json.loads(body) if body else None), _lower(response.headers)

        return self._retrying(method, url, send)

    def paginate(self, url: str) -> list[Any]:
        """Every item of a listing, following the Link header's next pages."""
        found: list[Any] = []
        next_url: str | None = url
        while next_url:
            page, headers = self.request("GET", next_url)
            found += page or []
            match = NEXT_LINK.search(headers.get("link", ""))
            next_url = match.group(1) if match else None
        return found

    def upload(self, url: str, path: Path, content_type: str = "application/octet-stream") -> Any:
        """POST a file's bytes as the request body, streamed; return the JSON answer."""
        size = path.stat().st_size

        def send() -> Any:
            with path.open("rb") as handle:
                request = urllib.request.Request(self._url(url), data=handle, method="POST")
                request.add_header("Authorization", f"Bearer {self.token}")
                self._headers(request, "application/vnd.github+json")
                request.add_header("Content-Type", content_type)
                request.add_header("Content-Length", str(size))
                with urllib.request.urlopen(request, timeout=TRANSFER_TIMEOUT) as response:
                    body = response.read()
                    return json.loads(body) if body else None

        return self._retrying("POST", url, send)

    def download(self, url: str, dest: Path) -> None:
        """GET a file's bytes (Accept: application/octet-stream) into dest, following a redirect to where it is kept."""

        def send() -> None:
            request = urllib.request.Request(self._url(url), method="GET")
            # Only GitHub gets the token: the redirect goes to a signed storage URL, which refuses a second credential.
            request.add_unredirected_header("Authorization", f"Bearer {self.token}")
            self._headers(request, "application/octet-stream")
            with urllib.request.urlopen(request, timeout=TRANSFER_TIMEOUT) as response, dest.open("wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)

        self._retrying("GET", url, send)

    def _retrying(self, method: str, url: str, send: Callable[[], T]) -> T:
        """Call send, retrying what GitHub says is worth retrying, and turn failures into a GitHubError."""
        for attempt in range(self.retries + 1):
            try:
                return send()
            except urllib.error.HTTPError as err:
                headers = _lower(err.headers)
                message = _message(err.read()) or str(err.reason)
                # Primary limits say remaining 0; secondary limits answer 403 with retry-after.
                limited = err.code == 429 or (
                    err.code == 403 and (headers.get("x-ratelimit-remaining") == "0" or "retry-after" in headers)
                )
                if (limited or err.code >= 500) and attempt < self.retries:
                    time.sleep(_retry_after(headers, self.backoff * 2**attempt))
                    continue
                if limited:
                    raise GitHubError(
                        f"GitHub rate limit reached ({err.code}) on {method} {url}: {message}", err.code
                    ) from None
                if err.code in (401, 403):
                    raise GitHubError(
                        f"GitHub refused {method} {url} ({err.code}: {message}); the token needs {self.needs}", err.code
                    ) from None
                raise GitHubError(f"GitHub answered {err.code} to {method} {url}: {message}", err.code) from None
            except (urllib.error.URLError, OSError, http.client.HTTPException, json.JSONDecodeError) as err:
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt)
                    continue
                reason = getattr(err, "reason", err)
                raise GitHubError(f"GitHub could not be reached at {self.api_url}: {reason}") from None
        raise GitHubError(f"{method} {url} failed after {self.retries + 1} attempts")


def _message(raw: bytes) -> str:
    try:
        return str(json.loads(raw).get("message", "")) or raw.decode(errors="replace")[:200]
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return raw.decode(errors="replace")[:200]


def _lower(headers: Any) -> dict[str, str]:
    return {key.lower(): value for key, value in dict(headers).items()}


def _retry_after(headers: dict[str, str], fallback: float) -> float:
    if headers.get("retry-after", "").isdigit():
        return min(float(headers["retry-after"]), 60.0)
    if headers.get("x-ratelimit-remaining") == "0" and headers.get("x-ratelimit-reset", "").isdigit():
        return min(max(float(headers["x-ratelimit-reset"]) - time.time(), 0.0), 60.0)
    return fallback
