"""The `costlab` command line: `run`, `verify`, `export`, `report`.

Every error a user can cause prints one line, `costlab: error: ...`, and exits 2.
`costlab run` exits 0 when it wrote a policy, 3 when it wrote one with stages skipped
(a stage after the measurements failed: the summary and `skipped.json` say which and
why), 2 on an error with no policy written.
"""

from __future__ import annotations

import argparse
import os
import sys

from costlab import _env
from costlab.errors import CostlabError
from costlab.inputs.space import VALUE_PATTERNS


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as for every other user error
        self.exit(2, f"costlab: error: {message} (see `{self.prog} --help`)\n")


def _share(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], received {text!r}") from None
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"expected a share in (0, 1], received {text!r}")
    return v


def _number(kind, *, allow_zero=False):
    what = f"{'non-negative' if allow_zero else 'positive'} {kind.__name__}"

    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what}, received {text!r}") from None
        if not (v >= 0 if allow_zero else v > 0):
            raise argparse.ArgumentTypeError(f"expected a {what}, received {text!r}")
        return v
    parse.__name__ = kind.__name__
    return parse



def _dim(text):
    try:
        name, rng = text.split("=", 1)
        lo, hi = rng.split(":", 1)
        return name.strip(), (int(lo), int(hi))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=MIN:MAX (e.g. seq_len=8:512), received {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="costlab", description="Measure what each input costs a model and write input limits.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    model_help = ("zoo:NAME, candle:NAME, a path to a .keras file, or module:attribute "
                  "(a Keras model, an adapter, or a factory returning one)")

    r = sub.add_parser("run", help="profile a model, fit cost curves, write a policy",
                       epilog="exit status: 0 a policy was written; 3 a policy was written with stages skipped "
                              "(skipped.json says which and why); 2 an error, no policy")
    r.add_argument("model", help=model_help)
    r.add_argument("--latency-ms", type=_number(float), help="median (p50) latency budget per request")
    r.add_argument("--memory-mib", type=_number(float), help="peak tensor memory budget per request")
    r.add_argument("--latency-p99-ms", type=_number(float), help="tail (p99) latency budget per request")
    r.add_argument("--process-memory-mib", type=_number(float),
                   help="memory of the whole serving process (container limit): bounds concurrency")
    r.add_argument("--cores", type=_number(int), help="cores the server gets (default: this host's)")
    r.add_argument("--budgets", metavar="FILE",
                   help="budgets from a JSON or YAML file (fields of costlab.Budgets); flags given win")
    r.add_argument("--out", required=True, help="run directory to write")
    r.add_argument("--margin", type=_number(float), default=None, help="keep upper bounds under margin × budget (default 0.9)")
    r.add_argument("--no-joint", action="store_true", help="per-axis limits only, no joint budgets (tokens = batch × seq_len)")
    r.add_argument("--plain-joint", action="store_true",
                   help="joint budgets as plain products only, no offsets such as (batch + 185) × seq_len")
    r.add_argument("--hard-min", action="store_true",
                   help="the space's minima are hard floors: admit nothing under them (by default sizes under "
                        "them down to the model's validity minimum are admitted where a probe shows they cost no more)")
    r.add_argument("--throughput-s", type=_number(float, allow_zero=True), default=3.0,
                   help="seconds of the concurrent run the rate limit comes from; 0 skips it (default 3)")
    r.add_argument("--timeout-factor", type=_number(float), default=3.0,
                   help="request timeout over the worst admitted tail latency (default 3)")
    r.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=MIN:MAX",
                   help="range to explore for a dimension (repeatable)")
    r.add_argument("--space", help="input space file, JSON or YAML (the layout of InputSpace.to_json), "
                                   "overriding the model's")
    r.add_argument("--points", type=_number(int), default=7, help="sizes per dimension slice (default 7)")
    r.add_argument("--examples", type=_number(int, allow_zero=True), default=8, help="Hypothesis-drawn probes (default 8)")
    r.add_argument("--rounds", type=_number(int), default=2,
                   help="times the size plan is measured; replicates are pooled by median (default 2)")
    r.add_argument("--probe-time", type=_number(float), default=0.5, help="seconds of repeats per probe (default 0.5)")
    r.add_argument("--extrapolate", type=_number(float), default=1.0,
                   help="limits may reach this multiple of the largest measured size (default 1)")
    r.add_argument("--no-refine", action="store_true",
                   help="do not widen ranges where a cost could not be fitted (peaks under the resolution)")
    r.add_argument("--settle", type=_number(int, allow_zero=True), default=1,
                   help="while a dimension's growth class is undetermined, measure more (larger sizes "
                        "within the caps, else replicates) up to N times per dimension; 0 only reports it "
                        "(default 1)")
    r.add_argument("--no-boundary", action="store_true",
                   help="do not bisect each limited axis toward the measured budget boundary before "
                        "the final fit")
    r.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                   help="Keras backend to profile a Keras model under, in isolated workers "
                        "(default: tensorflow, in the workers' default environment)")
    r.add_argument("--call", default="predict_on_batch", choices=["predict_on_batch", "call", "predict"])
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--isolation", choices=["subprocess", "inprocess"], default="subprocess",
                   help="run probes in worker processes under a memory cap and a timeout (default), "
                        "or in this process (faster; a hostile probe can take it down)")
    r.add_argument("--memory-cap-mib", type=_number(float), default=None,
                   help="hard cap on the memory one isolated probe may add (default 8192)")
    r.add_argument("--timeout", type=_number(float), default=None,
                   help="seconds one isolated probe may take in all (default 60)")
    r.add_argument("--probes-per-worker", type=_number(int), default=None,
                   help="start a fresh worker after this many probes (1: a process per probe)")
    r.add_argument("--preprocess", metavar="MODULE:FUNCTION",
                   help="a Python function applied to the inputs before the model, as your serving code "
                        "does: measured with it, and its memory line by line (preprocess_memory.csv)")
    r.add_argument("--churn", type=_number(int, allow_zero=True), default=16,
                   help="distinct shapes sent to one fresh process to measure retracing and memory "
                        "growth per new shape (default 16; 0 skips it)")
    r.add_argument("--drift-shapes", type=_number(int, allow_zero=True), default=300,
                   help="read the policy's frontier before and after this many distinct shapes in one "
                        "isolated worker (at most shapes.max_distinct) and plan for the time they add "
                        "(drift.json, shapes.drift; default 300; 0 skips it; read again at half the count, "
                        "down to 16, while no input carries it or it is over --drift-share)")
    r.add_argument("--drift-share", type=_share, default=0.25,
                   help="read the drift again at half the count while it takes more than this share of "
                        "margin × latency budget, not below the policy's padded shapes (default 0.25; "
                        "1: only when no input carries it)")
    r.add_argument("--drift-checks", type=_number(int), default=2,
                   help="drift checks made, each in its own pair of workers: the largest reading is kept "
                        "(one check can read far under the drift; default 2)")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out: probes in its probes.jsonl are kept")
    r.add_argument("--pulse", type=_number(int, allow_zero=True), default=3,
                   help="measure a reference input before every N-th probe: the machine-speed index times "
                        "are fitted against, the policy's machine_speed (default 3; 0: off)")
    r.add_argument("--values", choices=("auto", *VALUE_PATTERNS), default="auto",
                   help="values every size is measured with: auto (default) scans each value pattern against "
                        "random values and measures with the one that costs the model most, when it costs "
                        "≥ 1.25× random (values.json); or a pattern")

    v = sub.add_parser("verify", help="re-measure inputs at and inside a policy's limits")
    v.add_argument("model", help=model_help)
    v.add_argument("policy", help="policy.json written by `costlab run`")
    v.add_argument("--probes", type=_number(int), default=200,
                   help="admitted inputs to measure, weighted to the boundary (default 200)")
    v.add_argument("--no-tightness", action="store_true", help="skip bisecting each limit toward its boundary")
    v.add_argument("--isolation", choices=["subprocess", "inprocess"], default="subprocess",
                   help="measure in worker processes under a memory cap (default) or in this process")
    v.add_argument("--probe-time", type=_number(float), default=0.2, help="seconds of repeats per probe (default 0.2)")
    v.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None, help="Keras backend")
    v.add_argument("--draws", type=_number(int), default=5,
                   help="measurements per input at each step of the boundary search; a step is within "
                        "only when all are (default 5)")
    v.add_argument("--out", metavar="DIR",
                   help="write verify.csv (probes), tightness.csv and tightness_probes.csv (the search's), "
                        "over_bound.csv (costs over the policy's upper bound) here")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--pulse", type=_number(int, allow_zero=True), default=3,
                   help="measure the policy's reference input before every N-th probe: the speed the machine "
                        "runs at against the profile's (default 3; 0: off, raw latencies throughout)")

    rp = sub.add_parser("report", help="write one self-contained HTML report of a run directory")
    rp.add_argument("run_dir", metavar="RUN_DIR", help="directory written by `costlab run`")
    rp.add_argument("--out", metavar="FILE", help="file to write (default: RUN_DIR/report.html)")

    e = sub.add_parser("export", help="write a policy as a serving configuration")
    e.add_argument("policy", help="policy.json written by `costlab run`")
    e.add_argument("--to", required=True, choices=[*_formats(), "all"], help="format, or all of them")
    e.add_argument("--out", help="file to write (a directory for --to all); default: standard output")
    e.add_argument("--model-name", help="model name to use in the configuration (default: the policy's)")
    return p


