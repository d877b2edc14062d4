"""The PyTorch and optax options of the probabilistic families, side by side with their anchors.

* Per-sample parity (``tests/anchor_parity.py``): value and gradient under every reduction
  (and every kind of sample weight where it changes the divisor), float32 and float64, against
  PyTorch 2.13 (``test_torch_*``) or optax 0.2.8 (``test_optax_*``): ``class_weight`` and
  ``pos_weight`` of the binary and categorical cross-entropies, ``kl_divergence``'s
  ``from_logits``/``log_targets``, ``poisson``'s ``log_input``/``full``/``eps``,
  ``gaussian_nll`` (and its variance gradient), ``poly_crossentropy``,
  ``generalized_kl_divergence``, ``smooth_labels``.
* PyTorch's own reductions (``test_torch_reduction_*``): its weighted ``"mean"`` with class ids
  is our ``"mean_with_sample_weight"``, its ``"batchmean"``/``"mean"`` our
  ``"sum_over_batch_size"``.
* Traced options (``epsilon``, ``eps``, ``label_smoothing``, ``alpha``, per-class weights) under
  ``jit`` and ``grad``, with derivatives equal to float64 central finite differences; forward
  mode (``jacfwd``, ``hessian``) equal to reverse mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from anchor_parity import AnchorCase, assert_anchor_grid, grid_params

import losses_jax as lj

torch = pytest.importorskip("torch")
optax = pytest.importorskip("optax")
F = torch.nn.functional

SHAPE = (3, 4, 5)  # (batch, time, classes): per-sample losses of shape (3, 4)
CLASS_WEIGHT = (0.5, 1.0, 2.0, 1.5, 0.25)
POS_WEIGHT = (1.0, 3.0, 0.5, 2.0, 1.5)
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# --------------------------------------------------------------------------------------
# inputs (float64 NumPy; the harness casts them to the case's dtype)
# --------------------------------------------------------------------------------------
def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def binary_inputs(rng, logits=True):
    x = rng.normal(0.0, 2.0, SHAPE)
    y_true = rng.integers(0, 2, SHAPE).astype(np.float64)
    return y_true, x if logits else np.clip(1 / (1 + np.exp(-x)), 0.02, 0.98)


def class_inputs(rng, target="one_hot", logits=True, ignore=None):
    """``target``: "one_hot", "soft" (a distribution with some zeros), "positive" (one
    without), "labels" (class ids), "log" (the log of a distribution); predictions: logits or
    probabilities away from the clip."""
    x = rng.normal(0.0, 2.0, SHAPE)
    labels = rng.integers(0, SHAPE[-1], SHAPE[:-1])
    if ignore is not None:
        labels = np.where(rng.uniform(size=labels.shape) < 0.25, ignore, labels)
    soft = _softmax(rng.normal(size=SHAPE))
    with_zeros = np.where(rng.uniform(size=SHAPE) < 0.2, 0.0, soft)
    with_zeros /= with_zeros.sum(-1, keepdims=True)
    y_true = {
        "one_hot": np.eye(SHAPE[-1])[labels],
        "soft": with_zeros,
        "positive": soft,
        "labels": labels.astype(np.int32),
        "log": np.log(soft),
    }[target]
    return y_true, x if logits else (_softmax(x) + 0.01) / 1.05


def poisson_inputs(rng, log_input):
    rates = rng.uniform(0.2, 3.0, SHAPE)
    return rng.poisson(1.5, SHAPE).astype(np.float64), np.log(rates) if log_input else rates


def measure_inputs(rng, log_predictions):
    t = np.where(rng.uniform(size=SHAPE) < 0.2, 0.0, rng.uniform(0.0, 2.0, SHAPE))
    q = rng.uniform(0.1, 3.0, SHAPE)
    return t, np.log(q) if log_predictions else q


# A variance per prediction with a fifth of the entries below eps=0.05, one per sample, a scalar.
VARIANCES = {
    "full": np.random.default_rng(3).uniform(0.01, 2.0, SHAPE),
    "per_sample": np.random.default_rng(4).uniform(0.2, 2.0, SHAPE[:-1]),
    "scalar": 0.7,
}


def real_inputs(rng):
    return rng.normal(size=SHAPE), rng.normal(size=SHAPE)


# --------------------------------------------------------------------------------------
# anchors: (y_true, y_pred, dtype) -> (per-sample values, d sum(values) / d y_pred)
# --------------------------------------------------------------------------------------
def torch_anchor(per_element, mean_last=True, labels=False):
    """A PyTorch function of ``(target, input)`` returning elementwise (``mean_last``: averaged
    over the last axis) or per-sample losses, and its gradient from autograd."""

    def anchor(y_true, y_pred, dtype):
        dt = TORCH_DTYPES[dtype]
        target = torch.tensor(y_true, dtype=torch.long if labels else dt)
        x = torch.tensor(y_pred, dtype=dt, requires_grad=True)
        values = per_element(target, x)
        values = values.mean(-1) if mean_last else values
        values.sum().backward()
        return values.detach().numpy(), x.grad.numpy()

    return anchor


def optax_anchor(per_sample):
    """An optax (JAX) function of ``(y_true, y_pred)`` and its gradient."""

    def anchor(y_true, y_pred, dtype):
        t, p = jnp.asarray(y_true, dtype), jnp.asarray(y_pred, dtype)
        values, pullback = jax.vjp(lambda x: per_sample(t, x), p)
        return values, pullback(jnp.ones_like(values))[0]

    return anchor


def classes_second(x):
    """(batch, time, classes) -> (batch, classes, time), PyTorch's class axis."""
    return x.permute(0, 2, 1)


