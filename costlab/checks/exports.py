"""Policy exports: the limits of a policy as configuration text that model servers read.

A policy says what one serving process may admit (request size, timeout, concurrency,
queue, rate, memory). `export` writes those figures in the configuration language of a
server or platform, so the limits are enforced before a request reaches the model:

| format       | what it writes                                                           |
|--------------|--------------------------------------------------------------------------|
| `tfserving`  | TF Serving `--batching_parameters_file` (text `BatchingParameters`)      |
| `triton`     | a Triton `config.pbtxt` fragment (text `inference.ModelConfig`)          |
| `kubernetes` | a container `resources:` block (YAML)                                    |
| `nginx`      | an `http`-context snippet: rate limit, body size, timeout                |
| `ray`        | a Ray Serve config file (YAML)                                           |
| `bentoml`    | `traffic` / `resources` of a BentoML service (YAML)                      |
| `kserve`     | a KServe `InferenceService` (YAML)                                       |

Every output starts with a comment naming the model and its sha256; `field_map(to)` lists
which policy field each setting comes from and how, for the documentation.
Nothing here imports a server's package: the texts are written directly and the tests
parse them with the real parsers (protobuf text format, PyYAML, crossplane).
"""

from __future__ import annotations

import json
import math
import re

import yaml

from costlab.errors import ExportError

_MISSING = object()

#: numpy / Keras dtype name -> Triton `DataType` enum name.
TRITON_DTYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
    "bfloat16": "TYPE_BF16", "string": "TYPE_STRING",
}

#: Longest time a request waits for others to join a batch, microseconds.
MAX_BATCH_WAIT_MICROS = 1000

_FIXED = "(fixed)"

