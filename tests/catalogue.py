"""A table of every loss class in losses_jax, shared by the cross-cutting test files.

Each :class:`Entry` says how to build its class with each option combination worth testing and
how to generate valid, seeded random inputs of a given batch shape, and which kind of values
``y_pred`` holds (logits, probabilities, real values, embeddings, ...), so that the extreme
input, low-precision, property and gradient tests can run over the whole catalogue. Each entry
also carries its float64 NumPy reference (``tests/references.py``): the per-sample values and,
where an analytic one is known, the gradient.

Shapes: ``batch_shape`` is the leading (batch) dimensions of the per-sample loss; the generators
add the feature/class/time dimensions each loss needs (``Entry.max_batch_rank`` bounds it).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import references as ref

import losses_jax as lj

EPS = 1e-7  # Keras's fuzz factor (backend.epsilon())
NUM_CLASSES = 5
FEATURES = 4
EMBED_DIM = 6
VOCAB = 7
CTC_TIME = 8
CTC_LABEL_LEN = 3


@dataclasses.dataclass(frozen=True)
class Inputs:
    """One set of loss inputs: ``loss(y_true, y_pred, **extra)``."""

    y_true: Any
    y_pred: np.ndarray
    extra: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Entry:
    """How to build, feed and classify one loss class.

    Attributes:
        name: the class name exported by ``losses_jax``.
        options: constructor keyword combinations (reduction and dtype excluded); the first is
            the default construction.
        make_inputs: ``(rng, batch_shape, options, width) -> Inputs`` with valid, typical
            values; ``width`` is the size of the last axis (features, classes, embedding
            size, or the vocabulary of LinearCrossEntropy).
        default_width: the ``width`` used when none is given.
        pred_kind: ``options -> kind`` of ``y_pred``: "logits", "probabilities", "real",
            "rates" (>= 0), "distribution", "masks" (in [0, 1]), "embeddings" or
            "log_probs" (<= 0: log-probabilities of sequences or tokens).
        sparse_labels: whether ``y_true`` holds integer class ids.
        activation: "sigmoid"/"softmax" for losses with ``from_logits`` (maps logits to the
            probabilities ``from_logits=False`` expects), else None.
        max_batch_rank: the largest ``len(batch_shape)`` the loss accepts.
        reference: the float64 NumPy reference of the per-sample values,
            ``(y_true, y_pred, **extra, **options) -> values`` (see tests/references.py;
            :func:`references.reference_values` applies it to :class:`Inputs`).
        reference_grad: ``(y_true, y_pred, **options) -> d sum(values) / d y_pred`` in float64,
            for the losses with an analytic gradient reference, else None.
        per_sample_extra: the keys of ``Inputs.extra`` that hold one row per sample (leading
            batch dimensions, e.g. a second prediction), permuted with the batch.
    """

    name: str
    options: tuple[dict, ...]
    make_inputs: Callable[[np.random.Generator, tuple, dict, int], Inputs]
    pred_kind: Callable[[dict], str]
    default_width: int = FEATURES
    sparse_labels: bool = False
    activation: str | None = None
    max_batch_rank: int = 2
    reference: Callable[..., np.ndarray] | None = None
    reference_grad: Callable[..., np.ndarray] | None = None
    per_sample_extra: tuple[str, ...] = ()

    @property
    def cls(self) -> type:
        return getattr(lj, self.name)

    @property
    def available(self) -> bool:
        return hasattr(lj, self.name)

    def build(self, options: dict | None = None, **overrides) -> lj.Loss:
        """The loss built with ``options`` (default: the first combination) and overrides."""
        kwargs = dict(self.options[0] if options is None else options)
        kwargs.update(overrides)
        return self.cls(**kwargs)

    def inputs(
        self,
        seed: int = 0,
        batch_shape: tuple = (4,),
        options: dict | None = None,
        width: int | None = None,
    ) -> Inputs:
        """Seeded valid inputs for ``options`` (default: the first combination)."""
        options = self.options[0] if options is None else options
        if isinstance(options.get("alpha"), (list, tuple)):
            width = len(options["alpha"])  # one focal weight per class
        if isinstance(options.get("class_weight"), (list, tuple)):
            width = len(options["class_weight"])  # one weight per class
        width = self.default_width if width is None else width
        rng = np.random.default_rng(seed)
        return self.make_inputs(rng, tuple(batch_shape), options, width)

    def has_option(self, option: str) -> bool:
        return option in inspect.signature(self.cls.__init__).parameters


def option_id(options: dict) -> str:
    """A short readable test id for an option combination."""
    if not options:
        return "default"
    return ",".join(f"{k}={v}" for k, v in options.items())


# --------------------------------------------------------------------------------------
# kinds of y_pred
# --------------------------------------------------------------------------------------
def _logits_or_probabilities(options: dict) -> str:
    return "logits" if options.get("from_logits", False) else "probabilities"


def _constant(kind: str) -> Callable[[dict], str]:
    return lambda options: kind


def _kind_with(option: str, kind_if_set: str, kind: str) -> Callable[[dict], str]:
    """``kind_if_set`` when the boolean ``option`` is on (e.g. log-rates), else ``kind``."""
    return lambda options: kind_if_set if options.get(option) else kind


# --------------------------------------------------------------------------------------
# input generators (float32 NumPy arrays; integer labels as int32)
# --------------------------------------------------------------------------------------
def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _binary_inputs(rng, batch_shape, options, width):
    shape = (*batch_shape, width)
    y_true = rng.integers(0, 2, size=shape)
    logits = rng.normal(0.0, 2.0, size=shape)
    y_pred = logits if options.get("from_logits") else np.clip(_sigmoid(logits), 0.02, 0.98)
    return Inputs(_f32(y_true), _f32(y_pred))


def _class_scores(rng, batch_shape, options, width):
    logits = rng.normal(0.0, 2.0, size=(*batch_shape, width))
    if options.get("from_logits"):
        return logits
    # Probabilities away from the 1e-7 clip, rows summing to 1.
    p = _softmax(logits) + 0.01
    return p / p.sum(axis=-1, keepdims=True)


def _categorical_inputs(rng, batch_shape, options, width):
    labels = rng.integers(0, width, size=batch_shape)
    y_true = np.eye(width)[labels]
    return Inputs(_f32(y_true), _f32(_class_scores(rng, batch_shape, options, width)))


def _sparse_inputs(rng, batch_shape, options, width):
    labels = rng.integers(0, width, size=batch_shape)
    ignore = options.get("ignore_class")
    if ignore is not None:
        # About a quarter of the positions are ignored.
        labels = np.where(rng.uniform(size=batch_shape) < 0.25, ignore, labels)
    return Inputs(labels.astype(np.int32), _f32(_class_scores(rng, batch_shape, options, width)))


def _real_inputs(rng, batch_shape, options, width):
    shape = (*batch_shape, width)
    return Inputs(_f32(rng.normal(size=shape)), _f32(rng.normal(0.0, 1.5, size=shape)))


def _percentage_inputs(rng, batch_shape, options, width):
    shape = (*batch_shape, width)
    # Targets away from 0: MAPE divides by |y_true|.
    y_true = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 2.0, size=shape)
    return Inputs(_f32(y_true), _f32(rng.normal(size=shape)))


def _positive_inputs(rng, batch_shape, options, width):
    shape = (*batch_shape, width)
    return Inputs(_f32(rng.uniform(0.1, 3.0, size=shape)), _f32(rng.uniform(0.1, 3.0, size=shape)))


def _poisson_inputs(rng, batch_shape, options, width):
    shape = (*batch_shape, width)
    y_true = rng.poisson(1.5, size=shape)
    rates = rng.uniform(0.2, 3.0, size=shape)
    return Inputs(_f32(y_true), _f32(np.log(rates) if options.get("log_input") else rates))


def _distribution_inputs(rng, batch_shape, options, width):
    """Distributions, or their logs (``log_targets``), and distributions or logits."""
    shape = (*batch_shape, width)
    y_true = _softmax(rng.normal(size=shape))
    logits = rng.normal(size=shape)
    y_pred = logits if options.get("from_logits") else _softmax(logits)
    return Inputs(_f32(np.log(y_true) if options.get("log_targets") else y_true), _f32(y_pred))


def _measure_inputs(rng, batch_shape, options, width):
    """Unnormalized measures with some exact zeros, and positive predictions (or their logs)."""
    shape = (*batch_shape, width)
    y_true = np.where(rng.uniform(size=shape) < 0.2, 0.0, rng.uniform(0.0, 2.0, size=shape))
    q = rng.uniform(0.1, 3.0, size=shape)
    return Inputs(_f32(y_true), _f32(np.log(q) if options.get("log_predictions") else q))


def _gaussian_inputs(rng, batch_shape, options, width):
    """Observations, predicted means and one variance per prediction (some below 0.05)."""
    shape = (*batch_shape, width)
    variance = rng.uniform(0.02, 2.0, size=shape)
    return Inputs(
        _f32(rng.normal(size=shape)), _f32(rng.normal(size=shape)), {"variance": _f32(variance)}
    )


def _hinge_inputs(rng, batch_shape, options, width):
    shape = (*batch_shape, width)
    y_true = rng.choice([-1.0, 1.0], size=shape)
    return Inputs(_f32(y_true), _f32(rng.normal(0.0, 1.5, size=shape)))


def _categorical_score_inputs(rng, batch_shape, options, width):
    labels = rng.integers(0, width, size=batch_shape)
    y_true = np.eye(width)[labels]
    return Inputs(_f32(y_true), _f32(rng.normal(size=(*batch_shape, width))))


def _mask_inputs(rng, batch_shape, options, width):
    shape = (*batch_shape, width)
    y_true = rng.integers(0, 2, size=shape)
    return Inputs(_f32(y_true), _f32(rng.uniform(0.05, 0.95, size=shape)))


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _circle_inputs(rng, batch_shape, options, width):
    (batch,) = batch_shape
    labels = rng.integers(0, 3, size=batch)
    embeddings = unit_rows(rng.normal(size=(batch, width)))
    return Inputs(labels.astype(np.int32), _f32(embeddings))


def _ctc_inputs(rng, batch_shape, options, width):
    (batch,) = batch_shape
    num_classes = max(width, 3)  # the blank, labels, and mask_index=2 in range
    blank = options.get("mask_index", 0) % num_classes
    classes = np.array([c for c in range(num_classes) if c != blank])
    # 1..L labels per sequence, right-padded with the blank as Keras's `ctc` expects.
    labels = rng.choice(classes, size=(batch, CTC_LABEL_LEN))
    lengths = rng.integers(1, CTC_LABEL_LEN + 1, size=(batch, 1))
    labels = np.where(np.arange(CTC_LABEL_LEN) < lengths, labels, blank)
    logits = rng.normal(size=(batch, CTC_TIME, num_classes))
    return Inputs(labels.astype(np.int32), _f32(logits))


def _linear_ce_inputs(rng, batch_shape, options, width):
    labels = rng.integers(0, width, size=batch_shape)
    ignore = options.get("ignore_class")
    if ignore is not None:
        labels = np.where(rng.uniform(size=batch_shape) < 0.25, ignore, labels)
    embeddings = rng.normal(size=(*batch_shape, EMBED_DIM))
    classifier = rng.normal(0.0, 0.5, size=(EMBED_DIM, width))
    return Inputs(labels.astype(np.int32), _f32(embeddings), {"classifier": _f32(classifier)})


def _linear_distillation_inputs(rng, batch_shape, options, width):
    """Teacher hidden states (y_true, a wider head) and the student's (y_pred), two classifiers."""
    teacher = rng.normal(size=(*batch_shape, EMBED_DIM + 2))
    student = rng.normal(size=(*batch_shape, EMBED_DIM))
    extra = {
        "classifier": _f32(rng.normal(0.0, 0.5, size=(EMBED_DIM, width))),
        "teacher_classifier": _f32(rng.normal(0.0, 0.5, size=(EMBED_DIM + 2, width))),
    }
    return Inputs(_f32(teacher), _f32(student), extra)


