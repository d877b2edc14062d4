"""String identifiers, ``get``/``serialize``/``deserialize`` and ``to_categorical``.

Every Keras 3 identifier resolves: a class name (``"CategoricalCrossentropy"``) gives a fresh
instance, a function name or alias (``"categorical_crossentropy"``, ``"mse"``, ``"kld"``) gives
the per-sample function, exactly as ``keras.losses.get`` does.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from losses_jax._validation import is_traced
from losses_jax.base import Loss, LossFunctionWrapper
from losses_jax.losses import FAMILIES

__all__ = ["deserialize", "get", "identifiers", "serialize", "to_categorical"]


def _loss_table() -> dict[str, Any]:
    """Identifier -> object, derived from the families' ``__all__``.

    Every :class:`~losses_jax.Loss` class of a family is registered under its name, and every
    name bound to the ``function`` of one of those classes (aliases included) under that name.
    """
    table: dict[str, Any] = {"Loss": Loss, "LossFunctionWrapper": LossFunctionWrapper}
    for family in FAMILIES:
        public = {name: getattr(family, name) for name in family.__all__}
        classes = [obj for obj in public.values() if inspect.isclass(obj) and issubclass(obj, Loss)]
        functions = {cls.function for cls in classes}
        for name, obj in public.items():
            if obj in classes or obj in functions:
                table[name] = obj
    return table


_TABLE = _loss_table()


def identifiers() -> list[str]:
    """Every string that :func:`get` accepts.

    Examples:
        >>> "mse" in identifiers() and "CategoricalCrossentropy" in identifiers()
        True
    """
    return sorted(_TABLE)


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _resolve_name(name: str) -> Any:
    if name in _TABLE:
        return _TABLE[name]
    if ":" in name:  # a user function serialized as "module:qualname"
        try:
            return _import(name)
        except (ImportError, AttributeError) as err:
            raise ValueError(f"Could not import loss {name!r}: {err}") from None
    close = difflib.get_close_matches(name, identifiers(), n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"Unknown loss identifier {name!r}.{hint} See losses_jax.identifiers() for all names."
    )


def _name_of_function(fn: Callable[..., Any]) -> str:
    """The registered name of a library function (its own, not an alias), else "module:qualname"."""
    name = getattr(fn, "__name__", None)
    if name is not None and _TABLE.get(name) is fn:
        return name
    return f"{fn.__module__}:{fn.__qualname__}"


def _encode(value: Any) -> Any:
    if isinstance(value, (jax.Array, np.ndarray)):
        return np.asarray(value).tolist()
    if isinstance(value, tuple):
        return list(value)
    if callable(value):
        return _name_of_function(value)
    return value


def serialize(loss: Any) -> dict[str, Any] | str:
    """A JSON-friendly description of a loss instance (dict) or loss function (its name).

    Examples:
        >>> serialize(lj.CategoricalCrossentropy(from_logits=True))["class_name"]
        'CategoricalCrossentropy'
        >>> serialize(lj.mean_squared_error)
        'mean_squared_error'
    """
    if isinstance(loss, Loss):
        cls = type(loss)
        known = _TABLE.get(cls.__name__) is cls
        class_name = cls.__name__ if known else f"{cls.__module__}:{cls.__qualname__}"
        config = {k: _encode(v) for k, v in loss.get_config().items()}
        return {"class_name": class_name, "config": config}
    if callable(loss):
        return _name_of_function(loss)
    raise TypeError(f"Cannot serialize {loss!r}: expected a Loss instance or a function.")


def deserialize(config: Mapping[str, Any] | str) -> Any:
    """Inverse of :func:`serialize`.

    Examples:
        >>> loss = deserialize({"class_name": "Huber", "config": {"delta": 2.0}})
        >>> type(loss).__name__, loss.get_config()["delta"]
        ('Huber', 2.0)
    """
    if isinstance(config, str):
        return _resolve_name(config)
    if not isinstance(config, Mapping) or "class_name" not in config:
        raise ValueError(
            f"A loss config must be a dict with a 'class_name' (and optional 'config'); "
            f"received {config!r}."
        )
    cls = _resolve_name(config["class_name"])
    if not (inspect.isclass(cls) and issubclass(cls, Loss)):
        raise ValueError(f"{config['class_name']!r} does not name a Loss class.")
    kwargs = dict(config.get("config") or {})
    if isinstance(kwargs.get("fn"), str):
        kwargs["fn"] = _resolve_name(kwargs["fn"])
    return cls.from_config(kwargs)


def get(identifier: Any) -> Any:
    """Retrieves a loss from a string, a config dict, a callable or ``None``.

    A class name gives a default instance; a function name or alias gives the per-sample
    function; a dict is passed to :func:`deserialize`; a callable is returned as is.

    Examples:
        >>> type(get("CategoricalCrossentropy")).__name__, get("mse").__name__
        ('CategoricalCrossentropy', 'mean_squared_error')
        >>> get("mean_sqared_error")
        Traceback (most recent call last):
        ...
        ValueError: Unknown loss identifier 'mean_sqared_error'. Did you mean 'mean_squared_error' or 'MeanSquaredError' or 'mean_squared_logarithmic_error'? See losses_jax.identifiers() for all names.
    """
    if identifier is None:
        return None
    if isinstance(identifier, Mapping):
        return deserialize(identifier)
    if isinstance(identifier, str):
        obj = _resolve_name(identifier)
    elif callable(identifier):
        obj = identifier
    else:
        raise ValueError(f"Could not interpret loss identifier: {identifier!r}.")
    return obj() if inspect.isclass(obj) else obj


def to_categorical(
    labels: ArrayLike, num_classes: int | None = None, dtype: DTypeLike = "float32"
) -> jax.Array:
    """One-hot encodes integer ``labels`` of shape ``(...)`` to ``(..., num_classes)``.

    As in Keras, a trailing dimension of size 1 is dropped first (``(B, 1)`` gives
    ``(B, num_classes)``). ``num_classes`` defaults to ``max(labels) + 1``, which needs concrete
    labels; pass it explicitly under :func:`jax.jit`.

    Examples:
        >>> to_categorical(jnp.array([0, 2, 1])).tolist()
        [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    """
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        if is_traced(labels):
            labels = labels.astype(jnp.int32)
        elif not np.all(np.mod(np.asarray(labels), 1) == 0):
            raise TypeError(f"`labels` must hold integers; received dtype {labels.dtype}.")
        labels = labels.astype(jnp.int32)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if num_classes is None:
        if is_traced(labels):
            raise ValueError("`num_classes` must be given when `labels` are traced (under jit).")
        num_classes = int(np.max(np.asarray(labels), initial=-1)) + 1
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)
