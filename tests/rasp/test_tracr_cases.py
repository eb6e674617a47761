"""tracr's own test cases (tracr 1.0.0's tracr/compiler/test_cases.py, ported by changing its
two imports: tests/rasp/tracr/tracr_cases.py) compile here and give tracr's expected outputs,
bidirectionally (TEST_CASES) and causally (CAUSAL_TEST_CASES), as tracr's integration test
runs them; and every compiled model is no larger than tracr's own for the same case: d_model,
layers and MLP width (tracr's numbers: tests/rasp/tracr/widths.json, written by
benchmarks/rasp_tracr_cases.py in tracr's environment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rasp.compiler.compiling import compile_rasp_to_model
from tests.rasp.tracr import tracr_cases

TRACR = {
    (row["case"], row["causal"]): row
    for row in json.loads((Path(__file__).parent / "tracr" / "widths.json").read_text())
}
CASES = [(case, False) for case in tracr_cases.TEST_CASES]
CASES += [(case, True) for case in tracr_cases.CAUSAL_TEST_CASES]


def _close(got, want) -> bool:
    if isinstance(want, float) and got is not None:
        return abs(got - want) < 1e-5
    return got == want


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]['testcase_name']}-{c[1]}")
def compiled(request):
    case, causal = request.param
    model = compile_rasp_to_model(
        case["program"], case["vocab"], case["max_seq_len"], causal=causal, compiler_bos="BOS"
    )
    return case, causal, model


def test_tracrs_cases_give_tracrs_expected_outputs(compiled) -> None:
    case, _, model = compiled
    decoded = model.apply(["BOS", *case["test_input"]]).decoded[1:]
    want = case["expected_output"]
    assert len(decoded) == len(want) and all(map(_close, decoded, want)), (decoded, want)


def test_no_model_is_larger_than_tracrs(compiled) -> None:
    """One hidden unit per output value of a categorical table, steps only where a numerical
    function's output changes: shuffle_dyck2's widest MLP is 16 units here, 212 in tracr."""
    case, causal, model = compiled
    config, theirs = model.model.config, TRACR[(case["testcase_name"], causal)]
    ours = {"d_model": config.d_model, "layers": config.n_layers, "d_mlp": config.d_mlp}
    assert all(ours[k] <= theirs[k] for k in ours), (ours, theirs)


def test_every_case_of_tracrs_table_is_here() -> None:
    assert len(CASES) == len(TRACR) == 54
