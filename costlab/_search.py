"""One bisection for every search costlab makes: the largest size within budget, the
validity boundary, the machine-speed reference, a synthesis parameter.

`bisect(feasible, good, bad, mid=...)` keeps `feasible(good)` true and `feasible(bad)`
false (neither end is evaluated) and narrows them until `mid` finds no point between them
or `steps` run out. `mid` says how to split: `linear` (real numbers), `log_int(m)` (in log
space, on multiples of `m`), `int_step(m)` (the arithmetic middle on multiples of `m`).

Example:
    >>> bisect(lambda x: x * x <= 2, 1.0, 2.0, mid=linear, steps=20)[0]  # doctest: +ELLIPSIS
    1.41421...
    >>> bisect(lambda n: n <= 37, 1, 1000, mid=log_int())[:2]
    (37, 38)
"""

from __future__ import annotations

import math


def linear(good: float, bad: float) -> float:
    return (good + bad) / 2


def log_int(m: int = 1):
    """The geometric middle, rounded to a multiple of `m` strictly between `good < bad`;
    `None` when they are adjacent multiples."""
    def mid(good: int, bad: int) -> int | None:
        if bad - good <= m:
            return None
        x = int(round(math.sqrt(good * bad))) // m * m
        return min(max(x, good + m), bad - m)
    return mid


def int_step(m: int = 1):
    """The arithmetic middle on multiples of `m`, either way round (`good` over `bad` too);
    `None` when they are within `m`."""
    def mid(good: int, bad: int) -> int | None:
        if abs(bad - good) <= m:
            return None
        return (good + bad) // 2 // m * m
    return mid


def bisect(feasible, good, bad, *, mid, steps: int | None = None) -> tuple:
    """Narrow `good` (feasible) and `bad` (not) by `mid` until it returns `None` or `steps`
    evaluations are made. Returns `(good, bad, evaluations)`."""
    n = 0
    while steps is None or n < steps:
        x = mid(good, bad)
        if x is None:
            break
        n += 1
        if feasible(x):
            good = x
        else:
            bad = x
    return good, bad, n
