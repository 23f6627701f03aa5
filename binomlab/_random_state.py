"""Keep the caller's global random state across a training run.

Backends seed the process-wide generators so that the same seed trains the same network
(``lightning.seed_everything``, ``keras.utils.set_random_seed``). Left seeded, the caller's
own code replays the same draws after every ``bl.fit``. :func:`keep_random_state` puts back
the two generators every backend seeds, Python's and NumPy's; each plugin wraps it with its
framework's part (torch, TensorFlow, Keras).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np


@contextlib.contextmanager
def keep_random_state() -> Iterator[None]:
    """Restore the state of :mod:`random` and of NumPy's global generator on exit, whether the
    block returns, raises or is interrupted."""
    python = random.getstate()
    # the legacy global generator is the very state to keep
    numpy = np.random.get_state()  # noqa: NPY002
    try:
        yield
    finally:
        random.setstate(python)
        np.random.set_state(numpy)  # noqa: NPY002
