"""Ranking and embedding losses: pairs of scores (PyTorch) and scored lists (optax, rax).

**Pairs.** :func:`margin_ranking` and :func:`cosine_embedding` compare two predictions:
``y_pred`` is PyTorch's ``input1``, the keyword argument ``y_pred_other`` its ``input2`` (same
shape; gradients flow to both), ``y_true`` its ``target``; the classes take it in their call,
``MarginRanking(margin=0.1)(targets, scores_a, y_pred_other=scores_b)``. With
:func:`hinge_embedding` they return PyTorch's unreduced values: its ``reduction="mean"`` is
``"sum_over_batch_size"`` here, ``"sum"`` and ``"none"`` are the same.

**Lists.** :func:`listwise_softmax`, :func:`pairwise_logistic` and :func:`pairwise_hinge` take
relevance labels ``y_true`` and scores ``y_pred`` of shape ``(batch, ..., list_size)`` and give
one loss per list. The keyword inputs ``where`` (boolean, same shape) marks the valid items and
``item_weight`` weights them; the classes leave lists without a valid item out of the
reduction's divisor, as optax's mean does.

Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    accumulation_dtype,
    log_softmax,
    logistic_terms,
    prepare_pair,
    upcast,
    weighted_sum_of_logs,
)
from losses_jax._validation import as_float_array, as_label_array, check_broadcastable, check_number
from losses_jax.base import Loss, _combine_masks
from losses_jax.checks import guard_nonnegative

__all__ = [
    "CosineEmbedding",
    "HingeEmbedding",
    "ListwiseSoftmax",
    "MarginRanking",
    "PairwiseHinge",
    "PairwiseLogistic",
    "cosine_embedding",
    "hinge_embedding",
    "listwise_softmax",
    "margin_ranking",
    "pairwise_hinge",
    "pairwise_logistic",
]

#: PyTorch's ``cosine_embedding_loss`` adds this to each squared norm: 1e-12 as a float32
#: constant (measured: its gradient at a zero vector is ``x2 / sqrt(eps |x2|**2)`` with this eps).
_COSINE_EPSILON = float(np.float32(1e-12))


def _check_margin(margin: Any) -> Any:
    return check_number(margin, "margin")


def _clamp_at_zero(x: jax.Array) -> jax.Array:
    """``max(x, 0)`` with slope 1 at ``x = 0``, as PyTorch's ``clamp_min(0)``."""
    return jnp.where(x >= 0, x, 0.0)


def _other_scores(y_pred_other: ArrayLike, y_pred: jax.Array, out_dtype, loss_name: str):
    """``y_pred_other`` in ``y_pred``'s dtype (then upcast), broadcast to ``y_pred``'s shape."""
    other = as_float_array(y_pred_other, "y_pred_other")
    if not check_broadcastable(other.shape, y_pred.shape):
        raise ValueError(
            f"{loss_name}: `y_pred_other` (the second prediction of each pair) must have the "
            f"shape of `y_pred`; received {tuple(other.shape)} and {tuple(y_pred.shape)}."
        )
    return jnp.broadcast_to(upcast(other.astype(out_dtype)), y_pred.shape)


# --------------------------------------------------------------------------------------
# pairs
# --------------------------------------------------------------------------------------
def margin_ranking(
    y_true: ArrayLike, y_pred: ArrayLike, *, y_pred_other: ArrayLike, margin: Any = 0.0
) -> jax.Array:
    """Margin ranking loss per pair: ``max(0, margin - y_true * (y_pred - y_pred_other))``.

    ``y_true = 1`` asks for ``y_pred`` to rank above ``y_pred_other`` by ``margin``, -1 for
    the reverse. Elementwise: every entry is one pair.

    Args:
        y_true: targets in {-1, 1}, shape ``(batch, ...)`` (or broadcastable to ``y_pred``).
        y_pred: first scores ``x1``, shape ``(batch, ...)``.
        y_pred_other: second scores ``x2``, same shape (keyword only).
        margin: the margin (default 0; a traced array is allowed).

    Returns:
        Losses of ``y_pred``'s shape and floating dtype.

    References:
        Herbrich, Graepel & Obermayer (1999), "Support Vector Learning for Ordinal
        Regression", ICANN. PyTorch 2.13, ``torch.nn.functional.margin_ranking_loss``.

    Examples:
        >>> x1, x2 = jnp.array([0.5, 2.0, 1.0]), jnp.array([1.0, 0.0, 0.8])
        >>> loss = margin_ranking(jnp.array([1, 1, -1]), x1, y_pred_other=x2, margin=0.5)
        >>> [round(float(v), 4) for v in loss]
        [1.0, 0.0, 0.7]
    """
    _check_margin(margin)
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "margin_ranking")
    other = _other_scores(y_pred_other, y_pred, out_dtype, "margin_ranking")
    return _clamp_at_zero(margin - y_true * (y_pred - other)).astype(out_dtype)


