"""Fenchel-Young losses: sparsemax (Martins & Astudillo, 2016), its binary form, and a factory.

A Fenchel-Young loss (Blondel, Martins & Niculae, 2020) pairs a regularised max function
``max_Omega(theta) = max_{p in simplex} <p, theta> - Omega(p)`` with its conjugate::

    loss(y, theta) = max_Omega(theta) + Omega(y) - <y, theta>

It is non-negative, zero exactly when the regularised argmax of ``theta`` is ``y``, and its
gradient in ``theta`` is ``argmax_Omega(theta) - y``. ``Omega(p) = <p, log p>`` gives softmax and
cross-entropy; the Gini regulariser ``Omega(p) = (||p||^2 - 1) / 2`` gives sparsemax, the
Euclidean projection onto the simplex, whose output has exact zeros.

Numerics: every projection is computed on scores shifted by their row maximum (the shift
changes neither the projection nor the loss), so scores of ``1e30`` keep their ties and gaps;
computations run in float32 for float16/bfloat16 inputs and return ``y_pred``'s dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike, DTypeLike

from losses_jax._numerics import (
    mean_of_elementwise,
    prepare_pair,
    row_peak,
    upcast,
    weighted_sum_of_logs,
)
from losses_jax._softmax_xent import take_class
from losses_jax._targets import classes_last, sparse_labels, valid_labels
from losses_jax._validation import as_float_array, check_axis, resolve_axis
from losses_jax.base import Loss
from losses_jax.checks import guard_labels_in_range, guard_unit_interval

__all__ = [
    "BinarySparsemax",
    "Sparsemax",
    "binary_sparsemax",
    "fenchel_young",
    "sparsemax",
    "sparsemax_projection",
]


# --------------------------------------------------------------------------------------
# the projection onto the simplex
# --------------------------------------------------------------------------------------
@jax.custom_jvp
def _simplex_threshold(shifted: jax.Array) -> jax.Array:
    """``tau`` with ``sum(max(shifted - tau, 0), -1) = 1``, shape ``(..., 1)``.

    With the scores sorted in decreasing order and ``c_j`` the sum of the ``j`` largest,
    ``tau = max_j (c_j - 1) / j``: ``(c_j - 1) / j`` increases while the ``j``-th score lies
    above it and decreases afterwards, so its maximum is reached at the support size.
    """
    ordered = jnp.sort(shifted, axis=-1, descending=True)
    ranks = jnp.arange(1, shifted.shape[-1] + 1, dtype=shifted.dtype)
    return jnp.max((jnp.cumsum(ordered, axis=-1) - 1.0) / ranks, axis=-1, keepdims=True)


@_simplex_threshold.defjvp
def _simplex_threshold_jvp(primals, tangents):
    # Written out: autodiff would differentiate through the sort and gather the tangents in
    # sorted order; d tau = mean of the tangents on the support is one masked sum.
    (shifted,), (shifted_dot,) = primals, tangents
    tau = _simplex_threshold(shifted)
    support = (shifted > tau).astype(shifted.dtype)
    size = jnp.maximum(jnp.sum(support, axis=-1, keepdims=True), 1.0)
    return tau, jnp.sum(support * shifted_dot, axis=-1, keepdims=True) / size


def _projection_and_threshold(scores: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(p, tau, shifted)`` on the last axis, for scores already in the accumulation dtype.

    ``p = max(shifted - tau, 0)`` with ``shifted = scores - max(scores)``. The derivative of
    ``p`` is ``diag(s) - s s^T / |s|`` (``s`` the support indicator): ``tau``'s rule gives the
    second term, the strict ``shifted > tau`` selection the first.
    """
    shifted = scores - jax.lax.stop_gradient(row_peak(scores))
    tau = _simplex_threshold(shifted)
    above = shifted > tau
    # An unselected entry may be -inf: feed it 0 (its tangent is then multiplied by 0).
    return jnp.where(above, shifted - tau, 0.0), tau, shifted


