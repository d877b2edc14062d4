"""The ``Loss`` base class, ``LossFunctionWrapper`` and the one shared reduction.

Every loss in the library is a per-sample function plus a class that calls it and hands the
result to :func:`reduce_weighted_values`. Sample weighting, masking and reduction are written
once, here.

Reductions and their divisors (Keras 3's, exactly)::

    "sum"                      sum(w * loss)
    "sum_over_batch_size"      sum(w * loss) / number of (unmasked) loss entries
    "mean"                     same as "sum_over_batch_size"
    "mean_with_sample_weight"  sum(w * loss) / sum(w)
    None or "none"             w * loss, unreduced

Loss objects are immutable, hashable and registered as pytrees with no leaves, so they can be
closed over or passed as static arguments through :func:`jax.jit`, :func:`jax.vmap` and
:func:`jax.tree_util.tree_map` untouched.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from losses_jax.numerics import (
    accumulation_dtype,
    as_float_array,
    as_label_array,
    check_broadcastable,
    compute_dtype,
    safe_divide,
    squeeze_or_expand_to_same_rank,
)

__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "REDUCTIONS",
    "reduce_weighted_values",
    "standardize_reduction",
]

REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", "none", None)


def standardize_reduction(reduction):
    """Validates ``reduction`` (one of :data:`REDUCTIONS`) and returns it.

    Examples:
        >>> standardize_reduction("sum")
        'sum'
        >>> standardize_reduction("avg")
        Traceback (most recent call last):
        ...
        ValueError: Invalid value for argument `reduction`: 'avg'. Expected one of ('sum_over_batch_size', 'sum', 'mean', 'mean_with_sample_weight', 'none', None).
    """
    if reduction not in REDUCTIONS:
        raise ValueError(
            f"Invalid value for argument `reduction`: {reduction!r}. Expected one of {REDUCTIONS}."
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


def reduce_weighted_values(
    values,
    sample_weight=None,
    mask=None,
    reduction="sum_over_batch_size",
    dtype=None,
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
    values = as_float_array(values, "values")
    out_dtype = compute_dtype(dtype) if dtype is not None else values.dtype
    acc_dtype = accumulation_dtype(values.dtype)
    values = values.astype(acc_dtype)

    float_mask = None
    if mask is not None:
        mask = as_label_array(mask, "mask")
        float_mask = (mask != 0).astype(acc_dtype)
        if sample_weight is None:
            sample_weight = float_mask
        else:
            weight = as_float_array(sample_weight, "sample_weight", acc_dtype)
            float_mask, weight = squeeze_or_expand_to_same_rank(float_mask, weight)
            # Keras multiplies the mask into the weights; the finer of the two sets the shape.
            if weight.ndim > float_mask.ndim:
                sample_weight = weight * _align_to(weight, float_mask, "mask")
            else:
                sample_weight = float_mask * _align_to(float_mask, weight, "sample_weight")

    if sample_weight is not None:
        sample_weight = as_float_array(sample_weight, "sample_weight", acc_dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * _align_to(values, sample_weight, "sample_weight")

    if reduction in (None, "none") or values.shape in ((), (0,)):
        return values.astype(out_dtype)
    total = jnp.sum(values)
    if reduction == "sum":
        return total.astype(out_dtype)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        divisor = jnp.sum(sample_weight)
    elif float_mask is not None:
        # Entries per mask element: the mask may be coarser than the losses, e.g. (B,) vs (B, T).
        divisor = jnp.sum(float_mask) * (values.size / max(float_mask.size, 1))
    else:
        divisor = jnp.asarray(values.size, acc_dtype)
    return safe_divide(total, divisor).astype(out_dtype)


def _snake_case(name: str) -> str:
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def _freeze(value):
    """A hashable rendering of a config value (lists -> tuples, dicts -> sorted tuples)."""
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (np.ndarray, jax.Array)):
        return (str(value.dtype), tuple(np.asarray(value).ravel().tolist()), value.shape)
    return value


class _FrozenAfterInit(type):
    """Metaclass that makes instances read-only once ``__init__`` has returned."""

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        object.__setattr__(obj, "_frozen", True)
        return obj


class Loss(metaclass=_FrozenAfterInit):
    """Base class of every loss: subclass it and implement :meth:`call`.

    ``loss(y_true, y_pred, sample_weight=None, mask=None)`` converts ``y_pred`` (and floating
    ``y_true``) to the compute ``dtype``, calls ``self.call(y_true, y_pred)`` for per-sample
    losses and reduces them with :func:`reduce_weighted_values`. Integer labels are kept
    integer.

    Args:
        name: a name for the loss (default: the class name in snake case).
        reduction: ``"sum_over_batch_size"`` (default), ``"sum"``, ``"mean"``,
            ``"mean_with_sample_weight"``, ``None`` or ``"none"``.
        dtype: compute and result dtype (default float32); ``"bfloat16"``/``"float16"`` give a
            result of that dtype while logs and sums still run in float32.

    Examples:
        >>> class MeanCubicError(Loss):
        ...     def call(self, y_true, y_pred):
        ...         return jnp.mean(jnp.abs(y_pred - y_true) ** 3, axis=-1)
        >>> loss = MeanCubicError()
        >>> float(loss(jnp.zeros((2, 2)), jnp.ones((2, 2))))
        1.0
        >>> loss.name, MeanCubicError.from_config(loss.get_config()) == loss
        ('mean_cubic_error', True)
    """

    def __init__(self, name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or _snake_case(type(self).__name__)
        self.reduction = standardize_reduction(reduction)
        self.dtype = compute_dtype(dtype).name

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register_pytree(cls)

    def __setattr__(self, key, value):
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} is immutable; create a new loss instead of setting {key!r}."
            )
        object.__setattr__(self, key, value)

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None) -> jax.Array:
        y_pred = jax.tree_util.tree_map(lambda x: as_float_array(x, "y_pred", self.dtype), y_pred)
        y_true = jax.tree_util.tree_map(self._convert_y_true, y_true)
        losses = self.call(y_true, y_pred)
        own_mask = self.loss_mask(y_true, y_pred)
        if own_mask is not None:
            mask = own_mask if mask is None else jnp.logical_and(mask, own_mask)
        return reduce_weighted_values(
            losses,
            sample_weight=sample_weight,
            mask=mask,
            reduction=self.reduction,
            dtype=self.dtype,
        )

    def _convert_y_true(self, x):
        x = as_label_array(x, "y_true")
        # Integer labels stay exact: casting ids above 2048 to float16 would corrupt them.
        return x.astype(self.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    def call(self, y_true, y_pred) -> jax.Array:
        """Per-sample losses; subclasses implement this."""
        raise NotImplementedError(f"{type(self).__name__}.call is not implemented.")

    def loss_mask(self, y_true, y_pred) -> jax.Array | None:
        """Entries of ``self.call``'s output to leave out of the reduction (``None``: keep all).

        Keras attaches such a mask to the losses (e.g. ``ignore_class``); here a subclass
        returns it. It is combined with the caller's ``mask`` by logical and.
        """
        return None

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments; ``type(self).from_config(config)`` rebuilds the loss."""
        return {"name": self.name, "reduction": self.reduction, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]):
        """Rebuilds a loss from :meth:`get_config`'s output; unknown keys raise ``ValueError``."""
        valid = _constructor_keys(cls)
        unknown = sorted(set(config) - valid) if valid is not None else []
        if unknown:
            raise ValueError(
                f"{cls.__name__}.from_config: unknown config keys {unknown}; valid keys are "
                f"{sorted(valid)}."
            )
        return cls(**config)

    def _identity(self):
        return type(self), _freeze(self.get_config())

    def __eq__(self, other):
        return isinstance(other, Loss) and self._identity() == other._identity()

    def __hash__(self):
        return hash(self._identity())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _constructor_keys(cls) -> set[str] | None:
    """Keyword names the constructor accepts, following ``**kwargs`` up the MRO (None: any)."""
    keys: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        if klass is LossFunctionWrapper:
            return None  # its **kwargs go to `fn`, whatever they are
        params = inspect.signature(klass.__init__).parameters.values()
        keys |= {p.name for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return keys - {"self"}


def _register_pytree(cls):
    # No leaves: the whole object is static auxiliary data, so jit/vmap/tree_map pass it along.
    jax.tree_util.register_pytree_node(cls, lambda loss: ((), loss), lambda loss, _: loss)


_register_pytree(Loss)


class LossFunctionWrapper(Loss):
    """Turns any ``fn(y_true, y_pred, **kwargs) -> per-sample losses`` into a full loss.

    ``y_true`` and ``y_pred`` are aligned as in Keras (a trailing size-1 dimension is squeezed
    or expanded) before ``fn`` is called with the stored ``kwargs``.

    Args:
        fn: the per-sample loss function.
        reduction, name, dtype: as for :class:`Loss` (``name`` defaults to ``fn.__name__``).
        **kwargs: extra keyword arguments passed to ``fn`` on every call.

    Examples:
        >>> def mean_fourth_power(y_true, y_pred, scale=1.0):
        ...     return scale * jnp.mean((y_pred - y_true) ** 4, axis=-1)
        >>> loss = LossFunctionWrapper(mean_fourth_power, scale=2.0, reduction="sum")
        >>> float(loss(jnp.zeros((3, 2)), jnp.ones((3, 2))))
        6.0
    """

    def __init__(
        self,
        fn: Callable,
        reduction="sum_over_batch_size",
        name: str | None = None,
        dtype=None,
        **kwargs,
    ):
        if not callable(fn):
            raise TypeError(f"`fn` must be callable; received {type(fn).__name__}.")
        super().__init__(
            name=name or getattr(fn, "__name__", None), reduction=reduction, dtype=dtype
        )
        self.fn = fn
        self._fn_kwargs = dict(kwargs)

    def call(self, y_true, y_pred) -> jax.Array:
        if isinstance(y_true, jax.Array) and isinstance(y_pred, jax.Array):
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        # Subclasses fix `fn` in their constructor and take the kwargs by name.
        if type(self) is LossFunctionWrapper:
            config["fn"] = self.fn
        config.update(self._fn_kwargs)
        return config

    def __repr__(self):
        if type(self) is LossFunctionWrapper:
            name = getattr(self.fn, "__name__", repr(self.fn))
            return f"LossFunctionWrapper({name}, kwargs={self._fn_kwargs!r})"
        return super().__repr__()


class FunctionLoss(LossFunctionWrapper):
    """A loss that is one per-sample function without options (set as ``function``).

    The default ``name`` is the function's name, which is Keras's default name for each of
    these classes. ``reduction``, ``name`` and ``dtype`` are as for
    :class:`~losses_jax.base.Loss`.
    """

    function = None

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(self.function, reduction=reduction, name=name, dtype=dtype)
