"""Tests for losses_jax.base: the shared reduction, Loss and LossFunctionWrapper."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from losses_jax.base import (
    REDUCTIONS,
    Loss,
    LossFunctionWrapper,
    reduce_weighted_values,
    standardize_reduction,
)


def numpy_reduce(values, weights, mask, reduction):
    """Float64 reference of Keras's divisors, with weights already broadcast to `values`."""
    values = np.asarray(values, np.float64)
    w = np.ones_like(values) if weights is None else np.broadcast_to(weights, values.shape)
    m = np.ones_like(values) if mask is None else np.broadcast_to(mask, values.shape)
    weighted = values * w * m
    if reduction in (None, "none"):
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean_with_sample_weight":
        return weighted.sum() / (w * m).sum()
    return weighted.sum() / m.sum()


WEIGHT_KINDS = ["none", "scalar", "per_sample", "per_element"]


def make_weight(kind, shape, rng):
    if kind == "none":
        return None
    if kind == "scalar":
        return 0.7
    if kind == "per_sample":
        return rng.uniform(0.1, 2.0, size=shape[:1])
    return rng.uniform(0.1, 2.0, size=shape)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", WEIGHT_KINDS)
def test_reduction_matches_keras(keras, reduction, kind, rng):
    from keras.src.losses.loss import reduce_weighted_values as keras_reduce

    values = rng.normal(size=(5,)).astype(np.float32)
    weight = make_weight(kind, values.shape, rng)
    ours = reduce_weighted_values(values, weight, reduction=reduction)
    theirs = keras_reduce(values, sample_weight=weight, reduction=reduction)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["none", "per_sample", "per_element"])
def test_reduction_with_mask_matches_keras(keras, reduction, kind, rng):
    from keras.src.losses.loss import reduce_weighted_values as keras_reduce

    values = rng.normal(size=(6,)).astype(np.float32)
    mask = np.array([True, False, True, True, False, True])
    weight = make_weight(kind, values.shape, rng)
    ours = reduce_weighted_values(values, weight, mask=mask, reduction=reduction)
    theirs = keras_reduce(values, sample_weight=weight, mask=mask, reduction=reduction)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size", "mean", "none"])
def test_per_sample_weight_scales_every_timestep(reduction, rng):
    # Keras documents this but fails on it: a (batch,) weight against (batch, T) losses.
    values = rng.normal(size=(4, 7))
    weight = rng.uniform(size=(4,))
    ours = reduce_weighted_values(values, weight, reduction=reduction)
    expected = numpy_reduce(values, weight[:, None], None, reduction)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_weight_over_several_leading_dims(rng):
    values = rng.normal(size=(2, 3, 4))
    weight = rng.uniform(size=(2, 3))
    ours = reduce_weighted_values(values, weight, reduction="sum")
    np.testing.assert_allclose(ours, (values * weight[..., None]).sum(), rtol=1e-5)


def test_trailing_weight_broadcasts(rng):
    values = rng.normal(size=(3, 4))
    weight = rng.uniform(size=(4,))
    ours = reduce_weighted_values(values, weight, reduction="sum")
    np.testing.assert_allclose(ours, (values * weight).sum(), rtol=1e-5)


def test_trailing_unit_dimension_is_squeezed_or_expanded(rng):
    values = rng.normal(size=(5,))
    weight = rng.uniform(size=(5, 1))
    none = reduce_weighted_values(values, weight, reduction="none")
    assert none.shape == (5, 1)  # Keras expands the rank-1 losses
    np.testing.assert_allclose(none[:, 0], values * weight[:, 0], rtol=1e-6)
    values2 = rng.normal(size=(5, 3, 1))
    weight2 = rng.uniform(size=(5, 3))
    out = reduce_weighted_values(values2, weight2, reduction="sum")
    np.testing.assert_allclose(out, (values2[..., 0] * weight2).sum(), rtol=1e-5)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "mean", "sum"])
def test_mask_divides_by_valid_entries(reduction, rng):
    values = rng.normal(size=(3, 5))
    mask = rng.uniform(size=(3, 5)) > 0.4
    ours = reduce_weighted_values(values, mask=mask, reduction=reduction)
    np.testing.assert_allclose(ours, numpy_reduce(values, None, mask, reduction), rtol=1e-5)


