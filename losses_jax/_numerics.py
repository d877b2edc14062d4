"""The numerics layer: each numerical idea of the library, written once.

* **dtype policy**: losses compute in :func:`accumulation_dtype` (float32 for float16/bfloat16)
  and return the predictions' dtype; :func:`upcast` moves an input there with a gradient that
  saturates instead of overflowing on the way back.
* **max shift**: every log-sum-exp subtracts :func:`row_peak`, the row's maximum but never less
  than the dtype's lowest finite value. An all-``-inf`` row therefore shifts by a finite number,
  its exponentials are all 0, its log-sum-exp is ``-inf`` and its gradient 0, never NaN.
* **straight-through clip**: :func:`straight_through_clip` clips in the forward pass and passes
  the tangent unchanged, so a saturated wrong probability still trains (a ``custom_jvp`` with a
  linear tangent map: forward and reverse mode both work).
* **zero-weight products**: :func:`weighted_log` and :func:`weighted_sum_of_logs` give exactly 0
  (value and gradient) where a weight is 0, also against a ``-inf`` log.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax.interpreters import ad, batching, mlir
from jax.typing import ArrayLike, DTypeLike

from losses_jax._validation import as_float_array, match_shapes

__all__ = [
    "EPSILON",
    "accumulation_dtype",
    "compute_dtype",
    "clip_probabilities",
    "cosine_similarity",
    "l2_normalize",
    "log_cosh_elementwise",
    "log_softmax",
    "logistic_terms",
    "logsumexp",
    "mean_last_axis",
    "mean_of_elementwise",
    "power",
    "prepare_pair",
    "row_peak",
    "safe_divide",
    "saturating_cast",
    "straight_through_clip",
    "upcast",
    "weighted_log",
    "weighted_sum_of_logs",
]

#: Keras's fuzz factor: probabilities are clipped to ``[EPSILON, 1 - EPSILON]``.
EPSILON = 1e-7

_LOW_PRECISION = (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))
_LOG_2 = math.log(2.0)


# --------------------------------------------------------------------------------------
# dtype policy
# --------------------------------------------------------------------------------------
def compute_dtype(dtype: DTypeLike | None = None) -> jnp.dtype:
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


def accumulation_dtype(dtype: DTypeLike) -> jnp.dtype:
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
    The tangent map is the plain cast, so forward mode is exact.

    Examples:
        >>> g = jax.grad(lambda x: 1e6 * jnp.sum(upcast(x)))(jnp.ones(2, jnp.float16))
        >>> g.dtype, bool(jnp.all(jnp.isfinite(g)))
        (dtype('float16'), True)
    """
    if accumulation_dtype(x.dtype) == x.dtype:
        return x
    return saturating_cast(x, accumulation_dtype(x.dtype))


def saturating_cast(x: jax.Array, dtype: DTypeLike) -> jax.Array:
    """``x`` cast to ``dtype``, values beyond its finite range clipped to the largest finite one.

    A linear primitive for autodiff (its tangent is cast the same way) whose transpose is the
    saturating cast back: the cotangent reaching a float16 input is clipped to float16's range,
    not overflowed. No JAX rule can express "linear forward, clipping backward" otherwise: a
    ``custom_vjp`` would rule out forward mode.

    Examples:
        >>> saturating_cast(jnp.array([1e6, -1e6]), jnp.float16).tolist()
        [65504.0, -65504.0]
    """
    return _saturating_cast_p.bind(x, dtype=jnp.dtype(dtype))


def _saturating_cast_value(x, *, dtype):
    if jnp.finfo(dtype).max < jnp.finfo(x.dtype).max:
        limit = float(jnp.finfo(dtype).max)
        x = jnp.clip(x, -limit, limit)
    return jax.lax.convert_element_type(x, dtype)


def _saturating_cast_transpose(cotangent, x, *, dtype):
    if type(cotangent) is ad.Zero:
        return [ad.Zero(x.aval)]
    return [saturating_cast(cotangent, x.aval.dtype)]


_saturating_cast_p = jax.extend.core.Primitive("saturating_cast")
_saturating_cast_p.def_impl(_saturating_cast_value)  # eager: the jnp ops, op by op
_saturating_cast_p.def_abstract_eval(
    lambda aval, *, dtype: aval.update(dtype=dtype, weak_type=False)
)
mlir.register_lowering(
    _saturating_cast_p, mlir.lower_fun(_saturating_cast_value, multiple_results=False)
)
ad.deflinear2(_saturating_cast_p, _saturating_cast_transpose)
batching.defvectorized(_saturating_cast_p)


