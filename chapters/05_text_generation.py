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
# We train a character-level GRU language model on Tiny Shakespeare, measure it in bits per character against
# a Kneser–Ney 5-gram and a BPE-token variant, and generate text with a one-step model that carries the
# recurrent state. We implement greedy, temperature, top-k and nucleus sampling in `lmlib.generate` and
# measure what each does to the samples.

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
# of steps, sized for a laptop CPU; the full profile, meant for a GPU, trains the model of the TensorFlow
# text-generation tutorial {cite:p}`tensorflow_text_generation` (embedding 256, GRU 1024, batch 64) for many
# more steps. `compare_steps` is the length of the shorter BPE-token run that we compare with the character
# model at equal updates, and `sample_seeds` the number of samples per decoding rule that the sample
# statistics average over.

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

# %%
cfg = setup_chapter(
    "05",
    quick=dict(
        embed_dim=64,
        units=256,
        batch_size=128,
        seq_len=100,
        learning_rate=1e-2,
        epochs=5,
        steps_per_epoch=100,
        compare_steps=60,
        bpe_merges=500,
        sample_chars=400,
        sample_seeds=16,
    ),
    full=dict(
        embed_dim=256,
        units=1024,
        batch_size=64,
        seq_len=100,
        learning_rate=1e-3,
        epochs=30,
        steps_per_epoch=150,
        compare_steps=900,
        bpe_merges=1000,
        sample_chars=1000,
        sample_seeds=32,
    ),
    keras=True,
)

