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
# # Text generation with a GRU
#
# We train a character-level GRU language model on Tiny Shakespeare within a few CPU minutes, measure it in
# bits per character against a Kneser–Ney 5-gram and a BPE-token variant, and generate text with a one-step
# model that carries the recurrent state. We implement greedy, temperature, top-k and nucleus sampling in
# `lmlib.generate` and measure what each does to the samples.

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
# The setup cell seeds Python, NumPy, Keras and TensorFlow, makes TensorFlow's kernels deterministic (a rerun
# prints the same losses) and shows the active profile. The quick profile trains a small GRU for a fixed number
# of steps (about three minutes on two CPU cores); the full profile trains the model of the TensorFlow text
# generation tutorial (embedding 256, GRU 1024, batch 64) for many more steps.

# %%
import math
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from myst_nb import glue

from lmlib.data import fetch
from lmlib.ngram import KneserNeyLM
from lmlib.plot import plot_history, use_style
from lmlib.profiles import setup_chapter
from lmlib.text import BPE

cfg = setup_chapter(
    "05",
    quick=dict(
        embed_dim=64,
        units=256,
        batch_size=128,
        seq_len=100,
        learning_rate=1e-2,
        epochs=7,
        steps_per_epoch=100,
        bpe_merges=500,
        bpe_epochs=2,
        sample_chars=400,
    ),
    full=dict(
        embed_dim=256,
        units=1024,
        batch_size=64,
        seq_len=100,
        learning_rate=1e-3,
        epochs=30,
        steps_per_epoch=150,
        bpe_merges=1000,
        bpe_epochs=10,
        sample_chars=1000,
    ),
    keras=True,
)
use_style()

import keras  # noqa: E402  (imported after setup_chapter has set the backend and quieted TensorFlow)
import tensorflow as tf  # noqa: E402

# %% [markdown]
# ## A character-level language model
#
# A character-level language model predicts each character $c_t$ of a text from the characters before it,
# and by the chain rule its probability of the whole text is the product of these predictions:
#
# $$
# P(c_1, \dots, c_N) = \prod_{t=1}^{N} P(c_t \mid c_1, \dots, c_{t-1}).
# $$ (eq-gen-chain-rule)
#
# Our model embeds each character id $x_t$ (a vector $e_t \in \mathbb{R}^{E}$), runs a GRU (chapter 04) over
# the embeddings, and maps every hidden state $h_t \in \mathbb{R}^{H}$ to $V$ logits, one per character of the
# vocabulary:
#
# $$
# h_t = \mathrm{GRU}(e_t, h_{t-1}), \qquad z_t = W h_t + b, \qquad
# P(c_{t+1} = v \mid c_{\le t}) = \mathrm{softmax}(z_t)_v = \frac{e^{z_{t,v}}}{\sum_{u=1}^{V} e^{z_{t,u}}},
# $$ (eq-gen-model)
#
# with $h_0 = 0$ and $W \in \mathbb{R}^{V \times H}$. Shapes for a batch: ids (batch, $T$) → embeddings
# (batch, $T$, $E$) → hidden states (batch, $T$, $H$) → logits (batch, $T$, $V$). Training minimises the
# cross-entropy of the next character, in nats (natural logarithm) per character; the same number divided by
# $\ln 2$ is the **bits per character** (BPC), the usual unit for character models and the one that lets us
# compare models with different tokens:
#
# $$
# \mathcal{L} = -\frac{1}{N}\sum_{t=1}^{N} \ln P(c_t \mid c_{<t}) \ \text{nats/char}, \qquad
# \mathrm{BPC} = \frac{\mathcal{L}}{\ln 2}.
# $$ (eq-gen-bpc)
#
# A uniform guess among the {glue:text}`n_vocab_chars` characters of Tiny Shakespeare costs
# {glue:text}`uniform_bits:.2f` bits per character. Generating text from such a model, one sampled character at
# a time, is an old idea {cite:p}`sutskever2011,graves2013`; Karpathy's char-rnn {cite:p}`karpathy2015` made it
# popular, with the data set we use.

# %% [markdown]
# ## Tiny Shakespeare and a `tf.data` pipeline
#
# Tiny Shakespeare {cite:p}`karpathy2015` is about a million characters of Shakespeare's plays. We split it
# by position: the first 90% for training, the last 10% for validation (no shuffling of lines, so validation
# is text the model has never seen, from later plays). The vocabulary is the set of characters of the
# training part; the cell asserts that validation uses no other.

# %%
text = fetch("tinyshakespeare", "input.txt").read_text(encoding="utf-8")
split_at = int(0.9 * len(text))
train_text, valid_text = text[:split_at], text[split_at:]
chars = sorted(set(train_text))
char_to_id = {c: i for i, c in enumerate(chars)}
assert set(valid_text) <= set(chars)
train_ids = np.array([char_to_id[c] for c in train_text], np.int32)
valid_ids = np.array([char_to_id[c] for c in valid_text], np.int32)
print(
    f"{len(text):,} characters: train {len(train_text):,}, validation {len(valid_text):,}; "
    f"vocabulary {len(chars)} characters: {''.join(chars)!r}"
)
glue("n_chars_train", len(train_text), display=False)
glue("n_chars_valid", len(valid_text), display=False)
glue("n_vocab_chars", len(chars), display=False)
glue("uniform_bits", math.log2(len(chars)), display=False)

# %% [markdown]
# The model learns from windows of $T$ = `seq_len` characters: the input is `ids[i : i+T]` and the target is
# the same window shifted by one, `ids[i+1 : i+T+1]`, so every position is a next-character prediction. Windows
# start every $T$ characters, so each character is a target exactly once per pass. The training pipeline
# shuffles the windows with a fixed seed (a new order every pass, the same orders on every run), repeats,
# batches and prefetches; validation windows are read in order. The function works on any array of token ids;
# we reuse it for BPE tokens below.

