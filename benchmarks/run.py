"""Run the whole benchmark suite and write a report.

Usage::

    python -m benchmarks.run [--tiny] [--gpu] [--out benchmarks]

Every ``benchmarks/bench_*.py`` module present (or those named by ``--only``) is imported and
its ``run(tiny=...)`` called. The rows (see ``benchmarks/_harness.py``) are printed as one
table, with each implementation's time as a ratio to the ``losses_jax`` row of the same bench
and case (``2.0`` means twice as slow as losses_jax; ``paired_ratio``, where measured, is the
one to read). The rows, the command line, the machine and library versions are merged into
``<out>/results.json`` (the modules run replace their own rows; see ``benchmarks/results.py``),
from which ``<out>/RESULTS.md`` and one chart per module, ``<out>/<module>.png``
(``benchmarks/plot.py``), are regenerated. A module that fails is reported and skipped; the
others still run.

Without ``--gpu`` JAX is pinned to the CPU (``JAX_PLATFORMS=cpu``); with it, JAX must find a GPU.
``--tiny`` runs the smallest shapes only: a smoke test of the suite, not a measurement.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TypeGuard

REFERENCE_IMPL = "losses_jax"
BENCH_DIR = Path(__file__).resolve().parent
# Row keys shown first, in this order; any other keys follow in order of first appearance.
LEADING_COLUMNS = ("bench", "case", "impl", "ms", "ratio")
VERSIONED_PACKAGES = ("jax", "jaxlib", "optax", "keras", "torch", "flax", "numpy")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--tiny", action="store_true", help="smallest shapes only (smoke test)")
    parser.add_argument("--gpu", action="store_true", help="run JAX on the GPU (default: CPU)")
    parser.add_argument(
        "--out", default=str(BENCH_DIR), help="folder for results.json, RESULTS.md, charts"
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="NAME",
        help="run only these modules (e.g. bench_ce)",
    )
    return parser.parse_args(argv)


def select_platform(gpu: bool) -> None:
    """Pins JAX to the CPU unless ``gpu``; must run before anything imports jax."""
    if not gpu:
        os.environ["JAX_PLATFORMS"] = "cpu"
        return
    import jax

    if jax.default_backend() != "gpu":
        raise SystemExit(
            f"--gpu was given but JAX found no GPU (backend: {jax.default_backend()})."
        )


def discover_modules(only: Sequence[str] | None = None) -> list[str]:
    """Names of the ``bench_*.py`` modules next to this file, sorted (optionally filtered)."""
    names = sorted(path.stem for path in BENCH_DIR.glob("bench_*.py"))
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SystemExit(f"--only: no such benchmark module(s) {unknown}; found {names}.")
        names = [name for name in names if name in only]
    return names


def run_module(name: str, tiny: bool) -> tuple[list[dict], str | None]:
    """The rows of ``benchmarks.<name>.run(tiny=tiny)``, or no rows and the error text."""
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        rows = list(module.run(tiny=tiny))
        for row in rows:
            missing = [key for key in ("bench", "case", "impl", "ms") if key not in row]
            if missing:
                raise ValueError(f"row {row!r} lacks the keys {missing}")
    except Exception as err:  # noqa: BLE001 - a broken module must not stop the suite
        lines = traceback.format_exception(type(err), err, err.__traceback__)
        return [], "".join(lines[-3:]).strip()
    return rows, None


def is_number(value) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def add_ratios(rows: list[dict]) -> list[dict]:
    """Copies of ``rows`` with ``ratio`` = ms / (ms of the losses_jax row of the same case)."""
    reference = {
        (row["bench"], row["case"]): row["ms"]
        for row in rows
        if row["impl"] == REFERENCE_IMPL and is_number(row["ms"]) and row["ms"] > 0
    }
    out = []
    for row in rows:
        ref_ms = reference.get((row["bench"], row["case"]))
        ratio = row["ms"] / ref_ms if ref_ms and is_number(row["ms"]) else None
        out.append({**row, "ratio": ratio})
    return out


def geometric_mean_ratios(rows: list[dict]) -> dict[str, tuple[float, int]]:
    """Per other implementation: the geometric mean of its ratios (paired where measured) and
    how many cases it has."""
    logs: dict[str, list[float]] = {}
    for row in rows:
        ratio = row["paired_ratio"] if "paired_ratio" in row else row.get("ratio")
        if row["impl"] != REFERENCE_IMPL and is_number(ratio) and ratio > 0:
            logs.setdefault(row["impl"], []).append(math.log(ratio))
    return {impl: (math.exp(sum(v) / len(v)), len(v)) for impl, v in sorted(logs.items())}


def table_columns(rows: list[dict]) -> list[str]:
    columns: list[str] = list(LEADING_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def format_cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key in ("ratio", "paired_ratio") and is_number(value):
        return f"{value:.2f}x"
    if isinstance(value, (list, tuple)):  # a spread, [low, high]
        return "-".join(f"{v:.2f}" if is_number(v) else "?" for v in value)
    if key == "ms" and is_number(value):
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def text_table(rows: list[dict]) -> str:
    """A fixed-width plain-text table of ``rows``."""
    columns = table_columns(rows)
    cells = [[format_cell(key, row.get(key)) for key in columns] for row in rows]
    widths = [max(len(col), *(len(r[i]) for r in cells)) for i, col in enumerate(columns)]
    lines = ["  ".join(col.ljust(w) for col, w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    columns = table_columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [format_cell(key, row.get(key)).replace("|", "\\|") for key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, str]:
    import jax

    info = {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "OS": platform.platform(),
        "python": platform.python_version(),
        "JAX backend": f"{jax.default_backend()} ({', '.join(str(d) for d in jax.devices())})",
    }
    for package in VERSIONED_PACKAGES:
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = "not installed"
    return info


def module_title(name: str) -> str:
    """The first line of ``benchmarks.<name>``'s docstring (the module is already imported)."""
    module = sys.modules.get(f"benchmarks.{name}")
    return ((module.__doc__ if module else None) or "").strip().split("\n")[0]


