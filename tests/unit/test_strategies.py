import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from costlab import InputSpace, strategies
from costlab.inputs.space import Dimension, InputSpec, ValueDomain

PAIR = InputSpace(
    (InputSpec("ids", "int32", ("batch", "seq_len"), ValueDomain("int", 0, 49)),
     InputSpec("mask", "int32", ("batch", "seq_len"), ValueDomain("int", 0, 1)),
     InputSpec("feats", "float32", ("batch", 4), ValueDomain("float", -2.0, 2.0))),
    (Dimension("batch", 1, 6), Dimension("seq_len", 2, 40)),
)


@given(strategies.from_input_space(PAIR))
def test_every_input_matches_its_space(inputs):
    assert set(inputs) == {"ids", "mask", "feats"}
    b, s = inputs["ids"].shape
    assert 1 <= b <= 6 and 2 <= s <= 40
    assert inputs["mask"].shape == (b, s)  # tied axes
    assert inputs["feats"].shape == (b, 4)
    assert inputs["ids"].dtype == np.int32 and inputs["feats"].dtype == np.float32
    assert inputs["ids"].min() >= 0 and inputs["ids"].max() <= 49
    assert set(np.unique(inputs["mask"])) <= {0, 1}
    assert np.isfinite(inputs["feats"]).all() and np.abs(inputs["feats"]).max() <= 2.0


@given(strategies.from_input_space(PAIR, max_elements=120))
def test_max_elements_caps_the_total(inputs):
    assert sum(a.size for a in inputs.values()) <= 120


@given(strategies.sizes(PAIR))
def test_sizes_stay_in_bounds(sizes):
    assert 1 <= sizes["batch"] <= 6 and 2 <= sizes["seq_len"] <= 40


def test_draw_examples_of_zero_is_empty():
    assert strategies.draw_examples(strategies.from_input_space(PAIR), 0) == []


def test_draw_examples_is_reproducible():
    a = strategies.draw_examples(strategies.from_input_space(PAIR), 5, seed=3)
    b = strategies.draw_examples(strategies.from_input_space(PAIR), 5, seed=3)
    assert len(a) == 5
    for x, y in zip(a, b, strict=True):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])


@pytest.mark.parametrize("call, message", [
    pytest.param(lambda: strategies.from_input_space("space"), "Expected an InputSpace", id="not-a-space"),
    pytest.param(lambda: strategies.from_input_space(PAIR, max_elements=0), "max_elements=0", id="zero-cap"),
    pytest.param(lambda: strategies.sizes(PAIR, max_elements=2.5), "max_elements=2.5", id="float-cap"),
])
def test_bad_arguments_raise_invalid_argument(call, message):
    with pytest.raises(InvalidArgument, match=message):
        call()


def test_usable_inside_a_users_given_test():
    seen = []

    @given(st.data())
    def inner(data):
        seen.append(data.draw(strategies.from_input_space(PAIR)))

    inner()
    assert len(seen) > 10


@given(strategies.at_sizes(PAIR, {"batch": 3, "seq_len": 17}))
def test_at_sizes_fixes_the_shape_and_keeps_the_domain(inputs):
    assert inputs["ids"].shape == inputs["mask"].shape == (3, 17)
    assert inputs["ids"].min() >= 0 and inputs["ids"].max() <= 49
    assert np.isfinite(inputs["feats"]).all() and np.abs(inputs["feats"]).max() <= 2.0


def test_degenerate_patterns_are_drawn():
    drawn = strategies.draw_examples(strategies.at_sizes(PAIR, {"batch": 2, "seq_len": 30}), 60, seed=1)
    ids = [x["ids"] for x in drawn]
    assert any((a == 0).all() for a in ids), "all zeros"
    assert any((a == 49).all() for a in ids), "all the maximum id"
    assert any(len(np.unique(a)) == 1 and 0 < a.flat[0] < 49 for a in ids), "one repeated token"
    assert any(len(np.unique(a)) > 5 for a in ids), "random ids"


def test_extremes_add_nan_inf_and_huge_floats_only_when_asked():
    plain = strategies.draw_examples(strategies.at_sizes(PAIR, {"batch": 2, "seq_len": 3}), 80, seed=2)
    assert all(np.isfinite(x["feats"]).all() for x in plain)
    wild = strategies.draw_examples(strategies.at_sizes(PAIR, {"batch": 2, "seq_len": 3}, extremes=True), 80, seed=2)
    feats = [x["feats"] for x in wild]
    assert any(np.isnan(f).any() for f in feats) and any(np.isinf(f).any() for f in feats)
    assert any((np.abs(f) == np.finfo(np.float32).max).any() for f in feats)
    assert all(x["ids"].max() <= 49 for x in wild), "integer domains stay as they are"


@pytest.mark.parametrize("sizes, message", [
    ({"batch": 3}, "missing"),
    ({"batch": 3, "seq_len": 400}, "seq_len=400, outside"),
])
def test_at_sizes_rejects_sizes_outside_the_space(sizes, message):
    with pytest.raises(InvalidArgument, match=message):
        strategies.at_sizes(PAIR, sizes)


@given(strategies.from_input_space(PAIR))
def test_padded_draws_keep_ids_and_mask_consistent(inputs):
    ids, mask = inputs["ids"], inputs["mask"]
    assert ids.shape == mask.shape and set(np.unique(mask)) <= {0, 1}


def test_padded_sequences_are_drawn_for_ids_with_a_mask():
    assert strategies.padding_pairs(PAIR) == [("ids", "mask")]
    drawn = strategies.draw_examples(strategies.at_sizes(PAIR, {"batch": 3, "seq_len": 20}), 40, seed=4)
    padded = [x for x in drawn if 0 < x["mask"].sum() < x["mask"].size
              and all(np.all(np.diff(row) <= 0) for row in x["mask"])]
    assert padded, "no padded example among 40 draws"
    for x in padded:
        assert (x["ids"][x["mask"] == 0] == 0).all()  # the pad id is the domain's minimum
        assert (x["mask"][:, 0] == 1).all()  # at least one real token per row
