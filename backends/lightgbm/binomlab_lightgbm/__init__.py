"""binomlab-lightgbm: the LightGBM backend of binomlab, gradient-boosted trees trained on the
grouped binomial loss (cross-entropy with label ``k/n`` and weight ``n``).

``bl.fit(train, model=bl.GBDT(...), backend="lightgbm")`` finds :class:`LightGBMBackend`
through the ``binomlab.backends`` entry point; :func:`binomial_dataset` builds the same
LightGBM ``Dataset`` for anyone's own ``lightgbm.train``. Importing this package imports no
LightGBM: the names that need it load on first use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from binomlab.backends import lazy_names
from binomlab_lightgbm.backend import LightGBMBackend

try:
    __version__ = version("binomlab-lightgbm")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    "binomial_dataset": "binomlab_lightgbm.loss",
    "binomial_labels": "binomlab_lightgbm.loss",
    "export_onnx": "binomlab_lightgbm.export",
    "LightGBMNetwork": "binomlab_lightgbm.network",
    "load_native": "binomlab_lightgbm.network",
    "LightGBMSession": "binomlab_lightgbm.session",
}

__all__ = ["LightGBMBackend", "__version__", *sorted(_LAZY)]


__getattr__ = lazy_names(__name__, _LAZY)
