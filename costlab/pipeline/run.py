"""The main job: profile → fit → synthesize → write a run directory and a summary."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from costlab.curves import fit_profile_notes
from costlab.errors import CostlabError, FitError, PolicyError
from costlab.measurement.executors import Workers
from costlab.measurement.hazards import Hazards
from costlab.measurement.timing import first_line
from costlab.pipeline import settings as run_settings
from costlab.pipeline.refine import below_floor, open_powers, to_multiples, to_validity, widening
from costlab.pipeline.refine import boundary as _boundary
from costlab.pipeline.refine import joint_boundary as _joint_boundary
from costlab.pipeline.refine import refine as _refine
from costlab.pipeline.refine import settle as _settle
from costlab.policy import Budgets, synthesize
from costlab.profiling.session import profile
from costlab.profiling.speed import (
    KIND,
    REFERENCE_SHARE,
    budget_reference,
)
from costlab.profiling.speed import speed as _speed
from costlab.rundir import Run
from costlab.viz import plots

#: The fewest distinct shapes per process a run reads drift at when a higher count's drift
#: cannot be carried within the budgets (it halves the count down to this).
DRIFT_MIN_SHAPES = 16


def run(model, budgets, out_dir, *, space=None, preset: str | None = None, settings=None, resume: bool = False,
        preprocess=None, progress: bool | None = None, **overrides) -> Run:
    """Profile `model`, fit its cost curves, synthesise a policy and write them to `out_dir`.

    Writes `profile.csv` (one row per probe), `profile.json` (space, model, machine),
    `probes.jsonl` (each probe as it finished), `failures/` (the inputs of every failing
    probe, `failures.jsonl` listing them), `hazards.json` (the inputs not sent again, the
    timeout rule), `churn.json`, `throughput.json`, `drift.json`, `cost_models.json`
    (`{target: CostModel.to_dict()}`), `policy.json`, `plots/*.png` and `report.html`
    (`costlab.viz.report.write_report`).

    Args:
        model: A Keras model or adapter.
        budgets: `Budgets` or a dict of its fields.
        out_dir: Run directory, created if missing.
        space: The input space. Defaults to the model's own.
        preset: `"quick"`, `"standard"` (the default) or `"thorough"`
            (`costlab.pipeline.settings.PRESETS`).
        settings: A `RunSettings`, a dict of its fields, or a JSON/YAML file of them;
            the preset applies first, then the file. Defaults to the preset alone.
        resume: Continue a run into the same `out_dir` that was interrupted (even by
            SIGKILL): probes already in its `probes.jsonl` are not measured again. The
            settings must be the run's (`settings.json`). Without it, an existing
            `probes.jsonl` is replaced. Defaults to `False`.
        preprocess: A function applied to the inputs before the model, as a serving
            function does; measured with it. Defaults to `None`.
        progress: Show progress bars. Defaults to `None` (when attached to a terminal).
        **overrides: Any setting of `RunSettings` (docs/settings.md), e.g. `churn=0`;
            an unknown name is an error listing them.

    Returns:
        A `Run`.
    """
    from costlab.adapters import adapt

    started = time.perf_counter()
    budgets = Budgets(**budgets) if isinstance(budgets, dict) else budgets
    chosen = run_settings.resolve(preset, settings, **overrides)
    out = Path(out_dir)
    if resume:
        run_settings.check_resume(out, chosen)
    out.mkdir(parents=True, exist_ok=True)
    run_settings.write(out, chosen)
    stages = _Stages(out, seed=chosen.seed, started=started)
    (extrapolate, refine, settle, churn, boundary, throughput_s, joint, timeout_factor, pulse, joint_offsets, values,
     drift_shapes, drift_checks, drift_share, validity, hard_min) = (
        getattr(chosen, k) for k in ("extrapolate", "refine", "settle", "churn", "boundary", "throughput_s", "joint",
                                     "timeout_factor", "pulse", "joint_offsets", "values", "drift_shapes",
                                     "drift_checks", "drift_share", "validity", "hard_min"))
    profile_kw = {**chosen.profile_kw(), "preprocess": preprocess, "progress": progress}
    # every stage's isolated probes take the timeout from the budgets, and nothing as large
    # as an input that timed out, ran out of memory or crashed is sent again (docs/cli.md)
    hazards = Hazards(budgets.latency_ms, min_repeats=chosen.min_repeats, probe_time_s=chosen.probe_time_s,
                      timeout_s=chosen.timeout_s)
    profile_kw["hazards"] = hazards
    # one warm probe worker (and one pulse worker) for every measuring stage up to the
    # boundary searches: TensorFlow starts once, not once per stage
    profile_kw["workers"] = workers = Workers()
    try:
        log = out / "probes.jsonl"
        if not resume:
            log.unlink(missing_ok=True)
        adapter = adapt(model, call=chosen.call)
        if profile_kw.get("preprocess") is not None:  # every stage (churn, throughput, drift) runs what a server runs
            from costlab.adapters.preprocessed import Preprocessed

            adapter = adapter if isinstance(adapter, Preprocessed) else Preprocessed(adapter, profile_kw["preprocess"])
        if not resume:
            for old in (out / "failures").glob("*"):
                old.unlink()
            (out / "drift.json").unlink(missing_ok=True)  # rewritten only when measured
        (out / "skipped.json").unlink(missing_ok=True)  # rewritten only when a stage fails
        (out / "validity.json").unlink(missing_ok=True)
        if not isinstance(pulse, int) or isinstance(pulse, bool) or pulse < 0:
            raise CostlabError(f"Expected a non-negative integer `pulse`. Received: pulse={pulse!r}")
        if pulse:  # one reference for every stage, so their pulses compare
            from costlab.inputs.space import InputSpace

            ref_space = space or InputSpace.from_model(adapter)
            profile_kw["pulse"] = {"sizes": stages.timed("speed reference", lambda: _reference(
                adapter, ref_space, budgets, log, resume, profile_kw)), "every": pulse}
        profile_kw = {**profile_kw, "resume": resume, "failures_dir": out / "failures"}
        found_values, value_pattern = None, None
        if values == "auto":
            from costlab.profiling.values import scan

            found_values = stages.attempt(
                "value scan", "every size was measured with random values",
                lambda: scan(adapter, space, log_path=log, seed=profile_kw.get("seed", 0),
                             **{k: v for k, v in profile_kw.items() if k != "seed"}))
            if found_values is not None:
                value_pattern = found_values.to_dict()
                (out / "values.json").write_text(json.dumps(value_pattern, indent=2) + "\n")
            profile_kw["values"] = found_values.pattern if found_values is not None else "random"
        else:
            from costlab.inputs.space import VALUE_PATTERNS

            if values not in VALUE_PATTERNS:
                raise CostlabError(f"Expected `values` to be 'auto' or one of {', '.join(VALUE_PATTERNS)}. "
                                   f"Received: values={values!r}")
            value_pattern = {"pattern": values, "chosen_by": "given"}
            profile_kw["values"] = values
        prof = stages.timed("size plan", lambda: profile(adapter, space, log_path=log, **profile_kw))
        if found_values is not None and found_values.probes is not None and len(found_values.probes):
            import pandas as pd  # the scan's rows first, as measured; `fit` leaves them out

            prof.table = pd.concat([found_values.probes, prof.table], ignore_index=True)
        asked = prof.space  # the range the user asked for: limits stay inside it
        models, skipped = fit_profile_notes(prof)
        refined = {}
        prof.save(out)  # before anything can fail: nothing measured is lost
        valid = None
        if validity:
            from costlab.profiling.validity import find as find_validity

            valid = stages.attempt(
                "validity search", "the model's own limits were not searched in a fresh process",
                lambda: find_validity(adapter, prof, space=asked, values=profile_kw["values"],
                                      seed=profile_kw.get("seed", 0), floor=None if hard_min else dict.fromkeys(asked.dim_names, 1),
                                      memory_cap_mib=profile_kw.get("memory_cap_mib") or 4096,
                                      timeout_s=hazards.timeout_s(), backend=profile_kw.get("backend"), hazards=hazards))
            if valid is not None:
                (out / "validity.json").write_text(json.dumps({**valid.to_dict(), "verdicts": valid.verdicts},
                                                              indent=2) + "\n")
                if valid.limits:
                    # nothing past them (or off a divisor rule) is admitted or searched
                    asked = asked.with_bounds(**valid.bounds(asked)).with_multiples(**valid.multiples())
                    if valid.multiples():  # later plans (refinement, settling) step through the multiples
                        prof = replace(prof, space=prof.space.with_multiples(**valid.multiples()))
                        prof, models, skipped, again = stages.timed("validity search", lambda prof=prof: to_multiples(
                            adapter, prof, asked, log_path=log, **profile_kw))
                        refined = {**refined, **again}
                    prof, models, skipped, reached = stages.timed("validity search", lambda prof=prof: to_validity(
                        adapter, prof, valid, asked, log_path=log, **profile_kw))
                    refined = {**refined, **{d: f"{refined[d]}; {n}" if d in refined else n for d, n in reached.items()}}
                    prof.save(out)
                below = {d: valid.floor[d] for d in asked.dim_names
                         if valid.floor and valid.floor[d] < asked.dim(d).min}
                measured = (stages.attempt("floor", "nothing under the declared minima is admitted",
                                           lambda: below_floor(adapter, prof, valid.floor, asked, log_path=log,
                                                               **profile_kw))
                            if below and not hard_min else None)
                if measured is not None:
                    prof, accepted, note = measured
                    prof.save(out)
                    models, skipped = fit_profile_notes(prof)
                    for d in below:
                        refined[d] = (f"admitted from {d}={below[d]}, under the declared {asked.dim(d).min}: "
                                      if accepted else f"not admitted under the declared {d}={asked.dim(d).min}: ") + note
                    if accepted:
                        asked = asked.with_bounds(**{d: (v, asked.dim(d).max) for d, v in below.items()})
        ceiling = {d: lim["max"] for d, lim in (valid.limits if valid is not None else {}).items()
                   if lim.get("max") is not None}
        if refine:
            prof, models, skipped, widened = stages.timed("refine", lambda: _refine(
                adapter, prof, models, skipped, log_path=log, ceiling=ceiling, **profile_kw))
            refined = {**refined, **{d: f"{refined[d]}; {n}" if d in refined else n for d, n in widened.items()}}
        if settle:
            prof, models, skipped, settled = stages.timed("settle", lambda: _settle(
                adapter, prof, models, skipped, passes=settle, log_path=log, ceiling=ceiling, **profile_kw))
            refined = {**refined, **{d: f"{refined[d]}; {n}" if d in refined else n for d, n in settled.items()}}
        prof.save(out)  # before anything can fail: nothing measured is lost
        if not any(t in models for t in ("wall_s_median", "peak_bytes")):
            raise FitError("No cost curve could be fitted: " + "; ".join(f"{t}: {r}" for t, r in skipped.items()))
        synth_kw = dict(space=asked, extrapolate=extrapolate, joint=joint, timeout_factor=timeout_factor,
                        joint_offsets=joint_offsets, value_pattern=value_pattern,
                        validity=valid.to_dict() if valid is not None else None,
                        memory_source=_memory_source(prof))
        # The boundary search starts from the corner of a per-axis box: no joint budget yet.
        pol = synthesize(models, budgets, model=prof.model, measured_on=prof.machine,
                         calibration=prof.calibration(), speed=_speed(prof.table), **{**synth_kw, "joint": False})
        found = None
        searched = (stages.attempt("boundary search", "the limits rest on the curves alone, with no bisection of "
                                   "the budget boundary",
                                   lambda: _boundary(adapter, prof, pol, asked=asked, log_path=log, **profile_kw))
                    if boundary else None)
        if searched is not None:
            prof, found = searched
            found = {d: {**b, "from": "box corner"} for d, b in found.items()}
            prof.save(out)
            models, skipped = fit_profile_notes(prof)
            pol = synthesize(models, budgets, model=prof.model, measured_on=prof.machine,
                             calibration=prof.calibration(), speed=_speed(prof.table), **synth_kw)
            if pol.data["joint"]:
                # Joint budgets cut the box's corner off: search again from the most expensive
                # admitted input with each budget-limited dimension at its new limit, and from
                # the most expensive input on each joint budget along each of its dimensions.
                from costlab.policy import edge_points, worst_on_joint

                region = pol.region()
                searches = {f"{d}@edge": (d, start) for d, start in edge_points(region).items()
                            if pol.limits[d]["limited_by"] in ("latency", "latency p99", "memory")}
                for j in pol.data["joint"]:
                    w = worst_on_joint(models, budgets, region, j["dims"], j["max"])
                    searches.update({f"{d}@{j['name']}": (d, w) for d in j["dims"] if w[d] < asked.dim(d).max})
                searched = stages.attempt(
                    "boundary search", "the joint region's edges were not bisected",
                    lambda: _boundary(adapter, prof, pol, asked=asked, log_path=log, searches=searches, **profile_kw))
                if searched is not None:
                    prof, again = searched
                    found.update({k: {**b, "from": "joint edge" if k.endswith("@edge") else
                                      "joint budget " + k.split("@")[1]} for k, b in again.items()})
                    prof.save(out)
                    models, skipped = fit_profile_notes(prof)
                    pol = synthesize(models, budgets, model=prof.model, measured_on=prof.machine,
                                     calibration=prof.calibration(), speed=_speed(prof.table), **synth_kw)
            if pol.data["joint"]:
                # Each joint maximum measured on its whole frontier: the curves' product form
                # cannot follow a cost that depends on the mix of sizes at one product. The
                # policy is synthesised from the same curves with the measured maxima, so the
                # offsets and axis maxima the search measured are the policy's.
                measured = stages.attempt(
                    "joint boundary search", "the joint budgets rest on the curves alone",
                    lambda: _joint_boundary(adapter, prof, pol, models, asked=asked, log_path=log, **profile_kw))
                if measured is not None:
                    prof, joints = measured
                    prof.save(out)
                    found.update({f"{k}@frontier": {"limit": b["curve"], "boundary": b["boundary"],
                                                     "exact": b["exact"], "dim": k, "from": "joint frontier",
                                                     "probes": b["probes"], "scale": b["scale"]}
                                  for k, b in joints.items()})
                    # lowered where the frontier measured over budget; never raised past the curves:
                    # a boundary measured in one stretch of a shared host reads up to 1.3× apart in
                    # another (benchmarks/results/realworld.md), and the curves' bound carries it
                    synth_kw["joint_max"] = {k: min(b["curve"], b["boundary"]) for k, b in joints.items()}
                    pol = synthesize(models, budgets, model=prof.model, measured_on=prof.machine,
                                     calibration=prof.calibration(), speed=_speed(prof.table), **synth_kw)
            (out / "boundary.json").write_text(json.dumps(found, indent=2) + "\n")
        else:
            pol = synthesize(models, budgets, model=prof.model, measured_on=prof.machine,
                             calibration=prof.calibration(), speed=_speed(prof.table), **synth_kw)
    finally:
        workers.close()
    (out / "cost_models.json").write_text(json.dumps({t: m.to_dict() for t, m in models.items()}, indent=2) + "\n")
    pol.to_json(out / "policy.json")  # written now, rewritten below with the serving figures
    isolation = profile_kw.get("isolation", "inprocess")
    shape_churn = None
    if churn:
        from costlab.runtime.churn import churn as measure_churn

        seen = [{d: int(r[d]) for d in prof.dims} for _, r in prof.table.iterrows()]
        shape_churn = stages.attempt(
            "shape churn", "the policy has no shape buckets and no cap on distinct shapes",
            lambda: measure_churn(adapter, asked, shapes=churn, seed=profile_kw.get("seed", 0),
                                  isolation=isolation, avoid=seen, backend=profile_kw.get("backend"),
                                  hazards=hazards))
        if shape_churn is not None:
            shape_churn.save(out)
    rate = None
    if throughput_s:
        from costlab.runtime.throughput import measure as measure_throughput

        worst = pol.worst_admitted["sizes"]
        rate = stages.attempt(
            "throughput", "the policy has no measured rate limit",
            lambda: measure_throughput(adapter, worst, space=asked,
                                       concurrency=pol.serving["max_concurrency"], duration_s=throughput_s,
                                       isolation=isolation, backend=profile_kw.get("backend"),
                                       seed=profile_kw.get("seed", 0), values=profile_kw["values"]),
            sizes=worst, inputs=lambda: asked.pattern_inputs(worst, seed=profile_kw.get("seed", 0),
                                                            values=profile_kw["values"]),
            values=profile_kw["values"])
        if rate is not None:
            (out / "throughput.json").write_text(json.dumps(rate, indent=2) + "\n")
    if shape_churn is not None or rate is not None:
        pol = synthesize(models, budgets, model=prof.model, measured_on=prof.machine, calibration=prof.calibration(),
                         speed=_speed(prof.table), churn=shape_churn.figures if shape_churn is not None else None, throughput=rate, **synth_kw)
        pol.to_json(out / "policy.json")
    drift = None
    if drift_shapes and shape_churn is not None and chosen.drift == "off":
        from costlab.runtime.drift import Drift

        drift = Drift({}, 0, 0, {}, {}, {}, {}, notes=["settings drift: off"])
    elif drift_shapes and shape_churn is not None and (isolation == "subprocess" or profile_kw.get("backend")):
        from costlab.runtime.drift import checked_drift

        cap = pol.shapes.get("max_distinct")
        n, higher = min(cap or drift_shapes, drift_shapes), []
        allowed_s = drift_share * budgets.margin * budgets.latency_ms / 1e3

        def plan(drift):
            # the joint maxima were measured without drift: with drift planned, the curves decide
            kw = {k: v for k, v in synth_kw.items() if k != "joint_max" or not drift.planned_s > 0}
            return synthesize(models, budgets, model=prof.model, measured_on=prof.machine,
                              calibration=prof.calibration(), speed=_speed(prof.table), churn=shape_churn.figures,
                              throughput=rate, drift=drift.to_dict(), **kw)

        while True:
            # Read the drift at `n` shapes per process, and again at a lower count (the
            # policy then holds a process to it) while no input can carry it, or while it
            # takes more than `drift_share` of margin × latency budget (`next_drift_count`).
            drift = stages.attempt(
                "shape drift", "nothing is planned for drift", lambda n=n: checked_drift(
                    adapter, pol, checks=drift_checks, shapes=n, seed=profile_kw.get("seed", 0),
                    values=profile_kw["values"], memory_cap_mib=profile_kw.get("memory_cap_mib") or 4096,
                    timeout_s=hazards.timeout_s(), backend=profile_kw.get("backend")))
            if drift is None:
                planned = pol
                break
            drift.higher = list(higher)
            drift.save(out)
            try:
                planned, failed = plan(drift), None
            except PolicyError as exc:
                planned, failed = None, exc
            over = planned is not None and drift.planned_s > allowed_s
            padded = (planned.shapes.get("padded_shapes") or 0) if planned is not None else 0
            lower = next_drift_count(n, carried=planned is not None, over_share=over, padded=padded)
            why = (f"over {drift_share:g} of margin × latency budget, {allowed_s * 1e3:.2f} ms" if over
                   else "no input meets the budgets with it")
            if lower == n and planned is None:
                tried = " or ".join(f"{h['shapes']} shapes per process" for h in higher) or "a higher count"
                (out / "policy.json").replace(out / "policy_without_drift.json")  # not a policy to deploy
                raise PolicyError(
                    f"{drift.summary()}; with that added, no input meets the budgets ({failed}), nor at "
                    f"{tried}. "
                    "Raise the budgets; or, if each serving process is restarted after fewer distinct shapes, "
                    f"measure at that count (--drift-shapes N). The measurements are kept in {out}: "
                    "profile.csv, drift.json, and the policy before drift as policy_without_drift.json") from None
            if lower == n:
                if over:  # the fewest it is read at: kept, over the share
                    drift.notes.append(f"kept at {n} shapes per process though {why}: not read lower than "
                                       f"{DRIFT_MIN_SHAPES} shapes, nor than the policy's {padded} padded shapes")
                    drift.save(out)
                    planned = plan(drift)  # the policy's shapes.drift carries the note
                break
            higher.append({"shapes": drift.shapes, "planned_ms": round(drift.planned_s * 1e3, 4), "why": why})
            n = lower
        pol = planned
        pol.to_json(out / "policy.json")
    elif drift_shapes and shape_churn is not None:
        from costlab.runtime.drift import Drift

        drift = Drift({}, 0, 0, {}, {}, {}, {}, notes=[
            "this run's probes ran in one process (isolation='inprocess'), and the check needs a fresh isolated "
            "worker and a control: --isolation subprocess"])
    (out / "hazards.json").write_text(json.dumps(hazards.to_dict(), indent=2) + "\n")
    stages.attempt("plots", "plots/ is incomplete",
                   lambda: plots.save_all(prof, {t: m for t, m in models.items() if t not in ("wall_s_p95", "wall_s_p99")},
                                          out / "plots", policy=pol))
    from costlab.viz.report import write_report

    # report.html: everything above in one self-contained file (it lists the stages skipped)
    stages.attempt("report", "there is no report.html", lambda: write_report(out))
    timings = stages.timings()
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    return Run(prof, models, pol, out, skipped, refined, _undetermined(prof, models, profile_kw, ceiling), shape_churn,
               found, found_values, drift, skipped=stages.skipped, validity=valid, files={"timings": timings})


class _Stages:
    """Runs the stages around the measurements (value scan, boundary search, churn,
    throughput, drift, plots, report) so that one that fails is recorded and the run goes on
    to its policy: `skipped` (in `skipped.json`) lists each with its error and what the
    policy lacks for it; the input it failed on, when known, is kept under `failures/`."""

    def __init__(self, out: Path, *, seed: int, started: float):
        self.out, self.seed, self.skipped = out, seed, []
        self.started, self.seconds = started, {}  # `time.perf_counter()` at the start; wall seconds per stage

    def timed(self, stage: str, fn):
        """`fn()`, its wall time added to `stage`'s; an exception propagates."""
        t0 = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - t0

    def timings(self) -> dict:
        """`{"total_s", "stages": {stage: s}}`: the run so far; the rest (loading the model,
        fitting, synthesis) is `total_s` less the stages."""
        return {"total_s": round(time.perf_counter() - self.started, 3),
                "stages": {k: round(v, 3) for k, v in self.seconds.items()}}

    def attempt(self, stage: str, without: str, fn, *, sizes=None, inputs=None, values="random"):
        """`fn()`, or `None` when it raised (recorded); its wall time is `stage`'s."""
        try:
            return self.timed(stage, fn)
        except PolicyError:
            raise  # budgets no input meets: a verdict on the budgets, not a stage failing
        except Exception as exc:  # noqa: BLE001 - a stage's failure is data: the run goes on to its policy
            text = str(exc).strip() if isinstance(exc, CostlabError) else first_line(exc)
            entry = {"stage": stage, "error": text.splitlines()[0] if text else type(exc).__name__,
                     "sizes": {k: int(v) for k, v in sizes.items()} if sizes else None, "without": without,
                     "repro": ""}
            if inputs is not None:
                entry["repro"] = self._keep(stage, entry, inputs(), values)
            self.skipped.append(entry)
            (self.out / "skipped.json").write_text(json.dumps(self.skipped, indent=2) + "\n")
            return None

    def _keep(self, stage, entry, inputs, values) -> str:
        from costlab.profiling.table import save_failure

        row = {"plan": "stage", "probe": f"{stage.replace(' ', '_')}/{len(self.skipped)}", "kind": stage,
               "status": "error", "error": entry["error"], "seed": self.seed, "values": values,
               "input_shapes": json.dumps({k: list(v.shape) for k, v in inputs.items()}), **entry["sizes"]}
        return save_failure(self.out / "failures", row, inputs, list(entry["sizes"]))


