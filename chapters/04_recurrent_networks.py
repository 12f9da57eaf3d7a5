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
# # Recurrent networks: RNN, LSTM, GRU
#
# We write the Elman RNN, the LSTM and the GRU from their equations as Keras cells, show that they compute
# exactly what `keras.layers.SimpleRNN`, `LSTM` and `GRU` compute, and measure by experiment why gradients
# vanish or explode through time. Then we train word-level recurrent language models on the Penn Treebank
# with truncated backpropagation through time and compare their perplexity with chapter 02's Kneser–Ney
# baseline and with each other at equal parameter count.

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
# The setup cell seeds Python, NumPy and Keras, makes TensorFlow's kernels deterministic and shows the active
# profile. The quick profile trains a one-layer LSTM for part of an epoch with Adam; the full profile is the
# "small" configuration of Zaremba et al. {cite:p}`zaremba2014` (two layers of 200 LSTM units, windows of 20
# steps, batches of 20, 13 epochs of plain SGD with learning rate 1, halved every epoch after the fourth,
# weights uniform in ±0.1, gradients clipped at global norm 5, no dropout). `windows_per_epoch` caps the
# number of training windows per epoch (`None`: the whole training set); `compare_windows` is the budget of
# each model in the SimpleRNN / LSTM / GRU comparison.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from myst_nb import glue

from lmlib.data import fetch
from lmlib.ngram import KneserNeyLM
from lmlib.plot import use_style
from lmlib.profiles import import_tensorflow, setup_chapter

cfg = setup_chapter(
    "04",
    quick=dict(
        embed_dim=128,
        units=128,
        num_layers=1,
        batch_size=20,
        bptt=20,
        epochs=1,
        windows_per_epoch=600,
        optimizer="adam",
        learning_rate=3e-3,
        lr_decay=1.0,
        decay_after=1,
        init_scale=None,
        compare_windows=200,
    ),
    full=dict(
        embed_dim=200,
        units=200,
        num_layers=2,
        batch_size=20,
        bptt=20,
        epochs=13,
        windows_per_epoch=None,
        optimizer="sgd",
        learning_rate=1.0,
        lr_decay=0.5,
        decay_after=4,
        init_scale=0.1,
        compare_windows=2000,
    ),
    keras=True,
)
use_style()
tf = import_tensorflow()  # already imported, quietly, by setup_chapter(keras=True)
import keras
from keras import layers, ops

CLIP_NORM = 5.0  # global gradient norm (Zaremba et al.), both profiles

# %% [markdown]
# ## The recurrent network
#
# A feed-forward network sees a fixed number of inputs. A **recurrent neural network** (RNN) reads a
# sequence $x_1, \dots, x_T$ ($x_t \in \mathbb{R}^d$) one element at a time and keeps a **hidden state**
# $h_t \in \mathbb{R}^n$ that summarises everything read so far. The simple recurrent network of Elman
# {cite:p}`elman1990` updates it with one affine map and a nonlinearity $f$ (here $\tanh$):
#
# $$
# a_t = W_{xh} x_t + W_{hh} h_{t-1} + b_h, \qquad h_t = f(a_t), \qquad h_0 = 0,
# $$ (eq-rnn-elman)
#
# with $W_{xh} \in \mathbb{R}^{n \times d}$, $W_{hh} \in \mathbb{R}^{n \times n}$ and $b_h \in \mathbb{R}^n$
# shared by all time steps: the same $n(d + n + 1)$ parameters process a sequence of any length. A language
# model reads word embeddings $x_t$ and predicts the next word from $h_t$ with a softmax layer,
# $P(w_{t+1} \mid w_{\le t}) = \mathrm{softmax}(W_{hy} h_t + b_y)_{w_{t+1}}$. Unlike the n-gram models of
# chapter 02, nothing limits the history to $n-1$ words: $h_t$ depends on every earlier input.
#
# Keras stores row vectors and multiplies on the right: for a batch $X_t$ of shape (batch, $d$) a
# `SimpleRNN` computes `tanh(X_t @ kernel + H_{t-1} @ recurrent_kernel + bias)`, so `kernel` is
# $W_{xh}^\top$ (shape $(d, n)$) and `recurrent_kernel` is $W_{hh}^\top$ (shape $(n, n)$).
#
# ## Backpropagation through time
#
# Unrolled over $T$ steps, an RNN is a deep feed-forward network whose layers share weights, and its
# gradient is computed by ordinary backpropagation through the unrolled graph: **backpropagation through
# time** (BPTT) {cite:p}`werbos1990`. With a loss $L = \sum_t L_t$, the gradient with respect to the shared
# recurrent weights sums the contributions of every step $k \le t$ to every loss term $L_t$,
#
# $$
# \frac{\partial L}{\partial W_{hh}} = \sum_{t=1}^{T} \sum_{k=1}^{t}
#   \frac{\partial L_t}{\partial h_t}\, \frac{\partial h_t}{\partial h_k}\, \frac{\partial^{+} h_k}{\partial W_{hh}},
# $$ (eq-rnn-bptt)
#
# where $\partial^{+} h_k / \partial W_{hh}$ is the "immediate" derivative that treats $h_{k-1}$ as a
# constant. Everything about long-range learning is in the Jacobian $\partial h_t / \partial h_k$, a product
# of one factor per step, since $\partial h_j / \partial h_{j-1} = \mathrm{diag}(f'(a_j))\, W_{hh}$:
#
# $$
# \frac{\partial h_t}{\partial h_k} = \prod_{j=k+1}^{t} \frac{\partial h_j}{\partial h_{j-1}}
#   = \mathrm{diag}(f'(a_t))\, W_{hh}\; \mathrm{diag}(f'(a_{t-1}))\, W_{hh} \cdots \mathrm{diag}(f'(a_{k+1}))\, W_{hh} .
# $$ (eq-rnn-jacobian)
#
# The gradient vector that flows back is its transpose applied to $\nabla_{h_t} L_t$: a product of
# $W_{hh}^\top \mathrm{diag}(f'(a_j))$ factors. Taking norms, with $\gamma = \max |f'|$ ($=1$ for $\tanh$)
# and $\sigma_{\max}$ the largest singular value of $W_{hh}$,
#
# $$
# \Bigl\| \frac{\partial h_t}{\partial h_k} \Bigr\| \le \bigl(\gamma\, \sigma_{\max}(W_{hh})\bigr)^{t-k} .
# $$ (eq-rnn-jacobian-bound)
#
# If $\gamma\sigma_{\max} < 1$ the contribution of step $k$ to the gradient shrinks exponentially with the
# distance $t-k$: the **vanishing gradient** problem {cite:p}`bengio1994,pascanu2013`, which makes it hard to
# learn dependencies more than a few steps long. If the largest eigenvalue of $W_{hh}$ exceeds 1 (a necessary
# condition) the product can instead grow exponentially: the **exploding gradient**, which throws the
# weights far away in a single update. Saturated units ($f' \approx 0$) make vanishing worse.
#
# **Truncated BPTT.** Backpropagating through a whole corpus is impossible. We cut the token stream into
# windows of `bptt` steps, carry the hidden state forward from one window to the next (the forward pass sees
# the whole history), but backpropagate only within the window: gradients see at most `bptt` steps.
#
# **Gradient clipping.** Exploding gradients are tamed by rescaling the gradient $g$ (all parameters'
# gradients concatenated) whenever its norm exceeds a threshold $\tau$ {cite:p}`pascanu2013`:
#
# $$
# \hat g = g \cdot \min\Bigl(1, \frac{\tau}{\|g\|}\Bigr), \qquad
# \|g\| = \sqrt{\textstyle\sum_{i} \|g_i\|^2} \ \text{over all parameter tensors } g_i .
# $$ (eq-rnn-clip)
#
# The direction is kept and only the step length is limited. In Keras it is one argument of the optimiser,
# `keras.optimizers.SGD(1.0, global_clipnorm=5.0)`; `clipnorm=5.0` instead clips each tensor's gradient
# separately, which changes the direction. The cell below checks {eq}`eq-rnn-clip` against TensorFlow's
# `tf.clip_by_global_norm`.

