"""Every public door, case by case: the data kinds each accepts, and the named error each bad
argument gets (issue "Robust at every door")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

import binomlab as bl
from binomlab.testing import synthetic_rows

FEATURES = ["colour", "size", "flag"]


class ArrowStream:
    """Any object with only the Arrow C stream interface (as DuckDB or Ibis results have)."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self._table.__arrow_c_stream__(requested_schema)


@pytest.fixture(scope="module")
def rows() -> pl.DataFrame:
    return synthetic_rows(400, seed=3)


@pytest.fixture(scope="module")
def grouped(rows: pl.DataFrame) -> bl.Grouped:
    return bl.group(rows, FEATURES, "y")


@pytest.fixture(scope="module")
def fitted(grouped: bl.Grouped) -> bl.Fitted:
    return bl.fit(grouped, backend="reference")


@pytest.fixture(scope="module")
def predictor(fitted: bl.Fitted, tmp_path_factory: pytest.TempPathFactory) -> bl.Predictor:
    return bl.load(fitted.export(tmp_path_factory.mktemp("door-model") / "model"))


@pytest.fixture(scope="module")
def files(rows: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("door-files")
    features = rows.select(FEATURES)
    features.write_parquet(folder / "rows.parquet")
    features.write_csv(folder / "rows.csv")
    features.write_ndjson(folder / "rows.ndjson")
    features[:150].write_parquet(folder / "part-0.parquet")
    features[150:].write_parquet(folder / "part-1.parquet")
    return folder


SOURCES = [
    "polars",
    "lazy",
    "pandas",
    "arrow",
    "record batch",
    "arrow stream",
    "dict of lists",
    "dict of arrays",
    "parquet path",
    "parquet str",
    "csv",
    "ndjson",
    "glob",
    "list of paths",
]


def source(kind: str, frame: pl.DataFrame, folder: Path) -> Any:
    """``frame`` (the feature columns of ``rows``) as the source ``kind``."""
    makers = {
        "polars": lambda: frame,
        "lazy": lambda: frame.lazy(),
        "pandas": lambda: frame.to_pandas(),
        "arrow": lambda: frame.to_arrow(),
        "record batch": lambda: frame.to_arrow().to_batches()[0],
        "arrow stream": lambda: ArrowStream(frame.to_arrow()),
        "dict of lists": lambda: frame.to_dict(as_series=False),
        "dict of arrays": lambda: {c: frame[c].to_numpy() for c in frame.columns},
        "parquet path": lambda: folder / "rows.parquet",
        "parquet str": lambda: str(folder / "rows.parquet"),
        "csv": lambda: str(folder / "rows.csv"),
        "ndjson": lambda: folder / "rows.ndjson",
        "glob": lambda: str(folder / "part-*.parquet"),
        "list of paths": lambda: [folder / "part-0.parquet", folder / "part-1.parquet"],
    }
    return makers[kind]()


# --- one reader for every door ------------------------------------------------------------------


@pytest.mark.parametrize("kind", SOURCES)
def test_every_source_gives_identical_predictions(kind, rows, fitted, predictor, files) -> None:
    frame = rows.select(FEATURES)
    expected = fitted.predict_proba(frame)
    assert np.array_equal(fitted.predict_proba(source(kind, frame, files)), expected)
    logits = fitted.predict_logits(source(kind, frame, files))
    assert np.array_equal(logits, fitted.predict_logits(frame))
    assert fitted.predict_phi(source(kind, frame, files)) is None  # the binomial
    lower, upper = fitted.predict_interval(source(kind, frame, files), 10)
    assert lower.shape == upper.shape == (frame.height,)
    served = predictor.predict_proba(source(kind, frame, files))
    assert np.array_equal(served, predictor.predict_proba(frame))
    assert np.allclose(served, expected, atol=1e-6)
    assert np.array_equal(
        predictor.predict_logits(source(kind, frame, files)), predictor.predict_logits(frame)
    )
    lower_p, upper_p = predictor.predict_interval(source(kind, frame, files), 10)
    assert lower_p.shape == upper_p.shape == (frame.height,)


def test_a_single_use_stream_is_read_once_by_predict_interval(rows, fitted) -> None:
    frame = rows.select(FEATURES)
    reader = pa.RecordBatchReader.from_batches(
        frame.to_arrow().schema, frame.to_arrow().to_batches()
    )
    lower, upper = fitted.predict_interval(reader, 10)
    expected = fitted.predict_interval(frame, 10)
    assert np.array_equal(lower, expected[0]) and np.array_equal(upper, expected[1])


def test_the_feature_columns_are_enough_and_extra_columns_are_ignored(rows, fitted) -> None:
    assert np.array_equal(fitted.predict_proba(rows), fitted.predict_proba(rows.select(FEATURES)))
    assert np.array_equal(
        fitted.predict_proba(rows.to_pandas()), fitted.predict_proba(rows.select(FEATURES))
    )


@pytest.mark.parametrize("model", ["fitted", "predictor"])
def test_a_numpy_array_is_refused_with_the_fix(model, rows, request) -> None:
    predict = request.getfixturevalue(model).predict_proba
    array = rows.select("size").to_numpy()
    with pytest.raises(bl.UnsupportedDataError, match=r"numpy array .*Pass named columns"):
        predict(array)
    with pytest.raises(TypeError):  # also a TypeError, as a wrong kind of argument is
        predict(array)


@pytest.mark.parametrize("junk", [42, None, 1.5, object(), [1, 2, 3]])
def test_other_kinds_of_data_are_refused(junk, fitted) -> None:
    with pytest.raises(bl.UnsupportedDataError, match=r"Cannot read data of type"):
        fitted.predict_proba(junk)
    with pytest.raises(bl.UnsupportedDataError, match=r"Cannot read data of type"):
        bl.group(junk, "colour", "y")


def test_bad_dicts_of_columns(fitted) -> None:
    with pytest.raises(bl.UnsupportedDataError, match=r"lengths differ: \{'colour': 1, 'size': 2"):
        fitted.predict_proba({"colour": ["red"], "size": [1, 2], "flag": [True]})
    with pytest.raises(bl.UnsupportedDataError, match=r"string column names.*the key 1"):
        fitted.predict_proba({1: [1]})
    with pytest.raises(bl.ColumnNotFoundError, match=r"Feature 'flag' not found"):
        fitted.predict_proba({"colour": ["red"], "size": [1]})


def test_missing_files_are_named(fitted, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="File not found"):
        fitted.predict_proba(tmp_path / "nope.parquet")
    with pytest.raises(FileNotFoundError, match="No files match"):
        fitted.predict_proba(str(tmp_path / "*.csv"))


def test_group_and_from_counts_read_a_dict_of_columns(rows, grouped) -> None:
    assert bl.group(rows.to_dict(as_series=False), FEATURES, "y").equals(grouped)
    counts = grouped.frame.to_dict(as_series=False)
    assert bl.from_counts(counts, FEATURES).equals(grouped)


def test_the_callers_data_is_never_changed(rows, grouped, fitted) -> None:
    frame = rows.clone()
    pandas = rows.to_pandas()
    pandas_before = pandas.copy()
    columns = rows.to_dict(as_series=False)
    columns_before = {c: list(v) for c, v in columns.items()}
    arrays = {c: rows[c].to_numpy().copy() for c in FEATURES}
    arrays_before = {c: v.copy() for c, v in arrays.items()}
    for data in (frame, pandas, columns):
        bl.group(data, FEATURES, "y", bins={"size": 2})
        fitted.predict_proba(data)
    fitted.predict_proba(arrays)
    counts = grouped.frame.to_pandas()
    counts_before = counts.copy()
    bl.from_counts(counts, FEATURES)
    proba = fitted.predict_proba(grouped)
    proba_before = proba.copy()
    bl.evaluate(grouped, proba)
    bl.calibration(grouped, proba)
    assert_frame_equal(frame, rows)
    pd.testing.assert_frame_equal(pandas, pandas_before)
    pd.testing.assert_frame_equal(counts, counts_before)
    assert columns == columns_before
    for c in FEATURES:
        assert np.array_equal(arrays[c], arrays_before[c])
    assert np.array_equal(proba, proba_before)


# --- grouped data where groups are expected -----------------------------------------------------


def _doors(fitted: bl.Fitted) -> dict[str, Any]:
    return {
        "evaluate": lambda data: bl.evaluate(data, fitted),
        "calibration": lambda data: bl.calibration(data, fitted),
        "compare": lambda data: bl.compare({"m": fitted}, data),
        "ece": lambda data: bl.metrics.expected_calibration_error(data, fitted),
    }


@pytest.mark.parametrize("door", ["evaluate", "calibration", "compare", "ece"])
def test_grouped_doors_read_a_grouped_parquet_file(door, grouped, fitted, tmp_path) -> None:
    call = _doors(fitted)[door]
    grouped.write_parquet(tmp_path / "g.parquet")
    from_file, from_memory = call(tmp_path / "g.parquet"), call(grouped)
    if isinstance(from_memory, pl.DataFrame):
        assert_frame_equal(
            from_file.drop("seconds", strict=False), from_memory.drop("seconds", strict=False)
        )
    else:
        assert from_file == from_memory
    assert call(str(tmp_path / "g.parquet")) is not None


@pytest.mark.parametrize("door", ["evaluate", "calibration", "compare", "ece"])
def test_raw_rows_where_groups_are_expected_say_how_to_group(door, rows, grouped, fitted) -> None:
    call = _doors(fitted)[door]
    for raw in (rows, rows.lazy(), rows.to_pandas(), rows.to_arrow()):
        with pytest.raises(bl.NotGroupedError, match=r"bl\.group\(rows, features, label\)"):
            call(raw)
    with pytest.raises(bl.NotGroupedError, match=r"has n and k columns: .*bl\.from_counts"):
        call(grouped.frame)
    with pytest.raises(TypeError, match=r"must be a Grouped"):
        call(rows)


@pytest.mark.parametrize("door", ["evaluate", "calibration", "compare"])
def test_paths_that_are_no_grouped_file(door, grouped, fitted, tmp_path) -> None:
    call = _doors(fitted)[door]
    grouped.frame.write_parquet(tmp_path / "plain.parquet")
    with pytest.raises(bl.BinomlabError, match=r"not a binomlab Grouped.*from_counts"):
        call(tmp_path / "plain.parquet")
    (tmp_path / "text.parquet").write_text("not parquet")
    with pytest.raises(bl.BinomlabError, match=r"not a parquet file binomlab can read"):
        call(tmp_path / "text.parquet")
    with pytest.raises(FileNotFoundError, match=r"File not found"):
        call(tmp_path / "missing.parquet")


def test_fit_refuses_raw_rows_with_the_grouping_call(rows, grouped) -> None:
    with pytest.raises(bl.NotGroupedError, match=r"train must be a Grouped.*bl\.group\(rows"):
        bl.fit(rows, backend="reference")
    with pytest.raises(bl.NotGroupedError, match=r"val must be a Grouped"):
        bl.fit(grouped, backend="reference", val=rows)


# --- seeds --------------------------------------------------------------------------------------


BAD_SEEDS = ["x", 1.5, -1, True, np.float64(2.0), [1], np.bool_(True)]


@pytest.mark.parametrize("seed", BAD_SEEDS, ids=repr)
def test_split_and_kfold_refuse_bad_seeds(seed, grouped) -> None:
    match = r"Expected seed to be a non-negative integer, None or a numpy\.random\.Generator\. "
    with pytest.raises(bl.BinomlabError, match=match + r"Received: seed="):
        grouped.split(seed=seed)
    with pytest.raises(bl.BinomlabError, match=match):
        grouped.kfold(3, seed=seed)


def test_split_and_kfold_take_numpy_ints_none_and_generators(grouped) -> None:
    for a, b in zip(grouped.split(seed=np.int64(5)), grouped.split(seed=5), strict=True):
        assert a.equals(b)
    assert [
        t.equals(u)
        for (_, t), (_, u) in zip(
            grouped.kfold(3, seed=np.uint8(5)), grouped.kfold(3, seed=5), strict=True
        )
    ] == [True] * 3
    train, test = grouped.split(seed=None)
    assert train.trials + test.trials == grouped.trials
    train, test = grouped.split(seed=np.random.default_rng(1))
    assert train.trials + test.trials == grouped.trials


@pytest.mark.parametrize("seed", ["x", 1.5, -1, True, 2**32], ids=repr)
def test_fit_refuses_bad_seeds(seed, grouped) -> None:
    with pytest.raises(bl.BinomlabError, match=r"seed to be an integer in \[0, 2\*\*32\)"):
        bl.fit(grouped, backend="reference", seed=seed)


def test_fit_takes_a_numpy_seed(grouped) -> None:
    assert bl.fit(grouped, backend="reference", seed=np.int32(3)).config.seed == 3


# --- fractions ----------------------------------------------------------------------------------


@pytest.mark.parametrize("test", [np.float32(0.2), np.float64(0.2), 0.2], ids=repr)
def test_split_takes_numpy_fractions(test, grouped) -> None:
    train, held = grouped.split(test=test, seed=0)
    expected = grouped.split(test=float(test), seed=0)
    assert train.equals(expected[0]) and held.equals(expected[1])


@pytest.mark.parametrize("test", ["0.2", True, 0, 1, 1.5, float("nan"), np.array([0.2])], ids=repr)
def test_split_refuses_bad_fractions(test, grouped) -> None:
    with pytest.raises(bl.BinomlabError, match=r"test must be a fraction strictly between 0 and 1"):
        grouped.split(test=test)


def test_levels_are_fractions(grouped, fitted, rows) -> None:
    lower, upper = bl.wilson_interval(3, 10, level=np.float32(0.9))
    assert 0 < lower < upper < 1
    assert fitted.summary(level=np.float32(0.9)) is not None
    fitted.predict_interval(rows, 10, level=np.float32(0.8))
    for call in (
        lambda level: bl.wilson_interval(3, 10, level=level),
        lambda level: fitted.summary(level=level),
        lambda level: fitted.predict_interval(rows, 10, level=level),
        lambda level: bl.calibration(grouped, fitted, level=level),
    ):
        for bad in ("0.9", True, 1.0, None):
            with pytest.raises(bl.BinomlabError, match=r"level to be in \(0, 1\)\. Received: "):
                call(bad)


# --- booleans -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None, [True]], ids=repr)
def test_drop_null_labels_must_be_a_bool(value, rows) -> None:
    with pytest.raises(bl.BinomlabError, match=r"Expected drop_null_labels to be True or False"):
        bl.group(rows, FEATURES, "y", drop_null_labels=value)
    with pytest.raises(bl.BinomlabError, match=r"Expected drop_null_labels to be True or False"):
        bl.grouping.group_files([], FEATURES, "y", drop_null_labels=value)


def test_every_grouping_path_and_the_registry_check_their_bools() -> None:
    match = r"Expected drop_null_labels to be True or False\. Received: drop_null_labels='no'"
    with pytest.raises(bl.BinomlabError, match=match):  # before any connection is made
        bl.group_sql("t", object(), "f", "y", drop_null_labels="no")
    with pytest.raises(bl.BinomlabError, match=r"Expected progress to be True or False"):
        bl.grouping.group_files([], "f", "y", progress="yes")
    with pytest.raises(bl.BinomlabError, match=r"Expected check to be True or False"):
        bl.backends.available(check="yes")
    assert "reference" in bl.backends.available(check=np.bool_(False))


def test_numpy_bools_are_bools(rows, grouped, fitted) -> None:
    with_null = rows.with_columns(y=pl.when(pl.col("size") == 1).then(None).otherwise("y"))
    dropped = bl.group(with_null, FEATURES, "y", drop_null_labels=np.bool_(True))
    assert dropped.trials == rows.filter(pl.col("size") != 1).height
    plain = bl.calibration(grouped, fitted, overdispersed=np.bool_(False))
    assert (plain["dispersion"] == 1.0).all()
    assert bl.calibration(grouped, fitted, overdispersed=np.bool_(True)).height > 0


# --- callables ----------------------------------------------------------------------------------


def test_one_callable_is_one_callback(grouped, capsys) -> None:
    bl.fit(grouped, backend="reference", callbacks=print)
    assert "train_nll" in capsys.readouterr().out
    seen: list[int] = []
    bl.fit(grouped, backend="reference", callbacks=lambda epoch, metrics: seen.append(epoch))
    assert seen and seen[0] == 1


@pytest.mark.parametrize(
    ("callbacks", "named"), [([42], "42"), ([print, "x"], "'x'"), (42, "42"), ("abc", "'abc'")]
)
def test_a_callback_that_is_not_callable_is_named(callbacks, named, grouped) -> None:
    with pytest.raises(
        bl.BinomlabError, match=rf"list of callables .*Received: {named} in callbacks"
    ):
        bl.fit(grouped, backend="reference", callbacks=callbacks)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("features", [5, None, {"colour": 1}, ["colour", 1]], ids=repr)
def test_features_must_be_names(features, rows, grouped) -> None:
    match = r"Expected features to be a column name or a list of column names"
    with pytest.raises(bl.BinomlabError, match=match):
        bl.group(rows, features, "y")
    with pytest.raises(bl.BinomlabError, match=match):
        bl.from_counts(grouped.frame, features)
    if features is not None:  # None: all the features
        with pytest.raises(bl.BinomlabError, match=match):
            bl.fit(grouped, backend="reference", features=features)


def test_features_take_any_sequence_of_names(rows, grouped) -> None:
    assert bl.group(rows, ("colour", "size"), "y").features == ("colour", "size")
    assert bl.group(rows, pd.Index(["colour"]), "y").features == ("colour",)
    assert bl.fit(grouped, backend="reference", features="colour").features == ("colour",)


# --- counts beyond Int64 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "k", "match"),
    [
        (pl.Series([2**63 + 1], dtype=pl.UInt64), pl.Series([1], dtype=pl.UInt64), "beyond Int64"),
        (pl.Series([1e19]), pl.Series([1.0]), "beyond Int64"),
        (pl.Series([1], dtype=pl.UInt64), pl.Series([2**64 - 1], dtype=pl.UInt64), "beyond Int64"),
        (pl.Series([2**62 + 1, 2**62 + 1]), pl.Series([0, 0]), "sum to more than"),
    ],
)
def test_counts_beyond_int64_are_invalid_counts(n, k, match) -> None:
    frame = pl.DataFrame({"f": ["a"] * len(n), "n": n, "k": k})
    with pytest.raises(bl.InvalidCountsError, match=match):
        bl.from_counts(frame, "f")


def test_the_largest_int64_count_is_kept() -> None:
    frame = pl.DataFrame(
        {"f": ["a"], "n": pl.Series([2**63 - 1], dtype=pl.UInt64), "k": pl.Series([1])}
    )
    assert bl.from_counts(frame, "f").trials == 2**63 - 1


def test_a_grouped_whose_trials_overflow_is_invalid() -> None:
    frame = pl.DataFrame({"f": ["a", "b"], "n": [2**62 + 1, 2**62 + 1], "k": [0, 0]})
    with pytest.raises(bl.InvalidCountsError, match="trials in all"):
        bl.Grouped(frame, ["f"])
