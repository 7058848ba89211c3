"""The monitor's Prometheus client: its queries' label values stay literal, and every way a query can fail is
one sentence. The answers come from a stand-in for Prometheus' HTTP API (the `/api/v1/query` envelope as its
documentation describes it); tests/test_projects.py runs the same queries on a real Prometheus."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mlgitops import monitor
from mlgitops import prometheus as promql

SUCCESS = {
    "status": "success",
    "data": {
        "resultType": "vector",
        "result": [
            {"metric": {"class": "benign"}, "value": [1700000000.0, "70"]},
            {"metric": {"class": "malignant"}, "value": [1700000000.0, "NaN"]},
        ],
    },
}


class StandInPrometheus(BaseHTTPRequestHandler):
    """Stand-in for Prometheus' query endpoint: answers every query with the server's (status, body)."""

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.server.requests.append((self.path, self.rfile.read(length).decode(), self.headers.get("authorization")))
        status, body = self.server.answer
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), StandInPrometheus)
    httpd.requests, httpd.answer = [], (200, SUCCESS)
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_label_values_are_quoted_so_a_name_cannot_change_the_query() -> None:
    assert promql.label_value('shop"} or vector(1) #') == '"shop\\"} or vector(1) #"'
    assert promql.label_value("a\\b\nc") == '"a\\\\b\\nc"'
    queries = promql.queries("shop-production", 'm"x', "v1", 3600)
    assert 'model="m\\"x"' in queries["labels"]
    query = queries["errors"]
    assert 'service_version="v1"' in query and 'http_response_code=~"5.."' in query
    assert query.endswith("[3600s]))")


def test_a_query_posts_the_promql_with_the_token_and_leaves_nan_out(server) -> None:
    samples = promql.query(server.url, "up", token="s3cret")
    assert samples == [({"class": "benign"}, 70.0)]
    ((path, body, authorization),) = server.requests
    assert (path, body, authorization) == ("/api/v1/query", "query=up", "Bearer s3cret")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((401, b""), "refused the monitor's query (HTTP 401): check PROMETHEUS_TOKEN."),
        (
            (400, {"status": "error", "errorType": "bad_data", "error": "1:5: parse error"}),
            "refused the query 'up': 1:5: parse error.",
        ),
        ((502, b""), "answered HTTP 502 to the monitor's query."),
        ((200, b"<html>login</html>"), "answered something that is not its API's JSON."),
        ((200, {"status": "success", "data": {"resultType": "matrix", "result": []}}), "answered a matrix where"),
    ],
    ids=["unauthorized", "bad-query", "bad-gateway", "not-json", "not-a-vector"],
)
def test_every_failed_query_is_one_sentence(server, answer, message) -> None:
    server.answer = answer
    with pytest.raises(promql.PrometheusError) as err:
        promql.query(server.url, "up")
    assert str(err.value).startswith(f"Prometheus at {server.url} ") and message in str(err.value)
    assert str(err.value).count(". ") == 0


def test_an_unreachable_prometheus_stops_the_monitor_with_one_sentence(monkeypatch) -> None:
    live = {"version": "v1", "model": "shop:m1"}
    monkeypatch.setenv("PROMETHEUS_URL", "http://127.0.0.1:9")
    with pytest.raises(monitor.MonitorError, match=r"^Prometheus at http://127.0.0.1:9 did not answer"):
        monitor.prometheus_traffic("shop", "production", live, 3600)
    monkeypatch.setenv("PROMETHEUS_URL", "prometheus:9090")
    with pytest.raises(monitor.MonitorError, match="set the PROMETHEUS_URL variable to its address"):
        monitor.prometheus_traffic("shop", "production", live, 3600)


def test_no_series_at_all_is_no_data_not_zero(server) -> None:
    server.answer = (200, {"status": "success", "data": {"resultType": "vector", "result": []}})
    found = promql.evidence(server.url, namespace="shop-staging", model="shop:m1", version="v1", window_seconds=60)
    assert (found["labels"], found["requests"], found["errors"], found["p95_seconds"]) == ({}, None, None, None)
