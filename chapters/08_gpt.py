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
# # GPT: a decoder-only language model
#
# We assemble GPT {cite:p}`radford2018,radford2019` from chapter 07's blocks, train it on Tiny Shakespeare
# with the recipe of nanoGPT {cite:p}`karpathy2023nanogpt` (AdamW with decoupled weight decay, warm-up and
# cosine decay, gradient clipping), train it with a step compiled by XLA, compare its validation loss with nanoGPT's, and
# race it against chapter 05's GRU on the same clock. Then we generate text with a key-value cache that gives
# exactly the tokens of recomputing the whole context, faster, and end with a small compute-scaling experiment.

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
# `nano_*` settings are nanoGPT's Shakespeare recipe: in the quick profile the configuration its README gives
# for a CPU (4 layers, 4 heads, width 128, blocks of 64 characters, batches of 12, 2,000 iterations), in the
# full profile its GPU configuration (6 layers, 6 heads, width 384, blocks of 256, batches of 64, dropout 0.2,
# 5,000 iterations); `nano_reference` is the validation loss nanoGPT reaches with it. The `race_*` settings
# size the GPT and the GRU that train on the same clock, `scaling_*` the compute-scaling experiment.

# %%
import math
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter
from myst_nb import glue

from lmlib.data import fetch
from lmlib.generate import generate
from lmlib.plot import use_style
from lmlib.profiles import setup_chapter

# %%
cfg = setup_chapter(
    "08",
    quick=dict(
        nano_layers=4,
        nano_heads=4,
        nano_width=128,
        nano_block=64,
        nano_batch=12,
        nano_dropout=0.0,
        nano_iters=2000,
        nano_eval_interval=250,
        nano_eval_iters=20,
        nano_reference=1.8857,
        race_block=100,
        race_windows=128,
        race_evals=6,
        race_gpt=dict(d_model=64, num_heads=2, num_layers=2),
        race_gpt_train=dict(batch=8, steps=1163, lr=8e-3),  # tools/tune_race.py
        race_gru=dict(embed_dim=64, units=256),
        race_gru_train=dict(batch=32, steps=166, lr=4e-2),  # tools/tune_race.py
        scaling_widths=(32, 64, 128),
        scaling_batch=16,
        scaling_flops=2e11,
        gen_tokens=500,
        speed_tokens=256,
        speed_steps=12,
        speed_rounds=3,
        long_block=512,
    ),
    full=dict(
        nano_layers=6,
        nano_heads=6,
        nano_width=384,
        nano_block=256,
        nano_batch=64,
        nano_dropout=0.2,
        nano_iters=5000,
        nano_eval_interval=250,
        nano_eval_iters=200,
        nano_reference=1.4697,
        race_block=256,
        race_windows=256,
        race_evals=10,
        race_gpt=dict(d_model=384, num_heads=6, num_layers=6),
        race_gpt_train=dict(batch=64, steps=3000, lr=1e-3),
        race_gru=dict(embed_dim=256, units=1024),
        race_gru_train=dict(batch=64, steps=3000, lr=2e-3),
        scaling_widths=(64, 128, 256, 384),
        scaling_batch=64,
        scaling_flops=1e15,
        gen_tokens=500,
        speed_tokens=256,
        speed_steps=20,
        speed_rounds=3,
        long_block=1024,
    ),
    keras=True,
)

# %%
use_style()
import keras  # noqa: E402  (after setup_chapter has set the backend)
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

from lmlib.transformer import (  # noqa: E402
    TokenAndPositionEmbedding,
    TransformerBlock,
    scaled_dot_product_attention,
)

# %% [markdown]
# ## Tiny Shakespeare, as chapter 05 read it
#
# The data are chapter 05's: the {glue:text}`n_chars_total:,` characters of Tiny Shakespeare
# {cite:p}`karpathy2015`, the first 90% for training and the last 10% for validation, one token per character,
# the vocabulary the {glue:text}`n_vocab:d` characters of the training part. nanoGPT prepares the data the same
# way (its `shakespeare_char` split is also 90/10 by position), so its losses and ours are losses on the same
# characters.

