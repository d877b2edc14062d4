"""Unit tests of the private layers ``losses_jax._numerics`` and ``losses_jax._validation``.

Every numerical helper is compared with a float64 NumPy formula (tests/references.py) on random
inputs (hypothesis, fixed shapes so that each function compiles once) and on the extremes it
exists for: ``-inf`` rows, entries of ``±1e30``, zero weights against ``-inf`` logs, zero
denominators and vectors, huge and tiny log-cosh arguments, float16/bfloat16 inputs. The
``check_*`` helpers are checked for their error types and messages.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from losses_jax import _numerics as nm
from losses_jax import _validation as va

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True)
ROWS, COLS = 3, 5
F32_MAX = float(np.finfo(np.float32).max)
# Results below the smallest normal float32 are flushed to 0 by XLA on CPU.
TINY = float(np.finfo(np.float32).tiny)


def floats(low, high):
    """float32 values in [low, high], no subnormals (XLA on CPU flushes them to zero)."""
    low, high = float(np.float32(low)), float(np.float32(high))
    return st.floats(low, high, width=32, allow_subnormal=False)


# Logits: moderate values, mixed with ±1e30 and -inf (a row may be entirely -inf).
LOGIT = st.one_of(
    floats(-1e4, 1e4),
    floats(-10.0, 10.0),
    st.sampled_from([1e30, -1e30, -math.inf]),
)
LOGITS = hnp.arrays(np.float32, (ROWS, COLS), elements=LOGIT)
REAL = floats(-1e4, 1e4)


def f32(x) -> np.ndarray:
    return np.asarray(x, np.float32)


_logsumexp = jax.jit(nm.logsumexp)
_log_softmax = jax.jit(nm.log_softmax)
_logsumexp_grad = jax.jit(jax.grad(lambda x: jnp.sum(nm.logsumexp(x))))


def _masked_sum(values):
    """Sum of the finite entries: a cotangent of 0 on the ``-inf`` ones."""
    return jnp.sum(jnp.where(jnp.isfinite(values), values, 0.0))


_log_softmax_grad = jax.jit(jax.grad(lambda x: _masked_sum(nm.log_softmax(x))))


# --------------------------------------------------------------------------------------
# row_peak, logsumexp, log_softmax
# --------------------------------------------------------------------------------------
@SETTINGS
@given(x=LOGITS)
def test_row_peak_is_the_max_floored_at_the_lowest_finite_value(x):
    peak = np.asarray(nm.row_peak(jnp.asarray(x)))
    expected = np.maximum(x.max(axis=-1, keepdims=True), np.finfo(np.float32).min)
    np.testing.assert_array_equal(peak, expected)
    assert peak.shape == (ROWS, 1)
    np.testing.assert_array_equal(nm.row_peak(jnp.asarray(x), axis=0, keepdims=False), x.max(0))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_row_peak_of_an_all_minus_inf_row_is_finite_in_its_dtype(dtype):
    x = jnp.full((2, 3), -jnp.inf, dtype)
    peak = nm.row_peak(x)
    assert peak.dtype == jnp.dtype(dtype)
    np.testing.assert_array_equal(np.asarray(peak, np.float32), float(jnp.finfo(dtype).min))


@SETTINGS
@given(x=LOGITS)
def test_logsumexp_matches_float64(x):
    expected = ref.logsumexp(x)
    np.testing.assert_allclose(_logsumexp(x), expected, rtol=1e-6, atol=1e-5)
    # The gradient is softmax (0 on -inf entries and on all -inf rows), never NaN.
    grad = np.asarray(_logsumexp_grad(x))
    np.testing.assert_allclose(grad, np.exp(ref.log_softmax(x)), atol=1e-6)


@SETTINGS
@given(x=LOGITS)
def test_log_softmax_matches_float64(x):
    expected = ref.log_softmax(x)
    np.testing.assert_allclose(_log_softmax(x), expected, rtol=1e-6, atol=1e-5)
    grad = np.asarray(_log_softmax_grad(x))
    assert np.isfinite(grad).all()
    assert np.all(grad[np.isneginf(x)] == 0.0)


def test_all_minus_inf_rows_give_minus_inf_and_zero_gradient():
    x = jnp.array([[-jnp.inf, -jnp.inf, -jnp.inf], [1.0, 2.0, -jnp.inf]])
    np.testing.assert_array_equal(nm.logsumexp(x)[0], -np.inf)
    np.testing.assert_array_equal(nm.log_softmax(x)[0], [-np.inf] * 3)
    grad = jax.grad(lambda x: jnp.sum(nm.logsumexp(x)))(x)
    np.testing.assert_array_equal(grad[0], 0.0)
    np.testing.assert_allclose(grad[1], [1 / (1 + math.e), math.e / (1 + math.e), 0.0], rtol=1e-6)
    # A zero target weight on every class of the -inf row (how the losses use log_softmax).
    targets = jnp.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    value, grad = jax.value_and_grad(
        lambda x: jnp.sum(nm.weighted_sum_of_logs(targets, nm.log_softmax(x)))
    )(x)
    np.testing.assert_allclose(float(value), -math.log1p(math.exp(-1.0)), rtol=1e-6)
    np.testing.assert_array_equal(grad[0], 0.0)
    assert np.isfinite(np.asarray(grad)).all()


def test_logsumexp_and_log_softmax_at_1e30():
    x = jnp.array([[1e30, 1e30, -1e30], [-1e30, -1e30, -1e30]])
    # log(2) must not be rounded away: x - peak first, then the log of the sum.
    np.testing.assert_allclose(nm.log_softmax(x)[0, :2], [-math.log(2.0)] * 2, rtol=1e-6)
    np.testing.assert_allclose(nm.log_softmax(x)[1], [-math.log(3.0)] * 3, rtol=1e-6)
    np.testing.assert_allclose(nm.log_softmax(x)[0, 2], -2e30, rtol=1e-6)
    np.testing.assert_allclose(nm.logsumexp(x), [1e30, -1e30], rtol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(nm.logsumexp(x)))(x)
    np.testing.assert_allclose(grad, [[0.5, 0.5, 0.0], [1 / 3] * 3], rtol=1e-6)


# Per dtype: (largest magnitude used, rtol, atol) for rows of COLS entries.
LOW_PRECISION = {"float16": (6e4, 1e-2, 2e-2), "bfloat16": (1e30, 2e-2, 6e-2)}


@pytest.mark.parametrize("dtype", sorted(LOW_PRECISION))
def test_logsumexp_and_log_softmax_in_low_precision(dtype):
    big, rtol, atol = LOW_PRECISION[dtype]
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 3.0, size=(4, COLS))
    x[1, 0], x[1, 1], x[2, :] = big, -big, -np.inf
    x[3, 2] = -np.inf
    low = jnp.asarray(x, dtype)
    x64 = np.asarray(low.astype(jnp.float32), np.float64)  # the rounded inputs
    for fn, reference in ((nm.logsumexp, ref.logsumexp), (nm.log_softmax, ref.log_softmax)):
        ours = fn(low)
        assert ours.dtype == jnp.dtype(dtype)
        # The float64 result rounded to the dtype (overflow to -inf included).
        with np.errstate(over="ignore"):
            expected = np.asarray(jnp.asarray(reference(x64), dtype).astype(jnp.float32))
        np.testing.assert_allclose(np.asarray(ours, np.float32), expected, rtol=rtol, atol=atol)
    grad = jax.grad(lambda x: jnp.sum(nm.logsumexp(x).astype(jnp.float32)))(low)
    assert grad.dtype == jnp.dtype(dtype)
    grad = np.asarray(grad, np.float32)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(grad[2], 0.0)
    assert grad[3, 2] == 0.0


# --------------------------------------------------------------------------------------
# straight-through clip
# --------------------------------------------------------------------------------------
LOW, HIGH = 1e-7, 1.0 - 1e-7
PROBABILITIES = hnp.arrays(
    np.float32,
    (COLS,),
    elements=st.one_of(floats(-2.0, 3.0), st.sampled_from([0.0, 1.0, LOW, HIGH])),
)


@SETTINGS
@given(p=PROBABILITIES)
def test_straight_through_clip_value_is_clip_and_derivative_is_one(p):
    np.testing.assert_array_equal(
        nm.straight_through_clip(jnp.asarray(p), LOW, HIGH), jnp.clip(p, LOW, HIGH)
    )
    np.testing.assert_array_equal(nm.clip_probabilities(jnp.asarray(p)), jnp.clip(p, LOW, HIGH))
    grad = jax.grad(lambda p: jnp.sum(nm.straight_through_clip(p, LOW, HIGH)))(jnp.asarray(p))
    np.testing.assert_array_equal(grad, 1.0)
    tangent = np.arange(1.0, COLS + 1, dtype=np.float32)
    value, out_tangent = jax.jvp(
        lambda p: nm.straight_through_clip(p, LOW, HIGH), (jnp.asarray(p),), (jnp.asarray(tangent),)
    )
    np.testing.assert_array_equal(value, jnp.clip(p, LOW, HIGH))
    np.testing.assert_array_equal(out_tangent, tangent)


def test_straight_through_clip_under_jacfwd_and_hessian():
    p = jnp.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(
        jax.jacfwd(lambda p: nm.straight_through_clip(p, LOW, HIGH))(p), np.eye(5)
    )
    np.testing.assert_array_equal(
        jax.jacrev(lambda p: nm.straight_through_clip(p, LOW, HIGH))(p), np.eye(5)
    )
    # sum(clip(p)^2): gradient 2 clip(p), Hessian 2 I (the tangent map is the identity).
    hessian = jax.hessian(lambda p: jnp.sum(nm.straight_through_clip(p, LOW, HIGH) ** 2))(p)
    np.testing.assert_array_equal(hessian, 2.0 * np.eye(5))
    np.testing.assert_array_equal(
        jax.hessian(lambda p: jnp.sum(nm.straight_through_clip(p, LOW, HIGH)))(p), 0.0
    )
    # -log(clip(p)) at p = 0 still has a gradient: -1 / 1e-7 (Keras's clip would give 0).
    grad = jax.grad(lambda p: -jnp.log(nm.clip_probabilities(p)))(0.0)
    np.testing.assert_allclose(grad, -1e7, rtol=1e-6)


# --------------------------------------------------------------------------------------
# weighted logs, safe division, powers
# --------------------------------------------------------------------------------------
WEIGHTS = hnp.arrays(np.float32, (COLS,), elements=st.one_of(st.just(0.0), floats(-3.0, 3.0)))
LOGS = hnp.arrays(np.float32, (COLS,), elements=st.one_of(st.just(-math.inf), floats(-50.0, 0.0)))


@SETTINGS
@given(weights=WEIGHTS, logs=LOGS)
def test_weighted_log_matches_float64_and_zero_weight_kills_minus_inf(weights, logs):
    value = nm.weighted_log(jnp.asarray(weights), jnp.asarray(logs))
    np.testing.assert_allclose(value, ref.times_log(weights, logs), rtol=1e-6, atol=TINY)
    with np.errstate(invalid="ignore"):  # inf - inf: NaN on both sides
        expected_sum = ref.times_log(weights, logs).sum()
    np.testing.assert_allclose(
        nm.weighted_sum_of_logs(jnp.asarray(weights), jnp.asarray(logs)),
        expected_sum,
        rtol=1e-5,
        atol=1e-5,
    )
    if np.all(np.isfinite(logs) | (weights == 0)):
        d_weights, d_logs = jax.grad(
            lambda w, logs: jnp.sum(nm.weighted_log(w, logs)), argnums=(0, 1)
        )(jnp.asarray(weights), jnp.asarray(logs))
        keep = weights != 0
        np.testing.assert_array_equal(d_weights, np.where(keep, logs, 0.0))
        np.testing.assert_array_equal(d_logs, np.where(keep, weights, 0.0))


def test_zero_weight_times_minus_inf_log_is_zero_value_and_gradient():
    weights, logs = jnp.array([0.0, 0.0, 2.0]), jnp.array([-jnp.inf, -1.0, -1.0])
    value, (d_weights, d_logs) = jax.value_and_grad(
        lambda w, logs: jnp.sum(nm.weighted_log(w, logs)), argnums=(0, 1)
    )(weights, logs)
    assert float(value) == -2.0
    np.testing.assert_array_equal(d_weights, [0.0, 0.0, -1.0])
    np.testing.assert_array_equal(d_logs, [0.0, 0.0, 2.0])


DENOMINATORS = hnp.arrays(np.float32, (COLS,), elements=st.one_of(st.just(0.0), floats(-1e3, 1e3)))


@SETTINGS
@given(numerator=hnp.arrays(np.float32, (COLS,), elements=REAL), denominator=DENOMINATORS)
def test_safe_divide_matches_float64_and_is_zero_at_zero(numerator, denominator):
    n, d = numerator.astype(np.float64), denominator.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        expected = np.where(d != 0, n / d, 0.0)
    ours = nm.safe_divide(jnp.asarray(numerator), jnp.asarray(denominator))
    expected = np.clip(expected, -F32_MAX, F32_MAX)  # float32 rounding of huge quotients
    np.testing.assert_allclose(np.clip(ours, -F32_MAX, F32_MAX), expected, rtol=1e-6, atol=TINY)
    d_num, d_den = jax.grad(lambda a, b: jnp.sum(nm.safe_divide(a, b)), argnums=(0, 1))(
        jnp.asarray(numerator), jnp.asarray(denominator)
    )
    zero = denominator == 0
    np.testing.assert_array_equal(np.asarray(d_num)[zero], 0.0)
    np.testing.assert_array_equal(np.asarray(d_den)[zero], 0.0)
    assert not np.isnan(np.asarray(d_num)).any() and not np.isnan(np.asarray(d_den)).any()


BASES = hnp.arrays(np.float32, (COLS,), elements=st.one_of(st.just(0.0), floats(0.0, 1.0)))


@SETTINGS
@given(base=BASES, exponent=st.sampled_from([0, 1, 2, 3, 2.0, 0.5, 0.25, 1.5, 2.5]))
def test_power_matches_float64(base, exponent):
    b = base.astype(np.float64)
    ours = nm.power(jnp.asarray(base), exponent)
    np.testing.assert_allclose(ours, b**exponent, rtol=2e-6, atol=1e-30)
    grad = np.asarray(jax.grad(lambda x: jnp.sum(nm.power(x, exponent)))(jnp.asarray(base)))
    assert np.isfinite(grad).all()
    # d/db b^e = e b^(e-1), at b = 0 taken at b = 1e-7 (the probability clip) for real e < 1.
    at = np.where(b > 0, b, 1e-7 if not float(exponent).is_integer() else 0.0)
    with np.errstate(divide="ignore"):
        expected = exponent * at ** (exponent - 1) if exponent != 0 else np.zeros_like(b)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-30)


def test_power_whole_exponents_multiply_exactly():
    base = jnp.array([0.0, 0.3, 0.7, 1.0], jnp.float32)
    for exponent in (0, 1, 2, 3, 2.0):
        np.testing.assert_array_equal(nm.power(base, exponent), base ** int(exponent))


def test_power_gradient_is_finite_at_zero():
    for exponent in (0.5, 0.1, 1.5, 2, 2.0):
        grad = jax.grad(lambda p, e=exponent: nm.power(p, e))(0.0)
        assert np.isfinite(float(grad)), exponent
    # e < 1: the derivative at 0 is infinite; taken at 1e-7 instead.
    np.testing.assert_allclose(jax.grad(lambda p: nm.power(p, 0.5))(0.0), 0.5 / math.sqrt(1e-7))
    # Negative bases count as 0 under a real exponent.
    assert float(nm.power(jnp.float32(-0.5), 0.5)) == 0.0


def test_power_with_a_traced_exponent():
    fn = jax.jit(lambda b, e: nm.power(b, e))
    np.testing.assert_allclose(fn(jnp.array([0.0, 0.25, 4.0]), 0.5), [0.0, 0.5, 2.0], rtol=1e-6)


# --------------------------------------------------------------------------------------
# logistic terms
# --------------------------------------------------------------------------------------
LOGISTIC = hnp.arrays(
    np.float32,
    (COLS,),
    elements=st.one_of(
        floats(-100.0, 100.0),
        st.sampled_from([0.0, -0.0, 1e-30, 1e4, -1e4, 1e30, -1e30, math.inf, -math.inf]),
    ),
)


@SETTINGS
@given(x=LOGISTIC)
def test_logistic_terms_match_float64_softplus_and_sigmoid(x):
    terms = [np.asarray(t) for t in nm.logistic_terms(jnp.asarray(x))]
    x64 = x.astype(np.float64)
    expected = [ref.softplus(x64), ref.softplus(-x64), ref.sigmoid(x64), ref.sigmoid(-x64)]
    for ours, want in zip(terms, expected):
        np.testing.assert_allclose(ours, want, rtol=2e-6, atol=1e-37)
    finite = np.isfinite(x)
    jacobians = [
        np.asarray(jax.grad(lambda x, i=i: jnp.sum(nm.logistic_terms(x)[i]))(jnp.asarray(x)))
        for i in range(4)
    ]
    s, s_neg = ref.sigmoid(x64), ref.sigmoid(-x64)
    derivatives = [s, -s_neg, s * s_neg, -s * s_neg]
    for ours, want in zip(jacobians, derivatives):
        np.testing.assert_allclose(ours[finite], want[finite], rtol=2e-6, atol=1e-37)
        assert not np.isnan(ours).any()


def test_logistic_terms_derivative_at_zero():
    for x in (0.0, -0.0):
        grads = [
            float(jax.grad(lambda x, i=i: nm.logistic_terms(x)[i])(jnp.float32(x)))
            for i in range(4)
        ]
        assert grads == [0.5, -0.5, 0.25, -0.25]


# --------------------------------------------------------------------------------------
# l2_normalize, log_cosh_elementwise
# --------------------------------------------------------------------------------------
VECTORS = hnp.arrays(
    np.float32,
    (ROWS, 4),
    elements=st.one_of(floats(-10.0, 10.0), st.sampled_from([0.0, 1e30, -1e30, 1e-30, 1e-8])),
)
_l2_normalize = jax.jit(nm.l2_normalize)
_l2_jacobian = jax.jit(jax.vmap(jax.jacrev(nm.l2_normalize)))


@SETTINGS
@given(x=VECTORS)
def test_l2_normalize_matches_keras_normalize_in_float64(x):
    np.testing.assert_allclose(_l2_normalize(x), ref.unit(x), rtol=2e-6, atol=1e-30)
    jacobian = np.asarray(_l2_jacobian(x))
    assert np.isfinite(jacobian).all()
    x64 = x.astype(np.float64)
    norms = np.linalg.norm(x64, axis=-1)
    for row, norm, jac in zip(x64, norms, jacobian):
        if norm > 1e-6:  # (I - u u^T) / ||x||
            u = row / norm
            expected = (np.eye(4) - np.outer(u, u)) / norm
            np.testing.assert_allclose(jac, expected, rtol=1e-4, atol=1e-6 / norm)
        elif norm < 1e-8:  # x / 1e-7
            np.testing.assert_allclose(jac, np.eye(4) / 1e-7, rtol=1e-6)


def test_l2_normalize_at_1e30_and_of_the_zero_vector():
    np.testing.assert_allclose(nm.l2_normalize(jnp.array([3e30, -4e30])), [0.6, -0.8], rtol=1e-6)
    np.testing.assert_allclose(nm.l2_normalize(jnp.array([1e30, 1e30])), [0.5**0.5] * 2)
    zero = jnp.zeros(3)
    np.testing.assert_array_equal(nm.l2_normalize(zero), 0.0)
    jacobian = jax.jacrev(nm.l2_normalize)(zero)
    np.testing.assert_allclose(jacobian, np.eye(3) / 1e-7, rtol=1e-6)
    grad = jax.grad(lambda x: jnp.sum(nm.l2_normalize(x) * jnp.array([1.0, 2.0, 3.0])))(zero)
    assert np.isfinite(np.asarray(grad)).all()


@SETTINGS
@given(x=hnp.arrays(np.float32, (COLS,), elements=floats(-1e30, 1e30)))
def test_log_cosh_elementwise_has_full_relative_precision(x):
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(
        nm.log_cosh_elementwise(jnp.asarray(x)), ref.log_cosh_elementwise(x64), rtol=2e-6, atol=TINY
    )
    grad = jax.grad(lambda x: jnp.sum(nm.log_cosh_elementwise(x)))(jnp.asarray(x))
    np.testing.assert_allclose(grad, np.tanh(x64), rtol=2e-6, atol=1e-37)


@pytest.mark.parametrize(
    "x", [0.0, 1e-30, 1e-8, -1e-4, 1e-2, 0.5, -3.0, 19.999, 20.0, 20.001, 1e4, -1e30, 1e30]
)
def test_log_cosh_elementwise_near_zero_and_at_1e30(x):
    x32 = np.float32(x)
    value = float(nm.log_cosh_elementwise(jnp.float32(x)))
    expected = float(ref.log_cosh_elementwise(np.float64(x32)))
    assert value == pytest.approx(expected, rel=2e-6, abs=1e-45)
    grad = float(jax.grad(nm.log_cosh_elementwise)(jnp.float32(x)))
    assert grad == pytest.approx(math.tanh(float(x32)), rel=2e-6, abs=1e-45)


# --------------------------------------------------------------------------------------
# dtype policy: upcast, accumulation_dtype, compute_dtype, mean_last_axis
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_upcast_computes_in_float32_and_saturates_the_gradient(dtype):
    x = jnp.asarray([0.1, -2.0, 3.5], dtype)
    up = nm.upcast(x)
    assert up.dtype == jnp.float32
    np.testing.assert_array_equal(up, x.astype(jnp.float32))
    largest = float(jnp.finfo(dtype).max)
    # A float32 cotangent beyond the dtype's range comes back as its largest finite value.
    _, pullback = jax.vjp(nm.upcast, x)
    (grad,) = pullback(jnp.array([1e6, -jnp.inf, 2.0], jnp.float32))
    assert grad.dtype == jnp.dtype(dtype)
    expected = jnp.asarray([min(1e6, largest), -largest, 2.0], dtype).astype(jnp.float32)
    np.testing.assert_array_equal(np.asarray(grad, np.float32), expected)


def test_upcast_of_float16_saturates_where_a_plain_cast_overflows():
    x = jnp.ones(2, jnp.float16)
    grad = jax.grad(lambda x: 1e6 * jnp.sum(nm.upcast(x)))(x)
    assert grad.dtype == jnp.float16
    np.testing.assert_array_equal(np.asarray(grad, np.float32), 65504.0)
    plain = jax.grad(lambda x: 1e6 * jnp.sum(x.astype(jnp.float32)))(x)
    assert np.isinf(np.asarray(plain, np.float32)).all()


def test_upcast_leaves_float32_and_float64_alone():
    x = jnp.ones(3, jnp.float32)
    assert nm.upcast(x) is x


def test_dtype_policy():
    assert nm.compute_dtype(None) == jnp.float32
    assert nm.compute_dtype("bfloat16") == jnp.bfloat16
    with pytest.raises(TypeError, match="floating dtype"):
        nm.compute_dtype("int32")
    with pytest.raises(TypeError, match="not a dtype"):
        nm.compute_dtype("no_such_dtype")
    assert nm.accumulation_dtype("float16") == jnp.float32
    assert nm.accumulation_dtype("bfloat16") == jnp.float32
    assert nm.accumulation_dtype("int8") == jnp.float32
    assert nm.accumulation_dtype("float32") == jnp.float32


def test_mean_last_axis_does_not_overflow():
    values = jnp.full((2, 4), 3e38, jnp.float32)
    np.testing.assert_allclose(nm.mean_last_axis(values), [3e38, 3e38], rtol=1e-6)


# --------------------------------------------------------------------------------------
# _validation: the check_* vocabulary
# --------------------------------------------------------------------------------------
def test_check_int():
    assert va.check_int(3, "beam_width", low=1) == 3
    assert va.check_int(np.int64(2), "n") == 2
    assert va.check_int(None, "ignore_class", allow_none=True) is None
    with pytest.raises(TypeError, match=r"^`ignore_class` must be an int or None; received "):
        va.check_int(True, "ignore_class", allow_none=True)
    with pytest.raises(TypeError, match=r"`n` must be an int; received n=1.5\."):
        va.check_int(1.5, "n")
    with pytest.raises(TypeError, match="must be an int;"):
        va.check_int(None, "n")
    with pytest.raises(ValueError, match=r"`beam_width` must be >= 1; received beam_width=0\."):
        va.check_int(0, "beam_width", low=1)


def test_check_bool():
    assert va.check_bool(np.bool_(True), "from_logits") is True
    assert va.check_bool(False, "from_logits") is False
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match=r"`from_logits` must be a bool; received"):
            va.check_bool(bad, "from_logits")


def test_check_number():
    assert va.check_number(0.1, "label_smoothing", low=0.0, high=1.0) == 0.1
    assert va.check_number(0.0, "x", low=0.0) == 0.0
    assert va.check_number(1, "q", low=0.0, high=1.0, low_inclusive=False) == 1
    with pytest.raises(ValueError, match=r"`label_smoothing` must be in \[0.0, 1.0\]; received"):
        va.check_number(2.0, "label_smoothing", low=0.0, high=1.0)
    with pytest.raises(ValueError, match=r"`q` must be in \(0.0, 1.0\]; received q=0.0\."):
        va.check_number(0.0, "q", low=0.0, high=1.0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"`delta` must be in \(0.0, inf\]"):
        va.check_number(-1.0, "delta", low=0.0, low_inclusive=False)
    with pytest.raises(ValueError, match=r"`x` must be in \[-inf, 2\)"):
        va.check_number(2, "x", high=2, high_inclusive=False)
    with pytest.raises(ValueError, match="received gamma=nan"):
        va.check_number(float("nan"), "gamma", low=0.0)
    with pytest.raises(TypeError, match=r"`alpha` must be a real number; received alpha='a'\."):
        va.check_number("a", "alpha")
    # Traced values pass through unchecked (checked by the value checks instead).
    out = jax.jit(lambda v: va.check_number(v, "gamma", low=0.0))(-1.0)
    assert float(out) == -1.0


def test_check_axis_and_normalize_axis():
    assert va.check_axis(1, "dice") == 1
    assert va.check_axis(None, "dice") is None
    assert va.check_axis([0, 1], "dice") == (0, 1)
    assert va.check_axis((0, -1), "dice") == (0, -1)
    with pytest.raises(
        TypeError, match=r"^dice: `axis` must be an int, a tuple of ints or None; received axis=1.5"
    ):
        va.check_axis(1.5, "dice")
    with pytest.raises(TypeError, match=r"`axis` must be an int; received axis=None"):
        va.check_axis(None, "cce", allow_tuple=False)
    with pytest.raises(TypeError, match="axis"):
        va.check_axis(True, "dice")
    assert va.normalize_axis(-1, 3) == 2
    assert va.normalize_axis((0, -1), 2) == (0, 1)
    assert va.normalize_axis(None, 2) is None
    with pytest.raises(ValueError, match=r"`axis`=3 is out of range for an input of rank 3 "):
        va.normalize_axis(3, 3)
    with pytest.raises(ValueError, match=r"\(valid: -2 to 1\)"):
        va.normalize_axis(-3, 2)
    with pytest.raises(TypeError, match=r"`axis` must be an int; received axis=1.0"):
        va.normalize_axis(1.0, 2)


def test_resolve_axis():
    assert va.resolve_axis((1, -1), (2, 3, 4), "dice") == (1, 2)
    with pytest.raises(ValueError, match=r"^dice: `axis`=5 is out of range.*Input shape: \(2, 3\)"):
        va.resolve_axis(5, (2, 3), "dice")
    with pytest.raises(ValueError, match=r"names an axis twice; input shape: \(2, 3\)"):
        va.resolve_axis((1, -1), (2, 3), "tversky")
    with pytest.raises(TypeError, match="^dice: `axis`"):
        va.resolve_axis("0", (2, 3), "dice")


def test_check_rank():
    va.check_rank(jnp.zeros((2, 3)), 2, "y_pred", "(batch, dim)")
    with pytest.raises(
        ValueError, match=r"`y_pred` must have rank 2, shape \(batch, dim\); received shape \(4,\)"
    ):
        va.check_rank(jnp.zeros(4), 2, "y_pred", "(batch, dim)")


def test_check_broadcastable():
    assert va.check_broadcastable((3,), (2, 3))
    assert va.check_broadcastable((1, 3), (2, 3))
    assert va.check_broadcastable((), (2, 3))
    assert not va.check_broadcastable((2,), (2, 3))
    assert not va.check_broadcastable((1, 2, 3), (2, 3))


def test_array_conversions():
    assert va.as_float_array([1, 2], "y_pred").dtype == jnp.float32
    assert va.as_float_array(jnp.ones(2, jnp.bfloat16), "y_pred").dtype == jnp.bfloat16
    assert va.as_float_array([True], "y_true", jnp.float16).dtype == jnp.float16
    assert va.as_label_array([3000, 1], "y_true").dtype == jnp.int32
    with pytest.raises(TypeError, match=r"`y_pred` must be real; received complex dtype"):
        va.as_float_array(np.ones(2, np.complex64), "y_pred")
    with pytest.raises(TypeError, match="`y_true` must be"):
        va.as_label_array(np.array(["a", "b"]), "y_true")
    with pytest.raises(TypeError, match=r"`y_pred` must be a numeric array; received object"):
        va.as_float_array(object(), "y_pred")


def test_match_shapes_and_rank_alignment():
    t, p = va.match_shapes(jnp.zeros((4,)), jnp.zeros((4, 1)), "mse")
    assert t.shape == p.shape == (4, 1)
    t, p = va.match_shapes(jnp.zeros((4, 3, 1)), jnp.zeros((4, 3)), "mse")
    assert t.shape == p.shape == (4, 3)
    with pytest.raises(
        ValueError, match=r"^mse: `y_true` and `y_pred` have incompatible shapes \(2, 3\) and"
    ):
        va.match_shapes(jnp.zeros((2, 3)), jnp.zeros((2, 4)), "mse")
    a, b = va.squeeze_or_expand_to_same_rank(jnp.zeros((4, 1)), jnp.zeros((4, 3, 1)))
    assert (a.shape, b.shape) == ((4, 1), (4, 3))
    a, b = va.squeeze_or_expand_to_same_rank(jnp.zeros(4), jnp.zeros((4, 1)), expand_rank_1=False)
    assert (a.shape, b.shape) == ((4,), (4,))
