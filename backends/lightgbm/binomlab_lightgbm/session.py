"""``LightGBMSession``: one boosting run under the core's epoch rules
(:mod:`binomlab.backends.loop`).

An epoch is a block of boosting rounds (``Booster.update``); after each block the core
computes the exact ``train_nll``/``val_nll`` from the network's predictions, keeps the best
block's tree count (:meth:`get_weights` is that count, :meth:`set_weights` rolls the booster
back to it), early-stops and calls back. LightGBM runs deterministic (``deterministic=True``,
``force_col_wise=True``, a fixed ``num_threads``, every seed from ``config.seed``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import lightgbm as lgb
import numpy as np

from binomlab._random_state import keep_random_state
from binomlab.backends.protocol import Session, TrainConfig, TrainData
from binomlab.errors import BinomlabError
from binomlab.specs import GBDT, ModelSpec
from binomlab_lightgbm.data import Columns
from binomlab_lightgbm.loss import OBJECTIVE, binomial_dataset
from binomlab_lightgbm.network import LightGBMNetwork

__all__ = ["LightGBMSession", "lightgbm_params", "round_blocks"]

FIXED: dict[str, Any] = {
    "boosting": "gbdt",
    "boost_from_average": False,  # the start is init_score = the base logit
    "min_data_in_leaf": 0,  # counts groups: leaf size is min_sum_hessian_in_leaf's
    "min_data_per_group": 1,  # LightGBM's least (it must be > 0)
    "min_data_in_bin": 1,  # every distinct value its own bin, up to max_bin
    "use_missing": False,  # the encoder leaves no NaN: nulls are levels or indicators
    "zero_as_missing": False,
    "bagging_fraction": 1.0,
    "bagging_freq": 0,
    "deterministic": True,
    "force_col_wise": True,
    "feature_pre_filter": False,
    "verbosity": -1,
}
"""The LightGBM parameters binomlab fixes (see the README's exactness table)."""


def lightgbm_params(spec: GBDT, config: TrainConfig) -> dict[str, Any]:
    """The LightGBM parameters of a spec and a resolved config."""
    options = config.options
    return {
        **OBJECTIVE,
        **FIXED,
        "num_leaves": spec.leaves,
        "learning_rate": spec.learning_rate,
        "min_sum_hessian_in_leaf": spec.min_hessian_in_leaf,
        "lambda_l2": spec.l2,
        "max_depth": -1 if spec.max_depth is None else spec.max_depth,
        "num_threads": options["num_threads"],
        "max_bin": options["max_bin"],
        "cat_smooth": options["cat_smooth"],
        "cat_l2": options["cat_l2"],
        "feature_fraction": options["feature_fraction"],
        "max_cat_to_onehot": options["max_cat_to_onehot"],
        "seed": int(config.seed),
    }


def round_blocks(trees: int, epochs: int) -> list[int]:
    """Boosting rounds per epoch: ``trees`` split into ``epochs`` blocks, the first ones one
    round longer when they do not divide (``round_blocks(10, 4) == [3, 3, 2, 2]``)."""
    base, extra = divmod(int(trees), int(epochs))
    return [base + (i < extra) for i in range(int(epochs))]


class LightGBMSession(Session):
    """A LightGBM ``Booster`` on the grouped table, started at the base logit."""

    def __init__(self, train: TrainData, spec: ModelSpec, config: TrainConfig) -> None:
        if not isinstance(spec, GBDT):
            msg = f"The lightgbm backend builds bl.GBDT specs. Received: {spec!r}"
            raise BinomlabError(msg)
        self.train, self.spec, self.config = train, spec, config
        self.decayed = (False,)
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> LightGBMSession:
        self._stack.enter_context(keep_random_state())
        train, config = self.train, self.config
        columns = Columns.of(train.X.shape[1], train.layout)
        params = lightgbm_params(self.spec, config)
        params["max_bin_by_feature"] = columns.max_bins(params["max_bin"])
        table = columns.table(train.X)
        try:
            bins = lgb.Dataset(
                columns.reference(table),
                categorical_feature=list(columns.categorical) or "auto",
                params=params,
                free_raw_data=False,
            )
            dataset = binomial_dataset(
                table,
                train.k,
                train.n,
                init_score=train.base_logit,
                categorical_feature=columns.categorical,
                params=params,
                reference=bins,
            )
            self.booster = lgb.Booster(params=params, train_set=dataset)
        except lgb.basic.LightGBMError as err:
            msg = f"LightGBM refused the parameters {params}: {err}"
            raise BinomlabError(msg) from err
        self.network = LightGBMNetwork(
            self.booster,
            self.spec,
            columns,
            base_logit=train.base_logit,
            num_threads=params["num_threads"],
        )
        self.network.keep_scores(True)
        self._stack.callback(self.network.keep_scores, False)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def get_weights(self) -> list[np.ndarray]:
        """The number of trees grown so far, as one float64 array ``[1]``."""
        return [np.array([float(self.booster.current_iteration())])]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        """Roll the booster back to the tree count of :meth:`get_weights`.

        Raises
        ------
        BinomlabError
            More trees than it has: a booster is only ever cut back.
        """
        (count,) = np.asarray(weights[0], np.float64).reshape(1)
        wanted = int(count)
        if wanted > self.booster.current_iteration():
            msg = (
                f"A booster of {self.booster.current_iteration()} trees cannot be set to "
                f"{wanted}: trees are only rolled back."
            )
            raise BinomlabError(msg)
        while self.booster.current_iteration() > wanted:
            self.booster.rollback_one_iter()
        self.network.forget()

    def run_epochs(
        self,
        epochs: int,
        end_epoch: Callable[[], bool],
        end_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        """Boost :func:`round_blocks` rounds per epoch, calling ``end_epoch()`` after each
        block and ``end_batch(round, rounds)`` after each round of it (progress inside a long
        block; the core stops training there when its batch callback says so); when no tree
        can split any more (LightGBM's ``update`` says it is finished), the epoch ends there
        and training with it."""
        for rounds in round_blocks(self.spec.trees, epochs):
            finished = False
            for done in range(1, rounds + 1):
                finished = self.booster.update()
                if end_batch is not None:
                    end_batch(done, rounds)
                if finished:
                    break
            self.network.forget()
            if end_epoch() or finished:
                return
