"""The page at / in a real browser: a person types a sentence, clicks, and sees the entities the model
finds highlighted in it, exactly those ``Predictor.predict`` returns for the same text.

Drives the system's chromium with Playwright (its own browser download needs the internet); skips where
either is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from inference.live_server import running

from bertkit.inference.predictor import Predictor
from bertkit.inference.serving import create_app

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the dev extra)")

# Debian's binary itself first: /usr/bin/chromium is a wrapper script around it
BROWSERS = ("/usr/lib/chromium/chromium", "/usr/bin/chromium", "chromium", "chromium-browser")
TEXT = "alice smith went to paris and met bob in lima"


def system_browser() -> str | None:
    for name in BROWSERS:
        path = name if Path(name).is_file() else shutil.which(name)
        if path:
            return path
    return None


def test_the_page_highlights_the_entities_the_model_finds(ner_model, tmp_path):
    browser_path = system_browser()
    if browser_path is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    # emoji first: the server's offsets count code points, JavaScript's strings UTF-16 units
    text = "😀😀 " + TEXT
    want = [(e.text, e.label) for e in Predictor.load(ner_model).predict([text])[0]]
    assert len(want) >= 2  # the model has learnt the pattern: there is something to highlight

    with running(create_app(Predictor.load(ner_model))) as url, sync_api.sync_playwright() as pw:
        # --no-sandbox: CI and containers run as root, where chromium's sandbox cannot start
        browser = pw.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            outside = []
            page.on("request", lambda r: None if r.url.startswith(url) else outside.append(r.url))
            page.goto(url + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)
            assert "task: ner" in page.inner_text("#meta")
            page.fill("#text", text)
            page.click("#submit")
            page.wait_for_selector("mark.entity", timeout=20_000)
            marks = page.query_selector_all("mark.entity")
            shown = [
                (m.query_selector(".span-text").inner_text(), m.get_attribute("data-label")) for m in marks
            ]
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        finally:
            browser.close()
    assert shown == want
    assert outside == []  # the page asked nothing of any other server
    assert (tmp_path / "page.png").stat().st_size > 1000
