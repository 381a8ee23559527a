"""costlab.testing and the pytest plugin, run through pytester: passing and failing cases."""

import pytest

import costlab
from costlab import Policy, testing
from costlab.adapters import CallableAdapter
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain

pytest_plugins = ["pytester"]

SPACE = InputSpace((InputSpec("x", "float32", ("n",), ValueDomain("float", 0.0, 1.0)),),
                   (Dimension("n", 20_000, 2_000_000),))

MODELS = '''
import numpy as np


# np.sin is compute-bound (a few ns per element), so its time is linear in n over the whole
# range; a memory-bound cumsum crossed the caches between 20 k and 2 M elements here and read
# as n^1.5 in one run and n² in the next.
def fast(inputs):
    return float(np.sin(inputs["x"]).sum())


def slowed(inputs):
    out = None
    for _ in range(6):  # the same class, six times the work: a regression
        out = float(np.sin(inputs["x"]).sum())
    return out
'''


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    import importlib.util
    import sys

    d = tmp_path_factory.mktemp("models")
    (d / "cost_models_under_test.py").write_text(MODELS)
    spec = importlib.util.spec_from_file_location("cost_models_under_test", d / "cost_models_under_test.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["cost_models_under_test"] = mod
    spec.loader.exec_module(mod)
    out = tmp_path_factory.mktemp("baseline")
    costlab.run(CallableAdapter(mod.fast, SPACE), {"latency_ms": 1e4, "memory_mib": 1e4}, out, points=8,
                examples=0, rounds=1, churn=0, boundary=False, min_repeats=5, probe_time_s=0.1, progress=False,
                isolation="inprocess")
    return out, d


def _suite(pytester, baseline, name):
    out, models = baseline
    pytester.syspathinsert(models)
    pytester.makepyfile(f'''
from costlab import testing
from costlab.adapters import CallableAdapter
from costlab.profiling.session import Profile
import cost_models_under_test as m


def test_no_regression(costlab_baseline, costlab_tolerance, costlab_time_tolerance):
    space = Profile.load(costlab_baseline).space
    testing.assert_no_regression(CallableAdapter(m.{name}, space), costlab_baseline, tolerance=costlab_tolerance,
                                 time_tolerance=costlab_time_tolerance, points=7, min_repeats=5,
                                 probe_time_s=0.1)
''')
    return pytester.runpytest("--costlab-baseline", str(out), "--costlab-tolerance", "1.0",
                              "--costlab-time-tolerance", "1.0", "-p", "no:nbmake")


def test_plugin_passes_an_unchanged_model(pytester, baseline):
    _suite(pytester, baseline, "fast").assert_outcomes(passed=1)


def test_plugin_fails_a_slowed_model_with_a_readable_diff(pytester, baseline):
    result = _suite(pytester, baseline, "slowed")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cost regression against*",
                                 "*wall_s_median: the cost at the baseline's limits grew*tolerance 2×*",
                                 "*cost*dimension/figure*baseline*current*",
                                 "*at the limits*<- grew*"])


def test_baseline_fixture_skips_without_the_option(pytester):
    pytester.makepyfile("def test_needs_it(costlab_baseline):\n    pass\n")
    pytester.runpytest("-p", "no:nbmake").assert_outcomes(skipped=1)


def test_plugin_registers_ci_profiles():
    from hypothesis import settings

    testing.register_profiles()
    ci = settings.get_profile("costlab-ci")
    assert ci.derandomize and ci.deadline is None and ci.max_examples == 20 and ci.database is None


def test_compare_flags_a_class_that_rose():
    old = {"wall_s_median": {"exponents": {"n": {"power": 1, "log": 0}}, "at_limits": 1.0}}
    new = {"wall_s_median": {"exponents": {"n": {"power": 2, "log": 0}}, "at_limits": 1.1}}
    problems, diff = testing.compare(old, new)
    assert problems == ["wall_s_median: the growth class in n rose from n to n²"]
    assert "<- class rose" in diff and "<- grew" not in diff
    new["wall_s_median"]["consistent"] = {"n": [(1, 0), (2, 0)]}  # the old class still fits the new data
    assert testing.compare(old, new)[0] == []


def test_within_policy_fails_with_the_input_and_its_cost(tmp_path):
    fn = CallableAdapter(lambda inputs: __import__("time").sleep(0.004), SPACE.with_bounds(n=(20_000, 40_000)))
    run = costlab.run(fn, {"latency_ms": 1e3, "memory_mib": 1e3}, tmp_path, points=5, examples=0, rounds=1,
                      churn=0, boundary=False, min_repeats=3, probe_time_s=0.05, progress=False, isolation="inprocess")
    assert testing.assert_within_policy(fn, run.policy, examples=3)["probes"] == 4
    tight = Policy({**run.policy.data, "budgets": {**run.policy.data["budgets"], "latency_ms": 1.0}})
    with pytest.raises(AssertionError, match=r"the policy's most expensive admitted input x\[\d+\] is inside the policy but: "
                                             r"latency [\d.]+ ms > 1 ms \(budget 1 × 1\)"):
        testing.assert_within_policy(fn, tight, examples=3)


def test_rejected_outside_catches_a_guard_that_admits_too_much():
    policy = Policy.from_json("data/sample_run/policy.json")

    class Lenient:
        def check(self, inputs):
            return inputs

    first = next(iter(policy.limits))  # the first dimension checked
    lim = policy.limits[first]["max"]
    with pytest.raises(AssertionError, match=f"the guard admitted {first}={lim + 1}, one past its limit {lim}"):
        testing.assert_rejected_outside(policy, guard=Lenient())
