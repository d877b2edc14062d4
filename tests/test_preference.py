"""DPO (sigmoid, hinge, IPO, robust), SimPO, ORPO and KTO against float64 references.

Three kinds of reference, all float64 NumPy written from the formulas:

* the papers' (``tests/references.py``, shared with the catalogue suites), in value and in
  gradient (central differences of the reference, every coordinate);
* TRL's definitions where they differ in form (IPO on per-token averages, ORPO's NLL over the
  batch's tokens, KTO's mismatched-pair KL estimate), written here as TRL computes them (TRL is
  not installed; its formulas are restated, not imported), and shown to be the library's loss
  on the documented inputs;
* the papers' closed-form gradients (DPO's ``-beta sigma(-beta h)``).

Every grid runs in one jitted function per loss (x64 enabled inside the test).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref

import losses_jax as lj

RTOL = 1e-10  # float64 against float64
FD_STEP = 1e-6


def _rng(seed=0):
    return np.random.default_rng(seed)


def _pairs(rng, batch=6):
    policy = -rng.uniform(2.0, 30.0, size=(batch, 2))
    reference = np.minimum(policy + rng.normal(0.0, 2.0, size=policy.shape), -0.01)
    return reference, policy


def _lengths_and_sums(rng, batch=6):
    counts = rng.integers(1, 21, size=(batch, 2)).astype(np.float64)
    return counts, -counts * rng.uniform(0.05, 3.0, size=counts.shape)


def _central_differences(fn, x, step=FD_STEP):
    """d sum(fn(x)) / dx, every coordinate, float64."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        grad[index] = (np.sum(fn(up)) - np.sum(fn(down))) / (2 * step)
    return grad


def _value_and_grad(loss, y_true, y_pred, **extra):
    """Per-sample values and d sum / d y_pred of a class built with reduction="none"."""

    def total(p):
        values = loss(y_true, p, **extra)
        return jnp.sum(values), values

    (_, values), grad = jax.jit(jax.value_and_grad(total, has_aux=True))(jnp.asarray(y_pred))
    return np.asarray(values), np.asarray(grad)


DPO_OPTIONS = [
    {},
    {"beta": 0.5},
    {"beta": 0.2, "label_smoothing": 0.2},
    {"beta": 0.3, "loss_type": "hinge"},
    {"beta": 0.05, "loss_type": "ipo"},
    {"beta": 0.4, "loss_type": "robust", "label_smoothing": 0.1},
]
PAIR_CASES = [("DPO", "dpo", options, _pairs) for options in DPO_OPTIONS] + [
    ("SimPO", "simpo", {}, _lengths_and_sums),
    ("SimPO", "simpo", {"beta": 2.5, "gamma": 0.3}, _lengths_and_sums),
    ("ORPO", "orpo", {}, _lengths_and_sums),
    ("ORPO", "orpo", {"beta": 0.7, "include_nll": False}, _lengths_and_sums),
]


