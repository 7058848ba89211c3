"""Put the pipeline's model into BentoML's model store under a tag derived from its content."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import bentoml

from .metadata import read_meta, sha256

MODEL_NAME = "{{ cookiecutter.project }}"


def tag_for(meta: dict[str, Any]) -> str:
    """The model's tag: the same bytes always get the same tag, so a Bento pins exactly one model."""
    return f"{MODEL_NAME}:{meta['sha256'][:20]}"


def register(model_file: Path, meta_file: Path) -> str:
    """Store the model (once) and return its tag; refuse a model file that its metadata does not describe."""
    meta = read_meta(meta_file)
    tag = tag_for(meta)
    try:
        bentoml.models.get(tag)
        return tag
    except bentoml.exceptions.NotFound:
        pass
    if not model_file.is_file():
        raise FileNotFoundError(f"{model_file} is missing: run `dvc repro` (or `dvc pull`) to get the model.")
    if sha256(model_file) != meta["sha256"]:
        raise ValueError(f"{model_file} does not match {meta_file}; run `dvc repro` so both come from one run.")
    with bentoml.models.create(
        tag,
        labels={"family": meta["family"]},
{%- if cookiecutter.task == "regression" %}
        metadata={"task": "regression", "bins": meta["bins"], "features": [f["name"] for f in meta["features"]]},
{%- else %}
        metadata={"classes": meta["classes"], "features": [f["name"] for f in meta["features"]]},
{%- endif %}
    ) as stored:
        shutil.copyfile(model_file, stored.path_of("model.joblib"))
        shutil.copyfile(meta_file, stored.path_of("model.json"))
    return tag
