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
