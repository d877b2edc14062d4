"""Float64 NumPy references: one per loss, written from the formulas, in one place.

Every loss class of the catalogue has exactly one reference here, attached to its
:class:`catalogue.Entry` as ``Entry.reference`` (and, where an analytic gradient is known,
``Entry.reference_grad``). The family test files call the same functions on their own inputs;
the cross-cutting tests call :func:`reference_values` on catalogue inputs. A reference never
calls ``losses_jax``: it is the formula of the cited source, evaluated in float64, so it is
independent of the code under test.

Conventions:

* ``reference(y_true, y_pred, **extra, **options) -> per-sample values`` (float64), where
  ``options`` are the loss's constructor options (``reduction``/``dtype``/``name`` excluded)
  and ``extra`` the extra call arguments (e.g. ``classifier``);
* ``reference_grad(y_true, y_pred, **options) -> d sum(values) / d y_pred`` (float64);
* integer labels are used as given; every float input is converted to float64 first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # catalogue imports this module: no import cycle at run time
    from catalogue import Entry, Inputs

EPS = 1e-7  # Keras's fuzz factor, ``keras.backend.epsilon()``
LOG_2 = math.log(2.0)


def f64(x) -> np.ndarray:
    return np.asarray(x, np.float64)


# --------------------------------------------------------------------------------------
# numerical building blocks (float64)
# --------------------------------------------------------------------------------------
def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x), axis))`` shifted by the row maximum; an all ``-inf`` row gives ``-inf``."""
    x = f64(x)
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):  # an all -inf row gives -inf
        out = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(x, axis=-1):
    """``x - logsumexp(x)``, computed as ``(x - peak) - log(sum)``.

    Adding the peak back first would round ``log(sum)`` away at ``|x| ~ 1e30``. An all
    ``-inf`` row gives ``-inf``.
    """
    x = f64(x)
    peak = np.max(x, axis=axis, keepdims=True)
    shifted = x - np.where(np.isfinite(peak), peak, 0.0)
    total = np.sum(np.exp(shifted), axis=axis, keepdims=True)
    # An all -inf row (total 0) gives -inf everywhere.
    return np.where(total > 0, shifted - np.log(np.where(total > 0, total, 1.0)), -np.inf)


def softplus(x):
    """``log(1 + exp(x))``, exact for every ``x`` (``±inf`` included)."""
    return np.logaddexp(0.0, f64(x))


def log_sigmoid(x):
    """``log(sigmoid(x)) = -softplus(-x)``."""
    return -softplus(-f64(x))


def sigmoid(x):
    return np.exp(log_sigmoid(x))


def log_cosh_elementwise(x):
    """``log(cosh(x))`` to float64 relative precision for every finite ``x``.

    ``cosh(x) - 1 = 2 sinh(x/2)^2`` (no cancellation near 0); above 20,
    ``log(cosh x) = |x| - log 2 + log1p(exp(-2|x|))`` (no overflow).
    """
    x = np.abs(f64(x))
    small = np.minimum(x, 20.0)
    return np.where(
        x < 20.0, np.log1p(2.0 * np.sinh(small / 2.0) ** 2), x - LOG_2 + np.log1p(np.exp(-2 * x))
    )


def times_log(weights, logs):
    """``weights * logs`` with 0 where the weight is 0 (a masked class has log ``-inf``)."""
    with np.errstate(invalid="ignore"):
        return np.where(weights != 0, weights * logs, 0.0)


def one_hot(labels, num_classes, axis=-1):
    """Keras's ``one_hot``: a label outside ``[0, num_classes)`` gives a row of zeros."""
    labels = np.asarray(labels)
    encoded = (labels[..., None] == np.arange(num_classes)).astype(np.float64)
    return np.moveaxis(encoded, -1, axis)


def at_label(x, labels):
    """``x[..., label]`` on the last axis, with labels clipped into range."""
    safe = np.clip(np.asarray(labels), 0, x.shape[-1] - 1)
    return np.take_along_axis(x, safe[..., None], axis=-1)[..., 0]


def class_log_probs(y_pred, from_logits, axis=-1):
    """Log-probabilities as Keras defines them: log-softmax of logits, or the log of the
    probabilities renormalised over ``axis`` and clipped to ``[EPS, 1 - EPS]``."""
    x = f64(y_pred)
    if from_logits:
        return log_softmax(x, axis)
    return np.log(np.clip(x / np.sum(x, axis=axis, keepdims=True), EPS, 1 - EPS))


def _binary_log_probs(p, from_logits):
    """``(log p, log(1 - p))`` from logits, or from probabilities clipped to [EPS, 1-EPS]."""
    if from_logits:
        return log_sigmoid(p), log_sigmoid(-p)
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p), np.log(1 - p)


def _smooth_binary(y_true, label_smoothing):
    return f64(y_true) * (1 - label_smoothing) + 0.5 * label_smoothing


def _smooth_classes(y_true, label_smoothing, axis):
    """Smoothing towards the uniform distribution over the classes of ``axis``."""
    t = f64(y_true)
    return t * (1 - label_smoothing) + label_smoothing / t.shape[axis]


# --------------------------------------------------------------------------------------
# binary
# --------------------------------------------------------------------------------------
def _along(weights, ndim, axis):
    """Per-class ``weights`` shaped to broadcast along ``axis`` of an ``ndim`` array."""
    w = f64(weights)
    if w.ndim == 0:
        return w
    shape = [1] * ndim
    shape[axis] = -1
    return np.reshape(w, shape)


def binary_crossentropy(
    y_true,
    y_pred,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
    class_weight=None,
    pos_weight=None,
):
    """``mean(-w (pw t log p + (1 - t) log(1 - p)), axis)``, ``t`` smoothed towards 0.5,
    ``w``/``pw`` per entry of ``axis`` (1 when not given).

    Source: Goodfellow, Bengio & Courville (2016), *Deep Learning*, §6.2.2; label smoothing:
    Szegedy et al. (2016), CVPR. Keras 3 ``keras.losses.binary_crossentropy`` semantics:
    probabilities clipped to ``[1e-7, 1 - 1e-7]``; logits through exact log-sigmoids. Weights:
    PyTorch's ``binary_cross_entropy_with_logits(weight=, pos_weight=)``.
    """
    t = _smooth_binary(y_true, label_smoothing)
    log_p, log_q = _binary_log_probs(f64(y_pred), from_logits)
    ndim = np.ndim(log_p)
    w = 1.0 if class_weight is None else _along(class_weight, ndim, axis)
    pw = 1.0 if pos_weight is None else _along(pos_weight, ndim, axis)
    return np.mean(-w * (pw * t * log_p + (1 - t) * log_q), axis=axis)


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
    """``mean(w (1 - p_t)^gamma bce, axis)``, ``p_t = t p + (1 - t)(1 - p)``, ``w`` the
    class balancing ``t alpha + (1 - t)(1 - alpha)`` (or 1).

    Source: Lin, Goyal, Girshick, He & Dollár (2017), "Focal Loss for Dense Object Detection",
    ICCV. Keras 3 ``keras.losses.binary_focal_crossentropy`` semantics (smoothing before
    ``p_t``; ``p`` unclipped in the focal factor).
    """
    t = _smooth_binary(y_true, label_smoothing)
    x = f64(y_pred)
    log_p, log_q = _binary_log_probs(x, from_logits)
    bce = -(t * log_p + (1 - t) * log_q)
    prob = sigmoid(x) if from_logits else x
    p_t = t * prob + (1 - t) * (1 - prob)
    weight = t * alpha + (1 - t) * (1 - alpha) if apply_class_balancing else 1.0
    return np.mean(weight * (1 - p_t) ** gamma * bce, axis=axis)


# --------------------------------------------------------------------------------------
# categorical
# --------------------------------------------------------------------------------------
def categorical_crossentropy(
    y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1, z_loss=0.0, class_weight=None
):
    """``-sum(w t log p, axis) + z_loss * logsumexp(logits)^2``, ``t`` smoothed over ``axis``,
    ``w`` the per-class weights (PyTorch's ``cross_entropy(weight=)``; 1 when not given).

    Source: Goodfellow et al. (2016), *Deep Learning*, §6.2.2; label smoothing: Szegedy et al.
    (2016); z-loss: Chowdhery et al. (2022), "PaLM", arXiv:2204.02311. Keras 3
    ``keras.losses.categorical_crossentropy`` semantics (probabilities renormalised and
    clipped); a class of target weight 0 contributes 0 even at log-probability ``-inf``.
    """
    t = _smooth_classes(y_true, label_smoothing, axis)
    if class_weight is not None:
        t = t * _along(class_weight, t.ndim, axis)
    loss = -np.sum(times_log(t, class_log_probs(y_pred, from_logits, axis)), axis=axis)
    if z_loss:
        loss = loss + z_loss * logsumexp(y_pred, axis) ** 2
    return loss