def hinge_embedding(y_true: ArrayLike, y_pred: ArrayLike, margin: Any = 1.0) -> jax.Array:
    """Hinge embedding loss per entry: ``x`` where ``y = 1``, ``max(0, margin - x)`` where
    ``y = -1``.

    ``y_pred`` is typically a distance between two embeddings, ``y_true`` says whether they
    are similar (1) or not (-1). As in PyTorch, a target that is neither adds both terms.

    Args:
        y_true: targets in {-1, 1}, shape ``(batch, ...)`` (or broadcastable to ``y_pred``).
        y_pred: distances ``x``, shape ``(batch, ...)``.
        margin: the margin (default 1; a traced array is allowed).

    Returns:
        Losses of ``y_pred``'s shape and floating dtype.

    References:
        Hadsell, Chopra & LeCun (2006), "Dimensionality Reduction by Learning an Invariant
        Mapping", CVPR. PyTorch 2.13, ``torch.nn.functional.hinge_embedding_loss``.

    Examples:
        >>> loss = hinge_embedding(jnp.array([1, -1, -1]), jnp.array([0.3, 0.4, 1.5]))
        >>> [round(float(v), 4) for v in loss]
        [0.3, 0.6, 0.0]
    """
    _check_margin(margin)
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "hinge_embedding")
    dissimilar = jnp.where(y_true != 1, _clamp_at_zero(margin - y_pred), 0.0)
    similar = jnp.where(y_true != -1, y_pred, 0.0)
    return (dissimilar + similar).astype(out_dtype)


