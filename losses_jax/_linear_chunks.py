"""Token-block kernels of losses of linear heads (``logits = embeddings @ classifier + bias``).

The losses of :mod:`losses_jax.losses.linear_head` (log-probabilities, KL and Jensen-Shannon
distillation) and the reduced :class:`~losses_jax.LinearCrossEntropy` run here. Tokens go in
blocks of ``T`` rows; a block's logits cover the whole (local) vocabulary, ``T x V`` at most
:data:`BLOCK_ELEMENTS` floats, and the per-token value is plain ``jnp`` on that block, so any
function of the softmax fits (a two-pass log-sum-exp, the log of a mixture) without online
statistics. Memory does not grow with the number of tokens, and only through ``T >= 8`` rows with
the vocabulary. Two ways to differentiate:

* :func:`per_token_values`: per-token outputs, each block under :func:`jax.checkpoint` keeping
  only its rows' log-sum-exps, so reverse mode recomputes the block's logits (one more product
  per head than the naive path) and one ``exp`` pass, but no maximum or sum over the vocabulary;
* :func:`fused_weighted_sum`: the scalar ``sum(weights * loss)`` as a :func:`jax.custom_jvp`
  whose rule computes, in the same pass as the value, the gradients of every head that is
  differentiated (the derivative of the block function by :func:`jax.vjp`, then ``dE = G @ W.T``
  and ``dW += E.T @ G``) and returns ``vdot(gradients, tangents)``. That tangent is linear in the
  tangents, so reverse mode transposes it into "cotangent times the gradients" (Liger's and
  PyTorch's gradient-in-forward, three products as in the naive path), while plain evaluation runs
  only the primal function. The rule's body is plain ``jnp``: second derivatives differentiate it.

Under ``vocab_axis``, :func:`per_token_values` runs under :func:`jax.shard_map` and the block
functions reduce over the vocabulary through :class:`Vocab` (a collective maximum and sum).
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.ad_checkpoint import checkpoint_name
from jax.sharding import PartitionSpec

from losses_jax._linear_xent import (
    _balanced_chunk,
    _cols,
    _for_each_chunk,
    _rows,
    _summed_over,
    local_split,
)
from losses_jax._numerics import row_peak
from losses_jax._reduction import gradient_tangent
from losses_jax._reduction import is_zero_tangent as _is_zero
from losses_jax._sharding import place

__all__ = [
    "BLOCK_ELEMENTS",
    "GRADIENT_BLOCK_ELEMENTS",
    "Head",
    "Layout",
    "Vocab",
    "fused_weighted_sum",
    "per_token_values",
    "resolve_layout",
]

#: Largest block of logits, in elements: 64 tokens at a 32768-word vocabulary (8 MiB of float32).
BLOCK_ELEMENTS = 2**21
#: Largest block with a written-out gradient (``block_gradient``): the gradient is written over
#: the logits, one ``(T, V)`` array, so it holds twice the tokens of a ``vjp`` block (logits,
#: saved softmax, cotangent) in 2/3 of the memory, and the classifier's gradient, which each
#: block reads and writes whole, is updated half as often.
GRADIENT_BLOCK_ELEMENTS = 2**22
_GRAD_CHUNK = 1024  # vocabulary chunk of the classifier's gradient update (and of filtering)
_TOKEN_ALIGN = 8


class Head(NamedTuple):
    """One linear head: ``embeddings (N, D)``, ``classifier (D, V)``, ``bias (V,)`` or None."""

    embeddings: Any
    classifier: Any
    bias: Any = None


class Vocab(NamedTuple):
    """Reductions over the vocabulary axis of a block, across devices under ``vocab_axis``."""

    axis: Any  # mesh axis name(s), or None on one device
    size: int  # the whole vocabulary
    start: Any  # the first class id of this device's slice (0 on one device)

    def max(self, x):
        peak = row_peak(x, axis=-1, keepdims=False)
        return peak if self.axis is None else lax.pmax(peak, self.axis)

    def sum(self, x):
        total = jnp.sum(x, axis=-1)
        return total if self.axis is None else lax.psum(total, self.axis)

    def logsumexp(self, z):
        """``logsumexp(z)`` over the rows of a block ``(T, V_local)``, across all shards."""
        return checkpoint_name(_block_logsumexp(self.axis, z), _LSE_NAME)

    def log_softmax(self, z):
        """``(log_softmax(z), logsumexp(z))`` of a block, rows over all shards."""
        lse = self.logsumexp(z)
        return z - lse[:, None], lse

    def pick(self, z, labels):
        """``z[t, labels[t]]`` (0 where the label is another device's or out of range)."""
        hit = (labels - self.start)[:, None] == jnp.arange(z.shape[-1])[None, :]
        return self.sum(jnp.where(hit, z, 0.0))


_LSE_NAME = "linear_head_logsumexp"
#: Reverse mode of a per-token block keeps its log-sum-exps (a number per token and head) and
#: recomputes the rest: the logits, then one ``exp`` pass for the softmax.
_KEEP_LOGSUMEXP = jax.checkpoint_policies.save_only_these_names(_LSE_NAME)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _block_logsumexp(axis, z):
    """``logsumexp`` of a block's rows over the vocabulary (all shards of ``axis``).

    Its tangent, ``sum(exp(z - lse) * dz)``, needs only the logits and the result: with the
    result kept, reverse mode recomputes no maximum and no sum of exponentials.
    """
    vocab = Vocab(axis, 0, 0)
    peak = vocab.max(lax.stop_gradient(z))  # a shift the result does not depend on
    return peak + jnp.log(vocab.sum(jnp.exp(z - peak[:, None])))


@_block_logsumexp.defjvp
def _block_logsumexp_jvp(axis, primals, tangents):
    (z,), (dz,) = primals, tangents
    lse = _block_logsumexp(axis, z)
    return lse, Vocab(axis, 0, 0).sum(jnp.exp(z - lse[:, None]) * dz)


class Layout(NamedTuple):
    """Static settings: block sizes, dtype, mesh axes."""

    token_block: int
    accumulate: Any  # float32, or float64 for float64 inputs
    vocab_axis: Any = None
    token_axis: Any = None
    vocab_size: int = 0
    gradient_filter: float | None = None  # skip |G| <= filter * |weight| chunks (fused only)


def token_block(
    tokens: int, vocab_local: int, requested: int | None, block_elements: int = BLOCK_ELEMENTS
) -> int:
    """Rows per block: ``requested``, or as many as fit ``block_elements``, balanced."""
    limit = requested or max(_TOKEN_ALIGN, block_elements // max(vocab_local, 1))
    return max(1, min(_balanced_chunk(tokens, limit, _TOKEN_ALIGN), max(tokens, 1)))


def _logits(e_b, head: Head, acc):
    """A block's logits in float32+ (accumulated in float32+ whatever the inputs' dtype)."""
    z = jnp.einsum(
        "td,dv->tv",
        e_b,
        head.classifier,
        preferred_element_type=acc,
        out_sharding=_summed_over(e_b, 1),
    )
    return z if head.bias is None else z + head.bias.astype(acc)


# --------------------------------------------------------------------------------------
# per-token values, reverse mode by recomputation
# --------------------------------------------------------------------------------------
def _per_token_local(block_fn, heads, per_token, opts, layout: Layout, vocab: Vocab):
    n = heads[0].embeddings.shape[0]
    template = jnp.zeros_like(heads[0].embeddings[:, 0], dtype=layout.accumulate)
    # Every block function returns per-token values (T,); count them on abstract inputs
    # (slicing a sharded array to probe them would not split over the mesh).
    probe = Vocab(None, vocab.size, 0)
    count = len(jax.eval_shape(
        lambda logits, rows: block_fn(logits, rows, opts, probe),
        tuple(jax.ShapeDtypeStruct((1, h.classifier.shape[1]), layout.accumulate) for h in heads),
        tuple(jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype) for x in per_token),
    ))  # fmt: skip
    outputs = (template,) * count

    def block(t0, size, outs):
        @partial(jax.checkpoint, prevent_cse=False, policy=_KEEP_LOGSUMEXP)
        def values(heads, per_token, opts):
            logits = tuple(
                _logits(_rows(h.embeddings, t0, size), h, layout.accumulate) for h in heads
            )
            return block_fn(logits, tuple(_rows(x, t0, size) for x in per_token), opts, vocab)

        new = values(heads, per_token, opts)
        return tuple(lax.dynamic_update_slice_in_dim(o, v, t0, 0) for o, v in zip(outs, new))

    return _for_each_chunk(n, layout.token_block, block, outputs)


def _head_specs(heads, layout: Layout):
    return tuple(
        Head(
            PartitionSpec(layout.token_axis, None),
            PartitionSpec(None, layout.vocab_axis),
            None if h.bias is None else PartitionSpec(layout.vocab_axis),
        )
        for h in heads
    )


def per_token_values(block_fn, heads, per_token, opts, layout: Layout, mesh) -> tuple:
    """``block_fn(logits, per_token_rows, opts, vocab)`` over every token block, as arrays ``(N, ...)``.

    ``heads`` is a tuple of :class:`Head`; ``per_token`` a tuple of ``(N, ...)`` arrays (labels);
    ``opts`` a pytree of scalar arrays (traced options); ``block_fn`` returns a tuple of per-row
    arrays. With ``mesh`` (and ``layout.vocab_axis``), runs under :func:`jax.shard_map`.
    """
    if mesh is None:
        vocab = Vocab(None, layout.vocab_size, 0)
        return _per_token_local(block_fn, heads, per_token, opts, layout, vocab)
    tokens = PartitionSpec(layout.token_axis)
    head_specs = _head_specs(heads, layout)
    heads = tuple(
        Head(*(None if x is None else place(x, s, mesh) for x, s in zip(h, spec)))
        for h, spec in zip(heads, head_specs)
    )
    per_token = tuple(place(x, tokens, mesh) for x in per_token)

    def local(heads, per_token, opts):
        start = lax.axis_index(layout.vocab_axis) * heads[0].classifier.shape[1]
        vocab = Vocab(layout.vocab_axis, layout.vocab_size, start)
        return _per_token_local(block_fn, heads, per_token, opts, layout, vocab)

    n_out = len(jax.eval_shape(
        lambda logits, rows: block_fn(logits, rows, opts, Vocab(None, 1, 0)),
        tuple(jax.ShapeDtypeStruct((1, 1), layout.accumulate) for _ in heads),
        tuple(jax.ShapeDtypeStruct((1, *x.shape[1:]), x.dtype) for x in per_token),
    ))  # fmt: skip
    opts_spec = jax.tree.map(lambda _: PartitionSpec(), opts)
    mapped = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(head_specs, (tokens,) * len(per_token), opts_spec),
        out_specs=(tokens,) * n_out,
    )
    return mapped(heads, per_token, opts)


