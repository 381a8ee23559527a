"""The run directory: `Run`, what `costlab run` produced, and its one reader and writer.

`Run.load(dir)` reads every file a run wrote (the report, the CI cost tests, the notebooks
and the tests read a run through it); `Run.save(dir)` writes the profile, the cost curves
and the policy. docs/run-directory.md lists the files.

Example:
    >>> run = Run.load("data/sample_run")  # doctest: +SKIP
    >>> run.policy.limits["seq_len"]["max"], sorted(run.cost_models)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from costlab.curves import CostModel
from costlab.errors import CostlabError, FitError, PolicyError
from costlab.measurement.costs import BUDGETED
from costlab.policy import Policy, joint_expression
from costlab.profiling.session import Profile
from costlab.profiling.speed import Speed, is_pulse


@dataclass
class Run:
    """What `run` produced, and where."""

    profile: Profile
    cost_models: dict
    policy: Policy
    out_dir: Path
    notes: dict
    refined: dict
    undetermined: dict  # dimension -> (consistent powers, what would decide it)
    churn: object = None  # costlab.runtime.churn.Churn, or None when not measured
    boundary: dict | None = None  # dimension -> {"limit", "boundary", "exact"}
    values: object = None  # costlab.profiling.values.ValueScan, or None when the pattern was given
    drift: object = None  # costlab.runtime.drift.Drift, or None when not measured
    skipped: list = field(default_factory=list)  # stages that failed: {"stage", "error", "sizes", "without"}
    validity: object = None  # costlab.profiling.validity.Validity, or None when not searched
    #: The stage files as JSON (`churn`, `throughput`, `values`, `drift`, `validity`,
    #: `skipped`, `settings`, `timings`; `failures` a list), for a run read back by `load`.
    files: dict = field(default_factory=dict)

    #: The stage files `load` reads, each `<name>.json` in the run directory.
    STAGE_FILES = ("boundary", "churn", "throughput", "values", "drift", "validity", "skipped", "settings", "timings")

    @classmethod
    def load(cls, run_dir) -> Run:
        """Read a run directory written by `costlab run` (or `save`).

        Raises:
            CostlabError: The directory does not exist, is not a run directory (no
                `profile.csv` and `profile.json`), or a file in it cannot be read; the
                message names the file.
        """
        run = Path(run_dir)
        if not run.exists():
            raise CostlabError(f"Run directory not found: {run_dir}")
        if not run.is_dir():
            raise CostlabError(f"Expected a run directory (written by `costlab run`). Received a file: {run_dir}")
        missing = [f for f in ("profile.csv", "profile.json") if not (run / f).is_file()]
        if missing:
            found = sorted(p.name for p in run.iterdir())[:8]
            raise CostlabError(f"Not a costlab run directory: {run_dir} (no {' or '.join(missing)}; "
                               f"it holds {found if found else 'nothing'})")
        try:
            profile = Profile.load(run)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CostlabError(f"Cannot read the profile in {run_dir}: {type(exc).__name__}: {exc}") from None
        models = {}
        if (run / "cost_models.json").is_file():
            try:
                models = {t: CostModel.from_dict(m) for t, m in _read_json(run / "cost_models.json", "cost models").items()}
            except (FitError, AttributeError) as exc:
                raise CostlabError(f"Cannot read the cost models {run / 'cost_models.json'}: {exc}") from None
        policy = None
        if (run / "policy.json").is_file():
            try:
                policy = Policy.from_json(run / "policy.json")
            except PolicyError as exc:
                raise CostlabError(str(exc)) from None
        files = {k: _read_json(run / f"{k}.json", k) for k in cls.STAGE_FILES if (run / f"{k}.json").is_file()}
        files["failures"] = []
        log = run / "failures" / "failures.jsonl"
        if log.is_file():
            for line in log.read_text().splitlines():
                try:
                    files["failures"].append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
        return cls(profile, models, policy, run, {}, {}, {}, boundary=files.get("boundary"),
                   skipped=files.get("skipped") or [], files=files)

    def save(self, out_dir=None) -> Path:
        """Write the profile (`profile.csv`, `profile.json`), the cost curves
        (`cost_models.json`) and the policy (`policy.json`) to `out_dir` (default: the run's)."""
        out = Path(out_dir or self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.profile.save(out)
        (out / "cost_models.json").write_text(
            json.dumps({t: m.to_dict() for t, m in self.cost_models.items()}, indent=2) + "\n")
        if self.policy is not None:
            self.policy.to_json(out / "policy.json")
        return out

    @property
    def exit_status(self) -> int:
        """`costlab run`'s exit status: 0, a policy was written; 3, a policy was written with
        stages skipped (`skipped`, `skipped.json`)."""
        return 3 if self.skipped else 0

    def summary(self) -> str:
        b = self.policy.budgets
        t = self.profile.table
        pulses = int(is_pulse(t).sum())
        lines = [f"costlab run: {self.profile.model.get('name')} "
                 f"({len(t) - pulses} probes, {int((t['status'] != 'ok').sum())} failed"
                 + (f", {pulses} pulses" if pulses else "") + ")",
                 f"budgets: latency {b.latency_ms:g} ms (median), memory {b.memory_mib:g} MiB (peak), "
                 f"margin {b.margin:g}",
                 "complexity:"]
        for t, m in self.cost_models.items():
            more = f" and {len(m.ambiguous_) - 2} more" if len(m.ambiguous_) > 2 else ""
            amb = f"  (also consistent: {', '.join(m.ambiguous_[:2])}{more})" if m.ambiguous_ else ""
            bound = f"; bounded beyond the range as {m.bound_complexity_}" if m.bound_complexity_ != m.complexity_ else ""
            lines.append(f"  {t:14s} {m.complexity_}{amb}{bound}")
        for t, why in self.notes.items():
            lines.append(f"  {t:14s} not fitted: {why}")
        for d, what in self.refined.items():
            lines.append(f"  {d}: {what}")
        for d, (powers, how) in self.undetermined.items():
            if "power undetermined" in self.refined.get(d, ""):
                continue  # said above, with what was measured to decide it
            lines.append(f"  {d}: power undetermined over the measured range (consistent: "
                         f"{', '.join(f'{p:g}' for p in sorted(powers))}); limits use the steepest; {how}")
        if self.values is not None:
            lines.append(self.values.summary())
        elif self.policy.value_pattern != "random":
            lines.append(f"values: measured with the {self.policy.data['value_pattern']['pattern']!r} pattern "
                         "(given); every limit is set for it")
        lines.append("limits:")
        for d, lim in self.policy.limits.items():
            lines.append(f"  {d:10s} {lim['min']}..{lim['max']}  (limited by {lim['limited_by']})")
        if self.validity is not None:
            lines.append(self.validity.summary())
        data = self.policy.data
        frac = data.get("admitted_fraction") or {}
        for j in data.get("joint") or []:
            expr = f" = {joint_expression(j)}" if any((j.get("offsets") or {}).values()) else ""
            lines.append(f"  {j['name']:10s} ≤ {j['max']}  (joint budget{expr} on {j['input']}; the per-axis box alone "
                         f"would stop at {j['box_max']}; admits {frac.get('policy', 0):.0%} of the profiled "
                         f"space against {frac.get('box', 0):.0%})")
        worst = data.get("worst_admitted") or {"sizes": {}, "predicted": {}, "upper": {}}
        pred, up = worst["predicted"], worst["upper"]
        shown = [(t, c.scale, c.short) for t, c in BUDGETED.items() if t in pred]
        lines.append(f"worst admitted input {worst['sizes']}: predicted "
                     + ", ".join(f"{pred[t] * k:.2f} {u}" for t, k, u in shown)
                     + "; upper bound " + ", ".join(f"{up[t] * k:.2f} {u}" for t, k, u in shown))
        req, srv = data.get("request") or {}, data.get("serving") or {}
        if req:
            lines.append(f"request: max payload {req['max_payload_bytes']} bytes (raw {req['max_payload_bytes_raw']}, "
                         f"JSON {req['max_payload_bytes_json']})"
                         + (f", timeout {req['timeout_ms']:g} ms" if "timeout_ms" in req else ""))
        if srv:
            mem = (f", container memory {srv['container_memory_mib']} MiB (request {srv['container_memory_request_mib']})"
                   if "container_memory_mib" in srv else "")
            rate = (f", rate limit {srv['rate_limit_rps']:g} req/s burst {srv['burst']} (measured "
                    f"{srv['throughput']['rps']:.1f} req/s with {srv['throughput']['concurrency']} concurrent clients "
                    f"at the worst admitted input)" if "rate_limit_rps" in srv else "")
            lines.append(f"serving: {srv['max_concurrency']} in flight ({srv['concurrency_from']}), queue "
                         f"{srv['max_queue']}{mem}{rate}")
        shapes = data.get("shapes")
        if shapes and shapes.get("buckets"):
            lines.append(f"shapes: pad to buckets {shapes['buckets']}, at most {shapes['max_distinct']} distinct "
                         f"shapes ({shapes['reason']})")
        if data.get("machine_speed"):
            lines.append(Speed.from_dict(data["machine_speed"]).summary())
        if self.profile.memory_fallback:
            lines.append(f"WARNING memory: {self.profile.memory_fallback}")
        cal = self.profile.calibration()
        if cal["process_peak_mib"] is not None:
            ratio = (f"; process growth / tensor peak: median {cal['ratio_median']:.2f}, "
                     f"max {cal['ratio_max']:.2f} over {cal['rows']} probes" if cal["rows"] else "")
            lines.append(f"process memory: {cal['baseline_rss_mib']:.0f} MiB before any probe, "
                         f"{cal['process_peak_mib']:.0f} MiB at most{ratio}")
        failed = self.profile.failures
        if len(failed):
            lines.append(f"failing inputs ({len(failed)}, kept in {self.out_dir}/failures/):")
            for _, r in failed.head(10).iterrows():
                lines.append(f"  {r['status']:8s} {r['input_shapes']} {r['kind']}: {r['error']}")
            if len(failed) > 10:
                lines.append(f"  … and {len(failed) - 10} more (failures/failures.jsonl)")
        if self.boundary:
            lines.append("budget boundary measured by bisection (largest size within margin × budget along one "
                         "axis; from the box corner of the first limits, then from the joint region's edges):")
            for key, b in self.boundary.items():
                d = b.get("dim", key.split("@")[0])
                if b.get("from") == "joint frontier":
                    now = next((j["max"] for j in self.policy.joint if j["name"] == d), None)
                    lines.append(f"  {d} on its whole frontier ({b['probes']} probes, latency read at "
                                 f"{b['scale']:.2f}×): the curves gave {b['limit']}, measured boundary "
                                 f"{'' if b['exact'] else '≥ '}{b['boundary']}; final limit "
                                 f"{now if now is not None else 'none (it constrains nothing)'}")
                    continue
                start = f" at {b['start']}" if "start" in b and b.get("from") != "box corner" else ""
                lines.append(f"  {d:10s} from the {b.get('from', 'box corner')}{start}: started at {b['limit']}, "
                             f"measured boundary {'' if b['exact'] else '≥ '}{b['boundary']}; final limit "
                             f"{self.policy.limits[d]['max']}")
        if self.profile.not_launched:
            worst = max(self.profile.not_launched, key=lambda p: math.prod(p["sizes"].values()))
            lines.append(f"not launched: {len(self.profile.not_launched)} probes their slice predicted over the "
                         f"hard caps (largest {worst['sizes']}, predicted over the {worst['over']} cap)")
        if self.churn is not None:
            lines.append(self.churn.summary())
        if self.drift is not None:
            lines.append(self.drift.summary())
        if self.skipped:
            lines.append(f"stages skipped ({len(self.skipped)}; the policy was written without them, "
                         f"{self.out_dir}/skipped.json):")
            for k in self.skipped:
                at = f" at {k['sizes']}" if k.get("sizes") else ""
                lines.append(f"  {k['stage']}{at}: {k['error']}; so {k['without']}")
        if self.profile.resumed:
            lines.append(f"resumed: {self.profile.resumed} probes taken from {self.out_dir}/probes.jsonl")
        timings = self.files.get("timings")
        if timings:
            spent = sorted(timings["stages"].items(), key=lambda kv: -kv[1])
            lines.append(f"time: {timings['total_s']:.0f} s in the run ("
                         + ", ".join(f"{k} {v:.0f} s" for k, v in spent if v >= 0.5) + ")")
        lines.append(f"files: {self.out_dir}/policy.json, profile.csv, cost_models.json, plots/, report.html")
        return "\n".join(lines)


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CostlabError(f"Cannot read the {what} {path}: {exc}") from None
