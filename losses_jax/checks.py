"""Opt-in runtime value checks with :mod:`jax.experimental.checkify`.

Shape and dtype errors are raised at trace time everywhere. Checks on *values* (labels out of
range, probabilities outside [0, 1], negative CTC lengths) are emitted as
:func:`checkify.debug_check`, which only runs under :func:`checked`; everywhere else it is
dropped when lowering, and XLA removes the predicate with it, so the compiled hot path is free::

    err, value = lj.checked(loss)(y_true, y_pred)
    err.throw()   # raises JaxRuntimeError naming the bad argument, if any

The traced program is the same with and without :func:`checked`, so it composes with
:func:`jax.jit` on either side and shares its caches safely.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import checkify

__all__ = [
    "check_in_unit_interval",
    "check_labels_in_range",
    "check_nonnegative",
    "checked",
]


def checked(fn: Callable) -> Callable:
    """Wraps a loss (function or instance) so that its value checks run; returns ``(err, out)``.

    Examples:
        >>> loss = lj.SparseCategoricalCrossentropy()
        >>> err, _ = checked(loss)(jnp.array([0, 5]), jnp.full((2, 3), 1 / 3))
        >>> print(err.get().splitlines()[0])  # doctest: +ELLIPSIS
        `y_true` holds class ids outside [0, 3)...
    """

    return functools.wraps(fn, updated=())(checkify.checkify(fn, errors=checkify.user_checks))


def check_labels_in_range(labels: jax.Array, num_classes: int, name: str, ignore=None) -> None:
    """Under :func:`checked`: every label (except ``ignore``) lies in ``[0, num_classes)``."""
    ok = (labels >= 0) & (labels < num_classes)
    if ignore is not None:
        ok = ok | (labels == ignore)
    checkify.debug_check(jnp.all(ok), f"`{name}` holds class ids outside [0, {num_classes})")


def check_in_unit_interval(values: jax.Array, name: str) -> None:
    """Under :func:`checked`: every value lies in ``[0, 1]`` (NaN fails too)."""
    checkify.debug_check(
        jnp.all((values >= 0) & (values <= 1)), f"`{name}` holds probabilities outside [0, 1]"
    )


def check_nonnegative(values: jax.Array, name: str) -> None:
    """Under :func:`checked`: every value is ``>= 0``."""
    checkify.debug_check(jnp.all(values >= 0), f"`{name}` holds negative values")
