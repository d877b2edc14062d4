"""Finite everywhere: values and gradients w.r.t. ``y_pred`` on extreme inputs, every loss.

For every catalogue entry and option combination, the inputs the issue lists (logits of
+-1e4 and +-1e30, ``-inf`` logits on masked classes, probabilities of exactly 0 and 1, zero
vectors, zero targets, negative and zero predictions, all-zero masks, all-ignored batches,
degenerate Circle batches, peaked CTC logits, huge log-cosh and MSE errors) must give a finite
reduced value, finite per-sample values and a finite gradient, under :func:`jax.jit`.
Where the right answer is known in closed form it is checked against a float64 formula.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from catalogue import (
    BY_NAME,
    NUM_CLASSES,
    Entry,
    Inputs,
    available_entries,
    call_loss,
    entry_options,
    jitted_evaluation,
    option_id,
    rotated_choice,
    tier_marks,
    with_dtype,
)
from references import log_softmax, reference_valid, reference_values

import losses_jax as lj

BATCH = (4,)

# Losses whose value grows at most linearly in y_pred, so that |y_pred| = 1e30 is finite.
LINEAR_GROWTH = {
    "MeanAbsoluteError",
    "MeanAbsolutePercentageError",
    "Huber",
    "LogCosh",
    "Hinge",
    "CategoricalHinge",
    "CosineSimilarity",
}


def _signs(rng, shape) -> np.ndarray:
    return rng.choice([-1.0, 1.0], size=shape).astype(np.float32)


def true_classes(entry: Entry, inputs: Inputs) -> np.ndarray:
    """The true class of each sample, clipped into range (ignored positions get a valid id)."""
    if entry.sparse_labels:
        return np.clip(np.asarray(inputs.y_true), 0, NUM_CLASSES - 1)
    return np.argmax(np.asarray(inputs.y_true), axis=-1)


def masked_logits(entry: Entry, inputs: Inputs, rng) -> np.ndarray:
    """Random logits with ``-inf`` on about half of the classes, never on the true class."""
    logits = rng.normal(size=inputs.y_pred.shape).astype(np.float32)
    masked = rng.uniform(size=logits.shape) < 0.5
    true = true_classes(entry, inputs)
    np.put_along_axis(masked, true[..., None], False, axis=-1)
    return np.where(masked, -np.inf, logits).astype(np.float32)


def logit_cases(entry: Entry, options: dict, inputs: Inputs, rng) -> dict:
    shape = inputs.y_pred.shape
    cases = {
        "logits_pm1e4": _signs(rng, shape) * 1e4,
        "logits_1e4_on_wrong_class": np.float32(1e4) * (1 - _as_one_hot(entry, inputs)),
    }
    if not options.get("z_loss"):
        # z_loss * logsumexp**2 is ~1e57 at logits of 1e30: beyond float32, honestly +inf.
        cases["logits_pm1e30"] = _signs(rng, shape) * 1e30
    categorical = entry.activation == "softmax" or entry.name == "CTC"
    if categorical and entry.name != "CTC" and not options.get("label_smoothing"):
        # A smoothed target puts mass on every class: a masked class then costs +inf.
        cases["neg_inf_on_masked_classes"] = masked_logits(entry, inputs, rng)
    return cases


def _as_one_hot(entry: Entry, inputs: Inputs) -> np.ndarray:
    if entry.activation == "sigmoid":
        return np.asarray(inputs.y_true, np.float32)
    if entry.name == "CTC":
        return np.zeros(inputs.y_pred.shape, np.float32)
    return np.eye(NUM_CLASSES, dtype=np.float32)[true_classes(entry, inputs)]


def probability_cases(entry: Entry, inputs: Inputs) -> dict:
    right = _as_one_hot(entry, inputs)
    return {
        "probabilities_exactly_right": right,
        "probabilities_exactly_wrong": 1.0 - right
        if entry.activation == "sigmoid"
        else np.roll(right, 1, axis=-1),
        "probabilities_zero_and_one_mixed": np.where(
            np.arange(right.shape[-1]) % 2 == 0, right, 1.0 - right
        ),
    }


def real_cases(entry: Entry, inputs: Inputs, rng) -> dict:
    shape = inputs.y_pred.shape
    cases = {"pm1e4": _signs(rng, shape) * 1e4, "zeros": np.zeros(shape, np.float32)}
    if entry.name in LINEAR_GROWTH:
        cases["pm1e30"] = _signs(rng, shape) * 1e30
    return cases


def log_prob_cases(inputs: Inputs, rng) -> dict:
    """Log-probabilities (<= 0) of 0 (certain) and -1e4, against the inputs' y_true."""
    shape = inputs.y_pred.shape
    return {
        "log_probs_zero": np.zeros(shape, np.float32),
        "log_probs_minus_1e4": np.full(shape, -1e4, np.float32),
        "log_probs_0_or_minus_1e4": np.where(rng.uniform(size=shape) < 0.5, 0.0, -1e4),
    }


