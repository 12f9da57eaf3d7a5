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
# # Word vectors with gensim
#
# We train word2vec (skip-gram and CBOW) and FastText vectors with gensim on Wikipedia text, streamed from
# disk, write the skip-gram negative-sampling objective ourselves in Keras, and build a count-based PPMI–SVD
# baseline on the same text. Every model is measured on the standard analogy and word-similarity benchmarks
# and the gensim and count-based vectors also as features for sentence sentiment, the baseline that the
# BERT chapter is compared with.

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
# The setup cells import what we need, seed everything (Keras included) and show the active profile. The
# quick profile trains on WikiText-2 with 100-dimensional vectors (`dim`); the full profile trains on text8
# with 300 dimensions and larger budgets (the table lists every setting). The code is the same. WikiText-2 is in the
# book's data mirror. text8 is not: the full profile downloads it (about 100 MB) from its canonical URL on
# first use, checks its digest and caches it; where that cannot be done (offline, or with no network), the
# chapter stops with `lmlib.data`'s `ResourceUnavailableError`, which says what would provide the file.

# %%
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.sparse as sp
from gensim.models import FastText, Word2Vec
from myst_nb import glue
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import TSNE
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lmlib.data import fetch
from lmlib.plot import use_style
from lmlib.profiles import import_tensorflow, setup_chapter

# %%
cfg = setup_chapter(
    "03",
    quick=dict(
        corpus="wikitext2",
        dim=100,
        w2v_epochs=5,
        fasttext_epochs=3,
        fasttext_buckets=200_000,
        sgns_batch=16384,
        sgns_steps=450,
    ),
    full=dict(
        corpus="text8",
        dim=300,
        w2v_epochs=5,
        fasttext_epochs=5,
        fasttext_buckets=2_000_000,
        sgns_batch=16384,
        sgns_steps=20_000,
    ),
    keras=True,
)
use_style()
# gensim's seed; noise words per pair; subsampling t; initial rate; window; min count
SEED, NEGATIVES, SAMPLE, ALPHA, WINDOW, MIN_COUNT = 1, 5, 1e-4, 0.05, 5, 5

# %% [markdown]
# ## From one-hot vectors to distributional meaning
#
# A vocabulary of $V$ words can be encoded one-hot: word $i$ is the $i$-th unit vector of $\mathbb{R}^V$.
# Every two different words are then orthogonal, so "cat" is as far from "dog" as from "carburettor". The
# **distributional hypothesis** {cite:p}`harris1954,firth1957` says that words that occur in similar contexts
# have similar meanings. A word vector is a dense $v_w \in \mathbb{R}^d$ ($d \ll V$, here
# $d$ = {glue:text}`dim`) learned so that words with similar contexts get similar vectors; similarity is the
# cosine $\cos(v_a, v_b) = v_a^\top v_b / (\lVert v_a\rVert\,\lVert v_b\rVert)$.
#
# **Skip-gram** {cite:p}`mikolov2013a,mikolov2013b` predicts the words around each word. For a corpus
# $w_1, \dots, w_T$ and a window of $c$ words it maximises
#
# $$
# \frac{1}{T}\sum_{t=1}^{T} \sum_{-c \le j \le c,\ j \ne 0} \log p(w_{t+j} \mid w_t), \qquad
# p(w_O \mid w_I) = \frac{\exp({v'_{w_O}}^{\top} v_{w_I})}{\sum_{w=1}^{V} \exp({v'_{w}}^{\top} v_{w_I})},
# $$ (eq-w2v-skipgram)
#
# with two tables: input (centre) vectors $v_w$, the rows of $U \in \mathbb{R}^{V\times d}$, and output
# (context) vectors $v'_w$, the rows of $C \in \mathbb{R}^{V\times d}$. The word vectors we keep are the rows
# of $U$. In word2vec.c and gensim the window is **dynamic**: for each position $t$ a window $b_t$ is drawn
# uniformly from $1..c$ and only the contexts with $|j| \le b_t$ are used, which weights near contexts more.
# Write $C_t$ for the offsets $j \ne 0$ used at position $t$: $|j| \le b_t$, and $t+j$ inside the sentence.
# **CBOW** (continuous bag of words) turns the prediction around: the mean of the context's input vectors
# predicts the centre word,
#
# $$
# h_t = \frac{1}{|C_t|}\sum_{j \in C_t} v_{w_{t+j}}, \qquad
# p(w_t \mid \text{context}) \propto \exp({v'_{w_t}}^{\top} h_t)
# $$ (eq-w2v-cbow)
#
# (gensim's default `cbow_mean=1`; with a fixed window and away from sentence edges, $|C_t| = 2c$). CBOW makes
# one prediction per centre word instead of one per (centre, context) pair, so an epoch costs less. In the
# paper's comparison on the same data, skip-gram was much better on the semantic analogy questions and CBOW
# a little better on the syntactic ones {cite:p}`mikolov2013a`.
#
# **Negative sampling.** The softmax in {eq}`eq-w2v-skipgram` costs $O(V)$ per prediction. Negative sampling
# {cite:p}`mikolov2013b` replaces $\log p(w_O\mid w_I)$ by a logistic-regression task: tell the observed
# context from $k$ noise words $w_1, \dots, w_k$ drawn from a noise distribution $P_n$,
#
# $$
# \log \sigma({v'_{w_O}}^{\top} v_{w_I}) + \sum_{i=1}^{k} \mathbb{E}_{w_i \sim P_n(w)}
# \bigl[\log \sigma(-{v'_{w_i}}^{\top} v_{w_I})\bigr], \qquad \sigma(x) = \frac{1}{1+e^{-x}},
# $$ (eq-w2v-neg)
#
# $$
# P_n(w) = \frac{\mathrm{count}(w)^{3/4}}{\sum_{w'} \mathrm{count}(w')^{3/4}} .
# $$ (eq-w2v-noise)
#
# The power $3/4$ was found empirically; it raises the probability of rare words relative to the unigram
# distribution. The paper uses $k$ = 5–20 for small data and 2–5 for large; we use
# $k$ = {glue:text}`negatives`.
#
# **Hierarchical softmax** {cite:p}`morin2005,mikolov2013b` is the other way around the $O(V)$ softmax: the
# words are the leaves of a binary (Huffman) tree, and $p(w\mid w_I)$ is the product of $L(w)-1$ binary
# decisions $\sigma(\pm {v'_n}^\top v_{w_I})$ along the path from the root, one vector $v'_n$ per inner node.
# The cost is $O(\log V)$ per prediction and the probabilities sum to one exactly; Huffman coding gives
# frequent words short paths. (gensim's `hs=1, negative=0` selects it; we use negative sampling throughout.)
#
# **Subsampling of frequent words.** "the" co-occurs with almost everything and carries little information.
# Mikolov et al. {cite:p}`mikolov2013b` discard each occurrence of word $w$, with relative frequency
# $f(w)$, with probability
#
# $$
# P_{\text{discard}}(w) = 1 - \sqrt{t / f(w)}
# $$ (eq-w2v-subsample-paper)
#
# ($t \approx 10^{-5}$ in the paper). The released word2vec.c, and gensim, which copies it, implement a
# different formula: an occurrence is *kept* with probability
#
# $$
# P_{\text{keep}}(w) = \min\Bigl(1,\ \sqrt{t / f(w)} + t / f(w)\Bigr),
# $$ (eq-w2v-subsample-gensim)
#
# gensim 4 computes it as `(sqrt(count / (t N)) + 1) * (t N / count)`, the same expression, where $N$ is the
# number of tokens of the vocabulary words (those kept by `min_count`), so $f(w)$ = count$(w)/N$; its default
# is $t = 10^{-3}$ (`sample`). It discards less than {eq}`eq-w2v-subsample-paper`, and keeps every word with
# $f(w) \le t$ (more precisely, with $f(w) \le t\,(1+\sqrt5)^2/4 \approx 2.6\,t$). We use gensim's variant with
# $t$ = {glue:text}`sample:g` everywhere, also in our own implementation, so that the models see the same data.
# That is ten times below gensim's default: more of the frequent words are dropped, and each epoch is
# shorter. Together with the higher initial learning rate below, it is a setting for a corpus that the
# models see only a few times, not a tuned optimum; exercise 1 measures what it changes.
#
# **What SGNS computes.** Levy and Goldberg {cite:p}`levy2014` showed that when every dot product can be set
# freely, the objective {eq}`eq-w2v-neg` (summed over the corpus, with noise drawn from the unigram
# distribution) is maximised at
#
# $$
# {v'_c}^{\top} v_w = \mathrm{PMI}(w, c) - \log k, \qquad \text{i.e.} \quad U C^{\top} = M^{\mathrm{PMI}} - \log k,
# \qquad \mathrm{PMI}(w, c) = \log \frac{\#(w,c)\,|D|}{\#(w)\,\#(c)},
# $$ (eq-w2v-shifted-pmi)
#
# where $\#(w,c)$ counts the (centre, context) pairs $D$ and $\#(w)$, $\#(c)$ their marginals. SGNS is an
# implicit, weighted factorisation of a shifted pointwise-mutual-information matrix. (With the smoothed noise
# {eq}`eq-w2v-noise`, $\#(c)$ is replaced by its smoothed version; this is the "context-distribution smoothing"
# used below.) GloVe {cite:p}`pennington2014` factorises the co-occurrence counts explicitly, by weighted
# least squares on their logarithm, $\sum_{i,j} f(X_{ij})\,(v_i^\top \tilde v_j + b_i + \tilde b_j - \log X_{ij})^2$;
# our count-based baseline below, PPMI + truncated SVD, is the simplest member of this family.

