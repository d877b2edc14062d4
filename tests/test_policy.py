"""PPO-clip / GRPO (``policy_gradient``, ``PolicyGradient``) and GRPO's group advantages
against float64 references: the papers' (``tests/references.py``) and TRL's GRPO loss types
and reward scaling, restated in NumPy here from ``trl/trainer/grpo_trainer.py`` (TRL is not
installed). Each grid runs in one jitted function (x64 enabled inside the test).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref

import losses_jax as lj

BATCH, TOKENS = 6, 5
RTOL = 1e-10


def rollout(seed=0, per_token_advantages=False):
    """``(old, new, extra)``: per-token log-probs, advantages, masks, reference log-probs."""
    rng = np.random.default_rng(seed)
    new = np.log(rng.uniform(0.05, 1.0, size=(BATCH, TOKENS)))
    old = np.minimum(new + rng.normal(0.0, 0.3, size=new.shape), -0.01)
    lengths = rng.integers(1, TOKENS + 1, size=(BATCH, 1))
    lengths[0] = 0  # a completion without tokens
    advantages = rng.normal(size=(BATCH, TOKENS) if per_token_advantages else BATCH)
    extra = {
        "advantages": advantages,
        "token_mask": np.arange(TOKENS) < lengths,
        "reference_log_probs": np.minimum(new + rng.normal(0.0, 0.5, size=new.shape), -0.01),
    }
    return old, new, extra


OPTIONS = [
    {},
    {"clip_epsilon": 0.1},
    {"kl_coef": 0.04},
    {"aggregation": "token"},
    {"aggregation": "token", "kl_coef": 0.1, "clip_epsilon": 0.3},
]


def _central_differences(fn, x, step=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        grad[index] = (np.sum(fn(up)) - np.sum(fn(down))) / (2 * step)
    return grad


def test_matches_the_papers_in_value_and_gradient():
    """Every option set, per-sequence and per-token advantages: one jitted grid."""
    cases = [(o, per_token) for o in OPTIONS for per_token in (False, True)]
    inputs = [rollout(i, per_token) for i, (_, per_token) in enumerate(cases)]
    with jax.enable_x64(True):
        losses = [lj.PolicyGradient(reduction="none", dtype="float64", **o) for o, _ in cases]

        def grid(news):
            out = []
            for loss, (old, _, extra), new in zip(losses, inputs, news):

                def total(p, loss=loss, old=old, extra=extra):
                    values = loss(old, p, **extra)
                    return jnp.sum(values), values

                (_, values), grad = jax.value_and_grad(total, has_aux=True)(new)
                out.append((values, grad))
            return out

        results = jax.jit(grid)([jnp.asarray(new) for _, new, _ in inputs])
    for (options, _), (old, new, extra), (values, grad) in zip(cases, inputs, results):
        expected = ref.policy_gradient(old, new, **extra, **options)
        np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-12, err_msg=str(options))
        numeric = _central_differences(
            lambda p, o=options, old=old, e=extra: ref.policy_gradient(old, p, **e, **o), new
        )
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=str(options))


def test_ppo_gradient_is_the_clipped_surrogates():
    # Schulman et al. (2017): d/d log pi of -min(r A, clip(r) A) is -r A where the unclipped
    # term is the minimum and 0 where the clipped one is (r beyond 1 +- eps on A's side).
    old, new, extra = rollout(3, per_token_advantages=True)
    with jax.enable_x64(True):
        loss = lj.PolicyGradient(aggregation="token", reduction="sum", dtype="float64")
        grad = jax.jit(jax.grad(lambda p: loss(old, p, advantages=extra["advantages"])))(new)
    ratio, adv = np.exp(new - old), extra["advantages"]
    clipped = ((adv > 0) & (ratio > 1.2)) | ((adv < 0) & (ratio < 0.8))
    np.testing.assert_allclose(np.asarray(grad), np.where(clipped, 0.0, -ratio * adv), rtol=1e-12)
    assert clipped.any() and (~clipped).any()


def test_old_and_reference_log_probs_get_no_gradient():
    old, new, extra = rollout(4)
    loss = lj.PolicyGradient(kl_coef=0.1)
    ref_lp = extra.pop("reference_log_probs")
    grads = jax.jit(
        jax.grad(lambda o, r: loss(o, new, reference_log_probs=r, **extra), argnums=(0, 1))
    )(jnp.asarray(old, jnp.float32), jnp.asarray(ref_lp, jnp.float32))
    for grad in grads:
        np.testing.assert_array_equal(np.asarray(grad), 0.0)


# --------------------------------------------------------------------------------------
# GRPO advantages and TRL's loss types
# --------------------------------------------------------------------------------------
def test_group_advantages_paper_and_trl():
    rewards = np.array([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.5, -1.0, 3.0, 0.0])
    with jax.enable_x64(True):
        x = jnp.asarray(rewards)
        paper = lj.group_normalized_advantages(x, 4)
        trl = lj.group_normalized_advantages(x, 4, ddof=1, epsilon=1e-4)
    np.testing.assert_allclose(paper, ref.group_normalized_advantages(rewards, 4), rtol=RTOL)
    # TRL: (r - mean) / (nanstd(., dim=1) + 1e-4), nanstd with Bessel's correction.
    grouped = rewards.reshape(-1, 4)
    trl_expected = (grouped - grouped.mean(1, keepdims=True)) / (
        grouped.std(1, ddof=1, keepdims=True) + 1e-4
    )
    np.testing.assert_allclose(trl, trl_expected.reshape(-1), rtol=RTOL)
    np.testing.assert_array_equal(np.asarray(paper[4:8]), 0.0)  # equal rewards: no signal


def trl_grpo_loss(old, new, ref_lp, advantages, mask, beta, epsilon, loss_type, max_len):
    """TRL's ``GRPOTrainer._compute_loss`` (token-level importance sampling, one process)."""
    coef_1 = np.exp(new - old)
    coef_2 = np.clip(coef_1, 1 - epsilon, 1 + epsilon)
    per_token = -np.minimum(coef_1 * advantages[:, None], coef_2 * advantages[:, None])
    if beta:
        per_token = per_token + beta * (np.exp(ref_lp - new) - (ref_lp - new) - 1)
    mask = mask.astype(np.float64)
    if loss_type == "grpo":
        return np.mean((per_token * mask).sum(-1) / np.maximum(mask.sum(-1), 1.0))
    if loss_type in ("bnpo", "dapo"):  # dapo: normalised by the tokens of every process
        return (per_token * mask).sum() / max(mask.sum(), 1.0)
    assert loss_type == "dr_grpo"
    return (per_token * mask).sum() / (per_token.shape[0] * max_len)


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_trl_grpo_loss_types_are_the_documented_configurations(beta):
    old, new, extra = rollout(5)
    rewards = np.random.default_rng(5).integers(0, 2, size=BATCH).astype(np.float64)
    with jax.enable_x64(True):
        advantages = lj.group_normalized_advantages(rewards, 3, ddof=1, epsilon=1e-4)
        args = dict(advantages=advantages, reference_log_probs=extra["reference_log_probs"])
        mask = extra["token_mask"]

        def loss(aggregation, reduction):
            built = lj.PolicyGradient(
                kl_coef=beta, aggregation=aggregation, reduction=reduction, dtype="float64"
            )
            return float(built(old, new, token_mask=mask, **args))

        ours = {
            "grpo": loss("sequence", "sum_over_batch_size"),
            "bnpo": loss("token", "sum_over_batch_size"),
            "dapo": loss("token", "sum_over_batch_size"),
            "dr_grpo": loss("token", "sum") / (BATCH * TOKENS),
        }
    advantages = np.asarray(advantages)
    for loss_type, value in ours.items():
        expected = trl_grpo_loss(
            old, new, extra["reference_log_probs"], advantages, mask, beta, 0.2, loss_type, TOKENS
        )
        np.testing.assert_allclose(value, expected, rtol=RTOL, err_msg=loss_type)