def _formats():
    from costlab.checks.exports import FORMATS

    return list(FORMATS)


#: File names `export --to all` writes.
EXPORT_FILES = {"tfserving": "batching_parameters.txt", "triton": "config.pbtxt", "kubernetes": "resources.yaml",
                "nginx": "nginx.conf", "ray": "serve_config.yaml", "bentoml": "bentoml_config.yaml",
                "kserve": "inferenceservice.yaml"}


def _cmd_run(args) -> int:
    from costlab import loading
    from costlab.inputs.space import InputSpace
    from costlab.pipeline.run import run
    from costlab.policy import Budgets

    flags = {"latency_ms": args.latency_ms, "memory_mib": args.memory_mib, "margin": args.margin,
             "latency_p99_ms": args.latency_p99_ms, "process_memory_mib": args.process_memory_mib,
             "cores": args.cores}
    if args.budgets:
        budgets = Budgets.from_file(args.budgets, **flags)
    else:
        missing = [f"--{k.replace('_', '-')}" for k in ("latency_ms", "memory_mib") if flags[k] is None]
        if missing:
            raise CostlabError(f"the budgets {' and '.join(missing)} are required (or --budgets FILE)")
        budgets = Budgets(**{k: v for k, v in flags.items() if v is not None})
    if args.space and not os.path.isfile(args.space):
        raise CostlabError(f"Input space file not found: {args.space}")
    adapter = loading.load(args.model, call=args.call)
    space = (InputSpace.from_file(args.space).check_model(adapter) if args.space
             else InputSpace.from_model(adapter))
    if args.dim:
        space = space.with_bounds(**dict(args.dim))
    preprocess = _import_function(args.preprocess) if args.preprocess else None
    result = run(adapter, budgets, args.out, preprocess=preprocess, space=space, points=args.points, examples=args.examples,
                 rounds=args.rounds, refine=not args.no_refine, settle=args.settle, probe_time_s=args.probe_time,
                 extrapolate=args.extrapolate, seed=args.seed, isolation=args.isolation,
                 memory_cap_mib=args.memory_cap_mib, timeout_s=args.timeout,
                 probes_per_worker=args.probes_per_worker, resume=args.resume, churn=args.churn,
                 boundary=not args.no_boundary, backend=args.backend, joint=not args.no_joint,
                 joint_offsets=not args.plain_joint,
                 throughput_s=args.throughput_s, timeout_factor=args.timeout_factor, pulse=args.pulse,
                 values=args.values, drift_shapes=args.drift_shapes,
                 drift_checks=args.drift_checks, drift_share=args.drift_share, hard_min=args.hard_min)
    print(result.summary())
    return result.exit_status  # 0: a policy; 3: a policy, with stages skipped


