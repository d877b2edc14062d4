"""Parity with an anchor library (optax, PyTorch) for every reduction and kind of sample weight.

An anchor gives per-sample values and ``d sum(values) / d y_pred`` (each sample's values
depending only on its own predictions); the expected reduced value and its gradient follow
from Keras's reduction in float64 NumPy. Our loss, built with each reduction and the dtype of
the case, is compared in value and in the gradient of ``sum(value * cotangent)``.

One (case, dtype) is one test: the anchor runs once, and every (reduction, weight kind) of our
loss is computed by one jitted function (one compilation instead of one eager run each, which
is what made these grids slow); each entry is then compared on its own, and a failure names
every (reduction, weight kind) that disagrees.

Used by the family test files of the optax/PyTorch catalogue (``test_sparsemax.py``,
``test_robust_regression.py``, ``test_generalized_dice.py``, ``test_torch_optax_parity.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import WEIGHT_KINDS

from losses_jax.base import REDUCTIONS

DTYPES = ("float32", "float64")
TOLERANCE = {"float32": (1e-5, 1e-6), "float64": (1e-9, 1e-12)}  # rtol, atol (scaled)


@dataclass(frozen=True)
class AnchorCase:
    """One of our losses against an anchor.

    Attributes:
        label: a readable test id.
        build: ``(reduction, dtype) -> our loss``.
        anchor: ``(y_true, y_pred, dtype) -> (per-sample values, d sum(values) / d y_pred)``,
            evaluated by the anchor library in ``dtype``.
        make_inputs: ``rng -> (y_true, y_pred)`` NumPy arrays (float64 or integer).
        loss_rank: the rank of the per-sample values (a per-element weight needs rank 2).
        weights: the kinds of sample weight to run (default: every kind that applies); a
            further option set of a loss may run fewer, the default set covers them all.
    """

    label: str
    build: Callable
    anchor: Callable
    make_inputs: Callable
    loss_rank: int = 2
    weights: tuple[str, ...] | None = None

    @property
    def weight_kinds(self):
        if self.weights is not None:
            return self.weights
        return WEIGHT_KINDS[: {1: 3}.get(self.loss_rank, 4)]

    def grid(self) -> list[tuple]:
        """Every (reduction, weight kind) of this case."""
        return [(r, k) for r in REDUCTIONS for k in self.weight_kinds]


def grid_params(cases, select: Callable | None = None):
    """pytest params, one per case x dtype, each carrying its (reduction, weight kind) grid
    (``select(case, reduction, weight_kind)`` keeps a part of it; default: all of it).

    The default tier runs each case in one dtype, rotating along ``cases`` (every dtype for
    every case in the slow tier): each case compiles once there, not once per dtype."""
    params = []
    for index, case in enumerate(cases):
        combos = [c for c in case.grid() if select is None or select(case, *c)]
        params += [
            pytest.param(case, combos, d, id=f"{case.label}-{d}", marks=dtype_tier(index, d))
            for d in DTYPES
        ]
    return params


def dtype_tier(index: int, dtype: str) -> list:
    """The marks of the ``index``-th case in ``dtype``: the default tier takes one of
    :data:`DTYPES` per case, alternating along the cases; the others are slow."""
    return [] if dtype == DTYPES[index % len(DTYPES)] else [pytest.mark.slow]


def count_cases(params) -> int:
    """The (loss, options, reduction, weighting, dtype) comparisons of :func:`grid_params`."""
    return sum(len(p.values[1]) for p in params)


def anchor_params(cases):
    """pytest params of the single-comparison API: case x reduction x weight kind x dtype."""
    return [
        pytest.param(case, reduction, kind, dtype, id=f"{case.label}-{reduction}-{kind}-{dtype}")
        for case in cases
        for reduction, kind in case.grid()
        for dtype in DTYPES
    ]


def _weight(kind: str, loss_shape: tuple, rng) -> np.ndarray | float | None:
    if kind == "none":
        return None
    if kind == "scalar":
        return 0.7
    shape = loss_shape[:1] if kind == "per_sample" else loss_shape
    return rng.uniform(0.1, 2.0, shape)


def _coefficients(weight, reduction, loss_shape, cotangent) -> np.ndarray:
    """``cotangent * d value / d per-sample values`` of Keras's reduction; as in Keras,
    ``"mean_with_sample_weight"`` divides by the sum of the weights as given."""
    w = np.ones(()) if weight is None else np.asarray(weight, np.float64)
    w = np.broadcast_to(np.reshape(w, w.shape + (1,) * (len(loss_shape) - w.ndim)), loss_shape)
    if reduction in (None, "none"):
        return w * cotangent
    if reduction == "sum":
        divisor = 1.0
    elif reduction == "mean_with_sample_weight" and weight is not None:
        divisor = float(np.sum(weight))
    else:
        divisor = float(np.prod(loss_shape))
    return w * cotangent / divisor


def _key(reduction, kind) -> str:
    # A string: pytree dict keys must sort, and the reductions hold None.
    return f"reduction={reduction!r}, sample_weight={kind}"


def _mismatch(what: str, actual, expected, dtype: str) -> str | None:
    """The assertion message if ``actual`` and ``expected`` disagree, else None."""
    rtol, atol = TOLERANCE[dtype]
    expected = np.asarray(expected, np.float64)
    scale = float(np.max(np.abs(expected), initial=0.0)) + 1.0
    try:
        np.testing.assert_allclose(
            np.asarray(actual, np.float64), expected, rtol=rtol, atol=atol * scale, err_msg=what
        )
    except AssertionError as error:
        return str(error)
    return None


def assert_anchor_grid(case: AnchorCase, combos: Iterable[tuple], dtype: str) -> int:
    """Our loss and the anchor agree in value and gradient for each (reduction, weight kind)
    of ``combos`` in ``dtype``; returns the number of comparisons. The anchor runs once and
    our losses run in one compiled function; a failure lists every entry that disagrees."""
    combos = list(combos)
    rng = np.random.default_rng(11)
    y_true, y_pred = case.make_inputs(rng)
    with jax.enable_x64(dtype == "float64"):
        values, sample_grads = case.anchor(y_true, y_pred, dtype)
        values, sample_grads = np.asarray(values, np.float64), np.asarray(sample_grads, np.float64)
        loss_shape = values.shape
        assert len(loss_shape) == case.loss_rank, (case.label, loss_shape)
        weights = {
            kind: _weight(kind, loss_shape, rng) for kind in dict.fromkeys(k for _, k in combos)
        }
        trailing = (1,) * (sample_grads.ndim - len(loss_shape))
        cotangents, expected = {}, {}
        for reduction, kind in combos:
            reduced = reduction not in (None, "none")
            cotangent = rng.normal(size=() if reduced else loss_shape)
            weight = weights[kind]
            unit = _coefficients(weight, reduction, loss_shape, 1.0)
            coefficients = _coefficients(weight, reduction, loss_shape, cotangent)
            key = _key(reduction, kind)
            cotangents[key] = jnp.asarray(cotangent, dtype)
            expected[key] = (
                np.sum(unit * values) if reduced else unit * values,
                coefficients.reshape(loss_shape + trailing) * sample_grads,
            )
        losses = {
            r: case.build(reduction=r, dtype=dtype) for r in dict.fromkeys(r for r, _ in combos)
        }
        our_weights = {k: jnp.asarray(w, dtype) for k, w in weights.items() if w is not None}

        losses_of_pred = {
            _key(reduction, kind): partial(
                _weighted, losses[reduction], y_true, our_weights.get(kind)
            )
            for reduction, kind in combos
        }
        results = ours_per_reduction(losses_of_pred, (jnp.asarray(y_pred, dtype),), cotangents)
    expected = {key: (value, (grad,)) for key, (value, grad) in expected.items()}
    return assert_each_close(results, expected, dtype, case.label)


def _weighted(loss, y_true, weight, y_pred):
    return loss(y_true, y_pred, sample_weight=weight)


def assert_anchor_parity(case: AnchorCase, reduction, weight_kind: str, dtype: str):
    """Our loss and the anchor agree in value and gradient for one reduction, weight, dtype."""
    assert_anchor_grid(case, [(reduction, weight_kind)], dtype)


# --------------------------------------------------------------------------------------
# anchors that reduce themselves (PyTorch's reductions, optax's reduce_fn)
# --------------------------------------------------------------------------------------
def reduction_key(reduction) -> str:
    return f"reduction={reduction!r}"


def ours_per_reduction(losses: dict, preds: tuple, cotangents: dict) -> dict:
    """``{key: (value, vjps)}``: ``losses[key](*preds)`` and the vector-Jacobian products of
    ``cotangents[key]`` w.r.t. each prediction, all keys in one jitted function (one
    compilation for the whole grid instead of an eager run of each entry)."""

    @jax.jit
    def every_reduction(preds, cotangents):
        out = {}
        for key, loss_of_preds in losses.items():
            value, pullback = jax.vjp(loss_of_preds, *preds)
            out[key] = (value, pullback(cotangents[key].astype(value.dtype)))
        return out

    return every_reduction(tuple(preds), cotangents)


def assert_each_close(results: dict, expected: dict, dtype: str, label: str) -> int:
    """Each ``results[key] = (value, grads)`` against ``expected[key]``: the value's dtype and
    shape, the value and each gradient; a failure lists every entry that disagrees. Returns
    the number of comparisons (entries)."""
    failures = []
    for key, (value, grads) in results.items():
        expected_value, expected_grads = expected[key]
        where = f"{label} [{dtype}] {key}"
        if value.dtype != jnp.dtype(dtype) or value.shape != np.shape(expected_value):
            failures.append(
                f"{where}: value {value.dtype}{value.shape}, expected "
                f"{dtype}{np.shape(expected_value)}"
            )
            continue
        checks = [(f"{where}: value", value, expected_value)]
        checks += [
            (f"{where}: gradient {i}", g, e)
            for i, (g, e) in enumerate(zip(grads, expected_grads, strict=True))
        ]
        failures += [m for c in checks if (m := _mismatch(*c, dtype)) is not None]
    if failures:
        pytest.fail(f"{len(failures)} comparisons failed:\n" + "\n".join(failures), pytrace=False)
    return len(results)
