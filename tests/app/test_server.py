"""The dashboard's server is correct under concurrent requests and trusts nothing the browser
sends: requests through a real waitress server, as a browser would make them."""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import workbench
from app.main import attention_patterns, create_app
from workbench.cli import cli

FIGURE = "..attention.figure...error.children.."


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, object]]:
    from waitress.server import create_server

    app = create_app()
    srv = create_server(app.server, host="127.0.0.1", port=0, threads=16)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}", app
    srv.close()
    thread.join(timeout=10)


def request_figure(url: str, model: object, prompt: object) -> tuple[int, dict]:
    """POST the attention callback as Dash's front end does; the HTTP status and the reply."""
    body = {
        "output": FIGURE,
        "outputs": [
            {"id": "attention", "property": "figure"},
            {"id": "error", "property": "children"},
        ],
        "inputs": [
            {"id": "run", "property": "n_clicks", "value": 1},
            {"id": "prompt", "property": "value", "value": prompt},
        ],
        "state": [{"id": "model", "property": "value", "value": model}],
        "changedPropIds": ["prompt.value"],
    }
    req = urllib.request.Request(
        f"{url}/_dash-update-component",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=120) as reply:
        return reply.status, json.loads(reply.read())["response"]


def heatmaps(reply: dict) -> np.ndarray:
    """The figure's heatmaps as [layer x head, query, key]."""
    return np.array([trace["z"] for trace in reply["attention"]["figure"]["data"]])


def test_concurrent_requests_each_get_their_own_activations(server) -> None:
    url, app = server
    vocab = workbench.open_checkpoint("induction-2l").vocab
    gen = torch.Generator().manual_seed(0)
    prompts = [
        " ".join(
            ["BOS", *(vocab[int(i)] for i in torch.randint(3, len(vocab), (11,), generator=gen))]
        )
        for _ in range(16)
    ]
    alone = [attention_patterns(app.registry, "induction-2l", p)[0] for p in prompts]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda p: request_figure(url, "induction-2l", p), prompts))
    for (status, reply), expected in zip(replies, alone, strict=True):
        assert status == 200 and reply["error"]["children"] == ""
        np.testing.assert_allclose(heatmaps(reply), expected.flatten(0, 1).numpy(), atol=1e-6)


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
    status, reply = request_figure(url, model, prompt)
    assert status == 200
    error = reply["error"]["children"]
    assert message in error
    for server_path in (str(Path(workbench.__file__).parents[1]), sys.prefix):
        assert server_path not in error  # no path of the server's is revealed
    figure = reply["attention"]["figure"]  # the stale figure is replaced by the message
    assert figure["data"] == [] and message in figure["layout"]["annotations"][0]["text"]
    assert opened == []  # nothing the browser named was opened


def test_models_dir_and_model_are_offered_by_name(tmp_path) -> None:
    model = workbench.build("gpt2-small-tiny", n_layers=1, seed=0)
    workbench.checkpoint.save(model, tmp_path / "models" / "tiny")
    workbench.checkpoint.save(model, tmp_path / "other" / "tiny")
    app = create_app([str(tmp_path / "other" / "tiny")], str(tmp_path / "models"))
    names = app.registry.names
    assert names[:2] == ["tiny", "tiny (2)"] and "induction-2l" in names
    patterns, labels = attention_patterns(app.registry, "tiny (2)", "1 2 3")
    assert patterns.shape == (1, 4, 3, 3) and labels == ["1", "2", "3"]
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
    assert "warning" not in result.output
    result = CliRunner().invoke(cli, ["app", "--host", "0.0.0.0", "--debug"])
    assert result.exit_code == 0 and "warning: binding 0.0.0.0" in result.output
    assert served[-1] == {"dash": {"host": "0.0.0.0", "port": 8050, "debug": True}}
    bad = CliRunner().invoke(cli, ["app", "--model", "/no/such/dir"])
    assert bad.exit_code == 2 and "does not exist" in bad.output
