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


# --------------------------------------------------------------------------------------
# test tiers: `make test` runs a covering part of the large parameter grids, `make test-all`
# (and any run that selects the slow tier) all of it
# --------------------------------------------------------------------------------------
def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "cover: the default tier runs, for each value of the first parameter, a part of the grid "
        "of the other parameters in which each of their values appears at least once; the rest "
        "of the grid is marked slow",
    )


def _level(value) -> str:
    return getattr(value, "__name__", None) or repr(value)


def _covering(items) -> set[int]:
    """Indices of a small subset of ``items`` (one test function's grid, for one value of its
    first parameter) in which every value of every other parameter appears: greedy set cover."""
    levels = [
        {(name, _level(value)) for name, value in list(item.callspec.params.items())[1:]}
        for item in items
    ]
    uncovered = set().union(*levels)
    chosen: set[int] = set()
    while uncovered:
        best = max(range(len(items)), key=lambda i: len(levels[i] & uncovered))
        chosen.add(best)
        uncovered -= levels[best]
    return chosen or {0}


def _catalogue_entry(item):
    """The catalogue entry a test is parametrized with, if any."""
    from catalogue import Entry

    params = getattr(item, "callspec", None)
    values = params.params.values() if params is not None else ()
    return next((value for value in values if isinstance(value, Entry)), None)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # Under `pytest -n 2 --dist loadgroup` (the Makefile's runs) one worker runs every test of a
    # catalogue loss, so the jitted programs and compiled primitives the suites cache per loss
    # (catalogue.jitted_evaluation and the like) are compiled once, not once per worker.
    for item in items:
        entry = _catalogue_entry(item)
        if entry is not None:
            item.add_marker(pytest.mark.xdist_group(entry.name))
    groups: dict[tuple, list] = {}
    for item in items:
        if item.get_closest_marker("cover") is None or not hasattr(item, "callspec"):
            continue
        first = next(iter(item.callspec.params.values()))
        groups.setdefault((item.nodeid.split("[")[0], _level(first)), []).append(item)
    for group in groups.values():
        chosen = _covering(group)
        for index, item in enumerate(group):
            if index not in chosen:
                item.add_marker(pytest.mark.slow)
