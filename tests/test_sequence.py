"""CTC loss and decoders: against brute force, optax, PyTorch and Keras; gradients; sharding.

The references:

* a float64 sum over every alignment (``K**T`` paths) on tiny cases;
* ``optax.ctc_loss`` and ``torch.nn.functional.ctc_loss`` (float64) on random padded batches
  with repeated labels, values and gradients;
* a float64 log-space alpha recursion differentiated by JAX, and central differences;
* ``keras.ops.ctc_loss``, ``keras.losses.ctc``/``CTC`` and ``keras.ops.ctc_decode``;
* for the decoders, the best path and the exact labeling probabilities by enumeration.

The sharded run (a ``Mesh`` of 8 CPU devices) is this file run as a script in a subprocess
started with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losses_jax as lj
from losses_jax._extended_range import LOG_PROB_FLOOR


# --------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------
def log_softmax64(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def collapse(path, blank: int) -> tuple:
    """The labeling of an alignment: repeats merged, blanks removed."""
    out, previous = [], None
    for c in path:
        if c != previous and c != blank:
            out.append(int(c))
        previous = c
    return tuple(out)


def labeling_probabilities(logp: np.ndarray, blank: int) -> dict:
    """Every labeling's probability, summed over all ``K**T`` alignments (float64)."""
    steps, num_classes = logp.shape
    probs: dict = {}
    for path in itertools.product(range(num_classes), repeat=steps):
        p = np.exp(sum(logp[t, c] for t, c in enumerate(path)))
        key = collapse(path, blank)
        probs[key] = probs.get(key, 0.0) + p
    return probs


def brute_force_nll(labels, logits, blank: int) -> float:
    """-log P(labels | logits) by enumerating every alignment; ``inf`` if there is none."""
    if len(logits) == 0:
        return 0.0 if len(labels) == 0 else np.inf
    p = labeling_probabilities(log_softmax64(logits), blank).get(tuple(int(c) for c in labels), 0.0)
    return -np.log(p) if p > 0 else np.inf


def frames_needed(labels) -> int:
    """Frames the shortest alignment needs: one per label plus a blank between equal neighbours."""
    labels = list(labels)
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def random_batch(rng, batch, steps, num_classes, max_len, blank=0, repeats=True):
    """Logits, labels (never the blank, with repeats) and lengths whose alignments exist."""
    logits = rng.normal(size=(batch, steps, num_classes)).astype(np.float32)
    choices = [c for c in range(num_classes) if c != blank]
    labels = rng.choice(choices, size=(batch, max_len)).astype(np.int32)
    if repeats:
        labels[:, 1] = labels[:, 0]  # a repeat in every sequence
    target_lengths = rng.integers(max_len // 2, max_len + 1, size=batch).astype(np.int32)
    output_lengths = np.empty(batch, np.int32)
    for b in range(batch):
        need = frames_needed(labels[b, : target_lengths[b]])
        output_lengths[b] = rng.integers(min(need + 1, steps), steps + 1)
    return logits, labels, target_lengths, output_lengths


def jax_logspace_reference(labels, logits, target_lengths, output_lengths, blank):
    """A plain log-space alpha recursion (differentiable by JAX), one sequence at a time."""
    losses = []
    for b in range(logits.shape[0]):
        logp = jax.nn.log_softmax(logits[b], axis=-1)
        ext = [blank]
        for c in np.asarray(labels[b, : target_lengths[b]]):
            ext += [int(c), blank]
        ext = np.asarray(ext)
        skip = np.zeros(len(ext), bool)
        skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
        # a large finite log-zero: log-sum-exp of -inf entries has a NaN derivative in JAX
        neg = jnp.full((2,), -1e30, logp.dtype)
        alpha = None
        for t in range(int(output_lengths[b])):
            if alpha is None:  # the first frame starts in the first blank or the first label
                start = np.where(np.arange(len(ext)) < 2, 0.0, -1e30)
                alpha = jnp.asarray(start, logp.dtype) + logp[t, ext]
                continue
            prev1 = jnp.concatenate([neg[:1], alpha])[: len(ext)]
            prev2 = jnp.where(skip, jnp.concatenate([neg, alpha])[: len(ext)], -1e30)
            stacked = jnp.stack([alpha, prev1, prev2])
            alpha = jax.scipy.special.logsumexp(stacked, axis=0) + logp[t, ext]
        if alpha is None:
            losses.append(jnp.asarray(0.0 if target_lengths[b] == 0 else jnp.inf, logp.dtype))
        else:
            losses.append(-jax.scipy.special.logsumexp(alpha[-2:] if len(ext) > 1 else alpha))
    return jnp.stack(losses)


def seeds(count: int, default: int) -> list:
    """``range(count)`` as pytest params, the seeds past the first ``default`` in the slow tier."""
    return [pytest.param(s, marks=[pytest.mark.slow] * (s >= default)) for s in range(count)]


# --------------------------------------------------------------------------------------
# against brute force
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", seeds(12, default=4))
def test_matches_brute_force_on_tiny_cases(seed):
    rng = np.random.default_rng(seed)
    batch = 4
    steps = int(rng.integers(1, 7))
    num_classes = int(rng.integers(2, 4))
    max_len = int(rng.integers(1, 4))
    blank = int(rng.integers(0, num_classes))
    logits = (2 * rng.normal(size=(batch, steps, num_classes))).astype(np.float32)
    labels = rng.choice([c for c in range(num_classes) if c != blank], size=(batch, max_len))
    target_lengths = rng.integers(0, max_len + 1, size=batch)
    output_lengths = rng.integers(0, steps + 1, size=batch)
    got = lj.ctc_loss(labels, logits, target_lengths, output_lengths, mask_index=blank)
    for b in range(batch):
        expected = brute_force_nll(
            labels[b, : target_lengths[b]], logits[b, : output_lengths[b]], blank
        )
        if np.isinf(expected):
            assert np.isinf(got[b]) and got[b] > 0
        else:
            np.testing.assert_allclose(got[b], expected, rtol=2e-6, atol=2e-6)


def test_blank_can_be_the_last_class():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 5, 3)).astype(np.float32)
    labels = np.array([[0, 1], [1, 1]])
    for mask_index in (2, -1):
        got = lj.ctc_loss(labels, logits, [2, 2], [5, 5], mask_index=mask_index)
        for b in range(2):
            np.testing.assert_allclose(got[b], brute_force_nll(labels[b], logits[b], 2), rtol=2e-6)


