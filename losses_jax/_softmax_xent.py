"""Softmax cross-entropy kernels with their derivative rules, classes on the last axis.

The forward pass keeps ``e = exp(logits - peak)`` (``peak`` from :func:`~losses_jax._numerics.
row_peak`) and the backward pass is then one elementwise pass, ``softmax = e / sum(e)``: where
``exp`` dominates (CPUs) this beats recomputing the softmax from the logits, and XLA writes the
gradient into ``e``'s buffer. Both kernels return ``(cross-entropy, log-sum-exp)`` so that the
z-loss reuses the log-sum-exp without a second pass.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from losses_jax._numerics import accumulation_dtype, row_peak, safe_divide, weighted_sum_of_logs
from losses_jax._validation import is_zero

__all__ = ["add_at_labels", "add_z_loss", "softmax_xent_dense", "softmax_xent_sparse", "take_class"]


def take_class(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[..., labels]`` along the last axis, labels clipped into range (callers mask them)."""
    safe = jnp.clip(labels, 0, x.shape[-1] - 1)
    return jnp.take_along_axis(x, safe[..., None], axis=-1)[..., 0]


def add_at_labels(x: jax.Array, labels: jax.Array, values: jax.Array) -> jax.Array:
    """``x`` with ``values`` added at ``x[..., labels]``; labels outside ``[0, classes)`` add nothing.

    One scatter of a value per row: comparing every entry with its row's label instead makes XLA
    recompute the per-row terms (and the callers' label masking) at every entry. The rows are
    scatter batch dimensions (``vmap``), not indices: a batch-sharded ``x`` needs no row index
    array, which would be unsharded, on a mesh of explicit axes.
    """
    classes = x.shape[-1]
    labels = jnp.where((labels >= 0) & (labels < classes), labels, classes)  # past the end: dropped

    def add_to_row(row, label, value):
        return row.at[label].add(value, mode="drop")

    for _ in range(x.ndim - 1):
        add_to_row = jax.vmap(add_to_row)
    return add_to_row(x, labels, values.astype(x.dtype))


def _exp_shifted(logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(x, peak, e, s)``: the logits in the accumulation dtype, their :func:`row_peak`,
    ``e = exp(x - peak)`` and ``s = sum(e)``, along the last axis."""
    x = logits.astype(accumulation_dtype(logits.dtype))
    peak = row_peak(x, keepdims=False)
    e = jnp.exp(x - peak[..., None])
    return x, peak, e, jnp.sum(e, axis=-1)


@jax.custom_vjp
def softmax_xent_dense(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(-sum(targets * log_softmax(logits)), logsumexp(logits))`` over the last axis.

    Examples:
        >>> xent, lse = softmax_xent_dense(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))
        >>> round(float(xent), 4), round(float(lse), 4)
        (0.6931, 0.6931)
    """
    return _softmax_xent_dense_fwd(logits, targets)[0]


def _softmax_xent_dense_fwd(logits, targets):
    x, peak, e, total_exp = _exp_shifted(logits)
    log_norm = jnp.log(total_exp)
    total = jnp.sum(targets, axis=-1)
    # -sum(t * (x - peak - log_norm)); zero targets at -inf logits contribute exactly 0.
    xent = total * log_norm - weighted_sum_of_logs(targets, x - peak[..., None])
    lse = log_norm + peak
    return (xent, lse), (logits, targets, e, total_exp, lse, total)


def _softmax_xent_dense_bwd(residuals, cotangents):
    logits, targets, e, total_exp, lse, total = residuals
    g_xent, g_lse = cotangents
    # softmax * (g * sum(t) + g_lse) - g * t; an all -inf row (total_exp = 0) gets 0.
    scale = safe_divide(g_xent * total + g_lse, total_exp)
    d_logits = e * scale[..., None] - g_xent[..., None] * targets
    # d xent / d target_j = -log_softmax_j (+inf at -inf logits; 0 where no gradient flows).
    g = g_xent[..., None]
    d_targets = jnp.where(g != 0, g * (lse[..., None] - logits.astype(lse.dtype)), 0.0)
    return d_logits.astype(logits.dtype), d_targets.astype(targets.dtype)


softmax_xent_dense.defvjp(_softmax_xent_dense_fwd, _softmax_xent_dense_bwd)


@jax.custom_vjp
def softmax_xent_sparse(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(logsumexp(logits) - logits[label], logsumexp(logits))`` over the last axis.

    Examples:
        >>> xent, lse = softmax_xent_sparse(jnp.array([[0.0, 0.0]]), jnp.array([1]))
        >>> round(float(xent[0]), 4)
        0.6931
    """
    return _softmax_xent_sparse_fwd(logits, labels)[0]


def _softmax_xent_sparse_fwd(logits, labels):
    x, peak, e, total_exp = _exp_shifted(logits)
    log_norm = jnp.log(total_exp)
    # Subtracting in shifted coordinates keeps full precision for logits far from 0.
    xent = log_norm - (take_class(x, labels) - peak)
    # An empty array carries the logits' dtype to the backward pass.
    return (xent, log_norm + peak), (e, labels, total_exp, jnp.zeros((0,), logits.dtype))


def _softmax_xent_sparse_bwd(residuals, cotangents):
    e, labels, total_exp, dtype_carrier = residuals
    g_xent, g_lse = cotangents
    # total_exp >= 1 but for an all -inf row, whose e is all 0 (one op, not safe_divide's
    # three, runs at every entry).
    scale = (g_xent + g_lse) / jnp.maximum(total_exp, jnp.finfo(total_exp.dtype).tiny)
    d_logits = add_at_labels(e * scale[..., None], labels, -g_xent)
    return d_logits.astype(dtype_carrier.dtype), None


softmax_xent_sparse.defvjp(_softmax_xent_sparse_fwd, _softmax_xent_sparse_bwd)


def add_z_loss(xent: jax.Array, lse: jax.Array, z_loss: Any) -> jax.Array:
    """``xent + z_loss * lse ** 2`` (PaLM's z-loss); a static 0 adds nothing."""
    if is_zero(z_loss):
        return xent
    return xent + z_loss * jnp.square(lse)