def write_outputs(out: Path, rows: list[dict], runs: dict, machine: dict, tiny: bool) -> None:
    """Merges the run into ``out/results.json``; regenerates RESULTS.md and the charts from it."""
    from benchmarks import results

    merged = results.merge(results.load(out / "results.json"), runs, rows, machine, tiny)
    results.save(merged, out / "results.json")
    try:
        from benchmarks.plot import plot_all

        charts = plot_all(merged, out)
    except ImportError:
        charts = {}
        print("matplotlib is not installed: no charts")
    notes = results.existing_notes(out / "RESULTS.md")
    (out / "RESULTS.md").write_text(results.markdown(merged, charts, notes))
    print(f"   wrote {out / 'results.json'}, {out / 'RESULTS.md'}", end="")
    print("".join(f", {out / name}" for name in charts.values()))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    select_platform(args.gpu)
    command = " ".join(["python -m benchmarks.run", *argv])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    errors: dict[str, str] = {}
    runs: dict[str, dict] = {}
    start = time.perf_counter()
    machine = machine_info()
    for name in discover_modules(args.only):
        print(f"== {name}", flush=True)
        t0, load_before = time.perf_counter(), os.getloadavg()[0]
        module_rows, error = run_module(name, args.tiny)
        seconds = time.perf_counter() - t0
        rows += [{"module": name, **r} for r in module_rows]
        runs[name] = {
            "title": module_title(name),
            "command": command,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "seconds": seconds,
            "load_average": [load_before, os.getloadavg()[0]],
            "status": "failed" if error else "ok",
            "error": error,
        }
        if error:
            errors[name] = error
            print(f"   FAILED after {seconds:.1f} s:\n{error}", flush=True)
        else:
            print(f"   {len(module_rows)} rows in {seconds:.1f} s", flush=True)
        # Recorded module by module: an interrupted run keeps what it has measured.
        module_rows = add_ratios([r for r in rows if r["module"] == name])
        write_outputs(out, module_rows, {name: runs[name]}, machine, args.tiny)

    rows = add_ratios(rows)
    print()
    print(text_table(rows) if rows else "(no rows)")
    for impl, (gm, n) in geometric_mean_ratios(rows).items():
        print(f"{impl}: geometric-mean time ratio vs losses_jax {gm:.2f}x over {n} cases")

    print(f"total {time.perf_counter() - start:.1f} s; modules with errors: {len(errors)}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
