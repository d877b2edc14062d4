"""Dice, Tversky and Circle against Keras 3 (JAX backend), Keras's numbers and float64 NumPy
formulas (tests/references.py)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from helpers import (
    ParityCase,
    assert_config_round_trip,
    assert_finite_value_and_grad,
    assert_keras_parity,
    assert_raises_eager_and_jit,
    assert_transforms_consistent,
    parity_params,
)

from losses_jax.losses import segmentation as seg

MASK_SHAPE = (3, 4, 4, 2)


def mask_pair(rng, shape=MASK_SHAPE):
    return (
        rng.integers(0, 2, shape).astype(np.float32),
        rng.uniform(0.0, 1.0, shape).astype(np.float32),
    )


CIRCLE_LABELS = np.array([0, 0, 1, 1, 1, 2, 3, 3])  # class 2 has one member


def unit_rows(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def circle_pair(rng):
    return CIRCLE_LABELS, unit_rows(rng.normal(size=(len(CIRCLE_LABELS), 6)))


DICE_AXES = [None, (1, 2), (1, 2, 3), -1]
TVERSKY_OPTIONS = [
    {"alpha": 0.5, "beta": 0.5, "axis": None},
    {"alpha": 0.2, "beta": 0.8, "axis": (1, 2)},
    {"alpha": 0.7, "beta": 0.3, "axis": (1, 2, 3)},
    {"alpha": 0.0, "beta": 1.0, "axis": -1},
]
CIRCLE_OPTIONS = [
    {"gamma": 80.0, "margin": 0.4, "remove_diagonal": True},
    {"gamma": 256.0, "margin": 0.25, "remove_diagonal": True},
    {"gamma": 32.0, "margin": 0.1, "remove_diagonal": False},
]


@pytest.mark.parametrize("axis", DICE_AXES)
def test_dice_matches_numpy(axis):
    y_true, y_pred = mask_pair(np.random.default_rng(1))
    expected = ref.dice(y_true.astype(np.float64), y_pred.astype(np.float64), axis=axis)
    np.testing.assert_allclose(seg.dice(y_true, y_pred, axis=axis), expected, rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("options", TVERSKY_OPTIONS)
def test_tversky_matches_numpy(options):
    y_true, y_pred = mask_pair(np.random.default_rng(2))
    expected = ref.tversky(y_true.astype(np.float64), y_pred.astype(np.float64), **options)
    np.testing.assert_allclose(
        seg.tversky(y_true, y_pred, **options), expected, rtol=2e-6, atol=1e-6
    )


@pytest.mark.parametrize("options", CIRCLE_OPTIONS)
def test_circle_matches_numpy(options):
    labels, emb = circle_pair(np.random.default_rng(3))
    expected = ref.circle(labels, emb.astype(np.float64), **options)
    np.testing.assert_allclose(seg.circle(labels, emb, **options), expected, rtol=1e-5, atol=1e-4)


def test_circle_with_reference_set_matches_numpy():
    rng = np.random.default_rng(4)
    labels, emb = circle_pair(rng)
    ref_labels, ref_emb = np.array([0, 1, 2, 3, 4]), unit_rows(rng.normal(size=(5, 6)))
    expected = ref.circle(
        labels, emb.astype(np.float64), ref_labels, ref_emb.astype(np.float64), False, 64.0, 0.3
    )
    actual = seg.circle(
        labels, emb, ref_labels, ref_emb, remove_diagonal=False, gamma=64.0, margin=0.3
    )
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-4)


def test_dice_and_tversky_gradients_match_numpy():
    y_true, y_pred = mask_pair(np.random.default_rng(5))
    t, p = y_true.astype(np.float64), y_pred.astype(np.float64)
    axes = (1, 2, 3)
    grad = jax.grad(lambda q: jnp.sum(seg.dice(y_true, q, axis=axes)))(jnp.asarray(y_pred))
    np.testing.assert_allclose(grad, ref.grad_dice(t, p, axis=axes), rtol=1e-5, atol=1e-7)
    a, b = 0.2, 0.8
    grad = jax.grad(lambda q: jnp.sum(seg.tversky(y_true, q, a, b, axis=axes)))(jnp.asarray(y_pred))
    np.testing.assert_allclose(grad, ref.grad_tversky(t, p, a, b, axis=axes), rtol=1e-5, atol=1e-7)


def test_jit_grad_vmap():
    y_true, y_pred = mask_pair(np.random.default_rng(6), shape=(4, 7))
    assert_transforms_consistent(seg.dice, y_true, y_pred, axis=-1)
    assert_transforms_consistent(seg.tversky, y_true, y_pred, alpha=0.3, beta=0.7, axis=-1)
    rng = np.random.default_rng(7)
    labels = np.stack([CIRCLE_LABELS, CIRCLE_LABELS[::-1]])
    emb = np.stack([circle_pair(rng)[1], circle_pair(rng)[1]])
    # vmap over a stack of batches equals looping over them; jit and grad agree with eager.
    stacked = jax.vmap(seg.circle)(labels, emb)
    np.testing.assert_allclose(
        stacked, [seg.circle(labels[i], emb[i]) for i in range(2)], rtol=1e-6
    )
    grad = jax.grad(lambda e: jnp.sum(seg.circle(labels[0], e)))(jnp.asarray(emb[0]))
    jit_grad = jax.jit(jax.grad(lambda e: jnp.sum(seg.circle(labels[0], e))))(jnp.asarray(emb[0]))
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(jit_grad, grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jax.jit(seg.circle)(labels[0], emb[0]), stacked[0], rtol=1e-6)


# --------------------------------------------------------------------------------------
# Keras's published numbers (docstrings and keras/src/losses/losses_test.py)
# --------------------------------------------------------------------------------------
DOC_TRUE = np.array([[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]])
DOC_PRED = np.array([[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]])
SMALL_TRUE, SMALL_PRED = np.array([[1, 2], [1, 2]]), np.array([[4, 1], [6, 1]])
BINARY_TRUE = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]])
BINARY_PRED = np.array([[0, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 1]])


def test_dice_keras_numbers():
    np.testing.assert_allclose(
        seg.Dice(axis=(1, 2, 3), reduction=None)(DOC_TRUE, DOC_PRED), [0.5, 0.75757575], rtol=1e-6
    )
    np.testing.assert_allclose(seg.Dice()(DOC_TRUE, DOC_PRED), 0.6164384, rtol=1e-6)
    np.testing.assert_allclose(
        seg.dice(DOC_TRUE, DOC_PRED, axis=(1, 2, 3)), [0.5, 0.75757575], rtol=1e-6
    )
    np.testing.assert_allclose(seg.Dice()(SMALL_TRUE, SMALL_PRED), -0.55555546, rtol=1e-6)
    np.testing.assert_allclose(seg.Dice()(BINARY_TRUE, BINARY_PRED), 0.77777773, rtol=1e-6)


def test_tversky_keras_numbers():
    np.testing.assert_allclose(seg.Tversky()(SMALL_TRUE, SMALL_PRED), -0.55555546, rtol=1e-6)
    np.testing.assert_allclose(
        seg.Tversky(alpha=0.2, beta=0.8)(SMALL_TRUE, SMALL_PRED), -0.29629636, rtol=1e-6
    )
    np.testing.assert_allclose(seg.Tversky()(BINARY_TRUE, BINARY_PRED), 0.77777773, rtol=1e-6)
    np.testing.assert_allclose(
        seg.Tversky(alpha=0.2, beta=0.8)(BINARY_TRUE, BINARY_PRED), 0.7916667, rtol=1e-6
    )
    by_sample = seg.Tversky(alpha=0.2, beta=0.8, axis=(1, 2, 3), reduction=None)(DOC_TRUE, DOC_PRED)
    np.testing.assert_allclose(by_sample, [0.5, 0.7222222], rtol=1e-6)


CIRCLE_Y_TRUE = np.array([1, 1, 2, 2, 3])
CIRCLE_Y_PRED = np.array(
    [
        [0.70014004, -0.42008403, 0.14002801, 0.56011203],
        [0.17609018, 0.70436073, -0.52827054, 0.44022545],
        [-0.34050261, 0.25537696, -0.68100522, 0.59587957],
        [0.32163376, -0.75047877, 0.53605627, -0.21442251],
        [0.51261459, -0.34174306, 0.17087153, 0.76892189],
    ]
)
CIRCLE_REF_LABELS = np.array([1, 1, 2, 2, 3, 4])
CIRCLE_REF_EMB = np.array(
    [
        [0.40824829, -0.54433105, 0.27216553, 0.68041382],
        [0.76376261, 0.10910895, -0.54554473, 0.32732684],
        [-0.74420841, 0.24806947, 0.49613894, -0.3721042],
        [0.52981294, -0.13245324, 0.79471941, -0.26490647],
        [0.54554473, -0.32732684, 0.10910895, 0.76376261],
        [-0.27216553, 0.68041382, 0.40824829, -0.54433105],
    ]
)


def test_circle_keras_numbers():
    t, p = CIRCLE_Y_TRUE, CIRCLE_Y_PRED
    np.testing.assert_allclose(seg.Circle(gamma=80.0, margin=0.4)(t, p), 188.3883, rtol=1e-5)
    np.testing.assert_allclose(seg.Circle(gamma=256, margin=0.25)(t, p), 652.7617, rtol=1e-5)
    with_ref = seg.circle(
        t, p, CIRCLE_REF_LABELS, CIRCLE_REF_EMB, remove_diagonal=False, gamma=80.0, margin=0.4
    )
    np.testing.assert_allclose(with_ref, [61.5844, 94.3465, 276.9344, 90.9873, 48.8963], rtol=1e-5)
    weights = np.array([2.0, 2.0, 1.0, 1.0, 0.5])
    np.testing.assert_allclose(seg.Circle()(t, p, sample_weight=weights), 244.91918, rtol=1e-5)
    mean_weighted = seg.Circle(reduction="mean_with_sample_weight")(t, p, sample_weight=weights)
    np.testing.assert_allclose(mean_weighted, 163.27948, rtol=1e-5)
    unreduced = seg.Circle(reduction=None)(CIRCLE_REF_LABELS, CIRCLE_REF_EMB)
    np.testing.assert_allclose(unreduced, [82.9116, 36.7942, 92.4590, 52.6798, 0.0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(
        seg.Circle(reduction="sum")(CIRCLE_REF_LABELS, CIRCLE_REF_EMB), 264.845, rtol=1e-5
    )


# --------------------------------------------------------------------------------------
# Keras parity: value and gradient, every reduction x kind of weight
# --------------------------------------------------------------------------------------
PARITY_CASES = (
    [
        ParityCase("Dice", {"axis": axis}, mask_pair, loss_rank=4 - len(axis) if axis else 0)
        for axis in DICE_AXES[:3]
    ]
    + [
        ParityCase(
            "Tversky",
            options,
            mask_pair,
            loss_rank=4 - len(options["axis"]) if options["axis"] else 0,
        )
        for options in TVERSKY_OPTIONS[:3]
    ]
    + [
        ParityCase("Circle", options, circle_pair, loss_rank=1, rtol=2e-5, atol=2e-6)
        for options in CIRCLE_OPTIONS
    ]
)


@pytest.mark.cover
@pytest.mark.parametrize(("case", "reduction", "weight_kind"), parity_params(PARITY_CASES))
def test_keras_parity(keras, case, reduction, weight_kind):
    assert_keras_parity(keras, seg, case, reduction, weight_kind)


# --------------------------------------------------------------------------------------
# dtypes and extreme inputs
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize(
    ("loss", "inputs"),
    [
        (seg.Dice(axis=(1, 2)), mask_pair),
        (seg.Tversky(0.3, 0.7), mask_pair),
        (seg.Circle(), circle_pair),
    ],
    ids=["dice", "tversky", "circle"],
)
def test_low_precision_dtype(loss, inputs, dtype):
    y_true, y_pred = inputs(np.random.default_rng(8))
    low = type(loss).from_config({**loss.get_config(), "dtype": dtype})
    value = low(y_true, y_pred)
    assert value.dtype == jnp.dtype(dtype)
    reference = loss(y_true, y_pred.astype(dtype).astype(np.float32))
    np.testing.assert_allclose(float(value), float(reference), rtol=2e-2)
    options = {
        k: v for k, v in loss.get_config().items() if k not in ("name", "reduction", "dtype")
    }
    assert loss.fn(y_true, jnp.asarray(y_pred, dtype), **options).dtype == jnp.dtype(dtype)


def test_circle_float_labels_are_not_rounded_through_bfloat16():
    # 301 is not a bfloat16 number (it rounds to 300): classes 300 and 301 must stay apart.
    labels = np.array([300.0, 301.0, 300.0, 301.0])
    emb = unit_rows(np.random.default_rng(9).normal(size=(4, 3)))
    value = seg.Circle(dtype="bfloat16", reduction=None)(labels, emb)
    expected = ref.circle(labels.astype(int), emb.astype(np.float64))
    np.testing.assert_allclose(np.asarray(value, np.float32), expected, rtol=2e-2)


@pytest.mark.parametrize("fn", [seg.dice, seg.tversky])
def test_all_zero_masks_are_finite(fn):
    value, grad = assert_finite_value_and_grad(fn, np.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_allclose(value, 1.0)
    assert_finite_value_and_grad(lambda t, p: fn(t, p, axis=-1), np.zeros((2, 3)), np.zeros((2, 3)))


def test_circle_degenerate_batches_are_finite():
    emb = unit_rows(np.random.default_rng(10).normal(size=(4, 3)))
    # A single class: no negatives, so every loss is 0 and the reduced loss is 0.
    value, grad = assert_finite_value_and_grad(seg.circle, np.zeros(4, np.int32), emb)
    assert value == 0.0 and np.all(grad == 0.0)
    assert float(seg.Circle()(np.zeros(4, np.int32), emb)) == 0.0
    # Identical embeddings and 1e4-scaled ones.
    same = np.tile(emb[:1], (4, 1))
    assert_finite_value_and_grad(seg.circle, np.array([0, 0, 1, 1]), same)
    assert_finite_value_and_grad(seg.circle, np.array([0, 0, 1, 1]), 1e4 * emb)
    grad = jax.grad(lambda e: seg.Circle()(np.array([0, 1, 2, 3]), e))(jnp.asarray(emb))
    assert np.all(np.isfinite(grad))  # no positive pair anywhere


def test_circle_embeddings_of_size_one_keep_their_rank():
    emb = np.array([[1.0], [1.0], [-1.0]], np.float32)
    expected = ref.circle(np.array([0, 0, 1]), emb.astype(np.float64))
    np.testing.assert_allclose(
        seg.Circle(reduction=None)(np.array([0, 0, 1]), emb), expected, rtol=1e-5
    )


# --------------------------------------------------------------------------------------
# validation and config
# --------------------------------------------------------------------------------------
def test_dice_and_tversky_validation():
    ones = np.ones((2, 3))
    for fn in (seg.dice, seg.tversky):
        assert_raises_eager_and_jit(ValueError, r"\(2, 3\) and \(2, 4\)", fn, ones, np.ones((2, 4)))
        assert_raises_eager_and_jit(
            ValueError,
            r"axis.*out of range.*\(2, 3\)",
            lambda t, p, f=fn: f(t, p, axis=(0, 2)),
            ones,
            ones,
        )
        assert_raises_eager_and_jit(
            ValueError, "twice", lambda t, p, f=fn: f(t, p, axis=(1, -1)), ones, ones
        )
        assert_raises_eager_and_jit(
            TypeError, "y_pred.*complex", fn, ones, ones.astype(np.complex64)
        )
    with pytest.raises(TypeError, match="axis"):
        seg.Dice(axis=1.5)
    with pytest.raises(ValueError, match="alpha"):
        seg.Tversky(alpha=-0.1)
    assert_raises_eager_and_jit(
        ValueError, "beta", lambda t, p: seg.tversky(t, p, beta=-1.0), ones, ones
    )


def test_circle_validation():
    emb = np.ones((4, 3))
    labels = np.arange(4)
    assert_raises_eager_and_jit(
        ValueError, r"y_true.*rank 1.*\(4, 1\)", seg.circle, labels[:, None], emb
    )
    assert_raises_eager_and_jit(
        ValueError, r"y_pred.*\(batch, dim\).*4.*\(3, 3\)", seg.circle, labels, emb[:3]
    )
    assert_raises_eager_and_jit(ValueError, r"y_pred.*\(4,\)", seg.circle, labels, emb[:, 0])
    assert_raises_eager_and_jit(
        ValueError,
        "embedding size",
        lambda t, p: seg.circle(t, p, labels, np.ones((4, 2))),
        labels,
        emb,
    )
    assert_raises_eager_and_jit(
        ValueError,
        r"ref_embeddings.*\(5, 3\)",
        lambda t, p: seg.circle(t, p, labels, np.ones((5, 3))),
        labels,
        emb,
    )
    with pytest.raises(ValueError, match="y_true.*rank 1"):
        seg.Circle()(labels[:, None], emb)
    with pytest.raises(ValueError, match="gamma"):
        seg.Circle(gamma=0.0)
    with pytest.raises(TypeError, match="remove_diagonal"):
        seg.Circle(remove_diagonal=1)
    with pytest.raises(TypeError, match="y_pred.*complex"):
        seg.circle(labels, emb.astype(np.complex64))


@pytest.mark.parametrize(
    ("loss_class", "options"),
    [
        (seg.Dice, {}),
        (seg.Dice, {"axis": (1, 2)}),
        (seg.Tversky, {"alpha": 0.2, "beta": 0.8, "axis": (1, 2)}),
        (seg.Circle, {}),
        (seg.Circle, {"gamma": 64.0, "margin": 0.3, "remove_diagonal": False}),
    ],
)
def test_config_round_trip(keras, loss_class, options):
    assert_config_round_trip(keras, loss_class, **options)


def test_classes_under_jit_and_grad_match_eager():
    labels, emb = circle_pair(np.random.default_rng(11))
    weights = np.linspace(0.5, 2.0, len(labels)).astype(np.float32)
    y_true, y_pred = mask_pair(np.random.default_rng(12))
    for loss, t, p in [
        (seg.Circle(), labels, emb),
        (seg.Tversky(0.3, 0.7, axis=(1, 2, 3)), y_true[:, :, :, :1], y_pred[:, :, :, :1]),
    ]:
        w = weights[: len(t)]
        eager = jax.value_and_grad(lambda q, loss=loss, t=t, w=w: loss(t, q, sample_weight=w))(
            jnp.asarray(p)
        )
        jitted = jax.jit(
            jax.value_and_grad(lambda q, loss=loss, t=t, w=w: loss(t, q, sample_weight=w))
        )(jnp.asarray(p))
        np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-5)
        np.testing.assert_allclose(jitted[1], eager[1], rtol=1e-5, atol=1e-6)