# %%
rng = np.random.default_rng(0)
grads = [rng.normal(size=shape).astype(np.float32) for shape in [(4, 3), (3,), (3, 3)]]
global_norm = np.sqrt(sum(float(np.sum(g**2)) for g in grads))
tau = 2.0
clipped_by_hand = [g * min(1.0, tau / global_norm) for g in grads]
clipped_by_tf, _ = tf.clip_by_global_norm(grads, tau)
clip_diff = max(
    float(np.abs(a - b.numpy()).max())
    for a, b in zip(clipped_by_hand, clipped_by_tf, strict=True)
)
print(
    f"global norm {global_norm:.3f} -> {tau}; max |by hand - tf.clip_by_global_norm| = {clip_diff:.1e}"
)
assert clip_diff < 1e-6

# %% [markdown]
# ## Long short-term memory
#
# The LSTM {cite:p}`hochreiter1997` adds a second state, the **cell** $c_t$, updated additively, and gates
# (sigmoids $\sigma$ in $(0,1)$, applied elementwise with $\odot$) that decide what is written to it, kept in it
# and read from it. With the **forget gate** $f_t$ of Gers et al. {cite:p}`gers2000` (the original LSTM had
# none: $f_t = 1$, the "constant error carousel"):
#
# $$
# \begin{aligned}
# i_t &= \sigma(W_i x_t + U_i h_{t-1} + b_i), & f_t &= \sigma(W_f x_t + U_f h_{t-1} + b_f),\\
# \tilde c_t &= \tanh(W_c x_t + U_c h_{t-1} + b_c), & o_t &= \sigma(W_o x_t + U_o h_{t-1} + b_o),\\
# c_t &= f_t \odot c_{t-1} + i_t \odot \tilde c_t, & h_t &= o_t \odot \tanh(c_t),
# \end{aligned}
# $$ (eq-rnn-lstm)
#
# with input gate $i_t$, candidate $\tilde c_t$ and output gate $o_t$; the state carried to the next step is
# the pair $(h_t, c_t)$, and the layer outputs $h_t$. Along the cell path the Jacobian is
# $\partial c_t / \partial c_{t-1} = \mathrm{diag}(f_t)$ plus terms that go through $h_{t-1}$: no weight
# matrix and no $\tanh'$, only the forget gate. When the network keeps $f_t \approx 1$, the gradient passes
# many steps back almost unchanged, and the model learns *when* to forget instead of forgetting at a fixed
# exponential rate. (We use the LSTM without "peephole" connections from $c$ to the gates, as Keras does.)
#
# Keras packs the four gates in one matrix, in the order $(i, f, c, o)$: `kernel` is
# $[W_i; W_f; W_c; W_o]^\top$ of shape $(d, 4n)$, `recurrent_kernel` $[U_i; U_f; U_c; U_o]^\top$ of shape
# $(n, 4n)$ and `bias` has $4n$ entries; `unit_forget_bias=True` (the default) initialises $b_f = 1$, so a new
# LSTM starts by keeping most of its cell. An LSTM layer has $4n(d + n + 1)$ parameters.
#
# ## Gated recurrent unit
#
# The GRU of Cho et al. {cite:p}`cho2014` has a single state and two gates: a **reset gate** $r_t$ that
# decides how much of the old state enters the candidate, and an **update gate** $z_t$ that interpolates
# between the old state and the candidate:
#
# $$
# \begin{aligned}
# r_t &= \sigma(W_r x_t + U_r h_{t-1} + b_r), \qquad z_t = \sigma(W_z x_t + U_z h_{t-1} + b_z),\\
# \tilde h_t &= \tanh\bigl(W_h x_t + U_h (r_t \odot h_{t-1}) + b_h\bigr),\\
# h_t &= z_t \odot h_{t-1} + (1 - z_t) \odot \tilde h_t .
# \end{aligned}
# $$ (eq-rnn-gru)
#
# $z_t$ gates the *old* state, as in Cho et al. and in Keras (some texts swap $z_t$ and $1 - z_t$, which is
# the same model with the gate's weights and bias negated). The interpolation plays the role of the LSTM's
# additive cell: with $z_t \approx 1$ the state, and its gradient, pass through unchanged.
#
# Keras's `GRU` uses the order $(z, r, h)$ and, by default (`reset_after=True`, the variant cuDNN
# implements), applies the reset gate **after** the matrix multiplication, with a second bias vector
# $b'_h$ inside:
#
# $$
# \tilde h_t = \tanh\bigl(W_h x_t + b_h + r_t \odot (U_h h_{t-1} + b'_h)\bigr) .
# $$ (eq-rnn-gru-reset-after)
#
# Its `bias` has shape $(2, 3n)$: row 0 is added to the input projections, row 1 to the recurrent ones (for
# $z$ and $r$ the two simply add up; for the candidate only row 1 is multiplied by $r_t$). This lets all three
# recurrent products $U h_{t-1}$ be computed in one matrix multiplication. `reset_after=False` is
# {eq}`eq-rnn-gru` exactly, with one bias of $3n$ entries. A GRU has $3n(d + n + 1)$ parameters, or
# $3n(d + n + 2)$ with `reset_after=True`.
#
# ## The cells from scratch
#
# A Keras RNN *cell* computes one step: `call(x_t, states)` returns the output and the new states, and the
# attribute `state_size` tells `keras.layers.RNN` what states to create (zeros) and carry through the
# sequence. Our cells store their weights with Keras's names, shapes and layouts, so the weights of a Keras
# layer can be loaded into them unchanged, and use Keras's default initialisers. The exported cells below form
# `lmlib.rnn`.

# %%
# lmlib: rnn
import math

import keras
import numpy as np
from keras import layers, ops


@keras.saving.register_keras_serializable(package="lmlib")
class SimpleRNNCellScratch(layers.Layer):
    """Elman RNN cell: h_t = tanh(x_t W + h_{t-1} U + b), Keras's ``SimpleRNN`` weight layout.

    ``kernel`` (input_dim, units) = W_xh^T, ``recurrent_kernel`` (units, units) = W_hh^T, ``bias`` (units,).
    Use it through ``keras.layers.RNN(SimpleRNNCellScratch(units))``.
    """

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer="glorot_uniform",
            name="kernel",
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units),
            initializer="orthogonal",
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="bias"
        )

    def call(self, inputs, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        h = ops.tanh(
            ops.matmul(inputs, self.kernel)
            + ops.matmul(h_prev, self.recurrent_kernel)
            + self.bias
        )
        return h, [h]

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}

# %% [markdown]
# The LSTM cell follows {eq}`eq-rnn-lstm` with its two states $(h, c)$; `state_size` is a list of two sizes.

