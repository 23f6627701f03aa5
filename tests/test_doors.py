"""Property tests at the public doors: for generated inputs, every call either returns the right
answer (checked by a cheap invariant) or raises a :class:`~binomlab.BinomlabError` — never a raw
library exception, never a silent wrong answer."""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.special import xlogy

import binomlab as bl
from binomlab.testing import synthetic_rows

MAX_COUNT = 2**63 - 1
REFUSED = object()
"""What :func:`at_door` returns for a call refused with a BinomlabError."""

FEATURES = ["colour", "size", "flag"]
KINDS = ["polars", "lazy", "pandas", "arrow", "dict"]


def at_door(call: Callable[[], Any]) -> Any:
    """The call's result, or :data:`REFUSED` when it raises a BinomlabError; any other
    exception propagates and fails the test."""
    try:
        with warnings.catch_warnings():
            # convergence, separation and aliasing warnings are answers, not errors
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            return call()
    except bl.BinomlabError:
        return REFUSED


def as_kind(frame: pl.DataFrame, kind: str) -> Any:
    if kind == "lazy":
        return frame.lazy()
    if kind == "pandas":
        return frame.to_pandas()
    if kind == "arrow":
        return frame.to_arrow()
    if kind == "dict":
        return frame.to_dict(as_series=False)
    return frame


def grouped_from(n: list[int], k: list[int]) -> bl.Grouped:
    return bl.from_counts(pl.DataFrame({"g": list(range(len(n))), "n": n, "k": k}), "g")


def per_group(part: bl.Grouped, size: int, column: str) -> np.ndarray:
    out = np.zeros(size, dtype=np.int64)
    out[part.frame["g"].to_numpy()] = part.frame[column].to_numpy()
    return out


counts = st.lists(st.tuples(st.integers(1, 30), st.floats(0, 1)), min_size=1, max_size=12).map(
    lambda pairs: ([n for n, _ in pairs], [round(n * f) for n, f in pairs])
)
good_seeds = st.one_of(
    st.integers(0, 2**40), st.integers(0, 2**31).map(np.int64), st.integers(0, 255).map(np.uint8)
)
bad_seeds = st.one_of(
    st.integers(max_value=-1),
    st.floats(allow_nan=True),
    st.text(max_size=3),
    st.booleans(),
    st.just([1]),
    st.just(np.float64(3.0)),
)
good_bools = st.one_of(st.booleans(), st.booleans().map(np.bool_))
bad_bools = st.one_of(st.sampled_from(["no", "yes", "False", ""]), st.integers(), st.none())


# --- group ---------------------------------------------------------------------------------------


@st.composite
def raw_rows(draw: st.DrawFn) -> tuple[pl.DataFrame, dict[str, Any]]:
    size = draw(st.integers(0, 25))
    feature = draw(
        st.sampled_from(
            [
                st.sampled_from(["a", "b", "c", None]),
                st.one_of(st.integers(-3, 3), st.none()),
                st.one_of(st.booleans(), st.none()),
            ]
        )
    )
    label_kind = draw(st.sampled_from(["bool", "int", "float", "bad int", "strings", "nulls"]))
    labels = {
        "bool": st.booleans(),
        "int": st.integers(0, 1),
        "float": st.sampled_from([0.0, 1.0]),
        "bad int": st.integers(-1, 2),
        "strings": st.sampled_from(["yes", "no"]),
        "nulls": st.one_of(st.integers(0, 1), st.none()),
    }[label_kind]
    frame = pl.DataFrame(
        {
            "f": draw(st.lists(feature, min_size=size, max_size=size)),
            "y": draw(st.lists(labels, min_size=size, max_size=size)),
        },
        strict=False,
    )
    drop = draw(st.one_of(good_bools, bad_bools))
    return frame, {"drop_null_labels": drop}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_rows(), st.sampled_from(KINDS))
def test_group_counts_every_row_or_refuses(case, kind) -> None:
    frame, kwargs = case
    before = frame.clone()
    got = at_door(lambda: bl.group(as_kind(frame, kind), "f", "y", **kwargs))
    assert frame.equals(before)
    drop = kwargs["drop_null_labels"]
    y = frame["y"]
    if got is REFUSED:
        numeric = y.dtype.is_numeric()
        zero_one = numeric and y.drop_nulls().cast(pl.Float64).is_in([0.0, 1.0]).all()
        binary = y.dtype in (pl.Boolean, pl.Null) or zero_one
        valid = isinstance(drop, bool | np.bool_) and binary and y.drop_nulls().len() > 0
        valid = valid and (drop or y.null_count() == 0)
        assert not valid, "a valid call was refused"
        return
    kept = y.drop_nulls() if drop else y
    assert got.trials == kept.len()
    assert got.successes == int(kept.cast(pl.Int64).sum())
    assert (got.frame["n"] >= 1).all()


