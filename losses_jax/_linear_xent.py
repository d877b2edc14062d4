"""Chunked kernels of :func:`losses_jax.linear_cross_entropy` (the logits never exist at once).

* per token, an online log-sum-exp over vocabulary chunks (running peak and rescaled sum), the
  target logit and, for label smoothing, the sum of the logits;
* derivatives by JAX's own autodiff through the chunk loops, every chunk body under
  :func:`jax.checkpoint`: reverse mode recomputes each chunk's logits instead of storing them,
  forward mode carries tangents chunk by chunk, and second derivatives, ``vmap`` and traced
  options (``label_smoothing``, ``z_loss``, ``soft_cap``) need nothing more;
* vocabulary-parallel: the same kernel under :func:`jax.shard_map`, each device on its slice
  of the vocabulary, joined by one collective maximum and one collective sum per token.

What is kept between the passes is the loops' carries: a few numbers per token and chunk. The
running peaks are constants for differentiation (the log-sum-exp does not depend on them), so
the derivative flows through the rescaled sums alone and is the softmax. Products accumulate in
float32 (float64 for float64 inputs). The running peak starts at the dtype's lowest finite
value and each chunk's maximum is :func:`~losses_jax._numerics.row_peak`, the library's one
max-shift policy: a row of ``-inf`` logits shifts by a finite number and its exponentials are
0, never ``-inf - -inf``.
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
from losses_jax._validation import is_zero

__all__ = ["DEFAULT_TOKEN_CHUNK", "DEFAULT_VOCAB_CHUNK", "token_losses"]

#: Largest chunk along each axis: a chunk of logits is at most 2048 x 1024 float32 (8 MiB);
#: reverse mode holds three such arrays at once (the logits, their exponentials, the cotangent).
DEFAULT_VOCAB_CHUNK = 1024
DEFAULT_TOKEN_CHUNK = 2048
_VOCAB_ALIGN = 128  # lane width of TPU/GPU tiles
_TOKEN_ALIGN = 8


class Options(NamedTuple):
    """The real-valued options, as arrays (a term whose option is a static 0 is left out)."""

    label_smoothing: Any
    z_loss: Any
    soft_cap: Any


class _Config(NamedTuple):
    """Every static setting of the kernels."""

    vocab_chunk: int
    token_chunk: int
    smoothing: bool  # which terms exist; their weights are array operands (may be traced)
    z_loss: bool
    soft_cap: bool
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


def _chunk_logits(e_t, w_c, b_c, opts: Options, cfg: _Config):
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
    if cfg.soft_cap:
        z = opts.soft_cap * jnp.tanh(z / opts.soft_cap)
    return z


def _varying_over(x, axes):
    """``x`` typed as varying over mesh ``axes`` inside ``shard_map`` (``pvary`` before JAX
    introduced ``pcast``)."""
    if hasattr(lax, "pcast"):
        return lax.pcast(x, axes, to="varying")
    return getattr(lax, "pvary")(x, axes)  # noqa: B009 (absent from newer JAX's stubs)


def _local_labels(labels, classifier, cfg: _Config):
    """Labels relative to this device's vocabulary slice (out of range: another shard's)."""
    if cfg.vocab_axis is None:
        return labels
    return labels - lax.axis_index(cfg.vocab_axis) * classifier.shape[1]


# --------------------------------------------------------------------------------------
# forward: online log-sum-exp over vocabulary chunks
# --------------------------------------------------------------------------------------
def _local_statistics(e, w, b, labels, opts: Options, cfg: _Config):
    """Per token over this device's vocabulary: (peak, sum of exp(z - peak), z[label], sum z)."""
    # Shaped like the tokens so that they inherit the tokens' sharding.
    zeros = jnp.zeros_like(e[:, 0], dtype=cfg.accumulate)
    if cfg.vocab_axis is not None:  # each device's statistics cover its own vocabulary slice
        zeros = _varying_over(zeros, cfg.vocab_axis)
    init = (jnp.full_like(zeros, jnp.finfo(cfg.accumulate).min), zeros, zeros, zeros)

    def token_block(t0, tn, stats):
        e_t, y_t = _rows(e, t0, tn), _rows(labels, t0, tn)

        # Rematerialised: reverse mode recomputes the chunk's logits rather than storing them.
        @partial(jax.checkpoint, prevent_cse=False, static_argnums=(1,))
        def vocab_chunk(v0, vn, acc):
            peak, total, target, logit_sum = acc
            b_c = None if b is None else _cols(b, v0, vn)
            z = _chunk_logits(e_t, _cols(w, v0, vn), b_c, opts, cfg)
            # The peaks are shifts the result does not depend on: constants for autodiff.
            new_peak = lax.stop_gradient(jnp.maximum(peak, row_peak(z, axis=1, keepdims=False)))
            total = total * jnp.exp(peak - new_peak) + jnp.sum(
                jnp.exp(z - new_peak[:, None]), axis=1
            )
            is_target = (y_t - v0)[:, None] == jnp.arange(vn)[None, :]
            target = target + jnp.sum(jnp.where(is_target, z, 0.0), axis=1)
            if cfg.smoothing:
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
        global_peak = lax.stop_gradient(lax.pmax(peak, cfg.vocab_axis))
        total = total * jnp.exp(peak - global_peak)
        sums = (total, target, logit_sum) if cfg.smoothing else (total, target)
        total, target, *rest = lax.psum(sums, cfg.vocab_axis)  # one all-reduce
        logit_sum = rest[0] if rest else logit_sum
        peak = global_peak
    return peak + jnp.log(total), target, logit_sum


