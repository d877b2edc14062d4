"""Categorical cross-entropies on dense targets and integer labels, with PyTorch's class weights.

From logits, the log-softmax is max-shifted (a ``-inf`` logit masks a class: finite loss, zero
gradient there) and the cross-entropy goes through the kernels of
:mod:`losses_jax._softmax_xent`. From probabilities, ``p = y_pred / sum(y_pred)`` is clipped to
``[1e-7, 1 - 1e-7]`` exactly like Keras, with a straight-through gradient. Logs and sums run in
float32 for float16/bfloat16 inputs; integer labels are never cast to a float.

``class_weight`` is PyTorch's ``weight=`` of ``cross_entropy``: each class's term is scaled by
its weight, and ``reduction="mean_with_sample_weight"`` divides by the summed weights of the
target classes (times the sample weights), which is PyTorch's ``reduction="mean"`` with class
ids. :func:`smooth_labels` is optax's helper of the same name. The focal and poly-1
cross-entropies are in :mod:`losses_jax.losses.modulated_crossentropy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    accumulation_dtype,
    clip_probabilities,
    safe_divide,
    upcast,
)
from losses_jax._softmax_xent import add_z_loss, softmax_xent_dense, softmax_xent_sparse, take_class
from losses_jax._targets import (
    categorical_inputs,
    check_class_weight,
    check_ignore_class,
    check_label_smoothing,
    check_z_loss,
    classes_last,
    dense_inputs,
    listed_weights,
    per_class_weights,
    renormalize,
    sparse_labels,
    valid_labels,
    weights_of_labels,
)
from losses_jax._validation import (
    as_float_array,
    check_axis,
    check_bool,
    check_number,
    normalize_axis,
)
from losses_jax.base import Loss
from losses_jax.checks import guard_labels_in_range, guard_unit_interval

__all__ = [
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "categorical_crossentropy",
    "smooth_labels",
    "sparse_categorical_crossentropy",
]


def categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
    z_loss: float = 0.0,
    class_weight: ArrayLike | Sequence[float] | None = None,
) -> jax.Array:
    """Categorical cross-entropy between one-hot (or soft) targets and predictions.

    ``loss = -sum(w * t * log p, axis) + z_loss * logsumexp(y_pred, axis) ** 2`` with smoothed
    targets ``t = y_true * (1 - label_smoothing) + label_smoothing / num_classes`` and
    ``w = class_weight`` (1 when not given; the z-loss is not weighted). From logits,
    ``log p = y_pred - logsumexp(y_pred)`` (max-shifted; a ``-inf`` logit masks a class). From
    probabilities, ``p = y_pred / sum(y_pred, axis)`` clipped to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient, unlike Keras). ``z_loss`` (PaLM) needs ``from_logits=True``.
    With ``class_weight`` this is PyTorch's ``cross_entropy(logits, probabilities, weight=w,
    label_smoothing=label_smoothing, reduction="none")``.

    Args:
        y_true: targets, shape ``(batch, ..., num_classes)`` (classes on ``axis``).
        y_pred: logits or probabilities of the same shape.
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        z_loss: weight of the ``logsumexp ** 2`` penalty, ``>= 0``.
        class_weight: optional ``num_classes`` weights ``>= 0`` (PyTorch's ``weight``); may be
            a traced array.

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
        >>> loss = categorical_crossentropy([[0, 1]], [[0.5, 0.5]], class_weight=[1.0, 3.0])
        >>> print(f"{float(loss[0]):.4f}")  # 3 log 2
        2.0794
    """
    check_z_loss(z_loss, from_logits)
    targets, y_pred = categorical_inputs(
        y_true, y_pred, label_smoothing, axis, "categorical_crossentropy"
    )
    weights = per_class_weights(
        class_weight, "class_weight", classes=y_pred.shape[-1], ndim=1, axis=0, dtype=targets.dtype
    )
    if weights is not None:
        targets = weights * targets  # the kernel's -sum(t * log p) is then -sum(w t log p)
    if from_logits:
        # The logits go in their own dtype: the VJP saves them, not a float32 copy.
        xent, lse = softmax_xent_dense(y_pred, targets)
        losses = add_z_loss(xent, lse, z_loss)
    else:
        log_p = jnp.log(clip_probabilities(renormalize(upcast(y_pred))))
        losses = -jnp.sum(targets * log_p, axis=-1)
    return losses.astype(y_pred.dtype)


def sparse_categorical_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = False,
    ignore_class: int | None = None,
    axis: int = -1,
    z_loss: float = 0.0,
    class_weight: ArrayLike | Sequence[float] | None = None,
) -> jax.Array:
    """Categorical cross-entropy with integer labels.

    ``loss = -w[y_true] * log p[y_true] + z_loss * logsumexp(y_pred, axis) ** 2`` with
    ``w = class_weight`` (1 when not given; the z-loss is not weighted): PyTorch's
    ``cross_entropy(logits, labels, weight=w, reduction="none")``. From logits,
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
        class_weight: optional ``num_classes`` weights ``>= 0`` (PyTorch's ``weight``); may be
            a traced array.

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
        >>> loss = sparse_categorical_crossentropy([1], [[0.5, 0.5]], class_weight=[1.0, 3.0])
        >>> print(f"{float(loss[0]):.4f}")  # 3 log 2
        2.0794
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
    dtype = accumulation_dtype(x.dtype)
    weights = per_class_weights(
        class_weight, "class_weight", classes=x.shape[-1], ndim=1, axis=0, dtype=dtype
    )
    if from_logits:
        xent, lse = softmax_xent_sparse(x, labels)
    else:
        p = upcast(guard_unit_interval(x, "y_pred"))
        p_label = safe_divide(take_class(p, labels), jnp.sum(p, axis=-1))
        xent, lse = -jnp.log(clip_probabilities(p_label)), None
    if weights is not None:
        xent = weights_of_labels(weights, labels) * xent
    losses = xent if lse is None else add_z_loss(xent, lse, z_loss)
    return jnp.where(valid, losses, 0.0).astype(y_pred.dtype)


def smooth_labels(labels: ArrayLike, alpha: float, axis: int = -1) -> jax.Array:
    """Label smoothing: ``(1 - alpha) * labels + alpha / num_classes`` along ``axis``.

    The smoothing every ``label_smoothing`` option of this library applies to its targets, as
    a function (optax's ``smooth_labels``).

    Args:
        labels: one-hot (or soft) labels, shape ``(..., num_classes)`` (classes on ``axis``).
        alpha: the smoothing factor in ``[0, 1]``; may be a traced array.
        axis: the class axis.

    Returns:
        The smoothed labels, ``labels``' shape and floating dtype (float32 for integers).

    References:
        Szegedy, Vanhoucke, Ioffe, Shlens & Wojna (2016), "Rethinking the Inception
        Architecture for Computer Vision", CVPR; Müller, Kornblith & Hinton (2019), "When Does
        Label Smoothing Help?", NeurIPS. optax, ``optax.smooth_labels``.

    Examples:
        >>> smooth_labels(jnp.array([[0.0, 1.0, 0.0, 0.0]]), 0.2).tolist()
        [[0.05000000074505806, 0.8500000238418579, 0.05000000074505806, 0.05000000074505806]]
    """
    check_number(alpha, "alpha", low=0.0, high=1.0)
    check_axis(axis, "smooth_labels", allow_tuple=False)
    labels = as_float_array(labels, "labels")
    if labels.ndim == 0:
        raise ValueError("smooth_labels: `labels` needs a class axis; received a scalar.")
    return (1.0 - alpha) * labels + alpha / labels.shape[normalize_axis(axis, labels.ndim)]


class CategoricalCrossentropy(Loss):
    """Categorical cross-entropy on one-hot or soft targets; see :func:`categorical_crossentropy`.

    With ``class_weight``, each sample counts ``sum(class_weight * y_true)`` (the weight of its
    class, for one-hot targets) in the divisor of ``reduction="mean_with_sample_weight"``: on
    one-hot targets that is PyTorch's ``cross_entropy(logits, labels, weight=class_weight,
    label_smoothing=...)`` with ``reduction="mean"``. PyTorch's ``"mean"`` on probability
    targets divides by the batch size: ``"sum_over_batch_size"`` here.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"categorical_crossentropy"``.
        dtype: compute and result dtype.
        z_loss: weight of the PaLM ``logsumexp(logits) ** 2`` penalty (needs logits).
        class_weight: optional list of ``num_classes`` weights ``>= 0`` (PyTorch's ``weight``).

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
        >>> weighted = CategoricalCrossentropy(
        ...     class_weight=[1.0, 1.0, 3.0], reduction="mean_with_sample_weight"
        ... )
        >>> print(f"{float(weighted(y_true, y_pred)):.3f}")  # (0.051 + 3 * 2.303) / (1 + 3)
        1.740
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
        class_weight: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = check_axis(axis, self.name, allow_tuple=False)
        self.z_loss = check_z_loss(z_loss, self.from_logits)
        self.class_weight = check_class_weight(class_weight, "class_weight")

    def get_config(self) -> dict[str, Any]:
        return listed_weights(super().get_config(), "class_weight")

    def divisor_weights(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> Any:
        """``sum(class_weight * y_true)`` per sample, or None without ``class_weight``."""
        if self.class_weight is None:
            return None
        # The unsmoothed targets: PyTorch divides by the weights of the labels themselves.
        targets, y_pred = dense_inputs(y_true, y_pred, self.name, same_shape=True)
        targets = classes_last(targets, normalize_axis(self.axis, y_pred.ndim))
        return jnp.sum(targets * jnp.asarray(self.class_weight, targets.dtype), axis=-1)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy with integer labels; see :func:`sparse_categorical_crossentropy`.

    Positions labelled ``ignore_class`` give loss 0 and are left out of the reduction's
    divisor (as in Keras); a batch whose labels are all ignored gives 0. With
    ``class_weight``, ``reduction="mean_with_sample_weight"`` divides by the summed class
    weights of the (not ignored) labels, times the sample weights: PyTorch's
    ``cross_entropy(logits, labels, weight=class_weight, ignore_index=ignore_class)`` with
    ``reduction="mean"``.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        ignore_class: optional label id to ignore (e.g. -1 or 255 for padding).
        reduction: see :class:`~losses_jax.Loss`.
        axis: the class axis.
        name: default ``"sparse_categorical_crossentropy"``.
        dtype: compute and result dtype; integer labels stay integer whatever it is.
        z_loss: weight of the PaLM ``logsumexp(logits) ** 2`` penalty (needs logits).
        class_weight: optional list of ``num_classes`` weights ``>= 0`` (PyTorch's ``weight``).

    Examples:
        >>> y_pred = [[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]]
        >>> scce = SparseCategoricalCrossentropy()
        >>> print(f"{float(scce([0, 1, 2], y_pred)):.4f}")  # Keras's docs: 0.3239 (truncated)
        0.3240
        >>> logits = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> scce = SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
        >>> print(f"{float(scce([2, -1], logits)):.4f}")  # the mean over the one valid label
        0.4076
        >>> scce = SparseCategoricalCrossentropy(
        ...     class_weight=[1.0, 3.0], reduction="mean_with_sample_weight"
        ... )
        >>> print(f"{float(scce([0, 1], [[0.5, 0.5], [0.5, 0.5]])):.4f}")  # 4 log 2 / 4
        0.6931
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
        class_weight: Any = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.ignore_class = check_ignore_class(ignore_class)
        self.axis = check_axis(axis, self.name, allow_tuple=False)
        self.z_loss = check_z_loss(z_loss, self.from_logits)
        self.class_weight = check_class_weight(class_weight, "class_weight")

    def get_config(self) -> dict[str, Any]:
        return listed_weights(super().get_config(), "class_weight")

    def divisor_weights(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> Any:
        """The class weight of each valid label (0 for ignored ones), or None without
        ``class_weight``."""
        if self.class_weight is None:
            return None
        y_pred = as_float_array(y_pred, "y_pred")
        axis = normalize_axis(self.axis, max(y_pred.ndim, 1))
        labels = sparse_labels(y_true, y_pred, axis, self.name)
        valid = valid_labels(labels, y_pred.shape[axis], self.ignore_class)
        weights = jnp.asarray(self.class_weight, accumulation_dtype(self.dtype))
        return jnp.where(valid, weights_of_labels(weights, labels), 0.0)

    def loss_mask(
        self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array, **inputs: Any
    ) -> Any:
        if self.ignore_class is None:
            return None
        axis = normalize_axis(self.axis, max(jnp.ndim(y_pred), 1))
        return sparse_labels(y_true, y_pred, axis, self.name) != self.ignore_class
