"""One figure style for the whole book (hand-written infrastructure, not exported from a
chapter)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import matplotlib.pyplot as plt

STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "savefig.dpi": 150,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": "medium",
    "axes.labelsize": "medium",
    "legend.frameon": False,
    "font.size": 10,
    "lines.linewidth": 1.6,
}


def use_style() -> None:
    """Apply the book's matplotlib style (once, in a chapter's setup cell)."""
    mpl.rcParams.update(STYLE)


def plot_history(
    history: Any,
    metrics: Sequence[str] = ("loss",),
    *,
    ax: plt.Axes | None = None,
    xlabel: str = "epoch",
    ylabel: str | None = None,
    title: str | None = None,
) -> plt.Axes:
    """Plot training curves from a Keras ``History`` (or a dict of lists): solid for
    training, dashed for validation (``val_<metric>``), one colour per metric."""
    logs: Mapping[str, Sequence[float]] = getattr(history, "history", history)
    missing = [m for m in metrics if m not in logs]
    if missing:
        raise KeyError(f"history has no {missing}; it has {sorted(logs)}")
    if ax is None:
        _, ax = plt.subplots()
    for i, metric in enumerate(metrics):
        colour = f"C{i}"
        epochs = range(1, len(logs[metric]) + 1)
        ax.plot(epochs, logs[metric], color=colour, label=f"train {metric}")
        if f"val_{metric}" in logs:
            ax.plot(
                epochs,
                logs[f"val_{metric}"],
                color=colour,
                linestyle="--",
                label=f"validation {metric}",
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or ", ".join(metrics))
    if title:
        ax.set_title(title)
    ax.legend()
    return ax
