"""Keras models built in code with fixed seeds, nothing downloaded.

Each model has free (None) axes so that its cost depends on the input shape in a known
way, which makes them the reference cases for every stage of costlab:

| name | input | cost grows with |
|---|---|---|
| `mlp` | float32 (batch, 64) | batch |
| `attention` | int32 token ids (batch, seq_len) < 1000 | batch · seq_len² |
| `recurrent` | int32 token ids (batch, seq_len) < 1000 | batch · seq_len |
| `conv` | float32 images (batch, height, width, 3) | batch · height · width |

Example:
    >>> from costlab import zoo
    >>> model = zoo.build("attention")
    >>> sorted(zoo.names())[:2]
    ['attention', 'conv']
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import ModelLoadError

VOCAB = 1000
_BUILDERS: dict[str, Callable] = {}


def _register(fn):
    _BUILDERS[fn.__name__.lstrip("_")] = fn
    return fn


def names() -> list[str]:
    """Names of the models `build` knows, sorted."""
    return sorted(_BUILDERS)


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
    if name not in _BUILDERS:
        raise ModelLoadError(
            f"Unknown zoo model {name!r}. Expected one of: {', '.join(names())}. Received: {name!r}")
    import keras

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
