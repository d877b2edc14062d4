"""The extended-range number format on its own, against float64 log-space arithmetic.

Inputs are log-probabilities in ``[LOG_PROB_FLOOR, 0]`` (float32) or ``-inf`` (exact zero);
each property compares the format's result, read back with ``to_log``, with ``np.logaddexp``
(or a sum of logs) in float64. The error allowed is a few float32 epsilons relative to the
magnitude of the log: the conversions themselves round ``e * ln 2`` to float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from losses_jax._extended_range import FORMATS, LOG_PROB_FLOOR, ExtendedRangeFormat

FMT = FORMATS[jnp.dtype(jnp.float32)]
EPS = float(np.finfo(np.float32).eps)

# a finite log-probability anywhere in the range (so exponents differ by up to 1.4e5 binades)
finite_logp = st.floats(min_value=LOG_PROB_FLOOR, max_value=0.0, width=32)
# ... or an exact zero
logp = st.one_of(st.just(-np.inf), finite_logp)
# three log-probabilities near each other (within 200 nats: the terms overlap)
near = st.tuples(finite_logp, *[st.floats(0.0, 200.0, width=32)] * 2).map(
    lambda t: (t[0], max(t[0] - t[1], LOG_PROB_FLOOR), max(t[0] - t[2], LOG_PROB_FLOOR))
)

SETTINGS = settings(max_examples=150, deadline=None)


def _log_tolerance(expected: float) -> float:
    """A few float32 epsilons, relative to the log's magnitude (plus one for logs near 0)."""
    return 4 * EPS * (1.0 + abs(expected))


def assert_log_close(got, expected) -> None:
    got, expected = float(got), float(expected)
    if np.isneginf(expected):
        assert np.isneginf(got), (got, expected)
    else:
        assert abs(got - expected) <= _log_tolerance(expected), (got, expected)


def assert_in_range(pair, low: float, high: float, fmt: ExtendedRangeFormat = FMT) -> None:
    """A result of the format's arithmetic: finite, with ``m`` in ``[low, high)`` or exact zero."""
    m, e = (np.asarray(v) for v in pair)
    assert np.all(np.isfinite(m)) and np.all(e >= fmt.zero - fmt.bias)  # add3 may go bias below
    assert np.all((m == 0) | ((m >= low) & (m < high))), m


@jax.jit
def _round_trip(lp):
    return FMT.to_log(*FMT.from_log(lp))


@jax.jit
def _add3(a, b, c):
    pair = FMT.add3(FMT.from_log(a), FMT.from_log(b), FMT.from_log(c))
    return pair, FMT.to_log(*pair)


@jax.jit
def _times(a, b):
    pair = FMT.times(FMT.from_log(a), *FMT.from_log(b))
    return pair, FMT.to_log(*pair)


@jax.jit
def _step(a, b, c, emission):
    # One recursion step fed back into the next: mantissas up to 12 enter add3.
    x = FMT.times(FMT.add3(FMT.from_log(a), FMT.from_log(b), FMT.from_log(c)), *FMT.from_log(a))
    y = FMT.times(FMT.add3(x, x, FMT.from_log(c)), *FMT.from_log(emission))
    pair = FMT.add3(y, x, FMT.from_log(b))
    return pair, FMT.to_log(*pair)


def f32(*values) -> list[np.float32]:
    return [np.float32(v) for v in values]


def logaddexp64(*values) -> float:
    return float(np.logaddexp.reduce(np.asarray(values, np.float64)))


@SETTINGS
@given(logp)
@example(0.0)
@example(LOG_PROB_FLOOR)
@example(-1e-30)
def test_from_log_to_log_round_trip(lp):
    (lp,) = f32(lp)
    assert_log_close(_round_trip(lp), lp)
    # [1, 2] up to the float32 rounding of logp / ln 2 (0.8% off at the floor)
    assert_in_range(FMT.from_log(lp), 0.99, 2.02)


@SETTINGS
@given(logp, logp, logp)
@example(-np.inf, -np.inf, -np.inf)
@example(0.0, LOG_PROB_FLOOR, -np.inf)  # 1.4e5 binades apart: the small terms vanish
@example(-50.0, -150.0, -np.inf)
def test_add3_is_logaddexp(a, b, c):
    a, b, c = f32(a, b, c)
    pair, log = _add3(a, b, c)
    assert_log_close(log, logaddexp64(a, b, c))
    assert_in_range(pair, 1.0, 6.0)  # exact: the largest aligned term is in [1, 2)


