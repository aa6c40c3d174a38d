"""The reports in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Opens ``reports/index.html`` from disk and every report it links to, as a stakeholder would,
and checks: no console errors or page errors, no request leaves the files (no CDN, no
network), every image is decoded and has a non-zero rendered size, every link from the index
resolves to an existing file. A screenshot of the index is saved as a test artefact
(``reports/test-artifacts/index.png``, git-ignored).

Without Chromium the test is skipped with one line saying how to enable it, unless
``CA_REQUIRE_BROWSER=1`` (``.ci/run`` sets it): then a missing or broken browser fails.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from playwright.sync_api import sync_playwright

from conftest import REPO

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("CA_CHROMIUM", "/usr/bin/chromium")
# Flags for a closed network: without the background-networking ones Chromium's own connections
# are refused and show up as errors.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(os.environ.get("CA_TEST_ARTIFACTS", REPO / "reports" / "test-artifacts"))


REQUIRED = os.environ.get("CA_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        how = (
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or point "
            "CA_CHROMIUM at a Chromium binary to run the browser test"
        )
        if not REQUIRED:
            pytest.skip(how)
        pytest.fail(f"{how} (CA_REQUIRE_BROWSER=1: the browser test is mandatory here)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def visit(browser, path: Path, screenshot: Path | None = None) -> dict:
    """Open ``path`` from disk; return what went wrong and what the page holds."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url[:120]}"))

    def only_local(route):
        if route.request.url.startswith(("file:", "data:")):
            route.continue_()
        else:
            problems.append(f"external request: {route.request.url[:120]}")
            route.abort()

    page.route("**/*", only_local)
    response = page.goto(path.as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")
    images = page.evaluate("""() => [...document.images].map(i => {
        const r = i.getBoundingClientRect();
        return {w: r.width, h: r.height, natural: i.naturalWidth, complete: i.complete, alt: i.alt};
    })""")
    links = page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)")
    title = page.title()
    if screenshot:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    return {
        "ok": response is not None and response.ok,
        "problems": problems,
        "images": images,
        "links": links,
        "title": title,
    }


def local_file(url: str) -> Path:
    parsed = urlparse(url)
    assert parsed.scheme == "file", f"link leaves the report folder: {url}"
    return Path(unquote(parsed.path))


def test_index_and_every_linked_report_load_cleanly_in_chromium(browser, scheduled_runs, tmp_path):
    index = scheduled_runs.reports / "index.html"
    shot = tmp_path / "index.png"
    page = visit(browser, index, screenshot=shot)
    assert page["ok"] and not page["problems"], page["problems"]
    assert page["title"] == "Customer analytics: runs"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "index.png")
    assert shot.stat().st_size > 10_000  # a real rendering, not a blank page

    reports = [local_file(u) for u in page["links"] if not urlparse(u).fragment]
    # D1 and D2: five notebooks each; the failed run links only the report of the step that failed
    assert len(reports) == 11
    assert [p.name for p in reports if p.parent.name == "2026-11-03"] == ["01_ingest.html"]
    missing = [p for p in reports if not p.is_file()]
    assert not missing, f"links to missing files: {missing}"
    figures = 0
    for report in sorted(set(reports)):
        got = visit(browser, report)
        assert got["ok"] and not got["problems"], f"{report.name}: {got['problems']}"
        for img in got["images"]:
            assert img["complete"] and img["natural"] > 0, f"{report}: an image did not decode"
            assert img["w"] > 0 and img["h"] > 0, f"{report}: an image renders with zero size"
            assert img["alt"].startswith("Figure: "), f"{report}: an image has no description"
        figures += len(got["images"])
        broken = [
            u for u in got["links"] if urlparse(u).scheme == "file" and not local_file(u).is_file()
        ]
        assert not broken, f"{report.name}: links to missing files {broken}"
    assert figures >= 10  # EDA, features, model comparison and predictions all have figures
