"""Where probes run: in this process, or in worker processes under a memory cap and a timeout.

`InProcess` measures in the calling process: fastest, but a probe that exhausts memory,
hangs or kills the process takes the profiler with it.

`Subprocess` runs each probe in a worker: a fresh interpreter started as
`python -m costlab.measurement.worker` (spawned, not forked from a big parent), which loads the
model once and then measures probes sent to it over a pipe. Before each probe the worker
caps its own address space at its current size plus `memory_cap_mib`
(`resource.setrlimit(RLIMIT_AS)`), so an allocation past the cap fails inside the probe
(`MemoryError`, TF's `ResourceExhaustedError`) instead of exhausting the machine; the
parent waits at most `timeout_s` for the result. A probe that is over the cap, times out
or kills its worker (segfault, `abort()`, a Rust panic) is recorded with status `oom`,
`timeout` or `crashed` and the worker's last words; the worker is replaced and the run
goes on.

Both return the same row: `costlab.measurement.timing.COLUMNS` plus `EXTRA_COLUMNS`, the process
high-water mark around the probe (VmHWM, reset with `/proc/self/clear_refs`) next to the
framework's tensor peak, so the two can be calibrated (`costlab.measurement.timing.calibrate`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from multiprocessing.connection import Connection
from pathlib import Path

from costlab import _env
from costlab.adapters.memory import ProcessPeak, status_kib
from costlab.errors import CostlabError, ModelLoadError
from costlab.measurement.timing import measure

ISOLATIONS = ("inprocess", "subprocess")
STATUSES = ("ok", "error", "oom", "timeout", "crashed")
#: Columns an executor adds to `costlab.measurement.timing.COLUMNS`.
EXTRA_COLUMNS = ("isolation", "worker_pid", "worker_probe", "rss_before_bytes",
                 "process_peak_bytes", "process_delta_bytes")
#: Words in a dead worker's last output that mean it ran out of memory.
_OOM_WORDS = ("bad_alloc", "Cannot allocate memory", "MemoryError", "out of memory", "OOM when allocating")


def run_probe(adapter, inputs, memory, measure_kw: dict) -> dict:
    """Measure one probe in this process, with the process high-water mark around it:
    VmHWM over all the probe's calls, and its growth over the RSS before the cold call."""
    proc = memory if isinstance(memory, ProcessPeak) else ProcessPeak()
    if hasattr(adapter, "prepare"):  # e.g. NumPy to candle tensors, once, outside the timing
        try:
            inputs = adapter.prepare(inputs)
        except Exception as exc:
            from costlab.measurement.timing import first_line

            return {"status": "error", "error": first_line(exc), "memory_source": getattr(memory, "name", None)}
    if proc is not memory:
        proc.reset()
    result = measure(lambda: adapter(inputs), memory=memory, **measure_kw)
    hwm = status_kib("VmHWM")
    if hwm is not None:
        result.update(rss_before_bytes=proc.before, process_peak_bytes=hwm * 1024,
                      process_delta_bytes=max(0, hwm * 1024 - proc.before))
    return result


