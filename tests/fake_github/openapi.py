"""GitHub's OpenAPI description from @octokit/openapi, and the checks of the stand-in's traffic against it."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, relevance
from referencing import Registry
from referencing.jsonschema import DRAFT4

from .npm import OCTOKIT, require

# The description that keeps its $refs: a fifth of the dereferenced one's size, so it parses in a fraction of a second.
OPENAPI_JSON = OCTOKIT / "openapi" / "generated" / "api.github.com.json"
DOCS_URL = "https://docs.github.com/rest"

# The operations the stand-in implements: GitHub's method and path template, and the FakeGitHub method that answers it.
OPERATIONS: dict[tuple[str, str], str] = {
    ("GET", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): "_list_comments",
    ("POST", "/repos/{owner}/{repo}/issues/{issue_number}/comments"): "_create_comment",
    ("PATCH", "/repos/{owner}/{repo}/issues/comments/{comment_id}"): "_update_comment",
    ("GET", "/repos/{owner}/{repo}/issues"): "_list_issues",
    ("POST", "/repos/{owner}/{repo}/issues"): "_create_issue",
    ("PATCH", "/repos/{owner}/{repo}/issues/{issue_number}"): "_update_issue",
    ("POST", "/repos/{owner}/{repo}/actions/workflows/{workflow_id}/dispatches"): "_dispatch_workflow",
    ("GET", "/repos/{owner}/{repo}/pulls/{pull_number}"): "_get_pull",
    ("GET", "/repos/{owner}/{repo}/pulls"): "_list_pulls",
    ("POST", "/repos/{owner}/{repo}/pulls"): "_create_pull",
    ("PATCH", "/repos/{owner}/{repo}/pulls/{pull_number}"): "_update_pull",
    ("GET", "/repos/{owner}/{repo}/releases"): "_list_releases",
    ("POST", "/repos/{owner}/{repo}/releases"): "_create_release",
    ("PATCH", "/repos/{owner}/{repo}/releases/{release_id}"): "_update_release",
    ("GET", "/repos/{owner}/{repo}/releases/tags/{tag}"): "_get_release_by_tag",
    ("GET", "/repos/{owner}/{repo}/releases/{release_id}/assets"): "_list_release_assets",
    ("POST", "/repos/{owner}/{repo}/releases/{release_id}/assets"): "_upload_release_asset",
    ("GET", "/repos/{owner}/{repo}/releases/assets/{asset_id}"): "_get_release_asset",
}
JSON = "application/json"

# An identifier for the registry of the description's schemas; never fetched.
_SCHEMA_BASE = "https://api.github.com/openapi/api.github.com.json"
# The only error schema GitHub documents for every status it can send without listing it (401, 429, 502, ...).
_BASIC_ERROR = "basic-error"


@dataclass(frozen=True)
class Operation:
    """One operation of the description, reduced to what checking traffic needs."""

    method: str
    template: str
    operation_id: str
    docs_url: str
    parameters: tuple[dict[str, Any], ...]
    request: Draft4Validator | None
    request_media: str | None
    request_required: bool
    responses: dict[int, Draft4Validator | None]
    basic_error: Draft4Validator


@functools.cache
def openapi_spec() -> dict[str, Any]:
    """GitHub's OpenAPI description of api.github.com from @octokit/openapi, parsed once per process."""
    return json.loads(require(OPENAPI_JSON, "GitHub's OpenAPI description").read_bytes())


def _pointer(document: Any, ref: str) -> Any:
    """The node a local JSON pointer such as `#/components/schemas/x` names."""
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(spec: dict[str, Any], node: Any) -> Any:
    """A parameter, response or request body with its own $ref followed (schemas keep theirs for jsonschema)."""
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(spec, node["$ref"])
    return node


def _schema_names(spec: dict[str, Any], roots: Iterable[Any]) -> set[str]:
    """The component schemas reachable from the roots, so only they are converted."""
    prefix = "#/components/schemas/"
    refs: set[str] = set()
    pending = list(roots)
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/") and ref not in refs:
                refs.add(ref)
                pending.append(_pointer(spec, ref))
            pending.extend(node.values())
    return {ref.removeprefix(prefix) for ref in refs if ref.startswith(prefix)}


_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")


