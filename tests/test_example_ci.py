"""An example of a user's CI cost tests (see README, "Cost tests in CI"). It runs in `make test`.

A team stores a `costlab run` directory next to its model (here `data/sample_run`, made for
`zoo:attention`) and checks on every change that the model still stays within that policy,
that the guard still refuses what the policy refuses, and, with `--costlab-baseline DIR`,
that the model did not get more expensive.
"""

import pytest

from costlab import Policy, testing, zoo
from costlab.adapters import adapt

POLICY = "data/sample_run/policy.json"


@pytest.fixture(scope="module")
def model():
    return zoo.build("attention")


@pytest.mark.costlab
def test_model_stays_within_its_policy(model):
    # tolerance 1.5: a shared CI runner can be half as fast again as the machine that
    # measured the policy; a real regression is larger than that
    seen = testing.assert_within_policy(model, POLICY, examples=10, tolerance=1.5)
    assert seen["probes"] >= 11


@pytest.mark.costlab
def test_guard_refuses_what_the_policy_refuses():
    assert testing.assert_rejected_outside(POLICY) >= 5


@pytest.mark.costlab
def test_model_is_no_more_expensive_than_the_baseline(model, costlab_baseline, costlab_tolerance,
                                                     costlab_time_tolerance):
    # runs with `pytest --costlab-baseline data/sample_run`; skipped without it
    assert adapt(model).sha256() == Policy.from_json(costlab_baseline / "policy.json").data["model"]["sha256"]
    testing.assert_no_regression(model, costlab_baseline, tolerance=costlab_tolerance,
                                 time_tolerance=costlab_time_tolerance)