# %%
def window_dataset(
    ids: np.ndarray, seq_len: int, batch_size: int, shuffle: bool, seed: int = 0
) -> tf.data.Dataset:
    """Batches of (input, target) windows: target = input shifted by one token, windows every seq_len tokens."""
    ids_tensor = tf.constant(ids, tf.int32)
    num_windows = (len(ids) - 1) // seq_len

    def window(k):  # k-th window: ids[k*T : k*T + T] and ids[k*T + 1 : k*T + T + 1]
        start = k * seq_len
        return ids_tensor[start : start + seq_len], ids_tensor[
            start + 1 : start + seq_len + 1
        ]

    ds = tf.data.Dataset.range(num_windows)
    if shuffle:
        ds = ds.shuffle(num_windows, seed=seed, reshuffle_each_iteration=True).repeat()
    return (
        ds.map(window, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


train_ds = window_dataset(train_ids, cfg.seq_len, cfg.batch_size, shuffle=True, seed=1)
valid_ds = window_dataset(valid_ids, cfg.seq_len, 256, shuffle=False)
x, y = next(iter(train_ds))
print("batch shapes:", x.shape, y.shape)
print("input :", repr("".join(chars[i] for i in x[0, :40].numpy())))
print("target:", repr("".join(chars[i] for i in y[0, :40].numpy())))
assert np.array_equal(x[:, 1:], y[:, :-1])

# %% [markdown]
# ## A model sized for the budget
#
# The TensorFlow text-generation tutorial trains embedding 256 → GRU 1024 → Dense. The cost of a GRU step
# grows with $H^2$ (three $H \times H$ recurrent matrices, chapter 04), and the $T$ steps of a window run one
# after the other, so on a CPU a wide GRU is slow per batch. What matters on a fixed budget is how fast the
# validation loss falls *per second*, and a smaller model that sees many more characters wins long before the
# wide one's extra capacity pays off. The cell below times one training step (forward, backward, update, on a
# real batch) for three widths.

# %%
def build_char_model(vocab_size: int, embed_dim: int, units: int) -> keras.Model:
    """Embedding -> GRU -> Dense: (batch, T) ids in, (batch, T, vocab_size) logits out.

    The GRU returns its sequence *and* its final state; the training model ignores the state, the one-step
    generator below reuses the same layers and feeds the state back in.
    """
    ids = keras.Input((None,), dtype="int32", name="ids")
    embeddings = keras.layers.Embedding(vocab_size, embed_dim, name="embedding")(ids)
    hidden, _ = keras.layers.GRU(
        units, return_sequences=True, return_state=True, name="gru"
    )(embeddings)
    logits = keras.layers.Dense(vocab_size, name="logits")(hidden)
    return keras.Model(ids, logits, name=f"char_gru_{units}")


def seconds_per_step(
    units: int, embed_dim: int, batch_size: int, repeats: int = 2
) -> float:
    """Wall-clock seconds of one training step of a fresh model on one batch (after a warm-up step)."""
    model = build_char_model(len(chars), embed_dim, units)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    batch_ds = window_dataset(
        train_ids[: batch_size * 101], cfg.seq_len, batch_size, shuffle=False
    ).take(1)
    x_batch, y_batch = next(iter(batch_ds))
    model.train_on_batch(x_batch, y_batch)  # builds and traces the step
    start = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(x_batch, y_batch)
    return (time.perf_counter() - start) / repeats


step_times = pd.DataFrame(
    [
        dict(units=u, batch_size=b, seconds_per_step=seconds_per_step(u, e, b))
        for u, e, b in [(256, 64, 128), (512, 64, 64), (1024, 256, 64)]
    ]
)
step_times["characters_per_second"] = (
    step_times.batch_size * cfg.seq_len / step_times.seconds_per_step
)
display(
    step_times.style.format(
        {"seconds_per_step": "{:.2f}", "characters_per_second": "{:,.0f}"}
    )
)
for row in step_times.itertuples():
    glue(f"step_s_{row.units}", float(row.seconds_per_step), display=False)
    glue(f"step_cps_{row.units}", float(row.characters_per_second), display=False)
glue(
    "step_speed_ratio",
    float(
        step_times.characters_per_second.iloc[0]
        / step_times.characters_per_second.iloc[2]
    ),
    display=False,
)

# %% [markdown]
# On this machine a step of the tutorial's GRU-1024 took {glue:text}`step_s_1024:.2f` s
# ({glue:text}`step_cps_1024:,.0f` characters per second), GRU-512 {glue:text}`step_s_512:.2f` s and GRU-256
# with twice the batch {glue:text}`step_s_256:.2f` s: the small model reads
# {glue:text}`step_speed_ratio:.0f` times as many characters per second (timings vary from run to run, and
# with whatever else the machine is doing). In the {glue:text}`train_minutes:.1f` minutes that the quick
# profile trains, the tutorial's model would read about {glue:text}`tutorial_passes:.1f` passes over the
# training text at this speed, the small one {glue:text}`train_passes:.1f`. This run therefore uses a GRU of
# {glue:text}`units` units with an embedding of {glue:text}`embed_dim` and batches of {glue:text}`batch_size`.
# The quick profile also uses a learning rate ten times Adam's default (a short run cannot afford a slow start;
# in our trial runs 3e-3 ended clearly worse than 1e-2); both profiles decay the learning rate to a tenth over
# the run with a cosine and clip the global gradient norm at 1 (chapter 04), which keeps large steps stable.

# %%
def compile_for_budget(
    model: keras.Model, learning_rate: float, total_steps: int
) -> keras.Model:
    """Adam with a cosine learning-rate decay to 10% over ``total_steps``, clipping the global gradient norm at 1."""
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, decay_steps=total_steps, alpha=0.1
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, global_clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def epoch_logger(
    name: str, unit_nats_to_bits: float = 1 / math.log(2)
) -> keras.callbacks.Callback:
    """One compact log line per epoch: losses in nats per token and validation bits per character."""
    start = time.perf_counter()
    return keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: print(
            f"{name} epoch {epoch + 1:2d}: loss {logs['loss']:.3f}, val_loss {logs['val_loss']:.3f} nats "
            f"({logs['val_loss'] * unit_nats_to_bits:.3f} bits/char), {time.perf_counter() - start:.0f} s"
        )
    )


glue("units", cfg.units, display=False)
glue("embed_dim", cfg.embed_dim, display=False)
glue("batch_size", cfg.batch_size, display=False)
glue("seq_len", cfg.seq_len, display=False)
char_model = compile_for_budget(
    build_char_model(len(chars), cfg.embed_dim, cfg.units),
    cfg.learning_rate,
    cfg.epochs * cfg.steps_per_epoch,
)
char_model.summary(line_length=90)

# %% [markdown]
# Training runs for a fixed number of steps (not a fixed time: a rerun must give the same model), with one log
# line per "epoch" of `steps_per_epoch` batches.

# %%
cpu_start, wall_start = time.process_time(), time.perf_counter()
char_history = char_model.fit(
    train_ds,
    epochs=cfg.epochs,
    steps_per_epoch=cfg.steps_per_epoch,
    validation_data=valid_ds,
    verbose=0,
    shuffle=False,
    callbacks=[epoch_logger("char GRU")],
)
train_seconds = time.perf_counter() - wall_start
train_cpu_seconds = time.process_time() - cpu_start
train_chars = cfg.epochs * cfg.steps_per_epoch * cfg.batch_size * cfg.seq_len
print(
    f"{train_chars:,} training characters in {train_seconds:.0f} s ({train_cpu_seconds:.0f} CPU-s): "
    f"{train_chars / train_seconds:,.0f} characters/s"
)

# %% [markdown]
# Keras averages the validation loss over batches; for the final numbers we sum the exact negative
# log-likelihood of every validation target (all windows are full, so nothing is weighted twice).

# %%
def dataset_nll(model: keras.Model, ds: tf.data.Dataset) -> tuple[float, int]:
    """Total negative log-likelihood (nats) of all targets of ``ds`` under ``model``, and the number of targets."""

    @tf.function
    def batch_nll(x_batch, y_batch):
        logits = model(x_batch, training=False)
        losses = keras.losses.sparse_categorical_crossentropy(
            y_batch, logits, from_logits=True
        )
        return tf.reduce_sum(tf.cast(losses, tf.float64))

    total, count = 0.0, 0
    for x_batch, y_batch in ds:
        total += float(batch_nll(x_batch, y_batch))
        count += int(tf.size(y_batch))
    return total, count


valid_nll, valid_targets = dataset_nll(char_model, valid_ds)
char_val_nats = valid_nll / valid_targets
char_val_bits = char_val_nats / math.log(2)
print(
    f"validation: {valid_targets:,} characters, {char_val_nats:.4f} nats/char = {char_val_bits:.4f} bits/char"
)
assert char_val_nats <= 1.65, (
    f"validation loss {char_val_nats:.3f} misses the target of 1.65 nats/char"
)
glue("char_val_nats", float(char_val_nats), display=False)
glue("char_val_bits", float(char_val_bits), display=False)
glue("valid_targets", int(valid_targets), display=False)
glue("train_seconds", float(train_seconds), display=False)
glue("train_minutes", float(train_seconds / 60), display=False)
glue("train_chars", int(train_chars), display=False)
glue("train_passes", float(train_chars / len(train_text)), display=False)
glue("train_chars_per_s", float(train_chars / train_seconds), display=False)
glue(
    "tutorial_passes",
    float(train_seconds * step_times.characters_per_second.iloc[2] / len(train_text)),
    display=False,
)

# %% [markdown]
# ## Reading the validation text as one stream
#
# Each validation window starts from a zero state, so the first characters of every window are predicted with
# almost no context: the windowed loss understates what the model knows. A fair measure, and the one we
# compare with other models, reads the validation text as one stream and carries the state along. For that
# we build a *stateful twin* of the trained model from the same layer objects (so it shares their weights):
# it takes a chunk of token ids and a state and returns the logits and the new state. We feed the validation
# text in chunks of 1,000 characters, the last training character first, so that every one of the
# {glue:text}`n_chars_valid:,` validation characters is predicted. The same twin, with chunks of one token,
# is the generator of the next sections.

# %%
def build_step_model(model: keras.Model) -> keras.Model:
    """A stateful twin of ``model`` sharing its layers: ([ids (batch, t), state (batch, H)]) ->
    [logits (batch, t, V), new state (batch, H)]; with t = 1 it is one generation step."""
    gru = model.get_layer("gru")
    token = keras.Input((None,), dtype="int32", name="ids")
    state = keras.Input((gru.units,), name="state")
    hidden, new_state = gru(model.get_layer("embedding")(token), initial_state=state)
    return keras.Model(
        [token, state],
        [model.get_layer("logits")(hidden), new_state],
        name="step_model",
    )


def make_step_fn(step_model: keras.Model):
    """A ``step_fn(token_id, state) -> (logits (V,), state)`` for ``generate``; the state stays a tensor."""

    @tf.function
    def step(token, state):
        logits, new_state = step_model([token, state], training=False)
        return logits[:, 0], new_state

    def step_fn(token_id: int, state):
        logits, new_state = step(tf.constant([[token_id]], tf.int32), state)
        return logits.numpy()[0], new_state

    return step_fn


def streaming_nll(
    step_model: keras.Model, first_input: int, ids: np.ndarray, chunk: int = 1000
) -> float:
    """Total negative log-likelihood (nats) of ``ids`` read as one stream with the state carried;
    ``ids[0]`` is predicted after ``first_input`` (the token that precedes the text)."""
    run = tf.function(lambda x, s: step_model([x, s], training=False))
    inputs = np.concatenate([[first_input], ids[:-1]]).astype(np.int32)[
        None
    ]  # (1, len(ids))
    state, total = tf.zeros((1, step_model.get_layer("gru").units)), 0.0
    for start in range(0, len(ids), chunk):
        logits, state = run(tf.constant(inputs[:, start : start + chunk]), state)
        losses = keras.losses.sparse_categorical_crossentropy(
            ids[None, start : start + chunk], logits, from_logits=True
        )
        total += float(tf.reduce_sum(tf.cast(losses, tf.float64)))
    return total


# %%
char_step_model = build_step_model(char_model)
start = time.perf_counter()
char_stream_bits = (
    streaming_nll(char_step_model, int(train_ids[-1]), valid_ids)
    / math.log(2)
    / len(valid_ids)
)
print(
    f"one stream: {char_stream_bits:.4f} bits/char over all {len(valid_ids):,} validation characters "
    f"(windows of {cfg.seq_len}: {char_val_bits:.4f}); {time.perf_counter() - start:.1f} s"
)
glue("char_stream_bits", float(char_stream_bits), display=False)
glue("char_stream_nats", float(char_stream_bits * math.log(2)), display=False)
glue("stream_gain_bits", float(char_val_bits - char_stream_bits), display=False)

# %% [markdown]
# ## A baseline: the character 5-gram with Kneser–Ney smoothing
#
# What does the GRU buy over counting? Chapter 02's `KneserNeyLM` works on any tokens, so we fit a modified
# Kneser–Ney 5-gram {cite:p}`kneser1995,chen1998` on the *characters* of the training text. To count exactly
# the characters of the validation text, we treat each part as a single sequence (newlines are ordinary
# characters, so the context crosses line ends as the GRU's does) and drop the log-probability of the one
# `</s>` that the n-gram code appends at the end; the number of scored predictions is then exactly the number
# of validation characters. (`</s>` also takes a sliver of probability mass from the characters; with one
# occurrence in training it is negligible.)

# %%
start = time.perf_counter()
kn5 = KneserNeyLM(5, modified=True).fit([list(train_text)])
kn_logprobs = kn5.token_logprobs([list(valid_text)])[:-1]  # drop the final </s>
assert len(kn_logprobs) == len(valid_text) and np.isfinite(kn_logprobs).all()
kn_bits = float(-kn_logprobs.mean() / math.log(2))
kn_seconds = time.perf_counter() - start
print(
    f"5-gram modified Kneser-Ney: {kn_bits:.4f} bits/char on {len(kn_logprobs):,} validation characters "
    f"({kn_seconds:.1f} s to fit and score)"
)
glue("kn_seconds", float(kn_seconds), display=False)
assert char_stream_bits < kn_bits
glue("kn_bits", kn_bits, display=False)
glue("kn_nats", kn_bits * math.log(2), display=False)
glue("gru_gain_bits", float(kn_bits - char_stream_bits), display=False)
glue(
    "gru_gain_percent",
    float(100 * (kn_bits - char_stream_bits) / kn_bits),
    display=False,
)

# %% [markdown]
# The training curves, with the 5-gram's level for reference (dotted grey).

# %%
fig, ax = plt.subplots()
plot_history(
    char_history,
    ax=ax,
    xlabel=f"epoch ({cfg.steps_per_epoch} steps of {cfg.batch_size} × "
    f"{cfg.seq_len} characters)",
    ylabel="cross-entropy (nats/char)",
)
ax.axhline(
    kn_bits * math.log(2),
    color="grey",
    linestyle=":",
    label="5-gram Kneser–Ney (validation)",
)
ax.legend()
glue("fig_gen_char_loss", fig, display=False)
plt.close(fig)

# %% [markdown]
# ```{glue:figure} fig_gen_char_loss
# :name: fig-gen-char-loss
# :figwidth: 90%
#
# Training (solid, the mean over each epoch's steps) and validation (dashed) cross-entropy of the character
# GRU on Tiny Shakespeare, in nats per character, and the validation cross-entropy of the 5-gram Kneser–Ney
# model (dotted).
# ```
#
# After {glue:text}`train_minutes:.1f` minutes of training ({glue:text}`train_chars:,` characters, about
# {glue:text}`train_passes:.1f` passes over the training text, {glue:text}`train_chars_per_s:,.0f` characters
# per second on this machine) the GRU reaches a validation loss of {glue:text}`char_val_nats:.3f` nats per
# character, {glue:text}`char_val_bits:.3f` bits per character, measured on {glue:text}`valid_targets:,` of the
# {glue:text}`n_chars_valid:,` validation characters in windows of {glue:text}`seq_len` (the first character
# and the last incomplete window are not predicted). Read as one stream, with the state carried, the
# validation text costs it {glue:text}`char_stream_bits:.3f` bits per character
# ({glue:text}`char_stream_nats:.3f` nats), {glue:text}`stream_gain_bits:.3f` bits less than in windows: that
# is what the zero state at the start of every window costs. The 5-gram model, fitted and scored in {glue:text}`kn_seconds:.1f` s, needs
# {glue:text}`kn_bits:.3f` bits per character on the same characters; the GRU saves
# {glue:text}`gru_gain_bits:.3f` bits per character ({glue:text}`gru_gain_percent:.1f`%).

# %% [markdown]
# ## Generation done right: carry the state
#
# To generate, we feed a prompt, turn the last logits into a next character, feed that character, and so on.
# A recurrent model summarises everything it has read in its state $h_t$ {eq}`eq-gen-model`, so each new
# character costs **one** GRU step: feed $(c_t, h_{t-1})$, get $(z_t, h_t)$. Re-reading the whole prefix for
# every new character (what a model without state access must do) gives the same logits at a cost that grows
# with the length of the text, $O(n^2)$ steps for $n$ characters instead of $O(n)$.
#
# The stateful twin built above does exactly this when it is given chunks of one token. `make_step_fn` wraps
# it as a step function for `lmlib.generate` (below): one token id and a state in, a vector of logits and the
# new state out, with the model call compiled once by `tf.function`.

# %%
char_step = make_step_fn(char_step_model)
zero_state = tf.zeros((1, cfg.units))

# %% [markdown]
# The check: run 300 validation characters through the training model in one call, and through the one-step
# model one character at a time with the state carried; the logits must agree at every position.

# %%
check_ids = valid_ids[:300]
full_logits = char_model(check_ids[None], training=False)[0].numpy()  # (300, V)
state, step_logits = zero_state, []
for token_id in check_ids:
    logits, state = char_step(int(token_id), state)
    step_logits.append(logits)
state_diff = float(np.abs(np.array(step_logits) - full_logits).max())
print(
    f"max |full-sequence logits - one-step logits| over {len(check_ids)} positions: {state_diff:.2e}"
)
assert state_diff <= 1e-5
glue("state_diff", state_diff, display=False)

# %% [markdown]
# ## Decoding: greedy, temperature, top-k and nucleus sampling
#
# Given the logits $z$ of the next token, **greedy decoding** picks $\arg\max_v z_v$. Sampling draws from the
# softmax instead, usually reshaped. The **temperature** $\tau > 0$ divides the logits,
#
# $$
# p_v(\tau) = \frac{\exp(z_v / \tau)}{\sum_{u} \exp(z_u / \tau)},
# $$ (eq-gen-temperature)
#
# so $\tau = 1$ is the model's own distribution, $\tau < 1$ sharpens it (as $\tau \to 0$ all mass goes to the
# argmax: greedy) and $\tau > 1$ flattens it {cite:p}`graves2013`. **Top-k** sampling {cite:p}`fan2018` keeps
# the $k$ most probable tokens and renormalises. **Nucleus (top-p)** sampling {cite:p}`holtzman2020` keeps the
# smallest set of most probable tokens whose probability reaches $p$: with the tokens sorted so that
# $p_{(1)} \ge p_{(2)} \ge \dots$,
#
# $$
# V^{(p)} = \{(1), \dots, (m)\}, \qquad m = \min\Bigl\{j : \sum_{i=1}^{j} p_{(i)} \ge p\Bigr\},
# \qquad P'(v) = \frac{p_v}{\sum_{u \in V^{(p)}} p_u} \ [v \in V^{(p)}],
# $$ (eq-gen-top-p)
#
# so it keeps few tokens where the model is confident and many where it is not, which a fixed $k$ cannot do.
# Truncation cuts off the long tail of unlikely tokens, each rare on its own but together likely enough to
# derail a long sample.
#
# To see what a decoding rule does we measure each sample three ways: its **mean log-probability** under the
# model (temperature 1, no truncation; high means "typical for the model" or, near 0, "repetitive"),
# **distinct-2**, the number of distinct word bigrams divided by the number of word bigrams
# {cite:p}`li2016` (low means repetition), and the **repetition rate**, the fraction of word 4-grams that
# already occurred earlier in the same sample {cite:p}`welleck2020` (high means loops).
#
# The functions below work on logits and token ids only, with no reference to Keras or to GRUs: `generate`
# takes any step function (token, state) → (logits, state), so the GPT chapter reuses them with a key-value
# cache as the state. They go to `lmlib.generate`.

# %%
# lmlib: generate
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities from logits along the last axis, computed stably (max subtracted first)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def greedy(logits: np.ndarray) -> int:
    """The most probable token of a 1-D vector of logits (the lowest index among exact ties)."""
    return int(np.argmax(logits))


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` largest logits of a 1-D vector and set the others to ``-inf``.

    Exactly ``k`` tokens survive (all of them if ``k`` is at least the vocabulary size); among tokens tied at
    the boundary the lower indices are kept, so the result never depends on sorting noise.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if k < 1:
        raise ValueError(f"top_k must be at least 1, not {k}")
    if k >= logits.size:
        return logits.copy()
    order = np.argsort(-logits, kind="stable")  # descending, ties by index
    filtered = np.full_like(logits, -np.inf)
    filtered[order[:k]] = logits[order[:k]]
    return filtered


def top_p_filter(logits: np.ndarray, p: float, tolerance: float = 1e-9) -> np.ndarray:
    """Nucleus filtering: keep the smallest set of most probable tokens whose total probability is >= ``p``.

    Tokens are taken in order of decreasing probability (ties by lower index) until the cumulative probability
    reaches ``p`` (to within ``tolerance``, so that rounding in the softmax cannot add a token when the sum hits
    ``p`` exactly); at least one token is always kept. The others are set to ``-inf``. ``p >= 1`` keeps all.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if not 0.0 < p:
        raise ValueError(f"top_p must be in (0, 1], not {p}")
    if p >= 1.0:
        return logits.copy()
    order = np.argsort(-logits, kind="stable")
    probs = np.exp(log_softmax(logits))[order]
    mass_before = np.concatenate(
        [[0.0], np.cumsum(probs)[:-1]]
    )  # probability of the tokens ranked higher
    keep = order[mass_before < p - tolerance]
    keep = keep if keep.size else order[:1]
    filtered = np.full_like(logits, -np.inf)
    filtered[keep] = logits[keep]
    return filtered


def sample_logits(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> int:
    """Draw one token from 1-D ``logits`` after temperature scaling, then top-k, then top-p filtering.

    ``temperature == 0`` is greedy decoding. Sampling uses one uniform number from ``rng`` (a
    ``numpy.random.Generator``; default ``np.random.default_rng()``) and the inverse of the cumulative
    distribution, so a seeded generator gives the same token on every run.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if temperature == 0:
        return greedy(logits)
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    if top_p is not None:
        scaled = top_p_filter(scaled, top_p)
    probs = np.exp(log_softmax(scaled))
    cumulative = np.cumsum(probs)
    rng = np.random.default_rng() if rng is None else rng
    index = int(
        np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")
    )
    return min(
        index, int(np.flatnonzero(probs)[-1])
    )  # guard against rounding at the top end


class Generation(NamedTuple):
    """What :func:`generate` returns: the new token ids, the model's log-probability of each (natural log,
    under the unmodified distribution: temperature 1, no filtering) and the state after the last token fed
    (the last generated token has not been fed; continue with ``prompt_ids=[ids[-1]]``)."""

    ids: list[int]
    logprobs: np.ndarray
    state: Any


def generate(
    step_fn: Callable[[int, Any], tuple[np.ndarray, Any]],
    state: Any,
    prompt_ids: Sequence[int],
    n: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> Generation:
    """Generate ``n`` tokens after ``prompt_ids`` with a step function that carries the model's state.

    ``step_fn(token_id, state) -> (logits, new_state)`` feeds one token and returns the 1-D logits of the next
    one; the state (a recurrent state, a key-value cache, ...) is whatever the model needs to continue without
    re-reading the prefix. The prompt (at least one token) is fed token by token, then each new token is chosen
    by :func:`sample_logits` (``temperature=0`` is greedy) and fed back. Cost: ``len(prompt_ids) + n - 1`` steps.
    """
    if len(prompt_ids) == 0:
        raise ValueError(
            "generate needs a prompt of at least one token (e.g. a newline or a start token)"
        )
    for token in prompt_ids:
        logits, state = step_fn(int(token), state)
    ids, logprobs = [], []
    for i in range(n):
        token = sample_logits(logits, temperature, top_k, top_p, rng)
        ids.append(token)
        logprobs.append(float(log_softmax(logits)[token]))
        if i < n - 1:
            logits, state = step_fn(token, state)
    return Generation(ids, np.array(logprobs), state)


def distinct_n(tokens: Sequence[Any], n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): the number of distinct n-grams divided by the number of n-grams.

    1.0 means no n-gram occurs twice; 0.0 is returned for a sequence shorter than ``n``.
    """
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(tokens: Sequence[Any], n: int = 4) -> float:
    """The fraction of n-grams that repeat an n-gram seen earlier in the same sequence (seq-rep-n of
    Welleck et al., 2020); equal to ``1 - distinct_n(tokens, n)``. 0.0 means no repetition."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    seen: set = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else 0.0

# %% [markdown]
# First the cost of re-reading. The "state" of the re-reading step function is the list of tokens so far,
# and each step runs the training model over all of it. Greedy decoding must give the same text both ways.

# %%
@tf.function(input_signature=[tf.TensorSpec((1, None), tf.int32)])
def last_logits(prefix_ids):
    return char_model(prefix_ids, training=False)[:, -1]


def reread_step(token_id: int, prefix: list[int]):
    """step_fn whose state is the whole prefix: every step re-reads it from the start."""
    prefix = prefix + [token_id]
    return last_logits(tf.constant([prefix], tf.int32)).numpy()[0], prefix


prompt, reread_chars = "ROMEO:\n", 200
prompt_ids = [char_to_id[c] for c in prompt]
timings = {}
for name, step_fn, state in [
    ("state carried", char_step, zero_state),
    ("prefix re-read", reread_step, []),
]:
    start = time.perf_counter()
    generated = generate(step_fn, state, prompt_ids, reread_chars, temperature=0)
    timings[name] = (time.perf_counter() - start, generated.ids)
assert timings["state carried"][1] == timings["prefix re-read"][1]
reread_slowdown = timings["prefix re-read"][0] / timings["state carried"][0]
print(
    {name: f"{seconds:.2f} s" for name, (seconds, _) in timings.items()},
    f"same text; re-reading is {reread_slowdown:.1f}x slower for {reread_chars} characters",
)
glue("reread_slowdown", float(reread_slowdown), display=False)
glue("reread_chars", reread_chars, display=False)

# %% [markdown]
# Both produce the same {glue:text}`reread_chars` characters, and re-reading is already
# {glue:text}`reread_slowdown:.0f` times slower at this length; the gap grows linearly with the length.
#
# Now the samples: the same prompt and seed at each setting (a fresh `numpy` generator with seed 0 for every
# row, so a rerun writes the same text).

# %%
train_words = set(re.findall(r"[a-z']+", train_text.lower()))
settings = {
    "greedy": dict(temperature=0.0),
    "T = 0.5": dict(temperature=0.5),
    "T = 1.0": dict(temperature=1.0),
    "T = 1.5": dict(temperature=1.5),
    "top-k = 10": dict(temperature=1.0, top_k=10),
    "top-p = 0.9": dict(temperature=1.0, top_p=0.9),
}


def sample_properties(sample: str, logprobs: np.ndarray) -> dict:
    """Mean log-probability per character, distinct-2 and 4-gram repetition rate of the words, known words."""
    words = sample.split()
    plain_words = re.findall(r"[a-z']+", sample.lower())
    return {
        "mean log-prob (nats/char)": float(logprobs.mean()),
        "distinct-2": distinct_n(words, 2),
        "repetition rate (4-grams)": repetition_rate(words, 4),
        "known words (%)": 100
        * float(np.mean([w in train_words for w in plain_words])),
    }


samples, rows = {}, {}
for name, options in settings.items():
    generated = generate(
        char_step,
        zero_state,
        prompt_ids,
        cfg.sample_chars,
        rng=np.random.default_rng(0),
        **options,
    )
    samples[name] = "".join(chars[i] for i in generated.ids)
    rows[name] = sample_properties(samples[name], generated.logprobs)
sample_table = pd.DataFrame.from_dict(rows, orient="index")
display(sample_table.style.format("{:.2f}"))

# %% [markdown]
# The asserts below keep the statements that follow true; then the samples themselves, cut to 300 characters.

# %%
glue("tab_gen_samples", sample_table.style.format("{:.2f}"), display=False)
for name, key in [
    ("greedy", "greedy"),
    ("T = 0.5", "t05"),
    ("T = 1.0", "t10"),
    ("T = 1.5", "t15"),
    ("top-k = 10", "topk"),
    ("top-p = 0.9", "topp"),
]:
    for column, short in [
        ("mean log-prob (nats/char)", "lp"),
        ("distinct-2", "d2"),
        ("repetition rate (4-grams)", "rep"),
        ("known words (%)", "known"),
    ]:
        glue(
            f"sample_{key}_{short}",
            float(sample_table.loc[name, column]),
            display=False,
        )
assert (
    sample_table.loc["greedy", "repetition rate (4-grams)"]
    > sample_table.loc["T = 1.0", "repetition rate (4-grams)"]
)
assert (
    sample_table.loc["greedy", "mean log-prob (nats/char)"]
    > sample_table.loc["T = 0.5", "mean log-prob (nats/char)"]
    > sample_table.loc["T = 1.0", "mean log-prob (nats/char)"]
    > sample_table.loc["T = 1.5", "mean log-prob (nats/char)"]
)
known = sample_table["known words (%)"]
assert (
    known["T = 1.5"] < known["T = 1.0"] < known["T = 0.5"]
    and min(known["top-k = 10"], known["top-p = 0.9"]) > known["T = 1.0"]
)
for name in ["greedy", "T = 0.5", "top-p = 0.9", "T = 1.5"]:
    print(f"--- {name} ---\n{prompt}{samples[name][:300]}\n")

# %% [markdown]
# ```{glue:figure} tab_gen_samples
# :name: tab-gen-samples
#
# Properties of samples from the character GRU after the prompt "ROMEO:", one row per decoding rule (same
# prompt, same seed, equal length): mean log-probability per character under the model, distinct-2 and
# repetition rate of word 4-grams (both over whitespace-separated words), and the percentage of words that
# occur in the training text.
# ```
#
# Greedy decoding writes the text the model finds most likely, character by character (mean log-probability
# {glue:text}`sample_greedy_lp:.2f` nats per character), and that is exactly its problem: it falls into a
# loop, and {glue:text}`sample_greedy_rep:.2f` of its word 4-grams repeat an earlier one (distinct-2
# {glue:text}`sample_greedy_d2:.2f`). Sampling at $\tau = 1$ has no loops (repetition rate
# {glue:text}`sample_t10_rep:.2f`), but it takes the model's uncertainty at face value (mean log-probability
# {glue:text}`sample_t10_lp:.2f`, of the order of the validation loss of {glue:text}`char_val_nats:.2f`
# nats), and every unlikely character it draws pushes the text further from English. Lowering the temperature to 0.5
# trades diversity for safety ({glue:text}`sample_t05_known:.0f`% of its words are real words from the
# training text); raising it to 1.5 gives the tail its say and the spelling collapses
# ({glue:text}`sample_t15_known:.0f`% real words). Top-k and top-p cut the tail without flattening the head:
# their samples stay diverse (distinct-2 {glue:text}`sample_topk_d2:.2f` and
# {glue:text}`sample_topp_d2:.2f`) with more real words ({glue:text}`sample_topk_known:.0f`% and
# {glue:text}`sample_topp_known:.0f`%, against {glue:text}`sample_t10_known:.0f`% at $\tau = 1$). One sample per
# rule is an anecdote, not a benchmark; exercise 2 asks for averages over many seeds.

# %% [markdown]
# ## Tokenisation matters: the same GRU on BPE tokens
#
# A character model spends one GRU step on every character. Byte-pair encoding (chapter 01,
# {cite:p}`sennrich2016`) merges frequent character sequences into tokens, so the same number of steps covers
# more text, at the price of a larger softmax and fewer examples per token type. To make the encoding
# lossless we pre-tokenise with the pattern below, which keeps a word's leading space with the word (as GPT-2
# does) and makes every other whitespace character its own piece; chapter 01's `BPE` learns merges on these
# pieces of the training text, and decoding concatenates the tokens and drops the end-of-word markers. The cell
# asserts that the validation text decodes back to exactly the same characters.

# %%
PIECE_PATTERN = re.compile(r" ?\w+| ?[^\w\s]+|\s")


def bpe_tokenize(bpe: BPE, text: str) -> list[str]:
    """Lossless BPE tokens of ``text``: pieces (word + leading space, punctuation, whitespace) encoded by ``bpe``."""
    pieces = PIECE_PATTERN.findall(text)
    assert "".join(pieces) == text
    return [token for piece in pieces for token in bpe.encode_word(piece)]


def bpe_detokenize(bpe: BPE, tokens: list[str]) -> str:
    """The inverse of :func:`bpe_tokenize`: join the tokens and drop the end-of-word markers."""
    return "".join(tokens).replace(bpe.end_of_word, "")


start = time.perf_counter()
bpe = BPE.learn(Counter(PIECE_PATTERN.findall(train_text)), cfg.bpe_merges)
bpe_vocab = list(
    dict.fromkeys([*bpe.vocab, *(c + bpe.end_of_word for c in chars)])
)  # any char may end a piece
bpe_token_to_id = {t: i for i, t in enumerate(bpe_vocab)}
bpe_train_tokens, bpe_valid_tokens = (
    bpe_tokenize(bpe, train_text),
    bpe_tokenize(bpe, valid_text),
)
assert (
    bpe_detokenize(bpe, bpe_valid_tokens) == valid_text
    and bpe_detokenize(bpe, bpe_train_tokens) == train_text
)
bpe_train_ids = np.array([bpe_token_to_id[t] for t in bpe_train_tokens], np.int32)
bpe_valid_ids = np.array([bpe_token_to_id[t] for t in bpe_valid_tokens], np.int32)
chars_per_token = len(train_text) / len(bpe_train_tokens)
print(
    f"{len(bpe.merges)} merges, vocabulary {len(bpe_vocab)} tokens ({time.perf_counter() - start:.1f} s); "
    f"train {len(bpe_train_tokens):,} tokens ({chars_per_token:.2f} characters/token)"
)
print("validation starts:", bpe_valid_tokens[:16])

# %% [markdown]
# Bits per character must be computed from the same text, whatever the tokens: the total negative
# log-likelihood of the validation text in bits divided by its number of *characters*. A model over tokens
# $s_1, \dots, s_M$ that spell a text of $N$ characters assigns it
# $-\sum_{j} \log_2 P(s_j \mid s_{<j})$ bits, so
#
# $$
# \mathrm{BPC} = \frac{-\sum_{j=1}^{M} \log_2 P(s_j \mid s_{<j})}{N} .
# $$ (eq-gen-bpc-tokens)
#
# (Strictly this is the probability of the text *and* its canonical tokenisation, an upper bound on the
# text's bits, since the model could also spell the text with other tokens; the bound is what every
# tokenised language model reports.) We read the validation tokens as one stream, as for characters (the last
# training token first), and divide by the number of validation characters; the per-epoch log divides the
# windowed loss by the characters the windows' targets spell. For comparable compute, the BPE model reads windows of
# {glue:text}`seq_len` tokens with the same GRU, so a step costs about the same, apart from the larger softmax.

# %%
bpe_train_ds = window_dataset(
    bpe_train_ids, cfg.seq_len, cfg.batch_size, shuffle=True, seed=1
)
bpe_valid_ds = window_dataset(bpe_valid_ids, cfg.seq_len, 256, shuffle=False)
num_valid_windows = (len(bpe_valid_ids) - 1) // cfg.seq_len
bpe_target_chars = sum(
    len(t.replace(bpe.end_of_word, ""))
    for t in bpe_valid_tokens[1 : num_valid_windows * cfg.seq_len + 1]
)
valid_chars_per_token = bpe_target_chars / (num_valid_windows * cfg.seq_len)
bpe_model = compile_for_budget(
    build_char_model(len(bpe_vocab), cfg.embed_dim, cfg.units),
    cfg.learning_rate,
    cfg.bpe_epochs * cfg.steps_per_epoch,
)
bpe_start = time.perf_counter()
bpe_history = bpe_model.fit(
    bpe_train_ds,
    epochs=cfg.bpe_epochs,
    steps_per_epoch=cfg.steps_per_epoch,
    validation_data=bpe_valid_ds,
    verbose=0,
    shuffle=False,
    callbacks=[epoch_logger("BPE GRU", 1 / (math.log(2) * valid_chars_per_token))],
)
bpe_train_seconds = time.perf_counter() - bpe_start
bpe_step_model = build_step_model(bpe_model)
bpe_stream_nll = streaming_nll(bpe_step_model, int(bpe_train_ids[-1]), bpe_valid_ids)
bpe_val_bits = bpe_stream_nll / math.log(2) / len(valid_text)
print(
    f"BPE GRU, one stream: {bpe_stream_nll / len(bpe_valid_ids):.3f} nats/token, {bpe_val_bits:.4f} bits/char "
    f"({len(valid_text):,} characters in {len(bpe_valid_ids):,} tokens); trained {bpe_train_seconds:.0f} s"
)

# %% [markdown]
# Generation speed, in characters per second of text: both models generate with one step per token through
# the same `generate` loop (top-p sampling, seeded), so a BPE step that writes several characters at once
# is the whole difference. We also compare validation bits per character against the amount of text read.

# %%
def chars_per_second(
    step_fn, state, prompt_ids: list[int], decode, n: int
) -> tuple[float, str]:
    """Characters of generated text per second, with a short warm-up, and the generated text."""
    generate(
        step_fn, state, prompt_ids, 5, top_p=0.9, rng=np.random.default_rng(1)
    )  # warm-up (tracing)
    start = time.perf_counter()
    generated = generate(
        step_fn, state, prompt_ids, n, top_p=0.9, rng=np.random.default_rng(1)
    )
    text_out = decode(generated.ids)
    return len(text_out) / (time.perf_counter() - start), text_out


bpe_step = make_step_fn(bpe_step_model)
char_cps, _ = chars_per_second(
    char_step,
    zero_state,
    prompt_ids,
    lambda ids: "".join(chars[i] for i in ids),
    cfg.sample_chars,
)
bpe_cps, bpe_sample = chars_per_second(
    bpe_step,
    zero_state,
    [bpe_token_to_id[t] for t in bpe_tokenize(bpe, prompt)],
    lambda ids: bpe_detokenize(bpe, [bpe_vocab[i] for i in ids]),
    round(cfg.sample_chars / chars_per_token),
)
comparison = pd.DataFrame(
    {
        "vocabulary": [len(chars), len(bpe_vocab), len(chars)],
        "training steps": [
            cfg.epochs * cfg.steps_per_epoch,
            cfg.bpe_epochs * cfg.steps_per_epoch,
            np.nan,
        ],
        "training text (characters)": [
            train_chars,
            cfg.bpe_epochs
            * cfg.steps_per_epoch
            * cfg.batch_size
            * cfg.seq_len
            * chars_per_token,
            len(train_text),
        ],
        "validation bits/char": [char_stream_bits, bpe_val_bits, kn_bits],
        "generated characters/s": [char_cps, bpe_cps, None],
    },
    index=[
        "GRU on characters",
        f"GRU on BPE tokens ({len(bpe.merges)} merges)",
        "5-gram Kneser–Ney",
    ],
)
comparison_style = comparison.style.format(precision=3, na_rep="–").format(
    "{:,.0f}",
    subset=["training steps", "training text (characters)", "generated characters/s"],
    na_rep="–",
)
display(comparison_style)
print(f"--- BPE GRU, top-p = 0.9 ---\n{prompt}{bpe_sample[:300]}")

# %%
fig, ax = plt.subplots()
for history, steps_chars, label in [
    (
        char_history,
        cfg.steps_per_epoch * cfg.batch_size * cfg.seq_len,
        "GRU on characters",
    ),
    (
        bpe_history,
        cfg.steps_per_epoch * cfg.batch_size * cfg.seq_len * chars_per_token,
        "GRU on BPE tokens",
    ),
]:
    factor = (
        1 / math.log(2)
        if history is char_history
        else 1 / (math.log(2) * valid_chars_per_token)
    )
    read = steps_chars * np.arange(1, len(history.history["val_loss"]) + 1) / 1e6
    ax.plot(
        read, np.array(history.history["val_loss"]) * factor, marker="o", label=label
    )
ax.axhline(kn_bits, color="grey", linestyle=":", label="5-gram Kneser–Ney")
ax.set_xlabel("training text read (million characters)")
ax.set_ylabel("validation bits per character")
ax.legend()
glue("fig_gen_bpe", fig, display=False)
plt.close(fig)
for name, value in [
    ("bpe_val_bits", bpe_val_bits),
    ("bpe_train_seconds", bpe_train_seconds),
    ("chars_per_token", chars_per_token),
    ("char_gen_cps", char_cps),
    ("bpe_gen_cps", bpe_cps),
    ("bpe_speedup", bpe_cps / char_cps),
    ("bpe_minus_char_bits", bpe_val_bits - char_stream_bits),
]:
    glue(name, float(value), display=False)
glue("bpe_merges", len(bpe.merges), display=False)
glue("bpe_vocab", len(bpe_vocab), display=False)
glue("bpe_vocab_ratio", len(bpe_vocab) / len(chars), display=False)
glue("tab_gen_comparison", comparison_style, display=False)
# at equal amounts of text read, the character model's validation curve lies below the BPE model's
char_read = (
    cfg.steps_per_epoch * cfg.batch_size * cfg.seq_len * np.arange(1, cfg.epochs + 1)
)
bpe_read = (
    cfg.steps_per_epoch
    * cfg.batch_size
    * cfg.seq_len
    * chars_per_token
    * np.arange(1, cfg.bpe_epochs + 1)
)
char_curve = np.array(char_history.history["val_loss"]) / math.log(2)
bpe_curve = np.array(bpe_history.history["val_loss"]) / (
    math.log(2) * valid_chars_per_token
)
assert (
    np.all(np.interp(bpe_read, char_read, char_curve) < bpe_curve)
    and bpe_val_bits > char_stream_bits
)

# %% [markdown]
# ```{glue:figure} fig_gen_bpe
# :name: fig-gen-bpe
# :figwidth: 90%
#
# Validation bits per character of the GRU on characters and of the same GRU on BPE tokens, after each epoch,
# against the amount of training text read; the dotted line is the 5-gram Kneser–Ney model.
# ```
#
# ```{glue:figure} tab_gen_comparison
# :name: tab-gen-comparison
#
# Characters against BPE tokens, with the same GRU: vocabulary size, training steps and text read, validation
# bits per character {eq}`eq-gen-bpc-tokens`, and generation speed (characters of text per second, one
# step per token, top-p sampling). The 5-gram row is the counting baseline on the same split.
# ```
#
# With {glue:text}`bpe_merges` merges the vocabulary has {glue:text}`bpe_vocab` tokens and a token spells
# {glue:text}`chars_per_token:.2f` characters on average (spaces and newlines are frequent pieces of their
# own). After {glue:text}`bpe_train_seconds:.0f` s of training the BPE model needs
# {glue:text}`bpe_val_bits:.3f` bits per character, {glue:text}`bpe_minus_char_bits:.2f` more than the
# character model, and the figure shows that this is not only because it trained for less time: at equal
# amounts of text read, its curve lies above the character model's. It must learn
# {glue:text}`bpe_vocab_ratio:.0f` times as many input and
# output vectors, each from fewer examples, and predict several characters at once; on a million characters of
# training text and a CPU budget that does not pay. What BPE does buy is speed: one step writes
# {glue:text}`chars_per_token:.1f` characters, so it generates {glue:text}`bpe_speedup:.1f` times as many
# characters per second ({glue:text}`bpe_gen_cps:,.0f` against {glue:text}`char_gen_cps:,.0f`; timings vary),
# and a window of {glue:text}`seq_len` tokens covers more text. With more data and larger models, the balance
# tips towards subword tokens, which is why the Transformers of later chapters use them. Whatever the tokens,
# compare models in bits per character (or per byte), never in loss per token.

# %% [markdown]
# ## Saving and reloading the generator
#
# The one-step model is the generator: it holds the embedding, the GRU and the output layer, with the trained
# weights. Keras's native `.keras` format stores its architecture as JSON and its weights, and loads it with
# `safe_mode=True`, which refuses to deserialise arbitrary Python code (lambdas); our model has none. We write
# it to a temporary directory, reload it, check that it computes identical logits and states, and generate
# from the reloaded copy.

# %%
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "char_gru_generator.keras"
    char_step_model.save(path)
    saved_megabytes = path.stat().st_size / 1e6
    reloaded = keras.models.load_model(path, safe_mode=True)
probe_tokens = tf.constant(valid_ids[:64, None])  # (64, 1): a batch of single tokens
probe_states = keras.random.normal((64, cfg.units), seed=3)
original_out = [t.numpy() for t in char_step_model([probe_tokens, probe_states])]
reloaded_out = [t.numpy() for t in reloaded([probe_tokens, probe_states])]
assert all(
    np.array_equal(a, b) for a, b in zip(original_out, reloaded_out, strict=True)
)
reloaded_sample = generate(
    make_step_fn(reloaded),
    zero_state,
    prompt_ids,
    cfg.sample_chars,
    top_p=0.9,
    rng=np.random.default_rng(0),
)
assert "".join(chars[i] for i in reloaded_sample.ids) == samples["top-p = 0.9"]
print(
    f"saved {saved_megabytes:.1f} MB; reloaded logits and states identical; same top-p sample:\n"
    f"{prompt}{samples['top-p = 0.9'][:200]}"
)

# %% [markdown]
# The reloaded generator writes the same top-p sample as the original, character for character. (A complete
# generator also needs the vocabulary, `chars` here; save it next to the model, for example as JSON.)
#
# ## Exercises
#
# 1. **Width against time.** Train GRU-512 (batch 64) for the same wall-clock time as the quick profile's
#    GRU-{glue:text}`units`. Predict from the step times in this chapter which one ends lower, then measure.
#    At what training time would you expect the wider model to overtake?
# 2. **Decoding, averaged.** The sample table shows one seed per rule. Generate 20 samples per rule (different
#    seeds) and report the mean and standard deviation of each column. Add $\tau = 0.7$ and top-p = 0.95.
#    Which of the differences in the table survive?
# 3. **Top-p with temperature.** `sample_logits` applies the temperature *before* top-p. Predict how the
#    number of tokens kept by top-p = 0.9 changes with $\tau = 0.5$ and $\tau = 1.5$, then count it along a
#    sample. Would applying the temperature after the filter change which tokens can be drawn?
# 4. **Context the GRU uses.** Evaluate the trained character model on validation windows of 20, 50, 100 and
#    400 characters (change `seq_len` in `window_dataset` for validation only). Predict the shape of bits per
#    character against window length; where does the curve cross the 5-gram's {glue:text}`kn_bits:.2f`?
# 5. **More merges.** Repeat the BPE experiment with 200 and 2000 merges for the same number of steps. Predict
#    the characters per token, the generation speed and the bits per character, then measure. Why can a larger
#    vocabulary hurt on a million characters of training text?
# 6. Show that the expected log-probability of a sample drawn at $\tau = 1$ is minus the entropy of the model's
#    next-character distribution, averaged along the sample. Why then is the greedy sample's mean
#    log-probability not the best measure of its quality?
#
# ## Summary
#
# * A character language model predicts each character from the ones before it {eq}`eq-gen-chain-rule`; its
#   cross-entropy in nats divided by $\ln 2$ is bits per character {eq}`eq-gen-bpc`, comparable across
#   tokenisations when the total is divided by the number of characters {eq}`eq-gen-bpc-tokens`.
# * On a CPU budget, size the model for learning per second: GRU-{glue:text}`units` read
#   {glue:text}`step_speed_ratio:.0f` times as many characters per second as the tutorial's GRU-1024 and
#   reached a validation loss of {glue:text}`char_val_nats:.3f` nats per character in
#   {glue:text}`train_minutes:.1f` minutes; read as one stream, the validation text costs it
#   {glue:text}`char_stream_bits:.3f` bits per character, {glue:text}`gru_gain_bits:.3f` bits less than a
#   5-gram Kneser–Ney model ({glue:text}`kn_bits:.3f`): a real but, after a few CPU minutes, small gain.
# * Generate with a one-step model that carries the recurrent state: the same logits as re-reading the prefix
#   (difference {glue:text}`state_diff:.1e`), at a cost linear in the length of the text.
# * Greedy decoding loops; temperature trades diversity against errors; top-k and nucleus (top-p) sampling cut
#   the unreliable tail. `lmlib.generate` implements them on plain logits, with a `generate` loop over any
#   (token, state) → (logits, state) step function, and measures samples by mean log-probability, distinct-2
#   and repetition rate.
# * Tokenisation matters, and bits per character make it measurable: on BPE tokens
#   ({glue:text}`bpe_merges` merges) the same GRU reached {glue:text}`bpe_val_bits:.3f` bits per character
#   against the character model's {glue:text}`char_stream_bits:.3f`, while generating
#   {glue:text}`bpe_speedup:.1f` times as many characters per second.
# * A `.keras` file with `safe_mode=True` saves and restores the generator exactly.
