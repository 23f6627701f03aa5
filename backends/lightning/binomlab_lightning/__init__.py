"""binomlab-lightning: the PyTorch Lightning backend of binomlab, and grouped binomial and
beta-binomial losses for any PyTorch model.

``bl.fit(train, backend="lightning")`` finds :class:`LightningBackend` through the
``binomlab.backends`` entry point; :func:`binomial_nll_with_logits`,
:func:`beta_binomial_nll_with_logits` and their ``nn.Module`` forms work in anyone's own
training loop. Importing this package imports no torch: the names that need it load on first
use.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from binomlab.backends import lazy_names
from binomlab_lightning.backend import LightningBackend

try:
    __version__ = version("binomlab-lightning")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    "BetaBinomialNLLWithLogits": "binomlab_lightning.loss",
    "BinomialNLLWithLogits": "binomlab_lightning.loss",
    "beta_binomial_nll_with_logits": "binomlab_lightning.loss",
    "binomial_nll_with_logits": "binomlab_lightning.loss",
    "BinomialModule": "binomlab_lightning.module",
    "BinomialNet": "binomlab_lightning.module",
    "build_network": "binomlab_lightning.module",
    "LightningNetwork": "binomlab_lightning.network",
    "load_native": "binomlab_lightning.network",
    "LightningSession": "binomlab_lightning.session",
}

__all__ = ["LightningBackend", "__version__", *sorted(_LAZY)]


__getattr__ = lazy_names(__name__, _LAZY)
