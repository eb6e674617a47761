"""The probes page in a real headless Chromium (tests/app/helpers.py): a linear probe
run from the page draws the numbers `workbench probe --json` prints for the same settings;
a decomposition's spiral switches between 3-D and 2-D and between layers on the page."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.app.helpers import pick, set_number, wait_for
from workbench.cli import cli

pytestmark = pytest.mark.browser

TRACES = """
const el = document.querySelector('#probes-figure .js-plotly-plot');
if (!el || !el.data || !el.layout || !el.layout.title) return null;
const plain = v => v == null ? null : v._inputArray ? plain(v._inputArray)
    : (Array.isArray(v) || ArrayBuffer.isView(v)) ? Array.from(v, plain) : v;
return {title: el.layout.title.text || '',
        traces: el.data.map(t => ({name: t.name, type: t.type || 'scatter', x: plain(t.x),
                                   y: plain(t.y)}))};
"""


def shown(driver, previous: str | None):
    """The figure once a run is done and its title differs from `previous`."""
    from selenium.webdriver.common.by import By

    wait_for(driver, lambda d: d.find_element(By.ID, "probes-progress").text.startswith("done"), 60)
    return wait_for(
        driver, lambda d: (f := d.execute_script(TRACES)) and f["title"] != previous and f, 30
    )


def by_name(figure: dict, name: str) -> dict:
    (trace,) = [t for t in figure["traces"] if t["name"] == name]
    return trace


def test_a_probe_from_the_page_equals_the_cli(server, browser) -> None:
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url)
    wait_for(browser, lambda d: d.find_element(By.ID, "model").text.strip() == "induction-2l")
    browser.find_element(By.XPATH, "//*[@id='page']//*[normalize-space(text())='probes']").click()
    wait_for(browser, lambda d: d.find_element(By.ID, "probes-start").is_displayed())
    set_number(browser, "probes-probe-n-prompts", 8)
    set_number(browser, "probes-probe-seed", 3)
    pick(browser, "probes-probe-site", "resid_mid")
    browser.find_element(By.ID, "probes-start").click()
    figure = shown(browser, None)
    printed = CliRunner().invoke(
        cli,
        ["probe", "--model", "induction-2l", "--n-prompts", "8", "--seed", "3", "--site",
         "resid_mid", "--json"],
    )  # fmt: skip
    assert printed.exit_code == 0, printed.output
    expected = json.loads(printed.output)
    assert figure["title"].startswith("logistic probes at resid_mid: accuracy per layer")
    for name, key in (("train", "train"), ("test", "test"), ("control task", "control")):
        np.testing.assert_allclose(by_name(figure, name)["y"], expected[key], atol=1e-12)
    selectivity = by_name(figure, "selectivity (test - control)")["y"]
    np.testing.assert_allclose(selectivity, expected["selectivity"], atol=1e-12)
    # a decomposition: its spiral in 3-D, then in 2-D, then of the first layer
    pick(browser, "probes-analysis", "decompose")
    set_number(browser, "probes-decompose-n-prompts", 4)
    browser.find_element(By.ID, "probes-start").click()
    figure = shown(browser, figure["title"])
    assert by_name(figure, "positions pos[t]")["type"] == "scatter3d"
    assert browser.find_element(By.ID, "probes-view").is_displayed()
    pick(browser, "probes-view-dims", "2")
    wait_for(
        browser,
        lambda d: by_name(d.execute_script(TRACES), "positions pos[t]")["type"] == "scatter",
    )
    last = by_name(browser.execute_script(TRACES), "positions pos[t]")
    pick(browser, "probes-view-layer", "0")
    wait_for(browser, lambda d: by_name(d.execute_script(TRACES), "positions pos[t]") != last)
    assert "positional spiral, layer 0" in " ".join(
        browser.execute_script(
            "return document.querySelector('#probes-figure .js-plotly-plot').layout"
            ".annotations.map(a => a.text);"
        )
    )
    assert browser.find_element(By.ID, "probes-error").text == ""
