"""Metric-learning losses: triplets (given or mined in the batch) and contrastive pairs.

:func:`triplet_margin` takes given triplets (PyTorch's ``triplet_margin_loss``; the class is
called ``loss(anchor, positive, negative=...)``). :func:`batch_hard_triplet` and
:func:`batch_semi_hard_triplet` mine the triplets among the whole batch from class ids
(``loss(labels, embeddings)``; TF Addons' ``triplet_hard_loss`` / ``triplet_semihard_loss``);
``where`` (keyword, one boolean per row) leaves padded rows out as anchors, positives and
negatives, and the classes take a call's ``mask=`` the same way. Under batch sharding with
explicit mesh axes the columns of the distance matrix are gathered, so mining sees the global
batch. :func:`contrastive_pair` is TF Addons' ``contrastive_loss`` on given distances.

Embeddings of any floating dtype are compared in float32 (or wider); results have the
embeddings' dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._embedding_batch import (
    BatchCoupledLoss,
    LabelledBatchLoss,
    class_ids,
    embedding_rows,
    per_anchor_share,
    valid_rows,
)
from losses_jax._numerics import l2_normalize, logistic_terms, prepare_pair, upcast
from losses_jax._sharding import replicated
from losses_jax._validation import as_float_array, check_bool, check_number
from losses_jax.base import Loss

__all__ = [
    "BatchHardTriplet",
    "BatchSemiHardTriplet",
    "ContrastivePair",
    "TripletMargin",
    "batch_hard_triplet",
    "batch_semi_hard_triplet",
    "contrastive_pair",
    "triplet_margin",
]

DISTANCE_METRICS = ("L2", "squared-L2", "angular")


def _hinge(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` with slope 1 at 0 (PyTorch's ``clamp_min``)."""
    return jnp.where(x >= 0, x, 0.0)


# --------------------------------------------------------------------------------------
# given triplets
# --------------------------------------------------------------------------------------
def _p_distance(a: jax.Array, b: jax.Array, p: Any, eps: Any) -> jax.Array:
    """PyTorch's ``pairwise_distance``: ``||a - b + eps||_p`` over the last axis, 0-safe and
    overflow-free (the difference is divided by its largest entry first, a constant)."""
    difference = a - b + eps
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(difference), axis=-1, keepdims=True))
    scale = jnp.where(scale > 0, scale, 1.0)
    total = jnp.sum(jnp.abs(difference / scale) ** p, axis=-1)
    safe = jnp.where(total > 0, total, 1.0)
    return jnp.where(total > 0, safe ** (1.0 / p), 0.0) * scale[..., 0]


def triplet_margin(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: Any = 1.0,
    p: Any = 2.0,
    eps: Any = 1e-6,
    swap: bool = False,
) -> jax.Array:
    """Triplet margin loss per triplet: ``max(d(a, p) - d(a, n) + margin, 0)``.

    ``d(u, v) = ||u - v + eps||_p`` (PyTorch's ``pairwise_distance``); with ``swap``,
    ``d(a, n)`` is replaced by ``min(d(a, n), d(p, n))`` (Balntas et al.'s distance swap).

    Args:
        anchor: shape ``(batch, dim)``.
        positive: same shape.
        negative: same shape.
        margin: the margin (default 1; traced allowed).
        p: the norm degree (> 0, default 2; traced allowed).
        eps: added to each difference (default 1e-6, PyTorch's; optax adds its ``eps`` to
            the ``p``-th power sum instead: the two agree with ``eps=0``).
        swap: use the distance swap (default False).

    Returns:
        Losses ``(batch,)`` in ``positive``'s floating dtype.

    References:
        Balntas, Riba, Ponsa & Mikolajczyk (2016), "Learning local feature descriptors with
        triplets and shallow convolutional neural networks", BMVC. PyTorch 2.13
        ``torch.nn.functional.triplet_margin_loss``; optax ``triplet_margin_loss``.

    Examples:
        >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[1.0, 0.0]])
        >>> [round(float(v), 4) for v in triplet_margin(a, p, n, eps=0.0)]
        [5.0]
    """
    check_number(margin, "margin")
    check_number(p, "p", low=0.0, low_inclusive=False)
    check_number(eps, "eps", low=0.0)
    check_bool(swap, "swap")
    anchor, positive, out_dtype = prepare_pair(anchor, positive, "triplet_margin", min_rank=1)
    negative = upcast(as_float_array(negative, "negative").astype(out_dtype))
    if negative.shape != positive.shape:
        raise ValueError(
            f"triplet_margin: `negative` must have the shape of `anchor` and `positive`; "
            f"received {tuple(negative.shape)} and {tuple(positive.shape)}."
        )
    to_positive = _p_distance(anchor, positive, p, eps)
    to_negative = _p_distance(anchor, negative, p, eps)
    if swap:
        to_negative = jnp.minimum(to_negative, _p_distance(positive, negative, p, eps))
    return _hinge(to_positive - to_negative + margin).astype(out_dtype)


