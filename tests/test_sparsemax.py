"""Fenchel-Young losses against optax 0.2.8: sparsemax projection, multiclass and binary
sparsemax losses and the Fenchel-Young factory, in value and gradient, float32 and float64.

Also: the projection's Jacobian against its closed form and central finite differences,
forward and reverse mode, second derivatives, extreme and masked scores, and misuse errors.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from anchor_parity import DTYPES, AnchorCase, assert_anchor_grid, dtype_tier, grid_params
from helpers import assert_raises_eager_and_jit, assert_transforms_consistent
from jax.test_util import check_grads

import losses_jax as lj

optax = pytest.importorskip("optax")

CLASSES = 5
WRONG_TYPES: dict[str, Any] = {"axis": 1.5, "max_fn": "logsumexp"}


def _scores(rng, shape=(4, 3, CLASSES)):
    return rng.normal(size=shape)


def _flat_rows(fn, *arrays):
    """``fn`` on the rows of arrays whose leading dimensions (those of the first array, the
    scores, without its class axis) are flattened to one: optax's losses take rank 2."""
    lead = np.shape(arrays[0])[:-1]
    flat = [jnp.reshape(a, (-1, *np.shape(a)[len(lead) :])) for a in arrays]
    return jnp.reshape(fn(*flat), lead)


# --------------------------------------------------------------------------------------
# anchors: optax in the case's dtype
# --------------------------------------------------------------------------------------
def optax_multiclass(labels, scores, dtype):
    def values(s):
        return _flat_rows(optax.losses.multiclass_sparsemax_loss, s, jnp.asarray(labels))

    s = jnp.asarray(scores, dtype)
    return values(s), jax.grad(lambda x: jnp.sum(values(x)))(s)


def optax_binary(labels, scores, dtype):
    def values(s):
        return jnp.mean(optax.losses.sparsemax_loss(s, jnp.asarray(labels)), axis=-1)

    s = jnp.asarray(scores, dtype)
    return values(s), jax.grad(lambda x: jnp.sum(values(x)))(s)


def sparse_inputs(rng):
    return rng.integers(0, CLASSES, size=(4, 3)).astype(np.int32), _scores(rng)


def binary_inputs(rng):
    return rng.integers(0, 2, size=(4, 3, CLASSES)).astype(np.float64), 1.5 * _scores(rng)


CASES = [
    AnchorCase(
        "Sparsemax",
        lambda **kw: lj.Sparsemax(**kw),
        optax_multiclass,
        sparse_inputs,
    ),
    AnchorCase(
        "BinarySparsemax",
        lambda **kw: lj.BinarySparsemax(**kw),
        optax_binary,
        binary_inputs,
    ),
]


PARITY = grid_params(CASES)


@pytest.mark.parametrize(("case", "combos", "dtype"), PARITY)
def test_parity_with_optax(case, combos, dtype):
    assert_anchor_grid(case, combos, dtype)


PROJECTION_SHAPES = [(1,), (2,), (7,), (6, 5), (3, 4, 9)]


def projection_params():
    """shape x dtype; the default tier takes one dtype per shape, alternating (all: slow)."""
    return [
        pytest.param(shape, dtype, id=f"{shape}-{dtype}", marks=dtype_tier(i, dtype))
        for i, shape in enumerate(PROJECTION_SHAPES)
        for dtype in DTYPES
    ]


@pytest.mark.parametrize(("shape", "dtype"), projection_params())
def test_projection_matches_optax(shape, dtype):
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    with jax.enable_x64(dtype == "float64"):
        scores = jnp.asarray(rng.normal(0.0, 2.0, size=shape), dtype)
        rows = jnp.reshape(scores, (-1, shape[-1]))
        expected = jax.vmap(optax.projections.projection_simplex)(rows).reshape(shape)
        actual = lj.sparsemax_projection(scores)
        assert actual.dtype == jnp.dtype(dtype)
        rtol = 1e-6 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol)
        np.testing.assert_allclose(actual, ref.sparsemax_projection(scores), atol=10 * rtol)
        np.testing.assert_allclose(jnp.sum(actual, axis=-1), 1.0, rtol=10 * rtol)


