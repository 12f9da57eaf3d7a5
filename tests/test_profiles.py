"""Chapter set-up: profile selection, the settings table and seeding."""

import random

import numpy as np
import pytest

from lmlib.profiles import active_profile, setup_chapter

QUICK = dict(epochs=2, units=64, lr=1e-3)
FULL = dict(epochs=20, units=1024, lr=3e-4)


def test_quick_is_the_default(monkeypatch):
    monkeypatch.delenv("LMLIB_PROFILE", raising=False)
    cfg = setup_chapter("99", quick=QUICK, full=FULL, show=False)
    assert cfg.name == "quick" and cfg.epochs == 2 and dict(cfg) == QUICK


def test_full_profile_is_selected_by_the_variable(monkeypatch):
    monkeypatch.setenv("LMLIB_PROFILE", "FULL")
    cfg = setup_chapter("99", quick=QUICK, full=FULL, show=False)
    assert cfg.name == "full" and cfg["units"] == 1024


def test_unknown_profile_names_the_variable_and_choices(monkeypatch):
    monkeypatch.setenv("LMLIB_PROFILE", "medium")
    with pytest.raises(ValueError, match=r"LMLIB_PROFILE='medium'.*quick, full"):
        active_profile()


def test_profiles_must_name_the_same_settings():
    with pytest.raises(ValueError, match=r"\['units'\]"):
        setup_chapter(
            "99", quick=dict(epochs=1), full=dict(epochs=2, units=3), show=False
        )


def test_unknown_setting_is_a_clear_attribute_error(monkeypatch):
    monkeypatch.delenv("LMLIB_PROFILE", raising=False)
    cfg = setup_chapter("99", quick=QUICK, full=FULL, show=False)
    with pytest.raises(AttributeError, match="has no setting 'batch'"):
        _ = cfg.batch


def test_table_shows_both_profiles_with_the_active_one_first(monkeypatch, capsys):
    monkeypatch.delenv("LMLIB_PROFILE", raising=False)
    setup_chapter("99", quick=QUICK, full=FULL)
    out = capsys.readouterr().out
    assert "| setting | **quick** (active) | full |" in out
    assert (
        "| `units` | **64** | 1024 |" in out and "| `lr` | **0.001** | 0.0003 |" in out
    )


def draws():
    return random.random(), np.random.rand(3).tolist()


def test_setup_makes_python_and_numpy_repeatable():
    setup_chapter("99", quick=QUICK, full=FULL, seed=7, show=False)
    first = draws()
    setup_chapter("99", quick=QUICK, full=FULL, seed=7, show=False)
    assert draws() == first
    setup_chapter("99", quick=QUICK, full=FULL, seed=8, show=False)
    assert draws() != first


def test_setup_makes_keras_training_repeatable():
    keras = pytest.importorskip("keras")

    def train_once() -> np.ndarray:
        setup_chapter("99", quick=QUICK, full=FULL, seed=3, keras=True, show=False)
        x = np.random.rand(64, 8).astype("float32")
        y = (x.sum(axis=1, keepdims=True) > 4).astype("float32")
        model = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dropout(0.2),
                keras.layers.Dense(1),
            ]
        )
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=2, batch_size=16, verbose=0)
        return model.predict(x[:4], verbose=0)

    np.testing.assert_array_equal(train_once(), train_once())


def test_import_tensorflow_restores_stderr(capfd):
    pytest.importorskip("tensorflow")
    from lmlib.profiles import import_tensorflow

    tf = import_tensorflow()
    assert hasattr(tf, "config")
    import os

    os.write(2, b"still here\n")
    assert "still here" in capfd.readouterr().err
