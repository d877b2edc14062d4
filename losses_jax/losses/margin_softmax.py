"""Margin softmax losses: ArcFace and CosFace, on the cosine of embeddings to class centres.

Both are softmax cross-entropies over the classes whose logits are the scaled cosines
``s cos θ_j`` of an embedding to each class centre, with a margin on the true class's angle
(ArcFace) or cosine (CosFace); call the classes as ``loss(labels, embeddings,
centers=class_centres)`` (the centres are differentiable). Each sample's value depends only on
its own row. Embeddings of any floating dtype are compared in float32 (or wider); results have
the embeddings' dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._embedding_batch import class_ids, embedding_rows
from losses_jax._numerics import l2_normalize, logsumexp, upcast
from losses_jax._validation import as_float_array, check_number
from losses_jax.base import Loss

__all__ = ["ArcFace", "CosFace", "arcface", "cosface"]


def _cosines(labels, embeddings, centers, loss_name: str):
    """``(cosines (B, C), one-hot labels, out dtype)`` of embeddings to the class centres."""
    embeddings = embedding_rows(embeddings, "embeddings", loss_name)
    out_dtype = embeddings.dtype
    centers = as_float_array(centers, "centers").astype(out_dtype)
    if centers.ndim != 2 or centers.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"{loss_name}: `centers` must hold one centre per class, shape (num_classes, dim) "
            f"with dim = {embeddings.shape[1]}; received {tuple(centers.shape)}."
        )
    labels = class_ids(labels, embeddings, loss_name)
    e, w = l2_normalize(upcast(embeddings)), l2_normalize(upcast(centers))
    cosines = jnp.clip(jnp.einsum("id,cd->ic", e, w, preferred_element_type=e.dtype), -1.0, 1.0)
    one_hot = labels[:, None] == jnp.arange(centers.shape[0])[None, :]
    return cosines, one_hot, out_dtype


def _margin_softmax(cosines, one_hot, target, scale, out_dtype):
    logits = scale * jnp.where(one_hot, target, cosines)
    return (logsumexp(logits, axis=1) - jnp.sum(jnp.where(one_hot, logits, 0.0), axis=1)).astype(
        out_dtype
    )


def arcface(
    labels: ArrayLike,
    embeddings: ArrayLike,
    *,
    centers: ArrayLike,
    scale: Any = 64.0,
    margin: Any = 0.5,
) -> jax.Array:
    """ArcFace (additive angular margin) per sample: softmax CE of ``s cos(θ_y + m)`` against
    ``s cos θ_j`` for the other classes.

    ``θ_j`` is the angle between the embedding and class centre ``j``. Where ``θ_y + m``
    passes ``π`` (``cos θ_y <= cos(π - m)``), the target logit is ``s (cos θ_y - m sin m)``,
    insightface's monotonic continuation.

    Args:
        labels: class ids, shape ``(batch,)``.
        embeddings: shape ``(batch, dim)``.
        centers: class centres, shape ``(num_classes, dim)`` (keyword only; differentiable).
        scale: the logit scale ``s`` (default 64; traced allowed).
        margin: the angular margin ``m`` (default 0.5; traced allowed).

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype.

    References:
        Deng, Guo, Xue & Zafeiriou (2019), "ArcFace: Additive Angular Margin Loss for Deep
        Face Recognition", CVPR.

    Examples:
        >>> e, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> loss = arcface(jnp.array([0]), e, centers=w, scale=1.0, margin=0.0)
        >>> [round(float(v), 4) for v in loss]
        [0.3133]
    """
    check_number(scale, "scale", low=0.0, low_inclusive=False)
    check_number(margin, "margin")
    cosines, one_hot, out_dtype = _cosines(labels, embeddings, centers, "arcface")
    squared_sine = 1.0 - jnp.square(cosines)
    # sqrt's slope is infinite at 0: a floor keeps cos = ±1 finite (a 1e-6 change of sin).
    sine = jnp.sqrt(jnp.where(squared_sine > 1e-12, squared_sine, 1e-12))
    shifted = cosines * jnp.cos(margin) - sine * jnp.sin(margin)
    beyond_pi = cosines <= jnp.cos(jnp.pi - margin)
    target = jnp.where(beyond_pi, cosines - margin * jnp.sin(margin), shifted)
    return _margin_softmax(cosines, one_hot, target, scale, out_dtype)


def cosface(
    labels: ArrayLike,
    embeddings: ArrayLike,
    *,
    centers: ArrayLike,
    scale: Any = 64.0,
    margin: Any = 0.35,
) -> jax.Array:
    """CosFace (large margin cosine) per sample: softmax CE of ``s (cos θ_y - m)`` against
    ``s cos θ_j`` for the other classes.

    Args:
        labels: class ids, shape ``(batch,)``.
        embeddings: shape ``(batch, dim)``.
        centers: class centres, shape ``(num_classes, dim)`` (keyword only; differentiable).
        scale: the logit scale ``s`` (default 64; traced allowed).
        margin: the cosine margin ``m`` (default 0.35; traced allowed).

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype.

    References:
        Wang et al. (2018), "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
        CVPR.

    Examples:
        >>> e, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> loss = cosface(jnp.array([0]), e, centers=w, scale=1.0, margin=1.0)
        >>> [round(float(v), 4) for v in loss]
        [0.6931]
    """
    check_number(scale, "scale", low=0.0, low_inclusive=False)
    check_number(margin, "margin")
    cosines, one_hot, out_dtype = _cosines(labels, embeddings, centers, "cosface")
    return _margin_softmax(cosines, one_hot, cosines - margin, scale, out_dtype)


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class ArcFace(Loss):
    """ArcFace additive angular margin loss; see :func:`arcface`.

    Call as ``loss(labels, embeddings, centers=class_centres)``.

    Args:
        scale, margin: see :func:`arcface` (defaults 64 and 0.5).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> e, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> print(f"{float(ArcFace(scale=1.0, margin=0.0)(jnp.array([0]), e, centers=w)):.4f}")
        0.3133
    """

    function = arcface
    labels_are_ids = True

    def __init__(
        self,
        scale: Any = 64.0,
        margin: Any = 0.5,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "arcface",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.scale = check_number(scale, "scale", low=0.0, low_inclusive=False)
        self.margin = check_number(margin, "margin")


class CosFace(Loss):
    """CosFace large margin cosine loss; see :func:`cosface`.

    Call as ``loss(labels, embeddings, centers=class_centres)``.

    Args:
        scale, margin: see :func:`cosface` (defaults 64 and 0.35).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> e, w = jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> print(f"{float(CosFace(scale=1.0, margin=1.0)(jnp.array([0]), e, centers=w)):.4f}")
        0.6931
    """

    function = cosface
    labels_are_ids = True

    def __init__(
        self,
        scale: Any = 64.0,
        margin: Any = 0.35,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "cosface",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.scale = check_number(scale, "scale", low=0.0, low_inclusive=False)
        self.margin = check_number(margin, "margin")
