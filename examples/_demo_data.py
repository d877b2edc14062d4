"""Data for the demo: scikit-learn's bundled 8x8 digits and strips of digits built from them.

Nothing is downloaded: ``sklearn.datasets.load_digits`` ships inside scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

NUM_DIGITS = 10
# CTC classes: 0 is the blank (``mask_index=0``, as in Keras); digit d is class d + 1.
BLANK = 0
NUM_CTC_CLASSES = NUM_DIGITS + 1
# Columns 0 and 7 of sklearn's digits are blank in > 97% of images, so each digit
# keeps its 6 central columns; a strip of 3-5 digits with 0-2 blank columns between
# digits and a 0-2 column leading offset is then at most 2 + 5*6 + 4*2 = 40 columns.
DIGIT_COLUMNS = slice(1, 7)
DIGIT_WIDTH = 6
MIN_DIGITS, MAX_DIGITS = 3, 5
MAX_GAP = 2
MAX_LEAD = 2
STRIP_WIDTH = MAX_LEAD + MAX_DIGITS * DIGIT_WIDTH + (MAX_DIGITS - 1) * MAX_GAP


@dataclass(frozen=True)
class Split:
    """Images (N, 8, 8) scaled to [0, 1] and integer labels (N,)."""

    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class Strips:
    """A batch of digit strips, time-major per sample.

    columns: (B, STRIP_WIDTH, 8) float32 - column t of the strip is time step t.
    widths: (B,) int32 - columns actually used (the CTC output lengths).
    targets: (B, MAX_DIGITS) int32 - CTC classes (digit + 1), padded with BLANK.
    target_lengths: (B,) int32 - number of digits in each strip.
    """

    columns: np.ndarray
    widths: np.ndarray
    targets: np.ndarray
    target_lengths: np.ndarray


def load_splits(seed: int, test_fraction: float = 0.25) -> tuple[Split, Split]:
    """Stratified train/test split of the digits, pixel values scaled from [0, 16] to [0, 1]."""
    pixels, digit_labels = load_digits(return_X_y=True)  # (N, 64) rows of 8x8 images
    images = (np.asarray(pixels).reshape(-1, 8, 8) / 16.0).astype(np.float32)
    labels = np.asarray(digit_labels).astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels
    )
    return Split(np.asarray(x_train), np.asarray(y_train)), Split(
        np.asarray(x_test), np.asarray(y_test)
    )


def make_strips(split: Split, count: int, rng: np.random.Generator) -> Strips:
    """``count`` random strips of 3-5 digits drawn from ``split``, placed left to right."""
    columns = np.zeros((count, STRIP_WIDTH, 8), np.float32)
    widths = np.zeros(count, np.int32)
    targets = np.full((count, MAX_DIGITS), BLANK, np.int32)
    lengths = rng.integers(MIN_DIGITS, MAX_DIGITS + 1, size=count).astype(np.int32)
    for i, length in enumerate(lengths):
        picks = rng.integers(0, len(split.labels), size=length)
        gaps = rng.integers(0, MAX_GAP + 1, size=length)
        gaps[0] = rng.integers(0, MAX_LEAD + 1)  # the first "gap" is the leading offset
        start = 0
        for pick, gap in zip(picks, gaps):
            start += gap
            # image rows become features, image columns become time steps
            columns[i, start : start + DIGIT_WIDTH] = split.images[pick][:, DIGIT_COLUMNS].T
            start += DIGIT_WIDTH
        widths[i] = start
        targets[i, :length] = split.labels[picks] + 1
    return Strips(columns, widths, targets, lengths)


def strip_text(target: np.ndarray) -> str:
    """Digits of one CTC label sequence (classes d + 1; blanks and -1 padding dropped)."""
    return "".join(str(int(c) - 1) for c in target if c > BLANK)


def augment(strips: Strips, rng: np.random.Generator) -> Strips:
    """Training-time jitter: shift each strip up or down by one row, scale its ink, add noise.

    The digits of a strip come from a few hundred training images, so without this a model
    memorises them; the jitter is what lets it read unseen test digits.
    """
    count, width, rows = strips.columns.shape
    shifts = rng.integers(-1, 2, size=count)
    padded = np.pad(strips.columns, ((0, 0), (0, 0), (1, 1)))
    source_rows = np.arange(rows)[None, None, :] + 1 - shifts[:, None, None]
    shifted = np.take_along_axis(padded, np.broadcast_to(source_rows, (count, width, rows)), 2)
    inside = np.arange(width)[None, :, None] < strips.widths[:, None, None]
    noise = rng.normal(0.0, 0.05, size=shifted.shape) * inside
    scale = rng.uniform(0.7, 1.2, size=(count, 1, 1))
    columns = (shifted * scale + noise).astype(np.float32)
    return Strips(columns, strips.widths, strips.targets, strips.target_lengths)
