"""Linear probes on a model whose answer is known: a compiled RASP program writes its SOps
into labelled residual dimensions, so a probe must read them exactly where they are written
and nowhere before."""

from __future__ import annotations

import json
import random

import pytest
import torch
from typer.testing import CliRunner

from probes.linear import linear_probe
from rasp import library
from rasp.compiler.compiler import compile_rasp
from workbench.cli import cli
from workbench.errors import InputError


@pytest.fixture(scope="module")
def hist():
    """hist on {a, b, c, d} at length 6: inputs, and per-position hist labels (BOS ignored)."""
    compiled = compile_rasp(library.make_hist(), {"a", "b", "c", "d"}, 6)
    rng = random.Random(0)
    batch = [[rng.choice("abcd") for _ in range(6)] for _ in range(200)]
    labels = torch.tensor([[-100] + [xs.count(x) for x in xs] for xs in batch])
    return compiled, compiled.encode(batch), labels


def test_a_probe_reads_a_sop_where_it_is_written(hist) -> None:
    compiled, tokens, labels = hist
    after = linear_probe(compiled.model, tokens, labels, site="resid_post")
    before = linear_probe(compiled.model, tokens, labels, site="resid_pre")
    assert after.test == (1.0,)  # hist is one-hot in the residual after block 0
    assert before.test[0] < 0.8  # the embedding holds one token, not the counts
    assert after.selectivity[0] > before.selectivity[0]
    assert json.loads(after.to_json())["n_test"] == after.n_test > 0


def test_ridge_probes_numbers(hist) -> None:
    compiled, tokens, labels = hist
    result = linear_probe(compiled.model, tokens, labels.double(), site="resid_post", kind="ridge")
    assert result.test[0] > 0.99


def test_bad_input_is_refused(hist) -> None:
    compiled, tokens, labels = hist
    with pytest.raises(InputError, match="unknown probe site"):
        linear_probe(compiled.model, tokens, labels, site="nowhere")
    with pytest.raises(InputError, match="labels must have shape"):
        linear_probe(compiled.model, tokens, labels[:, :3])
    with pytest.raises(InputError, match="out of range"):
        linear_probe(compiled.model, tokens, labels, layers=[5])
    with pytest.raises(InputError, match="too few"):
        linear_probe(compiled.model, tokens[:1], labels[:1, :2].new_full((1,), 1))
    with pytest.raises(InputError, match="one class only .* kind='ridge'"):
        linear_probe(compiled.model, tokens, torch.ones_like(labels))  # sklearn's raw error


def test_probe_cli() -> None:
    result = CliRunner().invoke(
        cli, ["probe", "--model", "induction-2l", "--n-prompts", "32", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["layers"] == [0, 1] and len(report["test"]) == 2
    assert report["test"][1] > report["test"][0]  # the induction head's output helps
