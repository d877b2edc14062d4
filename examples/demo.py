"""losses_jax demo: small flax models trained with optax on scikit-learn's bundled digits.

Part 1, classification: one MLP per loss (cross-entropy, label-smoothed cross-entropy,
categorical focal, generalized cross-entropy, categorical hinge), test accuracy for each.

Part 2, sequence recognition with CTC: strips of 3-5 digit images side by side (up to 40
columns; each column is a time step), read by a 1-D convolutional network that emits logits
over 11 classes per column (blank + 10 digits), trained with ``lj.ctc_loss`` and decoded with
``lj.ctc_greedy_decode`` and ``lj.ctc_beam_search_decode``; sequence accuracy and character
error rate for both decoders, during training and at the end.

Nothing is downloaded. Curves (PNG), ``metrics.json`` and ``summary.txt`` go to ``--out``.
Progress goes to stdout: a line redrawn in place on a terminal, otherwise (a CI log, a pipe)
a plain line every few seconds. The accuracies are printed once, in the closing summary.
Needs the ``demo`` extra: ``pip install -e ".[demo]"`` (or ``make demo``).

Usage::

    python examples/demo.py [--seed 0] [--out demo_output] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from flax import nnx

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _demo_data as data  # noqa: E402

import losses_jax as lj  # noqa: E402


# --------------------------------------------------------------------------------------
# Settings: the full run (~2-3 minutes on 2 CPU cores) and the --quick smoke test
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    classifier_epochs: int = 30
    classifier_batch: int = 64
    classifier_lr: float = 2e-3
    ctc_steps: int = 2500
    ctc_batch: int = 64
    ctc_peak_lr: float = 3e-3
    ctc_weight_decay: float = 0.05
    ctc_eval_every: int = 250
    eval_strips: int = 1000
    beam_width: int = 8
    example_strips: int = 8


# --quick: enough steps to see every loss fall, in well under 40 s.
QUICK = Settings(classifier_epochs=3, ctc_steps=200, ctc_eval_every=100, eval_strips=128)


# --------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------
class Progress:
    """Progress of a loop on stdout: on a terminal, one line redrawn in place; otherwise (a
    CI log, a pipe, a file), a plain line every ``every_s`` seconds, so a long run is never
    silent. ``close`` prints the closing line in both cases."""

    def __init__(self, label: str, total: int, every_s: float = 5.0):
        self.label, self.total, self.every_s = label, total, every_s
        self.tty = sys.stdout.isatty()
        self.start = self.last = time.perf_counter()
        self.width = 0

    def due(self) -> bool:
        """Whether an update would print now (check it before computing costly fields)."""
        return time.perf_counter() - self.last >= (0.2 if self.tty else self.every_s)

    def update(self, done: int, **fields: str) -> None:
        if not self.due():
            return
        now = self.last = time.perf_counter()
        details = "".join(f", {key} {value}" for key, value in fields.items())
        line = f"  {self.label}: {done}/{self.total}{details} ({now - self.start:.0f} s)"
        if self.tty:
            print("\r" + line.ljust(self.width), end="", flush=True)
            self.width = len(line)
        else:
            print(line, flush=True)

    def close(self, message: str) -> float:
        """Prints ``label: message (seconds)`` over the progress line; returns the seconds."""
        seconds = time.perf_counter() - self.start
        line = f"  {self.label}: {message} ({seconds:.1f} s)"
        print(("\r" + line.ljust(self.width)) if self.tty else line, flush=True)
        return seconds


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------
class DigitMLP(nnx.Module):
    """8x8 image -> 10 logits: two hidden ReLU layers."""

    def __init__(self, rngs: nnx.Rngs, hidden: int = 128):
        self.hidden1 = nnx.Linear(64, hidden, rngs=rngs)
        self.hidden2 = nnx.Linear(hidden, hidden, rngs=rngs)
        self.logits = nnx.Linear(hidden, data.NUM_DIGITS, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        x = images.reshape(images.shape[0], -1)
        x = jax.nn.relu(self.hidden1(x))
        x = jax.nn.relu(self.hidden2(x))
        return self.logits(x)


class StripReader(nnx.Module):
    """(B, T, 8) strip columns -> (B, T, 11) per-column logits: three 1-D convolutions.

    Kernel 7, three layers: each output column sees 19 columns, about three digits.
    """

    def __init__(self, rngs: nnx.Rngs, width: int = 64, kernel: int = 7):
        self.conv1 = nnx.Conv(8, width, kernel_size=(kernel,), rngs=rngs)
        self.conv2 = nnx.Conv(width, 2 * width, kernel_size=(kernel,), rngs=rngs)
        self.conv3 = nnx.Conv(2 * width, 2 * width, kernel_size=(kernel,), rngs=rngs)
        self.logits = nnx.Linear(2 * width, data.NUM_CTC_CLASSES, rngs=rngs)

    def __call__(self, columns: jax.Array) -> jax.Array:
        x = jax.nn.relu(self.conv1(columns))
        x = jax.nn.relu(self.conv2(x))
        x = jax.nn.relu(self.conv3(x))
        return self.logits(x)


def make_train_step(graphdef: nnx.GraphDef, optimizer: optax.GradientTransformation, loss_fn):
    """A jitted optax step on the model's parameters; ``loss_fn(model, batch) -> scalar``."""

    @jax.jit
    def train_step(params, opt_state, batch):
        def objective(p):
            return loss_fn(nnx.merge(graphdef, p), batch)

        loss, grads = jax.value_and_grad(objective)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return train_step


