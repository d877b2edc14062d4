"""Tests of the binary, categorical and probabilistic families (cross-entropies, focal
losses, Poisson, KL divergence, generalized cross-entropy).

References are independent of the code under test: the float64 NumPy formulas of
tests/references.py, the numbers printed in Keras's docs, and Keras 3 (JAX backend) run side
by side.
"""

import doctest
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from catalogue import BY_NAME

import losses_jax as P
from losses_jax.base import REDUCTIONS

B, T, C = 3, 4, 5


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def make_inputs(kind, from_logits, shape, rng, axis=-1):
    """(y_true, y_pred) float32 NumPy arrays for a family; classes last, then moved to axis."""
    logits = (2.0 * rng.normal(size=shape)).astype(np.float32)
    labels = rng.integers(0, shape[-1], size=shape[:-1])
    if kind == "binary":
        y_true = rng.integers(0, 2, size=shape).astype(np.float32)
        y_pred = logits if from_logits else rng.uniform(0.02, 0.98, shape).astype(np.float32)
    elif kind == "categorical":
        y_true = ref.one_hot(labels, shape[-1]).astype(np.float32)
        # Unnormalised probabilities exercise Keras's renormalisation.
        y_pred = logits if from_logits else rng.uniform(0.05, 1.0, shape).astype(np.float32)
    elif kind == "sparse":
        y_true = labels
        y_pred = logits if from_logits else rng.uniform(0.05, 1.0, shape).astype(np.float32)
        return y_true, np.moveaxis(y_pred, -1, axis)
    elif kind == "poisson":
        y_true = rng.integers(0, 4, size=shape).astype(np.float32)
        y_pred = rng.uniform(0.1, 3.0, shape).astype(np.float32)
    elif kind == "kld":
        y_true = np.asarray(jax.nn.softmax(rng.normal(size=shape)), np.float32)
        y_pred = np.asarray(jax.nn.softmax(logits), np.float32)
    elif kind == "gce":
        return labels, np.asarray(jax.nn.softmax(logits), np.float32)
    return np.moveaxis(y_true, -1, axis), np.moveaxis(y_pred, -1, axis)


# (class name, options, input kind, NumPy reference)
CONFIGS = [
    ("BinaryCrossentropy", {}, "binary", ref.binary_crossentropy),
    ("BinaryCrossentropy", {"from_logits": True}, "binary", ref.binary_crossentropy),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, "binary", ref.binary_crossentropy),
    (
        "BinaryCrossentropy",
        {"from_logits": True, "label_smoothing": 0.2, "axis": 1},
        "binary",
        ref.binary_crossentropy,
    ),
    ("BinaryFocalCrossentropy", {}, "binary", ref.binary_focal_crossentropy),
    (
        "BinaryFocalCrossentropy",
        {"from_logits": True, "gamma": 1.5},
        "binary",
        ref.binary_focal_crossentropy,
    ),
    (
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "alpha": 0.4, "gamma": 3.0, "label_smoothing": 0.1},
        "binary",
        ref.binary_focal_crossentropy,
    ),
    (
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "from_logits": True, "gamma": 0.5, "axis": 1},
        "binary",
        ref.binary_focal_crossentropy,
    ),
    ("CategoricalCrossentropy", {}, "categorical", ref.categorical_crossentropy),
    ("CategoricalCrossentropy", {"from_logits": True}, "categorical", ref.categorical_crossentropy),
    (
        "CategoricalCrossentropy",
        {"label_smoothing": 0.2},
        "categorical",
        ref.categorical_crossentropy,
    ),
    (
        "CategoricalCrossentropy",
        {"from_logits": True, "label_smoothing": 0.1},
        "categorical",
        ref.categorical_crossentropy,
    ),
    (
        "CategoricalCrossentropy",
        {"from_logits": True, "axis": 1},
        "categorical",
        ref.categorical_crossentropy,
    ),
    ("CategoricalFocalCrossentropy", {}, "categorical", ref.categorical_focal_crossentropy),
    (
        "CategoricalFocalCrossentropy",
        {"from_logits": True, "gamma": 1.0},
        "categorical",
        ref.categorical_focal_crossentropy,
    ),
    (
        "CategoricalFocalCrossentropy",
        {"alpha": [0.1, 0.2, 0.3, 0.2, 0.2], "label_smoothing": 0.1},
        "categorical",
        ref.categorical_focal_crossentropy,
    ),
    (
        "CategoricalFocalCrossentropy",
        {
            "alpha": [0.3, 0.1, 0.2, 0.2, 0.2],
            "from_logits": True,
            "gamma": 0.5,
            "label_smoothing": 0.2,
        },
        "categorical",
        ref.categorical_focal_crossentropy,
    ),
    (
        "CategoricalFocalCrossentropy",
        {"from_logits": True, "axis": 1},
        "categorical",
        ref.categorical_focal_crossentropy,
    ),
    ("SparseCategoricalCrossentropy", {}, "sparse", ref.sparse_categorical_crossentropy),
    (
        "SparseCategoricalCrossentropy",
        {"from_logits": True},
        "sparse",
        ref.sparse_categorical_crossentropy,
    ),
    (
        "SparseCategoricalCrossentropy",
        {"ignore_class": -1},
        "sparse",
        ref.sparse_categorical_crossentropy,
    ),
    (
        "SparseCategoricalCrossentropy",
        {"from_logits": True, "ignore_class": 0},
        "sparse",
        ref.sparse_categorical_crossentropy,
    ),
    ("Poisson", {}, "poisson", ref.poisson),
    ("KLDivergence", {}, "kld", ref.kl_divergence),
    (
        "CategoricalGeneralizedCrossEntropy",
        {"q": 0.5},
        "gce",
        ref.categorical_generalized_cross_entropy,
    ),
    (
        "CategoricalGeneralizedCrossEntropy",
        {"q": 0.2},
        "gce",
        ref.categorical_generalized_cross_entropy,
    ),
]
CONFIG_IDS = [
    f"{name}-{'-'.join(f'{k}={v}' for k, v in opts.items()) or 'default'}"
    for name, opts, *_ in CONFIGS
]