def ours(cls, **options):
    """``build(reduction, dtype)`` of the harness for ``cls(**options)``."""
    return lambda reduction, dtype: cls(reduction=reduction, dtype=dtype, **options)


def with_variance(variance, **options):
    def build(reduction, dtype):
        loss = lj.GaussianNLL(reduction=reduction, dtype=dtype, **options)
        var = variance if np.ndim(variance) == 0 else jnp.asarray(variance, dtype)
        return lambda y_true, y_pred, **kw: loss(y_true, y_pred, variance=var, **kw)

    return build


def _tw(values, dtype):
    return torch.tensor(values, dtype=TORCH_DTYPES[dtype]) if values is not None else None


def bce_case(label, logits=True, class_weight=None, pos_weight=None, label_smoothing=0.0):
    options = {"class_weight": class_weight, "pos_weight": pos_weight}

    def anchor(y_true, y_pred, dtype):
        t = y_true * (1 - label_smoothing) + 0.5 * label_smoothing
        w, pw = _tw(class_weight, dtype), _tw(pos_weight, dtype)
        if logits:
            fn = lambda y, x: F.binary_cross_entropy_with_logits(  # noqa: E731
                x, y, weight=w, pos_weight=pw, reduction="none"
            )
        elif pos_weight is not None:  # PyTorch's pos_weight exists for logits only
            fn = lambda y, p: F.binary_cross_entropy_with_logits(  # noqa: E731
                torch.log(p) - torch.log1p(-p), y, weight=w, pos_weight=pw, reduction="none"
            )
        else:
            fn = lambda y, p: F.binary_cross_entropy(p, y, weight=w, reduction="none")  # noqa: E731
        return torch_anchor(fn)(t, y_pred, dtype)

    return AnchorCase(
        label,
        ours(lj.BinaryCrossentropy, from_logits=logits, label_smoothing=label_smoothing, **options),
        anchor,
        lambda rng: binary_inputs(rng, logits),
    )


def cross_entropy_case(label, target, logits=True, label_smoothing=0.0):
    """Our (Sparse)CategoricalCrossentropy with CLASS_WEIGHT against PyTorch's cross_entropy
    (probabilities enter PyTorch as their logs: log_softmax(log p) = log(p / sum p))."""
    sparse = target == "labels"
    cls = lj.SparseCategoricalCrossentropy if sparse else lj.CategoricalCrossentropy
    options = {} if sparse else {"label_smoothing": label_smoothing}

    def per_sample(y, x):
        scores = classes_second(x if logits else torch.log(x))
        goal = y if sparse else classes_second(y)
        w = torch.tensor(CLASS_WEIGHT, dtype=x.dtype)
        return F.cross_entropy(
            scores, goal, weight=w, label_smoothing=label_smoothing, reduction="none"
        )

    return AnchorCase(
        label,
        ours(cls, from_logits=logits, class_weight=CLASS_WEIGHT, **options),
        torch_anchor(per_sample, mean_last=False, labels=sparse),
        lambda rng: class_inputs(rng, target, logits),
    )


