"""costlab: what each input costs your model, and the limits that keep it alive.

The pipeline, one stage per module, data flowing one way:

    zoo / adapters  →  space  →  strategies, sweep  →  measure, isolation, profile
    (worst: value search, churn: shape churn)  →  curves  →  policy  →  verify, guard
    (plots, run, cli on top)
"""

from __future__ import annotations

import os as _os

_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow's CPU allocator statistics (the tensor peak, `costlab.memory.TFAllocatorPeak`)
# exist only with oneDNN on. TF turns it on by default on some x86 CPUs and not on others:
# on an AMD EPYC host (AVX2, no AVX-512) it is off, every tensor peak then fell back to the
# process high-water mark, and the memory bounds came out far too high. So it is on unless
# the user set it (before TensorFlow is imported; the workers inherit it). A deployment whose
# times should match the measured ones runs with the same setting (`env` in profile.csv).
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from . import churn, strategies, worst, zoo  # noqa: E402
from .curves import CostModel, fit, fit_profile  # noqa: E402
from .errors import (  # noqa: E402
    CostlabError,
    CostlabWarning,
    FitError,
    InputRejected,
    InvalidSpace,
    ModelLoadError,
    NotFittedError,
    PolicyError,
)
from .guard import Guard  # noqa: E402
from .policy import Budgets, Policy, synthesize  # noqa: E402
from .profile import Profile, profile  # noqa: E402
from .run import Run, run  # noqa: E402
from .space import Dimension, InputSpace, InputSpec, ValueDomain  # noqa: E402
from .verify import VerifyReport, verify  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Budgets", "CostModel", "CostlabError", "CostlabWarning", "Dimension", "FitError", "Guard", "InputRejected",
           "InputSpace", "InputSpec", "InvalidSpace", "ModelLoadError", "NotFittedError", "Policy",
           "PolicyError", "Profile", "Run", "ValueDomain", "VerifyReport", "fit", "fit_profile",
           "profile", "run", "synthesize", "verify", "zoo", "churn", "strategies", "worst"]
