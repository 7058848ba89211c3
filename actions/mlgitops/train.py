"""train: reproduce the DVC pipeline with the run cache and report what ran, what was restored, and how long."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from . import contract, gha, gitrefs, trust
from . import markdown as md

RAN = re.compile(r"^Running stage '(?P<stage>[^']+)'", re.MULTILINE)
SKIPPED = re.compile(r"^Stage '(?P<stage>[^']+)' didn't change, skipping", re.MULTILINE)
# DVC 3 says this when the run cache already holds a stage's outputs for its current inputs.
RESTORED = re.compile(r"^Stage '(?P<stage>[^']+)' is cached - skipping run, checking out outputs", re.MULTILINE)
# Statuses of a file that another stage produces and this fresh machine simply has no copy of.
ABSENT = {"deleted", "not in cache"}


def dvc(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a DVC command, capturing its output."""
    return subprocess.run(["dvc", *args], capture_output=True, text=True, check=False)


def changed_inputs(status: dict[str, Any], outputs: set[str]) -> dict[str, list[str]]:
    """Per stage, what differs from dvc.lock: code, data, params, commands, or committed outputs edited by hand.

    A missing file that another stage produces is only absent from this fresh machine; a missing source
    file (code or data nothing produces) was deleted, which is a change.
    """
    changed: dict[str, list[str]] = {}
    for stage, entries in status.items():
        reasons = []
        for entry in entries:
            if isinstance(entry, str):  # e.g. "changed command", "always changed"
                reasons.append(entry)
                continue
            for path, state in (entry.get("changed deps") or {}).items():
                if isinstance(state, dict) or state not in ABSENT or path not in outputs:
                    reasons.append(path)
            for path, state in (entry.get("changed outs") or {}).items():
                if state == "modified":  # e.g. metrics.json edited instead of reproduced
                    reasons.append(path)
        if reasons:
            changed[stage] = reasons
    return changed


def has_remote() -> bool:
    """Whether a DVC remote is configured, so the run cache can be shared between runs."""
    return bool(dvc("remote", "list").stdout.strip())


def same_remote(base_ref: str) -> bool:
    """Whether the DVC remote configuration is the base branch's, so a run cache pulled from it is trusted."""
    if not base_ref:
        return True
    config = Path(".dvc/config")
    here = config.read_text(encoding="utf-8") if config.is_file() else None
    return gitrefs.show(base_ref, ".dvc/config") == here


def run_within(command: list[str], seconds: float) -> tuple[int | None, str]:
    """Run a command in its own process group; stop the whole group past the budget (returncode None)."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=seconds)
        return process.returncode, output
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                output, _ = process.communicate(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                output = ""
        return None, output or ""


def restore_committed(paths: set[str]) -> None:
    """Put back the committed copies of dvc.lock and the pipeline's git-tracked outputs."""
    tracked = sorted(path for path in {"dvc.lock", *paths} if path in gitrefs.tracked("HEAD"))
    if tracked:
        gitrefs.git("checkout", "HEAD", "--", *tracked)


