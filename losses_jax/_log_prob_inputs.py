"""Inputs of the preference losses: log-probabilities in the accumulation dtype, broadcast to
the policy's shape, frozen where the papers detach them, and the numerics of log-odds.

Shared by :mod:`losses_jax.losses.preference`; private.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from losses_jax._numerics import safe_divide, upcast
from losses_jax._validation import as_float_array, check_broadcastable

__all__ = [
    "companion",
    "frozen",
    "kto_reference_point",
    "log1m_exp",
    "log_odds",
    "per_token_average",
    "policy_inputs",
    "split_pairs",
]


def policy_inputs(x: ArrayLike, name: str) -> tuple[jax.Array, jnp.dtype]:
    """The trained model's log-probs in the accumulation dtype, and the dtype to return."""
    arr = as_float_array(x, name)
    return upcast(arr), arr.dtype


def companion(x: ArrayLike, name: str, shape: tuple, out_dtype, loss_name: str) -> jax.Array:
    """A further array, in the policy's dtype then upcast, broadcast to the policy's shape."""
    arr = as_float_array(x, name)
    if not check_broadcastable(arr.shape, shape):
        raise ValueError(
            f"{loss_name}: `{name}` must have the shape of the policy log-probs {tuple(shape)} "
            f"(one entry per example); received shape {tuple(arr.shape)}."
        )
    arr = arr.astype(out_dtype) if arr.dtype != out_dtype else arr
    return jnp.broadcast_to(upcast(arr), shape)


def frozen(x: ArrayLike, name: str, shape: tuple, out_dtype, loss_name: str) -> jax.Array:
    """A reference model's log-probs: a constant for the gradient, as in the papers."""
    return jax.lax.stop_gradient(companion(x, name, shape, out_dtype, loss_name))


def per_token_average(total: jax.Array, length: ArrayLike | None, name: str, loss_name: str):
    """``total / length`` (0 for an empty completion), or ``total`` when no length is given."""
    if length is None:
        return total
    length = as_float_array(length, name, total.dtype)
    if not check_broadcastable(length.shape, total.shape):
        raise ValueError(
            f"{loss_name}: `{name}` must hold one token count per example, shape "
            f"{tuple(total.shape)}; received shape {tuple(length.shape)}."
        )
    return safe_divide(total, length)


def split_pairs(y_true: jax.Array, y_pred: jax.Array, what: str, loss_name: str):
    """``y_pred``/``y_true`` of shape ``(..., 2)`` split into their chosen and rejected halves."""
    if y_pred.ndim < 1 or y_pred.shape[-1] != 2:
        raise ValueError(
            f"{loss_name}: `y_pred` must hold the policy log-probs of (chosen, rejected) on its "
            f"last axis, shape (..., 2); received shape {tuple(y_pred.shape)}."
        )
    if not check_broadcastable(y_true.shape, y_pred.shape):
        raise ValueError(
            f"{loss_name}: `y_true` must hold the {what} of (chosen, rejected), the shape of "
            f"`y_pred`; received y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}."
        )
    y_true = jnp.broadcast_to(y_true, y_pred.shape)
    return y_pred[..., 0], y_pred[..., 1], y_true[..., 0], y_true[..., 1]


def log1m_exp(a: jax.Array) -> jax.Array:
    """``log(1 - exp(a))`` for ``a < 0``, accurate on both sides of ``-log 2`` (Maechler, 2012)."""
    near_zero = a > -0.6931471805599453
    log_expm1 = jnp.log(-jnp.expm1(jnp.where(near_zero, a, -1.0)))
    log1p_exp = jnp.log1p(-jnp.exp(jnp.where(near_zero, -1.0, a)))
    return jnp.where(near_zero, log_expm1, log1p_exp)


def log_odds(mean_log_prob: jax.Array) -> jax.Array:
    """``log(P / (1 - P))`` of ``P = exp(mean_log_prob)``.

    A mean log-prob of exactly 0 (``P = 1``) has infinite odds: it is taken at ``-eps`` (the
    dtype's machine epsilon), which keeps the value and the gradient finite.
    """
    ceiling = -jnp.finfo(mean_log_prob.dtype).eps
    a = jnp.where(mean_log_prob < ceiling, mean_log_prob, ceiling)
    return a - log1m_exp(a)


def kto_reference_point(
    reference_point, policy_mismatched, reference_mismatched, dtype
) -> jax.Array:
    if reference_point is not None:
        return jax.lax.stop_gradient(as_float_array(reference_point, "reference_point", dtype))
    if policy_mismatched is None or reference_mismatched is None:
        raise ValueError(
            "kto: the reference point z0 is missing: pass `reference_point=` (a number or one "
            "per example, e.g. 0.0 or a running estimate), or both `policy_mismatched=` and "
            "`reference_mismatched=` (log-probs of mismatched (prompt, completion) pairs; the "
            "paper's batch estimate)."
        )
    policy = upcast(as_float_array(policy_mismatched, "policy_mismatched"))
    reference = upcast(as_float_array(reference_mismatched, "reference_mismatched"))
    if policy.shape != reference.shape:
        raise ValueError(
            f"kto: `policy_mismatched` and `reference_mismatched` must have one shape; received "
            f"{tuple(policy.shape)} and {tuple(reference.shape)}."
        )
    log_ratios = (policy - reference).astype(dtype)
    estimate = safe_divide(jnp.sum(log_ratios), log_ratios.size)
    return jax.lax.stop_gradient(jnp.maximum(estimate, 0.0))
