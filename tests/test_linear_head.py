"""losses_jax.losses.linear_head (and LinearCrossEntropy's fused reduction) against references.

Values against the float64 NumPy references of ``tests/references.py`` (logits formed
explicitly); gradients against float64 torch autograd on the same explicit formulas (and
``torch.nn.functional.kl_div`` / ``linear_cross_entropy`` where PyTorch has the loss). Each
parity grid runs its cases inside one test (few compilations; small shapes).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import references as ref

import losses_jax as lj

torch = pytest.importorskip("torch")
F = torch.nn.functional
IGNORE = -100
N, D, DT, V = 23, 8, 5, 301
CHUNK = 8  # tokens per block: several blocks and a remainder


@pytest.fixture(autouse=True)
def _float64():
    with jax.enable_x64(True):
        yield


def problem(seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, V, size=N)
    labels[rng.uniform(size=N) < 0.25] = IGNORE
    return {
        "es": rng.normal(size=(N, D)),
        "ws": rng.normal(size=(D, V)) * 0.5,
        "bs": rng.normal(size=V),
        "et": rng.normal(size=(N, DT)),
        "wt": rng.normal(size=(DT, V)) * 0.5,
        "bt": rng.normal(size=V),
        "labels": labels,
        "weights": rng.uniform(size=N),
    }


def torch_head_log_probs(e, w, b, temperature):
    return torch.log_softmax((e @ w + b) / temperature, dim=-1)


def torch_values(kind, t, labels, opts):
    """Per-token values of ``kind`` from torch float64 tensors ``t`` (es, ws, bs, et, wt, bt)."""
    temperature = opts.get("temperature", 1.0)
    log_s = torch_head_log_probs(t["es"], t["ws"], t["bs"], temperature)
    if kind == "log_probs":
        safe = torch.tensor(np.where(labels == IGNORE, 0, labels))
        picked = log_s.gather(1, safe[:, None])[:, 0] * torch.tensor(labels != IGNORE)
        entropy = -(log_s.exp() * log_s).sum(-1)
        return picked + 0.5 * entropy
    log_t = torch_head_log_probs(t["et"], t["wt"], t["bt"], temperature)
    if kind == "kl" or opts.get("beta") in (0.0, 1.0):
        reverse = opts.get("direction") == "reverse" or opts.get("beta") == 1.0
        p, q = (log_s, log_t) if reverse else (log_t, log_s)
        return F.kl_div(q, p, reduction="none", log_target=True).sum(-1)  # KL(p || q)
    beta = opts["beta"]
    log_m = torch.logaddexp(log_t + np.log(beta), log_s + np.log1p(-beta))
    return beta * (log_t.exp() * (log_t - log_m)).sum(-1) + (1 - beta) * (
        log_s.exp() * (log_s - log_m)
    ).sum(-1)


def our_values(kind, x, labels, opts):
    if kind == "log_probs":
        log_p, entropy = lj.linear_log_probs(
            x["es"], x["ws"], labels, bias=x["bs"], with_entropy=True, token_chunk_size=CHUNK,
            temperature=opts.get("temperature", 1.0),
        )  # fmt: skip
        return jnp.where(labels == IGNORE, 0.0, log_p) + 0.5 * entropy
    fn = lj.linear_kl_divergence if kind == "kl" else lj.linear_jsd
    return fn(
        x["es"], x["ws"], x["et"], x["wt"], student_bias=x["bs"], teacher_bias=x["bt"],
        token_chunk_size=CHUNK, teacher_gradient=True, **opts,
    )  # fmt: skip


CASES = [
    ("log_probs", {}),
    ("log_probs", {"temperature": 1.7}),
    ("kl", {}),
    ("kl", {"temperature": 2.0}),
    ("kl", {"direction": "reverse", "temperature": 0.8}),
    ("jsd", {"beta": 0.5}),
    ("jsd", {"beta": 0.1, "temperature": 2.0}),
    ("jsd", {"beta": 0.0}),
    ("jsd", {"beta": 1.0}),
]
KEYS = ("es", "ws", "bs", "et", "wt", "bt")


def test_values_match_float64_references():
    p = problem()
    x = {k: jnp.asarray(p[k]) for k in KEYS}
    for kind, opts in CASES:
        ours = np.asarray(our_values(kind, x, jnp.asarray(p["labels"]), opts))
        args = (p["et"], p["es"], p["ws"], p["wt"], p["bs"], p["bt"])
        if kind == "log_probs":
            picked, entropy = ref.linear_log_probs(
                p["es"], p["ws"], p["labels"], p["bs"], opts.get("temperature", 1.0)
            )
            expected = np.where(p["labels"] == IGNORE, 0.0, picked) + 0.5 * entropy
        elif kind == "kl":
            expected = ref.linear_kl_divergence(*args, **opts)
        else:
            expected = ref.linear_jsd(*args, **opts)
        np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12, err_msg=f"{kind} {opts}")


def test_gradients_match_torch_in_both_modes():
    """Reverse mode (every head, teacher included) and forward mode against torch float64."""
    p = problem(1)
    x = {k: jnp.asarray(p[k]) for k in KEYS}
    labels, weights = jnp.asarray(p["labels"]), jnp.asarray(p["weights"])
    tangent = {k: jnp.asarray(np.random.default_rng(2).normal(size=p[k].shape)) for k in KEYS}
    for kind, opts in [CASES[i] for i in (1, 3, 4, 6, 8)]:

        def total(x, kind=kind, opts=opts):
            return jnp.sum(weights * our_values(kind, x, labels, opts))

        grads = jax.grad(total)(x)
        _, jvp = jax.jvp(total, (x,), (tangent,))
        t = {k: torch.tensor(p[k], requires_grad=True) for k in KEYS}
        values = torch_values(kind, t, p["labels"], opts)
        (values * torch.tensor(p["weights"])).sum().backward()
        for k in KEYS:
            expected = np.zeros(p[k].shape) if t[k].grad is None else t[k].grad.numpy()
            np.testing.assert_allclose(grads[k], expected, rtol=1e-9, atol=1e-11,
                                       err_msg=f"{kind} {opts} d{k}")  # fmt: skip
        expected_jvp = sum(float(np.sum(t[k].grad.numpy() * tangent[k])) for k in KEYS
                           if t[k].grad is not None)  # fmt: skip
        np.testing.assert_allclose(float(jvp), expected_jvp, rtol=1e-9, err_msg=f"{kind} {opts}")


def test_classes_fused_reduction_matches_the_function():
    """Every reduction, sample weights, ignore_class via labels=, traced options; value,
    gradients (student, options, sample weights) and jvp of the fused class."""
    p = problem(3)
    x = {k: jnp.asarray(p[k]) for k in KEYS}
    labels = jnp.asarray(p["labels"]).reshape(1, N)
    sw = jnp.asarray(p["weights"]).reshape(1, N)
    cases = [
        (lj.LinearKLDivergence, lj.linear_kl_divergence, {"direction": "reverse"}, "temperature"),
        (lj.LinearJSD, lj.linear_jsd, {"temperature": 1.5}, "beta"),
    ]
    for cls, fn, opts, traced in cases:
        for reduction in ("sum_over_batch_size", "mean_with_sample_weight"):
            loss = cls(ignore_class=IGNORE, reduction=reduction, dtype="float64", **opts)

            def fused(es, ws, option, sw, loss=loss, traced=traced):
                built = type(loss)(**{**loss.get_config(), traced: option})
                return built(x["et"][None], es, sw, classifier=ws, teacher_classifier=x["wt"],
                             teacher_bias=x["bt"], labels=labels)  # fmt: skip

            def plain(es, ws, option, sw, fn=fn, reduction=reduction, traced=traced, opts=opts):
                values = fn(es, ws, x["et"][None], x["wt"], teacher_bias=x["bt"],
                            **{**opts, traced: option})  # fmt: skip
                return lj.reduce_weighted_values(
                    values, sw, labels != IGNORE, reduction=reduction, dtype="float64"
                )

            args = (x["es"][None], x["ws"], jnp.asarray(0.4), sw)
            both = [jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2, 3))) for f in (fused, plain)]
            (v1, g1), (v2, g2) = (f(*args) for f in both)
            np.testing.assert_allclose(v1, v2, rtol=1e-10)
            for a, b in zip(g1, g2):
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
            tangents = tuple(jnp.ones_like(a) for a in args)
            j1, j2 = (jax.jvp(f, args, tangents)[1] for f in (fused, plain))
            np.testing.assert_allclose(j1, j2, rtol=1e-9)


def test_linear_cross_entropy_fused_class_matches_torch():
    """The fused reduction of LinearCrossEntropy against torch's linear_cross_entropy and the
    float64 torch path with every option; the filter's effect."""
    p = problem(4)
    e, w, b = (jnp.asarray(p[k]) for k in ("es", "ws", "bs"))
    labels = jnp.asarray(p["labels"])
    opts = {"ignore_class": IGNORE, "label_smoothing": 0.1}
    loss = lj.LinearCrossEntropy(token_chunk_size=CHUNK, dtype="float64", **opts)
    value, grads = jax.value_and_grad(
        lambda e, w, b: loss(labels, e, classifier=w, bias=b), argnums=(0, 1, 2)
    )(e, w, b)
    t = [torch.tensor(p[k], requires_grad=True) for k in ("es", "ws", "bs")]
    expected = F.linear_cross_entropy(
        t[0], t[1].T, torch.tensor(p["labels"]), linear_bias=t[2], ignore_index=IGNORE,
        label_smoothing=0.1, options=torch.nn.LinearCrossEntropyOptions(),
    )  # fmt: skip
    expected.backward()
    np.testing.assert_allclose(value, expected.item(), rtol=1e-10)
    for ours, theirs in zip(grads, t):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)

    def filtered(threshold):
        lf = lj.LinearCrossEntropy(token_chunk_size=CHUNK, gradient_filter=threshold,
                                   dtype="float64", **opts)  # fmt: skip
        return jax.value_and_grad(lambda e, w: lf(labels, e, classifier=w), argnums=(0, 1))(e, w)

    (v0, g0), (v1, g1) = filtered(0.0), filtered(1.5)
    (vx, gx) = jax.value_and_grad(lambda e, w: loss(labels, e, classifier=w), argnums=(0, 1))(e, w)
    np.testing.assert_allclose(v0, v1, rtol=1e-12)  # the loss never changes
    np.testing.assert_allclose(g0[1], gx[1], rtol=1e-9, atol=1e-12)  # 0: exact
    np.testing.assert_allclose(g0[0], g1[0], rtol=1e-12)  # embeddings' gradient: exact
    assert float(jnp.max(jnp.abs(g1[1]))) == 0.0  # every |G| <= 1.5 |w|: all chunks skipped