class InProcess:
    """Probes measured in this process."""

    isolation = "inprocess"

    def __init__(self, adapter, **measure_kw):
        self.adapter, self.measure_kw = adapter, measure_kw
        self.memory = adapter.memory_source()
        self.memory_source = getattr(self.memory, "name", None)
        self.env = _env.environment()
        self._n = 0

    def probe(self, inputs) -> dict:
        row = run_probe(self.adapter, inputs, self.memory, self.measure_kw)
        row.update(isolation=self.isolation, worker_pid=os.getpid(), worker_probe=self._n)
        self._n += 1
        return row

    def pulse(self, inputs) -> dict:
        """Measure the machine-speed reference input: here, in this process like any probe."""
        return self.probe(inputs)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def model_ref(adapter, scratch: Path, *, weights_file: bool = False) -> dict:
    """What a worker needs to load the same model: a spec, a saved file, or an import path.

    With `weights_file`, a Keras model is always saved to a `.keras` file rather than
    rebuilt from its spec: weight initialisers draw differently on each Keras backend, so
    only the file carries the same weights to a worker on another backend.

    Raises:
        CostlabError: The model cannot be handed to another process.
    """
    from costlab.adapters.callable import CallableAdapter
    from costlab.adapters.keras import CALL_PATHS, KerasAdapter
    from costlab.adapters.preprocessed import Preprocessed

    if isinstance(adapter, Preprocessed):
        fn = adapter.fn
        mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
        if not mod or mod == "__main__" or "<" in qual:
            raise CostlabError(f"isolation='subprocess' needs a `preprocess` function a worker can import "
                               f"(defined at module level in a file), or isolation='inprocess'. Received: {fn!r}")
        return {**model_ref(adapter.inner, scratch, weights_file=weights_file), "preprocess": f"{mod}:{qual}"}
    if isinstance(adapter, CallableAdapter):
        if not adapter.ref:
            raise CostlabError(
                f"isolation='subprocess' needs a callable a worker can import (a module-level function "
                f"or `ref='module:attribute'`), or measure in this process: isolation='inprocess'. "
                f"Received: {adapter.fn!r}")
        return {"callable": adapter.ref, "space": adapter.space.to_dict(), "name": adapter.name}
    if adapter.call_path not in CALL_PATHS and isinstance(adapter, KerasAdapter):
        raise CostlabError(f"isolation='subprocess' cannot send a custom serving function to a worker. "
                           f"Received: call={adapter.call_path!r}; load the model with a spec instead")
    spec = getattr(adapter, "spec", None)
    if spec and not (weights_file and isinstance(adapter, KerasAdapter)):
        return {"spec": spec, "call": adapter.call_path, "name": adapter.name}
    if isinstance(adapter, KerasAdapter):
        path = scratch / f"{adapter.name}.keras"
        try:
            adapter.model.save(path)
        except Exception as exc:
            raise CostlabError(f"isolation='subprocess' could not save model {adapter.name!r} for the "
                               f"worker ({type(exc).__name__}: {exc}); pass zoo:NAME, a .keras path or "
                               f"module:attribute instead") from None
        return {"spec": str(path), "call": adapter.call_path, "name": adapter.name}
    raise CostlabError(f"isolation='subprocess' does not know how to load {type(adapter).__name__} in a worker")


def _tail(fh, n: int = 2000) -> str:
    try:
        fh.flush()
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - n))
        text = fh.read().decode(errors="replace")
    except (OSError, ValueError):
        return ""
    noise = ("oneDNN custom operations", "All log messages before absl::InitializeLog")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not any(n in ln for n in noise)]
    return " | ".join(lines[-3:])[-400:]


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self, ref: dict, *, memory_cap_bytes: int | None, start_timeout_s: float, env=None):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.log = tempfile.TemporaryFile()
        env = _env.with_tf_defaults({**os.environ, **(env or {})})
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "costlab.measurement.worker", str(to_child_r), str(from_child_w)],
            pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
        os.close(to_child_r)
        os.close(from_child_w)
        self.tx = Connection(to_child_w, readable=False)
        self.rx = Connection(from_child_r, writable=False)
        self.probes = 0
        self.killed = False
        self.tx.send({"ref": ref, "memory_cap_bytes": memory_cap_bytes})
        if not self.rx.poll(start_timeout_s):
            self.close(kill=True)
            raise ModelLoadError(f"The worker did not load {ref.get('name')!r} within {start_timeout_s:g} s")
        try:
            ready = self.rx.recv()
        except (EOFError, OSError):
            rc = self.proc.wait(timeout=10)
            self.close()
            raise ModelLoadError(f"The worker exited while loading {ref.get('name')!r} "
                                 f"(exit code {rc}): {_tail(self.log)}") from None
        if not ready["ready"]:
            self.close()
            raise ModelLoadError(f"The worker could not load {ref.get('name')!r}: {ready['error']}")
        self.pid, self.memory_source, self.env = ready["pid"], ready["memory_source"], ready["env"]
        self.describe = ready.get("describe")

    def probe(self, inputs, measure_kw: dict, timeout_s: float) -> dict:
        self.probes += 1
        try:
            self.tx.send((inputs, measure_kw))
            if not self.rx.poll(timeout_s):
                self.close(kill=True)
                return {"status": "timeout",
                        "error": f"no result within {timeout_s:g} s; worker {self.pid} killed"}
            return self.rx.recv()
        except (EOFError, OSError):  # the worker died mid-probe
            return self._died()

    def _died(self) -> dict:
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.close(kill=True)
            rc = self.proc.returncode
        last = _tail(self.log)
        if rc is not None and rc < 0:
            how = f"killed by {signal.Signals(-rc).name}"
        else:
            how = f"exited with code {rc}"
        # SIGKILL we did not send is the kernel's OOM killer; allocator failures print these words
        oom = rc == -signal.SIGKILL or any(w in last for w in _OOM_WORDS)
        self.close()
        return {"status": "oom" if oom else "crashed",
                "error": f"worker {self.pid} {how}" + (f": {last}" if last else "")}

    @property
    def alive(self) -> bool:
        return not self.killed and self.proc.poll() is None

    def close(self, *, kill: bool = False) -> None:
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                try:
                    self.tx.send(None)  # asks the worker to exit
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.killed = True
        for c in (self.tx, self.rx):
            try:
                c.close()
            except OSError:
                pass
        self.log.close()


