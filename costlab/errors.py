"""The errors costlab raises on purpose.

Every error a user can cause derives from `CostlabError` and says what was wrong and
what was received, so the CLI can print it as one line and exit 2.
"""

from __future__ import annotations


class CostlabError(Exception):
    """Base class: a problem with what the user gave costlab (argument, file, model)."""


class CostlabWarning(UserWarning):
    """A measurement that ran but is less trustworthy than it should be (e.g. memory
    read from the process peak where tensor peaks were expected)."""


class InvalidSpace(CostlabError, ValueError):
    """An input space that is impossible or contradictory."""


class ModelLoadError(CostlabError):
    """A model specification that could not be turned into a model."""


class NotFittedError(CostlabError, AttributeError):
    """A cost model used before `fit` (scikit-learn's convention)."""


class FitError(CostlabError, ValueError):
    """Data a cost curve cannot be fitted on (too few points, NaN costs, ...)."""


class PolicyError(CostlabError, ValueError):
    """A malformed or wrong-version policy, or budgets no input can meet."""


class InputRejected(CostlabError, ValueError):
    """An input the guard refuses, with the reason in fields as well as in the message.

    Args:
        message: Human-readable reason.
        input: Name of the offending model input, or `None` when the request as a whole
            is wrong. Defaults to `None`.
        dimension: Name of the dimension or rule that failed. Defaults to `None`.
        limit: The limit that was exceeded. Defaults to `None`.
        received: The value received. Defaults to `None`.
        status: The HTTP status a server should answer with (413 too large,
            422 malformed, 429 distinct-shape cap reached). Defaults to `422`.
    """

    def __init__(self, message, *, input=None, dimension=None, limit=None, received=None,
                 status=422):
        super().__init__(message)
        self.input = input
        self.dimension = dimension
        self.limit = limit
        self.received = received
        self.status = status

    def to_dict(self) -> dict:
        """The reason as plain data, e.g. for a JSON response body."""
        return {"error": str(self), "input": self.input, "dimension": self.dimension,
                "limit": self.limit, "received": self.received}


class ExportError(CostlabError, ValueError):
    """A policy that cannot be exported: unknown format, or a missing or invalid field."""