# %%
glue("dim", int(cfg.dim), display=False)
glue("negatives", NEGATIVES, display=False)
glue("sample", SAMPLE, display=False)
glue("alpha", ALPHA, display=False)
glue("window", WINDOW, display=False)
corpus_name = {"wikitext2": "WikiText-2", "text8": "text8"}[cfg.corpus]
glue("corpus_name", corpus_name, display=False)

# %% [markdown]
# ## The corpus, streamed from disk
#
# WikiText-2 {cite:p}`merity2017` (quick profile) is tokenized Wikipedia text, one paragraph per line, with
# rare words already replaced by `<unk>`. Lines such as ` = = Gameplay = = ` are section headings; we **drop**
# them (they are titles, not running text, and would add thousands of `=` tokens) and lower-case everything,
# as the benchmarks are case-insensitive. We keep `<unk>` as an ordinary token. A paragraph is one "sentence"
# for the models. text8 (full profile) is lower-cased Wikipedia text without punctuation on a single line,
# so the corpus also cuts lines into pieces of at most 10,000 tokens (`max_length`), gensim's limit (longer
# sentences are silently truncated).
#
# gensim reads the corpus once to build the vocabulary and once per epoch, so it needs a *re-iterable*
# object, not a generator. `LineCorpus` reads the file line by line on each iteration and keeps nothing in
# memory: the same class works for a corpus that does not fit in RAM.

# %%
# lmlib: embeddings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

# %%
# lmlib: embeddings
class LineCorpus:
    """A re-iterable corpus streamed from a text file: one list of tokens per line.

    Nothing is kept in memory between iterations, so the file may be larger than RAM;
    gensim iterates it once to build the vocabulary and once per epoch. Tokens are split
    on whitespace (the file is already tokenized) and optionally lower-cased; lines for
    which ``skip_line`` is true (for example headings) and empty lines are left out, and
    lines longer than ``max_length`` tokens are cut into pieces (gensim truncates them).
    """

    def __init__(
        self,
        path: str | Path,
        lowercase: bool = True,
        skip_line: Callable[[str], bool] | None = None,
        max_length: int = 10_000,
    ):
        self.path, self.lowercase = Path(path), lowercase
        self.skip_line, self.max_length = skip_line, max_length

    def __iter__(self) -> Iterator[list[str]]:
        with open(self.path, encoding="utf-8") as lines:
            for line in lines:
                if self.skip_line is not None and self.skip_line(line):
                    continue
                tokens = (line.lower() if self.lowercase else line).split()
                for start in range(0, len(tokens), self.max_length):
                    yield tokens[start : start + self.max_length]

# %% [markdown]
# One pass counts the tokens:

# %%
# lmlib: embeddings
def word_counts(corpus: Iterable[Sequence[str]]) -> Counter:
    """Token counts of a corpus of tokenized sentences."""
    counts: Counter = Counter()
    for sentence in corpus:
        counts.update(sentence)
    return counts

# %% [markdown]
# The quick profile reads WikiText-2's training file; the full profile fetches text8, which, as said above,
# is downloaded on first use and raises `ResourceUnavailableError` when it cannot be.

# %%
def is_heading(line: str) -> bool:
    """WikiText section headings look like ' = Title = ' or ' = = Section = = '."""
    return line.startswith(" = ")


if cfg.corpus == "wikitext2":
    corpus = LineCorpus(fetch("wikitext2", "wiki.train.tokens"), skip_line=is_heading)
else:
    corpus = LineCorpus(fetch("text8", "text8"))
counts = word_counts(corpus)
n_tokens, n_sentences = sum(counts.values()), sum(1 for _ in corpus)
n_vocab_min = sum(1 for c in counts.values() if c >= MIN_COUNT)
glue("n_tokens", n_tokens, display=False)
glue("n_types", len(counts), display=False)
glue("n_vocab", n_vocab_min, display=False)
glue("min_count", MIN_COUNT, display=False)
print(
    f"{n_tokens:,} tokens in {n_sentences:,} lines, {len(counts):,} types, "
    f"{n_vocab_min:,} with count >= {MIN_COUNT}; most frequent: {counts.most_common(6)}"
)

# %% [markdown]
# The training text has {glue:text}`n_tokens:,` tokens and {glue:text}`n_types:,` distinct lower-cased
# types, of which {glue:text}`n_vocab:,` occur at least {glue:text}`min_count` times and form the vocabulary.
# For scale: word2vec was introduced with corpora of hundreds of millions to billions of words; its paper
# reports training on 1.6 billion words in less than a day {cite:p}`mikolov2013a`.
#
# ## Training word2vec and FastText with gensim
#
# gensim {cite:p}`rehurek2010` implements the training loops in Cython with BLAS calls and runs them in
# worker threads that update the shared tables without locks ("Hogwild" SGD), the learning rate decaying
# linearly over the whole run from `alpha` to 0.0001. gensim's default `alpha` is 0.025; we start at
# {glue:text}`alpha` (word2vec.c's default for CBOW) for all three models, as the corpus gets only a few
# passes. With **one** worker thread and a fixed seed a run is exactly reproducible; with several, the order
# in which threads update the tables varies and so do the vectors, slightly. We therefore train the models
# we *evaluate* with `workers=1` (a rerun prints the same numbers) and measure *throughput* separately, with
# one epoch on `workers=2` (this machine has {glue:text}`n_cpus` CPU cores). gensim logs each epoch as
# "EPOCH n: training on ... raw words (... effective words) took ...s, ... effective words/s"; *effective*
# words are those left after dropping rare words and subsampling, the words the model actually trains on. A
# small handler captures these log lines.

# %%
class GensimEpochLog(logging.Handler):
    """Collect gensim's per-epoch INFO lines while it trains (printing none).

    gensim logs an epoch's line from the thread that called ``train``; each handler
    keeps only its own thread's lines, so models may train in parallel threads."""

    pattern = re.compile(
        r"EPOCH (\d+): training on (\d+) raw words \((\d+) effective words\) "
        r"took ([\d.]+)s"
    )
    logger = logging.getLogger("gensim.models.word2vec")
    lock, active, saved = threading.Lock(), 0, None

    def __enter__(self):
        self.epochs, self.thread = [], threading.get_ident()
        with self.lock:  # the first handler in switches gensim's INFO log on
            if GensimEpochLog.active == 0:
                GensimEpochLog.saved = self.logger.level, self.logger.propagate
                self.logger.setLevel(logging.INFO)
                self.logger.propagate = False
            GensimEpochLog.active += 1
            self.logger.addHandler(self)
        return self

    def emit(self, record):
        match = self.pattern.search(record.getMessage())
        if match and record.thread == self.thread:
            raw, effective, seconds = int(match[2]), int(match[3]), float(match[4])
            self.epochs.append(dict(raw=raw, effective=effective, seconds=seconds))
            self.last_line = record.getMessage()

    def __exit__(self, *exc):
        with self.lock:  # the last one out restores it
            self.logger.removeHandler(self)
            GensimEpochLog.active -= 1
            if GensimEpochLog.active == 0:
                self.logger.setLevel(self.saved[0])
                self.logger.propagate = self.saved[1]

# %% [markdown]
# The three models share every setting except the architecture and the number of epochs (in the setup
# table): dimension {glue:text}`dim`, window {glue:text}`window` (dynamic), negative sampling with
# $k$ = {glue:text}`negatives`, `sample` = {glue:text}`sample:g`, `alpha` = {glue:text}`alpha`, `min_count` =
# {glue:text}`min_count`. Skip-gram and CBOW get the same number of epochs. FastText
# {cite:p}`bojanowski2017` adds to each word vector the vectors of its character n-grams (3–6 characters,
# hashed into `bucket` rows); we train it in skip-gram mode.

# %%
def gensim_model(kind: str, epochs: int, workers: int, buckets: int, **shared):
    """An untrained gensim model: 'skip-gram', 'CBOW' or 'FastText' (skip-gram mode)
    with ``buckets`` n-gram rows; ``shared`` holds the settings common to all three."""
    if kind == "FastText":
        return FastText(sg=1, bucket=buckets, epochs=epochs, workers=workers, **shared)
    return Word2Vec(
        sg=int(kind == "skip-gram"), epochs=epochs, workers=workers, **shared
    )


def train_gensim(model, corpus) -> dict:
    """Build the vocabulary and train; return a record of the run: wall time, effective
    and raw words, words/s, and the same counts and rate from gensim's own log."""
    model.build_vocab(corpus)
    with GensimEpochLog() as log:
        start = time.perf_counter()
        effective, raw = model.train(
            corpus, total_examples=model.corpus_count, epochs=model.epochs
        )
        seconds = time.perf_counter() - start
    log_effective = sum(e["effective"] for e in log.epochs)
    return dict(
        workers=model.workers, epochs=model.epochs, seconds=seconds,
        effective_words=effective, raw_words=raw, words_per_s=effective / seconds,
        log_effective=log_effective, log_raw=sum(e["raw"] for e in log.epochs),
        log_words_per_s=log_effective / sum(e["seconds"] for e in log.epochs),
        last_log_line=log.last_line,
    )  # fmt: skip

# %% [markdown]
# Train the three evaluated models, each with one worker (reproducible). gensim's loops
# release Python's global interpreter lock, so we train the models in parallel threads,
# as many at a time as there are cores: each run stays single-threaded, so its vectors
# are the same as if it trained alone.

# %%
shared = dict(
    vector_size=cfg.dim, window=WINDOW, min_count=MIN_COUNT, negative=NEGATIVES,
    sample=SAMPLE, alpha=ALPHA, seed=SEED,
)  # fmt: skip
epochs_of = {
    "skip-gram": cfg.w2v_epochs,
    "CBOW": cfg.w2v_epochs,
    "FastText": cfg.fasttext_epochs,
}