def test_impossible_alignment_is_inf_with_zero_gradient():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 3)).astype(np.float32)
    # [1, 1, 1] needs 5 frames; [1, 2, 1] fits in 3; [2] needs 1 but gets 0 frames
    labels = np.array([[1, 1, 1], [1, 2, 1], [2, 0, 0]])
    target_lengths, output_lengths = np.array([3, 3, 1]), np.array([4, 3, 0])
    loss = lj.ctc_loss(labels, logits, target_lengths, output_lengths)
    assert np.isinf(loss[0]) and np.isfinite(loss[1]) and np.isinf(loss[2])

    grad = jax.grad(lambda x: jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths)))(
        logits
    )
    assert np.all(np.isfinite(grad)) and not np.any(grad[0]) and not np.any(grad[2])

    zeroed = lj.ctc_loss(labels, logits, target_lengths, output_lengths, zero_infinity=True)
    np.testing.assert_array_equal(np.asarray(zeroed)[[0, 2]], 0.0)
    np.testing.assert_allclose(zeroed[1], loss[1])
    grad_zeroed = jax.grad(
        lambda x: jnp.sum(
            lj.ctc_loss(labels, x, target_lengths, output_lengths, zero_infinity=True)
        )
    )(logits)
    np.testing.assert_array_equal(grad_zeroed, grad)


def test_empty_target_is_minus_the_blank_log_probabilities():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 6, 4)).astype(np.float32)
    for blank in (0, 3):
        loss = lj.ctc_loss(np.zeros((2, 3), int), logits, [0, 0], [6, 4], mask_index=blank)
        logp = log_softmax64(logits)
        np.testing.assert_allclose(loss[0], -logp[0, :, blank].sum(), rtol=1e-6)
        np.testing.assert_allclose(loss[1], -logp[1, :4, blank].sum(), rtol=1e-6)


def test_zero_frames():
    logits = np.zeros((2, 3, 4), np.float32)
    loss = lj.ctc_loss(np.ones((2, 2), int), logits, [0, 2], [0, 0])
    assert loss[0] == 0.0 and np.isinf(loss[1])
    grad = jax.grad(lambda x: lj.ctc_loss(np.ones((2, 2), int), x, [0, 2], [0, 0])[0])(logits)
    assert not np.any(grad)


