"""Property-based tests (hypothesis) over the whole catalogue, against float64 NumPy formulas.

For random batch shapes, widths (features, classes, embedding size or vocabulary), seeds and
option combinations, every loss must

* match a float64 NumPy reference of its per-sample values, written below from the formulas
  (Keras 3's definitions), and of its weighted ``"sum_over_batch_size"`` reduction;
* satisfy the invariants: ``"sum"`` equals ``"sum_over_batch_size"`` times the number of
  (unmasked) entries; weights of ones equal no weights; permuting the batch does not change
  the result; ``label_smoothing=0`` equals the plain loss; ``from_logits=True`` on logits
  equals ``from_logits=False`` on their sigmoid/softmax (away from the 1e-7 clip);
* give the same result under :func:`jax.jit` as without it.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import (
    BY_NAME,
    EPS,
    Entry,
    Inputs,
    available_entries,
    call_loss,
    entry_option_params,
    exported_loss_classes,
    jitted_evaluation,
    option_id,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_hinge import np_categorical_hinge, np_hinge, np_squared_hinge
from test_regression import np_huber, np_mae, np_mape, np_mse, np_msle

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Few distinct shapes: each new shape costs JAX a compilation per primitive.
BATCH_SHAPES = [(1,), (5,), (2, 3)]
WIDTHS = [1, 4]
RTOL, ATOL = 1e-4, 1e-5
# Losses whose eager evaluation is slow (CTC's scans compile on every eager call): their
# property checks run under jit, compiled once per option combination, on one shape.
JIT_ONLY = {"CTC"}


# --------------------------------------------------------------------------------------
# float64 NumPy references (per-sample values), from the formulas
# --------------------------------------------------------------------------------------
def _f64(x) -> np.ndarray:
    return np.asarray(x, np.float64)


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def _logsumexp(x, axis=-1, keepdims=False):
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    with np.errstate(divide="ignore"):  # an all -inf row gives -inf
        out = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return out if keepdims else np.squeeze(out, axis=axis)


def _log_softmax(x):
    # (x - peak) - log(sum): adding the peak back first would round log(sum) away at 1e30.
    peak = np.max(x, axis=-1, keepdims=True)
    shifted = x - np.where(np.isfinite(peak), peak, 0.0)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def _binary_log_probs(p, from_logits):
    """``(log p, log(1 - p))`` from logits, or from probabilities clipped to [eps, 1-eps]."""
    if from_logits:
        return _log_sigmoid(p), _log_sigmoid(-p)
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p), np.log(1 - p)


def ref_binary_crossentropy(t, p, from_logits=False, label_smoothing=0.0, axis=-1):
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    log_p, log_q = _binary_log_probs(p, from_logits)
    return np.mean(-(t * log_p + (1 - t) * log_q), axis=axis)


def ref_binary_focal_crossentropy(
    t,
    p,
    apply_class_balancing=False,
    alpha=0.25,
    gamma=2.0,
    from_logits=False,
    label_smoothing=0.0,
    axis=-1,
):
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    log_p, log_q = _binary_log_probs(p, from_logits)
    bce = -(t * log_p + (1 - t) * log_q)
    prob = np.exp(_log_sigmoid(p)) if from_logits else p
    p_t = t * prob + (1 - t) * (1 - prob)
    weight = t * alpha + (1 - t) * (1 - alpha) if apply_class_balancing else 1.0
    return np.mean(weight * (1 - p_t) ** gamma * bce, axis=axis)


def _class_log_probs(p, from_logits):
    """Log-softmax of logits, or the log of renormalized, clipped probabilities."""
    if from_logits:
        return _log_softmax(p)
    return np.log(np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS))


def _times_log(weights, logs):
    """``weights * logs`` with 0 where the weight is 0 (a masked class has log -inf)."""
    with np.errstate(invalid="ignore"):
        return np.where(weights != 0, weights * logs, 0.0)


def _smooth(t, label_smoothing):
    return t * (1 - label_smoothing) + label_smoothing / t.shape[-1]


def ref_categorical_crossentropy(t, p, from_logits=False, label_smoothing=0.0, axis=-1, z_loss=0.0):
    t = _smooth(t, label_smoothing)
    loss = -np.sum(_times_log(t, _class_log_probs(p, from_logits)), axis=-1)
    return loss + z_loss * _logsumexp(p) ** 2 if z_loss else loss


def ref_categorical_focal_crossentropy(
    t, p, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1
):
    t = _smooth(t, label_smoothing)
    log_p = _class_log_probs(p, from_logits)
    weights = np.asarray(alpha) * (1 - np.exp(log_p)) ** gamma * t
    return -np.sum(_times_log(weights, log_p), axis=-1)


def _at_label(x, labels):
    safe = np.clip(labels, 0, x.shape[-1] - 1)
    return np.take_along_axis(x, safe[..., None], axis=-1)[..., 0]


def ref_sparse_categorical_crossentropy(
    labels, p, from_logits=False, ignore_class=None, axis=-1, z_loss=0.0
):
    loss = -_at_label(_class_log_probs(p, from_logits), labels)
    if z_loss:
        loss = loss + z_loss * _logsumexp(p) ** 2
    return np.where(labels == ignore_class, 0.0, loss) if ignore_class is not None else loss


def ref_poisson(t, p):
    return np.mean(p - t * np.log(p + EPS), axis=-1)


def ref_kl_divergence(t, p):
    t, p = np.clip(t, EPS, 1), np.clip(p, EPS, 1)
    return np.sum(t * np.log(t / p), axis=-1)


def ref_categorical_generalized_cross_entropy(labels, p, q=0.5):
    return (1 - _at_label(p, labels) ** q) / q


def ref_cosine_similarity(t, p, axis=-1):
    def unit(x):
        return x / np.linalg.norm(x, axis=axis, keepdims=True)

    return -np.sum(unit(t) * unit(p), axis=axis)


def ref_log_cosh(t, p):
    e = p - t
    return np.mean(np.logaddexp(e, -e) - math.log(2), axis=-1)


def ref_dice(t, p, axis=None):
    overlap = np.sum(t * p, axis=axis)
    return 1 - 2 * overlap / (np.sum(t, axis=axis) + np.sum(p, axis=axis) + EPS)


def ref_tversky(t, p, alpha=0.5, beta=0.5, axis=None):
    hits = np.sum(t * p, axis=axis)
    missed = np.sum(t * (1 - p), axis=axis)
    spurious = np.sum((1 - t) * p, axis=axis)
    return 1 - hits / (hits + alpha * missed + beta * spurious + EPS)


def ref_circle(labels, e, gamma=80.0, margin=0.4, remove_diagonal=True):
    distance = np.maximum(1 - e @ e.T, 0)
    same = labels[:, None] == labels[None, :]
    positive = same & ~np.eye(len(labels), dtype=bool) if remove_diagonal else same
    negative = ~same
    pos_logits = -gamma * np.maximum(margin + distance, 0) * (margin - distance)
    neg_logits = gamma * np.maximum(1 + margin - distance, 0) * (1 - margin - distance)
    total = _logsumexp(np.where(positive, pos_logits, -np.inf)) + _logsumexp(
        np.where(negative, neg_logits, -np.inf)
    )
    # No positive or no negative pair: -inf, a loss of softplus(-inf) = 0.
    return np.where(np.isfinite(total), np.logaddexp(0, np.where(np.isfinite(total), total, 0)), 0)


def ref_ctc(labels, logits, mask_index=0, zero_infinity=False, normalize_by_target_length=False):
    """-log sum over alignments, by the alpha recursion; the targets are the non-blank labels.

    Every test input has a feasible alignment, so ``zero_infinity`` changes nothing.
    """
    blank = mask_index % logits.shape[-1]
    losses = []
    for target, log_probs in zip(labels, _log_softmax(logits)):
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


def ref_linear_cross_entropy(
    labels,
    embeddings,
    classifier,
    ignore_class=None,
    label_smoothing=0.0,
    z_loss=0.0,
    logit_soft_cap=None,
):
    logits = embeddings @ classifier
    if logit_soft_cap:
        logits = logit_soft_cap * np.tanh(logits / logit_soft_cap)
    lse = _logsumexp(logits)
    loss = (
        lse
        - (1 - label_smoothing) * _at_label(logits, labels)
        - label_smoothing * logits.mean(-1)
        + z_loss * lse**2
    )
    return np.where(labels == ignore_class, 0.0, loss) if ignore_class is not None else loss


REFERENCES = {
    "BinaryCrossentropy": ref_binary_crossentropy,
    "BinaryFocalCrossentropy": ref_binary_focal_crossentropy,
    "CategoricalCrossentropy": ref_categorical_crossentropy,
    "CategoricalFocalCrossentropy": ref_categorical_focal_crossentropy,
    "SparseCategoricalCrossentropy": ref_sparse_categorical_crossentropy,
    "Poisson": ref_poisson,
    "KLDivergence": ref_kl_divergence,
    "CategoricalGeneralizedCrossEntropy": ref_categorical_generalized_cross_entropy,
    "MeanSquaredError": np_mse,
    "MeanAbsoluteError": np_mae,
    "MeanAbsolutePercentageError": np_mape,
    "MeanSquaredLogarithmicError": np_msle,
    "CosineSimilarity": ref_cosine_similarity,
    "Huber": np_huber,
    "LogCosh": ref_log_cosh,
    "Hinge": np_hinge,
    "SquaredHinge": np_squared_hinge,
    "CategoricalHinge": np_categorical_hinge,
    "Dice": ref_dice,
    "Tversky": ref_tversky,
    "Circle": ref_circle,
    "CTC": ref_ctc,
    "LinearCrossEntropy": ref_linear_cross_entropy,
}


def reference_values(entry: Entry, options: dict, inputs: Inputs) -> np.ndarray:
    """Float64 per-sample losses of ``inputs``."""
    y_true, y_pred = np.asarray(inputs.y_true), _f64(inputs.y_pred)
    if not entry.sparse_labels:
        y_true = _f64(y_true)
    extra = {key: _f64(value) for key, value in inputs.extra.items()}
    return np.asarray(REFERENCES[entry.name](y_true, y_pred, **extra, **options))


def reference_valid(entry: Entry, options: dict, inputs: Inputs, values: np.ndarray):
    """Which per-sample entries count in the reduction (Keras masks ignored ones)."""
    ignore = options.get("ignore_class")
    if ignore is not None:
        return np.asarray(inputs.y_true) != ignore
    if entry.name == "Circle":
        return values > 0  # Keras masks queries whose loss is 0
    return np.ones(values.shape, bool)


def reference_mean(values, weights, valid) -> float:
    """Keras's ``"sum_over_batch_size"``: weighted sum over the number of valid entries."""
    count = valid.sum()
    return float((values * weights * valid).sum() / count) if count else 0.0


