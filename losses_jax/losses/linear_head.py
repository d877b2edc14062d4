r"""Log-probabilities and distillation losses of linear heads, without the logits.

A language model's head turns hidden states ``E (N, D)`` into logits ``E @ W + b`` over a
vocabulary of ``V`` words; at ``N = 2048`` and ``V = 32768`` those are 256 MiB of float32, twice
over for a teacher and a student. These functions compute per-token quantities of the softmax in
blocks of tokens (a block's logits at most 8 MiB, see :mod:`losses_jax._linear_chunks`), never
forming a ``(tokens x vocabulary)`` matrix:

* :func:`linear_log_probs`: ``log softmax(z / T)[label]`` per token, and optionally the softmax
  entropy (policy gradients, preference losses, RL from language feedback);
* :func:`linear_kl_divergence`: ``KL(teacher || student)`` (or the reverse) between the
  temperature-softened softmaxes of two heads (Hinton et al., 2015, "Distilling the Knowledge
  in a Neural Network");
* :func:`linear_jsd`: the generalised Jensen-Shannon divergence of Agarwal et al., 2024,
  "On-Policy Distillation of Language Models: Learning from Self-Generated Mistakes" (GKD), as
  Liger-Kernel's fused linear JSD defines it.

Derivatives: forward and reverse mode (reverse mode recomputes a block's logits), second
derivatives, ``vmap``; ``temperature`` and ``beta`` may be traced. The teacher's head gets no
gradient (``teacher_gradient=False``, the default). The classes :class:`LinearKLDivergence`
and :class:`LinearJSD` reduce with the gradients computed in the forward pass (three products
per trained head, as the naive path). With ``vocab_axis``, each device holds its slice of the
vocabulary, as for :func:`~losses_jax.linear_cross_entropy`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike, DTypeLike

from losses_jax._linear_chunks import (
    Head,
    fused_weighted_sum,
    per_token_values,
    resolve_layout,
)
from losses_jax._numerics import accumulation_dtype, compute_dtype
from losses_jax._reduction import reduction_weights
from losses_jax._sharding import has_explicit_sharding
from losses_jax._validation import as_label_array, check_bool, check_int, check_number, is_traced
from losses_jax.base import Loss
from losses_jax.losses.large_vocab import AxisNames, _axis_option, _float_input

__all__ = [
    "LinearJSD",
    "LinearKLDivergence",
    "linear_jsd",
    "linear_kl_divergence",
    "linear_log_probs",
]

_DIRECTIONS = ("forward", "reverse")


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _check_direction(direction: Any) -> str:
    if direction not in _DIRECTIONS:
        raise ValueError(
            f"`direction` must be 'forward' (KL(teacher || student)) or 'reverse' "
            f"(KL(student || teacher)); received direction={direction!r}."
        )
    return direction


def _head(embeddings, classifier, bias, who: str, student: tuple | None = None) -> Head:
    """A validated :class:`Head` with ``embeddings`` flattened to ``(N, D)``.

    ``student``: the student's embeddings' shape, which the teacher's must share but for D.
    """
    context = "" if student is None else f" (student_embeddings: {student})"
    tokens = None if student is None else student[:-1]
    embeddings = _float_input(embeddings, f"{who}embeddings")
    classifier = _float_input(classifier, f"{who}classifier")
    if embeddings.ndim < 1 or classifier.ndim != 2 or classifier.shape[0] != embeddings.shape[-1]:
        raise ValueError(
            f"`{who}classifier` must have shape (D, V) with D = {who}embeddings.shape[-1]; "
            f"received {who}embeddings of shape {embeddings.shape} and {who}classifier of "
            f"shape {classifier.shape}{context}."
        )
    if tokens is not None and embeddings.shape[:-1] != tokens:
        raise ValueError(
            f"`{who}embeddings` must have the student's token shape {tokens} (then D); "
            f"received shape {embeddings.shape}{context}."
        )
    if bias is not None:
        bias = _float_input(bias, f"{who}bias")
        if bias.shape != classifier.shape[1:]:
            raise ValueError(
                f"`{who}bias` must have shape (V,) = {classifier.shape[1:]}; received "
                f"{who}bias of shape {bias.shape}."
            )
    dtype = jnp.result_type(embeddings.dtype, classifier.dtype)
    flat = embeddings.astype(dtype).reshape(-1, embeddings.shape[-1])
    return Head(flat, classifier.astype(dtype), bias)


def _token_labels(labels, tokens: tuple, ignore_class, vocab: int | None = None):
    """(labels with ignored ids set to 0, flattened; keep mask or None)."""
    labels = as_label_array(labels, "labels")
    if labels.shape == (*tokens, 1) and labels.shape != tokens:
        labels = labels[..., 0]
    if labels.shape != tokens:
        raise ValueError(
            f"`labels` must have shape embeddings.shape[:-1] = {tokens}; received labels of "
            f"shape {labels.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        labels = labels.astype(jnp.int32)
    keep = None if ignore_class is None else labels != ignore_class
    safe = labels if keep is None else jnp.where(keep, labels, 0)
    return safe.reshape(-1), keep


def _temperature(value: Any) -> Any:
    return check_number(value, "temperature", low=0.0, low_inclusive=False)


def _beta(value: Any) -> Any:
    return check_number(value, "beta", low=0.0, high=1.0)


def _layout(heads, *, vocab_axis, token_axis, mesh, token_chunk_size):
    n, v = heads[0].embeddings.shape[0], heads[0].classifier.shape[1]
    accumulate = accumulation_dtype(jnp.result_type(*(h.embeddings.dtype for h in heads)))
    return resolve_layout(
        n,
        v,
        accumulate=accumulate,
        vocab_axis=_axis_option(vocab_axis, "vocab_axis"),
        token_axis=_axis_option(token_axis, "token_axis"),
        mesh=mesh,
        token_chunk_size=check_int(token_chunk_size, "token_chunk_size", low=1, allow_none=True),
    )


# --------------------------------------------------------------------------------------
# block functions: per-token values of a block of logits (T, V_local)
# --------------------------------------------------------------------------------------
def _p_log_p_terms(log_p, other):
    """``p * (log_p - other)`` with ``p = exp(log_p)``; 0 where ``p`` is 0 (no ``0 * inf``)."""
    p = jnp.exp(log_p)
    return jnp.where(p > 0, p * (log_p - other), 0.0)


def _log_prob_block(logits, rows, opts, vocab, *, with_entropy: bool):
    (x,), (labels,) = logits, rows
    log_p, _ = vocab.log_softmax(x / opts["temperature"])
    out = (vocab.pick(log_p, labels),)
    if with_entropy:
        out += (-vocab.sum(_p_log_p_terms(log_p, 0.0)),)
    return out


def _kl_block(logits, rows, opts, vocab, *, direction: str):
    del rows
    student, teacher = (vocab.log_softmax(x / opts["temperature"])[0] for x in logits)
    p, q = (teacher, student) if direction == "forward" else (student, teacher)
    return (vocab.sum(_p_log_p_terms(p, q)),)


def _jsd_block(logits, rows, opts, vocab):
    del rows
    log_s, log_t = (vocab.log_softmax(x / opts["temperature"])[0] for x in logits)
    beta = opts["beta"]
    log_m = jnp.logaddexp(log_t + jnp.log(beta), log_s + jnp.log1p(-beta))
    teacher_part = vocab.sum(_p_log_p_terms(log_t, log_m))
    student_part = vocab.sum(_p_log_p_terms(log_s, log_m))
    return (beta * teacher_part + (1.0 - beta) * student_part,)


# --------------------------------------------------------------------------------------
# functions
# --------------------------------------------------------------------------------------
def linear_log_probs(
    embeddings: ArrayLike,
    classifier: ArrayLike,
    labels: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    temperature: float = 1.0,
    with_entropy: bool = False,
    ignore_class: int | None = None,
    vocab_axis: AxisNames = None,
    token_axis: AxisNames = None,
    mesh: Any = None,
    token_chunk_size: int | None = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    r"""Per-token ``log softmax(z / T)[label]`` of ``z = embeddings @ classifier + bias``.

    A function of the model's outputs, not a loss (its negative mean is the cross-entropy): the
    log-probabilities of sampled or given tokens that policy-gradient and preference losses
    (:func:`~losses_jax.dpo`, PPO/GRPO) consume, computed without the ``(N, V)`` logits. With
    ``with_entropy``, also the entropy ``H = -sum_v p_v log p_v`` of ``p = softmax(z / T)``.

    Args:
        embeddings: ``(..., D)`` float hidden states.
        classifier: ``(D, V)`` float (a flax ``Dense`` kernel).
        labels: integer ids of shape ``embeddings.shape[:-1]`` (a trailing 1 allowed).
        bias: optional ``(V,)``.
        temperature: ``T > 0`` dividing the logits (may be traced).
        with_entropy: also return the entropies.
        ignore_class: a label id whose tokens give 0 (log-probability and entropy), or None.
        vocab_axis, token_axis, mesh: vocabulary-parallel sharding, as for
            :func:`~losses_jax.linear_cross_entropy`.
        token_chunk_size: tokens per block (default: as many as fit 2**21 logits).

    Returns:
        ``(...)`` log-probabilities in float32 (float64 for float64 inputs), and the
        entropies of the same shape with ``with_entropy``.

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
        >>> log_p, entropy = lj.linear_log_probs(e, w, jnp.array([0, 2]), with_entropy=True)
        >>> [round(float(x), 4) for x in log_p], [round(float(x), 4) for x in entropy]
        ([-0.4076, -1.1803], [0.8324, 1.0202])
    """
    with_entropy = check_bool(with_entropy, "with_entropy")
    ignore_class = check_int(ignore_class, "ignore_class", allow_none=True)
    temperature = _temperature(temperature)
    head = _head(embeddings, classifier, bias, "")
    tokens = jnp.shape(embeddings)[:-1]
    safe, keep = _token_labels(labels, tokens, ignore_class)
    layout, mesh = _layout(
        (head,), vocab_axis=vocab_axis, token_axis=token_axis, mesh=mesh,
        token_chunk_size=token_chunk_size,
    )  # fmt: skip
    opts = {"temperature": jnp.asarray(temperature, layout.accumulate)}
    block = partial(_log_prob_block, with_entropy=with_entropy)
    outputs = per_token_values(block, (head,), (safe,), opts, layout, mesh)
    outputs = tuple(o.reshape(tokens) for o in outputs)
    if keep is not None:
        outputs = tuple(jnp.where(keep, o, 0.0) for o in outputs)
    return (outputs[0], outputs[1]) if with_entropy else outputs[0]


def _pair(student_embeddings, student_classifier, teacher_embeddings, teacher_classifier,
          student_bias, teacher_bias, teacher_gradient):  # fmt: skip
    student = _head(student_embeddings, student_classifier, student_bias, "student_")
    tokens = jnp.shape(student_embeddings)[:-1]
    teacher = _head(teacher_embeddings, teacher_classifier, teacher_bias, "teacher_",
                    jnp.shape(student_embeddings))  # fmt: skip
    if teacher.classifier.shape[1] != student.classifier.shape[1]:
        raise ValueError(
            f"The teacher's and the student's vocabularies differ: teacher_classifier of shape "
            f"{teacher.classifier.shape}, student_classifier of shape "
            f"{student.classifier.shape}; both must be (D, V) with the same V."
        )
    if not check_bool(teacher_gradient, "teacher_gradient"):
        teacher = jax.tree.map(lax.stop_gradient, teacher)
    return (student, teacher), tokens


def _distillation(block, opts, heads, tokens, labels, ignore_class, sharding) -> jax.Array:
    layout, mesh = _layout(heads, **sharding)
    opts = {k: jnp.asarray(v, layout.accumulate) for k, v in opts.items()}
    (values,) = per_token_values(block, heads, (), opts, layout, mesh)
    values = values.reshape(tokens)
    if labels is not None and ignore_class is not None:
        _, keep = _token_labels(labels, tokens, ignore_class)
        values = values if keep is None else jnp.where(keep, values, 0.0)
    return values


def linear_kl_divergence(
    student_embeddings: ArrayLike,
    student_classifier: ArrayLike,
    teacher_embeddings: ArrayLike,
    teacher_classifier: ArrayLike,
    *,
    temperature: float = 1.0,
    direction: str = "forward",
    student_bias: ArrayLike | None = None,
    teacher_bias: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    ignore_class: int | None = None,
    teacher_gradient: bool = False,
    vocab_axis: AxisNames = None,
    token_axis: AxisNames = None,
    mesh: Any = None,
    token_chunk_size: int | None = None,
) -> jax.Array:
    r"""Per-token KL divergence between a teacher's and a student's linear heads, no logits.

    With ``s = softmax((E_s @ W_s + b_s) / T)`` and ``t = softmax((E_t @ W_t + b_t) / T)`` per
    token, ``direction="forward"`` gives ``KL(t || s) = sum_v t_v (log t_v - log s_v)`` (the
    distillation loss of Hinton et al., 2015, "Distilling the Knowledge in a Neural Network",
    without its ``T**2`` factor) and ``"reverse"`` gives ``KL(s || t)`` (mode-seeking, as in
    Gu et al., 2024, "MiniLLM"). Neither ``(N, V)`` logit matrix is formed.

    Args:
        student_embeddings: ``(..., D_s)`` float hidden states of the student.
        student_classifier: ``(D_s, V)``.
        teacher_embeddings: ``(..., D_t)`` with the student's leading shape.
        teacher_classifier: ``(D_t, V)``: the same vocabulary.
        temperature: ``T > 0`` dividing both heads' logits (may be traced).
        direction: ``"forward"`` (``KL(teacher || student)``) or ``"reverse"``.
        student_bias, teacher_bias: optional ``(V,)`` biases.
        labels, ignore_class: tokens whose ``labels`` equal ``ignore_class`` give 0 (Liger's
            ``shift_labels``/``ignore_index``); both None: every token counts.
        teacher_gradient: whether the teacher's arrays get gradients (default: they are
            constants, :func:`jax.lax.stop_gradient`).
        vocab_axis, token_axis, mesh: vocabulary-parallel sharding, as for
            :func:`~losses_jax.linear_cross_entropy` (both heads split alike).
        token_chunk_size: tokens per block (default: as many as fit 2**21 logits).

    Returns:
        ``(...)`` divergences in float32 (float64 for float64 inputs).

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
        >>> kl = lj.linear_kl_divergence(e, w, e, 2.0 * w)
        >>> [round(float(x), 4) for x in kl]
        [0.1156, 0.0603]
    """
    temperature = _temperature(temperature)
    direction = _check_direction(direction)
    ignore_class = check_int(ignore_class, "ignore_class", allow_none=True)
    heads, tokens = _pair(student_embeddings, student_classifier, teacher_embeddings,
                          teacher_classifier, student_bias, teacher_bias, teacher_gradient)  # fmt: skip
    block = partial(_kl_block, direction=direction)
    sharding = dict(vocab_axis=vocab_axis, token_axis=token_axis, mesh=mesh,
                    token_chunk_size=token_chunk_size)  # fmt: skip
    return _distillation(block, {"temperature": temperature}, heads, tokens, labels,
                         ignore_class, sharding)  # fmt: skip


def _jsd_block_for(beta: Any):
    """The block function of ``beta``: a concrete 0 or 1 is the KL it tends to (Liger, TRL)."""
    if not is_traced(beta) and float(beta) in (0.0, 1.0):
        return partial(_kl_block, direction="forward" if float(beta) == 0.0 else "reverse")
    return _jsd_block


def linear_jsd(
    student_embeddings: ArrayLike,
    student_classifier: ArrayLike,
    teacher_embeddings: ArrayLike,
    teacher_classifier: ArrayLike,
    *,
    beta: float = 0.5,
    temperature: float = 1.0,
    student_bias: ArrayLike | None = None,
    teacher_bias: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    ignore_class: int | None = None,
    teacher_gradient: bool = False,
    vocab_axis: AxisNames = None,
    token_axis: AxisNames = None,
    mesh: Any = None,
    token_chunk_size: int | None = None,
) -> jax.Array:
    r"""Per-token generalised Jensen-Shannon divergence of two linear heads, no logits.

    With the softened softmaxes ``s`` (student) and ``t`` (teacher) of
    :func:`linear_kl_divergence` and the mixture ``m = beta * t + (1 - beta) * s``::

        JSD_beta = beta * KL(t || m) + (1 - beta) * KL(s || m)

    (Agarwal et al., 2024, "On-Policy Distillation of Language Models: Learning from
    Self-Generated Mistakes"; Liger-Kernel's ``LigerFusedLinearJSD`` and TRL's
    ``generalized_jsd_loss`` define the same). ``beta = 0.5`` is the symmetric JSD. As
    ``beta -> 0``, ``JSD_beta / beta -> KL(t || s)``, and as ``beta -> 1``,
    ``JSD_beta / (1 - beta) -> KL(s || t)``; like Liger and TRL, a concrete ``beta`` of exactly
    0 or 1 gives those KLs (a traced ``beta`` must lie in the open interval).

    Args:
        student_embeddings, student_classifier, teacher_embeddings, teacher_classifier:
            as for :func:`linear_kl_divergence`.
        beta: in ``[0, 1]``, the teacher's weight in the mixture (may be traced).
        temperature, student_bias, teacher_bias, labels, ignore_class: as for
            :func:`linear_kl_divergence`.
        teacher_gradient, vocab_axis, token_axis, mesh, token_chunk_size: as for
            :func:`linear_kl_divergence`.

    Returns:
        ``(...)`` divergences in float32 (float64 for float64 inputs).

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
        >>> jsd = lj.linear_jsd(e, w, e, 2.0 * w)
        >>> [round(float(x), 4) for x in jsd]
        [0.0324, 0.0157]
    """
    beta = _beta(beta)
    temperature = _temperature(temperature)
    ignore_class = check_int(ignore_class, "ignore_class", allow_none=True)
    heads, tokens = _pair(student_embeddings, student_classifier, teacher_embeddings,
                          teacher_classifier, student_bias, teacher_bias, teacher_gradient)  # fmt: skip
    sharding = dict(vocab_axis=vocab_axis, token_axis=token_axis, mesh=mesh,
                    token_chunk_size=token_chunk_size)  # fmt: skip
    opts = {"temperature": temperature, "beta": beta}
    return _distillation(_jsd_block_for(beta), opts, heads, tokens, labels, ignore_class,
                         sharding)  # fmt: skip


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class _LinearDistillation(Loss):
    """The call convention and fused reduction shared by the distillation classes."""

    ignore_class: int | None
    teacher_gradient: bool
    vocab_axis: AxisNames
    token_chunk_size: int | None
    _traced: tuple[str, ...] = ()

    def _convert_y_true(self, x: ArrayLike) -> jax.Array:
        # Its own dtype: the products run in it.
        return _float_input(x, "y_true (teacher_embeddings)")

    def _convert_y_pred(self, x: ArrayLike) -> jax.Array:
        return _float_input(x, "y_pred (student_embeddings)")

    def call(self, y_true: jax.Array, y_pred: jax.Array, **inputs: Any) -> jax.Array:
        student, teacher = _split_inputs(inputs)
        function = type(self).function
        assert function is not None
        return function(
            y_pred, student[0], y_true, teacher[0], student_bias=student[1],
            teacher_bias=teacher[1], labels=inputs.get("labels"), **self.options,
        )  # fmt: skip

    def loss_mask(self, y_true: jax.Array, y_pred: jax.Array, losses: Any, **inputs: Any) -> Any:
        """``labels != ignore_class`` (shaped like ``losses``), or None."""
        labels = inputs.get("labels")
        if self.ignore_class is None or labels is None:
            return None
        keep = as_label_array(labels, "labels") != self.ignore_class
        return keep.reshape(jnp.shape(losses)) if keep.size == jnp.size(losses) else keep

    def _block(self) -> Any:
        raise NotImplementedError

    def weighted_sum(self, y_true: jax.Array, y_pred: jax.Array, reduce: Any, **inputs: Any) -> Any:
        """The reduced loss with the student's gradients computed in the forward pass."""
        if self.vocab_axis is not None or has_explicit_sharding(y_pred):
            return None  # sharded: the per-token kernel (under shard_map)
        student, teacher = _split_inputs(inputs)
        heads, tokens = _pair(y_pred, student[0], y_true, teacher[0], student[1], teacher[1],
                              self.teacher_gradient)  # fmt: skip
        n = heads[0].embeddings.shape[0]
        if n == 0 or not tokens:
            return None
        layout, _ = _layout(heads, vocab_axis=None, token_axis=None, mesh=None,
                            token_chunk_size=self.token_chunk_size)  # fmt: skip
        weights = reduction_weights(reduce, tokens, layout.accumulate).reshape(-1)
        opts = {k: jnp.asarray(getattr(self, k), layout.accumulate) for k in self._traced}
        total = fused_weighted_sum(self._block(), heads, (), weights, opts, layout)
        return total.astype(compute_dtype(self.dtype))


