{%- set regression = cookiecutter.task == "regression" -%}
"""Load the source data and split it into the train and test sets the pipeline versions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .params import DataParams
{% if regression %}
EMBEDDED = ("diabetes",)
{%- else %}
EMBEDDED = ("breast_cancer", "wine")
{%- endif %}


class DataError(ValueError):
    """Data that cannot be used; the message says what is wrong and where."""


def load_embedded(name: str, target: str) -> pd.DataFrame:
{%- if regression %}
    """Load a dataset that ships inside scikit-learn, its target a number."""
{%- else %}
    """Load a dataset that ships inside scikit-learn, with readable class names as labels."""
{%- endif %}
    from sklearn import datasets

    if name not in EMBEDDED:
        raise DataError(f"unknown embedded dataset {name!r}; use one of {', '.join(EMBEDDED)}, 'csv' or 'parquet'.")
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    frame = bunch.data.copy()
{%- if regression %}
    frame[target] = bunch.target.astype(float)
{%- else %}
    frame[target] = [str(bunch.target_names[code]) for code in bunch.target]
{%- endif %}
    return frame


def check_size(path: Path, max_megabytes: float) -> None:
    """Refuse a missing file, or one over the size guard, before reading it."""
    if not path.is_file():
        raise DataError(f"{path} does not exist.")
    megabytes = path.stat().st_size / 2**20
    if megabytes > max_megabytes:
        raise DataError(
            f"{path} is {megabytes:.0f} MiB, over the {max_megabytes:g} MiB guard (data.max_megabytes in params.yaml)."
        )


def checked(frame: pd.DataFrame, path: Path, target: str) -> pd.DataFrame:
    """The frame, once it has features, the target column, rows, and no column without any value."""
    if frame.shape[1] < 2:
        raise DataError(f"{path} has a single column; it needs at least one feature and the target.")
    if target not in frame.columns:
        raise DataError(f"{path} has no target column {target!r}.")
    if frame.empty:
        raise DataError(f"{path} has column names but no rows.")
    empty = [str(name) for name in frame.columns if frame[name].isna().all()]
    if empty:
        raise DataError(f"column {empty[0]!r} of {path} has no values at all; drop it or fill it.")
    return frame


def read_csv(path: Path, target: str, max_megabytes: float = 100.0) -> pd.DataFrame:
    """Read a user CSV, turning every way it can be unusable into one clear DataError."""
    check_size(path, max_megabytes)
    try:
        frame = pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text (byte {err.start} is invalid).") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty.") from None
    except pd.errors.ParserError as err:
        raise DataError(f"{path} is not valid CSV: {err}") from None
    if frame.shape[1] < 2:
        raise DataError(f"{path} has a single column; is it comma-separated?")
    return checked(frame, path, target)


def read_parquet(path: Path, target: str, max_megabytes: float = 100.0) -> pd.DataFrame:
    """Read a user parquet file (pandas with pyarrow), turning every way it can be unusable into one DataError."""
    check_size(path, max_megabytes)
    try:
        import pyarrow as pa
    except ImportError:
        raise DataError(f"reading {path} needs pyarrow: `pip install pyarrow`.") from None
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as err:  # a damaged footer, bad data, an unsupported codec
        reason = " ".join(str(err).split())[:200]
        raise DataError(f"{path} is not a readable parquet file: {reason}") from None
    # pandas stores a named index (an id, say) as columns with a note to restore them as the index: keep them columns.
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    return checked(frame, path, target)


def load_source(params: DataParams) -> pd.DataFrame:
    """Load the configured data source."""
    if params.source in ("csv", "parquet"):
        if not params.path:
            raise DataError(f"params.yaml sets data.source to {params.source!r} but gives no data.path.")
        read = read_csv if params.source == "csv" else read_parquet
        return read(Path(params.path), params.target, params.max_megabytes)
    return load_embedded(params.source, params.target)

{% if regression %}
def split(frame: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and test sets at random (a numeric target is not stratified)."""
    # Here, not at the top: the stages that only read data (schema, validate) need no scikit-learn.
    from sklearn.model_selection import train_test_split

    values = frame[params.target]
    if values.isna().any():
        raise DataError(f"target column {params.target!r} has {int(values.isna().sum())} missing values.")
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        text = values[pd.to_numeric(values, errors="coerce").isna()]
        example = f" ({text.iloc[0]!r})" if len(text) else ""
        raise DataError(
            f"target column {params.target!r} holds values that are not numbers{example}; a regression predicts one."
        )
    if values.nunique() < 2:
        raise DataError(f"target column {params.target!r} is {float(values.iloc[0])!r} in every row; nothing to learn.")
    train, test = train_test_split(frame, test_size=params.test_size, random_state=params.seed)
    return train, test
{%- else %}
def split(frame: pd.DataFrame, params: DataParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and test sets, stratified by the target so every class is in both."""
    # Here, not at the top: the stages that only read data (schema, validate) need no scikit-learn.
    from sklearn.model_selection import train_test_split

    labels = frame[params.target]
    if labels.isna().any():
        raise DataError(f"target column {params.target!r} has {int(labels.isna().sum())} missing labels.")
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DataError(f"target column {params.target!r} has a single class ({counts.index[0]!r}); nothing to learn.")
    if counts.min() < 2:
        raise DataError(f"class {counts.idxmin()!r} of {params.target!r} has one row; every class needs at least two.")
    train, test = train_test_split(frame, test_size=params.test_size, random_state=params.seed, stratify=labels)
    return train, test
{%- endif %}


def prepare(params: DataParams, train_path: Path, test_path: Path) -> tuple[Path, Path]:
    """Load, split and write the train and test CSVs (whatever the source's format, the splits are CSV)."""
    train, test = split(load_source(params), params)
    for path, part in ((train_path, train), (test_path, test)):
        path.parent.mkdir(parents=True, exist_ok=True)
        part.to_csv(path, index=False)
    return train_path, test_path
