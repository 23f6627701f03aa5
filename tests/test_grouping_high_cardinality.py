"""bl.group at high cardinality: string features counted by their categorical codes, integer
features with up to a few million combinations counted densely, and the cheaper sort of the
hash path's groups, each against a plain Polars group-by of the rows and DuckDB."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import pandas as pd
import polars as pl
import pytest
from helpers import BAD_LABEL_IDS, BAD_LABELS
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from test_dense_keys import dense_calls, hash_path_only
from test_grouping import duckdb_counts

import binomlab as bl
from binomlab.grouping import dense_keys, groupby


def polars_counts(df: pl.DataFrame, features: list[str], label: str) -> pl.DataFrame:
    """The oracle: a plain Polars group-by of the rows, sorted as bl.group promises."""
    return (
        df.group_by(features)
        .agg(pl.len().cast(pl.Int64).alias("n"), pl.col(label).cast(pl.Int64).sum().alias("k"))
        .sort(features, nulls_last=False)
    )


@pytest.fixture
def coded_always(monkeypatch):
    """Count string features by their codes however few groups the sample shows."""
    monkeypatch.setattr(dense_keys, "MIN_CODED_GROUPS", 0)


@contextmanager
def coded_calls():
    """Record, per dense count, whether it coded string features, and whether it gave up."""
    seen: list[str] = []
    original = dense_keys.count

    def spy(rows, dense, success, **kwargs):
        try:
            out = original(rows, dense, success, **kwargs)
        except dense_keys.TooManyCodes:
            seen.append("too many")
            raise
        seen.append("coded" if dense.coded else "dense")
        return out

    dense_keys.count = spy
    try:
        yield seen
    finally:
        dense_keys.count = original


def id_strings(rng: np.random.Generator, levels: int, rows: int, nulls: float = 0.0) -> pl.Series:
    ids = pl.Series(rng.integers(0, levels, rows)).cast(pl.String).str.zfill(6)
    values = pl.select(pl.format("id{}", pl.lit(ids))).to_series()
    return values.scatter(np.flatnonzero(rng.random(rows) < nulls), None)


# --- string features by code --------------------------------------------------------------------

WORDS = ["", "a", "B", "b", "é", "e", "zz", "Z", "ß", "日本", "id000001", "id10"]

string_rows = st.integers(1, 300).flatmap(
    lambda size: st.fixed_dictionaries(
        {
            "s": st.lists(st.sampled_from(WORDS) | st.none(), min_size=size, max_size=size),
            "i": st.lists(st.integers(-3, 3) | st.none(), min_size=size, max_size=size),
            "t": st.lists(st.sampled_from(WORDS[:4]) | st.none(), min_size=size, max_size=size),
            "flag": st.lists(st.booleans(), min_size=size, max_size=size),
            "y": st.lists(st.integers(0, 1) | st.none(), min_size=size, max_size=size),
        }
    )
)
STRING_SCHEMA = {"s": pl.String, "i": pl.Int16, "t": pl.String, "flag": pl.Boolean, "y": pl.UInt8}


@settings(max_examples=60, deadline=None)
@given(string_rows, st.permutations(["s", "i", "t", "flag"]))
def test_coded_strings_equal_a_polars_group_by_and_duckdb(data: dict, order: list[str]) -> None:
    df = pl.DataFrame(data, schema=STRING_SCHEMA)
    labelled = df.filter(pl.col("y").is_not_null())
    if labelled.height == 0:
        return
    features = list(order)
    saved = dense_keys.MIN_CODED_GROUPS
    dense_keys.MIN_CODED_GROUPS = 0
    try:
        with coded_calls() as seen:
            got = bl.group(df, features, "y", drop_null_labels=True)
    finally:
        dense_keys.MIN_CODED_GROUPS = saved
    assert seen == ["coded"]
    expected = polars_counts(labelled, features, "y")
    assert_frame_equal(got.frame, expected)
    assert_frame_equal(got.frame, duckdb_counts(labelled, features, "y"))
    with hash_path_only():
        assert_frame_equal(bl.group(df, features, "y", drop_null_labels=True).frame, got.frame)


def test_strings_with_many_groups_take_the_coded_path_unasked() -> None:
    rng = np.random.default_rng(1)
    rows = 200_000
    df = pl.DataFrame(
        {
            "id1": id_strings(rng, 600, rows, nulls=0.01),
            "id2": id_strings(rng, 600, rows),
            "y": (rng.random(rows) < 0.3).astype(np.uint8),
        }
    )
    with coded_calls() as seen:
        got = bl.group(df, ["id1", "id2"], "y")
    assert seen == ["coded"]
    assert len(got) > 100_000
    assert got.frame.schema == pl.Schema(
        {"id1": pl.String, "id2": pl.String, "n": pl.Int64, "k": pl.Int64}
    )
    assert_frame_equal(got.frame, polars_counts(df, ["id1", "id2"], "y"))
    assert got.frame["id1"][0] is None  # nulls first
    # pandas, an oracle of its own: counts per pair (nulls as their own group), then sorted
    pdf = df.to_pandas()
    pdf["id1"] = pdf["id1"].fillna("\0null")  # sorts before every "id…" string, as null does
    counts = pdf.groupby(["id1", "id2"], sort=True)["y"].agg(["size", "sum"]).reset_index()
    assert got.frame["n"].to_list() == counts["size"].tolist()
    assert got.frame["k"].to_list() == counts["sum"].tolist()
    assert got.frame["id1"].fill_null("\0null").to_list() == counts["id1"].tolist()


def test_strings_with_few_groups_are_hashed() -> None:
    rng = np.random.default_rng(2)
    df = pl.DataFrame(
        {"id1": id_strings(rng, 100, 50_000), "id2": id_strings(rng, 100, 50_000)}
    ).with_columns(y=pl.Series(rng.random(50_000) < 0.5))
    with coded_calls() as seen:
        got = bl.group(df, ["id1", "id2"], "y")
    assert seen == []  # the sample shows 10,000 groups: fewer than MIN_CODED_GROUPS
    assert_frame_equal(got.frame, polars_counts(df, ["id1", "id2"], "y"))


def test_strings_beyond_the_limit_fall_back_to_hashing(monkeypatch, coded_always) -> None:
    # sorted ids: the first rows show few values, the later ones outgrow the count array
    monkeypatch.setattr(dense_keys, "MAX_BINS", 1 << 12)
    monkeypatch.setattr(dense_keys, "SMALL_BINS", 1 << 12)
    monkeypatch.setattr(dense_keys, "SAMPLE_ROWS", 1000)
    rng = np.random.default_rng(3)
    rows = 20_000
    df = pl.DataFrame(
        {
            "id": pl.Series(np.sort(rng.integers(0, 5000, rows))).cast(pl.String),
            "g": pl.Series(rng.choice(["x", "y", "z"], rows)).scatter(np.arange(0, rows, 7), None),
            "y": rng.random(rows) < 0.4,
        }
    )
    with coded_calls() as seen:
        got = bl.group(df, ["id", "g"], "y")
    assert seen == ["too many"]
    assert_frame_equal(got.frame, polars_counts(df, ["id", "g"], "y"))


def test_coded_strings_from_parquet_and_other_sources(tmp_path, coded_always) -> None:
    rng = np.random.default_rng(4)
    rows = 30_000
    df = pl.DataFrame(
        {
            "id1": id_strings(rng, 300, rows, nulls=0.02),
            "hour": pl.Series(rng.integers(0, 24, rows), dtype=pl.Int16),
            "id2": id_strings(rng, 50, rows),
            "y": pl.Series(rng.random(rows) < 0.2, dtype=pl.Int8),
        }
    )
    features = ["id1", "hour", "id2"]
    expected = polars_counts(df, features, "y")
    df.write_parquet(tmp_path / "rows.parquet", row_group_size=7_000)
    df.write_csv(tmp_path / "rows.csv")
    sources = {
        "frame": df,
        "lazy": df.lazy(),
        "pandas": df.to_pandas(),
        "arrow": df.to_arrow(),
        "parquet": tmp_path / "rows.parquet",
        "csv": str(tmp_path / "rows.csv"),
    }
    for name, source in sources.items():
        with dense_calls(checked=(checked := [])), coded_calls() as seen:
            got = bl.group(source, features, "y")
        assert seen == ["coded"], name
        assert checked == [name == "parquet"], name  # footers: every row checked against them
        assert_frame_equal(got.frame, expected, check_dtypes=name != "csv")


def test_parquet_footers_that_miss_label_nulls_with_coded_strings(
    tmp_path, monkeypatch, coded_always
) -> None:
    rng = np.random.default_rng(5)
    df = pl.DataFrame(
        {"id": id_strings(rng, 40, 1000), "y": pl.Series(rng.random(1000) < 0.3, dtype=pl.Int8)}
    ).with_columns(y=pl.when(pl.col("id") == pl.col("id").min()).then(None).otherwise("y"))
    nulls = df["y"].null_count()
    path = tmp_path / "rows.parquet"
    df.write_parquet(path)
    real = groupby.footer_stats
    monkeypatch.setattr(groupby, "footer_stats", lambda *a: real(*a) | {"nulls": 0})
    with pytest.raises(bl.InvalidLabelError, match=f"Label 'y' is null in {nulls} rows"):
        bl.group(path, "id", "y")
    kept = bl.group(path, "id", "y", drop_null_labels=True)
    assert_frame_equal(kept.frame, polars_counts(df.drop_nulls("y"), ["id"], "y"))


@pytest.mark.parametrize(("case", "label", "kwargs"), BAD_LABELS, ids=BAD_LABEL_IDS)
def test_coded_path_refuses_bad_labels_as_the_hash_path_does(
    case, label, kwargs, coded_always
) -> None:
    frame = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": label})
    with pytest.raises(bl.BinomlabError) as hashed, hash_path_only():
        bl.group(frame, "f", "y", **kwargs)
    with coded_calls() as seen, pytest.raises(type(hashed.value)) as coded:
        bl.group(frame, "f", "y", **kwargs)
    assert str(coded.value) == str(hashed.value)
    assert "'y'" in str(coded.value)
    assert seen == ([] if case != "all null" else ["coded"])  # refused before counting


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([0, 2, 1, 0], {}, r"Label 'y' \(Int64\) has values \[0, 1, 2\]"),
        ([0.0, 0.5, 1.0, 1.0], {}, r"has values \[0\.0, 0\.5, 1\.0\]"),
        (["no", "yes", "no", "no"], {"positive": "Yes"}, r"positive='Yes' is not a value"),
    ],
)
def test_coded_path_bad_labels_name_the_value(values, kwargs, match, coded_always) -> None:
    frame = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": values})
    with pytest.raises(bl.InvalidLabelError, match=match):
        bl.group(frame, "f", "y", **kwargs)


def test_coded_path_string_label_with_positive(coded_always) -> None:
    rng = np.random.default_rng(6)
    df = pl.DataFrame(
        {"f": id_strings(rng, 30, 600, nulls=0.1), "y": rng.choice(["no", "yes"], 600)}
    )
    with coded_calls() as seen:
        got = bl.group(df, "f", "y", positive="yes")
    assert seen == ["coded"]
    expected = polars_counts(df.with_columns(y=pl.col("y") == "yes"), ["f"], "y")
    assert_frame_equal(got.frame, expected)


def test_concurrent_groupings_keep_their_own_codes(coded_always) -> None:
    rng = np.random.default_rng(7)
    frames = [
        pl.DataFrame(
            {"s": id_strings(rng, 500, 40_000), "y": rng.random(40_000) < p},
        )
        for p in (0.1, 0.5, 0.9)
    ]
    results: dict[int, pl.DataFrame] = {}

    def work(i: int) -> None:
        results[i] = bl.group(frames[i], "s", "y").frame

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, df in enumerate(frames):
        assert_frame_equal(results[i], polars_counts(df, ["s"], "y"))


# --- integer features with a million combinations ----------------------------------------------


def test_a_million_integer_combinations_are_counted_densely() -> None:
    rng = np.random.default_rng(8)
    rows = 300_000
    df = pl.DataFrame(
        {
            "id1": pl.Series(rng.integers(0, 1000, rows), dtype=pl.Int32),
            "id2": pl.Series(rng.integers(5000, 6000, rows), dtype=pl.UInt16),
            "y": (rng.random(rows) < 0.3).astype(np.uint8),
        }
    ).with_columns(id1=pl.when(pl.col("id2") == 5500).then(None).otherwise("id1"))
    with coded_calls() as seen:
        got = bl.group(df, ["id1", "id2"], "y")
    assert seen == ["dense"]  # 2 × 1,001 × 1,000 keys: above SMALL_BINS, allowed for these rows
    assert_frame_equal(got.frame, polars_counts(df, ["id1", "id2"], "y"))
    # the same ranges on a few rows: an array that long would cost more than hashing them
    few = df.head(1000).vstack(df.filter(pl.col("id1").is_in([0, 999])).head(10))
    with coded_calls() as seen:
        got = bl.group(few, ["id1", "id2"], "y")
    assert seen == []
    assert_frame_equal(got.frame, polars_counts(few, ["id1", "id2"], "y"))


def test_max_bins_grows_with_the_rows() -> None:
    assert dense_keys.max_bins(None) == dense_keys.SMALL_BINS
    assert dense_keys.max_bins(10) == dense_keys.SMALL_BINS
    assert dense_keys.max_bins(300_000) == 2_400_000
    assert dense_keys.max_bins(10**9) == dense_keys.MAX_BINS


# --- sorting the hash path's groups -------------------------------------------------------------

groups_strategy = st.integers(1, 200).flatmap(
    lambda size: st.fixed_dictionaries(
        {
            "s": st.lists(st.sampled_from(WORDS) | st.none(), min_size=size, max_size=size),
            "u": st.lists(st.text(max_size=4) | st.none(), min_size=size, max_size=size),
            "x": st.lists(
                st.floats(allow_nan=True, allow_infinity=True) | st.none(),
                min_size=size,
                max_size=size,
            ),
        }
    )
)


@settings(max_examples=80, deadline=None)
@given(groups_strategy, st.permutations(["s", "u", "x"]))
def test_sort_groups_orders_as_a_plain_sort(data: dict, order: list[str]) -> None:
    frame = pl.DataFrame(data, schema={"s": pl.String, "u": pl.String, "x": pl.Float64})
    frame = frame.unique(maintain_order=True).with_columns(n=pl.lit(1, pl.Int64))
    features = list(order)
    assert_frame_equal(groupby.sort_groups(frame, features), frame.sort(features, nulls_last=False))


def test_hash_path_output_is_sorted_by_strings_nulls_first() -> None:
    rng = np.random.default_rng(9)
    rows = 100_000
    df = pl.DataFrame(
        {
            "id1": id_strings(rng, 5000, rows, nulls=0.01),
            "x": pl.Series(rng.integers(0, 20, rows) / 4),  # a float feature: the hash path
            "y": rng.random(rows) < 0.3,
        }
    )
    with coded_calls() as seen:
        got = bl.group(df, ["id1", "x"], "y")
    assert seen == []
    assert_frame_equal(got.frame, polars_counts(df, ["id1", "x"], "y"))
    expected = duckdb_counts(df, ["id1", "x"], "y")
    assert_frame_equal(got.frame, expected)
    pandas_order = (
        df.to_pandas().groupby(["id1", "x"], dropna=False).size().reset_index()
    )  # pandas puts the null group last
    pandas_order = pd.concat([pandas_order[pandas_order.id1.isna()], pandas_order.dropna()])
    assert got.frame["n"].to_list() == pandas_order[0].tolist()


# --- the hash path of many groups: strings by code ----------------------------------------------


@contextmanager
def hash_calls():
    """Record the string features each hash group-by of bl.group coded."""
    seen: list[tuple[str, ...]] = []
    original = groupby._hash_counts

    def spy(*args, coded=(), **kwargs):
        seen.append(tuple(coded))
        return original(*args, coded=coded, **kwargs)

    groupby._hash_counts = spy
    try:
        yield seen
    finally:
        groupby._hash_counts = original


@pytest.fixture
def small_dense_limit(monkeypatch, coded_always):
    """A dense key of at most 4,096 keys: the tests' thousands of groups are hashed."""
    monkeypatch.setattr(dense_keys, "MAX_BINS", 1 << 12)
    monkeypatch.setattr(dense_keys, "SMALL_BINS", 1 << 12)


