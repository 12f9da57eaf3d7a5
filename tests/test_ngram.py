"""Tests of lmlib.ngram (exported from chapter 02): counts, parity with nltk.lm and with
a dict-based reference, hand-computed probabilities, normalisation, unknown words (also
on a corpus without <unk>), per-order discounts and sampling."""

import numpy as np
import pytest

from lmlib.ngram import (
    AddKLM,
    BackoffLM,
    JelinekMercerLM,
    KneserNeyLM,
    NGramCounts,
    modified_discounts,
)

TRAIN = [
    s.split()
    for s in [
        "the cat sat on the mat",
        "the dog sat on the log",
        "a cat saw the dog",
        "the dog saw a cat on the mat",
        "a dog sat",
        "the cat ate the fish",
        "<unk> sat on a <unk>",
    ]
]
HELDOUT = [
    s.split()
    for s in ["the dog sat on a mat", "a cat sat on the log", "the fish saw a <unk>"]
]


def nltk_probs(model, sentences, order):
    from nltk.util import ngrams

    grams = [
        g
        for s in sentences
        for g in ngrams(["<s>"] * (order - 1) + s + ["</s>"], order)
    ]
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
    np.testing.assert_allclose(
        ours.prob_windows(ours.windows(TRAIN)), nltk_probs(ref, TRAIN, 3), rtol=1e-12
    )
    assert ours.perplexity(HELDOUT) == np.inf  # unseen trigrams


CONTEXTS = [
    [],
    ["the"],
    ["sat", "on"],
    ["on", "the"],  # seen
    ["fish", "fish"],
    ["mat", "dog"],
    ["<unk>", "the", "ate"],
    ["never-seen-word"],
]  # unseen


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: AddKLM(3, 0.1),
        lambda: JelinekMercerLM(3, [0.6, 0.7, 0.8]),
        lambda: BackoffLM(3, 0.6),
        lambda: KneserNeyLM(3, 0.75),
        lambda: KneserNeyLM(3, (0.5, 0.7, 0.9)),
        lambda: KneserNeyLM(3, modified=True),
        lambda: BackoffLM(1, 0.5),
        lambda: KneserNeyLM(1, 0.5),
    ],
    ids=[
        "add-k",
        "jelinek-mercer",
        "back-off",
        "kn",
        "kn-per-order",
        "modified-kn",
        "back-off-1",
        "kn-1",
    ],
)
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
    windows = counts.windows(
        [["the", "cat"]], 2
    )  # rows (<s>, the), (the, cat), (cat, </s>)
    ids = counts.ids(windows, 2)
    assert list(counts.count[2][ids[:2]]) == [4, 2]
    assert ids[2] == -1  # "cat </s>" never occurs
    the_cat = counts.ids(np.array([[counts.word_id["the"], counts.word_id["cat"]]]), 2)[
        0
    ]
    assert counts.suffix[2][the_cat] == counts.word_id["cat"]
    cat = counts.word_id["cat"]
    assert counts.cont[1][cat] == 2  # cat follows "the" and "a"
    assert counts.count[1][cat] == 4
    assert counts.count[1][0] == 0  # <s> is not counted under the book padding


def test_shared_counts_give_the_same_model():
    shared = NGramCounts(TRAIN, 5)
    for order in (1, 2, 3):
        for make in (
            lambda o: KneserNeyLM(o, 0.7),
            lambda o: BackoffLM(o, 0.7),
            lambda o: KneserNeyLM(o, modified=True),
            lambda o: JelinekMercerLM(o, [0.5] * o),
        ):
            own, reused = make(order).fit(TRAIN), make(order).fit(shared)
            np.testing.assert_allclose(
                reused.prob_windows(reused.windows(HELDOUT)),
                own.prob_windows(own.windows(HELDOUT)),
                rtol=1e-12,
            )