def test_padded_frames_get_exactly_zero_gradient_and_do_not_matter():
    rng = np.random.default_rng(4)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 4, 12, 5, 4)
    output_lengths[:] = [12, 9, 7, 5]

    def total(x):
        return jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths))

    grad = np.asarray(jax.grad(total)(logits))
    for b, length in enumerate(output_lengths):
        assert not np.any(grad[b, length:])
        assert np.all(np.abs(grad[b, :length]).sum(-1) > 0)
    garbage = logits.copy()
    for b, length in enumerate(output_lengths):
        garbage[b, length:] = rng.normal(size=garbage[b, length:].shape) * 100
    np.testing.assert_array_equal(total(garbage), total(logits))


def test_loss_is_never_negative():
    # A near-certain alignment: the true probability rounds to 1 and log(1) may round below 0.
    logits = np.full((2, 3, 3), -30.0, np.float32)
    logits[:, 0, 1] = logits[:, 1, 0] = logits[:, 2, 2] = 30.0
    loss = lj.ctc_loss([[1, 2], [1, 2]], logits, [2, 2], [3, 3])
    assert np.all(np.asarray(loss) >= 0.0)
    assert np.all(np.asarray(loss) < 1e-6)


def test_labels_past_the_target_length_are_ignored():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(1, 6, 4)).astype(np.float32)
    a = lj.ctc_loss([[1, 2, 3, 3]], logits, [2], [6])
    b = lj.ctc_loss([[1, 2, 0, 1]], logits, [2], [6])
    np.testing.assert_array_equal(a, b)


def test_extreme_logits_are_finite_and_peaked_logits_exact():
    labels = np.array([[1, 2, 2]])
    # 1e4 on the blank everywhere: each label frame costs 1e4 nats; the alignments with one
    # frame per label (35 of the 56 ways to pick 3 of 8 frames keep the two 2s apart) dominate.
    peaked = np.where(np.arange(4) == 0, 1e4, 0.0) * np.ones((1, 8, 4))
    loss = float(lj.ctc_loss(labels, peaked.astype(np.float32), [3], [8])[0])
    np.testing.assert_allclose(loss, 3e4 - np.log(35.0), rtol=1e-7)
    # Beyond the floor the cost per frame saturates at -LOG_PROB_FLOOR; it stays finite.
    huge = np.where(np.arange(4) == 0, 1e30, -1e30) * np.ones((1, 8, 4))
    value, grad = jax.value_and_grad(lambda x: lj.ctc_loss(labels, x, [3], [8])[0])(
        huge.astype(np.float32)
    )
    assert np.isfinite(value) and value >= -3 * LOG_PROB_FLOOR * 0.99
    assert np.all(np.isfinite(grad))


def test_large_logits_keep_float32_precision():
    # Equal logits of 1e4: the log-softmax must be formed as (x - max) - log(sum), exactly
    # -log 5, not x - logsumexp(x), which rounds to 1e-3 at 1e4.
    logits = np.full((1, 8, 5), 1e4, np.float32)
    expected = brute_force_nll([1, 2], np.zeros((8, 5)), 0)
    np.testing.assert_allclose(lj.ctc(np.array([[1, 2, 0]]), logits)[0], expected, rtol=1e-6)


@pytest.mark.parametrize(
    "blank_margin, num_labels, steps",
    [
        pytest.param(5, 30, 40, marks=pytest.mark.slow),
        pytest.param(15, 30, 40, marks=pytest.mark.slow),
        (20, 40, 45),  # the tightest: the default tier's case
    ],
)
def test_tight_alignments_with_a_confident_blank(blank_margin, num_labels, steps):
    # A trained model's blank leads by a few nats and the target needs almost every frame: the
    # alignments that can finish trail the ones that stay on blanks by far more than float32's
    # range (2**-126) within a frame. A recursion rescaled per frame in float32 flushes them
    # and returns +inf; the exact loss is finite.
    labels = np.random.default_rng(num_labels).permutation(np.arange(1, 64))[:num_labels]
    logits = np.zeros((1, steps, 64), np.float32)
    logits[:, :, 0] = blank_margin
    value, grad = jax.value_and_grad(
        lambda x: lj.ctc_loss(labels[None], x, [num_labels], [steps])[0]
    )(logits)
    with jax.enable_x64(True):  # the log-space reference in float64
        expected, expected_grad = jax.jit(
            jax.value_and_grad(
                lambda x: jax_logspace_reference(labels[None], x, [num_labels], [steps], 0)[0]
            )
        )(jnp.asarray(logits, jnp.float64))
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, atol=5e-6)