def sparsemax_projection(logits: ArrayLike, axis: int = -1) -> jax.Array:
    """Sparsemax: the Euclidean projection of ``logits`` onto the probability simplex.

    ``sparsemax(z) = argmin_{p >= 0, sum(p) = 1} ||p - z||^2 = max(z - tau(z), 0)``, with the
    threshold ``tau`` found exactly from the sorted scores (no iteration). Unlike softmax the
    result has exact zeros. The Jacobian is ``diag(s) - s s^T / |s|`` with ``s`` the support
    indicator; it is a custom derivative rule, so forward mode, reverse mode and higher orders
    all work. ``-inf`` entries get probability 0; a row needs at least one finite entry.
    The same values as ``optax.projections.projection_simplex`` applied row by row.

    Args:
        logits: scores of any floating shape (integers are converted to float32).
        axis: the axis projected onto the simplex (default ``-1``).

    Returns:
        Probabilities of ``logits``'s shape and floating dtype, summing to 1 along ``axis``.

    References:
        Martins & Astudillo (2016), "From Softmax to Sparsemax: A Sparse Model of Attention and
        Multi-Label Classification", ICML.

    Examples:
        >>> [round(float(v), 4) for v in sparsemax_projection(jnp.array([1.0, 0.5, -1.0]))]
        [0.75, 0.25, 0.0]
        >>> [round(float(v), 4) for v in sparsemax_projection(jnp.array([2.0, 0.0, 0.0]))]
        [1.0, 0.0, 0.0]
    """
    check_axis(axis, "sparsemax_projection", allow_tuple=False)
    x = as_float_array(logits, "logits")
    axis = resolve_axis(axis, x.shape, "sparsemax_projection")
    probabilities, _, _ = _projection_and_threshold(classes_last(upcast(x), axis))
    return jnp.moveaxis(probabilities, -1, axis).astype(x.dtype)