FUNCTIONS = {
    "BinaryCrossentropy": P.binary_crossentropy,
    "BinaryFocalCrossentropy": P.binary_focal_crossentropy,
    "CategoricalCrossentropy": P.categorical_crossentropy,
    "CategoricalFocalCrossentropy": P.categorical_focal_crossentropy,
    "SparseCategoricalCrossentropy": P.sparse_categorical_crossentropy,
    "Poisson": P.poisson,
    "KLDivergence": P.kl_divergence,
    "CategoricalGeneralizedCrossEntropy": P.categorical_generalized_cross_entropy,
}


def config_inputs(kind, opts, shape, rng):
    """Inputs for a config, with labels set to ignore_class at some positions."""
    from_logits = opts.get("from_logits", False)
    y_true, y_pred = make_inputs(kind, from_logits, shape, rng, opts.get("axis", -1))
    if opts.get("ignore_class") is not None:
        y_true = np.where(rng.uniform(size=y_true.shape) < 0.3, opts["ignore_class"], y_true)
    return y_true, y_pred


# --------------------------------------------------------------------------------------
# per-sample functions vs float64 NumPy
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, opts, kind, reference", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("shape", [(B, C), (B, T, C)], ids=["2d", "3d"])
def test_function_matches_numpy(name, opts, kind, reference, shape, rng):
    y_true, y_pred = config_inputs(kind, opts, shape, rng)
    ours = FUNCTIONS[name](y_true, y_pred, **opts)
    expected = reference(y_true, y_pred, **opts)
    assert ours.shape == expected.shape
    assert ours.dtype == jnp.float32
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("ignore_class", [None, 2])
@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_non_last_axis_matches_numpy(from_logits, ignore_class, rng):
    # Keras's backend cannot take axis != -1 for sparse labels, so NumPy is the reference.
    y_true, y_pred = make_inputs("sparse", from_logits, (B, T, C), rng, axis=1)
    ours = P.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits=from_logits, ignore_class=ignore_class, axis=1
    )
    expected = ref.sparse_categorical_crossentropy(
        y_true, y_pred, from_logits, ignore_class, axis=1
    )
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-6)


def test_categorical_smoothing_counts_classes_on_axis(rng):
    # Keras smooths with shape[-1] whatever the axis; we use the class axis itself.
    y_true, y_pred = make_inputs("categorical", True, (B, T, C), rng, axis=1)
    ours = P.categorical_crossentropy(y_true, y_pred, True, label_smoothing=0.3, axis=1)
    np.testing.assert_allclose(
        ours, ref.categorical_crossentropy(y_true, y_pred, True, 0.3, axis=1), rtol=2e-5
    )


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("z_loss", [1e-4, 0.5])
def test_z_loss_matches_numpy(sparse, z_loss, rng):
    kind = "sparse" if sparse else "categorical"
    y_true, y_pred = make_inputs(kind, True, (B, T, C), rng)
    y_pred = y_pred + 3.0  # a nonzero log-sum-exp
    if sparse:
        ours = P.sparse_categorical_crossentropy(y_true, y_pred, True, z_loss=z_loss)
        expected = ref.sparse_categorical_crossentropy(y_true, y_pred, True, z_loss=z_loss)
    else:
        ours = P.categorical_crossentropy(y_true, y_pred, True, label_smoothing=0.1, z_loss=z_loss)
        expected = ref.categorical_crossentropy(y_true, y_pred, True, 0.1, z_loss=z_loss)
    np.testing.assert_allclose(ours, expected, rtol=2e-5)


def numeric_gradient(fn, x, step=1e-6):
    """Central differences of a float64 NumPy function summed over its output."""
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        bump = np.zeros_like(x)
        bump[index] = step
        grad[index] = (np.sum(fn(x + bump)) - np.sum(fn(x - bump))) / (2 * step)
    return grad


@pytest.mark.parametrize("sparse", [False, True])
def test_custom_vjp_gradients_match_finite_differences(sparse, rng):
    # Independent check of the hand-written backward pass, z-loss and per-sample cotangents included.
    kind = "sparse" if sparse else "categorical"
    y_true, logits = make_inputs(kind, True, (B, C), rng)
    if not sparse:
        y_true = np.asarray(jax.nn.softmax(rng.normal(size=(B, C))), np.float32)  # soft targets
    scale = np.array([0.5, 1.0, 2.0])
    fn, reference = (
        (P.sparse_categorical_crossentropy, ref.sparse_categorical_crossentropy)
        if sparse
        else (P.categorical_crossentropy, ref.categorical_crossentropy)
    )
    ours = jax.grad(lambda x: jnp.sum(scale * fn(y_true, x, True, z_loss=0.1)))(logits)
    expected = numeric_gradient(
        lambda x: scale * reference(y_true, x, True, z_loss=0.1), logits.astype(np.float64)
    )
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6)
    if not sparse:  # the gradient w.r.t. soft targets: -log_softmax
        d_targets = jax.grad(lambda t: jnp.sum(fn(t, logits, True)))(y_true)
        np.testing.assert_allclose(d_targets, -ref.class_log_probs(logits, True, -1), rtol=1e-5)


