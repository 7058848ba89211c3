"""Shared fixtures: a small, real dataset of the project's kind, in a throwaway working directory."""

from pathlib import Path

import pandas as pd
import pytest

from {{ cookiecutter.package }} import data, schema
from {{ cookiecutter.package }}.params import DataParams, ModelParams, Paths, load_params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run the test in an empty directory, since the pipeline writes relative to the working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path

{% if cookiecutter.task == "regression" %}
@pytest.fixture
def frame() -> pd.DataFrame:
    """A numeric and a categorical feature with a learnable numeric target."""
    rows = 80
    return pd.DataFrame(
        {
            "size": [float(i % 10) for i in range(rows)],
            "colour": ["red" if i % 2 else "blue" for i in range(rows)],
            "label": [3.0 * (i % 10) + (5.0 if i % 2 else 0.0) + (i % 3) / 10 for i in range(rows)],
        }
    )
{%- else %}
@pytest.fixture
def frame() -> pd.DataFrame:
    """A numeric and a categorical feature with a learnable label."""
    rows = 80
    return pd.DataFrame(
        {
            "size": [float(i % 10) for i in range(rows)],
            "colour": ["red" if i % 2 else "blue" for i in range(rows)],
            "label": ["big" if i % 10 >= 5 else "small" for i in range(rows)],
        }
    )
{%- endif %}


@pytest.fixture
def declared(frame):
    """The schema the project would declare for the frame."""
    return schema.infer(frame, "label")


@pytest.fixture
def data_params() -> DataParams:
    return DataParams(source="csv", path="data.csv", target="label", test_size=0.25, seed=0)


@pytest.fixture
def model_params() -> ModelParams:
    return ModelParams(family="{{ cookiecutter.__model }}")


@pytest.fixture
def paths(workdir) -> Paths:
    """The project's own paths from params.yaml, relative to the test's working directory."""
    return load_params(ROOT / "params.yaml").paths


@pytest.fixture
def prepared(workdir, frame, data_params, paths):
    """The frame written as the user CSV and split the way the prepare stage does it."""
    frame.to_csv(workdir / "data.csv", index=False)
    return data.prepare(data_params, paths.train, paths.test)
