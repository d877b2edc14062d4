"""Regression losses (MSE, MAE, Huber, LogCosh) and focal cross-entropy, side by side.

Each case times a jitted ``value_and_grad`` with respect to the predictions (or logits) of the
batch-mean loss, for losses_jax, optax, Keras 3 on the JAX backend and torch on the CPU
(forward plus ``torch.autograd.grad``), wherever that library has the same loss. ``rel_err`` is
the relative difference of the loss value from losses_jax's, a check that the contenders
compute the same thing.

Run: ``python -m benchmarks.bench_regression [--tiny]``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import losses_jax as lj  # noqa: E402
from benchmarks._harness import compile_seconds, row, temp_memory_mb, time_call  # noqa: E402

BENCH = "regression"
HUBER_DELTA = 1.0
FOCAL_GAMMA = 2.0
FOCAL_ALPHA = 0.25
# (batch, features): one launch-bound and one throughput-bound shape.
FULL_SHAPES = ((256, 64), (8192, 512))
TINY_SHAPES = ((32, 8),)


def optional_import(name: str):
    try:
        return __import__(name)
    except ImportError:
        return None


keras = optional_import("keras")
torch = optional_import("torch")


# losses_jax mirrors Keras's class names: loss -> (class name, constructor arguments).
LOSS_CLASSES = {
    "mse": ("MeanSquaredError", {}),
    "mae": ("MeanAbsoluteError", {}),
    "huber": ("Huber", {"delta": HUBER_DELTA}),
    "log_cosh": ("LogCosh", {}),
    "binary_focal": ("BinaryFocalCrossentropy", {"gamma": FOCAL_GAMMA, "from_logits": True}),
    "categorical_focal": (
        "CategoricalFocalCrossentropy",
        {"alpha": FOCAL_ALPHA, "gamma": FOCAL_GAMMA, "from_logits": True},
    ),
}
LOSSES = tuple(LOSS_CLASSES)


def loss_object(namespace, loss: str) -> Callable:
    """``namespace.<class>(**arguments)`` for ``loss`` (namespace: losses_jax or keras.losses)."""
    class_name, arguments = LOSS_CLASSES[loss]
    return getattr(namespace, class_name)(**arguments)


def optax_loss(loss: str) -> Callable | None:
    """``fn(y_true, y_pred) -> scalar`` from optax, or None (no MAE, no categorical focal)."""
    elementwise = {
        "mse": optax.squared_error,
        "huber": lambda p, y: optax.huber_loss(p, y, delta=HUBER_DELTA),
        "log_cosh": optax.log_cosh,
        # alpha=None (no class balancing) equals Keras's apply_class_balancing=False.
        "binary_focal": lambda p, y: optax.sigmoid_focal_loss(p, y, gamma=FOCAL_GAMMA),
    }.get(loss)
    return None if elementwise is None else lambda y, p: jnp.mean(elementwise(p, y))


def jax_contenders(loss: str) -> dict[str, Callable]:
    """``fn(y_true, y_pred) -> scalar`` per JAX-based library that has ``loss``."""
    found = {
        "losses_jax": loss_object(lj, loss),
        "optax": optax_loss(loss),
        "keras": None if keras is None else loss_object(keras.losses, loss),
    }
    return {impl: fn for impl, fn in found.items() if fn is not None}


def torch_contender(loss: str) -> Callable | None:
    """``fn(y_true, y_pred) -> scalar`` in torch, or None (no LogCosh, no focal losses)."""
    if torch is None:
        return None
    functional = torch.nn.functional
    return {
        "mse": lambda y, p: functional.mse_loss(p, y),
        "mae": lambda y, p: functional.l1_loss(p, y),
        "huber": lambda y, p: functional.huber_loss(p, y, delta=HUBER_DELTA),
    }.get(loss)


def make_inputs(loss: str, shape: tuple[int, int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) as float32 NumPy arrays: targets and predictions, or labels and logits."""
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal(shape)).astype(np.float32)
    if loss == "binary_focal":
        return (rng.random(shape) < 0.3).astype(np.float32), logits
    if loss == "categorical_focal":
        return np.eye(shape[1], dtype=np.float32)[rng.integers(0, shape[1], shape[0])], logits
    return rng.standard_normal(shape).astype(np.float32), logits


def relative_error(value: float, reference: float) -> float:
    return abs(value - reference) / max(abs(reference), 1e-12)


def time_jax(loss_fn: Callable, y: jax.Array, p: jax.Array, repeats: int) -> dict:
    """Timing, compile time, temporary memory and loss value of jitted value_and_grad."""
    value_and_grad = jax.value_and_grad(lambda pred, true: loss_fn(true, pred))
    # Compile first: afterwards JAX's compilation cache would answer instead.
    compile_s = compile_seconds(value_and_grad, p, y)
    fast = jax.jit(value_and_grad)
    return {
        "ms": time_call(fast, p, y, repeats=repeats),
        "compile_s": compile_s,
        "temp_mb": temp_memory_mb(value_and_grad, p, y),
        "value": float(fast(p, y)[0]),
    }


def time_torch(loss_fn: Callable, y: np.ndarray, p: np.ndarray, repeats: int) -> dict:
    """Timing and loss value of a torch forward pass plus the gradient w.r.t. the predictions."""
    pred = torch.tensor(p, requires_grad=True)
    true = torch.tensor(y)

    def value_and_grad():
        value = loss_fn(true, pred)
        return value, torch.autograd.grad(value, pred)[0]

    return {
        "ms": time_call(value_and_grad, repeats=repeats),
        "value": float(value_and_grad()[0].detach()),
    }


def bench_case(loss: str, shape: tuple[int, int], repeats: int) -> list[dict]:
    y_np, p_np = make_inputs(loss, shape)
    y, p = jnp.asarray(y_np), jnp.asarray(p_np)
    case = f"{loss} {shape[0]}x{shape[1]}"
    results = {impl: time_jax(fn, y, p, repeats) for impl, fn in jax_contenders(loss).items()}
    torch_fn = torch_contender(loss)
    if torch_fn is not None:
        results["torch"] = time_torch(torch_fn, y_np, p_np, repeats)
    reference = results["losses_jax"]["value"]
    return [
        row(BENCH, case, impl, r.pop("ms"), rel_err=relative_error(r.pop("value"), reference), **r)
        for impl, r in results.items()
    ]


def run(tiny: bool = False) -> list[dict]:
    """Rows for every loss and shape (``tiny``: one small shape, few repeats)."""
    shapes, repeats = (TINY_SHAPES, 3) if tiny else (FULL_SHAPES, 20)
    return [r for loss in LOSSES for shape in shapes for r in bench_case(loss, shape, repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="one small shape (smoke test)")
    args = parser.parse_args()
    from benchmarks.run import add_ratios, text_table

    print(text_table(add_ratios(run(tiny=args.tiny))))


if __name__ == "__main__":
    main()