def kl_torch_case(label, from_logits, log_targets):
    def per_element(t, x):
        log_p = F.log_softmax(x, -1) if from_logits else torch.log(x)
        return F.kl_div(log_p, t, log_target=log_targets, reduction="none").sum(-1)

    # Keras's form clips the targets at 1e-7: zero targets only where they enter exactly.
    target = "log" if log_targets else "soft" if from_logits else "positive"
    return AnchorCase(
        label,
        ours(lj.KLDivergence, from_logits=from_logits, log_targets=log_targets),
        torch_anchor(per_element, mean_last=False),
        lambda rng: class_inputs(rng, target, from_logits),
    )


def poisson_case(label, log_input, full, eps=1e-8):
    def per_element(t, x):
        return F.poisson_nll_loss(x, t, log_input=log_input, full=full, eps=eps, reduction="none")

    return AnchorCase(
        label,
        ours(lj.Poisson, log_input=log_input, full=full, eps=eps),
        torch_anchor(per_element),
        lambda rng: poisson_inputs(rng, log_input),
    )


def gaussian_case(label, variance, **options):
    def per_element(t, mu):
        var = variance if np.ndim(variance) == 0 else torch.tensor(variance, dtype=mu.dtype)
        return F.gaussian_nll_loss(mu, t, var, reduction="none", **options)

    return AnchorCase(
        label, with_variance(variance, **options), torch_anchor(per_element), real_inputs
    )


TORCH_CASES = [
    bce_case("bce_logits_class_weight", class_weight=CLASS_WEIGHT),
    bce_case("bce_logits_pos_weight", pos_weight=POS_WEIGHT),
    bce_case("bce_logits_both_scalar_pos", class_weight=CLASS_WEIGHT, pos_weight=2.5),
    bce_case(
        "bce_logits_smoothed", class_weight=CLASS_WEIGHT, pos_weight=POS_WEIGHT, label_smoothing=0.1
    ),  # fmt: skip
    bce_case("bce_probabilities_class_weight", logits=False, class_weight=CLASS_WEIGHT),
    bce_case("bce_probabilities_pos_weight", logits=False, pos_weight=POS_WEIGHT),
    cross_entropy_case("cce_logits_soft", "soft"),
    cross_entropy_case("cce_logits_one_hot_smoothed", "one_hot", label_smoothing=0.2),
    cross_entropy_case("cce_probabilities_soft", "soft", logits=False),
    cross_entropy_case("scce_logits", "labels"),
    cross_entropy_case("scce_probabilities", "labels", logits=False),
    kl_torch_case("kl_default", False, False),
    kl_torch_case("kl_from_logits", True, False),
    kl_torch_case("kl_log_targets", False, True),
    kl_torch_case("kl_from_logits_log_targets", True, True),
    poisson_case("poisson_keras_eps", False, False, eps=1e-7),
    poisson_case("poisson", False, False),
    poisson_case("poisson_full", False, True),
    poisson_case("poisson_log_input", True, False),
    poisson_case("poisson_log_input_full", True, True),
    gaussian_case("gaussian", VARIANCES["full"]),
    gaussian_case("gaussian_full_eps", VARIANCES["full"], full=True, eps=0.05),
    gaussian_case("gaussian_per_sample", VARIANCES["per_sample"]),
    gaussian_case("gaussian_scalar", VARIANCES["scalar"], full=True),
]


def poly_case(label, epsilon, logits=True, label_smoothing=0.0, target="one_hot"):
    def per_sample(t, x):
        scores = x if logits else jnp.log(x)
        return optax.losses.poly_loss_cross_entropy(
            scores, optax.losses.smooth_labels(t, label_smoothing), epsilon=epsilon
        )

    options = {"epsilon": epsilon, "from_logits": logits, "label_smoothing": label_smoothing}
    return AnchorCase(
        label,
        ours(lj.PolyCrossentropy, **options),
        optax_anchor(per_sample),
        lambda rng: class_inputs(rng, target, logits),
    )


def optax_case(label, cls, options, per_sample, make_inputs):
    return AnchorCase(label, ours(cls, **options), optax_anchor(per_sample), make_inputs)


