"""GitHub Actions plumbing: step outputs, the job summary and annotations, all through the runner's files."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path


def escape_data(text: str) -> str:
    """Escape a workflow-command message so newlines and percent signs cannot end or forge the command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property (file=, title=), where ':' and ',' are separators too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotate(level: str, message: str, *, file: str | None = None, title: str | None = None) -> None:
    """Print an ::error / ::warning / ::notice annotation that GitHub attaches to the run (and file)."""
    props = [f"{key}={escape_property(value)}" for key, value in (("file", file), ("title", title)) if value]
    print(f"::{level}{' ' + ','.join(props) if props else ''}::{escape_data(message)}", flush=True)


def set_output(name: str, value: str) -> None:
    """Write a step output; a random delimiter keeps multi-line values from closing the block early."""
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        return
    delimiter = f"ghadelimiter_{uuid.uuid4()}"
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def add_summary(markdown: str) -> None:
    """Append markdown to the job summary (or to stdout when not on a runner)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        sys.stdout.write(markdown + "\n")
        return
    with Path(target).open("a", encoding="utf-8") as handle:
        handle.write(markdown + "\n")


def save_result(out_dir: str, stem: str, result: dict, section: str) -> None:
    """Write a step's machine-readable result (<stem>.json) and report section (<stem>.md), and log the section."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / f"{stem}.md").write_text(section + "\n", encoding="utf-8")
    print(section)  # the model report carries the section into the job summary


def log_untrusted(title: str, text: str) -> None:
    """Print another program's output in a folded group, with workflow commands off so its text cannot issue any."""
    if not text.strip():
        return
    # The runner ignores '::' commands until it sees the random token again, which the text cannot guess.
    token = f"mlgitops-{uuid.uuid4().hex}"
    print(f"::group::{escape_data(title)}", flush=True)
    print(f"::stop-commands::{token}", flush=True)
    print(text.rstrip("\n"), flush=True)
    print(f"::{token}::", flush=True)
    print("::endgroup::", flush=True)
