"""The kit's own Python (hooks, actions' package, tests, benchmarks) passes ruff's lint and format checks."""

import subprocess

from helpers import ROOT

PATHS = ["hooks", "actions", "tests", "benchmarks"]


def test_ruff_lint_is_clean():
    result = subprocess.run(["ruff", "check", "--no-cache", *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_ruff_format_is_clean():
    result = subprocess.run(
        ["ruff", "format", "--no-cache", "--check", *PATHS], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout
