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

from functools import partial

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    EPSILON,
    l2_normalize,
    log_cosh_elementwise,
    mean_of_elementwise,
    prepare_pair,
)
from losses_jax._validation import check_axis, check_number, resolve_axis
from losses_jax.base import Loss

__all__ = [
    "MAE",
    "MAPE",
    "MSE",
    "MSLE",
    "CosineSimilarity",
    "Huber",
    "LogCosh",
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "MeanSquaredError",
    "MeanSquaredLogarithmicError",
    "cosine",
    "cosine_proximity",
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
def mean_squared_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Mean squared error per sample: ``mean((y_true - y_pred) ** 2, axis=-1)``.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    References:
        Keras 3, ``keras.losses.mean_squared_error`` (same formula and constants).

    Examples:
        >>> loss = mean_squared_error(jnp.array([1.0, 0.0, 1.0]), jnp.array([0.9, 0.1, 0.8]))
        >>> print(f"{float(loss):.4f}")
        0.0200
    """
    return mean_of_elementwise(_squared_error, y_true, y_pred, "mean_squared_error")


def mean_absolute_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Mean absolute error per sample: ``mean(|y_true - y_pred|, axis=-1)``.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    References:
        Keras 3, ``keras.losses.mean_absolute_error`` (same formula and constants).

    Examples:
        >>> loss = mean_absolute_error(jnp.array([1.0, 0.3, 1.0]), jnp.array([1.9, 0.3, 1.8]))
        >>> print(f"{float(loss):.4f}")
        0.5667
    """
    return mean_of_elementwise(_absolute_error, y_true, y_pred, "mean_absolute_error")


def mean_absolute_percentage_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Mean absolute percentage error per sample.

    ``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7), axis=-1)``: a zero target divides by
    ``1e-7`` (as in Keras) instead of by zero.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    References:
        Keras 3, ``keras.losses.mean_absolute_percentage_error`` (same formula and constants).

    Examples:
        >>> y_true, y_pred = jnp.array([100.0, 200.0, 300.0]), jnp.array([90.0, 210.0, 310.0])
        >>> print(f"{float(mean_absolute_percentage_error(y_true, y_pred)):.4f}")
        6.1111
    """
    return mean_of_elementwise(_percentage_error, y_true, y_pred, "mean_absolute_percentage_error")


def mean_squared_logarithmic_error(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Mean squared logarithmic error per sample.

    ``mean((log1p(max(y_pred, 1e-7)) - log1p(max(y_true, 1e-7))) ** 2, axis=-1)``: values
    below ``1e-7`` (zero and negative ones included) are replaced by ``1e-7``, as in Keras, and
    receive no gradient.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    References:
        Keras 3, ``keras.losses.mean_squared_logarithmic_error`` (same formula and constants).

    Examples:
        >>> loss = mean_squared_logarithmic_error(jnp.array([0.0, 1.0]), jnp.array([1.0, -2.0]))
        >>> print(f"{float(loss):.4f}")
        0.4805
    """
    return mean_of_elementwise(_squared_log_error, y_true, y_pred, "mean_squared_logarithmic_error")


def cosine_similarity(y_true: ArrayLike, y_pred: ArrayLike, axis: int = -1) -> jax.Array:
    """Negative cosine similarity: ``-sum(normalize(y_true) * normalize(y_pred), axis)``.

    ``normalize(x) = x / max(||x||_2, 1e-7)``, so the value lies in ``[-1, 1]`` (-1: same
    direction, 0: orthogonal) and is 0 when either vector is zero, with a finite gradient.

    Args:
        y_true: targets, shape ``(batch, d0, ..., dN)``.
        y_pred: predictions, same shape.
        axis: the feature axis the similarity is taken over (default ``-1``).

    Returns:
        Losses with ``axis`` removed, in ``y_pred``'s floating dtype.

    References:
        Keras 3, ``keras.losses.cosine_similarity`` (same sign convention and norm floor).

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
        >>> y_pred = jnp.array([[1.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
        >>> [round(float(v), 4) for v in cosine_similarity(y_true, y_pred)]
        [-0.0, -1.0, 1.0]
    """
    check_axis(axis, "cosine_similarity", allow_tuple=False)
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "cosine_similarity")
    axis = resolve_axis(axis, y_pred.shape, "cosine_similarity")
    products = l2_normalize(y_true, axis) * l2_normalize(y_pred, axis)
    return (-jnp.sum(products, axis=axis)).astype(out_dtype)


def _check_delta(delta: float) -> float:
    return check_number(delta, "delta", low=0.0, low_inclusive=False)