def test_pair_losses_match_the_papers_in_value_and_gradient():
    """Every pair loss and option set: float64 values and gradients, one jitted grid."""
    inputs = [make(_rng(seed)) for seed, (*_, make) in enumerate(PAIR_CASES)]
    with jax.enable_x64(True):
        losses = [
            getattr(lj, name)(reduction="none", dtype="float64", **options)
            for name, _, options, _ in PAIR_CASES
        ]

        def grid(predictions):
            out = []
            for loss, (y_true, _), y_pred in zip(losses, inputs, predictions):

                def total(p, loss=loss, y_true=y_true):
                    values = loss(y_true, p)
                    return jnp.sum(values), values

                (_, values), grad = jax.value_and_grad(total, has_aux=True)(y_pred)
                out.append((values, grad))
            return out

        results = jax.jit(grid)([jnp.asarray(y_pred) for _, y_pred in inputs])
    for (name, reference, options, _), (y_true, y_pred), (values, grad) in zip(
        PAIR_CASES, inputs, results
    ):
        expected = getattr(ref, reference)(y_true, y_pred, **options)
        np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-12, err_msg=name)
        numeric = _central_differences(
            lambda p, r=reference, t=y_true, o=options: getattr(ref, r)(t, p, **o), y_pred
        )
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_kto_matches_the_paper_in_value_and_gradient():
    rng = _rng(3)
    batch = 8
    policy = -rng.uniform(5.0, 40.0, size=batch)
    reference = np.minimum(policy + rng.normal(0.0, 2.0, size=batch), -0.01)
    desirable = rng.uniform(size=batch) < 0.5
    mismatched_policy = -rng.uniform(20.0, 60.0, size=batch)
    mismatched_reference = mismatched_policy - rng.normal(1.0, 1.0, size=batch)  # z0 > 0
    cases = [
        ({}, {"reference_point": 0.0}),
        ({"beta": 0.5, "desirable_weight": 1.33}, {"reference_point": rng.normal(size=batch)}),
        (
            {"beta": 0.3, "undesirable_weight": 0.8},
            {"policy_mismatched": mismatched_policy, "reference_mismatched": mismatched_reference},
        ),
    ]
    with jax.enable_x64(True):
        for options, z0 in cases:
            loss = lj.KTO(reduction="none", dtype="float64", **options)
            extra = {"desirable": desirable, **z0}
            values, grad = _value_and_grad(loss, reference, policy, **extra)
            expected = ref.kto(reference, policy, **extra, **options)
            np.testing.assert_allclose(values, expected, rtol=RTOL, atol=1e-12)
            numeric = _central_differences(
                lambda p, o=options, e=extra: ref.kto(reference, p, **e, **o), policy
            )
            np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_dpo_gradient_is_the_papers_closed_form():
    # Rafailov et al. (2023), eq. 7: d/d log pi(y_w) = -beta sigmoid(-beta h), and the opposite
    # for y_l; with label smoothing eps: -beta ((1 - eps) sigmoid(-beta h) - eps sigmoid(beta h)).
    reference, policy = _pairs(_rng(5))
    with jax.enable_x64(True):
        for beta, eps in ((0.1, 0.0), (0.7, 0.25)):
            loss = lj.DPO(beta=beta, label_smoothing=eps, reduction="sum", dtype="float64")
            grad = np.asarray(jax.jit(jax.grad(lambda p, loss=loss: loss(reference, p)))(policy))
            h = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
            chosen = -beta * ((1 - eps) * ref.sigmoid(-beta * h) - eps * ref.sigmoid(beta * h))
            np.testing.assert_allclose(grad, np.stack([chosen, -chosen], -1), rtol=1e-12)


def test_functions_equal_classes_and_references_get_no_gradient():
    reference, policy = _pairs(_rng(6))
    values = jax.jit(lj.DPO(beta=0.3, reduction="none"))(reference, policy)
    direct = lj.dpo(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], beta=0.3)
    np.testing.assert_array_equal(np.asarray(values), np.asarray(direct))
    grad_reference = jax.jit(jax.grad(lambda r: lj.DPO()(r, policy)))(jnp.asarray(reference))
    np.testing.assert_array_equal(np.asarray(grad_reference), 0.0)
    desirable = np.array([1, 0, 1, 0, 1, 0])
    mismatched = jnp.asarray(policy[:, 0] - 3.0)
    grads = jax.jit(jax.grad(
        lambda r, m: lj.KTO()(r, policy[:, 0], desirable=desirable, policy_mismatched=m,
                              reference_mismatched=m - 1.0),
        argnums=(0, 1),
    ))(jnp.asarray(reference[:, 0]), mismatched)  # fmt: skip
    for grad in grads:  # neither the reference nor z0 (the mismatched pairs) get a gradient
        np.testing.assert_array_equal(np.asarray(grad), 0.0)


# --------------------------------------------------------------------------------------
# TRL's forms (restated in float64 NumPy from trl/trainer/{dpo,cpo,orpo,kto}_trainer.py)
# --------------------------------------------------------------------------------------
def trl_ipo(counts, summed_policy, summed_reference, beta):
    """TRL's IPO: the DPO margin of per-token *average* log-probs, ``(h - 1/(2 beta))**2``."""
    avg_policy, avg_reference = summed_policy / counts, summed_reference / counts
    logits = (avg_policy[:, 0] - avg_policy[:, 1]) - (avg_reference[:, 0] - avg_reference[:, 1])
    return np.mean((logits - 1 / (2 * beta)) ** 2)


