# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Sequence to sequence with attention
#
# We translate sentences with a GRU encoder–decoder, first squeezing the whole source into one vector, then
# letting the decoder look back at every source word with Bahdanau's additive and Luong's multiplicative
# attention. We measure the three models with BLEU written from scratch (and checked against sacreBLEU),
# decode greedily and with beam search, and look at where the models attend.

# %%
# In Colab (or any Jupyter without the book's environment), install lmlib
# (the book's library) at this book's release, with the extra that brings what the
# chapters import (NLTK, gensim, TensorFlow/Keras, myst-nb, pandas, scikit-learn).
import importlib.util
import subprocess
import sys

LMLIB = "lmlib[book] @ git+https://github.com/llm-principles/llm-book@v0.1.0"
if importlib.util.find_spec("lmlib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", LMLIB], check=True)

# %% [markdown]
# The setup cell seeds Python, NumPy, Keras and TensorFlow, makes TensorFlow's kernels deterministic and shows
# the active profile. The quick profile translates Spanish into English with the Anki/Tatoeba sentence pairs,
# keeping the pairs whose words are all among the `closed_vocab` most frequent of each language, and trains
# small models for a few hundred steps on a CPU; the full profile translates German into English on Multi30k
# {cite:p}`elliott2016` with its official splits, all of its vocabulary (rare words become `<unk>`), larger
# models and many more steps. `beam_sentences` test sentences are also decoded with beam search.

# %%
import tempfile
import time
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import sacrebleu
from IPython.display import display
from myst_nb import glue

from lmlib.data import fetch
from lmlib.generate import log_softmax
from lmlib.plot import use_style
from lmlib.profiles import setup_chapter
from lmlib.text import pre_tokenize

# %%
cfg = setup_chapter(
    "06",
    quick=dict(
        dataset="anki_spa_eng",
        max_len=20,
        closed_vocab=2000,
        min_freq=1,
        n_valid=1000,
        n_test=3000,
        embed_dim=128,
        units=128,
        batch_size=128,
        learning_rate=1e-2,
        train_steps=280,
        eval_every=140,
        buckets=(5, 7, 9, 11, 14),
        length_edges=(4, 7, 10),
        beam_width=4,
        beam_sentences=120,
    ),
    full=dict(
        dataset="multi30k",
        max_len=80,
        closed_vocab=None,
        min_freq=2,
        n_valid=None,
        n_test=None,
        embed_dim=256,
        units=512,
        batch_size=128,
        learning_rate=1e-3,
        train_steps=6000,
        eval_every=1000,
        buckets=(9, 11, 13, 15, 18, 22),
        length_edges=(10, 15, 20),
        beam_width=5,
        beam_sentences=1000,
    ),
    keras=True,
)

# %%
use_style()
import keras  # noqa: E402  (after setup_chapter has set the backend)
import tensorflow as tf  # noqa: E402

# %% [markdown]
# ## Parallel sentences, split by source
#
# A translation corpus is a list of sentence pairs. The Anki files {cite:p}`tatoeba` list many sources more
# than once, each time with another translation, and some translations under several sources. A random split
# of the *pairs* would put "Te quiero." with one translation in the training set and with another in the test
# set, and a model that memorised the training set would look good. We split by **unique source sentence**
# instead: each source lands in one part with all of its translations, and the test set scores a hypothesis
# against all of them (multi-reference BLEU, section {ref}`sec-s2s-bleu`). Multi30k comes with official
# splits, one English reference per German description; we still drop training pairs whose source appears in
# the validation or test set.
#
# The data functions of this chapter go to `lmlib.seq2seq`, because chapter 07 translates exactly the same
# data; the cell below holds the module's imports.

# %%
# lmlib: seq2seq
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from lmlib.data import fetch
from lmlib.generate import beam_search, greedy_decode, take_rows
from lmlib.text import BOS_ID, EOS_ID, PAD_ID, Vocab, translation_tokens


# %%
# lmlib: seq2seq
def read_pairs(dataset: str) -> dict[str, list[tuple[str, str]]]:
    """(source, target) sentence pairs by split: Anki Spanish-English as one list
    ("all", to be split by source), Multi30k German-English by its official splits."""
    if dataset == "anki_spa_eng":
        text = fetch("anki_spa_eng", "spa.txt").read_text(encoding="utf-8")
        pairs = [tuple(line.split("\t")[1::-1]) for line in text.splitlines()]
        return {"all": pairs}  # each line: English <tab> Spanish
    if dataset == "multi30k":
        names = {"train": "train", "valid": "val", "test": "test_2016_flickr"}

        def lines(name: str) -> list[str]:
            return fetch("multi30k", name).read_text(encoding="utf-8").splitlines()

        return {
            split: list(zip(lines(f"{n}.de"), lines(f"{n}.en"), strict=True))
            for split, n in names.items()
        }
    raise ValueError(f"dataset={dataset!r}: use 'anki_spa_eng' or 'multi30k'")


# %% [markdown]
# Sentences are tokenised by `lmlib.text.translation_tokens`: NFC normalisation (so that "á" is one
# character whichever way it was typed), lower case, then words and punctuation runs as in chapter 01.

# %%
# lmlib: text
import unicodedata


def translation_tokens(text: str) -> list[str]:
    """Lower-cased words and punctuation (:func:`pre_tokenize`) of a sentence after NFC
    normalisation, so that an accented letter is one character however it was typed:
    the tokens of chapter 06's translation models and of its BLEU."""
    return pre_tokenize(unicodedata.normalize("NFC", text).lower())


# %% [markdown]
# Grouping and splitting by source are two small functions of `lmlib.seq2seq`.


