"""Benchmark: the served Bento's latency and throughput, side by side with the same prediction in process.

Bakes the default project (and a random forest one), builds its Bento and serves it with `bentoml
serve` on 127.0.0.1: client and server share this machine's cores. Sends 1-row and 100-row requests
at concurrency 1, 4 and 16 over keep-alive connections, each cell bounded by a request count and
seconds, to the service as built (numpy path, a worker per core), as it was (SERVING_FAST_PATH=0:
the sklearn pipeline, one worker), and in between. `/livez` and the trivial `/model_info` API time
BentoML's own floor.
The same rows are predicted in this process through the service's functions and through raw
`predict_proba` on a DataFrame.
What recording costs: the Bento as built (every request logged, the default `mlgitops.monitor.sample`)
and the same project built with the sample at 0 (nothing logged; /metrics still counts), served side by
side and measured in turns, 1-row and 100-row requests; and the recording alone, in process.
Run: `.venv/bin/python benchmarks/bench_serving.py [--models logistic_regression] [--seconds 2] [--recording-only]`.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import itertools
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from harness import table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from demo import bake, build_bento, project_env, serve  # noqa: E402

GOAL_OVERHEAD_MS = 2.0  # served p50 of one row, above in-process predict_proba of that row
GOAL_ROWS_PER_SECOND = 20_000  # 100-row requests, best concurrency, on 2 cores
CONCURRENCY = (1, 4, 16)
# Served configurations: a name, the server's extra environment, and whether every cell is measured.
# BENTOML_CONFIG_OPTIONS overrides the service's own settings (BentoML's defaults: 1 worker, threads=1).
PER_CORE = "services.Classifier.workers=cpu_count"
BEFORE, AFTER = "pipeline, 1 worker (before)", "numpy, 1 worker (after)"
CONFIGS: list[tuple[str, dict[str, str], bool]] = [
    (BEFORE, {"SERVING_FAST_PATH": "0"}, True),
    (AFTER, {}, True),
    ("numpy, worker per core", {"BENTOML_CONFIG_OPTIONS": PER_CORE}, False),
    ("numpy, 1 worker, threads=4", {"BENTOML_CONFIG_OPTIONS": "services.Classifier.threads=4"}, False),
]


# Served in turns this many times each, so that a burst of other work on the shared machine hits both.
RECORDING_TURNS = 4


class Cell:
    """Latencies of one measured cell and the rows it predicted per second of wall time."""

    def __init__(self, latencies: list[float], rows: int, wall: float) -> None:
        self.latencies, self.rows, self.wall = latencies, rows, wall
        ordered = sorted(latencies)
        self.p50 = statistics.median(ordered) * 1e3
        self.p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3
        self.rows_per_second = rows * len(ordered) / wall
        self.requests_per_second = len(ordered) / wall


def in_process(call: Callable[[], Any], rows: int, requests: int, seconds: float) -> Cell:
    """Time a function called back to back, as many times as the bounds allow."""
    call()
    latencies: list[float] = []
    started = time.perf_counter()
    while len(latencies) < requests and time.perf_counter() - started < seconds:
        begun = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - begun)
    return Cell(latencies, rows, time.perf_counter() - started)


def served(
    port: int, method: str, path: str, body: bytes, rows: int, concurrency: int, requests: int, seconds: float
) -> Cell:
    """Send requests from `concurrency` threads, one keep-alive connection each, until a bound is reached."""
    headers = {"content-type": "application/json"} if method == "POST" else {}
    issued = itertools.count()
    latencies: list[float] = []
    failures: list[str] = []

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(2):  # warm the connection and the server's code path
            connection.request(method, path, body, headers)
            connection.getresponse().read()
        ready.wait()
        deadline = time.perf_counter() + seconds
        own: list[float] = []
        while next(issued) < requests and time.perf_counter() < deadline:
            begun = time.perf_counter()
            connection.request(method, path, body, headers)
            response = connection.getresponse()
            response.read()
            own.append(time.perf_counter() - begun)
            if response.status != 200:
                failures.append(f"{path} -> {response.status}")
                break
        connection.close()
        latencies.extend(own)

    ready = threading.Barrier(concurrency + 1)
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise AssertionError(f"the server refused the benchmark's requests: {failures[:3]}")
    return Cell(latencies, rows, wall)


def pooled(cells: list[Cell]) -> Cell:
    """One cell of several measured in turns."""
    return Cell([latency for cell in cells for latency in cell.latencies], cells[0].rows, sum(c.wall for c in cells))


def ms(value: float) -> str:
    return f"{value:.2f}"


def recording_cost(
    root: Path, project: Path, env: dict[str, str], tag: str, bodies: dict[int, str], requests: int, seconds: float
) -> dict[tuple[str, int], Cell]:
    """1-row and 100-row latency of the Bento as built (recording on) and built again with the sample at 0 (off)."""
    params = project / "params.yaml"
    text = params.read_text(encoding="utf-8")
    on = "    sample: 1.0"
    if on not in text:
        raise AssertionError(f"{params} does not set the default sample ({on.strip()}), so nothing would be compared")
    params.write_text(text.replace(on, "    sample: 0.0"), encoding="utf-8")
    try:
        off = build_bento(project, env)
    finally:
        params.write_text(text, encoding="utf-8")
    serve_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    turns: dict[tuple[str, int], list[Cell]] = {}
    with serve(tag, root, serve_env) as on_url, serve(off, root, serve_env) as off_url:
        for n in (1, 100):
            for _ in range(RECORDING_TURNS):
                for switch, url in (("on", on_url), ("off", off_url)):
                    port = int(url.rsplit(":", 1)[1])
                    cell = served(
                        port, "POST", "/predict", bodies[n].encode(), n, 1, requests, seconds / RECORDING_TURNS
                    )
                    turns.setdefault((switch, n), []).append(cell)
    return {key: pooled(cells) for key, cells in turns.items()}


def benchmark(
    root: Path, family: str, requests: int, seconds: float, recording_only: bool = False
) -> tuple[list[list[Any]], dict[str, float]]:
    """Bake, build and serve one model family; return the table rows and the figures the goals judge."""
    project = bake(root / family, model=family, project_name=f"Bench {family.replace('_', ' ')}")
    env = project_env(project, root / "bentoml")
    tag = build_bento(project, env)
    package = project.name.replace("-", "_")

    sys.path.insert(0, str(project / "src"))
    serving = importlib.import_module(f"{package}.serving")
    params = importlib.import_module(f"{package}.params")
    meta = json.loads((project / "models" / "model.json").read_text(encoding="utf-8"))
    names = [feature["name"] for feature in meta["features"]]
    model = joblib.load(project / "models" / "model.joblib")
    instance = serving.instance_model(meta["features"])
    test = pd.read_csv(project / "data" / "prepared" / "test.csv")[names]
    batch = {1: test.head(1), 100: pd.concat([test] * 2).head(100)}
    bodies = {
        n: json.dumps(
            {"instances": [{k: None if pd.isna(v) else v for k, v in r.items()} for r in f.to_dict("records")]}
        )
        for n, f in batch.items()
    }
    paths = {
        "numpy": serving.numpy_probabilities(model, instance),
        "pipeline": serving.pipeline_probabilities(model, names),
    }

    def service_call(n: int, path: str) -> Callable[[], str]:
        """What the service does with a request body, minus HTTP and BentoML: parse, validate, predict, dump."""

        def call() -> str:
            instances = [instance.model_validate(item) for item in json.loads(bodies[n])["instances"]]
            found = serving.predictions(meta["classes"], paths[path](instances))
            return serving.Answer(model=tag, predictions=found, request_id="1").model_dump_json()

        return call

    # The service's recording of a request, alone: the per-class counters, then one JSON line per instance.
    import bentoml  # after the project's package, as the service imports it
    import prometheus_client

    recorder = serving.Recorder(params.MonitorParams(), meta["features"], meta["classes"], tag, "bench")
    monitor = partial(bentoml.monitor, "bench", monitor_class="default", monitor_options={"log_path": str(root)})
    recorded = {n: [instance.model_validate(item) for item in json.loads(bodies[n])["instances"]] for n in (1, 100)}
    answers = {n: serving.predictions(meta["classes"], paths["numpy"](recorded[n])) for n in (1, 100)}

    rows: list[list[Any]] = []
    local: dict[tuple[str, int], Cell] = {}
    for n in (1, 100):
        if not recording_only:
            local["predict_proba", n] = in_process(lambda n=n: model.predict_proba(batch[n]), n, requests, seconds)
            for path in ("pipeline", "numpy"):
                local[path, n] = in_process(service_call(n, path), n, requests, seconds)
        local["recording", n] = in_process(
            lambda n=n: recorder.record(1, recorded[n], answers[n], monitor), n, requests, seconds
        )
    names = {"predict_proba": "raw predict_proba(DataFrame)", "recording": "recording (counters, bentoml.monitor)"}
    for (what, n), cell in local.items():
        name = names.get(what, f"service functions, {what} path")
        rows.append(
            [family, f"in process: {name}", n, 1, ms(cell.p50), ms(cell.p99), f"{cell.rows_per_second:,.0f}", ""]
        )

    # Each family's package makes its own counter of one name: free the name for the next family.
    prometheus_client.REGISTRY.unregister(serving.prediction_counter())

    figures: dict[str, float] = {}
    for (switch, n), cell in recording_cost(root, project, env, tag, bodies, requests, seconds).items():
        figures[f"recording {switch} {n} p50"] = cell.p50
        what = "on (every request logged)" if switch == "on" else "off (sample 0)"
        rate = f"{cell.rows_per_second:,.0f}"
        rows.append([family, f"served, numpy, 1 worker, recording {what}", n, 1, ms(cell.p50), ms(cell.p99), rate, ""])
    if recording_only:
        return rows, figures

    figures["predict_proba_1_p50"] = local["predict_proba", 1].p50
    serve_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    for config, extra, full in CONFIGS:
        with serve(tag, root, {**serve_env, **extra}) as url:
            port = int(url.rsplit(":", 1)[1])
            cells: list[tuple[str, int, int, Cell]] = []
            if full:
                cells.append(("GET /livez", 0, 1, served(port, "GET", "/livez", b"", 0, 1, requests, seconds)))
                floor = served(port, "POST", "/model_info", b"{}", 0, 1, requests, seconds)
                cells.append(("POST /model_info", 0, 1, floor))
                figures[f"{config} floor"] = floor.p50
            for n in (1, 100):
                for concurrency in CONCURRENCY if full or n == 100 else (1, 4):
                    body = bodies[n].encode()
                    cell = served(port, "POST", "/predict", body, n, concurrency, requests, seconds)
                    cells.append(("POST /predict", n, concurrency, cell))
                    figures[f"{config} {n} {concurrency} p50"] = cell.p50
                    figures[f"{config} {n} {concurrency} rows/s"] = cell.rows_per_second
        for request, n, concurrency, cell in cells:
            reference = local["numpy" if config.startswith("numpy") else "pipeline", n] if n else None
            ratio = f"{cell.p50 / reference.p50:.1f}x" if reference and concurrency == 1 else ""
            rate = f"{cell.rows_per_second:,.0f}" if n else f"{cell.requests_per_second:,.0f} req/s"
            rows.append(
                [family, f"served, {config}: {request}", n, concurrency, ms(cell.p50), ms(cell.p99), rate, ratio]
            )
    return rows, figures


def main(argv: list[str] | None = None) -> int:
    """Print latency and throughput of the served Bento next to in-process prediction, and the goals' verdicts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["logistic_regression", "random_forest"])
    parser.add_argument("--requests", type=int, default=2000, help="at most this many requests per cell")
    parser.add_argument("--seconds", type=float, default=2.0, help="at most this long per cell")
    parser.add_argument("--recording-only", action="store_true", help="measure only what recording costs")
    args = parser.parse_args(argv)
    print("Serving: the Bento over HTTP on 127.0.0.1 (client and server on this machine) vs the same rows in process")
    print(f"{os.cpu_count()} cores; each cell: at most {args.requests} requests or {args.seconds:g} s after warm-up")
    headers = ["model", "path", "rows", "conc", "p50 ms", "p99 ms", "rows/s", "p50 / in-process"]
    results: list[list[Any]] = []
    verdicts: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        for family in args.models:
            rows, figures = benchmark(Path(tmp), family, args.requests, args.seconds, args.recording_only)
            results.extend(rows)
            costs = [
                f"{n}-row p50 {figures[f'recording on {n} p50']:.2f} ms on, {figures[f'recording off {n} p50']:.2f} ms "
                f"off ({figures[f'recording on {n} p50'] - figures[f'recording off {n} p50']:+.2f} ms)"
                for n in (1, 100)
            ]
            verdicts.append(f"{family}, recording every request: {'; '.join(costs)}")
            for config in (BEFORE, AFTER) if not args.recording_only else ():
                overhead = figures[f"{config} 1 1 p50"] - figures["predict_proba_1_p50"]
                best = max(figures[f"{config} 100 {c} rows/s"] for c in CONCURRENCY)
                verdicts.append(
                    f"{family}, {config}: 1-row p50 {figures[f'{config} 1 1 p50']:.2f} ms = in-process predict_proba "
                    f"{overhead:+.2f} ms (goal <= +{GOAL_OVERHEAD_MS:g}: "
                    f"{'met' if overhead <= GOAL_OVERHEAD_MS else 'MISSED'}); "
                    f"100-row best {best:,.0f} rows/s (goal >= {GOAL_ROWS_PER_SECOND:,}: "
                    f"{'met' if best >= GOAL_ROWS_PER_SECOND else 'MISSED'}); BentoML's floor (POST /model_info) "
                    f"{figures[f'{config} floor']:.2f} ms"
                )
    print(table(headers, results))
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
