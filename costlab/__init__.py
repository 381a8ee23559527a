"""costlab: what each input costs your model, and the limits that keep it alive.

The package layout is the pipeline, one subpackage per stage, data flowing one way (the
layers contract in `.importlinter`, checked by `make lint`; docs/architecture.md):

    adapters → inputs → zoo, loading → measurement → profiling → curves → policy
    → runtime → checks → viz, testing → pipeline → cli

Importing costlab changes nothing in the environment; `costlab.cli` and the probe workers
set TensorFlow's variables (`costlab._env.TF_DEFAULTS`).

Example:
    >>> import costlab
    >>> model = costlab.zoo.build("mlp")
    >>> prof = costlab.profile(model, points=3, examples=2)  # doctest: +SKIP
"""

from __future__ import annotations

import sys as _sys

from costlab import zoo
from costlab.checks import guard
from costlab.checks.guard import Guard
from costlab.checks.verify import VerifyReport, verify
from costlab.curves import CostModel, fit, fit_profile
from costlab.errors import (
    CostlabError,
    CostlabWarning,
    ExportError,
    FitError,
    InputRejected,
    InvalidSpace,
    ModelLoadError,
    NotFittedError,
    PolicyError,
)
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain
from costlab.pipeline.run import run
from costlab.policy import Budgets, Policy, synthesize
from costlab.profiling import strategies
from costlab.profiling import values as worst
from costlab.profiling.session import Profile, profile
from costlab.profiling.table import load_failure
from costlab.rundir import Run
from costlab.runtime import churn
from costlab.viz import plots

# Import paths of earlier releases (docs/changelog.md): `import costlab.strategies`,
# `from costlab.profiling.values import scan`, `costlab.runtime.churn.churn(...)`, `costlab.checks.guard.Guard`.
for _old, _module in {"strategies": strategies, "worst": worst, "churn": churn, "guard": guard,
                      "plots": plots}.items():
    _sys.modules[f"{__name__}.{_old}"] = _module

__version__ = "0.1.0"
__all__ = ["Budgets", "CostModel", "CostlabError", "CostlabWarning", "Dimension", "ExportError", "FitError",
           "Guard", "InputRejected", "InputSpace", "InputSpec", "InvalidSpace", "ModelLoadError",
           "NotFittedError", "Policy", "PolicyError", "Profile", "Run", "ValueDomain", "VerifyReport",
           "churn", "fit", "fit_profile", "load_failure", "plots", "profile", "run", "strategies",
           "synthesize", "verify", "worst", "zoo"]