# %%
# lmlib: rnn
@keras.saving.register_keras_serializable(package="lmlib")
class LSTMCellScratch(layers.Layer):
    """LSTM cell with a forget gate (Gers et al. 2000), Keras's ``LSTM`` weight layout and gate order (i, f, c, o).

    States are ``[h, c]``. ``kernel`` (input_dim, 4 units), ``recurrent_kernel`` (units, 4 units), ``bias``
    (4 units,); with ``unit_forget_bias`` the forget-gate bias starts at 1, as in Keras.
    """

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.unit_forget_bias = units, unit_forget_bias
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        n = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 4 * n), initializer="glorot_uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(n, 4 * n), initializer="orthogonal", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(4 * n,), initializer="zeros", name="bias")
        if self.unit_forget_bias:
            self.bias.assign(
                np.concatenate([np.zeros(n), np.ones(n), np.zeros(2 * n)]).astype(
                    self.bias.dtype
                )
            )

    def call(self, inputs, states, training=False):
        h_prev, c_prev = states
        gates = (
            ops.matmul(inputs, self.kernel)
            + ops.matmul(h_prev, self.recurrent_kernel)
            + self.bias
        )
        i, f, c_candidate, o = ops.split(gates, 4, axis=-1)  # each (batch, units)
        c = ops.sigmoid(f) * c_prev + ops.sigmoid(i) * ops.tanh(c_candidate)
        h = ops.sigmoid(o) * ops.tanh(c)
        return h, [h, c]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "unit_forget_bias": self.unit_forget_bias,
        }

# %% [markdown]
# The GRU cell implements both {eq}`eq-rnn-gru` (`reset_after=False`) and {eq}`eq-rnn-gru-reset-after`.

# %%
# lmlib: rnn
@keras.saving.register_keras_serializable(package="lmlib")
class GRUCellScratch(layers.Layer):
    """GRU cell (Cho et al. 2014), Keras's ``GRU`` weight layout and gate order (z, r, h).

    h_t = z * h_{t-1} + (1 - z) * h~. With ``reset_after=False``, h~ = tanh(x W_h + (r * h_{t-1}) U_h + b_h)
    and ``bias`` has shape (3 units,); with ``reset_after=True`` (Keras's default), h~ = tanh(x W_h + b_h +
    r * (h_{t-1} U_h + b'_h)) and ``bias`` has shape (2, 3 units): row 0 input biases, row 1 recurrent biases.
    """

    def __init__(self, units: int, reset_after: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.units, self.reset_after = units, reset_after
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        n = self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], 3 * n), initializer="glorot_uniform", name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(n, 3 * n), initializer="orthogonal", name="recurrent_kernel"
        )
        bias_shape = (2, 3 * n) if self.reset_after else (3 * n,)
        self.bias = self.add_weight(shape=bias_shape, initializer="zeros", name="bias")

    def call(self, inputs, states, training=False):
        h_prev = states[0] if isinstance(states, (list, tuple)) else states
        n = self.units
        input_bias, recurrent_bias = (
            (self.bias[0], self.bias[1]) if self.reset_after else (self.bias, 0.0)
        )
        x_z, x_r, x_h = ops.split(
            ops.matmul(inputs, self.kernel) + input_bias, 3, axis=-1
        )
        u_h = self.recurrent_kernel[
            :, 2 * n :
        ]  # candidate block; the z and r blocks are used together below
        hu_z, hu_r = ops.split(
            ops.matmul(h_prev, self.recurrent_kernel[:, : 2 * n]), 2, axis=-1
        )
        if self.reset_after:
            hu_z, hu_r = hu_z + recurrent_bias[:n], hu_r + recurrent_bias[n : 2 * n]
        z = ops.sigmoid(x_z + hu_z)
        r = ops.sigmoid(x_r + hu_r)
        if self.reset_after:  # reset gate applied after the matrix multiplication
            candidate = ops.tanh(
                x_h + r * (ops.matmul(h_prev, u_h) + recurrent_bias[2 * n :])
            )
        else:  # Cho et al.: reset gate applied to the state before it
            candidate = ops.tanh(x_h + ops.matmul(r * h_prev, u_h))
        h = z * h_prev + (1.0 - z) * candidate
        return h, [h]

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "reset_after": self.reset_after,
        }

# %% [markdown]
# Now the check. For each cell we build a Keras layer and our cell wrapped in `keras.layers.RNN`, copy the
# Keras layer's (randomly initialised, then perturbed so that no bias is zero) weights into ours with
# `set_weights`, run both on the same random batch, and compare the whole output sequence and the final
# states.

# %%
batch, steps, input_dim, units = 4, 7, 5, 6
parity_inputs = (
    np.random.default_rng(1).normal(size=(batch, steps, input_dim)).astype(np.float32)
)
pairs = {
    "SimpleRNN": (layers.SimpleRNN, SimpleRNNCellScratch, {}),
    "LSTM": (layers.LSTM, LSTMCellScratch, {}),
    "GRU (reset_after=True)": (layers.GRU, GRUCellScratch, {"reset_after": True}),
    "GRU (reset_after=False)": (layers.GRU, GRUCellScratch, {"reset_after": False}),
}
parity_rows = []
for name, (keras_layer_class, cell_class, options) in pairs.items():
    reference = keras_layer_class(
        units, return_sequences=True, return_state=True, **options
    )
    ours = layers.RNN(
        cell_class(units, **options), return_sequences=True, return_state=True
    )
    reference(parity_inputs), ours(parity_inputs)  # build both
    weights = [
        w + 0.1 * np.random.default_rng(2).normal(size=w.shape)
        for w in reference.get_weights()
    ]
    reference.set_weights(weights)
    ours.set_weights(weights)
    ref_out, our_out = (
        reference(parity_inputs),
        ours(parity_inputs),
    )  # [sequence, *final states]
    diffs = [
        float(np.abs(ops.convert_to_numpy(a) - ops.convert_to_numpy(b)).max())
        for a, b in zip(ref_out, our_out, strict=True)
    ]
    parity_rows.append(
        dict(
            cell=name,
            weights=" ".join(str(w.shape) for w in weights),
            max_diff_sequence=diffs[0],
            max_diff_final_states=max(diffs[1:]),
        )
    )
parity = pd.DataFrame(parity_rows).set_index("cell")
max_parity_diff = float(
    parity[["max_diff_sequence", "max_diff_final_states"]].to_numpy().max()
)
assert max_parity_diff <= 1e-5, parity
glue("max_parity_diff", max_parity_diff, display=False)
parity.style.format({"max_diff_sequence": "{:.1e}", "max_diff_final_states": "{:.1e}"})

# %% [markdown]
# All four agree to {glue:text}`max_parity_diff:.1e` (float32 rounding): the equations above, with Keras's
# gate orders and bias layouts, are what Keras computes. The unit tests (`tests/test_rnn.py`) repeat the check,
# show that it fails when one weight is perturbed, and check that gradients flow through our cells.
#
# ## Vanishing and exploding gradients, measured
#
# How much does the input $k$ steps back influence the final state? We feed one seeded random batch of
# sequences through freshly initialised layers and take, with `tf.GradientTape`, the gradient of a fixed
# random projection of the final state, $L = v^\top h_T$, with respect to every input $x_{T-k}$. Its norm
# (mean over the batch) is the size of the signal that BPTT sends $k$ steps back, the product
# {eq}`eq-rnn-jacobian`. Besides the default layers we show a SimpleRNN whose orthogonal recurrent matrix is
# scaled by 2 (all singular values 2) and an LSTM and a GRU whose forget/update gate biases start at 3
# ($\sigma(3) \approx 0.95$: "keep the state" by default).

