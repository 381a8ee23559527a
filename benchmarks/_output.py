"""What every benchmark script does with its results: print the Markdown, and with `--out`
write it there and the raw figures beside it as JSON (same name, `.json`)."""

from __future__ import annotations

import json
from pathlib import Path


def emit(text: str, data, out: str | None) -> None:
    print(text)
    if out:
        Path(out).write_text(text)
        Path(out).with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")


def finish(lines: list[str], data, out: str | None) -> int:
    """`emit` a benchmark's markdown lines and its data; the exit status, 0."""
    emit("\n".join(lines) + "\n", data, out)
    return 0
