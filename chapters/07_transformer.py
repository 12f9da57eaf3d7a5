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
# # The Transformer from scratch
#
# We build the Transformer of Vaswani et al. {cite:p}`vaswani2017` from `keras.ops`: scaled dot-product and
# multi-head attention, position encodings, padding and causal masks, and the encoder and decoder blocks, and
# prove each piece equal to its Keras or KerasHub counterpart. Then we measure what attention costs as
# sentences grow, and translate chapter 06's sentences with it, against chapter 06's attention GRU trained
# here, with both models' training times measured side by side.

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
# The setup cell seeds everything, makes TensorFlow's kernels deterministic and shows the active profile. The
# data settings are chapter 06's, so that both chapters translate the same sentences: in the quick profile
# Spanish into English with the Anki/Tatoeba pairs restricted to a closed vocabulary, in the full profile
# German into English on Multi30k {cite:p}`elliott2016`. The `gru_*` settings are chapter 06's for its best
# model, Bahdanau's attention GRU, which we retrain here; `d_model`, `num_heads`, `ff_dim` and `num_layers` size
# the Transformer, and `train_steps` sets its training budget.

# %%
import math
import time
from functools import partial

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from myst_nb import glue

from lmlib.plot import use_style
from lmlib.profiles import setup_chapter

# %%
cfg = setup_chapter(
    "07",
    quick=dict(
        dataset="anki_spa_eng",
        max_len=20,
        closed_vocab=2000,
        min_freq=1,
        n_valid=1000,
        n_test=3000,
        batch_size=128,
        buckets=(5, 7, 9, 11, 14),
        gru_embed_dim=128,
        gru_units=128,
        gru_learning_rate=1e-2,
        gru_steps=280,
        d_model=96,
        num_heads=4,
        ff_dim=256,
        num_layers=1,
        dropout=0.0,
        peak_learning_rate=1e-2,
        warmup_steps=100,
        label_smoothing=0.1,
        train_steps=350,
        eval_every=70,
        beam_width=4,
        beam_sentences=100,
        cost_lengths=(32, 64, 128, 256, 512, 1024),
    ),
    full=dict(
        dataset="multi30k",
        max_len=80,
        closed_vocab=None,
        min_freq=2,
        n_valid=None,
        n_test=None,
        batch_size=128,
        buckets=(9, 11, 13, 15, 18, 22),
        gru_embed_dim=256,
        gru_units=512,
        gru_learning_rate=1e-3,
        gru_steps=6000,
        d_model=256,
        num_heads=8,
        ff_dim=512,
        num_layers=3,
        dropout=0.1,
        peak_learning_rate=1e-3,
        warmup_steps=1000,
        label_smoothing=0.1,
        train_steps=6000,
        eval_every=1000,
        beam_width=5,
        beam_sentences=1000,
        cost_lengths=(64, 128, 256, 512, 1024, 2048, 4096),
    ),
    keras=True,
)

# %%
use_style()
import warnings  # noqa: E402

import keras  # noqa: E402  (after setup_chapter has set the backend)
import tensorflow as tf  # noqa: E402
from keras import ops  # noqa: E402

# KerasHub imports tqdm's notebook progress bars, which warn when ipywidgets is absent
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    import keras_hub

# %% [markdown]
# ## Scaled dot-product attention
#
# Chapter 06's decoder attended to the encoder's outputs from inside a recurrence. The Transformer drops the
# recurrence: every position of a sequence attends to every position at once. A query $q$ is compared with
# keys $k_j$, and the values $v_j$ are averaged with the resulting weights. Stacking $T_q$ queries, $T_k$ keys
# and $T_k$ values as the rows of $Q \in \mathbb{R}^{T_q \times d_k}$, $K \in \mathbb{R}^{T_k \times d_k}$ and
# $V \in \mathbb{R}^{T_k \times d_v}$, and adding a mask $M$ (section 3.2.3 of the paper),
#
# $$
# \mathrm{Attention}(Q, K, V) = \mathrm{softmax}\Bigl(\frac{Q K^\top}{\sqrt{d_k}} + M\Bigr) V
# \quad \in \mathbb{R}^{T_q \times d_v},
# $$ (eq-tf-attention)
#
# with the softmax taken over each row (over the keys), and a mask $M \in \{0, -\infty\}^{T_q \times T_k}$ that
# is $0$ where query $i$ may look at key $j$ and $-\infty$ where it may not {cite:p}`vaswani2017`. This is
# chapter 06's Luong dot score with one change, the division by $\sqrt{d_k}$.
#
# **Why $\sqrt{d_k}$.** If the components of $q$ and $k$ are independent with mean 0 and variance 1, their
# dot product $q \cdot k = \sum_{i=1}^{d_k} q_i k_i$ has mean 0 and variance $d_k$ (Vaswani et al., footnote 4).
# Unscaled, the scores spread more as $d_k$ grows, and the softmax puts almost all its weight on one key; its
# gradient, $\partial \alpha_i / \partial e_j = \alpha_i (\delta_{ij} - \alpha_j)$, then vanishes. We draw
# 2,000 random queries against 32 random keys for growing $d_k$ and measure the largest weight of each row and
# the gradient's size, with and without the scaling.

# %%
def softmax_saturation(
    d_k: int, n_keys: int = 32, n_queries: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean largest softmax weight, and mean norm of the softmax's Jacobian, of random
    unit-variance queries against random keys, with scores q.k and q.k / sqrt(d_k)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n_queries, d_k))
    k = rng.normal(size=(n_keys, d_k))
    row = {}
    for name, scores in (("unscaled", q @ k.T), ("scaled", q @ k.T / np.sqrt(d_k))):
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        # Jacobian of the softmax, diag(a) - a a^T, for every query: its Frobenius norm
        jacobian = weights[:, :, None] * (np.eye(n_keys) - weights[:, None, :])
        row[f"max weight ({name})"] = float(weights.max(-1).mean())
        row[f"gradient norm ({name})"] = float(
            np.linalg.norm(jacobian, axis=(1, 2)).mean()
        )
    return row


saturation = pd.DataFrame(
    {d_k: softmax_saturation(d_k) for d_k in (1, 4, 16, 64, 256)}
).T
saturation.index.name = "d_k"
display(saturation.style.format("{:.3f}"))
assert saturation["max weight (unscaled)"].is_monotonic_increasing
glue(
    "sat_unscaled_256",
    float(saturation.loc[256, "max weight (unscaled)"]),
    display=False,
)
glue("sat_scaled_256", float(saturation.loc[256, "max weight (scaled)"]), display=False)
glue(
    "grad_unscaled_256",
    float(saturation.loc[256, "gradient norm (unscaled)"]),
    display=False,
)
glue(
    "grad_scaled_256",
    float(saturation.loc[256, "gradient norm (scaled)"]),
    display=False,
)
glue("grad_d1", float(saturation.loc[1, "gradient norm (scaled)"]), display=False)

# %% [markdown]
# Unscaled, the largest weight grows with $d_k$, to a mean of {glue:text}`sat_unscaled_256:.2f` at
# $d_k = 256$ (one key takes nearly everything), and the norm of the softmax's Jacobian, after rising at small $d_k$,
# falls to {glue:text}`grad_unscaled_256:.3f`. Scaled, the largest weight at $d_k = 256$ is
# {glue:text}`sat_scaled_256:.2f` and the Jacobian's norm {glue:text}`grad_scaled_256:.3f`, close to its
# value at $d_k = 1$, {glue:text}`grad_d1:.3f`: the softmax is as soft, and learns as easily, whatever the
# width. (Chapter 06's Luong model scored with unscaled dot products of its states, one suspect for its
# attention that collapsed onto one position.)
#
# ## Masks
#
# Two masks appear in a Transformer. A **padding mask** hides the `<pad>` positions of a batch from every query;
# a **causal mask** lets position $i$ of a decoder see positions $j \le i$ only, so that training on a whole
# target at once (teacher forcing) predicts each token without seeing it or what follows. Conventions differ
# between libraries and tutorials; here, as in Keras, a mask is boolean and **True means "may attend"**. A
# padding mask has shape (batch, 1, $T_k$) and broadcasts over the queries; a causal mask has shape
# (1, $T$, $T$); `combine_masks` takes their logical AND. Where the mask is False the score is replaced by
# $-10^9$ before the softmax (our $-\infty$ in {eq}`eq-tf-attention`): its exponential underflows to exactly 0
# in float32, so masked keys get weight exactly 0, not merely a small one. These functions open
# `lmlib.transformer`, which chapters 08 (GPT) and 09 (BERT) build on.

# %%
# lmlib: transformer
import math
from collections.abc import Callable
from functools import partial
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from lmlib.text import BOS_ID, EOS_ID, PAD_ID


