"""Finite-difference gradient checks in every coordinate, in float64, away from kinks.

Every loss and option set is checked along random directions in ``tests/test_transformations.py``;
here ``jax.test_util.check_grads`` compares reverse-mode gradients with central differences in
every coordinate for inputs other than ``y_pred``: the classifier and bias of the linear
cross-entropy and soft targets. x64 is enabled only inside each test (``jax.enable_x64``), and
each loss is built with ``dtype="float64"`` so that no step of it rounds to float32. The catalogue's inputs keep
probabilities away from the 1e-7 clip, targets away from zero for MAPE and predictions
positive for MSLE; with continuous random values no |error| sits within the difference step
of a kink (MAE, hinge, Huber's delta, categorical hinge's max).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import BY_NAME, Inputs
from jax.test_util import check_grads

# Central differences with step 1e-4 (check_grads' default for float64) are accurate to about
# eps**2 * f''' ~ 1e-8 relative here; 1e-5 leaves room for the larger curvature of focal terms.
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}


def as_float64(x):
    x = np.asarray(x)
    return jnp.asarray(x, jnp.float64) if np.issubdtype(x.dtype, np.floating) else jnp.asarray(x)


def float64_inputs(inputs: Inputs) -> Inputs:
    extra = {key: as_float64(value) for key, value in inputs.extra.items()}
    return Inputs(as_float64(inputs.y_true), as_float64(inputs.y_pred), extra)


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "z_loss": 1e-2}])
def test_linear_cross_entropy_classifier_gradient(options):
    entry = BY_NAME["LinearCrossEntropy"]
    with jax.enable_x64(True):
        loss = entry.build(options, dtype="float64")
        inputs = float64_inputs(entry.inputs(2, (2, 3), options))
        bias = jnp.linspace(-0.5, 0.5, inputs.extra["classifier"].shape[1])

        def reduced(embeddings, classifier, bias):
            return loss(inputs.y_true, embeddings, classifier=classifier, bias=bias)

        args = (inputs.y_pred, inputs.extra["classifier"], bias)
        check_grads(reduced, args, order=1, modes=("rev",), **TOLERANCE)


@pytest.mark.parametrize(
    "name", ["CategoricalCrossentropy", "KLDivergence", "MeanSquaredError", "CosineSimilarity"]
)
def test_gradient_with_respect_to_soft_targets(name):
    # Soft targets are trainable in distillation: the y_true gradient must be right too.
    entry = BY_NAME[name]
    with jax.enable_x64(True):
        loss = entry.build(dtype="float64")
        inputs = float64_inputs(entry.inputs(4, (3,)))
        y_true = inputs.y_true
        if name == "CategoricalCrossentropy":
            y_true = jax.nn.softmax(inputs.y_pred * 0.5)  # soft, away from 0

        def reduced(y_true):
            return loss(y_true, inputs.y_pred)

        check_grads(reduced, (y_true,), order=1, modes=("rev",), **TOLERANCE)
