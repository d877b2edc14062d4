"""losses_jax: every Keras 3 loss in pure JAX, plus fast CTC and logit-free large-vocabulary CE."""

import importlib as _importlib

from losses_jax.base import Loss, LossFunctionWrapper, reduce_weighted_values
from losses_jax.registry import deserialize, get, identifiers, serialize, to_categorical

__version__ = "0.1.0"

__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "deserialize",
    "get",
    "identifiers",
    "reduce_weighted_values",
    "serialize",
    "to_categorical",
]

# Interim while the family modules are written in parallel: re-export whatever exists.
for _family in ("probabilistic", "regression", "hinge", "segmentation", "sequence", "large_vocab"):
    try:
        _module = _importlib.import_module(f"losses_jax.{_family}")
    except ModuleNotFoundError:
        continue
    for _name in getattr(_module, "__all__", ()):
        globals()[_name] = getattr(_module, _name)
        __all__.append(_name)
