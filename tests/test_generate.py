"""Tests of lmlib.generate (chapter 05): filters keep exactly the right tokens, sampling is seeded and follows
the distribution, and a state-carrying generate loop equals re-reading the prefix with a full-sequence model."""

import os

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
    assert np.array_equal(
        filtered[[1, 2, 3]], logits[[1, 2, 3]]
    )  # kept logits are unchanged
    assert kept(top_k_filter(logits, 5)) == [0, 1, 2, 3, 4]
    assert kept(top_k_filter(logits, 99)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        top_k_filter(logits, 0)


def test_top_k_ties_at_the_boundary_keep_the_lower_indices():
    logits = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    assert kept(top_k_filter(logits, 2)) == [1, 2]
    assert kept(top_k_filter(logits, 3)) == [1, 2, 3]


def test_top_p_keeps_the_smallest_set_reaching_p():
    # probabilities 0.125, 0.5, 0.125, 0.25 (exact in binary): sorted 0.5 (1), 0.25 (3), 0.125 (0), 0.125 (2)
    logits = np.log(np.array([0.125, 0.5, 0.125, 0.25]))
    assert kept(top_p_filter(logits, 0.01)) == [1]
    assert kept(top_p_filter(logits, 0.5)) == [
        1
    ]  # boundary: 0.5 reaches p exactly, nothing more is needed
    assert kept(top_p_filter(logits, 0.51)) == [1, 3]
    assert kept(top_p_filter(logits, 0.75)) == [
        1,
        3,
    ]  # boundary again: 0.5 + 0.25 = 0.75
    assert kept(top_p_filter(logits, 0.76)) == [
        0,
        1,
        3,
    ]  # a tie at 0.125: the lower index goes first
    assert kept(top_p_filter(logits, 0.875)) == [0, 1, 3]
    assert kept(top_p_filter(logits, 0.9)) == [0, 1, 2, 3]
    assert kept(top_p_filter(logits, 1.0)) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        top_p_filter(logits, 0.0)


def test_top_p_always_keeps_at_least_the_most_probable_token():
    logits = np.array([0.0, 10.0, 0.0])
    assert kept(top_p_filter(logits, 1e-12)) == [1]


def test_temperature_to_zero_equals_greedy():
    rng = np.random.default_rng(0)
    for _ in range(50):
        logits = rng.normal(size=20) * 3
        assert sample_logits(logits, temperature=0) == greedy(logits)
        assert sample_logits(logits, temperature=1e-4, rng=rng) == greedy(logits)
    with pytest.raises(ValueError):
        sample_logits(np.zeros(3), temperature=-1.0)


def test_seeded_sampling_is_reproducible():
    logits = np.log(np.array([0.4, 0.3, 0.2, 0.1]))
    first = [sample_logits(logits, rng=np.random.default_rng(7)) for _ in range(3)]
    rng_a, rng_b = np.random.default_rng(123), np.random.default_rng(123)
    draws_a = [sample_logits(logits, top_p=0.9, rng=rng_a) for _ in range(200)]
    draws_b = [sample_logits(logits, top_p=0.9, rng=rng_b) for _ in range(200)]
    assert draws_a == draws_b
    assert len(set(first)) == 1


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
    """The frequency check above can fail: draws from one distribution against another are rejected."""
    rng = np.random.default_rng(2024)
    draws = [
        sample_logits(np.log(np.array([0.5, 0.3, 0.15, 0.05])), rng=rng)
        for _ in range(20_000)
    ]
    assert chi_square(draws, np.array([0.45, 0.35, 0.15, 0.05])) > 16.27


@pytest.fixture(scope="module")
def tiny_gru():
    """A tiny Keras Embedding -> GRU -> Dense model with fixed random weights, and its one-step twin."""
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
    assert (
        calls == sequence[:-1]
    )  # each token fed once, in order, the last generated one not yet
    full_logits = np.asarray(full(np.array([sequence[:-1]], np.int32)))[
        0
    ]  # (len - 1, vocab)
    assert np.abs(np.array(seen_logits) - full_logits).max() <= 1e-5
    # the reported log-probabilities are those of the unmodified distribution before each new token
    expected = [
        log_softmax(full_logits[len(prompt) - 1 + i])[t] for i, t in enumerate(out.ids)
    ]
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
    assert distinct_n(["a"], 2) == 0.0
    assert distinct_n("abcabc", 3) == pytest.approx(3 / 4)  # works on characters too


def test_repetition_rate_on_hand_examples():
    words = "the cat sat on the cat sat on".split()
    assert repetition_rate(words, 4) == pytest.approx(
        1 / 5
    )  # only the last 4-gram repeats
    assert repetition_rate("a b a b a b".split(), 2) == pytest.approx(3 / 5)
    assert repetition_rate("a b c d e".split(), 2) == 0.0
    assert repetition_rate(["a", "b"], 4) == 0.0
    for tokens in ["x y x y z".split(), list("mississippi")]:
        assert repetition_rate(tokens, 2) == pytest.approx(1 - distinct_n(tokens, 2))
