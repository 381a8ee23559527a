"""Raw-string inputs: sized by words and bytes per string, drawn from the model's vocabulary,
profiled, limited and guarded."""

import json

import numpy as np
import pytest
from hypothesis import given, settings

import costlab
from costlab import strategies
from costlab.checks.exports import export
from costlab.checks.guard import Guard
from costlab.inputs.text import Text, count_words, strings

VOCAB = tuple(f"w{i}" for i in range(200))


def text_lstm():
    """The pattern Keras recommends for a served text model: raw strings in, vectorized inside."""
    import keras

    keras.utils.set_random_seed(0)
    vec = keras.layers.TextVectorization(max_tokens=len(VOCAB) + 2, vocabulary=list(VOCAB))
    inp = keras.Input(shape=(1,), dtype="string", name="text")
    x = keras.layers.Embedding(len(VOCAB) + 2, 8)(vec(inp))
    x = keras.layers.LSTM(8)(x)
    return keras.Model(inp, keras.layers.Dense(2)(x), name="text_lstm")


def test_strings_have_the_words_and_bytes_asked_for_in_every_pattern():
    t = Text("t_words", "t_bytes", VOCAB)
    for pattern in ("random", "min", "max", "repeat", "alternate", "unknown"):
        for words, n in ((1, 1), (5, 9), (5, 300), (40, 100), (3, 4)):  # (3, 4): fewer bytes than 3 words need
            s = strings(t, rows=3, words=words, n_bytes=n, pattern=pattern, seed=1)
            assert s.shape == (3,) and s.dtype == object
            assert [count_words(t, x) for x in s] == [words] * 3, (pattern, words, n, s)
            assert [len(x.encode()) for x in s] == [max(n, 2 * words - 1)] * 3, (pattern, words, n, s)
    random = strings(t, rows=1, words=20, n_bytes=200, pattern="random", seed=0)[0].split()
    assert sum(w in VOCAB for w in random) >= 19  # whole vocabulary words; the last takes the bytes left
    assert count_words(t, "Hello, World! ...") == 2  # standardized as TextVectorization does, then split


def test_a_string_input_gets_words_and_bytes_dimensions_from_its_vectorizer():
    space = costlab.InputSpace.from_model(text_lstm())
    assert space.dim_names == ["batch", "text_words", "text_bytes"]
    spec = space.inputs[0]
    assert spec.dtype == "string" and spec.shape == ("batch", 1) and spec.text.vocabulary == VOCAB
    assert costlab.InputSpace.from_dict(json.loads(space.to_json())) == space
    x = space.pattern_inputs({"batch": 2, "text_words": 7, "text_bytes": 64}, values="repeat")
    assert x["text"].shape == (2, 1) and space.sizes_of(x) == {"batch": 2, "text_words": 7, "text_bytes": 64}
    cut = space.cut(x, {"batch": 1, "text_words": 3, "text_bytes": 64})
    assert space.sizes_of(cut)["text_words"] == 3 and cut["text"].shape == (1, 1)

    @settings(max_examples=20, database=None, deadline=None)
    @given(strategies.from_input_space(space.with_bounds(text_words=(1, 16), text_bytes=(32, 128))))
    def drawn(inputs):
        sizes = space.sizes_of(inputs)
        assert 1 <= sizes["text_words"] <= 16 and 32 <= sizes["text_bytes"] <= 128

    drawn()


def test_a_raw_string_model_is_profiled_limited_and_guarded(tmp_path):
    model = text_lstm()
    space = costlab.InputSpace.from_model(model).with_bounds(batch=(1, 8), text_words=(1, 32),
                                                             text_bytes=(64, 1024))
    result = costlab.run(model, {"latency_ms": 200, "memory_mib": 512}, tmp_path / "run", space=space, points=4,
                         rounds=1, examples=0, probe_time_s=0.02, refine=False, settle=0, boundary=False,
                         churn=0, throughput_s=1, pulse=0, drift_shapes=0, isolation="inprocess")
    t = result.profile.table
    assert (t["status"] == "ok").all(), t[t["status"] != "ok"][["text_words", "text_bytes", "error"]]
    assert t["text_words"].nunique() >= 3 and t["text_bytes"].nunique() >= 3
    policy = result.policy
    words, n = policy.limits["text_words"], policy.limits["text_bytes"]
    assert words["max"] == 32 and n["max"] == 1024  # generous budgets: the range asked for
    spec = policy.data["inputs"]["text"]
    assert spec["values"]["kind"] == "text" and spec["text"]["words"] == "text_words"
    assert "vocabulary" not in spec["text"]  # the policy carries how to count, not the model's words
    assert policy.data["request"]["max_payload_bytes_raw"] >= 8 * 1024
    for target in ("nginx", "tfserving", "triton", "kubernetes"):
        assert export(policy, target)  # the payload limit and dtypes reach every export
    guard = Guard(policy)
    ok = guard.check({"text": np.array([["w1 w2 w3"], ["w4"]], dtype=object)})
    assert ok["text"].shape == (2, 1)
    guard.check([["w1 " * 31 + "w2"]])  # 32 words: at the limit
    with pytest.raises(costlab.InputRejected, match="text_words") as over:
        guard.check([["w1 " * 32 + "w2"]])
    assert over.value.status == 413 and over.value.received == 33
    with pytest.raises(costlab.InputRejected, match="text_bytes") as long:
        guard.check([["w" * 1025]])  # one word, too many bytes: refused before it is split
    assert long.value.received == 1025
    with pytest.raises(costlab.InputRejected, match="must hold strings"):
        guard.check({"text": np.zeros((1, 1), np.float32)})
    assert guard.check([["Hello, world! " * 16]])["text"].shape == (1, 1)  # 32 words once punctuation goes
    report = costlab.verify(model, policy, probes=6, tightness=False, pulse=0, fresh=False, isolation="inprocess")
    assert report.ok, report.summary()
