"""The page checker (tools/check_pages.py) on pages made to break each of its rules."""

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_pages  # noqa: E402

MATHJAX = ROOT / "book" / "_static" / "mathjax"
needs_browser = pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="Chromium is not installed (apt-get install -y chromium); CI installs it",
)
PNG_1X1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def page(body: str, head: str = "") -> str:
    return (
        f"<!doctype html><html><head>{head}</head>"
        f"<body><main>{body}</main></body></html>"
    )


def with_mathjax(depth: int = 0) -> str:
    up = "../" * depth
    return f'<script defer src="{up}_static/mathjax/tex-mml-chtml.js"></script>'


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A small built 'book': one good page and one page per broken rule."""
    root = tmp_path_factory.mktemp("html")
    shutil.copytree(MATHJAX, root / "_static" / "mathjax")
    (root / "img.png").write_bytes(PNG_1X1)
    good = (
        '<h1 id="top">Good</h1><p>Inline <span class="math notranslate nohighlight">'
        '\\(x^2\\)</span> and</p><div class="math notranslate nohighlight">'
        "\\[\\sum_i x_i\\]</div>"
        '<figure><img src="img.png"><figcaption>A caption.</figcaption></figure>'
        '<p><a href="#top">up</a> <a href="other.html#there">other</a>'
        ' <a href="https://example.org/">outside links are not followed</a></p>'
        '<pre>$$ in code is fine</pre><div class="cell_output">all fine</div>'
    )
    pages = {
        "good.html": page(good, with_mathjax()),
        "other.html": page('<p id="there">there</p>'),
        "console.html": page("<script>console.error('boom')</script>"),
        "network.html": page('<script src="https://cdn.example.org/x.js"></script>'),
        "rawmath.html": page("<p>Energy $$E = mc^2$$ untypeset</p>"),
        "notypeset.html": page('<p><span class="math">\\(y\\)</span></p>'),
        "image.html": page('<img src="missing.png">'),
        "figure.html": page('<figure><img src="img.png"></figure>'),
        "links.html": page(
            '<a href="nowhere.html">a</a> <a href="other.html#gone">b</a>'
        ),
        "glue.html": page("<p>The loss is {glue:text} nats.</p>"),
        "traceback.html": page(
            '<div class="cell_output"><pre>Traceback (most recent call last):\n'
            "  ValueError</pre></div>"
        ),
        "warning.html": page(
            '<div class="cell_output"><pre>foo.py:3: UserWarning: careful</pre></div>'
        ),
    }
    for name, html in pages.items():
        (root / name).write_text(html)
    (root / "sub").mkdir()
    (root / "sub" / "deep.html").write_text(
        page(
            '<span class="math">\\(z\\)</span><a href="../good.html#top">up</a>',
            with_mathjax(1),
        )
    )
    return root, check_pages.check(root, screenshots=root.parent / "shots")


def problems(site, name):
    root, pages = site
    return " | ".join(pages[(root / name).resolve()].problems)


@needs_browser
def test_a_good_page_passes_offline_with_the_books_own_mathjax(site):
    assert problems(site, "good.html") == ""
    assert problems(site, "other.html") == ""
    assert problems(site, "sub/deep.html") == ""


@needs_browser
@pytest.mark.parametrize(
    "name, expected",
    [
        ("console.html", "console error: boom"),
        ("network.html", "request failed: https://cdn.example.org/x.js"),
        ("rawmath.html", "raw math source in the text"),
        ("notypeset.html", "math not typeset: span.math"),
        ("image.html", "image did not load: missing.png"),
        ("figure.html", "figure without a caption"),
        ("links.html", "link to a missing file: nowhere.html"),
        ("links.html", "link to a missing anchor: other.html#gone"),
        ("glue.html", "unresolved glue reference: {glue:text}"),
        ("traceback.html", "cell output 0 shows a traceback"),
        ("warning.html", "shows a warning: foo.py:3: UserWarning:"),
    ],
)
def test_each_broken_rule_is_reported_with_its_page_and_element(site, name, expected):
    assert expected in problems(site, name)


@needs_browser
def test_screenshots_are_saved_for_every_page(site):
    root, pages = site
    shots = sorted(p.name for p in (root.parent / "shots").glob("*.png"))
    assert len(shots) == len(pages) and "sub__deep.png" in shots


@needs_browser
def test_main_exits_non_zero_on_a_broken_page(site, capsys):
    root, _ = site
    assert check_pages.main([str(root), "--no-screenshots"]) == 1
    out = capsys.readouterr().out
    assert "console.html:" in out and "13 pages, 10 with problems" in out


@needs_browser
def test_print_pdf_prints_typeset_math_and_checks_titles(tmp_path):
    import print_pdf

    shutil.copytree(MATHJAX, tmp_path / "_static" / "mathjax")
    html = tmp_path / "index.html"
    body = "<h1>Alpha chapter</h1><p>Math: <span class='math'>\\(x^2\\)</span></p>"
    html.write_text(page(body, with_mathjax()))
    pdf = tmp_path / "book.pdf"
    print_pdf.print_pdf(html, pdf)
    pages, text = print_pdf.check_pdf(pdf, ["Alpha chapter"], min_pages_per_title=1)
    assert pages >= 1 and "Alpha chapter" in text and "\\(" not in text
    with pytest.raises(SystemExit, match="chapter title missing: 'Beta chapter'"):
        print_pdf.check_pdf(
            pdf, ["Alpha chapter", "Beta chapter"], min_pages_per_title=0
        )
