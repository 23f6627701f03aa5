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
import time
from collections.abc import Callable

import torch
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
    initial_network,
    parse,
    parser,
    run_part,
    synthetic_groups,
)

import binomlab as bl
from binomlab.backends.protocol import TrainConfig, TrainData
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


def backend_loop(data: TrainData, epochs: int) -> list[Stamp]:
    """LightningBackend().fit on the encoded arrays: cumulative clocks at each epoch's end."""
    stamps: list[Stamp] = []
    config = TrainConfig(
        epochs=epochs, batch_size=OVERHEAD_BATCH, lr=OVERHEAD_LR, optimizer="adam", seed=0
    )
    clock = Clock()
    LightningBackend().fit(data, None, bl.MLP(HIDDEN), config, lambda e, m: stamps.append(clock()))
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
    t0 = time.perf_counter()
    grouped = synthetic_groups(args.groups)
    made = time.perf_counter() - t0
    X, k, n, encode_seconds = encoded_counts(grouped)
    data = TrainData(X=X, k=k, n=n)
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
    runs = best_of_runs(contenders, args.repeat, 12)

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
    target = (
        f"- Lightning framework, LightningBackend / hand loop epoch: {steady:.2f}× (target ≤ "
        f"{OVERHEAD_TARGET:g}×) **{verdict(steady <= OVERHEAD_TARGET)}**"
    )
    return "\n".join(lines), [target]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = parser(__doc__, quick="200k groups, one run: a smoke run")
    add_overhead_flags(p, "torch")
    return parse(p, argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return run_part("bench_overhead_lightning", bench, args, threads=args.train_threads)


if __name__ == "__main__":
    sys.exit(main())