def categorical_focal_crossentropy(
    y_true, y_pred, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1
):
    """``-sum(alpha (1 - p)^gamma t log p, axis)``; ``alpha`` a scalar or one per class.

    Source: Lin et al. (2017), "Focal Loss for Dense Object Detection", ICCV. Keras 3
    ``keras.losses.categorical_focal_crossentropy`` semantics.
    """
    t = _smooth_classes(y_true, label_smoothing, axis)
    log_p = class_log_probs(y_pred, from_logits, axis)
    if np.ndim(alpha):
        shape = [1] * t.ndim
        shape[axis] = -1
        alpha = np.reshape(f64(alpha), shape)
    weights = alpha * (1 - np.exp(log_p)) ** gamma * t
    return -np.sum(times_log(weights, log_p), axis=axis)


def sparse_categorical_crossentropy(
    y_true, y_pred, from_logits=False, ignore_class=None, axis=-1, z_loss=0.0, class_weight=None
):
    """``-w[label] log p[label] + z_loss * logsumexp(logits)^2``; 0 at ``ignore_class`` labels;
    ``w`` the per-class weights (PyTorch's ``cross_entropy(weight=)``; 1 when not given).

    Source: Goodfellow et al. (2016), §6.2.2; z-loss: Chowdhery et al. (2022). Keras 3
    ``keras.losses.sparse_categorical_crossentropy`` semantics: labels one-hot encoded (an
    out-of-range label gives a loss of 0).
    """
    labels = np.asarray(y_true)
    x = f64(y_pred)
    encoded = one_hot(labels, x.shape[axis], axis)
    if class_weight is not None:
        encoded = encoded * _along(class_weight, encoded.ndim, axis)
    loss = -np.sum(times_log(encoded, class_log_probs(x, from_logits, axis)), axis=axis)
    if z_loss:
        loss = loss + z_loss * logsumexp(x, axis) ** 2
    if ignore_class is not None:
        loss = np.where(labels == ignore_class, 0.0, loss)
    return loss


# --------------------------------------------------------------------------------------
# probabilistic
# --------------------------------------------------------------------------------------
def poisson(y_true, y_pred, log_input=False, full=False, eps=EPS):
    """``mean(p - t log(p + eps), -1)``, or ``mean(exp(x) - t x, -1)`` for log-rates ``x``;
    ``full`` adds Stirling's ``t log t - t + log(2 pi t) / 2`` where ``t > 1``.

    Source: McCullagh & Nelder (1989), *Generalized Linear Models*; Keras 3
    ``keras.losses.poisson``; PyTorch ``poisson_nll_loss`` (log_input, full, eps).
    """
    t, x = f64(y_true), f64(y_pred)
    loss = np.exp(x) - times_log(t, x) if log_input else x - times_log(t, np.log(x + eps))
    if full:
        k = np.where(t > 1, t, 1.0)
        loss = loss + np.where(t > 1, k * np.log(k) - k + 0.5 * np.log(2 * np.pi * k), 0.0)
    return np.mean(loss, axis=-1)


def _t_log_t(t):
    """``t log t`` with ``0 log 0 = 0``."""
    return times_log(t, np.log(np.where(t > 0, t, 1.0)))


def kl_divergence(y_true, y_pred, from_logits=False, log_targets=False):
    """``sum(t log(t / p), -1)``: Keras's form (both clipped to ``[1e-7, 1]``) unless ``y_pred``
    holds logits (``log p = log_softmax``) or ``y_true`` log-probabilities (``t = exp``); then
    the targets enter exactly, ``0 log 0 = 0``.

    Source: Kullback & Leibler (1951), *Ann. Math. Stat.* 22(1); Keras 3
    ``keras.losses.kl_divergence``; optax ``kl_divergence(_with_log_targets)``, PyTorch
    ``kl_div(log_target=)``.
    """
    if not (from_logits or log_targets):
        t, p = np.clip(f64(y_true), EPS, 1), np.clip(f64(y_pred), EPS, 1)
        return np.sum(t * np.log(t / p), axis=-1)
    log_p = log_softmax(y_pred) if from_logits else np.log(np.clip(f64(y_pred), EPS, 1))
    if log_targets:
        log_t = f64(y_true)
        return np.sum(times_log(np.exp(log_t), log_t - log_p), axis=-1)
    t = f64(y_true)
    return np.sum(_t_log_t(t) - times_log(t, log_p), axis=-1)


def generalized_kl_divergence(y_true, y_pred, log_predictions=False):
    """``sum(t log(t / q) - t + q, -1)`` of unnormalized measures, ``q`` floored at 1e-7 (or
    ``q = exp(y_pred)`` exactly with ``log_predictions``).

    Source: Bregman (1967); optax ``generalized_kl_divergence``.
    """
    t, x = f64(y_true), f64(y_pred)
    q = np.exp(x) if log_predictions else np.maximum(x, EPS)
    log_q = x if log_predictions else np.log(q)
    return np.sum(_t_log_t(t) - times_log(t, log_q) - t + q, axis=-1)


def gaussian_nll(y_true, y_pred, variance, full=False, eps=1e-6):
    """``mean((log v + (t - mu)^2 / v) / 2, -1)`` (``+ log(2 pi) / 2`` with ``full``),
    ``v = max(variance, eps)``; a variance of ``y_pred``'s shape without its last axis is one
    per sample.

    Source: Nix & Weigend (1994), IEEE ICNN; PyTorch ``gaussian_nll_loss``.
    """
    t, mu, v = f64(y_true), f64(y_pred), f64(variance)
    if v.shape != mu.shape and v.shape == mu.shape[:-1]:
        v = v[..., None]
    v = np.maximum(v, eps)
    loss = 0.5 * (np.log(v) + (t - mu) ** 2 / v) + (0.5 * np.log(2 * np.pi) if full else 0.0)
    return np.mean(np.broadcast_to(loss, np.broadcast_shapes(loss.shape, mu.shape)), axis=-1)


