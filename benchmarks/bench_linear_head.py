"""The linear-head losses (log-probs, KL, JSD distillation) against the naive logits path.

Every case is a jitted ``value_and_grad`` of the mean loss with respect to the student's
embeddings and classifier (the teacher is a constant), at N tokens, D = 512, V words. The
naive path forms both ``(N, V)`` logit matrices and applies the same formulas with
``jax.nn.log_softmax``. Rows: the per-token function (reverse mode recomputes each block's
logits) and the class (fused reduction: gradients in the forward pass), with ``vs_naive``
the median over interleaved rounds of the time ratio and ``temp_vs_naive`` the ratio of XLA's
compiled temporary memory.

Run: ``python -m benchmarks.bench_linear_head [--tiny]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import losses_jax as lj
from benchmarks._harness import bench_main, row, temp_memory_mb
from benchmarks.bench_linear_ce import make_inputs, paired_ms, relative_error

BENCH = "linear_head"
MAIN_SHAPE = (2048, 512, 32768)
TINY_SHAPE = (128, 32, 1024)


def naive(kind):
    def loss(e, w, et, wt, labels):
        log_s = jax.nn.log_softmax(e @ w)
        if kind == "log_probs":
            return -jnp.mean(jnp.take_along_axis(log_s, labels[:, None], axis=1))
        log_t = jax.lax.stop_gradient(jax.nn.log_softmax(et @ wt))
        if kind == "kl":
            return jnp.mean(jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1))
        log_m = jnp.logaddexp(log_t, log_s) + jnp.log(0.5)
        kl_t = jnp.sum(jnp.exp(log_t) * (log_t - log_m), axis=-1)
        kl_s = jnp.sum(jnp.exp(log_s) * (log_s - log_m), axis=-1)
        return jnp.mean(0.5 * kl_t + 0.5 * kl_s)

    return loss


def ours(kind, fused: bool):
    def loss(e, w, et, wt, labels):
        if kind == "log_probs":
            log_p = lj.linear_log_probs(e, w, labels)
            assert isinstance(log_p, jax.Array)
            return -jnp.mean(log_p)
        if fused:
            cls = lj.LinearKLDivergence() if kind == "kl" else lj.LinearJSD(beta=0.5)
            return cls(et, e, classifier=w, teacher_classifier=wt)
        fn = lj.linear_kl_divergence if kind == "kl" else lj.linear_jsd
        return jnp.mean(fn(e, w, et, wt))

    return loss


def case_rows(shape, rounds: int) -> list[dict]:
    n, d, v = shape
    e, w, labels = (jnp.asarray(x) for x in make_inputs(n, d, v))
    et, wt, _ = (jnp.asarray(x) for x in make_inputs(n, d, v, seed=1))
    args = (e, w, et, wt, labels)
    rows = []
    for kind in ("log_probs", "kl", "jsd"):
        fns = {"naive": naive(kind), "losses_jax function": ours(kind, fused=False)}
        if kind != "log_probs":
            fns["losses_jax class (fused)"] = ours(kind, fused=True)
        grads = {k: jax.value_and_grad(f, argnums=(0, 1)) for k, f in fns.items()}
        temp = {k: temp_memory_mb(g, *args) for k, g in grads.items()}
        jitted = {k: jax.jit(g) for k, g in grads.items()}
        ms = paired_ms(jitted, args, rounds, "naive")
        reference = jitted["naive"](*args)
        for impl, (t, ratio) in ms.items():
            extra = {"vs_naive": ratio, "temp_mb": temp[impl],
                     "temp_vs_naive": temp[impl] / temp["naive"]}  # fmt: skip
            if impl != "naive":
                extra["rel_err"] = relative_error(jitted[impl](*args), reference)
            rows.append(row(BENCH, f"{kind} N={n} D={d} V={v} f32", impl, t, **extra))
    return rows


def run(tiny: bool = False) -> list[dict]:
    return case_rows(TINY_SHAPE, 3) if tiny else case_rows(MAIN_SHAPE, 3)


if __name__ == "__main__":
    bench_main(run, __doc__)
