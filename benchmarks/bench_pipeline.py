"""Benchmark: the default pipeline under `dvc repro --force`, side by side with its stages in one Python process.

Bakes the default project (its first `dvc repro` runs in the bake), then times a forced re-run of
every stage by DVC (a process per stage, plus DVC's own bookkeeping), an unforced `dvc repro` that
finds nothing to do, and the same stage commands called one after another in one fresh Python process.
Run: `PATH=.venv/bin:$PATH .venv/bin/python benchmarks/bench_pipeline.py [--repeat 1]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from harness import ROOT, table, timed, verdict

sys.path.insert(0, str(ROOT / "tests"))

from demo import bake, project_env, sh

GOAL = 2.0  # dvc repro --force, in runs of the same stages in one process
STAGES = ("schema", "prepare", "validate", "train", "evaluate")
IMPORTS = "import pandas, sklearn.base"


def in_one_process(project: Path, env: dict[str, str]) -> None:
    """Every stage's command, in dvc.yaml's order, in one fresh interpreter (imports paid once)."""
    package = project.name.replace("-", "_")
    code = f"from {package}.__main__ import main\nfor stage in {STAGES!r}:\n    assert main([stage]) == 0, stage\n"
    sh([sys.executable, "-c", code], project, env)


def main(argv: list[str] | None = None) -> int:
    """Print the seconds of each way to run the pipeline and the ratio against its goal."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the median is shown")
    args = parser.parse_args(argv)
    print("Pipeline: dvc repro --force of the default project vs its stages in one Python process")
    with tempfile.TemporaryDirectory() as tmp:
        project, baked = timed(lambda: bake(Path(tmp)))
        env = project_env(project, Path(tmp) / "bentoml")
        runs: dict[str, list[float]] = {"forced": [], "noop": [], "one": [], "imports": []}
        for _ in range(args.repeat):
            runs["forced"].append(timed(lambda: sh(["dvc", "repro", "--force"], project, env))[1])
            runs["noop"].append(timed(lambda: sh(["dvc", "repro"], project, env))[1])
            runs["one"].append(timed(lambda: in_one_process(project, env))[1])
            # What every stage process that trains, splits or scores pays before its first line of work.
            runs["imports"].append(timed(lambda: sh([sys.executable, "-c", IMPORTS], project, env))[1])
        changed = sh(["git", "status", "--porcelain"], project, env).strip()
    median = {name: statistics.median(values) for name, values in runs.items()}
    ratio = median["forced"] / median["one"]
    rows = [
        ["stages in one Python process", f"{median['one']:.2f}", "1.00x", ""],
        ["dvc repro --force", f"{median['forced']:.2f}", f"{ratio:.2f}x", f"<= {GOAL:g}x {verdict(ratio, GOAL)}"],
        ["dvc repro, nothing changed", f"{median['noop']:.2f}", f"{median['noop'] / median['one']:.2f}x", ""],
    ]
    print(table(["run", "seconds (median)", "vs one process", "goal"], rows))
    print(
        f"`{IMPORTS}` in a fresh Python: {median['imports']:.2f} s, paid by each of prepare, train and evaluate "
        "under DVC, once in one process"
    )
    print(
        f"runs of each: {args.repeat}; bake with its first dvc repro: {baked:.1f} s; "
        f"files changed by the re-runs: {len(changed.splitlines()) if changed else 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
