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

from losses_jax.base import Loss

__all__ = ["deserialize", "get", "identifiers", "serialize", "to_categorical"]

# identifier -> "module:attribute"; resolved lazily so the table never imports what it names.
_FAMILIES = {
    "probabilistic": [
        "BinaryCrossentropy", "binary_crossentropy",
        "BinaryFocalCrossentropy", "binary_focal_crossentropy",
        "CategoricalCrossentropy", "categorical_crossentropy",
        "CategoricalFocalCrossentropy", "categorical_focal_crossentropy",
        "SparseCategoricalCrossentropy", "sparse_categorical_crossentropy",
        "Poisson", "poisson",
        "KLDivergence", "kl_divergence",
        "CategoricalGeneralizedCrossEntropy", "categorical_generalized_cross_entropy",
    ],
    "regression": [
        "MeanSquaredError", "mean_squared_error",
        "MeanAbsoluteError", "mean_absolute_error",
        "MeanAbsolutePercentageError", "mean_absolute_percentage_error",
        "MeanSquaredLogarithmicError", "mean_squared_logarithmic_error",
        "CosineSimilarity", "cosine_similarity",
        "Huber", "huber",
        "LogCosh", "log_cosh",
    ],
    "hinge": ["Hinge", "hinge", "SquaredHinge", "squared_hinge", "CategoricalHinge", "categorical_hinge"],
    "segmentation": ["Dice", "dice", "Tversky", "tversky", "Circle", "circle"],
    "sequence": ["CTC", "ctc"],
    "large_vocab": ["LinearCrossEntropy", "linear_cross_entropy"],
}  # fmt: skip

_ALIASES = {
    "bce": "binary_crossentropy",
    "BCE": "binary_crossentropy",
    "kld": "kl_divergence",
    "KLD": "kl_divergence",
    "kullback_leibler_divergence": "kl_divergence",
    "mae": "mean_absolute_error",
    "MAE": "mean_absolute_error",
    "mse": "mean_squared_error",
    "MSE": "mean_squared_error",
    "mape": "mean_absolute_percentage_error",
    "MAPE": "mean_absolute_percentage_error",
    "msle": "mean_squared_logarithmic_error",
    "MSLE": "mean_squared_logarithmic_error",
    "huber_loss": "huber",
    "logcosh": "log_cosh",
}

_TABLE = {
    name: f"losses_jax.{module}:{name}" for module, names in _FAMILIES.items() for name in names
}
_TABLE.update({"Loss": "losses_jax.base:Loss"})
_TABLE.update({"LossFunctionWrapper": "losses_jax.base:LossFunctionWrapper"})


def identifiers() -> list[str]:
    """Every string that :func:`get` accepts.

    Examples:
        >>> "mse" in identifiers() and "CategoricalCrossentropy" in identifiers()
        True
    """
    return sorted([*_TABLE, *_ALIASES])


def _import(path: str):
    module, _, attr = path.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _resolve_name(name: str):
    path = _TABLE.get(_ALIASES.get(name, name))
    if path is None:
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
    return _import(path)


def _name_of_function(fn: Callable) -> str:
    """The registered name of a library function, else ``"module:qualname"``."""
    for name, path in _TABLE.items():
        if path.startswith("losses_jax.") and not name[0].isupper():
            try:
                if _import(path) is fn:
                    return name
            except (ImportError, AttributeError):
                continue
    return f"{fn.__module__}:{fn.__qualname__}"


def _encode(value):
    if isinstance(value, (jax.Array, np.ndarray)):
        return np.asarray(value).tolist()
    if isinstance(value, tuple):
        return list(value)
    if callable(value):
        return _name_of_function(value)
    return value


def serialize(loss) -> dict[str, Any] | str:
    """A JSON-friendly description of a loss instance (dict) or loss function (its name).

    Examples:
        >>> serialize(lj.CategoricalCrossentropy(from_logits=True))["class_name"]
        'CategoricalCrossentropy'
        >>> serialize(lj.mean_squared_error)
        'mean_squared_error'
    """
    if isinstance(loss, Loss):
        cls = type(loss)
        known = _TABLE.get(cls.__name__) == f"{cls.__module__}:{cls.__name__}"
        class_name = cls.__name__ if known else f"{cls.__module__}:{cls.__qualname__}"
        config = {k: _encode(v) for k, v in loss.get_config().items()}
        return {"class_name": class_name, "config": config}
    if callable(loss):
        return _name_of_function(loss)
    raise TypeError(f"Cannot serialize {loss!r}: expected a Loss instance or a function.")


def deserialize(config: Mapping[str, Any] | str):
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


def get(identifier):
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


def to_categorical(labels, num_classes: int | None = None, dtype="float32") -> jax.Array:
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
        if isinstance(labels, jax.core.Tracer):
            labels = labels.astype(jnp.int32)
        elif not np.all(np.mod(np.asarray(labels), 1) == 0):
            raise TypeError(f"`labels` must hold integers; received dtype {labels.dtype}.")
        labels = labels.astype(jnp.int32)
    if labels.ndim > 1 and labels.shape[-1] == 1:
        labels = labels[..., 0]
    if num_classes is None:
        if isinstance(labels, jax.core.Tracer):
            raise ValueError("`num_classes` must be given when `labels` are traced (under jit).")
        num_classes = int(np.max(np.asarray(labels), initial=-1)) + 1
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)