def embedding_cases(inputs: Inputs, rng) -> dict:
    """Zero vectors (normalised at 0), identical rows (every pair tied) and entries of +-1e4."""
    shape = inputs.y_pred.shape
    return {
        "embeddings_zero": np.zeros(shape, np.float32),
        "embeddings_identical_rows": np.repeat(inputs.y_pred[:1], shape[0], axis=0),
        "embeddings_pm1e4": _signs(rng, shape) * 1e4,
    }


def special_cases(entry: Entry, options: dict, inputs: Inputs, rng) -> dict:
    """The loss-specific extremes named in the issue: ``case -> Inputs``."""
    shape = inputs.y_pred.shape
    zeros = np.zeros(shape, np.float32)
    name = entry.name
    cases = {}
    if name == "CosineSimilarity":
        cases["zero_y_pred"] = Inputs(inputs.y_true, zeros)
        cases["zero_y_true"] = Inputs(zeros, inputs.y_pred)
        cases["zero_both"] = Inputs(zeros, zeros)
        cases["tiny_y_pred"] = Inputs(inputs.y_true, np.full(shape, 1e-30, np.float32))
    elif name == "MeanAbsolutePercentageError":
        cases["zero_y_true"] = Inputs(zeros, inputs.y_pred)
        cases["zero_both"] = Inputs(zeros, zeros)
    elif name == "MeanSquaredLogarithmicError":
        cases["negative_y_pred"] = Inputs(inputs.y_true, -np.abs(inputs.y_pred) - 0.5)
        cases["y_pred_minus_one"] = Inputs(inputs.y_true, np.full(shape, -1.0, np.float32))
        cases["y_pred_minus_1e4"] = Inputs(inputs.y_true, np.full(shape, -1e4, np.float32))
        cases["zero_y_pred"] = Inputs(inputs.y_true, zeros)
    elif name in ("Poisson", "KLDivergence"):
        cases["zero_y_pred"] = Inputs(inputs.y_true, zeros)
        cases["zero_y_true"] = Inputs(zeros, inputs.y_pred)
        one_hot = np.eye(shape[-1], dtype=np.float32)[rng.integers(0, shape[-1], shape[:-1])]
        cases["one_hot_y_pred"] = Inputs(inputs.y_true, one_hot)
    elif name in ("Dice", "Tversky"):
        cases["all_zero"] = Inputs(zeros, zeros)
        cases["zero_y_pred"] = Inputs(inputs.y_true, zeros)
        cases["zero_y_true"] = Inputs(zeros, inputs.y_pred)
        cases["all_one"] = Inputs(np.ones(shape, np.float32), np.ones(shape, np.float32))
    elif name == "ContrastivePair":
        cases["zero_distances"] = Inputs(inputs.y_true, zeros, inputs.extra)
        cases["distances_of_1e4"] = Inputs(inputs.y_true, np.full(shape, 1e4, np.float32))
    elif name == "MeanSquaredError":
        cases["errors_of_1e18"] = Inputs(zeros, _signs(rng, shape) * 1e18)
    elif name == "LogCosh":
        cases["errors_of_1e4"] = Inputs(zeros, _signs(rng, shape) * 1e4)
        cases["errors_of_1e30"] = Inputs(zeros, _signs(rng, shape) * 1e30)
    elif name == "Circle":
        labels = np.asarray(inputs.y_true)
        same = np.repeat(inputs.y_pred[:1], shape[0], axis=0)
        cases["single_class"] = Inputs(np.zeros_like(labels), inputs.y_pred)
        cases["identical_embeddings"] = Inputs(labels, same)
        cases["single_class_identical_embeddings"] = Inputs(np.zeros_like(labels), same)
        cases["opposite_embeddings"] = Inputs(
            labels, np.where(labels[:, None] % 2 == 0, 1, -1) * same
        )
        cases["single_sample"] = Inputs(labels[:1], inputs.y_pred[:1])
    elif name == "CTC":
        cases.update(ctc_cases(options, inputs))
    elif name == "LinearCrossEntropy":
        for scale in (1e4,) if options.get("z_loss") else (1e4, 1e30):
            cases[f"embeddings_{scale:g}"] = Inputs(
                inputs.y_true, _signs(rng, shape) * np.float32(scale), inputs.extra
            )
    elif name in ("DPO", "KTO", "PolicyGradient"):  # y_true: other log-probs, gaps of +-1e4
        extreme = np.full(np.shape(inputs.y_true), -1e4, np.float32)
        cases["y_true_minus_1e4_y_pred_zero"] = Inputs(extreme, zeros, inputs.extra)
    if options.get("ignore_class") is not None:
        ignored = np.full(np.shape(inputs.y_true), options["ignore_class"], np.int32)
        cases["all_labels_ignored"] = Inputs(ignored, inputs.y_pred, inputs.extra)
    return cases


