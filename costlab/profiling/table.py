"""The results table: `Profile` (one row per probe, `profile.csv`), the probe log a run resumes from, and the failure files that keep a failing input."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from costlab.inputs.space import InputSpace
from costlab.measurement.executors import EXTRA_COLUMNS
from costlab.measurement.timing import COLUMNS

#: Columns every profile table has, besides one per dimension.
TABLE_COLUMNS = ("plan", "probe", "kind", "round", "input_shapes", "dtype", "seed", "values", "call") + COLUMNS + \
    EXTRA_COLUMNS + ("intra_op_threads", "inter_op_threads", "finished_at", "env", "repro")


@dataclass
class Profile:
    """The results of `profile`: one row per probe, plus what was measured and where.

    Attributes:
        table: pandas DataFrame, one row per probe: a column per dimension, then
            `TABLE_COLUMNS` (`status` is `ok` or the failure kind).
        space: The input space the probes were drawn from.
        model: The adapter's description (name, sha256, framework, versions, call path).
        machine: CPU model, cores, memory and OS of the measuring host.
        preprocess: Memory of the `preprocess` function line by line, when one was given.
        resumed: How many rows were taken from the log of an interrupted run.
        not_launched: Probes never run because the data before them predicted them over
            a hard cap: sizes, predicted seconds and MiB, which cap.
    """

    table: pd.DataFrame
    space: InputSpace
    model: dict = field(default_factory=dict)
    machine: dict = field(default_factory=dict)
    preprocess: pd.DataFrame | None = None
    resumed: int = 0
    not_launched: list = field(default_factory=list)

    @property
    def dims(self) -> list[str]:
        return self.space.dim_names

    @property
    def ok(self) -> pd.DataFrame:
        """Rows whose probe succeeded."""
        return self.table[self.table["status"] == "ok"]

    @property
    def failures(self) -> pd.DataFrame:
        """Rows whose probe failed (`error`, `oom`, `timeout`, `crashed`)."""
        return self.table[self.table["status"] != "ok"]

    def calibration(self, *, min_mib: float = 16.0) -> dict:
        """How the process's memory relates to the framework's tensor peak.

        A policy budgets tensors per request, a container limit budgets the process:
        its resident size before any probe plus its growth. The growth over the RSS before a
        probe (VmHWM, `process_delta_bytes`) is compared with the tensor peak on probes
        whose tensor peak is at least `min_mib` and is the largest its worker has seen so
        far (smaller ones are served from memory the allocator already holds, so their
        growth reads ~0).

        Returns:
            `{"rows", "ratio_median", "ratio_max", "baseline_rss_mib", "process_peak_mib"}`:
            rows used, process growth / tensor peak (median and largest), the workers'
            RSS before their first probe, the largest process high-water mark; ratios
            are `None` without qualifying rows.
        """
        t = self.table
        need = {"peak_bytes", "process_delta_bytes", "worker_pid", "rss_before_bytes"}
        if not need <= set(t.columns) or t.empty:
            return {"rows": 0, "ratio_median": None, "ratio_max": None, "baseline_rss_mib": None,
                    "process_peak_mib": None}
        ok = t[(t["status"] == "ok") & t["peak_bytes"].notna() & (t["memory_source"] != "process_vmhwm")]
        best, new_high = {}, []
        for pid, peak in zip(ok["worker_pid"], ok["peak_bytes"], strict=True):
            new_high.append(peak > best.get(pid, 0))
            best[pid] = max(best.get(pid, 0), peak)
        use = ok[pd.Series(new_high, index=ok.index, dtype=bool) & (ok["peak_bytes"] >= min_mib * 2**20)]
        ratio = (use["process_delta_bytes"] / use["peak_bytes"]).astype(float)
        first = t[t["worker_probe"] == 0]["rss_before_bytes"].dropna()
        return {"rows": int(len(use)),
                "ratio_median": float(ratio.median()) if len(use) else None,
                "ratio_max": float(ratio.max()) if len(use) else None,
                "baseline_rss_mib": float(first.median() / 2**20) if len(first) else None,
                "process_peak_mib": float(t["process_peak_bytes"].max() / 2**20)
                if t["process_peak_bytes"].notna().any() else None}

    @property
    def memory_fallback(self) -> str | None:
        """Why this Keras/TensorFlow profile's memory is the process high-water mark, or `None`.

        A TensorFlow model's peaks should be tensor peaks from the allocator's statistics
        (`costlab.adapters.memory.TFAllocatorPeak`). Where a worker could not read them (TF runs
        without oneDNN, e.g. `TF_ENABLE_ONEDNN_OPTS=0`) each probe reads the process's
        high-water mark over its RSS before the call instead: memory TF's allocator already
        holds reads ~0 and a worker's first call reads its warm-up, so the memory curve
        and the limits it sets are unreliable. Plain callables and candle (no allocator
        statistics) and Keras on JAX or torch (none on the CPU) use the process peak by design
        and get `None`.
        """
        versions = (self.model or {}).get("versions") or {}
        if (self.model or {}).get("framework") != "keras" or versions.get("backend") != "tensorflow":
            return None
        t = self.table
        if "memory_source" not in t.columns:
            return None
        ok = t[t["status"] == "ok"]
        fell = ok[ok["memory_source"] == "process_vmhwm"]
        if fell.empty:
            return None
        flag = sorted({str(json.loads(e).get("TF_ENABLE_ONEDNN_OPTS", "unset"))
                       for e in fell["env"].dropna()}) if "env" in fell.columns else []
        return (f"{len(fell)} of {len(ok)} probes read memory as the process high-water mark, not TensorFlow's "
                f"tensor peak: the allocator statistics were unavailable in their workers "
                f"(TF_ENABLE_ONEDNN_OPTS={'/'.join(flag) or 'unknown'}; TensorFlow keeps them only with oneDNN on). "
                "Memory already held by TF's allocator reads ~0 there, so the memory curve and its limits are "
                "unreliable: measure again with TF_ENABLE_ONEDNN_OPTS=1 (costlab's default)")

    def _repr_html_(self):
        """Probes by status, dimension ranges, the first rows and a picture, for notebooks."""
        from costlab.viz.display import profile_html

        return profile_html(self)

    def save(self, out_dir) -> Path:
        """Write `profile.csv` and `profile.json` (space, model, machine, calibration) to `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(out / "profile.csv", index=False)
        if self.preprocess is not None:
            self.preprocess.to_csv(out / "preprocess_memory.csv", index=False)
        meta = {"space": self.space.to_dict(), "model": self.model, "machine": self.machine,
                "calibration": self.calibration(), "not_launched": self.not_launched}
        (out / "profile.json").write_text(json.dumps(meta, indent=2) + "\n")
        return out / "profile.csv"

    @classmethod
    def load(cls, run_dir) -> Profile:
        run = Path(run_dir)
        meta = json.loads((run / "profile.json").read_text())
        table = pd.read_csv(run / "profile.csv", keep_default_na=False, na_values=[""])
        table["error"] = table["error"].astype(object).fillna("")
        return cls(table, InputSpace.from_dict(meta["space"]), meta["model"], meta["machine"],
                   not_launched=meta.get("not_launched", []))


def _row(space, sizes, inputs, kind, round_, seed, probe_id, plan, call, result, env, memory_source,
         values="random"):
    shapes = {k: list(v.shape) for k, v in inputs.items()}
    dtypes = sorted({str(v.dtype) for v in inputs.values()})
    row = {**{d: int(sizes[d]) for d in space.dim_names}, "plan": plan, "probe": probe_id, "kind": kind,
           "round": round_, "input_shapes": json.dumps(shapes), "dtype": ",".join(dtypes), "seed": seed,
           "values": values, "call": call, **dict.fromkeys(COLUMNS + EXTRA_COLUMNS), **result,
           "intra_op_threads": (env or {}).get("intra_op_threads"),
           "inter_op_threads": (env or {}).get("inter_op_threads"),
           "finished_at": time.time(), "env": json.dumps(env or {}, sort_keys=True)}
    row["error"] = row["error"] or ""
    row["memory_source"] = row["memory_source"] or memory_source
    return row


def read_log(path) -> list[dict]:
    """Rows of a probe log; a line cut short by a kill (the last one) is ignored."""
    rows = []
    p = Path(path)
    if not p.is_file():
        return rows
    with open(p) as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and "plan" in row and "probe" in row:
                rows.append(row)
    return rows


#: Inputs of a failing probe up to this size are saved as arrays; larger ones by their recipe.
MAX_SAVED_BYTES = 64 * 2**20


def save_failure(directory: Path, row: dict, inputs: dict, dims=()) -> str:
    """Keep a failing probe reproducible: `<plan>-<probe>.npz` with its input arrays (up to
    `MAX_SAVED_BYTES`; plan probes are also reproducible from their sizes and seed) and a
    line in `failures.jsonl`. Returns the file name of the arrays, or `""` when not saved."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{row['plan']}-{row['probe'].replace('/', '-')}.npz"
    saved = ""
    if sum(v.nbytes for v in inputs.values()) <= MAX_SAVED_BYTES:
        import numpy as np

        np.savez_compressed(directory / name, **inputs)
        saved = name
    entry = {k: row[k] for k in ("plan", "probe", "kind", "status", "error", "input_shapes", "seed")}
    entry["arrays"] = saved  # relative to `directory`; load with `load_failure`
    values = row.get("values") or "random"
    entry["recipe"] = (None if row["kind"] == "fuzz" else
                       {"sizes": {d: row[d] for d in dims}, "seed": row["seed"], "values": values,
                        "how": f"InputSpace.pattern_inputs(sizes, seed=seed, values={values!r})"})
    with open(directory / "failures.jsonl", "a") as fh:
        fh.write(json.dumps(entry) + "\n")
    return saved


def load_failure(path) -> dict:
    """The input arrays of a failing probe saved by a run (`failures/*.npz`)."""
    import numpy as np

    with np.load(path) as data:
        return {k: data[k] for k in data.files}