# --------------------------------------------------------------------------------------
# drawing cases
# --------------------------------------------------------------------------------------
def draw_case(data, entry: Entry):
    options = data.draw(st.sampled_from(entry.options), label="options")
    shapes = [s for s in BATCH_SHAPES if len(s) <= entry.max_batch_rank]
    widths = WIDTHS
    if entry.name in JIT_ONLY:  # one shape: one compilation per option combination
        shapes, widths = [(5,)], [entry.default_width]
    batch_shape = data.draw(st.sampled_from(shapes), label="batch_shape")
    width = data.draw(st.sampled_from(widths), label="width")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    return options, entry.inputs(seed, batch_shape, options, width)


def entry_params(filter_fn=None):
    return [
        pytest.param(entry, id=entry.name)
        for entry in available_entries()
        if filter_fn is None or filter_fn(entry)
    ]


_RUNNERS: dict = {}


def _all_results(losses: dict, y_true, y_pred, extra, weights, order):
    """Every result the property tests compare, from one set of inputs."""
    mean, total, none = losses["sum_over_batch_size"], losses["sum"], losses["none"]
    return {
        "none": none(y_true, y_pred, **extra),
        "mean": mean(y_true, y_pred, **extra),
        "sum": total(y_true, y_pred, **extra),
        "weighted": mean(y_true, y_pred, sample_weight=weights, **extra),
        "ones": mean(y_true, y_pred, sample_weight=jnp.ones_like(weights), **extra),
        "permuted": mean(y_true[order], y_pred[order], **extra),
    }


