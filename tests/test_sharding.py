"""Every loss gives the same value and gradient when its inputs are batch-sharded on 8 devices.

JAX fixes its device count when it starts, so the sharded runs happen in one subprocess,
``tests/_sharded_worker.py``, started with ``XLA_FLAGS=--xla_force_host_platform_device_count=8``
(one JAX start-up for the whole catalogue). The worker compares, for every catalogue loss,
option combination, reduction and weighting, ``jax.jit(value_and_grad)`` on unsharded inputs
with the same on inputs placed with ``NamedSharding(Mesh(devices, ("batch",)), P("batch"))``
on the same mesh with explicit axes and on a ``("data", "model") = (4, 2)`` mesh, checks that
gradients come back batch-sharded and that reductions are global, and prints a JSON summary
that the tests here read. The default tier runs each loss on one of the three meshes with every
reduction and one of the two weightings, both rotating along the catalogue; the slow tier every
loss with every reduction and weighting on every mesh, and every option set. A second run
starts two worker processes of 4 devices each under ``jax.distributed`` (multi-host on one
machine), each feeding only its half of the global batch.

Each subprocess run is one test (its checks are sequential assertions), so that ``pytest -n 2``
never starts the same run on two xdist workers. The worker's two reference helpers are checked
here in-process: its float64 NumPy reduction against Keras's own ``reduce_weighted_values``,
and its comparison against known mismatches.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _sharded_worker import (
    ALL_CASES,
    BATCH,
    DISTINCT_REDUCTIONS,
    MESHES,
    MULTI_HOST_LOSSES,
    SUMMARY_PREFIX,
    local_entries,
    mismatch,
    numpy_reduction,
)
from catalogue import BY_NAME, available_entries, exported_loss_classes, option_id

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
WORKER = TESTS / "_sharded_worker.py"
WORKER_TIMEOUT_S = 900
PROCESSES = 2


def worker_env(devices: int) -> dict:
    env = dict(os.environ)
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def parse_summary(returncode: int, stdout: str, stderr: str) -> dict:
    assert returncode == 0, f"worker exited with {returncode}:\n{stderr[-6000:]}"
    lines = [line for line in stdout.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert lines, f"worker printed no summary:\n{stdout[-3000:]}\n{stderr[-3000:]}"
    return json.loads(lines[-1][len(SUMMARY_PREFIX) :])


def run_sharded_worker(scope: str, parts: int = 2) -> dict:
    """The catalogue split over ``parts`` concurrent 8-device workers; their summaries merged."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "--part", str(part), str(parts), scope],
            cwd=ROOT,
            env=worker_env(devices=8),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for part in range(parts)
    ]
    try:
        outputs = [proc.communicate(timeout=WORKER_TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    summaries = [
        parse_summary(proc.returncode, out, err) for proc, (out, err) in zip(procs, outputs)
    ]
    merged = dict(summaries[0])
    for key in ("cases", "checks"):
        merged[key] = sum(s[key] for s in summaries)
    for key in ("failures", "configurations"):
        merged[key] = [item for s in summaries for item in s[key]]
    order = [entry.name for entry in available_entries()] + [e.name for e in local_entries()]
    for key in ("losses", "adapters"):
        names = {name for s in summaries for name in s[key]}
        merged[key] = [name for name in order if name in names]
    merged["per_shard_mean_caught"] = all(s["per_shard_mean_caught"] for s in summaries)
    merged["seconds"] = max(s["seconds"] for s in summaries)
    merged["slowest"] = {k: v for s in summaries for k, v in s["slowest"].items()}
    return merged


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("localhost", 0))
        return sock.getsockname()[1]


def run_multi_host_workers(logs: Path) -> list[dict]:
    """One summary per process of a 2-process x 4-device ``jax.distributed`` run."""
    port = free_port()
    procs, files = [], []
    try:
        for process_id in range(PROCESSES):
            out, err = logs / f"{process_id}.out", logs / f"{process_id}.err"
            files.append((out, err))
            with open(out, "w") as stdout, open(err, "w") as stderr:
                command = [sys.executable, str(WORKER), "--process", str(process_id)]
                procs.append(
                    subprocess.Popen(
                        [*command, str(PROCESSES), str(port)],
                        cwd=ROOT,
                        env=worker_env(devices=4),
                        stdout=stdout,
                        stderr=stderr,
                    )
                )
        returncodes = [proc.wait(timeout=WORKER_TIMEOUT_S) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return [
        parse_summary(code, out.read_text(), err.read_text())
        for code, (out, err) in zip(returncodes, files)
    ]


def describe(records: list[dict]) -> str:
    return "\n".join(
        f"  {r['loss']}[{r['options']}] on {r['mesh']}, {r['case']}: "
        f"{r.get('problems', r.get('reason'))}"
        for r in records
    )


# --------------------------------------------------------------------------------------
# the sharded runs
# --------------------------------------------------------------------------------------
def assert_no_failures(summary: dict) -> None:
    assert not summary["failures"], (
        f"{len(summary['failures'])} of {summary['cases']} sharded cases failed:\n"
        + describe(summary["failures"])
    )


def _catalogue_run(scope: str, record_property) -> dict:
    """The worker's summary of the catalogue run of ``scope``, recorded and printed."""
    summary = run_sharded_worker(scope)
    record_property("sharded_cases", summary["cases"])
    record_property("sharded_checks", summary["checks"])
    print(
        f"\n{summary['cases']} sharded cases, {summary['checks']} checks over "
        f"{len(summary['losses'])} losses in {summary['seconds']} s; slowest {summary['slowest']}"
    )
    return summary


def _check_catalogue_run(summary: dict, meshes_per_loss: int, cases_per_loss: int) -> None:
    assert summary["device_count"] == 8
    # Coverage: every catalogue loss with every reduction (x weighting in the slow tier).
    available = [entry.name for entry in available_entries()]
    assert summary["losses"] == available
    # CTC with padded labels and with per-sequence lengths, once the sequence module exists.
    assert summary["adapters"] == [entry.name for entry in local_entries()]
    # A new class without a catalogue entry would silently escape the sharded checks.
    assert set(exported_loss_classes()) <= set(available)
    meshes = {(loss, mesh) for loss, _, mesh in summary["configurations"]}
    for loss in available:
        ran = {mesh for name, mesh in meshes if name == loss}
        assert len(ran) >= meshes_per_loss, f"{loss} ran on {sorted(ran)}"
    assert {mesh for _, mesh in meshes} == set(MESHES), "a mesh was never used"
    assert summary["cases"] >= cases_per_loss * meshes_per_loss * len(available)
    assert_no_failures(summary)
    # The control: shard_map's per-shard weighted mean, averaged, differs from the global one.
    assert summary["per_shard_mean_caught"]


def test_every_loss_batch_sharded_on_8_devices_matches_unsharded(record_property):
    """Each loss with every reduction and one weighting on one of the three meshes, rotating
    along the catalogue (every loss with every weighting on every mesh: the slow tier's test
    below)."""
    summary = _catalogue_run("quick", record_property)
    _check_catalogue_run(summary, meshes_per_loss=1, cases_per_loss=len(DISTINCT_REDUCTIONS))


@pytest.mark.slow  # about 6 CPU-minutes: `make test-all`
def test_every_reduction_on_every_mesh(record_property):
    summary = _catalogue_run("first", record_property)
    _check_catalogue_run(summary, meshes_per_loss=len(MESHES), cases_per_loss=len(ALL_CASES))


@pytest.mark.slow  # about 6 CPU-minutes: `make test-all`
def test_every_option_set_on_automatic_and_explicit_axes():
    summary = run_sharded_worker("rest")
    option_sets = {(e.name, option_id(o)) for e in available_entries() for o in e.options[1:]}
    for mesh in ("batch8", "batch8_explicit"):
        ran = {(loss, options) for loss, options, m in summary["configurations"] if m == mesh}
        assert option_sets <= ran, f"option sets not run on {mesh}: {sorted(option_sets - ran)}"
    assert_no_failures(summary)


def test_multi_host_jax_distributed_matches_one_device(tmp_path):
    summaries = run_multi_host_workers(tmp_path)
    assert sorted(s["process_index"] for s in summaries) == list(range(PROCESSES))
    expected = [name for name, _ in MULTI_HOST_LOSSES if BY_NAME[name].available]
    for s in summaries:
        assert (s["process_count"], s["device_count"], s["local_device_count"]) == (2, 8, 4)
        assert s["losses"] == expected
        assert s["cases"] >= 2 * len(expected)
        assert not s["failures"], (
            f"process {s['process_index']}: {len(s['failures'])} of {s['cases']} cases failed:\n"
            + describe(s["failures"])
        )
    # The reduced loss is one replicated scalar: every process must log the same number.
    first, *others = summaries
    assert first["values"]
    for other in others:
        assert other["values"] == first["values"]


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
