"""The documentation: generated pages, the README's snippets and blocks, and the built site in a
real browser.

The browser test opens the site in headless Chromium (Debian's ``chromium`` package), driven
over the DevTools protocol on a pipe (``--remote-debugging-pipe``: no websocket client, no
network), and checks that the front page, the catalogue and an API page render with their
headings and without console errors, and that the search finds a class. Its screenshots are
kept in ``docs/_artefacts/``. It uses the site in ``$LOSSES_JAX_DOCS_HTML`` (``make docs`` has
built it) or builds one; it is marked ``slow`` (``make test`` skips it, ``.ci/run`` runs it after
``make docs``) and skips when Sphinx or Chromium is missing.
"""

from __future__ import annotations

import base64
import doctest
import functools
import http.server
import inspect
import json
import os
import queue
import re
import runpy
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import losses_jax as lj
from losses_jax.losses import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
ARTEFACTS = DOCS / "_artefacts"
sys.path.insert(0, str(DOCS))

import check_links  # noqa: E402  # pyright: ignore[reportMissingImports]
import generate  # noqa: E402  # pyright: ignore[reportMissingImports]

LOSS_CLASSES = sorted(name for name in lj.__all__ if generate.is_loss_class(getattr(lj, name)))


# --------------------------------------------------------------------------------------------
# Generated pages and README blocks (cheap: the default tier)


def test_catalogue_has_one_row_per_loss_class_with_its_equivalents():
    rows = generate.catalogue_markdown().splitlines()[2:]
    named = [re.findall(r"^\| \{py:class\}`~losses_jax\.(\w+)`", row)[0] for row in rows]
    assert sorted(named) == LOSS_CLASSES
    huber = next(row for row in rows if "losses_jax.Huber`" in row)
    assert huber.split(" | ")[2:] == ["`delta=1.0`", "same name", "`huber_loss`", "`huber_loss` |"]


def test_every_public_name_has_an_api_entry():
    documented = set(generate.core_names())
    for family in FAMILIES:
        page = generate.api_family_rst(family)
        documented |= set(re.findall(r"^\.\. auto(?:class|function):: (\w+)", page, re.M))
        documented |= set(generate.aliases_of(family))
    assert documented == set(lj.__all__)


def test_benchmarks_page_has_every_chart_and_the_tables(tmp_path):
    page = generate.benchmarks_md(tmp_path)
    for chart in generate.benchmark_charts():
        assert f"](/_generated/images/{chart.name})" in page and (tmp_path / chart.name).exists()
    assert (tmp_path / "results.json").exists() and "](results.json)" not in page
    for heading in re.findall(r"^##+ .+$", generate.RESULTS.read_text(), re.M):
        assert f"\n{heading}\n" in page


def test_readme_blocks_are_up_to_date():
    text = README.read_text()
    for block, make in generate.README_BLOCKS.items():
        found = generate.readme_block(text, block)
        assert found is not None, f"README.md lacks the {block}:start/end markers"
        assert found == make(), f"{block}: regenerate with `python docs/generate.py --readme`"


def test_readme_families_table_lists_every_family():
    block = generate.readme_block(README.read_text(), "families") or ""
    for family in FAMILIES:
        assert f"| `{generate.family_name(family)}` |" in block


def test_headline_figures_are_those_of_results_json_everywhere():
    figures = generate.headline_figures()
    assert [figure["key"] for figure in figures] == [
        "ctc_vs_optax",
        "linear_ce_memory",
        "sparse_ce_vs_optax",
    ]
    block = generate.readme_block(README.read_text(), "benchmarks") or ""
    results_md = generate.RESULTS.read_text()
    for figure in figures:
        assert f"- {figure['text']}" in block.splitlines()
        assert f"- {figure['text']}" in results_md.splitlines(), (
            "RESULTS.md is older than results.json: python -m benchmarks.results --regenerate"
        )


def test_readme_is_a_front_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    quick_start = text[text.index("## Quick start") :].split("```")[1]
    assert "make demo" in quick_start and "make test" in quick_start


def test_readme_usage_example_runs():
    text = README.read_text()
    block = text[text.index("## Usage") :].split("```python\n")[1].split("```")[0]
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block, {}, "README usage", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert test.examples and runner.failures == 0


def test_getting_started_snippet_trains(capsys):
    pytest.importorskip("flax")
    pytest.importorskip("optax")
    runpy.run_path(str(DOCS / "snippets" / "getting_started.py"), run_name="__main__")
    first, last = map(float, re.findall(r"\d+\.\d+", capsys.readouterr().out))
    assert last < 0.5 * first


def test_link_checker_finds_a_broken_link(tmp_path):
    (tmp_path / "index.html").write_text(
        '<a href="a.html#x">ok</a><a href="a.html#nope">bad</a><a href="missing.html">bad</a>'
        '<a href="https://example.org/">external</a>'
    )
    (tmp_path / "a.html").write_text('<h1 id="x">A</h1>')
    assert check_links.broken_links(tmp_path) == [
        "index.html: a.html#nope (no such anchor)",
        "index.html: missing.html",
    ]