# %%
# lmlib: transformer
def padding_mask(ids: Any, pad_id: int = PAD_ID) -> Any:
    """(batch, 1, T) booleans, True at the real (non-padding) tokens of ``ids``
    (batch, T): the keys every query may attend to. Keras's convention: True (1)
    means *attend*."""
    return ops.not_equal(ids, pad_id)[:, None, :]


def causal_mask(length: int) -> Any:
    """(1, T, T) booleans, True where key position j <= query position i: a query sees
    itself and the past, never the future."""
    positions = ops.arange(length)
    return (positions[None, :] <= positions[:, None])[None]


def combine_masks(*masks: Any) -> Any:
    """The logical AND of the masks that are not ``None`` (broadcast), or ``None``."""
    masks = [m for m in masks if m is not None]
    if not masks:
        return None
    combined = masks[0]
    for mask in masks[1:]:
        combined = ops.logical_and(combined, mask)
    return combined


def scaled_dot_product_attention(
    query: Any,
    key: Any,
    value: Any,
    mask: Any = None,
    dropout: Callable[[Any], Any] | None = None,
) -> tuple[Any, Any]:
    """``softmax(Q K^T / sqrt(d_k)) V`` (Vaswani et al., 2017, eq. 1) for queries
    (..., T_q, d_k), keys (..., T_k, d_k) and values (..., T_k, d_v). ``mask``
    broadcasts to (..., T_q, T_k), True where a query may attend; a masked score
    becomes -1e9, whose exponential underflows to exactly 0. ``dropout``, if given,
    is applied to the weights before they average the values. Returns the outputs
    (..., T_q, d_v) and the weights (..., T_q, T_k) (before dropout)."""
    d_k = query.shape[-1]
    scores = ops.matmul(query, ops.swapaxes(key, -1, -2)) / math.sqrt(d_k)
    if mask is not None:
        scores = ops.where(mask, scores, ops.full_like(scores, -1e9))
    weights = ops.softmax(scores, axis=-1)
    dropped = weights if dropout is None else dropout(weights)
    return ops.matmul(dropped, value), weights


# %% [markdown]
# A small check: two sentences of three and five tokens, the first padded, with a causal mask on top.

# %%
ids = np.array([[5, 6, 7, 0, 0], [5, 6, 7, 8, 9]])
mask = combine_masks(padding_mask(ids), causal_mask(5))  # (2, 5, 5)
rng = np.random.default_rng(0)
q, k, v = (rng.normal(size=(2, 5, 8)).astype("float32") for _ in range(3))
_, weights = scaled_dot_product_attention(q, k, v, mask)
weights = np.asarray(weights)
print(np.asarray(mask[0]).astype(int))
print(np.round(weights[0], 2))
assert np.all(weights[np.broadcast_to(~np.asarray(mask), weights.shape)] == 0.0)
np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)

# %% [markdown]
# Row $i$ of the first sentence spreads its weight over keys $0, \dots, \min(i, 2)$ and gives exactly 0 to the
# rest: the future and the padding. (A padded *query* row, rows 3 and 4 here, still attends to the real keys;
# its output is ignored downstream because the loss and the next layer's keys mask it.)
#
# ## Multi-head attention
#
# One attention compares queries and keys in one space. Multi-head attention runs $h$ of them side by side on
# learned projections of width $d_k = d_v = d_{\text{model}} / h$, concatenates their outputs and projects
# back:
#
# $$
# \mathrm{MultiHead}(Q, K, V) = \mathrm{Concat}(\mathrm{head}_1, \dots, \mathrm{head}_h)\, W^O, \qquad
# \mathrm{head}_i = \mathrm{Attention}(Q W_i^Q, K W_i^K, V W_i^V),
# $$ (eq-tf-mha)
#
# with $W_i^Q, W_i^K \in \mathbb{R}^{d_{\text{model}} \times d_k}$, $W_i^V \in \mathbb{R}^{d_{\text{model}}
# \times d_v}$ and $W^O \in \mathbb{R}^{h d_v \times d_{\text{model}}}$ {cite:p}`vaswani2017`. All heads'
# projections are one matrix of width $h d_k$ whose output is reshaped from (batch, $T$, $h d_k$) to
# (batch, $h$, $T$, $d_k$), so the $h$ attentions are one batched matrix product. Like Keras's layer, ours
# has biases on all four projections (the paper's equations have none; `use_bias=False` removes them) and
# optional dropout on the attention weights.

