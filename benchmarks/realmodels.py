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


def bert_tiny():
    """keras_hub BertBackbone: 2 layers, hidden 64, 2 heads, max_sequence_length 128."""
    import keras_hub

    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                                         intermediate_dim=128, max_sequence_length=128, name="bert_tiny")


#: Validity limits from the configuration: BERT's position table has 128 rows; MobileNetV3's
#: limit on a side is the architecture's (found by an exhaustive fresh-process scan,
#: `benchmarks/realworld.py --scan`).
TRUTH = {"bert_tiny": {"seq_len": {"max": 128}}, "mobilenet_v3_small": {}}