def _class_id_inputs(rng, batch_shape, options, width):
    """Integer class ids and real class scores."""
    labels = rng.integers(0, width, size=batch_shape)
    scores = rng.normal(0.0, 1.5, size=(*batch_shape, width))
    return Inputs(labels.astype(np.int32), _f32(scores))


def _target_list_inputs(rng, batch_shape, options, width):
    """Distinct target ids per sample, padded with -1 (0 to ``width`` targets), and scores."""
    shape = (*batch_shape, width)
    ids = rng.permuted(np.broadcast_to(np.arange(width), shape).copy(), axis=-1)
    lengths = rng.integers(0, width + 1, size=(*batch_shape, 1))
    targets = np.where(np.arange(width) < lengths, ids, -1)
    return Inputs(targets.astype(np.int32), _f32(rng.normal(size=shape)))


def _multilabel_logit_inputs(rng, batch_shape, options, width):
    return _binary_inputs(rng, batch_shape, {"from_logits": True}, width)


def _signs_of(rng, shape) -> np.ndarray:
    return _f32(rng.choice([-1.0, 1.0], size=shape))


def _score_pair_inputs(rng, batch_shape, options, width):
    """+-1 targets and two scores per pair: one pair per entry of the batch shape."""
    first, second = rng.normal(0.0, 1.5, size=(2, *batch_shape))
    return Inputs(_signs_of(rng, batch_shape), _f32(first), {"y_pred_other": _f32(second)})


