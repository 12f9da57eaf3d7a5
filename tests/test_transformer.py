"""Tests of lmlib.transformer (chapter 07): multi-head attention equals Keras's layer
under every mask on both of its routes, masked keys get exactly zero weight, causal
blocks ignore the future, positions and encoder blocks equal KerasHub's, one-token
decoding equals the teacher-forced pass, and the loss and schedule match their
formulas."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from lmlib.generate import greedy_decode  # noqa: E402
from lmlib.seq2seq import decode_batches, masked_loss  # noqa: E402
from lmlib.text import BOS_ID, EOS_ID  # noqa: E402
from lmlib.transformer import (  # noqa: E402
    MultiHeadAttention,
    TokenAndPositionEmbedding,
    Transformer,
    TransformerBlock,
    WarmupSchedule,
    causal_mask,
    combine_masks,
    copy_attention_weights,
    copy_block_weights,
    label_smoothed_loss,
    padding_mask,
    scaled_dot_product_attention,
    sinusoidal_encoding,
    transformer_start_fn,
    transformer_step_fn,
)

RNG = np.random.default_rng(0)
IDS = np.array([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])  # row 0 is padded


def normal(*shape):
    return RNG.normal(size=shape).astype("float32")


def test_attention_equals_a_numpy_reference_and_masks_give_zero_weight():
    q, k, v = normal(2, 5, 4), normal(2, 5, 4), normal(2, 5, 3)
    mask = combine_masks(padding_mask(IDS), causal_mask(5))
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    scores = q @ k.transpose(0, 2, 1) / 2.0
    scores = np.where(np.asarray(mask), scores, -np.inf)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(np.asarray(weights), expected, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out), expected @ v, atol=1e-5)
    assert np.all(np.asarray(weights)[~np.asarray(mask)] == 0.0)


def test_masks_follow_the_keras_convention():
    assert np.asarray(padding_mask(IDS)).tolist() == [
        [[True, True, True, False, False]],
        [[True] * 5],
    ]
    assert np.asarray(causal_mask(3))[0].astype(int).tolist() == [
        [1, 0, 0],
        [1, 1, 0],
        [1, 1, 1],
    ]
    assert combine_masks(None, None) is None


@pytest.mark.parametrize("masking", ["none", "padding", "causal", "both"])
def test_multi_head_attention_equals_keras_on_both_routes(masking):
    x, memory = normal(2, 5, 8), normal(2, 5, 8)
    ours = MultiHeadAttention(num_heads=2, key_dim=4)
    theirs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    ours(x, memory), theirs(x, memory)
    copy_attention_weights(ours, theirs)
    pad = np.broadcast_to(np.asarray(padding_mask(IDS)), (2, 5, 5))
    mask = pad if masking in ("padding", "both") else None
    causal = masking in ("causal", "both")
    full = combine_masks(mask, causal_mask(5) if causal else None)
    out, weights = ours(x, memory, attention_mask=full, return_attention_scores=True)
    kw = dict(attention_mask=mask, use_causal_mask=causal)
    k_out, k_weights = theirs(x, memory, return_attention_scores=True, **kw)
    fused = theirs(x, memory, **kw)
    for a, b in ((out, k_out), (weights, k_weights), (out, fused)):
        assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-5
    if full is not None:
        hidden = np.broadcast_to(~np.asarray(full)[:, None], weights.shape)
        assert np.asarray(weights)[hidden].max() == 0.0


def test_sinusoidal_encoding_equals_keras_hub_and_interleaves_sin_and_cos():
    keras_hub = pytest.importorskip("keras_hub")
    table = sinusoidal_encoding(30, 8)
    hub = keras_hub.layers.SinePositionEncoding()(np.zeros((1, 30, 8), "float32"))
    assert np.abs(table - np.asarray(hub)[0]).max() <= 1e-5
    np.testing.assert_allclose(table[:, 0], np.sin(np.arange(30)), atol=1e-6)
    np.testing.assert_allclose(table[:, 1], np.cos(np.arange(30)), atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_equals_keras_hub_transformer_encoder(norm_first):
    keras_hub = pytest.importorskip("keras_hub")
    x = normal(2, 5, 8)
    ours = TransformerBlock(8, 2, 16, dropout=0.0, norm_first=norm_first)
    theirs = keras_hub.layers.TransformerEncoder(
        intermediate_dim=16, num_heads=2, normalize_first=norm_first
    )
    ours(x), theirs(x)
    copy_block_weights(ours, theirs)
    mine = ours(x, padding_mask(IDS))
    their = theirs(x, padding_mask=IDS != 0)
    assert np.abs(np.asarray(mine) - np.asarray(their)).max() <= 1e-5


@pytest.mark.parametrize("cross_attention", [False, True])
def test_causal_block_outputs_do_not_depend_on_later_inputs(cross_attention):
    x, memory = normal(2, 6, 8), normal(2, 4, 8)
    changed = x.copy()
    changed[:, 3:] = normal(2, 3, 8)
    block = TransformerBlock(
        8, 2, 16, dropout=0.0, causal=True, cross_attention=cross_attention
    )
    kwargs = dict(memory=memory) if cross_attention else {}
    before, after = np.asarray(block(x, **kwargs)), np.asarray(block(changed, **kwargs))
    assert np.abs(before[:, :3] - after[:, :3]).max() == 0.0
    assert np.abs(before[:, 3:] - after[:, 3:]).max() > 0.0


@pytest.mark.parametrize("cross_attention", [False, True])
def test_use_bias_false_leaves_only_kernels_and_normalisation_gains(cross_attention):
    kwargs = dict(memory=normal(1, 4, 8)) if cross_attention else {}
    with_bias = TransformerBlock(8, 2, 16, cross_attention=cross_attention)
    without = TransformerBlock(
        8, 2, 16, cross_attention=cross_attention, use_bias=False
    )
    with_bias(normal(1, 3, 8), **kwargs)
    without(normal(1, 3, 8), **kwargs)
    assert all(w.name in ("kernel", "gamma") for w in without.weights)
    assert {w.name for w in with_bias.weights} == {"kernel", "bias", "gamma", "beta"}
    n_norms = 3 if cross_attention else 2
    n_biases = 4 * (n_norms - 1) + 2 + n_norms  # projections, feed-forward, norm betas
    assert len(with_bias.weights) - len(without.weights) == n_biases


def test_block_and_embedding_refuse_bad_settings():
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(10, 3, 16)
    with pytest.raises(ValueError, match="learned"):
        TokenAndPositionEmbedding(10, 8, 16, positions="rotary")
    with pytest.raises(ValueError, match="memory"):
        TransformerBlock(8, 2, 16, cross_attention=True)(normal(1, 3, 8))


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_embedding_start_may_be_a_runtime_value_under_xla(positions):
    # Inside an XLA loop the start position is not a compile-time constant; a range
    # with tensor bounds fails to compile there (and outside a loop it compiles once
    # per start value, which is what made KV-cache generation recompile every token).
    layer = TokenAndPositionEmbedding(10, 8, 16, positions=positions)
    ids = tf.constant([[3, 4]])
    layer(ids)

    @tf.function(jit_compile=True)
    def sum_over_starts():
        def body(start, total):
            return start + 1, total + layer(ids, start=start)

        return tf.while_loop(
            lambda start, _: start < 3, body, (tf.constant(0), tf.zeros((1, 2, 8)))
        )[1]

    expected = sum(layer(ids, start=start) for start in range(3))
    np.testing.assert_allclose(sum_over_starts(), expected, atol=1e-6)


@pytest.mark.parametrize("norm_first", [False, True])
def test_one_token_decoding_equals_the_teacher_forced_pass(norm_first):
    keras.utils.set_random_seed(1)
    model = Transformer(11, 9, 8, 2, 16, 2, 0.0, 16, norm_first=norm_first)
    source, target_in = (
        np.array([[4, 5, 6, 3], [7, 3, 0, 0]]),
        np.array([[BOS_ID, 4, 5, 6], [BOS_ID, 7, 8, 5]]),
    )
    full = np.asarray(model((source, target_in)))
    step_fn = transformer_step_fn(model)
    state = transformer_start_fn(model)(tf.constant(source, tf.int32))
    steps = []
    for i in range(target_in.shape[1]):
        logits, state = step_fn(target_in[:, i], state)
        steps.append(logits)
    assert np.abs(np.stack(steps, 1) - full).max() / np.abs(full).max() <= 1e-5


def test_transformer_decodes_greedily_and_by_beam_and_reloads_from_config(tmp_path):
    keras.utils.set_random_seed(2)
    model = Transformer(11, 9, 8, 2, 16, 1, 0.0, 16, positions="learned")
    sources = [[4, 5, 6, 3], [7, 3]]
    fns = (transformer_step_fn(model), transformer_start_fn(model))
    greedy = decode_batches(*fns, sources, 6)
    assert greedy == decode_batches(*fns, sources, 6, beam_width=1)
    beams = decode_batches(*fns, sources, 6, beam_width=3)
    assert len(beams) == 2 and all(len(b) <= 6 for b in beams)
    start = fns[1](tf.constant([[7, 3]], tf.int32))
    assert greedy_decode(fns[0], start, [BOS_ID], EOS_ID, 6)[0] == greedy[1]
    model.save_weights(tmp_path / "t.weights.h5")
    clone = Transformer.from_config(model.get_config())
    clone((np.array([[3]]), np.array([[BOS_ID]])))
    clone.load_weights(tmp_path / "t.weights.h5")
    probe = (np.array([[4, 5, 3]]), np.array([[BOS_ID, 4]]))
    np.testing.assert_array_equal(np.asarray(clone(probe)), np.asarray(model(probe)))


def test_label_smoothing_matches_its_formula_and_ignores_padding():
    logits, targets = normal(2, 3, 7), np.array([[4, 5, 0], [6, 2, 3]])
    assert float(label_smoothed_loss(targets, logits, 0.0)) == pytest.approx(
        float(masked_loss(targets, logits)), rel=1e-6
    )
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    q = np.full(logits.shape, 0.1 / 7) + 0.9 * np.eye(7)[targets]
    per_token = -(q * log_p).sum(-1)
    expected = per_token[targets != 0].mean()
    assert float(label_smoothed_loss(targets, logits, 0.1)) == pytest.approx(
        expected, rel=1e-5
    )
    changed = logits.copy()
    changed[0, 2] = normal(7)
    assert float(label_smoothed_loss(targets, logits)) == float(
        label_smoothed_loss(targets, changed)
    )


def test_warmup_schedule_rises_linearly_then_decays_as_the_inverse_square_root():
    schedule = WarmupSchedule(64, warmup_steps=10, scale=2.0)
    lr = np.asarray(schedule(np.arange(40)))  # optimizer steps 0.. are steps 1..
    assert int(np.argmax(lr)) == 9  # step 10
    np.testing.assert_allclose(lr[9], 2.0 * 64**-0.5 * 10**-0.5, rtol=1e-6)
    np.testing.assert_allclose(lr[4] / lr[9], 0.5, rtol=1e-6)
    np.testing.assert_allclose(lr[39] / lr[9], (10 / 40) ** 0.5, rtol=1e-6)
    assert WarmupSchedule(**schedule.get_config()).scale == 2.0
