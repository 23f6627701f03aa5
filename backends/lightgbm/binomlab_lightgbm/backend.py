"""``LightGBMBackend``: the ``lightgbm`` entry of the ``binomlab.backends`` registry.

This module imports no LightGBM, so listing backends (and opening the Lab) stays cheap; the
library is imported when a session is opened or versions are asked for. The training rules
are the core's (:meth:`binomlab.backends.protocol.Backend.fit`: a block of boosting rounds is
an epoch); :class:`~binomlab_lightgbm.session.LightGBMSession` is the framework glue.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

from binomlab.backends.protocol import Backend, Session, TrainConfig, TrainData
from binomlab.errors import BinomlabError
from binomlab.specs import ModelSpec

__all__ = ["DEFAULTS", "INEXACT", "LightGBMBackend"]

DEFAULTS: dict[str, Any] = {
    "num_threads": 1,
    "max_bin": 255,
    "cat_smooth": 0.0,
    "cat_l2": 10.0,
    "feature_fraction": 1.0,
    "max_cat_to_onehot": 4,
}
"""The backend options (``bl.fit(..., backend="lightgbm", **options)``) and their defaults.
``num_threads`` is fixed (1) so that the same seed gives the same trees on any machine;
``cat_smooth`` is 0 because LightGBM also uses it as a least count of rows per category,
which counts groups, not trials, on grouped data (see :data:`INEXACT`)."""

INEXACT: dict[str, str] = {
    "min_data_in_leaf": (
        "it counts rows of the table, which are groups here, not trials (LightGBM estimates "
        "it from the Hessian); set the leaf size by GBDT(min_hessian_in_leaf=...), the summed "
        "Hessian Σ n·p(1 − p), which is the same on groups and raw rows"
    ),
    "min_child_samples": "it is LightGBM's alias of min_data_in_leaf",
    "bagging_fraction": (
        "it samples rows of the table, i.e. whole groups with all their trials, not trials; "
        "boosting on groups has no exact bagging"
    ),
    "bagging_freq": "it turns on bagging, which samples groups, not trials",
    "subsample": "it is LightGBM's alias of bagging_fraction, which samples groups",
    "data_sample_strategy": "GOSS samples rows by gradient, i.e. groups, not trials",
    "min_data_per_group": (
        "it counts rows per category side, which are groups here; binomlab fixes it at 1"
    ),
    "objective": "binomlab trains the grouped binomial loss (cross_entropy, label k/n, weight n)",
    "learning_rate": "it is the spec's: bl.GBDT(learning_rate=...)",
    "num_leaves": "it is the spec's: bl.GBDT(leaves=...)",
    "num_iterations": "it is the spec's: bl.GBDT(trees=...)",
    "seed": "it is bl.fit(seed=...)",
}
"""LightGBM parameters the backend refuses, with why: per-row rules that count groups, not
trials, on grouped data, and the parameters that binomlab sets from the spec and config."""


class LightGBMBackend(Backend):
    """Trains :class:`~binomlab.GBDT` specs with LightGBM on the grouped binomial loss.

    Each group is one row of LightGBM's table with label ``k/n`` and weight ``n`` under
    ``objective="cross_entropy"``: its gradient ``n·p − k`` and Hessian ``n·p(1 − p)`` are the
    sums over its trials, so the trees are those of the raw rows (see the README's exactness
    table). Features with levels go in by LightGBM's native categorical splits on the
    encoder's codes (the index form), numeric features as numbers.

    The optimiser is ``"boosting"``: an epoch is a block of ``⌈trees / epochs⌉`` rounds (the
    last blocks one fewer when they do not divide), after which the core records
    ``train_nll``/``val_nll``, keeps the best epoch's trees, early-stops and calls back.

    Options: ``num_threads`` (default 1), ``max_bin`` (255: at most that many bins per numeric
    feature), ``cat_smooth`` (0), ``cat_l2`` (10), ``feature_fraction`` (1.0: a seeded sample
    of features per tree, exact on groups). Losses: ``"binomial"`` only.
    """

    name: ClassVar[str] = "lightgbm"
    specs: ClassVar[tuple[str, ...]] = ("gbdt",)
    optimizers: ClassVar[tuple[str, ...]] = ("boosting",)
    options: ClassVar[tuple[str, ...]] = tuple(DEFAULTS)
    losses: ClassVar[tuple[str, ...]] = ("binomial",)
    phi_models: ClassVar[tuple[str, ...]] = ("scalar",)
    index_inputs: ClassVar[tuple[str, ...]] = ("gbdt",)

    def versions(self) -> dict[str, str]:
        import lightgbm
        import onnx

        return {"lightgbm": lightgbm.__version__, "onnx": onnx.__version__}

    def resolve_options(self, config: TrainConfig) -> dict[str, Any]:
        """The options with their defaults, each checked.

        Raises
        ------
        BinomlabError
            A LightGBM parameter that is not exact on groups or that the spec sets
            (:data:`INEXACT`, with the reason), an unknown option, or a value out of range.
        """
        for name in config.options:
            if name in INEXACT:
                msg = (
                    f"The lightgbm backend does not take {name}={config.options[name]!r}: "
                    f"{INEXACT[name]}."
                )
                raise BinomlabError(msg)
        given = {**DEFAULTS, **super().resolve_options(config)}
        for name in ("num_threads", "max_bin", "max_cat_to_onehot"):
            value = given[name]
            least = 2 if name == "max_bin" else 1
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
                msg = f"Expected {name} to be an integer >= {least}. Received: {name}={value!r}"
                raise BinomlabError(msg)
            given[name] = int(value)
        for name in ("cat_smooth", "cat_l2", "feature_fraction"):
            value = given[name]
            bad = isinstance(value, bool) or not isinstance(value, numbers.Real)
            if bad or not (0 <= value <= (1 if name == "feature_fraction" else float("inf"))):
                where = "in (0, 1]" if name == "feature_fraction" else ">= 0"
                msg = f"Expected {name} to be a number {where}. Received: {name}={value!r}"
                raise BinomlabError(msg)
            if name == "feature_fraction" and value == 0:
                msg = f"Expected feature_fraction in (0, 1]. Received: feature_fraction={value!r}"
                raise BinomlabError(msg)
            given[name] = float(value)
        return given

    def session(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> Session:
        from binomlab_lightgbm.session import LightGBMSession

        return LightGBMSession(train, spec, config)