OPTAX_CASES = [
    poly_case("poly", 2.0),
    poly_case("poly_smoothed", -1.0, label_smoothing=0.1),
    poly_case("poly_probabilities_soft", 0.5, logits=False, label_smoothing=0.2, target="soft"),
    optax_case(
        "kl_from_logits",
        lj.KLDivergence,
        {"from_logits": True},
        lambda t, x: optax.losses.kl_divergence(jax.nn.log_softmax(x), t),
        lambda rng: class_inputs(rng, "soft"),
    ),
    optax_case(
        "kl_log_targets",
        lj.KLDivergence,
        {"from_logits": True, "log_targets": True},
        lambda t, x: optax.losses.kl_divergence_with_log_targets(jax.nn.log_softmax(x), t),
        lambda rng: class_inputs(rng, "log"),
    ),
    optax_case(
        "generalized_kl_log_predictions",
        lj.GeneralizedKLDivergence,
        {"log_predictions": True},
        lambda t, x: optax.losses.generalized_kl_divergence(x, t),
        lambda rng: measure_inputs(rng, True),
    ),
    optax_case(
        "generalized_kl_measures",
        lj.GeneralizedKLDivergence,
        {},
        lambda t, q: optax.losses.generalized_kl_divergence(jnp.log(q), t),
        lambda rng: measure_inputs(rng, False),
    ),
]


# Each reduction unweighted (its aliases "mean" and None are the same code), and the weights
# where they change more than a factor: the per-element weight under "sum_over_batch_size", and
# every kind of weight under "mean_with_sample_weight" (the divisor is their sum).
REDUCTION_CASES = {
    ("sum_over_batch_size", "none"),
    ("sum", "none"),
    ("none", "none"),
    ("mean_with_sample_weight", "none"),
    ("sum_over_batch_size", "per_element"),
    ("mean_with_sample_weight", "scalar"),
    ("mean_with_sample_weight", "per_sample"),
    ("mean_with_sample_weight", "per_element"),
}


def selected(torch_weighted_mean=False):
    """``select`` of :func:`grid_params`: the entries of :data:`REDUCTION_CASES`. With
    ``torch_weighted_mean``, the class-weighted categorical cases leave out
    ``"mean_with_sample_weight"``: the harness divides it by the sample weights (Keras), they by
    the target weights (PyTorch's), checked by the reduction tests below."""

    def select(case, reduction, weight_kind):
        class_weighted = case.label.startswith(("cce_", "scce_"))
        if (reduction, weight_kind) not in REDUCTION_CASES:
            return False
        return not (
            torch_weighted_mean and class_weighted and reduction == "mean_with_sample_weight"
        )

    return select


@pytest.mark.parametrize(("case", "combos", "dtype"), grid_params(TORCH_CASES, selected(True)))
def test_torch_parity(case, combos, dtype):
    assert_anchor_grid(case, combos, dtype)


@pytest.mark.parametrize(("case", "combos", "dtype"), grid_params(OPTAX_CASES, selected()))
def test_optax_parity(case, combos, dtype):
    assert_anchor_grid(case, combos, dtype)


# --------------------------------------------------------------------------------------
# PyTorch's own reductions
# --------------------------------------------------------------------------------------
def _value_and_grad(loss, y_true, y_pred, dtype, **kwargs):
    """The loss and the gradient of its sum, in ``dtype`` (``kwargs`` converted to it)."""
    with jax.enable_x64(dtype == "float64"):
        pred = jnp.asarray(y_pred, dtype)
        kwargs = {k: jnp.asarray(v, dtype) for k, v in kwargs.items()}
        value, pullback = jax.vjp(lambda p: loss(y_true, p, **kwargs), pred)
        (grad,) = pullback(jnp.ones_like(value))
        return np.asarray(value, np.float64), np.asarray(grad, np.float64)


def _torch_value_and_grad(fn, y_pred, dtype):
    x = torch.tensor(y_pred, dtype=TORCH_DTYPES[dtype], requires_grad=True)
    value = fn(x)
    value.sum().backward()
    return value.detach().numpy().astype(np.float64), x.grad.numpy().astype(np.float64)


def _assert_close(ours_, theirs, dtype):
    rtol, atol = (1e-5, 1e-6) if dtype == "float32" else (1e-10, 1e-12)
    for a, b in zip(ours_, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * (1 + np.max(np.abs(b))))


