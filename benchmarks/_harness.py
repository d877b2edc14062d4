"""Shared timing and memory helpers for the benchmark suite.

Every benchmark module exposes ``run(tiny: bool) -> list[dict]``; each row has
at least ``bench``, ``case``, ``impl`` and ``ms`` (median wall time), and may
carry ``compile_s``, ``temp_mb`` (XLA's compiled temporary memory) and, when
timed in interleaved rounds (:func:`compared_rows`), ``paired_ratio`` with its
spread (``paired_iqr``, ``paired_range``, ``rounds``). Rows of the same
``bench``/``case`` are compared against the ``losses_jax`` row by
``benchmarks/run.py``, which writes them to ``results.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from statistics import median
from typing import Any

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


def optional_import(name: str) -> Any:
    """The module ``name``, or None when it is not installed (its columns are then skipped)."""
    try:
        return __import__(name)
    except ImportError:
        return None


def torch_value_and_grad_step(loss: Callable, targets, preds) -> Callable:
    """A torch step returning ``(value, d value / d preds)``; integer targets become ``long``."""
    import torch

    pred = torch.tensor(preds, requires_grad=True)
    dtype = (
        torch.long
        if getattr(targets, "dtype", None) is not None and targets.dtype.kind == "i"
        else torch.float32
    )
    true = torch.tensor(targets, dtype=dtype)

    def step():
        value = loss(true, pred)
        return value.detach(), torch.autograd.grad(value, pred)[0]

    return step


def jitted_value_and_grad(loss: Callable, targets, preds) -> tuple[Callable, dict]:
    """``(step, extras)``: one compilation of the jitted ``value_and_grad`` of ``loss(targets,
    preds)`` with respect to ``preds``; ``extras`` holds its compile seconds and XLA temporary
    MiB, both from that compilation (no cache answers for it)."""
    value_and_grad = jax.value_and_grad(lambda pred, true: loss(true, pred))
    start = time.perf_counter()
    compiled = jax.jit(value_and_grad).lower(preds, targets).compile()
    extras: dict[str, float | None] = {"compile_s": time.perf_counter() - start}
    memory = compiled.memory_analysis()
    extras["temp_mb"] = None if memory is None else memory.temp_size_in_bytes / 2**20
    return (lambda: compiled(preds, targets)), extras


def step_value(out) -> float:
    """The loss value of a step's output: ``(value, grad)`` or the value alone."""
    return float(out[0] if isinstance(out, tuple) else out)


def compared_rows(
    bench: str, case: str, steps: dict[str, Callable], extras: dict, rounds: int, repeats: int
) -> list[dict]:
    """Times ``steps`` (``impl -> step`` returning ``(value, grad)`` or the value) interleaved;
    one row each, with its paired ratio, that ratio's spread over the rounds (see
    :func:`paired_spread`) and its value's relative difference from ``losses_jax``'s."""
    values = {impl: step_value(step()) for impl, step in steps.items()}
    per_round = interleaved_rounds(steps, rounds, repeats)
    reference = values["losses_jax"]
    return [
        row(
            bench,
            case,
            impl,
            min(per_round[impl]),
            **paired_spread(per_round[impl], per_round["losses_jax"]),
            rel_err=abs(values[impl] / reference - 1),
            **extras.get(impl, {}),
        )
        for impl in steps
    ]


#: Seconds of sleep before each contender's turn in :func:`interleaved_rounds`.
IDLE_BETWEEN_STEPS_S = 0.02


def interleaved_rounds(
    steps: dict[str, Callable], rounds: int, repeats: int, budget_s: float = 0.5
) -> dict[str, list[float]]:
    """Interleaved timing: per step, its median ms in each of ``rounds`` rounds.

    Each round times every step (a median of up to ``repeats`` calls; slow steps make as many
    as fit in ``budget_s``, at least 2), in an order rotated from round to round, so that a
    change in the machine's load falls on every contender of a round alike. Steps must be warm.
    """
    names = list(steps)
    calls = {}
    for name, step in steps.items():
        start = time.perf_counter()
        block(step())
        calls[name] = max(2, min(repeats, int(budget_s / (time.perf_counter() - start))))
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # one untimed round: the first calls of a process run slow
        time_call(steps[name], repeats=calls[name], warmup=0)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            # A pause lets the previous contender's worker threads go idle: PyTorch's OpenMP
            # threads spin for a while after each call, and the step timed next (losses_jax in
            # three rounds of four) would share the two cores with them.
            time.sleep(IDLE_BETWEEN_STEPS_S)
            per_round[name].append(time_call(steps[name], repeats=calls[name], warmup=0))
    return per_round


def quantile(values: list[float], q: float) -> float:
    """The ``q`` quantile of ``values`` (linear interpolation between order statistics)."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def paired_spread(times: list[float], reference: list[float]) -> dict:
    """The paired ratio of ``times`` over ``reference`` (same rounds) and its spread.

    ``paired_ratio``: the median over rounds of the round's time over the reference's time in
    the same round, which a busy machine disturbs far less than the times themselves;
    ``paired_iqr``: its interquartile range ``[q1, q3]`` over the rounds; ``paired_range``:
    ``[min, max]``; ``rounds``: how many rounds.
    """
    ratios = [t / r for t, r in zip(times, reference)]
    return {
        "paired_ratio": median(ratios),
        "paired_iqr": [quantile(ratios, 0.25), quantile(ratios, 0.75)],
        "paired_range": [min(ratios), max(ratios)],
        "rounds": len(ratios),
    }


def interleaved_ms(
    steps: dict[str, Callable], rounds: int, repeats: int, budget_s: float = 0.5
) -> tuple[dict[str, float], dict[str, float]]:
    """``(best median ms, paired ratio to the first step)`` per step, from
    :func:`interleaved_rounds`."""
    per_round = interleaved_rounds(steps, rounds, repeats, budget_s)
    first = per_round[next(iter(steps))]
    return (
        {name: min(times) for name, times in per_round.items()},
        {name: paired_spread(times, first)["paired_ratio"] for name, times in per_round.items()},
    )


def bench_main(run: Callable, doc: str | None) -> None:
    """Command line of a benchmark module: ``python -m benchmarks.bench_X [--tiny]``."""
    import argparse

    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="small shapes only (smoke test)")
    args = parser.parse_args()
    from benchmarks.run import add_ratios, text_table

    print(text_table(add_ratios(run(tiny=args.tiny))))
