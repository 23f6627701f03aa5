"""Benchmark training on grouped counts, part 5: the Keras backend's framework overhead.

Part 3's synthetic groups (see ``bench_overhead_lightning.py``; ``--groups``, default 1M,
d = 33), MLP (64, 32), Adam, batch 4,096: ``KerasBackend().fit`` on the encoded arrays against
``model.fit(X, k/n, sample_weight=n)`` on the same arrays (the same network, batch size and
optimiser; ``binary_crossentropy``), side by side in one process (``time.perf_counter``;
``--repeat`` runs, alternating). Target: seconds per epoch after the first (which traces and
compiles) ≤ 1.2×, the best of the later epochs. A diagnostic third contender compiles
binomlab's ``BinomialNLL`` and its metric into a plain ``model.fit(X, [k, n])``. The seconds the
backend's epochs spend in the core's exact NLL of all groups after each epoch (a rule of every
backend, which the plain ``model.fit`` does not run) are clocked apart and printed beside.

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
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from _harness import (  # benchmarks/ is on sys.path when a script runs
    HIDDEN,
    OVERHEAD_BATCH,
    OVERHEAD_LR,
    Clock,
    Stamp,
    backend_epochs,
    fresh_shuffles,
    keras_initial_weights,
    keras_plain_model,
    keras_setup,
    keras_threads,
    keras_versions,
    overhead_data,
    overhead_main,
    run_overhead,
)

from binomlab.backends.protocol import TrainData

KERAS_OVERHEAD_TARGET = 1.2  # KerasBackend epoch <= 1.2 x model.fit with sample weights
KERAS_OVERHEAD_EPOCHS = 4  # the first traces and compiles; the others are the steady state


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


def timing_exact_nll(seconds: list[float], run: Callable[[], list[Stamp]]) -> list[Stamp]:
    """``run()`` with the core's epoch-end metrics (``EpochRules.metrics``) clocked, their
    wall seconds appended to ``seconds``."""
    from binomlab.backends import loop

    original = loop.EpochRules.metrics

    def clocked(rules: loop.EpochRules) -> dict[str, float]:
        start = time.perf_counter()
        try:
            return original(rules)
        finally:
            seconds.append(time.perf_counter() - start)

    loop.EpochRules.metrics = clocked  # type: ignore[method-assign]
    try:
        return run()
    finally:
        loop.EpochRules.metrics = original  # type: ignore[method-assign]


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    print(f"\n== Part 5: Keras framework overhead, {args.groups:,} groups ==", flush=True)
    keras_setup(args.train_threads)
    from binomlab_keras import KerasBackend

    grouped, data, _, _ = overhead_data(args.groups)
    epochs = KERAS_OVERHEAD_EPOCHS
    exact: list[float] = []  # seconds of the core's epoch-end NLL, every backend epoch
    contenders: dict[str, Callable[[], list[Stamp]]] = {
        "plain": lambda: keras_plain_epochs(data, epochs),
        "backend": lambda: timing_exact_nll(
            exact, lambda: backend_epochs(KerasBackend, data, epochs)
        ),
        "binomial": lambda: keras_plain_epochs(data, epochs, binomial=True),
    }
    for run in contenders.values():  # warm-up, untimed
        run()
    runs = run_overhead(contenders, args, reference="plain", target=KERAS_OVERHEAD_TARGET)
    labels = {
        "plain": "model.fit(X, k/n, sample_weight=n), binary_crossentropy",
        "backend": "KerasBackend().fit (bl.fit's training)",
        "binomial": "(model.fit(X, [k, n]) with BinomialNLL + its metric)",
    }
    table = [
        "| contender | epoch 1 s (tracing included) | s / epoch after the first (best) | "
        "/ model.fit | target | | (median s / epoch) | (/ model.fit) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name in contenders:
        table.append(
            f"{runs.row(labels[name], name)} {runs.median(name):.3f} | "
            f"{runs.median(name) / runs.median('plain'):.2f}× |"
        )
    lines = [
        f"#### 5. Keras framework overhead: epochs on {args.groups:,} groups",
        "",
        f"- {keras_versions()}; {keras_threads()}",
        f"- part 3's synthetic groups (d = {data.X.shape[1]}, {grouped.trials:,} trials), "
        f"encoded once; MLP {HIDDEN}, Adam lr {OVERHEAD_LR:g}, batch {OVERHEAD_BATCH:,} groups "
        f"({runs.steps} steps per epoch), reshuffled every epoch; {epochs} epochs per run, the "
        f"first (tracing and compiling) set apart; one untimed warm-up run of each, then "
        f"{args.repeat} runs, alternating; the best of the {args.repeat * (epochs - 1)} later "
        "epochs (their median beside it: other processes share the cores)",
        "- model.fit: the plain model of part 4 (sigmoid output, `binary_crossentropy`) on "
        "numpy arrays; KerasBackend: `KerasBackend().fit(TrainData, None, spec, TrainConfig, "
        "cb)` on the same arrays (on TensorFlow its graph loop, `binomlab_keras.graph_epochs`: "
        "the batches gathered in the graph, the BinomialNLL loss; then the core's exact NLL of "
        "all groups after every epoch); no validation data for either",
        "- wall seconds, process CPU seconds in parentheses",
        "",
        *table,
        "",
        runs.steady_line("KerasBackend", "model.fit"),
        f"- (first epoch, tracing included: KerasBackend "
        f"{runs.first('backend') / runs.first('plain'):.2f}× model.fit's)",
        f"- (of a KerasBackend epoch, the core's exact NLL of the {args.groups:,} groups at its "
        f"end: {statistics.median(exact):.3f} s median over {len(exact)} epochs; the best later "
        f"epoch less that median: {runs.steady('backend') - statistics.median(exact):.3f} s, "
        f"{(runs.steady('backend') - statistics.median(exact)) / runs.steady('plain'):.2f}× "
        "model.fit's)",
        "",
    ]
    target = runs.target_line("Keras framework, KerasBackend / model.fit with sample weights")
    return "\n".join(lines), [target]


def main(argv: list[str] | None = None) -> int:
    return overhead_main("bench_overhead_keras", __doc__, argv, bench, "keras")


if __name__ == "__main__":
    sys.exit(main())
