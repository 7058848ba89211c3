{%- set regression = cookiecutter.task == "regression" -%}
"""The model's metadata file: its format, the model's digest and the reader, shared by training and serving."""

from __future__ import annotations

{% if regression -%}
import bisect
{% endif -%}
import hashlib
import json
{%- if regression %}
from collections.abc import Sequence
{%- endif %}
from pathlib import Path
from typing import Any

# The layout of model.json; readers refuse a newer one instead of misreading it. Format 2 adds the task,
# and a regressor's bins in place of classes.
META_FORMAT = 2


def sha256(path: Path) -> str:
    """Content digest of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


{% if regression -%}
def bin_of(value: float, edges: Sequence[float]) -> str:
    """The bin a regressor's answer falls in: q1 up to the first edge, ..., q10 above the last (deciles)."""
    return f"q{bisect.bisect_left(edges, value) + 1}"


def bin_names(edges: Sequence[float]) -> list[str]:
    """Every bin's name, in order."""
    return [f"q{index}" for index in range(1, len(edges) + 2)]


{% endif -%}
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
