"""The costlab pytest plugin (entry point `pytest11`, installed with the package).

- `--costlab-baseline DIR`: a stored `costlab run` directory; the `costlab_baseline`
  fixture returns its path (tests using it are skipped without the option).
- `--costlab-tolerance X`: allowed relative growth of the memory cost at the limits in
  `assert_no_regression` (default 0.25); the `costlab_tolerance` fixture returns it.
- `--costlab-time-tolerance X`: the same for wall time (default 0.5: a shared runner's
  speed drifts more); the `costlab_time_tolerance` fixture returns it.
- Hypothesis profiles `costlab-ci` (derandomised, 20 examples, no deadline, no example
  database) and `costlab-dev` (50 examples, no deadline): `pytest --hypothesis-profile=costlab-ci`.

See `costlab.testing` for the assertions.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser):
    group = parser.getgroup("costlab", "cost tests against a stored costlab run")
    group.addoption("--costlab-baseline", metavar="DIR", default=None,
                    help="a `costlab run` directory to hold models to (assert_no_regression)")
    group.addoption("--costlab-tolerance", type=float, default=0.25,
                    help="allowed relative growth of the memory at the baseline's limits (default 0.25)")
    group.addoption("--costlab-time-tolerance", type=float, default=0.5,
                    help="allowed relative growth of the wall time at the baseline's limits (default 0.5)")


def pytest_configure(config):
    from costlab.testing import register_profiles

    register_profiles()
    config.addinivalue_line("markers", "costlab: a cost test (costlab.testing)")


@pytest.fixture
def costlab_baseline(request) -> Path:
    """The `--costlab-baseline` directory; the test is skipped when none was given."""
    value = request.config.getoption("--costlab-baseline")
    if not value:
        pytest.skip("no --costlab-baseline DIR given")
    path = Path(value)
    if not (path / "cost_models.json").is_file():
        raise pytest.UsageError(f"--costlab-baseline {value}: not a costlab run directory (no cost_models.json)")
    return path


@pytest.fixture
def costlab_tolerance(request) -> float:
    return float(request.config.getoption("--costlab-tolerance"))


@pytest.fixture
def costlab_time_tolerance(request) -> float:
    return float(request.config.getoption("--costlab-time-tolerance"))