def _distance_inputs(rng, batch_shape, options, width):
    """+-1 targets and one distance per entry."""
    return Inputs(_signs_of(rng, batch_shape), _f32(rng.uniform(0.0, 3.0, size=batch_shape)))


def _embedding_pair_inputs(rng, batch_shape, options, width):
    """+-1 targets and two embeddings per pair."""
    first, second = rng.normal(size=(2, *batch_shape, width))
    return Inputs(_signs_of(rng, batch_shape), _f32(first), {"y_pred_other": _f32(second)})


def _ranked_list_inputs(rng, batch_shape, options, width):
    """Relevance 0-2, scores, and ``where`` masking about a quarter of the items (never the
    first: every list keeps a valid item)."""
    shape = (*batch_shape, width)
    where = (rng.uniform(size=shape) > 0.25) | (np.arange(width) == 0)
    relevance = rng.integers(0, 3, size=shape)
    scores = rng.normal(0.0, 1.5, size=shape)
    return Inputs(_f32(relevance), _f32(scores), {"where": where})


def _sparse_score_inputs(rng, batch_shape, options, width):
    """Class ids and scores of unit spread: sparsemax supports of one to all classes."""
    labels = rng.integers(0, width, size=batch_shape)
    return Inputs(labels.astype(np.int32), _f32(rng.normal(size=(*batch_shape, width))))


def _binary_logit_inputs(rng, batch_shape, options, width):
    return _binary_inputs(rng, batch_shape, {"from_logits": True}, width)


def _pinball_inputs(rng, batch_shape, options, width):
    if isinstance(options.get("tau"), (list, tuple)):
        width = len(options["tau"])  # one quantile per output
    return _real_inputs(rng, batch_shape, options, width)


SEGMENT_PIXELS = 3


def _segmentation_inputs(rng, batch_shape, options, width):
    """One-hot targets and logits (or probabilities) of shape ``(batch, pixels, classes)``."""
    pixels = (*batch_shape, SEGMENT_PIXELS)
    y_true = np.eye(width)[rng.integers(0, width, size=pixels)]
    scores = _class_scores(rng, pixels, {"from_logits": options.get("from_logits", True)}, width)
    return Inputs(_f32(y_true), _f32(scores))


POLICY_TOKENS = 5


