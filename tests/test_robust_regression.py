"""Smooth L1 against PyTorch 2.13 and pinball against TensorFlow Addons' formula.

Value and gradient for every option, reduction and kind of sample weight, in float32 and
float64 (tests/anchor_parity.py). TensorFlow Addons cannot be installed next to Keras 3, so the
pinball anchor is its formula, ``mean(max(tau * e, (tau - 1) * e), -1)`` with ``tau``
broadcast over the last axis, as the float64 reference of tests/references.py. Traced options
(``beta``, ``tau``, per-output ``tau``) are checked under jit, vmap and grad, their derivatives
against central finite differences in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from anchor_parity import AnchorCase, assert_anchor_grid, grid_params
from helpers import assert_raises_eager_and_jit, assert_transforms_consistent

import losses_jax as lj

SHAPE = (4, 3, 5)
TAUS = (0.1, 0.5, 0.9, 0.25, 0.7)


def real_inputs(rng):
    return rng.normal(size=SHAPE), rng.normal(0.0, 1.5, size=SHAPE)


# --------------------------------------------------------------------------------------
# anchors
# --------------------------------------------------------------------------------------
def torch_smooth_l1(options):
    def anchor(y_true, y_pred, dtype):
        torch = pytest.importorskip("torch")
        torch_dtype = getattr(torch, dtype)
        pred = torch.tensor(y_pred, dtype=torch_dtype, requires_grad=True)
        target = torch.tensor(y_true, dtype=torch_dtype)
        elementwise = torch.nn.functional.smooth_l1_loss(pred, target, reduction="none", **options)
        values = elementwise.mean(-1)
        values.sum().backward()
        return values.detach().numpy(), pred.grad.numpy()

    return anchor


def pinball_formula(options):
    def anchor(y_true, y_pred, dtype):
        return ref.pinball(y_true, y_pred, **options), ref.grad_pinball(y_true, y_pred, **options)

    return anchor


def case(label, cls, anchor, options, weights=None):
    return AnchorCase(
        f"{label}({','.join(f'{k}={v}' for k, v in options.items())})",
        lambda cls=cls, options=options, **kw: cls(**options, **kw),
        anchor(options),
        real_inputs,
        weights=weights,
    )


# The default options run every kind of weight; the others one (the weighting is shared code).
SMOOTH_L1_CASES = [
    case("SmoothL1", lj.SmoothL1, torch_smooth_l1, {}),
    *[
        case("SmoothL1", lj.SmoothL1, torch_smooth_l1, {"beta": beta}, ("per_sample",))
        for beta in (0.5, 0.0, 2.0)
    ],
]
PINBALL_CASES = [
    case("Pinball", lj.Pinball, pinball_formula, {}),
    *[
        case("Pinball", lj.Pinball, pinball_formula, {"tau": tau}, ("per_element",))
        for tau in (0.9, 0.0, 1.0, TAUS)
    ],
]


@pytest.mark.parametrize(("case", "combos", "dtype"), grid_params(SMOOTH_L1_CASES))
def test_smooth_l1_parity_with_torch(case, combos, dtype):
    assert_anchor_grid(case, combos, dtype)


@pytest.mark.parametrize(("case", "combos", "dtype"), grid_params(PINBALL_CASES))
def test_pinball_parity_with_tfa_formula(case, combos, dtype):
    assert_anchor_grid(case, combos, dtype)


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
def test_smooth_l1_torch_reductions(beta):
    torch = pytest.importorskip("torch")
    y_true, y_pred = real_inputs(np.random.default_rng(1))
    pred, target = torch.tensor(y_pred), torch.tensor(y_true)
    smooth_l1 = torch.nn.functional.smooth_l1_loss
    with jax.enable_x64(True):
        mean = lj.SmoothL1(beta=beta, dtype="float64")(y_true, y_pred)
        np.testing.assert_allclose(mean, smooth_l1(pred, target, beta=beta).item(), rtol=1e-12)
        total = lj.SmoothL1(beta=beta, reduction="sum", dtype="float64")(y_true, y_pred)
        # Ours sums per-sample means (the last axis averaged); PyTorch sums the elements.
        expected = smooth_l1(pred, target, beta=beta, reduction="sum").item() / SHAPE[-1]
        np.testing.assert_allclose(total, expected, rtol=1e-12)


def test_smooth_l1_is_huber_over_beta_and_l1_at_zero():
    y_true, y_pred = real_inputs(np.random.default_rng(2))
    np.testing.assert_allclose(
        lj.smooth_l1(y_true, y_pred, beta=0.7), lj.huber(y_true, y_pred, delta=0.7) / 0.7, rtol=1e-5
    )
    np.testing.assert_allclose(
        lj.smooth_l1(y_true, y_pred, beta=0.0), lj.mean_absolute_error(y_true, y_pred), rtol=1e-6
    )
    # The subgradient at a zero error is 0, as PyTorch's, with beta = 0 too.
    grad = jax.grad(lambda p: jnp.sum(lj.smooth_l1(jnp.zeros(3), p, beta=0.0)))(jnp.zeros(3))
    np.testing.assert_array_equal(grad, 0.0)


def test_pinball_quantile_property_and_tau_per_output():
    rng = np.random.default_rng(3)
    samples = rng.normal(size=(2001, 1))
    grid = np.linspace(-3.0, 3.0, 601)
    for tau in (0.1, 0.5, 0.9):
        risks = [float(lj.Pinball(tau=tau)(samples, np.full_like(samples, c))) for c in grid[::10]]
        best = grid[::10][int(np.argmin(risks))]
        assert abs(best - np.quantile(samples, tau)) <= 0.1
    y_true, y_pred = real_inputs(rng)
    per_output = lj.pinball(y_true, y_pred, tau=TAUS)
    one_by_one = np.mean(
        [lj.pinball(y_true[..., [i]], y_pred[..., [i]], tau=t) for i, t in enumerate(TAUS)], axis=0
    )
    np.testing.assert_allclose(per_output, one_by_one, rtol=1e-6)
    np.testing.assert_allclose(
        lj.pinball(y_true, y_pred, tau=[0.3]), lj.pinball(y_true, y_pred, tau=0.3), rtol=1e-7
    )


@pytest.mark.slow  # covered in the default run by tests/test_transformations.py
@pytest.mark.parametrize(
    ("fn", "options"),
    [
        (lj.smooth_l1, {}),
        (lj.smooth_l1, {"beta": 0.0}),
        (lj.pinball, {"tau": 0.2}),
        (lj.pinball, {"tau": TAUS}),
    ],
    ids=["smooth_l1", "smooth_l1_beta0", "pinball", "pinball_per_output"],
)
def test_jit_grad_vmap_forward_mode_and_hessian(fn, options):
    y_true, y_pred = (x.astype(np.float32) for x in real_inputs(np.random.default_rng(4)))
    assert_transforms_consistent(fn, y_true, y_pred, **options)

    def total(p):
        return jnp.sum(fn(y_true[0, 0], p, **options))

    point = jnp.asarray(y_pred[0, 0])
    np.testing.assert_allclose(jax.jacfwd(total)(point), jax.grad(total)(point), rtol=1e-6)
    hessian = jax.hessian(total)(point)
    assert hessian.shape == (5, 5) and np.all(np.isfinite(hessian))
    if fn is lj.smooth_l1 and not options:
        inside = np.abs(y_pred[0, 0] - y_true[0, 0]) < 1.0
        np.testing.assert_allclose(hessian, np.diag(inside / 5.0), atol=1e-7)


# --------------------------------------------------------------------------------------
# traced options: derivatives against central finite differences (float64)
# --------------------------------------------------------------------------------------
RNG = np.random.default_rng(5)
Y_TRUE, Y_PRED = real_inputs(RNG)

OPTION_CASES = [
    ("smooth_l1_beta", lambda b: lj.smooth_l1(Y_TRUE, Y_PRED, beta=b), 0.8),
    ("smooth_l1_beta_small", lambda b: lj.smooth_l1(Y_TRUE, Y_PRED, beta=b), 0.05),
    ("pinball_tau", lambda t: lj.pinball(Y_TRUE, Y_PRED, tau=t), 0.3),
    ("smooth_l1_class_beta", lambda b: lj.SmoothL1(beta=b, dtype="float64")(Y_TRUE, Y_PRED), 1.5),
    ("pinball_class_tau", lambda t: lj.Pinball(tau=t, dtype="float64")(Y_TRUE, Y_PRED), 0.6),
]


@pytest.mark.parametrize(("name", "fn", "value"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES])
def test_option_derivative_matches_finite_differences(name, fn, value):
    with jax.enable_x64(True):
        total = jax.jit(lambda v: jnp.sum(fn(v)))
        x = jnp.float64(value)
        grad = float(jax.grad(total)(x))
        step = 1e-6
        numeric = (float(total(x + step)) - float(total(x - step))) / (2 * step)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
        assert grad != 0.0
        # Traced under vmap too.
        values = jnp.asarray([value, 0.9 * value])
        batched = jax.vmap(total)(values)
        np.testing.assert_allclose(batched[1], total(values[1]), rtol=1e-12)


def test_per_output_tau_derivative_matches_finite_differences():
    with jax.enable_x64(True):
        tau = jnp.asarray(TAUS)

        @jax.jit
        def total(t):
            return jnp.sum(lj.Pinball(tau=t, dtype="float64")(Y_TRUE, Y_PRED))

        grad = np.asarray(jax.grad(total)(tau))
        step = 1e-6
        numeric = [
            (float(total(tau + step * e)) - float(total(tau - step * e))) / (2 * step)
            for e in np.eye(len(TAUS))
        ]
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)
        # d/d tau_j = mean over samples of mean(e[..., j]) / outputs: the residual of output j.
        expected = np.sum(Y_TRUE - Y_PRED, axis=(0, 1)) / (SHAPE[-1] * SHAPE[0] * SHAPE[1])
        np.testing.assert_allclose(grad, expected, rtol=1e-10)


def test_traced_beta_zero_is_l1():
    with jax.enable_x64(True):
        value, grad = jax.jit(
            jax.value_and_grad(lambda b: jnp.sum(lj.smooth_l1(Y_TRUE, Y_PRED, beta=b)))
        )(jnp.float64(0.0))
        np.testing.assert_allclose(value, np.sum(ref.mean_absolute_error(Y_TRUE, Y_PRED)))
        # Only the linear branch is selected: d/d beta = -1/2 per element, averaged.
        np.testing.assert_allclose(grad, -0.5 * SHAPE[0] * SHAPE[1], rtol=1e-12)


# --------------------------------------------------------------------------------------
# errors and config
# --------------------------------------------------------------------------------------
def test_misuse_raises_clear_errors():
    y_true, y_pred = (x.astype(np.float32) for x in real_inputs(np.random.default_rng(6)))
    with pytest.raises(ValueError, match=r"`beta` must be in \[0.0, inf\]; received beta=-0.1"):
        lj.SmoothL1(beta=-0.1)
    with pytest.raises(ValueError, match=r"`tau` must be in \[0.0, 1.0\]; received tau=1.5"):
        lj.Pinball(tau=[0.5, 1.5])
    with pytest.raises(ValueError, match=r"`tau` must be a scalar or a 1-D"):
        lj.Pinball(tau=[[0.5]])
    with pytest.raises(TypeError, match="`tau` must be a real number"):
        lj.Pinball(tau="median")

    def three_quantiles(t, p):
        return lj.pinball(t, p, tau=(0.1, 0.5, 0.9))

    assert_raises_eager_and_jit(
        ValueError, r"`tau` holds \(3,\).*\(4, 3, 5\)", three_quantiles, y_true, y_pred
    )
    assert_raises_eager_and_jit(
        ValueError, r"\(4, 3, 6\).*\(4, 3, 5\)", lj.smooth_l1, np.zeros((4, 3, 6)), y_pred
    )


@pytest.mark.parametrize(
    "loss", [lj.SmoothL1(beta=0.25), lj.Pinball(tau=0.8), lj.Pinball(tau=[0.1, 0.9])], ids=repr
)
def test_config_round_trip_and_registry(loss):
    rebuilt = type(loss).from_config(loss.get_config())
    assert rebuilt == loss and hash(rebuilt) == hash(loss)
    assert lj.deserialize(lj.serialize(loss)) == loss
    assert lj.get(type(loss).__name__) == type(loss)()
    assert lj.get(type(loss).function.__name__) is type(loss).function
    assert lj.get("smooth_l1_loss") is lj.smooth_l1 and lj.get("pinball_loss") is lj.pinball


@pytest.mark.parametrize("error", [1e4, -1e30, 1e30])
def test_huge_errors_are_finite_and_exact(error):
    # Both losses grow linearly: an error of 1e30 is finite in float32, with gradient +-1-ish.
    y_pred = np.array([[error, 0.5]], np.float32)
    zeros = np.zeros((1, 2), np.float32)
    for loss, reference, grad_reference in [
        (lj.SmoothL1(), ref.smooth_l1, ref.grad_smooth_l1),
        (
            lj.Pinball(tau=0.2),
            lambda t, p: ref.pinball(t, p, 0.2),
            lambda t, p: ref.grad_pinball(t, p, 0.2),
        ),
    ]:
        value, grad = jax.value_and_grad(lambda p, f=loss: f(zeros, p))(y_pred)
        np.testing.assert_allclose(value, reference(zeros, y_pred)[0], rtol=1e-6)
        np.testing.assert_allclose(grad, grad_reference(zeros, y_pred), rtol=1e-6)
