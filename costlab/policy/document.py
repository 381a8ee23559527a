"""The policy document: a JSON file, validated against its schema (`schema()`), read through `Policy`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TypedDict

import jsonschema
import numpy as np
import pandas as pd

from costlab.errors import PolicyError
from costlab.inputs.space import Dimension, InputSpace, InputSpec, ValueDomain
from costlab.inputs.text import Text
from costlab.policy.budgets import Budgets
from costlab.policy.region import Region

SCHEMA_VERSION = "1.6"


#: Versions this costlab reads (1.0 lacks the joint, request, serving and shapes sections).
# 1.1 lacks machine_speed, 1.2 joint offsets, 1.3 value_pattern, 1.4 shapes.drift, 1.5 validity
READS = ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6")


def schema() -> dict:
    """The policy JSON Schema shipped with costlab."""
    return json.loads(resources.files("costlab").joinpath("schemas/policy.schema.json").read_text())


class Limit(TypedDict, total=False):
    """One dimension's limit in a policy (`limits.<dim>` in the schema)."""

    min: int
    max: int
    limited_by: str
    multiple_of: int


class JointBudget(TypedDict, total=False):
    """A joint budget: `prod(size + offset) over dims <= max` (`joint[]` in the schema)."""

    name: str
    input: str
    dims: list[str]
    offsets: dict[str, int]
    max: int
    limited_by: str


