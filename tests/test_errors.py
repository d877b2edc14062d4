"""Clear errors: each misuse raises ``ValueError``/``TypeError`` at trace time, eagerly and
under :func:`jax.jit`, with a message naming the argument and, where relevant, the shapes.

Every misuse is a :class:`Misuse`: a function of array arguments that triggers the error. It
is run once eagerly and once as ``jax.jit(fn)(*args)``; the exception must be raised while
tracing (a ``ValueError``/``TypeError`` from our code, never an XLA runtime error).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import (
    BY_NAME,
    NUM_CLASSES,
    Entry,
    Inputs,
    available_entries,
    call_loss,
)

import losses_jax as lj

BATCH = (4,)


@dataclasses.dataclass(frozen=True)
class Misuse:
    """``fn(*args)`` must raise ``errors`` with every string of ``mentions`` in the message."""

    id: str
    fn: Callable
    args: tuple
    mentions: tuple[str, ...]
    errors: tuple[type, ...] = (ValueError, TypeError)


def _shape_text(shape) -> str:
    return str(tuple(shape))


def misuse_params(misuses: list[Misuse]):
    return [pytest.param(m, id=m.id) for m in misuses]


def assert_raises_clearly(misuse: Misuse, jit: bool):
    fn = jax.jit(misuse.fn) if jit else misuse.fn
    with pytest.raises(misuse.errors) as info:
        fn(*misuse.args)
    message = str(info.value)
    missing = [text for text in misuse.mentions if text not in message]
    assert not missing, f"message {message!r} does not mention {missing}"


def _available(names) -> list[Entry]:
    return [BY_NAME[name] for name in names if BY_NAME[name].available]


def _build_and_call(entry: Entry, build: dict, inputs: Inputs, y_pred, **call_kwargs):
    """``entry.build(**build)`` called on ``inputs`` with ``y_pred`` (building may raise)."""
    return call_loss(entry.build(None, **build), inputs, y_pred, **call_kwargs)


def _call_on_labels(entry: Entry, y_true, y_pred, **call_kwargs):
    """The default loss of ``entry`` on explicit ``y_true`` and ``y_pred``."""
    return entry.build()(y_true, y_pred, **call_kwargs)


def _call_function(fn_name: str, options: dict, y_true, y_pred):
    return getattr(lj, fn_name)(y_true, y_pred, **options)


# --------------------------------------------------------------------------------------
# the misuses
# --------------------------------------------------------------------------------------
def _reduction_misuses() -> list[Misuse]:
    out = []
    for entry in available_entries():
        inputs = entry.inputs(0, BATCH)
        fn = partial(_build_and_call, entry, {"reduction": "avg"}, inputs)
        out.append(Misuse(f"{entry.name}-reduction", fn, (inputs.y_pred,), ("reduction", "avg")))
    return out


# (class, option, bad value, function) for the option range checks of the issue.
OPTION_RANGES = [
    ("BinaryCrossentropy", "label_smoothing", 1.5, "binary_crossentropy"),
    ("BinaryCrossentropy", "label_smoothing", -0.1, "binary_crossentropy"),
    ("BinaryFocalCrossentropy", "label_smoothing", 2.0, "binary_focal_crossentropy"),
    ("CategoricalCrossentropy", "label_smoothing", 1.01, "categorical_crossentropy"),
    ("CategoricalCrossentropy", "label_smoothing", -1.0, "categorical_crossentropy"),
    ("CategoricalFocalCrossentropy", "label_smoothing", 3.0, "categorical_focal_crossentropy"),
    ("LinearCrossEntropy", "label_smoothing", 1.5, None),
    ("BinaryFocalCrossentropy", "gamma", -1.0, "binary_focal_crossentropy"),
    ("CategoricalFocalCrossentropy", "gamma", -0.5, "categorical_focal_crossentropy"),
    ("Huber", "delta", 0.0, "huber"),
    ("Huber", "delta", -1.0, "huber"),
    ("CategoricalGeneralizedCrossEntropy", "q", 0.0, "categorical_generalized_cross_entropy"),
    ("CategoricalGeneralizedCrossEntropy", "q", 1.5, "categorical_generalized_cross_entropy"),
    ("CategoricalGeneralizedCrossEntropy", "q", -0.2, "categorical_generalized_cross_entropy"),
    ("MultiMargin", "p", 3, "multi_margin"),
    ("MultiMargin", "p", 0, "multi_margin"),
    ("MultiMargin", "p", 1.5, "multi_margin"),
    ("MultiMargin", "margin", float("nan"), "multi_margin"),
    ("MultiMargin", "margin", "wide", "multi_margin"),
    ("MarginRanking", "margin", float("nan"), None),
    ("HingeEmbedding", "margin", "wide", "hinge_embedding"),
    ("CosineEmbedding", "margin", float("nan"), None),
    ("PolyCrossentropy", "label_smoothing", 1.5, "poly_crossentropy"),
    ("Poisson", "eps", -1e-3, "poisson"),
    ("GaussianNLL", "eps", 0.0, "gaussian_nll"),
    ("BinaryCrossentropy", "pos_weight", -2.0, "binary_crossentropy"),
    ("SmoothL1", "beta", -0.5, "smooth_l1"),
    ("Pinball", "tau", 1.5, "pinball"),
    ("Pinball", "tau", -0.1, "pinball"),
    ("GeneralizedDice", "smooth", -1.0, "generalized_dice"),
]


def _option_misuses() -> list[Misuse]:
    out = []
    for name, option, bad, fn_name in OPTION_RANGES:
        entry = BY_NAME[name]
        if not entry.available:
            continue
        inputs = entry.inputs(0, BATCH)
        mentions = (option, repr(bad))
        fn = partial(_build_and_call, entry, {option: bad}, inputs)
        out.append(Misuse(f"{name}-{option}={bad}", fn, (inputs.y_pred,), mentions))
        if fn_name is not None:
            fn = partial(_call_function, fn_name, {option: bad})
            args = (inputs.y_true, inputs.y_pred)
            out.append(Misuse(f"{fn_name}-{option}={bad}", fn, args, mentions))
    return out


def _dense_shape_misuses() -> list[Misuse]:
    """``y_true`` with one more feature/class than ``y_pred``: shapes that cannot match."""
    out = []
    for entry in available_entries():
        if entry.sparse_labels:
            continue
        inputs = entry.inputs(0, BATCH)
        y_pred = inputs.y_pred
        y_true = np.zeros((*y_pred.shape[:-1], y_pred.shape[-1] + 1), np.float32)
        fn = partial(_call_on_labels, entry, **inputs.extra)  # e.g. y_pred_other
        mentions = (_shape_text(y_true.shape), _shape_text(y_pred.shape))
        out.append(Misuse(f"{entry.name}-shapes", fn, (y_true, y_pred), mentions))
    return out


def _sparse_rank_misuses() -> list[Misuse]:
    """Integer labels whose rank (or shape) does not fit the predictions."""
    out = []
    for entry in _available(
        ["SparseCategoricalCrossentropy", "CategoricalGeneralizedCrossEntropy", "Sparsemax"]
    ):
        y_pred = entry.inputs(0, BATCH).y_pred
        for labels_shape in [(4, 3), (4, 2, 1), (5,)]:
            labels = np.zeros(labels_shape, np.int32)
            fn = partial(_call_on_labels, entry)
            mentions = (_shape_text(labels_shape), _shape_text(y_pred.shape))
            label = f"{entry.name}-labels{labels_shape}"
            out.append(Misuse(label, fn, (labels, y_pred), mentions))
    for entry in _available(["LinearCrossEntropy"]):
        inputs = entry.inputs(0, BATCH)
        labels = np.zeros((4, 3), np.int32)

        def lce(labels, embeddings, classifier, entry=entry):
            return _call_on_labels(entry, labels, embeddings, classifier=classifier)

        mentions = ("labels", _shape_text(labels.shape), _shape_text(inputs.y_pred.shape))
        args = (labels, inputs.y_pred, inputs.extra["classifier"])
        out.append(Misuse("LinearCrossEntropy-labels(4, 3)", lce, args, mentions))
        classifier = np.zeros((inputs.y_pred.shape[-1] + 1, 3), np.float32)
        mentions = ("classifier", _shape_text(classifier.shape))
        args = (inputs.y_true, inputs.y_pred, classifier)
        out.append(Misuse("LinearCrossEntropy-classifier", lce, args, mentions))
    return out


AXIS_OPTIONS = [
    ("BinaryCrossentropy", 2),
    ("BinaryFocalCrossentropy", -3),
    ("CategoricalCrossentropy", 2),
    ("CategoricalFocalCrossentropy", 5),
    ("SparseCategoricalCrossentropy", 2),
    ("CosineSimilarity", 2),
    ("Dice", 3),
    ("Dice", (0, 2)),
    ("Tversky", -3),
]


def _axis_misuses() -> list[Misuse]:
    out = []
    for name, axis in AXIS_OPTIONS:
        entry = BY_NAME[name]
        if not entry.available:
            continue
        inputs = entry.inputs(0, BATCH)
        fn = partial(_build_and_call, entry, {"axis": axis}, inputs)
        out.append(Misuse(f"{name}-axis={axis}", fn, (inputs.y_pred,), ("axis",)))
    return out


def _sample_weight_misuses() -> list[Misuse]:
    out = []
    for entry in available_entries():
        inputs = entry.inputs(0, BATCH)
        for weight_shape in [(7,), (4, 9)]:
            weight = np.ones(weight_shape, np.float32)

            def fn(y_pred, weight, entry=entry, inputs=inputs):
                return _build_and_call(entry, {}, inputs, y_pred, sample_weight=weight)

            mentions = ("sample_weight", _shape_text(weight_shape))
            label = f"{entry.name}-sample_weight{weight_shape}"
            out.append(Misuse(label, fn, (inputs.y_pred, weight), mentions))
    return out


def _bad_y_pred_misuses() -> list[Misuse]:
    out = []
    for entry in available_entries():
        inputs = entry.inputs(0, BATCH)
        complex_pred = inputs.y_pred.astype(np.complex64)
        fn = partial(_build_and_call, entry, {}, inputs)
        # LinearCrossEntropy's y_pred is its `embeddings` argument.
        name = "embeddings" if entry.name == "LinearCrossEntropy" else "y_pred"
        out.append(Misuse(f"{entry.name}-complex", fn, (complex_pred,), (name, "complex")))
        # Strings cannot be jit arguments: they are closed over instead.
        strings = partial(fn, np.full(inputs.y_pred.shape, "x"))
        out.append(Misuse(f"{entry.name}-strings", strings, (), (name,)))
    return out


def _circle_misuses() -> list[Misuse]:
    if not BY_NAME["Circle"].available:
        return []
    embeddings = BY_NAME["Circle"].inputs(0, BATCH).y_pred

    fn = partial(_call_on_labels, BY_NAME["Circle"])
    out = []
    for labels_shape in [(2, 2), (4, 1), ()]:
        labels = np.zeros(labels_shape, np.int32)
        mentions = ("y_true", "rank 1", _shape_text(labels_shape))
        out.append(Misuse(f"Circle-labels{labels_shape}", fn, (labels, embeddings), mentions))
    labels = np.zeros((5,), np.int32)
    mentions = ("y_true", "y_pred", "5", _shape_text(embeddings.shape))
    out.append(Misuse("Circle-batch-mismatch", fn, (labels, embeddings), mentions))
    return out


def _ctc_misuses() -> list[Misuse]:
    if not BY_NAME["CTC"].available:  # the CTC family is not in this build yet
        return []
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 6, NUM_CLASSES)).astype(np.float32)
    labels = np.ones((3, 2), np.int32)
    lengths = np.full((3,), 6, np.int32)
    label_lengths = np.full((3,), 2, np.int32)
    cases = {
        "output-rank-2": (labels, logits[:, :, 0], label_lengths, lengths, "output"),
        "output-rank-4": (labels, logits[..., None], label_lengths, lengths, "output"),
        "target-rank-1": (labels[:, 0], logits, label_lengths, lengths, "target"),
        "target-batch": (labels[:2], logits, label_lengths, lengths, "target"),
        "target_length-batch": (labels, logits, label_lengths[:2], lengths, "target_length"),
        "output_length-batch": (labels, logits, label_lengths, lengths[:1], "output_length"),
        "output_length-rank": (labels, logits, label_lengths, lengths[:, None], "output_length"),
    }
    out = []
    for case, (*args, name) in cases.items():
        bad = dict(zip(("target", "output", "target_length", "output_length"), args))[name]
        mentions = (name, _shape_text(np.shape(bad)))
        out.append(Misuse(f"ctc_loss-{case}", lj.ctc_loss, tuple(args), mentions))
    # The catalogue's class: Keras's y_true (B, L) and y_pred (B, T, K).
    ctc = partial(_call_on_labels, BY_NAME["CTC"])
    class_cases = {
        "y_true-rank-1": (labels[:, 0], logits, ("y_true", "(3,)")),
        "y_pred-rank-2": (labels, logits[..., 0], ("y_pred", "(3, 6)")),
        "batch": (labels[:2], logits, ("(2, 2)", "(3, 6, 5)")),
    }
    for case, (y_true, y_pred, mentions) in class_cases.items():
        out.append(Misuse(f"CTC-{case}", ctc, (y_true, y_pred), mentions))
    return out


def _class_weight_misuses() -> list[Misuse]:
    """Per-class weights of the wrong length or rank, and GaussianNLL's variance."""
    out = []
    for name in ("BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy"):
        entry = BY_NAME[name]
        inputs = entry.inputs(0, BATCH)
        width = inputs.y_pred.shape[-1]
        fn = partial(_build_and_call, entry, {"class_weight": (1.0, 2.0, 3.0)}, inputs)
        mentions = ("class_weight", "(3,)", f"({width},)")
        out.append(Misuse(f"{name}-class_weight-length", fn, (inputs.y_pred,), mentions))
        fn = partial(_build_and_call, entry, {"class_weight": [[1.0] * width] * 2}, inputs)
        mentions = ("class_weight", f"(2, {width})")
        out.append(Misuse(f"{name}-class_weight-rank", fn, (inputs.y_pred,), mentions))
    entry = BY_NAME["GaussianNLL"]
    inputs = entry.inputs(0, BATCH)
    variance = np.ones((4, 3), np.float32)

    def gaussian(y_pred, variance=None):
        return entry.build()(inputs.y_true, y_pred, variance=variance)

    mentions = ("variance", "(4, 3)", _shape_text(inputs.y_pred.shape))
    out.append(Misuse("GaussianNLL-variance-shape", gaussian, (inputs.y_pred, variance), mentions))
    out.append(Misuse("GaussianNLL-no-variance", gaussian, (inputs.y_pred,), ("variance=",)))
    return out


