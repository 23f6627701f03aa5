"""Benchmark training on grouped counts, part 4: time to a good model with Keras.

Part 1's data, split, encoder, MLP (64, 32), initial weights and Adam (see
``bench_race_lightning.py``), in Keras 3 (TensorFlow by default), side by side in one process
(``time.perf_counter``):

* grouped: ``bl.fit(train_groups, model=bl.MLP((64, 32)), backend="keras", val=...)``,
  clocked from the call (encoding, model building, tracing and validation included);
* raw rows: what Keras users write today, a plain functional model ``Dense(64, relu) →
  Dense(32, relu) → Dense(1) → sigmoid`` compiled with ``loss="binary_crossentropy"`` and
  ``model.fit(X_rows, y_rows, shuffle=True)``, clocked from building the model (tracing
  included); its validation NLL is computed after every epoch by the same code as the
  backend's (``grouped_nll`` of the logits on the validation groups), off the clock.

A diagnostic third run trains the plain model on the groups with the weighted-BCE trick,
``model.fit(X_groups, k/n, sample_weight=n)``. Target: speed-up ≥ 3×
(``_harness.RACE_TARGETS``; the earlier 0.5 × rows / groups is retired), on each contender's
best setting of a grid (``--tune``). The same threshold rule as part 1: the first epoch
within 0.5% of the best validation NLL either contender reached, median over ``--seeds``.

Part 4b races both sides again in three variants of the MLP, the one-hot matrix, integer
codes (a lookup first layer) and ``embed="auto"``, the raw side ``model.fit``-ing bl.fit's own
model of each variant (``_variants.py``); each side is scored by its best variant. Target:
speed-up ≥ 3×.

TensorFlow gets ``--train-threads`` (default 1) intra- and inter-op threads, torch the same
number of intra-op threads (see ``_harness.py`` for why). Every run also records the process
CPU time.

Usage::

    python benchmarks/bench_race_keras.py             # 5 seeds, about 4 minutes
    python benchmarks/bench_race_keras.py --quick     # 1 seed, short runs
    python benchmarks/bench_race_keras.py --tune      # the grid (3 seeds), ~11 minutes
    python benchmarks/bench_race_keras.py --markdown benchmarks/RESULTS.md --append
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
from _harness import (  # benchmarks/ is on sys.path when a script runs
    RACE_TARGETS,
    Clock,
    Contender,
    Curve,
    FlightsData,
    Grid,
    Setting,
    epoch_seconds,
    fresh_shuffles,
    grouped_contender,
    keras_initial_weights,
    keras_plain_model,
    keras_setup,
    keras_threads,
    keras_versions,
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

# Picked with --tune (see benchmarks/README.md) on one grid of learning rates for both
# contenders and four batch sizes each.
KERAS_RAW = Setting(batch_size=1024, lr=1e-2, epochs=10)
KERAS_GROUPED = Setting(batch_size=1024, lr=3e-2, epochs=30)
KERAS_RAW_QUICK = Setting(batch_size=1024, lr=1e-2, epochs=4)
KERAS_GROUPED_QUICK = Setting(batch_size=1024, lr=3e-2, epochs=12)
TUNE_KERAS_RAW = [(b, lr) for b in (256, 1024, 4096, 16384) for lr in (1e-3, 3e-3, 1e-2, 3e-2)]
TUNE_KERAS_GROUPED = [(b, lr) for b in (64, 256, 1024, 4096) for lr in (1e-3, 3e-3, 1e-2, 3e-2)]
CODES_TARGET = RACE_TARGETS["Keras"]  # with codes and embeddings, best variant each side


def _val_groups(data: FlightsData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The validation groups as the backend validates on them: encoded X, k, n (float64)."""
    X = Encoder.fit(data.train).transform(data.val)
    k, n = (data.val.frame[c].to_numpy().astype(np.float64) for c in "kn")
    return X, k, n


