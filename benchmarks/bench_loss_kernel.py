"""Benchmark training on grouped counts, part 2: the loss kernel, forward + backward.

Forward + backward of ``binomial_nll_with_logits(z, k, n)`` against
``torch.nn.BCEWithLogitsLoss()(z, y)`` on float32 logits of the same length (1M and 10M), best
of ``--loss-repeat``, alternating (``time.perf_counter``); with torch's default intra-op
threads (the target) and with one. Target ≤ 1.2×.

Diagnostics beside it: the same loss with integer counts converted on every call, the same
value through the fused BCE kernel (``weight=n``, target ``k/n``), and ``_FusedBinomialNLL``, a
one-node autograd Function sketched here.

Usage::

    python benchmarks/bench_loss_kernel.py             # 1M and 10M, best of 20
    python benchmarks/bench_loss_kernel.py --quick     # 1M, best of 5
    python benchmarks/bench_loss_kernel.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _common import verdict  # benchmarks/ is on sys.path when a script runs
from _harness import DEFAULT_THREADS, SEED, main_part

from binomlab_lightning import binomial_nll_with_logits

LOSS_TARGET = 1.2  # binomial fwd+bwd <= 1.2 x BCEWithLogitsLoss
LENGTHS = [1_000_000, 10_000_000]
LENGTHS_QUICK = [1_000_000]


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


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    print("\n== Part 2: loss kernel, forward + backward ==", flush=True)
    rows = []
    worst = {}
    threads = [DEFAULT_THREADS] + ([1] if DEFAULT_THREADS != 1 else [])
    lengths = LENGTHS_QUICK if args.quick else LENGTHS
    for length, n_threads in ((x, t) for x in lengths for t in threads):
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
    r, r1 = worst[DEFAULT_THREADS], worst.get(1, float("nan"))
    target = (
        f"- loss kernel, binomial / BCE (worst length, {DEFAULT_THREADS} threads): {r:.2f}× "
        f"(target ≤ {LOSS_TARGET:g}×) **{verdict(r <= LOSS_TARGET)}**; with 1 thread {r1:.2f}×"
    )
    return "\n".join(lines), [target]


def main(argv: list[str] | None = None) -> int:
    # torch's default intra-op threads: the target is on them (1 thread is measured beside)
    return main_part(
        "bench_loss_kernel",
        __doc__,
        argv,
        bench,
        quick="1M logits only, best of 5: a smoke run",
        flags=lambda p: p.add_argument(
            "--loss-repeat", type=int, default=None, help="timings (best of; default 20)"
        ),
        threads=0,
    )


if __name__ == "__main__":
    sys.exit(main())
