"""Sequence losses: CTC (connectionist temporal classification) and its decoders.

:func:`ctc_loss` follows ``keras.ops.ctc_loss``: integer targets ``(B, L)``, logits
``(B, T, K)``, per-sequence lengths, a configurable blank (``mask_index``), and one negative
log-likelihood per sequence. :func:`ctc` and :class:`CTC` are the Keras catalogue's loss built
on it; :func:`ctc_greedy_decode` and :func:`ctc_beam_search_decode` decode like
``keras.ops.ctc_decode``.

How the loss is computed
------------------------
The log-softmax is formed in float32 (float64 for float64 logits) as ``(x - max) -
log(sum(exp(x - max)))`` per frame, never materialised: inside the recursions, each frame's
emissions of the extended label sequence (blank, y1, blank, y2, ..., blank: ``S = 2L + 1``
states) are *gathered* from the logits, never multiplied by a one-hot matrix, and no
``(T, B, S)`` array of emissions exists. The alpha recursion runs forward over time with
:func:`jax.lax.scan`, vectorised over the batch; a :func:`jax.custom_vjp` runs the beta
recursion backwards in a second scan and forms the gradient with respect to the logits from
the alpha-beta occupancy (softmax minus occupancy, as warp-ctc and TensorFlow do). Nothing is
differentiated through a scan.

The recursions do not work in log space. Each probability is an *extended-range float*: a
float32 mantissa ``m`` and a separate int32 exponent ``e``, value ``m * 2**e``. Adding three
such numbers aligns them to the largest exponent by building powers of two from bits, and one
multiply applies the emission: a step costs a few dozen integer and float operations per state
and one ``exp``, the emission's (a log-space step costs three ``exp`` and one ``log``). The
range is ``2**(±2**29)``, so no path probability underflows, and the relative precision is
float32's. (Rescaling each frame in plain float32 would be cheaper and is wrong: when a target
needs nearly every frame, the alignments that can still finish trail the others by more than
float32's range, and the loss comes out ``+inf``.)
Zero is an exact zero (mantissa 0): float16 and bfloat16 inputs, ``-inf`` logits and
impossible alignments produce no NaN.

Semantics
---------
* ``output_length[b]`` frames of sequence ``b`` are used; later frames get exactly zero gradient.
  Labels past ``target_length[b]`` are ignored.
* An alignment that needs more frames than there are (``target_length`` labels plus one blank
  between each pair of equal consecutive labels) has probability 0: the loss is ``+inf`` and
  its gradient 0; ``zero_infinity=True`` makes the loss 0 too (PyTorch's semantics). So does a
  target that needs a class whose logit is ``-inf``.
* ``target_length = 0`` gives minus the sum of the blank log-probabilities; ``output_length =
  0`` gives 0 for an empty target and ``+inf`` otherwise.
* The loss is never negative: rounding below 0 is clamped.
* Finite emission log-probabilities are floored at :data:`LOG_PROB_FLOOR` (``-1e5``, optax's
  log-zero): logit gaps beyond 1e5 (``+-1e30`` logits, say) give a finite loss that charges
  1e5 per such frame rather than the exact value. NLLs beyond ``2**29 * ln 2`` (3.7e8) are
  ``+inf``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from losses_jax import checks
from losses_jax.base import LossFunctionWrapper
from losses_jax.numerics import as_float_array, as_label_array

__all__ = [
    "CTC",
    "ctc",
    "ctc_beam_search_decode",
    "ctc_greedy_decode",
    "ctc_loss",
]


# --------------------------------------------------------------------------------------
# extended-range numbers: value = m * 2**e, m a float, e an integer
# --------------------------------------------------------------------------------------
class _Format:
    """Bit-level helpers of the extended-range format for one float dtype.

    A number is a pair ``(m, e)``: a float mantissa ``m >= 0`` (kept in ``[1, 12)`` or 0 by the
    recursions, never normalized to ``[1, 2)``, which would cost a second pass) and an integer
    exponent ``e``. Zero has ``m == 0``; its exponent is ``zero`` (``-2**28`` for float32), and
    exponents are clamped there, so that sums of three never overflow the integer type.
    """

    def __init__(self, float_dtype, int_dtype, mantissa_bits: int, bias: int, zero_exponent: int):
        self.float = jnp.dtype(float_dtype)
        self.int = jnp.dtype(int_dtype)
        self.mantissa_bits = mantissa_bits
        self.bias = bias
        self.zero = zero_exponent

    def to_int(self, x):
        return lax.bitcast_convert_type(x, self.int)

    def to_float(self, x):
        return lax.bitcast_convert_type(x, self.float)

    def pow2(self, d):
        """``2.0**d`` for integer ``d``: 0 below the normal range, clamped at the top."""
        return self.to_float(jnp.clip(d + self.bias, 0, 2 * self.bias) << self.mantissa_bits)

    def exponent(self, m, e):
        """The exponent of ``m * 2**e`` as a whole, plus ``bias``: ``e`` + the exponent bits of ``m``."""
        return e + (self.to_int(m) >> self.mantissa_bits)

    def add3(self, a, b, c):
        """``a + b + c`` for pairs ``(m, e)`` with ``m`` in [1, 12) or 0: a pair with ``m`` in [1, 6).

        The terms are aligned to the largest true exponent ``E`` (so the largest term keeps a
        mantissa in [1, 2)) by multiplying with powers of two built from bits; a term more than
        126 binades below ``E`` contributes 0, a relative error below 2**-120. (Few operations
        per element matter beyond speed: XLA splits a loop fusion that it deems compute-bound
        over threads, which costs more than it saves at the sizes of one step.)
        """
        big = jnp.maximum(jnp.maximum(self.exponent(*a), self.exponent(*b)), self.exponent(*c))
        # With E = big - bias, 2**(e - E) is the float whose exponent bits are
        # e - E + bias = e - base (clamped at 0, i.e. zero, below the range).
        base = big - 2 * self.bias

        def aligned(m, e):
            return m * self.to_float(jnp.maximum(e - base, 0) << self.mantissa_bits)

        return aligned(*a) + aligned(*b) + aligned(*c), big - self.bias

    def times(self, pair, em, ee):
        """``pair * (em, ee)``, with the exponent clamped at ``zero``."""
        return pair[0] * em, jnp.maximum(pair[1] + ee, self.zero)

    def from_log(self, logp):
        """Extended-range ``exp(logp)`` for ``logp <= 0``; ``-inf`` gives exact zero.

        Finite log-probabilities are floored at :data:`LOG_PROB_FLOOR`.
        """
        finite = logp > -jnp.inf
        logp = jnp.where(finite, jnp.maximum(logp, LOG_PROB_FLOOR), 0.0)
        e = jnp.floor(logp * (1.0 / math.log(2.0)))
        # Cody-Waite: ln 2 = hi + lo with hi exact in 16 bits, so e * hi is exact for small e.
        m = jnp.exp((logp - e * _LN2_HI) - e * _LN2_LO)
        return (
            jnp.where(finite, m, 0.0).astype(self.float),
            jnp.where(finite, e.astype(self.int), self.zero),
        )

    def to_log(self, m, e):
        """``log(m * 2**e)``; ``-inf`` for zero (and for numbers at the bottom of the range)."""
        positive = (m > 0) & (e > self.zero // 2)
        log = jnp.log(jnp.where(positive, m, 1.0)) + e.astype(m.dtype) * math.log(2.0)
        return jnp.where(positive, log, -jnp.inf)


#: Finite emission log-probabilities are floored here (a frame that must emit a class less likely
#: than this costs 1e5 nats, as optax's log-zero). It keeps the integer exponents of sums over
#: thousands of frames in range; realistic logits (differences up to 1e4) never reach it.
LOG_PROB_FLOOR = -1e5

_LN2_HI = 0.693145751953125  # ln 2 rounded to 16 significant bits
_LN2_LO = 1.428606765330187e-06  # ln 2 - _LN2_HI

_FORMATS = {
    jnp.dtype(jnp.float32): _Format(jnp.float32, jnp.int32, 23, 127, -(1 << 29)),
    jnp.dtype(jnp.float64): _Format(jnp.float64, jnp.int64, 52, 1023, -(1 << 61)),
}


# --------------------------------------------------------------------------------------
# the forward-backward algorithm
# --------------------------------------------------------------------------------------
def _interleave(blanks, labels, last):
    """``[b, l0, b, l1, ..., b, l_{L-1}, last]`` along the last axis (shapes ``(B, L)``, ``(B, 1)``)."""
    pairs = jnp.stack([blanks, labels], axis=-1).reshape(labels.shape[0], -1)
    return jnp.concatenate([pairs, last], axis=-1)


def _extended_labels(labels, blank: int):
    """``(ext, skip)``: blank-interleaved labels ``(B, 2L+1)`` and where the s-2 jump is allowed.

    Built from ``labels`` alone (``*_like``), so that a batch-sharded input keeps every
    batch-shaped array batch-sharded, also on a mesh with explicit axes.
    """
    blanks = jnp.full_like(labels, blank)
    ext = _interleave(blanks, labels, blanks[:, :1])
    differs = jnp.concatenate(
        [jnp.zeros_like(labels[:, :1], bool), labels[:, 1:] != labels[:, :-1]], 1
    )
    skip = _interleave(jnp.zeros_like(differs), differs, differs[:, :1] & False)
    return ext, skip


def _initial_carry(fmt: _Format, ext, start: bool):
    """Guarded ``(m, e)`` carries shaped (and sharded) like ``ext``: zero, or 1 at state 0."""
    guarded = jnp.pad(ext, ((0, 0), (2, 0)))  # two guard states in front
    m0 = jnp.zeros_like(guarded, dtype=fmt.float)
    e0 = jnp.full_like(guarded, fmt.zero, dtype=fmt.int)
    if start:
        m0, e0 = m0.at[:, 2].set(1.0), e0.at[:, 2].set(0)
    return m0, e0


def _normalizer(fmt: _Format, logits):
    """The log-softmax's shift and log-normaliser per frame, ``(B, T)`` each.

    ``log_softmax(x) = (x - shift) - log_sum``: subtracting the largest logit first keeps
    float32's precision at large logits (``x - logsumexp(x)`` at ``|x| ~ 1e4`` would round
    to 1e-3).
    """
    x = logits.astype(fmt.float)
    shift = jnp.max(x, axis=-1)
    shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
    return shift, jnp.log(jnp.sum(jnp.exp(x - shift[..., None]), axis=-1))


def _emission(fmt: _Format, x, lse, ext, t):
    """Frame ``t``'s emission probabilities of the states ``ext`` ``(B, S)``, extended range.

    Gathered from the logits inside the recursions: no ``(T, B, S)`` array of emissions is
    ever materialised (measured on CPU, building one made the forward pass slower at both
    benchmark sizes, and the value-and-gradient slower at B=16, T=500).
    """
    x_t = lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False)  # (B, K)
    shift, log_sum = (lax.dynamic_index_in_dim(v, t, axis=1, keepdims=True) for v in lse)
    gathered = jnp.take_along_axis(x_t, ext, axis=1, mode="promise_in_bounds")
    return fmt.from_log((gathered.astype(fmt.float) - shift) - log_sum)


def _update_states(carry, states):
    """The guarded carry with new states behind its (zero) guards.

    Written as a dynamic-update-slice rather than a pad: XLA never splits an update-slice
    fusion over threads, while it splits a step's fusion (a few microseconds of work) in two,
    whose synchronisation costs more than the step, all the more on a loaded machine.
    """
    return lax.dynamic_update_slice(carry, states, (0, 2))


def _final_pair(fmt: _Format, m, e, label_lengths):
    """``alpha(2l) + alpha(2l - 1)`` (l = label length) from guarded alphas ``(B, S + 2)``."""
    idx = jnp.stack([2 * label_lengths + 2, 2 * label_lengths + 1], axis=1)
    ma, ea = jnp.take_along_axis(m, idx, 1), jnp.take_along_axis(e, idx, 1)
    zero_m, zero_e = jnp.zeros_like(ma[:, 0]), jnp.full_like(ea[:, 0], fmt.zero)
    return fmt.add3((ma[:, 0], ea[:, 0]), (ma[:, 1], ea[:, 1]), (zero_m, zero_e))


def _alpha_scan(fmt: _Format, x, lse, ext, skip, label_lengths, logit_lengths, keep_all: bool):
    """Runs the alpha recursion; returns the sequence probability (and every step's alphas).

    The carry ``(B, S + 2)`` has two guard states in front (always zero), so the s-1 and s-2
    predecessors are plain slices; a virtual start state (value 1 at s = 0 before the first
    frame) makes every frame the same step. The probability is read at the sequence's last
    frame: from the history when it is kept (frames past the length run on padding), else
    from the final carry (frames past the length leave it unchanged).
    """
    steps = x.shape[1]
    zero_e = jnp.asarray(fmt.zero, fmt.int)
    m0, e0 = _initial_carry(fmt, ext, start=True)
    total0 = _final_pair(fmt, m0, e0, label_lengths)  # the answer for zero frames
    if steps == 0:
        return total0, (m0[None, :0], e0[None, :0])

    def advance(m, e, t):
        pair = fmt.add3(
            (m[:, 2:], e[:, 2:]),
            (m[:, 1:-1], e[:, 1:-1]),
            (m[:, :-2], jnp.where(skip, e[:, :-2], zero_e)),
        )
        mn, en = fmt.times(pair, *_emission(fmt, x, lse, ext, t))
        return _update_states(m, mn), _update_states(e, en)

    if keep_all:

        def step(carry, t):
            new = advance(*carry, t)
            return new, new

        _, history = lax.scan(step, (m0, e0), jnp.arange(steps))
        last = jnp.maximum(logit_lengths - 1, 0)
        m_last = jnp.take_along_axis(history[0], last[None, :, None], 0)[0]
        e_last = jnp.take_along_axis(history[1], last[None, :, None], 0)[0]
    else:
        # Without a history, frames past a sequence's length leave its alphas as they are
        # (one select per state), and the answer is read once after the loop.
        def step(carry, t):
            m, e = carry
            mn, en = advance(m, e, t)
            live = (t < logit_lengths)[:, None]
            return (jnp.where(live, mn, m), jnp.where(live, en, e)), None

        (m_last, e_last), _ = lax.scan(step, (m0, e0), jnp.arange(steps))
    total = _final_pair(fmt, m_last, e_last, label_lengths)
    has_frames = logit_lengths > 0
    total = tuple(jnp.where(has_frames, v, v0) for v, v0 in zip(total, total0))
    return total, history if keep_all else None


def _nll(fmt, logits, labels, label_lengths, logit_lengths, blank, keep_all):
    ext, skip = _extended_labels(labels, blank)
    lse = _normalizer(fmt, logits)  # the log-softmax's (shift, log_sum), (B, T) each
    total, history = _alpha_scan(
        fmt, logits, lse, ext, skip, label_lengths, logit_lengths, keep_all
    )
    nll = -fmt.to_log(*total)
    # NaN logits give a NaN loss rather than a silently wrong one.
    valid = jnp.arange(logits.shape[1])[None, :] < logit_lengths[:, None]
    nll = nll + jnp.sum(jnp.where(valid, lse[1], 0.0), axis=1) * 0.0
    return nll, (ext, skip, lse, history, total)


def _beta_gamma(fmt: _Format, x, lse, ext, skip, history, total, label_lengths, logit_lengths):
    """Runs the beta recursion backwards; returns the state occupancies ``(T, B, S)``.

    ``gamma[t, b, s] = alpha_t(s) * beta_t(s) / P`` is the probability that the alignment is
    in state ``s`` at frame ``t``; over ``s`` it sums to 1 on every valid frame, and it is 0 on
    padded frames. It comes out with the states in reverse order.

    The recursion runs on the states in reverse order, so that, as in the alpha recursion, the
    two neighbours of a state lie before it and the carry's guard states are in front (XLA
    compiles the mirror image, guards behind, ten times slower). The carry holds
    ``beta_{t+1} * emission_{t+1}``; ``beta_t`` starts at the sequence's last frame.
    """
    steps = x.shape[1]
    states = ext.shape[1]
    alpha_m, alpha_e = history  # alpha_t with the guards, (T, B, S + 2)
    p_m, p_e = total
    flip = functools.partial(jnp.flip, axis=-1)
    ext_reversed = flip(ext)
    # the jump s+2 -> s is allowed where skip[s + 2]; reversed, it comes from two states before
    allowed = flip(jnp.pad(skip[:, 2:], ((0, 0), (0, 2))))
    zero_e = jnp.asarray(fmt.zero, fmt.int)
    sidx = jnp.arange(states)[None, :]
    last = states - 1 - 2 * label_lengths[:, None]  # the final states, reversed
    is_final = (sidx == last) | (sidx == last + 1)
    init_m = jnp.where(is_final, 1.0, 0.0).astype(fmt.float)
    init_e = jnp.where(is_final, 0, fmt.zero).astype(fmt.int)
    possible = jnp.isfinite(fmt.to_log(p_m, p_e))
    inv_p = jnp.where(possible, 1.0 / jnp.where(possible, p_m, 1.0), 0.0)[:, None]
    m0, e0 = _initial_carry(fmt, ext, start=False)

    def step(carry, xs):
        m, e = carry
        am_t, ae_t, t = xs
        r, big = fmt.add3(
            (m[:, 2:], e[:, 2:]),
            (m[:, 1:-1], e[:, 1:-1]),
            (m[:, :-2], jnp.where(allowed, e[:, :-2], zero_e)),
        )
        start = (t == logit_lengths - 1)[:, None]
        r = jnp.where(start, init_m, r)
        big = jnp.where(start, init_e, big)
        gamma = flip(am_t[:, 2:]) * r * inv_p * fmt.pow2(flip(ae_t[:, 2:]) + big - p_e[:, None])
        mn, en = fmt.times((r, big), *_emission(fmt, x, lse, ext_reversed, t))
        return (_update_states(m, mn), _update_states(e, en)), gamma

    xs = (alpha_m, alpha_e, jnp.arange(steps))
    _, gamma = lax.scan(step, (m0, e0), xs, reverse=True)
    return gamma


def _occupancy_per_class(gamma, ext, num_classes: int):
    """Sums the state occupancies ``(T, B, S)`` into their classes: ``(B, T, K)``.

    Per sequence, one scatter-add of whole time rows (a window of ``T`` per state) into a
    class-major ``(K, T)`` array; vmapped over the batch, so that batch sharding carries over.
    """
    steps = gamma.shape[0]

    def one(g, e):  # (T, S), (S,)
        return jnp.zeros((num_classes, steps), g.dtype).at[e].add(g.T).T

    return jax.vmap(one, in_axes=(1, 0))(gamma, ext)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _ctc_nll(logits, labels, label_lengths, logit_lengths, blank):
    fmt = _FORMATS[jnp.dtype(_compute_dtype(logits.dtype))]
    return _nll(fmt, logits, labels, label_lengths, logit_lengths, blank, keep_all=False)[0]


def _ctc_nll_fwd(logits, labels, label_lengths, logit_lengths, blank):
    fmt = _FORMATS[jnp.dtype(_compute_dtype(logits.dtype))]
    nll, (ext, skip, lse, history, total) = _nll(
        fmt, logits, labels, label_lengths, logit_lengths, blank, keep_all=True
    )
    residuals = (logits, label_lengths, logit_lengths, ext, skip, lse, history, total)
    return nll, residuals


def _ctc_nll_bwd(blank, residuals, cotangent):
    logits, label_lengths, logit_lengths, ext, skip, lse, history, total = residuals
    fmt = _FORMATS[jnp.dtype(_compute_dtype(logits.dtype))]
    batch, steps, num_classes = logits.shape
    if steps == 0:
        return jnp.zeros_like(logits), None, None, None
    gamma = _beta_gamma(fmt, logits, lse, ext, skip, history, total, label_lengths, logit_lengths)
    occupancy = _occupancy_per_class(gamma, jnp.flip(ext, axis=-1), num_classes)  # (B, T, K)
    valid = jnp.arange(steps)[None, :] < logit_lengths[:, None]
    # Impossible sequences (P = 0, loss +inf) get no gradient rather than NaN.
    possible = jnp.isfinite(fmt.to_log(*total))
    scale = jnp.where(possible, cotangent, 0.0).astype(fmt.float)
    softmax = jnp.exp((logits.astype(fmt.float) - lse[0][..., None]) - lse[1][..., None])
    grad = (jnp.where(valid[..., None], softmax, 0.0) - occupancy) * scale[:, None, None]
    return grad.astype(logits.dtype), None, None, None


_ctc_nll.defvjp(_ctc_nll_fwd, _ctc_nll_bwd)


def _compute_dtype(dtype):
    """float64 for float64 logits, else float32 (float16/bfloat16 accumulate in float32)."""
    return jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32


def _blank_index(mask_index, num_classes: int, name: str = "mask_index") -> int:
    """``mask_index`` as a class index in ``[0, K)`` (negative counts from the end; None: K-1)."""
    if mask_index is None:
        return num_classes - 1
    if isinstance(mask_index, bool) or not isinstance(mask_index, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int; received {mask_index!r}.")
    if not -num_classes <= mask_index < num_classes:
        raise ValueError(f"`{name}`={mask_index} is not a class index for {num_classes} classes.")
    return int(mask_index) % num_classes


def _check_rank(x, rank: int, name: str, expected: str):
    if x.ndim != rank:
        raise ValueError(f"`{name}` must have shape {expected}; received shape {tuple(x.shape)}.")


def _lengths(lengths, batch: int, maximum: int, name: str):
    lengths = jnp.asarray(lengths)
    if lengths.ndim == 0:
        lengths = jnp.broadcast_to(lengths, (batch,))
    if lengths.shape != (batch,):
        raise ValueError(
            f"`{name}` must have shape ({batch},) (one length per sequence); received shape "
            f"{tuple(lengths.shape)}."
        )
    if jnp.issubdtype(lengths.dtype, jnp.floating):
        lengths = jnp.round(lengths)
    lengths = checks.check_nonnegative(lengths, name)
    return jnp.clip(lengths.astype(jnp.int32), 0, maximum)


def ctc_loss(
    target,
    output,
    target_length,
    output_length,
    mask_index=0,
    *,
    zero_infinity: bool = False,
) -> jax.Array:
    """CTC negative log-likelihood per sequence, with ``keras.ops.ctc_loss``'s signature.

    Args:
        target: ``(B, L)`` integer labels; entries past ``target_length`` are ignored.
        output: ``(B, T, K)`` logits (the log-softmax is taken inside, in float32).
        target_length: ``(B,)`` number of labels of each target (clipped to ``[0, L]``).
        output_length: ``(B,)`` number of frames of each output (clipped to ``[0, T]``).
        mask_index: the blank class, any of ``0 .. K-1`` (negative counts from the end).
        zero_infinity: give impossible alignments a loss of 0 instead of ``+inf``, as
            PyTorch's option does; their gradient is 0 either way.

    Returns:
        ``(B,)`` losses, never negative; float32 (float64 for float64 logits).

    Examples:
        >>> logits = jnp.zeros((1, 2, 2))  # two frames, classes {blank, 1}, uniform
        >>> round(float(ctc_loss(jnp.array([[1]]), logits, [1], [2])[0]), 4)  # -log(3/4)
        0.2877
        >>> float(ctc_loss(jnp.array([[1, 1]]), logits, [2], [2])[0])  # needs 3 frames
        inf
    """
    output = as_float_array(output, "output")
    target = as_label_array(target, "target")
    _check_rank(output, 3, "output", "(batch, time, num_classes)")
    _check_rank(target, 2, "target", "(batch, max_label_length)")
    batch, steps, num_classes = output.shape
    if target.shape[0] != batch:
        raise ValueError(
            f"`target` has {target.shape[0]} sequences but `output` has {batch}: shapes "
            f"{tuple(target.shape)} and {tuple(output.shape)}."
        )
    blank = _blank_index(mask_index, num_classes)
    if jnp.issubdtype(target.dtype, jnp.floating):
        target = jnp.round(target)
    target = target.astype(jnp.int32)
    target = checks.check_labels_in_range(target, num_classes, "target")
    target = jnp.clip(target, 0, num_classes - 1)
    target_length = _lengths(target_length, batch, target.shape[1], "target_length")
    output_length = _lengths(output_length, batch, steps, "output_length")
    nll = jnp.maximum(_ctc_nll(output, target, target_length, output_length, blank), 0.0)
    if zero_infinity:
        nll = jnp.where(jnp.isinf(nll), 0.0, nll)
    return nll


def _compact_labels(labels, blank: int):
    """Moves the labels (entries that are not ``blank`` and not negative) to the front, in order.

    Returns ``(labels, lengths)``; the tail is filled with ``blank``.
    """
    keep = (labels != blank) & (labels >= 0)
    order = jnp.argsort(~keep, axis=-1, stable=True)
    labels = jnp.take_along_axis(jnp.where(keep, labels, blank), order, axis=-1)
    return labels, jnp.sum(keep, axis=-1).astype(jnp.int32)


def ctc(
    y_true,
    y_pred,
    mask_index=0,
    zero_infinity: bool = False,
    normalize_by_target_length: bool = False,
) -> jax.Array:
    """CTC loss per sequence in Keras's ``keras.losses.ctc`` form: every frame is used.

    ``y_true`` is padded with the blank (``mask_index``, 0 by default, as in Keras): the
    target of each sequence is its entries that are not the blank (nor negative), in order.
    For right-padded labels this is exactly Keras's number (Keras takes the first
    ``count(y_true != 0)`` entries, so a blank inside a sequence gives Keras a different,
    ill-defined target).

    Args:
        y_true: ``(B, L)`` integer labels padded with ``mask_index``.
        y_pred: ``(B, T, K)`` logits.
        mask_index: the blank class (negative counts from the end).
        zero_infinity: impossible alignments give 0 instead of ``+inf``.
        normalize_by_target_length: divide each loss by its target length (at least 1), as
            PyTorch's ``reduction="mean"`` does before averaging.

    Returns:
        ``(B,)`` losses.

    Examples:
        >>> logits = jnp.zeros((1, 2, 2))
        >>> round(float(ctc(jnp.array([[1, 0]]), logits)[0]), 4)
        0.2877
    """
    y_true = as_label_array(y_true, "y_true")
    y_pred = as_float_array(y_pred, "y_pred")
    _check_rank(y_true, 2, "y_true", "(batch_size, max_length)")
    _check_rank(y_pred, 3, "y_pred", "(batch_size, max_length, num_classes)")
    blank = _blank_index(mask_index, y_pred.shape[-1])
    if jnp.issubdtype(y_true.dtype, jnp.floating):
        y_true = jnp.round(y_true)
    labels, label_lengths = _compact_labels(y_true.astype(jnp.int32), blank)
    frames = jnp.full_like(label_lengths, y_pred.shape[1])
    loss = ctc_loss(labels, y_pred, label_lengths, frames, blank, zero_infinity=zero_infinity)
    if normalize_by_target_length:
        loss = loss / jnp.maximum(label_lengths, 1).astype(loss.dtype)
    return loss


class CTC(LossFunctionWrapper):
    """CTC (connectionist temporal classification) loss, Keras's ``keras.losses.CTC``.

    ``loss(y_true, y_pred)`` with ``y_true`` ``(B, L)`` integer labels padded with the blank
    and ``y_pred`` ``(B, T, K)`` logits; see :func:`ctc`. For per-sequence lengths call
    :func:`ctc_loss` and reduce yourself.

    Args:
        mask_index: the blank class (default 0, as in Keras).
        zero_infinity: impossible alignments give 0 instead of ``+inf`` (PyTorch's option).
        normalize_by_target_length: divide each sequence's loss by its target length before
            the reduction; with the default reduction this is PyTorch's ``reduction="mean"``.
        reduction, name, dtype: as for every loss.

    Examples:
        >>> loss = CTC()
        >>> round(float(loss(jnp.array([[1, 0]]), jnp.zeros((1, 2, 2)))), 4)
        0.2877
        >>> CTC.from_config(CTC(zero_infinity=True).get_config()) == CTC(zero_infinity=True)
        True
    """

    def __init__(
        self,
        mask_index=0,
        zero_infinity: bool = False,
        normalize_by_target_length: bool = False,
        reduction="sum_over_batch_size",
        name="ctc",
        dtype=None,
    ):
        if not isinstance(mask_index, (int, np.integer)) or isinstance(mask_index, bool):
            raise TypeError(f"`mask_index` must be an int; received {mask_index!r}.")
        super().__init__(
            ctc,
            reduction=reduction,
            name=name,
            dtype=dtype,
            mask_index=int(mask_index),
            zero_infinity=bool(zero_infinity),
            normalize_by_target_length=bool(normalize_by_target_length),
        )

    def call(self, y_true, y_pred):
        # No rank alignment: labels (B, L) and logits (B, T, K) differ in rank by design.
        return self.fn(y_true, y_pred, **self._fn_kwargs)


# --------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------
def _compact_paths(classes, keep):
    """Moves the kept entries of each row of ``classes`` to the front; pads with -1."""
    steps = classes.shape[-1]
    position = jnp.cumsum(keep, axis=-1) - 1
    position = jnp.where(keep, position, steps)  # out of range: dropped
    rows = jnp.broadcast_to(jnp.arange(classes.shape[0])[:, None], classes.shape)
    out = jnp.full(classes.shape, -1, jnp.int32)
    return out.at[rows, position].set(classes.astype(jnp.int32), mode="drop")


def _decode_inputs(logits, lengths, mask_index):
    logits = as_float_array(logits, "logits")
    _check_rank(logits, 3, "logits", "(batch, time, num_classes)")
    batch, steps, num_classes = logits.shape
    blank = _blank_index(mask_index, num_classes)
    lengths = _lengths(lengths, batch, steps, "lengths")
    logp = jax.nn.log_softmax(logits.astype(_compute_dtype(logits.dtype)), axis=-1)
    return logp, lengths, blank


def ctc_greedy_decode(logits, lengths, merge_repeated: bool = True, mask_index=0):
    """Best-path decoding: the most likely class per frame, repeats merged, blanks removed.

    Args:
        logits: ``(B, T, K)`` logits (or log-probabilities).
        lengths: ``(B,)`` number of valid frames of each sequence.
        merge_repeated: merge runs of the same class (as CTC does) before removing blanks.
        mask_index: the blank class (None: the last class).

    Returns:
        ``(decoded, log_probs)`` like ``keras.ops.ctc_decode``: ``decoded`` ``(1, B, T)``
        int32 labels padded with -1 and ``log_probs`` ``(B, 1)``, the log-probability of the
        best path (the sum over valid frames of the largest log-softmax). Keras returns minus
        the sum of the largest raw inputs there instead, a score that is not a probability.

    Examples:
        >>> logits = jnp.log(jnp.array([[[.1, .9], [.2, .8], [.9, .1], [.3, .7]]]))
        >>> decoded, log_probs = ctc_greedy_decode(logits, [4])
        >>> decoded[0].tolist(), round(float(log_probs[0, 0]), 4)
        ([[1, 1, -1, -1]], -0.7905)
    """
    logp, lengths, blank = _decode_inputs(logits, lengths, mask_index)
    steps = logp.shape[1]
    valid = jnp.arange(steps)[None, :] < lengths[:, None]
    best = jnp.argmax(logp, axis=-1)
    score = jnp.sum(jnp.where(valid, jnp.max(logp, axis=-1), 0.0), axis=1)
    best = jnp.where(valid, best, blank)
    keep = valid & (best != blank)
    if merge_repeated:
        repeat = jnp.pad(best[:, 1:] == best[:, :-1], ((0, 0), (1, 0)))
        keep = keep & ~repeat
    return _compact_paths(best, keep)[None], score[:, None]


def ctc_beam_search_decode(
    logits, lengths, beam_width: int = 100, top_paths: int = 1, mask_index=0
):
    """Prefix beam search: the most likely label sequences, summed over their alignments.

    Each of the ``beam_width`` prefixes kept after a frame carries the probability of all
    alignments that produce it, split into those ending in a blank and in a label; a prefix
    reached in two ways (extended by a label, or already in the beam) is merged. With a beam
    as wide as the number of possible prefixes the search is exact. jit-able: fixed shapes,
    back-pointers instead of per-step copies of the prefixes.

    Args:
        logits: ``(B, T, K)`` logits (or log-probabilities).
        lengths: ``(B,)`` number of valid frames of each sequence.
        beam_width: prefixes kept per frame.
        top_paths: how many of the best prefixes to return (at most ``beam_width``).
        mask_index: the blank class (None: the last class).

    Returns:
        ``(decoded, log_probs)`` like ``keras.ops.ctc_decode``: ``decoded`` ``(top_paths, B,
        T)`` int32 labels padded with -1, best first, and ``log_probs`` ``(B, top_paths)``
        (``-inf`` where fewer prefixes exist).

    Examples:
        >>> logits = jnp.log(jnp.array([[[.4, .6], [.4, .6]]]))  # blank 0, label 1
        >>> decoded, log_probs = ctc_beam_search_decode(logits, [2], beam_width=4, top_paths=2)
        >>> decoded[:, 0].tolist(), [round(float(p), 2) for p in jnp.exp(log_probs[0])]
        ([[1, -1], [-1, -1]], [0.84, 0.16])
    """
    for value, name in ((beam_width, "beam_width"), (top_paths, "top_paths")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; received {value!r}.")
    if top_paths > beam_width:
        raise ValueError(f"`top_paths`={top_paths} must not exceed `beam_width`={beam_width}.")
    logp, lengths, blank = _decode_inputs(logits, lengths, mask_index)
    decode = functools.partial(_beam_search_one, beam_width=int(beam_width), blank=blank)
    scores, parents, appended = jax.vmap(decode)(logp, lengths)  # (B, W), (B, T, W) twice
    top_scores, top = lax.top_k(scores, int(top_paths))  # (B, P), best first
    paths = jax.vmap(_backtrack)(parents, appended, top)  # (B, P, T)
    paths = jax.vmap(lambda p: _compact_paths(p, p >= 0))(paths)
    return jnp.swapaxes(paths, 0, 1), top_scores


_HASH_MULTIPLIERS = (0x01000193, 0x5BD1E995)  # FNV and MurmurHash2 primes (mod 2**32)


def _beam_search_one(logp, length, *, beam_width: int, blank: int):
    """Prefix beam search over one sequence ``(T, K)``.

    Returns the final beam's scores ``(W,)`` and, per frame, each beam's parent beam and the
    label it appended (-1: none), ``(T, W)`` each, for :func:`_backtrack`.
    """
    steps, num_classes = logp.shape
    width = beam_width
    neg = jnp.asarray(-jnp.inf, logp.dtype)
    classes = jnp.arange(num_classes)
    # beam state: log P(prefix, ends in blank), log P(prefix, ends in label), last label,
    # and two 32-bit hashes of the prefix and of the prefix without its last label
    p_blank = jnp.full((width,), neg).at[0].set(0.0)
    p_label = jnp.full((width,), neg)
    last = jnp.full((width,), -1, jnp.int32)
    hashes = jnp.zeros((2, width), jnp.uint32)
    parent_hashes = jnp.zeros((2, width), jnp.uint32)
    multipliers = jnp.asarray(_HASH_MULTIPLIERS, jnp.uint32)[:, None, None]

    def step(state, xs):
        p_blank, p_label, last, hashes, parent_hashes = state
        lp, t = xs
        live = p_blank > -jnp.inf
        live = live | (p_label > -jnp.inf)
        total = jnp.logaddexp(p_blank, p_label)
        # the same prefix: through a blank, or repeating its last label
        same_blank = total + lp[blank]
        same_label = p_label + jnp.where(last >= 0, lp[jnp.maximum(last, 0)], neg)
        # extensions by label c: from a blank ending only when c repeats the last label
        source = jnp.where(classes[None, :] == last[:, None], p_blank[:, None], total[:, None])
        extend = source + lp[None, :]
        extend = jnp.where((classes[None, :] == blank) | ~live[:, None], neg, extend)  # (W, K)
        ext_hashes = hashes[:, :, None] * multipliers + (classes + 1).astype(jnp.uint32)
        # an extension equal to a prefix already in the beam (parent hash and last label
        # match) is merged into it
        match = (parent_hashes[:, :, None] == hashes[:, None, :]).all(axis=0)  # (W', W)
        match = match & live[:, None] & live[None, :] & (last[:, None] >= 0)
        has_parent = match.any(axis=1)
        parent = jnp.argmax(match, axis=1)
        merged = jnp.where(has_parent, extend[parent, jnp.maximum(last, 0)], neg)
        same_label = jnp.logaddexp(same_label, merged)
        merged_away = jnp.zeros(extend.shape, bool).at[parent, jnp.maximum(last, 0)].max(has_parent)
        extend = jnp.where(merged_away, neg, extend)
        # candidates: W same prefixes then W*K extensions; keep the best W
        cand_blank = jnp.concatenate([same_blank, jnp.full((width * num_classes,), neg)])
        cand_label = jnp.concatenate([same_label, extend.reshape(-1)])
        cand_total = jnp.logaddexp(cand_blank, cand_label)
        _, best = lax.top_k(cand_total, width)
        is_ext = best >= width
        src = jnp.where(is_ext, (best - width) // num_classes, best)
        label = jnp.where(is_ext, (best - width) % num_classes, -1)
        new_hashes = jnp.where(
            is_ext[None], ext_hashes.reshape(2, -1)[:, jnp.maximum(best - width, 0)], hashes[:, src]
        )
        new_parent_hashes = jnp.where(is_ext[None], hashes[:, src], parent_hashes[:, src])
        new = (
            cand_blank[best],
            cand_label[best],
            jnp.where(is_ext, label, last[src]).astype(jnp.int32),
            new_hashes,
            new_parent_hashes,
        )
        # frames past the length change nothing
        active = t < length
        new = jax.tree_util.tree_map(lambda a, b: jnp.where(active, a, b), new, state)
        src = jnp.where(active, src, jnp.arange(width))
        label = jnp.where(active, label, -1)
        return new, (src.astype(jnp.int32), label.astype(jnp.int32))

    state = (p_blank, p_label, last, hashes, parent_hashes)
    state, (parents, appended) = lax.scan(step, state, (logp, jnp.arange(steps)))
    scores = jnp.logaddexp(state[0], state[1])
    return scores, parents, appended


def _backtrack(parents, appended, beams):
    """Labels of the prefixes ``beams`` ``(P,)`` from per-frame back-pointers: ``(P, T)``."""

    def step(beam, xs):
        parent, label = xs
        return parent[beam], label[beam]

    _, labels = lax.scan(step, beams, (parents, appended), reverse=True)
    return labels.T  # in time order, -1 where a frame appended nothing