def _keras_stamps(curve: Curve, clock: Clock, logit_model: Any, val: tuple) -> Any:
    """A Keras callback: the clocks at each epoch's end, then (off the clock) the validation
    NLL computed as KerasBackend's ProgressMonitor computes it."""
    import keras

    from binomlab.nll import grouped_nll
    from binomlab_keras.network import logits

    class Stamps(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            curve.record(clock())
            curve.val.append(
                clock.untimed(lambda: grouped_nll(logits(logit_model, val[0]), val[1], val[2]))
            )

    return Stamps()


def _fit_plain(
    curve: Curve,
    clock: Clock,
    val: tuple,
    width: int,
    weights: list[np.ndarray],
    setting: Setting,
    **fit: Any,
) -> Any:
    """Build the plain model of ``width`` inputs from ``weights`` (on ``clock``) and
    ``model.fit`` it with ``setting`` on the data of ``fit`` (``x``, ``y``, ``sample_weight``),
    shuffled afresh every epoch, stamping ``curve`` (validation on ``val``, off the clock).
    Returns the logits model."""
    model, logit_model = keras_plain_model(width, weights, setting.lr)
    fresh_shuffles()
    model.fit(
        **fit,
        batch_size=setting.batch_size,
        epochs=setting.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_keras_stamps(curve, clock, logit_model, val)],
    )
    return logit_model