_FIELD_MAPS = {
    "tfserving": [
        ("max_batch_size", "request.max_merged_batch (else request.max_batch)",
         "the server merges requests into one batch padded to the longest: the largest batch the "
         "policy admits with every other dimension at its maximum"),
        ("batch_timeout_micros", "budgets.latency_ms",
         "min(1000, 100 × latency_ms) µs, rounded down: a batch waits at most a tenth of the "
         "latency budget and never more than 1 ms"),
        ("max_enqueued_batches", "serving.max_queue",
         "max(1, max_queue): each queued request may already be a whole batch"),
        ("num_batch_threads", "serving.max_concurrency",
         "as is: batches run in parallel no more than requests may (≤ serving.cpu)"),
        ("allowed_batch_sizes", "shapes.buckets.batch",
         "buckets ≤ max_batch_size, with max_batch_size appended when it is not the last; "
         "omitted without batch buckets"),
        ("pad_variable_length_inputs", "inputs.<name>.shape, limits.<dim>",
         "true when a batched input has a non-batch dimension that admits more than one size "
         "(requests of different lengths can then share a batch)"),
    ],
    "triton": [
        ("name", "model.name", "as is, or the `model_name` argument"),
        ("max_batch_size", "request.max_merged_batch (else request.max_batch)",
         "as is; 0 when not every input's shape starts with the `batch` dimension"),
        ("input.name", "inputs.<name>", "the input's name"),
        ("input.data_type", "inputs.<name>.dtype", "int32 -> TYPE_INT32, float32 -> TYPE_FP32, ..."),
        ("input.dims", "inputs.<name>.shape, limits.<dim>",
         "batch axis left out when max_batch_size > 0; a named dimension is -1, or its size "
         "when its limit admits one size only; fixed sizes as is; [1] + reshape [] for scalars"),
        ("dynamic_batching.preferred_batch_size", "shapes.buckets.batch",
         "buckets ≤ max_batch_size; omitted without batch buckets"),
        ("dynamic_batching.max_queue_delay_microseconds", "budgets.latency_ms",
         "same as TF Serving's batch_timeout_micros"),
        ("dynamic_batching.default_queue_policy.timeout_action", _FIXED, "REJECT"),
        ("dynamic_batching.default_queue_policy.default_timeout_microseconds", "request.timeout_ms",
         "× 1000, rounded"),
        ("dynamic_batching.default_queue_policy.max_queue_size", "serving.max_queue",
         "max(1, max_queue): 0 would mean unlimited in Triton"),
        ("instance_group.count", "serving.max_concurrency", "as is"),
        ("instance_group.kind", _FIXED, "KIND_CPU"),
        ("dynamic_batching (whole block)", "request.max_batch",
         "left out without a batch dimension: Triton queues only through the dynamic batcher, "
         "which max_batch_size 0 turns off; enforce queue and timeout in front (nginx, ray)"),
    ],
    "kubernetes": [
        ("resources.requests.cpu", "serving.cpu", "integer cores, or millicores (`500m`)"),
        ("resources.limits.cpu", "serving.cpu", "same as requests.cpu"),
        ("resources.requests.memory", "serving.container_memory_request_mib", "rounded up, `Mi`"),
        ("resources.limits.memory", "serving.container_memory_mib", "rounded up, `Mi`"),
    ],
    "nginx": [
        ("limit_req_zone key", _FIXED,
         "$server_name: one bucket for the whole server, since the rate is the capacity of the "
         "serving process, not a per-client share"),
        ("limit_req_zone zone", "model.name", "costlab_<name>, non [A-Za-z0-9_] as `_`; 10m"),
        ("limit_req_zone rate", "serving.rate_limit_rps",
         "N r/s when a whole number, else floor(60 × rps) r/m (at least 1r/m): nginx takes "
         "integer rates only"),
        ("limit_req burst", "serving.burst", "as is, with nodelay"),
        ("limit_req_status", _FIXED, "429"),
        ("client_max_body_size", "request.max_payload_bytes", "bytes, as is"),
        ("proxy_read_timeout", "request.timeout_ms", "ceil(timeout_ms / 1000) s, at least 1s"),
        ("proxy_pass", _FIXED, "http://127.0.0.1:8501 placeholder: point it at the model server"),
    ],
    "ray": [
        ("http_options.request_timeout_s", "request.timeout_ms", "÷ 1000"),
        ("applications[0].name, deployments[0].name", "model.name",
         "as is, or the `model_name` argument (rename the deployment to your class's name)"),
        ("applications[0].import_path", _FIXED, "`<fill in>`: your module:application"),
        ("deployments[0].max_ongoing_requests", "serving.max_concurrency", "as is"),
        ("deployments[0].max_queued_requests", "serving.max_queue",
         "max(1, max_queue): Ray takes -1 (unlimited) or a positive integer"),
        ("deployments[0].ray_actor_options.num_cpus", "serving.cpu", "as is"),
    ],
    "bentoml": [
        ("traffic.timeout", "request.timeout_ms", "ceil(timeout_ms / 1000) s, at least 1"),
        ("traffic.max_concurrency", "serving.max_concurrency", "as is"),
        ("resources.cpu", "serving.cpu", "as a string: integer cores or millicores"),
        ("resources.memory", "serving.container_memory_mib", "rounded up, `Mi`"),
    ],
    "kserve": [
        ("metadata.name", "model.name",
         "as a DNS-1123 label (lower case, [a-z0-9-], at most 63 characters)"),
        ("spec.predictor.containerConcurrency", "serving.max_concurrency", "as is"),
        ("spec.predictor.timeout", "request.timeout_ms", "ceil(timeout_ms / 1000) s, at least 1"),
        ("spec.predictor.minReplicas", _FIXED, "1"),
        ("spec.predictor.containers[0].name / image", _FIXED,
         "kserve-container / REPLACE_ME: put your serving image"),
        ("spec.predictor.containers[0].resources", "serving.cpu, serving.container_memory_*",
         "same as the kubernetes export"),
    ],
}

_DESCRIPTIONS = {
    "tfserving": "TensorFlow Serving --batching_parameters_file "
                 "(text format of tensorflow.serving.BatchingParameters)",
    "triton": "Triton Inference Server config.pbtxt fragment (text format of inference.ModelConfig); "
              "add platform/backend and output, or let Triton auto-complete them",
    "kubernetes": "Kubernetes container `resources:` block",
    "nginx": "nginx snippet for the `http` context: include it inside `http { ... }`",
    "ray": "Ray Serve config file (serve deploy / serve run); fill in import_path",
    "bentoml": "BentoML service configuration: @bentoml.service(**yaml.safe_load(this))",
    "kserve": "KServe InferenceService (kubectl apply -f); replace the image",
}


