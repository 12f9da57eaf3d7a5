"""Tests for lmlib.text (exported from chapter 01): Vocab and BPE on tiny inputs."""

from collections import Counter

import pytest

from lmlib.text import (
    BOS_ID,
    BPE,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Vocab,
    merge_pair,
    pre_tokenize,
)


def test_vocab_specials_have_fixed_ids():
    vocab = Vocab(["a", "b", "a"])
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert [vocab.id_to_token(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert [vocab.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    assert vocab.token_to_id("a") == 4  # most frequent regular token comes first
    assert len(vocab) == 6


def test_vocab_accepts_counter_and_sentences_alike():
    sentences = [["the", "cat"], ["the", "dog"]]
    from_sentences = Vocab(sentences)
    from_counter = Vocab(Counter({"the": 2, "cat": 1, "dog": 1}))
    assert (
        from_sentences.itos
        == from_counter.itos
        == [*SPECIAL_TOKENS, "the", "cat", "dog"]
    )


def test_vocab_accepts_any_mapping_of_counts():
    counts = {
        "a": 1,
        "b": 3,
        "c": 2,
    }  # a plain dict is counts, not a list of three tokens
    assert Vocab(counts).itos[4:] == ["b", "c", "a"]
    assert Vocab(counts, min_freq=2).itos[4:] == ["b", "c"]
    assert Vocab(counts).itos == Vocab(Counter(counts)).itos


def test_vocab_does_not_duplicate_specials_in_the_input():
    vocab = Vocab(["<unk>", "a", "<pad>", "a"])
    assert vocab.itos == [*SPECIAL_TOKENS, "a"]
    assert vocab.token_to_id("<unk>") == UNK_ID and len(vocab) == 5


def test_vocab_min_freq_and_max_size():
    counts = Counter({"a": 5, "b": 2, "c": 1})
    assert Vocab(counts, min_freq=2).itos[4:] == ["a", "b"]
    assert Vocab(counts, min_freq=6).itos == list(SPECIAL_TOKENS)
    assert Vocab(counts, max_size=1).itos[4:] == ["a"]


def test_vocab_encode_decode_round_trip_and_unk():
    tokens = "to be or not to be".split()
    vocab = Vocab(tokens)
    ids = vocab.encode(tokens)
    assert vocab.decode(ids) == tokens
    assert vocab.encode(["to", "sleep"]) == [vocab.token_to_id("to"), UNK_ID]
    assert vocab.decode(vocab.encode(["sleep"])) == ["<unk>"]
    wrapped = vocab.encode(["be"], add_bos_eos=True)
    assert wrapped[0] == BOS_ID and wrapped[-1] == EOS_ID
    assert vocab.decode(wrapped, skip_specials=True) == ["be"]


def test_vocab_oov_rate():
    vocab = Vocab(["a", "b"])
    assert vocab.oov_rate(["a", "x", "b", "y"]) == pytest.approx(0.5)
    assert vocab.oov_rate(["a", "b"]) == 0.0
    assert vocab.oov_rate([]) == 0.0


def test_pre_tokenize_and_merge_pair():
    assert pre_tokenize("Hello, world!!  ok") == ["Hello", ",", "world", "!!", "ok"]
    assert merge_pair(["a", "a", "a"], ("a", "a")) == ["aa", "a"]
    assert merge_pair(["a", "b", "c"], ("b", "c")) == ["a", "bc"]


def test_bpe_learns_the_obvious_merge():
    bpe = BPE.learn(Counter({"xaby": 10, "zabw": 10, "c": 1}), num_merges=1)
    assert bpe.merges == [
        ("a", "b")
    ]  # 20 occurrences; every other pair occurs 10 times or fewer
    assert "ab" in bpe.vocab and "y</w>" in bpe.vocab and "c</w>" in bpe.vocab


def test_bpe_sennrich_example_and_min_frequency():
    counts = Counter({"low": 5, "lower": 2, "newest": 6, "widest": 3})
    bpe = BPE.learn(counts, num_merges=3)
    assert bpe.merges == [("e", "s"), ("es", "t</w>"), ("l", "o")]
    # pairs seen fewer than min_frequency times are never merged: l+o occurs 7 times;
    # after it the best pairs are (e, w), (n, e) and (w, est</w>), 6 times each < 7, so
    # learning stops early
    assert BPE.learn(counts, num_merges=100, min_frequency=7).merges == [
        ("e", "s"),
        ("es", "t</w>"),
        ("l", "o"),
    ]


def test_bpe_round_trip_on_unseen_words():
    bpe = BPE.learn(
        Counter({"lower": 4, "newest": 3, "widest": 2, "low": 5}), num_merges=20
    )
    for word in ["lowest", "wider", "tow", "xyz"]:
        pieces = bpe.encode_word(word)
        assert "".join(pieces) == word + "</w>"
        assert bpe.decode(pieces) == word
    assert bpe.decode(bpe.encode("the lowest, newest!")) == "the lowest , newest !"


def test_bpe_decodes_several_words_with_punctuation():
    bpe = BPE.learn(
        Counter({"low": 5, "lower": 2, "newest": 6, "widest": 3, ",": 4, "...": 2}),
        num_merges=30,
    )
    text = "Lower, newest... widest?! low"
    pieces = bpe.encode(text)
    assert "...</w>" in pieces and pieces[-3:] == [
        "?",
        "!</w>",
        "low</w>",
    ]  # unseen "?!" stays in characters
    assert bpe.decode(pieces) == "Lower , newest ... widest ?! low"
    assert bpe.decode(pieces) == " ".join(pre_tokenize(text))


def test_bpe_vocab_lists_alphabet_then_merged_symbols():
    bpe = BPE.learn(Counter({"ab": 2, "b": 1}), num_merges=5)
    assert bpe.merges == [
        ("a", "b</w>")
    ]  # the only pair, 2 times; nothing else is left to merge
    assert bpe.alphabet == [
        "a",
        "b",
        "b</w>",
    ]  # characters with and without the end-of-word marker
    assert bpe.vocab == ["a", "b", "b</w>", "ab</w>"]


def test_bpe_encode_word_reproduces_training_segmentation():
    import random

    rng = random.Random(1)
    counts = Counter(
        {
            "".join(
                rng.choice("aabbcd") for _ in range(rng.randint(1, 8))
            ): rng.randint(1, 9)
            for _ in range(80)
        }
    )
    bpe = BPE.learn(counts, num_merges=30)
    for word in counts:
        symbols = bpe.word_symbols(word)
        for merge in bpe.merges:  # what learning did to the word: every merge, in order
            symbols = merge_pair(symbols, merge)
        assert bpe.encode_word(word) == symbols


def test_bpe_applies_merges_in_rank_order():
    first = BPE([("a", "b"), ("b", "c</w>")])
    second = BPE([("b", "c</w>"), ("a", "b")])
    assert first.encode_word("abc") == ["ab", "c</w>"]
    assert second.encode_word("abc") == ["a", "bc</w>"]


def test_bpe_learning_is_deterministic_with_lexicographic_ties():
    counts = Counter(
        {"xy": 3, "ab": 3, "cd": 3}
    )  # three pairs tied at count 3; "xy" is inserted first
    assert BPE.learn(counts, num_merges=3).merges == [
        ("a", "b</w>"),
        ("c", "d</w>"),
        ("x", "y</w>"),
    ]
    assert (
        BPE.learn(counts, num_merges=3).merges == BPE.learn(counts, num_merges=3).merges
    )


def _naive_bpe(
    counts: Counter, num_merges: int, min_frequency: int = 2
) -> list[tuple[str, str]]:
    """Reference: recount every pair after each merge (slow but obviously right)."""
    words = {w: [*w[:-1], w[-1] + "</w>"] for w in counts}
    merges = []
    for _ in range(num_merges):
        pairs: Counter = Counter()
        for w, symbols in words.items():
            for pair in zip(symbols, symbols[1:], strict=False):
                pairs[pair] += counts[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        if pairs[best] < min_frequency:
            break
        merges.append(best)
        words = {w: merge_pair(s, best) for w, s in words.items()}
    return merges


def test_bpe_incremental_counts_match_naive_recount():
    import random

    rng = random.Random(0)
    counts = Counter(
        {
            "".join(rng.choice("aabbc") for _ in range(rng.randint(1, 7))): rng.randint(
                1, 9
            )
            for _ in range(60)
        }
    )
    assert BPE.learn(counts, num_merges=40).merges == _naive_bpe(counts, 40)


def test_vocab_from_itos_round_trips_and_refuses_bad_lists():
    vocab = Vocab(["b", "a", "b", "c"])
    rebuilt = Vocab.from_itos(vocab.itos)
    assert rebuilt.itos == vocab.itos and rebuilt.stoi == vocab.stoi
    assert rebuilt.encode(["c", "zzz"]) == vocab.encode(["c", "zzz"])
    with pytest.raises(ValueError, match="start with"):
        Vocab.from_itos(["a", "<pad>", "<unk>", "<bos>", "<eos>"])
    with pytest.raises(ValueError, match="twice"):
        Vocab.from_itos([*vocab.itos, "a"])
