"""linear_cross_entropy against the naive path (``logits = e @ w``, then softmax cross-entropy).

Every case is a jitted ``value_and_grad`` of the mean loss with respect to the embeddings and
the classifier. The naive contenders form the full ``(N, V)`` logits: optax
(``softmax_cross_entropy_with_integer_labels``) and torch on the CPU (``F.linear`` then
``F.cross_entropy`` and ``torch.autograd.grad``).

* ``linear_ce``: time (median of interleaved rounds), compile time, XLA's compiled temporary
  memory (``temp_mb``), and for losses_jax: ``temp_vs_naive`` (its temp_mb over optax's) and
  ``rel_err``, the largest relative difference from optax's value and gradients (each
  gradient's max-abs error over its max-abs entry).
* the same case with ``LinearCrossEntropy`` (the fused reduction: gradients in the forward
  pass), torch 2.13's chunked ``F.linear_cross_entropy`` and a bfloat16 case; ``vs_naive`` is
  the median over interleaved rounds of each one's time over optax's in the same round;
* ``linear_ce_chunks`` (``chunk_sweep``, not in ``run``): the per-token kernel's time and memory
  per vocabulary chunk size.
* ``linear_ce_memory``: compiled temporary memory as N and V grow (compile only, no run).

Run: ``python -m benchmarks.bench_linear_ce [--tiny]``.
"""

from __future__ import annotations

from statistics import median
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import losses_jax as lj
from benchmarks._harness import (
    bench_main,
    block,
    compile_seconds,
    optional_import,
    row,
    temp_memory_mb,
    time_call,
)

BENCH = "linear_ce"
NAIVE = "optax"
MAIN_SHAPE = (2048, 512, 32768)  # (tokens N, width D, vocabulary V): the target
TINY_SHAPE = (128, 32, 1024)
GROWTH_D = 512
GROWTH_N = (512, 2048, 8192, 32768)  # at V = 32768
GROWTH_V = (8192, 32768, 131072, 262144)  # at N = 2048
CHUNKS = (1024, 2048, 4096, 8192)


torch = optional_import("torch")


def make_inputs(n: int, d: int, v: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n, d)).astype(np.float32)
    w = (rng.standard_normal((d, v)) / np.sqrt(d)).astype(np.float32)
    labels = rng.integers(0, v, size=(n,)).astype(np.int32)
    return e, w, labels


def naive_loss(e, w, labels):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(e @ w, labels))


def our_loss(**options):
    return lambda e, w, labels: jnp.mean(lj.linear_cross_entropy(labels, e, w, **options))


def fused_loss(**options):
    """The class: its reduction computes the gradients in the forward pass."""
    loss = lj.LinearCrossEntropy(**options)
    return lambda e, w, labels: loss(labels, e, classifier=w)


def value_and_grad(loss):
    return jax.value_and_grad(loss, argnums=(0, 1))


def torch_value_and_grad(e, w, labels):
    """A torch naive step: ``fn()`` returns the loss and the gradients of e and w."""
    e_t = torch.tensor(e, requires_grad=True)
    w_t = torch.tensor(w, requires_grad=True)
    y_t = torch.tensor(labels, dtype=torch.long)

    def step():
        loss = torch.nn.functional.cross_entropy(e_t @ w_t, y_t)
        return loss, torch.autograd.grad(loss, (e_t, w_t))

    return step


def relative_error(ours, reference) -> float:
    """Largest over the leaves of max|a - b| / max|b|."""
    errors = [
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(b)), 1e-30))
        for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(reference))
    ]
    return max(errors)


def interleaved_ms(fns: dict, args: tuple, rounds: int) -> dict[str, float]:
    """Median ms per function, timing them in turn each round (fair under a varying load)."""
    for fn in fns.values():
        time_call(fn, *args, repeats=1, warmup=1)
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(time_call(fn, *args, repeats=1, warmup=0))
    return {name: median(t) for name, t in times.items()}


def torch_chunked_step(e, w, labels):
    """torch 2.13's ``F.linear_cross_entropy`` with ``LinearCrossEntropyOptions()``."""
    e_t = torch.tensor(e, requires_grad=True)
    w_t = torch.tensor(np.ascontiguousarray(w.T), requires_grad=True)  # (V, D), torch's layout
    y_t = torch.tensor(labels, dtype=torch.long)
    options = torch.nn.LinearCrossEntropyOptions()

    def step():
        loss = torch.nn.functional.linear_cross_entropy(e_t, w_t, y_t, options=options)
        return loss, torch.autograd.grad(loss, (e_t, w_t))

    return step


def paired_ms(fns: dict, args: tuple, rounds: int, reference: str) -> dict[str, tuple]:
    """(median ms, median over rounds of ms / the reference's ms in the same round) per fn."""
    for fn in fns.values():
        block(fn(*args))  # compile / warm up
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(time_call(fn, *args, repeats=1, warmup=0))
    ref = np.array(times[reference])
    return {k: (median(t), float(np.median(np.array(t) / ref))) for k, t in times.items()}


