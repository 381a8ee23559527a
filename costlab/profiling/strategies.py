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
explicit size sweep in `costlab.profiling.plan`, and these strategies find edge and worst cases.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.extra import numpy as hnp

from costlab.inputs.space import InputSpace


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
    strat = st.fixed_dictionaries({d.name: st.integers(d.min, d.max) if d.multiple_of == 1 else
                                   st.integers(-(-d.min // d.multiple_of), d.max // d.multiple_of).map(
                                       lambda k, m=d.multiple_of: k * m)
                                   for d in space.dims})
    if max_elements is not None:
        strat = strat.filter(lambda s: _elements(space, s) <= max_elements)
    return strat


def _elements(space: InputSpace, sizes: dict) -> int:
    return sum(math.prod(shape) for shape in space.shapes(sizes).values())


def _domain(spec):
    v = spec.values
    if v.kind == "int":
        return int(v.min), int(v.max)
    return float(v.min), float(v.max)


def values(spec, shape, *, extremes: bool = False) -> st.SearchStrategy[np.ndarray]:
    """Draw one input array of a fixed shape: random values or a degenerate pattern.

    Patterns, each as likely as a random array: all the minimum (all zeros / id 0), all the
    maximum (the largest id), one repeated value, and a random array that is one repeated
    value with a few elements drawn freely (`fill=`, cheap at any size). Integer inputs
    also get a two-value alternation. With `extremes`, float inputs also get NaN, ±Inf and
    the dtype's largest finite value, outside the value domain: inputs a guard should
    reject before the model sees them.

    Args:
        spec: The `InputSpec` (dtype and value domain).
        shape: The array's shape.
        extremes: Add the out-of-domain float patterns. Defaults to `False`.
    """
    dtype = np.dtype(spec.dtype)
    shape = tuple(int(n) for n in shape)
    lo, hi = _domain(spec)
    if spec.values.kind == "int":
        element = st.integers(lo, hi)
    else:
        element = st.floats(lo, hi, allow_nan=False, allow_infinity=False, width=dtype.itemsize * 8)

    def const(value):
        return np.full(shape, value, dtype=dtype)

    patterns = [st.just(const(lo)), st.just(const(hi)), element.map(const),
                hnp.arrays(dtype, shape, elements=element, fill=element)]
    if spec.values.kind == "int" and shape:
        patterns.append(st.tuples(element, element).map(
            lambda ab: np.resize(np.array(ab, dtype=dtype), math.prod(shape)).reshape(shape)))
    if extremes and spec.values.kind == "float":
        big = float(np.finfo(dtype).max)
        patterns += [st.sampled_from([np.nan, np.inf, -np.inf, big, -big]).map(const),
                     hnp.arrays(dtype, shape, elements=element,
                                fill=st.sampled_from([np.nan, np.inf, big]))]
    return st.one_of(patterns)


def padding_pairs(space: InputSpace) -> list[tuple[str, str]]:
    """`(ids, mask)` input pairs that follow the padded-sequence convention: an integer
    input whose name contains `mask` with values in {0, 1}, and another integer input of
    the same axes. In a padded row the mask is 1 over the first tokens and 0 after, and the
    ids there are the pad id (the minimum of their domain)."""
    pairs = []
    for m in space.inputs:
        if "mask" not in m.name.lower() or m.values.kind != "int" or (m.values.min, m.values.max) != (0, 1):
            continue
        for i in space.inputs:
            if i is not m and i.values.kind == "int" and i.shape == m.shape and len(i.shape) >= 2:
                pairs.append((i.name, m.name))
    return pairs


def _padded(space: InputSpace, drawn: st.SearchStrategy[dict]) -> st.SearchStrategy[dict]:
    """Half the draws of `drawn`, for spaces with `padding_pairs`, padded: each row keeps a
    drawn number of leading tokens (1 to all) and the rest is pad id with mask 0."""
    pairs = padding_pairs(space)
    if not pairs:
        return drawn
    by_name = {i.name: i for i in space.inputs}

    @st.composite
    def _pad(draw):
        out = draw(drawn)
        for ids_name, mask_name in pairs:
            ids, shape = out[ids_name].copy(), out[ids_name].shape
            rows, length = int(np.prod(shape[:1])), shape[1]
            keep = np.array([draw(st.integers(1, max(1, length))) for _ in range(rows)]) if length else np.zeros(rows, int)
            live = np.arange(length)[None, :] < keep[:, None]
            live = live.reshape((rows, length) + (1,) * (len(shape) - 2))
            ids = np.where(live, ids, np.asarray(by_name[ids_name].values.min, dtype=ids.dtype))
            out[ids_name] = ids.astype(ids.dtype)
            out[mask_name] = np.broadcast_to(live, shape).astype(out[mask_name].dtype)
        return out

    return st.one_of(drawn, _pad())


def at_sizes(space: InputSpace, sizes: dict, *, extremes: bool = False) -> st.SearchStrategy[dict]:
    """Draw complete model inputs at fixed sizes: what a worst-case value search varies.

    Args:
        space: The input space.
        sizes: `{dimension: size}`.
        extremes: See `values`. Defaults to `False`.
    """
    if not isinstance(space, InputSpace):
        raise InvalidArgument(f"Expected an InputSpace for `space`. Received: space={space!r}")
    try:
        shapes = space.shapes(sizes)
    except Exception as exc:
        raise InvalidArgument(f"Invalid `sizes` for this space: {exc}") from None
    for d in space.dims:
        if not d.min <= sizes[d.name] <= d.max:
            raise InvalidArgument(f"`sizes` has {d.name}={sizes[d.name]}, outside the space's "
                                  f"[{d.min}, {d.max}]")
        if sizes[d.name] % d.multiple_of:
            raise InvalidArgument(f"`sizes` has {d.name}={sizes[d.name]}, not a multiple of {d.multiple_of}")
    return _padded(space, st.fixed_dictionaries({spec.name: _of(spec, shapes[spec.name], sizes, extremes)
                                                 for spec in space.inputs}))


def text(spec, shape, sizes: dict) -> st.SearchStrategy[np.ndarray]:
    """Draw one string input of a fixed shape with the words and bytes per string of `sizes`
    (`costlab.inputs.text.strings`): words from the model's vocabulary, one word repeated, the
    longest words, two in turn, or unknown words, each as likely."""
    from costlab.inputs.text import TEXT_PATTERNS, strings

    rows = int(np.prod(shape)) if shape else 1
    return st.builds(lambda p, seed: strings(spec.text, rows=rows, words=int(sizes[spec.text.words]),
                                             n_bytes=int(sizes[spec.text.bytes]), pattern=p, seed=seed,
                                             shape=tuple(shape)),
                     st.sampled_from(TEXT_PATTERNS), st.integers(0, 2**31 - 1))


def _of(spec, shape, sizes, extremes):
    return text(spec, shape, sizes) if spec.text is not None else values(spec, shape, extremes=extremes)


def from_input_space(space: InputSpace, *, max_elements: int | None = None,
                     extremes: bool = False) -> st.SearchStrategy[dict]:
    """Draw complete model inputs `{input name: array}` from an input space.

    Shapes come from `sizes(space)`; tied axes get the same size. Values come from
    `values`: random arrays (filled with one repeated value plus a few free elements, so
    large shapes are cheap) and the degenerate patterns that stress models (all zeros, all
    the maximum id, one repeated token, alternation), inside each input's value domain
    unless `extremes`. Token ids with a 0/1 mask of the same axes (`padding_pairs`) are
    also drawn padded: real tokens first, then the pad id under mask 0.

    Args:
        space: The input space.
        max_elements: Largest total number of elements over all inputs. Defaults to `None`.
        extremes: Also draw NaN, ±Inf and huge floats. Defaults to `False`.
    """

    @st.composite
    def _inputs(draw):
        s = draw(sizes(space, max_elements=max_elements))
        shapes = space.shapes(s)
        return {spec.name: draw(_of(spec, shapes[spec.name], s, extremes)) for spec in space.inputs}

    sizes(space, max_elements=max_elements)  # validate arguments eagerly
    return _padded(space, _inputs())


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
