"""benchmarks/run.py finds every benchmark module, and each has the `main(argv)` it calls."""

import importlib.util
import inspect

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
    assert {"data_check", "report", "bake", "pipeline"} <= on_disk
    listed = [name for name in names if name in runner.ORDER]
    assert listed == sorted(listed, key=runner.ORDER.index)


def test_each_bench_module_has_a_main_taking_argv_and_a_docstring():
    runner = load_runner()
    for name in runner.discover():
        module = runner.load(name)
        assert module.__doc__, name
        assert list(inspect.signature(module.main).parameters) == ["argv"], name