def test_neg_inf_logits_on_unused_classes():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(2, 6, 5)).astype(np.float32)
    logits[:, :, 4] = -np.inf  # class 4 masked, never a target
    labels = np.array([[1, 2], [3, 3]])
    value, grad = jax.value_and_grad(lambda x: jnp.sum(lj.ctc_loss(labels, x, [2, 2], [6, 6])))(
        logits
    )
    expected = sum(brute_force_nll(labels[b], logits[b, :, :4], 0) for b in range(2))
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    assert np.all(np.isfinite(grad)) and not np.any(grad[:, :, 4])


# --------------------------------------------------------------------------------------
# against optax and PyTorch
# --------------------------------------------------------------------------------------
def test_matches_optax_values_and_gradients():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(7)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 6, 40, 7, 10)
    logit_paddings = (np.arange(40)[None] >= output_lengths[:, None]).astype(np.float32)
    label_paddings = (np.arange(10)[None] >= target_lengths[:, None]).astype(np.float32)

    def ours(x):
        return lj.ctc_loss(labels, x, target_lengths, output_lengths)

    def theirs(x):
        return optax.ctc_loss(x, logit_paddings, labels, label_paddings)

    np.testing.assert_allclose(ours(logits), theirs(logits), rtol=1e-5)
    weights = jnp.arange(1.0, 7.0)
    g_ours = jax.grad(lambda x: jnp.sum(ours(x) * weights))(logits)
    g_theirs = jax.grad(lambda x: jnp.sum(theirs(x) * weights))(logits)
    np.testing.assert_allclose(g_ours, g_theirs, atol=2e-5)


def torch_ctc(labels, logits, target_lengths, output_lengths, blank, zero_infinity=False):
    """PyTorch's CTC in float64: ``(losses, d sum(losses * weights) / d logits)``."""
    torch = pytest.importorskip("torch")
    x = torch.tensor(np.asarray(logits, np.float64), requires_grad=True)
    logp = torch.log_softmax(x, dim=-1).transpose(0, 1)  # (T, B, K)
    losses = torch.nn.functional.ctc_loss(
        logp,
        torch.tensor(np.asarray(labels, np.int64)),
        torch.tensor(np.asarray(output_lengths, np.int64)),
        torch.tensor(np.asarray(target_lengths, np.int64)),
        blank=blank,
        reduction="none",
        zero_infinity=zero_infinity,
    )
    weights = torch.arange(1, len(losses) + 1, dtype=torch.float64)
    (grad,) = torch.autograd.grad((losses * weights).sum(), x)
    return losses.detach().numpy(), grad.numpy()


@pytest.mark.parametrize("blank", [0, 3, 6])
def test_matches_torch_values_and_gradients(blank):
    rng = np.random.default_rng(8 + blank)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 5, 30, 7, 8, blank=blank)
    expected, expected_grad = torch_ctc(labels, logits, target_lengths, output_lengths, blank)
    weights = jnp.arange(1.0, 6.0)

    def weighted(x):
        return jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths, blank) * weights)

    np.testing.assert_allclose(
        lj.ctc_loss(labels, logits, target_lengths, output_lengths, blank), expected, rtol=1e-5
    )
    np.testing.assert_allclose(jax.grad(weighted)(logits), expected_grad, atol=2e-5)


def test_zero_infinity_matches_torch():
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(3, 5, 4)).astype(np.float32)
    labels = np.array([[1, 1, 1, 1], [1, 2, 3, 1], [2, 2, 0, 0]])
    target_lengths, output_lengths = np.array([4, 4, 2]), np.array([5, 5, 5])
    expected, expected_grad = torch_ctc(
        labels, logits, target_lengths, output_lengths, 0, zero_infinity=True
    )
    weights = jnp.arange(1.0, 4.0)

    def weighted(x):
        loss = lj.ctc_loss(labels, x, target_lengths, output_lengths, zero_infinity=True)
        return jnp.sum(loss * weights)

    np.testing.assert_allclose(
        lj.ctc_loss(labels, logits, target_lengths, output_lengths, zero_infinity=True),
        expected,
        rtol=1e-5,
    )
    np.testing.assert_allclose(jax.grad(weighted)(logits), expected_grad, atol=2e-5)


