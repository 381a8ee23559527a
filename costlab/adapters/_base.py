from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from costlab.adapters.memory import ProcessPeak


@dataclass(frozen=True)
class InputSignature:
    """One model input as the framework declares it: `None` marks a free axis.

    `values` is a hint for the value domain, e.g. `(0, 999)` for token ids feeding an
    `Embedding(1000, ...)`, or `None` when the framework says nothing.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    values: tuple[float, float] | None = None
    text: dict | None = None  # a string input: the vectorizer's {"vocabulary", "split", "standardize"}


def is_space(obj) -> bool:
    """Whether `obj` is an input space (a `costlab.InputSpace`): adapters sit below the
    inputs layer, so they know a space by what it has, not by its class."""
    return all(hasattr(obj, a) for a in ("inputs", "dims", "dim", "with_bounds"))


class Adapter(Protocol):
    """What costlab needs from a model, whatever its framework."""

    name: str
    call_path: str

    def signature(self) -> list[InputSignature]: ...

    def __call__(self, inputs: dict[str, Any]) -> Any: ...

    def memory_source(self): ...

    def describe(self) -> dict: ...


class SpaceAdapter:
    """Shared by adapters of models with an explicit `space` and no allocator statistics
    (plain callables, candle): the signature comes from the space, memory from the process
    peak."""

    space = None
    _memory = None

    def signature(self) -> list[InputSignature]:
        return [InputSignature(i.name, i.dtype, tuple(None if isinstance(s, str) else s for s in i.shape),
                               (i.values.min, i.values.max)) for i in self.space.inputs]

    def memory_source(self):
        if self._memory is None:
            self._memory = ProcessPeak() if ProcessPeak.available() else None
        return self._memory
