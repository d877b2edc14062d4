"""Every catalogue loss, batch-sharded over 8 devices, against the same loss unsharded.

Run by ``tests/test_sharding.py`` as a script in a subprocess started with
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` and ``JAX_PLATFORMS=cpu`` (JAX fixes its
device count when it starts). For each configuration (loss, options, mesh) it builds one jitted
function returning, for each of its cases (reduction x weighting), the loss value and its
gradient with respect to ``y_pred``; for ``reduction="none"`` the per-sample losses and their
vector-Jacobian product with a fixed random cotangent. The cases of a configuration share one
compilation.

The function runs once on unplaced inputs (one device) and once with ``y_true``, ``y_pred``,
the per-sample weights and the cotangent placed with ``NamedSharding(mesh, P(batch_axis))``
(other extra inputs, e.g. a classifier matrix, replicated). Checks per case:

* ``value`` / ``grad``: sharded equals unsharded, ``|a - b| <= ATOL * max(1, max|b|) + RTOL |b|``
  (the absolute part scales with the array: Circle's ``gamma`` multiplies float32 rounding).
* ``input_sharding``: the placed ``y_pred`` really is split over every device of the mesh.
* ``grad_sharding`` (and ``value_sharding`` for per-sample losses): the result comes back split
  over the batch axis.
* ``global_reduction``: the sharded reduced value equals a float64 NumPy reduction, with Keras's
  divisors, of the unsharded per-sample losses over the whole batch (not a mean of per-shard
  means).

Configurations: on ``Mesh(8 devices, ("batch",))`` each loss's first option combination with
every reduction x weighting, and its other combinations with two cases (the options change the
per-sample loss, not the reduction); the same on the 8-device mesh with explicit axes
(``jax.make_mesh``'s default: shardings are part of the types; the call runs under
``jax.set_mesh``), so every option combination runs on both kinds of axes; the first
combination, every case, also on a 2-D ``("data", "model") = (4, 2)`` mesh, batch over
``"data"``, with a ``(batch, 2)`` batch where the loss accepts one. The other meshes use
automatic axes. Local adapters add CTC with padded labels, a last-class blank and
``normalize_by_target_length``, and ``ctc_loss`` with per-sequence lengths and an impossible
alignment under ``zero_infinity`` (on "batch8" and "batch8_explicit"). Unsharded results are computed once per
inputs and reused across meshes. An exception (e.g. ``ShardingTypeError``) fails every case of
its configuration. A control computes a per-shard mean with ``shard_map`` and confirms the
checks reject it.

With ``--part K N [SCOPE]`` (SCOPE: "first", "rest" or "all", see :func:`configurations`) it runs only the configurations of every N-th loss from the K-th, so that N
workers share the catalogue. With ``--process ID COUNT PORT`` it is instead one of COUNT processes joined by
``jax.distributed.initialize`` (CPU collectives over gloo): each feeds only its rows of the
global batch with ``jax.make_array_from_process_local_data`` and checks a few losses
(``MULTI_HOST_LOSSES``) on a mesh over the devices of every process, comparing the shards it
holds with its own unsharded run of the whole batch.

The last stdout line is ``SHARDING_SUMMARY <json>``: counts, failures, expected failures.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
import zlib
from collections.abc import Callable

import numpy as np

BATCH = 16
RTOL = ATOL = 1e-5
SUMMARY_PREFIX = "SHARDING_SUMMARY "
# Each reduction once: losses_jax.base.REDUCTIONS also lists "mean" and None, other names of
# "sum_over_batch_size" and "none" (not imported here: this module imports JAX lazily).
DISTINCT_REDUCTIONS = ("sum_over_batch_size", "sum", "mean_with_sample_weight", "none")
WEIGHTINGS = ("unweighted", "per_sample")
ALL_CASES = tuple(f"{r}/{w}" for r in DISTINCT_REDUCTIONS for w in WEIGHTINGS)
# Every case list holds the "none" case of its weightings: the NumPy reduction check needs it.
OPTION_CASES = ("sum_over_batch_size/per_sample", "none/per_sample")


# name -> (mesh shape, axis names, the axis the batch is split over, explicit axes?)
MESHES = {
    "batch8": ((8,), ("batch",), "batch", False),
    "data4_model2": ((4, 2), ("data", "model"), "data", False),
    # Explicit axes are what `jax.make_mesh` gives by default; the call runs under jax.set_mesh.
    "batch8_explicit": ((8,), ("batch",), "batch", True),
}


@dataclasses.dataclass(frozen=True)
class Config:
    entry: object  # a catalogue Entry
    options: dict
    mesh_name: str
    cases: tuple[str, ...]
    batch_shape: tuple[int, ...] = (BATCH,)

    @property
    def key(self) -> tuple[str, str, str]:
        from catalogue import option_id

        return (self.entry.name, option_id(self.options), self.mesh_name)

    @property
    def inputs_key(self) -> tuple:
        """What the inputs and the unsharded results depend on (not the mesh)."""
        return (*self.key[:2], self.batch_shape, self.cases)


def _batch_shape(entry, mesh: str) -> tuple:
    """(BATCH, 2) on the data x model mesh where the loss takes a second batch axis."""
    return (BATCH, 2) if mesh == "data4_model2" and entry.max_batch_rank >= 2 else (BATCH,)


def configurations(entries, adapters=(), scope: str = "all") -> list[Config]:
    """The catalogue on every mesh (see the module docstring); the local adapters on "batch8"
    and "batch8_explicit". ``scope``: "first" (each loss's first option set, every mesh, and the
    adapters), "rest" (the other option sets), "all", or "quick" (the default tier: each loss's
    and adapter's first option set, every reduction with one weighting, on one mesh, the meshes
    and the weightings rotating along the catalogue)."""
    configs = []
    if scope == "quick":
        # One mesh per loss, rotating along the catalogue (each mesh for a third of it), and one
        # weighting, switching every len(MESHES) losses (each mesh sees both weightings).
        names = list(MESHES)
        for index, entry in enumerate([*entries, *adapters]):
            mesh = names[index % len(names)]
            weighting = WEIGHTINGS[(index // len(names)) % len(WEIGHTINGS)]
            cases = tuple(f"{reduction}/{weighting}" for reduction in DISTINCT_REDUCTIONS)
            if entry in adapters and mesh == "data4_model2":
                mesh = "batch8"  # the adapters run on the batch meshes only
            configs.append(Config(entry, entry.options[0], mesh, cases, _batch_shape(entry, mesh)))
        return configs
    for entry in entries:
        first, *others = entry.options
        if scope in ("rest", "all"):
            for options in others:  # every option set on automatic and on explicit axes
                configs.append(Config(entry, options, "batch8", OPTION_CASES))
                configs.append(Config(entry, options, "batch8_explicit", OPTION_CASES))
        if scope == "rest":
            continue
        configs.append(Config(entry, first, "batch8", ALL_CASES))
        mesh = "data4_model2"
        configs.append(Config(entry, first, mesh, ALL_CASES, _batch_shape(entry, mesh)))
        # Same inputs and cases as the first "batch8" configuration: its reference is reused.
        configs.append(Config(entry, first, "batch8_explicit", ALL_CASES))
    for entry in adapters if scope != "rest" else ():
        for options in entry.options:
            configs.append(Config(entry, options, "batch8", ALL_CASES))
            configs.append(Config(entry, options, "batch8_explicit", ALL_CASES))
    return configs


# --------------------------------------------------------------------------------------
# local adapters: CTC with padded labels, other blanks and options, and ctc_loss with
# per-sequence lengths (the catalogue's CTC entry has full-length labels and no options)
# --------------------------------------------------------------------------------------
CTC_FRAMES, CTC_CLASSES, CTC_LABELS = 8, 5, 3


@dataclasses.dataclass(frozen=True)
class LocalEntry:
    """The part of a catalogue ``Entry`` the worker uses, for a loss built here."""

    name: str
    options: tuple[dict, ...]
    make: Callable  # (options, reduction) -> loss
    make_inputs: Callable  # (rng, batch, options) -> catalogue Inputs
    max_batch_rank: int = 1

    def build(self, options: dict, reduction="sum_over_batch_size"):
        return self.make(options, reduction)

    def inputs(self, seed: int, batch_shape: tuple, options: dict):
        (batch,) = batch_shape
        return self.make_inputs(np.random.default_rng(seed), batch, options)


def padded_ctc_labels(rng, batch: int, blank: int):
    """``(batch, L)`` labels of random lengths 1..L, right-padded with ``blank``, and lengths."""
    classes = np.array([k for k in range(CTC_CLASSES) if k != blank])
    labels = rng.choice(classes, size=(batch, CTC_LABELS))
    lengths = rng.integers(1, CTC_LABELS + 1, size=batch)
    labels = np.where(np.arange(CTC_LABELS) < lengths[:, None], labels, blank)
    return labels.astype(np.int32), lengths.astype(np.int32)


def padded_ctc_inputs(rng, batch: int, options: dict):
    from catalogue import Inputs

    labels, _ = padded_ctc_labels(rng, batch, options.get("mask_index", 0))
    logits = rng.normal(size=(batch, CTC_FRAMES, CTC_CLASSES)).astype(np.float32)
    return Inputs(labels, logits)


def ctc_with_lengths(y_true, y_pred, zero_infinity=False):
    import losses_jax as lj

    labels, label_lengths, frame_lengths = y_true
    return lj.ctc_loss(labels, y_pred, label_lengths, frame_lengths, zero_infinity=zero_infinity)


def ctc_length_inputs(rng, batch: int, options: dict):
    from catalogue import Inputs

    labels, label_lengths = padded_ctc_labels(rng, batch, blank=0)
    # At least 2L - 1 frames: every target fits, even with repeated labels.
    frames = rng.integers(2 * CTC_LABELS - 1, CTC_FRAMES + 1, size=batch).astype(np.int32)
    if options.get("zero_infinity"):
        labels[0], label_lengths[0], frames[0] = 1, CTC_LABELS, 2  # 1 1 1 in 2 frames: impossible
    logits = rng.normal(size=(batch, CTC_FRAMES, CTC_CLASSES)).astype(np.float32)
    return Inputs((labels, label_lengths, frames), logits)


def local_entries() -> list[LocalEntry]:
    import losses_jax as lj

    if not hasattr(lj, "CTC"):
        return []
    return [
        LocalEntry(
            "CTC(padded)",
            ({"normalize_by_target_length": True, "mask_index": CTC_CLASSES - 1},),
            lambda options, reduction: lj.CTC(reduction=reduction, **options),
            padded_ctc_inputs,
        ),
        LocalEntry(
            "ctc_loss(lengths)",
            ({"zero_infinity": True},),
            lambda options, reduction: lj.LossFunctionWrapper(
                ctc_with_lengths, reduction=reduction, **options
            ),
            ctc_length_inputs,
        ),
    ]


# --------------------------------------------------------------------------------------
# the function under test
# --------------------------------------------------------------------------------------
def cases_fn(entry, options, cases):
    """``(y_true, y_pred, weight, cotangent, extra) -> {case: (value, grad)}``, not jitted."""
    import jax

    def run(y_true, y_pred, weight, cotangent, extra):
        results = {}
        for case in cases:
            reduction, weighting = case.split("/")
            loss = entry.build(options, reduction=reduction)
            w = weight if weighting == "per_sample" else None

            def of_pred(p, loss=loss, w=w):
                return loss(y_true, p, sample_weight=w, **extra)

            if reduction == "none":
                value, vjp = jax.vjp(of_pred, y_pred)
                (grad,) = vjp(cotangent)
            else:
                value, grad = jax.value_and_grad(of_pred)(y_pred)
            results[case] = (value, grad)
        return results

    return run


def unreduced_shape(entry, options, inputs) -> tuple:
    """The shape of the per-sample losses: ``(batch, ...)``, or ``()`` for a whole-batch loss."""
    import jax

    loss = entry.build(options, reduction="none")
    out = jax.eval_shape(lambda t, p: loss(t, p, **inputs.extra), inputs.y_true, inputs.y_pred)
    return out.shape


def applicable(cases, per_sample_loss: bool) -> tuple[str, ...]:
    """A whole-batch loss (Dice/Tversky with ``axis=None``) takes no per-sample weights."""
    if per_sample_loss:
        return tuple(cases)
    return tuple(dict.fromkeys(case.replace("per_sample", "unweighted") for case in cases))


# --------------------------------------------------------------------------------------
# placement and comparison
# --------------------------------------------------------------------------------------
def make_mesh(mesh_name: str):
    import jax
    from jax.sharding import AxisType, Mesh

    shape, axis_names, _, explicit = MESHES[mesh_name]
    devices = np.array(jax.devices()[: int(np.prod(shape))]).reshape(shape)
    axis_type = AxisType.Explicit if explicit else AxisType.Auto
    return Mesh(devices, axis_names, axis_types=(axis_type,) * len(shape))


def mesh_context(mesh):
    """``jax.set_mesh(mesh)`` for a mesh with explicit axes (sharding in types), else nothing."""
    import contextlib

    import jax
    from jax.sharding import AxisType

    explicit = AxisType.Explicit in mesh.axis_types
    return jax.set_mesh(mesh) if explicit else contextlib.nullcontext()


def batch_placer(mesh, axis: str):
    """Places an array split over ``axis`` when its first dimension is the batch, else replicated."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    split, replicated = NamedSharding(mesh, P(axis)), NamedSharding(mesh, P())

    def place(x):
        x = np.asarray(x)
        per_sample = x.ndim >= 1 and x.shape[0] == BATCH
        return jax.device_put(x, split if per_sample else replicated)

    return place


