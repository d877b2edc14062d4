"""Chunked kernels of :func:`losses_jax.linear_cross_entropy` (the logits never exist at once).

* forward: per token, an online log-sum-exp over vocabulary chunks (running peak and rescaled
  sum), the target logit and, for label smoothing, the sum of the logits;
* backward (a :func:`jax.custom_vjp`): each chunk's logits are recomputed, turned into
  ``d_logits`` for that chunk only and multiplied into the three gradients;
* vocabulary-parallel: the same kernels under :func:`jax.shard_map`, each device on its slice
  of the vocabulary, joined by one collective maximum and one collective sum per token.

Only the per-token log-sum-exp is kept between the passes. Products accumulate in float32
(float64 for float64 inputs): every sum over the vocabulary and every gradient summed over
chunks. The running peak starts at the dtype's lowest finite value and each chunk's maximum is
:func:`~losses_jax._numerics.row_peak`, the library's one max-shift policy: a row of ``-inf``
logits shifts by a finite number and its exponentials are 0, never ``-inf - -inf``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from losses_jax._numerics import accumulation_dtype, row_peak
from losses_jax._sharding import axis_size, place, resolve_mesh

__all__ = ["DEFAULT_TOKEN_CHUNK", "DEFAULT_VOCAB_CHUNK", "token_losses"]

#: Largest chunk along each axis: a chunk of logits is at most 2048 x 2048 float32 (16 MiB).
DEFAULT_VOCAB_CHUNK = 2048
DEFAULT_TOKEN_CHUNK = 2048
_VOCAB_ALIGN = 128  # lane width of TPU/GPU tiles
_TOKEN_ALIGN = 8


class _Config(NamedTuple):
    """Every static setting of the kernels (hashable: a ``nondiff_argnums`` argument)."""

    vocab_chunk: int
    token_chunk: int
    label_smoothing: float
    z_loss: float
    soft_cap: float | None
    vocab_axis: Any  # mesh axis name(s) the vocabulary is split over, or None
    token_axis: Any  # mesh axis name(s) the tokens are split over, or None
    vocab_size: int  # the full vocabulary, over every shard
    accumulate: Any  # float32, or float64 for float64 inputs ("float32+" below)


# --------------------------------------------------------------------------------------
# chunking helpers
# --------------------------------------------------------------------------------------
def _balanced_chunk(total: int, limit: int, align: int) -> int:
    """The chunk size that splits ``total`` into ceil(total / limit) near-equal aligned chunks."""
    if total <= limit:
        return max(total, 1)
    pieces = -(-total // limit)
    size = -(-total // pieces)
    return min(limit, -(-size // align) * align) if size > align else size


def _for_each_chunk(total: int, chunk: int, body, carry):
    """Runs ``carry = body(start, size, carry)`` over ``[0, total)`` in chunks of ``chunk``.

    Full chunks run in a :func:`jax.lax.fori_loop` (``start`` traced, ``size`` static); a
    shorter last chunk runs once more after it, so nothing is padded or copied.
    """
    n_full, remainder = divmod(total, chunk)
    if n_full == 1:
        carry = body(0, chunk, carry)
    elif n_full > 1:
        carry = lax.fori_loop(0, n_full, lambda i, c: body(i * chunk, chunk, c), carry)
    if remainder:
        carry = body(n_full * chunk, remainder, carry)
    return carry


def _rows(x, start, size):
    return lax.dynamic_slice_in_dim(x, start, size, axis=0)


def _cols(x, start, size):
    return lax.dynamic_slice_in_dim(x, start, size, axis=x.ndim - 1)


def _summed_over(x, axis: int):
    """``out_sharding`` of a product contracting ``x``'s ``axis``: replicated if it is sharded.

    Under explicit mesh axes, contracting a sharded axis (the tokens of a data-parallel batch,
    in the classifier's gradient) has no implicit result sharding; ask for the all-reduced one.
    """
    spec = getattr(jax.typeof(x).sharding, "spec", ())
    return PartitionSpec() if len(spec) > axis and spec[axis] is not None else None


def _chunk_logits(e_t, w_c, b_c, cfg: _Config):
    """Logits of one (token block, vocabulary chunk) in float32+, soft-capped if configured."""
    z = jnp.einsum(
        "td,dv->tv",
        e_t,
        w_c,
        preferred_element_type=cfg.accumulate,
        out_sharding=_summed_over(e_t, 1),
    )
    if b_c is not None:
        z = z + b_c.astype(cfg.accumulate)
    if cfg.soft_cap is not None:
        z = cfg.soft_cap * jnp.tanh(z / cfg.soft_cap)
    return z


def _local_labels(labels, classifier, cfg: _Config):
    """Labels relative to this device's vocabulary slice (out of range: another shard's)."""
    if cfg.vocab_axis is None:
        return labels
    return labels - lax.axis_index(cfg.vocab_axis) * classifier.shape[1]


# --------------------------------------------------------------------------------------
# forward: online log-sum-exp over vocabulary chunks
# --------------------------------------------------------------------------------------
def _local_statistics(e, w, b, labels, cfg: _Config):
    """Per token over this device's vocabulary: (peak, sum of exp(z - peak), z[label], sum z)."""
    # Shaped like the tokens so that they inherit the tokens' sharding.
    zeros = jnp.zeros_like(e[:, 0], dtype=cfg.accumulate)
    init = (jnp.full_like(zeros, jnp.finfo(cfg.accumulate).min), zeros, zeros, zeros)

    def token_block(t0, tn, stats):
        e_t, y_t = _rows(e, t0, tn), _rows(labels, t0, tn)

        def vocab_chunk(v0, vn, acc):
            peak, total, target, logit_sum = acc
            z = _chunk_logits(e_t, _cols(w, v0, vn), None if b is None else _cols(b, v0, vn), cfg)
            new_peak = jnp.maximum(peak, row_peak(z, axis=1, keepdims=False))
            total = total * jnp.exp(peak - new_peak) + jnp.sum(
                jnp.exp(z - new_peak[:, None]), axis=1
            )
            is_target = (y_t - v0)[:, None] == jnp.arange(vn)[None, :]
            target = target + jnp.sum(jnp.where(is_target, z, 0.0), axis=1)
            if cfg.label_smoothing:
                logit_sum = logit_sum + jnp.sum(z, axis=1)
            return new_peak, total, target, logit_sum

        acc = tuple(_rows(s, t0, tn) for s in stats)
        acc = _for_each_chunk(w.shape[1], cfg.vocab_chunk, vocab_chunk, acc)
        return tuple(lax.dynamic_update_slice_in_dim(s, a, t0, 0) for s, a in zip(stats, acc))

    return _for_each_chunk(e.shape[0], cfg.token_chunk, token_block, init)


