"""Targets, class ids and options shared by the probability losses (binary, categorical, ...).

Validation of the options those losses share (``label_smoothing``, ``gamma``, ``alpha``,
``z_loss``, ``ignore_class``, per-class weights ``class_weight``/``pos_weight``) and the shaping
of their targets: dense targets broadcast to the predictions, integer class ids without the class
axis, label smoothing, per-class weights broadcast along the class axis.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from losses_jax._numerics import accumulation_dtype, safe_divide
from losses_jax._validation import (
    as_float_array,
    as_label_array,
    check_axis,
    check_int,
    check_number,
    is_traced,
    is_zero,
    match_shapes,
    normalize_axis,
)
from losses_jax.checks import guard_unit_interval

__all__ = [
    "check_alpha",
    "check_class_weight",
    "check_gamma",
    "check_ignore_class",
    "check_label_smoothing",
    "check_z_loss",
    "categorical_inputs",
    "classes_last",
    "dense_inputs",
    "listed_weights",
    "per_class_weights",
    "renormalize",
    "smooth_binary",
    "smooth_categorical",
    "sparse_labels",
    "valid_labels",
    "weights_of_labels",
]


# --------------------------------------------------------------------------------------
# options (static values only, so errors fire at trace time)
# --------------------------------------------------------------------------------------
def check_label_smoothing(label_smoothing: Any) -> Any:
    return check_number(label_smoothing, "label_smoothing", low=0.0, high=1.0)


def check_gamma(gamma: Any) -> Any:
    return check_number(gamma, "gamma", low=0.0)


def check_z_loss(z_loss: Any, from_logits: bool) -> Any:
    check_number(z_loss, "z_loss", low=0.0)
    if not from_logits and (is_traced(z_loss) or z_loss != 0):
        raise ValueError(
            f"`z_loss` needs logits (it penalises logsumexp(y_pred)**2); received "
            f"z_loss={z_loss!r} with from_logits=False."
        )
    return z_loss


def check_ignore_class(ignore_class: Any) -> int | None:
    return check_int(ignore_class, "ignore_class", allow_none=True)


def check_alpha(alpha: Any) -> Any:
    """A scalar alpha, or a per-class sequence (returned as a tuple so losses stay hashable)."""
    if is_traced(alpha) or jnp.ndim(alpha) == 0:
        return check_number(alpha, "alpha")
    if jnp.ndim(alpha) != 1:
        raise ValueError(
            f"`alpha` must be a scalar or a 1-D list of per-class weights; received an array "
            f"of shape {jnp.shape(alpha)}."
        )
    return tuple(float(check_number(a, "alpha")) for a in alpha)


# --------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------
def classes_last(x: jax.Array, axis: int) -> jax.Array:
    return x if axis == x.ndim - 1 else jnp.moveaxis(x, axis, -1)


def renormalize(p: jax.Array) -> jax.Array:
    """``p / sum(p, -1)`` as Keras does before clipping; an all-zero row stays 0."""
    p = guard_unit_interval(p, "y_pred")
    return safe_divide(p, jnp.sum(p, axis=-1, keepdims=True))


def dense_inputs(
    y_true: ArrayLike, y_pred: ArrayLike, loss_name: str, same_shape: bool = False
) -> tuple[jax.Array, jax.Array]:
    """``(targets, y_pred)`` of equal shape: targets in ``y_pred``'s accumulation dtype.

    ``y_pred`` keeps its floating dtype. ``y_true`` may differ by a trailing size-1 dimension
    (Keras's rule); then it must have ``y_pred``'s shape (``same_shape``, as Keras's
    cross-entropies require) or broadcast to it.
    """
    y_pred = as_float_array(y_pred, "y_pred")
    y_true = as_label_array(y_true, "y_true")
    y_true, y_pred = match_shapes(y_true, y_pred, loss_name)
    if same_shape and y_true.shape != y_pred.shape:
        hint = ""
        if y_pred.ndim and y_true.shape == (*y_pred.shape[:-1], 1):
            classes = y_pred.shape[-1]
            hint = (
                f" Class ids in `y_true`? Use SparseCategoricalCrossentropy (or one-hot encode "
                f"them with lj.to_categorical(y_true, {classes}))."
            )
        raise ValueError(
            f"{loss_name}: `y_true` and `y_pred` must have the same shape; received "
            f"{tuple(y_true.shape)} and {tuple(y_pred.shape)}.{hint}"
        )
    if jnp.broadcast_shapes(y_true.shape, y_pred.shape) != y_pred.shape:
        raise ValueError(
            f"{loss_name}: `y_true` of shape {tuple(y_true.shape)} does not broadcast to "
            f"`y_pred` of shape {tuple(y_pred.shape)}."
        )
    targets = y_true.astype(accumulation_dtype(y_pred.dtype))
    return jnp.broadcast_to(targets, y_pred.shape), y_pred


def categorical_inputs(
    y_true: ArrayLike, y_pred: ArrayLike, label_smoothing: Any, axis: int, loss_name: str
) -> tuple[jax.Array, jax.Array]:
    """Dense ``(targets, y_pred)`` with the class ``axis`` moved last, targets label-smoothed."""
    check_label_smoothing(label_smoothing)
    check_axis(axis, loss_name, allow_tuple=False)
    targets, y_pred = dense_inputs(y_true, y_pred, loss_name, same_shape=True)
    axis = normalize_axis(axis, y_pred.ndim)
    targets = smooth_categorical(classes_last(targets, axis), label_smoothing)
    return targets, classes_last(y_pred, axis)


def sparse_labels(y_true: ArrayLike, y_pred: jax.Array, axis: int, loss_name: str) -> jax.Array:
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
        # optax's order, (logits, labels): the "labels" then have one axis more than the scores.
        swapped = y_true.ndim == y_pred.ndim + 1 and y_true.shape[:-1] == y_pred.shape
        hint = (
            " The arguments look swapped: losses_jax takes (y_true, y_pred), labels first "
            "(optax takes (logits, labels))."
            if swapped
            else ""
        )
        raise ValueError(
            f"{loss_name}: integer `y_true` of shape {tuple(y_true.shape)} does not fit "
            f"`y_pred` of shape {tuple(y_pred.shape)}: expected labels of shape {expected} "
            f"(y_pred without its class axis {axis}), optionally with a size-1 class axis.{hint}"
        )
    if y_true.dtype not in (jnp.int32, jnp.int64):
        y_true = y_true.astype(jnp.int32)
    return y_true


def valid_labels(labels: jax.Array, num_classes: int, ignore_class: int | None = None) -> jax.Array:
    """Labels in ``[0, num_classes)`` other than ``ignore_class``; the rest give loss 0, as
    Keras's one-hot encoding does."""
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_class is not None:
        valid = valid & (labels != ignore_class)
    return valid


def smooth_binary(targets: jax.Array, label_smoothing: Any) -> jax.Array:
    if is_zero(label_smoothing):
        return targets
    return targets * (1.0 - label_smoothing) + 0.5 * label_smoothing


def smooth_categorical(targets: jax.Array, label_smoothing: Any) -> jax.Array:
    if is_zero(label_smoothing):
        return targets
    return targets * (1.0 - label_smoothing) + label_smoothing / targets.shape[-1]


# --------------------------------------------------------------------------------------
# per-class weights (PyTorch's `weight=` / `pos_weight=`), shared by the binary, categorical and multiclass margin families
# --------------------------------------------------------------------------------------
def check_class_weight(value: Any, name: str, allow_scalar: bool = False) -> Any:
    """``None``, a scalar ``>= 0`` (with ``allow_scalar``) or a 1-D sequence of weights ``>= 0``.

    A sequence comes back as a tuple of floats so that the loss object stays hashable; a traced
    array passes through (its rank is checked, its values cannot be).
    """
    if value is None:
        return None
    if is_traced(value):
        if jnp.ndim(value) > 1 or (jnp.ndim(value) == 0 and not allow_scalar):
            raise ValueError(_class_weight_message(name, None, jnp.shape(value), allow_scalar))
        return value
    if np.ndim(value) == 0 and allow_scalar:
        return check_number(value, name, low=0.0)
    if np.ndim(value) != 1:
        raise ValueError(_class_weight_message(name, None, np.shape(value), allow_scalar))
    return tuple(float(check_number(w, name, low=0.0)) for w in np.asarray(value).tolist())


def listed_weights(config: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``config`` with per-class weights (stored as tuples, to stay hashable) as lists, as Keras
    reports ``alpha``."""
    return {k: list(v) if k in keys and isinstance(v, tuple) else v for k, v in config.items()}


def _class_weight_message(name: str, classes: int | None, shape: Any, allow_scalar: bool) -> str:
    expected = f"({classes},)" if classes is not None else "(num_classes,)"
    scalar = " or a scalar" if allow_scalar else ""
    return (
        f"`{name}` must hold one weight per class, shape {expected}{scalar}; received shape "
        f"{tuple(shape)}."
    )


def per_class_weights(
    value: Any,
    name: str,
    classes: int,
    ndim: int,
    axis: int,
    dtype: Any,
    allow_scalar: bool = False,
) -> jax.Array | None:
    """``value`` as an array that broadcasts along the class ``axis`` (normalized) of an
    ``ndim``-dimensional array with ``classes`` entries on that axis.

    Raises ``ValueError`` unless it holds ``classes`` weights (or is a scalar, if allowed) and,
    when concrete, unless every weight is ``>= 0``.
    """
    if value is None:
        return None
    weights = as_float_array(value, name)
    if (
        weights.ndim > 1
        or (weights.ndim == 0 and not allow_scalar)
        or (weights.ndim == 1 and weights.shape[0] != classes)
    ):
        raise ValueError(_class_weight_message(name, classes, weights.shape, allow_scalar))
    if not is_traced(value) and bool(np.any(np.asarray(value, np.float64) < 0)):
        raise ValueError(f"`{name}` must hold weights >= 0; received {name}={value!r}.")
    if weights.ndim == 1:
        weights = jnp.reshape(weights, (classes,) + (1,) * (ndim - 1 - axis))
    return weights.astype(dtype)


def weights_of_labels(weights: jax.Array, labels: jax.Array) -> jax.Array:
    """``weights[labels]`` for per-class ``weights`` of shape ``(num_classes,)``; labels are
    clipped into range, so callers mask the invalid ones (their weight is a neighbour's).

    Selected by comparison with every class id rather than gathered: a gather of a replicated
    table at batch-sharded ids has no unambiguous result sharding on a mesh of explicit axes.
    """
    classes = weights.shape[0]
    ids = jnp.clip(labels, 0, classes - 1)[..., None]
    return jnp.sum(jnp.where(ids == jnp.arange(classes), weights, 0), axis=-1)