# %%
# lmlib: transformer
@keras.saving.register_keras_serializable(package="lmlib")
class MultiHeadAttention(layers.Layer):
    """Multi-head attention (Vaswani et al., 2017, section 3.2.2): ``num_heads``
    scaled dot-product attentions over learned projections of size ``key_dim``, their
    outputs concatenated and projected back to the query's width (or ``output_dim``).
    ``dropout`` drops attention weights in training, as Keras's layer does. ``call``
    takes Keras's ``attention_mask`` convention: (batch, T_q, T_k) or broadcastable,
    True where a query may attend."""

    def __init__(
        self,
        num_heads: int,
        key_dim: int,
        dropout: float = 0.0,
        use_bias: bool = True,
        output_dim: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads, self.key_dim, self.rate = num_heads, key_dim, dropout
        self.use_bias, self.output_dim = use_bias, output_dim
        width = num_heads * key_dim
        self.query_dense = layers.Dense(width, use_bias=use_bias, name="query")
        self.key_dense = layers.Dense(width, use_bias=use_bias, name="key")
        self.value_dense = layers.Dense(width, use_bias=use_bias, name="value")
        self.output_dense = None  # its width is the query's, known at build
        self.dropout = layers.Dropout(dropout)

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        width = self.output_dim or query_shape[-1]
        self.output_dense = layers.Dense(width, use_bias=self.use_bias, name="output")
        self.output_dense.build((*query_shape[:-1], self.num_heads * self.key_dim))

    def split_heads(self, x):
        """(batch, T, heads * key_dim) -> (batch, heads, T, key_dim)."""
        batch, length = ops.shape(x)[0], ops.shape(x)[1]
        x = ops.reshape(x, (batch, length, self.num_heads, self.key_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def call(
        self,
        query,
        value,
        key=None,
        attention_mask=None,
        return_attention_scores: bool = False,
        training: bool = False,
    ):
        key = value if key is None else key
        q = self.split_heads(self.query_dense(query))  # (batch, heads, T_q, key_dim)
        k = self.split_heads(self.key_dense(key))  # (batch, heads, T_k, key_dim)
        v = self.split_heads(self.value_dense(value))
        # the heads share the mask: (batch, 1, T_q, T_k)
        mask = None if attention_mask is None else ops.expand_dims(attention_mask, -3)
        drop = partial(self.dropout, training=True) if training else None
        heads, weights = scaled_dot_product_attention(q, k, v, mask, drop)
        batch, length = ops.shape(query)[0], ops.shape(query)[1]
        concat = ops.reshape(
            ops.transpose(heads, (0, 2, 1, 3)),
            (batch, length, self.num_heads * self.key_dim),
        )
        output = self.output_dense(concat)  # (batch, T_q, d_model)
        return (output, weights) if return_attention_scores else output

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "dropout": self.rate,
            "use_bias": self.use_bias,
            "output_dim": self.output_dim,
        }

# %% [markdown]
# ### Checked against `keras.layers.MultiHeadAttention`
#
# Keras's layer keeps each projection as an `EinsumDense` kernel of shape ($d_{\text{model}}$, $h$, $d_k$) and
# the output kernel as ($h$, $d_v$, $d_{\text{model}}$): the same numbers as our
# ($d_{\text{model}}$, $h d_k$) and ($h d_v$, $d_{\text{model}}$) matrices, reshaped. We copy ours into a Keras
# layer and compare outputs and weights under no mask, a padding mask, a causal mask (Keras's
# `use_causal_mask=True`, its own construction) and both. Keras takes two routes: with
# `return_attention_scores=True` (or dropout) it runs its own softmax, otherwise it calls the fused
# `keras.ops.dot_product_attention`. We check both routes.

# %%
# lmlib: transformer
def copy_attention_weights(ours: MultiHeadAttention, theirs) -> None:
    """Copy our projections into a built ``keras.layers.MultiHeadAttention``."""
    h, d_k = ours.num_heads, ours.key_dim
    pairs = [
        (ours.query_dense, theirs.query_dense),
        (ours.key_dense, theirs.key_dense),
        (ours.value_dense, theirs.value_dense),
    ]
    for mine, their in pairs:  # kernel (d_model, h * d_k) -> (d_model, h, d_k)
        their.kernel.assign(ops.reshape(mine.kernel, (-1, h, d_k)))
        their.bias.assign(ops.reshape(mine.bias, (h, d_k)))
    out = ours.output_dense  # kernel (h * d_k, d_model) -> (h, d_k, d_model)
    theirs.output_dense.kernel.assign(ops.reshape(out.kernel, (h, d_k, -1)))
    theirs.output_dense.bias.assign(out.bias)

# %%
def attention_parity(seed: int = 0) -> pd.DataFrame:
    """Max |ours - Keras| of multi-head attention outputs (both Keras routes) and
    weights, and the largest weight on a masked key, for each kind of mask."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 6, 16)).astype("float32")
    ids = np.array([[5, 6, 7, 8, 0, 0], [5, 6, 7, 8, 9, 10]])  # row 0 padded
    ours = MultiHeadAttention(num_heads=4, key_dim=4)
    theirs = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4)
    ours(x, x), theirs(x, x)  # build both, then copy our weights into Keras's
    copy_attention_weights(ours, theirs)
    pad = ops.broadcast_to(padding_mask(ids), (2, 6, 6))
    rows = {}
    for name, mask, causal in (
        ("none", None, False),
        ("padding", pad, False),
        ("causal", None, True),
        ("padding + causal", pad, True),
    ):
        full = combine_masks(mask, causal_mask(6) if causal else None)
        out, w = ours(x, x, attention_mask=full, return_attention_scores=True)
        kw = dict(attention_mask=mask, use_causal_mask=causal)
        k_out, k_w = theirs(x, x, return_attention_scores=True, **kw)
        k_fused = theirs(x, x, **kw)  # the fused dot_product_attention route
        masked = 0.0
        if full is not None:  # (batch or 1, 1, T, T) against the weights' heads
            hidden = np.broadcast_to(~np.asarray(full)[:, None], w.shape)
            masked = float(np.asarray(w)[hidden].max())
        rows[name] = {
            "outputs": float(np.abs(out - k_out).max()),
            "outputs (fused route)": float(np.abs(out - k_fused).max()),
            "weights": float(np.abs(w - k_w).max()),
            "largest masked weight": masked,
        }
    return pd.DataFrame(rows).T


mha_parity = attention_parity()
display(mha_parity.style.format("{:.1e}"))
assert mha_parity[["outputs", "outputs (fused route)", "weights"]].max().max() <= 1e-5
assert (mha_parity["largest masked weight"] == 0.0).all()
glue("mha_parity", float(mha_parity.iloc[:, :3].max().max()), display=False)

# %% [markdown]
# Our layer equals Keras's to within {glue:text}`mha_parity:.1e` under every mask and on both of its
# routes, and no masked key receives any weight.
#
# ## Positions
#
# Attention is blind to order: permute the keys and values together and the output does not change. The
# Transformer therefore adds to each token's embedding a vector that depends on its position. The paper's is
# fixed, a sine and a cosine at each of $d_{\text{model}}/2$ frequencies:
#
# $$
# \mathrm{PE}_{(pos, 2i)} = \sin\bigl(pos / 10000^{2i / d_{\text{model}}}\bigr), \qquad
# \mathrm{PE}_{(pos, 2i+1)} = \cos\bigl(pos / 10000^{2i / d_{\text{model}}}\bigr),
# $$ (eq-tf-positions)
#
# so wavelengths run from $2\pi$ to $10000 \cdot 2\pi$, and for any offset $k$, $\mathrm{PE}_{pos+k}$ is a linear
# function (a rotation in each (sin, cos) pair) of $\mathrm{PE}_{pos}$ {cite:p}`vaswani2017`. Token embeddings
# are multiplied by $\sqrt{d_{\text{model}}}$ before the sum (section 3.4 of the paper). The alternative,
# used by GPT and BERT, is a *learned* embedding per position (`positions="learned"`), which cannot go beyond
# the longest position it was trained on. Sines and cosines are **interleaved** in the paper (even columns
# sine, odd columns cosine), as in `keras_hub.layers.SinePositionEncoding`; some code, the TensorFlow
# tutorial's among it, concatenates all sines and then all cosines. The two are a permutation of columns,
# equally good for a model trained from scratch, but weights trained with one do not work with the other.

# %%
# lmlib: transformer
def sinusoidal_encoding(
    length: int, d_model: int, max_wavelength: float = 10000.0
) -> np.ndarray:
    """The sinusoidal position encodings of Vaswani et al. (2017), (length, d_model):
    ``PE[pos, 2i] = sin(pos / max_wavelength**(2i / d_model))`` and
    ``PE[pos, 2i + 1] = cos(...)`` of the same angle, sines and cosines *interleaved*
    (as in the paper and ``keras_hub.layers.SinePositionEncoding``; some code
    concatenates all sines, then all cosines, which is a permutation of the columns)."""
    positions = np.arange(length)[:, None]  # (length, 1)
    pairs = np.arange(d_model) // 2  # i of columns 2i and 2i + 1
    angles = positions / max_wavelength ** (2 * pairs / d_model)
    return np.where(np.arange(d_model) % 2 == 0, np.sin(angles), np.cos(angles)).astype(
        "float32"
    )


@keras.saving.register_keras_serializable(package="lmlib")
class TokenAndPositionEmbedding(layers.Layer):
    """Token embeddings times ``sqrt(d_model)`` (Vaswani et al., section 3.4) plus
    position encodings: ``"sinusoidal"`` (fixed, :func:`sinusoidal_encoding`) or
    ``"learned"`` (an embedding per position, as in GPT and BERT), for sequences of at
    most ``max_len`` tokens; then dropout. Embeddings start from ``N(0, init_std**2)``,
    by default ``init_std = d_model**-0.5``, so that the scaled token embeddings have
    the scale of the encodings (fairseq's choice; Keras's default, uniform in +-0.05,
    would leave them far smaller). GPT and BERT use ``scale=False`` and
    ``init_std=0.02``."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int,
        max_len: int,
        positions: str = "sinusoidal",
        dropout: float = 0.0,
        scale: bool = True,
        init_std: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions={positions!r}: use 'sinusoidal' or 'learned'")
        self.settings = dict(
            vocab_size=vocab_size,
            d_model=d_model,
            max_len=max_len,
            positions=positions,
            dropout=dropout,
            scale=scale,
            init_std=init_std,
        )
        std = d_model**-0.5 if init_std is None else init_std
        init = keras.initializers.RandomNormal(stddev=std)
        self.token_embedding = layers.Embedding(
            vocab_size, d_model, embeddings_initializer=init, name="tokens"
        )
        self.position_embedding = None
        if positions == "learned":
            self.position_embedding = layers.Embedding(
                max_len, d_model, embeddings_initializer=init, name="positions"
            )
        else:
            self.table = ops.convert_to_tensor(sinusoidal_encoding(max_len, d_model))
        self.dropout = layers.Dropout(dropout)

    def call(self, ids, start: int = 0, training: bool = False):
        length = ops.shape(ids)[1]
        x = self.token_embedding(ids)  # (batch, T, d_model)
        if self.settings["scale"]:
            x = x * math.sqrt(self.settings["d_model"])
        # start + arange(length), not arange(start, start + length): XLA needs a range's
        # bounds at compile time, so the latter compiles anew for every start position
        positions = start + ops.arange(length)
        if self.position_embedding is not None:
            x = x + self.position_embedding(positions)[None]
        else:
            x = x + ops.take(self.table, positions, axis=0)[None]
        return self.dropout(x, training=training)

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}


# %%
table = sinusoidal_encoding(64, cfg.d_model)
hub_table = keras_hub.layers.SinePositionEncoding()(
    np.zeros((1, 64, cfg.d_model), "float32")
)
concatenated = np.concatenate([table[:, 0::2], table[:, 1::2]], axis=1)
position_gap = float(np.abs(table - np.asarray(hub_table)[0]).max())
print(f"ours vs KerasHub's SinePositionEncoding: max |difference| {position_gap:.1e}")
print(f"ours vs the concatenated layout: {np.abs(table - concatenated).max():.2f}")
assert position_gap <= 1e-5
glue("position_gap", position_gap, display=False)

fig, ax = plt.subplots(figsize=(6, 2.8))
image = ax.imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1)
ax.set(xlabel="position", ylabel="dimension", title="Sinusoidal position encodings")
fig.colorbar(image, ax=ax)
plt.show()

