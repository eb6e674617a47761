"""The shared table checked three ways: interpreter, intermediate form, compiled model."""

from __future__ import annotations

import pytest

from rasp import rasp
from rasp.compiler.compiler import compile_rasp
from tests.rasp.cases import CASES, Case


def _same(got, want) -> bool:
    if any(isinstance(w, float) for w in want):
        return all(
            abs((0.0 if g is None else g) - w) < 1e-4 for g, w in zip(got, want, strict=True)
        )
    return list(got) == list(want)


@pytest.fixture(scope="module", params=CASES, ids=lambda c: c.name)
def compiled(request):
    case: Case = request.param
    return case, compile_rasp(case.program(), set(case.vocab), case.max_seq_len)


def test_interpreter_gives_the_known_answers(compiled) -> None:
    case, _ = compiled
    for xs, want in case.examples:
        assert _same(rasp.evaluate(case.program(), list(xs)), want), xs


def test_intermediate_form_gives_the_known_answers(compiled) -> None:
    case, program = compiled
    for xs, want in case.examples:
        assert _same(program.run_blocks(list(xs)), want), xs


def test_compiled_model_gives_the_known_answers(compiled) -> None:
    case, program = compiled
    for xs, want in case.examples:
        assert _same(program.run(list(xs)), want), xs


@pytest.mark.parametrize("case", [c for c in CASES if c.causal_ok], ids=lambda c: c.name)
def test_causal_compilation_gives_the_same_answers(case: Case) -> None:
    program = compile_rasp(case.program(), set(case.vocab), case.max_seq_len, causal=True)
    assert program.model.config.mask.value == "causal"
    for xs, want in case.examples:
        assert _same(rasp.evaluate(case.program(), list(xs), causal=True), want)
        assert _same(program.run(list(xs)), want), xs
