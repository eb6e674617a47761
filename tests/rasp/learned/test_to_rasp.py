"""A learned program in the `rasp` language equals the model on every token: run by the RASP
interpreter, rebuilt from its printed source, and compiled back to weights by the RASP
compiler; on random untrained models of every configuration, causal or not. (The authors'
14 shipped programs go the same way in benchmarks/ltp_shipped.py.)"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rasp import ltp, rasp
from rasp.compiler.compiler import compile_rasp
from rasp.learned.program import hard_predictions, to_program
from rasp.learned.to_rasp import to_rasp
from tests.rasp.learned.helpers import CONFIGS, random_model, random_tokens

WORDS = ("<pad>", "a", "b", "c", "<s>")
TAGS = ("<pad>", "x", "y", "z")


def _case(config: tuple[int, ...], autoregressive: bool, n_ctx: int, n: int):
    model = random_model(
        config,
        autoregressive=autoregressive,
        seed=sum(config),
        d_vocab=len(WORDS),
        d_out=len(TAGS),
        n_ctx=n_ctx,
        d_var=n_ctx + 1,
    )
    tokens = random_tokens(np.random.default_rng(len(config)), len(WORDS), n_ctx, n)
    tokens[:, 0] = WORDS.index("<s>")  # as every task's input
    inputs = [[WORDS[i] for i in row if i] for row in tokens]
    expected = [
        [TAGS[i] for i in row[: len(x)]]
        for row, x in zip(hard_predictions(model, tokens), inputs, strict=True)
    ]
    return model, inputs, expected


@pytest.mark.parametrize("autoregressive", [False, True])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_rasp_program_equals_the_model(config: tuple[int, ...], autoregressive: bool) -> None:
    model, inputs, expected = _case(config, autoregressive, n_ctx=8, n=150)
    program = to_rasp(to_program(model), WORDS, TAGS)
    assert program.causal is autoregressive
    assert [program.run(x) for x in inputs] == expected


def test_printed_source_builds_the_same_program() -> None:
    model, inputs, expected = _case(CONFIGS[5], False, n_ctx=8, n=60)
    program = to_rasp(to_program(model), WORDS, TAGS)
    source = program.python("a random program")
    namespace: dict[str, object] = {}
    exec(compile(source, "decompiled.py", "exec"), namespace)  # our own output, not a file
    rebuilt = namespace["program"]
    assert isinstance(rebuilt, ltp.Readout)
    assert rebuilt.label == program.output.label == "output"
    assert namespace["VOCAB"] == list(program.vocab) and namespace["CAUSAL"] is False
    assert [rasp.evaluate(rebuilt, x) for x in inputs] == expected
    assert "ltp.SelectClosest(" in source and "ltp.SumAggregate(" in source


@pytest.mark.parametrize("autoregressive", [False, True])
@pytest.mark.parametrize("config", [CONFIGS[2], CONFIGS[5]], ids=lambda c: "-".join(map(str, c)))
def test_compiled_rasp_program_equals_the_model(
    config: tuple[int, ...], autoregressive: bool
) -> None:
    """Compiled back to weights (the compiler validates against the interpreter on random
    inputs), the model gives the learned model's tags on task-like inputs too."""
    model, inputs, expected = _case(config, autoregressive, n_ctx=6, n=120)
    program = to_rasp(to_program(model), WORDS, TAGS)
    compiled = compile_rasp(
        program.output,
        set(program.vocab),
        program.max_len,
        causal=autoregressive,
        validation_budget=200,
    )
    assert [compiled.run(x) for x in inputs] == expected


@pytest.mark.parametrize("autoregressive", [False, True])
def test_tables_that_read_less_are_a_constant_or_a_map(autoregressive: bool) -> None:
    """An MLP table with one output is a `Full`, one that ignores an input a `Map` of the
    other (so a trained Dyck program's constant 257 x 4097 table compiles): still equal to
    the model's program in the interpreter, from the printed source and compiled."""
    model, inputs, _ = _case(CONFIGS[2], autoregressive, n_ctx=6, n=60)  # 1 + 1 MLPs
    learned = to_program(model)
    (layer,) = learned.layers
    (cat,), (num,) = layer.cat_mlps, layer.num_mlps
    first_only = np.repeat(cat.table[:, :1], cat.table.shape[1], axis=1)
    second_only = np.repeat(num.table[:1], num.table.shape[0], axis=0)
    for cat_table, num_table in [
        (np.full_like(cat.table, 2), second_only),
        (first_only, np.full_like(num.table, 1)),
    ]:
        changed = replace(
            learned,
            layers=(
                replace(
                    layer,
                    cat_mlps=(replace(cat, table=cat_table),),
                    num_mlps=(replace(num, table=num_table),),
                ),
            ),
        )
        tokens = np.array([[WORDS.index(w) for w in x] + [0] * (6 - len(x)) for x in inputs])
        expected = [
            [TAGS[i] for i in row[: len(x)]]
            for row, x in zip(changed.run(tokens), inputs, strict=True)
        ]
        program = to_rasp(changed, WORDS, TAGS)
        kinds = {type(sop).__name__ for sop in program.output.sops}
        assert {"Full", "Map"} <= kinds and "SequenceMap" not in kinds
        assert [program.run(x) for x in inputs] == expected
        namespace: dict[str, object] = {}
        exec(compile(program.python("t"), "decompiled.py", "exec"), namespace)  # our output
        assert [rasp.evaluate(namespace["program"], x, causal=autoregressive) for x in inputs] == (
            expected
        )
        compiled = compile_rasp(
            program.output, set(program.vocab), 6, causal=autoregressive, validation_budget=50
        )
        assert [compiled.run(x) for x in inputs] == expected
