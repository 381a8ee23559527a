import json

import numpy as np
import pytest

from costlab import InputSpace, InvalidSpace
from costlab.inputs.space import Dimension, InputSpec, ValueDomain


@pytest.mark.parametrize("name, dims, shape", [
    ("mlp", ["batch"], ["batch", 64]),
    ("attention", ["batch", "seq_len"], ["batch", "seq_len"]),
    ("recurrent", ["batch", "seq_len"], ["batch", "seq_len"]),
    ("conv", ["batch", "height", "width"], ["batch", "height", "width", 3]),
])
def test_every_free_axis_becomes_a_named_dimension(zoo_models, name, dims, shape):
    space = InputSpace.from_model(zoo_models[name])
    assert space.dim_names == dims
    assert list(space.inputs[0].shape) == shape


def test_token_ids_are_bounded_by_the_embedding(zoo_models):
    spec = InputSpace.from_model(zoo_models["attention"]).inputs[0]
    assert (spec.values.kind, spec.values.min, spec.values.max) == ("int", 0, 999)
    assert spec.dtype == "int32"


def test_round_trips_through_json(zoo_models, tmp_path):
    space = InputSpace.from_model(zoo_models["conv"]).with_bounds(height=(8, 64))
    path = tmp_path / "space.json"
    space.to_json(path)
    again = InputSpace.from_json(path)
    assert again == space
    assert again.dim("height") == Dimension("height", 8, 64)
    assert InputSpace.from_dict(json.loads(space.to_json())) == space


def test_shapes_and_random_inputs_follow_sizes(zoo_models):
    space = InputSpace.from_model(zoo_models["attention"])
    x = space.random_inputs({"batch": 3, "seq_len": 17}, seed=1)
    assert x["tokens"].shape == (3, 17) and x["tokens"].dtype == "int32"
    assert 0 <= x["tokens"].min() and x["tokens"].max() <= 999


DIGITS = ValueDomain("int", 0, 9)


def _tok(shape=("batch", "seq_len"), values=DIGITS, dtype="int32"):
    return InputSpec("tokens", dtype, shape, values)


BAD_SPACES = [
    pytest.param(lambda: InputSpace((_tok(),), (Dimension("batch", 1, 4),)), "seq_len", id="axis-names-unknown-dim"),
    pytest.param(lambda: InputSpace((_tok(),), (Dimension("batch", 1, 4), Dimension("seq_len", 9, 3))),
                 r"min=9 is larger than max=3", id="min-over-max"),
    pytest.param(lambda: InputSpace((_tok(),), (Dimension("batch", 0, 4), Dimension("seq_len", 1, 3))),
                 r"`batch` needs min >= 1", id="zero-min"),
    pytest.param(lambda: InputSpace((_tok(),), (Dimension("batch", 1.5, 4), Dimension("seq_len", 1, 3))),
                 "integer bounds", id="float-bounds"),
    pytest.param(lambda: InputSpace((_tok(dtype="int8", values=ValueDomain("int", 0, 999)),),
                                    (Dimension("batch", 1, 4), Dimension("seq_len", 1, 3))),
                 "do not fit dtype int8", id="values-overflow-dtype"),
    pytest.param(lambda: InputSpace((_tok(),), (Dimension("batch", 1, 4), Dimension("seq_len", 1, 3),
                                                Dimension("height", 1, 3))), "not used", id="unused-dim"),
    pytest.param(lambda: InputSpace((), ()), "at least one input", id="no-inputs"),
    pytest.param(lambda: InputSpace.from_dict({"inputs": [{"name": "x"}], "dims": []}), "Malformed", id="malformed-dict"),
]


@pytest.mark.parametrize("make, message", BAD_SPACES)
def test_invalid_spaces_raise_naming_the_axis(make, message):
    with pytest.raises(InvalidSpace, match=message):
        make()