def resolve_layout(
    n: int,
    v: int,
    *,
    accumulate,
    vocab_axis,
    token_axis,
    mesh,
    token_chunk_size: int | None,
    gradient_filter: float | None = None,
    block_elements: int = BLOCK_ELEMENTS,
):
    """(layout, mesh) for ``n`` tokens and a vocabulary of ``v``; checks the even split."""
    tokens, vocab_local, mesh, token_axis = local_split(n, v, vocab_axis, token_axis, mesh)
    layout = Layout(
        token_block=token_block(tokens, vocab_local, token_chunk_size, block_elements),
        accumulate=accumulate,
        vocab_axis=vocab_axis,
        token_axis=token_axis,
        vocab_size=v,
        gradient_filter=gradient_filter,
    )
    return layout, mesh


# --------------------------------------------------------------------------------------
# the fused weighted sum: gradients in the forward pass
# --------------------------------------------------------------------------------------
def _classifier_update(g_w, e_b, gz, weights_b, layout: Layout):
    """``g_w + e_b.T @ gz`` by vocabulary chunks (no ``(D, V)`` temporary), filtered if asked."""
    v = gz.shape[1]
    chunk = _balanced_chunk(v, _GRAD_CHUNK, 128)
    scale = None
    if layout.gradient_filter is not None:
        scale = layout.gradient_filter * jnp.abs(weights_b)[:, None]

    def update(v0, size, g_w):
        g_c = _cols(gz, v0, size)
        product = partial(jnp.einsum, "td,tv->dv", preferred_element_type=g_w.dtype)

        def add(g_w):
            new = _cols(g_w, v0, size) + product(e_b.astype(g_w.dtype), g_c)
            return lax.dynamic_update_slice_in_dim(g_w, new, v0, 1)

        if scale is None:
            return add(g_w)
        # Cut Cross-Entropy's filter: a chunk whose every entry is negligible is skipped.
        return lax.cond(jnp.all(jnp.abs(g_c) <= scale), lambda g: g, add, g_w)

    return _for_each_chunk(v, chunk, update, g_w)


