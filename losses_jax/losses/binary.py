"""Binary cross-entropies: plain (Keras's ``BinaryCrossentropy``) and focal (Lin et al., 2017).

From logits, ``log p`` and ``log(1 - p)`` are log-sigmoids (softplus of one ``exp`` and one
``log1p``), never formed from ``p``. From probabilities, ``p`` is clipped to
``[1e-7, 1 - 1e-7]`` exactly like Keras, with a straight-through gradient. Logs and sums run in
float32 for float16/bfloat16 inputs; results come back in ``y_pred``'s dtype.
``BinaryCrossentropy`` also takes PyTorch's per-class ``weight`` (named ``class_weight`` here)
and ``pos_weight``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import clip_probabilities, logistic_terms, power, upcast, weighted_log
from losses_jax._targets import (
    check_class_weight,
    check_gamma,
    check_label_smoothing,
    dense_inputs,
    listed_weights,
    per_class_weights,
    smooth_binary,
)
from losses_jax._validation import (
    check_axis,
    check_bool,
    check_number,
    normalize_axis,
)
from losses_jax.base import Loss
from losses_jax.checks import guard_unit_interval

__all__ = [
    "BCE",
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "bce",
    "binary_crossentropy",
    "binary_focal_crossentropy",
]


def _binary_neg_logs(y_pred: jax.Array, from_logits: bool) -> tuple[jax.Array, jax.Array]:
    """``(-log p, -log(1 - p))`` from logits (stable softplus) or from clipped probabilities."""
    if from_logits:
        neg_log_not_p, neg_log_p, _, _ = logistic_terms(y_pred)
        return neg_log_p, neg_log_not_p
    y_pred = guard_unit_interval(y_pred, "y_pred")
    p = clip_probabilities(y_pred)
    return -jnp.log(p), -jnp.log1p(-p)


def _binary_xent(targets, neg_log_p, neg_log_not_p) -> jax.Array:
    """``t * -log p + (1 - t) * -log(1 - p)``; zero weights never touch an infinite log."""
    return weighted_log(targets, neg_log_p) + weighted_log(1.0 - targets, neg_log_not_p)


def binary_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    class_weight: ArrayLike | Sequence[float] | None = None,
    pos_weight: ArrayLike | Sequence[float] | None = None,
) -> jax.Array:
    """Binary cross-entropy, averaged over ``axis``.

    ``loss = mean(-w * (pw * t * log(p) + (1 - t) * log(1 - p)), axis)`` with smoothed targets
    ``t = y_true * (1 - label_smoothing) + 0.5 * label_smoothing``, ``w = class_weight`` and
    ``pw = pos_weight`` (both 1 when not given). With ``from_logits=True``,
    ``log p = log_sigmoid(y_pred)`` and ``log(1 - p) = log_sigmoid(-y_pred)``; otherwise ``p``
    is ``y_pred`` clipped to ``[1e-7, 1 - 1e-7]`` (straight-through gradient, unlike Keras).

    PyTorch: ``binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw)`` (and
    ``binary_cross_entropy(p, y, weight=w)``) with ``reduction="none"`` is this loss before the
    mean over ``axis``, with ``w`` and ``pw`` one per entry of ``axis`` (the classes of a
    multi-label problem); ``reduction="mean"`` equals ``reduction="sum_over_batch_size"`` here.

    Args:
        y_true: targets in ``[0, 1]``, shape ``(batch, ..., d)`` (or broadcastable to y_pred).
        y_pred: logits or probabilities, shape ``(batch, ..., d)``.
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``; squeezes targets towards 0.5.
        axis: the axis averaged over.
        class_weight: optional ``d`` weights ``>= 0``, one per entry of ``axis`` (PyTorch's
            ``weight``); may be a traced array.
        pos_weight: optional weight of the positive term, a scalar or ``d`` weights ``>= 0``
            (PyTorch's ``pos_weight``: ``> 1`` raises recall); may be a traced array.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    References:
        Goodfellow, Bengio & Courville (2016), *Deep Learning*, MIT Press, §6.2.2 (sigmoid
        units for Bernoulli outputs); label smoothing: Szegedy et al. (2016), "Rethinking the
        Inception Architecture for Computer Vision", CVPR. Keras 3,
        ``keras.losses.binary_crossentropy``.

    Examples:
        >>> loss = binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> [round(float(v), 3) for v in loss]
        [0.916, 0.714]
        >>> loss = binary_crossentropy([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8], from_logits=True)
        >>> print(f"{float(loss):.3f}")
        0.865
        >>> loss = binary_crossentropy([[0, 1]], [[0.0, 0.0]], True, class_weight=[1.0, 0.5])
        >>> print(f"{float(loss[0]):.4f}")  # mean(log 2 * [1, 0.5])
        0.5199
        >>> loss = binary_crossentropy([[0, 1]], [[0.0, 0.0]], True, pos_weight=3.0)
        >>> print(f"{float(loss[0]):.4f}")  # mean(log 2 * [1, 3])
        1.3863
    """
    check_label_smoothing(label_smoothing)
    check_axis(axis, "binary_crossentropy", allow_tuple=False)
    targets, y_pred = dense_inputs(y_true, y_pred, "binary_crossentropy", same_shape=True)
    axis = normalize_axis(axis, y_pred.ndim)
    targets = smooth_binary(targets, label_smoothing)
    neg_log_p, neg_log_not_p = _binary_neg_logs(upcast(y_pred), from_logits)
    weight_of = partial(
        per_class_weights,
        classes=y_pred.shape[axis],
        ndim=y_pred.ndim,
        axis=axis,
        dtype=targets.dtype,
    )
    positive_weight = weight_of(pos_weight, "pos_weight", allow_scalar=True)
    positive = targets if positive_weight is None else positive_weight * targets
    losses = weighted_log(positive, neg_log_p) + weighted_log(1.0 - targets, neg_log_not_p)
    weights = weight_of(class_weight, "class_weight")
    if weights is not None:
        losses = weights * losses
    return jnp.mean(losses, axis=axis).astype(y_pred.dtype)


def binary_focal_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    apply_class_balancing: bool = False,
    alpha: float = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """Binary focal cross-entropy (Lin et al., 2017), averaged over ``axis``.

    ``loss = mean(w * (1 - p_t) ** gamma * bce, axis)`` where ``bce`` is the elementwise binary
    cross-entropy, ``1 - p_t = t * (1 - p) + (1 - t) * p`` and, with
    ``apply_class_balancing``, ``w = t * alpha + (1 - t) * (1 - alpha)`` (else ``w = 1``).
    From logits, ``bce`` uses log-sigmoid and ``p = sigmoid(y_pred)`` (Keras clips the sigmoid;
    we do not). From probabilities, ``bce`` clips ``p`` to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient, unlike Keras) and ``p_t`` uses the unclipped ``p``, as Keras.

    Args:
        y_true: targets in ``[0, 1]``, shape ``(batch, ..., d)``.
        y_pred: logits or probabilities, shape ``(batch, ..., d)``.
        apply_class_balancing: weight class 1 by ``alpha`` and class 0 by ``1 - alpha``.
        alpha: balancing factor for class 1.
        gamma: focusing parameter, ``>= 0`` (``0`` gives binary cross-entropy).
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``; squeezes targets towards 0.5.
        axis: the axis averaged over.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    References:
        Lin, Goyal, Girshick, He & Dollár (2017), "Focal Loss for Dense Object Detection",
        ICCV. Keras 3, ``keras.losses.binary_focal_crossentropy``.

    Examples:
        >>> y_true, y_pred = [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]
        >>> loss = binary_focal_crossentropy(y_true, y_pred, gamma=2)
        >>> [round(float(v), 3) for v in loss]
        [0.33, 0.206]
    """
    check_gamma(gamma)
    check_label_smoothing(label_smoothing)
    check_axis(axis, "binary_focal_crossentropy", allow_tuple=False)
    check_number(alpha, "alpha")
    targets, y_pred = dense_inputs(y_true, y_pred, "binary_focal_crossentropy", same_shape=True)
    axis = normalize_axis(axis, y_pred.ndim)
    targets = smooth_binary(targets, label_smoothing)
    x = upcast(y_pred)
    if from_logits:
        neg_log_not_p, neg_log_p, p, not_p = logistic_terms(x)
    else:
        (neg_log_p, neg_log_not_p), p, not_p = _binary_neg_logs(x, False), x, 1.0 - x
    bce = _binary_xent(targets, neg_log_p, neg_log_not_p)
    losses = power(targets * not_p + (1.0 - targets) * p, gamma) * bce
    if apply_class_balancing:
        losses = (targets * alpha + (1.0 - targets) * (1.0 - alpha)) * losses
    return jnp.mean(losses, axis=axis).astype(y_pred.dtype)


bce = BCE = binary_crossentropy


class BinaryCrossentropy(Loss):
    """Binary cross-entropy; see :func:`binary_crossentropy` for the formula and shapes.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        label_smoothing: float in ``[0, 1]``; squeezes targets towards 0.5.
        axis: the axis the per-sample mean runs over.
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"binary_crossentropy"``.
        dtype: compute and result dtype.
        class_weight: optional list of weights ``>= 0``, one per entry of ``axis`` (PyTorch's
            ``weight``); the reductions are unchanged (PyTorch's ``"mean"`` is
            ``"sum_over_batch_size"``).
        pos_weight: optional weight of the positive term: a scalar or a list of one per entry
            of ``axis`` (PyTorch's ``pos_weight``).

    Examples:
        >>> y_true, y_pred = [[0, 1], [0, 0]], [[-18.6, 0.51], [2.94, -12.8]]
        >>> bce = BinaryCrossentropy(from_logits=True)
        >>> print(f"{float(bce(y_true, y_pred)):.4f}")  # Keras's docs truncate it to 0.8654
        0.8655
        >>> print(f"{float(bce(y_true, y_pred, sample_weight=[0.8, 0.2])):.4f}")
        0.2436
        >>> bce_sum = BinaryCrossentropy(from_logits=True, reduction="sum")
        >>> print(f"{float(bce_sum(y_true, y_pred)):.4f}")
        1.7309
        >>> BinaryCrossentropy(pos_weight=[2, 1], class_weight=(1, 3)).get_config()["pos_weight"]
        [2.0, 1.0]
    """

    function = binary_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "binary_crossentropy",
        dtype: DTypeLike | None = None,
        class_weight: Any = None,
        pos_weight: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = check_axis(axis, self.name, allow_tuple=False)
        self.class_weight = check_class_weight(class_weight, "class_weight")
        self.pos_weight = check_class_weight(pos_weight, "pos_weight", allow_scalar=True)

    def get_config(self) -> dict[str, Any]:
        return listed_weights(super().get_config(), "class_weight", "pos_weight")


class BinaryFocalCrossentropy(Loss):
    """Binary focal cross-entropy; see :func:`binary_focal_crossentropy`.

    Args:
        apply_class_balancing: weight class 1 by ``alpha`` and class 0 by ``1 - alpha``.
        alpha: balancing factor for class 1 (default 0.25).
        gamma: focusing parameter, ``>= 0`` (default 2).
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the axis the per-sample mean runs over.
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"binary_focal_crossentropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true, y_pred = [0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]
        >>> loss = BinaryFocalCrossentropy(gamma=2, from_logits=True)
        >>> print(f"{float(loss(y_true, y_pred)):.3f}")
        0.691
        >>> loss = BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2, from_logits=True)
        >>> print(f"{float(loss(y_true, y_pred)):.2f}")
        0.51
    """

    function = binary_focal_crossentropy

    def __init__(
        self,
        apply_class_balancing: bool = False,
        alpha: float = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "binary_focal_crossentropy",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.apply_class_balancing = check_bool(apply_class_balancing, "apply_class_balancing")
        self.alpha = check_number(alpha, "alpha")
        self.gamma = check_gamma(gamma)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = check_axis(axis, self.name, allow_tuple=False)
