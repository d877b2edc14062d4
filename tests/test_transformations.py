"""The transformation matrix: every loss, every option set, under every JAX transformation.

For each catalogue entry and option set, in float64, one jitted function computes the reduced
loss's value and its derivatives with respect to ``y_pred`` by every route JAX offers: reverse
mode (``grad``), forward mode (``jvp``, ``linearize``, ``jacfwd``), second order (``hessian``,
i.e. forward over reverse, against reverse over reverse, and a forward-over-reverse
Hessian-vector product) and ``vmap`` of the first two. They must agree with one another and
with central finite differences of the loss along random directions (the float64 reference of
every derivative). Everything runs under ``jit``; the eager path is the rest of the suite's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import BY_NAME, entry_option_params
from test_gradcheck import float64_inputs

STEP = 1e-5  # central differences: error ~ STEP**2 * f''' + eps / STEP, about 1e-10 here
EXACT = {"rtol": 1e-9, "atol": 1e-12}  # routes that must agree up to rounding
FINITE_DIFFERENCE = {"rtol": 1e-6, "atol": 1e-8}

#: The routes each case computes: value and gradient, then every other derivative.
ROUTES = (
    "jvp",
    "linearize",
    "jacfwd",
    "hessian (forward over reverse)",
    "Hessian-vector product (forward over reverse)",
    "vmap of jvp",
    "vmap of grad",
    "finite differences of the value",
    "finite differences of the gradient",
)


def derivatives(total, y_pred, direction, directions):
    """Every route's result, computed in one jitted function (one compilation per case)."""
    value, gradient = jax.value_and_grad(total)(y_pred)
    hessian_rr = jax.jacrev(jax.jacrev(total))(y_pred)
    _, linear = jax.linearize(total, y_pred)
    # The gradient at the two points of the central differences; the forward one is also the
    # second point of vmap of grad (one backward pass fewer to compile).
    grad_forward = jax.grad(total)(y_pred + STEP * direction)
    grad_backward = jax.grad(total)(y_pred - STEP * direction)
    points = jnp.stack([y_pred, y_pred + STEP * direction])
    return {
        "value": value,
        "gradient": gradient,
        "hessian (reverse over reverse)": hessian_rr,
        "jvp": jax.jvp(total, (y_pred,), (direction,))[1],
        "linearize": linear(direction),
        "jacfwd": jax.jacfwd(total)(y_pred),
        "hessian (forward over reverse)": jax.hessian(total)(y_pred),
        "Hessian-vector product (forward over reverse)": jax.jvp(
            jax.grad(total), (y_pred,), (direction,)
        )[1],
        "vmap of jvp": jax.vmap(lambda t: jax.jvp(total, (y_pred,), (t,))[1])(directions),
        "vmap of grad": jax.vmap(jax.grad(total))(points),
        "grad at the second point": grad_forward,
        "finite differences of the value": (
            total(y_pred + STEP * direction) - total(y_pred - STEP * direction)
        )
        / (2 * STEP),
        "finite differences of the gradient": (grad_forward - grad_backward) / (2 * STEP),
    }


def expected(results, direction, directions):
    """What each route must equal, from the gradient and the reverse-over-reverse Hessian."""
    gradient = results["gradient"]
    hessian = results["hessian (reverse over reverse)"]
    flat_hessian = hessian.reshape(gradient.size, gradient.size)
    hessian_times_direction = (flat_hessian @ direction.reshape(-1)).reshape(gradient.shape)
    directional = jnp.vdot(gradient, direction)
    return {
        "jvp": directional,
        "linearize": directional,
        "jacfwd": gradient,
        "hessian (forward over reverse)": hessian,
        "Hessian-vector product (forward over reverse)": hessian_times_direction,
        "vmap of jvp": jnp.stack([jnp.vdot(gradient, t) for t in directions]),
        "vmap of grad": jnp.stack([gradient, results["grad at the second point"]]),
        "finite differences of the value": directional,
        "finite differences of the gradient": hessian_times_direction,
    }


def _loss_of_predictions(entry, options):
    loss = entry.build(options, dtype="float64")
    inputs = float64_inputs(entry.inputs(5, (2,), options))

    def total(y_pred):
        return loss(inputs.y_true, y_pred, **inputs.extra)

    return total, inputs.y_pred


@pytest.mark.parametrize(("entry", "options"), entry_option_params())
def test_every_transformation_agrees(entry, options):
    with jax.enable_x64(True):
        total, y_pred = _loss_of_predictions(entry, options)
        rng = np.random.default_rng(1)
        direction = jnp.asarray(rng.normal(size=y_pred.shape))
        directions = jnp.asarray(rng.normal(size=(2, *y_pred.shape)))
        results = jax.jit(lambda p, t, ts: derivatives(total, p, t, ts))(
            y_pred, direction, directions
        )
        targets = expected(results, direction, directions)
        hessian = np.asarray(results["hessian (reverse over reverse)"]).reshape(y_pred.size, -1)
    assert results["value"].dtype == jnp.float64
    assert np.all(np.isfinite(hessian)), "the Hessian has non-finite entries"
    np.testing.assert_allclose(hessian, hessian.T, **EXACT, err_msg="Hessian not symmetric")
    for route in ROUTES:
        tolerance = FINITE_DIFFERENCE if route.startswith("finite") else EXACT
        np.testing.assert_allclose(
            np.asarray(results[route]), np.asarray(targets[route]), **tolerance, err_msg=route
        )


@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "z_loss": 1e-2}])
def test_linear_cross_entropy_forward_mode_in_classifier(options):
    # The classifier is the large trained matrix: forward mode must work for it too.
    entry = BY_NAME["LinearCrossEntropy"]
    with jax.enable_x64(True):
        loss = entry.build(options, dtype="float64")
        inputs = float64_inputs(entry.inputs(2, (3,), options))

        def total(classifier):
            return loss(inputs.y_true, inputs.y_pred, classifier=classifier)

        classifier = inputs.extra["classifier"]
        direction = jnp.asarray(np.random.default_rng(3).normal(size=classifier.shape))
        tangent = jax.jit(lambda w, t: jax.jvp(total, (w,), (t,))[1])(classifier, direction)
        gradient = jax.grad(total)(classifier)
        numeric = (total(classifier + STEP * direction) - total(classifier - STEP * direction)) / (
            2 * STEP
        )
        directional = jnp.vdot(gradient, direction)
    np.testing.assert_allclose(tangent, directional, **EXACT)
    np.testing.assert_allclose(tangent, numeric, **FINITE_DIFFERENCE)
