"""Generalized Dice against optax 0.2.8's ``multiclass_generalized_dice_loss``.

optax returns one number, the mean over samples and classes; the per-sample values (mean over
classes) are optax's ``dice_loss`` with optax's class weights, computed here as optax computes
them (``C * v / sum(v)``, ``v = 1 / (f^2 + 1e-7)``, ``f`` the batch's class frequencies). Both
are compared with ours in value and gradient for every option, reduction and kind of sample
weight, in float32 and float64; ``smooth`` is also checked as a traced option.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from anchor_parity import AnchorCase, assert_anchor_grid, grid_params
from helpers import assert_raises_eager_and_jit

import losses_jax as lj

optax = pytest.importorskip("optax")

SHAPE = (3, 4, 5, 4)  # batch, height, width, classes


def optax_class_weights(targets):
    frequencies = jnp.sum(targets, axis=tuple(range(targets.ndim - 1)))
    inverse = 1.0 / (frequencies**2 + 1e-7)
    return inverse / jnp.sum(inverse) * inverse.shape[0]


def optax_options(options):
    return {
        "apply_softmax": options.get("from_logits", True),
        "smooth": options.get("smooth", 1.0),
        "ignore_background": options.get("ignore_background", False),
    }


def optax_per_sample(options):
    def anchor(y_true, y_pred, dtype):
        targets = jnp.asarray(y_true, dtype)
        weights = optax_class_weights(targets)

        def values(p):
            return optax.losses.dice_loss(
                p, targets, class_weights=weights, reduction="mean", **optax_options(options)
            )

        p = jnp.asarray(y_pred, dtype)
        return values(p), jax.grad(lambda x: jnp.sum(values(x)))(p)

    return anchor


def segmentation_inputs(options, shape=SHAPE):
    def make(rng):
        y_true = np.eye(shape[-1])[rng.integers(0, shape[-1], size=shape[:-1])]
        logits = rng.normal(0.0, 2.0, size=shape)
        if options.get("from_logits", True):
            return y_true, logits
        return y_true, np.asarray(jax.nn.softmax(logits))

    return make


def case(options, shape=SHAPE, weights=None):
    label = ",".join(f"{k}={v}" for k, v in options.items())
    return AnchorCase(
        f"GeneralizedDice({label}){'x'.join(map(str, shape))}",
        lambda options=options, **kw: lj.GeneralizedDice(**options, **kw),
        optax_per_sample(options),
        segmentation_inputs(options, shape),
        loss_rank=1,
        weights=weights,
    )


# The default options run every kind of weight; the others one (the weighting is shared code).
OPTIONS = [
    {"from_logits": False},
    {"smooth": 0.25},
    {"smooth": 0.0},
    {"ignore_background": True},
    {"from_logits": False, "smooth": 2.0, "ignore_background": True},
]
CASES = [
    case({}),
    *[case(options, weights=("per_sample",)) for options in OPTIONS],
    case({}, shape=(3, 6, 1), weights=("per_sample",)),  # one class: sigmoid
    case({}, shape=(5, 3), weights=("per_sample",)),  # no spatial axes
]


@pytest.mark.parametrize(("case", "combos", "dtype"), grid_params(CASES))
def test_parity_with_optax_per_sample(case, combos, dtype):
    assert_anchor_grid(case, combos, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("options", [{}, *OPTIONS], ids=lambda o: str(o) or "default")
def test_default_reduction_is_optax_loss(options, dtype):
    y_true, y_pred = segmentation_inputs(options)(np.random.default_rng(1))
    with jax.enable_x64(dtype == "float64"):
        t, p = jnp.asarray(y_true, dtype), jnp.asarray(y_pred, dtype)
        loss = lj.GeneralizedDice(**options, dtype=dtype)
        value, grad = jax.value_and_grad(lambda x: loss(t, x))(p)
        expected, expected_grad = jax.value_and_grad(
            lambda x: optax.losses.multiclass_generalized_dice_loss(x, t, **optax_options(options))
        )(p)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    assert value.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(value, expected, rtol=rtol)
    np.testing.assert_allclose(grad, expected_grad, rtol=rtol, atol=rtol * 1e-3)


def test_matches_the_float64_reference():
    for options in [{}, *OPTIONS]:
        y_true, y_pred = segmentation_inputs(options)(np.random.default_rng(2))
        np.testing.assert_allclose(
            lj.generalized_dice(y_true, y_pred, **options),
            ref.generalized_dice(y_true, y_pred, **options),
            rtol=1e-5,
            atol=1e-6,
        )


def test_balanced_classes_weigh_one_and_rare_classes_more():
    logits = np.random.default_rng(8).normal(size=(2, 8, 4))
    balanced = np.eye(4)[np.tile(np.arange(8) % 4, (2, 1))]
    # Equal frequencies: every weight is 1, the plain mean of the per-class Dice losses.
    plain = optax.losses.dice_loss(logits, balanced, reduction="mean")
    np.testing.assert_allclose(lj.generalized_dice(balanced, logits), plain, rtol=1e-6)
    # Frequencies 12, 2, 1, 1 in the batch: weights 4 / (f^2 sum(1 / f^2)), i.e. the rare
    # classes 2 and 3 weigh 4 times class 1 and 144 times class 0.
    targets = np.eye(4)[np.array([[0] * 6 + [2, 3], [0] * 6 + [1, 1]])]
    inverse_squares = 1.0 / np.array([12.0, 2.0, 1.0, 1.0]) ** 2
    weights = 4 * inverse_squares / inverse_squares.sum()
    per_class = np.asarray(optax.losses.dice_loss(logits, targets, reduction="none"))
    np.testing.assert_allclose(
        lj.generalized_dice(targets, logits), (weights * per_class).mean(-1), rtol=1e-5
    )


@pytest.mark.slow  # covered in the default run by tests/test_transformations.py
def test_jit_vmap_forward_mode_and_hessian():
    y_true, y_pred = (
        x.astype(np.float32) for x in segmentation_inputs({})(np.random.default_rng(3))
    )
    fn = lj.generalized_dice
    np.testing.assert_allclose(jax.jit(fn)(y_true, y_pred), fn(y_true, y_pred), rtol=1e-6)
    # Under vmap each slice computes its own class weights: one sample at a time.
    mapped = jax.vmap(lambda t, p: fn(t[None], p[None])[0])(y_true, y_pred)
    singles = [fn(y_true[i : i + 1], y_pred[i : i + 1])[0] for i in range(SHAPE[0])]
    np.testing.assert_allclose(mapped, singles, rtol=1e-6)

    def total(p):
        return jnp.sum(fn(y_true, p))

    tangent = np.random.default_rng(4).normal(size=SHAPE).astype(np.float32)
    _, forward = jax.jvp(total, (jnp.asarray(y_pred),), (jnp.asarray(tangent),))
    np.testing.assert_allclose(
        forward, jnp.vdot(jax.grad(total)(jnp.asarray(y_pred)), tangent), rtol=1e-4, atol=1e-6
    )
    small = jnp.asarray(y_pred[:1, :1, :2])
    hessian = jax.hessian(lambda p: jnp.sum(fn(y_true[:1, :1, :2], p)))(small)
    assert hessian.shape == small.shape * 2 and np.all(np.isfinite(hessian))


def test_smooth_derivative_matches_finite_differences():
    y_true, y_pred = segmentation_inputs({})(np.random.default_rng(5))
    with jax.enable_x64(True):
        total = jax.jit(lambda s: lj.GeneralizedDice(smooth=s, dtype="float64")(y_true, y_pred))
        x = jnp.float64(0.7)
        grad = float(jax.grad(total)(x))
        step = 1e-6
        numeric = (float(total(x + step)) - float(total(x - step))) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6)
        assert grad != 0.0
        batched = jax.vmap(total)(jnp.asarray([0.7, 0.3]))
        np.testing.assert_allclose(batched[1], total(jnp.float64(0.3)), rtol=1e-12)


@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_extreme_and_masked_logits_are_finite(scale):
    rng = np.random.default_rng(6)
    y_true, _ = segmentation_inputs({})(rng)
    signs = rng.choice([-1.0, 1.0], size=SHAPE)
    logits = (signs * scale).astype(np.float32)
    masked = np.where(
        (rng.uniform(size=SHAPE) < 0.3) & (y_true == 0), -np.inf, rng.normal(size=SHAPE)
    )
    for y_pred in (logits, masked.astype(np.float32)):
        value, grad = jax.value_and_grad(lambda p: lj.GeneralizedDice()(y_true, p))(y_pred)
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(value, np.mean(ref.generalized_dice(y_true, y_pred)), rtol=1e-5)


def test_misuse_raises_clear_errors():
    y_true, y_pred = segmentation_inputs({})(np.random.default_rng(7))
    ids = np.argmax(y_true, axis=-1)
    assert_raises_eager_and_jit(
        ValueError, r"\(3, 4, 5\).*\(3, 4, 5, 4\).*to_categorical", lj.generalized_dice, ids, y_pred
    )
    assert_raises_eager_and_jit(
        ValueError, "rank >= 2", lj.generalized_dice, y_pred[0, 0, 0], y_pred[0, 0, 0]
    )
    with pytest.raises(ValueError, match=r"`smooth` must be in \[0.0, inf\]; received smooth=-1"):
        lj.GeneralizedDice(smooth=-1)
    not_a_bool: Any = "yes"
    with pytest.raises(TypeError, match="ignore_background"):
        lj.GeneralizedDice(ignore_background=not_a_bool)


def test_config_round_trip_and_registry():
    loss = lj.GeneralizedDice(from_logits=False, smooth=0.5, ignore_background=True)
    rebuilt = type(loss).from_config(loss.get_config())
    assert rebuilt == loss and hash(rebuilt) == hash(loss)
    assert lj.deserialize(lj.serialize(loss)) == loss
    assert lj.get("GeneralizedDice") == lj.GeneralizedDice()
    assert lj.get("generalized_dice") is lj.generalized_dice