# --------------------------------------------------------------------------------------
# gradients in float64
# --------------------------------------------------------------------------------------
def test_gradient_matches_autodiff_of_a_float64_reference():
    rng = np.random.default_rng(10)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 3, 9, 4, 4, blank=2)
    target_lengths[0] = 0
    with jax.enable_x64(True):
        x = jnp.asarray(logits, jnp.float64)
        weights = jnp.arange(1.0, 4.0, dtype=jnp.float64)

        def ours(x):
            return jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths, 2) * weights)

        def reference(x):
            loss = jax_logspace_reference(labels, x, target_lengths, output_lengths, 2)
            return jnp.sum(loss * weights)

        value, grad = jax.value_and_grad(ours)(x)
        assert value.dtype == jnp.float64 and grad.dtype == jnp.float64
        ref_value, ref_grad = jax.jit(jax.value_and_grad(reference))(x)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12)
        np.testing.assert_allclose(grad, ref_grad, atol=1e-12)
    # float32 against the same float64 reference
    grad32 = jax.grad(
        lambda x: jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths, 2) * weights)
    )(logits)
    np.testing.assert_allclose(grad32, ref_grad, atol=2e-6)


@pytest.mark.slow  # the float64 autodiff reference above checks the same gradient
def test_gradient_matches_finite_differences_in_float64():
    from jax.test_util import check_grads

    rng = np.random.default_rng(11)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 3, 8, 4, 3, blank=0)
    with jax.enable_x64(True):

        def loss(x):
            per_sequence = lj.ctc_loss(labels, x, target_lengths, output_lengths)
            return jnp.sum(per_sequence * jnp.arange(1.0, 4.0, dtype=jnp.float64))

        check_grads(
            loss, (jnp.asarray(logits, jnp.float64),), order=1, modes=("rev",), atol=1e-7, rtol=1e-7
        )


# --------------------------------------------------------------------------------------
# low precision
# --------------------------------------------------------------------------------------
@pytest.mark.slow  # tests/test_low_precision.py::test_ctc_at_a_realistic_size in make test
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_inputs(dtype):
    rng = np.random.default_rng(12)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 4, 50, 20, 12)
    reference = lj.ctc_loss(labels, logits, target_lengths, output_lengths)

    def total(x):
        return jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths))

    low = jnp.asarray(logits, dtype)
    value = lj.ctc_loss(labels, low, target_lengths, output_lengths)
    grad = jax.grad(total)(low)
    assert value.dtype == jnp.float32 and grad.dtype == dtype
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(np.asarray(grad, np.float32)))
    np.testing.assert_allclose(value, reference, rtol=3e-2)
    # the class loss returns the requested dtype
    loss = lj.CTC(dtype=dtype)(np.where(np.arange(12) < target_lengths[:, None], labels, 0), low)
    assert loss.dtype == dtype and np.isfinite(float(loss))


# --------------------------------------------------------------------------------------
# Keras
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("mask_index", [0, 6])
def test_matches_keras_ops_ctc_loss(keras, mask_index):
    rng = np.random.default_rng(13)
    logits, labels, target_lengths, output_lengths = random_batch(
        rng, 4, 25, 7, 6, blank=mask_index
    )
    expected = keras.ops.ctc_loss(labels, logits, target_lengths, output_lengths, mask_index)
    got = lj.ctc_loss(labels, logits, target_lengths, output_lengths, mask_index)
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", None])
def test_matches_keras_ctc_and_CTC(keras, reduction):
    rng = np.random.default_rng(14)
    logits = rng.normal(size=(4, 20, 6)).astype(np.float32)
    labels = rng.integers(1, 6, size=(4, 5))
    labels[1, 3:] = 0  # right-padded with the blank, as Keras expects
    labels[2, 1:] = 0
    np.testing.assert_allclose(
        lj.ctc(labels, logits), np.asarray(keras.losses.ctc(labels, logits)), rtol=1e-5
    )
    expected = keras.losses.CTC(reduction=reduction)(labels, logits)
    got = lj.CTC(reduction=reduction)(labels, logits)
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-5)


def test_ctc_takes_the_non_blank_labels_in_order():
    rng = np.random.default_rng(15)
    logits = rng.normal(size=(2, 10, 5)).astype(np.float32)
    packed = lj.ctc(np.array([[1, 2, 3, 0, 0], [4, 4, 0, 0, 0]]), logits)
    scattered = lj.ctc(np.array([[0, 1, 0, 2, 3], [4, -1, 4, 0, -1]]), logits)
    np.testing.assert_array_equal(packed, scattered)
    blank_last = lj.ctc(np.array([[1, 2, 3, 4, 4], [0, 0, 4, 4, 4]]), logits, mask_index=4)
    expected = lj.ctc_loss([[1, 2, 3], [0, 0, 0]], logits, [3, 2], [10, 10], mask_index=4)
    np.testing.assert_allclose(blank_last, expected)


