"""binomlab-lightning: the PyTorch Lightning backend of binomlab, and grouped binomial and
beta-binomial losses for any PyTorch model.

``bl.fit(train, backend="lightning")`` finds :class:`LightningBackend` through the
``binomlab.backends`` entry point; :func:`binomial_nll_with_logits`,
:func:`beta_binomial_nll_with_logits` and their ``nn.Module`` forms work in anyone's own
training loop.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from binomlab_lightning.backend import LightningBackend, LightningNetwork
from binomlab_lightning.export import load_native
from binomlab_lightning.loss import (
    BetaBinomialNLLWithLogits,
    BinomialNLLWithLogits,
    beta_binomial_nll_with_logits,
    binomial_nll_with_logits,
)
from binomlab_lightning.module import BinomialModule, BinomialNet, build_network

try:
    __version__ = version("binomlab-lightning")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BetaBinomialNLLWithLogits",
    "BinomialModule",
    "BinomialNLLWithLogits",
    "BinomialNet",
    "LightningBackend",
    "LightningNetwork",
    "__version__",
    "beta_binomial_nll_with_logits",
    "binomial_nll_with_logits",
    "build_network",
    "load_native",
]
