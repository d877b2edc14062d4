"""losses_jax: differentiable loss functions for JAX.

Every loss is a per-sample function and a :class:`Loss` class that reduces it, with Keras 3's
names, options and numbers. The families live in :mod:`losses_jax.losses`; everything they
export is exported here too.
"""

from losses_jax import losses
from losses_jax import migration as migration  # the optax and PyTorch migration tables
from losses_jax.base import Loss, LossFunctionWrapper, Reduction, reduce_weighted_values
from losses_jax.checks import checked
from losses_jax.decoding import ctc_beam_search_decode, ctc_greedy_decode
from losses_jax.losses import *  # noqa: F403
from losses_jax.registry import deserialize, get, identifiers, serialize, to_categorical

__version__ = "0.1.0"

__all__ = [
    "Loss",
    "LossFunctionWrapper",
    "Reduction",
    "checked",
    "ctc_beam_search_decode",
    "ctc_greedy_decode",
    "deserialize",
    "get",
    "identifiers",
    "reduce_weighted_values",
    "serialize",
    "to_categorical",
]
__all__ += losses.__all__