def _combine_statistics(stats, cfg: _Config):
    """(log-sum-exp, target logit, logit sum) over the whole vocabulary, across shards."""
    peak, total, target, logit_sum = stats
    if cfg.vocab_axis is not None:
        global_peak = lax.pmax(peak, cfg.vocab_axis)
        total = total * jnp.exp(peak - global_peak)
        sums = (total, target, logit_sum) if cfg.label_smoothing else (total, target)
        total, target, *rest = lax.psum(sums, cfg.vocab_axis)  # one all-reduce
        logit_sum = rest[0] if rest else logit_sum
        peak = global_peak
    return peak + jnp.log(total), target, logit_sum


def _loss_from_statistics(lse, target, logit_sum, cfg: _Config):
    smoothing = cfg.label_smoothing
    loss = lse - (1.0 - smoothing) * target
    if smoothing:  # skipped when 0, so -inf logits of masked classes never meet a 0 weight
        loss = loss - (smoothing / cfg.vocab_size) * logit_sum
    if cfg.z_loss:
        loss = loss + cfg.z_loss * jnp.square(lse)
    return loss


def _forward(e, w, b, labels, cfg: _Config):
    local = _local_statistics(e, w, b, _local_labels(labels, w, cfg), cfg)
    lse, target, logit_sum = _combine_statistics(local, cfg)
    return _loss_from_statistics(lse, target, logit_sum, cfg), lse


