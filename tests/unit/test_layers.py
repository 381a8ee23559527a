"""The layer contract (.importlinter): every module is in a layer, the contract holds, and
an upward import breaks it."""

import configparser
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import costlab

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _layers() -> list[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".importlinter")
    raw = cfg["importlinter:contract:layers"]["layers"]
    names = []
    for line in raw.split("\n"):
        for part in line.replace("(", "").replace(")", "").split("|"):
            if part.strip():
                names.append(part.strip())
    return names


def test_every_module_is_in_a_layer():
    layers = set(_layers())
    modules = [m.name for m in pkgutil.walk_packages(costlab.__path__, "costlab.")]
    outside = [m for m in modules if m.split(".")[1] not in layers]
    assert modules and not outside, outside
    # and every layer named (but the reserved ones in parentheses) exists
    present = {m.split(".")[1] for m in modules}
    assert set(_layers()) - present <= {"attack", "server"}, set(_layers()) - present


def _lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_contract_holds():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "Stages import only the stages below them KEPT" in out.stdout


def test_an_upward_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "costlab", copy / "costlab", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", copy / ".importlinter")
    space = copy / "costlab" / "inputs" / "space.py"
    space.write_text(space.read_text() + "\n\ndef _upward():\n    from costlab.policy import Policy\n\n    return Policy\n")
    out = subprocess.run([LINT, "--no-cache"], cwd=copy, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(copy), "PATH": str(Path(sys.executable).parent)})
    assert out.returncode != 0, out.stdout[-2000:]
    assert "BROKEN" in out.stdout and "costlab.inputs.space -> costlab.policy" in out.stdout, out.stdout[-3000:]


def test_the_import_paths_users_have_keep_working():
    from importlib.metadata import entry_points

    import costlab.strategies
    from costlab.churn import churn
    from costlab.guard import fastapi_dependency
    from costlab.worst import scan

    assert costlab.strategies.from_input_space and scan and churn and fastapi_dependency
    assert costlab.profile.__module__ == "costlab.profiling.session"  # the function, not a module
    assert callable(costlab.load_failure)
    (plugin,) = [e for e in entry_points(group="pytest11") if e.name == "costlab"]
    assert plugin.value == "costlab.testing.plugin"
