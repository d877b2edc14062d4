"""Getting started: a flax model trained with optax and a losses_jax loss."""

import jax
import jax.numpy as jnp
import optax
from flax import nnx

import losses_jax as lj

x = jax.random.normal(jax.random.key(0), (128, 8))
labels = jnp.argmax(x[:, :4], axis=-1)  # four classes, a rule the model can learn

model = nnx.Linear(8, 4, rngs=nnx.Rngs(0))
optimizer = nnx.Optimizer(model, optax.adam(5e-2), wrt=nnx.Param)
loss_fn = lj.SparseCategoricalCrossentropy(from_logits=True)


@nnx.jit
def train_step(model, optimizer, x, labels):
    loss, grads = nnx.value_and_grad(lambda model: loss_fn(labels, model(x)))(model)
    optimizer.update(model, grads)
    return loss


first = train_step(model, optimizer, x, labels)
for _ in range(200):
    loss = train_step(model, optimizer, x, labels)
print(f"loss: {float(first):.3f} -> {float(loss):.3f}")
