"""A stand-in for GitHub's REST API, for tests only: a loopback HTTP server with in-memory state.

GitHub is unreachable from the machines that run these tests, so the product's GitHub client is pointed at this
server instead. It implements only the endpoints the product calls:

- ``GET   /repos/{owner}/{repo}/issues/{issue_number}/comments`` (paginated with a ``Link`` header, like GitHub)
- ``POST  /repos/{owner}/{repo}/issues/{issue_number}/comments``
- ``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}``
- ``GET   /repos/{owner}/{repo}/issues`` (``state``, ``labels``; paginated), ``POST /repos/{owner}/{repo}/issues`` and
  ``PATCH /repos/{owner}/{repo}/issues/{issue_number}`` (title, body, state, state_reason, labels)
- ``POST  /repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches``: recorded in ``FakeGitHub.dispatches``,
  answered 204 like GitHub; the test runs the dispatched workflow itself
- ``GET   /repos/{owner}/{repo}/pulls/{pull_number}`` (pull requests are added by the test with ``add_pull``)
- ``GET   /repos/{owner}/{repo}/releases`` (paginated, drafts included) and ``POST /repos/{owner}/{repo}/releases``
- ``GET   /repos/{owner}/{repo}/releases/tags/{tag}`` (published releases only, like GitHub)
- ``PATCH /repos/{owner}/{repo}/releases/{release_id}`` (``draft: false`` publishes a draft)
- ``GET   /repos/{owner}/{repo}/releases/{release_id}/assets`` (paginated)
- ``POST  /repos/{owner}/{repo}/releases/{release_id}/assets?name=...``: the release's ``upload_url``, which points at
  this server as GitHub's points at its uploads host; the body is the asset's raw bytes
- ``GET   /repos/{owner}/{repo}/releases/assets/{asset_id}``: JSON, or with ``Accept: application/octet-stream`` a
  302 to a signed storage URL on this server (``/release-assets/...``, which refuses a request that also carries an
  ``Authorization`` header, like the object store GitHub redirects to), or the bytes themselves with
  ``stream_assets=True``: GitHub's description says a client must handle both

A comment, release or asset is authored by the identity of the token that made it: ``github-actions[bot]``, as for
a workflow's ``GITHUB_TOKEN``, unless ``identities`` maps the token to another login. Every other endpoint answers
404 and counts as a failure. A test can also make the next requests fail the ways GitHub fails (primary and
secondary rate limits, 5xx) with ``FakeGitHub.fail``.

Every request and every response is checked against GitHub's official OpenAPI description: the ``api.github.com``
description in the npm package ``@octokit/openapi``, pinned in ``tests/package.json`` and installed with
``npm ci --prefix tests``. Path and query parameters, JSON request bodies and JSON response bodies are validated
against the operation GitHub documents for that method and path, so neither the product nor this stand-in can
drift from the real API unnoticed. Mismatches are collected in ``FakeGitHub.spec_errors`` and raised as an
``AssertionError`` when the ``with`` block ends.

``webhook_example`` returns real webhook payloads from the npm package ``@octokit/webhooks-examples``.

The parts: ``openapi`` loads the description and checks traffic against it, ``webhooks`` serves the examples,
``server`` is the HTTP server and its state, and ``npm`` says where the npm packages are installed.
"""

from __future__ import annotations

from .npm import NPM_HINT, OCTOKIT
from .openapi import DOCS_URL, OPENAPI_JSON, OPERATIONS, openapi_spec
from .server import (
    ACTIONS_BOT,
    ACTIONS_BOT_ID,
    API_VERSION,
    ASSET_STORAGE_PATH,
    MAX_COMMENT_LENGTH,
    RATE_LIMIT,
    RATE_LIMIT_DOCS_URL,
    FakeGitHub,
    RecordedRequest,
)
from .webhooks import WEBHOOK_EXAMPLES_JSON, webhook_example

__all__ = [
    "ACTIONS_BOT",
    "ACTIONS_BOT_ID",
    "API_VERSION",
    "ASSET_STORAGE_PATH",
    "DOCS_URL",
    "MAX_COMMENT_LENGTH",
    "NPM_HINT",
    "OCTOKIT",
    "OPENAPI_JSON",
    "OPERATIONS",
    "RATE_LIMIT",
    "RATE_LIMIT_DOCS_URL",
    "WEBHOOK_EXAMPLES_JSON",
    "FakeGitHub",
    "RecordedRequest",
    "openapi_spec",
    "webhook_example",
]
