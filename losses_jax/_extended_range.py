"""Extended-range numbers: a float mantissa with its own integer exponent.

A number is a pair ``(m, e)`` of a float mantissa ``m >= 0`` and an integer exponent ``e``; its
value is ``m * 2**e``. The float32 format pairs a float32 mantissa with an int32 exponent, the
float64 format a float64 mantissa with an int64 exponent. Exponents are clamped at ``-2**29``
(``-2**61`` for float64) and :meth:`ExtendedRangeFormat.to_log` reads numbers below
``2**(-2**28)`` as zero, so probabilities down to ``2**(-2**28)`` (a log of -1.86e8) are kept:
no probability of a path through thousands of frames underflows, and the relative precision is
the mantissa's, float32's for the float32 format. Zero is an exact zero (mantissa 0), never a
denormal or a NaN.

The format exists for CTC's forward-backward recursions (:mod:`losses_jax.losses.sequence`), whose
states are sums of three predecessors times an emission probability:

* :meth:`ExtendedRangeFormat.add3` aligns three numbers to the largest exponent by multiplying
  with powers of two built from bits, a few dozen integer and float operations per state and no
  transcendental function (a log-space step costs three ``exp`` and one ``log``);
* :meth:`ExtendedRangeFormat.times` multiplies the mantissas and adds the exponents;
* :meth:`ExtendedRangeFormat.from_log` converts a log-probability (one ``exp``, the
  emission's), :meth:`ExtendedRangeFormat.to_log` converts back.

Why not plain float32 rescaled per frame (dividing each frame's states by their largest)? It
would be cheaper and is wrong: when a target needs nearly every frame, the alignments that can
still finish trail the others by more than float32's range, so they flush to zero and the loss
comes out ``+inf``. One exponent per state keeps each of them at float32's relative precision.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike, DTypeLike

__all__ = ["FORMATS", "LN2_HI", "LN2_LO", "LOG_PROB_FLOOR", "ExtendedRangeFormat", "Pair"]

#: An extended-range number (or array of them): ``(mantissa, exponent)``, value ``m * 2**e``.
Pair = tuple[jax.Array, jax.Array]

#: Finite log-probabilities are floored here on conversion (a frame that must emit a class less
#: likely than this costs 1e5 nats, as optax's log-zero). It keeps the integer exponents of sums
#: over thousands of frames in range; realistic logits (differences up to 1e4) never reach it.
LOG_PROB_FLOOR = -1e5

#: Cody-Waite split of ln 2: ``LN2_HI`` has 16 significant bits, so ``e * LN2_HI`` is exact for
#: every exponent ``e`` that :data:`LOG_PROB_FLOOR` allows, and ``LN2_LO`` carries the rest to
#: float32 accuracy (fdlibm's ``expf`` constant): ``LN2_HI + LN2_LO`` is 5.5e-14 below ln 2, which
#: bounds the float64 format's relative precision near 1e-13.
LN2_HI = 0.693145751953125
LN2_LO = 1.428606765330187e-06


class ExtendedRangeFormat:
    """Bit-level arithmetic on extended-range numbers ``m * 2**e`` for one float dtype.

    A number is a pair ``(m, e)``: a float mantissa ``m >= 0`` (kept near ``[1, 12)`` or 0 by the
    recursions, never normalized to ``[1, 2)``, which would cost a second pass) and an integer
    exponent ``e``. Zero has ``m == 0``; its exponent is :attr:`zero` (``-2**29`` for float32).
    :meth:`times` clamps exponents there (:meth:`add3` returns at most ``bias`` below it), so that
    sums and products never overflow the integer type.

    Args:
        float_dtype: the mantissa's dtype (float32 or float64).
        int_dtype: the exponent's dtype, as wide as the mantissa (int32 or int64).
        mantissa_bits: the float's explicit mantissa bits (23 or 52).
        bias: the float's exponent bias (127 or 1023).
        zero_exponent: the exponent of zero, the smallest exponent kept.

    Examples:
        >>> fmt = FORMATS[jnp.dtype(jnp.float32)]
        >>> tiny = fmt.from_log(jnp.array(-1000.0))  # exp(-1000) underflows float32
        >>> zero = fmt.from_log(jnp.array(-jnp.inf))
        >>> round(float(fmt.to_log(*fmt.add3(tiny, tiny, zero))), 2)  # -1000 + ln 2
        -999.31
    """

    def __init__(
        self,
        float_dtype: DTypeLike,
        int_dtype: DTypeLike,
        mantissa_bits: int,
        bias: int,
        zero_exponent: int,
    ):
        self.float = jnp.dtype(float_dtype)
        self.int = jnp.dtype(int_dtype)
        self.mantissa_bits = mantissa_bits
        self.bias = bias
        self.zero = zero_exponent

    def to_int(self, x: jax.Array) -> jax.Array:
        """The bits of the float ``x`` as an integer of the same width."""
        return lax.bitcast_convert_type(x, self.int)

    def to_float(self, x: jax.Array) -> jax.Array:
        """The bits of the integer ``x`` as a float of the same width."""
        return lax.bitcast_convert_type(x, self.float)

    def pow2(self, d: jax.Array) -> jax.Array:
        """``2.0**d`` for integer ``d``: 0 below the normal range, clamped at the top."""
        return self.to_float(jnp.clip(d + self.bias, 0, 2 * self.bias) << self.mantissa_bits)

    def exponent(self, m: jax.Array, e: jax.Array) -> jax.Array:
        """The exponent of ``m * 2**e`` as a whole, plus ``bias``: ``e`` + ``m``'s exponent bits."""
        return e + (self.to_int(m) >> self.mantissa_bits)

    def add3(self, a: Pair, b: Pair, c: Pair) -> Pair:
        """``a + b + c`` for pairs ``(m, e)``: a pair with ``m`` in [1, 6), or exact zero.

        The terms are aligned to the largest true exponent ``E`` (so the largest term keeps a
        mantissa in [1, 2)) by multiplying with ``2**(e - E)`` built from bits; a term more than
        126 binades below ``E`` contributes 0, a relative error below ``2**-120``. Few operations
        per element matter beyond speed: XLA splits a loop fusion that it deems compute-bound
        over threads, which costs more than it saves at the size of one recursion step.
        """
        big = jnp.maximum(jnp.maximum(self.exponent(*a), self.exponent(*b)), self.exponent(*c))
        # With E = big - bias, 2**(e - E) is the float whose exponent bits are
        # e - E + bias = e - base (clamped at 0, i.e. zero, below the range).
        base = big - 2 * self.bias

        def aligned(m, e):
            return m * self.to_float(jnp.maximum(e - base, 0) << self.mantissa_bits)

        return aligned(*a) + aligned(*b) + aligned(*c), big - self.bias

    def times(self, pair: Pair, em: jax.Array, ee: jax.Array) -> Pair:
        """``pair * (em, ee)``: ``(m * em, e + ee)``, with the exponent clamped at :attr:`zero`."""
        return pair[0] * em, jnp.maximum(pair[1] + ee, self.zero)

    def from_log(self, logp: ArrayLike) -> Pair:
        """Extended-range ``exp(logp)`` for ``logp <= 0``; ``-inf`` gives exact zero.

        ``e = floor(logp / ln 2)`` and ``m = exp(logp - e ln 2)``, in ``[1, 2]`` up to the
        rounding of ``logp / ln 2`` (less than 1% outside it at the floor). Finite
        log-probabilities are floored at :data:`LOG_PROB_FLOOR`.
        """
        logp = jnp.asarray(logp)
        finite = logp > -jnp.inf
        logp = jnp.where(finite, jnp.maximum(logp, LOG_PROB_FLOOR), 0.0)
        e = jnp.floor(logp * (1.0 / math.log(2.0)))
        # Cody-Waite reduction: e * LN2_HI is exact, so m keeps full precision at large |e|.
        m = jnp.exp((logp - e * LN2_HI) - e * LN2_LO)
        return (
            jnp.where(finite, m, 0.0).astype(self.float),
            jnp.where(finite, e.astype(self.int), self.zero),
        )

    def to_log(self, m: jax.Array, e: jax.Array) -> jax.Array:
        """``log(m) + e ln 2``; ``-inf`` for zero (and for numbers at the bottom of the range)."""
        positive = (m > 0) & (e > self.zero // 2)
        log = jnp.log(jnp.where(positive, m, 1.0)) + e.astype(m.dtype) * math.log(2.0)
        return jnp.where(positive, log, -jnp.inf)


#: The format for each mantissa dtype.
FORMATS = {
    jnp.dtype(jnp.float32): ExtendedRangeFormat(jnp.float32, jnp.int32, 23, 127, -(1 << 29)),
    jnp.dtype(jnp.float64): ExtendedRangeFormat(jnp.float64, jnp.int64, 52, 1023, -(1 << 61)),
}
