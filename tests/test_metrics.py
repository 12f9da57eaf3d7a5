"""Tests of lmlib.metrics (chapter 06): corpus BLEU from scratch, checked by hand on
small cases (clipping, brevity penalty, the closest-reference-length rule) and against
sacreBLEU 2.6.0 (``tokenize="none"``, ``smooth_method="none"``) to 1e-6 on hand-made and
random corpora with a variable number of references per hypothesis.

sacreBLEU takes references as *streams*: stream k holds the k-th reference of every
segment, so all streams have one entry per hypothesis. For a variable number of
references, pad the shorter segments with ``None``: sacreBLEU drops ``None`` entries,
whereas ``""`` is kept as an empty reference (length 0, which can win the closest-length
rule and lower the brevity penalty's reference length). sacreBLEU does not check
lengths: streams or hypotheses of different lengths are silently truncated to the
shortest (``zip``), and a segment whose references are all ``None`` gives a reference
length of -1 (empty hypothesis) or a ``TypeError``.
:func:`lmlib.metrics.reference_streams` does the padding;
:func:`lmlib.metrics.corpus_bleu` raises on the mistakes instead.
"""

import math
import random
from collections import Counter

import pytest
from sacrebleu.metrics import BLEU

from lmlib.metrics import (
    BLEUScore,
    bleu_from_counts,
    brevity_penalty,
    clipped_counts,
    closest_ref_length,
    corpus_bleu,
    ngram_counts,
    reference_streams,
)


def sacrebleu_score(hypotheses, references, max_n=4, smooth_method="none"):
    """sacreBLEU's corpus BLEU of the same tokenised corpus."""
    bleu = BLEU(
        tokenize="none", smooth_method=smooth_method, force=True, max_ngram_order=max_n
    )
    return bleu.corpus_score(
        [" ".join(h) for h in hypotheses], reference_streams(references)
    )


def assert_equals_sacrebleu(hypotheses, references, max_n=4) -> BLEUScore:
    """Our BLEU equals sacreBLEU's to 1e-6 in every field; returns ours."""
    ours = corpus_bleu(hypotheses, references, max_n=max_n)
    theirs = sacrebleu_score(hypotheses, references, max_n=max_n)
    assert abs(ours.score - theirs.score) <= 1e-6, (ours, theirs)
    assert len(ours.precisions) == max_n
    for mine, reference in zip(ours.precisions, theirs.precisions, strict=True):
        assert abs(mine - reference) <= 1e-6, (ours, theirs)
    assert abs(ours.brevity_penalty - theirs.bp) <= 1e-6
    assert abs(ours.ratio - theirs.ratio) <= 1e-6
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)
    assert ours.matches == list(theirs.counts)
    assert ours.totals == list(theirs.totals)
    assert str(ours) == str(theirs)  # same print-out, e.g. "BLEU = 45.48 83.3/..."
    return ours


def split_all(sentences):
    return [s.split() for s in sentences]


# --- the pieces, by hand --------------------------------------------------------------


def test_ngram_counts_counts_tuples_and_is_empty_for_short_inputs():
    assert ngram_counts("a b a b".split(), 2) == Counter({("a", "b"): 2, ("b", "a"): 1})
    assert ngram_counts("a b a".split(), 1) == Counter({("a",): 2, ("b",): 1})
    assert ngram_counts(["a", "b"], 3) == Counter()
    assert ngram_counts([], 1) == Counter()
    with pytest.raises(ValueError, match="at least 1"):
        ngram_counts(["a"], 0)


def test_clipping_papineni_the_the_the():
    # Papineni et al. (2002), section 2.1: "the" occurs 7 times in the candidate, at
    # most twice in a reference (reference 1), so the modified unigram precision is 2/7.
    candidate = "the the the the the the the".split()
    refs = split_all(["the cat is on the mat", "there is a cat on the mat"])
    assert clipped_counts(candidate, refs, 1) == (2, 7)
    assert clipped_counts(candidate, refs, 2) == (0, 6)  # "the the" is in no reference
    score = corpus_bleu([candidate], [refs])
    assert abs(score.precisions[0] - 100 * 2 / 7) < 1e-12
    assert score.score == 0.0  # no bigram matches, no smoothing


def test_clipping_takes_the_maximum_over_references_not_the_sum():
    # "the": 3 in the hypothesis, 1 in ref 1 and 2 in ref 2 -> clipped at max = 2 (a sum
    # over references would allow 3).
    refs = split_all(["the cat", "the dog the"])
    assert clipped_counts("the the the".split(), refs, 1) == (2, 3)


def test_closest_ref_length_prefers_the_shorter_on_ties():
    assert closest_ref_length(4, [3, 5]) == 3
    assert closest_ref_length(4, [5, 3]) == 3  # not the first one listed
    assert closest_ref_length(4, [6, 5, 1]) == 5
    assert closest_ref_length(7, [2, 9]) == 9
    assert closest_ref_length(2, [0, 4]) == 0
    assert closest_ref_length(4, [4, 3, 5]) == 4