def trl_simpo(counts, summed, beta, simpo_gamma):
    """TRL's CPO with loss_type="simpo": ``-logsigmoid(beta (avg_c - avg_r - gamma / beta))``."""
    avg = summed / counts
    logits = (avg[:, 0] - avg[:, 1]) - simpo_gamma / beta
    return np.mean(-ref.log_sigmoid(beta * logits))


def trl_orpo(counts, summed, beta):
    """TRL's ORPO: NLL averaged over *all chosen tokens of the batch*, minus
    ``beta mean(logsigmoid(log odds ratio))`` of average log-probs."""
    avg = summed / counts
    nll = -summed[:, 0].sum() / counts[:, 0].sum()
    log_odds = (avg[:, 0] - avg[:, 1]) - (
        np.log1p(-np.exp(avg[:, 0])) - np.log1p(-np.exp(avg[:, 1]))
    )
    return nll - beta * np.mean(ref.log_sigmoid(log_odds))


def trl_kto(policy, reference, desirable, kl_policy, kl_reference, beta, w_d, w_u):
    """TRL's KTO: ``kl = clamp(mean(KL log-ratios), 0)`` (detached), the chosen and rejected
    losses concatenated and averaged."""
    kl = max(float(np.mean(kl_policy - kl_reference)), 0.0)
    ratios = policy - reference
    chosen = 1 - ref.sigmoid(beta * (ratios[desirable] - kl))
    rejected = 1 - ref.sigmoid(beta * (kl - ratios[~desirable]))
    return np.mean(np.concatenate([w_d * chosen, w_u * rejected]))


def test_trl_forms_are_the_library_losses_on_the_documented_inputs():
    rng = _rng(7)
    counts, summed = _lengths_and_sums(rng)
    summed_reference = np.minimum(summed + rng.normal(0.0, 1.0, size=summed.shape), -0.01)
    with jax.enable_x64(True):
        # IPO: TRL feeds per-token averages.
        ipo = lj.DPO(beta=0.2, loss_type="ipo", dtype="float64")
        value = ipo(summed_reference / counts, summed / counts)
        np.testing.assert_allclose(value, trl_ipo(counts, summed, summed_reference, 0.2), RTOL)
        # ...which is not the paper's IPO on sums (the difference is real, not rounding).
        assert abs(float(ipo(summed_reference, summed)) - float(value)) > 1e-3
        # SimPO: TRL's simpo_gamma is the paper's gamma.
        simpo = lj.SimPO(beta=2.0, gamma=0.8, dtype="float64")
        np.testing.assert_allclose(simpo(counts, summed), trl_simpo(counts, summed, 2.0, 0.8), RTOL)
        # ORPO: the odds-ratio term alone plus TRL's token-level NLL is TRL's loss...
        beta = 0.3
        odds_only = lj.ORPO(beta=beta, include_nll=False, dtype="float64")(counts, summed)
        token_nll = -summed[:, 0].sum() / counts[:, 0].sum()
        expected = trl_orpo(counts, summed, beta)
        np.testing.assert_allclose(float(odds_only) + token_nll, expected, RTOL)
        # ...and with equal chosen lengths the paper's per-example NLL agrees with it.
        equal = np.stack([np.full(len(counts), 7.0), counts[:, 1]], -1)
        summed_equal = np.stack([summed[:, 0] / counts[:, 0] * 7.0, summed[:, 1]], -1)
        np.testing.assert_allclose(
            lj.ORPO(beta=beta, dtype="float64")(equal, summed_equal),
            trl_orpo(equal, summed_equal, beta),
            RTOL,
        )
        # KTO: the mismatched-pair estimate, clamped at 0 and detached, weights per label.
        policy, reference = summed[:, 0], summed_reference[:, 0]
        desirable = np.array([True, False, True, True, False, False])
        kl_policy = -rng.uniform(20.0, 60.0, size=6)
        for shift in (-2.0, 1.5):  # a negative estimate is clamped to 0
            kl_reference = kl_policy + shift
            value = lj.KTO(beta=0.4, desirable_weight=1.2, dtype="float64")(
                reference, policy, desirable=desirable, policy_mismatched=kl_policy,
                reference_mismatched=kl_reference,
            )  # fmt: skip
            expected = trl_kto(policy, reference, desirable, kl_policy, kl_reference, 0.4, 1.2, 1)
            np.testing.assert_allclose(value, expected, RTOL)


