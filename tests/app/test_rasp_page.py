"""The RASP page: a program's values per SOp equal the interpreter's and `workbench rasp run
--json`; a program compiled in the background reads out the interpreter's values in its
residual stream and opens in the attention page; ACDC on it finds its ground truth, as
`workbench discover --json` does; compiling and ACDC can be cancelled and are time-bounded;
bad input is a message. Requests go through a real waitress server where the browser's part
matters (`tests/app/test_server.py`'s `call`)."""

from __future__ import annotations

import json
import threading
import time

import pytest
from typer.testing import CliRunner

import app.compiled as compiled_module
from app.compiled import SHIPPED, CompiledPrograms, Spec, defaults
from app.models import ModelRegistry
from app.pages.rasp import compiled_view, program_view, status_line
from rasp import rasp
from rasp.compiler.graph import program_graph
from rasp.parser import parse
from tests.app.helpers import (
    CALLBACKS,
    GARBAGE,
    answer_garbage,
    call,
    emit,
    ended,
    figure,
    poll_until_idle,
    wait_for,
)
from tests.rasp.test_readout import PROGRAMS
from workbench.cli import cli
from workbench.errors import InputError

INPUTS = {"dyck1": "(()", "dyck2": "({)}"}  # the others read abc


def cells(figure) -> list[list[str]]:
    """A table figure's columns of cells, as text."""
    return [list(map(str, column)) for column in figure.data[0].cells.values]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_every_sops_values_are_the_interpreters_and_the_clis(name: str) -> None:
    text = INPUTS.get(name, "abca")
    values, ops, planned = program_view(SHIPPED[name], text, False)
    columns = cells(values)
    sops = [s.removeprefix("<b>").removesuffix("</b>") for s in columns[0]]
    rows = {sop: [column[i] for column in columns[2:]] for i, sop in enumerate(sops)}
    program = parse(SHIPPED[name])
    xs = list(text)
    graph = program_graph(program.output, check=False)
    assert sops == graph.sops()
    for label, sop in program.names.items():  # each named SOp the output reads, alone
        if isinstance(sop, rasp.SOp) and label in sops:
            want = rasp.evaluate(sop, xs)
            shown = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in want]
            assert rows[label] == shown, label
    result = CliRunner().invoke(
        cli, ["rasp", "run", str(PROGRAMS / f"{name}.rasp"), "--input", text, "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    output = [str(v) if not isinstance(v, float) else f"{v:.4g}" for v in report["output"]]
    assert rows[program.output.label] == output
    # the planned layout is the CLI's requirements: one row per layer
    needs = report["requirements"]
    assert len(planned.data[0].y) == needs["layers"]
    for layer, heads in enumerate(needs["heads"]):
        assert planned.data[0].text[layer][: len(heads)] == heads
    # the operations graph holds every expression of the compiler's graph
    nodes = next(t for t in ops.data if t.name == "expressions")
    assert set(nodes.customdata) == set(graph.order)


@pytest.fixture
def programs() -> CompiledPrograms:
    return CompiledPrograms(ModelRegistry.offering(), keep=2)


@pytest.mark.parametrize("name", ["reverse", "sort", "dyck1"])
def test_the_compiled_residual_holds_the_interpreters_values(programs, name: str) -> None:
    vocab, max_len = defaults(name)
    state = ended(programs.start(Spec.of(SHIPPED[name], vocab, max_len, False)))
    assert state.status == "done", state.error
    assert state.result in programs.registry.names  # offered by name, like any model
    text = INPUTS.get(name, "cab")
    layout, heads, residual, truth, note = compiled_view(programs, state.result, text)
    compiled = programs.get(state.result)
    graph = program_graph(compiled.program.program)
    table = cells(residual)  # the stages, then a column per position (BOS first)
    meta = compiled.checkpoint.meta["rasp"]
    for label in graph.sops():
        stage = meta["sublayers"][label] + 1  # the row after the sublayer writing it
        numerical = label in meta["residual"]  # one dimension, labelled by the SOp alone
        want = rasp.evaluate(graph.exprs[label], list(text))
        for position, value in enumerate(want):
            lines = table[2 + position][stage].split("<br>")
            shown = dict(line.split(":", 1) for line in lines)
            if numerical:  # None reads as 0
                assert float(shown[label]) == pytest.approx(float(value or 0), abs=1e-3)
            else:
                assert shown[label] == str(value), (label, position, lines)
    assert heads.layout.title.text == f"heads of {compiled.program.program.label}"
    assert len(truth.data) > 1 and "ground-truth circuit" in truth.layout.title.text
    assert note.startswith(f"compiled {state.result}")
    # the layout names the head computing the output, where the compiler placed it
    where = compiled.program.ground_truth.components[compiled.program.program.label]
    head = next((p for p in where if ".h" in p), None)
    if head is not None:
        layer, h = (int(n) for n in head[1:].split(".h"))
        assert layout.data[0].text[layer][h] == compiled.program.program.label


def test_compiled_models_are_kept_by_content_and_bounded(programs) -> None:
    first = ended(programs.start(Spec.of(SHIPPED["hist"], "abc", 3, False)))
    again = ended(programs.start(Spec.of(SHIPPED["hist"], "a,b,c", 3, False)))
    assert again.result == first.result  # the same content: the same model
    other = ended(programs.start(Spec.of(SHIPPED["hist"], "abc", 4, False)))
    assert other.result != first.result
    third = ended(programs.start(Spec.of(SHIPPED["reverse"], "abc", 3, False)))
    names = programs.registry.names
    assert first.result not in names and other.result in names and third.result in names
    with pytest.raises(InputError, match="compile it again"):
        programs.get(first.result)
    with pytest.raises(InputError, match="no compiled program"):
        programs.get("induction-2l")  # offered, but not compiled here


def slow(*_, **__):
    def step() -> None:  # Python calls: where a stopped task stops
        pass

    while True:
        step()


def test_a_compile_is_cancelled_or_stopped_at_its_limit(programs, monkeypatch) -> None:
    monkeypatch.setattr(compiled_module, "compile_rasp", slow)
    run = programs.start(Spec.of(SHIPPED["hist"], "abc", 3, False))
    time.sleep(0.2)
    assert "compiling: running for" in status_line(run.state(), "compiling")
    assert programs.start(Spec.of(SHIPPED["hist"], "a,b,c", 3, False)) is run  # joined
    assert run.cancel().status == "cancelled"  # at once
    time.sleep(0.2)
    assert not any(t.name.endswith(run.id) for t in threading.enumerate())  # it stopped
    monkeypatch.setattr(compiled_module, "COMPILE_LIMIT_S", 0.3)
    timed = ended(programs.start(Spec.of(SHIPPED["hist"], "abc", 4, False)))
    assert timed.status == "timed out" and "limit of 0 s" in status_line(timed, "compiling")
    assert programs.registry.names == ModelRegistry.offering().names  # nothing was added


def test_acdc_is_cancelled_between_its_batches(programs, monkeypatch) -> None:
    import circuits.acdc
    import circuits.jobs  # bound to the real acdc before it is patched here

    compiled = programs.get(ended(programs.start(Spec.of(SHIPPED["hist"], "abc", 3, False))).result)

    def endless(*args, progress, **kwargs):
        done = 0
        while True:  # batch after batch, each reported
            done += 1
            progress(done, 10**6)

    monkeypatch.setattr(circuits.acdc, "acdc", endless)
    run = programs.start_acdc(compiled, 0.001, 2)
    time.sleep(0.3)
    state = run.state()
    assert state.running and state.done > 0 and "ACDC: " in status_line(state, "ACDC")
    run.cancel()
    state = ended(run)
    assert state.status == "cancelled" and state.result is None


def test_the_request_thread_work_has_a_time_limit(monkeypatch) -> None:
    monkeypatch.setattr(compiled_module, "RUN_LIMIT_S", 0.0)
    with pytest.raises(InputError, match="took more than 0 s"):
        program_view(SHIPPED["sort"], "abc", False)


PAGE = {"page.value": "rasp"}


def poll(url: str, values: dict) -> dict:
    """Poll as the page does until nothing runs; the last reply."""
    return poll_until_idle(url, "rasp-status.children", {**PAGE, **values}, "rasp-poll")


def test_compile_acdc_and_open_in_the_attention_page_from_the_page(server, tmp_path) -> None:
    url, app = server
    form = {
        **PAGE,
        "rasp-source.value": SHIPPED["reverse"],
        "rasp-vocab.value": "abc",
        "rasp-max-len.value": 4,
        "rasp-causal.value": [],
    }
    started = call(url, "rasp-compile-task.data", form, "rasp-compile.n_clicks")
    task_id = started["rasp-compile-task"]["data"]
    assert started["rasp-error"]["children"] == ""
    done = poll(url, {"rasp-compile-task.data": task_id})
    name = done["rasp-model"]["data"]
    assert name.startswith("rasp:reverse:") and "done in" in done["rasp-status"]["children"]
    shown = call(
        url,
        "rasp-layout.figure",
        {**PAGE, "rasp-model.data": name, "rasp-input.value": "abc"},
        "rasp-model.data",
    )
    assert shown["rasp-compiled-error"]["children"] == ""
    assert (
        "residual stream of reverse" in shown["rasp-residual"]["figure"]["layout"]["title"]["text"]
    )
    # ACDC on it: the ground truth exactly (the ACDC paper), and what the CLI finds
    acdc = {**PAGE, "rasp-model.data": name, "rasp-threshold.value": 0.001, "rasp-prompts.value": 4}
    started = call(url, "rasp-acdc-task.data", acdc, "rasp-acdc.n_clicks")
    acdc_id = started["rasp-acdc-task"]["data"]
    done = poll(url, {"rasp-acdc-task.data": acdc_id})
    assert done["rasp-acdc-done"]["data"] == acdc_id
    figures = call(
        url, "rasp-roc.figure", {**PAGE, "rasp-acdc-done.data": acdc_id}, "rasp-acdc-done.data"
    )
    assert "AUC 1.000" in figures["rasp-roc"]["figure"]["layout"]["title"]["text"]
    state = app.compiled.acdcs.get(acdc_id).state()
    result = state.result
    assert set(result.edges) == set(result.truth)
    assert state.done == state.total == len(result.scores)  # progress: every edge tried
    app.compiled.get(name).program.save(tmp_path / "reverse")
    args = ["discover", "--model", str(tmp_path / "reverse"), "--method", "acdc"]
    args += ["--threshold", "0.001", "--n-prompts", "4", "--store", str(tmp_path / "jobs.sqlite")]
    report = CliRunner().invoke(cli, [*args, "--json"])
    assert report.exit_code == 0, report.output
    cli_circuit = json.loads(report.stdout.strip().splitlines()[-1])
    assert cli_circuit["edges"] == list(result.edges)
    assert cli_circuit["scores"] == pytest.approx(result.scores, abs=1e-6)
    # the attention page opens it, and a clicked head once the new model is there
    link = {**PAGE, "rasp-model.data": name, "model.value": "induction-2l"}
    opened = call(url, "page.value", link, "rasp-open.n_clicks")
    assert opened["page"]["value"] == "attention" and opened["tabs"]["value"] == "attention"
    assert opened["model"]["value"] == name and name in opened["model"]["options"]
    clicked = {**link, "rasp-layout.clickData": {"points": [{"x": "H0", "y": "L3"}]}}
    opened = call(url, "page.value", clicked, "rasp-layout.clickData")
    pending = opened["links-pending"]["data"]
    assert pending == {"model": name, "click": {"points": [{"x": "H0", "y": "L3"}]}}
    applied = call(
        url,
        "overview.clickData",
        {"links-pending.data": pending, "model.value": name},
        "overlay-heads.options",
    )
    assert applied["overview"]["clickData"] == pending["click"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rasp-source.value", "x = select(tokens, tokens ==);", "line 1, column"),
        ("rasp-source.value", "x = tokens +;\n", "line 1, column 13: unexpected ';'"),
        ("rasp-source.value", "y = " * 6000, "at most 20,000 are read"),
        ("rasp-source.value", 12, "the program must be text, got int"),
        ("rasp-source.value", "   ", "the program is empty"),
        ("rasp-input.value", "a" * 40, "at most 16 are taken"),
        ("rasp-input.value", "", "holds no tokens"),
        ("rasp-source.value", "x = map(lambda v: v + 1, tokens);", "evaluating x on"),
    ],
)
def test_bad_programs_and_inputs_are_messages(server, field, value, message) -> None:
    url, _ = server
    values = {**PAGE, "rasp-source.value": SHIPPED["reverse"], "rasp-input.value": "abc"}
    reply = call(url, "rasp-values.figure", {**values, field: value}, "rasp-run.n_clicks")
    assert message in reply["rasp-error"]["children"]
    assert reply["rasp-values"]["figure"]["data"] == []  # no stale numbers


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rasp-vocab.value": "BOS,a"}, "BOS token 'BOS' is in the vocabulary"),
        ({"rasp-max-len.value": 99}, "max length must be a whole number from 1 to 8"),
        ({"rasp-max-len.value": True}, "max length must be"),
        ({"rasp-vocab.value": ",".join(map(str, range(40)))}, "at most 16"),
    ],
)
def test_bad_compile_settings_are_messages(server, values, message) -> None:
    url, _ = server
    form = {
        **PAGE,
        "rasp-source.value": SHIPPED["hist"],
        "rasp-vocab.value": "abc",
        "rasp-max-len.value": 3,
        **values,
    }
    reply = call(url, "rasp-compile-task.data", form, "rasp-compile.n_clicks")
    error = reply["rasp-error"]["children"]
    if error:
        assert message in error
        return
    done = poll(url, {"rasp-compile-task.data": reply["rasp-compile-task"]["data"]})
    assert message in done["rasp-status"]["children"]  # the compiler's own message


