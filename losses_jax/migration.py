"""Migration tables from optax 0.2.8 and PyTorch 2.13's losses, as data.

One row per loss (or loss helper) that ``optax.losses`` exports and per loss function of
``torch.nn.functional``: its losses_jax equivalent and how the arguments map, or ``None`` and
the reason. The documentation's "Migrating" tables and the optax/PyTorch columns of its
catalogue are generated from these rows when the site is built (``docs/generate.py``;
``python -m losses_jax.migration --markdown`` prints the tables), so they cannot drift.

Argument order: optax losses take ``(logits, labels)`` (or ``(predictions, targets)``), PyTorch
losses ``(input, target)``; every losses_jax function takes ``(y_true, y_pred)``, so the two
inputs swap. optax and the torch functions with ``reduction="none"`` return elementwise or
per-sample values, as the losses_jax functions do; the classes reduce (``reduction=``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

__all__ = ["OPTAX", "TORCH", "Migration", "migration_markdown"]


@dataclass(frozen=True)
class Migration:
    """One anchor loss and its losses_jax equivalent.

    Attributes:
        anchor: the anchor's function name (``optax.losses.<anchor>`` or
            ``torch.nn.functional.<anchor>``).
        function: the losses_jax function, or ``None`` when there is no equivalent.
        cls: the losses_jax class (reduces), or ``None``.
        arguments: ``(anchor argument, losses_jax argument)`` renames, inputs first.
        settings: ``(option, value)`` the losses_jax call needs to match the anchor.
        reduction: the class's ``reduction`` that gives the anchor's default result.
        note: the differences that remain, or the reason there is no equivalent.
    """

    anchor: str
    function: str | None
    cls: str | None = None
    arguments: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, object], ...] = ()
    reduction: str | None = None
    note: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        """The losses_jax public names of the row."""
        return tuple(name for name in (self.function, self.cls) if name is not None)


_LOGITS = (("logits", "y_pred"), ("labels", "y_true"))
_PREDICTIONS = (("predictions", "y_pred"), ("targets", "y_true"))
_INPUT = (("input", "y_pred"), ("target", "y_true"))
_PAIR = (("input1", "y_pred"), ("input2", "y_pred_other"), ("target", "y_true"))
_PLANNED = "no equivalent: `triplet_margin` takes p-norm distances only, not a distance function"
_LAST_AXIS = "optax is elementwise; ours averages the last axis (Keras)"
_TORCH_MEAN = "sum_over_batch_size"

OPTAX: tuple[Migration, ...] = (
    Migration("binary_dice_loss", None, note="smoothed soft Dice over sigmoids; `Dice` is Keras's (no smoothing, no sigmoid)"),
    Migration("convex_kl_divergence", "generalized_kl_divergence", "GeneralizedKLDivergence", (("log_predictions", "y_pred"), ("targets", "y_true")), (("log_predictions", True),), note="optax's older name of `generalized_kl_divergence`"),
    Migration("cosine_distance", "cosine_similarity", "CosineSimilarity", _PREDICTIONS, note="optax's value is 1 + ours; no `epsilon`"),
    Migration("cosine_similarity", "cosine_similarity", "CosineSimilarity", _PREDICTIONS, note="ours is the negated similarity (a loss); no `epsilon`"),
    Migration("ctc_loss", "ctc_loss", "CTC", (("logits", "output"), ("labels", "target"), ("logit_paddings", "output_length = sum(1 - logit_paddings, 1)"), ("label_paddings", "target_length = sum(1 - label_paddings, 1)"), ("blank_id", "mask_index")), note="impossible alignments give +inf (optax: about 1e5)"),
    Migration("ctc_loss_with_forward_probs", "ctc_loss", None, (("logits", "output"), ("labels", "target"), ("logit_paddings", "output_length = sum(1 - logit_paddings, 1)"), ("label_paddings", "target_length = sum(1 - label_paddings, 1)"), ("blank_id", "mask_index")), (("return_alignment", True),), note="zero forward probabilities are -inf (optax: about -1e5)"),
    Migration("dice_loss", None, note="per-class smoothed Tversky over softmax; `Dice`/`Tversky` are Keras's (no smoothing, no softmax)"),
    Migration("generalized_kl_divergence", "generalized_kl_divergence", "GeneralizedKLDivergence", (("log_predictions", "y_pred"), ("targets", "y_true")), (("log_predictions", True),)),
    Migration("hinge_loss", "hinge", "Hinge", (("predictor_outputs", "y_pred"), ("targets", "y_true")), note=_LAST_AXIS + "; 0/1 labels also accepted"),
    Migration("huber_loss", "huber", "Huber", _PREDICTIONS, note=_LAST_AXIS),
    Migration("kl_divergence", "kl_divergence", "KLDivergence", (("log_predictions", "y_pred"), ("targets", "y_true")), (("from_logits", True),), note="normalised log-probabilities are their own log-softmax"),
    Migration("kl_divergence_with_log_targets", "kl_divergence", "KLDivergence", (("log_predictions", "y_pred"), ("log_targets", "y_true")), (("from_logits", True), ("log_targets", True))),
    Migration("l2_loss", "mean_squared_error", "MeanSquaredError", _PREDICTIONS, note="optax's is half the squared error, elementwise; ours averages the last axis"),
    Migration("log_cosh", "log_cosh", "LogCosh", _PREDICTIONS, note=_LAST_AXIS),
    Migration("make_fenchel_young_loss", "fenchel_young", None, (("max_fun", "max_fn"),), note="the returned loss takes `(y_true, y_pred)`"),
    Migration("multiclass_generalized_dice_loss", "generalized_dice", "GeneralizedDice", _PREDICTIONS + (("apply_softmax", "from_logits"),)),
    Migration("multiclass_hinge_loss", "multiclass_hinge", "MulticlassHinge", (("scores", "y_pred"), ("labels", "y_true"))),
    Migration("multiclass_perceptron_loss", "multiclass_perceptron", "MulticlassPerceptron", (("scores", "y_pred"), ("labels", "y_true"))),
    Migration("multiclass_sparsemax_loss", "sparsemax", "Sparsemax", (("scores", "y_pred"), ("labels", "y_true"))),
    Migration("ntxent", "ntxent", "NTXent", (("embeddings", "y_pred"), ("labels", "y_true"), ("temperature", "temperature")), reduction="sum_over_batch_size", note="the class's mean over anchors with a positive is optax's mean over positive pairs; `where=`/`mask=` drop padded rows"),
    Migration("perceptron_loss", "perceptron", "Perceptron", (("predictor_outputs", "y_pred"), ("targets", "y_true")), note=_LAST_AXIS),
    Migration("poly_loss_cross_entropy", "poly_crossentropy", "PolyCrossentropy", _LOGITS, (("from_logits", True),), note="no `where`"),
    Migration("ranking_softmax_loss", "listwise_softmax", "ListwiseSoftmax", _LOGITS + (("where", "where"), ("weights", "item_weight")), reduction="sum_over_batch_size", note="`reduce_fn` is the class's `reduction`"),
    Migration("safe_softmax_cross_entropy", "categorical_crossentropy", "CategoricalCrossentropy", _LOGITS, (("from_logits", True),), note="-inf logits are handled by the default path"),
    Migration("sigmoid_binary_cross_entropy", "binary_crossentropy", "BinaryCrossentropy", _LOGITS, (("from_logits", True),), note=_LAST_AXIS),
    Migration("sigmoid_focal_loss", "binary_focal_crossentropy", "BinaryFocalCrossentropy", _LOGITS + (("alpha", "alpha"), ("gamma", "gamma")), (("from_logits", True),), note=_LAST_AXIS + "; `alpha=None` is `apply_class_balancing=False`"),
    Migration("smooth_labels", "smooth_labels", None, (("labels", "labels"), ("alpha", "alpha")), note="no `where`"),
    Migration("softmax_cross_entropy", "categorical_crossentropy", "CategoricalCrossentropy", _LOGITS, (("from_logits", True),), note="no `where`"),
    Migration("softmax_cross_entropy_with_integer_labels", "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", _LOGITS, (("from_logits", True),), note="no `where`; `ignore_class` masks a label"),
    Migration("sparsemax_loss", "binary_sparsemax", "BinarySparsemax", _LOGITS),
    Migration("squared_error", "mean_squared_error", "MeanSquaredError", _PREDICTIONS, note=_LAST_AXIS),
    Migration("triplet_margin_loss", "triplet_margin", "TripletMargin", (("anchors", "y_true"), ("positives", "y_pred"), ("negatives", "negative"), ("margin", "margin"), ("norm_degree", "p"), ("eps", "eps")), note="optax adds `eps` inside the p-th power sum, ours (PyTorch's) to each difference: equal with `eps=0`"),
)  # fmt: skip

TORCH: tuple[Migration, ...] = (
    Migration("binary_cross_entropy", "binary_crossentropy", "BinaryCrossentropy", _INPUT + (("weight", "class_weight"),), reduction=_TORCH_MEAN, note="ours averages the last axis; an elementwise `weight` is a `sample_weight`"),
    Migration("binary_cross_entropy_with_logits", "binary_crossentropy", "BinaryCrossentropy", _INPUT + (("weight", "class_weight"), ("pos_weight", "pos_weight")), (("from_logits", True),), reduction=_TORCH_MEAN, note="ours averages the last axis"),
    Migration("cosine_embedding_loss", "cosine_embedding", "CosineEmbedding", _PAIR + (("margin", "margin"),), reduction=_TORCH_MEAN),
    Migration("cross_entropy", "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", _INPUT + (("weight", "class_weight"), ("ignore_index", "ignore_class")), (("from_logits", True), ("axis", 1)), reduction=_TORCH_MEAN, note="class probabilities and `label_smoothing`: `categorical_crossentropy`; with `weight`, torch's mean divides by the summed weights"),
    Migration("ctc_loss", "ctc_loss", "CTC", (("log_probs", "output (batch first: (N, T, C))"), ("targets", "target"), ("input_lengths", "output_length"), ("target_lengths", "target_length"), ("blank", "mask_index"), ("zero_infinity", "zero_infinity")), reduction=_TORCH_MEAN, note="`reduction=\"mean\"`: `CTC(normalize_by_target_length=True)`"),
    Migration("gaussian_nll_loss", "gaussian_nll", "GaussianNLL", _INPUT + (("var", "variance"), ("full", "full"), ("eps", "eps")), reduction=_TORCH_MEAN),
    Migration("hinge_embedding_loss", "hinge_embedding", "HingeEmbedding", _INPUT + (("margin", "margin"),), reduction=_TORCH_MEAN),
    Migration("huber_loss", "huber", "Huber", _INPUT + (("delta", "delta"), ("weight", "sample_weight")), reduction=_TORCH_MEAN, note="ours averages the last axis"),
    Migration("kl_div", "kl_divergence", "KLDivergence", _INPUT + (("log_target", "log_targets"),), (("from_logits", True),), reduction=_TORCH_MEAN, note="ours sums the last axis: torch's `reduction=\"batchmean\"`"),
    Migration("l1_loss", "mean_absolute_error", "MeanAbsoluteError", _INPUT + (("weight", "sample_weight"),), reduction=_TORCH_MEAN, note="ours averages the last axis"),
    Migration("linear_cross_entropy", "linear_cross_entropy", "LinearCrossEntropy", (("input", "embeddings"), ("linear_weight", "classifier (transposed: (D, V))"), ("target", "labels"), ("linear_bias", "bias"), ("ignore_index", "ignore_class"), ("label_smoothing", "label_smoothing")), reduction=_TORCH_MEAN, note="no class `weight`"),
    Migration("margin_ranking_loss", "margin_ranking", "MarginRanking", _PAIR + (("margin", "margin"),), reduction=_TORCH_MEAN),
    Migration("mse_loss", "mean_squared_error", "MeanSquaredError", _INPUT + (("weight", "sample_weight"),), reduction=_TORCH_MEAN, note="ours averages the last axis"),
    Migration("multi_margin_loss", "multi_margin", "MultiMargin", _INPUT + (("p", "p"), ("margin", "margin"), ("weight", "class_weight")), reduction=_TORCH_MEAN),
    Migration("multilabel_margin_loss", "multilabel_margin", "MultilabelMargin", _INPUT, reduction=_TORCH_MEAN),
    Migration("multilabel_soft_margin_loss", "multilabel_soft_margin", "MultilabelSoftMargin", _INPUT + (("weight", "class_weight"),), reduction=_TORCH_MEAN),
    Migration("nll_loss", "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", _INPUT + (("weight", "class_weight"), ("ignore_index", "ignore_class")), (("from_logits", True), ("axis", 1)), reduction=_TORCH_MEAN, note="log-probabilities are their own log-softmax"),
    Migration("poisson_nll_loss", "poisson", "Poisson", _INPUT + (("log_input", "log_input"), ("full", "full"), ("eps", "eps")), (("log_input", True),), reduction=_TORCH_MEAN, note="ours averages the last axis"),
    Migration("smooth_l1_loss", "smooth_l1", "SmoothL1", _INPUT + (("beta", "beta"),), reduction=_TORCH_MEAN, note="ours averages the last axis"),
    Migration("soft_margin_loss", "soft_margin", "SoftMargin", _INPUT, reduction=_TORCH_MEAN, note="ours averages the last axis"),
    Migration("triplet_margin_loss", "triplet_margin", "TripletMargin", (("anchor", "y_true"), ("positive", "y_pred"), ("negative", "negative"), ("margin", "margin"), ("p", "p"), ("eps", "eps"), ("swap", "swap")), reduction=_TORCH_MEAN),
    Migration("triplet_margin_with_distance_loss", None, note=_PLANNED),
)  # fmt: skip


def _cell(row: Migration) -> tuple[str, str, str]:
    if row.function is None:
        return "no equivalent", "", row.note
    names = " / ".join(f"`{name}`" for name in row.names)
    mapping = [f"`{a}` → `{b}`" for a, b in row.arguments]
    mapping += [f"`{option}={value!r}`" for option, value in row.settings]
    if row.reduction is not None:
        mapping.append(f'`reduction="{row.reduction}"`')
    return names, ", ".join(mapping), row.note


def _table(rows: tuple[Migration, ...], anchor: str) -> str:
    lines = [f"| {anchor} | losses_jax | Arguments | Notes |", "|---|---|---|---|"]
    for row in rows:
        names, mapping, note = _cell(row)
        lines.append(f"| `{row.anchor}` | {names} | {mapping} | {note} |")
    return "\n".join(lines)


def migration_markdown(anchor: str | None = None) -> str:
    """The migration tables in Markdown: ``"optax"``, ``"torch"`` or both (``None``).

    Examples:
        >>> migration_markdown("torch").splitlines()[0]
        '| torch.nn.functional | losses_jax | Arguments | Notes |'
    """
    tables = {
        "optax": _table(OPTAX, "optax.losses"),
        "torch": _table(TORCH, "torch.nn.functional"),
    }
    if anchor is not None:
        return tables[anchor]
    return "\n\n".join(tables.values())


if __name__ == "__main__":
    if "--markdown" not in sys.argv[1:]:
        raise SystemExit("usage: python -m losses_jax.migration --markdown [optax|torch]")
    choice = next((a for a in sys.argv[1:] if a in ("optax", "torch")), None)
    print(migration_markdown(choice))
