"""The learned program page: a frozen learned program's program (read back from the
checkpoint) beside the model on the page's input, equal on every variable, every head's key
and the output; a changed weight shows where they part; bad input is a message."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app.main import create_app
from app.pages.program import program_view
from rasp.learned.freeze import PROGRAM_META, freeze, program_meta
from rasp.learned.program import to_program
from tests.rasp.learned.helpers import CONFIGS, random_model
from workbench.checkpoint import Checkpoint
from workbench.errors import InputError

WORDS = ["<pad>", "a", "b", "c", "<s>"]
TAGS = ["<pad>", "x", "y", "z"]


def offered(autoregressive: bool):
    model = random_model(
        CONFIGS[5], autoregressive=autoregressive, seed=4, d_vocab=5, d_out=4, n_ctx=8, d_var=8
    )
    program = to_program(model)
    frozen = freeze(program, len(WORDS), len(TAGS))
    meta = {
        "learned_program": {"words": WORDS, "tags": TAGS, "settings": {"task": "random"}},
        "vocab": WORDS,
        PROGRAM_META: program_meta(program),
    }
    registry = create_app().registry
    registry.add("learned", Checkpoint(frozen, meta=meta))
    return registry, program


def cells(fig) -> dict[str, list[str]]:
    table = fig.data[0]
    names, *columns = table.cells.values[:1], *table.cells.values[2:]
    return {name: [c[i] for c in columns] for i, name in enumerate(names[0])}


@pytest.mark.parametrize("autoregressive", [False, True])
def test_the_program_and_the_model_agree_on_every_row(autoregressive: bool) -> None:
    registry, program = offered(autoregressive)
    listing, fig = program_view(registry, "learned", "<s> a b a c b")
    assert "select_closest(" in listing.children and "# layer 2" in listing.children
    rows = cells(fig)
    assert "equal on every row" in fig.layout.title.text
    ids = np.array([[4, 1, 2, 1, 3, 2]])
    expected = [TAGS[i] for i in program.run(ids)[0]]
    assert rows["output"] == expected
    assert rows["tokens"] == ["<s>", "a", "b", "a", "c", "b"]
    assert rows["positions"] == [str(i) for i in range(6)]
    reads = [name for name in rows if name.endswith(" reads")]
    assert len(reads) == 2 * 3  # two closest-match heads per layer, three layers
    assert not any("≠" in cell for row in rows.values() for cell in row)


def test_a_changed_model_shows_where_it_parts_from_its_program() -> None:
    registry, _ = offered(False)
    ckpt = registry.checkpoint("learned")
    with torch.no_grad():
        ckpt.model.W_pos.data.zero_()  # the model no longer knows the positions
    _, fig = program_view(registry, "learned", "<s> a b a c b")
    rows = cells(fig)
    assert "rows differ" in fig.layout.title.text
    assert rows["positions"][0] == "0 ≠ —"  # an empty slot is no value, not value 0
    assert any("≠" in cell for cell in rows["positions"])


def test_bad_input_is_a_message() -> None:
    registry, _ = offered(False)
    with pytest.raises(InputError, match="induction-2l is not a frozen learned program"):
        program_view(registry, "induction-2l", "BOS t1")
    with pytest.raises(InputError, match="'<pad>' is padding"):
        program_view(registry, "learned", "<s> a <pad>")
    with pytest.raises(InputError, match="'d' is not in this model's vocabulary"):
        program_view(registry, "learned", "<s> d")


def test_the_page_answers_through_the_server(tmp_path) -> None:
    """A frozen checkpoint served with `--model DIR`, as the README says, through HTTP."""
    from tests.app.helpers import call, serving
    from workbench import checkpoint

    registry, program = offered(False)
    ckpt = registry.checkpoint("learned")
    checkpoint.save(ckpt.model, tmp_path / "hist-frozen", ckpt.meta)
    made = create_app(models=[str(tmp_path / "hist-frozen")])
    name = made.registry.names[0]
    values = {"page.value": "program", "model.value": name, "prompt.value": "<s> c a b"}
    with serving(made, threads=4) as url:
        reply = call(url, "program-listing.children", values, "prompt.value")
        assert reply["program-error"]["children"] == ""
        table = reply["program-table"]["figure"]["data"][0]
        columns = table["cells"]["values"]
        rows = dict(zip(columns[0], zip(*columns[2:], strict=True), strict=True))
        expected = program.run(np.array([[4, 3, 1, 2]]))[0]
        assert list(rows["output"]) == [TAGS[i] for i in expected]
        assert "select_closest(" in str(reply["program-listing"]["children"])
        from concurrent.futures import ThreadPoolExecutor

        inputs = ["<s> a b", "<s> c c a b", "<s> b", "<s> a a a c b a", "<s> c b a"] * 2

        def output(text: str) -> list[str]:
            got = call(
                url, "program-listing.children", {**values, "prompt.value": text}, "prompt.value"
            )["program-table"]["figure"]["data"][0]["cells"]["values"]
            return [column[got[0].index("output")] for column in got[2:]]

        with ThreadPoolExecutor(8) as pool:  # concurrent sessions, each its own input
            outputs = list(pool.map(output, inputs))
        for text, got in zip(inputs, outputs, strict=True):
            ids = np.array([[WORDS.index(w) for w in text.split()]])
            assert got == [TAGS[i] for i in program.run(ids)[0]], text
        other = {**values, "model.value": "induction-2l"}
        bad = call(url, "program-listing.children", other, "prompt.value")
        assert "is not a frozen learned program" in bad["program-error"]["children"]


@pytest.mark.browser
def test_the_page_in_a_browser_shows_the_program_beside_the_model(tmp_path, browser) -> None:
    from selenium.webdriver.common.by import By

    from tests.app.helpers import figure, serving, type_prompt, wait_for
    from workbench import checkpoint

    registry, _ = offered(True)
    ckpt = registry.checkpoint("learned")
    checkpoint.save(ckpt.model, tmp_path / "frozen", ckpt.meta)
    made = create_app(models=[str(tmp_path / "frozen")])
    with serving(made, threads=4) as url:
        browser.get(url + "/")
        wait_for(browser, lambda d: d.find_element(By.ID, "prompt"))
        browser.find_element(By.XPATH, "//*[text()='learned program']").click()
        type_prompt(browser, "<s> b a c a")
        shown = wait_for(browser, lambda d: (f := figure(d, "program-table")) and f["n"] and f, 60)
        assert "equal on every row" in shown["title"]
        listing = browser.find_element(By.ID, "program-listing").text
        assert "select_closest(" in listing and "output = readout(" in listing
        assert browser.find_element(By.ID, "program-error").text == ""