def _gradients(block_fn, heads, per_token, weights, opts, need, layout: Layout, block_gradient):
    """(total, per-token losses, head gradients, option gradients) in one pass over the blocks.

    ``need`` says which heads (and whether the options) are differentiated: gradients of the
    others are not computed (None). ``block_gradient(logits, rows, weights)``, when given and
    the options are not differentiated, replaces :func:`jax.vjp` of the block function.
    """
    acc = layout.accumulate
    vocab = Vocab(None, layout.vocab_size, 0)
    n = heads[0].embeddings.shape[0]
    head_need, opts_need = need

    def zeros_grads(h: Head, wanted: tuple):
        return Head(
            jnp.zeros(h.embeddings.shape, acc) if wanted[0] else None,
            jnp.zeros(h.classifier.shape, acc) if wanted[1] else None,
            jnp.zeros(h.bias.shape, acc) if wanted[2] and h.bias is not None else None,
        )

    init = (
        jnp.zeros((), acc),
        jnp.zeros((n,), acc),
        tuple(zeros_grads(h, w) for h, w in zip(heads, head_need)),
        jax.tree.map(jnp.zeros_like, opts) if opts_need else None,
    )

    def block(t0, size, carry):
        total, losses, grads, g_opts = carry
        rows = tuple(_rows(x, t0, size) for x in per_token)
        weights_b = _rows(weights, t0, size).astype(acc)
        e_blocks = tuple(_rows(h.embeddings, t0, size) for h in heads)
        logits = tuple(_logits(e_b, h, acc) for e_b, h in zip(e_blocks, heads))

        def value(logits, opts):
            (loss,) = block_fn(logits, rows, opts, vocab)
            return loss

        if block_gradient is not None and not opts_need:
            loss_b, g_logits = block_gradient(logits, rows, weights_b)
            g_o = None
        else:
            loss_b, pullback = jax.vjp(value, logits, opts)
            g_logits, g_o = pullback(weights_b)
        new_grads = []
        for h, g, e_b, gz in zip(heads, grads, e_blocks, g_logits):
            g_e, g_w, g_b = g
            if g_e is not None:
                # In the classifier's dtype: a mixed product would convert all of W (a copy).
                g_e_b = jnp.einsum(
                    "tv,dv->td", gz.astype(h.classifier.dtype), h.classifier,
                    preferred_element_type=acc,
                )  # fmt: skip
                g_e = lax.dynamic_update_slice_in_dim(g_e, g_e_b, t0, 0)
            if g_w is not None:
                g_w = _classifier_update(g_w, e_b, gz, weights_b, layout)
            if g_b is not None:
                g_b = g_b + jnp.sum(gz, axis=0)
            new_grads.append(Head(g_e, g_w, g_b))
        if g_opts is not None:
            g_opts = jax.tree.map(jnp.add, g_opts, g_o)
        total = total + jnp.sum(weights_b * loss_b)
        losses = lax.dynamic_update_slice_in_dim(losses, loss_b, t0, 0)
        return total, losses, tuple(new_grads), g_opts

    return _for_each_chunk(n, layout.token_block, block, init)


