"""CTC's forward-backward recursions with an analytic backward pass.

Reference: A. Graves, S. Fernández, F. Gomez and J. Schmidhuber (2006), "Connectionist
Temporal Classification: Labelling Unsegmented Sequence Data with Recurrent Neural Networks",
ICML.

The recursions
--------------
With ``y_t(k) = softmax(x_t)_k`` and the target ``l = (l_1, ..., l_L)`` extended with blanks,
``l' = (blank, l_1, blank, l_2, ..., blank, l_L, blank)`` of length ``S = 2L + 1`` (states
``s = 0 .. S-1``; the labels sit at odd ``s``)::

    alpha_1(0) = y_1(blank),   alpha_1(1) = y_1(l_1),   alpha_1(s) = 0 for s >= 2
    alpha_t(s) = (alpha_{t-1}(s) + alpha_{t-1}(s-1) + skip(s) alpha_{t-1}(s-2)) * y_t(l'_s)
    skip(s)    = [s is odd and l'_s != l'_{s-2}]
    P(l | x)   = alpha_T(S-1) + alpha_T(S-2),      loss = -log P(l | x)

    beta_T(S-1) = beta_T(S-2) = 1,   beta_T(s) = 0 otherwise
    beta_t(s)  = beta_{t+1}(s) y_{t+1}(l'_s) + beta_{t+1}(s+1) y_{t+1}(l'_{s+1})
                 + skip(s+2) beta_{t+1}(s+2) y_{t+1}(l'_{s+2})

so that ``gamma_t(s) = alpha_t(s) beta_t(s) / P`` is the probability that an alignment is in
state ``s`` at frame ``t``, and the gradient with respect to the logits is the softmax minus
the occupancy of each class::

    d loss / d x_t(k) = y_t(k) - sum_{s : l'_s = k} gamma_t(s)

How the loss is computed
------------------------
The log-softmax is formed in float32 (float64 for float64 logits) as ``(x - max) -
log(sum(exp(x - max)))`` per frame, never materialised: inside the recursions, each frame's
emissions of the ``S`` states are *gathered* from the logits, never multiplied by a one-hot
matrix, and no ``(T, B, S)`` array of emissions exists. The alpha recursion runs forward over
time with :func:`jax.lax.scan`, vectorised over the batch; a :func:`jax.custom_jvp` runs the
beta recursion backwards in a second scan and forms the gradient from the alpha-beta occupancy
(softmax minus occupancy, as warp-ctc and TensorFlow do). Nothing is differentiated through a
scan.

The recursions do not work in log space: each probability is an extended-range number
``m * 2**e`` (:mod:`losses_jax._extended_range`), a float32 mantissa with an int32 exponent.
A step costs a few dozen integer and float operations per state and one ``exp``, the
emission's; probabilities down to ``2**(-2**28)`` are kept, so no path probability underflows,
and the relative precision is float32's. Zero is an exact zero (mantissa 0): float16 and
bfloat16 inputs, ``-inf`` logits and impossible alignments produce no NaN.

"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import DTypeLike

from losses_jax._extended_range import FORMATS, ExtendedRangeFormat, Pair
from losses_jax._numerics import accumulation_dtype, row_peak

__all__ = ["ctc_forward_log_probs", "ctc_nll"]


# --------------------------------------------------------------------------------------
# the forward-backward algorithm
# --------------------------------------------------------------------------------------
def _format(dtype: DTypeLike) -> ExtendedRangeFormat:
    """The float64 format for float64 logits; float32's for every other float (float8 too)."""
    return FORMATS.get(accumulation_dtype(dtype), FORMATS[jnp.dtype(jnp.float32)])


def _interleave(blanks, labels, last):
    """``[b, l0, b, l1, ..., b, l_{L-1}, last]`` on the last axis (``(B, L)``, ``(B, 1)`` in)."""
    pairs = jnp.stack([blanks, labels], axis=-1).reshape(labels.shape[0], 2 * labels.shape[1])
    return jnp.concatenate([pairs, last], axis=-1)