# %%
use_style()
import keras  # noqa: E402  (after setup_chapter has set the backend)
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
# Tiny Shakespeare {cite:p}`karpathy2015` is {glue:text}`n_chars_total:,` characters of Shakespeare's plays.
# We split it by position: the first 90% for training, the last 10% for validation (no shuffling of lines, so
# validation is text the model has never seen, from later plays). The vocabulary is the set of characters of
# the training part; the cell asserts that validation uses no other.

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
    f"{len(text):,} characters: train {len(train_text):,}, "
    f"validation {len(valid_text):,}; vocabulary {len(chars)} characters: "
    f"{''.join(chars)!r}"
)
glue("n_chars_total", len(text), display=False)
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
    """Batches of (input, target) windows, the target shifted by one token; windows
    start every ``seq_len`` tokens. With ``shuffle`` the windows repeat forever."""
    ids_tensor = tf.constant(ids, tf.int32)
    num_windows = (len(ids) - 1) // seq_len

    def window(k):  # ids[k*T : k*T + T] and ids[k*T + 1 : k*T + T + 1]
        start = k * seq_len
        inputs = ids_tensor[start : start + seq_len]
        return inputs, ids_tensor[start + 1 : start + seq_len + 1]

    ds = tf.data.Dataset.range(num_windows)
    if shuffle:
        ds = ds.shuffle(num_windows, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat()
    ds = ds.map(window, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# %%
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
# The TensorFlow text-generation tutorial {cite:p}`tensorflow_text_generation` trains embedding 256 → GRU
# 1024 → Dense. The cost of a GRU step grows with $H^2$ (three $H \times H$ recurrent matrices, chapter 04),
# and the $T$ steps of a window run one after the other, so on a CPU a wide GRU is slow per batch. On a fixed
# budget what matters is how fast the validation loss falls *per second*, and a small model that reads many
# more characters per second can end lower than a wide one that has had no time to use its capacity
# (exercise 1 asks where the wide one overtakes). The model first: the GRU returns its sequence *and* its
# final state; the training model ignores the state, and the generator below reuses the same layers and
# feeds the state back in.

# %%
def build_char_model(vocab_size: int, embed_dim: int, units: int) -> keras.Model:
    """Embedding -> GRU -> Dense: (batch, T) ids in, (batch, T, V) logits out."""
    ids = keras.Input((None,), dtype="int32", name="ids")
    embeddings = keras.layers.Embedding(vocab_size, embed_dim, name="embedding")(ids)
    gru = keras.layers.GRU(units, return_sequences=True, return_state=True, name="gru")
    hidden, _ = gru(embeddings)
    logits = keras.layers.Dense(vocab_size, name="logits")(hidden)
    return keras.Model(ids, logits, name=f"char_gru_{units}")


# %% [markdown]
# The next cell times one training step (forward, backward, update, on a real batch) of a fresh model for
# three widths, after a warm-up step that builds and traces it.

# %%
def seconds_per_step(
    ids: np.ndarray,
    vocab_size: int,
    units: int,
    embed_dim: int,
    batch_size: int,
    seq_len: int,
    repeats: int = 2,
) -> float:
    """Wall-clock seconds of a training step of a fresh model on a batch of ``ids``."""
    model = build_char_model(vocab_size, embed_dim, units)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer="adam", loss=loss)
    batch_ds = window_dataset(
        ids[: batch_size * (seq_len + 1)], seq_len, batch_size, False
    )
    x_batch, y_batch = next(iter(batch_ds))
    model.train_on_batch(x_batch, y_batch)  # builds and traces the step
    start = time.perf_counter()
    for _ in range(repeats):
        model.train_on_batch(x_batch, y_batch)
    return (time.perf_counter() - start) / repeats


# %%
step_times = pd.DataFrame(
    [
        dict(
            units=u,
            batch_size=b,
            seconds_per_step=seconds_per_step(
                train_ids, len(chars), u, e, b, cfg.seq_len
            ),
        )
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
cps = step_times.set_index("units").characters_per_second
glue("step_speed_ratio", float(cps[256] / cps[1024]), display=False)

# %% [markdown]
# On this machine a step of the tutorial's GRU-1024 took {glue:text}`step_s_1024:.2f` s
# ({glue:text}`step_cps_1024:,.0f` characters per second), GRU-512 {glue:text}`step_s_512:.2f` s and GRU-256
# with twice the batch {glue:text}`step_s_256:.2f` s: GRU-256 reads {glue:text}`step_speed_ratio:.1f` times
# as many characters per second as GRU-1024 (timings vary from run to run, and with whatever else the
# machine is doing). In the {glue:text}`train_minutes:.1f` minutes that this run's model trains, the
# tutorial's GRU-1024 would read about {glue:text}`tutorial_passes:.1f` passes over the training text at this
# speed; this run's model reads {glue:text}`train_passes:.1f`. For that reason the quick profile, for a CPU,
# uses GRU-256 with an embedding of 64 and batches of 128, while the full profile, for a GPU (where the wide
# model's step is fast), keeps the tutorial's model; this run uses a GRU of {glue:text}`units` units, an
# embedding of {glue:text}`embed_dim` and batches of {glue:text}`batch_size`. The quick profile's learning
# rate is 1e-2, ten times Adam's default, because a short run cannot afford a slow start; the full profile
# keeps 1e-3. Both profiles clip the global gradient norm (as chapter 04 does, there at 5) at 1, which keeps large steps stable,
# and hold the learning rate constant for the first half of the run, then decay it to a tenth with a cosine
# over the second half. A constant start followed by a decay ends about where a cosine over the whole run
# does {cite:p}`hagele2024`, and it has a property we use for the BPE comparison below: up to the middle of
# the run, the model after $s$ steps is exactly what a run of $s$ steps at the constant rate would give.

# %%
def compile_model(
    model: keras.Model, learning_rate: float, total_steps: int
) -> keras.Model:
    """Adam clipping the global gradient norm at 1; the learning rate is constant for
    the first half of ``total_steps``, then decays to 10% with a cosine."""
    half = total_steps // 2
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate,
        decay_steps=total_steps - half,
        alpha=0.1,
        warmup_target=learning_rate,  # a "warm-up" from the rate to itself: constant
        warmup_steps=half,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule, global_clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


# %% [markdown]
# A small callback writes one log line per epoch and keeps the training clock: the duration of every
# training step after the first (the first one traces the step function; validation is not timed), and the
# loss of every step (Keras logs the epoch's running mean, from which each step's loss follows). Given
# `snapshot_every` it also keeps a copy of the weights every that many steps, up to `snapshot_until`, with
# the clock at that moment; the BPE comparison below needs them.

# %%
class TrainLog(keras.callbacks.Callback):
    """Epoch log lines (nats per token, validation bits per character, s/step), the
    clock (``step_seconds`` after the first step, ``clock``), ``step_losses``, and
    ``snapshots[step] = (clock, weights)`` every ``snapshot_every`` steps."""

    def __init__(self, name, chars_per_token=1.0, snapshot_every=0, snapshot_until=0):
        super().__init__()
        self.name, self.bits_per_nat = name, 1 / (math.log(2) * chars_per_token)
        self.every, self.until, self.snapshots = snapshot_every, snapshot_until, {}
        self.step_seconds, self.step_losses, self.clock = [], [], 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step_seconds.append(time.perf_counter() - self.started)
        self.clock = sum(self.step_seconds[1:])
        total = (batch + 1) * float(logs["loss"])  # Keras logs the running mean
        self.step_losses.append(total - (self.total if batch else 0.0))
        self.total, steps = total, len(self.step_seconds)
        if self.every and steps % self.every == 0 and steps <= self.until:
            self.snapshots[steps] = (self.clock, self.model.get_weights())

    def on_epoch_end(self, epoch, logs=None):
        recent = self.step_seconds[1:][-self.params["steps"] :]
        print(
            f"{self.name} epoch {epoch + 1:2d}: loss {logs['loss']:.3f}, val_loss "
            f"{logs['val_loss']:.3f} nats ({logs['val_loss'] * self.bits_per_nat:.3f} "
            f"bits/char), {np.mean(recent):.3f} s/step"
        )


# %% [markdown]
# Training runs for a fixed number of steps (not a fixed time: a rerun must give the same model), with one
# log line per "epoch" of `steps_per_epoch` batches. It keeps the weights of the epoch with the lowest
# validation loss (`EarlyStopping(restore_best_weights=True)`, with a patience of all the epochs so that it
# never stops the run): the full profile's GRU-1024 trains for many epochs without dropout or weight decay,
# and a model that size can overfit a million characters, its validation loss turning up while the training
# loss keeps falling. The callback also keeps the snapshots for the BPE comparison, up to the middle of the
# run, where the learning rate is still constant.

# %%
glue("units", cfg.units, display=False)
glue("embed_dim", cfg.embed_dim, display=False)
glue("batch_size", cfg.batch_size, display=False)
glue("seq_len", cfg.seq_len, display=False)
total_steps = cfg.epochs * cfg.steps_per_epoch
assert (
    cfg.compare_steps <= total_steps // 2
)  # the comparison stays in the constant half
char_model = compile_model(
    build_char_model(len(chars), cfg.embed_dim, cfg.units),
    cfg.learning_rate,
    total_steps,
)
char_model.summary(line_length=88)

# %%
char_log = TrainLog(
    "char GRU", snapshot_every=cfg.compare_steps // 4, snapshot_until=total_steps // 2
)
keep_best = keras.callbacks.EarlyStopping(
    monitor="val_loss", patience=cfg.epochs, restore_best_weights=True
)
wall_start = time.perf_counter()
char_history = char_model.fit(
    train_ds,
    epochs=cfg.epochs,
    steps_per_epoch=cfg.steps_per_epoch,
    validation_data=valid_ds,
    verbose=0,
    shuffle=False,  # tf.data shuffles; this only silences Keras's warning
    callbacks=[char_log, keep_best],
)
train_seconds = time.perf_counter() - wall_start
train_steps = int(char_model.optimizer.iterations)
train_chars = train_steps * cfg.batch_size * cfg.seq_len
val_curve = char_history.history["val_loss"]
best_epoch = int(np.argmin(val_curve)) + 1
char_step_s = float(np.median(char_log.step_seconds[1:]))
print(
    f"{train_steps} steps, {train_chars:,} training characters, {train_seconds:.0f} s "
    f"({char_step_s:.3f} s/step); kept the weights of epoch {best_epoch} of "
    f"{len(val_curve)}"
)

# %% [markdown]
# Keras 3 reports `val_loss` as the mean of the batches' mean losses weighted by the number of windows in
# each batch, which is the mean over all targets here, where every window has `seq_len` of them. For the
# final numbers we still sum the negative log-likelihood of every validation target ourselves, in float64,
# and count the targets; the cell checks that the two agree.

# %%
def dataset_nll(model: keras.Model, ds: tf.data.Dataset) -> tuple[float, int]:
    """Total negative log-likelihood (nats) of all targets of ``ds`` under ``model``,
    and the number of targets."""

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


# %% [markdown]
# The cell asserts a validation loss of at most 1.65 nats per character (2.38 bits per character), a fixed
# bar, far below the uniform guess, that both profiles' models must clear; the sharper tests, the same text
# read as streams and a 5-gram model, follow.

# %%
valid_nll, valid_targets = dataset_nll(char_model, valid_ds)
char_val_nats = valid_nll / valid_targets
char_val_bits = char_val_nats / math.log(2)
keras_val_nats = float(val_curve[best_epoch - 1])
print(
    f"validation: {valid_targets:,} characters, {char_val_nats:.4f} nats/char = "
    f"{char_val_bits:.4f} bits/char (Keras's val_loss: {keras_val_nats:.4f})"
)
assert abs(keras_val_nats - char_val_nats) <= 1e-4 * char_val_nats
assert char_val_nats <= 1.65, (
    f"validation loss {char_val_nats:.3f} misses 1.65 nats/char"
)

# %%
for name, value in [
    ("char_val_nats", char_val_nats),
    ("char_val_bits", char_val_bits),
    ("train_seconds", train_seconds),
    ("train_minutes", train_seconds / 60),
    ("train_passes", train_chars / len(train_text)),
    ("train_chars_per_s", train_chars / train_seconds),
    ("char_step_s", char_step_s),
    ("tutorial_passes", train_seconds * cps[1024] / len(train_text)),
]:
    glue(name, float(value), display=False)
for name, value in [
    ("valid_targets", valid_targets),
    ("train_chars", train_chars),
    ("train_steps", train_steps),
    ("best_epoch", best_epoch),
    ("epochs_run", len(val_curve)),
]:
    glue(name, int(value), display=False)

# %% [markdown]
# ## Reading the validation text as a stream
#
# Each validation window starts from a zero state, so the first characters of every window are predicted with
# almost no context: the windowed loss understates what the model knows. A fair measure, and the one we
# compare with other models, reads the validation text as a stream and carries the state along. For that
# we build a *stateful twin* of the trained model from the same layer objects (so it shares their weights):
# it takes a chunk of token ids and a state and returns the logits and the new state. With chunks of one
# token it is the generator of the next sections.

# %%
def build_step_model(model: keras.Model) -> keras.Model:
    """A twin of ``model`` sharing its layers that takes and returns the GRU state:
    [ids (batch, t), state (batch, H)] -> [logits (batch, t, V), state (batch, H)]."""
    gru = model.get_layer("gru")
    token = keras.Input((None,), dtype="int32", name="ids")
    state = keras.Input((gru.units,), name="state")
    hidden, new_state = gru(model.get_layer("embedding")(token), initial_state=state)
    return keras.Model(
        [token, state],
        [model.get_layer("logits")(hidden), new_state],
        name="step_model",
    )


# %% [markdown]
# `streaming_nll` feeds a text to the twin in chunks of 1,000 tokens (the default of `chunk`), the token
# before the text first (for the validation text, the last training character), so that every one of its
# tokens is predicted. One stream of a hundred thousand steps is slow, one GRU step after another, so the
# function cuts the text into `streams` consecutive parts (8 by default) and reads them in parallel as one
# batch, each part a stream with its state carried: 8 starts from a zero state in all, against one in every
# {glue:text}`seq_len` characters in windows.

# %%
def streaming_nll(
    step_model: keras.Model, first_input: int, ids, streams: int = 8, chunk: int = 1000
) -> float:
    """Total negative log-likelihood (nats) of ``ids`` cut into ``streams`` consecutive
    parts read in parallel, each from a zero state with the state carried; ``ids[0]`` is
    predicted after ``first_input``, every other token after the one before it."""
    run = tf.function(lambda x, s: step_model([x, s], training=False))
    inputs = np.concatenate([[first_input], ids[:-1]]).astype(np.int32)
    length = -(-len(ids) // streams)  # tokens per part; the last part is padded
    pad = streams * length - len(ids)
    inputs, targets, mask = (
        np.pad(a, (0, pad)).reshape(streams, length)
        for a in (inputs, np.asarray(ids), np.ones(len(ids)))
    )
    state = tf.zeros((streams, step_model.get_layer("gru").units))
    total = 0.0
    for start in range(0, length, chunk):
        part = slice(start, start + chunk)
        logits, state = run(tf.constant(inputs[:, part]), state)
        losses = keras.losses.sparse_categorical_crossentropy(
            targets[:, part], logits, from_logits=True
        )
        total += float(np.sum(np.asarray(losses, np.float64) * mask[:, part]))
    return total


# %%
char_step_model = build_step_model(char_model)
start = time.perf_counter()
char_stream_nll = streaming_nll(char_step_model, int(train_ids[-1]), valid_ids)
char_stream_bits = char_stream_nll / math.log(2) / len(valid_ids)
print(
    f"streamed: {char_stream_bits:.4f} bits/char over all {len(valid_ids):,} "
    f"validation characters (windows of {cfg.seq_len}: {char_val_bits:.4f}); "
    f"{time.perf_counter() - start:.1f} s"
)
assert char_stream_bits < char_val_bits
glue("char_stream_bits", float(char_stream_bits), display=False)
glue("char_stream_nats", float(char_stream_bits * math.log(2)), display=False)
glue("stream_gain_bits", float(char_val_bits - char_stream_bits), display=False)

# %% [markdown]
# Read as a stream, the validation text costs the model {glue:text}`char_stream_bits:.3f` bits per
# character ({glue:text}`char_stream_nats:.3f` nats), {glue:text}`stream_gain_bits:.3f` bits less than in
# windows: that is what the zero state at the start of every window costs. Why not train with the state
# carried, then? Carrying the state from one batch to the next (Keras's `stateful=True`) requires row $i$ of
# every batch to continue row $i$ of the previous one, so the windows can no longer be shuffled, consecutive
# batches are correlated, and the carried state was computed by older weights; independent, shuffled windows
# from a zero state, as in the TensorFlow tutorial, are simpler and well-behaved, and the stream measurement
# shows that the model so trained still uses context beyond one window.
#
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
    f"5-gram modified Kneser-Ney: {kn_bits:.4f} bits/char on {len(kn_logprobs):,} "
    f"validation characters ({kn_seconds:.1f} s to fit and score)"
)
assert char_stream_bits < kn_bits
glue("kn_seconds", float(kn_seconds), display=False)
glue("kn_bits", kn_bits, display=False)
glue("gru_gain_bits", float(kn_bits - char_stream_bits), display=False)
glue("gru_gain_percent", float(100 * (1 - char_stream_bits / kn_bits)), display=False)

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
# After {glue:text}`train_minutes:.1f` minutes of training ({glue:text}`train_steps` steps,
# {glue:text}`char_step_s:.3f` s per step, {glue:text}`train_chars:,` characters, about
# {glue:text}`train_passes:.1f` passes over the training text, {glue:text}`train_chars_per_s:,.0f`
# characters per second on this machine, validation included) the GRU, with the weights of epoch
# {glue:text}`best_epoch` of the {glue:text}`epochs_run` it trained, reaches a validation loss of
# {glue:text}`char_val_nats:.3f` nats per character, {glue:text}`char_val_bits:.3f` bits per character,
# measured on {glue:text}`valid_targets:,` of the {glue:text}`n_chars_valid:,` validation characters in
# windows of {glue:text}`seq_len` (the first character and the last incomplete window are not predicted), and
# {glue:text}`char_stream_bits:.3f` bits per character read as a stream. The 5-gram model, fitted and scored
# in {glue:text}`kn_seconds:.1f` s, needs {glue:text}`kn_bits:.3f` bits per character on the same characters;
# the GRU saves {glue:text}`gru_gain_bits:.3f` bits per character ({glue:text}`gru_gain_percent:.1f`%).

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
def make_step_fn(step_model: keras.Model):
    """A ``step_fn(token_id, state) -> (logits (V,), state)`` for ``generate``, from a
    model built by ``build_step_model``; the state stays a tensor."""

    @tf.function
    def step(token, state):
        logits, new_state = step_model([token, state], training=False)
        return logits[:, 0], new_state

    def step_fn(token_id: int, state):
        logits, new_state = step(tf.constant([[token_id]], tf.int32), state)
        return logits.numpy()[0], new_state

    return step_fn


char_step = make_step_fn(char_step_model)
zero_state = tf.zeros((1, cfg.units))

# %% [markdown]
# The check: run the first 300 validation characters through the training model in one call, and through
# the one-step model one character at a time with the state carried; the logits must agree at every
# position, to float32 rounding relative to their size.

# %%
check_ids = valid_ids[:300]
full_logits = char_model(check_ids[None], training=False)[0].numpy()  # (300, V)
state, step_logits = zero_state, []
for token_id in check_ids:
    logits, state = char_step(int(token_id), state)
    step_logits.append(logits)
state_diff = float(np.abs(np.array(step_logits) - full_logits).max())
state_rel_diff = state_diff / float(np.abs(full_logits).max())
print(
    f"max |full-sequence logits - one-step logits| over {len(check_ids)} positions: "
    f"{state_diff:.2e} ({state_rel_diff:.1e} of max |logit|)"
)
assert state_rel_diff <= 1e-5
glue("state_diff", state_diff, display=False)
glue("state_rel_diff", state_rel_diff, display=False)

# %% [markdown]
# ## Decoding: greedy, temperature, top-k and nucleus sampling
#
# Given the logits $z$ of the next token, **greedy decoding** picks $\arg\max_v z_v$. Sampling draws from the
# softmax instead, usually reshaped. The **temperature** $\tau > 0$ divides the logits, as in the Boltzmann
# distribution of statistical physics and the Boltzmann machine {cite:p}`ackley1985` (the source that
# {cite:t}`holtzman2020` cite for it),
#
# $$
# p_v(\tau) = \frac{\exp(z_v / \tau)}{\sum_{u} \exp(z_u / \tau)},
# $$ (eq-gen-temperature)
#
# so $\tau = 1$ is the model's own distribution, $\tau < 1$ sharpens it (as $\tau \to 0$ all mass goes to the
# argmax: greedy) and $\tau > 1$ flattens it. **Top-k** sampling {cite:p}`fan2018` keeps the $k$ most
# probable tokens and renormalises. **Nucleus (top-p)** sampling {cite:p}`holtzman2020` keeps the smallest set
# of most probable tokens whose probability reaches $p$: with the tokens sorted so that
# $p_{(1)} \ge p_{(2)} \ge \dots$,
#
# $$
# V^{(p)} = \{(1), \dots, (m)\}, \qquad m = \min\Bigl\{j : \sum_{i=1}^{j} p_{(i)} \ge p\Bigr\},
# \qquad P'(v) = \frac{p_v}{\sum_{u \in V^{(p)}} p_u} \ [v \in V^{(p)}],
# $$ (eq-gen-top-p)
#
# so it keeps few tokens where the model is confident and many where it is not, which a fixed $k$ cannot do.
# Truncation cuts off the long tail of unlikely tokens, each rare on its own but together likely enough to
# derail a long sample. When several are given, the temperature is applied first, then top-k, then top-p
# (each to the distribution the previous one left).
#
# To see what a decoding rule does we measure each sample four ways. Its **mean log-probability** per token
# under the model (temperature 1, no truncation) is compared with minus the model's **entropy**
# $H_t = -\sum_v P(v \mid c_{<t}) \ln P(v \mid c_{<t})$ averaged along the same sample: a sample drawn from
# the model itself is *typical*, its mean log-probability close to $-\bar H$ (exercise 6), while a mean
# well above $-\bar H$ means the sampler stays in the high-probability region of each step (and, near 0,
# repeats itself), and one below it means it wanders into the tail. **Distinct-2** is the number of distinct
# word bigrams divided by the number of word bigrams {cite:p}`li2016` (low means repetition), and the
# **repetition rate** the fraction of word 4-grams that already occurred earlier in the same sample
# {cite:p}`welleck2020` (high means loops).
#
# The functions below work on logits and token ids only, with no reference to Keras or to GRUs: `generate`
# takes any step function (token, state) → (logits, state), so the GPT chapter reuses them with a key-value
# cache as the state. They go to `lmlib.generate`, one definition per cell; first the imports.

# %%
# lmlib: generate
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

# %% [markdown]
# Log-probabilities are computed with the maximum subtracted first, so that large logits cannot overflow.

# %%
# lmlib: generate
def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Natural-log probabilities from logits along the last axis, computed stably (the
    maximum subtracted first)."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# %%
# lmlib: generate
def greedy(logits: np.ndarray) -> int:
    """The most probable token of a 1-D vector of logits (the lowest index on ties)."""
    return int(np.argmax(logits))


# %% [markdown]
# Top-k takes an integer $k$ only: a float such as 0.9 is almost always a top-p value passed by mistake, and
# rounding it silently would hide that.

# %%
# lmlib: generate
def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` largest logits of a 1-D vector and set the others to ``-inf``.

    ``k`` must be an integer >= 1 (``TypeError`` for a float, ``ValueError`` below 1).
    Exactly ``k`` tokens survive (all of them if ``k`` is at least the vocabulary size);
    among tokens tied at the boundary the lower indices are kept.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"top_k must be an integer, not {k!r}")
    if k < 1:
        raise ValueError(f"top_k must be at least 1, not {k}")
    logits = np.asarray(logits, dtype=np.float64)
    if k >= logits.size:
        return logits.copy()
    order = np.argsort(-logits, kind="stable")  # descending, ties by index
    filtered = np.full_like(logits, -np.inf)
    filtered[order[:k]] = logits[order[:k]]
    return filtered


# %% [markdown]
# Top-p accepts $0 < p \le 1$; $p = 1$ keeps every token, and a $p$ above 1 (a percentage, say) raises an
# error instead of being treated as 1.

# %%
# lmlib: generate
def top_p_filter(logits: np.ndarray, p: float, tolerance: float = 1e-9) -> np.ndarray:
    """Nucleus filtering: keep the smallest set of most probable tokens whose total
    probability reaches ``p`` (0 < p <= 1), set the others to ``-inf``.

    Tokens are taken by decreasing probability (ties by lower index) until the
    cumulative probability reaches ``p`` to within ``tolerance`` (so that rounding
    cannot add a token when the sum hits ``p`` exactly); at least one token is kept;
    ``p = 1`` keeps all.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], not {p}")
    logits = np.asarray(logits, dtype=np.float64)
    if p == 1.0:
        return logits.copy()
    order = np.argsort(-logits, kind="stable")
    probs = np.exp(log_softmax(logits))[order]
    mass_before = np.concatenate([[0.0], np.cumsum(probs)[:-1]])  # of higher ranks
    keep = order[mass_before < p - tolerance]
    keep = keep if keep.size else order[:1]
    filtered = np.full_like(logits, -np.inf)
    filtered[keep] = logits[keep]
    return filtered


# %% [markdown]
# `sample_logits` subtracts the largest logit *before* dividing by the temperature: $(z_v - \max z)/\tau \le 0$
# cannot overflow, however small $\tau$ is, while $z_v / \tau$ overflows to $\pm\infty$ for a tiny $\tau$ and
# turns the softmax into NaNs. The shift leaves the distribution {eq}`eq-gen-temperature` unchanged.

# %%
# lmlib: generate
def sample_logits(
    logits: np.ndarray,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    rng: np.random.Generator | None = None,
) -> int:
    """Draw one token from 1-D ``logits``: temperature first, then top-k, then top-p.

    ``temperature == 0`` is greedy decoding. Sampling uses one uniform number from
    ``rng`` (default ``np.random.default_rng()``) and the inverse of the cumulative
    distribution, so a seeded generator gives the same token on every run.
    """
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, not {temperature}")
    if temperature == 0:
        return greedy(logits)
    logits = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):  # a tiny temperature sends the others to -inf
        scaled = (logits - logits.max()) / temperature
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    if top_p is not None:
        scaled = top_p_filter(scaled, top_p)
    probs = np.exp(log_softmax(scaled))
    cumulative = np.cumsum(probs)
    rng = np.random.default_rng() if rng is None else rng
    index = np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")
    return min(int(index), int(np.flatnonzero(probs)[-1]))  # rounding at the top end


# %% [markdown]
# `generate` returns the new tokens with their log-probabilities under the unmodified model, and the state
# to continue from.

# %%
# lmlib: generate
class Generation(NamedTuple):
    """What :func:`generate` returns: the new token ids, the model's log-probability of
    each (natural log, temperature 1, no filtering) and the state after the last token
    fed (the last generated token has not been fed: continue from ``[ids[-1]]``)."""

    ids: list[int]
    logprobs: np.ndarray
    state: Any


# %%
# lmlib: generate
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
    """Generate ``n`` tokens after ``prompt_ids`` (at least one) with a step function
    ``step_fn(token_id, state) -> (logits (V,), new_state)`` that carries the model's
    state (a recurrent state, a key-value cache, ...). Each new token is chosen by
    :func:`sample_logits` and fed back; cost: ``len(prompt_ids) + n - 1`` steps."""
    if len(prompt_ids) == 0:
        raise ValueError("generate needs a prompt of at least one token")
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


# %% [markdown]
# The two sample measures. A sequence shorter than $n$ has no $n$-grams, and both ratios are then undefined:
# they return NaN (which `np.nanmean` skips) rather than a number that would read as "all repeated" or "no
# repetition".

# %%
# lmlib: generate
def distinct_n(tokens: Sequence[Any], n: int = 2) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams divided by n-grams of ``tokens``.

    1.0 means no n-gram occurs twice; ``nan`` for a sequence shorter than ``n``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else float("nan")


# %%
# lmlib: generate
def repetition_rate(tokens: Sequence[Any], n: int = 4) -> float:
    """The fraction of n-grams that repeat an n-gram seen earlier in the same sequence
    (seq-rep-n of Welleck et al., 2020), ``1 - distinct_n(tokens, n)``; 0.0 means no
    repetition, ``nan`` a sequence shorter than ``n``."""
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    seen: set = set()
    repeats = 0
    for gram in grams:
        repeats += gram in seen
        seen.add(gram)
    return repeats / len(grams) if grams else float("nan")


# %% [markdown]
# First the cost of re-reading. The "state" of the re-reading step function is the list of tokens so far,
# and each step runs the training model over all of it. Greedy decoding must give the same text both ways.

# %%
def make_reread_step(model: keras.Model):
    """A ``step_fn`` whose state is the whole prefix: every step re-reads it."""

    @tf.function(input_signature=[tf.TensorSpec((1, None), tf.int32)])
    def last_logits(prefix_ids):
        return model(prefix_ids, training=False)[:, -1]

    def reread_step(token_id: int, prefix: list[int]):
        prefix = prefix + [token_id]
        return last_logits(tf.constant([prefix], tf.int32)).numpy()[0], prefix

    return reread_step


# %%
prompt, reread_chars = "ROMEO:\n", 200
prompt_ids = [char_to_id[c] for c in prompt]
timings = {}
for name, step_fn, state in [
    ("state carried", char_step, zero_state),
    ("prefix re-read", make_reread_step(char_model), []),
]:
    start = time.perf_counter()
    generated = generate(step_fn, state, prompt_ids, reread_chars, temperature=0)
    timings[name] = (time.perf_counter() - start, generated.ids)
assert timings["state carried"][1] == timings["prefix re-read"][1]
reread_slowdown = timings["prefix re-read"][0] / timings["state carried"][0]
print(
    {name: f"{seconds:.2f} s" for name, (seconds, _) in timings.items()},
    f"same text; re-reading is {reread_slowdown:.1f}x slower for {reread_chars} chars",
)
glue("reread_slowdown", float(reread_slowdown), display=False)
glue("reread_chars", reread_chars, display=False)

# %% [markdown]
# Both produce the same {glue:text}`reread_chars` characters, and re-reading is already
# {glue:text}`reread_slowdown:.0f` times slower at this length; the gap grows linearly with the length.
#
# Now the samples. One sample per rule is an anecdote, so we draw {glue:text}`sample_seeds` samples of
# {glue:text}`sample_chars` characters per rule (seeds 0, 1, …; a rerun writes the same text) and average
# their properties. To make that cheap, the function below runs the seeds as one batch through the stateful
# twin, with `lmlib`'s `sample_logits` choosing each row's next character from its own generator, and also
# records the model's entropy before every character.

# %%
def sample_batch(run, units: int, prompt_ids, n: int, seeds, **options):
    """``len(seeds)`` samples of ``n`` tokens after ``prompt_ids``, one row per seed,
    run as one batch through ``run(ids (batch, t), state) -> (logits, state)``;
    ``options`` go to ``sample_logits``. Returns ids, log-probabilities and entropies
    (nats, of the model before each token), each (len(seeds), n)."""
    rngs = [np.random.default_rng(seed) for seed in seeds]
    state = tf.zeros((len(seeds), units))
    logits, state = run(tf.constant([list(prompt_ids)] * len(seeds), tf.int32), state)
    logits = logits[:, -1].numpy()
    ids, logprobs, entropies = (np.zeros((len(seeds), n)) for _ in range(3))
    for i in range(n):
        logp = log_softmax(logits)  # (seeds, V)
        tokens = [
            sample_logits(z, rng=r, **options)
            for z, r in zip(logits, rngs, strict=True)
        ]
        ids[:, i] = tokens
        logprobs[:, i] = logp[np.arange(len(seeds)), tokens]
        entropies[:, i] = -(np.exp(logp) * logp).sum(axis=-1)
        if i < n - 1:
            step_in = tf.constant(np.array(tokens, np.int32)[:, None])
            logits, state = run(step_in, state)
            logits = logits[:, 0].numpy()
    return ids.astype(int), logprobs, entropies


# %% [markdown]
# The properties of one sample; "known words" are words of the sample that occur in the training text.

# %%
def sample_properties(
    sample: str, logprobs: np.ndarray, entropies: np.ndarray, known_words: set[str]
) -> dict:
    """Mean log-probability and minus mean entropy per character, distinct-2 and 4-gram
    repetition rate of the words, and the percentage of known words."""
    words = sample.split()
    plain_words = re.findall(r"[a-z']+", sample.lower())
    return {
        "mean log-prob": float(logprobs.mean()),
        "minus entropy": float(-entropies.mean()),
        "distinct-2": distinct_n(words, 2),
        "repetition (4-grams)": repetition_rate(words, 4),
        "known words (%)": 100
        * float(np.mean([w in known_words for w in plain_words])),
    }


# %%
train_words = set(re.findall(r"[a-z']+", train_text.lower()))
settings = {
    "greedy": dict(temperature=0.0),
    "T = 0.5": dict(temperature=0.5),
    "T = 1.0": dict(temperature=1.0),
    "T = 1.5": dict(temperature=1.5),
    "top-k = 10": dict(top_k=10),
    "top-p = 0.9": dict(top_p=0.9),
}

# %% [markdown]
# The samples, {glue:text}`sample_seeds` per rule, and their properties, averaged over seeds.

# %%
seeds = range(cfg.sample_seeds)
glue("sample_seeds", cfg.sample_seeds, display=False)
glue("sample_chars", cfg.sample_chars, display=False)
batch_run = tf.function(
    lambda x, s: char_step_model([x, s], training=False), reduce_retracing=True
)
per_seed, gaps = {}, {}  # gaps: log p - (-H) of every character, per rule
for name, options in settings.items():
    ids, logprobs, entropies = sample_batch(
        batch_run, cfg.units, prompt_ids, cfg.sample_chars, seeds, **options
    )
    texts = ["".join(chars[i] for i in row) for row in ids]
    per_seed[name] = pd.DataFrame(
        [
            sample_properties(*args, train_words)
            for args in zip(texts, logprobs, entropies, strict=True)
        ]
    )
    gaps[name] = (logprobs + entropies).ravel()
sample_table = pd.DataFrame({name: df.mean() for name, df in per_seed.items()}).T
sample_sem = pd.DataFrame({name: df.sem() for name, df in per_seed.items()}).T
display(sample_table.style.format("{:.2f}"))

# %% [markdown]
# The asserts below keep the statements that follow true, on the averages over seeds (greedy decoding is
# deterministic: its {glue:text}`sample_seeds` rows are the same sample). The gap between the mean
# log-probability and minus the entropy, $\ln P(c_t \mid c_{<t}) + H_t$, has mean zero at every step of a
# sample drawn at $\tau = 1$, so its average over all {glue:text}`sample_seeds` × {glue:text}`sample_chars`
# characters must lie within a few standard errors of zero; at $\tau = 0.5$ it must be clearly positive and
# at $\tau = 1.5$ clearly negative.

# %%
table_style = sample_table.style.format("{:.2f}")
glue("tab_gen_samples", table_style, display=False)
keys = dict(zip(settings, ["greedy", "t05", "t10", "t15", "topk", "topp"], strict=True))
shorts = ["lp", "mh", "d2", "rep", "known"]
shorts = dict(zip(sample_table.columns, shorts, strict=True))
for name, key in keys.items():
    for column, short in shorts.items():
        value = float(sample_table.loc[name, column])
        glue(f"sample_{key}_{short}", value, display=False)
    glue(
        f"sample_{key}_known_sem",
        float(sample_sem.loc[name, "known words (%)"]),
        display=False,
    )
    gap = gaps[name]
    glue(f"gap_{key}", float(gap.mean()), display=False)
    glue(f"gap_{key}_abs", float(abs(gap.mean())), display=False)
    glue(f"gap_{key}_se", float(gap.std() / np.sqrt(gap.size)), display=False)


def gap_in_se(name):  # mean gap in standard errors of the mean
    return gaps[name].mean() / (gaps[name].std() / np.sqrt(gaps[name].size))


# %%
lp, known = sample_table["mean log-prob"], sample_table["known words (%)"]
rep = sample_table["repetition (4-grams)"]
assert rep["greedy"] > rep["T = 1.0"]
assert lp["greedy"] > lp["T = 0.5"] > lp["T = 1.0"] > lp["T = 1.5"]
assert abs(gap_in_se("T = 1.0")) < 4 and gap_in_se("T = 0.5") > 4
assert gap_in_se("T = 1.5") < -4 and gaps["greedy"].min() >= 0
assert known["T = 1.5"] < known["T = 1.0"] < known["T = 0.5"]
assert min(known["top-k = 10"], known["top-p = 0.9"]) > known["T = 1.0"]
samples = {}
for name in ["greedy", "T = 0.5", "top-p = 0.9", "T = 1.5"]:
    out = generate(
        char_step,
        zero_state,
        prompt_ids,
        cfg.sample_chars,
        rng=np.random.default_rng(0),
        **settings[name],
    )
    samples[name] = "".join(chars[i] for i in out.ids)
    print(f"--- {name} (seed 0) ---\n{prompt}{samples[name][:300]}\n")

# %% [markdown]
# ```{glue:figure} tab_gen_samples
# :name: tab-gen-samples
#
# Properties of samples from the character GRU after the prompt "ROMEO:", one row per decoding rule, each
# the mean over {glue:text}`sample_seeds` samples of {glue:text}`sample_chars` characters (seeds 0, 1, …):
# mean log-probability per character under the model and minus the model's mean entropy along the same
# sample (both in nats), distinct-2 and repetition rate of word 4-grams (both over whitespace-separated
# words), and the percentage of words that occur in the training text.
# ```
#
# Greedy decoding writes the text the model finds most likely, character by character (mean log-probability
# {glue:text}`sample_greedy_lp:.2f` nats per character, far above minus its entropy,
# {glue:text}`sample_greedy_mh:.2f`), and that is exactly its problem: it tends to fall into a loop, and
# {glue:text}`sample_greedy_rep:.2f` of its word 4-grams repeat an earlier one (distinct-2
# {glue:text}`sample_greedy_d2:.2f`). Sampling at $\tau = 1$ has few loops (repetition rate
# {glue:text}`sample_t10_rep:.2f`) and is typical for the model: its mean log-probability,
# {glue:text}`sample_t10_lp:.2f`, is within {glue:text}`gap_t10_abs:.3f` nats of minus the entropy along the
# same samples (standard error {glue:text}`gap_t10_se:.3f`), and of the order of the validation loss of
# {glue:text}`char_val_nats:.2f` nats. It takes the model's uncertainty at face value, though, and every
# unlikely character it draws pushes the text further from English. Lowering the temperature to 0.5 keeps the
# sampler in the high-probability region (log-probability {glue:text}`gap_t05:.2f` nats per character above
# minus the entropy) and trades diversity for safety: {glue:text}`sample_t05_known:.0f`% of its words are real
# words from the training text, against {glue:text}`sample_t10_known:.0f`% at $\tau = 1$. Raising it to 1.5
# gives the tail its say ({glue:text}`gap_t15_abs:.2f` nats per character below) and the spelling degrades
# ({glue:text}`sample_t15_known:.0f`% real words). Top-k and top-p cut the tail without flattening the head:
# their samples stay diverse (distinct-2 {glue:text}`sample_topk_d2:.2f` and
# {glue:text}`sample_topp_d2:.2f`) with more real words ({glue:text}`sample_topk_known:.1f`% and
# {glue:text}`sample_topp_known:.1f`%, against {glue:text}`sample_t10_known:.1f`% at $\tau = 1$; standard
# errors over seeds {glue:text}`sample_topk_known_sem:.1f`, {glue:text}`sample_topp_known_sem:.1f` and
# {glue:text}`sample_t10_known_sem:.1f`).

# %% [markdown]
# ## Tokenisation matters: the same GRU on BPE tokens
#
# A character model spends one GRU step on every character. Byte-pair encoding (chapter 01,
# {cite:p}`sennrich2016`) merges frequent character sequences into tokens, so the same number of steps covers
# more text, at the price of a larger softmax and fewer examples per token type. To make the encoding
# lossless we pre-tokenise with the pattern below, which keeps a word's leading space with the word (as GPT-2
# does) and makes every other whitespace character its own piece; chapter 01's `BPE` learns merges on these
# pieces of the training text, and decoding concatenates the tokens and drops the end-of-word markers.

# %%
PIECE_PATTERN = re.compile(r" ?\w+| ?[^\w\s]+|\s")


def bpe_tokenize(bpe: BPE, text: str) -> list[str]:
    """Lossless BPE tokens of ``text``: pieces (a word with its leading space,
    punctuation, single whitespace characters) encoded by ``bpe``."""
    pieces = PIECE_PATTERN.findall(text)
    assert "".join(pieces) == text
    return [token for piece in pieces for token in bpe.encode_word(piece)]


def bpe_detokenize(bpe: BPE, tokens: list[str]) -> str:
    """The inverse of :func:`bpe_tokenize`: join tokens, drop end-of-word markers."""
    return "".join(tokens).replace(bpe.end_of_word, "")


# %% [markdown]
# The cell learns the merges, adds every character as a piece-final token (any character may end a piece),
# and asserts that both parts of the text decode back to exactly the same characters.

# %%
start = time.perf_counter()
bpe = BPE.learn(Counter(PIECE_PATTERN.findall(train_text)), cfg.bpe_merges)
bpe_vocab = list(dict.fromkeys([*bpe.vocab, *(c + bpe.end_of_word for c in chars)]))
bpe_token_to_id = {t: i for i, t in enumerate(bpe_vocab)}
bpe_train_tokens = bpe_tokenize(bpe, train_text)
bpe_valid_tokens = bpe_tokenize(bpe, valid_text)
assert bpe_detokenize(bpe, bpe_valid_tokens) == valid_text
assert bpe_detokenize(bpe, bpe_train_tokens) == train_text
bpe_train_ids = np.array([bpe_token_to_id[t] for t in bpe_train_tokens], np.int32)
bpe_valid_ids = np.array([bpe_token_to_id[t] for t in bpe_valid_tokens], np.int32)
chars_per_token = len(train_text) / len(bpe_train_tokens)
print(
    f"{len(bpe.merges)} merges, vocabulary {len(bpe_vocab)} tokens "
    f"({time.perf_counter() - start:.1f} s); train {len(bpe_train_tokens):,} tokens "
    f"({chars_per_token:.2f} characters/token)"
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
# tokenised language model reports.) The final figures read the validation tokens as a stream, as for
# characters (the last training token first), and divide by the number of validation characters; the
# per-epoch log divides the windowed loss by the characters that the windows' targets spell.

# %%
bpe_train_ds = window_dataset(
    bpe_train_ids, cfg.seq_len, cfg.batch_size, shuffle=True, seed=2
)
bpe_valid_ds = window_dataset(bpe_valid_ids, cfg.seq_len, 256, shuffle=False)
num_valid_windows = (len(bpe_valid_ids) - 1) // cfg.seq_len
bpe_target_tokens = bpe_valid_tokens[1 : num_valid_windows * cfg.seq_len + 1]
bpe_target_chars = len(bpe_detokenize(bpe, bpe_target_tokens))
valid_chars_per_token = bpe_target_chars / (num_valid_windows * cfg.seq_len)
glue("bpe_merges", len(bpe.merges), display=False)
glue("bpe_vocab", len(bpe_vocab), display=False)
glue("bpe_vocab_ratio", len(bpe_vocab) / len(chars), display=False)
glue("chars_per_token", chars_per_token, display=False)

# %% [markdown]
# A fair comparison gives both tokenisations the same model (the same GRU, windows of {glue:text}`seq_len`
# tokens, batches of {glue:text}`batch_size`), the same number of updates and the same learning-rate
# schedule. The BPE model trains for {glue:text}`compare_steps` updates with the schedule of the character
# run above, whose first half is a constant learning rate; {glue:text}`compare_steps` updates lie within it,
# so the character model's snapshot after {glue:text}`compare_steps` steps is exactly its equal-update
# partner, and the snapshot whose training clock is closest to the BPE run's total is its equal-seconds
# partner. (Fewer updates than the character model's whole run, to keep the chapter's budget.)

# %%
bpe_model = compile_model(
    build_char_model(len(bpe_vocab), cfg.embed_dim, cfg.units),
    cfg.learning_rate,
    total_steps,  # the character run's schedule; compare_steps lie in its constant half
)
bpe_log = TrainLog("BPE GRU", valid_chars_per_token)
bpe_history = bpe_model.fit(
    bpe_train_ds,
    epochs=1,
    steps_per_epoch=cfg.compare_steps,
    validation_data=bpe_valid_ds,
    verbose=0,
    shuffle=False,
    callbacks=[bpe_log],
)
assert int(bpe_model.optimizer.iterations) == cfg.compare_steps
bpe_seconds = bpe_log.clock
eq_steps = min(
    char_log.snapshots, key=lambda s: abs(char_log.snapshots[s][0] - bpe_seconds)
)
print(
    f"BPE: {cfg.compare_steps} updates in {bpe_seconds:.1f} s; character snapshots: "
    + ", ".join(f"{s}: {c:.1f} s" for s, (c, _) in char_log.snapshots.items())
)

# %% [markdown]
# The BPE model and the two character snapshots are scored on the validation text read as a stream.

# %%
def stream_bits(model: keras.Model, first_input: int, ids, num_chars: int) -> float:
    """Validation bits per character of ``model`` on ``ids`` read as a stream."""
    nll = streaming_nll(build_step_model(model), first_input, ids)
    return nll / math.log(2) / num_chars


def model_from_weights(weights, vocab_size: int, embed_dim: int, units: int):
    """A fresh ``build_char_model`` with the given weights (a snapshot)."""
    model = build_char_model(vocab_size, embed_dim, units)
    model.set_weights(weights)
    return model


char_stream_args = (int(train_ids[-1]), valid_ids, len(valid_text))
bpe_val_bits = stream_bits(
    bpe_model, int(bpe_train_ids[-1]), bpe_valid_ids, len(valid_text)
)
char_eq = {}  # steps -> (training seconds, stream bits per character)
for steps in dict.fromkeys([cfg.compare_steps, eq_steps]):
    seconds, weights = char_log.snapshots[steps]
    model = model_from_weights(weights, len(chars), cfg.embed_dim, cfg.units)
    char_eq[steps] = (seconds, stream_bits(model, *char_stream_args))
char_eq_updates_s, char_eq_updates_bits = char_eq[cfg.compare_steps]
char_eq_seconds_s, char_eq_seconds_bits = char_eq[eq_steps]
print(
    f"streamed, bits/char: BPE {bpe_val_bits:.4f} ({cfg.compare_steps} updates, "
    f"{bpe_seconds:.0f} s); characters {char_eq_updates_bits:.4f} ({cfg.compare_steps}"
    f" updates, {char_eq_updates_s:.0f} s), {char_eq_seconds_bits:.4f} ({eq_steps} "
    f"updates, {char_eq_seconds_s:.0f} s)"
)

# %% [markdown]
# Generation speed, in characters of text per second: both models generate with one step per token through
# the same `generate` loop (top-p sampling, seeded), so a BPE step that writes several characters at once is
# the whole difference.

# %%
def chars_per_second(step_fn, state, prompt_ids, decode, n: int) -> tuple[float, str]:
    """Characters of generated text per second, after a short warm-up (tracing), and the
    generated text; ``decode`` turns token ids into text."""
    generate(step_fn, state, prompt_ids, 5, top_p=0.9, rng=np.random.default_rng(1))
    start = time.perf_counter()
    out = generate(
        step_fn, state, prompt_ids, n, top_p=0.9, rng=np.random.default_rng(1)
    )
    text_out = decode(out.ids)
    return len(text_out) / (time.perf_counter() - start), text_out


# %%
char_cps, _ = chars_per_second(
    char_step,
    zero_state,
    prompt_ids,
    lambda ids: "".join(chars[i] for i in ids),
    cfg.sample_chars,
)
bpe_cps, bpe_sample = chars_per_second(
    make_step_fn(build_step_model(bpe_model)),
    zero_state,
    [bpe_token_to_id[t] for t in bpe_tokenize(bpe, prompt)],
    lambda ids: bpe_detokenize(bpe, [bpe_vocab[i] for i in ids]),
    round(cfg.sample_chars / chars_per_token),
)
print(f"--- BPE GRU, top-p = 0.9 ---\n{prompt}{bpe_sample[:300]}")

# %% [markdown]
# The table collects the comparison, the character model at the end of its run and the 5-gram.

# %%
window_chars = cfg.batch_size * cfg.seq_len  # characters (or tokens) per update
rows = [
    ("GRU on characters", cfg.compare_steps, char_eq_updates_s, char_eq_updates_bits),
    (
        f"GRU on BPE tokens ({len(bpe.merges)} merges)",
        cfg.compare_steps,
        bpe_seconds,
        bpe_val_bits,
    ),
    (
        "GRU on characters, equal seconds",
        eq_steps,
        char_eq_seconds_s,
        char_eq_seconds_bits,
    ),
    ("GRU on characters, whole run", train_steps, char_log.clock, char_stream_bits),
]
# %%
comparison = pd.DataFrame(
    [
        dict(updates=n, seconds=s, text=float(n * window_chars), bits=b)
        for _, n, s, b in rows
    ],
    index=[name for name, *_ in rows],
)
comparison.loc[rows[1][0], "text"] *= chars_per_token  # a BPE update reads more text
comparison.loc["5-gram Kneser–Ney"] = [np.nan, kn_seconds, len(train_text), kn_bits]
comparison.columns = [
    "updates",
    "training s",
    "text read (chars)",
    "validation bits/char",
]
comparison_style = comparison.style.format(precision=3, na_rep="–").format(
    "{:,.0f}", subset=["updates", "training s", "text read (chars)"], na_rep="–"
)

# %% [markdown]
# The training curves of the two models, in bits per character (each step's training loss per token divided
# by $\ln 2$ and by the characters per token of the training text, averaged over 10 steps), against updates
# and against training seconds.

# %%
def smooth(values, width: int = 10) -> np.ndarray:
    """Moving average over ``width`` consecutive values (shorter at the start)."""
    values = np.asarray(values, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - width, 0)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


# %%
limit = int(2.5 * cfg.compare_steps)  # the range of the comparison
fig, (ax_steps, ax_seconds) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for name, log, per_token in [
    ("characters", char_log, 1.0),
    ("BPE tokens", bpe_log, chars_per_token),
]:
    bits = smooth(log.step_losses[:limit]) / (math.log(2) * per_token)
    clock = np.concatenate([[0.0], np.cumsum(log.step_seconds[1:limit])])
    ax_steps.plot(np.arange(1, len(bits) + 1), bits, label=f"GRU on {name}")
    ax_seconds.plot(clock, bits, label=f"GRU on {name}")
ax_steps.axvline(cfg.compare_steps, color="grey", linestyle="--", linewidth=0.8)
ax_seconds.axvline(bpe_seconds, color="grey", linestyle="--", linewidth=0.8)
ax_steps.set(xlabel="updates", ylabel="training bits per character")
ax_seconds.set(xlabel="training seconds (first step excluded)", ylim=(None, 4.5))
ax_steps.legend()
glue("fig_gen_bpe", fig, display=False)
plt.close(fig)

# %%
eq_updates = bpe_val_bits - char_eq_updates_bits
eq_seconds = bpe_val_bits - char_eq_seconds_bits
for name, value in [
    ("char_eq_updates_bits", char_eq_updates_bits),
    ("char_eq_seconds_bits", char_eq_seconds_bits),
    ("char_eq_seconds_s", char_eq_seconds_s),
    ("bpe_val_bits", bpe_val_bits),
    ("bpe_seconds", bpe_seconds),
    ("eq_updates_abs", abs(eq_updates)),
    ("eq_seconds_abs", abs(eq_seconds)),
    ("bpe_step_s", np.median(bpe_log.step_seconds[1:])),
    ("char_gen_cps", char_cps),
    ("bpe_gen_cps", bpe_cps),
    ("bpe_speedup", bpe_cps / char_cps),
]:
    glue(name, float(value), display=False)
glue("eq_updates_word", "more" if eq_updates > 0 else "fewer", display=False)
glue("eq_seconds_word", "more" if eq_seconds > 0 else "fewer", display=False)
bpe_step_ratio = np.median(bpe_log.step_seconds[1:]) / char_step_s
glue("bpe_step_word", "slower" if bpe_step_ratio > 1 else "no slower", display=False)
glue("compare_steps", cfg.compare_steps, display=False)
glue("eq_steps", int(eq_steps), display=False)
glue("tab_gen_comparison", comparison_style, display=False)

# %% [markdown]
# ```{glue:figure} fig_gen_bpe
# :name: fig-gen-bpe
# :figwidth: 100%
#
# Training bits per character of the same GRU on characters and on BPE tokens, with the same learning rate,
# against the number of updates (left) and the training seconds measured on this machine (right); the
# dashed lines mark the BPE run's end.
# ```
#
# ```{glue:figure} tab_gen_comparison
# :name: tab-gen-comparison
#
# Characters against BPE tokens, with the same GRU: updates, training time (the first step, which traces
# the model, excluded) and text read, and validation bits per character read as a stream
# {eq}`eq-gen-bpc-tokens`. The first three rows are the comparison at equal updates and equal seconds; the
# last two are the character model at the end of its run and the counting baseline on the same split.
# ```
#
# With {glue:text}`bpe_merges` merges the vocabulary has {glue:text}`bpe_vocab` tokens
# ({glue:text}`bpe_vocab_ratio:.0f` times as many as characters) and a token spells
# {glue:text}`chars_per_token:.2f` characters on average (spaces and newlines are frequent pieces of their
# own), so each BPE update reads that many times as much text. After {glue:text}`compare_steps` updates the
# BPE model needs {glue:text}`bpe_val_bits:.3f` bits per character, {glue:text}`eq_updates_abs:.3f`
# {glue:text}`eq_updates_word` than the character model after as many ({glue:text}`char_eq_updates_bits:.3f`).
# Its updates are {glue:text}`bpe_step_word` ({glue:text}`bpe_step_s:.3f` s against
# {glue:text}`char_step_s:.3f` s: the softmax is {glue:text}`bpe_vocab_ratio:.0f` times as wide), so at equal seconds the comparison is with the
# character model after {glue:text}`eq_steps` updates ({glue:text}`char_eq_seconds_s:.0f` s against the BPE
# run's {glue:text}`bpe_seconds:.0f` s), which needs {glue:text}`char_eq_seconds_bits:.3f`: the BPE model
# needs {glue:text}`eq_seconds_abs:.3f` bits per character {glue:text}`eq_seconds_word`. These are one run of
# each, partway through training, and the seconds depend on the machine. Against the extra text each update reads,
# the BPE model must learn {glue:text}`bpe_vocab_ratio:.0f` times as many input and output vectors, each from
# fewer examples. What BPE buys for certain is generation speed: one step writes
# {glue:text}`chars_per_token:.1f` characters, so it generates {glue:text}`bpe_speedup:.1f` times as many
# characters per second ({glue:text}`bpe_gen_cps:,.0f` against {glue:text}`char_gen_cps:,.0f`; timings
# vary), and a window of {glue:text}`seq_len` tokens covers more text. Whatever the tokens, compare models in
# bits per character (or per byte), never in loss per token.

# %% [markdown]
# ## Saving and reloading the generator
#
# The one-step model is the generator: it holds the embedding, the GRU and the output layer, with the trained
# weights. Keras's native `.keras` format stores its architecture as JSON and its weights, and loads it with
# `safe_mode=True`, which refuses to deserialise arbitrary Python code (lambdas); our model has none. We write
# it to a temporary directory, reload it, check that it computes the same logits and states, and generate
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
reload_diff = max(
    float(np.abs(a - b).max() / np.abs(a).max())
    for a, b in zip(original_out, reloaded_out, strict=True)
)
assert reload_diff <= 1e-6
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
    f"saved {saved_megabytes:.1f} MB; reloaded logits and states differ by "
    f"{reload_diff:.1e} (relative); same top-p sample:\n"
    f"{prompt}{samples['top-p = 0.9'][:200]}"
)
glue("reload_diff", reload_diff, display=False)

# %% [markdown]
# The reloaded generator computes the same logits and states (largest difference {glue:text}`reload_diff:.1e`
# of the largest value) and writes the same top-p sample as the original, character for character. (A
# complete generator also needs the vocabulary, `chars` here; save it next to the model, for example as
# JSON.)
#
# ## Exercises
#
# 1. **Width against time.** Train GRU-512 (batch 64) for the same wall-clock time as this run's
#    GRU-{glue:text}`units`. Predict from the step times in this chapter which one ends lower, then measure.
#    At what training time would you expect the wider model to overtake?
# 2. **Decoding, more rules.** Add $\tau = 0.7$, top-p = 0.95 and top-k = 10 with $\tau = 0.8$ to the sample
#    table. Which differences between rows are larger than two standard errors over seeds?
# 3. **Top-p with temperature.** `sample_logits` applies the temperature *before* top-p. Predict how the
#    number of tokens kept by top-p = 0.9 changes with $\tau = 0.5$ and $\tau = 1.5$, then count it along a
#    sample. Would applying the temperature after the filter change which tokens can be drawn?
# 4. **Context the GRU uses.** Evaluate the trained character model on validation windows of 20, 50, 100 and
#    400 characters (change `seq_len` in `window_dataset` for validation only). Predict the shape of bits per
#    character against window length; where does the curve cross the 5-gram's {glue:text}`kn_bits:.2f`?
# 5. **More merges.** Repeat the BPE comparison with 200 and 2000 merges for the same number of updates.
#    Predict the characters per token, the generation speed and the bits per character, then measure. Why
#    can a larger vocabulary hurt on a million characters of training text?
# 6. Show that the expected log-probability of a token drawn at $\tau = 1$ is minus the entropy of the model's
#    next-token distribution, so that the mean of $\ln P(c_t \mid c_{<t}) + H_t$ along a sample has
#    expectation 0. Show that for $\tau < 1$ the expectation is positive (hint: the derivative of
#    $\mathbb{E}_{p_\beta}[\ln p]$ with respect to $\beta = 1/\tau$, for $p_\beta \propto p^\beta$, is a
#    variance). Why then is the greedy sample's mean log-probability not a measure of its quality?
#
# ## Summary
#
# * A character language model predicts each character from the ones before it {eq}`eq-gen-chain-rule`; its
#   cross-entropy in nats divided by $\ln 2$ is bits per character {eq}`eq-gen-bpc`, comparable across
#   tokenisations when the total is divided by the number of characters {eq}`eq-gen-bpc-tokens`.
# * Size the model for learning per second: on this machine GRU-256 read {glue:text}`step_speed_ratio:.1f`
#   times as many characters per second as the tutorial's GRU-1024. This run's GRU-{glue:text}`units`
#   reached a validation loss of {glue:text}`char_val_nats:.3f` nats per character in
#   {glue:text}`train_minutes:.1f` minutes; read as a stream, the validation text costs it
#   {glue:text}`char_stream_bits:.3f` bits per character, {glue:text}`gru_gain_bits:.3f` bits less than a
#   5-gram Kneser–Ney model ({glue:text}`kn_bits:.3f`).
# * Generate with a one-step model that carries the recurrent state: the same logits as re-reading the prefix
#   (relative difference {glue:text}`state_rel_diff:.1e`), at a cost linear in the length of the text.
# * Greedy decoding loops; temperature trades diversity against errors; top-k and nucleus (top-p) sampling cut
#   the unreliable tail. `lmlib.generate` implements them on plain logits, with a `generate` loop over any
#   (token, state) → (logits, state) step function; a sample's mean log-probability, set against minus the
#   model's entropy, says whether it is typical, and distinct-2 and repetition rate measure loops.
# * Tokenisation matters, and bits per character make it measurable: with the same GRU and
#   {glue:text}`compare_steps` updates, BPE tokens ({glue:text}`bpe_merges` merges) reached
#   {glue:text}`bpe_val_bits:.3f` bits per character against the characters'
#   {glue:text}`char_eq_updates_bits:.3f` ({glue:text}`char_eq_seconds_bits:.3f` at equal training
#   seconds), while generating
#   {glue:text}`bpe_speedup:.1f` times as many characters per second.
# * A `.keras` file with `safe_mode=True` saves and restores the generator exactly.
