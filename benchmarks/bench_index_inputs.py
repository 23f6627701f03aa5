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
4. **Test NLL of the best network against LightGBM on the same groups**: the flights of the
   LightGBM race (``bench_race_lightgbm.py``: carrier, origin, dest, month and hour as
   categories, distance in 10 quantile bins; grouped once, split exactly 80/20 on the counts
   with ``split(0.2, seed=0)``, then 10% of train for validation with ``split(0.1, seed=1)``).
   The peer is ``lightgbm.train`` itself on the groups' level codes (all categorical):
   ``objective="cross_entropy"``, label k/n, weight n, 31 leaves, learning rate 0.1, early
   stopping after 30 rounds on the validation part, one thread, in two settings (LightGBM's
   defaults, whose ``min_data_in_leaf`` and ``cat_smooth`` count groups here, and
   binomlab-lightgbm's count-aware ones); the peer is the setting with the lower validation
   NLL. The networks are what a user gets without tuning: ``bl.fit(model=bl.MLP(embed=...),
   backend="lightning")`` with its defaults (20 epochs of Adam, 1,024 groups per batch, lr
   1e-2), the validation part as ``val`` (best epoch) or ``early_stopping=3``, or no ``val``
   on all of train; ``NLL_SEEDS`` seeds each, the median test NLL per variant. Target: the
   best variant's test NLL ≤ 1.001 × LightGBM's.

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

import lightgbm as lgb
import numpy as np
import polars as pl
import torch
from _common import load_average, machine_line, now_line, verdict, write_markdown
from _harness import load_flights

import binomlab as bl
from binomlab import datasets
from binomlab.encoding import Encoder
from binomlab.layout import IndexLayout
from binomlab.nll import grouped_nll
from binomlab.specs import MLP
from binomlab_lightning.loss import binomial_nll_with_logits
from binomlab_lightning.module import build_network

BATCH = 1024
HIDDEN = (64, 32)
STEP_TARGET = 3.0
PARITY_TARGET = 1e-5
NLL_TARGET = 1.001  # the best network's test NLL / LightGBM's
NLL_FEATURES = ["carrier", "origin", "dest", "month", "hour", "distance"]
NLL_SEEDS = 3
LGB_PARAMS = {
    "objective": "cross_entropy",
    "num_leaves": 31,
    "learning_rate": 0.1,
    "num_threads": 1,
    "deterministic": True,
    "force_col_wise": True,
    "seed": 0,
    "verbosity": -1,
}
LGB_SETTINGS = {  # the peer's two settings; the one with the lower validation NLL is the peer
    "LightGBM defaults": {},
    "count-aware (binomlab-lightgbm's)": {
        "min_data_in_leaf": 0,
        "min_sum_hessian_in_leaf": 1.0,
        "min_data_per_group": 1,
        "min_data_in_bin": 1,
        "cat_smooth": 0.0,
    },
}
NETWORKS = {  # what a user gets without tuning: bl.fit's defaults (20 epochs, Adam)
    "MLP(embed='auto'), val=": ({"embed": "auto"}, {"val": True}),
    "MLP(embed='auto'), val=, early_stopping=3": (
        {"embed": "auto"},
        {"val": True, "early_stopping": 3},
    ),
    "MLP(embed='auto'), no val, all of train": ({"embed": "auto"}, {"val": False}),
    "MLP() (integer codes, no embeddings), val=": ({}, {"val": True}),
}


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


def _lightgbm_groups() -> tuple[bl.Grouped, bl.Grouped, bl.Grouped, bl.Grouped]:
    """The LightGBM race's flights and split: train, its fit and validation parts, test."""
    rows = datasets.flights().with_columns(pl.col("month", "hour").cast(pl.String))
    groups = bl.group(rows, NLL_FEATURES, "delayed", bins={"distance": 10}, drop_null_labels=True)
    train, test = groups.split(0.2, seed=0)
    fit_part, val = train.split(0.1, seed=1)
    return train, fit_part, val, test


def _lightgbm(fit_part: bl.Grouped, val: bl.Grouped, test: bl.Grouped) -> dict[str, dict]:
    """``lightgbm.train`` on the groups' level codes in each of ``LGB_SETTINGS``: its best
    validation NLL, test NLL, trees and seconds."""
    encoder = Encoder.fit(fit_part, design="one-hot", form="index")
    layout = encoder.layout
    firsts = np.asarray(layout.firsts)

    def arrays(g: bl.Grouped) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes = encoder.transform(g)[:, list(layout.codes)] - firsts  # each feature's level
        k, n = (g.frame[c].to_numpy().astype(np.float64) for c in "kn")
        return codes.astype(np.int32), k, n

    (X, k, n), (X_val, k_val, n_val), (X_test, k_test, n_test) = map(arrays, (fit_part, val, test))
    out = {}
    for name, extra in LGB_SETTINGS.items():
        start = time.perf_counter()
        params = LGB_PARAMS | extra
        features = list(range(X.shape[1]))
        data = lgb.Dataset(X, label=k / n, weight=n, categorical_feature=features, params=params)
        valid = lgb.Dataset(X_val, label=k_val / n_val, weight=n_val, reference=data)
        booster = lgb.train(
            params,
            data,
            num_boost_round=1000,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )
        best = booster.best_iteration
        z_val, z_test = (
            booster.predict(x, raw_score=True, num_iteration=best) for x in (X_val, X_test)
        )
        out[name] = {
            "val": grouped_nll(z_val, k_val, n_val),
            "test": grouped_nll(z_test, k_test, n_test),
            "trees": best,
            "seconds": time.perf_counter() - start,
        }
    return out


def _networks(
    train: bl.Grouped, fit_part: bl.Grouped, val: bl.Grouped, test: bl.Grouped, seeds: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each of ``NETWORKS``' test NLLs, one per seed, and best validation NLLs (with val)."""
    out: dict[str, list[float]] = {}
    best_val: dict[str, list[float]] = {}
    for name, (spec, how) in NETWORKS.items():
        out[name] = []
        for seed in range(seeds):
            data, opts = (fit_part, {"val": val}) if how["val"] else (train, {})
            if "early_stopping" in how:
                opts["early_stopping"] = how["early_stopping"]
            fitted = bl.fit(data, model=bl.MLP(**spec), backend="lightning", seed=seed, **opts)
            out[name].append(bl.evaluate(test, fitted)["nll"])
            if how["val"]:
                best_val.setdefault(name, []).append(float(fitted.history["val_nll"].min()))
        print(f"  {name}: test NLL {' '.join(f'{v:.5f}' for v in out[name])}", flush=True)
    return out, best_val


def _versus_lightgbm(seeds: int) -> tuple[list[str], str]:
    """The section's lines on the networks against LightGBM, and the target line."""
    train, fit_part, val, test = _lightgbm_groups()
    peers = _lightgbm(fit_part, val, test)
    peer_name = min(peers, key=lambda p: peers[p]["val"])
    peer = peers[peer_name]["test"]
    nets, nets_val = _networks(train, fit_part, val, test, seeds)
    median = {name: statistics.median(v) for name, v in nets.items()}
    best = min(median, key=median.get)
    ratio = median[best] / peer
    lines = [
        f"Flights as in the LightGBM race: {fit_part.trials:,} training trials in "
        f"{len(fit_part):,} groups, validation {val.trials:,}, test {test.trials:,} trials "
        f"(`split(0.2, seed=0)`, then `split(0.1, seed=1)`); networks on Lightning with "
        f"bl.fit's defaults, seeds 0–{seeds - 1}.",
        "",
        "| contender | val NLL | test NLL | test / LightGBM | note |",
        "|---|---:|---:|---:|---|",
    ]
    for name, p in peers.items():
        mark = " (the peer)" if name == peer_name else ""
        lines.append(
            f"| lightgbm.train, cross_entropy, {name}{mark} | {p['val']:.5f} | {p['test']:.5f} | "
            f"{p['test'] / peer:.5f} | {p['trees']} trees, {p['seconds']:.1f} s |"
        )
    for name, values in nets.items():
        shown = f"{statistics.median(nets_val[name]):.5f}" if name in nets_val else ""
        lines.append(
            f"| bl.fit {name} | {shown} | {median[name]:.5f} (median; "
            f"{min(values):.5f}–{max(values):.5f}) | {median[name] / peer:.5f} | "
            f"{'best' if name == best else ''} |"
        )
    lines.append("")
    target = (
        f"- flights test NLL, best network ({best}) vs LightGBM on the same groups: "
        f"{ratio:.4f}× ({median[best]:.5f} / {peer:.5f}) (target ≤ {NLL_TARGET:g}×) "
        f"**{verdict(ratio <= NLL_TARGET)}**"
    )
    return lines, target


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
    versus, nll_target = _versus_lightgbm(1 if args.quick else NLL_SEEDS)

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
            *versus,
        ]
    )
    worst = max(parity.values())
    targets = [
        f"- grouped step, index vs one-hot: {speedup:.2f}× (target ≥ {STEP_TARGET:g}×) "
        f"**{verdict(speedup >= STEP_TARGET)}**",
        f"- ONNX parity of index and embedding models through bl.load: {worst:.2g} (target ≤ "
        f"{PARITY_TARGET:g}) **{verdict(worst <= PARITY_TARGET)}**",
        nll_target,
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