def evaluate(entry: Entry, options: dict, inputs: Inputs, weights) -> dict:
    """The loss under every reduction, weighted, and on the permuted batch (see above)."""
    key = (entry.name, option_id(options))
    if key not in _RUNNERS:
        reductions = ("sum_over_batch_size", "sum", "none")
        losses = {r: entry.build(options, reduction=r) for r in reductions}
        run = partial(_all_results, losses)
        _RUNNERS[key] = jax.jit(run) if entry.name in JIT_ONLY else run
    batch = np.shape(inputs.y_true)[0]
    order = np.random.default_rng(batch).permutation(batch)
    y_true, y_pred = jnp.asarray(inputs.y_true), jnp.asarray(inputs.y_pred)
    results = _RUNNERS[key](y_true, y_pred, inputs.extra, jnp.asarray(weights, jnp.float32), order)
    return {name: np.asarray(value) for name, value in results.items()}


# --------------------------------------------------------------------------------------
# the catalogue covers the library
# --------------------------------------------------------------------------------------
def test_every_exported_loss_class_has_a_catalogue_entry():
    missing = sorted(set(exported_loss_classes()) - set(BY_NAME))
    assert not missing, f"add these classes to tests/catalogue.py: {missing}"


def test_every_catalogue_entry_has_a_reference():
    assert set(BY_NAME) <= set(REFERENCES)


