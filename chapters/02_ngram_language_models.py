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
# # N-gram language models and perplexity
#
# We build count-based n-gram language models from scratch (maximum likelihood, add-k, Jelinek–Mercer
# interpolation, back-off and Kneser–Ney, plain and modified), check Kneser–Ney and maximum likelihood against
# `nltk.lm` to the last digit (and, in the unit tests, every model against a plain dictionary-based version of
# its equations), and measure their perplexity on the Penn Treebank. The best of them, a modified Kneser–Ney
# 5-gram, is the baseline every neural language model in this book has to beat.

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
# The setup cell imports what we need, seeds everything and shows the active profile. Counting and scoring are
# fast, so the profiles only differ in how finely the smoothing parameters are tuned and how large the
# comparison with `nltk.lm` (slow, pure Python) is. A grid is given as (first, last, step), the add-k grid as
# (first, last, number of log-spaced values); the cell after the table expands them.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from myst_nb import glue

from lmlib.data import fetch
from lmlib.plot import use_style
from lmlib.profiles import setup_chapter

cfg = setup_chapter(
    "02",
    quick=dict(
        discount_grid=(0.5, 1.0, 0.05),
        add_k_grid=(1e-4, 1.0, 9),
        lambda_grid=(0.1, 0.9, 0.1),
        nltk_train_sentences=300,
        nltk_test_sentences=30,
    ),
    full=dict(
        discount_grid=(0.4, 1.0, 0.02),
        add_k_grid=(1e-5, 1.0, 26),
        lambda_grid=(0.02, 0.98, 0.02),
        nltk_train_sentences=600,
        nltk_test_sentences=60,
    ),
)
use_style()

# %%
def linear_grid(first: float, last: float, step: float) -> list[float]:
    """first, first + step, ..., last as floats (rounded to hide floating-point
    noise)."""
    return [round(float(x), 6) for x in np.arange(first, last + step / 2, step)]


discount_grid = linear_grid(*cfg.discount_grid)
add_k_grid = [
    float(k)
    for k in np.logspace(
        np.log10(cfg.add_k_grid[0]), np.log10(cfg.add_k_grid[1]), cfg.add_k_grid[2]
    )
]
# values near 1 too: an order whose MLE is reliable (the unigram) wants most weight
lambda_grid = sorted(set(linear_grid(*cfg.lambda_grid)) | {0.95, 0.99})
print(
    f"{len(discount_grid)} discounts, {len(add_k_grid)} values of k, "
    f"{len(lambda_grid)} lambdas (last three: {lambda_grid[-3:]})"
)

# %% [markdown]
# ## Language models, the Markov assumption and maximum likelihood
#
# A language model assigns a probability to every sequence of tokens $w_1^T = w_1, \dots, w_T$. By the chain
# rule of probability this is a product of next-token predictions, each conditioned on the whole history
# $w_1^{t-1}$:
#
# $$
# P(w_1^T) = \prod_{t=1}^{T} P(w_t \mid w_1^{t-1})
# $$ (eq-ngram-chain-rule)
#
# An **n-gram model** makes the Markov assumption of order $n-1$: only the last $n-1$ tokens matter,
#
# $$
# P(w_t \mid w_1^{t-1}) \approx P(w_t \mid w_{t-n+1}^{t-1}),
# $$ (eq-ngram-markov)
#
# so the model is a table of conditional distributions, one per *context* (history) $h = w_{t-n+1}^{t-1}$.
# We write $c(\cdot)$ for a count in the training data and $\bullet$ for "any word", as Chen and Goodman do
# {cite:p}`chen1998`: $c(h\,\bullet) = \sum_w c(h\,w)$ is how often $h$ is followed by something, and
# $N_{1+}(h\,\bullet) = |\{w : c(h\,w) > 0\}|$ is the number of distinct words seen after $h$. The
# maximum-likelihood estimate (MLE) is the relative frequency
#
# $$
# P_{\mathrm{ML}}(w_i \mid w_{i-n+1}^{i-1}) = \frac{c(w_{i-n+1}^{i})}{c(w_{i-n+1}^{i-1}\,\bullet)} .
# $$ (eq-ngram-mle)
#
# **Sentence boundaries.** Each sentence is padded with $n-1$ start symbols `<s>` and ends with one `</s>`.
# `</s>` is predicted (the model must say when a sentence ends, and its probability counts in the
# perplexity), `<s>` never is (it is only context). This is the convention behind the published numbers on
# this corpus, and the one `NGramCounts(padding="book")` below implements.
#
# **Evaluation.** On held-out text with $N$ predicted tokens (words and `</s>`), the cross-entropy of the model
# and its perplexity are
#
# $$
# H = -\frac{1}{N}\sum_{t=1}^{N} \log_2 P(w_t \mid w_{t-n+1}^{t-1}) \quad\text{bits per token}, \qquad
# \mathrm{PPL} = 2^{H} = \exp\Bigl(-\frac{1}{N}\sum_{t=1}^{N} \ln P(w_t \mid w_{t-n+1}^{t-1})\Bigr).
# $$ (eq-ngram-perplexity)
#
# A perplexity of $K$ means the model is, on average, as uncertain as if it chose uniformly among $K$ words.
# Lower is better; a single token with probability 0 makes it infinite, and this is exactly what happens to
# the MLE on new text.

# %% [markdown]
# ## The Penn Treebank
#
# We use the Penn Treebank (PTB) {cite:p}`marcus1993`, Wall Street Journal text, in the preprocessed version
# that Mikolov et al. used for language modelling {cite:p}`mikolov2011` (the `ptb.*.txt` files distributed
# with Mikolov's RNNLM toolkit; the data's README names that paper): one sentence per line, lower-cased,
# numbers replaced by `N`, and every word outside a fixed vocabulary of frequent words replaced by `<unk>`.
# The vocabulary is therefore **closed**: every word of valid and test also occurs in train (the cell below
# asserts it), and `<unk>` is an ordinary word. (Our models still map an unknown word to `<unk>`.)

# %%
def read_ptb(split: str) -> list[list[str]]:
    """The sentences of one PTB split, as lists of words."""
    text = fetch("ptb", f"ptb.{split}.txt").read_text(encoding="utf-8")
    return [line.split() for line in text.splitlines() if line.strip()]


train_sents, valid_sents, test_sents = (
    read_ptb(split) for split in ("train", "valid", "test")
)
train_vocab = {w for s in train_sents for w in s}
closed = all(w in train_vocab for s in valid_sents + test_sents for w in s)
assert closed  # closed vocabulary
print(" ".join(test_sents[0]))

# %% [markdown]
# The sizes of the three splits, counting `</s>` as a predicted token:

# %%
split_stats = pd.DataFrame(
    {
        name: {
            "sentences": len(sents),
            "words": sum(map(len, sents)),
            "predicted tokens (+ </s>)": sum(map(len, sents)) + len(sents),
        }
        for name, sents in [
            ("train", train_sents),
            ("valid", valid_sents),
            ("test", test_sents),
        ]
    }
).T
for split in ("train", "test"):
    n_tokens = int(split_stats.loc[split, "predicted tokens (+ </s>)"])
    glue(f"n_{split}_tokens", n_tokens, display=False)
glue("n_vocab", len(train_vocab) + 1, display=False)
glue("n_vocab_words", len(train_vocab), display=False)
split_stats

# %% [markdown]
# Train has {glue:text}`n_train_tokens:,` predicted tokens and test {glue:text}`n_test_tokens:,`; the
# {glue:text}`n_vocab_words:,` words plus `</s>` make a vocabulary of {glue:text}`n_vocab:,` predictable symbols.
#
# ## Counting n-grams: integer ids and numpy
#
# Tuples of strings in Python dictionaries would work, but they are slow and large for the
# {glue:text}`n_distinct_ngrams:,` distinct n-grams of orders 1–5 in PTB train (counted below).
# `NGramCounts` gives every word an integer id, and every distinct k-gram an id as well: the key of a k-gram
# is `id(its first k-1 words) * V + id(its last word)`, so all k-grams sit in one sorted `int64` array and a
# lookup is a binary search per word (`np.searchsorted`), done for every test position at once. One pass per
# order with `np.unique` gives the counts, the context of each k-gram (the (k-1)-gram before its last word),
# its suffix (the (k-1)-gram after its first word) and, by counting distinct (k+1)-grams per suffix, the
# **continuation counts** $N_{1+}(\bullet\, w_{i-k+1}^{i})$ that Kneser–Ney needs. `<unk>` always gets an id
# (with count 0 when the corpus has none), so every model can score text with unknown words.

