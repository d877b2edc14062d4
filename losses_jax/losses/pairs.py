"""Losses on pairs (PyTorch): two scores to rank, a pair's distance, two embeddings.

:func:`margin_ranking` and :func:`cosine_embedding` compare two predictions: ``y_pred`` is
PyTorch's ``input1``, the keyword argument ``y_pred_other`` its ``input2`` (same shape;
gradients flow to both), ``y_true`` its ``target``; the classes take it in their call,
``MarginRanking(margin=0.1)(targets, scores_a, y_pred_other=scores_b)``.
:func:`hinge_embedding` takes the distance of each pair. All return PyTorch's unreduced values:
its ``reduction="mean"`` is ``"sum_over_batch_size"`` here, ``"sum"`` and ``"none"`` are the
same.

Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import accumulation_dtype, cosine_similarity, prepare_pair, upcast
from losses_jax._validation import as_float_array, check_broadcastable, check_number
from losses_jax.base import Loss

__all__ = [
    "CosineEmbedding",
    "HingeEmbedding",
    "MarginRanking",
    "cosine_embedding",
    "hinge_embedding",
    "margin_ranking",
]

#: PyTorch's ``cosine_embedding_loss`` adds this to each squared norm: 1e-12 as a float32
#: constant (measured: its gradient at a zero vector is ``x2 / sqrt(eps |x2|**2)`` with this eps).
_COSINE_EPSILON = float(np.float32(1e-12))


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
    check_number(margin, "margin")
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
    check_number(margin, "margin")
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, "hinge_embedding")
    dissimilar = jnp.where(y_true != 1, _clamp_at_zero(margin - y_pred), 0.0)
    similar = jnp.where(y_true != -1, y_pred, 0.0)
    return (dissimilar + similar).astype(out_dtype)


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
    check_number(margin, "margin")
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
    cos = cosine_similarity(x1, x2, _COSINE_EPSILON)
    similar = jnp.where(targets == 1, 1.0 - cos, 0.0)
    dissimilar = jnp.where(targets == -1, _clamp_at_zero(cos - margin), 0.0)
    return (similar + dissimilar).astype(out_dtype)


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
        self.margin = check_number(margin, "margin")


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
        self.margin = check_number(margin, "margin")


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
        self.margin = check_number(margin, "margin")
