"""Regenerate the artefacts in data/ (see data/README.md). Run: .venv/bin/python data/regenerate.py"""

from pathlib import Path

import keras

import costlab
from costlab.adapters import adapt

HERE = Path(__file__).resolve().parent


def main():
    model = costlab.zoo.build("attention", seed=0)
    path = HERE / "attention.keras"
    # .keras archives carry timestamps: rewrite only when the model itself changed.
    if not path.exists() or adapt(keras.saving.load_model(path)).sha256() != adapt(model).sha256():
        model.save(path)
    space = costlab.InputSpace.from_model(model).with_bounds(batch=(2, 16), seq_len=(64, 1024))
    run = costlab.run(model, {"latency_ms": 15, "memory_mib": 24}, HERE / "sample_run", space=space,
                      points=5, examples=3, min_repeats=3, max_repeats=10, probe_time_s=0.15, progress=False)
    print(run.summary())


if __name__ == "__main__":
    main()
