"""What the serving stack needs from a policy: the request section (payload bytes, timeout), serving (concurrency, rate, memory) and shape buckets."""

from __future__ import annotations

import math

import numpy as np

from costlab.errors import PolicyError
from costlab.policy.region import _frame

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
    # request in flight (`costlab.runtime.throughput`'s processes mode): each holds its own copy.
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
    from costlab._env import machine

    return machine()
