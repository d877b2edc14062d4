"""Sharding-aware helpers shared by every batch-coupled loss (one place for mesh logic).

A loss that compares every example with every other one (metric learning, contrastive losses)
or splits its parameters over devices (vocabulary-parallel cross-entropy) meets the mesh here:

* :func:`replicated` gathers an operand that every row must see, on meshes of explicit axes;
* :func:`resolve_mesh` and :func:`axis_size` find the mesh and the size of named axes, with an
  error that says how to provide them;
* :func:`place` reshards an input to the layout a :func:`jax.shard_map` expects.
"""

from __future__ import annotations

from typing import Any, TypeVar

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec

__all__ = [
    "axis_size",
    "has_explicit_axes",
    "has_explicit_sharding",
    "place",
    "replicated",
    "resolve_mesh",
]

_MaybeArray = TypeVar("_MaybeArray", jax.Array, None)


def replicated(x: jax.Array) -> jax.Array:
    """``x`` gathered onto every device when sharded over explicit mesh axes, else ``x``.

    Under explicit axes, a pairwise op of two batch-sharded operands has no legal sharding;
    with automatic axes (or no mesh) the partitioner chooses and nothing changes here.
    """
    if has_explicit_sharding(x):
        return jax.sharding.reshard(x, PartitionSpec())
    return x


def has_explicit_sharding(x: jax.Array) -> bool:
    """Whether ``x``'s type carries explicit mesh axes (sharding visible to the program)."""
    spec = getattr(getattr(jax.typeof(x), "sharding", None), "spec", None)
    return spec is not None and any(axis is not None for axis in spec)


def has_explicit_axes(mesh: Any) -> bool:
    """Whether ``mesh`` has an explicit axis (shardings are part of the arrays' types)."""
    return any(t == AxisType.Explicit for t in mesh.axis_types)


def resolve_mesh(mesh: Any, option: str, value: Any) -> Any:
    """``mesh``, or the ambient one (``with jax.set_mesh(mesh):``); an error names ``option``."""
    mesh = jax.sharding.get_abstract_mesh() if mesh is None else mesh
    if mesh is None or mesh.empty:
        raise ValueError(
            f"{option}={value!r} needs a device mesh: pass `mesh=` or call inside "
            f"`with jax.set_mesh(mesh):`."
        )
    return mesh


def axis_size(mesh: Any, axis: str | tuple[str, ...]) -> int:
    """The number of devices along mesh axis (or axes) ``axis``."""
    names = (axis,) if isinstance(axis, str) else tuple(axis)
    missing = [a for a in names if a not in mesh.axis_names]
    if missing:
        raise ValueError(
            f"Mesh axis {missing} not found: the mesh has axes {tuple(mesh.axis_names)}. Pass "
            f"`mesh=` or call inside `with jax.set_mesh(mesh):`."
        )
    return int(np.prod([mesh.shape[a] for a in names]))


def place(x: _MaybeArray, spec: PartitionSpec | None, mesh: Any) -> _MaybeArray:
    """``x`` resharded to ``spec`` where the mesh has explicit axes (shard_map demands it)."""
    if x is None or spec is None or not has_explicit_axes(mesh):
        return x
    target = NamedSharding(mesh, spec) if isinstance(mesh, jax.sharding.Mesh) else spec
    return jax.sharding.reshard(x, target)