def test_acdc_and_links_need_a_compiled_model_and_sane_settings(server) -> None:
    url, _ = server
    acdc = {**PAGE, "rasp-threshold.value": 0.001, "rasp-prompts.value": 4}
    reply = call(url, "rasp-acdc-task.data", acdc, "rasp-acdc.n_clicks")
    assert "compile the program first" in reply["rasp-acdc-error"]["children"]
    reply = call(
        url,
        "rasp-acdc-task.data",
        {**acdc, "rasp-model.data": "induction-2l"},
        "rasp-acdc.n_clicks",
    )
    assert "no compiled program of that name" in reply["rasp-acdc-error"]["children"]
    reply = call(url, "page.value", {**PAGE, "rasp-model.data": "../etc"}, "rasp-open.n_clicks")
    assert "no compiled program of that name" in reply["rasp-error"]["children"]
    reply = call(
        url, "rasp-roc.figure", {**PAGE, "rasp-acdc-done.data": "0123abcd"}, "rasp-acdc-done.data"
    )
    assert "this ACDC task is not on the server" in reply["rasp-acdc-error"]["children"]


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        ("checked_threshold", -1, "threshold must be a number >= 0"),
        ("checked_threshold", "x", "threshold must be"),
        ("checked_threshold", float("nan"), "threshold must be"),
        ("checked_prompts", 0, "prompts per length must be a whole number from 1 to 16"),
        ("checked_prompts", 1000, "prompts per length must be"),
        ("checked_prompts", 2.5, "prompts per length must be"),
    ],
)
def test_bad_acdc_settings_are_messages(check, value, message) -> None:
    with pytest.raises(InputError, match=message):
        getattr(compiled_module, check)(value)