# --------------------------------------------------------------------------------------
# Part 1: classification with several losses
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifierLoss:
    """A losses_jax loss and the targets/predictions it takes (class ids or one-hot;
    logits or softmax probabilities)."""

    title: str
    loss: lj.Loss
    one_hot: bool = False
    probabilities: bool = False

    def __call__(self, labels: jax.Array, logits: jax.Array) -> jax.Array:
        y_true = jax.nn.one_hot(labels, data.NUM_DIGITS) if self.one_hot else labels
        y_pred = jax.nn.softmax(logits) if self.probabilities else logits
        return self.loss(y_true, y_pred)


def classifier_losses() -> list[ClassifierLoss]:
    return [
        ClassifierLoss("cross-entropy", lj.SparseCategoricalCrossentropy(from_logits=True)),
        ClassifierLoss(
            "label-smoothed CE (0.1)",
            lj.CategoricalCrossentropy(from_logits=True, label_smoothing=0.1),
            one_hot=True,
        ),
        ClassifierLoss(
            "focal (gamma=2)",
            lj.CategoricalFocalCrossentropy(gamma=2.0, from_logits=True),
            one_hot=True,
        ),
        ClassifierLoss(
            "generalized CE (q=0.7)",
            lj.CategoricalGeneralizedCrossEntropy(q=0.7),
            probabilities=True,
        ),
        ClassifierLoss("categorical hinge", lj.CategoricalHinge(), one_hot=True),
    ]


def train_classifier(setup: ClassifierLoss, train, test, settings: Settings, seed: int) -> dict:
    """Trains a fresh DigitMLP with ``setup``'s loss; per-epoch loss and test accuracy."""
    graphdef, params = nnx.split(DigitMLP(nnx.Rngs(seed)), nnx.Param)
    optimizer = optax.adam(settings.classifier_lr)
    opt_state = optimizer.init(params)

    def batch_loss(model, batch):
        images, labels = batch
        return setup(labels, model(images))

    train_step = make_train_step(graphdef, optimizer, batch_loss)
    predict = jax.jit(lambda p, x: jnp.argmax(nnx.merge(graphdef, p)(x), axis=-1))
    rng = np.random.default_rng(seed)
    size = settings.classifier_batch
    history = {"loss": [], "accuracy": []}
    progress = Progress(f"{setup.title:<24}", settings.classifier_epochs)
    for epoch in range(1, settings.classifier_epochs + 1):
        order = rng.permutation(len(train.labels))
        losses = []
        for start in range(0, len(order) - size + 1, size):  # full batches only: one shape
            batch = order[start : start + size]
            params, opt_state, loss = train_step(
                params, opt_state, (train.images[batch], train.labels[batch])
            )
            losses.append(loss)
        accuracy = float(np.mean(np.asarray(predict(params, test.images)) == test.labels))
        history["loss"].append(float(np.mean(losses)))
        history["accuracy"].append(accuracy)
        progress.update(epoch, epoch_loss=f"{history['loss'][-1]:.4f}")
    seconds = progress.close(f"trained for {settings.classifier_epochs} epochs")
    return {**history, "test_accuracy": history["accuracy"][-1], "seconds": seconds}


# --------------------------------------------------------------------------------------
# Part 2: CTC on digit strips
# --------------------------------------------------------------------------------------
def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between two strings."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def sequence_metrics(truths: list[str], predictions: list[str]) -> dict:
    """Sequence accuracy (exact match) and character error rate (edits / true characters)."""
    edits = sum(edit_distance(t, p) for t, p in zip(truths, predictions))
    return {
        "sequence_accuracy": float(np.mean([t == p for t, p in zip(truths, predictions)])),
        "cer": edits / sum(len(t) for t in truths),
    }


def decoded_texts(decoded: jax.Array) -> list[str]:
    """Digit strings of decoded label sequences (first path; -1 padding dropped)."""
    return [data.strip_text(row) for row in np.asarray(decoded)]


