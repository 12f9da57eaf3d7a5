#!/usr/bin/env python
"""Choose the batch and learning rate of chapter 08's race, for the GPT and the GRU.

    python tools/tune_race.py   # 12 s a trial, the quick profile's models
    python tools/tune_race.py --seconds 30

Both models get the same search, 11 trials each: every (batch, learning rate) pair of a
3 x 3 grid for the default shape, then two other shapes at the best pair. Every trial
trains for the same number of seconds (its steps set from the measured time of a step)
with the race's recipe (``lmlib.gpt.train_on_windows``) on the first 90% of the training
split, and is scored on random windows of the last 10% of the training split. The
validation split is never read. The choice: the lowest held-out loss, or among trials
within 0.01 nats of it the lowest learning rate (repeated trials differ by more than
that). The grids were moved once, for both models alike, after a first search with
batches 4x larger and learning rates 4x smaller found both optima at a corner.

The best trial of each model is printed as the settings to put in chapter 08's profile.
The steps depend on this machine's speed, so a rerun elsewhere may choose differently;
the chapter's numbers are what the chosen settings give.
"""

from __future__ import annotations

import argparse
import time

from lmlib.profiles import seed_everything

MODELS = {  # jit_compile, shapes (the first is the default), batches, learning rates
    "GPT": (
        True,
        (
            dict(d_model=128, num_heads=4, num_layers=2),
            dict(d_model=64, num_heads=2, num_layers=2),
            dict(d_model=128, num_heads=4, num_layers=4),
        ),
        (4, 8, 16),
        (4e-3, 8e-3, 1.6e-2),
    ),
    "GRU": (
        False,
        (
            dict(embed_dim=64, units=256),
            dict(embed_dim=64, units=128),
            dict(embed_dim=64, units=512),
        ),
        (8, 16, 32),
        (2e-2, 4e-2, 8e-2),
    ),
}
BLOCK, HELD_OUT_WINDOWS = 100, 128
NOISE = 0.01  # nats: trials within this of the best count as tied


def choose(rows: list[dict]) -> dict:
    """The trial with the lowest held-out loss; among trials within ``NOISE`` of it,
    the one with the lowest learning rate, the least likely to diverge on the other
    batches the race will draw."""
    lowest = min(r["held_out"] for r in rows)
    tied = [r for r in rows if r["held_out"] <= lowest + NOISE]
    return min(tied, key=lambda r: (r["lr"], r["held_out"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=12.0, help="training seconds a trial"
    )
    args = parser.parse_args()

    seed_everything(0, keras=True)
    import numpy as np

    from lmlib.data import fetch
    from lmlib.gpt import (
        build_gpt,
        gru_lm,
        make_adamw,
        make_lm_steps,
        random_windows,
        train_on_windows,
        windows_scorer,
    )

    text = fetch("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
    split_at = int(0.9 * len(text))  # chapter 08's split; read only the training part
    chars = sorted(set(text[:split_at]))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text[:split_at]], np.int32)
    fit_ids, held_ids = ids[: int(0.9 * len(ids))], ids[int(0.9 * len(ids)) :]
    held_x, held_y = random_windows(
        held_ids, BLOCK, HELD_OUT_WINDOWS, np.random.default_rng(4)
    )

    def build(name: str, shape: dict):
        if name == "GPT":
            return build_gpt(seed=0, vocab_size=len(chars), block_size=BLOCK, **shape)
        seed_everything(0, keras=True)
        return gru_lm(len(chars), **shape)

    def step_seconds(name: str, shape: dict, batch: int) -> float:
        """Mean seconds of a training step at ``batch``, once compiled and warm."""
        model = build(name, shape)
        optimizer = make_adamw(model, 1e-3)
        train, _ = make_lm_steps(model, optimizer, batch, BLOCK, MODELS[name][0])
        rng = np.random.default_rng(0)
        for _ in range(3):  # compile and warm up
            float(train(*random_windows(fit_ids, BLOCK, batch, rng)))
        times = []
        for _ in range(20):
            started = time.perf_counter()
            float(train(*random_windows(fit_ids, BLOCK, batch, rng)))
            times.append(time.perf_counter() - started)
        return float(np.mean(times))

    def trial(name: str, shape: dict, batch: int, steps: int, lr: float) -> dict:
        model = build(name, shape)
        settings = dict(batch=batch, steps=steps, lr=lr)
        log = train_on_windows(
            model, fit_ids, BLOCK, settings, dict, 1, MODELS[name][0], verbose=False
        )
        row = dict(model=name, shape=shape, **settings, seconds=log["seconds"][-1])
        row["held_out"] = windows_scorer(model)(held_x, held_y)
        print(
            f"{name} {shape} batch {batch:3d} steps {steps:4d} lr {lr:.1e}: "
            f"{row['seconds']:5.1f} s, held-out loss {row['held_out']:.4f}",
            flush=True,
        )
        return row

    for name, (_, shapes, batches, rates) in MODELS.items():
        rows = []
        for batch in batches:  # stage 1: the default shape, every batch and rate
            steps = max(10, round(args.seconds / step_seconds(name, shapes[0], batch)))
            rows += [trial(name, shapes[0], batch, steps, lr) for lr in rates]
        best = min(rows, key=lambda r: r["held_out"])
        for shape in shapes[1:]:  # stage 2: the other shapes at the best batch and rate
            steps = round(args.seconds / step_seconds(name, shape, best["batch"]))
            rows.append(trial(name, shape, best["batch"], max(10, steps), best["lr"]))
        best = choose(rows)
        print(
            f"best {name} ({len(rows)} trials): race_{name.lower()}={best['shape']}, "
            f"race_{name.lower()}_train=dict(batch={best['batch']}, "
            f"steps={best['steps']}, lr={best['lr']:g})",
            f"# held-out {best['held_out']:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
