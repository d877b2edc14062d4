"""losses_jax.losses.large_vocab: linear_cross_entropy against a float64 torch naive path.

The reference forms the full logits in float64 with PyTorch, applies the soft cap,
``torch.nn.functional.cross_entropy`` (its ``label_smoothing`` and ``ignore_index`` follow the
same conventions) plus ``z_loss * logsumexp ** 2``, and differentiates with autograd.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losses_jax as lj
from losses_jax.checks import checked
from losses_jax.losses.large_vocab import LinearCrossEntropy, linear_cross_entropy

torch = pytest.importorskip("torch")
F = torch.nn.functional

IGNORE = -100


def torch_reference(e, w, labels, *, bias=None, ignore_class=None, label_smoothing=0.0,
                    z_loss=0.0, cap=None, weights=None):  # fmt: skip
    """float64 per-token losses and the gradients of ``sum(weights * losses)``.

    Returns ``(losses, grads)`` with ``grads = [d/de, d/dw, d/dbias or None]``.
    """
    d = np.shape(e)[-1]
    labels = np.asarray(labels).reshape(-1)
    leaves = [e, w] + ([bias] if bias is not None else [])
    tensors = [torch.tensor(np.asarray(x, np.float64), requires_grad=True) for x in leaves]
    logits = tensors[0].reshape(-1, d) @ tensors[1]
    if bias is not None:
        logits = logits + tensors[2]
    if cap is not None:
        logits = cap * torch.tanh(logits / cap)
    target = torch.tensor(labels, dtype=torch.long)
    keep = torch.ones_like(target, dtype=torch.bool)
    if ignore_class is not None:
        keep = target != ignore_class
    target = torch.where(keep, target, torch.full_like(target, -100))
    losses = F.cross_entropy(logits, target, reduction="none", label_smoothing=label_smoothing)
    losses = losses + z_loss * torch.logsumexp(logits, dim=-1) ** 2 * keep
    weights = np.ones(labels.shape) if weights is None else np.asarray(weights).reshape(-1)
    (losses * torch.tensor(weights, dtype=torch.float64)).sum().backward()
    grads = [t.grad.numpy() for t in tensors] + ([None] if bias is None else [])
    return losses.detach().numpy().reshape(np.shape(e)[:-1]), grads


def assert_close(ours, ref, tol):
    """Max abs error at most ``tol`` times the reference's largest magnitude."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    assert ours.shape == ref.shape
    scale = max(np.max(np.abs(ref)), 1e-30)
    err = np.max(np.abs(ours - ref)) / scale
    assert err <= tol, f"relative error {err:.3g} > {tol}"


def make_problem(rng, n=37, d=16, v=301, scale=1.0, ignore_fraction=0.0):
    e = rng.normal(size=(n, d)).astype(np.float32)
    w = (scale * rng.normal(size=(d, v)) / np.sqrt(d)).astype(np.float32)
    b = rng.normal(size=(v,)).astype(np.float32)
    labels = rng.integers(0, v, size=(n,))
    labels[rng.uniform(size=n) < ignore_fraction] = IGNORE
    return e, w, b, labels


def our_value_and_grads(e, w, labels, bias=None, weights=None, **kwargs):
    """Per-token losses and the grads of sum(weights * losses), through one jitted call."""

    def objective(e, w, b):
        losses = linear_cross_entropy(labels, e, w, bias=b, **kwargs)
        return jnp.sum(losses if weights is None else losses * weights), losses

    grad_fn = jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True))
    (_, losses), grads = grad_fn(e, w, bias)
    return losses, grads


# Small chunks so that every case runs several vocabulary and token chunks plus remainders.
CHUNKS = {"vocab_chunk_size": 64, "token_chunk_size": 16}

CASES = {
    "plain": {},
    "bias": {"bias": True},
    "ignore_class": {"ignore_class": IGNORE},
    "label_smoothing": {"label_smoothing": 0.2},
    "z_loss": {"z_loss": 1e-3},
    "soft_cap": {"cap": 1.5},
    "everything": {"bias": True, "ignore_class": IGNORE, "label_smoothing": 0.1, "z_loss": 1e-2,
                   "cap": 2.0},
}  # fmt: skip


