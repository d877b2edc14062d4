r"""Large-vocabulary softmax cross-entropy that never materialises the logits.

A language model's loss ``CE(softmax(embeddings @ classifier), labels)`` needs ``N x V``
logits and as many gradients: 512 MiB of float32 at 2048 tokens and a 32768-word vocabulary.
:func:`linear_cross_entropy` computes the same losses and gradients in chunks of the
vocabulary (and of the tokens): the forward pass keeps an online log-sum-exp per token, and
JAX differentiates the chunk loops with each chunk under :func:`jax.checkpoint`, so reverse mode
recomputes each chunk's logits; only a few numbers per token and chunk are kept between the
passes. Forward mode, second derivatives and traced options come with it. Products and sums
accumulate in float32 (float64 for float64 inputs).

Per token, with ``z = cap * tanh((e @ W + b) / cap)`` (``z = e @ W + b`` without a soft cap),
``lse = log(sum(exp(z)))``, label smoothing ``ls`` and z-loss weight ``c``::

    loss = lse - (1 - ls) * z[label] - (ls / V) * sum(z) + c * lse ** 2

the cross-entropy of ``softmax(z)`` against ``(1 - ls) * one_hot(label) + ls / V`` (Keras's
sparse label smoothing) plus PaLM's z-loss. Tokens whose label is ``ignore_class`` give 0; the
class :class:`LinearCrossEntropy` also leaves them out of the mean's divisor, as Keras does.

Vocabulary-parallel sharding
----------------------------
With the classifier's vocabulary axis sharded over a mesh axis, pass that axis name as
``vocab_axis`` (and the axis or axes the tokens are sharded over, if any, as ``token_axis``).
Each device computes the log-sum-exp statistics of its own slice of the vocabulary under
:func:`jax.shard_map`; per loss call they cross devices as one maximum and one sum of two
floats (three with label smoothing) per token, and the backward pass sums the ``(tokens, D)``
embedding gradient once. Neither the classifier nor the logits are gathered on one device. The
mesh is ``mesh=`` or the ambient one (``with jax.set_mesh(mesh):``); the vocabulary must divide
evenly over ``vocab_axis`` and the tokens over ``token_axis``. With flax, give the output
layer's kernel a vocabulary-sharded partitioning and pass it instead of calling the layer::

    mesh = jax.make_mesh((2, 4), ("data", "model"))
    with jax.set_mesh(mesh):
        head = nnx.Linear(D, V, rngs=nnx.Rngs(0),
                          kernel_init=nnx.with_partitioning(init, (None, "model")))
        losses = linear_cross_entropy(labels, hidden, head.kernel[...],
                                      vocab_axis="model", token_axis="data", ignore_class=-100)

``flax.linen``'s ``nn.with_partitioning`` needs a mesh of automatic axes
(``axis_types=(jax.sharding.AxisType.Auto,) * 2``); pass
``nn.meta.unbox(variables)["params"]["lm_head"]["kernel"]``. On several hosts, call
``jax.distributed.initialize()`` first and build the mesh over ``jax.devices()``; keep
``vocab_axis`` within a host where possible (a last mesh axis no larger than
``jax.local_device_count()``).

References:
    Wijmans et al., 2024. "Cut Your Losses in Large-Vocabulary Language Models" (Cut
    Cross-Entropy). Hsu et al., 2024. "Liger Kernel: Efficient Triton Kernels for LLM
    Training".
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._linear_chunks import (
    BLOCK_ELEMENTS,
    GRADIENT_BLOCK_ELEMENTS,
    Head,
    fused_weighted_sum,
    resolve_layout,
)
from losses_jax._linear_xent import Options, token_losses
from losses_jax._numerics import accumulation_dtype, compute_dtype
from losses_jax._reduction import reduction_weights
from losses_jax._sharding import has_explicit_sharding
from losses_jax._softmax_xent import softmax_xent_sparse_gradient
from losses_jax._validation import as_label_array, check_int, check_number, is_zero
from losses_jax.base import Loss
from losses_jax.checks import guard_labels_in_range

__all__ = ["LinearCrossEntropy", "linear_cross_entropy"]

AxisNames = str | tuple[str, ...] | None


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def _axis_option(value: Any, name: str) -> AxisNames:
    """A mesh axis name, a tuple of names, or None (lists become tuples, so options hash)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise TypeError(f"`{name}` must be a mesh axis name, a tuple of names or None; got {value!r}.")