def test_many_string_groups_beyond_the_dense_key_are_hashed_by_code(
    tmp_path, small_dense_limit
) -> None:
    rng = np.random.default_rng(21)
    rows = 40_000
    df = pl.DataFrame(
        {
            "site": id_strings(rng, 400, rows, nulls=0.03),
            "hour": pl.Series(rng.integers(0, 24, rows), dtype=pl.Int8),
            "app": pl.Series(rng.choice(["", "ä", "B", "b", "日本", "z"], rows)),
            "y": rng.random(rows) < 0.25,
        }
    )
    features = ["site", "hour", "app"]
    expected = polars_counts(df, features, "y")
    assert_frame_equal(expected, duckdb_counts(df, features, "y"))
    df.write_parquet(tmp_path / "rows.parquet", row_group_size=9_000)
    df.write_csv(tmp_path / "rows.csv")
    sources = {
        "frame": df,
        "pandas": df.to_pandas(),
        "parquet": tmp_path / "rows.parquet",
        "csv": str(tmp_path / "rows.csv"),
    }
    for name, source in sources.items():
        with hash_calls() as seen:
            got = bl.group(source, features, "y")
        assert seen == [("site", "app")], name
        assert got.frame.schema["site"] == pl.String and got.frame.schema["app"] == pl.String
        assert_frame_equal(got.frame, expected, check_dtypes=name != "csv")
    # a float feature makes every path a hash group-by of strings, coded or not: the same
    with_float = df.with_columns(hour=pl.col("hour").cast(pl.Float64) / 2)
    with hash_calls() as seen:
        got = bl.group(with_float, features, "y")
    assert seen == [()]
    assert_frame_equal(got.frame, polars_counts(with_float, features, "y"))


