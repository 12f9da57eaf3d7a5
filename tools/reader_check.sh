#!/usr/bin/env bash
# The Colab reader's path, simulated: build the lmlib wheel, install `lmlib[book]` from it into a
# new virtual environment (no pinned requirements: pip takes the newest versions the lower bounds
# in pyproject.toml allow) and execute chapter 02 there. A dependency that a chapter imports but
# the `book` extra does not bring fails here, not in a reader's notebook.
#
# Data comes from the mirror and NLTK data from NLTK_DATA when they are set (as .ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

PYTHON="${PYTHON:-python3}"
CHAPTER="${READER_CHAPTER:-chapters/02_ngram_language_models.ipynb}"
work="$root/_build/reader-check"
rm -rf "$work"
mkdir -p "$work"
start=$(date +%s)

"$PYTHON" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" . >"$work/wheel.log" 2>&1 \
  || { cat "$work/wheel.log"; exit 1; }
rm -rf build  # setuptools' scratch folder
wheel=$(ls "$work"/dist/lmlib-*.whl)
# --no-compile: the chapter does not need TensorFlow's thousands of .pyc files ahead of time.
"$py" -m pip install --quiet --no-compile "lmlib[book] @ file://$wheel"
installed=$(date +%s)
echo "reader-check: installed lmlib[book] from $(basename "$wheel") in $((installed - start)) s"
"$py" -m pip list --format=freeze >"$work/installed.txt"
grep -iE '^(numpy|tensorflow|keras|nltk|gensim|myst-nb|pandas|scikit-learn)==' \
  "$work/installed.txt" | tr '\n' ' '
echo

# Execute the notebook as Jupyter would, from a folder outside the repository, so that
# `lmlib` comes from the installed wheel and not from the checkout.
cd "$work"
"$py" - "$root/$CHAPTER" <<'PYTHON'
import sys
from pathlib import Path

import lmlib
import nbformat
from nbclient import NotebookClient

chapter, here = Path(sys.argv[1]), Path.cwd()
assert "site-packages" in lmlib.__file__, f"lmlib imported from {lmlib.__file__}"
nb = nbformat.read(chapter, as_version=4)
resources = {"metadata": {"path": str(here)}}
NotebookClient(nb, timeout=900, kernel_name="python3", resources=resources).execute()
nbformat.write(nb, here / chapter.name)
cells = sum(c.cell_type == "code" for c in nb.cells)
print(f"reader-check: executed {chapter.name} ({cells} code cells)")
PYTHON
end=$(date +%s)
echo "reader-check: passed in $((end - start)) s" \
  "(install $((installed - start)) s, execute $((end - installed)) s)"