def _extended_labels(labels: jax.Array, blank: int) -> tuple[jax.Array, jax.Array]:
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


def _initial_carry(fmt: ExtendedRangeFormat, ext: jax.Array, start: bool) -> Pair:
    """Guarded ``(m, e)`` carries shaped (and sharded) like ``ext``: zero, or 1 at state 0."""
    guarded = jnp.pad(ext, ((0, 0), (2, 0)))  # two guard states in front
    m0 = jnp.zeros_like(guarded, dtype=fmt.float)
    e0 = jnp.full_like(guarded, fmt.zero, dtype=fmt.int)
    if start:
        m0, e0 = m0.at[:, 2].set(1.0), e0.at[:, 2].set(0)
    return m0, e0


def _normalizer(fmt: ExtendedRangeFormat, logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The log-softmax's shift and log-normaliser per frame, ``(B, T)`` each.

    ``log_softmax(x) = (x - shift) - log_sum``: subtracting the largest logit first keeps
    float32's precision at large logits (``x - logsumexp(x)`` at ``|x| ~ 1e4`` would round
    to 1e-3).
    """
    x = logits.astype(fmt.float)
    shift = row_peak(x, axis=-1, keepdims=False)
    return shift, jnp.log(jnp.sum(jnp.exp(x - shift[..., None]), axis=-1))


def _emission(fmt: ExtendedRangeFormat, x, lse, ext, t) -> Pair:
    """Frame ``t``'s emission probabilities of the states ``ext`` ``(B, S)``, extended range.

    Gathered from the logits inside the recursions: no ``(T, B, S)`` array of emissions is
    ever materialised.
    """
    x_t = lax.dynamic_index_in_dim(x, t, axis=1, keepdims=False)  # (B, K)
    shift, log_sum = (lax.dynamic_index_in_dim(v, t, axis=1, keepdims=True) for v in lse)
    gathered = jnp.take_along_axis(x_t, ext, axis=1, mode="promise_in_bounds")
    return fmt.from_log((gathered.astype(fmt.float) - shift) - log_sum)


def _update_states(carry: jax.Array, states: jax.Array) -> jax.Array:
    """The guarded carry with new states behind its (zero) guards.

    A dynamic-update-slice rather than a pad: XLA never splits an update-slice fusion over
    threads, and splitting a step as small as one recursion step costs more than it saves.
    """
    return lax.dynamic_update_slice(carry, states, (0, 2))


def _final_pair(fmt: ExtendedRangeFormat, m, e, label_lengths) -> Pair:
    """``alpha(2l) + alpha(2l - 1)`` (l = label length) from guarded alphas ``(B, S + 2)``."""
    idx = jnp.stack([2 * label_lengths + 2, 2 * label_lengths + 1], axis=1)
    ma, ea = jnp.take_along_axis(m, idx, 1), jnp.take_along_axis(e, idx, 1)
    zero_m, zero_e = jnp.zeros_like(ma[:, 0]), jnp.full_like(ea[:, 0], fmt.zero)
    return fmt.add3((ma[:, 0], ea[:, 0]), (ma[:, 1], ea[:, 1]), (zero_m, zero_e))


def _alpha_scan(
    fmt: ExtendedRangeFormat, x, lse, ext, skip, label_lengths, logit_lengths, keep_all: bool
):
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

    def record(carry, t):
        new = advance(carry[0], carry[1], t)
        return new, new

    # Without a history, frames past a sequence's length leave its alphas as they are (one
    # select per state), and the answer is read once after the loop.
    def freeze_past_length(carry, t):
        m, e = carry
        mn, en = advance(m, e, t)
        live = (t < logit_lengths)[:, None]
        return (jnp.where(live, mn, m), jnp.where(live, en, e)), None

    history = None
    if keep_all:
        _, history = lax.scan(record, (m0, e0), jnp.arange(steps))
        last = jnp.maximum(logit_lengths - 1, 0)
        m_last = jnp.take_along_axis(history[0], last[None, :, None], 0)[0]
        e_last = jnp.take_along_axis(history[1], last[None, :, None], 0)[0]
    else:
        (m_last, e_last), _ = lax.scan(freeze_past_length, (m0, e0), jnp.arange(steps))
    total = _final_pair(fmt, m_last, e_last, label_lengths)
    has_frames = logit_lengths > 0
    total = tuple(jnp.where(has_frames, v, v0) for v, v0 in zip(total, total0))
    return total, history


def _nll(fmt: ExtendedRangeFormat, logits, labels, label_lengths, logit_lengths, blank, keep_all):
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


def _beta_gamma(
    fmt: ExtendedRangeFormat, x, lse, ext, skip, history, total, label_lengths, logit_lengths
):
    """Runs the beta recursion backwards; returns the state occupancies ``(T, B, S)``.

    ``gamma[t, b, s] = alpha_t(s) * beta_t(s) / P`` is the probability that the alignment is
    in state ``s`` at frame ``t``; over ``s`` it sums to 1 on every valid frame, and it is 0 on
    padded frames. It comes out with the states in reverse order.

    The recursion runs on the states in reverse order, so that, as in the alpha recursion, the
    two neighbours of a state lie before it and the carry's guard states are in front (the
    mirror image, guards behind, compiles to much slower code). The carry holds
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


