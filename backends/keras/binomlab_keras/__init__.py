"""binomlab-keras: the Keras 3 backend of binomlab, and grouped binomial and beta-binomial
losses for any Keras model.

``bl.fit(train, backend="keras")`` finds :class:`KerasBackend` through the
``binomlab.backends`` entry point; :class:`BinomialNLL` (a ``keras.losses.Loss``) and
:class:`BinomialNLLMetric` work in anyone's ``model.compile``, under every Keras backend, and
so do :class:`BetaBinomialNLL` and its metric with the :class:`LogPhi` layer that holds the
trainable ``θ = log φ`` (or :class:`LogPhiDense`, a ``θ`` per row from the last hidden layer).

Importing this package imports no Keras (the names that need it load on first use); it sets
``TF_CPP_MIN_LOG_LEVEL=2`` and ``TF_ENABLE_ONEDNN_OPTS=0`` unless
they are set already, so that TensorFlow, imported by Keras, does not print its start-up
messages (and computes as it does without oneDNN's reordered sums).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from importlib.metadata import PackageNotFoundError, version

from binomlab.backends import lazy_names
from binomlab_keras.backend import KerasBackend

try:
    __version__ = version("binomlab-keras")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    **dict.fromkeys(
        (
            "BetaBinomialNLL",
            "BetaBinomialNLLMetric",
            "BinomialNLL",
            "BinomialNLLMetric",
            "LogPhi",
            "LogPhiDense",
            "beta_binomial_nll",
            "binomial_nll",
            "pack_counts",
        ),
        "binomlab_keras.loss",
    ),
    "build_model": "binomlab_keras.model",
    "KerasNetwork": "binomlab_keras.network",
    "load_native": "binomlab_keras.network",
    "KerasSession": "binomlab_keras.session",
}

__all__ = ["KerasBackend", "__version__", *sorted(_LAZY)]


__getattr__ = lazy_names(__name__, _LAZY)
