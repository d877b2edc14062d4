"""Every loss gives the same value and gradient when its inputs are batch-sharded on 8 devices.

JAX fixes its device count when it starts, so the sharded runs happen in one subprocess,
``tests/_sharded_worker.py``, started with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(one JAX start-up for the whole catalogue). The worker compares, for every catalogue loss,
option combination, reduction and weighting, ``jax.jit(value_and_grad)`` on unsharded inputs
with the same on inputs placed with ``NamedSharding(Mesh(devices, ("batch",)), P("batch"))``
and on a ``("data", "model") = (4, 2)`` mesh, checks that gradients come back batch-sharded and
that reductions are global, and prints a JSON summary that the tests here read.

The worker's two reference helpers are checked here in-process: its float64 NumPy reduction
against Keras's own ``reduce_weighted_values``, and its comparison against a known mismatch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _sharded_worker import BATCH, MESHES, SUMMARY_PREFIX, mismatch, numpy_reduction
from catalogue import available_entries, exported_loss_classes

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
WORKER_TIMEOUT_S = 600


def run_worker() -> dict:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=8".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, str(TESTS / "_sharded_worker.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WORKER_TIMEOUT_S,
    )
    assert proc.returncode == 0, f"worker exited with {proc.returncode}:\n{proc.stderr[-6000:]}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert lines, f"worker printed no summary:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len(SUMMARY_PREFIX) :])


@pytest.fixture(scope="module")
def summary() -> dict:
    return run_worker()


def describe(records: list[dict]) -> str:
    return "\n".join(
        f"  {r['loss']}[{r['options']}] on {r['mesh']}, {r['case']}: {r.get('problems', r.get('reason'))}"
        for r in records
    )


# --------------------------------------------------------------------------------------
# the sharded runs
# --------------------------------------------------------------------------------------
def test_worker_sees_eight_devices(summary):
    assert summary["device_count"] == 8


def test_every_loss_class_is_covered_on_both_meshes(summary):
    available = [entry.name for entry in available_entries()]
    assert summary["losses"] == available
    # A new class without a catalogue entry would silently escape the sharded checks.
    assert set(exported_loss_classes()) <= set(available)
    meshes = {(loss, mesh) for loss, _, mesh in summary["configurations"]}
    missing = {(loss, mesh) for loss in available for mesh in MESHES} - meshes
    assert not missing, f"losses not run on a mesh: {sorted(missing)}"


def test_sharded_value_and_gradient_match_unsharded(summary, record_property):
    record_property("sharded_cases", summary["cases"])
    record_property("sharded_checks", summary["checks"])
    print(
        f"\n{summary['cases']} sharded cases, {summary['checks']} checks over "
        f"{len(summary['losses'])} losses in {summary['seconds']} s; "
        f"{len(summary['expected_failures'])} expected failures; slowest {summary['slowest']}"
    )
    assert summary["cases"] >= 4 * len(summary["losses"])
    assert not summary["failures"], (
        f"{len(summary['failures'])} of {summary['cases']} sharded cases failed:\n"
        + describe(summary["failures"])
    )


def test_no_expected_failure_passes_unnoticed(summary):
    assert not summary["unexpected_passes"], (
        "these cases are marked expected-failing in tests/_sharded_worker.py but now pass; "
        "remove them from EXPECTED_FAILURES:\n" + describe(summary["unexpected_passes"])
    )


def test_a_per_shard_mean_would_be_caught(summary):
    # The control: shard_map's per-shard weighted mean, averaged, differs from the global one.
    assert summary["per_shard_mean_caught"]


# --------------------------------------------------------------------------------------
# the worker's references, in-process
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["sum", "sum_over_batch_size", "mean_with_sample_weight"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("shape", [(BATCH,), (BATCH, 3)])
def test_numpy_reduction_matches_keras(keras, reduction, weighted, masked, shape):
    from keras.src.losses.loss import reduce_weighted_values as keras_reduce

    rng = np.random.default_rng(len(shape) + 2 * weighted + 4 * masked)
    losses = rng.uniform(0.0, 3.0, size=shape).astype(np.float32)
    weight = rng.uniform(0.0, 2.0, size=BATCH).astype(np.float32) if weighted else None
    mask = rng.uniform(size=shape) < 0.7 if masked else None
    # Keras wants the per-sample weight of (batch, 3) losses as (batch, 1); we accept (batch,) too.
    keras_weight = weight.reshape((BATCH,) + (1,) * (len(shape) - 1)) if weighted else None
    expected = keras_reduce(losses, sample_weight=keras_weight, mask=mask, reduction=reduction)

    # The worker reduces the unreduced output, which already holds weight * mask * loss.
    unreduced = losses.astype(np.float64)
    if weighted:
        unreduced = unreduced * keras_weight
    if masked:
        unreduced = unreduced * mask
    actual = numpy_reduction(reduction, unreduced, weight, mask)
    np.testing.assert_allclose(actual, np.asarray(expected), rtol=1e-6)


def test_mismatch_flags_differences_above_tolerance():
    expected = np.array([1.0, -2.0, 0.5])
    assert mismatch(expected * (1 + 1e-6), expected) is None
    assert "max |diff|" in mismatch(expected + np.array([0.0, 1e-3, 0.0]), expected)
    assert mismatch(expected[:2], expected).startswith("shape")
    assert mismatch(np.array([1.0, np.nan, 0.5]), expected) == "finite entries differ"
    # The absolute part scales with the array's largest entry: 1e-4 off on a scale of 100 is fine.
    assert mismatch(np.array([100.0, 1e-4]), np.array([100.0, 0.0])) is None
    assert mismatch(np.array([1.0, 1e-4]), np.array([1.0, 0.0])) is not None
