"""Answer validation and post-generation steps for the template, kept out of the hook scripts so they can be tested."""

from __future__ import annotations

import csv
import importlib.util
import json
import keyword
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

# The kit's defaults live in its actions' package (the contract); the hooks read them from this template.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "actions"))
from mlgitops import contract

SLUG = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
PACKAGE = re.compile(r"^[a-z][a-z0-9_]*$")
EMAIL = re.compile(r"^[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
# Every parquet file starts and ends with these bytes, with its footer's length before the last four: anything
# shorter than both magics and that length cannot be one.
PARQUET_MAGIC = b"PAR1"
PARQUET_MIN_BYTES = 12
# A DVC remote the workflows can log in to: the scheme picks the cloud (AWS, Google Cloud, Azure).
DVC_REMOTE = re.compile(r"^(?:s3|gs|azure)://[a-z0-9][a-z0-9._-]{1,61}[a-z0-9](?:/[A-Za-z0-9._/-]*)?$")
ACTIONS_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}@[0-9a-f]{40}$")
# OWNER/NAME on GitHub, narrowed to what a container registry also takes once lowercased (ghcr.io/owner/name):
# letters and digits, joined in the owner by hyphens, in the name also by `.`, `_` or `__`.
GITHUB_REPOSITORY = re.compile(
    r"^(?P<owner>[A-Za-z0-9]+(?:-+[A-Za-z0-9]+)*)/(?P<name>[A-Za-z0-9]+(?:(?:[._]|__|-+)[A-Za-z0-9]+)*)$"
)
# Kubernetes names the kubernetes target derives from the project: the namespace `<project>-<environment>` is a
# DNS label of at most 63 characters.
ENVIRONMENTS = tuple(contract.DEFAULTS["release"]["environments"])
KUBERNETES_PROJECT_MAX = 63 - 1 - max(len(environment) for environment in ENVIRONMENTS)
# Words YAML 1.1 parsers (PyYAML, and Go's yaml.v2 behind Kubernetes tools) read as booleans or null, not names.
YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
CSV_MAX_BYTES = 100 * 1024 * 1024
# The generated project's data_check.min_rows, so an accepted CSV passes its own check.
CSV_MIN_ROWS = int(contract.DEFAULTS["data_check"]["min_rows"])
# Names a generated package must not take: they would shadow a library the project imports.
TAKEN_NAMES = {
    "bentoml",
    "dvc",
    "joblib",
    "numpy",
    "pandas",
    "pandera",
    "pydantic",
    "sklearn",
    "yaml",
    "src",
    "tests",
    "test",
}
SINGLE_LINE_FIELDS = ("project_name", "description", "author_name", "author_email", "target_column")
CHOICES = (
    "task",
    "python_version",
    "dataset",
    "data_backend",
    "model",
    "metric",
    "training_runner",
    "deploy_target",
    "license",
)
# What each task can be trained on, with, and judged by; `auto` (each question's first choice) is the first of
# these. cookiecutter.json resolves `auto` in its `__dataset`, `__model` and `__metric` answers, which the
# template reads (a hook cannot change the answers); a test holds the two equal.
FITS = {
    "classification": {
        "dataset": ("breast_cancer", "wine", "csv", "parquet"),
        "model": ("logistic_regression", "random_forest", "hist_gradient_boosting"),
        "metric": ("f1_macro", "accuracy", "balanced_accuracy", "roc_auc", "log_loss"),
    },
    "regression": {
        "dataset": ("diabetes", "csv", "parquet"),
        "model": ("ridge", "random_forest", "hist_gradient_boosting"),
        "metric": ("rmse", "mae", "r2"),
    },
}
AUTO = "auto"
# The strings pandas reads as missing by default (pandas' STR_NA_VALUES), listed here because the hook's
# Python may have no pandas; a test holds the two equal.
MISSING_VALUES = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
# Modules the first `dvc repro` needs in the interpreter that runs cookiecutter.
PIPELINE_MODULES = ("dvc", "sklearn", "pandas", "pandera", "joblib", "yaml")


