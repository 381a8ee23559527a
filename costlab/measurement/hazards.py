"""A run's memory of unsafe probes: the timeout each probe gets from the budgets, and the
inputs that timed out, ran out of memory or crashed their worker, so that neither they nor
anything at least as large is sent again.

The timeout rule (docs/cli.md):

    timeout = tracing allowance + probe_time_s + (min_repeats + 2) × 20 × latency budget

at least `FLOOR_S`. A probe makes `min_repeats + 2` calls at the least (cold, warm-up,
repeats), so an input is cut off once it costs about 20× the latency budget per call: far
past anything a policy admits. The tracing allowance covers the cold call's tracing and
compilation: `TRACE_FACTOR` × the slowest first-call overhead (`cold_s` − warm median)
seen so far in the run, at least `TRACE_MIN_S`; before any probe has finished,
`FIRST_CALL_S`.

Example:
    >>> h = Hazards(latency_ms=20, min_repeats=5, probe_time_s=0.5)
    >>> h.timeout_s()  # nothing measured yet: the first call's allowance
    63.3
    >>> h.observe({"status": "ok", "cold_s": 1.2, "wall_s_median": 0.01})
    >>> h.timeout_s()  # 10 + 0.5 + 7 × 20 × 0.02
    13.3
    >>> h.record({"n": 300}, "random", {"status": "timeout"}, "plan")
    >>> h.blocking({"n": 512}, "random")["sizes"], h.blocking({"n": 512}, "max")
    ({'n': 300}, None)
"""

from __future__ import annotations

from costlab.errors import CostlabError

#: Statuses that mark an input as unsafe to send again (an `error` is the model refusing an
#: input: validity, not cost, and not monotone in size).
FAILED = ("timeout", "oom", "crashed")
#: The shortest timeout the rule gives.
FLOOR_S = 5.0
#: A probe is cut off past this many latency budgets per call.
BUDGET_FACTOR = 20.0
#: The tracing allowance: this many times the slowest first-call overhead seen ...
TRACE_FACTOR = 3.0
#: ... and never less than this.
TRACE_MIN_S = 10.0
#: The allowance before any probe has finished (the run's first cold call).
FIRST_CALL_S = 60.0


def probe_timeout(latency_ms: float, *, min_repeats: int = 5, probe_time_s: float = 0.5,
                  tracing_s: float | None = None) -> float:
    """The timeout of one probe by the rule above, in seconds; `tracing_s` is the slowest
    first-call overhead seen so far (`None`: nothing measured yet)."""
    if not latency_ms > 0:
        raise CostlabError(f"Expected a positive latency budget. Received: latency_ms={latency_ms!r}")
    allowance = FIRST_CALL_S if tracing_s is None else max(TRACE_MIN_S, TRACE_FACTOR * tracing_s)
    calls = min_repeats + 2
    return round(max(FLOOR_S, allowance + probe_time_s + calls * BUDGET_FACTOR * latency_ms / 1e3), 3)


class Hazards:
    """The timeout for the next probe, and the inputs that must not be sent again.

    One per run, shared by every stage that sends probes (value scan, profile, refinement,
    boundary and validity searches, churn, drift): the executors ask it for the timeout
    and report each result (`observe`); the stages ask `blocking` before sending an input
    and `record` a failure.

    Args:
        latency_ms: The latency budget the timeout follows from. `None` with `timeout_s`.
        min_repeats: Fewest warm calls of a probe. Defaults to `5`.
        probe_time_s: Time after which a probe stops repeating. Defaults to `0.5`.
        timeout_s: A fixed timeout instead of the rule. Defaults to `None`.
    """

    def __init__(self, latency_ms: float | None = None, *, min_repeats: int = 5, probe_time_s: float = 0.5,
                 timeout_s: float | None = None):
        if timeout_s is None and latency_ms is None:
            raise CostlabError("Expected a latency budget or a fixed `timeout_s`. Received neither")
        if timeout_s is not None and not timeout_s > 0:
            raise CostlabError(f"Expected a positive `timeout_s`. Received: {timeout_s!r}")
        self.latency_ms, self.min_repeats, self.probe_time_s = latency_ms, min_repeats, probe_time_s
        self.fixed = timeout_s
        self.tracing_s: float | None = None
        self.failed: list[dict] = []  # {"sizes", "values", "status", "stage"}
        self.not_sent = 0

    def timeout_s(self) -> float:
        """The next probe's timeout: the fixed one, else the rule's with what was seen."""
        if self.fixed is not None:
            return float(self.fixed)
        return probe_timeout(self.latency_ms, min_repeats=self.min_repeats, probe_time_s=self.probe_time_s,
                             tracing_s=self.tracing_s)

    def observe(self, row: dict) -> None:
        """Learn the first-call overhead from a finished probe's row."""
        cold, warm = row.get("cold_s"), row.get("wall_s_median")
        if row.get("status") == "ok" and cold is not None and warm is not None:
            over = max(0.0, float(cold) - float(warm))
            self.tracing_s = over if self.tracing_s is None else max(self.tracing_s, over)

    def record(self, sizes: dict, values: str, row: dict, stage: str) -> None:
        """Keep `sizes` (with value pattern `values`, and the row's `repro` file) when `row`
        timed out, ran out of memory or crashed; anything else is ignored."""
        if row.get("status") in FAILED:
            self.failed.append({"sizes": {d: int(v) for d, v in sizes.items()}, "values": values,
                                "status": row["status"], "stage": stage, "repro": row.get("repro") or ""})

    def blocking(self, sizes: dict, values: str) -> dict | None:
        """The recorded failure that `sizes` is at least as large as in every dimension,
        with the same value pattern; `None` when there is none (the input may be sent)."""
        for f in self.failed:
            if f["values"] == values and f["sizes"].keys() == sizes.keys() and \
                    all(int(sizes[d]) >= v for d, v in f["sizes"].items()):
                return f
        return None

    def not_sent_row(self, blocked: dict) -> dict:
        """A probe's result for an input not sent because of `blocked` (`blocking`'s
        answer): the failure's status, and an error saying why."""
        self.not_sent += 1
        return {"status": blocked["status"],
                "error": f"not sent: at least as large in every dimension as {blocked['sizes']}, which "
                         f"ended '{blocked['status']}' in the {blocked['stage']} stage with "
                         f"{blocked['values']} values"}

    def to_dict(self) -> dict:
        return {"timeout_s": self.timeout_s(), "rule": "fixed" if self.fixed is not None else "budgets",
                "tracing_s": self.tracing_s, "failed": list(self.failed), "not_sent": self.not_sent}
