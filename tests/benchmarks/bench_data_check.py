"""Benchmark: data-check's cost on large data, side by side with simply reading the same CSV.

The project's validate stage profiles the data once (pandas, vectorised); the data-check action then
works on that profile, whose size depends on the number of columns, not rows. This prints, for
growing row counts, the seconds to read the CSV, to profile it, and for data-check on the profile,
and the ratios between them. Run: `.venv/bin/python tests/benchmarks/bench_data_check.py`.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "actions"))
sys.path.insert(0, str(ROOT / "{{cookiecutter.project}}" / "src"))

from mlgitops import data_check  # noqa: E402


def load_profile_function():
    """The template's profile() (its package name is a template variable, so load the module by path)."""
    import importlib.util

    path = ROOT / "{{cookiecutter.project}}" / "src" / "{{cookiecutter.package}}" / "schema.py"
    spec = importlib.util.spec_from_file_location("template_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.profile


def frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {f"x{i}": rng.normal(i, 1 + i, rows) for i in range(8)}
    data["plan"] = rng.choice(["basic", "plus", "pro"], rows)
    data["label"] = rng.choice(["yes", "no"], rows, p=[0.3, 0.7])
    return pd.DataFrame(data)


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    profile = load_profile_function()
    rules = data_check.settings(Path("/nonexistent"))
    print(f"{'rows':>10} {'read s':>8} {'profile s':>10} {'check s':>9} {'profile/read':>13} {'check/read':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            path = Path(tmp) / "data.csv"
            frame(rows).to_csv(path, index=False)
            data, read = timed(lambda p=path: pd.read_csv(p))
            head, profiled = timed(lambda d=data: profile(d, "label"))
            base = profile(frame(rows, seed=1), "label")
            head = json.loads(json.dumps(head))

            def check(h=head, b=base):
                return data_check.quality(h, rules) + data_check.drift(b, h, rules["drift"])

            _, checked = timed(check)
            ratios = f"{profiled / read:>13.2f} {checked / read:>11.5f}"
            print(f"{rows:>10} {read:>8.3f} {profiled:>10.3f} {checked:>9.5f} {ratios}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
