import numpy as np
import pytest

from costlab import InputSpace, ModelLoadError, zoo
from costlab.adapters import adapt


def test_names_lists_the_four_reference_models():
    assert {"mlp", "attention", "recurrent", "conv"} <= set(zoo.names())


@pytest.mark.parametrize("name", ["mlp", "attention", "recurrent", "conv"])
def test_build_is_deterministic_per_seed(name, zoo_models):
    same = adapt(zoo.build(name)).sha256()
    assert adapt(zoo_models[name]).sha256() == same
    assert adapt(zoo.build(name, seed=1)).sha256() != same


def test_unknown_name_says_what_exists_and_what_was_received():
    with pytest.raises(ModelLoadError, match=r"Unknown zoo model 'resnet'.*attention.*Received: 'resnet'"):
        zoo.build("resnet")


def test_the_multimodal_model_has_four_free_dimensions_with_batch_tied(zoo_models):
    space = InputSpace.from_model(zoo_models["multimodal"])
    assert space.dim_names == ["batch", "seq_len", "height", "width"]
    assert [i.shape for i in space.inputs] == [("batch", "seq_len"), ("batch", "height", "width", 3)]
    inputs = space.random_inputs({"batch": 2, "seq_len": 9, "height": 17, "width": 5}, seed=0)
    assert inputs["tokens"].shape == (2, 9) and inputs["image"].shape == (2, 17, 5, 3)
    out = adapt(zoo_models["multimodal"])(inputs)
    assert np.asarray(out).shape == (2, 2)
