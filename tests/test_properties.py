"""Property-based tests (hypothesis) over the whole catalogue, against float64 NumPy formulas.

For random batch shapes, widths (features, classes, embedding size or vocabulary), seeds and
option combinations, every loss must

* match its float64 NumPy reference (tests/references.py, written from the formulas: Keras 3's
  definitions) in its per-sample values and its weighted ``"sum_over_batch_size"`` reduction,
  and, where the reference has an analytic gradient, in its gradient;
* satisfy the invariants: ``"sum"`` equals ``"sum_over_batch_size"`` times the number of
  (unmasked) entries; weights of ones equal no weights; permuting the batch does not change
  the result; ``label_smoothing=0`` equals the plain loss; ``from_logits=True`` on logits
  equals ``from_logits=False`` on their sigmoid/softmax (away from the 1e-7 clip);
* give the same result under :func:`jax.jit` as without it.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import (
    BY_NAME,
    Entry,
    Inputs,
    available_entries,
    call_loss,
    entry_option_params,
    exported_loss_classes,
    jitted_evaluation,
    option_id,
)
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from references import (
    f64,
    reference_mean,
    reference_valid,
    reference_values,
)

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


def _all_results(losses: dict, y_true, y_pred, extra, weights, order, permuted_extra):
    """Every result the property tests compare, from one set of inputs."""
    mean, total, none = losses["sum_over_batch_size"], losses["sum"], losses["none"]
    return {
        "none": none(y_true, y_pred, **extra),
        "mean": mean(y_true, y_pred, **extra),
        "sum": total(y_true, y_pred, **extra),
        "weighted": mean(y_true, y_pred, sample_weight=weights, **extra),
        "ones": mean(y_true, y_pred, sample_weight=jnp.ones_like(weights), **extra),
        "permuted": mean(y_true[order], y_pred[order], **permuted_extra),
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
    # Per-sample extra inputs (a second prediction, a mask of list items) move with the batch.
    permuted_extra = {
        name: np.asarray(value)[order] if name in entry.per_sample_extra else value
        for name, value in inputs.extra.items()
    }
    weights = jnp.asarray(weights, jnp.float32)
    results = _RUNNERS[key](y_true, y_pred, inputs.extra, weights, order, permuted_extra)
    return {name: np.asarray(value) for name, value in results.items()}


# --------------------------------------------------------------------------------------
# the catalogue covers the library
# --------------------------------------------------------------------------------------
def test_every_exported_loss_class_has_a_catalogue_entry():
    missing = sorted(set(exported_loss_classes()) - set(BY_NAME))
    assert not missing, f"add these classes to tests/catalogue.py: {missing}"


# --------------------------------------------------------------------------------------
# properties
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", entry_params())
@SETTINGS
@given(data=st.data())
def test_matches_float64_reference_and_reduction_invariants(entry, data):
    # One evaluation of every reduction per draw serves both the reference and the invariants.
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
    # The invariants compare the loss with itself (its own mask, no reference involved).
    mean = float(results["mean"])
    counted = reference_valid(entry, options, inputs, results["none"]).sum()
    np.testing.assert_allclose(results["sum"], mean * counted, rtol=1e-5, atol=1e-5)
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
    # Away from the 1e-7 clip, where the two paths agree: other draws are discarded (a seed such
    # as 473 gives a probability of 5e-6, a failed precondition rather than a failed check).
    assume(probabilities.min() > 1e-5 and probabilities.max() < 1 - 1e-5)
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


@pytest.mark.parametrize(
    ("entry", "options"), entry_option_params(lambda e, o: e.reference_grad is not None)
)
def test_gradient_matches_float64_reference(entry, options):
    # Batch (4,) as in the extreme-input tests; continuous random inputs sit on no kink.
    inputs = entry.inputs(13, (4,), options)
    grad = jitted_evaluation(entry, options, reduction="sum")(inputs).grad
    expected = entry.reference_grad(f64(inputs.y_true), f64(inputs.y_pred), **options)
    np.testing.assert_allclose(grad, expected, rtol=2e-5, atol=1e-6)