# --------------------------------------------------------------------------------------
# options, numerics, errors
# --------------------------------------------------------------------------------------
def test_traced_options_have_central_difference_derivatives():
    old, new, extra = rollout(6, per_token_advantages=True)
    with jax.enable_x64(True):
        builds = {
            "clip_epsilon": (lambda e: lj.PolicyGradient(clip_epsilon=e, dtype="float64"), 0.1),
            "kl_coef": (lambda k: lj.PolicyGradient(kl_coef=k, dtype="float64"), 0.05),
        }

        def grid(xs):
            out = []
            for (build, _), x in zip(builds.values(), xs):

                def total(v, build=build):
                    return build(v)(old, new, **extra)

                out.append((jax.grad(total)(x), total(x + 1e-6), total(x - 1e-6)))
            # float32 under vmap: two clip ranges at once.
            clip = jax.vmap(lambda e: lj.PolicyGradient(clip_epsilon=e)(old, new, **extra))
            return out, clip(jnp.asarray([0.1, 0.3], jnp.float32))

        results, batched = jax.jit(grid)([jnp.float64(value) for _, value in builds.values()])
    for name, (grad, up, down) in zip(builds, results):
        numeric = (float(up) - float(down)) / 2e-6
        np.testing.assert_allclose(float(grad), numeric, rtol=1e-6, atol=1e-10, err_msg=name)
        assert float(grad) != 0.0, name
    expected = ref.policy_gradient(old, new, **extra, clip_epsilon=0.3).mean()
    np.testing.assert_allclose(batched[1], expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_log_prob_gaps_of_1e4_are_finite(dtype):
    zeros, far = np.zeros((2, 3), np.float32), np.full((2, 3), -1e4, np.float32)
    loss = lj.PolicyGradient(kl_coef=0.1, aggregation="token", dtype=dtype)
    for old, new, reference in ((far, zeros, far), (zeros, far, zeros), (far, zeros, zeros)):
        value, grad = jax.jit(
            jax.value_and_grad(
                lambda p, old=old, reference=reference: loss(
                    old, p, advantages=np.array([1.0, -1.0]), reference_log_probs=reference
                )
            )
        )(jnp.asarray(new, dtype))
        assert value.dtype == jnp.dtype(dtype)
        assert np.all(np.isfinite(np.asarray(grad, np.float32)))
        # exp(20) = 4.9e8 (the log-ratio cap) is beyond float16: honestly inf there.
        assert np.isfinite(float(value)) or (dtype == "float16" and value > 0)


def test_padding_may_hold_minus_infinity():
    old, new, extra = rollout(7)
    padded = np.where(extra["token_mask"], new, -np.inf)
    loss = lj.PolicyGradient(kl_coef=0.1)
    value_and_grad = jax.jit(jax.value_and_grad(lambda p: loss(old, p, **extra)))
    value, grad = value_and_grad(jnp.asarray(padded))
    np.testing.assert_allclose(value, value_and_grad(jnp.asarray(new))[0], rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert np.all(np.asarray(grad)[~extra["token_mask"]] == 0.0)


@pytest.mark.parametrize(
    ("call", "mentions"),
    [
        (lambda o, n, e: lj.PolicyGradient(aggregation="mean"), "aggregation"),
        (lambda o, n, e: lj.PolicyGradient(clip_epsilon=1.5), "clip_epsilon"),
        (lambda o, n, e: lj.PolicyGradient(kl_coef=-0.1), "kl_coef"),
        (lambda o, n, e: lj.PolicyGradient()(o, n), "advantages="),
        (
            lambda o, n, e: lj.PolicyGradient(kl_coef=0.1)(o, n, advantages=e["advantages"]),
            "reference_log_probs",
        ),  # fmt: skip
        (lambda o, n, e: lj.PolicyGradient()(o, n, advantages=np.ones(4)), "(4,)"),
        (lambda o, n, e: lj.PolicyGradient()(o[:, :2], n, advantages=e["advantages"]), "(6, 2)"),
        (lambda o, n, e: lj.policy_gradient(n, o, e["advantages"], mask=np.ones(3)), "mask"),
        (lambda o, n, e: lj.group_normalized_advantages(np.ones(5), 2), "group_size=2"),
        (lambda o, n, e: lj.group_normalized_advantages(np.ones(4), 0), "group_size"),
    ],
)
def test_misuse_raises_a_clear_error(call, mentions):
    old, new, extra = rollout(8)
    with pytest.raises((ValueError, TypeError)) as info:
        call(old, new, extra)
    assert mentions in str(info.value)