def test_brevity_penalty():
    assert brevity_penalty(10, 10) == 1.0
    assert brevity_penalty(12, 10) == 1.0
    assert brevity_penalty(5, 10) == pytest.approx(math.exp(-1.0), abs=1e-15)
    assert brevity_penalty(0, 10) == 0.0
    assert brevity_penalty(0, 0) == 1.0  # as sacreBLEU (c < r is false)


def test_hand_computed_bleu_one_sentence_with_clipping_and_brevity():
    # hyp (6 tokens): the cat sat on the mat
    # ref (7 tokens): the cat sat on a red mat
    # 1-grams: the(2, clipped to 1) cat sat on mat      -> 5/6
    # 2-grams: the cat, cat sat, sat on | on the, the mat -> 3/5
    # 3-grams: the cat sat, cat sat on | sat on the, on the mat -> 2/4
    # 4-grams: the cat sat on | cat sat on the, sat on the mat -> 1/3
    # geometric mean = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** (1/4)
    # BP = exp(1 - 7/6) = exp(-1/6); BLEU = 100 * exp(-1/6) * 12 ** (-1/4) = 45.48...
    hyp = "the cat sat on the mat".split()
    ref = "the cat sat on a red mat".split()
    score = corpus_bleu([hyp], [[ref]])
    assert score.matches == [5, 3, 2, 1]
    assert score.totals == [6, 5, 4, 3]
    expected = [100 * 5 / 6, 100 * 3 / 5, 100 * 2 / 4, 100 * 1 / 3]
    assert score.precisions == pytest.approx(expected, abs=1e-12)
    assert score.brevity_penalty == pytest.approx(math.exp(-1 / 6), abs=1e-15)
    assert score.score == pytest.approx(100 * math.exp(-1 / 6) * 12**-0.25, abs=1e-12)
    assert (score.sys_len, score.ref_len) == (6, 7)
    assert score.ratio == pytest.approx(6 / 7)
    assert str(score).startswith("BLEU = 45.48 83.3/60.0/50.0/33.3 (BP = 0.846 ")
    assert_equals_sacrebleu([hyp], [[ref]])


def test_corpus_bleu_sums_counts_before_dividing():
    # Two sentences; corpus precisions are ratios of sums, not means of ratios:
    # 1: "a b c d" vs "a b c d" -> 4/4, 3/3, 2/2, 1/1
    # 2: "a x" vs "a y"         -> 1/2, 0/1, 0/0, 0/0
    # corpus: 5/6, 3/4, 2/2, 1/1; lengths 6 vs 6 -> BP = 1
    # BLEU = 100 * (5/6 * 3/4) ** (1/4)
    hyps = split_all(["a b c d", "a x"])
    refs = [[["a", "b", "c", "d"]], [["a", "y"]]]
    score = corpus_bleu(hyps, refs)
    assert score.matches == [5, 3, 2, 1] and score.totals == [6, 4, 2, 1]
    assert score.score == pytest.approx(100 * (5 / 6 * 3 / 4) ** 0.25, abs=1e-12)
    assert_equals_sacrebleu(hyps, refs)


def test_bleu_from_counts_zero_totals_give_zero_precision_and_score():
    score = bleu_from_counts([2, 1, 0, 0], [2, 1, 0, 0], sys_len=2, ref_len=2)
    assert score.precisions == [100.0, 100.0, 0.0, 0.0]
    assert score.score == 0.0


def test_max_n_changes_the_orders():
    hyps = split_all(["a b c x", "b c"])
    refs = [split_all(["a b c d"]), split_all(["b c d", "b"])]
    two = assert_equals_sacrebleu(hyps, refs, max_n=2)
    assert len(two.precisions) == 2 and two.score > 0
    assert assert_equals_sacrebleu(hyps, refs, max_n=4).score == 0.0  # no 4-gram match
    one = assert_equals_sacrebleu(hyps, refs, max_n=1)
    assert one.precisions == pytest.approx([100 * 5 / 6])


# --- equal to sacreBLEU ---------------------------------------------------------------


def test_perfect_match_is_100():
    hyps = split_all(["a man rides a horse .", "two dogs play in the snow"])
    score = assert_equals_sacrebleu(hyps, [[h] for h in hyps])
    assert score.score == pytest.approx(100.0, abs=1e-12)
    assert score.brevity_penalty == 1.0


def test_zero_four_gram_matches_give_zero_both_ways():
    hyps = split_all(["the cat sat on the mat"])
    refs = [split_all(["the cat is on the mat"])]  # 5/6, 3/5, 1/4, 0/3
    score = assert_equals_sacrebleu(hyps, refs)
    assert score.score == 0.0
    assert score.matches == [5, 3, 1, 0]
    assert score.precisions[0] > 0


def test_no_matches_at_all():
    hyps = split_all(["a b c", "d e"])
    refs = [split_all(["x y z"]), split_all(["u v", "w"])]
    score = assert_equals_sacrebleu(hyps, refs)
    assert score.score == 0.0 and score.matches == [0, 0, 0, 0]