def _loss_from_statistics(lse, target, logit_sum, opts: Options, cfg: _Config):
    if not cfg.smoothing:  # so -inf logits of masked classes never meet a 0 weight
        loss = lse - target
    else:
        smoothing = opts.label_smoothing
        loss = lse - (1.0 - smoothing) * target - (smoothing / cfg.vocab_size) * logit_sum
    if cfg.z_loss:
        loss = loss + opts.z_loss * jnp.square(lse)
    return loss


def _forward(e, w, b, labels, opts: Options, cfg: _Config):
    local = _local_statistics(e, w, b, _local_labels(labels, w, cfg), opts, cfg)
    lse, target, logit_sum = _combine_statistics(local, cfg)
    return _loss_from_statistics(lse, target, logit_sum, opts, cfg)


# --------------------------------------------------------------------------------------
# on one device (mesh None) or under shard_map
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


def _token_losses(e, w, b, labels, opts: Options, cfg: _Config, mesh):
    """(N,) float32+ losses of ``e (N, D)``, ``w (D, V)``, ``b (V,) or None``, ``labels (N,)``."""
    forward = partial(_forward, cfg=cfg)
    if mesh is None:
        return forward(e, w, b, labels, opts)
    e_spec, w_spec, b_spec, t_spec = _specs(cfg, b is not None)
    options_spec = Options(*(PartitionSpec() for _ in opts))
    in_specs = (e_spec, w_spec, b_spec, t_spec, options_spec)
    forward = jax.shard_map(forward, mesh=mesh, in_specs=in_specs, out_specs=t_spec)
    return forward(e, w, b, labels, opts)


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------
def local_split(n: int, v: int, vocab_axis: Any, token_axis: Any, mesh: Any) -> tuple:
    """``(tokens, vocab, mesh, token_axis)`` per device for ``n`` tokens and a vocabulary of
    ``v``, checking that they divide evenly over the named axes (unsharded: ``n, v, None, None``)."""
    if vocab_axis is None:
        return n, v, None, None
    mesh = resolve_mesh(mesh, "vocab_axis", vocab_axis)
    vocab_shards = axis_size(mesh, vocab_axis)
    token_shards = 1 if token_axis is None else axis_size(mesh, token_axis)
    if v % vocab_shards or n % token_shards:
        raise ValueError(
            f"The vocabulary ({v}) must divide evenly over vocab_axis={vocab_axis!r} "
            f"({vocab_shards} devices) and the tokens ({n}) over token_axis={token_axis!r} "
            f"({token_shards} devices)."
        )
    return n // token_shards, v // vocab_shards, mesh, token_axis


def token_losses(
    e: jax.Array,
    w: jax.Array,
    b: jax.Array | None,
    labels: jax.Array,
    *,
    label_smoothing: Any,
    z_loss: Any,
    soft_cap: Any,
    vocab_axis: Any,
    token_axis: Any,
    mesh: Any,
    vocab_chunk_size: int | None,
    token_chunk_size: int | None,
) -> jax.Array:
    """Per-token losses ``(N,)`` in float32+ of ``e (N, D)``, ``w (D, V)``, ``labels (N,)``.

    The options are validated by the caller and may be traced (a static 0, or a ``soft_cap``
    of None, leaves its term out); labels must be in ``[0, V)`` (ignored tokens already
    replaced by a valid id). With ``vocab_axis``, the vocabulary (and the tokens, with
    ``token_axis``) must divide evenly over the named axes of ``mesh`` (or the ambient one).
    """
    (n, _), v = e.shape, w.shape[1]
    tokens, vocab_local, mesh, token_axis = local_split(n, v, vocab_axis, token_axis, mesh)
    vocab_chunk = vocab_chunk_size or _balanced_chunk(
        vocab_local, DEFAULT_VOCAB_CHUNK, _VOCAB_ALIGN
    )
    token_chunk = token_chunk_size or _balanced_chunk(tokens, DEFAULT_TOKEN_CHUNK, _TOKEN_ALIGN)
    cfg = _Config(
        vocab_chunk=min(vocab_chunk, max(vocab_local, 1)),
        token_chunk=min(token_chunk, max(tokens, 1)),
        smoothing=not is_zero(label_smoothing),
        z_loss=not is_zero(z_loss),
        soft_cap=soft_cap is not None,
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
    acc = cfg.accumulate
    opts = Options(
        *(jnp.asarray(0.0 if x is None else x, acc) for x in (label_smoothing, z_loss, soft_cap))
    )
    return _token_losses(e, w, b, labels, opts, cfg, mesh)
