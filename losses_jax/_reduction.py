"""The one reduction: sample weights, masks and Keras 3's divisors, and the reduction names.

:func:`reduce_weighted_values` is what every :class:`~losses_jax.Loss` hands its per-sample
losses to; :mod:`losses_jax.base` exports it with :data:`REDUCTIONS`, :class:`Reduction` and
:func:`standardize_reduction`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import accumulation_dtype, compute_dtype, safe_divide
from losses_jax._validation import (
    as_float_array,
    as_label_array,
    check_broadcastable,
    squeeze_or_expand_to_same_rank,
)

__all__ = [
    "REDUCTIONS",
    "Reduction",
    "combine_masks",
    "gradient_tangent",
    "is_zero_tangent",
    "reduce_weighted_values",
    "reduction_weights",
    "standardize_reduction",
]

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


class Reduction:
    """The reduction names of Keras 2, tf.keras 1.x and R keras, as constants.

    ``AUTO`` (``"auto"``, the default there) means ``"sum_over_batch_size"`` outside a
    distribution strategy, and that is what it means here.

    Examples:
        >>> lj.MeanSquaredError(reduction=lj.Reduction.AUTO).reduction
        'sum_over_batch_size'
        >>> lj.Reduction.all()
        ('auto', 'none', 'sum', 'sum_over_batch_size')
    """

    AUTO = "auto"
    NONE = "none"
    SUM = "sum"
    SUM_OVER_BATCH_SIZE = "sum_over_batch_size"

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return (cls.AUTO, cls.NONE, cls.SUM, cls.SUM_OVER_BATCH_SIZE)

    @classmethod
    def validate(cls, key: str) -> None:
        """Raises ``ValueError`` unless ``key`` is one of :meth:`all` (tf.keras's check)."""
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key: {key!r}. Expected one of {cls.all()}.")


def standardize_reduction(reduction: str | None) -> str | None:
    """Validates ``reduction`` (one of :data:`REDUCTIONS`, or ``"auto"``) and returns it.

    ``"auto"``, the default of Keras 2 and tf.keras 1.x, is returned as
    ``"sum_over_batch_size"``, what it means outside a distribution strategy.

    Examples:
        >>> standardize_reduction("sum"), standardize_reduction("auto")
        ('sum', 'sum_over_batch_size')
        >>> standardize_reduction("avg")
        Traceback (most recent call last):
        ...
        ValueError: Invalid value for argument `reduction`: 'avg'. Expected one of ('sum_over_batch_size', 'sum', 'mean', 'mean_with_sample_weight', 'none', None) or 'auto'.
    """
    if reduction == Reduction.AUTO:
        return "sum_over_batch_size"
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`: {reduction!r}. Expected one of "
            f"{REDUCTIONS} or 'auto'."
        )
    return reduction


def _align_to(values: jax.Array, weights: jax.Array, name: str) -> jax.Array:
    """Broadcasts ``weights`` against ``values``: leading dimensions first, then NumPy rules.

    A weight whose shape matches the leading dimensions of ``values`` scales every element of
    the corresponding slice (a ``(batch,)`` weight scales all timesteps of its sample). This is
    done by mapping an elementwise product with one :func:`jax.vmap` per leading dimension.
    Otherwise NumPy (trailing) broadcasting applies.
    """
    v_shape, w_shape = values.shape, weights.shape
    if 0 < weights.ndim < values.ndim and check_broadcastable(w_shape, v_shape[: weights.ndim]):
        weights = jnp.broadcast_to(weights, v_shape[: weights.ndim])
        scale = jnp.multiply
        for _ in range(weights.ndim):
            scale = jax.vmap(scale)
        return scale(jnp.ones_like(values), weights)
    if check_broadcastable(w_shape, v_shape):
        return jnp.broadcast_to(weights, v_shape)
    raise ValueError(
        f"`{name}` of shape {tuple(w_shape)} does not broadcast to the per-sample loss of shape "
        f"{tuple(v_shape)}: give a scalar, a vector over the leading (batch) dimensions, or an "
        f"array that broadcasts to {tuple(v_shape)}."
    )


def combine_masks(own_mask: jax.Array, mask: ArrayLike) -> jax.Array:
    """A loss's own mask and the caller's, which may cover only leading dimensions."""
    given = as_label_array(mask, "mask") != 0
    own_mask, given = squeeze_or_expand_to_same_rank(own_mask, given)
    if given.ndim > own_mask.ndim:
        return given & _align_to(given, own_mask, "mask")
    return own_mask & _align_to(own_mask, given, "mask")


def reduce_weighted_values(
    values: ArrayLike,
    sample_weight: ArrayLike | None = None,
    mask: ArrayLike | None = None,
    reduction: str | None = "sum_over_batch_size",
    dtype: DTypeLike | None = None,
    divisor_weights: ArrayLike | None = None,
) -> jax.Array:
    """Weights, masks and reduces per-sample losses, with Keras 3's divisors.

    ``sample_weight`` may be a scalar, a vector over the leading (batch) dimensions of
    ``values`` or any array that broadcasts to it; a trailing size-1 dimension is squeezed or
    expanded as Keras does. ``mask`` (boolean, same rules) removes entries: they contribute
    nothing, and ``"sum_over_batch_size"``/``"mean"`` divide by the number of valid entries.
    Sums run in float32 for float16/bfloat16 losses; the result has dtype ``dtype`` (default:
    the dtype of ``values``).

    Args:
        values: per-sample losses, any shape ``(batch, ...)``.
        sample_weight: optional weights, see above.
        mask: optional boolean mask, see above.
        reduction: one of :data:`REDUCTIONS`.
        dtype: optional output dtype.
        divisor_weights: optional weights of ``values``' shape, what each entry counts in the
            divisor of ``"mean_with_sample_weight"``: ``sum(w * loss) / sum(w * divisor_weights)``
            with ``w`` the sample weights times the mask (1 where not given). Ignored by the
            other reductions.

    Returns:
        A scalar, or the weighted ``values`` for ``reduction=None``/``"none"``.

    Examples:
        >>> losses = jnp.array([[1.0, 2.0], [3.0, 4.0]])
        >>> float(reduce_weighted_values(losses, sample_weight=jnp.array([1.0, 0.0])))
        0.75
        >>> float(reduce_weighted_values(losses, mask=jnp.array([[True, False], [True, False]])))
        2.0
    """
    reduction = standardize_reduction(reduction)
    given_weight, given_mask = sample_weight, mask  # for the divisor weights, weighted alike
    values = as_float_array(values, "values")
    out_dtype = compute_dtype(dtype) if dtype is not None else values.dtype
    acc_dtype = accumulation_dtype(values.dtype)
    values = values.astype(acc_dtype)

    float_mask = None
    weight_name = "sample_weight"  # what an error about the combined weights names
    if mask is not None:
        mask = as_label_array(mask, "mask")
        float_mask = (mask != 0).astype(acc_dtype)
        if sample_weight is None:
            sample_weight, weight_name = float_mask, "mask"
        else:
            weight_name = "sample_weight * mask"
            weight = as_float_array(sample_weight, "sample_weight", acc_dtype)
            float_mask, weight = squeeze_or_expand_to_same_rank(float_mask, weight)
            # Keras multiplies the mask into the weights; the finer of the two sets the shape.
            if weight.ndim > float_mask.ndim:
                sample_weight = weight * _align_to(weight, float_mask, "mask")
            else:
                sample_weight = float_mask * _align_to(float_mask, weight, "sample_weight")

    if sample_weight is not None:
        sample_weight = as_float_array(sample_weight, weight_name, acc_dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * _align_to(values, sample_weight, weight_name)

    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values.astype(out_dtype)
    total = jnp.sum(values)
    if reduction == "sum":
        return total.astype(out_dtype)
    if reduction == "mean_with_sample_weight" and divisor_weights is not None:
        counted = reduce_weighted_values(
            divisor_weights, given_weight, given_mask, reduction="none", dtype=acc_dtype
        )
        divisor = jnp.sum(counted)
    elif reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = jnp.sum(sample_weight)
    elif float_mask is not None:
        # Entries per mask element: the mask may be coarser than the losses, e.g. (B,) vs (B, T).
        divisor = jnp.sum(float_mask) * (values.size / max(float_mask.size, 1))
    else:
        divisor = jnp.asarray(values.size, acc_dtype)
    return safe_divide(total, divisor).astype(out_dtype)


# --------------------------------------------------------------------------------------
# fused weighted sums (Loss.weighted_sum): the reduction as weights, known before the loss
# --------------------------------------------------------------------------------------
def reduction_weights(reduce, shape: tuple, dtype) -> jax.Array:
    """The weights ``w`` with ``reduce(losses) == sum(w * losses)`` (``reduce`` is linear)."""
    return jax.grad(lambda v: reduce(v).astype(dtype))(jnp.zeros(shape, dtype))


def is_zero_tangent(tangent) -> bool:
    """Whether a :func:`jax.custom_jvp` rule's tangent is a known zero (symbolic, or float0)."""
    if tangent is None or isinstance(tangent, SymbolicZero):
        return True
    return getattr(tangent, "dtype", None) == jax.dtypes.float0


def gradient_tangent(pairs, dtype) -> jax.Array:
    """``sum(vdot(gradient, tangent))`` over ``(gradient, tangent)`` pairs, skipping absent
    gradients (None) and zero tangents: the tangent of a fused weighted sum's rule, linear in
    the tangents, so JAX transposes it into "cotangent times the gradients"."""
    total = jnp.zeros((), dtype)
    for gradient, tangent in pairs:
        if gradient is not None and not is_zero_tangent(tangent):
            total = total + jnp.sum(gradient * tangent.astype(gradient.dtype))
    return total