def test_with_bounds_rejects_unknown_dimension(zoo_models):
    space = InputSpace.from_model(zoo_models["attention"])
    with pytest.raises(InvalidSpace, match=r"Unknown dimension 'seq'.*Received: seq=\(1, 2\)"):
        space.with_bounds(seq=(1, 2))


def test_a_zoo_model_loaded_by_name_brings_its_declared_ranges():
    from costlab import zoo
    from costlab.loading import load

    assert InputSpace.from_model(load("zoo:recurrent")).dim("batch").max == zoo.bounds("recurrent")["batch"][1]
    assert InputSpace.from_model(zoo.build("recurrent")).dim("batch").max == 64  # the plain default
    assert InputSpace.from_model(load("zoo:recurrent"), bounds={"batch": (2, 8)}).dim("batch").max == 8
    assert zoo.bounds("attention") == {}


def test_value_domains_can_be_overridden_in_code():
    from costlab import zoo

    space = InputSpace.from_model(zoo.build("attention")).with_values(tokens=(0, 9))
    assert (space.inputs[0].values.min, space.inputs[0].values.max) == (0, 9)
    with pytest.raises(InvalidSpace, match="Unknown input 'ids'.*tokens"):
        space.with_values(ids=(0, 1))
    with pytest.raises(InvalidSpace, match="values \\[0, 3000000000\\] do not fit dtype int32"):
        space.with_values(tokens=(0, 3_000_000_000))


@pytest.mark.parametrize("pattern", ["random", "min", "max", "repeat", "alternate"])
def test_value_patterns_fill_any_size_inside_the_domain(zoo_models, pattern):
    from costlab.inputs.space import VALUE_PATTERNS

    assert pattern in VALUE_PATTERNS
    space = InputSpace.from_model(zoo_models["masked"])
    x = space.pattern_inputs({"batch": 3, "seq_len": 17}, seed=4, values=pattern)
    assert set(x) == {"tokens", "mask"}
    for spec in space.inputs:
        a = x[spec.name]
        assert a.shape == (3, 17) and a.dtype == np.dtype(spec.dtype)
        assert spec.values.min <= a.min() and a.max() <= spec.values.max
        distinct = len(np.unique(a))
        expected = {"min": 1, "max": 1, "repeat": 1, "alternate": 2}.get(pattern)
        if expected is not None:
            assert distinct == expected, (spec.name, a)
    t = x["tokens"]
    if pattern == "min":
        assert (t == 0).all()
    if pattern == "max":
        assert (t == next(i for i in space.inputs if i.name == "tokens").values.max).all()
    if pattern == "alternate":
        assert (t.ravel()[::2] == t.ravel()[0]).all() and (t.ravel()[1::2] != t.ravel()[0]).all()
    # the same seed gives the same values
    y = space.pattern_inputs({"batch": 3, "seq_len": 17}, seed=4, values=pattern)
    assert all((x[k] == y[k]).all() for k in x)


def test_an_unknown_value_pattern_is_named(zoo_models):
    space = InputSpace.from_model(zoo_models["attention"])
    with pytest.raises(InvalidSpace, match=r"Unknown value pattern 'zeros'; expected one of random, min"):
        space.pattern_inputs({"batch": 1, "seq_len": 8}, values="zeros")


def test_a_string_input_without_a_vectorizer_is_a_clear_error_naming_the_input_and_dtype():
    """A string input feeding TextVectorization is sized by words and bytes (tests/test_text.py);
    one feeding anything else (here a StringLookup of categories) has no size costlab can
    vary: a clear error, not numpy's `data type 'string' not understood`."""
    import keras

    text = keras.Input(shape=(1,), dtype="string", name="review")
    ids = keras.layers.StringLookup(vocabulary=["a", "b"])(text)
    model = keras.Model(text, keras.layers.Dense(1)(keras.layers.Embedding(4, 4)(ids)))
    with pytest.raises(InvalidSpace, match=r"Input 'review' has dtype 'string'.*Received: review: dtype='string'"):
        InputSpace.from_model(model)