def _scaled(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(x / s, eps / s**2)`` with ``s = max(max|x|, 1)``: ``|x|**2 + eps`` is ``s**2`` times
    ``|x / s|**2 + eps / s**2``, and the latter cannot overflow. The value does not depend on
    ``s``, so its gradient is stopped."""
    scale = jax.lax.stop_gradient(jnp.maximum(jnp.max(jnp.abs(x), axis=-1, keepdims=True), 1.0))
    return x / scale, _COSINE_EPSILON / jnp.square(scale[..., 0])


def _cosine(x1: jax.Array, x2: jax.Array) -> jax.Array:
    """PyTorch's ``x1 . x2 / sqrt((|x1|**2 + eps) (|x2|**2 + eps))`` without overflow."""
    (u1, eps1), (u2, eps2) = _scaled(x1), _scaled(x2)
    squared_norms = (jnp.sum(u1 * u1, axis=-1) + eps1) * (jnp.sum(u2 * u2, axis=-1) + eps2)
    return jnp.sum(u1 * u2, axis=-1) * jax.lax.rsqrt(squared_norms)


def cosine_embedding(
    y_true: ArrayLike, y_pred: ArrayLike, *, y_pred_other: ArrayLike, margin: Any = 0.0
) -> jax.Array:
    """Cosine embedding loss per pair: ``1 - cos`` where ``y = 1``, ``max(0, cos - margin)``
    where ``y = -1`` (0 for any other target, as PyTorch).

    ``cos = x1 . x2 / sqrt((|x1|**2 + 1e-12) (|x2|**2 + 1e-12))``, PyTorch's form: a zero
    vector has cosine 0 and a finite gradient. Norms are taken of the vectors divided by their
    largest entry, so entries of 1e30 do not overflow.

    Args:
        y_true: targets in {-1, 1}, shape ``(batch, ...)`` (a trailing 1 is allowed).
        y_pred: first embeddings ``x1``, shape ``(batch, ..., dim)``.
        y_pred_other: second embeddings ``x2``, same shape (keyword only).
        margin: the margin (default 0; a traced array is allowed).

    Returns:
        Losses of shape ``y_pred.shape[:-1]`` in ``y_pred``'s floating dtype.

    References:
        PyTorch 2.13, ``torch.nn.functional.cosine_embedding_loss``; the cosine similarity
        metric of Nguyen & Bai (2010), "Cosine Similarity Metric Learning for Face
        Verification", ACCV.

    Examples:
        >>> x1 = jnp.array([[1.0, 0.0], [1.0, 1.0]])
        >>> x2 = jnp.array([[0.0, 1.0], [2.0, 2.0]])
        >>> loss = cosine_embedding(jnp.array([1, -1]), x1, y_pred_other=x2, margin=0.5)
        >>> [round(float(v), 4) for v in loss]
        [1.0, 0.5]
    """
    _check_margin(margin)
    y_pred = as_float_array(y_pred, "y_pred")
    if y_pred.ndim < 1:
        raise ValueError(
            "cosine_embedding: `y_pred` must hold embeddings on its last axis, shape "
            "(batch, ..., dim); received a scalar."
        )
    out_dtype = y_pred.dtype
    x1 = upcast(y_pred)
    x2 = _other_scores(y_pred_other, x1, out_dtype, "cosine_embedding")
    targets = as_float_array(y_true, "y_true", accumulation_dtype(out_dtype))
    pairs = x1.shape[:-1]
    if targets.shape == (*pairs, 1) and targets.shape != pairs:
        targets = targets[..., 0]
    if not check_broadcastable(targets.shape, pairs):
        raise ValueError(
            f"cosine_embedding: `y_true` must hold one target per pair, shape "
            f"y_pred.shape[:-1] = {pairs}; received {tuple(targets.shape)} with `y_pred` of "
            f"shape {tuple(x1.shape)}."
        )
    cos = _cosine(x1, x2)
    similar = jnp.where(targets == 1, 1.0 - cos, 0.0)
    dissimilar = jnp.where(targets == -1, _clamp_at_zero(cos - margin), 0.0)
    return (similar + dissimilar).astype(out_dtype)


# --------------------------------------------------------------------------------------
# lists
# --------------------------------------------------------------------------------------
def _valid_items(where: ArrayLike, shape: tuple, loss_name: str) -> jax.Array:
    """``where`` as a boolean array of the scores' shape."""
    valid = as_label_array(where, "where")
    if not check_broadcastable(valid.shape, shape):
        raise ValueError(
            f"{loss_name}: `where` (one flag per list item) must have the shape of `y_pred`; "
            f"received {tuple(valid.shape)} and {tuple(shape)}."
        )
    return jnp.broadcast_to(valid != 0, shape)


def _item_weights(item_weight: ArrayLike | None, scores: jax.Array, loss_name: str):
    if item_weight is None:
        return None
    weights = as_float_array(item_weight, "item_weight", scores.dtype)
    if not check_broadcastable(weights.shape, scores.shape):
        raise ValueError(
            f"{loss_name}: `item_weight` (one weight per list item) must have the shape of "
            f"`y_pred`; received {tuple(weights.shape)} and {tuple(scores.shape)}."
        )
    return weights


def listwise_softmax(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    where: ArrayLike | None = None,
    item_weight: ArrayLike | None = None,
) -> jax.Array:
    """Listwise softmax loss per list: ``-sum_i y_i log softmax(s)_i`` over the valid items.

    Items outside ``where`` are left out of the softmax and of the sum; a list without a
    valid item has loss 0. The relevance labels are used as given (not normalized), as optax
    does; ``item_weight`` multiplies them.

    Args:
        y_true: relevance labels ``y >= 0``, shape ``(batch, ..., list_size)``.
        y_pred: scores ``s``, same shape.
        where: optional boolean mask of the valid items, same shape (keyword only).
        item_weight: optional per-item weights, same shape (keyword only).

    Returns:
        Losses of shape ``y_pred.shape[:-1]`` in ``y_pred``'s floating dtype.

    References:
        Cao et al. (2007), "Learning to Rank: From Pairwise Approach to Listwise Approach"
        (ListNet), ICML. optax 0.2.8, ``optax.losses.ranking_softmax_loss``.

    Examples:
        >>> scores = jnp.array([[2.0, 1.0, 3.0], [1.0, 0.5, 1.5]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> where = jnp.array([[True, True, False], [True, True, True]])
        >>> [round(float(v), 4) for v in listwise_softmax(labels, scores, where=where)]
        [0.3133, 0.6803]
    """
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "listwise_softmax", min_rank=1)
    relevance = guard_nonnegative(y_true, "y_true")
    if where is not None:
        valid = _valid_items(where, y_pred.shape, "listwise_softmax")
        relevance = jnp.where(valid, relevance, 0.0)
        y_pred = jnp.where(valid, y_pred, -jnp.inf)
    weights = _item_weights(item_weight, y_pred, "listwise_softmax")
    if weights is not None:
        relevance = relevance * weights
    # Zero relevance (masked items included) contributes exactly 0, also against -inf.
    return (-weighted_sum_of_logs(relevance, log_softmax(y_pred))).astype(out_dtype)


