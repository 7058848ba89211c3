"""The model's metadata file: its format, the model's digest and the reader, shared by training and serving."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# The layout of model.json; readers refuse a newer one instead of misreading it.
META_FORMAT = 1


def sha256(path: Path) -> str:
    """Content digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata the train stage wrote next to the model, refused when its format is newer than this code."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `dvc repro` to train the model first.")
    meta = json.loads(path.read_text(encoding="utf-8"))
    # model.json files written before the format was recorded have the layout of format 1.
    found = meta.get("format", 1)
    if not isinstance(found, int) or isinstance(found, bool) or found < 1:
        raise ValueError(f"{path} has format {found!r}, which is not a format version; train the model again.")
    if found > META_FORMAT:
        raise ValueError(f"{path} has format {found!r}, but this code reads formats up to {META_FORMAT}; update it.")
    return meta
