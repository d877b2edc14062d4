"""CLIP, SigLIP, NT-Xent and SupCon: parity with optax and the float64 references, ``where`` and
``mask`` semantics, and the ring of devices against the unsharded losses (one 8-device
subprocess).

Every grid runs through one jitted function (one compilation), over seeded cases of one shape.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from _contrastive_sharded_worker import SUMMARY_PREFIX
from test_sharding import ROOT, TESTS, worker_env

import losses_jax as lj

RTOL, ATOL = 1e-5, 1e-6
BATCH, DIM = 12, 5


def _cases(count=6):
    """Seeded (x, y, labels, where, temperature): every other case leaves rows out."""
    for seed in range(count):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(BATCH, DIM)).astype(np.float32)
        y = (x + rng.normal(size=(BATCH, DIM))).astype(np.float32)
        labels = rng.integers(0, 3, size=BATCH).astype(np.int32)
        where = rng.uniform(size=BATCH) > 0.3 if seed % 2 else np.ones(BATCH, bool)
        yield x, y, labels, where, [0.07, 0.5, 1.0][seed % 3]


@jax.jit
def _two_tower_losses(x, y, where, temperature, bias):
    clip = lj.clip_contrastive(x, y, temperature=temperature, where=where)
    siglip = lj.siglip_sigmoid(x, y, temperature=temperature, bias=bias, where=where)
    return clip, siglip


def test_clip_and_siglip_match_the_float64_references():
    for x, y, _, where, temperature in _cases():
        clip, siglip = _two_tower_losses(x, y, where, temperature, -2.0)
        expected = ref.clip_contrastive(x, y, temperature, where=where)
        np.testing.assert_allclose(clip, expected, rtol=RTOL, atol=ATOL)
        expected = ref.siglip_sigmoid(x, y, temperature, -2.0, where=where)
        np.testing.assert_allclose(siglip, expected, rtol=RTOL, atol=ATOL)


def test_clip_and_siglip_match_optax_cross_entropies_in_value_and_gradient():
    """open_clip's ClipLoss is the mean of two optax softmax cross-entropies (rows and columns);
    big_vision's sigmoid loss is optax's sigmoid BCE against ``(z + 1) / 2``, summed per row
    and divided by the batch."""
    optax = pytest.importorskip("optax")

    def theirs(x, y, temperature, bias):
        x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
        y = y / jnp.linalg.norm(y, axis=1, keepdims=True)
        logits = x @ y.T / temperature
        ids = jnp.arange(x.shape[0])
        ce = optax.losses.softmax_cross_entropy_with_integer_labels
        clip = 0.5 * (jnp.mean(ce(logits, ids)) + jnp.mean(ce(logits.T, ids)))
        bce = optax.losses.sigmoid_binary_cross_entropy(logits + bias, jnp.eye(x.shape[0]))
        return clip, jnp.sum(bce) / x.shape[0]

    def ours(x, y, temperature, bias):
        siglip = lj.SiglipSigmoid(temperature=temperature, bias=bias)
        return lj.ClipContrastive(temperature=temperature)(x, y), siglip(x, y)

    @jax.jit
    def both(x, y, temperature, bias):
        grads = [
            jax.value_and_grad(lambda *a, i=i, f=f: f(*a)[i], argnums=(0, 1, 2, 3))(
                x, y, temperature, bias
            )
            for f in (ours, theirs)
            for i in (0, 1)
        ]
        return grads[:2], grads[2:]

    for x, y, _, _, temperature in _cases():
        actual, expected = both(x, y, temperature, -2.0)
        for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_ntxent_matches_optax_in_value_and_gradient():
    optax = pytest.importorskip("optax")

    @jax.jit
    def both(labels, e, temperature):
        ours = jax.value_and_grad(lambda v: lj.NTXent(temperature=temperature)(labels, v))(e)
        theirs = jax.value_and_grad(lambda v: optax.losses.ntxent(v, labels, temperature))(e)
        return ours, theirs

    for x, _, labels, _, temperature in _cases(count=8):
        (value, grad), (expected, expected_grad) = both(labels, x, temperature)
        np.testing.assert_allclose(value, expected, rtol=RTOL)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-5)


@jax.jit
def _labelled_losses(labels, x, where, temperature):
    return (
        lj.ntxent(labels, x, temperature=temperature, where=where),
        lj.supervised_contrastive(labels, x, temperature=temperature, where=where),
    )


def test_labelled_losses_match_the_references():
    for x, _, labels, where, temperature in _cases():
        ntxent, supcon = _labelled_losses(labels, x, where, temperature)
        expected = ref.ntxent(labels, x, temperature, where=where)
        np.testing.assert_allclose(ntxent, expected, rtol=RTOL, atol=ATOL)
        expected = ref.supervised_contrastive(labels, x, temperature, where=where)
        np.testing.assert_allclose(supcon, expected, rtol=RTOL, atol=ATOL)


def _class_losses(temperature):
    return (
        lj.ClipContrastive(temperature=temperature),
        lj.SiglipSigmoid(temperature=temperature, bias=-1.0),
        lj.NTXent(temperature=temperature),
        lj.SupervisedContrastive(temperature=temperature),
    )


@jax.jit
def _reduced(x, y, labels, keep):
    """Each class loss with ``where=keep``, with ``mask=keep``, and on the kept rows only."""
    clip, siglip, ntxent, supcon = _class_losses(0.5)
    pairs = ((clip, x, y), (siglip, x, y), (ntxent, labels, x), (supcon, labels, x))

    def dropped(a, b):
        return a[::3], b[::3]  # the rows `keep` below keeps

    return (
        [loss(a, b, where=keep) for loss, a, b in pairs],
        [loss(a, b, mask=keep) for loss, a, b in pairs],
        [loss(*dropped(a, b)) for loss, a, b in pairs],
    )


def test_where_and_mask_are_the_same_as_dropping_the_rows():
    """A masked row is no anchor, positive or negative of any other row: the same value as
    the batch without it, with ``where=`` or the call's ``mask=``."""
    keep = np.arange(BATCH) % 3 == 0
    for x, y, labels, _, _ in _cases(count=3):
        with_where, with_mask, without = _reduced(x, y, labels, keep)
        np.testing.assert_allclose(with_where, without, rtol=RTOL, atol=ATOL)
        np.testing.assert_array_equal(with_mask, with_where)