def poly_crossentropy(y_true, y_pred, epsilon=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    """``-sum(t log p, axis) + epsilon * sum(t (1 - p), axis)``, ``t`` smoothed over ``axis``
    (probabilities renormalised; the log's argument clipped as Keras's cross-entropy).

    Source: Leng et al. (2022), "PolyLoss: A Polynomial Expansion Perspective of
    Classification Loss Functions", ICLR; optax ``poly_loss_cross_entropy``.
    """
    t = _smooth_classes(y_true, label_smoothing, axis)
    x = f64(y_pred)
    p = np.exp(log_softmax(x, axis)) if from_logits else x / np.sum(x, axis=axis, keepdims=True)
    ce = -np.sum(times_log(t, class_log_probs(x, from_logits, axis)), axis=axis)
    return ce + epsilon * np.sum(t * (1.0 - p), axis=axis)


def categorical_generalized_cross_entropy(y_true, y_pred, q=0.5):
    """``(1 - p[label]^q) / q``, the label one-hot encoded.

    Source: Zhang & Sabuncu (2018), "Generalized Cross Entropy Loss for Training Deep Neural
    Networks with Noisy Labels", NeurIPS; Keras 3
    ``keras.losses.categorical_generalized_cross_entropy``.
    """
    x = f64(y_pred)
    p = np.sum(one_hot(y_true, x.shape[-1]) * x, axis=-1)
    return (1 - p**q) / q


# --------------------------------------------------------------------------------------
# regression (Keras 3 ``keras.losses``: same formulas and constants)
# --------------------------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    """``mean((t - p)^2, -1)``; Keras 3 ``keras.losses.mean_squared_error``."""
    t, p = f64(y_true), f64(y_pred)
    return np.mean((t - p) ** 2, axis=-1)


def mean_absolute_error(y_true, y_pred):
    """``mean(|t - p|, -1)``; Keras 3 ``keras.losses.mean_absolute_error``."""
    t, p = f64(y_true), f64(y_pred)
    return np.mean(np.abs(t - p), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """``100 mean(|t - p| / max(|t|, 1e-7), -1)``; Keras 3
    ``keras.losses.mean_absolute_percentage_error``."""
    t, p = f64(y_true), f64(y_pred)
    return 100.0 * np.mean(np.abs(t - p) / np.maximum(np.abs(t), EPS), axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """``mean((log(max(p, 1e-7) + 1) - log(max(t, 1e-7) + 1))^2, -1)``; Keras 3
    ``keras.losses.mean_squared_logarithmic_error``."""
    t, p = f64(y_true), f64(y_pred)
    log_ratio = np.log(np.maximum(p, EPS) + 1.0) - np.log(np.maximum(t, EPS) + 1.0)
    return np.mean(log_ratio**2, axis=-1)


def unit(x, axis=-1):
    """Keras's ``normalize``: ``x / max(||x||, 1e-7)`` along ``axis``."""
    x = f64(x)
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), EPS)


def cosine_similarity(y_true, y_pred, axis=-1):
    """``-sum(unit(t) unit(p), axis)``; Keras 3 ``keras.losses.cosine_similarity`` (same sign
    convention and norm floor)."""
    return -np.sum(unit(y_true, axis) * unit(y_pred, axis), axis=axis)


def huber(y_true, y_pred, delta=1.0):
    """``mean(e^2 / 2 if |e| <= delta else delta |e| - delta^2 / 2, -1)``, ``e = p - t``.

    Source: Huber (1964), "Robust Estimation of a Location Parameter", *Ann. Math. Stat.*
    35(1); Keras 3 ``keras.losses.huber``.
    """
    e = np.abs(f64(y_pred) - f64(y_true))
    return np.mean(np.where(e <= delta, 0.5 * e**2, delta * e - 0.5 * delta**2), axis=-1)


def log_cosh(y_true, y_pred):
    """``mean(log(cosh(p - t)), -1)``; Keras 3 ``keras.losses.log_cosh`` (same formula),
    evaluated with :func:`log_cosh_elementwise`: neither tiny nor huge errors lose precision."""
    return np.mean(log_cosh_elementwise(f64(y_pred) - f64(y_true)), axis=-1)


# Analytic gradients of sum(loss) w.r.t. y_pred, in float64 (the derivatives of the formulas).
def grad_mean_squared_error(y_true, y_pred):
    """``2 (p - t) / d``, ``d`` the size of the last axis (differentiating the formula above)."""
    t, p = f64(y_true), f64(y_pred)
    return 2.0 * (p - t) / p.shape[-1]


def grad_mean_absolute_error(y_true, y_pred):
    """``sign(p - t) / d`` (away from the kink at ``p = t``)."""
    t, p = f64(y_true), f64(y_pred)
    return np.sign(p - t) / p.shape[-1]


def grad_mean_absolute_percentage_error(y_true, y_pred):
    """``100 sign(p - t) / max(|t|, 1e-7) / d``."""
    t, p = f64(y_true), f64(y_pred)
    return 100.0 * np.sign(p - t) / np.maximum(np.abs(t), EPS) / p.shape[-1]


def grad_mean_squared_logarithmic_error(y_true, y_pred):
    """``2 (log1p(max(p, eps)) - log1p(max(t, eps))) / (1 + p) / d``, 0 where ``p <= eps``
    (Keras's ``maximum`` passes no gradient there)."""
    t, p = f64(y_true), f64(y_pred)
    log_ratio = np.log1p(np.maximum(p, EPS)) - np.log1p(np.maximum(t, EPS))
    return 2.0 * log_ratio / (1.0 + p) * (p > EPS) / p.shape[-1]


def grad_cosine_similarity(y_true, y_pred, axis=-1):
    """For ``||p|| > 1e-7``: ``-(unit(t) - <unit(t), unit(p)> unit(p)) / ||p||``."""
    unit_t, unit_p = unit(y_true, axis), unit(y_pred, axis)
    along = np.sum(unit_t * unit_p, axis=axis, keepdims=True)
    return -(unit_t - along * unit_p) / np.linalg.norm(f64(y_pred), axis=axis, keepdims=True)


def grad_huber(y_true, y_pred, delta=1.0):
    """``e / d`` inside ``|e| <= delta``, ``delta sign(e) / d`` outside; ``e = p - t``."""
    e = f64(y_pred) - f64(y_true)
    return np.where(np.abs(e) <= delta, e, delta * np.sign(e)) / e.shape[-1]


def grad_log_cosh(y_true, y_pred):
    """``tanh(p - t) / d``."""
    e = f64(y_pred) - f64(y_true)
    return np.tanh(e) / e.shape[-1]


# --------------------------------------------------------------------------------------
# margin (hinge family)
# --------------------------------------------------------------------------------------
def signed_labels(y_true):
    """Keras maps labels to -1/1 only when every label is 0 or 1."""
    t = f64(y_true)
    return 2.0 * t - 1.0 if np.all((t == 0) | (t == 1)) else t


def hinge(y_true, y_pred):
    """``mean(max(1 - y p, 0), -1)``, ``y`` the signed labels.

    Source: Cortes & Vapnik (1995), "Support-Vector Networks", *Machine Learning* 20; Keras 3
    ``keras.losses.hinge`` (including the {0, 1} -> {-1, 1} mapping).
    """
    return np.mean(np.maximum(1.0 - signed_labels(y_true) * f64(y_pred), 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """``mean(max(1 - y p, 0)^2, -1)``; Keras 3 ``keras.losses.squared_hinge``."""
    return np.mean(np.maximum(1.0 - signed_labels(y_true) * f64(y_pred), 0.0) ** 2, axis=-1)


def categorical_hinge(y_true, y_pred):
    """``max(neg - pos + 1, 0)``, ``pos = sum(t p)``, ``neg = max((1 - t) p)``.

    Source: Crammer & Singer (2001), *JMLR* 2, in Keras 3's form
    (``keras.losses.categorical_hinge``: the true class enters ``neg`` as 0).
    """
    t, p = f64(y_true), f64(y_pred)
    pos = np.sum(t * p, axis=-1)
    neg = np.max((1.0 - t) * p, axis=-1)
    return np.maximum(neg - pos + 1.0, 0.0)


def grad_hinge(y_true, y_pred):
    """``-y / d`` where the margin ``1 - y p`` is positive, else 0."""
    y, p = signed_labels(y_true), f64(y_pred)
    return -y * (1.0 - y * p > 0) / p.shape[-1]


def grad_squared_hinge(y_true, y_pred):
    """``-2 y max(1 - y p, 0) / d``."""
    y, p = signed_labels(y_true), f64(y_pred)
    return -2.0 * y * np.maximum(1.0 - y * p, 0.0) / p.shape[-1]


def grad_categorical_hinge(y_true, y_pred):
    """Where the loss is positive: ``+1`` on the best wrong class, ``-t`` on the true one."""
    t, p = f64(y_true), f64(y_pred)
    others = (1.0 - t) * p
    best = np.argmax(others, axis=-1)[..., None]
    active = (categorical_hinge(t, p) > 0)[..., None]
    best_one_hot = np.arange(p.shape[-1]) == best
    return active * (best_one_hot * (1.0 - t) - t)


# --------------------------------------------------------------------------------------
# segmentation and similarity
# --------------------------------------------------------------------------------------
def dice(y_true, y_pred, axis=None):
    """``1 - 2 sum(t p) / (sum(t) + sum(p) + 1e-7)`` over ``axis``.

    Source: Milletari, Navab & Ahmadi (2016), "V-Net", 3DV, in Keras 3's form
    (``keras.losses.dice``: the denominator sums the values, not their squares).
    """
    t, p = f64(y_true), f64(y_pred)
    overlap = np.sum(t * p, axis=axis)
    return 1.0 - 2.0 * overlap / (np.sum(t, axis=axis) + np.sum(p, axis=axis) + EPS)


def tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """``1 - tp / (tp + alpha m + beta s + 1e-7)`` over ``axis``; ``m = sum(t (1 - p))``,
    ``s = sum((1 - t) p)``.

    Source: Salehi, Erdogmus & Gholipour (2017), "Tversky Loss Function for Image Segmentation
    Using 3D Fully Convolutional Deep Networks", MLMI; Keras 3 ``keras.losses.tversky``.
    """
    t, p = f64(y_true), f64(y_pred)
    hits = np.sum(t * p, axis=axis)
    missed = np.sum(t * (1.0 - p), axis=axis)
    spurious = np.sum((1.0 - t) * p, axis=axis)
    return 1.0 - hits / (hits + alpha * missed + beta * spurious + EPS)


def grad_dice(y_true, y_pred, axis=None):
    """``d/dp [1 - 2 I / S] = -(2 t S - 2 I) / S^2`` per sample, ``S = sum(t) + sum(p) + eps``."""
    t, p = f64(y_true), f64(y_pred)
    overlap = np.sum(t * p, axis=axis, keepdims=True)
    total = np.sum(t, axis=axis, keepdims=True) + np.sum(p, axis=axis, keepdims=True) + EPS
    return -(2.0 * t * total - 2.0 * overlap) / total**2


def grad_tversky(y_true, y_pred, alpha=0.5, beta=0.5, axis=None):
    """With ``D = tp + alpha m + beta s + eps``: ``d(tp)/dp = t``, ``d(m)/dp = -t``,
    ``d(s)/dp = 1 - t``, and ``d/dp [1 - tp / D] = -(t D - tp dD/dp) / D^2``."""
    t, p = f64(y_true), f64(y_pred)
    hits = np.sum(t * p, axis=axis, keepdims=True)
    denominator = (
        hits
        + alpha * np.sum(t * (1 - p), axis=axis, keepdims=True)
        + beta * np.sum((1 - t) * p, axis=axis, keepdims=True)
        + EPS
    )
    d_denominator = t - alpha * t + beta * (1.0 - t)
    return -(t * denominator - hits * d_denominator) / denominator**2


def circle(
    y_true,
    y_pred,
    ref_labels=None,
    ref_embeddings=None,
    remove_diagonal=True,
    gamma=80.0,
    margin=0.4,
):
    """Circle loss in similarity form, one query at a time; 0 for a query without a positive
    or without a negative pair.

    Source: Sun et al. (2020), "Circle Loss: A Unified Perspective of Pair Similarity
    Optimization", CVPR, with Keras 3's conventions (``keras.losses.circle``): distances
    ``1 - s`` clipped at 0, the reference set defaulting to the batch, the diagonal removed
    from the positives when ``remove_diagonal``.
    """
    labels, embeddings = np.asarray(y_true), f64(y_pred)
    ref_labels = labels if ref_labels is None else np.asarray(ref_labels)
    ref_embeddings = embeddings if ref_embeddings is None else f64(ref_embeddings)
    losses = []
    for i, label in enumerate(labels):
        similarity = np.minimum(ref_embeddings @ embeddings[i], 1.0)
        same = ref_labels == label
        not_self = np.arange(len(ref_labels)) != i
        positives = similarity[same & not_self] if remove_diagonal else similarity[same]
        negatives = similarity[~same]
        if positives.size == 0 or negatives.size == 0:
            losses.append(0.0)
            continue
        alpha_p = np.maximum(1.0 + margin - positives, 0.0)
        alpha_n = np.maximum(negatives + margin, 0.0)
        logit_p = -gamma * alpha_p * (positives - (1.0 - margin))
        logit_n = gamma * alpha_n * (negatives - margin)
        losses.append(np.logaddexp(0.0, logsumexp(logit_p) + logsumexp(logit_n)))
    return np.array(losses)


# --------------------------------------------------------------------------------------
# sequence and large vocabulary
# --------------------------------------------------------------------------------------
def ctc(labels, logits, mask_index=0, zero_infinity=False, normalize_by_target_length=False):
    """-log sum over alignments, by the alpha recursion; the targets are the non-blank labels.

    Source: Graves, Fernández, Gomez & Schmidhuber (2006), "Connectionist Temporal
    Classification", ICML (the forward recursion, in log space), with Keras 3's label layout
    (``keras.losses.ctc``: labels right-padded with the blank). Every catalogue input has a
    feasible alignment, so ``zero_infinity`` changes nothing.
    """
    blank = mask_index % logits.shape[-1]
    losses = []
    for target, log_probs in zip(labels, log_softmax(logits)):
        target = [int(c) for c in target if c != blank and c >= 0]
        extended = [blank]
        for c in target:
            extended += [c, blank]
        alpha = np.full(len(extended), -np.inf)
        alpha[0] = log_probs[0, blank]
        if target:
            alpha[1] = log_probs[0, target[0]]
        for frame in log_probs[1:]:
            previous = alpha.copy()
            for s, c in enumerate(extended):
                terms = [previous[s]] + ([previous[s - 1]] if s >= 1 else [])
                if s >= 2 and c != blank and c != extended[s - 2]:
                    terms.append(previous[s - 2])
                alpha[s] = np.logaddexp.reduce(terms) + frame[c]
        loss = -np.logaddexp.reduce(alpha[-2:] if target else alpha[-1:])
        losses.append(loss / max(len(target), 1) if normalize_by_target_length else loss)
    return np.array(losses)


def linear_cross_entropy(
    labels,
    embeddings,
    classifier,
    ignore_class=None,
    label_smoothing=0.0,
    z_loss=0.0,
    logit_soft_cap=None,
):
    """Softmax cross-entropy of the logits ``embeddings @ classifier`` (optionally soft-capped
    ``c tanh(x / c)``), with label smoothing, z-loss and ``ignore_class``.

    Source: Wijmans et al. (2024), "Cut Your Losses in Large-Vocabulary Language Models";
    soft cap: Gemma 2 (Team Gemma, 2024); z-loss: Chowdhery et al. (2022), "PaLM".
    """
    logits = embeddings @ classifier
    if logit_soft_cap:
        logits = logit_soft_cap * np.tanh(logits / logit_soft_cap)
    lse = logsumexp(logits)
    loss = (
        lse
        - (1 - label_smoothing) * at_label(logits, labels)
        - label_smoothing * logits.mean(-1)
        + z_loss * lse**2
    )
    return np.where(labels == ignore_class, 0.0, loss) if ignore_class is not None else loss


def linear_log_probs(embeddings, classifier, labels, bias=None, temperature=1.0):
    """(log softmax(z / T)[label], entropy of softmax(z / T)) with ``z = e @ W + b`` formed.

    Source: the definitions (the log-likelihood of a token and Shannon's entropy).
    """
    logits = embeddings @ classifier + (0.0 if bias is None else bias)
    log_p = log_softmax(logits / temperature)
    return at_label(log_p, labels), -(np.exp(log_p) * log_p).sum(-1)


def _head_log_probs(embeddings, classifier, bias, temperature):
    return log_softmax((embeddings @ classifier + (0.0 if bias is None else bias)) / temperature)


def linear_kl_divergence(
    teacher_embeddings,
    student_embeddings,
    classifier,
    teacher_classifier,
    bias=None,
    teacher_bias=None,
    labels=None,
    temperature=1.0,
    direction="forward",
    ignore_class=None,
    **_sharding,
):
    """KL(teacher || student) ("forward") or KL(student || teacher) of the softened softmaxes
    of two linear heads, logits formed; tokens labelled ``ignore_class`` give 0. Arguments in
    the class's call order (teacher's hidden states first).

    Source: Hinton et al. (2015), "Distilling the Knowledge in a Neural Network".
    """
    log_s = _head_log_probs(student_embeddings, classifier, bias, temperature)
    log_t = _head_log_probs(teacher_embeddings, teacher_classifier, teacher_bias, temperature)
    p, q = (log_t, log_s) if direction == "forward" else (log_s, log_t)
    values = (np.exp(p) * (p - q)).sum(-1)
    if ignore_class is not None and labels is not None:
        values = np.where(np.asarray(labels) == ignore_class, 0.0, values)
    return values


def linear_jsd(
    teacher_embeddings,
    student_embeddings,
    classifier,
    teacher_classifier,
    bias=None,
    teacher_bias=None,
    labels=None,
    beta=0.5,
    temperature=1.0,
    ignore_class=None,
    **_sharding,
):
    """Generalised JSD ``beta KL(t || m) + (1 - beta) KL(s || m)``, ``m = beta t + (1 - beta) s``;
    beta = 0 / 1 give KL(t || s) / KL(s || t) as in Liger-Kernel and TRL. Logits formed.

    Source: Agarwal et al. (2024), "On-Policy Distillation of Language Models" (GKD).
    """
    if beta in (0.0, 1.0):
        direction = "forward" if beta == 0.0 else "reverse"
        return linear_kl_divergence(
            teacher_embeddings, student_embeddings, classifier, teacher_classifier, bias,
            teacher_bias, labels, temperature, direction, ignore_class,
        )  # fmt: skip
    log_s = _head_log_probs(student_embeddings, classifier, bias, temperature)
    log_t = _head_log_probs(teacher_embeddings, teacher_classifier, teacher_bias, temperature)
    log_m = np.logaddexp(log_t + np.log(beta), log_s + np.log1p(-beta))
    values = beta * (np.exp(log_t) * (log_t - log_m)).sum(-1) + (1 - beta) * (
        np.exp(log_s) * (log_s - log_m)
    ).sum(-1)
    if ignore_class is not None and labels is not None:
        values = np.where(np.asarray(labels) == ignore_class, 0.0, values)
    return values


# --------------------------------------------------------------------------------------
# reductions, and the references of catalogue inputs
# --------------------------------------------------------------------------------------
def keras_reduction(losses, weight, reduction, mask=None):
    """Keras's reductions in float64.

    A weight covering the leading dimensions scales every element below them. As in Keras
    (whose (B, 1) weights show it), "mean_with_sample_weight" divides by the sum of the weights
    as given, not as broadcast.
    """
    losses = f64(losses)
    w = np.ones(()) if weight is None else f64(weight)
    m = np.ones(losses.shape) if mask is None else np.broadcast_to(mask, losses.shape)
    weighted = losses * np.reshape(w, w.shape + (1,) * (losses.ndim - w.ndim)) * m
    if reduction in (None, "none"):
        return weighted
    if reduction == "sum":
        return weighted.sum()
    if reduction == "mean_with_sample_weight" and weight is not None:
        return weighted.sum() / w.sum()
    return weighted.sum() / m.sum() if m.sum() else 0.0


def reference_function(entry: Entry) -> Callable:
    """The entry's reference."""
    assert entry.reference is not None, f"{entry.name} has no reference"
    return entry.reference


def reference_values(entry: Entry, options: dict, inputs: Inputs) -> np.ndarray:
    """Float64 per-sample losses of catalogue ``inputs`` for ``entry`` built with ``options``."""
    y_true, y_pred = np.asarray(inputs.y_true), f64(inputs.y_pred)
    if not entry.sparse_labels:
        y_true = f64(y_true)
    extra = {key: f64(value) for key, value in inputs.extra.items()}
    return np.asarray(reference_function(entry)(y_true, y_pred, **extra, **options))


def reference_valid(entry: Entry, options: dict, inputs: Inputs, values: np.ndarray):
    """Which per-sample entries count in the reduction (Keras masks ignored ones)."""
    ignore = options.get("ignore_class")
    if ignore is not None:
        return np.asarray(inputs.y_true) != ignore
    if entry.name == "Circle":
        return values > 0  # Keras masks queries whose loss is 0
    if entry.name in ("NTXent", "SupervisedContrastive", "BatchSemiHardTriplet"):
        return contrastive_anchor_valid(inputs.y_true)  # anchors without positives leave
    if entry.name == "PolicyGradient" and options.get("aggregation") == "token":
        return np.asarray(inputs.extra["token_mask"]) != 0  # padding leaves the token mean
    return np.ones(values.shape, bool)


def reference_mean(values, weights, valid) -> float:
    """Keras's ``"sum_over_batch_size"``: weighted sum over the number of valid entries."""
    count = valid.sum()
    return float((values * weights * valid).sum() / count) if count else 0.0


# --------------------------------------------------------------------------------------
# multiclass and multilabel margins (optax, PyTorch), written from the papers' formulas
# --------------------------------------------------------------------------------------
def _true_scores(y_true, y_pred):
    """``(scores, labels clipped into range, whether each label is in range)``."""
    s, labels = f64(y_pred), np.asarray(y_true).astype(np.int64)
    if labels.ndim == s.ndim:
        labels = labels[..., 0]
    valid = (labels >= 0) & (labels < s.shape[-1])
    return s, np.clip(labels, 0, s.shape[-1] - 1), valid


def multiclass_hinge(y_true, y_pred):
    """``max(0, 1 + max_{j != y} s_j - s_y)``; 0 for a label out of range.

    Source: Crammer & Singer (2001), "On the Algorithmic Implementation of Multiclass
    Kernel-based Vector Machines", *JMLR* 2.
    """
    s, labels, valid = _true_scores(y_true, y_pred)
    is_true = np.arange(s.shape[-1]) == labels[..., None]
    best_other = np.where(is_true, -np.inf, s).max(axis=-1)  # -inf with a single class
    loss = np.maximum(0.0, 1.0 + best_other - at_label(s, labels))
    return np.where(valid, loss, 0.0)


def multiclass_perceptron(y_true, y_pred):
    """``max_j s_j - s_y`` (Collins, 2002, EMNLP); 0 for a label out of range."""
    s, labels, valid = _true_scores(y_true, y_pred)
    return np.where(valid, s.max(axis=-1) - at_label(s, labels), 0.0)


def multi_margin(y_true, y_pred, p=1, margin=1.0, class_weight=None):
    """``w[y] * sum_{j != y} max(0, margin - s_y + s_j) ** p / C``.

    Source: Weston & Watkins (1999), ESANN; PyTorch's ``multi_margin_loss`` documentation and
    kernel (the weight multiplies the powered sum).
    """
    s, labels, valid = _true_scores(y_true, y_pred)
    num_classes = s.shape[-1]
    z = margin - at_label(s, labels)[..., None] + s
    counted = (np.arange(num_classes) != labels[..., None]) & (z > 0)
    loss = np.sum(np.where(counted, z, 0.0) ** p, axis=-1) / num_classes
    if class_weight is not None:
        loss = loss * f64(class_weight)[labels]
    return np.where(valid, loss, 0.0)


def multilabel_margin(y_true, y_pred):
    """``sum_{k listed} sum_{i not a target} max(0, 1 - s[t_k] + s_i) / C``, by loops.

    Source: PyTorch's ``multilabel_margin_loss`` documentation: the target list of each sample
    ends at its first negative entry; ids ``>= C`` are skipped here.
    """
    s = f64(y_pred)
    num_classes = s.shape[-1]
    rows, targets = s.reshape(-1, num_classes), np.asarray(y_true).reshape(-1, num_classes)
    out = np.zeros(len(rows))
    for n, (row, listed_ids) in enumerate(zip(rows, targets)):
        listed = []
        for k in listed_ids:
            if k < 0:
                break
            if k < num_classes:
                listed.append(int(k))
        others = [i for i in range(num_classes) if i not in listed]
        out[n] = sum(max(0.0, 1.0 - row[k] + row[i]) for k in listed for i in others)
    return out.reshape(s.shape[:-1]) / num_classes


def perceptron(y_true, y_pred):
    """``mean(max(0, -y p), -1)``, ``y`` the signed labels (Rosenblatt, 1958)."""
    return np.mean(np.maximum(0.0, -signed_labels(y_true) * f64(y_pred)), axis=-1)


def grad_perceptron(y_true, y_pred):
    """``-y / d`` where ``-y p > 0``, else 0."""
    y, p = signed_labels(y_true), f64(y_pred)
    return -y * (-y * p > 0) / p.shape[-1]


def soft_margin(y_true, y_pred):
    """``mean(log(1 + exp(-y p)), -1)``, ``y`` the signed labels (PyTorch's formula)."""
    return np.mean(softplus(-signed_labels(y_true) * f64(y_pred)), axis=-1)


def grad_soft_margin(y_true, y_pred):
    """``-y sigmoid(-y p) / d``."""
    y, p = signed_labels(y_true), f64(y_pred)
    return -y * sigmoid(-y * p) / p.shape[-1]


def multilabel_soft_margin(y_true, y_pred, class_weight=None):
    """``-mean(w (y log sigmoid(x) + (1 - y) log sigmoid(-x)), -1)`` (PyTorch's formula)."""
    y, x = f64(y_true), f64(y_pred)
    w = 1.0 if class_weight is None else f64(class_weight)
    return -np.mean(w * (y * log_sigmoid(x) + (1.0 - y) * log_sigmoid(-x)), axis=-1)


def grad_multilabel_soft_margin(y_true, y_pred, class_weight=None):
    """``w (sigmoid(x) - y) / C``."""
    y, x = f64(y_true), f64(y_pred)
    w = 1.0 if class_weight is None else f64(class_weight)
    return w * (sigmoid(x) - y) / x.shape[-1]


# --------------------------------------------------------------------------------------
# ranking and embedding losses (PyTorch, optax, rax)
# --------------------------------------------------------------------------------------
def margin_ranking(y_true, y_pred, y_pred_other, margin=0.0):
    """``max(0, margin - y (x1 - x2))`` per pair (Herbrich et al., 1999; PyTorch's formula)."""
    return np.maximum(0.0, margin - f64(y_true) * (f64(y_pred) - f64(y_pred_other)))


def hinge_embedding(y_true, y_pred, margin=1.0):
    """``x`` where ``y != -1`` plus ``max(0, margin - x)`` where ``y != 1`` (PyTorch's kernel:
    a target of 1 or -1 takes one term; Hadsell et al., 2006)."""
    y, x = f64(y_true), f64(y_pred)
    return np.where(y != 1, np.maximum(0.0, margin - x), 0.0) + np.where(y != -1, x, 0.0)


def cosine_embedding(y_true, y_pred, y_pred_other, margin=0.0):
    """``1 - cos`` where ``y = 1``, ``max(0, cos - margin)`` where ``y = -1``, with PyTorch's
    ``cos = x1 . x2 / sqrt((|x1|^2 + eps) (|x2|^2 + eps))``, ``eps`` 1e-12 as a float32 (its
    kernel's constant)."""
    x1, x2, y = f64(y_pred), f64(y_pred_other), f64(y_true)
    if y.shape == (*x1.shape[:-1], 1):
        y = y[..., 0]
    eps = float(np.float32(1e-12))
    norms = (np.sum(x1 * x1, axis=-1) + eps) * (np.sum(x2 * x2, axis=-1) + eps)
    cos = np.sum(x1 * x2, axis=-1) / np.sqrt(norms)
    return np.where(y == 1, 1.0 - cos, 0.0) + np.where(y == -1, np.maximum(0.0, cos - margin), 0.0)


def _list_items(y_true, y_pred, where):
    y, s = f64(y_true), f64(y_pred)
    valid = np.ones(s.shape, bool) if where is None else np.broadcast_to(f64(where) != 0, s.shape)
    return y, s, valid


def listwise_softmax(y_true, y_pred, where=None, item_weight=None):
    """``-sum_i y_i log softmax(s)_i`` over the valid items (ListNet, Cao et al., 2007; optax's
    ``ranking_softmax_loss`` definition: the labels are not normalized)."""
    y, s, valid = _list_items(y_true, y_pred, where)
    y = np.where(valid, y, 0.0)
    if item_weight is not None:
        y = y * f64(item_weight)
    return -np.sum(times_log(y, log_softmax(np.where(valid, s, -np.inf))), axis=-1)


def _pairwise(pair_loss, y_true, y_pred, where, item_weight):
    """``sum_{i, j: y_i > y_j, both valid} w_i pair_loss(s_i - s_j)`` over each list."""
    y, s, valid = _list_items(y_true, y_pred, where)
    ordered = (y[..., :, None] > y[..., None, :]) & valid[..., :, None] & valid[..., None, :]
    difference = np.where(ordered, s[..., :, None] - s[..., None, :], 0.0)
    losses = np.where(ordered, pair_loss(difference), 0.0)
    if item_weight is not None:
        losses = losses * f64(item_weight)[..., :, None]
    return losses.sum(axis=(-2, -1))


def pairwise_logistic(y_true, y_pred, where=None, item_weight=None):
    """RankNet (Burges et al., 2005): ``sum_{y_i > y_j} log(1 + exp(-(s_i - s_j)))`` per list."""
    return _pairwise(lambda d: softplus(-d), y_true, y_pred, where, item_weight)


def pairwise_hinge(y_true, y_pred, where=None, item_weight=None):
    """RankSVM (Herbrich et al., 1999): ``sum_{y_i > y_j} max(0, 1 - (s_i - s_j))`` per list."""
    return _pairwise(lambda d: np.maximum(0.0, 1.0 - d), y_true, y_pred, where, item_weight)


# --------------------------------------------------------------------------------------
# Fenchel-Young losses (Martins & Astudillo, 2016; Blondel, Martins & Niculae, 2020)
# --------------------------------------------------------------------------------------
def sparsemax_projection(scores, axis=-1):
    """Martins & Astudillo's Algorithm 1: ``k = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}``,
    ``tau = (sum_{j<=k} z_(j) - 1) / k``, ``p = max(z - tau, 0)``; on max-shifted scores."""
    z = np.moveaxis(f64(scores), axis, -1)
    z = z - np.max(z, axis=-1, keepdims=True)
    ordered = -np.sort(-z, axis=-1)
    ranks = np.arange(1, z.shape[-1] + 1)
    partial_sums = np.cumsum(ordered, axis=-1)
    support_size = np.sum(1.0 + ranks * ordered > partial_sums, axis=-1, keepdims=True)
    tau = (np.take_along_axis(partial_sums, support_size - 1, axis=-1) - 1.0) / support_size
    return np.moveaxis(np.maximum(z - tau, 0.0), -1, axis)


def sparsemax(labels, scores):
    """optax's form: ``<p, z - z_k> + (1 - ||p||^2) / 2``, the sum over the support only."""
    z = f64(scores)
    p = sparsemax_projection(z)
    z = z - np.max(z, axis=-1, keepdims=True)  # the same value; exact for |z| ~ 1e30
    margins = z - at_label(z, labels)[..., None]
    return np.sum(np.where(p > 0, p * margins, 0.0), axis=-1) + 0.5 * (1.0 - np.sum(p * p, -1))


def grad_sparsemax(labels, scores):
    """``sparsemax(z) - one_hot(k)``."""
    return sparsemax_projection(scores) - one_hot(labels, np.shape(scores)[-1])


def sparse_plus(x):
    """``0`` below -1, ``(x + 1)^2 / 4`` on ``(-1, 1)``, ``x`` above 1."""
    x = f64(x)
    return np.where(x <= -1.0, 0.0, np.where(x >= 1.0, x, (x + 1.0) ** 2 / 4.0))


def binary_sparsemax(y_true, y_pred):
    """``mean(sparse_plus(x) - x y + y^2 - y)``: the Fenchel-Young loss of ``Omega = p^2 - p``
    (``sparse_plus(-x)`` for ``y = 1`` and ``sparse_plus(x)`` for ``y = 0``, as optax)."""
    x, y = f64(y_pred), f64(y_true)
    return np.mean(sparse_plus(x) - x * y + y * y - y, axis=-1)


def grad_binary_sparsemax(y_true, y_pred):
    """``(sparse_sigmoid(x) - y) / n`` with ``sparse_sigmoid(x) = clip((x + 1) / 2, 0, 1)``."""
    x = f64(y_pred)
    return (np.clip((x + 1.0) / 2.0, 0.0, 1.0) - f64(y_true)) / x.shape[-1]


# --------------------------------------------------------------------------------------
# robust regression (PyTorch's smooth L1; TensorFlow Addons' pinball)
# --------------------------------------------------------------------------------------
def smooth_l1(y_true, y_pred, beta=1.0):
    error = np.abs(f64(y_pred) - f64(y_true))
    if beta == 0:
        return np.mean(error, axis=-1)
    return np.mean(np.where(error < beta, 0.5 * error**2 / beta, error - 0.5 * beta), axis=-1)


def grad_smooth_l1(y_true, y_pred, beta=1.0):
    error = f64(y_pred) - f64(y_true)
    inside = np.abs(error) < beta
    slope = np.where(inside, error / (beta if beta else 1.0), np.sign(error))
    return slope / error.shape[-1]


def pinball(y_true, y_pred, tau=0.5):
    error = f64(y_true) - f64(y_pred)
    tau = f64(tau)
    return np.mean(np.maximum(tau * error, (tau - 1.0) * error), axis=-1)


def grad_pinball(y_true, y_pred, tau=0.5):
    error = f64(y_true) - f64(y_pred)
    tau = np.broadcast_to(f64(tau), error.shape)
    return np.where(error >= 0, -tau, 1.0 - tau) / error.shape[-1]


# --------------------------------------------------------------------------------------
# generalized Dice (Sudre et al., 2017, in optax's form)
# --------------------------------------------------------------------------------------
def generalized_dice(y_true, y_pred, from_logits=True, smooth=1.0, ignore_background=False):
    """Per-sample mean over classes of ``w_c * (1 - (I_c + s) / ((P_c + T_c) / 2 + s))``,
    ``w_c = C (1 / (f_c^2 + 1e-7)) / sum_c(1 / (f_c^2 + 1e-7))`` with ``f_c`` the class's target
    mass in the whole batch."""
    t, x = f64(y_true), f64(y_pred)
    classes = x.shape[-1]
    if not from_logits:
        p = x
    elif classes == 1:
        p = sigmoid(x)
    else:
        p = np.exp(log_softmax(x))
    spatial = tuple(range(1, x.ndim - 1))
    intersection = np.sum(p * t, axis=spatial)
    denominator = 0.5 * (np.sum(p, axis=spatial) + np.sum(t, axis=spatial)) + smooth
    with np.errstate(invalid="ignore", divide="ignore"):
        coefficient = np.where(denominator > 0, (intersection + smooth) / denominator, 0.0)
    inverse_squares = 1.0 / (np.sum(t, axis=(0, *spatial)) ** 2 + EPS)
    weights = classes * inverse_squares / inverse_squares.sum()
    per_class = weights * (1.0 - coefficient)
    if ignore_background and classes > 1:
        per_class = per_class[:, 1:]
    return per_class.mean(axis=-1)


# --------------------------------------------------------------------------------------
# preference and policy losses (papers' formulas; catalogue layout: y_pred the policy's
# log-probs, y_true the reference's / token counts / the sampling policy's)
# --------------------------------------------------------------------------------------
def dpo(y_true, y_pred, beta=0.1, loss_type="sigmoid", label_smoothing=0.0):
    """Rafailov et al. (2023) DPO (cDPO with label smoothing), SLiC/RSO hinge, IPO (Azar et
    al., 2024), robust DPO (Chowdhury et al., 2024) on ``(..., 2)`` = (chosen, rejected)."""
    policy, reference = f64(y_pred), f64(y_true)
    h = (policy[..., 0] - reference[..., 0]) - (policy[..., 1] - reference[..., 1])
    eps = label_smoothing
    if loss_type == "ipo":
        return (h - 1.0 / (2.0 * beta)) ** 2
    if loss_type == "hinge":
        return np.maximum(0.0, 1.0 - beta * h)
    plain, flipped = -log_sigmoid(beta * h), -log_sigmoid(-beta * h)
    if loss_type == "robust":
        return ((1 - eps) * plain - eps * flipped) / (1 - 2 * eps)
    return (1 - eps) * plain + eps * flipped


def _per_token_averages(y_true, y_pred):
    counts, totals = f64(y_true), f64(y_pred)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts != 0, totals / np.where(counts != 0, counts, 1.0), 0.0)


def simpo(y_true, y_pred, beta=2.0, gamma=1.0):
    """Meng et al. (2024): ``-log sigmoid(beta/|yw| log pi(yw) - beta/|yl| log pi(yl) - gamma)``."""
    avg = _per_token_averages(y_true, y_pred)
    return -log_sigmoid(beta * (avg[..., 0] - avg[..., 1]) - gamma)


def log_odds(mean_log_prob):
    """``log(p / (1 - p))`` of ``p = exp(a)``, via ``log1p(-exp(a))`` in float64; ``a`` is
    taken at most ``-eps`` of float64 (the library floors at its compute dtype's eps)."""
    a = np.minimum(f64(mean_log_prob), -np.finfo(np.float64).eps)
    return a - np.where(a > -LOG_2, np.log(-np.expm1(a)), np.log1p(-np.exp(a)))


def orpo(y_true, y_pred, beta=0.1, include_nll=True):
    """Hong et al. (2024): ``-avg(yw) - beta log sigmoid(log odds(yw) - log odds(yl))``."""
    avg = _per_token_averages(y_true, y_pred)
    loss = -beta * log_sigmoid(log_odds(avg[..., 0]) - log_odds(avg[..., 1]))
    return loss - avg[..., 0] if include_nll else loss


def kto(
    y_true,
    y_pred,
    desirable,
    beta=0.1,
    desirable_weight=1.0,
    undesirable_weight=1.0,
    reference_point=None,
    policy_mismatched=None,
    reference_mismatched=None,
):
    """Ethayarajh et al. (2024): ``lambda_y - v(x, y)`` with ``z0`` given or
    ``max(0, mean(mismatched log-ratios))``."""
    r = f64(y_pred) - f64(y_true)
    if reference_point is None:
        z0 = max(0.0, float(np.mean(f64(policy_mismatched) - f64(reference_mismatched))))
    else:
        z0 = f64(reference_point)
    return np.where(
        f64(desirable) != 0,
        desirable_weight * (1.0 - sigmoid(beta * (r - z0))),
        undesirable_weight * (1.0 - sigmoid(beta * (z0 - r))),
    )


def policy_gradient(
    y_true,
    y_pred,
    advantages,
    token_mask=None,
    reference_log_probs=None,
    clip_epsilon=0.2,
    kl_coef=0.0,
    aggregation="sequence",
):
    """PPO-clip (Schulman et al., 2017) with GRPO's k3 KL term (Shao et al., 2024), log-ratios
    capped at 20 before ``exp``; per-sequence token means or per-token values."""
    new, old = f64(y_pred), f64(y_true)
    adv = f64(advantages)
    if adv.ndim == new.ndim - 1:
        adv = adv[..., None]
    mask = np.ones(new.shape, bool) if token_mask is None else f64(token_mask) != 0
    ratio = np.exp(np.minimum(new - old, 20.0))
    clipped = np.clip(ratio, 1 - clip_epsilon, 1 + clip_epsilon)
    losses = -np.minimum(ratio * adv, clipped * adv)
    if kl_coef:
        x = np.minimum(f64(reference_log_probs) - new, 20.0)
        losses = losses + kl_coef * (np.exp(x) - x - 1.0)
    losses = np.where(mask, losses, 0.0)
    if aggregation == "token":
        return losses
    counts = mask.sum(-1)
    return np.where(counts > 0, losses.sum(-1) / np.maximum(counts, 1), 0.0)


def group_normalized_advantages(rewards, group_size, ddof=0, epsilon=0.0):
    """``(r - mean) / (std + epsilon)`` within consecutive groups (0 where that is 0/0)."""
    r = f64(rewards)
    grouped = r.reshape(*r.shape[:-1], -1, group_size)
    centred = grouped - grouped.mean(-1, keepdims=True)
    std = grouped.std(-1, ddof=ddof, keepdims=True) if group_size > ddof else 0.0 * centred
    denominator = std + epsilon
    safe = np.where(denominator != 0, denominator, 1.0)
    return np.where(denominator != 0, centred / safe, 0.0).reshape(r.shape)


# --------------------------------------------------------------------------------------
# contrastive and metric-learning losses (open_clip, big_vision, optax, PyTorch, TF Addons)
# --------------------------------------------------------------------------------------
def _unit(x):
    x = f64(x)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-7)


def _rows_valid(where, batch):
    return np.ones(batch, bool) if where is None else np.asarray(where) != 0


def clip_contrastive(y_true, y_pred, temperature=0.07, normalize=True, where=None, **_):
    """open_clip ``ClipLoss``: ``(CE(x yᵀ/τ, i) + CE(y xᵀ/τ, i)) / 2`` per pair; rows outside
    ``where`` are no candidates and give 0."""
    x, y = (_unit(v) if normalize else f64(v) for v in (y_true, y_pred))
    valid = _rows_valid(where, len(x))
    logits = x @ y.T / temperature
    rows = np.where(valid[None, :], logits, -np.inf)
    cols = np.where(valid[:, None], logits, -np.inf)
    diag = np.diag(logits)
    loss = 0.5 * (logsumexp(rows, 1) - diag) + 0.5 * (logsumexp(cols, 0) - diag)
    return np.where(valid, loss, 0.0)


def siglip_sigmoid(y_true, y_pred, temperature=0.1, bias=-10.0, normalize=True, where=None, **_):
    """big_vision's sigmoid loss per row: ``-Σ_j log σ(z_ij (x_i·y_j/τ + b))``."""
    x, y = (_unit(v) if normalize else f64(v) for v in (y_true, y_pred))
    valid = _rows_valid(where, len(x))
    logits = x @ y.T / temperature + bias
    z = 2.0 * np.eye(len(x)) - 1.0
    terms = np.logaddexp(0.0, -z * logits)  # -log sigmoid(z t)
    return np.where(valid, (terms * valid[None, :]).sum(1), 0.0)


def _labelled(labels, embeddings, normalize, where):
    e = _unit(embeddings) if normalize else f64(embeddings)
    labels = np.asarray(labels).reshape(-1)
    valid = _rows_valid(where, len(e))
    pair_valid = valid[:, None] & valid[None, :]
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(e), dtype=bool) & pair_valid
    return e @ e.T, same, positive, pair_valid


