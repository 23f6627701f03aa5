"""Benchmark training on grouped counts, part 5: the Keras backend's framework overhead.

Part 3's synthetic groups (see ``bench_overhead_lightning.py``; ``--groups``, default 1M,
d = 33), MLP (64, 32), Adam, batch 4,096: ``KerasBackend().fit`` on the encoded arrays against
``model.fit(X, k/n, sample_weight=n)`` on the same arrays (the same network, batch size and
optimiser; ``binary_crossentropy``), side by side in one process (``time.perf_counter``;
``--repeat`` runs, alternating). Target: seconds per epoch after the first (which traces and
compiles) ≤ 1.2×, the best of the later epochs. A diagnostic third contender compiles
binomlab's ``BinomialNLL`` and its metric into a plain ``model.fit(X, [k, n])``: the backend
without its ``GroupBatches`` data class.

TensorFlow gets ``--train-threads`` (default 1) intra- and inter-op threads, torch the same
number of intra-op threads (see ``_harness.py`` for why). Every run also records the process
CPU time.

Usage::

    python benchmarks/bench_overhead_keras.py             # 1M groups, 3 runs
    python benchmarks/bench_overhead_keras.py --quick     # 200k groups, one run
    python benchmarks/bench_overhead_keras.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from _common import verdict  # benchmarks/ is on sys.path when a script runs
from _harness import (
    HIDDEN,
    OVERHEAD_BATCH,
    OVERHEAD_LR,
    Clock,
    Stamp,
    add_overhead_flags,
    best_of_runs,
    encoded_counts,
    fresh_shuffles,
    keras_initial_weights,
    keras_plain_model,
    keras_setup,
    keras_threads,
    keras_versions,
    parse,
    parser,
    run_part,
    synthetic_groups,
)

import binomlab as bl
from binomlab.backends.protocol import TrainConfig, TrainData

KERAS_OVERHEAD_TARGET = 1.2  # KerasBackend epoch <= 1.2 x model.fit with sample weights
KERAS_OVERHEAD_EPOCHS = 4  # the first traces and compiles; the others are the steady state


def keras_backend_epochs(data: TrainData, epochs: int) -> list[Stamp]:
    """KerasBackend().fit on the encoded arrays: cumulative clocks at each epoch's end."""
    from binomlab_keras import KerasBackend

    stamps: list[Stamp] = []
    config = TrainConfig(
        epochs=epochs, batch_size=OVERHEAD_BATCH, lr=OVERHEAD_LR, optimizer="adam", seed=0
    )
    clock = Clock()
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
    clock = Clock()
    model, logit_model = keras_plain_model(X.shape[1], weights, OVERHEAD_LR)
    if binomial:
        from binomlab_keras.backend import default_steps_per_execution
        from binomlab_keras.session import ADAM_EPSILON

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
    fresh_shuffles()
    model.fit(
        **fit_args,
        batch_size=OVERHEAD_BATCH,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[Stamps()],
    )
    return stamps


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    print(f"\n== Part 5: Keras framework overhead, {args.groups:,} groups ==", flush=True)
    keras_setup(args.train_threads)
    grouped = synthetic_groups(args.groups)
    X, k, n, _ = encoded_counts(grouped)
    data = TrainData(X=X, k=k, n=n)
    epochs = KERAS_OVERHEAD_EPOCHS
    contenders: dict[str, Callable[[], list[Stamp]]] = {
        "plain": lambda: keras_plain_epochs(data, epochs),
        "backend": lambda: keras_backend_epochs(data, epochs),
        "binomial": lambda: keras_plain_epochs(data, epochs, binomial=True),
    }
    for run in contenders.values():  # warm-up, untimed
        run()
    runs = best_of_runs(contenders, args.repeat, 9)

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
    lines = [
        f"#### 5. Keras framework overhead: epochs on {args.groups:,} groups",
        "",
        f"- {keras_versions()}; {keras_threads()}",
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
    target = (
        f"- Keras framework, KerasBackend / model.fit with sample weights epoch: {ratio:.2f}× "
        f"(target ≤ {KERAS_OVERHEAD_TARGET:g}×) **{verdict(ratio <= KERAS_OVERHEAD_TARGET)}**"
    )
    return "\n".join(lines), [target]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(__doc__, quick="200k groups, one run: a smoke run")
    add_overhead_flags(p, "keras")
    return parse(p, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_part("bench_overhead_keras", bench, args, threads=args.train_threads)


if __name__ == "__main__":
    sys.exit(main())