def _memory_source(prof) -> str | None:
    """The memory source most of the profile's successful probes read (`peak_bytes`)."""
    ok = prof.ok
    if "memory_source" not in ok.columns or ok["memory_source"].dropna().empty:
        return None
    return str(ok["memory_source"].dropna().mode().iloc[0])


def next_drift_count(n: int, *, carried: bool, over_share: bool, padded: int) -> int:
    """The count of shapes per process to read the drift at after reading it at `n`; `n`
    itself to keep the reading (or, when not `carried`, to give up).

    Not `carried` (no input meets the budgets with the drift added): half of `n`. Carried but
    `over_share` (the planned drift takes more than `run`'s `drift_share` of margin ×
    latency budget): half of `n`, but not below the policy's `padded` shapes, as a server
    padding to the buckets holds no more. Never below `DRIFT_MIN_SHAPES`: where the half is
    under it, `n` is returned.

    Example:
        >>> next_drift_count(300, carried=True, over_share=True, padded=56)
        150
    """
    half = n // 2 if n // 2 >= DRIFT_MIN_SHAPES else n
    if not carried:
        return half
    if not over_share:
        return n
    return max(half, min(padded, n))


def _reference(adapter, space, budgets, log: Path, resume: bool, profile_kw: dict) -> dict:
    """The pulses' reference sizes: a resumed run's own (its log's first pulse), else the
    input on the space's diagonal costing `REFERENCE_SHARE` of the latency budget
    (`costlab.profiling.speed.budget_reference`, measured in a session like the run's, so in its
    isolation)."""
    if resume:
        from costlab.profiling.table import read_log

        for row in read_log(log):
            if row.get("kind") == KIND and all(d in row for d in space.dim_names):
                return {d: int(row[d]) for d in space.dim_names}
    from costlab.profiling.session import session

    kw = {k: v for k, v in profile_kw.items() if k not in ("resume", "log_path", "failures_dir", "pulse", "progress")}
    with session(adapter, space, plan="reference", total=0, progress=False, **kw) as s:
        sizes, _ = budget_reference(s.executor.pulse, space, REFERENCE_SHARE * budgets.latency_ms / 1e3)
    return sizes


def _undetermined(prof, models, profile_kw, ceiling=None) -> dict:
    """Dimensions whose power the data leave open, and whether larger sizes could be
    measured safely (checked with the same prediction `refine` uses)."""
    out = {}
    for d in prof.dims:
        powers = open_powers(models, d)
        if not powers:
            continue
        found = widening(prof, models, d, ceiling=ceiling, **profile_kw)
        how = ("larger sizes are at the model's validity limit" if found is None and d in (ceiling or {})
               and prof.space.dim(d).max >= ceiling[d] else
               "larger sizes are predicted over the hard caps" if found is None else
               f"to decide it, measure larger sizes: --dim {d}={prof.space.dim(d).min}:{found[1].dim(d).max}")
        out[d] = (powers, how)
    return out
