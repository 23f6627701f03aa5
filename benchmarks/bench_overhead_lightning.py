"""Benchmark training on grouped counts, part 3: the Lightning backend's framework overhead.

``--groups`` (default 1M) synthetic groups, d = 33 encoded columns, MLP (64, 32), Adam, batch
4,096 groups: the Lightning backend (``LightningBackend().fit`` on the encoded arrays, and the
whole ``bl.fit`` call) against a hand-written PyTorch loop over the same in-memory tensors
(same network, optimiser, batch size, shuffling, loss), side by side in one process
(``time.perf_counter``; best of ``--repeat``, alternating). Target: the second (steady-state)
epoch ≤ 1.3× the hand loop's second epoch; the first epoch, which carries the one-time
set-up, is reported beside it. A diagnostic fourth contender is the hand loop gathering its
batches with ``index_select``.

Runs with one torch intra-op thread (``--train-threads``, 0 for torch's default; see
``_harness.py`` for why). Every run also records the process CPU time.

Usage::

    python benchmarks/bench_overhead_lightning.py             # 1M groups, best of 3
    python benchmarks/bench_overhead_lightning.py --quick     # 200k groups, one run
    python benchmarks/bench_overhead_lightning.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import torch
from _harness import (  # benchmarks/ is on sys.path when a script runs
    HIDDEN,
    OVERHEAD_BATCH,
    OVERHEAD_LR,
    Clock,
    Stamp,
    backend_epochs,
    initial_network,
    overhead_data,
    overhead_main,
    run_overhead,
)

import binomlab as bl
from binomlab.backends.protocol import TrainData
from binomlab_lightning import LightningBackend, binomial_nll_with_logits

OVERHEAD_TARGET = 1.3  # Lightning epoch <= 1.3 x hand-written loop


def hand_loop(data: TrainData, epochs: int, *, index_select: bool = False) -> list[Stamp]:
    """The hand-written loop: cumulative clocks at each epoch's end, set-up included.

    ``index_select`` (diagnostic) gathers the batch with ``Tensor.index_select`` instead of
    ``X[batch]`` (the way GroupBatches and most hand-written loops do it)."""
    clock = Clock()
    X = torch.from_numpy(data.X)
    k = torch.from_numpy(data.k).float()
    n = torch.from_numpy(data.n).float()
    net = initial_network(X.shape[1], float(data.k.sum() / data.n.sum()))
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


def fit_call(grouped: bl.Grouped, epochs: int) -> list[Stamp]:
    """The whole bl.fit call (encoding of the groups included); the last stamp is its return."""
    stamps: list[Stamp] = []
    clock = Clock()
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


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    print(f"\n== Part 3: framework overhead, {args.groups:,} groups ==", flush=True)
    grouped, data, made, encode_seconds = overhead_data(args.groups)
    d = data.X.shape[1]
    print(
        f"built in {made:.1f} s; {len(grouped):,} groups, {grouped.trials:,} trials, "
        f"d = {d}; Encoder.fit + transform {encode_seconds:.2f} s",
        flush=True,
    )
    contenders: dict[str, Callable[[], list[Stamp]]] = {
        "hand": lambda: hand_loop(data, 2),
        "backend": lambda: backend_epochs(LightningBackend, data, 2),
        "fit": lambda: fit_call(grouped, 1),
        "hand_select": lambda: hand_loop(data, 2, index_select=True),
    }
    hand_loop(data, 1)  # warm-up, untimed: first allocations, first Trainer
    backend_epochs(LightningBackend, data, 1)
    runs = run_overhead(contenders, args, reference="hand", target=OVERHEAD_TARGET)
    first = runs.first
    fit_total = min(s[-1][0] for s in runs.runs["fit"])
    fit_total_cpu = min(s[-1][1] for s in runs.runs["fit"])
    lines = [
        f"#### 3. Framework overhead: one epoch on {args.groups:,} groups",
        "",
        f"- synthetic groups: 3 standardised integer features + 3 one-hot string features, "
        f"d = {d}, {grouped.trials:,} trials; MLP {HIDDEN}, Adam lr {OVERHEAD_LR:g}, "
        f"batch {OVERHEAD_BATCH:,} groups ({runs.steps} steps per epoch), reshuffled every "
        f"epoch; one untimed warm-up run of each, then best of {args.repeat}, alternating; torch "
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
        runs.row("hand-written torch loop", "hand"),
        runs.row("LightningBackend().fit", "backend"),
        f"| bl.fit(..., epochs=1), whole call | {first('fit'):.3f} ({first('fit', 1):.3f}); "
        f"returned at {fit_total:.3f} ({fit_total_cpu:.3f}) | | | | |",
        runs.row("(hand loop gathering with index_select)", "hand_select"),
        "",
        runs.steady_line("LightningBackend", "hand loop", cpu_per_step=True),
        f"- (first epoch, one-time set-up included: LightningBackend "
        f"{first('backend') / first('hand'):.2f}×; the whole bl.fit call {fit_total:.3f} s is "
        f"{fit_total / first('hand'):.2f}× the hand loop's first epoch on pre-encoded tensors, "
        f"{fit_total / (first('hand') + encode_seconds):.2f}× with the encoding added to it)",
        "",
    ]
    return "\n".join(lines), [runs.target_line("Lightning framework, LightningBackend / hand loop")]


def main(argv: list[str] | None = None) -> int:
    return overhead_main("bench_overhead_lightning", __doc__, argv, bench, "torch")


if __name__ == "__main__":
    sys.exit(main())