# --------------------------------------------------------------------------------------
# Keras 3 parity: value and gradient, every config x reduction x kind of weight
# --------------------------------------------------------------------------------------
# (input shape, kind of weight): (B,) weights on 2-D inputs; (B, 1) per-sample and (B, T)
# per-element weights on 3-D inputs, whose per-sample losses are (B, T).
WEIGHT_CASES = [
    ((B, C), "none"),
    ((B, C), "scalar"),
    ((B, C), "per_sample"),
    ((B, T, C), "per_sample_column"),
    ((B, T, C), "per_element"),
]
PARITY_CASES = len(CONFIGS) * len(REDUCTIONS) * len(WEIGHT_CASES)


def make_weight(kind, shape, rng):
    loss_shape = shape[:-1]
    return {
        "none": None,
        "scalar": 0.7,
        "per_sample": rng.uniform(0.1, 2.0, size=loss_shape[:1]).astype(np.float32),
        "per_sample_column": rng.uniform(0.1, 2.0, size=(loss_shape[0], 1)).astype(np.float32),
        "per_element": rng.uniform(0.1, 2.0, size=loss_shape).astype(np.float32),
    }[kind]


def value_and_grad(loss, y_true, y_pred, sample_weight):
    def total(x):
        value = loss(y_true, x, sample_weight=sample_weight)
        return jnp.sum(value), value

    (_, value), grad = jax.value_and_grad(total, has_aux=True)(jnp.asarray(y_pred))
    return value, grad


def parity_grid(config_index: int, full: bool) -> list:
    """(reduction, weight case) pairs of a config: all of them, or (default tier) a diagonal
    in which every reduction and every weight case appears, shifted by the config's index so
    that the configs together meet every pair."""
    if full:
        return list(itertools.product(REDUCTIONS, WEIGHT_CASES))
    size = max(len(REDUCTIONS), len(WEIGHT_CASES))
    return [
        (REDUCTIONS[i % len(REDUCTIONS)], WEIGHT_CASES[(i + config_index) % len(WEIGHT_CASES)])
        for i in range(size)
    ]


@pytest.mark.parametrize("full", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["diagonal", "full"])  # fmt: skip
@pytest.mark.parametrize("name, opts, kind, reference", CONFIGS, ids=CONFIG_IDS)
def test_keras_parity_value_and_gradient(keras, name, opts, kind, reference, full, rng):
    grid = parity_grid(CONFIGS.index((name, opts, kind, reference)), full)
    compared = 0
    for reduction, (shape, weight_kind) in grid:
        y_true, y_pred = config_inputs(kind, opts, shape, rng)
        weight = make_weight(weight_kind, shape, rng)
        ours = getattr(P, name)(reduction=reduction, **opts)
        theirs = getattr(keras.losses, name)(reduction=reduction, **opts)
        our_value, our_grad = value_and_grad(ours, y_true, y_pred, weight)
        keras_value, keras_grad = value_and_grad(theirs, y_true, y_pred, weight)
        case = f"{reduction=} {weight_kind=} {shape=}"
        np.testing.assert_allclose(our_value, keras_value, rtol=2e-5, atol=1e-6, err_msg=case)
        np.testing.assert_allclose(our_grad, keras_grad, rtol=2e-4, atol=2e-6, err_msg=case)
        compared += 1
    assert compared == len(grid)


def test_parity_diagonals_meet_every_pair():
    met = {(r, w) for i in range(len(CONFIGS)) for r, (_, w) in parity_grid(i, full=False)}
    assert met == {(r, w) for r, (_, w) in itertools.product(REDUCTIONS, WEIGHT_CASES)}


def test_parity_case_count():
    print(f"Keras parity cases (value and gradient): {PARITY_CASES}")
    assert PARITY_CASES >= 500


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_per_sample_weight_scales_every_timestep(name, rng):
    # Keras fails on a (batch,) weight against (batch, T) losses; NumPy is the reference.
    opts, kind, reference = next((o, k, r) for n, o, k, r in CONFIGS if n == name)
    y_true, y_pred = config_inputs(kind, opts, (B, T, C), rng)
    weight = rng.uniform(0.1, 2.0, size=(B,))
    losses = reference(y_true, y_pred, **opts)
    for reduction in REDUCTIONS:
        ours = getattr(P, name)(reduction=reduction, **opts)(y_true, y_pred, sample_weight=weight)
        expected = ref.keras_reduction(losses, weight, reduction)
        np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-6, err_msg=str(reduction))


def test_config_matches_keras_config(keras):
    for name, opts, *_ in CONFIGS:
        ours = getattr(P, name)(**opts).get_config()
        theirs = getattr(keras.losses, name)(**opts).get_config()
        shared = set(theirs) - {"dtype"}
        assert shared <= set(ours), name
        assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}, name


