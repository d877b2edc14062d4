"""Regression losses against Keras 3 (JAX backend), the Keras docs and float64 NumPy formulas.

The float64 references are in tests/references.py; the Keras parity grid and the
transformation checks in tests/helpers.py.
"""

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

from losses_jax.losses import regression as reg

EPS = ref.EPS

SHAPE = (4, 3, 5)


def normal_pair(rng, shape=SHAPE):
    return (
        rng.normal(size=shape).astype(np.float32),
        rng.normal(size=shape).astype(np.float32),
    )


def percentage_pair(rng, shape=SHAPE):
    """Targets away from zero (with both signs) so percentages are of moderate size."""
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    y_true = (sign * rng.uniform(0.5, 3.0, shape)).astype(np.float32)
    return y_true, (y_true + rng.normal(size=shape)).astype(np.float32)


def log_pair(rng, shape=SHAPE):
    """Mostly positive values, some negative predictions (clipped to 1e-7 by the loss)."""
    return (
        rng.uniform(0.0, 3.0, shape).astype(np.float32),
        rng.uniform(-0.5, 3.0, shape).astype(np.float32),
    )


# function, reference, gradient reference, options, inputs
FUNCTION_CASES = [
    (reg.mean_squared_error, ref.mean_squared_error, ref.grad_mean_squared_error, {}, normal_pair),
    (
        reg.mean_absolute_error,
        ref.mean_absolute_error,
        ref.grad_mean_absolute_error,
        {},
        normal_pair,
    ),
    (
        reg.mean_absolute_percentage_error,
        ref.mean_absolute_percentage_error,
        ref.grad_mean_absolute_percentage_error,
        {},
        percentage_pair,
    ),
    (
        reg.mean_squared_logarithmic_error,
        ref.mean_squared_logarithmic_error,
        ref.grad_mean_squared_logarithmic_error,
        {},
        log_pair,
    ),
    *[
        (
            reg.cosine_similarity,
            ref.cosine_similarity,
            ref.grad_cosine_similarity,
            {"axis": axis},
            normal_pair,
        )
        for axis in (-1, 1, 0)
    ],
    *[
        (reg.huber, ref.huber, ref.grad_huber, {"delta": delta}, normal_pair)
        for delta in (1.0, 0.3, 2.5)
    ],
    (reg.log_cosh, ref.log_cosh, ref.grad_log_cosh, {}, normal_pair),
]
FUNCTION_IDS = [f"{fn.__name__}{opts}" for fn, _, _, opts, _ in FUNCTION_CASES]


@pytest.mark.parametrize(
    ("fn", "reference", "grad_reference", "options", "inputs"), FUNCTION_CASES, ids=FUNCTION_IDS
)
def test_matches_float64_numpy_value_and_gradient(fn, reference, grad_reference, options, inputs):
    rng = np.random.default_rng(3)
    y_true, y_pred = inputs(rng)
    t64, p64 = y_true.astype(np.float64), y_pred.astype(np.float64)
    np.testing.assert_allclose(
        fn(y_true, y_pred, **options), reference(t64, p64, **options), rtol=2e-6, atol=1e-6
    )
    grad = jax.grad(lambda p: jnp.sum(fn(y_true, p, **options)))(jnp.asarray(y_pred))
    np.testing.assert_allclose(grad, grad_reference(t64, p64, **options), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("fn", "reference", "grad_reference", "options", "inputs"), FUNCTION_CASES, ids=FUNCTION_IDS
)
def test_jit_grad_vmap(fn, reference, grad_reference, options, inputs):
    y_true, y_pred = inputs(np.random.default_rng(4))
    if options.get("axis", -1) >= 0:
        pytest.skip("a non-negative axis counts from the batch axis, which vmap slices away")
    assert_transforms_consistent(fn, y_true, y_pred, **options)


