"""The races with integer codes: each side of parts 1 and 4 in three input variants.

``bench_race_lightning.py`` and ``bench_race_keras.py`` race ``bl.fit`` on the groups against
a plain loop (``model.fit`` in Keras) on the raw rows with one network. This module races both
sides in three variants of the same MLP (64, 32), the architecture shared by the two sides:

* ``one-hot``: the one-hot matrix in, ``bl.fit(inputs="one-hot")``;
* ``index``: integer codes in, the first layer a lookup of its weight rows
  (``bl.fit(inputs="index")``; :mod:`binomlab.layout`);
* ``embeddings``: codes in, learned embeddings per feature (``bl.MLP(embed="auto")``).

The raw side of each variant trains the very network ``bl.fit`` builds for it (the plugin's
``build_network`` / ``build_model`` with the index form's layout, the same seed, the output
bias at the base rate) on the raw rows encoded the same way, with the plain loop of its
script. Every contender runs once per seed after one untimed warm-up epoch each; the target
is the first epoch within 0.5% of the best validation NLL any contender reached, and each
side is scored by its best variant (the lowest median time to the target). A contender's
setting is its side's tuned setting of the script (the grids of ``--tune`` were run on the
one-hot and index forms, not on the embeddings).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from _common import verdict
from _harness import (
    FEATURES,
    HIDDEN,
    LABEL,
    TOLERANCE,
    Clock,
    Curve,
    FlightsData,
    Setting,
    curve_line,
    epoch_seconds,
    fmt,
    median_time,
    split_flights,
)

import binomlab as bl
from binomlab.encoding import Encoder
from binomlab.layout import IndexLayout


@dataclass(frozen=True)
class Variant:
    """How the features reach the MLP: ``bl.fit(inputs=...)`` and ``bl.MLP(embed=...)``."""

    name: str
    inputs: str
    embed: Any = None

    @property
    def spec(self) -> bl.MLP:
        return bl.MLP(HIDDEN, embed=self.embed)

    @property
    def form(self) -> str:
        return "dense" if self.inputs == "one-hot" else "index"


VARIANTS = (
    Variant("one-hot", "one-hot"),
    Variant("index", "index"),
    Variant("embeddings", "index", "auto"),
)


@dataclass
class Encoded:
    """The flights of part 1 in one form: the raw train rows and the validation groups
    encoded by the encoder fitted on the train groups, and its layout (None: one-hot)."""

    X_rows: np.ndarray
    X_val: np.ndarray
    layout: IndexLayout | None
    width: int


def encode_forms(data: FlightsData) -> dict[str, Encoded]:
    """Both forms of the raw train rows and the validation groups (off every clock)."""
    train_rows, _, _ = split_flights()
    out = {}
    for form in ("dense", "index"):
        encoder = Encoder.fit(data.train, design="one-hot", form=form)
        out[form] = Encoded(
            X_rows=encoder.transform(train_rows.select(FEATURES)),
            X_val=encoder.transform(data.val),
            layout=encoder.layout if form == "index" else None,
            width=encoder.n_inputs,
        )
    assert len(out["dense"].X_rows) == len(out["index"].X_rows) == len(data.y_train)
    assert float(pl.Series(data.y_train).mean()) == float(train_rows[LABEL].mean())
    return out


def base_logit(data: FlightsData) -> float:
    rate = float(data.y_train.mean())
    return math.log(rate) - math.log1p(-rate)


Run = Callable[[FlightsData, Variant, Setting, int], Curve]
"""A contender: train ``variant`` on the flights with ``setting`` and seed, its curve."""


def grouped_run(backend: str) -> Run:
    """``bl.fit`` on the train groups with ``backend``, the variant's spec and inputs, its
    validation NLL from its callback; the clock from the call."""

    def run(data: FlightsData, variant: Variant, setting: Setting, seed: int) -> Curve:
        curve = Curve(seed, steps_per_epoch=-(-len(data.train) // setting.batch_size))

        def stamp(epoch: int, metrics: Mapping[str, float]) -> None:
            curve.record(clock())
            curve.val.append(metrics["val_nll"])

        clock = Clock()
        bl.fit(
            data.train,
            model=variant.spec,
            backend=backend,
            val=data.val,
            inputs=variant.inputs,
            optimizer="adam",
            epochs=setting.epochs,
            batch_size=setting.batch_size,
            lr=setting.lr,
            seed=seed,
            callbacks=[stamp],
        )
        return curve

    return run


@dataclass
class VariantRace:
    """Every (side, variant) contender once per seed, in turn; the threshold and each
    contender's median time to it."""

    curves: dict[tuple[str, str], list[Curve]]
    settings: dict[str, Setting]
    threshold: float
    best: float

    def time(self, side: str, variant: str) -> float | None:
        return median_time(self.curves[side, variant], self.threshold)

    def best_variant(self, side: str) -> tuple[str, float | None]:
        """The variant of ``side`` that reached the target soonest (median over seeds)."""
        times = {v: self.time(s, v) for s, v in self.curves if s == side}
        name = min(times, key=lambda v: math.inf if times[v] is None else times[v])
        return name, times[name]

    @property
    def speedup(self) -> float | None:
        raw, grouped = self.best_variant("raw")[1], self.best_variant("grouped")[1]
        return raw / grouped if raw and grouped else None


