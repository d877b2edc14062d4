"""Policy-gradient losses on per-token log-probabilities: PPO-clip and GRPO.

:func:`policy_gradient` is the clipped surrogate of PPO with GRPO's KL penalty (the ``k3``
estimator) against a frozen reference model, averaged per sequence (GRPO) or per token (PPO,
DAPO and TRL's default); :func:`group_normalized_advantages` turns each prompt's group of
rewards into GRPO's advantages.

**Class mapping.** :class:`PolicyGradient` follows the preference losses' rule: ``y_pred``
holds the trained policy's per-token log-probs ``(..., time)``, ``y_true`` those of the policy
that sampled the tokens (``old_log_probs``), and ``advantages=``, ``reference_log_probs=`` and
``token_mask=`` come by keyword. ``token_mask`` is the function's ``mask`` (the call's own
``mask=`` keeps its meaning for every loss: a mask of the per-sample values).

Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype;
``clip_epsilon`` and ``kl_coef`` may be traced arrays.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import safe_divide, upcast
from losses_jax._validation import (
    as_float_array,
    as_label_array,
    check_broadcastable,
    check_int,
    check_number,
    is_zero,
)
from losses_jax.base import Loss

__all__ = ["PolicyGradient", "group_normalized_advantages", "policy_gradient"]

AGGREGATIONS = ("sequence", "token")
#: Log-ratios are capped here before ``exp`` (verl's clamp; TRL clamps at 20 in some of its
#: GRPO variants, not its default): ``exp(20) = 4.9e8`` keeps values and gradients finite at
#: log-prob gaps of 1e4, and a policy that far from the sampler is broken anyway. Beyond it
#: the gradient is 0.
MAX_LOG_RATIO = 20.0


def _check_aggregation(aggregation: Any) -> str:
    if aggregation not in AGGREGATIONS:
        raise ValueError(
            f"`aggregation` must be one of {AGGREGATIONS}; received aggregation={aggregation!r}."
        )
    return aggregation


def _check_clip_epsilon(clip_epsilon: Any) -> Any:
    return check_number(clip_epsilon, "clip_epsilon", low=0.0, high=1.0)


def _check_kl_coef(kl_coef: Any) -> Any:
    return check_number(kl_coef, "kl_coef", low=0.0)


def _like(x: ArrayLike, name: str, shape: tuple, out_dtype) -> jax.Array:
    arr = as_float_array(x, name)
    if not check_broadcastable(arr.shape, shape):
        raise ValueError(
            f"policy_gradient: `{name}` must have the shape of `log_probs` {tuple(shape)} "
            f"(one entry per token); received shape {tuple(arr.shape)}."
        )
    return jnp.broadcast_to(upcast(arr.astype(out_dtype)), shape)


def _per_token_advantages(advantages: ArrayLike, shape: tuple, out_dtype) -> jax.Array:
    arr = as_float_array(advantages, "advantages")
    received = tuple(arr.shape)
    if arr.ndim == len(shape) - 1:  # one per sequence: the same for each of its tokens
        arr = arr[..., None]
    if not check_broadcastable(arr.shape, shape):
        raise ValueError(
            f"policy_gradient: `advantages` must hold one value per sequence, shape "
            f"{tuple(shape[:-1])}, or one per token, shape {tuple(shape)}; received shape "
            f"{received}."
        )
    return jnp.broadcast_to(upcast(arr.astype(out_dtype)), shape)


def _exp_of_capped(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(min(x, MAX_LOG_RATIO), exp of it)``."""
    capped = jnp.where(x < MAX_LOG_RATIO, x, MAX_LOG_RATIO)
    return capped, jnp.exp(capped)