def _margin_and_ranking_misuses() -> list[Misuse]:
    """Shapes of class weights, target lists, second predictions and list masks."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4, NUM_CLASSES)).astype(np.float32)
    labels = np.zeros(4, np.int32)
    short_weight = (1.0, 2.0, 3.0)
    out = [
        Misuse(
            "MultiMargin-class_weight-length",
            lambda t, p: lj.MultiMargin(class_weight=short_weight)(t, p),
            (labels, scores),
            ("class_weight", f"({NUM_CLASSES},)", "(3,)"),
        ),
        Misuse(
            "multilabel_soft_margin-class_weight-length",
            lambda t, p: lj.multilabel_soft_margin(t, p, class_weight=short_weight),
            (np.zeros_like(scores), scores),
            ("class_weight", f"({NUM_CLASSES},)", "(3,)"),
        ),
        Misuse(
            "MultilabelSoftMargin-class_weight-2d",
            lambda p: lj.MultilabelSoftMargin(class_weight=[[1.0, 2.0]])(p, p),
            (scores,),
            ("class_weight", "(1, 2)"),
        ),
        Misuse(
            "multiclass_hinge-labels(4, 3)",
            lj.multiclass_hinge,
            (np.zeros((4, 3), np.int32), scores),
            ("(4, 3)", f"(4, {NUM_CLASSES})"),
        ),
        Misuse(
            "MulticlassPerceptron-scalar-scores",
            lambda t, p: lj.MulticlassPerceptron()(t, p),
            (np.int32(0), np.float32(1.0)),
            ("y_pred", "scalar"),
        ),
        Misuse(
            "MultilabelMargin-shapes",
            lambda t, p: lj.MultilabelMargin()(t, p),
            (np.zeros((4, 2), np.int32), scores),
            ("y_true", "(4, 2)", f"(4, {NUM_CLASSES})"),
        ),
        Misuse(
            "MarginRanking-missing-y_pred_other",
            lambda t, p: lj.MarginRanking()(t, p),
            (labels.astype(np.float32), scores[:, 0]),
            ("y_pred_other",),
        ),
        Misuse(
            "MarginRanking-y_pred_other-shape",
            lambda t, p, o: lj.MarginRanking()(t, p, y_pred_other=o),
            (labels.astype(np.float32), scores[:, 0], scores[:3, 0]),
            ("y_pred_other", "(3,)", "(4,)"),
        ),
        Misuse(
            "CosineEmbedding-y_pred_other-shape",
            lambda t, p, o: lj.CosineEmbedding()(t, p, y_pred_other=o),
            (labels.astype(np.float32), scores, scores[:, :2]),
            ("y_pred_other", "(4, 2)", f"(4, {NUM_CLASSES})"),
        ),
        Misuse(
            "cosine_embedding-y_true-shape",
            lambda t, p: lj.cosine_embedding(t, p, y_pred_other=p),
            (np.ones((4, 3), np.float32), scores),
            ("y_true", "(4, 3)", "(4,)"),
        ),
    ]
    for name in ("ListwiseSoftmax", "PairwiseLogistic", "PairwiseHinge"):
        for key, bad in (("where", np.ones((4, 2), bool)), ("item_weight", np.ones((3, 1)))):
            out.append(
                Misuse(
                    f"{name}-{key}-shape",
                    lambda t, p, x, name=name, key=key: getattr(lj, name)()(t, p, **{key: x}),
                    (np.zeros_like(scores), scores, bad),
                    (key, _shape_text(bad.shape), f"(4, {NUM_CLASSES})"),
                )
            )
    return out


MISUSES = [
    *_reduction_misuses(),
    *_option_misuses(),
    *_dense_shape_misuses(),
    *_sparse_rank_misuses(),
    *_axis_misuses(),
    *_sample_weight_misuses(),
    *_bad_y_pred_misuses(),
    *_circle_misuses(),
    *_ctc_misuses(),
    *_margin_and_ranking_misuses(),
    *_class_weight_misuses(),
]


@pytest.mark.parametrize("misuse", misuse_params(MISUSES))
@pytest.mark.parametrize(
    "jit",
    # The checks run in Python either way; the eager run also computes the loss: slow tier.
    [pytest.param(False, id="eager", marks=pytest.mark.slow), pytest.param(True, id="jit")],
)
def test_misuse_raises_a_clear_error(misuse, jit):
    assert_raises_clearly(misuse, jit)


# --------------------------------------------------------------------------------------
# registry and config errors (Python-level: no arrays involved)
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("identifier", "suggestion"),
    [
        ("mean_sqared_error", "mean_squared_error"),
        ("BinaryCrossEntropy", "BinaryCrossentropy"),
        ("categorical_crosentropy", "categorical_crossentropy"),
        ("huber_los", "huber_loss"),
    ],
)
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_unknown_identifier_suggests_the_closest_names(identifier, suggestion, jit):
    def fn(x):
        return lj.get(identifier)(x, x)

    with pytest.raises(ValueError) as info:
        (jax.jit(fn) if jit else fn)(jnp.ones((2, 2)))
    assert repr(identifier) in str(info.value)
    assert suggestion in str(info.value)


@pytest.mark.parametrize("name", [e.name for e in available_entries()])
def test_from_config_rejects_unknown_keys(name):
    entry = BY_NAME[name]
    config = {**entry.build().get_config(), "not_an_option": 1}
    with pytest.raises((ValueError, TypeError), match="not_an_option"):
        entry.cls.from_config(config)


@pytest.mark.parametrize("name", [e.name for e in available_entries()])
def test_deserialize_rejects_unknown_keys(name):
    config = {"class_name": name, "config": {"not_an_option": 1}}
    with pytest.raises((ValueError, TypeError), match="not_an_option"):
        lj.deserialize(config)


# --------------------------------------------------------------------------------------
# integer class ids given to a loss that takes one-hot (or multi-label) targets
# --------------------------------------------------------------------------------------
_IDS = np.array([[1], [0], [3], [2]], np.int32)  # (B, 1): the most common Keras mistake
_SCORES = np.zeros((4, NUM_CLASSES), np.float32)

SAME_SHAPE_MISUSES = [
    Misuse(
        f"{name}-class-ids",
        partial(lambda loss, y_true, y_pred: loss(y_true, y_pred), getattr(lj, name)()),
        (_IDS, _SCORES),
        ("same shape", "(4, 1)", f"(4, {NUM_CLASSES})", "SparseCategoricalCrossentropy"),
    )
    for name in (
        "CategoricalCrossentropy",
        "CategoricalFocalCrossentropy",
        "BinaryCrossentropy",
        "BinaryFocalCrossentropy",
    )
] + [
    Misuse(
        "categorical_crossentropy-wider-targets",
        lambda y_true, y_pred: lj.categorical_crossentropy(y_true, y_pred),
        (np.zeros((4, 1, NUM_CLASSES), np.float32), np.zeros((4, 3, NUM_CLASSES), np.float32)),
        ("same shape", f"(4, 1, {NUM_CLASSES})", f"(4, 3, {NUM_CLASSES})"),
    ),
]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("misuse", misuse_params(SAME_SHAPE_MISUSES))
def test_class_ids_given_to_a_dense_target_loss(misuse, jit):
    assert_raises_clearly(misuse, jit)


_LOGITS = np.zeros((4, NUM_CLASSES), np.float32)
_LABELS = np.array([1, 0, 3, 2], np.int32)

WEIGHT_AND_ORDER_MISUSES = [
    Misuse(
        f"{name}-optax-argument-order",
        partial(lambda loss, y_true, y_pred: loss(y_true, y_pred), getattr(lj, name)(**options)),
        (_LOGITS, _LABELS),  # optax's (logits, labels)
        ("look swapped", "(y_true, y_pred)", "(4, 5)", "(4,)"),
    )
    for name, options in (
        ("SparseCategoricalCrossentropy", {"from_logits": True}),
        ("SparseCategoricalCrossentropy", {}),
    )
] + [
    Misuse(
        "mask-of-the-wrong-shape",
        lambda y_true, y_pred: lj.MeanSquaredError()(y_true, y_pred, mask=np.ones(3, bool)),
        (np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32)),
        ("`mask`", "(3,)", "(4,)"),
    ),
    Misuse(
        "mask-and-weight-of-the-wrong-shape",
        lambda y_true, y_pred: lj.MeanSquaredError()(
            y_true, y_pred, sample_weight=np.ones(3), mask=np.ones(3, bool)
        ),
        (np.zeros((4, 2), np.float32), np.zeros((4, 2), np.float32)),
        ("`sample_weight * mask`", "(3,)", "(4,)"),
    ),
]


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("misuse", misuse_params(WEIGHT_AND_ORDER_MISUSES))
def test_weights_and_argument_order_misuses(misuse, jit):
    assert_raises_clearly(misuse, jit)