def _json_schema(schema: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema draft 4, which it extends: `nullable: true` becomes "or null"."""
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if key not in ("nullable", "example", "examples")}
    if isinstance(out.get("$ref"), str) and out["$ref"].startswith("#"):
        # Absolute, so an inline schema resolves its refs in the registry and not in itself.
        out["$ref"] = _SCHEMA_BASE + out["$ref"]
    if isinstance(out.get("properties"), dict):
        out["properties"] = {name: _json_schema(value) for name, value in out["properties"].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_json_schema(value) for value in out[key]]
    for key in _SCHEMA_VALUES:
        if key in out:
            out[key] = _json_schema(out[key])
    return {"anyOf": [out, {"type": "null"}]} if schema.get("nullable") is True else out


def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time, as GitHub writes it: a date, a time with seconds and a zone."""
    if not isinstance(value, str):
        return True
    if _DATE_TIME.fullmatch(value) is None:
        return False
    datetime.fromisoformat(value)  # raises ValueError on an impossible date such as February 30
    return True


def _is_uri(value: object) -> bool:
    """An absolute URI: a scheme and something after it."""
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and bool(parts.netloc or parts.path) and " " not in value


# jsonschema checks these two formats only with optional packages; the checks GitHub's values need are short.
_FORMATS = FormatChecker(formats=())
_FORMATS.checks("date-time", raises=ValueError)(_is_date_time)
_FORMATS.checks("uri")(_is_uri)


def _validator(schema: Any, registry: Registry) -> Draft4Validator:
    """A validator for one schema of the description, resolving its $refs in the registry."""
    return Draft4Validator(_json_schema(schema), registry=registry, format_checker=_FORMATS)


def _media_type(spec: dict[str, Any], message: dict[str, Any]) -> str | None:
    """The media type of a request body or response: application/json when offered, else the first one."""
    content = _deref(spec, message).get("content", {})
    return JSON if JSON in content else next(iter(content), None)


def _json_body_schema(spec: dict[str, Any], message: dict[str, Any]) -> Any:
    """The application/json schema of a request body or response, or None when it has no JSON content."""
    media = _media_type(spec, message)
    return None if media is None else _deref(spec, message)["content"][media].get("schema", {})


def _operation(spec: dict[str, Any], method: str, template: str, registry: Registry) -> Operation:
    """The description's operation for method and template, with validators built."""
    raw = spec["paths"][template][method.lower()]
    body = _deref(spec, raw["requestBody"]) if "requestBody" in raw else None
    body_schema = None if body is None else _json_body_schema(spec, body)
    responses: dict[int, Draft4Validator | None] = {}
    for status, response in raw["responses"].items():
        if not status.isdigit():
            continue  # a "default" response would be GitHub's generic error, which basic_error already covers
        schema = _json_body_schema(spec, response)
        responses[int(status)] = None if schema is None else _validator(schema, registry)
    return Operation(
        method=method,
        template=template,
        operation_id=raw["operationId"],
        docs_url=raw.get("externalDocs", {}).get("url", DOCS_URL),
        parameters=tuple(_deref(spec, parameter) for parameter in raw.get("parameters", [])),
        request=None if body_schema is None else _validator(body_schema, registry),
        request_media=None if body is None else _media_type(spec, body),
        request_required=bool(body and body.get("required")),
        responses=responses,
        basic_error=_validator({"$ref": f"#/components/schemas/{_BASIC_ERROR}"}, registry),
    )


@functools.cache
def operations() -> dict[tuple[str, str], Operation]:
    """The implemented operations as GitHub describes them, built once per process."""
    spec = openapi_spec()
    try:
        raw = [spec["paths"][template][method.lower()] for method, template in OPERATIONS]
    except KeyError as missing:
        raise AssertionError(f"GitHub's OpenAPI description no longer has the operation {missing}") from None
    roots = [*raw, {"$ref": f"#/components/schemas/{_BASIC_ERROR}"}]
    schemas = spec["components"]["schemas"]
    document = {"components": {"schemas": {name: _json_schema(schemas[name]) for name in _schema_names(spec, roots)}}}
    registry = Registry().with_resource(_SCHEMA_BASE, DRAFT4.create_resource(document))
    return {(method, template): _operation(spec, method, template, registry) for method, template in OPERATIONS}


def _template_regex(template: str) -> re.Pattern[str]:
    """A regex that matches concrete paths of an OpenAPI path template, capturing its parameters."""
    return re.compile(re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)))