# Set while `cruft update` renders the template to compare two versions of it (the Template update workflow
# sets it): the render is not a new project, so the hooks add nothing from outside the template (no CSV, no
# git repository, no pipeline run), which the project has already and an update must not touch.
UPDATE_VARIABLE = "MLGITOPS_TEMPLATE_UPDATE"
# cruft's record of the template a project came from, which `cruft update` reads.
CRUFT_FILE = ".cruft.json"
# Answers cookiecutter adds about this one run, not about the project.
RUN_ONLY_ANSWERS = ("_output_dir", "_repo_dir", "_checkout", "_cookiecutter", "_template", "_commit")
RESOLVED_ANSWERS = ("__dataset", "__model", "__metric")


def updating() -> bool:
    """True while the hooks run inside a template update's render."""
    return os.environ.get(UPDATE_VARIABLE) == "1"


class AnswerError(ValueError):
    """An answer that cannot produce a working project; the message is one sentence for the user."""


def task_of(answers: dict) -> str:
    """The project's task; projects made before the question existed are classifiers."""
    return answers.get("task", "classification")


def resolved(answers: dict, name: str) -> str:
    """The dataset, model or metric the project uses: the answer, or the task's first fit for `auto`."""
    value = answers.get(f"__{name}") or answers[name]
    return FITS[task_of(answers)][name][0] if value == AUTO else value


def validate_fit(answers: dict) -> None:
    """Check that the dataset, model and metric suit the task."""
    task = task_of(answers)
    for name in ("dataset", "model", "metric"):
        value = resolved(answers, name)
        fits = FITS[task][name]
        if value not in fits:
            other = next(t for t in FITS if value in FITS[t][name])
            raise AnswerError(
                f"{name} {value!r} is for {other}, but task is {task!r}: choose one of {', '.join(fits)} (or auto)."
            )


def validate(answers: dict) -> None:
    """Raise AnswerError with one clear sentence for the first answer that cannot work."""
    for field in SINGLE_LINE_FIELDS:
        value = answers[field]
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise AnswerError(f"{field} must be a single line without control characters, got {value!r}.")
        if len(value) > 200:
            raise AnswerError(f"{field} must be at most 200 characters, got {len(value)}.")
    if not answers["project_name"].strip():
        raise AnswerError("project_name must not be empty.")
    options = answers.get("_cookiecutter", {})
    for field in CHOICES:
        allowed = options.get(field)
        if isinstance(allowed, list) and answers[field] not in allowed:
            raise AnswerError(f"{field} must be one of {', '.join(allowed)}, got {answers[field]!r}.")
    project = answers["project"]
    if not SLUG.match(project) or len(project) > 64:
        raise AnswerError(
            "project must be a lowercase slug of letters, digits and single hyphens, starting with a letter, "
            f"got {project!r}."
        )
    package = answers["package"]
    if not PACKAGE.match(package) or len(package) > 64:
        raise AnswerError(
            f"package must be a lowercase Python identifier of letters, digits and underscores, got {package!r}."
        )
    if keyword.iskeyword(package) or package in sys.stdlib_module_names or package in TAKEN_NAMES:
        raise AnswerError(
            f"package {package!r} would shadow a Python keyword, standard module or dependency; pick another name."
        )
    if not EMAIL.match(answers["author_email"]):
        raise AnswerError(f"author_email must look like name@example.com, got {answers['author_email']!r}.")
    source = answers["actions_source"]
    if source != "vendored" and not ACTIONS_REPO.match(source):
        raise AnswerError(
            "actions_source must be 'vendored' or OWNER/REPO@SHA naming a copy of the actions you control "
            f"at a full 40-character commit SHA (a tag can be moved), got {source!r}."
        )
    validate_github_repository(answers["github_repository"])
    if answers["dvc_remote"] and not DVC_REMOTE.match(answers["dvc_remote"]):
        raise AnswerError(
            "dvc_remote must be empty or s3://BUCKET/PATH, gs://BUCKET/PATH or azure://CONTAINER/PATH, the bucket "
            "3-63 lowercase letters, digits, dots, hyphens or underscores and the path letters, digits and . _ - /, "
            f"got {answers['dvc_remote']!r}."
        )
    if answers["deploy_target"] == "kubernetes":
        validate_kubernetes_names(project)
    validate_fit(answers)
    dataset = resolved(answers, "dataset")
    if dataset == "csv":
        # An update renders on a machine without the CSV; the project holds its copy already.
        if not updating():
            path = Path(answers["csv_path"]).expanduser() if answers["csv_path"] else None
            validate_csv(path, answers["target_column"], float(answers["_test_size"]), task_of(answers))
    elif answers["csv_path"]:
        raise AnswerError(f"csv_path is set but dataset is {dataset!r}; choose dataset 'csv' or leave csv_path empty.")
    if dataset == "parquet":
        if not updating():
            path = Path(answers["parquet_path"]).expanduser() if answers["parquet_path"] else None
            validate_parquet(path, answers["target_column"])
    elif answers["parquet_path"]:
        raise AnswerError(
            f"parquet_path is set but dataset is {dataset!r}; choose dataset 'parquet' or leave parquet_path empty."
        )


