"""Adapters: how costlab calls a model, reads its input signature, measures its memory
and describes its framework. The rest of costlab only talks to an adapter.

`adapt(obj)` wraps a model object; `costlab.loading.load(spec)` resolves a command-line
model specification (`zoo:NAME`, a path to a `.keras` file, or `module:attribute`).
"""

from __future__ import annotations

from costlab.adapters._base import Adapter, InputSignature
from costlab.adapters.callable import CallableAdapter
from costlab.adapters.keras import KerasAdapter
from costlab.errors import ModelLoadError

__all__ = ["Adapter", "CallableAdapter", "InputSignature", "KerasAdapter", "adapt", "is_keras_model"]


def is_keras_model(obj) -> bool:
    try:
        import keras
    except ImportError:  # pragma: no cover - keras is a dependency
        return False
    return isinstance(obj, keras.Model)


def adapt(obj, *, call="predict_on_batch", name=None):
    """Wrap a model object in the adapter for its framework.

    Args:
        obj: A `keras.Model`, or an adapter (returned unchanged).
        call: Call path, see `KerasAdapter`. Defaults to `"predict_on_batch"`.
        name: Name recorded in results. Defaults to the model's own name.

    Returns:
        An adapter.

    Raises:
        ModelLoadError: `obj` is not a model costlab knows how to call.
    """
    if hasattr(obj, "signature") and hasattr(obj, "memory_source"):
        return obj
    if is_keras_model(obj):
        return KerasAdapter(obj, call=call, name=name)
    raise ModelLoadError(
        f"Expected a keras.Model or a costlab adapter. Received: {type(obj).__module__}.{type(obj).__qualname__}")