def huber(y_true: ArrayLike, y_pred: ArrayLike, delta: float = 1.0) -> jax.Array:
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

    References:
        Huber (1964), "Robust Estimation of a Location Parameter", *Annals of Mathematical
        Statistics* 35(1). Keras 3, ``keras.losses.huber``.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[0.6, 0.4], [0.4, 0.6]])
        >>> print(f"{float(jnp.mean(huber(y_true, y_pred))):.4f}")
        0.1550
    """
    _check_delta(delta)
    return mean_of_elementwise(partial(_huber_error, delta=delta), y_true, y_pred, "huber")


def log_cosh(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Log-cosh loss per sample: ``mean(log(cosh(y_pred - y_true)), axis=-1)``.

    Behaves like ``x**2 / 2`` for small errors and ``|x| - log 2`` for large ones. The value
    is computed without overflow for any finite error (1e30 included) and its gradient is
    exactly ``tanh(x) / n``.

    Shapes: ``y_true``, ``y_pred``: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    References:
        Keras 3, ``keras.losses.log_cosh`` (same formula; evaluated without overflow).

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[1.0, 1.0], [0.0, 0.0]])
        >>> print(f"{float(jnp.mean(log_cosh(y_true, y_pred))):.4f}")
        0.1084
    """
    return mean_of_elementwise(lambda t, p: log_cosh_elementwise(p - t), y_true, y_pred, "log_cosh")


# Keras's short and legacy names.
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
huber_loss = huber
logcosh = log_cosh
# Keras 2's and tf.keras 1.x's names of the (negated) cosine similarity.
cosine_proximity = cosine = cosine_similarity


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class MeanSquaredError(Loss):
    """Mean of squared errors, ``mean((y_true - y_pred) ** 2)``; see :func:`mean_squared_error`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = MeanSquaredError()
        >>> print(f"{float(loss(jnp.array([1.0, 0.0, 1.0]), jnp.array([0.9, 0.1, 0.8]))):.4f}")
        0.0200
    """

    function = mean_squared_error

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "mean_squared_error",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MeanAbsoluteError(Loss):
    """Mean of absolute errors, ``mean(|y_true - y_pred|)``; see :func:`mean_absolute_error`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = MeanAbsoluteError(reduction="sum")
        >>> print(f"{float(loss(jnp.array([[1.0, 0.3]]), jnp.array([[1.9, 0.3]]))):.4f}")
        0.4500
    """

    function = mean_absolute_error

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "mean_absolute_error",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MeanAbsolutePercentageError(Loss):
    """``100 * mean(|y_true - y_pred| / max(|y_true|, 1e-7))``.

    See :func:`mean_absolute_percentage_error`. Args: ``reduction``, ``name``, ``dtype`` as
    for :class:`~losses_jax.Loss`.

    Examples:
        >>> y_true, y_pred = jnp.array([[100.0], [200.0]]), jnp.array([[90.0], [210.0]])
        >>> print(f"{float(MeanAbsolutePercentageError()(y_true, y_pred)):.4f}")
        7.5000
    """

    function = mean_absolute_percentage_error

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "mean_absolute_percentage_error",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MeanSquaredLogarithmicError(Loss):
    """``mean((log1p(y_pred) - log1p(y_true)) ** 2)``, inputs clipped below at 1e-7.

    See :func:`mean_squared_logarithmic_error`. Args: ``reduction``, ``name``, ``dtype`` as
    for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = MeanSquaredLogarithmicError(dtype="bfloat16")
        >>> value = loss(jnp.array([[0.0, 1.0]]), jnp.array([[1.0, -2.0]]))
        >>> value.dtype, round(float(value), 2)
        (dtype(bfloat16), 0.48)
    """

    function = mean_squared_logarithmic_error

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "mean_squared_logarithmic_error",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class CosineSimilarity(Loss):
    """Negative cosine similarity along ``axis``; see :func:`cosine_similarity`.

    Args:
        axis: the feature axis (default ``-1``).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [1.0, 1.0]])
        >>> y_pred = jnp.array([[1.0, 0.0], [1.0, 1.0]])
        >>> print(f"{float(CosineSimilarity(axis=1)(y_true, y_pred)):.4f}")
        -0.5000
    """

    function = cosine_similarity

    def __init__(
        self,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "cosine_similarity",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = check_axis(axis, "cosine_similarity", allow_tuple=False)


class Huber(Loss):
    """Huber loss, quadratic below ``delta`` and linear above; see :func:`huber`.

    Args:
        delta: the positive error at which the loss turns linear (default 1.0).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[0.6, 0.4], [0.4, 0.6]])
        >>> print(f"{float(Huber()(y_true, y_pred)):.4f}")
        0.1550
        >>> Huber(delta=2.0).delta
        2.0
    """

    function = huber

    def __init__(
        self,
        delta: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "huber_loss",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.delta = _check_delta(delta)


class LogCosh(Loss):
    """Log of the hyperbolic cosine of the error, ``mean(log(cosh(y_pred - y_true)))``.

    See :func:`log_cosh`. Args: ``reduction``, ``name``, ``dtype`` as for
    :class:`~losses_jax.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0], [0.0, 0.0]])
        >>> y_pred = jnp.array([[1.0, 1.0], [0.0, 0.0]])
        >>> print(f"{float(LogCosh()(y_true, y_pred)):.4f}")
        0.1084
    """

    function = log_cosh

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "log_cosh",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
