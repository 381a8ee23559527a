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


@pytest.fixture(scope="session")
def zoo_models():
    """Every zoo model, built once per session (fixed seeds)."""
    from costlab import zoo

    return {name: zoo.build(name) for name in zoo.names()}


@pytest.fixture(scope="module")
def sample():
    """`(profile, {target: CostModel}, policy)` of the stored run in data/sample_run."""
    import json
    from pathlib import Path

    from costlab import CostModel, Policy
    from costlab.profiling.session import Profile

    run = Path(__file__).resolve().parent.parent / "data" / "sample_run"
    models = {t: CostModel.from_dict(d) for t, d in json.loads((run / "cost_models.json").read_text()).items()}
    return Profile.load(run), models, Policy.from_json(run / "policy.json")
