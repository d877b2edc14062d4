"""Hinge losses against Keras 3 (JAX backend), Keras's published numbers and float64 NumPy
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

from losses_jax.losses import margin as hl

SHAPE = (4, 3, 5)


def binary_pair(rng, shape=SHAPE):
    return rng.integers(0, 2, shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


def signed_pair(rng, shape=SHAPE):
    labels = np.where(rng.random(shape) < 0.5, -1.0, 1.0).astype(np.float32)
    return labels, rng.normal(size=shape).astype(np.float32)


def one_hot_pair(rng, shape=SHAPE):
    labels = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]
    return labels, rng.normal(size=shape).astype(np.float32)


FUNCTION_CASES = [
    (hl.hinge, ref.hinge, ref.grad_hinge, binary_pair),
    (hl.hinge, ref.hinge, ref.grad_hinge, signed_pair),
    (hl.squared_hinge, ref.squared_hinge, ref.grad_squared_hinge, binary_pair),
    (hl.squared_hinge, ref.squared_hinge, ref.grad_squared_hinge, signed_pair),
    (hl.categorical_hinge, ref.categorical_hinge, ref.grad_categorical_hinge, one_hot_pair),
]
FUNCTION_IDS = [f"{fn.__name__}-{inputs.__name__}" for fn, _, _, inputs in FUNCTION_CASES]


@pytest.mark.parametrize(
    ("fn", "reference", "grad_reference", "inputs"), FUNCTION_CASES, ids=FUNCTION_IDS
)
def test_matches_float64_numpy_value_and_gradient(fn, reference, grad_reference, inputs):
    y_true, y_pred = inputs(np.random.default_rng(3))
    t64, p64 = y_true.astype(np.float64), y_pred.astype(np.float64)
    np.testing.assert_allclose(fn(y_true, y_pred), reference(t64, p64), rtol=2e-6, atol=1e-6)
    grad = jax.grad(lambda p: jnp.sum(fn(y_true, p)))(jnp.asarray(y_pred))
    np.testing.assert_allclose(grad, grad_reference(t64, p64), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("fn", "reference", "grad_reference", "inputs"), FUNCTION_CASES, ids=FUNCTION_IDS
)
def test_jit_grad_vmap(fn, reference, grad_reference, inputs):
    assert_transforms_consistent(fn, *inputs(np.random.default_rng(4)))


def test_label_conversion_looks_at_every_label():
    # {0, 1} labels are mapped to {-1, 1}; a single other value keeps all labels as given.
    np.testing.assert_allclose(hl.hinge([[0.0, 1.0]], [[0.5, 0.5]]), [1.0])
    np.testing.assert_allclose(hl.hinge([[0.0, 1.0, 2.0]], [[0.5, 0.5, 0.5]]), [(1 + 0.5 + 0) / 3])
    # Integer labels behave exactly like float ones.
    np.testing.assert_allclose(
        hl.squared_hinge(np.array([[0, 1]]), [[0.5, 0.5]]), [(2.25 + 0.25) / 2]
    )


# --------------------------------------------------------------------------------------
# Keras's published numbers (keras/src/losses/losses_test.py)
# --------------------------------------------------------------------------------------
KERAS_Y_TRUE = np.array([[0.0, 1.0], [0.0, 0.0]])
KERAS_Y_PRED = np.array([[0.6, 0.4], [0.4, 0.6]])


@pytest.mark.parametrize(
    ("loss_class", "per_sample", "weighted_mean"),
    [
        (hl.Hinge, [1.1, 1.5], 0.55),
        (hl.SquaredHinge, [1.46, 2.26], 0.73),
        (hl.CategoricalHinge, [1.2, 1.6], 0.6),
    ],
)
def test_keras_published_numbers(loss_class, per_sample, weighted_mean):
    t, p = KERAS_Y_TRUE, KERAS_Y_PRED
    np.testing.assert_allclose(loss_class(reduction=None)(t, p), per_sample, rtol=1e-6)
    np.testing.assert_allclose(loss_class()(t, p), np.mean(per_sample), rtol=1e-6)
    np.testing.assert_allclose(loss_class(reduction="sum")(t, p), np.sum(per_sample), rtol=1e-6)
    np.testing.assert_allclose(loss_class()(t, p, sample_weight=[1, 0]), weighted_mean, rtol=1e-6)
    assert float(loss_class()(t, p, sample_weight=0.0)) == 0.0


# --------------------------------------------------------------------------------------
# Keras parity: value and gradient, every reduction x kind of weight
# --------------------------------------------------------------------------------------
PARITY_CASES = [
    ParityCase("Hinge", make_inputs=binary_pair),
    ParityCase("Hinge", make_inputs=signed_pair),
    ParityCase("SquaredHinge", make_inputs=binary_pair),
    ParityCase("SquaredHinge", make_inputs=signed_pair),
    ParityCase("CategoricalHinge", make_inputs=one_hot_pair),
]


@pytest.mark.cover
@pytest.mark.parametrize(("case", "reduction", "weight_kind"), parity_params(PARITY_CASES))
def test_keras_parity(keras, case, reduction, weight_kind):
    assert_keras_parity(keras, hl, case, reduction, weight_kind)


# --------------------------------------------------------------------------------------
# dtypes, extreme inputs, validation, config
# --------------------------------------------------------------------------------------
CLASSES = [hl.Hinge, hl.SquaredHinge, hl.CategoricalHinge]


@pytest.mark.parametrize("loss_class", CLASSES)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_dtype(loss_class, dtype):
    y_true, y_pred = one_hot_pair(np.random.default_rng(5))
    value = loss_class(dtype=dtype)(y_true, y_pred)
    assert value.dtype == jnp.dtype(dtype)
    reference = loss_class()(y_true, y_pred.astype(dtype).astype(np.float32))
    np.testing.assert_allclose(float(value), float(reference), rtol=1e-2)
    assert loss_class.function(y_true, jnp.asarray(y_pred, dtype)).dtype == jnp.dtype(dtype)


@pytest.mark.parametrize("fn", [hl.hinge, hl.categorical_hinge])
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_huge_scores_are_finite(fn, scale):
    y_true = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y_pred = scale * np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 1.0]])
    value, _ = assert_finite_value_and_grad(fn, y_true, y_pred)
    assert value > 0


def test_squared_hinge_at_1e4_is_finite():
    value, grad = assert_finite_value_and_grad(hl.squared_hinge, [[0.0, 1.0]], [[1e4, -1e4]])
    np.testing.assert_allclose(value, (1e4 + 1) ** 2, rtol=1e-6)
    np.testing.assert_allclose(grad, [[1e4 + 1, -(1e4 + 1)]], rtol=1e-6)


@pytest.mark.parametrize("fn", [hl.hinge, hl.squared_hinge, hl.categorical_hinge])
def test_validation_errors(fn):
    assert_raises_eager_and_jit(
        ValueError, r"\(2, 3\) and \(2, 4\)", fn, np.ones((2, 3)), np.ones((2, 4))
    )
    assert_raises_eager_and_jit(
        TypeError, "y_pred.*complex", fn, np.ones((2, 3)), np.ones((2, 3), np.complex64)
    )
    with pytest.raises(TypeError, match="y_true"):
        fn(np.array([["a"]]), np.ones((1, 1)))


@pytest.mark.parametrize("loss_class", CLASSES)
def test_config_round_trip(keras, loss_class):
    assert_config_round_trip(keras, loss_class)
    assert_config_round_trip(keras, loss_class, reduction="sum", name="custom")