def _share(per_anchor, positive):
    counts = positive.sum(1)
    anchors = max((counts > 0).sum(), 1)
    return per_anchor / max(counts.sum() / anchors, 1.0)


def ntxent(y_true, y_pred, temperature=0.07, normalize=True, where=None):
    """optax's NT-Xent per positive pair ``-log(e^{s_ip} / (e^{s_ip} + Σ_n e^{s_in}))``,
    summed per anchor, divided by the mean number of positives per anchor with any."""
    sim, same, positive, pair_valid = _labelled(y_true, y_pred, normalize, where)
    s = sim / temperature
    negative_lse = logsumexp(np.where(~same & pair_valid, s, -np.inf), 1)
    pair = np.logaddexp(s, negative_lse[:, None]) - s
    return _share(np.where(positive, pair, 0.0).sum(1), positive)


def supervised_contrastive(y_true, y_pred, temperature=0.07, normalize=True, where=None):
    """Khosla et al.'s ``L_out`` per anchor: the mean over positives of
    ``-log(e^{s_ip} / Σ_{a≠i} e^{s_ia})``."""
    sim, _, positive, pair_valid = _labelled(y_true, y_pred, normalize, where)
    s = sim / temperature
    lse = logsumexp(np.where(pair_valid & ~np.eye(len(s), dtype=bool), s, -np.inf), 1)
    terms = np.where(positive, lse[:, None] - np.where(positive, s, 0.0), 0.0)
    return terms.sum(1) / np.maximum(positive.sum(1), 1)


