"""Tests of lmlib.generate (chapter 05): filters keep exactly the right tokens, sampling
is seeded and follows the distribution (temperature, then top-k, then top-p), a tiny
temperature does not overflow, and a state-carrying generate loop equals re-reading the
prefix with a full-sequence model."""

import os
import warnings

import numpy as np
import pytest

from lmlib.generate import (
    distinct_n,
    generate,
    greedy,
    log_softmax,
    repetition_rate,
    sample_logits,
    top_k_filter,
    top_p_filter,
)


def kept(filtered: np.ndarray) -> list[int]:
    return [int(i) for i in np.flatnonzero(np.isfinite(filtered))]


def test_log_softmax_is_stable_and_normalised():
    logits = np.array([1000.0, 999.0, -1000.0])
    logp = log_softmax(logits)
    assert np.isfinite(logp).all()
    assert abs(np.exp(logp).sum() - 1) < 1e-12
    assert abs(logp[0] - logp[1] - 1.0) < 1e-12


def test_greedy_takes_the_argmax_and_the_lowest_index_on_ties():
    assert greedy(np.array([0.1, 2.0, -1.0])) == 1
    assert greedy(np.array([3.0, 1.0, 3.0])) == 0


def test_top_k_keeps_exactly_the_k_highest():
    logits = np.array([1.0, 5.0, 3.0, 4.0, 2.0])
    assert kept(top_k_filter(logits, 1)) == [1]
    assert kept(top_k_filter(logits, 2)) == [1, 3]
    assert kept(top_k_filter(logits, 3)) == [1, 2, 3]
    filtered = top_k_filter(logits, 3)
    # kept logits are unchanged
    assert np.array_equal(filtered[[1, 2, 3]], logits[[1, 2, 3]])
    assert kept(top_k_filter(logits, 5)) == [0, 1, 2, 3, 4]
    assert kept(top_k_filter(logits, 99)) == [0, 1, 2, 3, 4]
    assert kept(top_k_filter(logits, np.int64(2))) == [1, 3]  # NumPy integers are fine
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)


@pytest.mark.parametrize("k", [2.0, 0.9, 2.5, "2"])
def test_top_k_must_be_an_integer(k):
    """A float k is refused, not rounded: it is usually a top-p value misplaced."""
    with pytest.raises(TypeError):
        top_k_filter(np.arange(5.0), k)
    with pytest.raises(TypeError):
        sample_logits(np.arange(5.0), top_k=k, rng=np.random.default_rng(0))


def test_top_k_ties_at_the_boundary_keep_the_lower_indices():
    logits = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    assert kept(top_k_filter(logits, 2)) == [1, 2]
    assert kept(top_k_filter(logits, 3)) == [1, 2, 3]


def test_top_p_keeps_the_smallest_set_reaching_p():
    # probabilities 0.125, 0.5, 0.125, 0.25 (exact in binary):
    # sorted 0.5 (1), 0.25 (3), 0.125 (0), 0.125 (2)
    logits = np.log(np.array([0.125, 0.5, 0.125, 0.25]))
    assert kept(top_p_filter(logits, 0.01)) == [1]
    # boundary: 0.5 reaches p exactly, nothing more is needed
    assert kept(top_p_filter(logits, 0.5)) == [1]
    assert kept(top_p_filter(logits, 0.51)) == [1, 3]
    # boundary again: 0.5 + 0.25 = 0.75
    assert kept(top_p_filter(logits, 0.75)) == [1, 3]
    # a tie at 0.125: the lower index goes first
    assert kept(top_p_filter(logits, 0.76)) == [0, 1, 3]
    assert kept(top_p_filter(logits, 0.875)) == [0, 1, 3]
    assert kept(top_p_filter(logits, 0.9)) == [0, 1, 2, 3]
    assert kept(top_p_filter(logits, 1.0)) == [0, 1, 2, 3]


@pytest.mark.parametrize("p", [0.0, -0.5, 1.0000001, 1.5, 90, float("nan")])
def test_top_p_outside_zero_one_raises(p):
    """p must lie in (0, 1]: a percentage such as 90 is not silently read as 1."""
    with pytest.raises(ValueError):
        top_p_filter(np.zeros(4), p)
    with pytest.raises(ValueError):
        sample_logits(np.zeros(4), top_p=p, rng=np.random.default_rng(0))


def test_top_p_always_keeps_at_least_the_most_probable_token():
    logits = np.array([0.0, 10.0, 0.0])
    assert kept(top_p_filter(logits, 1e-12)) == [1]


def test_temperature_to_zero_equals_greedy():
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(size=20) * 3
        assert sample_logits(logits, temperature=0) == greedy(logits)
        assert sample_logits(logits, temperature=1e-4, rng=rng) == greedy(logits)
    for bad in [-1.0, float("nan")]:
        with pytest.raises(ValueError):
            sample_logits(np.zeros(3), temperature=bad)


