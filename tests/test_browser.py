"""The built book, opened page by page in headless Chromium, as a reader would.

Builds the HTML (no notebook is executed; the committed outputs are shown), serves it on
localhost, and checks each page of the table of contents: it loads, every image loads, the
math is typeset, and each chapter's Colab button opens that chapter's own notebook.
Screenshots are kept under _build/screenshots as artifacts.

`make test` skips it, with its reason, only where Chromium or the local MathJax could not be
installed (no apt-get or npm: ``MIXUPLIB_SKIP_BROWSER`` holds the reason); anywhere else a
missing Chromium or MathJax fails it.
"""

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The pages load MathJax 3 from a CDN this machine cannot reach; the test serves the same
# release from the npm package that `make test` installs, so the math is really typeset.
MATHJAX = ROOT / ".cache" / "mathjax" / "node_modules" / "mathjax"
MATHJAX_CDN = re.compile(r"^https://cdn\.jsdelivr\.net/npm/mathjax@3/(.*)$")
pytestmark = pytest.mark.browser
if os.environ.get("MIXUPLIB_SKIP_BROWSER"):
    pytest.skip(f"the browser check is skipped: {os.environ['MIXUPLIB_SKIP_BROWSER']}", allow_module_level=True)


def toc_pages():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [c["file"] for c in part["chapters"]]
    return pages


@pytest.fixture(scope="module")
def site():
    jb = Path(sys.executable).with_name("jupyter-book")
    build = subprocess.run([str(jb), "build", str(ROOT), "--warningiserror", "--keep-going"], capture_output=True, text=True)
    assert build.returncode == 0, f"the book build failed or warned:\n{build.stdout[-4000:]}\n{build.stderr[-4000:]}"
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


@pytest.mark.parametrize("page_path", toc_pages())
def test_page_renders(site, browser, page_path):
    if not (MATHJAX / "es5").is_dir():
        pytest.fail(f"MathJax 3 is missing under {MATHJAX}: `make test` installs it with npm")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    blocked = []

    def offline(route):
        local = MATHJAX_CDN.match(route.request.url)
        if local and (MATHJAX / local.group(1)).is_file():
            route.fulfill(path=str(MATHJAX / local.group(1)))
        else:
            blocked.append(route.request.url)
            route.abort()

    page.route(re.compile(r"^https?://(?!127\.0\.0\.1).*"), offline)
    response = page.goto(f"{site}/{page_path}.html", wait_until="load")
    assert response is not None and response.ok, f"{page_path}: HTTP {response and response.status}"
    assert page.title(), f"{page_path}: no title"

    broken = page.evaluate("""() => [...document.images]
        .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src)""")
    assert not broken, f"{page_path}: images that did not load: {broken}"

    math = page.locator(".math").count()
    if math:
        page.wait_for_function("() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise", timeout=30000)
        page.evaluate("() => MathJax.startup.promise.then(() => true)")
        typeset = page.locator("mjx-container").count()
        assert typeset >= math, f"{page_path}: {math} formulas but only {typeset} typeset by MathJax"
    text = page.inner_text("article")
    assert "$$" not in text and "\\[" not in text and "\\begin{" not in text, f"{page_path}: raw TeX left in the text"
    if page_path.startswith("notebooks/"):
        assert math > 0, f"{page_path}: a chapter without equations"
        colab = page.locator("a[href*='colab.research.google.com']")
        assert colab.count() > 0, f"{page_path}: no Colab button"
        href = colab.first.get_attribute("href")
        assert href.endswith(f"/{page_path}.ipynb"), f"{page_path}: the Colab button opens {href}"
        figures = page.locator("figure img, div.cell_output img")
        assert figures.count() > 0, f"{page_path}: a chapter page with no figure"
    assert not blocked, f"{page_path}: the page asked for resources outside the book: {blocked}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{page_path.replace('/', '_')}.png"), full_page=False)
    page.close()
