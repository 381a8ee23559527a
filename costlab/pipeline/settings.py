"""Every knob of a run, its default and its check, written once: `RunSettings`.

The command line and `costlab.run` read the same settings: a preset (`quick`, `standard`,
`thorough`), then a settings file, then the few flags or keywords given. The resolved
settings are written to the run directory (`settings.json`); `--resume` refuses settings
that changed. docs/settings.md is generated from `FIELDS`.

Example:
    >>> s = RunSettings.preset("quick", churn=0)
    >>> s.points, s.churn, s.pulse
    (5, 0, 0)
    >>> RunSettings.preset("standard").changed(s)
    ['churn', 'drift', 'examples', 'max_repeats', 'min_repeats', 'points', 'probe_time_s', 'pulse', 'rounds', 'settle', 'throughput_s']
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from costlab._validation import Interval, Options, check_all
from costlab.errors import CostlabError
from costlab.inputs.space import VALUE_PATTERNS
from costlab.profiling.session import MAX_PROBE_MIB, MAX_PROBE_S
from costlab.profiling.speed import PULSE_EVERY
from costlab.runtime import drift as _drift

_POS_INT, _NONNEG_INT = Interval(int, 1, None), Interval(int, 0, None)
_POS, _NONNEG = Interval(float, 0, None, "neither"), Interval(float, 0, None)

#: Each setting: (default, constraints, what it does). The one place they are written.
FIELDS = {
    # --- what is measured -------------------------------------------------------------
    "points": (7, (Interval(int, 2, None),), "sizes per dimension slice of the size plan"),
    "examples": (8, (_NONNEG_INT,), "Hypothesis-drawn probes beside the plan"),
    "rounds": (2, (_POS_INT,), "times the size plan is measured; replicates are pooled by their median"),
    "probe_time_s": (0.5, (_POS,), "seconds of repeats per probe"),
    "min_repeats": (5, (_POS_INT,), "fewest timed calls per probe"),
    "max_repeats": (30, (_POS_INT,), "most timed calls per probe"),
    "max_probe_s": (MAX_PROBE_S, (_POS,), "a slice stops before a probe predicted over this many seconds"),
    "max_probe_mib": (float(MAX_PROBE_MIB), (_POS,), "a slice stops before a probe predicted over this much memory"),
    "values": ("auto", (Options("auto", *VALUE_PATTERNS),), "values every size is measured with: auto (scan the value patterns first and "
                               "use the costliest when it costs >= 1.25x random values) or a pattern"),
    "seed": (0, (int,), "seed of the plan's values, Hypothesis draws and every later stage"),
    # --- where and how ------------------------------------------------------------------
    "isolation": ("subprocess", (Options("subprocess", "inprocess"),),
                  "probes in worker processes under a memory cap and a timeout, or in this process"),
    "memory_cap_mib": (None, (None, _POS), "memory one isolated probe may add (default 8192)"),
    "timeout_s": (None, (None, _POS), "seconds one isolated probe may take (default: from the latency budget, docs/cli.md)"),
    "probes_per_worker": (None, (None, _POS_INT), "a fresh worker after this many probes (1: one per probe)"),
    "backend": (None, (None, Options("tensorflow", "jax", "torch")), "Keras backend of the workers"),
    "call": ("predict_on_batch", (Options("predict_on_batch", "call", "predict"),), "how a Keras model is called"),
    # --- stages after the plan -------------------------------------------------------------
    "refine": (True, (bool,), "widen a range where a cost could not be fitted"),
    "settle": (1, (_NONNEG_INT,), "while a dimension's power is undetermined, measure more up to N times"),
    "boundary": (True, (bool,), "bisect each limit toward the measured budget boundary, then the joint frontier"),
    "validity": (True, (bool,), "find the model's own validity limits in fresh processes"),
    "churn": (16, (_NONNEG_INT,), "distinct shapes sent to one fresh process (retracing, memory per shape); 0 skips"),
    "throughput_s": (3.0, (_NONNEG,), "seconds of the concurrent run the rate limit comes from; 0 skips"),
    "pulse": (PULSE_EVERY, (_NONNEG_INT,), "a reference input before every N-th probe: the machine-speed index; 0 off"),
    "drift": ("on", (Options("on", "off"),),
              "read the frontier after many distinct shapes in one process, and plan for the time they add"),
    "drift_shapes": (_drift.SHAPES, (_NONNEG_INT,), "distinct shapes the drift check sends (at most shapes.max_distinct)"),
    "drift_checks": (_drift.CHECKS, (_POS_INT,), "drift checks, each in its own pair of workers; the largest is kept"),
    "drift_share": (0.25, (Interval(float, 0, 1, "right"),),
                    "read the drift again at half the count while it takes more than this share of the budget"),
    # --- synthesis ------------------------------------------------------------------------
    "extrapolate": (1.0, (Interval(float, 1, None),), "limits may reach this multiple of the largest measured size"),
    "joint": (True, (bool,), "joint budgets on products of dimensions (tokens = batch x seq_len)"),
    "joint_offsets": (True, (bool,), "joint budgets may shift a dimension: (batch + c) x seq_len"),
    "hard_min": (False, (bool,), "the space's minima are hard floors"),
    "timeout_factor": (3.0, (_POS,), "request timeout over the worst admitted tail latency"),
}

#: The presets: what each changes from the defaults (`standard` is the defaults).
PRESETS = {
    # the fastest path to a policy that verifies; until the speed issue lands, the smoke
    # settings the tests and notebooks use
    "quick": {"points": 5, "examples": 3, "rounds": 1, "probe_time_s": 0.15, "min_repeats": 3, "max_repeats": 10,
              "settle": 0, "churn": 8, "throughput_s": 1.0, "pulse": 0, "drift": "off"},
    "standard": {},
    # more sizes, rounds and draws, a third drift check
    "thorough": {"points": 9, "examples": 16, "rounds": 3, "settle": 2, "drift_checks": 3},
}

class _Settings:
    """The resolved settings of one run, one attribute per `FIELDS` entry. Build it with
    `RunSettings.preset`, `from_file` or `replace`: each checks every value
    (`costlab._validation`) and refuses an unknown name."""

    def __post_init__(self):
        check_all({k: getattr(self, k) for k in FIELDS}, {k: c for k, (_, c, _) in FIELDS.items()})
        if self.min_repeats > self.max_repeats:
            raise CostlabError(f"Expected `min_repeats` <= `max_repeats`. Received: {self.min_repeats} > {self.max_repeats}")

    @classmethod
    def preset(cls, name: str = "standard", **overrides):
        """The preset's settings with `overrides` on top."""
        if name not in PRESETS:
            raise CostlabError(f"Expected a preset among {', '.join(PRESETS)}. Received: {name!r}")
        check_all(overrides, {k: c for k, (_, c, _) in FIELDS.items()})
        return cls(**{**PRESETS[name], **overrides, "preset_name": name})

    @classmethod
    def from_file(cls, path, *, preset: str | None = None, **overrides):
        """Settings from a JSON or YAML file of `FIELDS` (and optionally `"preset"`), then
        `overrides`; `preset` given here wins over the file's."""
        path = Path(path)
        if not path.is_file():
            raise CostlabError(f"Settings file not found: {path}")
        text = path.read_text()
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # json or yaml, many kinds
            raise CostlabError(f"Could not read settings from {path}: {exc}") from None
        if not isinstance(data, dict):
            raise CostlabError(f"Expected a mapping of settings in {path}. Received: {type(data).__name__}")
        data = dict(data)
        name = preset or data.pop("preset", None) or "standard"
        data.pop("preset", None)
        return cls.preset(name, **{**data, **overrides})  # checks every name and value

    def replace(self, **changes):
        check_all(changes, {k: c for k, (_, c, _) in FIELDS.items()})
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {"preset": self.preset_name, **{k: getattr(self, k) for k in FIELDS}}

    def changed(self, other) -> list[str]:
        """The settings whose values differ between `self` and `other`."""
        return sorted(k for k in FIELDS if getattr(self, k) != getattr(other, k))

    def profile_kw(self) -> dict:
        """The keywords `costlab.profile` takes from these settings."""
        keys = ("points", "examples", "rounds", "probe_time_s", "min_repeats", "max_repeats", "max_probe_s",
                "max_probe_mib", "seed", "isolation", "memory_cap_mib", "timeout_s", "probes_per_worker", "backend")
        return {k: getattr(self, k) for k in keys}


