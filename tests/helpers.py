"""Helpers the tests share: the template's paths and answers, the bake option matrix, and generated datasets."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from bake import AUTO, FITS

ROOT = Path(__file__).resolve().parents[1]


COOKIECUTTER_JSON = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))


def write_churn_csv(path: Path, rows: int = 200) -> Path:
    """A small user dataset with numeric and categorical features and a learnable yes/no label."""
    rng = random.Random(7)
    lines = ["tenure_months,monthly_fee,plan,region,churned"]
    for _ in range(rows):
        tenure = rng.randint(1, 72)
        fee = round(rng.uniform(10, 120), 2)
        plan = rng.choice(["basic", "plus", "pro"])
        region = rng.choice(["north", "south", "east", "west"])
        risk = (fee / 120) - (tenure / 72) + (0.3 if plan == "basic" else 0) + rng.gauss(0, 0.2)
        lines.append(f"{tenure},{fee},{plan},{region},{'yes' if risk > 0.1 else 'no'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_prices_csv(path: Path, rows: int = 200) -> Path:
    """A small user dataset for a regression: numeric and categorical features and a learnable price."""
    rng = random.Random(5)
    lines = ["rooms,area_m2,district,garden,price"]
    for _ in range(rows):
        rooms = rng.randint(1, 6)
        area = round(rng.uniform(25, 180), 1)
        district = rng.choice(["centre", "harbour", "hills", "outskirts"])
        garden = rng.choice(["yes", "no"])
        premium = {"centre": 900, "harbour": 600, "hills": 400, "outskirts": 0}[district]
        price = 50_000 + area * (2_000 + premium) + rooms * 8_000 + rng.gauss(0, 20_000)
        lines.append(f"{rooms},{area},{district},{garden},{price:.0f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_penguins_csv(path: Path, rows: int = 200) -> Path:
    """A dataset shaped like palmer penguins: string categories, and NA in some numeric and categorical columns."""
    rng = random.Random(11)
    # species: (islands it lives on, mean bill length, bill depth, flipper length, body mass)
    species = {
        "Adelie": (["Biscoe", "Dream", "Torgersen"], 38.8, 18.3, 190.0, 3700.0),
        "Chinstrap": (["Dream"], 48.8, 18.4, 196.0, 3733.0),
        "Gentoo": (["Biscoe"], 47.5, 15.0, 217.0, 5076.0),
    }
    lines = ["species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex"]
    for i in range(rows):
        name = list(species)[i % len(species)]
        islands, length, depth, flipper, mass = species[name]
        bill = [f"{rng.gauss(length, 2.5):.1f}", f"{rng.gauss(depth, 0.8):.1f}"]
        # Like the real data: a few birds were not measured, and more were not sexed.
        if i % 23 == 5:
            bill = ["NA", "NA"]
        sex = "NA" if i % 17 == 3 else rng.choice(["female", "male"])
        row = [name, rng.choice(islands), *bill, f"{rng.gauss(flipper, 6):.0f}", f"{rng.gauss(mass, 400):.0f}", sex]
        lines.append(",".join(row))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def copy_project(project: Path, folder: Path) -> Path:
    """A copy of a baked project as folder/<its name>: the same git and DVC repository, nothing shared with it."""
    return Path(shutil.copytree(project, folder / project.name, symlinks=True))


SHA = "0123456789abcdef0123456789abcdef01234567"


# The options that change which files exist; the others change only file contents. The datasets are a classifier's
# (a user's file is copied in); the regression entries below bring the regression task's.
FILE_OPTIONS = {
    "dataset": ["breast_cancer", "wine", "csv", "parquet"],
    "actions_source": ["vendored", f"my-org/ml-actions@{SHA}"],
    "license": ["MIT", "Proprietary"],
}


# A DVC remote on each cloud the workflows log in to, and none.
DVC_REMOTES = ["", "s3://ml-data/cancer", "gs://ml-data/cancer", "azure://ml-data/cancer"]

# deploy_target changes files too (the deploy manifests and the release workflows' jobs); it rotates through the
# combinations instead of multiplying them, and `local` meets both action sources.
CLASSIFIERS = [
    {
        "task": "classification",
        **dict(zip(FILE_OPTIONS, values, strict=True)),
        "deploy_target": COOKIECUTTER_JSON["deploy_target"][i % len(COOKIECUTTER_JSON["deploy_target"])],
        # The scale-out choices change workflow and module contents; each value rotates through the matrix in a
        # different rhythm, so each meets several deploy targets and datasets.
        "data_backend": COOKIECUTTER_JSON["data_backend"][(i + i // 4) % 2],
        "dvc_remote": DVC_REMOTES[(i + i // 4) % len(DVC_REMOTES)],
        "training_runner": COOKIECUTTER_JSON["training_runner"][i // 2 % len(COOKIECUTTER_JSON["training_runner"])],
    }
    for i, values in enumerate(itertools.product(*FILE_OPTIONS.values()))
]
# A regression project of each dataset kind (`auto`: the task's embedded default, diabetes), the other options
# rotating so each value meets the task.
REGRESSORS = [
    {
        "task": "regression",
        "dataset": dataset,
        "actions_source": FILE_OPTIONS["actions_source"][i % 2],
        "license": FILE_OPTIONS["license"][i // 2],
        "deploy_target": COOKIECUTTER_JSON["deploy_target"][i],
        "data_backend": COOKIECUTTER_JSON["data_backend"][i % 2],
        "dvc_remote": DVC_REMOTES[i],
        "training_runner": COOKIECUTTER_JSON["training_runner"][i],
    }
    for i, dataset in enumerate(["auto", "csv", "parquet"])
]
MATRIX = CLASSIFIERS + REGRESSORS


def covering_set(entries: list[dict], least: int) -> list[dict]:
    """Entries, in matrix order, until every option value the entries hold is in one of them and there are `least`:
    each time the entry that brings the most values not yet covered."""
    wanted = {(key, value) for entry in entries for key, value in entry.items()}
    chosen: list[dict] = []
    covered: set[tuple[str, str]] = set()
    while covered != wanted or len(chosen) < least:
        best = max((e for e in entries if e not in chosen), key=lambda e: len(set(e.items()) - covered))
        chosen.append(best)
        covered |= set(best.items())
    return chosen


# The projects whose own gates run (pytest, ruff, pre-commit, dvc repro, bentoml build): a covering set of the
# matrix, every option value in at least one, with every model family and metric of each task. The regression
# task's first keeps `auto` for all three, the project `task=regression` alone makes.
CLASSIFIER_FITS = FITS["classification"]
GATES = [
    {**entry, "model": CLASSIFIER_FITS["model"][i % 3], "metric": CLASSIFIER_FITS["metric"][i % 5]}
    for i, entry in enumerate(covering_set(CLASSIFIERS, least=len(CLASSIFIER_FITS["metric"])))
] + [
    {**entry, "model": model, "metric": metric}
    for entry, model, metric in zip(
        REGRESSORS, [AUTO, *FITS["regression"]["model"][1:]], [AUTO, *FITS["regression"]["metric"][1:]], strict=True
    )
]


def matrix_id(options: dict) -> str:
    def short(value: str) -> str:
        if value.startswith("my-org"):
            return "remote"
        return value.split("://")[0] if "://" in value else value or "none"

    return "-".join(short(v) for v in options.values())


def write_cookiecutter_config(folder: Path, github: Path | None = None) -> Path:
    """A cookiecutter config that keeps clones and replays in folder, not the home folder; gh: may name github."""
    config: dict = {"cookiecutters_dir": str(folder / "clones"), "replay_dir": str(folder / "replay")}
    if github is not None:
        config["abbreviations"] = {"gh": f"{github.as_uri()}/{{0}}.git"}
    path = folder / "cookiecutter.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def run_cookiecutter(
    template: str, cwd: Path, config: Path, *answers: str, python: str = sys.executable
) -> subprocess.CompletedProcess[str]:
    """`cookiecutter --no-input TEMPLATE --output-dir out ANSWERS...`, typed in cwd."""
    command = [python, "-m", "cookiecutter", "--no-input", "--config-file", str(config), template]
    command += ["--output-dir", "out", *answers]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=900)


def options_context(options: dict, csv_path: Path) -> dict:
    """The answers of a matrix entry, with the user's file (the CSV, or the same data as parquet beside it): the
    churn CSV at csv_path for a classifier, a CSV of prices written beside it for a regression."""
    context = dict(options)
    target = "churned"
    if options.get("task") == "regression" and options["dataset"] in ("csv", "parquet"):
        prices = csv_path.with_name("prices.csv")
        csv_path, target = prices if prices.exists() else write_prices_csv(prices), "price"
    if options["dataset"] == "csv":
        context |= {"csv_path": str(csv_path), "target_column": target}
    if options["dataset"] == "parquet":
        parquet = csv_path.with_suffix(".parquet")
        if not parquet.exists():
            import pandas as pd  # only the parquet entries need it

            pd.read_csv(csv_path).to_parquet(parquet, index=False)
        context |= {"parquet_path": str(parquet), "target_column": target}
    return context


HOSTILE_BUT_VALID = [
    "Quote \"double\" and 'single'",
    "Back\\slash \\n not a newline",
    "Ünïcødé 名前 🚀",
    "{{ 7 * 7 }} {% if true %}x{% endif %}",
    "$(rm -rf /) `id` ; echo pwned",
    "\"\"\" ''' __import__('os').system('id')",
    "<script>alert(1)</script> | table | cell",
]


def write_labels_csv(path, labels):
    """A CSV with one feature and the given labels in the `churned` column."""
    path.write_text("a,churned\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)), encoding="utf-8")
    return path


# Labels a stratified train/test split cannot use, and what the refusal says.
UNSPLITTABLE_LABELS = [
    (["yes", "no"] * 30 + ["", "NA", "null"], "target_column 'churned' has no label in 3 of its 63 rows"),
    (["yes"] * 60, "target_column 'churned' has a single class ('yes')"),
    (["yes", "no"] * 30 + ["maybe"], "target_column 'churned' has class 'maybe' in a single row"),
    ([f"c{i % 20}" for i in range(60)], "has 20 classes but the 25% test split of 60 rows holds 15"),
]


UNSPLITTABLE_IDS = ["missing-labels", "one-class", "class-of-one-row", "more-classes-than-test-rows"]
