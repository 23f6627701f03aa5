"""The end-to-end demo behind ``binomlab demo`` (and ``make demo``).

nycflights13 flights → grouped counts → exact split → the logistic spec and an MLP on every
installed network backend, boosted trees on every backend that grows them → leaderboard with
a statsmodels GLM baseline → calibration figure → every model exported and loaded back through
onnxruntime.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from binomlab import backends, datasets
from binomlab.calibration import plot_calibration
from binomlab.compare import compare
from binomlab.encoding import Encoder
from binomlab.export import load
from binomlab.grouped import Grouped
from binomlab.grouping import group
from binomlab.progress import TrainingBar
from binomlab.training import Fitted, fit

__all__ = ["run_demo"]

# distance is left out: origin and dest determine it, so its bins would be aliased columns of
# the logistic design (not identified)
FEATURES = ["carrier", "origin", "dest", "month", "hour"]
MLP = "mlp:64,32"
TREES = "gbdt:400,31"
"""Boosted trees: at most 400, in epochs of 10, the best epoch on the validation split."""
# Some destinations have no delayed flight in train (complete separation): their maximum-
# likelihood logit is -inf. A small L2 penalty on the weights gives every backend, and
# statsmodels, the same finite optimum.
RIDGE = 1e-4


def _statsmodels_glm(train: Grouped, test: Grouped) -> np.ndarray | None:
    """statsmodels' binomial GLM on the same encoded groups and the same penalty: the baseline.

    Our objective is NLL/Σn + RIDGE/2·‖w‖²; statsmodels' ``fit_regularized`` minimises
    −loglike/groups + α/2·‖β‖², so α = RIDGE·Σn/groups on the weights and 0 on the constant.
    """
    try:
        import statsmodels.api as sm
    except ImportError:
        return None
    encoder = Encoder.fit(train)
    X = sm.add_constant(encoder.transform(train).astype(np.float64), has_constant="add")
    counts = train.frame.select("k", n_minus_k=pl.col("n") - pl.col("k")).to_numpy()
    alpha = np.full(X.shape[1], RIDGE * train.trials / len(train))
    alpha[0] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = sm.GLM(counts, X, family=sm.families.Binomial()).fit_regularized(
            alpha=alpha, L1_wt=0.0
        )
    X_test = sm.add_constant(encoder.transform(test).astype(np.float64), has_constant="add")
    return np.asarray(result.predict(X_test), dtype=np.float64)


def _p_text(p_value: float | None) -> str:
    """A p-value as a leaderboard shows it: "best" for the best row, "<1e-4" when tiny."""
    if p_value is None:
        return "best"
    return "<1e-4" if p_value < 1e-4 else f"{p_value:.2g}"


def _plan(quick: bool) -> list[tuple[str, str, dict[str, Any]]]:
    """(name, backend, fit options) for every model the installed backends can train."""
    plan = []
    for name in backends.available(check=True):
        engine = backends.get(name)
        if "logistic" in engine.specs:
            plan.append((f"logistic/{name}", name, {"model": "logistic", "weight_decay": RIDGE}))
        if "gbdt" in engine.specs:
            trees = "gbdt:60,31" if quick else TREES
            options = {"model": trees, "epochs": 6 if quick else 40, "early_stopping": 3}
            plan.append((f"{trees}/{name}", name, options))
        if "mlp" in engine.specs:
            options = {"model": MLP, "optimizer": "adam", "epochs": 3 if quick else 10,
                       "batch_size": 512, "lr": 3e-3, "early_stopping": 2}  # fmt: skip
            plan.append((f"{MLP}/{name}", name, options))
    return plan


def run_demo(out: Path, *, quick: bool = False, quiet: bool = False) -> pl.DataFrame:
    """Run the demo, print as it goes, write figures and models under ``out``; return the
    leaderboard."""
    say = (lambda *a: None) if quiet else print
    start = time.perf_counter()
    rows = datasets.flights().with_columns(pl.col("month", "hour").cast(pl.String))
    say(f"nycflights13 flights: {rows.height:,} rows; label delayed = arr_delay > 15 min")
    grouped = group(rows, FEATURES, "delayed", drop_null_labels=True)
    say(f"grouped by {', '.join(FEATURES)} (month and hour as categories; distance left out, "
        f"as origin and dest determine it):\n  {grouped.summary()}")  # fmt: skip
    say(f"logistic models: Newton to the optimum with an L2 penalty of {RIDGE:g} on the weights; "
        f"{MLP}: Adam, and boosted trees ({TREES}, where a backend grows them): best epoch "
        "on a 10% validation split of train")  # fmt: skip
    train, test = grouped.split(0.2, seed=0)
    val_train, val = train.split(0.1, seed=1)
    say(f"exact split of the trials: train {train.trials:,}, test {test.trials:,} "
        f"({len(train):,} / {len(test):,} groups)\n")  # fmt: skip

    models: dict[str, Any] = {}
    for name, backend, options in _plan(quick):
        epochs = options.get("epochs")
        # the epoch-by-epoch runs pick their best epoch on the validation split
        chosen = "early_stopping" in options
        data, validation = (val_train, val) if chosen else (train, None)
        with TrainingBar(epochs, f"{name:<24}", enabled=not quiet) as bar:
            models[name] = fit(data, backend=backend, val=validation, seed=0, callbacks=[bar],
                               **options)  # fmt: skip
    baseline = _statsmodels_glm(train, test)
    if baseline is not None:
        models["logistic/statsmodels"] = baseline

    board = compare(models, test)
    with pl.Config(tbl_hide_dataframe_shape=True, float_precision=4, tbl_rows=20,
                   tbl_width_chars=160, tbl_cols=-1,
                   tbl_hide_column_data_types=True):  # fmt: skip
        say("\nleaderboard on the held-out test trials (per-trial metrics = raw-row metrics):")
        say(board.select("model", "params", "nll",
                         pl.format("[{}, {}]", pl.col("nll_lower").round(4),
                                   pl.col("nll_upper").round(4)).alias("nll 95%"),
                         pl.Series("p vs best", [_p_text(v) for v in board["nll_vs_best_p"]]),
                         "brier", "auc", "ece", "dispersion", "seconds", "epochs"))  # fmt: skip
        say("(intervals over the test trials; 'p vs best': paired test of the per-trial log "
            "loss against the best model on the same trials)")  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_calibration(test, models, strategy="corp", band=None)
    ax.figure.savefig(out / "calibration.png", dpi=120, bbox_inches="tight")
    say(f"\nwrote {out / 'calibration.png'}")
    probe = test.frame.head(1000)
    for name, model in models.items():
        if isinstance(model, Fitted):
            folder = out / "models" / name.replace("/", "-").replace(":", "_")
            path = model.export(folder, overwrite=True)  # the demo owns its output folder
            served = load(path)
            gap = float(np.max(np.abs(served.predict_proba(probe) - model.predict_proba(probe))))
            say(f"exported {path}  (onnxruntime vs {model.backend}: max |Δp| = {gap:.1e})")
    say(f"\ndone in {time.perf_counter() - start:.0f}s")
    return board
