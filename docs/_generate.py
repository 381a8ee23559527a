"""Write the generated pages of the docs site: `python docs/_generate.py` (`make docs`).

- `index.md`, the home page, from README.md (its links into docs/ become page links);
- `settings.md`, every setting of `costlab.pipeline.settings.FIELDS` with its default, and
  each preset's changes;
- `cli-reference.md`, each command's `--help`, from the parser itself.
"""

import contextlib
import io
from pathlib import Path

from costlab import cli
from costlab.pipeline import settings

root = Path(__file__).resolve().parent.parent
docs = root / "docs"
(docs / "index.md").write_text((root / "README.md").read_text().replace("](docs/", "]("))

lines = ["# Settings and presets", "",
         "Every knob of `costlab run` and `costlab.run`, written once (`costlab.pipeline.settings.FIELDS`; this page",
         "is generated from it). A run resolves them in this order: the preset (`--preset`, `preset=`), a",
         "settings file (`--settings FILE`, `settings=`: JSON or YAML, the names below, optionally `preset`),",
         "then single settings (`--set KEY=VALUE`, keywords of `costlab.run`). An unknown name is an error",
         "naming the closest one. The run writes what it resolved to `settings.json`; `--resume` refuses",
         "settings that changed.", "",
         "The command line and Python share the defaults: probes run in isolated workers",
         "(`isolation: subprocess`) in both.", "",
         "| setting | default | what it does |", "|---|---|---|"]
for name, (default, _, doc) in settings.FIELDS.items():
    lines.append(f"| `{name}` | `{default!r}` | {doc} |")
lines += ["", "## Presets", "", "| preset | changes from the defaults |", "|---|---|"]
for name, changes in settings.PRESETS.items():
    lines.append(f"| `{name}` | {', '.join(f'`{k}={v!r}`' for k, v in changes.items()) or 'none: the defaults'} |")
lines += ["", "## When the drift check and the pulses run", "",
          "The drift check (the policy's frontier read after a few hundred distinct shapes in one process,",
          "`shapes.drift`) and the speed pulses (`machine_speed`) run when the preset says so: on in `standard`",
          "and `thorough`, off in `quick`. A trigger from the run's own shape churn was measured and does not",
          "work: 16 new shapes in one worker read the same resident growth (about 20 MiB per 100 shapes) and",
          "the same retraces (2 of 16) on zoo:attention, which does not slow down, and on zoo:masked, whose",
          "reference input runs 2.85x slower after 240 shapes (`benchmarks/results/drift_trigger.md`).", "",
          "## Policy fields a preset leaves out", "",
          "| field | left out when |", "|---|---|",
          "| `machine_speed` | `pulse: 0` (the `quick` preset): no speed index, verify reads raw latencies |",
          "| `shapes.drift` | the drift check did not run (`drift: off`, the `quick` preset; `churn: 0`; or probes run in this process, `isolation: inprocess`) |",
          "| `serving.throughput`, `serving.rate_limit_rps`, `serving.burst` | `throughput_s: 0` |",
          "| `shapes` (buckets, `max_distinct`) | `churn: 0` |", ""]
(docs / "settings.md").write_text("\n".join(lines))

parser = cli._parser()
out = ["# Command-line reference", "", "Generated from the parser (`costlab COMMAND --help`).", ""]
sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
for name, p in sub.choices.items():
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        p.print_help()
    out += [f"## costlab {name}", "", "```text", buf.getvalue().rstrip(), "```", ""]
(docs / "cli-reference.md").write_text("\n".join(out))
