"""Two towers trained with CLIP's and SigLIP's losses on 8 (simulated) devices.

Each scikit-learn digit image (8 x 8 pixels) is paired with a second, noisy view of itself
(Gaussian noise and a random quarter of its pixels blanked). Two small MLP towers embed the
views; :func:`losses_jax.clip_contrastive` and :func:`losses_jax.siglip_sigmoid`, with a
learnable temperature (and SigLIP's learnable bias), pull the pairs together across the whole
global batch, which is split over a mesh of 8 devices: each device keeps its rows and the loss
streams the other devices' embeddings around the ring (``axis_name="batch"``), never forming
the global similarity matrix on one device.

It prints progress, then writes to ``--out`` (default ``demo_output/contrastive/``):

* ``retrieval.png``: top-1 retrieval accuracy (image -> its noisy view among all held-out
  views) against the training step, for both losses;
* ``embeddings.png``: the held-out image embeddings of each model projected on their first
  two principal components, coloured by digit.

Run: ``python examples/contrastive.py [--quick] [--out DIR]`` (8 CPU devices are simulated
when the script starts JAX itself; under a minute on 2 cores, ``--quick`` a few seconds).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if "jax" not in sys.modules:  # simulate 8 devices when this script starts JAX itself
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    ).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from sklearn.datasets import load_digits

import losses_jax as lj

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file backend)

EMBED = 32
HIDDEN = 128
ROWS_PER_DEVICE = 32


def paired_views(seed: int = 0):
    """Digit images (N, 64) in [0, 1], their noisy second views, labels; a train/test split."""
    pixels, labels = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    images = (np.asarray(pixels) / 16.0).astype(np.float32)
    noisy = images + rng.normal(0.0, 0.3, size=images.shape)
    noisy = np.where(rng.uniform(size=images.shape) < 0.25, 0.0, noisy).astype(np.float32)
    order = rng.permutation(len(images))
    test, train = order[:400], order[400:]
    return (images[train], noisy[train]), (images[test], noisy[test], np.asarray(labels)[test])


def init_tower(key, width_in: int):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (width_in, HIDDEN)) / np.sqrt(width_in),
        "b1": jnp.zeros(HIDDEN),
        "w2": jax.random.normal(k2, (HIDDEN, EMBED)) / np.sqrt(HIDDEN),
    }


def tower(params, x):
    return jax.nn.gelu(x @ params["w1"] + params["b1"]) @ params["w2"]


def init_params(key, loss: str):
    ka, kb = jax.random.split(key)
    params = {"a": init_tower(ka, 64), "b": init_tower(kb, 64), "log_t": jnp.log(0.1)}
    if loss == "siglip":
        params["bias"] = jnp.float32(-5.0)
    return params


def loss_fn(params, images, views, loss: str, mesh):
    """The global batch's mean loss; the batch stays split over the mesh's "batch" axis."""
    x, y = tower(params["a"], images), tower(params["b"], views)
    temperature = jnp.exp(params["log_t"])  # learnable
    sharding = {"axis_name": "batch", "mesh": mesh}
    if loss == "clip":
        losses = lj.clip_contrastive(x, y, temperature=temperature, **sharding)
    else:
        losses = lj.siglip_sigmoid(x, y, temperature=temperature, bias=params["bias"], **sharding)
    return jnp.mean(losses)


def retrieval_accuracy(params, images, views) -> float:
    """Top-1: how often an image's nearest view (cosine) is its own."""
    x, y = tower(params["a"], images), tower(params["b"], views)
    x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    y = y / jnp.linalg.norm(y, axis=1, keepdims=True)
    return float(jnp.mean(jnp.argmax(x @ y.T, axis=1) == jnp.arange(len(x))))


def train(loss: str, data, steps: int, mesh, seed: int = 0, every: int = 25):
    (train_a, train_b), (test_a, test_b, _) = data
    batch = ROWS_PER_DEVICE * mesh.size
    optimizer = optax.adam(3e-3)
    params = init_params(jax.random.key(seed), loss)
    state = optimizer.init(params)
    rows = NamedSharding(mesh, P("batch"))

    @jax.jit
    def step(params, state, images, views):
        value, grads = jax.value_and_grad(loss_fn)(params, images, views, loss, mesh)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    rng = np.random.default_rng(seed)
    curve = [(0, retrieval_accuracy(params, test_a, test_b))]
    for index in range(1, steps + 1):
        picked = rng.choice(len(train_a), size=batch, replace=False)
        images, views = (jax.device_put(v[picked], rows) for v in (train_a, train_b))
        params, state, value = step(params, state, images, views)
        if index % every == 0 or index == steps:
            accuracy = retrieval_accuracy(params, test_a, test_b)
            curve.append((index, accuracy))
            extra = f" bias {float(params['bias']):6.2f}" if loss == "siglip" else ""
            print(
                f"[{loss:6s}] step {index:4d}  loss {float(value):.4f}  temperature "
                f"{float(jnp.exp(params['log_t'])):.4f}{extra}  top-1 retrieval {accuracy:.3f}",
                flush=True,
            )
    return params, curve


def principal_plane(embeddings: np.ndarray) -> np.ndarray:
    centred = embeddings - embeddings.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def save_pictures(out: Path, curves: dict, models: dict, data) -> dict[str, Path]:
    _, (test_a, test_b, labels) = data
    out.mkdir(parents=True, exist_ok=True)
    figure, axis = plt.subplots(figsize=(6, 4))
    for loss, curve in curves.items():
        steps, accuracy = zip(*curve)
        axis.plot(steps, accuracy, marker="o", label=loss)
    axis.axhline(1 / len(test_a), color="grey", linestyle=":", label="chance")
    axis.set_xlabel("training step")
    axis.set_ylabel("top-1 retrieval accuracy (held-out pairs)")
    axis.set_title("Image -> noisy view retrieval")
    axis.legend()
    figure.tight_layout()
    retrieval = out / "retrieval.png"
    figure.savefig(retrieval, dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4.5))
    points = None
    for axis, (loss, params) in zip(np.atleast_1d(axes), models.items()):
        plane = principal_plane(np.asarray(tower(params["a"], test_a)))
        points = axis.scatter(plane[:, 0], plane[:, 1], c=labels, cmap="tab10", s=10)
        axis.set_xlabel("principal component 1")
        axis.set_ylabel("principal component 2")
        axis.set_title(f"held-out image embeddings ({loss})")
    assert points is not None
    figure.colorbar(points, ax=axes, label="digit")
    embeddings = out / "embeddings.png"
    figure.savefig(embeddings, dpi=100)
    plt.close(figure)
    return {"retrieval": retrieval, "embeddings": embeddings}


def main(quick: bool = False, out: str | Path = "demo_output/contrastive", seed: int = 0):
    start = time.perf_counter()
    devices = jax.device_count()
    mesh = jax.make_mesh((devices,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    print(f"{devices} devices; global batch {ROWS_PER_DEVICE * devices} split over them")
    data = paired_views(seed)
    steps, every = (20, 10) if quick else (300, 50)
    curves, models = {}, {}
    for loss in ("siglip", "clip"):
        models[loss], curves[loss] = train(loss, data, steps, mesh, seed, every)
    files = save_pictures(Path(out), curves, models, data)
    print(
        f"wrote {', '.join(str(f) for f in files.values())} in {time.perf_counter() - start:.0f} s"
    )
    return {"curves": curves, "files": files, "devices": devices}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps (a smoke test)")
    parser.add_argument("--out", default="demo_output/contrastive", help="folder for the PNGs")
    args = parser.parse_args()
    main(quick=args.quick, out=args.out)
