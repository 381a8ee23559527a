"""Enforce a policy before the model runs.

`Guard(policy).check(inputs)` returns the inputs as numpy arrays when they are admitted and
raises `InputRejected` otherwise — for any input at all, however malformed: it never lets
another exception out. What it checks: the set of input names, rank and fixed axes, every
dimension within its limits (tied axes equal), the joint budgets (e.g. batch × seq_len),
dtype kind, integer ids inside their domain, no NaN or infinity in float inputs, and the
cap on distinct input shapes one process accepts; with `pad=True` it pads every dimension
up to the policy's next shape bucket. `check_payload(n_bytes)` checks a request body's size
before it is read. (Float value *ranges* in a policy describe what was measured, not what
is valid, so they are not enforced.)

Each rejection carries the HTTP status a server should answer with: 413 for too large
(a dimension, a joint budget, the payload), 422 for malformed (names, rank, dtype,
values), 429 when the distinct-shape cap is reached. `GuardMiddleware` (ASGI) and
`fastapi_dependency` answer with that status and a JSON body naming the reason.

Example:
    >>> guard = Guard(Policy.from_json("runs/demo/policy.json"))  # doctest: +SKIP
    >>> guard.check({"tokens": ids})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading

import numpy as np

from costlab.errors import InputRejected
from costlab.inputs.text import Text, count_words
from costlab.policy import Policy


def _short(x, n=80) -> str:
    r = repr(x)
    return r if len(r) <= n else r[: n - 3] + "..."


class Guard:
    """Check model inputs against a policy.

    Args:
        policy: A `Policy`.
        pad: Pad each dimension up to the next of the policy's shape buckets (zeros, which
            is the pad id and mask 0 of padded sequences); the limits are the last
            buckets, so padding never leaves the policy. Defaults to `False`.
        max_distinct: Distinct input shapes (after padding) this guard admits before
            rejecting new ones with 429. Defaults to the policy's `shapes.max_distinct`
            (no cap when the policy has none); `0` turns the cap off.
    """

    def __init__(self, policy: Policy, *, pad: bool = False, max_distinct: int | None = None):
        if not isinstance(policy, Policy):
            raise TypeError(f"Expected a costlab Policy. Received: {type(policy).__name__}")
        self.policy = policy
        self._inputs = policy.data["inputs"]
        self._limits = {n: (v["min"], v["max"]) for n, v in policy.limits.items()}
        self._steps = {n: int(v["multiple_of"]) for n, v in policy.limits.items() if v.get("multiple_of", 1) > 1}
        self._joint = [(j["name"], j["dims"], j["max"], {d: int((j.get("offsets") or {}).get(d, 0)) for d in j["dims"]})
                       for j in policy.joint]
        shapes = policy.shapes
        self._buckets = {d: sorted(b) for d, b in (shapes.get("buckets") or {}).items() if b}
        if pad and not self._buckets:
            raise ValueError("`pad=True` needs shape buckets in the policy (`shapes.buckets`). Received: none")
        self.pad = pad
        cap = shapes.get("max_distinct") if max_distinct is None else max_distinct
        self.max_distinct = int(cap) if cap else None
        self.max_payload_bytes = policy.request.get("max_payload_bytes")
        self._seen: set = set()
        self._lock = threading.Lock()
        self._names = list(self._inputs)
        self._nameset = set(self._names)
        self._shapes = [(name, tuple(spec["shape"])) for name, spec in self._inputs.items()]
        # Per input, what the hot path needs: (shape, dtype, int ids?, value bounds or None).
        self._spec = {}
        #: String inputs: how their words are counted (`costlab.inputs.text.Text`, without a vocabulary).
        self._text = {name: Text.from_dict(spec["text"]) for name, spec in self._inputs.items() if spec.get("text")}
        for name, spec in self._inputs.items():
            if name in self._text:
                self._spec[name] = (tuple(spec["shape"]), np.dtype(object), False, None)
                continue
            dtype = np.dtype(spec["dtype"])
            values = spec.get("values")
            kind = values["kind"] if values else ("int" if dtype.kind in "iu" else "float")
            bounds = (values["min"], values["max"]) if values and kind == "int" else None
            self._spec[name] = (tuple(spec["shape"]), dtype, kind == "int", bounds)
        # Same-size unsigned dtypes: ids in [0, max] checked in one reduction (a negative
        # id viewed as unsigned is huge).
        self._unsigned = {np.dtype(f"i{k}"): np.dtype(f"u{k}") for k in (1, 2, 4, 8)}

    @property
    def distinct_shapes(self) -> int:
        """Distinct input shapes admitted so far."""
        return len(self._seen)

    def check_payload(self, n_bytes) -> None:
        """Reject a request body larger than the policy's `request.max_payload_bytes` (413).

        Call it with the Content-Length before reading the body.
        """
        limit = self.max_payload_bytes
        try:
            n = int(n_bytes)
        except (TypeError, ValueError):
            raise InputRejected(f"Request size must be a whole number of bytes. Received: {_short(n_bytes)}",
                                dimension="payload_bytes", received=_short(n_bytes)) from None
        if limit is not None and n > limit:
            raise InputRejected(f"Request body is {n} bytes, over the limit {limit}", dimension="payload_bytes",
                                limit=limit, received=n, status=413)

    def _normalise(self, inputs) -> dict:
        names = self._names
        if isinstance(inputs, dict):
            if len(inputs) == len(names) and all(n in inputs for n in names):
                return inputs
            got = set(map(str, inputs))
            missing, extra = sorted(self._nameset - got), sorted(got - self._nameset)
            raise InputRejected(f"Expected inputs {names}; missing {missing}, unexpected {extra}",
                                received=sorted(got), limit=names)
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
        if name in self._text:
            if arr.dtype.kind not in "OUS" or not all(isinstance(v, (str, bytes)) for v in arr.ravel().tolist()):
                raise InputRejected(f"Input `{name}` must hold strings. Received dtype {arr.dtype}",
                                    input=name, dimension="dtype", received=str(arr.dtype))
            return arr.astype(object) if arr.dtype.kind != "O" else arr
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
        seen, out = {}, {}
        limits = self._limits
        for name, shape in self._shapes:
            arr = self._array(name, named[name])
            got_shape = arr.shape
            if len(got_shape) != len(shape):
                raise InputRejected(f"Input `{name}` must have {len(shape)} axes {list(shape)}. "
                                    f"Received shape {got_shape}", input=name, dimension="rank",
                                    limit=len(shape), received=list(got_shape))
            axis = 0
            for want in shape:
                got = got_shape[axis]
                if want.__class__ is int:
                    if got != want:
                        raise InputRejected(f"Input `{name}` axis {axis} must be {want}. Received: {got}",
                                            input=name, dimension=f"axis{axis}", limit=want, received=got)
                else:
                    lo, hi = limits[want]
                    if got > hi:
                        raise InputRejected(f"Input `{name}` dimension `{want}` is {got}, over the limit {hi}",
                                            input=name, dimension=want, limit=hi, received=got, status=413)
                    if got < lo:
                        raise InputRejected(f"Input `{name}` dimension `{want}` is {got}, under the minimum {lo}",
                                            input=name, dimension=want, limit=lo, received=got)
                    if want in self._steps and got % self._steps[want]:
                        raise InputRejected(f"Input `{name}` dimension `{want}` is {got}, not a multiple of "
                                            f"{self._steps[want]} (the model takes only multiples)",
                                            input=name, dimension=want, limit=self._steps[want], received=got)
                    other = seen.get(want)
                    if other is None:
                        seen[want] = (name, got)
                    elif other[1] != got:
                        raise InputRejected(f"Dimension `{want}` must be equal across inputs: `{other[0]}` has "
                                            f"{other[1]}, `{name}` has {got}", input=name, dimension=want,
                                            limit=other[1], received=got)
                axis += 1
            if name in self._text:
                self._strings(name, arr, seen)
            out[name] = arr
        for jname, dims, jmax, off in self._joint:
            prod = 1
            for d in dims:
                prod *= (seen[d][1] if d in seen else 1) + off[d]
            if prod > jmax:
                got = " × ".join(f"({d}={seen[d][1] if d in seen else 1} + {off[d]})" if off[d] else
                                 f"{d}={seen[d][1] if d in seen else 1}" for d in dims)
                raise InputRejected(f"Joint budget `{jname}` is {jmax}; the input has {got} = {prod}",
                                    input=None, dimension=jname, limit=jmax, received=prod, status=413)
        for name in out:  # values only once every shape is known to be admitted
            out[name] = self._values(name, out[name])
        if self.pad or self.max_distinct is not None:
            sizes = {d: v[1] for d, v in seen.items()}
            if self.pad:
                sizes = {d: self._bucket(d, v) for d, v in sizes.items()}
                out = {name: self._pad(name, arr, sizes) for name, arr in out.items()}
            if self.max_distinct is not None:
                self._count(sizes)
        return out

    def _strings(self, name, arr, seen) -> None:
        """Each string's bytes, then (only when every string is within its bytes) its words
        as the model's vectorizer counts them, against the policy's limits."""
        t = self._text[name]
        flat = [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in arr.ravel().tolist()]
        for dim, measure in ((t.bytes, lambda s: len(s.encode("utf-8"))), (t.words, lambda s: count_words(t, s))):
            lo, hi = self._limits[dim]
            got = max((measure(s) for s in flat), default=0)  # the request's size: its longest string
            if got > hi:
                raise InputRejected(f"Input `{name}` has a string of {got} {dim.rsplit('_', 1)[-1]}, over the limit "
                                    f"{hi} (`{dim}`)", input=name, dimension=dim, limit=hi, received=got, status=413)
            if got < lo:
                raise InputRejected(f"Input `{name}`'s longest string has {got} {dim.rsplit('_', 1)[-1]}, under the "
                                    f"minimum {lo} (`{dim}`)", input=name, dimension=dim, limit=lo, received=got)
            seen[dim] = (name, got)

    def _count(self, sizes) -> None:
        key = tuple(sorted(sizes.items()))
        if key in self._seen:
            return
        with self._lock:
            if key not in self._seen and len(self._seen) >= self.max_distinct:
                raise InputRejected(
                    f"This process has admitted its cap of {self.max_distinct} distinct input shapes; "
                    f"{dict(key)} is a new one (pad to the policy's shape buckets)",
                    dimension="distinct_shapes", limit=self.max_distinct, received=dict(key), status=429)
            self._seen.add(key)

    def _bucket(self, dim, size) -> int:
        for b in self._buckets.get(dim, ()):
            if b >= size:
                return b
        return size

    def _pad(self, name, arr, sizes) -> np.ndarray:
        shape = tuple(sizes[w] if w.__class__ is str else w for w in self._spec[name][0])
        if shape == arr.shape:
            return arr
        out = np.zeros(shape, arr.dtype)  # zeros: the pad id, and mask 0
        out[tuple(slice(0, n) for n in arr.shape)] = arr
        return out

    def _values(self, name, arr) -> np.ndarray:
        if name in self._text:
            return arr
        _, dtype, ints, bounds = self._spec[name]
        if ints:
            if arr.dtype.kind not in "iub":
                raise InputRejected(f"Input `{name}` must hold integers ({dtype}). Received dtype {arr.dtype}",
                                    input=name, dimension="dtype", limit=str(dtype), received=str(arr.dtype))
            if bounds is not None and arr.size:
                if bounds[0] == 0 and arr.dtype.kind in "iu":
                    unsigned = self._unsigned.get(arr.dtype, arr.dtype)
                    if (arr.view(unsigned) if arr.flags.c_contiguous else arr.astype(unsigned)).max() <= bounds[1]:
                        return arr if arr.dtype == dtype else arr.astype(dtype)
                lo, hi = arr.min(), arr.max()
                if lo < bounds[0] or hi > bounds[1]:
                    bad = int(lo) if lo < bounds[0] else int(hi)
                    raise InputRejected(f"Input `{name}` values must be in [{bounds[0]}, {bounds[1]}]. "
                                        f"Received: {bad}", input=name, dimension="values",
                                        limit=[bounds[0], bounds[1]], received=bad)
        elif arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
            raise InputRejected(f"Input `{name}` contains NaN or infinity", input=name,
                                dimension="values", limit="finite", received="non-finite")
        return arr if arr.dtype == dtype else arr.astype(dtype)

    def __call__(self, inputs):
        return self.check(inputs)


def guarded(model, policy: Policy, *, pad: bool = False):
    """Wrap a Keras model so every call is checked by the policy's guard first.

    Args:
        model: A Keras model (called with `predict_on_batch`).
        policy: The policy.
        pad: Pad inputs to the policy's shape buckets (see `Guard`); outputs are cut
            back to the request's batch. Defaults to `False`.

    Returns:
        A callable `f(inputs) -> outputs` that raises `InputRejected` before the model runs;
        `f.guard` is its `Guard`.
    """
    guard = Guard(policy, pad=pad)

    def call(inputs):
        batch = _batch_of(inputs) if pad else None
        admitted = guard.check(inputs)
        feed = next(iter(admitted.values())) if len(admitted) == 1 else admitted
        out = model.predict_on_batch(feed)
        if batch is not None:
            out = out[:batch] if not isinstance(out, (list, tuple, dict)) else (
                {k: v[:batch] for k, v in out.items()} if isinstance(out, dict) else type(out)(v[:batch] for v in out))
        return out

    call.guard = guard
    return call


def _batch_of(inputs):
    first = next(iter(inputs.values())) if isinstance(inputs, dict) else (
        inputs[0] if isinstance(inputs, (list, tuple)) and inputs and hasattr(inputs[0], "shape") else inputs)
    return getattr(first, "shape", (None,))[0] if getattr(first, "shape", ()) else None


def _reason(exc: InputRejected) -> bytes:
    return json.dumps({**exc.to_dict(), "status": exc.status}, default=str).encode()


class GuardMiddleware:
    """ASGI middleware: check requests to `path` against a policy before the app sees them.

    The body (`{"inputs": {name: nested lists}}`, or the nested lists of a single-input
    model) is refused with 413 when its Content-Length, or the bytes actually received,
    pass `request.max_payload_bytes` (before it is parsed), then checked by `Guard`: a
    rejection answers with its status (413 / 422 / 429) and a JSON body naming the reason
    (`error`, `input`, `dimension`, `limit`, `received`). Admitted requests reach the app
    with the body unchanged and the admitted arrays in `scope["state"]["costlab_inputs"]`
    (Starlette/FastAPI: `request.state.costlab_inputs`).

    Args:
        app: The ASGI app.
        policy: The policy, or a `Guard`.
        path: The path to guard (others pass through). Defaults to `"/predict"`.
        methods: Methods to guard. Defaults to `("POST", "PUT")`.
    """

    def __init__(self, app, policy, *, path: str = "/predict", methods=("POST", "PUT")):
        self.app = app
        self.guard = policy if isinstance(policy, Guard) else Guard(policy)
        self.path, self.methods = path, tuple(methods)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] not in self.methods:
            await self.app(scope, receive, send)
            return
        try:
            headers = dict(scope.get("headers") or [])
            length = headers.get(b"content-length")
            if length is not None:
                self.guard.check_payload(length.decode("latin-1"))
            limit = self.guard.max_payload_bytes
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if limit is not None and size > limit:
                    raise InputRejected(f"Request body is over the limit {limit} bytes", dimension="payload_bytes",
                                        limit=limit, received=f">{limit}", status=413)
                chunks.append(chunk)
                more = message.get("more_body", False)
            body = b"".join(chunks)
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputRejected(f"Request body is not valid JSON: {exc}", dimension="body",
                                    received=_short(body[:40])) from None
            inputs = data["inputs"] if isinstance(data, dict) and "inputs" in data else data
            admitted = self.guard.check(inputs)
        except InputRejected as exc:
            await _respond(send, exc.status, _reason(exc))
            return
        scope = {**scope, "state": {**(scope.get("state") or {}), "costlab_inputs": admitted}}
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _respond(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def fastapi_dependency(policy):
    """A FastAPI dependency that returns the admitted inputs or raises `HTTPException`
    with the rejection's status and reason as `detail`.

    Example:
        >>> check = fastapi_dependency(Policy.from_json("policy.json"))  # doctest: +SKIP
        >>> @app.post("/predict")  # doctest: +SKIP
        ... async def predict(inputs: dict = Depends(check)): ...
    """
    from fastapi import HTTPException, Request

    guard = policy if isinstance(policy, Guard) else Guard(policy)

    async def check(request: Request) -> dict:
        try:
            guard.check_payload(request.headers.get("content-length", 0))
            body = await request.body()
            guard.check_payload(len(body))
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InputRejected(f"Request body is not valid JSON: {exc}", dimension="body",
                                    received=_short(body[:40])) from None
            return guard.check(data["inputs"] if isinstance(data, dict) and "inputs" in data else data)
        except InputRejected as exc:
            raise HTTPException(status_code=exc.status, detail={**exc.to_dict(), "status": exc.status}) from None

    check.__annotations__ = {"request": Request, "return": dict}  # resolved here, not as strings
    check.guard = guard
    return check
