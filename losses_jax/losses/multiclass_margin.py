"""Multiclass and multilabel margin losses on class ids: the optax and PyTorch hinge-like losses.

``y_pred`` holds real class scores. Class ids in
``y_true`` stay integer; an id outside ``[0, num_classes)`` gives a loss of 0 (as the sparse
cross-entropy does) and is reported under :func:`losses_jax.checked`. One value per sample:
PyTorch's ``reduction="mean"`` is ``"sum_over_batch_size"`` here and ``"sum"`` is ``"sum"``.
(The binary margins, perceptron and soft margins, are in :mod:`losses_jax.losses.margin`.)
Derivatives at the kinks follow each anchor:
``max(z, 0)`` as optax writes it (half the slope at 0), ``z > 0`` where PyTorch's kernels count
a violation. Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s
dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    mean_last_axis,
    upcast,
)
from losses_jax._softmax_xent import take_class
from losses_jax._targets import (
    check_class_weight,
    per_class_weights,
    sparse_labels,
    valid_labels,
    weights_of_labels,
)
from losses_jax._validation import (
    as_float_array,
    as_label_array,
    check_int,
    check_number,
)
from losses_jax.base import Loss
from losses_jax.checks import guard_labels_in_range

__all__ = [
    "MultiMargin",
    "MulticlassHinge",
    "MulticlassPerceptron",
    "MultilabelMargin",
    "multi_margin",
    "multiclass_hinge",
    "multiclass_perceptron",
    "multilabel_margin",
]


# --------------------------------------------------------------------------------------
# options and inputs
# --------------------------------------------------------------------------------------
def _check_p(p: Any) -> int:
    p = check_int(p, "p")
    if p not in (1, 2):
        raise ValueError(
            f"`p` must be 1 or 2 (the power of each margin violation); received p={p}."
        )
    return p


def _ids_and_scores(y_true: ArrayLike, y_pred: ArrayLike, loss_name: str):
    """``(labels, scores, out_dtype)``: int labels of ``y_pred.shape[:-1]``, scores upcast."""
    y_pred = as_float_array(y_pred, "y_pred")
    if y_pred.ndim < 1:
        raise ValueError(
            f"{loss_name}: `y_pred` must hold class scores on its last axis, shape "
            f"(batch, ..., num_classes); received a scalar."
        )
    labels = sparse_labels(y_true, y_pred, y_pred.ndim - 1, loss_name)
    labels = guard_labels_in_range(labels, y_pred.shape[-1], "y_true")
    return labels, upcast(y_pred), y_pred.dtype


def _is_label(labels: jax.Array, num_classes: int) -> jax.Array:
    """Boolean one-hot of ``labels`` (all False for an id out of range)."""
    return labels[..., None] == jnp.arange(num_classes)


# --------------------------------------------------------------------------------------
# integer labels
# --------------------------------------------------------------------------------------
def multiclass_hinge(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Multiclass hinge loss per sample: ``max(0, 1 + max_{j != y} s_j - s_y)``.

    Computed as optax does, ``max_j(s_j + 1 - [j = y]) - s_y``, so values and gradients (ties
    included) are optax's.

    Args:
        y_true: integer class ids ``y``, shape ``(batch, ...)`` (a trailing 1 is allowed).
        y_pred: class scores ``s``, shape ``(batch, ..., num_classes)``.

    Returns:
        Losses of shape ``y_pred.shape[:-1]`` in ``y_pred``'s floating dtype; 0 for an id out
        of range (optax would count its one-hot row of zeros).

    References:
        Crammer & Singer (2001), "On the Algorithmic Implementation of Multiclass Kernel-based
        Vector Machines", *JMLR* 2. optax 0.2.8, ``optax.losses.multiclass_hinge_loss``.

    Examples:
        >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
        >>> [round(float(v), 4) for v in multiclass_hinge(jnp.array([0, 2]), scores)]
        [0.5, 3.5]
    """
    labels, scores, out_dtype = _ids_and_scores(y_true, y_pred, "multiclass_hinge")
    num_classes = scores.shape[-1]
    offset = jnp.where(_is_label(labels, num_classes), scores, scores + 1.0)
    loss = jnp.max(offset, axis=-1) - take_class(scores, labels)
    return jnp.where(valid_labels(labels, num_classes), loss, 0.0).astype(out_dtype)


