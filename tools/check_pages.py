#!/usr/bin/env python
"""Open every built page in headless Chromium, offline, and check it like a reader.

    python tools/check_pages.py                     # _build/html, screenshots too
    python tools/check_pages.py DIR --no-screenshots

Every request that does not stay on ``file://`` (or ``data:``) is blocked, so a page
that needs the network fails here. A page fails, naming the page and the element, when

- the browser logs a console error, a script throws, or a request fails or is blocked;
- math is left untypeset: raw ``$$``, ``\\[`` or ``\\(`` in the visible text, or a math
  element (``.math``) without a typeset ``mjx-container`` in it;
- an image does not load (natural width 0), or a ``<figure>`` has no caption;
- an internal link points to a missing page or a missing ``#anchor``;
- a glue reference is left unresolved, or a cell's output shows a traceback or a
  warning line (``Warning:``, ``DeprecationWarning``).

Screenshots of the top of each page go to ``_build/screenshots/`` for a person to look
at. Chromium is Debian's ``chromium`` (``CHROMIUM`` overrides the path), driven by
Playwright; no browser is downloaded. Exit status 1 when any page fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

ROOT = Path(__file__).resolve().parents[1]
SKIP_DIRS = {"_static", "_sources", "_images", "reports", "_downloads"}
SKIP_PAGES = {"genindex.html", "search.html", "py-modindex.html"}
VIEWPORT = {"width": 1280, "height": 900}
RAW_MATH = re.compile(r"\$\$|\\\[|\\\(")
WARNING_LINE = re.compile(r"^.*\b(\w*Warning:|DeprecationWarning).*$", re.M)
TRACEBACK = "Traceback (most recent call last)"
UNRESOLVED_GLUE = re.compile(r"\{glue(:[a-z]+)?\}")

# Runs in the page once it has loaded (and MathJax, if present, has finished).
INSPECT_JS = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  await Promise.all(Array.from(document.images).map(img => img.complete ? null :
    new Promise(done => { img.onload = img.onerror = done; })));
  const describe = el => {
    const id = el.id ? '#' + el.id : '';
    const cls = el.className && typeof el.className === 'string'
      ? '.' + el.className.trim().split(/\s+/).join('.') : '';
    return el.tagName.toLowerCase() + id + cls;
  };
  const main = document.querySelector('main, article, [role=main]') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .math')
    .forEach(el => el.remove());
  return {
    text: clone.innerText,
    ids: Array.from(document.querySelectorAll('[id], a[name]'))
      .map(el => el.id || el.getAttribute('name')),
    links: Array.from(document.querySelectorAll('a[href]'))
      .map(a => ({href: a.getAttribute('href'), where: describe(a)})),
    untypeset: Array.from(document.querySelectorAll('.math'))
      .filter(el => !el.querySelector('mjx-container'))
      .map(el => describe(el) + ' ' + el.textContent.slice(0, 60)),
    brokenImages: Array.from(document.images)
      .filter(img => img.naturalWidth === 0).map(img => img.getAttribute('src')),
    uncaptioned: Array.from(document.querySelectorAll('figure'))
      .filter(f => !f.querySelector('figcaption') ||
                   !f.querySelector('figcaption').innerText.trim())
      .map(describe),
    outputs: Array.from(document.querySelectorAll('.cell_output, .output'))
      .map(el => el.innerText),
  };
}
"""


@dataclass
class Page:
    path: Path
    problems: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    links: list[dict] = field(default_factory=list)


def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    found = found or shutil.which("chromium-browser")
    if not found:
        raise SystemExit(
            "check_pages needs Chromium: `apt-get install -y chromium` "
            "(or set CHROMIUM to the browser's executable)"
        )
    return found


def offline_browser(pw, viewport: dict | None = None):
    """(browser, context): Debian's Chromium, every request off ``file://`` blocked."""
    browser = pw.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
    context = browser.new_context(**({"viewport": viewport} if viewport else {}))
    context.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("file://", "data:"))
            else route.abort("blockedbyclient")
        ),
    )
    return browser, context


def html_pages(root: Path) -> list[Path]:
    pages = []
    for path in sorted(root.rglob("*.html")):
        rel = path.relative_to(root)
        if rel.parts[0] in SKIP_DIRS or rel.name in SKIP_PAGES:
            continue
        pages.append(path)
    return pages