# %%
text = fetch("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
split_at = int(0.9 * len(text))
chars = sorted(set(text[:split_at]))
char_to_id = {c: i for i, c in enumerate(chars)}
assert set(text[split_at:]) <= set(chars)
all_ids = np.array([char_to_id[c] for c in text], np.int32)
train_ids, valid_ids = all_ids[:split_at], all_ids[split_at:]
vocab_size = len(chars)
print(
    f"train {len(train_ids):,}, validation {len(valid_ids):,} characters; "
    f"V = {vocab_size}"
)
glue("n_chars_total", len(text), display=False)
glue("n_vocab", vocab_size, display=False)

# %% [markdown]
# ## The GPT architecture
#
# GPT is the decoder of chapter 07 without cross-attention: a stack of $L$ pre-LN blocks with causal
# self-attention over token plus learned position embeddings, a final layer normalisation (GPT-2's
# arrangement; GPT-1 normalised after each sub-layer), and an output layer
# that reuses the token embedding {cite:p}`radford2018,radford2019,press2017`. For ids $x_1, \dots, x_T$, with
# the token table $W_e \in \mathbb{R}^{V \times d}$ and the position table $W_p \in \mathbb{R}^{T_{\max}
# \times d}$,
#
# $$
# \begin{aligned}
# h^{(0)}_t &= W_e[x_t] + W_p[t], \\
# a^{(l)} &= h^{(l-1)} + \mathrm{CausalAttn}\big(\mathrm{LN}(h^{(l-1)})\big), \qquad
# h^{(l)} = a^{(l)} + W_2\, \mathrm{GELU}\big(W_1 \mathrm{LN}(a^{(l)})\big), \\
# P(x_{t+1} \mid x_{\le t}) &= \mathrm{softmax}\big(\mathrm{LN}(h^{(L)}_t)\, W_e^\top\big),
# \end{aligned}
# $$ (eq-gpt-model)
#
# with $W_1 \in \mathbb{R}^{d \times 4d}$, $W_2 \in \mathbb{R}^{4d \times d}$ and GELU
# {cite:p}`hendrycks2016` (GPT-2 uses its tanh approximation; we use the exact form, as nanoGPT does). Shapes:
# ids (batch, $T$) → (batch, $T$, $d$) through every block → logits (batch, $T$, $V$). GPT-2 has biases in
# every projection and layer normalisation; nanoGPT drops them ("a bit better and faster"), and so do we, with
# `TransformerBlock(use_bias=False)`. Counting the weights: each block has $4d^2$ in attention ($W_Q, W_K,
# W_V, W_O$), $8d^2$ in the feed-forward network and $2d$ layer-normalisation gains; the embeddings add $Vd +
# T_{\max}d$ and the final normalisation $d$:
#
# $$
# N = V d + T_{\max} d + L\,(12 d^2 + 2d) + d.
# $$ (eq-gpt-params)
#
# The class below is all of it. `hidden` runs the stack, `output_logits` is the tied output layer, and
# `build_gpt` builds the model and applies nanoGPT's version of GPT-2's initialisation: every weight from
# $\mathcal{N}(0, 0.02^2)$, and the two projections that write into the residual stream ($W_O$ and $W_2$)
# with the standard deviation divided by $\sqrt{2L}$, to account for the accumulation of $2L$
# contributions on the residual path {cite:p}`radford2019`, so that its variance does not grow with depth.

# %%
# lmlib: gpt
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from lmlib.transformer import (
    TokenAndPositionEmbedding,
    TransformerBlock,
    scaled_dot_product_attention,
)


# %%
# lmlib: gpt
@keras.saving.register_keras_serializable(package="lmlib")
class GPT(keras.Model):
    """A decoder-only Transformer language model (Radford et al. 2018, 2019) built from
    ``lmlib.transformer``: learned positions, ``num_layers`` pre-LN causal blocks with a
    GELU feed-forward network of ``ff_mult * d_model``, a final layer normalisation,
    and the output layer tied to the token embedding. ``use_bias=False`` (nanoGPT's
    choice) drops the biases of projections and normalisations. ``call(ids)`` maps
    (batch, T <= block_size) ids to (batch, T, vocab_size) logits."""

    def __init__(
        self,
        vocab_size: int,
        block_size: int = 64,
        d_model: int = 128,
        num_heads: int = 4,
        num_layers: int = 4,
        dropout: float = 0.0,
        ff_mult: int = 4,
        use_bias: bool = False,
        epsilon: float = 1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.settings = dict(
            vocab_size=vocab_size,
            block_size=block_size,
            d_model=d_model,
            num_heads=num_heads,
            num_layers=num_layers,
            dropout=dropout,
            ff_mult=ff_mult,
            use_bias=use_bias,
            epsilon=epsilon,
        )
        self.embedding = TokenAndPositionEmbedding(
            vocab_size,
            d_model,
            block_size,
            positions="learned",
            dropout=dropout,
            scale=False,
            init_std=0.02,
            name="embedding",
        )
        block = dict(causal=True, norm_first=True, activation="gelu", epsilon=epsilon)
        self.blocks = [
            TransformerBlock(
                d_model,
                num_heads,
                ff_mult * d_model,
                dropout,
                use_bias=use_bias,
                name=f"block_{i}",
                **block,
            )
            for i in range(num_layers)
        ]
        self.final_norm = layers.LayerNormalization(
            epsilon=epsilon, center=use_bias, name="final_norm"
        )

    def hidden(self, ids, training: bool = False):
        """The normalised output of the last block, (batch, T, d_model)."""
        x = self.embedding(ids, training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return self.final_norm(x)

    def output_logits(self, x):
        """Logits (..., vocab_size): the transposed token table is the output layer."""
        return ops.matmul(x, ops.transpose(self.embedding.token_embedding.embeddings))

    def call(self, ids, training: bool = False):
        return self.output_logits(self.hidden(ids, training=training))

    def get_config(self) -> dict:
        return {**super().get_config(), **self.settings}


def build_gpt(seed: int = 0, **settings) -> GPT:
    """A built :class:`GPT` with GPT-2's initialisation: weights from N(0, 0.02^2), the
    projections into the residual stream (attention output, second feed-forward layer)
    from N(0, (0.02 / sqrt(2 L))^2), gains 1 and biases 0."""
    model = GPT(**settings)
    model(np.zeros((1, model.settings["block_size"]), np.int32))
    rng = np.random.default_rng(seed)
    residual_std = 0.02 / math.sqrt(2 * model.settings["num_layers"])
    for block in model.blocks:
        attention = block.self_attention
        for dense, std in [
            (attention.query_dense, 0.02),
            (attention.key_dense, 0.02),
            (attention.value_dense, 0.02),
            (attention.output_dense, residual_std),
            (block.ff_inner, 0.02),
            (block.ff_outer, residual_std),
        ]:
            dense.kernel.assign(rng.normal(0.0, std, dense.kernel.shape))
    return model


def gpt_param_count(
    vocab_size: int, block_size: int, d_model: int, num_layers: int, ff_mult: int = 4
) -> int:
    """Equation (eq-gpt-params) for a GPT without biases: embeddings, per block 4 d^2
    (attention) + 2 ff_mult d^2 (feed-forward) + 2 d (normalisation gains), and the
    final normalisation."""
    d = d_model
    per_block = 4 * d * d + 2 * ff_mult * d * d + 2 * d
    return vocab_size * d + block_size * d + num_layers * per_block + d

# %% [markdown]
# The cell builds nanoGPT's model and checks {eq}`eq-gpt-params` against Keras's count, and the
# initialisation: at step 0 the model should be an almost uniform guess, a loss close to $\ln V$ =
# {glue:text}`uniform_nats:.3f` nats.

# %%
nano_settings = dict(
    vocab_size=vocab_size,
    block_size=cfg.nano_block,
    d_model=cfg.nano_width,
    num_heads=cfg.nano_heads,
    num_layers=cfg.nano_layers,
    dropout=cfg.nano_dropout,
)
nano = build_gpt(seed=0, **nano_settings)
n_params = nano.count_params()
formula = gpt_param_count(vocab_size, cfg.nano_block, cfg.nano_width, cfg.nano_layers)
assert n_params == formula, (n_params, formula)


def initial_loss(model: keras.Model, ids: np.ndarray, block: int, n: int = 64) -> float:
    """Mean next-token cross-entropy (nats) of ``model`` on ``n`` windows of ``ids``."""
    windows = ids[: n * (block + 1)].reshape(n, block + 1)
    logits = model(windows[:, :-1])
    return float(
        keras.losses.sparse_categorical_crossentropy(
            windows[:, 1:], logits, from_logits=True
        )
        .numpy()
        .mean()
    )


init_gpt2 = initial_loss(nano, train_ids, cfg.nano_block)
print(f"{n_params:,} parameters (formula: {formula:,})")
print(f"loss at step 0: {init_gpt2:.3f}, ln V = {math.log(vocab_size):.3f}")
assert abs(init_gpt2 - math.log(vocab_size)) < 0.1
glue("n_params", n_params, display=False)
glue("uniform_nats", math.log(vocab_size), display=False)
glue("init_gpt2", init_gpt2, display=False)

# %% [markdown]
# The model has {glue:text}`n_params:,` parameters, as {eq}`eq-gpt-params` says, and its first loss is
# {glue:text}`init_gpt2:.3f` nats: with weights this small the logits are nearly equal and the model starts
# from the uniform guess, knowing nothing and not pretending otherwise. A causal model must also never see
# the future; the cell below changes the last half of a window and checks that the logits of the first
# half do not move (their largest change is {glue:text}`causal_leak:.1f`; the test suite checks every
# position).

# %%
window = train_ids[: cfg.nano_block][None]
changed = window.copy()
half = cfg.nano_block // 2
changed[0, half:] = (changed[0, half:] + 1) % vocab_size
leak = float(np.max(np.abs(nano(window)[0, :half] - nano(changed)[0, :half])))
print(f"max |change| of the first {half} positions' logits: {leak:.1e}")
assert leak == 0.0
glue("causal_leak", leak, display=False)

# %% [markdown]
# ## The training recipe
#
# nanoGPT trains with four ingredients beyond plain Adam, and we keep each one.
#
# * **AdamW** {cite:p}`loshchilov2019`. Adam's update is divided by a running estimate of the gradient's
#   scale, so an L2 penalty added to the loss is divided too, and weights with large gradients are barely
#   regularised. Decoupled weight decay shrinks the weights directly, separately from the Adam step,
#   $\theta \leftarrow \theta - \eta_t \lambda \theta$ with $\eta_t$ the current learning rate, at the same
#   rate for all. nanoGPT decays only the
#   weights of at least two dimensions (projections and embeddings) and exempts biases and
#   layer-normalisation gains, whose job is to set scales; $\lambda = 0.1$, and $\beta_2 = 0.99$, which
#   nanoGPT's Shakespeare configuration raises from its default 0.95 because each iteration sees few tokens.
# * **Warm-up and cosine decay** {cite:p}`loshchilov2017`. The learning rate rises linearly over the first
#   100 iterations, while Adam's moment estimates are still noisy, then follows half a cosine from the peak
#   $10^{-3}$ down to $10^{-4}$ at the last iteration {eq}`eq-gpt-schedule`.
# * **Global-norm clipping** at 1: if the norm of the whole gradient exceeds 1, the gradient is scaled down
#   to norm 1 (chapters 04 and 05 did the same).
# * **Random windows.** Each batch is `batch` windows of `block + 1` characters starting at uniformly random
#   positions of the training text, the input the first `block` and the target the last `block`. Over a run
#   the windows overlap at random offsets, so a character is seen at many different positions, not tied to
#   one.
#
# $$
# \eta_t = \begin{cases} \eta_{\max}\, \dfrac{t+1}{w+1} & t < w, \\[4pt]
# \eta_{\min} + \tfrac12 \big(1 + \cos(\pi \tfrac{t - w}{S - w})\big)(\eta_{\max} - \eta_{\min}) & w \le t \le S,
# \end{cases}
# $$ (eq-gpt-schedule)
#
# with $w$ warm-up and $S$ decay iterations. Keras has all four: `keras.optimizers.AdamW` with
# `exclude_from_weight_decay`, `global_clipnorm`, and a schedule object, here nanoGPT's formula exactly.

# %%
# lmlib: gpt
@keras.saving.register_keras_serializable(package="lmlib")
class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
    """nanoGPT's learning rate: linear warm-up to ``peak`` over ``warmup_steps``
    (``peak * (t + 1) / (warmup_steps + 1)``), then a half cosine down to ``minimum`` at
    ``decay_steps``, then ``minimum``."""

    def __init__(
        self, peak: float, warmup_steps: int, decay_steps: int, minimum: float
    ):
        self.peak, self.warmup_steps = peak, warmup_steps
        self.decay_steps, self.minimum = decay_steps, minimum

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * (step + 1) / (self.warmup_steps + 1)
        span = max(self.decay_steps - self.warmup_steps, 1)
        ratio = ops.clip((step - self.warmup_steps) / span, 0.0, 1.0)
        cosine = 0.5 * (1 + ops.cos(math.pi * ratio))
        decayed = self.minimum + cosine * (self.peak - self.minimum)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self) -> dict:
        return dict(
            peak=self.peak,
            warmup_steps=self.warmup_steps,
            decay_steps=self.decay_steps,
            minimum=self.minimum,
        )


# %% [markdown]
# `make_adamw` builds the optimizer for a model: the weight-decay groups are decided by each variable's
# number of dimensions, as in nanoGPT's `configure_optimizers`.

# %%
# lmlib: gpt
def make_adamw(
    model: keras.Model,
    learning_rate,
    weight_decay: float = 0.1,
    beta_2: float = 0.99,
    clipnorm: float | None = 1.0,
) -> keras.optimizers.AdamW:
    """nanoGPT's optimizer, built for ``model``: AdamW (beta_1 0.9, epsilon 1e-8) with
    decoupled weight decay on the weights of two or more dimensions only (not on
    biases or normalisation gains), clipping the global gradient norm at
    ``clipnorm``."""
    optimizer = keras.optimizers.AdamW(
        learning_rate,
        weight_decay=weight_decay,
        beta_1=0.9,
        beta_2=beta_2,
        epsilon=1e-8,
        global_clipnorm=clipnorm,
    )
    exempt = [v for v in model.trainable_variables if len(v.shape) < 2]
    optimizer.exclude_from_weight_decay(var_list=exempt)
    optimizer.build(model.trainable_variables)
    return optimizer


# %% [markdown]
# The batches, and the two compiled steps. Each step is one `tf.function` with a fixed input signature, so
# it is traced once; with `jit_compile=True` XLA compiles the whole step (forward, backward, clipping, the
# AdamW update) into one program.

# %%
# lmlib: gpt
def random_windows(
    ids: np.ndarray, block: int, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` windows of ``block + 1`` tokens at uniformly random starts of ``ids``:
    inputs (batch, block) and targets (batch, block), the inputs shifted by one."""
    starts = rng.integers(0, len(ids) - block, batch)
    windows = ids[starts[:, None] + np.arange(block + 1)]
    return windows[:, :-1], windows[:, 1:]


def make_lm_steps(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    batch: int,
    block: int,
    jit_compile: bool = True,
) -> tuple[Callable, Callable]:
    """A training step ``train(x, y) -> loss`` (forward, backward, optimizer update)
    and an evaluation step ``evaluate(x, y) -> loss`` for (batch, block) windows, each
    one ``tf.function`` traced once, compiled with XLA if ``jit_compile``."""
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    spec = [tf.TensorSpec((batch, block), tf.int32)] * 2

    @tf.function(jit_compile=jit_compile, input_signature=spec)
    def train(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function(jit_compile=jit_compile, input_signature=spec)
    def evaluate(x, y):
        return loss_fn(y, model(x, training=False))

    return train, evaluate

# %% [markdown]
# The training loop is nanoGPT's. At step 0, every `eval_every` steps and after the last step it calls
# `estimate`, which returns the losses to log; between those calls it takes one training step on a batch
# from `batches`. Its clock counts the training steps, batch sampling included, but not the estimates or
# the first step (which traces and compiles).

# %%
# lmlib: gpt
def train_lm(
    train: Callable,
    batches: Callable[[], tuple[np.ndarray, np.ndarray]],
    steps: int,
    estimate: Callable[[], dict[str, float]],
    eval_every: int,
    verbose: bool = True,
) -> dict[str, list]:
    """Take ``steps`` steps ``train(x, y)`` on ``batches()``, and log ``estimate()`` (a
    dict of losses) at step 0, every ``eval_every`` steps and after the last. Returns
    lists: ``step`` and ``seconds`` (the training clock without the first step) at each
    estimate, the estimates by name, and per step ``loss`` and ``step_seconds``."""
    log = {"step": [], "seconds": [], "loss": [], "step_seconds": []}
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            log["step"].append(step)
            log["seconds"].append(sum(log["step_seconds"][1:]))
            for name, value in estimate().items():
                log.setdefault(name, []).append(value)
            if verbose:
                shown = ", ".join(f"{k} {log[k][-1]:.4f}" for k in estimate_keys(log))
                print(f"step {step:5d}: {shown} ({log['seconds'][-1]:.1f} s)")
        if step < steps:
            started = time.perf_counter()
            log["loss"].append(float(train(*batches())))  # float() waits for the step
            log["step_seconds"].append(time.perf_counter() - started)
    return log


def estimate_keys(log: dict[str, list]) -> list[str]:
    """The names of the estimates in a :func:`train_lm` log."""
    return [k for k in log if k not in ("step", "seconds", "loss", "step_seconds")]


def estimate_loss(
    evaluate: Callable, ids, block: int, batch: int, iters: int, rng
) -> float:
    """nanoGPT's estimate of a split's loss: the mean of ``evaluate`` over ``iters``
    random batches of ``ids`` (:func:`random_windows`)."""
    losses = [evaluate(*random_windows(ids, block, batch, rng)) for _ in range(iters)]
    return float(np.mean(losses))

# %% [markdown]
# A mean over a few random batches is an estimate, with a standard error we measure after training, and
# it can hide small differences. So we also score every validation character once: `split_loss` cuts the split into consecutive windows of `block` inputs (each target is
# predicted from the characters before it in its window, as in training) and averages the losses of all
# targets, summed in float64.

# %%
# lmlib: gpt
def windows_scorer(
    model: keras.Model, batch: int = 64
) -> Callable[[np.ndarray, np.ndarray], float]:
    """``score(x, y)``: the mean next-token loss (nats) of ``model`` on windows ``x``
    with targets ``y`` (both (n, T)), ``batch`` windows at a time, summed in float64;
    traced once, so that scoring many times during training costs no retracing."""
    spec = [tf.TensorSpec((None, None), tf.int32)] * 2

    @tf.function(input_signature=spec)
    def total(inputs, targets):
        losses = keras.losses.sparse_categorical_crossentropy(
            targets, model(inputs, training=False), from_logits=True
        )
        return tf.reduce_sum(tf.cast(losses, tf.float64))

    def score(x: np.ndarray, y: np.ndarray) -> float:
        chunks = range(0, len(x), batch)
        nll = sum(float(total(x[i : i + batch], y[i : i + batch])) for i in chunks)
        return nll / y.size

    return score


def windows_loss(
    model: keras.Model, x: np.ndarray, y: np.ndarray, batch: int = 64
) -> float:
    """Mean next-token loss (nats) of ``model`` on windows ``x`` with targets ``y``
    (both (n, T)): :func:`windows_scorer` called once."""
    return windows_scorer(model, batch)(x, y)


def split_loss(
    model: keras.Model, ids: np.ndarray, block: int, batch: int = 64
) -> float:
    """Mean next-token loss (nats) over ``ids`` cut into consecutive windows of
    ``block`` inputs: every target after ``ids[0]`` is scored once (a tail shorter
    than a window is left out)."""
    n = (len(ids) - 1) // block
    x = ids[: n * block].reshape(n, block)
    y = ids[1 : n * block + 1].reshape(n, block)
    return windows_loss(model, x, y, batch)

# %% [markdown]
# ## Training with nanoGPT's recipe
#
# Before the run, a check of what a rerun reproduces. TensorFlow's op determinism is on (the setup cell),
# but Keras's `model.fit` then drops XLA, with only a warning; our own step is compiled by XLA all the same, so we check
# directly that it is deterministic on this machine: ten steps from the initial weights, then the weights
# and the optimizer's state put back, and the run below must repeat those ten losses exactly.

# %%
schedule = WarmupCosine(
    1e-3, warmup_steps=100, decay_steps=cfg.nano_iters, minimum=1e-4
)
nano_opt = make_adamw(nano, schedule)
nano_train, nano_eval = make_lm_steps(nano, nano_opt, cfg.nano_batch, cfg.nano_block)
initial = [v.numpy() for v in nano.weights + nano_opt.variables]


def nano_batches(seed: int):
    """nanoGPT's batches: random windows of the training split, from ``seed``."""
    rng = np.random.default_rng(seed)
    return lambda: random_windows(train_ids, cfg.nano_block, cfg.nano_batch, rng)


batches = nano_batches(seed=0)
first_losses = [float(nano_train(*batches())) for _ in range(10)]
for variable, value in zip(nano.weights + nano_opt.variables, initial, strict=True):
    variable.assign(value)

# %% [markdown]
# The run: {glue:text}`nano_iters:,` iterations, with nanoGPT's estimate (the mean of
# {glue:text}`nano_eval_iters:d` random batches of each split) every {glue:text}`nano_eval_interval:d`.

# %%
eval_rng = np.random.default_rng(1)


def nano_estimate() -> dict[str, float]:
    """nanoGPT's loss estimates on both splits."""
    return {
        split: estimate_loss(
            nano_eval,
            ids,
            cfg.nano_block,
            cfg.nano_batch,
            cfg.nano_eval_iters,
            eval_rng,
        )
        for split, ids in (("train", train_ids), ("valid", valid_ids))
    }


nano_log = train_lm(
    nano_train,
    nano_batches(seed=0),
    cfg.nano_iters,
    nano_estimate,
    cfg.nano_eval_interval,
)
rerun_diff = float(np.max(np.abs(np.subtract(first_losses, nano_log["loss"][:10]))))
print(f"rerun of the first 10 steps: max |loss difference| {rerun_diff:.1e}")
assert rerun_diff == 0.0

# %% [markdown]
# The whole validation split, scored once per character, and the numbers the prose uses:

# %%
nano_val = split_loss(nano, valid_ids, cfg.nano_block)
nano_est = nano_log["valid"][-1]
nano_step_ms = 1000 * float(np.median(nano_log["step_seconds"][1:]))
nano_tokens_s = cfg.nano_batch * cfg.nano_block / (nano_step_ms / 1000)
se_rng = np.random.default_rng(2)
batch_losses = [
    float(nano_eval(*random_windows(valid_ids, cfg.nano_block, cfg.nano_batch, se_rng)))
    for _ in range(cfg.nano_eval_iters)
]
nano_est_se = float(np.std(batch_losses, ddof=1) / math.sqrt(len(batch_losses)))
print(
    f"validation loss {nano_val:.4f} nats/char over the whole split "
    f"(nanoGPT-style estimate {nano_est:.4f} ± {nano_est_se:.4f}; nanoGPT reports "
    f"{cfg.nano_reference}); "
    f"{nano_step_ms:.1f} ms/iteration, {nano_tokens_s:,.0f} tokens/s"
)
assert nano_val < nano_log["valid"][0] - 1.5 and nano_val <= cfg.nano_reference + 0.1
assert nano_log["train"][-1] < nano_log["valid"][-1]
for name, value in [
    ("nano_val", nano_val),
    ("nano_val_bits", nano_val / math.log(2)),
    ("nano_est", nano_est),
    ("nano_train_est", nano_log["train"][-1]),
    ("nano_overfit", nano_log["valid"][-1] - nano_log["train"][-1]),
    ("nano_est_se", nano_est_se),
    ("nano_gap", abs(nano_val - cfg.nano_reference)),
    ("nano_reference", cfg.nano_reference),
    ("nano_step_ms", nano_step_ms),
    ("nano_tokens_s", nano_tokens_s),
    ("nano_seconds", nano_log["seconds"][-1]),
    ("rerun_diff", rerun_diff),
]:
    glue(name, float(value), display=False)
glue("nano_iters", cfg.nano_iters, display=False)
glue("nano_eval_iters", cfg.nano_eval_iters, display=False)
glue("nano_eval_interval", cfg.nano_eval_interval, display=False)
reference_source = {
    "quick": "nanoGPT's own code, run on a two-core machine like this one,",
    "full": "nanoGPT's README",
}[cfg.name]
glue("nano_reference_source", reference_source, display=False)
glue(
    "nano_vs_reference",
    "below" if nano_val <= cfg.nano_reference else "above",
    display=False,
)

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.6))
for split in ("train", "valid"):
    ax.plot(nano_log["step"], nano_log[split], marker="o", label=f"{split} (estimate)")
ax.axhline(cfg.nano_reference, color="grey", ls="--", label="nanoGPT's validation loss")
ax.scatter(
    [cfg.nano_iters], [nano_val], color="k", zorder=3, label="whole validation split"
)
ax.set(xlabel="iteration", ylabel="loss (nats per character)", ylim=(1.0, 4.5))
ax.legend()
glue("fig_gpt_nano_curve", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_gpt_nano_curve
# :name: fig-gpt-nano-curve
#
# Training and validation loss of nanoGPT's recipe, estimated every {glue:text}`nano_eval_interval:d`
# iterations from {glue:text}`nano_eval_iters:d` random batches; the dot is the whole validation split after
# the last iteration, the dashed line nanoGPT's own result with the same recipe.
# ```
#
# After {glue:text}`nano_iters:,` iterations the model costs {glue:text}`nano_val:.4f` nats per validation
# character ({glue:text}`nano_val_bits:.3f` bits), scored over the whole split; nanoGPT's estimate of the same
# quantity is {glue:text}`nano_est:.4f` here, and {glue:text}`nano_reference_source` gave
# {glue:text}`nano_reference:.4f` for this recipe {cite:p}`karpathy2023nanogpt`, so we are {glue:text}`nano_vs_reference` it, by
# {glue:text}`nano_gap:.3f` nats. The estimate's standard error, measured from
# {glue:text}`nano_eval_iters:d` fresh validation batches, is {glue:text}`nano_est_se:.3f` nats: nanoGPT's
# figure is itself an estimate of that precision, and how far the seed of the training batches moves the
# result is Exercise 1. The training estimate ({glue:text}`nano_train_est:.3f`) is lower by
# {glue:text}`nano_overfit:.3f` nats: the model already fits the text it trains on better than text it has
# never seen. A rerun repeats the first ten steps bit for bit: the losses of the run and of the check
# before it differ by {glue:text}`rerun_diff:.0f`, as the cell asserts, on this machine; XLA's compiled
# code depends on the hardware, so another machine reproduces its own numbers, not ours to the last digit.

# %% [markdown]
# ## Speed: XLA, no XLA, `model.fit`
#
# The same training step three ways: our step compiled by XLA (the one the run above used), the same
# `tf.function` without XLA, and Keras's `model.fit` with the same optimizer and loss. A shared machine's
# speed drifts from minute to minute, so the three are timed in turns, {glue:text}`speed_rounds:d` rounds of
# {glue:text}`speed_steps:d` steps each, and each gets its median. The first two continue training the
# trained model, whose weights and optimizer state are put back afterwards; `model.fit` trains a fresh copy.
# We also measure what the processor can do: a 2048 × 2048 float32 matrix product, $2 \cdot 2048^3$
# floating-point operations, gives the *peak* we compare with.

# %%
def seconds_per_call(fn: Callable, calls: int) -> list[float]:
    """Seconds of each of ``calls`` calls of ``fn()``."""
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return seconds


trained = [v.numpy() for v in nano.weights + nano_opt.variables]
plain_train, _ = make_lm_steps(nano, nano_opt, cfg.nano_batch, cfg.nano_block, False)
fit_model = build_gpt(seed=0, **nano_settings)
with (
    warnings.catch_warnings()
):  # Keras warns that it falls back; the line below says so
    warnings.filterwarnings("ignore", message="Model doesn't support `jit_compile")
    fit_model.compile(
        optimizer=make_adamw(fit_model, schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
print(f"model.fit asked for XLA; it runs with jit_compile={fit_model.jit_compile}")
fit_x, fit_y = random_windows(
    train_ids,
    cfg.nano_block,
    cfg.nano_batch * cfg.speed_steps,
    np.random.default_rng(3),
)
fit_one = dict(batch_size=cfg.nano_batch, epochs=1, shuffle=False, verbose=0)

# %%
speed_batches = nano_batches(seed=3)
ways = {
    "our step, XLA": lambda: float(nano_train(*speed_batches())),
    "our step, no XLA": lambda: float(plain_train(*speed_batches())),
    "model.fit": lambda: fit_model.fit(fit_x, fit_y, **fit_one),
}
for way in ways.values():
    way()  # traces (and compiles) each way once
times = {way: [] for way in ways}
for _ in range(cfg.speed_rounds):
    for way, fn in ways.items():
        calls = 1 if way == "model.fit" else cfg.speed_steps  # fit runs all the steps
        times[way] += [
            t / (cfg.speed_steps // calls) for t in seconds_per_call(fn, calls)
        ]
for variable, value in zip(nano.weights + nano_opt.variables, trained, strict=True):
    variable.assign(value)
step_s = {way: float(np.median(t)) for way, t in times.items()}

# %%
square = tf.random.normal((2048, 2048), seed=0)
matmul = tf.function(lambda m: tf.linalg.matmul(m, m))
matmul(square)
peak = (
    2 * 2048**3 / float(np.median(seconds_per_call(lambda: matmul(square).numpy(), 10)))
)
positions = cfg.nano_block * cfg.nano_width
flops_per_token = 6 * (n_params - positions) + 12 * cfg.nano_layers * positions
tokens = cfg.nano_batch * cfg.nano_block
speed = pd.DataFrame(
    {
        "ms per iteration": {w: 1000 * s for w, s in step_s.items()},
        "tokens per s": {w: tokens / s for w, s in step_s.items()},
        "MFU %": {
            w: 100 * tokens / s * flops_per_token / peak for w, s in step_s.items()
        },
    }
)
display(speed.round(1))

# %%
xla_s, plain_s, fit_s = step_s.values()
for name, value in [
    ("xla_ms", 1000 * xla_s),
    ("plain_ms", 1000 * plain_s),
    ("fit_ms", 1000 * fit_s),
    ("xla_tokens_s", tokens / xla_s),
    ("xla_speedup", plain_s / xla_s),
    ("peak_gflops", peak / 1e9),
    ("mfu_xla", 100 * tokens / xla_s * flops_per_token / peak),
    ("mfu_plain", 100 * tokens / plain_s * flops_per_token / peak),
    ("mflops_per_token", flops_per_token / 1e6),
]:
    glue(name, float(value), display=False)
glue("speed_steps", cfg.speed_steps, display=False)
glue("speed_rounds", cfg.speed_rounds, display=False)
glue("fit_jit", "on" if fit_model.jit_compile else "off", display=False)
glue("xla_word", "faster" if xla_s < plain_s else "slower", display=False)

# %% [markdown]
# A training step costs about $6N$ floating-point operations per token for a model of $N$ weights (two for
# each multiply-add of the forward pass, four for the backward pass), plus attention's own products, $QK^\top$
# and the weighted sum of values, $12LTd$ per token for a context of $T$. This is the estimate of PaLM's
# appendix {cite:p}`chowdhery2022` and of nanoGPT's `estimate_mfu`, with $N$ counting the tied embedding
# once and leaving out the position table (a lookup, not a product): {glue:text}`mflops_per_token:.2f`
# MFLOP per token here. *Model FLOPs utilisation* (MFU) is the rate a step achieves by this count, divided
# by the peak: the matrix product ran at {glue:text}`peak_gflops:.0f` GFLOP/s on this machine. (nanoGPT's
# `estimate_mfu` divides by a datasheet peak, an A100's 312 TFLOP/s, so its MFU and ours are not
# comparable.)
#
# Timed in turns, the XLA step takes {glue:text}`xla_ms:.1f` ms per iteration
# ({glue:text}`xla_tokens_s:,.0f` tokens per second, an MFU of {glue:text}`mfu_xla:.0f`%) and the same step
# without XLA {glue:text}`plain_ms:.1f` ms (an MFU of {glue:text}`mfu_plain:.0f`%): XLA is
# {glue:text}`xla_word` here, the plain step's time being {glue:text}`xla_speedup:.2f` times the XLA
# step's. XLA fuses the many small element-wise operations of a Transformer (layer normalisation, GELU, the
# softmax, the AdamW update of every weight) into a few loops, which saves passes over memory, but it also
# replaces, on a CPU, TensorFlow's oneDNN matrix kernels with its own code; which effect wins depends on the processor
# and the model, so measure it on yours. (The run above used the same XLA step: its median was
# {glue:text}`nano_step_ms:.1f` ms per iteration, {glue:text}`nano_tokens_s:,.0f` tokens per second,
# {glue:text}`nano_seconds:.0f` s in all; a difference from the figure here is the machine's drift.) `model.fit` asked for XLA, runs with it {glue:text}`fit_jit` because op determinism is
# on, and takes {glue:text}`fit_ms:.1f` ms. MFU is the share of the machine's matrix speed that a step
# turns into model arithmetic; the rest goes to memory traffic, the element-wise operations and the
# overheads of small matrices, which is why it is the figure to watch when a model or a batch is resized.

# %% [markdown]
# ## Generation with a key-value cache
#
# To generate, a language model is run once per new token, on the context so far. Recomputing the whole
# context each time repeats work: in a causal model the keys and values of a position depend only on the
# positions up to it, so once computed they never change. A *key-value cache* keeps them: each step feeds
# the model only the newest token, computes its query, key and value in every layer, writes the key and
# value into the cache at the token's position, and attends from the one query to all cached keys. The
# work per token drops from a pass over the whole context to a pass over one token (plus the attention over
# the cache, $O(T d)$ per layer).
#
# The cache is preallocated at its final size, (layers, 2, batch, heads, `block_size`, head dimension), and
# each step writes its keys and values into it with `ops.slice_update`, which returns the cache with one
# slice replaced; the mask lets each query see only the positions written so far. Static shapes are what
# XLA needs: one compiled program serves every position, provided the position enters as data. That is why
# the embedding looks its positions up as `start + arange(t)`: `arange(start, start + t)` is a range whose
# bounds XLA must know when it compiles, and the cached step would be compiled anew at every position. A GPT's context is bounded
# by its position table, so when the context is full both generators below apply the same rule: keep the
# last `keep` tokens (half a block by default) and re-encode them from position 0. (A window sliding one
# token at a time would shift every position each step and invalidate the whole cache; with learned
# absolute positions the cache pays only when positions stay put.) With the same rule on both sides, the
# cached generator must produce exactly the tokens of the one that recomputes.

# %%
# lmlib: gpt
class KVState(NamedTuple):
    """The state of :func:`kv_cache_step_fn`: ``cache`` (layers, 2, 1, heads,
    block_size, head_dim) holds the keys (index 0) and values (1) of the tokens in
    ``window``, at positions ``0 .. len(window) - 1``."""

    cache: Any
    window: tuple[int, ...]


def empty_cache(model: GPT, batch: int = 1):
    """A zero cache (layers, 2, batch, heads, block_size, head_dim)."""
    s = model.settings
    head_dim = s["d_model"] // s["num_heads"]
    shape = (s["num_layers"], 2, batch, s["num_heads"], s["block_size"], head_dim)
    return tf.zeros(shape)


def cached_forward(model: GPT, ids, cache, start):
    """Logits (batch, t, V) of ``ids`` (batch, t) at positions ``start .. start+t-1``
    given the keys and values of positions ``< start`` in ``cache``; returns the logits
    and the cache with this chunk's keys and values written in place."""
    x = model.embedding(ids, start=start)
    t, size = ops.shape(ids)[1], cache.shape[4]
    queries_at = start + ops.arange(t)
    mask = (ops.arange(size)[None, :] <= queries_at[:, None])[None, None]
    for layer, block in enumerate(model.blocks):
        attention = block.self_attention
        h = block.self_norm(x)
        q = attention.split_heads(attention.query_dense(h))  # (batch, heads, t, d_h)
        k = attention.split_heads(attention.key_dense(h))
        v = attention.split_heads(attention.value_dense(h))
        cache = ops.slice_update(cache, (layer, 0, 0, 0, start, 0), k[None, None])
        cache = ops.slice_update(cache, (layer, 1, 0, 0, start, 0), v[None, None])
        heads, _ = scaled_dot_product_attention(
            q, cache[layer, 0], cache[layer, 1], mask
        )
        batch = ops.shape(x)[0]
        merged = ops.reshape(ops.transpose(heads, (0, 2, 1, 3)), (batch, t, -1))
        x = x + attention.output_dense(merged)
        x = x + block.ff_outer(block.ff_inner(block.ff_norm(x)))
    return model.output_logits(model.final_norm(x)), cache


def kv_cache_step_fn(model: GPT, keep: int | None = None, jit_compile: bool = True):
    """A step function for :func:`lmlib.generate.generate` that feeds one token with a
    key-value cache, and its initial :class:`KVState`. When the context is full it
    keeps the last ``keep`` tokens (default ``block_size // 2``) and re-encodes them."""
    block = model.settings["block_size"]
    keep = block // 2 if keep is None else keep

    def last_logits(ids, cache, start):  # only the last position's logits leave XLA
        logits, cache = cached_forward(model, ids, cache, start)
        return logits[:, -1], cache

    forward = tf.function(last_logits, jit_compile=jit_compile)

    def step(token: int, state: KVState):
        window, cache = state.window, state.cache
        if len(window) == block:
            window = window[-keep:]
            _, cache = forward(
                tf.constant([window]), empty_cache(model), tf.constant(0)
            )
        start = tf.constant(len(window))
        logits, cache = forward(tf.constant([[token]]), cache, start)
        return logits.numpy()[0], KVState(cache, (*window, token))

    return step, KVState(empty_cache(model), ())


def recompute_step_fn(model: GPT, keep: int | None = None):
    """The same generator without a cache: every step runs the model over the whole
    context (the same context rule as :func:`kv_cache_step_fn`)."""
    block = model.settings["block_size"]
    keep = block // 2 if keep is None else keep
    spec = [tf.TensorSpec((1, None), tf.int32)]
    last_logits = tf.function(lambda ids: model(ids)[:, -1], input_signature=spec)

    def step(token: int, window: tuple[int, ...]):
        window = (*(window[-keep:] if len(window) == block else window), token)
        return last_logits(tf.constant([window])).numpy()[0], window

    return step, ()

# %% [markdown]
# The recomputing generator runs as a TensorFlow graph without XLA: its input grows by a token each step,
# and XLA would compile a new program for every length, while the cache's input is always one token. A
# wrapper records the seconds of each step. All three generators first run a warm-up (past a block where the run
# will cut the context, so that every shape is traced and compiled), then generate
# {glue:text}`gen_tokens:d` greedy tokens after the same prompt.

# %%
def timed(step: Callable, seconds: list[float]) -> Callable:
    """``step`` that appends the seconds each of its calls takes to ``seconds``."""

    def wrapped(token, state):
        started = time.perf_counter()
        out = step(token, state)
        seconds.append(time.perf_counter() - started)
        return out

    return wrapped


def greedy_timed(
    generators: dict[str, tuple], prompt: list[int], n: int, block: int
) -> dict[str, tuple]:
    """Greedy ids and per-step seconds of ``n`` tokens after ``prompt`` for each
    ``name: (step, state)`` generator of a model with ``block_size`` ``block``, each
    after a warm-up that traces every shape the run needs (``block + 2`` tokens if
    the context will be cut, else 2)."""
    warm_up = block + 2 if len(prompt) + n > block else 2
    results = {}
    for name, (step, state) in generators.items():
        generate(step, state, prompt, warm_up, temperature=0)
        seconds = []
        out = generate(timed(step, seconds), state, prompt, n, temperature=0)
        results[name] = (out.ids, seconds)
    return results


def generators(model: GPT) -> dict[str, tuple]:
    """The cached (with and without XLA) and the recomputing generator of ``model``."""
    return {
        "cache": kv_cache_step_fn(model),
        "cache, no XLA": kv_cache_step_fn(model, jit_compile=False),
        "recompute": recompute_step_fn(model),
    }


prompt = [char_to_id[c] for c in "ROMEO:"]
nano_generators = generators(nano)
greedy_runs = greedy_timed(nano_generators, prompt, cfg.gen_tokens, cfg.nano_block)
same_tokens = all(ids == greedy_runs["recompute"][0] for ids, _ in greedy_runs.values())
print("identical greedy tokens:", same_tokens)
assert same_tokens
print("".join(chars[i] for i in prompt + greedy_runs["cache"][0][:200]))

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.4))
for name, (_, seconds) in greedy_runs.items():
    ax.plot(1000 * np.array(seconds), lw=0.8, label=name)
ax.set(xlabel="step (token fed)", ylabel="ms per token", yscale="log")
ax.yaxis.set_major_locator(LogLocator(subs=(1, 2, 5)))  # ticks at 1, 2, 5, 10, ... ms
ax.yaxis.set_major_formatter(ScalarFormatter())
ax.yaxis.set_minor_formatter(NullFormatter())
ax.legend()
glue("fig_gpt_kv_times", fig, display=False)
plt.close(fig)


def speedups(runs: dict[str, tuple], n: int) -> dict[str, float]:
    """Seconds of the first ``n`` steps of recomputation over those of each cached
    generator, from :func:`greedy_timed`'s ``runs``."""
    recompute = sum(runs["recompute"][1][:n])
    return {
        name: recompute / sum(seconds[:n])
        for name, (_, seconds) in runs.items()
        if name != "recompute"
    }


long_model = build_gpt(seed=0, **{**nano_settings, "block_size": cfg.long_block})
long_tokens = cfg.long_block - len(prompt)  # the context grows to the whole block
long_runs = greedy_timed(generators(long_model), prompt, long_tokens, cfg.long_block)
assert all(ids == long_runs["recompute"][0] for ids, _ in long_runs.values())
nano_speedups = speedups(greedy_runs, cfg.speed_tokens)
long_speedups = speedups(long_runs, long_tokens)
print("recompute time / cache time")
columns = {
    f"block {cfg.nano_block}, {cfg.speed_tokens} tokens": nano_speedups,
    f"block {cfg.long_block}, {long_tokens} tokens": long_speedups,
}
print(pd.DataFrame(columns).round(2))

# %% [markdown]
# The cache gives exactly the tokens of recomputation, as the cell asserts, and
# {numref}`fig-gpt-kv-times` shows where the time goes. Recomputation's cost follows the length of the
# context, rising towards a full block and falling back each time the context is cut to half a block,
# although at this size the fixed cost of each call hides much of the rise; with the cache every token
# costs about the same, one token's pass, except at the cuts, where the kept half is re-encoded once.
#
# ```{glue:figure} fig_gpt_kv_times
# :name: fig-gpt-kv-times
#
# Milliseconds per generated token, with the key-value cache (with and without XLA) and recomputing
# the context, for
# {glue:text}`gen_tokens:d` greedy tokens of the trained model (block {glue:text}`nano_block:d`).
# ```
#
# For the first {glue:text}`speed_tokens:d` of those tokens the cache is {glue:text}`kv_speedup:.1f` times
# as fast as recomputation at block {glue:text}`nano_block:d`, and {glue:text}`kv_speedup_plain:.1f` times without
# XLA, where both generators run the same kind of graph. An (untrained) model of the same width with a
# block of {glue:text}`long_block:,` positions, generating {glue:text}`long_tokens:d` tokens so that its
# context grows to the whole block without being cut, gains {glue:text}`long_speedup:.1f` times with XLA,
# {glue:text}`long_word` than at the short block ({glue:text}`long_speedup_plain:.1f` times without XLA).
# Recomputation's cost per token grows with the context, while the cache's barely does; what a cached step
# still pays is mostly fixed: the call from Python into the compiled program, and attention over the whole
# preallocated block, written or not. {glue:text}`long_verdict`

# %%
for prefix, found in [("kv", nano_speedups), ("long", long_speedups)]:
    glue(f"{prefix}_speedup", float(found["cache"]), display=False)
    glue(f"{prefix}_speedup_plain", float(found["cache, no XLA"]), display=False)
gains_more = long_speedups["cache"] > nano_speedups["cache"]
glue("long_word", "more" if gains_more else "less", display=False)
if gains_more:
    verdict = "So the longer the contexts a model generates, the more the cache saves."
else:
    verdict = "Here the longer block gained less: the fixed costs still dominate."
glue("long_verdict", verdict, display=False)
glue("long_tokens", long_tokens, display=False)
for name in ("gen_tokens", "speed_tokens", "nano_block", "long_block"):
    glue(name, int(cfg[name]), display=False)

# %% [markdown]
# Sampling instead of greedy decoding (temperature 0.8, the 20 most likely characters, a seeded generator),
# with the cache:

# %%
step, state = nano_generators["cache"]
sample = generate(
    step,
    state,
    prompt,
    cfg.gen_tokens,
    temperature=0.8,
    top_k=20,
    rng=np.random.default_rng(0),
)
sample_text = "".join(chars[i] for i in prompt + sample.ids)
print(sample_text)

# %% [markdown]
# ## GPT against the GRU, on one clock
#
# Chapter 05's GRU reached {glue:text}`05_text_generation.ipynb::char_val_nats:.3f` nats per character on
# windows of 100 validation characters after {glue:text}`05_text_generation.ipynb::train_seconds:.0f`
# seconds of training ({glue:text}`05_text_generation.ipynb::char_val_bits:.3f` bits), and the character
# 5-gram model with Kneser–Ney smoothing, read as a stream, costs
# {glue:text}`05_text_generation.ipynb::kn_bits:.3f` bits per character. Here the two architectures train
# side by side, in one build, through the same code, `train_on_windows` below: the same random-window
# batches of {glue:text}`race_block:d` characters, the same training step (compiled by XLA for the GPT, a
# plain TensorFlow graph for the GRU), the same recipe (nanoGPT's AdamW and clipping, warm-up over a tenth
# of the steps, cosine decay to a tenth of the peak learning rate), each for a number of steps chosen to
# take roughly the same time; both are scored on the same {glue:text}`race_windows:d` validation windows
# along the way and on the whole split at the end. The GRU is chapter 05's architecture with
# {glue:text}`race_gru_units:d` units; the GPT is nanoGPT's with {glue:text}`race_gpt_layers:d` layers of
# width {glue:text}`race_gpt_width:d`. Both were tuned with the same care: `tools/tune_race.py` gives each
# model the same trials, every pair of a grid of batch sizes and peak learning rates for a default shape,
# then two other shapes (smaller and larger) at the best pair, each trial trained for the same seconds on
# the first 90% of the training text and scored on the last 10%, never on the validation split. Its
# best settings on the book's two-core machine are the quick profile's `race_*` entries; the full
# profile's are set by hand, since the tool has not been run on a GPU. (The tool is not part of this
# chapter's execution: the steps a trial affords depend on the machine, so it is run once, by hand.)

# %%
# lmlib: gpt
def gru_lm(vocab_size: int, embed_dim: int, units: int) -> keras.Model:
    """Chapter 05's character model for random windows: an embedding, one GRU layer
    (not stateful: every window starts from a zero state), a dense output."""
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            layers.Embedding(vocab_size, embed_dim),
            layers.GRU(units, return_sequences=True),
            layers.Dense(vocab_size),
        ],
        name="gru_lm",
    )


def train_on_windows(
    model: keras.Model,
    ids: np.ndarray,
    block: int,
    settings: dict,
    estimate: Callable[[], dict[str, float]],
    evals: int,
    jit_compile: bool = True,
    verbose: bool = True,
) -> dict[str, list]:
    """Train ``model`` on random windows of ``block`` characters of ``ids`` with
    ``settings`` (``batch``, ``steps``, peak ``lr``) and one recipe for any model:
    :func:`make_adamw`'s AdamW, warm-up over a tenth of the steps, cosine decay to
    ``lr / 10``; ``estimate()`` is logged ``evals`` times (:func:`train_lm`'s log)."""
    steps, batch, peak = settings["steps"], settings["batch"], settings["lr"]
    optimizer = make_adamw(model, WarmupCosine(peak, steps // 10, steps, peak / 10))
    train, _ = make_lm_steps(model, optimizer, batch, block, jit_compile)
    rng = np.random.default_rng(5)
    return train_lm(
        train,
        lambda: random_windows(ids, block, batch, rng),
        steps,
        estimate,
        max(steps // evals, 1),
        verbose,
    )

# %%
race_x, race_y = random_windows(
    valid_ids, cfg.race_block, cfg.race_windows, np.random.default_rng(4)
)
gpt_racer = build_gpt(
    seed=0, vocab_size=vocab_size, block_size=cfg.race_block, **cfg.race_gpt
)
gru_racer = gru_lm(vocab_size, **cfg.race_gru)


def race(model, settings: dict, jit_compile: bool) -> dict[str, list]:
    """Train ``model`` for the race, scoring the fixed validation windows."""
    score = windows_scorer(model)
    estimate = lambda: {"valid": score(race_x, race_y)}  # noqa: E731
    return train_on_windows(
        model,
        train_ids,
        cfg.race_block,
        settings,
        estimate,
        cfg.race_evals,
        jit_compile,
    )


race_logs = {
    "GPT": race(gpt_racer, cfg.race_gpt_train, jit_compile=True),
    "GRU": race(gru_racer, cfg.race_gru_train, jit_compile=False),
}
race_final = {
    name: split_loss(model, valid_ids, cfg.race_block)
    for name, model in (("GPT", gpt_racer), ("GRU", gru_racer))
}
race_params = {"GPT": gpt_racer.count_params(), "GRU": gru_racer.count_params()}
for name, log in race_logs.items():
    print(
        f"{name}: {race_params[name]:,} parameters, {log['step'][-1]} steps in "
        f"{log['seconds'][-1]:.0f} s, whole validation split {race_final[name]:.4f}"
    )

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.6))
for name, log in race_logs.items():
    label = f"{name} ({race_params[name]:,})"
    ax.plot(log["seconds"], log["valid"], marker="o", label=label)
ax.set(xlabel="seconds of training", ylabel="validation loss (nats per character)")
ax.legend(title="model (parameters)")
glue("fig_gpt_race", fig, display=False)
plt.close(fig)
rates = {}
for name, log in race_logs.items():
    settings, key = cfg[f"race_{name.lower()}_train"], name.lower()
    per_step = settings["batch"] * cfg.race_block
    chars_read = log["step"][-1] * per_step
    rates[name] = (
        (log["step"][-1] - 1) * per_step / log["seconds"][-1]
    )  # clock: no step 1
    glue(f"race_{key}_val", float(race_final[name]), display=False)
    glue(f"race_{key}_seconds", float(log["seconds"][-1]), display=False)
    glue(f"race_{key}_chars", float(chars_read), display=False)
    glue(f"race_{key}_rate", float(rates[name]), display=False)
ahead = min(race_final, key=race_final.get)
glue("race_ahead", ahead, display=False)
glue("race_behind", "GRU" if ahead == "GPT" else "GPT", display=False)
glue("race_margin", abs(race_final["GPT"] - race_final["GRU"]), display=False)
glue("race_faster", max(rates, key=rates.get), display=False)
for name in ("race_block", "race_windows"):
    glue(name, cfg[name], display=False)
glue("race_gpt_layers", cfg.race_gpt["num_layers"], display=False)
glue("race_gpt_width", cfg.race_gpt["d_model"], display=False)
glue("race_gru_units", cfg.race_gru["units"], display=False)
if cfg.name == "quick":
    scope = (
        "The seconds this chapter can spare on two CPU cores are far from chapter 05's"
        " minutes of training, so set these losses beside its figure with that in mind:"
        " the race shows which architecture learns faster in its first seconds."
    )
else:
    scope = "Here both models train for thousands of steps, on a GPU."
glue("race_scope", scope, display=False)

# %%
def last_crossing(a: dict[str, list], b: dict[str, list]) -> tuple[float | None, bool]:
    """The last time (s) at which the validation curves of logs ``a`` and ``b`` cross
    (linear in time between evaluations, after step 0; None if they never do), and
    whether ``a``'s curve is the lower one at the end of their common time."""
    times = np.array(a["seconds"][1:])
    times = times[times <= b["seconds"][-1]]
    gap = np.array(a["valid"][1 : len(times) + 1]) - np.interp(
        times, b["seconds"], b["valid"]
    )
    flips = np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))
    if not flips.size:
        return None, bool(gap[-1] < 0)
    k = flips[-1]
    at = times[k] + (times[k + 1] - times[k]) * gap[k] / (gap[k] - gap[k + 1])
    return float(at), bool(gap[-1] < 0)


crossed, gpt_lower = last_crossing(race_logs["GPT"], race_logs["GRU"])
if crossed is None:
    cross = "neither curve crosses the other after the first evaluation"
else:
    lower = "GPT's" if gpt_lower else "GRU's"
    cross = f"the {lower} curve stays below the other's from about {crossed:.0f} s on"
print(cross)
glue("race_cross_note", cross, display=False)

# %% [markdown]
# ```{glue:figure} fig_gpt_race
# :name: fig-gpt-race
#
# Validation loss against seconds of training for the GPT and the GRU, each scored on the same
# {glue:text}`race_windows:d` validation windows of {glue:text}`race_block:d` characters.
# ```
#
# The GPT ({glue:text}`race_gpt_layers:d` layers) trained for {glue:text}`race_gpt_seconds:.0f` seconds on
# {glue:text}`race_gpt_chars:,.0f` characters, the GRU ({glue:text}`race_gru_units:d` units) for
# {glue:text}`race_gru_seconds:.0f` seconds on {glue:text}`race_gru_chars:,.0f`. Over the whole validation
# split, in windows of {glue:text}`race_block:d`, the GPT costs {glue:text}`race_gpt_val:.3f` nats per
# character and the GRU {glue:text}`race_gru_val:.3f`: the {glue:text}`race_ahead` is ahead by
# {glue:text}`race_margin:.3f` nats, and in {numref}`fig-gpt-race` {glue:text}`race_cross_note`. The GPT read
# {glue:text}`race_gpt_rate:,.0f` characters per second of training, the GRU {glue:text}`race_gru_rate:,.0f`:
# the {glue:text}`race_faster` read more.
# The GPT handles all the positions of a window at once, as a few matrix products; the GRU must take its
# {glue:text}`race_block:d` steps one after another, each a small product that waits for the one before.
# On the quick profile's two CPU cores there is little to run in parallel either way. A GPU runs many
# products at once, which tips the balance towards the Transformer: that is what let Transformers replace
# recurrent networks, and what the full profile measures. {glue:text}`race_scope`

# %% [markdown]
# ## A small compute-scaling experiment
#
# How large should a model be for a given amount of compute? Kaplan et al. {cite:p}`kaplan2020` fitted
# power laws to the loss of language models over seven orders of magnitude and found that, for a fixed
# budget of training FLOPs, a larger model trained on fewer tokens beats a smaller one trained longer, the
# optimal size growing as about $C^{0.73}$; Hoffmann et al. {cite:p}`hoffmann2022` (Chinchilla), tuning the
# schedule to each run's length, found model size and tokens should grow equally, as $C^{0.5}$ each, about
# 20 tokens per parameter. We can afford a toy version: {glue:text}`n_widths:d` widths of nanoGPT's
# architecture (heads of 32 dimensions), each trained for the same {glue:text}`scaling_tflops:.1f` TFLOPs by
# the count above, so the narrow models take many more steps than the wide one.

# %%
scale_x, scale_y = random_windows(
    valid_ids, cfg.nano_block, 256, np.random.default_rng(7)
)


def scaling_run(width: int) -> dict:
    """Train nanoGPT's architecture at ``width`` for ``cfg.scaling_flops`` FLOPs."""
    settings = {**nano_settings, "d_model": width, "num_heads": max(1, width // 32)}
    model = build_gpt(seed=0, **settings)
    n = model.count_params() - cfg.nano_block * width  # as in the MFU count
    per_token = 6 * n + 12 * cfg.nano_layers * cfg.nano_block * width
    tokens_per_step = cfg.scaling_batch * cfg.nano_block
    steps = int(cfg.scaling_flops // (per_token * tokens_per_step))
    optimizer = make_adamw(model, WarmupCosine(1e-3, steps // 10, steps, 1e-4))
    train, _ = make_lm_steps(model, optimizer, cfg.scaling_batch, cfg.nano_block)
    rng = np.random.default_rng(6)
    log = train_lm(
        train,
        lambda: random_windows(train_ids, cfg.nano_block, cfg.scaling_batch, rng),
        steps,
        dict,
        steps,
        verbose=False,
    )
    tokens = steps * tokens_per_step
    return dict(
        width=width,
        parameters=n,
        steps=steps,
        tokens=tokens,
        tokens_per_parameter=tokens / n,
        seconds=log["seconds"][-1],
        valid=windows_loss(model, scale_x, scale_y),
    )


scaling = pd.DataFrame([scaling_run(w) for w in cfg.scaling_widths]).set_index("width")
display(scaling.round(3))

# %%
fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), sharey=True)
for ax, column, label in [
    (axes[0], "parameters", "parameters (without positions)"),
    (axes[1], "tokens", "training tokens"),
]:
    ax.plot(scaling[column], scaling["valid"], marker="o")
    for width, row in scaling.iterrows():
        ax.annotate(
            f"d={width}",
            (row[column], row["valid"]),
            xytext=(6, -3),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set(xscale="log", xlabel=label)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.margins(x=0.15, y=0.1)
axes[0].set_ylabel("validation loss (nats per character)")
glue("fig_gpt_scaling", fig, display=False)
plt.close(fig)
best = int(scaling["valid"].idxmin())
glue("scaling_best", best, display=False)
glue(
    "scaling_best_tpp", float(scaling.loc[best, "tokens_per_parameter"]), display=False
)
glue("scaling_tflops", cfg.scaling_flops / 1e12, display=False)
glue("n_widths", len(cfg.scaling_widths), display=False)
edge = {min(cfg.scaling_widths): "narrowest", max(cfg.scaling_widths): "widest"}
glue(
    "scaling_best_word",
    f"the {edge[best]}" if best in edge else "a middle width",
    display=False,
)
if best in edge:
    edge_note = (
        f"Since the {edge[best]} width wins, the best size for this budget may lie"
        " beyond the range tried."
    )
else:
    edge_note = (
        "The best width lies inside the range tried, which brackets the optimum."
    )
glue("scaling_edge_note", edge_note, display=False)

# %% [markdown]
# ```{glue:figure} fig_gpt_scaling
# :name: fig-gpt-scaling
#
# Validation loss of nanoGPT's architecture at {glue:text}`n_widths:d` widths, each trained for
# {glue:text}`scaling_tflops:.1f` TFLOPs, against its number of parameters (left) and of training tokens
# (right).
# ```
#
# At this budget {glue:text}`scaling_best_word` model, width {glue:text}`scaling_best:d`, reaches the lowest
# loss, having seen {glue:text}`scaling_best_tpp:.0f` training tokens per parameter.
# {glue:text}`scaling_edge_note` A wider model learns
# more from each token but sees fewer of them; the best size for a budget balances the two, which is the
# trade-off Kaplan et al. and Hoffmann et al. measured across many orders of magnitude. Their laws are fitted
# to models of millions to billions of parameters trained on billions of tokens of web text, with learning
# rates and schedules tuned per size; ours are a few runs of tiny models on one megabyte of Shakespeare with
# one learning rate, so they show the shape of the trade-off, not its exponents.

# %% [markdown]
# ## Exercises
#
# 1. **Seeds.** Rerun nanoGPT's recipe with three other seeds for the initial weights (`build_gpt(seed=…)`)
#    and for the batches (`nano_batches(seed=…)`). How far apart are the final validation losses, next to the
#    estimate's standard error and to the gap from nanoGPT's figure?
# 2. **The recipe, one piece at a time.** Train without weight decay, without warm-up, without clipping,
#    and with Keras's default initialisation (`GPT(...)` instead of `build_gpt`), one change at a time. Which
#    piece matters at {glue:text}`nano_iters:,` iterations, and which would you expect to matter only for deeper models?
# 3. **A batch of generations.** The cache has a batch axis. Generate four continuations at once with
#    `cached_forward`, and measure the time per token against four runs one after another.
# 4. **Sliding windows.** Make the context slide one token at a time once it is full. Why does the cache
#    then have to be rebuilt at every step with learned positions, and what about a model whose attention
#    depends only on relative positions?
# 5. **Scaling.** Add a width and a second, four times larger budget to the scaling experiment. Does the best
#    width grow with the budget, and by how much compared with $C^{0.5}$ and $C^{0.73}$?
#
# ## Summary
#
# * GPT is a stack of pre-LN causal Transformer blocks over token and learned position embeddings with an
#   output layer tied to the token embedding; nanoGPT's model in this profile has {glue:text}`n_params:,`
#   parameters,
#   as {eq}`eq-gpt-params` counts, and starts at the uniform guess.
# * nanoGPT's recipe (AdamW with decay on matrices only, warm-up and cosine decay, clipping, random windows)
#   reached {glue:text}`nano_val:.4f` nats per validation character, against nanoGPT's reported
#   {glue:text}`nano_reference:.4f`; a rerun repeats its first steps bit for bit on the same machine.
# * The XLA step took {glue:text}`xla_ms:.1f` ms and the plain step {glue:text}`plain_ms:.1f` ms per
#   iteration here, at an MFU of {glue:text}`mfu_xla:.0f`% and {glue:text}`mfu_plain:.0f`%; `model.fit`
#   cannot use XLA while op determinism is on.
# * A preallocated key-value cache gives exactly the greedy tokens of recomputation and was
#   {glue:text}`kv_speedup:.1f` times as fast for {glue:text}`speed_tokens:d` tokens at block
#   {glue:text}`nano_block:d`, and {glue:text}`long_speedup:.1f` times for {glue:text}`long_tokens:d` tokens
#   at block {glue:text}`long_block:,`.
# * After {glue:text}`race_gpt_seconds:.0f` s (GPT) and {glue:text}`race_gru_seconds:.0f` s (GRU) of
#   training, the {glue:text}`race_ahead` was ahead of the {glue:text}`race_behind` by
#   {glue:text}`race_margin:.3f` nats; at a fixed compute budget of {glue:text}`scaling_tflops:.1f` TFLOPs
#   the best of {glue:text}`n_widths:d` widths was {glue:text}`scaling_best:d`.
# * `lmlib.gpt` holds the model, its initialisation, the optimizer, the schedule, the training loop, the
#   losses and the two generators, for chapters 10 and 11.
