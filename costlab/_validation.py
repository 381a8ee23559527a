"""One way to check an argument: declared constraints, one error message.

In the manner of scikit-learn's `_parameter_constraints`: a parameter's constraints are
data (`Interval`, `Options`, a type, or `None` for "may be None"), and `check` raises a
`CostlabError` naming the parameter, what it had to be, and what it got.

Example:
    >>> check("points", 7, Interval(int, 2, None))
    7
    >>> check("isolation", "thread", Options("subprocess", "inprocess"))
    Traceback (most recent call last):
    costlab.errors.CostlabError: Expected `isolation` to be one of 'subprocess', 'inprocess'. Received: 'thread'
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from costlab.errors import CostlabError


@dataclass(frozen=True)
class Interval:
    """A number of `kind` (`int` or `float`; an int is a float too) in `[lo, hi]`, or
    `(lo, hi]` etc. by `closed`; `None` leaves a side open. Booleans are not numbers."""

    kind: type
    lo: float | None
    hi: float | None
    closed: str = "both"  # "both", "left", "right", "neither"

    def holds(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, (int, float) if self.kind is float else int):
            return False
        if isinstance(v, float) and not math.isfinite(v):
            return False
        lo_ok = self.lo is None or (v >= self.lo if self.closed in ("both", "left") else v > self.lo)
        hi_ok = self.hi is None or (v <= self.hi if self.closed in ("both", "right") else v < self.hi)
        return lo_ok and hi_ok

    def __str__(self) -> str:
        what = "an integer" if self.kind is int else "a number"
        if self.lo is None and self.hi is None:
            return what
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{what} in {left}{lo}, {hi}{right}"


class Options:
    """One of the given values."""

    def __init__(self, *values):
        self.values = values

    def holds(self, v) -> bool:
        return any(v == x and type(v) is type(x) for x in self.values)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


def _holds(c, v) -> bool:
    if c is None:
        return v is None
    if isinstance(c, type):
        return isinstance(v, c) and not (c is not bool and isinstance(v, bool))
    return c.holds(v)


def _describe(c) -> str:
    if c is None:
        return "None"
    if isinstance(c, type):
        return {bool: "True or False", str: "a string"}.get(c, f"a {c.__name__}")
    return str(c)


def check(name: str, value, *constraints):
    """`value` when it meets one of `constraints`, else a `CostlabError` naming `name`."""
    if any(_holds(c, value) for c in constraints):
        return value
    expected = " or ".join(_describe(c) for c in constraints)
    raise CostlabError(f"Expected `{name}` to be {expected}. Received: {value!r}")


def check_all(values: dict, constraints: dict, *, where: str = "") -> dict:
    """Check every entry of `values` against `constraints[name]`; an unknown name is an
    error listing the known ones (`where` prefixes the names, e.g. `"settings."`)."""
    unknown = sorted(set(values) - set(constraints))
    if unknown:
        import difflib

        hints = [f"{where}{u!s}" + (f" (did you mean {where}{close[0]}?)" if (close := difflib.get_close_matches(
            u, constraints, n=1)) else "") for u in unknown]
        raise CostlabError(f"Unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(hints)}. "
                           f"Expected some of: {', '.join(sorted(constraints))}")
    for k, v in values.items():
        check(where + k, v, *constraints[k])
    return values