# %%
# lmlib: seq2seq
def group_references(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group (source, target) pairs by source sentence: each unique source maps to all
    of its translations, in file order, without repeats."""
    references: dict[str, list[str]] = defaultdict(list)
    for source, target in pairs:
        if target not in references[source]:
            references[source].append(target)
    return dict(references)


def split_sources(
    sources: Sequence[str], n_valid: int, n_test: int, seed: int = 0
) -> tuple[list[str], list[str], list[str]]:
    """Shuffle unique ``sources`` with ``seed`` and cut them into (train, valid, test);
    a source (with all of its translations) lands in exactly one part."""
    if len(set(sources)) != len(sources):
        raise ValueError("split_sources needs unique sources: group them first")
    if n_valid + n_test >= len(sources):
        raise ValueError(f"{n_valid} + {n_test} held out of only {len(sources)}")
    order = np.random.default_rng(seed).permutation(len(sources))
    shuffled = [sources[i] for i in order]
    test, valid = shuffled[:n_test], shuffled[n_test : n_test + n_valid]
    return shuffled[n_test + n_valid :], valid, test
# %% [markdown]
# The length limit (`max_len` tokens on either side) and, in the quick profile, the closed vocabulary are
# applied to whole sources: a source is kept only when it and all of its translations pass.

# %%
# lmlib: seq2seq
def keep_sources(
    references: dict[str, list[str]], max_len: int, closed_vocab: int | None = None
) -> dict[str, list[str]]:
    """The sources whose tokens, and those of every translation, number at most
    ``max_len``; with ``closed_vocab``, also all among the ``closed_vocab`` most
    frequent tokens of their language (counted over ``references``)."""
    tokens = {s: translation_tokens(s) for s in references}
    tokens.update({t: translation_tokens(t) for ts in references.values() for t in ts})
    src_texts = list(references)
    tgt_texts = [t for ts in references.values() for t in ts]
    allowed = {}
    for side, texts in (("src", src_texts), ("tgt", tgt_texts)):
        counts = Counter(w for text in texts for w in tokens[text])
        allowed[side] = {w for w, _ in counts.most_common(closed_vocab)}

    def fits(text: str, side: str) -> bool:
        ok_words = closed_vocab is None or set(tokens[text]) <= allowed[side]
        return len(tokens[text]) <= max_len and ok_words

    return {
        s: ts
        for s, ts in references.items()
        if fits(s, "src") and all(fits(t, "tgt") for t in ts)
    }


# %% [markdown]
# Now the splits. For Anki, the kept unique sources are shuffled and cut; for Multi30k, the official splits
# are grouped the same way and any training source that is also held out is dropped.

# %%
# lmlib: seq2seq
def split_translations(
    raw: dict[str, list[tuple[str, str]]],
    max_len: int,
    closed_vocab: int | None = None,
    n_valid: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> dict[str, dict[str, list[str]]]:
    """The train, valid and test parts of :func:`read_pairs`'s pairs, each a dict from
    unique source to its translations. One list ("all") is filtered by
    :func:`keep_sources` and split by source (``n_valid``, ``n_test``, ``seed``);
    official splits are kept, minus training sources that are also held out, and
    only the training part is filtered (by length)."""
    if "all" in raw:
        kept = keep_sources(group_references(raw["all"]), max_len, closed_vocab)
        parts = split_sources(sorted(kept), n_valid, n_test, seed=seed)
        return {
            name: {s: kept[s] for s in part}
            for name, part in zip(("train", "valid", "test"), parts, strict=True)
        }
    refs = {name: group_references(pairs) for name, pairs in raw.items()}
    held_out = set(refs["valid"]) | set(refs["test"])
    train = {s: t for s, t in refs["train"].items() if s not in held_out}
    return dict(
        train=keep_sources(train, max_len), valid=refs["valid"], test=refs["test"]
    )


# %%
raw = read_pairs(cfg.dataset)
split_refs = split_translations(
    raw, cfg.max_len, cfg.closed_vocab, cfg.n_valid, cfg.n_test, seed=0
)
n_pairs_read = sum(len(p) for p in raw.values())
n_sources_kept = sum(len(refs) for refs in split_refs.values())
assert not set(split_refs["train"]) & (
    set(split_refs["valid"]) | set(split_refs["test"])
)
assert not set(split_refs["valid"]) & set(split_refs["test"])

# %%
split_table = pd.DataFrame(
    {
        name: {
            "unique sources": len(refs),
            "pairs": sum(len(t) for t in refs.values()),
            "sources with 2+ references": sum(len(t) > 1 for t in refs.values()),
            "mean source tokens": np.mean([len(translation_tokens(s)) for s in refs]),
        }
        for name, refs in split_refs.items()
    }
).T
display(
    split_table.style.format("{:,.1f}", subset=["mean source tokens"]).format(
        "{:,.0f}", subset=["unique sources", "pairs", "sources with 2+ references"]
    )
)
glue("n_pairs_read", n_pairs_read, display=False)
glue("n_sources_kept", n_sources_kept, display=False)
glue("n_train_pairs", int(split_table.loc["train", "pairs"]), display=False)
glue("n_test_sources", len(split_refs["test"]), display=False)
multi_ref = float(split_table.loc["test", "sources with 2+ references"])
glue("test_multi_ref", multi_ref / len(split_refs["test"]) * 100, display=False)

# %% [markdown]
# Of the {glue:text}`n_pairs_read:,` pairs read, {glue:text}`n_sources_kept:,` unique sources pass the
# filters; the model trains on {glue:text}`n_train_pairs:,` pairs and is tested on
# {glue:text}`n_test_sources:,` unique sources, {glue:text}`test_multi_ref:.1f`% of which have two or more
# reference translations.
#
# ## Vocabularies and a padded `tf.data` pipeline
#
# Each language gets its own `lmlib.text.Vocab` built from the training pairs, with `<pad>`, `<unk>`, `<bos>`
# and `<eos>` at ids 0–3. A source is its ids followed by `<eos>`; a target is wrapped in `<bos>` … `<eos>`,
# and the decoder reads it without its last id while predicting it without its first (teacher forcing).

# %%
# lmlib: seq2seq
def tokenised_pairs(refs: dict[str, list[str]]) -> list[tuple[list[str], list[str]]]:
    """Every (source, translation) of ``refs`` as token lists."""
    return [
        (translation_tokens(s), translation_tokens(t))
        for s, ts in refs.items()
        for t in ts
    ]


# %%
train_pairs = tokenised_pairs(split_refs["train"])
valid_pairs = tokenised_pairs(split_refs["valid"])
src_vocab = Vocab([src for src, _ in train_pairs], min_freq=cfg.min_freq)
tgt_vocab = Vocab([tgt for _, tgt in train_pairs], min_freq=cfg.min_freq)
test_pairs = tokenised_pairs(split_refs["test"])
src_coverage = 1 - src_vocab.oov_rate(w for src, _ in test_pairs for w in src)
tgt_coverage = 1 - tgt_vocab.oov_rate(w for _, tgt in test_pairs for w in tgt)
print(f"source vocabulary {len(src_vocab):,}, target vocabulary {len(tgt_vocab):,}")
print(f"test-token coverage: source {src_coverage:.2%}, target {tgt_coverage:.2%}")
glue("src_vocab_size", len(src_vocab), display=False)
glue("tgt_vocab_size", len(tgt_vocab), display=False)
glue("src_coverage", src_coverage * 100, display=False)
glue("tgt_coverage", tgt_coverage * 100, display=False)

# %% [markdown]
# The vocabularies have {glue:text}`src_vocab_size:,` source and {glue:text}`tgt_vocab_size:,` target entries
# (specials included) and cover {glue:text}`src_coverage:.2f`% and {glue:text}`tgt_coverage:.2f`% of the test
# tokens; the rest read and score as `<unk>`.
#
# `translation_dataset` pads each batch to its own longest sentence, not to a fixed length. Sentences of
# different lengths batched together still waste work on padding: a recurrent layer runs every padded step.
# With `bucket_boundaries`, `tf.data`'s `bucket_by_sequence_length` batches sentences of similar source length
# together. We count the padding both ways over the same batches.

# %%
# lmlib: seq2seq
def encode_pairs(
    pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
) -> tuple[list[list[int]], list[list[int]]]:
    """Token ids of tokenised (source, target) pairs: each source ends in ``<eos>``;
    each target is wrapped in ``<bos>`` ... ``<eos>`` (the decoder reads it without
    its last id and predicts it without its first)."""
    sources = [src_vocab.encode(src) + [EOS_ID] for src, _ in pairs]
    targets = [tgt_vocab.encode(tgt, add_bos_eos=True) for _, tgt in pairs]
    return sources, targets


def pad_batch(sequences: Sequence[Sequence[int]]) -> np.ndarray:
    """Right-pad id sequences with ``<pad>`` to the longest one: (batch, max_len)."""
    batch = np.full((len(sequences), max(map(len, sequences))), PAD_ID, np.int32)
    for row, ids in enumerate(sequences):
        batch[row, : len(ids)] = ids
    return batch
# %%
# lmlib: seq2seq
def translation_dataset(
    sources: Sequence[Sequence[int]],
    targets: Sequence[Sequence[int]],
    batch_size: int,
    bucket_boundaries: Sequence[int] | None = None,
    shuffle_seed: int | None = 0,
) -> tf.data.Dataset:
    """A ``tf.data`` pipeline of ``((source, target_in), target_out)`` batches padded to
    each batch's longest sentence. With ``bucket_boundaries`` (source lengths),
    sentences of similar length are batched together, so less of each batch is
    padding. With a ``shuffle_seed`` the pairs are shuffled (a new order each pass)
    and repeated forever, and only full batches are made; without, one pass in order.
    Every new iterator over a shuffled pipeline continues its shuffling: to give two
    models the same batches in the same order, build a pipeline for each.
    """
    src, src_len = pad_batch(sources), np.array([len(s) for s in sources], np.int32)
    tgt, tgt_len = pad_batch(targets), np.array([len(t) for t in targets], np.int32)
    ds = tf.data.Dataset.from_tensor_slices((src, src_len, tgt, tgt_len))
    ds = ds.map(lambda s, n, t, m: (s[:n], t[:m]))  # back to variable length
    training = shuffle_seed is not None
    if training:
        ds = ds.shuffle(len(sources), seed=shuffle_seed).repeat()
    if bucket_boundaries:
        ds = ds.bucket_by_sequence_length(
            lambda s, t: tf.shape(s)[0],
            list(bucket_boundaries),
            [batch_size] * (len(bucket_boundaries) + 1),
            drop_remainder=training,
        )
    else:
        ds = ds.padded_batch(batch_size, drop_remainder=training)
    return ds.map(lambda s, t: ((s, t[:, :-1]), t[:, 1:])).prefetch(tf.data.AUTOTUNE)
# %%
def padding_share(dataset: tf.data.Dataset, n_batches: int) -> float:
    """The share of source and target-input positions that are padding."""
    pads = total = 0
    for (source, target_in), _ in dataset.take(n_batches):
        for ids in (source, target_in):
            pads += int(tf.reduce_sum(tf.cast(ids == PAD_ID, tf.int32)))
            total += int(tf.size(ids))
    return pads / total


train_ids = encode_pairs(train_pairs, src_vocab, tgt_vocab)
valid_ids = encode_pairs(valid_pairs, src_vocab, tgt_vocab)
plain_ds = translation_dataset(*train_ids, cfg.batch_size)
train_ds = translation_dataset(*train_ids, cfg.batch_size, cfg.buckets)
valid_ds = translation_dataset(*valid_ids, 256, shuffle_seed=None)
pad_plain, pad_bucketed = padding_share(plain_ds, 100), padding_share(train_ds, 100)
print(f"padding: {pad_plain:.1%} per batch without buckets, {pad_bucketed:.1%} with")
glue("pad_plain", pad_plain * 100, display=False)
glue("pad_bucketed", pad_bucketed * 100, display=False)

# %% [markdown]
# Over 100 batches, {glue:text}`pad_plain:.1f`% of the positions are padding without buckets and
# {glue:text}`pad_bucketed:.1f`% with them, so the models below train on the bucketed pipeline.

# %% [markdown]
# ## Three encoder–decoders
#
# All three models share the encoder: the source ids $x_1, \dots, x_{T_x}$ are embedded and read by a GRU
# (chapter 04),
#
# $$
# h_j = \mathrm{GRU}_{\mathrm{enc}}(E_x x_j, h_{j-1}), \qquad h_0 = 0, \qquad j = 1, \dots, T_x,
# $$ (eq-s2s-encoder)
#
# giving encoder outputs $H = (h_1, \dots, h_{T_x})$, shape (batch, $T_x$, $n$), padded positions masked (the
# GRU carries its state across them). The decoder defines $P(y_i \mid y_{<i}, x)$ for target tokens
# $y_1, \dots, y_{T_y}$, with $y_0 = $ `<bos>`, and training minimises the cross-entropy of the real target
# tokens: padding is left out of both the sum and the count, for the loss and for the token accuracy.
#
# **(a) No attention** {cite:p}`cho2014,sutskever2014`. The last encoder state $c = h_{T_x}$ is the only view
# of the source: it starts the decoder and, as in Cho et al.'s decoder, is fed to it at every step and to its
# output,
#
# $$
# s_0 = c, \qquad s_i = \mathrm{GRU}_{\mathrm{dec}}([E_y y_{i-1}; c], s_{i-1}), \qquad
# P(y_i \mid y_{<i}, x) = \mathrm{softmax}(W_o [s_i; c] + b_o).
# $$ (eq-s2s-none)
#
# **(b) Bahdanau attention** {cite:p}`bahdanau2015`. Before each step the previous decoder state scores every
# encoder output with a one-hidden-layer network (*additive* attention); the weights $\alpha_{ij}$ give a
# context $c_i$ of its own to each target position:
#
# $$
# e_{ij} = v_a^\top \tanh(W_a s_{i-1} + U_a h_j), \qquad
# \alpha_{ij} = \frac{\exp e_{ij}}{\sum_{k=1}^{T_x} \exp e_{ik}}, \qquad
# c_i = \sum_{j=1}^{T_x} \alpha_{ij} h_j,
# $$ (eq-s2s-bahdanau-attention)
#
# $$
# s_i = \mathrm{GRU}_{\mathrm{dec}}([E_y y_{i-1}; c_i], s_{i-1}), \qquad
# P(y_i \mid y_{<i}, x) = \mathrm{softmax}(W_o [s_i; c_i] + b_o),
# $$ (eq-s2s-bahdanau-decoder)
#
# with $s_0 = h_{T_x}$. Two simplifications against the paper: our encoder is one-directional (theirs is a
# bidirectional RNN) and the output layer reads $[s_i; c_i]$ instead of a maxout layer over
# $s_{i-1}$, $E_y y_{i-1}$ and $c_i$. $U_a h_j$ does not depend on $i$, so it is computed once per sentence.
#
# **(c) Luong attention** {cite:p}`luong2015`. The decoder GRU runs first, and its *current* state
# attends with a multiplicative score, either *dot* or *general*:
#
# $$
# s_i = \mathrm{GRU}_{\mathrm{dec}}(E_y y_{i-1}, s_{i-1}), \qquad
# \mathrm{score}(s_i, h_j) = s_i^\top h_j \ \text{(dot)} \quad \text{or} \quad s_i^\top W_a h_j \
# \text{(general)},
# $$ (eq-s2s-luong-score)
#
# $$
# \alpha_{ij} = \operatorname{softmax}_j \mathrm{score}(s_i, h_j), \qquad c_i = \sum_j \alpha_{ij} h_j, \qquad
# \tilde s_i = \tanh(W_c [c_i; s_i]), \qquad P(y_i \mid y_{<i}, x) = \mathrm{softmax}(W_s \tilde s_i + b_s).
# $$ (eq-s2s-luong-output)
#
# Because attention comes after the recurrence, the whole target is attended to in one batched matrix
# product during training. (Luong et al.'s *input feeding*, which feeds $\tilde s_{i-1}$ back into the GRU,
# would make it sequential again; we leave it out.)
#
# In every model the softmax over $j$ runs over real source positions only: a padded key's score is replaced
# by $-10^9$ before the softmax, so its weight is exactly zero.

# %%
# lmlib: seq2seq
def masked_softmax(scores: Any, mask: Any) -> Any:
    """Softmax over the last axis of ``scores`` (batch, T_query, T_key), where ``mask``
    (batch, T_key) is True at real key positions: padded keys get exactly zero
    weight (their scores become -1e9, whose exponential underflows to 0)."""
    scores = ops.where(mask[:, None, :], scores, ops.full_like(scores, -1e9))
    return ops.softmax(scores, axis=-1)


def additive_attention(query: Any, keys: Any, values: Any, v: Any, mask: Any):
    """Additive attention (Bahdanau et al., 2015): scores ``v . tanh(q_i + k_j)`` of
    projected queries (batch, T_query, A) and keys (batch, T_key, A). Returns the
    contexts (batch, T_query, D), the weighted means of ``values``, and the weights
    (batch, T_query, T_key)."""
    scores = ops.sum(v * ops.tanh(query[:, :, None, :] + keys[:, None, :, :]), -1)
    weights = masked_softmax(scores, mask)
    return ops.matmul(weights, values), weights


def dot_attention(query: Any, keys: Any, values: Any, mask: Any):
    """Multiplicative (dot-product) attention (Luong et al., 2015): scores ``q_i . k_j``
    of queries (batch, T_query, D_k) and keys (batch, T_key, D_k); returns contexts
    (batch, T_query, D) and weights (batch, T_query, T_key)."""
    scores = ops.matmul(query, ops.transpose(keys, (0, 2, 1)))
    weights = masked_softmax(scores, mask)
    return ops.matmul(weights, values), weights
# %% [markdown]
# ### From scratch, checked against Keras
#
# Keras has both mechanisms as layers. `keras.layers.AdditiveAttention` computes
# $\sum_k \mathrm{scale}_k \tanh(q_{ik} + k_{jk})$ on queries and keys it is given, so with our projections
# applied first and `scale` set to $v_a$ it is {eq}`eq-s2s-bahdanau-attention`; `keras.layers.Attention` is
# the dot score. We compare contexts and weights on random tensors with a padded batch row.

# %%
def attention_parity(seed: int = 0) -> dict[str, float]:
    """Max |difference| between our attention and Keras's (contexts and weights), and
    the largest weight any padded key receives."""
    rng = np.random.default_rng(seed)
    query, keys = rng.normal(size=(2, 3, 8)), rng.normal(size=(2, 5, 8))
    values, v = rng.normal(size=(2, 5, 6)), rng.normal(size=(8,))
    query, keys, values, v = (a.astype("float32") for a in (query, keys, values, v))
    mask = np.array([[True, True, True, False, False], [True] * 5])
    ours_add = additive_attention(query, keys, values, v, mask)
    keras_add = keras.layers.AdditiveAttention(use_scale=True)
    keras_add([query, values, keys])  # build, then set its scale to our v
    keras_add.scale.assign(v)
    theirs_add = keras_add(
        [query, values, keys], mask=[None, mask], return_attention_scores=True
    )
    ours_dot = dot_attention(query, keys, values, mask)
    theirs_dot = keras.layers.Attention()(
        [query, values, keys], mask=[None, mask], return_attention_scores=True
    )
    diff = lambda a, b: max(
        float(np.abs(np.asarray(x) - np.asarray(y)).max())
        for x, y in zip(a, b, strict=True)
    )
    padded = max(
        float(np.asarray(w)[0, :, 3:].max()) for w in (ours_add[1], ours_dot[1])
    )
    return dict(
        additive=diff(ours_add, theirs_add),
        dot=diff(ours_dot, theirs_dot),
        padded_weight=padded,
    )


parity = attention_parity()
print(parity)
assert parity["additive"] <= 1e-5 and parity["dot"] <= 1e-5
assert parity["padded_weight"] == 0.0
glue("parity_additive", parity["additive"], display=False)
glue("parity_dot", parity["dot"], display=False)

# %% [markdown]
# Our additive attention differs from Keras's by at most {glue:text}`parity_additive:.1e` and our dot
# attention by {glue:text}`parity_dot:.1e`; padded keys get weight exactly 0.
#
# ### The decoder cell and the model
#
# Bahdanau's decoder attends *inside* the recurrence, so it is a cell run by `keras.layers.RNN`. Keras 3's
# `RNN` passes a cell no extra tensors, so the encoder outputs reach the cell as an attribute set for the
# length of one pass (Keras itself sets dropout masks on a cell that way). The cell's `step` is also what the
# one-token decoder calls at inference, so training and decoding run the same code.

# %%
# lmlib: seq2seq
@keras.saving.register_keras_serializable(package="lmlib")
class BahdanauDecoderCell(layers.Layer):
    """One decoder step of Bahdanau et al. (2015), for ``keras.layers.RNN``: attend from
    the previous state ``s_{i-1}`` over the encoder outputs, then run a GRU cell on
    ``[E y_{i-1}; c_i]``. Its output is ``[s_i; c_i]``. Keras 3's ``RNN`` passes a cell
    no constants, so the encoder outputs enter as ``self.memory = (values, keys, mask,
    last_state)``, set by :class:`Seq2Seq` for the length of one pass (as Keras sets
    dropout masks on a cell before its loop)."""

    def __init__(self, units: int, attention_units: int, context_units: int, **kwargs):
        super().__init__(**kwargs)
        self.units, self.attention_units = units, attention_units
        self.context_units = context_units
        self.gru = layers.GRUCell(units)
        self.query_proj = layers.Dense(attention_units, use_bias=False)  # W_a
        self.state_size, self.output_size = units, units + context_units
        self.memory = None

    def build(self, input_shape):
        self.v = self.add_weight(shape=(self.attention_units,), name="v")
        self.query_proj.build((None, self.units))
        self.gru.build((None, input_shape[-1] + self.context_units))

    def step(self, inputs, state, memory):
        """(output (batch, units + context_units), new state, weights (batch, T_x))."""
        values, keys, mask, _ = memory
        query = self.query_proj(state)[:, None, :]  # (batch, 1, attention_units)
        context, weights = additive_attention(query, keys, values, self.v, mask)
        context = context[:, 0, :]  # (batch, context_units)
        output, new_state = self.gru(ops.concatenate([inputs, context], -1), state)
        new_state = new_state[0] if isinstance(new_state, list | tuple) else new_state
        return ops.concatenate([output, context], -1), new_state, weights[:, 0, :]

    def call(self, inputs, states, training=False):
        state = states[0] if isinstance(states, list | tuple) else states
        output, new_state, _ = self.step(inputs, state, self.memory)
        return output, [new_state]

    def get_config(self) -> dict:
        config = dict(units=self.units, attention_units=self.attention_units)
        return {**super().get_config(), **config, "context_units": self.context_units}
# %% [markdown]
# `Seq2Seq` puts the pieces together. `call` is the teacher-forced pass used in training; `encode` and
# `decode_step` are the same computation split for decoding one token at a time.

# %%
# lmlib: seq2seq
@keras.saving.register_keras_serializable(package="lmlib")
class Seq2Seq(keras.Model):
    """A GRU encoder-decoder. ``attention`` is ``"none"`` (Cho et al., 2014: the last
    encoder state is the decoder's initial state and a context fed at every step),
    ``"bahdanau"`` (additive attention before the decoder GRU) or ``"dot"`` /
    ``"general"`` (Luong et al., 2015: attention after the decoder GRU, vectorised over
    time). ``call((source, target_in))`` returns logits (batch, T_y, tgt_vocab_size)."""

    ATTENTIONS = ("none", "bahdanau", "dot", "general")

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        embed_dim: int = 128,
        units: int = 256,
        attention: str = "none",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if attention not in self.ATTENTIONS:
            raise ValueError(f"attention={attention!r}: use one of {self.ATTENTIONS}")
        self.settings = dict(
            src_vocab_size=src_vocab_size,
            units=units,
            tgt_vocab_size=tgt_vocab_size,
            embed_dim=embed_dim,
            attention=attention,
        )
        self.attention = attention
        self.src_embedding = layers.Embedding(src_vocab_size, embed_dim)
        self.tgt_embedding = layers.Embedding(tgt_vocab_size, embed_dim)
        self.encoder = layers.GRU(units, return_sequences=True, return_state=True)
        self.key_proj = None  # U_a (Bahdanau) or W_a (Luong general) on encoder outputs
        if attention in ("bahdanau", "general"):
            self.key_proj = layers.Dense(units, use_bias=False)
        if attention == "bahdanau":
            self.decoder = layers.RNN(
                BahdanauDecoderCell(units, units, units), return_sequences=True
            )
        else:
            self.decoder = layers.GRU(units, return_sequences=True)
        self.combine = None  # W_c of Luong's attentional hidden state
        if attention in ("dot", "general"):
            self.combine = layers.Dense(units, activation="tanh", use_bias=False)
        self.output_layer = layers.Dense(tgt_vocab_size)

    def encode(self, source):
        """Encoder outputs as the decoder's memory ``(values, keys, mask, last_state)``
        and its initial state (the last encoder state)."""
        mask = ops.not_equal(source, PAD_ID)  # (batch, T_x)
        values, last = self.encoder(self.src_embedding(source), mask=mask)
        keys = values if self.key_proj is None else self.key_proj(values)
        return (values, keys, mask, last), last

    def luong_output(self, hidden, memory):
        """Luong's attentional hidden state ``tanh(W_c [c_t; s_t])`` and the weights."""
        values, keys, mask, _ = memory
        context, weights = dot_attention(hidden, keys, values, mask)
        return self.combine(ops.concatenate([context, hidden], -1)), weights

    def call(self, inputs, training=False):
        source, target_in = inputs
        memory, state = self.encode(source)
        embedded = self.tgt_embedding(target_in)  # (batch, T_y, embed_dim)
        if self.attention == "bahdanau":
            self.decoder.cell.memory = memory
            hidden = self.decoder(embedded, initial_state=[state])
            self.decoder.cell.memory = None
        elif self.attention == "none":
            context = ops.repeat(state[:, None, :], ops.shape(embedded)[1], axis=1)
            hidden = self.decoder(
                ops.concatenate([embedded, context], -1), initial_state=state
            )
            hidden = ops.concatenate([hidden, context], -1)
        else:
            hidden, _ = self.luong_output(
                self.decoder(embedded, initial_state=state), memory
            )
        return self.output_layer(hidden)

    def decode_step(self, token_ids, state, memory):
        """One step for a batch: ``token_ids`` (batch,) -> logits (batch, V), the new
        state and the attention weights (batch, T_x) (``None`` without attention)."""
        embedded, weights = self.tgt_embedding(token_ids), None
        if self.attention == "bahdanau":
            hidden, state, weights = self.decoder.cell.step(embedded, state, memory)
            return self.output_layer(hidden), state, weights
        if self.attention == "none":
            embedded = ops.concatenate([embedded, memory[3]], -1)
        hidden, state = self.decoder.cell(embedded, state)
        state = state[0] if isinstance(state, list | tuple) else state
        if self.attention == "none":
            hidden = ops.concatenate([hidden, memory[3]], -1)
        elif self.combine is not None:
            hidden, weights = self.luong_output(hidden[:, None, :], memory)
            hidden, weights = hidden[:, 0], weights[:, 0]
        return self.output_layer(hidden), state, weights

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}
# %% [markdown]
# The one-token path must give exactly the logits of the full pass, or decoding would not be what training
# optimised. We check it for every variant on a real batch.

# %%
def step_parity(model: Seq2Seq, source: np.ndarray, target_in: np.ndarray) -> float:
    """Max relative |difference| between teacher-forced logits and one-step logits."""
    full = np.asarray(model((source, target_in)))
    memory, state = model.encode(tf.constant(source))
    steps = []
    for i in range(target_in.shape[1]):
        logits, state, _ = model.decode_step(
            tf.constant(target_in[:, i]), state, memory
        )
        steps.append(np.asarray(logits))
    return float(np.abs(np.stack(steps, 1) - full).max() / np.abs(full).max())


(batch_src, batch_tgt_in), batch_tgt_out = next(iter(train_ds))
for attention in Seq2Seq.ATTENTIONS:
    model = Seq2Seq(len(src_vocab), len(tgt_vocab), 16, 24, attention)
    difference = step_parity(model, batch_src.numpy()[:8], batch_tgt_in.numpy()[:8])
    print(
        f"{attention:>8}: one step vs full pass, max rel. difference {difference:.1e}"
    )
    assert difference <= 1e-5

# %% [markdown]
# ## Training, and whether XLA pays
#
# The three models trained and compared are (a) no attention, (b) Bahdanau and (c) Luong *general*; the
# *dot* score is left to an exercise. Training is teacher forcing with the masked loss and token accuracy.

# %%
# lmlib: seq2seq
def masked_loss(targets, logits):
    """Mean cross-entropy (nats per token) over the real target tokens: ``<pad>``
    positions are left out of the sum and of the count."""
    mask = ops.cast(ops.not_equal(targets, PAD_ID), "float32")
    nll = keras.losses.sparse_categorical_crossentropy(
        targets, logits, from_logits=True
    )
    return ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)


