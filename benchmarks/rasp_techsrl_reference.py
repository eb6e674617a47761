"""The official RASP interpreter's values (tech-srl/RASP) for the programs in
tests/rasp/techsrl/, written to tests/rasp/techsrl/reference.json for
tests/rasp/test_techsrl.py to compare the textual language with.

It runs in the official interpreter's own environment (not ours), from a clone of its
repository:

    python -m venv /tmp/techsrl && /tmp/techsrl/bin/pip install antlr4-python3-runtime==4.9.3 termcolor
    git clone https://github.com/tech-srl/RASP /tmp/techsrl-repo
    cd /tmp/techsrl-repo && /tmp/techsrl/bin/python /path/to/benchmarks/rasp_techsrl_reference.py

Each program is loaded as the REPL loads a file. Every sequence it names is evaluated on the
inputs below (seeded): its values, or the interpreter's error; every atom, list and dict it
names is recorded as it is.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "tests" / "rasp" / "techsrl"
SEED = 0


def random_strings(alphabet: str, count: int, max_len: int, rng: random.Random) -> list[str]:
    found = {
        "".join(rng.choice(alphabet) for _ in range(rng.randint(1, max_len))) for _ in range(count)
    }
    return sorted(found)


def addition(rng: random.Random, count: int) -> list[str]:
    """`a+b` with a and b of up to 4 digits, as long_addition.rasp reads them."""
    out = set()
    while len(out) < count:
        a, b = (str(rng.randint(0, 10 ** rng.randint(1, 4) - 1)) for _ in range(2))
        out.add(f"{a}+{b}")
    return sorted(out)


def inputs() -> dict[str, list[str]]:
    rng = random.Random(SEED)
    brackets = random_strings("(){}[]", 60, 12, rng)
    return {
        "paper_examples": ["§" + s for s in random_strings("abcab", 30, 9, rng)]
        + ["§" + s for s in brackets[:10]]
        + brackets,
        "long_addition": addition(rng, 40),
        "rover": [
            "a<A,a<A?",
            "a<A,a#A?",
            "a<A,x<A:x<B,a<B?",
            "a#A,x#A:x<B,a<B?",
            "x<A:x<B,x#B:x<C,b#B,b<A?",
            "a<A,a<X:b<X,b<A?",
        ],
        "library": random_strings("abcd", 40, 8, rng),
        "semantics": random_strings("abcd", 40, 8, rng),
    }


def values(repl, path: Path, examples: list[str]) -> dict:
    """name -> {"constant": value} for an atom, list or dict without sequences, else
    {input: its values (sequences inside lists and dicts evaluated), or {"error": ...}}."""
    from RASP_support.FunctionalSupport import Unfinished, UnfinishedSequence

    before = dict(repl.env.variables)  # `tokens`, set by the REPL
    with contextlib.redirect_stdout(io.StringIO()):
        repl.run_given_line(f'load "{path.with_suffix("")}";')
    public = {
        k: v
        for k, v in repl.env.variables.items()
        if not k.startswith("_") and k != "out" and before.get(k) is not v
    }
    result: dict[str, object] = {}
    for name, value in sorted(public.items()):
        if not isinstance(value, (UnfinishedSequence, int, float, str, bool, list, dict)):
            continue  # functions and selectors
        if not holds_sequences(value, Unfinished):
            result[name] = {"constant": value}
            continue
        result[name] = per_input = {}
        for example in examples:
            try:
                with contextlib.redirect_stdout(io.StringIO()):
                    per_input[example] = evaluated(value, example, Unfinished)
            except Exception as error:  # the interpreter's error is the answer
                per_input[example] = {"error": f"{type(error).__name__}: {error}"}
    return result


def holds_sequences(value, unfinished) -> bool:
    if isinstance(value, unfinished):
        return True
    if isinstance(value, list):
        return any(holds_sequences(v, unfinished) for v in value)
    if isinstance(value, dict):
        return any(holds_sequences(v, unfinished) for v in value.values())
    return False


def evaluated(value, example: str, unfinished):
    if isinstance(value, unfinished):
        return value.call(example, just_pass_exception_up=True).get_vals()
    if isinstance(value, list):
        return [evaluated(v, example, unfinished) for v in value]
    if isinstance(value, dict):
        return {k: evaluated(v, example, unfinished) for k, v in value.items()}
    return value


def main() -> None:
    sys.path.insert(0, ".")
    from RASP_support.REPL import REPL

    reference = {}
    for program, examples in inputs().items():
        with contextlib.redirect_stdout(io.StringIO()):
            repl = REPL()
        reference[program] = values(repl, HERE / f"{program}.rasp", examples)
    out = HERE / "reference.json"
    out.write_text(json.dumps(reference, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    sizes = {p: len(v) for p, v in reference.items()}
    print(f"wrote {out}: sequences per program {sizes}")


if __name__ == "__main__":
    main()
