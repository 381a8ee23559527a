"""The environment a measurement ran in: threads, versions, allocator variables, CPU."""

from __future__ import annotations

import os
import platform

_ENV_VARS = ("TF_ENABLE_ONEDNN_OPTS", "TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "MALLOC_MMAP_THRESHOLD_",
             "OMP_NUM_THREADS", "KERAS_BACKEND", "CUDA_VISIBLE_DEVICES")
_pinned: dict | None = None

#: TensorFlow's variables costlab runs with, set where costlab owns the process (the CLI,
#: `cli.main`) and in every probe worker (`with_tf_defaults`), never by `import costlab`.
#: oneDNN on: TensorFlow's CPU allocator statistics (the tensor peak,
#: `costlab.adapters.memory.TFAllocatorPeak`) exist only with it, and TF turns it on by
#: default on some x86 CPUs and not on others (off on an AMD EPYC host without AVX-512,
#: where every tensor peak fell back to the process high-water mark). A deployment whose
#: times should match the measured ones runs with the same setting (`env` in profile.csv).
TF_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "1"}


def with_tf_defaults(env: dict) -> dict:
    """`env` with `TF_DEFAULTS` for every variable it does not set: a worker's environment."""
    return {**TF_DEFAULTS, **env}


def set_tf_defaults() -> None:
    """Set `TF_DEFAULTS` in this process where unset (before TensorFlow is imported)."""
    for k, v in TF_DEFAULTS.items():
        os.environ.setdefault(k, v)


def pin_threads(intra: int | None = None, inter: int = 1) -> dict:
    """Pin TensorFlow's thread pools once per process; return what is in force.

    Must run before TF executes its first op; later calls return the values in force.
    """
    global _pinned
    if _pinned is not None:
        return _pinned
    intra = intra or os.cpu_count() or 1
    if os.environ.get("KERAS_BACKEND", "tensorflow") == "torch":
        try:
            import torch

            torch.set_num_threads(intra)
            _pinned = {"intra_op_threads": torch.get_num_threads(), "inter_op_threads": None}
            return _pinned
        except ImportError:
            pass
    if os.environ.get("KERAS_BACKEND", "tensorflow") not in ("tensorflow", ""):
        _pinned = {"intra_op_threads": None, "inter_op_threads": None}  # XLA sizes its own pools
        return _pinned
    try:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
            tf.config.threading.set_inter_op_parallelism_threads(inter)
        except RuntimeError:  # TF already initialised: keep what is there
            pass
        _pinned = {"intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                   "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}
    except ImportError:
        _pinned = {"intra_op_threads": None, "inter_op_threads": None}
    return _pinned


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the policy's `measured_on` records."""
    import psutil

    return {"cpu": cpu_model(), "cores": os.cpu_count() or 1,
            "memory_bytes": int(psutil.virtual_memory().total),
            "os": platform.platform(), "python": platform.python_version()}


def versions() -> dict:
    """Versions of Python and of the frameworks already imported (nothing is imported here)."""
    import sys

    out = {"python": platform.python_version()}
    for mod in ("numpy", "tensorflow", "keras", "jax", "torch", "candle"):
        m = sys.modules.get(mod)
        if m is not None and getattr(m, "__version__", None):
            out[mod] = str(m.__version__)
    return out


def environment() -> dict:
    """Per-row environment: threads, versions, CPU model, and the variables that change
    TF's allocator and oneDNN (unset ones are absent).

    Imports no framework: the thread pools are pinned (and reported) only where
    TensorFlow or torch is already loaded, e.g. by a Keras adapter or by a plain callable's
    own module. A worker of a plain numpy callable or of candle so starts in about 1 s
    rather than the 4-5 s a TensorFlow import costs it.
    """
    import sys

    torch = os.environ.get("KERAS_BACKEND") == "torch" and "torch" in sys.modules
    loaded = _pinned is not None or "tensorflow" in sys.modules or torch
    env = dict(pin_threads()) if loaded else {"intra_op_threads": None, "inter_op_threads": None}
    env.update({k: os.environ[k] for k in _ENV_VARS if k in os.environ})
    env.update(versions())
    env["cpu"] = cpu_model()
    env["pid"] = os.getpid()
    return env
