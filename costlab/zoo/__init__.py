"""Keras models built in code with fixed seeds, nothing downloaded.

Each model has free (None) axes so that its cost depends on the input shape in a known
way, which makes them the reference cases for every stage of costlab:

| name | input | cost grows with |
|---|---|---|
| `mlp` | float32 (batch, 64) | batch |
| `attention` | int32 token ids (batch, seq_len) < 1000 | batch · seq_len² |
| `recurrent` | int32 token ids (batch, seq_len) < 1000 | batch · seq_len |
| `conv` | float32 images (batch, height, width, 3) | batch · height · width |
| `masked` | int32 token ids and their 0/1 mask, both (batch, seq_len): two inputs, one tied axis | batch · seq_len² |
| `multimodal` | int32 token ids (batch, seq_len) and float32 images (batch, height, width, 3): two inputs, batch tied, the rest their own | batch · seq_len + batch · height · width: four free dimensions |
| `sponge` | int32 token ids (batch, seq_len) < 1000 | batch · seq_len × (how often the first token repeats): a value-dependent worst case |

Measurement probes, for checking the profiler itself (`probe_names()`):

| name | what it does |
|---|---|
| `alloc` | Keras: float32 values (batch, seq_len) materialised as (batch, 256, seq_len): exactly `1024 · batch · seq_len` bytes |
| `bomb` | callable: allocates and touches `mib` MiB (past a memory cap: `oom`) |
| `hang` | callable: sleeps for an hour once `mib` ≥ 64 (past a timeout: `timeout`) |
| `abort` | callable: calls `os.abort()` once `mib` ≥ 64 (the process dies: `crashed`) |

Example:
    >>> from costlab import zoo
    >>> model = zoo.build("attention")
    >>> sorted(zoo.names())[:2]
    ['attention', 'conv']
"""

from __future__ import annotations

from collections.abc import Callable

from costlab.adapters.keras import import_keras
from costlab.errors import ModelLoadError

VOCAB = 1000
_BUILDERS: dict[str, Callable] = {}
_PROBES: dict[str, Callable] = {}
#: Size from which `hang` and `abort` misbehave.
HOSTILE_FROM_MIB = 64


def _register(fn):
    _BUILDERS[fn.__name__.lstrip("_")] = fn
    return fn


def _register_probe(fn):
    _PROBES[fn.__name__.lstrip("_")] = fn
    return fn


#: Exploration ranges a zoo model declares where the defaults would hide its growth class on
#: a CPU (applied by `costlab.adapters.load("zoo:NAME")`; see `bounds`). The GRU's fixed
#: per-step overhead outweighs its per-row work below batch ~128, so over the default batch
#: range 1-64 its time barely grows with batch (measured: the class stays undetermined).
BOUNDS = {"recurrent": {"batch": (1, 512)}}


def bounds(name: str) -> dict:
    """The exploration ranges zoo model `name` declares, `{dimension: (min, max)}`."""
    return dict(BOUNDS.get(name, {}))


def names() -> list[str]:
    """Names of the reference models, sorted."""
    return sorted(_BUILDERS)


def probe_names() -> list[str]:
    """Names of the measurement probes (known allocation, hostile callables), sorted."""
    return sorted(_PROBES)


def build(name: str, *, seed: int = 0):
    """Build a zoo model with weights drawn from a fixed seed.

    Args:
        name: One of `names()`.
        seed: Seed for the weight initialisers. Defaults to `0`.

    Returns:
        A built `keras.Model` whose `name` is `name`.

    Raises:
        ModelLoadError: `name` is not a zoo model.
    """
    if name in _PROBES:
        if name == "alloc":
            import_keras().utils.set_random_seed(seed)
        return _PROBES[name]()
    if name not in _BUILDERS:
        raise ModelLoadError(
            f"Unknown zoo model {name!r}. Expected one of: {', '.join(names() + probe_names())}. "
            f"Received: {name!r}")
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    model = _BUILDERS[name]()  # every layer is named, so the config (and sha256) is stable
    return model


@_register
def _mlp():
    import keras
    from keras import layers

    x = keras.Input(shape=(64,), name="features", dtype="float32")
    h = layers.Dense(256, activation="relu", name="dense_1")(x)
    h = layers.Dense(256, activation="relu", name="dense_2")(h)
    y = layers.Dense(10, name="logits")(h)
    return keras.Model(x, y, name="mlp")


@_register
def _attention():
    import keras
    from keras import layers

    x = keras.Input(shape=(None,), name="tokens", dtype="int32")
    h = layers.Embedding(VOCAB, 64, name="embedding")(x)
    a = layers.MultiHeadAttention(num_heads=2, key_dim=32, name="attention")(h, h)
    h = layers.LayerNormalization(name="norm")(layers.Add(name="residual")([h, a]))
    h = layers.Dense(64, activation="relu", name="dense")(h)
    h = layers.GlobalAveragePooling1D(name="pool")(h)
    y = layers.Dense(2, name="logits")(h)
    return keras.Model(x, y, name="attention")


@_register
def _recurrent():
    import keras
    from keras import layers

    x = keras.Input(shape=(None,), name="tokens", dtype="int32")
    h = layers.Embedding(VOCAB, 32, name="embedding")(x)
    h = layers.GRU(32, return_sequences=True, name="gru")(h)
    h = layers.GlobalAveragePooling1D(name="pool")(h)
    y = layers.Dense(2, name="logits")(h)
    return keras.Model(x, y, name="recurrent")