# --------------------------------------------------------------------------------------
# mined triplets
# --------------------------------------------------------------------------------------
def _pairwise_distances(rows: jax.Array, columns: jax.Array, metric: str) -> jax.Array:
    """TF Addons' distances: the Gram form clamped at 0, with a zero-safe square root."""
    if metric == "angular":
        rows, columns = l2_normalize(rows), l2_normalize(columns)
        gram = jnp.einsum("id,jd->ij", rows, columns, preferred_element_type=rows.dtype)
        return jnp.maximum(1.0 - gram, 0.0)
    gram = jnp.einsum("id,jd->ij", rows, columns, preferred_element_type=rows.dtype)
    squared = (
        jnp.sum(jnp.square(rows), axis=1)[:, None]
        + jnp.sum(jnp.square(columns), axis=1)[None, :]
        - 2.0 * gram
    )
    squared = jnp.maximum(squared, 0.0)
    positive = squared > 0
    if metric == "L2":
        squared = jnp.sqrt(jnp.where(positive, squared, 1.0))
    distances = jnp.where(positive, squared, 0.0)
    return jnp.where(jnp.eye(*distances.shape, dtype=bool), 0.0, distances)


def _mined_batch(labels, embeddings, where, metric: str, loss_name: str):
    """``(distances (B, B), same-label pairs, valid pairs, valid rows, valid columns, dtype)``."""
    if metric not in DISTANCE_METRICS:
        raise ValueError(
            f"{loss_name}: `distance_metric` must be one of {DISTANCE_METRICS}; received "
            f"{metric!r}."
        )
    embeddings = embedding_rows(embeddings, "embeddings", loss_name)
    labels = class_ids(labels, embeddings, loss_name)
    valid = valid_rows(where, embeddings.shape[0], loss_name)
    rows = upcast(embeddings)
    distances = _pairwise_distances(rows, replicated(rows), metric)
    valid_columns = replicated(valid)[None, :]
    same = labels[:, None] == replicated(labels)[None, :]
    pair_valid = valid[:, None] & valid_columns
    return distances, same, pair_valid, valid, valid_columns, embeddings.dtype


def _masked_maximum(distances, mask, valid_columns):
    """TF Addons' ``_masked_maximum``: the row's minimum where ``mask`` is empty."""
    low = jnp.min(
        jnp.where(valid_columns, distances, jnp.inf), axis=1, keepdims=True, initial=jnp.inf
    )
    low = jnp.where(jnp.isfinite(low), low, 0.0)
    return jnp.max(jnp.where(mask, distances - low, 0.0), axis=1, initial=0.0) + low[:, 0]


def _masked_minimum(distances, mask, valid_columns):
    """TF Addons' ``_masked_minimum``: the row's maximum where ``mask`` is empty."""
    high = jnp.max(
        jnp.where(valid_columns, distances, -jnp.inf), axis=1, keepdims=True, initial=-jnp.inf
    )
    high = jnp.where(jnp.isfinite(high), high, 0.0)
    return jnp.min(jnp.where(mask, distances - high, 0.0), axis=1, initial=0.0) + high[:, 0]


def _check_metric(distance_metric: str) -> str:
    if distance_metric not in DISTANCE_METRICS:
        raise ValueError(
            f"`distance_metric` must be one of {DISTANCE_METRICS}; received {distance_metric!r}."
        )
    return distance_metric


