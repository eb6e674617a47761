"""The dashboard's server is correct under concurrent requests and trusts nothing the browser
sends: requests through a real waitress server, as a browser would make them."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import workbench
from app.main import create_app
from app.run import attention_patterns
from probes.attention import pattern_summaries
from tests.app.helpers import CALLBACKS, GARBAGE, answer_garbage, call, z_of
from workbench.cli import cli


def overview(url: str, model: object, prompt: object, metric: object = "induction") -> dict:
    values = {
        "run.n_clicks": 1,
        "prompt.value": prompt,
        "metric.value": metric,
        "model.value": model,
    }
    return call(url, "overview.figure", values, "prompt.value")


def head(
    url: str, model: object, prompt: object, click: object, mode: object = "head", **more
) -> dict:
    values = {
        "overview.clickData": click,
        "head-mode.value": mode,
        "head-style.value": "matrix",
        "run.n_clicks": 1,
        "prompt.value": prompt,
        "model.value": model,
        **{k.replace("_", "-") + ".value": v for k, v in more.items()},
    }
    return call(url, "head.figure", values, "overview.clickData")


def click(layer: int, head: int) -> dict:
    return {"points": [{"x": f"H{head}", "y": f"L{layer}", "z": 0.5}]}


def test_concurrent_requests_each_get_their_own_activations(server) -> None:
    url, _ = server
    vocab = workbench.open_checkpoint("induction-2l").vocab
    gen = torch.Generator().manual_seed(0)
    prompts = [
        " ".join(
            ["BOS", *(vocab[int(i)] for i in torch.randint(3, len(vocab), (11,), generator=gen))]
        )
        for _ in range(16)
    ]
    # computed alone, by another registry: the server's own has nothing of these prompts yet
    reference = create_app().registry
    alone = [attention_patterns(reference, "induction-2l", p) for p in prompts]
    with ThreadPoolExecutor(16) as pool:
        heads = list(pool.map(lambda p: head(url, "induction-2l", p, click(1, 3)), prompts))
        views = list(pool.map(lambda p: overview(url, "induction-2l", p), prompts))
    for got, view, (patterns, prepared) in zip(heads, views, alone, strict=True):
        assert got["head-error"]["children"] == ""
        np.testing.assert_allclose(
            z_of(got["head"]["figure"]["data"][0]), patterns[1, 3], atol=1e-6
        )
        expected = pattern_summaries(patterns, prepared.ids).values["induction"]
        assert view["error"]["children"] == ""
        np.testing.assert_allclose(z_of(view["overview"]["figure"]["data"][0]), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("model", "prompt", "message"),
    [
        ("/etc/passwd", "BOS t1", "unknown model '/etc/passwd'"),
        ("../workbench/builtin/induction-2l", "BOS t1", "unknown model"),
        (["induction-2l"], "BOS t1", "unknown model ['induction-2l']"),
        (None, "BOS t1", "unknown model None"),
        ("induction-2l", "BOS t1 banana", "'banana' is not in this model's vocabulary"),
        ("induction-2l", 12, "the prompt must be text, got int"),
        ("induction-2l", {"a": 1}, "the prompt must be text, got dict"),
        ("induction-2l", "   ", "the prompt is empty"),
        ("induction-2l", "BOS " + "t1 " * 30, "31 tokens long; this model takes at most 25"),
    ],
)
def test_bad_input_is_a_message_never_a_500_or_a_path(
    server, monkeypatch: pytest.MonkeyPatch, model, prompt, message: str
) -> None:
    url, _ = server
    opened: list[object] = []
    real = workbench.open_checkpoint
    monkeypatch.setattr(
        workbench, "open_checkpoint", lambda p, **k: opened.append(p) or real(p, **k)
    )
    reply = overview(url, model, prompt)  # HTTP 200
    error = reply["error"]["children"]
    assert message in error
    for server_path in (str(Path(workbench.__file__).parents[1]), sys.prefix):
        assert server_path not in error  # no path of the server's is revealed
    figure = reply["overview"]["figure"]  # the stale figure is replaced by the message
    assert figure["data"] == [] and message in figure["layout"]["annotations"][0]["text"]
    assert message in head(url, model, prompt, click(0, 0))["head-error"]["children"]
    assert opened == []  # nothing the browser named was opened


@pytest.mark.parametrize(
    ("clicked", "mode", "metric", "message"),
    [
        ({"points": [{"x": "H9", "y": "L0"}]}, "head", "induction", "no head L0H9"),
        ({"points": []}, "head", "induction", "could not read the clicked cell"),
        ("cell", "head", "induction", "could not read the clicked cell"),
        (None, "head", ["induction"], "unknown head summary"),
        (None, "head", "nope", "unknown head summary 'nope'"),
    ],
)
def test_bad_clicks_and_choices_are_messages(server, clicked, mode, metric, message) -> None:
    url, _ = server
    if metric == "induction":
        reply = head(url, "induction-2l", "BOS t1 t2", clicked, mode)
        assert message in reply["head-error"]["children"] and reply["head"]["figure"]["data"] == []
    else:
        reply = overview(url, "induction-2l", "BOS t1 t2", metric)
        assert message in reply["error"]["children"]


def test_the_head_view_shows_the_clicked_head_or_its_layer_average(server) -> None:
    url, app = server
    prompt = "BOS t1 t2 t3 t1 t2 t3"
    patterns, prepared = attention_patterns(app.registry, "induction-2l", prompt)
    labels = prepared.labels
    one = head(url, "induction-2l", prompt, click(1, 2))["head"]["figure"]
    assert one["layout"]["title"]["text"] == "head L1H2"
    assert one["data"][0]["x"] == [f"{i}:{t}" for i, t in enumerate(labels)]
    np.testing.assert_allclose(z_of(one["data"][0]), patterns[1, 2], atol=1e-6)
    mean = head(url, "induction-2l", prompt, click(1, 2), "average")["head"]["figure"]
    np.testing.assert_allclose(z_of(mean["data"][0]), patterns[1].mean(0), atol=1e-6)


def test_models_dir_and_model_are_offered_by_name(tmp_path) -> None:
    model = workbench.build("gpt2-small-tiny", n_layers=1, seed=0)
    workbench.checkpoint.save(model, tmp_path / "models" / "tiny")
    workbench.checkpoint.save(model, tmp_path / "other" / "tiny")
    app = create_app([str(tmp_path / "other" / "tiny")], str(tmp_path / "models"))
    names = app.registry.names
    assert names[:2] == ["tiny", "tiny (2)"] and "induction-2l" in names
    patterns, prepared = attention_patterns(app.registry, "tiny (2)", "1 2 3")
    assert patterns.shape == (1, 4, 3, 3) and prepared.labels == ["1", "2", "3"]
    with pytest.raises(workbench.errors.InputError, match="token ids, whole numbers"):
        attention_patterns(app.registry, "tiny", "one two")
    with pytest.raises(workbench.errors.InputError, match="holds no checkpoint"):
        create_app(models_dir=str(tmp_path / "models" / "tiny"))


def test_app_serves_with_waitress_and_warns_off_loopback(monkeypatch) -> None:
    import dash
    import waitress

    served: list[dict] = []
    monkeypatch.setattr(waitress, "serve", lambda app, **kw: served.append(kw))
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kw: served.append({"dash": kw}))
    result = CliRunner().invoke(cli, ["app", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert served[-1]["host"] == "127.0.0.1" and served[-1]["port"] == 8123
    assert served[-1]["max_request_body_size"] == 8 * 1024 * 1024  # one upload at most
    assert "warning" not in result.output
    result = CliRunner().invoke(cli, ["app", "--host", "0.0.0.0"])
    assert result.exit_code == 0 and "warning: binding 0.0.0.0" in result.output
    assert served[-1]["host"] == "0.0.0.0"
    result = CliRunner().invoke(cli, ["app", "--debug"])
    assert result.exit_code == 0
    assert served[-1] == {"dash": {"host": "127.0.0.1", "port": 8050, "debug": True}}
    result = CliRunner().invoke(cli, ["app", "--host", "0.0.0.0", "--debug"])
    assert result.exit_code == 2 and "Flask's debugger" in result.output  # never off loopback
    bad = CliRunner().invoke(cli, ["app", "--model", "/no/such/dir"])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_a_broken_model_is_named_without_its_paths_and_builtins_cannot_be_shadowed(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.views.attention import model_view

    model = workbench.build("gpt2-small-tiny", n_layers=1, seed=0)
    workbench.checkpoint.save(model, tmp_path / "models" / "tiny")
    (tmp_path / "secret.json").write_text("{}")
    (tmp_path / "models" / "tiny" / "tokenizer.json").symlink_to(tmp_path / "secret.json")
    monkeypatch.chdir(tmp_path)
    workbench.checkpoint.save(model, tmp_path / "induction-2l")  # a look-alike where it runs
    app = create_app(models_dir=str(tmp_path / "models"))
    with pytest.raises(workbench.errors.InputError) as error:
        model_view(app.registry, "tiny", "1 2", "induction")
    assert "model 'tiny' could not be loaded" in str(error.value)
    assert str(tmp_path) not in str(error.value)
    builtin = app.registry.checkpoint("induction-2l")
    assert builtin.vocab is not None and builtin.directory != tmp_path / "induction-2l"


@pytest.mark.parametrize("garbage", GARBAGE, ids=repr)
def test_every_callback_answers_garbage_without_a_server_error(server, garbage) -> None:
    """Every input and state of every callback set to one garbage value (what a hand-made
    request can send, the page selector too): an answer (200) or no update (204), never a
    500."""
    url, _ = server
    answer_garbage(url, CALLBACKS, garbage)


def test_concurrent_neuron_and_prediction_requests_each_get_their_own_numbers(server) -> None:
    from app.views.neuron import neuron
    from app.views.predictions import predictions

    url, _ = server
    reference = create_app().registry
    prompts = [f"BOS t{1 + i} t{2 + i} t{3 + i} t{1 + i} t{2 + i}" for i in range(8)]
    click_l1h2 = click(1, 2)
    query = {"points": [{"x": "0:BOS", "y": "4:x", "z": 0.1}]}
    alone = [neuron(reference, "induction-2l", p, click_l1h2, query) for p in prompts]

    def neuron_reply(prompt: str) -> dict:
        values = {
            "overview.clickData": click_l1h2,
            "head.clickData": query,
            "run.n_clicks": 1,
            "prompt.value": prompt,
            "model.value": "induction-2l",
        }
        return call(url, "neuron.figure", values, "head.clickData")

    def lens_reply(prompt: str) -> dict:
        values = {
            "pred-k.value": 3,
            "run.n_clicks": 1,
            "prompt.value": prompt,
            "model.value": "induction-2l",
            "tabs.value": "predictions",
        }
        return call(url, "topk.figure", values, "prompt.value")

    lens = [np.asarray(predictions(reference, "induction-2l", p, 3)[1].data[0].z) for p in prompts]
    with ThreadPoolExecutor(16) as pool:
        neurons = list(pool.map(neuron_reply, prompts))
        lenses = list(pool.map(lens_reply, prompts))
    # float32 sums may round differently from run to run (on some CPUs the library's kernel
    # depends on the buffers' alignment): 1e-5, while any two prompts differ by far more
    wanted = [np.array(next(t for t in w.data if t.name == "terms").z, dtype=float) for w in alone]
    for i, got in enumerate(neurons):
        terms = next(t for t in got["neuron"]["figure"]["data"] if t.get("name") == "terms")
        np.testing.assert_allclose(z_of(terms), wanted[i], atol=1e-5)  # NaN: masked
        others = [np.nanmax(np.abs(z_of(terms) - w)) for j, w in enumerate(wanted) if j != i]
        assert min(others) > 1e-3
    for i, (got, want) in enumerate(zip(lenses, lens, strict=True)):
        seen = z_of(got["lens"]["figure"]["data"][0])
        np.testing.assert_allclose(seen, want.astype(float), atol=1e-5)
        others = [np.nanmax(np.abs(seen - other)) for j, other in enumerate(lens) if j != i]
        assert min(others) > 1e-3
