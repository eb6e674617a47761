"""Helpers the dashboard's tests share (its fixtures, `server` and `browser`, are in
conftest.py): the app served by waitress on a free port; a callback POSTed as Dash's front
end posts it; garbage for every callback of a page; polling a page until its run ends; an
analysis held at its first progress report; and a headless Chromium with ways to read a
page's figures and to click, type and pick there."""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from app.main import create_app

CALLBACKS = create_app().callback_map
# values a hand-made request can send in place of any input or state
GARBAGE = [None, 1e999, float("nan"), True, -1, "x" * 1000, [1, "a"], {"points": [{"x": 1e999}]}]


@contextmanager
def serving(app, threads: int = 8) -> Iterator[str]:
    """The app served by waitress on a free port (its URL, no trailing slash), closed once
    its connections are."""
    from waitress.server import create_server

    srv = create_server(app.server, host="127.0.0.1", port=0, threads=threads)
    closing = threading.Event()

    def run() -> None:
        try:
            srv.run()
        except OSError:  # the loop's select on sockets closed under it, once we close
            if not closing.is_set():
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.effective_port}"
    finally:
        deadline = time.time() + 10
        while len(srv._map) > 2 and time.time() < deadline:  # the listener and its trigger
            time.sleep(0.05)
        closing.set()
        srv.close()
        thread.join(timeout=10)


def callback_key(output: str, trigger: str, callbacks: dict = CALLBACKS) -> str:
    """The callback writing `output` ("id.property") first that `trigger` starts."""
    return next(
        key
        for key, callback in callbacks.items()
        if key.strip(".").startswith(output)
        and trigger in [f"{d['id']}.{d['property']}" for d in callback["inputs"]]
    )