def fused_weighted_sum(
    block_fn, heads, per_token, weights, opts, layout: Layout, block_gradient=None
) -> jax.Array:
    """``sum(weights * loss)`` of a one-output ``block_fn``, with its gradients in the forward pass.

    On one device. The weights (``(N,)``, e.g. ``sample_weight * mask / divisor``) must be known
    before the loss; they, the heads and ``opts`` may all be differentiated, in either mode.
    ``block_gradient(logits, rows, weights) -> (losses, logit gradients)``: optional, the
    block function's gradient written out (fewer passes over a block than its ``vjp``).
    """

    @jax.custom_jvp
    def weighted_sum(heads, per_token, weights, opts):
        vocab = Vocab(None, layout.vocab_size, 0)

        def single(logits, rows, opts, vocab):
            return block_fn(logits, rows, opts, vocab)

        (losses,) = _per_token_local(single, heads, per_token, opts, layout, vocab)
        return jnp.sum(weights.astype(layout.accumulate) * losses)

    def rule(primals, tangents):
        heads, per_token, weights, opts = primals
        t_heads, _, t_weights, t_opts = tangents
        head_need = tuple(
            (not _is_zero(t.embeddings), not _is_zero(t.classifier), not _is_zero(t.bias))
            for t in t_heads
        )
        opts_need = any(not _is_zero(t) for t in jax.tree.leaves(t_opts, is_leaf=_is_zero))
        total, losses, grads, g_opts = _gradients(
            block_fn,
            heads,
            per_token,
            weights,
            opts,
            (head_need, opts_need),
            layout,
            block_gradient,
        )
        pairs = [(g_x, t_x) for g, t in zip(grads, t_heads) for g_x, t_x in zip(g, t)]
        pairs.append((losses, t_weights))
        if opts_need:
            pairs += zip(jax.tree.leaves(g_opts), jax.tree.leaves(t_opts, is_leaf=_is_zero))
        return total, gradient_tangent(pairs, layout.accumulate)

    weighted_sum.defjvp(rule, symbolic_zeros=True)
    return weighted_sum(heads, per_token, weights, opts)
