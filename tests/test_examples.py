"""The examples run and do what they claim; the benchmark runner's bookkeeping is right.

Each example is loaded from its file and its ``main`` called (the demo runs as a script with
``--quick``). References are independent: float64 NumPy formulas, textbook values, Keras.
An example whose optional dependencies (the ``examples`` extra: flax, scikit-learn,
matplotlib, tqdm, optax; and Keras; the demo needs only the ``demo`` extra) are not installed is
skipped, not failed.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# Top-level modules of the optional dependencies the examples import.
OPTIONAL_MODULES = ("flax", "sklearn", "matplotlib", "tqdm", "optax", "keras")


def imported_modules(name: str, seen: frozenset = frozenset()) -> set[str]:
    """Top-level modules ``examples/<name>.py`` imports, with those of the examples it imports."""
    tree = ast.parse((EXAMPLES / f"{name}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.partition(".")[0])
    for module in sorted(found - seen - {name}):
        if (EXAMPLES / f"{module}.py").exists():  # another example module, e.g. _demo_data
            found |= imported_modules(module, seen | {name})
    return found


def require_extras(name: str) -> None:
    """Skips the calling test unless every optional dependency of the example is importable."""
    for module in sorted(imported_modules(name) & set(OPTIONAL_MODULES)):
        pytest.importorskip(module, reason=f"examples/{name}.py needs {module} (`examples` extra)")


@functools.cache
def load_example(name: str):
    """Imports ``examples/<name>.py`` once as a module (examples/ is not a package).

    The test calling it is skipped when the example's optional dependencies are missing.
    """
    require_extras(name)
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------
# custom_loss.py
# --------------------------------------------------------------------------------------
def numpy_pinball(y_true, y_pred, quantile):
    error = np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)
    return np.mean(np.where(error >= 0, quantile * error, (quantile - 1.0) * error), axis=-1)


def test_pinball_loss_matches_numpy_and_reduces_like_keras(rng):
    example = load_example("custom_loss")
    y_true = rng.normal(size=(6, 3)).astype(np.float32)
    y_pred = rng.normal(size=(6, 3)).astype(np.float32)
    weights = rng.uniform(0.0, 2.0, size=6).astype(np.float32)
    expected = numpy_pinball(y_true, y_pred, 0.8)

    loss = example.Pinball(quantile=0.8)
    np.testing.assert_allclose(example.pinball_loss(y_true, y_pred, 0.8), expected, rtol=1e-6)
    np.testing.assert_allclose(float(loss(y_true, y_pred)), expected.mean(), rtol=1e-6)
    # sum_over_batch_size: weighted sum over the number of samples.
    np.testing.assert_allclose(
        float(loss(y_true, y_pred, sample_weight=weights)),
        (weights * expected).sum() / 6,
        rtol=1e-6,
    )
    assert example.Pinball.from_config(loss.get_config()) == loss
    with pytest.raises(ValueError, match="quantile"):
        example.Pinball(quantile=1.5)


def test_custom_loss_example_fits_the_quantiles(capsys):
    result = load_example("custom_loss").main()
    assert result["round_trip"]
    # 2000 held-out points: the standard error of a coverage near 0.1 or 0.9 is ~0.007.
    for quantile, coverage in result["coverage"].items():
        assert abs(coverage - quantile) < 0.03, (quantile, coverage)
    assert "pinball_90" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# per_example_grad.py
# --------------------------------------------------------------------------------------
def test_per_example_gradients_match_the_softmax_regression_formula(rng):
    example = load_example("per_example_grad")
    images = rng.normal(size=(5, 4)).astype(np.float32)
    labels = rng.integers(0, example.NUM_CLASSES, size=5).astype(np.int32)
    params = {
        "w": rng.normal(size=(4, example.NUM_CLASSES)).astype(np.float32),
        "b": rng.normal(size=example.NUM_CLASSES).astype(np.float32),
    }
    grads = example.per_example_grads(params, images, labels)

    # d CE / d logits = softmax - onehot; d logits / d w = x (outer product), d / d b = 1.
    logits = images.astype(np.float64) @ params["w"] + params["b"]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    delta = probs - np.eye(example.NUM_CLASSES)[labels]
    np.testing.assert_allclose(grads["b"], delta, atol=1e-5)
    np.testing.assert_allclose(grads["w"], images[:, :, None] * delta[:, None, :], atol=1e-5)
    np.testing.assert_allclose(
        example.gradient_norms(grads),
        np.sqrt((delta**2).sum(1) * (1.0 + (images.astype(np.float64) ** 2).sum(1))),
        rtol=1e-5,
    )


def test_per_example_grad_example_finds_flipped_labels(capsys):
    result = load_example("per_example_grad").main()
    assert result["max_gap"] < 1e-5
    assert result["precision"] > 0.5  # chance level is 0.05
    # The mean of vectors of norm <= C has norm <= C.
    assert result["clipped_norm"] <= result["clip_norm"] * (1 + 1e-5)
    assert "flipped labels" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# keras_dropin.py
# --------------------------------------------------------------------------------------
def test_keras_dropin_trains_like_the_keras_loss(keras, capsys):
    result = load_example("keras_dropin").main(epochs=3)
    assert result["max_loss_gap"] < 1e-4
    assert result["losses_jax"]["test_accuracy"] > 0.85
    np.testing.assert_allclose(
        result["losses_jax"]["test_loss"], result["keras"]["test_loss"], rtol=1e-4
    )
    assert "weighted epoch" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# demo.py and its data
# --------------------------------------------------------------------------------------
def test_strips_are_digits_side_by_side(rng):
    data = load_example("_demo_data")
    train, _ = data.load_splits(seed=0)
    strips = data.make_strips(train, 50, rng)
    lengths = strips.target_lengths
    assert strips.columns.shape == (50, data.STRIP_WIDTH, 8)
    assert np.all((lengths >= 3) & (lengths <= 5))
    # each digit is 6 columns; up to 2 blank columns before each digit
    assert np.all(strips.widths >= 6 * lengths) and np.all(strips.widths <= 8 * lengths)
    assert data.STRIP_WIDTH == 40
    for columns, width, target, length in zip(
        strips.columns, strips.widths, strips.targets, lengths
    ):
        assert not columns[width:].any()
        assert np.all(target[:length] >= 1) and np.all(target[length:] == data.BLANK)
        assert len(data.strip_text(target)) == length
    augmented = data.augment(strips, rng)
    for columns, width in zip(augmented.columns, strips.widths):
        assert not columns[width:].any()  # the jitter stays inside the strip


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        ("kitten", "sitting", 3),
        ("", "123", 3),
        ("123", "", 3),
        ("12345", "12345", 0),
        ("12", "21", 2),
    ],
)
def test_edit_distance(a, b, distance):
    assert load_example("demo").edit_distance(a, b) == distance


def test_demo_progress_prints_plain_lines_when_not_a_terminal(capsys):
    progress = load_example("demo").Progress("training", total=3, every_s=0.0)
    for done in range(1, 4):
        progress.update(done, loss="0.5")
    progress.close("done")
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == [
        "  training: 1/3, loss 0.5",
        "  training: 2/3, loss 0.5",
        "  training: 3/3, loss 0.5",
        "  training: done",
    ]


def test_sequence_metrics():
    metrics = load_example("demo").sequence_metrics(["123", "4567"], ["123", "457"])
    assert metrics["sequence_accuracy"] == 0.5
    assert math.isclose(metrics["cer"], 1 / 7)


def test_demo_quick_run(tmp_path):
    require_extras("demo")
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for figure in ("classification.png", "ctc.png", "ctc_examples.png"):
        assert (tmp_path / figure).stat().st_size > 1000
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["classification"]["cross-entropy"]["test_accuracy"] > 0.85
    for result in metrics["classification"].values():
        assert 0.0 <= result["test_accuracy"] <= 1.0
    ctc_loss = metrics["ctc"]["loss"]
    assert np.mean(ctc_loss[-10:]) < 0.5 * np.mean(ctc_loss[:10])
    assert len(metrics["ctc"]["decoders"]) == 2
    for decoder in metrics["ctc"]["decoders"].values():
        assert 0.0 <= decoder["sequence_accuracy"] <= 1.0 and decoder["cer"] >= 0.0
    # Both decoders are scored at every evaluation step (the beam-search curve is plotted).
    assert set(metrics["ctc"]["accuracy"]) == set(metrics["ctc"]["decoders"])
    for curve in metrics["ctc"]["accuracy"].values():
        assert len(curve) == len(metrics["ctc"]["eval_step"])
    out = completed.stdout
    assert "Classification" in out and "CTC" in out
    # Not a terminal: plain progress lines, no carriage returns; each accuracy printed once.
    assert "\r" not in out
    for title, result in metrics["classification"].items():
        assert out.count(f"{title:<24}: trained") == 1, title
        assert out.count(f"{title:<26}{result['test_accuracy']:>10.4f}") == 1, title


# --------------------------------------------------------------------------------------
# benchmarks/run.py
# --------------------------------------------------------------------------------------
def test_benchmark_runner_ratios_and_tables():
    from benchmarks import run

    rows = [
        {"bench": "b", "case": "c", "impl": "losses_jax", "ms": 2.0},
        {"bench": "b", "case": "c", "impl": "optax", "ms": 3.0, "compile_s": 0.5},
        {"bench": "b", "case": "d", "impl": "losses_jax", "ms": 4.0},
        {"bench": "b", "case": "d", "impl": "optax", "ms": 1.0},
        {"bench": "b", "case": "e", "impl": "torch", "ms": 1.0},  # no reference row
    ]
    with_ratios = run.add_ratios(rows)
    assert [r["ratio"] for r in with_ratios] == [1.0, 1.5, 1.0, 0.25, None]
    mean, count = run.geometric_mean_ratios(with_ratios)["optax"]
    assert count == 2 and math.isclose(mean, math.sqrt(1.5 * 0.25))
    table = run.text_table(with_ratios)
    assert "1.50x" in table and "compile_s" in table.splitlines()[0]
    assert run.markdown_table(with_ratios).count("\n") == len(rows) + 1


def test_benchmark_runner_reports_a_failing_module():
    from benchmarks import run

    rows, error = run.run_module("no_such_bench_module", tiny=True)
    assert rows == [] and "No module named" in error


def synthetic_results(tiny: bool = False) -> dict:
    """Two modules' rows as ``benchmarks.run`` records them: paired, unpaired and memory."""
    from benchmarks import results

    def paired(bench, case, impl, ratio):
        return {
            "bench": bench, "case": case, "impl": impl, "ms": ratio, "paired_ratio": ratio,
            "paired_iqr": [0.9 * ratio, 1.1 * ratio], "paired_range": [0.8 * ratio, 1.2 * ratio],
            "rounds": 11,
        }  # fmt: skip

    rows = [
        paired("ce_sparse", "N=8", "losses_jax", 1.0),
        paired("ce_sparse", "N=8", "optax", 1.02),
        paired("ctc_value_and_grad", "B=2", "losses_jax", 1.0),
        paired("ctc_value_and_grad", "B=2", "optax", 1.7),
        {"bench": "linear_ce", "case": "N=4", "impl": "losses_jax", "ms": 2.0, "ratio": 1.0,
         "temp_mb": 32.0},
        {"bench": "linear_ce", "case": "N=4", "impl": "optax", "ms": 1.8, "ratio": 0.9,
         "temp_mb": 512.0},
        {"bench": "linear_ce_memory", "case": "N=4", "impl": "losses_jax", "ms": float("nan"),
         "temp_mb": 32.0},
        {"bench": "linear_ce_memory", "case": "N=4", "impl": "optax", "ms": float("nan"),
         "temp_mb": 512.0},
    ]  # fmt: skip
    module_of = {"ce_sparse": "bench_ce", "ctc_value_and_grad": "bench_ctc"}
    rows = [{"module": module_of.get(r["bench"], "bench_linear_ce"), **r} for r in rows]
    runs = {
        name: {"title": f"{name} title.", "command": "python -m benchmarks.run", "seconds": 1.0,
               "date": "2026-11-30T00:00:00+00:00", "load_average": [1.0, 2.0],
               "status": "ok", "error": None}
        for name in ("bench_ce", "bench_ctc", "bench_linear_ce")
    }  # fmt: skip
    return results.merge(results.empty(), runs, rows, {"CPU": "test", "cores": "2"}, tiny)


