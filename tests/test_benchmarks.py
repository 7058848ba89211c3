"""benchmarks/run.py finds every benchmark module, each with the `main(argv)` it calls; act's step times read right."""

import importlib.util
import inspect

import pytest

from helpers import ROOT


def load_runner():
    spec = importlib.util.spec_from_file_location("bench_runner", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_runner_discovers_every_bench_module_in_its_order():
    runner = load_runner()
    names = runner.discover()
    on_disk = {path.stem.removeprefix("bench_") for path in (ROOT / "benchmarks").glob("bench_*.py")}
    assert set(names) == on_disk
    assert {"data_check", "report", "bake", "pipeline", "pr_workflow"} <= on_disk
    listed = [name for name in names if name in runner.ORDER]
    assert listed == sorted(listed, key=runner.ORDER.index)


def test_each_bench_module_has_a_main_taking_argv_and_a_docstring():
    runner = load_runner()
    for name in runner.discover():
        module = runner.load(name)
        assert module.__doc__, name
        assert list(inspect.signature(module.main).parameters) == ["argv"], name


def test_the_pr_workflow_benchmark_reads_act_step_durations_in_seconds():
    runner = load_runner()
    bench = runner.load("pr_workflow")
    log = (
        "[Model report/Data check, train and report]   ✅  Success - Main ./.github/actions/setup-project [1m2.5s]\n"
        "[Model report/Data check, train and report]   ✅  Success - Main ./.github/actions/model-report [420.5ms]\n"
        "[Model report/Data check, train and report]   ❌  Failure - Main ./.github/actions/train [3.25s]\n"
    )
    durations = {name: bench.seconds_of(duration) for name, duration in bench.STEP_DONE.findall(log)}
    assert durations == pytest.approx({"setup-project": 62.5, "model-report": 0.4205, "train": 3.25})