# --------------------------------------------------------------------------------------------
# The built site in a browser (slow: its own CI step)


def _chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(name) for name in candidates if name and shutil.which(name)), None)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    built = os.environ.get("LOSSES_JAX_DOCS_HTML")
    if built:
        path = Path(built)
        assert (path / "index.html").exists(), f"$LOSSES_JAX_DOCS_HTML={built} has no index.html"
        return path
    for module in ("sphinx", "furo", "myst_parser"):
        pytest.importorskip(
            module, reason="the docs extra is not installed: pip install -e .[docs]"
        )
    out = tmp_path_factory.mktemp("html")
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html"]
    result = subprocess.run(command + [str(DOCS), str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


# Runs a command with the two pipe ends as its fds 3 and 4 (moved above 9 first, so that
# neither dup2 overwrites the other end).
_ON_FDS_3_AND_4 = """
import fcntl, os, sys
ends = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 10) for fd in sys.argv[1:3]]
os.dup2(ends[0], 3)
os.dup2(ends[1], 4)
os.execvp(sys.argv[3], sys.argv[3:])
"""


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, executable: str, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        flags = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--hide-scrollbars",
            f"--user-data-dir={profile}", "about:blank",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ON_FDS_3_AND_4,
                str(to_browser_r),
                str(from_browser_w),
                executable,
                *flags,
            ],
            pass_fds=(to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._messages: queue.Queue = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        attached = self.send("Target.attachToTarget", targetId=target, flatten=True)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session=True, width=1440, height=960, deviceScaleFactor=1, mobile=False,
        )  # fmt: skip

    def _read(self):
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))

    def _next(self, deadline: float) -> dict:
        try:
            return self._messages.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            raise TimeoutError("Chromium did not answer in time") from None

    def send(self, method: str, session: bool = False, timeout: float = 30, **params) -> dict:
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            answer = self._next(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})
            self.events.append(answer)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            event = self._next(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", session=True, url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True)  # fmt: skip
        return result["result"].get("value")

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(self.send("Page.captureScreenshot", session=True)["data"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return data

    def console_errors(self) -> list[str]:
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                errors.append(" ".join(str(arg.get("value")) for arg in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                errors.append(f"{params['entry'].get('text')} {params['entry'].get('url', '')}")
        return errors

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, TimeoutError, RuntimeError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_browser)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = _chromium()
    if executable is None:
        pytest.skip("no Chromium: apt-get install -y chromium (the browser test needs it)")
    chromium = Chromium(executable, tmp_path_factory.mktemp("chromium-profile"))
    yield chromium
    chromium.close()


def _headings(browser: Chromium, tag: str) -> list[str]:
    script = f"Array.from(document.querySelectorAll('{tag}')).map(h => h.textContent.trim())"
    return [text.rstrip("#¶ ").strip() for text in browser.evaluate(script)]


def _check_page(browser: Chromium, url: str, screenshot: str) -> None:
    browser.open(url)
    png = browser.screenshot(ARTEFACTS / screenshot)
    assert png.startswith(b"\x89PNG") and len(png) > 20_000, f"{screenshot} looks blank"
    assert browser.console_errors() == []


@pytest.mark.slow
def test_front_page_renders(browser, server):
    _check_page(browser, f"{server}/index.html", "front-page.png")
    assert _headings(browser, "h1") == ["losses_jax"]
    toc = browser.evaluate("document.querySelector('.sidebar-tree').textContent")
    for page in ("Getting started", "Catalogue", "Many devices", "Benchmarks", "Changelog"):
        assert page in toc


@pytest.mark.slow
def test_catalogue_renders_every_loss(browser, server):
    _check_page(browser, f"{server}/catalogue.html", "catalogue.png")
    assert _headings(browser, "h1") == ["Catalogue"]
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('table tbody tr td:first-child'))"
        ".map(td => td.textContent.trim())"
    )
    assert sorted(cells) == LOSS_CLASSES


@pytest.mark.slow
def test_api_page_renders(browser, server):
    _check_page(browser, f"{server}/_generated/api/categorical.html", "api-categorical.png")
    assert _headings(browser, "h1") == ["categorical"]
    signature = browser.evaluate(
        "document.getElementById('losses_jax.SparseCategoricalCrossentropy').textContent"
    )
    parameters = inspect.signature(lj.SparseCategoricalCrossentropy).parameters
    for name in parameters:
        assert name in signature


@pytest.mark.slow
def test_search_finds_a_class(browser, server):
    browser.open(f"{server}/search.html?q=SparseCategoricalCrossentropy")
    results: list[str] = []
    deadline = time.monotonic() + 30
    while not results and time.monotonic() < deadline:  # the search runs in JavaScript
        time.sleep(0.2)
        results = browser.evaluate(
            "Array.from(document.querySelectorAll('#search-results li')).map(li => li.textContent)"
        )
    assert results and "losses_jax.SparseCategoricalCrossentropy" in results[0], results
    browser.screenshot(ARTEFACTS / "search.png")
    assert browser.console_errors() == []
