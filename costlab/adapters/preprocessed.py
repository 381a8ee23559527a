"""An adapter that runs a preprocessing function before the model, as a serving function
does: `Preprocessed(adapter, fn)(inputs) == adapter(fn(inputs))`."""

from __future__ import annotations

import pandas as pd

from costlab.errors import CostlabError


class Preprocessed:
    """An adapter calling `model(preprocess(inputs))`: what a serving function runs."""

    def __init__(self, adapter, preprocess):
        if not callable(preprocess):
            raise CostlabError(f"Expected a callable for `preprocess`. Received: {preprocess!r}")
        self.inner, self.fn = adapter, preprocess
        self.name, self.framework = adapter.name, getattr(adapter, "framework", None)
        self.call_path = f"{getattr(preprocess, '__name__', 'preprocess')}+{adapter.call_path}"

    def __call__(self, inputs):
        return self.inner(self.fn(inputs))

    def signature(self):
        return self.inner.signature()

    def memory_source(self):
        return self.inner.memory_source()

    def describe(self) -> dict:
        return {**self.inner.describe(), "call": self.call_path,
                "preprocess": f"{getattr(self.fn, '__module__', '?')}:{getattr(self.fn, '__qualname__', '?')}"}

    def line_memory(self, prof) -> pd.DataFrame:
        """Memory of `preprocess` line by line (memory_profiler) at the largest ok probe.

        Columns: `file`, `line`, `code`, `increment_mib`, `mem_usage_mib`, `occurrences`.
        """
        import linecache

        from memory_profiler import LineProfiler

        cols = ["file", "line", "code", "increment_mib", "mem_usage_mib", "occurrences"]
        ok = prof.ok
        if ok.empty:
            return pd.DataFrame(columns=cols)
        biggest = ok.loc[ok[prof.dims].prod(axis=1).idxmax()]
        inputs = prof.space.random_inputs({d: int(biggest[d]) for d in prof.dims}, seed=int(biggest["seed"]))
        lp = LineProfiler(backend="psutil")
        lp(self.fn)(inputs)
        rows = []
        for filename, lines in lp.code_map.items():
            for lineno, m in lines:
                if m:
                    rows.append({"file": filename, "line": lineno,
                                 "code": linecache.getline(filename, lineno).rstrip(),
                                 "increment_mib": float(m[0]), "mem_usage_mib": float(m[1]),
                                 "occurrences": int(m[2])})
        return pd.DataFrame(rows, columns=cols)