def send(
    url: str, key: str, value: Callable[[dict], object], changed: str, callbacks: dict = CALLBACKS
) -> tuple[int, bytes]:
    """POST the callback `key` as Dash's front end does: each input and state `d` set to
    `value(d)`, `changed` ("id.property") the one that changed. The HTTP status and body."""
    callback = callbacks[key]
    ids = [part.split(".") for part in key.strip(".").split("...")]
    outputs = [{"id": i, "property": p.split("@")[0]} for i, p in ids]
    body = {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],  # as Dash sends them
        "inputs": [{**d, "value": value(d)} for d in callback["inputs"]],
        "state": [{**d, "value": value(d)} for d in callback["state"]],
        "changedPropIds": [changed],
    }
    req = urllib.request.Request(
        f"{url}/_dash-update-component",
        data=json.dumps(body).encode(),  # NaN and Infinity as Python's JSON writes them
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as reply:
        return reply.status, reply.read()


def call(url: str, output: str, values: dict[str, object], trigger: str) -> dict:
    """POST the callback whose outputs start with `output` as Dash's front end does: each of
    its inputs and states from `values` ("id.property", None if absent), `trigger` changed.
    The reply's outputs (HTTP 200, or the test fails)."""
    key = callback_key(output, trigger)
    status, body = send(url, key, lambda d: values.get(f"{d['id']}.{d['property']}"), trigger)
    assert status == 200
    return json.loads(body)["response"]


def answer_garbage(
    url: str,
    keys: Iterable[str],
    garbage: object,
    page: str | None = None,
    *,
    each_input: bool = False,
    callbacks: dict = CALLBACKS,
) -> None:
    """POST each callback of `keys` with every input and state set to `garbage` (but the page
    selector to `page`, if given: the page shown), its first input changed (`each_input`:
    each in turn): an answer (200) or no update (204), never a server error, and no internal
    error (every value is checked where it is read)."""

    def value(d: dict) -> object:
        return page if page is not None and d["id"] == "page" else garbage

    for key in keys:
        inputs = callbacks[key]["inputs"]
        for d in inputs if each_input else inputs[:1]:
            changed = f"{d['id']}.{d['property']}"
            status, body = send(url, key, value, changed, callbacks)
            assert status in (200, 204), (key, changed, garbage)
            assert b"internal error" not in body, (key, changed, garbage)


def poll_until_idle(
    url: str, output: str, values: dict[str, object], interval: str, timeout: float = 60.0
) -> dict:
    """Poll as a page does (`interval`.n_intervals fires the callback writing `output`) until
    the reply turns the interval off: nothing of the page's runs any more. The last reply."""
    end = time.monotonic() + timeout
    while True:
        reply = call(
            url, output, {f"{interval}.n_intervals": 1, **values}, f"{interval}.n_intervals"
        )
        if reply[interval]["disabled"]:
            return reply
        assert time.monotonic() < end, "the run did not end"
        time.sleep(0.05)


def gate(monkeypatch: pytest.MonkeyPatch, module, name: str):
    """`module.name`, a function taking `on_progress`, made to stop at its first progress
    report until released: a long run on demand. The events `reached` and `release`, and
    the list of the reports it made."""
    reached, release = threading.Event(), threading.Event()
    reports: list[tuple[int, int]] = []
    real = getattr(module, name)

    def slow(*args, on_progress, **kwargs):
        def report(done: int, total: int) -> None:
            reports.append((done, total))
            on_progress(done, total)  # the page sees it
            reached.set()
            release.wait(30)
            on_progress(done, total)  # and stops here once cancelled

        return real(*args, on_progress=report, **kwargs)

    monkeypatch.setattr(module, name, slow)
    return reached, release, reports


def ended(run, timeout: float = 60.0):
    """The state of a background run (`app.background.Run`) once it has ended."""
    end = time.monotonic() + timeout
    while (state := run.state()).running:
        assert time.monotonic() < end, "the run did not end"
        time.sleep(0.02)
    return state


def z_of(trace: dict) -> np.ndarray:
    """A heatmap's numbers as sent: a typed array (base64) or nested lists (null: NaN)."""
    z = trace["z"]
    if isinstance(z, dict):
        shape = [int(n) for n in str(z["shape"]).split(",")]
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.array(z, dtype=float)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def chromium(profile) -> object:
    """A headless Chromium with its profile in the folder `profile`."""
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
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


FIGURE = """
const el = document.querySelector('#ID .js-plotly-plot');
if (!el || !el.data || !el.layout) return null;
// typed arrays (sent as base64) arrive decoded under _inputArray
const plain = v => v == null ? null : v._inputArray ? plain(v._inputArray)
    : (Array.isArray(v) || ArrayBuffer.isView(v))
    ? Array.from(v, r => (r !== null && typeof r === 'object') ? plain(r) : r) : v;
return {n: el.data.length, title: el.layout.title ? el.layout.title.text || '' : '',
        z: el.data.length ? plain(el.data[0].z) : null,
        x: el.data.length ? plain(el.data[0].x) : null,
        cells: el.querySelectorAll('.heatmaplayer .hm').length,
        text: el.layout.annotations ? el.layout.annotations.map(a => a.text).join(' ') : ''};
"""


def figure(driver, graph: str):
    """What the graph `graph` shows: its number of traces, title, first trace's z and x,
    heatmap cells and annotations' text (None before it is drawn)."""
    return driver.execute_script(FIGURE.replace("ID", graph))


def wait_for(driver, predicate, timeout: float = 30.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: predicate(d))


def type_prompt(driver, text: str) -> None:
    """Type `text` into the prompt box and commit it with Enter. Waits until no callback is in
    flight first (Dash titles the page "Updating..." then): a callback that writes the box (the
    page's own first fill) resets what is typed meanwhile. Selects and overwrites rather than
    `clear()`, whose blur would commit an empty prompt."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, "prompt")
    for _ in range(5):
        wait_for(driver, lambda d: d.title != "Updating...", 60)
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(text)
        if box.get_attribute("value") == text:
            box.send_keys(Keys.ENTER)
            return
    raise AssertionError(f"the prompt box never held {text[:40]!r}")


def emit(driver, graph: str, event: str, data: object) -> None:
    """A plotly event (a click...) on the graph `graph`, as the user's would be."""
    driver.execute_script(
        f"document.querySelector('#{graph} .js-plotly-plot').emit('{event}', arguments[0]);",
        data,
    )


def set_number(driver, element_id: str, value: int) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, element_id)
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(value))


def pick(driver, radio: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#{radio} input[value='{value}']").click()
