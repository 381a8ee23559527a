"""Throughput under concurrency: the measured basis of a rate limit.

A rate limit must hold when every admitted request is the most expensive one. `measure`
sends the worst admitted input from `concurrency` clients at once for a fixed time and
counts completed requests; `costlab.measurement.concurrent.run` is what each measuring
process executes. The clients
are threads of one process (an isolated worker by default, the way a server runs) where
the model can be called from several threads at once, else one process each, each with
its own copy of the model, as a server of that model must run (`MODES`).
"""

from __future__ import annotations

import time

import numpy as np

from costlab.errors import CostlabError
from costlab.measurement.concurrent import figures, run

#: How the concurrent clients run: `threads` of one process, or one `processes` each.
MODES = ("threads", "processes")
#: Keras backends whose models cannot be called from two threads at once (JAX: "Buffer
#: has been deleted or donated"): measured with processes.
THREAD_UNSAFE_BACKENDS = ("jax",)


def measure(model, sizes: dict, *, concurrency: int, duration_s: float = 3.0, space=None, seed: int = 0,
            isolation: str = "subprocess", memory_cap_mib: float = 4096, timeout_s: float | None = None,
            backend: str | None = None, values: str = "random", mode: str | None = None) -> dict:
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
        mode: `"threads"` (the clients are threads of one process) or `"processes"` (one
            isolated worker each, started together, sending from the same moment). Defaults
            to `None`: processes for `THREAD_UNSAFE_BACKENDS`, else threads, and processes
            again when the threads fail where one client alone does not (a model that
            cannot be called from two threads at once).

    Returns:
        The figures of `run` (latencies pooled over the clients) plus `sizes`,
        `isolation`, `mode` and `copies` (processes holding a copy of the model).

    Raises:
        CostlabError: Bad arguments, or a run that failed (the message says how).
    """
    from costlab.adapters import adapt
    from costlab.inputs.space import InputSpace
    from costlab.measurement.executors import Subprocess

    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise CostlabError(f"Expected a positive integer `concurrency`. Received: {concurrency!r}")
    if not duration_s > 0:
        raise CostlabError(f"Expected a positive `duration_s`. Received: {duration_s!r}")
    if mode is not None and mode not in MODES:
        raise CostlabError(f"Expected `mode` to be one of {', '.join(MODES)} or None. Received: {mode!r}")
    adapter = adapt(model)
    space = space or InputSpace.from_model(adapter)
    inputs = space.pattern_inputs(sizes, seed=seed, values=values)
    if backend is not None:
        isolation = "subprocess"
    worker = dict(memory_cap_mib=memory_cap_mib, timeout_s=timeout_s or duration_s * 3 + 60,
                  env={"KERAS_BACKEND": backend} if backend else None)
    threads_error = None
    if mode == "threads" or (mode is None and backend not in THREAD_UNSAFE_BACKENDS):
        if isolation == "inprocess":
            out = run(adapter, inputs, concurrency=concurrency, duration_s=float(duration_s))
        else:
            with Subprocess(adapter, **worker) as ex:
                out = ex.task("throughput", inputs, concurrency=concurrency, duration_s=float(duration_s))
        used = "threads"
        if out.get("status") != "ok" and mode is None and concurrency > 1:
            threads_error = f"{out.get('status')}: {out.get('error')}"
    if mode == "processes" or threads_error is not None or (mode is None and backend in THREAD_UNSAFE_BACKENDS):
        out, used = _in_processes(adapter, inputs, concurrency, float(duration_s), worker), "processes"
        if out.get("status") == "ok" and threads_error is not None:
            out["threads_error"] = threads_error  # why the clients are processes
    if out.get("status") != "ok":
        raise CostlabError(f"The throughput run at {sizes} with concurrency {concurrency} ({used}) failed: "
                           f"{out.get('status')}: {out.get('error')}")
    out.pop("latencies", None)
    return {**out, "sizes": {k: int(v) for k, v in sizes.items()},
            "isolation": "subprocess" if used == "processes" else isolation, "mode": used,
            "copies": concurrency if used == "processes" else 1}


def _in_processes(adapter, inputs, concurrency: int, duration_s: float, worker: dict) -> dict:
    """`concurrency` isolated workers, one client each: all load the model and warm the
    input up (one measured probe), then send from the same wall-clock moment."""
    from concurrent.futures import ThreadPoolExecutor

    from costlab.measurement.executors import Subprocess

    executors = [Subprocess(adapter, **worker) for _ in range(concurrency)]
    try:
        with ThreadPoolExecutor(concurrency) as pool:  # the parent's threads only wait on pipes
            warm = list(pool.map(lambda ex: ex.probe(inputs), executors))
            bad = next((w for w in warm if w.get("status") != "ok"), None)
            if bad is not None:
                return {"status": bad.get("status"), "error": bad.get("error"), "concurrency": concurrency}
            start_at = time.time() + 0.25
            outs = list(pool.map(lambda ex: ex.task("throughput", inputs, concurrency=1, duration_s=duration_s,
                                                    start_at=start_at), executors))
    finally:
        for ex in executors:
            ex.close()
    bad = next((o for o in outs if o.get("status") != "ok"), None)
    if bad is not None:
        return {"status": bad.get("status"), "error": bad.get("error"), "concurrency": concurrency}
    lat = np.concatenate([np.asarray(o["latencies"]) for o in outs])
    return figures(lat, max(o["seconds"] for o in outs), concurrency)