# %% [markdown]
# Our encodings equal KerasHub's to {glue:text}`position_gap:.1e`. In the figure the first dimensions change
# fast with the position, the last ones hardly at all.
#
# (sec-tf-block)=
# ## The Transformer block
#
# An encoder layer is two sublayers, multi-head self-attention and a position-wise feed-forward network
# applied to each position separately,
#
# $$
# \mathrm{FFN}(x) = \max(0, x W_1 + b_1) W_2 + b_2, \qquad W_1 \in \mathbb{R}^{d_{\text{model}} \times
# d_{\text{ff}}}, \ W_2 \in \mathbb{R}^{d_{\text{ff}} \times d_{\text{model}}},
# $$ (eq-tf-ffn)
#
# each wrapped in dropout, a residual connection {cite:p}`he2016` and layer normalisation {cite:p}`ba2016`,
# $\mathrm{LN}(x) = \gamma \odot (x - \mu) / \sqrt{\sigma^2 + \epsilon} + \beta$ over the features of one
# position. Vaswani et al. normalise *after* the residual sum (**post-LN**); most models since normalise the
# sublayer's *input* and leave the residual path untouched (**pre-LN**):
#
# $$
# \text{post-LN:} \quad x \leftarrow \mathrm{LN}\bigl(x + \mathrm{Dropout}(\mathrm{Sublayer}(x))\bigr), \qquad
# \text{pre-LN:} \quad x \leftarrow x + \mathrm{Dropout}\bigl(\mathrm{Sublayer}(\mathrm{LN}(x))\bigr).
# $$ (eq-tf-layernorm)
#
# With post-LN the gradients near the output are large at initialisation, and training needs the warm-up
# schedule defined below; pre-LN trains without it, or with a short one, and with larger rates
# {cite:p}`xiong2020`, and needs a final layer normalisation after the last block. A decoder layer has a
# third sublayer between the two, attention from the decoder's positions (queries) to the encoder's output
# (keys and values), and its self-attention is causal. `TransformerBlock` is all three: its arguments choose
# causal self-attention, cross-attention, pre- or post-LN, the activation, $\epsilon$ and biases, so chapter 08's
# GPT (pre-LN, causal, GELU) and chapter 09's BERT (post-LN, GELU, $\epsilon = 10^{-12}$) are built from it.
# **Where we use which:** the translation model below is pre-LN, because on our short training budget it
# tolerates a short warm-up and a high learning rate; BERT in chapter 09 is post-LN because its checkpoint was
# trained that way.

# %%
# lmlib: transformer
@keras.saving.register_keras_serializable(package="lmlib")
class TransformerBlock(layers.Layer):
    """One Transformer layer: self-attention, then (``cross_attention=True``, a
    decoder layer) attention over an encoder's ``memory``, then the position-wise
    feed-forward network ``W_2 act(W_1 x + b_1) + b_2``. Each sublayer is wrapped in
    dropout, a residual connection and layer normalisation: after the residual sum
    (``norm_first=False``, post-LN, as in Vaswani et al. 2017 and BERT) or before the
    sublayer (``norm_first=True``, pre-LN, as in GPT-2; the stack then needs a final
    normalisation). ``causal=True`` keeps each position from attending to later ones.
    ``use_bias=False`` drops the biases of the projections and of the layer
    normalisations (nanoGPT's choice). An encoder layer is the default; chapter 08's
    GPT is ``causal=True`` without cross-attention."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        ff_dim: int,
        dropout: float = 0.1,
        causal: bool = False,
        cross_attention: bool = False,
        norm_first: bool = False,
        activation: str | Callable = "relu",
        epsilon: float = 1e-5,
        use_bias: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by {num_heads} heads")
        self.settings = dict(
            d_model=d_model,
            num_heads=num_heads,
            ff_dim=ff_dim,
            dropout=dropout,
            causal=causal,
            cross_attention=cross_attention,
            norm_first=norm_first,
            activation=activation,
            epsilon=epsilon,
            use_bias=use_bias,
        )
        key_dim = d_model // num_heads

        def attention(name):
            return MultiHeadAttention(num_heads, key_dim, dropout, use_bias, name=name)

        def norm(name):
            return layers.LayerNormalization(
                epsilon=epsilon, center=use_bias, name=name
            )

        self.self_attention, self.self_norm = attention("self"), norm("self_norm")
        self.cross_attention = attention("cross") if cross_attention else None
        self.cross_norm = norm("cross_norm") if cross_attention else None
        self.ff_inner = layers.Dense(ff_dim, activation, use_bias, name="ff_inner")
        self.ff_outer = layers.Dense(d_model, use_bias=use_bias, name="ff_outer")
        self.ff_norm = norm("ff_norm")
        self.dropout = layers.Dropout(dropout)

    def residual(self, x, norm, sublayer, training):
        """Post-LN ``norm(x + drop(f(x)))`` or pre-LN ``x + drop(f(norm(x)))``."""
        if self.settings["norm_first"]:
            return x + self.dropout(sublayer(norm(x)), training=training)
        return norm(x + self.dropout(sublayer(x), training=training))

    def call(
        self,
        x,
        padding_mask=None,
        memory=None,
        memory_mask=None,
        training: bool = False,
        return_attention: bool = False,
    ):
        """``x`` (batch, T, d_model); ``padding_mask`` (batch, 1, T) for its own keys;
        ``memory`` (batch, S, d_model) and ``memory_mask`` (batch, 1, S) for
        cross-attention. Returns (batch, T, d_model), and with ``return_attention`` a
        dict of the attention weights (batch, heads, T, T or S) by sublayer."""
        causal = causal_mask(ops.shape(x)[1]) if self.settings["causal"] else None
        self_mask, weights = combine_masks(padding_mask, causal), {}

        def attend(layer, name, keys, mask):
            def sublayer(h):
                out, weights[name] = layer(
                    h,
                    h if keys is None else keys,
                    attention_mask=mask,
                    return_attention_scores=True,
                    training=training,
                )
                return out

            return sublayer

        x = self.residual(
            x,
            self.self_norm,
            attend(self.self_attention, "self", None, self_mask),
            training,
        )
        if self.cross_attention is not None:
            if memory is None:
                raise ValueError("a block with cross_attention=True needs memory")
            cross = attend(self.cross_attention, "cross", memory, memory_mask)
            x = self.residual(x, self.cross_norm, cross, training)
        x = self.residual(
            x, self.ff_norm, lambda h: self.ff_outer(self.ff_inner(h)), training
        )
        return (x, weights) if return_attention else x

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}


# %% [markdown]
# ### Checked against `keras_hub.layers.TransformerEncoder`
#
# KerasHub's encoder layer has the same sublayers: a Keras `MultiHeadAttention`, two layer normalisations and
# two dense layers, with `normalize_first` choosing pre-LN. We build both with the same sizes, copy our
# weights into KerasHub's, and compare the outputs on a padded batch, post-LN and pre-LN.

# %%
# lmlib: transformer
def copy_block_weights(ours: TransformerBlock, theirs) -> None:
    """Copy an encoder ``TransformerBlock``'s weights into a built
    ``keras_hub.layers.TransformerEncoder`` (through its private sublayer attributes,
    as of KerasHub 0.32)."""
    copy_attention_weights(ours.self_attention, theirs._self_attention_layer)
    pairs = [
        (ours.self_norm, theirs._self_attention_layer_norm),
        (ours.ff_norm, theirs._feedforward_layer_norm),
        (ours.ff_inner, theirs._feedforward_intermediate_dense),
        (ours.ff_outer, theirs._feedforward_output_dense),
    ]
    for mine, their in pairs:
        for source, target in zip(mine.weights, their.weights, strict=True):
            target.assign(source)


# %%
def encoder_parity(norm_first: bool, seed: int = 0) -> float:
    """Max |ours - KerasHub| of one encoder block's outputs on a padded batch."""
    x = np.random.default_rng(seed).normal(size=(2, 6, 16)).astype("float32")
    ids = np.array([[5, 6, 7, 8, 0, 0], [5, 6, 7, 8, 9, 10]])
    ours = TransformerBlock(16, 4, 32, dropout=0.0, norm_first=norm_first)
    theirs = keras_hub.layers.TransformerEncoder(
        intermediate_dim=32, num_heads=4, normalize_first=norm_first
    )
    ours(x), theirs(x)
    copy_block_weights(ours, theirs)
    mine = ours(x, padding_mask(ids))
    their = theirs(x, padding_mask=ids != 0)
    return float(np.abs(np.asarray(mine) - np.asarray(their)).max())


block_parity = {ln: encoder_parity(ln == "pre-LN") for ln in ("post-LN", "pre-LN")}
print({name: f"{gap:.1e}" for name, gap in block_parity.items()})
assert max(block_parity.values()) <= 1e-5
glue("block_parity", max(block_parity.values()), display=False)

# %% [markdown]
# Our block equals KerasHub's to {glue:text}`block_parity:.1e` in both arrangements. One more property the
# decoder relies on: with `causal=True`, output $i$ must not depend on any input after $i$. We change the
# inputs of the last three positions and compare the first three outputs.

