"""A tiny causal LM distilled from a bigger teacher, then tuned with DPO, all without logits.

Three stages on a synthetic language (sequences of a fixed random Markov chain over 64 words):

1. **Teacher**: a 64-wide causal transformer block learns the language with
   ``lj.LinearCrossEntropy`` (next-token cross-entropy from hidden states and head weights).
2. **Distillation**: a 32-wide student learns the teacher's next-token distributions with
   ``lj.linear_kl_divergence`` (``KL(teacher || student)`` per token from both models' hidden
   states and heads: neither logit matrix is formed).
3. **DPO**: synthetic preference pairs share a prompt; the chosen completion uses only the
   "good" lower half of the vocabulary, the rejected one only the upper half. The policy (a
   copy of the student) is tuned with ``lj.DPO`` against the frozen student as reference, on
   per-sequence log-probs summed from ``lj.linear_log_probs`` over the completion tokens.

Figures (``curves.png``) and ``metrics.json`` go to ``--out`` (default
``demo_output/lm_distill_dpo/``). Progress: a tqdm bar on a terminal, else a line every few
seconds. About a minute on 2 CPU cores; ``--quick`` runs a few steps of each stage (a smoke
test, seconds).

Run: ``python examples/lm_distill_dpo.py [--quick] [--out DIR] [--seed 0]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from tqdm import tqdm

import losses_jax as lj

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

VOCAB = 64
SEQ_LEN = 16  # model inputs; sequences hold SEQ_LEN + 1 tokens
PROMPT_LEN = 6  # DPO: the first PROMPT_LEN tokens are the prompt, the rest the completion
GOOD = VOCAB // 2  # tokens below GOOD are the "good" half of the vocabulary
TEACHER_WIDTH, STUDENT_WIDTH = 64, 32


@dataclasses.dataclass(frozen=True)
class Settings:
    teacher_steps: int = 250
    distill_steps: int = 200
    dpo_steps: int = 60
    batch: int = 32
    pairs: int = 32
    beta: float = 0.1


QUICK = Settings(teacher_steps=8, distill_steps=8, dpo_steps=8, batch=8, pairs=8)


# --------------------------------------------------------------------------------------
# data: a random Markov chain, and preference pairs restricted to either half of it
# --------------------------------------------------------------------------------------
def make_chain(rng: np.random.Generator) -> np.ndarray:
    """A ``(VOCAB, VOCAB)`` transition matrix with a few likely successors per word."""
    logits = 3.0 * rng.normal(size=(VOCAB, VOCAB))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def entropy_rate(chain: np.ndarray) -> float:
    """The language's entropy per token in nats: the best cross-entropy a model can reach."""
    stationary = np.full(VOCAB, 1.0 / VOCAB)
    for _ in range(200):
        stationary = stationary @ chain
    return float(-np.sum(stationary[:, None] * chain * np.log(chain)))


def sample_next(rng, chain, current, allowed=None) -> np.ndarray:
    """One successor per row of ``current``, optionally only among ``allowed`` words."""
    probs = chain[current]
    if allowed is not None:
        probs = probs * allowed
        probs = probs / probs.sum(axis=1, keepdims=True)
    cumulative = np.cumsum(probs, axis=1)
    draws = rng.uniform(size=(len(current), 1)) * cumulative[:, -1:]
    return np.minimum((draws > cumulative).sum(axis=1), VOCAB - 1)


def sample_sequences(rng, chain, count, prefix=None, allowed=None) -> np.ndarray:
    """``(count, SEQ_LEN + 1)`` token sequences (continuing ``prefix`` when given)."""
    seqs = np.zeros((count, SEQ_LEN + 1), np.int32)
    start = 0 if prefix is None else prefix.shape[1]
    if prefix is None:
        seqs[:, 0] = rng.integers(0, VOCAB, size=count)
        start = 1
    else:
        seqs[:, :start] = prefix
    for t in range(start, SEQ_LEN + 1):
        seqs[:, t] = sample_next(rng, chain, seqs[:, t - 1], allowed)
    return seqs


