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
const el = document.querySelector('#ID .js-plotly-plot');
if (!el || !el.data || !el.layout) return null;
return {n: el.data.length, title: el.layout.title ? el.layout.title.text || '' : '',
        z: el.data.length ? el.data[0].z : null, x: el.data.length ? el.data[0].x : null,
        cells: el.querySelectorAll('.heatmaplayer .hm').length,
        text: el.layout.annotations ? el.layout.annotations.map(a => a.text).join(' ') : ''};
"""
CLICK = """
document.querySelector('#overview .js-plotly-plot').emit(
    'plotly_click', {points: [{x: arguments[0], y: arguments[1], curveNumber: 0}]});
"""


def figure(driver, graph: str):
    return driver.execute_script(FIGURE.replace("ID", graph))


def _wait_for(driver, predicate, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d))


def type_prompt(driver, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "prompt")
    box.clear()
    box.send_keys(text + Keys.ENTER)


def test_the_model_view_opens_the_clicked_head(server: str, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server)
    _wait_for(browser, lambda d: figure(d, "overview") and figure(d, "head")["title"])
    type_prompt(browser, "BOS t1 t2 t3 t4 t1 t2 t3")
    view = _wait_for(
        browser, lambda d: (f := figure(d, "head")) and f["x"] and len(f["x"]) == 8 and f
    )
    assert view["title"] == "head L0H0"
    overview = figure(browser, "overview")
    assert len(overview["z"]) == 2 and len(overview["z"][0]) == 4  # induction-2l: 2 x 4 heads
    assert overview["cells"] == 1 and "earlier copy" in overview["title"]  # induction
    browser.execute_script(CLICK, "H3", "L1")
    clicked = _wait_for(browser, lambda d: (f := figure(d, "head"))["title"] == "head L1H3" and f)
    assert len(clicked["z"]) == 8 and clicked["x"][5] == "5:t1"  # readable key labels
    assert abs(sum(clicked["z"][7]) - 1) < 1e-5  # a probability row
    assert browser.find_element(By.ID, "error").text == ""


def test_a_word_outside_the_vocabulary_shows_an_error(server: str, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server)
    _wait_for(browser, lambda d: figure(d, "overview"))
    type_prompt(browser, "BOS t1 banana")
    error = _wait_for(browser, lambda d: d.find_element(By.ID, "error").text)
    assert "'banana' is not in this model's vocabulary" in error
    stale = _wait_for(
        browser, lambda d: (f := figure(d, "overview")) and "banana" in f["text"] and f
    )
    assert stale["n"] == 0  # the old numbers are gone