def test_unknown_words_and_logprob():
    model = KneserNeyLM(2, 0.75).fit(TRAIN)
    assert model.logprob("cat", ["zebra"]) == model.logprob("cat", ["<unk>"])
    assert np.isclose(
        model.logprob("cat", ["the"]),
        np.log(model.distribution(["the"])[model.counts.word_id["cat"]]),
    )


def test_sampling_stops_at_the_sentence_end_or_max_words():
    model = AddKLM(2, k=0.0).fit(
        [["a", "b", "c"]]
    )  # MLE: <s> a b c </s> with probability 1
    assert model.sample(np.random.default_rng(0)) == [
        "a",
        "b",
        "c",
    ]  # stopped by drawing </s>
    assert model.sample(np.random.default_rng(0), max_words=2) == ["a", "b"]


def test_sampling_never_draws_sentence_start_and_is_seeded():
    model = KneserNeyLM(3, 0.75).fit(TRAIN)
    rng = np.random.default_rng(0)
    samples = [model.sample(rng, max_words=15) for _ in range(200)]
    assert all("<s>" not in s and "</s>" not in s and len(s) <= 15 for s in samples)
    assert any(len(s) < 15 for s in samples)
    # one sentence of 500 distinct words: a unigram sample is ~20 near-uniform draws,
    # two seeds never agree
    wide = AddKLM(1, k=0.0).fit([[f"w{i}" for i in range(500)]])
    first = wide.sample(np.random.default_rng(0), max_words=20)
    assert len(first) == 20
    assert wide.sample(np.random.default_rng(0), max_words=20) == first
    assert wide.sample(np.random.default_rng(1), max_words=20) != first


def test_logprob_maps_unknown_words_to_unk():
    model = KneserNeyLM(2, 0.75).fit(TRAIN)
    assert model.logprob("zebra", ["the"]) == model.logprob("<unk>", ["the"])
    assert model.logprob("zebra", ["zebra"]) == model.logprob("<unk>", ["<unk>"])


NO_UNK = [s for s in TRAIN if "<unk>" not in s]


def test_a_corpus_without_unk_still_has_an_unk_id_with_count_zero():
    counts = NGramCounts(NO_UNK, 3)
    unk = counts.word_id["<unk>"]
    assert counts.count[1][unk] == 0 and counts.cont[1][unk] == 0
    windows = counts.windows([["the", "zebra", "sat"]], 3)
    assert list(windows[:, -1]) == [
        counts.word_id["the"],
        unk,
        counts.word_id["sat"],
        counts.word_id["</s>"],
    ]
    assert counts.count[1].sum() == sum(map(len, NO_UNK)) + len(NO_UNK)


@pytest.mark.parametrize(
    "make_model",
    [
        lambda: KneserNeyLM(3, 0.75),
        lambda: KneserNeyLM(3, modified=True),
        lambda: AddKLM(3, 0.1),
        lambda: JelinekMercerLM(3, [0.6, 0.7, 0.8]),
    ],
    ids=["kn", "modified-kn", "add-k", "jelinek-mercer"],
)
def test_smoothed_models_score_unknown_words_of_a_corpus_without_unk(make_model):
    model = make_model().fit(NO_UNK)
    heldout = [["the", "zebra", "sat", "on", "the", "okapi"]]
    assert np.isfinite(model.perplexity(heldout))
    assert model.logprob("zebra", ["the"]) == model.logprob("<unk>", ["the"])
    assert model.logprob("cat", ["zebra"]) == model.logprob("cat", ["<unk>"])
    assert np.isfinite(model.logprob("zebra", ["the"]))
    for context in ([], ["zebra"], ["the", "zebra"]):
        assert abs(model.distribution(context).sum() - 1.0) < 1e-12


def test_unsmoothed_unigrams_give_unknown_words_probability_zero():
    heldout = [["the", "zebra"]]
    for model in (AddKLM(2, k=0.0), BackoffLM(2, 0.5)):
        model.fit(NO_UNK)
        assert model.logprob("zebra", ["the"]) == -np.inf
        assert model.perplexity(heldout) == np.inf
        assert np.isfinite(model.logprob("cat", ["the"]))


