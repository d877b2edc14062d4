"""Other probabilistic losses: Poisson, Kullback-Leibler divergence, generalized cross-entropy.

Names, defaults and numbers follow Keras 3. Logs and sums run in float32 for float16/bfloat16
inputs; results come back in ``y_pred``'s dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import EPSILON, power, straight_through_clip, upcast, weighted_log
from losses_jax._softmax_xent import take_class
from losses_jax._targets import dense_inputs, sparse_labels, valid_labels
from losses_jax._validation import as_float_array, check_number, normalize_axis
from losses_jax.base import Loss
from losses_jax.checks import guard_labels_in_range, guard_unit_interval

__all__ = [
    "KLD",
    "CategoricalGeneralizedCrossEntropy",
    "KLDivergence",
    "Poisson",
    "categorical_generalized_cross_entropy",
    "kl_divergence",
    "kld",
    "kullback_leibler_divergence",
    "poisson",
]


def _check_q(q: Any) -> Any:
    return check_number(q, "q", low=0.0, high=1.0, low_inclusive=False)


def poisson(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Poisson negative log-likelihood (without the ``log(y_true!)`` constant), mean over the
    last axis.

    ``loss = mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)``, as Keras.

    Args:
        y_true: observed counts, shape ``(batch, ..., d)``.
        y_pred: predicted rates (``>= 0``), shape ``(batch, ..., d)``.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    References:
        McCullagh & Nelder (1989), *Generalized Linear Models*, 2nd ed., Chapman & Hall (the
        Poisson log-likelihood of log-linear models). Keras 3, ``keras.losses.poisson``.

    Examples:
        >>> print(f"{float(poisson([[0.0, 1.0]], [[1.0, 1.0]])[0]):.4f}")
        1.0000
    """
    targets, y_pred = dense_inputs(y_true, y_pred, "poisson")
    normalize_axis(-1, y_pred.ndim)
    rate = upcast(y_pred)
    losses = rate - weighted_log(targets, jnp.log(rate + EPSILON))
    return jnp.mean(losses, axis=-1).astype(y_pred.dtype)


def kl_divergence(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Kullback-Leibler divergence ``KL(y_true || y_pred)`` over the last axis.

    ``loss = sum(t * log(t / p), axis=-1)`` with ``t`` and ``p`` clipped to ``[1e-7, 1]`` as in
    Keras (straight-through gradient). Also exported as ``kld`` and
    ``kullback_leibler_divergence``.

    Args:
        y_true: target distributions, shape ``(batch, ..., d)``.
        y_pred: predicted distributions, shape ``(batch, ..., d)``.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    References:
        Kullback & Leibler (1951), "On Information and Sufficiency", *Annals of Mathematical
        Statistics* 22(1). Keras 3, ``keras.losses.kl_divergence``.

    Examples:
        >>> print(f"{float(kl_divergence([[0.5, 0.5]], [[0.25, 0.75]])[0]):.4f}")
        0.1438
    """
    targets, y_pred = dense_inputs(y_true, y_pred, "kl_divergence")
    normalize_axis(-1, y_pred.ndim)
    t = straight_through_clip(targets, EPSILON, 1.0)
    p = straight_through_clip(upcast(y_pred), EPSILON, 1.0)
    return jnp.sum(t * (jnp.log(t) - jnp.log(p)), axis=-1).astype(y_pred.dtype)


kullback_leibler_divergence = kld = KLD = kl_divergence


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
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class KLDivergence(Loss):
    """Kullback-Leibler divergence ``sum(t * log(t / p), axis=-1)``; see :func:`kl_divergence`.

    Args:
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"kl_divergence"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true, y_pred = [[0.0, 1.0], [0.0, 0.0]], [[0.6, 0.4], [0.4, 0.6]]
        >>> print(f"{float(KLDivergence()(y_true, y_pred)):.3f}")
        0.458
    """

    function = kl_divergence

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "kl_divergence",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


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