@pytest.mark.parametrize("temperature", [1e-320, 5e-324, 1e-300, 1e-200])
@pytest.mark.parametrize("offset", [0.0, -500.0, 500.0])
def test_tiny_temperature_does_not_overflow_and_returns_the_argmax(temperature, offset):
    """z / tau overflows to +-inf for a tiny tau (inf - inf = nan in the softmax);
    (z - max z) / tau cannot, and every draw is the argmax."""
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warning either
        for _ in range(50):
            logits = rng.normal(size=30) * 2 + offset
            for top in [dict(), dict(top_k=5), dict(top_p=0.5)]:
                token = sample_logits(logits, temperature, rng=rng, **top)
                assert token == greedy(logits)


def test_huge_temperature_is_uniform():
    logits = np.log(np.array([0.7, 0.2, 0.1]))
    rng = np.random.default_rng(5)
    draws = [sample_logits(logits, temperature=1e300, rng=rng) for _ in range(30_000)]
    assert chi_square(draws, np.full(3, 1 / 3)) < 13.82  # 0.999 quantile, df = 2


def test_seeded_sampling_is_reproducible():
    logits = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    first = [sample_logits(logits, rng=np.random.default_rng(7)) for _ in range(3)]
    rng_a, rng_b = np.random.default_rng(123), np.random.default_rng(123)
    draws_a = [sample_logits(logits, top_p=0.9, rng=rng_a) for _ in range(200)]
    draws_b = [sample_logits(logits, top_p=0.9, rng=rng_b) for _ in range(200)]
    assert draws_a == draws_b
    assert len(set(first)) == 1


# the distribution 0.5, 0.3, 0.15, 0.05 at temperature 2, top-p = 0.8: three tokens
SQRT_P = np.sqrt([0.5, 0.3, 0.15, 0.0])


def chi_square(draws: list[int], probs: np.ndarray) -> float:
    counts = np.bincount(draws, minlength=len(probs))
    expected = probs * len(draws)
    nonzero = expected > 0
    assert counts[~nonzero].sum() == 0, "a token of probability 0 was drawn"
    return float(((counts[nonzero] - expected[nonzero]) ** 2 / expected[nonzero]).sum())


@pytest.mark.parametrize(
    "options, expected",
    [
        (dict(), [0.5, 0.3, 0.15, 0.05]),
        (
            dict(temperature=0.5),
            np.array([0.5, 0.3, 0.15, 0.05]) ** 2
            / np.sum(np.array([0.5, 0.3, 0.15, 0.05]) ** 2),
        ),
        (dict(top_k=2), [0.625, 0.375, 0.0, 0.0]),
        (
            dict(top_p=0.8),
            [0.625, 0.375, 0.0, 0.0],
        ),  # 0.5 + 0.3 reaches 0.8: two tokens
        (dict(top_p=0.81), [0.5 / 0.95, 0.3 / 0.95, 0.15 / 0.95, 0.0]),
        # top-k, then top-p on the renormalised top-k distribution: after top_k=3 the
        # probabilities are 0.5, 0.3, 0.15 over 0.95; 0.526 + 0.316 reaches 0.8
        (dict(top_k=3, top_p=0.8), [0.625, 0.375, 0.0, 0.0]),
        # temperature first, then top-p: at tau = 2 the probabilities are proportional
        # to sqrt(p) = 0.379, 0.294, 0.208, 0.120 and three tokens are needed for 0.8
        # (top-p before the temperature would keep two)
        (dict(temperature=2.0, top_p=0.8), SQRT_P / SQRT_P.sum()),
    ],
)
def test_sampling_follows_the_filtered_distribution(options, expected):
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05])) + 2.0  # a shift must not matter
    rng = np.random.default_rng(2024)
    draws = [sample_logits(logits, rng=rng, **options) for _ in range(20_000)]
    expected = np.asarray(expected, dtype=float)
    # df <= 3: the 0.999 quantile of chi-square(3) is 16.27
    assert chi_square(draws, expected) < 16.27


def test_sampling_detects_a_wrong_distribution():
    """The frequency check above can fail: draws from one distribution are rejected
    against another."""
    rng = np.random.default_rng(2024)
    draws = [
        sample_logits(np.log(np.array([0.5, 0.3, 0.15, 0.05])), rng=rng)
        for _ in range(20_000)
    ]
    assert chi_square(draws, np.array([0.45, 0.35, 0.15, 0.05])) > 16.27