def test_coarse_mask_over_per_timestep_losses(rng):
    values = rng.normal(size=(4, 6))
    mask = np.array([True, False, True, True])
    ours = reduce_weighted_values(values, mask=mask)
    np.testing.assert_allclose(ours, values[mask].mean(), rtol=1e-5)


def test_all_masked_gives_zero_not_nan():
    values = jnp.ones((3,))
    out = reduce_weighted_values(values, mask=jnp.zeros((3,), bool))
    assert float(out) == 0.0
    grad = jax.grad(lambda v: reduce_weighted_values(v, mask=jnp.zeros((3,), bool)))(values)
    assert np.all(np.isfinite(grad))


def test_scalar_and_empty_values_pass_through():
    assert float(reduce_weighted_values(jnp.float32(3.0))) == 3.0
    assert reduce_weighted_values(jnp.zeros((0,))).shape == (0,)


def test_bad_weight_shape_raises_with_shapes():
    with pytest.raises(ValueError, match=r"sample_weight.*\(4,\).*\(2, 3\)"):
        reduce_weighted_values(jnp.zeros((2, 3)), jnp.ones((4,)))
    with pytest.raises(ValueError, match="sample_weight"):
        jax.jit(lambda v, w: reduce_weighted_values(v, w))(jnp.zeros((2, 3)), jnp.ones((4,)))


def test_unknown_reduction_raises():
    with pytest.raises(ValueError, match="reduction"):
        standardize_reduction("average")
    with pytest.raises(ValueError, match="reduction"):
        LossFunctionWrapper(lambda t, p: p, reduction="average")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_sums_in_float32(dtype):
    # 4096 ones sum to 4096 exactly in float32, but float16/bfloat16 sums stall far earlier.
    values = jnp.full((4096, 8), 0.1, dtype)
    out = reduce_weighted_values(values, reduction="sum")
    assert out.dtype == jnp.dtype(dtype)
    expected = float(jnp.asarray(0.1, dtype)) * values.size
    np.testing.assert_allclose(float(out), expected, rtol=1e-2)


def test_complex_or_non_numeric_values_are_rejected():
    with pytest.raises(TypeError, match="values"):
        reduce_weighted_values(jnp.ones(3, jnp.complex64))
    with pytest.raises(TypeError, match="values"):
        reduce_weighted_values(["a", "b"])


# ----------------------------------------------------------------------------------------------
# Loss and LossFunctionWrapper
# ----------------------------------------------------------------------------------------------
def mean_abs(y_true, y_pred, power=1.0):
    return jnp.mean(jnp.abs(y_pred - y_true) ** power, axis=-1)


class MeanPowerError(Loss):
    def __init__(self, power=2.0, **kwargs):
        super().__init__(**kwargs)
        self.power = power

    def call(self, y_true, y_pred):
        return jnp.mean(jnp.abs(y_pred - y_true) ** self.power, axis=-1)

    def get_config(self):
        return {**super().get_config(), "power": self.power}


def test_subclass_default_name_and_config_round_trip():
    loss = MeanPowerError(power=3.0, reduction="sum", dtype="bfloat16")
    assert loss.name == "mean_power_error"
    config = loss.get_config()
    assert config == {
        "name": "mean_power_error",
        "reduction": "sum",
        "dtype": "bfloat16",
        "power": 3.0,
    }
    assert MeanPowerError.from_config(config) == loss


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown config keys \['pwr'\]"):
        MeanPowerError.from_config({"pwr": 2.0})


def test_wrapper_applies_kwargs_and_reduces(rng):
    y_true, y_pred = rng.normal(size=(2, 4, 3)).astype(np.float32)
    loss = LossFunctionWrapper(mean_abs, power=3.0, reduction="sum")
    expected = np.mean(np.abs(y_pred - y_true) ** 3, axis=-1).sum()
    np.testing.assert_allclose(loss(y_true, y_pred), expected, rtol=1e-5)
    assert loss.name == "mean_abs"
    assert loss.get_config()["fn"] is mean_abs
    assert LossFunctionWrapper.from_config(loss.get_config()) == loss


