"""lmlib.embeddings: corpus streaming, subsampling, skip-gram pairs, noise distribution,
the Keras SGNS model and its data pipeline."""

import numpy as np
import pytest

from lmlib.embeddings import (
    LineCorpus,
    SkipGramNS,
    benchmark_scores,
    keep_probabilities,
    keyed_vectors,
    noise_distribution,
    sgns_dataset,
    sgns_loss,
    skipgram_pairs,
    subsample,
    word_counts,
)


def test_line_corpus_streams_lowercases_skips_and_cuts(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(" = Title = \nThe Cat sat\n\n a b c d e \n", encoding="utf-8")
    corpus = LineCorpus(
        path, skip_line=lambda line: line.startswith(" = "), max_length=2
    )
    expected = [["the", "cat"], ["sat"], ["a", "b"], ["c", "d"], ["e"]]
    assert list(corpus) == expected
    assert list(corpus) == expected  # re-iterable
    assert word_counts(corpus)["the"] == 1


def test_noise_distribution_is_count_to_the_three_quarters():
    counts = np.array([1, 16, 81])
    noise = noise_distribution(counts)
    assert noise.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(noise, np.array([1, 8, 27]) / 36)
    np.testing.assert_allclose(
        noise_distribution(counts, power=1.0), counts / counts.sum()
    )


def test_keep_probabilities_follow_both_formulas():
    counts = np.array([1000, 100, 1])  # total 1101
    t = 0.01
    f = counts / counts.sum()
    np.testing.assert_allclose(
        keep_probabilities(counts, t, "paper"), np.minimum(1, np.sqrt(t / f))
    )
    np.testing.assert_allclose(
        keep_probabilities(counts, t, "word2vec"), np.minimum(1, np.sqrt(t / f) + t / f)
    )
    assert keep_probabilities(counts, t)[-1] == 1.0
    with pytest.raises(ValueError):
        keep_probabilities(counts, t, "other")


def test_subsample_uses_the_probabilities_and_is_deterministic():
    sentence = np.zeros(20_000, np.int32)
    sentence[::2] = 1
    keep = np.array([0.25, 1.0])
    kept = subsample([sentence], keep, seed=3)[0]
    assert (kept == 1).sum() == 10_000
    assert abs((kept == 0).sum() / 10_000 - 0.25) < 0.02
    np.testing.assert_array_equal(kept, subsample([sentence], keep, seed=3)[0])


def test_fixed_window_pairs_are_exactly_the_neighbours():
    sentences = [np.array([10, 11, 12, 13]), np.array([20, 21])]
    centres, contexts = skipgram_pairs(sentences, window=2, dynamic_window=False)
    got = sorted(zip(centres.tolist(), contexts.tolist(), strict=True))
    expected = sorted(
        [
            (10, 11),
            (11, 10),
            (11, 12),
            (12, 11),
            (12, 13),
            (13, 12),  # distance 1
            (10, 12),
            (12, 10),
            (11, 13),
            (13, 11),  # distance 2
            (20, 21),
            (21, 20),
        ]
    )  # never across the sentence boundary
    assert got == expected


def test_dynamic_window_pairs_no_self_pairs_and_seeded():
    rng = np.random.default_rng(0)
    sentences = [
        rng.permutation(50) for _ in range(20)
    ]  # distinct ids: a self-pair would show as c == o
    centres, contexts = skipgram_pairs(sentences, window=5, seed=1)
    assert not np.any(centres == contexts)
    full_c, _ = skipgram_pairs(sentences, window=5, dynamic_window=False)
    assert len(centres) < len(full_c)
    assert (
        abs(len(centres) / 1000 - 6) < 0.5
    )  # ~ 2 * mean(1..5) = 6 pairs per token, less at the edges
    again = skipgram_pairs(sentences, window=5, seed=1)
    np.testing.assert_array_equal(centres, again[0])
    np.testing.assert_array_equal(contexts, again[1])


def test_sgns_loss_matches_the_formula():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4)).astype(np.float32)
    labels = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], np.float32), (3, 1))

    def log_sigmoid(x):
        return -np.log1p(np.exp(-x))

    expected = -(
        log_sigmoid(logits[:, 0]) + log_sigmoid(-logits[:, 1:]).sum(axis=1)
    ).mean()
    assert float(sgns_loss(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_model_shapes_and_initial_loss():
    model = SkipGramNS(vocab_size=7, dim=4)
    logits = model((np.array([0, 1, 2]), np.array([[1, 2, 3], [4, 5, 6], [0, 1, 2]])))
    assert tuple(logits.shape) == (3, 3)
    assert model.word_vectors().shape == (7, 4)
    labels = np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (3, 1))
    assert float(sgns_loss(labels, logits)) == pytest.approx(
        3 * np.log(2), rel=1e-5
    )  # context table is zero


def test_dataset_batches_and_noise():
    centres, contexts = (
        np.arange(10, dtype=np.int32),
        np.arange(10, dtype=np.int32)[::-1].copy(),
    )
    noise = np.array([0.0, 0.0, 0.5, 0.5] + [0.0] * 6)
    batches = list(
        sgns_dataset(
            centres, contexts, noise, negatives=3, batch_size=4, seed=0, table_size=100
        )
    )
    (centre, candidates), labels = batches[0]
    assert (
        centre.shape == (4,) and candidates.shape == (4, 4) and labels.shape == (4, 4)
    )
    assert set(np.unique(candidates.numpy()[:, 1:])) <= {2, 3}
    np.testing.assert_array_equal(candidates.numpy()[:, 0], 9 - centre.numpy())
    assert (
        labels.numpy()[:, 0].tolist() == [1.0] * 4 and labels.numpy()[:, 1:].sum() == 0
    )
    again = list(
        sgns_dataset(
            centres, contexts, noise, negatives=3, batch_size=4, seed=0, table_size=100
        )
    )
    np.testing.assert_array_equal(candidates.numpy(), again[0][0][1].numpy())


def test_dataset_yields_the_requested_number_of_full_steps():
    # 10 pairs, batches of 4: one pass is 2.5 batches; 7 steps are 2.8 passes
    centres = np.arange(10, dtype=np.int32)
    contexts = (centres + 100).astype(np.int32)
    noise = np.full(10, 0.1)
    dataset = sgns_dataset(centres, contexts, noise, 2, 4, steps=7, table_size=100)
    assert int(dataset.cardinality()) == 7
    batches = list(dataset)
    assert len(batches) == 7
    assert all(b[0][0].shape == (4,) for b in batches)  # every batch is full
    seen = np.concatenate([b[0][0].numpy() for b in batches])
    # the shuffled pass repeats, in the same order, across batch boundaries
    np.testing.assert_array_equal(seen[10:20], seen[:10])
    np.testing.assert_array_equal(np.sort(seen[:10]), centres)
    candidates = np.concatenate([b[0][1].numpy() for b in batches])
    np.testing.assert_array_equal(candidates[:, 0], seen + 100)
    # the noise is drawn per step: the second pass gets other noise words
    assert not np.array_equal(candidates[:10, 1:], candidates[10:20, 1:])


def test_dataset_without_steps_is_one_pass_with_a_short_last_batch():
    centres = np.arange(10, dtype=np.int32)
    noise = np.full(10, 0.1)
    batches = list(sgns_dataset(centres, centres, noise, 2, 4, table_size=100))
    assert [len(b[1]) for b in batches] == [4, 4, 2]


def test_sgns_fit_runs_the_requested_steps():
    import keras

    centres = np.arange(10, dtype=np.int32)
    noise = np.full(10, 0.1)
    model = SkipGramNS(10, 3)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=sgns_loss)
    dataset = sgns_dataset(centres, centres[::-1].copy(), noise, 2, 4, steps=9)
    model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert int(model.optimizer.iterations) == 9