def masked_accuracy(targets, logits):
    """Next-token accuracy over the real target tokens (padding excluded)."""
    mask = ops.cast(ops.not_equal(targets, PAD_ID), "float32")
    hits = ops.cast(
        ops.equal(ops.argmax(logits, -1), ops.cast(targets, "int64")), "float32"
    )
    return ops.sum(hits * mask) / ops.maximum(ops.sum(mask), 1.0)
# %% [markdown]
# With op determinism on (the setup cell), Keras's `fit` runs without XLA whatever `jit_compile` says
# (GUIDE §10), so the training step is our own `tf.function`, where `jit_compile=True` is honoured.

# %%
# lmlib: seq2seq
def make_train_step(
    model: keras.Model,
    optimizer,
    jit_compile: bool = False,
    loss_fn: Callable = masked_loss,
):
    """A compiled training step ``(inputs, targets) -> (loss, accuracy)`` with teacher
    forcing, minimising ``loss_fn(targets, logits)``. A step function of our own, not
    ``model.fit``: with op determinism on, Keras's ``fit`` ignores ``jit_compile``
    (GUIDE section 10), this one honours it. It is traced once, for batches of any
    shape (int32 ids); build the model first (call it on a batch), so that the
    optimizer's variables exist before tracing, or the trace runs twice."""
    if model.built:
        optimizer.build(model.trainable_variables)
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(jit_compile=jit_compile, input_signature=[(ids, ids), ids])
    def train_step(inputs, targets):
        with tf.GradientTape() as tape:
            logits = model(inputs, training=True)
            loss = loss_fn(targets, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss, masked_accuracy(targets, logits)

    return train_step


def make_eval_step(model: keras.Model):
    """``(inputs, targets) -> masked_loss`` of the model in inference mode, traced
    once for batches of any shape (an eager recurrent layer is slow)."""
    ids = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[(ids, ids), ids])
    def eval_step(inputs, targets):
        return masked_loss(targets, model(inputs, training=False))

    return eval_step


