"""The textual RASP language: the paper's programs parse and run (checked against plain
Python references), errors give line and column, and no input crashes the parser."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rasp import rasp
from rasp.compiler.compiler import compile_rasp
from rasp.parser import RASPSyntaxError, load, parse

PROGRAMS = Path(__file__).parents[2] / "rasp" / "programs"


def dyck_ptf(s: str, pairs: dict[str, str]) -> list[str]:
    """Per prefix: F once a close is unmatched or of the wrong type, else T when balanced."""
    out, stack, failed = [], [], False
    for c in s:
        if not failed:
            if c in pairs.values():
                stack.append(c)
            elif not stack or pairs[c] != stack.pop():
                failed = True
        out.append("F" if failed else ("T" if not stack else "P"))
    return out


def most_freq(s: str) -> list:
    counts = Counter(s)
    order = sorted(dict.fromkeys(s), key=lambda t: (-counts[t], s.index(t)))
    return order + [None] * (len(s) - len(order))


def double_hist(s: str) -> list[int]:
    counts = Counter(s)
    return [sum(1 for t in counts if counts[t] == counts[c]) for c in s]


REFERENCES = {
    "hist": (lambda s: [s.count(c) for c in s], "abc"),
    "reverse": (lambda s: list(reversed(s)), "abc"),
    "sort": (sorted, "abc"),
    "double_hist": (double_hist, "abc"),
    "most_freq": (most_freq, "abc"),
    "dyck1": (lambda s: dyck_ptf(s, {")": "("}), "()"),
    "dyck2": (lambda s: dyck_ptf(s, {")": "(", "}": "{"}), "(){}"),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_the_papers_programs_parse_and_run(name) -> None:
    program = load(str(PROGRAMS / f"{name}.rasp")).output
    reference, alphabet = REFERENCES[name]
    rng = random.Random(0)
    for _ in range(150):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        assert rasp.evaluate(program, list(s)) == list(reference(s)), s


def test_a_parsed_program_compiles() -> None:
    program = load(str(PROGRAMS / "reverse.rasp")).output
    compiled = compile_rasp(program, {"a", "b", "c"}, 4)
    assert compiled.run("abc") == ["c", "b", "a"]


def test_language_features() -> None:
    program = parse(
        """
        def frac(seq, tok) {
            prevs = select(indices, indices, <=);
            return numerical aggregate(prevs, numerical (seq == tok), 0);
        }
        balance = numerical (frac(tokens, "(") - frac(tokens, ")"));
        shout = map(lambda t: t + "!", tokens);
        both = zip(lambda a, b: (a, b)[0] + b, tokens, shout);
        size = "big" if selector_width(select(tokens, tokens, ==)) > 1 else "small";
        """
    )
    names = program.names
    assert rasp.evaluate(names["balance"], "(()") == [1, 1.0, pytest.approx(1 / 3)]
    assert rasp.evaluate(names["both"], "ab") == ["aa!", "bb!"]
    assert rasp.evaluate(program.output, "aab") == ["big", "big", "small"]
    assert names["balance"].label == "balance" and rasp.is_numerical(names["balance"])


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("x = select(tokens, tokens, ==)\ny = 1;", 2, 1, "unexpected"),
        ("x = tokens;\ny = undefined + 1;", 2, 5, "unknown name 'undefined'"),
        ("x = tokens;\n  y = frobnicate(x);", 2, 7, "unknown function 'frobnicate'"),
        ("x = select(tokens, tokens, 3);", 1, 5, "comparison"),
        ("x = map(lambda t: t + 1, tokens, tokens);", 1, 5, "lambda of one argument"),
        ("x = map(lambda t: tokens, tokens);\ny = x;", 1, 19, "plain values"),
    ],
)
def test_errors_give_line_and_column(source, line, column, message) -> None:
    with pytest.raises(RASPSyntaxError, match=message) as error:
        parse(source)
        rasp.evaluate(parse(source).output, "ab")
    assert (error.value.line, error.value.column) == (line, column)


KEYWORDS = ["select", "aggregate", "tokens", "indices", "lambda", "def", "return", "if"]
KEYWORDS += ["else", "and", "or", "not", "numerical", "map", "zip", "==", "<="]
ALPHABET = st.sampled_from([*"abcxyz019 ;,()[]{}=<>!+-*/%:\"'\n", *KEYWORDS])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=30).map(" ".join))
def test_the_parser_never_crashes(source) -> None:
    """Any text either parses into a program or raises RASPSyntaxError, nothing else."""
    try:
        parse(source)
    except RASPSyntaxError as error:
        assert error.line >= 1 and error.column >= 1