def run_keras_raw(data: FlightsData, setting: Setting, seed: int) -> tuple[Curve, Any]:
    """``model.fit(X_rows, y_rows, shuffle=True)`` with binary_crossentropy on the raw rows.
    Returns the curve and the logits model."""
    curve = Curve(seed, steps_per_epoch=-(-data.train_rows // setting.batch_size))
    val = _val_groups(data)
    weights = keras_initial_weights(data.width, float(data.y_train.mean()), seed)
    clock = Clock()
    logit_model = _fit_plain(
        curve, clock, val, data.width, weights, setting, x=data.X_train, y=data.y_train
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
    clock = Clock()
    X = Encoder.fit(data.train).transform(data.train)
    _fit_plain(curve, clock, val, data.width, weights, setting, x=X, y=k / n, sample_weight=n)
    return curve


def raw_variant(forms: dict[str, Encoded]) -> Any:
    """The races with integer codes, raw side: ``model.fit(X_rows, y_rows, shuffle=True)``
    with binary_crossentropy on the raw rows in the variant's form, training the model bl.fit
    builds for the variant (``build_model`` with the index form's layout and the seed, output
    bias at the base rate, a sigmoid on its logit; Adam's epsilon and
    ``steps_per_execution`` the backend's), shuffled afresh every epoch; validation as
    :func:`_keras_stamps`, off the clock."""

    def run(data: FlightsData, variant: Variant, setting: Setting, seed: int) -> Curve:
        import keras

        from binomlab_keras.backend import default_steps_per_execution
        from binomlab_keras.model import build_model, set_output_bias
        from binomlab_keras.session import ADAM_EPSILON

        encoded = forms[variant.form]
        curve = Curve(seed, steps_per_epoch=-(-data.train_rows // setting.batch_size))
        k, n = (data.val.frame[c].to_numpy().astype(np.float64) for c in "kn")
        start = build_model(variant.spec, encoded.width, seed=seed, layout=encoded.layout)
        set_output_bias(start, base_logit(data))
        weights = start.get_weights()
        clock = Clock()
        logit_model = build_model(variant.spec, encoded.width, seed=seed, layout=encoded.layout)
        logit_model.set_weights(weights)
        model = keras.Model(
            logit_model.inputs, keras.layers.Activation("sigmoid")(logit_model.outputs[0])
        )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=setting.lr, epsilon=ADAM_EPSILON),
            loss="binary_crossentropy",
            steps_per_execution=default_steps_per_execution(),
        )
        fresh_shuffles()
        model.fit(
            encoded.X_rows,
            data.y_train,
            batch_size=setting.batch_size,
            epochs=setting.epochs,
            shuffle=True,
            verbose=0,
            callbacks=[_keras_stamps(curve, clock, logit_model, (encoded.X_val, k, n))],
        )
        return curve

    return run


def codes_race(args: argparse.Namespace, data: FlightsData) -> tuple[str, list[str]]:
    """Both sides in the three input variants (see ``_variants.py``), best variant each."""
    print("\n== Part 4b: Keras, the race with integer codes and embeddings ==", flush=True)
    raw, grouped = (
        (KERAS_RAW_QUICK, KERAS_GROUPED_QUICK) if args.quick else (KERAS_RAW, KERAS_GROUPED)
    )
    sides = {
        "raw": (raw_variant(encode_forms(data)), raw),
        "grouped": (grouped_run("keras"), grouped),
    }
    race = race_variants(data, sides, list(range(args.seeds)))
    lines, targets = variants_report(
        race,
        framework="Keras",
        target=CODES_TARGET,
        raw_name="raw rows: model.fit, binary_crossentropy",
        grouped_name="grouped: bl.fit (keras)",
    )
    about = [
        "#### 4b. Keras, time to a good model with integer codes and embeddings",
        "",
        "- the same flights, split, seeds and settings as above (raw rows: batch "
        f"{raw.batch_size:,}, lr {raw.lr:g}; groups: batch {grouped.batch_size:,}, lr "
        f"{grouped.lr:g}); both sides in three variants of the MLP (64, 32): the one-hot "
        "matrix, integer codes into a lookup first layer, and embed='auto'; the raw side "
        "model.fit's bl.fit's own model for the variant (build_model, a sigmoid on its logit); "
        "each side scored by its best variant",
        "",
    ]
    return "\n".join([*about, *lines, ""]), targets


CONTENDERS = {
    "raw": Contender(
        "raw rows model.fit",
        "raw rows: model.fit, binary_crossentropy",
        KERAS_RAW,
        KERAS_RAW_QUICK,
        run_keras_raw,
    ),
    "grouped": grouped_contender("keras", KERAS_GROUPED, KERAS_GROUPED_QUICK),
    "weighted": Contender(
        "grouped weighted model.fit",
        "(grouped: model.fit, k/n + sample_weight=n)",
        KERAS_GROUPED,
        KERAS_GROUPED_QUICK,
        lambda data, s, seed: (run_keras_weighted(data, s, seed), None),
    ),
}
GRIDS = [  # --tune
    Grid(TUNE_KERAS_RAW, KERAS_RAW.epochs, {"raw model.fit": "raw"}),
    Grid(TUNE_KERAS_GROUPED, KERAS_GROUPED.epochs, {"grouped bl.fit": "grouped"}),
]


def describe(data: FlightsData) -> str:
    return (
        f"rows: {data.train_rows:,} train + {data.val_rows:,} validation; groups: "
        f"{len(data.train):,} train, {len(data.val):,} validation; rows / groups = "
        f"{data.ratio:.2f}"
    )


def bench(args: argparse.Namespace) -> tuple[str, list[str]]:
    data, race = start_race(
        args,
        CONTENDERS,
        banner="Part 4: Keras, convergence on nycflights13 flights",
        describe=describe,
        setup=keras_setup,
    )

    # the validation NLL on the groups is the mean BCE over the validation rows
    from binomlab_keras.network import logits

    z = logits(race.trained["raw"], data.X_val)
    rows_form = float(np.mean(np.logaddexp(0.0, z) - data.y_val * z))
    check = nll_check(data, race, "plain Keras model", rows_form, race.curves["raw"][-1].val[-1])

    t, extra = race.t, []
    if race.diagnostic_ratio():
        extra.append(
            f"- (diagnostic, the groups through plain model.fit with sample weights: raw rows "
            f"{t['raw']:.2f} s / {t['weighted']:.2f} s = {race.diagnostic_ratio():.2f}×)"
        )
    first_raw = statistics.median(c.seconds[0] for c in race.curves["raw"])
    first_grp = statistics.median(c.seconds[0] for c in race.curves["grouped"])
    epoch_raw = epoch_seconds(race.curves["raw"])
    epoch_grp = epoch_seconds(race.curves["grouped"])
    extra.append(
        f"- (per epoch after the first: raw rows {epoch_raw:.3f} s, bl.fit {epoch_grp:.3f} s, "
        f"{epoch_raw / epoch_grp:.1f}×; first epoch, tracing included: raw rows "
        f"{first_raw:.3f} s, bl.fit {first_grp:.3f} s)"
    )
    about = [
        f"- {keras_versions()}; {keras_threads()}",
        f"- data, split, encoder, architecture and initial weights as in part 1 (rows / groups "
        f"= **{data.ratio:.2f}**); seeds {', '.join(map(str, race.seeds))} (weights; bl.fit's "
        "shuffling; the plain model.fit runs draw a fresh order every epoch, see "
        "`fresh_shuffles`); one untimed warm-up epoch of each first",
        "- clocks: bl.fit from the call (encoding, model building, tracing, validation "
        "included); the plain models from building and compiling the model (tracing included, "
        "validation not timed; the weighted run also encodes the groups inside the clock)",
    ]
    section, targets = race_report(
        data,
        race,
        title="4. Keras, time to a good model",
        framework="Keras",
        about=about,
        extra=extra,
        check=check,
    )
    codes_section, codes_targets = codes_race(args, data)
    return section + "\n" + codes_section, targets + codes_targets


def main(argv: list[str] | None = None) -> int:
    return race_main(
        "bench_race_keras",
        __doc__,
        argv,
        bench,
        "keras",
        tune=lambda args: race_tune(
            args, CONTENDERS, GRIDS, title="part 4 (Keras)", setup=keras_setup
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
