"""A real browser (Debian's headless Chromium, driven by Playwright) generates a clip on the page and plays it."""

import shutil

import pytest
from serving_toys import start_server, stop_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]


@pytest.mark.slow
def test_page_generates_and_plays_a_video(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    if shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    server, url = start_server("--videos-dir", str(tmp_path / "videos"))  # the packaged default model
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent.startsWith('model ')")
            page.get_by_role("button", name="a blue ball is thrown to the right and falls in a parabola").click()
            page.fill("#num_frames", "5")
            page.fill("#seed", "7")
            page.click("#generate")
            page.wait_for_function("document.getElementById('player').played.length > 0 && "
                                   "document.getElementById('player').currentTime > 0", timeout=120_000)
            settings = page.inner_text("#settings")
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
        assert "a blue ball is thrown to the right" in settings and "7" in settings
        assert (tmp_path / "page.png").stat().st_size > 0
    finally:
        stop_server(server)
