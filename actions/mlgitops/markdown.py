"""Render untrusted text (branch names, titles, file names, data values) inert inside markdown."""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def text(value: object, limit: int = 200) -> str:
    """One line of escaped text: markdown and HTML are shown, not interpreted; @mentions do not ping."""
    flat = " ".join(str(value).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return _SPECIAL.sub(r"\\\1", flat).replace("@", "@\u200b")


def code(value: object, limit: int = 200) -> str:
    """Inline code that cannot be closed early by backticks in the value."""
    # Pipes would end a table cell even inside a code span; GitHub honours the escape there.
    flat = " ".join(str(value).split())[:limit].replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def fenced(value: str, info: str = "") -> str:
    """A fenced code block that no backtick run in the value can close."""
    fence = "`" * max(3, max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    return f"{fence}{info}\n{value.rstrip(chr(10))}\n{fence}"


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table; cells must already be escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
