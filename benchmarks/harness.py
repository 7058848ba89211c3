"""What the benchmarks share: paths, the template's modules, timing, peak memory and plain-text tables."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_SRC = ROOT / "{{cookiecutter.project}}" / "src" / "{{cookiecutter.package}}"
ACTIONS = ROOT / "actions"


def template_module(name: str) -> ModuleType:
    """A module of the template's package, loaded by path: the package's name is a template variable."""
    spec = importlib.util.spec_from_file_location(f"template_{name}", TEMPLATE_SRC / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """The function's value and the wall-clock seconds it took."""
    started = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - started


def peak_rss(code: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """Peak resident memory in bytes of a fresh Python running `code`, and the JSON it printed last, if any.

    A fresh process, so the figure is the code's own peak, not this process's high-water mark.
    """
    probe = (
        f"{code}\nimport resource as _r, json as _j\n"
        # Linux reports ru_maxrss in KiB.
        "print(_j.dumps({'__peak__': _r.getrusage(_r.RUSAGE_SELF).ru_maxrss * 1024, **globals().get('RESULT', {})}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the measured process failed:\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result.pop("__peak__"), result


def verdict(value: float, limit: float, strict: bool = False) -> str:
    """`met` or `MISSED`, for a ratio against its goal."""
    ok = value < limit if strict else value <= limit
    return "met" if ok else "MISSED"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"
