"""CLIP and SigLIP losses streamed around a ring of devices (no global B x B matrix anywhere).

With the batch split over mesh axes into ``n`` blocks of ``b`` rows, device ``k`` keeps its rows
``x_k``, ``y_k`` and, for ``n - 1`` steps, passes the other tower's block to its neighbour with
:func:`jax.lax.ppermute`, so that every ``(x_k, y_j)`` block of similarities is formed once, on
device ``k``, and dropped after use:

* CLIP: each device keeps an online log-sum-exp of its rows; the ``y`` block travels with the
  running log-sum-exp of its *columns* (the column softmax needs every row of the batch), and
  one last ``ppermute`` brings those statistics home. Peak memory: one ``b x b`` block.
* SigLIP: the loss is a sum of independent pair terms, so only the ``y`` block travels.

Derivatives are JAX's own through the ring: every step runs under :func:`jax.checkpoint`, so
reverse mode stores only the step's inputs (the travelling block and its statistics, ``O(b D)``
per step) and re-forms each ``b x b`` block on the way back, passing cotangents around the
ring the other way (the transpose of ``ppermute``). Forward mode and higher derivatives work
unchanged; no custom rule is needed.

The entry point :func:`ring_or_local` decides where the computation runs: on local arrays; on
per-device blocks inside the caller's :func:`jax.shard_map` (``axis_name`` bound there); or, for
global arrays split over ``axis_name`` (given, or read from an explicitly sharded ``x``), inside
a :func:`jax.shard_map` it builds over ``mesh`` (given, or the ambient ``jax.set_mesh`` one).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec

from losses_jax._numerics import logistic_terms, row_peak
from losses_jax._reduction import gradient_tangent
from losses_jax._sharding import axis_size, place, resolve_mesh

__all__ = ["batch_axes", "clip_ring", "ring_or_local", "siglip_ring", "siglip_weighted_sum"]

AxisNames = tuple[str, ...]


# --------------------------------------------------------------------------------------
# where the batch lives
# --------------------------------------------------------------------------------------
def _as_axes(axis_name: Any) -> AxisNames:
    if isinstance(axis_name, str):
        return (axis_name,)
    if isinstance(axis_name, (tuple, list)) and all(isinstance(a, str) for a in axis_name):
        return tuple(axis_name)
    raise TypeError(
        f"`axis_name` must be a mesh axis name or a tuple of them; received {axis_name!r}."
    )


def batch_axes(x: jax.Array, axis_name: Any, mesh: Any) -> tuple[str, AxisNames, Any]:
    """``(mode, axes, mesh)``: ``"local"``, ``"inside"`` (the caller's shard_map binds
    ``axes``) or ``"wrap"`` (global arrays split over ``axes`` of ``mesh``)."""
    if axis_name is None:
        if mesh is not None:
            raise ValueError("`mesh=` needs `axis_name=`: the mesh axis the batch is split over.")
        spec = getattr(jax.typeof(x).sharding, "spec", ())
        if len(spec) == 0 or spec[0] is None:
            return "local", (), None
        # Explicit axes: the batch's mesh axes are part of x's type.
        return "wrap", _as_axes(spec[0]), jax.typeof(x).sharding.mesh
    axes = _as_axes(axis_name)
    ambient = jax.sharding.get_abstract_mesh()
    if not ambient.empty and set(axes) <= set(ambient.manual_axes):
        return "inside", axes, None
    return "wrap", axes, resolve_mesh(mesh, "axis_name", axis_name)


def _varying(x: jax.Array, axes: AxisNames) -> jax.Array:
    """``x`` typed as varying over ``axes`` (a replicated value entering a per-device carry)."""
    aval = jax.typeof(x)
    if hasattr(aval, "vma"):
        varying = aval.vma
    else:  # newer JAX: the manual axes' types
        varying = getattr(getattr(aval, "manual_axis_type", None), "varying", frozenset(axes))
    missing = tuple(a for a in axes if a not in varying)
    if not missing:
        return x
    if hasattr(lax, "pcast"):
        return lax.pcast(x, missing, to="varying")
    return getattr(lax, "pvary")(x, missing)  # noqa: B009 (absent from newer JAX's stubs)


def ring_or_local(
    kernel: Callable[..., jax.Array],
    local: Callable[..., jax.Array],
    x: jax.Array,
    y: jax.Array,
    valid: jax.Array,
    scalars: tuple[jax.Array, ...],
    *,
    axis_name: Any,
    mesh: Any,
    loss_name: str,
) -> jax.Array:
    """Per-row losses ``(B,)``: ``local(x, y, valid, *scalars)`` on one device, else
    ``kernel(..., axes=)`` per device block, streaming the blocks around the ring."""
    mode, axes, mesh = batch_axes(x, axis_name, mesh)
    if mode == "local":
        return local(x, y, valid, *scalars)
    if mode == "inside":
        return kernel(x, y, valid, *scalars, axes=axes)
    devices = axis_size(mesh, axes)
    if x.shape[0] % devices:
        raise ValueError(
            f"{loss_name}: the batch ({x.shape[0]} rows) must divide evenly over the mesh axes "
            f"{axes} ({devices} devices); pad it and pass `where=` to leave the padding out."
        )
    rows = PartitionSpec(axes)
    x, y, valid = (place(v, rows, mesh) for v in (x, y, valid))
    scalars = tuple(place(s, PartitionSpec(), mesh) for s in scalars)
    in_specs = (rows, rows, rows) + (PartitionSpec(),) * len(scalars)
    mapped = jax.shard_map(partial(kernel, axes=axes), mesh=mesh, in_specs=in_specs, out_specs=rows)
    return mapped(x, y, valid, *scalars)


def _ring_shift(tree: Any, axes: AxisNames) -> Any:
    """Every device's ``tree`` sent to the next device of the ring over ``axes``."""
    n = lax.axis_size(axes)
    return lax.ppermute(tree, axes, perm=[(i, (i + 1) % n) for i in range(n)])


