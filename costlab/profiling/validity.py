"""A model's own validity limits: the sizes it accepts, found by measurement in fresh processes.

A model can refuse inputs whatever the budgets: a convolution stack whose output would be
smaller than its kernel (MobileNet under about 32 pixels a side), a position embedding
of fixed length (BERT's `max_sequence_length`). And whether an input works can depend on
what the process traced before: a warm worker whose graph was generalised over many shapes
ran (1, 16, 16) through MobileNetV3, which fails in a freshly started process. A server
is started fresh, so an input is **valid** when it works in a fresh process *and* in a
warm one.

`find` reads the profile (its `ok` and `error` rows; `oom`, `timeout` and `crashed` are
costs, not validity) and checks the admitted corners in one fresh worker: every
dimension at its smallest `ok` size first (before anything else is traced), then each
dimension at its largest with the others at their smallest. Along a dimension whose
corner fails, or whose profile has errors beyond its `ok` sizes, it bisects between a
valid and an invalid size to adjacent integers, each verdict in a fresh worker (the next
one started while the current one runs) and again in the one warm worker. Static hints
the model carries (`hints`: a position embedding's `sequence_length`, a keras_hub
backbone's `max_sequence_length`, candle's `max_position_embeddings`) are checked as
candidate maxima: the hint valid and the hint + 1 invalid.

Example:
    >>> from costlab.profiling.validity import find
    >>> v = find(adapter, prof)  # doctest: +SKIP
    >>> v.limits  # doctest: +SKIP
    {'height': {'min': 32, 'max': None, 'error': 'ValueError: ... Negative dimension size ...', ...}}
"""

from __future__ import annotations

import concurrent.futures as cf
from dataclasses import dataclass, field

from costlab._search import bisect, int_step
from costlab.errors import CostlabError
from costlab.measurement.executors import Subprocess
from costlab.measurement.hazards import FAILED

#: Measure settings of a verdict: whether the call works, not how long it takes.
VERDICT = {"min_repeats": 1, "max_repeats": 1, "time_budget_s": 0.0}