def evaluate_loss(
    model: keras.Model, dataset: tf.data.Dataset, eval_step: Callable | None = None
) -> float:
    """Cross-entropy per real target token over a finite dataset (nats), with
    ``eval_step`` (from :func:`make_eval_step`; made here if not given)."""
    eval_step = make_eval_step(model) if eval_step is None else eval_step
    total = count = 0.0
    for inputs, targets in dataset:
        n = float(ops.sum(ops.cast(ops.not_equal(targets, PAD_ID), "float32")))
        total += float(eval_step(inputs, targets)) * n
        count += n
    return total / count
# %%
# lmlib: seq2seq
def fit_seq2seq(
    model,
    train_ds,
    valid_ds,
    steps: int,
    eval_every: int,
    learning_rate: float,
    jit_compile: bool = False,
    log=print,
    optimizer=None,
    loss_fn: Callable = masked_loss,
) -> dict:
    """Train for ``steps`` batches, minimising ``loss_fn``, with ``optimizer`` (by
    default Adam at ``learning_rate``, a number or a schedule, each weight's gradient
    clipped at norm 1), evaluating the validation loss (:func:`masked_loss`, whatever
    ``loss_fn``) every ``eval_every`` steps; one log line per evaluation. Returns the
    history: step, train_loss, train_acc (means since the last evaluation),
    valid_loss and the cumulative training seconds (evaluation excluded, the first
    step's tracing included)."""
    if optimizer is None:
        optimizer = keras.optimizers.Adam(learning_rate, clipnorm=1.0)
    train_step = eval_step = None
    history = {
        k: [] for k in ("step", "train_loss", "train_acc", "valid_loss", "seconds")
    }
    seconds, losses, accs = 0.0, [], []
    for step, (inputs, targets) in enumerate(train_ds.take(steps), start=1):
        start = time.perf_counter()
        if train_step is None:  # build the model on the first batch, then trace
            model(inputs)
            train_step = make_train_step(model, optimizer, jit_compile, loss_fn)
            eval_step = make_eval_step(model)
        loss, acc = train_step(inputs, targets)
        losses.append(float(loss))
        accs.append(float(acc))
        seconds += time.perf_counter() - start
        if step % eval_every == 0 or step == steps:
            row = dict(
                step=step,
                train_loss=float(np.mean(losses)),
                seconds=seconds,
                train_acc=float(np.mean(accs)),
                valid_loss=evaluate_loss(model, valid_ds, eval_step),
            )
            for key, value in row.items():
                history[key].append(value)
            log(
                " ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in row.items()
                )
            )
            losses, accs = [], []
    return history
# %% [markdown]
# XLA compiles a program for each input shape, and a pipeline that pads per batch produces many shapes. We
# time one step both ways on the same batch (the first call traces and, with XLA, compiles), and count the
# distinct batch shapes of a training run. XLA pays when its saving per step, times the steps, exceeds its
# compile time times the shapes.

# %%
# lmlib: seq2seq
def time_train_step(
    build_model: Callable[[], keras.Model],
    batch,
    jit_compile: bool,
    steps: int = 5,
    learning_rate: float = 1e-3,
    loss_fn: Callable = masked_loss,
) -> tuple[float, float]:
    """(seconds of the first call, which builds the model, traces and compiles;
    seconds per later step) of a training step on one fixed ``batch`` for a freshly
    built model."""
    model = build_model()
    optimizer = keras.optimizers.Adam(learning_rate)
    start = time.perf_counter()
    model(batch[0])
    train_step = make_train_step(model, optimizer, jit_compile, loss_fn)
    float(train_step(*batch)[0])
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        loss, _ = train_step(*batch)
    float(loss)
    return first, (time.perf_counter() - start) / steps
# %%
MODELS = {"no attention": "none", "Bahdanau": "bahdanau", "Luong (general)": "general"}


def build(attention: str) -> Seq2Seq:
    return Seq2Seq(len(src_vocab), len(tgt_vocab), cfg.embed_dim, cfg.units, attention)


shapes = {
    (int(s.shape[1]), int(t.shape[1])) for (s, t), _ in train_ds.take(cfg.train_steps)
}
fixed_batch = ((batch_src, batch_tgt_in), batch_tgt_out)
xla_rows = {}
for name, attention in MODELS.items():
    plain = time_train_step(partial(build, attention), fixed_batch, jit_compile=False)
    xla = time_train_step(partial(build, attention), fixed_batch, jit_compile=True)
    saving = (plain[1] - xla[1]) * cfg.train_steps
    xla_rows[name] = {
        "step ms": plain[1] * 1e3,
        "XLA step ms": xla[1] * 1e3,
        "XLA compile s": xla[0],
        "XLA pays": saving > xla[0] * len(shapes),
    }
