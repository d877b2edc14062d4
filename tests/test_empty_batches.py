"""A zero-size batch: every loss returns an empty per-sample result, eagerly and under jit.

Keras returns the per-sample values unreduced when there are none (``reduce_weighted_values``
passes a ``(0,)`` array through, whatever the reduction); every class here does the same, its
gradient is an empty array of ``y_pred``'s shape, and nothing raises or warns about a division
by zero. Dice and Tversky with ``axis=None`` give one value for the whole batch: Keras's 1.0
for an empty one (no overlap), and per-sample weights are refused as for any batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import entry_option_params, rotated_params

REDUCTIONS = ("sum_over_batch_size", "sum", "mean_with_sample_weight", "none")


def _whole_batch(entry, options) -> bool:
    """Whether the loss gives one value for the whole batch (Dice, Tversky: ``axis=None``)."""
    return entry.has_option("axis") and entry.build(options).axis is None


def _empty_inputs(entry, options):
    inputs = entry.inputs(0, (0,), options)
    return inputs.y_true, jnp.asarray(inputs.y_pred), inputs.extra


@pytest.mark.parametrize(
    ("entry", "options", "jit"),
    rotated_params((True, False), ("jit", "eager"), lambda e, o: o is e.options[0]),
)
def test_empty_batch_gives_an_empty_result(entry, options, jit):
    y_true, y_pred, extra = _empty_inputs(entry, options)
    assert y_pred.shape[0] == 0
    for reduction in REDUCTIONS:
        loss = entry.build(options, reduction=reduction)

        def call(y_true, y_pred, loss=loss):
            return loss(y_true, y_pred, **extra)

        value = (jax.jit(call) if jit else call)(y_true, y_pred)
        if _whole_batch(entry, options):
            np.testing.assert_allclose(value, 1.0)  # Keras's value: an empty batch, no overlap
        else:
            assert value.shape == (0,), (reduction, value.shape)
        assert value.dtype == y_pred.dtype

    gradient = jax.grad(lambda p: jnp.sum(entry.build(options)(y_true, p, **extra)))(y_pred)
    assert gradient.shape == y_pred.shape


@pytest.mark.parametrize(("entry", "options"), entry_option_params(lambda e, o: o is e.options[0]))
def test_empty_batch_with_weights(entry, options):
    y_true, y_pred, extra = _empty_inputs(entry, options)
    weights = np.zeros((0,), np.float32)
    loss = entry.build(options)
    if _whole_batch(entry, options):
        with pytest.raises(ValueError, match="sample_weight"):
            loss(y_true, y_pred, sample_weight=weights, **extra)
    else:
        assert loss(y_true, y_pred, sample_weight=weights, **extra).shape == (0,)
