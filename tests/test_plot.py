"""The book's figure style and the training-history plot."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lmlib.plot import STYLE, plot_history, use_style  # noqa: E402


def test_use_style_sets_the_book_style():
    use_style()
    assert matplotlib.rcParams["axes.grid"] is True
    assert matplotlib.rcParams["figure.dpi"] == STYLE["figure.dpi"]


def test_history_plot_draws_train_solid_and_validation_dashed():
    history = {
        "loss": [2.0, 1.5, 1.2],
        "val_loss": [2.1, 1.7, 1.6],
        "accuracy": [0.3, 0.5, 0.6],
    }
    ax = plot_history(history, metrics=("loss", "accuracy"))
    styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    assert styles == {"train loss": "-", "validation loss": "--", "train accuracy": "-"}
    assert list(ax.get_lines()[0].get_xdata()) == [1, 2, 3]
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss, accuracy"
    plt.close(ax.figure)


def test_history_plot_accepts_a_keras_history_like_object():
    class History:
        history = {"loss": [1.0, 0.5]}

    ax = plot_history(History(), title="t")
    assert ax.get_title() == "t" and len(ax.get_lines()) == 1
    plt.close(ax.figure)


def test_missing_metric_names_what_the_history_has():
    with pytest.raises(KeyError, match=r"no \['bleu'\].*\['loss'\]"):
        plot_history({"loss": [1.0]}, metrics=("bleu",))
