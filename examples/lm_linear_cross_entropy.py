"""A tiny causal language model trained with ``LinearCrossEntropy`` and optax.

The model (token and position embeddings, one causal self-attention block, an MLP) ends in
hidden states ``(batch, seq, D)``; the output layer's kernel ``(D, V)`` and bias never meet
them in a matmul of ours: ``lj.LinearCrossEntropy`` takes the next-token labels, the hidden
states, the kernel and the bias and returns the mean loss (and, under ``jax.grad``, its
gradients) without forming the ``(batch * seq, V)`` logits.

The data are synthetic: every sequence is one of a few fixed random "phrases" over an
4096-word vocabulary, cut to a random length and padded. Padding positions carry the label
``-100`` and ``ignore_class=-100`` drops them from the mean, as in PyTorch/Hugging Face. After
the first token the rest of a phrase is predictable, so the loss falls from about
``log(4096) = 8.3`` to well under 1.

The script also compares the compiled temporary memory of one training step with a step
using the naive loss (logits, then optax's cross-entropy), and checks that both losses agree.

Run: ``python examples/lm_linear_cross_entropy.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

import losses_jax as lj

VOCAB = 4096
WIDTH = 64
SEQ_LEN = 32
BATCH = 16
PHRASES = 16
PAD_ID = 0  # input token at padded positions
IGNORE = -100  # label at padded positions (and nowhere else)
Z_LOSS = 1e-4
# Blocks of 128 tokens: at this small size the default block (as many tokens as fit 2**21
# logits) would hold the whole batch at once.
LOSS = lj.LinearCrossEntropy(ignore_class=IGNORE, z_loss=Z_LOSS, token_chunk_size=128)


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def make_phrases(rng: np.random.Generator) -> np.ndarray:
    """``PHRASES`` fixed token sequences of length ``SEQ_LEN + 1`` (ids 1..VOCAB-1)."""
    return rng.integers(1, VOCAB, size=(PHRASES, SEQ_LEN + 1))


def make_batch(rng: np.random.Generator, phrases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels), both ``(BATCH, SEQ_LEN)``: next-token labels, -100 past the end."""
    seqs = phrases[rng.integers(0, PHRASES, size=BATCH)]
    inputs, labels = seqs[:, :-1].copy(), seqs[:, 1:].copy()
    lengths = rng.integers(SEQ_LEN // 2, SEQ_LEN + 1, size=BATCH)
    padded = np.arange(SEQ_LEN)[None, :] >= lengths[:, None]
    inputs[padded] = PAD_ID
    labels[padded] = IGNORE
    return inputs, labels


# --------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------
def init_params(key: jax.Array) -> dict:
    keys = jax.random.split(key, 7)

    def dense(k, fan_in, fan_out):
        return jax.random.normal(k, (fan_in, fan_out)) / np.sqrt(fan_in)

    return {
        "tokens": 0.02 * jax.random.normal(keys[0], (VOCAB, WIDTH)),
        "positions": 0.02 * jax.random.normal(keys[1], (SEQ_LEN, WIDTH)),
        "qkv": dense(keys[2], WIDTH, 3 * WIDTH),
        "attn_out": dense(keys[3], WIDTH, WIDTH),
        "mlp_in": dense(keys[4], WIDTH, 4 * WIDTH),
        "mlp_out": dense(keys[5], 4 * WIDTH, WIDTH),
        # The output layer, laid out as a flax Dense: kernel (D, V) and bias (V,).
        "head": {"kernel": 0.02 * dense(keys[6], WIDTH, VOCAB), "bias": jnp.zeros((VOCAB,))},
    }


def layer_norm(x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(jnp.var(x, axis=-1, keepdims=True) + 1e-5)


def causal_attention(params: dict, x: jax.Array) -> jax.Array:
    q, k, v = jnp.split(x @ params["qkv"], 3, axis=-1)
    scores = jnp.einsum("btd,bsd->bts", q, k) / np.sqrt(WIDTH)
    causal = jnp.tril(jnp.ones((SEQ_LEN, SEQ_LEN), bool))
    weights = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
    return jnp.einsum("bts,bsd->btd", weights, v) @ params["attn_out"]


def hidden_states(params: dict, inputs: jax.Array) -> jax.Array:
    """The final hidden states ``(batch, seq, D)``: what the output layer would multiply."""
    x = params["tokens"][inputs] + params["positions"]
    x = x + causal_attention(params, layer_norm(x))
    x = x + jax.nn.gelu(layer_norm(x) @ params["mlp_in"]) @ params["mlp_out"]
    return layer_norm(x)


# --------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------
def loss_fn(params: dict, inputs: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean next-token cross-entropy (+ z-loss) over non-padding tokens, without logits."""
    return LOSS(
        labels,
        hidden_states(params, inputs),
        classifier=params["head"]["kernel"],
        bias=params["head"]["bias"],
    )


def naive_loss_fn(params: dict, inputs: jax.Array, labels: jax.Array) -> jax.Array:
    """The same loss through the full logits and optax, for comparison."""
    logits = hidden_states(params, inputs) @ params["head"]["kernel"] + params["head"]["bias"]
    keep = labels != IGNORE
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(keep, labels, 0))
    z = Z_LOSS * jax.nn.logsumexp(logits, axis=-1) ** 2
    return jnp.sum(jnp.where(keep, ce + z, 0.0)) / jnp.sum(keep)


@jax.jit
def evaluate(params: dict, inputs: jax.Array, labels: jax.Array) -> dict:
    """Both losses and the greedy next-token accuracy on non-padding tokens (forms logits)."""
    logits = hidden_states(params, inputs) @ params["head"]["kernel"] + params["head"]["bias"]
    keep = labels != IGNORE
    correct = jnp.sum((jnp.argmax(logits, -1) == labels) & keep)
    return {
        "loss": loss_fn(params, inputs, labels),
        "naive_loss": naive_loss_fn(params, inputs, labels),
        "accuracy": correct / jnp.sum(keep),
    }


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------
def make_train_step(loss, optimizer):
    @jax.jit
    def train_step(params, opt_state, inputs, labels):
        value, grads = jax.value_and_grad(loss)(params, inputs, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return train_step


def compile_step(loss, optimizer, *args):
    """One training step compiled for these shapes, and its scratch memory in MiB."""
    compiled = make_train_step(loss, optimizer).lower(*args).compile()
    return compiled, compiled.memory_analysis().temp_size_in_bytes / 2**20


def main(steps: int = 100, seed: int = 0, verbose: bool = True) -> dict:
    """Trains for ``steps`` steps; returns the losses, evaluation and memory figures."""
    rng = np.random.default_rng(seed)
    phrases = make_phrases(rng)
    params = init_params(jax.random.key(seed))
    optimizer = optax.adamw(1e-2, weight_decay=0.0)
    opt_state = optimizer.init(params)

    batch = make_batch(rng, phrases)
    train_step, temp_mb = compile_step(loss_fn, optimizer, params, opt_state, *batch)
    _, naive_temp_mb = compile_step(naive_loss_fn, optimizer, params, opt_state, *batch)
    if verbose:
        print(f"train-step scratch memory: {temp_mb:.1f} MiB (naive logits: {naive_temp_mb:.1f})")

    losses = []
    for step in range(steps):
        params, opt_state, value = train_step(params, opt_state, *batch)
        losses.append(float(value))
        if verbose and (step % 25 == 0 or step == steps - 1):
            print(f"step {step:4d}  loss {losses[-1]:.4f}")
        batch = make_batch(rng, phrases)

    eval_batch = make_batch(rng, phrases)
    metrics = {k: float(v) for k, v in evaluate(params, *eval_batch).items()}
    if verbose:
        print(
            f"eval loss {metrics['loss']:.4f} (naive path {metrics['naive_loss']:.4f}); "
            f"next-token accuracy {metrics['accuracy']:.3f}"
        )
    return {
        "losses": losses,
        "eval": metrics,
        "temp_mb": temp_mb,
        "naive_temp_mb": naive_temp_mb,
        "params": params,
        "eval_batch": eval_batch,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100)
    main(steps=parser.parse_args().steps)