def test_the_discount_may_be_an_array():
    per_order = [0.5, 0.7, 0.9]
    reference = KneserNeyLM(3, per_order).fit(TRAIN)
    expected = reference.prob_windows(reference.windows(HELDOUT))
    for discount in (
        np.array(per_order),
        tuple(per_order),
        np.array(per_order + [0.1]),
    ):
        model = KneserNeyLM(3, discount).fit(TRAIN)
        np.testing.assert_array_equal(
            model.prob_windows(model.windows(HELDOUT)), expected
        )
    scalar = KneserNeyLM(3, 0.6).fit(TRAIN)
    for discount in (np.float64(0.6), np.array(0.6), np.array([0.6] * 3)):
        model = KneserNeyLM(3, discount).fit(TRAIN)
        np.testing.assert_array_equal(
            model.prob_windows(model.windows(HELDOUT)),
            scalar.prob_windows(scalar.windows(HELDOUT)),
        )
    assert [d[1] for d in reference.discounts[1:]] == per_order


@pytest.mark.parametrize("discount", [[0.5, 0.7], np.ones((3, 1))])
def test_a_discount_of_the_wrong_shape_is_rejected(discount):
    with pytest.raises(ValueError, match="one value or one per order"):
        KneserNeyLM(3, discount)


def test_modified_discounts_by_hand():
    counts = np.array(
        [1] * 6 + [2] * 3 + [3] * 2 + [4] * 1 + [9] * 5
    )  # n1..n4 = 6, 3, 2, 1
    y = 6 / (6 + 2 * 3)
    np.testing.assert_allclose(
        modified_discounts(counts),
        [0, 1 - 2 * y * 3 / 6, 2 - 3 * y * 2 / 3, 3 - 4 * y * 1 / 2],
        rtol=1e-12,
    )
    assert np.isnan(modified_discounts(np.array([5, 6]))[1])  # n1 = n2 = 0: undefined


def test_one_log_probability_per_word_and_sentence_end():
    model = KneserNeyLM(3, modified=True).fit(TRAIN)
    assert len(model.token_logprobs(HELDOUT)) == sum(map(len, HELDOUT)) + len(HELDOUT)


# Hand-computed probabilities on TRAIN (book padding). 38 words + 7 </s> = 45 predicted
# tokens; 12 words + </s> = 13 predictable symbols. "the" is followed 9 times by 5
# distinct words: cat 2, dog 3, mat 2, log 1, fish 1.
# Unigram counts: cat 4, dog 4, mat 2, log 1, fish 1, sat 4.


def test_add_k_by_hand():
    model = AddKLM(2, k=0.5).fit(TRAIN)
    assert np.isclose(
        np.exp(model.logprob("cat", ["the"])), (2 + 0.5) / (9 + 0.5 * 13), rtol=1e-12
    )
    assert np.isclose(
        np.exp(model.logprob("sat", ["the"])), 0.5 / (9 + 0.5 * 13), rtol=1e-12
    )


def test_jelinek_mercer_by_hand():
    model = JelinekMercerLM(2, [0.6, 0.7]).fit(TRAIN)
    p_cat = 0.6 * 4 / 45 + 0.4 / 13
    assert np.isclose(
        np.exp(model.logprob("cat", ["the"])), 0.7 * 2 / 9 + 0.3 * p_cat, rtol=1e-12
    )


def test_back_off_by_hand():
    model = BackoffLM(2, 0.5).fit(TRAIN)
    assert np.isclose(np.exp(model.logprob("cat", ["the"])), (2 - 0.5) / 9, rtol=1e-12)
    # unseen "the sat": alpha = (0.5 * 5 / 9) / (1 - 12/45) times P(sat) = 4/45,
    # i.e. 10/297
    assert np.isclose(np.exp(model.logprob("sat", ["the"])), 10 / 297, rtol=1e-12)


