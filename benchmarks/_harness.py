"""Shared timing and memory helpers for the benchmark suite.

Every benchmark module exposes ``run(tiny: bool) -> list[dict]``; each row has
at least ``bench``, ``case``, ``impl`` and ``ms`` (median wall time), and may
carry ``compile_s`` and ``temp_mb`` (XLA's compiled temporary memory). Rows of
the same ``bench``/``case`` are compared as ratios against the ``losses_jax``
row by ``benchmarks/run.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import median

import jax


def block(x):
    """Wait for every array in a pytree (JAX or torch) to be computed."""
    for leaf in jax.tree_util.tree_leaves(x):
        if hasattr(leaf, "block_until_ready"):
            leaf.block_until_ready()
    return x


def time_call(fn: Callable, *args, repeats: int = 20, warmup: int = 2) -> float:
    """Median wall time of ``fn(*args)`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        block(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        block(fn(*args))
        times.append(time.perf_counter() - t0)
    return 1e3 * median(times)


def compile_seconds(fn: Callable, *args) -> float:
    """Seconds to lower and compile ``jax.jit(fn)`` for these arguments (no cache)."""
    t0 = time.perf_counter()
    jax.jit(fn).lower(*args).compile()
    return time.perf_counter() - t0


def temp_memory_mb(fn: Callable, *args) -> float | None:
    """XLA's compiled temporary-buffer size of ``jax.jit(fn)`` in MiB (None if unknown)."""
    stats = jax.jit(fn).lower(*args).compile().memory_analysis()
    if stats is None:
        return None
    return stats.temp_size_in_bytes / 2**20


def row(bench: str, case: str, impl: str, ms: float, **extra) -> dict:
    return {"bench": bench, "case": case, "impl": impl, "ms": ms, **extra}