# %%
grad_steps, grad_batch, grad_dim, grad_units = 100, 16, 32, 64
grad_inputs = tf.constant(
    np.random.default_rng(3).normal(size=(grad_batch, grad_steps, grad_dim)), tf.float32
)
projection_v = tf.constant(
    np.random.default_rng(4).normal(size=(grad_units,)), tf.float32
)


def gate_bias(units: int, index: int, gates: int, value: float):
    """A bias initialiser: ``value`` for gate ``index`` of ``gates`` packed gates, 0 elsewhere."""
    return keras.initializers.Constant(np.eye(1, gates, index).repeat(units) * value)


def input_gradient_norms(layer) -> np.ndarray:
    """||dL/dx_{T-k}|| for k = 0..T-1 (mean over the batch), L = v . h_T."""
    with tf.GradientTape() as tape:
        tape.watch(grad_inputs)
        loss = tf.reduce_sum(layer(grad_inputs) * projection_v)
    gradient = tape.gradient(loss, grad_inputs)  # (batch, steps, dim)
    return (
        tf.reduce_mean(tf.norm(gradient, axis=-1), axis=0).numpy()[::-1].astype(float)
    )


grad_layers = {
    "SimpleRNN": layers.SimpleRNN(grad_units),
    "SimpleRNN, W_hh x 2": layers.SimpleRNN(
        grad_units, recurrent_initializer=keras.initializers.Orthogonal(2.0)
    ),
    "LSTM": layers.LSTM(grad_units),
    "LSTM, b_f = 3": layers.LSTM(
        grad_units,
        unit_forget_bias=False,
        bias_initializer=gate_bias(grad_units, 1, 4, 3.0),
    ),
    "GRU": layers.GRU(grad_units, reset_after=False),
    "GRU, b_z = 3": layers.GRU(
        grad_units, reset_after=False, bias_initializer=gate_bias(grad_units, 0, 3, 3.0)
    ),
}
grad_norms = pd.DataFrame(
    {name: input_gradient_norms(layer) for name, layer in grad_layers.items()}
)
grad_norms.index.name = "k (steps back)"
grad_norms.iloc[[0, 10, 20, 50, 99]].style.format("{:.1e}")

# %% [markdown]
# The figure plots the whole curves on a logarithmic scale (a gradient that underflows to 0 in float32 is not
# drawn).

# %%
fig, ax = plt.subplots()
for name in grad_norms:
    ax.plot(
        grad_norms.index,
        grad_norms[name].where(grad_norms[name] > 0),
        label=name,
        linestyle="--" if "=" in name or "x 2" in name else "-",
    )
ax.set_yscale("log")
ax.set_xlabel("k: steps back from the final state")
ax.set_ylabel(r"$\|\partial L / \partial x_{T-k}\|$ (mean over batch)")
ax.legend(ncol=2, fontsize="small")
glue("fig_rnn_gradient_norms", fig, display=False)
plt.close(fig)
g = grad_norms.loc[50]
for key, name in [
    ("rnn", "SimpleRNN"),
    ("rnn2", "SimpleRNN, W_hh x 2"),
    ("lstm", "LSTM"),
    ("lstm3", "LSTM, b_f = 3"),
    ("gru", "GRU"),
    ("gru3", "GRU, b_z = 3"),
]:
    glue(f"grad50_{key}", float(g[name]), display=False)
    glue(f"grad0_{key}", float(grad_norms.loc[0, name]), display=False)
assert (
    g["SimpleRNN, W_hh x 2"] > 10 * grad_norms.loc[0, "SimpleRNN, W_hh x 2"]
)  # explodes
assert g["SimpleRNN"] < 1e-6 * grad_norms.loc[0, "SimpleRNN"]  # vanishes
assert g["LSTM, b_f = 3"] > 1e3 * g["LSTM"] and g["GRU, b_z = 3"] > 1e3 * g["GRU"]
assert g["LSTM"] > g["SimpleRNN"]

# %% [markdown]
# ```{glue:figure} fig_rnn_gradient_norms
# :name: fig-rnn-gradient-norms
# :figwidth: 90%
#
# Norm of the gradient of $L = v^\top h_T$ with respect to the input $k$ steps before the end, at
# initialisation, for sequences of 100 random inputs (log scale). Plain SimpleRNN, LSTM and GRU gradients decay
# exponentially; scaling the SimpleRNN's recurrent matrix by 2 makes them explode; gate biases that keep the
# state make the LSTM and GRU gradients decay far more slowly.
# ```
#
# Fifty steps back, the default SimpleRNN's gradient has fallen from {glue:text}`grad0_rnn:.2g` to
# {glue:text}`grad50_rnn:.1e`; with $W_{hh}$ scaled by 2 it has *grown* to {glue:text}`grad50_rnn2:.3g`,
# exactly the two failure modes of {eq}`eq-rnn-jacobian-bound`. Gates alone do not save the LSTM and the GRU at
# initialisation: with gates near $\sigma(0) = 0.5$ (or $\sigma(1) \approx 0.73$ for Keras's LSTM forget bias)
# the state is still multiplied by a number below 1 at every step, and their gradients also decay
# ({glue:text}`grad50_lstm:.1e` and {glue:text}`grad50_gru:.1e`). What gates buy is control: the decay rate is
# the forget (update) gate's value, a quantity the network *learns* per unit and per step, not a property of
# a fixed matrix. Set those gates near 1 and the signal survives fifty steps at {glue:text}`grad50_lstm3:.2g`
# (LSTM) and {glue:text}`grad50_gru3:.2g` (GRU), without the risk of explosion that a larger $W_{hh}$ brings.
#
# ## A word-level language model on the Penn Treebank
#
# We train on the same PTB text as chapter 02, with the same token convention: each sentence ends with a
# predicted `</s>`, and there is no `<s>`. Concatenating the sentences gives one long token stream in which
# `</s>` also marks the start of the next sentence; we prepend one `</s>` so that the first word is predicted
# too. Every split then has exactly as many predicted tokens as chapter 02 counts (words plus sentences), and
# the perplexities are comparable.

# %%
def read_ptb(split: str) -> list[list[str]]:
    """The sentences of one PTB split, as lists of words (as in chapter 02)."""
    text = fetch("ptb", f"ptb.{split}.txt").read_text(encoding="utf-8")
    return [line.split() for line in text.splitlines() if line.strip()]


train_sents, valid_sents, test_sents = (
    read_ptb(split) for split in ("train", "valid", "test")
)
vocab = ["</s>", *sorted({w for s in train_sents for w in s})]
word_id = {w: i for i, w in enumerate(vocab)}

# %% [markdown]
# The next exported cell turns sentences into that stream of ids and cuts it for truncated BPTT. Reshaping the
# stream into `batch_size` rows gives `batch_size` parallel, contiguous sub-streams; window $j$ of the batch
# takes columns $j\cdot$`bptt` to $(j+1)\cdot$`bptt` of every row, so row $b$ of window $j+1$ continues row
# $b$ of window $j$ and the state can be carried across. For evaluation the stream is padded (weight 0) so that
# *every* token is scored once; for training the remainder is dropped, as is usual.

