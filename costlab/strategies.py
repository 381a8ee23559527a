"""Hypothesis strategies for model inputs, in Hypothesis's own style.

"What" comes first and positionally, every knob is keyword-only, and bad arguments raise
`hypothesis.errors.InvalidArgument` naming them. Use them directly in your own tests:

Example:
    >>> from hypothesis import given
    >>> from costlab import InputSpace, strategies, zoo
    >>> space = InputSpace.from_model(zoo.build("attention")).with_bounds(seq_len=(8, 64))
    >>> @given(strategies.from_input_space(space))
    ... def test_model_accepts(inputs):
    ...     assert inputs["tokens"].shape[1] <= 64

Hypothesis shrinks toward small inputs and is built for small arrays; cost curves need the
explicit size sweep in `costlab.sweep`, and these strategies find edge and worst cases.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from .space import InputSpace


def sizes(space: InputSpace, *, max_elements: int | None = None) -> st.SearchStrategy[dict]:
    """Draw `{dimension: size}` within the space's bounds.

    Args:
        space: The input space.
        max_elements: Largest total number of elements over all inputs; draws above it
            are rejected. Defaults to `None` (no cap).
    """
    if not isinstance(space, InputSpace):
        raise InvalidArgument(f"Expected an InputSpace for `space`. Received: space={space!r}")
    if max_elements is not None and (not isinstance(max_elements, int) or max_elements < 1):
        raise InvalidArgument(f"Expected a positive integer for `max_elements`. Received: max_elements={max_elements!r}")
    strat = st.fixed_dictionaries({d.name: st.integers(d.min, d.max) for d in space.dims})
    if max_elements is not None:
        strat = strat.filter(lambda s: _elements(space, s) <= max_elements)
    return strat


def _elements(space: InputSpace, sizes: dict) -> int:
    return sum(math.prod(shape) for shape in space.shapes(sizes).values())


def _elements_strategy(spec):
    v = spec.values
    if v.kind == "int":
        lo, hi = int(v.min), int(v.max)
        return st.integers(lo, hi), st.sampled_from(sorted({lo, hi, (lo + hi) // 2}))
    return (st.floats(float(v.min), float(v.max), allow_nan=False, width=np.dtype(spec.dtype).itemsize * 8),
            st.sampled_from([float(v.min), float(v.max), 0.0]))


def from_input_space(space: InputSpace, *, max_elements: int | None = None) -> st.SearchStrategy[dict]:
    """Draw complete model inputs `{input name: array}` from an input space.

    Shapes come from `sizes(space)`; tied axes get the same size. Values stay inside each
    input's value domain; arrays are filled with one repeated value (`fill=`) so large
    shapes are cheap to draw, with a few elements drawn freely — which also produces the
    degenerate patterns (all one id, all zeros, all the maximum) that stress models.

    Args:
        space: The input space.
        max_elements: Largest total number of elements over all inputs. Defaults to `None`.
    """

    @st.composite
    def _inputs(draw):
        s = draw(sizes(space, max_elements=max_elements))
        shapes = space.shapes(s)
        out = {}
        for spec in space.inputs:
            elements, fill = _elements_strategy(spec)
            out[spec.name] = draw(hnp.arrays(np.dtype(spec.dtype), shapes[spec.name],
                                             elements=elements, fill=fill))
        return out

    sizes(space, max_elements=max_elements)  # validate arguments eagerly
    return _inputs()


def draw_examples(strategy: st.SearchStrategy, n: int, *, seed: int = 0) -> list:
    """Draw `n` examples reproducibly (seeded, no example database), outside a test."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    if not isinstance(n, int) or n < 0:
        raise InvalidArgument(f"Expected a non-negative integer for `n`. Received: n={n!r}")
    out: list = []
    if n == 0:
        return out

    @hseed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=["generate"],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def _collect(x):
        if len(out) < n:
            out.append(x)

    _collect()
    return out