def _log_prob_near(rng, log_probs, spread):
    """Other log-probs of the same completions (a reference or earlier policy), at most -0.01."""
    return np.minimum(log_probs + rng.normal(0.0, spread, size=log_probs.shape), -0.01)


def _preference_pair_inputs(rng, batch_shape, options, width):
    """DPO: reference and policy log-probs of (chosen, rejected) completions, ``(..., 2)``."""
    policy = -rng.uniform(5.0, 40.0, size=(*batch_shape, 2))
    return Inputs(_f32(_log_prob_near(rng, policy, 2.0)), _f32(policy))


def _length_pair_inputs(rng, batch_shape, options, width):
    """SimPO/ORPO: token counts and summed log-probs (averages in [-3, -0.05])."""
    counts = rng.integers(1, 21, size=(*batch_shape, 2)).astype(np.float64)
    return Inputs(_f32(counts), _f32(-counts * rng.uniform(0.05, 3.0, size=counts.shape)))


def _unpaired_feedback_inputs(rng, batch_shape, options, width):
    """KTO: reference and policy log-probs, desirable flags, mismatched pairs' log-probs."""
    policy = -rng.uniform(5.0, 40.0, size=batch_shape)
    mismatched = -rng.uniform(20.0, 60.0, size=batch_shape)
    extra = {
        "desirable": rng.uniform(size=batch_shape) < 0.5,
        "policy_mismatched": _f32(mismatched),
        "reference_mismatched": _f32(_log_prob_near(rng, mismatched, 2.0)),
    }
    return Inputs(_f32(_log_prob_near(rng, policy, 2.0)), _f32(policy), extra)


def _rollout_inputs(rng, batch_shape, options, width):
    """PolicyGradient: sampling-policy and policy per-token log-probs, one advantage per
    sequence, completion masks of 1 to POLICY_TOKENS tokens, and reference log-probs."""
    shape = (*batch_shape, POLICY_TOKENS)
    new = np.log(rng.uniform(0.05, 1.0, size=shape))
    lengths = rng.integers(1, POLICY_TOKENS + 1, size=(*batch_shape, 1))
    extra = {
        "advantages": _f32(rng.normal(size=batch_shape)),
        "token_mask": np.arange(POLICY_TOKENS) < lengths,
        "reference_log_probs": _f32(_log_prob_near(rng, new, 0.5)),
    }
    return Inputs(_f32(_log_prob_near(rng, new, 0.3)), _f32(new), extra)


def _two_tower_inputs(rng, batch_shape, options, width):
    """CLIP/SigLIP: a first tower ``x`` (y_true) and a noisy second view ``y`` (y_pred)."""
    x = rng.normal(size=(*batch_shape, width))
    return Inputs(_f32(x), _f32(x + rng.normal(0.0, 1.0, size=x.shape)))


def _labelled_embedding_inputs(rng, batch_shape, options, width):
    """Class ids among 3 (so that most rows have positives) and one embedding per row."""
    labels = rng.integers(0, 3, size=batch_shape)
    return Inputs(labels.astype(np.int32), _f32(rng.normal(size=(*batch_shape, width))))


def _triplet_inputs(rng, batch_shape, options, width):
    """Anchors (y_true), positives (y_pred) and negatives (``negative=``)."""
    anchor, positive, negative = rng.normal(size=(3, *batch_shape, width))
    return Inputs(_f32(anchor), _f32(positive), {"negative": _f32(negative)})


def _pair_distance_inputs(rng, batch_shape, options, width):
    """0/1 similarity targets and one distance per pair."""
    similar = rng.integers(0, 2, size=batch_shape)
    return Inputs(_f32(similar), _f32(rng.uniform(0.0, 2.0, size=batch_shape)))


def _class_centre_inputs(rng, batch_shape, options, width):
    """ArcFace/CosFace: class ids, embeddings and ``width`` class centres."""
    labels = rng.integers(0, width, size=batch_shape)
    embeddings = rng.normal(size=(*batch_shape, EMBED_DIM))
    centers = rng.normal(size=(width, EMBED_DIM))
    return Inputs(labels.astype(np.int32), _f32(embeddings), {"centers": _f32(centers)})


# --------------------------------------------------------------------------------------
# the table
# --------------------------------------------------------------------------------------
_PLAIN = ({},)
# The list losses mask lists without a valid item in their call, which the sharded suite's
# float64 reduction cannot see: with a (batch, 2) batch and (batch,) weights, a mask changes
# "mean_with_sample_weight"'s divisor (losses_jax.base). tests/test_ranking.py covers batches of
# rank 2 against the references.
_LIST_BATCH_RANK = 1

