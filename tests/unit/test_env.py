"""Importing costlab leaves the environment alone, and works with no Keras backend."""

import json
import os
import subprocess
import sys

# A meta-path finder that makes the Keras backends look uninstalled.
NO_BACKENDS = """
import sys
class _Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "jax", "torch", "candle"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Missing())
"""


def _python(code: str, env=None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**clean, **(env or {})})


def test_import_changes_no_environment_variable():
    out = _python("import os, json; before = dict(os.environ); import costlab; "
                  "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}


def test_workers_and_the_cli_get_tensorflows_variables():
    from costlab import _env

    env = _env.with_tf_defaults({"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert env["TF_ENABLE_ONEDNN_OPTS"] == "0"  # the user's setting wins
    assert env["TF_CPP_MIN_LOG_LEVEL"] == _env.TF_DEFAULTS["TF_CPP_MIN_LOG_LEVEL"]
    out = _python("import os, costlab.cli as c; c._env.set_tf_defaults(); print(os.environ['TF_ENABLE_ONEDNN_OPTS'])")
    assert out.stdout.strip() == "1", out.stderr


def test_costlab_imports_without_a_backend_and_names_the_extra_to_install():
    out = _python(NO_BACKENDS + """
import costlab
from costlab import Dimension, InputSpace, InputSpec, ValueDomain
try:
    costlab.zoo.build("mlp")
except costlab.ModelLoadError as exc:
    print("ERROR", exc)
""")
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip().splitlines()[-1]
    assert line.startswith("ERROR") and "pip install 'costlab[tensorflow-cpu]'" in line, out.stdout
    out = _python(NO_BACKENDS + """
import costlab
try:
    costlab.zoo.build("mlp")
except costlab.ModelLoadError as exc:
    print("ERROR", exc)
""", env={"KERAS_BACKEND": "jax"})
    assert "pip install 'costlab[jax]'" in out.stdout, (out.stdout, out.stderr[-2000:])