def test_jsd_tends_to_the_kls_at_the_ends_of_beta():
    p = problem(5)
    x = {k: jnp.asarray(p[k]) for k in KEYS}
    forward = lj.linear_kl_divergence(x["es"], x["ws"], x["et"], x["wt"])
    reverse = lj.linear_kl_divergence(x["es"], x["ws"], x["et"], x["wt"], direction="reverse")
    for beta, kl, scale in [(1e-6, forward, 1e-6), (1 - 1e-6, reverse, 1e-6)]:
        jsd = lj.linear_jsd(x["es"], x["ws"], x["et"], x["wt"], beta=beta)
        np.testing.assert_allclose(jsd / scale, kl, rtol=1e-4)
    for beta, kl in [(0.0, forward), (1.0, reverse)]:
        np.testing.assert_allclose(
            lj.linear_jsd(x["es"], x["ws"], x["et"], x["wt"], beta=beta), kl, rtol=1e-12
        )


def test_teacher_gets_no_gradient_unless_asked():
    p = problem(6)
    x = {k: jnp.asarray(p[k]) for k in KEYS}
    loss = lj.LinearKLDivergence()

    def total(et, wt, **kw):
        return lj.LinearKLDivergence(**kw)(et, x["es"], classifier=x["ws"], teacher_classifier=wt)

    g = jax.grad(total, argnums=(0, 1))(x["et"], x["wt"])
    assert all(float(jnp.max(jnp.abs(a))) == 0.0 for a in g)
    g = jax.grad(partial_teacher := lambda et, wt: total(et, wt, teacher_gradient=True),
                 argnums=(0, 1))(x["et"], x["wt"])  # fmt: skip
    assert all(float(jnp.max(jnp.abs(a))) > 0.0 for a in g) and partial_teacher is not None
    assert loss.teacher_gradient is False


