"""Cross-entropy from logits: losses_jax against optax, Keras 3 (JAX backend) and torch (CPU).

Every case times the batch-mean loss's value and gradient with respect to the logits: a jitted
``jax.value_and_grad`` for the JAX libraries, forward plus ``torch.autograd.grad`` for torch
(its default thread count, reported in the ``threads`` column). Contenders are timed in
interleaved rounds (order rotated each round); ``ms`` is an implementation's best median and
``paired_ratio`` the median over rounds of its time over losses_jax's in the same round, the
steadier figure on a busy machine, with its spread over the rounds (``paired_iqr``,
``paired_range``). ``rel_err`` is the loss value's relative difference from
losses_jax's.

Benches: ``ce_sparse`` (integer labels), ``ce_categorical`` (one-hot targets), ``focal_binary``
and ``focal_categorical`` (gamma=2, alpha=0.25).

Run: ``python -m benchmarks.bench_ce [--tiny] [--only ce_sparse ...] [--rounds N]``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

import losses_jax  # noqa: E402
from benchmarks._harness import (  # noqa: E402
    compared_rows,
    jitted_value_and_grad,
    optional_import,
    torch_value_and_grad_step,
)

GAMMA, ALPHA = 2.0, 0.25
FULL_SHAPES = ((4096, 1000), (2048, 32000))
TINY_SHAPES = ((64, 100),)


keras = optional_import("keras")
torch = optional_import("torch")

# bench -> (class name, constructor arguments), the same in losses_jax and keras.losses.
CLASSES = {
    "ce_sparse": ("SparseCategoricalCrossentropy", {"from_logits": True}),
    "ce_categorical": ("CategoricalCrossentropy", {"from_logits": True}),
    "focal_binary": (
        "BinaryFocalCrossentropy",
        {"apply_class_balancing": True, "alpha": ALPHA, "gamma": GAMMA, "from_logits": True},
    ),
    "focal_categorical": (
        "CategoricalFocalCrossentropy",
        {"alpha": ALPHA, "gamma": GAMMA, "from_logits": True},
    ),
}


def optax_loss(bench: str) -> Callable | None:
    """``fn(targets, logits) -> scalar`` from optax (it has no categorical focal loss)."""
    per_sample = {
        "ce_sparse": lambda t, x: optax.softmax_cross_entropy_with_integer_labels(x, t),
        "ce_categorical": lambda t, x: optax.softmax_cross_entropy(x, t),
        # Keras's per-sample binary loss is the mean over the last axis; the batch mean of
        # both is the mean over all elements.
        "focal_binary": lambda t, x: optax.sigmoid_focal_loss(x, t, alpha=ALPHA, gamma=GAMMA),
    }.get(bench)
    return None if per_sample is None else lambda t, x: jnp.mean(per_sample(t, x))


def torch_loss(bench: str) -> Callable | None:
    """``fn(targets, logits) -> scalar`` in torch (cross-entropy only)."""
    if torch is None or bench not in ("ce_sparse", "ce_categorical"):
        return None
    # torch's cross_entropy takes labels or class probabilities, averaging over the batch.
    return lambda t, x: torch.nn.functional.cross_entropy(x, t)


def contenders(bench: str) -> dict[str, Callable]:
    """``fn(targets, logits) -> scalar`` per JAX library that has the loss."""
    class_name, arguments = CLASSES[bench]
    found = {
        "losses_jax": getattr(losses_jax, class_name)(**arguments),
        "optax": optax_loss(bench),
        "keras": None if keras is None else getattr(keras.losses, class_name)(**arguments),
    }
    return {impl: fn for impl, fn in found.items() if fn is not None}


def make_inputs(bench: str, shape: tuple[int, int], seed: int = 0):
    """(targets, logits) as NumPy arrays: labels, one-hot rows or binary targets."""
    rng = np.random.default_rng(seed)
    logits = (2.0 * rng.standard_normal(shape)).astype(np.float32)
    labels = rng.integers(0, shape[1], size=shape[0]).astype(np.int32)
    if bench == "ce_sparse":
        return labels, logits
    if bench == "focal_binary":
        return (rng.random(shape) < 0.3).astype(np.float32), logits
    return np.eye(shape[1], dtype=np.float32)[labels], logits


def bench_case(bench: str, shape: tuple[int, int], rounds: int, repeats: int) -> list[dict]:
    targets_np, logits_np = make_inputs(bench, shape)
    targets, logits = jnp.asarray(targets_np), jnp.asarray(logits_np)
    steps, extras = {}, {}
    for impl, loss in contenders(bench).items():
        steps[impl], extras[impl] = jitted_value_and_grad(loss, targets, logits)
    torch_fn = torch_loss(bench)
    if torch_fn is not None:
        steps["torch"] = torch_value_and_grad_step(torch_fn, targets_np, logits_np)
        extras["torch"] = {"threads": torch.get_num_threads()}
    return compared_rows(bench, f"N={shape[0]},V={shape[1]}", steps, extras, rounds, repeats)


def run(tiny: bool = False, only: list[str] | None = None, rounds: int | None = None) -> list[dict]:
    """Rows for every bench (or those in ``only``) and shape (``tiny``: one small shape, a smoke
    test); ``rounds`` overrides the number of interleaved rounds."""
    shapes, default_rounds, repeats = (TINY_SHAPES, 1, 3) if tiny else (FULL_SHAPES, 11, 10)
    return [
        r
        for bench in CLASSES
        if not only or bench in only
        for shape in shapes
        for r in bench_case(bench, shape, rounds or default_rounds, repeats)
    ]


def main() -> None:
    import argparse

    from benchmarks.run import add_ratios, text_table

    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="small shapes only (smoke test)")
    parser.add_argument("--only", nargs="+", choices=list(CLASSES), help="these benches only")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 11)")
    args = parser.parse_args()
    print(text_table(add_ratios(run(args.tiny, args.only, args.rounds))))


if __name__ == "__main__":
    main()