# --------------------------------------------------------------------------------------
# options: traced, with the right derivative
# --------------------------------------------------------------------------------------
def _option_cases(dtype="float64"):
    """``(name, loss of the option value, value)``, classes built in ``dtype``."""
    reference, policy = _pairs(_rng(8))
    counts, summed = _lengths_and_sums(_rng(9))
    desirable = np.array([1, 0, 1, 1, 0, 0])
    kto_args = dict(desirable=desirable, reference_point=0.5)
    return [
        ("dpo_beta", lambda b: lj.DPO(beta=b, dtype=dtype)(reference, policy), 0.3),
        (
            "dpo_label_smoothing",
            lambda s: lj.DPO(label_smoothing=s, dtype=dtype)(reference, policy),
            0.2,
        ),
        (
            "robust_label_smoothing",
            lambda s: lj.DPO(loss_type="robust", label_smoothing=s, dtype=dtype)(reference, policy),
            0.1,
        ),
        (
            "ipo_beta",
            lambda b: lj.DPO(beta=b, loss_type="ipo", dtype=dtype)(reference, policy),
            0.05,
        ),
        (
            "hinge_beta",
            lambda b: lj.DPO(beta=b, loss_type="hinge", dtype=dtype)(reference, policy),
            0.3,
        ),
        ("simpo_beta", lambda b: lj.SimPO(beta=b, dtype=dtype)(counts, summed), 2.0),
        ("simpo_gamma", lambda g: lj.SimPO(gamma=g, dtype=dtype)(counts, summed), 0.7),
        ("orpo_beta", lambda b: lj.ORPO(beta=b, dtype=dtype)(counts, summed), 0.2),
        (
            "kto_beta",
            lambda b: lj.KTO(beta=b, dtype=dtype)(reference[:, 0], policy[:, 0], **kto_args),
            0.2,
        ),
        (
            "kto_desirable_weight",
            lambda w: lj.KTO(desirable_weight=w, dtype=dtype)(
                reference[:, 0], policy[:, 0], **kto_args
            ),
            1.3,
        ),
        (
            "kto_undesirable_weight",
            lambda w: lj.KTO(undesirable_weight=w, dtype=dtype)(
                reference[:, 0], policy[:, 0], **kto_args
            ),
            0.8,
        ),
    ]


def test_traced_options_have_central_difference_derivatives():
    with jax.enable_x64(True):
        cases = _option_cases()

        def grid(values):
            # Per option: (value, derivative) at x, and the values at x +- 1e-6.
            out = []
            for (_, fn, _), x in zip(cases, values):
                value, grad = jax.value_and_grad(fn)(x)
                out.append((value, grad, fn(x + 1e-6), fn(x - 1e-6)))
            return out

        results = jax.jit(grid)([jnp.float64(value) for *_, value in cases])
    for (name, *_), (_, grad, up, down) in zip(cases, results):
        numeric = (float(up) - float(down)) / 2e-6
        np.testing.assert_allclose(float(grad), numeric, rtol=1e-6, atol=1e-9, err_msg=name)
        assert float(grad) != 0.0, name
    for name, fn, value in _option_cases("float32")[:2]:  # float32 under vmap too
        batched = jax.jit(jax.vmap(fn))(jnp.asarray([value, value * 0.5], jnp.float32))
        np.testing.assert_allclose(batched[1], fn(value * 0.5), rtol=1e-5, err_msg=name)


