"""Optional value checks (``jax.experimental.checkify``), end to end.

Under :func:`losses_jax.checked`, bad *values* are reported: class ids outside
``[0, num_classes)``, probabilities outside ``[0, 1]``, negative CTC lengths. Without it the
checks cost nothing: the jaxpr holds no check that runs and no effect (which would slow every
call of an enclosing jit), XLA's optimized program is the same as with the checks removed, and
results are unchanged. ``checked`` composes with
:func:`jax.jit` on either side, whatever was traced before.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from catalogue import BY_NAME, NUM_CLASSES, VOCAB, Inputs, available_entries, option_id

import losses_jax as lj
from losses_jax import checks as value_checks
from losses_jax.checks import checked


@dataclasses.dataclass(frozen=True)
class BadValues:
    """Inputs to ``entry.build(options)`` that a value check must report with ``message``."""

    id: str
    name: str
    options: dict
    corrupt: callable  # Inputs -> Inputs
    message: str


def _labels_replaced(inputs: Inputs, label) -> Inputs:
    y_true = np.array(inputs.y_true, copy=True)
    y_true.flat[1] = label
    return Inputs(y_true, inputs.y_pred, inputs.extra)


def _prediction_replaced(inputs: Inputs, value) -> Inputs:
    y_pred = np.array(inputs.y_pred, copy=True)
    y_pred.flat[2] = value
    return Inputs(inputs.y_true, y_pred, inputs.extra)


LABEL_MESSAGE = f"`y_true` holds class ids outside [0, {NUM_CLASSES})"
PROBABILITY_MESSAGE = "`y_pred` holds probabilities outside [0, 1]"

BAD_VALUES = [
    *[
        BadValues(
            f"{name}[{option_id(opts)}]-label={label}",
            name,
            opts,
            partial(_labels_replaced, label=label),
            LABEL_MESSAGE,
        )
        for name, opts in [
            ("SparseCategoricalCrossentropy", {}),
            ("SparseCategoricalCrossentropy", {"from_logits": True}),
            ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": -1}),
            ("CategoricalGeneralizedCrossEntropy", {}),
        ]
        for label in (NUM_CLASSES, -2)
    ],
    BadValues(
        "LinearCrossEntropy-label=V",
        "LinearCrossEntropy",
        {},
        partial(_labels_replaced, label=VOCAB),
        f"`labels` holds class ids outside [0, {VOCAB})",
    ),
    BadValues(
        "LinearCrossEntropy[ignore_class=-100]-label=-1",
        "LinearCrossEntropy",
        {"ignore_class": -100},
        partial(_labels_replaced, label=-1),
        f"`labels` holds class ids outside [0, {VOCAB})",
    ),
    *[
        BadValues(
            f"{name}-y_pred={value}",
            name,
            {},
            partial(_prediction_replaced, value=value),
            PROBABILITY_MESSAGE,
        )
        for name in [
            "BinaryCrossentropy",
            "BinaryFocalCrossentropy",
            "CategoricalCrossentropy",
            "CategoricalFocalCrossentropy",
            "SparseCategoricalCrossentropy",
            "CategoricalGeneralizedCrossEntropy",
        ]
        for value in (1.5, -0.1, np.nan)
    ],
]


def bad_value_params():
    return [pytest.param(case, id=case.id) for case in BAD_VALUES if BY_NAME[case.name].available]


def loss_on(entry, options):
    """``f(y_true, y_pred, extra)`` for the loss built with ``options``."""
    loss = entry.build(options)
    return lambda y_true, y_pred, extra: loss(y_true, y_pred, **extra)


def as_args(inputs: Inputs):
    return inputs.y_true, inputs.y_pred, inputs.extra


@pytest.mark.parametrize("case", bad_value_params())
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_checked_reports_bad_values(case, jit):
    entry = BY_NAME[case.name]
    bad = case.corrupt(entry.inputs(0, (4,), case.options))
    fn = checked(loss_on(entry, case.options))
    err, _ = (jax.jit(fn) if jit else fn)(*as_args(bad))
    assert err.get() is not None, "the bad value was not reported"
    assert case.message in err.get()


def checked_losses():
    """Each (loss, options) of :data:`BAD_VALUES` once."""
    unique = {(case.name, option_id(case.options)): case for case in BAD_VALUES}
    return [
        pytest.param(case.name, case.options, id=f"{case.name}[{key[1]}]")
        for key, case in unique.items()
        if BY_NAME[case.name].available
    ]


@pytest.mark.parametrize(("name", "options"), checked_losses())
def test_checked_passes_good_values_unchanged(name, options):
    entry = BY_NAME[name]
    good = entry.inputs(0, (4,), options)
    fn = loss_on(entry, options)
    err, value = checked(fn)(*as_args(good))
    assert err.get() is None
    np.testing.assert_array_equal(np.asarray(value), np.asarray(fn(*as_args(good))))


def test_ignored_labels_are_not_reported():
    labels = np.array([0, -1, 2, -1])
    logits = np.zeros((4, 3), np.float32)
    loss = lj.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)
    err, _ = checked(loss)(labels, logits)
    assert err.get() is None


def test_logits_are_not_checked_as_probabilities():
    entry = BY_NAME["BinaryCrossentropy"]
    logits = _prediction_replaced(entry.inputs(0, (4,), {"from_logits": True}), 25.0)
    err, _ = checked(loss_on(entry, {"from_logits": True}))(*as_args(logits))
    assert err.get() is None


def test_throw_raises_naming_the_argument():
    entry = BY_NAME["LinearCrossEntropy"]
    bad = _labels_replaced(entry.inputs(0, (4,)), VOCAB + 3)
    err, _ = checked(loss_on(entry, {}))(*as_args(bad))
    with pytest.raises(Exception, match="`labels` holds class ids outside"):
        err.throw()


def test_checked_is_exported():
    assert lj.checked is checked


# --------------------------------------------------------------------------------------
# CTC: labels in range, non-negative lengths
# --------------------------------------------------------------------------------------
def _ctc_arrays():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 6, NUM_CLASSES)).astype(np.float32)
    labels = np.array([[1, 2], [3, 3]], np.int32)
    return labels, logits, np.array([2, 2], np.int32), np.array([6, 5], np.int32)


CTC_BAD = {
    "label>=K": (0, lambda x: np.where(x == 3, NUM_CLASSES, x), "`target` holds class ids"),
    "negative-target_length": (2, lambda x: -x, "`target_length` holds negative values"),
    "negative-output_length": (3, lambda x: x - 7, "`output_length` holds negative values"),
}


@pytest.mark.skipif(not BY_NAME["CTC"].available, reason="CTC is not in this build yet")
@pytest.mark.parametrize("case", list(CTC_BAD))
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_checked_ctc_reports_bad_values(case, jit):
    position, corrupt, message = CTC_BAD[case]
    args = list(_ctc_arrays())
    args[position] = corrupt(args[position])
    fn = checked(lj.ctc_loss)
    err, _ = (jax.jit(fn) if jit else fn)(*args)
    assert err.get() is not None and message in err.get()
    err, _ = fn(*_ctc_arrays())
    assert err.get() is None


# --------------------------------------------------------------------------------------
# off by default: the compiled program holds no check, and jit caches do not leak checks
# --------------------------------------------------------------------------------------
def compiled_size(fn, *args) -> int:
    """Number of instructions in XLA's optimized program for ``jax.jit(fn)(*args)``."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    return sum(" = " in line for line in text.splitlines())