def validate_github_repository(repository: str) -> None:
    """Check that the answer names a repository on GitHub as OWNER/NAME, usable as an image name too."""
    matched = GITHUB_REPOSITORY.match(repository)
    if not matched or len(matched["owner"]) > 39 or len(matched["name"]) > 100:
        raise AnswerError(
            "github_repository must be OWNER/NAME of the project's repository on GitHub: letters and digits, "
            f"joined by hyphens (and in the name also by '.' or '_'), got {repository!r}."
        )
    if matched["name"].lower().endswith(".git"):
        raise AnswerError(f"github_repository names the repository without '.git', got {repository!r}.")


def validate_kubernetes_names(project: str) -> None:
    """Check that the names the Kubernetes manifests derive from the project are valid there."""
    if len(project) > KUBERNETES_PROJECT_MAX:
        raise AnswerError(
            f"project must be at most {KUBERNETES_PROJECT_MAX} characters for deploy_target 'kubernetes', as its "
            f"namespaces {project}-<environment> must fit Kubernetes' 63, got {len(project)}."
        )
    if project in YAML_WORDS:
        raise AnswerError(
            f"project {project!r} reads as a boolean or null in Kubernetes manifests (YAML 1.1); pick another name."
        )


def validate_csv(path: Path | None, target: str, test_size: float, task: str = "classification") -> None:
    """Check that a user's CSV exists, is UTF-8, has a header with the target column and rows the split can use."""
    if path is None:
        raise AnswerError("dataset 'csv' needs csv_path, the path to your CSV file.")
    if not path.is_file():
        raise AnswerError(f"csv_path {str(path)!r} is not a readable file.")
    if path.stat().st_size > CSV_MAX_BYTES:
        raise AnswerError(
            f"csv_path {str(path)!r} is larger than {CSV_MAX_BYTES // 2**20} MiB; "
            "keep big data in a DVC remote, not in git."
        )
    if not target.strip():
        raise AnswerError("target_column must name the label column of your CSV.")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = [row for row in reader if row]
    except UnicodeDecodeError as err:
        raise AnswerError(f"csv_path {str(path)!r} is not UTF-8 text (byte {err.start} is invalid).") from None
    except csv.Error as err:
        raise AnswerError(f"csv_path {str(path)!r} is not valid CSV: {err}.") from None
    if not header:
        raise AnswerError(f"csv_path {str(path)!r} is empty; it needs a header row and data.")
    if len(header) < 2:
        raise AnswerError(
            f"csv_path {str(path)!r} has a single column; "
            "is it comma-separated with at least one feature and the target?"
        )
    if target not in header:
        raise AnswerError(f"target_column {target!r} is not in the CSV header ({', '.join(header[:10])}).")
    if len(set(header)) != len(header):
        raise AnswerError(f"csv_path {str(path)!r} has duplicate column names.")
    if len(rows) < CSV_MIN_ROWS:
        raise AnswerError(
            f"csv_path {str(path)!r} has {len(rows)} data rows; at least {CSV_MIN_ROWS} are needed to train and test."
        )
    if {len(row) for row in rows} != {len(header)}:
        raise AnswerError(
            f"csv_path {str(path)!r} has rows whose number of fields differs from the header's {len(header)}."
        )
    column = header.index(target)
    if task == "regression":
        validate_numbers([row[column] for row in rows], target)
    else:
        validate_labels([row[column] for row in rows], target, test_size)


