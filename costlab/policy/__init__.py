"""Input-limit policies: synthesised from cost curves and budgets, stored as JSON.

A policy admits, per dimension, sizes in `[min, max]`, and joint budgets on products of
dimensions. The region is chosen so that the calibrated upper bound of every cost at its
most expensive admitted input stays under `margin × budget` (`costlab.policy.synthesis`).
The modules, in the order data flows through them:

- `budgets`: what a request may cost;
- `region`: the admitted region, its frontier and its worst input under cost curves;
- `sizing`: the request, serving and shape-bucket sections a serving stack reads;
- `synthesis`: `synthesize(cost_models, budgets, space=...)`;
- `document`: the JSON document, its schema, and `Policy`, which reads it.

Example:
    >>> import costlab
    >>> policy = costlab.Policy.load("runs/demo/policy.json")  # doctest: +SKIP
    >>> policy.limits["seq_len"]["max"]  # doctest: +SKIP
"""

from __future__ import annotations

from costlab.policy.budgets import Budgets
from costlab.policy.document import READS, SCHEMA_VERSION, Policy, schema, validate
from costlab.policy.region import (
           Region,
           admitted_stream,
           edge_points,
           joint_expression,
           joint_value,
           worst_on_joint,
)
from costlab.policy.synthesis import MEMORY_FIGURES, synthesize

__all__ = ["Budgets", "MEMORY_FIGURES", "Policy", "READS", "Region", "SCHEMA_VERSION", "admitted_stream",
           "edge_points", "joint_expression", "joint_value", "schema", "synthesize", "validate", "worst_on_joint"]
