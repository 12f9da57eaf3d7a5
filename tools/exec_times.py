#!/usr/bin/env python
"""Print each page's execution time and status from the last `make book` (read from
Sphinx's environment).

With ``--max-total SECONDS`` it exits 1 when the executed pages together took longer
(CI's time budget).
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

ENV = Path("_build/.doctrees/environment.pickle")


def exec_data(env_path: Path = ENV) -> dict[str, dict]:
    """docname -> myst-nb ExecutionResult (mtime, runtime, method, succeeded, error)."""
    if not env_path.exists():
        raise SystemExit(f"{env_path} not found: run `make book` first")
    with env_path.open("rb") as f:
        env = pickle.load(f)
    metadata = getattr(env, "nb_metadata", {})
    return {
        doc: data["exec_data"]
        for doc, data in sorted(metadata.items())
        if data.get("exec_data")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--max-total",
        type=float,
        default=None,
        help="fail if the runtimes add up to more",
    )
    args = parser.parse_args(argv)
    data = exec_data()
    print(f"{'page':<40} {'method':<7} {'status':<7} {'seconds':>8}")
    total = 0.0
    for doc, result in data.items():
        runtime = result.get("runtime") or 0.0
        total += runtime
        status = "ok" if result.get("succeeded") else f"FAILED ({result.get('error')})"
        print(f"{doc:<40} {result.get('method', '?'):<7} {status:<7} {runtime:8.1f}")
    print(f"{'total':<40} {'':<7} {'':<7} {total:8.1f}")
    if args.max_total is not None and total > args.max_total:
        print(
            f"execution took {total:.0f} s, over the budget of {args.max_total:.0f} s",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
