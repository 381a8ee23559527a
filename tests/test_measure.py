import time

import numpy as np
import pytest

from costlab.adapters.memory import ProcessPeak, TFAllocatorPeak
from costlab.measurement.timing import measure, median_ci_halfwidth


def test_times_a_call_and_reports_robust_statistics():
    row = measure(lambda: time.sleep(0.002), min_repeats=5, max_repeats=20, time_budget_s=0.2)
    assert row["status"] == "ok" and row["error"] == ""
    assert 5 <= row["repeats"] <= 20
    assert 0.0015 < row["wall_s_min"] <= row["wall_s_median"] <= row["wall_s_p95"]
    assert row["cold_s"] > 0


def test_a_failing_call_is_a_row_not_a_crash():
    def boom():
        raise ValueError("shape mismatch\nlong details")

    row = measure(boom)
    assert row["status"] == "error"
    assert row["error"] == "ValueError: shape mismatch"
    assert row["wall_s_median"] is None


def test_the_cause_line_of_a_tensorflow_error_is_kept():
    """TF's graph errors and Keras's layer errors open with where the error happened; the
    row keeps the line that says why (the embedding's range, the negative output size)."""
    import keras

    tokens = keras.Input((None,), dtype="int32")
    embed = keras.Model(tokens, keras.layers.Dense(2)(keras.layers.Embedding(128, 4)(tokens)))
    row = measure(lambda: embed.predict_on_batch(np.full((2, 200), 130, dtype="int32")))
    assert row["status"] == "error"
    assert "130 is not in [0, 128)" in row["error"], row["error"]
    assert row["error"].startswith("InvalidArgumentError: ") and "Graph execution error" not in row["error"]

    image = keras.Input((None, None, 3))
    conv = keras.Model(image, keras.layers.Conv2D(2, 5)(keras.layers.Conv2D(2, 5)(image)))
    row = measure(lambda: conv.predict_on_batch(np.zeros((1, 6, 6, 3), "float32")))
    assert "Conv2D.call(): Negative dimension size caused by subtracting 5 from 2" in row["error"], row["error"]
    assert "[[" not in row["error"] and "DT_FLOAT" not in row["error"]


def test_memory_follows_the_bytes_requested_between_powers_of_two():
    """Two tensors live at once whose sizes are not powers of two (56.2 and 20.6 MiB) and their
    concatenation: the peak of requested bytes is their sum, within 5%, where TF's allocator
    peak rounds large chunks up to powers of two (`allocator_peak_bytes` keeps it)."""
    import keras
    import tensorflow as tf

    class TwoLive(keras.layers.Layer):
        def call(self, x):
            a = tf.tile(x[..., None], [1, 1, 3000])
            b = tf.tile(x[..., None], [1, 1, 1100])
            return tf.reduce_sum(tf.concat([a, b], axis=-1), axis=-1)

    seq = keras.Input((None,))
    model = keras.Model(seq, TwoLive()(seq))
    x = np.ones((23, 203), "float32")
    row = measure(lambda: model.predict_on_batch(x), memory=TFAllocatorPeak(), min_repeats=3, max_repeats=3)
    a, b = 23 * 203 * 3000 * 4, 23 * 203 * 1100 * 4
    expected = 2 * (a + b) + 2 * x.nbytes  # a, b and their concatenation live at once; input, output
    assert row["status"] == "ok", row["error"]
    assert abs(row["peak_bytes"] - expected) <= 0.05 * expected, (row["peak_bytes"] / 2**20, expected / 2**20)
    assert row["allocator_peak_bytes"] >= row["peak_bytes"]


def test_memory_error_is_recorded_as_oom():
    def alloc():
        raise MemoryError("cannot allocate")

    assert measure(alloc)["status"] == "oom"


def test_median_ci_shrinks_with_tight_samples():
    assert median_ci_halfwidth([1.0] * 10) == 0
    assert median_ci_halfwidth([1, 2, 3, 4, 5]) > median_ci_halfwidth([2.9, 3, 3, 3, 3.1])


def test_tf_allocator_reads_back_a_known_tensor():
    source = TFAllocatorPeak()
    assert source.probe(), "TF CPU allocator statistics do not work on this build"


@pytest.mark.parametrize("mib", [16, 64])
def test_known_allocation_within_tolerance(mib):
    import keras
    import tensorflow as tf

    # A model that materialises exactly `mib` MiB: a float32 (batch, 1024) input tiled K times.
    k = mib * 2**20 // (4 * 1024 * 4)
    x = keras.Input(shape=(1024,), dtype="float32")
    y = keras.layers.Lambda(lambda t: tf.reduce_sum(tf.tile(t, [1, k]), axis=1))(x)
    model = keras.Model(x, y)
    source = TFAllocatorPeak()
    data = np.ones((4, 1024), "float32")
    row = measure(lambda: model.predict_on_batch(data), memory=source, min_repeats=3, max_repeats=3)
    assert row["status"] == "ok"
    assert abs(row["peak_bytes"] - mib * 2**20) <= 0.05 * mib * 2**20, row["peak_bytes"] / 2**20


def test_process_peak_sees_a_fresh_allocation():
    source = ProcessPeak()
    if not source.available():
        pytest.skip("needs Linux /proc/self/clear_refs")
    source.reset()
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    got = source.peak()
    del block
    assert 60 * 2**20 <= got <= 80 * 2**20
