"""Hugging Face candle models through its Python bindings (PyPI `candle-nn`, `import candle`).

candle has no input signature and no allocator statistics: a `CandleAdapter` carries an
explicit `InputSpace`, memory is the process peak (exact in isolated probes, see
`costlab.isolation`), and the model's own hard limits (`max_position_embeddings`,
`vocab_size`) are declared so that the space and the policy respect them. Inputs beyond
them make candle raise; costlab records those probes as failures.

`build(name)` makes the candle zoo (`candle:bert`, `candle:mlp`): weights drawn from a
fixed seed with NumPy and loaded with `load_state_dict`, nothing downloaded.
"""

from __future__ import annotations

import hashlib
from importlib import metadata

import numpy as np

from ..errors import CostlabError, ModelLoadError
from ._base import SpaceAdapter

_DTYPES = {"uint32": "u32", "int64": "i64", "float32": "f32", "float64": "f64", "uint8": "u8"}


def _candle():
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
        from ..space import InputSpace

        if not isinstance(space, InputSpace):
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
        candle = _candle()
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


# --- the candle zoo --------------------------------------------------------------------------
def _seeded_state(module, seed: int, scale: float = 0.02):
    """Fill every parameter from a seeded NumPy generator (candle has no global seed)."""
    candle = _candle()
    rng = np.random.default_rng(seed)
    state = {}
    for key, t in sorted(module.state_dict().items()):
        shape = tuple(t.shape)
        if key.endswith("bias") or "LayerNorm.bias" in key:
            arr = np.zeros(shape, np.float32)
        elif "LayerNorm.weight" in key:
            arr = np.ones(shape, np.float32)
        else:
            arr = (rng.standard_normal(shape) * scale).astype(np.float32)
        state[key] = candle.Tensor(arr)
    module.load_state_dict(state)
    return module


#: The small BERT configuration of `candle:bert`.
BERT_CONFIG = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=128, max_position_embeddings=512, type_vocab_size=2)


def _bert(seed):
    from candle.models.bert import BertModel, Config

    from ..space import Dimension, InputSpace, InputSpec, ValueDomain

    cfg = Config(**BERT_CONFIG)
    model = _seeded_state(BertModel(cfg), seed)
    space = InputSpace(
        (InputSpec("input_ids", "uint32", ("batch", "seq_len"), ValueDomain("int", 0, cfg.vocab_size - 1)),
         InputSpec("token_type_ids", "uint32", ("batch", "seq_len"), ValueDomain("int", 0, cfg.type_vocab_size - 1))),
        (Dimension("batch", 1, 64), Dimension("seq_len", 8, 1024)))
    return CandleAdapter(model, space, name="bert", spec="candle:bert",
                         forward=lambda m, t: m.forward(t[0], t[1])[0],
                         hard_limits={"seq_len": cfg.max_position_embeddings})


def _mlp(seed):
    from candle import nn

    from ..space import Dimension, InputSpace, InputSpec, ValueDomain

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense_1 = nn.Linear(64, 256)
            self.dense_2 = nn.Linear(256, 256)
            self.logits = nn.Linear(256, 10)

        def forward(self, x):
            candle = _candle()
            h = candle.functional.relu(self.dense_1.forward(x))
            h = candle.functional.relu(self.dense_2.forward(h))
            return self.logits.forward(h)

    model = _seeded_state(MLP(), seed, scale=0.05)
    space = InputSpace((InputSpec("features", "float32", ("batch", 64), ValueDomain("float", -1.0, 1.0)),),
                       (Dimension("batch", 1, 64),))
    return CandleAdapter(model, space, name="mlp", spec="candle:mlp")


ZOO = {"bert": _bert, "mlp": _mlp}


def build(name: str, *, seed: int = 0) -> CandleAdapter:
    """A candle zoo model (`bert`, `mlp`) with weights from a fixed seed.

    Raises:
        ModelLoadError: Unknown name, or candle is not installed.
    """
    if name not in ZOO:
        raise ModelLoadError(f"Unknown candle zoo model {name!r}. Expected one of: {', '.join(sorted(ZOO))}. "
                             f"Received: {name!r}")
    _candle()
    return ZOO[name](seed)