def ctc_cases(options: dict, inputs: Inputs) -> dict:
    """Peaked and confident CTC logits (+-1e4), and -inf on the classes no target uses."""
    shape = inputs.y_pred.shape
    blank = options.get("mask_index", 0) % shape[-1]
    classes = np.arange(shape[-1])
    # The alignment blank, y1, blank, y2, ... (then blanks) of each sequence's labels.
    path = np.full(shape[:2], blank)
    for row, labels in enumerate(np.asarray(inputs.y_true)):
        target = labels[labels != blank]
        path[row, 1 : 1 + 2 * len(target) : 2] = target
    confident = np.where(classes == path[..., None], 1e4, -1e4)
    used = (classes == np.asarray(inputs.y_true)[..., None]).any(axis=1) | (classes == blank)
    masked = np.where(used[:, None, :], inputs.y_pred, -np.inf)
    as_inputs = {
        "peaked_on_blank_1e4": np.where(classes == blank, 1e4, 0.0) * np.ones(shape),
        "confident_on_true_path_1e4": confident,
        "confident_on_wrong_path_1e4": np.roll(confident, 1, axis=-1),
        "neg_inf_on_unused_classes": masked,
    }
    return {case: Inputs(inputs.y_true, x.astype(np.float32)) for case, x in as_inputs.items()}


def extreme_cases(entry: Entry, options: dict) -> dict:
    """Every extreme case for one entry and option combination: ``case -> Inputs``."""
    rng = np.random.default_rng(1)
    inputs = entry.inputs(0, BATCH, options)
    kind = entry.pred_kind(options)
    if kind == "logits":
        by_pred = logit_cases(entry, options, inputs, rng)
    elif kind == "probabilities":
        by_pred = probability_cases(entry, inputs)
    elif kind == "real":
        by_pred = real_cases(entry, inputs, rng)
    elif kind == "log_probs":
        by_pred = log_prob_cases(inputs, rng)
    elif kind == "embeddings":
        by_pred = embedding_cases(inputs, rng)
    else:
        by_pred = {}
    cases = {
        case: Inputs(inputs.y_true, np.asarray(y_pred, np.float32), inputs.extra)
        for case, y_pred in by_pred.items()
    }
    cases.update(special_cases(entry, options, inputs, rng))
    return cases


def case_params():
    params = []
    for entry, options in entry_options():
        for case, inputs in extreme_cases(entry, options).items():
            label = f"{entry.name}[{option_id(options)}]-{case}"
            params.append(
                pytest.param(entry, options, inputs, id=label, marks=tier_marks(entry, options))
            )
    return params


def assert_all_finite(x, what: str):
    x = np.asarray(x, np.float64)
    bad = ~np.isfinite(x)
    assert not bad.any(), f"{what}: {bad.sum()} non-finite entries, e.g. {x[bad][:4]}"


# --------------------------------------------------------------------------------------
# finite values and gradients over the whole catalogue
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "options", "inputs"), case_params())
def test_value_and_gradient_are_finite(entry, options, inputs):
    value, grad, per_sample = jitted_evaluation(entry, options)(inputs)
    assert_all_finite(value, "reduced value")
    assert_all_finite(grad, "gradient w.r.t. y_pred")
    assert_all_finite(per_sample, "per-sample values")


