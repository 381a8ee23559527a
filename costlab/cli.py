"""The `costlab` command line: `run`, `verify`, `export`, `report`.

Every error a user can cause prints one line, `costlab: error: ...`, and exits 2.
`costlab run` exits 0 when it wrote a policy, 3 when it wrote one with stages skipped
(a stage after the measurements failed: the summary and `skipped.json` say which and
why), 2 on an error with no policy written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from costlab import _env
from costlab.errors import CostlabError
from costlab.pipeline.settings import PRESETS, resolve


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



def _setting(text):
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. churn=0), received {text!r}")
    try:
        value = json.loads(raw)  # numbers, true/false, null
    except ValueError:
        value = raw  # a word: a preset's name, a value pattern
    return key.strip().replace("-", "_"), value


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
                       epilog="Every other setting is in --settings FILE or --set KEY=VALUE (docs/settings.md). "
                              "Exit status: 0 a policy was written; 3 a policy was written with stages skipped "
                              "(skipped.json says which and why); 2 an error, no policy")
    r.add_argument("model", help=model_help)
    r.add_argument("--latency-ms", type=_number(float), help="median (p50) latency budget per request")
    r.add_argument("--memory-mib", type=_number(float), help="peak tensor memory budget per request")
    r.add_argument("--budgets", metavar="FILE",
                   help="budgets from a JSON or YAML file (fields of costlab.Budgets: latency_p99_ms, "
                        "process_memory_mib, cores, margin, ...); the two flags above win")
    r.add_argument("--out", required=True, help="run directory to write")
    r.add_argument("--preset", choices=list(PRESETS), default=None,
                   help="quick: the fastest path to a policy; standard (default); thorough: more rounds, "
                        "the drift check always")
    r.add_argument("--settings", metavar="FILE", help="settings from a JSON or YAML file (docs/settings.md), "
                                                      "over the preset")
    r.add_argument("--set", type=_setting, action="append", default=[], metavar="KEY=VALUE",
                   help="one setting over the preset and the file, e.g. --set churn=0 (repeatable)")
    r.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=MIN:MAX",
                   help="range to explore for a dimension (repeatable)")
    r.add_argument("--space", help="input space file, JSON or YAML (the layout of InputSpace.to_json), "
                                   "overriding the model's")
    r.add_argument("--backend", choices=["tensorflow", "jax", "torch"], default=None,
                   help="Keras backend to profile a Keras model under, in isolated workers (default: tensorflow)")
    r.add_argument("--isolation", choices=["subprocess", "inprocess"], default=None,
                   help="probes in worker processes under a memory cap and a timeout (default), "
                        "or in this process (faster; a hostile probe can take it down)")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out with the same settings: its probes are kept")
    r.add_argument("--seed", type=int, default=None, help="seed of every draw (default 0)")
    r.add_argument("--preprocess", metavar="MODULE:FUNCTION",
                   help="a Python function applied to the inputs before the model, as your serving code "
                        "does: measured with it, and its memory line by line (preprocess_memory.csv)")

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

    flags = {"latency_ms": args.latency_ms, "memory_mib": args.memory_mib}
    if args.budgets:
        budgets = Budgets.from_file(args.budgets, **flags)
    else:
        missing = [f"--{k.replace('_', '-')}" for k in ("latency_ms", "memory_mib") if flags[k] is None]
        if missing:
            raise CostlabError(f"the budgets {' and '.join(missing)} are required (or --budgets FILE)")
        budgets = Budgets(**flags)
    overrides = {k: v for k, v in (("seed", args.seed), ("isolation", args.isolation), ("backend", args.backend))
                 if v is not None}
    chosen = resolve(args.preset, args.settings, **{**dict(args.set), **overrides})
    if args.space and not os.path.isfile(args.space):
        raise CostlabError(f"Input space file not found: {args.space}")
    adapter = loading.load(args.model, call=chosen.call)
    space = (InputSpace.from_file(args.space).check_model(adapter) if args.space
             else InputSpace.from_model(adapter))
    if args.dim:
        space = space.with_bounds(**dict(args.dim))
    preprocess = _import_function(args.preprocess) if args.preprocess else None
    result = run(adapter, budgets, args.out, space=space, settings=chosen, resume=args.resume, preprocess=preprocess)
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
    adapter = loading.load(args.model, call=policy.model.get("call", "predict_on_batch"))
    if adapter.describe()["sha256"] != policy.model["sha256"]:
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
