"""Write each action's Inputs and Outputs tables into its README from its action.yml, the one source of truth."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

BEGIN, END = "<!-- begin generated tables -->", "<!-- end generated tables -->"


def cell(text: object) -> str:
    """Make a value safe inside a markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def tables(action: dict) -> str:
    """The markdown Inputs and Outputs tables of one action."""
    lines = ["## Inputs", "", "| name | description | required | default |", "|---|---|---|---|"]
    for name, spec in (action.get("inputs") or {}).items():
        default = "" if "default" not in spec else f"`{spec['default']}`" if spec["default"] != "" else '`""`'
        required = str(spec.get("required", False)).lower()
        lines.append(f"| `{name}` | {cell(spec.get('description', ''))} | {required} | {cell(default)} |")
    lines += ["", "## Outputs", "", "| name | description |", "|---|---|"]
    for name, spec in (action.get("outputs") or {}).items():
        lines.append(f"| `{name}` | {cell(spec.get('description', ''))} |")
    return "\n".join(lines)


def render(readme: str, action: dict) -> str:
    """The README with its generated section replaced by tables from action.yml."""
    if BEGIN not in readme or END not in readme:
        raise ValueError(f"README has no {BEGIN} ... {END} section to fill.")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{tables(action)}\n{END}{tail}"


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite (or with --check, verify) the README of every action folder given."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="fail if a README is out of date instead of writing it")
    args = parser.parse_args(argv)
    stale = []
    for folder in args.folders:
        action = yaml.safe_load((folder / "action.yml").read_text(encoding="utf-8"))
        readme = folder / "README.md"
        current = readme.read_text(encoding="utf-8")
        wanted = render(current, action)
        if wanted != current:
            stale.append(readme)
            if not args.check:
                readme.write_text(wanted, encoding="utf-8")
    if args.check and stale:
        names = ", ".join(map(str, stale))
        print(f"error: out of date: {names}; run `python3 -m mlgitops.docs` on them.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
