"""Kullback-Leibler divergences: between distributions (Keras, PyTorch, optax) and between
unnormalized measures (optax's generalized KL).

``t log t`` is taken with ``0 log 0 = 0`` in value and gradient, as optax and PyTorch do. Keras's
:func:`kl_divergence` clips both arguments to ``[1e-7, 1]`` (straight-through gradient); the
``from_logits``/``log_targets`` options (PyTorch's ``log_target``, optax's log-probability
inputs) leave those numbers unchanged when off. Logs and sums run in float32 for
float16/bfloat16 inputs; results come back in ``y_pred``'s dtype.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    EPSILON,
    log_softmax,
    straight_through_clip,
    upcast,
    weighted_log,
    weighted_sum_of_logs,
)
from losses_jax._targets import dense_inputs
from losses_jax._validation import check_bool, normalize_axis
from losses_jax.base import Loss

__all__ = [
    "KLD",
    "GeneralizedKLDivergence",
    "KLDivergence",
    "generalized_kl_divergence",
    "kl_divergence",
    "kld",
    "kullback_leibler_divergence",
]


def _entropy_terms(t: jax.Array) -> jax.Array:
    """``t * log t`` with ``0 log 0 = 0`` (value and gradient), as optax and PyTorch."""
    return weighted_log(t, jnp.log(jnp.where(t > 0, t, 1.0)))


def kl_divergence(
    y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False, log_targets: bool = False
) -> jax.Array:
    """Kullback-Leibler divergence ``KL(y_true || y_pred)`` over the last axis.

    ``loss = sum(t * (log t - log p), axis=-1)``. By default (Keras's form) ``t = y_true`` and
    ``p = y_pred`` are both clipped to ``[1e-7, 1]`` (straight-through gradient). With
    ``from_logits=True``, ``y_pred`` holds logits and ``log p = log_softmax(y_pred)``
    (max-shifted); with ``log_targets=True``, ``y_true`` holds log-probabilities and
    ``t = exp(y_true)``. With either option the targets enter exactly, with ``0 log 0 = 0``
    (as optax and PyTorch); probabilities in ``y_pred`` are still clipped. Also exported as
    ``kld`` and ``kullback_leibler_divergence``.

    optax's ``kl_divergence(log_predictions, targets)`` and PyTorch's
    ``kl_div(input, target, log_target=..., reduction="none").sum(-1)`` take log-probabilities:
    pass them as ``y_pred`` with ``from_logits=True`` (``log_softmax`` leaves normalized
    log-probabilities unchanged; unnormalized ones differ from optax/PyTorch by
    ``sum(t) * logsumexp(y_pred)``). optax's ``kl_divergence_with_log_targets`` and PyTorch's
    ``log_target=True`` are ``log_targets=True``. PyTorch's ``"batchmean"`` is
    ``"sum_over_batch_size"`` here.

    Args:
        y_true: target distributions (or their logs, with ``log_targets``), ``(batch, ..., d)``.
        y_pred: predicted distributions (or logits, with ``from_logits``), ``(batch, ..., d)``.
        from_logits: whether ``y_pred`` holds logits.
        log_targets: whether ``y_true`` holds log-probabilities.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    References:
        Kullback & Leibler (1951), "On Information and Sufficiency", *Annals of Mathematical
        Statistics* 22(1). Keras 3, ``keras.losses.kl_divergence``; optax,
        ``optax.kl_divergence(_with_log_targets)``; PyTorch, ``torch.nn.functional.kl_div``.

    Examples:
        >>> print(f"{float(kl_divergence([[0.5, 0.5]], [[0.25, 0.75]])[0]):.4f}")
        0.1438
        >>> logits = jnp.log(jnp.array([[0.25, 0.75]]))
        >>> print(f"{float(kl_divergence([[0.5, 0.5]], logits, from_logits=True)[0]):.4f}")
        0.1438
        >>> print(f"{float(kl_divergence([[1.0, 0.0]], [[0.5, 0.5]], from_logits=True)[0]):.4f}")
        0.6931
    """
    check_bool(from_logits, "from_logits")
    check_bool(log_targets, "log_targets")
    targets, y_pred = dense_inputs(y_true, y_pred, "kl_divergence")
    normalize_axis(-1, y_pred.ndim)
    x = upcast(y_pred)
    if not (from_logits or log_targets):
        t = straight_through_clip(targets, EPSILON, 1.0)
        p = straight_through_clip(x, EPSILON, 1.0)
        return jnp.sum(t * (jnp.log(t) - jnp.log(p)), axis=-1).astype(y_pred.dtype)
    log_p = log_softmax(x) if from_logits else jnp.log(straight_through_clip(x, EPSILON, 1.0))
    if log_targets:
        # exp(-inf) = 0: such a class contributes exactly 0, whatever log_p is there.
        losses = weighted_sum_of_logs(jnp.exp(targets), targets - log_p)
    else:
        losses = jnp.sum(_entropy_terms(targets), axis=-1) - weighted_sum_of_logs(targets, log_p)
    return losses.astype(y_pred.dtype)


kullback_leibler_divergence = kld = KLD = kl_divergence


def generalized_kl_divergence(
    y_true: ArrayLike, y_pred: ArrayLike, log_predictions: bool = False
) -> jax.Array:
    """Generalized Kullback-Leibler divergence between unnormalized measures, last axis.

    ``loss = sum(t * log(t / q) - t + q, axis=-1)`` with ``t = y_true`` (``0 log 0 = 0``) and
    ``q = y_pred``: the Bregman divergence of ``x log x - x``, 0 iff ``t == q``, equal to
    :func:`kl_divergence` when both sum to 1. ``q`` is floored at ``1e-7`` (straight-through
    gradient, the clip of Keras's KL); with ``log_predictions=True``, ``y_pred = log q`` enters
    exactly: optax's ``generalized_kl_divergence(log_predictions, targets)``.

    Args:
        y_true: target measures (``>= 0``), shape ``(batch, ..., d)``.
        y_pred: predicted measures (``>= 0``), or their logs with ``log_predictions``, same
            shape.
        log_predictions: whether ``y_pred`` holds ``log q``.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    References:
        Bregman (1967), "The relaxation method of finding the common point of convex sets and
        its application to the solution of problems in convex programming", *USSR
        Computational Mathematics and Mathematical Physics* 7(3); Lee & Seung (2000),
        "Algorithms for Non-negative Matrix Factorization", NeurIPS (as a loss). optax,
        ``optax.generalized_kl_divergence``.

    Examples:
        >>> print(f"{float(generalized_kl_divergence([[2.0, 0.0]], [[1.0, 1.0]])[0]):.4f}")
        1.3863
    """
    check_bool(log_predictions, "log_predictions")
    targets, y_pred = dense_inputs(y_true, y_pred, "generalized_kl_divergence")
    normalize_axis(-1, y_pred.ndim)
    x = upcast(y_pred)
    if log_predictions:
        log_q, q = x, jnp.exp(x)
    else:
        q = straight_through_clip(x, EPSILON, math.inf)
        log_q = jnp.log(q)
    losses = _entropy_terms(targets) - weighted_log(targets, log_q) - targets + q
    return jnp.sum(losses, axis=-1).astype(y_pred.dtype)


class KLDivergence(Loss):
    """Kullback-Leibler divergence ``sum(t * log(t / p), axis=-1)``; see :func:`kl_divergence`.

    Args:
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"kl_divergence"``.
        dtype: compute and result dtype.
        from_logits: whether ``y_pred`` holds logits (log-softmaxed).
        log_targets: whether ``y_true`` holds log-probabilities.

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
        from_logits: bool = False,
        log_targets: bool = False,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.log_targets = check_bool(log_targets, "log_targets")


class GeneralizedKLDivergence(Loss):
    """Generalized KL divergence ``sum(t log(t / q) - t + q, axis=-1)`` of unnormalized
    measures; see :func:`generalized_kl_divergence`.

    Args:
        log_predictions: whether ``y_pred`` holds ``log q`` (optax's argument).
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"generalized_kl_divergence"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true, y_pred = [[2.0, 0.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 1.0]]
        >>> print(f"{float(GeneralizedKLDivergence()(y_true, y_pred)):.4f}")
        0.6931
    """

    function = generalized_kl_divergence

    def __init__(
        self,
        log_predictions: bool = False,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "generalized_kl_divergence",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.log_predictions = check_bool(log_predictions, "log_predictions")