def test_masked_rows_get_no_gradient_and_move_no_other_row():
    x, y, labels, _, _ = next(_cases())
    keep = np.arange(BATCH) % 3 == 0
    junk = np.where(keep[:, None], x, 1e3).astype(np.float32)  # padding of any value

    @jax.jit
    def grads(x):
        clip, siglip, ntxent, supcon = _class_losses(0.5)
        return [
            jax.grad(lambda v: clip(v, y, mask=keep))(x),
            jax.grad(lambda v: siglip(v, y, mask=keep))(x),
            jax.grad(lambda v: ntxent(labels, v, mask=keep))(x),
            jax.grad(lambda v: supcon(labels, v, mask=keep))(x),
        ]

    for clean, padded in zip(grads(x), grads(junk)):
        np.testing.assert_array_equal(np.asarray(padded)[~keep], 0.0)
        np.testing.assert_allclose(padded, clean, rtol=RTOL, atol=ATOL)


def test_learnable_temperature_gradient_matches_finite_differences():
    x, y, _, where, _ = list(_cases(count=2))[1]

    def total(log_t, bias):
        t = jnp.exp(log_t)
        clip = lj.clip_contrastive(x, y, temperature=t, where=where).sum()
        return clip + lj.siglip_sigmoid(x, y, temperature=t, bias=bias, where=where).sum()

    with jax.enable_x64():
        x, y = x.astype(np.float64), y.astype(np.float64)
        value_and_grad = jax.jit(jax.value_and_grad(total, argnums=(0, 1)))
        _, grad = value_and_grad(-1.0, -2.0)
        h = 1e-6
        d_t = (value_and_grad(-1.0 + h, -2.0)[0] - value_and_grad(-1.0 - h, -2.0)[0]) / (2 * h)
        d_b = (value_and_grad(-1.0, -2.0 + h)[0] - value_and_grad(-1.0, -2.0 - h)[0]) / (2 * h)
    np.testing.assert_allclose(grad, (d_t, d_b), rtol=1e-6)


def test_bfloat16_embeddings_accumulate_in_float32():
    x, y, _, _, _ = next(_cases())
    low = jax.jit(lj.clip_contrastive, static_argnames="temperature")(
        x.astype(jnp.bfloat16), y.astype(jnp.bfloat16), temperature=0.5
    )
    assert low.dtype == jnp.bfloat16
    expected = ref.clip_contrastive(
        np.asarray(x.astype(jnp.bfloat16), np.float64),
        np.asarray(y.astype(jnp.bfloat16), np.float64),
        0.5,
    )
    np.testing.assert_allclose(np.asarray(low, np.float64), expected, rtol=1e-2)


def test_bad_inputs_name_the_argument():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="same shape"):
        lj.clip_contrastive(x, x[:3])
    with pytest.raises(ValueError, match="temperature"):
        lj.ClipContrastive(temperature=0.0)
    with pytest.raises(ValueError, match="where"):
        lj.siglip_sigmoid(x, x, where=np.ones(3, bool))
    with pytest.raises(ValueError, match="mask"):
        lj.SiglipSigmoid()(x, x, mask=np.ones((4, 2), bool))
    with pytest.raises(ValueError, match="axis_name"):
        lj.clip_contrastive(x, x, mesh=object())


def run_sharded_worker(rows: int, dim: int) -> dict:
    command = [sys.executable, str(TESTS / "_contrastive_sharded_worker.py"), str(rows), str(dim)]
    proc = subprocess.run(
        command, cwd=ROOT, env=worker_env(devices=8), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith(SUMMARY_PREFIX)][-1]
    return json.loads(line[len(SUMMARY_PREFIX) :])


def _check_agreement(summary: dict):
    for key, value in summary.items():
        if isinstance(value, bool):  # sharded gradients, the fused rule taken
            assert value is True, key
        elif isinstance(value, dict):
            assert value["max_rel"] <= 1e-5, (key, value)


def test_the_ring_matches_the_unsharded_losses_on_8_devices():
    """B = 8 x 256, D = 128: values and gradients (x, y, temperature, bias) with ``where`` on
    automatic and explicit axes, inside a caller's shard_map, and forward mode."""
    _check_agreement(run_sharded_worker(256, 128))


@pytest.mark.slow
def test_the_ring_matches_at_larger_batches():
    for rows, dim in ((1, 8), (1024, 64)):
        _check_agreement(run_sharded_worker(rows, dim))