def batch_hard_triplet(
    labels: ArrayLike,
    embeddings: ArrayLike,
    *,
    margin: Any = 1.0,
    soft: bool = False,
    distance_metric: str = "L2",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Batch-hard triplet loss per anchor: ``max(d(a, p*) - d(a, n*) + margin, 0)``.

    ``p*`` is the anchor's farthest positive (same label, not itself), ``n*`` its nearest
    negative, both mined among every row of the batch; ``soft`` uses
    ``softplus(d(a, p*) - d(a, n*))`` instead. As in TF Addons, an anchor without positives
    takes its nearest (valid) distance, and one without negatives its farthest.

    Args:
        labels: class ids, shape ``(batch,)``.
        embeddings: shape ``(batch, dim)``.
        margin: the margin (default 1; traced allowed; unused when ``soft``).
        soft: the soft-margin form (default False).
        distance_metric: ``"L2"`` (default), ``"squared-L2"`` or ``"angular"`` (``1 - cos``).
        where: optional ``(batch,)`` booleans; rows outside it are left out entirely.

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype.

    References:
        Hermans, Beyer & Leibe (2017), "In Defense of the Triplet Loss for Person
        Re-Identification", arXiv:1703.07737. TF Addons ``triplet_hard_loss``.

    Examples:
        >>> e = jnp.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0]])
        >>> loss = batch_hard_triplet(jnp.array([0, 0, 1, 1]), e, margin=2.0)
        >>> [round(float(v), 4) for v in loss]
        [1.0, 0.7639, 1.0, 0.0]
    """
    check_number(margin, "margin")
    check_bool(soft, "soft")
    distances, same, pair_valid, valid, valid_columns, out_dtype = _mined_batch(
        labels, embeddings, where, distance_metric, "batch_hard_triplet"
    )
    positive = same & ~jnp.eye(*distances.shape, dtype=bool) & pair_valid
    hardest_positive = _masked_maximum(distances, positive, valid_columns)
    hardest_negative = _masked_minimum(distances, ~same & pair_valid, valid_columns)
    gap = hardest_positive - hardest_negative
    losses = logistic_terms(gap)[0] if soft else _hinge(gap + margin)
    return jnp.where(valid, losses, 0.0).astype(out_dtype)


def batch_semi_hard_triplet(
    labels: ArrayLike,
    embeddings: ArrayLike,
    *,
    margin: Any = 1.0,
    distance_metric: str = "L2",
    where: ArrayLike | None = None,
) -> jax.Array:
    """Batch semi-hard triplet loss per anchor, over its positive pairs.

    For each positive pair ``(a, p)`` the negative is the nearest ``n`` with
    ``d(a, n) > d(a, p)`` (semi-hard), or, when there is none, the anchor's farthest negative;
    the pair costs ``max(margin + d(a, p) - d(a, n), 0)``. Each anchor's sum over its pairs is
    divided by the batch's mean number of positive pairs per anchor (over anchors with any), so
    the mean over anchors with positives (the class's default reduction) is TF Addons' mean
    over positive pairs. Negatives are found by sorting each row: ``O(B² log B)`` work.

    Args:
        labels: class ids, shape ``(batch,)``.
        embeddings: shape ``(batch, dim)``.
        margin: the margin (default 1; traced allowed).
        distance_metric: ``"L2"`` (default), ``"squared-L2"`` or ``"angular"``.
        where: optional ``(batch,)`` booleans; rows outside it are left out entirely.

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype.

    References:
        Schroff, Kalenichenko & Philbin (2015), "FaceNet: A Unified Embedding for Face
        Recognition and Clustering", CVPR. TF Addons ``triplet_semihard_loss``.

    Examples:
        >>> e = jnp.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0]])
        >>> loss = batch_semi_hard_triplet(jnp.array([0, 0, 1, 1]), e, margin=2.0)
        >>> [round(float(v), 4) for v in loss]
        [1.0, 0.7639, 1.0, 0.0]
    """
    check_number(margin, "margin")
    distances, same, pair_valid, _, valid_columns, out_dtype = _mined_batch(
        labels, embeddings, where, distance_metric, "batch_semi_hard_triplet"
    )
    positive = same & ~jnp.eye(*distances.shape, dtype=bool) & pair_valid
    negative = ~same & pair_valid
    # Sorting (and its derivative) needs whole rows on one device under explicit mesh axes.
    distances = replicated(distances)
    negative, positive = replicated(negative), replicated(positive)
    ordered = jnp.sort(jnp.where(negative, distances, jnp.inf), axis=1)
    # Index of the first negative farther than each positive: the semi-hard one.
    first_beyond = jax.vmap(
        lambda row, d: jnp.searchsorted(row, d, side="right", method="scan_unrolled")
    )(ordered, distances)
    found = first_beyond < jnp.sum(negative, axis=1, keepdims=True)
    index = jnp.minimum(first_beyond, ordered.shape[1] - 1)
    semi_hard = jnp.take_along_axis(ordered, index, axis=1)
    farthest = _masked_maximum(distances, negative, valid_columns)[:, None]
    chosen = jnp.where(found, jnp.where(found, semi_hard, 0.0), farthest)
    pair_losses = jnp.where(positive, _hinge(margin + distances - chosen), 0.0)
    return per_anchor_share(jnp.sum(pair_losses, axis=1), positive).astype(out_dtype)


def contrastive_pair(y_true: ArrayLike, y_pred: ArrayLike, *, margin: Any = 1.0) -> jax.Array:
    """Contrastive loss per pair: ``y d² + (1 - y) max(margin - d, 0)²``.

    Args:
        y_true: 1 for similar pairs, 0 for dissimilar ones, shape ``(batch, ...)``.
        y_pred: the pairs' distances ``d``, same shape.
        margin: the margin (default 1; traced allowed).

    Returns:
        Losses of ``y_pred``'s shape in its floating dtype.

    References:
        Hadsell, Chopra & LeCun (2006), "Dimensionality Reduction by Learning an Invariant
        Mapping", CVPR. TF Addons ``contrastive_loss``.

    Examples:
        >>> loss = contrastive_pair(jnp.array([1, 0, 0]), jnp.array([0.5, 0.2, 2.0]))
        >>> [round(float(v), 4) for v in loss]
        [0.25, 0.64, 0.0]
    """
    check_number(margin, "margin")
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "contrastive_pair")
    apart = _hinge(margin - y_pred)
    return (y_true * jnp.square(y_pred) + (1.0 - y_true) * jnp.square(apart)).astype(out_dtype)


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class TripletMargin(Loss):
    """Triplet margin loss on given triplets; see :func:`triplet_margin`.

    Call as ``loss(anchor, positive, negative=...)``. Reductions are PyTorch's:
    ``"sum_over_batch_size"`` is ``reduction="mean"``, ``"sum"`` and ``"none"`` are the same.

    Args:
        margin, p, eps, swap: see :func:`triplet_margin`.
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> a, p, n = jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), jnp.array([[1.0, 0.0]])
        >>> print(f"{float(TripletMargin(eps=0.0)(a, p, negative=n)):.4f}")
        5.0000
    """

    function = triplet_margin

    def __init__(
        self,
        margin: Any = 1.0,
        p: Any = 2.0,
        eps: Any = 1e-6,
        swap: bool = False,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "triplet_margin",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_number(margin, "margin")
        self.p = check_number(p, "p", low=0.0, low_inclusive=False)
        self.eps = check_number(eps, "eps", low=0.0)
        self.swap = check_bool(swap, "swap")


class BatchHardTriplet(BatchCoupledLoss):
    """Batch-hard triplet loss; see :func:`batch_hard_triplet`.

    Call as ``loss(labels, embeddings)`` (``where=`` for padded rows); the default mean over
    anchors is TF Addons' ``TripletHardLoss``.

    Args:
        margin, soft, distance_metric: see :func:`batch_hard_triplet`.
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> e = jnp.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0]])
        >>> print(f"{float(BatchHardTriplet(margin=2.0)(jnp.array([0, 0, 1, 1]), e)):.4f}")
        0.6910
    """

    function = batch_hard_triplet
    labels_are_ids = True

    def __init__(
        self,
        margin: Any = 1.0,
        soft: bool = False,
        distance_metric: str = "L2",
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "batch_hard_triplet",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_number(margin, "margin")
        self.soft = check_bool(soft, "soft")
        self.distance_metric = _check_metric(distance_metric)


class BatchSemiHardTriplet(LabelledBatchLoss):
    """Batch semi-hard triplet loss; see :func:`batch_semi_hard_triplet`.

    Call as ``loss(labels, embeddings)``; the default reduction, the mean over anchors with a
    positive, is TF Addons' ``TripletSemiHardLoss`` (the mean over positive pairs).

    Args:
        margin, distance_metric: see :func:`batch_semi_hard_triplet`.
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> e = jnp.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [3.0, 0.0]])
        >>> print(f"{float(BatchSemiHardTriplet(margin=2.0)(jnp.array([0, 0, 1, 1]), e)):.4f}")
        0.6910
    """

    function = batch_semi_hard_triplet

    def __init__(
        self,
        margin: Any = 1.0,
        distance_metric: str = "L2",
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "batch_semi_hard_triplet",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_number(margin, "margin")
        self.distance_metric = _check_metric(distance_metric)


class ContrastivePair(Loss):
    """Contrastive loss on pair distances; see :func:`contrastive_pair`.

    Args:
        margin: the margin (default 1).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = ContrastivePair()(jnp.array([1, 0, 0]), jnp.array([0.5, 0.2, 2.0]))
        >>> print(f"{float(loss):.4f}")
        0.2967
    """

    function = contrastive_pair

    def __init__(
        self,
        margin: Any = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "contrastive_pair",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = check_number(margin, "margin")
