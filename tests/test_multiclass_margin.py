"""Multiclass and multilabel margin losses against their anchors, side by side: optax 0.2.8
(multiclass hinge, perceptrons) and PyTorch 2.13 (multi-margin, soft margin, multilabel soft
margin, multilabel margin), in value and gradient, every option and reduction, float32 and
float64; the float64 NumPy references (tests/references.py) on batches of any rank; traced
options against finite differences; the transformations; extreme inputs."""

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

BATCH, CLASSES = 6, 5
DTYPES = ("float32", "float64")
CLASS_WEIGHT = (0.5, 1.0, 2.0, 1.5, 0.25)
# Our reductions as PyTorch names them (no sample weights here: "mean_with_sample_weight" is
# then the plain mean).
TORCH_REDUCTION = {
    "sum_over_batch_size": "mean",
    "mean": "mean",
    "mean_with_sample_weight": "mean",
    "sum": "sum",
    "none": "none",
    None: "none",
}
TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-10, 1e-12)}  # (rtol, atol per unit)


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------
def class_ids(rng):
    return rng.integers(0, CLASSES, size=BATCH), rng.normal(0.0, 1.5, size=(BATCH, CLASSES))


def signed_targets(rng):
    shape = (BATCH, CLASSES)
    return rng.choice([-1.0, 1.0], size=shape), rng.normal(0.0, 1.5, size=shape)


def multi_hot(rng):
    shape = (BATCH, CLASSES)
    return rng.integers(0, 2, size=shape).astype(np.float64), rng.normal(0.0, 2.0, size=shape)


def target_lists(rng):
    """Ids in [-1, C): a -1 anywhere ends the list, repeated ids count twice (PyTorch)."""
    shape = (BATCH, CLASSES)
    return rng.integers(-1, CLASSES, size=shape), rng.normal(size=shape)


# --------------------------------------------------------------------------------------
# side-by-side evaluation
# --------------------------------------------------------------------------------------
def _assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCE[dtype]
    expected = np.asarray(expected, np.float64)
    scale = float(np.max(np.abs(expected), initial=0.0)) + 1.0
    np.testing.assert_allclose(
        np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol * scale
    )


def ours_value_and_grad(loss, y_true, y_pred, rng):
    """The loss and the vector-Jacobian product of a random cotangent w.r.t. ``y_pred``."""
    value, pullback = jax.vjp(lambda p: loss(y_true, p), jnp.asarray(y_pred))
    cotangent = rng.normal(size=value.shape)
    (grad,) = pullback(jnp.asarray(cotangent, value.dtype))
    return value, grad, cotangent


@dataclass(frozen=True)
class TorchCase:
    """``torch_loss(F, target, input, reduction, options)`` equals our class's value."""

    class_name: str
    make_inputs: Callable
    torch_loss: Callable
    options: dict = field(default_factory=dict)

    def label(self):
        return f"{self.class_name}({','.join(f'{k}={v}' for k, v in self.options.items())})"


def _torch_multi_margin(F, target, x, reduction, options):
    weight = options.get("class_weight")
    weight = None if weight is None else x.new_tensor(weight)
    p, margin = options.get("p", 1), options.get("margin", 1.0)
    return F.multi_margin_loss(x, target, p=p, margin=margin, weight=weight, reduction=reduction)


def _torch_soft_margin(F, target, x, reduction, options):
    # PyTorch's loss is elementwise; ours averages the last axis: "none" is the mean of
    # PyTorch's over that axis, "sum" PyTorch's sum over its size, "mean" the same.
    if reduction == "none":
        return F.soft_margin_loss(x, target, reduction="none").mean(-1)
    if reduction == "sum":
        return F.soft_margin_loss(x, target, reduction="sum") / x.shape[-1]
    return F.soft_margin_loss(x, target, reduction=reduction)


def _torch_multilabel_soft_margin(F, target, x, reduction, options):
    weight = options.get("class_weight")
    weight = None if weight is None else x.new_tensor(weight)
    return F.multilabel_soft_margin_loss(x, target, weight=weight, reduction=reduction)