def validate_parquet(path: Path | None, target: str) -> None:
    """Check that a user's parquet file exists, fits in git and is whole (its magic bytes at both ends).

    The hook runs on the standard library only, so the columns and the target are checked by the first
    `dvc repro`, which reads the file with pandas and pyarrow and says in one sentence what is wrong.
    """
    if path is None:
        raise AnswerError("dataset 'parquet' needs parquet_path, the path to your parquet file.")
    if not path.is_file():
        raise AnswerError(f"parquet_path {str(path)!r} is not a readable file.")
    size = path.stat().st_size
    if size > CSV_MAX_BYTES:
        raise AnswerError(
            f"parquet_path {str(path)!r} is larger than {CSV_MAX_BYTES // 2**20} MiB; "
            "keep big data in a DVC remote, not in git."
        )
    if not target.strip():
        raise AnswerError("target_column must name the label column of your parquet file.")
    with path.open("rb") as handle:
        head = handle.read(len(PARQUET_MAGIC))
        handle.seek(max(size - len(PARQUET_MAGIC), 0))
        tail = handle.read(len(PARQUET_MAGIC))
    # A parquet file starts and ends with PAR1, its footer (the schema) between the data and the end.
    if head != PARQUET_MAGIC:
        raise AnswerError(f"parquet_path {str(path)!r} is not a parquet file (it does not start with PAR1).")
    if size < PARQUET_MIN_BYTES or tail != PARQUET_MAGIC:
        raise AnswerError(
            f"parquet_path {str(path)!r} is cut short: a whole parquet file ends with PAR1 after its footer."
        )


def validate_labels(labels: list[str], target: str, test_size: float) -> None:
    """Check that the labels can be split into stratified train and test sets, as the prepare stage will."""
    missing = sum(label in MISSING_VALUES for label in labels)
    if missing:
        raise AnswerError(
            f"target_column {target!r} has no label in {missing} of its {len(labels)} rows; "
            "fill or drop those rows, as a classifier learns only from labelled ones."
        )
    counts = Counter(labels)
    if len(counts) < 2:
        raise AnswerError(
            f"target_column {target!r} has a single class ({labels[0]!r}); a classifier needs at least two."
        )
    rare = [label for label, count in counts.items() if count < 2]
    if rare:
        raise AnswerError(
            f"target_column {target!r} has class {rare[0]!r} in a single row; "
            "every class needs two rows, one to train on and one to test with."
        )
    # scikit-learn's train_test_split rounds the test set up; a stratified test set needs a row of every class.
    test_rows = math.ceil(test_size * len(labels))
    if test_rows < len(counts):
        raise AnswerError(
            f"target_column {target!r} has {len(counts)} classes but the {test_size:.0%} test split of "
            f"{len(labels)} rows holds {test_rows}; add rows or merge classes so each class can be tested."
        )