def _import_function(spec: str):
    from costlab.loading import import_attribute

    if ":" not in spec:
        raise CostlabError(f"Expected MODULE:FUNCTION for --preprocess. Received: {spec!r}")
    obj = import_attribute(spec, error=CostlabError)
    if not callable(obj):
        raise CostlabError(f"--preprocess {spec!r} is not a function. Received: {type(obj).__name__}")
    return obj


def _cmd_verify(args) -> int:
    from costlab import loading
    from costlab.checks.verify import verify
    from costlab.policy import Policy

    policy = Policy.from_json(args.policy)
    adapter = loading.load(args.model, call=policy.data["model"].get("call", "predict_on_batch"))
    if adapter.describe()["sha256"] != policy.data["model"]["sha256"]:
        print(f"costlab: warning: {args.model} is not the model {args.policy} was made for "
              f"(sha256 differs)", file=sys.stderr)
    report = verify(adapter, policy, probes=args.probes, seed=args.seed, tightness=not args.no_tightness,
                    isolation=args.isolation, probe_time_s=args.probe_time, backend=args.backend,
                    pulse=args.pulse, draws=args.draws)
    if args.out:
        from pathlib import Path

        Path(args.out).mkdir(parents=True, exist_ok=True)
        # each file that exists, so --no-tightness (no search rows) writes the rest
        for name, frame in (("verify.csv", report.table), ("tightness.csv", report.tightness),
                            ("tightness_probes.csv", report.searched), ("over_bound.csv", report.over_bound)):
            if frame is not None:
                frame.to_csv(Path(args.out) / name, index=False)
    print(report.summary())
    return 0 if report.ok else 1


def _cmd_export(args) -> int:
    from pathlib import Path

    from costlab.checks.exports import FORMATS, export
    from costlab.policy import Policy

    policy = Policy.from_json(args.policy)
    formats = list(FORMATS) if args.to == "all" else [args.to]
    texts = {f: export(policy, f, model_name=args.model_name) for f in formats}  # all or nothing
    if args.to == "all":
        out = Path(args.out or ".")
        out.mkdir(parents=True, exist_ok=True)
        for f, text in texts.items():
            (out / EXPORT_FILES[f]).write_text(text)
            print(f"{f:10s} -> {out / EXPORT_FILES[f]}")
    elif args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(texts[args.to])
    else:
        sys.stdout.write(texts[args.to])
    return 0


def _cmd_report(args) -> int:
    from costlab.viz.report import write_report

    print(write_report(args.run_dir, args.out))
    return 0


def main(argv=None) -> int:
    _env.set_tf_defaults()  # costlab owns this process: before any backend is imported
    args = _parser().parse_args(argv)
    try:
        return {"run": _cmd_run, "verify": _cmd_verify, "export": _cmd_export,
                "report": _cmd_report}[args.command](args)
    except CostlabError as exc:
        print(f"costlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("costlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
