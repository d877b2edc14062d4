"""Cross-entropies with a term in the true class's probability ``p_t`` added or multiplied in.

:func:`categorical_focal_crossentropy` multiplies each class's term by ``alpha * (1 - p) **
gamma`` (Lin et al., 2017), :func:`poly_crossentropy` adds ``epsilon * (1 - p_t)`` (Leng et
al., 2022): both are the leading terms of the polynomial expansion of the cross-entropy in
``1 - p_t``. Targets, smoothing and the class axis are those of
:mod:`losses_jax.losses.categorical`. From logits, ``log p`` is the max-shifted log-softmax and
``1 - p = -expm1(log p)``; from probabilities, ``p = y_pred / sum(y_pred)`` clipped to
``[1e-7, 1 - 1e-7]`` with a straight-through gradient. Logs and sums run in float32 for
float16/bfloat16 inputs.
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
    upcast,
    weighted_sum_of_logs,
)
from losses_jax._targets import (
    categorical_inputs,
    check_alpha,
    check_gamma,
    check_label_smoothing,
    renormalize,
)
from losses_jax._validation import check_axis, check_bool, check_number
from losses_jax.base import Loss

__all__ = [
    "CategoricalFocalCrossentropy",
    "PolyCrossentropy",
    "categorical_focal_crossentropy",
    "poly_crossentropy",
]


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
    targets, y_pred = categorical_inputs(
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


def poly_crossentropy(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    epsilon: float = 2.0,
    from_logits: bool = False,
    label_smoothing: float = 0.0,
    axis: int = -1,
) -> jax.Array:
    """Poly-1 cross-entropy (Leng et al., 2022): ``CE + epsilon * (1 - p_t)``.

    ``loss = -sum(t * log p, axis) + epsilon * sum(t * (1 - p), axis)`` with smoothed targets
    ``t = y_true * (1 - label_smoothing) + label_smoothing / num_classes``; for a one-hot
    ``y_true`` the second sum is ``1 - p_t``, ``p_t`` the probability of the true class. This is
    optax's ``poly_loss_cross_entropy(logits, smooth_labels(y_true, label_smoothing), epsilon)``
    (``p_t`` is taken against the smoothed targets, as there). From logits, ``log p`` is the
    max-shifted log-softmax and ``1 - p = -expm1(log p)``; from probabilities,
    ``p = y_pred / sum(y_pred, axis)`` and the cross-entropy clips it to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient) while ``1 - p`` does not.

    Args:
        y_true: one-hot (or soft) targets, shape ``(batch, ..., num_classes)``.
        y_pred: logits or probabilities of the same shape.
        epsilon: weight of the ``1 - p_t`` term (default 2.0, optax's and the paper's ImageNet
            value; the paper uses -1 for detection); any real, may be a traced array.
        from_logits: whether ``y_pred`` holds logits (optax takes logits).
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    References:
        Leng, Xu, Qi, Wang, Liu, Huang, Shlens & Chen (2022), "PolyLoss: A Polynomial
        Expansion Perspective of Classification Loss Functions", ICLR. optax,
        ``optax.poly_loss_cross_entropy``.

    Examples:
        >>> loss = poly_crossentropy([[0, 1]], [[0.5, 0.5]], epsilon=1.0)
        >>> print(f"{float(loss[0]):.4f}")  # log 2 + 0.5
        1.1931
    """
    check_number(epsilon, "epsilon")
    targets, y_pred = categorical_inputs(y_true, y_pred, label_smoothing, axis, "poly_crossentropy")
    x = upcast(y_pred)
    if from_logits:
        log_p = log_softmax(x)
        one_minus_p = -jnp.expm1(log_p)
        xent = -weighted_sum_of_logs(targets, log_p)
    else:
        p = renormalize(x)
        one_minus_p = 1.0 - p
        xent = -jnp.sum(targets * jnp.log(clip_probabilities(p)), axis=-1)
    return (xent + epsilon * jnp.sum(targets * one_minus_p, axis=-1)).astype(y_pred.dtype)


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


class PolyCrossentropy(Loss):
    """Poly-1 cross-entropy ``CE + epsilon * (1 - p_t)``; see :func:`poly_crossentropy`.

    Args:
        epsilon: weight of the ``1 - p_t`` term (default 2.0, as optax).
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        reduction: see :class:`~losses_jax.Loss`.
        name: default ``"poly_crossentropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true = [[0, 1, 0], [0, 0, 1]]
        >>> y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        >>> print(f"{float(PolyCrossentropy(epsilon=1.0)(y_true, y_pred)):.4f}")
        1.6519
    """

    function = poly_crossentropy

    def __init__(
        self,
        epsilon: float = 2.0,
        from_logits: bool = False,
        label_smoothing: float = 0.0,
        axis: int = -1,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "poly_crossentropy",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.epsilon = check_number(epsilon, "epsilon")
        self.from_logits = check_bool(from_logits, "from_logits")
        self.label_smoothing = check_label_smoothing(label_smoothing)
        self.axis = check_axis(axis, self.name, allow_tuple=False)
