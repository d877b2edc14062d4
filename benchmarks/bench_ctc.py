"""CTC loss: losses_jax against optax, Keras 3 (JAX backend) and PyTorch, side by side.

Two benches per shape ``(B, T, K, L)`` (batch, frames, classes, longest target):

* ``ctc_value_and_grad``: a jitted ``value_and_grad`` of the summed loss with respect to the
  logits, the training step's cost;
* ``ctc_forward``: the jitted loss alone.

Each JAX row carries ``compile_s`` (lowering plus compilation, no cache) and ``temp_mb``
(XLA's compiled temporary buffers, from ``memory_analysis``). PyTorch runs on the CPU with
one thread (``torch.set_num_threads(1)``): log-softmax, ``ctc_loss`` and
``torch.autograd.grad``. ``rel_err`` is each library's relative difference from losses_jax's
value. Contenders are timed in interleaved, order-rotated rounds (``benchmarks/_harness.py``):
``ms`` is the best median and ``paired_ratio`` the median over rounds of a contender's time over
losses_jax's in the same round, with its spread (``paired_iqr``, ``paired_range``).

The inputs are random padded batches: output lengths in ``[3T/4, T]``, target lengths in
``[L/2, L]`` with repeated labels, all alignable.

Run: ``python -m benchmarks.bench_ctc [--tiny] [--gpu]``. ``--gpu`` adds the case
``B=128, T=1024, K=256, L=200`` (run on whatever backend JAX has; with ``--tiny`` on a CPU it
shrinks to a smoke test).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import losses_jax as lj  # noqa: E402
from benchmarks._harness import (  # noqa: E402
    compared_rows,
    compile_seconds,
    optional_import,
    temp_memory_mb,
)

FULL_SHAPES = ((32, 200, 64, 40), (16, 500, 96, 100))
TINY_SHAPES = ((4, 20, 8, 5),)
GPU_SHAPE = (128, 1024, 256, 200)
GPU_TINY_SHAPE = (8, 64, 32, 12)


optax = optional_import("optax")
torch = optional_import("torch")
keras = optional_import("keras")


def make_inputs(shape: tuple[int, int, int, int], seed: int = 0):
    """Logits ``(B, T, K)``, labels ``(B, L)`` in ``1..K-1`` (0 is the blank), lengths."""
    batch, steps, num_classes, max_len = shape
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((batch, steps, num_classes)).astype(np.float32)
    labels = rng.integers(1, num_classes, size=(batch, max_len)).astype(np.int32)
    labels[:, 1] = labels[:, 0]  # a repeated label in every target
    target_lengths = rng.integers(max(max_len // 2, 2), max_len + 1, size=batch).astype(np.int32)
    output_lengths = rng.integers(steps * 3 // 4, steps + 1, size=batch).astype(np.int32)
    return logits, labels, target_lengths, output_lengths


def jax_losses(labels, target_lengths, output_lengths) -> dict[str, Callable]:
    """``logits -> summed loss`` for every JAX library installed."""
    max_len = labels.shape[1]
    found = {
        "losses_jax": lambda x: jnp.sum(lj.ctc_loss(labels, x, target_lengths, output_lengths)),
    }
    if optax is not None:
        label_paddings = (np.arange(max_len)[None] >= target_lengths[:, None]).astype(np.float32)

        def optax_loss(x):
            steps = x.shape[1]
            paddings = (jnp.arange(steps)[None] >= output_lengths[:, None]).astype(x.dtype)
            return jnp.sum(optax.ctc_loss(x, paddings, labels, label_paddings))

        found["optax"] = optax_loss
    if keras is not None and keras.backend.backend() == "jax":

        def keras_loss(x):
            return jnp.sum(keras.ops.ctc_loss(labels, x, target_lengths, output_lengths))

        found["keras"] = keras_loss
    return found


def torch_steps(logits, labels, target_lengths, output_lengths) -> dict[str, Callable]:
    """PyTorch's CPU CTC on one thread: the training step and the loss alone."""
    torch.set_num_threads(1)
    x = torch.tensor(logits, requires_grad=True)
    targets = torch.tensor(labels, dtype=torch.long)
    input_lengths = torch.tensor(output_lengths, dtype=torch.long)
    label_lengths = torch.tensor(target_lengths, dtype=torch.long)

    def loss():
        logp = torch.log_softmax(x, dim=-1).transpose(0, 1)
        return torch.nn.functional.ctc_loss(
            logp, targets, input_lengths, label_lengths, reduction="sum"
        )

    def value_and_grad():
        value = loss()
        return value.detach(), torch.autograd.grad(value, x)[0]

    def forward():
        with torch.no_grad():
            return loss()

    return {"ctc_value_and_grad": value_and_grad, "ctc_forward": forward}


def bench_shape(shape, rounds: int, repeats: int) -> list[dict]:
    logits_np, labels, target_lengths, output_lengths = make_inputs(shape)
    logits = jnp.asarray(logits_np)
    case = "B={},T={},K={},L={}".format(*shape)
    rows = []
    losses = jax_losses(labels, target_lengths, output_lengths)
    for bench, transform in (
        ("ctc_value_and_grad", jax.value_and_grad),
        ("ctc_forward", lambda fn: fn),
    ):
        steps, extras = {}, {}
        for impl, loss in losses.items():
            fn = transform(loss)
            # compile time first: once compiled, JAX's cache would answer instead
            extras[impl] = {
                "compile_s": compile_seconds(fn, logits),
                "temp_mb": temp_memory_mb(fn, logits),
            }
            jitted = jax.jit(fn)
            steps[impl] = lambda jitted=jitted: jitted(logits)
        if torch is not None and jax.default_backend() == "cpu":
            steps["torch"] = torch_steps(logits_np, labels, target_lengths, output_lengths)[bench]
            extras["torch"] = {"threads": torch.get_num_threads()}
        rows += compared_rows(bench, case, steps, extras, rounds, repeats)
    return rows


def run(tiny: bool = False, gpu: bool | None = None) -> list[dict]:
    """Rows for every shape (``tiny``: one small shape, a smoke test).

    ``gpu`` (default: whether JAX runs on a GPU) adds the large case, shrunk under ``tiny``.
    """
    if gpu is None:
        gpu = jax.default_backend() == "gpu"
    shapes, rounds, repeats = (TINY_SHAPES, 1, 3) if tiny else (FULL_SHAPES, 11, 10)
    if gpu:
        shapes = (*shapes, GPU_TINY_SHAPE if tiny else GPU_SHAPE)
    return [r for shape in shapes for r in bench_shape(shape, rounds, repeats)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="one small shape (smoke test)")
    parser.add_argument(
        "--gpu", action="store_true", help=f"add the case B,T,K,L={GPU_SHAPE} (any backend)"
    )
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    from benchmarks.run import add_ratios, markdown_table, text_table

    rows = add_ratios(run(tiny=args.tiny, gpu=args.gpu or None))
    print(markdown_table(rows) if args.markdown else text_table(rows))


if __name__ == "__main__":
    main()