@pytest.mark.slow
def test_second_derivatives_of_the_fused_classes():
    p = problem(7)
    es = jnp.asarray(p["es"][:5])
    x = {k: jnp.asarray(p[k][:5]) if k in ("et",) else jnp.asarray(p[k]) for k in KEYS}
    for loss in (lj.LinearJSD(beta=0.3, dtype="float64"), lj.LinearCrossEntropy(dtype="float64")):

        def fused(es, loss=loss):
            if isinstance(loss, lj.LinearCrossEntropy):
                return loss(jnp.arange(5), es, classifier=x["ws"])
            return loss(x["et"], es, classifier=x["ws"], teacher_classifier=x["wt"])

        def plain(es, loss=loss):
            if isinstance(loss, lj.LinearCrossEntropy):
                return jnp.mean(lj.linear_cross_entropy(jnp.arange(5), es, x["ws"]))
            return jnp.mean(lj.linear_jsd(es, x["ws"], x["et"], x["wt"], beta=0.3))

        np.testing.assert_allclose(jax.hessian(fused)(es), jax.hessian(plain)(es), atol=1e-12)
        np.testing.assert_allclose(jax.jacfwd(jax.grad(fused))(es), jax.hessian(plain)(es),
                                   atol=1e-12)  # fmt: skip