# --- public API ---------------------------------------------------------------------------
def export(policy, to: str, *, model_name: str | None = None) -> str:
    """Write a policy's limits as configuration text for a model server.

    Args:
        policy: The policy document (a dict, as in the JSON file), or an object whose
            `data` attribute is that dict, such as `costlab.Policy`.
        to: The format, one of `FORMATS`: `"tfserving"`, `"triton"`, `"kubernetes"`,
            `"nginx"`, `"ray"`, `"bentoml"` or `"kserve"`.
        model_name: The name to serve the model under (Triton model name, nginx zone,
            Ray application, KServe service). Defaults to `None`, meaning the policy's
            `model.name`.

    Returns:
        The configuration text, starting with a comment header that names the model and
        its sha256.

    Raises:
        ExportError: An unknown format (the message lists `FORMATS`), a policy field the
            format needs that is missing or invalid (the message names the field), or a
            model TF Serving cannot batch (no batch dimension).

    Example:

    >>> text = export(policy, "nginx")  # doctest: +SKIP
    >>> print(text.splitlines()[0])  # doctest: +SKIP
    # Generated by costlab from the input-limit policy of model "attention" (sha256 3f5c9a0b1d2e).
    """
    return _format(to)(policy, model_name=model_name)


def field_map(to: str) -> list[tuple[str, str, str]]:
    """Which policy field each setting of a format comes from, and how.

    Args:
        to: The format, one of `FORMATS`.

    Returns:
        A list of `(server setting, policy field, how)` rows. The policy field is
        `"(fixed)"` for settings costlab always writes the same way.

    Raises:
        ExportError: An unknown format; the message lists `FORMATS`.

    Example:

    >>> field_map("kubernetes")[3]
    ('resources.limits.memory', 'serving.container_memory_mib', 'rounded up, `Mi`')
    """
    _format(to)
    return list(_FIELD_MAPS[to])


def _format(to):
    if not isinstance(to, str) or to not in FORMATS:
        raise ExportError(f"Expected one of {sorted(FORMATS)} for `to`. Received: to={to!r}")
    return FORMATS[to]