# %%
def causal_leak(seed: int = 0, length: int = 6, cut: int = 3) -> float:
    """Max |change| of a causal block's outputs at positions < ``cut`` when the inputs
    at positions >= ``cut`` change."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, length, 16)).astype("float32")
    changed = x.copy()
    changed[:, cut:] = rng.normal(size=(2, length - cut, 16))
    block = TransformerBlock(16, 4, 32, dropout=0.0, causal=True, norm_first=True)
    before, after = np.asarray(block(x)), np.asarray(block(changed))
    assert np.abs(before[:, cut:] - after[:, cut:]).max() > 0  # the future did change
    return float(np.abs(before[:, :cut] - after[:, :cut]).max())


leak = causal_leak()
print(f"largest change of an earlier output: {leak}")
assert leak == 0.0

# %% [markdown]
# Not approximately zero: exactly, because a masked key's weight is exactly 0 and $0 \cdot v = 0$ whatever $v$.

# %% [markdown]
# ## What attention costs
#
# Self-attention over $n$ positions of width $d$ computes the $n \times n$ scores $Q K^\top$ and the weighted
# sum of the values, $n^2 d$ multiply-adds each, and the four projections, $n d^2$ each. Counting a
# multiply-add as two operations,
#
# $$
# \mathrm{FLOPs}(n) = 8 n d^2 + 4 n^2 d,
# $$ (eq-tf-cost)
#
# whose linear term dominates while $n < 2d$ and its quadratic term beyond; each head keeps an $n \times n$ weight matrix in
# memory. A recurrent layer is linear in $n$ but takes $n$ sequential steps; self-attention takes a constant
# number of steps whatever $n$ (section 4 of the paper). We time one forward pass of our multi-head attention
# (one sequence) for growing $n$ and record the bytes of the weight tensor it returns.

# %%
def attention_cost(
    lengths, d_model: int, num_heads: int, repeats: int = 3, seed: int = 0
) -> pd.DataFrame:
    """Seconds per forward pass of self-attention over one sequence of each length,
    the bytes of its attention weights, and the operation count 8nd^2 + 4n^2d."""
    layer = MultiHeadAttention(num_heads, d_model // num_heads)
    attend = tf.function(lambda x: layer(x, x, return_attention_scores=True))
    rng, rows = np.random.default_rng(seed), {}
    for n in lengths:
        x = tf.constant(rng.normal(size=(1, n, d_model)).astype("float32"))
        attend(x)  # trace for this length
        start = time.perf_counter()
        for _ in range(repeats):
            out, weights = attend(x)
        float(ops.sum(out))
        seconds = (time.perf_counter() - start) / repeats
        flops = 8 * n * d_model**2 + 4 * n**2 * d_model
        rows[n] = {
            "ms": seconds * 1e3,
            "weights MiB": weights.numpy().nbytes / 2**20,
            "GFLOP": flops / 1e9,
            "GFLOP/s": flops / seconds / 1e9,
        }
    return pd.DataFrame(rows).T.rename_axis("n")


cost = attention_cost(cfg.cost_lengths, d_model=256, num_heads=4)
display(cost.style.format("{:.3g}"))

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
n = np.array(cost.index, dtype=float)
ax.loglog(n, cost["ms"], "o-", label="measured")
flops = cost["GFLOP"].to_numpy()
formula = (
    flops / flops[-1] * cost["ms"].iloc[-1]
)  # 8nd^2 + 4n^2d, scaled to the last point
ax.loglog(n, formula, "--", label="8nd² + 4n²d, scaled")
ax.loglog(n, (n / n[-1]) ** 2 * cost["ms"].iloc[-1], ":", label="n², scaled")
ax.set(xlabel="sequence length n", ylabel="ms per forward pass")
ax.set_title("Self-attention cost, d = 256, 4 heads")
ax.legend()
plt.show()
longest, shortest = cost.index[-1], cost.index[0]
glue("cost_n_max", int(longest), display=False)
glue("cost_n_min", int(shortest), display=False)
glue(
    "cost_ms_ratio",
    float(cost.loc[longest, "ms"] / cost.loc[shortest, "ms"]),
    display=False,
)
glue("cost_len_ratio", int(longest // shortest), display=False)
glue("cost_mib_max", float(cost.loc[longest, "weights MiB"]), display=False)
glue("cost_last_ratio", float(cost["ms"].iloc[-1] / cost["ms"].iloc[-2]), display=False)

# %% [markdown]
# From $n$ = {glue:text}`cost_n_min` to {glue:text}`cost_n_max`, {glue:text}`cost_len_ratio` times longer, one
# pass takes {glue:text}`cost_ms_ratio:.0f` times as long, and at $n$ = {glue:text}`cost_n_max` the weights
# alone take {glue:text}`cost_mib_max:.0f` MiB for a single sequence. The last doubling of $n$ multiplied
# the time by {glue:text}`cost_last_ratio:.1f`; a cost dominated by the $n^2$ terms would give 4, one
# dominated by the projections (or by fixed overheads, as for short sequences) 2 or less. Sentences of
# translation corpora are short, so for the model below attention's quadratic cost is not yet the bottleneck;
# for long contexts, once $n$ exceeds about $2d$, it is.
#
# ## The encoder–decoder
#
# The translation model stacks $N$ encoder blocks over the embedded source and $N$ decoder blocks over the
# embedded target (read with `<bos>` and without its last token, as in chapter 06). Every decoder block
# attends to the last encoder block's output. The output layer shares its matrix with the target embedding
# $E$ (section 3.4 of the paper, which also shares it with the source embedding through a joint vocabulary;
# our two vocabularies differ), so the next-token distribution of decoder output $h_i$ is
#
# $$
# P(y_i \mid y_{<i}, x) = \mathrm{softmax}(h_i E^\top).
# $$ (eq-tf-output)
#
# `Transformer` has chapter 06's interface, `call((source, target_in))` → logits, so `lmlib.seq2seq`'s
# training loop serves it unchanged, and `encode`/`decode` split it for decoding.

# %%
# lmlib: transformer
@keras.saving.register_keras_serializable(package="lmlib")
class Transformer(keras.Model):
    """The encoder-decoder Transformer of Vaswani et al. (2017) for translation:
    ``num_layers`` encoder blocks over the embedded source, ``num_layers`` decoder
    blocks (causal self-attention, cross-attention) over the embedded target, and an
    output projection tied to the target embedding (section 3.4). ``norm_first``
    chooses pre-LN (with a final layer normalisation after each stack) or the
    paper's post-LN. ``call((source, target_in))`` returns logits
    (batch, T_y, tgt_vocab_size), like chapter 06's ``Seq2Seq``."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        d_model: int = 128,
        num_heads: int = 4,
        ff_dim: int = 512,
        num_layers: int = 2,
        dropout: float = 0.1,
        max_len: int = 128,
        positions: str = "sinusoidal",
        norm_first: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.settings = dict(
            src_vocab_size=src_vocab_size,
            tgt_vocab_size=tgt_vocab_size,
            d_model=d_model,
            num_heads=num_heads,
            ff_dim=ff_dim,
            num_layers=num_layers,
            dropout=dropout,
            max_len=max_len,
            positions=positions,
            norm_first=norm_first,
        )
        embed = dict(max_len=max_len, positions=positions, dropout=dropout)
        self.src_embedding = TokenAndPositionEmbedding(src_vocab_size, d_model, **embed)
        self.tgt_embedding = TokenAndPositionEmbedding(tgt_vocab_size, d_model, **embed)
        block = dict(dropout=dropout, norm_first=norm_first)
        self.encoder_blocks = [
            TransformerBlock(d_model, num_heads, ff_dim, **block, name=f"encoder_{i}")
            for i in range(num_layers)
        ]
        self.decoder_blocks = [
            TransformerBlock(
                d_model,
                num_heads,
                ff_dim,
                causal=True,
                cross_attention=True,
                **block,
                name=f"decoder_{i}",
            )
            for i in range(num_layers)
        ]
        self.encoder_norm = (
            layers.LayerNormalization(epsilon=1e-5) if norm_first else None
        )
        self.decoder_norm = (
            layers.LayerNormalization(epsilon=1e-5) if norm_first else None
        )

    def encode(self, source, training: bool = False):
        """The encoder's output (batch, S, d_model) and source mask (batch, 1, S)."""
        mask = padding_mask(source)
        x = self.src_embedding(source, training=training)
        for block in self.encoder_blocks:
            x = block(x, mask, training=training)
        return (x if self.encoder_norm is None else self.encoder_norm(x)), mask

    def decode(
        self, target_in, memory, memory_mask, training=False, return_attention=False
    ):
        """The decoder's output (batch, T, d_model) for ``target_in`` given the
        encoder's ``memory``; with ``return_attention``, also a list with each decoder
        block's attention weights."""
        x = self.tgt_embedding(target_in, training=training)
        mask, attention = padding_mask(target_in), []
        for block in self.decoder_blocks:
            x, weights = block(
                x, mask, memory, memory_mask, training=training, return_attention=True
            )
            attention.append(weights)
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        return (x, attention) if return_attention else x

    def output_logits(self, x):
        """Logits (..., tgt_vocab_size) of decoder outputs (..., d_model): the target
        embedding table, transposed, is the output projection (tied weights)."""
        table = self.tgt_embedding.token_embedding.embeddings  # (V, d_model)
        return ops.matmul(x, ops.transpose(table))

    def call(self, inputs, training: bool = False):
        source, target_in = inputs
        memory, memory_mask = self.encode(source, training=training)
        hidden = self.decode(target_in, memory, memory_mask, training=training)
        return self.output_logits(hidden)

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}


