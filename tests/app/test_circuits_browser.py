"""The circuits page in a real headless Chromium, served by waitress as `workbench app` serves
it: a job launched from the page finishes while another browser keeps using the attention
page; cancel and resume from the page keep the store consistent and finish with an
uninterrupted run's circuit; compiled `reverse`'s graph is its ground truth, and a click on a
head opens it in the attention view."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.app.helpers import chromium, figure, serving, type_prompt, wait_for
from tests.app.test_circuits_page import SLOW_ACDC
from workbench.cli import cli
from workbench.errors import InputError
from workbench.store import JobStore

pytestmark = pytest.mark.browser

EDGES = """
const el = document.querySelector('#circuits-graph .js-plotly-plot');
if (!el || !el.data || !el.layout.title) return null;
const t = el.data.find(d => d.name === 'edges');
return {title: el.layout.title.text || '', edges: t ? Array.from(t.customdata || []) : []};
"""
TITLE = """
const el = document.querySelector('#ID .js-plotly-plot');
return el && el.layout && el.layout.title ? el.layout.title.text || '' : '';
"""


@contextmanager
def page(tmp_path: Path, *drivers, models: list[str] | None = None) -> Iterator[tuple[str, object]]:
    """A server on a store in `tmp_path`; the `drivers` leave its page before it closes."""
    from app.main import create_app

    made = create_app(models or [], store=tmp_path / "jobs.sqlite")
    try:
        with serving(made, threads=4) as url:
            try:
                yield url + "/", made
            finally:
                for driver in drivers:
                    driver.get("about:blank")  # no poll in flight as the server closes
    finally:
        made.context.workers.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    driver = chromium(tmp_path / "chromium")
    yield driver
    driver.quit()


def open_circuits(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(driver, lambda d: figure(d, "overview"), 60)
    driver.find_element(By.XPATH, "//*[@id='page']//*[normalize-space(text())='circuits']").click()
    wait_for(driver, lambda d: "launch" in d.find_element(By.ID, "circuits-launch").text)


def fill(driver, **values: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    for key, value in values.items():
        box = driver.find_element(By.ID, f"circuits-{key}")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(str(value))


def click(driver, element_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, element_id).click()


ROW = """
for (const row of document.querySelectorAll('#circuits-table tr'))
    if (row.innerText.includes(arguments[0])) return row.innerText;