# --- reading the policy -------------------------------------------------------------------
class _Fields:
    """Typed, named access to a policy's fields for one format's export."""

    def __init__(self, policy, fmt):
        data = policy if isinstance(policy, dict) else getattr(policy, "data", None)
        if not isinstance(data, dict):
            raise ExportError("Expected a policy dict or an object with a `data` dict (costlab.Policy) "
                              f"for `policy`. Received: {type(policy).__name__}")
        version = data.get("schema_version")
        if version is not None and not str(version).startswith("1."):
            raise ExportError(f"Expected a policy with schema_version 1.x. Received: "
                              f"schema_version={version!r}")
        self.data, self.fmt = data, fmt

    @staticmethod
    def _path(keys):
        return keys if isinstance(keys, str) else ".".join(str(k) for k in keys)

    def get(self, keys, default=_MISSING):
        """The value at `keys` ("a.b" or a tuple); None counts as missing."""
        parts = keys.split(".") if isinstance(keys, str) else list(keys)
        node = self.data
        for i, key in enumerate(parts):
            if not isinstance(node, dict):
                where = self._path(parts[:i])
                raise ExportError(f"Expected an object for policy field `{where}`. "
                                  f"Received: {where}={node!r}")
            node = node.get(key)
            if node is None:
                if default is not _MISSING:
                    return default
                raise ExportError(f"policy field `{self._path(parts)}` is missing; the `{self.fmt}` "
                                  "export needs it")
        return node

    def number(self, keys, *, minimum=0.0, strict=True):
        """A finite real number > `minimum` (>= when not `strict`)."""
        v = self.get(keys)
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if not ok or (v <= minimum if strict else v < minimum):
            what = f"{'>' if strict else '>='} {minimum:g}"
            raise ExportError(f"Expected a finite number {what} for policy field `{self._path(keys)}`. "
                              f"Received: {self._path(keys)}={v!r}")
        return v

    def integer(self, keys, *, minimum=1):
        """An integer >= `minimum` (integral floats, as JSON may carry them, are accepted)."""
        v = self.get(keys)
        ok = (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
              and float(v).is_integer() and v >= minimum)
        if not ok:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ExportError(f"Expected {what} for policy field `{self._path(keys)}`. "
                              f"Received: {self._path(keys)}={v!r}")
        return int(v)

    # --- derived figures, shared by several formats ---------------------------------------
    def name(self, model_name):
        if model_name is not None:
            if not isinstance(model_name, str) or not model_name.strip():
                raise ExportError(f"Expected a non-empty string for `model_name`. "
                                  f"Received: model_name={model_name!r}")
            return model_name
        name = self.get("model.name")
        if not isinstance(name, str) or not name.strip():
            raise ExportError(f"Expected a non-empty string for policy field `model.name`. "
                              f"Received: model.name={name!r}")
        return name

    def header(self, name, prefix="#"):
        sha = self.get("model.sha256")
        if not isinstance(sha, str) or not sha:
            raise ExportError(f"Expected a string for policy field `model.sha256`. "
                              f"Received: model.sha256={sha!r}")
        policy_name = self.get("model.name", default=name)
        served = "" if policy_name == name else f", served as {json.dumps(name)}"
        lines = [f"Generated by costlab from the input-limit policy of model {json.dumps(str(policy_name))} "
                 f"(sha256 {sha[:12]}){served}.",
                 _DESCRIPTIONS[self.fmt] + ".",
                 "The policy field behind each value is listed in the README and by "
                 f'costlab.checks.exports.field_map("{self.fmt}").']
        return "".join(f"{prefix} {line}\n" for line in lines)

    def inputs(self) -> dict:
        inputs = self.get("inputs")
        if not isinstance(inputs, dict) or not inputs:
            raise ExportError(f"Expected at least one input in policy field `inputs`. Received: "
                              f"inputs={inputs!r}")
        for n in inputs:
            shape = self.get(("inputs", n, "shape"))
            if not isinstance(shape, list) or not all(
                    isinstance(s, str) or (isinstance(s, int) and not isinstance(s, bool) and s >= 0)
                    for s in shape):
                raise ExportError(f"Expected a list of dimension names and sizes for policy field "
                                  f"`inputs.{n}.shape`. Received: inputs.{n}.shape={shape!r}")
        return inputs

    def unbatched(self) -> list[str]:
        """Inputs whose shape does not start with the `batch` dimension."""
        return [n for n, spec in self.inputs().items() if spec["shape"][:1] != ["batch"]]

    def bounds(self, dim, input_name=None):
        """(min, max) of a named dimension from `limits`, else the input's `dims`; or None."""
        lim = self.get(("limits", dim), default=None)
        if not isinstance(lim, dict) and input_name is not None:
            dims = self.get(("inputs", input_name, "dims"), default=[])
            lim = next((d for d in dims if isinstance(d, dict) and d.get("name") == dim), None) \
                if isinstance(dims, list) else None
        if isinstance(lim, dict) and all(isinstance(lim.get(k), (int, float)) and not isinstance(lim.get(k), bool)
                                         for k in ("min", "max")):
            return lim["min"], lim["max"]
        return None

    def buckets(self, dim) -> list[int]:
        """Ascending, de-duplicated shape buckets of `dim`, or [] (the section is optional)."""
        b = self.get(("shapes", "buckets", dim), default=[])
        if not isinstance(b, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1
                                               for x in b):
            raise ExportError(f"Expected a list of positive integers for policy field "
                              f"`shapes.buckets.{dim}`. Received: shapes.buckets.{dim}={b!r}")
        return sorted(set(b))

    def batch_wait_micros(self) -> int:
        return int(min(MAX_BATCH_WAIT_MICROS, self.number("budgets.latency_ms") * 100.0))

    def timeout_s(self) -> int:
        return max(1, math.ceil(self.number("request.timeout_ms") / 1000 - 1e-9))

    def cpu(self):
        """serving.cpu as a number: int when whole."""
        cpu = self.number("serving.cpu")
        return int(cpu) if float(cpu).is_integer() else float(cpu)

    def resources(self) -> dict:
        limit = math.ceil(self.number("serving.container_memory_mib"))
        request = math.ceil(self.number("serving.container_memory_request_mib"))
        if request > limit:
            raise ExportError(
                "Expected policy field `serving.container_memory_request_mib` <= "
                f"`serving.container_memory_mib`. Received: container_memory_request_mib={request}, "
                f"container_memory_mib={limit}")
        cpu = _cpu_quantity(self.cpu())
        return {"requests": {"cpu": cpu, "memory": f"{request}Mi"},
                "limits": {"cpu": cpu, "memory": f"{limit}Mi"}}


