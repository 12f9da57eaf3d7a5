#!/usr/bin/env python
"""Write every chapter's first code cell, the one that installs the book's library in
Colab.

The repository URL (``repository.url`` in ``_config.yml``, which also drives the launch
and repository buttons) and the release (``v`` + ``lmlib.__version__``) are defined
once; this tool renders the install cell from them, so no chapter carries its own copy
to drift.

    python tools/install_cell.py           # rewrite the cell in chapters/NN_*.py
    python tools/install_cell.py --check   # exit 1, naming the chapters that differ

Run ``make sync`` afterwards (``make sync`` runs this tool first) so the notebooks
follow.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
FIRST_LINE = "# In Colab (or any Jupyter without the book's environment), install lmlib"
FIX = "run `make sync` (python tools/install_cell.py, then jupytext --sync)"


def release() -> tuple[str, str]:
    """(repository URL, release tag) from _config.yml and lmlib/__init__.py."""
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    init = (ROOT / "lmlib" / "__init__.py").read_text()
    version = re.search(r'^__version__ = "([^"]+)"', init, re.M).group(1)
    return url.rstrip("/"), f"v{version}"


def render() -> str:
    """The install cell's source (without the ``# %%`` marker)."""
    url, tag = release()
    return f"""{FIRST_LINE}
# (the book's library) at this book's release, with the extra that brings what the
# chapters import (NLTK, gensim, TensorFlow/Keras, myst-nb, pandas, scikit-learn).
import importlib.util
import subprocess
import sys

LMLIB = "lmlib[book] @ git+{url}@{tag}"
if importlib.util.find_spec("lmlib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", LMLIB], check=True)
"""


# The first `# %%` code cell of a py:percent chapter, up to the next cell marker.
FIRST_CODE_CELL = re.compile(r"^# %%\n(.*?)(?=^# %%)", re.M | re.S)


def rewrite(text: str, cell: str) -> str:
    match = FIRST_CODE_CELL.search(text)
    if match is None or "pip" not in match.group(1):
        raise SystemExit("no install cell (a first code cell that calls pip) found")
    return text[: match.start(1)] + cell + "\n" + text[match.end(1) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report, do not write")
    args = parser.parse_args(argv)
    cell = render()
    stale = []
    for path in sorted(CHAPTERS.glob("[0-9][0-9]*_*.py")):
        text = path.read_text()
        new = rewrite(text, cell)
        if new != text:
            stale.append(path.name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"install cell differs in {', '.join(stale)}: {FIX}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
