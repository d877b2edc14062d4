"""CTC decoding: best-path (greedy) and prefix beam search, like ``keras.ops.ctc_decode``.

Both take logits ``(B, T, K)`` and per-sequence frame counts ``(B,)``, form the log-softmax
``log y_t(k)`` in float32 (float64 for float64 logits), and return ``(decoded, log_probs)``:
``decoded`` ``(P, B, T)`` int32 labels padded with -1, best first, and ``log_probs``
``(B, P)``. A path ``pi`` (one class per frame) collapses to a labeling ``B(pi)`` by merging
repeats and then removing blanks (Graves, Fernández, Gomez & Schmidhuber (2006),
"Connectionist Temporal Classification: Labelling Unsegmented Sequence Data with Recurrent
Neural Networks", ICML).

* :func:`ctc_greedy_decode`: ``B(pi*)`` with ``pi*_t = argmax_k y_t(k)``, the most likely
  path; its score is ``sum_t max_k log y_t(k)``.
* :func:`ctc_beam_search_decode`: the most likely labelings ``l``, each scored by
  ``P(l | x) = sum_{pi : B(pi) = l} prod_t y_t(pi_t)``, searched over prefixes (Hannun et al.
  (2014), "First-Pass Large Vocabulary Continuous Speech Recognition using Bi-Directional
  Recurrent DNNs", arXiv:1408.2873).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from losses_jax._numerics import accumulation_dtype, log_softmax
from losses_jax._validation import as_float_array, check_bool, check_int, check_rank
from losses_jax.losses.sequence import blank_index, sequence_lengths

__all__ = ["ctc_beam_search_decode", "ctc_greedy_decode"]


def _compact_paths(classes: jax.Array, keep: jax.Array) -> jax.Array:
    """Moves the kept entries of each row of ``classes`` to the front; pads with -1."""
    steps = classes.shape[-1]
    position = jnp.cumsum(keep, axis=-1) - 1
    position = jnp.where(keep, position, steps)  # out of range: dropped
    rows = jnp.broadcast_to(jnp.arange(classes.shape[0])[:, None], classes.shape)
    out = jnp.full(classes.shape, -1, jnp.int32)
    return out.at[rows, position].set(classes.astype(jnp.int32), mode="drop")


def _decode_inputs(
    logits: ArrayLike, lengths: ArrayLike, mask_index: int | None
) -> tuple[jax.Array, jax.Array, int]:
    """``(log_softmax(logits), lengths, blank)``, checked, in the accumulation dtype."""
    logits = as_float_array(logits, "logits")
    check_rank(logits, 3, "logits", "(batch, time, num_classes)")
    batch, steps, num_classes = logits.shape
    blank = blank_index(mask_index, num_classes)
    lengths = sequence_lengths(lengths, batch, steps, "lengths")
    logp = log_softmax(logits.astype(accumulation_dtype(logits.dtype)), axis=-1)
    return logp, lengths, blank


def ctc_greedy_decode(
    logits: ArrayLike,
    lengths: ArrayLike,
    merge_repeated: bool = True,
    mask_index: int | None = 0,
) -> tuple[jax.Array, jax.Array]:
    """Best-path decoding: the most likely class per frame, repeats merged, blanks removed.

    ``pi*_t = argmax_k log y_t(k)`` over the valid frames; the result is ``B(pi*)`` (Graves et
    al., 2006, ICML) and its score ``sum_t max_k log y_t(k)``.

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
    merge_repeated = check_bool(merge_repeated, "merge_repeated")
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
    logits: ArrayLike,
    lengths: ArrayLike,
    beam_width: int = 100,
    top_paths: int = 1,
    mask_index: int | None = 0,
) -> tuple[jax.Array, jax.Array]:
    """Prefix beam search: the most likely label sequences, summed over their alignments.

    Each prefix ``l`` kept after frame ``t`` carries the probability of all alignments of the
    first ``t`` frames that produce it, split into those ending in a blank, ``p_b``, and in a
    label, ``p_nb`` (Hannun et al., 2014, arXiv:1408.2873). For ``l = l^- c`` (the prefix
    ``l^-`` with the label ``c`` appended)::

        p_b(l, t)  = (p_b(l, t-1) + p_nb(l, t-1)) y_t(blank)
        p_nb(l, t) = p_nb(l, t-1) y_t(c) + y_t(c) p_b(l^-, t-1)                  if c == last(l^-)
        p_nb(l, t) = p_nb(l, t-1) y_t(c) + y_t(c) (p_b(l^-, t-1) + p_nb(l^-, t-1))   otherwise

    and the ``beam_width`` prefixes of largest ``p_b + p_nb`` are kept. A prefix reached in two
    ways (extended by a label, or already in the beam) is merged. With a beam as wide as the
    number of possible prefixes the search is exact: ``P(l | x)`` of Graves et al. (2006).
    jit-able: fixed shapes, back-pointers instead of per-step copies of the prefixes.

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
    check_int(beam_width, "beam_width", low=1)
    check_int(top_paths, "top_paths", low=1)
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


def _beam_search_one(
    logp: jax.Array, length: jax.Array, *, beam_width: int, blank: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
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


def _backtrack(parents: jax.Array, appended: jax.Array, beams: jax.Array) -> jax.Array:
    """Labels of the prefixes ``beams`` ``(P,)`` from per-frame back-pointers: ``(P, T)``."""

    def step(beam, xs):
        parent, label = xs
        return parent[beam], label[beam]

    _, labels = lax.scan(step, beams, (parents, appended), reverse=True)
    return labels.T  # in time order, -1 where a frame appended nothing
