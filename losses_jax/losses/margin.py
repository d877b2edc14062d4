"""Hinge losses: hinge, squared hinge and categorical hinge (Keras 3 semantics and numbers).

Binary labels are accepted for :func:`hinge` and :func:`squared_hinge`: when every entry of
``y_true`` is 0 or 1 the labels are mapped to -1/1 (``2 * y_true - 1``), exactly as Keras
does; any other label set (-1/1 included) is used as given. The test looks at the whole
``y_true`` array passed in (the whole batch, or one sample under :func:`jax.vmap`).

Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import mean_of_elementwise, prepare_pair
from losses_jax.base import Loss

__all__ = [
    "CategoricalHinge",
    "Hinge",
    "SquaredHinge",
    "categorical_hinge",
    "hinge",
    "squared_hinge",
]


def _signed_labels(y_true: jax.Array) -> jax.Array:
    """``2 * y_true - 1`` when every label is 0 or 1, else ``y_true`` unchanged (as Keras)."""
    is_binary = jnp.all((y_true == 0) | (y_true == 1))
    return jnp.where(is_binary, 2.0 * y_true - 1.0, y_true)


def _margin_violation(y_true, y_pred):
    """``max(1 - y * y_pred, 0)`` with binary labels mapped to -1/1."""
    return jnp.maximum(1.0 - _signed_labels(y_true) * y_pred, 0.0)


def _squared_margin_violation(y_true, y_pred):
    return jnp.square(_margin_violation(y_true, y_pred))


def hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Hinge loss per sample: ``mean(max(1 - y_true * y_pred, 0), axis=-1)``.

    ``y_true`` holds labels in {-1, 1} (or {0, 1}, mapped to {-1, 1}), ``y_pred`` scores.
    Shapes: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    References:
        Cortes & Vapnik (1995), "Support-Vector Networks", *Machine Learning* 20. Keras 3,
        ``keras.losses.hinge`` (including the {0, 1} -> {-1, 1} mapping).

    Examples:
        >>> loss = hinge(jnp.array([[0, 1], [1, 1]]), jnp.array([[0.6, 0.4], [-0.4, 0.6]]))
        >>> [round(float(v), 4) for v in loss]
        [1.1, 0.9]
    """
    return mean_of_elementwise(_margin_violation, y_true, y_pred, "hinge")


def squared_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Squared hinge loss per sample: ``mean(max(1 - y_true * y_pred, 0) ** 2, axis=-1)``.

    Labels and shapes as for :func:`hinge`: ``(batch, d0, ..., dN)`` ->
    ``(batch, d0, ..., dN-1)``.

    References:
        Keras 3, ``keras.losses.squared_hinge``: the square of the hinge of Cortes & Vapnik
        (1995), "Support-Vector Networks", *Machine Learning* 20.

    Examples:
        >>> loss = squared_hinge(jnp.array([[0, 1], [1, 1]]), jnp.array([[0.6, 0.4], [-0.4, 0.6]]))
        >>> [round(float(v), 4) for v in loss]
        [1.46, 1.06]
    """
    return mean_of_elementwise(_squared_margin_violation, y_true, y_pred, "squared_hinge")


def categorical_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Categorical hinge loss per sample: ``max(neg - pos + 1, 0)``.

    ``pos = sum(y_true * y_pred, axis=-1)`` is the score of the true class and
    ``neg = max((1 - y_true) * y_pred, axis=-1)`` the best score among the others.

    Args:
        y_true: one-hot targets, shape ``(batch, d0, ..., num_classes)``.
        y_pred: class scores, same shape.

    Returns:
        Losses of shape ``(batch, d0, ..., dN-1)`` in ``y_pred``'s floating dtype.

    References:
        Crammer & Singer (2001), "On the Algorithmic Implementation of Multiclass Kernel-based
        Vector Machines", *JMLR* 2. This is Keras's form (``keras.losses.categorical_hinge``):
        the true class enters ``neg`` as 0, so ``neg = max(0, max_{j != y} y_pred[j])`` and the
        loss differs from Crammer & Singer's ``max(0, 1 + max_{j != y} y_pred[j] - pos)`` when
        every other score is negative.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        >>> y_pred = jnp.array([[0.2, 0.5, 0.9], [2.0, 0.1, 0.3]])
        >>> [round(float(v), 4) for v in categorical_hinge(y_true, y_pred)]
        [1.4, 0.0]
    """
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "categorical_hinge", min_rank=1)
    true_score = jnp.sum(y_true * y_pred, axis=-1)
    best_other_score = jnp.max((1.0 - y_true) * y_pred, axis=-1)
    return jnp.maximum(best_other_score - true_score + 1.0, 0.0).astype(out_dtype)


class Hinge(Loss):
    """Hinge loss, ``max(1 - y_true * y_pred, 0)``; see :func:`hinge`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = Hinge()(jnp.array([[0, 1], [1, 1]]), jnp.array([[0.6, 0.4], [-0.4, 0.6]]))
        >>> print(f"{float(loss):.4f}")
        1.0000
    """

    function = hinge

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "hinge",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class SquaredHinge(Loss):
    """Squared hinge loss, ``max(1 - y_true * y_pred, 0) ** 2``; see :func:`squared_hinge`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = SquaredHinge(reduction=None)
        >>> [round(float(v), 4) for v in loss(jnp.array([[-1, 1]]), jnp.array([[0.5, 2.0]]))]
        [1.125]
    """

    function = squared_hinge

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "squared_hinge",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class CategoricalHinge(Loss):
    """Categorical hinge loss, ``max(neg - pos + 1, 0)``; see :func:`categorical_hinge`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> y_true = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
        >>> y_pred = jnp.array([[0.2, 0.5, 0.9], [2.0, 0.1, 0.3]])
        >>> print(f"{float(CategoricalHinge(reduction='sum')(y_true, y_pred)):.4f}")
        1.4000
    """

    function = categorical_hinge

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "categorical_hinge",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
