"""Benchmark: merge to production and rollback, the generated release workflows under act with the `local` target.

Bakes the default project with a bare origin (tests/release_world.py, as the end-to-end release tests
do), merges a parameter change and runs "Release" (package, staging, production) with act, then runs
"Rollback" of production to the first release. The first release fills the stand-in Python
environment (the installs a runner's cache would hold), so it is timed but kept out of the goals; the
second merge and the rollback are the figures. Where the time goes comes from act's own step timings.
Run: `PATH=.venv/bin:$PATH .venv/bin/python benchmarks/bench_release.py`.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from harness import ROOT, table, verdict

sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "actions"))

from act_world import set_param
from release_world import ReleaseRun, make_release_world

GOAL_MERGE_TO_PRODUCTION = 60.0
GOAL_ROLLBACK = 15.0
# act's line when a step ends: "[Release/Release to staging]   ✅  Success - Main ./.github/actions/release [21.3s]".
STEP_DONE = re.compile(
    r"^\[[^/\]]+/(?P<job>[^\]]+)\]\s+\S+\s+(?:Success|Failure) - Main (?P<step>.+?) \[(?P<took>[^\]]+)\]$"
)
DURATION = re.compile(r"([\d.]+)(ms|µs|us|ns|h|m|s)")
UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def seconds_of(duration: str) -> float:
    """act's Go duration ("1m2.5s", "420.9ms") in seconds."""
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in DURATION.findall(duration))


def step_times(run: ReleaseRun) -> dict[tuple[str, str], float]:
    """Seconds per (job, step) of an act run, from its log."""
    times: dict[tuple[str, str], float] = defaultdict(float)
    for line in run.log.splitlines():
        match = STEP_DONE.match(line.strip())
        if match:
            step = match["step"].replace("./.github/actions/", "")
            times[(match["job"], step)] += seconds_of(match["took"])
    return dict(times)


def main(argv: list[str] | None = None) -> int:
    """Release twice and roll back once under act; print the wall times next to their goals and the slowest steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp, make_release_world(Path(tmp)) as world:
        world.merge(set_param("  C: 1.0", "  C: 0.8"), "Regularise a little more")
        first = world.release()
        if first.returncode != 0:
            print(first.log[-4000:])
            return 1
        first_version = world.state("production")["live"]["version"]
        world.merge(set_param("  C: 0.8", "  C: 0.5"), "Regularise less")
        second = world.release()
        rollback = world.rollback("production", first_version, "benchmark")
        if second.returncode != 0 or rollback.returncode != 0:
            print((second.log if second.returncode else rollback.log)[-4000:])
            return 1
    rows = [
        ["first release (fills the stand-in environment)", f"{first.seconds:.1f} s", "", ""],
        [
            "merge to production (package, staging, production)",
            f"{second.seconds:.1f} s",
            f"≤ {GOAL_MERGE_TO_PRODUCTION:.0f} s",
            verdict(second.seconds, GOAL_MERGE_TO_PRODUCTION),
        ],
        [
            "rollback of production",
            f"{rollback.seconds:.1f} s",
            f"≤ {GOAL_ROLLBACK:.0f} s",
            verdict(rollback.seconds, GOAL_ROLLBACK),
        ],
    ]
    print("Release under act (local target; act, runner and servers on this machine)\n")
    print(table(["run", "wall time", "goal", ""], rows))
    steps = sorted({**step_times(second), **step_times(rollback)}.items(), key=lambda item: -item[1])
    print("\nWhere the time goes (act's step timings, merge and rollback):\n")
    print(table(["job", "step", "seconds"], [[job, step, f"{took:.1f}"] for (job, step), took in steps[:10]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
