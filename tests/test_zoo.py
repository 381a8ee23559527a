import pytest

from costlab import ModelLoadError, zoo
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
