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
    decode_batches,
    decoder_step_fn,
    dot_attention,
    encoder_start_fn,
    fit_seq2seq,
    group_references,
    keep_sources,
    load_translator,
    masked_accuracy,
    masked_loss,
    save_translator,
    split_sources,
    split_translations,
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


def test_keep_sources_applies_length_and_closed_vocabulary_to_every_translation():
    refs = {"a b": ["x y"], "a c": ["x z z"], "b": ["y", "x x x x"], "c c": ["y"]}
    assert keep_sources(refs, max_len=3) == {k: refs[k] for k in ("a b", "a c", "c c")}
    # two words a side: c and a (b ties with a, later), x and y (z is rarer); "a c"
    # goes because one of its translations has z, "b" because of its source word
    kept = keep_sources(refs, max_len=4, closed_vocab=2)
    assert kept == {"c c": ["y"]}


def test_split_translations_pools_or_keeps_official_splits():
    pairs = [(f"s{i}", f"t{i}") for i in range(30)] + [("s0", "u0")]
    parts = split_translations({"all": pairs}, max_len=5, n_valid=3, n_test=4)
    assert [len(parts[n]) for n in ("train", "valid", "test")] == [23, 3, 4]
    assert sum(len(p) for p in parts.values()) == 30
    assert next(p["s0"] for p in parts.values() if "s0" in p) == ["t0", "u0"]
    official = {
        "train": [("a", "x"), ("b", "y"), ("c d e f", "z")],
        "valid": [("b", "y2")],
        "test": [("q", "r")],
    }
    parts = split_translations(official, max_len=3)
    expected = {"train": {"a": ["x"]}, "valid": {"b": ["y2"]}, "test": {"q": ["r"]}}
    assert parts == expected


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


def test_beam_search_from_a_row_of_a_padded_batch_equals_a_lone_sentence():
    keras.utils.set_random_seed(3)
    model = Seq2Seq(9, 7, 4, 5, "bahdanau")
    sources = [[4, 5, 6, 7, 3], [8, 3]]  # the second is padded in the batch
    step_fn, start_fn = decoder_step_fn(model), encoder_start_fn(model)
    batched = decode_batches(step_fn, start_fn, sources, 5, beam_width=3)
    alone = decode_batches(step_fn, start_fn, sources[1:], 5, beam_width=3)
    assert batched[1] == alone[0]
    greedy = decode_batches(step_fn, start_fn, sources, 5)
    assert greedy == translate_ids(model, sources, 5)
    assert decode_batches(step_fn, start_fn, sources[::-1], 5) == greedy[::-1]


def test_fit_seq2seq_learns_a_copy_task_and_logs_its_history():
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    sources = [
        list(rng.integers(4, 9, size=rng.integers(2, 5))) + [3] for _ in range(64)
    ]
    targets = [[2, *s[:-1], 3] for s in sources]  # <bos> copy <eos>
    train = translation_dataset(sources, targets, 16, shuffle_seed=0)
    valid = translation_dataset(sources, targets, 32, shuffle_seed=None)
    model = Seq2Seq(9, 9, 8, 16, "dot")
    history = fit_seq2seq(model, train, valid, 40, 20, 1e-2, log=lambda line: None)
    assert history["step"] == [20, 40]
    assert history["valid_loss"][1] < history["valid_loss"][0] < np.log(9)
    assert history["seconds"][1] > history["seconds"][0] > 0


def test_a_new_iterator_continues_the_shuffle_and_a_new_pipeline_repeats_it():
    sources = [[i + 4, 3] for i in range(40)]
    targets = [[2, i + 4, 3] for i in range(40)]
    ds = translation_dataset(sources, targets, 4)
    first = next(iter(ds))[0][0].numpy()
    again = next(iter(ds))[0][0].numpy()
    fresh = next(iter(translation_dataset(sources, targets, 4)))[0][0].numpy()
    assert not np.array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)