# --------------------------------------------------------------------------------------
# backward: recompute each chunk's logits, accumulate the three gradients
# --------------------------------------------------------------------------------------
def _logits_cotangent(z, lse_t, labels_t, g_t, cfg: _Config):
    """d loss / d (pre-cap logits) of one chunk, times the per-token cotangent ``g_t``."""
    smoothing = cfg.label_smoothing
    prob = jnp.exp(z - lse_t[:, None])
    if cfg.z_loss:  # d(c * lse^2)/dz = 2 c lse softmax(z)
        prob = prob * (1.0 + 2.0 * cfg.z_loss * lse_t)[:, None]
    is_target = labels_t[:, None] == jnp.arange(z.shape[1])[None, :]
    dz = prob - jnp.where(is_target, 1.0 - smoothing, 0.0)
    if smoothing:
        dz = dz - smoothing / cfg.vocab_size
    if cfg.soft_cap is not None:  # d(cap * tanh(x / cap))/dx = 1 - tanh^2
        dz = dz * (1.0 - jnp.square(z / cfg.soft_cap))
    return dz * g_t[:, None]


def _backward(e, w, b, labels, lse, g, cfg: _Config):
    n, d = e.shape
    v = w.shape[1]
    acc = cfg.accumulate
    labels = _local_labels(labels, w, cfg)
    g = g.astype(acc)

    def vocab_chunk(v0, vn, carry):
        de, dw, db = carry
        w_c = _cols(w, v0, vn)
        b_c = None if b is None else _cols(b, v0, vn)

        def token_block(t0, tn, block):
            de, dw_c, db_c = block
            e_t = _rows(e, t0, tn)
            z = _chunk_logits(e_t, w_c, b_c, cfg)
            dz = _logits_cotangent(
                z, _rows(lse, t0, tn), _rows(labels, t0, tn) - v0, _rows(g, t0, tn), cfg
            )
            dz_in = dz.astype(e.dtype)  # the products run in the inputs' dtype
            de_t = _rows(de, t0, tn) + jnp.einsum(
                "tv,dv->td",
                dz_in,
                w_c,
                preferred_element_type=acc,
                out_sharding=_summed_over(dz_in, 1),
            )
            de = lax.dynamic_update_slice_in_dim(de, de_t, t0, 0)
            dw_c = dw_c + jnp.einsum(
                "td,tv->dv",
                e_t,
                dz_in,
                preferred_element_type=acc,
                out_sharding=_summed_over(e_t, 0),
            )
            if db_c is not None:
                db_c = db_c + jnp.sum(dz, axis=0)
            return de, dw_c, db_c

        block = (de, jnp.zeros((d, vn), acc), None if b is None else jnp.zeros((vn,), acc))
        de, dw_c, db_c = _for_each_chunk(n, cfg.token_chunk, token_block, block)
        if cfg.token_axis is not None:  # other devices hold the other tokens' contributions
            dw_c, db_c = lax.psum((dw_c, db_c), cfg.token_axis)
        # Each column block is complete here, so it is stored in the classifier's own dtype.
        dw = lax.dynamic_update_slice_in_dim(dw, dw_c.astype(w.dtype), v0, 1)
        if db is not None and db_c is not None:
            db = lax.dynamic_update_slice_in_dim(db, db_c.astype(db.dtype), v0, 0)
        return de, dw, db

    init = (
        jnp.zeros_like(e, dtype=acc),
        jnp.zeros((d, v), w.dtype),
        None if b is None else jnp.zeros((v,), b.dtype),
    )
    de, dw, db = _for_each_chunk(v, cfg.vocab_chunk, vocab_chunk, init)
    if cfg.vocab_axis is not None:  # other devices hold the other classes' contributions
        de = lax.psum(de, cfg.vocab_axis)
    return de.astype(e.dtype), dw, db


# --------------------------------------------------------------------------------------
# one custom_vjp for both paths: on one device (mesh None) or under shard_map
# --------------------------------------------------------------------------------------
def _specs(cfg: _Config, has_bias: bool):
    """PartitionSpecs of (e, w, b, per-token arrays) for shard_map."""
    bias = PartitionSpec(cfg.vocab_axis) if has_bias else None
    return (
        PartitionSpec(cfg.token_axis, None),
        PartitionSpec(None, cfg.vocab_axis),
        bias,
        PartitionSpec(cfg.token_axis),
    )


