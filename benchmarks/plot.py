"""Charts of ``benchmarks/results.json``: one PNG per benchmark module (family).

Each chart has one panel per bench of the module, chosen by what its rows hold:

* paired ratios (``paired_ratio``): another implementation's time over losses_jax's, a bar per
  implementation and case, with the interquartile range over the paired rounds as error bars;
* unpaired ratios only (``ratio``, no spread measured): the same bars without error bars, and
  the panel says so;
* memory only (``temp_mb`` with no time): XLA's temporary memory per implementation and case,
  with losses_jax's saving written next to its bar.

Benches with none of these (e.g. a sweep of one implementation's settings) are left to the
tables. Nothing here measures anything: ``python -m benchmarks.plot`` redraws the charts from
``results.json``; ``python -m benchmarks.run`` calls :func:`plot_all` after measuring.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

from benchmarks.results import DEFAULT_PATH, REFERENCE_IMPL, load

# One colour per contender in every chart.
IMPL_COLOURS = {"optax": "tab:blue", "keras": "tab:orange", "torch": "tab:green"}
SPARE_COLOURS = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "tab:gray")
RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50, 100)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def panel_kind(rows: list[dict]) -> str | None:
    """``"paired"``, ``"unpaired"``, ``"memory"`` or None (nothing to chart) for a bench."""
    others = [r for r in rows if r["impl"] != REFERENCE_IMPL]
    if any(_number(r.get("paired_ratio")) for r in others):
        return "paired"
    if any(_number(r.get("ratio")) for r in others):
        return "unpaired"
    if any(_number(r.get("temp_mb")) for r in rows) and not any(_number(r.get("ms")) for r in rows):
        return "memory"
    return None


def colour(impl: str, impls: list[str]) -> str:
    if impl in IMPL_COLOURS:
        return IMPL_COLOURS[impl]
    spare = [i for i in impls if i not in IMPL_COLOURS]
    return SPARE_COLOURS[spare.index(impl) % len(SPARE_COLOURS)]


def _grouped_positions(rows: list[dict], impls: list[str]):
    """(cases, [(row, y)]): one band per case, one bar per implementation within it."""
    cases = list(dict.fromkeys(r["case"] for r in rows))
    bar = 0.8 / len(impls)
    placed = [
        (r, cases.index(r["case"]) - 0.4 + bar * (impls.index(r["impl"]) + 0.5)) for r in rows
    ]
    return cases, placed, bar


def draw_ratios(ax, bench: str, rows: list[dict], paired: bool) -> None:
    import matplotlib.ticker

    key = "paired_ratio" if paired else "ratio"
    rows = [r for r in rows if r["impl"] != REFERENCE_IMPL and _number(r.get(key))]
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    cases, placed, bar = _grouped_positions(rows, impls)
    for impl in impls:
        mine = [(r, y) for r, y in placed if r["impl"] == impl]
        values = [r[key] for r, _ in mine]
        ys = [y for _, y in mine]
        error = None
        if paired:
            error = [
                [max(0.0, r[key] - r["paired_iqr"][0]) for r, _ in mine],
                [max(0.0, r["paired_iqr"][1] - r[key]) for r, _ in mine],
            ]
        # Bars grow from 1x: right of the line losses_jax is faster, left of it slower.
        ax.barh(
            ys,
            [v - 1.0 for v in values],
            left=1.0,
            height=bar,
            color=colour(impl, impls),
            label=impl,
            xerr=error,
            error_kw={"elinewidth": 1, "capsize": 2, "ecolor": "black"},
        )
        for value, y in zip(values, ys):
            ax.annotate(
                f"{value:.2f}x",
                (value, y),
                xytext=(3 if value >= 1 else -3, 0),
                textcoords="offset points",
                ha="left" if value >= 1 else "right",
                va="center",
                fontsize=7,
            )
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    values = [r[key] for r in rows] + [r["paired_iqr"][i] for r in rows if paired for i in (0, 1)]
    ax.set_xlim(min(0.8, min(values) / 1.35), max(1.25, max(values) * 1.35))
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(RATIO_TICKS))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(range(len(cases)), cases, fontsize=8)
    ax.set_ylim(len(cases) - 0.5, -0.5)
    ax.set_ylabel(f"{bench}\n(case)", fontsize=8)
    if paired:
        rounds = sorted({r["rounds"] for r in rows if "rounds" in r})
        counts = "/".join(str(n) for n in rounds)
        ax.set_xlabel(
            "time relative to losses_jax: paired ratio (median over rounds), error bars: "
            f"interquartile range over {counts} rounds (> 1: losses_jax faster)",
            fontsize=8,
        )
    else:
        ax.set_xlabel(
            "time relative to losses_jax: UNPAIRED ratio of best medians, no spread measured "
            "(> 1: losses_jax faster)",
            fontsize=8,
        )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)


def draw_memory(ax, bench: str, rows: list[dict]) -> None:
    import matplotlib.ticker

    rows = [r for r in rows if _number(r.get("temp_mb"))]
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    cases, placed, bar = _grouped_positions(rows, impls)
    palette = {impl: colour(impl, impls) for impl in impls}
    palette[REFERENCE_IMPL] = "black"
    for impl in impls:
        mine = [(r, y) for r, y in placed if r["impl"] == impl]
        ax.barh(
            [y for _, y in mine],
            [r["temp_mb"] for r, _ in mine],
            height=bar,
            color=palette[impl],
            label=impl if impl != REFERENCE_IMPL else "losses_jax (linear_cross_entropy)",
        )
    by_case = {(r["case"], r["impl"]): r["temp_mb"] for r in rows}
    for r, y in placed:
        others = [by_case[(r["case"], i)] for i in impls if i != r["impl"]]
        text = f"{r['temp_mb']:.3g} MiB" if r["temp_mb"] < 100 else f"{r['temp_mb']:,.0f} MiB"
        if r["impl"] == REFERENCE_IMPL and others and r["temp_mb"] > 0:
            text += f"  ({max(others) / r['temp_mb']:.3g}x less)"
        ax.annotate(
            text, (r["temp_mb"], y), xytext=(3, 0), textcoords="offset points", va="center",
            fontsize=7,
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlim(right=max(r["temp_mb"] for r in rows) * 12)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_yticks(range(len(cases)), cases, fontsize=8)
    ax.set_ylim(len(cases) - 0.5, -0.5)
    ax.set_ylabel(f"{bench}\n(case)", fontsize=8)
    ax.set_xlabel(
        "XLA temporary memory of the compiled value-and-gradient, MiB (log scale; measured "
        "from the compiled program, exact)",
        fontsize=8,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)


def plot_module(results: dict, module: str, path: Path) -> bool:
    """Writes ``module``'s chart to ``path``; False when it has nothing to chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["rows"] if r["module"] == module]
    panels = []
    for bench in dict.fromkeys(r["bench"] for r in rows):
        bench_rows = [r for r in rows if r["bench"] == bench]
        kind = panel_kind(bench_rows)
        if kind is not None:
            bars = sum(1 for r in bench_rows if kind == "memory" or r["impl"] != REFERENCE_IMPL)
            panels.append((bench, bench_rows, kind, bars))
    if not panels:
        return False
    heights = [1.2 + 0.22 * bars for *_, bars in panels]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(11, 1.2 + sum(heights)), height_ratios=heights, squeeze=False
    )
    for ax, (bench, bench_rows, kind, _) in zip(axes[:, 0], panels):
        if kind == "memory":
            draw_memory(ax, bench, bench_rows)
        else:
            draw_ratios(ax, bench, bench_rows, paired=kind == "paired")
    run = results["modules"].get(module, {})
    machine = results.get("machine", {})
    title = run.get("title", "").replace("``", "").rstrip(".")
    fig.suptitle(f"{module}: {title}", fontsize=11, fontweight="bold")
    fig.text(
        0.01,
        0.005,
        f"{run.get('command', '?')}  ({run.get('date', '?')[:10]}; {machine.get('CPU', '?')}, "
        f"{machine.get('cores', '?')} cores, JAX {machine.get('jax', '?')}; "
        f"load average {', '.join(f'{x:.1f}' for x in run.get('load_average') or [])})"
        + ("  --tiny: NOT A MEASUREMENT" if results.get("tiny") else ""),
        fontsize=7,
        color="dimgray",
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_all(results: dict, out: Path) -> dict[str, str]:
    """One chart per module of ``results`` in ``out`` (``<module>.png``); module -> file name.

    Raises ImportError when matplotlib is missing.
    """
    written = {}
    for module in results["modules"]:
        path = Path(out) / f"{module}.png"
        if plot_module(results, module, path):
            written[module] = path.name
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Redraw the charts from results.json.")
    parser.add_argument("--results", default=str(DEFAULT_PATH), help="results.json to read")
    parser.add_argument("--out", default=None, help="folder for the charts (default: beside it)")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.results).parent
    for module, name in plot_all(load(args.results), out).items():
        print(f"{module}: {out / name}")


if __name__ == "__main__":
    main()