@dataclass(frozen=True)
class Policy:
    """A validated policy document; `data` is exactly what `to_json` writes."""

    data: dict = field(repr=False)

    def __post_init__(self):
        validate(self.data)

    # --- views: the document's sections, typed (the schema guarantees their fields) --------
    @property
    def limits(self) -> dict[str, Limit]:
        """`{dimension: {"min", "max", "limited_by", "multiple_of"?, ...}}`."""
        return self.data["limits"]

    @property
    def joint(self) -> list[JointBudget]:
        """The joint budgets (`[]` when there are none)."""
        return self.data.get("joint") or []

    @property
    def request(self) -> dict:
        """Request limits: `max_payload_bytes` (and per encoding), `timeout_ms` (`{}` before 1.0's sections)."""
        return self.data.get("request") or {}

    @property
    def serving(self) -> dict:
        """Serving figures: `max_concurrency`, `max_queue`, container memory, the rate limit."""
        return self.data.get("serving") or {}

    @property
    def shapes(self) -> dict:
        """Shape buckets and `max_distinct` (`{}` when churn was not measured)."""
        return self.data.get("shapes") or {}

    @property
    def worst_admitted(self) -> dict | None:
        """The most expensive admitted input: `sizes`, `predicted`, `upper`, `budget_fraction`."""
        return self.data.get("worst_admitted")

    @property
    def value_pattern(self) -> str:
        """The values the curves were measured with (`random` unless the value scan chose one)."""
        return (self.data.get("value_pattern") or {}).get("pattern", "random")

    @property
    def machine_speed(self) -> dict | None:
        return self.data.get("machine_speed")

    @property
    def model(self) -> dict:
        return self.data["model"]

    @property
    def budgets(self) -> Budgets:
        return Budgets(**self.data["budgets"])

    @property
    def space(self) -> InputSpace:
        """The admitted region as an input space (dimension bounds = limits)."""
        inputs = []
        default = {"kind": "float", "min": -np.inf, "max": np.inf}
        for name, spec in self.data["inputs"].items():
            values = spec.get("values", default)
            inputs.append(InputSpec(name, spec["dtype"], tuple(spec["shape"]),
                                    ValueDomain(values["kind"], values["min"], values["max"]),
                                    Text.from_dict(spec["text"]) if spec.get("text") else None))
        dims = tuple(Dimension(n, lim["min"], lim["max"], lim.get("multiple_of", 1)) for n, lim in self.limits.items())
        return InputSpace(tuple(inputs), dims)

    def region(self) -> Region:
        """The admitted sizes: per-dimension ranges and joint budgets."""
        lims = self.limits
        joint = self.data.get("joint") or []
        return Region(list(lims), {n: v["min"] for n, v in lims.items()}, {n: v["max"] for n, v in lims.items()},
                       [(j["dims"], j["max"]) for j in joint],
                       {tuple(j["dims"]): j.get("offsets") or {} for j in joint},
                       {n: v["multiple_of"] for n, v in lims.items() if v.get("multiple_of", 1) > 1})

    def cost(self, sizes) -> dict:
        """The predicted and upper-bound cost of inputs from the curves the policy carries
        (`curves`, 1.6), as the limits were set: times at the planned machine speed
        (`machine_speed.factor`) with any planned shape drift added.

        Args:
            sizes: `{dimension: size}`, or a DataFrame of sizes (one row per input).

        Returns:
            `{"predicted": {target: value}, "upper": {target: value}}`: floats for one
            input, arrays for a DataFrame; seconds for `wall_s_*`, bytes for `peak_bytes`.

        Raises:
            PolicyError: The policy carries no curves (written before 1.6).

        Example:
            >>> policy.cost({"batch": 4, "seq_len": 256})["upper"]["wall_s_median"]  # doctest: +SKIP
            0.0121
        """
        if not self.data.get("curves"):
            raise PolicyError(f"This policy (schema {self.data.get('schema_version')}) carries no cost curves; "
                              "costlab 1.6 policies do. Received: no `curves` field")
        from costlab.curves import CostModel

        one = isinstance(sizes, dict)
        X = pd.DataFrame({k: [v] for k, v in sizes.items()}) if one else sizes
        factor = float((self.data.get("machine_speed") or {}).get("factor") or 1.0)
        added = float(((self.data.get("shapes") or {}).get("drift") or {}).get("planned_ms") or 0.0) / 1e3
        out = {"predicted": {}, "upper": {}}
        for t, d in self.data["curves"].items():
            m = self._curves.get(t) or self._curves.setdefault(t, CostModel.from_dict(d))
            pred, up = m.predict(X[m.dims_]), m.upper(X[m.dims_])
            if t.startswith("wall_s_"):
                pred, up = (pred + added) * factor, (up + added) * factor
            out["predicted"][t], out["upper"][t] = (float(pred[0]), float(up[0])) if one else (pred, up)
        return out

    @property
    def _curves(self) -> dict:
        cache = self.__dict__.get("_curve_cache")
        if cache is None:
            cache = {}
            object.__setattr__(self, "_curve_cache", cache)
        return cache

    def admits(self, sizes: dict) -> bool:
        """Whether input sizes `{dimension: size}` are inside the limits and joint budgets."""
        return bool(self.region().contains(pd.DataFrame({k: [v] for k, v in sizes.items()}))[0])

    def _repr_html_(self):
        """Budgets, limits with their evidence, joint budgets and a picture, for notebooks."""
        from costlab.viz.display import policy_html

        return policy_html(self)

    def __repr__(self):
        lim = ", ".join(f"{n}≤{v['max']}" for n, v in self.limits.items())
        return f"Policy(model={self.data['model']['name']!r}, {lim})"

    # --- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict:
        return json.loads(json.dumps(self.data))

    @classmethod
    def from_dict(cls, data) -> Policy:
        return cls(data)

    def to_json(self, path=None) -> str:
        text = json.dumps(self.data, indent=2) + "\n"
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, path) -> Policy:
        """Read and validate a policy file.

        Raises:
            PolicyError: Missing file, invalid JSON, wrong schema version or a field
                that breaks the schema; the message names the file and the field.
        """
        p = Path(path)
        if not p.is_file():
            raise PolicyError(f"Policy file not found: {path}")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"Policy file {path} is not valid JSON: {exc}") from None
        try:
            return cls(data)
        except PolicyError as exc:
            raise PolicyError(f"Policy file {path}: {exc}") from None


def validate(data) -> None:
    """Validate a policy document against the shipped schema.

    Raises:
        PolicyError: Naming the first offending field, e.g. `budgets.latency_ms`.
    """
    if not isinstance(data, dict):
        raise PolicyError(f"A policy is a JSON object. Received: {type(data).__name__}")
    version = data.get("schema_version")
    if version not in READS:
        raise PolicyError(f"field `schema_version`: unsupported version {version!r}; this costlab reads "
                          f"{', '.join(map(repr, READS))}")
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise PolicyError(f"field `{where}`: {e.message}")
    for name, lim in data["limits"].items():
        if lim["min"] > lim["max"]:
            raise PolicyError(f"field `limits.{name}`: min={lim['min']} is larger than max={lim['max']}")
    for i, j in enumerate(data.get("joint") or []):
        unknown = [d for d in j["dims"] if d not in data["limits"]]
        if unknown:
            raise PolicyError(f"field `joint.{i}.dims`: {unknown} are not dimensions in `limits`")
