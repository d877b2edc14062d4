"""Shared numerics and input validation for every loss family.

Everything here is a small pure function. Two rules hold throughout the library:

* computations that lose precision in half precision (logs, log-sum-exp, sums) run in
  :func:`accumulation_dtype` (float32 for float16/bfloat16 inputs);
* probabilities are clipped with :func:`clip_probabilities`, whose gradient passes straight
  through the clip, so a saturated wrong prediction still receives a training signal.

Validation helpers raise ``TypeError``/``ValueError`` naming the argument and the shapes. They
only look at static information (shapes, dtypes, Python numbers), so they fire at trace time,
eagerly and under :func:`jax.jit` alike.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "resolve_axis",
    "check_axis_type",
    "mean_of_elementwise",
    "mean_last_axis",
    "prepare_pair",
    "upcast",
    "EPSILON",
    "accumulation_dtype",
    "as_float_array",
    "as_label_array",
    "check_broadcastable",
    "check_number",
    "clip_probabilities",
    "compute_dtype",
    "log_softmax",
    "logsumexp",
    "log_sigmoid",
    "match_shapes",
    "normalize_axis",
    "safe_divide",
    "squeeze_or_expand_to_same_rank",
    "weighted_sum_of_logs",
]

#: Keras's fuzz factor: probabilities are clipped to ``[EPSILON, 1 - EPSILON]``.
EPSILON = 1e-7

_LOW_PRECISION = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


# --------------------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------------------
def compute_dtype(dtype=None) -> jnp.dtype:
    """The floating dtype a loss computes and returns in (``None`` means float32).

    Examples:
        >>> compute_dtype(None), compute_dtype("bfloat16")
        (dtype('float32'), dtype(bfloat16))
    """
    if dtype is None:
        return jnp.dtype(jnp.float32)
    try:
        resolved = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"Invalid `dtype`: {dtype!r} is not a dtype.") from err
    if not jnp.issubdtype(resolved, jnp.floating):
        raise TypeError(f"`dtype` must be a floating dtype; received dtype={dtype!r}.")
    return resolved


def accumulation_dtype(dtype) -> jnp.dtype:
    """float32 for float16/bfloat16 (and for anything narrower), else ``dtype`` itself.

    Examples:
        >>> accumulation_dtype("float16"), accumulation_dtype("float64")
        (dtype('float32'), dtype('float64'))
    """
    dtype = jnp.dtype(dtype)
    if dtype in _LOW_PRECISION or not jnp.issubdtype(dtype, jnp.floating):
        return jnp.dtype(jnp.float32)
    return dtype


def upcast(x: jax.Array) -> jax.Array:
    """``x`` in its :func:`accumulation_dtype`, with a gradient cast back without overflow.

    The backward pass saturates at the finite range of ``x``'s dtype: a loss gradient such as
    ``-1/p`` at a clipped probability (``-1e7``) would otherwise overflow float16 to ``inf``.

    Examples:
        >>> g = jax.grad(lambda x: 1e6 * jnp.sum(upcast(x)))(jnp.ones(2, jnp.float16))
        >>> g.dtype, bool(jnp.all(jnp.isfinite(g)))
        (dtype('float16'), True)
    """
    if accumulation_dtype(x.dtype) == x.dtype:
        return x
    return _saturating_upcast(x)


@jax.custom_vjp
def _saturating_upcast(x: jax.Array) -> jax.Array:
    return x.astype(accumulation_dtype(x.dtype))


def _saturating_upcast_fwd(x):
    # An empty array carries the input dtype to the backward pass.
    return _saturating_upcast(x), jnp.zeros((0,), x.dtype)


def _saturating_upcast_bwd(dtype_carrier, g):
    limit = jnp.finfo(dtype_carrier.dtype).max
    return (jnp.clip(g, -limit, limit).astype(dtype_carrier.dtype),)


_saturating_upcast.defvjp(_saturating_upcast_fwd, _saturating_upcast_bwd)


def as_float_array(x, name: str, dtype=None) -> jax.Array:
    """Converts ``x`` to a real floating array, rejecting non-numeric and complex input.

    Integer and boolean input is converted to ``dtype`` (default float32); floating input keeps
    its dtype unless ``dtype`` is given.

    Examples:
        >>> as_float_array([1, 2], "y_pred").dtype
        dtype('float32')
    """
    arr = as_label_array(x, name)
    if dtype is not None:
        return arr.astype(dtype)
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        return arr.astype(jnp.float32)
    return arr


def as_label_array(x, name: str) -> jax.Array:
    """Converts labels to an array, keeping integer labels integer (never a low-precision float).

    Examples:
        >>> as_label_array([3000, 1], "y_true").dtype
        dtype('int32')
    """
    try:
        arr = jnp.asarray(x)
    except TypeError as err:
        raise TypeError(f"`{name}` must be a numeric array; received {type(x).__name__}.") from err
    if jnp.issubdtype(arr.dtype, jnp.complexfloating):
        raise TypeError(f"`{name}` must be real; received complex dtype {arr.dtype}.")
    if not (jnp.issubdtype(arr.dtype, jnp.number) or arr.dtype == jnp.bool_):
        raise TypeError(f"`{name}` must be numeric; received dtype {arr.dtype}.")
    return arr


# --------------------------------------------------------------------------------------
# stable numerics
# --------------------------------------------------------------------------------------
@partial(jax.custom_vjp, nondiff_argnums=(1,))
def clip_probabilities(p: jax.Array, eps: float = EPSILON) -> jax.Array:
    """Clips probabilities to ``[eps, 1 - eps]`` with a straight-through gradient.

    The forward value equals ``jnp.clip(p, eps, 1 - eps)`` exactly, as in Keras. The backward pass
    returns the incoming gradient unchanged instead of zeroing it outside the interval, so a
    prediction of exactly 0 for the true class still trains. This is the one deliberate
    difference from Keras's numerics.

    Examples:
        >>> g = jax.grad(lambda p: -jnp.log(clip_probabilities(p)))(0.0)
        >>> bool(g < 0)  # Keras's clip would give exactly 0 here
        True
    """
    return jnp.clip(p, eps, 1.0 - eps)


def _clip_fwd(p, eps):
    return clip_probabilities(p, eps), None


def _clip_bwd(eps, _, g):
    return (g,)


clip_probabilities.defvjp(_clip_fwd, _clip_bwd)


def logsumexp(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """Max-shifted ``log(sum(exp(x), axis))``, finite for ``-inf`` entries and all-``-inf`` rows.

    A row of only ``-inf`` gives ``-inf`` with a zero (not NaN) gradient.

    Examples:
        >>> print(f"{float(logsumexp(jnp.array([0.0, -jnp.inf, 1e30]))):.3g}")
        1e+30
    """
    peak = jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    peak = jnp.where(jnp.isfinite(peak), peak, 0.0)
    total = jnp.sum(jnp.exp(x - peak), axis=axis, keepdims=True)
    safe_total = jnp.where(total > 0, total, 1.0)
    out = jnp.where(total > 0, jnp.log(safe_total), -jnp.inf) + peak
    return out if keepdims else jnp.squeeze(out, axis=axis)


def log_softmax(logits: jax.Array, axis: int = -1) -> jax.Array:
    """Stable log-softmax along ``axis``; ``-inf`` logits give ``-inf`` log-probabilities.

    ``logsoftmax_i = x_i - logsumexp(x)``. Combine with :func:`weighted_sum_of_logs` so that
    masked (``-inf``) classes with zero target weight contribute exactly 0 and a zero gradient.

    Examples:
        >>> lp = log_softmax(jnp.array([0.0, 0.0, -jnp.inf]))
        >>> [round(float(v), 4) for v in lp[:2]]
        [-0.6931, -0.6931]
    """
    # Subtract the max before the log-sum-exp: at |x| ~ 1e30 `x - logsumexp(x)` rounds log(n) away.
    peak = jax.lax.stop_gradient(jnp.max(logits, axis=axis, keepdims=True))
    shifted = logits - jnp.where(jnp.isfinite(peak), peak, 0.0)
    total = jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True)
    return shifted - jnp.log(jnp.where(total > 0, total, 1.0))


def log_sigmoid(x: jax.Array) -> jax.Array:
    """``log(sigmoid(x)) = -softplus(-x)``, exact for large ``|x|``.

    Examples:
        >>> print(f"{float(log_sigmoid(jnp.array(-1e4))):.1f}")
        -10000.0
    """
    return -jax.nn.softplus(-x)


def weighted_sum_of_logs(weights: jax.Array, logs: jax.Array, axis=-1) -> jax.Array:
    """``sum(weights * logs, axis)`` where zero weights contribute exactly 0.

    Entries with ``weights == 0`` are excluded before multiplying (double ``where``), so a
    ``-inf`` log at a zero weight gives neither a NaN value nor a NaN gradient.

    Examples:
        >>> float(weighted_sum_of_logs(jnp.array([0.0, 1.0]), jnp.array([-jnp.inf, -2.0])))
        -2.0
    """
    keep = weights != 0
    safe_logs = jnp.where(keep, logs, 0.0)
    return jnp.sum(jnp.where(keep, weights * safe_logs, 0.0), axis=axis)


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, 0 where the denominator is 0, with finite gradients.

    Examples:
        >>> safe_divide(jnp.array([1.0, 1.0]), jnp.array([2.0, 0.0])).tolist()
        [0.5, 0.0]
    """
    nonzero = denominator != 0
    safe_den = jnp.where(nonzero, denominator, 1)
    return jnp.where(nonzero, numerator / safe_den, 0)