#: The settings class: its fields and defaults are `FIELDS`, written once.
RunSettings = dataclasses.make_dataclass(
    "RunSettings", [(k, object, dataclasses.field(default=d)) for k, (d, _, _) in FIELDS.items()]
    + [("preset_name", str, dataclasses.field(default="standard"))],
    bases=(_Settings,), frozen=True)
RunSettings.__module__ = __name__
RunSettings.__doc__ = _Settings.__doc__


def resolve(preset: str | None = None, settings=None, **overrides) -> RunSettings:
    """`settings` (a `RunSettings`, a dict of fields, or a file path), else `preset`, with
    `overrides` on top: what `costlab.run` and the CLI both call."""
    if isinstance(settings, RunSettings):
        if preset is not None and preset != settings.preset_name:
            raise CostlabError(f"Got both settings of preset {settings.preset_name!r} and preset={preset!r}")
        return settings.replace(**overrides) if overrides else settings
    if isinstance(settings, dict):
        data = dict(settings)
        name = preset or data.pop("preset", None) or "standard"
        return RunSettings.preset(name, **{**data, **overrides})
    if settings is not None:
        return RunSettings.from_file(settings, preset=preset, **overrides)
    return RunSettings.preset(preset or "standard", **overrides)


def check_resume(out_dir, settings: RunSettings) -> None:
    """Refuse to resume a run whose `settings.json` differs from `settings`, naming each."""
    path = Path(out_dir) / "settings.json"
    if not path.is_file():
        return
    before = json.loads(path.read_text())
    diff = [k for k in FIELDS if k in before and before[k] != getattr(settings, k)]
    if diff:
        raise CostlabError("Cannot resume with other settings than the run's (settings.json): "
                           + ", ".join(f"{k} {before[k]!r} -> {getattr(settings, k)!r}" for k in diff))


def write(out_dir, settings: RunSettings) -> Path:
    path = Path(out_dir) / "settings.json"
    path.write_text(json.dumps(settings.to_dict(), indent=2) + "\n")
    return path
