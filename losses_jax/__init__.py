"""losses_jax: every Keras 3 loss in pure JAX."""

__version__ = "0.1.0"
