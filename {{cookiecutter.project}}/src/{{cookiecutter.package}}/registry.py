"""Put the pipeline's model into BentoML's model store under a tag derived from its content."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import bentoml

from .train import META_FILE, META_FORMAT, MODEL_FILE, sha256

MODEL_NAME = "{{ cookiecutter.project }}"


def read_meta(path: Path = META_FILE) -> dict[str, Any]:
    """The metadata the train stage wrote next to the model."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `dvc repro` to train the model first.")
    meta = json.loads(path.read_text(encoding="utf-8"))
    # model.json files written before the format was recorded have the layout of format 1.
    found = meta.get("format", 1)
    if not isinstance(found, int) or found > META_FORMAT:
        raise ValueError(f"{path} has format {found!r}, but this code reads formats up to {META_FORMAT}; update it.")
    return meta


def tag_for(meta: dict[str, Any]) -> str:
    """The model's tag: the same bytes always get the same tag, so a Bento pins exactly one model."""
    return f"{MODEL_NAME}:{meta['sha256'][:20]}"


def register(model_file: Path = MODEL_FILE, meta_file: Path = META_FILE) -> str:
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
        metadata={"classes": meta["classes"], "features": [f["name"] for f in meta["features"]]},
    ) as stored:
        shutil.copyfile(model_file, stored.path_of("model.joblib"))
        shutil.copyfile(meta_file, stored.path_of("model.json"))
    return tag
