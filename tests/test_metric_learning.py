"""Triplets (given and mined), contrastive pairs, ArcFace, CosFace: parity with PyTorch, optax
and the TF Addons definitions (float64 references), and ``where``/``mask`` semantics. (Finite
values and gradients at extreme embeddings are checked over the catalogue in
``tests/test_extremes.py``.)

Every grid runs through one jitted function (one compilation), over seeded cases of one shape.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref

import losses_jax as lj

RTOL, ATOL = 1e-5, 1e-6
METRICS = ("L2", "squared-L2", "angular")


def _embeddings(seed, batch=12, dim=5, classes=3):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(batch, dim)).astype(np.float32)
    return rng.integers(0, classes, size=batch).astype(np.int32), e


TRIPLET_GRID = (
    {"margin": 1.0, "p": 2.0, "eps": 1e-6, "swap": False},
    {"margin": 0.5, "p": 1.0, "eps": 1e-6, "swap": True},
    {"margin": 2.0, "p": 3.0, "eps": 0.0, "swap": False},
    {"margin": 1.0, "p": 2.0, "eps": 1e-6, "swap": True},
)
TORCH_REDUCTIONS = (("mean", "sum_over_batch_size"), ("sum", "sum"), ("none", "none"))


def test_triplet_margin_matches_torch_in_value_and_gradient():
    torch = pytest.importorskip("torch")

    @jax.jit
    def ours(a, p, n):
        out = []
        for options in TRIPLET_GRID:
            for _, reduction in TORCH_REDUCTIONS:
                loss = lj.TripletMargin(**options, reduction=reduction)
                out.append(jax.value_and_grad(lambda v, f=loss: jnp.sum(f(a, v, negative=n)))(p))
        return out

    a, p, n = np.random.default_rng(0).normal(size=(3, 8, 5)).astype(np.float32)
    results = iter(ours(a, p, n))
    for options in TRIPLET_GRID:
        for reduction, _ in TORCH_REDUCTIONS:
            value, grad = next(results)
            tp = torch.tensor(p, dtype=torch.float64, requires_grad=True)
            expected = torch.nn.functional.triplet_margin_loss(
                torch.tensor(a, dtype=torch.float64),
                tp,
                torch.tensor(n, dtype=torch.float64),
                reduction=reduction,
                **options,
            )
            expected.sum().backward()
            np.testing.assert_allclose(value, expected.sum().item(), rtol=RTOL)
            np.testing.assert_allclose(grad, tp.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_triplet_margin_matches_optax():
    optax = pytest.importorskip("optax")

    @jax.jit
    def both(a, p, n):
        return [
            (
                lj.triplet_margin(a, p, n, margin=0.7, eps=eps),
                optax.losses.triplet_margin_loss(a, p, n, margin=0.7, eps=eps),
            )
            for eps in (0.0, 1e-6)
        ]

    a, p, n = np.random.default_rng(1).normal(size=(3, 8, 5)).astype(np.float32)
    for actual, expected in both(a, p, n):
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-5)


@jax.jit
def _mined(labels, e):
    out = {}
    for metric in METRICS:
        out[f"hard/{metric}"] = lj.BatchHardTriplet(margin=0.5, distance_metric=metric)(labels, e)
        soft = lj.BatchHardTriplet(soft=True, distance_metric=metric)
        out[f"soft/{metric}"] = soft(labels, e)
        semi = lj.BatchSemiHardTriplet(margin=0.5, distance_metric=metric)
        out[f"semi/{metric}"] = semi(labels, e)
    return out


def test_mined_triplets_match_tf_addons():
    for seed in range(6):
        labels, e = _embeddings(seed)
        actual = _mined(labels, e)
        for metric in METRICS:
            expected = {
                "hard": ref.batch_hard_triplet(labels, e, 0.5, False, metric).mean(),
                "soft": ref.batch_hard_triplet(labels, e, 1.0, True, metric).mean(),
                "semi": ref.tfa_triplet_semihard(labels, e, 0.5, metric)[0],
            }
            for kind, value in expected.items():
                np.testing.assert_allclose(
                    actual[f"{kind}/{metric}"], value, rtol=RTOL, atol=ATOL, err_msg=kind
                )


def test_semi_hard_falls_back_to_the_farthest_negative():
    # Anchor 0's positive (distance 3) is farther than every negative (1 and 2): no semi-hard
    # negative exists, TF Addons takes the farthest negative (2): 1 + 3 - 2 = 2.
    e = np.array([[0.0], [3.0], [1.0], [-2.0]], np.float32)
    labels = np.array([0, 0, 1, 1])
    per_anchor = jax.jit(lj.batch_semi_hard_triplet)(labels, e, margin=1.0)
    _, pairs, _ = ref.tfa_triplet_semihard(labels, e, 1.0)
    assert pairs[0, 1] == pytest.approx(2.0)
    np.testing.assert_allclose(per_anchor, pairs.sum(1), rtol=RTOL)


def test_mined_triplets_leave_out_rows_outside_where_or_mask():
    labels, e = _embeddings(3)
    keep = np.arange(len(e)) % 4 != 0

    @jax.jit
    def run(labels, e):
        losses = (lj.BatchHardTriplet(), lj.BatchSemiHardTriplet())
        return (
            [loss(labels, e, where=keep) for loss in losses],
            [loss(labels, e, mask=keep) for loss in losses],
            [loss(labels[keep], e[keep]) for loss in losses],
        )

    with_where, with_mask, without = run(labels, e)
    np.testing.assert_allclose(with_where, without, rtol=RTOL, atol=ATOL)
    np.testing.assert_array_equal(with_mask, with_where)


@jax.jit
def _centre_losses(labels, e, centers):
    out = [
        lj.arcface(labels, e, centers=centers, scale=scale, margin=margin)
        for scale, margin in ((64.0, 0.5), (16.0, 0.3), (30.0, 2.8))
    ]
    return out, lj.cosface(labels, e, centers=centers, scale=64.0, margin=0.35)


def test_contrastive_pair_arcface_cosface_match_the_references():
    rng = np.random.default_rng(2)
    y, d = rng.integers(0, 2, size=10), rng.uniform(0, 2, size=10)
    np.testing.assert_allclose(
        lj.contrastive_pair(y, d, margin=1.5), ref.contrastive_pair(y, d, 1.5), rtol=RTOL
    )
    for seed in range(4):
        labels, e = _embeddings(seed, classes=5)
        centers = np.random.default_rng(seed + 10).normal(size=(5, 5)).astype(np.float32)
        arcfaces, cosface = _centre_losses(labels, e, centers)
        for actual, (scale, margin) in zip(arcfaces, ((64.0, 0.5), (16.0, 0.3), (30.0, 2.8))):
            expected = ref.arcface(labels, e, centers, scale, margin)
            np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(cosface, ref.cosface(labels, e, centers), rtol=1e-4, atol=1e-4)
