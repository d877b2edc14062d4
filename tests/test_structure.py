"""The package's shape: families, exports, registry and catalogue agree; one class pattern.

A new loss family is one module in ``losses_jax/losses/``, one line in each block of
``losses_jax/losses/__init__.py``, one catalogue entry (``tests/catalogue.py``) with its
reference (``tests/references.py``), and one row in the docs. Each test below fails when one
of them is forgotten.
"""

from __future__ import annotations

import inspect
import pkgutil

import pytest
from catalogue import BY_NAME

import losses_jax as lj
from losses_jax import losses as families

LOSS_CLASSES = sorted(
    name
    for name in lj.__all__
    if inspect.isclass(getattr(lj, name))
    and issubclass(getattr(lj, name), lj.Loss)
    and getattr(lj, name) not in (lj.Loss, lj.LossFunctionWrapper)
)


def test_every_family_module_is_listed():
    modules = {info.name for info in pkgutil.iter_modules(families.__path__)}
    listed = {family.__name__.rpartition(".")[2] for family in families.FAMILIES}
    assert modules == listed, "add the module to FAMILIES in losses_jax/losses/__init__.py"


def test_every_family_name_is_exported_once():
    names = [name for family in families.FAMILIES for name in family.__all__]
    assert len(names) == len(set(names)), "a name is exported by two families"
    missing = sorted(set(names) - set(lj.__all__))
    assert missing == [], "add the family's `__all__ +=` line in losses_jax/losses/__init__.py"
    for family in families.FAMILIES:
        for name in family.__all__:
            assert getattr(lj, name) is getattr(family, name), name


def test_no_family_module_is_shadowed_by_a_function():
    for family in families.FAMILIES:
        short = family.__name__.rpartition(".")[2]
        assert getattr(families, short) is family, f"`{short}` names a module and a function"


def test_registry_holds_every_class_and_function():
    ids = set(lj.identifiers())
    for name in LOSS_CLASSES:
        cls = getattr(lj, name)
        assert name in ids and isinstance(lj.get(name), cls)
        function = cls.function
        assert function.__name__ in ids and lj.get(function.__name__) is function
        assert lj.serialize(function) == function.__name__


def test_aliases_are_the_functions_they_name():
    for name in set(lj.identifiers()) - {"Loss", "LossFunctionWrapper"}:
        obj = lj.get(name)
        if not isinstance(obj, lj.Loss) and obj.__name__ != name:
            assert getattr(lj, name) is obj, f"alias {name} is not exported"


def test_catalogue_covers_every_loss_class():
    assert sorted(BY_NAME) == LOSS_CLASSES, "add a catalogue entry to tests/catalogue.py"


def test_every_catalogue_entry_has_a_reference():
    missing = sorted(name for name, entry in BY_NAME.items() if entry.reference is None)
    assert not missing, f"add a reference (tests/references.py) to {missing}"


@pytest.mark.parametrize("name", LOSS_CLASSES)
def test_one_class_pattern(name):
    cls = getattr(lj, name)
    assert cls.function is not None, f"{name} names no per-sample `function`"
    signature = inspect.signature(cls)
    kinds = {p.kind for p in signature.parameters.values()}
    assert (
        inspect.Parameter.VAR_KEYWORD not in kinds and inspect.Parameter.VAR_POSITIONAL not in kinds
    )
    assert {"reduction", "name", "dtype"} <= set(signature.parameters)
    # Reductions are Loss's: a loss adjusts them through the `loss_mask`/`divisor_weights` hooks.
    assert cls.__call__ is lj.Loss.__call__, f"{name} overrides `__call__`; use Loss's hooks"
    function_parameters = inspect.signature(cls.function).parameters
    loss = cls()
    for option in cls.option_names():
        assert option in function_parameters, f"{name}.{option} is not an option of its function"
        assert hasattr(loss, option), f"{name} does not store `{option}` as an attribute"
    assert type(loss).from_config(loss.get_config()) == loss
    with pytest.raises(AttributeError, match="immutable"):
        loss.name = "other"


@pytest.mark.parametrize("name", sorted(set(lj.__all__)))
def test_public_names_are_documented_with_examples(name):
    obj = getattr(lj, name)
    doc = inspect.getdoc(obj) or ""
    assert "Examples:" in doc or "Examples::" in doc, f"{name} has no doctest example"


def test_every_loss_class_has_a_row_in_the_generated_catalogue():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
    from generate import catalogue_markdown  # the docs' catalogue page, built from the registry

    rows = catalogue_markdown().splitlines()
    missing = [name for name in LOSS_CLASSES if not any(f"losses_jax.{name}` |" in r for r in rows)]
    assert not missing, f"{missing} lack a catalogue row: is the class in its family's __all__?"
