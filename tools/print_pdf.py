#!/usr/bin/env python
"""Print the single-page HTML book to one PDF with headless Chromium, and check it.

    python tools/print_pdf.py _build/singlehtml/index.html _build/pdf/book.pdf

The page is opened offline (every request outside ``file://`` is blocked), MathJax
finishes typesetting, the theme's navigation is hidden and Chromium prints A4 pages
with page numbers. The result is then read back with pypdf: it fails unless it has
pages, contains every chapter's title (from ``_toc.yml``) and no raw ``$$``; before
printing, every math element of the page must have been typeset.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_pages import offline_browser  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The book theme's sidebars, header and buttons are for screens, not paper.
PRINT_CSS = """
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article,
.prev-next-area, .bd-footer, .bd-footer-article, .bd-footer-content, .skip-link,
.toggle-secondary-sidebar, #pst-back-to-top { display: none !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
.bd-page-width { max-width: 100% !important; }
div.cell_output img { max-width: 100% !important; }
pre { white-space: pre-wrap !important; }
"""
FOOTER = (
    '<div style="font-size:8px; width:100%; text-align:center; color:#555;">'
    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
)


def chapter_titles() -> list[str]:
    """The title (first ``# `` heading) of every chapter listed in ``_toc.yml``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    titles = []
    for part in toc.get("parts", []):
        for entry in part.get("chapters", []):
            if entry["file"].startswith("chapters/"):
                source = (ROOT / entry["file"]).with_suffix(".py").read_text()
                titles.append(re.search(r"^# # (.+)$", source, re.M).group(1).strip())
    return titles


def print_pdf(html: Path, pdf: Path) -> None:
    from playwright.sync_api import sync_playwright

    pdf.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, context = offline_browser(pw)
        page = context.new_page()
        page.goto(html.resolve().as_uri(), wait_until="load", timeout=300_000)
        untypeset = page.evaluate(
            "async () => { if (window.MathJax && MathJax.startup)"
            " await MathJax.startup.promise;"
            " return Array.from(document.querySelectorAll('.math'))"
            ".filter(el => !el.querySelector('mjx-container')).length; }"
        )
        if untypeset:
            raise SystemExit(f"{html}: {untypeset} math elements were not typeset")
        page.add_style_tag(content=PRINT_CSS)
        page.emulate_media(media="print")
        page.pdf(
            path=str(pdf),
            format="A4",
            print_background=True,
            margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"},
            display_header_footer=True,
            header_template="<span></span>",
            footer_template=FOOTER,
        )
        browser.close()


def check_pdf(
    pdf: Path, titles: list[str], min_pages_per_title: int = 2
) -> tuple[int, str]:
    """(page count, full text); raises SystemExit naming what is wrong."""
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    flat = re.sub(r"\s+", " ", text)
    problems = [f"chapter title missing: {t!r}" for t in titles if t not in flat]
    if "$$" in text:  # (\( and \[ appear in code; the page's math is checked before)
        problems.append("raw $$ in the text (math not typeset)")
    if len(reader.pages) < min_pages_per_title * len(titles):
        problems.append(f"only {len(reader.pages)} pages for {len(titles)} chapters")
    if problems:
        raise SystemExit(f"{pdf}: " + "; ".join(problems))
    return len(reader.pages), text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("pdf", type=Path)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print_pdf(args.html, args.pdf)
    pages, _ = check_pdf(args.pdf, chapter_titles())
    size = args.pdf.stat().st_size / 1e6
    seconds = time.perf_counter() - start
    print(f"print_pdf: {args.pdf} ({pages} pages, {size:.1f} MB) in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