@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_the_pages_callbacks_answer_garbage_while_shown(server, garbage, caplog) -> None:
    """As the garbage test of tests/app/test_server.py, but with the page shown, so that the
    callbacks of the RASP and anatomy pages read the garbage instead of stopping at once."""
    url, _ = server
    ours = [k for k in CALLBACKS if any(p in k for p in ("rasp-", "anatomy-", "links-"))]
    assert len(ours) >= 10
    for page in ("rasp", "anatomy"):
        answer_garbage(url, ours, garbage, page)
    failed = [r for r in caplog.records if r.levelname == "ERROR"]
    assert not failed, failed[0].getMessage()  # bad input is a message, not an internal error


@pytest.mark.browser
def test_the_page_in_a_browser_compiles_runs_acdc_and_opens_the_attention_page(
    server, browser
) -> None:
    from selenium.webdriver.common.by import By

    url, app = server
    browser.get(url + "/")
    wait_for(browser, lambda d: figure(d, "overview"))
    browser.find_element(By.XPATH, "//*[text()='RASP']").click()
    values = wait_for(browser, lambda d: (f := figure(d, "rasp-values")) and f["n"] and f)
    assert "reverse on 'abc'" in values["title"]
    assert not figure(browser, "rasp-residual") or figure(browser, "rasp-residual")["n"] == 0
    browser.find_element(By.ID, "rasp-compile").click()
    residual = wait_for(
        browser, lambda d: (f := figure(d, "rasp-residual")) and "reverse" in f["title"] and f, 60
    )
    assert residual["n"] == 1  # the decoded table
    status = browser.find_element(By.ID, "rasp-status").text
    assert "compiling: done in" in status
    browser.find_element(By.ID, "rasp-acdc").click()
    roc = wait_for(
        browser, lambda d: (f := figure(d, "rasp-roc")) and "AUC" in f["title"] and f, 90
    )
    assert "AUC 1.000" in roc["title"]
    vocab, max_len = defaults("reverse")  # what the page shows first
    name = f"rasp:reverse:{Spec.of(SHIPPED['reverse'], vocab, max_len, False).key[:8]}"
    assert name in app.registry.names
    # a head of the layout opens in the attention page, with the compiled model
    emit(
        browser,
        "rasp-layout",
        "plotly_click",
        {"points": [{"x": "H0", "y": "L3", "curveNumber": 0}]},
    )
    head = wait_for(browser, lambda d: (f := figure(d, "head")) and "L3H0" in f["title"] and f, 60)
    assert "reverse = aggregate" in head["title"]  # what the head computes
    overview = figure(browser, "overview")
    assert len(overview["z"]) == 4 and len(overview["z"][0]) == 1  # 4 layers of one head
    assert name in browser.find_element(By.ID, "model").text
    assert browser.find_element(By.ID, "error").text == ""