def is_batch_sharded(x, mesh, axis: str) -> bool:
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    return x.ndim >= 1 and x.sharding.is_equivalent_to(NamedSharding(mesh, P(axis)), x.ndim)


def spans_mesh_split(x, mesh) -> bool:
    """``x`` lives on every device of ``mesh`` and no device holds all of it."""
    return x.sharding.device_set == set(mesh.devices.flat) and not x.sharding.is_fully_replicated


def mismatch(actual, expected) -> str | None:
    """``None`` when ``actual`` matches ``expected`` (see the module docstring), else why not."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return f"shape {actual.shape} != {expected.shape}"
    if not np.array_equal(np.isfinite(actual), np.isfinite(expected)):
        return "finite entries differ"
    finite = np.isfinite(expected)
    actual, expected = actual[finite], expected[finite]
    if expected.size == 0:
        return None
    err = np.abs(actual - expected)
    bound = ATOL * max(1.0, np.abs(expected).max()) + RTOL * np.abs(expected)
    if np.all(err <= bound):
        return None
    worst = int(np.argmax(err - bound))
    return f"max |diff| {err.max():.3g}; worst entry {actual[worst]:.9g} vs {expected[worst]:.9g}"


def local_mismatch(actual, expected) -> str | None:
    """:func:`mismatch` over the shards of ``actual`` this process holds (all, with one)."""
    if actual.is_fully_addressable:
        return mismatch(actual, expected)
    for shard in actual.addressable_shards:
        result = mismatch(shard.data, np.asarray(expected)[shard.index])
        if result:
            return f"shard {shard.index}: {result}"
    return None


def numpy_reduction(reduction: str, unreduced, weight, mask) -> float:
    """Keras's reduction of weighted, masked per-sample losses, in float64 NumPy.

    ``unreduced`` already holds ``weight * mask * loss``; ``weight`` is ``(batch,)`` or None,
    ``mask`` the loss's own mask (same shape as ``unreduced``) or None.
    """
    values = np.asarray(unreduced, dtype=np.float64)
    total = values.sum()
    if reduction == "sum" or values.ndim == 0:
        return total
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, np.float64), values.shape)
    if reduction == "mean_with_sample_weight" and weight is not None:
        weight = np.asarray(weight, np.float64)
        if mask is None:
            # Keras divides by the sum of the weights as given, a (batch,) vector.
            return total / weight.sum()
        per_entry = weight.reshape(weight.shape + (1,) * (values.ndim - 1)) * mask
        return total / per_entry.sum()
    return total / (values.size if mask is None else mask.sum())


# --------------------------------------------------------------------------------------
# one configuration
# --------------------------------------------------------------------------------------
class Recorder:
    def __init__(self):
        self.checks = 0
        self.cases = 0
        self.failures: list[dict] = []
        self.seconds: dict[str, float] = {}

    def case(self, key: tuple, case: str, problems: dict[str, str], n_checks: int):
        self.cases += 1
        self.checks += n_checks
        record = {"loss": key[0], "options": key[1], "mesh": key[2], "case": case}
        if problems:
            self.failures.append({**record, "problems": problems})


def prepare(config: Config):
    """Seeded inputs ``(y_true, y_pred, weight, cotangent, extra)``, the cases and the loss mask."""
    import jax
    import jax.numpy as jnp

    entry, options = config.entry, config.options
    seed = zlib.crc32(repr(config.inputs_key[:3]).encode())  # fixed per loss, options, shape
    inputs = entry.inputs(seed, config.batch_shape, options)
    rng = np.random.default_rng(seed + 1)
    weight = rng.uniform(0.0, 2.0, size=BATCH).astype(np.float32)
    out_shape = unreduced_shape(entry, options, inputs)
    cotangent = rng.normal(size=out_shape).astype(np.float32)
    cases = applicable(config.cases, per_sample_loss=out_shape[:1] == (BATCH,))
    y_true = jax.tree.map(jnp.asarray, inputs.y_true)
    loss = entry.build(options)
    y_pred = jnp.asarray(inputs.y_pred)
    losses = loss.call(y_true, y_pred, **inputs.extra)
    loss_mask = loss.loss_mask(y_true, y_pred, losses, **inputs.extra)
    args = (inputs.y_true, inputs.y_pred, weight, cotangent, inputs.extra)
    return args, cases, loss_mask


def check_configuration(
    config: Config, recorder: Recorder, mesh, axis: str, place, references: dict
) -> dict:
    """Runs ``config`` with ``place``d inputs and unsharded on this process's first device.

    ``place`` maps one NumPy input to a global array on ``mesh``; ``references`` caches the
    unsharded results by :attr:`Config.inputs_key`. Returns the reduced values.
    """
    import jax

    args, cases, loss_mask = prepare(config)
    fn = jax.jit(cases_fn(config.entry, config.options, cases))
    placed = jax.tree.map(place, args)
    try:
        with mesh_context(mesh):
            sharded = fn(*placed)
    except Exception as error:  # e.g. a ShardingTypeError: record it and go on
        message = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
        for case in cases:
            recorder.case(config.key, case, {"error": message}, 1)
        return {}
    if config.inputs_key not in references:
        unsharded = fn(*jax.device_put(args, jax.local_devices()[0]))
        references[config.inputs_key] = jax.device_get(unsharded)
    reference = references[config.inputs_key]
    placed_pred, weight = placed[1], args[2]

    values = {}
    for case in cases:
        reduction, weighting = case.split("/")
        (ref_value, ref_grad), (value, grad) = reference[case], sharded[case]
        problems = {}
        for name, result in (
            ("value", local_mismatch(value, ref_value)),
            ("grad", local_mismatch(grad, ref_grad)),
        ):
            if result:
                problems[name] = result
        if not spans_mesh_split(placed_pred, mesh):
            problems["input_sharding"] = f"y_pred placed as {placed_pred.sharding}"
        outputs = {"grad": grad}
        if reduction == "none" and value.shape[:1] == (BATCH,):
            outputs["value"] = value
        for name, out in outputs.items():
            if not is_batch_sharded(out, mesh, axis):
                problems[f"{name}_sharding"] = f"{out.sharding} (expected P({axis!r}))"
        n_checks = 3 + len(outputs)
        if reduction != "none":
            # A reduced value is replicated: every process can read it.
            values[case] = float(value)
            w = weight if weighting == "per_sample" else None
            unreduced = reference[f"none/{weighting}"][0]
            expected = numpy_reduction(reduction, unreduced, w, loss_mask)
            result = mismatch(value, expected)
            if result:
                problems["global_reduction"] = f"{result} (float64 NumPy over the whole batch)"
            n_checks += 1
        recorder.case(config.key, case, problems, n_checks)
    return values


# --------------------------------------------------------------------------------------
# a control: a per-shard mean must be caught
# --------------------------------------------------------------------------------------
def per_shard_mean_is_caught() -> bool:
    """A weighted mean taken per shard and averaged is not the global one; the checks see it."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec as P

    mesh = make_mesh("batch8")
    rng = np.random.default_rng(0)
    values = rng.uniform(0.0, 3.0, size=BATCH).astype(np.float32)
    weight = rng.uniform(0.0, 2.0, size=BATCH).astype(np.float32)

    def local_weighted_mean(v, w):
        return jax.lax.pmean(jnp.sum(v * w) / jnp.sum(w), "batch")

    per_shard = jax.shard_map(local_weighted_mean, mesh=mesh, in_specs=P("batch"), out_specs=P())
    place = batch_placer(mesh, "batch")
    wrong = jax.jit(per_shard)(place(values), place(weight))
    expected = numpy_reduction("mean_with_sample_weight", values * weight, weight, None)
    return mismatch(wrong, expected) is not None