def _torch_multilabel_margin(F, target, x, reduction, options):
    return F.multilabel_margin_loss(x, target, reduction=reduction)


TORCH_CASES = [
    TorchCase("MultiMargin", class_ids, _torch_multi_margin),
    TorchCase("MultiMargin", class_ids, _torch_multi_margin, {"p": 2}),
    TorchCase("MultiMargin", class_ids, _torch_multi_margin, {"margin": 0.3}),
    TorchCase("MultiMargin", class_ids, _torch_multi_margin, {"class_weight": CLASS_WEIGHT}),
    TorchCase(
        "MultiMargin",
        class_ids,
        _torch_multi_margin,
        {"p": 2, "margin": 2.5, "class_weight": CLASS_WEIGHT},
    ),
    TorchCase("SoftMargin", signed_targets, _torch_soft_margin),
    TorchCase("MultilabelSoftMargin", multi_hot, _torch_multilabel_soft_margin),
    TorchCase(
        "MultilabelSoftMargin",
        multi_hot,
        _torch_multilabel_soft_margin,
        {"class_weight": CLASS_WEIGHT},
    ),
    TorchCase("MultilabelMargin", target_lists, _torch_multilabel_margin),
]


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
    F = torch.nn.functional
    rng = np.random.default_rng(11)
    y_true, y_pred = case.make_inputs(rng)
    y_pred = y_pred.astype(dtype)
    integer = np.issubdtype(np.asarray(y_true).dtype, np.integer)
    y_true = y_true.astype(np.int64 if integer else dtype)
    with jax.enable_x64(dtype == "float64"):
        loss = getattr(lj, case.class_name)(**case.options, reduction=reduction, dtype=dtype)
        value, grad, cotangent = ours_value_and_grad(loss, y_true, y_pred, rng)
        assert value.dtype == jnp.dtype(dtype)
    x = torch.tensor(y_pred, requires_grad=True)
    expected = case.torch_loss(F, torch.tensor(y_true), x, TORCH_REDUCTION[reduction], case.options)
    expected.backward(torch.tensor(cotangent, dtype=x.dtype))
    assert value.shape == tuple(expected.shape)
    _assert_close(value, expected.detach().numpy(), dtype)
    _assert_close(grad, x.grad.numpy(), dtype)


@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_with_sample_weights_is_pytorch_weighted_per_sample(p):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    labels, scores = class_ids(rng)
    weights = rng.uniform(0.1, 2.0, size=BATCH)
    options = {"p": p, "class_weight": CLASS_WEIGHT}
    value = lj.MultiMargin(**options)(labels, scores.astype(np.float32), sample_weight=weights)
    per_sample = _torch_multi_margin(
        torch.nn.functional, torch.tensor(labels), torch.tensor(scores), "none", options
    )
    expected = np.mean(per_sample.numpy() * weights)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("name", "scores", "labels"),
    [
        # Class 1's violation 1 - 1 + 0 is exactly 0: PyTorch counts no gradient there.
        ("MultiMargin", [[1.0, 0.0, 0.2]], [0]),
        ("MultilabelMargin", [[1.0, 0.0, 0.2]], [[0, -1, 1]]),
    ],
)
def test_kinks_follow_pytorch(name, scores, labels):
    torch = pytest.importorskip("torch")
    x = torch.tensor(scores, requires_grad=True)
    call = _torch_multi_margin if name == "MultiMargin" else _torch_multilabel_margin
    call(torch.nn.functional, torch.tensor(labels), x, "sum", {}).backward()
    loss = getattr(lj, name)(reduction="sum")
    grad = jax.grad(lambda p: loss(np.array(labels), p))(jnp.asarray(scores))
    np.testing.assert_allclose(grad, x.grad.numpy(), atol=1e-7)


# --------------------------------------------------------------------------------------
# optax
# --------------------------------------------------------------------------------------
def _optax_losses():
    return pytest.importorskip("optax").losses