@SETTINGS
@given(near)
def test_add3_of_overlapping_terms(terms):
    a, b, c = f32(*terms)
    pair, log = _add3(a, b, c)
    assert_log_close(log, logaddexp64(a, b, c))
    assert_in_range(pair, 1.0, 6.0)


@SETTINGS
@given(logp, logp)
@example(0.0, -np.inf)
@example(LOG_PROB_FLOOR, LOG_PROB_FLOOR)
def test_times_adds_logs(a, b):
    a, b = f32(a, b)
    pair, log = _times(a, b)
    assert_log_close(log, np.float64(a) + np.float64(b))
    assert_in_range(pair, 0.98, 4.1)


@SETTINGS
@given(logp, logp, logp, logp)
@example(-1.0, -2.0, -3.0, -4.0)
@example(LOG_PROB_FLOOR, LOG_PROB_FLOOR, LOG_PROB_FLOOR, LOG_PROB_FLOOR)
def test_chained_steps_match_log_space(a, b, c, emission):
    a, b, c, emission = f32(a, b, c, emission)
    x = logaddexp64(a, b, c) + np.float64(a)
    y = logaddexp64(x, x, c) + np.float64(emission)
    pair, log = _step(a, b, c, emission)
    # three roundings of sums in a row: allow twice the one-step error
    expected = logaddexp64(y, x, b)
    if np.isneginf(expected):
        assert np.isneginf(float(log))
    else:
        assert abs(float(log) - expected) <= 2 * _log_tolerance(expected), (log, expected)
    assert_in_range(pair, 1.0, 6.0)


def test_exact_zero_stays_zero():
    zero = FMT.from_log(jnp.float32(-jnp.inf))
    one = FMT.from_log(jnp.float32(0.0))
    assert float(zero[0]) == 0.0 and int(zero[1]) == FMT.zero
    for pair in (FMT.add3(zero, zero, zero), FMT.times(zero, *one), FMT.times(one, *zero)):
        assert float(pair[0]) == 0.0
        assert np.isneginf(float(FMT.to_log(*pair)))
    # a zero among the terms of a sum contributes exactly nothing
    tiny = FMT.from_log(jnp.float32(-1000.0))
    sums = [FMT.add3(tiny, zero, zero), FMT.add3(zero, tiny, zero), FMT.add3(zero, zero, tiny)]
    assert {(float(m), int(e)) for m, e in sums} == {(float(tiny[0]), int(tiny[1]))}


def test_to_log_reads_the_bottom_of_the_range_as_zero():
    # Numbers below 2**(-2**28) read as zero: an NLL beyond 2**28 ln 2 (1.86e8) is +inf.
    limit = FMT.zero // 2
    m = jnp.float32(1.0)
    assert np.isneginf(float(FMT.to_log(m, jnp.int32(limit))))
    above = float(FMT.to_log(m, jnp.int32(limit + 1)))
    np.testing.assert_allclose(above, (limit + 1) * np.log(2.0), rtol=1e-6)


def test_pow2_is_exact_and_saturates():
    d = jnp.arange(-130, 131, dtype=jnp.int32)
    got = np.asarray(FMT.pow2(d), np.float64)
    expected = np.where(d >= -126, 2.0 ** np.clip(np.asarray(d, np.float64), None, 127), 0.0)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("values", [(-1.0, -2.0, -3.0), (-1e4, -3e4, -np.inf), (0.0, 0.0, 0.0)])
def test_float64_format(values):
    fmt = FORMATS[jnp.dtype(jnp.float64)]
    with jax.enable_x64(True):
        a, b, c = (fmt.from_log(jnp.float64(v)) for v in values)
        got = float(fmt.to_log(*fmt.add3(a, b, c)))
    # LN2_LO is float32-accurate: ln 2 is off by 5.5e-14 per binade of the exponent
    np.testing.assert_allclose(got, logaddexp64(*values), rtol=1e-12, atol=1e-12)
