"""The backend contract: the registry of training backends, the protocol a plugin implements,
the built-in ``reference`` backend, and the core's training loop and L-BFGS driver.

* :mod:`~binomlab.backends.registry` — :func:`available`, :func:`get`, :func:`refresh`
  (entry point group ``binomlab.backends``; listing imports no plugin);
* :mod:`~binomlab.backends.protocol` — :class:`~binomlab.backends.protocol.Backend`,
  :class:`~binomlab.backends.protocol.Session`, :class:`~binomlab.backends.protocol.Network`,
  :class:`~binomlab.backends.protocol.TrainConfig`, :class:`~binomlab.backends.protocol.TrainData`;
* :mod:`~binomlab.backends.loop` — the epoch rules for adam/adamw;
* :mod:`~binomlab.backends.lbfgs` — the L-BFGS driver;
* :mod:`~binomlab.backends.reference` — logistic regression in NumPy/SciPy.
"""

from __future__ import annotations

from binomlab.backends.registry import ENTRY_POINT_GROUP, available, get, lazy_names, refresh

__all__ = ["ENTRY_POINT_GROUP", "available", "get", "lazy_names", "refresh"]
