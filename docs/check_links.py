"""Checks every internal link of the built site: the file exists and so does the anchor.

``python docs/check_links.py docs/_build/html`` prints each broken link and exits 1 if there is
one. External links (``http:``, ``https:``, ``mailto:``) are not followed: the build is
offline. Sphinx's own ``-n`` (nitpicky) mode already fails on unresolved cross-references;
this catches what it cannot see, such as Markdown links and links in the theme.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = {key: value for key, value in attrs if value is not None}
        self.ids.update(values[key] for key in ("id", "name") if values.get(key))
        canonical = tag == "link" and "canonical" in values.get("rel", "")
        self.links += [values[key] for key in ("href", "src") if key in values and not canonical]


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(errors="replace"))
    return page


def broken_links(site: Path) -> list[str]:
    """``"page: link"`` for every internal link whose target or anchor is missing."""
    site = site.resolve()
    pages = {path: _parse(path) for path in site.rglob("*.html")}
    broken = []
    for path, page in pages.items():
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(site) or not target.exists():
                broken.append(f"{path.relative_to(site)}: {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(site)}: {link} (no such anchor)")
    return broken


def main(argv: list[str]) -> int:
    site = Path(argv[0]) if argv else Path(__file__).parent / "_build" / "html"
    broken = broken_links(site)
    for line in broken:
        print(line)
    count = sum(1 for _ in site.rglob("*.html"))
    print(f"{count} pages, {len(broken)} broken internal links")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
