"""Benchmark: the generated "Model report" pull request workflow under act, a no-op pull request vs one that retrains.

Bakes a project on a generated CSV (random forest, training long enough to matter) and runs its
pull request workflow with act exactly as tests/test_pr_workflow.py does (the same World: stand-ins
for GitHub's actions, the GitHub stand-in), for a README-only pull request and for one that changes a
model parameter. Side by side, the same steps as plain commands in a clone of the same branch: the
pip installs setup-project runs, then `python3 -m mlgitops.data_check`, `.train` and `.model_report`
with the arguments their action.yml files pass. Both sides share the stand-in's Python environment
(made and filled once, by a first run that is timed but kept out of the ratios) and pip's cache. As in
the tests, no DVC cache is restored; each pull request also runs once more under act with the cache
that ci.yml saves on main (the baked project's `.dvc/cache`) behind the actions/cache stand-in.
Run: `PATH=.venv/bin:$PATH .venv/bin/python benchmarks/bench_pr_workflow.py [--rows 60000] [--repeat 2]`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import ROOT, mib, table, timed, verdict

sys.path.insert(0, str(ROOT / "tests"))

from act_world import World, make_world, set_param

GOAL_NOOP = 0.3  # a README-only pull request's workflow, in runs of one that retrains
GOAL_OVERHEAD = 1.2  # the workflow under act, in runs of the same steps as plain commands
MIN_FIT_SECONDS = 20.0  # below this the retraining run measures the suite more than training
FEATURES = 10
STEPS = ("setup", "data-check", "train", "model-report")
# act's line when one of the job's steps ends, with the step's duration, e.g. "[1m2.5s]" or "[420.9ms]".
STEP_DONE = re.compile(
    r"(?:Success|Failure) - Main \S*/actions/(setup-project|data-check|train|model-report) \[(.+?)\]"
)
# Longer units first, so that "ms" is not read as minutes.
DURATION = re.compile(r"([\d.]+)(ms|µs|us|ns|h|m|s)")
UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
FIT = re.compile(r"trained \S+ on (\d+) rows in ([\d.]+) s")
STAGE_RAN = re.compile(r"Running stage '([^']+)'")
RETRAIN = ("  min_samples_leaf: 2", "  min_samples_leaf: 3")


def write_dataset(path: Path, rows: int) -> Path:
    """A CSV of numeric features, one category and a learnable yes/no label, generated from a fixed seed."""
    rng = random.Random(3)
    weights = [rng.uniform(-1, 1) for _ in range(FEATURES)]
    lines = [",".join([*(f"x{i}" for i in range(FEATURES)), "plan", "label"])]
    for _ in range(rows):
        xs = [rng.gauss(0, 1) for _ in range(FEATURES)]
        plan = rng.choice(["basic", "plus", "pro"])
        risk = sum(w * x for w, x in zip(weights, xs, strict=True)) + (0.5 if plan == "basic" else 0) + rng.gauss(0, 1)
        lines.append(",".join([*(f"{x:.4f}" for x in xs), plan, "yes" if risk > 0 else "no"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def edit_readme(project: Path) -> None:
    with (project / "README.md").open("a", encoding="utf-8") as handle:
        handle.write("\nA note for readers.\n")


def seconds_of(duration: str) -> float:
    """Seconds of a Go duration as act prints it (`1m57.3s`, `420.9ms`, `22µs`)."""
    return sum(float(value) * UNIT_SECONDS[unit] for value, unit in DURATION.findall(duration))


def cpu_seconds() -> float:
    """CPU seconds of every process this one started and waited for, act's and the steps' included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(wall: float, cpu: float, log: str, train_json: str) -> dict:
    """What one run left: its seconds, the stages it ran and how long fitting took."""
    fit = FIT.search(log)
    return {
        "whole": wall,
        # Other work on a shared machine stretches wall time, hardly the CPU time a run needs.
        "cpu": cpu,
        "ran": json.loads(train_json)["ran"],
        "stages": STAGE_RAN.findall(log),
        "fit": float(fit.group(2)) if fit else 0.0,
        "train_rows": int(fit.group(1)) if fit else 0,
        "pipeline": json.loads(train_json)["seconds"],
    }


