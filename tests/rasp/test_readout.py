"""A compiled model read in its program's terms (`rasp.readout`): the labels a checkpoint
records, each head's operation, and the residual stream decoded at every sublayer, checked
against the interpreter's value of every SOp of the shipped programs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import workbench
from rasp import rasp
from rasp.compiler.compiler import compile_rasp
from rasp.compiler.graph import program_graph
from rasp.parser import load
from rasp.readout import from_meta, rasp_labels, residual_by_layer
from workbench.cli import cli
from workbench.errors import InputError

PROGRAMS = Path(__file__).parents[2] / "rasp" / "programs"
# program, vocabulary, max_seq_len, inputs, causal
SHIPPED = [
    ("reverse", "abc", 4, ["abc", "cab", "b", "abca"], False),
    ("hist", "abc", 4, ["abac", "ccc", "a"], False),
    ("sort", "abc", 4, ["cab", "bcab", "aa"], False),
    ("most_freq", "abc", 4, ["abbc", "cacb", "b"], False),
    ("double_hist", "abc", 4, ["aabc", "abc", "bbb"], False),
    ("dyck1", "()", 4, ["(())", "())(", "(", ")("], False),
    ("dyck1", "()", 4, ["(()", "())("], True),
    ("dyck2", "(){}", 4, ["({})", "(}", "{}()", ")"], False),
]


def _compiled(name: str, vocab: str, max_len: int, causal: bool, tmp_path: Path):
    program = load(str(PROGRAMS / f"{name}.rasp")).output
    compiled = compile_rasp(program, set(vocab), max_len, causal=causal, validation_budget=30)
    out = compiled.save(tmp_path / name)
    return program, compiled, workbench.open_checkpoint(out)


def _same(got, want, numerical: bool) -> bool:
    if numerical:  # a numerical None reads as 0
        return abs(got - (0.0 if want is None else float(want))) < 1e-4
    return got == (None if want is None else str(want))


@pytest.mark.parametrize(
    ("name", "vocab", "max_len", "inputs", "causal"),
    SHIPPED,
    ids=[f"{s[0]}{'-causal' if s[4] else ''}" for s in SHIPPED],
)
def test_the_decoded_residual_holds_the_interpreters_values(
    name, vocab, max_len, inputs, causal, tmp_path
) -> None:
    program, compiled, checkpoint = _compiled(name, vocab, max_len, causal, tmp_path)
    labels = rasp_labels(checkpoint)
    graph = program_graph(program)
    for xs in inputs:
        ids = [0] + [compiled.token_ids[t] for t in xs]
        readout = residual_by_layer(checkpoint.model, ids, labels)
        assert readout.positions == ("BOS", *xs)
        assert readout.deviation < 1e-3  # the one-hot dimensions hold 0 or 1
        last = len(readout.stages) - 1
        assert all(readout.present[last])  # every SOp is written by the end
        for label in graph.sops():
            want = rasp.evaluate(graph.exprs[label], list(xs), causal=causal)
            at = readout.sops.index(label)
            numerical = readout.numerical[at]
            first = labels.sublayers[label] + 1  # the stage after the sublayer writing it
            assert not any(readout.present[s][at] for s in range(first)), label
            for stage in range(first, last + 1):
                got = readout.values[stage][at][1:]  # the interpreter has no BOS
                assert all(_same(g, w, numerical) for g, w in zip(got, want, strict=True)), (
                    xs,
                    label,
                    readout.stages[stage],
                    got,
                    want,
                )


def test_a_selector_widths_bos_share_is_one_over_width_plus_one(tmp_path) -> None:
    _, _, checkpoint = _compiled("hist", "abc", 4, False, tmp_path)
    readout = residual_by_layer(checkpoint.model, [0, 1, 2, 1, 1], rasp_labels(checkpoint))
    last = len(readout.stages) - 1
    share = readout.values[last][readout.sops.index("hist.bos_share")][1:]
    assert readout.values[last][readout.sops.index("hist")][1:] == ("3", "1", "3", "3")
    assert share == pytest.approx([1 / 4, 1 / 2, 1 / 4, 1 / 4], abs=1e-6)


def test_heads_are_named_by_the_operation_they_compute(tmp_path) -> None:
    _, _, checkpoint = _compiled("reverse", "abc", 4, False, tmp_path)
    labels = rasp_labels(checkpoint)
    assert labels.head_name(0, 0) == "length = selector_width(select(tokens, tokens, True))"
    assert labels.head_name(3, 0) == "reverse = aggregate(select(indices, opp_index, ==), tokens)"
    assert labels.head_name(1, 0) is None and labels.head_name(2, 0) is None  # MLP-only layers
    assert labels.residual[:3] == ("one", "tokens:BOS", "tokens:a")
    assert labels.sops[labels.residual.index("opp_index:-1")] == "opp_index"
    assert labels.sublayers["reverse"] == 6 and labels.sublayers["length"] == 1
    assert labels.example_prompt() == "BOS a b c a"
    heads = json.loads(labels.to_json())["heads"]
    assert heads[3][0]["operation"] == labels.head_name(3, 0) and heads[1] == [None]
    readout = residual_by_layer(checkpoint.model, [0, 1, 2], labels)
    # at BOS nothing is selected: the aggregate's default (the language's 0)
    assert json.loads(readout.to_json())["values"][-1][readout.sops.index("reverse")] == [
        "0", "b", "a"
    ]  # fmt: skip


def test_a_composed_selector_keeps_its_structure(tmp_path) -> None:
    _, _, checkpoint = _compiled("sort", "abc", 4, False, tmp_path)
    width = rasp_labels(checkpoint).heads[1][0]
    assert width is not None and width.operation is not None
    assert width.operation.endswith(
        "= selector_width(select(tokens, tokens, <) or "
        "(select(tokens, tokens, ==) and select(indices, indices, <)))"
    )


def test_older_checkpoints_read_from_their_labels_and_ground_truth(tmp_path) -> None:
    _, compiled, checkpoint = _compiled("most_freq", "abc", 4, False, tmp_path)
    meta = compiled.meta()["rasp"]
    config = checkpoint.model.config
    new = from_meta(meta, checkpoint.meta["vocab"], config.n_layers, config.n_heads)
    old_meta = {k: v for k, v in meta.items() if k not in ("residual_sops", "sublayers", "heads")}
    old = from_meta(old_meta, checkpoint.meta["vocab"], config.n_layers, config.n_heads)
    assert old.sops == new.sops
    assert old.sublayers == new.sublayers
    sops = [[r and r.sop for r in row] for row in old.heads]
    assert sops == [[r and r.sop for r in row] for row in new.heads]
    assert all(r is None or r.operation is None for row in old.heads for r in row)


def test_compile_command_writes_the_labels(tmp_path) -> None:
    out = tmp_path / "hist"
    args = ["compile", str(PROGRAMS / "hist.rasp"), "--vocab", "a,b", "--max-len", "3"]
    result = CliRunner().invoke(cli, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "workbench.json").read_text())["rasp"]
    assert (
        meta["residual_sops"]
        == ["one", "tokens", "tokens", "tokens", "hist.bos_share"] + ["hist"] * 4
    )
    assert meta["sublayers"] == {"one": -1, "tokens": -1, "hist.bos_share": 0, "hist": 1}
    assert meta["heads"] == [
        [{"sop": "hist", "operation": "hist = selector_width(select(tokens, tokens, ==))"}]
    ]


def test_bad_inputs_and_other_models_are_refused(tmp_path) -> None:
    _, _, checkpoint = _compiled("hist", "abc", 4, False, tmp_path)
    labels = rasp_labels(checkpoint)
    model = checkpoint.model
    with pytest.raises(InputError, match="reads BOS first"):
        residual_by_layer(model, [1, 2], labels)
    with pytest.raises(InputError, match="1..4 tokens"):
        residual_by_layer(model, [0, 1, 2, 3, 1, 2], labels)
    with pytest.raises(InputError, match="1..4 tokens"):
        residual_by_layer(model, [0, 1, 0], labels)  # BOS inside the input
    with pytest.raises(InputError, match="one sequence"):
        residual_by_layer(model, torch.zeros(2, 3, dtype=torch.long), labels)
    broken = dict(checkpoint.meta, rasp={**checkpoint.meta["rasp"], "heads": [[{"sop": 1}]]})
    with pytest.raises(InputError, match="malformed"):
        rasp_labels(type(checkpoint)(model, broken))
    other = workbench.open_checkpoint("induction-2l")
    with pytest.raises(InputError, match="not a compiled RASP program"):
        rasp_labels(other)
    with pytest.raises(InputError, match="d_model"):
        residual_by_layer(other.model, [0, 1], labels)
