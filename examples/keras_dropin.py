"""losses_jax as a drop-in Keras 3 loss (JAX backend).

``model.compile(loss=lj.CategoricalCrossentropy(...))``: Keras calls the loss inside its jitted
train step exactly as it calls its own losses. The script trains the same small network on
scikit-learn's digits twice, once with ``keras.losses.CategoricalCrossentropy`` and once with
``lj.CategoricalCrossentropy``, from the same initial weights, and compares the histories.

With ``sample_weight`` in ``fit``, pass ``reduction="none"``: Keras then weights and reduces the
per-sample losses itself (a reducing loss would hand Keras an already averaged scalar).

Run: ``python examples/keras_dropin.py``.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import losses_jax as lj  # noqa: E402

NUM_CLASSES = 10


def digits(seed: int):
    """One-hot digits, pixels scaled to [0, 1], stratified 75/25 split."""
    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    y = keras.utils.to_categorical(data.target, NUM_CLASSES).astype("float32")
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=data.target)


def build_model(seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(NUM_CLASSES),  # logits
        ]
    )


def train(loss, data, seed: int, epochs: int) -> dict:
    """Compiles a fresh model with ``loss``, fits it, returns its history and test metrics."""
    x_train, x_test, y_train, y_test = data
    model = build_model(seed)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss, metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=64, epochs=epochs, shuffle=False, verbose=0)
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    return {"loss": history.history["loss"], "test_loss": test_loss, "test_accuracy": test_accuracy}


def main(seed: int = 0, epochs: int = 10) -> dict:
    data = digits(seed)
    results = {
        "keras": train(keras.losses.CategoricalCrossentropy(from_logits=True), data, seed, epochs),
        "losses_jax": train(lj.CategoricalCrossentropy(from_logits=True), data, seed, epochs),
    }
    for name, result in results.items():
        print(
            f"{name:<11} final train loss {result['loss'][-1]:.4f}  "
            f"test loss {result['test_loss']:.4f}  test accuracy {result['test_accuracy']:.4f}"
        )
    gap = np.max(np.abs(np.subtract(results["keras"]["loss"], results["losses_jax"]["loss"])))
    print(f"largest per-epoch train-loss difference, keras vs losses_jax: {gap:.2e}")

    # Weighted training: reduction="none" lets Keras apply sample_weight and reduce.
    x_train, _, y_train, _ = data
    weights = np.where(y_train.argmax(-1) == 0, 2.0, 1.0).astype("float32")
    model = build_model(seed)
    model.compile(
        optimizer="adam", loss=lj.CategoricalCrossentropy(from_logits=True, reduction="none")
    )
    weighted = model.fit(x_train, y_train, sample_weight=weights, epochs=1, verbose=0)
    print(f"one weighted epoch (zeros count double): loss {weighted.history['loss'][-1]:.4f}")
    return {**results, "max_loss_gap": float(gap)}


if __name__ == "__main__":
    main()
