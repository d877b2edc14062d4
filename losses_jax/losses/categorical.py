"""Categorical cross-entropies: on dense targets, on integer labels, and focal (Lin et al., 2017).

From logits, the log-softmax is max-shifted (a ``-inf`` logit masks a class: finite loss, zero
gradient there) and the cross-entropy goes through the kernels of
:mod:`losses_jax._softmax_xent`. From probabilities, ``p = y_pred / sum(y_pred)`` is clipped to
``[1e-7, 1 - 1e-7]`` exactly like Keras, with a straight-through gradient. Logs and sums run in
float32 for float16/bfloat16 inputs; integer labels are never cast to a float.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    clip_probabilities,
    log_softmax,
    power,
    safe_divide,
    upcast,
    weighted_sum_of_logs,
)
from losses_jax._softmax_xent import add_z_loss, softmax_xent_dense, softmax_xent_sparse, take_class
from losses_jax._targets import (
    check_alpha,
    check_gamma,
    check_ignore_class,
    check_label_smoothing,
    check_z_loss,
    classes_last,
    dense_inputs,
    renormalize,
    smooth_categorical,
    sparse_labels,
    valid_labels,
)
from losses_jax._validation import as_float_array, check_axis, check_bool, normalize_axis
from losses_jax.base import Loss
from losses_jax.checks import guard_labels_in_range, guard_unit_interval

__all__ = [
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "SparseCategoricalCrossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "sparse_categorical_crossentropy",
]


def _categorical_inputs(
    y_true: ArrayLike, y_pred: ArrayLike, label_smoothing: Any, axis: int, loss_name: str
) -> tuple[jax.Array, jax.Array]:
    """Smoothed targets and predictions with the class ``axis`` moved last."""
    check_label_smoothing(label_smoothing)
    check_axis(axis, loss_name, allow_tuple=False)
    targets, y_pred = dense_inputs(y_true, y_pred, loss_name, same_shape=True)
    axis = normalize_axis(axis, y_pred.ndim)
    targets = smooth_categorical(classes_last(targets, axis), label_smoothing)
    return targets, classes_last(y_pred, axis)


def categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    z_loss: float = 0.0,
) -> jax.Array:
    """Categorical cross-entropy between one-hot (or soft) targets and predictions.

    ``loss = -sum(t * log p, axis) + z_loss * logsumexp(y_pred, axis) ** 2`` with smoothed
    targets ``t = y_true * (1 - label_smoothing) + label_smoothing / num_classes``. From logits,
    ``log p = y_pred - logsumexp(y_pred)`` (max-shifted; a ``-inf`` logit masks a class). From
    probabilities, ``p = y_pred / sum(y_pred, axis)`` clipped to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient, unlike Keras). ``z_loss`` (PaLM) needs ``from_logits=True``.

    Args:
        y_true: targets, shape ``(batch, ..., num_classes)`` (classes on ``axis``).
        y_pred: logits or probabilities of the same shape.
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        z_loss: weight of the ``logsumexp ** 2`` penalty, ``>= 0``.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    References:
        Goodfellow, Bengio & Courville (2016), *Deep Learning*, MIT Press, §6.2.2 (softmax
        units for multinoulli outputs); label smoothing: Szegedy et al. (2016), "Rethinking
        the Inception Architecture for Computer Vision", CVPR; z-loss: Chowdhery et al.
        (2022), "PaLM: Scaling Language Modeling with Pathways", arXiv:2204.02311. Keras 3,
        ``keras.losses.categorical_crossentropy``.

    Examples:
        >>> y_true = [[0, 1, 0], [0, 0, 1]]
        >>> loss = categorical_crossentropy(y_true, [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
        >>> [round(float(v), 4) for v in loss]
        [0.0513, 2.3026]
        >>> logits = jnp.array([[2.0, 3.0, -jnp.inf]])  # the third class is masked
        >>> loss = categorical_crossentropy([[0, 1, 0]], logits, from_logits=True)
        >>> print(f"{float(loss[0]):.4f}")
        0.3133
    """
    check_z_loss(z_loss, from_logits)
    targets, y_pred = _categorical_inputs(
        y_true, y_pred, label_smoothing, axis, "categorical_crossentropy"
    )
    if from_logits:
        # The logits go in their own dtype: the VJP saves them, not a float32 copy.
        xent, lse = softmax_xent_dense(y_pred, targets)
        losses = add_z_loss(xent, lse, z_loss)
    else:
        log_p = jnp.log(clip_probabilities(renormalize(upcast(y_pred))))
        losses = -jnp.sum(targets * log_p, axis=-1)
    return losses.astype(y_pred.dtype)


def categorical_focal_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    alpha: Any = 0.25,
    gamma: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """Alpha-balanced categorical focal cross-entropy (Lin et al., 2017).

    ``loss = sum(alpha * (1 - p) ** gamma * (-t * log p), axis)`` with targets smoothed as in
    :func:`categorical_crossentropy`. ``alpha`` is a scalar or one weight per class. From
    logits, ``log p`` is a stable log-softmax and ``1 - p = -expm1(log p)``; Keras forms and
    clips the softmax instead. From probabilities, ``p = y_pred / sum(y_pred, axis)`` clipped to
    ``[1e-7, 1 - 1e-7]`` (straight-through gradient, unlike Keras).

    Args:
        y_true: targets, shape ``(batch, ..., num_classes)`` (classes on ``axis``).
        y_pred: logits or probabilities of the same shape.
        alpha: scalar or sequence of ``num_classes`` weights.
        gamma: focusing parameter, ``>= 0``.
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    References:
        Lin, Goyal, Girshick, He & Dollár (2017), "Focal Loss for Dense Object Detection",
        ICCV. Keras 3, ``keras.losses.categorical_focal_crossentropy``.

    Examples:
        >>> y_true = [[0, 1, 0], [0, 0, 1]]
        >>> loss = categorical_focal_crossentropy(y_true, [[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])
        >>> [f"{float(v):.4e}" for v in loss]
        ['2.6340e-04', '6.7591e-01']
    """
    check_gamma(gamma)
    alpha = check_alpha(alpha)
    targets, y_pred = _categorical_inputs(
        y_true, y_pred, label_smoothing, axis, "categorical_focal_crossentropy"
    )
    x = upcast(y_pred)
    if isinstance(alpha, tuple):
        if len(alpha) != x.shape[-1]:
            raise ValueError(
                f"categorical_focal_crossentropy: `alpha` has {len(alpha)} per-class weights "
                f"but `y_pred` of shape {tuple(y_pred.shape)} has {x.shape[-1]} classes."
            )
        alpha = jnp.asarray(alpha, x.dtype)
    if from_logits:
        log_p = log_softmax(x)
        one_minus_p = -jnp.expm1(log_p)
    else:
        p = clip_probabilities(renormalize(x))
        log_p, one_minus_p = jnp.log(p), 1.0 - p
    weights = alpha * power(one_minus_p, gamma) * targets
    losses = -weighted_sum_of_logs(weights, log_p)
    return losses.astype(y_pred.dtype)


def sparse_categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
    z_loss: float = 0.0,
) -> jax.Array:
    """Categorical cross-entropy with integer labels.

    ``loss = -log p[y_true] + z_loss * logsumexp(y_pred, axis) ** 2``. From logits,
    ``log p[k] = y_pred[k] - logsumexp(y_pred)`` (max-shifted; ``-inf`` logits mask classes).
    From probabilities, ``p = y_pred / sum(y_pred, axis)`` clipped to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient, unlike Keras). Positions whose label equals ``ignore_class``
    give 0, as do labels outside ``[0, num_classes)`` (Keras's one-hot gives the same). The
    class :class:`SparseCategoricalCrossentropy` also drops ignored positions from the mean.

    Args:
        y_true: integer labels, ``y_pred``'s shape without ``axis`` (a size-1 class axis is
            squeezed). Integer labels are used as they are, never through a float.
        y_pred: logits or probabilities, shape ``(batch, ..., num_classes)``.
        from_logits: whether ``y_pred`` holds logits.
        ignore_class: optional label id whose positions give loss 0.
        axis: the class axis.
        z_loss: weight of the ``logsumexp ** 2`` penalty, ``>= 0``; needs logits.

    Returns:
        Per-sample losses of ``y_true``'s (squeezed) shape, in ``y_pred``'s dtype.

    References:
        Goodfellow, Bengio & Courville (2016), *Deep Learning*, MIT Press, §6.2.2 (softmax
        units for multinoulli outputs); z-loss: Chowdhery et al. (2022), "PaLM: Scaling
        Language Modeling with Pathways", arXiv:2204.02311. Keras 3,
        ``keras.losses.sparse_categorical_crossentropy``.

    Examples:
        >>> loss = sparse_categorical_crossentropy([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
        >>> [round(float(v), 4) for v in loss]
        [0.0513, 2.3026]
        >>> logits = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> loss = sparse_categorical_crossentropy(
        ...     [2, -1], logits, from_logits=True, ignore_class=-1
        ... )
        >>> [round(float(v), 4) for v in loss]
        [0.4076, 0.0]
    """
    check_z_loss(z_loss, from_logits)
    check_ignore_class(ignore_class)
    check_axis(axis, "sparse_categorical_crossentropy", allow_tuple=False)
    y_pred = as_float_array(y_pred, "y_pred")
    axis = normalize_axis(axis, max(y_pred.ndim, 1))
    labels = sparse_labels(y_true, y_pred, axis, "sparse_categorical_crossentropy")
    x = classes_last(y_pred, axis)
    labels = guard_labels_in_range(labels, x.shape[-1], "y_true", ignore=ignore_class)
    valid = valid_labels(labels, x.shape[-1], ignore_class)
    if from_logits:
        xent, lse = softmax_xent_sparse(x, labels)
        losses = add_z_loss(xent, lse, z_loss)
    else:
        p = upcast(guard_unit_interval(x, "y_pred"))
        p_label = safe_divide(take_class(p, labels), jnp.sum(p, axis=-1))
        losses = -jnp.log(clip_probabilities(p_label))
    return jnp.where(valid, losses, 0.0).astype(y_pred.dtype)


class CategoricalCrossentropy(Loss):
    """Categorical cross-entropy on one-hot or soft targets; see :func:`categorical_crossentropy`.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"categorical_crossentropy"``.
        dtype: compute and result dtype.
        z_loss: weight of the PaLM ``logsumexp(logits) ** 2`` penalty (needs logits).

    Examples:
        >>> y_true = [[0, 1, 0], [0, 0, 1]]
        >>> y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        >>> cce = CategoricalCrossentropy()
        >>> print(f"{float(cce(y_true, y_pred)):.3f}")
        1.177
        >>> print(f"{float(cce(y_true, y_pred, sample_weight=jnp.array([0.3, 0.7]))):.3f}")
        0.814
        >>> print(f"{float(CategoricalCrossentropy(reduction='sum')(y_true, y_pred)):.3f}")
        2.354
    """

    function = categorical_crossentropy

    def __init__(
        self,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "categorical_crossentropy",
        dtype: DTypeLike | None = None,
        z_loss: float = 0.0,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = check_axis(axis, self.name, allow_tuple=False)
        self.z_loss = check_z_loss(z_loss, self.from_logits)


class CategoricalFocalCrossentropy(Loss):
    """Alpha-balanced categorical focal cross-entropy; see :func:`categorical_focal_crossentropy`.

    Args:
        alpha: scalar, or a list of one weight per class (default 0.25).
        gamma: focusing parameter, ``>= 0`` (default 2).
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"categorical_focal_crossentropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        >>> y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        >>> cfce = CategoricalFocalCrossentropy()
        >>> print(f"{float(cfce(y_true, y_pred)):.4f}")
        0.2332
        >>> print(f"{float(cfce(y_true, y_pred, sample_weight=jnp.array([0.3, 0.7]))):.4f}")
        0.1632
        >>> CategoricalFocalCrossentropy(alpha=[0.2, 0.3, 0.5]).get_config()["alpha"]
        [0.2, 0.3, 0.5]
    """

    function = categorical_focal_crossentropy

    def __init__(
        self,
        alpha: Any = 0.25,
        gamma: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "categorical_focal_crossentropy",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = check_alpha(alpha)
        self.gamma = check_gamma(gamma)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = check_axis(axis, self.name, allow_tuple=False)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        # Per-class weights are stored as a tuple (hashable) and reported as a list, as Keras.
        if isinstance(self.alpha, tuple):
            config["alpha"] = list(self.alpha)
        return config


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels; see :func:`sparse_categorical_crossentropy`.

    Positions labelled ``ignore_class`` give loss 0 and are left out of the reduction's
    divisor (as in Keras); a batch whose labels are all ignored gives 0.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        ignore_class: optional label id to ignore (e.g. -1 or 255 for padding).
        reduction: see :class:`~losses_jax.Loss`.
        axis: the class axis.
        name: default ``"sparse_categorical_crossentropy"``.
        dtype: compute and result dtype; integer labels stay integer whatever it is.
        z_loss: weight of the PaLM ``logsumexp(logits) ** 2`` penalty (needs logits).

    Examples:
        >>> y_pred = [[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]]
        >>> scce = SparseCategoricalCrossentropy()
        >>> print(f"{float(scce([0, 1, 2], y_pred)):.4f}")  # Keras's docs: 0.3239 (truncated)
        0.3240
        >>> logits = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> scce = SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
        >>> print(f"{float(scce([2, -1], logits)):.4f}")  # the mean over the one valid label
        0.4076
    """

    function = sparse_categorical_crossentropy
    labels_are_ids = True

    def __init__(
        self,
        from_logits: bool = False,
        ignore_class: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        axis: int = -1,
        name: str | None = "sparse_categorical_crossentropy",
        dtype: DTypeLike | None = None,
        z_loss: float = 0.0,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.ignore_class = check_ignore_class(ignore_class)
        self.axis = check_axis(axis, self.name, allow_tuple=False)
        self.z_loss = check_z_loss(z_loss, self.from_logits)

    def loss_mask(self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array) -> Any:
        if self.ignore_class is None:
            return None
        axis = normalize_axis(self.axis, max(jnp.ndim(y_pred), 1))
        return sparse_labels(y_true, y_pred, axis, self.name) != self.ignore_class