def _cpu_quantity(cpu) -> str:
    """Kubernetes CPU quantity: whole cores as `"2"`, else millicores rounded up (`"1500m"`)."""
    if float(cpu).is_integer():
        return str(int(cpu))
    return f"{max(1, math.ceil(cpu * 1000 - 1e-9))}m"


def _pbtxt_string(s: str) -> str:
    """A protobuf text-format string literal (C escapes, non-ASCII bytes as octal)."""
    out = []
    for b in s.encode("utf-8"):
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _yaml(header: str, doc: dict) -> str:
    return header + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def _dns1123(name: str) -> str:
    label = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")[:63].strip("-")
    return label or "model"


# --- formats ------------------------------------------------------------------------------
def _merged_batch(f) -> int:
    """Servers merge requests into one batch padded to the longest request: the merged
    batch must be admitted with every other dimension at its maximum."""
    try:
        return f.integer("request.max_merged_batch")
    except ExportError:
        return f.integer("request.max_batch")


def _tfserving(policy, *, model_name=None) -> str:
    """TF Serving `--batching_parameters_file`: text-format `BatchingParameters`."""
    f = _Fields(policy, "tfserving")
    name = f.name(model_name)
    unbatched = f.unbatched()
    if unbatched:
        raise ExportError(
            f"Expected every input's shape to start with the `batch` dimension for TF Serving batching; "
            f"model {name!r} has no batch dimension on inputs {unbatched}. Received: "
            + ", ".join(f"inputs.{n}.shape={f.get(('inputs', n, 'shape'))!r}" for n in unbatched))
    max_batch = _merged_batch(f)
    allowed = [b for b in f.buckets("batch") if b <= max_batch]
    if allowed and allowed[-1] != max_batch:
        allowed.append(max_batch)
    pad = False
    for n, spec in f.inputs().items():
        for d in spec["shape"][1:]:
            if isinstance(d, str):
                lim = f.bounds(d, n)
                pad = pad or lim is None or lim[0] != lim[1] or len(f.buckets(d)) > 1
    lines = [f"max_batch_size {{ value: {max_batch} }}",
             f"batch_timeout_micros {{ value: {f.batch_wait_micros()} }}",
             f"max_enqueued_batches {{ value: {max(1, f.integer('serving.max_queue', minimum=0))} }}",
             f"num_batch_threads {{ value: {f.integer('serving.max_concurrency')} }}"]
    lines += [f"allowed_batch_sizes: {b}" for b in allowed]
    if pad:
        lines.append("pad_variable_length_inputs: true")
    return f.header(name) + "\n".join(lines) + "\n"


def _triton(policy, *, model_name=None) -> str:
    """Triton `config.pbtxt` fragment: text-format `inference.ModelConfig`."""
    f = _Fields(policy, "triton")
    name = f.name(model_name)
    batched = not f.unbatched()
    max_batch = _merged_batch(f) if batched else 0
    lines = [f"name: {_pbtxt_string(name)}", f"max_batch_size: {max_batch}"]
    if not batched:
        lines[:0] = ["# Not every input's shape starts with `batch`: max_batch_size 0 and no dynamic_batching,",
                     "# so Triton enforces no queue or timeout here; put them in front (nginx, ray)."]
    lines.append("input [")
    entries = []
    for n, spec in f.inputs().items():
        dtype = f.get(("inputs", n, "dtype"))
        if dtype not in TRITON_DTYPES:
            raise ExportError(f"Expected one of {sorted(TRITON_DTYPES)} for policy field `inputs.{n}.dtype`. "
                              f"Received: inputs.{n}.dtype={dtype!r}")
        dims = []
        for d in spec["shape"][1:] if batched else spec["shape"]:
            if isinstance(d, int):
                dims.append(d)
            else:
                lim = f.bounds(d, n)
                dims.append(int(lim[0]) if lim is not None and lim[0] == lim[1] else -1)
        entry = ["  {", f"    name: {_pbtxt_string(n)}", f"    data_type: {TRITON_DTYPES[dtype]}"]
        if dims:
            entry.append(f"    dims: [ {', '.join(str(d) for d in dims)} ]")
        else:  # a scalar per item: Triton wants at least one dimension
            entry += ["    dims: [ 1 ]", "    reshape: { shape: [ ] }"]
        entries.append("\n".join(entry + ["  }"]))
    lines += [",\n".join(entries), "]"]
    if batched:
        preferred = [b for b in f.buckets("batch") if b <= max_batch]
        lines.append("dynamic_batching {")
        if preferred:
            lines.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]")
        timeout_us = max(1, round(f.number("request.timeout_ms") * 1000))
        lines += [f"  max_queue_delay_microseconds: {f.batch_wait_micros()}",
                  "  default_queue_policy {",
                  "    timeout_action: REJECT",
                  f"    default_timeout_microseconds: {timeout_us}",
                  f"    max_queue_size: {max(1, f.integer('serving.max_queue', minimum=0))}",
                  "  }",
                  "}"]
    lines += ["instance_group [", "  {", f"    count: {f.integer('serving.max_concurrency')}",
              "    kind: KIND_CPU", "  }", "]"]
    return f.header(name) + "\n".join(lines) + "\n"