# %% [markdown]
# ### Label smoothing and the warm-up schedule
#
# Vaswani et al. train against targets smoothed towards the uniform distribution over the $V$ tokens
# {cite:p}`szegedy2016`: with $\epsilon_{ls} = 0.1$, the target distribution is
# $q'(k) = (1 - \epsilon_{ls})\,\mathbb{1}[k = y] + \epsilon_{ls} / V$, and the loss per token is
#
# $$
# \ell = -\sum_{k=1}^{V} q'(k) \log p_k = (1 - \epsilon_{ls})(-\log p_y) +
# \epsilon_{ls} \Bigl(-\frac{1}{V}\sum_{k=1}^{V} \log p_k\Bigr),
# $$ (eq-tf-smoothing)
#
# which, in the paper's words, "hurts perplexity, as the model learns to be more unsure, but improves accuracy
# and BLEU score" (section 5.4). The mean of $-\log p_k$ over the vocabulary is $\operatorname{logsumexp}(z) - \bar z$ for logits $z$,
# so the loss needs no one-hot targets. The learning rate rises linearly for `warmup_steps` steps, then decays
# with the inverse square root of the step:
#
# $$
# \mathrm{lrate} = d_{\text{model}}^{-0.5} \cdot \min\bigl(\mathrm{step}^{-0.5},\ \mathrm{step} \cdot
# \mathrm{warmup\_steps}^{-1.5}\bigr),
# $$ (eq-tf-lrate)
#
# with Adam's $\beta_1 = 0.9$, $\beta_2 = 0.98$, $\epsilon = 10^{-9}$; the paper warms up for 4,000 steps of
# 100,000. Our budgets are far shorter, so `WarmupSchedule` multiplies {eq}`eq-tf-lrate` by a `scale` chosen
# to make its peak `peak_learning_rate`, reached after `warmup_steps`.

# %%
# lmlib: transformer
def label_smoothed_loss(targets, logits, smoothing: float = 0.1):
    """Cross-entropy against targets smoothed towards the uniform distribution
    (Szegedy et al., 2016; Vaswani et al., section 5.4): ``(1 - smoothing)`` times the
    negative log-likelihood of the target plus ``smoothing`` times the mean negative
    log-probability over the vocabulary, averaged over the real target tokens
    (``<pad>`` excluded). ``smoothing=0`` is chapter 06's ``masked_loss``."""
    mask = ops.cast(ops.not_equal(targets, PAD_ID), "float32")
    nll = keras.losses.sparse_categorical_crossentropy(
        targets, logits, from_logits=True
    )
    # the mean over the vocabulary of -log p_v is logsumexp(z) - mean(z)
    uniform = ops.logsumexp(logits, axis=-1) - ops.mean(logits, axis=-1)
    loss = (1 - smoothing) * nll + smoothing * uniform
    return ops.sum(loss * mask) / ops.maximum(ops.sum(mask), 1.0)


@keras.saving.register_keras_serializable(package="lmlib")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """The learning rate of Vaswani et al. (2017, eq. 3), times ``scale``:
    ``scale * d_model**-0.5 * min(step**-0.5, step * warmup_steps**-1.5)``, a linear
    warm-up for ``warmup_steps`` steps, then decay with the inverse square root of the
    step (counted from 1)."""

    def __init__(self, d_model: int, warmup_steps: int = 4000, scale: float = 1.0):
        self.d_model, self.warmup_steps, self.scale = d_model, warmup_steps, scale

    def __call__(self, step):
        step = ops.cast(step, "float32") + 1.0  # optimizers count from 0
        decay = ops.minimum(step**-0.5, step * self.warmup_steps**-1.5)
        return self.scale * self.d_model**-0.5 * decay

    def get_config(self) -> dict:
        return dict(
            d_model=self.d_model, warmup_steps=self.warmup_steps, scale=self.scale
        )


# %%
def peak_scaled_schedule(
    d_model: int, warmup_steps: int, peak: float
) -> WarmupSchedule:
    """The schedule of eq. (eq-tf-lrate), scaled to peak at ``peak``."""
    return WarmupSchedule(
        d_model, warmup_steps, scale=peak * math.sqrt(d_model * warmup_steps)
    )


schedule = peak_scaled_schedule(cfg.d_model, cfg.warmup_steps, cfg.peak_learning_rate)
steps = np.arange(cfg.train_steps)
fig, ax = plt.subplots(figsize=(6, 2.5))
ax.plot(steps + 1, np.asarray(schedule(steps)))
ax.set(xlabel="training step", ylabel="learning rate", title="The warm-up schedule")
plt.show()


# %% [markdown]
# ## Translating chapter 06's sentences
#
# The data come from `lmlib.seq2seq` exactly as in chapter 06: the same pairs, the same filters, the same
# split by unique source, the same tokenisation, vocabularies and length-bucketed batches.

# %%
from lmlib.metrics import reference_streams, sacre_scores  # noqa: E402
from lmlib.seq2seq import (  # noqa: E402
    Seq2Seq,
    decode_batches,
    decoder_step_fn,
    encode_pairs,
    encoder_start_fn,
    fit_seq2seq,
    read_pairs,
    split_translations,
    time_train_step,
    tokenised_pairs,
    translation_dataset,
)
from lmlib.text import BOS_ID, EOS_ID, Vocab, translation_tokens  # noqa: E402

raw = read_pairs(cfg.dataset)
split_refs = split_translations(
    raw, cfg.max_len, cfg.closed_vocab, cfg.n_valid, cfg.n_test, seed=0
)
train_pairs = tokenised_pairs(split_refs["train"])
src_vocab = Vocab([src for src, _ in train_pairs], min_freq=cfg.min_freq)
tgt_vocab = Vocab([tgt for _, tgt in train_pairs], min_freq=cfg.min_freq)
train_ids = encode_pairs(train_pairs, src_vocab, tgt_vocab)
valid_ids = encode_pairs(tokenised_pairs(split_refs["valid"]), src_vocab, tgt_vocab)
train_ds = translation_dataset(*train_ids, cfg.batch_size, cfg.buckets)
valid_ds = translation_dataset(*valid_ids, 256, shuffle_seed=None)
test_sources = list(split_refs["test"])
test_ids = [src_vocab.encode(translation_tokens(s)) + [EOS_ID] for s in test_sources]
test_refs = [
    [translation_tokens(t) for t in split_refs["test"][s]] for s in test_sources
]
ref_streams = reference_streams(test_refs)
print(f"{len(train_pairs):,} training pairs, {len(test_sources):,} test sources")
print(f"vocabularies: source {len(src_vocab):,}, target {len(tgt_vocab):,}")
glue("n_train_pairs", len(train_pairs), display=False)
glue("n_test_sources", len(test_sources), display=False)

# %% [markdown]
# ### Chapter 06's best model, retrained here
#
# For a comparison in one build, on one machine, we retrain chapter 06's Bahdanau attention GRU here, with its
# settings and its training loop (`fit_seq2seq`, without XLA), rather than glue its numbers from chapter 06's
# page: the Transformer then gets its training budget measured against the GRU's on the same machine, in the
# same run. The seed is reset and a fresh pipeline built (a new iterator over a shuffled pipeline would
# continue its shuffling), so the GRU starts from chapter 06's initial weights and sees chapter 06's batches;
# run on the same machine, it reproduces chapter 06's model.

# %%
keras.utils.set_random_seed(0)
gru = Seq2Seq(
    len(src_vocab), len(tgt_vocab), cfg.gru_embed_dim, cfg.gru_units, "bahdanau"
)
gru_history = fit_seq2seq(
    gru,
    translation_dataset(*train_ids, cfg.batch_size, cfg.buckets),
    valid_ds,
    cfg.gru_steps,
    cfg.gru_steps // 4,
    cfg.gru_learning_rate,
)
gru_seconds = gru_history["seconds"][-1]
glue("gru_seconds", gru_seconds, display=False)
glue("gru_steps_g", cfg.gru_steps, display=False)

# %% [markdown]
# ### XLA or not
#
# XLA can make a Transformer's training step faster, but it compiles a program for each input
# shape, and chapter 06 found it not paying for GRUs fed batches of many shapes. We measure it for this model
# as chapter 06 did: one training step on a fixed batch with and without `jit_compile=True` (the first call
# builds the model, traces and, with XLA, compiles), and the number of distinct batch shapes a training run
# meets. A note on
# reproducibility: with op determinism on (the setup cell), Keras's `model.fit` runs without XLA (with only a warning)
# whatever `jit_compile` says, because Keras cannot promise that XLA's kernels are deterministic. Our training
# step is a `tf.function` of our own, which compiles when asked; XLA's CPU code does not reorder its sums
# between runs, so a rerun on the same machine repeats the run either way, but a GPU run with XLA is not
# covered by TensorFlow's determinism guarantee.

