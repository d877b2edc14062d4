"""Real-valued options may be traced arrays: under jit, grad and vmap, with correct derivatives.

Each derivative with respect to an option is checked against central finite differences of the
same loss evaluated in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losses_jax as lj

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(0.0, 2.0, size=(6, 5))
ONE_HOT = np.eye(5)[RNG.integers(0, 5, size=6)]
BINARY = RNG.integers(0, 2, size=(6, 5)).astype(np.float64)
PROBS = np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)
LABELS = RNG.integers(0, 5, size=6)
UNIT_ROWS = LOGITS / np.linalg.norm(LOGITS, axis=-1, keepdims=True)
CLASSIFIER = RNG.normal(0.0, 0.5, size=(5, 7))  # embeddings are LOGITS: D = 5, V = 7

# (name, loss of the option value, option value)
CASES = [
    (
        "binary_focal_gamma",
        lambda g: lj.binary_focal_crossentropy(BINARY, LOGITS, gamma=g, from_logits=True),
        1.5,
    ),
    (
        "binary_focal_gamma_probabilities",
        lambda g: lj.binary_focal_crossentropy(BINARY, 1 / (1 + np.exp(-LOGITS)), gamma=g),
        2.0,
    ),
    (
        "binary_focal_alpha",
        lambda a: lj.binary_focal_crossentropy(
            BINARY, LOGITS, apply_class_balancing=True, alpha=a, from_logits=True
        ),
        0.3,
    ),
    (
        "categorical_focal_gamma",
        lambda g: lj.categorical_focal_crossentropy(ONE_HOT, LOGITS, gamma=g, from_logits=True),
        2.0,
    ),
    (
        "categorical_focal_alpha",
        lambda a: lj.categorical_focal_crossentropy(ONE_HOT, PROBS, alpha=a),
        0.4,
    ),
    (
        "generalized_ce_q",
        lambda q: lj.categorical_generalized_cross_entropy(LABELS, PROBS, q=q),
        0.6,
    ),
    ("huber_delta", lambda d: lj.huber(ONE_HOT, LOGITS, delta=d), 0.8),
    (
        "binary_label_smoothing",
        lambda s: lj.binary_crossentropy(BINARY, LOGITS, from_logits=True, label_smoothing=s),
        0.1,
    ),
    (
        "categorical_label_smoothing",
        lambda s: lj.categorical_crossentropy(ONE_HOT, LOGITS, from_logits=True, label_smoothing=s),
        0.2,
    ),
    (
        "categorical_z_loss",
        lambda z: lj.categorical_crossentropy(ONE_HOT, LOGITS, from_logits=True, z_loss=z),
        1e-2,
    ),
    (
        "sparse_z_loss",
        lambda z: lj.sparse_categorical_crossentropy(LABELS, LOGITS, from_logits=True, z_loss=z),
        1e-2,
    ),
    ("circle_gamma", lambda g: lj.circle(LABELS % 2, UNIT_ROWS, gamma=g), 20.0),
    ("circle_margin", lambda m: lj.circle(LABELS % 2, UNIT_ROWS, gamma=20.0, margin=m), 0.3),
    (
        "linear_ce_label_smoothing",
        lambda s: lj.linear_cross_entropy(LABELS, LOGITS, CLASSIFIER, label_smoothing=s),
        0.1,
    ),
    (
        "linear_ce_z_loss",
        lambda z: lj.linear_cross_entropy(LABELS, LOGITS, CLASSIFIER, z_loss=z),
        1e-2,
    ),
    (
        "linear_ce_logit_soft_cap",
        lambda c: lj.linear_cross_entropy(LABELS, LOGITS, CLASSIFIER, logit_soft_cap=c),
        2.0,
    ),
    ("tversky_alpha", lambda a: lj.tversky(BINARY, PROBS, alpha=a, beta=0.5), 0.3),
    ("tversky_beta", lambda b: lj.tversky(BINARY, PROBS, alpha=0.5, beta=b), 0.7),
]


def _total(fn):
    return lambda value: jnp.sum(fn(value))


@pytest.mark.parametrize(("name", "fn", "value"), CASES, ids=[c[0] for c in CASES])
def test_option_gradient_matches_finite_differences(name, fn, value):
    with jax.enable_x64(True):
        total = _total(fn)
        x = jnp.float64(value)
        grad = float(jax.grad(total)(x))
        step = 1e-6
        numeric = (float(total(x + step)) - float(total(x - step))) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    assert grad != 0.0, "an option that changes the loss must have a nonzero derivative"


@pytest.mark.parametrize(("name", "fn", "value"), CASES, ids=[c[0] for c in CASES])
def test_option_traced_under_jit_and_vmap(name, fn, value):
    total = _total(fn)
    eager = np.asarray(total(value))
    np.testing.assert_allclose(jax.jit(total)(jnp.float32(value)), eager, rtol=1e-5)
    values = jnp.asarray([value, value * 0.9], jnp.float32)
    batched = jax.vmap(total)(values)
    np.testing.assert_allclose(batched[0], eager, rtol=1e-5)
    np.testing.assert_allclose(batched[1], total(float(values[1])), rtol=1e-5)
    jax.jit(jax.grad(total))(jnp.float32(value))  # a traced option under jit and grad


def test_class_with_traced_option_inside_jit():
    def loss_of_gamma(gamma):
        return lj.BinaryFocalCrossentropy(gamma=gamma, from_logits=True)(BINARY, LOGITS)

    eager = float(loss_of_gamma(1.5))
    np.testing.assert_allclose(float(jax.jit(loss_of_gamma)(jnp.float32(1.5))), eager, rtol=1e-5)
    assert float(jax.grad(loss_of_gamma)(jnp.float32(1.5))) != 0.0
