"""The patching page in a real headless Chromium (tests/app/helpers.py): a sweep run
from the page draws the numbers `workbench patch --json` prints for the same settings; a head's
cell shows its patched run's top tokens and opens in the attention view."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.app.helpers import emit, figure, pick, set_number, wait_for
from workbench.cli import cli

pytestmark = pytest.mark.browser


def cli_grid(*args: str) -> np.ndarray:
    result = CliRunner().invoke(cli, ["patch", "--model", "induction-2l", *args, "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    scores = [row[printed["metric"]] for row in printed["results"]]
    return np.array(scores).reshape(printed["shape"])


def run_sweep(driver, previous: str | None):
    """Click run and wait for a finished heatmap (whose title differs from `previous`)."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "patching-start").click()
    wait_for(
        driver, lambda d: d.find_element(By.ID, "patching-progress").text.startswith("done"), 60
    )
    return wait_for(
        driver,
        lambda d: (f := figure(d, "patching-heatmap")) and f["n"] and f["title"] != previous and f,
        30,
    )


def test_a_sweep_from_the_page_equals_the_cli_and_opens_a_head(server, browser) -> None:
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url)
    wait_for(browser, lambda d: figure(d, "overview"))
    browser.find_element(By.XPATH, "//*[@id='page']//*[normalize-space(text())='patching']").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "patching-start").is_displayed())
    set_number(browser, "patching-n", 3)
    set_number(browser, "patching-seed", 5)
    # layer x position: the residual stream
    shown = run_sweep(browser, None)
    expected = cli_grid("--site", "resid_pre", "--n-prompts", "3", "--seed", "5")
    assert np.array(shown["z"]).shape == expected.shape == (2, 24)
    np.testing.assert_allclose(np.array(shown["z"], dtype=float), expected, atol=1e-5)
    assert shown["title"].startswith("patch resid_pre: logit_diff (corrupted ")
    # layer x head: each head's output over all positions, by the mean ablation
    pick(browser, "patching-site", "z")
    pick(browser, "patching-positions", "all")
    pick(browser, "patching-metric", "prob")
    heads = run_sweep(browser, shown["title"])
    expected = cli_grid(
        "--site", "z", "--positions", "all", "--metric", "prob", "--n-prompts", "3", "--seed", "5"
    )  # fmt: skip
    assert np.array(heads["z"]).shape == (2, 4)
    np.testing.assert_allclose(np.array(heads["z"], dtype=float), expected, atol=1e-5)
    # a head's cell: its patched run's top tokens, then its attention view
    emit(
        browser, "patching-heatmap", "plotly_click", {"points": [{"x": "H3", "y": "L1", "z": 0.5}]}
    )
    wait_for(browser, lambda d: (f := figure(d, "patching-topk")) and f["n"] == 3)
    title = browser.execute_script(
        "return document.querySelector('#patching-topk .js-plotly-plot').layout.title.text;"
    )
    assert f"over all prompts: {expected[1, 3]:.4g}" in title  # the clicked cell's run
    button = wait_for(
        browser, lambda d: (b := d.find_element(By.ID, "patching-open")).is_displayed() and b
    )
    assert button.text == "open L1H3 in the attention view"
    button.click()
    wait_for(browser, lambda d: (f := figure(d, "head")) and f["title"] == "head L1H3", 60)
    assert browser.find_element(By.ID, "overview").is_displayed()
    prompt = browser.find_element(By.ID, "prompt").get_attribute("value")
    assert prompt.startswith("BOS ") and len(prompt.split()) == 24  # the clean prompt 0
    head = figure(browser, "head")
    assert len(head["z"]) == 24
    assert browser.find_element(By.ID, "error").text == ""