# --------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------
def sparsemax(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Multiclass sparsemax loss: the Fenchel-Young loss of the Gini regulariser.

    With ``p = sparsemax_projection(y_pred)``, threshold ``tau`` and label ``k``::

        loss = max_{q in simplex} (<q, z> + (1 - ||q||^2) / 2) - z[k]
             = ||p - e_k||^2 / 2 + max(tau - z[k], 0)

    The second form (no product of a large score with a probability) is exact for scores of
    any size. The gradient is ``p - e_k``; the loss is 0 exactly when ``p = e_k``, i.e. when
    ``z[k]`` beats every other score by at least 1. Labels outside ``[0, num_classes)`` give 0.

    Args:
        y_true: integer labels, ``y_pred``'s shape without the class axis (a trailing size-1
            axis is squeezed).
        y_pred: scores (logits), shape ``(batch, ..., num_classes)``.

    Returns:
        Per-sample losses of ``y_true``'s (squeezed) shape, in ``y_pred``'s floating dtype.

    References:
        Martins & Astudillo (2016), "From Softmax to Sparsemax: A Sparse Model of Attention and
        Multi-Label Classification", ICML. optax, ``losses.multiclass_sparsemax_loss(scores,
        labels)`` (the same values).

    Examples:
        >>> scores = jnp.array([[1.0, 0.5, -1.0], [3.0, 0.0, 1.0]])
        >>> [round(float(v), 4) for v in sparsemax([1, 0], scores)]
        [0.5625, 0.0]
    """
    y_pred = as_float_array(y_pred, "y_pred")
    if y_pred.ndim < 1:
        raise ValueError(
            "sparsemax: `y_pred` must hold class scores on its last axis, shape "
            f"(batch, ..., num_classes); received shape {tuple(y_pred.shape)}."
        )
    num_classes = y_pred.shape[-1]
    labels = sparse_labels(y_true, y_pred, y_pred.ndim - 1, "sparsemax")
    labels = guard_labels_in_range(labels, num_classes, "y_true")
    probabilities, tau, shifted = _projection_and_threshold(upcast(y_pred))
    one_hot = jnp.arange(num_classes) == labels[..., None]
    distance = 0.5 * jnp.sum(jnp.square(probabilities - one_hot), axis=-1)
    # ">=": at tau = z[k] the label sits on the edge of the support; this branch then adds
    # the s / |s| - e_k the support rule leaves out, so the gradient is still p - e_k.
    gap = tau[..., 0] - take_class(shifted, labels)
    losses = distance + jnp.where(gap >= 0.0, gap, 0.0)
    return jnp.where(valid_labels(labels, num_classes), losses, 0.0).astype(y_pred.dtype)


def _binary_sparsemax_term(y_true, y_pred):
    # With p = sparse_sigmoid(x) = clip((x + 1) / 2, 0, 1) and Omega(p) = p^2 - p, the
    # Fenchel-Young loss sparse_plus(x) + Omega(y) - x y factorises as (p - y)(x + 1 - p - y):
    # no large x is subtracted from another, so it is exact at |x| = 1e30.
    probability = jnp.clip(0.5 * (y_pred + 1.0), 0.0, 1.0)
    residual = probability - y_true
    return residual * (y_pred + 1.0 - probability - y_true)


def binary_sparsemax(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
    """Binary sparsemax loss per sample: the sparse twin of sigmoid cross-entropy.

    Elementwise, with ``x = y_pred`` and ``y = y_true``::

        loss = sparse_plus(-x)   if y = 1        sparse_plus(x) = 0              x <= -1
               sparse_plus(x)    if y = 0                         (x + 1)^2 / 4  |x| < 1
                                                                  x              x >= 1

    averaged over the last axis. It is the Fenchel-Young loss of ``Omega(p) = p^2 - p``: zero
    exactly when ``sparse_sigmoid(x) = clip((x + 1) / 2, 0, 1)`` equals ``y``, with gradient
    ``sparse_sigmoid(x) - y``. Soft targets in ``[0, 1]`` use the same formula
    ``(p - y) (x + 1 - p - y)``, ``p = sparse_sigmoid(x)``.

    Args:
        y_true: targets in ``{0, 1}`` (or soft targets in ``[0, 1]``), shape
            ``(batch, d0, ..., dN)``.
        y_pred: scores (logits), same shape.

    Returns:
        Losses of shape ``(batch, d0, ..., dN-1)`` in ``y_pred``'s floating dtype.

    References:
        Blondel, Martins & Niculae (2020), "Learning with Fenchel-Young Losses", JMLR 21,
        §4.4. optax, ``losses.sparsemax_loss(logits, labels)`` (elementwise; this is its mean
        over the last axis).

    Examples:
        >>> loss = binary_sparsemax(jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 0.5]]))
        >>> [round(float(v), 4) for v in loss]
        [0.3125]
    """
    return mean_of_elementwise(
        lambda t, p: _binary_sparsemax_term(guard_unit_interval(t, "y_true"), p),
        y_true,
        y_pred,
        "binary_sparsemax",
    )


def fenchel_young(
    max_fn: Callable[[jax.Array], ArrayLike],
) -> Callable[[ArrayLike, ArrayLike], jax.Array]:
    """Builds the Fenchel-Young loss of a regularised max function, as a per-sample function.

    ``loss(y_true, y_pred) = max_fn(y_pred) - <y_true, y_pred>`` over the last axis, where
    ``max_fn`` maps one score vector ``(n,)`` to a scalar (applied row by row). Its gradient
    in ``y_pred`` is ``grad max_fn(y_pred) - y_true``, the regularised argmax minus the
    targets, by autodiff of ``max_fn``. As in optax, the ``Omega(y_true)`` term is left out:
    the loss is 0 at its minimum only when ``Omega(y_true) = 0`` (one-hot targets for the
    Shannon and Gini regularisers). ``max_fn = logsumexp`` gives softmax cross-entropy.

    The result is a plain per-sample function (``y_true`` and ``y_pred`` aligned as for the
    other losses, inputs upcast to float32 for float16/bfloat16, ``y_pred``'s dtype out).
    For reductions, ``sample_weight`` and ``mask``, wrap it in
    :class:`~losses_jax.LossFunctionWrapper`. Bind options of ``max_fn`` (a temperature, a
    traced array included) with :func:`functools.partial` or a closure. A built loss is not
    serialisable by name (it is a closure).

    Args:
        max_fn: a regularised max, ``(n,) -> ()``; it must be differentiable for gradients.

    Returns:
        ``loss(y_true, y_pred) -> (batch, d0, ..., dN-1)`` for targets and scores of shape
        ``(batch, d0, ..., dN)``.

    Raises:
        TypeError: if ``max_fn`` is not callable.

    References:
        Blondel, Martins & Niculae (2020), "Learning with Fenchel-Young Losses", JMLR 21.
        optax, ``losses.make_fenchel_young_loss(max_fun)`` (which takes ``(scores, targets)``).

    Examples:
        >>> loss = fenchel_young(jax.nn.logsumexp)
        >>> one_hot, scores = jnp.array([[0.0, 0.0, 1.0]]), jnp.array([[1.0, 2.0, 3.0]])
        >>> [round(float(v), 4) for v in loss(one_hot, scores)]  # softmax cross-entropy
        [0.4076]
        >>> reduced = lj.LossFunctionWrapper(loss, reduction="sum")
        >>> print(f"{float(reduced(jnp.array([[0.0, 1.0]]), jnp.array([[0.0, 0.0]]))):.4f}")
        0.6931
    """
    if not callable(max_fn):
        raise TypeError(
            f"fenchel_young: `max_fn` must be callable, (n,) -> (); received "
            f"{type(max_fn).__name__}."
        )
    row_max = jnp.vectorize(max_fn, signature="(n)->()")
    name = f"fenchel_young_{getattr(max_fn, '__name__', 'loss')}"

    def loss(y_true: ArrayLike, y_pred: ArrayLike) -> jax.Array:
        targets, scores, out_dtype = prepare_pair(y_true, y_pred, name, min_rank=1)
        # Zero targets cancel their score exactly: a masked (-inf) class gives 0, not NaN.
        alignment = weighted_sum_of_logs(targets, scores)
        return (row_max(scores) - alignment).astype(out_dtype)

    loss.__name__ = loss.__qualname__ = name
    loss.__doc__ = (
        f"The Fenchel-Young loss of ``{name[len('fenchel_young_') :]}``; see fenchel_young."
    )
    return loss


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class Sparsemax(Loss):
    """Multiclass sparsemax loss on integer labels and scores; see :func:`sparsemax`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`. Labels stay
    integer (never cast to the compute dtype).

    Examples:
        >>> scores = jnp.array([[1.0, 0.5, -1.0], [3.0, 0.0, 1.0]])
        >>> print(f"{float(Sparsemax()(jnp.array([1, 0]), scores)):.4f}")
        0.2812
    """

    function = sparsemax
    labels_are_ids = True

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "sparsemax",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)


class BinarySparsemax(Loss):
    """Binary sparsemax loss on {0, 1} targets and scores; see :func:`binary_sparsemax`.

    Args: ``reduction``, ``name``, ``dtype`` as for :class:`~losses_jax.Loss`.

    Examples:
        >>> loss = BinarySparsemax(reduction="sum")
        >>> print(f"{float(loss(jnp.array([[1.0, 0.0]]), jnp.array([[0.5, 3.0]]))):.4f}")
        1.5312
    """

    function = binary_sparsemax

    def __init__(
        self,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = "binary_sparsemax",
        dtype: DTypeLike | None = None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
