"""Policy exports, each output parsed by the parser its server uses (no string matching only)."""

from __future__ import annotations

import copy
import math
import re
import tempfile
from pathlib import Path
from types import SimpleNamespace

import crossplane
import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from hypothesis import given, settings
from hypothesis import strategies as st
from tritonclient.grpc import model_config_pb2

from costlab import CostlabError
from costlab.checks.exports import FORMATS, ExportError, export, field_map

SHA = "3f5c9a0b1d2e" + "4" * 52

POLICY = {
    "schema_version": "1.1",
    "model": {"name": "attention", "sha256": SHA, "framework": "keras", "versions": {}},
    "budgets": {"latency_ms": 15.0, "latency_p99_ms": 30.0, "memory_mib": 24.0,
                "process_memory_mib": 2048, "cores": 2, "margin": 0.9},
    "inputs": {
        "tokens": {"dtype": "int32", "shape": ["batch", "seq_len"],
                   "dims": [{"name": "batch", "min": 1, "max": 7}, {"name": "seq_len", "min": 1, "max": 376}],
                   "values": {"kind": "int", "min": 0, "max": 999}},
        "mask": {"dtype": "float32", "shape": ["batch", "seq_len", 4],
                 "dims": [{"name": "batch", "min": 1, "max": 7}, {"name": "seq_len", "min": 1, "max": 376}],
                 "values": {"kind": "float", "min": 0.0, "max": 1.0}},
    },
    "limits": {"batch": {"name": "batch", "min": 1, "max": 7, "limited_by": "latency"},
               "seq_len": {"name": "seq_len", "min": 1, "max": 376, "limited_by": "latency"}},
    "request": {"max_batch": 7, "max_merged_batch": 4, "max_payload_bytes": 123456, "timeout_ms": 45.0},
    "serving": {"max_concurrency": 2, "max_queue": 8, "rate_limit_rps": 150.0, "burst": 10,
                "container_memory_mib": 900, "container_memory_request_mib": 700, "cpu": 2},
    "shapes": {"buckets": {"batch": [1, 2, 4, 7], "seq_len": [32, 64, 128, 256, 376]}, "max_distinct": 64},
}


def policy(*, drop=(), **changes) -> dict:
    """A copy of POLICY with `changes` ({"serving.cpu": 0.5}) applied and `drop` paths removed."""
    p = copy.deepcopy(POLICY)
    for path, value in changes.items():
        *head, last = path.split("__")
        node = p
        for key in head:
            node = node[key]
        node[last] = value
    for path in drop:
        *head, last = path.split(".")
        node = p
        for key in head:
            node = node[key]
        del node[last]
    return p


def unbatched_policy() -> dict:
    p = policy(drop=["request.max_batch", "limits.batch"])
    p["inputs"] = {"image": {"dtype": "uint8", "shape": ["height", 3],
                             "dims": [{"name": "height", "min": 8, "max": 64}]}}
    p["limits"] = {"height": {"name": "height", "min": 8, "max": 64, "limited_by": "memory"}}
    p["shapes"] = {"buckets": {"height": [8, 16, 32, 64]}}
    return p


