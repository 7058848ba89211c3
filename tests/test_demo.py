"""`make demo`, one of the README's two commands, run as the Makefile runs it: a script, not a test module."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PIL import Image

from helpers import ROOT


@pytest.mark.slow
def test_make_demo_bakes_reports_releases_and_rolls_back(tmp_path):
    # Given the command line `make demo` runs, with only the environment's tools on PATH
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "tests/demo.py", "demo", "--output", str(tmp_path / "demo")]
    # When it runs
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False)
    # Then every step of the journey happened: a served prediction, the report, two releases and a rollback,
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    assert "/predict -> 200" in log and "Model report for `tune-c`" in log
    assert "Roll back production from" in log
    # a monitor run on production, and the report's page and its screenshot (Chromium is installed by make test).
    assert "predictions judged in" in log
    folder = tmp_path / "demo" / "report"
    assert "Model report for <code>tune-c</code>" in (folder / "report.html").read_text(encoding="utf-8")
    assert f"screenshot, by headless Chromium: {folder / 'report.png'}" in log
    image = Image.open(folder / "report.png").convert("RGB")
    assert image.getbbox() is not None and len(image.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50