# Every case in small chunks; two with the default chunks (here: one chunk, no loop).
CASE_CHUNKS = [(case, "chunked") for case in CASES] + [
    ("plain", "default"),
    ("everything", "default"),
]


@pytest.mark.parametrize("case,chunks", CASE_CHUNKS)
def test_matches_naive_float64_path(case, chunks, rng):
    opts = dict(CASES[case])
    use_bias, cap = opts.pop("bias", False), opts.pop("cap", None)
    e, w, b, labels = make_problem(rng, scale=3.0, ignore_fraction=0.3)
    if "ignore_class" not in opts:
        labels[labels == IGNORE] = 0
    weights = rng.uniform(0.2, 2.0, size=labels.shape)  # a per-token cotangent that varies
    bias = b if use_bias else None
    extra = CHUNKS if chunks == "chunked" else {}
    losses, grads = our_value_and_grads(
        e, w, labels, bias, weights, logit_soft_cap=cap, **opts, **extra
    )
    ref_losses, ref_grads = torch_reference(e, w, labels, bias=bias, cap=cap, weights=weights,
                                            **opts)  # fmt: skip
    assert losses.dtype == jnp.float32
    assert_close(losses, ref_losses, 2e-6)
    for ours, ref in zip(grads, ref_grads):
        if ref is None:
            assert ours is None
        else:
            assert_close(ours, ref, 2e-5)


@pytest.mark.parametrize(
    "reduction", ["sum_over_batch_size", "sum", "mean", "mean_with_sample_weight", None]
)
def test_leading_dims_weights_and_reductions(reduction, rng):
    batch, seq, d, v = 3, 5, 8, 50
    e = rng.normal(size=(batch, seq, d)).astype(np.float32)
    w = rng.normal(size=(d, v)).astype(np.float32)
    labels = rng.integers(0, v, size=(batch, seq))
    labels[0, 3:] = IGNORE
    sample_weight = np.array([0.5, 1.0, 2.0], np.float32)  # one weight per sequence
    kwargs = {"ignore_class": IGNORE, "label_smoothing": 0.1, "vocab_chunk_size": 16}
    loss = LinearCrossEntropy(reduction=reduction, **kwargs)(labels, e, sample_weight, classifier=w)
    per_token, _ = torch_reference(e, w, labels, ignore_class=IGNORE, label_smoothing=0.1)
    keep = labels != IGNORE
    weighted = per_token * sample_weight[:, None] * keep
    expected = {
        "sum_over_batch_size": weighted.sum() / keep.sum(),
        "mean": weighted.sum() / keep.sum(),
        "sum": weighted.sum(),
        "mean_with_sample_weight": weighted.sum() / (sample_weight[:, None] * keep).sum(),
        None: weighted,
    }[reduction]
    assert loss.shape == np.shape(expected)
    np.testing.assert_allclose(loss, expected, rtol=1e-5, atol=1e-6)


def test_gradient_of_the_mean_with_leading_dims(rng):
    """Ignored tokens leave the divisor, so the mean gradient is the sum's over valid tokens."""
    e = rng.normal(size=(2, 6, 8)).astype(np.float32)
    w = rng.normal(size=(8, 40)).astype(np.float32)
    labels = rng.integers(0, 40, size=(2, 6))
    labels[1, 4:] = IGNORE
    valid = int((labels != IGNORE).sum())
    loss = LinearCrossEntropy(ignore_class=IGNORE)
    grads = jax.grad(lambda e, w: loss(labels, e, classifier=w), argnums=(0, 1))(e, w)
    _, ref = torch_reference(e, w, labels, ignore_class=IGNORE, weights=np.ones(12) / valid)
    assert_close(grads[0], ref[0], 1e-5)
    assert_close(grads[1], ref[1], 1e-5)
    assert not np.any(np.asarray(grads[0])[1, 4:])  # padding gets no gradient