def preference_pairs(rng, chain, count) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rejected) sequences sharing a prompt; completions from either half."""
    prompts = sample_sequences(rng, chain, count)[:, :PROMPT_LEN]
    good = np.arange(VOCAB) < GOOD
    chosen = sample_sequences(rng, chain, count, prompts, good)
    rejected = sample_sequences(rng, chain, count, prompts, ~good)
    return chosen, rejected


# --------------------------------------------------------------------------------------
# model: embeddings, one causal attention block, an MLP, and a linear head (kernel, bias)
# --------------------------------------------------------------------------------------
def init_params(key: jax.Array, width: int) -> dict:
    keys = jax.random.split(key, 7)

    def dense(k, fan_in, fan_out):
        return jax.random.normal(k, (fan_in, fan_out)) / np.sqrt(fan_in)

    return {
        "tokens": 0.1 * jax.random.normal(keys[0], (VOCAB, width)),
        "positions": 0.1 * jax.random.normal(keys[1], (SEQ_LEN, width)),
        "qkv": dense(keys[2], width, 3 * width),
        "attn_out": dense(keys[3], width, width),
        "mlp_in": dense(keys[4], width, 4 * width),
        "mlp_out": dense(keys[5], 4 * width, width),
        "head": {"kernel": 0.1 * dense(keys[6], width, VOCAB), "bias": jnp.zeros((VOCAB,))},
    }


def layer_norm(x: jax.Array) -> jax.Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(jnp.var(x, axis=-1, keepdims=True) + 1e-5)


def hidden_states(params: dict, inputs: jax.Array) -> jax.Array:
    """Final hidden states ``(batch, SEQ_LEN, width)``: what the head would multiply."""
    width = params["tokens"].shape[1]
    x = params["tokens"][inputs] + params["positions"]
    q, k, v = jnp.split(layer_norm(x) @ params["qkv"], 3, axis=-1)
    scores = jnp.einsum("btd,bsd->bts", q, k) / np.sqrt(width)
    causal = jnp.tril(jnp.ones((SEQ_LEN, SEQ_LEN), bool))
    attention = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
    x = x + jnp.einsum("bts,bsd->btd", attention, v) @ params["attn_out"]
    x = x + jax.nn.gelu(layer_norm(x) @ params["mlp_in"]) @ params["mlp_out"]
    return layer_norm(x)


def split(tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(inputs, next-token labels) of ``(batch, SEQ_LEN + 1)`` sequences."""
    return tokens[:, :-1], tokens[:, 1:]


# --------------------------------------------------------------------------------------
# the three losses
# --------------------------------------------------------------------------------------
CROSS_ENTROPY = lj.LinearCrossEntropy()
#: Completion positions: label t + 1 >= PROMPT_LEN is a completion token.
COMPLETION = np.arange(SEQ_LEN) + 1 >= PROMPT_LEN


def teacher_loss(params: dict, tokens: jax.Array) -> jax.Array:
    inputs, labels = split(tokens)
    head = params["head"]
    return CROSS_ENTROPY(
        labels, hidden_states(params, inputs), classifier=head["kernel"], bias=head["bias"]
    )


def distillation_loss(student: dict, teacher: dict, tokens: jax.Array) -> jax.Array:
    """Mean per-token ``KL(teacher || student)`` from both heads, without logits."""
    inputs, _ = split(tokens)
    kl = lj.linear_kl_divergence(
        hidden_states(student, inputs),
        student["head"]["kernel"],
        hidden_states(teacher, inputs),
        teacher["head"]["kernel"],
        student_bias=student["head"]["bias"],
        teacher_bias=teacher["head"]["bias"],
    )
    return jnp.mean(kl)


def sequence_log_probs(params: dict, tokens: jax.Array) -> jax.Array:
    """``log pi(completion | prompt)``: per-token log-probs summed over the completion."""
    inputs, labels = split(tokens)
    head = params["head"]
    per_token = lj.linear_log_probs(
        hidden_states(params, inputs), head["kernel"], labels, bias=head["bias"]
    )
    assert isinstance(per_token, jax.Array)  # no entropy asked for: one array
    return jnp.sum(jnp.where(COMPLETION, per_token, 0.0), axis=-1)


