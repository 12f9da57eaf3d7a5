"""Chapter set-up and the quick/full budgets (hand-written infrastructure, not exported
from a chapter).

Every chapter starts with one call::

    from lmlib.profiles import setup_chapter
    cfg = setup_chapter(
        "05", quick=dict(epochs=3, units=256), full=dict(epochs=30, units=1024)
    )

which seeds Python, NumPy (and Keras/TensorFlow when ``keras=True``), makes TensorFlow's
kernels deterministic, quiets TensorFlow's C++ logging, picks the settings of the active
profile and shows them as a table. The profile is chosen with the environment variable
``LMLIB_PROFILE`` (``quick``, the default, for a laptop CPU; ``full`` for a GPU and the
published book). Both profiles run the same code: only the values differ, so ``quick``
and ``full`` must name the same settings.
"""

from __future__ import annotations

import contextlib
import os
import random
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

PROFILES = ("quick", "full")
PROFILE_ENV = "LMLIB_PROFILE"
DEFAULT_SEED = 42


def active_profile() -> str:
    """Return the active profile's name from ``LMLIB_PROFILE`` (default ``quick``).

    Raises ``ValueError`` naming the variable and the valid values when it holds
    anything else.
    """
    name = os.environ.get(PROFILE_ENV, "quick").strip().lower() or "quick"
    if name not in PROFILES:
        raise ValueError(
            f"{PROFILE_ENV}={os.environ[PROFILE_ENV]!r} is not a profile; "
            f"use one of {', '.join(PROFILES)} "
            f"(for example `export {PROFILE_ENV}=quick`)."
        )
    return name


class Profile(Mapping[str, Any]):
    """The settings a chapter runs with: a read-only mapping that also allows
    ``cfg.epochs``."""

    def __init__(
        self,
        chapter: str,
        name: str,
        settings: Mapping[str, Any],
        other: Mapping[str, Any],
    ):
        self.chapter = chapter
        self.name = name
        self._settings = dict(settings)
        self._other = dict(other)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["_settings"][key]
        except KeyError:
            raise AttributeError(
                f"profile {self.name!r} of chapter {self.chapter} "
                f"has no setting {key!r}"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._settings[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._settings)

    def __len__(self) -> int:
        return len(self._settings)

    def __repr__(self) -> str:
        return (
            f"Profile(chapter={self.chapter!r}, name={self.name!r}, "
            f"settings={self._settings!r})"
        )

    def table(self) -> str:
        """The settings as a Markdown table, with the active profile's column first."""
        other = "full" if self.name == "quick" else "quick"
        rows = [f"| setting | **{self.name}** (active) | {other} |", "|---|---|---|"]
        for key, value in self._settings.items():
            rows.append(f"| `{key}` | **{_fmt(value)}** | {_fmt(self._other[key])} |")
        return "\n".join(rows)

    def _repr_markdown_(self) -> str:
        return (
            f"Profile **{self.name}** (`{PROFILE_ENV}`), chapter {self.chapter}:\n\n"
            + self.table()
        )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


@contextlib.contextmanager
def _quiet_stderr_fd() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for a while (C++ libraries write there)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Import TensorFlow without its C++ start-up log (oneDNN, CUDA probe, absl lines).

    TensorFlow 2.21 prints those lines before ``TF_CPP_MIN_LOG_LEVEL`` takes effect, and
    a notebook shows them in its output; the first device query is made here too, inside
    the same silence. Python warnings and errors are unaffected. Returns the
    ``tensorflow`` module.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    with _quiet_stderr_fd():
        import tensorflow as tf

        tf.config.list_physical_devices()
    tf.get_logger().setLevel("ERROR")
    return tf


def seed_everything(seed: int = DEFAULT_SEED, keras: bool = False) -> None:
    """Seed Python's and NumPy's generators; with ``keras=True`` also Keras/TensorFlow.

    With ``keras=True`` TensorFlow's kernels are made deterministic (CPU runs repeat bit
    for bit, at some cost in speed on a GPU) and TensorFloat-32 is turned off, so
    float32 means float32 on a GPU too and parity checks hold with the same tolerances.
    """
    os.environ.setdefault(
        "TF_CPP_MIN_LOG_LEVEL", "2"
    )  # must be set before TensorFlow is first imported
    random.seed(seed)
    np.random.seed(seed)
    if keras:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        tf = import_tensorflow()
        import keras as _keras

        _keras.utils.set_random_seed(seed)
        tf.config.experimental.enable_op_determinism()
        # TensorFloat-32 rounds float32 matmul inputs to 10 mantissa bits on Ampere and
        # later GPUs: parity checks against Keras would mean something else there than
        # on a CPU.
        tf.config.experimental.enable_tensor_float_32_execution(False)
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with TensorFlow
            pass


def setup_chapter(
    chapter: str,
    *,
    quick: Mapping[str, Any],
    full: Mapping[str, Any],
    seed: int = DEFAULT_SEED,
    keras: bool = False,
    show: bool = True,
) -> Profile:
    """Seed everything, choose the active profile's settings, show and return them.

    The settings come back as a :class:`Profile`.
    ``quick`` and ``full`` must have the same keys (the same code runs under both). With
    ``show=True`` the settings are displayed as a table (rich output in a notebook,
    plain text elsewhere).
    """
    if set(quick) != set(full):
        missing = sorted(set(quick) ^ set(full))
        raise ValueError(
            f"chapter {chapter}: quick and full profiles must name the same settings; "
            f"differ in {missing}"
        )
    name = active_profile()
    chosen, other = (quick, full) if name == "quick" else (full, quick)
    seed_everything(seed, keras=keras)
    profile = Profile(chapter, name, chosen, other)
    if show:
        _show(profile)
    return profile


def _show(profile: Profile) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(profile)
            return
    except ImportError:  # pragma: no cover - IPython absent outside notebooks
        pass
    print(f"Profile {profile.name} ({PROFILE_ENV}), chapter {profile.chapter}")
    print(profile.table())