@dataclass
class Validity:
    """The validity limits found, per dimension, and how.

    Attributes:
        limits: `{dim: {"min", "max", "error", "checked"}}` for each dimension the model
            limits: the smallest and largest valid size (`None`: no limit found on that
            side), the error past the limit, and the verdicts that placed it
            (`[[size, "ok"|"error", where], ...]`).
        verdicts: Fresh-process and warm verdicts taken, in order (sizes, status, error).
        backend, call: Where the verdicts were taken (Keras backend, call path).
        notes: Why a check was not made.
    """

    limits: dict = field(default_factory=dict)
    verdicts: list = field(default_factory=list)
    backend: str | None = None
    call: str | None = None
    notes: list = field(default_factory=list)
    floor: dict | None = None  # the smallest corner judged valid (from `find`'s `floor`), or None

    def bounds(self, space) -> dict:
        """`{dim: (min, max)}`: `space`'s ranges cut to the valid sizes (to multiples of a
        divisor rule, `multiples`)."""
        out = {}
        for d, lim in self.limits.items():
            dim = space.dim(d)
            lo = max(dim.min, lim["min"]) if lim.get("min") is not None else dim.min
            hi = min(dim.max, lim["max"]) if lim.get("max") is not None else dim.max
            m = int(lim.get("multiple_of") or 1)
            lo, hi = -(-lo // m) * m, hi // m * m
            if lo > hi:
                raise CostlabError(f"The model accepts no {d} in the space's range {dim.min}..{dim.max}: "
                                   f"valid sizes are {lim.get('min')}..{lim.get('max')} ({lim['error']})")
            out[d] = (lo, hi)
        return out

    def multiples(self) -> dict:
        """`{dim: m}` for each dimension that takes only multiples of `m` (a divisor rule)."""
        return {d: int(lim["multiple_of"]) for d, lim in self.limits.items() if (lim.get("multiple_of") or 1) > 1}

    def to_dict(self) -> dict:
        return {"limits": self.limits, "floor": self.floor, "backend": self.backend, "call": self.call,
                "fresh_checks": sum(1 for v in self.verdicts if v["where"] == "fresh"), "notes": self.notes}

    def summary(self) -> str:
        if not self.limits:
            checked = sum(1 for v in self.verdicts if v["where"] == "fresh")
            return ("validity: every admitted corner works in a fresh process "
                    f"({checked} fresh verdicts)" if checked else
                    "validity: not checked in a fresh process" + (f" ({'; '.join(self.notes)})" if self.notes else ""))
        parts = []
        for d, lim in self.limits.items():
            rng = f"{lim['min'] if lim['min'] is not None else ''}..{lim['max'] if lim['max'] is not None else ''}"
            if (lim.get("multiple_of") or 1) > 1:
                rng += f", multiples of {lim['multiple_of']}"
            parts.append(f"  {d:10s} {rng}  ({lim['error']})")
        return "validity limits (the model's own, in a fresh process and a warm one):\n" + "\n".join(parts)


def hints(adapter, space=None) -> dict:
    """`{dim: largest size}` the model declares: a candle config's `max_position_embeddings`
    (`hard_limits`), a Keras layer's `sequence_length` (keras_hub `PositionEmbedding`) or a
    backbone's `max_sequence_length`, given to the sequence dimension of `space` (the one
    dimension besides `batch`, else the one named like `seq_len`). `space` defaults to the
    model's own."""
    out = dict((adapter.describe() or {}).get("hard_limits") or {})
    model = getattr(adapter, "model", None)
    if model is None:
        return out
    found = []
    for obj in [model, *getattr(model, "_flatten_layers", lambda: [])()]:
        for attr in ("max_sequence_length", "sequence_length"):
            v = getattr(obj, attr, None)
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                found.append(v)
    if found:
        from costlab.inputs.space import InputSpace

        names = [d.name for d in (space or InputSpace.from_model(adapter)).dims if d.name != "batch"]
        seq = names if len(names) == 1 else [n for n in names if any(w in n for w in ("seq", "len", "token"))]
        if len(seq) == 1:
            out.setdefault(seq[0], min(found))
    return out


class Judge:
    """Whether inputs work: `judge(sizes)` runs them in a fresh worker (the next one started
    ahead while it runs), then in one warm worker that keeps every shape judged; `corners`
    runs several in one fresh worker, in order. `verdicts` lists each. Only `error` is a
    refusal: `oom`, `timeout` and `crashed` are costs. With `hazards` (the run's
    `costlab.measurement.hazards.Hazards`), an input as large as one that failed so is not
    sent (its verdict is that failure) and the workers take its timeout. Close it (`close`)
    when done.

    Example:
        >>> judge = Judge(adapter, space, values="random", seed=0, memory_cap_mib=4096, timeout_s=60,
        ...               env=None)  # doctest: +SKIP
        >>> judge({"batch": 1, "height": 30, "width": 96})  # doctest: +SKIP
        (False, 'ValueError: ... Negative dimension size caused by subtracting 5 from 4 ...')
    """

    def __init__(self, adapter, space, *, values, seed, memory_cap_mib, timeout_s, env, hazards=None):
        self.space, self.values, self.seed, self.hazards = space, values, seed, hazards
        kw = dict(memory_cap_mib=memory_cap_mib, timeout_s=timeout_s, env=env, hazards=hazards, **VERDICT)
        self._new = lambda per: Subprocess(adapter, probes_per_worker=per, **kw)
        self._pool = cf.ThreadPoolExecutor(1)
        self._next = None  # a fresh worker starting while the current one judges
        self.warm = None
        self.verdicts = []

    def _started(self, per):
        return self._new(per).start()

    def fresh(self, *, ahead: bool = True):
        """A started fresh worker; with `ahead`, the next one starts meanwhile (a search
        takes several verdicts; a model with no errors needs one worker only)."""
        ex = self._next.result() if self._next is not None else self._started(1)
        self._next = self._pool.submit(self._started, 1) if ahead else None
        return ex

    def _blocked(self, sizes) -> dict | None:
        blocked = self.hazards.blocking(sizes, self.values) if self.hazards is not None else None
        return None if blocked is None else self.hazards.not_sent_row(blocked)

    def _record(self, sizes, row):
        if self.hazards is not None:
            self.hazards.record(sizes, self.values, row, "validity")

    def __call__(self, sizes: dict, *, where=("fresh", "warm")) -> tuple[bool, str]:
        row = self._blocked(sizes)
        if row is not None:
            self.verdicts.append({"sizes": dict(sizes), "where": "not sent", "status": row["status"],
                                  "error": row["error"]})
            return True, ""  # a cost, not a refusal (as the failure it is as large as)
        inputs = self.space.pattern_inputs(sizes, seed=self.seed, values=self.values)
        for w in where:
            if w == "fresh":
                ex = self.fresh()
                try:
                    row = ex.probe(inputs)
                finally:
                    ex.close()
            else:
                if self.warm is None:
                    self.warm = self._started(None)
                row = self.warm.probe(inputs)
            self._record(sizes, row)
            self.verdicts.append({"sizes": dict(sizes), "where": w, "status": row["status"],
                                  "error": row.get("error") or ""})
            if row["status"] == "error":  # oom, timeout, crashed: costs, not validity
                return False, row.get("error") or ""
            if self.hazards is not None and row["status"] in FAILED:
                break  # not sent again, to the warm worker either
        return True, ""

    def corners(self, inputs_in_order: list[dict]) -> list[tuple[bool, str]]:
        """Several inputs in one fresh worker, in order (the first sees nothing traced before)."""
        ex = self.fresh(ahead=False)
        out = []
        try:
            for sizes in inputs_in_order:
                row = self._blocked(sizes)
                if row is None:
                    row = ex.probe(self.space.pattern_inputs(sizes, seed=self.seed, values=self.values))
                    self._record(sizes, row)
                self.verdicts.append({"sizes": dict(sizes), "where": "fresh", "status": row["status"],
                                      "error": row.get("error") or ""})
                out.append((row["status"] != "error", row.get("error") or ""))
        finally:
            ex.close()
        return out

    def close(self):
        if self.warm is not None:
            self.warm.close()
        nxt = self._next
        self._pool.shutdown(wait=True)
        try:
            if nxt is not None:
                nxt.result().close()
        except Exception:  # noqa: BLE001 - a spare worker that failed to start needs no closing
            pass


def _bisect(judge, base: dict, d: str, good: int, bad: int, checked: list, step: int = 1) -> tuple[int, str]:
    """The valid size nearest `bad` along `d` (others as in `base`), from a `good` and a
    `bad` size, both multiples of `step`: adjacent multiples at the end (adjacent integers
    for `step` 1). Returns it and the last error seen past it."""
    errors = [""]

    def works(size):
        ok, err = judge({**base, d: size})
        checked.append([size, "ok" if ok else "error"])
        if not ok:
            errors.append(err)
        return ok

    good, _, _ = bisect(works, good, bad, mid=int_step(step))
    return good, errors[-1]


#: Sizes past the smallest valid one scanned for the next valid size (a divisor rule).
DIVISOR_SCAN = 64


def _divisor(judge, base: dict, d: str, sizes_ok: list, checked: list, notes: list) -> tuple[int, str]:
    """The divisor rule along `d`, from an input `base` that works: the sizes after it are
    judged in the warm worker, one by one (each residue at the low end), until one works,
    which is then judged in a fresh worker too; its distance `m` is the rule when every size
    the profile ran is a multiple of `m`. Returns `(m, the error off a multiple)`; `m` is 1
    when there is none."""
    s0, first = int(base[d]), ""
    if not judge(base, where=("warm",))[0]:
        notes.append(f"{d}: no divisor rule searched: the profile's input {base} fails in the validity worker")
        return 1, ""
    for k in range(1, DIVISOR_SCAN + 1):
        ok, e = judge({**base, d: s0 + k}, where=("warm",))
        checked.append([s0 + k, "ok" if ok else "error"])
        if ok:
            break
        first = first or e
        if k == 1 and s0 > 1:  # s0 may be the largest valid size: then the one under it works
            under, _ = judge({**base, d: s0 - 1}, where=("warm",))
            checked.append([s0 - 1, "ok" if under else "error"])
            if under:
                return 1, ""
    else:
        notes.append(f"{d}: none of the {DIVISOR_SCAN} sizes after {s0} works (no divisor rule found)")
        return 1, ""
    if k == 1:
        return 1, ""
    fresh_ok, err = judge({**base, d: s0 + k}, where=("fresh",))
    checked.append([s0 + k, "ok" if fresh_ok else "error"])
    if not fresh_ok or s0 % k or any(int(v) % k for v in sizes_ok):
        notes.append(f"{d}: {s0} and {s0 + k} work and the sizes between do not, but the sizes the profile ran "
                     f"({sorted(int(v) for v in sizes_ok)}) are not all multiples of {k}: no divisor rule set"
                     + (f" ({err})" if err else ""))
        return 1, ""
    return k, first


def find(adapter, prof, *, space=None, values: str = "random", seed: int = 0, memory_cap_mib: float = 4096,
         timeout_s: float = 120.0, backend: str | None = None, floor: dict | None = None,
         hazards=None) -> Validity:
    """The model's validity limits over `space` (defaults to the profile's), from the
    profile's rows and fresh-process verdicts (module docstring).

    With `floor` (`{dim: size}`, e.g. 1 for every dimension), the search for each smallest
    size starts there rather than at the smallest size measured: sizes under a declared
    range that the model takes (`Validity.floor`, the smallest corner found valid).
    With `hazards` (the run's `costlab.measurement.hazards.Hazards`), inputs as large as one
    that timed out, ran out of memory or crashed are not sent (`Judge`).

    Raises:
        CostlabError: The model cannot be sent to a worker process (`costlab.measurement.executors.model_ref`).
    """
    space = space or prof.space
    dims = space.dim_names
    t = prof.table
    t = t[t["kind"] != "pulse"] if "kind" in t.columns else t
    ok = t[t["status"] == "ok"]
    err = t[t["status"] == "error"]
    out = Validity(backend=backend or (prof.model.get("versions") or {}).get("backend"),
                   call=prof.model.get("call"))
    if ok.empty:
        out.notes.append("no probe succeeded")
        return out
    lo = {d: min(int(ok[d].min()), int((floor or {}).get(d, ok[d].min()))) for d in dims}
    hi = {d: int(ok[d].max()) for d in dims}
    hint = {d: int(v) for d, v in hints(adapter, space).items() if d in dims}
    judge = Judge(adapter, space, values=values, seed=seed, memory_cap_mib=memory_cap_mib, timeout_s=timeout_s,
                   env={"KERAS_BACKEND": backend} if backend else None, hazards=hazards)
    found = {d: {"min": None, "max": None, "error": "", "checked": []} for d in dims}  # + "below", "above", "off"
    steps = {}
    try:
        # a divisor rule first (the bisections step through its multiples), along each
        # dimension with sizes the profile ran that only ever failed
        for d in dims:
            sizes_ok = sorted({int(v) for v in ok[d]})
            if set(int(v) for v in err[d]) - set(sizes_ok):
                mid = sizes_ok[len(sizes_ok) // 2]
                row = ok[ok[d] == mid].iloc[0]
                m, off = _divisor(judge, {k: int(row[k]) for k in dims}, d, sizes_ok, found[d]["checked"], out.notes)
                if m > 1:
                    steps[d] = m
                    found[d].update(multiple_of=m, off=off)
                    lo[d] = -(-lo[d] // m) * m
        grows = [d for d in dims if hi[d] > lo[d]]
        first = judge.corners([dict(lo)] + [{**lo, d: hi[d]} for d in grows])
        if not first[0][0]:
            # the smallest corner fails in a fresh process: judge each dimension alone at its
            # smallest, the others at a middle ok size, and bisect up from there
            ref = {d: int(sorted(ok[d].unique())[len(ok[d].unique()) // 2]) for d in dims}
            ref_ok, ref_err = judge(ref, where=("fresh",))
            if not ref_ok:
                out.notes.append(f"no smallest size searched: the profile's middle input {ref} fails in a fresh "
                                 f"process too ({ref_err})")
            for d in dims if ref_ok else ():
                lim = found[d]
                if ref[d] == lo[d]:
                    continue
                alone_ok, alone_err = judge({**ref, d: lo[d]}, where=("fresh",))
                lim["checked"].append([lo[d], "ok" if alone_ok else "error"])
                if not alone_ok:
                    good, e = _bisect(judge, ref, d, ref[d], lo[d], lim["checked"], steps.get(d, 1))
                    lim.update(min=good, below=e or alone_err)
                    lo[d] = good
            first = judge.corners([dict(lo)] + [{**lo, d: hi[d]} for d in grows])
            if not first[0][0]:
                out.notes.append(f"the smallest valid corner {lo} still fails in a fresh process: {first[0][1]}")
        out.floor = dict(lo) if first[0][0] else None
        for d, m in steps.items():  # each residue at the low end fails too (one interval of multiples)
            passed = [lo[d] + r for r in range(1, m) if judge({**lo, d: lo[d] + r}, where=("warm",))[0]]
            found[d]["checked"] += [[lo[d] + r, "ok" if lo[d] + r in passed else "error"] for r in range(1, m)]
            if passed:
                out.notes.append(f"{d}: {passed} work although they are not multiples of {m}: the guard refuses "
                                 "them (valid sizes are not one set of multiples)")
        edge = dict(zip(grows, first[1:], strict=True))
        for d in dims:
            lim = found[d]
            m = steps.get(d, 1)
            # the largest size: errors beyond the largest ok size (on a multiple of a divisor
            # rule), a failing edge, or a hint
            bad_above = err[(err[d] > hi[d]) & (err[d] % m == 0)][d]
            top_bad = int(bad_above.min()) if len(bad_above) else None
            if d in edge and not edge[d][0]:
                top_bad, lim["above"] = hi[d], edge[d][1]
            base = {**lo, d: hi[d]}
            h = hint[d] // m * m if d in hint else None
            if h is not None and (top_bad is None or h < top_bad) and lo[d] <= h:
                at_ok, _ = judge({**base, d: h})
                past_ok, past_err = judge({**base, d: h + m}, where=("fresh",))
                lim["checked"] += [[h, "ok" if at_ok else "error"], [h + m, "ok" if past_ok else "error"]]
                if at_ok and not past_ok:
                    lim.update(max=h, above=past_err)
                    top_bad = None
                elif not at_ok:
                    top_bad = h
            if top_bad is not None:
                good = max([int(s) for s in ok[d].unique() if s < top_bad] or [lo[d]])
                if good < top_bad and judge({**base, d: good}, where=("fresh",))[0]:
                    last, e = _bisect(judge, base, d, good, top_bad, lim["checked"], m)
                    lim.update(max=last, above=e or lim.get("above", ""))
        for lim in found.values():
            lim["error"] = "; ".join(f"{side} {lim[k]}: {lim.pop(side_k)}" for side, k, side_k in
                                     (("under", "min", "below"), ("over", "max", "above"),
                                      ("off multiples of", "multiple_of", "off"))
                                     if lim.get(k) is not None and side_k in lim)
            for k in ("below", "above", "off"):
                lim.pop(k, None)
        out.limits = {d: lim for d, lim in found.items()
                      if lim["min"] is not None or lim["max"] is not None or lim.get("multiple_of")}
    finally:
        judge.close()
        out.verdicts = judge.verdicts
    return out
