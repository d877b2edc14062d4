"""Probabilistic losses: cross-entropies (binary, categorical, sparse, focal), Poisson, KL, GCE.

Every loss is a per-sample function (no reduction) and a class that reduces through
:func:`losses_jax.base.reduce_weighted_values`. Names, defaults and semantics follow Keras 3.

Numerics shared by the family:

* ``from_logits=True`` never forms probabilities. Binary losses use ``log_sigmoid``;
  categorical losses use a max-shifted log-sum-exp. A class masked with a ``-inf`` logit gives
  a finite loss and exactly zero gradient at that class, provided the true class is not masked.
* ``from_logits=False`` clips probabilities to ``[1e-7, 1 - 1e-7]`` in the forward pass exactly
  like Keras, but with a straight-through gradient (:func:`~losses_jax.numerics.clip_probabilities`),
  so a saturated wrong prediction still trains. This is the one deliberate difference from Keras.
* Logs, log-sum-exps and sums run in float32 for float16/bfloat16 inputs; per-sample results
  come back in ``y_pred``'s floating dtype. Integer labels are never cast to a float.
* Softmax cross-entropy from logits uses a :func:`jax.custom_vjp`: the forward pass keeps
  ``exp(logits - max)`` and the backward pass is the single elementwise pass
  ``(softmax * sum(target) - target) * g``.
"""

from __future__ import annotations

import numbers
from functools import partial

import jax
import jax.numpy as jnp

from losses_jax.base import LossFunctionWrapper
from losses_jax.checks import check_in_unit_interval, check_labels_in_range
from losses_jax.numerics import (
    EPSILON,
    accumulation_dtype,
    as_float_array,
    as_label_array,
    check_number,
    clip_probabilities,
    log_softmax,
    match_shapes,
    normalize_axis,
    safe_divide,
    upcast,
    weighted_sum_of_logs,
)

__all__ = [
    "BinaryCrossentropy",
    "BinaryFocalCrossentropy",
    "CategoricalCrossentropy",
    "CategoricalFocalCrossentropy",
    "CategoricalGeneralizedCrossEntropy",
    "KLDivergence",
    "Poisson",
    "SparseCategoricalCrossentropy",
    "binary_crossentropy",
    "binary_focal_crossentropy",
    "categorical_crossentropy",
    "categorical_focal_crossentropy",
    "categorical_generalized_cross_entropy",
    "kl_divergence",
    "kld",
    "kullback_leibler_divergence",
    "poisson",
    "sparse_categorical_crossentropy",
]


# --------------------------------------------------------------------------------------
# option validation (static values only, so errors fire at trace time)
# --------------------------------------------------------------------------------------
def _check_axis_type(axis):
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"`axis` must be an int; received axis={axis!r}.")
    return axis


def _check_label_smoothing(label_smoothing):
    return check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)


def _check_gamma(gamma):
    return check_number(gamma, "gamma", low=0.0)


def _check_z_loss(z_loss, from_logits):
    check_number(z_loss, "z_loss", low=0.0)
    if not from_logits and (isinstance(z_loss, jax.core.Tracer) or z_loss != 0):
        raise ValueError(
            f"`z_loss` needs logits (it penalises logsumexp(y_pred)**2); received "
            f"z_loss={z_loss!r} with from_logits=False."
        )
    return z_loss


def _check_ignore_class(ignore_class):
    if ignore_class is not None and (
        isinstance(ignore_class, bool) or not isinstance(ignore_class, numbers.Integral)
    ):
        raise TypeError(
            f"`ignore_class` must be an int or None; received ignore_class={ignore_class!r}."
        )
    return ignore_class


def _check_q(q):
    return check_number(q, "q", low=0.0, high=1.0, low_inclusive=False)


def _check_alpha(alpha):
    """A scalar alpha, or a per-class sequence (returned as a tuple so losses stay hashable)."""
    if isinstance(alpha, jax.core.Tracer) or jnp.ndim(alpha) == 0:
        return check_number(alpha, "alpha")
    if jnp.ndim(alpha) != 1:
        raise ValueError(
            f"`alpha` must be a scalar or a 1-D list of per-class weights; received an array "
            f"of shape {jnp.shape(alpha)}."
        )
    return tuple(float(check_number(a, "alpha")) for a in alpha)


def _check_options(options: dict) -> dict:
    """Validates a loss's constructor options by name, so bad values fail at construction."""
    checks = {
        "alpha": _check_alpha,
        "axis": _check_axis_type,
        "gamma": _check_gamma,
        "ignore_class": _check_ignore_class,
        "label_smoothing": _check_label_smoothing,
        "q": _check_q,
    }
    if "z_loss" in options:
        _check_z_loss(options["z_loss"], options["from_logits"])
    return {key: checks.get(key, lambda v: v)(value) for key, value in options.items()}


# --------------------------------------------------------------------------------------
# private numerics
# --------------------------------------------------------------------------------------
def _weighted_log(weights: jax.Array, logs: jax.Array) -> jax.Array:
    """Elementwise ``weights * logs`` where zero weights give exactly 0 (value and gradient).

    The elementwise sibling of :func:`~losses_jax.numerics.weighted_sum_of_logs`: a ``-inf``
    log under a zero weight gives neither a NaN value nor a NaN gradient.
    """
    keep = weights != 0
    return jnp.where(keep, weights * jnp.where(keep, logs, 0.0), 0.0)


