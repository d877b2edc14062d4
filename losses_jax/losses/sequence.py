"""CTC (connectionist temporal classification) loss: forward-backward in extended range.

:func:`ctc_loss` follows ``keras.ops.ctc_loss``: integer targets ``(B, L)``, logits
``(B, T, K)``, per-sequence lengths, a configurable blank (``mask_index``), and one negative
log-likelihood per sequence. :func:`ctc` and :class:`CTC` are the Keras catalogue's loss built
on it. The decoders are in :mod:`losses_jax.decoding`.

Reference: A. Graves, S. Fernández, F. Gomez and J. Schmidhuber (2006), "Connectionist
Temporal Classification: Labelling Unsegmented Sequence Data with Recurrent Neural Networks",
ICML.

The forward-backward recursions (Graves et al., 2006, written out in
:mod:`losses_jax._ctc_recursions`) run on extended-range numbers and have an analytic
backward pass.

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
* Finite emission log-probabilities are floored at
  :data:`~losses_jax._extended_range.LOG_PROB_FLOOR` (``-1e5``, optax's log-zero): logit gaps
  beyond 1e5 (``+-1e30`` logits, say) give a finite loss that charges 1e5 per such frame rather
  than the exact value. NLLs beyond ``2**28 * ln 2`` (1.86e8) are ``+inf``.
"""

from __future__ import annotations

from typing import Literal, overload

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax import checks
from losses_jax._ctc_recursions import ctc_forward_log_probs, ctc_nll
from losses_jax._validation import (
    as_float_array,
    as_label_array,
    check_bool,
    check_int,
    check_rank,
)
from losses_jax.base import Loss

__all__ = ["CTC", "ctc", "ctc_loss"]


# --------------------------------------------------------------------------------------
# inputs (shared with losses_jax.decoding)
# --------------------------------------------------------------------------------------
def blank_index(mask_index: int | None, num_classes: int, name: str = "mask_index") -> int:
    """``mask_index`` as a class index in ``[0, K)`` (negative counts from the end; None: K-1).

    Raises ``TypeError`` for a non-integer and ``ValueError`` outside ``[-K, K)``.

    Examples:
        >>> blank_index(-1, 5), blank_index(None, 5), blank_index(2, 5)
        (4, 4, 2)
    """
    mask_index = check_int(mask_index, name, allow_none=True)
    if mask_index is None:
        return num_classes - 1
    if not -num_classes <= mask_index < num_classes:
        raise ValueError(f"`{name}`={mask_index} is not a class index for {num_classes} classes.")
    return mask_index % num_classes


def sequence_lengths(lengths: ArrayLike, batch: int, maximum: int, name: str) -> jax.Array:
    """One int32 length per sequence, ``(batch,)``, rounded and clipped to ``[0, maximum]``.

    A scalar is broadcast to every sequence; negative lengths are reported under
    :func:`losses_jax.checked`.

    Examples:
        >>> sequence_lengths([2.0, 9], 2, 5, "lengths").tolist()
        [2, 5]
    """
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
    lengths = checks.guard_nonnegative(lengths, name)
    return jnp.clip(lengths.astype(jnp.int32), 0, maximum)


def _label_ids(labels: jax.Array) -> jax.Array:
    """Integer (or float) label ids as int32; floats are rounded first."""
    if jnp.issubdtype(labels.dtype, jnp.floating):
        labels = jnp.round(labels)
    return labels.astype(jnp.int32)


# --------------------------------------------------------------------------------------
# the API
# --------------------------------------------------------------------------------------
@overload
def ctc_loss(
    target: ArrayLike,
    output: ArrayLike,
    target_length: ArrayLike,
    output_length: ArrayLike,
    mask_index: int | None = 0,
    *,
    zero_infinity: bool = False,
    return_alignment: Literal[False] = False,
) -> jax.Array: ...


@overload
def ctc_loss(
    target: ArrayLike,
    output: ArrayLike,
    target_length: ArrayLike,
    output_length: ArrayLike,
    mask_index: int | None = 0,
    *,
    zero_infinity: bool = False,
    return_alignment: Literal[True],
) -> tuple[jax.Array, jax.Array, jax.Array]: ...


