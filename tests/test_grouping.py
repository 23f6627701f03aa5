"""bl.group and bl.from_counts: the grouped table is exactly the SQL GROUP BY of the raw rows."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import binomlab as bl


def raw_rows(seed: int, rows: int = 2000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    colour = rng.choice(["red", "green", "blue"], rows)
    size = rng.integers(0, 4, rows)
    flag = rng.random(rows) < 0.3
    p = 0.2 + 0.15 * (colour == "red") + 0.1 * size / 3
    return pl.DataFrame({"colour": colour, "size": size, "flag": flag, "y": rng.random(rows) < p})


def duckdb_counts(df: pl.DataFrame, features: list[str], label: str) -> pl.DataFrame:
    cols = ", ".join(f'"{f}"' for f in features)
    con = duckdb.connect()
    con.register("t", df.to_arrow())
    sql = f'select {cols}, count(*) as n, sum("{label}"::int) as k from t group by {cols}'
    out = pl.from_arrow(con.sql(sql).to_arrow_table())
    return out.with_columns(pl.col("n", "k").cast(pl.Int64)).sort(features, nulls_last=False)


# --- the identity with SQL, as properties --------------------------------------------------------

rows_strategy = st.integers(1, 300).flatmap(
    lambda size: st.fixed_dictionaries(
        {
            "a": st.lists(st.sampled_from(["x", "y", "z", None]), min_size=size, max_size=size),
            "b": st.lists(st.integers(-2, 2) | st.none(), min_size=size, max_size=size),
            "c": st.lists(st.booleans(), min_size=size, max_size=size),
            "y": st.lists(st.integers(0, 1), min_size=size, max_size=size),
        }
    )
)


@settings(max_examples=60, deadline=None)
@given(rows_strategy)
def test_group_equals_duckdb_group_by(data: dict) -> None:
    df = pl.DataFrame(data, schema={"a": pl.String, "b": pl.Int64, "c": pl.Boolean, "y": pl.Int8})
    g = bl.group(df, ["a", "b", "c"], "y")
    assert g.trials == df.height
    assert g.successes == int(df["y"].sum())
    assert_frame_equal(g.frame, duckdb_counts(df, ["a", "b", "c"], "y"))


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.randoms(use_true_random=False))
def test_group_ignores_row_order_and_expand_round_trips(data: dict, rnd) -> None:
    df = pl.DataFrame(data, schema={"a": pl.String, "b": pl.Int64, "c": pl.Boolean, "y": pl.Int8})
    order = list(range(df.height))
    rnd.shuffle(order)
    g = bl.group(df, ["a", "b", "c"], "y")
    assert g.equals(bl.group(df[order], ["a", "b", "c"], "y"))
    assert g.equals(bl.group(g.expand(), ["a", "b", "c"], "y"))


def test_null_feature_value_is_its_own_group() -> None:
    df = pl.DataFrame({"f": ["a", None, "a", None, "b"], "y": [1, 0, 0, 1, 1]})
    g = bl.group(df, "f", "y")
    assert g.frame.to_dicts() == [
        {"f": None, "n": 2, "k": 1},
        {"f": "a", "n": 2, "k": 1},
        {"f": "b", "n": 1, "k": 1},
    ]


# --- every kind of source gives the same Grouped ------------------------------------------------


def test_sources_agree(tmp_path) -> None:
    df = raw_rows(0)
    expected = bl.group(df, ["colour", "size"], "y")
    df.write_parquet(tmp_path / "rows.parquet")
    df.write_csv(tmp_path / "rows.csv")
    df.write_ndjson(tmp_path / "rows.ndjson")
    df[:700].write_parquet(tmp_path / "part-0.parquet")
    df[700:].write_parquet(tmp_path / "part-1.parquet")
    sources = {
        "lazy": df.lazy(),
        "pandas": df.to_pandas(),
        "arrow": df.to_arrow(),
        "parquet": tmp_path / "rows.parquet",
        "csv": str(tmp_path / "rows.csv"),
        "ndjson": str(tmp_path / "rows.ndjson"),
        "glob": str(tmp_path / "part-*.parquet"),
        "list": [tmp_path / "part-0.parquet", tmp_path / "part-1.parquet"],
    }
    for name, source in sources.items():
        got = bl.group(source, ["colour", "size"], "y")
        assert got.equals(expected), name


def test_callers_frames_are_not_modified() -> None:
    df = raw_rows(1)
    pdf = df.to_pandas()
    pdf_before = pdf.copy()
    before = df.clone()
    bl.group(pdf, ["colour", "size"], "y", bins={"size": 2})
    bl.group(df, ["colour", "size"], "y", bins={"size": [0, 2, 3]})
    pd.testing.assert_frame_equal(pdf, pdf_before)
    assert_frame_equal(df, before)


def test_file_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="No files match"):
        bl.group(str(tmp_path / "*.parquet"), ["a"], "y")
    with pytest.raises(FileNotFoundError, match="File not found"):
        bl.group(tmp_path / "missing.parquet", ["a"], "y")
    (tmp_path / "rows.xlsx").write_text("x")
    with pytest.raises(bl.BinomlabError, match=r"unknown file type '\.xlsx'"):
        bl.group(tmp_path / "rows.xlsx", ["a"], "y")
    with pytest.raises(TypeError, match=r"Cannot read data of type builtins\.int"):
        bl.group(42, ["a"], "y")


# --- labels ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "dtype", "positive"),
    [
        ([True, False, True, True], pl.Boolean, None),
        ([1, 0, 1, 1], pl.Int64, None),
        ([1, 0, 1, 1], pl.UInt8, None),
        ([1.0, 0.0, 1.0, 1.0], pl.Float64, None),
        (["yes", "no", "yes", "yes"], pl.String, "yes"),
        (["yes", "no", "yes", "yes"], pl.Categorical, "yes"),
        ([2, 1, 2, 2], pl.Int64, 2),
        ([False, True, False, False], pl.Boolean, False),
    ],
)
def test_label_kinds(values, dtype, positive) -> None:
    df = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": pl.Series(values, dtype=dtype)})
    g = bl.group(df, "f", "y", positive=positive)
    assert g.frame["n"].to_list() == [2, 2]
    assert g.frame["k"].to_list() == [1, 2]


@pytest.mark.parametrize(
    ("values", "kwargs", "match"),
    [
        ([0, 1, 2], {}, r"Label 'y' \(Int64\) has values \[0, 1, 2\]; expected 0/1 or bool"),
        ([0.0, 0.5, 1.0], {}, r"has values \[0\.0, 0\.5, 1\.0\]"),
        (["no", "yes", "no"], {}, r"e\.g\. positive='yes'"),
        (["a", "b", "c"], {"positive": "a"}, r"3 distinct values \['a', 'b', 'c'\]"),
        (["no", "yes", "no"], {"positive": "Yes"}, r"positive='Yes' is not a value of label 'y'"),
        ([0.0, float("nan"), 1.0], {}, r"has values \[0\.0, 1\.0, nan\]"),
    ],
)
def test_bad_labels(values, kwargs, match) -> None:
    df = pl.DataFrame({"f": ["a"] * len(values), "y": values})
    with pytest.raises(bl.InvalidLabelError, match=match):
        bl.group(df, "f", "y", **kwargs)


def test_null_labels_raise_unless_dropped() -> None:
    df = pl.DataFrame({"f": ["a", "a", "b", "b"], "y": [1, None, 0, None]})
    with pytest.raises(
        bl.InvalidLabelError, match=r"Label 'y' is null in 2 rows.*drop_null_labels"
    ):
        bl.group(df, "f", "y")
    g = bl.group(df, "f", "y", drop_null_labels=True)
    assert g.frame.to_dicts() == [{"f": "a", "n": 1, "k": 1}, {"f": "b", "n": 1, "k": 0}]
    with pytest.raises(bl.EmptyDataError, match="Every row has a null label"):
        bl.group(df.filter(pl.col("y").is_null()), "f", "y", drop_null_labels=True)


# --- features and other bad input ---------------------------------------------------------


def test_feature_dtypes_are_kept() -> None:
    df = pl.DataFrame(
        {
            "cat": pl.Series(["b", "a", "b"], dtype=pl.Categorical),
            "enum": pl.Series(["lo", "hi", "lo"], dtype=pl.Enum(["lo", "hi"])),
            "flag": [True, False, True],
            "y": [1, 0, 0],
        }
    )
    g = bl.group(df, ["cat", "enum", "flag"], "y")
    assert g.frame.schema == pl.Schema(
        {
            "cat": pl.Categorical(),
            "enum": pl.Enum(["lo", "hi"]),
            "flag": pl.Boolean,
            "n": pl.Int64,
            "k": pl.Int64,
        }
    )
    assert g.frame.rows() == [("a", "hi", False, 1, 0), ("b", "lo", True, 2, 1)]


@pytest.mark.parametrize(
    ("features", "label", "error", "match"),
    [
        (
            ["colour", "sise"],
            "y",
            bl.ColumnNotFoundError,
            r"Feature 'sise' not found.*Available columns: \['colour', 'size', 'flag', 'y'\]"
            r".*did you mean 'sise' -> 'size'",
        ),
        (["colour"], "why", bl.ColumnNotFoundError, r"Label 'why' not found"),
        ([], "y", bl.BinomlabError, r"features must name at least one column"),
        (["colour", "colour"], "y", bl.BinomlabError, r"Duplicate features \['colour'\]"),
        (["colour", "y"], "y", bl.BinomlabError, r"'y' is both the label and a feature"),
    ],
)
def test_bad_arguments(features, label, error, match) -> None:
    with pytest.raises(error, match=match):
        bl.group(raw_rows(2), features, label)


@pytest.mark.parametrize("name", ["n", "k"])
def test_feature_named_like_a_count_is_rejected(name) -> None:
    df = pl.DataFrame({name: [1, 2], "y": [0, 1]})
    with pytest.raises(bl.BinomlabError, match=rf"A feature cannot be named '{name}'"):
        bl.group(df, [name], "y")


def test_empty_input() -> None:
    df = pl.DataFrame({"f": [], "y": []}, schema={"f": pl.String, "y": pl.Int64})
    with pytest.raises(bl.EmptyDataError, match="no rows"):
        bl.group(df, "f", "y")


def test_nested_feature_is_rejected() -> None:
    df = pl.DataFrame({"f": [[1], [2]], "y": [0, 1]})
    with pytest.raises(bl.BinomlabError, match=r"Feature 'f' has dtype List\(Int64\)"):
        bl.group(df, "f", "y")


# --- bins ----------------------------------------------------------------------------------------


def test_explicit_bins_match_a_hand_binning_and_apply_to_new_data() -> None:
    rng = np.random.default_rng(3)
    dist = rng.uniform(0, 5000, 5000)
    df = pl.DataFrame({"distance": dist, "y": rng.random(5000) < 0.3})
    g = bl.group(df, "distance", "y", bins={"distance": [0, 500, 1000, 5000]})
    assert g.bins == {"distance": (0.0, 500.0, 1000.0, 5000.0)}
    labels = ["[0, 500)", "[500, 1000)", "[1000, 5000]"]
    assert g.frame.schema["distance"] == pl.Enum(labels)
    idx = np.searchsorted([500, 1000], dist, side="right")
    expected_n = np.bincount(idx, minlength=3)
    expected_k = np.bincount(idx, weights=df["y"].to_numpy(), minlength=3)
    assert g.frame["distance"].to_list() == labels
    assert g.frame["n"].to_list() == expected_n.tolist()
    assert g.frame["k"].to_list() == expected_k.astype(int).tolist()
    new = pl.DataFrame({"distance": [0.0, 499.9, 500.0, 5000.0]})
    assert g.apply_bins(new)["distance"].to_list() == [labels[0], labels[0], labels[1], labels[2]]
    with pytest.raises(
        bl.BinomlabError, match=r"outside its bin edges \[0, 5000\] \(e\.g\. 5001\.0\)"
    ):
        g.apply_bins(pl.DataFrame({"distance": [10.0, 5001.0]}))


def test_quantile_bins_have_equal_counts_and_open_ends() -> None:
    df = pl.DataFrame({"x": np.arange(1000, dtype=np.float64), "y": np.arange(1000) % 2})
    g = bl.group(df, "x", "y", bins={"x": 4})
    assert g.bins["x"] == (-np.inf, 249.75, 499.5, 749.25, np.inf)
    assert g.frame["n"].to_list() == [250, 250, 250, 250]
    assert g.frame["x"].to_list() == ["< 249.75", "[249.75, 499.5)", "[499.5, 749.25)", ">= 749.25"]
    assert g.apply_bins(pl.DataFrame({"x": [-1e9, 1e9]}))["x"].to_list() == [
        "< 249.75",
        ">= 749.25",
    ]


def test_quantile_bins_merge_tied_edges() -> None:
    df = pl.DataFrame({"hour": [5] * 50 + [6] * 50, "y": [0, 1] * 50})
    g = bl.group(df, "hour", "y", bins={"hour": 10})
    assert g.bins["hour"] == (-np.inf, 5.0, 5.5, 6.0, np.inf)
    assert g.trials == 100


@pytest.mark.parametrize(
    ("data", "bins", "match"),
    [
        ({"x": [1.0, float("nan")]}, {"x": 2}, r"Feature 'x' holds NaN"),
        ({"x": [1.0, 9.0]}, {"x": [0, 5]}, r"outside its bin edges \[0, 5\] \(e\.g\. 9\.0\)"),
        ({"x": [1.0, 2.0]}, {"x": [5, 0]}, r"strictly increasing"),
        ({"x": [1.0, 2.0]}, {"x": [5]}, r"at least two values"),
        ({"x": [1.0, 2.0]}, {"x": 0}, r"bins\['x'\] must be at least 1"),
        ({"x": ["a", "b"]}, {"x": 3}, r"Cannot bin feature 'x' of dtype String"),
        ({"x": [1.0, 2.0]}, {"z": 3}, r"Binned feature 'z' not found"),
    ],
)
def test_bad_bins(data, bins, match) -> None:
    df = pl.DataFrame({**data, "y": [0, 1]})
    with pytest.raises(bl.BinomlabError, match=match):
        bl.group(df, "x", "y", bins=bins)


# --- from_counts ---------------------------------------------------------------------------


def test_from_counts_merges_duplicates_and_renames() -> None:
    df = pl.DataFrame({"f": ["b", "a", "b"], "trials": [3, 2, 4], "wins": [1.0, 2.0, 0.0]})
    g = bl.from_counts(df, "f", trials="trials", successes="wins")
    assert g.frame.to_dicts() == [{"f": "a", "n": 2, "k": 2}, {"f": "b", "n": 7, "k": 1}]


def test_from_counts_equals_group_on_expanded_rows() -> None:
    g = bl.group(raw_rows(4), ["colour", "size", "flag"], "y")
    assert bl.from_counts(g.frame, g.features).equals(g)
    assert bl.from_counts(g.frame.to_pandas(), list(g.features)).equals(g)


@pytest.mark.parametrize(
    ("n", "k", "match"),
    [
        (
            [3, 2],
            [4, 1],
            r"Successes 'k' exceed trials 'n' in 1 rows \(first at row 0: k=4 > n=3\)",
        ),
        ([3, -2], [1, 0], r"Count column 'n' is negative in 1 rows \(first at row 1: -2\)"),
        ([3.0, 2.5], [1, 0], r"Count column 'n' is not a whole number .*row 1: 2\.5"),
        ([3, None], [1, 0], r"Count column 'n' is null in 1 rows"),
        ([3, 0], [1, 0], r"Trials 'n' is 0 in 1 rows \(first at row 1\)"),
        (["3", "2"], [1, 0], r"Count column 'n' has dtype String"),
    ],
)
def test_from_counts_bad_counts(n, k, match) -> None:
    df = pl.DataFrame({"f": ["a", "b"], "n": n, "k": k}, strict=False)
    with pytest.raises(bl.InvalidCountsError, match=match):
        bl.from_counts(df, "f")


def test_from_counts_with_bins() -> None:
    df = pl.DataFrame({"x": [1.0, 2.0, 8.0, 9.0], "n": [2, 3, 4, 5], "k": [1, 1, 1, 1]})
    g = bl.from_counts(df, "x", bins={"x": [0, 5, 10]})
    assert g.frame.rows() == [("[0, 5)", 5, 2), ("[5, 10]", 9, 2)]


# --- Grouped itself -----------------------------------------------------------------------------


def test_summary_numbers_and_repr() -> None:
    g = bl.group(raw_rows(5), ["colour", "size"], "y")
    assert len(g) == 12
    assert g.trials == 2000
    assert g.compression == pytest.approx(2000 / 12)
    assert g.rate == pytest.approx(g.successes / 2000)
    assert g.cardinalities() == {"colour": 3, "size": 4}
    text = repr(g)
    assert text.startswith(f"Grouped: 12 groups · 2,000 trials · {g.successes:,} successes")
    assert "166.7× compression" in text
    assert "colour (String)" in text


def test_parquet_round_trip_keeps_features_bins_and_dtypes(tmp_path) -> None:
    df = raw_rows(6).with_columns(pl.col("colour").cast(pl.Categorical))
    g = bl.group(df, ["colour", "size"], "y", bins={"size": [0, 2, 3]})
    g.write_parquet(tmp_path / "g.parquet")
    back = bl.read_grouped(tmp_path / "g.parquet")
    assert back.equals(g)
    assert back.frame.schema == g.frame.schema
    g.frame.write_parquet(tmp_path / "plain.parquet")
    with pytest.raises(bl.BinomlabError, match="not a binomlab Grouped parquet file"):
        bl.read_grouped(tmp_path / "plain.parquet")


def test_grouped_validates_counts() -> None:
    with pytest.raises(bl.InvalidCountsError, match="1 <= n and 0 <= k <= n"):
        bl.Grouped(pl.DataFrame({"f": ["a"], "n": [2], "k": [3]}), ["f"])
    with pytest.raises(bl.InvalidCountsError, match="Column 'n' must be Int64"):
        bl.Grouped(pl.DataFrame({"f": ["a"], "n": [2.0], "k": [1]}), ["f"])


def test_expand_guards_against_huge_outputs() -> None:
    g = bl.from_counts(pl.DataFrame({"f": ["a"], "n": [10**6], "k": [5]}), "f")
    with pytest.raises(bl.BinomlabError, match=r"would make 1,000,000 rows, more than max_rows=10"):
        g.expand(max_rows=10)
    rows = g.expand()
    assert rows.height == 10**6
    assert rows["y"].sum() == 5


def test_arrow_record_batch_source() -> None:
    table = raw_rows(7).to_arrow()
    batch = pa.RecordBatch.from_pandas(table.to_pandas())
    assert bl.group(batch, "colour", "y").equals(bl.group(table, "colour", "y"))