# --- from_counts ---------------------------------------------------------------------------------


@st.composite
def count_columns(draw: st.DrawFn) -> tuple[pl.DataFrame, list[Any], list[Any]]:
    dtype = draw(st.sampled_from([pl.Int64, pl.UInt64, pl.Float64, pl.Int32]))
    size = draw(st.integers(1, 6))
    values = {
        pl.Int64: st.one_of(st.integers(-2, 40), st.integers(2**61, MAX_COUNT)),
        pl.UInt64: st.one_of(st.integers(0, 40), st.integers(2**62, 2**64 - 1)),
        pl.Float64: st.one_of(
            st.integers(-2, 40).map(float),
            st.sampled_from([0.5, 1e19, float("nan"), float("inf"), 2.0**62]),
        ),
        pl.Int32: st.integers(-2, 40),
    }[dtype]
    n = draw(st.lists(values, min_size=size, max_size=size))
    k = draw(st.lists(values, min_size=size, max_size=size))
    keys = draw(st.lists(st.sampled_from(["a", "b"]), min_size=size, max_size=size))
    frame = pl.DataFrame(
        {"f": keys, "n": pl.Series(n, dtype=dtype), "k": pl.Series(k, dtype=dtype)}
    )
    return frame, n, k


def valid_counts(n: list[Any], k: list[Any]) -> bool:
    def whole(v: Any) -> bool:
        return bool(np.isfinite(v)) and float(v) == int(v) and 0 <= int(v) <= MAX_COUNT

    if not all(whole(v) for v in (*n, *k)):
        return False
    ints = [(int(a), int(b)) for a, b in zip(n, k, strict=True)]
    return all(b <= a and a >= 1 for a, b in ints) and sum(a for a, _ in ints) <= MAX_COUNT


@settings(max_examples=150, deadline=None)
@given(count_columns())
def test_from_counts_keeps_the_counts_or_refuses_them(case) -> None:
    frame, n, k = case
    before = frame.clone()
    if valid_counts(n, k):
        got = bl.from_counts(frame, "f")
        assert got.trials == sum(int(v) for v in n)
        assert got.successes == sum(int(v) for v in k)
    else:
        with pytest.raises(bl.InvalidCountsError):
            bl.from_counts(frame, "f")
    assert frame.equals(before)


# --- split and kfold -----------------------------------------------------------------------------


fractions = st.one_of(
    st.floats(0, 1), st.floats(0.01, 0.99).map(np.float32), st.floats(0.01, 0.99).map(np.float64)
)
bad_fractions = st.one_of(
    st.sampled_from(["0.2", None, True, np.bool_(True), 2, -0.5, float("nan"), [0.2]])
)


@settings(max_examples=120, deadline=None)
@given(
    counts,
    st.one_of(fractions, bad_fractions),
    st.one_of(good_seeds, st.none(), bad_seeds),
)
def test_split_conserves_trials_or_refuses(case, test, seed) -> None:
    n, k = case
    g = grouped_from(n, k)
    got = at_door(lambda: g.split(test=test, seed=seed))
    good_test = isinstance(test, float | np.floating) and 0 < test < 1
    good_seed = seed is None or (isinstance(seed, int | np.integer) and not isinstance(seed, bool))
    good_seed = good_seed and (seed is None or seed >= 0)
    if got is REFUSED:
        m = int(np.floor(float(test) * sum(n) + 0.5)) if good_test else 0
        assert not (good_test and good_seed and 0 < m < sum(n)), "a valid split was refused"
        return
    assert good_test and good_seed, "a bad argument was taken"
    train, held = got
    assert held.trials == int(np.floor(float(test) * sum(n) + 0.5))
    assert (per_group(train, len(n), "n") + per_group(held, len(n), "n") == n).all()
    assert (per_group(train, len(n), "k") + per_group(held, len(n), "k") == k).all()


@settings(max_examples=80, deadline=None)
@given(
    counts,
    st.one_of(st.integers(-1, 8), st.integers(2, 5).map(np.int64), st.just(2.0), st.just("3")),
    st.one_of(good_seeds, st.just(np.random.default_rng(0)), bad_seeds),
)
def test_kfold_puts_every_trial_in_one_test_fold_or_refuses(case, folds, seed) -> None:
    n, k = case
    g = grouped_from(n, k)
    got = at_door(lambda: g.kfold(folds, seed=seed))
    if got is REFUSED:
        return
    assert isinstance(folds, int | np.integer) and 2 <= folds <= sum(n)
    assert len(got) == folds
    tested = np.zeros(len(n), dtype=np.int64)
    for train, test in got:
        assert train.trials + test.trials == sum(n)
        tested += per_group(test, len(n), "n")
    assert (tested == n).all()