def _cap_option(value: Any) -> float | None:
    if value is None:
        return None
    return check_number(value, "logit_soft_cap", low=0.0, low_inclusive=False)


def _float_input(x: ArrayLike, name: str) -> jax.Array:
    """``x`` as an array of its own floating dtype (integer input is refused, not cast)."""
    try:
        x = jnp.asarray(x)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a floating array; received {type(x).__name__} of dtype "
            f"{getattr(x, 'dtype', '?')}."
        ) from None
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"`{name}` must be a floating array; received dtype {x.dtype}.")
    return x


def _check_inputs(labels, embeddings, classifier, bias):
    """Converts and validates the arrays; returns them with labels aligned to the tokens."""
    embeddings = _float_input(embeddings, "embeddings")
    classifier = _float_input(classifier, "classifier")
    if embeddings.ndim < 1:
        raise ValueError("`embeddings` must have shape (..., D); received a scalar.")
    if classifier.ndim != 2 or classifier.shape[0] != embeddings.shape[-1]:
        raise ValueError(
            f"`classifier` must have shape (D, V) with D = embeddings.shape[-1] = "
            f"{embeddings.shape[-1]} (a flax Dense kernel); received embeddings of shape "
            f"{embeddings.shape} and classifier of shape {classifier.shape}."
        )
    vocab = classifier.shape[1]
    if bias is not None:
        bias = _float_input(bias, "bias")
        if bias.shape != (vocab,):
            raise ValueError(
                f"`bias` must have shape (V,) = ({vocab},) to match classifier of shape "
                f"{classifier.shape}; received bias of shape {bias.shape}."
            )
    labels = as_label_array(labels, "labels")
    tokens = embeddings.shape[:-1]
    if labels.shape == (*tokens, 1) and labels.shape != tokens:
        labels = labels[..., 0]
    if labels.shape != tokens:
        raise ValueError(
            f"`labels` must have shape embeddings.shape[:-1] = {tokens}; received labels of shape "
            f"{labels.shape} and embeddings of shape {embeddings.shape}."
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        labels = labels.astype(jnp.int32)  # class ids given as floats/bools, as Keras accepts
    return labels, embeddings, classifier, bias


# --------------------------------------------------------------------------------------
# the function
# --------------------------------------------------------------------------------------
def linear_cross_entropy(
    labels: ArrayLike,
    embeddings: ArrayLike,
    classifier: ArrayLike,
    *,
    bias: ArrayLike | None = None,
    ignore_class: int | None = None,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    logit_soft_cap: float | None = None,
    vocab_axis: AxisNames = None,
    token_axis: AxisNames = None,
    mesh: Any = None,
    vocab_chunk_size: int | None = None,
    token_chunk_size: int | None = None,
    gradient_filter: float | None = None,
) -> jax.Array:
    r"""Per-token softmax cross-entropy of ``embeddings @ classifier + bias``, without logits.

    Per token, with ``z = cap * tanh((e @ W + b) / cap)`` (no ``tanh`` unless
    ``logit_soft_cap`` is given), ``lse = logsumexp(z)`` and ``ls = label_smoothing``::

        loss = lse - (1 - ls) * z[label] - (ls / V) * sum(z) + z_loss * lse ** 2

    the cross-entropy against ``(1 - ls) * one_hot(label) + ls / V`` plus PaLM's z-loss.
    Logits exist only in chunks of at most ``vocab_chunk_size`` classes by
    ``token_chunk_size`` tokens (default 1024 and 2048, balanced), in the forward pass and again
    in the backward pass; memory beyond the inputs and gradients is a few chunks.

    Args:
        labels: integer class ids of shape ``embeddings.shape[:-1]`` (a trailing 1 is allowed)
            in ``[0, V)``; ids out of range are not checked (their target logit counts as 0)
            except under :func:`losses_jax.checked`.
        embeddings: ``(..., D)`` float array (final hidden states); any leading dims.
        classifier: ``(D, V)`` float array, laid out as a flax ``Dense`` kernel. The products
            run in the promoted dtype of ``embeddings`` and ``classifier`` and accumulate in
            float32.
        bias: optional ``(V,)`` bias.
        ignore_class: label id to ignore (e.g. ``-100`` for padding), or None.
        label_smoothing: in ``[0, 1]``.
        z_loss: weight ``>= 0`` of ``lse ** 2``.
        logit_soft_cap: optional ``cap > 0`` (Gemma 2's ``cap * tanh(z / cap)``).
        vocab_axis: mesh axis name(s) that ``classifier`` (and ``bias``) are sharded over
            along the vocabulary; see the module docs.
        token_axis: mesh axis name(s) the tokens are sharded over (with ``vocab_axis``).
        mesh: the mesh for ``vocab_axis`` (default: the ambient ``jax.set_mesh`` one).
        vocab_chunk_size: largest vocabulary chunk (default 1024).
        token_chunk_size: largest token chunk (default 2048).
        gradient_filter: validated here and used only by the fused reduction of
            :class:`LinearCrossEntropy` (per-token losses have no gradient in the forward
            pass to filter); see there.

    Returns:
        Losses of shape ``embeddings.shape[:-1]`` (``labels.shape`` less a trailing 1), 0 at
        ignored tokens, in float32 (float64 for float64 inputs).

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 3 tokens, D = 2
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])  # V = 3
        >>> labels = jnp.array([0, 1, -100])  # the last token is padding
        >>> losses = lj.linear_cross_entropy(labels, e, w, ignore_class=-100)
        >>> [round(float(x), 4) for x in losses]
        [0.4076, 0.6803, 0.0]
        >>> logits = e[:2] @ w  # the naive path, for comparison
        >>> naive = jax.nn.logsumexp(logits, axis=-1) - logits[jnp.arange(2), labels[:2]]
        >>> print(f"{float(jnp.mean(losses[:2])):.4f} {float(jnp.mean(naive)):.4f}")
        0.5439 0.5439
    """
    ignore_class = check_int(ignore_class, "ignore_class", allow_none=True)
    label_smoothing = check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)
    z_loss = check_number(z_loss, "z_loss", low=0.0)
    logit_soft_cap = _cap_option(logit_soft_cap)
    vocab_axis = _axis_option(vocab_axis, "vocab_axis")
    token_axis = _axis_option(token_axis, "token_axis")
    vocab_chunk_size = check_int(vocab_chunk_size, "vocab_chunk_size", low=1, allow_none=True)
    token_chunk_size = check_int(token_chunk_size, "token_chunk_size", low=1, allow_none=True)
    if gradient_filter is not None:
        check_number(gradient_filter, "gradient_filter", low=0.0)

    labels, embeddings, classifier, bias = _check_inputs(labels, embeddings, classifier, bias)
    labels = guard_labels_in_range(labels, classifier.shape[1], "labels", ignore=ignore_class)
    keep = None if ignore_class is None else labels != ignore_class
    safe_labels = labels if keep is None else jnp.where(keep, labels, 0)

    dtype = jnp.result_type(embeddings.dtype, classifier.dtype)
    losses = token_losses(
        embeddings.astype(dtype).reshape(-1, embeddings.shape[-1]),
        classifier.astype(dtype),
        bias,
        safe_labels.reshape(-1),
        label_smoothing=label_smoothing,
        z_loss=z_loss,
        soft_cap=logit_soft_cap,
        vocab_axis=vocab_axis,
        token_axis=token_axis,
        mesh=mesh,
        vocab_chunk_size=vocab_chunk_size,
        token_chunk_size=token_chunk_size,
    ).reshape(labels.shape)
    return losses if keep is None else jnp.where(keep, losses, 0.0)


