"""The book's own invariants.

Paired chapters in sync, notebooks stored without outputs, a complete TOC, citations
that resolve, one install cell, and a README that shows the two commands.
"""

import ast
import re
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_PY = sorted((ROOT / "chapters").glob("[0-9][0-9]*_*.py"))
CHAPTER_NB = sorted((ROOT / "chapters").glob("[0-9][0-9]*_*.ipynb"))
FIX_SYNC = "run `make sync` (jupytext --sync chapters/*.py)"


def test_there_are_chapters():
    assert CHAPTER_PY, "no chapters/NN_*.py found"


def test_every_chapter_is_a_pair():
    py = {p.stem for p in CHAPTER_PY}
    nb = {p.stem for p in CHAPTER_NB}
    assert py == nb, f"unpaired chapters {sorted(py ^ nb)}: {FIX_SYNC}"


@pytest.mark.parametrize("path", CHAPTER_PY, ids=lambda p: p.stem)
def test_pair_is_in_sync(path):
    text = jupytext.read(path)
    assert "ipynb,py:percent" in text.metadata.get("jupytext", {}).get("formats", ""), (
        f"{path.name} is not paired as ipynb,py:percent"
    )
    nb = jupytext.read(path.with_suffix(".ipynb"))
    cells_py = [(c.cell_type, c.source) for c in text.cells]
    cells_nb = [(c.cell_type, c.source) for c in nb.cells]
    assert cells_py == cells_nb, f"{path.name} and its .ipynb differ: {FIX_SYNC}"


@pytest.mark.parametrize("path", CHAPTER_NB, ids=lambda p: p.stem)
def test_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name} has outputs in cells {dirty}: clear them "
        "(jupytext --sync rewrites it cleanly)"
    )


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def test_toc_lists_every_chapter_as_its_notebook_and_every_entry_exists():
    files = toc_files()
    for f in files:
        candidates = (
            [ROOT / f] if Path(f).suffix else [ROOT / f"{f}.md", ROOT / f"{f}.ipynb"]
        )
        assert any(c.exists() for c in candidates), (
            f"_toc.yml names {f}, which does not exist"
        )
    listed = {f for f in files if f.startswith("chapters/")}
    assert listed == {f"chapters/{p.name}" for p in CHAPTER_NB}, (
        "_toc.yml must list each chapter's .ipynb"
    )


def test_every_citation_is_in_the_bibliography():
    bib = (ROOT / "book" / "references.bib").read_text()
    keys = set(re.findall(r"@\w+\{([^,\s]+),", bib))
    sources = CHAPTER_PY + sorted((ROOT / "book").glob("*.md"))
    cited = {
        (p.name, k.strip())
        for p in sources
        for group in re.findall(r"\{cite:[a-z]+\}`([^`]+)`", p.read_text())
        for k in group.split(",")
    }
    missing = sorted(f"{name}: {key}" for name, key in cited if key not in keys)
    assert not missing, f"citations missing from book/references.bib: {missing}"


def test_readme_shows_the_two_commands_first():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "make test" in first_block and "make book" in first_block


def test_every_chapter_installs_lmlib_from_the_one_release():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "install_cell.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_install_cell_pins_the_release_tag_of_the_configured_repository():
    sys_path = str(ROOT / "tools")
    import sys

    sys.path.insert(0, sys_path)
    try:
        import install_cell
    finally:
        sys.path.remove(sys_path)
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    import lmlib

    cell = install_cell.render()
    assert f'"lmlib[book] @ git+{url}@v{lmlib.__version__}"' in cell
    assert "@main" not in cell and "git+" in cell
    nb = jupytext.read(CHAPTER_PY[0])
    first_code = next(c.source for c in nb.cells if c.cell_type == "code")
    assert first_code == cell.rstrip("\n")


def profile_settings(chapter_file: str) -> dict[str, dict]:
    """The quick and full settings a chapter passes to ``setup_chapter``."""
    tree = ast.parse((ROOT / "chapters" / chapter_file).read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", "") == "setup_chapter"
        ):
            return {
                kw.arg: {k.arg: ast.literal_eval(k.value) for k in kw.value.keywords}
                for kw in node.keywords
                if kw.arg in ("quick", "full")
            }
    raise AssertionError(f"{chapter_file} does not call setup_chapter")


def test_chapter_07_translates_exactly_chapter_06s_data_and_retrains_its_gru():
    ch06 = profile_settings("06_seq2seq_attention.py")
    ch07 = profile_settings("07_transformer.py")
    data = ["dataset", "max_len", "closed_vocab", "min_freq", "n_valid", "n_test"]
    data += ["batch_size", "buckets"]
    gru = {"embed_dim": "gru_embed_dim", "units": "gru_units"}
    gru |= {"learning_rate": "gru_learning_rate", "train_steps": "gru_steps"}
    for profile in ("quick", "full"):
        for key in data:
            assert ch07[profile][key] == ch06[profile][key], (profile, key)
        for key06, key07 in gru.items():
            assert ch07[profile][key07] == ch06[profile][key06], (profile, key07)
