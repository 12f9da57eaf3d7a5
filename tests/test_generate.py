"""Tests of lmlib.generate.

Chapter 05: filters keep exactly the right tokens, sampling is seeded and follows the
distribution (temperature, then top-k, then top-p), a tiny temperature does not
overflow, and a state-carrying generate loop equals re-reading the prefix with a
full-sequence model.

Chapter 06: take_rows reorders nests of NumPy arrays and TensorFlow tensors; batched
greedy decoding stops at the end token and at max_len; beam search of width 1 equals
greedy decoding, a beam wider than all hypotheses equals exhaustive search, its
log-probabilities equal a re-run of the step function, beam 2 beats greedy on a
hand-built model, and length_alpha decides between a short and a long hypothesis."""

import os
import warnings
from typing import NamedTuple

import numpy as np
import pytest

from lmlib.generate import (
    beam_search,
    distinct_n,
    generate,
    greedy,
    greedy_decode,
    log_softmax,
    normalised_score,
    repetition_rate,
    sample_logits,
    take_rows,
    top_candidates,
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


# Chapter 06: batched greedy decoding and beam search over a step function

END, START = 0, 1


def random_model(seed: int = 0, vocab_size: int = 6, hidden_size: int = 5):
    """A batched step function over seeded random tables: the logits depend on the token
    fed, a hidden state and the tokens fed so far (repeats are penalised), both carried
    in the state, so a hypothesis given another's rows of the state gets other
    logits."""
    rng = np.random.default_rng(seed)
    embed = rng.normal(size=(vocab_size, hidden_size))
    recur = rng.normal(size=(hidden_size, hidden_size)) / np.sqrt(hidden_size)
    out = rng.normal(size=(hidden_size, vocab_size)) * 2

    def step_fn(token_ids, state):
        hidden, history = state
        assert hidden.shape[0] == history["fed"].shape[0] == len(token_ids)
        hidden = np.tanh(hidden @ recur + embed[token_ids])
        fed = np.concatenate([history["fed"], token_ids[:, None]], axis=1)
        counts = np.stack([np.bincount(row, minlength=vocab_size) for row in fed])
        return hidden @ out - 0.5 * counts, (hidden, {"fed": fed})

    return step_fn


def random_states(batch: int, hidden_size: int = 5, seed: int = 1):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(batch, hidden_size))
    return hidden, {"fed": np.zeros((batch, 0), np.int64)}


def rescored(step_fn, state, ids, end_id=None) -> float:
    """The log-probability of ``ids`` (then ``end_id`` if given) after START, feeding
    one token at a time: an independent re-run of the step function."""
    total, token = 0.0, START
    for next_token in list(ids) + ([] if end_id is None else [end_id]):
        logits, state = step_fn(np.array([token]), state)
        total += log_softmax(logits[0])[next_token]
        token = next_token
    return total


def table_model(vocab_size: int, rows: dict[int, dict[int, float]]):
    """A step function whose next-token distribution depends only on the token fed:
    ``rows[token]`` gives some next tokens' probabilities, the rest of the mass is
    spread evenly over the other tokens. Also returns the list of batch sizes it was
    fed."""
    probs = np.empty((vocab_size, vocab_size))
    for token in range(vocab_size):
        given = rows.get(token, {})
        probs[token] = (1 - sum(given.values())) / (vocab_size - len(given))
        for next_token, p in given.items():
            probs[token, next_token] = p
    assert (probs > 0).all() and np.allclose(probs.sum(axis=1), 1)
    calls = []

    def step_fn(token_ids, steps):
        assert steps.shape == token_ids.shape  # one row of state per hypothesis
        calls.append(len(token_ids))
        return np.log(probs[token_ids]), steps + 1

    return step_fn, calls


def test_take_rows_reorders_every_array_of_a_nest():
    class Pair(NamedTuple):
        left: np.ndarray
        right: np.ndarray

    a = np.arange(6).reshape(3, 2)
    b = np.array([10.0, 11.0, 12.0])
    c = np.arange(18).reshape(3, 3, 2)
    state = (a, {"b": b, "rest": [c, None]}, Pair(b, a))
    out = take_rows(state, [2, 0, 0, 1])
    assert isinstance(out, tuple) and isinstance(out[1]["rest"], list)
    assert np.array_equal(out[0], a[[2, 0, 0, 1]])
    assert np.array_equal(out[1]["b"], [12.0, 10.0, 10.0, 11.0])
    assert np.array_equal(out[1]["rest"][0], c[[2, 0, 0, 1]])
    assert out[1]["rest"][1] is None
    assert isinstance(out[2], Pair) and np.array_equal(out[2].right, a[[2, 0, 0, 1]])
    assert take_rows(a, np.array([1]))[0].tolist() == [2, 3]
    seen = []
    take_rows(state, [0], take_fn=lambda x, i: seen.append(x.shape) or x[i])
    assert seen == [(3, 2), (3,), (3, 3, 2), (3,), (3, 2)]


