import pytest
from hypothesis import HealthCheck, settings

from costlab import _env

# The tests measure in this process too, with the variables the CLI and the workers use
# (`import costlab` sets nothing): oneDNN on, for TensorFlow's allocator statistics.
_env.set_tf_defaults()

# Model calls are slow and their time varies on shared machines: no per-example deadline,
# and a fixed derandomised profile so CI failures reproduce.
settings.register_profile("costlab-tests", deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile("costlab-tests")


def pytest_collection_modifyitems(config, items):
    """Tiers: tests/unit has no TensorFlow (`make test-fast`); every other test is marked
    `integration`, and the notebooks `notebook`."""
    for item in items:
        path = str(item.path)
        if path.endswith(".ipynb"):
            item.add_marker(pytest.mark.notebook)
        elif "/tests/unit/" not in path:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def zoo_models():
    """Every zoo model, built once per session (fixed seeds)."""
    from costlab import zoo

    return {name: zoo.build(name) for name in zoo.names()}


@pytest.fixture(scope="module")
def sample():
    """`(profile, {target: CostModel}, policy)` of the stored run in data/sample_run."""
    from pathlib import Path

    from costlab import Run

    run = Run.load(Path(__file__).resolve().parent.parent / "data" / "sample_run")
    return run.profile, run.cost_models, run.policy