xla_table = pd.DataFrame(xla_rows).T
display(xla_table)
glue("n_shapes", len(shapes), display=False)
glue("train_steps_g", cfg.train_steps, display=False)
use_xla = {name: bool(row["XLA pays"]) for name, row in xla_rows.items()}

# %% [markdown]
# A training run of {glue:text}`train_steps_g` steps meets {glue:text}`n_shapes` distinct batch shapes. The
# table says, for each model, whether XLA's faster steps repay its compilations; each model is trained
# below the way the table chooses. Either way a rerun on the same machine repeats the run: op determinism
# fixes TensorFlow's kernels, and XLA's CPU programs do not reorder floating-point sums between runs.
#
# Now the three models train for the same number of steps, with the same batches in the same order. That
# takes a fresh pipeline for each: every new iterator over a shuffled `tf.data` pipeline continues its
# shuffling, so a second pass over `train_ds` would not repeat the first one's batches.

# %%
models, histories = {}, {}
for name, attention in MODELS.items():
    keras.utils.set_random_seed(0)  # the same initial draws for every model
    print(f"{name} (XLA: {use_xla[name]})")
    models[name] = build(attention)
    histories[name] = fit_seq2seq(
        models[name],
        translation_dataset(*train_ids, cfg.batch_size, cfg.buckets),  # fresh batches
        valid_ds,
        cfg.train_steps,
        cfg.eval_every,
        cfg.learning_rate,
        jit_compile=use_xla[name],
    )

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, history in histories.items():
    ax.plot(history["step"], history["valid_loss"], marker="o", label=name)
ax.set(xlabel="training step", ylabel="validation loss (nats per token)")
ax.legend()
ax.set_title("Validation loss of the three translators")
plt.show()

# %% [markdown]
# (sec-s2s-bleu)=
# ## BLEU from scratch
#
# BLEU {cite:p}`papineni2002` compares a system's translations with references by n-gram overlap. For each
# order $n = 1, \dots, 4$, the *modified precision* counts each hypothesis n-gram at most as often as it
# occurs in the reference where it occurs most, summed over the corpus before dividing:
#
# $$
# p_n = \frac{\sum_{\text{sentences}} \sum_{g \in \text{n-grams}(\hat y)}
# \min\bigl(\mathrm{count}_{\hat y}(g), \max_r \mathrm{count}_r(g)\bigr)}
# {\sum_{\text{sentences}} \sum_{g \in \text{n-grams}(\hat y)} \mathrm{count}_{\hat y}(g)}.
# $$ (eq-s2s-bleu-precision)
#
# Precision alone rewards short outputs, so a brevity penalty compares the total hypothesis length $c$ with
# the *effective reference length* $r$, the sum over sentences of the reference length closest to the
# hypothesis's (the shorter on a tie):
#
# $$
# \mathrm{BP} = \begin{cases} 1 & c > r \\ e^{1 - r/c} & c \le r \end{cases}, \qquad
# \mathrm{BLEU} = 100 \cdot \mathrm{BP} \cdot \exp\Bigl(\frac{1}{4}\sum_{n=1}^{4} \ln p_n\Bigr).
# $$ (eq-s2s-bleu)
#
# Our implementation goes to `lmlib.metrics` (chapters 07 and 10 reuse it).

# %%
# lmlib: metrics
import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

# %%
# lmlib: metrics
def ngram_counts(tokens: Sequence[str], n: int) -> Counter:
    """The n-grams of ``tokens`` (tuples of ``n`` consecutive tokens) with their counts;
    empty when the sequence is shorter than ``n``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    tokens = tuple(tokens)
    return Counter(tokens[i : i + n] for i in range(len(tokens) - n + 1))

# %%
# lmlib: metrics
def clipped_counts(
    hypothesis: Sequence[str], references: Sequence[Sequence[str]], n: int
) -> tuple[int, int]:
    """The numerator and denominator of the modified n-gram precision of one hypothesis
    (Papineni et al., 2002): ``(clipped, total)``, where each hypothesis n-gram counts
    at most as often as it occurs in the one reference that has it most often, and
    ``total`` is the number of n-grams of the hypothesis."""
    hypothesis_counts = ngram_counts(hypothesis, n)
    max_reference_counts: Counter = Counter()
    for reference in references:
        max_reference_counts |= ngram_counts(reference, n)  # elementwise maximum
    clipped = hypothesis_counts & max_reference_counts  # elementwise minimum
    return sum(clipped.values()), sum(hypothesis_counts.values())

# %%
# lmlib: metrics
def closest_ref_length(hyp_len: int, ref_lens: Sequence[int]) -> int:
    """The reference length closest to ``hyp_len``, the shorter one on a tie (as
    sacreBLEU and mteval do): one hypothesis's share of the effective reference
    length of corpus BLEU."""
    return min(ref_lens, key=lambda ref_len: (abs(ref_len - hyp_len), ref_len))


def brevity_penalty(sys_len: int, ref_len: int) -> float:
    """BLEU's brevity penalty: 1 when the system output is at least as long as the
    effective reference length, ``exp(1 - ref_len / sys_len)`` when it is shorter, 0
    for an empty output (against a non-empty reference)."""
    if sys_len >= ref_len:
        return 1.0
    return math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0

# %%
# lmlib: metrics
class BLEUScore(NamedTuple):
    """What :func:`corpus_bleu` returns. ``score`` and ``precisions`` (one per order,
    1 to ``max_n``) are percentages; ``ratio`` is ``sys_len / ref_len`` (0 when
    ``ref_len`` is 0, as in sacreBLEU); ``matches`` and ``totals`` are the clipped and
    total n-gram counts summed over the corpus. ``str()`` reads like sacreBLEU's."""

    score: float
    precisions: list[float]
    brevity_penalty: float
    ratio: float
    sys_len: int
    ref_len: int
    matches: list[int]
    totals: list[int]

    def __str__(self) -> str:
        precisions = "/".join(f"{p:.1f}" for p in self.precisions)
        return (
            f"BLEU = {self.score:.2f} {precisions} (BP = {self.brevity_penalty:.3f} "
            f"ratio = {self.ratio:.3f} hyp_len = {self.sys_len} "
            f"ref_len = {self.ref_len})"
        )

# %%
# lmlib: metrics
def bleu_from_counts(
    matches: Sequence[int], totals: Sequence[int], sys_len: int, ref_len: int
) -> BLEUScore:
    """BLEU from its sufficient statistics: the clipped and total n-gram counts of each
    order and the two lengths, all summed over the corpus. The score is the brevity
    penalty times the geometric mean of the precisions, times 100; without smoothing,
    a precision of zero (no match, or no n-grams of that order) makes it 0."""
    fractions = [m / t if t > 0 else 0.0 for m, t in zip(matches, totals, strict=True)]
    bp = brevity_penalty(sys_len, ref_len)
    if min(fractions) > 0:
        log_mean = sum(math.log(p) for p in fractions) / len(fractions)
        score = 100 * bp * math.exp(log_mean)
    else:
        score = 0.0
    return BLEUScore(
        score=score,
        precisions=[100 * p for p in fractions],
        brevity_penalty=bp,
        ratio=sys_len / ref_len if ref_len > 0 else 0.0,
        sys_len=sys_len,
        ref_len=ref_len,
        matches=list(matches),
        totals=list(totals),
    )

# %%
# lmlib: metrics
def check_bleu_inputs(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int,
) -> None:
    """Raise a ``ValueError`` (or ``TypeError``) that says what is wrong when the
    arguments of :func:`corpus_bleu` do not fit: token lists, one list of references
    per hypothesis, at least one reference each, ``max_n >= 1``."""
    if max_n < 1:
        raise ValueError(f"max_n must be at least 1, not {max_n}")
    if len(hypotheses) != len(references):
        raise ValueError(
            f"{len(hypotheses)} hypotheses but {len(references)} lists of references: "
            "give one list of references per hypothesis"
        )
    if len(hypotheses) == 0:
        raise ValueError("BLEU of an empty corpus is undefined")
    for i, (hypothesis, refs) in enumerate(zip(hypotheses, references, strict=True)):
        if isinstance(hypothesis, str) or any(isinstance(r, str) for r in refs):
            raise TypeError(
                f"segment {i}: hypotheses and references must be lists of tokens, not "
                "strings (tokenise them; wrap a single reference as [tokens])"
            )
        if len(refs) == 0:
            raise ValueError(f"hypothesis {i} has no references")

# %%
# lmlib: metrics
def corpus_bleu(
    hypotheses: Sequence[Sequence[str]],
    references: Sequence[Sequence[Sequence[str]]],
    max_n: int = 4,
) -> BLEUScore:
    """Corpus BLEU (Papineni et al., 2002) of tokenised ``hypotheses``, each with its
    own list of one or more tokenised ``references``. Clipped n-gram counts (orders 1
    to ``max_n``) and lengths are summed over the corpus before dividing; the effective
    reference length takes, for each hypothesis, the reference length closest to its
    own. No smoothing; equals sacreBLEU's ``corpus_score`` with ``tokenize="none"`` and
    ``smooth_method="none"`` on the space-joined tokens."""
    check_bleu_inputs(hypotheses, references, max_n)
    matches, totals = [0] * max_n, [0] * max_n
    sys_len = ref_len = 0
    for hypothesis, refs in zip(hypotheses, references, strict=True):
        for n in range(1, max_n + 1):
            clipped, total = clipped_counts(hypothesis, refs, n)
            matches[n - 1] += clipped
            totals[n - 1] += total
        sys_len += len(hypothesis)
        ref_len += closest_ref_length(len(hypothesis), [len(r) for r in refs])
    return bleu_from_counts(matches, totals, sys_len, ref_len)


# %% [markdown]
# sacreBLEU takes references as *streams*: stream $k$ holds the $k$-th reference of every sentence. Where a
# sentence has fewer references, the stream holds `None`, which sacreBLEU skips (an empty string would count
# as an empty reference).

# %%
# lmlib: metrics
def reference_streams(
    references: Sequence[Sequence[Sequence[str]]],
) -> list[list[str | None]]:
    """sacreBLEU's layout of tokenised ``references`` (one list per hypothesis): stream
    k holds every hypothesis's k-th reference joined by spaces, or ``None`` where it has
    fewer than k + 1 references."""
    depth = max(len(refs) for refs in references)
    return [
        [" ".join(refs[k]) if k < len(refs) else None for refs in references]
        for k in range(depth)
    ]
