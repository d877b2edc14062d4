"""Regression losses: squared, absolute, percentage, logarithmic, cosine, Huber and log-cosh.

Each loss is a per-sample function (one value per sample, the last axis averaged away) and a
class that reduces those values with :func:`losses_jax.base.reduce_weighted_values`. Names,
defaults and numbers follow Keras 3.

Numerics shared by the family:

* inputs are converted to the accumulation dtype (float32 for float16/bfloat16) before any
  arithmetic and the result is cast back to ``y_pred``'s floating dtype; integer ``y_true`` goes
  straight to the accumulation dtype, never through a low-precision float;
* means over the last axis divide before summing, so a mean that fits in the dtype never
  overflows on the way (MSE of errors of 1e18 is 1e36, finite in float32);
* every branch that could produce ``inf``/``NaN`` where it is not selected is fed a safe
  value (double ``where``), so a finite value never has a NaN gradient.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from losses_jax.base import FunctionLoss, LossFunctionWrapper
from losses_jax.numerics import (
    EPSILON,
    check_axis_type,
    check_number,
    mean_of_elementwise,
    prepare_pair,
    resolve_axis,
)

__all__ = [
    "CosineSimilarity",
    "Huber",
    "LogCosh",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "cosine_similarity",
    "huber",
    "huber_loss",
    "log_cosh",
    "logcosh",
    "mae",
    "mape",
    "mean_absolute_error",
    "mean_absolute_percentage_error",
    "mean_squared_error",
    "mean_squared_logarithmic_error",
    "mse",
    "msle",
]

_LOG_2 = math.log(2.0)


# --------------------------------------------------------------------------------------
# elementwise terms (on inputs already in the accumulation dtype)
# --------------------------------------------------------------------------------------
def _squared_error(y_true, y_pred):
    return jnp.square(y_pred - y_true)


def _absolute_error(y_true, y_pred):
    return jnp.abs(y_pred - y_true)


def _percentage_error(y_true, y_pred):
    # Keras divides by max(|y_true|, eps): a zero target gives a large, finite term.
    return 100.0 * jnp.abs(y_true - y_pred) / jnp.maximum(jnp.abs(y_true), EPSILON)


def _squared_log_error(y_true, y_pred):
    # Values below eps (negative ones included) are clipped to eps, as in Keras.
    log_ratio = jnp.log1p(jnp.maximum(y_pred, EPSILON)) - jnp.log1p(jnp.maximum(y_true, EPSILON))
    return jnp.square(log_ratio)


def _huber_error(y_true, y_pred, delta):
    error = y_pred - y_true
    abs_error = jnp.abs(error)
    quadratic = abs_error <= delta
    # Only selected errors are squared: a huge unselected error must not make an inf.
    small_error = jnp.where(quadratic, error, 0.0)
    return jnp.where(
        quadratic, 0.5 * jnp.square(small_error), delta * abs_error - 0.5 * delta * delta
    )


# --------------------------------------------------------------------------------------
# per-sample functions
# --------------------------------------------------------------------------------------
def mean_squared_error(y_true, y_pred) -> jax.Array:
    """Mean squared error per sample: ``mean((y_true - y_pred) ** 2, axis=-1)``.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    Examples:
        >>> loss = mean_squared_error(jnp.array([1.0, 0.0, 1.0]), jnp.array([0.9, 0.1, 0.8]))
        >>> print(f"{float(loss):.4f}")
        0.0200
    """
    return mean_of_elementwise(_squared_error, y_true, y_pred, "mean_squared_error")


def mean_absolute_error(y_true, y_pred) -> jax.Array:
    """Mean absolute error per sample: ``mean(|y_true - y_pred|, axis=-1)``.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    Examples:
        >>> loss = mean_absolute_error(jnp.array([1.0, 0.3, 1.0]), jnp.array([1.9, 0.3, 1.8]))
        >>> print(f"{float(loss):.4f}")
        0.5667
    """
    return mean_of_elementwise(_absolute_error, y_true, y_pred, "mean_absolute_error")


def mean_absolute_percentage_error(y_true, y_pred) -> jax.Array:
    """Mean absolute percentage error per sample.

    ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7), axis=-1)``: a zero target divides by
    ``1e-7`` (as in Keras) instead of by zero.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    Examples:
        >>> y_true, y_pred = jnp.array([100.0, 200.0, 300.0]), jnp.array([90.0, 210.0, 310.0])
        >>> print(f"{float(mean_absolute_percentage_error(y_true, y_pred)):.4f}")
        6.1111
    """
    return mean_of_elementwise(_percentage_error, y_true, y_pred, "mean_absolute_percentage_error")


def mean_squared_logarithmic_error(y_true, y_pred) -> jax.Array:
    """Mean squared logarithmic error per sample.

    ``mean((log1p(max(y_pred, 1e-7)) - log1p(max(y_true, 1e-7))) ** 2, axis=-1)``: values
    below ``1e-7`` (zero and negative ones included) are replaced by ``1e-7``, as in Keras, and
    receive no gradient.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    Examples:
        >>> loss = mean_squared_logarithmic_error(jnp.array([0.0, 1.0]), jnp.array([1.0, -2.0]))
        >>> print(f"{float(loss):.4f}")
        0.4805
    """
    return mean_of_elementwise(_squared_log_error, y_true, y_pred, "mean_squared_logarithmic_error")


def _l2_normalize(x: jax.Array, axis: int) -> jax.Array:
    """Keras's ``normalize``: ``x / max(||x||, 1e-7)`` along ``axis``, without overflow.

    The norm is taken of ``x`` divided by its largest magnitude (a constant for the gradient:
    the result does not depend on it), so entries of 1e30 neither overflow nor lose the
    direction. A vector whose norm is at most ``1e-7`` (the zero vector included) is divided
    by ``1e-7``: its value and gradient stay finite.
    """
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=axis, keepdims=True))
    safe_scale = jnp.where(scale > 0, scale, 1.0)
    scaled = x / safe_scale
    squared_norm = jnp.sum(jnp.square(scaled), axis=axis, keepdims=True)
    # ||x|| > eps  <=>  ||x / scale||^2 > (eps / scale)^2
    above_eps = (scale > 0) & (squared_norm > jnp.square(EPSILON / safe_scale))
    safe_squared_norm = jnp.where(above_eps, squared_norm, 1.0)
    return jnp.where(above_eps, scaled * jax.lax.rsqrt(safe_squared_norm), x / EPSILON)


def cosine_similarity(y_true, y_pred, axis=-1) -> jax.Array:
    """Negative cosine similarity: ``-sum(normalize(y_true) * normalize(y_pred), axis)``.

    ``normalize(x) = x / max(||x||_2, 1e-7)``, so the value lies in ``[-1, 1]`` (-1: same
    direction, 0: orthogonal) and is 0 when either vector is zero, with a finite gradient.

    Args:
        y_true: targets, shape ``(batch, d0, ..., dN)``.
        y_pred: predictions, same shape.
        axis: the feature axis the similarity is taken over (default ``-1``).

    Returns:
        Losses with ``axis`` removed, in ``y_pred``'s floating dtype.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
        >>> y_pred = jnp.array([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
        >>> [round(float(v), 4) for v in cosine_similarity(y_true, y_pred)]
        [-0.0, -1.0, 1.0]
    """
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "cosine_similarity")
    check_axis_type(axis, "cosine_similarity", allow_tuple=False)
    axis = resolve_axis(axis, y_pred.shape, "cosine_similarity")
    products = _l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis)
    return (-jnp.sum(products, axis=axis)).astype(out_dtype)


def _check_delta(delta):
    return check_number(delta, "delta", low=0.0, low_inclusive=False)


def huber(y_true, y_pred, delta=1.0) -> jax.Array:
    """Huber loss per sample, quadratic up to ``delta`` and linear beyond.

    With ``e = y_pred - y_true``::

        huber(e) = 0.5 * e**2                       if |e| <= delta
                   delta * |e| - 0.5 * delta**2     otherwise

    averaged over the last axis. The gradient is ``e`` inside and ``delta * sign(e)`` outside,
    so it is exactly ``e`` at the kink ``|e| = delta`` from either formula.

    Args:
        y_true: targets, shape ``(batch, d0, ..., dN)``.
        y_pred: predictions, same shape.
        delta: the positive error at which the loss turns linear (default 1.0).

    Returns:
        Losses of shape ``(batch, d0, ..., dN-1)`` in ``y_pred``'s floating dtype.

    Raises:
        ValueError: if ``delta <= 0``.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[0.6, 0.4], [0.4, 0.6]])
        >>> print(f"{float(jnp.mean(huber(y_true, y_pred))):.4f}")
        0.1550
    """
    _check_delta(delta)
    return mean_of_elementwise(partial(_huber_error, delta=delta), y_true, y_pred, "huber")


@jax.custom_jvp
def _log_cosh_elementwise(x: jax.Array) -> jax.Array:
    """``log(cosh(x))`` to full relative precision for every finite ``x``; derivative ``tanh(x)``.

    With ``a = |x|``: ``cosh(a) - 1 = expm1(-a)**2 / (2 exp(-a))``, so ``log1p`` of that is
    exact down to ``x**2 / 2`` near 0 (where ``a + softplus(-2a) - log 2`` cancels). Above
    ``a = 20`` the correction ``log1p(exp(-2a)) < 5e-18`` is below float precision and the
    value is ``a - log 2``, with no overflow up to the largest float.
    """
    magnitude = jnp.abs(x)
    moderate = magnitude < 20.0
    clamped = jnp.where(moderate, magnitude, 0.0)
    expm1_neg = jnp.expm1(-clamped)
    moderate_value = jnp.log1p(jnp.square(expm1_neg) / (2.0 * jnp.exp(-clamped)))
    return jnp.where(moderate, moderate_value, magnitude - _LOG_2)


@_log_cosh_elementwise.defjvp
def _log_cosh_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return _log_cosh_elementwise(x), jnp.tanh(x) * dx


def log_cosh(y_true, y_pred) -> jax.Array:
    """Log-cosh loss per sample: ``mean(log(cosh(y_pred - y_true)), axis=-1)``.

    Behaves like ``x**2 / 2`` for small errors and ``|x| - log 2`` for large ones. The value
    is computed without overflow for any finite error (1e30 included) and its gradient is
    exactly ``tanh(x) / n``.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[1.0, 1.0], [0.0, 0.0]])
        >>> print(f"{float(jnp.mean(log_cosh(y_true, y_pred))):.4f}")
        0.1084
    """
    return mean_of_elementwise(
        lambda t, p: _log_cosh_elementwise(p - t), y_true, y_pred, "log_cosh"
    )


# Keras's short and legacy names.
mse = mean_squared_error
mae = mean_absolute_error
mape = mean_absolute_percentage_error
msle = mean_squared_logarithmic_error
huber_loss = huber
logcosh = log_cosh


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class MeanSquaredError(FunctionLoss):
    """Mean of squared errors, ``mean((y_true - y_pred) ** 2)``; see :func:`mean_squared_error`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.base.Loss`.

    Examples:
        >>> loss = MeanSquaredError()
        >>> print(f"{float(loss(jnp.array([1.0, 0.0, 1.0]), jnp.array([0.9, 0.1, 0.8]))):.4f}")
        0.0200
    """

    function = staticmethod(mean_squared_error)


class MeanAbsoluteError(FunctionLoss):
    """Mean of absolute errors, ``mean(|y_true - y_pred|)``; see :func:`mean_absolute_error`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.base.Loss`.

    Examples:
        >>> loss = MeanAbsoluteError(reduction="sum")
        >>> print(f"{float(loss(jnp.array([[1.0, 0.3]]), jnp.array([[1.9, 0.3]]))):.4f}")
        0.4500
    """

    function = staticmethod(mean_absolute_error)


class MeanAbsolutePercentageError(FunctionLoss):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))``.

    See :func:`mean_absolute_percentage_error`. Args: ``reduction``, ``name``, ``dtype`` as
    for :class:`~losses_jax.base.Loss`.

    Examples:
        >>> y_true, y_pred = jnp.array([[100.0], [200.0]]), jnp.array([[90.0], [210.0]])
        >>> print(f"{float(MeanAbsolutePercentageError()(y_true, y_pred)):.4f}")
        7.5000
    """

    function = staticmethod(mean_absolute_percentage_error)


