"""Throughput under concurrency: the measured basis of a rate limit.

A rate limit must hold when every admitted request is the most expensive one. `measure`
sends the worst admitted input from `concurrency` client threads at once for a fixed
time, in one process (an isolated worker by default, the way a server runs), and counts
completed requests; `run` is what that process executes.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from .errors import CostlabError
from .measure import first_line


def run(adapter, inputs, *, concurrency: int, duration_s: float, warmup: int = 2) -> dict:
    """Call `adapter(inputs)` from `concurrency` threads for `duration_s` seconds.

    Returns:
        `{"status", "error", "rps", "requests", "seconds", "concurrency",
        "latency_ms_p50", "latency_ms_p99"}`.
    """
    fed = adapter.prepare(inputs) if hasattr(adapter, "prepare") else inputs
    try:
        for _ in range(max(1, warmup)):
            adapter(fed)
    except Exception as exc:  # noqa: BLE001 - reported as the run's status
        return {"status": "error", "error": first_line(exc), "concurrency": concurrency}
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def client(i):
        start.wait()
        perf = time.perf_counter
        while perf() < stop_at[0]:
            t0 = perf()
            try:
                adapter(fed)
            except Exception as exc:  # noqa: BLE001
                errors.append(first_line(exc))
                return
            latencies[i].append(perf() - t0)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + duration_s
    start.wait()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    lat = np.concatenate([np.asarray(x) for x in latencies]) if any(latencies) else np.array([np.nan])
    if errors:
        return {"status": "error", "error": errors[0], "concurrency": concurrency}
    return {"status": "ok", "error": "", "rps": float(lat.size / seconds), "requests": int(lat.size),
            "seconds": float(seconds), "concurrency": int(concurrency),
            "latency_ms_p50": float(np.percentile(lat, 50) * 1e3),
            "latency_ms_p99": float(np.percentile(lat, 99) * 1e3)}


def measure(model, sizes: dict, *, concurrency: int, duration_s: float = 3.0, space=None, seed: int = 0,
            isolation: str = "subprocess", memory_cap_mib: float = 4096, timeout_s: float | None = None,
            backend: str | None = None, values: str = "random") -> dict:
    """Throughput of `model` at input sizes `sizes` with `concurrency` concurrent clients.

    Args:
        model: A Keras model or adapter.
        sizes: `{dimension: size}`, e.g. a policy's `worst_admitted.sizes`.
        concurrency: Client threads, e.g. a policy's `serving.max_concurrency`.
        duration_s: Seconds of sending after warm-up. Defaults to `3`.
        space: Input space for the values. Defaults to the model's own.
        seed: Seed for the input values. Defaults to `0`.
        isolation: `"subprocess"` (a fresh worker under `memory_cap_mib`) or `"inprocess"`.
        memory_cap_mib: The worker's memory cap. Defaults to `4096`.
        timeout_s: Longest wait. Defaults to `duration_s × 3 + 60`.
        backend: Keras backend of the worker. Defaults to `None`.
        values: The inputs' value pattern (`InputSpace.pattern_inputs`): the one the run measured
            with, so the rate is that of its worst values. Defaults to `"random"`.

    Returns:
        The figures of `run` plus `sizes` and `isolation`.

    Raises:
        CostlabError: Bad arguments, or a run that failed (the message says how).
    """
    from .adapters import adapt
    from .isolation import Subprocess
    from .space import InputSpace

    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise CostlabError(f"Expected a positive integer `concurrency`. Received: {concurrency!r}")
    if not duration_s > 0:
        raise CostlabError(f"Expected a positive `duration_s`. Received: {duration_s!r}")
    adapter = adapt(model)
    space = space or InputSpace.from_model(adapter)
    inputs = space.pattern_inputs(sizes, seed=seed, values=values)
    kw = {"concurrency": concurrency, "duration_s": float(duration_s)}
    if backend is not None:
        isolation = "subprocess"
    if isolation == "inprocess":
        out = run(adapter, inputs, **kw)
    else:
        with Subprocess(adapter, memory_cap_mib=memory_cap_mib, timeout_s=timeout_s or duration_s * 3 + 60,
                        env={"KERAS_BACKEND": backend} if backend else None) as ex:
            out = ex.task("throughput", inputs, **kw)
    if out.get("status") != "ok":
        raise CostlabError(f"The throughput run at {sizes} with concurrency {concurrency} failed: "
                           f"{out.get('status')}: {out.get('error')}")
    return {**out, "sizes": {k: int(v) for k, v in sizes.items()}, "isolation": isolation}
