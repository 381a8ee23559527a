"""Concurrent calls of one model in one process: what each process of a throughput
measurement executes (`costlab.runtime.throughput.measure` starts them), in a worker or
in-process."""

from __future__ import annotations

import threading
import time

import numpy as np

from costlab.measurement.timing import first_line


def run(adapter, inputs, *, concurrency: int, duration_s: float, warmup: int = 2,
        start_at: float | None = None) -> dict:
    """Call `adapter(inputs)` from `concurrency` threads (this one alone for 1) for `duration_s` seconds
    (from the wall-clock time `start_at`, after the warm-up, when given: so several
    processes send at once).

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
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[str] = []
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def client(i):
        if concurrency > 1:
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

    # one client calls from this thread (a model bound to the thread that loaded it works),
    # several from threads of their own
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads if concurrency > 1 else ():
        t.start()
    t0 = time.perf_counter()
    stop_at[0] = t0 + duration_s
    if concurrency > 1:
        start.wait()
        for t in threads:
            t.join()
    else:
        client(0)
    seconds = time.perf_counter() - t0
    lat = np.concatenate([np.asarray(x) for x in latencies]) if any(latencies) else np.array([np.nan])
    if errors:
        return {"status": "error", "error": errors[0], "concurrency": concurrency}
    return figures(lat, seconds, concurrency)


def figures(lat: np.ndarray, seconds: float, concurrency: int) -> dict:
    return {"status": "ok", "error": "", "rps": float(lat.size / seconds), "requests": int(lat.size),
            "seconds": float(seconds), "concurrency": int(concurrency),
            "latency_ms_p50": float(np.percentile(lat, 50) * 1e3),
            "latency_ms_p99": float(np.percentile(lat, 99) * 1e3),
            "latencies": lat.tolist()}
