"""Input-limit policies: synthesised from cost curves and budgets, stored as JSON.

A policy admits, per dimension, sizes in `[min, max]`. The box is chosen so that the
calibrated upper bound of every cost at its most expensive corner (every dimension at its
max) stays under `margin × budget`. Dimensions grow together, each by the same fraction of
its log range, until a budget binds; dimensions no cost depends on get their full range.
Limits stay inside the measured range unless `extrapolate > 1` allows more.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd

from .errors import PolicyError
from .space import Dimension, InputSpace, InputSpec, ValueDomain
from .text import Text

SCHEMA_VERSION = "1.6"
#: Versions this costlab reads (1.0 lacks the joint, request, serving and shapes sections).
# 1.1 lacks machine_speed, 1.2 joint offsets, 1.3 value_pattern, 1.4 shapes.drift, 1.5 validity
READS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6")


def schema() -> dict:
    """The policy JSON Schema shipped with costlab."""
    return json.loads(resources.files("costlab").joinpath("schemas/policy.schema.json").read_text())


@dataclass(frozen=True)
class Budgets:
    """What one request, and the serving process, may cost.

    Args:
        latency_ms: Median warm latency per request, milliseconds.
        memory_mib: Peak tensor memory per request, MiB.
        margin: Limits keep the upper bound under `margin × budget`. Defaults to `0.9`.
        latency_p99_ms: Tail latency per request (bounds the fitted `wall_s_p99`, the 99th
            percentile of a probe's warm calls). Defaults to `None` (not budgeted).
        process_memory_mib: Memory of the whole serving process (the container limit):
            bounds how many requests may be in flight at once. Defaults to `None` (then
            one request per core, and the container limit is derived).
        cores: CPU cores the server gets. Defaults to `None` (the measuring host's).
    """

    latency_ms: float
    memory_mib: float
    margin: float = 0.9
    latency_p99_ms: float | None = None
    process_memory_mib: float | None = None
    cores: int | None = None

    def __post_init__(self):
        for name in ("latency_ms", "memory_mib", "latency_p99_ms", "process_memory_mib", "cores"):
            v = getattr(self, name)
            if v is None and name not in ("latency_ms", "memory_mib"):
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v <= 0:
                raise PolicyError(f"Expected a positive number for `{name}`. Received: {name}={v!r}")
        if self.cores is not None and int(self.cores) != self.cores:
            raise PolicyError(f"Expected a whole number of `cores`. Received: cores={self.cores!r}")
        if not isinstance(self.margin, (int, float)) or not (0 < self.margin <= 1):
            raise PolicyError(f"Expected `margin` in (0, 1]. Received: margin={self.margin!r}")

    @classmethod
    def from_file(cls, path, **overrides) -> Budgets:
        """Budgets from a JSON or YAML file of this class's fields; `overrides` that are
        not `None` win (command-line flags over the file).

        Raises:
            PolicyError: Missing or unreadable file, unknown fields, bad values.
        """
        from .space import _read_mapping

        data = _read_mapping(path, what="budgets")
        if "budgets" in data and isinstance(data["budgets"], dict):  # a policy file's section
            data = data["budgets"]
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PolicyError(f"Budgets file {path}: unknown field(s) {unknown}; expected some of {sorted(known)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        missing = [k for k in ("latency_ms", "memory_mib") if k not in data]
        if missing:
            raise PolicyError(f"Budgets file {path}: missing field(s) {missing}")
        try:
            return cls(**data)
        except PolicyError as exc:
            raise PolicyError(f"Budgets file {path}: {exc}") from None

    def targets(self) -> dict:
        """`{cost target: (budget field, unit conversion from the cost)}` for the budgets set."""
        out = {"wall_s_median": ("latency_ms", 1e3), "peak_bytes": ("memory_mib", 1 / 2**20)}
        if self.latency_p99_ms is not None:
            out["wall_s_p99"] = ("latency_p99_ms", 1e3)
        return out

    def within_margin(self, latency_ms: float, memory_mib: float, latency_p99_ms: float | None = None,
                      scale: float = 1.0) -> bool:
        """Whether one measurement is within margin × budget: latencies read at `scale` ×
        the measured ones (the speed a policy plans for, `costlab.speed.planned_scale`);
        the tail latency only when it is budgeted and measured."""
        m = self.margin
        return bool(latency_ms * scale <= self.latency_ms * m and memory_mib <= self.memory_mib * m
                    and (not self.latency_p99_ms or latency_p99_ms is None
                         or latency_p99_ms * scale <= self.latency_p99_ms * m))

    def to_dict(self) -> dict:
        out = {"latency_ms": float(self.latency_ms), "memory_mib": float(self.memory_mib),
               "margin": float(self.margin)}
        for k in ("latency_p99_ms", "process_memory_mib"):
            if getattr(self, k) is not None:
                out[k] = float(getattr(self, k))
        if self.cores is not None:
            out["cores"] = int(self.cores)
        return out


@dataclass(frozen=True)
class Policy:
    """A validated policy document; `data` is exactly what `to_json` writes."""

    data: dict = field(repr=False)

    def __post_init__(self):
        validate(self.data)

    # --- views ----------------------------------------------------------------------------
    @property
    def limits(self) -> dict[str, dict]:
        return self.data["limits"]

    @property
    def budgets(self) -> Budgets:
        return Budgets(**self.data["budgets"])

    @property
    def space(self) -> InputSpace:
        """The admitted region as an input space (dimension bounds = limits)."""
        inputs = []
        default = {"kind": "float", "min": -np.inf, "max": np.inf}
        for name, spec in self.data["inputs"].items():
            values = spec.get("values", default)
            inputs.append(InputSpec(name, spec["dtype"], tuple(spec["shape"]),
                                    ValueDomain(values["kind"], values["min"], values["max"]),
                                    Text.from_dict(spec["text"]) if spec.get("text") else None))
        dims = tuple(Dimension(n, lim["min"], lim["max"], lim.get("multiple_of", 1)) for n, lim in self.limits.items())
        return InputSpace(tuple(inputs), dims)

    def region(self) -> _Region:
        """The admitted sizes: per-dimension ranges and joint budgets."""
        lims = self.limits
        joint = self.data.get("joint") or []
        return _Region(list(lims), {n: v["min"] for n, v in lims.items()}, {n: v["max"] for n, v in lims.items()},
                       [(j["dims"], j["max"]) for j in joint],
                       {tuple(j["dims"]): j.get("offsets") or {} for j in joint},
                       {n: v["multiple_of"] for n, v in lims.items() if v.get("multiple_of", 1) > 1})

    def cost(self, sizes) -> dict:
        """The predicted and upper-bound cost of inputs from the curves the policy carries
        (`curves`, 1.6), as the limits were set: times at the planned machine speed
        (`machine_speed.factor`) with any planned shape drift added.

        Args:
            sizes: `{dimension: size}`, or a DataFrame of sizes (one row per input).

        Returns:
            `{"predicted": {target: value}, "upper": {target: value}}`: floats for one
            input, arrays for a DataFrame; seconds for `wall_s_*`, bytes for `peak_bytes`.

        Raises:
            PolicyError: The policy carries no curves (written before 1.6).

        Example:
            >>> policy.cost({"batch": 4, "seq_len": 256})["upper"]["wall_s_median"]  # doctest: +SKIP
            0.0121
        """
        if not self.data.get("curves"):
            raise PolicyError(f"This policy (schema {self.data.get('schema_version')}) carries no cost curves; "
                              "costlab 1.6 policies do. Received: no `curves` field")
        from .curves import CostModel

        one = isinstance(sizes, dict)
        X = pd.DataFrame({k: [v] for k, v in sizes.items()}) if one else sizes
        factor = float((self.data.get("machine_speed") or {}).get("factor") or 1.0)
        added = float(((self.data.get("shapes") or {}).get("drift") or {}).get("planned_ms") or 0.0) / 1e3
        out = {"predicted": {}, "upper": {}}
        for t, d in self.data["curves"].items():
            m = self._curves.get(t) or self._curves.setdefault(t, CostModel.from_dict(d))
            pred, up = m.predict(X[m.dims_]), m.upper(X[m.dims_])
            if t.startswith("wall_s_"):
                pred, up = (pred + added) * factor, (up + added) * factor
            out["predicted"][t], out["upper"][t] = (float(pred[0]), float(up[0])) if one else (pred, up)
        return out

    @property
    def _curves(self) -> dict:
        cache = self.__dict__.get("_curve_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_curve_cache", cache)
        return cache

    def admits(self, sizes: dict) -> bool:
        """Whether input sizes `{dimension: size}` are inside the limits and joint budgets."""
        return bool(self.region().contains(pd.DataFrame({k: [v] for k, v in sizes.items()}))[0])

    def _repr_html_(self):
        """Budgets, limits with their evidence, joint budgets and a picture, for notebooks."""
        from .display import policy_html

        return policy_html(self)

    def __repr__(self):
        lim = ", ".join(f"{n}≤{v['max']}" for n, v in self.limits.items())
        return f"Policy(model={self.data['model']['name']!r}, {lim})"

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return json.loads(json.dumps(self.data))

    @classmethod
    def from_dict(cls, data) -> Policy:
        return cls(data)

    def to_json(self, path=None) -> str:
        text = json.dumps(self.data, indent=2) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, path) -> Policy:
        """Read and validate a policy file.

        Raises:
            PolicyError: Missing file, invalid JSON, wrong schema version or a field
                that breaks the schema; the message names the file and the field.
        """
        p = Path(path)
        if not p.is_file():
            raise PolicyError(f"Policy file not found: {path}")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"Policy file {path} is not valid JSON: {exc}") from None
        try:
            return cls(data)
        except PolicyError as exc:
            raise PolicyError(f"Policy file {path}: {exc}") from None


def validate(data) -> None:
    """Validate a policy document against the shipped schema.

    Raises:
        PolicyError: Naming the first offending field, e.g. `budgets.latency_ms`.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"A policy is a JSON object. Received: {type(data).__name__}")
    version = data.get("schema_version")
    if version not in READS:
        raise PolicyError(f"field `schema_version`: unsupported version {version!r}; this costlab reads "
                          f"{', '.join(map(repr, READS))}")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise PolicyError(f"field `{where}`: {e.message}")
    for name, lim in data["limits"].items():
        if lim["min"] > lim["max"]:
            raise PolicyError(f"field `limits.{name}`: min={lim['min']} is larger than max={lim['max']}")
    for i, j in enumerate(data.get("joint") or []):
        unknown = [d for d in j["dims"] if d not in data["limits"]]
        if unknown:
            raise PolicyError(f"field `joint.{i}.dims`: {unknown} are not dimensions in `limits`")


def _frame(dims, sizes: dict) -> pd.DataFrame:
    return pd.DataFrame({d: np.atleast_1d(np.asarray(sizes[d], dtype=float)) for d in dims})


def _log_ints(lo: int, hi: int, n: int) -> np.ndarray:
    if hi <= lo:
        return np.array([lo], dtype=float)
    return np.unique(np.floor(np.geomspace(lo, hi, n) + 1e-9).astype(int)).astype(float)


def joint_value(sizes, dims, offsets=None):
    """A joint budget's measure of input sizes: the product over `dims` of (size + its
    offset), e.g. tokens = batch × seq_len, or (batch + 185) × seq_len for a recurrent
    model whose cost per step does not vanish at batch 1.

    Args:
        sizes: `{dimension: size}` (a number), or a DataFrame with a column per dimension.
        dims: The joint budget's dimensions.
        offsets: `{dimension: offset ≥ 0}`; missing dimensions have 0. Defaults to `None`.

    Returns:
        A float, or an array with one value per row.
    """
    offsets = offsets or {}
    if isinstance(sizes, pd.DataFrame):
        return np.prod([sizes[d].to_numpy(float) + float(offsets.get(d, 0)) for d in dims], axis=0)
    return float(math.prod(float(sizes[d]) + float(offsets.get(d, 0)) for d in dims))


def joint_expression(j: dict) -> str:
    """How a policy's joint budget is computed, e.g. `(batch + 185) × seq_len`."""
    off = j.get("offsets") or {}
    return " × ".join(f"({d} + {off[d]:g})" if off.get(d) else d for d in j["dims"])


class _Region:
    """Admitted sizes: `lo ≤ x ≤ hi` per dimension and, per joint group, the product of its
    dimensions (each plus its offset, `joint_value`) ≤ its maximum. Costs grow with every
    size, so the most expensive admitted input lies on the region's upper frontier:
    `frontier()` samples it (a log grid over the box, and points on each joint maximum with
    one of its dimensions solved from the others). With `steps` (`{dimension: m}`, a
    divisor rule), only multiples of `m` are admitted along that dimension."""

    def __init__(self, dims, lo, hi, joint=(), offsets=None, steps=None):
        self.dims, self.lo, self.hi = list(dims), dict(lo), dict(hi)
        self.joint = [(list(g), float(j)) for g, j in joint]
        #: Per joint group (a tuple of its dimensions): `{dimension: offset}`.
        self.offsets = {tuple(g): dict(o) for g, o in (offsets or {}).items() if o}
        self.steps = {d: int(m) for d, m in (steps or {}).items() if int(m) > 1 and d in self.dims}
        self._col = {d: k for k, d in enumerate(self.dims)}

    def _snapped(self, A: np.ndarray) -> np.ndarray:
        """Rows of `A` moved down onto the divisor rules (never under `lo`, a multiple)."""
        if not self.steps:
            return A
        A = A.copy()
        for d, m in self.steps.items():
            c = self._col[d]
            A[:, c] = np.maximum(np.ceil(self.lo[d] / m) * m, np.floor(A[:, c] / m) * m)
        return A

    def off(self, g) -> dict:
        return self.offsets.get(tuple(g), {})

    def _value(self, A: np.ndarray, g) -> np.ndarray:
        o = self.off(g)
        return np.prod(A[:, [self._col[d] for d in g]] + np.array([float(o.get(d, 0)) for d in g]), axis=1)

    def _contains(self, A: np.ndarray) -> np.ndarray:
        lo = np.array([self.lo[d] for d in self.dims], dtype=float)
        hi = np.array([self.hi[d] for d in self.dims], dtype=float)
        ok = ((A >= lo) & (A <= hi)).all(axis=1)
        for d, m in self.steps.items():
            ok &= A[:, self._col[d]] % m == 0
        for g, j in self.joint:
            ok &= self._value(A, g) <= j * (1 + 1e-12) + 1e-9
        return ok

    def value(self, X: pd.DataFrame, g) -> np.ndarray:
        """Joint group `g`'s measure of each row of `X`."""
        return joint_value(X, g, self.off(g))

    def contains(self, X) -> np.ndarray:
        """Which rows of `X` (a DataFrame with a column per dimension) are admitted."""
        return self._contains(np.asarray(X[self.dims], dtype=float))

    def frontier(self, n: int = 24) -> pd.DataFrame:
        k = max(1, len(self.dims))
        n = int(max(5, min(n, 8000 ** (1 / k))))  # ≤ 8000 grid points, 20 per axis in 3-D
        axes = [_log_ints(self.lo[d], self.hi[d], n) for d in self.dims]
        A = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
        parts = [A, np.array([[self.hi[d] for d in self.dims]], dtype=float)]
        for g, j in self.joint:
            o = self.off(g)
            for d in g:  # points on the joint maximum, `d` solved from the others
                others = [self._col[e] for e in g if e != d]
                shift = np.array([float(o.get(e, 0)) for e in g if e != d])
                P = A.copy()
                c = self._col[d]
                P[:, c] = np.minimum(self.hi[d], np.floor(j / np.prod(P[:, others] + shift, axis=1)
                                                          - float(o.get(d, 0)) + 1e-9))
                parts.append(P[P[:, c] >= self.lo[d]])
        A = self._snapped(np.concatenate(parts))
        A = np.unique(A[self._contains(A)], axis=0)
        return pd.DataFrame(A, columns=self.dims)

    def onto(self, sizes: dict) -> dict:
        """`sizes` moved into the region: clipped per axis, then scaled down per joint budget."""
        s = {d: int(min(max(v, self.lo[d]), self.hi[d])) for d, v in sizes.items()}
        for g, j in self.joint:
            o = self.off(g)
            prod = joint_value(s, g, o)
            if prod > j:
                f = (j / prod) ** (1 / len(g))
                for d in g:
                    s[d] = max(self.lo[d], int(math.floor((s[d] + o.get(d, 0)) * f - o.get(d, 0))))
                while joint_value(s, g, o) > j * (1 + 1e-12) + 1e-9:  # rounding: shave the largest
                    d = max(g, key=lambda d: s[d] - self.lo[d])
                    s[d] -= self.steps.get(d, 1)
        for d, m in self.steps.items():
            if d in s:
                s[d] = max(-(-self.lo[d] // m) * m, s[d] // m * m)
        return s

    def log_volume(self, cap: dict, lo: dict, n: int = 40) -> float:
        """Fraction of the space's log-size box `[lo, cap]` this region admits."""
        k = max(1, len(self.dims))
        n = int(max(5, min(n, 60000 ** (1 / k))))
        axes = [np.geomspace(lo[d], cap[d], n) if cap[d] > lo[d] else np.array([lo[d]], float) for d in self.dims]
        A = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1)
        return float(self._contains(A).mean())


def _costs_at(cost_models, X: pd.DataFrame) -> tuple[dict, dict]:
    pred = {t: m.predict(X[m.dims_]) for t, m in cost_models.items()}
    upper = {t: m.upper(X[m.dims_]) for t, m in cost_models.items()}
    return pred, upper


#: Regions with at most this many integer inputs are searched input by input (`_worst`).
EXHAUSTIVE = 4096


def _count(region: _Region) -> float:
    """Integer inputs in `region`'s per-axis box."""
    return float(np.prod([region.hi[d] - region.lo[d] + 1 for d in region.dims], dtype=float))


def _every_input(region: _Region) -> pd.DataFrame:
    """Every admitted integer input of a small region: where a bound calibrated locally
    (`CostModel.upper_factors`) need not grow along the frontier, nor peak on it."""
    axes = [np.arange(region.lo[d], region.hi[d] + 1) for d in region.dims]
    axes = [a[a % region.steps[d] == 0] if d in region.steps else a for a, d in zip(axes, region.dims, strict=True)]
    X = pd.DataFrame(np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1), columns=region.dims)
    return X[region.contains(X)].reset_index(drop=True)


def _worst(cost_models, bounded, budgets, region: _Region) -> tuple[float, dict, dict, dict]:
    """(largest ratio of upper bound to margin × budget over the region, the input where
    it is reached, predicted and upper costs there per target)."""
    def largest(X):
        ratio = np.zeros(len(X))
        for t, m in bounded.items():
            key, scale = budgets.targets()[t]
            ratio = np.maximum(ratio, m.upper(X) * scale / (getattr(budgets, key) * budgets.margin))
        i = int(np.argmax(ratio))
        return float(ratio[i]), {d: int(X.iloc[i][d]) for d in region.dims}

    every = _every_input(region) if _count(region) <= EXHAUSTIVE else pd.DataFrame()
    best, at = largest(every if len(every) else region.frontier())
    # The frontier's log grid can step over the worst point of a joint budget with offsets
    # (the maximum of b·s² on (b + 16)·s = J is at b = 16, between grid points): search
    # again on the frontier of a sub-box around it (a subset of the region: all admitted).
    for spread in () if len(every) else (1.3, 1.05):
        hi = {d: max(region.lo[d], min(region.hi[d], int(np.ceil(at[d] * spread)))) for d in region.dims}
        lo = {d: min(hi[d], max(region.lo[d], int(np.floor(at[d] / spread)))) for d in region.dims}
        local = _Region(region.dims, lo, hi, region.joint, region.offsets, region.steps)
        X = local.frontier()
        if len(X):
            r, a = largest(X)
            if r > best:
                best, at = r, a
    pred, up = _costs_at(cost_models, _frame(region.dims, at))
    return best, at, {t: float(v[0]) for t, v in pred.items()}, {t: float(v[0]) for t, v in up.items()}


def worst_on_joint(cost_models, budgets, region: _Region, dims, jmax) -> dict:
    """The admitted input on a joint budget (its product within 5% of `jmax`) whose
    upper-bound cost is the largest share of its budget: where to measure that budget's
    boundary."""
    budgets = Budgets(**budgets) if isinstance(budgets, dict) else budgets
    bounded = {t: m for t, m in cost_models.items() if t in budgets.targets()}
    X = region.frontier()
    X = X[region.value(X, list(dims)) >= 0.95 * jmax]
    if X.empty:
        X = region.frontier()
    ratio = np.zeros(len(X))
    for t, m in bounded.items():
        key, scale = budgets.targets()[t]
        ratio = np.maximum(ratio, m.upper(X) * scale / getattr(budgets, key))
    row = X.iloc[int(np.argmax(ratio))]
    return {d: int(row[d]) for d in region.dims}


def _binding(bounded, budgets, at: dict, dims) -> str:
    _, up = _costs_at(bounded, _frame(dims, at))
    ratios = {}
    for t, u in up.items():
        key, scale = budgets.targets()[t]
        ratios[key] = float(u[0]) * scale / getattr(budgets, key)
    key = max(ratios, key=ratios.get)
    return {"latency_ms": "latency", "latency_p99_ms": "latency p99", "memory_mib": "memory"}[key]


def _largest(feasible, a: float, b: float, steps: int = 40) -> float:
    """Largest t in [a, b] with `feasible(t)`, given `feasible(a)`; bisection."""
    if feasible(b):
        return b
    for _ in range(steps):
        mid = (a + b) / 2
        a, b = (mid, b) if feasible(mid) else (a, mid)
    return a


#: What the memory budget bounds, by memory source (`Policy.data["memory_figure"]`).
MEMORY_FIGURES = {
    "tf_allocator": "the peak of the tensor bytes one call requests from TensorFlow's allocator (the profiler's "
                    "requested_bytes, summed over the tensors live at once): what the model asks for, smooth in the "
                    "input sizes. The allocator reserves more, since it rounds a request over 64 MiB up to a chunk of "
                    "the next power of two (allocator_peak_bytes in profile.csv); the container memory "
                    "(serving.container_memory_mib) includes that through the process-growth calibration",
    "process_vmhwm": "the growth of the process's resident high-water mark over one probe (the framework has no "
                     "per-call allocator statistics here), exact in a fresh process per probe",
}


def synthesize(cost_models: dict, budgets, *, space: InputSpace, model: dict | None = None,
               measured_on: dict | None = None, extrapolate: float = 1.0, joint: bool = True,
               calibration: dict | None = None, churn: dict | None = None,
               throughput: dict | None = None, timeout_factor: float = 3.0, speed=None,
               joint_offsets: bool = True, value_pattern: dict | None = None, drift: dict | None = None,
               validity: dict | None = None, memory_source: str | None = None,
               joint_max: dict | None = None) -> Policy:
    """Choose the limits whose most expensive admitted input stays within budget.

    First a box: every dimension grows by the same fraction of its log range until the
    calibrated upper bound of a budgeted cost at the box's corner reaches `margin × budget`
    (dimensions no cost depends on get their full range). Then, per input with two or more
    costly dimensions, a joint budget (the product of those dimensions, e.g. tokens =
    batch × seq_len, each dimension plus an offset where the cost's elasticity asks for
    one, `joint_value`): each axis may then reach what it could alone with the others at
    their minimum, as long as the product stays under a maximum — chosen, with the axis
    maxima, so that the worst input on the whole admitted region's frontier stays within
    budget and the region admits the most of the space (log-size measure); then each axis
    maximum is pushed, one at a time with the joint maxima kept, as far as the worst input
    stays within budget. A joint budget is kept only when it admits more than the box.

    Then the request and serving figures: max batch, max payload bytes (raw and as JSON),
    a request timeout (`timeout_factor` × the worst admitted tail latency's upper bound),
    max concurrent requests and a container memory limit (in-flight × the process memory
    of the worst admitted request, from `calibration`, + the process's resident memory
    before any request, which holds the weights), a rate limit from `throughput` (a
    measured concurrent run, `costlab.throughput`), and shape buckets with a cap on
    distinct shapes when `churn` figures show that new shapes cost.

    Args:
        cost_models: `{target: CostModel}`; targets with a budget (`Budgets.targets()`) are
            bounded, others are reported only.
        budgets: A `Budgets` or a dict of its fields.
        space: The input space that was profiled (inputs, dtypes, dimension ranges).
        model: The adapter's description (`Profile.model`). Defaults to `None`.
        measured_on: The host (`Profile.machine`). Defaults to `None`.
        extrapolate: Limits may reach this multiple of the largest size that was both
            measured and inside `space`. Defaults to `1.0` (never beyond either).
        joint: Look for joint budgets. Defaults to `True`.
        joint_offsets: Let a joint budget add an offset to a dimension before the product,
            `(batch + c) × seq_len`, when the fitted cost's elasticity says it grows like
            that and it admits more (`_joint`); `False` for plain products only, e.g. for a
            server whose token budget is a plain product. Defaults to `True`.
        calibration: `Profile.calibration()`. Defaults to `None` (process memory = tensor
            peak; the baseline unknown, so no container limit is derived).
        churn: `Churn.figures`. Defaults to `None` (no shape section).
        throughput: `costlab.throughput.measure(...)` figures. Defaults to `None` (no rate
            limit).
        timeout_factor: Request timeout over the worst admitted tail latency. Defaults to `3`.
        speed: The run's machine-speed index (`costlab.speed.Speed` or its dict), when the
            time curves were fitted at the run's median speed (`costlab.fit` on a profile
            with pulses): every time curve is multiplied by `speed.factor` (the index's
            slow quantile) before limits are set, and the policy records it as
            `machine_speed`. Defaults to `None` (times as fitted).
        value_pattern: The value pattern the curves were measured with and its evidence
            (`costlab.worst.ValueScan.to_dict()`, or `{"pattern": ..., "chosen_by":
            "given"}`), recorded as `value_pattern`: verify and `costlab.testing` measure
            admitted inputs with the same values. Defaults to `None` (not recorded:
            random values).
        drift: Shape drift on the frontier (`costlab.drift.Drift.to_dict()`): its
            `planned_ms` is added to every time curve (before `speed.factor`), the
            readings are recorded as `shapes.drift`, and when something is planned
            `shapes.max_distinct` is held to the `shapes` it was read at. Defaults to
            `None` (times as fitted).
        validity: The model's own validity limits (`costlab.validity.Validity.to_dict()`):
            no limit passes them (a maximum reached is `limited_by: "model limit"`), and
            the policy records them as `validity`. `space` should already be cut to them
            (`Validity.bounds`). Defaults to `None`.
        memory_source: Where the peak memory the memory budget bounds was read
            (`costlab.memory`: `tf_allocator`, `process_vmhwm`, ...), recorded with what
            the figure means as `memory_figure`. Defaults to `None` (not recorded).
        joint_max: `{joint budget name: maximum}` measured on the frontier
            (`costlab.refine.joint_boundary`'s `boundary`) in place of the maxima the curves
            give; recorded as the joint budget's `measured`. A maximum at or above the
            product of the axis maxima is dropped (it constrains nothing), and an axis
            maximum the new one does not admit (the others at their minimum) is cut to it.
            Defaults to `None` (the curves' maxima).

    Returns:
        A validated `Policy`.

    Raises:
        PolicyError: Budgets that even the smallest input exceeds, or bad arguments.
    """
    if isinstance(budgets, dict):
        budgets = Budgets(**budgets)
    if not isinstance(budgets, Budgets):
        raise PolicyError(f"Expected Budgets or a dict for `budgets`. Received: {type(budgets).__name__}")
    if not cost_models:
        raise PolicyError("Expected at least one fitted cost model. Received: {}")
    bounded = {t: m for t, m in cost_models.items() if t in budgets.targets()}
    if not bounded:
        raise PolicyError(f"No cost model for a budgeted target {sorted(budgets.targets())}. "
                          f"Received: {sorted(cost_models)}")
    if budgets.latency_p99_ms is not None and "wall_s_p99" not in bounded:
        raise PolicyError("A latency_p99_ms budget needs a fitted `wall_s_p99` cost model. "
                          f"Received: {sorted(cost_models)}")
    if not extrapolate >= 1:
        raise PolicyError(f"Expected `extrapolate` >= 1. Received: extrapolate={extrapolate!r}")
    if not timeout_factor >= 1:
        raise PolicyError(f"Expected `timeout_factor` >= 1. Received: timeout_factor={timeout_factor!r}")
    added = float((drift or {}).get("planned_ms") or 0.0) / 1e3
    if not added >= 0:
        raise PolicyError(f"Expected `drift.planned_ms` >= 0. Received: {drift.get('planned_ms')!r}")
    factor = 1.0
    if speed is not None:
        from .speed import Speed

        speed = Speed.from_dict(speed) if isinstance(speed, dict) else speed
        if not isinstance(speed, Speed) or not speed.factor >= 1:
            raise PolicyError(f"Expected a costlab.speed.Speed with factor >= 1 for `speed`. Received: {speed!r}")
        factor = speed.factor
    curves = {t: m.to_dict() for t, m in cost_models.items()}  # as fitted: `Policy.cost` applies speed and drift
    if added or speed is not None:
        cost_models = {t: _Timed(m, factor, added) if t.startswith("wall_s_") else m for t, m in cost_models.items()}
        bounded = {t: cost_models[t] for t in bounded}
    dims = space.dim_names
    lo = {d.name: d.min for d in space.dims}
    # Limits pass neither what was measured (a slice stopped early by a hard cap measured
    # less than the space allows) nor the range the user asked to explore (`refine` may
    # measure beyond it to identify a class), each times `extrapolate`.
    measured_hi = {d: max([int(m.range_[d][1]) for m in cost_models.values() if d in m.range_],
                          default=space.dim(d).max) for d in dims}
    cap = {d: max(lo[d], int(min(measured_hi[d], space.dim(d).max) * extrapolate)) for d in dims}
    # Sizes the model itself refuses (candle's max_position_embeddings) are never admitted.
    hard = {d: int(v) for d, v in ((model or {}).get("hard_limits") or {}).items() if d in cap}
    for d, lim in ((validity or {}).get("limits") or {}).items():  # found by measurement (costlab.validity)
        if d in cap and lim.get("max") is not None:
            hard[d] = min(hard.get(d, lim["max"]), int(lim["max"]))
    cap = {d: min(cap[d], hard.get(d, cap[d])) for d in dims}
    cap = {d: max(lo[d], cap[d] // space.dim(d).multiple_of * space.dim(d).multiple_of) for d in dims}
    free = {d for d in dims if all(m.exponents_.get(d, {"power": 0, "log": 0}) == {"power": 0, "log": 0}
                                   for m in bounded.values())}

    def grown(base: dict, top: dict, t: float) -> dict:
        return {d: top[d] if d in free else
                max(base[d], int(np.floor(base[d] * (top[d] / base[d]) ** t + 1e-9))) for d in dims}

    def ratio(region) -> float:
        return _worst(cost_models, bounded, budgets, region)[0]

    box0 = _Region(dims, lo, grown(lo, cap, 0.0))
    start = ratio(box0)
    if start > 1:
        key = _binding(bounded, budgets, box0.hi, dims)
        raise PolicyError(
            f"The {key} budget cannot be met even by the smallest input {box0.hi}: its upper-bound cost "
            f"is {start:.2f}× the budget × margin")
    t_box = _largest(lambda t: ratio(_Region(dims, lo, grown(lo, cap, t))) <= 1, 0.0, 1.0, steps=24)
    box = _Region(dims, lo, grown(lo, cap, t_box))
    region, joint_meta = box, []
    if joint:
        def fitted(X):  # the fitted cost over margin × budget, the largest of the budgeted targets
            r = np.zeros(len(X))
            for t, m in bounded.items():
                key, scale = budgets.targets()[t]
                r = np.maximum(r, m.predict(X[m.dims_]) * scale / (getattr(budgets, key) * budgets.margin))
            return r
        region, joint_meta = _joint(space, dims, lo, cap, free, box, ratio, fitted if joint_offsets else None)
        if joint_max:
            region, joint_meta = _set_joint(region, joint_meta, joint_max, lo)
    steps = {d.name: d.multiple_of for d in space.dims if d.multiple_of > 1}
    if steps:  # a divisor rule: the limits are its multiples (a subset of what was searched)
        snap_lo = {d: (-(-lo[d] // steps[d]) * steps[d] if d in steps else lo[d]) for d in dims}
        region = _Region(dims, snap_lo, {d: (region.hi[d] // steps[d] * steps[d] if d in steps else region.hi[d])
                                         for d in dims}, region.joint, region.offsets, steps)
        lo = snap_lo
    worst_ratio, worst_at, pred, upper = _worst(cost_models, bounded, budgets, region)
    binding = "measured range" if t_box >= 1.0 else _binding(bounded, budgets, worst_at, dims)
    limits = {}
    for d in dims:
        by = "unconstrained" if d in free else ("measured range" if region.hi[d] >= cap[d] else binding)
        if d in hard and region.hi[d] >= hard[d] and by in ("measured range", "unconstrained"):
            by = "model limit"
        if any(d in m.get("clamps", ()) for m in joint_meta):
            by = "joint budget"  # its maximum is the joint budget over the others' minimum
        limits[d] = {"name": d, "min": int(lo[d]), "max": int(region.hi[d]), "limited_by": by,
                     "predicted": pred, "upper": upper}
        if d in steps:
            limits[d]["multiple_of"] = int(steps[d])
    joints = []
    for (g, j), meta in zip(region.joint, joint_meta, strict=True):
        joints.append({"name": meta["name"], "input": meta["input"], "dims": g, "max": int(j),
                       "offsets": {d: int(meta["offsets"].get(d, 0)) for d in g},
                       "limited_by": binding, "predicted": pred, "upper": upper,
                       "box_max": int(meta["box_max"]), **({"measured": meta["measured"]} if "measured" in meta else {})})
    inputs = {}
    for spec in space.inputs:
        values = spec.values.to_dict()
        if values["kind"] == "float":
            values["finite"] = True  # NaN and infinity are rejected: no model's costs were measured on them
        inputs[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape),
                             "dims": [{"name": s, "min": int(lo[s]), "max": int(region.hi[s])}
                                      for s in spec.shape if isinstance(s, str)],
                             "values": values}
        if spec.text is not None:  # words and bytes per string, counted as the model's vectorizer does
            inputs[spec.name]["text"] = spec.text.to_dict(vocabulary=False)
            inputs[spec.name]["dims"] += [{"name": s, "min": int(lo[s]), "max": int(region.hi[s])}
                                          for s in (spec.text.words, spec.text.bytes)]
    data = {"schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": model or {"name": "unknown", "sha256": "0" * 64, "framework": "unknown", "versions": {}},
            "measured_on": measured_on or _default_machine(),
            "budgets": budgets.to_dict(), "inputs": inputs, "limits": limits, "joint": joints,
            "worst_admitted": {"sizes": worst_at, "predicted": pred, "upper": upper,
                               "budget_fraction": worst_ratio * budgets.margin},
            "admitted_fraction": {"box": box.log_volume(cap, lo), "policy": region.log_volume(cap, lo)},
            "complexity": {t: m.complexity_ for t, m in cost_models.items()}, "curves": curves}
    if speed is not None:
        data["machine_speed"] = speed.to_dict()
    if value_pattern is not None:
        data["value_pattern"] = value_pattern
    if validity is not None:
        data["validity"] = validity
    if memory_source is not None:
        data["memory_figure"] = {"source": memory_source, "bounds": MEMORY_FIGURES.get(
            memory_source, "the peak memory of one call as that source reads it")}
    data["request"] = _request(space, region, cost_models, upper, budgets, timeout_factor)
    data["serving"] = _serving(data, upper, budgets, calibration, measured_on or data["measured_on"],
                               throughput, timeout_factor)
    shapes = _shapes(space, region, churn, data["serving"])
    if shapes:
        if drift is not None:
            shapes["drift"] = drift
            n = int(drift.get("shapes") or 0)
            higher = drift.get("higher") or []
            if (added or higher) and n and (shapes.get("max_distinct") is None or shapes["max_distinct"] > n):
                # the plan holds up to the shapes it was read at, and a drifting process only
                # drifts further past them (zoo:masked: about 4 ms more per call every 100
                # shapes, `benchmarks/late_shapes.py`): one process takes no more. So too when
                # a higher count was read first and not kept, even if nothing is planned at `n`
                shapes["max_distinct"] = n
                why = (f"capped at the {n} shapes the drift planned for was read at (a drifting process drifts "
                       "further past them)" if added else
                       f"capped at the {n} shapes the drift was read at: at {higher[-1]['shapes']} it added "
                       f"{higher[-1]['planned_ms']:.2f} ms ({higher[-1]['why']})")
                shapes["reason"] = f"{shapes.get('reason', '')}; {why}".lstrip("; ")
        data["shapes"] = shapes
    return Policy(data)


class _Timed:
    """A time `CostModel` as planned for: `(predict + seconds) × factor`, and the same for
    `upper` (`seconds`: shape drift per call; `factor`: the slow machine speed)."""

    def __init__(self, model, factor: float = 1.0, seconds: float = 0.0):
        self._model, self._factor, self._seconds = model, float(factor), float(seconds)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def predict(self, X):
        return (self._model.predict(X) + self._seconds) * self._factor

    def upper(self, X, q=None):
        return (self._model.upper(X, q) + self._seconds) * self._factor


def _joint(space, dims, lo, cap, free, box, ratio, fitted=None):
    """Widen the box into (axis maxima, joint maximum) per input with ≥ 2 costly dims.

    Each joint budget is first tried as the plain product of its dimensions, then with
    offsets (`joint_value`) read off the fitted cost at the box's corner: a cost with a
    part that does not grow with a dimension `d` (a recurrent model's per-step work at
    batch 1) grows like `(d + c)` there, with `c = d (1 - e) / e` for its elasticity `e`
    (d log cost / d log d, when under 1). The product of those shifted sizes follows the
    cost's level sets, so the joint budget binds along its whole frontier, not only at one
    corner. The offsets are kept when they admit more of the space.
    """
    groups, meta = [], []
    for spec in space.inputs:
        g = [s for s in dict.fromkeys(spec.shape) if isinstance(s, str) and s not in free]
        if len(g) >= 2 and g not in groups:
            groups.append(g)
            meta.append({"input": spec.name, "name": "×".join(g)})
    if not groups:
        return box, []
    # Each axis alone (the others at their minimum): how far it may go.
    alone = {}
    for d in dims:
        if d in free:
            alone[d] = box.hi[d]
            continue

        def along(t, d=d):
            hi = {**box.hi, **{g: lo[g] for g in dims if g not in free}}
            hi[d] = max(box.hi[d], int(np.floor(box.hi[d] * (cap[d] / box.hi[d]) ** t + 1e-9)))
            return _Region(dims, lo, hi)
        t = _largest(lambda t: ratio(along(t)) <= 1, 0.0, 1.0, steps=14)
        alone[d] = along(t).hi[d]
    best = _joint_with(dims, lo, cap, free, box, ratio, groups, [dict(m) for m in meta], alone, {})
    shifted = _offsets(groups, box, cap, fitted) if fitted is not None else {}
    if shifted:
        other = _joint_with(dims, lo, cap, free, box, ratio, groups, [dict(m) for m in meta], alone, shifted)
        if other[0].log_volume(cap, lo) > best[0].log_volume(cap, lo) * 1.02:
            best = other
    return best


def _offsets(groups, box, cap, fitted) -> dict:
    """Per joint group, `{dimension: offset}` from the elasticity of `fitted` (sizes →
    cost over budget) at the box's corner; only positive offsets are kept."""
    out = {}
    at = pd.DataFrame({d: [float(v)] for d, v in box.hi.items()})
    h = 0.1
    for g in groups:
        off = {}
        for d in g:
            up, down = at.copy(), at.copy()
            up[d] *= math.exp(h)
            down[d] *= math.exp(-h)
            a, b = float(fitted(up)[0]), float(fitted(down)[0])
            if not (a > 0 and b > 0):
                continue
            e = (math.log(a) - math.log(b)) / (2 * h)
            if 0.02 < e < 0.98:
                off[d] = int(round(min(10 * cap[d], box.hi[d] * (1 - e) / e)))
        off = {d: c for d, c in off.items() if c > 0}
        if off:
            out[tuple(g)] = off
    return out


def _joint_with(dims, lo, cap, free, box, ratio, groups, meta, alone, offsets):
    """`_joint` for one choice of offsets: the region and its joint budgets' metadata."""
    def measure(sizes: dict, g) -> float:
        return joint_value(sizes, g, offsets.get(tuple(g)))

    best, best_vol = box, box.log_volume(cap, lo)
    for s in (1.0, 0.75, 0.5, 0.25, 0.1):
        hi = {d: box.hi[d] if d in free else
              max(box.hi[d], int(np.floor(box.hi[d] * (alone[d] / box.hi[d]) ** s + 1e-9))) for d in dims}
        lowprod = [measure(lo, g) for g in groups]
        fullprod = [measure(hi, g) for g in groups]

        def region_at(u, hi=hi, lowprod=lowprod, fullprod=fullprod):
            return _Region(dims, lo, hi, [(g, lp * (fp / lp) ** u)
                                          for g, lp, fp in zip(groups, lowprod, fullprod, strict=True)], offsets)
        u = _largest(lambda u: ratio(region_at(u)) <= 1, 0.0, 1.0, steps=16)
        r = region_at(u)
        r.joint = [(g, float(np.floor(j + 1e-9))) for g, j in r.joint]
        vol = r.log_volume(cap, lo)
        if vol > best_vol * 1.05:
            # The first (widest axis maxima) that admits clearly more than the box: each axis
            # keeps as much of what it could do alone as the joint budget allows.
            best, best_vol = r, vol
            break
    if best is box:
        return box, []
    # Then each axis as far as the budgets allow with the joint maxima kept: the choice above
    # trades axis maxima against the joint maxima for the admitted share of the space, and can
    # leave an axis short of where its own cost binds (a GRU's batch at short sequences).
    hi = dict(best.hi)
    for d in dims:
        if d in free or hi[d] >= cap[d]:
            continue

        def wider(t, d=d, base=hi[d]):
            return _Region(dims, lo, {**hi, d: max(base, int(np.floor(base * (cap[d] / base) ** t + 1e-9)))},
                           best.joint, offsets)
        hi[d] = wider(_largest(lambda t: ratio(wider(t)) <= 1, 0.0, 1.0, steps=14)).hi[d]
    best = _Region(dims, lo, hi, best.joint, offsets)
    # A joint maximum at or above the product of its axis maxima constrains nothing.
    kept = [(g, j, m) for (g, j), m in zip(best.joint, meta, strict=True) if j < measure(best.hi, g)]
    # An axis maximum must itself be admitted: with the others at their minimum, under the joint maximum.
    hi = dict(best.hi)
    for g, j, m in kept:
        o = offsets.get(tuple(g), {})
        for d in g:
            rest = float(np.prod([lo[e] + o.get(e, 0) for e in g if e != d]))
            top = max(lo[d], int(np.floor(j / rest - o.get(d, 0) + 1e-9)))
            if top < hi[d]:
                hi[d] = top
                m.setdefault("clamps", []).append(d)
    out = _Region(dims, lo, hi, [(g, j) for g, j, _ in kept], {tuple(g): offsets.get(tuple(g), {}) for g, _, _ in kept})
    return out, [{**m, "box_max": measure(box.hi, g), "offsets": offsets.get(tuple(g), {})} for g, _, m in kept]


def _set_joint(region, meta, maxima: dict, lo: dict):
    """`region` with the joint maxima `maxima` (`{name: max}`, measured) in place of its own
    (`synthesize`'s `joint_max`)."""
    hi, kept = dict(region.hi), []
    for (g, j), m in zip(region.joint, meta, strict=True):
        o = region.off(g)
        if m["name"] in maxima:
            m = {**m, "measured": {"curves_max": int(j), "boundary": int(maxima[m["name"]])}}
            j = float(int(maxima[m["name"]]))
        if j >= joint_value(hi, g, o):  # constrains nothing
            continue
        for d in g:  # an axis maximum must itself be admitted, the others at their minimum
            rest = float(np.prod([lo[e] + o.get(e, 0) for e in g if e != d]))
            top = max(lo[d], int(np.floor(j / rest - o.get(d, 0) + 1e-9)))
            if top < hi[d]:
                hi[d] = top
                m.setdefault("clamps", []).append(d)
        kept.append((g, j, m))
    out = _Region(region.dims, region.lo, hi, [(g, j) for g, j, _ in kept],
                  {tuple(g): region.off(g) for g, _, _ in kept}, region.steps)
    return out, [m for _, _, m in kept]


#: Bytes per element written as JSON text for float dtypes, with its `", "` separator:
#: a float32's shortest repr is at most 15 characters (`-1.2345678e-05`), a float64's 24.
_JSON_FLOAT_CHARS = {2: 12, 4: 17, 8: 26}


def _request(space, region, cost_models, upper, budgets, timeout_factor) -> dict:
    """Max batch, max payload bytes and the request timeout for the admitted region."""
    raw = json_bytes = 0
    per_input = {}
    for spec in space.inputs:
        fixed = int(np.prod([s for s in spec.shape if isinstance(s, int)] or [1]))
        free = [s for s in spec.shape if isinstance(s, str)]
        # At most: the product of the axis maxima, or of a joint maximum and the other axes'.
        elements = math.prod(int(region.hi[d]) for d in free)
        for g, j in region.joint:
            if set(g) <= set(free):
                elements = min(elements, int(j) * math.prod(int(region.hi[d]) for d in free if d not in g))
        elements *= fixed
        if spec.text is not None:  # strings: bytes per string; JSON escapes a byte in at most 6 (\u00XX)
            n = int(region.hi[spec.text.bytes])
            jb = elements * (6 * n + 3) + len(spec.name) + 16
            per_input[spec.name] = {"elements": elements, "raw_bytes": elements * n, "json_bytes": int(jb),
                                    "bytes_per_string": n, "words_per_string": int(region.hi[spec.text.words])}
            raw += elements * n
            json_bytes += jb
            continue
        item = np.dtype(spec.dtype).itemsize
        if spec.values.kind == "int":
            chars = max(len(str(int(spec.values.min))), len(str(int(spec.values.max)))) + 2
        else:
            chars = _JSON_FLOAT_CHARS.get(item, 25)
        last = spec.shape[-1]
        shortest = last if isinstance(last, int) else int(region.lo.get(last, 1))
        rows = -(-elements // max(1, shortest))  # innermost rows, at most
        jb = elements * chars + 3 * max(rows, 1) + len(spec.name) + 16
        per_input[spec.name] = {"elements": elements, "raw_bytes": elements * item, "json_bytes": int(jb)}
        raw += elements * item
        json_bytes += jb
    tail = next((t for t in ("wall_s_p99", "wall_s_p95", "wall_s_median") if t in upper), None)
    out = {"max_payload_bytes": int(max(raw, json_bytes) + 256),
           "max_payload_bytes_raw": int(raw), "max_payload_bytes_json": int(json_bytes + 256),
           "payload": per_input}
    if "batch" in region.hi:
        out["max_batch"] = int(region.hi["batch"])
        # A server that merges requests pads them to the longest: the merged batch must be
        # admitted with every other dimension at its maximum.
        merged = int(region.lo["batch"])
        for b in range(int(region.hi["batch"]), int(region.lo["batch"]) - 1, -1):
            if region.contains(_frame(region.dims, {**region.hi, "batch": b}))[0]:
                merged = b
                break
        out["max_merged_batch"] = merged
    if tail is not None:
        worst_ms = upper[tail] * 1e3
        out.update(timeout_ms=float(np.ceil(timeout_factor * worst_ms)), timeout_from=tail,
                   worst_admitted_latency_ms=worst_ms)
    return out


def _serving(data, upper, budgets, calibration, machine, throughput, timeout_factor) -> dict:
    """Concurrency, container memory, queue and rate limit for one serving process."""
    cores = int(budgets.cores or machine.get("cores") or 1)
    cal = calibration or {}
    ratio = max(1.0, cal.get("ratio_max") or 1.0)
    tensor_mib = upper.get("peak_bytes", 0.0) / 2**20
    per_request_mib = tensor_mib * ratio
    baseline = cal.get("baseline_rss_mib")
    weights_mib = (data["model"].get("weights_bytes") or 0) / 2**20
    out = {"cpu": cores, "per_request_memory_mib": per_request_mib, "process_over_tensor": ratio,
           "baseline_rss_mib": baseline, "weights_mib": weights_mib}
    if budgets.process_memory_mib is not None and baseline is not None:
        room = budgets.process_memory_mib * budgets.margin - baseline
        by_memory = int(room // per_request_mib) if per_request_mib > 0 else cores
        if by_memory < 1:
            raise PolicyError(
                f"The process memory budget process_memory_mib={budgets.process_memory_mib:g} does not hold one "
                f"request: {baseline:.0f} MiB resident before any request + {per_request_mib:.1f} MiB for the "
                f"worst admitted request, under margin {budgets.margin:g}")
        out["max_concurrency"] = max(1, min(cores, by_memory))
        out["concurrency_from"] = "cores" if cores <= by_memory else "process memory"
    else:
        out["max_concurrency"] = cores
        out["concurrency_from"] = "cores"
    c = out["max_concurrency"]
    # Requests waiting beyond those in flight: each waits ≤ (timeout_factor − 1) services.
    out["max_queue"] = int(max(1, np.floor((timeout_factor - 1) * c)))
    # A model that cannot be called from two threads at once is served by one process per
    # request in flight (`costlab.throughput`'s processes mode): each holds its own copy.
    copies = int((throughput or {}).get("copies") or 1)
    if copies > 1:
        out["model_copies"] = copies
    if baseline is not None:
        need = copies * baseline + c * per_request_mib
        out["container_memory_request_mib"] = int(np.ceil(need / 16) * 16)
        out["container_memory_mib"] = int(np.ceil(need / budgets.margin / 16) * 16)
        if budgets.process_memory_mib is not None:
            out["container_memory_mib"] = int(min(out["container_memory_mib"], budgets.process_memory_mib))
    if throughput:
        rps = float(throughput["rps"])
        out["throughput"] = throughput
        out["rate_limit_rps"] = round(rps * budgets.margin, 3)
        out["burst"] = int(c + out["max_queue"])
    return out


def _shapes(space, region, churn, serving) -> dict | None:
    """Shape buckets and a cap on distinct shapes, when new shapes were measured to cost."""
    if not churn:
        return None
    growth = churn.get("rss_growth_mib_per_new_shape") or 0.0
    costly = churn.get("retraced", 0) > 0 or churn.get("new_shape_cold_over_warm", 1) > 2 or growth > 0.25
    evidence = {k: churn.get(k) for k in ("shapes", "retraced", "new_shape_cold_ms_median",
                                          "new_shape_cold_over_warm", "warm_ms_median",
                                          "rss_growth_mib_per_new_shape")}
    if not costly:
        return {"buckets": {}, "max_distinct": None, "reason": "new shapes measured no extra cost",
                "evidence": evidence}
    buckets = {}
    for d in space.dims:
        lo, hi = int(region.lo[d.name]), int(region.hi[d.name])
        m = d.multiple_of  # a divisor rule: buckets are its multiples (powers of two at least m)
        edges = [b for b in (2 ** k * m for k in range(0, 40)) if lo <= b < hi]
        buckets[d.name] = sorted({*edges, hi}) if hi > lo else [hi]
    padded = int(np.prod([len(b) for b in buckets.values()]))
    memory = serving.get("container_memory_mib")
    if growth > 0 and memory:
        # New shapes may use at most a tenth of the container's memory for what they keep.
        cap = max(padded, int(0.1 * memory / growth))
    else:
        cap = padded
    return {"buckets": buckets, "max_distinct": int(cap), "padded_shapes": padded,
            "reason": (f"a new shape costs {churn.get('new_shape_cold_over_warm', 0):.1f}× a warm call and "
                       f"{growth:+.2f} MiB resident memory"), "evidence": evidence}


def _default_machine() -> dict:
    from ._env import machine

    return machine()
