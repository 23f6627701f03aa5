"""bl.group's dense-key path (integer, bool and enum features) equals SQL and the hash path."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal
from test_grouping import duckdb_counts

import binomlab as bl
from binomlab.grouping import dense_keys, groupby

COLOURS = pl.Enum(["red", "green", "blue"])
SCHEMA = {
    "tiny": pl.Int8,
    "huge": pl.UInt64,
    "neg": pl.Int64,
    "flag": pl.Boolean,
    "colour": COLOURS,
    "y": pl.Boolean,
}
FEATURES = ["tiny", "huge", "neg", "flag", "colour"]


@contextmanager
def hash_path_only():
    """Make every layout too wide, so bl.group counts by hash group-by."""
    saved = dense_keys.MAX_BINS
    dense_keys.MAX_BINS = 0
    try:
        yield
    finally:
        dense_keys.MAX_BINS = saved


@contextmanager
def dense_calls(*, checked: list[bool] | None = None):
    """Record the number of rows each dense count saw (and, in ``checked``, whether it
    checked the rows against a layout made from parquet footers)."""
    seen: list[int] = []
    original = dense_keys.count

    def spy(rows, dense, success, **kwargs):
        if checked is not None:
            checked.append(kwargs.get("checked", False))
        out = original(rows, dense, success, **kwargs)
        seen.append(int(out["n"].sum()))
        return out

    dense_keys.count = spy
    try:
        yield seen
    finally:
        dense_keys.count = original


def column(values, size):
    return st.lists(st.sampled_from(values) | st.none(), min_size=size, max_size=size)


rows_strategy = st.integers(1, 300).flatmap(
    lambda size: st.fixed_dictionaries(
        {
            # the extremes of Int8: an offset computed in Int8 would overflow
            "tiny": column([-128, -1, 0, 127], size),
            "huge": column([2**64 - 1, 2**64 - 3], size),
            "neg": column([-(2**63), -(2**63) + 5], size),
            "flag": column([True, False], size),
            "colour": column(["red", "blue"], size),
            "y": column([True, False], size),
        }
    )
)


@settings(max_examples=60, deadline=None)
@given(rows_strategy)
def test_dense_path_equals_duckdb_and_the_hash_path(data: dict) -> None:
    df = pl.DataFrame(data, schema=SCHEMA)
    labelled = df.filter(pl.col("y").is_not_null())
    if labelled.height == 0:
        return
    with dense_calls() as seen:
        dense = bl.group(df, FEATURES, "y", drop_null_labels=True)
    assert seen == [labelled.height]
    with hash_path_only(), dense_calls() as seen:
        hashed = bl.group(df, FEATURES, "y", drop_null_labels=True)
    assert seen == []
    assert_frame_equal(dense.frame, hashed.frame)
    expected = (
        duckdb_counts(labelled, FEATURES, "y")
        .with_columns(pl.col("colour").cast(COLOURS))
        .sort(FEATURES, nulls_last=False)  # an enum sorts in category order
    )
    assert_frame_equal(dense.frame, expected)
    assert dict(dense.frame.schema) == {f: SCHEMA[f] for f in FEATURES} | {
        "n": pl.Int64,
        "k": pl.Int64,
    }


def test_layout_slots_and_decoding() -> None:
    df = pl.DataFrame(
        {"a": [5, None, 7, 5], "b": [True, False, True, None], "y": [1, 0, 1, 1]},
        schema={"a": pl.Int16, "b": pl.Boolean, "y": pl.Int8},
    )
    stats = df.select(dense_keys.range_exprs(df.schema, ["a", "b"])).row(0, named=True)
    dense = dense_keys.layout(df.schema, ["a", "b"], stats)
    # a: null, 5, 6, 7; b: null, false, true
    assert [(d.low, d.size, d.has_null) for d in dense.digits] == [(5, 4, True), (0, 3, True)]
    keys = df.select(dense.key(pl.col("y"))).to_series().to_list()
    assert keys == [2 * (1 * 3 + 2) + 1, 2 * (0 * 3 + 1), 2 * (3 * 3 + 2) + 1, 2 * (1 * 3 + 0) + 1]
    a, b = dense.decode(np.array([0, 5, 11]))
    assert a.to_list() == [None, 5, 7]
    assert b.to_list() == [None, True, True]
    assert a.dtype == pl.Int16


def test_which_features_take_the_dense_path() -> None:
    rng = np.random.default_rng(3)
    df = pl.DataFrame(
        {
            "i": rng.integers(0, 5, 500),
            "s": rng.choice(["u", "v"], 500),
            "x": rng.normal(size=500),
            "y": rng.random(500) < 0.4,
        }
    )
    with dense_calls() as seen:
        bl.group(df, ["i", "s"], "y")  # a string feature with few groups: hash
        bl.group(df, ["i", "x"], "y")  # a float feature: hash
        binned = bl.group(df, ["i", "x"], "y", bins={"x": 4})  # binned: an enum, dense
    assert seen == [500]
    with hash_path_only():
        assert binned.equals(bl.group(df, ["i", "x"], "y", bins={"x": 4}))


@pytest.mark.parametrize("source", ["frame", "parquet"])
def test_wide_ranges_fall_back_to_hashing(source, tmp_path) -> None:
    df = pl.DataFrame({"id": [0, 10**12, 0, 5], "f": [1, 2, 1, 2], "y": [1, 0, 0, 1]})
    data = df
    if source == "parquet":
        data = tmp_path / "wide.parquet"
        df.write_parquet(data)
    with dense_calls() as seen:
        g = bl.group(data, ["id", "f"], "y")
    assert seen == []
    assert_frame_equal(g.frame, duckdb_counts(df, ["id", "f"], "y"))


@pytest.mark.parametrize(
    ("values", "dtype", "positive"),
    [
        ([0.0, 1.0, 1.0, 0.0], pl.Float32, None),
        ([0, 1, 1, 0], pl.UInt8, None),
        (["no", "yes", "yes", "no"], pl.String, "yes"),
        ([3, 7, 7, 3], pl.Int64, 7),
    ],
)
def test_dense_path_label_kinds(values, dtype, positive) -> None:
    df = pl.DataFrame({"f": [1, 1, 2, 2], "y": pl.Series(values, dtype=dtype)})
    with dense_calls() as seen:
        g = bl.group(df, "f", "y", positive=positive)
    assert seen == [4]
    assert g.frame.to_dicts() == [{"f": 1, "n": 2, "k": 1}, {"f": 2, "n": 2, "k": 1}]


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([0, 2, 1, 0], {}, r"has values \[0, 1, 2\]"),
        ([0.0, 0.5, 1.0, 1.0], {}, r"has values \[0\.0, 0\.5, 1\.0\]"),
        ([0, None, 1, 0], {}, "null in 1 rows"),
        ([1, 2, 3, 1], {"positive": 1}, "has 3 distinct values"),
    ],
)
def test_dense_path_bad_labels_raise_before_counting(values, kwargs, match) -> None:
    df = pl.DataFrame({"f": [1, 1, 2, 2], "y": values})
    with dense_calls() as seen, pytest.raises(bl.InvalidLabelError, match=match):
        bl.group(df, "f", "y", **kwargs)
    assert seen == []


# --- parquet files: the footers' statistics instead of a first pass ------------------------------


def flights_like(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "hour": pl.Series(rng.integers(5, 23, rows), dtype=pl.Int16),
            "carrier": pl.Series(rng.integers(1000, 1012, rows), dtype=pl.UInt32),
            "late": pl.Series(rng.random(rows) < 0.3, dtype=pl.Boolean),
            "weekend": rng.random(rows) < 0.25,
            "y": pl.Series(rng.random(rows) < 0.2, dtype=pl.Int8),
        }
    ).with_columns(pl.when(pl.col("hour") == 7).then(None).otherwise(pl.col("hour")).alias("hour"))


PARQUET_FEATURES = ["hour", "carrier", "late", "weekend"]


def test_parquet_footers_replace_the_first_pass(tmp_path) -> None:
    parts = [flights_like(3000, seed) for seed in range(3)]
    for i, part in enumerate(parts):
        part.write_parquet(tmp_path / f"part{i}.parquet", row_group_size=700)
    whole = pl.concat(parts)
    with dense_calls(checked=(checked := [])) as seen:
        g = bl.group(str(tmp_path / "*.parquet"), PARQUET_FEATURES, "y")
    assert seen == [9000]
    assert checked == [True]
    assert_frame_equal(g.frame, duckdb_counts(whole, PARQUET_FEATURES, "y"))
    with hash_path_only():
        assert g.equals(bl.group(whole, PARQUET_FEATURES, "y"))


@pytest.mark.parametrize(
    ("stat", "change"),
    [
        (("carrier", "max"), -3),  # values above the range: they would land in the next slot
        (("carrier", "min"), 3),  # below it: UInt32 subtraction wraps, the Int32 cast fails
        (("hour", "nulls"), None),  # nulls where the layout has no null slot
    ],
)
def test_footers_that_do_not_describe_the_rows_fall_back_to_a_pass(
    tmp_path, monkeypatch, stat, change
) -> None:
    df = flights_like(2000, 7)
    path = tmp_path / "rows.parquet"
    df.write_parquet(path)
    real = groupby.footer_stats

    def wrong(*args):  # as if the file's writer got its statistics wrong
        stats = real(*args)
        name = dense_keys.stat_name(*stat)
        stats[name] = 0 if change is None else stats[name] + change
        return stats

    monkeypatch.setattr(groupby, "footer_stats", wrong)
    with dense_calls(checked=(checked := [])) as seen:
        g = bl.group(path, PARQUET_FEATURES, "y")
    assert checked == [True, False]
    assert seen == [2000]  # only the second count finished
    assert_frame_equal(g.frame, duckdb_counts(df, PARQUET_FEATURES, "y"))


def test_null_labels_the_footer_missed_are_found_by_the_pass(tmp_path, monkeypatch) -> None:
    df = flights_like(500, 5).with_columns(
        pl.when(pl.col("hour") == 8).then(None).otherwise(pl.col("y")).alias("y")
    )
    nulls = df["y"].null_count()
    assert nulls > 0
    path = tmp_path / "rows.parquet"
    df.write_parquet(path)
    real = groupby.footer_stats
    monkeypatch.setattr(groupby, "footer_stats", lambda *a: real(*a) | {"nulls": 0})
    with pytest.raises(bl.InvalidLabelError, match=f"null in {nulls} rows"):
        bl.group(path, PARQUET_FEATURES, "y")
    kept = bl.group(path, PARQUET_FEATURES, "y", drop_null_labels=True)
    assert kept.trials == df.height - nulls


@pytest.mark.parametrize(
    ("write", "why"),
    [
        ({"statistics": False}, "no statistics in the footer"),
        ({}, "label with a value outside 0/1"),
    ],
)
def test_parquet_without_usable_footers_takes_a_pass(tmp_path, write, why) -> None:
    df = flights_like(1000, 11)
    if why.startswith("label"):
        df = df.with_columns(pl.col("y") * 2)
    path = tmp_path / "rows.parquet"
    df.write_parquet(path, **write)
    with dense_calls(checked=(checked := [])) as seen:
        if why.startswith("label"):
            with pytest.raises(bl.InvalidLabelError, match=r"has values \[0, 2\]"):
                bl.group(path, PARQUET_FEATURES, "y")
            assert seen == []
            return
        g = bl.group(path, PARQUET_FEATURES, "y")
    assert checked == [False]
    assert_frame_equal(g.frame, duckdb_counts(df, PARQUET_FEATURES, "y"))