def _kubernetes(policy, *, model_name=None) -> str:
    """Kubernetes container `resources:` block."""
    f = _Fields(policy, "kubernetes")
    return _yaml(f.header(f.name(model_name)), {"resources": f.resources()})


def _nginx_rate(rps: float) -> str:
    if rps >= 1 and float(rps).is_integer():
        return f"{int(rps)}r/s"
    return f"{max(1, math.floor(rps * 60 + 1e-9))}r/m"


def _nginx(policy, *, model_name=None) -> str:
    """nginx `http`-context snippet: a rate-limit zone and a server that enforces the limits."""
    f = _Fields(policy, "nginx")
    name = f.name(model_name)
    zone = "costlab_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
    rate = _nginx_rate(f.number("serving.rate_limit_rps"))
    text = f"""\
# One bucket for the whole server ($server_name): the rate is what the serving process can
# answer, not a per-client share. Key on $binary_remote_addr for a per-client limit instead.
limit_req_zone $server_name zone={zone}:10m rate={rate};

server {{
    listen 8080;
    server_name _;

    location / {{
        limit_req zone={zone} burst={f.integer('serving.burst', minimum=0)} nodelay;
        limit_req_status 429;
        client_max_body_size {f.integer('request.max_payload_bytes')};
        proxy_read_timeout {f.timeout_s()}s;
        proxy_pass http://127.0.0.1:8501;  # REPLACE_ME: the model server
    }}
}}
"""
    return f.header(name) + text


def _ray(policy, *, model_name=None) -> str:
    """Ray Serve config file."""
    f = _Fields(policy, "ray")
    name = f.name(model_name)
    doc = {"http_options": {"request_timeout_s": f.number("request.timeout_ms") / 1000},
           "applications": [{
               "name": name,
               "import_path": "<fill in>",
               "deployments": [{
                   "name": name,
                   "max_ongoing_requests": f.integer("serving.max_concurrency"),
                   "max_queued_requests": max(1, f.integer("serving.max_queue", minimum=0)),
                   "ray_actor_options": {"num_cpus": f.cpu()},
               }],
           }]}
    return _yaml(f.header(name), doc)


def _bentoml(policy, *, model_name=None) -> str:
    """BentoML service `traffic` and `resources`."""
    f = _Fields(policy, "bentoml")
    doc = {"traffic": {"timeout": f.timeout_s(),
                       "max_concurrency": f.integer("serving.max_concurrency")},
           "resources": {"cpu": _cpu_quantity(f.cpu()),
                         "memory": f"{math.ceil(f.number('serving.container_memory_mib'))}Mi"}}
    return _yaml(f.header(f.name(model_name)), doc)


def _kserve(policy, *, model_name=None) -> str:
    """KServe `InferenceService` with a custom predictor container."""
    f = _Fields(policy, "kserve")
    name = f.name(model_name)
    doc = {"apiVersion": "serving.kserve.io/v1beta1",
           "kind": "InferenceService",
           "metadata": {"name": _dns1123(name)},
           "spec": {"predictor": {
               "minReplicas": 1,
               "containerConcurrency": f.integer("serving.max_concurrency"),
               "timeout": f.timeout_s(),
               "containers": [{"name": "kserve-container", "image": "REPLACE_ME",
                               "resources": f.resources()}],
           }}}
    return _yaml(f.header(name), doc)


#: Format name -> function(policy, *, model_name=None) -> str.
FORMATS = {"tfserving": _tfserving, "triton": _triton, "kubernetes": _kubernetes, "nginx": _nginx,
           "ray": _ray, "bentoml": _bentoml, "kserve": _kserve}