# --------------------------------------------------------------------------------------
# numbers from Keras's docstrings (Keras prints some truncated, hence the tolerances)
# --------------------------------------------------------------------------------------
BCE_LOGITS = ([[0, 1], [0, 0]], [[-18.6, 0.51], [2.94, -12.8]])
CCE_PROBS = ([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]])
KERAS_DOC_EXAMPLES = [
    (
        P.BinaryCrossentropy(from_logits=True),
        ([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]),
        {},
        0.8654,
    ),
    (P.BinaryCrossentropy(from_logits=True), BCE_LOGITS, {}, 0.8654),
    (P.BinaryCrossentropy(from_logits=True), BCE_LOGITS, {"sample_weight": [0.8, 0.2]}, 0.243),
    (P.BinaryCrossentropy(from_logits=True, reduction="sum"), BCE_LOGITS, {}, 1.730),
    (P.BinaryCrossentropy(from_logits=True, reduction=None), BCE_LOGITS, {}, [0.235, 1.496]),
    (
        P.BinaryFocalCrossentropy(gamma=2, from_logits=True),
        ([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]),
        {},
        0.691,
    ),
    (
        P.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=2, from_logits=True),
        ([0, 1, 0, 0], [-18.6, 0.51, 2.94, -12.8]),
        {},
        0.51,
    ),
    (P.BinaryFocalCrossentropy(gamma=3, from_logits=True), BCE_LOGITS, {}, 0.647),
    (
        P.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=3, from_logits=True),
        BCE_LOGITS,
        {},
        0.482,
    ),
    (
        P.BinaryFocalCrossentropy(gamma=3, from_logits=True),
        BCE_LOGITS,
        {"sample_weight": [0.8, 0.2]},
        0.133,
    ),
    (
        P.BinaryFocalCrossentropy(apply_class_balancing=True, gamma=3, from_logits=True),
        BCE_LOGITS,
        {"sample_weight": [0.8, 0.2]},
        0.097,
    ),
    (P.BinaryFocalCrossentropy(gamma=4, from_logits=True, reduction="sum"), BCE_LOGITS, {}, 1.222),
    (
        P.BinaryFocalCrossentropy(
            apply_class_balancing=True, gamma=4, from_logits=True, reduction="sum"
        ),
        BCE_LOGITS,
        {},
        0.914,
    ),
    (
        P.BinaryFocalCrossentropy(gamma=5, from_logits=True, reduction=None),
        BCE_LOGITS,
        {},
        [0.0017, 1.1561],
    ),
    (
        P.BinaryFocalCrossentropy(
            apply_class_balancing=True, gamma=5, from_logits=True, reduction=None
        ),
        BCE_LOGITS,
        {},
        [0.0004, 0.8670],
    ),
    (P.CategoricalCrossentropy(), CCE_PROBS, {}, 1.177),
    (P.CategoricalCrossentropy(), CCE_PROBS, {"sample_weight": np.array([0.3, 0.7])}, 0.814),
    (P.CategoricalCrossentropy(reduction="sum"), CCE_PROBS, {}, 2.354),
    (P.CategoricalCrossentropy(reduction=None), CCE_PROBS, {}, [0.0513, 2.303]),
    (P.CategoricalFocalCrossentropy(), CCE_PROBS, {}, 0.23315276),
    (P.CategoricalFocalCrossentropy(), CCE_PROBS, {"sample_weight": np.array([0.3, 0.7])}, 0.1632),
    (P.CategoricalFocalCrossentropy(reduction="sum"), CCE_PROBS, {}, 0.46631),
    (P.CategoricalFocalCrossentropy(reduction=None), CCE_PROBS, {}, [3.2058331e-05, 4.6627346e-01]),
    (
        P.SparseCategoricalCrossentropy(),
        ([0, 1, 2], [[0.9, 0.05, 0.05], [0.5, 0.89, 0.6], [0.05, 0.01, 0.94]]),
        {},
        0.3239,
    ),
    (P.SparseCategoricalCrossentropy(), ([1, 2], CCE_PROBS[1]), {}, 1.177),
    (
        P.SparseCategoricalCrossentropy(),
        ([1, 2], CCE_PROBS[1]),
        {"sample_weight": np.array([0.3, 0.7])},
        0.814,
    ),
    (P.SparseCategoricalCrossentropy(reduction="sum"), ([1, 2], CCE_PROBS[1]), {}, 2.354),
    (P.SparseCategoricalCrossentropy(reduction=None), ([1, 2], CCE_PROBS[1]), {}, [0.0513, 2.303]),
]


@pytest.mark.parametrize("loss, inputs, kwargs, expected", KERAS_DOC_EXAMPLES)
def test_keras_doc_examples(loss, inputs, kwargs, expected):
    np.testing.assert_allclose(loss(*inputs, **kwargs), expected, atol=1.1e-3)


def test_keras_doc_function_examples():
    np.testing.assert_allclose(
        P.binary_crossentropy(*BCE_LOGITS[:1], [[0.6, 0.4], [0.4, 0.6]]), [0.916, 0.714], atol=1e-3
    )
    focal = P.binary_focal_crossentropy([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]], gamma=2)
    np.testing.assert_allclose(focal, [0.330, 0.206], atol=1e-3)
    cfce = P.categorical_focal_crossentropy(
        [[0, 1, 0], [0, 0, 1]], [[0.05, 0.9, 0.05], [0.1, 0.85, 0.05]]
    )
    np.testing.assert_allclose(cfce, [2.63401289e-04, 6.75912094e-01], rtol=1e-5)
    np.testing.assert_allclose(
        P.sparse_categorical_crossentropy([1, 2], CCE_PROBS[1]), [0.0513, 2.303], atol=1e-3
    )


def test_docstring_examples_run():
    from losses_jax.losses import binary, categorical, probabilistic

    globs = {"jnp": jnp, "jax": jax, "np": np, "lj": P}
    for module in (binary, categorical, probabilistic):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, extraglobs=globs)
        assert result.attempted > 5 and result.failed == 0, module.__name__


