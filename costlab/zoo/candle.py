"""The candle zoo (`candle:bert`, `candle:mlp`): weights drawn from a fixed seed with NumPy
and loaded with `load_state_dict`, nothing downloaded.

Example:
    >>> from costlab.zoo import candle
    >>> adapter = candle.build("mlp")  # needs `pip install 'costlab[candle]'`
"""

from __future__ import annotations

import numpy as np

from costlab.adapters.candle import CandleAdapter, import_candle
from costlab.errors import ModelLoadError
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain


def _seeded_state(module, seed: int, scale: float = 0.02):
    """Fill every parameter from a seeded NumPy generator (candle has no global seed)."""
    candle = import_candle()
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

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense_1 = nn.Linear(64, 256)
            self.dense_2 = nn.Linear(256, 256)
            self.logits = nn.Linear(256, 10)

        def forward(self, x):
            candle = import_candle()
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
    import_candle()
    return ZOO[name](seed)