# %% [markdown]
# The decoders: `lmlib.generate` (chapter 05) gains a batched greedy decoder and beam search, both driven by a
# step function `step_fn(token_ids (k,), state) -> (logits (k, V), state)`, the batched form of chapter 05's
# step function. Beam search keeps the `beam_width` best partial translations by total log-probability; a
# hypothesis that emits `<eos>` is set aside, and the finished ones are ranked by log-probability divided by
# length$^\alpha$ (`length_alpha`), since a raw sum favours short outputs.

# %%
# lmlib: generate
def take_array_rows(array: Any, indices: np.ndarray) -> Any:
    """Rows ``indices`` of one array along axis 0, as an array of the same kind.

    A NumPy array goes through ``np.take``. Anything else (a TensorFlow, JAX or PyTorch
    tensor) goes through ``keras.ops.take``, imported only then: the rows are gathered
    where the tensor lives, with no copy to the host and back (as ``.numpy()`` would
    make at every step), and callers with NumPy states never import Keras.
    """
    if isinstance(array, np.ndarray):
        return np.take(array, indices, axis=0)
    from keras import ops

    return ops.take(array, indices, axis=0)

# %%
# lmlib: generate
def take_rows(
    state: Any,
    indices: Sequence[int] | np.ndarray,
    take_fn: Callable[[Any, np.ndarray], Any] | None = None,
) -> Any:
    """Reorder, repeat or drop the hypotheses of a decoder ``state``: row ``i`` of each
    array of the result is row ``indices[i]`` of the same array of ``state``.

    ``state`` is an array or a nest of tuples (named tuples too), lists and dicts of
    arrays whose axis 0 indexes hypotheses (a recurrent state, encoder outputs, a
    source mask); ``None`` stays ``None``. Each array is gathered by
    ``take_fn(array, indices)``, :func:`take_array_rows` by default.
    """
    take_fn = take_array_rows if take_fn is None else take_fn
    indices = np.asarray(indices, dtype=np.int64)
    if state is None:
        return None
    if isinstance(state, dict):
        return {key: take_rows(value, indices, take_fn) for key, value in state.items()}
    if isinstance(state, tuple | list):
        items = [take_rows(item, indices, take_fn) for item in state]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    return take_fn(state, indices)

# %%
# lmlib: generate
BatchStepFn = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]


def run_step(
    step_fn: BatchStepFn, token_ids: np.ndarray, state: Any
) -> tuple[np.ndarray, Any]:
    """One call of a batched step function ``step_fn(token_ids (k,), state) -> (logits
    (k, V), new_state)``; the logits come back as a NumPy array of checked shape."""
    logits, state = step_fn(token_ids, state)
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[0] != len(token_ids):
        raise ValueError(
            f"step_fn must return logits of shape ({len(token_ids)}, vocab_size), "
            f"not {logits.shape}"
        )
    return logits, state