ENTRIES: tuple[Entry, ...] = (
    # probabilistic
    Entry(
        "BinaryCrossentropy",
        (
            {},
            {"from_logits": True},
            {"label_smoothing": 0.1},
            {"from_logits": True, "label_smoothing": 0.2},
            {"from_logits": True, "class_weight": (0.5, 1.0, 2.0, 1.5), "pos_weight": 2.0},
            {"class_weight": (1.0, 0.2, 1.0, 3.0), "pos_weight": (1.0, 3.0, 0.5, 2.0)},
        ),
        _binary_inputs,
        _logits_or_probabilities,
        activation="sigmoid",
        reference=ref.binary_crossentropy,
    ),
    Entry(
        "BinaryFocalCrossentropy",
        (
            {},
            {"from_logits": True},
            {"gamma": 0.0},
            {"apply_class_balancing": True, "alpha": 0.3},
            {"apply_class_balancing": True, "gamma": 1.5, "from_logits": True},
            {"label_smoothing": 0.1, "from_logits": True},
        ),
        _binary_inputs,
        _logits_or_probabilities,
        activation="sigmoid",
        reference=ref.binary_focal_crossentropy,
    ),
    Entry(
        "CategoricalCrossentropy",
        (
            {},
            {"from_logits": True},
            {"label_smoothing": 0.1},
            {"from_logits": True, "label_smoothing": 0.2},
            {"from_logits": True, "z_loss": 1e-3},
            {"label_smoothing": 0.1, "class_weight": (0.5, 1.0, 2.0, 1.5, 1.0)},
        ),
        _categorical_inputs,
        _logits_or_probabilities,
        default_width=NUM_CLASSES,
        activation="softmax",
        reference=ref.categorical_crossentropy,
    ),
    Entry(
        "CategoricalFocalCrossentropy",
        (
            {},
            {"from_logits": True},
            {"gamma": 0.0},
            {"alpha": [0.1, 0.2, 0.3, 0.2, 0.2], "gamma": 1.5},
            {"from_logits": True, "label_smoothing": 0.1, "alpha": 0.5},
        ),
        _categorical_inputs,
        _logits_or_probabilities,
        default_width=NUM_CLASSES,
        activation="softmax",
        reference=ref.categorical_focal_crossentropy,
    ),
    Entry(
        "SparseCategoricalCrossentropy",
        (
            {},
            {"from_logits": True},
            {"ignore_class": -1},
            {"from_logits": True, "ignore_class": 0},
            {"from_logits": True, "z_loss": 1e-3},
            {"from_logits": True, "ignore_class": -1, "class_weight": (0.5, 1.0, 2.0, 1.5, 1.0)},
        ),
        _sparse_inputs,
        _logits_or_probabilities,
        default_width=NUM_CLASSES,
        sparse_labels=True,
        activation="softmax",
        reference=ref.sparse_categorical_crossentropy,
    ),
    Entry(
        "Poisson",
        ({}, {"log_input": True, "full": True}, {"full": True, "eps": 1e-8}),
        _poisson_inputs,
        _kind_with("log_input", "log_rates", "rates"),
        reference=ref.poisson,
    ),
    Entry(
        "KLDivergence",
        (
            {},
            {"from_logits": True},
            {"log_targets": True},
            {"from_logits": True, "log_targets": True},
        ),
        _distribution_inputs,
        _kind_with("from_logits", "logits", "distribution"),
        default_width=NUM_CLASSES,
        reference=ref.kl_divergence,
    ),
    Entry(
        "CategoricalGeneralizedCrossEntropy",
        ({}, {"q": 1.0}, {"q": 0.1}),
        _sparse_inputs,
        _constant("probabilities"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.categorical_generalized_cross_entropy,
    ),
    # regression
    Entry(
        "MeanSquaredError",
        _PLAIN,
        _real_inputs,
        _constant("real"),
        reference=ref.mean_squared_error,
        reference_grad=ref.grad_mean_squared_error,
    ),
    Entry(
        "MeanAbsoluteError",
        _PLAIN,
        _real_inputs,
        _constant("real"),
        reference=ref.mean_absolute_error,
        reference_grad=ref.grad_mean_absolute_error,
    ),
    Entry(
        "MeanAbsolutePercentageError",
        _PLAIN,
        _percentage_inputs,
        _constant("real"),
        reference=ref.mean_absolute_percentage_error,
        reference_grad=ref.grad_mean_absolute_percentage_error,
    ),
    Entry(
        "MeanSquaredLogarithmicError",
        _PLAIN,
        _positive_inputs,
        _constant("rates"),
        reference=ref.mean_squared_logarithmic_error,
        reference_grad=ref.grad_mean_squared_logarithmic_error,
    ),
    Entry(
        "CosineSimilarity",
        ({}, {"axis": 1}),
        _real_inputs,
        _constant("real"),
        reference=ref.cosine_similarity,
        reference_grad=ref.grad_cosine_similarity,
    ),
    Entry(
        "Huber",
        ({}, {"delta": 0.5}, {"delta": 2.0}),
        _real_inputs,
        _constant("real"),
        reference=ref.huber,
        reference_grad=ref.grad_huber,
    ),
    Entry(
        "LogCosh",
        _PLAIN,
        _real_inputs,
        _constant("real"),
        reference=ref.log_cosh,
        reference_grad=ref.grad_log_cosh,
    ),
    # hinge
    Entry(
        "Hinge",
        _PLAIN,
        _hinge_inputs,
        _constant("real"),
        reference=ref.hinge,
        reference_grad=ref.grad_hinge,
    ),
    Entry(
        "SquaredHinge",
        _PLAIN,
        _hinge_inputs,
        _constant("real"),
        reference=ref.squared_hinge,
        reference_grad=ref.grad_squared_hinge,
    ),
    Entry(
        "CategoricalHinge",
        _PLAIN,
        _categorical_score_inputs,
        _constant("real"),
        default_width=NUM_CLASSES,
        reference=ref.categorical_hinge,
        reference_grad=ref.grad_categorical_hinge,
    ),
    # segmentation and similarity
    Entry(
        "Dice",
        ({}, {"axis": -1}),
        _mask_inputs,
        _constant("masks"),
        reference=ref.dice,
        reference_grad=ref.grad_dice,
    ),
    Entry(
        "Tversky",
        ({}, {"alpha": 0.2, "beta": 0.8}, {"alpha": 0.7, "beta": 0.3, "axis": -1}),
        _mask_inputs,
        _constant("masks"),
        reference=ref.tversky,
        reference_grad=ref.grad_tversky,
    ),
    Entry(
        "Circle",
        ({}, {"gamma": 2.0, "margin": 0.25}, {"gamma": 10.0, "remove_diagonal": False}),
        _circle_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.circle,
    ),
    # sequence
    Entry(
        "CTC",
        (
            {},
            {"normalize_by_target_length": True},
            {"mask_index": -1},
            {"zero_infinity": True, "mask_index": 2},
        ),
        _ctc_inputs,
        _constant("logits"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.ctc,
    ),
    # large vocabulary
    Entry(
        "LinearCrossEntropy",
        (
            {},
            {"ignore_class": -100},
            {"label_smoothing": 0.1},
            {"z_loss": 1e-3},
            {"logit_soft_cap": 3.0},
        ),
        _linear_ce_inputs,
        _constant("embeddings"),
        default_width=VOCAB,
        sparse_labels=True,
        reference=ref.linear_cross_entropy,
    ),
    Entry(
        "LinearKLDivergence",
        ({}, {"temperature": 2.0, "direction": "reverse"}),
        _linear_distillation_inputs,
        _constant("embeddings"),
        default_width=VOCAB,
        reference=ref.linear_kl_divergence,
    ),
    Entry(
        "LinearJSD",
        ({}, {"beta": 0.2, "temperature": 2.0}),
        _linear_distillation_inputs,
        _constant("embeddings"),
        default_width=VOCAB,
        reference=ref.linear_jsd,
    ),
    # multiclass and multilabel margins
    Entry(
        "MulticlassHinge",
        _PLAIN,
        _class_id_inputs,
        _constant("real"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        reference=ref.multiclass_hinge,
    ),
    Entry(
        "MulticlassPerceptron",
        _PLAIN,
        _class_id_inputs,
        _constant("real"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        reference=ref.multiclass_perceptron,
    ),
    Entry(
        "MultiMargin",
        ({}, {"p": 2, "margin": 0.5}, {"class_weight": (0.5, 1.0, 2.0, 1.5, 1.0)}),
        _class_id_inputs,
        _constant("real"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        reference=ref.multi_margin,
    ),
    Entry(
        "MultilabelMargin",
        _PLAIN,
        _target_list_inputs,
        _constant("real"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        reference=ref.multilabel_margin,
    ),
    Entry(
        "Perceptron",
        _PLAIN,
        _hinge_inputs,
        _constant("real"),
        reference=ref.perceptron,
        reference_grad=ref.grad_perceptron,
    ),
    Entry(
        "SoftMargin",
        _PLAIN,
        _hinge_inputs,
        _constant("real"),
        reference=ref.soft_margin,
        reference_grad=ref.grad_soft_margin,
    ),
    Entry(
        "MultilabelSoftMargin",
        ({}, {"class_weight": (0.5, 1.0, 2.0, 1.5, 1.0)}),
        _multilabel_logit_inputs,
        _constant("logits"),
        default_width=NUM_CLASSES,
        reference=ref.multilabel_soft_margin,
        reference_grad=ref.grad_multilabel_soft_margin,
    ),
    # ranking and embedding
    Entry(
        "MarginRanking",
        ({}, {"margin": 0.5}),
        _score_pair_inputs,
        _constant("real"),
        reference=ref.margin_ranking,
        per_sample_extra=("y_pred_other",),
    ),
    Entry(
        "HingeEmbedding",
        ({}, {"margin": 2.0}),
        _distance_inputs,
        _constant("real"),
        reference=ref.hinge_embedding,
    ),
    Entry(
        "CosineEmbedding",
        ({}, {"margin": 0.3}),
        _embedding_pair_inputs,
        _constant("real"),
        default_width=EMBED_DIM,
        reference=ref.cosine_embedding,
        per_sample_extra=("y_pred_other",),
    ),
    Entry(
        "ListwiseSoftmax",
        _PLAIN,
        _ranked_list_inputs,
        _constant("logits"),
        default_width=NUM_CLASSES,
        max_batch_rank=_LIST_BATCH_RANK,
        reference=ref.listwise_softmax,
        per_sample_extra=("where",),
    ),
    Entry(
        "PairwiseLogistic",
        _PLAIN,
        _ranked_list_inputs,
        _constant("logits"),
        default_width=NUM_CLASSES,
        max_batch_rank=_LIST_BATCH_RANK,
        reference=ref.pairwise_logistic,
        per_sample_extra=("where",),
    ),
    Entry(
        "PairwiseHinge",
        _PLAIN,
        _ranked_list_inputs,
        _constant("logits"),
        default_width=NUM_CLASSES,
        max_batch_rank=_LIST_BATCH_RANK,
        reference=ref.pairwise_hinge,
        per_sample_extra=("where",),
    ),
    Entry(
        "SmoothL1",
        ({}, {"beta": 0.5}, {"beta": 0.0}),
        _real_inputs,
        _constant("real"),
        reference=ref.smooth_l1,
        reference_grad=ref.grad_smooth_l1,
    ),
    Entry(
        "Pinball",
        ({}, {"tau": 0.9}, {"tau": (0.1, 0.5, 0.9, 0.25)}),
        _pinball_inputs,
        _constant("real"),
        reference=ref.pinball,
        reference_grad=ref.grad_pinball,
    ),
    Entry(
        "GeneralizedDice",
        ({}, {"from_logits": False}, {"smooth": 0.5, "ignore_background": True}),
        _segmentation_inputs,
        lambda options: "logits" if options.get("from_logits", True) else "probabilities",
        default_width=NUM_CLASSES,
        activation="softmax",
        max_batch_rank=1,
        reference=ref.generalized_dice,
    ),
    Entry(
        "Sparsemax",
        _PLAIN,
        _sparse_score_inputs,
        _constant("logits"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        reference=ref.sparsemax,
        reference_grad=ref.grad_sparsemax,
    ),
    Entry(
        "BinarySparsemax",
        _PLAIN,
        _binary_logit_inputs,
        _constant("logits"),
        default_width=NUM_CLASSES,
        reference=ref.binary_sparsemax,
        reference_grad=ref.grad_binary_sparsemax,
    ),
    # probabilistic: the optax and PyTorch additions
    Entry(
        "PolyCrossentropy",
        ({}, {"from_logits": True}, {"from_logits": True, "epsilon": -1.0, "label_smoothing": 0.1}),
        _categorical_inputs,
        _logits_or_probabilities,
        default_width=NUM_CLASSES,
        activation="softmax",
        reference=ref.poly_crossentropy,
    ),
    Entry(
        "GeneralizedKLDivergence",
        ({}, {"log_predictions": True}),
        _measure_inputs,
        _kind_with("log_predictions", "log_rates", "probabilities"),
        default_width=NUM_CLASSES,
        reference=ref.generalized_kl_divergence,
    ),
    Entry(
        "GaussianNLL",
        ({}, {"full": True, "eps": 0.05}),
        _gaussian_inputs,
        _constant("real"),
        reference=ref.gaussian_nll,
        per_sample_extra=("variance",),
    ),
    # preference and policy losses on log-probabilities
    Entry(
        "DPO",
        ({}, {"beta": 0.5, "loss_type": "robust", "label_smoothing": 0.1}),
        _preference_pair_inputs,
        _constant("log_probs"),
        reference=ref.dpo,
    ),
    Entry(
        "SimPO",
        ({}, {"beta": 2.5, "gamma": 0.5}),
        _length_pair_inputs,
        _constant("log_probs"),
        reference=ref.simpo,
    ),
    Entry(
        "ORPO",
        ({}, {"beta": 0.5, "include_nll": False}),
        _length_pair_inputs,
        _constant("log_probs"),
        reference=ref.orpo,
    ),
    Entry(
        "KTO",
        ({}, {"beta": 0.5, "desirable_weight": 1.33}),
        _unpaired_feedback_inputs,
        _constant("log_probs"),
        reference=ref.kto,
        per_sample_extra=("desirable", "policy_mismatched", "reference_mismatched"),
    ),
    Entry(
        "PolicyGradient",
        ({}, {"aggregation": "token", "kl_coef": 0.05, "clip_epsilon": 0.1}),
        _rollout_inputs,
        _constant("log_probs"),
        reference=ref.policy_gradient,
        per_sample_extra=("advantages", "token_mask", "reference_log_probs"),
    ),
    # contrastive and metric learning (batch-coupled: one row per sample)
    Entry(
        "ClipContrastive",
        # A temperature of 0.5 keeps the losses O(1): at 0.07 they are a difference of
        # logits ~14, below the jit/eager comparison's absolute tolerance.
        ({"temperature": 0.5},),
        _two_tower_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        max_batch_rank=1,
        reference=ref.clip_contrastive,
    ),
    Entry(
        "SiglipSigmoid",
        ({"temperature": 0.5, "bias": -1.0},),
        _two_tower_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        max_batch_rank=1,
        reference=ref.siglip_sigmoid,
    ),
    Entry(
        "NTXent",
        ({"temperature": 0.5},),
        _labelled_embedding_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.ntxent,
    ),
    Entry(
        "SupervisedContrastive",
        ({"temperature": 0.5},),
        _labelled_embedding_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.supervised_contrastive,
    ),
    Entry(
        "TripletMargin",
        ({}, {"p": 1.0, "swap": True, "margin": 0.5}),
        _triplet_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        max_batch_rank=1,
        reference=ref.triplet_margin,
        per_sample_extra=("negative",),
    ),
    Entry(
        "BatchHardTriplet",
        ({}, {"soft": True, "distance_metric": "squared-L2"}),
        _labelled_embedding_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.batch_hard_triplet,
    ),
    Entry(
        "BatchSemiHardTriplet",
        ({}, {"distance_metric": "angular", "margin": 0.3}),
        _labelled_embedding_inputs,
        _constant("embeddings"),
        default_width=EMBED_DIM,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.batch_semi_hard_triplet,
    ),
    Entry(
        "ContrastivePair",
        _PLAIN,
        _pair_distance_inputs,
        _constant("rates"),
        reference=ref.contrastive_pair,
    ),
    Entry(
        "ArcFace",
        ({}, {"scale": 16.0, "margin": 0.3}),
        _class_centre_inputs,
        _constant("embeddings"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.arcface,
    ),
    Entry(
        "CosFace",
        _PLAIN,
        _class_centre_inputs,
        _constant("embeddings"),
        default_width=NUM_CLASSES,
        sparse_labels=True,
        max_batch_rank=1,
        reference=ref.cosface,
    ),
)

BY_NAME = {entry.name: entry for entry in ENTRIES}


def available_entries() -> list[Entry]:
    """Entries whose class exists in this build of losses_jax."""
    return [entry for entry in ENTRIES if entry.available]


def entry_options() -> list[tuple[Entry, dict]]:
    """Every ``(entry, options)`` pair of the available entries."""
    return [(entry, options) for entry in available_entries() for options in entry.options]


def tier_marks(entry: Entry, options: dict) -> list:
    """The test tier of one option set: the first option set of each loss for each kind of
    ``y_pred`` it takes (e.g. probabilities and, with ``from_logits=True``, logits) runs in the
    default tier (``make test``); the other option sets in the slow tier (``make test-all``)."""
    import pytest

    kind = entry.pred_kind(options)
    first = next(o for o in entry.options if entry.pred_kind(o) == kind)
    return [] if options is first else [pytest.mark.slow]


def entry_option_params(filter_fn=None):
    """``pytest.param``s over ``(entry, options)`` with readable ids, optionally filtered, each in
    its tier (:func:`tier_marks`)."""
    import pytest

    return [
        pytest.param(
            entry,
            options,
            id=f"{entry.name}[{option_id(options)}]",
            marks=tier_marks(entry, options),
        )
        for entry, options in entry_options()
        if filter_fn is None or filter_fn(entry, options)
    ]


def rotated_choice(entry: Entry, values: tuple):
    """The one of ``values`` that ``entry`` takes in the default tier: rotating along the
    catalogue, so that each value runs for about ``1/len(values)`` of the losses."""
    names = [e.name for e in ENTRIES]
    return values[names.index(entry.name) % len(values)]


def rotated_params(values: tuple, ids: tuple, filter_fn=None):
    """``pytest.param``s over ``(entry, options, value)``: every value of ``values`` for every
    option set in the slow tier; in the default tier each loss's default-tier option sets with
    one value (:func:`rotated_choice`), e.g. one of float16 and bfloat16 per loss."""
    import pytest

    params = []
    for entry, options in entry_options():
        if filter_fn is not None and not filter_fn(entry, options):
            continue
        chosen = rotated_choice(entry, values)
        for value, value_id in zip(values, ids):
            marks = tier_marks(entry, options) or ([] if value == chosen else [pytest.mark.slow])
            label = f"{entry.name}[{option_id(options)}]-{value_id}"
            params.append(pytest.param(entry, options, value, id=label, marks=marks))
    return params


def exported_loss_classes() -> list[str]:
    """Every public class of losses_jax that is a concrete ``Loss`` subclass."""
    names = []
    for name in lj.__all__:
        obj = getattr(lj, name)
        if inspect.isclass(obj) and issubclass(obj, lj.Loss):
            if obj not in (lj.Loss, lj.LossFunctionWrapper):
                names.append(name)
    return names


def call_loss(loss, inputs: Inputs, y_pred=None, **kwargs):
    """``loss(y_true, y_pred, **extra, **kwargs)``, optionally with another ``y_pred``."""
    y_pred = inputs.y_pred if y_pred is None else y_pred
    return loss(inputs.y_true, y_pred, **kwargs, **inputs.extra)


def with_dtype(inputs: Inputs, dtype) -> Inputs:
    """Float arrays converted to ``dtype``; integer labels untouched."""

    def convert(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    extra = {key: convert(value) for key, value in inputs.extra.items()}
    return Inputs(convert(inputs.y_true), convert(inputs.y_pred), extra)


_COMPILED: dict = {}


class Evaluation(NamedTuple):
    value: jax.Array  # the loss under the requested reduction
    grad: jax.Array  # d sum(value) / d y_pred
    per_sample: jax.Array  # the same loss with reduction="none"


def jitted_evaluation(entry: Entry, options: dict, **overrides):
    """A cached jitted ``f(inputs) -> Evaluation`` of the loss built with ``options``.

    ``y_true``, ``y_pred`` and ``extra`` are traced arguments, so every set of inputs of the
    same shapes and dtypes reuses one compilation; the reduced value, its gradient w.r.t.
    ``y_pred`` and the per-sample values come from one compiled function.
    """
    key = (entry.name, option_id(options), tuple(sorted(overrides.items())))
    if key not in _COMPILED:
        loss = entry.build(options, **overrides)
        per_sample = entry.build(options, **{**overrides, "reduction": "none"})

        def summed(y_pred, y_true, extra):
            values = loss(y_true, y_pred, **extra)
            return values.sum(), (values, per_sample(y_true, y_pred, **extra))

        grad_fn = jax.jit(jax.value_and_grad(summed, has_aux=True))

        def evaluate(inputs: Inputs) -> Evaluation:
            y_pred, y_true = jnp.asarray(inputs.y_pred), jnp.asarray(inputs.y_true)
            (_, (value, values)), grad = grad_fn(y_pred, y_true, inputs.extra)
            return Evaluation(value, grad, values)

        _COMPILED[key] = evaluate
    return _COMPILED[key]