def test_mask_combines_with_ignore_class(rng):
    e, w, _, labels = make_problem(rng, n=12, v=30)
    labels = labels.reshape(3, 4)
    labels[0, 0] = IGNORE
    mask = np.array([True, False, True])  # drop the second sequence
    e = e.reshape(3, 4, -1)
    loss = LinearCrossEntropy(ignore_class=IGNORE)(labels, e, mask=mask, classifier=w)
    per_token, _ = torch_reference(e, w, labels, ignore_class=IGNORE)
    keep = (labels != IGNORE) & mask[:, None]
    np.testing.assert_allclose(loss, (per_token * keep).sum() / keep.sum(), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_accumulates_in_float32(dtype, rng):
    e, w, b, labels = make_problem(rng, n=40, d=32, v=700, scale=2.0)
    e16, w16, b16 = (jnp.asarray(x, dtype) for x in (e, w, b))
    losses, grads = our_value_and_grads(
        e16, w16, labels, b16, label_smoothing=0.1, z_loss=1e-3, vocab_chunk_size=128
    )
    # The reference sees exactly the rounded inputs, in float64.
    rounded = [np.asarray(x, np.float64) for x in (e16, w16, b16)]
    ref_losses, ref_grads = torch_reference(*rounded[:2], labels, bias=rounded[2],
                                            label_smoothing=0.1, z_loss=1e-3)  # fmt: skip
    assert losses.dtype == jnp.float32  # per-token losses keep the float32 accumulation
    assert_close(losses, ref_losses, 1e-5)  # products of half floats are exact in float32
    for ours, ref, x in zip(grads, ref_grads, (e16, w16, b16)):
        assert ours.dtype == x.dtype
        assert_close(ours, ref, 2e-2)


def test_float64_inputs_accumulate_in_float64(rng):
    e, w, b, labels = make_problem(rng, n=9, v=70)
    with jax.enable_x64(True):
        e64, w64, b64 = (jnp.asarray(x, jnp.float64) for x in (e, w, b))
        losses, grads = our_value_and_grads(
            e64, w64, labels, b64, label_smoothing=0.1, vocab_chunk_size=16
        )
    ref_losses, ref_grads = torch_reference(e, w, labels, bias=b, label_smoothing=0.1)
    assert losses.dtype == jnp.float64 and grads[1].dtype == jnp.float64
    assert_close(losses, ref_losses, 1e-12)
    for ours, ref in zip(grads, ref_grads):
        assert_close(ours, ref, 1e-12)


def test_mixed_dtypes_promote(rng):
    e, w, _, labels = make_problem(rng, n=8, v=20)
    grads = jax.grad(lambda e, w: jnp.mean(linear_cross_entropy(labels, e, w)), argnums=(0, 1))(
        jnp.asarray(e, jnp.bfloat16), w
    )
    assert grads[0].dtype == jnp.bfloat16 and grads[1].dtype == jnp.float32


def test_bf16_result_dtype_option(rng):
    e, w, _, labels = make_problem(rng, n=8, v=20)
    loss = LinearCrossEntropy(dtype="bfloat16")
    assert loss(labels, e, classifier=w).dtype == jnp.bfloat16
    assert linear_cross_entropy(labels, e, w).dtype == jnp.float32  # the function: float32+


@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_extreme_logits_are_finite(scale, rng):
    e, w, _, labels = make_problem(rng, n=10, d=4, v=50)
    w = np.clip(w, -1, 1) * np.float32(scale / 10)  # logits up to ~scale
    losses, grads = our_value_and_grads(e, w, labels, vocab_chunk_size=16)
    assert np.all(np.isfinite(losses)) and all(np.all(np.isfinite(g)) for g in grads[:2])
    if scale == 1e4:  # 1e30 is beyond float64's exp too, but the reference is still exact
        ref_losses, ref_grads = torch_reference(e, w, labels)
        assert_close(losses, ref_losses, 1e-6)
        # float32 logits of size 1e4 are off by ~1e-3, which moves the softmax by as much.
        assert_close(grads[0], ref_grads[0], 1e-4)


def test_minus_inf_bias_masks_classes(rng):
    """Classes with -inf logits (e.g. padding of the vocabulary) get probability 0."""
    e, w, b, labels = make_problem(rng, n=20, v=100)
    labels = labels % 60
    b_masked = np.where(np.arange(100) < 60, b, -np.inf).astype(np.float32)
    losses, grads = our_value_and_grads(e, w, labels, b_masked, vocab_chunk_size=32)
    ref_losses, ref_grads = torch_reference(e, w[:, :60], labels, bias=b[:60])
    assert_close(losses, ref_losses, 1e-6)
    assert_close(grads[0], ref_grads[0], 1e-5)
    assert_close(grads[1][:, :60], ref_grads[1], 1e-5)
    assert not np.any(np.asarray(grads[1])[:, 60:]) and not np.any(np.asarray(grads[2])[60:])
    # A soft cap turns -inf into -cap: those classes then count, as in the reference.
    capped, _ = our_value_and_grads(e, w, labels, b_masked, logit_soft_cap=5.0)
    assert np.all(np.isfinite(capped))


def test_sum_with_label_smoothing_and_masked_classes_is_infinite(rng):
    # The smoothed target puts mass on every class, so a class of probability 0 costs +inf.
    e, w, b, labels = make_problem(rng, n=4, v=10)
    b[3] = -np.inf
    loss = linear_cross_entropy(labels % 3, e, w, bias=b, label_smoothing=0.1)
    assert np.all(np.isposinf(loss))


def test_jit_and_value_and_grad_of_the_class(rng):
    e, w, b, labels = make_problem(rng, n=16, v=90)
    loss = LinearCrossEntropy(z_loss=1e-3, logit_soft_cap=3.0, vocab_chunk_size=32)

    @jax.jit
    def step(e, w, b):
        return jax.value_and_grad(
            lambda e, w, b: loss(labels, e, classifier=w, bias=b), argnums=(0, 1, 2)
        )(e, w, b)

    value, grads = step(e, w, b)
    n = labels.size
    ref_losses, ref_grads = torch_reference(e, w, labels, bias=b, z_loss=1e-3, cap=3.0,
                                            weights=np.full(n, 1 / n))  # fmt: skip
    np.testing.assert_allclose(value, ref_losses.mean(), rtol=1e-5)
    for ours, ref in zip(grads, ref_grads):
        assert_close(ours, ref, 1e-5)


def test_class_call_per_token_and_mask(rng):
    e, w, _, labels = make_problem(rng, n=6, v=12)
    labels[2] = IGNORE
    loss = LinearCrossEntropy(ignore_class=IGNORE, reduction="none")
    per_token = loss(labels, e, classifier=w)
    assert per_token.shape == (6,) and float(per_token[2]) == 0.0
    np.testing.assert_allclose(loss.call(labels, e, classifier=w), per_token)
    assert loss.loss_mask(labels, e, per_token).tolist() == (labels != IGNORE).tolist()
    assert LinearCrossEntropy().loss_mask(labels, e, per_token) is None
    # Labels with a trailing 1: the ignore mask takes the shape of the per-token losses.
    np.testing.assert_allclose(loss(labels[:, None], e, classifier=w), per_token)
    weight = np.arange(6, dtype=np.float32)
    np.testing.assert_allclose(loss(labels, e, weight, classifier=w), per_token * weight, rtol=1e-6)


def test_class_config_round_trip_and_hash():
    loss = LinearCrossEntropy(
        ignore_class=-1, label_smoothing=0.1, z_loss=1e-4, logit_soft_cap=30.0,
        vocab_axis=["model"], token_axis="data", vocab_chunk_size=512, reduction="sum",
    )  # fmt: skip
    config = loss.get_config()
    assert config["vocab_axis"] == ("model",) and config["name"] == "linear_cross_entropy"
    assert loss.vocab_axis == ("model",)  # stored as a tuple, so the loss hashes
    assert LinearCrossEntropy.from_config(config) == loss
    restored = lj.deserialize(json.loads(json.dumps(lj.serialize(loss))))
    assert restored == loss and hash(restored) == hash(loss)
    assert LinearCrossEntropy(z_loss=1e-3) != loss
    with pytest.raises(AttributeError):
        loss.reduction = "sum"
    with pytest.raises(ValueError, match="reduction"):
        LinearCrossEntropy(reduction="avg")


def test_registry_and_package_exports():
    assert lj.get("linear_cross_entropy") is linear_cross_entropy
    assert isinstance(lj.get("LinearCrossEntropy"), LinearCrossEntropy)


def test_label_options_trailing_one_and_float_labels(rng):
    e, w, _, labels = make_problem(rng, n=5, v=9)
    base = linear_cross_entropy(labels, e, w)
    assert base.shape == labels.shape
    np.testing.assert_allclose(linear_cross_entropy(labels[:, None], e, w), base)
    np.testing.assert_allclose(linear_cross_entropy(labels.astype(np.float32), e, w), base)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"w_shape": (7, 9)}, ValueError, r"classifier.*\(D, V\).*\(5, 8\).*\(7, 9\)"),
        ({"w_shape": (8,)}, ValueError, "classifier"),
        ({"bias_shape": (8,)}, ValueError, r"bias.*\(9,\).*\(8,\)"),
        ({"label_shape": (4,)}, ValueError, r"labels.*\(5,\).*\(4,\)"),
        ({"label_smoothing": 1.5}, ValueError, "label_smoothing"),
        ({"z_loss": -1.0}, ValueError, "z_loss"),
        ({"logit_soft_cap": 0.0}, ValueError, "logit_soft_cap"),
        ({"vocab_chunk_size": 0}, ValueError, "vocab_chunk_size"),
        ({"token_chunk_size": 2.5}, TypeError, "token_chunk_size"),
        ({"ignore_class": 1.5}, TypeError, "ignore_class"),
        ({"int_embeddings": True}, TypeError, "embeddings"),
        ({"string_classifier": True}, TypeError, "classifier.*<U1"),
        ({"vocab_axis": 3}, TypeError, "vocab_axis"),
        ({"vocab_axis": "model"}, ValueError, "mesh"),
    ],
)
def test_bad_input_raises_at_trace_time(kwargs, error, match):
    kwargs = dict(kwargs)
    e = np.zeros((5, 8), np.int32 if kwargs.pop("int_embeddings", False) else np.float32)
    w = np.zeros(kwargs.pop("w_shape", (8, 9)), np.float32)
    if kwargs.pop("string_classifier", False):
        w = np.full(w.shape, "x")
    bias = np.zeros(kwargs.pop("bias_shape", (9,)), np.float32)
    labels = np.zeros(kwargs.pop("label_shape", (5,)), np.int32)

    def call(e, w, bias, labels):
        return linear_cross_entropy(labels, e, w, bias=bias, **kwargs)

    with pytest.raises(error, match=match):
        call(e, w, bias, labels)
    with pytest.raises(error, match=match):  # w is closed over: strings cannot be traced
        jax.jit(lambda e, bias, labels: call(e, w, bias, labels))(e, bias, labels)


