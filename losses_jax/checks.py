"""Opt-in runtime value checks with :mod:`jax.experimental.checkify`.

Shape and dtype errors are raised at trace time everywhere. Checks on *values* (labels out of
range, probabilities outside [0, 1], negative CTC lengths) only run under :func:`checked`::

    err, value = lj.checked(loss)(y_true, y_pred)
    err.throw()   # raises JaxRuntimeError naming the bad argument, if any

Each check is a *guard* (the ``guard_*`` helpers): an identity on the checked array, carrying
the predicate, with no side effect. Without :func:`checked` it lowers to nothing, so XLA drops
the predicate and the compiled program is the one without checks; and, having no effect (unlike
:func:`checkify.debug_check`, whose effect takes every enclosing :func:`jax.jit` off its fast
dispatch path), it leaves the caller's jit as cheap to call as without it. Under :func:`checked`, checkify's rule for the guard reports a failed predicate.
The traced program is the same with and without :func:`checked`, so it composes with
:func:`jax.jit` on either side and shares its caches safely.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.experimental import checkify
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

try:  # checkify's rule registry is internal; without it, fall back on debug_check.
    from jax._src import checkify as _checkify_rules
except ImportError:  # pragma: no cover - depends on the JAX version
    _checkify_rules = None

__all__ = [
    "guard_unit_interval",
    "guard_labels_in_range",
    "guard_nonnegative",
    "checked",
]


def checked(fn: Callable[..., Any]) -> Callable[..., tuple[checkify.Error, Any]]:
    """Wraps a loss (function or instance) so that its value checks run; returns ``(err, out)``.

    Examples:
        >>> loss = lj.SparseCategoricalCrossentropy()
        >>> err, _ = checked(loss)(jnp.array([0, 5]), jnp.full((2, 3), 1 / 3))
        >>> print(err.get().splitlines()[0])  # doctest: +ELLIPSIS
        `y_true` holds class ids outside [0, 3)...
    """

    return functools.wraps(fn, updated=())(checkify.checkify(fn, errors=checkify.user_checks))


# --------------------------------------------------------------------------------------
# the guard primitive: x, ok -> x
# --------------------------------------------------------------------------------------
_guard_p = Primitive("losses_jax_value_guard")
_guard_p.def_impl(lambda x, ok, *, message: x)
_guard_p.def_abstract_eval(lambda x, ok, *, message: x)
mlir.register_lowering(_guard_p, lambda ctx, x, ok, *, message: [x])


def _guard_jvp(primals, tangents, *, message):
    x, ok = primals
    return _guard_p.bind(x, ok, message=message), tangents[0]


def _guard_batch(args, dims, *, message):
    x, ok = args
    x_dim, ok_dim = dims
    if ok_dim is not None:  # None: not batched
        ok = jnp.all(ok)  # one predicate for the whole batch
    return _guard_p.bind(x, ok, message=message), x_dim


ad.primitive_jvps[_guard_p] = _guard_jvp
batching.primitive_batchers[_guard_p] = _guard_batch

if _checkify_rules is not None:
    _rules = _checkify_rules

    def _guard_checkify(error, enabled_errors, x, ok, *, message):
        if _rules.FailedCheckError in enabled_errors:
            failure = _rules.FailedCheckError(_rules.get_traceback(), message)
            error = _rules.assert_func(error, jnp.logical_not(ok), failure)
        return error, x

    _rules.error_checks[_guard_p] = _guard_checkify


def _guard(x: jax.Array, ok: jax.Array, message: str) -> jax.Array:
    """``x``, with the scalar predicate ``ok`` checked under :func:`checked`."""
    if _checkify_rules is None:  # pragma: no cover - depends on the JAX version
        checkify.debug_check(ok, message)
        return x
    return _guard_p.bind(jnp.asarray(x), jnp.asarray(ok, bool), message=message)


def guard_labels_in_range(
    labels: jax.Array, num_classes: int, name: str, ignore: int | None = None
) -> jax.Array:
    """``labels``; under :func:`checked`, every label (but ``ignore``) must be in ``[0, num_classes)``.

    Use the returned array: an unused guard is dead code, and its check goes with it.

    Examples:
        >>> err, _ = checked(guard_labels_in_range)(jnp.array([0, 3]), 3, "y_true")
        >>> print(err.get().splitlines()[0])  # doctest: +ELLIPSIS
        `y_true` holds class ids outside [0, 3)...
    """
    ok = (labels >= 0) & (labels < num_classes)
    if ignore is not None:
        ok = ok | (labels == ignore)
    return _guard(labels, jnp.all(ok), f"`{name}` holds class ids outside [0, {num_classes})")


def guard_unit_interval(values: jax.Array, name: str) -> jax.Array:
    """``values``; under :func:`checked`, every value must lie in ``[0, 1]`` (NaN fails too).

    Examples:
        >>> err, _ = checked(guard_unit_interval)(jnp.array([0.5, 1.5]), "y_pred")
        >>> print(err.get().splitlines()[0])  # doctest: +ELLIPSIS
        `y_pred` holds probabilities outside [0, 1]...
    """
    ok = jnp.all((values >= 0) & (values <= 1))
    return _guard(values, ok, f"`{name}` holds probabilities outside [0, 1]")


def guard_nonnegative(values: jax.Array, name: str) -> jax.Array:
    """``values``; under :func:`checked`, every value must be ``>= 0``.

    Examples:
        >>> err, _ = checked(guard_nonnegative)(jnp.array([1, -1]), "target_length")
        >>> print(err.get().splitlines()[0])  # doctest: +ELLIPSIS
        `target_length` holds negative values...
    """
    return _guard(values, jnp.all(values >= 0), f"`{name}` holds negative values")
