"""The README stays short, and the docs site builds in strict mode from it."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_is_short_and_links_only_to_pages_that_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    assert max(len(line) for line in text.splitlines()) <= 300
    for link in [part.split(")")[0] for part in text.split("](docs/")[1:]]:
        assert (ROOT / "docs" / link).is_file(), link


def test_the_docs_build_in_strict_mode(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "docs" / "_index.py")], check=True, timeout=60)
    assert (ROOT / "docs" / "index.md").read_text() == (ROOT / "README.md").read_text().replace("](docs/", "](")
    out = subprocess.run([str(Path(sys.executable).with_name("mkdocs")), "build", "--strict", "--site-dir",
                          str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={"NO_MKDOCS_2_WARNING": "1", "PATH": str(Path(sys.executable).parent)})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "WARNING" not in out.stderr, out.stderr[-3000:]
    assert (tmp_path / "site" / "architecture" / "index.html").is_file()