class MeanSquaredLogarithmicError(FunctionLoss):
    """``mean((log1p(y_pred) - log1p(y_true)) ** 2)``, inputs clipped below at 1e-7.

    See :func:`mean_squared_logarithmic_error`. Args: ``reduction``, ``name``, ``dtype`` as
    for :class:`~losses_jax.base.Loss`.

    Examples:
        >>> loss = MeanSquaredLogarithmicError(dtype="bfloat16")
        >>> value = loss(jnp.array([[0.0, 1.0]]), jnp.array([[1.0, -2.0]]))
        >>> value.dtype, round(float(value), 2)
        (dtype(bfloat16), 0.48)
    """

    function = staticmethod(mean_squared_logarithmic_error)


class CosineSimilarity(LossFunctionWrapper):
    """Negative cosine similarity along ``axis``; see :func:`cosine_similarity`.

    Args:
        axis: the feature axis (default ``-1``).
        reduction, name, dtype: as for :class:`~losses_jax.base.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [1.0, 1.0]])
        >>> y_pred = jnp.array([[1.0, 0.0], [1.0, 1.0]])
        >>> print(f"{float(CosineSimilarity(axis=1)(y_true, y_pred)):.4f}")
        -0.5000
    """

    def __init__(
        self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None
    ):
        check_axis_type(axis, "cosine_similarity", allow_tuple=False)
        super().__init__(cosine_similarity, reduction=reduction, name=name, dtype=dtype, axis=axis)


class Huber(LossFunctionWrapper):
    """Huber loss, quadratic below ``delta`` and linear above; see :func:`huber`.

    Args:
        delta: the positive error at which the loss turns linear (default 1.0).
        reduction, name, dtype: as for :class:`~losses_jax.base.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[0.6, 0.4], [0.4, 0.6]])
        >>> print(f"{float(Huber()(y_true, y_pred)):.4f}")
        0.1550
    """

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        _check_delta(delta)
        super().__init__(huber, reduction=reduction, name=name, dtype=dtype, delta=delta)


class LogCosh(FunctionLoss):
    """Log of the hyperbolic cosine of the error, ``mean(log(cosh(y_pred - y_true)))``.

    See :func:`log_cosh`. Args: ``reduction``, ``name``, ``dtype`` as for
    :class:`~losses_jax.base.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[1.0, 1.0], [0.0, 0.0]])
        >>> print(f"{float(LogCosh()(y_true, y_pred)):.4f}")
        0.1084
    """

    function = staticmethod(log_cosh)