def test_wrapper_squeezes_trailing_unit_dimension(rng):
    y_true = rng.normal(size=(6,)).astype(np.float32)
    y_pred = rng.normal(size=(6, 1)).astype(np.float32)
    loss = LossFunctionWrapper(lambda t, p: jnp.abs(p - t), reduction="none")
    np.testing.assert_allclose(loss(y_true, y_pred).reshape(-1), np.abs(y_pred[:, 0] - y_true))


def test_wrapper_rejects_non_callable():
    with pytest.raises(TypeError, match="fn"):
        LossFunctionWrapper(3)


def test_losses_are_immutable_hashable_and_leafless_pytrees():
    loss = MeanPowerError(power=2.0)
    with pytest.raises(AttributeError, match="immutable"):
        loss.power = 4.0
    assert hash(loss) == hash(MeanPowerError(power=2.0))
    assert loss != MeanPowerError(power=3.0)
    assert jax.tree_util.tree_leaves(loss) == []
    assert jax.tree_util.tree_map(lambda x: x + 1, loss) == loss


def test_jit_as_closure_and_static_argument_and_vmap(rng):
    loss = MeanPowerError(power=2.0)
    y_true, y_pred = rng.normal(size=(2, 8, 3)).astype(np.float32)
    eager = loss(y_true, y_pred)
    closure = jax.jit(lambda t, p: loss(t, p))(y_true, y_pred)
    static = jax.jit(lambda fn, t, p: fn(t, p), static_argnums=0)(loss, y_true, y_pred)
    as_pytree = jax.jit(lambda fn, t, p: fn(t, p))(loss, y_true, y_pred)
    np.testing.assert_allclose([closure, static, as_pytree], [eager] * 3, rtol=1e-6)
    per_example = jax.vmap(lambda t, p: loss(t[None], p[None]))(y_true, y_pred)
    np.testing.assert_allclose(per_example.mean(), eager, rtol=1e-6)


def test_gradient_through_loss_with_weights(rng):
    loss = MeanPowerError(power=2.0, reduction="sum")
    y_true, y_pred = rng.normal(size=(2, 4, 3))
    w = rng.uniform(size=(4,))
    grad = jax.grad(lambda p: loss(y_true, p, sample_weight=w))(jnp.asarray(y_pred, jnp.float32))
    np.testing.assert_allclose(grad, 2 * (y_pred - y_true) / 3 * w[:, None], rtol=1e-5)


def test_mask_keyword_on_call(rng):
    loss = MeanPowerError(power=1.0)
    y_true, y_pred = rng.normal(size=(2, 5, 3)).astype(np.float32)
    mask = np.array([True, True, False, True, False])
    per_sample = np.mean(np.abs(y_pred - y_true), axis=-1)
    np.testing.assert_allclose(loss(y_true, y_pred, mask=mask), per_sample[mask].mean(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_dtype_sets_result_dtype_and_keeps_integer_labels(dtype):
    seen = {}

    class Spy(Loss):
        def call(self, y_true, y_pred):
            seen["true"], seen["pred"] = y_true.dtype, y_pred.dtype
            return jnp.sum(y_pred, axis=-1)

    out = Spy(dtype=dtype)(jnp.array([3001, 2049]), jnp.ones((2, 3)))
    assert out.dtype == jnp.dtype(dtype)
    assert seen == {"true": jnp.dtype("int32"), "pred": jnp.dtype(dtype)}


@pytest.mark.parametrize("reduction,kind", itertools.product(REDUCTIONS, WEIGHT_KINDS))
def test_wrapper_matches_keras_wrapper(keras, reduction, kind, rng):
    from keras.src.losses.losses import LossFunctionWrapper as KerasWrapper

    def squared(y_true, y_pred):
        return jnp.mean((y_pred - y_true) ** 2, axis=-1)

    y_true, y_pred = rng.normal(size=(2, 6, 3)).astype(np.float32)
    weight = make_weight(kind, (6, 3), rng)
    if kind == "per_element":
        weight = weight[:, 0]  # per-sample losses are (6,)
    ours = LossFunctionWrapper(squared, reduction=reduction)(y_true, y_pred, weight)
    theirs = KerasWrapper(squared, reduction=reduction)(y_true, y_pred, weight)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