# --------------------------------------------------------------------------------------
# the fused reduced path of the class: gradients in the forward pass
# --------------------------------------------------------------------------------------
def _ce_block(logits, rows, opts: Options, vocab, *, smoothing: bool, z_loss: bool, cap: bool):
    """Per-token losses of a block of logits over the whole vocabulary."""
    (z,), (labels,) = logits, rows
    if cap:
        z = opts.soft_cap * jnp.tanh(z / opts.soft_cap)
    lse = vocab.logsumexp(z)
    target = vocab.pick(z, labels)
    if smoothing:
        ls = opts.label_smoothing
        loss = lse - (1.0 - ls) * target - (ls / vocab.size) * vocab.sum(z)
    else:  # so that -inf logits of masked classes never meet a 0 weight
        loss = lse - target
    if z_loss:
        loss = loss + opts.z_loss * jnp.square(lse)
    return (loss,)


def _plain_ce_gradient(logits, rows, weights):
    """Plain cross-entropy's block losses and weighted logit gradients, written out."""
    (z,), (labels,) = logits, rows
    losses, gradient = softmax_xent_sparse_gradient(z, labels, weights)
    return losses, (gradient,)


def _fused_total(loss: LinearCrossEntropy, labels, embeddings, classifier, bias, reduce):
    """``reduce(linear_cross_entropy(...))`` by :func:`fused_weighted_sum`, or None."""
    labels, embeddings, classifier, bias = _check_inputs(labels, embeddings, classifier, bias)
    if labels.size == 0 or labels.ndim == 0:
        return None  # the reduction's own edge cases
    vocab = classifier.shape[1]
    labels = guard_labels_in_range(labels, vocab, "labels", ignore=loss.ignore_class)
    if loss.ignore_class is not None:
        labels = jnp.where(labels != loss.ignore_class, labels, 0)  # masked by `reduce`
    dtype = jnp.result_type(embeddings.dtype, classifier.dtype)
    acc = accumulation_dtype(dtype)
    weights = reduction_weights(reduce, labels.shape, acc)
    flags = {
        "smoothing": not is_zero(loss.label_smoothing),
        "z_loss": not is_zero(loss.z_loss),
        "cap": loss.logit_soft_cap is not None,
    }
    plain = not any(flags.values())
    layout, _ = resolve_layout(
        labels.size, vocab, accumulate=acc, vocab_axis=None, token_axis=None, mesh=None,
        token_chunk_size=loss.token_chunk_size, gradient_filter=loss.gradient_filter,
        block_elements=GRADIENT_BLOCK_ELEMENTS if plain else BLOCK_ELEMENTS,
    )  # fmt: skip
    options = (loss.label_smoothing, loss.z_loss, loss.logit_soft_cap)
    opts = Options(*(jnp.asarray(0.0 if x is None else x, acc) for x in options))
    block = partial(_ce_block, **flags)
    head = Head(embeddings.astype(dtype).reshape(-1, embeddings.shape[-1]),
                classifier.astype(dtype), bias)  # fmt: skip
    total = fused_weighted_sum(
        block, (head,), (labels.reshape(-1),), weights.reshape(-1), opts, layout,
        block_gradient=_plain_ce_gradient if plain else None,
    )  # fmt: skip
    return total.astype(compute_dtype(loss.dtype))