# (our reduction, PyTorch's): with class weights, PyTorch's "mean" divides by their sum.
WEIGHTED_REDUCTIONS = [("mean_with_sample_weight", "mean"), ("sum", "sum"), ("none", "none")]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("ignore_class", [None, -1])
@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize(("ours_", "theirs"), WEIGHTED_REDUCTIONS)
def test_torch_reduction_class_ids(ours_, theirs, from_logits, ignore_class, dtype):
    labels, x = class_inputs(np.random.default_rng(5), "labels", from_logits, ignore_class)
    loss = lj.SparseCategoricalCrossentropy(
        from_logits, ignore_class, ours_, dtype=dtype, class_weight=CLASS_WEIGHT
    )
    target = torch.tensor(labels, dtype=torch.long)

    def torch_loss(p):
        w = torch.tensor(CLASS_WEIGHT, dtype=p.dtype)
        scores = classes_second(p if from_logits else torch.log(p))
        ignore = -100 if ignore_class is None else ignore_class
        return F.cross_entropy(scores, target, weight=w, ignore_index=ignore, reduction=theirs)

    expected = _torch_value_and_grad(torch_loss, x, dtype)
    _assert_close(_value_and_grad(loss, labels, x, dtype), expected, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_torch_reduction_one_hot_targets_are_class_ids(label_smoothing, dtype):
    # One-hot targets with class weights and "mean_with_sample_weight": PyTorch's class-id mean,
    # label smoothing included (its divisor holds the labels' weights, unsmoothed).
    labels, x = class_inputs(np.random.default_rng(6), "labels")
    loss = lj.CategoricalCrossentropy(
        True, label_smoothing, reduction="mean_with_sample_weight", dtype=dtype,
        class_weight=CLASS_WEIGHT,
    )  # fmt: skip

    def torch_loss(p):
        w = torch.tensor(CLASS_WEIGHT, dtype=p.dtype)
        target = torch.tensor(labels, dtype=torch.long)
        return F.cross_entropy(classes_second(p), target, weight=w, label_smoothing=label_smoothing)

    expected = _torch_value_and_grad(torch_loss, x, dtype)
    _assert_close(_value_and_grad(loss, np.eye(5)[labels], x, dtype), expected, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("sparse", [True, False])
def test_torch_weighted_mean_with_sample_weights(sparse, dtype):
    # sum(s * w[y] * l) / sum(s * w[y]), ignored labels out of both sums.
    labels, x = class_inputs(np.random.default_rng(7), "labels", ignore=-1 if sparse else None)
    sample_weight = np.random.default_rng(8).uniform(0.1, 2.0, labels.shape[:1])
    y_true = labels if sparse else np.eye(5)[labels]
    options = {"reduction": "mean_with_sample_weight", "dtype": dtype, "class_weight": CLASS_WEIGHT}
    if sparse:
        loss = lj.SparseCategoricalCrossentropy(True, ignore_class=-1, **options)
    else:
        loss = lj.CategoricalCrossentropy(True, **options)
    valid = labels != -1
    target_weight = np.where(valid, np.asarray(CLASS_WEIGHT)[np.clip(labels, 0, 4)], 0.0)
    s = torch.tensor(sample_weight[:, None] * target_weight, dtype=TORCH_DTYPES[dtype])

    def torch_loss(p):
        w = torch.tensor(CLASS_WEIGHT, dtype=p.dtype)
        target = torch.tensor(labels, dtype=torch.long)
        values = F.cross_entropy(
            classes_second(p), target, weight=w, ignore_index=-1, reduction="none"
        )
        return (values * torch.tensor(sample_weight[:, None], dtype=p.dtype)).sum() / s.sum()

    expected = _torch_value_and_grad(torch_loss, x, dtype)
    ours_ = _value_and_grad(loss, y_true, x, dtype, sample_weight=sample_weight)
    _assert_close(ours_, expected, dtype)


@dataclass(frozen=True)
class TorchReduction:
    """Our loss (``build(reduction, dtype)``) and PyTorch's (``torch_loss(target, input,
    reduction)``) on ``make_inputs(rng)``. PyTorch's ``"mean"`` (``"batchmean"`` for KL) is
    our ``"sum_over_batch_size"``; its ``"sum"`` adds elements where ours adds per-sample means
    over the last axis: ``elements_per_sample`` of them (1 for a per-sample PyTorch loss)."""

    label: str
    build: Callable
    torch_loss: Callable
    make_inputs: Callable
    elements_per_sample: int = SHAPE[-1]
    variance: np.ndarray | None = None


def _bce_with_weights(t, x, reduction):
    w, pw = torch.tensor(CLASS_WEIGHT, dtype=x.dtype), torch.tensor(POS_WEIGHT, dtype=x.dtype)
    return F.binary_cross_entropy_with_logits(x, t, weight=w, pos_weight=pw, reduction=reduction)


def _cross_entropy_of_probabilities(labels, p, reduction):
    # log_softmax(log p) = log(p / sum p): our renormalisation of probabilities.
    return F.cross_entropy(
        classes_second(torch.log(p)), labels, ignore_index=-1, reduction=reduction
    )


def _kl_with_log_targets(log_t, x, reduction):
    reduction = "batchmean" if reduction == "mean" else reduction
    return F.kl_div(F.log_softmax(x, -1), log_t, log_target=True, reduction=reduction)


def _poisson_full(t, x, reduction):
    return F.poisson_nll_loss(x, t, log_input=False, full=True, eps=1e-8, reduction=reduction)


def _gaussian(t, mu, reduction):
    variance = torch.tensor(VARIANCES["full"], dtype=mu.dtype)
    return F.gaussian_nll_loss(mu, t, variance, eps=0.05, reduction=reduction)


TORCH_REDUCTIONS = [
    TorchReduction(
        "bce_weights",
        lambda r, d: lj.BinaryCrossentropy(
            True, reduction=r, dtype=d, class_weight=CLASS_WEIGHT, pos_weight=POS_WEIGHT
        ),
        _bce_with_weights,
        binary_inputs,
    ),
    TorchReduction(
        "scce_ignore_class",  # unweighted: Keras's and PyTorch's means agree (valid labels)
        lambda r, d: lj.SparseCategoricalCrossentropy(ignore_class=-1, reduction=r, dtype=d),
        _cross_entropy_of_probabilities,
        lambda rng: class_inputs(rng, "labels", logits=False, ignore=-1),
        elements_per_sample=1,
    ),
    TorchReduction(
        "kl_batchmean",  # (batch, classes): "batchmean" divides by the batch
        lambda r, d: lj.KLDivergence(r, dtype=d, from_logits=True, log_targets=True),
        _kl_with_log_targets,
        lambda rng: tuple(a.reshape(-1, SHAPE[-1]) for a in class_inputs(rng, "log")),
        elements_per_sample=1,
    ),
    TorchReduction(
        "poisson_full",
        lambda r, d: lj.Poisson(r, dtype=d, full=True, eps=1e-8),
        _poisson_full,
        lambda rng: poisson_inputs(rng, False),
    ),
    TorchReduction(
        "gaussian",
        lambda r, d: lj.GaussianNLL(eps=0.05, reduction=r, dtype=d),
        _gaussian,
        real_inputs,
        variance=VARIANCES["full"],
    ),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum"])
@pytest.mark.parametrize("case", TORCH_REDUCTIONS, ids=[case.label for case in TORCH_REDUCTIONS])
def test_torch_reduction_elementwise(case, reduction, dtype):
    y_true, y_pred = case.make_inputs(np.random.default_rng(9))
    integer = np.issubdtype(np.asarray(y_true).dtype, np.integer)
    target = torch.tensor(y_true, dtype=torch.long if integer else TORCH_DTYPES[dtype])
    theirs = "mean" if reduction == "sum_over_batch_size" else "sum"
    value, grad = _torch_value_and_grad(lambda x: case.torch_loss(target, x, theirs), y_pred, dtype)
    scale = 1.0 if reduction == "sum_over_batch_size" else 1.0 / case.elements_per_sample
    extra = {} if case.variance is None else {"variance": case.variance}
    ours_ = _value_and_grad(case.build(reduction, dtype), y_true, y_pred, dtype, **extra)
    _assert_close(ours_, (value * scale, grad * scale), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variance", ["full", "per_sample", "scalar_array"])
@pytest.mark.parametrize("options", [{}, {"full": True, "eps": 0.05}])
def test_torch_gaussian_variance_gradient(variance, options, dtype):
    # PyTorch clamps the variance without recording it: the gradient passes straight through,
    # also where the variance is below eps (a fifth of "full", all of "scalar_array" at 0.01).
    mu_true, mu = real_inputs(np.random.default_rng(10))
    var = np.asarray(0.01) if variance == "scalar_array" else VARIANCES[variance]
    var_torch = torch.tensor(var, dtype=TORCH_DTYPES[dtype], requires_grad=True)
    x = torch.tensor(mu, dtype=TORCH_DTYPES[dtype])
    t = torch.tensor(mu_true, dtype=TORCH_DTYPES[dtype])
    shaped = var_torch.expand(SHAPE) if variance == "scalar_array" else var_torch
    F.gaussian_nll_loss(x, t, shaped, reduction="sum", **options).backward()
    loss = lj.GaussianNLL(reduction="sum", dtype=dtype, **options)
    with jax.enable_x64(dtype == "float64"):
        grad = jax.grad(lambda v: loss(mu_true, mu, variance=v))(jnp.asarray(var, dtype))
    # Our "sum" adds the per-sample means: PyTorch's sum over the last axis divided by its size.
    expected = var_torch.grad.numpy().astype(np.float64) / SHAPE[-1]
    _assert_close((np.asarray(grad, np.float64),), (expected,), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.75])
def test_optax_smooth_labels(alpha, dtype):
    labels, _ = class_inputs(np.random.default_rng(11), "one_hot")
    with jax.enable_x64(dtype == "float64"):
        y = jnp.asarray(labels, dtype)
        expected = optax.losses.smooth_labels(y, alpha)
        np.testing.assert_array_equal(lj.smooth_labels(y, alpha), expected)
        moved = lj.smooth_labels(jnp.moveaxis(y, -1, 0), alpha, axis=0)
        np.testing.assert_array_equal(jnp.moveaxis(moved, 0, -1), expected)


# --------------------------------------------------------------------------------------
# traced options: jit, grad, and derivatives equal to float64 central differences
# --------------------------------------------------------------------------------------
def _option_cases():
    """(id, loss of the option value, option value): a scalar or a per-class vector."""
    rng = np.random.default_rng(12)
    one_hot, logits = class_inputs(rng, "one_hot")
    soft, probs = class_inputs(rng, "soft", logits=False)
    labels, _ = class_inputs(rng, "labels")
    binary, binary_logits = binary_inputs(rng)
    counts, rates = poisson_inputs(rng, False)
    y, mu = real_inputs(rng)
    var = VARIANCES["full"]  # a fifth below 0.05: the floor is active there
    cw = np.asarray(CLASS_WEIGHT)
    return [
        ("poly_epsilon", lambda e: lj.poly_crossentropy(one_hot, logits, e, True), 2.0),
        ("poly_epsilon_probabilities", lambda e: lj.poly_crossentropy(soft, probs, e), -1.0),
        ("poly_label_smoothing",
         lambda s: lj.poly_crossentropy(one_hot, logits, 2.0, True, label_smoothing=s), 0.1),
        ("smooth_labels_alpha", lambda a: lj.smooth_labels(soft, a) * np.log(probs), 0.3),
        ("poisson_eps", lambda e: lj.poisson(counts, rates * 1e-3, eps=e), 1e-3),
        ("gaussian_eps", lambda e: lj.gaussian_nll(y, mu, variance=var, eps=e), 0.05),
        ("cce_class_weight", lambda w: lj.categorical_crossentropy(
            soft, logits, True, 0.1, class_weight=w), cw),
        ("cce_class_weight_probabilities",
         lambda w: lj.categorical_crossentropy(soft, probs, class_weight=w), cw),
        ("scce_class_weight", lambda w: lj.sparse_categorical_crossentropy(
            labels, logits, True, class_weight=w), cw),
        ("bce_class_weight", lambda w: lj.binary_crossentropy(
            binary, binary_logits, True, class_weight=w), cw),
        ("bce_pos_weight", lambda w: lj.binary_crossentropy(
            binary, binary_logits, True, pos_weight=w), np.asarray(POS_WEIGHT)),
        ("bce_pos_weight_scalar", lambda w: lj.binary_crossentropy(
            binary, binary_logits, True, 0.1, pos_weight=w), 2.5),
    ]  # fmt: skip


OPTION_CASES = _option_cases()
OPTION_IDS = [case[0] for case in OPTION_CASES]


@pytest.mark.parametrize(("name", "fn", "value"), OPTION_CASES, ids=OPTION_IDS)
def test_option_derivative_matches_finite_differences(name, fn, value):
    direction = np.random.default_rng(13).normal(size=np.shape(value))
    with jax.enable_x64(True):

        def total(v):
            return jnp.sum(fn(v))

        x = jnp.asarray(value, jnp.float64)
        grad = jax.grad(total)(x)
        step = 1e-6 * max(1.0, float(np.max(np.abs(value))))
        ahead, behind = x + step * direction, x - step * direction
        numeric = (float(total(ahead)) - float(total(behind))) / (2 * step)
        along = float(jnp.sum(grad * direction))
        jitted = jax.jit(jax.grad(total))(x)
    np.testing.assert_allclose(along, numeric, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jitted, grad, rtol=1e-12, atol=1e-14)
    assert along != 0.0, "an option that changes the loss must have a nonzero derivative"


@pytest.mark.parametrize(("name", "fn", "value"), OPTION_CASES, ids=OPTION_IDS)
def test_traced_option_under_jit_and_vmap(name, fn, value):
    eager = np.asarray(jnp.sum(fn(value)))
    traced = jnp.asarray(value, jnp.float32)
    np.testing.assert_allclose(jax.jit(lambda v: jnp.sum(fn(v)))(traced), eager, rtol=1e-5)
    batched = jax.vmap(lambda v: jnp.sum(fn(v)))(jnp.stack([traced, traced * 0.9]))
    np.testing.assert_allclose(batched[0], eager, rtol=1e-5)
    np.testing.assert_allclose(batched[1], jnp.sum(fn(traced * 0.9)), rtol=1e-5)


# --------------------------------------------------------------------------------------
# forward mode: jvp/jacfwd and hessian agree with reverse mode
# --------------------------------------------------------------------------------------
def _forward_cases():
    rng = np.random.default_rng(14)
    small = (2, 3)
    one_hot = np.eye(3)[rng.integers(0, 3, 2)]
    labels = rng.integers(0, 3, 2).astype(np.int32)
    logits = rng.normal(size=small)
    probs = _softmax(logits)
    counts = rng.poisson(1.5, small).astype(np.float64)
    binary = rng.integers(0, 2, small).astype(np.float64)
    var = rng.uniform(0.01, 2.0, small)
    cw = (0.5, 2.0, 1.0)
    return [
        ("poly", lambda p: lj.poly_crossentropy(one_hot, p, 2.0, True, 0.1), logits),
        ("poly_probabilities", lambda p: lj.poly_crossentropy(one_hot, p, 1.0), probs),
        ("cce_class_weight", lambda p: lj.categorical_crossentropy(
            probs, p, True, class_weight=cw), logits),
        ("scce_class_weight", lambda p: lj.sparse_categorical_crossentropy(
            labels, p, True, class_weight=cw), logits),
        ("bce_weights", lambda p: lj.binary_crossentropy(
            binary, p, True, class_weight=cw, pos_weight=cw), logits),
        ("kl_from_logits", lambda p: lj.kl_divergence(probs, p, from_logits=True), logits),
        ("kl_log_targets", lambda p: lj.kl_divergence(np.log(probs), p, log_targets=True), probs),
        ("generalized_kl", lambda p: lj.generalized_kl_divergence(probs, p), probs + 0.5),
        ("poisson_full", lambda p: lj.poisson(counts, p, True, True), logits),
        ("gaussian_mean", lambda p: lj.gaussian_nll(probs, p, variance=var, eps=0.05), logits),
        ("gaussian_variance", lambda v: lj.gaussian_nll(probs, logits, variance=v, eps=0.05),
         var),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "fn", "x"), _forward_cases(), ids=[c[0] for c in _forward_cases()]
)
def test_forward_mode_equals_reverse_mode(name, fn, x):
    with jax.enable_x64(True):
        x = jnp.asarray(x, jnp.float64)

        def total(p):
            return jnp.sum(fn(p))

        # Jitted: one compilation each instead of eager second-order dispatch.
        forward, backward = jax.jit(jax.jacfwd(fn))(x), jax.jit(jax.jacrev(fn))(x)
        np.testing.assert_allclose(forward, backward, rtol=1e-10, atol=1e-12)
        hessian = jax.jit(jax.hessian(total))(x)
        reverse = jax.jit(jax.jacrev(jax.jacrev(total)))(x)
        assert np.all(np.isfinite(hessian))
        np.testing.assert_allclose(hessian, reverse, rtol=1e-9, atol=1e-11)