REFRESH = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.I)


def inspect(context, page: Page, screenshots: Path | None, root: Path) -> None:
    redirect = REFRESH.search(page.path.read_text(errors="replace"))
    if redirect:  # a redirect page (index.html): only its target must exist
        page.links = [{"href": redirect.group(1), "where": "meta refresh"}]
        return
    tab = context.new_page()
    tab.on(
        "console",
        lambda m: (
            m.type == "error" and page.problems.append(f"console error: {m.text}")
        ),
    )
    tab.on("pageerror", lambda e: page.problems.append(f"script error: {e}"))
    tab.on(
        "requestfailed",
        lambda r: page.problems.append(
            f"request failed: {r.url} ({r.failure or 'blocked'})"
        ),
    )
    tab.goto(page.path.as_uri(), wait_until="load")
    found = tab.evaluate(INSPECT_JS)
    if screenshots is not None:
        shot = screenshots / (
            page.path.relative_to(root)
            .with_suffix(".png")
            .as_posix()
            .replace("/", "__")
        )
        tab.screenshot(path=str(shot))
    tab.close()
    page.ids = set(found["ids"])
    page.links = found["links"]
    for match in RAW_MATH.finditer(found["text"]):
        context_text = found["text"][max(0, match.start() - 30) : match.end() + 30]
        page.problems.append(f"raw math source in the text: {context_text!r}")
    page.problems += [f"math not typeset: {m}" for m in found["untypeset"]]
    page.problems += [f"image did not load: {src}" for src in found["brokenImages"]]
    page.problems += [f"figure without a caption: {f}" for f in found["uncaptioned"]]
    for match in UNRESOLVED_GLUE.finditer(found["text"]):
        page.problems.append(f"unresolved glue reference: {match.group(0)}")
    for i, text in enumerate(found["outputs"]):
        if TRACEBACK in text:
            page.problems.append(f"cell output {i} shows a traceback")
        for line in WARNING_LINE.finditer(text):
            page.problems.append(f"cell output {i} shows a warning: {line.group(0)}")


def check_links(pages: dict[Path, Page], root: Path) -> None:
    for page in pages.values():
        for link in page.links:
            href = link["href"]
            parsed = urlparse(href)
            if parsed.scheme in ("http", "https", "mailto", "data", "javascript"):
                continue
            target_part, anchor = urldefrag(href)
            if target_part:
                target = (page.path.parent / unquote(target_part)).resolve()
            else:
                target = page.path
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                page.problems.append(
                    f"link to a missing file: {href} ({link['where']})"
                )
                continue
            if not anchor or target.suffix != ".html":
                continue
            ids = pages[target].ids if target in pages else _ids_of(target)
            if unquote(anchor) not in ids:
                page.problems.append(
                    f"link to a missing anchor: {href} ({link['where']})"
                )


def _ids_of(path: Path) -> set[str]:
    text = path.read_text(errors="replace")
    return set(re.findall(r'\b(?:id|name)="([^"]+)"', text))


def check(root: Path, screenshots: Path | None) -> dict[Path, Page]:
    from playwright.sync_api import sync_playwright

    pages = {p.resolve(): Page(p.resolve()) for p in html_pages(root)}
    if not pages:
        raise SystemExit(f"no HTML pages under {root}: run `make book` first")
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser, context = offline_browser(pw, VIEWPORT)
        for page in pages.values():
            inspect(context, page, screenshots, root.resolve())
        browser.close()
    check_links(pages, root.resolve())
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(ROOT / "_build" / "html"))
    parser.add_argument("--screenshots", default=str(ROOT / "_build" / "screenshots"))
    parser.add_argument("--no-screenshots", action="store_true")
    args = parser.parse_args(argv)
    root = Path(args.root)
    shots = None if args.no_screenshots else Path(args.screenshots)
    pages = check(root, shots)
    failed = {p: pg for p, pg in pages.items() if pg.problems}
    for path, page in failed.items():
        print(f"{path.relative_to(root.resolve())}:")
        for problem in dict.fromkeys(page.problems):
            print(f"  - {problem}")
    where = f"; screenshots in {shots}" if shots else ""
    print(f"check_pages: {len(pages)} pages, {len(failed)} with problems{where}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
