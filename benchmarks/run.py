"""Run the whole benchmark suite and write a report.

Usage::

    python -m benchmarks.run [--tiny] [--gpu] [--out benchmarks]

Every ``benchmarks/bench_*.py`` module present is imported and its ``run(tiny=...)`` called.
The rows (see ``benchmarks/_harness.py``) are printed as one table, with each implementation's
time as a ratio to the ``losses_jax`` row of the same bench and case (``2.0`` means twice as
slow as losses_jax). ``<out>/RESULTS.md`` gets the tables, the machine and library versions and
the command line; ``<out>/results.png`` charts the ratios. A module that fails is reported and
skipped; the others still run.

Without ``--gpu`` JAX is pinned to the CPU (``JAX_PLATFORMS=cpu``); with it, JAX must find a GPU.
``--tiny`` runs the smallest shapes only: a smoke test of the suite, not a measurement.
"""

from __future__ import annotations

import argparse
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

REFERENCE_IMPL = "losses_jax"
BENCH_DIR = Path(__file__).resolve().parent
# Row keys shown first, in this order; any other keys follow in order of first appearance.
LEADING_COLUMNS = ("bench", "case", "impl", "ms", "ratio")
VERSIONED_PACKAGES = ("jax", "jaxlib", "optax", "keras", "torch", "flax", "numpy")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--tiny", action="store_true", help="smallest shapes only (smoke test)")
    parser.add_argument("--gpu", action="store_true", help="run JAX on the GPU (default: CPU)")
    parser.add_argument(
        "--out", default=str(BENCH_DIR), help="folder for RESULTS.md and results.png"
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


def is_number(value) -> bool:
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
    """Per other implementation: the geometric mean of its ratios and how many cases it has."""
    logs: dict[str, list[float]] = {}
    for row in rows:
        if row["impl"] != REFERENCE_IMPL and is_number(row.get("ratio")) and row["ratio"] > 0:
            logs.setdefault(row["impl"], []).append(math.log(row["ratio"]))
    return {impl: (math.exp(sum(v) / len(v)), len(v)) for impl, v in sorted(logs.items())}


def table_columns(rows: list[dict]) -> list[str]:
    columns = list(LEADING_COLUMNS)
    for row in rows:
        columns += [key for key in row if key not in columns]
    return columns


def format_cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if key == "ratio" and is_number(value):
        return f"{value:.2f}x"
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


def write_markdown(path: Path, rows, errors, timings, info, command, tiny) -> None:
    lines = ["# Benchmark results", ""]
    if tiny:
        lines += [
            "> `--tiny` run: smallest shapes only, a smoke test; the times are not meaningful.",
            "",
        ]
    lines += [
        f"Command: `{command}`",
        "",
        "`ms` is the median wall time of a jitted value-and-gradient call (see each module for",
        "what it measures); `ratio` is ms relative to the `losses_jax` row of the same case",
        "(> 1: losses_jax is faster).",
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
        "## Summary (geometric mean of ratios vs losses_jax)",
        "",
    ]
    summary = geometric_mean_ratios(rows)
    if summary:
        lines += ["| impl | geomean ratio | cases |", "|---|---|---|"]
        lines += [f"| {impl} | {gm:.2f}x | {n} |" for impl, (gm, n) in summary.items()]
    else:
        lines.append("No comparable rows.")
    lines += ["", "## Modules", "", "| module | seconds | status |", "|---|---|---|"]
    for name, seconds in timings.items():
        status = "failed" if name in errors else "ok"
        lines.append(f"| {name} | {seconds:.1f} | {status} |")
    for bench in dict.fromkeys(row["bench"] for row in rows):
        lines += ["", f"## {bench}", "", markdown_table([r for r in rows if r["bench"] == bench])]
    if errors:
        lines += ["", "## Errors", ""]
        for name, text in errors.items():
            lines += [f"### {name}", "", "```", text, "```", ""]
    path.write_text("\n".join(lines).rstrip() + "\n")


def plot_ratios(path: Path, rows: list[dict]) -> str | None:
    """Horizontal bars of every non-reference ratio, one group per bench/case; None if no plot."""
    points = [r for r in rows if r["impl"] != REFERENCE_IMPL and is_number(r.get("ratio"))]
    if not points:
        return "no ratios to plot"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib is not installed"
    cases = list(dict.fromkeys(f"{r['bench']} / {r['case']}" for r in points))
    impls = list(dict.fromkeys(r["impl"] for r in points))
    bar = 0.8 / len(impls)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * len(cases) * max(1, len(impls) / 2)))
    for k, impl in enumerate(impls):
        ys, xs = [], []
        for r in points:
            if r["impl"] == impl:
                ys.append(cases.index(f"{r['bench']} / {r['case']}") + k * bar - 0.4 + bar / 2)
                xs.append(r["ratio"])
        # bars grow from 1x: right of the line losses_jax is faster, left of it slower
        ax.barh(ys, [x - 1.0 for x in xs], left=1.0, height=bar, label=impl)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    ratio_label = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}x")
    # Labelled ticks at a few round ratios only: every minor tick labelled overlaps below 1x.
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.25, 0.5, 1, 2, 3, 5, 10, 20]))
    ax.xaxis.set_major_formatter(ratio_label)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(range(len(cases)), cases, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time relative to losses_jax (> 1: losses_jax is faster)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    select_platform(args.gpu)
    command = " ".join(["python -m benchmarks.run", *argv])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    errors: dict[str, str] = {}
    timings: dict[str, float] = {}
    start = time.perf_counter()
    for name in discover_modules(args.only):
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        module_rows, error = run_module(name, args.tiny)
        timings[name] = time.perf_counter() - t0
        rows += module_rows
        if error:
            errors[name] = error
            print(f"   FAILED after {timings[name]:.1f} s:\n{error}", flush=True)
        else:
            print(f"   {len(module_rows)} rows in {timings[name]:.1f} s", flush=True)

    rows = add_ratios(rows)
    print()
    print(text_table(rows) if rows else "(no rows)")
    for impl, (gm, n) in geometric_mean_ratios(rows).items():
        print(f"{impl}: geometric-mean time ratio vs losses_jax {gm:.2f}x over {n} cases")

    info = machine_info()
    write_markdown(out / "RESULTS.md", rows, errors, timings, info, command, args.tiny)
    skipped = plot_ratios(out / "results.png", rows)
    print(
        f"\nwrote {out / 'RESULTS.md'}"
        + (f" (no chart: {skipped})" if skipped else f" and {out / 'results.png'}")
    )
    print(f"total {time.perf_counter() - start:.1f} s; modules with errors: {len(errors)}")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