# --------------------------------------------------------------------------------------
# max-shifted exponentials
# --------------------------------------------------------------------------------------
def row_peak(x: jax.Array, axis: int = -1, keepdims: bool = True) -> jax.Array:
    """The shift of every log-sum-exp: ``max(x, axis)``, never below the lowest finite value.

    The floor is the reduction's initial value, so it costs nothing per entry, and an
    all-``-inf`` row gets a finite shift (its shifted exponentials are then all 0).

    Examples:
        >>> float(row_peak(jnp.array([-jnp.inf, -jnp.inf]))[0]) == float(jnp.finfo(jnp.float32).min)
        True
    """
    return jnp.max(x, axis=axis, keepdims=keepdims, initial=jnp.finfo(x.dtype).min)


def logsumexp(x: jax.Array, axis: int = -1, keepdims: bool = False) -> jax.Array:
    """Max-shifted ``log(sum(exp(x), axis))``; an all-``-inf`` row gives ``-inf``, gradient 0.

    Examples:
        >>> print(f"{float(logsumexp(jnp.array([0.0, -jnp.inf, 1e30]))):.3g}")
        1e+30
    """
    peak = jax.lax.stop_gradient(row_peak(x, axis))
    total = jnp.sum(jnp.exp(x - peak), axis=axis, keepdims=True)
    out = jnp.where(total > 0, jnp.log(jnp.where(total > 0, total, 1.0)), -jnp.inf) + peak
    return out if keepdims else jnp.squeeze(out, axis=axis)


def log_softmax(logits: jax.Array, axis: int = -1) -> jax.Array:
    """Stable log-softmax along ``axis``; ``-inf`` logits give ``-inf`` log-probabilities.

    The shift is subtracted before the log-sum-exp is: at ``|x| ~ 1e30``, ``x - logsumexp(x)``
    would round ``log(n)`` away. Combine with :func:`weighted_sum_of_logs` so that masked
    (``-inf``) classes with zero target weight contribute exactly 0 and a zero gradient.

    Examples:
        >>> lp = log_softmax(jnp.array([0.0, 0.0, -jnp.inf]))
        >>> [round(float(v), 4) for v in lp[:2]]
        [-0.6931, -0.6931]
    """
    shifted = logits - jax.lax.stop_gradient(row_peak(logits, axis))
    total = jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True)
    return shifted - jnp.log(jnp.where(total > 0, total, 1.0))


# --------------------------------------------------------------------------------------
# elementwise helpers
# --------------------------------------------------------------------------------------
@partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def straight_through_clip(x: jax.Array, low: float, high: float) -> jax.Array:
    """``jnp.clip(x, low, high)`` whose derivative is 1 everywhere (straight through).

    The value equals Keras's clip exactly. The tangent map is the identity, so a probability of
    exactly 0 for the true class still receives a gradient: the one deliberate difference from
    Keras's numerics.

    Examples:
        >>> g = jax.grad(lambda p: -jnp.log(straight_through_clip(p, EPSILON, 1 - EPSILON)))(0.0)
        >>> bool(g < 0)  # Keras's clip would give exactly 0 here
        True
    """
    return jnp.clip(x, low, high)


@straight_through_clip.defjvp
def _straight_through_clip_jvp(low, high, primals, tangents):
    (x,), (x_dot,) = primals, tangents
    return straight_through_clip(x, low, high), x_dot


def clip_probabilities(p: jax.Array) -> jax.Array:
    """``p`` clipped to ``[EPSILON, 1 - EPSILON]`` as Keras does, with a straight-through gradient."""
    return straight_through_clip(p, EPSILON, 1.0 - EPSILON)


def weighted_log(weights: jax.Array, logs: jax.Array) -> jax.Array:
    """Elementwise ``weights * logs`` where zero weights give exactly 0, value and gradient.

    Entries with ``weights == 0`` are excluded before multiplying (double ``where``), so a
    ``-inf`` log under a zero weight gives neither a NaN value nor a NaN gradient.

    Examples:
        >>> weighted_log(jnp.array([0.0, 2.0]), jnp.array([-jnp.inf, -1.0])).tolist()
        [0.0, -2.0]
    """
    keep = weights != 0
    return jnp.where(keep, weights * jnp.where(keep, logs, 0.0), 0.0)


def weighted_sum_of_logs(weights: jax.Array, logs: jax.Array, axis: int = -1) -> jax.Array:
    """``sum(weighted_log(weights, logs), axis)``.

    Examples:
        >>> float(weighted_sum_of_logs(jnp.array([0.0, 1.0]), jnp.array([-jnp.inf, -2.0])))
        -2.0
    """
    return jnp.sum(weighted_log(weights, logs), axis=axis)