def test_normalize_by_target_length_is_torch_mean():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    logits = rng.normal(size=(3, 12, 5)).astype(np.float32)
    labels = np.array([[1, 2, 3, 4], [2, 2, 0, 0], [3, 0, 0, 0]])
    lengths = np.array([4, 2, 1])
    loss = lj.CTC(normalize_by_target_length=True)(labels, logits)
    logp = torch.log_softmax(torch.tensor(logits, dtype=torch.float64), -1).transpose(0, 1)
    expected = torch.nn.functional.ctc_loss(
        logp, torch.tensor(labels), torch.full((3,), 12), torch.tensor(lengths), reduction="mean"
    )
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-5)
    per_sequence = lj.ctc(labels, logits, normalize_by_target_length=True)
    np.testing.assert_allclose(per_sequence, lj.ctc(labels, logits) / lengths, rtol=1e-6)


def test_class_config_round_trip_and_identifiers():
    loss = lj.CTC(
        mask_index=3, zero_infinity=True, normalize_by_target_length=True, reduction="sum"
    )
    config = loss.get_config()
    assert config["mask_index"] == 3 and config["zero_infinity"] is True
    assert lj.CTC.from_config(config) == loss and hash(lj.CTC.from_config(config)) == hash(loss)
    assert lj.get("ctc") is lj.ctc and isinstance(lj.get("CTC"), lj.CTC)
    assert lj.deserialize(lj.serialize(loss)) == loss


@pytest.mark.slow  # vmap of the value and of the gradient: tests/test_transformations.py
def test_jit_and_vmap():
    rng = np.random.default_rng(17)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 4, 15, 5, 4)
    eager = lj.ctc_loss(labels, logits, target_lengths, output_lengths)
    jitted = jax.jit(lj.ctc_loss)(labels, logits, target_lengths, output_lengths)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    stacked = jax.vmap(lj.ctc_loss)(
        np.stack([labels, labels]),
        np.stack([logits, logits[::-1]]),
        np.stack([target_lengths] * 2),
        np.stack([output_lengths] * 2),
    )
    np.testing.assert_allclose(stacked[0], eager, rtol=1e-6)
    grads = jax.vmap(
        jax.grad(lambda x: jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths)))
    )(np.stack([logits, logits]))
    assert grads.shape == (2, *logits.shape) and np.all(np.isfinite(grads))


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((np.zeros((2, 3), int), np.zeros((2, 5)), [3, 3], [5, 5]), ValueError, "`output`"),
        ((np.zeros((2, 3, 1), int), np.zeros((2, 5, 4)), [3, 3], [5, 5]), ValueError, "`target`"),
        ((np.zeros((3, 3), int), np.zeros((2, 5, 4)), [3, 3], [5, 5]), ValueError, "3 sequences"),
        (
            (np.zeros((2, 3), int), np.zeros((2, 5, 4)), [3, 3, 3], [5, 5]),
            ValueError,
            "target_length",
        ),
    ],
)
def test_misuse_raises(args, error, match):
    with pytest.raises(error, match=match):
        lj.ctc_loss(*args)
    with pytest.raises(error, match=match):
        jax.jit(lj.ctc_loss)(*args)


def test_bad_mask_index_raises():
    with pytest.raises(ValueError, match="mask_index"):
        lj.ctc_loss(np.zeros((1, 2), int), np.zeros((1, 4, 3)), [2], [4], mask_index=3)
    with pytest.raises(TypeError, match="mask_index"):
        lj.CTC(mask_index=0.5)


# --------------------------------------------------------------------------------------
# decoders
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", seeds(6, default=3))
def test_greedy_decode_matches_the_best_path(seed):
    rng = np.random.default_rng(100 + seed)
    steps, num_classes = 5, 3
    blank = int(rng.integers(0, num_classes))
    logits = rng.normal(size=(4, steps, num_classes)).astype(np.float32)
    lengths = rng.integers(0, steps + 1, size=4)
    for merge in (True, False):
        decoded, log_probs = jax.jit(
            lambda x, n, merge=merge: lj.ctc_greedy_decode(x, n, merge, mask_index=blank)
        )(logits, lengths)
        assert decoded.shape == (1, 4, steps) and decoded.dtype == jnp.int32
        assert log_probs.shape == (4, 1)
        for b in range(4):
            logp = log_softmax64(logits[b])[: lengths[b]]
            best = max(
                itertools.product(range(num_classes), repeat=int(lengths[b])),
                key=lambda path, logp=logp: sum(logp[t, c] for t, c in enumerate(path)),
            )
            if merge:
                expected = list(collapse(best, blank))
            else:
                expected = [c for c in best if c != blank]
            row = np.asarray(decoded[0, b])
            assert row[: len(expected)].tolist() == expected and np.all(row[len(expected) :] == -1)
            np.testing.assert_allclose(
                log_probs[b, 0], sum(logp[t, c] for t, c in enumerate(best)), atol=1e-5
            )


