"""The documentation's generated pages and the README's generated blocks.

Everything here is read from the package at build time: the loss classes and functions from
the families of :data:`losses_jax.losses.FAMILIES` and the registry, the optax/PyTorch
equivalents from :mod:`losses_jax.migration`, the Keras equivalents from the installed Keras,
the benchmark page from ``benchmarks/RESULTS.md`` and its charts, the headline figures from
``benchmarks.results.headline()`` (``benchmarks/results.json``), the examples from
``examples/``. A new loss, family, benchmark chart or example appears in the site without
editing a page.

``docs/conf.py`` calls :func:`write_pages` before Sphinx reads the sources. From the command
line::

    python docs/generate.py --readme          # rewrite the README's generated blocks
    python docs/generate.py --check-readme    # exit 1 if they are out of date
    python docs/generate.py --pages DIR       # write the generated pages into DIR
"""

from __future__ import annotations

import argparse
import inspect
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
EXAMPLES = ROOT / "examples"
BENCHMARKS = ROOT / "benchmarks"

if str(ROOT) not in sys.path:  # the package from this checkout when run as a script
    sys.path.insert(0, str(ROOT))

import losses_jax as lj  # noqa: E402
from benchmarks import results as benchmark_results  # noqa: E402  # results.json's reader
from losses_jax.losses import FAMILIES  # noqa: E402
from losses_jax.migration import OPTAX, TORCH, Migration, migration_markdown  # noqa: E402

# --------------------------------------------------------------------------------------------
# The registry, read once


@dataclass(frozen=True)
class LossEntry:
    """One loss class of the catalogue and what the site says about it."""

    family: ModuleType
    cls: type
    function: str
    aliases: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.cls.__name__


def family_name(family: ModuleType) -> str:
    """The family's module name without the package prefix (``"regression"``)."""
    return family.__name__.rpartition(".")[2]


def family_summary(family: ModuleType) -> str:
    """The first paragraph of the family module's docstring, on one line."""
    text = inspect.cleandoc(family.__doc__ or "")
    return " ".join(text.split("\n\n")[0].split())


def is_loss_class(obj: object) -> bool:
    return (
        inspect.isclass(obj)
        and issubclass(obj, lj.Loss)
        and obj not in (lj.Loss, lj.LossFunctionWrapper)
    )


def aliases_of(family: ModuleType) -> dict[str, str]:
    """``{alias: canonical name}`` for the names of ``family.__all__`` that rename another."""
    aliases = {}
    for name in family.__all__:
        obj = getattr(family, name)
        canonical = getattr(obj, "__name__", name)
        if canonical != name and canonical in family.__all__:
            aliases[name] = canonical
    return aliases


def catalogue() -> list[LossEntry]:
    """Every loss class, family by family in :data:`FAMILIES` order."""
    entries = []
    for family in FAMILIES:
        aliases = aliases_of(family)
        for name in family.__all__:
            cls = getattr(family, name)
            if not is_loss_class(cls) or name in aliases:
                continue
            function = cls.function.__name__ if cls.function is not None else ""
            names = tuple(alias for alias, target in aliases.items() if target == function)
            entries.append(LossEntry(family, cls, function, names))
    return entries


# --------------------------------------------------------------------------------------------
# The catalogue page


def _options(cls: type) -> str:
    parameters = inspect.signature(cls).parameters
    cells = []
    for option in cls.option_names() or ():
        default = parameters[option].default
        shown = "" if default is inspect.Parameter.empty else f"={default!r}"
        cells.append(f"`{option}{shown}`")
    return ", ".join(cells) or "—"


def _anchors(rows: tuple[Migration, ...], entry: LossEntry) -> str:
    found = [
        f"`{row.anchor}`"
        for row in rows
        if row.cls == entry.name or (row.cls is None and row.function == entry.function)
    ]
    return ", ".join(found) or "—"


def _keras(entry: LossEntry) -> str:
    try:
        import keras
    except ImportError:  # the docs extra installs Keras; without it the column says so
        return "(Keras not installed)"
    if inspect.isclass(getattr(keras.losses, entry.name, None)):
        return "same name"
    return "—"