def _split_inputs(inputs: dict) -> tuple:
    """((student classifier, bias), (teacher classifier, bias)) from the call's keywords."""
    unknown = set(inputs) - {"classifier", "bias", "teacher_classifier", "teacher_bias", "labels"}
    if unknown or "classifier" not in inputs or "teacher_classifier" not in inputs:
        raise TypeError(
            "A linear distillation loss is called as loss(teacher_embeddings, "
            "student_embeddings, sample_weight=None, mask=None, *, classifier, "
            "teacher_classifier, bias=None, teacher_bias=None, labels=None); received the "
            f"keywords {sorted(inputs)}."
        )
    return (
        (inputs["classifier"], inputs.get("bias")),
        (inputs["teacher_classifier"], inputs.get("teacher_bias")),
    )


_COMMON_ARGS = """ignore_class: tokens whose ``labels=`` equal it are left out of the reduction.
        teacher_gradient: whether the teacher's arrays get gradients (default False).
        vocab_axis: mesh axis name(s) the vocabulary is sharded over (ambient mesh), or None.
        token_axis: mesh axis name(s) the tokens are sharded over, or None.
        token_chunk_size: tokens per block (default: as many as fit 2**21 logits).
        reduction: as for :class:`losses_jax.Loss`.
        name: as for :class:`losses_jax.Loss`.
        dtype: as for :class:`losses_jax.Loss` (the result's; products run in the inputs')."""