def multiclass_perceptron(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Multiclass perceptron loss per sample: ``max_j s_j - s_y``.

    Zero when the true class scores highest (ties included), else the gap to the best score.
    Inputs and result as for :func:`multiclass_hinge`.

    References:
        Collins (2002), "Discriminative Training Methods for Hidden Markov Models: Theory and
        Experiments with Perceptron Algorithms", EMNLP. optax 0.2.8,
        ``optax.losses.multiclass_perceptron_loss``.

    Examples:
        >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
        >>> [round(float(v), 4) for v in multiclass_perceptron(jnp.array([0, 2]), scores)]
        [0.0, 2.5]
    """
    labels, scores, out_dtype = _ids_and_scores(y_true, y_pred, "multiclass_perceptron")
    loss = jnp.max(scores, axis=-1) - take_class(scores, labels)
    return jnp.where(valid_labels(labels, scores.shape[-1]), loss, 0.0).astype(out_dtype)


def multi_margin(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    p: int = 1,
    margin: Any = 1.0,
    class_weight: Any = None,
) -> jax.Array:
    """Multiclass margin loss per sample, PyTorch's ``multi_margin_loss``::

        loss = w[y] * sum_{j != y} max(0, margin - s_y + s_j) ** p / num_classes

    Args:
        y_true: integer class ids ``y``, shape ``(batch, ...)`` (a trailing 1 is allowed).
        y_pred: class scores ``s``, shape ``(batch, ..., num_classes)``.
        p: 1 or 2 (static): the power of each violation.
        margin: the margin (default 1; a traced array is allowed).
        class_weight: optional per-class weights ``w >= 0``, length ``num_classes``; as in
            PyTorch's kernel the weight of the true class multiplies the powered sum.

    Returns:
        Losses of shape ``y_pred.shape[:-1]`` in ``y_pred``'s floating dtype; 0 for an id out
        of range (PyTorch raises).

    References:
        Weston & Watkins (1999), "Support Vector Machines for Multi-Class Pattern
        Recognition", ESANN. PyTorch 2.13, ``torch.nn.functional.multi_margin_loss``.

    Examples:
        >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
        >>> [round(float(v), 4) for v in multi_margin(jnp.array([0, 2]), scores)]
        [0.1667, 1.3333]
        >>> [round(float(v), 4) for v in multi_margin(jnp.array([0, 2]), scores, p=2)]
        [0.0833, 4.1667]
    """
    _check_p(p)
    check_number(margin, "margin")
    labels, scores, out_dtype = _ids_and_scores(y_true, y_pred, "multi_margin")
    num_classes = scores.shape[-1]
    violation = margin - take_class(scores, labels)[..., None] + scores
    # PyTorch counts a violation only where it is > 0: no gradient at exactly 0.
    counted = (violation > 0) & ~_is_label(labels, num_classes)
    hinge = jnp.where(counted, violation, 0.0)
    loss = mean_last_axis(hinge if p == 1 else jnp.square(hinge))
    check_class_weight(class_weight, "class_weight")
    weights = per_class_weights(class_weight, "class_weight", num_classes, 1, 0, scores.dtype)
    if weights is not None:
        loss = loss * weights_of_labels(weights, labels)
    return jnp.where(valid_labels(labels, num_classes), loss, 0.0).astype(out_dtype)


def multilabel_margin(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Multilabel margin loss per sample, PyTorch's ``multilabel_margin_loss``::

        loss = sum_{k listed} sum_{i not a target} max(0, 1 - (s[t_k] - s_i)) / num_classes

    ``y_true`` lists the target class ids of each sample, padded with -1: the first negative
    entry ends the list (as in PyTorch, entries after it are ignored even if valid). A class
    listed twice counts twice, as in PyTorch. Memory: ``num_classes ** 2`` per sample.

    Args:
        y_true: integer target lists, same shape as ``y_pred``.
        y_pred: class scores ``s``, shape ``(batch, ..., num_classes)``.

    Returns:
        Losses of shape ``y_pred.shape[:-1]`` in ``y_pred``'s floating dtype. Ids
        ``>= num_classes`` are skipped (PyTorch raises) and reported under
        :func:`losses_jax.checked`.

    References:
        Crammer & Singer (2003), "A Family of Additive Online Algorithms for Category Ranking",
        *JMLR* 3. PyTorch 2.13, ``torch.nn.functional.multilabel_margin_loss``.

    Examples:
        >>> scores = jnp.array([[0.1, 0.2, 0.4, 0.8]])
        >>> [round(float(v), 4) for v in multilabel_margin(jnp.array([[3, 0, -1, 1]]), scores)]
        [0.85]
    """
    y_pred = as_float_array(y_pred, "y_pred")
    targets = as_label_array(y_true, "y_true")
    if y_pred.ndim < 1 or targets.shape != y_pred.shape:
        raise ValueError(
            f"multilabel_margin: `y_true` (target class ids padded with -1) must have the shape "
            f"of `y_pred` (batch, ..., num_classes); received {tuple(targets.shape)} and "
            f"{tuple(y_pred.shape)}."
        )
    if not jnp.issubdtype(targets.dtype, jnp.integer):
        targets = targets.astype(jnp.int32)
    num_classes = y_pred.shape[-1]
    scores = upcast(y_pred)
    # Negative ids end the list: every negative becomes -1, the one value the guard accepts.
    targets = jnp.where(targets < 0, -1, targets)
    targets = guard_labels_in_range(targets, num_classes, "y_true", ignore=-1)
    listed = (jnp.cumsum(targets < 0, axis=-1) == 0) & (targets < num_classes)
    is_target = jnp.any(listed[..., None] & _is_label(targets, num_classes), axis=-2)
    target_scores = jnp.take_along_axis(scores, jnp.clip(targets, 0, num_classes - 1), axis=-1)
    # (..., listed position k, class i)
    violation = 1.0 - target_scores[..., :, None] + scores[..., None, :]
    counted = listed[..., :, None] & ~is_target[..., None, :] & (violation > 0)
    total = jnp.sum(jnp.where(counted, violation, 0.0), axis=(-2, -1))
    return (total / num_classes).astype(y_pred.dtype)


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class MulticlassHinge(Loss):
    """Multiclass hinge loss (Crammer & Singer); see :func:`multiclass_hinge`.

    optax's ``multiclass_hinge_loss`` returns the per-sample values: ``reduction="none"``
    here; ``"sum_over_batch_size"`` is their mean.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
        >>> print(f"{float(MulticlassHinge()(jnp.array([0, 2]), scores)):.4f}")
        2.0000
    """

    function = multiclass_hinge
    labels_are_ids = True

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "multiclass_hinge",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MulticlassPerceptron(Loss):
    """Multiclass perceptron loss ``max_j s_j - s_y``; see :func:`multiclass_perceptron`.

    optax's ``multiclass_perceptron_loss`` is ``reduction="none"`` here.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
        >>> print(f"{float(MulticlassPerceptron(reduction='sum')(jnp.array([0, 2]), scores)):.4f}")
        2.5000
    """

    function = multiclass_perceptron
    labels_are_ids = True

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "multiclass_perceptron",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class MultiMargin(Loss):
    """Multiclass margin loss (Weston & Watkins); see :func:`multi_margin`.

    Reductions are PyTorch's: ``"sum_over_batch_size"`` is ``reduction="mean"`` (also with a
    ``class_weight``: PyTorch divides by the batch size, not by the weights), ``"sum"`` and
    ``"none"`` are the same.

    Args:
        p: 1 or 2 (default 1).
        margin: the margin (default 1).
        class_weight: optional per-class weights (stored as a tuple).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> scores = jnp.array([[2.0, 1.5, -1.0], [0.0, 3.0, 0.5]])
        >>> loss = MultiMargin(p=2, class_weight=[1.0, 1.0, 0.5], reduction="none")
        >>> [round(float(v), 4) for v in loss(jnp.array([0, 2]), scores)]
        [0.0833, 2.0833]
    """

    function = multi_margin
    labels_are_ids = True

    def __init__(
        self,
        p: int = 1,
        margin: Any = 1.0,
        class_weight: Any = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "multi_margin",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.p = _check_p(p)
        self.margin = check_number(margin, "margin")
        self.class_weight = check_class_weight(class_weight, "class_weight")


class MultilabelMargin(Loss):
    """Multilabel margin loss on -1-padded target lists; see :func:`multilabel_margin`.

    Reductions are PyTorch's: ``"sum_over_batch_size"`` is ``reduction="mean"``, ``"sum"``
    and ``"none"`` are the same.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> scores = jnp.array([[0.1, 0.2, 0.4, 0.8], [0.5, 0.0, 0.0, 0.0]])
        >>> targets = jnp.array([[3, 0, -1, 1], [0, -1, -1, -1]])
        >>> print(f"{float(MultilabelMargin()(targets, scores)):.4f}")
        0.6125
    """

    function = multilabel_margin
    labels_are_ids = True

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "multilabel_margin",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
