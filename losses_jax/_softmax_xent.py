"""Softmax cross-entropy kernels with their derivative rules, classes on the last axis.

Each kernel is a :func:`jax.custom_jvp` whose tangent map is linear in the input tangents, so
forward mode works and JAX transposes it for reverse mode. The rule keeps ``e = exp(logits -
peak)`` (``peak`` from :func:`~losses_jax._numerics.row_peak`) and ``s = sum(e)``: the softmax's
part of the tangent is ``sum(e * dx) / s``, whose transpose is one elementwise pass, ``e * (g /
s)``. Where ``exp`` dominates (CPUs) this beats recomputing the softmax from the logits. Both
kernels return ``(cross-entropy, log-sum-exp)`` so that the z-loss reuses the log-sum-exp
without a second pass.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from losses_jax._numerics import accumulation_dtype, row_peak, weighted_sum_of_logs
from losses_jax._validation import is_zero

__all__ = [
    "add_z_loss",
    "softmax_xent_dense",
    "softmax_xent_sparse",
    "softmax_xent_sparse_gradient",
    "take_class",
]


def _along_rows(fn, ndim: int):
    """``fn(row, label, ...)`` mapped over every leading axis of an ``ndim`` array.

    The rows are gather/scatter batch dimensions (``vmap``), not indices: a batch-sharded array
    needs no row index array, which would be unsharded on a mesh of explicit axes.
    """
    for _ in range(ndim - 1):
        fn = jax.vmap(fn)
    return fn


def take_class(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[..., labels]`` along the last axis, labels clipped into range (callers mask them)."""
    safe = jnp.clip(labels, 0, x.shape[-1] - 1)
    return _along_rows(lambda row, label: row[label], x.ndim)(x, safe)


def _exp_shifted(logits: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(x, peak, e, s)``: the logits in the accumulation dtype, their :func:`row_peak`,
    ``e = exp(x - peak)`` and ``s = sum(e)``, along the last axis."""
    x = logits.astype(accumulation_dtype(logits.dtype))
    peak = jax.lax.stop_gradient(row_peak(x, keepdims=False))
    e = jnp.exp(x - peak[..., None])
    return x, peak, e, jnp.sum(e, axis=-1)


def _softmax_dot(e: jax.Array, total_exp: jax.Array, tangent: jax.Array) -> jax.Array:
    """``sum(softmax * tangent)`` over the last axis, dividing once per row after the sum.

    An all ``-inf`` row (``s = 0``, ``e`` all 0) gives 0; ``s >= 1`` otherwise.
    """
    inverse = 1.0 / jnp.maximum(total_exp, jnp.finfo(total_exp.dtype).tiny)
    return jnp.sum(e * tangent.astype(e.dtype), axis=-1) * inverse


@jax.custom_jvp
def softmax_xent_dense(logits: jax.Array, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(-sum(targets * log_softmax(logits)), logsumexp(logits))`` over the last axis.

    Examples:
        >>> xent, lse = softmax_xent_dense(jnp.array([0.0, 0.0]), jnp.array([1.0, 0.0]))
        >>> round(float(xent), 4), round(float(lse), 4)
        (0.6931, 0.6931)
    """
    return _softmax_xent_dense_parts(logits, targets)[0]


def _softmax_xent_dense_parts(logits, targets):
    x, peak, e, total_exp = _exp_shifted(logits)
    log_norm = jnp.log(total_exp)
    total = jnp.sum(targets, axis=-1)
    # -sum(t * (x - peak - log_norm)); zero targets at -inf logits contribute exactly 0.
    xent = total * log_norm - weighted_sum_of_logs(targets, x - peak[..., None])
    return (xent, log_norm + peak), (x, e, total_exp, total)


def _softmax_xent_dense_jvp(primals, tangents):
    # Symbolic zeros: targets are rarely differentiated, and their term is skipped then.
    logits, targets = primals
    d_logits, d_targets = tangents
    (xent, lse), (x, e, total_exp, total) = _softmax_xent_dense_parts(logits, targets)
    if type(d_logits) is SymbolicZero:
        d_logits = jnp.zeros_like(x)
    d_lse = _softmax_dot(e, total_exp, d_logits)
    d_xent = total * d_lse - jnp.sum(targets * d_logits.astype(x.dtype), axis=-1)
    if type(d_targets) is not SymbolicZero:
        # d xent / d target_j = -log_softmax_j, capped where a logit is -inf (+inf there).
        neg_log_softmax = jnp.minimum(lse[..., None] - x, jnp.finfo(x.dtype).max)
        d_xent = d_xent + jnp.sum(d_targets.astype(x.dtype) * neg_log_softmax, axis=-1)
    return (xent, lse), (d_xent, d_lse)


softmax_xent_dense.defjvp(_softmax_xent_dense_jvp, symbolic_zeros=True)


@jax.custom_jvp
def softmax_xent_sparse(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(logsumexp(logits) - logits[label], logsumexp(logits))`` over the last axis.

    Examples:
        >>> xent, lse = softmax_xent_sparse(jnp.array([[0.0, 0.0]]), jnp.array([1]))
        >>> round(float(xent[0]), 4)
        0.6931
    """
    return _softmax_xent_sparse_parts(logits, labels)[0]


def _softmax_xent_sparse_parts(logits, labels):
    x, peak, e, total_exp = _exp_shifted(logits)
    log_norm = jnp.log(total_exp)
    # Subtracting in shifted coordinates keeps full precision for logits far from 0.
    xent = log_norm - (take_class(x, labels) - peak)
    return (xent, log_norm + peak), (e, total_exp)


@softmax_xent_sparse.defjvp
def _softmax_xent_sparse_jvp(primals, tangents):
    logits, labels = primals
    d_logits = tangents[0]
    (xent, lse), (e, total_exp) = _softmax_xent_sparse_parts(logits, labels)
    d_lse = _softmax_dot(e, total_exp, d_logits)
    return (xent, lse), (d_lse - take_class(d_logits.astype(e.dtype), labels), d_lse)


def softmax_xent_sparse_gradient(
    logits: jax.Array, labels: jax.Array, weights: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``(xent, weights * (softmax - onehot(labels)))`` of rows ``(T, V)``, written out.

    The gradient of ``sum(weights * xent)`` in the logits is one elementwise pass over them,
    ``(exp(x - lse) - [j == label]) * w``, which XLA writes over the logits' buffer: a block's
    logits and this gradient are one ``(T, V)`` array. (Keeping ``exp(x - peak)`` from the sum,
    or scattering ``-w`` at the labels, costs a second one; the second ``exp`` costs less.)

    Examples:
        >>> xent, g = softmax_xent_sparse_gradient(jnp.zeros((1, 2)), jnp.array([1]), jnp.ones(1))
        >>> round(float(xent[0]), 4), [float(v) for v in g[0]]
        (0.6931, [0.5, -0.5])
    """
    (xent, lse), _ = _softmax_xent_sparse_parts(logits, labels)
    x = logits.astype(lse.dtype)
    is_label = labels[..., None] == jnp.arange(x.shape[-1])
    gradient = (jnp.exp(x - lse[..., None]) - is_label) * weights.astype(x.dtype)[..., None]
    return xent, gradient


def add_z_loss(xent: jax.Array, lse: jax.Array, z_loss: Any) -> jax.Array:
    """``xent + z_loss * lse ** 2`` (PaLM's z-loss); a static 0 adds nothing."""
    if is_zero(z_loss):
        return xent
    return xent + z_loss * jnp.square(lse)
