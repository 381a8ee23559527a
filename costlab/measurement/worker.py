"""A probe worker: `python -m costlab.measurement.worker FD_IN FD_OUT` (started by `costlab.measurement.executors`).

Reads `{"ref", "memory_cap_bytes"}` from FD_IN, loads the model once, answers
`{"ready": ...}`, then for each `(inputs, measure_kw)` measures one probe under the
memory cap and sends back its row (or, when `measure_kw` has `"task": "throughput"`,
runs `costlab.measurement.concurrent.run`); `None` or a closed pipe ends it.
"""

from __future__ import annotations

import os
import resource
import sys
from multiprocessing.connection import Connection


def _import(spec: str):
    from costlab.loading import import_attribute

    return import_attribute(spec)


def _load(ref: dict):
    adapter = _load_model(ref)
    if ref.get("preprocess"):
        from costlab.adapters.preprocessed import Preprocessed

        adapter = Preprocessed(adapter, _import(ref["preprocess"]))
    return adapter


def _load_model(ref: dict):
    from costlab.adapters.callable import CallableAdapter
    from costlab.loading import load

    if "callable" in ref:
        spec = ref["callable"]
        if spec.startswith("zoo:"):
            return load(spec)
        from costlab.inputs.space import InputSpace

        fn = _import(spec)
        return CallableAdapter(fn, InputSpace.from_dict(ref["space"]), name=ref["name"], ref=spec)
    adapter = load(ref["spec"], call=ref["call"])
    adapter.name = ref["name"]
    return adapter


def _limit(cap: int | None, hard: int) -> None:
    """Cap the address space at its current size plus `cap` bytes (`None` lifts the cap)."""
    from costlab.adapters.memory import status_kib

    if cap is None:
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    size = (status_kib("VmSize") or 0) * 1024
    soft = size + cap
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def main(argv) -> int:
    rx = Connection(int(argv[1]), writable=False)
    tx = Connection(int(argv[2]), readable=False)
    init = rx.recv()
    try:
        from costlab.measurement.executors import run_probe
        from costlab.measurement.timing import first_line

        adapter = _load(init["ref"])
        memory = adapter.memory_source()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        tx.send({"ready": False, "error": f"{type(exc).__name__}: {exc}"[:500]})
        return 3
    from costlab import _env

    tx.send({"ready": True, "pid": os.getpid(), "memory_source": getattr(memory, "name", None),
             "env": _env.environment(), "describe": adapter.describe()})
    cap = init["memory_cap_bytes"]
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    while True:
        try:
            msg = rx.recv()
        except EOFError:
            return 0
        if msg is None:
            return 0
        inputs, measure_kw = msg
        try:
            _limit(cap, hard)
            if measure_kw.get("task") == "throughput":
                from costlab.measurement.concurrent import run as throughput

                kw = {k: v for k, v in measure_kw.items() if k != "task"}
                row = throughput(adapter, inputs, **kw)
            else:
                row = run_probe(adapter, inputs, memory, measure_kw)
        except BaseException as exc:  # noqa: BLE001 - e.g. MemoryError outside the model call
            row = {"status": "oom" if isinstance(exc, MemoryError) else "error", "error": first_line(exc)}
        finally:
            _limit(None, hard)
        del inputs
        tx.send(row)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