def _pairwise(
    pair_loss: Callable[[jax.Array], jax.Array],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    where: ArrayLike | None,
    item_weight: ArrayLike | None,
    loss_name: str,
) -> jax.Array:
    """``sum_{i, j: y_i > y_j, both valid} w_i * pair_loss(s_i - s_j)`` over each list."""
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, loss_name, min_rank=1)
    ordered = y_true[..., :, None] > y_true[..., None, :]
    if where is not None:
        valid = _valid_items(where, y_pred.shape, loss_name)
        ordered = ordered & valid[..., :, None] & valid[..., None, :]
    # A safe difference where the pair does not count: masked scores may be inf or NaN.
    difference = jnp.where(ordered, y_pred[..., :, None] - y_pred[..., None, :], 0.0)
    losses = jnp.where(ordered, pair_loss(difference), 0.0)
    weights = _item_weights(item_weight, y_pred, loss_name)
    if weights is not None:
        losses = losses * weights[..., :, None]
    return jnp.sum(losses, axis=(-2, -1)).astype(out_dtype)


def _logistic_pair(difference: jax.Array) -> jax.Array:
    return logistic_terms(difference)[1]  # softplus(-d), exact for any d


def _hinge_pair(difference: jax.Array) -> jax.Array:
    # rax's relu: slope 0 at the kink.
    violation = 1.0 - difference
    return jnp.where(violation > 0, violation, 0.0)


def pairwise_logistic(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    where: ArrayLike | None = None,
    item_weight: ArrayLike | None = None,
) -> jax.Array:
    """Pairwise logistic (RankNet) loss per list: ``sum_{y_i > y_j} log(1 + exp(-(s_i - s_j)))``.

    Normalisation: the sum over the ordered pairs of each list, not a mean. It is RankNet's
    cost, adds up over lists (``reduction="sum"`` equals rax's ``reduce_fn=jnp.sum``), counts
    every pair once whatever its list's size, and a list without an ordered pair gives exactly
    0 rather than 0 / 0. rax's default mean divides by the number of ordered pairs in the
    whole batch instead. Pairs count where both items are valid (``where``); ``item_weight``
    weights pair ``(i, j)`` by ``w_i``, as rax does. Memory: ``list_size ** 2`` per list.

    Args:
        y_true: relevance labels ``y``, shape ``(batch, ..., list_size)``.
        y_pred: scores ``s``, same shape.
        where: optional boolean mask of the valid items, same shape (keyword only).
        item_weight: optional per-item weights, same shape (keyword only).

    Returns:
        Losses of shape ``y_pred.shape[:-1]`` in ``y_pred``'s floating dtype.

    References:
        Burges et al. (2005), "Learning to Rank using Gradient Descent" (RankNet), ICML.
        rax 0.4, ``rax.pairwise_logistic_loss``.

    Examples:
        >>> scores = jnp.array([[2.0, 1.0, 3.0]])
        >>> labels = jnp.array([[2.0, 0.0, 1.0]])
        >>> [round(float(v), 4) for v in pairwise_logistic(labels, scores)]
        [1.7535]
    """
    return _pairwise(_logistic_pair, y_true, y_pred, where, item_weight, "pairwise_logistic")