# --------------------------------------------------------------------------------------
# numerics and errors
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_extreme_gaps_of_1e4_are_finite(dtype):
    gaps = np.array([[0.0, -1e4], [-1e4, 0.0], [0.0, 0.0], [-1e4, -1e4]], np.float32)
    counts = np.ones((4, 2), np.float32)
    dpo_losses = [
        lj.DPO(beta=0.5, label_smoothing=0.1, dtype=dtype),
        lj.DPO(loss_type="robust", label_smoothing=0.3, dtype=dtype),
        lj.DPO(loss_type="ipo", beta=0.5, dtype=dtype),
        lj.DPO(loss_type="hinge", dtype=dtype),
    ]
    # (loss, y_true, y_pred): reference gaps of +-1e4 for DPO; certain and hopeless
    # completions for SimPO and ORPO.
    cases = [(loss, gaps[::-1], gaps) for loss in dpo_losses]
    cases += [(loss, gaps, gaps[::-1] * 0) for loss in dpo_losses]
    cases += [(lj.SimPO(dtype=dtype), counts, gaps), (lj.ORPO(dtype=dtype), counts, gaps)]

    def grid(predictions):
        return [
            jax.value_and_grad(lambda p, loss=loss, t=y_true: loss(t, p))(y_pred)
            for (loss, y_true, _), y_pred in zip(cases, predictions)
        ]

    results = jax.jit(grid)([jnp.asarray(y_pred, dtype) for *_, y_pred in cases])
    for (loss, *_), (value, grad) in zip(cases, results):
        assert value.dtype == jnp.dtype(dtype)
        assert np.all(np.isfinite(np.asarray(grad, np.float32)))
        if getattr(loss, "loss_type", None) != "ipo" or dtype == "float32":
            assert np.isfinite(float(value))  # IPO's 1e8 is beyond float16: inf there


def test_orpo_log_odds_are_accurate_on_both_sides_of_log_2():
    # log(1 - p) from log p: log(-expm1) above -log 2, log1p(-exp) below (Maechler, 2012).
    averages = np.array([-1e-6, -1e-3, -0.5, -0.7, -2.0, -30.0, -1e4])
    with jax.enable_x64(True):
        got = lj.ORPO(beta=1.0, include_nll=False, dtype="float64", reduction="none")(
            np.ones((7, 2)), np.stack([averages, np.full(7, -1.0)], -1)
        )
    expected = ref.orpo(np.ones((7, 2)), np.stack([averages, np.full(7, -1.0)], -1), 1.0, False)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("build", "mentions"),
    [
        (lambda: lj.DPO(loss_type="kto"), "loss_type"),
        (lambda: lj.DPO(beta=0.0), "beta"),
        (lambda: lj.DPO(label_smoothing=0.6), "label_smoothing"),
        (lambda: lj.DPO(loss_type="robust", label_smoothing=0.5), "label_smoothing"),
        (lambda: lj.DPO(loss_type="hinge", label_smoothing=0.1), "label_smoothing"),
        (lambda: lj.SimPO(beta=-1.0), "beta"),
        (lambda: lj.ORPO(include_nll=1), "include_nll"),  # pyright: ignore[reportArgumentType]
        (lambda: lj.KTO(desirable_weight=-1.0), "desirable_weight"),
        (lambda: lj.DPO()(np.zeros((4, 3)), np.zeros((4, 3))), "(..., 2)"),
        (lambda: lj.DPO()(np.zeros((3, 2)), np.zeros((4, 2))), "(3, 2)"),
        (lambda: lj.KTO()(np.zeros(4), np.zeros(4), reference_point=0.0), "desirable="),
        (lambda: lj.KTO()(np.zeros(4), np.zeros(4), desirable=np.ones(4)), "reference_point="),
        (lambda: lj.kto(np.zeros(4), np.zeros(4), np.ones(3), reference_point=0.0), "desirable"),
        (lambda: lj.simpo(np.zeros(4), np.zeros(4), chosen_length=np.ones(3)), "chosen_length"),
        (lambda: lj.dpo(np.zeros(4), np.zeros(4), np.zeros(5), np.zeros(4)), "reference_chosen"),
    ],
)
def test_misuse_raises_a_clear_error(build, mentions):
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert mentions in str(info.value)
