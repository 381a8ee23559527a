"""The README stays short, and the docs site builds in strict mode from it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_module():
    # the generated pages (index, settings, the CLI reference), as `make docs` writes them
    subprocess.run([sys.executable, str(ROOT / "docs" / "_generate.py")], check=True, timeout=120)


def test_the_readme_is_short_and_links_only_to_pages_that_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    assert max(len(line) for line in text.splitlines()) <= 300
    for link in [part.split(")")[0] for part in text.split("](docs/")[1:]]:
        assert (ROOT / "docs" / link).is_file(), link


def test_the_docs_build_in_strict_mode(tmp_path):
    assert (ROOT / "docs" / "index.md").read_text() == (ROOT / "README.md").read_text().replace("](docs/", "](")
    out = subprocess.run([str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "WARNING" not in out.stderr, out.stderr[-3000:]
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()


def test_the_settings_page_and_the_cli_reference_come_from_the_code():
    from costlab import cli
    from costlab.pipeline.settings import FIELDS

    page = (ROOT / "docs" / "settings.md").read_text()
    assert all(f"| `{name}` | `{d!r}` |" in page for name, (d, _, _) in FIELDS.items())
    ref = (ROOT / "docs" / "cli-reference.md").read_text()
    assert cli._parser().format_usage().split()[1] in ref and "--preset {quick,standard,thorough}" in ref


def test_costlab_run_takes_at_most_15_options():
    from costlab import cli

    sub = next(a for a in cli._parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    options = [a for a in sub.choices["run"]._actions if a.option_strings and "-h" not in a.option_strings]
    assert len(options) <= 15, [a.option_strings for a in options]