def validate_numbers(values: list[str], target: str) -> None:
    """Check that a regression target is a number in every row, and not the same number in all of them."""
    missing = sum(value.strip() in MISSING_VALUES for value in values)
    if missing:
        raise AnswerError(
            f"target_column {target!r} has no value in {missing} of its {len(values)} rows; "
            "fill or drop those rows, as a regressor learns only from rows with a target."
        )
    numbers = []
    for number, value in enumerate(values, start=1):
        try:
            numbers.append(float(value))
        except ValueError:
            raise AnswerError(
                f"target_column {target!r} holds {value[:40]!r} in data row {number}; a regression target is a number."
            ) from None
        if not math.isfinite(numbers[-1]):
            raise AnswerError(f"target_column {target!r} holds {value!r} in data row {number}; use finite numbers.")
    if len(set(numbers)) < 2:
        raise AnswerError(f"target_column {target!r} is {values[0]!r} in every row; there is nothing to learn.")


def pre_gen(answers: dict) -> int:
    """Hook entry point: 0 when the answers can work, 1 with the reason on stderr."""
    try:
        validate(answers)
    except AnswerError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def vendor_actions(repo_dir: Path, project_dir: Path) -> None:
    """Copy this kit's composite actions into the project so its workflows run with no outside code."""
    source = repo_dir / "actions"
    target = project_dir / ".github" / "actions"
    # docs.py (the actions' README tables) and kit_release.py (the kit's tags) are tools of the kit's own
    # repository, not of the project's CI.
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "docs.py", "kit_release.py")
    shutil.copytree(source, target, ignore=ignore, dirs_exist_ok=True)


def can_reproduce(answers: dict) -> bool:
    """True when this interpreter has what the first pipeline run of this project needs."""
    modules = [*PIPELINE_MODULES]
    if answers["data_backend"] == "polars":
        modules.append("polars")
    if resolved(answers, "dataset") == "parquet":
        modules.append("pyarrow")
    return all(importlib.util.find_spec(name) is not None for name in modules)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Run a command, surfacing its output only when it fails."""
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{result.stdout}{result.stderr}")


def reproduce_baseline(project_dir: Path) -> None:
    """Run the pipeline once (its `schema` stage declares the data schema), so the first commit holds a baseline."""
    env = dict(os.environ)
    # DVC stages call `python`: put this interpreter's folder first on PATH (a virtual environment, as
    # cookiecutter is usually run from one, has `python` there), with the package importable before any install.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project_dir / "src"), env.get("PYTHONPATH")]))
    env.setdefault("DVC_NO_ANALYTICS", "1")
    # The first run trains the model (seconds to minutes): say so, and how long it took.
    print(
        "Reproducing the baseline (dvc repro): the data check, training and evaluation ...", file=sys.stderr, flush=True
    )
    started = time.monotonic()
    run([sys.executable, "-m", "dvc", "repro"], project_dir, env)
    print(f"Baseline reproduced in {time.monotonic() - started:.0f} s.", file=sys.stderr, flush=True)


def git_commit_all(project_dir: Path, message: str, author_name: str, author_email: str) -> None:
    """Stage everything and commit, falling back to the template's author when git has no identity."""
    identity: list[str] = []
    for key, fallback in (("user.name", author_name), ("user.email", author_email)):
        found = subprocess.run(["git", "config", key], cwd=project_dir, capture_output=True, text=True, check=False)
        if not found.stdout.strip():
            identity += ["-c", f"{key}={fallback}"]
    run(["git", "add", "--all"], project_dir)
    run(["git", *identity, "commit", "--quiet", "--no-verify", "-m", message], project_dir)


# Printed when cookiecutter runs from a Python without the pipeline's packages, as pipx and uvx install it.
NO_BASELINE_NOTE = """\
note: this Python lacks the pipeline's packages, so the first commit holds no baseline.
In the project, run `pip install -e '.[dev]'` and `dvc repro` (or `make repro`, which does both in .venv),
review the `data/schema.yaml` it declares from the data, and commit what it writes.
Until `main` holds results, pull requests are compared with a baseline CI reproduces from their base commit."""


