"""Tests of lmlib.seq2seq (chapter 06): attention equals Keras's layers with masks and
gives padded keys exactly zero weight, the one-step decoder equals the teacher-forced
pass for every variant, the loss ignores padding, splits never share a source, the
pipeline pads per batch, and a saved translator reloads to the same translations."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from lmlib.seq2seq import (  # noqa: E402
    Seq2Seq,
    additive_attention,
    dot_attention,
    group_references,
    load_translator,
    masked_accuracy,
    masked_loss,
    save_translator,
    split_sources,
    translate,
    translate_ids,
    translation_dataset,
)
from lmlib.text import PAD_ID, Vocab, translation_tokens  # noqa: E402

RNG = np.random.default_rng(0)
MASK = np.array([[True, True, True, False, False], [True] * 5])


def tensors(*shapes):
    return [RNG.normal(size=s).astype("float32") for s in shapes]


def test_additive_attention_equals_keras_and_ignores_padding():
    query, keys, values, v = tensors((2, 3, 8), (2, 5, 8), (2, 5, 6), (8,))
    context, weights = additive_attention(query, keys, values, v, MASK)
    layer = keras.layers.AdditiveAttention(use_scale=True)
    layer([query, values, keys])
    layer.scale.assign(v)
    k_context, k_weights = layer(
        [query, values, keys], mask=[None, MASK], return_attention_scores=True
    )
    assert np.abs(np.asarray(context) - np.asarray(k_context)).max() <= 1e-5
    assert np.abs(np.asarray(weights) - np.asarray(k_weights)).max() <= 1e-5
    assert np.asarray(weights)[0, :, 3:].max() == 0.0
    np.testing.assert_allclose(np.asarray(weights).sum(-1), 1.0, rtol=1e-6)


def test_dot_attention_equals_keras_and_ignores_padding():
    query, keys, values = tensors((2, 4, 8), (2, 5, 8), (2, 5, 3))
    context, weights = dot_attention(query, keys, values, MASK)
    k_context, k_weights = keras.layers.Attention()(
        [query, values, keys], mask=[None, MASK], return_attention_scores=True
    )
    assert np.abs(np.asarray(context) - np.asarray(k_context)).max() <= 1e-5
    assert np.abs(np.asarray(weights) - np.asarray(k_weights)).max() <= 1e-5
    assert np.asarray(weights)[0, :, 3:].max() == 0.0
    # changing a padded value must not change the context of that row
    values2 = values.copy()
    values2[0, 4] += 100.0
    context2, _ = dot_attention(query, keys, values2, MASK)
    assert np.abs(np.asarray(context2)[0] - np.asarray(context)[0]).max() == 0.0


@pytest.mark.parametrize("attention", Seq2Seq.ATTENTIONS)
def test_one_step_decoder_equals_the_teacher_forced_pass(attention):
    keras.utils.set_random_seed(1)
    source = np.array([[5, 6, 7, 3, 0, 0], [8, 9, 10, 11, 12, 3]], np.int32)
    target_in = np.array([[2, 5, 6, 7], [2, 9, 9, 4]], np.int32)
    model = Seq2Seq(13, 11, 6, 7, attention)
    full = np.asarray(model((source, target_in)))
    memory, state = model.encode(tf.constant(source))
    for i in range(target_in.shape[1]):
        logits, state, weights = model.decode_step(
            tf.constant(target_in[:, i]), state, memory
        )
        rel = np.abs(np.asarray(logits) - full[:, i]).max() / np.abs(full).max()
        assert rel <= 1e-5
        if weights is not None:
            assert np.asarray(weights)[0, 4:].max() == 0.0  # padded source positions
    # padding at the end of a source does not change its translation's logits
    short = model((source[:1, :4], target_in[:1]))
    assert np.abs(np.asarray(short) - full[:1]).max() <= 1e-5 * np.abs(full).max()


def test_unknown_attention_is_refused():
    with pytest.raises(ValueError, match="attention='luong'"):
        Seq2Seq(5, 5, attention="luong")


def test_loss_and_accuracy_ignore_padding():
    targets = np.array([[4, 5, PAD_ID], [6, PAD_ID, PAD_ID]])
    logits = RNG.normal(size=(2, 3, 8)).astype("float32")
    logits[0, 0, 4] = logits[1, 0, 6] = 50.0  # two of three real tokens right
    changed = logits.copy()
    changed[:, 2] = RNG.normal(size=(2, 8))  # padding positions only
    assert float(masked_loss(targets, logits)) == float(masked_loss(targets, changed))
    assert float(masked_accuracy(targets, logits)) == pytest.approx(2 / 3)


def test_split_sources_keeps_each_source_in_one_part():
    pairs = [("a", "x"), ("a", "y"), ("b", "z"), ("c", "w"), ("a", "x")]
    refs = group_references(pairs)
    assert refs == {"a": ["x", "y"], "b": ["z"], "c": ["w"]}
    sources = [f"s{i}" for i in range(50)]
    train, valid, test = split_sources(sources, 5, 10, seed=3)
    assert len(valid) == 5 and len(test) == 10 and len(train) == 35
    assert sorted(train + valid + test) == sorted(sources)
    assert split_sources(sources, 5, 10, seed=3) == (train, valid, test)
    with pytest.raises(ValueError, match="unique"):
        split_sources(["a", "a", "b"], 1, 1)
    with pytest.raises(ValueError, match="held out"):
        split_sources(sources, 25, 25)


def test_pipeline_pads_each_batch_to_its_longest_sentence():
    sources = [[4, 3], [4, 5, 6, 3], [7, 3], [8, 9, 3]]
    targets = [[2, 4, 3], [2, 4, 5, 3], [2, 3], [2, 6, 7, 8, 3]]
    ds = translation_dataset(sources, targets, 2, shuffle_seed=None)
    (src, tgt_in), tgt_out = next(iter(ds))
    assert src.shape == (2, 4) and tgt_in.shape == (2, 3) and tgt_out.shape == (2, 3)
    assert src.numpy().tolist() == [[4, 3, 0, 0], [4, 5, 6, 3]]
    assert tgt_in.numpy().tolist() == [[2, 4, 3], [2, 4, 5]]
    assert tgt_out.numpy().tolist() == [[4, 3, 0], [4, 5, 3]]
    assert sum(1 for _ in ds) == 2


def test_translation_tokens_normalise_case_and_accents():
    composed, decomposed = "¿Dónde está?", "¿Do\u0301nde esta\u0301?"
    assert translation_tokens(composed) == translation_tokens(decomposed)
    assert translation_tokens("Tom's here.") == ["tom", "'", "s", "here", "."]


def test_saved_translator_reloads_to_the_same_translations(tmp_path):
    keras.utils.set_random_seed(2)
    src_vocab = Vocab([["hola", "mundo", "."], ["adiós", "."]])
    tgt_vocab = Vocab([["hello", "world", "."], ["bye", "."]])
    assert Vocab.from_itos(src_vocab.itos).itos == src_vocab.itos
    model = Seq2Seq(len(src_vocab), len(tgt_vocab), 4, 5, "bahdanau")
    texts = ["Hola mundo.", "Adiós."]
    before = translate(model, src_vocab, tgt_vocab, texts, max_len=6)
    save_translator(tmp_path, model, src_vocab, tgt_vocab)
    reloaded, src2, tgt2 = load_translator(tmp_path)
    assert translate(reloaded, src2, tgt2, texts, max_len=6) == before
    ids = [src_vocab.encode(translation_tokens(t)) + [3] for t in texts]
    beams = translate_ids(model, ids, 6, beam_width=3)
    assert len(beams) == 2 and all(len(b) <= 6 for b in beams)