def test_sgns_learns_two_topics():
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # words 0-9 only ever appear with each other, words 10-19 likewise
    sentences = [
        rng.integers(0, 10, 12) if i % 2 else rng.integers(10, 20, 12)
        for i in range(400)
    ]
    centres, contexts = skipgram_pairs(sentences, window=3, seed=0)
    noise = noise_distribution(np.bincount(np.concatenate(sentences), minlength=20))
    model = SkipGramNS(20, 8)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=sgns_loss)
    model.fit(
        sgns_dataset(centres, contexts, noise, 4, 256, seed=0),
        epochs=2,
        verbose=0,
        shuffle=False,
    )
    vectors = model.word_vectors()
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = vectors @ vectors.T
    topic = np.arange(20) // 10
    same = topic[:, None] == topic[None, :]
    np.fill_diagonal(same, False)
    across = topic[:, None] != topic[None, :]
    assert cosine[same].mean() > cosine[across].mean() + 0.3


def test_benchmark_scores_on_a_toy_space(tmp_path):
    analogies = tmp_path / "analogies.txt"
    analogies.write_text(
        ": capital\nA B C D\nA B C ZZZ\n: gram1\nA C B D\n", encoding="utf-8"
    )
    pairs = tmp_path / "pairs.tsv"
    words = ["a", "b", "c", "d"]
    vectors = np.array(
        [[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 1.0]]
    )
    pairs.write_text(
        "# comment\na\tb\t9\na\tc\t5\nb\td\t1\na\tzzz\t3\n", encoding="utf-8"
    )
    scores = benchmark_scores(keyed_vectors(words, vectors), analogies, {"toy": pairs})
    assert scores["semantic acc"] == 1.0 and scores["syntactic acc"] == 1.0
    assert scores["analogy questions"] == 2 and scores[
        "analogy coverage"
    ] == pytest.approx(2 / 3)
    assert scores["toy coverage"] == pytest.approx(3 / 4)
    assert -1.0 <= scores["toy rho"] <= 1.0


def test_keyed_vectors_zero_vector_has_cosine_zero_not_nan():
    words = ["a", "b", "zero"]
    vectors = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    kv = keyed_vectors(words, vectors)
    with np.errstate(all="raise"):  # no 0/0 anywhere
        normed = kv.get_normed_vectors()
        neighbours = kv.most_similar("a", topn=2)
    assert np.isfinite(normed).all() and not normed[2].any()
    np.testing.assert_allclose(np.linalg.norm(normed[:2], axis=1), 1.0, rtol=1e-6)
    assert [w for w, _ in neighbours] == ["b", "zero"] and neighbours[1][1] == 0.0
    np.testing.assert_array_equal(kv["zero"], [0.0, 0.0])
