"""Vocabulary-parallel linear_cross_entropy on 8 simulated CPU devices.

JAX fixes its device count when it starts, so the sharded computations run in a subprocess
(this file run as a script, with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``). It
writes its results to a folder; the tests here compare them with the float64 torch reference
of ``tests/test_large_vocab.py`` and inspect the per-device compiled memory and collectives.
"""

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

IGNORE = -100
# (batch, sequence, D, V) of the correctness problem; V splits over 4 "model" devices.
SHAPE = (4, 6, 16, 512)
OPTIONS = {"ignore_class": IGNORE, "label_smoothing": 0.1, "z_loss": 1e-3, "logit_soft_cap": 8.0}
# The memory problem: tokens split over 2 "data" devices, vocabulary over 4 "model" devices.
MEMORY_SHAPE = (256, 64, 65536)


def make_inputs(seed=0):
    batch, seq, d, v = SHAPE
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, v, size=(batch, seq))
    labels[0, 4:] = IGNORE
    return {
        "e": rng.normal(size=(batch, seq, d)).astype(np.float32),
        "w": (rng.normal(size=(d, v)) / 2).astype(np.float32),
        "b": rng.normal(size=(v,)).astype(np.float32),
        "labels": labels,
    }


# --------------------------------------------------------------------------------------
# the subprocess (8 devices)
# --------------------------------------------------------------------------------------
def sharded_runs(out: Path) -> None:
    import jax
    import jax.numpy as jnp
    from jax.sharding import AxisType, NamedSharding
    from jax.sharding import PartitionSpec as P

    import losses_jax as lj
    from losses_jax.losses.large_vocab import LinearCrossEntropy, linear_cross_entropy

    assert jax.device_count() == 8, jax.devices()
    inputs = make_inputs()
    labels = inputs["labels"]
    results = {}

    def masked_mean(losses):  # the class's mean: over the tokens not labelled IGNORE
        return lj.reduce_weighted_values(losses, mask=labels != IGNORE)

    def value_and_grads(loss_fn, *args):
        return jax.jit(jax.value_and_grad(loss_fn, argnums=tuple(range(len(args)))))(*args)

    def record(name, value_and_grad):
        value, grads = value_and_grad
        results[name] = np.asarray(value)
        for key, grad in zip("ewb", grads):
            results[f"{name}/d{key}"] = np.asarray(grad)

    # 1. data x model mesh with explicit axes, inputs already placed, bias, every option.
    mesh = jax.make_mesh((2, 4), ("data", "model"))
    put = lambda x, *spec: jax.device_put(x, NamedSharding(mesh, P(*spec)))  # noqa: E731
    e, w, b = put(inputs["e"], "data"), put(inputs["w"], None, "model"), put(inputs["b"], "model")
    with jax.set_mesh(mesh):
        record(
            "data_model",
            value_and_grads(
                lambda e, w, b: masked_mean(
                    linear_cross_entropy(
                        labels, e, w, bias=b, vocab_axis="model", token_axis="data", **OPTIONS
                    )
                ),
                e,
                w,
                b,
            ),
        )

    # 2. all 8 devices on the vocabulary, automatic axes, unplaced inputs, the class form.
    auto_mesh = jax.make_mesh((8,), ("model",), axis_types=(AxisType.Auto,))
    loss = LinearCrossEntropy(vocab_axis="model", **OPTIONS)
    with jax.set_mesh(auto_mesh):
        record(
            "model8",
            value_and_grads(lambda e, w: loss(labels, e, classifier=w), inputs["e"], inputs["w"]),
        )

    # 3. the flax recipes of the module docstring.
    import flax.linen as nn
    from flax import nnx

    v, d = SHAPE[3], SHAPE[2]
    init = nn.initializers.normal(0.5)
    head = nn.Dense(v, kernel_init=nn.with_partitioning(init, (None, "model")))
    linen_mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
    with jax.set_mesh(linen_mesh):
        params = nn.meta.unbox(head.init(jax.random.key(0), inputs["e"]))["params"]
        results["linen_kernel_spec"] = str(params["kernel"].sharding.spec)
        results["linen"] = np.asarray(
            masked_mean(
                linear_cross_entropy(
                    labels, inputs["e"], params["kernel"], vocab_axis="model", **OPTIONS
                )
            )
        )
        results["linen_kernel"] = np.asarray(params["kernel"])
    with jax.set_mesh(mesh):
        layer = nnx.Linear(
            d, v, kernel_init=nnx.with_partitioning(init, (None, "model")), rngs=nnx.Rngs(0)
        )
        results["nnx_kernel_spec"] = str(layer.kernel[...].sharding.spec)
        results["nnx"] = np.asarray(
            masked_mean(
                linear_cross_entropy(
                    labels, inputs["e"], layer.kernel[...], vocab_axis="model", **OPTIONS
                )
            )
        )
        results["nnx_kernel"] = np.asarray(layer.kernel[...])

    # 5. the linear-head family (log-probs, KL, JSD) sharded alike, against one device.
    teacher_e = (inputs["e"][..., ::-1] * 0.7).copy()
    teacher_w = (inputs["w"] * 1.3).copy()
    heads = {
        "log_probs": lambda e, w, **k: lj.linear_log_probs(
            e, w, labels, bias=inputs["b"], temperature=1.5, with_entropy=True,
            ignore_class=IGNORE, **k)[0] * 0.5 + lj.linear_log_probs(
            e, w, labels, with_entropy=True, **k)[1],
        "kl": lambda e, w, **k: lj.linear_kl_divergence(
            e, w, teacher_e, teacher_w, temperature=2.0, student_bias=inputs["b"], **k),
        "kl_reverse": lambda e, w, **k: lj.linear_kl_divergence(
            e, w, teacher_e, teacher_w, direction="reverse", labels=labels,
            ignore_class=IGNORE, **k),
        "jsd": lambda e, w, **k: lj.linear_jsd(e, w, teacher_e, teacher_w, beta=0.3, **k),
    }  # fmt: skip
    for name, fn in heads.items():
        record(f"head_{name}_ref", value_and_grads(lambda e, w, f=fn: jnp.mean(f(e, w)), e, w))
        with jax.set_mesh(mesh):
            sharded_fn = partial(fn, vocab_axis="model", token_axis="data")
            record(
                f"head_{name}",
                value_and_grads(lambda e, w, f=sharded_fn: jnp.mean(f(e, w)), e, w),
            )
    kl_class = lj.LinearKLDivergence(vocab_axis="model", temperature=2.0)
    with jax.set_mesh(auto_mesh):
        record("head_kl_class", value_and_grads(
            lambda e, w: kl_class(teacher_e, e, classifier=w, teacher_classifier=teacher_w,
                                  bias=inputs["b"]), inputs["e"], inputs["w"]))  # fmt: skip

    # 4. per-device compiled memory and collectives at a size where the logits are large.
    n, d, v = MEMORY_SHAPE
    e = put(jnp.zeros((n, d)), "data")
    w = put(jnp.zeros((d, v)), None, "model")
    tokens = put(jnp.zeros((n,), jnp.int32), "data")

    def sharded_loss(e, w):
        return jnp.mean(linear_cross_entropy(tokens, e, w, vocab_axis="model", token_axis="data"))

    with jax.set_mesh(mesh):
        compiled = jax.jit(jax.value_and_grad(sharded_loss, argnums=(0, 1))).lower(e, w).compile()
    stats = compiled.memory_analysis()
    hlo = compiled.as_text()
    memory = {
        "temp_bytes": stats.temp_size_in_bytes,
        "argument_bytes": stats.argument_size_in_bytes,
        "output_bytes": stats.output_size_in_bytes,
        "all_gathers": hlo.count("all-gather"),
        "all_reduces": hlo.count("all-reduce"),
    }
    print("per-device compiled memory:", memory)
    (out / "memory.json").write_text(json.dumps(memory))
    np.savez(out / "results.npz", **results)