def _power(base: jax.Array, exponent) -> jax.Array:
    """``base ** exponent`` for ``base >= 0``, with a finite gradient at ``base == 0``.

    Whole exponents (focal ``gamma=2``) use repeated multiplication, exact and cheap.
    """
    if isinstance(exponent, numbers.Number) and float(exponent).is_integer() and exponent >= 0:
        return base ** int(exponent)
    return _real_power(base, exponent)


@partial(jax.custom_jvp, nondiff_argnums=(1,))
def _real_power(base: jax.Array, exponent) -> jax.Array:
    """``base ** exponent`` (negative bases count as 0).

    At ``base == 0`` the derivative ``exponent * base ** (exponent - 1)`` is infinite for
    exponents below 1; it is taken at ``EPSILON`` instead, the clip the probability losses use.
    """
    positive = base > 0
    safe_base = jnp.where(positive, base, 1.0)
    return jnp.where(positive, safe_base**exponent, jnp.power(0.0, exponent))


@_real_power.defjvp
def _real_power_jvp(exponent, primals, tangents):
    (base,), (base_dot,) = primals, tangents
    floor = jnp.where(base > 0, base, EPSILON)
    return _real_power(base, exponent), exponent * floor ** (exponent - 1) * base_dot


@jax.custom_jvp
def _logistic_terms(x: jax.Array):
    """``(softplus(x), softplus(-x), sigmoid(x), sigmoid(-x))`` from one ``exp`` and one ``log1p``.

    With ``s = exp(-|x|)``: ``softplus(±x) = max(±x, 0) + log1p(s)``, ``sigmoid(|x|) = 1 / (1 + s)``
    and ``sigmoid(-|x|) = s / (1 + s)``; exact for any ``x``, ``±inf`` included. Note
    ``softplus(-x) = -log(sigmoid(x))``.
    """
    s = jnp.exp(-jnp.abs(x))
    shared = jnp.log1p(s)
    large = 1.0 / (1.0 + s)
    small = s * large
    positive = x >= 0
    return (
        jnp.maximum(x, 0.0) + shared,
        jnp.maximum(-x, 0.0) + shared,
        jnp.where(positive, large, small),
        jnp.where(positive, small, large),
    )


@_logistic_terms.defjvp
def _logistic_terms_jvp(primals, tangents):
    # Written out: autodiff through |x| would give a wrong derivative at x = 0.
    (x,), (x_dot,) = primals, tangents
    terms = _logistic_terms(x)
    sigmoid, sigmoid_neg = terms[2], terms[3]
    d_sigmoid = sigmoid * sigmoid_neg * x_dot
    return terms, (sigmoid * x_dot, -sigmoid_neg * x_dot, d_sigmoid, -d_sigmoid)


@jax.custom_vjp
def _clip_to_unit_interval(p: jax.Array) -> jax.Array:
    """Forward ``clip(p, EPSILON, 1)`` (Keras's KL clip) with a straight-through gradient."""
    return jnp.clip(p, EPSILON, 1.0)


_clip_to_unit_interval.defvjp(lambda p: (_clip_to_unit_interval(p), None), lambda _, g: (g,))


def _classes_last(x: jax.Array, axis: int) -> jax.Array:
    return x if axis == x.ndim - 1 else jnp.moveaxis(x, axis, -1)


def _renormalize(p: jax.Array) -> jax.Array:
    """``p / sum(p, -1)`` as Keras does before clipping; an all-zero row stays 0."""
    p = check_in_unit_interval(p, "y_pred")
    return safe_divide(p, jnp.sum(p, axis=-1, keepdims=True))


