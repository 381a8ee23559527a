"""Where peak memory comes from: framework allocator statistics or the process.

Two kinds of source, each with `reset()` before a call and `peak()` after it:

- `TFAllocatorPeak`: TensorFlow's per-device allocator peak
  (`tf.config.experimental.reset_memory_stats` / `get_memory_info(...)['peak']`). It counts
  tensor bytes of one call, repeatably and in any call order, on the CPU build with the
  oneDNN/BFC allocator and on GPUs. TF documents it for GPU/TPU only, so `probe()`
  allocates a tensor of known size at start-up and the source is used only when it
  reads that size back. That peak counts the allocator's chunks, and the BFC allocator
  hands a request over 64 MiB a whole chunk of the next power of two (a 73.0 MiB tensor
  read 128 MiB): so `requested(fn)` also reads one call's peak of the bytes *requested*,
  from TensorFlow's profiler (each allocation's `requested_bytes`, live ones summed over
  time). `costlab.measurement.timing` records that as `peak_bytes` (what the model asks for: smooth
  in the input sizes) and the allocator's as `allocator_peak_bytes` (what it reserved).
- `ProcessPeak`: the process high-water mark. On Linux it resets VmHWM by writing `5` to
  `/proc/self/clear_refs` and reports VmHWM minus the RSS before the call. Allocators that
  keep freed memory (TF's BFC pool) make this read ~0 once a larger input has been seen,
  so it is exact only in a fresh process per probe (the isolated mode does that).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def status_kib(field: str) -> int | None:
    """A `/proc/self/status` field in KiB (`VmRSS`, `VmHWM`, `VmSize`), or `None` off Linux."""
    try:
        with open(_STATUS) as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(re.findall(r"\d+", line)[0])
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size of this process, in bytes (Linux), else `None`."""
    kib = status_kib("VmRSS")
    return None if kib is None else kib * 1024


class ProcessPeak:
    """Process-level peak over a call: VmHWM after minus VmRSS before (Linux ≥ 4.0)."""

    name = "process_vmhwm"
    per_call = False  # see costlab.measurement.timing.measure: reset once, before the cold call

    def __init__(self):
        self.before = 0

    @staticmethod
    def available() -> bool:
        return os.path.exists(_CLEAR_REFS) and status_kib("VmHWM") is not None

    def reset(self) -> None:
        try:
            with open(_CLEAR_REFS, "w") as fh:
                fh.write("5")
        except OSError:
            pass
        self.before = rss_bytes() or 0

    def peak(self) -> int:
        hwm = status_kib("VmHWM")
        if hwm is None:
            return 0
        return max(0, hwm * 1024 - self.before)


