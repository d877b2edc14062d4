r"""Large-vocabulary softmax cross-entropy that never materialises the logits.

A language model's loss ``CE(softmax(embeddings @ classifier), labels)`` needs ``N x V`` logits
and as many gradients: at 2048 tokens and a 32768-word vocabulary that is 512 MiB of float32
scratch memory, more than the rest of a small model. :func:`linear_cross_entropy` computes the
same loss and gradients in vocabulary chunks (and token chunks for long batches):

* the forward pass keeps, per token, an online log-sum-exp (running maximum and rescaled sum),
  the target logit and, for label smoothing, the sum of the logits;
* the backward pass (a :func:`jax.custom_vjp`) recomputes each chunk's logits, forms
  ``d_logits = (softmax - target) * g`` for that chunk only and accumulates the gradients of
  the embeddings, the classifier and the bias.

Only the per-token log-sum-exp is kept between the passes. Matrix products accumulate in
float32, and so do every sum over the vocabulary and every gradient that is summed over
chunks, for bfloat16/float16 inputs too.

Per token, with ``z = cap * tanh((e @ W + b) / cap)`` (``z = e @ W + b`` without a soft cap),
``lse = log(sum(exp(z)))``, label smoothing ``ls`` and z-loss weight ``c``::

    loss = lse - (1 - ls) * z[label] - (ls / V) * sum(z) + c * lse ** 2

which is the cross-entropy of ``softmax(z)`` against ``(1 - ls) * one_hot(label) + ls / V``
(Keras's sparse label smoothing) plus PaLM's z-loss. Tokens whose label is ``ignore_class``
give a loss of 0 and are left out of the mean's divisor, as in Keras.

Vocabulary-parallel sharding
----------------------------
With the classifier's vocabulary axis sharded over a mesh axis, pass ``vocab_axis`` (the
mesh axis name). Each device then computes the log-sum-exp statistics of its own slice of the
vocabulary; they are combined with one collective maximum and one collective sum per token
(:func:`jax.shard_map` over the mesh), and the gradient of the embeddings is summed the same
way. Neither the full classifier nor any logits are gathered on one device. ``token_axis``
names the mesh axis (or axes) the tokens are sharded over (data parallelism), if any. The mesh
is ``mesh=`` or the ambient one (``with jax.set_mesh(mesh):``). The vocabulary must divide
evenly between the ``vocab_axis`` devices, and the tokens between the ``token_axis`` devices.

With flax, give the output layer's kernel (and bias) a vocabulary-sharded partitioning, do
not call the layer, and pass its parameters to the loss. ``flax.nnx``, on any mesh::

    mesh = jax.make_mesh((2, 4), ("data", "model"))
    with jax.set_mesh(mesh):
        head = nnx.Linear(D, V, rngs=nnx.Rngs(0),
                          kernel_init=nnx.with_partitioning(init, (None, "model")),
                          bias_init=nnx.with_partitioning(nnx.initializers.zeros, ("model",)))
        loss = linear_cross_entropy(
            hidden, head.kernel[...], labels, bias=head.bias[...],
            vocab_axis="model", token_axis="data", ignore_class=-100,
        )

``flax.linen`` (``nn.Dense(V, kernel_init=nn.with_partitioning(init, (None, "model")))``)
applies its partitioning with sharding constraints, which needs a mesh of automatic axes,
``jax.make_mesh(..., axis_types=(jax.sharding.AxisType.Auto,) * 2)``; then pass
``nn.meta.unbox(variables)["params"]["lm_head"]["kernel"]`` the same way.

On several hosts, call ``jax.distributed.initialize()`` first in every process and build the
mesh over all hosts' devices (``jax.make_mesh`` uses ``jax.devices()``, which lists them all);
the same code then runs as one SPMD program whose collectives cross hosts. Each process
turns its own batch into global arrays, e.g. ``jax.make_array_from_process_local_data(
NamedSharding(mesh, P("data")), local_labels)``; the parameters are global arrays as usual.
Per loss call, the vocabulary collectives are one maximum and one sum of two floats (three
with label smoothing) per local token in the forward pass and one sum of the ``(tokens, D)``
embedding gradient in the backward pass. Keep ``vocab_axis`` within a host where possible:
``jax.devices()`` lists each process's devices together, so a last mesh axis no larger than
``jax.local_device_count()`` stays inside one host.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec

from losses_jax.base import Loss, reduce_weighted_values
from losses_jax.checks import check_labels_in_range
from losses_jax.numerics import accumulation_dtype, as_label_array, check_number

__all__ = ["LinearCrossEntropy", "linear_cross_entropy"]

#: Largest chunk along each axis: a chunk of logits is at most 2048 x 2048 float32 (16 MiB).
DEFAULT_VOCAB_CHUNK = 2048
DEFAULT_TOKEN_CHUNK = 2048
_VOCAB_ALIGN = 128  # lane width of TPU/GPU tiles
_TOKEN_ALIGN = 8


class _Config(NamedTuple):
    """Static settings of the chunked kernels (hashable: a ``nondiff_argnums`` argument)."""

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


def _matmul(a, b, contract, cfg: _Config):
    """``a`` times ``b`` over the given (a-axis, b-axis) pair, accumulated in ``cfg.accumulate``."""
    dims = (((contract[0],), (contract[1],)), ((), ()))
    spec = getattr(jax.typeof(a).sharding, "spec", ())
    # Contracting a batch-sharded axis under explicit mesh axes: ask for the all-reduced result.
    sharded_contraction = len(spec) > contract[0] and spec[contract[0]] is not None
    out_sharding = PartitionSpec() if sharded_contraction else None
    return lax.dot_general(
        a, b, dims, preferred_element_type=cfg.accumulate, out_sharding=out_sharding
    )


def _chunk_logits(e_t, w_c, b_c, cfg: _Config):
    """Logits of one (token block, vocabulary chunk) in float32+, soft-capped if configured."""
    z = _matmul(e_t, w_c, (1, 0), cfg)
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


def _finite_or_zero(x):
    return jnp.where(jnp.isfinite(x), x, 0.0)


# --------------------------------------------------------------------------------------
# forward: online log-sum-exp over vocabulary chunks
# --------------------------------------------------------------------------------------
def _local_statistics(e, w, b, labels, cfg: _Config):
    """Per token over this device's vocabulary: (max, sum of exp(z - max), z[label], sum z).

    The sum is taken relative to ``max`` where it is finite, else relative to 0, so
    all-``-inf`` chunks never produce ``-inf - -inf``.
    """
    n = e.shape[0]
    # Shaped like the tokens so that they inherit the tokens' sharding.
    zeros = jnp.zeros_like(e[:, 0], dtype=cfg.accumulate)
    init = (jnp.full_like(zeros, -jnp.inf), zeros, zeros, zeros)

    def token_block(t0, tn, stats):
        e_t, y_t = _rows(e, t0, tn), _rows(labels, t0, tn)

        def vocab_chunk(v0, vn, acc):
            peak, total, target, logit_sum = acc
            z = _chunk_logits(e_t, _cols(w, v0, vn), None if b is None else _cols(b, v0, vn), cfg)
            new_peak = jnp.maximum(peak, jnp.max(z, axis=1))
            ref = _finite_or_zero(new_peak)
            total = total * jnp.exp(peak - ref) + jnp.sum(jnp.exp(z - ref[:, None]), axis=1)
            is_target = (y_t - v0)[:, None] == jnp.arange(vn)[None, :]
            target = target + jnp.sum(jnp.where(is_target, z, 0.0), axis=1)
            if cfg.label_smoothing:
                logit_sum = logit_sum + jnp.sum(z, axis=1)
            return new_peak, total, target, logit_sum

        acc = tuple(_rows(s, t0, tn) for s in stats)
        acc = _for_each_chunk(w.shape[1], cfg.vocab_chunk, vocab_chunk, acc)
        return tuple(lax.dynamic_update_slice_in_dim(s, a, t0, 0) for s, a in zip(stats, acc))

    return _for_each_chunk(n, cfg.token_chunk, token_block, init)


def _combine_statistics(stats, cfg: _Config):
    """(log-sum-exp, target logit, logit sum) over the whole vocabulary, across shards."""
    peak, total, target, logit_sum = stats
    if cfg.vocab_axis is not None:
        global_peak = _finite_or_zero(lax.pmax(peak, cfg.vocab_axis))
        total = total * jnp.exp(peak - global_peak)
        sums = (total, target, logit_sum) if cfg.label_smoothing else (total, target)
        total, target, *rest = lax.psum(sums, cfg.vocab_axis)  # one all-reduce
        logit_sum = rest[0] if rest else logit_sum
        peak = global_peak
    return _finite_or_zero(peak) + jnp.log(total), target, logit_sum


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
    labels = _local_labels(labels, w, cfg)
    g = g.astype(cfg.accumulate)

    def vocab_chunk(v0, vn, carry):
        de, dw, db = carry
        w_c = _cols(w, v0, vn)
        b_c = None if b is None else _cols(b, v0, vn)

        def token_block(t0, tn, acc):
            de, dw_c, db_c = acc
            e_t = _rows(e, t0, tn)
            z = _chunk_logits(e_t, w_c, b_c, cfg)
            dz = _logits_cotangent(
                z, _rows(lse, t0, tn), _rows(labels, t0, tn) - v0, _rows(g, t0, tn), cfg
            )
            dz_operand = dz.astype(e.dtype)  # the matmuls run in the inputs' dtype
            de_t = _rows(de, t0, tn) + _matmul(dz_operand, w_c, (1, 1), cfg)
            de = lax.dynamic_update_slice_in_dim(de, de_t, t0, 0)
            dw_c = dw_c + _matmul(e_t, dz_operand, (0, 0), cfg)
            if db_c is not None:
                db_c = db_c + jnp.sum(dz, axis=0)
            return de, dw_c, db_c

        acc = cfg.accumulate
        chunk_acc = (de, jnp.zeros((d, vn), acc), None if b is None else jnp.zeros((vn,), acc))
        de, dw_c, db_c = _for_each_chunk(n, cfg.token_chunk, token_block, chunk_acc)
        if cfg.token_axis is not None:  # other devices hold the other tokens' contributions
            dw_c, db_c = lax.psum((dw_c, db_c), cfg.token_axis)
        # Each column block is complete here, so it is stored in the classifier's own dtype.
        dw = lax.dynamic_update_slice_in_dim(dw, dw_c.astype(w.dtype), v0, 1)
        if db is not None:
            db = lax.dynamic_update_slice_in_dim(db, db_c.astype(b.dtype), v0, 0)
        return de, dw, db

    init = (
        jnp.zeros_like(e, dtype=cfg.accumulate),
        jnp.zeros((d, v), w.dtype),
        None if b is None else jnp.zeros((v,), b.dtype),
    )
    de, dw, db = _for_each_chunk(v, cfg.vocab_chunk, vocab_chunk, init)
    if cfg.vocab_axis is not None:  # other devices hold the other classes' contributions
        de = lax.psum(de, cfg.vocab_axis)
    return de.astype(e.dtype), dw, db


@partial(jax.custom_vjp, nondiff_argnums=(4,))
def _token_losses(e, w, b, labels, cfg: _Config):
    """(N,) float32+ losses of ``e (N, D)``, ``w (D, V)``, ``b (V,) or None``, ``labels (N,)``."""
    return _forward(e, w, b, labels, cfg)[0]


def _token_losses_fwd(e, w, b, labels, cfg):
    losses, lse = _forward(e, w, b, labels, cfg)
    return losses, (e, w, b, labels, lse)


def _token_losses_bwd(cfg, residuals, g):
    e, w, b, labels, lse = residuals
    return (*_backward(e, w, b, labels, lse, g, cfg), None)


_token_losses.defvjp(_token_losses_fwd, _token_losses_bwd)


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _static_number(value, name: str, **bounds) -> float:
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"`{name}` must be a Python number: it selects the compiled kernel. Received a traced "
            f"value; close over it or mark it static in jax.jit."
        )
    return float(check_number(value, name, **bounds))


def _chunk_option(value, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive int or None; received {name}={value!r}.")
    return int(value)


def _axis_option(value, name: str):
    """A mesh axis name, a tuple of names, or None (lists become tuples, so options hash)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise TypeError(f"`{name}` must be a mesh axis name, a tuple of names or None; got {value!r}.")