def ctc_loss(
    target: ArrayLike,
    output: ArrayLike,
    target_length: ArrayLike,
    output_length: ArrayLike,
    mask_index: int | None = 0,
    *,
    zero_infinity: bool = False,
    return_alignment: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array, jax.Array]:
    """CTC negative log-likelihood per sequence, with ``keras.ops.ctc_loss``'s signature.

    ``loss[b] = -log P(target[b, :target_length[b]] | output[b, :output_length[b]])``, where
    ``P`` sums the probabilities of every alignment (frame-wise path through the classes that
    collapses to the target once repeats are merged and blanks removed), computed with the
    alpha recursion of Graves et al. (2006), ICML (see the module docstring). The gradient
    with respect to the logits is ``softmax - occupancy`` from the beta recursion.

    Args:
        target: ``(B, L)`` integer labels; entries past ``target_length`` are ignored.
        output: ``(B, T, K)`` logits (the log-softmax is taken inside, in float32).
        target_length: ``(B,)`` number of labels of each target (clipped to ``[0, L]``).
        output_length: ``(B,)`` number of frames of each output (clipped to ``[0, T]``).
        mask_index: the blank class, any of ``0 .. K-1`` (negative counts from the end).
        zero_infinity: give impossible alignments a loss of 0 instead of ``+inf``, as
            PyTorch's option does; their gradient is 0 either way.
        return_alignment: also return the forward log-probabilities, as
            ``optax.ctc_loss_with_forward_probs`` does (see Returns).

    Returns:
        ``(B,)`` losses, never negative; float32 (float64 for float64 logits). With
        ``return_alignment=True``, ``(loss, logalpha_blank, logalpha_emit)``, where
        ``logalpha_blank[t, b, n]`` ``(T, B, L + 1)`` is the log-probability of the alpha
        recursion's blank state before label ``n`` at frame ``t`` and ``logalpha_emit[t, b, n]``
        ``(T, B, L)`` that of label ``n``, in optax's layout: frames past ``output_length``
        repeat the last valid one, the last frame's blank entries include the label before
        them (so ``loss[b] == -logalpha_blank[-1, b, target_length[b]]``), and states past the
        target length run on the padding labels as given. Impossible states are ``-inf``
        where optax gives a value near its ``log_epsilon`` (``-1e5``). The two arrays are
        auxiliary outputs with no derivative (computed on ``stop_gradient(output)``, outside
        the loss's derivative rule, by a second alpha recursion).

    Examples:
        >>> logits = jnp.zeros((1, 2, 2))  # two frames, classes {blank, 1}, uniform
        >>> round(float(ctc_loss(jnp.array([[1]]), logits, [1], [2])[0]), 4)  # -log(3/4)
        0.2877
        >>> float(ctc_loss(jnp.array([[1, 1]]), logits, [2], [2])[0])  # needs 3 frames
        inf
        >>> loss, blank, emit = ctc_loss(jnp.array([[1]]), logits, [1], [2], return_alignment=True)
        >>> blank.shape, emit.shape, round(float(-blank[-1, 0, 1]), 4)
        ((2, 1, 2), (2, 1, 1), 0.2877)
    """
    output = as_float_array(output, "output")
    target = as_label_array(target, "target")
    check_rank(output, 3, "output", "(batch, time, num_classes)")
    check_rank(target, 2, "target", "(batch, max_label_length)")
    batch, steps, num_classes = output.shape
    if target.shape[0] != batch:
        raise ValueError(
            f"`target` has {target.shape[0]} sequences but `output` has {batch}: shapes "
            f"{tuple(target.shape)} and {tuple(output.shape)}."
        )
    blank = blank_index(mask_index, num_classes)
    target = checks.guard_labels_in_range(_label_ids(target), num_classes, "target")
    target = jnp.clip(target, 0, num_classes - 1)
    target_length = sequence_lengths(target_length, batch, target.shape[1], "target_length")
    output_length = sequence_lengths(output_length, batch, steps, "output_length")
    nll = jnp.maximum(ctc_nll(output, target, target_length, output_length, blank), 0.0)
    if zero_infinity:
        nll = jnp.where(jnp.isinf(nll), 0.0, nll)
    if check_bool(return_alignment, "return_alignment"):
        blanks, emits = ctc_forward_log_probs(output, target, target_length, output_length, blank)
        return nll, blanks, emits
    return nll


