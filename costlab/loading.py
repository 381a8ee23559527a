"""Turn what a user names (`zoo:NAME`, `path.keras`, `module:attribute`) into an adapter."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from costlab import zoo
from costlab.adapters import adapt, is_keras_model
from costlab.adapters.keras import import_keras
from costlab.errors import ModelLoadError
from costlab.zoo import candle as candle_zoo


def import_attribute(spec: str, *, error=ModelLoadError):
    """The object `module:attribute` names (dots walk attributes), importing from the
    working directory too; a missing module or attribute raises `error` naming it."""
    mod_name, _, attr = spec.partition(":")
    if not mod_name or not attr:
        raise error(f"Expected MODULE:ATTRIBUTE. Received: {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj = importlib.import_module(mod_name)
    except Exception as exc:
        raise error(f"Could not import module {mod_name!r} from {spec!r}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise error(f"Module {mod_name!r} has no attribute {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    return obj


def load(spec: str, *, call="predict_on_batch"):
    """Load a model from a command-line specification and adapt it.

    Args:
        spec: `zoo:NAME`, `candle:NAME` (`bert`, `mlp`), a path to a `.keras` file, or
            `module:attribute` naming a Keras model, an adapter (e.g. a `CandleAdapter`),
            or a zero-argument factory returning one.
        call: Call path, see `KerasAdapter`. Defaults to `"predict_on_batch"`.

    Returns:
        An adapter.

    Raises:
        ModelLoadError: The specification names nothing loadable; the message says
            which part was wrong and echoes `spec`.
    """
    adapter = _load(spec, call=call)
    adapter.spec = spec  # what a worker process loads to run isolated probes
    return adapter


def _load(spec, *, call):
    if not isinstance(spec, str) or not spec:
        raise ModelLoadError(f"Expected a model specification string. Received: {spec!r}")
    if spec.startswith("candle:"):
        return candle_zoo.build(spec[len("candle:"):])
    if spec.startswith("zoo:"):
        adapter = adapt(zoo.build(spec[4:]), call=call, name=spec[4:])
        adapter.default_bounds = zoo.bounds(spec[4:])
        return adapter
    if spec.endswith(".keras") or spec.endswith(".h5"):
        path = Path(spec)
        if not path.is_file():
            raise ModelLoadError(f"Model file not found: {spec}")
        keras = import_keras()
        zoo.register_layers()  # saved zoo models (e.g. sponge) use costlab's custom layers
        try:
            model = keras.saving.load_model(path, compile=False)
        except Exception as exc:  # keras raises many kinds for a bad file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"Could not load Keras model from {spec}: {first}") from None
        return adapt(model, call=call, name=path.stem)
    if ":" in spec:
        obj = import_attribute(spec)
        attr = spec.partition(":")[2]
        if not is_keras_model(obj) and callable(obj):
            try:
                obj = obj()
            except Exception as exc:
                raise ModelLoadError(f"Model factory {spec!r} raised {type(exc).__name__}: {exc}") from None
        return adapt(obj, call=call, name=attr)
    raise ModelLoadError(
        f"Expected zoo:NAME, candle:NAME, a path to a .keras file, or module:attribute. Received: {spec!r}")
