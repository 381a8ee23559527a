"""Budgets: what a request may cost (latency, memory), and the safety margin."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from costlab.errors import PolicyError
from costlab.measurement.costs import BUDGETED


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
        from costlab.inputs.space import _read_mapping

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
        return {k: (c.budget, c.scale) for k, c in BUDGETED.items() if getattr(self, c.budget) is not None}

    def ratios(self, costs: dict, *, margin: bool = True) -> dict:
        """`{target: cost / (margin × budget)}` for each budgeted target in `costs` (costs in
        their columns' units, `costlab.measurement.costs.COSTS`: seconds, bytes; scalars or
        arrays). `margin=False` divides by the budget alone. The one cost-over-budget ratio."""
        out = {}
        for t, (key, scale) in self.targets().items():
            if t in costs and costs[t] is not None:
                out[t] = np.asarray(costs[t], dtype=float) * scale / (getattr(self, key) * (self.margin if margin else 1.0))
        return out

    def ratio(self, costs: dict, *, margin: bool = True):
        """The largest of `ratios` (elementwise for arrays): 1.0 is at margin × budget."""
        r = [np.asarray(v) for v in self.ratios(costs, margin=margin).values()]
        return np.maximum.reduce(r) if r else np.float64(0.0)

    def within_margin(self, latency_ms: float, memory_mib: float, latency_p99_ms: float | None = None,
                      scale: float = 1.0) -> bool:
        """Whether one measurement is within margin × budget: latencies read at `scale` ×
        the measured ones (the speed a policy plans for, `costlab.profiling.speed.planned_scale`);
        the tail latency only when it is budgeted and measured. The one budget check."""
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
