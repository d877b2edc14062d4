"""Rows of a batch-coupled loss: embeddings, the rows left in, labelled pairs, base classes.

Shared by the contrastive and metric-learning families, where the per-sample value of one row
depends on every other row of the batch. ``where`` (one boolean per row, keyword only) leaves
padded rows out of every comparison; the base classes here set
:attr:`~losses_jax.Loss.mask_is_where`, so that a call's ``mask=`` does the same, and leave
those rows out of the reduction.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from losses_jax._sharding import replicated
from losses_jax._validation import as_float_array, as_label_array
from losses_jax.base import Loss

__all__ = [
    "BatchCoupledLoss",
    "LabelledBatchLoss",
    "class_ids",
    "embedding_rows",
    "per_anchor_share",
    "valid_rows",
]


def embedding_rows(x: ArrayLike, name: str, loss_name: str) -> jax.Array:
    """``x`` as a floating ``(batch, dim)`` array; an error names ``name`` and its shape."""
    x = as_float_array(x, name)
    if x.ndim != 2:
        raise ValueError(
            f"{loss_name}: `{name}` must hold one embedding per row, shape (batch, dim); "
            f"received shape {tuple(x.shape)}."
        )
    return x


def valid_rows(where: ArrayLike | None, batch: int, loss_name: str) -> jax.Array:
    """``(batch,)`` booleans: the rows inside ``where`` (all of them for ``None``)."""
    if where is None:
        return jnp.ones((batch,), bool)
    valid = as_label_array(where, "where")
    if valid.shape != (batch,):
        raise ValueError(
            f"{loss_name}: `where` (or the call's `mask`) must hold one flag per row, shape "
            f"({batch},); received shape {tuple(valid.shape)}."
        )
    return valid != 0


def class_ids(labels: ArrayLike, embeddings: jax.Array, loss_name: str) -> jax.Array:
    """``labels`` as ``(batch,)`` class ids of the rows of ``embeddings``."""
    labels = as_label_array(labels, "labels")
    batch = embeddings.shape[0]
    if labels.shape not in ((batch,), (batch, 1)):
        raise ValueError(
            f"{loss_name}: `labels` must hold one class id per row, shape ({batch},); received "
            f"shape {tuple(labels.shape)} with embeddings of shape {tuple(embeddings.shape)}."
        )
    return labels.reshape(batch)


def per_anchor_share(per_anchor: jax.Array, positive: jax.Array) -> jax.Array:
    """Each anchor's sum over its positive pairs divided by the batch's mean number of positive
    pairs per anchor with any: the mean over those anchors is then the mean over all pairs."""
    counts = jnp.sum(positive, axis=1).astype(per_anchor.dtype)
    anchors = jnp.sum(counts > 0)
    mean_count = jnp.sum(counts) / jnp.maximum(anchors, 1)
    return per_anchor / jnp.maximum(mean_count, 1.0)


def _rows_in(where: Any, losses: jax.Array) -> jax.Array:
    if where is None:
        return jnp.ones(losses.shape, bool)
    return jnp.broadcast_to(jnp.asarray(where) != 0, losses.shape)


class BatchCoupledLoss(Loss):
    """A loss whose rows see each other: ``mask=`` acts as ``where=``, which also leaves the
    rows out of the reduction's divisor."""

    mask_is_where = True

    def loss_mask(self, y_true, y_pred, losses, *, where=None, **inputs):
        """Rows outside ``where`` leave the reduction."""
        return None if where is None else _rows_in(where, losses)


class LabelledBatchLoss(BatchCoupledLoss):
    """A batch-coupled loss on class ids whose anchors without a positive give no value."""

    labels_are_ids = True

    def loss_mask(self, y_true, y_pred, losses, *, where=None, **inputs):
        """Anchors without a positive (and rows outside ``where``) leave the reduction."""
        labels = jnp.reshape(y_true, losses.shape)
        valid = _rows_in(where, losses)
        same = labels[:, None] == replicated(labels)[None, :]
        others = valid[:, None] & replicated(valid)[None, :] & ~jnp.eye(labels.shape[0], dtype=bool)
        return valid & jnp.any(same & others, axis=1)