def contrastive_anchor_valid(y_true, where=None):
    """Anchors with at least one positive (the labelled-batch losses' own mask)."""
    labels = np.asarray(y_true).reshape(-1)
    valid = _rows_valid(where, len(labels))
    same = (labels[:, None] == labels[None, :]) & ~np.eye(len(labels), dtype=bool)
    return valid & (same & valid[None, :]).any(1)


def _torch_pairwise_distance(a, b, p, eps):
    return (np.abs(f64(a) - f64(b) + eps) ** p).sum(-1) ** (1.0 / p)


def triplet_margin(y_true, y_pred, negative, margin=1.0, p=2.0, eps=1e-6, swap=False):
    """PyTorch's ``triplet_margin_loss`` (anchor = y_true, positive = y_pred)."""
    d_pos = _torch_pairwise_distance(y_true, y_pred, p, eps)
    d_neg = _torch_pairwise_distance(y_true, negative, p, eps)
    if swap:
        d_neg = np.minimum(d_neg, _torch_pairwise_distance(y_pred, negative, p, eps))
    return np.maximum(d_pos - d_neg + margin, 0.0)


def tfa_pairwise_distance(embeddings, metric="L2"):
    """TF Addons' ``pairwise_distance`` / ``angular_distance`` in float64."""
    e = f64(embeddings)
    if metric == "angular":
        u = _unit(e)
        return np.maximum(1.0 - u @ u.T, 0.0)
    sq = np.sum(e**2, 1)[:, None] + np.sum(e**2, 1)[None, :] - 2.0 * e @ e.T
    sq = np.maximum(sq, 0.0)
    error = sq <= 0.0
    d = sq if metric == "squared-L2" else np.sqrt(sq + error * 1e-16)
    d = d * (1.0 - error)
    return d * (1.0 - np.eye(len(e)))