def test_html_writes_the_pages_figures_from_the_cli(tmp_path, monkeypatch) -> None:
    from app.figures.rasp import ground_truth_figure, values_table
    from rasp.analysis import program_values
    from rasp.compiler.compiler import compile_rasp
    from tests.app.figure_entry_points import use_declared

    use_declared(monkeypatch)
    program = str(PROGRAMS / "reverse.rasp")
    out = tmp_path / "values.html"
    result = CliRunner().invoke(cli, ["rasp", "run", program, "--input", "abc", "--html", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    want = values_table(program_values(parse(SHIPPED["reverse"]).output, list("abc")))
    assert want.layout.title.text in page and '"opp_index"' in page
    out = tmp_path / "circuit.html"
    args = ["compile", program, "--vocab", "abc", "--max-len", "4", "-o", str(tmp_path / "m")]
    result = CliRunner().invoke(cli, [*args, "--html", str(out)])
    assert result.exit_code == 0, result.output
    compiled = compile_rasp(parse(SHIPPED["reverse"]).output, set("abc"), 4)
    figure = ground_truth_figure(compiled)
    assert figure.layout.title.text == "ground-truth circuit of reverse: 10 edges"
    assert figure.layout.title.text in out.read_text()
    (tmp_path / "dir.html").mkdir()
    bad = CliRunner().invoke(
        cli, [*args[:-1], str(tmp_path / "n"), "--html", str(tmp_path / "dir.html")]
    )
    assert bad.exit_code == 2 and "is a directory" in bad.output
    assert not (tmp_path / "n").exists()  # refused before compiling


def test_choosing_a_shipped_program_gives_an_input_it_reads(server) -> None:
    url, _ = server
    for name, expected in (("dyck2", "(){}"), ("dyck1", "()"), ("reverse", "abc")):
        reply = call(url, "rasp-source.value", {"rasp-program.value": name}, "rasp-program.value")
        vocab = reply["rasp-vocab"]["value"]
        assert reply["rasp-input"]["value"] == expected and set(expected) <= set(vocab)


def test_a_program_from_the_browser_loads_no_file(tmp_path) -> None:
    """`load` reads a file on the server: the page refuses it, whatever the path."""
    (tmp_path / "secret.rasp").write_text("leak = tokens;\n")
    for source in (f'load "{tmp_path / "secret"}"; x = leak;', 'load "/etc/passwd"; x = tokens;'):
        with pytest.raises(InputError, match="load is not available here"):
            compiled_module.parsed(source)