def test_multiple_references_of_different_lengths_closest_length_with_a_tie():
    hyps = split_all(
        [
            "w x y z",  # 4 tokens; refs 5 and 3 tie -> 3
            "p q r s t u",  # 6 tokens; refs 2, 7, 9 -> 7
            "a b",  # 2 tokens; one ref of 2
        ]
    )
    refs = [
        split_all(["w x y z q", "w x y"]),
        split_all(["p q", "p q r s t u v", "p q r s t u v w x"]),
        split_all(["a b"]),
    ]
    score = assert_equals_sacrebleu(hyps, refs)
    assert score.ref_len == 3 + 7 + 2
    assert score.sys_len == 4 + 6 + 2
    assert score.brevity_penalty == 1.0 and score.score > 0


def test_random_corpus_with_one_to_three_references():
    rng = random.Random(2024)
    vocab = "a b c d e f".split()

    def sentence():
        return [rng.choice(vocab) for _ in range(rng.randint(0, 12))]

    refs = [[sentence() for _ in range(rng.randint(1, 3))] for _ in range(200)]
    # hypotheses: a noisy copy of the first reference (so that 4-grams match), or random
    hyps = []
    for segment_refs in refs:
        base = list(segment_refs[0]) if rng.random() < 0.7 else sentence()
        hyps.append([t if rng.random() < 0.8 else rng.choice(vocab) for t in base])
    assert {len(r) for r in refs} == {1, 2, 3}
    score = assert_equals_sacrebleu(hyps, refs)
    assert 0 < score.score < 100
    assert all(m > 0 for m in score.matches)
    assert_equals_sacrebleu(hyps, refs, max_n=3)


def test_short_hypothesis_and_empty_hypothesis_lower_the_brevity_penalty():
    hyps = split_all(["the cat", "a dog runs in the park", ""])
    refs = [
        split_all(["the cat sat", "the cat sat down"]),  # shorter than all: 2 vs 3
        split_all(["a dog runs in the park"]),
        split_all(["nothing here"]),  # empty hypothesis: closest ref length 2
    ]
    score = assert_equals_sacrebleu(hyps, refs)
    assert (score.sys_len, score.ref_len) == (8, 11)
    assert score.brevity_penalty == pytest.approx(math.exp(1 - 11 / 8))
    assert 0 < score.score < 100


def test_all_hypotheses_empty():
    score = assert_equals_sacrebleu([[], []], [split_all(["a b"]), split_all(["c"])])
    assert score.score == 0.0 and score.brevity_penalty == 0.0 and score.sys_len == 0


def test_sacrebleu_drops_none_but_keeps_an_empty_reference():
    # hyp "x y" (2 tokens) with refs "x y z w" (4) and "" (0): a tie at distance 2 ->
    # the shorter, 0. With None instead of "" only the 4-token reference remains.
    hyps = ["x y"]
    bleu = BLEU(tokenize="none", smooth_method="none", force=True)
    assert bleu.corpus_score(hyps, [["x y z w"], [""]]).ref_len == 0
    assert bleu.corpus_score(hyps, [["x y z w"], [None]]).ref_len == 4
    # our empty reference is sacreBLEU's "" (the helper joins [] to "")
    score = assert_equals_sacrebleu([["x", "y"]], [[["x", "y", "z", "w"], []]])
    assert score.ref_len == 0


def test_default_exp_smoothing_equals_none_without_zero_precisions():
    # The chapter may report sacreBLEU's default signature (smooth:exp): it changes
    # nothing unless some n-gram order has no match.
    hyps = split_all(["the cat sat on the mat", "a dog is here"])
    refs = [split_all(["the cat sat on a mat"]), split_all(["a dog is here", "a dog"])]
    assert min(corpus_bleu(hyps, refs).matches) > 0
    exp = sacrebleu_score(hyps, refs, smooth_method="exp")
    assert abs(exp.score - corpus_bleu(hyps, refs).score) <= 1e-6
    # ... but with a zero 4-gram precision, exp smoothing gives a positive score
    hyps, refs = [["a", "b", "c", "d", "e"]], [[["a", "b", "c", "x", "e"]]]
    assert corpus_bleu(hyps, refs).score == 0.0
    assert sacrebleu_score(hyps, refs, smooth_method="exp").score > 40


# --- errors ---------------------------------------------------------------------------


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="2 hypotheses but 1 lists of references"):
        corpus_bleu([["a"], ["b"]], [[["a"]]])


def test_a_hypothesis_without_references_raises():
    with pytest.raises(ValueError, match="hypothesis 1 has no references"):
        corpus_bleu([["a"], ["b"]], [[["a"]], []])


def test_max_n_below_one_raises():
    with pytest.raises(ValueError, match="max_n must be at least 1, not 0"):
        corpus_bleu([["a"]], [[["a"]]], max_n=0)


def test_empty_corpus_raises():
    with pytest.raises(ValueError, match="empty corpus"):
        corpus_bleu([], [])


def test_strings_instead_of_token_lists_raise():
    with pytest.raises(TypeError, match="segment 0: .* lists of tokens"):
        corpus_bleu(["a b"], [[["a", "b"]]])
    with pytest.raises(TypeError, match=r"wrap a single reference as \[tokens\]"):
        corpus_bleu([["a", "b"]], [["a", "b"]])  # references not wrapped in a list