@pytest.mark.parametrize("seed", seeds(8, default=3))
def test_beam_search_is_exact_with_a_wide_beam(seed):
    rng = np.random.default_rng(200 + seed)
    steps = int(rng.integers(1, 6))
    num_classes = int(rng.integers(2, 4))
    blank = int(rng.integers(0, num_classes))
    logits = (1.5 * rng.normal(size=(3, steps, num_classes))).astype(np.float32)
    lengths = rng.integers(0, steps + 1, size=3)
    top_paths = 3
    decoded, log_probs = jax.jit(
        lambda x, n: lj.ctc_beam_search_decode(
            x, n, beam_width=64, top_paths=top_paths, mask_index=blank
        )
    )(logits, lengths)
    assert decoded.shape == (top_paths, 3, steps) and log_probs.shape == (3, top_paths)
    for b in range(3):
        if lengths[b]:
            probs = labeling_probabilities(log_softmax64(logits[b, : lengths[b]]), blank)
        else:
            probs = {(): 1.0}
        ranked = sorted(probs.values(), reverse=True)
        for p in range(top_paths):
            row = np.asarray(decoded[p, b])
            labeling = tuple(int(c) for c in row if c >= 0)
            assert np.all(row[len(labeling) :] == -1)
            if p < len(ranked):
                # the p-th best probability, and the labeling has it (ties may swap labelings)
                np.testing.assert_allclose(np.exp(log_probs[b, p]), ranked[p], rtol=1e-4)
                np.testing.assert_allclose(probs[labeling], ranked[p], rtol=1e-4)
            else:
                assert np.isneginf(log_probs[b, p])


def test_beam_search_narrow_beam_and_keras_agreement(keras):
    rng = np.random.default_rng(300)
    logits = (2 * rng.normal(size=(3, 12, 5))).astype(np.float32)
    lengths = np.array([12, 9, 4])
    decoded, log_probs = lj.ctc_beam_search_decode(logits, lengths, beam_width=8, top_paths=2)
    assert np.all(np.diff(np.asarray(log_probs), axis=1) <= 0)  # best first
    k_decoded, k_log_probs = keras.ops.ctc_decode(
        logits, lengths, strategy="beam_search", beam_width=8, top_paths=2, mask_index=0
    )
    np.testing.assert_array_equal(np.asarray(decoded[0]), np.asarray(k_decoded[0]))
    np.testing.assert_allclose(log_probs[:, 0], np.asarray(k_log_probs)[:, 0], rtol=1e-4)
    g_decoded, _ = lj.ctc_greedy_decode(logits, lengths)
    k_greedy, _ = keras.ops.ctc_decode(logits, lengths, strategy="greedy", mask_index=0)
    np.testing.assert_array_equal(np.asarray(g_decoded), np.asarray(k_greedy))


