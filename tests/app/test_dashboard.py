"""The dashboard in a real headless Chromium: type a prompt, see the attention figure."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from app.main import create_app

    app = create_app()
    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}/"
    srv.shutdown()
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail(
            "chromium and chromedriver are needed: apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


FIGURE = """
const el = document.querySelector('#attention .js-plotly-plot');
if (!el || !el.data || !el.layout.title) return null;
return {n: el.data.length, title: el.layout.title.text || '',
        heatmaps: el.querySelectorAll('.heatmaplayer .hm').length};
"""


def _wait_for(driver, predicate, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d))


def test_typing_a_prompt_renders_every_layer_and_head(server: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server)
    _wait_for(browser, lambda d: d.execute_script(FIGURE))
    box = browser.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys("BOS t1 t2 t3 t4 t1 t2 t3" + Keys.ENTER)
    fig = _wait_for(
        browser, lambda d: (f := d.execute_script(FIGURE)) and "(8 tokens)" in f["title"] and f
    )
    assert fig["n"] == 2 * 4  # induction-2l: 2 layers x 4 heads, one heatmap each
    assert fig["heatmaps"] == 8  # and plotly drew all of them
    assert browser.find_element(By.ID, "error").text == ""


def test_a_word_outside_the_vocabulary_shows_an_error(server: str, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server)
    _wait_for(browser, lambda d: d.execute_script(FIGURE))
    box = browser.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys("BOS t1 banana" + Keys.ENTER)
    error = _wait_for(browser, lambda d: d.find_element(By.ID, "error").text)
    assert "'banana' is not in this model's vocabulary" in error