class TFAllocatorPeak:
    """Per-call tensor peak from TensorFlow's allocator statistics on one device.

    GPU use (`device="GPU:0"`) follows the same calls; it is not exercised on these
    CPU-only machines.
    """

    name = "tf_allocator"
    per_call = True

    def __init__(self, device: str = "CPU:0"):
        self.device = device
        self.before = 0

    def reset(self) -> None:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats(self.device)
        # Tensors still alive (outputs of an earlier call, a probe's inputs) stay in the
        # peak after a reset: report the growth over them.
        self.before = int(tf.config.experimental.get_memory_info(self.device)["current"])

    def peak(self) -> int:
        import tensorflow as tf

        return max(0, int(tf.config.experimental.get_memory_info(self.device)["peak"]) - self.before)

    def requested(self, fn) -> int | None:
        """The peak of the bytes one call of `fn` requested from this device's allocators:
        TensorFlow's profiler records each allocation's `requested_bytes` and address; the
        allocations live at once are summed in time order. `None` when the profiler cannot
        run (one already running, e.g. the user's own) or recorded nothing.

        Example:
            >>> TFAllocatorPeak().requested(lambda: model.predict_on_batch(x))  # doctest: +SKIP
            76496896
        """
        import tensorflow as tf

        try:
            from tensorflow.tsl.profiler.protobuf import xplane_pb2
        except ImportError:  # pragma: no cover - other TF layouts
            from tsl.profiler.protobuf import xplane_pb2
        logdir = tempfile.mkdtemp(prefix="costlab-tfprof-")
        try:
            options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=1, python_tracer_level=0,
                                                               device_tracer_level=0)
            try:
                tf.profiler.experimental.start(logdir, options=options)
            except Exception:  # noqa: BLE001 - a profiler already running: no reading
                return None
            try:
                fn()
            finally:
                tf.profiler.experimental.stop()
            files = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
            if not files:
                return None
            space = xplane_pb2.XSpace()
            with open(files[0], "rb") as fh:
                space.ParseFromString(fh.read())
            return _requested_peak(space, gpu=self.device.upper().startswith("GPU"))
        finally:
            shutil.rmtree(logdir, ignore_errors=True)

    def probe(self, nbytes: int = 16 * 2**20) -> bool:
        """Whether the statistics read back a tensor of `nbytes` within 10%."""
        import tensorflow as tf

        try:
            self.reset()
            t = tf.fill([nbytes // 4], 1.0)  # one materialised float32 tensor of nbytes
            got = self.peak()
            del t
        except Exception:  # raises with oneDNN off: "Allocator stats not available"
            return False
        return nbytes <= got <= nbytes * 1.1 + 2 * 2**20


def _requested_peak(space, *, gpu: bool) -> int | None:
    """The largest sum of live requested bytes over an XSpace's memory events, counting
    only allocations made inside it (a release of an older tensor is not subtracted)."""
    events = []
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        stats = {k: v.name for k, v in plane.stat_metadata.items()}
        for line in plane.lines:
            for ev in line.events:
                kind = names.get(ev.metadata_id)
                if kind not in ("MemoryAllocation", "MemoryDeallocation"):
                    continue
                st = {}
                for x in ev.stats:
                    key = stats.get(x.metadata_id)
                    st[key] = (stats.get(x.ref_value, "") if x.WhichOneof("value") == "ref_value"
                               else getattr(x, x.WhichOneof("value") or "int64_value"))
                if ("gpu" in str(st.get("allocator_name", "")).lower()) != gpu:
                    continue
                events.append((line.timestamp_ns * 1000 + ev.offset_ps, kind == "MemoryAllocation",
                               st.get("addr"), int(st.get("requested_bytes") or 0)))
    if not events:
        return None
    live, cur, peak = {}, 0, 0
    for _, alloc, addr, nbytes in sorted(events, key=lambda e: (e[0], not e[1])):
        if alloc:
            live[addr] = live.get(addr, 0) + nbytes
            cur += nbytes
            peak = max(peak, cur)
        elif addr in live:
            cur -= live.pop(addr)
    return peak


class JaxDevicePeak:
    """Peak bytes in use on a JAX device, from `device.memory_stats()["peak_bytes_in_use"]`.

    JAX has no call to reset the peak, so `reset()` records the peak so far and `peak()`
    reports growth over what was in use then; a call that stays under an earlier peak
    reads 0 (run such probes in fresh workers). XLA's CPU client returns no statistics,
    so on these CPU-only machines `available()` is False and the process peak is used:
    this path is written for GPUs and tested only with a stand-in device.
    """

    name = "jax_device"
    per_call = True

    def __init__(self, device=None):
        self.device = device
        self.before = 0
        self._peak_before = 0

    def _stats(self) -> dict | None:
        if self.device is None:
            import jax

            self.device = jax.devices()[0]
        try:
            return self.device.memory_stats()
        except Exception:
            return None

    def available(self) -> bool:
        stats = self._stats()
        return bool(stats) and "peak_bytes_in_use" in stats

    def reset(self) -> None:
        s = self._stats() or {}
        self.before = int(s.get("bytes_in_use", 0))
        self._peak_before = int(s.get("peak_bytes_in_use", 0))

    def peak(self) -> int:
        s = self._stats() or {}
        peak = int(s.get("peak_bytes_in_use", 0))
        return max(0, peak - max(self.before, self._peak_before)) if peak > self._peak_before else 0


class TorchCudaPeak:
    """Peak CUDA memory of one call (`torch.cuda.reset_peak_memory_stats` /
    `max_memory_allocated`). Not exercised on these CPU-only machines."""

    name = "torch_cuda"
    per_call = True

    def __init__(self, device: int = 0):
        self.device = device
        self.before = 0

    @staticmethod
    def available() -> bool:
        try:
            import torch
        except ImportError:
            return False
        return bool(torch.cuda.is_available())

    def reset(self) -> None:
        import torch

        torch.cuda.reset_peak_memory_stats(self.device)
        self.before = int(torch.cuda.memory_allocated(self.device))

    def peak(self) -> int:
        import torch

        return max(0, int(torch.cuda.max_memory_allocated(self.device)) - self.before)