def test_decoder_arguments_are_checked():
    logits = np.zeros((1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="top_paths"):
        lj.ctc_beam_search_decode(logits, [3], beam_width=2, top_paths=3)
    with pytest.raises(ValueError, match="beam_width"):
        lj.ctc_beam_search_decode(logits, [3], beam_width=0)
    with pytest.raises(ValueError, match="logits"):
        lj.ctc_greedy_decode(np.zeros((3, 3)), [3])


# --------------------------------------------------------------------------------------
# batch-sharded inputs on 8 devices (subprocess)
# --------------------------------------------------------------------------------------
def _sharded_worker(out: Path) -> None:
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    assert jax.device_count() == 8, jax.devices()
    rng = np.random.default_rng(18)
    logits, labels, target_lengths, output_lengths = random_batch(rng, 16, 30, 6, 8)

    def value_and_grad(x, y, tl, ol):
        return jax.value_and_grad(lambda x: jnp.mean(lj.ctc_loss(y, x, tl, ol)))(x)

    plain = jax.jit(value_and_grad)(logits, labels, target_lengths, output_lengths)
    mesh = Mesh(np.array(jax.devices()), ("batch",))

    def shard(x):
        spec = P("batch", *([None] * (np.ndim(x) - 1)))
        return jax.device_put(x, NamedSharding(mesh, spec))

    args = [shard(a) for a in (logits, labels, target_lengths, output_lengths)]
    sharded = jax.jit(value_and_grad)(*args)
    assert len(sharded[1].sharding.device_set) == 8
    # a mesh with explicit axes: every batch-shaped intermediate must stay batch-sharded
    from jax.sharding import AxisType

    explicit = jax.make_mesh((8,), ("batch",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(explicit):
        put = [
            jax.device_put(a, NamedSharding(explicit, P("batch", *([None] * (np.ndim(a) - 1)))))
            for a in (logits, labels, target_lengths, output_lengths)
        ]
        explicit_result = jax.jit(value_and_grad)(*put)
        assert explicit_result[1].sharding.spec[0] == "batch"
    np.savez(
        out / "sharded.npz",
        plain_value=plain[0],
        plain_grad=plain[1],
        sharded_value=sharded[0],
        sharded_grad=sharded[1],
        explicit_value=explicit_result[0],
        explicit_grad=explicit_result[1],
    )


def test_batch_sharded_inputs_under_jit(tmp_path):
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    proc = subprocess.run(
        [sys.executable, __file__, str(tmp_path)], env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = np.load(tmp_path / "sharded.npz")
    for mode in ("sharded", "explicit"):
        np.testing.assert_allclose(result[f"{mode}_value"], result["plain_value"], rtol=1e-5)
        np.testing.assert_allclose(result[f"{mode}_grad"], result["plain_grad"], atol=1e-5)


if __name__ == "__main__":
    _sharded_worker(Path(sys.argv[1]))


def test_empty_batch():
    labels, logits = jnp.zeros((0, 3), jnp.int32), jnp.zeros((0, 5, 4))
    lengths = jnp.zeros((0,), jnp.int32)
    assert lj.ctc_loss(labels, logits, lengths, lengths).shape == (0,)
    grad = jax.grad(lambda x: lj.ctc_loss(labels, x, lengths, lengths).sum())(logits)
    assert grad.shape == (0, 5, 4)
    # Keras returns an empty batch's per-sample losses unreduced, whatever the reduction.
    for reduction in ("sum_over_batch_size", "sum", "none"):
        assert lj.CTC(reduction=reduction)(labels, logits).shape == (0,)


@pytest.mark.parametrize("padded", [True, False])
def test_return_alignment_matches_optax_forward_probs(padded):
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(11)
    batch, steps, num_classes, max_len = 5, 12, 6, 4
    logits, labels, target_lengths, output_lengths = random_batch(
        rng, batch, steps, num_classes, max_len
    )
    if padded:  # an empty target, a sequence without frames (impossible: +inf) and padding
        target_lengths[1], output_lengths[2] = 0, 0
        labels[3, target_lengths[3] :] = 0  # padding labels are used as given, by both
    else:
        target_lengths[:], output_lengths[:] = max_len, steps
    logit_paddings = (np.arange(steps)[None] >= output_lengths[:, None]).astype(np.float32)
    label_paddings = (np.arange(max_len)[None] >= target_lengths[:, None]).astype(np.float32)
    expected = optax.ctc_loss_with_forward_probs(logits, logit_paddings, labels, label_paddings)
    run = jax.jit(lambda x: lj.ctc_loss(labels, x, target_lengths, output_lengths, return_alignment=True))  # fmt: skip
    loss, log_blank, log_emit = run(logits)
    # optax's log-zero is log_epsilon (-1e5) plus a little: there we give exactly -inf
    impossible = np.asarray(expected[0]) > 5e4
    assert impossible.any() == padded
    np.testing.assert_allclose(loss[~impossible], expected[0][~impossible], rtol=1e-5)
    assert np.all(np.isinf(loss[impossible]))
    for ours, theirs in ((log_blank, expected[1]), (log_emit, expected[2])):
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        zero = np.asarray(theirs) < -5e4
        np.testing.assert_array_equal(np.isneginf(ours), zero)
        np.testing.assert_allclose(np.where(zero, 0, ours), np.where(zero, 0, theirs), atol=1e-5)
    np.testing.assert_allclose(-log_blank[-1, np.arange(batch), target_lengths], loss, rtol=1e-6)

    # the alignment is an auxiliary output without derivative; the loss's gradient is unchanged
    def objective(x, with_alignment):
        loss, log_blank, _ = run(x)
        total = jnp.sum(jnp.where(impossible, 0.0, loss))
        if with_alignment:
            total = total + jnp.sum(jnp.where(jnp.isfinite(log_blank), log_blank, 0.0))
        return total

    plain, both = (jax.grad(objective)(logits, flag) for flag in (False, True))
    np.testing.assert_array_equal(plain, both)
