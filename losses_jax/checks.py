"""Opt-in runtime value checks with :mod:`jax.experimental.checkify`.

Shape and dtype errors are raised at trace time everywhere. Checks on *values* (labels out of
range, probabilities outside [0, 1], negative CTC lengths) cost work on every call, so they are
off by default and compiled in only under :func:`checked`::

    err, value = lj.checked(loss)(y_true, y_pred)
    err.throw()   # raises JaxRuntimeError naming the bad argument, if any

:func:`checked` composes with :func:`jax.jit` on either side.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.experimental import checkify

__all__ = [
    "check_in_unit_interval",
    "check_labels_in_range",
    "check_nonnegative",
    "checked",
    "value_checks_enabled",
]

_STATE = threading.local()


def value_checks_enabled() -> bool:
    """Whether value checks are being traced in (only inside :func:`checked`)."""
    return getattr(_STATE, "enabled", False)


@contextlib.contextmanager
def _enabled():
    previous = value_checks_enabled()
    _STATE.enabled = True
    try:
        yield
    finally:
        _STATE.enabled = previous


def checked(fn: Callable) -> Callable:
    """Wraps a loss (function or instance) so that its value checks run; returns ``(err, out)``.

    Examples:
        >>> loss = lj.SparseCategoricalCrossentropy()
        >>> err, _ = checked(loss)(jnp.array([0, 5]), jnp.full((2, 3), 1 / 3))
        >>> print(err.get().splitlines()[0])  # doctest: +ELLIPSIS
        `y_true` holds class ids outside [0, 3) (check failed at ...)
    """

    checkified = checkify.checkify(fn, errors=checkify.user_checks)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        # The flag is read while tracing, so the checks exist only in this wrapper's traces.
        with _enabled():
            return checkified(*args, **kwargs)

    return wrapper


def check_labels_in_range(labels: jax.Array, num_classes: int, name: str, ignore=None) -> None:
    """Under :func:`checked`: every label (except ``ignore``) lies in ``[0, num_classes)``."""
    if value_checks_enabled():
        ok = (labels >= 0) & (labels < num_classes)
        if ignore is not None:
            ok = ok | (labels == ignore)
        checkify.check(
            jnp.all(ok), f"`{name}` holds class ids outside [0, {num_classes})"
        )


def check_in_unit_interval(values: jax.Array, name: str) -> None:
    """Under :func:`checked`: every value lies in ``[0, 1]`` (NaN fails too)."""
    if value_checks_enabled():
        checkify.check(
            jnp.all((values >= 0) & (values <= 1)),
            f"`{name}` holds probabilities outside [0, 1]",
        )


def check_nonnegative(values: jax.Array, name: str) -> None:
    """Under :func:`checked`: every value is ``>= 0``."""
    if value_checks_enabled():
        checkify.check(jnp.all(values >= 0), f"`{name}` holds negative values")
