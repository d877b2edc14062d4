"""Doctest namespace: every docstring example may use ``jnp``, ``jax``, ``np`` and ``lj``."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    import losses_jax

    doctest_namespace.update(jax=jax, jnp=jnp, np=np, lj=losses_jax)