def safe_divide(numerator: ArrayLike, denominator: ArrayLike) -> jax.Array:
    """``numerator / denominator``, 0 where the denominator is 0, with finite gradients.

    Examples:
        >>> safe_divide(jnp.array([1.0, 1.0]), jnp.array([2.0, 0.0])).tolist()
        [0.5, 0.0]
    """
    nonzero = denominator != 0
    safe_den = jnp.where(nonzero, denominator, 1)
    return jnp.where(nonzero, numerator / safe_den, 0)


def power(base: jax.Array, exponent: Any) -> jax.Array:
    """``base ** exponent`` for ``base >= 0`` with a finite gradient at ``base == 0``.

    A static whole exponent (focal ``gamma=2``) uses repeated multiplication, exact and cheap.
    Otherwise negative bases count as 0; at ``base == 0`` the derivative in ``base`` (infinite for
    exponents below 1) is taken at :data:`EPSILON`, the clip the probability losses use. The
    exponent may be a traced array: its derivative is ``base ** exponent * log(base)`` (0 at
    ``base == 0``).

    Examples:
        >>> float(jax.grad(lambda p: power(p, 0.5))(0.0)) > 0
        True
        >>> round(float(jax.grad(lambda q: power(jnp.float32(0.5), q))(2.0)), 4)  # 0.25 log 0.5
        -0.1733
    """
    static = isinstance(exponent, (int, float, np.integer, np.floating))
    if static and float(exponent).is_integer() and exponent >= 0:
        return base ** int(exponent)
    return _real_power(base, exponent)


@jax.custom_jvp
def _real_power(base: jax.Array, exponent: Any) -> jax.Array:
    positive = base > 0
    safe_base = jnp.where(positive, base, 1.0)
    return jnp.where(positive, safe_base**exponent, jnp.power(0.0, exponent))


@_real_power.defjvp
def _real_power_jvp(primals, tangents):
    (base, exponent), (base_dot, exponent_dot) = primals, tangents
    value = _real_power(base, exponent)
    floor = jnp.where(base > 0, base, EPSILON)
    d_base = exponent * floor ** (exponent - 1) * base_dot
    d_exponent = jnp.where(base > 0, value * jnp.log(jnp.where(base > 0, base, 1.0)), 0.0)
    return value, d_base + d_exponent * exponent_dot


@jax.custom_jvp
def logistic_terms(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``(softplus(x), softplus(-x), sigmoid(x), sigmoid(-x))`` from one ``exp`` and one ``log1p``.

    With ``s = exp(-|x|)``: ``softplus(±x) = max(±x, 0) + log1p(s)``, ``sigmoid(|x|) = 1/(1 + s)``
    and ``sigmoid(-|x|) = s/(1 + s)``; exact for any ``x``, ``±inf`` included. Note
    ``softplus(-x) = -log(sigmoid(x))``.

    Examples:
        >>> [round(float(v), 4) for v in logistic_terms(jnp.array(0.0))]
        [0.6931, 0.6931, 0.5, 0.5]
    """
    s = jnp.exp(-jnp.abs(x))
    shared = jnp.log1p(s)
    large = 1.0 / (1.0 + s)
    small = s * large
    positive = x >= 0
    return (
        jnp.maximum(x, 0.0) + shared,
        jnp.maximum(-x, 0.0) + shared,
        jnp.where(positive, large, small),
        jnp.where(positive, small, large),
    )


@logistic_terms.defjvp
def _logistic_terms_jvp(primals, tangents):
    # Written out: autodiff through |x| would give a wrong derivative at x = 0.
    (x,), (x_dot,) = primals, tangents
    terms = logistic_terms(x)
    sigmoid, sigmoid_neg = terms[2], terms[3]
    d_sigmoid = sigmoid * sigmoid_neg * x_dot
    return terms, (sigmoid * x_dot, -sigmoid_neg * x_dot, d_sigmoid, -d_sigmoid)


def _peak_magnitude(x: jax.Array, axis: int = -1) -> jax.Array:
    """``max|x|`` along ``axis`` (kept), a constant for the gradient: norms taken of ``x``
    divided by it cannot overflow, and the callers' values do not depend on it."""
    return jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=axis, keepdims=True))


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
    """Keras's ``normalize``: ``x / max(||x||, 1e-7)`` along ``axis``, without overflow.

    The norm is taken of ``x`` divided by its largest magnitude (a constant for the gradient:
    the result does not depend on it), so entries of 1e30 neither overflow nor lose the
    direction. A vector whose norm is at most ``1e-7`` (the zero vector included) is divided
    by ``1e-7``: its value and gradient stay finite.

    Examples:
        >>> l2_normalize(jnp.array([3e30, 4e30])).tolist()
        [0.6000000238418579, 0.800000011920929]
    """
    scale = _peak_magnitude(x, axis)
    safe_scale = jnp.where(scale > 0, scale, 1.0)
    scaled = x / safe_scale
    squared_norm = jnp.sum(jnp.square(scaled), axis=axis, keepdims=True)
    # ||x|| > eps  <=>  ||x / scale||^2 > (eps / scale)^2
    above_eps = (scale > 0) & (squared_norm > jnp.square(EPSILON / safe_scale))
    safe_squared_norm = jnp.where(above_eps, squared_norm, 1.0)
    return jnp.where(above_eps, scaled * jax.lax.rsqrt(safe_squared_norm), x / EPSILON)