def _take_class(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[..., labels]`` along the last axis, labels clipped into range (callers mask them)."""
    safe = jnp.clip(labels, 0, x.shape[-1] - 1)
    return jnp.take_along_axis(x, safe[..., None], axis=-1)[..., 0]


def _add_at_labels(x: jax.Array, labels: jax.Array, values: jax.Array) -> jax.Array:
    """``x`` with ``values`` added at ``x[..., labels]``; labels outside ``[0, classes)`` add nothing.

    One scatter of a value per row into ``x``'s buffer. Comparing every entry with its row's
    label instead would make XLA recompute the per-row terms (and the callers' label
    masking, fused into them) at every entry: 15% of a sparse cross-entropy step.
    """
    classes = x.shape[-1]
    rows = x.reshape(-1, classes)
    flat = labels.reshape(-1)
    flat = jnp.where((flat >= 0) & (flat < classes), flat, classes)  # past the end: dropped
    rows = rows.at[jnp.arange(rows.shape[0]), flat].add(
        values.reshape(-1).astype(x.dtype), mode="drop"
    )
    return rows.reshape(x.shape)


def _exp_shifted(logits: jax.Array):
    """``(x, peak, e, s)``: ``x`` the logits in the accumulation dtype, ``peak`` their max (at
    least the dtype's lowest finite value), ``e = exp(x - peak)`` and ``s = sum(e)``, along the
    last axis."""
    x = logits.astype(accumulation_dtype(logits.dtype))
    # The reduction's initial value keeps an all -inf row finite (its e is then all 0), and
    # no select on the row's peak is fused into (re-evaluated at) every entry.
    peak = jnp.max(x, axis=-1, initial=jnp.finfo(x.dtype).min)
    e = jnp.exp(x - peak[..., None])
    return x, peak, e, jnp.sum(e, axis=-1)


# --------------------------------------------------------------------------------------
# softmax cross-entropy from logits: custom VJPs, classes on the last axis
#
# The forward pass keeps e = exp(logits - max) for the backward pass, which is then one
# elementwise pass: softmax = e / sum(e). On CPU, where exp dominates, this beats recomputing
# the softmax from the logits, and XLA writes the gradient into e's buffer (no extra memory).
# --------------------------------------------------------------------------------------
@jax.custom_vjp
def _softmax_xent_dense(logits: jax.Array, targets: jax.Array):
    """``(-sum(targets * log_softmax(logits)), logsumexp(logits))`` over the last axis."""
    return _softmax_xent_dense_fwd(logits, targets)[0]


def _softmax_xent_dense_fwd(logits, targets):
    x, peak, e, total_exp = _exp_shifted(logits)
    log_norm = jnp.log(total_exp)
    total = jnp.sum(targets, axis=-1)
    # -sum(t * (x - peak - log_norm)); zero targets at -inf logits contribute exactly 0.
    xent = total * log_norm - weighted_sum_of_logs(targets, x - peak[..., None])
    lse = log_norm + peak
    return (xent, lse), (logits, targets, e, total_exp, lse, total)


def _softmax_xent_dense_bwd(residuals, cotangents):
    logits, targets, e, total_exp, lse, total = residuals
    g_xent, g_lse = cotangents
    # softmax * (g * sum(t) + g_lse) - g * t; an all -inf row (total_exp = 0) gets 0.
    scale = safe_divide(g_xent * total + g_lse, total_exp)
    d_logits = e * scale[..., None] - g_xent[..., None] * targets
    # d xent / d target_j = -log_softmax_j (+inf at -inf logits; 0 where no gradient flows).
    g = g_xent[..., None]
    d_targets = jnp.where(g != 0, g * (lse[..., None] - logits.astype(lse.dtype)), 0.0)
    return d_logits.astype(logits.dtype), d_targets.astype(targets.dtype)


_softmax_xent_dense.defvjp(_softmax_xent_dense_fwd, _softmax_xent_dense_bwd)


@jax.custom_vjp
def _softmax_xent_sparse(logits: jax.Array, labels: jax.Array):
    """``(logsumexp(logits) - logits[label], logsumexp(logits))`` over the last axis."""
    return _softmax_xent_sparse_fwd(logits, labels)[0]


def _softmax_xent_sparse_fwd(logits, labels):
    x, peak, e, total_exp = _exp_shifted(logits)
    log_norm = jnp.log(total_exp)
    # Subtracting in shifted coordinates keeps full precision for logits far from 0.
    xent = log_norm - (_take_class(x, labels) - peak)
    # An empty array carries the logits' dtype to the backward pass.
    return (xent, log_norm + peak), (e, labels, total_exp, jnp.zeros((0,), logits.dtype))


def _softmax_xent_sparse_bwd(residuals, cotangents):
    e, labels, total_exp, dtype_carrier = residuals
    g_xent, g_lse = cotangents
    # total_exp >= 1 but for an all -inf row, whose e is all 0 (one op, not safe_divide's
    # three, runs at every entry).
    scale = (g_xent + g_lse) / jnp.maximum(total_exp, jnp.finfo(total_exp.dtype).tiny)
    d_logits = _add_at_labels(e * scale[..., None], labels, -g_xent)
    return d_logits.astype(dtype_carrier.dtype), None


_softmax_xent_sparse.defvjp(_softmax_xent_sparse_fwd, _softmax_xent_sparse_bwd)


def _add_z_loss(xent: jax.Array, lse: jax.Array, z_loss) -> jax.Array:
    if isinstance(z_loss, numbers.Number) and z_loss == 0:
        return xent
    return xent + z_loss * jnp.square(lse)


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def _dense_inputs(y_true, y_pred, loss_name: str):
    """``(targets, y_pred)`` of equal shape: targets in ``y_pred``'s accumulation dtype.

    ``y_pred`` keeps its floating dtype. ``y_true`` may differ by a trailing size-1 dimension
    (Keras's rule) and otherwise must broadcast to ``y_pred``.
    """
    y_pred = as_float_array(y_pred, "y_pred")
    y_true = as_label_array(y_true, "y_true")
    y_true, y_pred = match_shapes(y_true, y_pred, loss_name)
    if jnp.broadcast_shapes(y_true.shape, y_pred.shape) != y_pred.shape:
        raise ValueError(
            f"{loss_name}: `y_true` of shape {tuple(y_true.shape)} does not broadcast to "
            f"`y_pred` of shape {tuple(y_pred.shape)}."
        )
    targets = y_true.astype(accumulation_dtype(y_pred.dtype))
    return jnp.broadcast_to(targets, y_pred.shape), y_pred


def _sparse_labels(y_true, y_pred: jax.Array, axis: int, loss_name: str) -> jax.Array:
    """Integer labels of ``y_pred``'s shape without the class ``axis`` (already normalized).

    A size-1 dimension of a same-rank ``y_true`` at ``axis`` (else at the end) is squeezed as
    in Keras. Float labels are truncated to int32 like Keras; integer labels keep their values.
    """
    y_true = as_label_array(y_true, "y_true")
    if y_true.ndim == y_pred.ndim and y_true.ndim > 0:
        squeeze_at = axis if y_true.shape[axis] == 1 else y_true.ndim - 1
        if y_true.shape[squeeze_at] == 1:
            y_true = jnp.squeeze(y_true, squeeze_at)
    expected = y_pred.shape[:axis] + y_pred.shape[axis + 1 :]
    if y_true.shape != expected:
        raise ValueError(
            f"{loss_name}: integer `y_true` of shape {tuple(y_true.shape)} does not fit "
            f"`y_pred` of shape {tuple(y_pred.shape)}: expected labels of shape {expected} "
            f"(y_pred without its class axis {axis}), optionally with a size-1 class axis."
        )
    if y_true.dtype not in (jnp.int32, jnp.int64):
        y_true = y_true.astype(jnp.int32)
    return y_true


def _valid_labels(labels: jax.Array, num_classes: int, ignore_class=None) -> jax.Array:
    """Labels in ``[0, num_classes)`` other than ``ignore_class``; the rest give loss 0, as
    Keras's one-hot encoding does."""
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_class is not None:
        valid = valid & (labels != ignore_class)
    return valid


def _is_zero(value) -> bool:
    """Whether a static option is 0 (a traced value is never treated as 0)."""
    return isinstance(value, numbers.Number) and value == 0


def _smooth_binary(targets: jax.Array, label_smoothing) -> jax.Array:
    if _is_zero(label_smoothing):
        return targets
    return targets * (1.0 - label_smoothing) + 0.5 * label_smoothing


def _smooth_categorical(targets: jax.Array, label_smoothing) -> jax.Array:
    if _is_zero(label_smoothing):
        return targets
    return targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[-1]


def _binary_neg_logs(y_pred: jax.Array, from_logits: bool):
    """``(-log p, -log(1 - p))`` from logits (stable softplus) or from clipped probabilities."""
    if from_logits:
        neg_log_not_p, neg_log_p, _, _ = _logistic_terms(y_pred)
        return neg_log_p, neg_log_not_p
    y_pred = check_in_unit_interval(y_pred, "y_pred")
    p = clip_probabilities(y_pred)
    return -jnp.log(p), -jnp.log1p(-p)


def _binary_xent(targets, neg_log_p, neg_log_not_p) -> jax.Array:
    """``t * -log p + (1 - t) * -log(1 - p)``; zero weights never touch an infinite log."""
    return _weighted_log(targets, neg_log_p) + _weighted_log(1.0 - targets, neg_log_not_p)


# --------------------------------------------------------------------------------------
# per-sample functions
# --------------------------------------------------------------------------------------
def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """Binary cross-entropy, averaged over ``axis``.

    ``loss = mean(-(t * log(p) + (1 - t) * log(1 - p)), axis)`` with smoothed targets
    ``t = y_true * (1 - label_smoothing) + 0.5 * label_smoothing``. With ``from_logits=True``,
    ``log p = log_sigmoid(y_pred)`` and ``log(1 - p) = log_sigmoid(-y_pred)``; otherwise ``p``
    is ``y_pred`` clipped to ``[1e-7, 1 - 1e-7]`` (straight-through gradient, unlike Keras).

    Args:
        y_true: targets in ``[0, 1]``, shape ``(batch, ..., d)`` (or broadcastable to y_pred).
        y_pred: logits or probabilities, shape ``(batch, ..., d)``.
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``; squeezes targets towards 0.5.
        axis: the axis averaged over.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    Examples:
        >>> loss = binary_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> [round(float(v), 3) for v in loss]
        [0.916, 0.714]
        >>> loss = binary_crossentropy([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8], from_logits=True)
        >>> print(f"{float(loss):.3f}")
        0.865
    """
    _check_label_smoothing(label_smoothing)
    _check_axis_type(axis)
    targets, y_pred = _dense_inputs(y_true, y_pred, "binary_crossentropy")
    axis = normalize_axis(axis, y_pred.ndim)
    targets = _smooth_binary(targets, label_smoothing)
    losses = _binary_xent(targets, *_binary_neg_logs(upcast(y_pred), from_logits))
    return jnp.mean(losses, axis=axis).astype(y_pred.dtype)


def binary_focal_crossentropy(
    y_true,
    y_pred,
    apply_class_balancing=False,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
):
    """Binary focal cross-entropy (Lin et al., 2017), averaged over ``axis``.

    ``loss = mean(w * (1 - p_t) ** gamma * bce, axis)`` where ``bce`` is the elementwise binary
    cross-entropy, ``1 - p_t = t * (1 - p) + (1 - t) * p`` and, with
    ``apply_class_balancing``, ``w = t * alpha + (1 - t) * (1 - alpha)`` (else ``w = 1``).
    From logits, ``bce`` uses log-sigmoid and ``p = sigmoid(y_pred)`` (Keras clips the sigmoid;
    we do not). From probabilities, ``bce`` clips ``p`` to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient, unlike Keras) and ``p_t`` uses the unclipped ``p``, as Keras.

    Args:
        y_true: targets in ``[0, 1]``, shape ``(batch, ..., d)``.
        y_pred: logits or probabilities, shape ``(batch, ..., d)``.
        apply_class_balancing: weight class 1 by ``alpha`` and class 0 by ``1 - alpha``.
        alpha: balancing factor for class 1.
        gamma: focusing parameter, ``>= 0`` (``0`` gives binary cross-entropy).
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``; squeezes targets towards 0.5.
        axis: the axis averaged over.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    Examples:
        >>> y_true, y_pred = [[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]]
        >>> loss = binary_focal_crossentropy(y_true, y_pred, gamma=2)
        >>> [round(float(v), 3) for v in loss]
        [0.33, 0.206]
    """
    _check_gamma(gamma)
    _check_label_smoothing(label_smoothing)
    _check_axis_type(axis)
    check_number(alpha, "alpha")
    targets, y_pred = _dense_inputs(y_true, y_pred, "binary_focal_crossentropy")
    axis = normalize_axis(axis, y_pred.ndim)
    targets = _smooth_binary(targets, label_smoothing)
    x = upcast(y_pred)
    if from_logits:
        neg_log_not_p, neg_log_p, p, not_p = _logistic_terms(x)
    else:
        (neg_log_p, neg_log_not_p), p, not_p = _binary_neg_logs(x, False), x, 1.0 - x
    bce = _binary_xent(targets, neg_log_p, neg_log_not_p)
    losses = _power(targets * not_p + (1.0 - targets) * p, gamma) * bce
    if apply_class_balancing:
        losses = (targets * alpha + (1.0 - targets) * (1.0 - alpha)) * losses
    return jnp.mean(losses, axis=axis).astype(y_pred.dtype)


def _categorical_inputs(y_true, y_pred, label_smoothing, axis, loss_name: str):
    """Smoothed targets and predictions with the class ``axis`` moved last."""
    _check_label_smoothing(label_smoothing)
    _check_axis_type(axis)
    targets, y_pred = _dense_inputs(y_true, y_pred, loss_name)
    axis = normalize_axis(axis, y_pred.ndim)
    targets = _smooth_categorical(_classes_last(targets, axis), label_smoothing)
    return targets, _classes_last(y_pred, axis)


def categorical_crossentropy(
    y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1, z_loss=0.0
):
    """Categorical cross-entropy between one-hot (or soft) targets and predictions.

    ``loss = -sum(t * log p, axis) + z_loss * logsumexp(y_pred, axis) ** 2`` with smoothed
    targets ``t = y_true * (1 - label_smoothing) + label_smoothing / num_classes``. From logits,
    ``log p = y_pred - logsumexp(y_pred)`` (max-shifted; a ``-inf`` logit masks a class). From
    probabilities, ``p = y_pred / sum(y_pred, axis)`` clipped to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient, unlike Keras). ``z_loss`` (PaLM) needs ``from_logits=True``.

    Args:
        y_true: targets, shape ``(batch, ..., num_classes)`` (classes on ``axis``).
        y_pred: logits or probabilities of the same shape.
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        z_loss: weight of the ``logsumexp ** 2`` penalty, ``>= 0``.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    Examples:
        >>> y_true = [[0, 1, 0], [0, 0, 1]]
        >>> loss = categorical_crossentropy(y_true, [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
        >>> [round(float(v), 4) for v in loss]
        [0.0513, 2.3026]
        >>> logits = jnp.array([[2.0, 3.0, -jnp.inf]])  # the third class is masked
        >>> print(f"{float(categorical_crossentropy([[0, 1, 0]], logits, from_logits=True)[0]):.4f}")
        0.3133
    """
    _check_z_loss(z_loss, from_logits)
    targets, y_pred = _categorical_inputs(
        y_true, y_pred, label_smoothing, axis, "categorical_crossentropy"
    )
    if from_logits:
        # The logits go in their own dtype: the VJP saves them, not a float32 copy.
        xent, lse = _softmax_xent_dense(y_pred, targets)
        losses = _add_z_loss(xent, lse, z_loss)
    else:
        log_p = jnp.log(clip_probabilities(_renormalize(upcast(y_pred))))
        losses = -jnp.sum(targets * log_p, axis=-1)
    return losses.astype(y_pred.dtype)


def categorical_focal_crossentropy(
    y_true,
    y_pred,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
):
    """Alpha-balanced categorical focal cross-entropy (Lin et al., 2017).

    ``loss = sum(alpha * (1 - p) ** gamma * (-t * log p), axis)`` with targets smoothed as in
    :func:`categorical_crossentropy`. ``alpha`` is a scalar or one weight per class. From
    logits, ``log p`` is a stable log-softmax and ``1 - p = -expm1(log p)``; Keras forms and
    clips the softmax instead. From probabilities, ``p = y_pred / sum(y_pred, axis)`` clipped to
    ``[1e-7, 1 - 1e-7]`` (straight-through gradient, unlike Keras).

    Args:
        y_true: targets, shape ``(batch, ..., num_classes)`` (classes on ``axis``).
        y_pred: logits or probabilities of the same shape.
        alpha: scalar or sequence of ``num_classes`` weights.
        gamma: focusing parameter, ``>= 0``.
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.

    Returns:
        Per-sample losses, ``y_pred``'s shape without ``axis``, in ``y_pred``'s dtype.

    Examples:
        >>> y_true = [[0, 1, 0], [0, 0, 1]]
        >>> loss = categorical_focal_crossentropy(y_true, [[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]])
        >>> [f"{float(v):.4e}" for v in loss]
        ['2.6340e-04', '6.7591e-01']
    """
    _check_gamma(gamma)
    alpha = _check_alpha(alpha)
    targets, y_pred = _categorical_inputs(
        y_true, y_pred, label_smoothing, axis, "categorical_focal_crossentropy"
    )
    x = upcast(y_pred)
    if isinstance(alpha, tuple):
        if len(alpha) != x.shape[-1]:
            raise ValueError(
                f"categorical_focal_crossentropy: `alpha` has {len(alpha)} per-class weights "
                f"but `y_pred` of shape {tuple(y_pred.shape)} has {x.shape[-1]} classes."
            )
        alpha = jnp.asarray(alpha, x.dtype)
    if from_logits:
        log_p = log_softmax(x)
        one_minus_p = -jnp.expm1(log_p)
    else:
        p = clip_probabilities(_renormalize(x))
        log_p, one_minus_p = jnp.log(p), 1.0 - p
    weights = alpha * _power(one_minus_p, gamma) * targets
    losses = -weighted_sum_of_logs(weights, log_p)
    return losses.astype(y_pred.dtype)


def sparse_categorical_crossentropy(
    y_true, y_pred, from_logits=False, ignore_class=None, axis=-1, z_loss=0.0
):
    """Categorical cross-entropy with integer labels.

    ``loss = -log p[y_true] + z_loss * logsumexp(y_pred, axis) ** 2``. From logits,
    ``log p[k] = y_pred[k] - logsumexp(y_pred)`` (max-shifted; ``-inf`` logits mask classes).
    From probabilities, ``p = y_pred / sum(y_pred, axis)`` clipped to ``[1e-7, 1 - 1e-7]``
    (straight-through gradient, unlike Keras). Positions whose label equals ``ignore_class``
    give 0, as do labels outside ``[0, num_classes)`` (Keras's one-hot gives the same). The
    class :class:`SparseCategoricalCrossentropy` also drops ignored positions from the mean.

    Args:
        y_true: integer labels, ``y_pred``'s shape without ``axis`` (a size-1 class axis is
            squeezed). Integer labels are used as they are, never through a float.
        y_pred: logits or probabilities, shape ``(batch, ..., num_classes)``.
        from_logits: whether ``y_pred`` holds logits.
        ignore_class: optional label id whose positions give loss 0.
        axis: the class axis.
        z_loss: weight of the ``logsumexp ** 2`` penalty, ``>= 0``; needs logits.

    Returns:
        Per-sample losses of ``y_true``'s (squeezed) shape, in ``y_pred``'s dtype.

    Examples:
        >>> loss = sparse_categorical_crossentropy([1, 2], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
        >>> [round(float(v), 4) for v in loss]
        [0.0513, 2.3026]
        >>> logits = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> loss = sparse_categorical_crossentropy([2, -1], logits, from_logits=True, ignore_class=-1)
        >>> [round(float(v), 4) for v in loss]
        [0.4076, 0.0]
    """
    _check_z_loss(z_loss, from_logits)
    _check_ignore_class(ignore_class)
    _check_axis_type(axis)
    y_pred = as_float_array(y_pred, "y_pred")
    axis = normalize_axis(axis, max(y_pred.ndim, 1))
    labels = _sparse_labels(y_true, y_pred, axis, "sparse_categorical_crossentropy")
    x = _classes_last(y_pred, axis)
    labels = check_labels_in_range(labels, x.shape[-1], "y_true", ignore=ignore_class)
    valid = _valid_labels(labels, x.shape[-1], ignore_class)
    if from_logits:
        xent, lse = _softmax_xent_sparse(x, labels)
        losses = _add_z_loss(xent, lse, z_loss)
    else:
        p = upcast(check_in_unit_interval(x, "y_pred"))
        p_label = safe_divide(_take_class(p, labels), jnp.sum(p, axis=-1))
        losses = -jnp.log(clip_probabilities(p_label))
    return jnp.where(valid, losses, 0.0).astype(y_pred.dtype)


def poisson(y_true, y_pred):
    """Poisson negative log-likelihood (without the ``log(y_true!)`` constant), mean over the
    last axis.

    ``loss = mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)``, as Keras.

    Args:
        y_true: observed counts, shape ``(batch, ..., d)``.
        y_pred: predicted rates (``>= 0``), shape ``(batch, ..., d)``.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    Examples:
        >>> print(f"{float(poisson([[0.0, 1.0]], [[1.0, 1.0]])[0]):.4f}")
        1.0000
    """
    targets, y_pred = _dense_inputs(y_true, y_pred, "poisson")
    normalize_axis(-1, y_pred.ndim)
    rate = upcast(y_pred)
    losses = rate - _weighted_log(targets, jnp.log(rate + EPSILON))
    return jnp.mean(losses, axis=-1).astype(y_pred.dtype)


def kl_divergence(y_true, y_pred):
    """Kullback-Leibler divergence ``KL(y_true || y_pred)`` over the last axis.

    ``loss = sum(t * log(t / p), axis=-1)`` with ``t`` and ``p`` clipped to ``[1e-7, 1]`` as in
    Keras (straight-through gradient). Also exported as ``kld`` and
    ``kullback_leibler_divergence``.

    Args:
        y_true: target distributions, shape ``(batch, ..., d)``.
        y_pred: predicted distributions, shape ``(batch, ..., d)``.

    Returns:
        Per-sample losses, shape ``(batch, ...)``, in ``y_pred``'s dtype.

    Examples:
        >>> print(f"{float(kl_divergence([[0.5, 0.5]], [[0.25, 0.75]])[0]):.4f}")
        0.1438
    """
    targets, y_pred = _dense_inputs(y_true, y_pred, "kl_divergence")
    normalize_axis(-1, y_pred.ndim)
    t = _clip_to_unit_interval(targets)
    p = _clip_to_unit_interval(upcast(y_pred))
    return jnp.sum(t * (jnp.log(t) - jnp.log(p)), axis=-1).astype(y_pred.dtype)


kullback_leibler_divergence = kl_divergence
kld = kl_divergence


def categorical_generalized_cross_entropy(y_true, y_pred, q=0.5):
    """Generalized cross-entropy (Zhang & Sabuncu, 2018), robust to noisy labels.

    ``loss = (1 - p[y_true] ** q) / q`` with ``p`` the predicted probabilities (not clipped, as
    Keras). ``q -> 0`` approaches cross-entropy, ``q = 1`` gives ``1 - p[y_true]``. At
    ``p[y_true] = 0`` the gradient (infinite for ``q < 1``) is taken at ``1e-7``.

    Args:
        y_true: integer labels, shape ``(batch,)`` or ``(batch, 1)``.
        y_pred: probabilities, shape ``(batch, num_classes)``.
        q: float in ``(0, 1]``.

    Returns:
        Per-sample losses, shape ``(batch,)``, in ``y_pred``'s dtype.

    Examples:
        >>> y_pred = [[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]]
        >>> loss = categorical_generalized_cross_entropy([0, 1, 0, 1], y_pred)
        >>> [round(float(v), 4) for v in loss]
        [0.3267, 0.2111, 0.4508, 0.4508]
    """
    _check_q(q)
    y_pred = as_float_array(y_pred, "y_pred")
    axis = normalize_axis(-1, max(y_pred.ndim, 1))
    labels = _sparse_labels(y_true, y_pred, axis, "categorical_generalized_cross_entropy")
    labels = check_labels_in_range(labels, y_pred.shape[-1], "y_true")
    p = upcast(check_in_unit_interval(y_pred, "y_pred"))
    p_label = jnp.where(_valid_labels(labels, p.shape[-1]), _take_class(p, labels), 0.0)
    return ((1.0 - _power(p_label, q)) / q).astype(y_pred.dtype)


# --------------------------------------------------------------------------------------
# classes
# --------------------------------------------------------------------------------------
class _ProbabilisticLoss(LossFunctionWrapper):
    """A :class:`LossFunctionWrapper` whose options are also attributes (as in Keras)."""

    def __init__(self, fn, reduction, name, dtype, **options):
        options = _check_options(options)
        super().__init__(fn, reduction=reduction, name=name, dtype=dtype, **options)
        for key, value in options.items():
            setattr(self, key, list(value) if isinstance(value, tuple) else value)

    def get_config(self):
        config = super().get_config()
        # Per-class weights are stored as a tuple (hashable) and reported as a list, as Keras.
        return {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()}


class BinaryCrossentropy(_ProbabilisticLoss):
    """Binary cross-entropy; see :func:`binary_crossentropy` for the formula and shapes.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        label_smoothing: float in ``[0, 1]``; squeezes targets towards 0.5.
        axis: the axis the per-sample mean runs over.
        reduction: see :class:`~losses_jax.base.Loss`.
        name: default ``"binary_crossentropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true, y_pred = [[0, 1], [0, 0]], [[-18.6, 0.51], [2.94, -12.8]]
        >>> bce = BinaryCrossentropy(from_logits=True)
        >>> print(f"{float(bce(y_true, y_pred)):.4f}")  # Keras's docs truncate it to 0.8654
        0.8655
        >>> print(f"{float(bce(y_true, y_pred, sample_weight=[0.8, 0.2])):.4f}")
        0.2436
        >>> print(f"{float(BinaryCrossentropy(from_logits=True, reduction='sum')(y_true, y_pred)):.4f}")
        1.7309
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_crossentropy",
        dtype=None,
    ):
        super().__init__(
            binary_crossentropy,
            reduction,
            name,
            dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class BinaryFocalCrossentropy(_ProbabilisticLoss):
    """Binary focal cross-entropy; see :func:`binary_focal_crossentropy`.

    Args:
        apply_class_balancing: weight class 1 by ``alpha`` and class 0 by ``1 - alpha``.
        alpha: balancing factor for class 1 (default 0.25).
        gamma: focusing parameter, ``>= 0`` (default 2).
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the axis the per-sample mean runs over.
        reduction: see :class:`~losses_jax.base.Loss`.
        name: default ``"binary_focal_crossentropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true, y_pred = [0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]
        >>> print(f"{float(BinaryFocalCrossentropy(gamma=2, from_logits=True)(y_true, y_pred)):.3f}")
        0.691
        >>> loss = BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2, from_logits=True)
        >>> print(f"{float(loss(y_true, y_pred)):.2f}")
        0.51
    """

    def __init__(
        self,
        apply_class_balancing=False,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="binary_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(
            binary_focal_crossentropy,
            reduction,
            name,
            dtype,
            apply_class_balancing=apply_class_balancing,
            alpha=check_number(alpha, "alpha"),
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class CategoricalCrossentropy(_ProbabilisticLoss):
    """Categorical cross-entropy on one-hot or soft targets; see :func:`categorical_crossentropy`.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        reduction: see :class:`~losses_jax.base.Loss`.
        name: default ``"categorical_crossentropy"``.
        dtype: compute and result dtype.
        z_loss: weight of the PaLM ``logsumexp(logits) ** 2`` penalty (needs logits).

    Examples:
        >>> y_true = [[0, 1, 0], [0, 0, 1]]
        >>> y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        >>> cce = CategoricalCrossentropy()
        >>> print(f"{float(cce(y_true, y_pred)):.3f}")
        1.177
        >>> print(f"{float(cce(y_true, y_pred, sample_weight=jnp.array([0.3, 0.7]))):.3f}")
        0.814
        >>> print(f"{float(CategoricalCrossentropy(reduction='sum')(y_true, y_pred)):.3f}")
        2.354
    """

    def __init__(
        self,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_crossentropy",
        dtype=None,
        z_loss=0.0,
    ):
        super().__init__(
            categorical_crossentropy,
            reduction,
            name,
            dtype,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
            z_loss=z_loss,
        )


class CategoricalFocalCrossentropy(_ProbabilisticLoss):
    """Alpha-balanced categorical focal cross-entropy; see :func:`categorical_focal_crossentropy`.

    Args:
        alpha: scalar, or a list of one weight per class (default 0.25).
        gamma: focusing parameter, ``>= 0`` (default 2).
        from_logits: whether ``y_pred`` holds logits.
        label_smoothing: float in ``[0, 1]``.
        axis: the class axis.
        reduction: see :class:`~losses_jax.base.Loss`.
        name: default ``"categorical_focal_crossentropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true = [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        >>> y_pred = [[0.05, 0.95, 0], [0.1, 0.8, 0.1]]
        >>> cfce = CategoricalFocalCrossentropy()
        >>> print(f"{float(cfce(y_true, y_pred)):.4f}")
        0.2332
        >>> print(f"{float(cfce(y_true, y_pred, sample_weight=jnp.array([0.3, 0.7]))):.4f}")
        0.1632
        >>> CategoricalFocalCrossentropy(alpha=[0.2, 0.3, 0.5]).get_config()["alpha"]
        [0.2, 0.3, 0.5]
    """

    def __init__(
        self,
        alpha=0.25,
        gamma=2.0,
        from_logits=False,
        label_smoothing=0.0,
        axis=-1,
        reduction="sum_over_batch_size",
        name="categorical_focal_crossentropy",
        dtype=None,
    ):
        super().__init__(
            categorical_focal_crossentropy,
            reduction,
            name,
            dtype,
            alpha=alpha,
            gamma=gamma,
            from_logits=from_logits,
            label_smoothing=label_smoothing,
            axis=axis,
        )


class SparseCategoricalCrossentropy(_ProbabilisticLoss):
    """Cross-entropy with integer labels; see :func:`sparse_categorical_crossentropy`.

    Positions labelled ``ignore_class`` give loss 0 and are left out of the reduction's
    divisor (as in Keras); a batch whose labels are all ignored gives 0.

    Args:
        from_logits: whether ``y_pred`` holds logits (recommended) or probabilities.
        ignore_class: optional label id to ignore (e.g. -1 or 255 for padding).
        reduction: see :class:`~losses_jax.base.Loss`.
        axis: the class axis.
        name: default ``"sparse_categorical_crossentropy"``.
        dtype: compute and result dtype; integer labels stay integer whatever it is.
        z_loss: weight of the PaLM ``logsumexp(logits) ** 2`` penalty (needs logits).

    Examples:
        >>> y_pred = [[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]]
        >>> print(f"{float(SparseCategoricalCrossentropy()([0, 1, 2], y_pred)):.4f}")  # Keras's docs: 0.3239 (truncated)
        0.3240
        >>> logits = jnp.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
        >>> scce = SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
        >>> print(f"{float(scce([2, -1], logits)):.4f}")  # the mean over the one valid label
        0.4076
    """

    def __init__(
        self,
        from_logits=False,
        ignore_class=None,
        reduction="sum_over_batch_size",
        axis=-1,
        name="sparse_categorical_crossentropy",
        dtype=None,
        z_loss=0.0,
    ):
        super().__init__(
            sparse_categorical_crossentropy,
            reduction,
            name,
            dtype,
            from_logits=from_logits,
            ignore_class=ignore_class,
            axis=axis,
            z_loss=z_loss,
        )

    def call(self, y_true, y_pred):
        # Labels are aligned by the function (it squeezes a size-1 class axis), not by rank,
        # so shape errors name the labels as given.
        return sparse_categorical_crossentropy(y_true, y_pred, **self._fn_kwargs)

    def loss_mask(self, y_true, y_pred):
        if self.ignore_class is None:
            return None
        axis = normalize_axis(self.axis, max(jnp.ndim(y_pred), 1))
        labels = _sparse_labels(y_true, y_pred, axis, self.name)
        return labels != self.ignore_class


class Poisson(_ProbabilisticLoss):
    """Poisson loss ``mean(y_pred - y_true * log(y_pred + 1e-7), axis=-1)``; see :func:`poisson`.

    Args:
        reduction: see :class:`~losses_jax.base.Loss`.
        name: default ``"poisson"``.
        dtype: compute and result dtype.

    Examples:
        >>> print(f"{float(Poisson()([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [0.0, 0.0]])):.4f}")
        0.5000
    """

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(poisson, reduction, name, dtype)


class KLDivergence(_ProbabilisticLoss):
    """Kullback-Leibler divergence ``sum(t * log(t / p), axis=-1)``; see :func:`kl_divergence`.

    Args:
        reduction: see :class:`~losses_jax.base.Loss`.
        name: default ``"kl_divergence"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_true, y_pred = [[0.0, 1.0], [0.0, 0.0]], [[0.6, 0.4], [0.4, 0.6]]
        >>> print(f"{float(KLDivergence()(y_true, y_pred)):.3f}")
        0.458
    """

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, reduction, name, dtype)


class CategoricalGeneralizedCrossEntropy(_ProbabilisticLoss):
    """Generalized cross-entropy ``(1 - p[y_true] ** q) / q``; see
    :func:`categorical_generalized_cross_entropy`.

    Args:
        q: float in ``(0, 1]`` (default 0.5); near 0 behaves like cross-entropy, 1 like MAE.
        reduction: see :class:`~losses_jax.base.Loss`.
        name: default ``"categorical_generalized_cross_entropy"``.
        dtype: compute and result dtype.

    Examples:
        >>> y_pred = [[0.7, 0.3], [0.2, 0.8], [0.6, 0.4], [0.4, 0.6]]
        >>> print(f"{float(CategoricalGeneralizedCrossEntropy()([0, 1, 0, 1], y_pred)):.4f}")
        0.3599
    """

    def __init__(
        self,
        q=0.5,
        reduction="sum_over_batch_size",
        name="categorical_generalized_cross_entropy",
        dtype=None,
    ):
        super().__init__(categorical_generalized_cross_entropy, reduction, name, dtype, q=q)

    def call(self, y_true, y_pred):
        # Labels are aligned by the function, so shape errors name the labels as given.
        return categorical_generalized_cross_entropy(y_true, y_pred, q=self.q)
