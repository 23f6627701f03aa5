"""``tf.function`` for the functions a fit traces on purpose: once per model.

TensorFlow warns ("N out of the last M calls to … triggered tf.function retracing") when the
functions made from one piece of code are traced often, which it counts across every
``tf.function`` of that code. A fit makes a new model, and with it a new training step and
forward pass, each traced once (or once per batch shape under XLA): after a handful of fits in
one notebook every one of them would warn, though nothing retraces within a fit
(tests/keras/test_keras_backend.py checks the traces of a fit).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["per_model_function"]


def per_model_function(python_function: Callable[..., Any], **options: Any) -> Any:
    """``tf.function(python_function, **options)`` without the frequent-retracing warning."""
    import tensorflow as tf

    function = tf.function(python_function, **options)
    # TensorFlow's own switch for functions it rebuilds on purpose (restored SavedModels)
    function._omit_frequent_tracing_warning = True
    return function