def test_every_entry_has_an_extreme_case():
    missing = [e.name for e in available_entries() if not extreme_cases(e, e.options[0])]
    assert not missing, f"no extreme inputs for {missing}"


# --------------------------------------------------------------------------------------
# extremes whose exact value is known (float64 formulas)
# --------------------------------------------------------------------------------------
# CTC clamps logits beyond ~5e4, so logits of 1e30 give a wrong (finite) NLL: reported in
# /tmp/bugs.md.
VALUE_BUGS = {
    f"CTC[{opts}]-logits_pm1e30"
    for opts in (
        "default",
        "normalize_by_target_length=True",
        "mask_index=-1",
        "zero_infinity=True,mask_index=2",
    )
}


def logit_value_params():
    """Extreme logits of every loss that takes logits (no extreme probabilities: clipped)."""
    bug = pytest.mark.xfail(strict=True, reason="bug: see report")
    params = []
    for entry, options in entry_options():
        if entry.pred_kind(options) != "logits":
            continue
        for case, inputs in extreme_cases(entry, options).items():
            label = f"{entry.name}[{option_id(options)}]-{case}"
            marks = [bug] if label in VALUE_BUGS else []
            params.append(pytest.param(entry, options, inputs, id=label, marks=marks))
    return params


@pytest.mark.parametrize(("entry", "options", "inputs"), logit_value_params())
def test_extreme_logits_match_the_float64_reference(entry, options, inputs):
    expected = reference_values(entry, options, inputs)
    valid = reference_valid(entry, options, inputs, expected)
    values = jitted_evaluation(entry, options)(inputs).per_sample
    np.testing.assert_allclose(values, np.where(valid, expected, 0.0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["CategoricalCrossentropy", "SparseCategoricalCrossentropy"])
def test_masked_classes_match_softmax_over_the_unmasked_ones(name):
    entry = BY_NAME[name]
    options = {"from_logits": True}
    inputs = entry.inputs(3, BATCH, options)
    logits = masked_logits(entry, inputs, np.random.default_rng(3))
    labels = true_classes(entry, inputs)
    expected = -np.take_along_axis(log_softmax(logits), labels[:, None], -1)[:, 0]
    loss = entry.build(options, reduction="none")
    masked_inputs = Inputs(inputs.y_true, logits)
    np.testing.assert_allclose(call_loss(loss, masked_inputs), expected, rtol=1e-5)
    grad = jitted_evaluation(entry, options, reduction="sum")(masked_inputs).grad
    grad = np.asarray(grad)
    assert np.all(grad[np.isneginf(logits)] == 0.0), "masked classes must get exactly 0 gradient"
    # d/dx of -log_softmax[label] = softmax - one_hot, over the unmasked classes.
    softmax = np.exp(log_softmax(logits))
    np.testing.assert_allclose(grad, softmax - np.eye(NUM_CLASSES)[labels], atol=1e-6)


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean", "none"])
@pytest.mark.parametrize("from_logits", [False, True])
def test_all_ignored_batch_is_exactly_zero(reduction, from_logits):
    entry = BY_NAME["SparseCategoricalCrossentropy"]
    options = {"from_logits": from_logits, "ignore_class": -1}
    inputs = entry.inputs(0, (3, 2), options)
    ignored = Inputs(np.full((3, 2), -1, np.int32), inputs.y_pred)
    values, grad, _ = jitted_evaluation(entry, options, reduction=reduction)(ignored)
    np.testing.assert_array_equal(np.asarray(values), 0.0)
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_linear_ce_all_ignored_batch_is_exactly_zero():
    entry = BY_NAME["LinearCrossEntropy"]
    options = {"ignore_class": -100}
    inputs = entry.inputs(0, (3, 2), options)
    ignored = Inputs(np.full((3, 2), -100, np.int32), inputs.y_pred, inputs.extra)
    value, grad, _ = jitted_evaluation(entry, options)(ignored)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


def test_cosine_similarity_of_a_zero_vector_is_zero():
    y_true = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], np.float32)
    y_pred = np.array([[0.0, 0.0, 0.0], [4.0, 5.0, 6.0]], np.float32)
    values = lj.CosineSimilarity(reduction="none")(y_true, y_pred)
    np.testing.assert_array_equal(np.asarray(values), [0.0, 0.0])