def test_compiled_memory_far_below_the_naive_path():
    n, d, v = 2048, 512, 32768  # the shape (compiled only, never run)
    s = jax.ShapeDtypeStruct
    e, w = s((n, d), jnp.float32), s((d, v), jnp.float32)

    def temp(fn):
        compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(e, w).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    def naive(es, ws):
        log_s = jax.nn.log_softmax(es @ ws)
        log_t = jax.lax.stop_gradient(jax.nn.log_softmax((es * 0.5) @ (ws * 2.0)))
        return jnp.mean(jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1))

    def fused(es, ws):
        return lj.LinearKLDivergence()(es * 0.5, es, classifier=ws, teacher_classifier=ws * 2.0)

    def per_token(es, ws):
        return jnp.mean(lj.linear_kl_divergence(es, ws, es * 0.5, ws * 2.0))

    assert temp(fused) <= temp(naive) / 8
    assert temp(per_token) <= temp(naive) / 8


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x: lj.linear_kl_divergence(x["es"], x["ws"], x["et"], x["wt"], direction="up"),
         ValueError, "direction"),
        (lambda x: lj.linear_jsd(x["es"], x["ws"], x["et"], x["wt"], beta=1.5), ValueError,
         "beta"),
        (lambda x: lj.linear_kl_divergence(x["es"], x["ws"], x["et"][:3], x["wt"]), ValueError,
         "teacher_embeddings"),
        (lambda x: lj.linear_kl_divergence(x["es"], x["ws"], x["et"], x["wt"][:, :7]),
         ValueError, "vocabularies"),
        (lambda x: lj.linear_log_probs(x["es"], x["ws"], jnp.zeros(3, jnp.int32)), ValueError,
         "labels"),
        (lambda x: lj.linear_log_probs(x["es"], x["ws"], jnp.zeros(N, jnp.int32),
                                       temperature=0.0), ValueError, "temperature"),
        (lambda x: lj.LinearKLDivergence()(x["et"], x["es"], classifier=x["ws"]), TypeError,
         "teacher_classifier"),
    ],
)  # fmt: skip
def test_bad_input_raises(call, error, match):
    p = problem()
    with pytest.raises(error, match=match):
        call({k: jnp.asarray(p[k]) for k in KEYS})