class Subprocess:
    """Probes measured in worker processes, each under a hard memory cap and a timeout.

    Args:
        adapter: The model's adapter (see `model_ref` for what can be sent to a worker).
        memory_cap_mib: Most memory a probe may add to its worker, in MiB (the worker's
            address-space limit is set to its size before the probe plus this).
        timeout_s: Longest wait for one probe's result (cold call, warm-up and repeats).
        hazards: A run's `costlab.measurement.hazards.Hazards`: when given, each probe's
            timeout is its `timeout_s()` and each result is `observe`d. Defaults to `None`.
        probes_per_worker: Replace the worker after this many probes; `1` gives every
            probe a fresh process, where the process peak is exact. Defaults to `None`
            (a worker lives until it fails).
        start_timeout_s: Longest wait for a worker to load the model. Defaults to `300`.
        env: Environment variables set in the workers, e.g. `{"KERAS_BACKEND": "jax"}`
            (the Keras backend is fixed when Keras is imported). Defaults to `None`.
        **measure_kw: Passed to `costlab.measurement.timing.measure` in the worker.
    """

    isolation = "subprocess"

    def __init__(self, adapter, *, memory_cap_mib: float, timeout_s: float,
                 probes_per_worker: int | None = None, start_timeout_s: float = 300.0, env=None,
                 hazards=None, **measure_kw):
        if memory_cap_mib is not None and not memory_cap_mib > 0:
            raise CostlabError(f"Expected a positive `memory_cap_mib`. Received: {memory_cap_mib!r}")
        if not timeout_s > 0:
            raise CostlabError(f"Expected a positive `timeout_s`. Received: {timeout_s!r}")
        self._scratch = tempfile.TemporaryDirectory(prefix="costlab-worker-")
        self.ref = model_ref(adapter, Path(self._scratch.name), weights_file=bool((env or {}).get("KERAS_BACKEND")))
        self.cap = None if memory_cap_mib is None else int(memory_cap_mib * 2**20)
        self.timeout_s, self.per_worker, self.hazards = timeout_s, probes_per_worker, hazards
        self.start_timeout_s, self.measure_kw, self.worker_env = start_timeout_s, measure_kw, env
        self.worker: _Worker | None = None
        self.pulse_worker: _Worker | None = None
        self.started = 0
        self.memory_source = self.env = self.describe = None
        self.shared = False  # held by a run's `Workers`: `close` leaves it running

    def _start(self) -> _Worker:
        w = _Worker(self.ref, memory_cap_bytes=self.cap, start_timeout_s=self.start_timeout_s, env=self.worker_env)
        self.started += 1
        self.memory_source, self.env, self.describe = w.memory_source, w.env, w.describe
        return w

    def start(self) -> Subprocess:
        """Start the worker now rather than at the first probe (to start several ahead of
        time, in parallel, while others measure: `costlab.profiling.validity.Judge`)."""
        if self.worker is None or not self.worker.alive:
            self.worker = self._start()
        return self

    def _ready(self) -> _Worker:
        w = self.worker
        if w is None or not w.alive or (self.per_worker and w.probes >= self.per_worker):
            if w is not None:
                w.close()
            self.worker = w = self._start()
        return w

    def _on(self, w: _Worker, inputs) -> dict:
        index = w.probes
        timeout = self.hazards.timeout_s() if self.hazards is not None else self.timeout_s
        row = w.probe(inputs, self.measure_kw, timeout)
        row.update(isolation=self.isolation, worker_pid=w.pid, worker_probe=index)
        if self.hazards is not None:
            self.hazards.observe(row)
        return row

    def probe(self, inputs) -> dict:
        return self._on(self._ready(), inputs)

    def pulse(self, inputs) -> dict:
        """Measure the machine-speed reference input (`costlab.profiling.speed`) in a worker of its own.

        That worker only ever sees the reference shape, so its time follows the machine,
        not the probes' worker: a model can slow down as distinct shapes accumulate in one
        process (zoo:masked 3.2× after 240 shapes, `benchmarks/shape_drift.py`), and an
        index read in the probes' worker would divide that cost out of the probes. It lives
        as long as this executor (a probe's replaced worker does not take it along) and is
        replaced only when it dies.
        """
        w = self.pulse_worker
        if w is None or not w.alive:
            if w is not None:
                w.close()
            self.pulse_worker = w = self._start()
        return self._on(w, inputs)

    def task(self, name: str, inputs, **kw) -> dict:
        """Run a named task other than a probe in the worker (`"throughput"`: see
        `costlab.measurement.concurrent.run`), under the same memory cap and timeout."""
        w = self._ready()
        row = w.probe(inputs, {"task": name, **kw}, self.timeout_s)
        row.update(isolation=self.isolation, worker_pid=w.pid)
        return row

    def close(self) -> None:
        """Stop the workers; an executor `Workers` shares stays up until `Workers.close`."""
        if self.shared:
            return
        for w in (self.worker, self.pulse_worker):
            if w is not None:
                w.close()
        self.worker = self.pulse_worker = None
        self._scratch.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Workers:
    """The isolated workers of one run, shared by its stages.

    Each probe session (the value scan, the size plan, the boundary searches, ...) asks
    for its executor here: sessions with the same model and settings get the same
    `Subprocess`, so its probe worker and its pulse worker start once and stay warm
    through the run (TensorFlow is imported once per worker, not once per stage), and
    the pulses of every stage read the same reference worker. A session's `close` leaves
    a shared executor running; `Workers.close` stops them all. Stages that need a process
    of their own (validity verdicts, churn, drift, throughput) do not come here.

    Example:
        >>> with Workers() as workers:  # doctest: +SKIP
        ...     ex = workers.executor(adapter, memory_cap_mib=8192, timeout_s=60, min_repeats=5)
        ...     ex is workers.executor(adapter, memory_cap_mib=8192, timeout_s=60, min_repeats=5)
        True
    """

    def __init__(self):
        self._executors: dict = {}

    def executor(self, adapter, *, hazards=None, **config) -> Subprocess:
        """The shared `Subprocess` for `adapter` with `config` (`Subprocess`'s keywords),
        made on first use."""
        key = (id(adapter), id(hazards), repr(sorted(config.items())))
        ex = self._executors.get(key)
        if ex is None:
            ex = Subprocess(adapter, hazards=hazards, **config)
            ex.shared = True
            self._executors[key] = ex
        return ex

    def close(self) -> None:
        for ex in self._executors.values():
            ex.shared = False
            ex.close()
        self._executors.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