# --------------------------------------------------------------------------------------
# the class
# --------------------------------------------------------------------------------------
class LinearCrossEntropy(Loss):
    r"""Large-vocabulary softmax cross-entropy from embeddings and a classifier (no logits).

    The options are fixed at construction; the trained parameters are passed on each call::

        loss(labels, embeddings, sample_weight=None, mask=None, *, classifier, bias=None)

    ``labels`` (``(...)`` integer ids) and ``embeddings`` (``(..., D)``) take the places of
    ``y_true`` and ``y_pred``; ``classifier`` is ``(D, V)`` and ``bias`` ``(V,)``. The
    per-token loss is ``lse - (1 - ls) z[label] - (ls / V) sum(z) + z_loss lse^2`` (see
    :func:`linear_cross_entropy`); tokens labelled ``ignore_class`` are masked out of the
    reduction, so the default mean is over the other tokens. ``dtype`` is the result dtype:
    the products run in the inputs' own dtype and accumulate in float32. With ``vocab_axis``,
    the mesh is the ambient one (``with jax.set_mesh(mesh):``).

    Reduced on one device (every reduction but ``None``/``"none"``, no ``vocab_axis``), the
    loss is computed as ``sum(weights * losses)`` with the weights (sample weights, masks,
    divisor) taken from the reduction first, by a :func:`jax.custom_jvp` rule that computes
    the gradients in the same pass as the value, in blocks of tokens over the whole
    vocabulary: three matrix products as in the naive path, not four (see
    :mod:`losses_jax._linear_chunks`). Plain evaluation computes the value alone.

    Args:
        ignore_class: label id whose tokens are left out (e.g. ``-100``), or None.
        label_smoothing: in ``[0, 1]``.
        z_loss: weight ``>= 0`` of ``lse ** 2``.
        logit_soft_cap: optional ``cap > 0`` of ``cap * tanh(z / cap)``.
        vocab_axis: mesh axis name(s) the vocabulary is sharded over, or None.
        token_axis: mesh axis name(s) the tokens are sharded over, or None.
        vocab_chunk_size: largest vocabulary chunk (default 1024).
        token_chunk_size: largest token chunk (default 2048; in the fused reduction, the
            rows of a whole-vocabulary block, default as many as fit 2**21 logits).
        gradient_filter: None (default, exact) or a threshold ``f >= 0``: in the fused
            reduction, a (token block, 4096-class chunk) whose every gradient entry is at
            most ``f`` times its token's weight skips its classifier-gradient product (Cut
            Cross-Entropy's filter, Wijmans et al., 2024). The loss is unchanged; the
            classifier's gradient loses those entries (softmax values below ``f``), so it is
            approximate; ``2**-12`` (bfloat16's resolution) is CCE's choice. Time saved
            depends on how peaked the softmax is (none on random logits).
        reduction: as for :class:`losses_jax.Loss`.
        name: as for :class:`losses_jax.Loss`.
        dtype: as for :class:`losses_jax.Loss`.

    Examples:
        >>> loss = lj.LinearCrossEntropy(ignore_class=-100, z_loss=1e-4)
        >>> e = jnp.array([[[1.0, 0.0], [0.0, 2.0]]])  # (batch, sequence, D)
        >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.5]])
        >>> print(f"{float(loss(jnp.array([[0, -100]]), e, classifier=w)):.4f}")
        0.4078
        >>> type(loss).from_config(loss.get_config()) == loss
        True
    """

    function = linear_cross_entropy
    labels_are_ids = True

    def __init__(
        self,
        ignore_class: int | None = None,
        label_smoothing: float = 0.0,
        z_loss: float = 0.0,
        logit_soft_cap: float | None = None,
        vocab_axis: AxisNames = None,
        token_axis: AxisNames = None,
        vocab_chunk_size: int | None = None,
        token_chunk_size: int | None = None,
        gradient_filter: float | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.ignore_class = check_int(ignore_class, "ignore_class", allow_none=True)
        self.label_smoothing = check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)
        self.z_loss = check_number(z_loss, "z_loss", low=0.0)
        self.logit_soft_cap = _cap_option(logit_soft_cap)
        self.vocab_axis = _axis_option(vocab_axis, "vocab_axis")
        self.token_axis = _axis_option(token_axis, "token_axis")
        self.vocab_chunk_size = check_int(
            vocab_chunk_size, "vocab_chunk_size", low=1, allow_none=True
        )
        self.token_chunk_size = check_int(
            token_chunk_size, "token_chunk_size", low=1, allow_none=True
        )
        self.gradient_filter = (
            None
            if gradient_filter is None
            else check_number(gradient_filter, "gradient_filter", low=0.0)
        )

    def weighted_sum(self, y_true: jax.Array, y_pred: jax.Array, reduce: Any, **inputs: Any) -> Any:
        """The reduced loss with its gradients computed in the forward pass (one device)."""
        if self.vocab_axis is not None or set(inputs) - {"classifier", "bias"}:
            return None  # sharded: the per-token kernel under shard_map
        if has_explicit_sharding(y_pred):
            return None  # the fused rule sees one device's view: the per-token path
        classifier, bias = inputs.get("classifier"), inputs.get("bias")
        if classifier is None:
            return None  # the plain path raises the error
        return _fused_total(self, y_true, y_pred, classifier, bias, reduce)

    def _convert_y_pred(self, x: ArrayLike) -> jax.Array:
        return _float_input(x, "embeddings")  # its own dtype: the products run in it

    def loss_mask(
        self, y_true: jax.Array, y_pred: jax.Array, losses: jax.Array, **inputs: Any
    ) -> Any:
        """``y_true != ignore_class`` (shaped like ``losses``), or None without it."""
        if self.ignore_class is None:
            return None
        keep = as_label_array(y_true, "labels") != self.ignore_class
        return keep.reshape(jnp.shape(losses)) if keep.size == jnp.size(losses) else keep
