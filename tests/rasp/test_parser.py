"""The textual RASP language: the paper's programs parse and run (checked against plain
Python references), errors give line and column, and no input crashes the parser."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rasp import rasp
from rasp.compiler.compiler import compile_rasp
from rasp.parser import RASPSyntaxError, load, parse
from tests.rasp.cases import chain_program

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
    return order + ["-"] * (len(s) - len(order))


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


# the tokens each shipped program reads, and the longest input compiled (every input up to
# it is compared); dyck2 at 4: its 15 layers make longer inputs slow to check
COMPILED = {"dyck1": ("()", 5), "dyck2": ("(){}", 4)}


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("path", sorted(PROGRAMS.glob("*.rasp")), ids=lambda p: p.stem)
def test_every_shipped_program_compiles_and_equals_the_interpreter(path, causal) -> None:
    alphabet, max_len = COMPILED.get(path.stem, ("abc", 5))
    program = load(str(path)).output
    compiled = compile_rasp(program, set(alphabet), max_len, causal=causal)
    for n in range(1, max_len + 1):
        batch = [list(xs) for xs in itertools.product(alphabet, repeat=n)]
        got = compiled.run_batch(batch)
        for xs, answer in zip(batch, got, strict=True):
            assert answer == rasp.evaluate(program, xs, causal=causal), xs


def test_causal_length_is_the_length_of_the_prefix() -> None:
    """As a causal model computes it: `length` is a select-everything width."""
    assert rasp.evaluate(rasp.length, "abc", causal=True) == [1, 2, 3]
    assert rasp.evaluate(rasp.length, "abc") == [3, 3, 3]


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


def test_a_program_of_3000_statements_parses_and_runs() -> None:
    program = parse(chain_program(3000))
    assert len(program.names) == 3000 and program.output.label == "x2999"
    assert rasp.evaluate(program.output, "abcd") == [749, 750, 751, 752]


def test_parsing_does_work_linear_in_the_program(monkeypatch) -> None:
    """Earley parsing (this parser's first form) grew faster than the program; LALR(1) reads
    each token once. The builder must not rescan either: twice the statements, twice the
    calls."""
    from rasp import language, parser

    assert parser._PARSER.options.parser == "lalr"
    calls = Counter()
    expr = language.Builder._expr

    def counted(self, tree):
        calls["expr"] += 1
        return expr(self, tree)

    monkeypatch.setattr(language.Builder, "_expr", counted)
    work = []
    for n in (400, 800, 1600):
        calls.clear()
        parse(chain_program(n + 1))
        work.append(calls["expr"])
    per_400 = work[1] - work[0]
    assert per_400 > 0 and work[2] - work[1] == 2 * per_400  # a * n + b, no n ** 2 term


SQUARINGS = "a0 = 99999999;" + "".join(f" a{i} = a{i - 1} * a{i - 1};" for i in range(1, 12))


@pytest.mark.parametrize(
    ("source", "where"),
    [
        ('x = "ab" * 1000000000;', '"ab"'),  # refused before it is built
        ("x = [0] * 1000000000;", "0]"),  # errors point at the first token
        ("a = [1, 2, 3] * 100; b = [a, a, a, a] * 10;", "a, a"),  # nested elements count
        (SQUARINGS, "a10 * a10"),  # each squaring doubles the digits: 16,386 > 10,000
    ],
)
def test_folded_constants_are_bounded(source, where) -> None:
    with pytest.raises(RASPSyntaxError, match=r"MAX_CONSTANT_SIZE\)") as error:
        parse(source)
    assert error.value.column == source.index(where) + 1 and "\n" not in str(error.value)
    assert "over the limit of 10,000" in str(error.value)


def test_the_bound_holds_elementwise_and_can_be_raised(monkeypatch) -> None:
    from rasp import operators
    from rasp.interpreter import EvaluationError

    assert rasp.evaluate(parse('x = tokens + "b" * 9999;').output, "a") == ["a" + "b" * 9999]
    shout = parse("x = tokens * 20000;").output
    with pytest.raises(EvaluationError, match="MAX_CONSTANT_SIZE"):
        rasp.evaluate(shout, "a")
    monkeypatch.setattr(operators, "MAX_CONSTANT_SIZE", 20_000)
    assert rasp.evaluate(shout, "a") == ["a" * 20000]


def test_select_takes_true_and_false() -> None:
    names = parse(
        "all = selector_width(select(tokens, tokens, True));\n"
        "none = selector_width(select(tokens, tokens, False));"
    ).names
    assert rasp.evaluate(names["all"], "abc") == [3, 3, 3]
    assert rasp.evaluate(names["none"], "abc") == [0, 0, 0]


def test_lambdas_closing_over_different_values_get_different_labels() -> None:
    """Two calls of one def build the same lambda over different values: their Maps are
    different SOps (they once shared a label, and the compiled model was refused)."""
    program = parse(
        "def add(s, c) { return map(lambda x: x + c, s); }\n"
        "both = zip(lambda a, b: a * 10 + b, add(indices, 1), add(indices, 2));"
    ).output
    one, two = program.children
    assert one.label != two.label
    assert rasp.evaluate(program, "abc") == [12, 23, 34]
    assert compile_rasp(program, {"a", "b", "c"}, 3).run("abc") == [12, 23, 34]


def test_syntax_errors_are_one_line_and_say_what_was_expected() -> None:
    with pytest.raises(RASPSyntaxError) as error:
        parse("x = select(tokens, tokens, ==)\ny = 1;")
    message = str(error.value)
    assert "\n" not in message and "unexpected 'y'; expected one of ';'," in message
    with pytest.raises(RASPSyntaxError, match="ends early; expected one of ';'") as error:
        parse("x = tokens")
    assert (error.value.line, error.value.column) == (1, 11)


def test_sums_of_numerical_sequences_are_linear_sequence_maps() -> None:
    names = parse(
        "ones = numerical map(lambda x: 1, tokens);\n"
        'is_a = numerical (tokens == "a");\n'
        "rest = numerical (ones - is_a);\n"
        "mixed = ones + indices;"
    ).names
    assert isinstance(names["rest"], rasp.LinearSequenceMap)
    assert not isinstance(names["mixed"], rasp.LinearSequenceMap)
    assert compile_rasp(names["rest"], {"a", "b"}, 3).run("aba") == [0.0, 1.0, 0.0]


def test_a_programs_own_def_replaces_the_librarys() -> None:
    """rasplib's names are defaults: a file may define its own (the REPL's prompt, as the
    official one, reserves them)."""
    program = parse(
        "def count(seq) { return selector_width(select(seq, seq, ==)); }\n"
        "def length() { return 7; }\n"
        "hist = count(tokens);\n"
        "seven = indices * 0 + length();"
    )
    assert rasp.evaluate(program.names["hist"], "abca") == [2, 1, 1, 2]
    assert rasp.evaluate(program.output, "ab") == [7, 7]
    assert rasp.evaluate(parse('c = count(tokens, "a");').output, "abca") == [2, 2, 2, 2]


def test_a_reassigned_name_keeps_both_sequences_apart() -> None:
    """`tokens = tokens_int;` (the official REPL's own idiom) and `x = x + 1;`: each
    assignment is its own SOp, labelled name, name_2, ..., and the program compiles."""
    program = parse("tokens = tokens_int; x = tokens + 1; x = x * 2;")
    assert [program.names[n].label for n in ("tokens", "x")] == ["tokens_2", "x_2"]
    assert compile_rasp(program.output, {"1", "2"}, 3).run(["1", "2"]) == [4, 6]


@pytest.mark.parametrize(
    ("source", "vocab", "xs", "want"),
    [
        ('has = "a" in tokens;', "ab", "bab", [True] * 3),  # a selector width, not a mean
        # the aggregate's default 0 is never reached, and "0" + "!" would fail on it
        ('rev = aggregate(select(indices, length - indices - 1, ==), tokens); r = rev + "!";',
         "ab", "ab", ["b!", "a!"]),
        ("m = map(lambda x: max(x, 1), tokens_int);", "05", "05", [1, 5]),  # Python's max
    ],
)  # fmt: skip
def test_constructs_compile_and_equal_the_interpreter(source, vocab, xs, want) -> None:
    program = parse(source).output
    assert rasp.evaluate(program, list(xs)) == want
    assert compile_rasp(program, set(vocab), 3).run(list(xs)) == want


def test_repl_statements_and_unpacking_in_a_file() -> None:
    program = parse('a, b = "xy"; out_ = indices; set example "abc"\nfull seq display on\n')
    assert program.names["a"] == "x" and program.output.label == "out_"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('x = "%999999999d" % 1;', "formats a string"),  # one C call would build a gigabyte
        ('r = range(100); x = {a: {b: "a" * 9999 for b in r} for a in r};', "comprehension"),
        ('x = select(indices, indices, ==)("' + "a" * 1001 + '");', "MAX_APPLIED"),
    ],
)
def test_what_could_take_gigabytes_is_refused_as_it_grows(source, message) -> None:
    with pytest.raises(RASPSyntaxError, match=message):
        parse(source)
