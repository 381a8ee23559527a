"""Verify a policy empirically: measure inputs at and inside its limits."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from . import strategies
from .measure import measure
from .policy import Policy


@dataclass
class VerifyReport:
    """Measured probes and the violations among them.

    Attributes:
        table: One row per probe: sizes, `kind` (`corner`, `edge:<dim>`, `floor`,
            `hypothesis`), measured cost, `latency_ms`, `memory_mib`, and `violation`
            (empty when within budget).
    """

    table: pd.DataFrame
    policy: Policy

    @property
    def violations(self) -> pd.DataFrame:
        return self.table[self.table["violation"] != ""]

    @property
    def ok(self) -> bool:
        return len(self.violations) == 0

    def summary(self) -> str:
        b = self.policy.budgets
        lines = [f"verified {len(self.table)} probes against latency_ms={b.latency_ms:g}, "
                 f"memory_mib={b.memory_mib:g}: {len(self.violations)} violation(s)"]
        for _, r in self.violations.iterrows():
            lines.append(f"  VIOLATION {r['kind']} {r['input_shapes']}: {r['violation']}")
        return "\n".join(lines)


def verify(model, policy: Policy, *, examples: int = 12, seed: int = 0, min_repeats: int = 5,
           probe_time_s: float = 0.5, progress: bool | None = None) -> VerifyReport:
    """Measure inputs at the policy's corner, its edges and drawn from inside it.

    Args:
        model: A Keras model or adapter.
        policy: The policy to check.
        examples: Inputs drawn by Hypothesis inside the limits. Defaults to `12`.
        seed: Seed for values and draws. Defaults to `0`.
        min_repeats: Fewest warm calls per probe. Defaults to `5`.
        probe_time_s: Time after which a probe stops repeating. Defaults to `0.5`.
        progress: Show a progress bar; `None` only on a terminal. Defaults to `None`.

    Returns:
        A `VerifyReport`.
    """
    from tqdm.auto import tqdm

    from .adapters import adapt

    adapter = adapt(model)
    space = policy.space
    memory = adapter.memory_source()
    lo = {d.name: d.min for d in space.dims}
    hi = {d.name: d.max for d in space.dims}
    points = [("corner", hi), ("floor", lo)]
    points += [(f"edge:{d}", {**lo, d: hi[d]}) for d in space.dim_names if len(space.dims) > 1]
    probes = [(k, s, space.random_inputs(s, seed=seed + i)) for i, (k, s) in enumerate(points)]
    drawn = strategies.draw_examples(strategies.from_input_space(space), examples, seed=seed)
    probes += [("hypothesis", space.sizes_of(inp), inp) for inp in drawn]
    b = policy.budgets
    rows = []
    for kind, sizes, inputs in tqdm(probes, desc=f"verify {adapter.name}", unit="probe",
                                    disable=None if progress is None else not progress, leave=False):
        fed = adapter.prepare(inputs) if hasattr(adapter, "prepare") else inputs
        r = measure(lambda fed=fed: adapter(fed), memory=memory, min_repeats=min_repeats,
                    time_budget_s=probe_time_s)
        lat = (r["wall_s_median"] or 0) * 1e3
        mem = (r["peak_bytes"] or 0) / 2**20
        problems = []
        if r["status"] != "ok":
            problems.append(f"{r['status']}: {r['error']}")
        if lat > b.latency_ms:
            problems.append(f"latency {lat:.2f} ms > {b.latency_ms:g} ms")
        if mem > b.memory_mib:
            problems.append(f"memory {mem:.2f} MiB > {b.memory_mib:g} MiB")
        rows.append({**sizes, "kind": kind,
                     "input_shapes": json.dumps({k: list(v.shape) for k, v in inputs.items()}),
                     "status": r["status"], "latency_ms": lat, "memory_mib": mem,
                     "repeats": r["repeats"], "violation": "; ".join(problems)})
    return VerifyReport(pd.DataFrame(rows), policy)
