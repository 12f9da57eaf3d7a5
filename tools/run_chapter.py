#!/usr/bin/env python
"""Execute one chapter outside the book build and show what it glued, with timings.

    python tools/run_chapter.py 05                 # chapters/05_*.ipynb, active profile
    LMLIB_PROFILE=full python tools/run_chapter.py 05

The executed notebook is written to ``_build/run/<chapter>.ipynb`` (the stored notebook
stays without outputs). Printed: the total time, the slowest cells, every glued value
and any output that looks like a warning. Exits 1 when a cell fails, with the traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
GLUE_MIME = "application/papermill.record/text/plain"
WARNING_WORDS = ("Warning:", "DeprecationWarning", "Traceback")


def cell_seconds(cell) -> float:
    timing = cell.get("metadata", {}).get("execution", {})
    try:
        start = datetime.fromisoformat(timing["iopub.execute_input"].rstrip("Z"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].rstrip("Z"))
    except KeyError:
        return 0.0
    return (end - start).total_seconds()


def glued(nb) -> dict[str, str]:
    values = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            key = out.get("metadata", {}).get("scrapbook", {}).get("name")
            if key is not None:
                data = out.get("data", {})
                values[key] = data.get(
                    GLUE_MIME, data.get("text/plain", "<figure or rich>")
                )
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", help="chapter number (05) or path")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    path = Path(args.chapter)
    if not path.exists():
        matches = sorted((ROOT / "chapters").glob(f"{args.chapter}_*.ipynb"))
        if len(matches) != 1:
            parser.error(f"no single chapters/{args.chapter}_*.ipynb: {matches}")
        path = matches[0]
    nb = nbformat.read(path, as_version=4)
    out = ROOT / "_build" / "run" / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(
        nb,
        timeout=args.timeout,
        kernel_name="python3",
        record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    failed = None
    try:
        client.execute()
    except CellExecutionError as e:
        failed = e
    total = time.perf_counter() - start
    nbformat.write(nb, out)
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    slow = sorted(code, key=lambda ic: -cell_seconds(ic[1]))[:6]
    print(f"{path.name}: {total:.0f} s; written to {out.relative_to(ROOT)}")
    print(
        "slowest cells: " + ", ".join(f"#{i} {cell_seconds(c):.0f}s" for i, c in slow)
    )
    for key, value in glued(nb).items():
        print(f"  glue {key} = {value}")
    for i, cell in code:
        for o in cell.get("outputs", []):
            text = o.get("text", "") or o.get("data", {}).get("text/plain", "")
            if any(w in text for w in WARNING_WORDS):
                print(f"  cell #{i} output has a warning: {text.strip()[:300]}")
    if failed is not None:
        print(failed, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