def test_mse_of_1e18_is_1e36():
    y_pred = np.array([[1e18, -1e18]], np.float32)
    value, grad = jax.value_and_grad(lambda p: lj.MeanSquaredError()(np.zeros((1, 2)), p))(y_pred)
    np.testing.assert_allclose(float(value), ref.mean_squared_error(0.0, y_pred)[0], rtol=1e-6)
    # d/dp mean(p^2) over 2 elements and 1 sample = p.
    np.testing.assert_allclose(
        np.asarray(grad), ref.grad_mean_squared_error(0.0, y_pred), rtol=1e-6
    )


@pytest.mark.parametrize("error", [1e4, -1e4, 1e30, -1e30])
def test_log_cosh_of_huge_errors(error):
    y_pred = np.array([[error]], np.float32)
    value, grad = jax.value_and_grad(lambda p: lj.LogCosh()(np.zeros((1, 1)), p))(y_pred)
    # log(cosh(x)) = |x| - log 2 + log1p(exp(-2|x|)), and its derivative is tanh(x).
    np.testing.assert_allclose(float(value), ref.log_cosh(0.0, y_pred)[0], rtol=1e-6)
    np.testing.assert_allclose(float(grad[0, 0]), math.copysign(1.0, error), rtol=1e-6)


def test_mape_with_zero_target_divides_by_epsilon():
    y_pred = np.array([[0.5, -2.0]], np.float32)
    values = lj.MeanAbsolutePercentageError(reduction="none")(np.zeros((1, 2)), y_pred)
    expected = ref.mean_absolute_percentage_error(np.zeros((1, 2)), y_pred)  # |p| / 1e-7
    np.testing.assert_allclose(np.asarray(values), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["Dice", "Tversky"])
def test_all_zero_masks_give_a_loss_of_one(name):
    zeros = np.zeros((2, 3), np.float32)
    value, grad = jax.value_and_grad(lambda p: getattr(lj, name)()(zeros, p))(zeros)
    # 1 - 0 / (0 + 1e-7) = 1.
    assert float(value) == 1.0
    assert_all_finite(grad, "gradient")


@pytest.mark.parametrize("labels", [[0, 0, 0, 0], [0, 1, 2, 3]], ids=["one_class", "no_pairs"])
def test_circle_without_positive_or_negative_pairs_is_zero(labels):
    embeddings = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    value, grad = jax.value_and_grad(lambda e: lj.Circle()(np.array(labels), e))(embeddings)
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(grad), 0.0)


# --------------------------------------------------------------------------------------
# the same extremes in float16 and bfloat16
# --------------------------------------------------------------------------------------
def low_precision_params():
    params = []
    for dtype in ("float16", "bfloat16"):
        largest = float(jnp.finfo(dtype).max)
        for entry, options in entry_options():
            for case, inputs in extreme_cases(entry, options).items():
                if np.abs(np.nan_to_num(inputs.y_pred, neginf=0.0)).max() > largest:
                    continue  # not representable in the dtype at all (1e18, 1e30)
                label = f"{dtype}-{entry.name}[{option_id(options)}]-{case}"
                marks = tier_marks(entry, options)
                if rotated_choice(entry, ("float16", "bfloat16")) != dtype:
                    marks = [pytest.mark.slow]  # the default tier: one dtype per loss
                params.append(pytest.param(entry, options, inputs, dtype, id=label, marks=marks))
    return params


@pytest.mark.parametrize(("entry", "options", "inputs", "dtype"), low_precision_params())
def test_low_precision_value_and_gradient_are_finite(entry, options, inputs, dtype):
    reference = jitted_evaluation(entry, options)(inputs).per_sample
    if np.abs(np.asarray(reference)).max() > float(jnp.finfo(dtype).max):
        pytest.skip(f"the float32 loss itself exceeds the {dtype} range")
    low = with_dtype(inputs, dtype)
    value, grad, _ = jitted_evaluation(entry, options, dtype=dtype)(low)
    assert value.dtype == jnp.dtype(dtype)
    assert_all_finite(np.asarray(value, np.float32), f"{dtype} reduced value")
    assert_all_finite(np.asarray(grad, np.float32), f"{dtype} gradient w.r.t. y_pred")
