"""``benchmarks/results.json``: the benchmark results in machine-readable form, and what is
generated from it (``RESULTS.md``'s tables, the headline figures).

``python -m benchmarks.run`` measures and merges its modules' rows into ``results.json`` (a
module run again replaces its own rows only), then regenerates ``RESULTS.md`` and the charts
(``benchmarks/plot.py``) from the whole file. Schema (``"schema": 1``)::

    {
      "schema": 1,
      "tiny": false,                      # --tiny smoke runs are never merged with real ones
      "machine": {"CPU": ..., "cores": ..., "jax": ..., ...},   # of the latest run
      "modules": {
        "bench_ce": {
          "title": "Cross-entropy from logits: ...",   # first line of the module's docstring
          "command": "python -m benchmarks.run --only bench_ce",
          "date": "2026-11-30T18:20:00+00:00",
          "seconds": 190.2,
          "load_average": [3.1, 2.9],                  # 1-minute load at the start and the end
          "status": "ok",                              # or "failed"
          "error": null                                # the traceback's tail when failed
        }, ...
      },
      "rows": [
        {"module": "bench_ce", "bench": "ce_sparse", "case": "N=4096,V=1000", "impl": "optax",
         "ms": 1.39,                     # best median wall time over the rounds (null: not run)
         "ratio": 1.05,                  # ms / losses_jax's ms: unpaired, do not quote
         "paired_ratio": 0.99,           # median over rounds of time / losses_jax's time
         "paired_iqr": [0.97, 1.01],     # its interquartile range over the rounds
         "paired_range": [0.95, 1.04],   # its min and max over the rounds
         "rounds": 11,
         "rel_err": 0.0, "compile_s": 0.13, "temp_mb": 0.125, ...}, ...
      ]
    }

Ratios are another implementation's time over losses_jax's: above 1, losses_jax is faster.

:func:`headline` returns three figures for the README and the documentation site; ``python -m
benchmarks.results`` prints them as Markdown (``--json``: as JSON); ``--regenerate`` rewrites
RESULTS.md and the charts from ``results.json`` without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_PATH = BENCH_DIR / "results.json"
SCHEMA = 1
REFERENCE_IMPL = "losses_jax"
# RESULTS.md text between these markers is written by hand and kept when it is regenerated.
NOTES_BEGIN = "<!-- notes: hand-written, kept as is when RESULTS.md is regenerated -->"
NOTES_END = "<!-- end of notes -->"


# --------------------------------------------------------------------------------------
# Reading and writing results.json
# --------------------------------------------------------------------------------------
def _finite_or_none(value):
    """JSON has no NaN or infinity: such values become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def empty(tiny: bool = False) -> dict:
    return {"schema": SCHEMA, "tiny": tiny, "machine": {}, "modules": {}, "rows": []}