# --- fit -----------------------------------------------------------------------------------------


@st.composite
def small_grouped(draw: st.DrawFn) -> bl.Grouped:
    size = draw(st.integers(1, 8))
    n = draw(st.lists(st.integers(1, 30), min_size=size, max_size=size))
    k = [draw(st.integers(0, m)) for m in n]
    return bl.from_counts(
        pl.DataFrame(
            {
                "a": draw(st.lists(st.sampled_from("xyz"), min_size=size, max_size=size)),
                "b": draw(st.lists(st.integers(0, 3), min_size=size, max_size=size)),
                "n": n,
                "k": k,
            }
        ),
        ["a", "b"],
    )


callbacks = st.sampled_from(
    [
        ((), True),
        (lambda e, m: None, True),
        ([lambda e, m: None], True),
        ([42], False),
        ("x", False),
    ]
)
feature_choices = st.sampled_from(
    [(None, True), ("a", True), (["b"], True), (["a", "b"], True), (5, False), (["c"], False)]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_grouped(), st.one_of(good_seeds, bad_seeds), callbacks, feature_choices)
def test_fit_predicts_probabilities_or_refuses(train, seed, callback, features) -> None:
    callbacks_arg, good_callbacks = callback
    features_arg, good_features = features
    good_seed = isinstance(seed, int | np.integer) and not isinstance(seed, bool)
    good_seed = good_seed and 0 <= seed < 2**32
    fitted = at_door(
        lambda: bl.fit(
            train,
            backend="reference",
            seed=seed,
            callbacks=callbacks_arg,
            features=features_arg,
        )
    )
    if fitted is REFUSED:
        return
    assert good_seed and good_callbacks and good_features, "a bad argument was taken"
    proba = fitted.predict_proba(train)
    assert proba.shape == (len(train),)
    assert np.all((proba >= 0) & (proba <= 1))


# --- predict_proba -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rows() -> pl.DataFrame:
    return synthetic_rows(300, seed=5)


@pytest.fixture(scope="module")
def fitted(rows: pl.DataFrame) -> bl.Fitted:
    return bl.fit(bl.group(rows, FEATURES, "y"), backend="reference")


SEEN = {"colour": ["red", "green", "blue", "grey"], "size": [1, 2, 3, 4, 5], "flag": [True, False]}


@st.composite
def feature_rows(draw: st.DrawFn) -> tuple[pl.DataFrame, bool]:
    """Feature rows, and whether every value is one the model saw (so it must predict)."""
    size = draw(st.integers(0, 12))
    clean = draw(st.booleans()) and size > 0  # no rows: pandas keeps no dtypes
    columns: dict[str, Any] = {}
    for name, seen in SEEN.items():
        values = st.sampled_from(seen)
        if not clean:
            values = st.one_of(values, st.none(), st.sampled_from(["purple", 7, 2.5]))
        columns[name] = draw(st.lists(values, min_size=size, max_size=size))
    frame = pl.DataFrame(columns, strict=False)
    if not clean and draw(st.booleans()):
        frame = frame.drop(draw(st.sampled_from(FEATURES)))
    return frame, clean


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feature_rows(), st.sampled_from(KINDS))
def test_predict_proba_gives_one_probability_per_row_or_refuses(fitted, case, kind) -> None:
    frame, clean = case
    before = frame.clone()
    proba = at_door(lambda: fitted.predict_proba(as_kind(frame, kind)))
    assert frame.equals(before)
    if proba is REFUSED:
        assert not clean, "rows of seen values were refused"
        return
    assert proba.dtype == np.float64
    assert proba.shape == (frame.height,)
    assert np.all((proba >= 0) & (proba <= 1))
    reference = at_door(lambda: fitted.predict_proba(frame))
    if reference is not REFUSED:
        assert np.array_equal(proba, reference)


# --- evaluate ------------------------------------------------------------------------------------


@st.composite
def evaluate_cases(draw: st.DrawFn) -> tuple[bl.Grouped, Any, bool]:
    n, k = draw(counts)
    g = grouped_from(n, k)
    proba = np.array(draw(st.lists(st.floats(0.01, 0.99), min_size=len(n), max_size=len(n))))
    mutation = draw(st.sampled_from(["none", "nan", "above", "length", "strings", "rows"]))
    if mutation == "nan":
        proba[0] = np.nan
    elif mutation == "above":
        proba[-1] = 1.5
    elif mutation == "length":
        proba = np.append(proba, 0.5)
    elif mutation == "strings":
        proba = proba.astype(str)
    return g, proba, mutation


