"""Parity with an anchor library (optax, PyTorch) for every reduction and kind of sample weight.

An anchor gives per-sample values and ``d sum(values) / d y_pred`` (each sample's values
depending only on its own predictions); the expected reduced value and its gradient follow
from Keras's reduction in float64 NumPy. Our loss, built with each reduction and the dtype of
the case, is compared in value and in the gradient of ``sum(value * cotangent)``.

Used by the family test files of the optax/PyTorch catalogue (``test_sparsemax.py``,
``test_robust_regression.py``, ``test_generalized_dice.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import WEIGHT_KINDS

from losses_jax.base import REDUCTIONS

DTYPES = ("float32", "float64")
TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-9, 1e-12)}  # rtol, atol (scaled)


@dataclass(frozen=True)
class AnchorCase:
    """One of our losses against an anchor.

    Attributes:
        label: a readable test id.
        build: ``(reduction, dtype) -> our loss``.
        anchor: ``(y_true, y_pred, dtype) -> (per-sample values, d sum(values) / d y_pred)``,
            evaluated by the anchor library in ``dtype``.
        make_inputs: ``rng -> (y_true, y_pred)`` NumPy arrays (float64 or integer).
        loss_rank: the rank of the per-sample values (a per-element weight needs rank 2).
        weights: the kinds of sample weight to run (default: every kind that applies); a
            further option set of a loss may run fewer, the default set covers them all.
    """

    label: str
    build: Callable
    anchor: Callable
    make_inputs: Callable
    loss_rank: int = 2
    weights: tuple[str, ...] | None = None

    @property
    def weight_kinds(self):
        if self.weights is not None:
            return self.weights
        return WEIGHT_KINDS[: {1: 3}.get(self.loss_rank, 4)]


def anchor_params(cases):
    """pytest params: every case x reduction x applicable weight kind x dtype."""
    return [
        pytest.param(case, reduction, kind, dtype, id=f"{case.label}-{reduction}-{kind}-{dtype}")
        for case in cases
        for reduction in REDUCTIONS
        for kind in case.weight_kinds
        for dtype in DTYPES
    ]


def _weight(kind: str, loss_shape: tuple, rng) -> np.ndarray | float | None:
    if kind == "none":
        return None
    if kind == "scalar":
        return 0.7
    shape = loss_shape[:1] if kind == "per_sample" else loss_shape
    return rng.uniform(0.1, 2.0, shape)


def _coefficients(weight, reduction, loss_shape, cotangent) -> np.ndarray:
    """``cotangent * d value / d per-sample values`` of Keras's reduction; as in Keras,
    ``"mean_with_sample_weight"`` divides by the sum of the weights as given."""
    w = np.ones(()) if weight is None else np.asarray(weight, np.float64)
    w = np.broadcast_to(np.reshape(w, w.shape + (1,) * (len(loss_shape) - w.ndim)), loss_shape)
    if reduction in (None, "none"):
        return w * cotangent
    if reduction == "sum":
        divisor = 1.0
    elif reduction == "mean_with_sample_weight" and weight is not None:
        divisor = float(np.sum(weight))
    else:
        divisor = float(np.prod(loss_shape))
    return w * cotangent / divisor


def assert_anchor_parity(case: AnchorCase, reduction, weight_kind: str, dtype: str):
    """Our loss and the anchor agree in value and gradient for one reduction, weight, dtype."""
    rng = np.random.default_rng(11)
    y_true, y_pred = case.make_inputs(rng)
    with jax.enable_x64(dtype == "float64"):
        values, sample_grads = case.anchor(y_true, y_pred, dtype)
        values, sample_grads = np.asarray(values, np.float64), np.asarray(sample_grads, np.float64)
        loss_shape = values.shape
        assert len(loss_shape) == case.loss_rank
        weight = _weight(weight_kind, loss_shape, rng)
        reduced = reduction not in (None, "none")
        cotangent = rng.normal(size=() if reduced else loss_shape)
        coefficients = _coefficients(weight, reduction, loss_shape, cotangent)
        unit = _coefficients(weight, reduction, loss_shape, 1.0)
        expected = np.sum(unit * values) if reduced else unit * values
        trailing = (1,) * (sample_grads.ndim - len(loss_shape))
        expected_grad = coefficients.reshape(loss_shape + trailing) * sample_grads

        loss = case.build(reduction=reduction, dtype=dtype)
        our_weight = None if weight is None else jnp.asarray(weight, dtype)
        pred = jnp.asarray(y_pred, dtype)
        value, pullback = jax.vjp(lambda p: loss(y_true, p, sample_weight=our_weight), pred)
        (grad,) = pullback(jnp.asarray(cotangent, value.dtype))
    assert value.dtype == jnp.dtype(dtype) and value.shape == np.shape(expected)
    rtol, atol = TOLERANCE[dtype]
    scale = float(np.max(np.abs(expected), initial=0.0)) + 1.0
    np.testing.assert_allclose(value, expected, rtol=rtol, atol=atol * scale)
    grad_scale = float(np.max(np.abs(expected_grad), initial=0.0)) + 1.0
    np.testing.assert_allclose(grad, expected_grad, rtol=rtol, atol=atol * grad_scale)
