"""Verify a policy empirically: measure inputs inside its limits, and how tight they are.

`verify` measures, in isolated worker processes, inputs admitted by the policy with the
weight on its boundary: the most expensive admitted input the policy names
(`worst_admitted`), each dimension at its maximum with the others as large as the joint
budgets allow, points spread over the admitted region's upper frontier, and inputs drawn by
Hypothesis (sizes biased to their bounds, values including degenerate patterns) pushed
onto the region. Every probe is compared with the budgets (not the margin: a violation is
a request that costs more than the user allowed). Then, for every limit a budget set
(`limited_by` latency or memory), the real boundary is found by bisection with direct
measurement, starting from that limit's most expensive admitted input and moving only
its own size, up to the size where the measured cost passes `margin × budget` — the
boundary the policy was asked to keep inside. For a joint budget each step measures the
newly admitted inputs a smooth ranking calls most expensive and inputs spread along the
whole new maximum: a kernel or threading step can make inputs the ranking calls cheap
cost more (zoo:sponge's loop past about 560 token positions per pass,
`benchmarks/sponge_step.py`). Each step measures its input `draws` times
(5, fresh values each) and counts as within only when every draw is: a limit is set from
an upper bound of the cost (a high quantile of its measurements, not one measurement), so
its boundary is where that quantile reaches the budget — the search converges where the
`2^(-1/draws)` quantile (0.87 for 5) does. When nothing past the limit is within, the
limit's own edge is measured the same way, and when that is over margin × budget too the
boundary is bisected under the limit (from half of it). Tightness is the
limit over that boundary (1.0 = the limit is the boundary; over 1 = the limit admits
inputs past it).

A policy from a run that measured the machine's speed (`machine_speed`, `costlab.profiling.speed`)
plans for the slow quantile of that speed. Verify measures the same reference input
(a pulse) every few probes in a worker of its own, so it knows how fast the machine runs now
against the run's median (`index` on each row). Violations are judged on the raw
measurements. The boundary search reads each latency at the speed the policy plans for
(measured × factor / index now), so tightness compares the limit with the boundary at the
same machine speed, not with whatever stretch of a shared host verify happened to run in.

Probes run in workers that each take at most the policy's `shapes.max_distinct` distinct
shapes (`ShapeCapped`), as a process behind the guard does: a model can slow down as
shapes accumulate in one process (zoo:masked, `benchmarks/shape_drift.py`). A policy
planned for that drift (`shapes.drift.planned_ms` > 0) holds where a process at its cap
runs (or at the count the drift was read at, when lower: a policy without a cap), and that
is the boundary it is measured against: the boundary search's workers each first take all
but `SEARCH_RESERVE` (an eighth) of those shapes in distinct admitted ones (those the drift
check sends, `costlab.runtime.drift.stream_sizes`), one call each, and take no more than that count
in all, so every search measurement is made in a process holding between 7/8 of it and all
of it. The probes before run in workers holding 0 to the cap, as a server's processes do
over their lives.

A policy whose curves were measured with a value pattern (`value_pattern`: the values
that cost the model most, `costlab.profiling.values.scan`) is verified with the same values at every
named point, frontier point and boundary step; the Hypothesis draws bring random values
and the other patterns.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from costlab._search import bisect, log_int
from costlab.errors import CostlabError
from costlab.measurement.costs import BUDGETED
from costlab.policy import Policy, Region, admitted_stream, edge_points
from costlab.profiling import speed


@dataclass
class VerifyReport:
    """Measured probes, the violations among them, and the tightness of each limit.

    Attributes:
        table: One row per probe: sizes, `kind` (`worst`, `edge:<dim>`, `floor`,
            `frontier`, `hypothesis`), `status`, `latency_ms` (median), `latency_p99_ms`,
            `memory_mib` (peak), `repeats`, `first_measure` (the three latencies when an
            over-budget probe was measured again), `index` (the machine-speed index when
            it was measured: the last pulses' time over the run's median, 1 without
            pulses), `values` (the value pattern verify built the input with, the
            policy's `value_pattern`; `drawn` for Hypothesis's), `pulse_index` (the last
            pulse alone, unsmoothed), `parallelism` (CPU
            time / wall time of the median call: the cores it got), and `violation` (empty
            when within budget).
        tightness: One row per budget-set limit, and per limit at the measured range (measured
            up to `RANGE_STEP` × it, to show the budget's boundary lies beyond): `limit` (a
            dimension or a joint budget), `limited_by`, `value` (the policy's maximum), `boundary` (largest size measured within
            margin × budget along it), `exact` (bracketed to 1%; False when the search
            stopped at its range or step count: the boundary is at least that), `tightness`
            (value / boundary), `probes` (measurements the search took), `draws`
            (measurements per input at each step; a step is within when all are),
            `filled` (as `filled` below).
        speed: Pulses measured here against the policy's `machine_speed`: `pulses`,
            `reference_s` (the run's), `factor` (planned for), the index's `p50` and `max`
            here; `None` for a policy without `machine_speed` or with `pulse=0`.
        searched: Every measurement of the boundary search: the probe's columns as in
            `table` (`kind` `tight:<limit>`), its `step` and `draw` at that step, and whether it was
            `within` margin × budget (at the planned speed); `None` without tightness.
        workers: Worker processes the probes ran in (0: in this process).
        shape_cap: Distinct shapes one worker took at most (the policy's
            `shapes.max_distinct`), or `None`.
        filled: Distinct admitted shapes each boundary-search worker took before it
            measured (a policy planned for shape drift: `held` less `SEARCH_RESERVE` of
            it), 0 when the search ran in the probes' workers.
        held: Distinct shapes at which the policy's drift plan applies (its cap, or the
            count the drift was read at when lower): each search worker took at most that
            many; 0 without a drift plan.
        over_bound: Every measured input whose cost exceeded the upper bound the policy's
            curves give it (`Policy.cost`), within budget or not: its sizes, `kind`,
            `target`, `measured`, `upper` (in the table's units) and `ratio` (measured /
            upper), largest first; empty when none did, `None` for a policy without curves.
            A bound that is wrong on a model shows here before it costs a violation.
    """

    table: pd.DataFrame
    policy: Policy
    tightness: pd.DataFrame | None = None
    speed: dict | None = None
    searched: pd.DataFrame | None = None
    workers: int = 0
    shape_cap: int | None = None
    filled: int = 0
    held: int = 0
    over_bound: pd.DataFrame | None = None
    fresh_note: str | None = None  # why the fresh-process corners were not sent, when they were not

    #: Measured columns against the policy's curves (`Policy.cost`), with their units.
    BOUND_COLUMNS = {k: (c.budget, c.scale) for k, c in BUDGETED.items()}

    @property
    def violations(self) -> pd.DataFrame:
        return self.table[self.table["violation"] != ""]

    @property
    def ok(self) -> bool:
        return len(self.violations) == 0

    def summary(self) -> str:
        b = self.policy.budgets
        p99 = f", latency_p99_ms={b.latency_p99_ms:g}" if b.latency_p99_ms else ""
        kinds = self.table["kind"].str.split(":").str[0].value_counts().to_dict()
        lines = [f"verified {len(self.table)} probes ({', '.join(f'{n} {k}' for k, n in kinds.items())}) against "
                 f"latency_ms={b.latency_ms:g}{p99}, memory_mib={b.memory_mib:g}: "
                 f"{len(self.violations)} violation(s)"]
        ok = self.table[self.table["status"] == "ok"]
        if len(ok):
            lines.append(f"  most expensive measured: {ok['latency_ms'].max():.2f} ms median latency "
                         f"({ok['latency_ms'].max() / b.latency_ms:.0%} of the budget), "
                         f"{ok['memory_mib'].max():.2f} MiB peak ({ok['memory_mib'].max() / b.memory_mib:.0%})")
        again = self.table[self.table["first_measure"] != ""] if "first_measure" in self.table else self.table[:0]
        if len(again):
            lines.append(f"  {len(again)} probe(s) over the latency budget at first were measured twice more "
                         f"(the median of three counts; three more once the machine was back within the planned "
                         f"speed, if it was slower): " + "; ".join(
                             f"{r['kind']} {r['input_shapes']}: {r['first_measure']}" for _, r in again.head(5).iterrows()))
        ob = self.over_bound
        if ob is not None and len(ob):
            top = ob.iloc[0]
            lines.append(f"  BOUND EXCEEDED at {ob['kind'].size} measurement(s): the policy's upper bound was under "
                         f"the measured cost; largest {top['ratio']:.2f}× ({top['target']} {top['measured']:.2f} "
                         f"against {top['upper']:.2f} at {top['input_shapes']})")
        elif ob is not None:
            lines.append("  every measured cost was within the upper bound the policy's curves give it")
        fresh = self.table[self.table["kind"].str.startswith("fresh:")]
        if self.fresh_note:
            lines.append(f"  NOT CHECKED in a fresh process: {self.fresh_note}")
        if len(fresh):
            refused = fresh[fresh["violation"] != ""]
            lines.append(f"  {len(fresh)} corners of the admitted region sent first to a freshly started worker "
                         f"(the floor first): " + ("the model ran every one" if refused.empty else
                                                   f"it refused {len(refused)}"))
        if self.shape_cap:
            lines.append(f"  measured in {self.workers} worker(s), each taking at most {self.shape_cap} distinct "
                         f"shapes (the policy's shapes.max_distinct)")
        sp = self.speed
        if sp:
            lines.append(f"  machine speed here ({sp['pulses']} pulses of the run's reference input): its time is "
                         f"{sp['p50']:.2f}× the run's median (max {sp['max']:.2f}×); the policy plans for up to "
                         f"{sp['factor']:.2f}×")
        for _, r in self.violations.iterrows():
            at = max(r.get("index", 1), r.get("pulse_index", 1))
            slow = (f" (measured at {at:.2f}× the run's median time, beyond the {sp['factor']:.2f}× planned)"
                    if sp and at > sp["factor"] else "")
            lines.append(f"  VIOLATION {r['kind']} {r['input_shapes']}: {r['violation']}{slow}")
        if self.tightness is not None and len(self.tightness):
            at = f", latency read at {sp['factor']:.2f}× the run's median time" if sp else ""
            k = int(self.tightness["draws"].iloc[0])
            drifted = (f"; measured in workers that first took {self.filled} of the {self.held} distinct "
                       f"shapes its shape drift was planned for" if self.filled else "")
            lines.append(f"tightness (limit / measured boundary at margin × budget, margin {b.margin:g}{at}; "
                         f"a step is within when all {k} draws are{drifted}):")
            for _, r in self.tightness.iterrows():
                beyond = (" (the measured range: the budget's boundary lies beyond it)"
                          if r.get("limited_by") == "measured range" and r["boundary"] > r["value"] else "")
                lines.append(f"  {r['limit']:14s} limit {r['value']:>7d}  boundary {'' if r['exact'] else '≥ '}"
                             f"{r['boundary']:>7d}  tightness {r['tightness']:.2f}  ({r['probes']} probes){beyond}")
        return "\n".join(lines)


def _fresh_corners(adapter, space, region, edges, *, values, seed, backend, memory_cap_mib,
                   timeout_s) -> tuple[list[dict], str | None]:
    """Rows of the fresh-process check (`verify`'s `fresh`): the floor first, in one fresh
    worker; no rows and why, when the model cannot be sent to a worker (a closure)."""
    from costlab.profiling.validity import Judge

    dims = space.dim_names
    corners = [("fresh:floor", dict(region.lo))]
    corners += [(f"fresh:max:{d}", {**region.lo, d: region.hi[d]}) for d in dims if region.hi[d] > region.lo[d]]
    corners += [(f"fresh:edge:{d}", s) for d, s in edges.items() if s != {**region.lo, d: region.hi[d]}]
    judge = Judge(adapter, space, values=values, seed=seed, memory_cap_mib=memory_cap_mib, timeout_s=timeout_s,
                   env={"KERAS_BACKEND": backend} if backend else None)
    try:
        verdicts = judge.corners([s for _, s in corners])
    except CostlabError as exc:  # the model cannot be sent to a worker (e.g. a closure)
        return [], str(exc)
    finally:
        judge.close()
    rows = []
    for (kind, sizes), (valid, error), v in zip(corners, verdicts, judge.verdicts, strict=True):
        rows.append({**sizes, "kind": kind, "input_shapes": json.dumps({k: list(x) for k, x in space.shapes(sizes).items()}),
                     "values": values, "status": v["status"], "error": error, "latency_ms": 0.0, "latency_p99_ms": 0.0,
                     "memory_mib": 0.0, "repeats": 0, "index": 1.0, "pulse_index": 1.0, "parallelism": 0.0,
                     "first_measure": "",
                     "violation": "" if valid else f"error in a fresh process: {error}"})
    return rows, None


def verify(model, policy: Policy, *, probes: int = 200, seed: int = 0, tightness: bool = True,
           steps: int = 8, search_factor: float = 4.0, isolation: str = "subprocess",
           memory_cap_mib: float = 4096, timeout_s: float = 120.0, min_repeats: int = 3,
           probe_time_s: float = 0.2, backend: str | None = None, confirm: bool = True,
           pulse: int = 3, draws: int = 5, settle_s: float = 60.0,
           progress: bool | None = None, fresh: bool = True) -> VerifyReport:
    """Measure admitted inputs against the budgets, and each limit against its boundary.

    Args:
        model: A Keras model or adapter.
        policy: The policy to check.
        probes: Admitted inputs measured: the named points, then half the rest on the
            region's frontier and half drawn by Hypothesis. Defaults to `200`.
        seed: Seed for draws and values. Defaults to `0`.
        tightness: Also bisect each budget-set limit toward its measured boundary.
            Defaults to `True`.
        steps: Bisections per limit. Defaults to `8`.
        draws: Measurements per input at each bisection step (fresh values each): the
            step is within only when all of them are, so the search converges where the
            cost's `2^(-1/draws)` quantile (0.87 for 5) reaches margin × budget — the
            statistic a limit set from an upper bound keeps inside, where one draw per
            step would find where a single measurement happens to cross it. Defaults to `5`.
        fresh: First send the admitted region's corners to one freshly started worker,
            the floor first (nothing traced before it): each dimension at its minimum, each
            at its maximum with the others at their minimum, and each dimension's edge
            point (the joint budgets' end points). An input the model refuses there is a
            violation (`kind` `fresh:<corner>`): a server starts fresh, and a warm
            process can run inputs a fresh one refuses. Defaults to `True`.
        search_factor: The boundary search looks up to this multiple of each limit.
            Defaults to `4`.
        isolation: `"subprocess"` (workers under `memory_cap_mib` and `timeout_s`,
            default) or `"inprocess"`.
        memory_cap_mib: A probe's memory cap in its worker. Defaults to `4096`.
        timeout_s: A probe's timeout in its worker. Defaults to `120`.
        min_repeats: Fewest warm calls per probe. Defaults to `3`.
        probe_time_s: Time after which a probe stops repeating. Defaults to `0.2`.
        backend: Keras backend of the workers. Defaults to `None`.
        confirm: A probe over budget is measured twice more once every other probe is
            done: latency is judged by the median of the three (all three kept in
            `first_measure`), memory by the largest, and a failure at once. Defaults to `True`.
        settle_s: With pulses, an input still over the latency budget after those three,
            measured while the machine ran slower than the policy's `machine_speed.factor`
            (the running index, or a raw pulse next to any of the three, read above it, or
            one of the three was crowded off a core: `costlab.profiling.speed.crowded`),
            is measured three more times once pulses read the machine back within that
            factor, and those three decide; verify waits up to this long for it (the
            three slow ones stand if it does not come back). Defaults to `60`.
        pulse: For a policy with `machine_speed`, measure its reference input before every
            `pulse`-th probe: each row's `index`, and the boundary search reads latency at
            the planned speed (module docstring). `0`: no pulses, raw latencies throughout.
            Defaults to `3`.
        progress: Show a progress bar; `None` only on a terminal. Defaults to `None`.

    Returns:
        A `VerifyReport`.

    Raises:
        CostlabError: Bad arguments.
    """
    from tqdm.auto import tqdm

    from costlab.adapters import adapt
    from costlab.measurement.executors import InProcess, Subprocess

    if not isinstance(probes, int) or isinstance(probes, bool) or probes < 1:
        raise CostlabError(f"Expected a positive integer `probes`. Received: probes={probes!r}")
    if not isinstance(policy, Policy):
        raise CostlabError(f"Expected a costlab Policy. Received: {type(policy).__name__}")
    if not isinstance(draws, int) or isinstance(draws, bool) or draws < 1:
        raise CostlabError(f"Expected a positive integer `draws`. Received: draws={draws!r}")
    if not isinstance(pulse, int) or isinstance(pulse, bool) or pulse < 0:
        raise CostlabError(f"Expected a non-negative integer `pulse`. Received: pulse={pulse!r}")
    adapter = adapt(model)
    space = policy.space
    region = policy.region()
    dims = space.dim_names
    worst = (policy.worst_admitted or {}).get("sizes") or dict(region.hi)
    worst = region.onto({d: worst.get(d, region.hi[d]) for d in dims})
    edges = edge_points(region, dims)
    named = [("worst", worst), ("floor", dict(region.lo))] + [(f"edge:{d}", s) for d, s in edges.items()]
    # The values the policy's curves were measured with (`value_pattern`, the scan's worst),
    # for every input verify builds itself; Hypothesis's draws bring random and other values.
    values = policy.value_pattern
    points = [(k, s, space.pattern_inputs(s, seed=seed + i, values=values)) for i, (k, s) in enumerate(named)]
    points += admitted_stream(policy, max(0, probes - len(points)), seed=seed)
    b = policy.budgets
    kw = dict(min_repeats=min_repeats, max_repeats=max(min_repeats, 50), time_budget_s=probe_time_s)
    cap = policy.shapes.get("max_distinct")
    if isolation == "inprocess" and backend is None:
        executor = InProcess(adapter, **kw)
    else:
        # A server under the policy's shape cap never shows one process more distinct shapes
        # than `shapes.max_distinct` (the guard answers 429 past it), and a model can slow
        # down as shapes accumulate in a process: so a worker takes at most that many.
        executor = ShapeCapped(lambda: Subprocess(adapter, memory_cap_mib=memory_cap_mib, timeout_s=timeout_s,
                                                  env={"KERAS_BACKEND": backend} if backend else None, **kw),
                               cap)
    rows, tight, searched = [], [], []
    # first, so nothing this process runs later is traced in the fresh worker
    fresh_rows, fresh_note = (_fresh_corners(adapter, space, region, edges, values=values, seed=seed,
                                             backend=backend, memory_cap_mib=memory_cap_mib, timeout_s=timeout_s)
                              if fresh else ([], None))
    drift = policy.shapes.get("drift") or {}
    # the shapes a process holds where the policy's drift plan applies: its cap, or the
    # count the drift was read at when that is lower (a policy without a cap)
    held = min(cap or drift.get("shapes") or 0, drift.get("shapes") or 0) if drift.get("planned_ms") else 0
    filled = held - max(1, math.ceil(held * SEARCH_RESERVE)) if held > 1 and isinstance(executor, ShapeCapped) else 0
    machine = policy.machine_speed if pulse else None
    pulses, count = [], [0]
    bar = tqdm(total=len(points), desc=f"verify {adapter.name}", unit="probe",
               disable=None if progress is None else not progress, leave=False)

    def pulse_now():
        ref = {d: int(v) for d, v in machine["reference"].items()}
        pr = executor.pulse(space.random_inputs(ref, seed=speed.PULSE_SEED))
        pulses.append({"kind": speed.KIND, "status": pr["status"], "wall_s_median": pr.get("wall_s_median")})

    def pulse_after() -> float:
        # one pulse right after a measurement: the raw index on its other side
        pulse_now()
        return speed.latest(pulses, machine["reference_s"], n=1)

    def back_to_planned_speed() -> bool:
        # pulses until the last three read within the planned factor, for up to settle_s
        start = time.monotonic()
        while True:
            pulse_now()
            if speed.latest(pulses, machine["reference_s"], n=3) <= machine["factor"]:
                return True
            if time.monotonic() - start > settle_s:
                return False
            time.sleep(1.0)

    def measure(kind, sizes, inputs, i):
        if machine and count[0] % pulse == 0:
            pulse_now()
        count[0] += 1
        inputs = inputs if inputs is not None else space.pattern_inputs(sizes, seed=seed + 1000 + i, values=values)
        r = executor.probe(inputs)
        lat = (r.get("wall_s_median") or 0) * 1e3
        p99 = (r.get("wall_s_p99") or 0) * 1e3
        mem = (r.get("peak_bytes") or 0) / 2**20
        return {**sizes, "kind": kind, "input_shapes": json.dumps({k: list(v.shape) for k, v in inputs.items()}),
                "values": "drawn" if kind == "hypothesis" else values,
                "status": r["status"], "error": r.get("error") or "", "latency_ms": lat, "latency_p99_ms": p99,
                "memory_mib": mem, "repeats": r.get("repeats"),
                "index": speed.latest(pulses, machine["reference_s"]) if machine else 1.0,
                "pulse_index": speed.latest(pulses, machine["reference_s"], n=1) if machine else 1.0,
                "parallelism": (r.get("cpu_s_median") or 0) / r["wall_s_median"] if r.get("wall_s_median") else 0.0}

    def problems(row) -> list[str]:
        out = []
        if row["status"] != "ok":
            out.append(f"{row['status']}: {row['error']}")
        if row["latency_ms"] > b.latency_ms:
            out.append(f"latency {row['latency_ms']:.2f} ms > {b.latency_ms:g} ms")
        if b.latency_p99_ms and row["latency_p99_ms"] > b.latency_p99_ms:
            out.append(f"p99 latency {row['latency_p99_ms']:.2f} ms > {b.latency_p99_ms:g} ms")
        if row["memory_mib"] > b.memory_mib:
            out.append(f"memory {row['memory_mib']:.2f} MiB > {b.memory_mib:g} MiB")
        return out

    with executor:
        for i, (kind, sizes, inputs) in enumerate(points):
            row = measure(kind, sizes, inputs, i)
            rows.append({**row, "first_measure": "", "violation": "; ".join(problems(row))})
            bar.update()
        bar.close()
        if confirm:
            # A timing over budget must reproduce: a slow stretch of a shared machine (or of a
            # worker's first seconds) is not the model's cost. Each such input is measured
            # twice more, after every other probe; the median of the three counts.
            for i, row in enumerate(rows):
                if not row["violation"] or row["status"] != "ok":
                    continue
                kind, sizes, inputs = points[i]
                trio = [row, *(measure(kind, sizes, inputs, i) for _ in range(2))]
                merged = _median_of(trio)
                note = ""
                if (machine and merged["status"] == "ok" and problems(merged)
                        and all(p.startswith(("latency", "p99")) for p in problems(merged))
                        and (why := _beyond_planned(trio, pulse_after(), machine["factor"]))):
                    # Over the latency budget while the machine ran slower than the policy
                    # plans for: once it is back within that speed, three more measurements
                    # decide. If it does not come back within settle_s, the first three stand.
                    if back_to_planned_speed():
                        slow, trio = trio, [measure(kind, sizes, inputs, i) for _ in range(3)]
                        merged = _median_of(trio)
                        before = ", ".join(f"{r['latency_ms']:.2f}" for r in slow)
                        note = f" after {before} ms {why}"
                seen = ", ".join(f"{r['latency_ms']:.2f}" for r in trio)
                merged["first_measure"] = f"latency {seen} ms{note}"
                rows[i] = {**merged, "violation": "; ".join(problems(merged))}
        if tightness:
            factor = float(machine["factor"]) if machine else 1.0
            if filled:
                # the boundary of a policy planned for shape drift is where a process holding
                # the shapes it was planned for runs: the search's workers first take all but
                # a reserve of them
                from costlab.runtime.drift import stream_sizes

                executor.refill([space.pattern_inputs(s, seed=seed + 20_000 + i, values=values)
                                 for i, s in enumerate(stream_sizes(policy, filled, seed=seed + 1))], held)
            tight = _tightness(policy, region, edges, rows, measure, steps, search_factor, factor, draws,
                               searched, filled)
    seen = [p["wall_s_median"] / machine["reference_s"] for p in pulses if p["status"] == "ok"] if machine else []
    info = ({"pulses": len(seen), "reference_s": machine["reference_s"], "factor": machine["factor"],
             "p50": float(np.median(seen)), "max": float(np.max(seen))} if seen else None)
    table = pd.DataFrame(rows + fresh_rows)
    return VerifyReport(table, policy, pd.DataFrame(tight, columns=[
        "limit", "limited_by", "value", "boundary", "exact", "tightness", "probes", "draws", "filled"]), info,
        pd.DataFrame(searched) if tightness else None, getattr(executor, "workers", 0),
        cap if isinstance(executor, ShapeCapped) else None, filled if tightness else 0, held if tightness else 0,
        _over_bound(policy, table, dims), fresh_note)


def _over_bound(policy: Policy, table: pd.DataFrame, dims) -> pd.DataFrame | None:
    """The measured rows whose cost exceeded the policy's upper bound (`VerifyReport.over_bound`)."""
    if not policy.data.get("curves"):
        return None
    cols = [*dims, "kind", "input_shapes", "target", "measured", "upper", "ratio"]
    ok = table[(table["status"] == "ok") & ~table["kind"].str.startswith("fresh:")]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    up = policy.cost(ok[dims].astype(int).reset_index(drop=True))["upper"]
    out = []
    for t, (col, unit) in VerifyReport.BOUND_COLUMNS.items():
        if t not in up:
            continue
        bound = np.asarray(up[t]) * unit
        measured = ok[col].to_numpy(float)
        for i in np.flatnonzero(measured > bound):
            r = ok.iloc[i]
            out.append({**{d: int(r[d]) for d in dims}, "kind": r["kind"], "input_shapes": r["input_shapes"],
                        "target": t, "measured": float(measured[i]), "upper": float(bound[i]),
                        "ratio": float(measured[i] / bound[i])})
    return pd.DataFrame(out, columns=cols).sort_values("ratio", ascending=False, ignore_index=True)


class ShapeCapped:
    """Workers that each see at most `cap` distinct input shapes, as a server enforcing a
    policy's `shapes.max_distinct` does: a probe whose shape would be one too many for the
    current worker goes to a fresh one (`make()`). `cap=None`: one worker throughout.

    Attributes:
        workers: Workers started so far.
        cap: The cap.
    """

    def __init__(self, make, cap: int | None):
        self.make, self.cap = make, (int(cap) if cap else None)
        self.executor, self.seen, self.workers = make(), set(), 1
        self.pulser = None  # the reference input's executor: its shape counts against no worker
        self.fill: list = []  # inputs each fresh worker takes first, one untimed call each (`refill`)

    @staticmethod
    def _key(inputs: dict) -> tuple:
        return tuple(sorted((k, tuple(np.shape(v))) for k, v in inputs.items()))

    def _fresh(self):
        self.executor.close()
        self.executor, self.seen = self.make(), set()
        self.workers += 1
        if self.fill:
            timed, self.executor.measure_kw = self.executor.measure_kw, dict(min_repeats=1, max_repeats=1,
                                                                             time_budget_s=0.0)
            try:
                for x in self.fill:
                    self.seen.add(self._key(x))
                    self.executor.probe(x)
            finally:
                self.executor.measure_kw = timed

    def refill(self, fill: list, cap: int | None = None) -> None:
        """From now on each worker, this one too (a fresh one is started), first takes the
        shapes of `fill` (one call each), and takes at most `cap` shapes in all (`None`: the
        cap so far): the probes after it run in a process that holds between
        `len(fill)` and `cap` distinct shapes."""
        self.fill = list(fill)
        self.cap = int(cap) if cap else self.cap
        self._fresh()

    def pulse(self, inputs: dict) -> dict:
        """Measure the machine-speed reference input in an executor of its own, which lives
        through every probe worker (`Subprocess.pulse`)."""
        if self.pulser is None:
            self.pulser = self.make()
        return self.pulser.pulse(inputs)

    def probe(self, inputs: dict) -> dict:
        key = self._key(inputs)
        if self.cap and key not in self.seen and len(self.seen) >= self.cap:
            self._fresh()
        self.seen.add(key)
        return self.executor.probe(inputs)

    def close(self):
        self.executor.close()
        if self.pulser is not None:
            self.pulser.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _beyond_planned(trio: list[dict], after: float, factor: float) -> str:
    """Why measurements of one input count as taken while the machine ran slower than the
    planned `factor` ('' when they do not): the index (running median of pulses) at the
    median one, or any raw pulse next to them (the last before each, the one taken right
    `after`), reads above it, or one of them was crowded off a core (its CPU parallelism
    under `speed.CROWDED_SHARE` × the best of the three, where that shows more than
    `speed.CROWDED_MIN_PARALLEL` cores) — the rule `costlab.profiling.speed.beyond` applies to a
    profile's rows before they calibrate a bound."""
    slowest = max(_median_of(trio).get("index", 1.0), after,
                  *(r.get("pulse_index", r.get("index", 1.0)) for r in trio))
    par = [r.get("parallelism", 0.0) for r in trio]
    if max(par) > speed.CROWDED_MIN_PARALLEL and min(par) < speed.CROWDED_SHARE * max(par):
        return f"one crowded off a core: {min(par):.2f} cores' worth against {max(par):.2f}"
    return f"at {slowest:.2f}× the run's median time" if slowest > factor else ""


def _median_of(rows: list[dict]) -> dict:
    """Several measurements of one input as one row: the median latency's row, the largest
    memory, failed if any failed."""
    mid = sorted(rows, key=lambda r: r["latency_ms"])[len(rows) // 2]
    failed = [r for r in rows if r["status"] != "ok"]
    return {**mid, "memory_mib": max(r["memory_mib"] for r in rows),
            "status": failed[0]["status"] if failed else "ok", "error": failed[0]["error"] if failed else mid["error"]}


def _within(row, budgets, factor: float = 1.0) -> bool:
    """Within margin × budget, latencies read at `factor` × the run's median machine time
    (measured / the row's `index` × factor)."""
    return row["status"] == "ok" and budgets.within_margin(
        row["latency_ms"], row["memory_mib"], row["latency_p99_ms"], factor / row.get("index", 1.0))


def bisect_limit(at, start: int, top: int, steps: int, *, edge=None, bottom: int = 1,
            floor: int = 1) -> tuple[int, bool, int]:
    """Largest size in [start, top] where `at(size)` is within budget, by log bisection.
    Returns (size, exact, probes).

    `at(v)` measures what a limit of `v` newly admits over `start`'s, so `start` itself is
    assumed within. With `edge` (`edge(v)`: the inputs on a limit of `v`'s own edge), a
    search that found nothing past `start` checks that: when `start`'s edge is not within
    either, the boundary lies under the limit and is bisected in [`bottom`, `start`) with
    `edge` (`bottom` halved until within, never under `floor`, the smallest size there
    is), so a limit past its boundary reads a tightness over 1 rather than 1.00.
    """
    def narrow(within, good, bad, n, last):
        good, bad, k = bisect(within, good, bad, mid=log_int(), steps=max(0, last - n))
        return good, bad, n + k

    n = 1
    if at(top):
        return top, False, n
    good, bad, n = narrow(at, start, top, n, steps + 1)
    if good > start or edge is None or bottom >= start:
        return good, bad - good <= max(1, 0.01 * good), n
    n += 1
    if edge(start):
        return start, bad - start <= max(1, 0.01 * start), n
    good, bad = bottom, start
    n += 1
    while not edge(good):  # halve until within (a limit more than 2× past its boundary)
        if good <= floor:
            return good, False, n
        good, bad, n = max(floor, good // 2), good, n + 1
    # the bracket found: as many bisections as the outward search had
    good, bad, n = narrow(edge, good, bad, n, n + steps)
    return good, bad - good <= max(1, 0.01 * good), n


#: How far past a limit set by the measured range `verify` measures, to show the budget's
#: boundary lies beyond it.
RANGE_STEP = 1.25


def _tightness(policy, region, edges, rows, measure, steps, search_factor, factor=1.0, draws=1,
               searched=None, filled=0) -> list[dict]:
    budgets = policy.budgets
    hard = policy.model.get("hard_limits") or {}
    out, counter, step = [], [0], [0]
    searched = [] if searched is None else searched

    def probe(kind, sizes):
        # within only when every draw is (fresh values each); stops at the first that is not
        step[0] += 1
        for k in range(draws):
            counter[0] += 1
            row = measure(kind, sizes, None, 10_000 + counter[0])
            ok = _within(row, budgets, factor)
            searched.append({**row, "step": step[0], "draw": k, "within": ok})
            if not ok:
                return False
        return True

    valid_max = {d: v["max"] for d, v in ((policy.data.get("validity") or {}).get("limits") or {}).items()
                 if v.get("max") is not None}
    for d, lim in policy.limits.items():
        ranged = lim["limited_by"] == "measured range"
        if lim["limited_by"] not in ("latency", "latency p99", "memory", "measured range") or d not in edges:
            # model limit, unconstrained: no budget boundary to meet; a maximum set by a
            # joint budget is covered by that budget's own row
            continue
        base = edges[d]
        # a limit at the measured range: one step past it shows the boundary lies beyond
        # (or, if not within there, the boundary is bisected as for a budget-set limit)
        reach = RANGE_STEP if ranged else search_factor
        top = int(min(hard.get(d, math.inf), valid_max.get(d, math.inf),
                      max(base[d] + 1, math.ceil(base[d] * reach))))
        if top <= base[d]:
            continue
        before = counter[0]
        m = region.steps.get(d, 1)  # a divisor rule: bisect over its multiples, k × m
        floor = max(1, -(-int(region.lo[d]) // m))
        along = lambda k, base=base, d=d, m=m: probe(f"tight:{d}", {**base, d: k * m})  # noqa: E731
        found, exact, _ = bisect_limit(along, base[d] // m, max(base[d] // m + 1, top // m), steps, edge=along,
                                  bottom=max(floor, base[d] // m // 2), floor=floor)
        found *= m
        out.append({"limit": d, "limited_by": lim["limited_by"], "value": int(lim["max"]), "boundary": int(found),
                    "exact": bool(exact),
                    "tightness": lim["max"] / found, "probes": counter[0] - before, "draws": draws,
                    "filled": filled})
    rank = _ranker(rows, list(region.dims), budgets)
    for j in policy.joint:
        # The boundary of a joint budget: the largest product (each size plus its offset,
        # `costlab.policy.joint_value`) whose newly admitted inputs
        # all stay within margin × budget. At each step the two most expensive of them
        # (ranked by curves fitted on this verification's own probes), for each of its
        # dimensions the newly admitted input largest in that dimension, and
        # `JOINT_SPREAD` more spread over the new maximum are measured, most expensive first
        # (`joint_picks`).
        def at(value, j=j, edge=False):
            picks = joint_picks(region, j, value, rank, edge=edge)
            return all(probe(f"tight:{j['name']}", sizes) for sizes in picks)

        before = counter[0]
        # the smallest maximum that still admits an input: the region's smallest input's
        # measure (with offsets, well above 1: (1 + 45) × (8 + 391) for one masked policy)
        floor = int(math.ceil(region.value(pd.DataFrame([region.lo]), j["dims"])[0]))
        found, exact, _ = bisect_limit(at, int(j["max"]), int(j["max"] * search_factor), steps,
                                  edge=lambda v, j=j: at(v, j, edge=True), bottom=max(floor, int(j["max"]) // 2),
                                  floor=floor)
        out.append({"limit": j["name"], "limited_by": "joint budget", "value": int(j["max"]), "boundary": int(found),
                    "exact": bool(exact),
                    "tightness": j["max"] / found, "probes": counter[0] - before, "draws": draws,
                    "filled": filled})
    return out


def joint_picks(region, j: dict, value: float, rank, *, edge: bool = False, spread: int | None = None) -> list[dict]:
    """The inputs that decide whether a joint budget `j` may have maximum `value`, most
    expensive first (by `rank`, sizes → cost over budget): of the inputs a maximum of
    `value` newly admits over `j["max"]` (with `edge`: those on `value`'s own maximum), the
    two `rank` puts highest, per dimension of `j` the one largest in it, and `spread` (default
    `JOINT_SPREAD`) more spread over the outer ones, on the maximum within the integer
    sizes' rounding: a smooth ranking cannot see a kernel or threading step, past which
    inputs it ranks cheap cost more. Empty when `value` admits nothing new.

    Example: `joint_picks(policy.region(), policy.data["joint"][0], 1.2 * j["max"], rank)`.
    """
    spread = JOINT_SPREAD if spread is None else spread
    wider = Region(region.dims, region.lo, region.hi,
                    [(g, value if g == j["dims"] else m) for g, m in region.joint], region.offsets, region.steps)
    X = wider.frontier(n=32)
    v = wider.value(X, j["dims"])
    if not len(v):
        return []
    keep = v >= 0.97 * v.max() if edge else v > j["max"]
    new, prod = X[keep], v[keep]
    if new.empty:
        return []
    cost = rank(new)
    picks = list(np.argsort(-cost)[:2])
    for d in j["dims"]:
        col = new[d].to_numpy()
        top = np.flatnonzero(col == col.max())
        picks.append(int(top[np.argmax(prod[top])]))
    outer = np.flatnonzero(prod >= 0.97 * prod.max())
    picks += [int(outer[i]) for i in _spread(np.log(new[j["dims"]].to_numpy(float)[outer]),
                                             [int(np.argmax(cost[outer]))], spread)]
    picks = sorted(dict.fromkeys(int(i) for i in picks), key=lambda i: -cost[i])
    return [{d: int(new.iloc[i][d]) for d in region.dims} for i in picks]


#: Share of a drift-planned policy's shape cap left for the boundary search's own shapes:
#: each search worker first takes the rest (module docstring).
SEARCH_RESERVE = 1 / 8

#: Inputs spread over a joint budget's newly admitted frontier that each step of its
#: tightness search measures, besides the most expensive by the ranking and the largest
#: in each dimension (`_spread`).
JOINT_SPREAD = 6


def _spread(P: np.ndarray, chosen: list, n: int) -> list:
    """`chosen` plus up to `n` more row indices of points `P` (log sizes), each the
    farthest (each axis scaled by its range over `P`) from those already taken."""
    span = np.ptp(P, axis=0)
    Q = P / np.where(span > 0, span, 1.0)
    taken = list(dict.fromkeys(int(i) for i in chosen)) or [0]
    gap = np.min(((Q[:, None, :] - Q[None, taken, :]) ** 2).sum(axis=2), axis=1)
    for _ in range(n):
        i = int(np.argmax(gap))
        if gap[i] <= 0:
            break
        taken.append(i)
        gap = np.minimum(gap, ((Q - Q[i]) ** 2).sum(axis=1))
    return taken


def _ranker(rows, dims, budgets):
    """Cost relative to budget, from curves fitted on measured rows (falls back to the
    element count when they cannot be fitted)."""
    from costlab.curves import fit

    t = pd.DataFrame(rows)
    t = t[t["status"] == "ok"] if len(t) else t
    fits = []
    for col, budget in (("latency_ms", budgets.latency_ms), ("memory_mib", budgets.memory_mib)):
        try:
            fits.append((fit(t, col, dims=dims, resolution=0), budget))
        except Exception:  # noqa: BLE001 - too few distinct sizes: rank by size instead
            pass

    def rank(X):
        if not fits:
            return np.prod(X[dims].to_numpy(float), axis=1)
        return np.max([m.predict(X[dims]) / b for m, b in fits], axis=0)
    return rank
