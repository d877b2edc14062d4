"""Ranking and embedding losses against their anchors, side by side: PyTorch 2.13 (margin
ranking, hinge embedding, cosine embedding; gradients w.r.t. both predictions), optax 0.2.8
(listwise softmax, with ``where`` and item weights) and rax 0.4 where it is installed (pairwise
logistic and hinge), in value and gradient, every option and reduction, float32 and float64;
the float64 NumPy references (tests/references.py); traced margins against finite
differences; the transformations; masked items, zero vectors and extreme inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref
from jax.test_util import check_grads

import losses_jax as lj
from losses_jax.base import REDUCTIONS

BATCH, DIM, LIST = 6, 4, 5
DTYPES = ("float32", "float64")
TORCH_REDUCTION = {
    "sum_over_batch_size": "mean",
    "mean": "mean",
    "mean_with_sample_weight": "mean",
    "sum": "sum",
    "none": "none",
    None: "none",
}
TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-10, 1e-12)}  # (rtol, atol per unit)


def _assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCE[dtype]
    expected = np.asarray(expected, np.float64)
    scale = float(np.max(np.abs(expected), initial=0.0)) + 1.0
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol * scale
    )


def ours_value_and_grads(loss_of_preds, preds, rng):
    """Value and the vector-Jacobian products of a random cotangent w.r.t. each prediction."""
    value, pullback = jax.vjp(loss_of_preds, *[jnp.asarray(p) for p in preds])
    cotangent = rng.normal(size=value.shape)
    return value, pullback(jnp.asarray(cotangent, value.dtype)), cotangent


# --------------------------------------------------------------------------------------
# PyTorch: pairs
# --------------------------------------------------------------------------------------
def score_pairs(rng):
    first, second = rng.normal(0.0, 1.5, size=(2, BATCH))
    return rng.choice([-1.0, 1.0], size=BATCH), first, second


def distances(rng):
    # Elementwise over any shape, as PyTorch.
    shape = (BATCH, 3)
    return rng.choice([-1.0, 1.0], size=shape), rng.uniform(-0.5, 3.0, size=shape), None


def embedding_pairs(rng):
    first, second = rng.normal(size=(2, BATCH, DIM))
    first[0] = 0.0  # zero vectors: PyTorch's 1e-12 keeps the cosine and its gradient finite
    second[1] = 0.0
    first[2], second[2] = 0.0, 0.0
    return rng.choice([-1.0, 1.0], size=BATCH), first, second


@dataclass(frozen=True)
class TorchCase:
    class_name: str
    make_inputs: Callable  # rng -> (y_true, y_pred, y_pred_other or None)
    torch_loss: Callable  # (F, target, x1, x2, reduction, margin) -> tensor
    options: dict = field(default_factory=dict)

    def label(self):
        return f"{self.class_name}({','.join(f'{k}={v}' for k, v in self.options.items())})"


TORCH_CASES = (
    [
        TorchCase(
            "MarginRanking",
            score_pairs,
            lambda F, y, x1, x2, r, m: F.margin_ranking_loss(x1, x2, y, margin=m, reduction=r),
            options,
        )
        for options in ({}, {"margin": 0.5}, {"margin": -0.3})
    ]
    + [
        TorchCase(
            "HingeEmbedding",
            distances,
            lambda F, y, x, _, r, m: F.hinge_embedding_loss(x, y, margin=m, reduction=r),
            options,
        )
        for options in ({}, {"margin": 2.0}, {"margin": 0.25})
    ]
    + [
        TorchCase(
            "CosineEmbedding",
            embedding_pairs,
            lambda F, y, x1, x2, r, m: F.cosine_embedding_loss(x1, x2, y, margin=m, reduction=r),
            options,
        )
        for options in ({}, {"margin": 0.3}, {"margin": -0.5})
    ]
)
DEFAULT_MARGIN = {"MarginRanking": 0.0, "HingeEmbedding": 1.0, "CosineEmbedding": 0.0}


def torch_params():
    return [
        pytest.param(case, reduction, dtype, id=f"{case.label()}-{reduction}-{dtype}")
        for case in TORCH_CASES
        for reduction in REDUCTIONS
        for dtype in DTYPES
    ]


@pytest.mark.cover
@pytest.mark.parametrize(("case", "reduction", "dtype"), torch_params())
def test_matches_pytorch(case, reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(21)
    y_true, first, second = case.make_inputs(rng)
    y_true = y_true.astype(dtype)
    preds = [p.astype(dtype) for p in (first, second) if p is not None]
    with jax.enable_x64(dtype == "float64"):
        loss = getattr(lj, case.class_name)(**case.options, reduction=reduction, dtype=dtype)

        def of_preds(first, *rest):
            other = {"y_pred_other": rest[0]} if rest else {}
            return loss(y_true, first, **other)

        value, grads, cotangent = ours_value_and_grads(of_preds, preds, rng)
        assert value.dtype == jnp.dtype(dtype)
    tensors = [torch.tensor(p, requires_grad=True) for p in preds]
    margin = case.options.get("margin", DEFAULT_MARGIN[case.class_name])
    expected = case.torch_loss(
        torch.nn.functional,
        torch.tensor(y_true),
        tensors[0],
        tensors[1] if len(tensors) > 1 else None,
        TORCH_REDUCTION[reduction],
        margin,
    )
    expected.backward(torch.tensor(cotangent, dtype=tensors[0].dtype))
    assert value.shape == tuple(expected.shape)
    _assert_close(value, expected.detach().numpy(), dtype)
    for grad, tensor in zip(grads, tensors):
        _assert_close(grad, tensor.grad.numpy(), dtype)


def test_kinks_and_other_targets_follow_pytorch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    # margin - y (x1 - x2) and margin - x exactly 0: PyTorch's clamp_min passes the gradient.
    x1, x2, y = np.array([1.0, 0.5]), np.array([1.0, 0.0]), np.array([1.0, 1.0])
    t1, t2 = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    F.margin_ranking_loss(t1, t2, torch.tensor(y), reduction="sum").backward()
    g1, g2 = jax.grad(
        lambda a, b: lj.MarginRanking(reduction="sum")(y, a, y_pred_other=b), argnums=(0, 1)
    )(jnp.asarray(x1), jnp.asarray(x2))
    np.testing.assert_array_equal(g1, t1.grad.numpy())
    np.testing.assert_array_equal(g2, t2.grad.numpy())
    # Hinge embedding: a target of 0 (neither 1 nor -1) adds both terms, as PyTorch's kernel.
    x, targets = np.array([1.0, 0.5, 2.0]), np.array([-1.0, 0.0, 0.0])
    tx = torch.tensor(x, requires_grad=True)
    expected = F.hinge_embedding_loss(tx, torch.tensor(targets), reduction="none")
    expected.sum().backward()
    value, grad = jax.value_and_grad(lambda d: jnp.sum(lj.hinge_embedding(targets, d)))(x)
    np.testing.assert_allclose(lj.hinge_embedding(targets, x), expected.detach().numpy())
    np.testing.assert_array_equal(grad, tx.grad.numpy())


# --------------------------------------------------------------------------------------
# optax: the listwise softmax loss
# --------------------------------------------------------------------------------------
def ranked_lists(rng, batch_shape=(BATCH,)):
    shape = (*batch_shape, LIST)
    relevance = rng.integers(0, 4, size=shape).astype(np.float64)
    scores = rng.normal(0.0, 1.5, size=shape)
    where = rng.uniform(size=shape) > 0.3
    where[..., 0, :] = False  # a list without a valid item
    where[..., 1, :] = True
    weights = rng.uniform(0.2, 2.0, size=shape)
    return relevance, scores, where, weights


LIST_INPUTS = {
    "plain": (),
    "where": ("where",),
    "item_weight": ("item_weight",),
    "where,item_weight": ("where", "item_weight"),
}


def _list_inputs(which, where, weights):
    given = {"where": where, "item_weight": weights}
    return {key: given[key] for key in LIST_INPUTS[which]}


def _optax_reduce_fn(reduction):
    if reduction in ("none", None):
        return None
    return jnp.sum if reduction == "sum" else jnp.mean


@pytest.mark.cover
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("which", sorted(LIST_INPUTS))
def test_listwise_softmax_matches_optax(which, reduction, dtype):
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(31)
    relevance, scores, where, weights = ranked_lists(rng)
    inputs = _list_inputs(which, where, weights)
    with jax.enable_x64(dtype == "float64"):
        relevance, scores = jnp.asarray(relevance, dtype), jnp.asarray(scores, dtype)
        inputs = {key: jnp.asarray(value) for key, value in inputs.items()}
        loss = lj.ListwiseSoftmax(reduction=reduction, dtype=dtype)
        value, (grad,), cotangent = ours_value_and_grads(
            lambda s: loss(relevance, s, **inputs), [scores], rng
        )
        optax_inputs = {"weights" if k == "item_weight" else k: v for k, v in inputs.items()}
        expected, pullback = jax.vjp(
            lambda s: optax.losses.ranking_softmax_loss(
                s, relevance, reduce_fn=_optax_reduce_fn(reduction), **optax_inputs
            ),
            scores,
        )
        (expected_grad,) = pullback(jnp.asarray(cotangent, expected.dtype))
    assert value.dtype == jnp.dtype(dtype) and value.shape == expected.shape
    _assert_close(value, expected, dtype)
    _assert_close(grad, expected_grad, dtype)


# --------------------------------------------------------------------------------------
# rax: pairwise losses (rax is not a dependency: these run where it is installed)
# --------------------------------------------------------------------------------------
RAX_LOSSES = {"PairwiseLogistic": "pairwise_logistic_loss", "PairwiseHinge": "pairwise_hinge_loss"}


def _rax_reduced(rax_loss, scores, relevance, reduction, where, **inputs):
    """rax's loss under our reduction: per-list sums of its pair matrix ("none"), its sum,
    or its sum over the lists that hold a valid item."""
    if reduction in ("none", None):
        pairs = rax_loss(scores, relevance, reduce_fn=None, where=where, **inputs)
        return jnp.sum(pairs.reshape(*scores.shape[:-1], -1), axis=-1)
    total = rax_loss(scores, relevance, reduce_fn=jnp.sum, where=where, **inputs)
    if reduction == "sum":
        return total
    lists = scores.shape[0] if where is None else jnp.sum(jnp.any(where, axis=-1))
    return total / lists


@pytest.mark.cover
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("which", sorted(LIST_INPUTS))
@pytest.mark.parametrize("name", sorted(RAX_LOSSES))
def test_pairwise_matches_rax(name, which, reduction, dtype):
    rax = pytest.importorskip("rax")
    rax_loss = getattr(rax, RAX_LOSSES[name])
    rng = np.random.default_rng(41)
    relevance, scores, where, weights = ranked_lists(rng)
    inputs = _list_inputs(which, where, weights)
    with jax.enable_x64(dtype == "float64"):
        relevance, scores = jnp.asarray(relevance, dtype), jnp.asarray(scores, dtype)
        inputs = {key: jnp.asarray(value) for key, value in inputs.items()}
        loss = getattr(lj, name)(reduction=reduction, dtype=dtype)
        value, (grad,), cotangent = ours_value_and_grads(
            lambda s: loss(relevance, s, **inputs), [scores], rng
        )
        rax_inputs: dict = {"where": None}
        rax_inputs.update({"weights" if k == "item_weight" else k: v for k, v in inputs.items()})
        expected, pullback = jax.vjp(
            lambda s: _rax_reduced(rax_loss, s, relevance, reduction, **rax_inputs), scores
        )
        (expected_grad,) = pullback(jnp.asarray(cotangent, expected.dtype))
    assert value.dtype == jnp.dtype(dtype) and value.shape == expected.shape
    _assert_close(value, expected, dtype)
    _assert_close(grad, expected_grad, dtype)


# --------------------------------------------------------------------------------------
# float64 references
# --------------------------------------------------------------------------------------
def _pairs(rng, batch_shape, dim=None):
    tail = () if dim is None else (dim,)
    first, second = rng.normal(0.0, 1.5, size=(2, *batch_shape, *tail))
    return rng.choice([-1.0, 1.0], size=batch_shape), first, second


def reference_cases():
    rng = np.random.default_rng(51)
    batch = (3, 2)
    y, x1, x2 = _pairs(rng, batch)
    yc, e1, e2 = _pairs(rng, batch, DIM)
    relevance, scores, where, weights = ranked_lists(rng, batch)
    lists = {"where": where, "item_weight": weights}
    return [
        ("margin_ranking", y, x1, {"y_pred_other": x2, "margin": 0.4}, ref.margin_ranking),
        ("hinge_embedding", y, np.abs(x1), {"margin": 1.5}, ref.hinge_embedding),
        ("cosine_embedding", yc, e1, {"y_pred_other": e2, "margin": 0.2}, ref.cosine_embedding),
        ("listwise_softmax", relevance, scores, lists, ref.listwise_softmax),
        ("pairwise_logistic", relevance, scores, lists, ref.pairwise_logistic),
        ("pairwise_hinge", relevance, scores, lists, ref.pairwise_hinge),
    ]


REFERENCE_CASES = reference_cases()


@pytest.mark.parametrize(
    ("name", "y_true", "y_pred", "kwargs", "reference"),
    REFERENCE_CASES,
    ids=[case[0] for case in REFERENCE_CASES],
)
def test_functions_match_float64_references(name, y_true, y_pred, kwargs, reference):
    expected = reference(y_true, y_pred, **kwargs)
    with jax.enable_x64(True):
        values = getattr(lj, name)(y_true, y_pred, **kwargs)
        assert values.dtype == jnp.float64
        np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-14)
    as_float32 = {
        k: v.astype(np.float32) if v.dtype == np.float64 else v
        for k, v in kwargs.items()
        if isinstance(v, np.ndarray)
    }
    values32 = getattr(lj, name)(y_true, y_pred.astype(np.float32), **{**kwargs, **as_float32})
    assert values32.dtype == jnp.float32 and values32.shape == expected.shape
    np.testing.assert_allclose(values32, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # covered in the default run by tests/test_transformations.py
@pytest.mark.parametrize(
    ("name", "y_true", "y_pred", "kwargs", "reference"),
    REFERENCE_CASES,
    ids=[case[0] for case in REFERENCE_CASES],
)
def test_transformations(name, y_true, y_pred, kwargs, reference):
    """jit and vmap equal eager; forward mode equals reverse mode; the Hessian is finite."""
    fn = getattr(lj, name)
    arrays = {
        k: jnp.asarray(v, jnp.float32 if v.dtype == np.float64 else v.dtype)
        for k, v in kwargs.items()
        if isinstance(v, np.ndarray)
    }
    options = {k: v for k, v in kwargs.items() if k not in arrays}
    y_true, y_pred = jnp.asarray(y_true, jnp.float32), jnp.asarray(y_pred, jnp.float32)

    def per_sample(t, p, inputs):
        return fn(t, p, **inputs, **options)

    eager = per_sample(y_true, y_pred, arrays)
    np.testing.assert_allclose(jax.jit(per_sample)(y_true, y_pred, arrays), eager, rtol=1e-6)
    mapped = jax.vmap(per_sample)(y_true, y_pred, arrays)
    np.testing.assert_allclose(mapped, eager, rtol=1e-6, atol=1e-7)

    def total(p, inputs):
        return jnp.sum(per_sample(y_true, p, inputs))

    np.testing.assert_allclose(
        jax.jacfwd(total)(y_pred, arrays), jax.grad(total)(y_pred, arrays), rtol=1e-5, atol=1e-6
    )
    assert np.isfinite(jax.hessian(total)(y_pred, arrays)).all()
    if "y_pred_other" in arrays:  # the second prediction is differentiable too
        other_grad = jax.grad(lambda o: total(y_pred, {**arrays, "y_pred_other": o}))(
            arrays["y_pred_other"]
        )
        assert np.isfinite(other_grad).all() and np.any(other_grad != 0)


# --------------------------------------------------------------------------------------
# traced margins
# --------------------------------------------------------------------------------------
_RNG = np.random.default_rng(61)
_Y, _X1, _X2 = _pairs(_RNG, (BATCH,))
_YC, _E1, _E2 = _pairs(_RNG, (BATCH,), DIM)

MARGIN_CASES = [
    ("margin_ranking", lambda m: lj.margin_ranking(_Y, _X1, y_pred_other=_X2, margin=m), 0.3),
    ("hinge_embedding", lambda m: lj.hinge_embedding(_Y, np.abs(_X1), margin=m), 1.2),
    ("cosine_embedding", lambda m: lj.cosine_embedding(_YC, _E1, y_pred_other=_E2, margin=m), -0.1),
    (
        "class_margin_ranking",
        lambda m: lj.MarginRanking(margin=m, dtype="float64")(_Y, _X1, y_pred_other=_X2),
        0.3,
    ),
]


@pytest.mark.parametrize(
    ("fn", "value"), [c[1:] for c in MARGIN_CASES], ids=[c[0] for c in MARGIN_CASES]
)
def test_traced_margin_derivatives_match_finite_differences(fn, value):
    with jax.enable_x64(True):
        total = jax.jit(lambda m: jnp.sum(fn(m)))
        margin = jnp.asarray(value, jnp.float64)
        check_grads(total, (margin,), order=2, modes=("fwd", "rev"))
        assert float(jax.grad(total)(margin)) != 0.0


# --------------------------------------------------------------------------------------
# masked items, degenerate lists, zero vectors and extreme inputs
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["ListwiseSoftmax", "PairwiseLogistic", "PairwiseHinge"])
def test_masked_items_do_not_matter_and_empty_lists_are_no_samples(name):
    rng = np.random.default_rng(71)
    relevance, scores, where, _ = ranked_lists(rng)
    poisoned = np.where(where, scores, np.nan)  # masked scores may be anything
    poisoned[0, :2] = [np.inf, -np.inf]
    loss = getattr(lj, name)()
    value, grad = jax.value_and_grad(lambda s: loss(relevance, s, where=where))(
        jnp.asarray(poisoned, jnp.float32)
    )
    expected = getattr(ref, lj.get(name).function.__name__)(relevance, scores, where=where)
    # Row 0 has no valid item: loss 0, and it is left out of the mean.
    assert expected[0] == 0.0
    np.testing.assert_allclose(float(value), expected[1:].mean(), rtol=1e-5)
    assert np.isfinite(grad).all()
    np.testing.assert_array_equal(np.asarray(grad)[~where], 0.0)
    # The caller's mask combines with the lists' own.
    mask = np.arange(BATCH) % 2 == 1
    masked = loss(relevance, scores.astype(np.float32), where=where, mask=mask)
    np.testing.assert_allclose(float(masked), expected[mask & where.any(-1)].mean(), rtol=1e-5)


@pytest.mark.parametrize("name", ["pairwise_logistic", "pairwise_hinge", "listwise_softmax"])
def test_lists_without_pairs_or_relevance_cost_nothing(name):
    scores = jnp.array([[0.3, -1.0, 2.0]])
    value, grad = jax.value_and_grad(lambda s: jnp.sum(getattr(lj, name)(jnp.zeros((1, 3)), s)))(
        scores
    )
    assert float(value) == 0.0
    np.testing.assert_array_equal(grad, 0.0)


def test_cosine_embedding_of_zero_vectors_matches_pytorch():
    torch = pytest.importorskip("torch")
    x1 = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    x2 = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 2.0], [0.0, 0.0, 0.0]])
    y = np.array([1.0, -1.0, 1.0])
    t1, t2 = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    expected = torch.nn.functional.cosine_embedding_loss(t1, t2, torch.tensor(y), reduction="sum")
    expected.backward()
    with jax.enable_x64(True):
        value, (g1, g2) = jax.value_and_grad(
            lambda a, b: lj.CosineEmbedding(reduction="sum", dtype="float64")(y, a, y_pred_other=b),
            argnums=(0, 1),
        )(jnp.asarray(x1), jnp.asarray(x2))
    np.testing.assert_allclose(float(value), expected.item(), rtol=1e-12)
    np.testing.assert_allclose(g1, t1.grad.numpy(), rtol=1e-9)
    np.testing.assert_allclose(g2, t2.grad.numpy(), rtol=1e-9)
    # float32 too: finite, the same cosines.
    value32, grads32 = jax.value_and_grad(
        lambda a, b: lj.CosineEmbedding(reduction="sum")(y, a, y_pred_other=b), argnums=(0, 1)
    )(jnp.asarray(x1, jnp.float32), jnp.asarray(x2, jnp.float32))
    np.testing.assert_allclose(float(value32), expected.item(), rtol=1e-6)
    assert all(np.isfinite(g).all() for g in grads32)


def extreme_case(name, scale):
    """``(y_true, y_pred, kwargs)`` with predictions of +-``scale``."""
    rng = np.random.default_rng(81)

    def signs(shape):
        return rng.choice([-1.0, 1.0], size=shape)

    if name == "margin_ranking":
        return signs(BATCH), signs(BATCH) * scale, {"y_pred_other": signs(BATCH) * scale}
    if name == "hinge_embedding":
        return signs(BATCH), signs(BATCH) * scale, {"margin": 0.5}
    if name == "cosine_embedding":
        other = rng.normal(size=(BATCH, DIM)) * scale
        return signs(BATCH), signs((BATCH, DIM)) * scale, {"y_pred_other": other}
    return ranked_lists(rng)[0], signs((BATCH, LIST)) * scale, {}


EXTREME_NAMES = [case[0] for case in REFERENCE_CASES]


@pytest.mark.parametrize("scale", [1e4, 1e30])
@pytest.mark.parametrize("name", EXTREME_NAMES)
def test_extreme_inputs_are_finite_and_exact(name, scale):
    y_true, y_pred, kwargs = extreme_case(name, scale)
    fn = getattr(lj, name)
    as32 = {
        k: jnp.asarray(v, jnp.float32) if isinstance(v, np.ndarray) else v
        for k, v in kwargs.items()
    }
    y_pred32 = jnp.asarray(y_pred, jnp.float32)
    value, grad = jax.value_and_grad(lambda p: jnp.sum(fn(y_true, p, **as32)))(y_pred32)
    assert np.isfinite(value) and np.isfinite(grad).all()
    expected = getattr(ref, name)(y_true, y_pred, **kwargs)
    np.testing.assert_allclose(fn(y_true, y_pred32, **as32), expected, rtol=1e-5, atol=1e-6)


def test_second_prediction_takes_the_first_one_s_dtype():
    x1 = jnp.asarray(_X1, jnp.bfloat16)
    loss = lj.MarginRanking(reduction="none", dtype="bfloat16")
    values = loss(_Y, x1, y_pred_other=_X2.astype(np.float32))
    assert values.dtype == jnp.bfloat16
    expected = ref.margin_ranking(
        _Y, np.asarray(x1, np.float64), np.asarray(jnp.asarray(_X2, jnp.bfloat16), np.float64)
    )
    np.testing.assert_allclose(np.asarray(values, np.float64), expected, rtol=1e-2, atol=1e-2)