# %%
def build_transformer() -> Transformer:
    return Transformer(
        len(src_vocab),
        len(tgt_vocab),
        cfg.d_model,
        cfg.num_heads,
        cfg.ff_dim,
        cfg.num_layers,
        cfg.dropout,
        max_len=cfg.max_len + 16,
    )


smoothed = partial(label_smoothed_loss, smoothing=cfg.label_smoothing)
glue("tf_layers", cfg.num_layers, display=False)
glue("tf_d_model", cfg.d_model, display=False)
fixed_batch = next(iter(train_ds))
shapes = {
    (int(s.shape[1]), int(t.shape[1])) for (s, t), _ in train_ds.take(cfg.train_steps)
}
xla_rows = {}
for jit in (False, True):
    first, per_step = time_train_step(
        build_transformer, fixed_batch, jit, loss_fn=smoothed
    )
    xla_rows["XLA" if jit else "no XLA"] = {
        "first call s": first,
        "step ms": per_step * 1e3,
        "steps/s": 1 / per_step,
    }
xla_table = pd.DataFrame(xla_rows).T
display(xla_table.style.format("{:.2f}"))
saving = (xla_rows["no XLA"]["step ms"] - xla_rows["XLA"]["step ms"]) / 1e3
compile_cost = xla_rows["XLA"]["first call s"] * len(shapes)
use_xla = bool(saving * cfg.train_steps > compile_cost)
print(f"{len(shapes)} batch shapes; XLA {'pays' if use_xla else 'does not pay'}")
glue("n_shapes", len(shapes), display=False)
glue("xla_steps_s", xla_rows["XLA"]["steps/s"], display=False)
glue("plain_steps_s", xla_rows["no XLA"]["steps/s"], display=False)
glue("xla_first", xla_rows["XLA"]["first call s"], display=False)
glue("use_xla", "with" if use_xla else "without", display=False)

# %% [markdown]
# XLA pays if its saving per step, times the training steps, exceeds the time of its first call (the
# compilation) times the number of batch shapes. Here a run meets {glue:text}`n_shapes` shapes; with XLA
# the step ran at {glue:text}`xla_steps_s:.1f` steps/s against {glue:text}`plain_steps_s:.1f` without, and
# its first call took {glue:text}`xla_first:.0f` s. Padding every batch to a few fixed shapes would cut the
# compilations, at the cost of computing on more padding.
#
# The Transformer trains {glue:text}`use_xla` XLA, with the warm-up schedule, Adam with the paper's $\beta$
# and $\epsilon$, each weight's gradient clipped at norm 1 (not in the paper; the GRU's training does the
# same), and label smoothing, on a fresh pipeline: the same batches in the same order as the GRU. The quick
# profile's model was sized for two CPU cores: among a few sizes tried there, one layer of width 96 on each
# side gave the best BLEU in about the GRU's training time (deeper or wider models step more slowly and had
# not caught up by then), and its `train_steps` make its training take about as long as the GRU's. The full
# profile's model has the sizes of the literature figure below (three 256-wide layers, eight heads). Both
# training times are measured and shown.

# %%
keras.utils.set_random_seed(0)
transformer = build_transformer()
optimizer = keras.optimizers.Adam(
    schedule, beta_1=0.9, beta_2=0.98, epsilon=1e-9, clipnorm=1.0
)
history = fit_seq2seq(
    transformer,
    translation_dataset(*train_ids, cfg.batch_size, cfg.buckets),  # the GRU's batches
    valid_ds,
    cfg.train_steps,
    cfg.eval_every,
    learning_rate=None,
    jit_compile=use_xla,
    optimizer=optimizer,
    loss_fn=smoothed,
)
transformer_seconds = history["seconds"][-1]

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, h in (("Bahdanau GRU", gru_history), ("Transformer", history)):
    ax.plot(h["seconds"], h["valid_loss"], marker="o", label=name)
ax.set(xlabel="training seconds", ylabel="validation loss (nats per token)")
ax.set_title("Validation loss against training time")
ax.legend()
plt.show()

# %% [markdown]
# ### BLEU, chrF, greedy and beam
#
# Both models translate the whole test set greedily and the first `beam_sentences` test sentences with
# `lmlib.generate.beam_search`, through chapter 06's `decode_batches`: for the GRU its step function, for the
# Transformer `transformer_step_fn`, which re-runs the decoder over the prefix at every step (chapter 08 adds
# the key-value cache that avoids this). Scores are sacreBLEU and chrF with default settings on the
# lower-cased tokens, as in chapter 06.

# %%
# lmlib: transformer
def build_if_needed(model: keras.Model) -> None:
    """Create an encoder-decoder's weights with a two-token pass if it has none yet
    (decoding calls ``encode``/``decode``, which Keras does not count as building)."""
    if not model.built:
        model((np.full((1, 2), EOS_ID), np.full((1, 2), BOS_ID)))


def transformer_start_fn(model: Transformer) -> Callable:
    """``start(source) -> state`` for :func:`lmlib.seq2seq.translate_ids`: the encoder
    runs once per batch of sources (batch, S); the state is ``(prefix, memory,
    memory_mask)``, the target read so far (empty) and the encoder's output."""
    build_if_needed(model)
    encode = tf.function(model.encode, reduce_retracing=True)

    def start(source):
        memory, mask = encode(source)
        return tf.zeros((ops.shape(source)[0], 0), tf.int32), memory, mask

    return start


def transformer_step_fn(model: Transformer) -> Callable:
    """A batched step function for :func:`lmlib.generate.greedy_decode` and
    :func:`lmlib.generate.beam_search`: it appends ``token_ids`` to the prefix and
    re-runs the decoder over the whole prefix, returning the last position's logits.
    Without a key-value cache (chapter 08) step t recomputes all t positions of the
    prefix; traced once."""
    build_if_needed(model)
    d_model = model.settings["d_model"]
    state_spec = (
        tf.TensorSpec([None, None], tf.int32),
        tf.TensorSpec([None, None, d_model]),
        tf.TensorSpec([None, 1, None], tf.bool),
    )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), state_spec])
    def step(token_ids, state):
        prefix, memory, mask = state
        prefix = tf.concat([prefix, token_ids[:, None]], axis=1)
        hidden = model.decode(prefix, memory, mask)[:, -1]  # (k, d_model)
        logits = model.output_logits(hidden)  # (k, V): only the last position
        return logits, (prefix, memory, mask)

    def step_fn(token_ids: np.ndarray, state):
        logits, state = step(tf.constant(token_ids, tf.int32), state)
        return logits.numpy(), state

    return step_fn


# %%
def score_translations(
    step_fn, start_fn, ids, streams, tgt_vocab, max_out, beam_n, beam_width
) -> tuple[dict[str, float], list[list[str]]]:
    """sacreBLEU and chrF of greedy translations of all ``ids``, greedy and beam BLEU
    on the first ``beam_n``, and ms per sentence; also the greedy translations."""
    start = time.perf_counter()
    greedy = [
        tgt_vocab.decode(o) for o in decode_batches(step_fn, start_fn, ids, max_out)
    ]
    greedy_ms = (time.perf_counter() - start) / len(ids) * 1e3
    start = time.perf_counter()
    beam_ids = decode_batches(step_fn, start_fn, ids[:beam_n], max_out, beam_width)
    beam_ms = (time.perf_counter() - start) / beam_n * 1e3
    beam = [tgt_vocab.decode(o) for o in beam_ids]
    bleu, chrf = sacre_scores(greedy, streams)
    subset = [stream[:beam_n] for stream in streams]
    scores = {
        "BLEU": bleu.score,
        "chrF": chrf.score,
        "greedy BLEU (beam set)": sacre_scores(greedy[:beam_n], subset)[0].score,
        f"beam {beam_width} BLEU (beam set)": sacre_scores(beam, subset)[0].score,
        "ms/sentence greedy": greedy_ms,
        "ms/sentence beam": beam_ms,
    }
    return scores, greedy

# %%
decoding = {
    "Bahdanau GRU": (gru, gru_history, decoder_step_fn(gru), encoder_start_fn(gru)),
    "Transformer": (
        transformer,
        history,
        transformer_step_fn(transformer),
        transformer_start_fn(transformer),
    ),
}
beam_n = min(cfg.beam_sentences, len(test_ids))
results, outputs = {}, {}
for name, (model, hist, step_fn, start_fn) in decoding.items():
    scores, outputs[name] = score_translations(
        step_fn,
        start_fn,
        test_ids,
        ref_streams,
        tgt_vocab,
        cfg.max_len + 10,
        beam_n,
        cfg.beam_width,
    )
    results[name] = {
        "parameters": model.count_params(),
        "steps": hist["step"][-1],
        "train s": hist["seconds"][-1],
        "steps/s": hist["step"][-1] / hist["seconds"][-1],
        "valid loss": hist["valid_loss"][-1],
        **scores,
    }