def policy_gradient(
    log_probs: ArrayLike,
    old_log_probs: ArrayLike,
    advantages: ArrayLike,
    *,
    mask: ArrayLike | None = None,
    clip_epsilon: Any = 0.2,
    kl_coef: Any = 0.0,
    reference_log_probs: ArrayLike | None = None,
    aggregation: str = "sequence",
) -> jax.Array:
    """PPO's clipped surrogate loss with GRPO's KL penalty, per sequence or per token.

    Per token, with ``ratio = exp(log_probs - old_log_probs)`` and advantage ``A``::

        l_t = -min(ratio A, clip(ratio, 1 - clip_epsilon, 1 + clip_epsilon) A)
              + kl_coef (exp(x) - x - 1),   x = reference_log_probs - log_probs

    the second term being GRPO's unbiased, non-negative ``k3`` estimate of
    ``KL(pi || pi_ref)`` (Schulman, 2020, "Approximating KL Divergence"; TRL's GRPO uses the
    same). ``old_log_probs`` and ``reference_log_probs`` receive no gradient. Log-ratios are
    capped at :data:`MAX_LOG_RATIO` (20) before ``exp``.

    ``aggregation`` chooses the average, over the tokens where ``mask`` is true:

    * ``"sequence"`` (GRPO, Shao et al. 2024, and TRL's ``loss_type="grpo"``): one value per
      sequence, the mean of its tokens' ``l_t`` (0 for a sequence without tokens); a mean over
      sequences then gives ``1/G sum_i 1/|o_i| sum_t l_t``.
    * ``"token"`` (PPO's mean over timesteps; DAPO and TRL's ``"bnpo"``/``"dapo"``, TRL's
      default): one value per token, ``l_t`` where ``mask`` is true and 0 elsewhere; the
      token-level mean is ``sum(values) / sum(mask)``, which :class:`PolicyGradient` computes
      (its ``"sum_over_batch_size"`` divides by the number of unmasked tokens).

    Args:
        log_probs: the trained policy's log-probs of the sampled tokens, ``(batch, ..., time)``.
        old_log_probs: the sampling policy's, same shape (no gradient; pass ``log_probs``
            itself for a single update per batch, as GRPO's default).
        advantages: one per sequence ``(batch, ...)`` (GRPO: :func:`group_normalized_advantages`
            of the rewards) or one per token ``(batch, ..., time)`` (PPO with GAE).
        mask: which tokens belong to the completions (default: all), same shape as
            ``log_probs``.
        clip_epsilon: the clip range ``epsilon`` in ``[0, 1]`` (default 0.2).
        kl_coef: the KL coefficient ``beta >= 0`` (default 0, no penalty; GRPO used 0.04).
        reference_log_probs: the frozen reference model's log-probs, needed when ``kl_coef``
            is not 0.
        aggregation: ``"sequence"`` (default) or ``"token"``.

    Returns:
        ``"sequence"``: losses of shape ``log_probs.shape[:-1]``; ``"token"``: of
        ``log_probs``'s shape; in ``log_probs``'s floating dtype.

    References:
        Schulman, Wolski, Dhariwal, Radford & Klimov (2017), "Proximal Policy Optimization
        Algorithms". Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical
        Reasoning in Open Language Models" (GRPO). Yu et al. (2025), "DAPO: An Open-Source
        LLM Reinforcement Learning System at Scale" (token-level mean).

    Examples:
        >>> new = jnp.log(jnp.array([[0.6, 0.3, 0.5]]))
        >>> old = jnp.log(jnp.array([[0.4, 0.3, 0.5]]))  # ratios 1.5, 1, 1
        >>> loss = policy_gradient(new, old, jnp.array([2.0]), mask=jnp.array([[1, 1, 0]]))
        >>> round(float(loss[0]), 4)  # -(1.2 * 2 + 1 * 2) / 2
        -2.2
    """
    _check_clip_epsilon(clip_epsilon)
    _check_kl_coef(kl_coef)
    _check_aggregation(aggregation)
    raw = as_float_array(log_probs, "log_probs")
    if raw.ndim < 1:
        raise ValueError(
            "policy_gradient: `log_probs` must hold per-token log-probs, shape "
            "(batch, ..., time); received a scalar."
        )
    out_dtype, shape = raw.dtype, raw.shape
    if mask is None:
        keep = jnp.ones(shape, bool)
    else:
        keep = as_label_array(mask, "mask")
        if not check_broadcastable(keep.shape, shape):
            raise ValueError(
                f"policy_gradient: `mask` must have the shape of `log_probs` {tuple(shape)}; "
                f"received shape {tuple(keep.shape)}."
            )
        keep = jnp.broadcast_to(keep != 0, shape)
    # Padding may hold any value (even -inf): zeros there keep every branch finite.
    new = jnp.where(keep, upcast(raw), 0.0)
    old = jnp.where(keep, _like(old_log_probs, "old_log_probs", shape, out_dtype), 0.0)
    old = jax.lax.stop_gradient(old)
    adv = _per_token_advantages(advantages, shape, out_dtype)

    _, ratio = _exp_of_capped(new - old)
    clipped = jnp.clip(ratio, 1.0 - clip_epsilon, 1.0 + clip_epsilon)
    losses = -jnp.minimum(ratio * adv, clipped * adv)
    if not is_zero(kl_coef):
        if reference_log_probs is None:
            raise ValueError(
                "policy_gradient: `kl_coef` is not 0 but no `reference_log_probs` were given; "
                "pass the frozen reference model's per-token log-probs (or kl_coef=0.0)."
            )
        ref = _like(reference_log_probs, "reference_log_probs", shape, out_dtype)
        ref = jax.lax.stop_gradient(jnp.where(keep, ref, 0.0))
        capped, ref_ratio = _exp_of_capped(ref - new)
        losses = losses + kl_coef * (ref_ratio - capped - 1.0)
    losses = jnp.where(keep, losses, 0.0)
    if aggregation == "sequence":
        counts = jnp.sum(keep, axis=-1).astype(losses.dtype)
        losses = safe_divide(jnp.sum(losses, axis=-1), counts)
    return losses.astype(out_dtype)