@functools.cache
def routes() -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """The implemented (method, template, regex) triples."""
    return tuple((method, template, _template_regex(template)) for method, template in OPERATIONS)


@functools.cache
def _documented_routes() -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """Every (method, operationId, regex) of the description, most literal templates first."""
    routes = [
        (method.upper(), operation["operationId"], _template_regex(template))
        for template, item in openapi_spec()["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    return tuple(sorted(routes, key=lambda route: route[2].groups))


def documented_as(method: str, path: str) -> str:
    """What the description calls an endpoint the stand-in lacks, to say whether it is real GitHub API."""
    for route_method, operation_id, regex in _documented_routes():
        if route_method == method and regex.fullmatch(path):
            return f"GitHub documents it as {operation_id}"
    return "GitHub's OpenAPI description has no such endpoint either"


def _loosely_typed(value: str, schema: dict[str, Any]) -> bool:
    """Whether a path or query string can stand for a value of the schema's type."""
    kind = schema.get("type")
    if "enum" in schema and value not in [str(item) for item in schema["enum"]]:
        return False
    if kind == "integer":
        return re.fullmatch(r"-?\d+", value) is not None
    if kind == "number":
        return re.fullmatch(r"-?\d+(\.\d+)?", value) is not None
    if kind == "boolean":
        return value in ("true", "false")
    if schema.get("format") == "date-time":
        try:
            return _is_date_time(value)
        except ValueError:
            return False
    return True


def _schema_problems(validator: Draft4Validator, instance: Any) -> list[str]:
    """The most relevant ways an instance breaks a schema, each with where in the instance."""
    errors: list[ValidationError] = sorted(validator.iter_errors(instance), key=relevance)
    return [f"{_shorten(error.message)} (at {error.json_path})" for error in errors[:5]]


def _shorten(text: str, limit: int = 300) -> str:
    """Text cut to a readable length: messages repeat whole instances, and a pull request is long."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parameter_problems(operation: Operation, path_params: dict[str, str], query: dict[str, str]) -> list[str]:
    """How the path and query parameters disagree with the description."""
    problems = []
    for parameter in operation.parameters:
        where, name, schema = parameter["in"], parameter["name"], parameter.get("schema", {})
        value = {"path": path_params, "query": query}.get(where, {}).get(name)
        if value is None:
            if parameter.get("required"):
                problems.append(f"the required {where} parameter {name!r} is missing")
        elif not _loosely_typed(value, schema):
            kind = " ".join(filter(None, [schema.get("type", "string"), schema.get("format")]))
            problems.append(f"the {where} parameter {name}={value!r} is not of type {kind}")
    known = {parameter["name"] for parameter in operation.parameters if parameter["in"] == "query"}
    problems += [f"the query parameter {name!r} is not documented" for name in query if name not in known]
    return problems


def body_problems(operation: Operation, body: Any, has_body: bool) -> list[str]:
    """How the JSON request body disagrees with the description."""
    if operation.request is None:
        return ["a request body was sent but the operation takes none"] if has_body else []
    if not has_body:
        return ["the required JSON request body is missing"] if operation.request_required else []
    if operation.request_media != JSON:
        # Raw bytes (an uploaded asset): the description's schema says only "binary", which any bytes are.
        return [] if isinstance(body, bytes) else [f"the {operation.request_media} request body is not raw bytes"]
    return [f"request body: {problem}" for problem in _schema_problems(operation.request, body)]


def response_problems(operation: Operation, status: int, body: Any) -> list[str]:
    """How a response disagrees with the description.

    Raw-text error pages are GitHub's too, so they pass; so do raw bytes, which GitHub streams instead of the
    documented JSON when a client asks for an asset as application/octet-stream.
    """
    if status not in operation.responses:
        if status < 400:
            return [f"status {status} is not documented"]
        validator: Draft4Validator | None = operation.basic_error
    else:
        validator = operation.responses[status]
    if isinstance(body, str | bytes):
        return []
    if validator is None:
        return [] if body is None else [f"status {status} has no documented body but one was sent"]
    if body is None:
        return [f"status {status} documents a JSON body but none was sent"]
    return [f"response body: {problem}" for problem in _schema_problems(validator, body)]