def race_variants(
    data: FlightsData,
    sides: Mapping[str, tuple[Run, Setting]],
    seeds: list[int],
) -> VariantRace:
    """Warm each contender up (one untimed epoch, seed 0), then run each once per seed."""
    for run, setting in sides.values():
        for variant in VARIANTS:
            run(data, variant, Setting(setting.batch_size, setting.lr, 1), 0)
    curves: dict[tuple[str, str], list[Curve]] = {
        (side, v.name): [] for side in sides for v in VARIANTS
    }
    for seed in seeds:
        for side, (run, setting) in sides.items():
            for variant in VARIANTS:
                curve = run(data, variant, setting, seed)
                curves[side, variant.name].append(curve)
                print(f"  seed {seed} {side} {variant.name:10s}: {curve_line(curve)}", flush=True)
    best = min(min(c.val) for cs in curves.values() for c in cs)
    settings = {side: setting for side, (_, setting) in sides.items()}
    return VariantRace(curves, settings, (1 + TOLERANCE) * best, best)


def variants_report(
    race: VariantRace, *, framework: str, target: float, raw_name: str, grouped_name: str
) -> tuple[list[str], list[str]]:
    """The variants' table and findings, and the ``Targets:`` line (best variant each side,
    against ``target``)."""
    table = [
        "| side | variant | batch | Adam lr | epochs | s / epoch (median) | best val NLL | "
        "epochs to target (per seed) | time to target s (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (side, variant), cs in race.curves.items():
        s = race.settings[side]
        epochs = ", ".join(str(c.epoch_reaching(race.threshold) or "—") for c in cs)
        table.append(
            f"| {raw_name if side == 'raw' else grouped_name} | {variant} | {s.batch_size:,} | "
            f"{s.lr:g} | {s.epochs} | {epoch_seconds(cs):.3f} | "
            f"{min(min(c.val) for c in cs):.5f} | {epochs} | {fmt(race.time(side, variant))} |"
        )
    (raw_v, raw_t), (grp_v, grp_t) = race.best_variant("raw"), race.best_variant("grouped")
    speedup = race.speedup
    lines = [
        *table,
        "",
        f"- best validation NLL (any contender, any seed): {race.best:.5f}; target ≤ "
        f"{race.threshold:.5f}; seeds {len(next(iter(race.curves.values())))}",
        f"- best setting of each side: raw rows **{raw_v}** ({fmt(raw_t)} s), grouped "
        f"**{grp_v}** ({fmt(grp_t)} s)",
    ]
    shown = f"{speedup:.2f}×" if speedup else "not measurable"
    for variant in (v.name for v in VARIANTS):
        tr, tg = race.time("raw", variant), race.time("grouped", variant)
        ratio = fmt(tr / tg if tr and tg else None)
        lines.append(
            f"- ({framework}, {variant} on both sides: raw rows {fmt(tr)} s / grouped "
            f"{fmt(tg)} s = {ratio}×)"
        )
    s = speedup or float("nan")
    targets = [
        f"- {framework}, time to a good model with integer codes and embeddings, grouped vs raw "
        f"rows, best variant each ({grp_v} vs {raw_v}): {shown} (target ≥ {target:g}×) "
        f"**{verdict(s >= target)}**"
    ]
    return lines, targets