def _per_device(kernel, cfg: _Config, mesh, in_specs, out_specs):
    """``kernel`` with ``cfg`` bound, run per device over ``mesh`` (as is when it is None)."""
    fn = partial(kernel, cfg=cfg)
    if mesh is None:
        return fn
    # Replication over unnamed axes is ensured by the explicit psums in the kernels.
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def _forward_per_device(e, w, b, labels, cfg: _Config, mesh):
    e_spec, w_spec, b_spec, t_spec = _specs(cfg, b is not None)
    forward = _per_device(_forward, cfg, mesh, (e_spec, w_spec, b_spec, t_spec), (t_spec,) * 2)
    return forward(e, w, b, labels)


# The custom_vjp sits outside shard_map, so no autodiff runs through the collectives.
@partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _token_losses(e, w, b, labels, cfg: _Config, mesh):
    """(N,) float32+ losses of ``e (N, D)``, ``w (D, V)``, ``b (V,) or None``, ``labels (N,)``."""
    return _forward_per_device(e, w, b, labels, cfg, mesh)[0]


def _token_losses_fwd(e, w, b, labels, cfg, mesh):
    losses, lse = _forward_per_device(e, w, b, labels, cfg, mesh)
    return losses, (e, w, b, labels, lse)


def _token_losses_bwd(cfg, mesh, residuals, g):
    e, w, b, labels, lse = residuals
    e_spec, w_spec, b_spec, t_spec = _specs(cfg, b is not None)
    in_specs = (e_spec, w_spec, b_spec, t_spec, t_spec, t_spec)
    backward = _per_device(_backward, cfg, mesh, in_specs, (e_spec, w_spec, b_spec))
    g = g if mesh is None else place(g, t_spec, mesh)
    return (*backward(e, w, b, labels, lse, g), None)


_token_losses.defvjp(_token_losses_fwd, _token_losses_bwd)


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
def token_losses(
    e: jax.Array,
    w: jax.Array,
    b: jax.Array | None,
    labels: jax.Array,
    *,
    label_smoothing: float,
    z_loss: float,
    soft_cap: float | None,
    vocab_axis: Any,
    token_axis: Any,
    mesh: Any,
    vocab_chunk_size: int | None,
    token_chunk_size: int | None,
) -> jax.Array:
    """Per-token losses ``(N,)`` in float32+ of ``e (N, D)``, ``w (D, V)``, ``labels (N,)``.

    The options are validated by the caller; labels must be in ``[0, V)`` (ignored tokens
    already replaced by a valid id). With ``vocab_axis``, the vocabulary (and the tokens, with
    ``token_axis``) must divide evenly over the named axes of ``mesh`` (or the ambient one).
    """
    (n, _), v = e.shape, w.shape[1]
    tokens, vocab_local = n, v
    if vocab_axis is not None:
        mesh = resolve_mesh(mesh, "vocab_axis", vocab_axis)
        vocab_shards = axis_size(mesh, vocab_axis)
        token_shards = 1 if token_axis is None else axis_size(mesh, token_axis)
        if v % vocab_shards or n % token_shards:
            raise ValueError(
                f"The vocabulary ({v}) must divide evenly over vocab_axis={vocab_axis!r} "
                f"({vocab_shards} devices) and the tokens ({n}) over token_axis={token_axis!r} "
                f"({token_shards} devices)."
            )
        tokens, vocab_local = n // token_shards, v // vocab_shards
    else:
        mesh, token_axis = None, None
    vocab_chunk = vocab_chunk_size or _balanced_chunk(
        vocab_local, DEFAULT_VOCAB_CHUNK, _VOCAB_ALIGN
    )
    token_chunk = token_chunk_size or _balanced_chunk(tokens, DEFAULT_TOKEN_CHUNK, _TOKEN_ALIGN)
    cfg = _Config(
        vocab_chunk=min(vocab_chunk, max(vocab_local, 1)),
        token_chunk=min(token_chunk, max(tokens, 1)),
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        soft_cap=soft_cap,
        vocab_axis=vocab_axis,
        token_axis=token_axis,
        vocab_size=v,
        accumulate=accumulation_dtype(e.dtype),
    )
    if mesh is not None:
        specs = _specs(cfg, b is not None)
        e_spec, w_spec, b_spec, t_spec = specs
        e, w, labels = place(e, e_spec, mesh), place(w, w_spec, mesh), place(labels, t_spec, mesh)
        b = None if b is None else place(b, b_spec, mesh)
    return _token_losses(e, w, b, labels, cfg, mesh)
