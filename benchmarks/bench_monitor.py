"""Benchmark: the model monitor's judgement of a window of logged predictions, against reading the same log.

The served model logs one JSON line per request (ten instances each here, 30 numeric features, their
labels and class probabilities), as BentoML's monitor writes it. The monitor streams the window's lines,
keeps the inputs as float arrays, profiles them and runs its checks. This times the monitor in a fresh
process beside a fresh process that only parses every line with `json.loads` (the floor any reader
pays), for growing numbers of predictions, and prints each one's peak memory.
Run: `.venv/bin/python benchmarks/bench_monitor.py [--predictions 10000 100000] [--features 30]`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import sys
import tempfile
from pathlib import Path

from harness import ACTIONS, mib, peak_rss, table, verdict

sys.path.insert(0, str(ACTIONS))

from mlgitops import contract, monitor

PER_REQUEST = 10
LEVELS = [i / 20 for i in range(21)]
GOAL_TIME = 3.0  # the monitor's wall time, in parses of the same log
GOAL_MEMORY = 200 * 2**20  # peak RSS of the monitor's process at 100k predictions


def write_window(folder: Path, predictions: int, features: int, seed: int = 0) -> dict:
    """A prediction log of `predictions` instances drawn from N(i, 1 + i) per feature; the training profile."""
    rng = random.Random(seed)
    names = [f"x{i}" for i in range(features)]
    data = folder / monitor.MONITOR_NAME / "data"
    data.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().isoformat()
    with (data / "data.1.log").open("w", encoding="utf-8") as handle:
        for number in range(predictions // PER_REQUEST):
            record = {"timestamp": stamp, "request_id": str(number), "model": "m:1", "bento_version": "v1"}
            for i, name in enumerate(names):
                record[f"input.{name}"] = [round(rng.gauss(i, 1 + i), 4) for _ in range(PER_REQUEST)]
            labels = [rng.choice(("yes", "no", "no")) for _ in range(PER_REQUEST)]
            record["label"] = labels
            record["probability.yes"] = [0.8 if label == "yes" else 0.2 for label in labels]
            record["probability.no"] = [0.2 if label == "yes" else 0.8 for label in labels]
            handle.write(json.dumps(record) + "\n")
    columns = {}
    for i, name in enumerate(names):
        values = sorted(rng.gauss(i, 1 + i) for _ in range(5000))
        quantiles = [values[int(level * (len(values) - 1))] for level in LEVELS]
        columns[name] = {"kind": "numeric", "missing": 0, "mean": i, "std": 1 + i, "quantiles": quantiles}
    return {"format": 1, "quantile_levels": LEVELS, "rows": 5000, "target": "label", "columns": columns}


def judge_window(folder: str, profile_file: str) -> dict:
    """What the monitor does with a local window: read it, then check answers and inputs."""
    profile = json.loads(Path(profile_file).read_text(encoding="utf-8"))
    since = dt.datetime.now() - dt.timedelta(hours=24)
    traffic = monitor.read_log(monitor.log_files(Path(folder)), "v1", since, profile, set())
    reference = {"labels": ["yes"] * 33 + ["no"] * 67}
    verdict_, checks = monitor.judge(traffic, reference, profile, contract.from_params({}))
    return {"verdict": verdict_, "predictions": traffic.predictions, "checks": len(checks)}


def main(argv: list[str] | None = None) -> int:
    """Print the monitor's time and peak memory beside a plain parse of the same log; goals printed, not asserted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--predictions", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--features", type=int, default=30)
    args = parser.parse_args(argv)
    print(
        f"Model monitor: a window of logged predictions ({args.features} numeric features, {PER_REQUEST} per request)"
    )
    setup = f"import sys, time; sys.path[:0] = [{str(Path(__file__).parent)!r}]; import bench_monitor as b\n"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for predictions in args.predictions:
            folder = Path(tmp) / str(predictions)
            profile = write_window(folder, predictions, args.features)
            profile_file = folder / "profile.json"
            profile_file.write_text(json.dumps(profile), encoding="utf-8")
            log = monitor.log_files(folder)[0]
            parse = (
                f"{setup}started = time.perf_counter()\n"
                f"n = sum(1 for line in open({str(log)!r}) if b.json.loads(line))\n"
                "RESULT = {'seconds': time.perf_counter() - started}"
            )
            judge = (
                f"{setup}started = time.perf_counter()\n"
                f"RESULT = b.judge_window({str(folder)!r}, {str(profile_file)!r})\n"
                "RESULT['seconds'] = time.perf_counter() - started"
            )
            parse_peak, parsed = peak_rss(parse)
            judge_peak, judged = peak_rss(judge)
            if judged["predictions"] != predictions or judged["verdict"] != monitor.HEALTHY:
                raise RuntimeError(f"the generated window should be healthy and whole, got {judged}")
            ratio = judged["seconds"] / parsed["seconds"]
            rows.append(
                [
                    f"{predictions:,}",
                    f"{log.stat().st_size / 2**20:,.0f}",
                    f"{parsed['seconds']:.2f}",
                    f"{judged['seconds']:.2f}",
                    f"{ratio:.2f}x",
                    f"<= {GOAL_TIME:g}x {verdict(ratio, GOAL_TIME)}",
                    mib(parse_peak),
                    mib(judge_peak),
                ]
            )
    headers = ["predictions", "log MiB", "parse s", "monitor s", "monitor/parse", "goal", "parse peak", "monitor peak"]
    print(table(headers, rows))
    print(f"Goal for the monitor's peak memory at 100,000 predictions: <= {mib(GOAL_MEMORY)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
