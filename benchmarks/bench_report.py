"""Benchmark: the model report of a large project, its seconds and its size against GitHub's comment limit.

Builds a throwaway git repository whose main branch holds results and whose pull request branch changes
metrics and parameters, with many metrics and features (and a data-check section with a drift row per
feature), then times the kit's model-report in this process: collect, decide, render, and its whole
command. Run: `.venv/bin/python benchmarks/bench_report.py [--metrics 100] [--features 200]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from harness import ACTIONS, table, timed

sys.path.insert(0, str(ACTIONS))

from mlgitops import data_check, gha, model_report

# GitHub refuses an issue or pull request comment longer than this many characters.
COMMENT_LIMIT = 65_536


@contextlib.contextmanager
def inside(path: Path) -> Iterator[None]:
    """Run the block with `path` as the working directory, as the action runs in the project."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def git(repo: Path, *args: str) -> None:
    command = ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com", *args]
    subprocess.run(command, cwd=repo, check=True, capture_output=True)


def write(repo: Path, name: str, text: str) -> None:
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text(text, encoding="utf-8")


def column_profile(i: int, shift: float) -> dict:
    """A numeric column's profile entry; `shift` moves its quantiles, in standard deviations."""
    quantiles = [round(i + shift + (q - 10) / 5, 4) for q in range(21)]
    return {"missing": 0, "kind": "numeric", "mean": i + shift, "std": 1.0, "quantiles": quantiles}


def repository(root: Path, metrics: int, features: int) -> Path:
    """A project on main with results, and a pull request branch that changes them."""
    repo = root / "project"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    names = [f"feature_{i:03d}" for i in range(features)]
    params = {
        "data": {"source": "csv", "target": "label", "test_size": 0.25, "seed": 42},
        "model": {"family": "random_forest", **{f"h{i}": i for i in range(20)}},
        "evaluate": {"metric": "metric_000"},
    }
    write(repo, "params.yaml", yaml.safe_dump(params, sort_keys=False))
    write(repo, "metrics.json", json.dumps({f"metric_{i:03d}": round(0.5 + i / 1000, 6) for i in range(metrics)}))
    write(repo, "dvc.lock", "schema: '2.0'\nstages: {}\n")
    schema = {"schema_type": "dataframe", "columns": {name: {"dtype": "float64"} for name in names}}
    write(repo, "data/schema.yaml", yaml.safe_dump(schema, sort_keys=False))
    git(repo, "add", "--all")
    git(repo, "commit", "-qm", "Baseline")
    git(repo, "checkout", "-qb", "tune")
    params["model"] |= {f"h{i}": i + 1 for i in range(0, 20, 2)}
    write(repo, "params.yaml", yaml.safe_dump(params, sort_keys=False))
    # Every third metric regresses beyond the tolerance, the others improve a little.
    head = {f"metric_{i:03d}": round(0.5 + i / 1000 + (-0.05 if i % 3 == 0 else 0.001), 6) for i in range(metrics)}
    write(repo, "metrics.json", json.dumps(head))
    confusion = ["actual,predicted", *[f"{'yes' if i % 3 else 'no'},{'yes' if i % 4 else 'no'}" for i in range(2000)]]
    write(repo, "plots/confusion.csv", "\n".join(confusion) + "\n")
    ranked = ["feature,importance", *[f"{name},{1 / (i + 1):.6f}" for i, name in enumerate(names)]]
    write(repo, "plots/importance.csv", "\n".join(ranked) + "\n")
    git(repo, "commit", "-qam", "Tune")
    # save_result echoes the sections to stdout outside a runner; they are not this benchmark's output.
    with contextlib.redirect_stdout(io.StringIO()):
        sections(repo / "reports" / "pr", names)
    return repo


def sections(out: Path, names: list[str]) -> None:
    """The data-check and train sections earlier steps leave, with a drift row per feature."""
    rules = data_check.settings(Path("/nonexistent"))
    base = {"rows": 10_000, "duplicates": 0, "target": "label", "columns": {}}
    head = {"rows": 10_000, "duplicates": 0, "target": "label", "columns": {}}
    for i, name in enumerate(names):
        base["columns"][name] = column_profile(i, 0.0)
        head["columns"][name] = column_profile(i, 0.5 if i % 5 == 0 else 0.0)
    counts = {"yes": 7000, "no": 3000}
    for profile in (base, head):
        profile["columns"]["label"] = {"missing": 0, "kind": "categorical", "counts": counts}
    findings = data_check.quality(head, rules) + data_check.drift(base, head, rules["drift"])
    result = {
        "passed": all(f.passed for f in findings),
        "rows": head["rows"],
        "base": "main",
        "base_source": "committed",
        "findings": [f.__dict__ for f in findings],
    }
    gha.save_result(str(out), "data_check", result, data_check.render(result))
    train = {"ok": True, "mismatches": []}
    gha.save_result(str(out), "train", train, "### Training\n\nReproduced every stage; nothing was stale.")


def arguments(out: Path) -> argparse.Namespace:
    """model-report's options as its workflow passes them."""
    return argparse.Namespace(
        base_ref="main",
        head_label="tune",
        params="params.yaml",
        metrics="",
        confusion="",
        importance="",
        schema="",
        sections="reports/pr",
        out_dir=str(out),
        require_sections=True,
        pull_request="7",
        head_sha="",
    )


def main(argv: list[str] | None = None) -> int:
    """Print seconds per step and the report's size; goals are printed beside the figures, never asserted."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics", type=int, default=100)
    parser.add_argument("--features", type=int, default=200)
    args = parser.parse_args(argv)
    print(f"Model report: {args.metrics} metrics, {args.features} features, on a generated git repository")
    with tempfile.TemporaryDirectory() as tmp:
        repo = repository(Path(tmp), args.metrics, args.features)
        # Outputs and summaries would go to the runner's files; here they are not wanted on stdout.
        quiet = {k: os.environ.pop(k) for k in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY") if k in os.environ}
        try:
            with inside(repo), contextlib.redirect_stdout(io.StringIO()):
                options = arguments(Path(tmp) / "out")
                inputs, collected = timed(lambda: model_report.collect(options))
                decision, decided = timed(lambda: model_report.decide(inputs, options))
                report, rendered = timed(lambda: model_report.render(inputs, decision, options))
                code, whole = timed(
                    lambda: model_report.main(["--base-ref", "main", "--head-label", "tune", "--require-sections"])
                )
        finally:
            os.environ.update(quiet)
        written = (repo / "reports" / "pr" / "model_report.md").read_text(encoding="utf-8")
    if written != report:
        raise RuntimeError("the command wrote a different report than its steps rendered")
    rows = [
        ["collect (git show, params, metrics)", f"{collected:.3f}"],
        ["decide (compare, gate)", f"{decided:.3f}"],
        ["render (markdown, git blame of top features)", f"{rendered:.3f}"],
        ["whole command (model_report.main, writes files)", f"{whole:.3f}"],
    ]
    print(table(["step", "seconds"], rows))
    share = len(report) / COMMENT_LIMIT
    fits = "met" if len(report) <= COMMENT_LIMIT else "MISSED"
    print(
        f"report: {len(report):,} characters, {share:.0%} of GitHub's {COMMENT_LIMIT:,}-character comment limit "
        f"(goal <= 100%: {fits}); gate {'passed' if code == 0 else 'failed'}, as the generated results intend"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
