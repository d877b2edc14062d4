"""Regression losses (MSE, MAE, Huber, LogCosh): losses_jax against optax, Keras 3 and torch.

Each case times the batch-mean loss's value and gradient with respect to the predictions: a
jitted ``jax.value_and_grad`` for the JAX libraries (losses_jax, optax, Keras 3 on the JAX
backend), forward plus ``torch.autograd.grad`` for torch on the CPU (its thread count in the
``threads`` column), wherever the library has the loss (optax has no MAE, torch no LogCosh).
Contenders are timed in interleaved, order-rotated rounds: ``ms`` is the best median and
``paired_ratio`` the median over rounds of a contender's time over losses_jax's in the same
round, with its spread (``paired_iqr``, ``paired_range``), the figure to read on a busy machine.
``rel_err`` is the loss value's relative difference from losses_jax's.
The focal losses are benchmarked with the cross-entropies, in ``bench_ce``.

Run: ``python -m benchmarks.bench_regression [--tiny]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import losses_jax as lj  # noqa: E402
from benchmarks._harness import (  # noqa: E402
    bench_main,
    compared_rows,
    jitted_value_and_grad,
    optional_import,
    torch_value_and_grad_step,
)

HUBER_DELTA = 1.0
# (batch, features): one launch-bound and one throughput-bound shape.
FULL_SHAPES = ((256, 64), (8192, 512))
TINY_SHAPES = ((32, 8),)

keras = optional_import("keras")
torch = optional_import("torch")

# losses_jax mirrors Keras's class names: bench -> (class name, constructor arguments).
LOSS_CLASSES = {
    "mse": ("MeanSquaredError", {}),
    "mae": ("MeanAbsoluteError", {}),
    "huber": ("Huber", {"delta": HUBER_DELTA}),
    "log_cosh": ("LogCosh", {}),
}


def loss_object(namespace, bench: str) -> Callable:
    """``namespace.<class>(**arguments)`` for ``bench`` (namespace: losses_jax or keras.losses)."""
    class_name, arguments = LOSS_CLASSES[bench]
    return getattr(namespace, class_name)(**arguments)


def optax_loss(bench: str) -> Callable | None:
    """``fn(y_true, y_pred) -> scalar`` from optax's elementwise losses (None: no MAE)."""
    elementwise = {
        "mse": optax.squared_error,
        "huber": lambda p, y: optax.huber_loss(p, y, delta=HUBER_DELTA),
        "log_cosh": optax.log_cosh,
    }.get(bench)
    # The batch mean of Keras's per-sample means is the mean over all elements.
    return None if elementwise is None else lambda y, p: jnp.mean(elementwise(p, y))


def torch_loss(bench: str) -> Callable | None:
    """``fn(y_true, y_pred) -> scalar`` in torch (None: no LogCosh)."""
    if torch is None:
        return None
    functional = torch.nn.functional
    return {
        "mse": lambda y, p: functional.mse_loss(p, y),
        "mae": lambda y, p: functional.l1_loss(p, y),
        "huber": lambda y, p: functional.huber_loss(p, y, delta=HUBER_DELTA),
    }.get(bench)


def jax_contenders(bench: str) -> dict[str, Callable]:
    """``fn(y_true, y_pred) -> scalar`` per JAX library that has the loss."""
    found = {
        "losses_jax": loss_object(lj, bench),
        "optax": optax_loss(bench),
        "keras": None if keras is None else loss_object(keras.losses, bench),
    }
    return {impl: fn for impl, fn in found.items() if fn is not None}


def bench_case(bench: str, shape: tuple[int, int], rounds: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    y_np, p_np = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    y, p = jnp.asarray(y_np), jnp.asarray(p_np)
    steps, extras = {}, {}
    for impl, loss in jax_contenders(bench).items():
        steps[impl], extras[impl] = jitted_value_and_grad(loss, y, p)
    torch_fn = torch_loss(bench)
    if torch_fn is not None:
        steps["torch"] = torch_value_and_grad_step(torch_fn, y_np, p_np)
        extras["torch"] = {"threads": torch.get_num_threads()}
    return compared_rows(bench, f"N={shape[0]},D={shape[1]}", steps, extras, rounds, repeats)


def run(tiny: bool = False) -> list[dict]:
    """Rows for every loss and shape (``tiny``: one small shape, a smoke test)."""
    shapes, rounds, repeats = (TINY_SHAPES, 1, 3) if tiny else (FULL_SHAPES, 15, 10)
    return [
        r
        for bench in LOSS_CLASSES
        for shape in shapes
        for r in bench_case(bench, shape, rounds, repeats)
    ]


if __name__ == "__main__":
    bench_main(run, __doc__)