# --------------------------------------------------------------------------------------
# transformations: jit, grad, vmap; mask; dtypes
# --------------------------------------------------------------------------------------
ONE_CONFIG_PER_CLASS = [next(c for c in CONFIGS if c[0] == name) for name in FUNCTIONS]
LOGIT_CONFIG_PER_CLASS = [
    next((c for c in CONFIGS if c[0] == name and c[1].get("from_logits")), None)
    or next(c for c in CONFIGS if c[0] == name)
    for name in FUNCTIONS
]


@pytest.mark.parametrize(
    "name, opts, kind, reference", LOGIT_CONFIG_PER_CLASS, ids=sorted(FUNCTIONS)
)
def test_jit_grad_vmap_agree(name, opts, kind, reference, rng):
    y_true, y_pred = config_inputs(kind, opts, (B, T, C), rng)
    loss = getattr(P, name)(**opts)
    value, grad = jax.value_and_grad(lambda x: loss(y_true, x))(y_pred)
    jit_value, jit_grad = jax.jit(jax.value_and_grad(lambda x: loss(y_true, x)))(y_pred)
    np.testing.assert_allclose(jit_value, value, rtol=1e-6)
    np.testing.assert_allclose(jit_grad, grad, rtol=1e-5, atol=1e-8)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)
    # vmap over the leading axis of the per-sample function equals one call per row.
    fn = partial_fn(FUNCTIONS[name], opts)
    mapped = jax.vmap(fn)(jnp.asarray(y_true), jnp.asarray(y_pred))
    np.testing.assert_allclose(mapped, fn(y_true, y_pred), rtol=1e-6, atol=1e-7)
    per_sample_grad = jax.vmap(jax.grad(lambda t, x: jnp.sum(fn(t, x)), argnums=1))(y_true, y_pred)
    np.testing.assert_allclose(
        per_sample_grad, jax.grad(lambda x: jnp.sum(fn(y_true, x)))(y_pred), rtol=1e-5, atol=1e-8
    )


def partial_fn(fn, opts):
    """The per-sample function with its options; an axis counts from the end so vmap keeps it."""
    opts = dict(opts)
    if opts.get("axis") == 1:
        opts["axis"] = -2
    return lambda y_true, y_pred: fn(y_true, y_pred, **opts)


@pytest.mark.parametrize("name, opts, kind, reference", ONE_CONFIG_PER_CLASS, ids=sorted(FUNCTIONS))
def test_mask_keyword_drops_entries(name, opts, kind, reference, rng):
    y_true, y_pred = config_inputs(kind, opts, (B, T, C), rng)
    mask = rng.uniform(size=(B, T)) < 0.6
    losses = reference(y_true, y_pred, **opts)
    for reduction in ("sum_over_batch_size", "sum"):
        ours = getattr(P, name)(reduction=reduction, **opts)(y_true, y_pred, mask=mask)
        np.testing.assert_allclose(
            ours, ref.keras_reduction(losses, None, reduction, mask), rtol=2e-5
        )


# Each class on probabilities and (where it takes them) on logits.
DTYPE_CONFIGS = [c for c in CONFIGS if c in ONE_CONFIG_PER_CLASS or c in LOGIT_CONFIG_PER_CLASS]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize(
    "name, opts, kind, reference",
    DTYPE_CONFIGS,
    ids=[CONFIG_IDS[CONFIGS.index(c)] for c in DTYPE_CONFIGS],
)
def test_low_precision_dtype(name, opts, kind, reference, dtype, rng):
    y_true, y_pred = config_inputs(kind, opts, (B, T, C), rng)
    full = getattr(P, name)(reduction=None, **opts)(y_true, y_pred)
    low = getattr(P, name)(reduction=None, dtype=dtype, **opts)
    value = low(y_true, y_pred)
    assert value.dtype == jnp.dtype(dtype)
    np.testing.assert_allclose(np.asarray(value, np.float32), full, rtol=3e-2, atol=3e-2)
    grad = jax.grad(lambda x: low(y_true, x).sum().astype(jnp.float32))(jnp.asarray(y_pred, dtype))
    assert grad.dtype == jnp.dtype(dtype) and np.all(np.isfinite(np.asarray(grad, np.float32)))


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_labels_above_2048_stay_exact_in_float16(from_logits, rng):
    vocab = 4099
    labels = np.array([2049, 3001, 4097, 7])  # 2049 and 4097 are not float16 numbers
    y_pred = rng.uniform(0.5, 2.0, size=(4, vocab)).astype(np.float16)
    y_pred[np.arange(4), labels] = 12.0  # the true label stands out
    loss = P.SparseCategoricalCrossentropy(from_logits=from_logits, dtype="float16", reduction=None)
    expected = ref.sparse_categorical_crossentropy(labels, y_pred.astype(np.float64), from_logits)
    np.testing.assert_allclose(np.asarray(loss(labels, y_pred), np.float32), expected, rtol=1e-2)
    gce = P.CategoricalGeneralizedCrossEntropy(dtype="float16", reduction=None)
    probs = y_pred.astype(np.float64) / 100
    np.testing.assert_allclose(
        np.asarray(gce(labels, probs.astype(np.float16)), np.float32),
        ref.categorical_generalized_cross_entropy(labels, probs),
        rtol=1e-2,
    )


