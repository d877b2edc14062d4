"""Shared test configuration: Keras runs on the JAX backend, side by side with losses_jax."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def keras():
    """Keras 3 on the JAX backend (tests needing it are skipped when it is not installed)."""
    return pytest.importorskip("keras")


@pytest.fixture
def rng():
    """A fresh, seeded NumPy generator per test."""
    return np.random.default_rng(0)
