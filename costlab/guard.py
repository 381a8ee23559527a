"""Enforce a policy before the model runs.

`Guard(policy).check(inputs)` returns the inputs as numpy arrays when they are admitted and
raises `InputRejected` otherwise — for any input at all, however malformed: it never lets
another exception out. What it checks: the set of input names, rank and fixed axes, every
dimension within its limits (tied axes equal), dtype kind, integer ids inside their domain,
and no NaN or infinity in float inputs. (Float value *ranges* in a policy describe what was
measured, not what is valid, so they are not enforced.)

Example:
    >>> guard = Guard(Policy.from_json("runs/demo/policy.json"))  # doctest: +SKIP
    >>> guard.check({"tokens": ids})  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np

from .errors import InputRejected
from .policy import Policy


def _short(x, n=80) -> str:
    r = repr(x)
    return r if len(r) <= n else r[: n - 3] + "..."


class Guard:
    """Check model inputs against a policy.

    Args:
        policy: A `Policy`.
    """

    def __init__(self, policy: Policy):
        if not isinstance(policy, Policy):
            raise TypeError(f"Expected a costlab Policy. Received: {type(policy).__name__}")
        self.policy = policy
        self._inputs = policy.data["inputs"]
        self._limits = {n: (v["min"], v["max"]) for n, v in policy.limits.items()}

    def _normalise(self, inputs) -> dict:
        names = list(self._inputs)
        if isinstance(inputs, dict):
            got = set(map(str, inputs))
            if got != set(names):
                missing, extra = sorted(set(names) - got), sorted(got - set(names))
                raise InputRejected(f"Expected inputs {names}; missing {missing}, unexpected {extra}",
                                    received=sorted(got), limit=names)
            return {n: inputs[n] for n in names}
        if isinstance(inputs, (list, tuple)) and len(names) > 1:
            if len(inputs) != len(names):
                raise InputRejected(f"Expected {len(names)} inputs {names}. Received: {len(inputs)}",
                                    received=len(inputs), limit=len(names))
            return dict(zip(names, inputs, strict=True))
        if len(names) == 1:
            return {names[0]: inputs}
        raise InputRejected(f"Expected a dict of inputs {names}. Received: {type(inputs).__name__}",
                            received=type(inputs).__name__)

    def _array(self, name, value) -> np.ndarray:
        if isinstance(value, np.ndarray):
            arr = value
        else:
            if hasattr(value, "numpy") and callable(value.numpy):  # tf/torch tensors
                try:
                    value = value.numpy()
                except Exception:
                    pass
            try:
                arr = np.asarray(value)
            except Exception as exc:  # ragged nesting, unconvertible objects
                raise InputRejected(f"Input `{name}` is not a rectangular array: {exc}",
                                    input=name, received=_short(value)) from None
        if arr.dtype.kind not in "biuf":
            raise InputRejected(f"Input `{name}` must be numeric. Received dtype {arr.dtype}",
                                input=name, dimension="dtype", received=str(arr.dtype))
        return arr

    def check(self, inputs) -> dict[str, np.ndarray]:
        """Admit or reject one request's inputs.

        Args:
            inputs: `{name: array-like}`, a list in input order, or one array-like for a
                single-input model.

        Returns:
            `{name: np.ndarray}` of the admitted inputs.

        Raises:
            InputRejected: Naming the input, the dimension, the limit and the value received.
        """
        try:
            return self._check(inputs)
        except InputRejected:
            raise
        except Exception as exc:  # the guard's promise: nothing but InputRejected escapes
            raise InputRejected(f"Malformed request: {type(exc).__name__}: {exc}",
                                received=_short(inputs)) from None

    def _check(self, inputs) -> dict:
        named = self._normalise(inputs)
        arrays, seen = {}, {}
        for name, value in named.items():
            spec = self._inputs[name]
            arr = self._array(name, value)
            shape = spec["shape"]
            if arr.ndim != len(shape):
                raise InputRejected(f"Input `{name}` must have {len(shape)} axes {shape}. "
                                    f"Received shape {arr.shape}", input=name, dimension="rank",
                                    limit=len(shape), received=list(arr.shape))
            for axis, (want, got) in enumerate(zip(shape, arr.shape, strict=True)):
                if isinstance(want, int):
                    if got != want:
                        raise InputRejected(f"Input `{name}` axis {axis} must be {want}. Received: {got}",
                                            input=name, dimension=f"axis{axis}", limit=want, received=got)
                    continue
                lo, hi = self._limits[want]
                if got > hi:
                    raise InputRejected(f"Input `{name}` dimension `{want}` is {got}, over the limit {hi}",
                                        input=name, dimension=want, limit=hi, received=got, status=413)
                if got < lo:
                    raise InputRejected(f"Input `{name}` dimension `{want}` is {got}, under the minimum {lo}",
                                        input=name, dimension=want, limit=lo, received=got)
                if want in seen and seen[want][1] != got:
                    other, size = seen[want]
                    raise InputRejected(f"Dimension `{want}` must be equal across inputs: `{other}` has "
                                        f"{size}, `{name}` has {got}", input=name, dimension=want,
                                        limit=size, received=got)
                seen.setdefault(want, (name, got))
            arrays[name] = self._values(name, spec, arr)
        return arrays

    def _values(self, name, spec, arr) -> np.ndarray:
        values = spec.get("values")
        kind = values["kind"] if values else ("int" if np.dtype(spec["dtype"]).kind in "iu" else "float")
        if kind == "int":
            if arr.dtype.kind not in "iub":
                raise InputRejected(f"Input `{name}` must hold integers ({spec['dtype']}). Received dtype {arr.dtype}",
                                    input=name, dimension="dtype", limit=spec["dtype"], received=str(arr.dtype))
            if arr.size and values:
                lo, hi = arr.min(), arr.max()
                if lo < values["min"] or hi > values["max"]:
                    bad = int(lo) if lo < values["min"] else int(hi)
                    raise InputRejected(f"Input `{name}` values must be in [{values['min']}, {values['max']}]. "
                                        f"Received: {bad}", input=name, dimension="values",
                                        limit=[values["min"], values["max"]], received=bad)
            return arr.astype(spec["dtype"], copy=False)
        if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
            raise InputRejected(f"Input `{name}` contains NaN or infinity", input=name,
                                dimension="values", limit="finite", received="non-finite")
        return arr.astype(spec["dtype"], copy=False)

    def __call__(self, inputs):
        return self.check(inputs)


def guarded(model, policy: Policy):
    """Wrap a Keras model so every call is checked by the policy's guard first.

    Returns:
        A callable `f(inputs) -> outputs` that raises `InputRejected` before the model runs.
    """
    guard = Guard(policy)

    def call(inputs):
        admitted = guard.check(inputs)
        feed = next(iter(admitted.values())) if len(admitted) == 1 else admitted
        return model.predict_on_batch(feed)

    call.guard = guard
    return call