def test_strings_hashed_by_code_keep_the_label_rules(small_dense_limit) -> None:
    rng = np.random.default_rng(22)
    rows = 20_000
    df = pl.DataFrame(
        {
            "a": id_strings(rng, 300, rows),
            "b": id_strings(rng, 300, rows, nulls=0.1),
            "y": pl.Series(rng.choice(["yes", "no"], rows)),
        }
    )
    with hash_calls() as seen:
        got = bl.group(df, ["a", "b"], "y", positive="yes")
    assert seen == [("a", "b")]
    expected = polars_counts(df.with_columns(y=pl.col("y") == "yes"), ["a", "b"], "y")
    assert_frame_equal(got.frame, expected)
    with pytest.raises(bl.InvalidLabelError, match="positive"):
        bl.group(df, ["a", "b"], "y")
    label = (df["y"] == "yes").cast(pl.Int8).scatter([5, 77], None)
    nulls = df.with_columns(y=label)
    with pytest.raises(bl.InvalidLabelError, match="null"):
        bl.group(nulls, ["a", "b"], "y")
    dropped = bl.group(nulls, ["a", "b"], "y", drop_null_labels=True)
    kept = nulls.filter(pl.col("y").is_not_null())
    assert_frame_equal(dropped.frame, polars_counts(kept, ["a", "b"], "y"))


@settings(max_examples=60, deadline=None)
@given(groups_strategy, st.permutations(["s", "u", "x"]))
def test_sort_groups_orders_categoricals_as_a_plain_sort(data: dict, order: list[str]) -> None:
    frame = pl.DataFrame(data, schema={"s": pl.String, "u": pl.String, "x": pl.Float64})
    frame = frame.unique(maintain_order=True).with_columns(
        pl.col("s").cast(pl.Categorical(pl.Categories.random())), n=pl.lit(1, pl.Int64)
    )
    features = list(order)
    assert_frame_equal(groupby.sort_groups(frame, features), frame.sort(features, nulls_last=False))