# --------------------------------------------------------------------------------------
# extreme inputs
# --------------------------------------------------------------------------------------
def finite_value_and_grad(fn, y_pred):
    value, grad = jax.value_and_grad(lambda x: jnp.sum(fn(x)).astype(jnp.float32))(y_pred)
    assert np.isfinite(float(value)), value
    assert np.all(np.isfinite(np.asarray(grad, np.float32))), grad
    return value, grad


EXTREME_LOGITS = [1e4, -1e4, 1e30, -1e30]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("name", [n for n, o, *_ in LOGIT_CONFIG_PER_CLASS if o.get("from_logits")])
def test_extreme_logits_finite(name, dtype):
    big = [v for v in EXTREME_LOGITS if dtype != "float16" or abs(v) < 6e4]
    logits = jnp.asarray([[v, 0.0, -v, 1.0] for v in big], dtype)
    n = len(big)
    if name.startswith("Binary"):
        y_true = np.tile([[1.0, 0.0, 1.0, 0.0]], (n, 1))
    elif name.startswith("Sparse"):
        y_true = np.arange(n) % 4
    else:
        y_true = np.eye(4)[np.arange(n) % 4]
    second = {"ignore_class": 3} if name.startswith("Sparse") else {"label_smoothing": 0.1}
    for opts in ({"from_logits": True}, {"from_logits": True, **second}):
        loss = getattr(P, name)(dtype=dtype, **opts)
        finite_value_and_grad(lambda x, loss=loss: loss(y_true, x), logits)


@pytest.mark.parametrize("sparse", [False, True])
def test_z_loss_finite_for_large_logits(sparse):
    logits = jnp.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]])
    labels = np.array([0, 2])
    fn = P.sparse_categorical_crossentropy if sparse else P.categorical_crossentropy
    value, _ = finite_value_and_grad(
        lambda x: fn(labels if sparse else np.eye(3)[labels], x, True, z_loss=1e-4), logits
    )
    np.testing.assert_allclose(
        value,
        ref.sparse_categorical_crossentropy(
            labels, np.asarray(logits, np.float64), True, z_loss=1e-4
        ).sum(),
        rtol=1e-6,
    )


@pytest.mark.parametrize("name", ["BinaryCrossentropy", "BinaryFocalCrossentropy"])
def test_extreme_binary_logits_match_numpy(name):
    logits = np.array([[1e4, -1e4, 1e30, -1e30, 30.0, -30.0]], np.float32)
    y_true = np.array([[0.0, 1.0, 1.0, 0.0, 0.0, 1.0]])
    fn, reference = FUNCTIONS[name], BY_NAME[name].reference
    value, _ = finite_value_and_grad(lambda x: fn(y_true, x, from_logits=True), logits)
    np.testing.assert_allclose(
        value, reference(y_true, logits.astype(np.float64), from_logits=True).sum(), rtol=1e-6
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_masked_classes_with_minus_inf_logits(dtype):
    logits = jnp.asarray([[2.0, -jnp.inf, 0.5, -jnp.inf], [-jnp.inf, 1.0, 3.0, 0.0]], dtype)
    masked = np.isneginf(np.asarray(logits, np.float32))
    labels = np.array([2, 1])
    one_hot = np.eye(4)[labels]
    cases = [
        (
            lambda x: P.sparse_categorical_crossentropy(labels, x, True, z_loss=1e-3),
            ref.sparse_categorical_crossentropy(
                labels,
                np.where(masked, -1e300, 1.0) * 0 + np.asarray(logits, np.float64).clip(-1e300),
                True,
                z_loss=1e-3,
            ),
        ),
        (
            lambda x: P.categorical_crossentropy(one_hot, x, True),
            ref.categorical_crossentropy(
                one_hot, np.asarray(logits, np.float64).clip(-1e300), True
            ),
        ),
        (
            lambda x: P.categorical_focal_crossentropy(one_hot, x, from_logits=True),
            ref.categorical_focal_crossentropy(
                one_hot, np.asarray(logits, np.float64).clip(-1e300), from_logits=True
            ),
        ),
        (lambda x: P.binary_crossentropy(np.zeros((2, 4)), x, True), None),
        (lambda x: P.binary_focal_crossentropy(np.zeros((2, 4)), x, from_logits=True), None),
    ]
    for fn, expected in cases:
        value, grad = finite_value_and_grad(fn, logits)
        assert np.all(np.asarray(grad, np.float32)[masked] == 0.0)
        if expected is not None:
            np.testing.assert_allclose(
                np.float32(value), expected.sum(), rtol=1e-2 if dtype != "float32" else 1e-6
            )


def test_all_minus_inf_row_keeps_other_rows_clean():
    logits = jnp.array([[-jnp.inf, -jnp.inf, -jnp.inf], [1.0, 2.0, 3.0]])
    labels = np.array([-1, 0])
    loss = P.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    value, grad = finite_value_and_grad(lambda x: loss(labels, x), logits)
    np.testing.assert_allclose(
        value, ref.sparse_categorical_crossentropy([0], [[1.0, 2.0, 3.0]], True)[0], rtol=1e-6
    )
    assert np.all(grad[0] == 0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_probabilities_exactly_zero_and_one(name, dtype):
    probs = jnp.asarray([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]], dtype)
    labels = np.array([0, 0, 2])  # wrong, right and a zero-probability true class
    one_hot = np.eye(3)[labels]
    y_true = {
        "SparseCategoricalCrossentropy": labels,
        "CategoricalGeneralizedCrossEntropy": labels,
    }.get(name, one_hot)
    loss = getattr(P, name)(dtype=dtype)
    value, grad = finite_value_and_grad(lambda x: loss(y_true, x), probs)
    if name not in ("Poisson", "KLDivergence", "CategoricalGeneralizedCrossEntropy"):
        # The straight-through clip still pushes up a true class predicted at exactly 0.
        assert float(np.asarray(grad, np.float32)[0, 0]) < 0


def test_straight_through_clip_gradient_matches_unclipped_formula():
    # At p = 0.5e-7 (clipped to 1e-7), d(-log p)/dp is taken at the clipped value: -1e7.
    grad = jax.grad(lambda p: P.binary_crossentropy([[1.0]], p)[0])(jnp.array([[0.5e-7]]))
    np.testing.assert_allclose(grad, [[-1e7]], rtol=1e-3)


# --------------------------------------------------------------------------------------
# sparse labels and ignore_class
# --------------------------------------------------------------------------------------
def test_sparse_trailing_unit_label_dim_is_squeezed(rng):
    y_true, y_pred = make_inputs("sparse", True, (B, T, C), rng)
    loss = P.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    np.testing.assert_allclose(loss(y_true[..., None], y_pred), loss(y_true, y_pred))
    gce = P.CategoricalGeneralizedCrossEntropy(reduction=None)
    probs = np.asarray(jax.nn.softmax(y_pred[0]))
    np.testing.assert_allclose(
        gce(y_true[0][:, None], probs),
        ref.categorical_generalized_cross_entropy(y_true[0], probs),
        rtol=1e-5,
    )


def test_ignore_class_excluded_from_divisor(keras, rng):
    y_true, y_pred = make_inputs("sparse", True, (B, T, C), rng)
    y_true[0, :2] = 255
    for reduction in REDUCTIONS:
        ours = P.SparseCategoricalCrossentropy(True, ignore_class=255, reduction=reduction)
        theirs = keras.losses.SparseCategoricalCrossentropy(
            True, ignore_class=255, reduction=reduction
        )
        np.testing.assert_allclose(
            ours(y_true, y_pred), theirs(y_true, y_pred), rtol=1e-5, atol=1e-7
        )
    losses = ref.sparse_categorical_crossentropy(y_true, y_pred, True, ignore_class=255)
    mean = P.SparseCategoricalCrossentropy(True, ignore_class=255)(y_true, y_pred)
    np.testing.assert_allclose(mean, losses.sum() / (y_true != 255).sum(), rtol=1e-5)


def test_all_labels_ignored_gives_zero_not_nan():
    loss = P.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    value, grad = jax.value_and_grad(lambda x: loss(np.array([-1, -1]), x))(jnp.ones((2, 3)))
    assert float(value) == 0.0 and np.all(grad == 0)


def test_ignore_class_uint8_labels(rng):
    labels = np.array([[3, 255], [255, 1]], np.uint8)
    logits = rng.normal(size=(2, 2, 4)).astype(np.float32)
    ours = P.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255)(labels, logits)
    losses = ref.sparse_categorical_crossentropy(labels.astype(int), logits, True, ignore_class=255)
    np.testing.assert_allclose(ours, losses.sum() / 2, rtol=1e-5)