return '';
"""


def row_of(driver, job_id: str) -> str:
    """The table row of the job, as text ('' while it is not listed); read in one script, as
    the table is redrawn every second."""
    return driver.execute_script(ROW, job_id)


def only_job(store: Path, status: str | None = None):
    """The store's one job (with `status`), or None, also while a worker is still creating
    the store (an empty file, then no table yet): polled until it appears."""
    if not store.exists() or store.stat().st_size == 0:
        return None
    try:
        jobs = JobStore(store, readonly=True).list()
    except InputError:  # the creating worker has not committed its schema yet
        return None
    return jobs[0] if jobs and (status is None or jobs[0].status == status) else None


def test_a_job_launched_from_the_page_finishes_while_another_tab_works(tmp_path: Path) -> None:
    other = chromium(tmp_path / "other")
    browser = chromium(tmp_path / "launcher")
    try:
        with page(tmp_path, other, browser) as (url, made):
            other.get(url)
            wait_for(other, lambda d: figure(d, "overview") and figure(d, "head")["title"], 60)
            open_circuits(browser, url)
            fill(browser, n_prompts=128, batch_size=1)  # ACDC for a few seconds
            click(browser, "circuits-launch")
            store = made.context.store
            wait_for(browser, lambda d: "started" in d.find_element("id", "circuits-message").text)
            job = wait_for(browser, lambda d: only_job(store, "running"), 60)
            served_while_running = []
            for i in range(40):  # the other browser uses the attention page meanwhile
                first = f"1:t{1 + i % 9}"
                prompt = f"BOS {first[2:]} t{2 + i % 8} t3 {first[2:]}"
                type_prompt(other, prompt)
                wait_for(other, lambda d, first=first: (x := figure(d, "head")["x"]) and
                          len(x) == 5 and x[1] == first, 30)  # fmt: skip
                if JobStore(store, readonly=True).get(job.id).status != "running":
                    break
                served_while_running.append(prompt)
            assert served_while_running  # answered while the job computed
            row = wait_for(browser, lambda d: "done" in (r := row_of(d, job.id)) and r, 120)
            finished = JobStore(store, readonly=True).get(job.id)
            assert f"{finished.total}/{finished.total}" in row and "induction-2l" in row
            edges = finished.result["edges"]
            assert f"{len(edges)} of {finished.total}" in row
            shown = wait_for(browser, lambda d: (f := d.execute_script(EDGES)) and
                              "the job's circuit" in f["title"] and f)  # fmt: skip
            assert sorted(shown["edges"]) == sorted(edges)
    finally:
        other.quit()
        browser.quit()


def test_cancel_and_resume_from_the_page_keep_the_store_consistent(tmp_path: Path, browser) -> None:
    with page(tmp_path, browser) as (url, made):
        store = made.context.store
        open_circuits(browser, url)
        fill(browser, n_prompts=128, batch_size=1)
        click(browser, "circuits-launch")
        job = wait_for(browser, lambda d: (j := only_job(store, "running")) and j.done >= 3 and j)
        # the worker paused while the page is used (its lease lasts a minute): a fast machine
        # would otherwise finish the 81 steps before the click arrives
        (worker,) = made.context.workers.workers()
        worker.process.send_signal(signal.SIGSTOP)
        try:
            wait_for(browser, lambda d: "running" in row_of(d, job.id))  # listed and chosen
            click(browser, "circuits-cancel")
            wait_for(browser, lambda d: worker.cancelled is not None)  # the Ctrl-C is pending
        finally:
            worker.process.send_signal(signal.SIGCONT)
        wait_for(browser, lambda d: "interrupted (cancelled here)" in row_of(d, job.id), 60)
        stopped = JobStore(store, readonly=True).get(job.id)
        assert stopped.status == "interrupted" and stopped.error is None
        assert stopped.lease_until <= time.time() and stopped.done < stopped.total
        click(browser, "circuits-resume")
        wait_for(browser, lambda d: "done" in row_of(d, job.id), 120)
        result = CliRunner().invoke(
            cli, ["discover", *SLOW_ACDC, "--store", str(tmp_path / "whole.sqlite"), "--json"]
        )
        whole = json.loads(result.stdout.strip().splitlines()[-1])
        done = JobStore(store, readonly=True).get(job.id)
        assert done.status == "done" and done.result["edges"] == whole["edges"]
        assert len(JobStore(store, readonly=True).list()) == 1  # resumed, not a new job


def test_compiled_reverse_is_its_ground_truth_and_a_head_opens_its_attention(
    tmp_path: Path, browser
) -> None:
    from selenium.webdriver.common.by import By

    from rasp import library, rasp
    from rasp.compiler.compiler import compile_rasp

    compiled = compile_rasp(
        library.make_reverse(rasp.tokens), {"a", "b", "c"}, 5, validation_budget=20
    )
    directory = compiled.save(tmp_path / "reverse")
    with page(tmp_path, browser, models=[str(directory)]) as (url, made):
        open_circuits(browser, url)
        fill(browser, threshold=0.001, n_prompts=6)
        click(browser, "circuits-launch")
        job = wait_for(browser, lambda d: only_job(made.context.store, "done"), 120)
        shown = wait_for(browser, lambda d: (f := d.execute_script(EDGES)) and
                          "the job's circuit" in f["title"] and f)  # fmt: skip
        assert sorted(shown["edges"]) == sorted(compiled.ground_truth.edges)
        assert sorted(job.result["edges"]) == sorted(compiled.ground_truth.edges)
        roc = wait_for(browser, lambda d: d.execute_script(TITLE.replace("ID", "circuits-roc")))
        assert "AUC 1.000" in roc
        # another model chosen meanwhile: a click on head a3.h0 (the one that writes the
        # logits) opens it on the job's model
        browser.execute_script("window.dash_clientside.set_props('model', {value: 'induction-2l'})")
        wait_for(browser, lambda d: "vocabulary (41)" in d.find_element(By.ID, "vocab").text)
        browser.execute_script(
            "const el = document.querySelector('#circuits-graph .js-plotly-plot');"
            "el.emit('plotly_click', {points: [{customdata: 'a3.h0', curveNumber: 0}]});"
        )
        head = wait_for(browser, lambda d: (f := figure(d, "head")) and
                         f["title"].startswith("head L3H0:") and f, 60)  # fmt: skip
        assert head["x"] and browser.find_element(By.ID, "page-attention").is_displayed()
        assert not browser.find_element(By.ID, "page-circuits").is_displayed()
        assert "vocabulary (4)" in browser.find_element(By.ID, "vocab").text  # reverse's
        assert browser.find_element(By.ID, "error").text == ""
