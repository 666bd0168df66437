"""The web page in a real browser: Playwright driving Debian's Chromium (scripts/setup.sh
installs it; the test is skipped where no Chromium exists)."""

from __future__ import annotations

import shutil

import pytest
from tests.serving.conftest import KEY, LiveServer, make_config

from huajia.serving.app import create_app

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (scripts/setup.sh installs it)")
def test_page_paints_while_thinking_and_shows_the_timeline(tmp_path, sd_dir):
    app = create_app(make_config(tmp_path, sd_dir, api_keys=(KEY,)))
    with LiveServer(app) as server, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.goto(f"{server.url}/?key={KEY}")
        page.wait_for_selector("#style option[value='cartoon']", state="attached")
        page.fill("#prompt", "一个红色圆形在一个蓝色正方形的左边")
        page.fill("#seed", "4")
        page.select_option("#size", "64x64")
        page.check("#think")
        page.click("#go")
        page.wait_for_selector("#gallery img", timeout=120_000)
        thoughts = page.locator("#thoughts li").all_inner_texts()
        assert thoughts and thoughts[0].startswith("plan") and "@" not in thoughts[0][:6]
        assert "done" in page.inner_text("#status")
        image = page.locator("#gallery img").first
        assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 64
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        # the edit form: upload a picture and a mask, get the repainted picture in the gallery
        from PIL import Image

        Image.new("RGB", (64, 64), "white").save(tmp_path / "in.png")
        mask = Image.new("L", (64, 64), 0)
        mask.paste(255, (32, 0, 64, 64))
        mask.save(tmp_path / "mask.png")
        page.set_input_files("#edit-image", str(tmp_path / "in.png"))
        page.set_input_files("#edit-mask", str(tmp_path / "mask.png"))
        page.click("#edit-go")
        page.wait_for_function("document.querySelectorAll('#gallery img').length === 2", timeout=120_000)
        assert "a green triangle" in page.locator("#gallery figcaption").first.inner_text()
        # delete a result: gone from the page and from the server
        url = page.evaluate("() => document.querySelector('#gallery img').src")
        page.locator("#gallery button.delete").first.click()
        page.wait_for_function("document.querySelectorAll('#gallery img').length === 1")
        import httpx

        assert httpx.get(url, timeout=60).status_code == 404
        # bad input shows the API's one-line message, not a broken page
        page.fill("#prompt", "a n.u.d.e figure")
        page.click("#go")
        page.wait_for_function("document.getElementById('error').textContent.length > 0")
        assert "blocked" in page.inner_text("#error")
        browser.close()
    shutil.copy(tmp_path / "page.png", "/tmp/huajia-page.png")
