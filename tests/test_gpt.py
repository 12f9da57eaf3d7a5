"""Tests of lmlib.gpt (chapter 08): the parameter-count formula, causality at every
position, the key-value cache equal to the full forward pass and to recomputation in
generation, the weight-decay groups of make_adamw, nanoGPT's schedule, the batches, the
training loop's log, the whole-split loss and the race's training on windows."""

import math
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from lmlib.generate import generate  # noqa: E402
from lmlib.gpt import (  # noqa: E402
    GPT,
    WarmupCosine,
    build_gpt,
    cached_forward,
    empty_cache,
    gpt_param_count,
    gru_lm,
    kv_cache_step_fn,
    make_adamw,
    random_windows,
    recompute_step_fn,
    split_loss,
    train_lm,
    train_on_windows,
    windows_loss,
    windows_scorer,
)

TINY = dict(vocab_size=11, block_size=8, d_model=16, num_heads=2, num_layers=2)


@pytest.fixture(scope="module")
def tiny():
    return build_gpt(seed=0, **TINY)


@pytest.mark.parametrize(
    "settings",
    [TINY, {**TINY, "num_layers": 3, "d_model": 24, "num_heads": 3, "block_size": 5}],
)
def test_parameter_count_formula_equals_keras(settings):
    model = build_gpt(seed=1, **settings)
    expected = gpt_param_count(
        settings["vocab_size"],
        settings["block_size"],
        settings["d_model"],
        settings["num_layers"],
    )
    assert model.count_params() == expected


def test_gpt2_init_scales_residual_projections(tiny):
    block = tiny.blocks[0]
    inner = np.std(block.ff_inner.kernel.numpy())
    outer = np.std(block.ff_outer.kernel.numpy())
    assert abs(inner - 0.02) < 0.004
    assert abs(outer - 0.02 / math.sqrt(2 * TINY["num_layers"])) < 0.002


def test_logits_before_a_position_ignore_every_later_token(tiny):
    ids = np.random.default_rng(0).integers(0, 11, (1, 8)).astype(np.int32)
    base = tiny(ids).numpy()
    for p in range(1, 8):
        changed = ids.copy()
        changed[0, p:] = (changed[0, p:] + 3) % 11
        moved = tiny(changed).numpy()
        np.testing.assert_array_equal(base[0, :p], moved[0, :p])
        assert np.abs(base[0, p:] - moved[0, p:]).max() > 0


