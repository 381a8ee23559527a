"""Hugging Face candle models through its Python bindings (PyPI `candle-nn`, `import candle`).

candle has no input signature and no allocator statistics: a `CandleAdapter` carries an
explicit `InputSpace`, memory is the process peak (exact in isolated probes, see
`costlab.measurement.executors`), and the model's own hard limits (`max_position_embeddings`,
`vocab_size`) are declared so that the space and the policy respect them. Inputs beyond
them make candle raise; costlab records those probes as failures.

The candle zoo (`candle:bert`, `candle:mlp`) is in `costlab.zoo.candle`.
"""

from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np

from costlab.adapters._base import SpaceAdapter, is_space
from costlab.errors import CostlabError, ModelLoadError

_DTYPES = {"uint32": "u32", "int64": "i64", "float32": "f32", "float64": "f64", "uint8": "u8"}


def import_candle():
    try:
        import candle
    except ImportError:
        raise ModelLoadError("candle models need the candle bindings: pip install 'costlab[candle]' "
                             "(PyPI candle-nn)") from None
    return candle


class CandleAdapter(SpaceAdapter):
    """Calls a candle module's `forward` on the inputs of an explicit space.

    Args:
        module: A `candle.nn.Module`.
        space: The `InputSpace`; inputs are passed to `forward` in its order.
        forward: `fn(module, tensors) -> output`, when `forward(*tensors)` is not the call.
            Defaults to `None`.
        name: Name recorded in results. Defaults to the module's class name.
        hard_limits: `{dimension: largest size the model accepts}` (e.g. `seq_len` up to
            `max_position_embeddings`); the space is clipped to them and the policy keeps
            them. Defaults to `{}`.
        spec: What a worker process loads to rebuild it (`candle:NAME` or
            `module:attribute`). Defaults to `None`.
    """

    framework = "candle"
    call_path = "forward"

    def __init__(self, module, space, *, forward=None, name=None, hard_limits=None, spec=None):
        if not is_space(space):
            raise CostlabError(f"Expected a costlab.InputSpace for `space`. Received: {type(space).__name__}")
        self.module, self.space = module, space
        self._forward = forward
        self.name = name or type(module).__name__
        self.hard_limits = dict(hard_limits or {})
        for d, top in self.hard_limits.items():
            if space.dim(d).max > top:
                self.space = self.space.with_bounds(**{d: (min(space.dim(d).min, top), top)})
        if spec:
            self.spec = spec
        self._memory = None

    def prepare(self, inputs: dict):
        """Convert NumPy inputs to candle tensors once, outside the timed calls."""
        candle = import_candle()
        out = []
        for spec in self.space.inputs:
            arr = np.ascontiguousarray(inputs[spec.name])
            t = candle.Tensor(arr)
            want = _DTYPES.get(str(arr.dtype))
            out.append(t if want is None else t.to_dtype(want))
        return out

    def __call__(self, inputs):
        tensors = inputs if isinstance(inputs, list) else self.prepare(inputs)
        if self._forward is not None:
            return self._forward(self.module, tensors)
        return self.module.forward(*tensors)

    def sha256(self) -> str:
        """sha256 over the parameter names, shapes and values, in name order."""
        h = hashlib.sha256(self.name.encode())
        for key, t in sorted(self.module.state_dict().items()):
            h.update(key.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(np.asarray(t.values(), dtype=np.float32).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        try:
            version = metadata.version("candle-nn")
        except metadata.PackageNotFoundError:
            version = "unknown"
        state = self.module.state_dict()
        n = int(sum(int(np.prod(t.shape)) for t in state.values()))
        return {"name": self.name, "sha256": self.sha256(), "framework": self.framework,
                "versions": {"candle-nn": version}, "call": self.call_path, "parameters": n,
                "weights_bytes": 4 * n, "hard_limits": self.hard_limits}