def test_kneser_ney_by_hand():
    # continuation counts: "cat" follows "the" and "a" (2); there are 30 distinct
    # counted bigrams and 13 distinct words with a continuation count, so
    # P_1(cat) = (2 - D)/30 + D * 13/30 / 13 = 2/30 exactly
    model = KneserNeyLM(2, 0.75).fit(TRAIN)
    p_cat = (2 - 0.75) / 30 + 0.75 * 13 / 30 / 13
    # "<s>" is followed 7 times by 3 distinct words (the 4, a 2, <unk> 1), never by
    # "cat"
    assert np.isclose(
        np.exp(model.logprob("cat", [])), 0.75 * 3 / 7 * p_cat, rtol=1e-12
    )
    assert np.isclose(
        np.exp(model.logprob("cat", ["the"])),
        (2 - 0.75) / 9 + 0.75 * 5 / 9 * p_cat,
        rtol=1e-12,
    )


# A dictionary-based reference: the equations of the chapter written out directly, on a
# synthetic corpus large enough for every order to have count-of-counts n1..n4 and
# modified discounts inside their ranges.


def synthetic_corpus(num_sentences, seed):
    rng = np.random.default_rng(seed)
    vocab_size = 300
    words = [f"w{i}" for i in range(vocab_size)]
    zipf = 1.0 / np.arange(1, vocab_size + 1)
    zipf /= zipf.sum()
    successors = rng.integers(
        0, vocab_size, size=(vocab_size, 3)
    )  # each word has 3 favourite successors
    sentences = []
    for _ in range(num_sentences):
        sentence = [int(rng.choice(vocab_size, p=zipf))]
        for _ in range(int(rng.integers(2, 9))):
            favourite = rng.random() < 0.6
            nxt = (
                successors[sentence[-1], rng.integers(3)]
                if favourite
                else rng.choice(vocab_size, p=zipf)
            )
            sentence.append(int(nxt))
        sentences.append([words[i] for i in sentence])
    return sentences


class Reference:
    """Counts and the smoothing equations of the chapter as dicts (book padding)."""

    def __init__(self, sentences, order, continuation=True):
        from collections import Counter

        self.order, self.continuation, self.count = order, continuation, Counter()
        for s in sentences:
            padded = ["<s>"] * (order - 1) + s + ["</s>"]
            for i in range(order - 1, len(padded)):
                for k in range(1, order + 1):
                    self.count[tuple(padded[i - k + 1 : i + 1])] += 1
        self.cont = Counter(g[1:] for g in self.count if len(g) >= 2)  # N1+(• g)
        # <unk> is always in the vocabulary (with count 0 here)
        self.predictable = sorted({w for s in sentences for w in s} | {"</s>", "<unk>"})

    def c(self, gram, continuation):
        return self.cont[gram] if continuation else self.count[gram]

    def followers(self, h, continuation):
        return {
            g[-1]: self.c(g, continuation)
            for g in (self.cont if continuation else self.count)
            if len(g) == len(h) + 1 and g[:-1] == h and self.c(g, continuation) > 0
        }

    def discounts(self, k, continuation):
        grams = self.cont if continuation else self.count
        n = [
            sum(1 for g, v in grams.items() if len(g) == k and v == j) for j in range(5)
        ]
        y = n[1] / (n[1] + 2 * n[2])
        return [
            0.0,
            1 - 2 * y * n[2] / n[1],
            2 - 3 * y * n[3] / n[2],
            3 - 4 * y * n[4] / n[3],
        ]

    def kn(self, w, h, k, discount=None):
        """P_KN of order k; discount None means modified (D1, D2, D3+ of that order)."""
        if k == 0:
            return 1 / len(self.predictable)
        h = tuple(h[len(h) - k + 1 :]) if k > 1 else ()
        lower = self.kn(w, h, k - 1, discount)
        continuation = self.continuation and k < self.order
        followers = self.followers(h, continuation)
        total = sum(followers.values())
        if total == 0:
            return lower
        d = (
            self.discounts(k, continuation)
            if discount is None
            else [0.0] + [discount] * 3
        )
        c_hw = followers.get(w, 0)
        gamma = sum(d[min(v, 3)] for v in followers.values()) / total
        return max(c_hw - d[min(c_hw, 3)], 0) / total + gamma * lower

    def backoff(self, w, h, k, discount):
        if k == 1:
            return self.count[(w,)] / sum(self.count[(v,)] for v in self.predictable)
        h = tuple(h[len(h) - k + 1 :])
        followers = self.followers(h, False)
        total = sum(followers.values())
        if total == 0:
            return self.backoff(w, h, k - 1, discount)
        if w in followers:
            return (followers[w] - discount) / total
        alpha = (
            discount
            * len(followers)
            / total
            / (1 - sum(self.backoff(v, h, k - 1, discount) for v in followers))
        )
        return alpha * self.backoff(w, h, k - 1, discount)

    def jelinek_mercer(self, w, h, k, lambdas):
        if k == 0:
            return 1 / len(self.predictable)
        h = tuple(h[len(h) - k + 1 :]) if k > 1 else ()
        lower = self.jelinek_mercer(w, h, k - 1, lambdas)
        followers = self.followers(h, False)
        total = sum(followers.values())
        if total == 0:
            return lower
        return (
            lambdas[k - 1] * followers.get(w, 0) / total + (1 - lambdas[k - 1]) * lower
        )

    def add_k(self, w, h, k):
        followers = self.followers(tuple(h[len(h) - self.order + 1 :]), False)
        return (followers.get(w, 0) + k) / (
            sum(followers.values()) + k * len(self.predictable)
        )


