"""The textual language against the official interpreter (tech-srl/RASP): its programs
(paper_examples.rasp, long_addition.rasp, rover.rasp), every library function, and the
constructs whose meaning differs elsewhere (tests/rasp/techsrl/semantics.rasp), run as
written, give the official interpreter's values on every recorded input
(tests/rasp/techsrl/reference.json, written by benchmarks/rasp_techsrl_reference.py in the
official interpreter's own environment)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rasp import rasp
from rasp.parser import load

HERE = Path(__file__).parent / "techsrl"
REFERENCE = json.loads((HERE / "reference.json").read_text())


def evaluated(value: Any, example: str) -> Any:
    """`value` with every sequence in it replaced by its values on `example`."""
    if isinstance(value, rasp.SOp):
        return rasp.evaluate(value, list(example))
    if isinstance(value, rasp.Selector):  # tech-srl's form: query -> its row of keys
        return dict(enumerate(rasp.evaluate(value, list(example))))
    if isinstance(value, list):
        return [evaluated(v, example) for v in value]
    if isinstance(value, dict):
        return {k: evaluated(v, example) for k, v in value.items()}
    return value


def same(ours: Any, theirs: Any) -> bool:
    """Equal, with the same types (1 is not 1.0, True is not 1); JSON keys are strings."""
    if isinstance(theirs, list):
        return isinstance(ours, list) and len(ours) == len(theirs) and all(map(same, ours, theirs))
    if isinstance(theirs, dict):
        ours = {str(k): v for k, v in ours.items()} if isinstance(ours, dict) else None
        return (
            ours is not None
            and ours.keys() == theirs.keys()
            and all(same(ours[k], theirs[k]) for k in theirs)
        )
    return type(ours) is type(theirs) and ours == theirs


@pytest.mark.parametrize("program", sorted(REFERENCE))
def test_programs_give_the_official_interpreters_values(program: str) -> None:
    names = load(HERE / f"{program}.rasp").names
    wrong = []
    for name, expected in REFERENCE[program].items():
        if "constant" in expected:
            if not same(names[name], expected["constant"]):
                wrong.append((name, names[name], expected["constant"]))
            continue
        for example, values in expected.items():
            ours = evaluated(names[name], example)
            if not same(ours, values):
                wrong.append((name, example, ours, values))
    assert not wrong, f"{len(wrong)} differ, e.g. {str(wrong[:3])[:2000]}"