OPTAX_CASES = {
    # class name: (inputs, optax's values as ours with reduction="none")
    "MulticlassHinge": (
        class_ids,
        lambda y_true, y_pred: _optax_losses().multiclass_hinge_loss(y_pred, y_true),
    ),
    "MulticlassPerceptron": (
        class_ids,
        lambda y_true, y_pred: _optax_losses().multiclass_perceptron_loss(y_pred, y_true),
    ),
    # optax's perceptron loss is elementwise; ours averages the last axis.
    "Perceptron": (
        signed_targets,
        lambda y_true, y_pred: _optax_losses().perceptron_loss(y_pred, y_true).mean(-1),
    ),
}


def optax_reduce(values, reduction):
    if reduction in ("none", None):
        return values
    return jnp.sum(values) if reduction == "sum" else jnp.mean(values)


@pytest.mark.cover
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(OPTAX_CASES))
def test_matches_optax(name, reduction, dtype):
    make_inputs, optax_values = OPTAX_CASES[name]
    rng = np.random.default_rng(5)
    y_true, y_pred = make_inputs(rng)
    y_true = y_true if np.issubdtype(y_true.dtype, np.integer) else y_true.astype(dtype)
    with jax.enable_x64(dtype == "float64"):
        y_pred = jnp.asarray(y_pred, dtype)
        loss = getattr(lj, name)(reduction=reduction, dtype=dtype)
        value, grad, cotangent = ours_value_and_grad(loss, y_true, y_pred, rng)
        expected, pullback = jax.vjp(
            lambda p: optax_reduce(optax_values(jnp.asarray(y_true), p), reduction), y_pred
        )
        (expected_grad,) = pullback(jnp.asarray(cotangent, expected.dtype))
    assert value.dtype == jnp.dtype(dtype) and value.shape == expected.shape
    _assert_close(value, expected, dtype)
    _assert_close(grad, expected_grad, dtype)


def test_optax_kinks_are_optax_s():
    # Ties: the true class's score equals another's (+1), and a zero score for the perceptron.
    losses = _optax_losses()
    scores = jnp.array([[1.0, 0.0, 1.0], [2.0, 1.0, 0.5]])
    labels = jnp.array([0, 1])
    for ours, theirs in [
        (lj.multiclass_hinge, losses.multiclass_hinge_loss),
        (lj.multiclass_perceptron, losses.multiclass_perceptron_loss),
    ]:
        grad = jax.grad(lambda s, f=ours: jnp.sum(f(labels, s)))(scores)
        expected = jax.grad(lambda s, f=theirs: jnp.sum(f(s, labels)))(scores)
        np.testing.assert_array_equal(grad, expected)
    signs, zeros = jnp.array([[1.0, -1.0]]), jnp.zeros((1, 2))
    grad = jax.grad(lambda s: jnp.sum(lj.perceptron(signs, s)))(zeros)
    expected = jax.grad(lambda s: jnp.mean(losses.perceptron_loss(s, signs)))(zeros)
    np.testing.assert_array_equal(grad, expected)


# --------------------------------------------------------------------------------------
# float64 references, on batches of any rank
# --------------------------------------------------------------------------------------
FUNCTIONS = [
    ("multiclass_hinge", {}, "ids", ref.multiclass_hinge),
    ("multiclass_perceptron", {}, "ids", ref.multiclass_perceptron),
    (
        "multi_margin",
        {"p": 2, "margin": 0.4, "class_weight": CLASS_WEIGHT},
        "ids",
        ref.multi_margin,
    ),
    ("multilabel_margin", {}, "lists", ref.multilabel_margin),
    ("perceptron", {}, "signs", ref.perceptron),
    ("soft_margin", {}, "signs", ref.soft_margin),
    (
        "multilabel_soft_margin",
        {"class_weight": CLASS_WEIGHT},
        "multi_hot",
        ref.multilabel_soft_margin,
    ),
]


def inputs_of(kind, rng, batch_shape=(3, 4)):
    shape = (*batch_shape, CLASSES)
    scores = rng.normal(0.0, 1.5, size=shape)
    if kind == "ids":
        return rng.integers(0, CLASSES, size=batch_shape), scores
    if kind == "lists":
        return rng.integers(-1, CLASSES, size=shape), scores
    if kind == "signs":
        return rng.choice([-1.0, 1.0], size=shape), scores
    return rng.integers(0, 2, size=shape).astype(np.float64), scores


