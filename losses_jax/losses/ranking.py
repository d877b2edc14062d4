"""List ranking losses (optax, rax): one loss per list of scored items.

:func:`listwise_softmax`, :func:`pairwise_logistic` and :func:`pairwise_hinge` take relevance
labels ``y_true`` and scores ``y_pred`` of shape ``(batch, ..., list_size)`` and give one loss
per list. The keyword inputs ``where`` (boolean, same shape) marks the valid items and
``item_weight`` weights them; the classes leave lists without a valid item out of the
reduction's divisor, as optax's mean does. (The PyTorch losses on pairs of predictions,
:func:`~losses_jax.margin_ranking` and the embedding losses, are in
:mod:`losses_jax.losses.pairs`.)

Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    log_softmax,
    logistic_terms,
    prepare_pair,
    weighted_sum_of_logs,
)
from losses_jax._validation import as_float_array, as_label_array, check_broadcastable
from losses_jax.base import Loss
from losses_jax.checks import guard_nonnegative

__all__ = [
    "ListwiseSoftmax",
    "PairwiseHinge",
    "PairwiseLogistic",
    "listwise_softmax",
    "pairwise_hinge",
    "pairwise_logistic",
]


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
class _ListLoss(Loss):
    """A list without a valid item (``where`` all False) is no sample: it is left out of the
    reduction's divisor, as optax's mean leaves it out (its loss is 0)."""

    def loss_mask(
        self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array, **inputs: Any
    ) -> Any:
        where = inputs.get("where")
        if where is None:
            return None
        return jnp.any(_valid_items(where, jnp.shape(y_pred), self.name), axis=-1)


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