# %%
# lmlib: rnn
def token_stream(
    sentences: list[list[str]], word_id: dict[str, int], eos: str = "</s>"
) -> np.ndarray:
    """One int32 stream of ids: ``eos``, then each sentence's words followed by ``eos``.

    The leading ``eos`` is context only, so the stream predicts exactly sum(len(s) + 1) tokens, the count used
    for n-gram perplexities (``</s>`` predicted, no ``<s>``).
    """
    ids = [word_id[eos]]
    for sentence in sentences:
        ids.extend(word_id[w] for w in sentence)
        ids.append(word_id[eos])
    return np.array(ids, np.int32)


def contiguous_batches(
    stream: np.ndarray, batch_size: int, bptt: int, pad: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a token stream into windows for truncated BPTT: ``(inputs, targets, weights)``, each
    (num_windows, batch_size, bptt).

    The (input, target) pairs ``(stream[i], stream[i + 1])`` are laid out in ``batch_size`` contiguous rows;
    row b of window j + 1 continues row b of window j. ``pad=False`` drops the pairs that do not fill a whole
    window (training); ``pad=True`` keeps every pair and pads with weight 0 (evaluation).
    """
    inputs, targets = stream[:-1], stream[1:]
    if pad:
        row_len = math.ceil(len(targets) / batch_size)
        num_windows = math.ceil(row_len / bptt)
    else:
        row_len = len(targets) // batch_size
        num_windows = row_len // bptt
    out = []
    for values in (inputs, targets, np.ones(len(targets), np.float32)):
        rows = np.zeros((batch_size, max(row_len, num_windows * bptt)), values.dtype)
        flat = np.zeros(batch_size * row_len, values.dtype)
        kept = values[: batch_size * row_len]
        flat[: len(kept)] = kept
        rows[:, :row_len] = flat.reshape(
            batch_size, row_len
        )  # row b: pairs b*row_len ... (b+1)*row_len - 1
        rows = rows[:, : num_windows * bptt]
        out.append(rows.reshape(batch_size, num_windows, bptt).transpose(1, 0, 2))
    return out[0], out[1], out[2]

# %% [markdown]
# A small example: the stream 0, 1, ..., 12 in 2 rows and windows of 4 steps. Row 0 holds pairs 0–5, row 1
# pairs 6–11; the last, padded window has weight 0 where nothing is left.

# %%
toy_x, toy_y, toy_w = contiguous_batches(np.arange(13), batch_size=2, bptt=4, pad=True)
for j in range(len(toy_x)):
    print(
        f"window {j}: inputs {toy_x[j].tolist()}  targets {toy_y[j].tolist()}  weights {toy_w[j].tolist()}"
    )
assert toy_w.sum() == 12 and sorted(toy_y[toy_w > 0].tolist()) == list(range(1, 13))

train_stream, valid_stream, test_stream = (
    token_stream(s, word_id) for s in (train_sents, valid_sents, test_sents)
)
n_predicted = {
    name: len(stream) - 1
    for name, stream in [
        ("train", train_stream),
        ("valid", valid_stream),
        ("test", test_stream),
    ]
}
for name, sents in [
    ("train", train_sents),
    ("valid", valid_sents),
    ("test", test_sents),
]:
    assert n_predicted[name] == sum(len(s) + 1 for s in sents)  # chapter 02's count
train_x, train_y, _ = contiguous_batches(train_stream, cfg.batch_size, cfg.bptt)
glue("n_vocab", len(vocab), display=False)
glue("n_test_tokens", n_predicted["test"], display=False)
glue("n_train_windows", len(train_x), display=False)
print(
    f"vocabulary {len(vocab):,}; predicted tokens {n_predicted}; "
    f"{len(train_x)} training windows of {cfg.batch_size} x {cfg.bptt} per epoch"
)

# %% [markdown]
# The model is an embedding, one or more *stateful* recurrent layers (Keras keeps each layer's final state
# in a variable and starts the next batch from it, which is exactly how the state crosses windows), an
# optional linear projection and a dense layer that outputs the logits of the next word. Stateful layers need
# a fixed batch size. The loss follows Zaremba et al.: the cross-entropy **summed** over the window and
# averaged over the batch (so a learning rate of 1 and a clipping threshold of 5 mean what they mean in the
# paper); we report it per token. `init_scale` gives every weight the paper's uniform initialisation (and the
# LSTM forget bias its 0).

# %%
# lmlib: rnn
RNN_LAYERS = {"rnn": layers.SimpleRNN, "lstm": layers.LSTM, "gru": layers.GRU}


def build_rnn_lm(
    vocab_size: int,
    embed_dim: int,
    units: int,
    *,
    cell: str = "lstm",
    num_layers: int = 1,
    batch_size: int | None = None,
    projection: int | None = None,
    init_scale: float | None = None,
) -> keras.Model:
    """Word-level recurrent LM: Embedding -> ``num_layers`` stateful ``cell`` layers -> [Dense(projection)] ->
    Dense(vocab_size) logits, for inputs (batch_size, steps) of word ids.

    ``cell`` is ``"rnn"``, ``"lstm"`` or ``"gru"``. The layers are stateful (the state carries over from one
    batch to the next; reset it with :func:`reset_rnn_states`). ``init_scale`` initialises every weight and
    bias uniformly in +-init_scale (Zaremba et al. 2014; the LSTM forget bias is then not set to 1);
    ``None`` keeps Keras's defaults.
    """

    def init():
        return (
            keras.initializers.RandomUniform(-init_scale, init_scale)
            if init_scale
            else None
        )

    def weights(kind: str) -> dict:
        return (
            {}
            if init_scale is None
            else {f"{kind}_initializer": init(), "bias_initializer": init()}
        )

    inputs = keras.Input(batch_shape=(batch_size, None), dtype="int32")
    x = layers.Embedding(
        vocab_size,
        embed_dim,
        name="embedding",
        **({} if init_scale is None else {"embeddings_initializer": init()}),
    )(inputs)
    for i in range(num_layers):
        options = weights("kernel") | (
            {} if init_scale is None else {"recurrent_initializer": init()}
        )
        if cell == "lstm" and init_scale is not None:
            options["unit_forget_bias"] = False
        x = RNN_LAYERS[cell](
            units,
            return_sequences=True,
            stateful=True,
            name=f"{cell}_{i + 1}",
            **options,
        )(x)
    if projection:
        x = layers.Dense(projection, name="projection", **weights("kernel"))(x)
    logits = layers.Dense(vocab_size, name="logits", **weights("kernel"))(
        x
    )  # (batch, steps, vocab)
    return keras.Model(inputs, logits, name=f"{cell}_lm")


def summed_nll(targets, logits):
    """Cross-entropy summed over the time steps of a window (one value per sequence; Keras averages over the
    batch), the loss of Zaremba et al. 2014."""
    return ops.sum(
        keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True),
        axis=-1,
    )


def reset_rnn_states(model: keras.Model) -> None:
    """Reset the state of every stateful recurrent layer of ``model`` to zeros."""
    for layer in model.layers:
        if isinstance(layer, layers.RNN) and layer.stateful:
            layer.reset_state()


class ResetStatesEachEpoch(keras.callbacks.Callback):
    """Reset the model's recurrent states at the start of every epoch (the stream starts over)."""

    def on_epoch_begin(self, epoch, logs=None):
        reset_rnn_states(self.model)


def stream_perplexity(
    model: keras.Model, inputs: np.ndarray, targets: np.ndarray, weights: np.ndarray
) -> float:
    """exp(mean NLL per token) of a stateful LM over windows from ``contiguous_batches(..., pad=True)``.

    The windows are read in order with the state carried across them (reset before and after); padding
    (weight 0) is not counted.
    """
    import tensorflow as tf

    @tf.function
    def window_nll(x, y, w):
        logits = model(x, training=False)
        return ops.sum(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            * w
        )

    reset_rnn_states(model)
    total = sum(
        float(window_nll(x, y, w))
        for x, y, w in zip(inputs, targets, weights, strict=True)
    )
    reset_rnn_states(model)
    return math.exp(total / float(weights.sum()))

# %% [markdown]
# Training uses `model.fit` on a `tf.data` pipeline that yields the windows **in order** (`shuffle=False`:
# shuffling would break the carried state), a callback that resets the states when an epoch starts, the
# learning-rate schedule of the profile, and a callback that records the loss of every window. Validation and
# test perplexities are computed afterwards over the whole split by `stream_perplexity`, with the same model
# (same batch size) and its states reset before and after.

# %%
class WindowLosses(keras.callbacks.Callback):
    """Record each window's loss per token (Keras logs a running mean over the epoch; we undo it)."""

    def __init__(self, bptt: int):
        super().__init__()
        self.bptt, self.losses, self._previous_mean = bptt, [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._previous_mean = 0.0

    def on_train_batch_end(self, batch, logs=None):
        mean = float(logs["loss"])
        self.losses.append(
            (mean * (batch + 1) - self._previous_mean * batch) / self.bptt
        )
        self._previous_mean = mean


def train_lm(
    model: keras.Model,
    optimizer: str,
    learning_rate: float,
    epochs: int,
    windows_per_epoch: int | None,
    lr_decay: float = 1.0,
    decay_after: int = 1,
):
    """Fit ``model`` on the training windows in order (learning rate decayed by ``lr_decay`` per epoch after
    epoch ``decay_after``); return (per-window losses, seconds, CPU seconds, tokens seen)."""
    windows = (
        len(train_x)
        if windows_per_epoch is None
        else min(windows_per_epoch, len(train_x))
    )
    dataset = tf.data.Dataset.from_tensor_slices(
        (train_x[:windows], train_y[:windows])
    )  # one window per step
    optimizer_class = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[
        optimizer
    ]
    model.compile(
        optimizer=optimizer_class(learning_rate, global_clipnorm=CLIP_NORM),
        loss=summed_nll,
    )
    schedule = keras.callbacks.LearningRateScheduler(
        lambda epoch: learning_rate * lr_decay ** max(0, epoch + 1 - decay_after)
    )
    losses = WindowLosses(cfg.bptt)
    start, start_cpu = time.perf_counter(), time.process_time()
    model.fit(
        dataset,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        callbacks=[ResetStatesEachEpoch(), schedule, losses],
    )
    return (
        np.array(losses.losses),
        time.perf_counter() - start,
        time.process_time() - start_cpu,
        epochs * windows * cfg.batch_size * cfg.bptt,
    )


eval_batches = {
    split: contiguous_batches(stream, cfg.batch_size, cfg.bptt, pad=True)
    for split, stream in [("valid", valid_stream), ("test", test_stream)]
}

# %% [markdown]
# Now the main model of the profile. The optimiser is plain SGD in the full profile (Zaremba et al.) and Adam
# in the quick one, which learns much faster in the first few hundred updates; both clip the global gradient
# norm at 5 with the single argument `global_clipnorm` of {eq}`eq-rnn-clip`.

# %%
lm_options = dict(
    embed_dim=cfg.embed_dim,
    units=cfg.units,
    num_layers=cfg.num_layers,
    init_scale=cfg.init_scale,
)
lm = build_rnn_lm(len(vocab), cell="lstm", batch_size=cfg.batch_size, **lm_options)
lm_losses, lm_seconds, lm_cpu_seconds, lm_tokens = train_lm(
    lm,
    cfg.optimizer,
    cfg.learning_rate,
    cfg.epochs,
    cfg.windows_per_epoch,
    cfg.lr_decay,
    cfg.decay_after,
)
lm_ppl = {
    split: stream_perplexity(lm, *eval_batches[split]) for split in ("valid", "test")
}
lm_tokens_per_s = lm_tokens / lm_seconds
print(
    f"{lm.count_params():,} parameters; {lm_tokens:,} training tokens in {lm_seconds:.0f} s "
    f"({lm_cpu_seconds:.0f} s CPU time; {lm_tokens_per_s:,.0f} tokens/s); loss {lm_losses[:10].mean():.2f} -> {lm_losses[-10:].mean():.2f} "
    f"nats/token; perplexity valid {lm_ppl['valid']:.1f}, test {lm_ppl['test']:.1f}"
)

# %% [markdown]
# The learning curve of this model, the loss of every training window (a moving average over 10 windows):

# %%
def moving_average(values: np.ndarray, width: int = 10) -> np.ndarray:
    """Mean of each run of ``width`` consecutive values (length len(values) - width + 1)."""
    return np.convolve(values, np.ones(width) / width, mode="valid")


fig, ax = plt.subplots()
ax.plot(
    np.arange(10, len(lm_losses) + 1),
    np.exp(moving_average(lm_losses)),
    label="training windows",
)
ax.axhline(
    lm_ppl["valid"], color="C1", linestyle="--", label="validation, after training"
)
ax.set_yscale("log")
ax.set_xlabel("training window (update)")
ax.set_ylabel("perplexity (log scale)")
ax.legend()
glue("fig_rnn_lm_curve", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_rnn_lm_curve
# :name: fig-rnn-lm-curve
# :figwidth: 80%
#
# Training perplexity per window (exp of the per-token loss, moving average over 10 windows) of the LSTM
# language model of the active profile, and its validation perplexity after training.
# ```
#
# ## SimpleRNN, LSTM and GRU at equal parameter count
#
# Which cell is better? A fair comparison gives the three the same number of parameters and the same budget.
# All three models share the embedding ($d$ = {glue:text}`cmp_embed`), a linear projection from the state back
# to $d$ dimensions and the softmax layer from those $d$ dimensions, so the only parameters that differ are
# the recurrent layer's and the projection's; we choose each cell's number of units so that these match the
# LSTM's. (Without the projection the softmax layer would grow with the number of units and dominate the
# count.) Each model trains on the same first {glue:text}`compare_windows:,` windows with Adam (learning
# rate $3 \cdot 10^{-3}$, gradient norm clipped at 5).

# %%
def compared_params(cell: str, input_dim: int, units: int, projection: int) -> int:
    """Parameters of the recurrent layer (GRU with reset_after: two biases) plus the linear projection."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    recurrent = gates * units * (input_dim + units + 1) + (
        3 * units if cell == "gru" else 0
    )
    return recurrent + units * projection + projection


target_params = compared_params("lstm", cfg.embed_dim, cfg.units, cfg.embed_dim)
compare_units = {
    cell: min(
        range(1, 4 * cfg.units),
        key=lambda n, c=cell: abs(
            compared_params(c, cfg.embed_dim, n, cfg.embed_dim) - target_params
        ),
    )
    for cell in ("rnn", "lstm", "gru")
}
compare_models = {
    cell: build_rnn_lm(
        len(vocab),
        cfg.embed_dim,
        units,
        cell=cell,
        batch_size=cfg.batch_size,
        projection=cfg.embed_dim,
    )
    for cell, units in compare_units.items()
}
param_rows = {}
for cell, model in compare_models.items():
    differing = sum(
        int(np.prod(w.shape))
        for layer in model.layers
        if layer.name.startswith((cell, "projection"))
        for w in layer.weights
    )
    assert differing == compared_params(
        cell, cfg.embed_dim, compare_units[cell], cfg.embed_dim
    )
    param_rows[cell] = dict(
        units=compare_units[cell],
        recurrent_and_projection=differing,
        total=model.count_params(),
    )
param_table = pd.DataFrame(param_rows).T
param_spread = float(param_table.total.max() / param_table.total.min() - 1)
assert param_spread < 0.02
param_table

# %% [markdown]
# Now train each for the same number of windows and measure validation perplexity over the whole
# validation split.

# %%
COMPARE_LR = 3e-3
compare_rows, compare_losses = {}, {}
for cell, model in compare_models.items():
    losses, seconds, _, tokens = train_lm(
        model, "adam", COMPARE_LR, 1, cfg.compare_windows
    )
    compare_losses[cell] = losses
    compare_rows[cell] = dict(
        units=compare_units[cell],
        parameters=model.count_params(),
        valid_ppl=stream_perplexity(model, *eval_batches["valid"]),
        seconds=seconds,
        tokens_per_s=tokens / seconds,
    )
compare_table = pd.DataFrame(compare_rows).T.rename(
    index={"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
)
compare_table.style.format(
    {
        "units": "{:.0f}",
        "parameters": "{:,.0f}",
        "valid_ppl": "{:.1f}",
        "seconds": "{:.1f}",
        "tokens_per_s": "{:,.0f}",
    }
)

# %%
fig, ax = plt.subplots()
for cell, name in [("rnn", "SimpleRNN"), ("lstm", "LSTM"), ("gru", "GRU")]:
    smooth = np.exp(moving_average(compare_losses[cell]))
    ax.plot(
        np.arange(10, len(compare_losses[cell]) + 1),
        smooth,
        label=f"{name} ({compare_units[cell]} units): valid {compare_rows[cell]['valid_ppl']:.0f}",
    )
ax.set_yscale("log")
ax.set_xlabel("training window (update)")
ax.set_ylabel("training perplexity (log scale)")
ax.legend()
glue("fig_rnn_compare", fig, display=False)
plt.close(fig)
for cell in ("rnn", "lstm", "gru"):
    glue(f"cmp_units_{cell}", int(compare_units[cell]), display=False)
    glue(f"cmp_params_{cell}", int(compare_rows[cell]["parameters"]), display=False)
    glue(f"cmp_valid_{cell}", float(compare_rows[cell]["valid_ppl"]), display=False)
glue("cmp_embed", int(cfg.embed_dim), display=False)
glue("compare_windows", int(cfg.compare_windows), display=False)
glue(
    "compare_tokens",
    int(cfg.compare_windows * cfg.batch_size * cfg.bptt),
    display=False,
)
glue("param_spread", 100 * param_spread, display=False)
glue(
    "tab_rnn_compare",
    compare_table.style.format(
        {
            "units": "{:.0f}",
            "parameters": "{:,.0f}",
            "valid_ppl": "{:.1f}",
            "seconds": "{:.1f}",
            "tokens_per_s": "{:,.0f}",
        }
    ),
    display=False,
)
best_cell = min(compare_rows, key=lambda c: compare_rows[c]["valid_ppl"])
worst_cell = max(compare_rows, key=lambda c: compare_rows[c]["valid_ppl"])
cell_names = {"rnn": "the SimpleRNN", "lstm": "the LSTM", "gru": "the GRU"}
glue("cmp_best", cell_names[best_cell], display=False)
glue("cmp_worst", cell_names[worst_cell], display=False)

# %% [markdown]
# ```{glue:figure} fig_rnn_compare
# :name: fig-rnn-compare
# :figwidth: 80%
#
# Training perplexity per window (moving average over 10 windows) of SimpleRNN, LSTM and GRU language
# models with the same number of parameters, trained on the same windows; the legend gives each model's
# validation perplexity after training.
# ```
#
# ```{glue:figure} tab_rnn_compare
# :name: tab-rnn-compare
#
# Equal-parameter comparison: units, total parameters, validation perplexity after
# {glue:text}`compare_windows:,` training windows, training time and speed.
# ```
#
# With {glue:text}`cmp_units_rnn` SimpleRNN units, {glue:text}`cmp_units_lstm` LSTM units and
# {glue:text}`cmp_units_gru` GRU units the totals agree to within {glue:text}`param_spread:.3f`%. After
# {glue:text}`compare_tokens:,` training tokens each, the validation perplexities are
# {glue:text}`cmp_valid_rnn:.1f` (SimpleRNN), {glue:text}`cmp_valid_lstm:.1f` (LSTM) and
# {glue:text}`cmp_valid_gru:.1f` (GRU): {glue:text}`cmp_best` is best and {glue:text}`cmp_worst` worst on this
# budget. A budget this short measures how fast each cell learns, mostly the short-range statistics; the
# gated cells' advantage on long dependencies (the previous section) shows more with longer training, and is
# the reason LSTMs and GRUs replaced the plain RNN in practice.
#
# ## Comparison with the n-gram baseline
#
# Chapter 02's baseline is the modified Kneser–Ney 5-gram from `lmlib.ngram`, fitted on the same training
# sentences and scored with the same tokens; we recompute it here.

# %%
start = time.perf_counter()
kn5 = KneserNeyLM(5, modified=True).fit(train_sents)
kn5_ppl = {"valid": kn5.perplexity(valid_sents), "test": kn5.perplexity(test_sents)}
unigram_ppl_test = (
    KneserNeyLM(1).fit(train_sents).perplexity(test_sents)
)  # n = 1: the MLE unigram (chapter 02)
print(
    f"modified Kneser-Ney 5-gram: valid {kn5_ppl['valid']:.1f}, test {kn5_ppl['test']:.1f} "
    f"({time.perf_counter() - start:.1f} s)"
)

# %%
PAPER_SMALL_TEST = (
    114.5  # Zaremba et al. (2014), "small" non-regularised LSTM, PTB test perplexity
)
results = pd.DataFrame(
    {
        "modified Kneser-Ney 5-gram (chapter 02)": kn5_ppl,
        f"LSTM, this run ({cfg.num_layers} x {cfg.units}, {cfg.epochs} epoch(s), profile {cfg.name})": lm_ppl,
        "Zaremba et al. small LSTM (paper's figure)": {
            "valid": np.nan,
            "test": PAPER_SMALL_TEST,
        },
    }
).T
for split in ("valid", "test"):
    glue(f"lm_ppl_{split}", float(lm_ppl[split]), display=False)
    glue(f"kn5_ppl_{split}", float(kn5_ppl[split]), display=False)
glue("paper_small_test", PAPER_SMALL_TEST, display=False)
glue("lm_tokens_per_s", float(lm_tokens_per_s), display=False)
glue("lm_seconds", float(lm_seconds), display=False)
glue("lm_cpu_seconds", float(lm_cpu_seconds), display=False)
glue("lm_tokens", int(lm_tokens), display=False)
glue("lm_epochs_seen", float(lm_tokens / n_predicted["train"]), display=False)
glue("lm_params", int(lm.count_params()), display=False)
glue(
    "lm_vs_kn", "above" if lm_ppl["test"] > kn5_ppl["test"] else "below", display=False
)
glue("lm_kn_ratio", float(lm_ppl["test"] / kn5_ppl["test"]), display=False)
assert abs(kn5_ppl["test"] - 141.2) < 1.0  # chapter 02's number
glue("unigram_ppl_test", float(unigram_ppl_test), display=False)
assert (
    lm_ppl["test"] < 0.6 * unigram_ppl_test
)  # it learned far more than word frequencies
glue("tab_rnn_ppl", results.style.format("{:.1f}", na_rep="-"), display=False)
results.style.format("{:.1f}", na_rep="-")

# %% [markdown]
# ```{glue:figure} tab_rnn_ppl
# :name: tab-rnn-ppl
#
# PTB perplexity over the whole validation and test splits ({glue:text}`n_test_tokens:,` test tokens, `</s>`
# predicted) of chapter 02's n-gram baseline, the LSTM trained here, and the figure reported by Zaremba et
# al. for their small non-regularised LSTM.
# ```
#
# The LSTM language model ({glue:text}`lm_params:,` parameters) saw {glue:text}`lm_tokens:,` training tokens
# ({glue:text}`lm_epochs_seen:.2f` epochs) in {glue:text}`lm_seconds:.0f` s ({glue:text}`lm_cpu_seconds:.0f` s of
# CPU time), {glue:text}`lm_tokens_per_s:,.0f` tokens per second on this machine, and reached a validation perplexity of {glue:text}`lm_ppl_valid:.1f` and
# a test perplexity of {glue:text}`lm_ppl_test:.1f`, {glue:text}`lm_vs_kn` the Kneser–Ney 5-gram's
# {glue:text}`kn5_ppl_test:.1f` (ratio {glue:text}`lm_kn_ratio:.2f`). In the quick profile the budget is a
# fraction of one epoch on two CPU cores (most of the time goes into the softmax layer over
# {glue:text}`n_vocab:,` words, for every token), and an LSTM that has seen only part of the training text once
# cannot match a 5-gram model that has counted every n-gram of all of it. It is nevertheless far better than the
# unigram model (test perplexity {glue:text}`unigram_ppl_test:.1f`) and still improving quickly ({numref}`fig-rnn-lm-curve`). The full profile runs the same code with
# the "small" configuration of Zaremba et al., for which the paper reports a test perplexity of
# {glue:text}`paper_small_test:.1f` {cite:p}`zaremba2014` (their figure, 13 epochs, no dropout), well below the
# 5-gram: with enough training the recurrent model's unbounded context and shared word representations win.
# (Timings vary from run to run; the perplexities do not.)
#
# ## What the model predicts
#
# For a qualitative look we copy the trained weights into a model with batch size 1 and ask for the most
# likely next words after a few prefixes (each read from a reset state, after a `</s>`).

# %%
predictor = build_rnn_lm(len(vocab), cell="lstm", batch_size=1, **lm_options)
predictor.set_weights(lm.get_weights())
for prefix in [
    "the stock market",
    "the company said it expects",
    "the dow jones",
    "in new",
]:
    reset_rnn_states(predictor)
    ids = token_stream([prefix.split()], word_id)[
        None, :-1
    ]  # </s> + prefix words, (1, steps)
    probs = ops.convert_to_numpy(ops.softmax(predictor(ids)[0, -1]))
    top = np.argsort(-probs)[:5]
    print(f"{prefix!r:32} -> " + ", ".join(f"{vocab[i]} {probs[i]:.2f}" for i in top))

# %% [markdown]
# ## Exercises
#
# 1. **Carry the state or not.** Replace the stateful layers by stateless ones (every window starts from
#    zeros). Predict whether validation perplexity gets better or worse, and by more for `bptt = 35` or for
#    `bptt = 5`; measure both with the quick budget.
# 2. **Clipping.** Train the SimpleRNN of the comparison with SGD (learning rate 1) without `global_clipnorm`,
#    then with it. Predict what happens to the loss curve in the first hundred windows, and check it. Then
#    try `clipnorm=5.0` (per tensor) and explain the difference with {eq}`eq-rnn-clip`.
# 3. **Gradients after training.** Repeat the gradient-norm experiment of {numref}`fig-rnn-gradient-norms` with
#    the trained LSTM layer of the language model on real embedded PTB text instead of a fresh layer on
#    random inputs. Does the decay with $k$ change, and what does that say about the forget gates it learned?
# 4. From {eq}`eq-rnn-lstm`, write $\partial c_t / \partial c_{t-1}$ in full (including the paths through
#    $h_{t-1}$ into the gates) and show that with $f_t = 1$, $i_t = 0$ the cell is copied exactly. Which GRU
#    gate values of {eq}`eq-rnn-gru` copy the state?
# 5. **A GRU language model.** Change `cell="lstm"` to `cell="gru"` in the main model and keep the number of
#    parameters equal (use `compared_params` without the projection). Predict from the comparison table
#    whether it beats the LSTM on the quick budget; measure it.
# 6. Count the floating-point operations of one training window of the quick model (embedding lookup, LSTM,
#    softmax layer, forward and backward) and compare with the measured tokens per second. Which layer
#    dominates, and what would a vocabulary of 50,000 words cost?
#
# ## Summary
#
# * An RNN {eq}`eq-rnn-elman` applies the same weights at every step and carries a state; backpropagation
#   through time {eq}`eq-rnn-bptt` multiplies one Jacobian per step {eq}`eq-rnn-jacobian`, so gradients
#   vanish or explode exponentially with distance. Measured at initialisation, fifty steps back the
#   SimpleRNN's gradient is {glue:text}`grad50_rnn:.1e` and it grows to {glue:text}`grad50_rnn2:.3g` when the
#   recurrent matrix is scaled by 2. Clipping the global gradient norm {eq}`eq-rnn-clip` (`global_clipnorm`)
#   handles explosion.
# * The LSTM {eq}`eq-rnn-lstm` and the GRU {eq}`eq-rnn-gru` route the state through gated, additive updates
#   whose decay per step is a learned gate value; with gates that keep the state, fifty-step gradients stay at
#   {glue:text}`grad50_lstm3:.2g` (LSTM) and {glue:text}`grad50_gru3:.2g` (GRU). Keras's GRU applies the reset
#   gate after the matrix product by default {eq}`eq-rnn-gru-reset-after`.
# * Our cells, written with `keras.ops` and run by `keras.layers.RNN`, equal Keras's `SimpleRNN`, `LSTM` and
#   both `GRU` variants to {glue:text}`max_parity_diff:.1e`; they are in `lmlib.rnn`.
# * A word-level LSTM language model trained with truncated BPTT over contiguous batches reaches a PTB test
#   perplexity of {glue:text}`lm_ppl_test:.1f` in this profile ({glue:text}`lm_tokens_per_s:,.0f` tokens per
#   second), against {glue:text}`kn5_ppl_test:.1f` for the Kneser–Ney 5-gram and
#   {glue:text}`paper_small_test:.1f` reported by Zaremba et al. after 13 epochs. At equal parameter count and
#   budget, validation perplexities are {glue:text}`cmp_valid_rnn:.1f` (SimpleRNN),
#   {glue:text}`cmp_valid_lstm:.1f` (LSTM) and {glue:text}`cmp_valid_gru:.1f` (GRU).