@pytest.mark.parametrize(
    ("name", "options", "kind", "reference"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS]
)
def test_functions_match_float64_references(name, options, kind, reference):
    y_true, y_pred = inputs_of(kind, np.random.default_rng(8))
    with jax.enable_x64(True):
        values = getattr(lj, name)(y_true, y_pred, **options)
        assert values.dtype == jnp.float64 and values.shape == (3, 4)
        np.testing.assert_allclose(
            values, reference(y_true, y_pred, **options), rtol=1e-12, atol=1e-14
        )
    values32 = getattr(lj, name)(y_true, y_pred.astype(np.float32), **options)
    assert values32.dtype == jnp.float32
    np.testing.assert_allclose(values32, reference(y_true, y_pred, **options), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # covered in the default run by tests/test_transformations.py
@pytest.mark.parametrize(
    ("name", "options", "kind", "reference"), FUNCTIONS, ids=[f[0] for f in FUNCTIONS]
)
def test_transformations(name, options, kind, reference):
    """jit and vmap equal eager; forward mode equals reverse mode; the Hessian is finite."""
    y_true, y_pred = inputs_of(kind, np.random.default_rng(9), batch_shape=(3,))
    fn = getattr(lj, name)

    def total(p):
        return jnp.sum(fn(y_true, p, **options))

    y_pred = jnp.asarray(y_pred, jnp.float32)
    eager = fn(y_true, y_pred, **options)
    np.testing.assert_allclose(
        jax.jit(lambda p: fn(y_true, p, **options))(y_pred), eager, rtol=1e-6
    )
    mapped = jax.vmap(lambda t, p: fn(t, p, **options))(jnp.asarray(y_true), y_pred)
    np.testing.assert_allclose(mapped, eager, rtol=1e-6)
    np.testing.assert_allclose(
        jax.jacfwd(total)(y_pred), jax.grad(total)(y_pred), rtol=1e-6, atol=1e-7
    )
    assert np.isfinite(jax.hessian(total)(y_pred)).all()


# --------------------------------------------------------------------------------------
# traced options
# --------------------------------------------------------------------------------------
_RNG = np.random.default_rng(4)
_LABELS, _SCORES = class_ids(_RNG)
_MULTI_HOT, _LOGITS = multi_hot(_RNG)

OPTION_CASES = [
    ("multi_margin_margin", lambda m: lj.multi_margin(_LABELS, _SCORES, margin=m), 0.7),
    (
        "multi_margin_margin_p2_weighted",
        lambda m: lj.multi_margin(_LABELS, _SCORES, p=2, margin=m, class_weight=CLASS_WEIGHT),
        0.7,
    ),
    (
        "multi_margin_class_weight",
        lambda w: lj.multi_margin(_LABELS, _SCORES, p=2, class_weight=w),
        np.array(CLASS_WEIGHT),
    ),
    (
        "multilabel_soft_margin_class_weight",
        lambda w: lj.multilabel_soft_margin(_MULTI_HOT, _LOGITS, class_weight=w),
        np.array(CLASS_WEIGHT),
    ),
    (
        "class_margin",
        lambda m: lj.MultiMargin(margin=m, reduction="sum", dtype="float64")(_LABELS, _SCORES),
        1.3,
    ),
]


@pytest.mark.parametrize(
    ("fn", "value"), [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES]
)
def test_traced_option_derivatives_match_finite_differences(fn, value):
    with jax.enable_x64(True):
        total = jax.jit(lambda v: jnp.sum(fn(v)))
        check_grads(total, (jnp.asarray(value, jnp.float64),), order=2, modes=("fwd", "rev"))
        assert np.any(jax.grad(total)(jnp.asarray(value, jnp.float64)) != 0)


def test_traced_margin_equals_static_margin():
    labels, scores = _LABELS.astype(np.int32), _SCORES.astype(np.float32)
    static = lj.multi_margin(labels, scores, margin=0.4, p=2)
    traced = jax.jit(lambda m: lj.multi_margin(labels, scores, margin=m, p=2))(0.4)
    np.testing.assert_allclose(traced, static, rtol=1e-6)


# --------------------------------------------------------------------------------------
# semantics and edges
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["multiclass_hinge", "multiclass_perceptron", "multi_margin"])
def test_labels_out_of_range_give_zero_and_are_reported_when_checked(name):
    fn = getattr(lj, name)
    labels, scores = np.array([0, 5, -1]), jnp.asarray(_SCORES[:3], jnp.float32)
    per_sample = fn(labels, scores)
    assert float(per_sample[1]) == 0.0 and float(per_sample[2]) == 0.0
    grad = jax.grad(lambda s: jnp.sum(fn(labels, s)))(scores)
    np.testing.assert_array_equal(grad[1:], 0.0)
    error, _ = lj.checked(fn)(labels, scores)
    assert "class ids outside [0, 5)" in (error.get() or "")