# --------------------------------------------------------------------------------------
def summary_counts(recorder: Recorder) -> dict:
    return {
        "cases": recorder.cases,
        "checks": recorder.checks,
        "failures": recorder.failures,
    }


def one_process(part: int = 0, parts: int = 1, scope: str = "all") -> dict:
    """The catalogue configurations of every ``parts``-th loss, from the ``part``-th, on this
    process's 8 devices (every configuration of a loss in the same part: they share inputs)."""
    import jax
    from catalogue import ENTRIES, available_entries

    recorder = Recorder()
    entries, adapters = available_entries(), local_entries()
    names = [entry.name for entry in (*entries, *adapters)]
    configs = [
        config
        for config in configurations(entries, adapters, scope)
        if names.index(config.entry.name) % parts == part
    ]
    references: dict = {}
    for config in configs:
        tick = time.perf_counter()
        mesh, axis = make_mesh(config.mesh_name), MESHES[config.mesh_name][2]
        place = batch_placer(mesh, axis)
        check_configuration(config, recorder, mesh, axis, place, references)
        recorder.seconds["/".join(config.key)] = round(time.perf_counter() - tick, 2)

    slowest = sorted(recorder.seconds.items(), key=lambda item: -item[1])[:5]
    return {
        "device_count": jax.device_count(),
        "losses": [entry.name for entry in entries],
        "adapters": [entry.name for entry in adapters],
        "missing": [entry.name for entry in ENTRIES if not entry.available],
        "configurations": [list(config.key) for config in configs],
        **summary_counts(recorder),
        "per_shard_mean_caught": per_shard_mean_is_caught(),
        "slowest": dict(slowest),
    }