def _compact_labels(labels: jax.Array, blank: int) -> tuple[jax.Array, jax.Array]:
    """Moves the labels (entries that are not ``blank`` and not negative) to the front, in order.

    Returns ``(labels, lengths)``; the tail is filled with ``blank``.
    """
    keep = (labels != blank) & (labels >= 0)
    order = jnp.argsort(~keep, axis=-1, stable=True)
    labels = jnp.take_along_axis(jnp.where(keep, labels, blank), order, axis=-1)
    return labels, jnp.sum(keep, axis=-1).astype(jnp.int32)


def ctc(
    y_true: ArrayLike,
    y_pred: ArrayLike,
    mask_index: int | None = 0,
    zero_infinity: bool = False,
    normalize_by_target_length: bool = False,
) -> jax.Array:
    """CTC loss per sequence in Keras's ``keras.losses.ctc`` form: every frame is used.

    ``loss[b] = -log P(l_b | y_pred[b])`` (Graves et al., 2006, ICML; see :func:`ctc_loss`),
    where the target ``l_b`` is the entries of ``y_true[b]`` that are not the blank
    (``mask_index``, 0 by default, as in Keras) nor negative, in order. For right-padded labels
    this is exactly Keras's number (Keras takes the first ``count(y_true != 0)`` entries, so a
    blank inside a sequence gives Keras a different, ill-defined target).

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
    check_rank(y_true, 2, "y_true", "(batch_size, max_length)")
    check_rank(y_pred, 3, "y_pred", "(batch_size, max_length, num_classes)")
    blank = blank_index(mask_index, y_pred.shape[-1])
    labels, label_lengths = _compact_labels(_label_ids(y_true), blank)
    frames = jnp.full_like(label_lengths, y_pred.shape[1])
    loss = ctc_loss(labels, y_pred, label_lengths, frames, blank, zero_infinity=zero_infinity)
    if normalize_by_target_length:
        loss = loss / jnp.maximum(label_lengths, 1).astype(loss.dtype)
    return loss


class CTC(Loss):
    """CTC (connectionist temporal classification) loss, Keras's ``keras.losses.CTC``.

    ``loss(y_true, y_pred)`` with ``y_true`` ``(B, L)`` integer labels padded with the blank
    and ``y_pred`` ``(B, T, K)`` logits; per sequence ``-log P(labels | logits)`` (Graves et
    al., 2006, ICML), see :func:`ctc`. For per-sequence lengths call :func:`ctc_loss` and
    reduce yourself.

    Args:
        mask_index: the blank class (default 0, as in Keras).
        zero_infinity: impossible alignments give 0 instead of ``+inf`` (PyTorch's option).
        normalize_by_target_length: divide each sequence's loss by its target length before
            the reduction; with the default reduction this is PyTorch's ``reduction="mean"``.
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = CTC()
        >>> round(float(loss(jnp.array([[1, 0]]), jnp.zeros((1, 2, 2)))), 4)
        0.2877
        >>> CTC.from_config(CTC(zero_infinity=True).get_config()) == CTC(zero_infinity=True)
        True
        >>> CTC(mask_index=-1).mask_index
        -1
    """

    function = ctc
    labels_are_ids = True

    def __init__(
        self,
        mask_index: int = 0,
        zero_infinity: bool = False,
        normalize_by_target_length: bool = False,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "ctc",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.mask_index = check_int(mask_index, "mask_index")
        self.zero_infinity = check_bool(zero_infinity, "zero_infinity")
        self.normalize_by_target_length = check_bool(
            normalize_by_target_length, "normalize_by_target_length"
        )
