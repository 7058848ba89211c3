{%- set regression = cookiecutter.task == "regression" -%}
"""Loading and splitting: the embedded dataset loads offline, bad CSVs fail with one clear message."""

import pytest

from {{ cookiecutter.package }} import data

{% if regression %}
def test_embedded_datasets_load_offline_with_a_numeric_target():
    for name in data.EMBEDDED:
        frame = data.load_embedded(name, "target")
        assert len(frame) > 100
        assert frame["target"].dtype == float and frame["target"].nunique() > 100


def test_split_is_random_and_reproducible(frame, data_params):
    train_a, test_a = data.split(frame, data_params)
    train_b, _ = data.split(frame, data_params)
    assert train_a.equals(train_b)
    assert len(test_a) == 20 and frame["label"].dtype == float


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (lambda n: [1.5, float("nan")] * (n // 2), "has 40 missing values"),
        (lambda n: ["1.5", "tall"] * (n // 2), "holds values that are not numbers ('tall')"),
        (lambda n: [2.0] * n, "is 2.0 in every row; nothing to learn"),
    ],
    ids=["missing", "text", "constant"],
)
def test_a_target_a_regression_cannot_learn_from_is_refused_in_one_sentence(frame, data_params, values, message):
    frame["label"] = values(len(frame))
    with pytest.raises(data.DataError) as err:
        data.split(frame, data_params)
    assert message in str(err.value) and str(err.value).endswith(".")
{%- else %}
def test_embedded_datasets_load_offline_with_named_classes():
    for name in data.EMBEDDED:
        frame = data.load_embedded(name, "target")
        assert len(frame) > 100
        assert frame["target"].map(type).eq(str).all()


def test_split_is_stratified_and_reproducible(frame, data_params):
    train_a, test_a = data.split(frame, data_params)
    train_b, _ = data.split(frame, data_params)
    assert train_a.equals(train_b)
    assert set(test_a["label"]) == set(frame["label"])
{%- endif %}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("size;label\n1;big\n", "single column"),
        ("size,other\n1,2\n", "no target column"),
        ("size,label\n", "column names but no rows"),
    ],
)
def test_unusable_csv_is_rejected_with_a_clear_message(workdir, content, message):
    (workdir / "bad.csv").write_text(content, encoding="utf-8")
    with pytest.raises(data.DataError, match=message):
        data.read_csv(workdir / "bad.csv", "label")


def test_non_utf8_csv_is_rejected(workdir):
    (workdir / "bad.csv").write_bytes(b"size,label\n1,caf\xe9\n")
    with pytest.raises(data.DataError, match="not UTF-8"):
        data.read_csv(workdir / "bad.csv", "label")


def test_column_without_any_value_is_rejected(workdir):
    (workdir / "nan.csv").write_text("size,empty,label\n1,,a\n2,,b\n", encoding="utf-8")
    with pytest.raises(data.DataError, match=r"column 'empty' .* has no values"):
        data.read_csv(workdir / "nan.csv", "label")


def test_file_over_the_size_guard_is_rejected_before_reading(workdir, frame):
    frame.to_csv("big.csv", index=False)
    with pytest.raises(data.DataError, match=r"over the 0\.001 MiB guard"):
        data.read_csv(workdir / "big.csv", "label", max_megabytes=0.001)
{%- if not regression %}


def test_single_class_target_cannot_be_split(frame, data_params):
    frame["label"] = "big"
    with pytest.raises(data.DataError, match="single class"):
        data.split(frame, data_params)
{%- endif %}


def test_failed_prepare_leaves_previous_split_untouched(workdir, frame, data_params, paths):
    frame.to_csv("data.csv", index=False)
    train_path, _ = data.prepare(data_params, paths.train, paths.test)
    before = train_path.read_bytes()
    (workdir / "data.csv").write_text("size,label\n", encoding="utf-8")
    with pytest.raises(data.DataError):
        data.prepare(data_params, paths.train, paths.test)
    assert train_path.read_bytes() == before
{%- if cookiecutter.__dataset == "parquet" %}


def test_parquet_reads_as_its_columns_types(workdir, frame):
    frame.to_parquet("data.parquet")
    read = data.read_parquet(workdir / "data.parquet", "label")
    assert read.equals(frame)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda raw: raw[: len(raw) // 2], "not a readable parquet file"),
        (lambda raw: b"size,label\n1,big\n", "not a readable parquet file"),
        (lambda raw: raw[:4] + bytes(len(raw) - 8) + raw[-4:], "not a readable parquet file"),
    ],
    ids=["truncated", "not-parquet", "zeroed-middle"],
)
def test_unreadable_parquet_is_one_sentence(workdir, frame, damage, message):
    frame.to_parquet("data.parquet")
    path = workdir / "data.parquet"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(data.DataError, match=message) as caught:
        data.read_parquet(path, "label")
    assert "\n" not in str(caught.value)


def test_parquet_without_the_target_or_rows_is_rejected(workdir, frame):
    frame.drop(columns=["label"]).to_parquet("no-target.parquet")
    with pytest.raises(data.DataError, match="no target column 'label'"):
        data.read_parquet(workdir / "no-target.parquet", "label")
    frame.head(0).to_parquet("empty.parquet")
    with pytest.raises(data.DataError, match="column names but no rows"):
        data.read_parquet(workdir / "empty.parquet", "label")


def test_a_column_pandas_stored_as_the_index_stays_a_column(workdir, frame):
    frame.set_index("label").to_parquet("indexed.parquet")
    assert set(data.read_parquet(workdir / "indexed.parquet", "label").columns) == set(frame.columns)


def test_a_text_column_holding_numbers_and_words_is_a_category(workdir, frame):
    # Parquet columns have one type: numbers stored as text next to words stay text, declared as categories.
    frame["size"] = [str(i % 3) if i % 2 else "large" for i in range(len(frame))]
    frame.to_parquet("mixed.parquet")
    read = data.read_parquet(workdir / "mixed.parquet", "label")
    assert set(read["size"]) == {"0", "1", "2", "large"}
{%- endif %}
