"""examples/lm_linear_cross_entropy.py trains, and its loss is the cross-entropy it claims.

The reference loss is a float64 NumPy formula on the model's hidden states (the model is the
example's; the loss is recomputed here from scratch).
"""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("optax")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "lm_linear_cross_entropy.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("example_lm_linear_cross_entropy", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trained(example):
    return example.main(steps=60, verbose=False)


def numpy_loss(hidden, kernel, bias, labels, ignore, z_loss):
    """float64 mean over non-ignored tokens of CE(softmax(h W + b), label) + z * lse^2."""
    hidden, kernel, bias = (np.asarray(x, np.float64) for x in (hidden, kernel, bias))
    logits = hidden.reshape(-1, hidden.shape[-1]) @ kernel + bias
    labels = np.asarray(labels).reshape(-1)
    keep = labels != ignore
    logits, labels = logits[keep], labels[keep]
    peak = logits.max(axis=1, keepdims=True)
    lse = (peak + np.log(np.exp(logits - peak).sum(axis=1, keepdims=True)))[:, 0]
    losses = lse - logits[np.arange(len(labels)), labels] + z_loss * lse**2
    return losses.mean()


def test_training_lowers_the_loss(example, trained):
    losses = trained["losses"]
    # Small initial logits: the first loss is that of a uniform guess, log(V) (+ z-loss).
    log_v = math.log(example.VOCAB)
    assert abs(losses[0] - (log_v + example.Z_LOSS * log_v**2)) < 0.05
    assert np.mean(losses[-10:]) < 0.3 * log_v
    assert trained["eval"]["accuracy"] > 0.5


def test_example_loss_is_the_masked_cross_entropy(example, trained):
    params = trained["params"]
    inputs, labels = trained["eval_batch"]
    assert np.any(labels == example.IGNORE)  # the batch does contain padding
    hidden = example.hidden_states(params, inputs)
    expected = numpy_loss(hidden, params["head"]["kernel"], params["head"]["bias"], labels,
                          example.IGNORE, example.Z_LOSS)  # fmt: skip
    np.testing.assert_allclose(trained["eval"]["loss"], expected, rtol=1e-4)
    np.testing.assert_allclose(trained["eval"]["naive_loss"], expected, rtol=1e-4)


def test_training_step_needs_less_scratch_memory(trained):
    assert trained["temp_mb"] < trained["naive_temp_mb"]