def pair_log_probs(params: dict, chosen: jax.Array, rejected: jax.Array) -> jax.Array:
    """``(pairs, 2)``: the (chosen, rejected) layout of ``lj.DPO``."""
    return jnp.stack([sequence_log_probs(params, chosen), sequence_log_probs(params, rejected)], -1)


def dpo_loss(policy: dict, reference_pairs: jax.Array, chosen, rejected, loss) -> jax.Array:
    return loss(reference_pairs, pair_log_probs(policy, chosen, rejected))


# --------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------
@jax.jit
def good_mass(params: dict, tokens: jax.Array) -> jax.Array:
    """Mean probability the model gives the good half at completion positions (uses logits:
    64 words)."""
    inputs, _ = split(tokens)
    logits = hidden_states(params, inputs) @ params["head"]["kernel"] + params["head"]["bias"]
    mass = jnp.sum(jax.nn.softmax(logits, axis=-1)[..., :GOOD], axis=-1)
    return jnp.sum(jnp.where(COMPLETION, mass, 0.0)) / (COMPLETION.sum() * tokens.shape[0])


# --------------------------------------------------------------------------------------
# training with progress
# --------------------------------------------------------------------------------------
class Progress:
    """A tqdm bar on a terminal; otherwise one line every ``every_s`` seconds (and the last)."""

    def __init__(self, total: int, desc: str, every_s: float = 5.0, verbose: bool = True):
        self.total, self.desc, self.every_s, self.verbose = total, desc, every_s, verbose
        interactive = verbose and sys.stdout.isatty()
        self.bar = tqdm(total=total, desc=desc, leave=False) if interactive else None
        self.step, self.last = 0, time.perf_counter()

    def update(self, **metrics: float) -> None:
        self.step += 1
        text = {k: f"{v:.4f}" for k, v in metrics.items()}
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(text)
        elif self.verbose and (
            time.perf_counter() - self.last >= self.every_s or self.step == self.total
        ):
            shown = "  ".join(f"{k} {v}" for k, v in text.items())
            print(f"  {self.desc}: step {self.step}/{self.total}  {shown}", flush=True)
            self.last = time.perf_counter()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def adam_step(loss_fn, learning_rate: float):
    optimizer = optax.adam(learning_rate)

    @jax.jit
    def step(params, opt_state, *args):
        value, grads = jax.value_and_grad(loss_fn)(params, *args)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return optimizer, step


def train(params, loss_fn, batches, steps, desc, learning_rate, verbose, *fixed) -> tuple:
    """``steps`` Adam steps of ``loss_fn(params, *fixed, *next(batches))``; params, losses."""
    optimizer, step = adam_step(loss_fn, learning_rate)
    opt_state = optimizer.init(params)
    progress = Progress(steps, desc, verbose=verbose)
    losses = []
    for _ in range(steps):
        params, opt_state, value = step(params, opt_state, *fixed, *next(batches))
        losses.append(float(value))
        progress.update(loss=losses[-1])
    progress.close()
    return params, losses