@_register
def _conv():
    import keras
    from keras import layers

    x = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_1")(x)
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv_2")(h)
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    y = layers.Dense(10, name="logits")(h)
    return keras.Model(x, y, name="conv")


@_register
def _masked():
    import keras
    from keras import layers, ops

    t = keras.Input(shape=(None,), name="tokens", dtype="int32")
    m = keras.Input(shape=(None,), name="mask", dtype="int32")
    h = layers.Embedding(VOCAB, 32, name="embedding")(t)
    h = layers.Multiply(name="apply_mask")([h, ops.expand_dims(ops.cast(m, "float32"), -1)])
    a = layers.MultiHeadAttention(num_heads=2, key_dim=16, name="attention")(h, h)
    y = layers.Dense(2, name="logits")(layers.GlobalAveragePooling1D(name="pool")(a))
    return keras.Model([t, m], y, name="masked")


@_register
def _multimodal():
    import keras
    from keras import layers

    t = keras.Input(shape=(None,), name="tokens", dtype="int32")
    x = keras.Input(shape=(None, None, 3), name="image", dtype="float32")
    h = layers.Embedding(VOCAB, 32, name="embedding")(t)
    h = layers.GlobalAveragePooling1D(name="text_pool")(layers.Dense(32, activation="relu", name="text_dense")(h))
    g = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    g = layers.GlobalAveragePooling2D(name="image_pool")(g)
    y = layers.Dense(2, name="logits")(layers.Concatenate(name="fuse")([h, g]))
    return keras.Model([t, x], y, name="multimodal")


def _repeat_loop_layer():
    """`RepeatLoop`, registered once with Keras's serialisation (so `.keras` files load)."""
    import keras
    from keras import layers, ops

    @keras.saving.register_keras_serializable(package="costlab")
    class RepeatLoop(layers.Layer):
        """Applies a dense tanh block once per occurrence of the first token in the row
        that repeats it most: random ids give ~1 pass, one token repeated gives seq_len."""

        def build(self, input_shape):
            width = input_shape[0][-1]
            self.w = self.add_weight(shape=(width, width), initializer="orthogonal", name="w")

        def call(self, inputs):
            h, ids = inputs
            trips = ops.max(ops.sum(ops.cast(ops.equal(ids, ids[:, :1]), "int32"), axis=1))

            def body(i, h):
                return i + 1, ops.tanh(ops.matmul(h, self.w))

            return ops.while_loop(lambda i, h: i < trips, body, (ops.zeros((), "int32"), h))[1]

        def compute_output_shape(self, input_shape):
            return input_shape[0]

    return RepeatLoop


_RepeatLoop = None


def register_layers():
    """Register the zoo's custom layers with Keras, so saved zoo models load (`.keras`)."""
    global _RepeatLoop
    _RepeatLoop = _RepeatLoop or _repeat_loop_layer()
    return {"RepeatLoop": _RepeatLoop}


@_register
def _sponge():
    import keras
    from keras import layers

    register_layers()
    x = keras.Input(shape=(None,), name="tokens", dtype="int32")
    h = layers.Embedding(VOCAB, 64, name="embedding")(x)
    h = _RepeatLoop(name="repeat_loop")([h, x])
    h = layers.GlobalAveragePooling1D(name="pool")(h)
    y = layers.Dense(2, name="logits")(h)
    return keras.Model(x, y, name="sponge")


# --- measurement probes -------------------------------------------------------------------
ALLOC_REPEAT = 256


@_register_probe
def _alloc():
    """Peak known analytically: `RepeatVector` materialises (batch, 256, n) float32, that is
    1024 · batch · n bytes, which the pooling then reduces to the input's size."""
    import keras
    from keras import layers

    x = keras.Input(shape=(None,), name="values", dtype="float32")
    h = layers.RepeatVector(ALLOC_REPEAT, name="materialise")(x)
    y = layers.GlobalAveragePooling1D(name="reduce")(h)
    return keras.Model(x, y, name="alloc")


def _hostile_space(max_mib: int = 4096):
    from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain

    return InputSpace((InputSpec("x", "float32", ("mib",), ValueDomain("float", 0.0, 1.0)),),
                      (Dimension("mib", 1, max_mib),))


def bomb(inputs):
    """Allocate and touch `mib` MiB, return their sum."""
    import numpy as np

    block = np.ones(inputs["x"].shape[0] * 2**20, dtype=np.uint8)
    return int(block.sum())


def hang(inputs):
    """Return at once below `HOSTILE_FROM_MIB`, else sleep for an hour."""
    import time

    if inputs["x"].shape[0] >= HOSTILE_FROM_MIB:
        time.sleep(3600)
    return 0


def abort(inputs):
    """Return at once below `HOSTILE_FROM_MIB`, else kill the process with `os.abort()`."""
    import os

    if inputs["x"].shape[0] >= HOSTILE_FROM_MIB:
        os.abort()
    return 0


def _hostile(fn):
    def build():
        from costlab.adapters import CallableAdapter

        return CallableAdapter(fn, _hostile_space(), name=fn.__name__, ref=f"zoo:{fn.__name__}")
    build.__name__ = fn.__name__
    return _register_probe(build)


for _fn in (bomb, hang, abort):
    _hostile(_fn)
