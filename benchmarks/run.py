"""Run every benchmark in benchmarks/ in a fixed order and print its section; `--write` also writes BENCHMARKS.md.

Each `bench_*.py` module has `main(argv) -> int` and prints a plain-text table under a one-line
heading. Modules not named in ORDER run after those that are, by name. Run: `make bench`, or
`PATH=.venv/bin:$PATH .venv/bin/python benchmarks/run.py [--write] [--only data_check report]`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import io
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Hand-written: what the figures mean, why a goal is missed, what was changed; copied into BENCHMARKS.md.
FINDINGS = HERE / "findings.md"
# Cheap and self-contained first; the ones that bake projects, start servers and run workflows under act last.
ORDER = ["data_check", "report", "bake", "pipeline", "serving", "pr_workflow"]


def discover() -> list[str]:
    """The benchmark names (`bench_NAME.py`) in run order."""
    found = sorted(path.stem.removeprefix("bench_") for path in HERE.glob("bench_*.py"))
    return [name for name in ORDER if name in found] + [name for name in found if name not in ORDER]


def load(name: str) -> ModuleType:
    """Import a benchmark module by name, with benchmarks/ on the import path as when it runs alone."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    return importlib.import_module(f"bench_{name}")


def machine() -> list[str]:
    """What the figures were measured on."""
    import psutil

    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- CPU: {model}, {os.cpu_count()} logical cores",
        f"- memory: {psutil.virtual_memory().total / 2**30:.1f} GiB",
        f"- Python {platform.python_version()} on {platform.system()} {platform.release()}",
        f"- load average when the run started (1, 5, 15 min): {load}",
    ]


def run(name: str, argv: list[str]) -> tuple[str, int]:
    """Run one benchmark, echoing its output live, and return that output and its exit code."""
    buffer = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, text: str) -> int:
            sys.__stdout__.write(text)
            sys.__stdout__.flush()
            return buffer.write(text)

    started = time.perf_counter()
    with contextlib.redirect_stdout(Tee()):
        try:
            code = load(name).main(argv)
        except Exception as err:  # one failing benchmark must not hide the others' figures
            print(f"FAILED: {type(err).__name__}: {err}")
            code = 1
        print(f"({time.perf_counter() - started:.0f} s)")
    return buffer.getvalue(), code


def document(header: list[str], sections: list[str], note: str) -> str:
    """BENCHMARKS.md: the machine, how to reproduce, and the output."""
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "Written by `make bench` (`benchmarks/run.py --write`) from one run; the figures below are its output.",
            "Ratios are measured side by side in the same run; goals are printed next to them, never asserted.",
            "",
            "## Machine",
            "",
            *header,
            *([f"- {note}"] if note else []),
            "",
            "## Reproduce",
            "",
            "```bash",
            "make bench                                   # every benchmark; rewrites this file",
            "PATH=.venv/bin:$PATH .venv/bin/python benchmarks/bench_data_check.py --rows 10000 100000  # one, smaller",
            "```",
            "",
            "Each `benchmarks/bench_*.py` runs alone; `--help` lists its options for smaller sizes.",
            "",
            *(["## Findings", "", FINDINGS.read_text(encoding="utf-8").strip(), ""] if FINDINGS.is_file() else []),
            "## Output",
            "",
            "```text",
            "\n\n".join(section.rstrip() for section in sections),
            "```",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks in order; exit 1 when any of them failed to run (missed goals are not failures)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="write BENCHMARKS.md at the repository root")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these benchmarks only (e.g. data_check)")
    parser.add_argument("--note", default="", help="a line about the run for BENCHMARKS.md, e.g. a shared machine")
    args = parser.parse_args(argv)
    names = [name for name in discover() if not args.only or name in args.only]
    header = machine()
    print("\n".join(header), end="\n\n")
    sections, failed = [], []
    for number, name in enumerate(names, start=1):
        # Progress goes to stderr, so BENCHMARKS.md keeps the benchmarks' own output only.
        print(f"[{number}/{len(names)}] {name} ...", file=sys.stderr, flush=True)
        output, code = run(name, [])
        sections.append(output)
        if code:
            failed.append(name)
        print()
    if args.write:
        (ROOT / "BENCHMARKS.md").write_text(document(header, sections, args.note), encoding="utf-8")
        print(f"wrote {ROOT / 'BENCHMARKS.md'}")
    if failed:
        print(f"failed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