# %%
# lmlib: generate
def greedy_decode(
    step_fn: BatchStepFn,
    state: Any,
    start_ids: Sequence[int] | np.ndarray,
    end_id: int,
    max_len: int = 50,
) -> list[list[int]]:
    """Greedy decoding of a batch of B sentences at once: feed ``start_ids`` (B,), then
    each sentence's most probable token (the lowest id on ties, as :func:`greedy`).

    A sentence ends when it emits ``end_id`` (not included in its ids) or after
    ``max_len`` tokens; decoding stops when every sentence has ended, so it makes at
    most ``max_len`` calls. Sentences that have ended are still fed (the batch keeps
    its shape) and their tokens ignored.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, not {max_len}")
    token_ids = np.asarray(start_ids, dtype=np.int64)
    if token_ids.ndim != 1:
        raise ValueError(f"start_ids must be 1-D, not of shape {token_ids.shape}")
    outputs: list[list[int]] = [[] for _ in token_ids]
    running = np.ones(len(token_ids), dtype=bool)
    for _ in range(max_len):
        if not running.any():
            break
        logits, state = run_step(step_fn, token_ids, state)
        token_ids = np.argmax(logits, axis=-1)  # (B,), the first maximum on ties
        running &= token_ids != end_id
        for i in np.flatnonzero(running):
            outputs[i].append(int(token_ids[i]))
    return outputs

# %%
# lmlib: generate
class Hypothesis(NamedTuple):
    """A beam-search result: the generated ``ids`` (without the end token), their total
    log-probability ``logprob`` (natural log; it includes the end token's when the
    hypothesis finished) and the ``score`` that ranks hypotheses
    (:func:`normalised_score`)."""

    ids: list[int]
    logprob: float
    score: float


def normalised_score(logprob: float, length: int, alpha: float = 1.0) -> float:
    """A length-normalised log-probability, ``logprob / length**alpha``: ``alpha = 0``
    is the raw sum (which favours short outputs), ``alpha = 1`` the per-token mean."""
    return float(logprob) / length**alpha

# %%
# lmlib: generate
def top_candidates(totals: np.ndarray, n: int) -> list[tuple[int, int, float]]:
    """The ``n`` largest entries of a (k, V) array of log-probabilities as (row, token,
    value) triples, best first; ties go to the lower row, then the lower token id.

    ``-inf`` entries (impossible tokens) are never returned. Cost O(k V): a partition
    finds the n-th value, and only the entries at or above it are sorted.
    """
    flat = totals.ravel()
    n = min(n, flat.size)
    if n < 1:
        return []
    threshold = np.partition(flat, flat.size - n)[flat.size - n]
    chosen = np.flatnonzero(flat >= threshold)  # ascending: ties stay in index order
    chosen = chosen[np.argsort(-flat[chosen], kind="stable")][:n]
    rows, tokens = np.divmod(chosen, totals.shape[1])
    return [
        (int(row), int(token), float(flat[index]))
        for row, token, index in zip(rows, tokens, chosen, strict=True)
        if flat[index] > -np.inf
    ]

# %%
# lmlib: generate
def beam_search(
    step_fn: BatchStepFn,
    state: Any,
    start_id: int,
    end_id: int,
    beam_width: int = 4,
    max_len: int = 50,
    length_alpha: float = 1.0,
    take_fn: Callable[[Any, np.ndarray], Any] | None = None,
) -> list[Hypothesis]:
    """Beam search for one sentence whose ``state`` has leading dimension 1.

    At each step the live hypotheses are fed at once (``state`` has one row per
    hypothesis, reordered and tiled by :func:`take_rows` with ``take_fn``) and the
    best ``beam_width - len(finished)`` one-token extensions by total log-probability
    are kept. An extension ending in ``end_id`` moves to the finished list, so the beam
    shrinks; the search stops when ``beam_width`` hypotheses have finished (no live
    one is left) or after ``max_len`` steps. Live hypotheses always have the same
    length, so their ranking does not depend on ``length_alpha``; finished ones are
    ranked by ``normalised_score(logprob, length, length_alpha)`` with ``length`` the
    generated tokens including ``end_id``.

    Returns the finished hypotheses, best first; if none finished, the live ones (each
    ``max_len`` ids long). With ``beam_width = 1`` this is :func:`greedy_decode`'s
    sentence whatever ``length_alpha`` (ties included; only logits closer than float64
    rounding could order differently).
    """
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, not {beam_width}")
    if max_len < 1:
        raise ValueError(f"max_len must be at least 1, not {max_len}")
    live = [Hypothesis([], 0.0, 0.0)]
    finished: list[Hypothesis] = []
    token_ids = np.array([start_id], dtype=np.int64)
    for step in range(1, max_len + 1):
        logits, state = run_step(step_fn, token_ids, state)
        totals = np.array([h.logprob for h in live])[:, None] + log_softmax(logits)
        parents, extended = [], []
        for row, token, logprob in top_candidates(totals, beam_width - len(finished)):
            ids = live[row].ids + [token]
            score = normalised_score(logprob, step, length_alpha)
            if token == end_id:
                finished.append(Hypothesis(ids[:-1], logprob, score))
            else:
                parents.append(row)
                extended.append(Hypothesis(ids, logprob, score))
        live = extended
        if not live or step == max_len:
            break
        token_ids = np.array([h.ids[-1] for h in live], dtype=np.int64)
        state = take_rows(state, parents, take_fn)
    return sorted(finished or live, key=lambda h: h.score, reverse=True)
# %% [markdown]
# `lmlib.seq2seq` wraps the model's `decode_step` in such a step function. Its state is the pair (decoder
# state, encoder memory), so beam search reorders the memory together with the hypotheses. `decode_batches`
# encodes the sources a batch at a time and decodes them with either search; it serves any encoder–decoder
# given a start function (sources to state) and a step function, and chapter 07's Transformer uses it too.

# %%
# lmlib: seq2seq
def decoder_step_fn(model: Seq2Seq):
    """A batched step function for :func:`lmlib.generate.greedy_decode` and
    :func:`lmlib.generate.beam_search`: its state is ``(decoder_state, memory)``, so
    that beam search reorders the encoder outputs together with the hypotheses. The
    step is traced once, for any number of hypotheses and source length."""
    if not model.built:  # decoding before any teacher-forced pass: create the weights
        model((np.full((1, 1), EOS_ID), np.full((1, 1), BOS_ID)))
    units = model.settings["units"]
    matrix, sequence = tf.TensorSpec([None, units]), tf.TensorSpec([None, None, units])
    memory_spec = (sequence, sequence, tf.TensorSpec([None, None], tf.bool), matrix)
    signature = [tf.TensorSpec([None], tf.int32), matrix, memory_spec]
    step = tf.function(model.decode_step, input_signature=signature)

    def step_fn(token_ids: np.ndarray, state):
        hidden, memory = state
        logits, hidden, _ = step(tf.constant(token_ids, tf.int32), hidden, memory)
        return logits.numpy(), (hidden, memory)

    return step_fn


def encoder_start_fn(model: Seq2Seq) -> Callable:
    """``start(source) -> (decoder_state, memory)`` for :func:`decode_batches`: the
    encoder, traced for any batch of sources (batch, T_x)."""
    encode = tf.function(model.encode, reduce_retracing=True)

    def start(source):
        memory, state = encode(source)
        return state, memory

    return start


def decode_batches(
    step_fn: Callable,
    start_fn: Callable,
    sources: Sequence[Sequence[int]],
    max_len: int,
    beam_width: int = 1,
    length_alpha: float = 1.0,
    batch_size: int = 256,
) -> list[list[int]]:
    """Target ids (without ``<bos>``/``<eos>``) for source id lists, ``batch_size``
    sources at a time, for any encoder-decoder: ``start_fn(source)`` turns a padded
    batch (batch, T_x) into the decoder's state (a nest whose axis 0 indexes
    sentences), ``step_fn`` is a batched step function (``greedy_decode``'s). With
    ``beam_width=1`` the batch is decoded greedily at once, else each sentence by beam
    search from its own row of the state (padded source positions stay masked).
    Sources are batched in order of length (less padding, and a greedy batch stops
    sooner); the outputs come back in the order of ``sources``."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    outputs = []
    for start in range(0, len(sources), batch_size):
        chunk = [sources[i] for i in order[start : start + batch_size]]
        state = start_fn(tf.constant(pad_batch(chunk)))
        if beam_width == 1:
            starts = np.full(len(chunk), BOS_ID)
            outputs += greedy_decode(step_fn, state, starts, EOS_ID, max_len)
            continue
        for row in range(len(chunk)):
            best = beam_search(
                step_fn,
                take_rows(state, [row], tf.gather),
                BOS_ID,
                EOS_ID,
                beam_width,
                max_len,
                length_alpha,
                take_fn=tf.gather,
            )[0]
            outputs.append(best.ids)
    in_order = [None] * len(sources)
    for position, i in enumerate(order):
        in_order[i] = outputs[position]
    return in_order


def translate_ids(
    model: Seq2Seq,
    sources: Sequence[Sequence[int]],
    max_len: int,
    beam_width: int = 1,
    length_alpha: float = 1.0,
    batch_size: int = 256,
) -> list[list[int]]:
    """Target ids for source id lists (each ending in ``<eos>``) by a :class:`Seq2Seq`:
    :func:`decode_batches` with its step and start functions."""
    step_fn, start_fn = decoder_step_fn(model), encoder_start_fn(model)
    return decode_batches(
        step_fn, start_fn, sources, max_len, beam_width, length_alpha, batch_size
    )
# %% [markdown]
# We translate the test sources greedily with each model and score them with our BLEU and with sacreBLEU
# {cite:p}`post2018` on the same tokens (`tokenize="none"`, no smoothing); the two must agree to $10^{-6}$.
# sacreBLEU wants a list of reference *streams* (`reference_streams` above).

# %%
test_sources = list(split_refs["test"])
test_ids = [src_vocab.encode(translation_tokens(s)) + [EOS_ID] for s in test_sources]
test_refs = [
    [translation_tokens(t) for t in split_refs["test"][s]] for s in test_sources
]
ref_streams = reference_streams(test_refs)
max_out = cfg.max_len + 10
outputs, decode_seconds = {}, {}
for name, model in models.items():
    start = time.perf_counter()
    outputs[name] = [
        tgt_vocab.decode(ids) for ids in translate_ids(model, test_ids, max_out)
    ]
    decode_seconds[name] = time.perf_counter() - start

# %%
exact = sacrebleu.metrics.BLEU(tokenize="none", smooth_method="none", force=True)
bleu_rows, bleu_gap = {}, 0.0
for name, hyps in outputs.items():
    ours = corpus_bleu(hyps, test_refs)
    theirs = exact.corpus_score([" ".join(h) for h in hyps], ref_streams)
    bleu_gap = max(bleu_gap, abs(ours.score - theirs.score))
    bleu_rows[name] = ours
    print(f"{name:>16}: {ours}")
print(f"largest |ours - sacreBLEU|: {bleu_gap:.1e}")
assert bleu_gap <= 1e-6
glue("bleu_gap", bleu_gap, display=False)

# %% [markdown]
# Our BLEU equals sacreBLEU's to {glue:text}`bleu_gap:.1e` on every model's output. What we report below is
# sacreBLEU with its default settings on the space-joined lower-cased tokens, with its signature (so that
# anyone can recompute it), and chrF {cite:p}`popovic2015`, an F-score of character n-grams that gives credit
# to a partly right word. The default smoothing only matters when some n-gram order has no match at all.

# %%
# lmlib: metrics
def sacre_scores(
    hypotheses: Sequence[Sequence[str]], streams: list[list[str | None]]
) -> tuple:
    """sacreBLEU's (BLEU, chrF) score objects, default settings, of tokenised
    ``hypotheses`` (joined by spaces) against reference ``streams``
    (:func:`reference_streams`). Needs ``sacrebleu``, imported here."""
    import sacrebleu

    joined = [" ".join(h) for h in hypotheses]
    return (
        sacrebleu.metrics.BLEU(force=True).corpus_score(joined, streams),
        sacrebleu.metrics.CHRF().corpus_score(joined, streams),
    )


# %%
bleu_metric, chrf_metric = sacrebleu.metrics.BLEU(force=True), sacrebleu.metrics.CHRF()
joined = [" ".join(h) for h in outputs["no attention"]]
bleu_metric.corpus_score(
    joined, ref_streams
)  # a signature exists once a metric has run
chrf_metric.corpus_score(joined, ref_streams)
bleu_signature = str(bleu_metric.get_signature())
chrf_signature = str(chrf_metric.get_signature())
print("BLEU signature:", bleu_signature)
print("chrF signature:", chrf_signature)
beam_n = min(cfg.beam_sentences, len(test_ids))
beam_streams = [stream[:beam_n] for stream in ref_streams]

# %% [markdown]
# Beam search decodes one sentence at a time, so it runs on the first {glue:text}`beam_n` test sources, and
# the table compares it with greedy decoding on those same sentences.

# %%
results = {}
for name, model in models.items():
    start = time.perf_counter()
    beam_ids = translate_ids(model, test_ids[:beam_n], max_out, cfg.beam_width)
    beam_seconds = time.perf_counter() - start
    beam_hyps = [tgt_vocab.decode(ids) for ids in beam_ids]
    bleu, chrf = sacre_scores(outputs[name], ref_streams)
    greedy_sub, _ = sacre_scores(outputs[name][:beam_n], beam_streams)
    beam_sub, _ = sacre_scores(beam_hyps, beam_streams)
    history = histories[name]
    results[name] = {
        "parameters": models[name].count_params(),
        "train s": history["seconds"][-1],
        "ms/step": history["seconds"][-1] / cfg.train_steps * 1e3,
        "valid loss": history["valid_loss"][-1],
        "BLEU": bleu.score,
        "chrF": chrf.score,
        "greedy BLEU (beam set)": greedy_sub.score,
        f"beam {cfg.beam_width} BLEU (beam set)": beam_sub.score,
        "ms/sentence greedy": decode_seconds[name] / len(test_ids) * 1e3,
        "ms/sentence beam": beam_seconds / beam_n * 1e3,
    }
results_table = pd.DataFrame(results).T
display(
    results_table.style.format("{:,.0f}", subset=["parameters"]).format(
        "{:.2f}", subset=list(results_table.columns[1:])
    )
)
glue("beam_n", beam_n, display=False)

# %%
short = {"no attention": "none", "Bahdanau": "bahdanau", "Luong (general)": "luong"}
for name, key in short.items():
    for column, label in (
        ("BLEU", "bleu"),
        ("chrF", "chrf"),
        ("ms/step", "ms_step"),
        ("valid loss", "valid"),
    ):
        glue(f"{label}_{key}", results[name][column], display=False)
    glue(
        f"beam_{key}",
        results[name][f"beam {cfg.beam_width} BLEU (beam set)"],
        display=False,
    )
    glue(f"greedy_sub_{key}", results[name]["greedy BLEU (beam set)"], display=False)
best = max(("Bahdanau", "Luong (general)"), key=lambda n: results[n]["BLEU"])
attention_gain = results[best]["BLEU"] - results["no attention"]["BLEU"]
assert attention_gain > 0, "the prose says attention beats no attention"
glue("best_attention", best, display=False)
glue("attention_gain", attention_gain, display=False)
glue("bleu_best", results[best]["BLEU"], display=False)
glue("beam_width_g", cfg.beam_width, display=False)
glue("bleu_signature", bleu_signature, display=False)

# %% [markdown]
# With the same {glue:text}`train_steps_g` training steps, Bahdanau's model reaches sacreBLEU
# {glue:text}`bleu_bahdanau:.1f`, Luong's {glue:text}`bleu_luong:.1f` and the model without attention
# {glue:text}`bleu_none:.1f`: the better attention model, {glue:text}`best_attention`, is
# {glue:text}`attention_gain:.1f` points above no attention. chrF gives no attention
# {glue:text}`chrf_none:.1f`, Bahdanau {glue:text}`chrf_bahdanau:.1f` and Luong {glue:text}`chrf_luong:.1f`.
# The BLEU signature is {glue:text}`bleu_signature`. The validation losses at the end of training, in nats
# per target token, are {glue:text}`valid_none:.3f` without attention, {glue:text}`valid_bahdanau:.3f` for
# Bahdanau's model and {glue:text}`valid_luong:.3f` for Luong's: the loss measures what a model has learnt,
# BLEU what its decoder makes of it.
#
# Beam search with width {glue:text}`beam_width_g` against greedy decoding on the beam set: no attention
# {glue:text}`greedy_sub_none:.1f` → {glue:text}`beam_none:.1f`, Bahdanau {glue:text}`greedy_sub_bahdanau:.1f`
# → {glue:text}`beam_bahdanau:.1f`, Luong {glue:text}`greedy_sub_luong:.1f` → {glue:text}`beam_luong:.1f`.
# A beam finds translations the model itself scores higher; whether BLEU follows depends on how well the
# model's probabilities track the references, and on so few sentences a point of BLEU is within noise.
#
# ## Where the bottleneck hurts: BLEU by source length
#
# Bahdanau et al.'s Figure 2 plots BLEU against sentence length: without attention the score falls as
# sentences grow, with attention it holds. We cut the test set by source length (tokens, punctuation
# included) at `length_edges`.

# %%
def length_buckets(
    lengths: list[int], edges: tuple[int, ...]
) -> list[tuple[str, list[int]]]:
    """(label, indices) of each length bucket: 1..e1, e1+1..e2, ..., > last edge."""
    bounds = [0, *edges, max(lengths)]
    buckets = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        index = [i for i, n in enumerate(lengths) if lo < n <= hi]
        label = f"{lo + 1}-{hi}" if hi != bounds[-1] else f"> {lo}"
        buckets.append((label, index))
    return buckets


src_lengths = [len(translation_tokens(s)) for s in test_sources]
buckets = length_buckets(src_lengths, cfg.length_edges)
by_length = pd.DataFrame(
    {
        name: {
            f"{label} ({len(index)})": sacre_scores(
                [outputs[name][i] for i in index],
                [[s[i] for i in index] for s in ref_streams],
            )[0].score
            for label, index in buckets
        }
        for name in models
    }
)
display(by_length.style.format("{:.1f}"))

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name in models:
    ax.plot(range(len(buckets)), by_length[name], marker="o", label=name)
ax.set_xticks(range(len(buckets)), [label for label, _ in buckets])
ax.set(xlabel="source length (tokens)", ylabel="sacreBLEU")
ax.legend()
ax.set_title("BLEU by source length (after Bahdanau et al., Fig. 2)")
plt.show()
longest = by_length.iloc[-1]
long_gain = float(longest[best] - longest["no attention"])
glue("long_gain", long_gain, display=False)
glue("long_bucket", buckets[-1][0], display=False)
glue("long_count", len(buckets[-1][1]), display=False)

# %% [markdown]
# On the longest sources ({glue:text}`long_bucket` tokens, {glue:text}`long_count` sentences) the
# {glue:text}`best_attention` model leads the model without attention by {glue:text}`long_gain:.1f` BLEU,
# against {glue:text}`attention_gain:.1f` over the whole test set.
#
# ## Where the decoder looks
#
# `attention_map` re-reads a translation with teacher forcing and records the weights $\alpha_{ij}$ of each
# step. We draw them for the Bahdanau and Luong models on three test sentences, the last one the longest
# source of the test set; each row is a target token, each column a source token.

# %%
# lmlib: seq2seq
def attention_map(
    model: Seq2Seq, source: Sequence[int], target: Sequence[int]
) -> np.ndarray:
    """The decoder's attention weights (len(target) + 1, len(source)) while it reads
    ``<bos>`` and then ``target`` (teacher forcing): row i is where it looked when it
    predicted target token i (the last row: ``<eos>``)."""
    memory, state = model.encode(tf.constant([list(source)], tf.int32))
    rows = []
    for token in [BOS_ID, *target]:
        _, state, weights = model.decode_step(
            tf.constant([token], tf.int32), state, memory
        )
        if weights is None:
            raise ValueError(
                f"a model with attention={model.attention!r} has no weights"
            )
        rows.append(np.asarray(weights)[0])
    return np.stack(rows)


def translate(
    model: Seq2Seq,
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    texts: Sequence[str],
    max_len: int = 50,
    beam_width: int = 1,
    length_alpha: float = 1.0,
) -> list[str]:
    """Translate raw sentences: tokenise (:func:`lmlib.text.translation_tokens`),
    encode, decode, and join the output tokens with spaces."""
    sources = [src_vocab.encode(translation_tokens(t)) + [EOS_ID] for t in texts]
    outputs = translate_ids(model, sources, max_len, beam_width, length_alpha)
    return [" ".join(tgt_vocab.decode(ids)) for ids in outputs]
# %%
def plot_attention(
    ax, weights: np.ndarray, source: list[str], target: list[str], title: str
):
    """A heatmap of attention weights (target rows, source columns)."""
    ax.imshow(weights, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=90, fontsize=8)
    ax.set_yticks(range(len(target)), target, fontsize=8)
    ax.set_title(title, fontsize=9)


examples = [0, 1, int(np.argmax(src_lengths))]
fig, axes = plt.subplots(len(examples), 2, figsize=(10, 3.4 * len(examples)))
for row, i in enumerate(examples):
    source = [*translation_tokens(test_sources[i]), "<eos>"]
    for ax, name in zip(axes[row], ("Bahdanau", "Luong (general)"), strict=True):
        target = outputs[name][i]
        weights = attention_map(models[name], test_ids[i], tgt_vocab.encode(target))
        plot_attention(ax, weights, source, [*target, "<eos>"], name)
fig.tight_layout()
plt.show()

# %% [markdown]
# Read the maps against the BLEU table. A model that has learnt to align puts each row's weight on the
# source words it is translating, near the diagonal where the two word orders agree; a model whose weight
# stays on one or two positions (`<eos>`, the final punctuation) whatever it writes has not learnt to use
# attention yet, and its translations lean on the decoder's state alone. The Luong model attends with the
# state that has already read $y_{i-1}$, Bahdanau's with the one before.
#
# ## Translations, good and bad
#
# Sentence-level chrF ranks the {glue:text}`best_attention` model's test translations; here are three of the
# best and three of the worst among sources of five tokens or more, with every reference.

# %%
def ranked_examples(
    sources, hyps, references, min_len: int = 5, k: int = 3
) -> pd.DataFrame:
    """The ``k`` best and ``k`` worst translations by sentence chrF (sources of at
    least ``min_len`` tokens), with their references."""
    rows = []
    for source, hyp, refs in zip(sources, hyps, references, strict=True):
        if len(translation_tokens(source)) >= min_len:
            joined = [" ".join(r) for r in refs]
            chrf = sacrebleu.sentence_chrf(" ".join(hyp), joined).score
            rows.append(
                {
                    "source": source,
                    "translation": " ".join(hyp),
                    "references": " | ".join(joined),
                    "chrF": chrf,
                }
            )
    ranked = sorted(rows, key=lambda r: -r["chrF"])
    return pd.DataFrame(ranked[:k] + ranked[-k:])


with pd.option_context("display.max_colwidth", 80):
    display(
        ranked_examples(test_sources, outputs[best], test_refs)
        .style.format("{:.1f}", subset=["chrF"])
        .hide(axis="index")
    )

# %% [markdown]
# ## Save, reload, translate
#
# A translator is its weights and its two vocabularies. `save_translator` writes both; `load_translator`
# rebuilds the model from its settings and loads the weights. The reloaded model translates raw test
# sentences exactly as the trained one did.

# %%
# lmlib: seq2seq
def save_translator(
    folder: str | Path, model: Seq2Seq, src_vocab: Vocab, tgt_vocab: Vocab
) -> Path:
    """Write ``model.weights.h5`` and ``translator.json`` (the model's settings and both
    vocabularies) to ``folder``; :func:`load_translator` reads them back."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_weights(folder / "model.weights.h5")
    meta = dict(
        settings=model.settings, src_itos=src_vocab.itos, tgt_itos=tgt_vocab.itos
    )
    (folder / "translator.json").write_text(json.dumps(meta, ensure_ascii=False))
    return folder


def load_translator(folder: str | Path) -> tuple[Seq2Seq, Vocab, Vocab]:
    """The (model, src_vocab, tgt_vocab) saved by :func:`save_translator`."""
    folder = Path(folder)
    meta = json.loads((folder / "translator.json").read_text())
    model = Seq2Seq(**meta["settings"])
    model((np.full((1, 2), EOS_ID), np.full((1, 2), BOS_ID)))  # create the weights
    model.load_weights(folder / "model.weights.h5")
    return model, Vocab.from_itos(meta["src_itos"]), Vocab.from_itos(meta["tgt_itos"])
# %%
with tempfile.TemporaryDirectory() as folder:
    save_translator(folder, models[best], src_vocab, tgt_vocab)
    reloaded, src_vocab2, tgt_vocab2 = load_translator(folder)
raw_sentences = test_sources[:5]
translations = translate(reloaded, src_vocab2, tgt_vocab2, raw_sentences, max_out)
for sentence, translation in zip(raw_sentences, translations, strict=True):
    print(f"{sentence}  ->  {translation}")
assert translations == [" ".join(outputs[best][i]) for i in range(len(raw_sentences))]

# %% [markdown]
# ## Exercises
#
# 1. **The dot score.** Train `Seq2Seq(..., attention="dot")` with the same settings. Predict, from
#    {eq}`eq-s2s-luong-score`, what it loses against *general* (hint: which space are $s_i$ and $h_j$ compared
#    in?), then measure BLEU and the validation loss. If a Luong model's attention maps stay on a few
#    positions, measure the entropy of its weights during training, and try dividing the scores by
#    $\sqrt{n}$ (the Transformer's choice, chapter 07) or a smaller learning rate.
# 2. **A bidirectional encoder.** Bahdanau et al. read the source in both directions. Replace the encoder by
#    `keras.layers.Bidirectional` (units halved so the outputs keep their size) and start the decoder from a
#    projection of the backward state. Which length bucket should gain most?
# 3. **Length normalisation.** Decode the beam set with `length_alpha` 0, 0.5, 1 and 2. Predict how the mean
#    output length and the brevity penalty move, then check them in the `BLEUScore`.
# 4. **A leaky split.** Split the Anki *pairs* at random instead of the sources, train the Bahdanau model,
#    and count the test sources that also occur in training. Predict the BLEU change before you measure it.
# 5. **Smoothing.** Show that BLEU {eq}`eq-s2s-bleu` of a single sentence with no matching 4-gram is 0
#    whatever its other precisions, and compute what sacreBLEU's `exp` smoothing gives instead for a
#    four-word hypothesis with one wrong word.
#
# ## Summary
#
# * Split a translation corpus by unique source and score every source against all of its translations;
#   otherwise the test set measures memory. Pad per batch, and bucket by length: here padding fell from
#   {glue:text}`pad_plain:.1f`% to {glue:text}`pad_bucketed:.1f`% of the positions.
# * Without attention the source reaches the decoder through one vector {eq}`eq-s2s-none`. Attention gives
#   each target token its own context: additive before the recurrence {eq}`eq-s2s-bahdanau-attention`, or
#   multiplicative after it {eq}`eq-s2s-luong-output`. Ours equals Keras's layers (max differences
#   {glue:text}`parity_additive:.1e` and {glue:text}`parity_dot:.1e`), and padded positions get weight 0.
# * After {glue:text}`train_steps_g` steps the {glue:text}`best_attention` model scores sacreBLEU
#   {glue:text}`bleu_best:.1f` against {glue:text}`bleu_none:.1f` without attention, and the gap on the longest
#   sources is {glue:text}`long_gain:.1f` BLEU.
# * BLEU is clipped n-gram precision with a brevity penalty {eq}`eq-s2s-bleu`; `lmlib.metrics.corpus_bleu`
#   equals sacreBLEU to {glue:text}`bleu_gap:.1e`. Report sacreBLEU's signature with the score.
# * `lmlib.generate` decodes greedily in batches and with beam search from one step-function interface;
#   XLA pays only when its compile time, times the batch shapes, is repaid by faster steps.
