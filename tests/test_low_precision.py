"""Low precision: float16 and bfloat16 give finite results within 3e-2 relative of float32.

Every loss and option of the catalogue is built with ``dtype="float16"``/``"bfloat16"`` and fed
inputs already rounded to that dtype (integer labels stay integer). The result must have the
requested dtype, be finite, have a finite gradient, and match the float32 result on the same
(rounded) inputs to 3e-2 relative. Cross-entropy over 1000+ classes, the large-vocabulary
cross-entropy and CTC are checked at realistic sizes, and integer labels above the largest
integer a half-precision float represents exactly (2048 for float16, 256 for bfloat16) must
select exactly the same class as in float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from catalogue import BY_NAME, Inputs, jitted_evaluation, rotated_params, with_dtype

import losses_jax as lj

LOW_PRECISION = ("float16", "bfloat16")
RTOL = 3e-2
# Values of a few hundredths (cosine similarities, Dice of good masks) are compared absolutely.
ATOL = 2e-3


def rounded(inputs: Inputs, dtype) -> Inputs:
    """Float arrays rounded to ``dtype`` (kept as float32 values); integer arrays unchanged."""

    def round_float(x):
        x = np.asarray(x)
        if not np.issubdtype(x.dtype, np.floating):
            return x
        return np.asarray(jnp.asarray(x, dtype).astype(jnp.float32))

    extra = {key: round_float(value) for key, value in inputs.extra.items()}
    return Inputs(round_float(inputs.y_true), round_float(inputs.y_pred), extra)


def assert_close_to_float32(low, high, rtol=RTOL, atol=ATOL):
    low = np.asarray(jnp.asarray(low).astype(jnp.float32), np.float64)
    high = np.asarray(high, np.float64)
    np.testing.assert_allclose(low, high, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    ("entry", "options", "dtype"), rotated_params(LOW_PRECISION, LOW_PRECISION)
)
def test_low_precision_matches_float32(entry, options, dtype):
    """Each loss in one of the two dtypes in the default tier (rotating), both in the slow."""
    inputs = rounded(entry.inputs(5, (8,), options), dtype)
    reference = jitted_evaluation(entry, options)(inputs).value
    value, grad, _ = jitted_evaluation(entry, options, dtype=dtype)(with_dtype(inputs, dtype))
    assert value.dtype == jnp.dtype(dtype)
    assert np.isfinite(np.asarray(value, np.float32)).all()
    assert np.isfinite(np.asarray(grad, np.float32)).all()
    assert_close_to_float32(value, reference)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("name", ["SparseCategoricalCrossentropy", "CategoricalCrossentropy"])
@pytest.mark.parametrize("num_classes", [1000, 4096])
def test_cross_entropy_over_many_classes(name, num_classes, dtype):
    rng = np.random.default_rng(num_classes)
    logits = rounded(Inputs(0, rng.normal(0.0, 3.0, size=(64, num_classes))), dtype).y_pred
    labels = rng.integers(0, num_classes, size=64).astype(np.int32)
    y_true = labels if name.startswith("Sparse") else np.eye(num_classes, dtype=np.float32)[labels]
    loss32 = getattr(lj, name)(from_logits=True, reduction="none")
    loss16 = getattr(lj, name)(from_logits=True, reduction="none", dtype=dtype)
    reference = loss32(y_true, logits)
    values = loss16(jnp.asarray(y_true).astype(dtype) if y_true.ndim == 2 else y_true, logits)
    assert values.dtype == jnp.dtype(dtype)
    assert_close_to_float32(values, reference)
    grad = jax.grad(lambda x: jnp.sum(loss16(y_true, x).astype(jnp.float32)))(
        jnp.asarray(logits, dtype)
    )
    assert grad.dtype == jnp.dtype(dtype) and np.isfinite(np.asarray(grad, np.float32)).all()


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_linear_cross_entropy_large_vocabulary(dtype):
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(2, 32, 64)).astype(np.float32)
    classifier = rng.normal(0.0, 0.2, size=(64, 3000)).astype(np.float32)
    labels = rng.integers(0, 3000, size=(2, 32)).astype(np.int32)
    inputs = rounded(Inputs(labels, embeddings, {"classifier": classifier}), dtype)
    reference = jnp.mean(lj.linear_cross_entropy(labels, inputs.y_pred, inputs.extra["classifier"]))
    low = with_dtype(inputs, dtype)
    value = jnp.mean(lj.linear_cross_entropy(labels, low.y_pred, low.extra["classifier"]))
    assert_close_to_float32(value, reference)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_ctc_at_a_realistic_size(dtype):
    if not BY_NAME["CTC"].available:
        pytest.skip("CTC is not in this build")
    rng = np.random.default_rng(0)
    batch, steps, num_classes, max_labels = 4, 60, 24, 12
    logits = rounded(Inputs(0, rng.normal(0.0, 2.0, size=(batch, steps, num_classes))), dtype)
    lengths = rng.integers(4, max_labels + 1, size=(batch, 1))
    labels = rng.integers(1, num_classes, size=(batch, max_labels))
    labels = np.where(np.arange(max_labels) < lengths, labels, 0).astype(np.int32)
    reference = lj.CTC(reduction="none")(labels, logits.y_pred)
    loss = lj.CTC(reduction="none", dtype=dtype)
    values = loss(labels, jnp.asarray(logits.y_pred, dtype))
    assert values.dtype == jnp.dtype(dtype)
    assert_close_to_float32(values, reference)
    grad = jax.grad(lambda x: jnp.sum(loss(labels, x).astype(jnp.float32)))(
        jnp.asarray(logits.y_pred, dtype)
    )
    assert grad.dtype == jnp.dtype(dtype) and np.isfinite(np.asarray(grad, np.float32)).all()


def _distinct_class_logits(num_classes: int, batch: int) -> np.ndarray:
    """Logits ``c mod 7``: neighbouring classes differ by 1, so a wrong id changes the loss."""
    return np.tile(np.arange(num_classes) % 7, (batch, 1)).astype(np.float32)


# Integers above these are not all representable in the dtype (2049 -> 2048 in float16).
LARGEST_EXACT = {"float16": 2048, "bfloat16": 256}


@pytest.mark.parametrize("dtype", LOW_PRECISION)
@pytest.mark.parametrize("from_logits", [True, False])
def test_sparse_labels_above_the_exact_range_stay_exact(dtype, from_logits):
    limit = LARGEST_EXACT[dtype]
    labels = np.array([limit + 1, limit + 3, limit + 5, limit - 1], np.int32)
    logits = _distinct_class_logits(limit + 8, len(labels))
    y_pred = logits if from_logits else np.asarray(jax.nn.softmax(logits))
    values = lj.SparseCategoricalCrossentropy(from_logits, reduction="none", dtype=dtype)(
        labels, y_pred
    )
    # Float64 reference on the logits: -log_softmax at the exact label.
    expected = ref.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    assert_close_to_float32(values, expected, rtol=1e-2, atol=0)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_generalized_cross_entropy_labels_stay_exact(dtype):
    limit = LARGEST_EXACT[dtype]
    labels = np.array([limit + 1, limit + 3], np.int32)
    probabilities = np.asarray(jax.nn.softmax(_distinct_class_logits(limit + 8, 2)))
    values = lj.CategoricalGeneralizedCrossEntropy(q=1.0, reduction="none", dtype=dtype)(
        labels, probabilities
    )
    # q = 1: 1 - p[label].
    expected = ref.categorical_generalized_cross_entropy(labels, probabilities, q=1.0)
    assert_close_to_float32(values, expected, rtol=1e-2, atol=1e-5)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_linear_cross_entropy_labels_stay_exact(dtype):
    limit = LARGEST_EXACT[dtype]
    labels = np.array([limit + 1, limit + 3], np.int32)
    # One-hot embeddings pick the classifier row; the classifier holds the distinct logits.
    embeddings = np.eye(2, dtype=np.float32)
    classifier = _distinct_class_logits(limit + 8, 2)
    values = lj.LinearCrossEntropy(reduction="none", dtype=dtype)(
        labels, jnp.asarray(embeddings, dtype), classifier=jnp.asarray(classifier, dtype)
    )
    logits = classifier.astype(np.float64)
    expected = np.log(np.exp(logits).sum(-1)) - logits[np.arange(2), labels]
    assert_close_to_float32(values, expected, rtol=1e-2, atol=0)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_circle_labels_stay_exact(dtype):
    limit = LARGEST_EXACT[dtype]
    # Classes limit+1 and limit+2 would merge if rounded to the dtype; then there are no
    # negative pairs and the loss would be 0.
    labels = np.array([limit + 1, limit + 2, limit + 1, limit + 2], np.int32)
    embeddings = BY_NAME["Circle"].inputs(0, (4,)).y_pred
    reference = lj.Circle(gamma=2.0)(labels, embeddings)
    value = lj.Circle(gamma=2.0, dtype=dtype)(labels, embeddings)
    assert float(reference) > 0.1
    assert_close_to_float32(value, reference)


@pytest.mark.parametrize("dtype", LOW_PRECISION)
def test_ctc_labels_stay_exact(dtype):
    if not BY_NAME["CTC"].available:
        pytest.skip("CTC is not in this build")
    limit = LARGEST_EXACT[dtype]
    labels = np.array([[limit + 1, limit + 3], [limit + 5, limit + 1]], np.int32)
    # Frames that favour the exact labels: rounded ids would pick other classes' logits.
    logits = np.zeros((2, 4, limit + 8), np.float32)
    for row, target in enumerate(labels):
        logits[row, [0, 2], target] = 5.0
    reference = lj.CTC(reduction="none")(labels, logits)
    values = lj.CTC(reduction="none", dtype=dtype)(labels, jnp.asarray(logits, dtype))
    assert_close_to_float32(values, reference)
    # Rounded ids would lose the favoured frames: the loss would rise by about 10.
    rounded_ids = np.asarray(jnp.asarray(labels, dtype).astype(jnp.int32))
    assert (rounded_ids != labels).any()
    assert float(jnp.max(lj.CTC(reduction="none")(rounded_ids, logits) - reference)) > 1.0