def main_case(shape, rounds: int, dtype=jnp.float32) -> list[dict]:
    """Per-token function, fused class, naive optax path and torch (f32), paired per round."""
    n, d, v = shape
    e, w, labels = (jnp.asarray(x) for x in make_inputs(n, d, v))
    e, w = e.astype(dtype), w.astype(dtype)
    case = f"N={n} D={d} V={v} {jnp.dtype(dtype).name}"
    fns = {
        "losses_jax": value_and_grad(our_loss()),
        "losses_jax fused class": value_and_grad(fused_loss()),
        NAIVE: value_and_grad(naive_loss),
    }
    compile_s = {impl: compile_seconds(fn, e, w, labels) for impl, fn in fns.items()}
    temp_mb = {impl: temp_memory_mb(fn, e, w, labels) for impl, fn in fns.items()}
    timed: dict[str, Any] = {impl: jax.jit(fn) for impl, fn in fns.items()}
    if torch is not None and dtype == jnp.float32:
        numpy_inputs = make_inputs(n, d, v)
        chunked, plain = torch_chunked_step(*numpy_inputs), torch_value_and_grad(*numpy_inputs)
        timed["torch linear_cross_entropy"] = lambda *_: chunked()
        timed["torch naive"] = lambda *_: plain()
    ms = paired_ms(timed, (e, w, labels), rounds, NAIVE)
    reference = timed[NAIVE](e, w, labels)
    rows = []
    for impl, (t, ratio) in ms.items():
        extra = {"vs_naive": ratio}
        if impl in fns:
            extra.update(compile_s=compile_s[impl], temp_mb=temp_mb[impl],
                         temp_vs_naive=temp_mb[impl] / temp_mb[NAIVE])  # fmt: skip
            if impl != NAIVE:
                extra["rel_err"] = relative_error(timed[impl](e, w, labels), reference)
        rows.append(row(BENCH, case, impl, t, **extra))
    return rows


def chunk_sweep(shape, rounds: int) -> list[dict]:
    n, d, v = shape
    e, w, labels = (jnp.asarray(x) for x in make_inputs(n, d, v))
    case = f"N={n} D={d} V={v} f32"
    fns = {c: value_and_grad(our_loss(vocab_chunk_size=c)) for c in CHUNKS}
    ms = interleaved_ms({c: jax.jit(fn) for c, fn in fns.items()}, (e, w, labels), rounds)
    return [
        row(f"{BENCH}_chunks", case, f"losses_jax vocab_chunk={c}", ms[c],
            temp_mb=temp_memory_mb(fns[c], e, w, labels))
        for c in CHUNKS
    ]  # fmt: skip


def memory_growth(shapes) -> list[dict]:
    """Compiled temporary memory only: shapes up to 2 GiB of logits are never run."""
    rows = []
    for n, d, v in shapes:
        e = jax.ShapeDtypeStruct((n, d), jnp.float32)
        w = jax.ShapeDtypeStruct((d, v), jnp.float32)
        labels = jax.ShapeDtypeStruct((n,), jnp.int32)
        ours = temp_memory_mb(value_and_grad(our_loss()), e, w, labels)
        fused = temp_memory_mb(value_and_grad(fused_loss()), e, w, labels)
        naive = temp_memory_mb(value_and_grad(naive_loss), e, w, labels)
        case = f"N={n} D={d} V={v}"
        logits_mb = n * v * 4 / 2**20
        rows.append(row(f"{BENCH}_memory", case, "losses_jax", float("nan"), temp_mb=ours,
                        temp_vs_naive=ours / naive, logits_mb=logits_mb))  # fmt: skip
        rows.append(row(f"{BENCH}_memory", case, "losses_jax fused class", float("nan"),
                        temp_mb=fused, temp_vs_naive=fused / naive, logits_mb=logits_mb))  # fmt: skip
        rows.append(row(f"{BENCH}_memory", case, NAIVE, float("nan"), temp_mb=naive,
                        logits_mb=logits_mb))  # fmt: skip
    return rows


def run(tiny: bool = False) -> list[dict]:
    """The timing case, the chunk sweep and the memory table (``tiny``: small shapes only)."""
    if tiny:
        n, d, v = TINY_SHAPE
        small = main_case(TINY_SHAPE, rounds=3) + main_case(TINY_SHAPE, 2, jnp.bfloat16)
        return small + memory_growth([(n, d, v), (4 * n, d, 4 * v)])
    shapes = [(n, GROWTH_D, 32768) for n in GROWTH_N]
    shapes += [(2048, GROWTH_D, v) for v in GROWTH_V if v != 32768]
    return (
        main_case(MAIN_SHAPE, rounds=5)
        + main_case(MAIN_SHAPE, rounds=3, dtype=jnp.bfloat16)
        + memory_growth(shapes)
    )


if __name__ == "__main__":
    bench_main(run, __doc__)