def catalogue_markdown() -> str:
    """The catalogue table: one row per loss class, its options and its equivalents."""
    lines = [
        "| Class | Function (aliases) | Options | Keras | optax.losses | torch.nn.functional |",
        "|---|---|---|---|---|---|",
    ]
    for entry in catalogue():
        function = f"{{py:func}}`~losses_jax.{entry.function}`"
        if entry.aliases:
            function += " (" + ", ".join(f"`{alias}`" for alias in entry.aliases) + ")"
        cells = [
            f"{{py:class}}`~losses_jax.{entry.name}`",
            function,
            _options(entry.cls),
            _keras(entry),
            _anchors(OPTAX, entry),
            _anchors(TORCH, entry),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def classifier_losses_markdown() -> str:
    """The losses that take a classifier instead of logits (``classifier=`` keyword)."""
    lines = []
    for entry in catalogue():
        if "classifier" in inspect.signature(entry.cls.function).parameters:
            summary = (inspect.getdoc(entry.cls) or "").split("\n\n")[0].replace("\n", " ")
            lines.append(f"- {{py:class}}`~losses_jax.{entry.name}`: {summary}")
    return "\n".join(lines)


#: The families the "Large-vocabulary and post-training losses" page presents (those present).
LANGUAGE_MODEL_FAMILIES = ("large_vocab", "linear_head", "preference", "policy", "distillation")


def language_model_families_markdown() -> str:
    """One bullet per language-model family of :data:`FAMILIES`, with its classes."""
    by_family: dict[str, list[str]] = {}
    for entry in catalogue():
        by_family.setdefault(family_name(entry.family), []).append(entry.name)
    lines = []
    for family in FAMILIES:
        name = family_name(family)
        if name in LANGUAGE_MODEL_FAMILIES:
            classes = ", ".join(
                f"{{py:class}}`~losses_jax.{cls}`" for cls in by_family.get(name, [])
            )
            link = f"{{doc}}`{name} </_generated/api/{name}>`"
            lines.append(
                f"- {link}: {family_summary(family).replace('``', '`')} Classes: {classes}."
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# API reference pages (reStructuredText: the docstrings are reStructuredText)


def _rst_title(text: str, underline: str = "=") -> str:
    return f"{text}\n{underline * len(text)}\n"


def _describe(name: str, obj: object, members: bool = False) -> str:
    if inspect.isclass(obj):
        if members:
            return (
                f".. autoclass:: {name}\n   :members:\n   :special-members: __call__\n"
                "   :show-inheritance:\n"
            )
        return f".. autoclass:: {name}\n   :show-inheritance:\n"
    return f".. autofunction:: {name}\n"


def api_family_rst(family: ModuleType) -> str:
    aliases = aliases_of(family)
    parts = [
        _rst_title(f"{family_name(family)}"),
        family_summary(family) + "\n",
        f".. module:: {family.__name__}\n",
        f"Module ``{family.__name__}``; every name is also ``losses_jax.<name>``.\n",
        ".. currentmodule:: losses_jax\n",
    ]
    for name in family.__all__:
        if name not in aliases:
            parts.append(_describe(name, getattr(family, name)))
    if aliases:
        lines = [f"- ``{alias}``: :func:`{target}`" for alias, target in aliases.items()]
        parts.append(_rst_title("Aliases", "-") + "\n" + "\n".join(lines) + "\n")
    return "\n".join(parts)


def core_names() -> list[str]:
    """The public names that are not a family's: the base classes and the helpers."""
    family_names = {name for family in FAMILIES for name in family.__all__}
    return [name for name in lj.__all__ if name not in family_names]


def api_core_rst() -> str:
    parts = [
        _rst_title("Base classes and helpers"),
        "The :class:`~losses_jax.Loss` base class, the reduction, the registry and the CTC decoders.\n",
        ".. currentmodule:: losses_jax\n",
    ]
    for name in core_names():
        parts.append(_describe(name, getattr(lj, name), members=name == "Loss"))
    return "\n".join(parts)


def api_index_md() -> str:
    pages = ["core"] + [family_name(family) for family in FAMILIES]
    toctree = "\n".join(pages)
    return (
        "# API reference\n\n"
        "Every public name of `losses_jax` (`losses_jax.__all__`), generated from its "
        "docstring. Each loss is a per-sample function and a class that reduces it; the "
        "classes share the constructor arguments `reduction`, `name` and `dtype` and the call "
        "{py:meth}`losses_jax.Loss.__call__`.\n\n"
        f"```{{toctree}}\n:maxdepth: 1\n\n{toctree}\n```\n"
    )


# --------------------------------------------------------------------------------------------
# Benchmarks: RESULTS.md (generated from benchmarks/results.json) and its charts


def results_body(text: str | None = None) -> str:
    """RESULTS.md without its title and its generator's comment: the reading guide, the
    headline figures, the runs, the machine, the tables with their charts and the notes."""
    text = RESULTS.read_text() if text is None else text
    text = re.sub(r"\A# .*\n+", "", text)  # the page has its own title
    return re.sub(r"\A<!-- Generated from .*?-->\n+", "", text, flags=re.S)


def benchmark_charts() -> list[Path]:
    return sorted(BENCHMARKS.glob("*.png"))


def benchmarks_md(images: Path) -> str:
    """The Benchmarks page's generated part: RESULTS.md as it is, its charts and results.json
    copied into ``images`` and its links pointed at the copies."""
    shutil.copy2(BENCHMARKS / "results.json", images / "results.json")
    body = results_body().replace(
        "[`results.json`](results.json)",
        "{download}`results.json </_generated/images/results.json>`",
    )
    shown = []
    for chart in benchmark_charts():
        shutil.copy2(chart, images / chart.name)
        # Paths from the source folder: the page is included by docs/benchmarks.md.
        linked = body.replace(f"]({chart.name})", f"](/_generated/images/{chart.name})")
        shown.append(linked != body)
        body = linked
    others = [chart for chart, inline in zip(benchmark_charts(), shown, strict=True) if not inline]
    if others:  # a chart RESULTS.md does not show (not regenerated since the chart was made)
        body += "\n## Other charts\n\n" + "\n".join(
            f"![{chart.stem}](/_generated/images/{chart.name})\n" for chart in others
        )
    return body


def headline_figures() -> list[dict]:
    """The three headline figures of ``benchmarks.results.headline()`` (from results.json)."""
    return benchmark_results.headline()


def headline_markdown() -> str:
    """The headline benchmark figures as a Markdown list, the same sentences as RESULTS.md's."""
    return "\n".join(f"- {figure['text']}" for figure in headline_figures())


# --------------------------------------------------------------------------------------------
# Examples gallery


def example_scripts() -> list[Path]:
    return sorted(path for path in EXAMPLES.glob("*.py") if not path.name.startswith("_"))


def example_pictures(script: Path) -> list[Path]:
    """PNGs under examples/ named after the script (file prefix or folder name)."""
    return [
        path
        for path in sorted(EXAMPLES.rglob("*.png"))
        if path.name.startswith(script.stem) or script.stem in path.relative_to(EXAMPLES).parts
    ]


def examples_rst(images: Path) -> str:
    """The gallery: each script's docstring, its pictures and its source."""
    parts = [
        _rst_title("Examples"),
        "Each script in ``examples/`` runs as it is from the repository root "
        "(``make demo`` runs the demo). Pictures are those committed next to the scripts.\n",
    ]
    shown: set[Path] = set()
    for script in example_scripts():
        module_doc = inspect.cleandoc(_module_docstring(script))
        parts.append(_rst_title(script.name, "-"))
        parts.append(module_doc + "\n")
        for picture in example_pictures(script):
            shown.add(picture)
            shutil.copy2(picture, images / picture.name)
            parts.append(_figure(picture))
        parts.append(
            f".. literalinclude:: ../../examples/{script.name}\n"
            f"   :language: python\n   :caption: examples/{script.name}\n"
        )
    others = [path for path in sorted(EXAMPLES.rglob("*.png")) if path not in shown]
    if others:
        parts.append(_rst_title("Other pictures", "-"))
        for picture in others:
            shutil.copy2(picture, images / picture.name)
            parts.append(_figure(picture))
    return "\n".join(parts)


def _figure(picture: Path) -> str:
    caption = picture.relative_to(ROOT)
    return f".. figure:: images/{picture.name}\n   :alt: {picture.stem}\n\n   ``{caption}``\n"


def _module_docstring(script: Path) -> str:
    import ast

    return ast.get_docstring(ast.parse(script.read_text())) or ""


# --------------------------------------------------------------------------------------------
# Writing


def generated_pages(images: Path) -> Iterator[tuple[str, str]]:
    """``(relative path, text)`` of every generated page."""
    yield "migration_optax.md", migration_markdown("optax") + "\n"
    yield "migration_torch.md", migration_markdown("torch") + "\n"
    yield "catalogue.md", catalogue_markdown() + "\n"
    yield "classifier_losses.md", classifier_losses_markdown() + "\n"
    yield "language_model_families.md", language_model_families_markdown() + "\n"
    yield "benchmarks.md", benchmarks_md(images)
    yield "headline.md", headline_markdown() + "\n"
    yield "examples.rst", examples_rst(images)
    yield "api/index.md", api_index_md()
    yield "api/core.rst", api_core_rst()
    for family in FAMILIES:
        yield f"api/{family_name(family)}.rst", api_family_rst(family)


def write_pages(out: Path) -> list[Path]:
    """Writes the generated pages under ``out`` (rewriting only files whose text changed)."""
    images = out / "images"
    if images.exists():  # the pictures are copied afresh: a removed chart must not linger
        shutil.rmtree(images)
    images.mkdir(parents=True)
    (out / "api").mkdir(exist_ok=True)
    before = {path for path in out.rglob("*") if path.is_file()}
    written = []
    for relative, text in generated_pages(images):
        path = out / relative
        if not path.exists() or path.read_text() != text:  # keeps Sphinx's incremental build
            path.write_text(text)
        written.append(path)
    for stale in before - set(written) - set(images.iterdir()):  # a removed family or example
        stale.unlink()
    return written


# --------------------------------------------------------------------------------------------
# The README's generated blocks


def families_markdown() -> str:
    """The README's table of families (module, what it holds, its classes)."""
    lines = ["| Family | What | Classes |", "|---|---|---|"]
    by_family: dict[str, list[str]] = {}
    for entry in catalogue():
        by_family.setdefault(family_name(entry.family), []).append(entry.name)
    for family in FAMILIES:
        name = family_name(family)
        summary = family_summary(family).split(": ")[0].rstrip(".").replace("``", "`")
        classes = ", ".join(f"`{cls}`" for cls in by_family.get(name, []))
        lines.append(f"| `{name}` | {summary} | {classes} |")
    return "\n".join(lines)


README_BLOCKS = {"families": families_markdown, "benchmarks": headline_markdown}


def readme_block(text: str, block: str) -> str | None:
    """The text between the README's ``<!-- block:start -->`` and ``<!-- block:end -->``."""
    found = re.search(rf"<!-- {block}:start -->\n(.*?)<!-- {block}:end -->", text, re.S)
    return found.group(1).removesuffix("\n") if found else None


def updated_readme(text: str) -> str:
    """``text`` with every generated block rewritten."""
    for block, make in README_BLOCKS.items():
        pattern = rf"(<!-- {block}:start -->\n).*?(<!-- {block}:end -->)"
        text = re.sub(
            pattern, lambda m, f=make: m.group(1) + f() + "\n" + m.group(2), text, flags=re.S
        )
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--readme", action="store_true", help="rewrite README.md's blocks")
    parser.add_argument("--check-readme", action="store_true", help="fail if they are stale")
    parser.add_argument("--pages", type=Path, help="write the generated pages into this folder")
    args = parser.parse_args(argv)
    if args.pages:
        for path in write_pages(args.pages):
            print(path)
    if args.readme or args.check_readme:
        text = README.read_text()
        new = updated_readme(text)
        if args.check_readme and new != text:
            print("README.md is out of date: run `python docs/generate.py --readme`")
            return 1
        if args.readme:
            README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
