"""Other probabilistic losses: Poisson and Gaussian negative log-likelihoods, generalized
cross-entropy. (The Kullback-Leibler divergences are in :mod:`losses_jax.losses.divergences`.)

Names, defaults and numbers follow Keras 3 where Keras has the loss; the options added to
Keras's losses (``poisson``'s ``log_input``/``full``/``eps``) follow PyTorch and optax, and
leave Keras's values unchanged when they are off. Logs and sums run in float32 for float16/bfloat16 inputs; results come back
in ``y_pred``'s dtype.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    EPSILON,
    mean_last_axis,
    power,
    prepare_pair,
    upcast,
    weighted_log,
)
from losses_jax._softmax_xent import take_class
from losses_jax._targets import dense_inputs, sparse_labels, valid_labels
from losses_jax._validation import as_float_array, check_bool, check_number, normalize_axis
from losses_jax.base import Loss
from losses_jax.checks import guard_labels_in_range, guard_nonnegative, guard_unit_interval

__all__ = [
    "CategoricalGeneralizedCrossEntropy",
    "GaussianNLL",
    "Poisson",
    "categorical_generalized_cross_entropy",
    "gaussian_nll",
    "poisson",
]

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _check_q(q: Any) -> Any:
    return check_number(q, "q", low=0.0, high=1.0, low_inclusive=False)


def _check_eps(eps: Any, positive: bool) -> Any:
    return check_number(eps, "eps", low=0.0, low_inclusive=not positive)


def _stirling(counts: jax.Array) -> jax.Array:
    """``log(k!)`` by Stirling, ``k log k - k + log(2 pi k) / 2``, for ``k > 1``; 0 otherwise."""
    k = jnp.where(counts > 1, counts, 1.0)
    return jnp.where(counts > 1, k * jnp.log(k) - k + 0.5 * jnp.log(2.0 * math.pi * k), 0.0)


@jax.custom_jvp
def _variance_floor(variance: jax.Array, eps: Any) -> jax.Array:
    """``max(variance, eps)`` whose derivative in ``variance`` is 1 everywhere (PyTorch clamps
    under ``no_grad``, so the gradient passes straight through the clamp); in ``eps`` it is the
    true one, 1 where the floor is active."""
    return jnp.maximum(variance, eps)


@_variance_floor.defjvp
def _variance_floor_jvp(primals, tangents):
    (variance, eps), (variance_dot, eps_dot) = primals, tangents
    return _variance_floor(variance, eps), variance_dot + jnp.where(variance < eps, eps_dot, 0.0)


def poisson(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    log_input: bool = False,
    full: bool = False,
    eps: float = EPSILON,
) -> jax.Array:
    """Poisson negative log-likelihood, mean over the last axis.

    ``loss = mean(y_pred - y_true * log(y_pred + eps), axis=-1)`` (Keras's, with ``eps=1e-7``),
    or with ``log_input=True`` (``y_pred`` the log-rate) ``mean(exp(y_pred) - y_true * y_pred)``.
    ``full=True`` adds Stirling's approximation of the ``log(y_true!)`` constant,
    ``y_true * log(y_true) - y_true + log(2 pi y_true) / 2`` where ``y_true > 1`` (0 elsewhere).
    PyTorch's ``poisson_nll_loss(y_pred, y_true, log_input, full, eps, reduction="none")`` is
    this loss before the mean (PyTorch's defaults are ``log_input=True``, ``eps=1e-8``; its
    ``"mean"`` is ``"sum_over_batch_size"`` here).

    Args:
        y_true: observed counts, shape ``(batch, ..., d)``.
        y_pred: predicted rates (``>= 0``), or log-rates with ``log_input``, same shape.
        log_input: whether ``y_pred`` holds log-rates.
        full: whether to add the Stirling term.
        eps: ``>= 0``, added to the rate inside the log (unused with ``log_input``); may be a
            traced array.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    References:
        McCullagh & Nelder (1989), *Generalized Linear Models*, 2nd ed., Chapman & Hall (the
        Poisson log-likelihood of log-linear models). Keras 3, ``keras.losses.poisson``;
        PyTorch, ``torch.nn.functional.poisson_nll_loss``.

    Examples:
        >>> print(f"{float(poisson([[0.0, 1.0]], [[1.0, 1.0]])[0]):.4f}")
        1.0000
        >>> print(f"{float(poisson([[0.0, 1.0]], [[0.0, 0.0]], log_input=True)[0]):.4f}")
        1.0000
        >>> loss = poisson([[3.0]], [[1.0]], log_input=True, full=True)
        >>> print(f"{float(loss[0]):.4f}")  # e - 3 + (3 log 3 - 3 + log(6 pi) / 2)
        1.4824
    """
    check_bool(log_input, "log_input")
    check_bool(full, "full")
    _check_eps(eps, positive=False)
    targets, y_pred = dense_inputs(y_true, y_pred, "poisson")
    normalize_axis(-1, y_pred.ndim)
    x = upcast(y_pred)
    if log_input:
        losses = jnp.exp(x) - weighted_log(targets, x)
    else:
        losses = x - weighted_log(targets, jnp.log(x + eps))
    if full:
        losses = losses + _stirling(targets)
    return jnp.mean(losses, axis=-1).astype(y_pred.dtype)


def _variance_like(variance: ArrayLike, y_pred: jax.Array) -> jax.Array:
    """``variance`` broadcast to ``y_pred``: of its shape, of its shape without the last axis
    (one variance per sample, PyTorch's homoscedastic case), or broadcastable to it."""
    variance = upcast(as_float_array(variance, "variance"))
    if variance.shape != y_pred.shape and variance.shape == y_pred.shape[:-1]:
        variance = variance[..., None]
    try:
        shape = jnp.broadcast_shapes(variance.shape, y_pred.shape)
    except ValueError:
        shape = None
    if shape != y_pred.shape:
        raise ValueError(
            f"gaussian_nll: `variance` of shape {tuple(variance.shape)} does not fit `y_pred` of "
            f"shape {tuple(y_pred.shape)}: give one variance per prediction (the same shape), "
            f"one per sample (shape {tuple(y_pred.shape[:-1])}), or a shape that broadcasts."
        )
    return variance


def gaussian_nll(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    variance: ArrayLike | None = None,
    full: bool = False,
    eps: float = 1e-6,
) -> jax.Array:
    """Gaussian negative log-likelihood of ``y_true`` under ``N(y_pred, variance)``, mean over
    the last axis.

    ``loss = mean((log(v) + (y_true - y_pred) ** 2 / v) / 2, axis=-1)`` with
    ``v = max(variance, eps)``, plus ``log(2 pi) / 2`` with ``full=True``. As in PyTorch, the
    clamp passes the gradient straight through to ``variance`` (a variance below ``eps`` still
    trains) and ``variance < 0`` is invalid (checked under :func:`losses_jax.checked`).
    PyTorch's ``gaussian_nll_loss(y_pred, y_true, variance, full, eps, reduction="none")`` is
    this loss before the mean; its ``"mean"`` is ``"sum_over_batch_size"`` here.

    Args:
        y_true: observations, shape ``(batch, ..., d)``.
        y_pred: predicted means, same shape.
        variance: predicted variances, a keyword argument (also of the class call,
            ``GaussianNLL()(y_true, y_pred, variance=v)``): ``y_pred``'s shape, ``y_pred``'s
            shape without the last axis (one per sample), or any shape that broadcasts to it
            (a scalar included); ``>= 0``.
        full: whether to add the constant ``log(2 pi) / 2``.
        eps: ``> 0``, the floor of the variance; may be a traced array.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    References:
        Nix & Weigend (1994), "Estimating the Mean and Variance of the Target Probability
        Distribution", IEEE ICNN. PyTorch, ``torch.nn.functional.gaussian_nll_loss``.

    Examples:
        >>> loss = gaussian_nll([[1.0, 2.0]], [[1.0, 0.0]], variance=[[1.0, 2.0]])
        >>> print(f"{float(loss[0]):.4f}")  # mean(0, (log 2 + 4 / 2) / 2)
        0.6733
    """
    check_bool(full, "full")
    _check_eps(eps, positive=True)
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "gaussian_nll", min_rank=1)
    if variance is None:
        raise TypeError(
            "gaussian_nll needs the predicted variance: pass `variance=` (an array of "
            f"y_pred's shape {tuple(y_pred.shape)}, one per sample, or a scalar)."
        )
    v = _variance_floor(guard_nonnegative(_variance_like(variance, y_pred), "variance"), eps)
    losses = 0.5 * (jnp.log(v) + jnp.square(y_true - y_pred) / v)
    if full:
        losses = losses + _HALF_LOG_2PI
    return mean_last_axis(losses).astype(out_dtype)


def categorical_generalized_cross_entropy(
    y_true: ArrayLike, y_pred: ArrayLike, q: float = 0.5
) -> jax.Array:
    """Generalized cross-entropy (Zhang & Sabuncu, 2018), robust to noisy labels.

    ``loss = (1 - p[y_true] ** q) / q`` with ``p`` the predicted probabilities (not clipped, as
    Keras). ``q -> 0`` approaches cross-entropy, ``q = 1`` gives ``1 - p[y_true]``. At
    ``p[y_true] = 0`` the gradient (infinite for ``q < 1``) is taken at ``1e-7``.

    Args:
        y_true: integer labels, shape ``(batch,)`` or ``(batch, 1)``.
        y_pred: probabilities, shape ``(batch, num_classes)``.
        q: float in ``(0, 1]``.

    Returns:
        Per-sample losses, shape ``(batch,)``, in ``y_pred``'s dtype.

    References:
        Zhang & Sabuncu (2018), "Generalized Cross Entropy Loss for Training Deep Neural
        Networks with Noisy Labels", NeurIPS. Keras 3,
        ``keras.losses.categorical_generalized_cross_entropy``.

    Examples:
        >>> y_pred = [[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]]
        >>> loss = categorical_generalized_cross_entropy([0, 1, 0, 1], y_pred)
        >>> [round(float(v), 4) for v in loss]
        [0.3267, 0.2111, 0.4508, 0.4508]
    """
    _check_q(q)
    y_pred = as_float_array(y_pred, "y_pred")
    axis = normalize_axis(-1, max(y_pred.ndim, 1))
    labels = sparse_labels(y_true, y_pred, axis, "categorical_generalized_cross_entropy")
    labels = guard_labels_in_range(labels, y_pred.shape[-1], "y_true")
    p = upcast(guard_unit_interval(y_pred, "y_pred"))
    p_label = jnp.where(valid_labels(labels, p.shape[-1]), take_class(p, labels), 0.0)
    return ((1.0 - power(p_label, q)) / q).astype(y_pred.dtype)


class Poisson(Loss):
    """Poisson loss ``mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)``; see :func:`poisson`.

    Args:
        log_input: whether ``y_pred`` holds log-rates (PyTorch's default; here False, Keras's).
        full: whether to add Stirling's approximation of ``log(y_true!)``.
        eps: ``>= 0`` added to the rate inside the log (default 1e-7, Keras's; PyTorch's 1e-8).
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"poisson"``.
        dtype: compute and result dtype.

    Examples:
        >>> print(f"{float(Poisson()([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]])):.4f}")
        0.5000
    """

    function = poisson

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "poisson",
        dtype: DTypeLike | None = None,
        log_input: bool = False,
        full: bool = False,
        eps: float = EPSILON,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.log_input = check_bool(log_input, "log_input")
        self.full = check_bool(full, "full")
        self.eps = _check_eps(eps, positive=False)


class GaussianNLL(Loss):
    """Gaussian negative log-likelihood with predicted means and variances; see
    :func:`gaussian_nll`. The variances are a keyword argument of the call.

    Args:
        full: whether to add the constant ``log(2 pi) / 2``.
        eps: ``> 0``, the floor of the variance (default 1e-6, PyTorch's).
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"gaussian_nll"``.
        dtype: compute and result dtype.

    Examples:
        >>> loss = GaussianNLL(reduction="sum")
        >>> value = loss([[1.0, 2.0]], [[1.0, 0.0]], variance=[[1.0, 2.0]])
        >>> print(f"{float(value):.4f}")
        0.6733
    """

    function = gaussian_nll

    def __init__(
        self,
        full: bool = False,
        eps: float = 1e-6,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "gaussian_nll",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.full = check_bool(full, "full")
        self.eps = _check_eps(eps, positive=True)


class CategoricalGeneralizedCrossEntropy(Loss):
    """Generalized cross-entropy ``(1 - p[y_true] ** q) / q``; see
    :func:`categorical_generalized_cross_entropy`.

    Args:
        q: float in ``(0, 1]`` (default 0.5); near 0 behaves like cross-entropy, 1 like MAE.
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"categorical_generalized_cross_entropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_pred = [[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]]
        >>> print(f"{float(CategoricalGeneralizedCrossEntropy()([0, 1, 0, 1], y_pred)):.4f}")
        0.3599
    """

    function = categorical_generalized_cross_entropy
    labels_are_ids = True

    def __init__(
        self,
        q: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "categorical_generalized_cross_entropy",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.q = _check_q(q)
