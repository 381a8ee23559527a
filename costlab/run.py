"""The main job: profile → fit → synthesize → write a run directory and a summary."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from . import plots
from .curves import fit_profile_notes
from .errors import FitError
from .policy import Budgets, Policy, synthesize
from .profile import Profile, profile
from .refine import boundary as _boundary
from .refine import refine as _refine
from .refine import widening


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
    churn: object = None  # costlab.churn.Churn, or None when not measured
    boundary: dict | None = None  # dimension -> {"limit", "boundary", "exact"}

    def summary(self) -> str:
        b = self.policy.budgets
        lines = [f"costlab run: {self.profile.model.get('name')} "
                 f"({len(self.profile.table)} probes, {int((self.profile.table['status'] != 'ok').sum())} failed)",
                 f"budgets: latency {b.latency_ms:g} ms (median), memory {b.memory_mib:g} MiB (peak), "
                 f"margin {b.margin:g}",
                 "complexity:"]
        for t, m in self.cost_models.items():
            more = f" and {len(m.ambiguous_) - 2} more" if len(m.ambiguous_) > 2 else ""
            amb = f"  (also consistent: {', '.join(m.ambiguous_[:2])}{more})" if m.ambiguous_ else ""
            lines.append(f"  {t:14s} {m.complexity_}{amb}")
        for t, why in self.notes.items():
            lines.append(f"  {t:14s} not fitted: {why}")
        for d, what in self.refined.items():
            lines.append(f"  {d}: {what}")
        for d, (powers, how) in self.undetermined.items():
            lines.append(f"  {d}: power undetermined over the measured range (consistent: "
                         f"{', '.join(f'{p:g}' for p in sorted(powers))}); limits use the steepest; {how}")
        lines.append("limits:")
        for d, lim in self.policy.limits.items():
            lines.append(f"  {d:10s} {lim['min']}..{lim['max']}  (limited by {lim['limited_by']})")
        any_lim = next(iter(self.policy.limits.values()))
        pred = any_lim["predicted"]
        units = {"wall_s_median": (1e3, "ms"), "peak_bytes": (1 / 2**20, "MiB")}
        shown = [(t, *units[t]) for t in units if t in pred]
        lines.append("at the limits: predicted " + ", ".join(f"{pred[t] * k:.2f} {u}" for t, k, u in shown)
                     + "; upper bound " + ", ".join(f"{any_lim['upper'][t] * k:.2f} {u}" for t, k, u in shown))
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
            lines.append("budget boundary measured from the corner of the first limits "
                         "(largest size within margin × budget, others at their limits):")
            for d, b in self.boundary.items():
                lines.append(f"  {d:10s} first limit {b['limit']}, measured boundary {'' if b['exact'] else '≥ '}"
                             f"{b['boundary']}; final limit {self.policy.limits[d]['max']}")
        if self.profile.not_launched:
            worst = max(self.profile.not_launched, key=lambda p: math.prod(p["sizes"].values()))
            lines.append(f"not launched: {len(self.profile.not_launched)} probes their slice predicted over the "
                         f"hard caps (largest {worst['sizes']}, predicted over the {worst['over']} cap)")
        if self.churn is not None:
            lines.append(self.churn.summary())
        if self.profile.resumed:
            lines.append(f"resumed: {self.profile.resumed} probes taken from {self.out_dir}/probes.jsonl")
        lines.append(f"files: {self.out_dir}/policy.json, profile.csv, cost_models.json, plots/")
        return "\n".join(lines)


def run(model, budgets, out_dir, *, space=None, extrapolate: float = 1.0, refine: bool = True,
        resume: bool = False, churn: int = 16, boundary: bool = True, **profile_kw) -> Run:
    """Profile `model`, fit its cost curves, synthesise a policy and write them to `out_dir`.

    Writes `profile.csv` (one row per probe), `profile.json` (space, model, machine),
    `probes.jsonl` (each probe as it finished), `failures/` (the inputs of every failing
    probe, `failures.jsonl` listing them), `churn.json`, `cost_models.json`
    (`{target: CostModel.to_dict()}`), `policy.json` and `plots/*.png`.

    Args:
        model: A Keras model or adapter.
        budgets: `Budgets` or a dict of its fields.
        out_dir: Run directory, created if missing.
        space: The input space. Defaults to the model's own.
        extrapolate: See `synthesize`. Defaults to `1.0`.
        refine: Where a dimension's power is undetermined or a cost could not be fitted,
            widen the range and measure the plan again (`costlab.refine`). Defaults to `True`.
        resume: Continue a run into the same `out_dir` that was interrupted (even by
            SIGKILL): probes already in its `probes.jsonl` are not measured again.
            Without it, an existing `probes.jsonl` is replaced. Defaults to `False`.
        churn: Distinct shapes sent to one fresh process to measure retracing and memory
            growth per new shape (`costlab.churn`, written to `churn.json`); `0` skips
            it. Defaults to `16`.
        boundary: After a first synthesis, bisect each limited axis from the policy's
            corner toward the measured budget boundary (`costlab.refine.boundary`), then
            fit and synthesise again with those probes. Defaults to `True`.
        **profile_kw: Passed to `profile`.

    Returns:
        A `Run`.
    """
    from .adapters import adapt

    budgets = Budgets(**budgets) if isinstance(budgets, dict) else budgets
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "probes.jsonl"
    if not resume:
        log.unlink(missing_ok=True)
    adapter = adapt(model)
    if not resume:
        for old in (out / "failures").glob("*"):
            old.unlink()
    profile_kw = {**profile_kw, "resume": resume, "failures_dir": out / "failures"}
    prof = profile(adapter, space, log_path=log, **profile_kw)
    asked = prof.space  # the range the user asked for: limits stay inside it
    models, skipped = fit_profile_notes(prof)
    refined = {}
    if refine:
        prof, models, skipped, refined = _refine(adapter, prof, models, skipped, log_path=log, **profile_kw)
    prof.save(out)  # before anything can fail: nothing measured is lost
    if not any(t in models for t in ("wall_s_median", "peak_bytes")):
        raise FitError("No cost curve could be fitted: " + "; ".join(f"{t}: {r}" for t, r in skipped.items()))
    pol = synthesize(models, budgets, space=asked, model=prof.model, measured_on=prof.machine,
                     extrapolate=extrapolate)
    found = None
    if boundary:
        prof, found = _boundary(adapter, prof, pol, asked=asked, log_path=log, **profile_kw)
        prof.save(out)
        models, skipped = fit_profile_notes(prof)
        pol = synthesize(models, budgets, space=asked, model=prof.model, measured_on=prof.machine,
                         extrapolate=extrapolate)
        (out / "boundary.json").write_text(json.dumps(found, indent=2) + "\n")
    (out / "cost_models.json").write_text(json.dumps({t: m.to_dict() for t, m in models.items()}, indent=2) + "\n")
    pol.to_json(out / "policy.json")
    plots.save_all(prof, {t: m for t, m in models.items() if t != "wall_s_p95"}, out / "plots")
    shape_churn = None
    if churn:
        from .churn import churn as measure_churn

        seen = [{d: int(r[d]) for d in prof.dims} for _, r in prof.table.iterrows()]
        shape_churn = measure_churn(adapter, asked, shapes=churn, seed=profile_kw.get("seed", 0),
                                    isolation=profile_kw.get("isolation", "inprocess"), avoid=seen,
                                    backend=profile_kw.get("backend"))
        shape_churn.save(out)
    return Run(prof, models, pol, out, skipped, refined, _undetermined(prof, models, profile_kw), shape_churn,
               found)


def _undetermined(prof, models, profile_kw) -> dict:
    """Dimensions whose power the data leave open, and whether larger sizes could be
    measured safely (checked with the same prediction `refine` uses)."""
    out = {}
    for d in prof.dims:
        powers = {c[d]["power"] for m in models.values() if d in m.undetermined_dims() for c in m.consistent_}
        if not powers:
            continue
        found = widening(prof, models, d, **profile_kw)
        how = ("larger sizes are predicted over the hard caps" if found is None else
               f"to decide it, measure larger sizes: --dim {d}={prof.space.dim(d).min}:{found[1].dim(d).max}")
        out[d] = (powers, how)
    return out