# --------------------------------------------------------------------------------------
# Keras docs numbers
# --------------------------------------------------------------------------------------
def test_keras_docs_examples():
    mse = reg.MeanSquaredError()(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.1, 0.8]))
    np.testing.assert_allclose(mse, 0.02, rtol=1e-5)
    mae = reg.MeanAbsoluteError()(np.array([1.0, 0.3, 1.0]), np.array([1.9, 0.3, 1.8]))
    np.testing.assert_allclose(mae, 0.5666667, rtol=1e-6)
    mape = reg.MeanAbsolutePercentageError()(
        np.array([100.0, 200.0, 300.0]), np.array([90.0, 210.0, 310.0])
    )
    np.testing.assert_allclose(mape, 6.111111, rtol=1e-6)
    cosine = reg.cosine_similarity(
        [[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]], [[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]], axis=-1
    )
    np.testing.assert_allclose(cosine, [-0.0, -0.99999994, 0.99999994], rtol=1e-6)
    huber = reg.huber([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
    np.testing.assert_allclose(np.mean(huber), 0.155, rtol=1e-5)
    log_cosh = reg.log_cosh([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]])
    np.testing.assert_allclose(np.mean(log_cosh), 0.108, atol=5e-4)


def test_aliases_are_the_functions():
    assert reg.mse is reg.mean_squared_error
    assert reg.mae is reg.mean_absolute_error
    assert reg.mape is reg.mean_absolute_percentage_error
    assert reg.msle is reg.mean_squared_logarithmic_error
    assert reg.huber_loss is reg.huber
    assert reg.logcosh is reg.log_cosh


# --------------------------------------------------------------------------------------
# Keras parity: value and gradient, every reduction x kind of weight
# --------------------------------------------------------------------------------------
PARITY_CASES = [
    ParityCase("MeanSquaredError", make_inputs=normal_pair),
    ParityCase("MeanAbsoluteError", make_inputs=normal_pair),
    ParityCase("MeanAbsolutePercentageError", make_inputs=percentage_pair),
    ParityCase("MeanSquaredLogarithmicError", make_inputs=log_pair),
    ParityCase("CosineSimilarity", {"axis": -1}, normal_pair),
    ParityCase("CosineSimilarity", {"axis": 1}, normal_pair),
    ParityCase("Huber", {"delta": 1.0}, normal_pair),
    ParityCase("Huber", {"delta": 0.4}, normal_pair),
    ParityCase("LogCosh", make_inputs=normal_pair),
]


@pytest.mark.cover
@pytest.mark.parametrize(("case", "reduction", "weight_kind"), parity_params(PARITY_CASES))
def test_keras_parity(keras, case, reduction, weight_kind):
    assert_keras_parity(keras, reg, case, reduction, weight_kind)


def test_keras_parity_with_rank_alignment_and_integer_targets(keras):
    # (batch,) targets against (batch, 1) predictions; integer targets.
    y_true = np.array([1, 0, 3, 2])
    y_pred = np.array([[0.5], [0.1], [2.0], [2.5]], np.float32)
    for name in ("MeanSquaredError", "MeanAbsoluteError", "Huber", "LogCosh"):
        expected = getattr(keras.losses, name)()(y_true, y_pred)
        np.testing.assert_allclose(getattr(reg, name)()(y_true, y_pred), expected, rtol=1e-6)


# --------------------------------------------------------------------------------------
# dtypes and extreme inputs
# --------------------------------------------------------------------------------------
CLASS_CASES = [
    (reg.MeanSquaredError, {}),
    (reg.MeanAbsoluteError, {}),
    (reg.MeanAbsolutePercentageError, {}),
    (reg.MeanSquaredLogarithmicError, {}),
    (reg.CosineSimilarity, {"axis": 1}),
    (reg.Huber, {"delta": 0.5}),
    (reg.LogCosh, {}),
]
CLASS_IDS = [cls.__name__ for cls, _ in CLASS_CASES]


@pytest.mark.parametrize(("loss_class", "options"), CLASS_CASES, ids=CLASS_IDS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_low_precision_dtype(loss_class, options, dtype):
    y_true, y_pred = percentage_pair(np.random.default_rng(5))
    y_pred = np.abs(y_pred)
    value = loss_class(dtype=dtype, **options)(y_true, y_pred)
    assert value.dtype == jnp.dtype(dtype)
    reference = loss_class(**options)(y_true.astype(dtype), y_pred.astype(dtype))
    np.testing.assert_allclose(float(value), float(reference), rtol=1e-2)
    fn = loss_class(**options).fn
    assert fn(y_true, jnp.asarray(y_pred, dtype), **options).dtype == jnp.dtype(dtype)


def test_integer_targets_are_not_rounded_through_low_precision():
    # 2049 is not representable in float16 (it rounds to 2048): the error must stay 1.
    y_true = np.array([[2049]], np.int32)
    y_pred = jnp.array([[2048.0]], jnp.float16)
    assert float(reg.mean_absolute_error(y_true, y_pred)[0]) == 1.0
    assert float(reg.MeanAbsoluteError(dtype="float16")(y_true, np.array([[2048.0]]))) == 1.0


def test_mse_of_1e18_is_finite_with_exact_gradient():
    y_true = np.zeros((2, 1000), np.float32)
    y_pred = np.full((2, 1000), 1e18, np.float32)
    value, grad = assert_finite_value_and_grad(reg.mean_squared_error, y_true, y_pred)
    np.testing.assert_allclose(value, 2e36, rtol=1e-5)
    np.testing.assert_allclose(grad, 2e18 / 1000, rtol=1e-5)
    assert np.isfinite(float(reg.MeanSquaredError(dtype="bfloat16")(y_true, y_pred)))


@pytest.mark.parametrize("error", [1e4, -1e4, 1e30, -1e30, 0.0, 1e-8, 0.5, -3.0, 19.99, 20.0])
def test_log_cosh_is_exact_for_tiny_and_huge_errors(error):
    y_pred = np.array([[error]], np.float32)
    value, grad = assert_finite_value_and_grad(reg.log_cosh, np.zeros((1, 1)), y_pred)
    x = float(y_pred[0, 0])
    np.testing.assert_allclose(value, ref.log_cosh_elementwise(x), rtol=1e-6)
    np.testing.assert_allclose(grad, np.tanh(x), rtol=1e-6)


def test_huber_gradient_is_exact_at_the_kink():
    delta = 0.5
    y_pred = jnp.array([[delta, -delta, 0.0]])
    grad = jax.grad(lambda p: jnp.sum(reg.huber(jnp.zeros((1, 3)), p, delta=delta)))(y_pred)
    np.testing.assert_allclose(grad, [[delta / 3, -delta / 3, 0.0]], rtol=1e-7)
    assert_finite_value_and_grad(reg.huber, np.zeros((1, 2)), [[1e30, -1e30]])


def test_cosine_similarity_of_zero_and_huge_vectors_is_finite():
    y_true = np.array([[0.0, 0.0, 0.0], [1e30, -1e30, 0.0], [1e-30, 1e-30, 0.0]])
    y_pred = np.array([[0.0, 0.0, 0.0], [1e30, -1e30, 0.0], [1.0, 1.0, 0.0]])
    value, grad = assert_finite_value_and_grad(reg.cosine_similarity, y_true, y_pred)
    per_sample = reg.cosine_similarity(y_true, y_pred)
    # Zero vector: 0. Huge parallel vectors: -1. Tiny target (norm < 1e-7): x / 1e-7, as Keras.
    np.testing.assert_allclose(per_sample[:2], [0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(per_sample[2], -np.sqrt(2) * 1e-23, rtol=1e-5)
    assert_finite_value_and_grad(reg.cosine_similarity, np.zeros((2, 3)), np.ones((2, 3)))


def test_mape_with_zero_targets_and_msle_with_negative_predictions():
    value, _ = assert_finite_value_and_grad(
        reg.mean_absolute_percentage_error, np.zeros((1, 2)), [[1.0, -2.0]]
    )
    np.testing.assert_allclose(value, 100 * 1.5 / EPS, rtol=1e-6)
    value, grad = assert_finite_value_and_grad(
        reg.mean_squared_logarithmic_error, np.ones((1, 2)), [[-1e30, -1.0]]
    )
    np.testing.assert_allclose(value, np.log1p(1.0) ** 2, rtol=1e-6)
    np.testing.assert_array_equal(grad, 0.0)
    assert_finite_value_and_grad(reg.mean_squared_logarithmic_error, np.ones((1, 2)), [[1e30, 1e4]])


def test_mae_and_mape_at_huge_inputs_are_finite():
    for fn in (reg.mean_absolute_error, reg.mean_absolute_percentage_error):
        assert_finite_value_and_grad(fn, np.full((1, 2), 1e30), [[-1e30, 1e4]])


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def test_huber_rejects_non_positive_delta():
    for delta in (0.0, -1.0):
        with pytest.raises(ValueError, match="delta"):
            reg.Huber(delta=delta)
        assert_raises_eager_and_jit(
            ValueError,
            "delta",
            lambda t, p, d=delta: reg.huber(t, p, delta=d),
            np.ones((2, 2)),
            np.ones((2, 2)),
        )


@pytest.mark.parametrize(
    "fn", [reg.mse, reg.mae, reg.mape, reg.msle, reg.huber, reg.log_cosh, reg.cosine_similarity]
)
def test_incompatible_shapes_bad_dtypes(fn):
    assert_raises_eager_and_jit(
        ValueError, r"\(2, 3\) and \(2, 4\)", fn, np.ones((2, 3)), np.ones((2, 4))
    )
    assert_raises_eager_and_jit(
        TypeError, "y_pred.*complex", fn, np.ones((2, 3)), np.ones((2, 3), np.complex64)
    )
    with pytest.raises(TypeError, match="y_pred"):
        fn(np.ones((2, 3)), np.array([["a", "b", "c"]] * 2))


def test_scalar_inputs_are_rejected_by_per_sample_means():
    assert_raises_eager_and_jit(ValueError, "rank >= 1.*shape \\(\\)", reg.mse, 1.0, 2.0)


def test_cosine_axis_out_of_range_or_not_an_int():
    assert_raises_eager_and_jit(
        ValueError,
        r"axis.*out of range.*\(2, 3\)",
        lambda t, p: reg.cosine_similarity(t, p, axis=2),
        np.ones((2, 3)),
        np.ones((2, 3)),
    )
    with pytest.raises(TypeError, match="axis"):
        reg.CosineSimilarity(axis=(0, 1))
    with pytest.raises(TypeError, match="axis"):
        reg.cosine_similarity(np.ones((2, 3)), np.ones((2, 3)), axis=1.0)


@pytest.mark.parametrize(("loss_class", "options"), CLASS_CASES, ids=CLASS_IDS)
def test_config_round_trip(keras, loss_class, options):
    assert_config_round_trip(keras, loss_class, **options)


@pytest.mark.parametrize(("loss_class", "options"), CLASS_CASES, ids=CLASS_IDS)
def test_classes_under_jit_and_grad_match_eager(loss_class, options):
    y_true, y_pred = percentage_pair(np.random.default_rng(6))
    weights = np.linspace(0.5, 2.0, y_true.shape[0]).astype(np.float32)
    loss = loss_class(**options)

    def weighted(pred):
        return loss(y_true, pred, sample_weight=weights)

    eager = jax.value_and_grad(weighted)(jnp.asarray(y_pred))
    jitted = jax.jit(jax.value_and_grad(weighted))(jnp.asarray(y_pred))
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-6)
    np.testing.assert_allclose(jitted[1], eager[1], rtol=1e-5, atol=1e-7)