def train_one_worker(kind: str, epochs: int, buckets: int, corpus, shared) -> tuple:
    """Train a one-worker ``kind`` model on ``corpus``: (model, record of the run)."""
    model = gensim_model(kind, epochs, 1, buckets, **shared)
    return model, dict(model=kind) | train_gensim(model, corpus)


threads = min(len(epochs_of), os.cpu_count() or 1)
with ThreadPoolExecutor(threads) as pool:  # skip-gram and FastText (slowest) first
    futures = {
        kind: pool.submit(
            train_one_worker,
            kind,
            epochs_of[kind],
            cfg.fasttext_buckets,
            corpus,
            shared,
        )
        for kind in ["skip-gram", "FastText", "CBOW"]
    }
gensim_models = {kind: futures[kind].result()[0] for kind in epochs_of}
runs = [futures[kind].result()[1] for kind in epochs_of]
for run in runs:
    print(
        f"{run['model']:9s} {run['epochs']} epochs, 1 worker: {run['seconds']:5.1f} s"
    )
    print(f"  gensim: {run['last_log_line']}")
vocab = gensim_models["skip-gram"].wv.index_to_key  # most frequent first
assert len(vocab) == n_vocab_min
assert all(m.wv.index_to_key == vocab for m in gensim_models.values())

# %% [markdown]
# And one epoch of each with two worker threads, for the throughput table at the end of the chapter (these
# vectors are not evaluated):

# %%
for kind in epochs_of:
    model = gensim_model(kind, 1, 2, cfg.fasttext_buckets, **shared)
    runs.append(dict(model=kind) | train_gensim(model, corpus))
    print(f"{kind:9s} 1 epoch, 2 workers: {runs[-1]['seconds']:5.1f} s")
    print(f"  gensim: {runs[-1]['last_log_line']}")
runs = pd.DataFrame(runs)
log_ratio = runs.log_words_per_s / runs.words_per_s
print("gensim's log rate / measured rate:", log_ratio.round(3).tolist())
# gensim's log lines agree with what model.train returned and with the wall time
assert (runs.log_effective == runs.effective_words).all()
assert (runs.log_raw == runs.raw_words).all()
assert log_ratio.between(0.8, 1.25).all()

# %%
rate = runs.set_index(["model", "workers"])["words_per_s"]
for kind, key in [("skip-gram", "sg"), ("CBOW", "cbow"), ("FastText", "ft")]:
    glue(f"wps_{key}_2", float(rate[kind, 2]), display=False)
    glue(f"wps_{key}_1", float(rate[kind, 1]), display=False)
    seconds = runs.set_index(["model", "workers"]).loc[(kind, 1), "seconds"]
    glue(f"train_s_{key}", float(seconds), display=False)
share = runs.effective_words[0] / runs.raw_words[0]
glue("effective_share", float(share), display=False)
glue("n_cpus", os.cpu_count(), display=False)
glue("log_ratio_min", float(log_ratio.min()), display=False)
glue("log_ratio_max", float(log_ratio.max()), display=False)
speed_order = rate.xs(2, level="workers").sort_values(ascending=False).index
glue("speed_order", ", ".join(speed_order), display=False)

# %% [markdown]
# Of the raw tokens of each epoch, {glue:text}`effective_share:.0%` are effective (the rest were rare words or
# subsampled). With two workers gensim trained skip-gram at {glue:text}`wps_sg_2:,.0f` effective words per
# second, CBOW at {glue:text}`wps_cbow_2:,.0f` and FastText at {glue:text}`wps_ft_2:,.0f` (the
# evaluated one-worker runs: {glue:text}`wps_sg_1:,.0f`, {glue:text}`wps_cbow_1:,.0f` and
# {glue:text}`wps_ft_1:,.0f`; they took {glue:text}`train_s_sg:.0f` s, {glue:text}`train_s_cbow:.0f` s and
# {glue:text}`train_s_ft:.0f` s, trained side by side in threads as the cores allow). These rates are effective words divided by the wall time of `model.train`.
# gensim's own log lines agree, as the cell checks: their word counts add up to what `model.train` returned,
# and their rates are {glue:text}`log_ratio_min:.2f` to {glue:text}`log_ratio_max:.2f` times ours (gensim
# times each epoch itself). Timings vary from run to run. CBOW makes one prediction per centre
# word, skip-gram one per context word, and FastText also sums and updates the n-gram vectors of every word;
# from fastest to slowest, the measured order is {glue:text}`speed_order`.
#
# ## A count-based baseline: PPMI and truncated SVD
#
# The explicit counterpart of {eq}`eq-w2v-shifted-pmi`: count how often each vocabulary word $w$ has $c$
# within {glue:text}`window` words (a fixed, undivided window, within a paragraph), form the positive PMI
# matrix with context-distribution smoothing {cite:p}`levy2015`,
#
# $$
# \mathrm{PPMI}_\alpha(w, c) = \max\Bigl(0,\ \log \frac{\hat P(w,c)}{\hat P(w)\,\hat P_\alpha(c)}\Bigr),
# \qquad \hat P_\alpha(c) = \frac{\#(c)^\alpha}{\sum_{c'} \#(c')^\alpha}, \quad \alpha = 0.75,
# $$ (eq-w2v-ppmi)
#
# and factorise it with a rank-$d$ truncated SVD, $M \approx U_d \Sigma_d V_d^\top$, taking
# $W = U_d \Sigma_d^{1/2}$ as word vectors (the symmetric weighting Levy et al. recommend over $U_d\Sigma_d$).
# The $V \times V$ matrix is sparse, so `scipy.sparse` holds it and scikit-learn's randomized `TruncatedSVD`,
# with a fixed `random_state`, factorises it. First the counts, as word ids:

# %%
def cooccurrence_matrix(
    sentences: list[np.ndarray], window: int, size: int
) -> sp.csr_matrix:
    """Symmetric counts #(w, c) of words within ``window`` positions of each other in
    the same sentence (arrays of word ids below ``size``)."""
    ids = np.concatenate(sentences)
    sentence_of = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    rows, cols = [], []
    for distance in range(1, window + 1):
        same = np.flatnonzero(sentence_of[:-distance] == sentence_of[distance:])
        rows += [ids[same], ids[same + distance]]
        cols += [ids[same + distance], ids[same]]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    ones = np.ones(len(rows), np.float64)
    return sp.csr_matrix((ones, (rows, cols)), shape=(size, size))


word_index = {w: i for i, w in enumerate(vocab)}
vocab_counts = np.array(
    [gensim_models["skip-gram"].wv.get_vecattr(w, "count") for w in vocab]
)
sentence_ids = [
    np.array([word_index[w] for w in s if w in word_index], np.int32) for s in corpus
]
start = time.perf_counter()
cooc = cooccurrence_matrix(sentence_ids, WINDOW, len(vocab))

# %% [markdown]
# Then the weighting {eq}`eq-w2v-ppmi` and the SVD:

# %%
def ppmi_matrix(cooc: sp.csr_matrix, alpha: float = 0.75) -> sp.csr_matrix:
    """Positive PMI of a co-occurrence matrix, with the context distribution smoothed
    to the power ``alpha`` (Levy et al., 2015)."""
    total = cooc.sum()
    word_marginal = np.asarray(cooc.sum(axis=1)).ravel()
    context_marginal = np.asarray(cooc.sum(axis=0)).ravel()
    p_context = context_marginal**alpha / (context_marginal**alpha).sum()
    coo = cooc.tocoo()
    pmi = (
        np.log(coo.data / total)
        - np.log(word_marginal[coo.row] / total)
        - np.log(p_context[coo.col])
    )
    ppmi = sp.csr_matrix((np.maximum(pmi, 0), (coo.row, coo.col)), shape=cooc.shape)
    ppmi.eliminate_zeros()
    return ppmi


ppmi = ppmi_matrix(cooc)
svd = TruncatedSVD(n_components=cfg.dim, algorithm="randomized", random_state=0)
svd_vectors = svd.fit_transform(ppmi) / np.sqrt(svd.singular_values_)  # U Σ^(1/2)
svd_seconds = time.perf_counter() - start

# %%
# words with no positive PMI at all
n_zero_rows = int((np.asarray(ppmi.sum(axis=1)).ravel() == 0).sum())
glue("n_zero_rows", n_zero_rows, display=False)
glue("ppmi_nnz", int(ppmi.nnz), display=False)
glue("ppmi_density", float(ppmi.nnz / len(vocab) ** 2), display=False)
glue("svd_seconds", float(svd_seconds), display=False)
print(
    f"co-occurrence {cooc.shape}, {cooc.nnz:,} non-zeros; PPMI keeps {ppmi.nnz:,} "
    f"({ppmi.nnz / len(vocab) ** 2:.2%} dense); counts, PPMI, SVD: {svd_seconds:.1f} s"
)

# %% [markdown]
# The PPMI matrix has {glue:text}`ppmi_nnz:,` positive entries ({glue:text}`ppmi_density:.2%` of all cells);
# counting, weighting and the SVD took {glue:text}`svd_seconds:.0f` s. A word with no positive PMI
# with any context (here: {glue:text}`n_zero_rows`) gets a zero vector. gensim computes cosines by dividing by
# the norms, 0/0 for such a vector; `keyed_vectors` (below) records their norm as 1, so they have cosine 0
# with every word instead of NaN.
#
# ## Skip-gram with negative sampling, from scratch in Keras
#
# Now the objective {eq}`eq-w2v-neg` ourselves. The pieces: the noise distribution {eq}`eq-w2v-noise`,

# %%
# lmlib: embeddings
def noise_distribution(
    counts: Sequence[int] | np.ndarray, power: float = 0.75
) -> np.ndarray:
    """The negative-sampling noise distribution P_n(w) proportional to count(w)**power
    (float64, sums to 1)."""
    weights = np.asarray(counts, dtype=np.float64) ** power
    return weights / weights.sum()

