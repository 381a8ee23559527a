"""Adapters: how costlab calls a model, reads its input signature, measures its memory
and describes its framework. The rest of costlab only talks to an adapter.

`adapt(obj)` wraps a model object; `load(spec)` resolves a command-line model
specification (`zoo:NAME`, a path to a `.keras` file, or `module:attribute`).
"""

from __future__ import annotations

from ._base import Adapter, InputSignature
from .callable import CallableAdapter
from .keras import KerasAdapter
from .loading import adapt, load

__all__ = ["Adapter", "CallableAdapter", "InputSignature", "KerasAdapter", "adapt", "load"]