# --------------------------------------------------------------------------------------
# the tests (this process)
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    pytest.importorskip("flax")
    out = tmp_path_factory.mktemp("sharded")
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }  # fmt: skip
    proc = subprocess.run(
        [sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(proc.stdout)
    results = dict(np.load(out / "results.npz"))
    results["memory"] = json.loads((out / "memory.json").read_text())
    return results


def reference(e, w, labels, bias=None, weights=None):
    from test_large_vocab import torch_reference

    return torch_reference(
        e,
        w,
        labels,
        bias=bias,
        ignore_class=IGNORE,
        label_smoothing=OPTIONS["label_smoothing"],
        z_loss=OPTIONS["z_loss"],
        cap=OPTIONS["logit_soft_cap"],
        weights=weights,
    )


def mean_reference(inputs, bias=None, w=None):
    """The reference of the (masked) mean loss and its gradients."""
    labels = inputs["labels"]
    keep = (labels != IGNORE).reshape(-1)
    w = inputs["w"] if w is None else w
    losses, grads = reference(inputs["e"], w, labels, bias, keep / keep.sum())
    return losses.reshape(-1)[keep].mean(), grads


def test_data_and_vocab_parallel_matches_reference(sharded):
    from test_large_vocab import assert_close

    inputs = make_inputs()
    value, grads = mean_reference(inputs, bias=inputs["b"])
    np.testing.assert_allclose(sharded["data_model"], value, rtol=1e-5)
    for key, ref in zip("ewb", grads):
        assert_close(sharded[f"data_model/d{key}"], ref, 1e-5)


def test_eight_way_vocab_parallel_class_matches_reference(sharded):
    from test_large_vocab import assert_close

    inputs = make_inputs()
    value, grads = mean_reference(inputs)
    np.testing.assert_allclose(sharded["model8"], value, rtol=1e-5)
    for key, ref in zip("ew", grads):
        assert_close(sharded[f"model8/d{key}"], ref, 1e-5)


@pytest.mark.parametrize("name", ["log_probs", "kl", "kl_reverse", "jsd"])
def test_linear_head_family_vocab_parallel_matches_one_device(sharded, name):
    from test_large_vocab import assert_close

    np.testing.assert_allclose(sharded[f"head_{name}"], sharded[f"head_{name}_ref"], rtol=1e-5)
    for key in "ew":
        assert_close(sharded[f"head_{name}/d{key}"], sharded[f"head_{name}_ref/d{key}"], 1e-5)


def test_linear_kl_class_vocab_parallel_matches_one_device(sharded):
    np.testing.assert_allclose(sharded["head_kl_class"], sharded["head_kl_ref"], rtol=1e-5)


@pytest.mark.parametrize("api", ["linen", "nnx"])
def test_flax_partitioned_kernels(sharded, api):
    assert sharded[f"{api}_kernel_spec"] == "P(None, 'model')"
    value, _ = mean_reference(make_inputs(), w=sharded[f"{api}_kernel"])
    np.testing.assert_allclose(sharded[api], value, rtol=1e-5)


def test_per_device_memory_holds_no_full_classifier_or_logits(sharded):
    memory = sharded["memory"]
    n, d, v = MEMORY_SHAPE
    full_logits = n * v * 4
    full_classifier = d * v * 4
    # Each device holds its quarter of the classifier and half of the tokens ...
    assert memory["argument_bytes"] < full_classifier / 4 + n * (d + 1) * 4
    # ... and its scratch memory (a few chunks) is far below one gathered classifier (or even
    # its own shard of it) and the logits.
    assert memory["temp_bytes"] < full_classifier / 4
    assert memory["temp_bytes"] < full_logits / 16
    assert memory["all_gathers"] == 0  # only reductions cross devices
    assert memory["all_reduces"] > 0


if __name__ == "__main__":
    sharded_runs(Path(sys.argv[1]))