# --------------------------------------------------------------------------------------
# shapes and validation
# --------------------------------------------------------------------------------------
def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1: bool = True):
    """Keras's rule: when ranks differ by one and the longer has a trailing 1, squeeze it.

    A rank-1 partner is expanded instead (``expand_rank_1``), so ``(B,)`` meets ``(B, 1)``.

    Examples:
        >>> a, b = squeeze_or_expand_to_same_rank(jnp.zeros((4, 1)), jnp.zeros((4, 3, 1)))
        >>> a.shape, b.shape
        ((4, 1), (4, 3))
    """
    r1, r2 = jnp.ndim(x1), jnp.ndim(x2)
    if r1 == r2 + 1 and jnp.shape(x1)[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = jnp.expand_dims(x2, -1)
        else:
            x1 = jnp.squeeze(x1, -1)
    elif r2 == r1 + 1 and jnp.shape(x2)[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = jnp.expand_dims(x1, -1)
        else:
            x2 = jnp.squeeze(x2, -1)
    return x1, x2


def check_broadcastable(shape_from: Sequence[int], shape_to: Sequence[int]) -> bool:
    """Whether ``shape_from`` broadcasts (NumPy rules) to exactly ``shape_to``."""
    if len(shape_from) > len(shape_to):
        return False
    return all(a in (1, b) for a, b in zip(reversed(shape_from), reversed(shape_to)))


def match_shapes(y_true, y_pred, loss_name: str):
    """Aligns ``y_true`` with ``y_pred`` the way Keras does, or raises a clear ``ValueError``.

    Applies :func:`squeeze_or_expand_to_same_rank`, then requires both shapes to broadcast to a
    common shape.

    Examples:
        >>> t, p = match_shapes(jnp.zeros((4,)), jnp.zeros((4, 1)), "mse")
        >>> t.shape, p.shape
        ((4, 1), (4, 1))
    """
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    try:
        np.broadcast_shapes(jnp.shape(y_true), jnp.shape(y_pred))
    except ValueError:
        raise ValueError(
            f"{loss_name}: `y_true` and `y_pred` have incompatible shapes "
            f"{tuple(jnp.shape(y_true))} and {tuple(jnp.shape(y_pred))}."
        ) from None
    return y_true, y_pred


def normalize_axis(axis, ndim: int, name: str = "axis"):
    """Maps a possibly negative axis (or tuple of axes; ``None`` passes through) into range.

    Examples:
        >>> normalize_axis(-1, 3), normalize_axis((0, -1), 2)
        (2, (0, 1))
    """
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        return tuple(normalize_axis(a, ndim, name) for a in axis)
    if not isinstance(axis, numbers.Integral):
        raise TypeError(f"`{name}` must be an int; received {name}={axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"`{name}`={axis} is out of range for an input of rank {ndim} "
            f"(valid: {-ndim} to {ndim - 1})."
        )
    return int(axis) % ndim


def check_number(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
):
    """Validates a Python/NumPy scalar option against an interval; traced values pass through.

    Examples:
        >>> check_number(0.1, "label_smoothing", low=0.0, high=1.0)
        0.1
        >>> check_number(2.0, "label_smoothing", low=0.0, high=1.0)
        Traceback (most recent call last):
        ...
        ValueError: `label_smoothing` must be in [0.0, 1.0]; received label_smoothing=2.0.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    try:
        number = float(np.asarray(value))
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number; received {name}={value!r}.") from None
    too_low = low is not None and (number < low if low_inclusive else number <= low)
    too_high = high is not None and (number > high if high_inclusive else number >= high)
    if too_low or too_high or np.isnan(number):
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"`{name}` must be in {left}{lo}, {hi}{right}; received {name}={value!r}.")
    return value


def prepare_pair(y_true, y_pred, loss_name: str, min_rank: int = 0):
    """``(y_true, y_pred, out_dtype)``: both in the accumulation dtype, aligned and broadcast.

    ``y_pred`` must be real and numeric; its floating dtype (float32 for integer input) is the
    dtype the loss returns. ``y_true`` is converted directly to the accumulation dtype. Shapes
    are aligned as Keras does (a trailing size-1 dimension squeezed or expanded) and then
    broadcast to one shape; ``min_rank`` is the smallest rank the loss accepts.
    """
    y_pred = as_float_array(y_pred, "y_pred")
    out_dtype = y_pred.dtype
    acc_dtype = accumulation_dtype(out_dtype)
    y_true = as_float_array(y_true, "y_true", acc_dtype)
    y_true, y_pred = match_shapes(y_true, upcast(y_pred), loss_name)
    y_true, y_pred = jnp.broadcast_arrays(y_true, y_pred)
    if y_pred.ndim < min_rank:
        raise ValueError(
            f"{loss_name}: `y_true` and `y_pred` must have rank >= {min_rank} (the last axis is "
            f"averaged); received shape {tuple(y_pred.shape)}."
        )
    return y_true, y_pred, out_dtype


def mean_last_axis(values: jax.Array) -> jax.Array:
    """Mean over the last axis, dividing first so that no partial sum overflows."""
    return jnp.sum(values / values.shape[-1], axis=-1)


def mean_of_elementwise(per_element, y_true, y_pred, loss_name: str) -> jax.Array:
    """``mean(per_element(y_true, y_pred), axis=-1)`` on prepared inputs, in the output dtype."""
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, loss_name, min_rank=1)
    return mean_last_axis(per_element(y_true, y_pred)).astype(out_dtype)


def check_axis_type(axis, loss_name: str, allow_tuple: bool = True) -> None:
    """Rejects an ``axis`` that is not an int (or, with ``allow_tuple``, a tuple of ints/None)."""

    def is_int(a):
        return isinstance(a, numbers.Integral) and not isinstance(a, bool)

    is_tuple = isinstance(axis, (tuple, list)) and all(is_int(a) for a in axis)
    if not (is_int(axis) or (allow_tuple and (is_tuple or axis is None))):
        expected = "an int, a tuple of ints or None" if allow_tuple else "an int"
        raise TypeError(f"{loss_name}: `axis` must be {expected}; received axis={axis!r}.")


def resolve_axis(axis, shape, loss_name: str):
    """``axis`` (int, tuple of ints or None) normalized for ``shape``, or a clear error."""
    check_axis_type(axis, loss_name)
    try:
        resolved = normalize_axis(axis, len(shape))
    except (TypeError, ValueError) as err:
        raise type(err)(f"{loss_name}: {err} Input shape: {tuple(shape)}.") from None
    if isinstance(resolved, tuple) and len(set(resolved)) != len(resolved):
        raise ValueError(
            f"{loss_name}: `axis`={axis!r} names an axis twice; input shape: {tuple(shape)}."
        )
    return resolved