def reproduce(push: bool, base_ref: str = "", pull: bool = True) -> dict[str, Any]:
    """Decide what must run, run it, check the committed results against CI's, and describe the outcome."""
    # Earlier steps (data-check) may already have rewritten dvc.lock: compare with the commit's.
    committed_lock = gitrefs.show("HEAD", "dvc.lock")
    distrusted = trust.untrusted(base_ref) if base_ref else {}
    trust.forget(set(distrusted))
    status = dvc("status", "--json")
    try:
        if status.returncode != 0:
            raise ValueError(status.stderr.strip()[-300:])
        changed = changed_inputs(json.loads(status.stdout or "{}"), trust.pipeline_outputs())
    except ValueError as err:  # JSONDecodeError included: then run everything rather than trust nothing changed
        changed = {"(dvc status failed)": [str(err)]}
    for stage, reason in distrusted.items():
        changed.setdefault(stage, []).append(reason)
    result: dict[str, Any] = {
        "changed": changed,
        "untrusted": distrusted,
        "ran": [],
        "restored": [],
        "skipped": [],
        "seconds": 0.0,
        "mismatches": [],
        "stale": [],
    }
    remote = has_remote()
    result["remote"] = remote
    # A job without the remote's credentials (a pull request's) says so instead of failing to pull every time.
    pull = pull and remote
    if not changed and committed_lock is not None:
        result["note"] = "Nothing the pipeline depends on changed, so nothing was trained: the committed results stand."
        result["ok"] = True
        return result
    if pull and not same_remote(base_ref):
        gha.annotate(
            "warning",
            "the pull request changes .dvc/config, so the run cache was not pulled: every changed stage runs here",
            title="train",
        )
    elif pull:
        pulled = dvc("pull", "--run-cache", "--allow-missing")
        if pulled.returncode != 0:
            gha.annotate("warning", f"could not pull the run cache: {pulled.stderr.strip()[-300:]}", title="train")
    # The budget is a gate setting: the base branch's, so a pull request cannot raise its own.
    budget = float(contract.load(ref=base_ref)["budget"]["pipeline_minutes"]) * 60
    result["budget_seconds"] = budget
    started = time.perf_counter()
    returncode, output = run_within(["dvc", "repro"], budget)
    result["seconds"] = round(time.perf_counter() - started, 2)
    sys.stdout.write(output)
    result |= {
        "ok": returncode == 0,
        "ran": RAN.findall(output),
        "restored": RESTORED.findall(output),
        "skipped": SKIPPED.findall(output),
    }
    if returncode is None:
        restore_committed(trust.pipeline_outputs())
        result["over_budget"] = True
        result["error"] = (
            f"the pipeline ran past its budget of {budget / 60:g} minutes (mlgitops.budget.pipeline_minutes "
            "on the base branch) and was stopped; the workspace holds the committed results again"
        )
    elif returncode != 0:
        result["error"] = " ".join(output.strip().splitlines()[-3:])
    else:
        verdict = trust.check_outputs(base_ref) if base_ref else trust.Verdict([], [])
        result["mismatches"] = [asdict(m) | {"sentence": m.sentence()} for m in verdict.mismatches]
        result["stale"] = verdict.stale
    new_lock = Path("dvc.lock").read_text(encoding="utf-8") if Path("dvc.lock").is_file() else None
    result["stale_lock"] = committed_lock is not None and trust.stages_of(new_lock) != trust.stages_of(committed_lock)
    if remote and push and returncode == 0:
        pushed = dvc("push", "--run-cache")
        if pushed.returncode != 0:
            gha.annotate("warning", f"could not push the run cache: {pushed.stderr.strip()[-300:]}", title="train")
    return result


def render(result: dict[str, Any]) -> str:
    """The training section of the report."""
    lines = ["### Training", ""]
    if "note" in result:
        return "\n".join([*lines, result["note"]])
    if result.get("over_budget"):
        lines.append(f"⏱️ Stopped: {md.text(result['error'], limit=500)}.")
    elif not result["ok"]:
        lines.append(f"The pipeline failed: {md.text(result.get('error', ''), limit=500)}")
    ran = ", ".join(md.code(s) for s in result["ran"]) or "none"
    restored = ", ".join(md.code(s) for s in result["restored"]) or "none"
    budget = f" of its {result['budget_seconds'] / 60:g}-minute budget" if result.get("budget_seconds") else ""
    lines.append(
        f"Stages run: {ran}. Restored from the run cache: {restored}. The pipeline took {result['seconds']} s{budget}."
    )
    if result.get("untrusted"):
        cells = [[md.code(stage), md.text(reason)] for stage, reason in sorted(result["untrusted"].items())]
        lines += [
            "",
            "Reproduced here because the pull request's committed results for them are not the base branch's:",
            "",
            md.table(["stage", "why"], cells),
            "",
        ]
    for mismatch in result.get("mismatches", []):
        lines.append(f"- ❌ {md.text(mismatch['sentence'], limit=400)}")
    if result.get("stale_lock"):
        lines.append(
            "The committed `dvc.lock` did not match what CI reproduced: run `dvc repro` and commit its results, "
            "so that the branch holds the numbers reported here."
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Reproduce the pipeline and write train.json and train.md; exit 1 when the pipeline fails."""
    parser = argparse.ArgumentParser(prog="python3 -m mlgitops.train", description=__doc__)
    parser.add_argument("--push", choices=["true", "false"], default="false", help="push the run cache afterwards")
    parser.add_argument("--pull", choices=["true", "false"], default="true", help="pull the run cache first")
    parser.add_argument("--base-ref", default="", help="git revision whose committed results are trusted")
    parser.add_argument("--out-dir", default="reports/pr")
    args = parser.parse_args(argv)
    result = reproduce(push=args.push == "true", base_ref=args.base_ref, pull=args.pull == "true")
    gha.save_result(args.out_dir, "train", result, render(result))
    gha.set_output("trained", str(bool(result["ran"])).lower())
    gha.set_output("seconds", str(result["seconds"]))
    if not result["ok"]:
        gha.annotate("error", f"the pipeline failed: {result.get('error', '')}", title="train")
    for mismatch in result["mismatches"]:
        gha.annotate("error", mismatch["sentence"], file=mismatch["path"], title="train")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