# --- parsers ------------------------------------------------------------------------------
def parse_triton(text):
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def _batching_parameters_class():
    """TF Serving's `tensorflow.serving.BatchingParameters`, declared here.

    No PyPI package ships TF Serving's compiled protos (tensorflow-serving-api has the APIs,
    not `session_bundle_config.proto`), so the message is rebuilt from a descriptor that
    copies the fields and numbers of TF Serving's
    `tensorflow_serving/servables/tensorflow/session_bundle_config.proto`, in a private
    descriptor pool. Parsing the export with it checks the names, types and nesting the
    real `--batching_parameters_file` reader checks.
    """
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(
        name="costlab_tests/session_bundle_config.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    msg = fdp.message_type.add(name="BatchingParameters")
    for name, number, wrapper in [("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
                                  ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
                                  ("thread_pool_name", 5, "StringValue")]:
        msg.field.add(name=name, number=number, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
                      type_name=f".google.protobuf.{wrapper}")
    msg.field.add(name="allowed_batch_sizes", number=6, label=F.LABEL_REPEATED, type=F.TYPE_INT64)
    msg.field.add(name="pad_variable_length_inputs", number=7, label=F.LABEL_OPTIONAL, type=F.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    from google.protobuf import wrappers_pb2

    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.AddSerializedFile(wrappers.SerializeToString())
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()


def parse_tfserving(text):
    return text_format.Parse(text, BatchingParameters())


def parse_nginx(text, directory) -> list[dict]:
    """The export inside a complete nginx.conf, parsed by crossplane; the directives, flat."""
    conf = Path(directory) / "nginx.conf"
    conf.write_text("events {}\nhttp {\n" + text + "}\n")
    payload = crossplane.parse(str(conf))
    assert payload["status"] == "ok", payload["errors"]

    def walk(block):
        for d in block:
            yield d
            yield from walk(d.get("block", []))

    return list(walk(payload["config"][0]["parsed"]))


def directive(directives, name) -> list[str]:
    found = [d["args"] for d in directives if d["directive"] == name]
    assert len(found) == 1, (name, found)
    return found[0]


def mib(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)Mi", quantity)
    assert m, quantity
    return int(m.group(1))


PARSERS = {"triton": parse_triton, "tfserving": parse_tfserving, "kubernetes": yaml.safe_load,
           "ray": yaml.safe_load, "bentoml": yaml.safe_load, "kserve": yaml.safe_load}


# --- each format --------------------------------------------------------------------------
def test_triton_config_carries_the_policy():
    cfg = parse_triton(export(POLICY, "triton"))
    assert cfg.name == "attention"
    assert cfg.max_batch_size == 4  # merged batches padded to the longest: request.max_merged_batch
    inputs = {i.name: i for i in cfg.input}
    assert inputs["tokens"].data_type == model_config_pb2.TYPE_INT32
    assert list(inputs["tokens"].dims) == [-1]
    assert inputs["mask"].data_type == model_config_pb2.TYPE_FP32
    assert list(inputs["mask"].dims) == [-1, 4]
    db = cfg.dynamic_batching
    assert list(db.preferred_batch_size) == [1, 2, 4]
    assert db.max_queue_delay_microseconds == 1000  # min(1 ms, 10 % of 15 ms)
    q = db.default_queue_policy
    assert q.timeout_action == model_config_pb2.ModelQueuePolicy.REJECT
    assert q.default_timeout_microseconds == 45000
    assert q.max_queue_size == 8
    [group] = cfg.instance_group
    assert group.count == 2
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU


def test_triton_without_batch_dimension_lists_every_axis():
    cfg = parse_triton(export(unbatched_policy(), "triton"))
    assert cfg.max_batch_size == 0
    [image] = cfg.input
    assert image.data_type == model_config_pb2.TYPE_UINT8
    assert list(image.dims) == [-1, 3]
    assert not cfg.HasField("dynamic_batching")  # Triton's queue needs max_batch_size > 0
    assert cfg.instance_group[0].count == 2


def test_triton_fixed_size_dimension_and_scalar_input():
    p = policy(limits__seq_len={"name": "seq_len", "min": 128, "max": 128})
    p["inputs"]["weight"] = {"dtype": "float64", "shape": ["batch"]}
    cfg = parse_triton(export(p, "triton"))
    inputs = {i.name: i for i in cfg.input}
    assert list(inputs["tokens"].dims) == [128]
    assert list(inputs["weight"].dims) == [1]
    assert inputs["weight"].HasField("reshape") and list(inputs["weight"].reshape.shape) == []


def test_tfserving_batching_parameters_carry_the_policy():
    msg = parse_tfserving(export(POLICY, "tfserving"))
    assert msg.max_batch_size.value == 4
    assert msg.batch_timeout_micros.value == 1000
    assert msg.max_enqueued_batches.value == 8
    assert msg.num_batch_threads.value == 2
    assert list(msg.allowed_batch_sizes) == [1, 2, 4]
    assert msg.pad_variable_length_inputs is True


def test_tfserving_appends_max_batch_and_pads_only_variable_lengths():
    p = policy(request__max_batch=5, request__max_merged_batch=5, budgets__latency_ms=2.5, shapes={"buckets": {"batch": [1, 2, 4, 8]}})
    p["inputs"] = {"x": {"dtype": "float32", "shape": ["batch", 16]}}
    msg = parse_tfserving(export(p, "tfserving"))
    assert list(msg.allowed_batch_sizes) == [1, 2, 4, 5]  # last must equal max_batch_size
    assert msg.batch_timeout_micros.value == 250
    assert msg.pad_variable_length_inputs is False
    no_buckets = parse_tfserving(export(policy(drop=["shapes"]), "tfserving"))
    assert list(no_buckets.allowed_batch_sizes) == []


def test_kubernetes_resources():
    doc = yaml.safe_load(export(policy(serving__cpu=1.5), "kubernetes"))
    res = doc["resources"]
    assert mib(res["limits"]["memory"]) == 900
    assert mib(res["requests"]["memory"]) == 700
    assert res["limits"]["cpu"] == res["requests"]["cpu"] == "1500m"
    assert yaml.safe_load(export(POLICY, "kubernetes"))["resources"]["limits"]["cpu"] == "2"


def test_nginx_snippet_parses_and_limits(tmp_path):
    ds = parse_nginx(export(POLICY, "nginx"), tmp_path)
    key, zone, rate = directive(ds, "limit_req_zone")
    assert (zone, rate) == ("zone=costlab_attention:10m", "rate=150r/s")
    assert directive(ds, "limit_req") == ["zone=costlab_attention", "burst=10", "nodelay"]
    assert directive(ds, "limit_req_status") == ["429"]
    assert directive(ds, "client_max_body_size") == ["123456"]
    assert directive(ds, "proxy_read_timeout") == ["1s"]


@pytest.mark.parametrize(("rps", "rate"), [(150.0, "150r/s"), (150.5, "9030r/m"), (0.5, "30r/m"),
                                            (0.001, "1r/m")])
def test_nginx_rate_is_an_integer_rate(rps, rate, tmp_path):
    ds = parse_nginx(export(policy(serving__rate_limit_rps=rps), "nginx"), tmp_path)
    assert directive(ds, "limit_req_zone")[2] == f"rate={rate}"


def test_ray_serve_config():
    doc = yaml.safe_load(export(POLICY, "ray"))
    assert doc["http_options"]["request_timeout_s"] == pytest.approx(0.045)
    [app] = doc["applications"]
    assert app["name"] == "attention" and app["import_path"] == "<fill in>"
    [dep] = app["deployments"]
    assert dep["max_ongoing_requests"] == 2
    assert dep["max_queued_requests"] == 8
    assert dep["ray_actor_options"] == {"num_cpus": 2}


def test_bentoml_service_config():
    doc = yaml.safe_load(export(policy(request__timeout_ms=1000.5), "bentoml"))
    assert doc["traffic"] == {"timeout": 2, "max_concurrency": 2}
    assert doc["resources"]["cpu"] == "2"
    assert mib(doc["resources"]["memory"]) == 900


def test_kserve_inference_service():
    doc = yaml.safe_load(export(POLICY, "kserve", model_name="Attention_v2"))
    assert doc["apiVersion"] == "serving.kserve.io/v1beta1" and doc["kind"] == "InferenceService"
    assert doc["metadata"]["name"] == "attention-v2"
    pred = doc["spec"]["predictor"]
    assert (pred["containerConcurrency"], pred["timeout"], pred["minReplicas"]) == (2, 1, 1)
    [c] = pred["containers"]
    assert c["image"] == "REPLACE_ME" and c["name"]
    assert mib(c["resources"]["limits"]["memory"]) == 900
    assert mib(c["resources"]["requests"]["memory"]) == 700


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_header_names_model_and_hash(fmt):
    text = export(POLICY, fmt)
    head = text.splitlines()[:3]
    assert all(line.startswith("# ") for line in head)
    assert '"attention"' in head[0] and SHA[:12] in head[0] and SHA[:13] not in head[0]
    assert "README" in text and f'field_map("{fmt}")' in text


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_accepts_policy_objects_and_renames(fmt, tmp_path):
    assert export(SimpleNamespace(data=POLICY), fmt) == export(POLICY, fmt)
    renamed = export(POLICY, fmt, model_name="bert")
    assert '"bert"' in renamed.splitlines()[0]
    if fmt == "triton":
        assert parse_triton(renamed).name == "bert"
    if fmt == "nginx":
        assert directive(parse_nginx(renamed, tmp_path), "limit_req")[0] == "zone=costlab_bert"


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_field_map_names_fields_the_policy_has(fmt):
    rows = field_map(fmt)
    assert rows and all(len(r) == 3 and all(isinstance(s, str) and s for s in r) for r in rows)
    for _, source, _ in rows:
        for path in re.findall(r"[a-z_]+(?:\.[a-z_<>*]+)+", source):
            if "<" in path or path.endswith("_*"):
                continue
            node = POLICY
            for key in path.split("."):
                assert key in node, f"{fmt}: {path}"
                node = node[key]


def test_export_does_not_change_the_policy():
    p = policy()
    for fmt in FORMATS:
        export(p, fmt)
    assert p == POLICY


# --- errors: one table of bad calls -------------------------------------------------------
BAD_CALLS = [
    pytest.param(POLICY, "torchserve", {}, "Expected one of ['bentoml', 'kserve', 'kubernetes', "
                 "'nginx', 'ray', 'tfserving', 'triton'] for `to`. Received: to='torchserve'",
                 id="unknown-format"),
    pytest.param(POLICY, None, {}, "Received: to=None", id="format-none"),
    pytest.param(policy(drop=["serving.max_concurrency"]), "triton", {},
                 "policy field `serving.max_concurrency` is missing", id="missing-concurrency-triton"),
    pytest.param(policy(drop=["serving.max_concurrency"]), "ray", {},
                 "policy field `serving.max_concurrency` is missing", id="missing-concurrency-ray"),
    pytest.param(policy(drop=["serving.rate_limit_rps"]), "nginx", {},
                 "policy field `serving.rate_limit_rps` is missing", id="missing-rate"),
    pytest.param(policy(drop=["request.timeout_ms"]), "bentoml", {},
                 "policy field `request.timeout_ms` is missing", id="missing-timeout"),
    pytest.param(policy(drop=["serving.container_memory_mib"]), "kubernetes", {},
                 "policy field `serving.container_memory_mib` is missing", id="missing-memory"),
    pytest.param(policy(drop=["serving"]), "kserve", {}, "policy field `serving.", id="missing-section"),
    pytest.param(policy(drop=["request.max_batch", "request.max_merged_batch"]), "tfserving", {},
                 "policy field `request.max_batch` is missing", id="missing-max-batch"),
    pytest.param(policy(drop=["model"]), "kubernetes", {}, "policy field `model.", id="missing-model"),
    pytest.param(unbatched_policy(), "tfserving", {}, "no batch dimension on inputs ['image']",
                 id="tfserving-no-batch-dimension"),
    pytest.param(policy(serving__max_concurrency=0), "triton", {},
                 "Expected a positive integer for policy field `serving.max_concurrency`. "
                 "Received: serving.max_concurrency=0", id="zero-concurrency"),
    pytest.param(policy(serving__burst=True), "nginx", {}, "serving.burst=True", id="bool-burst"),
    pytest.param(policy(request__timeout_ms=float("nan")), "ray", {}, "request.timeout_ms=nan",
                 id="nan-timeout"),
    pytest.param(policy(serving__container_memory_request_mib=1000), "kubernetes", {},
                 "container_memory_request_mib=1000, container_memory_mib=900", id="request-over-limit"),
    pytest.param(policy(inputs__tokens__dtype="complex64"), "triton", {}, "inputs.tokens.dtype='complex64'",
                 id="unknown-dtype"),
    pytest.param(policy(shapes__buckets__batch=[0, 2]), "triton", {}, "shapes.buckets.batch=[0, 2]",
                 id="bad-buckets"),
    pytest.param(policy(inputs={}), "triton", {}, "at least one input", id="no-inputs"),
    pytest.param(policy(schema_version="2.0"), "ray", {}, "schema_version='2.0'", id="schema-2"),
    pytest.param(policy(serving=[1, 2]), "ray", {}, "Expected an object for policy field `serving`",
                 id="section-not-object"),
    pytest.param([POLICY], "ray", {}, "Received: list", id="not-a-policy"),
    pytest.param(POLICY, "ray", {"model_name": ""}, "Received: model_name=''", id="empty-model-name"),
]


@pytest.mark.parametrize(("data", "to", "kwargs", "match"), BAD_CALLS)
def test_bad_calls_raise_export_error(data, to, kwargs, match):
    """`match` is a plain substring of the message."""
    with pytest.raises(ExportError, match=re.escape(match)) as info:
        export(data, to, **kwargs)
    assert isinstance(info.value, CostlabError) and isinstance(info.value, ValueError)


def test_field_map_unknown_format():
    with pytest.raises(ExportError, match="'triton'"):
        field_map("onnx")


# --- every format parses for any valid policy ---------------------------------------------
DTYPES = ["bool", "uint8", "int32", "int64", "float16", "float32", "float64"]


@st.composite
def policies(draw) -> dict:
    batched = draw(st.booleans())
    named = draw(st.lists(st.sampled_from(["seq_len", "height", "width"]), unique=True, max_size=2))
    limits = {}
    if batched:
        limits["batch"] = {"name": "batch", "min": 1, "max": draw(st.integers(1, 4096))}
    for d in named:
        lo = draw(st.integers(1, 512))
        limits[d] = {"name": d, "min": lo, "max": draw(st.integers(lo, 100_000))}
    inputs = {}
    for i in range(draw(st.integers(1, 2))):
        shape = (["batch"] if batched else []) + draw(st.permutations(named)) \
            + draw(st.lists(st.integers(1, 8), max_size=2))
        inputs[f"in_{i}"] = {"dtype": draw(st.sampled_from(DTYPES)), "shape": shape,
                             "dims": [limits[s] for s in shape if isinstance(s, str)]}
    memory = draw(st.floats(16, 1e6))
    p = {"schema_version": "1.1",
         "model": {"name": draw(st.text(st.characters(categories=["L", "N", "P", "Zs"]), min_size=1,
                                        max_size=24).filter(str.strip)),
                   "sha256": draw(st.text("0123456789abcdef", min_size=64, max_size=64))},
         "budgets": {"latency_ms": draw(st.floats(0.01, 1e5)), "memory_mib": 24.0, "margin": 0.9},
         "inputs": inputs, "limits": limits,
         "request": {"max_payload_bytes": draw(st.integers(1, 10**9)),
                     "timeout_ms": draw(st.floats(0.01, 1e7))},
         "serving": {"max_concurrency": draw(st.integers(1, 256)), "max_queue": draw(st.integers(0, 10_000)),
                     "rate_limit_rps": draw(st.floats(0.1, 1e5)), "burst": draw(st.integers(0, 10_000)),
                     "container_memory_mib": memory,
                     "container_memory_request_mib": draw(st.floats(1, memory)),
                     "cpu": draw(st.integers(1, 64) | st.floats(0.1, 64))}}
    if batched:
        p["request"]["max_batch"] = limits["batch"]["max"]
    if draw(st.booleans()):
        p["shapes"] = {"buckets": {d: sorted({*(2**k for k in range(20) if lim["min"] <= 2**k < lim["max"]),
                                              lim["max"]})
                                   for d, lim in limits.items()}}
    return p


@settings(max_examples=50)
@given(policies())
def test_every_format_parses_for_any_policy(p):
    for fmt in sorted(FORMATS):
        if fmt == "tfserving" and "max_batch" not in p["request"]:
            with pytest.raises(ExportError, match="no batch dimension"):
                export(p, fmt)
            continue
        text = export(p, fmt)
        if fmt == "nginx":
            with tempfile.TemporaryDirectory() as d:
                ds = parse_nginx(text, d)
            assert directive(ds, "client_max_body_size") == [str(p["request"]["max_payload_bytes"])]
            assert re.fullmatch(r"rate=[1-9]\d*r/[sm]", directive(ds, "limit_req_zone")[2])
            continue
        doc = PARSERS[fmt](text)
        serving = p["serving"]
        if fmt == "triton":
            assert doc.name == p["model"]["name"]
            assert doc.max_batch_size == p["request"].get("max_batch", 0)
            assert doc.instance_group[0].count == serving["max_concurrency"]
            assert all(0 < b <= doc.max_batch_size for b in doc.dynamic_batching.preferred_batch_size)
        elif fmt == "tfserving":
            assert doc.max_batch_size.value == p["request"]["max_batch"]
            sizes = list(doc.allowed_batch_sizes)
            assert sizes == sorted(set(sizes)) and (not sizes or sizes[-1] == doc.max_batch_size.value)
        elif fmt == "kubernetes":
            res = doc["resources"]
            assert mib(res["limits"]["memory"]) == math.ceil(serving["container_memory_mib"])
            assert mib(res["requests"]["memory"]) <= mib(res["limits"]["memory"])
        elif fmt == "ray":
            dep = doc["applications"][0]["deployments"][0]
            assert dep["max_ongoing_requests"] == serving["max_concurrency"]
            assert dep["max_queued_requests"] >= 1
            assert doc["http_options"]["request_timeout_s"] == pytest.approx(p["request"]["timeout_ms"] / 1000)
        elif fmt == "bentoml":
            assert doc["traffic"]["timeout"] >= p["request"]["timeout_ms"] / 1000
            assert doc["traffic"]["timeout"] >= 1
        elif fmt == "kserve":
            assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", doc["metadata"]["name"])
            assert doc["spec"]["predictor"]["containerConcurrency"] == serving["max_concurrency"]