def under_act(world: World, branch: str, act_args: tuple[str, ...] = ()) -> dict:
    """Run "Model report" for the branch's pull request under act; fail unless its gate passed."""
    cpu = cpu_seconds()
    run, wall = timed(lambda: world.report(branch, act_args=act_args))
    cpu = cpu_seconds() - cpu
    if run.returncode != 0:
        raise RuntimeError(f"the workflow failed for {branch}:\n{run.log[-3000:]}")
    result = measured(wall, cpu, run.log, run.file("train.json"))
    steps = {name: seconds_of(duration) for name, duration in STEP_DONE.findall(run.log)}
    result["steps"] = {"setup": steps["setup-project"], **{name: steps[name] for name in STEPS[1:]}}
    return result


def in_a_clone(world: World, branch: str) -> dict:
    """The workflow's steps as plain commands in a fresh clone of the branch, with the same Python environment."""
    base, head = world.git("rev-parse", "main"), world.git("rev-parse", branch)
    clone = world.root / f"plain-{branch}"
    python = str(world.standin_venv / "bin" / "python")
    env = {k: v for k, v in world.env.items() if not k.startswith("GITHUB_")}
    env["PATH"] = os.pathsep.join([str(world.standin_venv / "bin"), env["PATH"]])
    # What each action.yml sets: the kit's package from the vendored actions folder.
    env["PYTHONPATH"] = str(clone / ".github" / "actions")
    out = "reports/pr"

    def sh(*command: str, cwd: Path = clone) -> str:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"`{' '.join(command)}` exited {done.returncode}:\n{done.stdout[-3000:]}{done.stderr}")
        return done.stdout

    def setup() -> None:
        sh("git", "clone", "--quiet", "--branch", branch, str(world.project), str(clone), cwd=world.root)
        # setup-project's two commands, as its action.yml runs them.
        sh(python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "--upgrade", "pip")
        sh(python, "-m", "pip", "install", "--disable-pip-version-check", "--quiet", "-e", ".[dev]")

    # The arguments each action.yml passes, with the values the workflow gives its inputs.
    commands = {
        "data-check": ["--base-ref", base, "--stage", "validate", "--params", "params.yaml", "--out-dir", out],
        "train": ["--base-ref", base, "--push", "false", "--out-dir", out],
        "model-report": [
            *("--base-ref", base, "--head-label", branch, "--pull-request", str(world.numbers[branch])),
            *("--head-sha", head, "--sections", out, "--out-dir", out, "--require-sections"),
        ],
    }
    cpu = cpu_seconds()
    _, setup_seconds = timed(setup)
    steps, logs = {"setup": setup_seconds}, []
    for name, arguments in commands.items():
        module = f"mlgitops.{name.replace('-', '_')}"
        output, steps[name] = timed(lambda module=module, arguments=arguments: sh("python3", "-m", module, *arguments))
        logs.append(output)
    train_json = (clone / out / "train.json").read_text(encoding="utf-8")
    result = measured(sum(steps.values()), cpu_seconds() - cpu, "\n".join(logs), train_json)
    result["steps"] = steps
    return result


def median(runs: list[dict], key: str = "whole", step: str | None = None) -> float:
    """The median of a figure over runs: `key` of each run, or the seconds of one of its steps."""
    return statistics.median(run["steps"][step] if step else run[key] for run in runs)