# %% [markdown]
# the subsampling probabilities {eq}`eq-w2v-subsample-paper`/{eq}`eq-w2v-subsample-gensim`,

# %%
# lmlib: embeddings
def keep_probabilities(
    counts: Sequence[int] | np.ndarray, sample: float = 1e-3, variant: str = "word2vec"
) -> np.ndarray:
    """Probability of keeping each occurrence of each word under subsampling.

    With f = count / total: ``variant="paper"`` (Mikolov et al., 2013b) discards with
    probability 1 - sqrt(t / f), so keeps min(1, sqrt(t / f)); ``variant="word2vec"``
    (word2vec.c and gensim) keeps min(1, sqrt(t / f) + t / f).
    """
    counts = np.asarray(counts, dtype=np.float64)
    ratio = sample * counts.sum() / counts  # t / f
    if variant == "paper":
        keep = np.sqrt(ratio)
    elif variant == "word2vec":
        keep = np.sqrt(ratio) + ratio
    else:
        raise ValueError(f"variant must be 'paper' or 'word2vec', not {variant!r}")
    return np.minimum(keep, 1.0)

# %% [markdown]
# the subsampling itself,

# %%
# lmlib: embeddings
def subsample(
    sentences: Iterable[np.ndarray], keep_prob: np.ndarray, seed: int = 0
) -> list[np.ndarray]:
    """Keep each token (a word id) with probability ``keep_prob[id]``; deterministic
    for a given ``seed``."""
    rng = np.random.default_rng(seed)
    return [s[rng.random(len(s)) < keep_prob[s]] for s in map(np.asarray, sentences)]

# %% [markdown]
# and the (centre, context) pairs of the corpus with a dynamic window, computed with numpy for the whole
# corpus at once (for each distance $1..c$, one vectorised comparison of the token array with itself
# shifted):

