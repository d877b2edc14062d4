"""CLIP and SigLIP over 8 devices: the ring of devices (losses_jax) against the all-gather form.

The all-gather form is the usual implementation (open_clip's ``gather_with_grad`` with
``local_loss=True``, big_vision's unchunked sigmoid loss): every device all-gathers the other
tower's embeddings and forms its ``b x B`` block of similarities (``b = B / 8`` rows per device)
and their gradient at once. losses_jax streams ``b x b`` blocks around the ring of devices
(``axis_name="batch"``): ``losses_jax`` is the class's mean (``ClipContrastive``,
``SiglipSigmoid``), ``losses_jax per-row`` SigLIP's per-row function then ``jnp.mean``. The
per-row ring rematerialises each block in the backward pass (four products per block); the
SigLIP class forms the gradients in its one ring pass (three), as the all-gather form does.

Measured on 8 simulated CPU devices (``--xla_force_host_platform_device_count=8``; the module
runs itself in a subprocess with that flag when the current process has fewer devices):

* ``*_memory``: XLA's per-device temporary memory of the compiled ``value_and_grad`` (with
  respect to both towers and the log-temperature) against the global batch, compile only;
  ``temp_vs_all_gather`` is losses_jax's over the all-gather form's (issue target: <= 0.25 at
  ``B = 8 x 1024, D = 256``).
* ``*_time``: interleaved paired timing of the same steps at ``B = 8 x 512, D = 256`` (the
  all-gather row's ``paired_ratio`` is its time over losses_jax's: the target, losses_jax at
  most 1.3x slower, is a ``paired_ratio`` of at least 0.77).

Usage: ``python -m benchmarks.run --only bench_contrastive [--tiny]`` (or this module alone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import losses_jax as lj
from benchmarks._harness import bench_main, compared_rows, row

BENCH = "contrastive"
DEVICES = 8
DIM = 256
MEMORY_ROWS = (128, 256, 512, 1024, 2048)  # rows per device: B = 8 x rows
TIME_ROWS = 512
TINY = {"memory": (16, 32), "time": 16, "dim": 32, "rounds": 2}
ROWS_PREFIX = "BENCH_CONTRASTIVE_ROWS "
ALL_GATHER = "all-gather"
PER_ROW = "losses_jax per-row"


# --------------------------------------------------------------------------------------
# the two forms of each loss: mean over the global batch, gradient w.r.t. x, y, log-temperature
# --------------------------------------------------------------------------------------
def _unit(x):
    return x / jnp.sqrt(jnp.sum(x * x, axis=1, keepdims=True) + 1e-12)


def _gathered_clip(x, y, log_temperature):
    """One device's rows against every gathered column: open_clip's local loss."""
    x, y = _unit(x), _unit(y)
    every_x = lax.all_gather(x, "batch", tiled=True)
    every_y = lax.all_gather(y, "batch", tiled=True)
    scale = jnp.exp(-log_temperature)
    ids = lax.axis_index("batch") * x.shape[0] + jnp.arange(x.shape[0])
    per_x = jax.nn.log_softmax(scale * x @ every_y.T, axis=1)
    per_y = jax.nn.log_softmax(scale * y @ every_x.T, axis=1)
    picked = jnp.take_along_axis(per_x, ids[:, None], 1) + jnp.take_along_axis(
        per_y, ids[:, None], 1
    )
    return -0.5 * jnp.sum(picked)


def _gathered_siglip(x, y, log_temperature, bias):
    x, y = _unit(x), _unit(y)
    every_y = lax.all_gather(y, "batch", tiled=True)
    logits = jnp.exp(-log_temperature) * x @ every_y.T + bias
    ids = lax.axis_index("batch") * x.shape[0] + jnp.arange(x.shape[0])
    signs = jnp.where(ids[:, None] == jnp.arange(every_y.shape[0])[None, :], 1.0, -1.0)
    return -jnp.sum(jax.nn.log_sigmoid(signs * logits))


def _all_gather_form(per_device, mesh):
    def mean(x, y, *scalars):
        specs = (P("batch"), P("batch")) + (P(),) * len(scalars)
        total = jax.shard_map(
            lambda *a: lax.psum(per_device(*a), "batch"), mesh=mesh, in_specs=specs, out_specs=P()
        )(x, y, *scalars)
        return total / x.shape[0]

    return mean


def _streamed(fn, mesh):
    """The per-row function, then the mean: the rematerialised ring."""

    def mean(x, y, log_temperature, *bias):
        options = {"bias": bias[0]} if bias else {}
        temperature = jnp.exp(log_temperature)
        losses = fn(x, y, temperature=temperature, axis_name="batch", mesh=mesh, **options)
        return jnp.mean(losses)

    return mean


def _streamed_class(cls, mesh):
    """The class's mean (SigLIP's forms its gradients in the ring pass itself)."""

    def mean(x, y, log_temperature, *bias):
        options = {"bias": bias[0]} if bias else {}
        loss = cls(temperature=jnp.exp(log_temperature), axis_name="batch", **options)
        return loss(x, y, mesh=mesh)

    return mean


def _forms(mesh) -> dict:
    """``loss -> (number of scalars, {impl: mean loss})``."""
    return {
        "clip": (
            1,
            {
                "losses_jax": _streamed_class(lj.ClipContrastive, mesh),
                ALL_GATHER: _all_gather_form(_gathered_clip, mesh),
            },
        ),
        "siglip": (
            2,
            {
                "losses_jax": _streamed_class(lj.SiglipSigmoid, mesh),
                PER_ROW: _streamed(lj.siglip_sigmoid, mesh),
                ALL_GATHER: _all_gather_form(_gathered_siglip, mesh),
            },
        ),
    }


def _value_and_grad(mean, scalars: int):
    return jax.jit(jax.value_and_grad(mean, argnums=tuple(range(2 + scalars))))


def _abstract(mesh, batch: int, dim: int, scalars: int):
    rows = NamedSharding(mesh, P("batch"))
    tower = jax.ShapeDtypeStruct((batch, dim), jnp.float32, sharding=rows)
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=NamedSharding(mesh, P()))
    return (tower, tower) + (scalar,) * scalars


def _temp_of(compiled) -> float:
    stats = compiled.memory_analysis()
    return float("nan") if stats is None else stats.temp_size_in_bytes / 2**20


def _temp_mb(mean, scalars, args) -> float:
    return _temp_of(_value_and_grad(mean, scalars).lower(*args).compile())


def memory_rows(mesh, per_device_rows, dim: int) -> list[dict]:
    """Compile-only per-device temporary memory, streamed and all-gather, per global batch."""
    out = []
    for loss, (scalars, forms) in _forms(mesh).items():
        for rows in per_device_rows:
            batch = DEVICES * rows
            args = _abstract(mesh, batch, dim, scalars)
            temp = {impl: _temp_mb(mean, scalars, args) for impl, mean in forms.items()}
            case = f"B={DEVICES}x{rows},D={dim}"
            block_mb = rows * batch * 4 / 2**20  # one device's b x B float32 similarities
            for impl, mb in temp.items():
                ratio = {} if impl == ALL_GATHER else {"temp_vs_all_gather": mb / temp[ALL_GATHER]}
                out.append(
                    row(f"{BENCH}_{loss}_memory", case, impl, float("nan"),
                        temp_mb=mb, b_x_B_mb=block_mb, **ratio)
                )  # fmt: skip
    return out


def time_rows(mesh, rows: int, dim: int, rounds: int) -> list[dict]:
    """Interleaved paired timing of the jitted value-and-gradient steps."""
    rng = np.random.default_rng(0)
    batch = DEVICES * rows
    place = NamedSharding(mesh, P("batch"))
    x = jax.device_put(rng.normal(size=(batch, dim)).astype(np.float32), place)
    y = jax.device_put(rng.normal(size=(batch, dim)).astype(np.float32), place)
    out = []
    for loss, (scalars, forms) in _forms(mesh).items():
        args = (x, y, np.float32(np.log(0.1)), np.float32(-10.0))[: 2 + scalars]
        steps, extras = {}, {}
        for impl, mean in forms.items():
            compiled = _value_and_grad(mean, scalars).lower(*args).compile()
            extras[impl] = {"temp_mb": _temp_of(compiled)}
            steps[impl] = lambda c=compiled, a=args: c(*a)
        case = f"B={DEVICES}x{rows},D={dim}"
        out += compared_rows(f"{BENCH}_{loss}_time", case, steps, extras, rounds, repeats=3)
    return out


def measure(tiny: bool) -> list[dict]:
    """Every row, in a process with 8 devices."""
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    if tiny:
        return memory_rows(mesh, TINY["memory"], TINY["dim"]) + time_rows(
            mesh, TINY["time"], TINY["dim"], TINY["rounds"]
        )
    return memory_rows(mesh, MEMORY_ROWS, DIM) + time_rows(mesh, TIME_ROWS, DIM, rounds=5)


def run(tiny: bool = False) -> list[dict]:
    """The rows; re-run in a subprocess with 8 simulated CPU devices when this one has fewer."""
    if jax.device_count() >= DEVICES:
        return measure(tiny)
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={DEVICES}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-c", _CHILD, "1" if tiny else "0"]
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench_contrastive's 8-device process failed:\n{proc.stderr[-3000:]}")
    line = [s for s in proc.stdout.splitlines() if s.startswith(ROWS_PREFIX)][-1]
    return json.loads(line[len(ROWS_PREFIX) :])


_CHILD = (
    "import json, sys; from benchmarks.bench_contrastive import ROWS_PREFIX, measure; "
    "print(ROWS_PREFIX + json.dumps(measure(sys.argv[1] == '1')))"
)


if __name__ == "__main__":
    bench_main(run, __doc__)