# %% [markdown]
# The exported cells below form `lmlib.ngram`; later chapters import them from there. The first one holds the
# imports and the three special symbols.

# %%
# lmlib: ngram
from collections.abc import Iterable, Sequence
from typing import Self

import numpy as np

BOS, EOS, UNK = "<s>", "</s>", "<unk>"

# %%
# lmlib: ngram
class NGramCounts:
    """Counts of the n-grams of orders 1..``order`` of a corpus, as arrays over integer
    ids.

    Words get ids (``<s>`` is 0, ``</s>`` is 1; ``<unk>`` is always in the vocabulary,
    with count 0 if the corpus has none). Each distinct k-gram gets an id too: its key
    is ``id(first k-1 words) * V + id(last word)``, kept sorted in ``keys[k]``, so
    looking a k-gram up is k-1 binary searches. Per order k (index 0 is the empty gram,
    a single id 0):

    * ``count[k][g]``: how often k-gram ``g`` was counted;
    * ``context[k][g]``: id of its first k-1 words, ``suffix[k][g]``: id of its last k-1
      words;
    * ``cont[k][g]`` (k < order): continuation count N1+(• g), the number of distinct
      (k+1)-grams ending in g.

    ``padding="book"`` pads a sentence with order-1 ``<s>`` and one ``</s>`` and counts
    the n-grams ending on a predicted token (a word or ``</s>``, never ``<s>``).
    ``padding="nltk"`` reproduces ``nltk.lm.preprocessing.padded_everygram_pipeline``:
    order-1 ``<s>``, order-1 ``</s>``, and every n-gram of the padded sentence counted.
    """

    def __init__(
        self, sentences: Iterable[Sequence[str]], order: int, padding: str = "book"
    ):
        if padding not in ("book", "nltk"):
            raise ValueError(f"padding must be 'book' or 'nltk', not {padding!r}")
        sentences = [list(s) for s in sentences]
        self.order, self.padding = order, padding
        words = {w for s in sentences for w in s} | {UNK}
        self.vocab = [BOS, EOS, *sorted(words - {BOS, EOS})]
        self.word_id = {w: i for i, w in enumerate(self.vocab)}
        right = 1 if padding == "book" else order - 1
        tokens, offsets = [], []
        for sentence in sentences:
            padded = [BOS] * (order - 1) + sentence + [EOS] * right
            tokens.extend(self.word_id[w] for w in padded)
            offsets.extend(range(len(padded)))
        tokens, offsets = np.array(tokens, np.int64), np.array(offsets, np.int64)
        # the positions whose n-grams are counted
        counted = offsets >= (order - 1 if padding == "book" else 0)
        V = len(self.vocab)
        self.keys = [np.zeros(1, np.int64), np.arange(V, dtype=np.int64)]
        self.count = [
            np.array([counted.sum()]),
            np.bincount(tokens[counted], minlength=V),
        ]
        self.context = [np.zeros(1, np.int64), np.zeros(V, np.int64)]
        self.suffix = [np.zeros(1, np.int64), np.zeros(V, np.int64)]
        gram_at = (
            tokens  # id of the (k-1)-gram ending at each position (-1: does not fit)
        )
        for k in range(2, order + 1):
            fits = offsets >= k - 1
            key = gram_at[np.flatnonzero(fits) - 1] * V + tokens[fits]
            keys, inverse = np.unique(key, return_inverse=True)
            suffix = np.empty(len(keys), np.int64)
            suffix[inverse] = gram_at[fits]
            self.keys.append(keys)
            self.count.append(np.bincount(inverse[counted[fits]], minlength=len(keys)))
            self.context.append(keys // V)
            self.suffix.append(suffix)
            gram_at = np.full(len(tokens), -1, np.int64)
            gram_at[fits] = inverse
        self.cont = [
            np.bincount(
                self.suffix[k + 1][self.count[k + 1] > 0], minlength=len(self.keys[k])
            )
            for k in range(order)
        ]

    def ids(self, windows: np.ndarray, k: int) -> np.ndarray:
        """Ids of the k-grams in the last k columns of ``windows``; -1 if unseen."""
        if k == 0:
            return np.zeros(len(windows), np.int64)
        gram = windows[:, -k].astype(np.int64)
        for j in range(2, k + 1):  # extend the gram by one word to the right: j-1 -> j
            key = gram * len(self.vocab) + windows[:, j - k - 1]
            keys = self.keys[j]
            pos = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
            gram = np.where((gram >= 0) & (keys[pos] == key), pos, -1)
        return gram

    def windows(self, sentences: Iterable[Sequence[str]], order: int) -> np.ndarray:
        """(num_tokens, order) word ids: each predicted token after its order-1 context.

        Sentences are padded with order-1 ``<s>`` and one ``</s>``; words outside the
        vocabulary become ``<unk>``.
        """
        unk, rows = self.word_id[UNK], []
        for sentence in sentences:
            padded = [BOS] * (order - 1) + list(sentence) + [EOS]
            ids = np.array([self.word_id.get(w, unk) for w in padded], np.int64)
            rows.append(np.lib.stride_tricks.sliding_window_view(ids, order))
        return np.concatenate(rows)

    def per_context(self, k: int, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` (one per k-gram) per context, e.g. c(h) = Σ_w c(h w)."""
        return np.bincount(
            self.context[k], weights=values, minlength=len(self.keys[k - 1])
        )

# %% [markdown]
# All models share one interface, in the base class: `windows` turns sentences into rows of word ids
# `[w_{t-n+1}, ..., w_t]` (one row per predicted token, padded as above), `prob_windows` returns
# $P(w_t \mid w_{t-n+1}^{t-1})$ for every row, and `perplexity`, `distribution` (a whole next-word
# distribution), `logprob` and `sample` are built on it. A subclass only defines `_prob(windows, k)`, the
# probability using orders up to k, usually by recursion on k.

# %%
# lmlib: ngram
class NGramLM:
    """Base class of the count-based models: rows of word ids in, probabilities out.

    Subclasses implement ``_prob(windows, k)``: P_k(w | h) for each row ``[..., h, w]``
    of ``windows`` using orders up to k. A model is fitted on sentences (lists of words)
    or on a shared :class:`NGramCounts` of at least its order (one set of order-5 counts
    serves every model of order 1-5). Unknown words are mapped to ``<unk>`` everywhere.
    """

    def __init__(self, order: int):
        self.order = order
        self.counts: NGramCounts | None = None

    def fit(self, corpus: Iterable[Sequence[str]] | NGramCounts) -> Self:
        """Count ``corpus`` (or take its counts) and precompute what ``_prob`` needs."""
        if isinstance(corpus, NGramCounts):
            counts = corpus
        else:
            counts = NGramCounts(corpus, self.order)
        if counts.order < self.order:
            raise ValueError(
                f"counts of order {counts.order} cannot fit a model of "
                f"order {self.order}"
            )
        self.counts = counts
        self._prepare()
        return self

    def _prepare(self) -> None:
        """Precompute what ``_prob`` needs (nothing by default)."""

    def _base(self, words: np.ndarray) -> np.ndarray:
        """P_0: uniform over the predictable words (every word but ``<s>``)."""
        return np.where(words == 0, 0.0, 1.0 / (len(self.counts.vocab) - 1))

    def _id(self, word: str) -> int:
        """The id of ``word``, or of ``<unk>`` if it is not in the vocabulary."""
        word_id = self.counts.word_id
        return word_id.get(word, word_id[UNK])

    def windows(self, sentences: Iterable[Sequence[str]]) -> np.ndarray:
        """(num_tokens, order) word ids of ``sentences``
        (:meth:`NGramCounts.windows`)."""
        return self.counts.windows(sentences, self.order)

    def prob_windows(self, windows: np.ndarray) -> np.ndarray:
        """P(w | h) for each row ``[h..., w]`` of word ids (its last ``order``
        columns)."""
        return self._prob(windows[:, windows.shape[1] - self.order :], self.order)

    def token_logprobs(self, sentences: Iterable[Sequence[str]]) -> np.ndarray:
        """Natural-log probability of every predicted token (``-inf`` where P = 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.prob_windows(self.windows(sentences)))

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """exp of the cross-entropy in nats per token; ``inf`` if a token has P = 0."""
        return float(np.exp(-self.token_logprobs(sentences).mean()))

    def distribution(self, context: Sequence[str]) -> np.ndarray:
        """P(w | context) for every word id w, shape (V,); ``<s>`` pads the context."""
        vocab_size = len(self.counts.vocab)
        ctx = [self._id(w) for w in [BOS] * (self.order - 1) + list(context)]
        windows = np.empty((vocab_size, self.order), np.int64)
        windows[:, :-1] = ctx[len(ctx) - self.order + 1 :]
        windows[:, -1] = np.arange(vocab_size)
        return self.prob_windows(windows)

    def logprob(self, word: str, context: Sequence[str] = ()) -> float:
        """Natural-log P(word | context), the context padded with ``<s>``, cut to
        order-1.

        Unknown words (in ``word`` or ``context``) are mapped to ``<unk>``, as in
        :meth:`windows`.
        """
        with np.errstate(divide="ignore"):
            return float(np.log(self.distribution(context)[self._id(word)]))

    def sample(self, rng: np.random.Generator, max_words: int = 40) -> list[str]:
        """Draw one sentence word by word (stops at ``</s>`` or after ``max_words``)."""
        words: list[str] = []
        while len(words) < max_words:
            probs = self.distribution(words)
            next_id = int(rng.choice(len(probs), p=probs / probs.sum()))
            if next_id == 1:
                break
            words.append(self.counts.vocab[next_id])
        return words

    def _lookup(self, windows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Ids of the context (k-1)-gram and of the k-gram in each row's last k
        words."""
        return self.counts.ids(windows[:, :-1], k - 1), self.counts.ids(windows, k)

# %% [markdown]
# ## Why maximum likelihood fails
#
# Before smoothing anything, count how much of the test set the training counts cover. Below, a test n-gram is
# *unseen* when it never occurs in train: the MLE of {eq}`eq-ngram-mle` gives it probability 0 (or leaves it
# undefined when its context was never seen either).

# %%
counts5 = NGramCounts(train_sents, order=5)  # orders 1..5, shared by every model below
test_windows5 = counts5.windows(test_sents, 5)  # (num_test_tokens, 5) word ids
unseen_fraction = {}
for k in range(1, 6):
    gram_ids = counts5.ids(test_windows5, k)
    seen = (gram_ids >= 0) & (counts5.count[k][np.maximum(gram_ids, 0)] > 0)
    unseen_fraction[k] = 1.0 - float(seen.mean())
    glue(f"unseen_{k}", float(100 * unseen_fraction[k]), display=False)
n_distinct = sum(int(np.sum(counts5.count[k] > 0)) for k in range(1, 6))
glue("n_distinct_ngrams", n_distinct, display=False)
assert unseen_fraction[5] > 0.5  # "most of the test set" (text below)
pd.Series(unseen_fraction, name="test n-grams unseen in train").rename_axis(
    "n"
).to_frame().style.format("{:.1%}")

# %% [markdown]
# Every test word occurs in train (closed vocabulary: {glue:text}`unseen_1:.1f`% unseen unigrams), but
# {glue:text}`unseen_2:.1f`% of the test bigrams, {glue:text}`unseen_3:.1f`% of the trigrams and
# {glue:text}`unseen_5:.1f`% of the 5-grams never occur in the {glue:text}`n_train_tokens:,` training
# tokens. A 5-gram MLE would give probability 0 to most of the test set. Smoothing moves some probability
# mass from seen to unseen events; the methods differ in how much they move and where it goes.
#
# ## Add-k (Lidstone) smoothing
#
# The simplest fix pretends that every word was seen $k$ more times after every context
# ($k=1$ is Laplace's add-one), with $|V|$ the number of predictable words:
#
# $$
# P_{\text{add-}k}(w_i \mid w_{i-n+1}^{i-1}) = \frac{c(w_{i-n+1}^{i}) + k}{c(w_{i-n+1}^{i-1}\,\bullet) + k|V|} .
# $$ (eq-ngram-add-k)
#
# With $|V|$ = {glue:text}`n_vocab:,` and most contexts seen only a few times, the pseudo-counts swamp the real ones:
# the unseen words of a context collectively get most of its mass. `k=0` gives the MLE.

# %%
# lmlib: ngram
class AddKLM(NGramLM):
    """Add-k (Lidstone) smoothing of order n: P(w|h) = (c(h w) + k) / (c(h) + k |V|).

    |V| counts the predictable words (all but ``<s>``). ``k=0`` is the
    maximum-likelihood estimate, which gives probability 0 to unseen n-grams and to
    every word after an unseen context.
    """

    def __init__(self, order: int, k: float = 1.0):
        super().__init__(order)
        self.k = k

    def _prepare(self) -> None:
        self.context_total = self.counts.per_context(
            self.order, self.counts.count[self.order]
        )

    def _prob(self, windows: np.ndarray, k: int) -> np.ndarray:
        ctx, gram = self._lookup(windows, k)
        c_hw = np.where(gram >= 0, self.counts.count[k][gram], 0)
        c_h = np.where(ctx >= 0, self.context_total[ctx], 0)
        vocab_size = len(self.counts.vocab) - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            p = (c_hw + self.k) / (c_h + self.k * vocab_size)
        return np.where(windows[:, -1] == 0, 0.0, np.nan_to_num(p))

# %% [markdown]
# ## Interpolation (Jelinek–Mercer)
#
# A better idea is to fall back on shorter contexts, whose estimates are less sparse. Jelinek–Mercer
# interpolation {cite:p}`jelinek1980` mixes the MLE of each order with the interpolated model of the order
# below, recursively, down to the uniform distribution $P_0(w) = 1/|V|$:
#
# $$
# P_{\mathrm{JM}}(w_i \mid w_{i-n+1}^{i-1}) = \lambda_n P_{\mathrm{ML}}(w_i \mid w_{i-n+1}^{i-1})
#   + (1-\lambda_n)\, P_{\mathrm{JM}}(w_i \mid w_{i-n+2}^{i-1}) .
# $$ (eq-ngram-jelinek-mercer)
#
# We use one weight $\lambda_k$ per order, tuned on the validation set; a context never seen in training uses
# the lower order alone. (Jelinek and Mercer already let $\lambda$ depend on the context, tying it across
# contexts with similar counts $c(h\,\bullet)$; Chen and Goodman {cite:p}`chen1998` study such buckets
# further. Exercise 6 tries it.)

# %%
# lmlib: ngram
class JelinekMercerLM(NGramLM):
    """Jelinek–Mercer: P_k = λ_k P_ML(w|h) + (1-λ_k) P_{k-1}(w|h'), P_0 uniform.

    ``lambdas[k-1]`` weighs order k; a context never seen in training uses P_{k-1}
    alone.
    """

    def __init__(self, order: int, lambdas: Sequence[float]):
        super().__init__(order)
        self.lambdas = list(lambdas)

    def _prepare(self) -> None:
        self.context_total = [None] + [
            self.counts.per_context(k, self.counts.count[k])
            for k in range(1, self.order + 1)
        ]

    def _prob(self, windows: np.ndarray, k: int) -> np.ndarray:
        if k == 0:
            return self._base(windows[:, -1])
        lower = self._prob(windows, k - 1)
        ctx, gram = self._lookup(windows, k)
        c_h = np.where(ctx >= 0, self.context_total[k][ctx], 0)
        c_hw = np.where(gram >= 0, self.counts.count[k][gram], 0)
        lam = self.lambdas[k - 1]
        return np.where(
            c_h > 0, lam * c_hw / np.maximum(c_h, 1) + (1 - lam) * lower, lower
        )

# %% [markdown]
# ## Back-off with absolute discounting
#
# Back-off models {cite:p}`katz1987` trust a seen n-gram and consult the lower order only for unseen ones. Here
# each seen n-gram gives up a fixed discount $0 < D \le 1$ of its count (absolute discounting
# {cite:p}`ney1994`), and the freed mass is shared among the unseen words in proportion to the lower-order
# back-off model:
#
# $$
# P_{\mathrm{BO}}(w_i \mid h) =
# \begin{cases}
#   \dfrac{c(h\,w_i) - D}{c(h\,\bullet)} & c(h\,w_i) > 0,\\[1ex]
#   \alpha(h)\, P_{\mathrm{BO}}(w_i \mid h') & \text{otherwise,}
# \end{cases}
# \qquad
# \alpha(h) = \frac{D\, N_{1+}(h\,\bullet) / c(h\,\bullet)}{1 - \sum_{w: c(h\,w) > 0} P_{\mathrm{BO}}(w \mid h')} ,
# $$ (eq-ngram-backoff)
#
# where $h = w_{i-n+1}^{i-1}$ and $h' = w_{i-n+2}^{i-1}$ drops its oldest word. The normaliser $\alpha(h)$ makes
# every conditional distribution sum to 1 (we test this below). Because a seen n-gram's suffix is itself seen,
# $P_{\mathrm{BO}}(w \mid h')$ in the denominator is always the discounted branch, which makes $\alpha$ cheap to
# precompute for all contexts at once.

# %%
# lmlib: ngram
class BackoffLM(NGramLM):
    """Back-off with absolute discounting (Katz-style, normalised) to the ML unigram.

    A seen n-gram gets (c(h w) - D) / c(h); the freed mass D·N1+(h •)/c(h) goes to the
    unseen words in proportion to the lower-order back-off model, scaled by α(h) so that
    Σ_w P(w|h) = 1. The unigram level is not smoothed: a word unseen in training
    (``<unk>`` of a corpus without it) gets probability 0.
    """

    def __init__(self, order: int, discount: float = 0.75):
        super().__init__(order)
        self.discount = discount

    def _prepare(self) -> None:
        c, D = self.counts, self.discount
        self.seen_prob, self.alpha = [None, c.count[1] / c.count[1].sum()], [None, None]
        for k in range(2, self.order + 1):
            count = c.count[k]
            c_h = c.per_context(k, count)
            seen_prob = np.where(
                count > 0, (count - D) / np.maximum(c_h[c.context[k]], 1), 0.0
            )
            # a seen k-gram's suffix is a seen (k-1)-gram, so its P_{k-1} is that gram's
            # seen_prob
            lower_of_seen = np.where(count > 0, self.seen_prob[k - 1][c.suffix[k]], 0.0)
            freed = D * c.per_context(k, count > 0) / np.maximum(c_h, 1)
            self.seen_prob.append(seen_prob)
            self.alpha.append(
                freed / np.maximum(1.0 - c.per_context(k, lower_of_seen), 1e-12)
            )

    def _prob(self, windows: np.ndarray, k: int) -> np.ndarray:
        if k == 1:
            return self.seen_prob[1][windows[:, -1]]
        lower = self._prob(windows, k - 1)
        ctx, gram = self._lookup(windows, k)
        seen = (gram >= 0) & (self.counts.count[k][np.maximum(gram, 0)] > 0)
        backed_off = np.where(ctx >= 0, self.alpha[k][np.maximum(ctx, 0)], 1.0) * lower
        return np.where(seen, self.seen_prob[k][np.maximum(gram, 0)], backed_off)

# %% [markdown]
# ## Kneser–Ney smoothing
#
# Kneser–Ney {cite:p}`kneser1995` keeps absolute discounting but changes what the lower orders estimate. The
# lower-order distribution only matters when the higher-order context has little evidence, so it should
# answer "how likely is $w$ to appear *after a new context*", not "how frequent is $w$". *Francisco* is
# frequent, but almost only after *San*: it should get little lower-order mass. KN therefore replaces the counts
# at every order but the highest by **continuation counts**, the number of distinct words that precede an
# n-gram, $N_{1+}(\bullet\, w_{i-k+1}^{i}) = |\{v : c(v\, w_{i-k+1}^{i}) > 0\}|$.
#
# In the notation of Chen and Goodman {cite:p}`chen1998`, interpolated Kneser–Ney at the highest order $n$ is
#
# $$
# P_{\mathrm{KN}}(w_i \mid w_{i-n+1}^{i-1}) = \frac{\max\{c(w_{i-n+1}^{i}) - D_n,\ 0\}}{\sum_{w_i} c(w_{i-n+1}^{i})}
#   + \gamma(w_{i-n+1}^{i-1})\, P_{\mathrm{KN}}(w_i \mid w_{i-n+2}^{i-1}),
# \qquad
# \gamma(w_{i-n+1}^{i-1}) = \frac{D_n\, N_{1+}(w_{i-n+1}^{i-1}\,\bullet)}{\sum_{w_i} c(w_{i-n+1}^{i})} ,
# $$ (eq-ngram-kn-top)
#
# and every lower order $k < n$ has the same form with continuation counts in place of counts:
#
# $$
# P_{\mathrm{KN}}(w_i \mid w_{i-k+1}^{i-1}) = \frac{\max\{N_{1+}(\bullet\, w_{i-k+1}^{i}) - D_k,\ 0\}}{N_{1+}(\bullet\, w_{i-k+1}^{i-1}\,\bullet)}
#   + \frac{D_k\, N_{1+}(w_{i-k+1}^{i-1}\,\bullet)}{N_{1+}(\bullet\, w_{i-k+1}^{i-1}\,\bullet)}\, P_{\mathrm{KN}}(w_i \mid w_{i-k+2}^{i-1}),
# $$ (eq-ngram-kn-lower)
#
# with $N_{1+}(\bullet\, h\, \bullet) = \sum_{w} N_{1+}(\bullet\, h\, w)$, ending at $k=0$ with the uniform
# $P_0(w) = 1/|V|$. In {eq}`eq-ngram-kn-lower`, $N_{1+}(h\,\bullet)$ counts the words $w$ with
# $N_{1+}(\bullet\, h\, w) > 0$; with our padding every counted lower-order n-gram has a word before it, so
# this equals the number of distinct followers of $h$ in the ordinary counts. For $0 \le D_k \le 1$ the discount
# is subtracted in full once per distinct n-gram and $\gamma$ is exactly the mass freed, so each distribution
# sums to 1. A context never seen in training ($\sum_w c = 0$) falls back to the lower order.
#
# **Modified Kneser–Ney** {cite:p}`chen1998` replaces the one discount $D_k$ of order $k$ by three,
# $D_{k,1}$, $D_{k,2}$ and $D_{k,3+}$, for n-grams whose count $c$ (continuation count below the top order)
# is one, two, or three and more: the discount becomes a function $D_k(c)$, with $D_k(0) = 0$. The numerator
# of {eq}`eq-ngram-kn-top` and {eq}`eq-ngram-kn-lower` becomes $\max\{c - D_k(c),\ 0\}$ and the weight of the
# lower order becomes
#
# $$
# \gamma(h) = \frac{D_{k,1}\, N_1(h\,\bullet) + D_{k,2}\, N_2(h\,\bullet) + D_{k,3+}\, N_{3+}(h\,\bullet)}
#   {\sum_w c(h\,w)} ,
# $$ (eq-ngram-mkn-gamma)
#
# where $N_j(h\,\bullet)$ is the number of words seen exactly $j$ times after $h$ ($N_{3+}$: three times or
# more), all counts again continuation counts below the top order. The discounts are estimated for each
# order $k$ from $n_{k,j}$, the number of k-grams with count exactly $j$ (we take the continuation counts
# below the top order, the counts that those orders are estimated from):
#
# $$
# Y_k = \frac{n_{k,1}}{n_{k,1} + 2 n_{k,2}}, \qquad
# D_{k,1} = 1 - 2Y_k\frac{n_{k,2}}{n_{k,1}}, \qquad
# D_{k,2} = 2 - 3Y_k\frac{n_{k,3}}{n_{k,2}}, \qquad
# D_{k,3+} = 3 - 4Y_k\frac{n_{k,4}}{n_{k,3}} .
# $$ (eq-ngram-mkn-discounts)
#
# (With a single discount per order, Ney et al.'s estimate is $D_k = Y_k$ {cite:p}`ney1994`.) An estimate
# outside $[0, j]$, which happens when an order has too few counts, cannot be used; `KneserNeyLM` then falls
# back to the plain discount at that order. The function below computes the estimates.

# %%
# lmlib: ngram
def modified_discounts(counts: np.ndarray) -> np.ndarray:
    """``[0, D_1, D_2, D_3+]`` from the count-of-counts of ``counts`` (Chen & Goodman).

    With n_j the number of entries of ``counts`` equal to j: Y = n_1 / (n_1 + 2 n_2) and
    D_j = j - (j + 1) Y n_{j+1} / n_j for j = 1, 2, 3 (the last one is D_3+). An
    estimate that divides by zero is nan or inf; the caller decides what to do with it.
    """
    n1, n2, n3, n4 = (np.sum(counts == j) for j in range(1, 5))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = n1 / (n1 + 2 * n2)
        return np.array(
            [0.0, 1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3]
        )


# %% [markdown]
# `KneserNeyLM` implements both: one discount (or one per order), or `modified=True`. With
# `continuation=False` it uses the ordinary counts at every order, which is **interpolated absolute
# discounting**: the same model without Kneser–Ney's idea, so the two together measure what the continuation
# counts are worth.

# %%
# lmlib: ngram
class KneserNeyLM(NGramLM):
    """Interpolated Kneser–Ney (Chen & Goodman 1998), plain or modified.

    P_k(w|h) = max(c'(h w) - D_k(c'), 0) / Σ_v c'(h v) + γ(h) P_{k-1}(w|h'), with c' the
    ordinary count at the highest order and the continuation count N1+(• h w) below it;
    γ(h) = Σ_v D_k(c'(h v)) / Σ_v c'(h v). Contexts never seen use P_{k-1}; P_0 is
    uniform. Plain KN has one discount per order: ``discount`` is one value for every
    order or one per order (a sequence or array, index k-1). ``modified=True`` estimates
    D_{k,1}, D_{k,2}, D_{k,3+} per order with :func:`modified_discounts` from c' (an
    order whose estimates fall outside [0, j] uses the plain discount). On
    ``NGramCounts(padding="nltk")`` the unigram level is the undiscounted N1+(• w)/N1+(•
    •), as in ``nltk.lm.KneserNeyInterpolated``. ``continuation=False`` uses the
    ordinary counts at every order: interpolated absolute discounting, the same model
    without Kneser–Ney's idea.
    """

    def __init__(
        self,
        order: int,
        discount: float | Sequence[float] | np.ndarray = 0.75,
        modified: bool = False,
        continuation: bool = True,
    ):
        super().__init__(order)
        discounts = np.asarray(discount, dtype=float)
        if discounts.ndim > 1 or (discounts.ndim == 1 and len(discounts) < order):
            raise ValueError(
                f"discount must be one value or one per order (>= {order}), "
                f"not {discount!r}"
            )
        self.discount, self.modified = discount, modified
        self.continuation = continuation
        # the plain discount of each order k, at index k-1
        self._plain = np.full(order, discounts) if discounts.ndim == 0 else discounts

    def _prepare(self) -> None:
        c = self.counts
        self.discounts, self.numerator, self.total, self.gamma = (
            [None],
            [None],
            [None],
            [None],
        )
        for k in range(1, self.order + 1):
            # c': counts at the top, continuation counts below (unless not continuation)
            top = k == self.order or not self.continuation
            eff = c.count[k] if top else c.cont[k]
            d = np.array([0.0] + [float(self._plain[k - 1])] * 3)
            if self.modified:
                estimates = modified_discounts(eff)
                if np.all((estimates >= 0) & (estimates <= np.arange(4))):
                    d = estimates
            if c.padding == "nltk" and k == 1 < self.order:
                d[:] = 0.0  # nltk.lm ends with an undiscounted continuation unigram
            d_of = d[np.minimum(eff, 3)]  # D_k(c') of each k-gram
            total = c.per_context(k, eff)
            if self.modified:
                freed = c.per_context(k, d_of)
            else:  # N1+(h •) of the ordinary counts, as nltk.lm (the same for "book")
                freed = d[1] * c.per_context(k, c.count[k] > 0)
            self.discounts.append(d)
            self.numerator.append(np.maximum(eff - d_of, 0.0))
            self.total.append(total)
            self.gamma.append(freed / np.maximum(total, 1e-300))

    def _prob(self, windows: np.ndarray, k: int) -> np.ndarray:
        if k == 0:
            return self._base(windows[:, -1])
        lower = self._prob(windows, k - 1)
        ctx, gram = self._lookup(windows, k)
        total = np.where(ctx >= 0, self.total[k][np.maximum(ctx, 0)], 0.0)
        numerator = np.where(gram >= 0, self.numerator[k][np.maximum(gram, 0)], 0.0)
        gamma = self.gamma[k][np.maximum(ctx, 0)]
        interpolated = numerator / np.maximum(total, 1e-300) + gamma * lower
        return np.where(total > 0, interpolated, lower)

# %% [markdown]
# ## Checking against `nltk.lm`
#
# NLTK's `KneserNeyInterpolated` implements {eq}`eq-ngram-kn-top` and {eq}`eq-ngram-kn-lower` with one discount
# (0.1 by default) for all orders, but with its own conventions, which we read from its source
# (`nltk/lm/models.py`, `nltk/lm/smoothing.py`):
#
# * `padded_everygram_pipeline` pads a sentence with $n-1$ `<s>` **and $n-1$ `</s>`**, and counts every n-gram
#   of the padded sentence, including padding-only ones such as (`<s>`, `<s>`) and (`</s>`, `</s>`);
# * the recursion ends with the *undiscounted* continuation unigram $N_{1+}(\bullet\, w)/N_{1+}(\bullet\,\bullet)$
#   (no uniform floor: a word never seen after another word gets probability 0);
# * $\gamma$'s numerator $N_{1+}(h\,\bullet)$ is taken from the ordinary counts at every order, and an unseen
#   context backs off to the lower order.
#
# `NGramCounts(padding="nltk")` reproduces the first point and `KneserNeyLM` the other two on such counts, so
# the two implementations must agree exactly. We train both on the first {glue:text}`nltk_train_sentences:,`
# sentences of PTB train and score held-out validation sentences (words unknown to this small training set
# mapped to `<unk>`, so that NLTK's perplexity is finite), scoring each predicted token of our convention
# after its $n-1$ previous tokens. The MLE can only be compared on seen text, so it is scored on training
# sentences.

# %%
from nltk.lm import MLE, KneserNeyInterpolated
from nltk.lm.preprocessing import padded_everygram_pipeline
from nltk.util import ngrams

nltk_train = train_sents[: cfg.nltk_train_sentences]
nltk_vocab = {w for s in nltk_train for w in s}
nltk_heldout = [
    [w if w in nltk_vocab else "<unk>" for w in s]
    for s in valid_sents[: cfg.nltk_test_sentences]
]
nltk_seen = nltk_train[: cfg.nltk_test_sentences]
glue("nltk_train_sentences", len(nltk_train), display=False)


def nltk_scores(model, sentences: list[list[str]], order: int) -> np.ndarray:
    """NLTK's P(w | h) for every predicted token, padded our way (n-1 <s>, one </s>)."""
    padded = (["<s>"] * (order - 1) + s + ["</s>"] for s in sentences)
    grams = [g for s in padded for g in ngrams(s, order)]
    return np.array([model.score(g[-1], g[:-1]) for g in grams])

# %% [markdown]
# One comparison fits an `nltk.lm` model and ours on the same sentences and scores the same text with both:

# %%
def compare_with_nltk(ref, ours: NGramLM, train, text, order: int) -> dict[str, float]:
    """Fit nltk's ``ref`` and our ``ours`` on ``train`` (nltk padding); score
    ``text``."""
    ref.fit(*padded_everygram_pipeline(order, train))
    ours.fit(NGramCounts(train, order, padding="nltk"))
    ref_probs = nltk_scores(ref, text, order)
    our_probs = ours.prob_windows(ours.windows(text))
    ppl_ref, ppl_ours = np.exp(-np.log(ref_probs).mean()), ours.perplexity(text)
    return dict(
        tokens=len(ref_probs),
        nltk_ppl=ppl_ref,
        our_ppl=ppl_ours,
        max_abs_prob_diff=np.abs(ref_probs - our_probs).max(),
        rel_ppl_diff=abs(ppl_ours - ppl_ref) / ppl_ref,
    )


# %% [markdown]
# Kneser–Ney with NLTK's default discount and with $D = 0.75$, and the MLE, for bigrams and trigrams:

# %%
parity_rows = []
for n in (2, 3):
    for name, ref, ours, text in [
        (
            "Kneser-Ney, D=0.1 (nltk default)",
            KneserNeyInterpolated(n),
            KneserNeyLM(n, 0.1),
            nltk_heldout,
        ),
        (
            "Kneser-Ney, D=0.75",
            KneserNeyInterpolated(n, discount=0.75),
            KneserNeyLM(n, 0.75),
            nltk_heldout,
        ),
        ("MLE", MLE(n), AddKLM(n, k=0.0), nltk_seen),
    ]:
        row = compare_with_nltk(ref, ours, nltk_train, text, n)
        parity_rows.append(dict(model=name, n=n, **row))
parity = pd.DataFrame(parity_rows)
print(
    f"max |P_nltk - P_ours| = {parity.max_abs_prob_diff.max():.3g}, "
    f"max relative perplexity difference = {parity.rel_ppl_diff.max():.3g}"
)
assert parity.rel_ppl_diff.max() < 1e-6 and parity.max_abs_prob_diff.max() < 1e-12
glue("parity_max_diff", float(parity.max_abs_prob_diff.max()), display=False)
parity

# %% [markdown]
# The probabilities agree token by token (largest difference {glue:text}`parity_max_diff:.1e`), so both
# implement the same equations. NLTK's conventions have two side effects that our book convention avoids.
# Its unigram level gives probability to `<s>` (it is counted as the end of the padding-only bigram
# (`<s>`, `<s>`)), and at the lower orders its $\gamma$ counts `<s>` as a follower of `<s>` although that
# bigram has no continuation count, so the distribution after `<s> <s>` sums to slightly more than 1:

# %%
nltk_style = KneserNeyLM(3, 0.75).fit(NGramCounts(nltk_train, 3, padding="nltk"))
book_style = KneserNeyLM(3, 0.75).fit(NGramCounts(nltk_train, 3, padding="book"))
# P(w | <s> <s>) for every word w
start_nltk, start_book = nltk_style.distribution([]), book_style.distribution([])
assert start_nltk.sum() > 1 and start_nltk[0] > 0  # the two side effects (text)
assert abs(start_book.sum() - 1) < 1e-12 and start_book[0] == 0
glue("nltk_start_sum", float(start_nltk.sum()), display=False)
glue("nltk_start_bos", float(start_nltk[0]), display=False)
print(
    f"nltk padding: sum = {start_nltk.sum():.6f}, "
    f"P(<s> | <s> <s>) = {start_nltk[0]:.2e}; "
    f"book padding: sum = {start_book.sum():.6f}, "
    f"P(<s> | <s> <s>) = {start_book[0]:.1f}"
)

# %% [markdown]
# With NLTK's padding the first word of a sentence is predicted from a distribution that sums to
# {glue:text}`nltk_start_sum:.6f` and wastes {glue:text}`nltk_start_bos:.1e` on `<s>`; with the book's padding
# the same code gives a proper distribution. This is why the PTB numbers below use `padding="book"`.
#
# ## Every distribution sums to one
#
# A perplexity is only meaningful for a normalised model; a model that gives too much mass to everything looks
# better than it is. The strongest test of the implementations is therefore to sum $P(w \mid h)$ over the whole
# vocabulary, for seen contexts and for contexts never seen in training, for every smoothing method.

# %%
test_contexts = [
    [],
    ["the"],
    ["of", "the"],
    ["in", "the", "new"],
    ["the", "the", "the", "the"],
]
context_windows = np.array(
    [[0] * (4 - len(c)) + [counts5.word_id[w] for w in c] + [1] for c in test_contexts]
)
print(
    "context seen in train (order-5 model):",
    counts5.ids(context_windows[:, :-1], 4) >= 0,
)
normalisation = {}
for model in [
    AddKLM(5, 0.01),
    JelinekMercerLM(5, [0.5] * 5),
    BackoffLM(5, 0.75),
    KneserNeyLM(5, 0.75),
    KneserNeyLM(5, modified=True),
]:
    model.fit(counts5)
    sums = [model.distribution(c).sum() for c in test_contexts]
    name = type(model).__name__ + (
        " (modified)" if getattr(model, "modified", False) else ""
    )
    normalisation[name] = np.abs(np.array(sums) - 1).max()
print({name: f"{err:.1e}" for name, err in normalisation.items()})
assert max(normalisation.values()) < 1e-9

# %% [markdown]
# ## Tuning on the validation set
#
# We tune one parameter for each model order $n$. For add-k it is $k$. For Jelinek–Mercer it is $\lambda_n$,
# tuned greedily: $\lambda_1, \dots, \lambda_{n-1}$ stay at the values tuned for the smaller models. For
# back-off, interpolated absolute discounting and plain Kneser–Ney it is a single discount $D$ shared by all
# orders $1, \dots, n$ of the $n$-gram model ($D_k = D$ for every $k$; tuned anew for each $n$). Modified
# Kneser–Ney has none: its discounts come from {eq}`eq-ngram-mkn-discounts`. We pick every parameter by
# validation perplexity, never by test perplexity.

# %%
valid_windows, test_windows = counts5.windows(valid_sents, 5), test_windows5


def perplexity_on(model: NGramLM, windows: np.ndarray) -> float:
    """Perplexity of a fitted model on precomputed (num_tokens, >= order) windows."""
    with np.errstate(divide="ignore"):
        return float(np.exp(-np.log(model.prob_windows(windows)).mean()))


def tune(make_model, grid, counts: NGramCounts, windows: np.ndarray):
    """(value, model) of the grid value whose model, fitted on ``counts``, has the
    lowest perplexity on ``windows`` (the validation set)."""
    scored = []
    for value in grid:
        model = make_model(value).fit(counts)
        scored.append((perplexity_on(model, windows), value, model))
    _, value, model = min(scored, key=lambda t: t[0])
    return value, model


# %% [markdown]
# Now fit and tune every method for $n = 1, \dots, 5$. Jelinek–Mercer goes first, because its $\lambda_n$
# builds on the $\lambda_1, \dots, \lambda_{n-1}$ tuned before; the other four tuned methods each take one
# grid.

# %%
grids = {
    "add-k": (lambda n, k: AddKLM(n, k), add_k_grid),
    "back-off": (lambda n, d: BackoffLM(n, d), discount_grid),
    "interpolated abs. discounting": (
        lambda n, d: KneserNeyLM(n, d, continuation=False),
        discount_grid,
    ),
    "Kneser-Ney": (lambda n, d: KneserNeyLM(n, d), discount_grid),
}
best_params, models, lambdas = {}, {}, []
for n in range(1, 6):
    best_params["Jelinek-Mercer", n], models["Jelinek-Mercer", n] = tune(
        lambda lam, n=n: JelinekMercerLM(n, lambdas + [lam]),
        lambda_grid,
        counts5,
        valid_windows,
    )
    lambdas.append(best_params["Jelinek-Mercer", n])
    for method, (make, grid) in grids.items():
        best_params[method, n], models[method, n] = tune(
            lambda v, n=n, make=make: make(n, v), grid, counts5, valid_windows
        )
    models["MLE", n] = AddKLM(n, k=0.0).fit(counts5)
    models["modified Kneser-Ney", n] = KneserNeyLM(n, modified=True).fit(counts5)

# %% [markdown]
# Every model is scored on validation and test:

# %%
methods = [
    "MLE",
    "add-k",
    "Jelinek-Mercer",
    "back-off",
    "interpolated abs. discounting",
    "Kneser-Ney",
    "modified Kneser-Ney",
]
results = pd.DataFrame(
    [
        dict(
            method=method,
            n=n,
            valid=perplexity_on(models[method, n], valid_windows),
            test=perplexity_on(models[method, n], test_windows),
        )
        for n in range(1, 6)
        for method in methods
    ]
)
ppl_table = results.pivot(index="method", columns="n", values=["valid", "test"])
ppl_table = ppl_table.loc[methods]  # shown, with its caption, in the results below

# %% [markdown]
# The tuned parameters (best on validation) per order, and the discounts $D_{k,1}, D_{k,2}, D_{k,3+}$ that
# modified Kneser–Ney estimates for each order $k$ of its 5-gram:

# %%
discounted = ["back-off", "interpolated abs. discounting", "Kneser-Ney"]
for method in discounted:  # for n = 1 these models are the MLE: D plays no role (below)
    best_params[method, 1] = np.nan
params_table = pd.Series(best_params).unstack()
params_table = params_table.loc[["add-k", "Jelinek-Mercer", *discounted]]
params_table.index = [
    "add-k: k",
    "Jelinek-Mercer: lambda_n",
    "back-off: D",
    "interp. abs. discounting: D",
    "Kneser-Ney: D",
]
mkn5_discounts = pd.DataFrame(
    np.array(models["modified Kneser-Ney", 5].discounts[1:])[:, 1:],
    columns=["D_k,1", "D_k,2", "D_k,3+"],
    index=pd.Index(range(1, 6), name="order k"),
)
display(
    params_table.style.format("{:g}", na_rep="-"), mkn5_discounts.style.format("{:.3f}")
)

# %% [markdown]
# The figure shows the test perplexities of the table (the MLE is infinite for $n \geq 2$ and left out).

# %%
fig, ax = plt.subplots()
for method in methods[1:]:
    rows = results[results.method == method]
    ax.plot(rows.n, rows.test, marker="o", label=method)
ax.set_yscale("log")
ax.set_xticks(range(1, 6))
ax.set_xlabel("order n")
ax.set_ylabel("test perplexity (log scale)")
ax.legend(ncol=2)
glue("fig_ngram_perplexity", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_ngram_perplexity
# :name: fig-ngram-perplexity
# :figwidth: 90%
#
# PTB test perplexity against the order $n$ for each smoothing method, parameters tuned on validation.
# Add-k gets worse beyond bigrams; Kneser–Ney, plain and modified, is best for every $n \geq 2$.
# ```

# %%
ppl = results.set_index(["method", "n"])
short_names = dict(
    zip(methods, ["mle", "addk", "jm", "bo", "iad", "kn", "mkn"], strict=True)
)
for (method, n), row in ppl.iterrows():
    for split in ("valid", "test"):
        glue(f"ppl_{short_names[method]}{n}_{split}", float(row[split]), display=False)
for n in range(1, 6):
    glue(f"best_k{n}", float(best_params["add-k", n]), display=False)
    glue(f"best_d{n}", float(best_params["Kneser-Ney", n]), display=False)
    glue(f"best_lambda{n}", float(best_params["Jelinek-Mercer", n]), display=False)
gain = (
    ppl.loc[("interpolated abs. discounting", 5), "test"]
    - ppl.loc[("Kneser-Ney", 5), "test"]
)
glue("gain_cont_counts", float(gain), display=False)
glue("tab_ngram_ppl", ppl_table.style.format("{:.1f}"), display=False)

# %% [markdown]
# The text below makes claims about the table; the next cell checks each one, for the
# parameters tuned on the validation split in this run.

# %%
test_ppl = ppl["test"]
for n in range(2, 6):  # modified KN <= KN < every other method, for n >= 2
    others = ["add-k", "Jelinek-Mercer", "back-off", "interpolated abs. discounting"]
    kn, mkn = test_ppl["Kneser-Ney", n], test_ppl["modified Kneser-Ney", n]
    assert mkn <= kn < min(test_ppl[m, n] for m in others)
assert test_ppl["back-off", 5] < test_ppl["interpolated abs. discounting", 5]
# add-k helps up to bigrams, then gets worse with every order
assert test_ppl["add-k", 2] < test_ppl["MLE", 1]
assert all(test_ppl["add-k", n + 1] > test_ppl["add-k", n] for n in range(2, 5))
assert best_params["Jelinek-Mercer", 1] < max(lambda_grid)  # not at the grid's edge
# for n = 1 the discounted models are exactly the MLE
for method in [*discounted, "modified Kneser-Ney"]:
    assert abs(test_ppl[method, 1] / test_ppl["MLE", 1] - 1) < 1e-12
# the unigram estimates of eq-ngram-mkn-discounts are out of range: plain fallback
unigram_estimates = modified_discounts(counts5.count[1])
assert np.any(unigram_estimates < 0)
assert len(set(models["modified Kneser-Ney", 1].discounts[1][1:])) == 1
for j in range(1, 5):
    glue(f"unigram_n{j}", int(np.sum(counts5.count[1] == j)), display=False)
glue("unigram_d2", float(unigram_estimates[2]), display=False)
glue("unigram_d3", float(unigram_estimates[3]), display=False)

# %% [markdown]
# Last, the baseline against the published figure for this data {cite:p}`mikolov2011`, kept as a constant.

# %%
PAPER_KN5_TEST = 141.2  # Mikolov et al. (2011): KN5 (SRILM, no count cutoffs), PTB test
baseline = models["modified Kneser-Ney", 5]
baseline_test = float(test_ppl["modified Kneser-Ney", 5])
baseline_valid = float(ppl.loc[("modified Kneser-Ney", 5), "valid"])
glue("paper_kn5", PAPER_KN5_TEST, display=False)
glue("baseline_ppl_test", baseline_test, display=False)
glue("baseline_ppl_valid", baseline_valid, display=False)
glue("baseline_bits", float(np.log2(baseline_test)), display=False)
gap_kn5 = float(test_ppl["Kneser-Ney", 5]) - PAPER_KN5_TEST
glue("gap_kn5_paper", gap_kn5, display=False)
glue("gap_mkn5_paper", baseline_test - PAPER_KN5_TEST, display=False)
glue("gap_mkn5_paper_abs", abs(baseline_test - PAPER_KN5_TEST), display=False)
assert abs(baseline_test - PAPER_KN5_TEST) < 1.0  # "reproduces the published number"
print(
    f"baseline (modified KN 5-gram): valid {baseline_valid:.2f}, "
    f"test {baseline_test:.2f} (paper: {PAPER_KN5_TEST})"
)

# %% [markdown]
# ## Results
#
# ```{glue:figure} tab_ngram_ppl
# :name: tab-ngram-ppl
#
# PTB perplexity (validation and test) by method and order $n$; parameters tuned on validation.
# ```
#
# **Maximum likelihood** works only for unigrams (test perplexity {glue:text}`ppl_mle1_test:.1f`): from
# bigrams on, unseen n-grams make it infinite. **Add-k** is finite but gets worse with every order
# beyond bigrams ({glue:text}`ppl_addk2_test:.1f` for bigrams, {glue:text}`ppl_addk5_test:.1f` for 5-grams,
# even with the best $k$ = {glue:text}`best_k2:g` and {glue:text}`best_k5:g`): it spreads mass uniformly over
# all {glue:text}`n_vocab:,` symbols after every context. **Jelinek–Mercer** interpolation reaches
# {glue:text}`ppl_jm3_test:.1f` with trigrams and {glue:text}`ppl_jm5_test:.1f` with 5-grams, far from
# Kneser–Ney: one $\lambda$ per order cannot trust a frequent context more than a rare one. **Back-off** with
# absolute discounting reaches {glue:text}`ppl_bo5_test:.1f` for 5-grams. **Interpolated absolute
# discounting** (`KneserNeyLM(n, D, continuation=False)`: the interpolation of {eq}`eq-ngram-kn-top` with
# ordinary counts at every order) gets {glue:text}`ppl_iad5_test:.1f`, no better than back-off: interpolating
# alone does not help the 5-gram. **Kneser–Ney**, the same interpolated model with continuation counts below
# the top order and one tuned discount ({glue:text}`best_d5:.2f` for $n=5$), reaches
# {glue:text}`ppl_kn5_test:.1f`: with everything else equal, the continuation counts alone are worth
# {glue:text}`gain_cont_counts:.1f` points of perplexity. **Modified Kneser–Ney**, with three estimated
# discounts per order and nothing tuned, is best for every $n \geq 2$, with a 5-gram test perplexity of
# {glue:text}`ppl_mkn5_test:.2f` (validation {glue:text}`ppl_mkn5_valid:.1f`).
#
# For $n = 1$, back-off, interpolated absolute discounting and both Kneser–Ney models are *exactly* the MLE
# (the cells above assert it). Every word was seen in training, so with $N$ training tokens and $|V|$
# predictable words each word gets $(c(w) - D)/N + (D\,|V|/N)\cdot(1/|V|) = c(w)/N$: the discount taken from a
# word comes back to it through the uniform distribution. (This needs one discount for all words. The PTB
# unigram counts (ordinary counts: the model of order 1 uses no continuation counts, unlike the
# lower orders of the 5-gram in the table of discounts above) have $n_{1,1}, \dots, n_{1,4}$ = {glue:text}`unigram_n1`, {glue:text}`unigram_n2`,
# {glue:text}`unigram_n3`, {glue:text}`unigram_n4`: the fixed vocabulary leaves few rare words, so
# {eq}`eq-ngram-mkn-discounts` gives $D_{1,2}$ = {glue:text}`unigram_d2:.2f` and $D_{1,3+}$ =
# {glue:text}`unigram_d3:.2f`, outside their ranges; modified Kneser–Ney falls back to the plain discount at
# that order, and the same cancellation holds.) This is why the table of tuned parameters shows no $D$ for
# $n = 1$. The unigrams of add-k and Jelinek–Mercer ($\lambda_1$ = {glue:text}`best_lambda1:g`) mix in some
# uniform mass and are not the MLE: their test perplexities are {glue:text}`ppl_addk1_test:.1f` and
# {glue:text}`ppl_jm1_test:.1f`, against the MLE's {glue:text}`ppl_mle1_test:.1f`.
#
# Mikolov et al. {cite:p}`mikolov2011` report a test perplexity of {glue:text}`paper_kn5:.1f` on this data for
# a Kneser–Ney smoothed 5-gram without count cutoffs ("KN5"), trained with the SRILM toolkit
# {cite:p}`stolcke2002`; that is the paper's figure, and its abstract calls the model a modified Kneser–Ney
# smoothed 5-gram. Our modified Kneser–Ney 5-gram gets {glue:text}`ppl_mkn5_test:.2f`, a difference of
# {glue:text}`gap_mkn5_paper:+.2f`: it reproduces the published number, and what remains is of the size of
# implementation details such as how the unigram level and the sentence start are handled. Plain Kneser–Ney
# with a single discount is {glue:text}`gap_kn5_paper:+.1f` away: one discount cannot be right both for
# n-grams seen once (whose counts are most overestimated) and for frequent ones, nor for every order at once.
#
# **The baseline.** Later chapters compare their neural language models against this modified Kneser–Ney
# 5-gram: **test perplexity {glue:text}`baseline_ppl_test:.1f`** ({glue:text}`baseline_bits:.2f` bits per
# token), validation {glue:text}`baseline_ppl_valid:.1f`, same tokens and same `</s>` convention. It is
# available as `KneserNeyLM(5, modified=True).fit(train_sentences)` from `lmlib.ngram`.
#
# ## Speed
#
# Training is a few `np.unique` calls per order; scoring is a few binary searches per token and order, done
# for all tokens at once.

# %%
import time

start = time.perf_counter()
baseline_again = KneserNeyLM(5, modified=True).fit(train_sents)
fit_seconds = time.perf_counter() - start
start = time.perf_counter()
ppl_again = baseline_again.perplexity(test_sents)
score_seconds = time.perf_counter() - start
assert abs(ppl_again - baseline_test) < 1e-9 * baseline_test
tokens_per_second = len(test_windows) / score_seconds
glue("fit_seconds", float(fit_seconds), display=False)
glue("score_tokens_per_second", float(tokens_per_second), display=False)
print(
    f"fit on {len(train_sents):,} sentences: {fit_seconds:.1f} s; "
    f"scoring {len(test_windows):,} test tokens: {score_seconds:.2f} s "
    f"({tokens_per_second:,.0f} tokens/s)"
)

# %% [markdown]
# Fitting the modified Kneser–Ney 5-gram on PTB train from raw sentences took {glue:text}`fit_seconds:.1f` s
# and scoring the test set ran at {glue:text}`score_tokens_per_second:,.0f` tokens per second on this machine
# (timings vary from run to run; the perplexities do not).
#
# ## Samples
#
# Sampling word by word from the baseline (seeded) shows what a 5-gram model knows: local syntax and the
# vocabulary of the Wall Street Journal, no plan beyond a few words. A sample ends when the model draws `</s>`;
# we allow up to `max_sample_words = 60` words, more than twice the average training sentence
# ({glue:text}`mean_sentence_words:.1f` words), and mark a sample cut there with "...".

# %%
max_sample_words = 60
mean_sentence_words = float(np.mean([len(s) for s in train_sents]))
glue("mean_sentence_words", mean_sentence_words, display=False)
assert max_sample_words > 2 * mean_sentence_words
rng = np.random.default_rng(2)
for _ in range(5):
    sample = baseline.sample(rng, max_words=max_sample_words)
    print(" ".join(sample) + (" ..." if len(sample) == max_sample_words else ""))

# %% [markdown]
# ## Exercises
#
# 1. **Continuation counts with modified discounts.** The table measures the continuation counts with one
#    tuned discount. Predict whether they are worth more or less with modified discounts, then measure
#    `KneserNeyLM(5, modified=True, continuation=False)` against the baseline. Where in `KneserNeyLM._prepare`
#    do the count-of-counts $n_{k,1}, \dots, n_{k,4}$ change when `continuation=False`?
# 2. **Count cutoffs.** SRILM by default drops trigrams and higher seen only once. Zero the counts of
#    singleton 3-, 4- and 5-grams (recompute the continuation counts) and predict the effect on the number of
#    stored n-grams and on the test perplexity of modified KN; measure both. Why did Mikolov et al. report the
#    model *without* cutoffs?
# 3. Prove from {eq}`eq-ngram-kn-top` that $\sum_w P_{\mathrm{KN}}(w \mid h) = 1$ whenever the lower order is
#    normalised. Which step fails if $D > 1$ and the $\max\{\cdot, 0\}$ is active?
# 4. `nltk.lm.StupidBackoff` multiplies the lower order by 0.4 without normalising. Sum its distribution
#    over the vocabulary for a few contexts (as in the normalisation test above). Why is its perplexity not
#    comparable with the ones in the table?
# 5. Perplexity depends on the token convention. Recompute the baseline's perplexity without the `</s>`
#    tokens (use `token_logprobs` and drop the last token of each sentence). Is it higher or lower, and why
#    must two models be compared with the same convention?
# 6. Give Jelinek–Mercer one $\lambda$ per bucket of context counts $c(h\,\bullet)$ (for example 1, 2–3,
#    4–10, more), as Jelinek and Mercer and later Chen and Goodman do, and tune the buckets on validation. How
#    much of the gap to Kneser–Ney closes?
#
# ## Summary
#
# * An n-gram model truncates the chain rule {eq}`eq-ngram-chain-rule` to $n-1$ words of history; its
#   quality is measured by the perplexity {eq}`eq-ngram-perplexity` of held-out text, with `</s>` predicted.
# * Maximum likelihood fails because most long n-grams are never seen: {glue:text}`unseen_3:.1f`% of the PTB
#   test trigrams and {glue:text}`unseen_5:.1f`% of its 5-grams are absent from train.
# * Add-k smoothing helps only up to bigrams (test perplexity {glue:text}`ppl_addk2_test:.1f` against the
#   unigram's {glue:text}`ppl_mle1_test:.1f`) and gets worse with every longer context
#   ({glue:text}`ppl_addk5_test:.1f` for 5-grams): with a large vocabulary it moves too much mass to unseen
#   words. Interpolation and back-off use the lower orders; Kneser–Ney adds continuation counts for the
#   lower orders, and modified Kneser–Ney three discounts per order.
# * Our Kneser–Ney and MLE equal `nltk.lm` exactly when configured like it, every distribution sums to 1, and
#   the modified Kneser–Ney 5-gram reaches a PTB test perplexity of {glue:text}`baseline_ppl_test:.1f`, the
#   paper's {glue:text}`paper_kn5:.1f` to within {glue:text}`gap_mkn5_paper_abs:.2f`. This is the baseline of
#   the neural language models that follow.