# %%
# lmlib: embeddings
def skipgram_pairs(
    sentences: Sequence[np.ndarray],
    window: int,
    dynamic_window: bool = True,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """All skip-gram (centre, context) pairs of a corpus of word-id arrays, at once.

    Pairs never cross a sentence boundary or pair a position with itself. With
    ``dynamic_window`` each centre draws a window b uniformly from 1..window and uses
    the contexts at distance <= b (word2vec.c's weighting of near words); otherwise all
    contexts within ``window``. Returns int32 ``(centres, contexts)`` ordered by
    distance, then position (shuffle before training); deterministic for a ``seed``.
    """
    empty = [np.zeros(0, np.int32)]
    ids = np.concatenate([np.asarray(s, np.int32) for s in sentences] or empty)
    sentence_of = np.repeat(np.arange(len(sentences)), [len(s) for s in sentences])
    reach = np.full(len(ids), window)
    if dynamic_window:
        reach = np.random.default_rng(seed).integers(1, window + 1, size=len(ids))
    centres, contexts = [], []
    for d in range(1, window + 1):
        same = sentence_of[:-d] == sentence_of[d:]
        left = np.flatnonzero(same & (reach[:-d] >= d))  # centre i, context i + d
        right = np.flatnonzero(same & (reach[d:] >= d))  # centre i + d, context i
        centres += [ids[left], ids[right + d]]
        contexts += [ids[left + d], ids[right]]
    return np.concatenate(centres), np.concatenate(contexts)

# %% [markdown]
# Applied to the corpus with gensim's vocabulary and subsampling threshold:

# %%
keep_prob = keep_probabilities(vocab_counts, SAMPLE)
keep_prob_paper = keep_probabilities(vocab_counts, SAMPLE, "paper")
kept_sentences = subsample(sentence_ids, keep_prob, seed=0)
centres, contexts = skipgram_pairs(kept_sentences, WINDOW, seed=0)
n_kept = sum(map(len, kept_sentences))
pairs_per_word = len(centres) / n_kept
noise = noise_distribution(vocab_counts)
frequency = vocab_counts / vocab_counts.sum()
# a word whose frequency is closest to 4t: the two formulas keep 0.75 and 0.5 of it
mid = int(np.argmin(np.abs(np.log(frequency / (4 * SAMPLE)))))
the = word_index["the"]
for name, value in [
    ("n_pairs", len(centres)), ("pairs_per_word", pairs_per_word),
    ("keep_the", keep_prob[the]), ("keep_the_paper", keep_prob_paper[the]),
    ("mid_word", vocab[mid]), ("mid_ratio", frequency[mid] / SAMPLE),
    ("keep_mid", keep_prob[mid]), ("keep_mid_paper", keep_prob_paper[mid]),
    ("noise_the", noise[the]), ("unigram_the", frequency[the]),
]:  # fmt: skip
    glue(name, value if isinstance(value, str | int) else float(value), display=False)
first = [(vocab[c], vocab[o]) for c, o in zip(centres[:3], contexts[:3], strict=True)]
print(
    f"kept {n_kept:,} of {vocab_counts.sum():,} tokens; {len(centres):,} pairs "
    f"({pairs_per_word:.2f} per kept token); first pairs: {first}"
)

# %% [markdown]
# Subsampling keeps each "the" with probability {glue:text}`keep_the:.4f`; the paper's formula with the same
# $t$ would keep {glue:text}`keep_the_paper:.4f`. The two differ by the term $t/f(w)$, small for so frequent
# a word; the difference is largest where gensim's formula begins to keep every occurrence,
# $f(w) \approx 2.6\,t$. The word "{glue:text}`mid_word`", with
# $f(w)$ = {glue:text}`mid_ratio:.2f` $t$, is kept with probability {glue:text}`keep_mid:.2f` by gensim's
# formula and {glue:text}`keep_mid_paper:.2f` by the paper's. The corpus yields {glue:text}`n_pairs:,` pairs,
# {glue:text}`pairs_per_word:.2f` per kept token: about $c+1$, the mean of $2b$ for $b$ uniform on $1..c$,
# a little less at paragraph edges. The noise distribution gives "the" a probability of
# {glue:text}`noise_the:.3f`, against its unigram frequency of {glue:text}`unigram_the:.3f`.
#
# The model is two `Embedding` tables and a dot product. Each example is a centre and $1+k$ candidate
# contexts, the true one first; the loss is {eq}`eq-w2v-neg` negated, written with
# $-\log\sigma(x) = \mathrm{softplus}(-x)$ for numerical stability.

# %%
# lmlib: embeddings
import keras
from keras import layers, ops

# %%
# lmlib: embeddings
def sgns_loss(labels, logits):
    """Skip-gram negative-sampling loss, averaged over the batch:
    -[log sigmoid(s+) + sum_k log sigmoid(-s_k)] per pair.

    ``logits`` (batch, 1 + k) are the scores u_c . c_o of the true context (column 0)
    and of k noise words; ``labels`` has the same shape: 1 for the true context, 0 for
    noise.
    """
    labels = ops.cast(labels, logits.dtype)
    # -log sigmoid(s) for the true context, -log sigmoid(-s) for the noise words
    per_score = ops.softplus(-logits) * labels + ops.softplus(logits) * (1.0 - labels)
    return ops.mean(ops.sum(per_score, axis=-1))

# %% [markdown]
# The model holds the two tables:

# %%
# lmlib: embeddings
class SkipGramNS(keras.Model):
    """Skip-gram with negative sampling: centre table U, context table C, scores u.c.

    Called on ``(centres, candidates)`` of shapes (batch,) and (batch, 1 + k), the true
    context first and then k noise words, it returns the logits (batch, 1 + k). As in
    word2vec.c, U starts uniform in +-0.5 / dim and C at zero; the word vectors are the
    rows of U (:meth:`word_vectors`).
    """

    def __init__(self, vocab_size: int, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.dim = vocab_size, dim
        init = keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim)
        self.centre_embedding = layers.Embedding(
            vocab_size, dim, embeddings_initializer=init, name="centre"
        )
        self.context_embedding = layers.Embedding(
            vocab_size, dim, embeddings_initializer="zeros", name="context"
        )

    def call(self, inputs):
        centres, candidates = inputs
        u = self.centre_embedding(centres)  # (batch, dim)
        c = self.context_embedding(candidates)  # (batch, 1 + k, dim)
        return ops.einsum("bd,bkd->bk", u, c)  # (batch, 1 + k)

    def word_vectors(self) -> np.ndarray:
        """The centre table U as a (vocab_size, dim) numpy array."""
        return ops.convert_to_numpy(self.centre_embedding.embeddings)

# %% [markdown]
# The noise words are drawn per batch from a **unigram table** (word2vec.c's trick: a long array in which
# word $w$ fills a share $P_n(w)$ of the cells, so a uniform index is a draw from $P_n$), with a stateless
# generator keyed by the batch number, so that the stream is identical on every run:

# %%
# lmlib: embeddings
def negative_sampler(
    noise: np.ndarray, negatives: int, seed: int = 0, table_size: int = 1_000_000
):
    """A ``tf.data`` map: ``(step, (centre, context))`` to ``((centre, candidates),
    labels)``.

    Draws ``negatives`` noise words per pair from a unigram table of ``table_size``
    cells (word w fills a share noise[w]) with a stateless generator keyed by (seed,
    step): the same noise on every run. ``candidates`` (batch, 1 + k) holds the true
    context first; ``labels`` are 1 for it and 0 for the noise words.
    """
    import tensorflow as tf

    cells = np.round(np.asarray(noise) * table_size).astype(np.int64)
    table = tf.constant(np.repeat(np.arange(len(noise), dtype=np.int32), cells))
    label_row = tf.constant([[1.0] + [0.0] * negatives])

    def add_negatives(step, batch):
        centre, context = batch
        size, key = tf.shape(centre)[0], tf.stack([tf.cast(seed, tf.int64), step])
        index = tf.random.stateless_uniform(
            (size, negatives), key, maxval=table.shape[0], dtype=tf.int64
        )
        candidates = tf.concat([context[:, None], tf.gather(table, index)], axis=1)
        return (centre, candidates), tf.tile(label_row, (size, 1))

    return add_negatives

# %% [markdown]
# The pipeline shuffles the pairs once and, for a budget of `steps` updates, repeats them, so that exactly
# that many full batches come out whatever the size of the corpus:

# %%
# lmlib: embeddings
def sgns_dataset(
    centres: np.ndarray,
    contexts: np.ndarray,
    noise: np.ndarray,
    negatives: int,
    batch_size: int,
    steps: int | None = None,
    seed: int = 0,
    table_size: int = 1_000_000,
):
    """A ``tf.data`` pipeline of ``((centres, candidates), labels)`` batches for
    :class:`SkipGramNS`, the noise from :func:`negative_sampler`.

    The pairs are shuffled once with ``seed``. With ``steps``, the shuffled pairs repeat
    and exactly ``steps`` full batches of ``batch_size`` pairs come out (a pass over the
    pairs may end inside a batch); without, one pass, the last batch possibly shorter.
    """
    import tensorflow as tf

    order = np.random.default_rng(seed).permutation(len(centres))
    pairs = tf.data.Dataset.from_tensor_slices((centres[order], contexts[order]))
    if steps is None:
        batches = pairs.batch(batch_size)
    else:
        batches = pairs.repeat().batch(batch_size).take(steps)
    sampler = negative_sampler(noise, negatives, seed, table_size)
    batches = batches.enumerate().map(sampler, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)

# %% [markdown]
# First a numerical check of the loss against the formula written directly with numpy on random logits, and
# of the model's scores against the dot products of its tables (max |difference| relative to the largest
# value):

# %%
rng = np.random.default_rng(0)
check_logits = rng.normal(size=(4, 1 + NEGATIVES)).astype(np.float32)
check_labels = np.eye(1, 1 + NEGATIVES, dtype=np.float32).repeat(4, axis=0)
log_sigmoid = lambda x: -np.log1p(np.exp(-x))  # noqa: E731
by_hand = -(
    log_sigmoid(check_logits[:, 0]) + log_sigmoid(-check_logits[:, 1:]).sum(axis=1)
).mean()
loss_diff = abs(float(sgns_loss(check_labels, check_logits)) - by_hand) / abs(by_hand)
tiny = SkipGramNS(vocab_size=10, dim=3)
tiny((np.array([0]), np.array([[0, 1]])))  # build the tables
tiny.context_embedding.embeddings.assign(rng.normal(size=(10, 3)))
scores = ops.convert_to_numpy(tiny((np.array([1, 2]), np.array([[3, 4], [5, 6]]))))
table_u = tiny.word_vectors()
table_c = ops.convert_to_numpy(tiny.context_embedding.embeddings)
expected = np.einsum("bd,bkd->bk", table_u[[1, 2]], table_c[[[3, 4], [5, 6]]])
score_diff = np.abs(scores - expected).max() / np.abs(expected).max()
print(f"relative |loss - numpy| = {loss_diff:.2e}, |score - U C^T| = {score_diff:.2e}")
assert loss_diff < 1e-5 and score_diff < 1e-5

# %% [markdown]
# Training: Adam with learning rate 0.01 on batches of {glue:text}`sgns_batch:,` pairs for a fixed budget of
# {glue:text}`sgns_steps:,` steps, that is {glue:text}`sgns_passes:.2f` passes over the pairs (the step count
# is read back from the optimizer). A callback records the running loss for the curve below.

# %%
class LossEvery(keras.callbacks.Callback):
    """Record the running mean loss every ``every`` batches."""

    def __init__(self, every: int):
        super().__init__()
        self.every, self.history = every, []

    def on_train_batch_end(self, batch, logs=None):
        if (batch + 1) % self.every == 0:
            self.history.append((batch + 1, float(logs["loss"])))

# %%
sgns = SkipGramNS(len(vocab), cfg.dim)
sgns.compile(optimizer=keras.optimizers.Adam(0.01), loss=sgns_loss)
sgns_ds = sgns_dataset(
    centres, contexts, noise, NEGATIVES, cfg.sgns_batch, steps=cfg.sgns_steps, seed=0
)
loss_log = LossEvery(every=max(1, cfg.sgns_steps // 20))
start = time.perf_counter()
# shuffle=False: the pipeline shuffled the pairs (Keras cannot shuffle a tf.data stream)
sgns.fit(sgns_ds, epochs=1, verbose=0, shuffle=False, callbacks=[loss_log])
sgns_seconds = time.perf_counter() - start
sgns_steps_run = int(sgns.optimizer.iterations)
sgns_pairs = sgns_steps_run * cfg.sgns_batch  # every batch is full
sgns_passes = sgns_pairs / len(centres)
sgns_words_per_s = sgns_pairs / pairs_per_word / sgns_seconds  # centre words per second
assert sgns_steps_run == cfg.sgns_steps == int(sgns_ds.cardinality())
assert sgns_passes == int(sgns.optimizer.iterations) * cfg.sgns_batch / len(centres)

# %%
glue("sgns_batch", int(cfg.sgns_batch), display=False)
glue("sgns_steps", sgns_steps_run, display=False)
glue("sgns_passes", float(sgns_passes), display=False)
glue("sgns_seconds", float(sgns_seconds), display=False)
glue("sgns_pairs_per_s", float(sgns_pairs / sgns_seconds), display=False)
glue("sgns_wps", float(sgns_words_per_s), display=False)
glue("sgns_ms_per_step", 1000 * sgns_seconds / sgns_steps_run, display=False)
first_loss, last_loss = loss_log.history[0][1], loss_log.history[-1][1]
print(
    f"{sgns_steps_run} steps, {sgns_pairs:,} pairs ({sgns_passes:.2f} passes) in "
    f"{sgns_seconds:.1f} s: {sgns_pairs / sgns_seconds:,.0f} pairs/s, "
    f"{sgns_words_per_s:,.0f} words/s; loss {first_loss:.3f} -> {last_loss:.3f}"
)

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
steps, losses = zip(*loss_log.history, strict=True)
ax.plot(steps, losses, marker="o")
ax.axhline(
    (1 + NEGATIVES) * np.log(2),
    color="gray",
    linestyle="--",
    label="at initialisation: $(1+k)\\log 2$",
)
ax.set_xlabel("training step")
ax.set_ylabel("running mean SGNS loss")
ax.legend()
glue("fig_sgns_loss", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_sgns_loss
# :name: fig-w2v-sgns-loss
# :figwidth: 70%
#
# Training loss of our Keras SGNS (running mean over the steps so far). All scores are 0 at initialisation
# ($C = 0$), so the loss starts at $(1+k)\log 2$, the dashed line.
# ```
#
# The Keras model took {glue:text}`sgns_ms_per_step:.0f` ms per step and processed
# {glue:text}`sgns_pairs_per_s:,.0f` pairs per second, that is {glue:text}`sgns_wps:,.0f` centre words per
# second (pairs divided by the {glue:text}`pairs_per_word:.2f` pairs per kept word), the unit of gensim's
# effective words per second. We come back to the comparison below.
#
# ## Evaluation on the standard benchmarks
#
# **Analogies.** The Google analogy set {cite:p}`mikolov2013a` has {glue:text}`n_sem_all:,` semantic questions
# (capitals, currencies, family relations, ...) and {glue:text}`n_syn_all:,` syntactic ones (plurals, tenses,
# comparatives, ...): "a is to b as c is to ?", answered by the word closest (by cosine) to $v_b - v_a + v_c$,
# excluding a, b and c. A question counts only if all four words are among the 30,000 most frequent words of
# the model (gensim's `restrict_vocab`, the restriction the paper used for its smaller experiments; our
# vocabulary has {glue:text}`n_vocab:,` words). gensim compares words case-insensitively (it upper-cases
# both the questions and the vocabulary). **Similarity.** WordSim-353 {cite:p}`finkelstein2002` (relatedness:
# "coffee"–"cup" scores high) and SimLex-999 {cite:p}`hill2015` (similarity proper: related but dissimilar
# pairs score low, which makes it harder for distributional vectors): Spearman's $\rho$ between the human
# scores and the cosines, over the pairs whose two words are in the vocabulary. `benchmark_scores` wraps
# gensim's `evaluate_word_analogies` and `evaluate_word_pairs` and reports the coverage. First, plain
# vectors as gensim `KeyedVectors`:

# %%
# lmlib: embeddings
def keyed_vectors(words: Sequence[str], vectors: np.ndarray):
    """Wrap a (len(words), dim) matrix as gensim ``KeyedVectors`` (words most frequent
    first).

    gensim normalises by dividing each vector by its norm, which gives NaN for an
    all-zero vector. Here the norm of a zero vector is recorded as 1 instead, so its
    normalised vector stays zero: cosine 0 with every word, the honest value for a word
    about which the model knows nothing.
    """
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=vectors.shape[1])
    kv.add_vectors(list(words), np.asarray(vectors, dtype=np.float32))
    kv.fill_norms()
    kv.norms[kv.norms == 0] = 1.0
    return kv

# %% [markdown]
# The analogy accuracies, per kind of question:

# %%
# lmlib: embeddings
def analogy_scores(kv, analogies: str | Path, restrict_vocab: int = 30_000) -> dict:
    """Analogy accuracies (semantic, syntactic, all) of gensim ``KeyedVectors``.

    gensim's ``evaluate_word_analogies``: 3CosAdd over the ``restrict_vocab`` most
    frequent words, case-insensitive; questions with a word outside them are skipped.
    Sections named ``gram...`` are syntactic, the others semantic. Also returns the
    number of questions scored and their share of the file ("analogy coverage"). Uses
    one BLAS thread: on a busy machine that ran its many small products faster.
    """
    from threadpoolctl import threadpool_limits

    with open(analogies, encoding="utf-8") as lines:
        n_questions = sum(1 for x in lines if x.strip() and not x.startswith(":"))
    with threadpool_limits(1):
        _, sections = kv.evaluate_word_analogies(
            analogies, restrict_vocab=restrict_vocab, case_insensitive=True
        )
    sections = [s for s in sections if s["section"] != "Total accuracy"]
    syntactic = [s for s in sections if s["section"].startswith("gram")]
    semantic = [s for s in sections if not s["section"].startswith("gram")]
    groups = {"semantic": semantic, "syntactic": syntactic, "analogy": sections}
    scores = {}
    for name, group in groups.items():
        correct = sum(len(s["correct"]) for s in group)
        seen = correct + sum(len(s["incorrect"]) for s in group)
        scores[f"{name} acc"] = correct / seen if seen else float("nan")
        scores[f"{name} questions"] = seen
    scores["analogy coverage"] = scores["analogy questions"] / n_questions
    return scores

# %% [markdown]
# and both kinds of benchmark together, with gensim's INFO lines (one per section) silenced:

# %%
# lmlib: embeddings
def benchmark_scores(
    kv,
    analogies: str | Path,
    similarity_sets: dict[str, str | Path],
    restrict_vocab: int = 30_000,
) -> dict[str, float]:
    """Analogy accuracies (:func:`analogy_scores`) and, for each word-pair set,
    Spearman's rho of gensim ``KeyedVectors`` (``evaluate_word_pairs``, over the pairs
    in the ``restrict_vocab`` most frequent words) and its coverage, the share of pairs
    scored."""
    import logging

    quiet = logging.getLogger("gensim.models.keyedvectors")
    saved_level = quiet.level
    quiet.setLevel(logging.ERROR)  # gensim logs every section at INFO
    try:
        scores = analogy_scores(kv, analogies, restrict_vocab)
        for name, path in similarity_sets.items():
            _, spearman, oov_percent = kv.evaluate_word_pairs(
                path, restrict_vocab=restrict_vocab, case_insensitive=True
            )
            scores[f"{name} rho"] = float(spearman[0])
            scores[f"{name} coverage"] = 1 - oov_percent / 100
    finally:
        quiet.setLevel(saved_level)
    return scores

# %% [markdown]
# All five models are evaluated with the same vocabulary, in the same (frequency) order:

# %%
analogy_path = fetch("word_similarity", "questions-words.txt")
similarity_sets = {
    "WS-353": fetch("word_similarity", "wordsim353.tsv"),
    "SimLex-999": fetch("word_similarity", "simlex999.txt"),
}
vectors = {kind: model.wv for kind, model in gensim_models.items()}
vectors["PPMI-SVD"] = keyed_vectors(vocab, svd_vectors)
vectors["Keras SGNS"] = keyed_vectors(vocab, sgns.word_vectors())
scores = pd.DataFrame(
    {
        name: benchmark_scores(kv, analogy_path, similarity_sets)
        for name, kv in vectors.items()
    }
).T
bench_columns = ["semantic acc", "syntactic acc", "analogy acc"]
bench_columns += ["WS-353 rho", "SimLex-999 rho"]
bench_table = scores[bench_columns].astype(float)  # shown, captioned, below
coverage_columns = ["semantic questions", "syntactic questions", "analogy coverage"]
coverage_columns += ["WS-353 coverage", "SimLex-999 coverage"]
coverage = scores.loc["skip-gram", coverage_columns]
assert (scores[coverage_columns].nunique() == 1).all()  # the same for every model
print("coverage (same for all models):", coverage.to_dict())

# %% [markdown]
# The analogy set's questions per kind (all of them, in vocabulary or not):

# %%
questions_per_kind = Counter()
for line in analogy_path.read_text().splitlines():
    if line.startswith(":"):
        section_kind = "syntactic" if line.split()[1].startswith("gram") else "semantic"
    elif line.strip():
        questions_per_kind[section_kind] += 1
glue("n_sem_all", questions_per_kind["semantic"], display=False)
glue("n_syn_all", questions_per_kind["syntactic"], display=False)

# %% [markdown]
# The figures that the text below quotes, and the checks of its claims:

# %%
keys = {"skip-gram": "sg", "CBOW": "cbow", "FastText": "ft", "PPMI-SVD": "svd"}
keys["Keras SGNS"] = "keras"
short = {"semantic acc": "sem", "syntactic acc": "syn", "analogy acc": "all"}
short |= {"WS-353 rho": "ws", "SimLex-999 rho": "simlex"}
for name, key in keys.items():
    for column, prefix in short.items():
        glue(f"{prefix}_{key}", float(scores.loc[name, column]), display=False)
for column, prefix in short.items():
    glue(f"best_{prefix}", bench_table[column].idxmax(), display=False)
    glue(f"best_{prefix}_value", float(bench_table[column].max()), display=False)
for column, key in [("semantic", "sem"), ("syntactic", "syn")]:
    glue(f"n_{key}_q", int(coverage[f"{column} questions"]), display=False)
for column, key in [("analogy", "analogy"), ("WS-353", "ws"), ("SimLex-999", "simlex")]:
    glue(f"{key}_coverage", float(coverage[f"{column} coverage"]), display=False)
chance = 1 / (min(len(vocab), 30_000) - 3)
glue("chance_analogy", chance, display=False)
glue("tab_w2v_bench", bench_table.style.format("{:.3f}"), display=False)
assert (bench_table["analogy acc"] > 10 * chance).all()  # far above chance
assert scores.loc["FastText", "syntactic acc"] > scores.loc["FastText", "semantic acc"]
assert (bench_table[["WS-353 rho", "SimLex-999 rho"]] > 0).all().all()
assert (bench_table["WS-353 rho"] > bench_table["SimLex-999 rho"]).all()

# %% [markdown]
# Where two models are compared in the text, the comparison word comes from the run too:

# %%
def compared(a: float, b: float) -> str:
    """'above', 'below' or 'equal to': how a compares with b at three decimals."""
    a, b = round(a, 3), round(b, 3)
    return "above" if a > b else "below" if a < b else "equal to"


for key, (model_a, model_b, column) in {
    "cbow_vs_sg_all": ("CBOW", "skip-gram", "analogy acc"),
    "cbow_vs_sg_sem": ("CBOW", "skip-gram", "semantic acc"),
    "svd_vs_sg_sem": ("PPMI-SVD", "skip-gram", "semantic acc"),
    "svd_vs_sg_ws": ("PPMI-SVD", "skip-gram", "WS-353 rho"),
    "keras_vs_sg_all": ("Keras SGNS", "skip-gram", "analogy acc"),
    "keras_vs_sg_ws": ("Keras SGNS", "skip-gram", "WS-353 rho"),
}.items():
    a, b = bench_table.loc[model_a, column], bench_table.loc[model_b, column]
    glue(key, compared(a, b), display=False)

# %% [markdown]
# ```{glue:figure} tab_w2v_bench
# :name: tab-w2v-bench
#
# Analogy accuracy (semantic, syntactic, all questions in vocabulary) and Spearman's $\rho$ on WordSim-353
# and SimLex-999 for each model, trained on the same corpus with the same vocabulary and dimension.
# ```
#
# **Coverage.** {glue:text}`n_sem_q:,` semantic and {glue:text}`n_syn_q:,` syntactic questions have all four
# words in the vocabulary, {glue:text}`analogy_coverage:.0%` of the set (the others have a word outside it);
# {glue:text}`ws_coverage:.0%` of the WordSim-353 pairs and {glue:text}`simlex_coverage:.0%` of the SimLex-999
# pairs are scored. The coverage is the same for every model, so the rows are comparable.
#
# **Results.** Random guessing would answer an analogy correctly with probability about
# {glue:text}`chance_analogy:.1e`; every model is far above that. The best model on the analogies overall is
# {glue:text}`best_all` ({glue:text}`best_all_value:.1%`), on the semantic questions {glue:text}`best_sem`
# ({glue:text}`best_sem_value:.1%`), on the syntactic ones {glue:text}`best_syn`
# ({glue:text}`best_syn_value:.1%`). FastText's accuracy comes mostly from the syntactic questions
# ({glue:text}`syn_ft:.1%` against {glue:text}`sem_ft:.1%` semantic): plurals, tenses and comparatives are
# largely visible in the spelling, which the character n-grams share. Skip-gram and CBOW had the same number
# of epochs; CBOW's accuracy on all questions, {glue:text}`all_cbow:.1%`, is {glue:text}`cbow_vs_sg_all`
# skip-gram's {glue:text}`all_sg:.1%`, and on the semantic questions ({glue:text}`sem_cbow:.1%` against
# {glue:text}`sem_sg:.1%`) {glue:text}`cbow_vs_sg_sem` it; the paper, on far more data, found skip-gram much
# better on the semantic questions {cite:p}`mikolov2013a`. On similarity, skip-gram reaches
# $\rho$ = {glue:text}`ws_sg:.2f` on WordSim-353 and {glue:text}`simlex_sg:.2f` on SimLex-999; every model
# finds SimLex harder. The best model on WordSim-353 is {glue:text}`best_ws` ($\rho$ =
# {glue:text}`best_ws_value:.2f`), on SimLex-999 {glue:text}`best_simlex` ({glue:text}`best_simlex_value:.2f`).
# The count-based PPMI–SVD baseline, which sees the exact counts of all pairs at once, has $\rho$ =
# {glue:text}`ws_svd:.2f` on WordSim-353, {glue:text}`svd_vs_sg_ws` skip-gram, and {glue:text}`sem_svd:.1%`
# on the semantic questions, {glue:text}`svd_vs_sg_sem` skip-gram; Levy et al. {cite:p}`levy2015` found the
# two families close in general once the count-based model is given word2vec's tricks (here the smoothed
# context distribution). Our Keras SGNS, trained for {glue:text}`sgns_passes:.2f` passes over the pairs in
# large batches with Adam, has $\rho$ = {glue:text}`ws_keras:.2f` on WordSim-353 ({glue:text}`keras_vs_sg_ws`
# gensim's skip-gram) and {glue:text}`all_keras:.1%` on analogies ({glue:text}`keras_vs_sg_all` it). The two
# optimise the same objective, but differ in the optimiser, the batch, the learning-rate schedule and the
# number of passes, so these rows do not rank the implementations.
#
# **Why these numbers are below the paper's.** The paper's skip-gram, with 640-dimensional vectors trained on
# 320 million words, answered 55% of the semantic and 59% of the syntactic questions (its Table 3, all
# models trained on the same data), and its Table 2 shows the accuracy of CBOW growing with both the amount
# of training data and the dimension {cite:p}`mikolov2013a`. Our corpus has {glue:text}`corpus_share:.1%` as
# many tokens as that one, and {glue:text}`rare_share:.0%` of our vocabulary's words occur fewer than 100
# times in it.

# %%
glue("corpus_share", n_tokens / 320e6, display=False)
glue("rare_share", float((vocab_counts < 100).mean()), display=False)

# %% [markdown]
# ## Neighbours and analogies
#
# The nearest neighbours (by cosine) of a few words, for skip-gram, FastText and PPMI–SVD:

# %%
probe_words = "king france war music river january good three played computer".split()
neighbours = pd.DataFrame(
    {
        name: [
            ", ".join(w for w, _ in vectors[name].most_similar(word, topn=5))
            for word in probe_words
        ]
        for name in ["skip-gram", "FastText", "PPMI-SVD"]
    },
    index=pd.Index(probe_words, name="word"),
)
glue("king_sg", neighbours.loc["king", "skip-gram"], display=False)
glue("king_ft", neighbours.loc["king", "FastText"], display=False)
neighbours

# %% [markdown]
# Read the table for neighbours of the same kind (months for "january", numbers for "three") and for
# neighbours that are related in use rather than similar in meaning. For "king", skip-gram returns
# {glue:text}`king_sg`; FastText returns {glue:text}`king_ft`. Distributional similarity is relatedness of
# use, not synonymy, which is why SimLex-999 is hard. How often do neighbours merely share spelling? Count
# the neighbours that have a character trigram in common with the probe word:

# %%
def char_ngrams(word: str, n: int = 3) -> set[str]:
    """The set of character n-grams of a word."""
    return {word[i : i + n] for i in range(len(word) - n + 1)}


spelling_share = {
    name: np.mean(
        [
            bool(char_ngrams(word) & char_ngrams(neighbour))
            for word, row in neighbours[name].items()
            for neighbour in row.split(", ")
        ]
    )
    for name in neighbours.columns
}
for name, key in [("skip-gram", "sg"), ("FastText", "ft"), ("PPMI-SVD", "svd")]:
    glue(f"spelling_{key}", float(spelling_share[name]), display=False)
print({name: round(float(share), 2) for name, share in spelling_share.items()})
assert spelling_share["FastText"] > max(
    spelling_share["skip-gram"], spelling_share["PPMI-SVD"]
)

# %% [markdown]
# {glue:text}`spelling_ft:.0%` of FastText's neighbours share a trigram with their probe word, against
# {glue:text}`spelling_sg:.0%` of skip-gram's and {glue:text}`spelling_svd:.0%` of PPMI–SVD's: FastText's
# vectors are sums over character n-grams, and for all but the most frequent words the shared n-grams pull
# words of similar spelling together. Analogies, answered with 3CosAdd:

# %%
analogy_examples = [
    ("man", "king", "woman", "queen"),
    ("france", "paris", "germany", "berlin"),
    ("france", "paris", "japan", "tokyo"),
    ("big", "bigger", "small", "smaller"),
    ("good", "better", "bad", "worse"),
    ("go", "went", "see", "saw"),
    ("walk", "walking", "swim", "swimming"),
    ("one", "two", "three", "four"),
]
rows = []
for a, b, c, expected in analogy_examples:
    row = {"question": f"{a} : {b} :: {c} : ?", "expected": expected}
    for name in ["skip-gram", "FastText"]:
        answer = vectors[name].most_similar(positive=[b, c], negative=[a], topn=1)[0][0]
        row[name] = answer + (" ✓" if answer == expected else "")
    rows.append(row)
analogy_table = pd.DataFrame(rows).set_index("question")
for name, key in [("skip-gram", "sg"), ("FastText", "ft")]:
    glue(f"n_ok_{key}", int(analogy_table[name].str.endswith("✓").sum()), display=False)
glue("n_examples", len(analogy_examples), display=False)
analogy_table

# %% [markdown]
# Of these {glue:text}`n_examples` analogies, skip-gram answers {glue:text}`n_ok_sg` and FastText
# {glue:text}`n_ok_ft` correctly. So few questions do not rank the models (the benchmark table does); they
# show what the answers look like, and where FastText is wrong, its answer can be compared with the
# spelling of the question's words.
#
# **Rare and unseen words.** word2vec has no vector for a word outside its vocabulary (fewer than
# `min_count` occurrences). FastText builds one from the word's character n-grams, so it can place
# misspellings and rare inflections; the table shows where such words land, with how often each occurs in
# the training text.

# %%
misspellings = ["lnguage", "languge"]
unseen_words = misspellings + ["computerized", "unfriendly", "footballers"]
oov_table = pd.DataFrame(
    {
        "in vocabulary": [w in word_index for w in unseen_words],
        "training count": [counts.get(w, 0) for w in unseen_words],
        "FastText neighbours": [
            ", ".join(w for w, _ in vectors["FastText"].most_similar(word, topn=5))
            for word in unseen_words
        ],
    },
    index=pd.Index(unseen_words, name="word"),
)
assert not oov_table.loc[misspellings, "in vocabulary"].any()
oov_table

# %% [markdown]
# ## A picture of the space
#
# Two-dimensional projections of a labelled set of words (countries and their capitals, numbers, verbs in the
# present and the past tense): PCA, a linear projection that keeps the directions of largest variance, and
# t-SNE {cite:p}`vandermaaten2008`, a non-linear map that preserves neighbourhoods but not distances (fixed
# `random_state`).

# %%
word_groups = {
    "country": "france germany italy japan russia spain china egypt england".split(),
    "capital": "paris berlin rome tokyo moscow madrid beijing cairo london".split(),
    "number": "one two three four five six seven eight nine ten".split(),
    "verb (present)": "go take see give come write begin".split(),
    "verb (past)": "went took saw gave came wrote began".split(),
}
plot_words = [w for group in word_groups.values() for w in group]
group_of = np.array([g for g, words in word_groups.items() for _ in words])
assert all(w in word_index for w in plot_words)
plot_vectors = vectors["skip-gram"][plot_words]
plot_vectors = plot_vectors / np.linalg.norm(plot_vectors, axis=1, keepdims=True)
projections = {
    "PCA": PCA(n_components=2, random_state=0).fit_transform(plot_vectors),
    "t-SNE": TSNE(
        n_components=2, perplexity=8, init="pca", random_state=0
    ).fit_transform(plot_vectors),
}

# %% [markdown]
# How well the groups separate can be counted: for each word, is the nearest other word of the set (by
# cosine in the full space, by distance in the t-SNE map) of the same group?

# %%
def same_group_share(points: np.ndarray, groups: np.ndarray, cosine: bool) -> float:
    """Share of the points whose nearest other point is of the same group."""
    if cosine:
        distance = -points @ points.T  # rows are unit vectors
    else:
        distance = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distance, np.inf)
    return float((groups[distance.argmin(axis=1)] == groups).mean())


glue("group_nn_full", same_group_share(plot_vectors, group_of, True), display=False)
tsne_share = same_group_share(projections["t-SNE"], group_of, False)
glue("group_nn_tsne", tsne_share, display=False)

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 5.5))
for ax, (method, points) in zip(axes, projections.items(), strict=True):
    for group, words in word_groups.items():
        group_points = points[group_of == group]
        ax.scatter(group_points[:, 0], group_points[:, 1], label=group)
        for word, (x, y) in zip(words, group_points, strict=True):
            ax.annotate(
                word, (x, y), fontsize=8, xytext=(2, 2), textcoords="offset points"
            )
    ax.set_title(method)
    ax.set_xlabel(f"{method} dimension 1")
    ax.set_ylabel(f"{method} dimension 2")