def group_normalized_advantages(
    rewards: ArrayLike, group_size: int, *, ddof: int = 0, epsilon: Any = 0.0
) -> jax.Array:
    """GRPO's advantages: each reward standardised within its group,
    ``(r - mean(group)) / (std(group) + epsilon)``.

    The last axis of ``rewards`` holds consecutive groups of ``group_size`` completions of
    one prompt each. ``std`` divides by ``group_size - ddof``. The paper's ``std`` is the
    default (``ddof=0``, ``epsilon=0``; a group of equal rewards gets advantages 0); TRL's
    ``scale_rewards="group"`` is ``ddof=1, epsilon=1e-4``.

    Args:
        rewards: shape ``(..., groups * group_size)``.
        group_size: completions per prompt ``G >= 1`` (static).
        ddof: 0 (population std, default) or 1 (Bessel's correction, TRL).
        epsilon: added to the std (default 0).

    Returns:
        Advantages of ``rewards``'s shape and floating dtype.

    References:
        Shao et al. (2024), "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in
        Open Language Models", Section 4.1 (outcome supervision).

    Examples:
        >>> group_normalized_advantages(jnp.array([1.0, 0.0, 3.0, 3.0]), 2).tolist()
        [1.0, -1.0, 0.0, 0.0]
    """
    check_int(group_size, "group_size", low=1)
    check_int(ddof, "ddof", low=0)
    check_number(epsilon, "epsilon", low=0.0)
    raw = as_float_array(rewards, "rewards")
    if raw.ndim < 1 or raw.shape[-1] % group_size:
        raise ValueError(
            f"group_normalized_advantages: the last axis of `rewards` must hold whole groups of "
            f"group_size={group_size}; received shape {tuple(raw.shape)}."
        )
    grouped = upcast(raw).reshape(*raw.shape[:-1], -1, group_size)
    centred = grouped - jnp.mean(grouped, axis=-1, keepdims=True)
    variance = safe_divide(jnp.sum(jnp.square(centred), axis=-1, keepdims=True), group_size - ddof)
    positive = variance > 0
    std = jnp.where(positive, jnp.sqrt(jnp.where(positive, variance, 1.0)), 0.0)
    return safe_divide(centred, std + epsilon).reshape(raw.shape).astype(raw.dtype)


class PolicyGradient(Loss):
    """PPO-clip / GRPO policy-gradient loss; see :func:`policy_gradient`.

    Call as ``loss(old_log_probs, log_probs, advantages=..., token_mask=...,
    reference_log_probs=...)``, per-token log-probs ``(batch, ..., time)``. With
    ``aggregation="token"`` the per-sample values are per token and the reductions leave out
    the tokens outside ``token_mask``: ``"sum_over_batch_size"`` is the token-level mean.

    Args:
        clip_epsilon: the clip range in ``[0, 1]`` (default 0.2).
        kl_coef: the KL coefficient ``>= 0`` (default 0).
        aggregation: ``"sequence"`` (default, GRPO) or ``"token"`` (PPO, DAPO, TRL).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> new = jnp.log(jnp.array([[0.6, 0.3, 0.5]]))
        >>> old = jnp.log(jnp.array([[0.4, 0.3, 0.5]]))
        >>> loss = PolicyGradient(aggregation="token")
        >>> value = loss(old, new, advantages=jnp.array([2.0]), token_mask=jnp.array([[1, 1, 0]]))
        >>> print(f"{float(value):.4f}")
        -2.2000
    """

    function = policy_gradient

    def __init__(
        self,
        clip_epsilon: Any = 0.2,
        kl_coef: Any = 0.0,
        aggregation: str = "sequence",
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "policy_gradient",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.clip_epsilon = _check_clip_epsilon(clip_epsilon)
        self.kl_coef = _check_kl_coef(kl_coef)
        self.aggregation = _check_aggregation(aggregation)

    def call(
        self,
        y_true: jax.Array,
        y_pred: jax.Array,
        advantages: ArrayLike | None = None,
        token_mask: ArrayLike | None = None,
        **inputs: Any,
    ) -> jax.Array:
        if advantages is None:
            raise ValueError(
                "PolicyGradient: pass `advantages=` (one per sequence or one per token) with "
                "the call, e.g. PolicyGradient()(old_log_probs, log_probs, advantages=adv)."
            )
        if not check_broadcastable(y_true.shape, y_pred.shape):
            raise ValueError(
                f"PolicyGradient: `y_true` must hold the sampling policy's log-probs, the shape "
                f"of `y_pred`; received y_true {tuple(y_true.shape)} and y_pred "
                f"{tuple(y_pred.shape)}."
            )
        return policy_gradient(
            y_pred, y_true, advantages, mask=token_mask, **inputs, **self.options
        )

    def loss_mask(
        self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array, **inputs: Any
    ) -> Any:
        """The tokens outside ``token_mask`` leave the token-level mean (``"token"`` only)."""
        token_mask = inputs.get("token_mask")
        if self.aggregation != "token" or token_mask is None:
            return None
        return jnp.broadcast_to(jnp.asarray(token_mask) != 0, losses.shape)
