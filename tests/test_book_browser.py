"""The book (``make book``) in a real browser: Debian's Chromium via Playwright, over a local HTTP server.

Opens the landing page, the results page, the running page and every notebook page; on each,
every ``<img>`` must load (``naturalWidth > 0``) and every internal link must resolve (the target
answers 200 and, for ``#fragment`` links, has an element with that id). Saves screenshots of one
notebook page and of the results page to ``build/book/screenshots/`` (ignored by git: their bytes
differ from run to run, and a test run must not leave a clone's tree dirty). ``make
book-screenshots`` runs this test with ``FACELAB_BOOK_SHOTS=figures/book`` to refresh the tracked
copies the README points at, on purpose.

Uses ``build/book/html`` when ``make book`` has built it (``make test`` does, from the executed
smoke runs), else builds it first. Chromium gets a fresh profile; the page may ask for MathJax
from its CDN, which is not an internal link and not checked.
"""
from __future__ import annotations

import functools
import os
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from browser_lab import CHROMIUM, fresh_chromium
from facelab import book

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "build" / "book" / "html"
SHOTS = ROOT / os.environ.get("FACELAB_BOOK_SHOTS", "build/book/screenshots")
SCREENSHOT_NOTEBOOK = "05_au_guided_fer"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.executed]


@pytest.fixture(scope="module")
def site():
    if not (HTML / "index.html").exists():
        book.build()
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test prints what failed, not every request
        pass


def _fetch(url: str, cache: dict[str, tuple[int, str]]) -> tuple[int, str]:
    if url not in cache:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body = r.read().decode("utf-8", "replace") if url.endswith((".html", "/")) else ""
                cache[url] = (r.status, body)
        except urllib.error.HTTPError as e:
            cache[url] = (e.code, "")
    return cache[url]


_JS_IMAGES = """async () => {
  const imgs = [...document.querySelectorAll('img')];
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = r; i.onerror = r; })));
  return imgs.map(i => ({src: i.currentSrc || i.src, w: i.naturalWidth}));
}"""


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed "
                    "(apt-get install -y chromium; .ci/run does it)")
def test_every_page_loads_its_images_and_internal_links(site, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright python package is missing")
    pages = ["index.html", "results.html", "running.html"] + \
        [f"notebooks/{p.notebook}.html" for p in book.pick_pages(ROOT)]
    problems: list[str] = []
    cache: dict[str, tuple[int, str]] = {}
    n_images = n_links = 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in ("notebook_page.png", "results_page.png"):  # so the check below sees this run's shots
        (SHOTS / old).unlink(missing_ok=True)
    with sync_api.sync_playwright() as p:
        ctx = fresh_chromium(p, tmp_path, {"width": 1400, "height": 1000})
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            for rel in pages:
                url = f"{site}/{rel}"
                # the results table is wide: show it whole in its screenshot
                page.set_viewport_size({"width": 1900 if rel == "results.html" else 1400, "height": 1000})
                resp = page.goto(url, wait_until="domcontentloaded")
                if resp is None or resp.status != 200:
                    problems.append(f"{rel}: HTTP {resp.status if resp else 'no response'}")
                    continue
                for img in page.evaluate(_JS_IMAGES):
                    n_images += 1
                    if img["w"] <= 0:
                        problems.append(f"{rel}: image did not load: {img['src']}")
                hrefs = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
                for href in hrefs:
                    if not href.startswith(site):
                        continue  # external: not the book's to resolve
                    n_links += 1
                    target, _, frag = href.partition("#")
                    status, body = _fetch(target, cache)
                    if status != 200:
                        problems.append(f"{rel}: link {href} -> HTTP {status}")
                    elif frag and target.endswith(".html"):
                        frag = urllib.parse.unquote(frag)
                        if not re.search(rf'id="{re.escape(frag)}"', body):
                            problems.append(f"{rel}: link {href}: no element with id {frag!r}")
                if rel == f"notebooks/{SCREENSHOT_NOTEBOOK}.html":
                    first_fig = page.locator(".cell_output img").first
                    if first_fig.count():
                        first_fig.scroll_into_view_if_needed()
                    page.screenshot(path=str(SHOTS / "notebook_page.png"))
                if rel == "results.html":
                    page.screenshot(path=str(SHOTS / "results_page.png"))
        finally:
            ctx.close()
    assert not problems, f"{len(problems)} problems on {len(pages)} pages:\n" + "\n".join(problems[:50])
    assert n_images >= len(pages) - 3, f"only {n_images} images on {len(pages)} pages: are the outputs rendered?"
    assert n_links > len(pages), f"only {n_links} internal links checked"
    assert (SHOTS / "results_page.png").exists(), f"no screenshot of the results page in {SHOTS}"
    assert (SHOTS / "notebook_page.png").exists(), f"no screenshot of {SCREENSHOT_NOTEBOOK} in {SHOTS}"
    print(f"{len(pages)} pages, {n_images} images, {n_links} internal links: all resolve")