def main(argv=None) -> dict:
    args = parse_args(argv)
    settings = QUICK if args.quick else Settings()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    verbose = not args.silent
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    chain = make_chain(rng)
    key_teacher, key_student = jax.random.split(jax.random.key(args.seed))

    def sequences():
        while True:
            yield (jnp.asarray(sample_sequences(rng, chain, settings.batch)),)

    # 1. the teacher learns the language
    if verbose:
        print(f"1. teacher (width {TEACHER_WIDTH}): next-token cross-entropy, no logits")
    teacher, teacher_losses = train(
        init_params(key_teacher, TEACHER_WIDTH), teacher_loss, sequences(),
        settings.teacher_steps, "teacher", 3e-3, verbose,
    )  # fmt: skip

    # 2. the student learns the teacher's distributions
    if verbose:
        print(f"2. student (width {STUDENT_WIDTH}): KL(teacher || student), no logits")

    def distill(student, teacher, tokens):
        return distillation_loss(student, teacher, tokens)

    student, distill_losses = train(
        init_params(key_student, STUDENT_WIDTH), distill, sequences(),
        settings.distill_steps, "distillation", 3e-3, verbose, teacher,
    )  # fmt: skip

    # 3. DPO: the policy starts as the student; the frozen student is the reference
    if verbose:
        print(f"3. DPO (beta {settings.beta}): good-half completions preferred")
    loss = lj.DPO(beta=settings.beta)
    reference_fn = jax.jit(pair_log_probs)
    # Held-out pairs of the training batch size: one compilation serves both.
    eval_chosen, eval_rejected = (
        jnp.asarray(x) for x in preference_pairs(rng, chain, settings.pairs)
    )

    def pairs():
        while True:
            chosen, rejected = (
                jnp.asarray(x) for x in preference_pairs(rng, chain, settings.pairs)
            )
            yield reference_fn(student, chosen, rejected), chosen, rejected

    def preference(policy, reference_pairs, chosen, rejected):
        return dpo_loss(policy, reference_pairs, chosen, rejected, loss)

    mass_before = float(good_mass(student, eval_chosen))
    policy, dpo_losses = train(
        student, preference, pairs(), settings.dpo_steps, "DPO", 1e-3, verbose
    )
    mass_after = float(good_mass(policy, eval_chosen))
    eval_reference = reference_fn(student, eval_chosen, eval_rejected)
    eval_policy = reference_fn(policy, eval_chosen, eval_rejected)
    margins = (eval_policy[:, 0] - eval_reference[:, 0]) - (
        eval_policy[:, 1] - eval_reference[:, 1]
    )
    metrics = {
        "seed": args.seed,
        "quick": args.quick,
        "entropy_rate": entropy_rate(chain),
        "teacher_loss": teacher_losses,
        "distillation_kl": distill_losses,
        "dpo_loss": dpo_losses,
        "good_mass_before_dpo": mass_before,
        "good_mass_after_dpo": mass_after,
        "eval_reward_accuracy": float(jnp.mean(margins > 0)),
        "eval_dpo_loss": float(loss(eval_reference, eval_policy)),
        "seconds": time.perf_counter() - t0,
    }
    plot(metrics, out / "curves.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if verbose:
        print(
            f"teacher CE {teacher_losses[-1]:.3f} (uniform: {np.log(VOCAB):.3f}); distillation KL "
            f"{distill_losses[0]:.3f} -> {distill_losses[-1]:.3f}; DPO loss {dpo_losses[0]:.3f} "
            f"-> {dpo_losses[-1]:.3f}\nprobability of the good half at completion positions: "
            f"{mass_before:.3f} before DPO, {mass_after:.3f} after; held-out reward accuracy "
            f"{metrics['eval_reward_accuracy']:.3f}; {metrics['seconds']:.0f} s; figures in {out}"
        )
    return metrics


def moving_average(values: list[float], window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot(metrics: dict, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = [
        ("teacher_loss", "1. teacher: next-token cross-entropy", "cross-entropy (nats)"),
        ("distillation_kl", "2. student: KL(teacher || student)", "KL per token (nats)"),
        ("dpo_loss", "3. policy: DPO loss", "DPO loss (nats)"),
    ]
    for ax, (key, title, ylabel) in zip(axes, panels):
        values = metrics[key]
        window = max(1, len(values) // 40)
        ax.plot(np.arange(window, len(values) + 1), moving_average(values, window))
        ax.set(title=title, xlabel="training step", ylabel=ylabel)
    axes[0].axhline(metrics["entropy_rate"], color="gray", linestyle=":", label="entropy rate")
    axes[0].legend()
    axes[2].axhline(np.log(2.0), color="gray", linestyle=":", label="log 2 (start)")
    axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed for data and initialisation")
    parser.add_argument("--out", default="demo_output/lm_distill_dpo", help="folder for outputs")
    parser.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    parser.add_argument("--silent", action="store_true", help="no progress or summary output")
    return parser.parse_args(argv)


if __name__ == "__main__":
    main()