def test_out_of_range_labels_give_zero_like_keras_one_hot(keras):
    logits = np.array([[1.0, 2.0, 3.0], [0.5, 0.1, 0.2]], np.float32)
    ours = P.sparse_categorical_crossentropy([5, 1], logits, from_logits=True)
    theirs = keras.losses.sparse_categorical_crossentropy(
        np.array([5, 1]), logits, from_logits=True
    )
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert float(ours[0]) == 0.0


# --------------------------------------------------------------------------------------
# config round trip, hashing, jit static argument
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, opts, kind, reference", CONFIGS, ids=CONFIG_IDS)
def test_config_round_trip_hash_and_static_jit(name, opts, kind, reference, rng):
    cls = getattr(P, name)
    loss = cls(reduction="sum", name="custom", **opts)
    config = loss.get_config()
    assert config["name"] == "custom" and config["reduction"] == "sum"
    rebuilt = cls.from_config(config)
    assert rebuilt == loss and hash(rebuilt) == hash(loss)
    assert rebuilt.get_config() == config
    assert isinstance(config.get("alpha", 0.0), (float, int, list))
    y_true, y_pred = config_inputs(kind, opts, (B, C), rng)
    static = jax.jit(lambda fn, t, p: fn(t, p), static_argnums=0)
    np.testing.assert_allclose(static(loss, y_true, y_pred), loss(y_true, y_pred), rtol=1e-6)
    assert cls(**opts) != loss
    with pytest.raises(AttributeError):
        loss.reduction = "none"


def test_default_names_match_keras(keras):
    for name in FUNCTIONS:
        assert getattr(P, name)().name == getattr(keras.losses, name)().name


def test_kld_aliases():
    assert P.kld is P.kl_divergence and P.kullback_leibler_divergence is P.kl_divergence


