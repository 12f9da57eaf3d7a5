"""lmlib.rnn: the from-scratch cells equal Keras's layers, gradients flow, the PTB
batching helpers, and the language model's dropout and initialisation."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from lmlib.profiles import seed_everything

seed_everything(0, keras=True)

import keras  # noqa: I001 (after seeding, which imports TensorFlow quietly)
import tensorflow as tf
from keras import layers

from lmlib.rnn import (
    GRUCellScratch,
    LSTMCellScratch,
    SimpleRNNCellScratch,
    SpectralNormAtMost,
    build_rnn_lm,
    contiguous_batches,
    recurrent_stack,
    reset_rnn_states,
    stream_perplexity,
    summed_nll,
    token_stream,
    uniform_initializers,
)

CASES = {
    "simple_rnn": (layers.SimpleRNN, SimpleRNNCellScratch, {}),
    "lstm": (layers.LSTM, LSTMCellScratch, {}),
    "gru_reset_after": (layers.GRU, GRUCellScratch, {"reset_after": True}),
    "gru_reset_before": (layers.GRU, GRUCellScratch, {"reset_after": False}),
}
INPUTS = (
    np.random.default_rng(0).normal(size=(3, 5, 4)).astype(np.float32)
)  # (batch, steps, input_dim)


def paired_layers(name: str, units: int = 6, perturb: float = 0.0):
    """A Keras layer and our cell in keras.layers.RNN with the same random weights."""
    keras_class, cell_class, options = CASES[name]
    reference = keras_class(units, return_sequences=True, return_state=True, **options)
    ours = layers.RNN(
        cell_class(units, **options), return_sequences=True, return_state=True
    )
    reference(INPUTS), ours(INPUTS)
    weights = [
        w + 0.1 * np.random.default_rng(1).normal(size=w.shape)
        for w in reference.get_weights()
    ]
    reference.set_weights(weights)
    changed = [w.copy() for w in weights]
    changed[1].flat[0] += perturb  # one recurrent weight
    ours.set_weights(changed)
    return reference, ours


def max_differences(reference, ours) -> list[float]:
    """max |Keras - ours| of each output, relative to the largest Keras output."""
    to_numpy = keras.ops.convert_to_numpy
    ref_out = [to_numpy(a) for a in reference(INPUTS)]
    our_out = [to_numpy(b) for b in ours(INPUTS)]
    scale = max(float(np.abs(a).max()) for a in ref_out)
    return [
        float(np.abs(a - b).max()) / scale
        for a, b in zip(ref_out, our_out, strict=True)
    ]


@pytest.mark.parametrize("name", CASES)
def test_cell_equals_keras_layer_sequence_and_final_states(name):
    reference, ours = paired_layers(name)
    diffs = max_differences(reference, ours)  # [sequence, *final states]
    assert len(diffs) == (3 if name == "lstm" else 2)
    assert max(diffs) <= 1e-5


@pytest.mark.parametrize("name", CASES)
def test_parity_fails_when_a_weight_is_perturbed(name):
    reference, ours = paired_layers(name, perturb=0.5)
    assert max(max_differences(reference, ours)) > 1e-3


@pytest.mark.parametrize("name", CASES)
def test_final_state_only_equals_keras(name):
    keras_class, cell_class, options = CASES[name]
    reference, ours = keras_class(4, **options), layers.RNN(cell_class(4, **options))
    reference(INPUTS), ours(INPUTS)
    ours.set_weights(reference.get_weights())
    expected, got = (
        keras.ops.convert_to_numpy(layer(INPUTS)) for layer in (reference, ours)
    )
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()


@pytest.mark.parametrize("name", CASES)
def test_gradient_flows_to_every_weight_and_to_the_first_input(name):
    _, cell_class, options = CASES[name]
    rnn = layers.RNN(cell_class(5, **options))
    x = tf.constant(INPUTS)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        loss = tf.reduce_sum(rnn(x) ** 2)
    for weight, grad in zip(
        rnn.trainable_weights, tape.gradient(loss, rnn.trainable_weights), strict=True
    ):
        assert grad is not None and float(tf.reduce_max(tf.abs(grad))) > 0, weight.name
    assert float(tf.reduce_max(tf.abs(tape.gradient(loss, x)[:, 0]))) > 0


def test_cells_round_trip_through_get_config():
    cells = (
        SimpleRNNCellScratch(3),
        LSTMCellScratch(3, unit_forget_bias=False),
        GRUCellScratch(3, reset_after=False),
    )
    for cell in cells:
        clone = type(cell).from_config(cell.get_config())
        assert clone.get_config() == cell.get_config()


def test_lstm_cell_forget_bias_starts_at_one():
    cell = LSTMCellScratch(2)
    layers.RNN(cell)(INPUTS)
    assert np.allclose(cell.bias.numpy(), [0, 0, 1, 1, 0, 0, 0, 0])


def test_token_stream_counts_eos_as_predicted_and_no_bos():
    word_id = {"</s>": 0, "a": 1, "b": 2}
    stream = token_stream([["a", "b"], ["b"]], word_id)
    assert stream.tolist() == [0, 1, 2, 0, 2, 0]
    assert len(stream) - 1 == 2 + 1 + 1 + 1  # words + sentences


def test_contiguous_batches_rows_continue_across_windows():
    x, y, w = contiguous_batches(
        np.arange(23), batch_size=2, bptt=3
    )  # 22 pairs -> rows of 11 -> 3 windows
    assert x.shape == y.shape == w.shape == (3, 2, 3)
    assert x[:, 0].reshape(-1).tolist() == list(range(9)) and x[:, 1].reshape(
        -1
    ).tolist() == list(range(11, 20))
    assert np.array_equal(y, x + 1) and w.min() == 1


def test_contiguous_batches_padded_covers_every_pair_once():
    x, y, w = contiguous_batches(
        np.arange(24), batch_size=3, bptt=4, pad=True
    )  # 23 pairs
    assert w.sum() == 23
    assert sorted(y[w > 0].tolist()) == list(range(1, 24))
    assert np.array_equal(y[w > 0], x[w > 0] + 1)


def test_stateful_lm_carries_state_and_perplexity_is_uniform_for_zero_logits():
    vocab_size, stream = 7, np.random.default_rng(0).integers(0, 7, 50)
    model = build_rnn_lm(vocab_size, 4, 3, cell="gru", batch_size=2)
    x = np.zeros((2, 3), np.int32)
    first = keras.ops.convert_to_numpy(model(x))
    assert not np.allclose(
        first, keras.ops.convert_to_numpy(model(x))
    )  # the state was carried
    reset_rnn_states(model)
    assert np.allclose(first, keras.ops.convert_to_numpy(model(x)), atol=1e-6)
    logits_layer = model.get_layer("logits")
    logits_layer.set_weights([np.zeros_like(w) for w in logits_layer.get_weights()])
    ppl = stream_perplexity(model, *contiguous_batches(stream, 2, 4, pad=True))
    assert ppl == pytest.approx(vocab_size, rel=1e-5)


def test_init_scale_bounds_every_weight():
    model = build_rnn_lm(
        11, 4, 3, cell="lstm", num_layers=2, batch_size=1, init_scale=0.1
    )
    model(np.zeros((1, 2), np.int32))
    assert all(np.abs(w.numpy()).max() <= 0.1 + 1e-7 for w in model.weights)
    assert model.get_layer("lstm_1").cell.bias.numpy().max() <= 0.1 + 1e-7


def test_uniform_initializers_are_empty_without_a_scale_and_fresh_per_call():
    assert uniform_initializers(None, "kernel") == {}
    first = uniform_initializers(0.05, "kernel", "bias")
    assert set(first) == {"kernel_initializer", "bias_initializer"}
    assert first["kernel_initializer"] is not first["bias_initializer"]
    assert first["kernel_initializer"].get_config()["maxval"] == 0.05


def test_dropout_sits_on_the_non_recurrent_connections_only():
    model = build_rnn_lm(11, 4, 3, cell="lstm", num_layers=2, batch_size=2, dropout=0.5)
    names = [layer.name for layer in model.layers]
    assert names == [
        names[0],  # the input
        "embedding",
        "dropout_1",
        "lstm_1",
        "dropout_2",
        "lstm_2",
        "dropout_out",
        "logits",
    ]
    for name in ("lstm_1", "lstm_2"):  # no dropout inside the recurrence
        config = model.get_layer(name).get_config()
        assert config["dropout"] == 0 and config["recurrent_dropout"] == 0
    no_dropout = build_rnn_lm(11, 4, 3, num_layers=2, batch_size=2)
    assert not any(isinstance(layer, layers.Dropout) for layer in no_dropout.layers)


def test_dropout_is_active_in_training_only_and_draws_a_mask_per_step():
    model = build_rnn_lm(11, 8, 5, cell="gru", batch_size=2, dropout=0.5)
    x = np.tile(np.arange(6, dtype=np.int32), (2, 1))

    def logits(training: bool) -> np.ndarray:
        reset_rnn_states(model)
        return keras.ops.convert_to_numpy(model(x, training=training))

    assert np.allclose(logits(False), logits(False))
    assert not np.allclose(logits(True), logits(False))
    # Zaremba et al.: a new mask at every time step (Keras's recurrent-layer argument
    # would reuse one mask per sequence): the same vector at every step is masked
    # differently across the steps.
    same_at_every_step = np.ones((1, 20, 8), np.float32)
    masked = model.get_layer("dropout_1")(same_at_every_step, training=True)
    masks = {tuple(row) for row in keras.ops.convert_to_numpy(masked)[0] != 0}
    assert len(masks) > 1


def test_recurrent_stack_returns_the_units_of_the_last_layer():
    inputs = keras.Input(batch_shape=(2, None, 4))
    out = recurrent_stack(inputs, "rnn", 7, 3, dropout=0.1)
    assert tuple(out.shape) == (2, None, 7)


def test_spectral_norm_constraint_rescales_only_matrices_above_the_bound():
    w = np.random.default_rng(0).normal(size=(6, 6)).astype(np.float32)
    w /= np.linalg.norm(w, 2)
    constraint = SpectralNormAtMost(1.0)
    rescaled = keras.ops.convert_to_numpy(constraint(3.0 * w))
    assert np.linalg.norm(rescaled, 2) == pytest.approx(1.0, rel=1e-5)
    assert np.allclose(rescaled, w, rtol=1e-5, atol=1e-6)  # the direction is kept
    inside = keras.ops.convert_to_numpy(constraint(0.5 * w))
    assert np.array_equal(inside, 0.5 * w)
    config = SpectralNormAtMost(0.9).get_config()
    assert SpectralNormAtMost.from_config(config).max_value == 0.9


def sigma_after_training(recurrent_constraint) -> float:
    seed_everything(0, keras=True)
    model = build_rnn_lm(
        11, 4, 6, cell="rnn", batch_size=2, recurrent_constraint=recurrent_constraint
    )
    kernel = model.get_layer("rnn_1").cell.recurrent_kernel
    assert kernel.constraint is recurrent_constraint
    model.compile(optimizer=keras.optimizers.Adam(0.5), loss=summed_nll)
    x = np.random.default_rng(0).integers(0, 11, (2, 5))
    model.fit(x, x, epochs=5, batch_size=2, verbose=0, shuffle=False)
    return float(np.linalg.norm(kernel.numpy(), 2))


def test_recurrent_constraint_reaches_the_kernel_and_holds_during_training():
    assert sigma_after_training(None) > 1.1  # Adam alone leaves the bound
    assert sigma_after_training(SpectralNormAtMost(1.0)) <= 1 + 1e-5