def _cap_option(value) -> float | None:
    if value is None:
        return None
    return _static_number(value, "logit_soft_cap", low=0.0, low_inclusive=False)


def _ignore_option(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`ignore_class` must be an int or None; received {value!r}.")
    return int(value)


def _float_input(x, name: str) -> jax.Array:
    try:
        x = jnp.asarray(x)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a floating array; received {type(x).__name__} of dtype "
            f"{getattr(x, 'dtype', '?')}."
        ) from None
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating array; received dtype {x.dtype}.")
    return x


def _check_inputs(embeddings, classifier, labels, bias):
    """Converts and validates the arrays; returns them with labels aligned to the tokens."""
    embeddings = _float_input(embeddings, "embeddings")
    classifier = _float_input(classifier, "classifier")
    if embeddings.ndim < 1:
        raise ValueError("`embeddings` must have shape (..., D); received a scalar.")
    if classifier.ndim != 2 or classifier.shape[0] != embeddings.shape[-1]:
        raise ValueError(
            f"`classifier` must have shape (D, V) with D = embeddings.shape[-1] = "
            f"{embeddings.shape[-1]} (a flax Dense kernel); received embeddings of shape "
            f"{embeddings.shape} and classifier of shape {classifier.shape}."
        )
    vocab = classifier.shape[1]
    if bias is not None:
        bias = _float_input(bias, "bias")
        if bias.shape != (vocab,):
            raise ValueError(
                f"`bias` must have shape (V,) = ({vocab},) to match classifier of shape "
                f"{classifier.shape}; received bias of shape {bias.shape}."
            )
    labels = as_label_array(labels, "labels")
    tokens = embeddings.shape[:-1]
    if labels.shape == (*tokens, 1) and labels.shape != tokens:
        labels = labels[..., 0]
    if labels.shape != tokens:
        raise ValueError(
            f"`labels` must have shape embeddings.shape[:-1] = {tokens}; received labels of shape "
            f"{labels.shape} and embeddings of shape {embeddings.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        labels = labels.astype(jnp.int32)  # class ids given as floats/bools, as Keras accepts
    return embeddings, classifier, labels, bias


def _combine_masks(ignore_mask, mask):
    """``ignore_mask & mask``, a coarser ``mask`` (e.g. (batch,)) covering leading dims."""
    if mask is None:
        return ignore_mask
    if ignore_mask is None:
        return mask
    mask = as_label_array(mask, "mask") != 0
    if mask.ndim < ignore_mask.ndim and mask.shape == ignore_mask.shape[: mask.ndim]:
        mask = mask.reshape(mask.shape + (1,) * (ignore_mask.ndim - mask.ndim))
    try:
        return jnp.logical_and(ignore_mask, mask)
    except (TypeError, ValueError):
        raise ValueError(
            f"`mask` of shape {mask.shape} does not broadcast to the per-token losses of shape "
            f"{ignore_mask.shape}."
        ) from None


# --------------------------------------------------------------------------------------
# dispatch: one device, or vocabulary-parallel with shard_map
# --------------------------------------------------------------------------------------
def _make_config(tokens, vocab_local, vocab_size, opts, sharded: bool, dtype) -> _Config:
    vocab_chunk = opts["vocab_chunk_size"] or _balanced_chunk(
        vocab_local, DEFAULT_VOCAB_CHUNK, _VOCAB_ALIGN
    )
    token_chunk = opts["token_chunk_size"] or _balanced_chunk(
        tokens, DEFAULT_TOKEN_CHUNK, _TOKEN_ALIGN
    )
    return _Config(
        vocab_chunk=min(vocab_chunk, max(vocab_local, 1)),
        token_chunk=min(token_chunk, max(tokens, 1)),
        label_smoothing=opts["label_smoothing"],
        z_loss=opts["z_loss"],
        soft_cap=opts["logit_soft_cap"],
        vocab_axis=opts["vocab_axis"] if sharded else None,
        token_axis=opts["token_axis"] if sharded else None,
        vocab_size=vocab_size,
        accumulate=accumulation_dtype(dtype),
    )


def _axis_size(mesh, axis) -> int:
    names = (axis,) if isinstance(axis, str) else axis
    missing = [a for a in names if a not in mesh.axis_names]
    if missing:
        raise ValueError(
            f"Mesh axis {missing} not found: the mesh has axes {tuple(mesh.axis_names)}. Pass "
            f"`mesh=` or call inside `with jax.set_mesh(mesh):`."
        )
    return int(np.prod([mesh.shape[a] for a in names]))


def _sharded_token_losses(e, w, b, labels, opts, mesh):
    """Per-token losses with the vocabulary split over ``opts["vocab_axis"]`` (shard_map)."""
    vocab_axis, token_axis = opts["vocab_axis"], opts["token_axis"]
    mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
    if mesh is None or mesh.empty:
        raise ValueError(
            f"vocab_axis={vocab_axis!r} needs a device mesh: pass `mesh=` or call inside "
            f"`with jax.set_mesh(mesh):`."
        )
    vocab_shards = _axis_size(mesh, vocab_axis)
    token_shards = 1 if token_axis is None else _axis_size(mesh, token_axis)
    (n, _), v = e.shape, w.shape[1]
    if v % vocab_shards or n % token_shards:
        raise ValueError(
            f"The vocabulary ({v}) must divide evenly over vocab_axis={vocab_axis!r} "
            f"({vocab_shards} devices) and the tokens ({n}) over token_axis={token_axis!r} "
            f"({token_shards} devices)."
        )
    cfg = _make_config(n // token_shards, v // vocab_shards, v, opts, True, e.dtype)
    e_spec, w_spec = PartitionSpec(token_axis, None), PartitionSpec(None, vocab_axis)
    t_spec, b_spec = PartitionSpec(token_axis), None if b is None else PartitionSpec(vocab_axis)

    def per_device(fn, in_specs, out_specs):
        # The replication over unnamed axes is ensured by the explicit psums in the kernels.
        return jax.shard_map(
            partial(fn, cfg=cfg),
            mesh=mesh,
            in_specs=in_specs,
            out_specs=out_specs,
            check_vma=False,
        )

    forward = per_device(_forward, (e_spec, w_spec, b_spec, t_spec), (t_spec, t_spec))
    backward = per_device(
        _backward, (e_spec, w_spec, b_spec, t_spec, t_spec, t_spec), (e_spec, w_spec, b_spec)
    )

    # The custom_vjp sits outside shard_map, so no autodiff runs through the collectives.
    @jax.custom_vjp
    def token_losses(e, w, b, labels):
        return forward(e, w, b, labels)[0]

    def token_losses_fwd(e, w, b, labels):
        losses, lse = forward(e, w, b, labels)
        return losses, (e, w, b, labels, lse)

    def token_losses_bwd(residuals, g):
        return (*backward(*residuals, _place(g, t_spec, mesh)), None)

    token_losses.defvjp(token_losses_fwd, token_losses_bwd)
    specs = (e_spec, w_spec, b_spec, t_spec)
    return token_losses(*(_place(x, spec, mesh) for x, spec in zip((e, w, b, labels), specs)))


def _place(x, spec, mesh):
    """``x`` resharded to ``spec`` where the mesh has explicit axes (shard_map demands it)."""
    explicit = any(t == jax.sharding.AxisType.Explicit for t in mesh.axis_types)
    if x is None or not explicit:
        return x
    target = jax.sharding.NamedSharding(mesh, spec) if isinstance(mesh, jax.sharding.Mesh) else spec
    return jax.sharding.reshard(x, target)


def _per_token_losses(embeddings, classifier, labels, bias, opts, mesh):
    """Unreduced losses of shape ``labels.shape`` (0 at ignored tokens) and the ignore mask."""
    embeddings, classifier, labels, bias = _check_inputs(embeddings, classifier, labels, bias)
    vocab = classifier.shape[1]
    ignore = opts["ignore_class"]
    labels = check_labels_in_range(labels, vocab, "labels", ignore=ignore)
    keep = None if ignore is None else labels != ignore
    safe_labels = labels if keep is None else jnp.where(keep, labels, 0)

    dtype = jnp.result_type(embeddings.dtype, classifier.dtype)
    e = embeddings.astype(dtype).reshape(-1, embeddings.shape[-1])
    w = classifier.astype(dtype)
    flat_labels = safe_labels.reshape(-1)
    if opts["vocab_axis"] is None:
        cfg = _make_config(e.shape[0], vocab, vocab, opts, False, dtype)
        losses = _token_losses(e, w, bias, flat_labels, cfg)
    else:
        losses = _sharded_token_losses(e, w, bias, flat_labels, opts, mesh)
    losses = losses.reshape(labels.shape)
    if keep is not None:
        losses = jnp.where(keep, losses, 0.0)
    return losses, keep


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def linear_cross_entropy(
    embeddings,
    classifier,
    labels,
    *,
    bias=None,
    ignore_class: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_soft_cap: float | None = None,
    sample_weight=None,
    mask=None,
    reduction="sum_over_batch_size",
    vocab_axis=None,
    token_axis=None,
    mesh=None,
    vocab_chunk_size: int | None = None,
    token_chunk_size: int | None = None,
    dtype=None,
) -> jax.Array:
    r"""Softmax cross-entropy of ``embeddings @ classifier + bias`` without forming the logits.

    Per token, with ``z = cap * tanh((e @ W + b) / cap)`` (no ``tanh`` unless
    ``logit_soft_cap`` is given), ``lse = logsumexp(z)`` and ``ls = label_smoothing``::

        loss = lse - (1 - ls) * z[label] - (ls / V) * sum(z) + z_loss * lse ** 2

    the cross-entropy against ``(1 - ls) * one_hot(label) + ls / V`` plus PaLM's z-loss.
    Tokens whose label is ``ignore_class`` give 0 and are left out of the mean's divisor.
    The losses are then weighted and reduced by :func:`losses_jax.reduce_weighted_values`.
    Logits are computed in chunks of at most ``vocab_chunk_size`` classes by
    ``token_chunk_size`` tokens (default 2048 each, balanced), in the forward pass and again
    in the backward pass; memory beyond the inputs and gradients is a few chunks.

    Args:
        embeddings: ``(..., D)`` float array (final hidden states); any leading dims.
        classifier: ``(D, V)`` float array, laid out as a flax ``Dense`` kernel. The matmuls
            run in the promoted dtype of ``embeddings`` and ``classifier`` and accumulate
            in float32.
        labels: integer class ids of shape ``embeddings.shape[:-1]`` (a trailing 1 is allowed)
            in ``[0, V)``; ids out of range are not checked (their target logit counts as 0)
            except under :func:`losses_jax.checked`.
        bias: optional ``(V,)`` bias.
        ignore_class: label id to ignore (e.g. ``-100`` for padding), or None.
        label_smoothing: in ``[0, 1]``.
        z_loss: weight ``>= 0`` of ``lse ** 2``.
        logit_soft_cap: optional ``cap > 0`` (Gemma 2's ``cap * tanh(z / cap)``).
        sample_weight: optional weights: scalar, over leading dims, or of shape
            ``labels.shape``.
        mask: optional boolean mask of the tokens (or of leading dims), combined with
            ``ignore_class``.
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, or ``None``/``"none"`` for per-token losses of
            shape ``labels.shape``.
        vocab_axis: mesh axis name(s) that ``classifier`` (and ``bias``) are sharded over
            along the vocabulary; see the module docs.
        token_axis: mesh axis name(s) the tokens are sharded over (with ``vocab_axis``).
        mesh: the mesh for ``vocab_axis`` (default: the ambient ``jax.set_mesh`` one).
        vocab_chunk_size, token_chunk_size: largest chunk sizes (default 2048).
        dtype: result dtype (default: the accumulation dtype, float32 unless the inputs are
            float64).

    Returns:
        A scalar, or ``labels.shape`` per-token losses for ``reduction="none"``.

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 3 tokens, D = 2
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])  # V = 3
        >>> labels = jnp.array([0, 1, -100])  # the last token is padding
        >>> loss = lj.linear_cross_entropy(e, w, labels, ignore_class=-100)
        >>> logits = e[:2] @ w  # the naive path, for comparison
        >>> naive = jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[jnp.arange(2), labels[:2]])
        >>> print(f"{float(loss):.4f} {float(naive):.4f}")
        0.5439 0.5439
        >>> per_token = lj.linear_cross_entropy(e, w, labels, ignore_class=-100, reduction=None)
        >>> [round(float(x), 4) for x in per_token]
        [0.4076, 0.6803, 0.0]
    """
    loss = LinearCrossEntropy(
        ignore_class=ignore_class,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        logit_soft_cap=logit_soft_cap,
        vocab_axis=vocab_axis,
        token_axis=token_axis,
        vocab_chunk_size=vocab_chunk_size,
        token_chunk_size=token_chunk_size,
        reduction=reduction,
    )
    return loss._reduced(labels, embeddings, sample_weight, mask, classifier, bias, mesh, dtype)


class LinearCrossEntropy(Loss):
    r"""Large-vocabulary softmax cross-entropy from embeddings and a classifier (no logits).

    The class form of :func:`linear_cross_entropy`: the options are fixed at construction and
    the trained parameters are passed on each call::

        loss(labels, embeddings, sample_weight=None, mask=None, *, classifier, bias=None)

    ``labels`` (``(...)`` integer ids) and ``embeddings`` (``(..., D)``) take the places of
    ``y_true`` and ``y_pred``; ``classifier`` is ``(D, V)`` and ``bias`` ``(V,)``. The
    per-token loss is ``lse - (1 - ls) z[label] - (ls / V) sum(z) + z_loss lse^2`` (see
    :func:`linear_cross_entropy`); tokens labelled ``ignore_class`` are masked out of the
    reduction. ``dtype`` is the result dtype: the matmuls run in the inputs' own dtype and
    accumulate in float32. With ``vocab_axis``, the mesh is the ambient one
    (``with jax.set_mesh(mesh):``).

    Args:
        ignore_class, label_smoothing, z_loss, logit_soft_cap, vocab_axis, token_axis,
            vocab_chunk_size, token_chunk_size: as for :func:`linear_cross_entropy`.
        reduction, name, dtype: as for :class:`losses_jax.Loss`.

    Examples:
        >>> loss = lj.LinearCrossEntropy(ignore_class=-100, z_loss=1e-4)
        >>> e = jnp.array([[[1.0, 0.0], [0.0, 2.0]]])  # (batch, sequence, D)
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
        >>> print(f"{float(loss(jnp.array([[0, -100]]), e, classifier=w)):.4f}")
        0.4078
        >>> type(loss).from_config(loss.get_config()) == loss
        True
    """

    def __init__(
        self,
        ignore_class: int | None = None,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        logit_soft_cap: float | None = None,
        vocab_axis=None,
        token_axis=None,
        vocab_chunk_size: int | None = None,
        token_chunk_size: int | None = None,
        reduction="sum_over_batch_size",
        name: str | None = None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self._opts = {
            "ignore_class": _ignore_option(ignore_class),
            "label_smoothing": _static_number(
                label_smoothing, "label_smoothing", low=0.0, high=1.0
            ),
            "z_loss": _static_number(z_loss, "z_loss", low=0.0),
            "logit_soft_cap": _cap_option(logit_soft_cap),
            "vocab_axis": _axis_option(vocab_axis, "vocab_axis"),
            "token_axis": _axis_option(token_axis, "token_axis"),
            "vocab_chunk_size": _chunk_option(vocab_chunk_size, "vocab_chunk_size"),
            "token_chunk_size": _chunk_option(token_chunk_size, "token_chunk_size"),
        }

    def __call__(
        self, y_true, y_pred, sample_weight=None, mask=None, *, classifier, bias=None
    ) -> jax.Array:
        return self._reduced(
            y_true, y_pred, sample_weight, mask, classifier, bias, None, self.dtype
        )

    def _reduced(self, labels, embeddings, sample_weight, mask, classifier, bias, mesh, dtype):
        losses, keep = _per_token_losses(embeddings, classifier, labels, bias, self._opts, mesh)
        return reduce_weighted_values(
            losses,
            sample_weight=sample_weight,
            mask=_combine_masks(keep, mask),
            reduction=self.reduction,
            dtype=dtype,
        )

    def call(self, y_true, y_pred, *, classifier, bias=None) -> jax.Array:
        """Per-token losses of shape ``y_true.shape`` (0 at ignored tokens), unreduced."""
        return _per_token_losses(y_pred, classifier, y_true, bias, self._opts, None)[0]

    def loss_mask(self, y_true, y_pred) -> jax.Array | None:
        ignore = self._opts["ignore_class"]
        return None if ignore is None else as_label_array(y_true, "y_true") != ignore

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), **self._opts}
