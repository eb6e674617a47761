"""The dashboard in a real headless Chromium, served by waitress as `workbench app` serves it:
type a prompt, see the model view, click a head; concurrent sessions see their own values."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.app.helpers import chromium, emit, figure, serving, type_prompt, wait_for

pytestmark = pytest.mark.browser

CLICK = """
document.querySelector('#overview .js-plotly-plot').emit(
    'plotly_click', {points: [{x: arguments[0], y: arguments[1], curveNumber: 0}]});
"""


def test_the_model_view_opens_the_clicked_head(server, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server[0])
    wait_for(browser, lambda d: figure(d, "overview") and figure(d, "head")["title"])
    type_prompt(browser, "BOS t1 t2 t3 t4 t1 t2 t3")
    view = wait_for(
        browser, lambda d: (f := figure(d, "head")) and f["x"] and len(f["x"]) == 8 and f
    )
    assert view["title"] == "head L0H0"
    overview = figure(browser, "overview")
    assert len(overview["z"]) == 2 and len(overview["z"][0]) == 4  # induction-2l: 2 x 4 heads
    assert overview["cells"] == 1 and "earlier copy" in overview["title"]  # induction
    browser.execute_script(CLICK, "H3", "L1")
    clicked = wait_for(browser, lambda d: (f := figure(d, "head"))["title"] == "head L1H3" and f)
    assert len(clicked["z"]) == 8 and clicked["x"][5] == "5:t1"  # readable key labels
    assert abs(sum(clicked["z"][7]) - 1) < 1e-5  # a probability row
    assert browser.find_element(By.ID, "error").text == ""


def test_a_word_outside_the_vocabulary_shows_an_error(server, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server[0])
    wait_for(browser, lambda d: figure(d, "overview"))
    type_prompt(browser, "BOS t1 banana")
    wait_for(
        browser,
        lambda d: (
            "'banana' is not in this model's vocabulary" in d.find_element(By.ID, "error").text
        ),
    )
    stale = wait_for(
        browser, lambda d: (f := figure(d, "overview")) and "banana" in f["text"] and f
    )
    assert stale["n"] == 0  # the old numbers are gone


@pytest.mark.slow
def test_concurrent_browser_sessions_each_see_their_own_values(server, tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from app.main import create_app
    from app.run import attention_patterns

    url, app = server
    vocab = app.registry.checkpoint("induction-2l").vocab
    gen = torch.Generator().manual_seed(1)
    prompts = [
        " ".join(
            ["BOS", *(vocab[int(i)] for i in torch.randint(3, len(vocab), (9,), generator=gen))]
        )
        for _ in range(8)
    ]
    drivers = [chromium(tmp_path / f"profile{i}") for i in range(8)]
    try:
        for driver in drivers:
            driver.get(url)
            wait_for(driver, lambda d: figure(d, "overview") and figure(d, "head")["title"], 60)

        def session(i: int):  # all eight type and click at once
            driver = drivers[i]
            type_prompt(driver, prompts[i])
            wait_for(driver, lambda d: len(figure(d, "head")["x"] or []) == 10, 120)
            driver.execute_script(CLICK, "H3", "L1")
            return wait_for(
                driver, lambda d: (f := figure(d, "head"))["title"] == "head L1H3" and f, 120
            )

        with ThreadPoolExecutor(8) as pool:
            seen = list(pool.map(session, range(8)))
    finally:
        for driver in drivers:
            driver.quit()
    reference = create_app().registry  # computed alone: not the server's own recent runs
    for prompt, shown in zip(prompts, seen, strict=True):
        patterns, prepared = attention_patterns(reference, "induction-2l", prompt)
        assert shown["x"] == [f"{i}:{t}" for i, t in enumerate(prepared.labels)]
        assert torch.allclose(torch.tensor(shown["z"]), patterns[1, 3], atol=1e-6)


def test_lines_token_view_and_predictions_render_and_link(server, browser) -> None:
    from selenium.webdriver.common.by import By

    browser.get(server[0])
    wait_for(browser, lambda d: figure(d, "overview") and figure(d, "head")["title"])
    type_prompt(browser, "BOS t1 t2 t3 t1 t2")
    wait_for(browser, lambda d: len(figure(d, "head")["x"] or []) == 6)
    # the token view: the last token until a token's column is clicked
    token = wait_for(browser, lambda d: (f := figure(d, "token")) and "5:t2" in f["title"] and f)
    assert len(token["z"]) == 5 and len(token["z"][0]) == 6  # 4 heads and their mean
    emit(browser, "token", "plotly_click", {"points": [{"x": "3:t3", "y": "H0", "curveNumber": 0}]})
    wait_for(browser, lambda d: "position 3:t3" in figure(d, "token")["title"])
    # the head view as lines
    browser.find_element(By.CSS_SELECTOR, "#head-style input[value='lines']").click()
    lines = wait_for(browser, lambda d: (f := figure(d, "head")) and f["n"] > 3 and f)
    assert lines["title"] == "head L0H0"
    # heads overlaid
    browser.find_element(By.CSS_SELECTOR, "#head-mode input[value='overlay']").click()
    wait_for(browser, lambda d: figure(d, "head")["title"].startswith("layer 0, heads H0, H1"))
    # the predictions tab is computed when shown
    assert not figure(browser, "topk") or figure(browser, "topk")["n"] == 0
    browser.find_element(By.XPATH, "//*[contains(text(), 'what the model predicts')]").click()
    top = wait_for(browser, lambda d: (f := figure(d, "topk")) and f["n"] and f)
    assert len(top["z"]) == 6  # one row per position
    wait_for(browser, lambda d: (f := figure(d, "dla")) and f["n"] and "logit" in f["title"])
    assert browser.find_element(By.ID, "pred-error").text == ""


@contextmanager
def serving_one(folder, preset: str, **overrides) -> Iterator[str]:
    """A server whose first model is a tiny `preset` saved in `folder`."""
    import workbench
    from app.main import create_app

    directory = folder / preset
    workbench.checkpoint.save(workbench.build(preset, seed=0, **overrides), directory)
    with serving(create_app([str(directory)])) as url:
        yield url + "/"


@pytest.fixture(scope="module")
def long_server(tmp_path_factory) -> Iterator[str]:
    """A server whose first model takes 1,024 tokens (raw ids)."""
    folder = tmp_path_factory.mktemp("models")
    with serving_one(folder, "gpt2-small-tiny", n_layers=2, n_ctx=1024) as url:
        yield url


def test_a_1024_token_prompt_renders_and_a_zoom_fetches_its_window(long_server, browser) -> None:
    browser.get(long_server)
    wait_for(browser, lambda d: figure(d, "overview") and figure(d, "head")["title"], 60)
    type_prompt(browser, " ".join(str(i % 50) for i in range(1024)))
    pooled = wait_for(browser, lambda d: "4x4 blocks" in figure(d, "head")["title"], 120)
    assert pooled
    shown = figure(browser, "head")
    assert len(shown["z"]) == 256 and len(shown["z"][0]) == 256 and shown["x"] is None
    browser.execute_script(
        "Plotly.relayout(document.querySelector('#head .js-plotly-plot'),"
        " {'xaxis.range': [99.5, 139.5], 'yaxis.range': [139.5, 99.5]});"
    )
    zoomed = wait_for(browser, lambda d: (f := figure(d, "head")) and f["x"] and f, 60)
    # whole 4-position blocks: the range touches blocks 25 (100..103) to 35 (140..143)
    assert zoomed["x"][0] == "100:0" and len(zoomed["x"]) == 44 and len(zoomed["z"]) == 44
    assert "queries 100-143, keys 100-143" in zoomed["title"]
    token = figure(browser, "token")
    assert len(token["z"][0]) == 1024


def test_the_neuron_view_shows_the_clicked_querys_pre_softmax_scores(server, browser) -> None:
    import torch

    from app.run import prepare
    from workbench import names

    url, app = server
    browser.get(url)
    wait_for(browser, lambda d: figure(d, "overview") and figure(d, "head")["title"])
    prompt = "BOS t1 t2 t3 t1 t2"
    type_prompt(browser, prompt)
    wait_for(browser, lambda d: len(figure(d, "head")["x"] or []) == 6)
    browser.execute_script(CLICK, "H3", "L1")
    wait_for(browser, lambda d: figure(d, "head")["title"] == "head L1H3")
    emit(browser, "head", "plotly_click", {"points": [{"x": "2:t2", "y": "4:t1", "z": 0.1}]})
    terms = wait_for(
        browser,
        lambda d: (
            d.execute_script(NEURON)
            if "query 4:t1" in (figure(d, "neuron") or {}).get("title", "")
            else None
        ),
    )
    ckpt = app.registry.checkpoint("induction-2l")
    with torch.no_grad():
        _, cache = ckpt.model.run_with_cache(
            prepare(ckpt, prompt).inputs, names_filter=[names.attn_scores(1)]
        )
    expected = cache[names.attn_scores(1)][0, 3, 4]
    for k in range(6):
        if k <= 4:
            assert abs(terms[-1][k] - float(expected[k])) < 1e-4  # the total row
        else:
            assert terms[-1][k] is None  # a masked key: blank


NEURON = """
const el = document.querySelector('#neuron .js-plotly-plot');
const t = el && el.data.find(d => d.name === 'terms');
if (!t) return null;
const z = t.z._inputArray || t.z;
return Array.from(z, r => Array.from(r, v => (v === null || Number.isNaN(v)) ? null : v));
"""


@pytest.fixture(scope="module")
def vision_server(tmp_path_factory) -> Iterator[str]:
    """A server whose first model reads images."""
    with serving_one(tmp_path_factory.mktemp("models"), "vit-tiny-patch4-tiny") as url:
        yield url


def test_a_vision_model_takes_an_uploaded_png_and_shows_its_patch_overlay(
    vision_server, browser, tmp_path
) -> None:
    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By

    browser.get(vision_server)
    head = wait_for(browser, lambda d: (f := figure(d, "head")) and f["x"] and f, 60)
    assert head["x"][:2] == ["0:CLS", "1:r0c0"]  # sample 0 of its input, patch labels
    pixels = np.zeros((64, 64, 3), dtype=np.uint8)
    pixels[:, 20:44] = 255
    Image.fromarray(pixels).save(tmp_path / "bar.png")
    # dcc.Upload is loaded on its own, after the page: wait for its file input
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(
        str(tmp_path / "bar.png")
    )
    wait_for(
        browser,
        lambda d: d.find_element(By.ID, "prompt").get_attribute("value") == "uploaded image",
    )
    browser.find_element(By.XPATH, "//*[contains(text(), 'image / series / RASP')]").click()
    overlay = wait_for(browser, lambda d: (f := figure(d, "input-view")) and f["n"] and f, 60)
    assert "class token" in overlay["title"]
    assert browser.find_element(By.ID, "input-error").text == ""
    assert browser.find_element(By.ID, "error").text == ""