def _occupancy_per_class(gamma: jax.Array, ext: jax.Array, num_classes: int) -> jax.Array:
    """Sums the state occupancies ``(T, B, S)`` into their classes: ``(B, T, K)``.

    Per sequence, one scatter-add of whole time rows (a window of ``T`` per state) into a
    class-major ``(K, T)`` array; vmapped over the batch, so that batch sharding carries over.
    """
    steps = gamma.shape[0]

    def one(g, e):  # (T, S), (S,)
        return jnp.zeros((num_classes, steps), g.dtype).at[e].add(g.T).T

    return jax.vmap(one, in_axes=(1, 0))(gamma, ext)


@functools.partial(jax.custom_jvp, nondiff_argnums=(4,))
def ctc_nll(
    logits: jax.Array,
    labels: jax.Array,
    label_lengths: jax.Array,
    logit_lengths: jax.Array,
    blank: int,
) -> jax.Array:
    """``-log P(labels | logits)`` per sequence ``(B,)`` from logits ``(B, T, K)``, int32 labels
    ``(B, L)`` in range and lengths ``(B,)``, with the derivative of the alpha-beta occupancy.

    Examples:
        >>> logits = jnp.zeros((1, 2, 2))
        >>> labels, one = jnp.array([[1]]), jnp.array([1])
        >>> round(float(ctc_nll(logits, labels, one, jnp.array([2]), 0)[0]), 4)
        0.2877
    """
    return _compiled_nll(logits, labels, label_lengths, logit_lengths, blank)


# Compiled as one program even when called eagerly (op by op, the recursions' set-up and the
# gradient's assembly dispatch dozens of small programs); inlined under an outer jit.
@functools.partial(jax.jit, static_argnums=(4,))
def _compiled_nll(logits, labels, label_lengths, logit_lengths, blank):
    fmt = _format(logits.dtype)
    return _nll(fmt, logits, labels, label_lengths, logit_lengths, blank, keep_all=False)[0]


