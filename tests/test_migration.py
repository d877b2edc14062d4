"""The optax/PyTorch migration tables: complete, pointing at real names, equal to the site's,
and executable on a few rows."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import losses_jax as lj
from losses_jax.migration import OPTAX, TORCH, migration_markdown

DOCS = Path(__file__).parents[1] / "docs"


def torch_loss_names(functional) -> set[str]:
    return {
        name
        for name in dir(functional)
        if not name.startswith("_")
        and (name.endswith("_loss") or "entropy" in name or name.endswith("_div"))
    }


def test_every_optax_loss_has_a_row():
    optax = pytest.importorskip("optax")
    exported = {
        name
        for name in dir(optax.losses)
        if not name.startswith("_") and callable(getattr(optax.losses, name))
        and not isinstance(getattr(optax.losses, name), types.ModuleType)
    }  # fmt: skip
    assert exported == {row.anchor for row in OPTAX}
    assert len(OPTAX) == len(exported)


def test_every_torch_loss_has_a_row():
    functional = pytest.importorskip("torch.nn.functional")
    assert torch_loss_names(functional) == {row.anchor for row in TORCH}
    assert len(TORCH) == len({row.anchor for row in TORCH})


@pytest.mark.parametrize("row", OPTAX + TORCH, ids=lambda row: row.anchor)
def test_every_name_exists_and_no_equivalent_says_why(row):
    for name in row.names:
        assert hasattr(lj, name), name
    if row.function is None:
        assert row.note and row.cls is None and not row.arguments


@pytest.mark.parametrize("anchor", ["optax", "torch"])
def test_published_tables_are_the_generated_ones(anchor, tmp_path):
    """The site's migration page includes the tables written from these rows at build time."""
    sys.path.insert(0, str(DOCS))
    from generate import generated_pages

    pages = generated_pages(tmp_path)  # lazily: the migration pages come first
    published = next(text for path, text in pages if path == f"migration_{anchor}.md")
    assert published == migration_markdown(anchor) + "\n"
    page = (DOCS / "migrating.md").read_text()
    assert re.search(rf"```{{include}} _generated/migration_{anchor}\.md\n```", page), (
        f"docs/migrating.md no longer includes the generated {anchor} table"
    )


def _rename(row, **anchor_inputs):
    """The losses_jax keyword arguments of ``anchor_inputs`` by the row's mapping."""
    names = dict(row.arguments)
    return {names[key]: value for key, value in anchor_inputs.items()} | dict(row.settings)


def _row(rows, anchor):
    row = next(row for row in rows if row.anchor == anchor)
    assert row.function is not None and row.cls is not None
    return row


def test_optax_rows_execute():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=4)
    probs = rng.dirichlet(np.ones(5), size=4).astype(np.float32)
    for anchor, inputs in [
        ("softmax_cross_entropy_with_integer_labels", {"logits": logits, "labels": labels}),
        ("softmax_cross_entropy", {"logits": logits, "labels": probs}),
        ("poly_loss_cross_entropy", {"logits": logits, "labels": probs}),
        ("kl_divergence", {"log_predictions": np.log(probs[::-1]), "targets": probs}),
        ("multiclass_hinge_loss", {"scores": logits, "labels": labels}),
    ]:
        row = _row(OPTAX, anchor)
        expected = getattr(optax.losses, anchor)(**inputs)
        got = getattr(lj, str(row.function))(**_rename(row, **inputs))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=anchor)


def test_torch_rows_execute():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 4))
    labels = rng.integers(0, 4, size=6)
    labels[0] = 2
    weight = rng.uniform(0.5, 2.0, size=4)
    cases = [
        ("cross_entropy", {"input": logits, "target": labels, "weight": weight}),
        ("cross_entropy", {"input": logits, "target": labels, "ignore_index": 2}),
        ("multi_margin_loss", {"input": logits, "target": labels, "margin": 0.5}),
        ("smooth_l1_loss", {"input": logits, "target": logits[::-1], "beta": 0.5}),
        ("hinge_embedding_loss", {"input": logits, "target": np.sign(logits[::-1])}),
    ]
    for anchor, inputs in cases:
        row = _row(TORCH, anchor)
        as_torch = {k: torch.tensor(v.copy()) if isinstance(v, np.ndarray) else v for k, v in inputs.items()}  # fmt: skip
        expected = getattr(functional, anchor)(**as_torch).numpy()
        ours = _rename(row, **inputs)
        y_true, y_pred = ours.pop("y_true"), ours.pop("y_pred")
        loss = getattr(lj, str(row.cls))(**ours, reduction=row.reduction)
        if anchor == "cross_entropy" and "weight" in inputs:  # torch divides by the weights
            loss = getattr(lj, str(row.cls))(**ours, reduction="sum")
            expected = expected * weight[labels].sum()
        got = loss(y_true, y_pred)
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=anchor)