def test_cached_forward_in_chunks_equals_the_full_pass(tiny):
    ids = np.random.default_rng(1).integers(0, 11, (1, 8)).astype(np.int32)
    full = tiny(ids).numpy()
    cache, parts, start = empty_cache(tiny), [], 0
    for size in (3, 1, 1, 3):
        logits, cache = cached_forward(tiny, ids[:, start : start + size], cache, start)
        parts.append(np.asarray(logits))
        start += size
    np.testing.assert_allclose(np.concatenate(parts, 1), full, atol=1e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_cached_generation_equals_recomputation_past_the_block(tiny, jit):
    step, state = kv_cache_step_fn(tiny, jit_compile=jit)
    cached = generate(step, state, [1, 2], 30, temperature=0)
    step, state = recompute_step_fn(tiny)
    recomputed = generate(step, state, [1, 2], 30, temperature=0)
    assert cached.ids == recomputed.ids
    np.testing.assert_allclose(cached.logprobs, recomputed.logprobs, atol=1e-5)


def test_weight_decay_only_on_two_dimensional_weights():
    model = build_gpt(seed=0, **{**TINY, "use_bias": True})
    names = {v.path: len(v.shape) for v in model.trainable_variables}
    assert any("norm" in path and dims == 1 for path, dims in names.items())
    assert any("bias" in path for path in names)
    optimizer = make_adamw(model, 0.1, weight_decay=0.5, clipnorm=None)
    before = [v.numpy() for v in model.trainable_variables]
    zeros = [np.zeros(v.shape, "float32") for v in model.trainable_variables]
    # Adam's first step, with zero gradients: only the decay moves a weight
    optimizer.apply_gradients(zip(zeros, model.trainable_variables, strict=True))
    for variable, old in zip(model.trainable_variables, before, strict=True):
        factor = 1 - 0.1 * 0.5 if len(variable.shape) >= 2 else 1.0
        np.testing.assert_allclose(variable.numpy(), factor * old, rtol=1e-6)


def nanogpt_lr(it, peak=1e-3, warmup=100, decay=2000, minimum=1e-4):
    if it < warmup:
        return peak * (it + 1) / (warmup + 1)
    if it > decay:
        return minimum
    ratio = (it - warmup) / (decay - warmup)
    return minimum + 0.5 * (1 + math.cos(math.pi * ratio)) * (peak - minimum)


def test_schedule_is_nanogpts_get_lr():
    schedule = WarmupCosine(1e-3, 100, 2000, 1e-4)
    for it in (0, 1, 50, 99, 100, 101, 1000, 1999, 2000, 2500):
        assert float(schedule(it)) == pytest.approx(nanogpt_lr(it), rel=1e-5)


def test_random_windows_targets_are_inputs_shifted_by_one():
    ids = np.arange(100)
    x, y = random_windows(ids, 10, 7, np.random.default_rng(0))
    assert x.shape == y.shape == (7, 10)
    np.testing.assert_array_equal(y, x + 1)


def test_train_lm_logs_estimates_and_a_clock_without_the_first_step():
    calls = []
    log = train_lm(
        lambda x, y: calls.append(x) or 1.5,
        lambda: (np.zeros((1, 2)), np.zeros((1, 2))),
        steps=7,
        estimate=lambda: {"valid": float(len(calls))},
        eval_every=3,
        verbose=False,
    )
    assert log["step"] == [0, 3, 6, 7] and log["valid"] == [0, 3, 6, 7]
    assert len(calls) == 7 and log["loss"] == [1.5] * 7
    assert log["seconds"][-1] == pytest.approx(sum(log["step_seconds"][1:]))


def test_split_loss_scores_every_target_once(tiny):
    ids = np.random.default_rng(2).integers(0, 11, 30).astype(np.int32)
    x, y = ids[:24].reshape(3, 8), ids[1:25].reshape(3, 8)
    logits = tiny(x).numpy().astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -np.take_along_axis(logp, y[..., None], -1).mean()
    assert split_loss(tiny, ids, 8, batch=2) == pytest.approx(expected, rel=1e-5)
    assert windows_loss(tiny, x, y, batch=3) == pytest.approx(expected, rel=1e-5)


def test_one_scorer_serves_every_window_length(tiny):
    ids = np.random.default_rng(3).integers(0, 11, (6, 9)).astype(np.int32)
    score = windows_scorer(tiny, batch=4)
    for length in (8, 5):
        x, y = ids[:, :length], ids[:, 1 : length + 1]
        assert score(x, y) == pytest.approx(windows_loss(tiny, x, y), rel=1e-6)


@pytest.mark.parametrize("name", ["GPT", "GRU"])
def test_train_on_windows_lowers_the_loss_of_either_model(name):
    keras.utils.set_random_seed(0)
    if name == "GPT":
        model = build_gpt(seed=0, **TINY)
    else:
        model = gru_lm(TINY["vocab_size"], embed_dim=8, units=16)
    ids = np.tile(np.arange(11, dtype=np.int32), 20)  # a sequence easy to learn
    x, y = random_windows(ids, 8, 16, np.random.default_rng(0))
    score = windows_scorer(model)
    settings = dict(batch=8, steps=40, lr=1e-2)
    log = train_on_windows(
        model,
        ids,
        8,
        settings,
        lambda: {"valid": score(x, y)},
        4,
        jit_compile=False,
        verbose=False,
    )
    assert log["step"] == [0, 10, 20, 30, 40]
    assert log["valid"][-1] < 0.7 * log["valid"][0]


def test_gpt_survives_a_keras_round_trip(tiny, tmp_path):
    path = tmp_path / "gpt.keras"
    tiny.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, GPT)
    ids = np.arange(8, dtype=np.int32)[None]
    np.testing.assert_allclose(loaded(ids), tiny(ids), atol=1e-6)