@pytest.fixture(scope="module")
def synthetic():
    train, heldout = synthetic_corpus(1000, seed=0), synthetic_corpus(40, seed=1)
    rows = [
        (["<s>", "<s>", *s, "</s>"][i - 2 : i], w)
        for s in heldout
        for i, w in enumerate([*s, "</s>"], start=2)
    ]
    return train, heldout, Reference(train, 3), rows


def test_modified_discounts_match_the_reference(synthetic):
    train, _, ref, _ = synthetic
    model = KneserNeyLM(3, modified=True).fit(train)
    for k in (1, 2, 3):
        expected = ref.discounts(k, continuation=k < 3)
        assert all(
            0 <= expected[j] <= j for j in (1, 2, 3)
        )  # in range: no fallback to the plain discount
        assert len(set(np.round(expected[1:], 6))) == 3
        np.testing.assert_allclose(model.discounts[k], expected, rtol=1e-12)


@pytest.mark.parametrize(
    "name", ["add-k", "jelinek-mercer", "back-off", "kn", "modified-kn", "interp-abs"]
)
def test_probabilities_match_the_reference(synthetic, name):
    train, heldout, ref, rows = synthetic
    ref_ordinary = Reference(train, 3, continuation=False)
    model, reference = {
        "add-k": (AddKLM(3, 0.1), lambda w, h: ref.add_k(w, h, 0.1)),
        "jelinek-mercer": (
            JelinekMercerLM(3, [0.9, 0.6, 0.4]),
            lambda w, h: ref.jelinek_mercer(w, h, 3, [0.9, 0.6, 0.4]),
        ),
        "back-off": (BackoffLM(3, 0.7), lambda w, h: ref.backoff(w, h, 3, 0.7)),
        "kn": (KneserNeyLM(3, 0.8), lambda w, h: ref.kn(w, h, 3, 0.8)),
        "modified-kn": (KneserNeyLM(3, modified=True), lambda w, h: ref.kn(w, h, 3)),
        "interp-abs": (
            KneserNeyLM(
                3, 0.8, continuation=False
            ),  # KN's equations, ordinary counts everywhere
            lambda w, h: ref_ordinary.kn(w, h, 3, 0.8),
        ),
    }[name]
    model.fit(train)
    expected = np.array([reference(w, h) for h, w in rows])
    assert np.all(expected > 0) and len(expected) == len(model.windows(heldout))
    np.testing.assert_allclose(
        model.prob_windows(model.windows(heldout)), expected, rtol=1e-10
    )
