"""Binary margin losses: hinge, squared hinge, categorical hinge (Keras 3 semantics and numbers),
perceptron, soft margin and multilabel soft margin (optax and PyTorch).

Binary labels are accepted for :func:`hinge` and :func:`squared_hinge`: when every entry of
``y_true`` is 0 or 1 the labels are mapped to -1/1 (``2 * y_true - 1``), exactly as Keras
does; any other label set (-1/1 included) is used as given. The test looks at the whole
``y_true`` array passed in (the whole batch, or one sample under :func:`jax.vmap`).

Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import logistic_terms, mean_last_axis, mean_of_elementwise, prepare_pair
from losses_jax._targets import check_class_weight, per_class_weights
from losses_jax.base import Loss

__all__ = [
    "CategoricalHinge",
    "Hinge",
    "MultilabelSoftMargin",
    "Perceptron",
    "SoftMargin",
    "SquaredHinge",
    "categorical_hinge",
    "hinge",
    "multilabel_soft_margin",
    "perceptron",
    "soft_margin",
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


# --------------------------------------------------------------------------------------
# perceptron and soft margins (optax, PyTorch)
# --------------------------------------------------------------------------------------
def _perceptron_elementwise(y_true, y_pred):
    return jnp.maximum(-_signed_labels(y_true) * y_pred, 0.0)


def _soft_margin_elementwise(y_true, y_pred):
    # softplus(-y x) = log1p(exp(-y x)), without overflow for any y x.
    return logistic_terms(_signed_labels(y_true) * y_pred)[1]


def perceptron(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Perceptron loss per sample: ``mean(max(0, -y_true * y_pred), axis=-1)``.

    ``y_true`` holds labels in {-1, 1}, optax's convention; {0, 1} labels (every entry 0 or 1)
    are mapped to {-1, 1} as :func:`~losses_jax.hinge` maps them, where optax would give 0 for
    every 0 label. Shapes: ``(batch, d0, ..., dN)`` -> ``(batch, d0, ..., dN-1)``.

    References:
        Rosenblatt (1958), "The Perceptron: A Probabilistic Model for Information Storage and
        Organization in the Brain", *Psychological Review* 65(6). optax 0.2.8,
        ``optax.losses.perceptron_loss`` (elementwise; here averaged over the last axis).

    Examples:
        >>> loss = perceptron(jnp.array([[1.0, -1.0], [-1.0, 1.0]]), jnp.array([[-2.0, -1.0], [0.5, 3.0]]))
        >>> [round(float(v), 4) for v in loss]
        [1.0, 0.25]
    """
    return mean_of_elementwise(_perceptron_elementwise, y_true, y_pred, "perceptron")


def soft_margin(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Soft-margin (logistic) loss per sample: ``mean(log(1 + exp(-y_true * y_pred)), axis=-1)``.

    Labels as for :func:`perceptron` ({-1, 1}, or {0, 1} mapped to them); computed as
    ``softplus(-y x)``, exact for any product. Shapes: ``(batch, d0, ..., dN)`` ->
    ``(batch, d0, ..., dN-1)``.

    References:
        Zhang (2004), "Statistical Behavior and Consistency of Classification Methods based on
        Convex Risk Minimization", *Annals of Statistics* 32(1) (the logistic margin loss).
        PyTorch 2.13, ``torch.nn.functional.soft_margin_loss`` (elementwise; here averaged
        over the last axis).

    Examples:
        >>> loss = soft_margin(jnp.array([[1.0, -1.0]]), jnp.array([[0.0, 2.0]]))
        >>> [round(float(v), 4) for v in loss]
        [1.41]
    """
    return mean_of_elementwise(_soft_margin_elementwise, y_true, y_pred, "soft_margin")


def multilabel_soft_margin(
    y_true: ArrayLike, y_pred: ArrayLike, class_weight: Any = None
) -> jax.Array:
    """Multilabel soft-margin loss per sample, PyTorch's ``multilabel_soft_margin_loss``::

        loss = mean_c w_c * (y_c * softplus(-x_c) + (1 - y_c) * softplus(x_c))

    the binary cross-entropy of each class's logit ``x_c``, averaged over the classes.

    Args:
        y_true: targets in [0, 1] (multi-hot), shape ``(batch, ..., num_classes)``.
        y_pred: logits, same shape.
        class_weight: optional per-class weights ``w >= 0``, length ``num_classes``.

    Returns:
        Losses of shape ``y_pred.shape[:-1]`` in ``y_pred``'s floating dtype.

    References:
        PyTorch 2.13, ``torch.nn.functional.multilabel_soft_margin_loss``; the one-vs-all
        logistic loss of Rifkin & Klautau (2004), "In Defense of One-Vs-All Classification",
        *JMLR* 5.

    Examples:
        >>> loss = multilabel_soft_margin(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 2.0]]))
        >>> [round(float(v), 4) for v in loss]
        [1.41]
    """
    check_class_weight(class_weight, "class_weight")
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "multilabel_soft_margin", min_rank=1)
    softplus, softplus_neg = logistic_terms(y_pred)[:2]
    terms = y_true * softplus_neg + (1.0 - y_true) * softplus
    weights = per_class_weights(class_weight, "class_weight", y_pred.shape[-1], 1, 0, y_pred.dtype)
    if weights is not None:
        terms = terms * weights
    return mean_last_axis(terms).astype(out_dtype)


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
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


class Perceptron(Loss):
    """Perceptron loss ``max(0, -y_true * y_pred)``; see :func:`perceptron`.

    optax's ``perceptron_loss`` is elementwise: its mean over the last axis is
    ``reduction="none"`` here, its overall mean ``"sum_over_batch_size"``.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = Perceptron()(jnp.array([[1.0, -1.0], [-1.0, 1.0]]), jnp.array([[-2.0, -1.0], [0.5, 3.0]]))
        >>> print(f"{float(loss):.4f}")
        0.6250
    """

    function = perceptron

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "perceptron",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class SoftMargin(Loss):
    """Soft-margin loss ``log(1 + exp(-y_true * y_pred))``; see :func:`soft_margin`.

    PyTorch's ``soft_margin_loss`` is elementwise over all axes. Its ``reduction="mean"`` is
    ``"sum_over_batch_size"`` here; its ``"sum"`` is ``"sum"`` here times the size of the last
    axis (this loss's per-sample values are means over that axis, as Keras's hinge); its
    ``"none"`` averaged over the last axis is ``"none"`` here.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = SoftMargin()(jnp.array([[1.0, -1.0], [1.0, 1.0]]), jnp.array([[0.0, 2.0], [3.0, 3.0]]))
        >>> print(f"{float(loss):.4f}")
        0.7293
    """

    function = soft_margin

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "soft_margin",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MultilabelSoftMargin(Loss):
    """Multilabel soft-margin loss (one-vs-all logistic); see :func:`multilabel_soft_margin`.

    Reductions are PyTorch's: ``"sum_over_batch_size"`` is ``reduction="mean"``, ``"sum"``
    and ``"none"`` are the same.

    Args:
        class_weight: optional per-class weights (stored as a tuple).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = MultilabelSoftMargin(class_weight=[2.0, 1.0], reduction="none")
        >>> [round(float(v), 4) for v in loss(jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 2.0]]))]
        [1.7566]
    """

    function = multilabel_soft_margin

    def __init__(
        self,
        class_weight: Any = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "multilabel_soft_margin",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_weight = check_class_weight(class_weight, "class_weight")