def pairwise_hinge(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    *,
    where: ArrayLike | None = None,
    item_weight: ArrayLike | None = None,
) -> jax.Array:
    """Pairwise hinge loss per list: ``sum_{y_i > y_j} max(0, 1 - (s_i - s_j))``.

    Inputs, pairs, masking, weights, result and normalisation (a sum over each list's ordered
    pairs, for the reasons given there) as for :func:`pairwise_logistic`.

    References:
        Herbrich, Graepel & Obermayer (1999), "Support Vector Learning for Ordinal
        Regression", ICANN (RankSVM). rax 0.4, ``rax.pairwise_hinge_loss``.

    Examples:
        >>> scores = jnp.array([[2.0, 1.0, 3.0]])
        >>> labels = jnp.array([[2.0, 0.0, 1.0]])
        >>> [round(float(v), 4) for v in pairwise_hinge(labels, scores)]
        [2.0]
    """
    return _pairwise(_hinge_pair, y_true, y_pred, where, item_weight, "pairwise_hinge")


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class MarginRanking(Loss):
    """Margin ranking loss on pairs of scores; see :func:`margin_ranking`.

    Call as ``loss(y_true, y_pred, y_pred_other=...)``. Reductions are PyTorch's:
    ``"sum_over_batch_size"`` is ``reduction="mean"``, ``"sum"`` and ``"none"`` are the same.

    Args:
        margin: the margin (default 0).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> x1, x2 = jnp.array([0.5, 2.0, 1.0]), jnp.array([1.0, 0.0, 0.8])
        >>> loss = MarginRanking(margin=0.5)(jnp.array([1, 1, -1]), x1, y_pred_other=x2)
        >>> print(f"{float(loss):.4f}")
        0.5667
    """

    function = margin_ranking

    def __init__(
        self,
        margin: Any = 0.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "margin_ranking",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = _check_margin(margin)


class HingeEmbedding(Loss):
    """Hinge embedding loss on distances; see :func:`hinge_embedding`.

    Reductions are PyTorch's: ``"sum_over_batch_size"`` is ``reduction="mean"``, ``"sum"``
    and ``"none"`` are the same.

    Args:
        margin: the margin (default 1).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = HingeEmbedding(margin=2.0)(jnp.array([1, -1, -1]), jnp.array([0.3, 0.4, 1.5]))
        >>> print(f"{float(loss):.4f}")
        0.8000
    """

    function = hinge_embedding

    def __init__(
        self,
        margin: Any = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "hinge_embedding",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = _check_margin(margin)


class CosineEmbedding(Loss):
    """Cosine embedding loss on pairs of embeddings; see :func:`cosine_embedding`.

    Call as ``loss(y_true, y_pred, y_pred_other=...)``. Reductions are PyTorch's:
    ``"sum_over_batch_size"`` is ``reduction="mean"``, ``"sum"`` and ``"none"`` are the same.

    Args:
        margin: the margin (default 0).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> x1 = jnp.array([[1.0, 0.0], [1.0, 1.0]])
        >>> x2 = jnp.array([[0.0, 1.0], [2.0, 2.0]])
        >>> print(f"{float(CosineEmbedding()(jnp.array([1, -1]), x1, y_pred_other=x2)):.4f}")
        1.0000
    """

    function = cosine_embedding

    def __init__(
        self,
        margin: Any = 0.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "cosine_embedding",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margin = _check_margin(margin)


class _ListLoss(Loss):
    """A list without a valid item (``where`` all False) is no sample: it is left out of the
    reduction's divisor, as optax's mean leaves it out (its loss is 0)."""

    def __call__(
        self,
        y_true: ArrayLike,
        y_pred: ArrayLike,
        sample_weight: ArrayLike | None = None,
        mask: ArrayLike | None = None,
        **inputs: Any,
    ) -> jax.Array:
        where = inputs.get("where")
        if where is not None:
            valid = _valid_items(where, jnp.shape(y_pred), self.name)
            has_items = jnp.any(valid, axis=-1)
            mask = has_items if mask is None else _combine_masks(has_items, mask)
        return super().__call__(y_true, y_pred, sample_weight, mask, **inputs)


class ListwiseSoftmax(_ListLoss):
    """Listwise softmax loss over scored lists; see :func:`listwise_softmax`.

    Call as ``loss(y_true, y_pred, where=..., item_weight=...)`` (both optional). optax's
    ``ranking_softmax_loss`` with ``reduce_fn=jnp.mean`` is ``"sum_over_batch_size"`` here,
    ``jnp.sum`` is ``"sum"`` and ``None`` is ``"none"``.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> scores = jnp.array([[2.0, 1.0, 3.0], [1.0, 0.5, 1.5]])
        >>> labels = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        >>> where = jnp.array([[True, True, False], [False, False, False]])
        >>> print(f"{float(ListwiseSoftmax()(labels, scores, where=where)):.4f}")
        0.3133
    """

    function = listwise_softmax

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "listwise_softmax",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class PairwiseLogistic(_ListLoss):
    """Pairwise logistic (RankNet) loss over scored lists; see :func:`pairwise_logistic`.

    Call as ``loss(y_true, y_pred, where=..., item_weight=...)`` (both optional). rax's
    ``pairwise_logistic_loss`` with ``reduce_fn=jnp.sum`` is ``"sum"`` here.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> scores = jnp.array([[2.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
        >>> labels = jnp.array([[2.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        >>> print(f"{float(PairwiseLogistic(reduction='sum')(labels, scores)):.4f}")
        3.1397
    """

    function = pairwise_logistic

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "pairwise_logistic",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class PairwiseHinge(_ListLoss):
    """Pairwise hinge loss over scored lists; see :func:`pairwise_hinge`.

    Call as ``loss(y_true, y_pred, where=..., item_weight=...)`` (both optional). rax's
    ``pairwise_hinge_loss`` with ``reduce_fn=jnp.sum`` is ``"sum"`` here.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> scores = jnp.array([[2.0, 1.0, 3.0], [0.0, 0.0, 0.0]])
        >>> labels = jnp.array([[2.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
        >>> print(f"{float(PairwiseHinge()(labels, scores)):.4f}")
        2.0000
    """

    function = pairwise_hinge

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "pairwise_hinge",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
