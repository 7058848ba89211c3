"""What Prometheus holds of an environment's traffic on the `kubernetes` target, for the model monitor.

The served model counts its predictions by class (`mlgitops_predictions_total{class, model}`) and BentoML counts
requests and times them (`bentoml_service_request_*{endpoint, http_response_code, service_version}`); Prometheus
scrapes every pod with its `namespace` (deploy/kubernetes/components/prometheus). Each figure is one instant
query through the HTTP API (`/api/v1/query`) over the monitor's window, restricted to the live release. A query
with no series, or a NaN (no requests to divide by), is "no data", never a zero that would read as healthy.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

PREDICTIONS = "mlgitops_predictions_total"
REQUESTS = "bentoml_service_request_total"
DURATION_BUCKETS = "bentoml_service_request_duration_seconds_bucket"
ENDPOINT = "/predict"


class PrometheusError(RuntimeError):
    """Prometheus did not answer a query; the message is one sentence for the user."""


def label_value(text: str) -> str:
    """A PromQL string literal for a label value: backslashes and double quotes escaped."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(**labels: str) -> str:
    """A label matcher list, `{a="x", b=~"5.."}`: a key ending in `_re` matches its value as a regular expression."""
    parts = []
    for key, value in labels.items():
        name, op = (key[:-3], "=~") if key.endswith("_re") else (key, "=")
        parts.append(f"{name}{op}{label_value(value)}")
    return "{" + ", ".join(parts) + "}"


def queries(namespace: str, model: str, version: str, window_seconds: int) -> dict[str, str]:
    """The monitor's PromQL, by figure: predictions by class, requests, 5xx requests, p95 latency of /predict."""
    window = f"[{max(int(window_seconds), 60)}s]"
    predictions = selector(namespace=namespace, model=model)
    requests = selector(namespace=namespace, service_version=version, endpoint=ENDPOINT)
    errors = selector(namespace=namespace, service_version=version, endpoint=ENDPOINT, http_response_code_re="5..")
    return {
        "labels": f"sum by (class) (increase({PREDICTIONS}{predictions}{window}))",
        "requests": f"sum(increase({REQUESTS}{requests}{window}))",
        "errors": f"sum(increase({REQUESTS}{errors}{window}))",
        "p95_seconds": f"histogram_quantile(0.95, sum by (le) (rate({DURATION_BUCKETS}{requests}{window})))",
    }


def query(url: str, promql: str, token: str = "", timeout: float = 30) -> list[tuple[dict[str, str], float]]:
    """An instant vector query's samples as (labels, value), NaN values left out."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/query",
        data=urllib.parse.urlencode({"query": promql}).encode(),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as err:
        body = err.read()
        if err.code in (401, 403):
            raise PrometheusError(
                f"Prometheus at {url} refused the monitor's query (HTTP {err.code}): check PROMETHEUS_TOKEN."
            ) from None
        if not body:
            raise PrometheusError(f"Prometheus at {url} answered HTTP {err.code} to the monitor's query.") from None
    except (OSError, urllib.error.URLError) as err:
        reason = getattr(err, "reason", err)
        raise PrometheusError(f"Prometheus at {url} did not answer the monitor's query ({reason}).") from None
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        raise PrometheusError(f"Prometheus at {url} answered something that is not its API's JSON.") from None
    if not isinstance(answer, dict) or answer.get("status") != "success":
        error = answer.get("error", "no reason given") if isinstance(answer, dict) else "no reason given"
        raise PrometheusError(f"Prometheus at {url} refused the query {promql!r}: {error}.")
    data = answer.get("data") or {}
    if data.get("resultType") != "vector":
        raise PrometheusError(f"Prometheus at {url} answered a {data.get('resultType')} where a vector was expected.")
    samples = []
    for item in data.get("result") or []:
        value = float(item["value"][1])
        if not math.isnan(value):
            samples.append((item.get("metric") or {}, value))
    return samples


def evidence(
    url: str, *, namespace: str, model: str, version: str, window_seconds: int, token: str = ""
) -> dict[str, Any]:
    """The window's figures of the live release: predictions by class, requests, 5xx requests and p95 latency of
    /predict (None where Prometheus holds no data), and where they came from."""
    promql = queries(namespace, model, version, window_seconds)
    labels = {sample.get("class", ""): value for sample, value in query(url, promql["labels"], token)}
    requests = query(url, promql["requests"], token)
    errors = query(url, promql["errors"], token)
    p95 = query(url, promql["p95_seconds"], token)
    total = requests[0][1] if requests else None
    return {
        "source": f"Prometheus at {url} (namespace {namespace})",
        "labels": labels,
        "requests": total,
        # No 5xx series at all is no failed request, once there were requests.
        "errors": errors[0][1] if errors else (0.0 if total is not None else None),
        "p95_seconds": p95[0][1] if p95 and not math.isinf(p95[0][1]) else None,
        "inputs": None,
    }
