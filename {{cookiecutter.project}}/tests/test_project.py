"""The project's files agree with each other."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_bento_requirements_are_pinned_like_the_project():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    serve = [
        line.strip()
        for line in (ROOT / "requirements" / "serve.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert set(serve) <= set(project)


def test_report_knows_the_direction_of_every_metric_the_evaluate_stage_writes():
    from {{ cookiecutter.package }}.evaluate import METRICS

    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    lower = sorted(name for name, metric in METRICS.items() if not metric.higher_is_better)
    assert sorted(params["mlgitops"]["report"]["lower_is_better"]) == lower


def test_pre_commit_hooks_pin_the_versions_pyproject_pins():
    # Dependabot moves the pins in pyproject.toml but not a hook's additional_dependencies: a bump
    # fails here until the hook follows, so the editor and the commit hook never disagree.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    pinned = dict(requirement.split("==") for requirement in extras["dev"])
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            for requirement in hook.get("additional_dependencies", []):
                name, version = requirement.split("==")
                if name in pinned:
                    assert version == pinned[name], (
                        f"hook {hook['id']} pins {name}=={version} but pyproject.toml pins {name}=={pinned[name]}; "
                        "set the hook's additional_dependencies to the pyproject.toml version"
                    )


def test_the_bento_carries_the_model_metadata_the_contract_names():
    from {{ cookiecutter.package }}.params import load_params
    from {{ cookiecutter.package }}.service import MODEL_META

    declared = load_params(ROOT / "params.yaml").paths.model_meta
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text(encoding="utf-8"))
    assert declared == MODEL_META and str(declared) in bentofile["include"]
