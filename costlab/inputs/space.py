"""The input space: every free axis of every model input as a named, bounded dimension.

Axes that share a dimension name are tied: they always take the same size (the batch
axis of every input, or token ids and their mask). Bounds are the range costlab
explores; value domains say which values an input may hold.

Example:
    >>> from costlab import InputSpace, zoo
    >>> space = InputSpace.from_model(zoo.build("attention"))
    >>> [d.name for d in space.dims]
    ['batch', 'seq_len']
    >>> space = space.with_bounds(seq_len=(8, 256))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from costlab.errors import InvalidSpace
from costlab.inputs.text import TEXT_PATTERNS, Text, is_text
from costlab.inputs.text import cut as cut_text
from costlab.inputs.text import sizes as text_sizes
from costlab.inputs.text import strings as text_strings

#: Default exploration range per dimension name; any other name gets `_FALLBACK`.
DEFAULT_BOUNDS = {"batch": (1, 64), "seq_len": (8, 1024), "height": (16, 256),
                  "width": (16, 256), "depth": (4, 64)}
_FALLBACK = (1, 256)
#: Default ranges of a string input's words and bytes per string (`costlab.inputs.text`): every
#: pair in the box is a real string (bytes >= 2 · words - 1).
TEXT_BOUNDS = {"words": (1, 128), "bytes": (256, 4096)}
#: Default value domain of an integer input that feeds no Embedding.
DEFAULT_INT_DOMAIN = (0, 1023)
DEFAULT_FLOAT_DOMAIN = (-1.0, 1.0)
#: Value patterns `InputSpace.pattern_inputs` can fill an input with, at any size.
VALUE_PATTERNS = ("random", "min", "max", "repeat", "alternate")

_AXIS_NAMES = {2: ["seq_len"], 3: ["seq_len", None], 4: ["height", "width", None],
               5: ["depth", "height", "width", None]}


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass(frozen=True, slots=True)
class Dimension:
    """A named free axis and the range of sizes to explore, inclusive; with `multiple_of`
    > 1 only its multiples are valid (a model that reshapes the axis into groups)."""

    name: str
    min: int
    max: int
    multiple_of: int = 1

    def snap(self, n: int) -> int:
        """`n` moved to a valid size in range: the largest multiple of `multiple_of` not
        over `n`, at least the smallest one in range."""
        n = int(min(max(n, self.min), self.max))
        m = int(self.multiple_of)
        if m <= 1:
            return n
        first = -(-int(self.min) // m) * m
        return max(first, n // m * m)

    def to_dict(self) -> dict:
        out = {"name": self.name, "min": int(self.min), "max": int(self.max)}
        if self.multiple_of > 1:
            out["multiple_of"] = int(self.multiple_of)
        return out


@dataclass(frozen=True, slots=True)
class ValueDomain:
    """Which values an input may hold: `kind` is `"int"` or `"float"`, bounds inclusive."""

    kind: str
    min: float
    max: float

    def to_dict(self) -> dict:
        if self.kind == "text":
            return {"kind": "text", "min": 0, "max": 0}
        cast = int if self.kind == "int" else float
        return {"kind": self.kind, "min": cast(self.min), "max": cast(self.max)}


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One model input: its dtype, its shape (dimension names or fixed sizes), its values."""

    name: str
    dtype: str
    shape: tuple
    values: ValueDomain
    text: Text | None = None  # a string input: its words and bytes dimensions (`costlab.inputs.text`)

    def to_dict(self) -> dict:
        out = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "values": self.values.to_dict()}
        if self.text is not None:
            out["text"] = self.text.to_dict()
        return out


