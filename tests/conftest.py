"""Fixtures shared by the template's tests: default answers, a user CSV, and a fast-bake helper."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture
def churn_csv(tmp_path: Path) -> Path:
    return write_churn_csv(tmp_path / "churn.csv")


@pytest.fixture
def answers() -> dict:
    """The answers cookiecutter derives from cookiecutter.json when nothing is typed."""
    defaults = {k: (v[0] if isinstance(v, list) else v) for k, v in COOKIECUTTER_JSON.items() if not k.startswith("__")}
    defaults["project"] = "cancer-classifier"
    defaults["package"] = "cancer_classifier"
    defaults["_cookiecutter"] = COOKIECUTTER_JSON
    defaults["_repo_dir"] = str(ROOT)
    return defaults


@pytest.fixture
def fast_bake(cookies):
    """Bake without the first pipeline run (seconds, not a minute), failing loudly if the bake fails."""

    def bake(**answers):
        result = cookies.bake(extra_context={"_reproduce_baseline": False, **answers})
        assert result.exception is None, result.exception
        assert result.exit_code == 0
        return result.project_path

    return bake


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory) -> Path:
    """A git repository of the template as this working tree holds it: what a user clones or downloads."""
    repo = tmp_path_factory.mktemp("template") / "mlgitops"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        # Deleted files are still listed, and a symlinked .venv is not part of the template.
        if source.is_file() and not source.is_symlink():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([*git, "add", "--all"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "Template"], cwd=repo, check=True)
    return repo


@pytest.fixture(scope="session")
def cookiecutter_only_python(tmp_path_factory) -> Path:
    """A Python with cookiecutter and none of the pipeline's packages, as pipx or uvx install it."""
    lock = (ROOT / "requirements" / "dev.txt").read_text(encoding="utf-8").splitlines()
    pin = next(line for line in lock if line.startswith("cookiecutter=="))
    venv = tmp_path_factory.mktemp("pipx") / "venv"
    uv = str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    subprocess.run([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), pin], check=True)
    return venv / "bin" / "python"
