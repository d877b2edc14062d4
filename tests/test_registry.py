"""Tests for losses_jax.registry: identifiers, get/serialize/deserialize, to_categorical."""

import inspect
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import losses_jax as lj
from losses_jax.registry import identifiers


def keras_identifiers(keras):
    from keras.src.losses import ALL_OBJECTS_DICT

    return sorted(ALL_OBJECTS_DICT)


def test_every_keras_identifier_resolves(keras):
    missing = [name for name in keras_identifiers(keras) if name not in identifiers()]
    assert missing == []


def test_get_matches_keras_kind_for_every_identifier(keras):
    for name in keras_identifiers(keras):
        if name in ("Loss", "LossFunctionWrapper"):  # abstract / needs `fn`
            continue
        ours, theirs = lj.get(name), keras.losses.get(name)
        assert inspect.isclass(type(ours))
        assert isinstance(ours, lj.Loss) == isinstance(theirs, keras.losses.Loss), name
        if isinstance(ours, lj.Loss):
            assert type(ours).__name__ == type(theirs).__name__
        else:
            assert ours.__name__ == theirs.__name__, name


@pytest.mark.parametrize("alias,target", [("kld", "kl_divergence"), ("huber_loss", "huber"),
                                          ("logcosh", "log_cosh"), ("MSLE", "mean_squared_logarithmic_error"),
                                          ("kullback_leibler_divergence", "kl_divergence")])  # fmt: skip
def test_aliases(alias, target):
    assert lj.get(alias) is lj.get(target)


def test_get_passes_callables_and_none_through():
    def my_loss(y_true, y_pred):
        return jnp.sum(y_pred - y_true, axis=-1)

    assert lj.get(my_loss) is my_loss
    assert lj.get(None) is None
    instance = lj.MeanSquaredError()
    assert lj.get(instance) is instance
    assert isinstance(lj.get(lj.MeanSquaredError), lj.MeanSquaredError)


def test_unknown_identifier_suggests_closest():
    with pytest.raises(ValueError, match="Did you mean 'categorical_crossentropy'"):
        lj.get("categorical_crossentropi")
    with pytest.raises(ValueError, match="Unknown loss identifier 'zzz'"):
        lj.get("zzz")
    with pytest.raises(ValueError, match="interpret"):
        lj.get(3)


@pytest.mark.parametrize("name", [n for n in identifiers() if n[0].isupper() and n not in
                                  ("Loss", "LossFunctionWrapper", "LinearCrossEntropy", "Circle")])  # fmt: skip
def test_class_serialization_round_trips_through_json(name):
    loss = lj.get(name)
    config = lj.serialize(loss)
    restored = lj.deserialize(json.loads(json.dumps(config)))
    assert restored == loss
    assert lj.get(config) == loss


def test_config_dict_identifier_like_keras():
    loss = lj.get({"class_name": "CategoricalCrossentropy", "config": {"from_logits": True}})
    assert isinstance(loss, lj.CategoricalCrossentropy)
    assert loss.get_config()["from_logits"] is True


def test_wrapper_of_library_function_serializes_by_name():
    loss = lj.LossFunctionWrapper(lj.mean_absolute_error, reduction="sum")
    config = lj.serialize(loss)
    assert config["config"]["fn"] == "mean_absolute_error"
    assert lj.deserialize(json.loads(json.dumps(config))) == loss


def test_function_serialization():
    assert lj.serialize(lj.categorical_crossentropy) == "categorical_crossentropy"
    assert lj.deserialize("categorical_crossentropy") is lj.categorical_crossentropy


def test_deserialize_rejects_malformed():
    with pytest.raises(ValueError, match="class_name"):
        lj.deserialize({"config": {}})
    with pytest.raises(ValueError, match="not name a Loss class"):
        lj.deserialize({"class_name": "mse"})


@pytest.mark.parametrize("shape", [(5,), (5, 1), (2, 3)])
def test_to_categorical_matches_keras(keras, shape, rng):
    labels = rng.integers(0, 4, size=shape)
    np.testing.assert_array_equal(
        lj.to_categorical(labels, 4), keras.utils.to_categorical(labels, 4)
    )
    np.testing.assert_array_equal(lj.to_categorical(labels), keras.utils.to_categorical(labels))


def test_to_categorical_under_jit_needs_num_classes():
    labels = jnp.array([1, 0])
    out = jax.jit(lambda x: lj.to_categorical(x, 3))(labels)
    np.testing.assert_array_equal(out, [[0, 1, 0], [1, 0, 0]])
    with pytest.raises(ValueError, match="num_classes"):
        jax.jit(lj.to_categorical)(labels)


# --------------------------------------------------------------------------------------
# Keras 2.3, tf.keras 1.15 and R keras names
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["cosine_proximity", "cosine"])
def test_keras2_cosine_identifiers(name):
    # tf.keras 1.15's docs: y_true [[0, 1], [1, 1]], y_pred [[1, 0], [1, 1]] -> [-0., -1.].
    loss = lj.get(name)
    assert loss is lj.cosine_similarity
    values = loss(jnp.array([[0.0, 1.0], [1.0, 1.0]]), jnp.array([[1.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(values, [0.0, -1.0], atol=1e-6)


def test_reduction_auto_means_sum_over_batch_size():
    # tf.keras 1.15's CosineSimilarity docs: the mean of [-0., -1.] with the default "auto".
    y_true, y_pred = jnp.array([[0.0, 1.0], [1.0, 1.0]]), jnp.array([[1.0, 0.0], [1.0, 1.0]])
    for reduction in ("auto", lj.Reduction.AUTO):
        loss = lj.CosineSimilarity(axis=1, reduction=reduction)
        assert loss.reduction == "sum_over_batch_size"
        np.testing.assert_allclose(loss(y_true, y_pred), -0.5, atol=1e-6)
    # tf.keras 1.15's MeanSquaredError docs: [[0., 1.], [0., 0.]] vs [[1., 1.], [1., 0.]] -> 0.5.
    mse = lj.MeanSquaredError(reduction=lj.Reduction.SUM_OVER_BATCH_SIZE)
    np.testing.assert_allclose(mse([[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]]), 0.5)
    assert float(lj.MeanSquaredError(reduction=lj.Reduction.SUM)(
        [[0.0, 1.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 0.0]])) == 1.0  # fmt: skip
    assert lj.MeanSquaredError(reduction=lj.Reduction.NONE).reduction == "none"


def test_reduction_constants_validate():
    assert lj.Reduction.all() == ("auto", "none", "sum", "sum_over_batch_size")
    lj.Reduction.validate("auto")
    with pytest.raises(ValueError, match="Invalid Reduction Key"):
        lj.Reduction.validate("mean_everything")