results_table = pd.DataFrame(results).T
display(
    results_table.style.format("{:,.0f}", subset=["parameters", "steps"]).format(
        "{:.2f}", subset=list(results_table.columns[2:])
    )
)

# %%
gru_row, tf_row = results["Bahdanau GRU"], results["Transformer"]
for key, row in (("gru", gru_row), ("tf", tf_row)):
    glue(f"bleu_{key}", row["BLEU"], display=False)
    glue(f"chrf_{key}", row["chrF"], display=False)
    glue(f"seconds_{key}", row["train s"], display=False)
    glue(f"steps_s_{key}", row["steps/s"], display=False)
    glue(f"params_{key}", int(row["parameters"]), display=False)
    glue(f"valid_{key}", row["valid loss"], display=False)
    glue(f"greedy_sub_{key}", row["greedy BLEU (beam set)"], display=False)
    glue(f"beam_{key}", row[f"beam {cfg.beam_width} BLEU (beam set)"], display=False)
glue("tf_steps", int(tf_row["steps"]), display=False)
glue("bleu_gain", tf_row["BLEU"] - gru_row["BLEU"], display=False)
glue("time_ratio", tf_row["train s"] / gru_row["train s"], display=False)
glue("beam_n", beam_n, display=False)
glue("beam_width_g", cfg.beam_width, display=False)
assert tf_row["BLEU"] > gru_row["BLEU"], (
    "the prose says the Transformer translates better"
)

# %% [markdown]
# In {glue:text}`seconds_tf:.0f` seconds of training ({glue:text}`tf_steps` steps at
# {glue:text}`steps_s_tf:.1f` steps/s), against the GRU's {glue:text}`seconds_gru:.0f` seconds
# ({glue:text}`gru_steps_g` steps at {glue:text}`steps_s_gru:.1f` steps/s), the Transformer reaches sacreBLEU
# {glue:text}`bleu_tf:.1f` against the GRU's {glue:text}`bleu_gru:.1f` ({glue:text}`bleu_gain:+.1f`), and chrF
# {glue:text}`chrf_tf:.1f` against {glue:text}`chrf_gru:.1f`, with {glue:text}`params_tf:,` parameters against
# {glue:text}`params_gru:,`. Its training took {glue:text}`time_ratio:.2f` times the GRU's time. Its
# validation loss is {glue:text}`valid_tf:.3f` nats per token against {glue:text}`valid_gru:.3f` (both measured
# without smoothing). On the {glue:text}`beam_n` sentences of the beam set, beam search of width
# {glue:text}`beam_width_g` moves the Transformer from {glue:text}`greedy_sub_tf:.1f` to
# {glue:text}`beam_tf:.1f` BLEU and the GRU from {glue:text}`greedy_sub_gru:.1f` to {glue:text}`beam_gru:.1f`;
# on {glue:text}`beam_n` sentences, a point or so is within noise.
#
# How far from the literature is this? On Multi30k German→English (the full profile's data), Trevett's
# PyTorch tutorials {cite:p}`trevett2020` report BLEU 36.5 for a Transformer of three 256-wide layers with
# eight heads, and 28.1 for a bidirectional attention GRU with 512 units, both after ten epochs, decoded
# greedily and scored with torchtext's BLEU on spaCy tokens (their Transformer has learned positions and
# post-LN, without label smoothing or warm-up); their figures, in their setting, not ours.

# %% [markdown]
# ## Where the heads look
#
# Each decoder layer has `num_heads` cross-attention heads, each with its own weights over the source. We
# feed the model's own greedy translation of one test sentence back in (teacher forcing) and draw the weights of every head of every layer: rows
# are the target tokens being predicted, columns the source tokens.

# %%
def cross_attention_maps(model: Transformer, source: list[int], target: list[int]):
    """Cross-attention weights (layers, heads, len(target) + 1, len(source)) while the
    decoder reads ``<bos>`` and ``target``: row i is where each head looked when
    predicting target token i (the last row: ``<eos>``)."""
    memory, mask = model.encode(np.array([source]))
    target_in = np.array([[BOS_ID, *target]])
    _, attention = model.decode(target_in, memory, mask, return_attention=True)
    return np.stack([np.asarray(layer["cross"])[0] for layer in attention])


# the longest source of at most 12 ids among the first 50 test sentences
candidates = [i for i in range(50) if len(test_ids[i]) <= 12]
example = max(candidates, key=lambda i: len(test_ids[i]))
source_tokens = [*translation_tokens(test_sources[example]), "<eos>"]
target_tokens = outputs["Transformer"][example]
maps = cross_attention_maps(
    transformer, test_ids[example], tgt_vocab.encode(target_tokens)
)
n_layers, n_heads = maps.shape[:2]
fig, axes = plt.subplots(
    n_layers, n_heads, figsize=(2.3 * n_heads, 2.3 * n_layers), squeeze=False
)
for layer in range(n_layers):
    for head in range(n_heads):
        ax = axes[layer, head]
        ax.imshow(maps[layer, head], cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=90, fontsize=6)
        ax.set_yticks(
            range(len(target_tokens) + 1), [*target_tokens, "<eos>"], fontsize=6
        )
        ax.set_title(f"layer {layer + 1}, head {head + 1}", fontsize=8)
fig.tight_layout()
plt.show()
print("source:", test_sources[example])
print("translation:", " ".join(target_tokens))

# %% [markdown]
# Read the maps row by row. A head that aligns puts each row's weight on the source word being translated, a
# band near the diagonal that bends where Spanish and English order their words differently (or German and
# English, in the full profile); a head whose weight sits on one or two positions whatever the row, often the
# final punctuation or `<eos>`, is not aligning, and passes on little from the source. Which head does which
# differs from run to run.
#
# ## Exercises
#
# 1. **Unscaled scores.** Remove the $1/\sqrt{d_k}$ from `scaled_dot_product_attention` and retrain with
#    `d_model` four times larger. Predict, from the saturation table, what happens to the validation loss in
#    the first hundred steps, then measure it.
# 2. **Post-LN.** Build the Transformer with `norm_first=False` and train it, first with this chapter's
#    warm-up, then with a warm-up three times longer (and `train_steps` doubled). Which one trains, and why
#    (section {ref}`sec-tf-block`)?
# 3. **Learned positions.** Set `positions="learned"` and compare BLEU. Then make sources longer than any in
#    training by joining two test sentences (and their references), with the model's `max_len` raised to
#    fit: which position encoding degrades more gracefully, and why can a learned one not go further?
# 4. **A leaky decoder.** Replace the causal mask by the padding mask alone. Predict the training loss and the
#    greedy BLEU before you run it; explain the gap between them.
# 5. **Heads.** Zero the output of one cross-attention head at a time (a mask over the heads before the
#    output projection) and measure BLEU: are the aligning heads of the maps above the ones that matter?
# 6. **Cost.** Extend the cost experiment to $n = 8192$ and predict, from {eq}`eq-tf-cost`, the time and the
#    memory of the weights; where does the measurement depart from the formula?
#
# ## Summary
#
# * Attention {eq}`eq-tf-attention` divides scores by $\sqrt{d_k}$ so the softmax stays soft: at $d_k = 256$
#   the largest weight averaged {glue:text}`sat_unscaled_256:.2f` unscaled against {glue:text}`sat_scaled_256:.2f`
#   scaled. Masks are booleans, True where a query may attend; masked keys get weight exactly 0.
# * Our multi-head attention equals `keras.layers.MultiHeadAttention` (both of its routes) to
#   {glue:text}`mha_parity:.1e`, our sinusoidal encodings equal KerasHub's to {glue:text}`position_gap:.1e`,
#   and our encoder block equals `keras_hub.layers.TransformerEncoder` to {glue:text}`block_parity:.1e`, post-LN
#   and pre-LN. A causal block's earlier outputs do not move when later inputs change.
# * Self-attention costs $8nd^2 + 4n^2d$ operations and $n^2$ weights per head: {glue:text}`cost_len_ratio`
#   times longer sequences took {glue:text}`cost_ms_ratio:.0f` times as long.
# * On chapter 06's data, in {glue:text}`time_ratio:.2f` times the GRU's training time, the Transformer reached
#   BLEU {glue:text}`bleu_tf:.1f` against the attention GRU's {glue:text}`bleu_gru:.1f`.
# * `lmlib.transformer` holds the pieces, with pre/post-LN, causal flag, activation, $\epsilon$ and biases as
#   arguments, for chapter 08's GPT and chapter 09's BERT.