# Printed when the template is not a git checkout, so there is no commit to record for later updates.
NO_TEMPLATE_RECORD_NOTE = """\
note: the template is not a git checkout, so the project records no template version (.cruft.json) and the
Template update workflow cannot update it. To enable it, run `cruft link <template's git URL>` in the project."""


def first_run(answers: dict, project_dir: Path) -> bool:
    """Reproduce the baseline when this Python can; say why not otherwise. True when a baseline exists."""
    if not can_reproduce(answers):
        print(NO_BASELINE_NOTE, file=sys.stderr)
        return False
    try:
        reproduce_baseline(project_dir)
    except RuntimeError as err:
        # Keep the project: a failed first run is fixed in the project, not by answering again.
        print(f"warning: the first pipeline run failed, so there is no baseline yet.\n{err}", file=sys.stderr)
        return False
    return True


def drop_unused(answers: dict, project_dir: Path) -> None:
    """Remove the folders the answers do not use: cookiecutter skips a file whose name renders empty, not a folder."""
    if answers["deploy_target"] != "kubernetes":
        shutil.rmtree(project_dir / "deploy", ignore_errors=True)


def git_output(args: list[str], cwd: Path) -> str | None:
    """A git command's output, or None when it fails (not a repository, no remote)."""
    found = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else None


def template_record(answers: dict, template_dir: Path) -> dict | None:
    """What `cruft update` needs to update the project later, in cruft's format: where the template lives, the
    commit it was rendered from and the answers. None when the template is not a git checkout (a zip archive)."""
    top = git_output(["rev-parse", "--show-toplevel"], template_dir)
    commit = git_output(["rev-parse", "HEAD"], template_dir)
    if not top or not commit or Path(top).resolve() != template_dir.resolve():
        return None
    # A template cookiecutter cloned (gh:OWNER/REPO) has its remote as origin; a local checkout, maybe none.
    address = git_output(["remote", "get-url", "origin"], template_dir) or str(template_dir)
    # The resolved `auto` answers are left out, so an update derives them again from the answers they follow.
    context = {key: value for key, value in answers.items() if key not in RUN_ONLY_ANSWERS + RESOLVED_ANSWERS}
    context |= {"_template": address, "_commit": commit}
    return {
        "template": address,
        "commit": commit,
        "checkout": None,
        "context": {"cookiecutter": context},
        "directory": None,
    }


def post_gen(answers: dict, project_dir: Path, template_dir: Path) -> int:
    """Hook entry point: drop unused files, bring in the data and actions, init git, reproduce the baseline, commit."""
    drop_unused(answers, project_dir)
    if updating():
        # Only what every render of this version has: the vendored actions belong to the template's files.
        if answers["actions_source"] == "vendored":
            vendor_actions(template_dir, project_dir)
        return 0
    if resolved(answers, "dataset") in ("csv", "parquet"):
        kind = resolved(answers, "dataset")
        target = project_dir / "data" / "raw" / f"dataset.{kind}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(answers[f"{kind}_path"]).expanduser(), target)
    if answers["actions_source"] == "vendored":
        vendor_actions(template_dir, project_dir)
    if shutil.which("git") is None:
        print(
            "warning: git is not installed; run `git init -b main`, `make repro` and commit yourself.", file=sys.stderr
        )
        return 0
    run(["git", "init", "--quiet", "--initial-branch=main"], project_dir)
    record = template_record(answers, template_dir)
    if record is None:
        print(NO_TEMPLATE_RECORD_NOTE, file=sys.stderr)
    else:
        (project_dir / CRUFT_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    reproduced = answers.get("_reproduce_baseline", True) and first_run(answers, project_dir)
    message = "Create project from template" + (" with a reproduced baseline" if reproduced else "")
    git_commit_all(project_dir, message, answers["author_name"], answers["author_email"])
    return 0