def test_take_rows_keeps_tensorflow_tensors_as_tensors():
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = pytest.importorskip("tensorflow")
    hidden = np.arange(12.0, dtype=np.float32).reshape(3, 4)
    mask = np.array([[True, False], [True, True], [False, False]])
    out = take_rows((tf.constant(hidden), {"mask": tf.constant(mask)}), [1, 1, 2])
    assert isinstance(out[0], tf.Tensor) and isinstance(out[1]["mask"], tf.Tensor)
    assert np.array_equal(out[0].numpy(), hidden[[1, 1, 2]])
    assert np.array_equal(out[1]["mask"].numpy(), mask[[1, 1, 2]])


def test_top_candidates_equals_a_full_sort_with_ties():
    rng = np.random.default_rng(4)
    for _ in range(30):
        totals = rng.integers(-3, 1, size=(3, 5)).astype(float)  # many ties
        totals[rng.random(totals.shape) < 0.2] = -np.inf
        ranked = sorted(
            (-value, row, token)
            for (row, token), value in np.ndenumerate(totals)
            if value > -np.inf
        )
        for n in [1, 2, 4, 7, 15, 40]:
            expected = [(row, token, -neg) for neg, row, token in ranked[:n]]
            assert top_candidates(totals, n) == expected


def countdown_step(token_ids, countdown):
    """Emits token 10 + c while the countdown c in the state is positive, then END;
    tokens 10 + c and 11 + c tie, so the lower id must win."""
    logits = np.zeros((len(token_ids), 20))
    for row, count in enumerate(countdown):
        logits[row, [10 + count, 11 + count] if count > 0 else END] = 1.0
    return logits, countdown - 1


def test_greedy_decode_stops_at_end_and_at_max_len():
    calls = []

    def step_fn(token_ids, countdown):
        calls.append(token_ids.tolist())
        return countdown_step(token_ids, countdown)

    countdowns = np.array([2, 0, 4])
    out = greedy_decode(step_fn, countdowns, [START] * 3, END, max_len=10)
    assert out == [[12, 11], [], [14, 13, 12, 11]]
    assert len(calls) == 5  # the longest needs 4 tokens and END, then it stops
    assert calls[:2] == [[START] * 3, [12, END, 14]]  # argmax tokens are fed back
    calls.clear()
    assert greedy_decode(step_fn, countdowns, [START] * 3, END, max_len=3) == [
        [12, 11],
        [],
        [14, 13, 12],
    ]
    assert len(calls) == 3
    for i, expected in enumerate(out):
        beam = beam_search(countdown_step, countdowns[[i]], START, END, beam_width=1)
        assert [h.ids for h in beam] == [expected]  # ties break the same way


def test_beam_width_1_equals_greedy_decode():
    step_fn, batch, max_len = random_model(), 8, 6
    states = random_states(batch)
    greedy_ids = greedy_decode(step_fn, states, [START] * batch, END, max_len)
    # both ways out of the loop are exercised: END emitted, and max_len reached
    assert {len(ids) == max_len for ids in greedy_ids} == {True, False}
    for alpha in [0.0, 0.6, 1.0, 2.0]:
        for i in range(batch):
            state = take_rows(states, [i])
            beam = beam_search(step_fn, state, START, END, 1, max_len, alpha)
            assert len(beam) == 1 and beam[0].ids == greedy_ids[i]


def test_beam_search_logprobs_equal_a_re_run_of_the_step_function():
    step_fn, max_len = random_model(seed=2, vocab_size=8), 7
    for i in range(3):
        state = take_rows(random_states(3, seed=3), [i])
        beam = beam_search(step_fn, state, START, END, 4, max_len, length_alpha=0.7)
        assert len(beam) >= 1
        assert [h.score for h in beam] == sorted((h.score for h in beam), reverse=True)
        for h in beam:
            done = len(h.ids) < max_len  # finished (END not in ids) or truncated
            assert END not in h.ids
            assert h.logprob == pytest.approx(
                rescored(step_fn, state, h.ids, END if done else None), abs=1e-9
            )
            length = len(h.ids) + done
            assert h.score == pytest.approx(h.logprob / length**0.7)


def test_a_beam_wider_than_all_hypotheses_is_exhaustive_search():
    """With 4 tokens and 3 steps there are 1 + 3 + 9 sequences that end with END: a
    beam of 64 never drops one, so it must return all of them, scored exactly."""
    step_fn, max_len = random_model(seed=5, vocab_size=4), 3
    state = random_states(1, seed=6)
    every = (
        [()]
        + [(a,) for a in (1, 2, 3)]
        + [(a, b) for a in (1, 2, 3) for b in (1, 2, 3)]
    )
    for alpha in [0.0, 1.0]:
        beam = beam_search(step_fn, state, START, END, 64, max_len, alpha)
        expected = sorted(
            (
                normalised_score(
                    rescored(step_fn, state, ids, END), len(ids) + 1, alpha
                ),
                ids,
            )
            for ids in every
        )[::-1]
        assert [tuple(h.ids) for h in beam] == [ids for _, ids in expected]
        assert np.allclose([h.score for h in beam], [score for score, _ in expected])