# --------------------------------------------------------------------------------------
# validation: clear errors at trace time
# --------------------------------------------------------------------------------------
BAD_OPTIONS = [
    ("BinaryCrossentropy", {"label_smoothing": 1.5}, ValueError, "label_smoothing"),
    ("CategoricalCrossentropy", {"label_smoothing": -0.1}, ValueError, "label_smoothing"),
    ("BinaryFocalCrossentropy", {"gamma": -1.0}, ValueError, "gamma"),
    ("CategoricalFocalCrossentropy", {"gamma": -2.0}, ValueError, "gamma"),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.0}, ValueError, "q"),
    ("CategoricalGeneralizedCrossEntropy", {"q": 1.5}, ValueError, "q"),
    ("CategoricalCrossentropy", {"z_loss": 1e-4}, ValueError, "z_loss"),
    ("SparseCategoricalCrossentropy", {"z_loss": 1e-4}, ValueError, "z_loss"),
    ("SparseCategoricalCrossentropy", {"from_logits": True, "z_loss": -1.0}, ValueError, "z_loss"),
    ("SparseCategoricalCrossentropy", {"ignore_class": 1.5}, TypeError, "ignore_class"),
    ("BinaryCrossentropy", {"axis": True}, TypeError, "axis"),
    ("CategoricalFocalCrossentropy", {"alpha": [[0.1, 0.2]]}, ValueError, "alpha"),
    ("BinaryFocalCrossentropy", {"alpha": "a"}, TypeError, "alpha"),
]


@pytest.mark.parametrize("name, opts, error, word", BAD_OPTIONS)
def test_bad_options_raise_in_class_and_function(name, opts, error, word):
    with pytest.raises(error, match=word):
        getattr(P, name)(**opts)
    y_true, y_pred = ([0, 1], [[0.3, 0.7], [0.6, 0.4]])
    if name in (
        "BinaryCrossentropy",
        "BinaryFocalCrossentropy",
        "CategoricalCrossentropy",
        "CategoricalFocalCrossentropy",
    ):
        y_true = [[0, 1], [1, 0]]
    with pytest.raises(error, match=word):
        jax.jit(lambda p: FUNCTIONS[name](y_true, p, **opts))(jnp.asarray(y_pred))


BAD_INPUTS = [
    (
        P.binary_crossentropy,
        np.zeros((2, 3)),
        np.zeros((2, 4)),
        {},
        ValueError,
        r"\(2, 3\).*\(2, 4\)",
    ),
    (
        P.categorical_crossentropy,
        np.zeros((2, 3)),
        np.zeros((3, 3)),
        {"from_logits": True},
        ValueError,
        r"\(2, 3\).*\(3, 3\)",
    ),
    (
        P.sparse_categorical_crossentropy,
        np.zeros((2, 3), int),
        np.zeros((2, 4)),
        {},
        ValueError,
        r"\(2, 3\).*\(2, 4\)",
    ),
    (
        P.sparse_categorical_crossentropy,
        np.zeros((2, 3, 1, 1), int),
        np.zeros((2, 4)),
        {},
        ValueError,
        r"\(2, 3, 1, 1\).*\(2, 4\)",
    ),
    (
        P.categorical_generalized_cross_entropy,
        np.zeros((3,), int),
        np.zeros((2, 4)),
        {},
        ValueError,
        r"\(3,\).*\(2, 4\)",
    ),
    (
        P.categorical_crossentropy,
        np.zeros((2, 3)),
        np.zeros((2, 3)),
        {"axis": 2},
        ValueError,
        "axis",
    ),
    (
        P.sparse_categorical_crossentropy,
        np.zeros((2,), int),
        np.zeros((2, 3)),
        {"axis": -3},
        ValueError,
        "axis",
    ),
    (
        P.binary_crossentropy,
        np.zeros((2, 3)),
        np.zeros((2, 3), np.complex64),
        {},
        TypeError,
        "y_pred",
    ),
    (P.kl_divergence, np.zeros((2, 3)), np.array([["a", "b", "c"]] * 2), {}, TypeError, "y_pred"),
    (
        P.categorical_focal_crossentropy,
        np.zeros((2, 3)),
        np.ones((2, 3)),
        {"alpha": [0.1, 0.2]},
        ValueError,
        r"alpha.*\(2, 3\)",
    ),
]


@pytest.mark.parametrize("fn, y_true, y_pred, opts, error, pattern", BAD_INPUTS)
def test_bad_inputs_raise_clear_errors_under_jit(fn, y_true, y_pred, opts, error, pattern):
    with pytest.raises(error, match=pattern):
        fn(y_true, y_pred, **opts)
    if y_pred.dtype.kind == "f":
        with pytest.raises(error, match=pattern):
            jax.jit(lambda p: fn(y_true, p, **opts))(y_pred)


@pytest.mark.parametrize("name", ["BinaryCrossentropy", "BinaryFocalCrossentropy"])
def test_binary_gradient_at_zero_and_tiny_logits(keras, name):
    # Our shared exp(-|x|) path has a hand-written derivative; |x| must not break it at 0.
    logits = np.array([[0.0, -0.0, 1e-30, -1e-30, 0.0]], np.float32)
    y_true = np.array([[0.0, 1.0, 1.0, 0.0, 0.3]], np.float32)
    opts = {"from_logits": True} | (
        {"gamma": 1.5, "apply_class_balancing": True} if "Focal" in name else {}
    )
    _, ours = value_and_grad(getattr(P, name)(**opts), y_true, logits, None)
    _, theirs = value_and_grad(getattr(keras.losses, name)(**opts), y_true, logits, None)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "name", ["SparseCategoricalCrossentropy", "CategoricalGeneralizedCrossEntropy"]
)
def test_class_shape_error_names_labels_as_given(name):
    with pytest.raises(ValueError, match=r"\(4, 2, 1\).*\(4, 5\)"):
        getattr(P, name)()(np.zeros((4, 2, 1), int), np.full((4, 5), 0.2))