@dataclass(frozen=True, slots=True)
class InputSpace:
    """All inputs of a model and the dimensions their free axes are named by.

    Build one with `InputSpace.from_model(model)` and adjust it with `with_bounds`;
    construct directly for a plain callable. Validation happens on construction and
    raises `InvalidSpace` naming the axis and the values.
    """

    inputs: tuple[InputSpec, ...]
    dims: tuple[Dimension, ...] = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "dims", tuple(self.dims))
        self._validate()

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_model(cls, model, *, bounds: dict | None = None) -> InputSpace:
        """Name every free axis of every input of `model`.

        The first axis of every input is `batch` (shared by all inputs). Other free axes
        are named by the input's rank: `seq_len` for (batch, seq_len[, features]);
        `height`, `width` for images; `depth`, `height`, `width` for volumes; anything
        else `<input>_axis<i>`. Inputs of equal rank share names, so their axes are tied
        (token ids and their mask). Integer inputs feeding an Embedding hold ids below its
        `input_dim`; an input whose name contains `mask` holds 0 or 1. Override any of it
        with `with_bounds`, or write the space to JSON and edit it (`--space FILE`).

        Args:
            model: A Keras model or an adapter.
            bounds: `{dimension: (min, max)}` overriding `DEFAULT_BOUNDS` and the ranges the
                adapter declares (`default_bounds`, e.g. `costlab.zoo.bounds`). Defaults to `None`.

        Returns:
            The input space.
        """
        from costlab.adapters import adapt

        adapter = adapt(model)
        if isinstance(getattr(adapter, "space", None), InputSpace):  # a callable's explicit space
            return adapter.space.with_bounds(**(bounds or {}))
        sigs = adapter.signature()
        inputs, seen = [], {}
        for sig in sigs:
            rank = len(sig.shape)
            names = _AXIS_NAMES.get(rank, [None] * (rank - 1))
            shape = []
            for i, size in enumerate(sig.shape):
                if i == 0:
                    shape.append("batch")
                elif size is None:
                    name = names[i - 1] if i - 1 < len(names) and names[i - 1] else f"{sig.name}_axis{i}"
                    shape.append(name)
                else:
                    shape.append(int(size))
            for s in shape:
                if isinstance(s, str):
                    seen.setdefault(s, DEFAULT_BOUNDS.get(s, _FALLBACK))
            if is_text(sig.dtype) and sig.text is not None:  # words and bytes per string
                t = Text(f"{sig.name}_words", f"{sig.name}_bytes", tuple(sig.text.get("vocabulary") or ()),
                         sig.text.get("split") or "whitespace", sig.text.get("standardize"))
                seen.setdefault(t.words, TEXT_BOUNDS["words"])
                seen.setdefault(t.bytes, TEXT_BOUNDS["bytes"])
                inputs.append(InputSpec(sig.name, "string", tuple(shape), ValueDomain("text", 0, 0), t))
                continue
            try:
                dtype = np.dtype(sig.dtype)
            except TypeError:
                dtype = None
            if dtype is None or not (np.issubdtype(dtype, np.number) or dtype.kind == "b"):
                raise InvalidSpace(
                    f"Input {sig.name!r} has dtype {sig.dtype!r}, which costlab cannot generate values for "
                    "(it draws integer, float and bool tensors, and strings that feed a TextVectorization "
                    f"layer). Received: {sig.name}: dtype={sig.dtype!r}, shape={tuple(sig.shape)}. Profile the "
                    "model behind the non-tensor step instead, or give an explicit space (--space FILE) for a "
                    "wrapper that takes tensors")
            is_int = np.issubdtype(dtype, np.integer) or dtype.kind == "b"
            if sig.values is None and "mask" in sig.name.lower():
                lo, hi = (0, 1)  # attention / padding masks hold 0 or 1
            else:
                lo, hi = sig.values or (DEFAULT_INT_DOMAIN if is_int else DEFAULT_FLOAT_DOMAIN)
            inputs.append(InputSpec(sig.name, sig.dtype, tuple(shape),
                                    ValueDomain("int" if is_int else "float", lo, hi)))
        dims = tuple(Dimension(n, *b) for n, b in seen.items())
        space = cls(tuple(inputs), dims)
        declared = getattr(adapter, "default_bounds", None) or {}  # e.g. a zoo model's own ranges
        return space.with_bounds(**{**declared, **(bounds or {})})

    def with_bounds(self, **bounds) -> InputSpace:
        """A copy with some dimensions' `(min, max)` replaced.

        Raises:
            InvalidSpace: A name is not a dimension, or the bounds are invalid.
        """
        known = {d.name for d in self.dims}
        for name in bounds:
            if name not in known:
                raise InvalidSpace(f"Unknown dimension {name!r}. Expected one of: "
                                   f"{', '.join(sorted(known))}. Received: {name}={bounds[name]!r}")
        dims = []
        for d in self.dims:
            if d.name in bounds:
                b = bounds[d.name]
                if not isinstance(b, (tuple, list)) or len(b) != 2:
                    raise InvalidSpace(f"Expected (min, max) for dimension `{d.name}`. Received: {b!r}")
                d = replace(d, min=b[0], max=b[1])
            dims.append(d)
        return InputSpace(self.inputs, tuple(dims))

    def with_multiples(self, **multiples) -> InputSpace:
        """A copy in which dimension `d` takes only multiples of `multiples[d]` (the
        divisor rule a validity search found, `costlab.profiling.validity`).

        Raises:
            InvalidSpace: A name is not a dimension, or the range holds no multiple.
        """
        known = {d.name for d in self.dims}
        for name, m in multiples.items():
            if name not in known:
                raise InvalidSpace(f"Unknown dimension {name!r}. Expected one of: "
                                   f"{', '.join(sorted(known))}. Received: {name}={m!r}")
        return InputSpace(self.inputs, tuple(replace(d, multiple_of=int(multiples[d.name])) if d.name in multiples
                                             else d for d in self.dims))

    def snap(self, sizes: dict) -> dict:
        """`sizes` with each dimension moved to a valid size of the space (`Dimension.snap`):
        a no-op for dimensions without a divisor rule that are in range."""
        dims = {d.name: d for d in self.dims}
        return {k: (dims[k].snap(v) if k in dims and dims[k].multiple_of > 1 else v) for k, v in sizes.items()}

    def with_values(self, **domains) -> InputSpace:
        """A copy with some inputs' value domains replaced: `{input: (min, max)}`.

        Example: `space.with_values(tokens=(0, 31999))` for a tokenizer's vocabulary.

        Raises:
            InvalidSpace: A name is not an input, or the domain is invalid for its dtype.
        """
        known = {i.name for i in self.inputs}
        inputs = []
        for name in domains:
            if name not in known:
                raise InvalidSpace(f"Unknown input {name!r}. Expected one of: {', '.join(sorted(known))}. "
                                   f"Received: {name}={domains[name]!r}")
        for i in self.inputs:
            if i.name in domains:
                d = domains[i.name]
                if not isinstance(d, (tuple, list)) or len(d) != 2:
                    raise InvalidSpace(f"Expected (min, max) for the values of input `{i.name}`. Received: {d!r}")
                i = replace(i, values=ValueDomain(i.values.kind, d[0], d[1]))
            inputs.append(i)
        return InputSpace(tuple(inputs), self.dims)

    # --- validation ---------------------------------------------------------------------
    def _validate(self):
        if not self.inputs:
            raise InvalidSpace("An input space needs at least one input. Received: inputs=()")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise InvalidSpace(f"Input names must be unique. Received: {names}")
        dim_names = [d.name for d in self.dims]
        if len(set(dim_names)) != len(dim_names):
            raise InvalidSpace(f"Dimension names must be unique. Received: {dim_names}")
        for d in self.dims:
            if not (_is_int(d.min) and _is_int(d.max)):
                raise InvalidSpace(f"Dimension `{d.name}` needs integer bounds. Received: min={d.min!r}, max={d.max!r}")
            if d.min < 1:
                raise InvalidSpace(f"Dimension `{d.name}` needs min >= 1. Received: min={d.min}")
            if d.min > d.max:
                raise InvalidSpace(f"Dimension `{d.name}`: min={d.min} is larger than max={d.max}")
            if not _is_int(d.multiple_of) or d.multiple_of < 1:
                raise InvalidSpace(f"Dimension `{d.name}` needs an integer multiple_of >= 1. "
                                   f"Received: {d.multiple_of!r}")
            if d.multiple_of > 1 and d.max // d.multiple_of * d.multiple_of < d.min:
                raise InvalidSpace(f"Dimension `{d.name}`: no multiple of {d.multiple_of} lies in "
                                   f"[{d.min}, {d.max}]")
        used = set()
        for inp in self.inputs:
            if not inp.shape:
                raise InvalidSpace(f"Input `{inp.name}` has an empty shape; costlab needs at least a batch axis")
            if inp.text is not None:
                for s in (inp.text.words, inp.text.bytes):
                    if s not in dim_names:
                        raise InvalidSpace(f"String input `{inp.name}` is sized by dimension {s!r}, which is not "
                                           f"in the space's dimensions {dim_names}")
                    used.add(s)
            for i, s in enumerate(inp.shape):
                if isinstance(s, str):
                    if s not in dim_names:
                        raise InvalidSpace(f"Input `{inp.name}` axis {i} names dimension {s!r}, "
                                           f"which is not in the space's dimensions {dim_names}")
                    used.add(s)
                elif not _is_int(s) or s < 0:
                    raise InvalidSpace(f"Input `{inp.name}` axis {i} must be a dimension name or a "
                                       f"size >= 0. Received: {s!r}")
            if inp.text is not None or is_text(inp.dtype):
                if inp.text is None or inp.values.kind != "text":
                    raise InvalidSpace(f"String input `{inp.name}` needs `text` (its words and bytes dimensions) and "
                                       f"values of kind 'text'. Received: values={inp.values.to_dict()!r}, "
                                       f"text={inp.text!r}")
                continue
            try:
                dt = np.dtype(inp.dtype)
            except TypeError:
                raise InvalidSpace(f"Input `{inp.name}` has an unknown dtype. Received: {inp.dtype!r}") from None
            v = inp.values
            if v.kind not in ("int", "float"):
                raise InvalidSpace(f"Input `{inp.name}` value kind must be 'int' or 'float'. Received: {v.kind!r}")
            if not (v.min <= v.max):
                raise InvalidSpace(f"Input `{inp.name}` values: min={v.min} is larger than max={v.max}")
            if np.issubdtype(dt, np.integer):
                info = np.iinfo(dt)
                if v.min < info.min or v.max > info.max:
                    raise InvalidSpace(f"Input `{inp.name}` values [{v.min}, {v.max}] do not fit dtype {inp.dtype}")
        unused = set(dim_names) - used
        if unused:
            raise InvalidSpace(f"Dimensions not used by any input: {sorted(unused)}")

    # --- use ----------------------------------------------------------------------------
    @property
    def dim_names(self) -> list[str]:
        return [d.name for d in self.dims]

    def dim(self, name: str) -> Dimension:
        for d in self.dims:
            if d.name == name:
                return d
        raise InvalidSpace(f"Unknown dimension {name!r}. Expected one of: {', '.join(self.dim_names)}")

    def shapes(self, sizes: dict) -> dict[str, tuple[int, ...]]:
        """The concrete shape of every input for `{dimension: size}`."""
        missing = [n for n in self.dim_names if n not in sizes]
        if missing:
            raise InvalidSpace(f"Sizes for dimensions {missing} are missing. Received: {sizes!r}")
        return {i.name: tuple(int(sizes[s]) if isinstance(s, str) else int(s) for s in i.shape)
                for i in self.inputs}

    def sizes_of(self, inputs: dict) -> dict[str, int]:
        """`{dimension: size}` read off concrete inputs (the inverse of `shapes`)."""
        sizes = {}
        for spec in self.inputs:
            for axis, name in enumerate(spec.shape):
                if isinstance(name, str):
                    sizes[name] = int(np.shape(inputs[spec.name])[axis])
            if spec.text is not None:
                sizes[spec.text.words], sizes[spec.text.bytes] = text_sizes(spec.text, inputs[spec.name])
        return sizes

    def cut(self, inputs: dict, sizes: dict) -> dict[str, np.ndarray]:
        """Inputs sliced down to smaller `sizes`, keeping their values (e.g. a drawn
        input moved inside a policy's joint budget)."""
        shapes = self.shapes(sizes)
        out = {k: np.ascontiguousarray(v[tuple(slice(0, n) for n in shapes[k])]) for k, v in inputs.items()}
        for spec in self.inputs:
            if spec.text is not None:
                out[spec.name] = cut_text(spec.text, out[spec.name], sizes[spec.text.words], sizes[spec.text.bytes])
        return out

    def random_inputs(self, sizes: dict, *, seed: int = 0) -> dict[str, np.ndarray]:
        """Inputs of the given sizes with values drawn uniformly from each domain."""
        def uniform(inp, shape, rng):
            v = inp.values
            if v.kind == "int":
                return rng.integers(int(v.min), int(v.max) + 1, size=shape)
            return rng.uniform(v.min, v.max, size=shape)

        return self._fill(sizes, seed, "random", uniform)

    def _fill(self, sizes: dict, seed: int, pattern: str, numeric) -> dict[str, np.ndarray]:
        """Each input at `sizes`: strings drawn with `pattern`, numbers from
        `numeric(inp, shape, rng)`, one generator seeded `seed` for all, in input order."""
        rng = np.random.default_rng(seed)
        out = {}
        for inp in self.inputs:
            shape = self.shapes(sizes)[inp.name]
            if inp.text is not None:
                out[inp.name] = self._strings(inp, shape, sizes, pattern, int(rng.integers(2**31)))
            else:
                out[inp.name] = np.asarray(numeric(inp, shape, rng)).astype(inp.dtype)
        return out

    def pattern_inputs(self, sizes: dict, *, seed: int = 0, values: str = "random") -> dict[str, np.ndarray]:
        """Inputs of the given sizes whose values follow one of `VALUE_PATTERNS`, inside
        each input's domain, at any size: `random` (`random_inputs`), `min` (every
        element the domain's minimum: all zeros, id 0), `max` (the largest id or value),
        `repeat` (one value drawn from the domain, repeated), `alternate` (two drawn
        values in turn). A model whose work depends on the values (a data-dependent loop,
        an early exit) can cost many times more under one of them than under random
        values at the same shape: `costlab.profiling.values.scan` finds which, and `costlab.run`
        measures the whole size plan with it.

        Raises:
            InvalidSpace: An unknown pattern (the message lists them).
        """
        if values == "random":
            return self.random_inputs(sizes, seed=seed)
        if values not in VALUE_PATTERNS and not (values in TEXT_PATTERNS and any(i.text for i in self.inputs)):
            raise InvalidSpace(f"Unknown value pattern {values!r}; expected one of {', '.join(VALUE_PATTERNS)}")
        def patterned(inp, shape, rng):
            v = inp.values
            if values not in VALUE_PATTERNS:  # a text pattern: other inputs random
                return self.random_inputs(sizes, seed=seed)[inp.name]

            def draw():
                return int(rng.integers(int(v.min), int(v.max) + 1)) if v.kind == "int" else float(rng.uniform(v.min, v.max))

            if values == "min":
                return np.full(shape, v.min)
            if values == "max":
                return np.full(shape, v.max)
            if values == "repeat":
                return np.full(shape, draw())
            a, b = draw(), draw()  # alternate
            if a == b and v.max > v.min:
                b = v.max if a != v.max else v.min
            return np.resize(np.array([a, b]), int(np.prod(shape))).reshape(shape)

        return self._fill(sizes, seed, values, patterned)

    @staticmethod
    def _strings(inp, shape, sizes, pattern, seed) -> np.ndarray:
        rows = int(np.prod(shape)) if shape else 1
        return text_strings(inp.text, rows=rows, words=int(sizes[inp.text.words]), n_bytes=int(sizes[inp.text.bytes]),
                            pattern=pattern, seed=seed, shape=shape)

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"inputs": [i.to_dict() for i in self.inputs], "dims": [d.to_dict() for d in self.dims]}

    @classmethod
    def from_dict(cls, data: dict) -> InputSpace:
        try:
            inputs = tuple(InputSpec(i["name"], i["dtype"], tuple(i["shape"]), ValueDomain(**i["values"]),
                                     Text.from_dict(i["text"]) if i.get("text") else None)
                           for i in data["inputs"])
            dims = tuple(Dimension(d["name"], d["min"], d["max"], d.get("multiple_of", 1)) for d in data["dims"])
        except (KeyError, TypeError) as exc:
            raise InvalidSpace(f"Malformed input space: missing or wrong field {exc}. Received: {data!r}"[:500]) from None
        return cls(inputs, dims)

    def to_json(self, path=None, **kw) -> str:
        text = json.dumps(self.to_dict(), indent=2, **kw)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_file(cls, path) -> InputSpace:
        """Read a space from a `.json`, `.yaml` or `.yml` file (the layout of `to_dict`).

        Raises:
            InvalidSpace: Missing file, unknown suffix, or malformed content.
        """
        data = _read_mapping(path, what="input space", error=InvalidSpace)
        return cls.from_dict(data)

    def check_model(self, model) -> InputSpace:
        """Check that this space can feed `model`: same input names, ranks, fixed sizes.

        Returns:
            `self`, so that `InputSpace.from_file(f).check_model(m)` reads naturally.

        Raises:
            InvalidSpace: Naming the input or axis that does not match, and both values.
        """
        from costlab.adapters import adapt

        sigs = {s.name: s for s in adapt(model).signature()}
        mine = {i.name: i for i in self.inputs}
        if set(sigs) != set(mine):
            raise InvalidSpace(f"The space's inputs {sorted(mine)} are not the model's inputs {sorted(sigs)}")
        for name, sig in sigs.items():
            spec = mine[name]
            if len(spec.shape) != len(sig.shape):
                raise InvalidSpace(f"Input `{name}`: the space has rank {len(spec.shape)} {list(spec.shape)}, "
                                   f"the model rank {len(sig.shape)} {list(sig.shape)}")
            for axis, (want, have) in enumerate(zip(sig.shape, spec.shape, strict=True)):
                if want is not None and axis > 0 and have != want:
                    raise InvalidSpace(f"Input `{name}` axis {axis}: the model fixes it at {want}, "
                                       f"the space has {have!r}")
        return self

    @classmethod
    def from_json(cls, path_or_text) -> InputSpace:
        p = Path(str(path_or_text))
        text = p.read_text() if not str(path_or_text).lstrip().startswith("{") and p.is_file() else str(path_or_text)
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise InvalidSpace(f"Input space is not valid JSON ({exc.msg} at line {exc.lineno}): {path_or_text}") from None


def _read_mapping(path, *, what: str, error=None) -> dict:
    """A JSON or YAML file holding one mapping; `error` (default `PolicyError`) names the
    file and what was wrong."""
    import yaml

    from costlab.errors import PolicyError

    error = error or PolicyError
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise error(f"Expected a .json, .yaml or .yml {what} file. Received: {path}")
    if not p.is_file():
        raise error(f"{what.capitalize()} file not found: {path}")
    try:
        data = json.loads(p.read_text()) if suffix == ".json" else yaml.safe_load(p.read_text())
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        kind = "JSON" if suffix == ".json" else "YAML"
        raise error(f"{what.capitalize()} file is not valid {kind} ({exc}): {path}") from None
    if not isinstance(data, dict):
        raise error(f"Expected a mapping in the {what} file {path}. Received: {type(data).__name__}")
    return data