# --------------------------------------------------------------------------------------
# multi-host: N processes under jax.distributed, one global batch-sharded mesh
# --------------------------------------------------------------------------------------
# A per-token mask, losses that couple the samples of a batch, a replicated extra input.
MULTI_HOST_LOSSES = (
    ("SparseCategoricalCrossentropy", {"from_logits": True, "ignore_class": 0}),
    ("Circle", {}),
    ("Dice", {}),
    ("LinearCrossEntropy", {"ignore_class": -100}),
    ("CTC", {}),
)
MULTI_HOST_CASES = ("mean_with_sample_weight/per_sample", "sum/per_sample", "none/per_sample")


def multi_host(process_id: int, num_processes: int, port: int) -> dict:
    """This process's part of a global batch, fed with ``make_array_from_process_local_data``."""
    import jax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes, process_id)
    from catalogue import BY_NAME

    mesh = Mesh(np.array(jax.devices()), ("batch",))  # the devices of every process
    rows = BATCH // jax.process_count()
    mine = slice(jax.process_index() * rows, (jax.process_index() + 1) * rows)
    split, replicated = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())

    def place(x):
        # Each process holds only its rows of a per-sample input, and all of a shared one.
        x = np.asarray(x)
        if x.ndim >= 1 and x.shape[0] == BATCH:
            return jax.make_array_from_process_local_data(split, x[mine], x.shape)
        return jax.make_array_from_process_local_data(replicated, x, x.shape)

    recorder = Recorder()
    values, losses = {}, []
    for name, options in MULTI_HOST_LOSSES:
        entry = BY_NAME[name]
        if not entry.available:
            continue
        losses.append(name)
        config = Config(entry, options, f"hosts{num_processes}", MULTI_HOST_CASES)
        checked = check_configuration(config, recorder, mesh, "batch", place, {})
        for case, value in checked.items():
            values["/".join((*config.key, case))] = value
    return {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": jax.local_device_count(),
        "losses": losses,
        "values": values,
        **summary_counts(recorder),
    }


def main(argv: list[str]) -> int:
    start = time.perf_counter()
    if argv[:1] == ["--process"]:
        process_id, num_processes, port = map(int, argv[1:4])
        summary = multi_host(process_id, num_processes, port)
    elif argv[:1] == ["--part"]:
        part, parts = map(int, argv[1:3])
        summary = one_process(part, parts, argv[3] if len(argv) > 3 else "all")
    else:
        summary = one_process()
    summary["seconds"] = round(time.perf_counter() - start, 1)
    print(SUMMARY_PREFIX + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