#: The most columns of one rematerialised block of similarities: a device's ``b`` columns are
#: cut into pieces of this width (a divisor of ``b``, at least 32), so that the backward pass
#: holds a few ``b x 128`` arrays at a time, not ``b x b`` ones (see docs/design.md).
COLUMN_CHUNK = 128


def _column_pieces(columns: int) -> int:
    """How many pieces ``columns`` are cut into (1 when no divisor of 32..COLUMN_CHUNK fits)."""
    widths = [w for w in range(min(columns, COLUMN_CHUNK), 31, -1) if columns % w == 0]
    return columns // widths[0] if widths else 1


def _over_column_pieces(step: Callable, carry: Any, block: Any) -> tuple[Any, Any]:
    """``step(carry, piece, start) -> (carry, piece)`` over pieces of ``block``'s columns (the
    leading axis of each of its arrays; ``start``: the piece's first column), each step
    rematerialised: reverse mode keeps each piece's inputs, never its similarities."""
    step = jax.checkpoint(step)
    columns = jax.tree.leaves(block)[0].shape[0]
    count = _column_pieces(columns)
    if count == 1:
        return step(carry, block, 0)
    pieces = jax.tree.map(lambda a: a.reshape(count, columns // count, *a.shape[1:]), block)
    starts = jnp.arange(count) * (columns // count)
    carry, pieces = lax.scan(lambda c, p: step(c, *p), carry, (pieces, starts))
    return carry, jax.tree.map(lambda a: a.reshape(columns, *a.shape[2:]), pieces)


def _similarities(x: jax.Array, y: jax.Array, inverse_temperature: jax.Array) -> jax.Array:
    """``x y^T / temperature`` accumulated in ``x``'s (float32 or wider) dtype."""
    return jnp.einsum("id,jd->ij", x, y, preferred_element_type=x.dtype) * inverse_temperature


# --------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------
def _online_lse(peak, total, logits, axis):
    """Running (peak, sum of exp(logit - peak)) updated with ``logits`` along ``axis``.

    The peaks are shifts the log-sum-exp does not depend on: constants for autodiff.
    """
    new_peak = lax.stop_gradient(jnp.maximum(peak, row_peak(logits, axis=axis, keepdims=False)))
    shift = jnp.expand_dims(new_peak, axis)
    return new_peak, total * jnp.exp(peak - new_peak) + jnp.sum(jnp.exp(logits - shift), axis)


def _clip_block(x, valid, inverse_temperature, rows, block, start):
    """Row and column statistics updated with one block of ``y`` (columns)."""
    del start  # the diagonal is read from x * y directly
    y_block, valid_block, column_peak, column_total = block
    logits = _similarities(x, y_block, inverse_temperature)
    # Left-out columns are no row's candidates; left-out rows no column's.
    row_logits = jnp.where(valid_block[None, :], logits, -jnp.inf)
    column_logits = jnp.where(valid[:, None], logits, -jnp.inf)
    row_peak_, row_total = rows
    rows = _online_lse(row_peak_, row_total, row_logits, axis=1)
    column_peak, column_total = _online_lse(column_peak, column_total, column_logits, axis=0)
    return rows, (y_block, valid_block, column_peak, column_total)


def clip_ring(x, y, valid, inverse_temperature, *, axes: AxisNames) -> jax.Array:
    """Per-row symmetric InfoNCE ``(b,)`` of this device's rows, the batch split over ``axes``.

    ``x``, ``y``: this device's ``(b, D)`` rows (float32+, normalised as the caller wants),
    ``valid``: ``(b,)`` booleans, ``inverse_temperature``: a replicated scalar.
    """
    inverse_temperature = _varying(inverse_temperature, axes)
    floor = jnp.finfo(x.dtype).min
    zeros = _varying(jnp.zeros(x.shape[:1], x.dtype), axes)  # per-device carries
    lowest = zeros + floor
    rows = (lowest, zeros)
    block = (y, valid, lowest, zeros)
    step = partial(_over_column_pieces, partial(_clip_block, x, valid, inverse_temperature))
    rows, block = step(rows, block)  # this device's own block, its diagonal included

    def ring_step(carry, _):
        rows, block = carry
        return step(rows, _ring_shift(block, axes)), None

    (rows, block), _ = lax.scan(ring_step, (rows, block), None, length=lax.axis_size(axes) - 1)
    # The block's column statistics now cover every row; one more step takes them home.
    column_peak, column_total = _ring_shift(block[2:], axes)
    # A left-out row or column has an empty sum: log(1) keeps its (unused) gradient finite.
    row_lse = rows[0] + jnp.log(jnp.where(valid, rows[1], 1.0))
    column_lse = column_peak + jnp.log(jnp.where(valid, column_total, 1.0))
    matched = jnp.sum(x * y, axis=-1) * inverse_temperature
    losses = 0.5 * ((row_lse - matched) + (column_lse - matched))
    return jnp.where(valid, losses, 0.0)


# --------------------------------------------------------------------------------------
# SigLIP
# --------------------------------------------------------------------------------------
def siglip_pair_terms(logits: jax.Array, positive: jax.Array, valid_columns: jax.Array):
    """``-log sigmoid(z * logit)`` summed over each row's valid columns; ``z = +1`` on
    ``positive`` pairs, ``-1`` elsewhere."""
    softplus_pos, softplus_neg = logistic_terms(logits)[:2]
    # -log sigmoid(t) = softplus(-t), -log sigmoid(-t) = softplus(t)
    terms = jnp.where(positive, softplus_neg, softplus_pos)
    return jnp.sum(jnp.where(valid_columns[None, :], terms, 0.0), axis=1)


def siglip_ring(x, y, valid, inverse_temperature, bias, *, axes: AxisNames) -> jax.Array:
    """Per-row SigLIP losses ``(b,)`` of this device's rows, the batch split over ``axes``."""
    inverse_temperature = _varying(inverse_temperature, axes)
    bias = _varying(bias, axes)
    rows = jnp.arange(x.shape[0])[:, None]

    def block_step(own: bool, total, block, start):
        y_block, valid_block = block
        logits = _similarities(x, y_block, inverse_temperature) + bias
        # Only this device's own block holds positive (paired) columns: its diagonal.
        columns = jnp.arange(y_block.shape[0])[None, :]
        positive = rows == start + columns if own else jnp.zeros((), bool)
        return total + siglip_pair_terms(logits, positive, valid_block), block

    total = _varying(jnp.zeros(x.shape[:1], x.dtype), axes)  # a per-device carry
    total, _ = _over_column_pieces(partial(block_step, True), total, (y, valid))

    def ring_step(carry, _):
        total, block = carry
        block = _ring_shift(block, axes)
        return _over_column_pieces(partial(block_step, False), total, block), None

    steps = lax.axis_size(axes) - 1
    (total, _), _ = lax.scan(ring_step, (total, (y, valid)), None, length=steps)
    return jnp.where(valid, total, 0.0)


# --------------------------------------------------------------------------------------
# SigLIP's weighted sum with its gradients in the forward pass
# --------------------------------------------------------------------------------------
def _siglip_gradients(x, y, valid, weights, inverse_temperature, bias, *, axes: AxisNames):
    """One ring pass of ``sum_i w_i loss_i`` and its gradients, on this device's rows.

    Returns ``(total, losses, dx, dy, d inverse_temperature, d bias)``: the scalars summed over
    the ring, ``losses`` the per-row values (the gradient of the total in ``w``). Each block of
    similarities is formed once and gives, in the same step, its rows' ``dx`` and its columns'
    ``dy``; ``dy`` travels with its block and one last shift brings it home. Three products per
    block, as in the all-gather form's forward and backward passes together.
    """
    scale = _varying(inverse_temperature, axes)
    bias = _varying(bias, axes)
    weights = jnp.where(valid, weights, 0.0).astype(x.dtype)
    rows = jnp.arange(x.shape[0])[:, None]

    def block_step(own: bool, carry, block, start):
        losses, g_x, g_scale, g_bias = carry
        y_block, valid_block, g_y = block
        dots = jnp.einsum("id,jd->ij", x, y_block, preferred_element_type=x.dtype)
        softplus_pos, softplus_neg, sigmoid_pos, sigmoid_neg = logistic_terms(dots * scale + bias)
        columns = start + jnp.arange(y_block.shape[0])[None, :]
        positive = rows == columns if own else jnp.zeros((), bool)
        keep = valid_block[None, :]
        # d softplus(-t)/dt = -sigmoid(-t) on positive pairs, d softplus(t)/dt = sigmoid(t) else
        terms = jnp.where(keep, jnp.where(positive, softplus_neg, softplus_pos), 0.0)
        slope = jnp.where(keep, jnp.where(positive, -sigmoid_neg, sigmoid_pos), 0.0)
        g_logits = weights[:, None] * slope
        g_dots = g_logits * scale
        g_x = g_x + jnp.einsum("ij,jd->id", g_dots, y_block, preferred_element_type=x.dtype)
        g_y = g_y + jnp.einsum("ij,id->jd", g_dots, x, preferred_element_type=x.dtype)
        carry = (
            losses + jnp.sum(terms, axis=1),
            g_x,
            g_scale + jnp.sum(g_logits * dots),
            g_bias + jnp.sum(g_logits),
        )
        return carry, (y_block, valid_block, g_y)

    zeros = _varying(jnp.zeros(x.shape[:1], x.dtype), axes)
    scalar = _varying(jnp.zeros((), x.dtype), axes)
    carry = (zeros, jnp.zeros_like(x), scalar, scalar)
    # Column pieces as in the per-row ring: a few b x 128 arrays at a time, not b x b ones.
    carry, block = _over_column_pieces(
        partial(block_step, True), carry, (y, valid, jnp.zeros_like(y))
    )

    def ring_step(state, _):
        carry, block = state
        return _over_column_pieces(
            partial(block_step, False), carry, _ring_shift(block, axes)
        ), None

    (carry, block), _ = lax.scan(ring_step, (carry, block), None, length=lax.axis_size(axes) - 1)
    losses, g_x, g_scale, g_bias = carry
    losses = jnp.where(valid, losses, 0.0)
    g_y = _ring_shift(block[2], axes)  # the columns' gradients, home
    total = lax.psum(jnp.sum(weights * losses), axes)
    return total, losses, g_x, g_y, lax.psum(g_scale, axes), lax.psum(g_bias, axes)


def siglip_weighted_sum(x, y, valid, weights, inverse_temperature, bias, *, axes, mesh):
    """``sum(weights * siglip losses)`` of global arrays whose batch is split over ``axes`` of
    ``mesh`` (automatic axes), with every gradient computed in the one ring pass.

    A :func:`jax.custom_jvp` whose tangent is ``vdot(gradients, tangents)``, linear in the
    tangents: reverse mode transposes it into "cotangent times the gradients", forward mode
    uses it as it is, and plain evaluation runs the per-row ring only.
    """
    rows, scalar = PartitionSpec(axes), PartitionSpec()

    @jax.custom_jvp
    def weighted_sum(x, y, valid, weights, inverse_temperature, bias):
        losses = jax.shard_map(
            partial(siglip_ring, axes=axes),
            mesh=mesh,
            in_specs=(rows, rows, rows, scalar, scalar),
            out_specs=rows,
        )(x, y, valid, inverse_temperature, bias)
        return jnp.sum(weights.astype(x.dtype) * losses)

    def rule(primals, tangents):
        total, *gradients = jax.shard_map(
            partial(_siglip_gradients, axes=axes),
            mesh=mesh,
            in_specs=(rows, rows, rows, rows, scalar, scalar),
            out_specs=(scalar, rows, rows, rows, scalar, scalar),
        )(*primals)
        # gradients: per-row losses (the weights'), x, y, inverse temperature, bias
        t_x, t_y, _, t_weights, t_scale, t_bias = tangents
        pairs = zip(gradients, (t_weights, t_x, t_y, t_scale, t_bias))
        return total, gradient_tangent(pairs, x.dtype)

    weighted_sum.defjvp(rule, symbolic_zeros=True)
    return weighted_sum(x, y, valid, weights, inverse_temperature, bias)