# --------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", entry_params())
@SETTINGS
@given(data=st.data())
def test_matches_float64_reference(entry, data):
    options, inputs = draw_case(data, entry)
    expected = reference_values(entry, options, inputs)
    valid = reference_valid(entry, options, inputs, expected)
    weights = np.random.default_rng(0).uniform(0.1, 2.0, size=expected.shape)
    results = evaluate(entry, options, inputs, weights)
    np.testing.assert_allclose(
        results["none"], np.where(valid, expected, 0.0), rtol=RTOL, atol=ATOL
    )
    np.testing.assert_allclose(
        results["weighted"], reference_mean(expected, weights, valid), rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("entry", entry_params())
@SETTINGS
@given(data=st.data())
def test_reduction_invariants(entry, data):
    options, inputs = draw_case(data, entry)
    per_sample_shape = reference_values(entry, options, inputs).shape
    results = evaluate(entry, options, inputs, np.ones(per_sample_shape))
    valid = reference_valid(entry, options, inputs, results["none"])
    mean = float(results["mean"])
    np.testing.assert_allclose(results["sum"], mean * valid.sum(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(results["ones"], mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(results["permuted"], mean, rtol=1e-5, atol=1e-6)


def _without(options: dict, *keys) -> dict:
    return {k: v for k, v in options.items() if k not in keys}


@pytest.mark.parametrize("entry", entry_params(lambda e: e.has_option("label_smoothing")))
@SETTINGS
@given(data=st.data())
def test_zero_label_smoothing_is_the_plain_loss(entry, data):
    options, inputs = draw_case(data, entry)
    plain = _without(options, "label_smoothing")
    zero = {**plain, "label_smoothing": 0.0}
    expected = call_loss(entry.build(plain, reduction="none"), inputs)
    np.testing.assert_array_equal(call_loss(entry.build(zero, reduction="none"), inputs), expected)


def _activation(entry: Entry, logits: np.ndarray) -> np.ndarray:
    if entry.activation == "sigmoid":
        return np.asarray(jax.nn.sigmoid(logits))
    return np.asarray(jax.nn.softmax(logits, axis=-1))


@pytest.mark.parametrize("entry", entry_params(lambda e: e.activation is not None))
@SETTINGS
@given(data=st.data())
def test_logits_equal_probabilities_of_them(entry, data):
    options, _ = draw_case(data, entry)
    # z_loss needs logits, so it has no probability counterpart.
    on_logits = {**_without(options, "z_loss"), "from_logits": True}
    on_probabilities = {**on_logits, "from_logits": False}
    seed = data.draw(st.integers(0, 2**16), label="seed")
    inputs = entry.inputs(seed, (5,), on_logits)
    probabilities = _activation(entry, inputs.y_pred)
    # Away from the 1e-7 clip, where the two paths agree.
    assert probabilities.min() > 1e-5 and probabilities.max() < 1 - 1e-5
    from_logits = call_loss(entry.build(on_logits, reduction="none"), inputs)
    from_probabilities = call_loss(
        entry.build(on_probabilities, reduction="none"), inputs, probabilities
    )
    np.testing.assert_allclose(from_logits, from_probabilities, rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize(("entry", "options"), entry_option_params())
def test_jit_equals_eager(entry, options):
    # Batch (4,) as in the extreme-input tests, so the jitted evaluation is compiled once.
    inputs = entry.inputs(7, (4,), options)
    jitted = jitted_evaluation(entry, options)(inputs)
    for reduction, value in [("sum_over_batch_size", jitted.value), ("none", jitted.per_sample)]:
        eager = call_loss(entry.build(options, reduction=reduction), inputs)
        np.testing.assert_allclose(value, eager, rtol=1e-6, atol=1e-7, err_msg=reduction)