@pytest.mark.parametrize("axis", [0, 1, -2])
def test_projection_along_another_axis(axis):
    scores = np.random.default_rng(2).normal(size=(3, 4, 5))
    moved = np.moveaxis(scores, axis, -1)
    expected = np.moveaxis(ref.sparsemax_projection(moved), -1, axis)
    np.testing.assert_allclose(lj.sparsemax_projection(scores, axis=axis), expected, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fenchel_young_factory_matches_optax(dtype):
    rng = np.random.default_rng(5)
    targets = jax.nn.softmax(rng.normal(size=(4, 3, CLASSES)))
    scores = rng.normal(size=(4, 3, CLASSES))

    def gini_max(s):  # the sparsemax regularised max: <p, s> + (1 - ||p||^2) / 2
        p = lj.sparsemax_projection(s)
        return jnp.dot(p, s) + 0.5 * (1.0 - jnp.dot(p, p))

    with jax.enable_x64(dtype == "float64"):
        t, s = jnp.asarray(targets, dtype), jnp.asarray(scores, dtype)
        rtol = 1e-5 if dtype == "float32" else 1e-10
        for max_fn in (jax.nn.logsumexp, gini_max):
            ours = lj.fenchel_young(max_fn)
            theirs = optax.losses.make_fenchel_young_loss(max_fn)
            np.testing.assert_allclose(ours(t, s), theirs(s, t), rtol=rtol, atol=rtol)
            assert ours(t, s).dtype == jnp.dtype(dtype)
            grad = jax.grad(lambda x, f=ours: jnp.sum(f(t, x)))(s)
            expected = jax.grad(lambda x, f=theirs: jnp.sum(f(x, t)))(s)
            np.testing.assert_allclose(grad, expected, rtol=rtol, atol=rtol)
            # The gradient is the regularised argmax minus the targets.
            argmax = jax.nn.softmax(s) if max_fn is jax.nn.logsumexp else lj.sparsemax_projection(s)
            np.testing.assert_allclose(grad, argmax - t, rtol=rtol, atol=10 * rtol)


def test_fenchel_young_of_the_gini_max_is_the_sparsemax_loss():
    rng = np.random.default_rng(6)
    labels, scores = sparse_inputs(rng)

    def gini_max(s):
        p = lj.sparsemax_projection(s)
        return jnp.dot(p, s) + 0.5 * (1.0 - jnp.dot(p, p))

    one_hot = np.eye(CLASSES)[labels]
    np.testing.assert_allclose(
        lj.fenchel_young(gini_max)(one_hot, scores), lj.sparsemax(labels, scores), atol=1e-6
    )


def test_fenchel_young_wrapped_for_reductions_and_weights():
    rng = np.random.default_rng(7)
    targets, scores = np.eye(CLASSES)[rng.integers(0, CLASSES, 6)], rng.normal(size=(6, CLASSES))
    loss = lj.fenchel_young(jax.nn.logsumexp)
    assert loss.__name__ == "fenchel_young_logsumexp"
    weights = rng.uniform(0.1, 2.0, 6)
    wrapped = lj.LossFunctionWrapper(loss, reduction="mean_with_sample_weight")
    expected = ref.categorical_crossentropy(targets, scores, from_logits=True)
    np.testing.assert_allclose(
        wrapped(targets, scores, sample_weight=weights),
        np.sum(weights * expected) / np.sum(weights),
        rtol=1e-5,
    )


# --------------------------------------------------------------------------------------
# the projection's derivatives
# --------------------------------------------------------------------------------------
def closed_form_jacobian(p):
    support = (p > 0).astype(np.float64)
    return np.diag(support) - np.outer(support, support) / support.sum()


@pytest.mark.parametrize("seed", range(6))
def test_projection_jacobian_matches_closed_form_and_finite_differences(seed):
    rng = np.random.default_rng(seed)
    with jax.enable_x64(True):
        scores = jnp.asarray(rng.normal(0.0, 0.7, size=7))
        p = np.asarray(lj.sparsemax_projection(scores))
        expected = closed_form_jacobian(p)
        forward = jax.jacfwd(lj.sparsemax_projection)(scores)
        reverse = jax.jacrev(lj.sparsemax_projection)(scores)
        np.testing.assert_allclose(forward, expected, atol=1e-12)
        np.testing.assert_allclose(reverse, expected, atol=1e-12)
        step = 1e-6  # well inside the region where the support is fixed
        numeric = np.stack(
            [
                (
                    lj.sparsemax_projection(scores + step * e)
                    - lj.sparsemax_projection(scores - step * e)
                )
                / (2 * step)
                for e in np.eye(7)
            ],
            axis=-1,
        )
        np.testing.assert_allclose(forward, numeric, atol=1e-8)
        # Several classes in the support and several outside: both parts are exercised.
        assert 1 <= (p > 0).sum() <= 7


def test_projection_derivatives_in_every_mode():
    with jax.enable_x64(True):
        scores = jnp.asarray(np.random.default_rng(3).normal(0.0, 0.5, size=(3, 6)))
        check_grads(
            lambda s: lj.sparsemax_projection(s) @ jnp.arange(6.0),
            (scores,),
            order=2,
            modes=("fwd", "rev"),
            atol=1e-6,
            rtol=1e-6,
        )


def test_loss_hessian_is_the_projection_jacobian():
    # d^2 loss / d z^2 = d p / d z: the Hessian of a Fenchel-Young loss is the argmax's Jacobian.
    with jax.enable_x64(True):
        scores = jnp.asarray(np.random.default_rng(4).normal(0.0, 0.5, size=6))
        hessian = jax.hessian(lambda s: lj.sparsemax(jnp.array(2), s))(scores)
        jacobian = jax.jacfwd(lj.sparsemax_projection)(scores)
        np.testing.assert_allclose(hessian, jacobian, atol=1e-12)
        binary_hessian = jax.hessian(lambda x: lj.binary_sparsemax(jnp.ones(3), x))(
            jnp.array([-2.0, 0.3, 2.0])
        )
        np.testing.assert_allclose(binary_hessian, np.diag([0.0, 0.5, 0.0]) / 3, atol=1e-12)


@pytest.mark.parametrize(
    ("fn", "inputs"),
    [
        (lj.sparsemax, sparse_inputs),
        (lj.binary_sparsemax, binary_inputs),
        (
            lj.fenchel_young(jax.nn.logsumexp),
            lambda r: (np.eye(CLASSES)[r.integers(0, 5, 4)], _scores(r, (4, CLASSES))),
        ),
    ],
    ids=["sparsemax", "binary_sparsemax", "fenchel_young"],
)
def test_jit_grad_vmap_and_forward_mode(fn, inputs):
    y_true, y_pred = inputs(np.random.default_rng(8))
    y_pred = y_pred.astype(np.float32)
    assert_transforms_consistent(fn, y_true, y_pred, rtol=1e-5)

    def total(p):
        return jnp.sum(fn(y_true, p))

    tangent = np.random.default_rng(9).normal(size=y_pred.shape).astype(np.float32)
    _, forward = jax.jvp(total, (jnp.asarray(y_pred),), (jnp.asarray(tangent),))
    reverse = jnp.vdot(jax.grad(total)(jnp.asarray(y_pred)), tangent)
    np.testing.assert_allclose(forward, reverse, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------------------
# values of note: the float64 references, zeros, extremes, masked classes
# --------------------------------------------------------------------------------------
def test_matches_the_float64_references():
    rng = np.random.default_rng(12)
    labels, scores = sparse_inputs(rng)
    np.testing.assert_allclose(
        lj.sparsemax(labels, scores), ref.sparsemax(labels, scores), atol=1e-6
    )
    grad = jax.grad(lambda s: jnp.sum(lj.sparsemax(labels, s)))(jnp.asarray(scores, jnp.float32))
    np.testing.assert_allclose(grad, ref.grad_sparsemax(labels, scores), atol=1e-6)
    y, x = binary_inputs(rng)
    np.testing.assert_allclose(lj.binary_sparsemax(y, x), ref.binary_sparsemax(y, x), atol=1e-6)
    grad = jax.grad(lambda s: jnp.sum(lj.binary_sparsemax(y, s)))(jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(grad, ref.grad_binary_sparsemax(y, x), atol=1e-6)


def test_loss_is_zero_exactly_when_the_projection_is_the_label():
    scores = np.array([[3.0, 1.0, 0.0], [3.0, 2.5, 0.0]], np.float32)
    values = lj.sparsemax(np.array([0, 0]), scores)
    assert float(values[0]) == 0.0 and float(values[1]) > 0.0
    soft = np.array([[0.0, 0.25, 1.0]], np.float32)
    # sparse_sigmoid(x) = y: x = 2y - 1 inside (-1, 1), beyond +-1 at the ends.
    np.testing.assert_allclose(
        lj.binary_sparsemax(soft, np.array([[-3.0, -0.5, 4.0]])), [0.0], atol=1e-7
    )


@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_extreme_scores_are_exact(scale):
    scores = np.array([[1.0, -1.0, 1.0, 1.0, -1.0]], np.float32) * np.float32(scale)
    for label in range(CLASSES):
        value, grad = jax.value_and_grad(
            lambda s, k=label: jnp.sum(lj.sparsemax(np.array([k]), s))
        )(jnp.asarray(scores))
        np.testing.assert_allclose(value, ref.sparsemax(np.array([label]), scores), rtol=1e-6)
        np.testing.assert_allclose(grad, ref.grad_sparsemax(np.array([label]), scores), atol=1e-6)
    labels = np.array([[1.0, 0.0, 0.0, 1.0, 1.0]], np.float32)
    value, grad = jax.value_and_grad(lambda s: jnp.sum(lj.binary_sparsemax(labels, s)))(
        jnp.asarray(scores)
    )
    np.testing.assert_allclose(value, ref.binary_sparsemax(labels, scores), rtol=1e-6)
    np.testing.assert_allclose(grad, ref.grad_binary_sparsemax(labels, scores), atol=1e-6)


def test_masked_classes_get_zero_probability_and_gradient():
    scores = np.array([[0.5, -np.inf, 0.2, -np.inf, 0.1]], np.float32)
    finite = scores[:, [0, 2, 4]]
    p = lj.sparsemax_projection(scores)
    np.testing.assert_allclose(p[:, [0, 2, 4]], lj.sparsemax_projection(finite), atol=1e-7)
    assert float(p[0, 1]) == 0.0 and float(p[0, 3]) == 0.0
    value, grad = jax.value_and_grad(lambda s: jnp.sum(lj.sparsemax(np.array([2]), s)))(
        jnp.asarray(scores)
    )
    np.testing.assert_allclose(value, lj.sparsemax(np.array([1]), finite)[0], rtol=1e-6)
    assert np.all(np.isfinite(grad)) and float(grad[0, 1]) == 0.0 and float(grad[0, 3]) == 0.0
    loss = lj.fenchel_young(jax.nn.logsumexp)
    one_hot = np.array([[1.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
    value, grad = jax.value_and_grad(lambda s: jnp.sum(loss(one_hot, s)))(jnp.asarray(scores))
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_out_of_range_labels_give_zero():
    scores = _scores(np.random.default_rng(0), (3, CLASSES)).astype(np.float32)
    values = lj.sparsemax(np.array([-1, CLASSES, 2]), scores)
    assert float(values[0]) == 0.0 and float(values[1]) == 0.0 and float(values[2]) > 0.0
    err, _ = lj.checked(lj.sparsemax)(np.array([-1, CLASSES, 2]), scores)
    assert "outside [0, 5)" in str(err.get())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_returns_its_dtype(dtype):
    labels, scores = sparse_inputs(np.random.default_rng(1))
    low = jnp.asarray(scores, dtype)
    value = lj.Sparsemax(dtype=dtype)(labels, low)
    assert value.dtype == jnp.dtype(dtype)
    expected = lj.Sparsemax()(labels, np.asarray(low.astype(jnp.float32)))
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-2)
    assert lj.sparsemax_projection(low).dtype == jnp.dtype(dtype)


# --------------------------------------------------------------------------------------
# errors and config
# --------------------------------------------------------------------------------------
def test_misuse_raises_clear_errors():
    scores = np.zeros((4, CLASSES), np.float32)
    assert_raises_eager_and_jit(
        ValueError, r"\(4, 3\).*\(4, 5\)", lj.sparsemax, np.zeros((4, 3), np.int32), scores
    )
    assert_raises_eager_and_jit(
        ValueError, "shape", lj.sparsemax, np.zeros((), np.int32), np.float32(1.0)
    )
    assert_raises_eager_and_jit(
        ValueError, "axis", partial(lj.sparsemax_projection, axis=2), scores
    )
    assert_raises_eager_and_jit(ValueError, "axis", lj.sparsemax_projection, np.float32(1.0))
    with pytest.raises(TypeError, match="axis"):
        lj.sparsemax_projection(scores, axis=WRONG_TYPES["axis"])
    with pytest.raises(TypeError, match="max_fn"):
        lj.fenchel_young(WRONG_TYPES["max_fn"])
    vector_max = lj.fenchel_young(lambda s: s)  # (n,) -> (n,): not a max
    with pytest.raises(ValueError):
        vector_max(scores, scores)
    assert_raises_eager_and_jit(
        ValueError, r"\(4, 4\).*\(4, 5\)", lj.binary_sparsemax, np.zeros((4, 4)), scores
    )


@pytest.mark.parametrize("cls", [lj.Sparsemax, lj.BinarySparsemax])
def test_config_round_trip_and_registry(cls):
    loss = cls(reduction="sum", name="x")
    assert cls.from_config(loss.get_config()) == loss and hash(loss) == hash(
        cls.from_config(loss.get_config())
    )
    assert lj.get(cls.__name__) == cls() and lj.get(cls.function.__name__) is cls.function
    assert lj.deserialize(lj.serialize(loss)) == loss
