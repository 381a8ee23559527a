"""The costs a probe measures, their units and the budgets that bound them: one registry.

Every table of units in costlab reads `COSTS`: the plots' axes, the run summary, the
budget explorer, verify's bound check, `Budgets.targets` and the CI cost tests.

Example:
    >>> c = COSTS["peak_bytes"]
    >>> c.unit, c.scale * 2**20, c.budget
    ('MiB', 1.0, 'memory_mib')
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    """One measured cost: its column in `profile.csv`, a label, the unit it is shown in
    (`value × scale`), the short unit of one-line summaries, and the `Budgets` field that
    bounds it (`None`: not budgeted)."""

    column: str
    label: str
    unit: str
    scale: float
    short: str
    budget: str | None = None

    def show(self, value: float, fmt: str = ".2f") -> str:
        return f"{value * self.scale:{fmt}} {self.short}"


COSTS = {c.column: c for c in (
    Cost("wall_s_median", "median wall time", "ms", 1e3, "ms", "latency_ms"),
    Cost("wall_s_p95", "p95 wall time", "ms", 1e3, "ms p95"),
    Cost("wall_s_p99", "p99 wall time", "ms", 1e3, "ms p99", "latency_p99_ms"),
    Cost("wall_s_min", "fastest wall time", "ms", 1e3, "ms min"),
    Cost("cold_s", "first-call wall time", "ms", 1e3, "ms cold"),
    Cost("peak_bytes", "peak memory", "MiB", 1 / 2**20, "MiB", "memory_mib"),
    Cost("process_peak_bytes", "process peak memory", "MiB", 1 / 2**20, "MiB process"),
)}

#: The budgeted costs, in the order summaries list them.
BUDGETED = {k: c for k, c in COSTS.items() if c.budget}
