"""Contrastive losses: CLIP, SigLIP, NT-Xent and supervised contrastive (SupCon).

Every example is compared with every other example of the *global* batch, so the per-sample
value of one row depends on the whole batch. ``where`` (a boolean per row, keyword only) leaves
padded rows out of everything: they are no anchor, no positive and no negative of any other
row, and the classes leave them out of the reduction. The classes take a call's ``mask=`` the
same way: ``loss(x, y, mask=valid)`` is ``loss(x, y, where=valid)``.

:func:`clip_contrastive` and :func:`siglip_sigmoid` take two towers ``x`` and ``y`` of paired
rows; the classes take them as ``loss(x, y)`` (``y_true`` is the first tower, ``y_pred`` the
second; both are differentiable). With the batch split over devices they never form the global
``B x B`` similarity matrix: see ``losses_jax._contrastive_ring`` and ``axis_name`` below.
:func:`ntxent` and :func:`supervised_contrastive` take class ids and one embedding per row
(``loss(labels, embeddings)``); rows with the same id are positives. Under batch sharding with
explicit mesh axes, the columns (every row's embedding) are gathered, the rows stay split.

Embeddings of any floating dtype are compared in float32 (or wider); results have the
embeddings' dtype. Normalisation (on by default, as the papers define the losses on the unit
sphere) has a finite gradient at a zero vector.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._contrastive_ring import (
    batch_axes,
    clip_ring,
    ring_or_local,
    siglip_pair_terms,
    siglip_ring,
    siglip_weighted_sum,
)
from losses_jax._embedding_batch import (
    BatchCoupledLoss,
    LabelledBatchLoss,
    class_ids,
    embedding_rows,
    per_anchor_share,
    valid_rows,
)
from losses_jax._numerics import compute_dtype, l2_normalize, logsumexp, upcast
from losses_jax._reduction import reduction_weights
from losses_jax._sharding import axis_size, has_explicit_axes, replicated
from losses_jax._validation import check_bool, check_number

__all__ = [
    "ClipContrastive",
    "NTXent",
    "SiglipSigmoid",
    "SupervisedContrastive",
    "clip_contrastive",
    "ntxent",
    "siglip_sigmoid",
    "supervised_contrastive",
]


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def _prepare(x, normalize: bool):
    x = upcast(x)
    return l2_normalize(x) if normalize else x


def _towers(x, y, where, normalize, loss_name):
    """Both towers in the accumulation dtype (normalised if asked), the valid rows, the dtype."""
    x, y = embedding_rows(x, "x", loss_name), embedding_rows(y, "y", loss_name)
    if x.shape != y.shape:
        raise ValueError(
            f"{loss_name}: `x` and `y` must hold paired rows of the same shape; received "
            f"{tuple(x.shape)} and {tuple(y.shape)}."
        )
    out_dtype = jnp.promote_types(x.dtype, y.dtype)
    x, y = x.astype(out_dtype), y.astype(out_dtype)
    valid = valid_rows(where, x.shape[0], loss_name)
    return _prepare(x, normalize), _prepare(y, normalize), valid, out_dtype


def _scalar(value: Any, dtype) -> jax.Array:
    return jnp.asarray(value, dtype)


def _check_temperature(temperature: Any) -> Any:
    return check_number(temperature, "temperature", low=0.0, low_inclusive=False)


# --------------------------------------------------------------------------------------
# CLIP and SigLIP
# --------------------------------------------------------------------------------------
def _clip_local(x, y, valid, inverse_temperature):
    logits = jnp.einsum("id,jd->ij", x, y, preferred_element_type=x.dtype) * inverse_temperature
    row_lse = logsumexp(jnp.where(valid[None, :], logits, -jnp.inf), axis=1)
    column_lse = logsumexp(jnp.where(valid[:, None], logits, -jnp.inf), axis=0)
    matched = jnp.sum(x * y, axis=-1) * inverse_temperature
    losses = 0.5 * ((row_lse - matched) + (column_lse - matched))
    return jnp.where(valid, losses, 0.0)


def _siglip_local(x, y, valid, inverse_temperature, bias):
    logits = jnp.einsum("id,jd->ij", x, y, preferred_element_type=x.dtype) * inverse_temperature
    diagonal = jnp.eye(x.shape[0], dtype=bool)
    return jnp.where(valid, siglip_pair_terms(logits + bias, diagonal, valid), 0.0)


def clip_contrastive(
    x: ArrayLike,
    y: ArrayLike,
    *,
    temperature: Any = 0.07,
    normalize: bool = True,
    where: ArrayLike | None = None,
    axis_name: Any = None,
    mesh: Any = None,
) -> jax.Array:
    """CLIP's symmetric InfoNCE per pair: ``(CE(row i, i) + CE(column i, i)) / 2``.

    With ``L = x yᵀ / temperature`` (rows of ``x`` and ``y`` normalised), row ``i`` costs
    ``0.5 (logsumexp_j L_ij - L_ii) + 0.5 (logsumexp_j L_ji - L_ii)``: the cross-entropy of
    matching ``x_i`` to ``y_i`` among all ``y`` and ``y_i`` to ``x_i`` among all ``x``. The
    mean over rows is open_clip's ``ClipLoss``.

    Sharding: with the batch split over mesh axes, pass ``axis_name`` (the axis or axes of the
    batch) and ``mesh`` (or call under ``jax.set_mesh(mesh)``), or call inside your own
    ``jax.shard_map`` with ``axis_name`` bound; with explicit mesh axes (``jax.make_mesh``'s
    default), a batch-sharded ``x`` is detected without either. Each device then keeps its
    rows and streams the other devices' ``y`` blocks around the ring; no device holds more
    than a ``b x b`` block of ``L`` (``b`` rows per device). Otherwise the ``B x B`` matrix is
    formed (under automatic axes, wherever XLA's partitioner puts it).

    Args:
        x: first tower, shape ``(batch, dim)`` (e.g. image embeddings).
        y: second tower, same shape (e.g. text embeddings); row ``i`` pairs with ``x[i]``.
        temperature: ``τ > 0``; may be a traced learnable scalar such as ``exp(-log_scale)``.
        normalize: L2-normalise the rows first (default True).
        where: optional ``(batch,)`` booleans; rows outside it are left out entirely.
        axis_name: mesh axis name(s) the batch is split over (see above), or None.
        mesh: the mesh of ``axis_name`` (default: the ambient one).

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype (0 outside ``where``).

    References:
        Radford et al. (2021), "Learning Transferable Visual Models From Natural Language
        Supervision" (CLIP), ICML; open_clip ``ClipLoss``.

    Examples:
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> [round(float(v), 4) for v in clip_contrastive(x, x, temperature=1.0)]
        [0.3133, 0.3133]
    """
    _check_temperature(temperature)
    check_bool(normalize, "normalize")
    x, y, valid, out_dtype = _towers(x, y, where, normalize, "clip_contrastive")
    inverse_temperature = 1.0 / _scalar(temperature, x.dtype)
    losses = ring_or_local(
        clip_ring,
        _clip_local,
        x,
        y,
        valid,
        (inverse_temperature,),
        axis_name=axis_name,
        mesh=mesh,
        loss_name="clip_contrastive",
    )
    return losses.astype(out_dtype)


def siglip_sigmoid(
    x: ArrayLike,
    y: ArrayLike,
    *,
    temperature: Any = 0.1,
    bias: Any = -10.0,
    normalize: bool = True,
    where: ArrayLike | None = None,
    axis_name: Any = None,
    mesh: Any = None,
) -> jax.Array:
    """SigLIP's pairwise sigmoid loss per row: ``-Σ_j log σ(z_ij (x_i·y_j / τ + b))``.

    ``z_ij = +1`` for ``i = j`` (the paired rows), ``-1`` otherwise; the sum runs over every
    (valid) row ``j`` of the batch, so the mean over rows is the paper's loss, which divides by
    the batch size. The defaults are the paper's initialisation (``τ = 1/10``, ``b = -10``).
    Sharding as for :func:`clip_contrastive`: the ``y`` blocks travel around the ring of
    devices (the paper's chunked implementation), each device summing its rows' terms.

    Args:
        x: first tower, shape ``(batch, dim)``.
        y: second tower, same shape; row ``i`` pairs with ``x[i]``.
        temperature: ``τ > 0`` (traced learnable scalars allowed).
        bias: the logit bias ``b`` (traced learnable scalars allowed).
        normalize: L2-normalise the rows first (default True).
        where: optional ``(batch,)`` booleans; rows outside it are left out entirely.
        axis_name: mesh axis name(s) the batch is split over, or None (see
            :func:`clip_contrastive`).
        mesh: the mesh of ``axis_name`` (default: the ambient one).

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype (0 outside ``where``).

    References:
        Zhai, Mustafa, Kolesnikov & Beyer (2023), "Sigmoid Loss for Language Image
        Pre-Training" (SigLIP), ICCV; big_vision's ``sigmoid`` loss.

    Examples:
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> [round(float(v), 4) for v in siglip_sigmoid(x, x, temperature=1.0, bias=0.0)]
        [1.0064, 1.0064]
    """
    _check_temperature(temperature)
    check_number(bias, "bias")
    check_bool(normalize, "normalize")
    x, y, valid, out_dtype = _towers(x, y, where, normalize, "siglip_sigmoid")
    inverse_temperature = 1.0 / _scalar(temperature, x.dtype)
    losses = ring_or_local(
        siglip_ring,
        _siglip_local,
        x,
        y,
        valid,
        (inverse_temperature, _scalar(bias, x.dtype)),
        axis_name=axis_name,
        mesh=mesh,
        loss_name="siglip_sigmoid",
    )
    return losses.astype(out_dtype)


def _siglip_fused_total(x, y, reduce, dtype, *, temperature, bias, normalize, axis_name,
                       where=None, mesh=None):  # fmt: skip
    """``reduce(siglip_sigmoid(...))`` in one ring pass that also forms every gradient, for a
    batch split over automatic mesh axes; None elsewhere (the per-row path)."""
    if axis_name is None:
        return None
    x, y, valid, _ = _towers(x, y, where, normalize, "siglip_sigmoid")
    mode, axes, mesh = batch_axes(x, axis_name, mesh)
    if mode != "wrap" or has_explicit_axes(mesh):
        return None  # inside a caller's shard_map or explicit axes: the per-row ring
    if x.shape[0] % axis_size(mesh, axes):
        return None  # the per-row path raises the error
    weights = reduction_weights(reduce, valid.shape, x.dtype)
    inverse_temperature = 1.0 / _scalar(temperature, x.dtype)
    total = siglip_weighted_sum(
        x, y, valid, weights, inverse_temperature, _scalar(bias, x.dtype), axes=axes, mesh=mesh
    )
    return total.astype(dtype)


# --------------------------------------------------------------------------------------
# labelled batches: NT-Xent and SupCon
# --------------------------------------------------------------------------------------
def labelled_batch(labels, embeddings, where, normalize: bool, loss_name: str):
    """``(similarities (B, B), same-label pairs, positive pairs, valid pairs, out dtype)``.

    The columns are every row of the batch (gathered under explicit mesh axes); a row is never
    its own positive. Valid pairs have both rows inside ``where``.
    """
    embeddings = embedding_rows(embeddings, "embeddings", loss_name)
    labels = class_ids(labels, embeddings, loss_name)
    batch = embeddings.shape[0]
    valid = valid_rows(where, batch, loss_name)
    out_dtype = embeddings.dtype
    rows = _prepare(embeddings, normalize)
    columns = replicated(rows)
    similarities = jnp.einsum("id,jd->ij", rows, columns, preferred_element_type=rows.dtype)
    pair_valid = valid[:, None] & replicated(valid)[None, :]
    same = labels[:, None] == replicated(labels)[None, :]
    positive = same & ~jnp.eye(batch, dtype=bool) & pair_valid
    return similarities, same, positive, pair_valid, out_dtype


def ntxent(
    labels: ArrayLike,
    embeddings: ArrayLike,
    *,
    temperature: Any = 0.07,
    normalize: bool = True,
    where: ArrayLike | None = None,
) -> jax.Array:
    """NT-Xent per anchor: ``-log(e^{s_ip} / (e^{s_ip} + Σ_n e^{s_in}))`` summed over its positives.

    ``s = cos(e_i, e_j) / τ``; positives ``p`` share the anchor's label (never the anchor
    itself), negatives ``n`` have another label. Each anchor's sum is divided by the batch's
    mean number of positives per anchor (over anchors with any), so the mean over anchors with
    positives (the class's default reduction) is the mean over all positive pairs: optax's
    ``ntxent`` value. Anchors without positives give 0 (the class leaves them out).

    Args:
        labels: class ids, shape ``(batch,)``; rows with equal ids are positive pairs.
        embeddings: shape ``(batch, dim)``.
        temperature: ``τ > 0`` (traced allowed; default 0.07, optax's).
        normalize: compare cosine similarities (default True, optax's).
        where: optional ``(batch,)`` booleans; rows outside it are left out entirely.

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype.

    References:
        Chen, Kornblith, Norouzi & Hinton (2020), "A Simple Framework for Contrastive Learning
        of Visual Representations" (SimCLR), ICML; optax 0.2.8 ``optax.losses.ntxent``.

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> [round(float(v), 4) for v in ntxent(jnp.array([0, 0, 1, 1]), e, temperature=1.0)]
        [0.5514, 0.5514, 0.5514, 0.5514]
    """
    _check_temperature(temperature)
    check_bool(normalize, "normalize")
    similarities, same, positive, pair_valid, out_dtype = labelled_batch(
        labels, embeddings, where, normalize, "ntxent"
    )
    logits = similarities / _scalar(temperature, similarities.dtype)
    negative_lse = logsumexp(jnp.where(~same & pair_valid, logits, -jnp.inf), axis=1)
    # -log softmax of the pair among the anchor's negatives and itself
    pair = jnp.logaddexp(logits, negative_lse[:, None]) - logits
    per_anchor = jnp.sum(jnp.where(positive, pair, 0.0), axis=1)
    return per_anchor_share(per_anchor, positive).astype(out_dtype)


def supervised_contrastive(
    labels: ArrayLike,
    embeddings: ArrayLike,
    *,
    temperature: Any = 0.07,
    normalize: bool = True,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Supervised contrastive loss (SupCon, ``L_out``) per anchor.

    ``-(1/|P(i)|) Σ_{p ∈ P(i)} log(e^{s_ip} / Σ_{a ≠ i} e^{s_ia})`` with ``s = cos / τ``,
    ``P(i)`` the other rows with the anchor's label and ``a`` every other (valid) row. Anchors
    without positives give 0 (the class leaves them out of the mean).

    Args:
        labels: class ids, shape ``(batch,)``.
        embeddings: shape ``(batch, dim)``.
        temperature: ``τ > 0`` (traced allowed; default 0.07).
        normalize: compare cosine similarities (default True, the paper's).
        where: optional ``(batch,)`` booleans; rows outside it are left out entirely.

    Returns:
        Losses ``(batch,)`` in the embeddings' floating dtype.

    References:
        Khosla et al. (2020), "Supervised Contrastive Learning", NeurIPS (equation 2).

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> loss = supervised_contrastive(jnp.array([0, 0, 1, 1]), e, temperature=1.0)
        >>> [round(float(v), 4) for v in loss]
        [0.5514, 0.5514, 0.5514, 0.5514]
    """
    _check_temperature(temperature)
    check_bool(normalize, "normalize")
    similarities, _, positive, pair_valid, out_dtype = labelled_batch(
        labels, embeddings, where, normalize, "supervised_contrastive"
    )
    logits = similarities / _scalar(temperature, similarities.dtype)
    others = pair_valid & ~jnp.eye(logits.shape[0], dtype=bool)
    lse = logsumexp(jnp.where(others, logits, -jnp.inf), axis=1)
    counts = jnp.sum(positive, axis=1)
    # Rows without candidates have lse = -inf: only positive pairs (which have some) are read.
    terms = jnp.where(positive, jnp.where(positive, lse[:, None], 0.0) - logits, 0.0)
    return (jnp.sum(terms, axis=1) / jnp.maximum(counts, 1)).astype(out_dtype)


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class ClipContrastive(BatchCoupledLoss):
    """CLIP's symmetric InfoNCE; see :func:`clip_contrastive`.

    Call as ``loss(x, y)`` (``y_true`` is the first tower, ``y_pred`` the second), with
    ``where=`` (or ``mask=``) for padded rows. The default reduction, the mean over rows, is
    open_clip's ``ClipLoss``.

    Args:
        temperature: ``τ > 0`` (default 0.07). A learnable temperature: call
            :func:`clip_contrastive` with a traced one.
        normalize: L2-normalise the rows first (default True).
        axis_name: mesh axis name(s) the batch is split over (default: none, or detected
            from explicitly sharded inputs).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> print(f"{float(ClipContrastive(temperature=1.0)(x, x)):.4f}")
        0.3133
    """

    function = clip_contrastive

    def __init__(
        self,
        temperature: Any = 0.07,
        normalize: bool = True,
        axis_name: Any = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "clip_contrastive",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _check_temperature(temperature)
        self.normalize = check_bool(normalize, "normalize")
        self.axis_name = axis_name


class SiglipSigmoid(BatchCoupledLoss):
    """SigLIP's pairwise sigmoid loss; see :func:`siglip_sigmoid`.

    Call as ``loss(x, y)`` with ``where=`` for padded rows; the default mean over rows divides
    by the batch size, as the paper does. With the batch split over automatic mesh axes
    (``axis_name`` and ``mesh=`` or the ambient mesh), the reduction forms its gradients in the
    same ring pass as its value (a :func:`jax.custom_jvp` whose tangent is linear, so both modes
    of differentiation use it): three matrix products per block of similarities, where the
    per-row :func:`siglip_sigmoid` under ``grad`` re-forms each block (four).

    Args:
        temperature: ``τ > 0`` (default 0.1).
        bias: the logit bias (default -10).
        normalize: L2-normalise the rows first (default True).
        axis_name: mesh axis name(s) the batch is split over (see :class:`ClipContrastive`).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
        >>> print(f"{float(SiglipSigmoid(temperature=1.0, bias=0.0)(x, x)):.4f}")
        1.0064
    """

    function = siglip_sigmoid

    def __init__(
        self,
        temperature: Any = 0.1,
        bias: Any = -10.0,
        normalize: bool = True,
        axis_name: Any = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "siglip_sigmoid",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _check_temperature(temperature)
        self.bias = check_number(bias, "bias")
        self.normalize = check_bool(normalize, "normalize")
        self.axis_name = axis_name

    def weighted_sum(self, y_true: jax.Array, y_pred: jax.Array, reduce: Any, **inputs: Any) -> Any:
        """The reduced loss, its gradients formed in the same ring pass (batch split over
        automatic mesh axes: three products per block instead of the rematerialised four)."""
        if set(inputs) - {"where", "mesh"}:
            return None  # the per-row path names the unexpected argument
        dtype = compute_dtype(self.dtype)
        return _siglip_fused_total(y_true, y_pred, reduce, dtype, **inputs, **self.options)


class NTXent(LabelledBatchLoss):
    """NT-Xent (SimCLR) on a labelled batch; see :func:`ntxent`.

    Call as ``loss(labels, embeddings)``. The default reduction, the mean over anchors that
    have a positive, equals optax's ``ntxent`` (the mean over positive pairs).

    Args:
        temperature: ``τ > 0`` (default 0.07).
        normalize: compare cosine similarities (default True).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> print(f"{float(NTXent(temperature=1.0)(jnp.array([0, 0, 1, 1]), e)):.4f}")
        0.5514
    """

    function = ntxent

    def __init__(
        self,
        temperature: Any = 0.07,
        normalize: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "ntxent",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _check_temperature(temperature)
        self.normalize = check_bool(normalize, "normalize")


class SupervisedContrastive(LabelledBatchLoss):
    """Supervised contrastive loss (SupCon); see :func:`supervised_contrastive`.

    Call as ``loss(labels, embeddings)``; the default reduction averages over anchors that
    have a positive.

    Args:
        temperature: ``τ > 0`` (default 0.07).
        normalize: compare cosine similarities (default True).
        reduction, name, dtype: as for :class:`~losses_jax.Loss`.

    Examples:
        >>> e = jnp.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
        >>> loss = SupervisedContrastive(temperature=1.0)
        >>> print(f"{float(loss(jnp.array([0, 0, 1, 1]), e)):.4f}")
        0.5514
    """

    function = supervised_contrastive

    def __init__(
        self,
        temperature: Any = 0.07,
        normalize: bool = True,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "supervised_contrastive",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = _check_temperature(temperature)
        self.normalize = check_bool(normalize, "normalize")
