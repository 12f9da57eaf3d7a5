"""The exporter (tools/export_lmlib.py) and the no-drift guarantee between chapters and
lmlib/."""

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location(
    "export_lmlib", ROOT / "tools" / "export_lmlib.py"
)
export_lmlib = importlib.util.module_from_spec(spec)
sys.modules["export_lmlib"] = export_lmlib
spec.loader.exec_module(export_lmlib)

HEADER = textwrap.dedent("""\
    # ---
    # jupyter:
    #   jupytext:
    #     formats: ipynb,py:percent
    #     text_representation:
    #       extension: .py
    #       format_name: percent
    # ---
    """)


def write_chapter(folder: Path, name: str, title: str, code: str) -> Path:
    path = folder / name
    path.write_text(
        HEADER
        + f"\n# %% [markdown]\n# # {title}\n\n"
        + f"# %%\n# lmlib: toy\n{code}\n\n# %%\nprint(1)\n"
    )
    return path


@pytest.fixture
def tree(tmp_path):
    chapters, lmlib = tmp_path / "chapters", tmp_path / "lmlib"
    chapters.mkdir()
    lmlib.mkdir()
    return chapters, lmlib


def test_lmlib_is_in_sync_with_the_chapters():
    problems = export_lmlib.check()
    assert not problems, "\n\n".join(problems)


def test_export_appends_provenance_to_every_docstring(tree):
    chapters, lmlib = tree
    write_chapter(
        chapters,
        "07_toy.py",
        "Toy things",
        textwrap.dedent('''\
        import math


        def one_line(x: float) -> float:
            """Square root."""
            return math.sqrt(x)


        class Many:
            """First line.

            More.
            """
        '''),
    )
    text = export_lmlib.render_all(export_lmlib.collect(chapters), lmlib)["toy.py"]
    assert text.startswith(export_lmlib.BANNER)
    assert '"""Square root.\n\n    Defined in chapter 07 (Toy things).\n    """' in text
    assert '    More.\n\n    Defined in chapter 07 (Toy things).\n    """' in text
    assert "\n# lmlib: toy\n" not in text and "print(1)" not in text
    namespace: dict = {}
    exec(
        compile(text, "toy.py", "exec"), namespace
    )  # the generated module is valid Python
    assert namespace["one_line"](4.0) == 2.0


def test_docstrings_may_hold_non_ascii_characters(tree):
    chapters, lmlib = tree
    code = (
        'def noise(p: float) -> float:\n    """P(w) ∝ c(w)^0.75 — σ."""\n    return p'
    )
    write_chapter(chapters, "03_v.py", "Vectors", code)
    text = export_lmlib.render_all(export_lmlib.collect(chapters), lmlib)["toy.py"]
    assert (
        '"""P(w) ∝ c(w)^0.75 — σ.\n\n    Defined in chapter 03 (Vectors).\n    """'
        in text
    )


def test_editing_an_exported_cell_without_exporting_fails_and_names_the_fix(tree):
    chapters, lmlib = tree
    chapter = write_chapter(
        chapters, "01_a.py", "A", 'def f() -> int:\n    """One."""\n    return 1'
    )
    (lmlib / "toy.py").write_text(
        export_lmlib.render_all(export_lmlib.collect(chapters), lmlib)["toy.py"]
    )
    assert export_lmlib.check(lmlib, chapters) == []
    chapter.write_text(chapter.read_text().replace("return 1", "return 2"))
    problems = export_lmlib.check(lmlib, chapters)
    assert len(problems) == 1
    assert (
        "make export" in problems[0]
        and "chapters/01_a.py" in problems[0]
        and "+    return 2" in problems[0]
    )


def test_missing_docstring_is_an_error(tree):
    chapters, lmlib = tree
    write_chapter(chapters, "01_a.py", "A", "def f():\n    return 1")
    with pytest.raises(export_lmlib.ExportError, match="'f' has no docstring"):
        export_lmlib.collect(chapters)


def test_hand_written_modules_are_never_overwritten(tree):
    chapters, lmlib = tree
    write_chapter(chapters, "01_a.py", "A", 'def f():\n    """One."""')
    (lmlib / "toy.py").write_text('"""Hand-written."""\n')
    with pytest.raises(export_lmlib.ExportError, match="hand-written lmlib/toy.py"):
        export_lmlib.render_all(export_lmlib.collect(chapters), lmlib)


def test_generated_module_without_a_source_is_reported(tree):
    chapters, lmlib = tree
    (lmlib / "gone.py").write_text(export_lmlib.BANNER + "\n")
    problems = export_lmlib.check(lmlib, chapters)
    assert len(problems) == 1 and "gone.py" in problems[0]
