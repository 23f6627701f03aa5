"""Benchmark the index form of the encoded features (integer codes and a lookup first layer)
against the one-hot matrix it replaces.

1. **A grouped training step** of the flights MLP (64, 32) on a batch of 1,024 groups:
   forward, backward and one Adam step of Lightning's network, built by
   ``binomlab_lightning.module.build_network`` from the same seed for both inputs (the
   one-hot ``[1024, d]`` matrix, or ``[1024, features]`` codes), timed alternately in one
   process (median of ``--repeat`` blocks of ``--steps`` steps, one torch thread). Target:
   the index step ≥ 3× faster.
   The same step is timed at high cardinality too (reported, no target): synthetic groups
   over three features of 20,000 + 5,000 + 200 levels (a one-hot width of 25,200), on
   ``HIGH_BATCHES`` batches whose one-hot matrix is built for the comparison only.
2. **Memory of the encoded training data**: bytes of ``X`` in both forms (reported).
3. **Serving parity**: an index-form MLP and an embedding MLP trained on the flights groups,
   exported and served by ``bl.load`` (onnxruntime); largest logit difference on the
   validation groups. Target ≤ 1e-5.

Usage::

    python benchmarks/bench_index_inputs.py            # 10 blocks of 200 steps
    python benchmarks/bench_index_inputs.py --quick    # 3 blocks of 50 steps
    python benchmarks/bench_index_inputs.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import load_average, machine_line, now_line, verdict, write_markdown
from _harness import load_flights

import binomlab as bl
from binomlab.encoding import Encoder
from binomlab.layout import IndexLayout
from binomlab.specs import MLP
from binomlab_lightning.loss import binomial_nll_with_logits
from binomlab_lightning.module import build_network

BATCH = 1024
HIDDEN = (64, 32)
STEP_TARGET = 3.0
PARITY_TARGET = 1e-5


def _step_seconds(
    X: np.ndarray, k: np.ndarray, n: np.ndarray, layout: IndexLayout | None, steps: int
) -> float:
    """Seconds per Adam step of the MLP on ``X`` (cycling through its batches)."""
    torch.manual_seed(0)
    net = build_network(MLP(hidden=HIDDEN), X.shape[1], layout=layout)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    x, kk, nn = (torch.from_numpy(np.ascontiguousarray(a, np.float32)) for a in (X, k, n))
    batches = [
        (x[i : i + BATCH], kk[i : i + BATCH], nn[i : i + BATCH])
        for i in range(0, x.shape[0] - BATCH + 1, BATCH)
    ]
    start = time.perf_counter()
    for step in range(steps):
        xb, kb, nb = batches[step % len(batches)]
        optimizer.zero_grad()
        loss = binomial_nll_with_logits(net(xb), kb, nb, reduction="sum") / nb.sum()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


HIGH_LEVELS = {"site": 20_000, "ad": 5_000, "hour": 200}
HIGH_BATCHES = 2


def _high_cardinality(steps: int, repeat: int) -> dict[str, float]:
    """Median seconds per step, index vs one-hot, at the high-cardinality shapes."""
    import polars as pl

    rng = np.random.default_rng(0)
    rows = 400_000
    frame = pl.DataFrame(
        {f: rng.integers(0, levels, rows).astype(str) for f, levels in HIGH_LEVELS.items()}
        | {"y": rng.random(rows) < 0.1}
    )
    groups = bl.group(frame, list(HIGH_LEVELS), "y")
    encoder = Encoder.fit(groups, design="one-hot", form="index")
    X = encoder.transform(groups)[: HIGH_BATCHES * BATCH]
    dense = encoder.layout.dense(X)
    k = groups.frame["k"].to_numpy()[: len(X)].astype(np.float32)
    n = groups.frame["n"].to_numpy()[: len(X)].astype(np.float32)
    times: dict[str, list[float]] = {"index": [], "dense": []}
    for _ in range(repeat):
        times["index"].append(_step_seconds(X, k, n, encoder.layout, steps))
        times["dense"].append(_step_seconds(dense, k, n, None, steps))
    return {form: statistics.median(t) for form, t in times.items()} | {
        "width": float(encoder.layout.width)
    }


def _parity(flights: object, tmp: Path) -> dict[str, float]:
    """Largest |logit difference| of served against trained models, index and embeddings."""
    train, val = flights.train, flights.val
    out = {}
    for label, spec in (("index MLP", MLP(hidden=(16,))), ("embedding MLP", MLP((16,), embed=4))):
        fitted = bl.fit(train, model=spec, backend="lightning", epochs=2, seed=0)
        served = bl.load(fitted.export(tmp / label.replace(" ", "-")))
        out[label] = float(np.max(np.abs(served.predict_logits(val) - fitted.predict_logits(val))))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200, help="steps per timed block")
    p.add_argument("--repeat", type=int, default=10, help="timed blocks per contender")
    p.add_argument("--quick", action="store_true", help="3 blocks of 50 steps")
    p.add_argument("--markdown", help="write the summary block to this file")
    p.add_argument("--append", action="store_true", help="append to --markdown")
    args = p.parse_args()
    if args.quick:
        args.steps, args.repeat = 50, 3
    torch.set_num_threads(1)
    load_at_start = load_average()
    flights = load_flights()
    train = flights.train
    forms = {}
    for form in ("index", "dense"):
        encoder = Encoder.fit(train, design="one-hot", form=form)
        forms[form] = (encoder.transform(train), encoder.layout)
    k = train.frame["k"].to_numpy().astype(np.float32)
    n = train.frame["n"].to_numpy().astype(np.float32)
    width = forms["dense"][0].shape[1]
    times: dict[str, list[float]] = {"index": [], "dense": []}
    for _ in range(args.repeat):  # alternate, so drifts of the machine hit both
        for form, (X, layout) in forms.items():
            times[form].append(_step_seconds(X, k, n, layout, args.steps))
    median = {form: statistics.median(t) for form, t in times.items()}
    speedup = median["dense"] / median["index"]
    memory = {form: X.nbytes for form, (X, _) in forms.items()}
    with tempfile.TemporaryDirectory() as tmp:
        parity = _parity(flights, Path(tmp))
    high = _high_cardinality(max(5, args.steps // 10), args.repeat)
    high_speedup = high["dense"] / high["index"]

    section = "\n".join(
        [
            f"Flights train part: {len(train):,} groups, {len(train.features)} features, "
            f"one-hot width {width}; MLP {HIDDEN}, Adam, batches of {BATCH:,} groups, "
            f"{args.repeat} alternating blocks of {args.steps} steps, one torch thread.",
            "",
            "| input | ms per step (median) | encoded train X |",
            "|---|---:|---:|",
            f"| one-hot `[groups × {width}]` | {median['dense'] * 1e3:.3f} | "
            f"{memory['dense'] / 2**20:.1f} MiB |",
            f"| index `[groups × {forms['index'][0].shape[1]}]` | {median['index'] * 1e3:.3f} | "
            f"{memory['index'] / 2**20:.1f} MiB |",
            "",
            f"At high cardinality (one-hot width {high['width']:,.0f}): one-hot "
            f"{high['dense'] * 1e3:.1f} ms, index {high['index'] * 1e3:.2f} ms per step.",
            "",
            f"- high-cardinality step, index vs one-hot: ms per step = **{high_speedup:.1f}×**",
            "",
            *(f"- served vs trained, {name}: max |Δ logit| {v:.2g}" for name, v in parity.items()),
            "",
        ]
    )
    worst = max(parity.values())
    targets = [
        f"- grouped step, index vs one-hot: {speedup:.2f}× (target ≥ {STEP_TARGET:g}×) "
        f"**{verdict(speedup >= STEP_TARGET)}**",
        f"- ONNX parity of index and embedding models through bl.load: {worst:.2g} (target ≤ "
        f"{PARITY_TARGET:g}) **{verdict(worst <= PARITY_TARGET)}**",
    ]
    title = "### bench_index_inputs" + (" (--quick)" if args.quick else "")
    block = "\n".join(
        [
            title,
            "",
            now_line(),
            machine_line(),
            f"- 1-min load average: {load_at_start} at start, {load_average()} at the end",
            "",
            section,
            "Targets:",
            "",
            *targets,
            "",
        ]
    )
    print(block)
    write_markdown(block, args.markdown, append=args.append)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
