"""CLIP and SigLIP streamed around 8 devices against the unsharded losses (a subprocess).

Run by ``tests/test_contrastive.py`` with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``.
For both losses, on ``B = 8 x rows`` paired rows of dimension ``dim`` with a quarter of the rows
left out by ``where``, a learnable log-temperature (and SigLIP's bias) and per-row weights, it
compares ``value_and_grad`` with respect to ``x``, ``y``, the log-temperature and the bias, and
a forward-mode ``jvp`` in ``x``, of the unsharded loss with the same loss computed

* ``auto``: on a mesh of automatic axes with ``axis_name="batch", mesh=mesh``;
* ``inside``: inside the caller's own ``jax.shard_map`` with ``axis_name="batch"``;
* ``explicit``: on inputs sharded over a mesh of explicit axes (detected, no argument).

``fused``: the ``SiglipSigmoid`` class on the automatic mesh (its gradients formed in the ring
pass by a custom rule), with sample weights, a jvp and the Hessian in the two scalars.

Each way is one jitted function of both losses, the fused class another (four compilations in
all: this runs in the default test tier). It checks that the explicit gradients come back batch-sharded and prints
``CONTRASTIVE_SHARDED <json>``: the largest absolute and relative differences per loss and way.
"""

from __future__ import annotations

import json
import sys

SUMMARY_PREFIX = "CONTRASTIVE_SHARDED "


def main(rows: int, dim: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import losses_jax as lj

    devices = jax.device_count()
    batch = devices * rows
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    y = (x + rng.normal(size=(batch, dim))).astype(np.float32)
    where = rng.uniform(size=batch) > 0.25
    weight = rng.uniform(0.5, 1.5, size=batch).astype(np.float32)
    tangent = rng.normal(size=x.shape).astype(np.float32)
    params = (np.float32(np.log(0.1)), np.float32(-2.0))  # log-temperature, SigLIP's bias
    auto_mesh = jax.make_mesh((devices,), ("batch",), axis_types=(AxisType.Auto,))
    explicit_mesh = jax.make_mesh((devices,), ("batch",), axis_types=(AxisType.Explicit,))
    losses = (lj.clip_contrastive, lj.siglip_sigmoid)

    def per_row(fn, x, y, where, params, **sharding):
        log_temperature, bias = params
        options = {"bias": bias} if fn is lj.siglip_sigmoid else {}
        temperature = jnp.exp(log_temperature)
        return fn(x, y, temperature=temperature, where=where, **options, **sharding)

    def inside(fn):
        """The loss computed per device block inside the caller's shard_map."""
        specs = (P("batch"), P("batch"), P("batch"), P())

        def per_device(x, y, where, params):
            return per_row(fn, x, y, where, params, axis_name="batch")

        return lambda x, y, where, params: jax.shard_map(
            per_device, mesh=auto_mesh, in_specs=specs, out_specs=P("batch")
        )(x, y, where, params)

    def objective(per_rows):
        def total(x, y, params, where, weight):
            return jnp.sum(per_rows(x, y, where, params) * weight) / jnp.sum(where)

        def both(x, y, params, where, weight, tangent):
            value_and_grad = jax.value_and_grad(total, argnums=(0, 1, 2))(
                x, y, params, where, weight
            )
            forward = jax.jvp(lambda v: total(v, y, params, where, weight), (x,), (tangent,))
            return value_and_grad, forward

        return both

    def ways(**sharding):
        def run(*args):
            return {
                fn.__name__: objective(
                    lambda x, y, w, p, fn=fn: per_row(fn, x, y, w, p, **sharding)
                )(*args)
                for fn in losses
            }

        return run

    def siglip_class(axis_name=None, mesh=None):
        """SiglipSigmoid's weighted mean (sharded: its gradients formed in the ring pass), its
        value and gradient, a jvp in x and the Hessian in (log-temperature, bias)."""

        def total(x, y, params, where, weight):
            loss = lj.SiglipSigmoid(
                temperature=jnp.exp(params[0]), bias=params[1], axis_name=axis_name
            )
            inputs = {} if mesh is None else {"mesh": mesh}
            return loss(x, y, sample_weight=weight, mask=where, **inputs)

        def run(x, y, params, where, weight, tangent):
            value_and_grad = jax.value_and_grad(total, argnums=(0, 1, 2))(
                x, y, params, where, weight
            )
            forward = jax.jvp(lambda v: total(v, y, params, where, weight), (x,), (tangent,))
            hessian = jax.hessian(lambda p: total(x, y, p, where, weight))(jnp.stack(params))
            return value_and_grad, forward, hessian

        return run

    @jax.jit
    def sharded(*args):
        out = {"auto": ways(axis_name="batch", mesh=auto_mesh)(*args)}
        out["inside"] = {fn.__name__: objective(inside(fn))(*args) for fn in losses}
        return out

    def compare(actual, expected) -> dict:
        out = {"max_abs": 0.0, "max_rel": 0.0}
        for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
            a, e = np.asarray(a, np.float64), np.asarray(e, np.float64)
            err = np.abs(a - e)
            out["max_abs"] = max(out["max_abs"], float(err.max()))
            scale = max(float(np.abs(e).max()), 1e-30)
            out["max_rel"] = max(out["max_rel"], float(err.max() / scale))
        return out

    args = (x, y, params, where, weight, tangent)
    expected = jax.jit(ways())(*args)
    found = sharded(*args)
    # Its own program: sharing one with the per-row rings made XLA's CPU collectives fail.
    fused = jax.jit(siglip_class(axis_name="batch", mesh=auto_mesh))(*args)
    results_fused = compare(fused, jax.jit(siglip_class())(*args))
    with jax.set_mesh(explicit_mesh):
        xs, ys, ts = (jax.device_put(v, P("batch")) for v in (x, y, tangent))
        explicit = jax.jit(ways())(xs, ys, params, where, weight, ts)
    results: dict = {"batch": batch, "dim": dim, "devices": devices}
    results["SiglipSigmoid/fused"] = results_fused
    # The sharded class takes the fused rule (a custom_jvp), not the per-row ring.
    value_only = siglip_class(axis_name="batch", mesh=auto_mesh)
    jaxpr = str(jax.make_jaxpr(lambda *a: value_only(*a)[0][0])(*args))
    results["SiglipSigmoid/fused_rule_used"] = "custom_jvp_call" in jaxpr
    for name in expected:
        for way in ("auto", "inside"):
            results[f"{name}/{way}"] = compare(found[way][name], expected[name])
        results[f"{name}/explicit"] = compare(explicit[name], expected[name])
        grad_x = explicit[name][0][1][0]
        results[f"{name}/explicit_grad_sharded"] = grad_x.sharding.is_equivalent_to(
            NamedSharding(explicit_mesh, P("batch")), 2
        )
    return results


if __name__ == "__main__":
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    dim = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    print(SUMMARY_PREFIX + json.dumps(main(rows, dim)))