def load(path: Path | str = DEFAULT_PATH) -> dict:
    """The results in ``path`` (an empty result set when the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return empty()
    results = json.loads(path.read_text())
    if results.get("schema") != SCHEMA:
        raise ValueError(f"{path}: schema {results.get('schema')!r}, this code reads {SCHEMA}")
    return results


def merge(previous: dict, modules: dict[str, dict], rows: list[dict], machine: dict, tiny: bool):
    """``previous`` with the rows and run records of ``modules`` replaced by the new ones.

    Modules not run this time keep their rows; a ``--tiny`` run never mixes with a full one.
    """
    if previous.get("tiny", False) != tiny:
        previous = empty(tiny)
    kept_modules = {k: v for k, v in previous["modules"].items() if k not in modules}
    kept_rows = [r for r in previous["rows"] if r.get("module") not in modules]
    clean_rows = [{key: _finite_or_none(value) for key, value in r.items()} for r in rows]
    return {
        "schema": SCHEMA,
        "tiny": tiny,
        "machine": machine,
        "modules": dict(sorted({**kept_modules, **modules}.items())),
        "rows": sorted(kept_rows + clean_rows, key=lambda r: r["module"]),
    }


def save(results: dict, path: Path | str = DEFAULT_PATH) -> None:
    Path(path).write_text(json.dumps(results, indent=1) + "\n")


# --------------------------------------------------------------------------------------
# RESULTS.md
# --------------------------------------------------------------------------------------
def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def ratio_of(row: dict) -> float | None:
    """The ratio to quote for a row: the paired ratio when measured, else None."""
    value = row.get("paired_ratio")
    return value if _number(value) else None


def geometric_means(rows: list[dict]) -> dict[str, tuple[float, int]]:
    """Per implementation other than losses_jax: the geometric mean of its paired ratios and
    the number of cases."""
    logs: dict[str, list[float]] = {}
    for row in rows:
        ratio = ratio_of(row)
        if row["impl"] != REFERENCE_IMPL and ratio is not None and ratio > 0:
            logs.setdefault(row["impl"], []).append(math.log(ratio))
    return {impl: (math.exp(sum(v) / len(v)), len(v)) for impl, v in sorted(logs.items())}


# Columns shown first in a bench's table; the unpaired ``ratio`` is dropped where a paired one
# exists, and ``module`` is the section heading.
TABLE_LEADING = (
    "bench",
    "case",
    "impl",
    "paired_ratio",
    "paired_iqr",
    "paired_range",
    "rounds",
    "ms",
)


def bench_table(rows: list[dict]) -> str:
    from benchmarks.run import format_cell

    paired = any(_number(r.get("paired_ratio")) for r in rows)
    hidden = {"module"} | ({"ratio"} if paired else set())
    columns = [c for c in TABLE_LEADING if any(c in r for r in rows)]
    for r in rows:
        columns += [k for k in r if k not in columns and k not in hidden]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [format_cell(key, r.get(key)).replace("|", "\\|") for key in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def existing_notes(path: Path) -> str:
    """The hand-written notes block of an existing RESULTS.md (markers included), or ''."""
    if not path.exists():
        return ""
    text = path.read_text()
    start, end = text.find(NOTES_BEGIN), text.find(NOTES_END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(NOTES_END)]


def markdown(results: dict, charts: dict[str, str], notes: str = "") -> str:
    """RESULTS.md for ``results``; ``charts`` maps module -> chart file name (next to it)."""
    rows, modules = results["rows"], results["modules"]
    lines = ["# Benchmark results", ""]
    lines += [
        "<!-- Generated from results.json by `python -m benchmarks.run` (benchmarks/results.py):",
        "     edit only the hand-written notes at the end. -->",
        "",
    ]
    if results.get("tiny"):
        lines += ["> `--tiny` run: smallest shapes only, a smoke test; times mean nothing.", ""]
    commands = dict.fromkeys(run["command"] for run in modules.values())
    lines += [
        "Command: " + "; ".join(f"`{c}`" for c in commands) + " (per module: see Runs below).",
        "",
    ]
    lines += [
        "**How to read.** Each figure is another implementation's time relative to losses_jax's",
        "(**above 1: losses_jax is faster**). The *paired ratio* is the median, over interleaved",
        "rounds timed in an order rotated each round, of the contender's time over losses_jax's",
        "in the same round: a busy machine moves it far less than the times themselves, which is",
        "why it is the figure to quote. `paired_iqr` is its interquartile range and",
        "`paired_range` its minimum and maximum over the `rounds`; `ms` is the best median wall",
        "time of a jitted value-and-gradient call (forward only for `ctc_forward`), `temp_mb`",
        "XLA's compiled temporary memory, `compile_s` lowering plus compilation. Where a bench",
        "has no paired ratio, its `ratio` (unpaired, ms over losses_jax's ms) is shown instead.",
        "The same numbers, machine-readable: [`results.json`](results.json).",
        "",
        "## Headline figures",
        "",
        *[f"- {figure['text']}" for figure in headline(results=results)],
        "",
        "## Runs",
        "",
        "| module | command | date | seconds | load average (start, end) | status |",
        "|---|---|---|---|---|---|",
    ]
    for name, run in modules.items():
        load_average = ", ".join(f"{x:.1f}" for x in run.get("load_average") or [])
        lines.append(
            f"| {name} | `{run['command']}` | {run['date'][:10]} | {run['seconds']:.0f} "
            f"| {load_average} | {run['status']} |"
        )
    lines += ["", "## Machine", "", *[f"- {k}: {v}" for k, v in results["machine"].items()]]
    lines += ["", "## Summary: geometric mean of paired ratios", ""]
    summary = geometric_means(rows)
    if summary:
        lines += ["| impl | geometric mean | cases |", "|---|---|---|"]
        lines += [f"| {impl} | {gm:.2f}x | {n} |" for impl, (gm, n) in summary.items()]
    else:
        lines.append("No paired ratios.")
    for name, run in modules.items():
        title = run.get("title", "").rstrip(".")
        lines += ["", f"## {name}: {title}".rstrip(": "), ""]
        if name in charts:
            lines += [f"![{name}]({charts[name]})", ""]
        if run["status"] != "ok":
            lines += ["Failed:", "", "```", run.get("error") or "", "```", ""]
        module_rows = [r for r in rows if r["module"] == name]
        for bench in dict.fromkeys(r["bench"] for r in module_rows):
            bench_rows = [r for r in module_rows if r["bench"] == bench]
            lines += [f"### {bench}", "", bench_table(bench_rows), ""]
    if notes:
        lines += ["", notes]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------------------
# Headline figures
# --------------------------------------------------------------------------------------
def _rows(results: dict, bench: str, impl: str) -> list[dict]:
    return [r for r in results["rows"] if r["bench"] == bench and r["impl"] == impl]


def _paired_figure(key, title, rows, sentence) -> dict | None:
    """A figure from the paired ratio of the last (largest) case among ``rows``."""
    rows = [r for r in rows if ratio_of(r) is not None]
    if not rows:
        return None
    row = rows[-1]
    low, high = row["paired_iqr"]
    value = row["paired_ratio"]
    return {
        "key": key,
        "title": title,
        "value": value,
        "spread": [low, high],
        "spread_kind": f"interquartile range over {row['rounds']} paired rounds",
        "unit": "x",
        "bench": row["bench"],
        "case": row["case"],
        "text": sentence.format(value=value, low=low, high=high, case=row["case"]),
    }


def headline(path: Path | str = DEFAULT_PATH, results: dict | None = None) -> list[dict]:
    """Three headline figures from ``results.json`` (or ``results``), in this order and with
    these stable ``key``s; a figure whose benchmark has not been run is left out.

    * ``ctc_vs_optax``: optax's CTC value-and-gradient time over losses_jax's (paired ratio,
      largest case);
    * ``linear_ce_memory``: how many times less XLA temporary memory ``linear_cross_entropy``'s
      value-and-gradient needs than the naive ``logits = e @ w`` path (optax), first (float32)
      case of the ``linear_ce`` bench;
    * ``sparse_ce_vs_optax``: optax's sparse softmax cross-entropy time over losses_jax's
      (paired ratio, largest vocabulary).

    Each figure is a dict: ``key``, ``title``, ``value`` (float), ``spread`` (``[low, high]``
    or None), ``spread_kind`` (what the spread is, or None), ``unit`` (``"x"``), ``bench``,
    ``case`` and ``text``, one Markdown sentence quoting it.
    """
    results = load(path) if results is None else results
    figures = [
        _paired_figure(
            "ctc_vs_optax",
            "CTC training step vs optax",
            _rows(results, "ctc_value_and_grad", "optax"),
            "**CTC**: optax's value-and-gradient takes **{value:.2f}x** losses_jax's time "
            "(IQR {low:.2f}-{high:.2f}; {case}).",
        ),
        _memory_figure(results),
        _paired_figure(
            "sparse_ce_vs_optax",
            "Sparse cross-entropy vs optax",
            _rows(results, "ce_sparse", "optax"),
            "**Sparse cross-entropy**: optax takes **{value:.2f}x** losses_jax's time "
            "(IQR {low:.2f}-{high:.2f}; {case}).",
        ),
    ]
    return [figure for figure in figures if figure is not None]


def _memory_figure(results: dict) -> dict | None:
    ours = [r for r in _rows(results, "linear_ce", REFERENCE_IMPL) if _number(r.get("temp_mb"))]
    if not ours:
        return None
    row = ours[0]  # the suite's main case, float32
    naive = [
        r
        for r in results["rows"]
        if r["bench"] == "linear_ce" and r["case"] == row["case"] and r["impl"] == "optax"
    ]
    if not naive or not _number(naive[0].get("temp_mb")) or row["temp_mb"] <= 0:
        return None
    value = naive[0]["temp_mb"] / row["temp_mb"]
    return {
        "key": "linear_ce_memory",
        "title": "Large-vocabulary cross-entropy memory vs the naive logits",
        "value": value,
        "spread": None,
        "spread_kind": None,
        "unit": "x",
        "bench": "linear_ce",
        "case": row["case"],
        "text": (
            f"**Large-vocabulary cross-entropy**: `linear_cross_entropy` needs **{value:.3g}x** "
            f"less temporary memory than forming the logits ({row['temp_mb']:.3g} MiB vs "
            f"{naive[0]['temp_mb']:.3g} MiB; {row['case']})."
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the headline benchmark figures.")
    parser.add_argument("--path", default=str(DEFAULT_PATH), help="results.json to read")
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument(
        "--regenerate", action="store_true", help="rewrite RESULTS.md and the charts beside it"
    )
    args = parser.parse_args(argv)
    if args.regenerate:
        from benchmarks.plot import plot_all

        results, out = load(args.path), Path(args.path).parent
        notes = existing_notes(out / "RESULTS.md")
        (out / "RESULTS.md").write_text(markdown(results, plot_all(results, out), notes))
    figures = headline(args.path)
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print("\n".join(f"- {figure['text']}" for figure in figures))


if __name__ == "__main__":
    main()
