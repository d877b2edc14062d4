"""Preference losses on sequence log-probabilities: DPO (and its hinge, IPO and robust
variants), SimPO, ORPO and KTO.

Every function takes per-sequence log-probabilities ``log pi(y | x)`` (sums over the
completion's tokens, e.g. from ``linear_log_probs`` or a ``log_softmax``), one entry per
example, and returns one loss per example. The frozen reference model's log-probabilities
receive no gradient (``stop_gradient``), as in the papers and TRL.

**Class mapping.** The classes take ``loss(y_true, y_pred, **inputs)`` where ``y_pred`` always
holds the *trained policy's* log-probabilities and ``y_true`` what they are compared against:

==========  =======================================  ==========================================
class       ``y_pred``                               ``y_true``
==========  =======================================  ==========================================
``DPO``     policy ``(..., 2)``: chosen, rejected    reference ``(..., 2)``: chosen, rejected
``SimPO``   policy summed ``(..., 2)``               token counts ``(..., 2)`` (ones: averages)
``ORPO``    policy summed ``(..., 2)``               token counts ``(..., 2)`` (ones: averages)
``KTO``     policy ``(...)``, one per completion     reference ``(...)``; ``desirable=`` keyword
==========  =======================================  ==========================================

:class:`~losses_jax.PolicyGradient` follows the same rule (``y_true``: the sampling policy's
log-probs). Computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s
dtype; ``beta``, ``gamma``, ``label_smoothing`` and the KTO weights may be traced arrays.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._log_prob_inputs import (
    companion,
    frozen,
    kto_reference_point,
    log_odds,
    per_token_average,
    policy_inputs,
    split_pairs,
)
from losses_jax._numerics import logistic_terms
from losses_jax._validation import (
    as_float_array,
    check_bool,
    check_broadcastable,
    check_number,
    is_traced,
)
from losses_jax.base import Loss

__all__ = ["DPO", "KTO", "ORPO", "SimPO", "dpo", "kto", "orpo", "simpo"]

DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust")


# --------------------------------------------------------------------------------------
# option checks
# --------------------------------------------------------------------------------------
def _check_beta(beta: Any) -> Any:
    return check_number(beta, "beta", low=0.0, low_inclusive=False)


def _check_loss_type(loss_type: Any) -> str:
    if loss_type not in DPO_LOSS_TYPES:
        raise ValueError(
            f"`loss_type` must be one of {DPO_LOSS_TYPES}; received loss_type={loss_type!r}."
        )
    return loss_type


def _check_label_smoothing(label_smoothing: Any, loss_type: str) -> Any:
    """In [0, 0.5] (robust: [0, 0.5), it divides by 1 - 2 eps); hinge and IPO take none."""
    high_inclusive = loss_type != "robust"
    check_number(
        label_smoothing, "label_smoothing", low=0.0, high=0.5, high_inclusive=high_inclusive
    )
    unused = loss_type in ("hinge", "ipo")
    if unused and not is_traced(label_smoothing) and float(label_smoothing) != 0.0:
        raise ValueError(
            f"`label_smoothing` applies to loss_type='sigmoid' (conservative DPO) and 'robust'; "
            f"received label_smoothing={label_smoothing!r} with loss_type={loss_type!r}."
        )
    return label_smoothing


# --------------------------------------------------------------------------------------
# DPO
# --------------------------------------------------------------------------------------
def dpo(
    policy_chosen: ArrayLike,
    policy_rejected: ArrayLike,
    reference_chosen: ArrayLike,
    reference_rejected: ArrayLike,
    *,
    beta: Any = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: Any = 0.0,
) -> jax.Array:
    """Direct preference optimisation loss per pair, and its hinge, IPO and robust variants.

    With the implicit reward margin
    ``h = (policy_chosen - reference_chosen) - (policy_rejected - reference_rejected)``
    (log-probs of whole completions) and ``eps = label_smoothing``:

    * ``"sigmoid"`` (DPO; conservative DPO for ``eps > 0``, TRL's cDPO):
      ``-(1 - eps) log sigmoid(beta h) - eps log sigmoid(-beta h)``;
    * ``"hinge"`` (SLiC/RSO): ``max(0, 1 - beta h)``;
    * ``"ipo"``: ``(h - 1 / (2 beta))**2``;
    * ``"robust"`` (unbiased under a label flip rate ``eps < 1/2``):
      ``((1 - eps) (-log sigmoid(beta h)) - eps (-log sigmoid(-beta h))) / (1 - 2 eps)``.

    Each formula is the paper's and TRL's. Two conventions to know: SLiC's original calibration
    loss ``max(0, delta - log pi(y_w) + log pi(y_l))`` has no reference model; with reference
    log-probs of 0 the hinge here is ``beta`` times it with ``delta = 1 / beta`` (RSO's form,
    Liu et al. 2024, which TRL implements). TRL feeds IPO the *per-token average* log-probs
    (``sum / length``) instead of the paper's sums: pass averages to get TRL's IPO.

    Args:
        policy_chosen, policy_rejected: the trained policy's log-probs of the preferred and
            the dispreferred completion, shape ``(batch, ...)``.
        reference_chosen, reference_rejected: the frozen reference model's, same shape (no
            gradient flows into them).
        beta: the inverse temperature ``> 0`` (default 0.1; IPO's ``tau``).
        loss_type: ``"sigmoid"`` (default), ``"hinge"``, ``"ipo"`` or ``"robust"``.
        label_smoothing: the assumed rate of flipped labels, in ``[0, 0.5]`` (``"robust"``:
            ``[0, 0.5)``); only ``"sigmoid"`` and ``"robust"`` take it.

    Returns:
        Losses of ``policy_chosen``'s shape and floating dtype.

    References:
        Rafailov et al. (2023), "Direct Preference Optimization: Your Language Model is
        Secretly a Reward Model", NeurIPS. Zhao et al. (2023), "SLiC-HF: Sequence Likelihood
        Calibration with Human Feedback". Azar et al. (2024), "A General Theoretical Paradigm
        to Understand Learning from Human Preferences" (IPO), AISTATS. Chowdhury, Kini &
        Natarajan (2024), "Provably Robust DPO: Aligning Language Models with Noisy
        Feedback", ICML. Mitchell (2023), "A note on DPO with noisy preferences" (cDPO).

    Examples:
        >>> pc, pr = jnp.array([-5.0, -9.0]), jnp.array([-7.0, -6.0])
        >>> rc, rr = jnp.array([-6.0, -8.0]), jnp.array([-6.0, -7.0])
        >>> [round(float(v), 4) for v in dpo(pc, pr, rc, rr, beta=1.0)]  # h = 2, -2
        [0.1269, 2.1269]
        >>> [round(float(v), 4) for v in dpo(pc, pr, rc, rr, beta=0.5, loss_type="ipo")]
        [1.0, 9.0]
    """
    _check_beta(beta)
    _check_loss_type(loss_type)
    _check_label_smoothing(label_smoothing, loss_type)
    chosen, out_dtype = policy_inputs(policy_chosen, "policy_chosen")
    shape = chosen.shape
    rejected = companion(policy_rejected, "policy_rejected", shape, out_dtype, "dpo")
    ref_chosen = frozen(reference_chosen, "reference_chosen", shape, out_dtype, "dpo")
    ref_rejected = frozen(reference_rejected, "reference_rejected", shape, out_dtype, "dpo")
    margin = (chosen - ref_chosen) - (rejected - ref_rejected)
    if loss_type == "ipo":
        losses = jnp.square(margin - 1.0 / (2.0 * beta))
    elif loss_type == "hinge":
        slack = 1.0 - beta * margin
        losses = jnp.where(slack > 0, slack, 0.0)
    else:
        # softplus(-x) = -log sigmoid(x) and softplus(x) = -log sigmoid(-x), both stable.
        minus_log_sigmoid_neg, minus_log_sigmoid, _, _ = logistic_terms(beta * margin)
        eps = label_smoothing
        if loss_type == "sigmoid":
            losses = (1.0 - eps) * minus_log_sigmoid + eps * minus_log_sigmoid_neg
        else:
            losses = ((1.0 - eps) * minus_log_sigmoid - eps * minus_log_sigmoid_neg) / (
                1.0 - 2.0 * eps
            )
    return losses.astype(out_dtype)


# --------------------------------------------------------------------------------------
# SimPO and ORPO: no reference model
# --------------------------------------------------------------------------------------
def simpo(
    chosen: ArrayLike,
    rejected: ArrayLike,
    *,
    beta: Any = 2.0,
    gamma: Any = 1.0,
    chosen_length: ArrayLike | None = None,
    rejected_length: ArrayLike | None = None,
) -> jax.Array:
    """Simple preference optimisation loss per pair:
    ``-log sigmoid(beta (avg_chosen - avg_rejected) - gamma)``.

    ``avg`` is the length-normalised log-likelihood ``log pi(y | x) / |y|``: ``chosen`` and
    ``rejected`` are these averages, or, with ``chosen_length``/``rejected_length`` given, the
    summed log-probs, divided here. ``gamma`` is the target reward margin (the SimPO code's
    ``gamma_beta_ratio`` is ``gamma / beta``; TRL's ``simpo_gamma`` is ``gamma``).

    Args:
        chosen, rejected: the policy's average (or, with lengths, summed) log-probs of the
            preferred and dispreferred completions, shape ``(batch, ...)``.
        beta: the reward scale ``> 0`` (default 2.0, the paper's range is 2.0 to 2.5).
        gamma: the target reward margin (default 1.0; real, may be traced).
        chosen_length, rejected_length: token counts of the completions (optional, keyword
            only); an empty completion counts as an average of 0.

    Returns:
        Losses of ``chosen``'s shape and floating dtype.

    References:
        Meng, Xia & Chen (2024), "SimPO: Simple Preference Optimization with a
        Reference-Free Reward", NeurIPS.

    Examples:
        >>> loss = simpo(jnp.array([-10.0]), jnp.array([-30.0]), beta=2.0, gamma=1.0,
        ...              chosen_length=jnp.array([10.0]), rejected_length=jnp.array([15.0]))
        >>> round(float(loss[0]), 4)  # -log sigmoid(2 (-1 + 2) - 1)
        0.3133
    """
    _check_beta(beta)
    check_number(gamma, "gamma")
    chosen_, out_dtype = policy_inputs(chosen, "chosen")
    shape = chosen_.shape
    rejected_ = companion(rejected, "rejected", shape, out_dtype, "simpo")
    chosen_avg = per_token_average(chosen_, chosen_length, "chosen_length", "simpo")
    rejected_avg = per_token_average(rejected_, rejected_length, "rejected_length", "simpo")
    _, minus_log_sigmoid, _, _ = logistic_terms(beta * (chosen_avg - rejected_avg) - gamma)
    return minus_log_sigmoid.astype(out_dtype)


def orpo(
    chosen: ArrayLike,
    rejected: ArrayLike,
    *,
    beta: Any = 0.1,
    include_nll: bool = True,
    chosen_length: ArrayLike | None = None,
    rejected_length: ArrayLike | None = None,
) -> jax.Array:
    """Odds-ratio preference optimisation loss per pair: ``-avg_chosen + beta L_OR``.

    ``L_OR = -log sigmoid(log odds(chosen) - log odds(rejected))``, with
    ``odds(y) = P / (1 - P)`` of the length-normalised likelihood ``P = exp(avg)`` and
    ``log(1 - P)`` computed stably (``log(-expm1)`` near 0, ``log1p(-exp)`` below ``-log 2``).
    The first term is the paper's supervised NLL of the chosen completion, here per example
    (its mean per-token NLL). ``include_nll=False`` returns ``beta L_OR`` alone, to add to a
    token-level NLL of one's own: TRL's ``ORPOTrainer`` averages the NLL over all chosen tokens
    of the batch (the same when every chosen completion has the same length) and names the
    weight ``beta`` as here (the paper's ``lambda``).

    Args:
        chosen, rejected: the policy's average (or, with lengths, summed) log-probs of the
            preferred and dispreferred completions, shape ``(batch, ...)``, at most 0.
        beta: the weight ``lambda >= 0`` of the odds-ratio term (default 0.1).
        include_nll: whether to add the chosen completion's NLL (default True, the paper's
            objective).
        chosen_length, rejected_length: token counts of the completions (optional, keyword
            only).

    Returns:
        Losses of ``chosen``'s shape and floating dtype.

    References:
        Hong, Lee & Thorne (2024), "ORPO: Monolithic Preference Optimization without
        Reference Model", EMNLP.

    Examples:
        >>> loss = orpo(jnp.log(jnp.array([0.5])), jnp.log(jnp.array([0.2])), beta=1.0)
        >>> round(float(loss[0]), 4)  # log 2 + log(1 + 1/4): odds 1 and 1/4
        0.9163
    """
    check_number(beta, "beta", low=0.0)
    include_nll = check_bool(include_nll, "include_nll")
    chosen_, out_dtype = policy_inputs(chosen, "chosen")
    shape = chosen_.shape
    rejected_ = companion(rejected, "rejected", shape, out_dtype, "orpo")
    chosen_avg = per_token_average(chosen_, chosen_length, "chosen_length", "orpo")
    rejected_avg = per_token_average(rejected_, rejected_length, "rejected_length", "orpo")
    _, minus_log_sigmoid, _, _ = logistic_terms(log_odds(chosen_avg) - log_odds(rejected_avg))
    losses = beta * minus_log_sigmoid
    if include_nll:
        losses = losses - chosen_avg
    return losses.astype(out_dtype)


# --------------------------------------------------------------------------------------
# KTO
# --------------------------------------------------------------------------------------
def kto(
    policy: ArrayLike,
    reference: ArrayLike,
    desirable: ArrayLike,
    *,
    beta: Any = 0.1,
    desirable_weight: Any = 1.0,
    undesirable_weight: Any = 1.0,
    reference_point: ArrayLike | None = None,
    policy_mismatched: ArrayLike | None = None,
    reference_mismatched: ArrayLike | None = None,
) -> jax.Array:
    """Kahneman-Tversky optimisation loss per completion, on unpaired feedback.

    With the implied reward ``r = policy - reference`` and the reference point ``z0``:
    ``desirable_weight (1 - sigmoid(beta (r - z0)))`` for a desirable completion,
    ``undesirable_weight (1 - sigmoid(beta (z0 - r)))`` for an undesirable one (the paper's
    ``lambda_y - v(x, y)``; TRL's ``kto`` loss is the same).

    ``z0`` is ``reference_point`` when given (a number or one per completion), else the paper's
    batch estimate ``max(0, mean(policy_mismatched - reference_mismatched))`` from the
    log-probs of mismatched pairs ``(x_i, y_j)``, ``j != i`` (TRL shifts completions by one
    in the batch). Either way ``z0`` receives no gradient, as in the paper's implementation
    (HALOs) and TRL; TRL averages the estimate per device and then across devices, which is
    the batch mean when the devices hold equal shares. Being a batch statistic, the estimate
    is taken over whatever ``vmap`` or a shard sees.

    Args:
        policy: the trained policy's log-probs of each completion, shape ``(batch, ...)``.
        reference: the frozen reference model's, same shape (no gradient).
        desirable: whether each completion is desirable (bool or 0/1), same shape.
        beta: the inverse temperature ``> 0`` (default 0.1).
        desirable_weight, undesirable_weight: ``lambda_D, lambda_U >= 0`` (default 1; the
            paper keeps ``lambda_D n_D / (lambda_U n_U)`` in ``[1, 4/3]``).
        reference_point: ``z0`` (optional, keyword only).
        policy_mismatched, reference_mismatched: log-probs of mismatched pairs, any shape,
            for the batch estimate of ``z0`` (keyword only).

    Returns:
        Losses of ``policy``'s shape and floating dtype.

    References:
        Ethayarajh, Xu, Muennighoff, Jurafsky & Kiela (2024), "KTO: Model Alignment as
        Prospect Theoretic Optimization", ICML.

    Examples:
        >>> loss = kto(jnp.array([-4.0, -4.0]), jnp.array([-5.0, -5.0]),
        ...            jnp.array([True, False]), beta=1.0, reference_point=1.0)
        >>> [round(float(v), 4) for v in loss]  # r = z0: 1 - sigmoid(0)
        [0.5, 0.5]
    """
    _check_beta(beta)
    check_number(desirable_weight, "desirable_weight", low=0.0)
    check_number(undesirable_weight, "undesirable_weight", low=0.0)
    policy_, out_dtype = policy_inputs(policy, "policy")
    shape = policy_.shape
    reference_ = frozen(reference, "reference", shape, out_dtype, "kto")
    labels = as_float_array(desirable, "desirable")
    if not check_broadcastable(labels.shape, shape):
        raise ValueError(
            f"kto: `desirable` must hold one flag per completion, shape {tuple(shape)}; "
            f"received shape {tuple(labels.shape)}."
        )
    z0 = kto_reference_point(
        reference_point, policy_mismatched, reference_mismatched, policy_.dtype
    )
    if not check_broadcastable(z0.shape, shape):
        raise ValueError(
            f"kto: `reference_point` must be a number or one per completion, shape "
            f"{tuple(shape)}; received shape {tuple(z0.shape)}."
        )
    _, _, sigmoid, sigmoid_neg = logistic_terms(beta * ((policy_ - reference_) - z0))
    losses = jnp.where(labels != 0, desirable_weight * sigmoid_neg, undesirable_weight * sigmoid)
    return losses.astype(out_dtype)


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class DPO(Loss):
    """Direct preference optimisation loss; see :func:`dpo`.

    Call as ``loss(reference, policy)``: ``y_pred`` holds the policy's log-probs of
    (chosen, rejected) on a last axis of 2, ``y_true`` the reference model's, same shape.

    Args:
        beta: the inverse temperature ``> 0`` (default 0.1).
        loss_type: ``"sigmoid"`` (default), ``"hinge"``, ``"ipo"`` or ``"robust"``.
        label_smoothing: the assumed rate of flipped labels (``"sigmoid"``/``"robust"``).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> policy = jnp.array([[-5.0, -7.0], [-9.0, -6.0]])
        >>> reference = jnp.array([[-6.0, -6.0], [-8.0, -7.0]])
        >>> print(f"{float(DPO(beta=1.0)(reference, policy)):.4f}")
        1.1269
    """

    function = dpo

    def __init__(
        self,
        beta: Any = 0.1,
        loss_type: str = "sigmoid",
        label_smoothing: Any = 0.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "dpo",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta = _check_beta(beta)
        self.loss_type = _check_loss_type(loss_type)
        self.label_smoothing = _check_label_smoothing(label_smoothing, loss_type)

    def call(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> jax.Array:
        pc, pr, rc, rr = split_pairs(y_true, y_pred, "reference log-probs", "DPO")
        return dpo(pc, pr, rc, rr, **inputs, **self.options)


class SimPO(Loss):
    """Simple preference optimisation loss; see :func:`simpo`.

    Call as ``loss(token_counts, summed_log_probs)``, both ``(..., 2)`` for (chosen, rejected);
    with ``y_true`` of ones, ``y_pred`` holds the average log-probs themselves.

    Args:
        beta: the reward scale ``> 0`` (default 2.0).
        gamma: the target reward margin (default 1.0).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = SimPO(beta=2.0, gamma=1.0)
        >>> print(f"{float(loss(jnp.array([[10.0, 15.0]]), jnp.array([[-10.0, -30.0]]))):.4f}")
        0.3133
    """

    function = simpo

    def __init__(
        self,
        beta: Any = 2.0,
        gamma: Any = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "simpo",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta = _check_beta(beta)
        self.gamma = check_number(gamma, "gamma")

    def call(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> jax.Array:
        chosen, rejected, lc, lr = split_pairs(y_true, y_pred, "token counts", "SimPO")
        return simpo(
            chosen, rejected, chosen_length=lc, rejected_length=lr, **inputs, **self.options
        )


class ORPO(Loss):
    """Odds-ratio preference optimisation loss; see :func:`orpo`.

    Call as ``loss(token_counts, summed_log_probs)``, both ``(..., 2)`` for (chosen, rejected);
    with ``y_true`` of ones, ``y_pred`` holds the average log-probs themselves.

    Args:
        beta: the weight ``lambda >= 0`` of the odds-ratio term (default 0.1).
        include_nll: whether to add the chosen completion's NLL (default True).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> summed = jnp.log(jnp.array([[0.5, 0.2]]))
        >>> print(f"{float(ORPO(beta=1.0)(jnp.ones((1, 2)), summed)):.4f}")
        0.9163
    """

    function = orpo

    def __init__(
        self,
        beta: Any = 0.1,
        include_nll: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "orpo",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta = check_number(beta, "beta", low=0.0)
        self.include_nll = check_bool(include_nll, "include_nll")

    def call(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> jax.Array:
        chosen, rejected, lc, lr = split_pairs(y_true, y_pred, "token counts", "ORPO")
        return orpo(
            chosen, rejected, chosen_length=lc, rejected_length=lr, **inputs, **self.options
        )


class KTO(Loss):
    """Kahneman-Tversky optimisation loss; see :func:`kto`.

    Call as ``loss(reference, policy, desirable=..., reference_point=...)`` (or with
    ``policy_mismatched=``/``reference_mismatched=`` instead of ``reference_point=``): one
    log-prob per completion in ``y_pred`` (policy) and ``y_true`` (reference).

    Args:
        beta: the inverse temperature ``> 0`` (default 0.1).
        desirable_weight, undesirable_weight: ``lambda_D, lambda_U >= 0`` (default 1).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = KTO(beta=1.0)(jnp.array([-5.0, -5.0]), jnp.array([-4.0, -6.0]),
        ...                      desirable=jnp.array([1, 0]), reference_point=0.0)
        >>> print(f"{float(loss):.4f}")  # both: 1 - sigmoid(1)
        0.2689
    """

    function = kto

    def __init__(
        self,
        beta: Any = 0.1,
        desirable_weight: Any = 1.0,
        undesirable_weight: Any = 1.0,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "kto",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta = _check_beta(beta)
        self.desirable_weight = check_number(desirable_weight, "desirable_weight", low=0.0)
        self.undesirable_weight = check_number(undesirable_weight, "undesirable_weight", low=0.0)

    def call(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> jax.Array:
        if "desirable" not in inputs:
            raise ValueError(
                "KTO: pass `desirable=` (one bool or 0/1 flag per completion) with the call, "
                "e.g. KTO()(reference, policy, desirable=flags, reference_point=0.0)."
            )
        if not check_broadcastable(y_true.shape, y_pred.shape):
            raise ValueError(
                f"KTO: `y_true` must hold the reference log-probs, the shape of `y_pred`; "
                f"received y_true {tuple(y_true.shape)} and y_pred {tuple(y_pred.shape)}."
            )
        return kto(y_pred, y_true, **inputs, **self.options)
