"""Per-example gradients of a losses_jax loss with ``jax.vmap(jax.grad(...))``.

The per-sample loss functions (``lj.sparse_categorical_crossentropy`` and friends) are plain
JAX functions, so the usual transformations compose with them. This snippet trains a softmax
regression on scikit-learn's digits in which 5% of the training labels were flipped, then:

1. computes every example's gradient in one ``vmap`` and checks that their mean is the
   gradient of the batch-mean loss;
2. ranks examples by gradient norm: the flipped labels float to the top (a cheap way to find
   mislabelled data);
3. takes one DP-SGD style step: clip each example's gradient to norm ``C``, then average.

Run: ``python examples/per_example_grad.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.datasets import load_digits

import losses_jax as lj

NUM_CLASSES = 10


def logits_of(params: dict, images: jax.Array) -> jax.Array:
    return images @ params["w"] + params["b"]


def example_loss(params: dict, image: jax.Array, label: jax.Array) -> jax.Array:
    """Cross-entropy of one example (a batch of one, unreduced, then its single entry)."""
    logits = logits_of(params, image[None])
    return lj.sparse_categorical_crossentropy(label[None], logits, from_logits=True)[0]


def mean_loss(params: dict, images: jax.Array, labels: jax.Array) -> jax.Array:
    return lj.SparseCategoricalCrossentropy(from_logits=True)(labels, logits_of(params, images))


# One gradient per example: grad over params, vmapped over (image, label).
per_example_grads = jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))


def gradient_norms(grads: dict) -> jax.Array:
    """The L2 norm of each example's full gradient (all parameters together)."""
    squares = [jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1) for g in jax.tree.leaves(grads)]
    return jnp.sqrt(sum(squares))


def clipped_mean(grads: dict, max_norm: float) -> dict:
    """DP-SGD's aggregation (without noise): scale each example to norm <= max_norm, average."""
    scale = jnp.minimum(1.0, max_norm / jnp.maximum(gradient_norms(grads), 1e-12))
    return jax.tree.map(lambda g: jnp.mean(g * scale.reshape(-1, *([1] * (g.ndim - 1))), 0), grads)


def noisy_digits(seed: int, flip_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Digits (pixels scaled to [0, 1]) with a fraction of labels moved to another class."""
    digits = load_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int32)
    rng = np.random.default_rng(seed)
    flipped = rng.choice(len(labels), size=int(flip_fraction * len(labels)), replace=False)
    labels[flipped] = (
        labels[flipped] + rng.integers(1, NUM_CLASSES, size=len(flipped))
    ) % NUM_CLASSES
    return images, labels, flipped


def train(images, labels, steps: int = 300) -> dict:
    params = {"w": jnp.zeros((images.shape[1], NUM_CLASSES)), "b": jnp.zeros(NUM_CLASSES)}
    optimizer = optax.adam(0.05)
    state = optimizer.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(mean_loss)(params, images, labels)
        updates, state = optimizer.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        params, state = step(params, state)
    return params


def main(seed: int = 0) -> dict:
    images, labels, flipped = noisy_digits(seed, flip_fraction=0.05)
    params = train(images, labels)
    grads = per_example_grads(params, images, labels)
    print(f"per-example gradients: w {grads['w'].shape}, b {grads['b'].shape}")

    batch_grad = jax.grad(mean_loss)(params, images, labels)
    mean_of_examples = jax.tree.map(lambda g: g.mean(0), grads)
    max_gap = max(
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(jax.tree.leaves(mean_of_examples), jax.tree.leaves(batch_grad))
    )
    print(f"mean of per-example gradients vs batch gradient: max |difference| {max_gap:.2e}")

    norms = np.asarray(gradient_norms(grads))
    top = np.argsort(-norms)[: len(flipped)]
    precision = len(np.intersect1d(top, flipped)) / len(flipped)
    print(
        f"{len(flipped)} flipped labels; {precision:.0%} of the {len(flipped)} largest "
        f"gradient norms belong to them (chance: {len(flipped) / len(labels):.0%})"
    )

    max_norm = float(np.median(norms))
    clipped = clipped_mean(grads, max_norm)
    clipped_norm = float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(clipped))))
    print(f"DP-SGD step with clip norm {max_norm:.3f}: aggregated gradient norm {clipped_norm:.3f}")
    return {
        "max_gap": max_gap,
        "precision": precision,
        "clip_norm": max_norm,
        "clipped_norm": clipped_norm,
    }


if __name__ == "__main__":
    main()
