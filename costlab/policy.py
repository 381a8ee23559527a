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
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd

from .errors import PolicyError
from .space import Dimension, InputSpace, InputSpec, ValueDomain

SCHEMA_VERSION = "1.0"
#: Which budget bounds which fitted cost, and the unit conversion from the cost.
BUDGET_OF_TARGET = {"wall_s_median": ("latency_ms", 1e3), "peak_bytes": ("memory_mib", 1 / 2**20)}


def schema() -> dict:
    """The policy JSON Schema shipped with costlab."""
    return json.loads(resources.files("costlab").joinpath("schemas/policy.schema.json").read_text())


@dataclass(frozen=True)
class Budgets:
    """What one request may cost.

    Args:
        latency_ms: Median warm latency per request, milliseconds.
        memory_mib: Peak tensor memory per request, MiB.
        margin: Limits keep the upper bound under `margin × budget`. Defaults to `0.9`.
    """

    latency_ms: float
    memory_mib: float
    margin: float = 0.9

    def __post_init__(self):
        for name in ("latency_ms", "memory_mib"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v <= 0:
                raise PolicyError(f"Expected a positive number for `{name}`. Received: {name}={v!r}")
        if not (0 < self.margin <= 1):
            raise PolicyError(f"Expected `margin` in (0, 1]. Received: margin={self.margin!r}")

    def to_dict(self) -> dict:
        return {"latency_ms": float(self.latency_ms), "memory_mib": float(self.memory_mib),
                "margin": float(self.margin)}


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
            inputs.append(InputSpec(name, spec["dtype"], tuple(spec["shape"]),
                                    ValueDomain(**spec.get("values", default))))
        dims = tuple(Dimension(n, lim["min"], lim["max"]) for n, lim in self.limits.items())
        return InputSpace(tuple(inputs), dims)

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
    if version != SCHEMA_VERSION:
        raise PolicyError(f"Unsupported schema_version {version!r}; this costlab reads {SCHEMA_VERSION!r}")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise PolicyError(f"field `{where}`: {e.message}")
    for name, lim in data["limits"].items():
        if lim["min"] > lim["max"]:
            raise PolicyError(f"field `limits.{name}`: min={lim['min']} is larger than max={lim['max']}")


def _corner_costs(cost_models, dims, sizes) -> tuple[dict, dict]:
    X = pd.DataFrame({d: [sizes[d]] for d in dims})
    pred = {t: float(m.predict(X[m.dims_])[0]) for t, m in cost_models.items()}
    upper = {t: float(m.upper(X[m.dims_])[0]) for t, m in cost_models.items()}
    return pred, upper


def synthesize(cost_models: dict, budgets, *, space: InputSpace, model: dict | None = None,
               measured_on: dict | None = None, extrapolate: float = 1.0) -> Policy:
    """Choose the largest box of input sizes whose worst corner stays within budget.

    Args:
        cost_models: `{target: CostModel}`; targets in `BUDGET_OF_TARGET` are bounded by
            their budget, others are reported only.
        budgets: A `Budgets` or a dict of its fields.
        space: The input space that was profiled (inputs, dtypes, dimension ranges).
        model: The adapter's description (`Profile.model`). Defaults to `None`.
        measured_on: The host (`Profile.machine`). Defaults to `None`.
        extrapolate: Limits may reach this multiple of the largest size that was both
            measured and inside `space`. Defaults to `1.0` (never beyond either).

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
    bounded = {t: m for t, m in cost_models.items() if t in BUDGET_OF_TARGET}
    if not bounded:
        raise PolicyError(f"No cost model for a budgeted target {sorted(BUDGET_OF_TARGET)}. "
                          f"Received: {sorted(cost_models)}")
    if not extrapolate >= 1:
        raise PolicyError(f"Expected `extrapolate` >= 1. Received: extrapolate={extrapolate!r}")
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
    cap = {d: min(cap[d], hard.get(d, cap[d])) for d in dims}
    free = {d for d in dims if all(m.exponents_.get(d, {"power": 0, "log": 0}) == {"power": 0, "log": 0}
                                   for m in bounded.values())}

    def sizes_at(t):
        return {d: cap[d] if d in free else max(lo[d], int(np.floor(lo[d] * (cap[d] / lo[d]) ** t + 1e-9)))
                for d in dims}

    def over(sizes) -> dict:
        _, up = _corner_costs(bounded, dims, sizes)
        out = {}
        for t, u in up.items():
            key, scale = BUDGET_OF_TARGET[t]
            out[key] = u * scale / (getattr(budgets, key) * budgets.margin)
        return out

    start = over(sizes_at(0.0))
    if max(start.values()) > 1:
        key = max(start, key=start.get)
        raise PolicyError(
            f"Budget {key}={getattr(budgets, key)} cannot be met even by the smallest input "
            f"{sizes_at(0.0)}: its upper-bound cost is {start[key]:.2f}× the budget × margin")
    if max(over(sizes_at(1.0)).values()) <= 1:
        t, binding = 1.0, "measured range"  # (times `extrapolate`)
    else:
        a, b = 0.0, 1.0
        for _ in range(40):
            mid = (a + b) / 2
            a, b = (mid, b) if max(over(sizes_at(mid)).values()) <= 1 else (a, mid)
        t = a
        ratios = over(sizes_at(b))
        binding = {"latency_ms": "latency", "memory_mib": "memory"}[max(ratios, key=ratios.get)]
    final = sizes_at(t)
    pred, upper = _corner_costs(cost_models, dims, final)
    limits = {}
    for d in dims:
        by = "unconstrained" if d in free else binding
        if d in hard and final[d] >= hard[d] and by in ("measured range", "unconstrained"):
            by = "model limit"
        limits[d] = {"name": d, "min": int(lo[d]), "max": int(final[d]), "limited_by": by,
                     "predicted": pred, "upper": upper}
    inputs = {}
    for spec in space.inputs:
        inputs[spec.name] = {"dtype": spec.dtype, "shape": list(spec.shape),
                             "dims": [{"name": s, "min": int(lo[s]), "max": int(final[s])}
                                      for s in spec.shape if isinstance(s, str)],
                             "values": spec.values.to_dict()}
    data = {"schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "model": model or {"name": "unknown", "sha256": "0" * 64, "framework": "unknown", "versions": {}},
            "measured_on": measured_on or _default_machine(),
            "budgets": budgets.to_dict(), "inputs": inputs, "limits": limits,
            "complexity": {t: m.complexity_ for t, m in cost_models.items()}}
    return Policy(data)


def _default_machine() -> dict:
    from ._env import machine

    return machine()