axes[0].legend(fontsize=8)
glue("fig_w2v_projection", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_w2v_projection
# :name: fig-w2v-projection
# :figwidth: 100%
#
# Skip-gram vectors (normalised) of countries, capitals, numbers and verbs projected to two dimensions with
# PCA (left) and t-SNE (right). For {glue:text}`group_nn_full:.0%` of the words, the nearest other word of
# the set in the full space is of the same group (present and past tense counted as two groups); in the
# t-SNE map, for {glue:text}`group_nn_tsne:.0%`.
# ```
#
# ## Word vectors as features: sentence sentiment
#
# The movie-review sentence polarity set {cite:p}`pang2005` (MR: {glue:text}`n_mr_pos:,` positive and
# {glue:text}`n_mr_neg:,` negative sentences from Rotten Tomatoes, lower-cased and tokenized; the files are
# cp1252-encoded) is a standard test of sentence representations. The simplest use of word vectors:
# represent a sentence by the **average** of the vectors of its words (words without a vector are skipped;
# FastText has a vector for every word) and train a logistic regression. The reference is a bag-of-words
# logistic regression on TF–IDF weighted unigrams and bigrams. All use 10-fold stratified cross-validation
# with the same shuffled folds.

# %%
def read_polarity(name: str) -> list[str]:
    """The sentences of one rt-polarity file (cp1252 bytes, one sentence per line)."""
    raw = fetch("rt_polarity", f"rt-polarity.{name}").read_bytes()
    return [line.decode("cp1252").strip() for line in raw.split(b"\n") if line.strip()]


def average_vectors(kv, texts: list[str], oov_vectors: bool = False) -> np.ndarray:
    """Mean of the word vectors of each text (zeros if none); with ``oov_vectors``
    every word counts (FastText has a vector for any word)."""
    features = np.zeros((len(texts), kv.vector_size), np.float32)
    for i, text in enumerate(texts):
        words = [w for w in text.split() if oov_vectors or w in kv.key_to_index]
        if words:
            features[i] = np.mean([kv[w] for w in words], axis=0)
    return features


positive, negative = read_polarity("pos"), read_polarity("neg")
glue("n_mr_pos", len(positive), display=False)
glue("n_mr_neg", len(negative), display=False)
sentences = positive + negative
labels = np.array([1] * len(positive) + [0] * len(negative))
folds = StratifiedKFold(n_splits=10, shuffle=True, random_state=0)

# %% [markdown]
# Cross-validate each representation:

# %%
bow = "bag of words (TF-IDF 1-2 grams)"
classifiers = {
    bow: (
        make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            LogisticRegression(C=4.0, max_iter=2000),
        ),
        sentences,
    )
}
for name in ["skip-gram", "CBOW", "FastText", "PPMI-SVD"]:
    classifiers[f"average {name} vectors"] = (
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        average_vectors(vectors[name], sentences, oov_vectors=name == "FastText"),
    )