@settings(max_examples=120, deadline=None)
@given(evaluate_cases())
def test_evaluate_nll_is_the_raw_row_log_loss_or_refuses(case) -> None:
    g, proba, mutation = case
    before = proba.copy()
    data = g.expand() if mutation == "rows" else g
    try:
        result = at_door(lambda: bl.evaluate(data, proba))
    except TypeError:  # non-numeric probabilities: documented as a TypeError
        assert mutation == "strings"
        return
    np.testing.assert_array_equal(proba, before)  # NaN equal to NaN
    if result is REFUSED:
        assert mutation != "none"
        return
    assert mutation == "none"
    y = g.expand()["y"].to_numpy()
    p = np.repeat(proba, g.frame["n"].to_numpy())
    raw_nll = -np.mean(xlogy(y, p) + xlogy(1 - y, 1 - p))
    assert result["nll"] == pytest.approx(raw_nll, rel=1e-9)
    assert result["trials"] == len(y)


# --- the diagnostics: reliability, decomposition, bias, intervals, paired test ----------------


DIAGNOSTICS = {
    "reliability": lambda data, p: bl.reliability(data, p, bands="consistency", resamples=100),
    "decompose": lambda data, p: bl.decompose(data, p),
    "bias": lambda data, p: bl.bias(data, p),
    "metric_intervals": lambda data, p: bl.metric_intervals(data, p, resamples=10),
    "paired_test": lambda data, p: bl.paired_test(data, p, np.full(len(p), 0.5)),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evaluate_cases(), st.sampled_from(sorted(DIAGNOSTICS)))
def test_diagnostics_agree_with_the_rows_or_refuse(case, door) -> None:
    """Each diagnostic refuses bad probabilities and raw rows with a BinomlabError (or the
    documented TypeError for strings), never changes its input, and on good input gives the
    raw rows' numbers: the per-trial log loss, the trials, the isotonic fit's range."""
    g, proba, mutation = case
    before = proba.copy()
    data = g.expand() if mutation == "rows" else g
    try:
        result = at_door(lambda: DIAGNOSTICS[door](data, proba))
    except TypeError:
        assert mutation == "strings"
        return
    np.testing.assert_array_equal(proba, before)
    if result is REFUSED:
        assert mutation != "none"
        return
    assert mutation == "none"
    y = g.expand()["y"].to_numpy()
    p = np.repeat(proba, g.frame["n"].to_numpy())
    raw_nll = -np.mean(xlogy(y, p) + xlogy(1 - y, 1 - p))
    if door == "decompose":
        score = result.filter(pl.col("scoring") == "log_loss")["score"].item()
        assert score == pytest.approx(raw_nll, rel=1e-9)
    elif door == "metric_intervals":
        assert result["estimate"][0] == pytest.approx(raw_nll, rel=1e-9)
    elif door == "reliability":
        assert result["trials"].sum() == len(y)
        curve = result["recalibrated"].to_numpy()
        assert np.all(np.diff(curve) >= 0) and curve.min() >= 0 and curve.max() <= 1
    elif door == "bias":
        assert result["trials"].sum() == len(y)
    else:
        mean = raw_nll + np.mean(y * np.log(0.5) + (1 - y) * np.log(0.5))
        assert result["difference"] == pytest.approx(mean, rel=1e-9, abs=1e-12)


# --- load ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(fitted: bl.Fitted, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted.export(tmp_path_factory.mktemp("doors-export") / "model")


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON value (the root included)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _paths(item, (*prefix, index))
    return out


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=4),
    st.just([]),
    st.just({}),
    st.just(["x"]),
)


@st.composite
def edited_manifests(draw: st.DrawFn, manifest: dict[str, Any]) -> str:
    """The manifest's text with one key deleted, one value replaced, or cut short."""
    text = json.dumps(manifest)
    action = draw(st.sampled_from(["delete", "replace", "truncate"]))
    if action == "truncate":
        return text[: draw(st.integers(0, len(text) - 1))]
    path = draw(st.sampled_from(_paths(manifest)[1:]))
    edited = json.loads(text)
    parent = edited
    for key in path[:-1]:
        parent = parent[key]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(json_values)
    return json.dumps(edited)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_load_refuses_edited_manifests_with_a_model_file_error(exported, rows, data) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    text = data.draw(edited_manifests(manifest), label="manifest.json")
    assume(text != json.dumps(manifest))
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(shutil.copytree(exported, Path(folder) / "model"))
        (copy / "manifest.json").write_text(text)
        try:
            predictor = bl.load(copy)
        except bl.ModelFileError:
            return
        proba = at_door(lambda: predictor.predict_proba(rows))
    if proba is not REFUSED:
        assert proba.shape == (rows.height,)
        assert np.all((proba >= 0) & (proba <= 1))