def test_benchmark_results_merge_headline_and_markdown(tmp_path):
    from benchmarks import results

    merged = synthetic_results()
    assert all(r["ms"] is None for r in merged["rows"] if r["bench"] == "linear_ce_memory")
    # A module run again replaces its own rows and record only.
    rerun = [{"module": "bench_ce", "bench": "ce_sparse", "case": "N=8", "impl": "keras", "ms": 3}]
    again = results.merge(merged, {"bench_ce": merged["modules"]["bench_ce"]}, rerun, {}, False)
    assert [r["impl"] for r in again["rows"] if r["module"] == "bench_ce"] == ["keras"]
    assert len(again["rows"]) == len(merged["rows"]) - 1
    # A --tiny run never mixes with a full one.
    assert results.merge(merged, {}, [], {}, tiny=True)["rows"] == []

    results.save(merged, tmp_path / "results.json")
    figures = results.headline(tmp_path / "results.json")
    assert [f["key"] for f in figures] == ["ctc_vs_optax", "linear_ce_memory", "sparse_ce_vs_optax"]
    assert figures[0]["value"] == 1.7 and figures[0]["spread"] == [0.9 * 1.7, 1.1 * 1.7]
    assert figures[1]["value"] == 16.0 and figures[1]["spread"] is None
    assert "**1.70x**" in figures[0]["text"] and "**16x**" in figures[1]["text"]

    notes = f"{results.NOTES_BEGIN}\nkept by hand\n{results.NOTES_END}"
    (tmp_path / "RESULTS.md").write_text(f"old generated text\n\n{notes}\n")
    text = results.markdown(merged, {"bench_ce": "bench_ce.png"}, results.existing_notes(
        tmp_path / "RESULTS.md"))  # fmt: skip
    assert "old generated text" not in text and text.rstrip().endswith(notes)
    assert "![bench_ce](bench_ce.png)" in text and "| 1.02x | 0.92-1.12 |" in text
    # Where a bench has no paired ratio its unpaired ratio is the one shown.
    assert "paired_ratio" not in text.split("### linear_ce\n")[1].split("###")[0]


def test_benchmark_charts_one_per_module(tmp_path):
    pytest.importorskip("matplotlib")
    from benchmarks import plot

    merged = synthetic_results()
    kinds = {
        bench: plot.panel_kind([r for r in merged["rows"] if r["bench"] == bench])
        for bench in ("ce_sparse", "linear_ce", "linear_ce_memory")
    }
    assert kinds == {"ce_sparse": "paired", "linear_ce": "unpaired", "linear_ce_memory": "memory"}
    written = plot.plot_all(merged, tmp_path)
    assert written == {m: f"{m}.png" for m in ("bench_ce", "bench_ctc", "bench_linear_ce")}
    for name in written.values():
        assert (tmp_path / name).stat().st_size > 10_000