sentiment = {}
for name, (classifier, features) in classifiers.items():
    accuracy = cross_val_score(  # the folds in parallel processes
        classifier, features, labels, cv=folds, scoring="accuracy", n_jobs=-1
    )
    sentiment[name] = dict(mean=accuracy.mean(), std=accuracy.std())
sentiment = pd.DataFrame(sentiment).T
sentiment.style.format("{:.3f}")

# %%
glue("n_mr", len(sentences), display=False)
for name, key in [(bow, "bow")] + [
    (f"average {n} vectors", k) for n, k in keys.items()
]:
    if name in sentiment.index:
        glue(f"mr_{key}_mean", float(sentiment.loc[name, "mean"]), display=False)
        glue(f"mr_{key}_std", float(sentiment.loc[name, "std"]), display=False)
assert sentiment["mean"].idxmax() == bow and (sentiment["mean"] > 0.6).all()

# %% [markdown]
# On the {glue:text}`n_mr:,` sentences, the bag-of-words model reaches an accuracy of
# {glue:text}`mr_bow_mean:.3f` ± {glue:text}`mr_bow_std:.3f` (mean ± standard deviation over the 10 folds).
# Averaged skip-gram vectors give {glue:text}`mr_sg_mean:.3f` ± {glue:text}`mr_sg_std:.3f`, CBOW
# {glue:text}`mr_cbow_mean:.3f` ± {glue:text}`mr_cbow_std:.3f`, FastText {glue:text}`mr_ft_mean:.3f` ±
# {glue:text}`mr_ft_std:.3f` and PPMI–SVD {glue:text}`mr_svd_mean:.3f` ± {glue:text}`mr_svd_std:.3f`. The
# vectors were learned from encyclopaedia text, not from reviews, and an average forgets word order and
# negation; the bag of words learns its weights from the task itself. These are the baselines the BERT
# chapter is compared with.
#
# ## Throughput: gensim against our Keras SGNS

