"""Benchmark: baking the default project without its first pipeline run, next to cookiecutter's own floor.

Times `cookiecutter` with no input and `_reproduce_baseline: false` (render, hooks, git init and the
first commit) in a fresh Python, as a user runs it, and in this process (imports already paid), side by
side with rendering a template of one file, which is the least any cookiecutter bake costs.
Run: `PATH=.venv/bin:$PATH .venv/bin/python benchmarks/bench_bake.py [--repeat 3]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cookiecutter.main import cookiecutter

from harness import ROOT, table, timed, verdict

GOAL = 1.0  # seconds, a fresh process baking the default project


def empty_template(root: Path) -> Path:
    """A template with one question and one file."""
    template = root / "empty-template"
    (template / "{{cookiecutter.project}}").mkdir(parents=True)
    (template / "cookiecutter.json").write_text(json.dumps({"project": "empty"}), encoding="utf-8")
    (template / "{{cookiecutter.project}}" / "README.md").write_text("# {{ cookiecutter.project }}\n", encoding="utf-8")
    return template


def bake_in_process(template: Path, out: Path, context: dict) -> None:
    cookiecutter(str(template), no_input=True, extra_context=context, output_dir=str(out), overwrite_if_exists=True)


def bake_in_fresh_python(template: Path, out: Path, context: dict) -> None:
    code = (
        "import sys, json\nfrom cookiecutter.main import cookiecutter\n"
        "cookiecutter(sys.argv[1], no_input=True, extra_context=json.loads(sys.argv[2]), output_dir=sys.argv[3])\n"
    )
    command = [sys.executable, "-c", code, str(template), json.dumps(context), str(out)]
    subprocess.run(command, check=True, capture_output=True)


def median_seconds(repeat: int, run, out: Path) -> float:
    """Median seconds of `repeat` runs, each into an empty folder."""
    seconds = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        seconds.append(timed(lambda: run(out))[1])
    return statistics.median(seconds)


def main(argv: list[str] | None = None) -> int:
    """Print the seconds of each bake and the goal."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the median is shown")
    args = parser.parse_args(argv)
    print("Bake: the default project without its first pipeline run, vs a one-file template")
    context = {"_reproduce_baseline": False}
    with tempfile.TemporaryDirectory() as tmp:
        root, empty = Path(tmp), empty_template(Path(tmp))
        # One untimed bake in this process, so its rows show the bake without cookiecutter's imports.
        bake_in_process(empty, root / "warm", {})
        figures = {
            "fresh": median_seconds(args.repeat, lambda o: bake_in_fresh_python(ROOT, o, context), root / "a"),
            "fresh_empty": median_seconds(args.repeat, lambda o: bake_in_fresh_python(empty, o, {}), root / "b"),
            "here": median_seconds(args.repeat, lambda o: bake_in_process(ROOT, o, context), root / "c"),
            "here_empty": median_seconds(args.repeat, lambda o: bake_in_process(empty, o, {}), root / "d"),
        }
        files = sum(1 for p in (root / "c").rglob("*") if p.is_file() and ".git" not in p.parts)
    goal = f"<= {GOAL:g} s {verdict(figures['fresh'], GOAL)}"
    rows = [
        ["default project, fresh Python", f"{figures['fresh']:.2f}", goal],
        ["one-file template, fresh Python (the floor)", f"{figures['fresh_empty']:.2f}", ""],
        ["default project, in this process", f"{figures['here']:.2f}", ""],
        ["one-file template, in this process", f"{figures['here_empty']:.2f}", ""],
    ]
    print(table(["bake", "seconds (median)", "goal"], rows))
    print(f"runs of each: {args.repeat}; the default project has {files} files outside .git")
    return 0


if __name__ == "__main__":
    sys.exit(main())