def train_ctc(train, test, settings: Settings, seed: int) -> dict:
    """Trains a StripReader with lj.ctc_loss; scores greedy and beam-search decoding.

    Each strip has its own number of columns (``widths``, the CTC output lengths) and digits
    (``target_lengths``); columns past the width are padding and never enter the loss.
    """
    graphdef, params = nnx.split(StripReader(nnx.Rngs(seed)), nnx.Param)
    schedule = optax.cosine_onecycle_schedule(settings.ctc_steps, settings.ctc_peak_lr)
    optimizer = optax.adamw(schedule, weight_decay=settings.ctc_weight_decay)
    opt_state = optimizer.init(params)

    def batch_loss(model, batch):
        columns, widths, targets, target_lengths = batch
        nll = lj.ctc_loss(targets, model(columns), target_lengths, widths, mask_index=data.BLANK)
        return jnp.mean(nll)

    train_step = make_train_step(graphdef, optimizer, batch_loss)
    logits_of = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    greedy = jax.jit(
        lambda logits, widths: lj.ctc_greedy_decode(logits, widths, mask_index=data.BLANK)
    )
    beam = jax.jit(
        lambda logits, widths: lj.ctc_beam_search_decode(
            logits, widths, beam_width=settings.beam_width, top_paths=1, mask_index=data.BLANK
        )
    )
    decoders = {"greedy": greedy, f"beam search (width {settings.beam_width})": beam}

    def read_strips(params) -> dict[str, list[str]]:
        """Each decoder's reading of every evaluation strip."""
        logits = logits_of(params, evaluation.columns)
        return {
            name: decoded_texts(decode(logits, evaluation.widths)[0][0])
            for name, decode in decoders.items()
        }

    rng = np.random.default_rng(seed)
    evaluation = data.make_strips(test, settings.eval_strips, np.random.default_rng(seed + 1))
    truths = [data.strip_text(t) for t in evaluation.targets]
    history = {"step": [], "loss": [], "eval_step": [], "accuracy": {name: [] for name in decoders}}
    progress = Progress("CTC digit strips", settings.ctc_steps)
    for step in range(1, settings.ctc_steps + 1):
        strips = data.augment(data.make_strips(train, settings.ctc_batch, rng), rng)
        batch = (strips.columns, strips.widths, strips.targets, strips.target_lengths)
        params, opt_state, loss = train_step(params, opt_state, batch)
        history["step"].append(step)
        history["loss"].append(loss)  # a device array: no wait for the step to finish
        if step % settings.ctc_eval_every == 0 or step == settings.ctc_steps:
            history["eval_step"].append(step)
            for name, texts in read_strips(params).items():
                accuracy = sequence_metrics(truths, texts)["sequence_accuracy"]
                history["accuracy"][name].append(accuracy)
        if progress.due():  # float(loss) waits for the step: only when it is printed
            progress.update(step, loss=f"{float(loss):.3f}")
    train_seconds = progress.close(f"trained for {settings.ctc_steps} steps")
    history["loss"] = [float(loss) for loss in history["loss"]]

    predictions = read_strips(params)
    # A random sample, not a chosen one: its misreads show the measured error rate.
    sample = np.random.default_rng(seed + 2).choice(
        len(truths), size=min(settings.example_strips, len(truths)), replace=False
    )
    return {
        **history,
        "train_seconds": train_seconds,
        "eval_strips": settings.eval_strips,
        "decoders": {name: sequence_metrics(truths, texts) for name, texts in predictions.items()},
        "examples": {
            "columns": evaluation.columns[sample],
            "widths": evaluation.widths[sample],
            "truth": [truths[i] for i in sample],
            "readings": {name: [texts[i] for i in sample] for name, texts in predictions.items()},
        },
    }


