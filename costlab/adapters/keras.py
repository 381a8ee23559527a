"""Keras 3 models (TensorFlow backend)."""

from __future__ import annotations

import hashlib

import numpy as np

from costlab._env import pin_threads
from costlab.adapters._base import InputSignature
from costlab.adapters.memory import JaxDevicePeak, ProcessPeak, TFAllocatorPeak, TorchCudaPeak
from costlab.errors import CostlabError, ModelLoadError

CALL_PATHS = ("predict_on_batch", "call", "predict")

#: The extra that installs each Keras backend (docs/install.md).
BACKEND_EXTRAS = {"tensorflow": "tensorflow-cpu", "jax": "jax", "torch": "torch"}


def import_keras():
    """`keras`, or a `ModelLoadError` naming the extra to install when its backend is missing.

    Example:
        >>> keras = import_keras()  # with KERAS_BACKEND=jax and no jax: "pip install 'costlab[jax]'"
    """
    import os

    backend = os.environ.get("KERAS_BACKEND", "tensorflow") or "tensorflow"
    try:
        import keras
    except ImportError as exc:
        extra = BACKEND_EXTRAS.get(backend, "tensorflow-cpu")
        raise ModelLoadError(f"Keras models need a Keras backend; {backend!r} is not installed ({exc}). "
                             f"Install one: pip install 'costlab[{extra}]' (docs/install.md lists the extras)") from None
    return keras


class KerasAdapter:
    """Calls a Keras model the way production does and measures it.

    Args:
        model: A built `keras.Model`.
        call: How to call it: `"predict_on_batch"` (the compiled graph path, default),
            `"call"` (eager `model(x, training=False)`), `"predict"` (adds Keras's
            per-call loop overhead), or a callable `fn(model, inputs)` for a user's own
            serving function. Defaults to `"predict_on_batch"`.
        name: Name recorded in results. Defaults to `model.name`.
    """

    framework = "keras"

    def __init__(self, model, *, call="predict_on_batch", name=None):
        if callable(call) and not isinstance(call, str):
            self._fn = lambda x: call(model, x)
            self.call_path = getattr(call, "__name__", "serving_fn")
        elif call in CALL_PATHS:
            self._fn = getattr(self, "_" + call)
            self.call_path = call
        else:
            raise CostlabError(
                f"Expected `call` to be one of {', '.join(CALL_PATHS)} or a callable. Received: call={call!r}")
        pin_threads()
        self.model = model
        self.name = name or model.name
        self._memory = None

    # --- call paths -------------------------------------------------------------------
    def _feed(self, inputs):
        if len(self.model.inputs) == 1:
            return next(iter(inputs.values()))
        return inputs

    def _predict_on_batch(self, inputs):
        return self.model.predict_on_batch(self._feed(inputs))

    def _call(self, inputs):
        out = self.model(self._feed(inputs), training=False)
        return np.asarray(out)

    def _predict(self, inputs):
        return self.model.predict(self._feed(inputs), verbose=0)

    def __call__(self, inputs):
        return self._fn(inputs)

    # --- signature ----------------------------------------------------------------------
    def signature(self) -> list[InputSignature]:
        domains = self._embedding_domains()
        texts = self._vectorizers()
        sigs = []
        for t in self.model.inputs:
            name = t.name
            sigs.append(InputSignature(name=name, dtype=str(t.dtype), shape=tuple(t.shape),
                                       values=domains.get(name), text=texts.get(name)))
        return sigs

    def _vectorizers(self) -> dict[str, dict]:
        """For each string input that feeds a `TextVectorization` layer directly: its
        vocabulary (without the padding and OOV entries), split and standardize."""
        import keras

        by_id = {id(t): t.name for t in self.model.inputs}
        out = {}
        for layer in self.model.layers:
            if not isinstance(layer, keras.layers.TextVectorization):
                continue
            cfg = layer.get_config()
            split, std = cfg.get("split"), cfg.get("standardize")
            if not (split in ("whitespace", "character") and std in (None, "lower", "strip_punctuation",
                                                                       "lower_and_strip_punctuation")):
                continue  # a callable split or standardize: words are not counted as the model counts
            vocab = [str(w) for w in layer.get_vocabulary(include_special_tokens=False)]
            for node in getattr(layer, "_inbound_nodes", []):
                for t in node.input_tensors:
                    if id(t) in by_id:
                        out[by_id[id(t)]] = {"vocabulary": vocab, "split": split, "standardize": std}
        return out

    def _embedding_domains(self) -> dict[str, tuple[int, int]]:
        """Token-id ranges of inputs that feed an `Embedding` layer directly, or a layer
        holding Embeddings (keras_hub's `TokenAndPositionEmbedding`: ids must fit the
        smallest table inside it)."""
        import keras

        by_id = {id(t): t.name for t in self.model.inputs}
        out = {}
        for layer in self.model.layers:
            tables = [s for s in (layer._flatten_layers(include_self=True) if hasattr(layer, "_flatten_layers") else [layer])
                      if isinstance(s, keras.layers.Embedding)]
            if not tables:
                continue
            hi = min(int(s.input_dim) for s in tables) - 1
            for node in getattr(layer, "_inbound_nodes", []):
                for t in node.input_tensors:
                    if id(t) in by_id:  # ids must fit every Embedding the input feeds
                        name = by_id[id(t)]
                        out[name] = (0, min(hi, out.get(name, (0, hi))[1]))
        return out

    # --- memory ---------------------------------------------------------------------------
    def memory_source(self):
        """The backend's own per-call statistics where they work, else the process peak:
        TF allocator statistics (checked against a known tensor), JAX device statistics
        (GPUs; XLA's CPU client has none), torch CUDA statistics (GPUs)."""
        if self._memory is None:
            import keras

            backend = keras.backend.backend()
            source = None
            if backend == "tensorflow":
                tf_peak = TFAllocatorPeak()
                source = tf_peak if tf_peak.probe() else None
            elif backend == "jax":
                jax_peak = JaxDevicePeak()
                source = jax_peak if jax_peak.available() else None
            elif backend == "torch" and TorchCudaPeak.available():
                source = TorchCudaPeak()
            self._memory = source or ProcessPeak()
        return self._memory

    # --- description --------------------------------------------------------------------
    def sha256(self) -> str:
        """sha256 over the model's config (JSON) and every weight's bytes, in order."""
        h = hashlib.sha256(self.model.to_json().encode())
        for w in self.model.weights:
            h.update(np.ascontiguousarray(np.asarray(w.numpy())).tobytes())
        return h.hexdigest()

    def weights_sha256(self) -> str:
        """sha256 over every weight's bytes only: equal for the same weights on any backend."""
        h = hashlib.sha256()
        for w in self.model.weights:
            h.update(np.ascontiguousarray(np.asarray(w.numpy())).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        import keras

        backend = keras.backend.backend()
        versions = {"keras": keras.__version__, "backend": backend}
        module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
        if module:
            versions[module] = __import__(module).__version__
        return {"name": self.name, "sha256": self.sha256(), "weights_sha256": self.weights_sha256(),
                "framework": self.framework,
                "versions": versions, "call": self.call_path,
                "parameters": int(self.model.count_params()),
                "weights_bytes": int(sum(np.asarray(w.numpy()).nbytes for w in self.model.weights))}