def cosine_similarity(x1: jax.Array, x2: jax.Array, epsilon: float) -> jax.Array:
    """PyTorch's ``x1 . x2 / sqrt((|x1|**2 + epsilon) (|x2|**2 + epsilon))`` over the last axis,
    without overflow.

    Each vector is divided by ``s = max(max|x|, 1)``: ``|x|**2 + epsilon`` is ``s**2`` times
    ``|x / s|**2 + epsilon / s**2``, which cannot overflow, and the cosine does not depend on
    ``s``. A zero vector has cosine 0 and a finite gradient.

    Examples:
        >>> cos = cosine_similarity(jnp.array([3e30, 4e30]), jnp.array([4.0, 3.0]), 1e-12)
        >>> print(f"{float(cos):.4f}")  # (12 + 12) / (5 * 5)
        0.9600
    """

    def scaled(x: jax.Array) -> tuple[jax.Array, jax.Array]:
        scale = jnp.maximum(_peak_magnitude(x), 1.0)
        return x / scale, epsilon / jnp.square(scale[..., 0])

    (u1, eps1), (u2, eps2) = scaled(x1), scaled(x2)
    squared_norms = (jnp.sum(u1 * u1, axis=-1) + eps1) * (jnp.sum(u2 * u2, axis=-1) + eps2)
    return jnp.sum(u1 * u2, axis=-1) * jax.lax.rsqrt(squared_norms)


# --------------------------------------------------------------------------------------
# elementwise losses averaged over the last axis
# --------------------------------------------------------------------------------------
def prepare_pair(
    y_true: ArrayLike, y_pred: ArrayLike, loss_name: str, min_rank: int = 0
) -> tuple[jax.Array, jax.Array, jnp.dtype]:
    """``(y_true, y_pred, out_dtype)``: both in the accumulation dtype, aligned and broadcast.

    ``y_pred``'s floating dtype (float32 for integer input) is the dtype the loss returns.
    ``y_true`` goes straight to the accumulation dtype, never through a low-precision float.
    Shapes are aligned as Keras does (a trailing size-1 dimension squeezed or expanded), then
    broadcast to one shape; ``min_rank`` is the smallest rank the loss accepts.
    """
    y_pred = as_float_array(y_pred, "y_pred")
    out_dtype = y_pred.dtype
    y_true = as_float_array(y_true, "y_true", accumulation_dtype(out_dtype))
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


def mean_of_elementwise(
    per_element: Callable[[jax.Array, jax.Array], jax.Array],
    y_true: ArrayLike,
    y_pred: ArrayLike,
    loss_name: str,
) -> jax.Array:
    """``mean(per_element(y_true, y_pred), axis=-1)`` on prepared inputs, in the output dtype."""
    y_true, y_pred, out_dtype = prepare_pair(y_true, y_pred, loss_name, min_rank=1)
    return mean_last_axis(per_element(y_true, y_pred)).astype(out_dtype)


@jax.custom_jvp
def log_cosh_elementwise(x: jax.Array) -> jax.Array:
    """``log(cosh(x))`` to full relative precision for finite ``x`` (down to where ``x**2 / 2``
    underflows); derivative ``tanh(x)``.

    Examples:
        >>> print(f"{float(log_cosh_elementwise(jnp.array(1e30))):.4g}")
        1e+30
    """
    # With a = |x|: cosh(a) - 1 = expm1(-a)**2 / (2 exp(-a)), so log1p of that is exact down to
    # x**2 / 2 near 0. Above a = 20, log1p(exp(-2a)) < 5e-18 is below float precision.
    magnitude = jnp.abs(x)
    moderate = magnitude < 20.0
    clamped = jnp.where(moderate, magnitude, 0.0)
    expm1_neg = jnp.expm1(-clamped)
    moderate_value = jnp.log1p(jnp.square(expm1_neg) / (2.0 * jnp.exp(-clamped)))
    return jnp.where(moderate, moderate_value, magnitude - _LOG_2)


@log_cosh_elementwise.defjvp
def _log_cosh_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return log_cosh_elementwise(x), jnp.tanh(x) * dx
