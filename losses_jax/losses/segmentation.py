"""Segmentation and similarity losses: Dice, Tversky and Circle (Keras 3 semantics and numbers).

Dice and Tversky sum over ``axis`` (default: every axis, one number for the whole batch) and
add ``1e-7`` to the denominator, so all-zero masks give a loss of 1 with a finite gradient.
Generalized Dice (optax's semantics) weighs per-class Dice losses by inverse class frequency.
Circle is a metric-learning loss on integer labels and L2-normalized embeddings.

Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    EPSILON,
    accumulation_dtype,
    log_softmax,
    logistic_terms,
    logsumexp,
    prepare_pair,
    safe_divide,
    upcast,
)
from losses_jax._sharding import replicated
from losses_jax._validation import (
    as_float_array,
    as_label_array,
    check_axis,
    check_bool,
    check_number,
    resolve_axis,
)
from losses_jax.base import Loss
from losses_jax.checks import guard_unit_interval

__all__ = [
    "Circle",
    "Dice",
    "GeneralizedDice",
    "Tversky",
    "circle",
    "dice",
    "generalized_dice",
    "tversky",
]


def _overlap_sums(y_true, y_pred, axis, loss_name: str):
    """``(sum(t * p), sum(t * (1 - p)), sum((1 - t) * p), sum(t) + sum(p))`` over ``axis``.

    Both inputs are broadcast to one shape first, so each element is counted once on both
    sides of the ratio.
    """
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, loss_name)
    axis = resolve_axis(axis, y_pred.shape, loss_name)
    intersection = jnp.sum(y_true * y_pred, axis=axis)
    missed = jnp.sum(y_true * (1.0 - y_pred), axis=axis)
    spurious = jnp.sum((1.0 - y_true) * y_pred, axis=axis)
    total = jnp.sum(y_true, axis=axis) + jnp.sum(y_pred, axis=axis)
    return intersection, missed, spurious, total, out_dtype


def dice(y_true: ArrayLike, y_pred: ArrayLike, axis: Any = None) -> jax.Array:
    """Dice loss: ``1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred) + 1e-7)``.

    The sums run over ``axis``; ``axis=None`` sums over everything and returns a scalar.

    Args:
        y_true: target masks, shape ``(batch, d0, ..., dN)``.
        y_pred: predicted masks (probabilities), same shape or broadcastable to it.
        axis: int, tuple of ints or None: the axes summed over.

    Returns:
        Losses with ``axis`` removed (a scalar for ``axis=None``) in ``y_pred``'s floating
        dtype.

    References:
        Milletari, Navab & Ahmadi (2016), "V-Net: Fully Convolutional Neural Networks for
        Volumetric Medical Image Segmentation", 3DV. V-Net's denominator sums squares; this is
        Keras's form (``keras.losses.dice``), which sums the values.

    Examples:
        >>> y_true = jnp.array([[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]])
        >>> y_pred = jnp.array([[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]])
        >>> [round(float(v), 4) for v in dice(y_true, y_pred, axis=(1, 2, 3))]
        [0.5, 0.7576]
        >>> print(f"{float(dice(y_true, y_pred)):.4f}")
        0.6164
    """
    intersection, _, _, total, out_dtype = _overlap_sums(y_true, y_pred, axis, "dice")
    return (1.0 - 2.0 * intersection / (total + EPSILON)).astype(out_dtype)


def _check_weight(value: float, name: str) -> float:
    return check_number(value, name, low=0.0)


def tversky(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    alpha: float = 0.5,
    beta: float = 0.5,
    axis: Any = None,
) -> jax.Array:
    """Tversky loss: ``1 - tp / (tp + alpha * m + beta * s + 1e-7)``, summed over ``axis``.

    With ``t = y_true`` and ``p = y_pred``: ``tp = sum(t * p)``, ``m = sum(t * (1 - p))`` (the
    target mass the prediction misses) and ``s = sum((1 - t) * p)`` (predicted mass outside
    the target). These are Keras's terms exactly: Keras's docs call ``alpha``'s term the false
    positives, but its code (and this one) weighs the missed target mass with ``alpha``.
    ``alpha = beta = 0.5`` gives the Dice loss.

    Args:
        y_true: target masks, shape ``(batch, d0, ..., dN)``.
        y_pred: predicted masks (probabilities), same shape or broadcastable to it.
        alpha: non-negative weight of ``m`` (default 0.5).
        beta: non-negative weight of ``s`` (default 0.5).
        axis: int, tuple of ints or None: the axes summed over.

    Returns:
        Losses with ``axis`` removed (a scalar for ``axis=None``) in ``y_pred``'s floating
        dtype.

    References:
        Salehi, Erdogmus & Gholipour (2017), "Tversky Loss Function for Image Segmentation
        Using 3D Fully Convolutional Deep Networks", MLMI (MICCAI workshop). Keras 3,
        ``keras.losses.tversky``.

    Examples:
        >>> y_true = jnp.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 0, 1, 0], [0, 1, 0, 1]])
        >>> y_pred = jnp.array([[0, 1, 0, 1], [1, 0, 1, 1], [0, 1, 0, 1], [1, 0, 1, 1]])
        >>> print(f"{float(tversky(y_true, y_pred)):.4f}")
        0.7778
    """
    _check_weight(alpha, "alpha")
    _check_weight(beta, "beta")
    intersection, missed, spurious, _, out_dtype = _overlap_sums(y_true, y_pred, axis, "tversky")
    denominator = intersection + alpha * missed + beta * spurious + EPSILON
    return (1.0 - intersection / denominator).astype(out_dtype)


def _check_smooth(smooth: Any) -> Any:
    return check_number(smooth, "smooth", low=0.0)


def _class_probabilities(y_pred: jax.Array, from_logits: bool) -> jax.Array:
    """Softmax over the classes (sigmoid for one class) of logits; probabilities as given."""
    if not from_logits:
        return guard_unit_interval(y_pred, "y_pred")
    if y_pred.shape[-1] == 1:
        return logistic_terms(y_pred)[2]
    return jnp.exp(log_softmax(y_pred))  # exact zeros for -inf (masked) classes


def generalized_dice(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    from_logits: bool = True,
    smooth: float = 1.0,
    ignore_background: bool = False,
) -> jax.Array:
    """Generalized Dice loss with inverse squared class-frequency weights, per sample.

    With ``p`` the class probabilities, ``t`` the one-hot targets, sums ``I_c = sum(p t)``,
    ``P_c = sum(p)``, ``T_c = sum(t)`` over the spatial axes (all but the first and last) of
    each sample, and ``f_c = sum(t)`` over the whole batch::

        dice_c = 1 - (I_c + smooth) / ((P_c + T_c) / 2 + smooth)
        w_c = C * v_c / sum(v),   v_c = 1 / (f_c**2 + 1e-7)
        loss = mean_c(w_c * dice_c)

    Rare classes weigh more. The weights come from the whole ``y_true`` passed in (under
    :func:`jax.vmap`, from each mapped slice). ``ignore_background`` leaves class 0 out of the
    mean (the weights are still normalised over every class). With ``smooth = 0`` a class
    absent from a sample and its prediction has coefficient 0 (loss 1) instead of 0/0.

    This is optax's form (a weighted mean of per-class Dice losses), which the class's
    ``"sum_over_batch_size"`` reduction reproduces. Sudre et al.'s original is one ratio
    ``1 - 2 sum_c(w_c I_c) / sum_c(w_c (P_c + T_c))``.

    Args:
        y_true: one-hot (or soft) targets, shape ``(batch, d0, ..., dN, num_classes)``.
        y_pred: logits (``from_logits=True``, the default, as optax's ``apply_softmax``) or
            class probabilities, same shape. One class means sigmoid instead of softmax.
        from_logits: whether ``y_pred`` holds logits.
        smooth: non-negative smoothing added to both sides of each ratio (default 1); may be
            traced.
        ignore_background: whether class 0 is left out of the mean over classes.

    Returns:
        Losses of shape ``(batch,)`` in ``y_pred``'s floating dtype.

    References:
        Sudre, Li, Vercauteren, Ourselin & Cardoso (2017), "Generalised Dice Overlap as a Deep
        Learning Loss Function for Highly Unbalanced Segmentations", DLMIA (MICCAI workshop).
        optax, ``losses.multiclass_generalized_dice_loss(predictions, targets)`` (arguments
        in the other order; it returns the mean of these values).

    Examples:
        >>> y_true = jnp.array([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
        >>> y_pred = jnp.array([[[0.8, 0.2], [0.6, 0.4]], [[0.5, 0.5], [0.1, 0.9]]])
        >>> loss = generalized_dice(y_true, y_pred, from_logits=False)
        >>> [round(float(v), 4) for v in loss]
        [0.2188, 0.1394]
    """
    check_bool(from_logits, "from_logits")
    _check_smooth(smooth)
    check_bool(ignore_background, "ignore_background")
    y_pred = as_float_array(y_pred, "y_pred")
    y_true = as_float_array(y_true, "y_true", accumulation_dtype(y_pred.dtype))
    if y_true.shape != y_pred.shape or y_pred.ndim < 2:
        raise ValueError(
            f"generalized_dice: `y_true` (one-hot targets) and `y_pred` must have the same "
            f"shape (batch, ..., num_classes), of rank >= 2; received {tuple(y_true.shape)} "
            f"and {tuple(y_pred.shape)}. Class ids: one-hot encode them with "
            f"lj.to_categorical(y_true, num_classes)."
        )
    num_classes = y_pred.shape[-1]
    probabilities = _class_probabilities(upcast(y_pred), from_logits)
    spatial = tuple(range(1, y_pred.ndim - 1))
    intersection = jnp.sum(probabilities * y_true, axis=spatial)
    halved_total = 0.5 * (jnp.sum(probabilities, axis=spatial) + jnp.sum(y_true, axis=spatial))
    coefficient = safe_divide(intersection + smooth, halved_total + smooth)
    frequencies = jnp.sum(y_true, axis=(0, *spatial))
    inverse_squares = 1.0 / (jnp.square(frequencies) + EPSILON)
    weights = num_classes * inverse_squares / jnp.sum(inverse_squares)
    per_class = weights * (1.0 - coefficient)
    if ignore_background and num_classes > 1:
        per_class = per_class[:, 1:]
    return jnp.mean(per_class, axis=-1).astype(y_pred.dtype)


def _check_gamma(gamma: float) -> float:
    return check_number(gamma, "gamma", low=0.0, low_inclusive=False)


def _labels_and_embeddings(labels, embeddings, labels_name: str, embeddings_name: str):
    """Validated ``(labels (n,) int32, embeddings (n, d))`` for :func:`circle`."""
    labels = as_label_array(labels, labels_name)
    embeddings = as_float_array(embeddings, embeddings_name)
    if labels.ndim != 1:
        raise ValueError(
            f"circle: `{labels_name}` must be integer class labels of rank 1, shape (batch,); "
            f"received shape {tuple(labels.shape)}."
        )
    if embeddings.ndim != 2 or embeddings.shape[0] != labels.shape[0]:
        raise ValueError(
            f"circle: `{embeddings_name}` must have shape (batch, dim) with batch = "
            f"{labels.shape[0]} (the length of `{labels_name}`); received shape "
            f"{tuple(embeddings.shape)}."
        )
    return labels.astype(jnp.int32), embeddings


def _circle_pair_masks(labels, ref_labels, remove_diagonal: bool):
    """``(positive, negative)`` boolean ``(n, m)`` masks: same label (off-diagonal) / other."""
    same_label = labels[:, None] == ref_labels[None, :]
    positive = same_label
    if remove_diagonal:
        positive = positive & ~jnp.eye(labels.shape[0], ref_labels.shape[0], dtype=bool)
    return positive, ~same_label


def circle(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    ref_labels: ArrayLike | None = None,
    ref_embeddings: ArrayLike | None = None,
    remove_diagonal: bool = True,
    gamma: float = 80.0,
    margin: float = 0.4,
) -> jax.Array:
    """Circle loss (Sun et al., 2020) per query embedding.

    With cosine distances ``d = max(1 - y_pred @ ref_embeddings.T, 0)``, positive pairs
    ``P`` (same label; self-pairs removed if ``remove_diagonal``) and negative pairs ``N``::

        pos_logit = -gamma * max(margin + d, 0) * (margin - d)           on P
        neg_logit =  gamma * max(1 + margin - d, 0) * (1 - margin - d)   on N
        loss = softplus(logsumexp_P(pos_logit) + logsumexp_N(neg_logit))

    A query without a positive or without a negative pair has loss 0 (gradient 0). The
    embeddings are used as given: normalize them (e.g. a unit-norm layer) beforehand.

    Args:
        y_true: integer class labels, shape ``(batch,)`` (float labels are truncated to int).
        y_pred: L2-normalized embeddings, shape ``(batch, dim)``.
        ref_labels: labels of the reference embeddings, shape ``(num_ref,)`` (default
            ``y_true``).
        ref_embeddings: reference embeddings, shape ``(num_ref, dim)`` (default ``y_pred``).
        remove_diagonal: whether pair ``(i, i)`` is left out of the positives.
        gamma: positive scale of the logits (default 80).
        margin: relaxation margin (default 0.4).

    Returns:
        Losses of shape ``(batch,)`` in ``y_pred``'s floating dtype.

    References:
        Sun et al. (2020), "Circle Loss: A Unified Perspective of Pair Similarity
        Optimization", CVPR. Keras 3, ``keras.losses.circle``.

    Examples:
        >>> labels = jnp.array([0, 0, 1])
        >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
        >>> [round(float(v), 4) for v in circle(labels, embeddings, gamma=2.0, margin=0.25)]
        [0.6118, 1.0055, 0.0]
    """
    _check_gamma(gamma)
    check_number(margin, "margin")
    check_bool(remove_diagonal, "remove_diagonal")
    labels, queries = _labels_and_embeddings(y_true, y_pred, "y_true", "y_pred")
    out_dtype = queries.dtype
    acc_dtype = accumulation_dtype(out_dtype)
    if ref_labels is None and ref_embeddings is None:
        ref_labels, keys = labels, queries
    else:
        ref_labels, keys = _labels_and_embeddings(
            labels if ref_labels is None else ref_labels,
            queries if ref_embeddings is None else ref_embeddings,
            "ref_labels",
            "ref_embeddings",
        )
    if keys.shape[1] != queries.shape[1]:
        raise ValueError(
            f"circle: `y_pred` {tuple(queries.shape)} and `ref_embeddings` "
            f"{tuple(keys.shape)} must have the same embedding size."
        )
    # Every query meets every key: the keys are gathered, the rows keep the queries' sharding.
    ref_labels, keys = replicated(ref_labels), replicated(keys)
    similarity = jnp.matmul(
        queries.astype(acc_dtype),
        keys.astype(acc_dtype).T,
        precision=jax.lax.Precision.HIGHEST,
    )
    distance = jnp.maximum(1.0 - similarity, 0.0)
    positive, negative = _circle_pair_masks(labels, ref_labels, remove_diagonal)
    pos_weight = jnp.where(positive, jnp.maximum(margin + distance, 0.0), 0.0)
    neg_weight = jnp.where(negative, jnp.maximum(1.0 + margin - distance, 0.0), 0.0)
    pos_logits = -gamma * pos_weight * (margin - distance)
    neg_logits = gamma * neg_weight * ((1.0 - margin) - distance)
    total = logsumexp(jnp.where(positive, pos_logits, -jnp.inf), axis=1) + logsumexp(
        jnp.where(negative, neg_logits, -jnp.inf), axis=1
    )
    # No positive or no negative pair: logsumexp is -inf and the loss is exactly 0.
    defined = jnp.isfinite(total)
    loss = jnp.where(defined, jax.nn.softplus(jnp.where(defined, total, 0.0)), 0.0)
    return loss.astype(out_dtype)


class Dice(Loss):
    """Dice loss over ``axis``; see :func:`dice`.

    Args:
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.
        axis: int, tuple of ints or None (default: sum over everything).

    Examples:
        >>> y_true, y_pred = jnp.array([[1, 2], [1, 2]]), jnp.array([[4, 1], [6, 1]])
        >>> print(f"{float(Dice()(y_true, y_pred)):.4f}")
        -0.5556
    """

    function = dice

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "dice",
        axis: Any = None,
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.axis = check_axis(axis, "dice")


class Tversky(Loss):
    """Tversky loss over ``axis``; see :func:`tversky`.

    Args:
        alpha: non-negative weight of the missed target mass (default 0.5).
        beta: non-negative weight of the predicted mass outside the target (default 0.5).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.
        axis: int, tuple of ints or None (default: sum over everything).

    Examples:
        >>> y_true = jnp.array([[[[1.0], [1.0]], [[0.0], [0.0]]], [[[1.0], [1.0]], [[0.0], [0.0]]]])
        >>> y_pred = jnp.array([[[[0.0], [1.0]], [[0.0], [1.0]]], [[[0.4], [0.0]], [[0.0], [0.9]]]])
        >>> loss = Tversky(alpha=0.2, beta=0.8, axis=(1, 2, 3), reduction=None)
        >>> [round(float(v), 4) for v in loss(y_true, y_pred)]
        [0.5, 0.7222]
    """

    function = tversky

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "tversky",
        axis: Any = None,
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.alpha = _check_weight(alpha, "alpha")
        self.beta = _check_weight(beta, "beta")
        self.axis = check_axis(axis, "tversky")


class GeneralizedDice(Loss):
    """Generalized Dice loss with inverse squared class-frequency weights.

    See :func:`generalized_dice`. The default ``"sum_over_batch_size"`` reduction gives
    optax's ``multiclass_generalized_dice_loss``.

    Args:
        from_logits: whether ``y_pred`` holds logits (default True, as optax).
        smooth: non-negative smoothing of each ratio (default 1).
        ignore_background: whether class 0 is left out of the mean over classes.
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> y_true = jnp.array([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]])
        >>> y_pred = jnp.array([[[0.8, 0.2], [0.6, 0.4]], [[0.5, 0.5], [0.1, 0.9]]])
        >>> print(f"{float(GeneralizedDice(from_logits=False)(y_true, y_pred)):.4f}")
        0.1791
    """

    function = generalized_dice

    def __init__(
        self,
        from_logits: bool = True,
        smooth: float = 1.0,
        ignore_background: bool = False,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "generalized_dice",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = check_bool(from_logits, "from_logits")
        self.smooth = _check_smooth(smooth)
        self.ignore_background = check_bool(ignore_background, "ignore_background")


class Circle(Loss):
    """Circle loss on integer labels ``(batch,)`` and embeddings ``(batch, dim)``.

    See :func:`circle`. As in Keras, queries whose loss is 0 (no positive or no negative pair
    in the batch) are left out of the reduction: ``"sum_over_batch_size"`` divides by the
    number of queries with a positive loss. Float labels are converted straight to int32,
    never through the low-precision compute dtype.

    Args:
        gamma: positive scale of the logits (default 80).
        margin: relaxation margin (default 0.4).
        remove_diagonal: whether self-pairs are left out of the positives (default True).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> labels = jnp.array([0, 0, 1])
        >>> embeddings = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
        >>> print(f"{float(Circle(gamma=2.0, margin=0.25)(labels, embeddings)):.4f}")
        0.8086
    """

    function = circle
    labels_are_ids = True

    def __init__(
        self,
        gamma: float = 80.0,
        margin: float = 0.4,
        remove_diagonal: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "circle",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = _check_gamma(gamma)
        self.margin = check_number(margin, "margin")
        self.remove_diagonal = check_bool(remove_diagonal, "remove_diagonal")

    def loss_mask(
        self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array, **inputs: Any
    ) -> jax.Array:
        # Keras masks the per-query losses with `loss > 0`.
        return losses > 0