def runtime_checks(fn, *args) -> list[str]:
    """The jaxpr's checks that run without checkify (non-debug ``check`` equations)."""
    text = str(jax.make_jaxpr(fn)(*args))
    return [line for line in text.splitlines() if "check[" in line and "debug=True" not in line]


@pytest.mark.parametrize("name", [e.name for e in available_entries()])
def test_unchecked_program_is_free_of_checks(name, monkeypatch):
    entry = BY_NAME[name]
    args = as_args(entry.inputs(0, (4,)))
    fn = loss_on(entry, entry.options[0])
    assert not runtime_checks(fn, *args)
    size = compiled_size(fn, *args)
    # The same loss traced with every value check removed compiles to the same program.
    monkeypatch.setattr(value_checks, "_guard", lambda x, ok, message: x)
    assert compiled_size(loss_on(entry, entry.options[0]), *args) == size


@pytest.mark.parametrize("name", [e.name for e in available_entries()])
def test_unchecked_loss_has_no_effect(name):
    # An effect (checkify.debug_check has one) would take every jit around the loss off
    # JAX's fast dispatch path: some 40 us more per call.
    entry = BY_NAME[name]
    args = as_args(entry.inputs(0, (4,)))
    assert not jax.make_jaxpr(loss_on(entry, entry.options[0]))(*args).effects


@pytest.mark.parametrize(
    "name", ["LinearCrossEntropy", "CTC", "SparseCategoricalCrossentropy", "BinaryCrossentropy"]
)
def test_checked_program_does_compute_the_checks(name):
    # Guards the test above: the size measure sees checks when they are on.
    entry = BY_NAME[name]
    if not entry.available:
        pytest.skip(f"{name} is not in this build")
    args = as_args(entry.inputs(0, (4,)))
    fn = loss_on(entry, entry.options[0])
    assert compiled_size(checked(fn), *args) > compiled_size(fn, *args)


def _linear_ce_jit():
    entry = BY_NAME["LinearCrossEntropy"]
    good = entry.inputs(0, (4,))
    bad = _labels_replaced(good, VOCAB)
    return jax.jit(loss_on(entry, {})), as_args(good), as_args(bad)


def test_checked_jit_reports_after_the_plain_jit_was_traced():
    fn, good, bad = _linear_ce_jit()
    fn(*good)  # traced and cached without checkify
    err, _ = checked(fn)(*bad)
    assert err.get() is not None


def test_plain_jit_still_runs_after_checked_traced_it():
    fn, good, bad = _linear_ce_jit()
    err, checked_value = checked(fn)(*good)  # traced under checkify first
    assert err.get() is None
    np.testing.assert_array_equal(np.asarray(fn(*good)), np.asarray(checked_value))
    fn(*bad)  # bad values pass silently without checkify


def test_checked_results_equal_unchecked_results_under_jit():
    entry = BY_NAME["LinearCrossEntropy"]
    good = as_args(entry.inputs(0, (4,)))
    fn = loss_on(entry, {})
    _, value = jax.jit(checked(fn))(*good)
    np.testing.assert_array_equal(np.asarray(value), np.asarray(jax.jit(fn)(*good)))
    assert jnp.asarray(value).dtype == jnp.float32