@pytest.fixture(scope="module")
def tiny_gru():
    """A tiny Keras Embedding -> GRU -> Dense model with fixed random weights, and its
    one-step twin."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(5)
    vocab, units = 11, 16
    embedding = keras.layers.Embedding(vocab, 8)
    gru = keras.layers.GRU(units, return_sequences=True, return_state=True)
    dense = keras.layers.Dense(vocab)
    ids = keras.Input((None,), dtype="int32")
    hidden, _ = gru(embedding(ids))
    full = keras.Model(ids, dense(hidden))
    token, state = keras.Input((1,), dtype="int32"), keras.Input((units,))
    hidden1, new_state = gru(embedding(token), initial_state=state)
    step = keras.Model([token, state], [dense(hidden1), new_state])
    return full, step, units


def test_generate_with_carried_state_equals_rereading_the_prefix(tiny_gru):
    full, step, units = tiny_gru
    seen_logits, calls = [], []

    def step_fn(token_id, state):
        logits, new_state = step([np.array([[token_id]], np.int32), state])
        logits = np.asarray(logits)[0, 0]
        seen_logits.append(logits)
        calls.append(token_id)
        return logits, np.asarray(new_state)

    prompt, n = [3, 1, 4, 1, 5], 20
    out = generate(
        step_fn,
        np.zeros((1, units), np.float32),
        prompt,
        n,
        temperature=1.0,
        rng=np.random.default_rng(0),
    )
    assert len(out.ids) == n and len(calls) == len(prompt) + n - 1
    sequence = prompt + out.ids
    # each token fed once, in order, the last generated one not yet
    assert calls == sequence[:-1]
    full_logits = np.asarray(full(np.array([sequence[:-1]], np.int32)))[0]  # (len-1, V)
    diff = np.abs(np.array(seen_logits) - full_logits).max()
    assert diff <= 1e-5 * np.abs(full_logits).max()
    # the reported log-probabilities are those of the unmodified distribution
    # before each new token
    first = len(prompt) - 1
    expected = [log_softmax(full_logits[first + i])[t] for i, t in enumerate(out.ids)]
    assert np.allclose(out.logprobs, expected, atol=1e-5)


def test_generate_is_reproducible_and_greedy_matches_rereading(tiny_gru):
    full, step, units = tiny_gru

    def step_fn(token_id, state):
        logits, new_state = step([np.array([[token_id]], np.int32), state])
        return np.asarray(logits)[0, 0], np.asarray(new_state)

    def reread_fn(token_id, prefix):
        prefix = prefix + [token_id]
        return np.asarray(full(np.array([prefix], np.int32)))[0, -1], prefix

    zero = np.zeros((1, units), np.float32)
    a = generate(step_fn, zero, [2, 7], 12, top_k=5, rng=np.random.default_rng(9))
    b = generate(step_fn, zero, [2, 7], 12, top_k=5, rng=np.random.default_rng(9))
    assert a.ids == b.ids
    assert (
        generate(step_fn, zero, [2, 7], 12, temperature=0).ids
        == generate(reread_fn, [], [2, 7], 12, temperature=0).ids
    )
    with pytest.raises(ValueError):
        generate(step_fn, zero, [], 3)


def test_distinct_n_on_hand_examples():
    assert distinct_n("a b a b a b".split(), 2) == pytest.approx(
        2 / 5
    )  # ab ba ab ba ab
    assert distinct_n("a b c d".split(), 2) == 1.0
    assert distinct_n("a a a a".split(), 1) == 0.25
    assert distinct_n("abcabc", 3) == pytest.approx(3 / 4)  # works on characters too
    assert distinct_n(["a", "b"], 2) == 1.0  # exactly n tokens: one n-gram


def test_repetition_rate_on_hand_examples():
    words = "the cat sat on the cat sat on".split()
    assert repetition_rate(words, 4) == pytest.approx(1 / 5)  # only the last repeats
    assert repetition_rate("a b a b a b".split(), 2) == pytest.approx(3 / 5)
    assert repetition_rate("a b c d e".split(), 2) == 0.0
    assert repetition_rate(["a", "b"], 2) == 0.0
    for tokens in ["x y x y z".split(), list("mississippi")]:
        assert repetition_rate(tokens, 2) == pytest.approx(1 - distinct_n(tokens, 2))


@pytest.mark.parametrize("measure", [distinct_n, repetition_rate])
def test_sequences_shorter_than_n_have_undefined_measures(measure):
    """No n-grams: the ratio is undefined, nan (skipped by np.nanmean), not 0 or 1."""
    for tokens in [[], ["a"], ["a", "b", "c"]]:
        assert np.isnan(measure(tokens, 4))
    assert np.nanmean(
        [measure(["a"], 2), measure(["a", "a", "a"], 2)]
    ) == pytest.approx(measure(["a", "a", "a"], 2))
    with pytest.raises(ValueError):
        measure(["a", "b"], 0)


def test_top_k_and_top_p_together_apply_top_p_to_the_top_k_distribution():
    # probabilities 0.5, 0.3, 0.15, 0.05: top_p = 0.6 alone keeps two (0.5 < 0.6);
    # after top_k = 2 the distribution is 0.625, 0.375, and 0.625 alone reaches 0.6
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(11)
    alone = {sample_logits(logits, top_p=0.6, rng=rng) for _ in range(500)}
    both = {sample_logits(logits, top_k=2, top_p=0.6, rng=rng) for _ in range(500)}
    assert alone == {0, 1} and both == {0}


def test_temperature_is_applied_before_top_p():
    # at tau = 0.5 the probabilities become 0.685, 0.247, 0.062, 0.007, so top_p = 0.6
    # keeps one token; top-p before the temperature would keep two (0.5 < 0.6)
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(12)
    draws = {sample_logits(logits, 0.5, top_p=0.6, rng=rng) for _ in range(500)}
    assert draws == {0}
    assert {sample_logits(logits, 1.0, top_p=0.6, rng=rng) for _ in range(500)} == {
        0,
        1,
    }