def _tfa_masked_maximum(data, mask):
    low = data.min(1, keepdims=True)
    return ((data - low) * mask).max(1, keepdims=True) + low


def _tfa_masked_minimum(data, mask):
    high = data.max(1, keepdims=True)
    return ((data - high) * mask).min(1, keepdims=True) + high


def batch_hard_triplet(y_true, y_pred, margin=1.0, soft=False, distance_metric="L2"):
    """TF Addons' ``triplet_hard_loss`` per anchor (before its mean)."""
    labels = np.asarray(y_true).reshape(-1)
    d = tfa_pairwise_distance(y_pred, distance_metric)
    adjacency = labels[:, None] == labels[None, :]
    positives = adjacency.astype(float) - np.eye(len(labels))
    hardest_positive = _tfa_masked_maximum(d, positives)[:, 0]
    hardest_negative = _tfa_masked_minimum(d, (~adjacency).astype(float))[:, 0]
    gap = hardest_positive - hardest_negative
    return np.logaddexp(0.0, gap) if soft else np.maximum(gap + margin, 0.0)


def tfa_triplet_semihard(labels, embeddings, margin=1.0, distance_metric="L2"):
    """TF Addons' ``triplet_semihard_loss`` (a scalar), written with its tiles; also returns
    the per-pair loss matrix and the positive-pair mask."""
    labels = np.asarray(labels).reshape(-1)
    d = tfa_pairwise_distance(embeddings, distance_metric)
    b = len(labels)
    adjacency = labels[:, None] == labels[None, :]
    adjacency_not = ~adjacency
    d_tile = np.tile(d, (b, 1))
    mask = np.tile(adjacency_not, (b, 1)) & (d_tile > d.T.reshape(-1, 1))
    mask_final = (mask.sum(1, keepdims=True) > 0).reshape(b, b).T
    outside = _tfa_masked_minimum(d_tile, mask.astype(float)).reshape(b, b).T
    inside = np.tile(_tfa_masked_maximum(d, adjacency_not.astype(float)), (1, b))
    semi_hard = np.where(mask_final, outside, inside)
    loss_mat = margin + d - semi_hard
    positives = adjacency.astype(float) - np.eye(b)
    pair_losses = np.maximum(loss_mat * positives, 0.0)
    pairs = positives.sum()
    mean = pair_losses.sum() / pairs if pairs else float("nan")  # TF Addons divides 0 by 0
    return mean, pair_losses, positives


