"""Measure one probe: cold call, warm repeats until the median is stable, peak memory.

`measure(fn, memory=...)` is the single place where costlab times a call; everything
else (profile, verify) goes through it.
"""

from __future__ import annotations

import gc
import re
import time

import numpy as np

#: Columns `measure` fills, in table order.
COLUMNS = ("status", "error", "cold_s", "wall_s_median", "wall_s_p95", "wall_s_p99", "wall_s_min",
           "wall_s_iqr", "cpu_s_min", "cpu_s_median", "repeats", "peak_bytes", "allocator_peak_bytes",
           "memory_source")


def _status_of(exc: BaseException) -> str:
    name = type(exc).__name__
    if isinstance(exc, MemoryError) or name == "ResourceExhaustedError":
        return "oom"
    return "error"


#: How long an error message kept in a row may be.
MAX_ERROR_CHARS = 400
#: First lines that only say where an error happened; the line naming its cause follows.
_WRAPPERS = re.compile(r"^(Graph execution error:?|Exception encountered when calling .*|"
                       r"Exception encountered in .*|An error occurred .*)$")
#: Lines that are context, never the cause: tracebacks, node locations, argument dumps.
_CONTEXT = re.compile(r"^(File \"|Detected at node|Arguments received by|•|\[\[|\(\d+\) |"
                      r"Traceback|defined at|Stack trace|backtrace:|Call arguments received)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _tidy(line: str) -> str:
    """A cause line without TensorFlow's node plumbing: `{{function_node ...}}` prefixes,
    the trailing `[Op:...]`, and a graph node's full definition in quotes."""
    line = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", line)
    line = re.sub(r"\s*\[Op:[^\]]*\](\s*name:.*)?$", "", line)
    line = re.sub(r"for '\{\{node ([^}]*)\}\}[^']*'", r"at node \1", line)
    return line.strip()


def first_line(exc: BaseException) -> str:
    """The error as one line a user can act on: `"<Type>: <message>"`, at most
    `MAX_ERROR_CHARS` long.

    Where the message's first line only says where the error happened (TensorFlow's
    `Graph execution error:`, Keras's `Exception encountered when calling Conv2D.call().`),
    the line naming the cause is kept with it, and TensorFlow's node plumbing is dropped:

        >>> first_line(ValueError("Exception encountered when calling Conv2D.call().\\n\\n"
        ...                       "Negative dimension size caused by subtracting 5 from 2"))
        'ValueError: Exception encountered when calling Conv2D.call(): Negative dimension size caused by subtracting 5 from 2'
    """
    text = _ANSI.sub("", str(exc)).strip()
    text = text.split(", backtrace: Backtrace")[0]  # candle (Rust) errors carry a long backtrace
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    head = _tidy(lines[0]) if lines else ""
    if _WRAPPERS.match(head):
        cause = next((_tidy(ln) for ln in lines[1:] if not _CONTEXT.match(ln) and not _WRAPPERS.match(ln)), "")
        if cause:
            head = cause if head.startswith("Graph execution error") else f"{head.rstrip('.:')}: {cause}"
    return f"{type(exc).__name__}: {head}"[:MAX_ERROR_CHARS]


def median_ci_halfwidth(samples) -> float:
    """Relative half-width of the ~95% confidence interval of the median.

    Uses the notch formula of box plots (1.57 · IQR / √n), divided by the median.
    """
    a = np.asarray(samples, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    if med <= 0:
        return float("inf")
    return float(1.57 * (q3 - q1) / np.sqrt(len(a)) / med)


def measure(fn, *, memory=None, min_repeats: int = 5, max_repeats: int = 50,
            time_budget_s: float = 1.0, rel_ci: float = 0.05) -> dict:
    """Time `fn()` and read its peak memory.

    The first call is timed alone as `cold_s` (tracing, compilation, allocator growth).
    Then one warm-up call, then warm calls until `min_repeats` are done and either the
    median's relative confidence half-width is under `rel_ci`, `time_budget_s` is
    spent, or `max_repeats` is reached. Garbage collection is off while timing.

    A per-call memory source (`per_call = True`, the framework's allocator peak) is
    reset after the warm-up, so `peak_bytes` is a warm call's peak. A source with
    `requested(fn)` (TensorFlow's) then reads one more call's peak of the bytes requested
    from the allocator: that is `peak_bytes`, and the allocator's own (rounded) peak is
    `allocator_peak_bytes`. The process peak
    (`per_call = False`) is reset once, before the cold call: an allocator that keeps
    freed memory (glibc's heap, TF's pool) shows an input's growth only the first time.

    Each warm call's CPU time (every thread of this process, `time.process_time`) is read
    beside its wall time: `cpu_s_min` and `cpu_s_median`. Work does not grow with the
    machine's load the way wall time does (a call preempted by a neighbour waits, off
    CPU), so the CPU time is a steadier reading of how the work grows.

    Args:
        fn: Zero-argument callable running the model once.
        memory: A memory source (`reset()`, `peak()`, `name`), or `None` for no memory.
            Defaults to `None`.
        min_repeats: Fewest warm calls. Defaults to `5`.
        max_repeats: Most warm calls. Defaults to `50`.
        time_budget_s: Time after which repeats stop once `min_repeats` are done.
            Defaults to `1.0`.
        rel_ci: Target relative half-width of the median's confidence interval.
            Defaults to `0.05`.

    Returns:
        A dict with the keys of `COLUMNS`; `status` is `"ok"`, `"oom"` or `"error"`.
    """
    row = dict.fromkeys(COLUMNS)
    row["memory_source"] = getattr(memory, "name", None)
    perf, cpu = time.perf_counter, time.process_time
    gc_was = gc.isenabled()
    try:
        if memory is not None:
            memory.reset()
        t0 = perf()
        fn()
        row["cold_s"] = perf() - t0
        fn()  # warm-up at this shape
        if memory is not None and getattr(memory, "per_call", True):
            memory.reset()
        gc.disable()
        samples, cpu_samples = [], []
        start = perf()
        while len(samples) < max_repeats:
            c0, t0 = cpu(), perf()
            fn()
            t1, c1 = perf(), cpu()
            samples.append(t1 - t0)
            cpu_samples.append(c1 - c0)
            if len(samples) >= min_repeats and (
                    perf() - start > time_budget_s or median_ci_halfwidth(samples) <= rel_ci):
                break
        if memory is not None:
            row["peak_bytes"] = int(memory.peak())
            requested = getattr(memory, "requested", None)
            if requested is not None:  # one more call, under TF's profiler: the bytes asked for
                asked = requested(fn)
                if asked is not None:
                    row["allocator_peak_bytes"], row["peak_bytes"] = row["peak_bytes"], int(asked)
    except Exception as exc:  # a probe's failure is data, not a crash of the profiler
        row.update(status=_status_of(exc), error=first_line(exc))
        return row
    finally:
        if gc_was:
            gc.enable()
    a = np.asarray(samples)
    q1, med, q3, p95, p99 = np.percentile(a, [25, 50, 75, 95, 99])
    row.update(status="ok", error="", wall_s_median=float(med), wall_s_p95=float(p95), wall_s_p99=float(p99),
               wall_s_min=float(a.min()), wall_s_iqr=float(q3 - q1), cpu_s_min=float(min(cpu_samples)),
               cpu_s_median=float(np.median(cpu_samples)), repeats=len(a))
    return row
