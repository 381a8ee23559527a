"""Any Python callable, with an explicit input space."""

from __future__ import annotations

import hashlib
import inspect

from costlab.adapters._base import SpaceAdapter, is_space
from costlab.errors import CostlabError


class CallableAdapter(SpaceAdapter):
    """Profile a plain Python function `fn(inputs) -> outputs` over an explicit space.

    `inputs` is a dict `{input name: numpy array}` shaped by `space`. There are no
    allocator statistics, so memory is the process peak (`costlab.adapters.memory.ProcessPeak`);
    it is exact in isolated probes (`isolation="subprocess"`).

    Args:
        fn: The callable.
        space: A `costlab.InputSpace` naming its inputs, dimensions and value domains.
        name: Name recorded in results. Defaults to `fn.__name__`.
        ref: `"module:attribute"` from which a worker process can import `fn`.
            Defaults to `fn`'s own module and qualified name when that is importable.
    """

    framework = "python"
    call_path = "callable"

    def __init__(self, fn, space, *, name=None, ref=None):
        if not callable(fn):
            raise CostlabError(f"Expected a callable. Received: {type(fn).__name__}")
        if not is_space(space):
            raise CostlabError(f"Expected a costlab.InputSpace for `space`. Received: {type(space).__name__}")
        self.fn, self.space = fn, space
        self.name = name or getattr(fn, "__name__", "callable")
        mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
        self.ref = ref or (f"{mod}:{qual}" if mod and mod != "__main__" and "<" not in qual else None)
        self._memory = None

    def __call__(self, inputs):
        return self.fn(inputs)

    def describe(self) -> dict:
        try:
            source = inspect.getsource(self.fn)
        except (OSError, TypeError):
            source = repr(self.fn)
        return {"name": self.name, "sha256": hashlib.sha256(source.encode()).hexdigest(),
                "framework": self.framework, "versions": {}, "call": self.call_path, "ref": self.ref}