def report(args: argparse.Namespace, size: int, first: dict, runs: dict[tuple[str, str], list[dict]]) -> None:
    """Print the figures: the whole runs against the goals, then where the time goes."""
    whole = {key: median(values, "whole") for key, values in runs.items()}
    cpu = {key: median(values, "cpu") for key, values in runs.items()}
    print(
        f"random_forest on a generated CSV of {args.rows:,} rows x {FEATURES + 2} columns ({mib(size)}); "
        f"runs of each: {args.repeat}, median shown"
    )
    rows = []
    for kind, label in (("noop", "README-only (no-op)"), ("retrain", "min_samples_leaf 2 -> 3 (retrains)")):
        ratio = whole[kind, "act"] / whole[kind, "plain"]
        goal = f"<= {GOAL_OVERHEAD:g}x {verdict(ratio, GOAL_OVERHEAD)}"
        cpu_ratio = f"{cpu[kind, 'act']:.1f} / {cpu[kind, 'plain']:.1f} = {cpu[kind, 'act'] / cpu[kind, 'plain']:.2f}x"
        rows.append(
            [label, f"{whole[kind, 'act']:.1f}", f"{whole[kind, 'plain']:.1f}", f"{ratio:.2f}x", goal, cpu_ratio]
        )
    print(table(["pull request", "act s", "plain s", "act / plain", "goal", "CPU s, act / plain"], rows))
    noop_ratio = whole["noop", "act"] / whole["retrain", "act"]
    trained = sorted({stage for run in runs["noop", "act"] for stage in run["ran"]})
    print(
        f"no-op / retrain under act: {noop_ratio:.2f}x (goal <= {GOAL_NOOP:g}x: {verdict(noop_ratio, GOAL_NOOP)}; "
        f"in CPU seconds {cpu['noop', 'act'] / cpu['retrain', 'act']:.2f}x); "
        f"stages the no-op's train step ran: {', '.join(trained) or 'none'} (goal none: "
        f"{'MISSED' if trained else 'met'})"
    )
    columns = [(kind, side) for kind in ("noop", "retrain") for side in ("act", "plain")]
    steps = [[step, *(f"{median(runs[key], step=step):.1f}" for key in columns)] for step in STEPS]
    other = [whole[key] - sum(median(runs[key], step=step) for step in STEPS) for key in columns]
    steps.append(["act's own (start, workspace, stand-ins)", *(f"{seconds:.1f}" for seconds in other)])
    print(table(["step (median s)", "no-op act", "no-op plain", "retrain act", "retrain plain"], steps))
    retrain = runs["retrain", "act"]
    fit = median(retrain, "fit")
    print(
        f"training: the fit itself {fit:.1f} s on {retrain[0]['train_rows']:,} rows "
        f"(wanted >= {MIN_FIT_SECONDS:g} s: {'yes' if fit >= MIN_FIT_SECONDS else 'no, raise --rows'}); "
        f"dvc repro of the stages that ran {median(retrain, 'pipeline'):.1f} s"
    )
    print(
        f"stages run in the whole job: no-op {', '.join(runs['noop', 'act'][0]['stages']) or 'none'}, "
        f"retrain {', '.join(retrain[0]['stages'])} (no DVC cache is restored, as in the tests)"
    )
    cached = {kind: runs[kind, "cached"] for kind in ("noop", "retrain")}
    print(
        f"with main's DVC cache restored (ci.yml saves it on main; the tests restore none): no-op "
        f"{whole['noop', 'cached']:.1f} s (data-check {median(cached['noop'], step='data-check'):.1f} s, stages run: "
        f"{', '.join(cached['noop'][0]['stages']) or 'none'}), retrain {whole['retrain', 'cached']:.1f} s, "
        f"no-op / retrain {whole['noop', 'cached'] / whole['retrain', 'cached']:.2f}x"
    )
    print(
        "setup: act = the setup-python stand-in (its environment reused) + setup-project's pip installs; "
        "plain = git clone + the same pip installs into the same environment"
    )
    print(f"first run, filling the stand-in's fresh environment (not in the ratios): {first['whole']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Print the workflow's seconds for each pull request, under act and as plain commands, next to the goals."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=60_000, help="rows of the generated CSV (a quarter is held out)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each pull request on each side, median shown")
    args = parser.parse_args(argv)
    print('PR workflow: "Model report" under act, a README-only pull request vs a parameter change that retrains')
    with tempfile.TemporaryDirectory() as tmp:
        dataset = write_dataset(Path(tmp) / "dataset.csv", args.rows)
        size = dataset.stat().st_size
        answers = {"dataset": "csv", "csv_path": str(dataset), "target_column": "label", "model": "random_forest"}
        with make_world(Path(tmp) / "pr", **answers) as world:
            # The first run makes the stand-in's environment and installs every dependency into it.
            world.start("first", edit_readme, "A first pull request")
            first = under_act(world, "first")
            # What ci.yml saves on main: the pipeline's outputs and DVC's run cache, keyed by the commit.
            cache = Path(tmp) / "standin-cache"
            shutil.copytree(world.project / ".dvc" / "cache", cache / f"dvc-{world.git('rev-parse', 'main')}")
            runs: dict[tuple[str, str], list[dict]] = {}
            for i in range(args.repeat):
                for kind, change in (("noop", edit_readme), ("retrain", set_param(*RETRAIN))):
                    branch = f"{kind}-{i}"
                    world.start(branch, change, f"A {kind} pull request")
                    runs.setdefault((kind, "act"), []).append(under_act(world, branch))
                    runs.setdefault((kind, "plain"), []).append(in_a_clone(world, branch))
                    cached = under_act(world, branch, ("--env", f"STANDIN_CACHE={cache}"))
                    runs.setdefault((kind, "cached"), []).append(cached)
    report(args, size, first, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