def test_multilabel_margin_list_semantics():
    scores = np.array([[0.1, 0.2, 0.4, 0.8]])
    # The list ends at the first -1: [3, 0, -1, 1] is the target set {3, 0}.
    np.testing.assert_allclose(lj.multilabel_margin(np.array([[3, 0, -1, 1]]), scores), [0.85])
    # A repeated id counts twice, as in PyTorch's kernel: 2 * 1.3 / 4.
    np.testing.assert_allclose(lj.multilabel_margin(np.array([[3, 3, -1, 1]]), scores), [0.65])
    # Any negative id ends the list; an empty list costs nothing.
    np.testing.assert_allclose(lj.multilabel_margin(np.array([[-5, 3, 0, 1]]), scores), [0.0])
    error, _ = lj.checked(lj.multilabel_margin)(np.array([[4, -1, 0, 0]]), scores)
    assert "outside [0, 4)" in (error.get() or "")


@pytest.mark.parametrize("name", ["perceptron", "soft_margin"])
def test_binary_labels_are_mapped_to_signs(name):
    fn = getattr(lj, name)
    binary = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    scores = np.array([[0.5, -1.0, 2.0], [-0.3, 0.2, -4.0]], np.float32)
    np.testing.assert_allclose(fn(binary, scores), fn(2 * binary - 1, scores), rtol=1e-7)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("multiclass_hinge", "ids"),
        ("multiclass_perceptron", "ids"),
        ("multi_margin", "ids"),
        ("multilabel_margin", "lists"),
        ("perceptron", "signs"),
        ("soft_margin", "signs"),
        ("multilabel_soft_margin", "multi_hot"),
    ],
)
@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_extreme_scores_are_finite_and_exact(name, kind, scale):
    rng = np.random.default_rng(3)
    y_true, _ = inputs_of(kind, rng, batch_shape=(4,))
    y_pred = rng.choice([-1.0, 1.0], size=(4, CLASSES)) * scale
    fn = getattr(lj, name)
    value, grad = jax.value_and_grad(lambda p: jnp.sum(fn(y_true, p)))(
        jnp.asarray(y_pred, jnp.float32)
    )
    assert np.isfinite(value) and np.isfinite(grad).all()
    reference = getattr(ref, name)(y_true, y_pred)
    np.testing.assert_allclose(fn(y_true, jnp.asarray(y_pred, jnp.float32)), reference, rtol=1e-6)


def test_class_weight_is_stored_as_a_tuple_and_round_trips():
    loss = lj.MultiMargin(p=2, margin=0.5, class_weight=np.array(CLASS_WEIGHT))
    assert loss.class_weight == CLASS_WEIGHT
    config = loss.get_config()
    assert lj.MultiMargin.from_config(config) == loss
    assert hash(lj.MultilabelSoftMargin(class_weight=list(CLASS_WEIGHT))) == hash(
        lj.MultilabelSoftMargin(class_weight=CLASS_WEIGHT)
    )
    assert lj.get("multi_margin") is lj.multi_margin and isinstance(
        lj.get("MultiMargin"), lj.MultiMargin
    )
