"""Assertions and parametrizations shared by the family test files.

* the Keras parity grid (:class:`ParityCase`, :func:`parity_params`,
  :func:`assert_keras_parity`): every reduction x kind of sample weight, value and gradient;
* transformation checks (:func:`assert_transforms_consistent`: eager, jit, grad and vmap agree);
* :func:`assert_finite_value_and_grad`, :func:`assert_raises_eager_and_jit` and
  :func:`assert_config_round_trip`.

Test modules import shared code from here, ``catalogue`` and ``references`` only, never from
another ``test_*.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from losses_jax.base import REDUCTIONS

WEIGHT_KINDS = ("none", "scalar", "per_sample", "per_element")


# --------------------------------------------------------------------------------------
# Keras parity grid
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParityCase:
    """One loss class with one set of options, compared with the Keras class of the same name.

    ``make_inputs(rng) -> (y_true, y_pred)``; ``loss_rank`` is the rank of the unreduced loss,
    which decides the kinds of sample weight that apply (a per-element weight needs rank 2).
    """

    class_name: str
    options: dict = field(default_factory=dict)
    make_inputs: Callable = None
    loss_rank: int = 2
    rtol: float = 1e-5
    atol: float = 1e-6

    @property
    def weight_kinds(self):
        return WEIGHT_KINDS[: {0: 2, 1: 3}.get(self.loss_rank, 4)]

    def label(self):
        options = ",".join(f"{k}={v}" for k, v in self.options.items())
        return f"{self.class_name}({options})"


def parity_params(cases):
    """pytest params: every case x reduction (all of ``REDUCTIONS``) x applicable weight kind."""
    return [
        pytest.param(case, reduction, kind, id=f"{case.label()}-{reduction}-{kind}")
        for case in cases
        for reduction in REDUCTIONS
        for kind in case.weight_kinds
    ]


def weights_for(kind, loss_shape, rng):
    """``(our weight, Keras's weight)`` of ``kind`` for unreduced losses of ``loss_shape``.

    Keras broadcasts weights from the trailing dimension, so our per-sample ``(batch,)`` weight
    is given to Keras as ``(batch, 1, ...)``; both mean the same thing.
    """
    if kind == "none":
        return None, None
    if kind == "scalar":
        return 0.7, 0.7
    if kind == "per_sample":
        weight = rng.uniform(0.1, 2.0, loss_shape[:1]).astype(np.float32)
        return weight, weight.reshape(loss_shape[:1] + (1,) * (len(loss_shape) - 1))
    weight = rng.uniform(0.1, 2.0, loss_shape).astype(np.float32)
    return weight, weight


def value_and_cotangent_grad(loss, y_true, y_pred, sample_weight, cotangent):
    """The loss value and the gradient of ``sum(loss * cotangent)`` w.r.t. ``y_pred``."""
    value, pullback = jax.vjp(lambda pred: loss(y_true, pred, sample_weight=sample_weight), y_pred)
    (grad,) = pullback(jnp.asarray(cotangent, value.dtype))
    return value, grad


def assert_keras_parity(keras, namespace, case: ParityCase, reduction, weight_kind):
    """Our class and Keras's agree in value and gradient for one reduction and weight kind."""
    rng = np.random.default_rng(7)
    y_true, y_pred = case.make_inputs(rng)
    y_pred = jnp.asarray(y_pred)
    theirs = getattr(keras.losses, case.class_name)(reduction=reduction, **case.options)
    ours = getattr(namespace, case.class_name)(reduction=reduction, **case.options)
    loss_shape = tuple(theirs.__class__(reduction="none", **case.options)(y_true, y_pred).shape)
    assert len(loss_shape) == case.loss_rank
    our_weight, keras_weight = weights_for(weight_kind, loss_shape, rng)
    cotangent = rng.normal(size=loss_shape if reduction in ("none", None) else ())
    expected, expected_grad = value_and_cotangent_grad(
        theirs, y_true, y_pred, keras_weight, cotangent
    )
    actual, actual_grad = value_and_cotangent_grad(ours, y_true, y_pred, our_weight, cotangent)
    assert actual.shape == expected.shape
    scale = float(np.max(np.abs(expected))) + 1.0
    np.testing.assert_allclose(actual, expected, rtol=case.rtol, atol=case.atol * scale)
    grad_scale = float(np.max(np.abs(expected_grad))) + 1.0
    np.testing.assert_allclose(
        actual_grad, expected_grad, rtol=case.rtol, atol=case.atol * grad_scale
    )


# --------------------------------------------------------------------------------------
# transformations, finiteness, errors, config
# --------------------------------------------------------------------------------------
def assert_transforms_consistent(fn, y_true, y_pred, rtol=1e-6, **kwargs):
    """Eager, jit, grad (eager and jit) and vmap over the batch agree; gradients are finite."""
    y_true, y_pred = jnp.asarray(y_true), jnp.asarray(y_pred)
    eager = fn(y_true, y_pred, **kwargs)
    jitted = jax.jit(lambda t, p: fn(t, p, **kwargs))(y_true, y_pred)
    np.testing.assert_allclose(jitted, eager, rtol=rtol, atol=1e-7)

    def total(p):
        return jnp.sum(fn(y_true, p, **kwargs))

    grad = jax.grad(total)(y_pred)
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(jax.jit(jax.grad(total))(y_pred), grad, rtol=rtol, atol=1e-7)
    mapped = jax.vmap(lambda t, p: fn(t, p, **kwargs))(y_true, y_pred)
    np.testing.assert_allclose(mapped, eager, rtol=rtol, atol=1e-7)


def assert_finite_value_and_grad(fn, y_true, y_pred, **kwargs):
    """Value and gradient w.r.t. ``y_pred`` are finite (no inf, no NaN)."""
    y_pred = jnp.asarray(y_pred, jnp.float32)
    value, grad = jax.value_and_grad(lambda p: jnp.sum(fn(y_true, p, **kwargs)))(y_pred)
    assert np.isfinite(value), value
    assert np.all(np.isfinite(grad)), grad
    return value, grad


def assert_raises_eager_and_jit(error, match, fn, *args):
    """``fn(*args)`` raises ``error`` eagerly and while being traced by jit."""
    with pytest.raises(error, match=match):
        fn(*args)
    with pytest.raises(error, match=match):
        jax.jit(fn)(*args)


def assert_config_round_trip(keras, loss_class, **options):
    """from_config(get_config()) rebuilds an equal, hashable loss; the default name is Keras's."""
    loss = loss_class(**options)
    rebuilt = type(loss).from_config(loss.get_config())
    assert rebuilt == loss and hash(rebuilt) == hash(loss)
    if "name" not in options:
        assert loss.name == getattr(keras.losses, loss_class.__name__)().name
    for key, value in options.items():
        assert loss.get_config()[key] == value
    with pytest.raises(AttributeError):
        loss.name = "other"