def ctc_forward_log_probs(
    logits: jax.Array,
    labels: jax.Array,
    label_lengths: jax.Array,
    logit_lengths: jax.Array,
    blank: int,
) -> tuple[jax.Array, jax.Array]:
    """The alpha recursion's log-probabilities per frame, in optax's layout (no derivative).

    Returns ``(logalpha_blank, logalpha_emit)``, ``(T, B, L + 1)`` and ``(T, B, L)``:
    ``logalpha_blank[t, b, n] = log alpha_t(2n)`` (the blank before label ``n``) and
    ``logalpha_emit[t, b, n] = log alpha_t(2n + 1)`` (label ``n``), as
    ``optax.ctc_loss_with_forward_probs`` returns them: frames past ``logit_lengths[b]`` repeat
    the last valid frame (the initial state, 1 at ``n = 0``, for zero frames), and the last
    frame's blank entries also hold the label before them, ``alpha(2n) + alpha(2n - 1)``, so
    that ``-logalpha_blank[-1, b, label_lengths[b]]`` is the loss. States past the target length
    run on the padding labels as they are. Zero probabilities are ``-inf`` (optax's are
    ``log_epsilon``-sized, about ``-1e5``). The logits are read through ``stop_gradient``.

    Examples:
        >>> blank, emit = ctc_forward_log_probs(
        ...     jnp.zeros((1, 2, 2)), jnp.array([[1]]), jnp.array([1]), jnp.array([2]), 0)
        >>> [round(float(v), 4) for v in jnp.exp(blank[:, 0, 1])]  # 0, then 1/4 + 2/4
        [0.0, 0.75]
    """
    fmt = _format(logits.dtype)
    logits = lax.stop_gradient(logits)
    ext, skip = _extended_labels(labels, blank)
    lse = _normalizer(fmt, logits)
    _, history = _alpha_scan(fmt, logits, lse, ext, skip, label_lengths, logit_lengths, True)
    assert history is not None  # kept with keep_all=True
    m0, e0 = _initial_carry(fmt, ext, start=True)
    # frame 0 is the start state (zero frames); frame t + 1 is the history's frame t
    m = jnp.concatenate([m0[None], history[0]], 0)[..., 2:]
    e = jnp.concatenate([e0[None], history[1]], 0)[..., 2:]
    steps = logits.shape[1]
    frame = jnp.minimum(jnp.arange(1, steps + 1)[:, None], logit_lengths[None, :])  # (T, B)
    m = jnp.take_along_axis(m, frame[..., None], 0)
    e = jnp.take_along_axis(e, frame[..., None], 0)
    log_alpha = fmt.to_log(m, e)  # (T, B, S)
    log_blank, log_emit = log_alpha[..., 0::2], log_alpha[..., 1::2]
    if steps:
        last = log_blank[-1, :, 1:]
        last = jnp.logaddexp(last, log_emit[-1]).astype(last.dtype)
        log_blank = log_blank.at[-1, :, 1:].set(last)
    return log_blank, log_emit


@functools.partial(jax.jit, static_argnums=(4,))
def _nll_and_gradient(logits, labels, label_lengths, logit_lengths, blank):
    """``(nll, d nll / d logits)``: the alpha recursion, then the beta recursion for the
    occupancy; the gradient is the softmax minus the occupancy on valid frames."""
    fmt = _format(logits.dtype)
    nll, (ext, skip, lse, history, total) = _nll(
        fmt, logits, labels, label_lengths, logit_lengths, blank, keep_all=True
    )
    batch, steps, num_classes = logits.shape
    if steps == 0:
        return nll, jnp.zeros_like(logits, dtype=fmt.float)
    gamma = _beta_gamma(fmt, logits, lse, ext, skip, history, total, label_lengths, logit_lengths)
    occupancy = _occupancy_per_class(gamma, jnp.flip(ext, axis=-1), num_classes)  # (B, T, K)
    valid = jnp.arange(steps)[None, :] < logit_lengths[:, None]
    softmax = jnp.exp((logits.astype(fmt.float) - lse[0][..., None]) - lse[1][..., None])
    gradient = jnp.where(valid[..., None], softmax, 0.0) - occupancy
    # Impossible sequences (P = 0, loss +inf) get no derivative rather than NaN.
    possible = jnp.isfinite(fmt.to_log(*total))
    return nll, jnp.where(possible[:, None, None], gradient, 0.0)


@ctc_nll.defjvp
def _ctc_nll_jvp(blank, primals, tangents):
    # Linear in the logits' tangent: JAX transposes it for reverse mode, with the gradient
    # (B, T, K) as the one residual; the beta recursion runs once, in the forward pass.
    logits, labels, label_lengths, logit_lengths = primals
    nll, gradient = _nll_and_gradient(logits, labels, label_lengths, logit_lengths, blank)
    d_logits = tangents[0].astype(gradient.dtype)
    return nll, jnp.sum(gradient * d_logits, axis=(1, 2)).astype(nll.dtype)
