"""Write docs/index.md (the site's home page) from README.md: `python docs/_index.py`.

The README is the one source; its links into docs/ become links between pages.
"""

from pathlib import Path

root = Path(__file__).resolve().parent.parent
text = (root / "README.md").read_text()
text = text.replace("](docs/", "](")
(root / "docs" / "index.md").write_text(text)
