"""``LightGBMNetwork``: a LightGBM ``Booster`` as binomlab's
:class:`~binomlab.backends.protocol.Network` (predict logits, export), and
:func:`load_native`, which reads one back from its native files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from binomlab.backends.protocol import Network, check_encoded
from binomlab.errors import ModelFileError
from binomlab.specs import GBDT, spec_from_dict
from binomlab_lightgbm.data import Columns
from binomlab_lightgbm.export import export_onnx

__all__ = ["MODEL_FILE", "SIDECAR", "LightGBMNetwork", "load_native"]

MODEL_FILE = "lightgbm.txt"
"""The booster in LightGBM's own text format (``Booster.model_to_string``; never a pickle)."""
SIDECAR = "lightgbm.json"
"""What the text format does not hold: the base logit, the spec and the category offsets."""


class LightGBMNetwork(Network):
    """A boosted ensemble: ``z = base_logit + Σ_t tree_t(x)``.

    Attributes
    ----------
    booster
        The ``lightgbm.Booster`` (its current iteration is the model's tree count).
    spec, columns
        What it was built from: the spec and which input columns are categories.
    base_logit
        The start of every prediction (the training data's overall rate's logit).
    """

    def __init__(
        self,
        booster: lgb.Booster,
        spec: GBDT,
        columns: Columns,
        *,
        base_logit: float,
        num_threads: int = 1,
    ) -> None:
        self.booster = booster
        self.spec = spec
        self.columns = columns
        self.base_logit = float(base_logit)
        self.num_threads = int(num_threads)
        self.stop_reason = "completed"
        self._leaves: tuple[int, int] | None = None
        self._scores: dict[int, tuple[np.ndarray, int, np.ndarray]] | None = None

    def keep_scores(self, keep: bool) -> None:
        """While training (``keep=True``), remember the raw scores of the arrays predicted
        (the core's training and validation groups, every epoch), so that each epoch adds
        only its new trees' values; ``keep=False`` forgets them."""
        self._scores = {} if keep else None

    @property
    def trees(self) -> int:
        """Boosting rounds in the model."""
        return int(self.booster.current_iteration())

    def forget(self) -> None:
        """Drop what was cached of the trees (after they change)."""
        self._leaves = None

    @property
    def n_params(self) -> int:
        """Leaves of all trees (each holds one trained value), plus the base logit."""
        if self._leaves is None or self._leaves[0] != self.trees:
            info = self.dump()["tree_info"]
            self._leaves = (self.trees, sum(int(t["num_leaves"]) for t in info))
        return self._leaves[1] + 1

    def dump(self) -> dict[str, Any]:
        """``Booster.dump_model`` of the current trees (every split, categories included)."""
        return self.booster.dump_model(num_iteration=self.trees)

    def predict_logits(self, X: np.ndarray) -> np.ndarray:
        """Logits, float64 ``[rows]``, for the encoded ``X [rows, d]``.

        Raises
        ------
        BinomlabError
            ``X`` is not 2-D with ``d`` columns.
        """
        X = check_encoded(X, self.columns.width)
        trees = self.trees
        done, raw = 0, np.zeros(X.shape[0])
        cached = None if self._scores is None else self._scores.get(id(X))
        if cached is not None and cached[0] is X and cached[1] <= trees:
            done, raw = cached[1], cached[2]
        if X.shape[0] and trees > done:
            new = self.booster.predict(
                self.columns.table(X),
                raw_score=True,
                start_iteration=done,
                num_iteration=trees - done,
                num_threads=self.num_threads,
            )
            raw = raw + np.asarray(new, np.float64).reshape(X.shape[0])
        if self._scores is not None and (id(X) in self._scores or len(self._scores) < 2):
            self._scores[id(X)] = (X, trees, raw)
        return raw + self.base_logit

    def export_onnx(self, path: Path) -> None:
        export_onnx(self.dump(), self.columns, self.base_logit, path)

    def save_native(self, directory: Path) -> list[str]:
        directory = Path(directory)
        text = self.booster.model_to_string(num_iteration=self.trees)
        (directory / MODEL_FILE).write_text(text)
        sidecar = {
            "format": "binomlab-lightgbm",
            "version": 1,
            "spec": self.spec.to_dict(),
            "columns": self.columns.to_dict(),
            "base_logit": self.base_logit,
            "trees": self.trees,
        }
        (directory / SIDECAR).write_text(json.dumps(sidecar, indent=2))
        return [MODEL_FILE, SIDECAR]

    def __repr__(self) -> str:
        return f"LightGBMNetwork({self.spec}, trees={self.trees}, stop_reason={self.stop_reason!r})"


def load_native(directory: str | Path, *, num_threads: int = 1) -> LightGBMNetwork:
    """Rebuild the network written by :meth:`LightGBMNetwork.save_native` (LightGBM's text
    format and a JSON sidecar; nothing is unpickled).

    Raises
    ------
    ModelFileError
        A file is missing or does not describe a binomlab LightGBM model.
    """
    directory = Path(directory)
    try:
        sidecar = json.loads((directory / SIDECAR).read_text())
        if sidecar.get("format") != "binomlab-lightgbm":
            raise ValueError("not a binomlab-lightgbm sidecar")
        spec = spec_from_dict(sidecar["spec"])
        columns = Columns.from_dict(sidecar["columns"])
        booster = lgb.Booster(model_str=(directory / MODEL_FILE).read_text())
        if booster.current_iteration() != int(sidecar["trees"]):
            raise ValueError("the tree count differs from the sidecar's")
    except (OSError, ValueError, KeyError, TypeError, lgb.basic.LightGBMError) as err:
        msg = f"{str(directory)!r} holds no readable binomlab LightGBM model: {err}"
        raise ModelFileError(msg) from None
    if not isinstance(spec, GBDT):
        msg = f"{str(directory)!r}: the sidecar's spec is {spec}, not a GBDT."
        raise ModelFileError(msg)
    return LightGBMNetwork(
        booster, spec, columns, base_logit=float(sidecar["base_logit"]), num_threads=num_threads
    )