# --------------------------------------------------------------------------------------
# Figures and summary
# --------------------------------------------------------------------------------------
def plot_classification(results: dict[str, dict], path: Path) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for title, result in results.items():
        epochs = range(1, len(result["loss"]) + 1)
        ax_loss.plot(epochs, result["loss"], label=title)
        ax_acc.plot(epochs, result["accuracy"], label=title)
    ax_loss.set(
        title="training loss (each loss on its own scale)",
        xlabel="epoch",
        ylabel="mean training loss per epoch (log scale)",
        yscale="log",
    )
    ax_acc.set(
        title="test accuracy",
        xlabel="epoch",
        ylabel="accuracy on the held-out digits",
        ylim=(0.8, 1.0),
    )
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def moving_average(values: list[float], window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_ctc(result: dict, path: Path) -> None:
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    window = max(1, len(result["loss"]) // 50)
    ax_loss.plot(result["step"][window - 1 :], moving_average(result["loss"], window))
    ax_loss.set(
        title=f"CTC training loss (moving average of {window} steps)",
        xlabel="step",
        ylabel="CTC loss: -log p(digits | strip) (log scale)",
        yscale="log",
    )
    for (name, accuracies), marker in zip(result["accuracy"].items(), "os^v"):
        ax_acc.plot(result["eval_step"], accuracies, marker=marker, label=name)
    ax_acc.set(
        title=f"test sequence accuracy ({result['eval_strips']} held-out strips)",
        xlabel="step",
        ylabel="strips read exactly right",
        ylim=(-0.02, 1.02),
    )
    ax_acc.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_ctc_examples(result: dict, path: Path) -> None:
    """Randomly drawn test strips with the true digits and each decoder's reading, under a
    title giving the error rates measured on all the held-out strips (misreads in red)."""
    examples = result["examples"]
    readings = examples["readings"]
    count = len(examples["truth"])
    fig, axes = plt.subplots(count, 1, figsize=(7, 0.6 + 1.1 * count), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        ax.imshow(examples["columns"][i].T, cmap="gray_r", aspect="auto")
        ax.axvline(examples["widths"][i] - 0.5, color="tab:blue", linewidth=0.8, linestyle=":")
        said = "   ".join(f"{name.split()[0]}: {texts[i]}" for name, texts in readings.items())
        misread = any(texts[i] != examples["truth"][i] for texts in readings.values())
        ax.set_title(
            f"truth: {examples['truth'][i]}   {said}" + ("   (misread)" if misread else ""),
            fontsize=8,
            color="tab:red" if misread else "black",
        )
        ax.set_yticks([])
        ax.set_ylabel("8 px", fontsize=7)
        if i < count - 1:
            ax.set_xticks([])
    axes[-1, 0].set_xlabel("column = CTC time step (dotted line: end of the strip)", fontsize=8)
    rates = "".join(
        f"\n{name}: {1 - m['sequence_accuracy']:.1%} of strips misread, "
        f"character error rate {m['cer']:.1%}"
        for name, m in result["decoders"].items()
    )
    fig.suptitle(
        f"{count} test strips drawn at random (not chosen); misreads in red.\n"
        f"Measured on all {result['eval_strips']} held-out strips:{rates}",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summary_text(classification: dict[str, dict], ctc: dict, test_digits: int, seed: int) -> str:
    lines = [
        f"Classification: test accuracy on {test_digits} held-out digits (seed {seed})",
        f"  {'loss':<26}{'accuracy':>10}{'seconds':>10}",
    ]
    for title, result in classification.items():
        lines.append(f"  {title:<26}{result['test_accuracy']:>10.4f}{result['seconds']:>10.1f}")
    lines += [
        "",
        f"CTC: {ctc['eval_strips']} held-out strips of 3-5 digits "
        f"({ctc['train_seconds']:.0f} s training)",
        f"  {'decoder':<26}{'seq. acc.':>10}{'CER':>10}",
    ]
    for name, metrics in ctc["decoders"].items():
        lines.append(f"  {name:<26}{metrics['sequence_accuracy']:>10.4f}{metrics['cer']:>10.4f}")
    return "\n".join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed for the split, init and batches")
    parser.add_argument("--out", default="demo_output", help="folder for figures and metrics")
    parser.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    settings = QUICK if args.quick else Settings()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    train, test = data.load_splits(args.seed)

    print(f"Part 1: digit classification, {len(train.labels)} train / {len(test.labels)} test")
    classification = {}
    for setup in classifier_losses():
        classification[setup.title] = train_classifier(setup, train, test, settings, args.seed)
    plot_classification(classification, out / "classification.png")

    print(f"Part 2: CTC on strips of 3-5 digits ({data.STRIP_WIDTH} columns = time steps)")
    ctc = train_ctc(train, test, settings, args.seed)
    plot_ctc(ctc, out / "ctc.png")
    plot_ctc_examples(ctc, out / "ctc_examples.png")

    summary = summary_text(classification, ctc, len(test.labels), args.seed)
    if args.quick:
        summary += "\n\n--quick: a few steps only, a smoke test; the CTC model has barely started."
    metrics = {
        "seed": args.seed,
        "quick": args.quick,
        "seconds": time.perf_counter() - t0,
        "classification": {
            title: {key: r[key] for key in ("test_accuracy", "seconds", "loss", "accuracy")}
            for title, r in classification.items()
        },
        "ctc": {
            "decoders": ctc["decoders"],
            "loss": ctc["loss"],
            "eval_step": ctc["eval_step"],
            "accuracy": ctc["accuracy"],
        },
    }
    (out / "summary.txt").write_text(summary + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print()
    print(summary)
    print(
        f"\nFigures, summary.txt and metrics.json in {out}/ ({metrics['seconds']:.0f} s in total)"
    )
    return metrics


if __name__ == "__main__":
    main()