# %%
keras_run = dict(
    model=f"Keras SGNS (Adam, batch {cfg.sgns_batch})",
    epochs=sgns_passes,
    seconds=sgns_seconds,
    words_per_s=sgns_words_per_s,
)
throughput = pd.concat(
    [runs[runs.workers == 2], pd.DataFrame([keras_run])], ignore_index=True
)[["model", "workers", "epochs", "seconds", "words_per_s"]]
throughput = throughput.rename(
    columns={"workers": "gensim threads", "words_per_s": "effective words/s"}
)
gpus = import_tensorflow().config.list_logical_devices("GPU")
keras_device = "a GPU" if gpus else "the CPU"
glue("keras_device", keras_device, display=False)
glue("speedup_sg", float(rate["skip-gram", 2] / sgns_words_per_s), display=False)
throughput.style.format(
    {"gensim threads": "{:.0f}", "epochs": "{:.2f}", "seconds": "{:.1f}"}
    | {"effective words/s": "{:,.0f}"},
    na_rep="",
)

# %% [markdown]
# gensim's skip-gram, with two worker threads, processes {glue:text}`speedup_sg:.1f` times as many effective
# words per second as our Keras version, which ran on {glue:text}`keras_device`. The two do the work
# differently. (1) **Sparse, in-place updates.** gensim's Cython loop touches only the $1+k$ rows of $C$ and
# the one row of $U$ that a pair involves, with BLAS level-1 calls, in each thread, without locks (Hogwild).
# Keras computes a gradient for the batch, and Adam updates its moment estimates for *every* row of both
# $V \times d$ tables at every step: $O(Vd)$ work per step, whatever the batch size. (2) **Framework
# overhead.** Each step goes through `tf.data`, the Keras training loop and TensorFlow's op dispatch. (3)
# **Batch size.** The dense Adam update and the per-step overhead are paid once per batch, so their cost per
# pair falls as the batch grows; that is why we train with batches of {glue:text}`sgns_batch:,` pairs
# (exercise 5 measures other sizes). (XLA compilation, `jit_compile=True`, fuses the step further, but Keras
# switches it off when TensorFlow's op determinism is on, as it is here for reproducible runs.) The price is
# fewer updates per pass over the data, and a frequent word's many gradients in one batch are averaged
# instead of applied one after another, so a large batch learns less per pair and needs a larger learning
# rate or more passes. gensim, with a batch of one pair and no framework in between, has neither cost.
# Timings vary from run to run; the benchmark scores do not.
#
# ## Exercises
#
# 1. **Subsampling.** Train skip-gram with our pair generator using
#    `keep_probabilities(..., variant="paper")` and $t = 10^{-5}$. Predict how the number of pairs and the
#    Keras throughput in words per second change (hint: how many "the" survive?), then measure both and the
#    benchmark scores. Then retrain gensim's skip-gram with its defaults, `sample=1e-3` and `alpha=0.025`,
#    for the same number of epochs, and compare its time and scores with ours.
# 2. **The noise exponent.** Replace `noise_distribution(vocab_counts)` by power 1.0 (the unigram) and by 0.0
#    (uniform) in the Keras model. Predict which benchmark suffers most from uniform noise, and why rare words
#    are affected differently from frequent ones.
# 3. **Shifted PMI.** Compute the shifted PPMI matrix $\max(\mathrm{PMI} - \log k, 0)$ for $k = 5$
#    {cite:p}`levy2014` and factorise it as above. Does the shift help or hurt on WordSim-353 and SimLex-999?
#    Compare $U\Sigma^{1/2}$ with $U$ alone ($\Sigma^0$).
# 4. **Reproducibility.** Train skip-gram twice with `workers=2` and the same seed, and measure the largest
#    difference between the two vector tables and between their benchmark scores. Then do it with
#    `workers=1`. Explain the difference.
# 5. **Batch size and optimiser.** Time a few hundred steps of the Keras model with batches of 4,096 and
#    65,536 pairs, and predict first how the pairs per second change. Then replace Adam by
#    `keras.optimizers.SGD` with a learning rate scaled for the batch-mean loss: which tensors are updated
#    now? Measure pairs per second and the quality after the same number of steps.
# 6. **Window size.** Retrain skip-gram with `window=2` and `window=10`. Which benchmark prefers the small
#    window (hint: SimLex measures similarity, WordSim-353 mostly relatedness)?
#
# ## Summary
#
# * Word vectors turn the distributional hypothesis into geometry. Skip-gram {eq}`eq-w2v-skipgram` predicts
#   the context from a word, CBOW {eq}`eq-w2v-cbow` the word from the mean of its context; negative sampling
#   {eq}`eq-w2v-neg` with noise $\propto$ count$^{3/4}$ {eq}`eq-w2v-noise` replaces the $O(V)$ softmax, and
#   subsampling drops frequent words (the paper's {eq}`eq-w2v-subsample-paper` differs from gensim's
#   {eq}`eq-w2v-subsample-gensim`).
# * SGNS implicitly factorises the shifted PMI matrix {eq}`eq-w2v-shifted-pmi`; an explicit PPMI + SVD on the
#   same counts is the count-based baseline.
# * On {glue:text}`n_tokens:,` tokens of {glue:text}`corpus_name`, gensim trains skip-gram at
#   {glue:text}`wps_sg_2:,.0f`, CBOW at {glue:text}`wps_cbow_2:,.0f` and FastText at
#   {glue:text}`wps_ft_2:,.0f` effective words per second with two threads, streaming the corpus from disk;
#   our Keras SGNS manages {glue:text}`sgns_wps:,.0f`.
# * Analogy accuracy is far above chance (the paper's skip-gram, trained on a far larger corpus, answered
#   55 % of the semantic and 59 % of the syntactic questions {cite:p}`mikolov2013a`); FastText's subwords
#   carry its syntactic analogies ({glue:text}`syn_ft:.1%`) and give vectors to unseen and misspelled words.
#   Skip-gram reaches $\rho$ = {glue:text}`ws_sg:.2f` on WordSim-353 and {glue:text}`simlex_sg:.2f` on
#   SimLex-999.
# * As sentence features, averaged word vectors reach {glue:text}`mr_sg_mean:.3f` (skip-gram) on MR sentiment,
#   below a TF–IDF bag of words ({glue:text}`mr_bow_mean:.3f`): the baselines for contextual models.