class LinearKLDivergence(_LinearDistillation):
    r"""KL distillation between two linear heads, from hidden states (no logits).

    Called as ``loss(teacher_embeddings, student_embeddings, sample_weight=None, mask=None,
    *, classifier, teacher_classifier, bias=None, teacher_bias=None, labels=None)``: the
    teacher's hidden states take ``y_true``'s place and the student's ``y_pred``'s;
    ``classifier`` is the student's ``(D_s, V)`` head. Per token, :func:`linear_kl_divergence`
    (``KL(teacher || student)`` for ``direction="forward"``); reduced on one device with the
    student's gradients computed in the forward pass (see :class:`LinearCrossEntropy`).

    Args:
        temperature: ``T > 0`` dividing both heads' logits.
        direction: ``"forward"`` (``KL(teacher || student)``) or ``"reverse"``.
        {common}

    Examples:
        >>> loss = lj.LinearKLDivergence()
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
        >>> print(f"{{float(loss(e, e, classifier=w, teacher_classifier=2.0 * w)):.4f}}")
        0.0879
    """

    function = linear_kl_divergence
    _traced: tuple[str, ...] = ("temperature",)

    def __init__(
        self,
        temperature: float = 1.0,
        direction: str = "forward",
        ignore_class: int | None = None,
        teacher_gradient: bool = False,
        vocab_axis: AxisNames = None,
        token_axis: AxisNames = None,
        token_chunk_size: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _temperature(temperature)
        self.direction = _check_direction(direction)
        self.ignore_class = check_int(ignore_class, "ignore_class", allow_none=True)
        self.teacher_gradient = check_bool(teacher_gradient, "teacher_gradient")
        self.vocab_axis = _axis_option(vocab_axis, "vocab_axis")
        self.token_axis = _axis_option(token_axis, "token_axis")
        self.token_chunk_size = check_int(
            token_chunk_size, "token_chunk_size", low=1, allow_none=True
        )

    def _block(self) -> Any:
        return partial(_kl_block, direction=self.direction)


class LinearJSD(_LinearDistillation):
    r"""Generalised Jensen-Shannon distillation between two linear heads (no logits).

    Called like :class:`LinearKLDivergence`; per token, :func:`linear_jsd`
    ``beta KL(t || m) + (1 - beta) KL(s || m)`` with ``m = beta t + (1 - beta) s`` (Agarwal et
    al., 2024, GKD; Liger-Kernel's fused linear JSD). A concrete ``beta`` of 0 or 1 gives
    ``KL(t || s)`` or ``KL(s || t)``.

    Args:
        beta: in ``[0, 1]``, the teacher's weight in the mixture.
        temperature: ``T > 0`` dividing both heads' logits.
        {common}

    Examples:
        >>> loss = lj.LinearJSD(beta=0.5)
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
        >>> print(f"{{float(loss(e, e, classifier=w, teacher_classifier=2.0 * w)):.4f}}")
        0.0241
    """

    function = linear_jsd
    _traced: tuple[str, ...] = ("temperature", "beta")

    def __init__(
        self,
        beta: float = 0.5,
        temperature: float = 1.0,
        ignore_class: int | None = None,
        teacher_gradient: bool = False,
        vocab_axis: AxisNames = None,
        token_axis: AxisNames = None,
        token_chunk_size: int | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.beta = _beta(beta)
        self.temperature = _temperature(temperature)
        self.ignore_class = check_int(ignore_class, "ignore_class", allow_none=True)
        self.teacher_gradient = check_bool(teacher_gradient, "teacher_gradient")
        self.vocab_axis = _axis_option(vocab_axis, "vocab_axis")
        self.token_axis = _axis_option(token_axis, "token_axis")
        self.token_chunk_size = check_int(
            token_chunk_size, "token_chunk_size", low=1, allow_none=True
        )

    def _block(self) -> Any:
        return _jsd_block_for(self.beta)


for _cls in (LinearKLDivergence, LinearJSD):
    _cls.__doc__ = (_cls.__doc__ or "").format(common=_COMMON_ARGS)