def batch_semi_hard_triplet(y_true, y_pred, margin=1.0, distance_metric="L2"):
    """Per anchor: its share of TF Addons' ``triplet_semihard_loss`` (see the function)."""
    _, pair_losses, positives = tfa_triplet_semihard(y_true, y_pred, margin, distance_metric)
    return _share(pair_losses.sum(1), positives > 0)


def contrastive_pair(y_true, y_pred, margin=1.0):
    """TF Addons' ``contrastive_loss``: ``y d² + (1 - y) max(margin - d, 0)²``."""
    y, d = f64(y_true), f64(y_pred)
    return y * d**2 + (1.0 - y) * np.maximum(margin - d, 0.0) ** 2


def _centre_cosines(labels, embeddings, centers):
    cos = np.clip(_unit(embeddings) @ _unit(centers).T, -1.0, 1.0)
    one_hot = np.asarray(labels).reshape(-1)[:, None] == np.arange(len(f64(centers)))[None, :]
    return cos, one_hot


def _margin_ce(cos, one_hot, target, scale):
    logits = scale * np.where(one_hot, target, cos)
    return logsumexp(logits, 1) - np.where(one_hot, logits, 0.0).sum(1)


def arcface(y_true, y_pred, centers, scale=64.0, margin=0.5):
    """Deng et al.'s ArcFace with insightface's continuation past ``θ + m = π``."""
    cos, one_hot = _centre_cosines(y_true, y_pred, centers)
    theta = np.arccos(cos)
    target = np.where(
        cos > np.cos(np.pi - margin), np.cos(theta + margin), cos - margin * np.sin(margin)
    )
    return _margin_ce(cos, one_hot, target, scale)


def cosface(y_true, y_pred, centers, scale=64.0, margin=0.35):
    """Wang et al.'s CosFace: target logit ``s (cos θ_y - m)``."""
    cos, one_hot = _centre_cosines(y_true, y_pred, centers)
    return _margin_ce(cos, one_hot, cos - margin, scale)
