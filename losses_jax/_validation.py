"""Trace-time validation: one vocabulary of ``check_*`` helpers and input conversions.

Every helper looks only at static information (Python values, shapes, dtypes), so it raises at
trace time, eagerly and under :func:`jax.jit` alike. Errors are ``TypeError`` (wrong kind of
value) or ``ValueError`` (wrong value or shape) and name the argument, what was received and
what is expected. Checks on array *values* run only under :func:`losses_jax.checked`; they are
the ``guard_*`` helpers of :mod:`losses_jax.checks`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, TypeGuard

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer
from jax.typing import ArrayLike

__all__ = [
    "as_float_array",
    "as_label_array",
    "check_axis",
    "check_bool",
    "check_broadcastable",
    "check_int",
    "check_number",
    "check_rank",
    "is_traced",
    "is_zero",
    "match_shapes",
    "normalize_axis",
    "resolve_axis",
    "squeeze_or_expand_to_same_rank",
]


def is_traced(value: Any) -> bool:
    """Whether ``value`` is a JAX tracer (an option passed as a traced array)."""
    return isinstance(value, Tracer)


def is_zero(value: Any) -> bool:
    """Whether a static option is 0 (a traced value is never treated as 0)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and value == 0


# --------------------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------------------
def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(
    value: Any, name: str, *, low: int | None = None, allow_none: bool = False
) -> int | None:
    """``value`` as a Python int (``bool`` is refused), at least ``low``; ``None`` if allowed.

    Examples:
        >>> check_int(3, "beam_width", low=1)
        3
        >>> check_int(True, "ignore_class", allow_none=True)
        Traceback (most recent call last):
        ...
        TypeError: `ignore_class` must be an int or None; received ignore_class=True.
    """
    if value is None and allow_none:
        return None
    if not _is_int(value):
        expected = "an int or None" if allow_none else "an int"
        raise TypeError(f"`{name}` must be {expected}; received {name}={value!r}.")
    if low is not None and value < low:
        raise ValueError(f"`{name}` must be >= {low}; received {name}={value!r}.")
    return int(value)


def check_bool(value: Any, name: str) -> bool:
    """``value`` if it is a bool (NumPy's included), else a ``TypeError``.

    Examples:
        >>> check_bool(np.bool_(True), "from_logits")
        True
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be a bool; received {name}={value!r}.")
    return bool(value)


def check_number(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> Any:
    """Validates a real scalar option against an interval; traced values pass through unchecked.

    Examples:
        >>> check_number(0.1, "label_smoothing", low=0.0, high=1.0)
        0.1
        >>> check_number(2.0, "label_smoothing", low=0.0, high=1.0)
        Traceback (most recent call last):
        ...
        ValueError: `label_smoothing` must be in [0.0, 1.0]; received label_smoothing=2.0.
    """
    if is_traced(value):
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


def check_axis(axis: Any, loss_name: str, *, allow_tuple: bool = True) -> Any:
    """``axis`` if it is an int (or, with ``allow_tuple``, a tuple of ints or None).

    Examples:
        >>> check_axis(1.5, "dice")
        Traceback (most recent call last):
        ...
        TypeError: dice: `axis` must be an int, a tuple of ints or None; received axis=1.5.
    """
    is_tuple = isinstance(axis, (tuple, list)) and all(_is_int(a) for a in axis)
    if not (_is_int(axis) or (allow_tuple and (is_tuple or axis is None))):
        expected = "an int, a tuple of ints or None" if allow_tuple else "an int"
        raise TypeError(f"{loss_name}: `axis` must be {expected}; received axis={axis!r}.")
    return tuple(axis) if isinstance(axis, list) else axis


def normalize_axis(axis: Any, ndim: int, name: str = "axis") -> Any:
    """Maps a possibly negative axis (or tuple of axes; ``None`` passes through) into range.

    Examples:
        >>> normalize_axis(-1, 3), normalize_axis((0, -1), 2)
        (2, (0, 1))
    """
    if axis is None:
        return None
    if isinstance(axis, (tuple, list)):
        return tuple(normalize_axis(a, ndim, name) for a in axis)
    if not _is_int(axis):
        raise TypeError(f"`{name}` must be an int; received {name}={axis!r}.")
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"`{name}`={axis} is out of range for an input of rank {ndim} "
            f"(valid: {-ndim} to {ndim - 1})."
        )
    return int(axis) % ndim


def resolve_axis(axis: Any, shape: Sequence[int], loss_name: str) -> Any:
    """``axis`` (int, tuple of ints or None) normalized for ``shape``, or a clear error."""
    check_axis(axis, loss_name)
    try:
        resolved = normalize_axis(axis, len(shape))
    except (TypeError, ValueError) as err:
        raise type(err)(f"{loss_name}: {err} Input shape: {tuple(shape)}.") from None
    if isinstance(resolved, tuple) and len(set(resolved)) != len(resolved):
        raise ValueError(
            f"{loss_name}: `axis`={axis!r} names an axis twice; input shape: {tuple(shape)}."
        )
    return resolved


# --------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------
def as_label_array(x: ArrayLike, name: str) -> jax.Array:
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


def as_float_array(x: ArrayLike, name: str, dtype: Any = None) -> jax.Array:
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


def check_rank(x: jax.Array, rank: int, name: str, layout: str) -> None:
    """Raises unless ``x`` has exactly ``rank`` dimensions (``layout`` names them)."""
    if x.ndim != rank:
        raise ValueError(
            f"`{name}` must have rank {rank}, shape {layout}; received shape {tuple(x.shape)}."
        )


def squeeze_or_expand_to_same_rank(
    x1: jax.Array, x2: jax.Array, expand_rank_1: bool = True
) -> tuple[jax.Array, jax.Array]:
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


def match_shapes(
    y_true: jax.Array, y_pred: jax.Array, loss_name: str
) -> tuple[jax.Array, jax.Array]:
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
