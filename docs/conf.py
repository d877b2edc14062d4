"""Sphinx configuration of the losses_jax documentation (``make docs``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(DOCS.parent))
os.environ.setdefault("KERAS_BACKEND", "jax")  # the catalogue's Keras column imports Keras

import generate  # noqa: E402

import losses_jax  # noqa: E402

project = "losses_jax"
author = "the losses_jax authors"
copyright = "the losses_jax authors, Apache-2.0"
release = version = losses_jax.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
# The generated fragments are included by the pages, not pages of their own.
exclude_patterns = ["_build", "_artefacts", "snippets", "_generated/*.md", "Thumbs.db", ".DS_Store"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# The docstrings are Google style ("Args:", "Returns:", "Examples:" with doctests).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
add_module_names = False

# Every cross-reference to this package must resolve (make docs runs with -n -W). Names of other
# packages (jax, numpy, typing, ...) have no inventory here: the build is offline.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(jax|jnp|np|numpy|optax|flax|keras|torch|typing|collections|types)(\..*)?"),
    (r"py:.*", r"(ArrayLike|DTypeLike|Array|Callable|Any|Mapping|Sequence|Iterable|ClassVar)"),
    (r"py:.*", r"(int|float|bool|str|tuple|list|dict|None|object|type|callable|optional)"),
    (r"py:.*", r"(array|array_like|Self|Literal|Ellipsis|function|module|AxisNames)"),
    (r"py:.*", r"(functools|itertools|math|dataclasses)\..*"),
    # Private names (a base class shown by show-inheritance) and module constants.
    (r"py:.*", r"(.*\.)?_\w+(\..*)?"),
    (r"py:data", r"[A-Z][A-Z0-9_]*"),
]

html_theme = "furo"
html_title = f"losses_jax {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_favicon = "_static/favicon.svg"


def _generate(app) -> None:
    generate.write_pages(DOCS / "_generated")


def setup(app):
    app.connect("builder-inited", _generate)
    return {"parallel_read_safe": True}
