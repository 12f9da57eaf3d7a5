"""Tests of lmlib.ngram (exported from chapter 02): counts, parity with nltk.lm, normalisation."""

import numpy as np
import pytest

from lmlib.ngram import AddKLM, BackoffLM, JelinekMercerLM, KneserNeyLM, NGramCounts

TRAIN = [s.split() for s in [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat saw the dog",
    "the dog saw a cat on the mat",
    "a dog sat",
    "the cat ate the fish",
    "<unk> sat on a <unk>",
]]
HELDOUT = [s.split() for s in ["the dog sat on a mat", "a cat sat on the log", "the fish saw a <unk>"]]


def nltk_probs(model, sentences, order):
    from nltk.util import ngrams

    grams = [g for s in sentences for g in ngrams(["<s>"] * (order - 1) + s + ["</s>"], order)]
    return np.array([model.score(g[-1], g[:-1]) for g in grams])


@pytest.mark.parametrize("order", [2, 3, 4])
@pytest.mark.parametrize("discount", [0.1, 0.75])
def test_kneser_ney_matches_nltk(order, discount):
    from nltk.lm import KneserNeyInterpolated
    from nltk.lm.preprocessing import padded_everygram_pipeline

    ref = KneserNeyInterpolated(order, discount=discount)
    ref.fit(*padded_everygram_pipeline(order, TRAIN))
    ours = KneserNeyLM(order, discount).fit(NGramCounts(TRAIN, order, padding="nltk"))
    expected = nltk_probs(ref, HELDOUT, order)
    got = ours.prob_windows(ours.windows(HELDOUT))
    assert np.all(expected > 0)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    ppl_ref = np.exp(-np.log(expected).mean())
    assert abs(ours.perplexity(HELDOUT) - ppl_ref) / ppl_ref < 1e-6


def test_mle_matches_nltk():
    from nltk.lm import MLE
    from nltk.lm.preprocessing import padded_everygram_pipeline

    ref = MLE(3)
    ref.fit(*padded_everygram_pipeline(3, TRAIN))
    ours = AddKLM(3, k=0.0).fit(NGramCounts(TRAIN, 3, padding="nltk"))
    np.testing.assert_allclose(ours.prob_windows(ours.windows(TRAIN)), nltk_probs(ref, TRAIN, 3), rtol=1e-12)
    assert ours.perplexity(HELDOUT) == np.inf  # unseen trigrams


CONTEXTS = [[], ["the"], ["sat", "on"], ["on", "the"],  # seen
            ["fish", "fish"], ["mat", "dog"], ["<unk>", "the", "ate"], ["never-seen-word"]]  # unseen


@pytest.mark.parametrize("make_model", [
    lambda: AddKLM(3, 0.1), lambda: JelinekMercerLM(3, [0.6, 0.7, 0.8]), lambda: BackoffLM(3, 0.6),
    lambda: KneserNeyLM(3, 0.75), lambda: KneserNeyLM(3, (0.5, 0.7, 0.9)), lambda: KneserNeyLM(3, modified=True),
    lambda: BackoffLM(1, 0.5), lambda: KneserNeyLM(1, 0.5),
], ids=["add-k", "jelinek-mercer", "back-off", "kn", "kn-per-order", "modified-kn", "back-off-1", "kn-1"])
def test_distributions_sum_to_one(make_model):
    model = make_model().fit(TRAIN)
    for context in CONTEXTS:
        probs = model.distribution(context)
        assert probs.shape == (len(model.counts.vocab),)
        assert probs[0] == 0.0  # <s> is never predicted
        assert np.all(probs >= 0)
        assert abs(probs.sum() - 1.0) < 1e-12, (context, probs.sum())


def test_counts_and_continuation_counts():
    counts = NGramCounts(TRAIN, 2)
    windows = counts.windows([["the", "cat"]], 2)  # rows (<s>, the), (the, cat), (cat, </s>)
    ids = counts.ids(windows, 2)
    assert list(counts.count[2][ids[:2]]) == [4, 2]
    assert ids[2] == -1  # "cat </s>" never occurs
    the_cat = counts.ids(np.array([[counts.word_id["the"], counts.word_id["cat"]]]), 2)[0]
    assert counts.suffix[2][the_cat] == counts.word_id["cat"]
    cat = counts.word_id["cat"]
    assert counts.cont[1][cat] == 2  # cat follows "the" and "a"
    assert counts.count[1][cat] == 4
    assert counts.count[1][0] == 0  # <s> is not counted under the book padding


def test_shared_counts_give_the_same_model():
    shared = NGramCounts(TRAIN, 5)
    for order in (1, 2, 3):
        for make in (lambda o: KneserNeyLM(o, 0.7), lambda o: BackoffLM(o, 0.7),
                     lambda o: KneserNeyLM(o, modified=True), lambda o: JelinekMercerLM(o, [0.5] * o)):
            own, reused = make(order).fit(TRAIN), make(order).fit(shared)
            np.testing.assert_allclose(reused.prob_windows(reused.windows(HELDOUT)),
                                       own.prob_windows(own.windows(HELDOUT)), rtol=1e-12)


def test_unknown_words_and_logprob():
    model = KneserNeyLM(2, 0.75).fit(TRAIN)
    assert model.logprob("cat", ["zebra"]) == model.logprob("cat", ["<unk>"])
    assert np.isclose(model.logprob("cat", ["the"]), np.log(model.distribution(["the"])[model.counts.word_id["cat"]]))
    no_unk = KneserNeyLM(2, 0.75).fit([s for s in TRAIN if "<unk>" not in s])
    with pytest.raises(KeyError):
        no_unk.perplexity([["zebra"]])


def test_sampling_is_seeded():
    model = KneserNeyLM(3, 0.75).fit(TRAIN)
    first = [model.sample(np.random.default_rng(0)) for _ in range(3)]
    again = [model.sample(np.random.default_rng(0)) for _ in range(3)]
    assert first == again and all(w in model.counts.word_id for s in first for w in s)
