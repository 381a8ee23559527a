"""Real architectures costlab was never tuned to, built in code with random weights and fixed
seeds (nothing downloaded): the corpus of `benchmarks/realworld.py`.

Each function is a model factory `costlab run` can load from the repository root, e.g.
`costlab run benchmarks.realmodels:bert_tiny --latency-ms 50 --memory-mib 128 --out runs/bert`.
`TRUTH` gives each model's validity limits from an independent source (its configuration,
or the architecture's arithmetic), to check what costlab finds against.
"""

from __future__ import annotations

import keras


def mobilenet_v3_small():
    """keras.applications MobileNetV3Small, free height and width, average-pooled, a Dense head."""
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV3Small(input_shape=(None, None, 3), include_top=False, pooling="avg",
                                               weights=None, include_preprocessing=False)
    return keras.Model(base.input, keras.layers.Dense(10)(base.output), name="mobilenet_v3_small")


def _image(app, name, **kw):
    keras.utils.set_random_seed(0)
    base = app(input_shape=(None, None, 3), include_top=False, pooling="avg", weights=None, **kw)
    return keras.Model(base.input, keras.layers.Dense(10)(base.output), name=name)


def mobilenet_v2():
    """keras.applications MobileNetV2 (alpha 0.35), free height and width, a Dense head."""
    return _image(keras.applications.MobileNetV2, "mobilenet_v2", alpha=0.35)


def efficientnet_b0():
    """keras.applications EfficientNetB0 (its own rescaling layers kept), free height and width."""
    return _image(keras.applications.EfficientNetB0, "efficientnet_b0")


def resnet50():
    """keras.applications ResNet50, free height and width, a Dense head."""
    return _image(keras.applications.ResNet50, "resnet50")


def densenet121():
    """keras.applications DenseNet121, free height and width, a Dense head."""
    return _image(keras.applications.DenseNet121, "densenet121")


def _hub(cls, name, **kw):
    import keras_hub

    keras.utils.set_random_seed(0)
    return getattr(keras_hub.models, cls)(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                                          intermediate_dim=128, max_sequence_length=128, name=name, **kw)


def gpt2_tiny():
    """keras_hub GPT2Backbone: 2 layers, hidden 64, 2 heads, max_sequence_length 128."""
    return _hub("GPT2Backbone", "gpt2_tiny")


def distilbert_tiny():
    """keras_hub DistilBertBackbone: 2 layers, hidden 64, 2 heads, max_sequence_length 128."""
    return _hub("DistilBertBackbone", "distilbert_tiny")


def roberta_tiny():
    """keras_hub RobertaBackbone: 2 layers, hidden 64, 2 heads, max_sequence_length 128."""
    return _hub("RobertaBackbone", "roberta_tiny")


def text_lstm():
    """A Keras end-to-end text model on raw strings: TextVectorization (a 2,000-word vocabulary
    of seeded random words), Embedding 32, LSTM 32, a Dense head."""
    import numpy as np

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = sorted({"".join(rng.choice(letters, size=int(rng.integers(2, 10)))) for _ in range(2200)})[:2000]
    vec = keras.layers.TextVectorization(max_tokens=len(vocab) + 2, vocabulary=vocab)
    text = keras.Input(shape=(1,), dtype="string", name="text")
    x = keras.layers.Embedding(len(vocab) + 2, 32)(vec(text))
    x = keras.layers.LSTM(32)(x)
    return keras.Model(text, keras.layers.Dense(2)(x), name="text_lstm")


def bert_tiny():
    """keras_hub BertBackbone: 2 layers, hidden 64, 2 heads, max_sequence_length 128."""
    import keras_hub

    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                                         intermediate_dim=128, max_sequence_length=128, name="bert_tiny")


#: Validity limits from the configuration: BERT's position table has 128 rows; MobileNetV3's
#: limit on a side is the architecture's (found by an exhaustive fresh-process scan,
#: `benchmarks/realworld.py --scan`).
TRUTH = {"bert_tiny": {"seq_len": {"max": 128}}, "gpt2_tiny": {"seq_len": {"max": 128}},
         "distilbert_tiny": {"seq_len": {"max": 128}}, "roberta_tiny": {"seq_len": {"max": 128}},
         "text_lstm": {}, "mobilenet_v3_small": {}, "mobilenet_v2": {}, "efficientnet_b0": {}, "resnet50": {}, "densenet121": {}}

#: The architecture's cost over the sizes each model takes, from its arithmetic (FLOPs and
#: live activations): per model, the classes of its terms for wall time and for peak memory
#: (a run's class matches when it is one of them), and what decides between them. A
#: convolutional network at fixed channels does work and holds activations in proportion to
#: batch × height × width. The transformers here (hidden 64, intermediate 128, position table
#: 128) do 4·d² + 2·d·ff = 32,768 multiply-adds per token in their projections and 2·d·s =
#: 128·s in attention, and hold about 600 floats per token against 2·s attention scores: over
#: the sizes they take, b·s + b·s²/256, the quadratic term at most a third at seq_len 128 (less
#: of the wall time, which carries each call's fixed overhead), so either class is a term of
#: the architecture. The LSTM steps once per word, and splits and looks up its strings per
#: byte: b·words + b·bytes, whose growth in each dimension costlab writes
#: O(batch · text_words · text_bytes) (a class is per dimension: the power of each); its live
#: memory is the embedded words, b·words.
_CNN = (("O(batch · height · width)",), ("O(batch · height · width)",))
_TRANSFORMER = (("O(batch · seq_len)", "O(batch · seq_len²)"), ("O(batch · seq_len)", "O(batch · seq_len²)"))
ARCH = {"mobilenet_v3_small": _CNN, "mobilenet_v2": _CNN, "efficientnet_b0": _CNN, "resnet50": _CNN,
        "densenet121": _CNN, "bert_tiny": _TRANSFORMER, "gpt2_tiny": _TRANSFORMER, "distilbert_tiny": _TRANSFORMER,
        "roberta_tiny": _TRANSFORMER,
        "text_lstm": (("O(batch · text_words · text_bytes)",), ("O(batch · text_words)",))}

#: Why a run's class is not one of the architecture's (`benchmarks/results/realworld.md`).
WHY = {"roberta_tiny": "peak memory: b·s log s is the single class between the architecture's b·s and b·s² "
                        "terms (the attention scores, about a quarter of live memory at seq_len 128) that the "
                        "fitter chose for their sum"}
