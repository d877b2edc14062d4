"""Robust regression losses built on the absolute error: smooth L1 and pinball (quantile).

Each is a per-sample function (the last axis averaged away, as the Keras regression losses)
and a class that reduces it. Their real options (``beta``, ``tau``) may be traced arrays under
:func:`jax.jit`/:func:`jax.grad`: no Python branch looks at their values, and they are checked
only when concrete. Inputs are upcast to float32 for float16/bfloat16 and the result has
``y_pred``'s dtype (see :mod:`losses_jax.losses.regression` for the shared numerics).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import mean_of_elementwise
from losses_jax._validation import check_number, is_traced
from losses_jax.base import Loss

__all__ = ["Pinball", "SmoothL1", "pinball", "pinball_loss", "smooth_l1", "smooth_l1_loss"]


def _check_beta(beta: Any) -> Any:
    return check_number(beta, "beta", low=0.0)


def _smooth_l1_error(y_true, y_pred, beta):
    error = y_pred - y_true
    # |e| as e * sign(e): derivative sign(e), 0 at e = 0 as PyTorch's (jnp.abs gives 1 there).
    abs_error = error * jnp.sign(error)
    quadratic = abs_error < beta
    # beta = 0 has no quadratic zone (L1): the unselected branch divides by 1, not by 0, and
    # only selected errors are squared, so a huge error makes no inf either.
    safe_beta = jnp.where(beta > 0, beta, 1.0)
    small_error = jnp.where(quadratic, error, 0.0)
    return jnp.where(quadratic, 0.5 * jnp.square(small_error) / safe_beta, abs_error - 0.5 * beta)


def smooth_l1(y_true: ArrayLike, y_pred: ArrayLike, beta: float = 1.0) -> jax.Array:
    """Smooth L1 loss per sample, quadratic below ``beta`` and absolute error above.

    With ``e = y_pred - y_true``::

        smooth_l1(e) = 0.5 * e**2 / beta      if |e| < beta
                       |e| - 0.5 * beta       otherwise

    averaged over the last axis. ``beta = 0`` is the absolute error (L1); ``smooth_l1`` with
    ``beta`` equals ``huber`` with ``delta = beta`` divided by ``beta``. The gradient is
    ``e / beta`` inside and ``sign(e)`` outside (0 at ``e = 0``, as in PyTorch).

    Args:
        y_true: targets, shape ``(batch, d0, ..., dN)``.
        y_pred: predictions, same shape.
        beta: the non-negative error where the loss turns linear (default 1.0); may be traced.

    Returns:
        Losses of shape ``(batch, d0, ..., dN-1)`` in ``y_pred``'s floating dtype.

    Raises:
        ValueError: if a concrete ``beta`` is negative.

    References:
        Girshick (2015), "Fast R-CNN", ICCV (the smooth L1 loss, ``beta = 1``). PyTorch,
        ``torch.nn.functional.smooth_l1_loss(input, target, beta=beta)``.

    Examples:
        >>> y_true, y_pred = jnp.array([[0.0, 0.0]]), jnp.array([[0.5, 3.0]])
        >>> [round(float(v), 4) for v in smooth_l1(y_true, y_pred)]
        [1.3125]
        >>> [round(float(v), 4) for v in smooth_l1(y_true, y_pred, beta=0.0)]
        [1.75]
    """
    _check_beta(beta)
    return mean_of_elementwise(partial(_smooth_l1_error, beta=beta), y_true, y_pred, "smooth_l1")


def _check_tau(tau: Any) -> Any:
    """A quantile in [0, 1], or one per output (returned as a tuple: the loss stays hashable)."""
    if is_traced(tau) or jnp.ndim(tau) == 0:
        return check_number(tau, "tau", low=0.0, high=1.0)
    if jnp.ndim(tau) != 1:
        raise ValueError(
            f"`tau` must be a scalar or a 1-D sequence of one quantile per output; received "
            f"an array of shape {jnp.shape(tau)}."
        )
    return tuple(float(check_number(q, "tau", low=0.0, high=1.0)) for q in tau)


def _pinball_error(y_true, y_pred, tau):
    error = y_true - y_pred
    # At e = 0 the gradient is that of tau * e, as TensorFlow's maximum gives it.
    return jnp.where(error >= 0, tau * error, (tau - 1.0) * error)


def pinball(y_true: ArrayLike, y_pred: ArrayLike, tau: Any = 0.5) -> jax.Array:
    """Pinball (quantile) loss per sample: ``mean(max(tau * e, (tau - 1) * e), axis=-1)``.

    With ``e = y_true - y_pred``: under-predictions cost ``tau`` per unit, over-predictions
    ``1 - tau``, so the minimiser over constant predictions is the ``tau``-quantile of
    ``y_true``; ``tau = 0.5`` is half the absolute error. ``tau`` may be one quantile per
    output (a sequence or array broadcast over the last axis), to fit several quantiles at once.

    Args:
        y_true: targets, shape ``(batch, d0, ..., dN)``.
        y_pred: predictions, same shape.
        tau: a quantile in ``[0, 1]`` (default 0.5), or ``dN`` of them (one per output); may
            be a traced array.

    Returns:
        Losses of shape ``(batch, d0, ..., dN-1)`` in ``y_pred``'s floating dtype.

    Raises:
        ValueError: if a concrete ``tau`` is outside ``[0, 1]``, or holds neither 1 nor ``dN``
            quantiles.

    References:
        Koenker & Bassett (1978), "Regression Quantiles", *Econometrica* 46(1). TensorFlow
        Addons, ``tfa.losses.pinball_loss(y_true, y_pred, tau)``.

    Examples:
        >>> y_true, y_pred = jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 3.0]])
        >>> [round(float(v), 4) for v in pinball(y_true, y_pred, tau=0.9)]
        [0.5]
        >>> [round(float(v), 4) for v in pinball(y_true, y_pred, tau=[0.1, 0.9])]
        [0.1]
    """
    tau = _check_tau(tau)
    tau_shape, pred_shape = np.shape(tau), np.shape(y_pred)
    if tau_shape:  # one quantile per output (a traced array skips _check_tau's rank check)
        outputs = pred_shape[-1] if pred_shape else 1
        if len(tau_shape) != 1 or tau_shape[0] not in (1, outputs):
            raise ValueError(
                f"pinball: `tau` holds {tau_shape} quantiles, but `y_pred` of shape "
                f"{tuple(pred_shape)} has {outputs} outputs: give one quantile, or one per "
                f"output."
            )

    def per_element(t, p):
        return _pinball_error(t, p, jnp.asarray(tau, t.dtype) if isinstance(tau, tuple) else tau)

    return mean_of_elementwise(per_element, y_true, y_pred, "pinball")


# PyTorch's and TensorFlow Addons' names.
smooth_l1_loss = smooth_l1
pinball_loss = pinball


class SmoothL1(Loss):
    """Smooth L1 loss, quadratic below ``beta`` and absolute error above; see :func:`smooth_l1`.

    Args:
        beta: the non-negative error where the loss turns linear (default 1.0; 0 gives L1).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 0.0], [1.0, 1.0]])
        >>> y_pred = jnp.array([[0.5, 3.0], [1.0, 1.0]])
        >>> print(f"{float(SmoothL1()(y_true, y_pred)):.4f}")
        0.6562
        >>> SmoothL1(beta=0.5).beta
        0.5
    """

    function = smooth_l1

    def __init__(
        self,
        beta: float = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "smooth_l1",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta = _check_beta(beta)


class Pinball(Loss):
    """Pinball (quantile) loss; see :func:`pinball`.

    Args:
        tau: a quantile in ``[0, 1]`` (default 0.5), or a sequence of one quantile per output
            (stored as a tuple).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = Pinball(tau=0.9)
        >>> print(f"{float(loss(jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 3.0]]))):.4f}")
        0.5000
        >>> Pinball(tau=[0.1, 0.9]).tau
        (0.1, 0.9)
    """

    function = pinball

    def __init__(
        self,
        tau: Any = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "pinball",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.tau = _check_tau(tau)