@pytest.mark.parametrize(
    ("option", "value"), [("label_smoothing", 0.1), ("z_loss", 1e-2), ("logit_soft_cap", 2.0)]
)
def test_traced_options_give_the_static_values(rng, option, value):
    # Their derivatives are checked in tests/test_hyperparameters.py.
    e, w, _, labels = make_problem(rng, n=4, v=6)
    static = linear_cross_entropy(labels, e, w, **{option: value})
    traced = jax.jit(lambda x: linear_cross_entropy(labels, e, w, **{option: x}))(value)
    np.testing.assert_allclose(traced, static, rtol=1e-6)


def test_out_of_range_labels_are_reported_by_checked(rng):
    e, w, _, labels = make_problem(rng, n=4, v=6)
    labels[1] = 6
    err, _ = checked(linear_cross_entropy)(labels, e, w)
    assert "labels" in err.get()
    labels[1] = IGNORE
    err, _ = checked(partial_ignore)(labels, e, w)
    assert err.get() is None


def partial_ignore(labels, e, w):
    return linear_cross_entropy(labels, e, w, ignore_class=IGNORE)


def compiled_temp_bytes(fn, *args):
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def test_never_materialises_the_logits():
    """XLA's temporary memory for value_and_grad stays a small fraction of the naive path's."""
    n, d, v = 1024, 32, 32768
    e = jnp.zeros((n, d))
    w = jnp.zeros((d, v))
    labels = jnp.zeros((n,), jnp.int32)

    def naive(e, w):
        logits = e @ w
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - logits[jnp.arange(n), labels])

    def ours(e, w):
        return jnp.mean(linear_cross_entropy(labels, e, w))

    logits_bytes = n * v * 4
    naive_bytes = compiled_temp_bytes(jax.value_and_grad(naive, argnums=(0, 1)), e, w)
    our_bytes = compiled_temp_bytes(jax.value_and_grad(ours, argnums=(0, 1)), e, w)
    assert naive_bytes >= logits_bytes  # the reference does hold (N, V) floats
    assert our_bytes <= naive_bytes / 8
    assert our_bytes < logits_bytes / 2