def test_beam_2_finds_a_sequence_greedy_misses():
    """From START, A has p = 0.6 and B p = 0.39; after A no token has p above 0.35
    (END 0.35, the rest spread), after B END has p = 0.9. Greedy takes A then END,
    p = 0.21; B then END has p = 0.351."""
    a, b = 2, 3
    step_fn, calls = table_model(
        16, {START: {a: 0.6, b: 0.39}, a: {END: 0.35}, b: {END: 0.9}}
    )
    zero = np.zeros(1, np.int64)
    assert greedy_decode(step_fn, zero, [START], END, max_len=5) == [[a]]
    greedy_logprob = np.log(0.6) + np.log(0.35)
    calls.clear()
    best = beam_search(step_fn, zero, START, END, beam_width=2, max_len=5)
    assert [h.ids for h in best] == [[b], [a]]
    assert calls == [1, 2]  # both hypotheses finished at step 2: the search stops
    assert best[0].logprob == pytest.approx(np.log(0.39) + np.log(0.9))
    assert best[1].logprob == pytest.approx(greedy_logprob)
    assert best[0].logprob > greedy_logprob + 0.5
    assert beam_search(step_fn, zero, START, END, beam_width=1)[0].ids == [a]


def test_length_alpha_decides_between_a_short_and_a_long_hypothesis():
    """END at once has p = 0.4; A, C, END has p = 0.55 * 0.7 * 0.8 = 0.308, a lower
    total but a higher per-token log-probability."""
    a, c = 2, 3
    step_fn, _ = table_model(
        8, {START: {END: 0.4, a: 0.55}, a: {c: 0.7}, c: {END: 0.8}}
    )
    zero = np.zeros(1, np.int64)
    raw = beam_search(step_fn, zero, START, END, beam_width=2, length_alpha=0.0)
    assert [h.ids for h in raw] == [[], [a, c]]
    assert [h.score for h in raw] == pytest.approx([np.log(0.4), np.log(0.308)])
    for alpha in [0.5, 1.0]:
        normalised = beam_search(step_fn, zero, START, END, 2, length_alpha=alpha)
        assert [h.ids for h in normalised] == [[a, c], []]
        assert normalised[0].score == pytest.approx(np.log(0.308) / 3**alpha)


def test_beam_search_on_a_keras_model_with_a_tensorflow_state(tiny_gru):
    """The decoder state stays a TensorFlow tensor (reordered by keras.ops.take) and
    gives the same hypotheses as the same state converted to NumPy at every step."""
    import tensorflow as tf

    _, step, units = tiny_gru
    state_is_tensor = []

    def tf_step(token_ids, state):
        state_is_tensor.append(isinstance(state, tf.Tensor))
        tokens = tf.constant(token_ids[:, None], tf.int32)  # Keras won't mix kinds
        logits, new_state = step([tokens, state])
        return np.asarray(logits)[:, 0], new_state

    def numpy_step(token_ids, state):
        logits, new_state = tf_step(token_ids, tf.constant(state))
        return logits, np.asarray(new_state)

    zero = np.zeros((1, units), np.float32)
    on_tf = beam_search(tf_step, tf.constant(zero), START, END, 3, max_len=6)
    assert len(state_is_tensor) > 1 and all(state_is_tensor)  # never NumPy on the way
    on_numpy = beam_search(numpy_step, zero, START, END, 3, max_len=6)
    assert [h.ids for h in on_tf] == [h.ids for h in on_numpy]
    assert np.allclose([h.logprob for h in on_tf], [h.logprob for h in on_numpy])
    greedy_ids = greedy_decode(numpy_step, zero, [START], END, max_len=6)
    assert (
        beam_search(tf_step, tf.constant(zero), START, END, 1, 6)[0].ids
        == greedy_ids[0]
    )


def test_decoders_refuse_bad_arguments():
    step_fn, zero = random_model(), random_states(1)
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(step_fn, zero, START, END, beam_width=0)
    with pytest.raises(ValueError, match="max_len"):
        beam_search(step_fn, zero, START, END, max_len=0)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(step_fn, zero, [START], END, max_len=0)
    with pytest.raises(ValueError, match="start_ids"):
        greedy_decode(step_fn, zero, [[START]], END)

    def unbatched_step(token_ids, state):  # (k, 1, V), as a Keras model returns them
        logits, state = step_fn(token_ids, state)
        return logits[:, None], state

    with pytest.raises(ValueError, match="logits of shape"):
        beam_search(unbatched_step, zero, START, END)
