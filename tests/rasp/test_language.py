"""The embedded language and the interpreter: tracr's semantics, deterministic labels."""

from __future__ import annotations

import functools
import operator
import subprocess
import sys

import numpy as np
import pytest

from rasp import rasp
from rasp.compiler.compiler import compile_rasp
from rasp.interpreter import EvaluationError
from rasp.parser import parse


def test_aggregate_is_the_mean_of_selected_values_none_when_nothing_is_selected() -> None:
    prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LT)
    mean = rasp.numerical(rasp.Aggregate(prevs, rasp.numerical(rasp.tokens)))
    assert mean([4, 2, 6]) == [None, 4, 3]
    single = rasp.Aggregate(
        rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.EQ), rasp.tokens
    )
    assert single("abc") == ["a", "b", "c"]  # one selected value comes back unchanged


def test_select_calls_the_predicate_as_key_query_and_indexes_query_then_key() -> None:
    calls = []

    def predicate(key, query):
        calls.append((key, query))
        return key < query

    matrix = rasp.Select(rasp.indices, rasp.indices, predicate)([0, 0, 0])
    assert matrix[2] == [True, True, False]  # query 2 selects keys 0 and 1
    assert matrix[0] == [False, False, False]
    assert (0, 2) in calls


@pytest.mark.parametrize(
    ("comparison", "expected"),
    [
        ("EQ", [False, True, False]),
        ("LT", [True, False, False]),
        ("LEQ", [True, True, False]),
        ("GT", [False, False, True]),
        ("GEQ", [False, True, True]),
        ("NEQ", [True, False, True]),
        ("TRUE", [True, True, True]),
        ("FALSE", [False, False, False]),
    ],
)
def test_comparisons_compare_key_to_query(comparison, expected) -> None:
    selector = rasp.Select(rasp.indices, rasp.Full(1), rasp.Comparison[comparison])
    assert selector("abc")[0] == expected  # keys 0, 1, 2 against the query 1


def test_causal_evaluation_masks_later_keys() -> None:
    everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)
    assert rasp.SelectorWidth(everything)("abcd") == [4, 4, 4, 4]
    assert rasp.evaluate(rasp.SelectorWidth(everything), "abcd", causal=True) == [1, 2, 3, 4]


def test_operators_build_maps_and_sequence_maps() -> None:
    x = rasp.numerical(rasp.tokens)
    assert (x + 1)([1, 2]) == [2, 3]
    assert (x * x)([2, 3]) == [4, 9]
    assert (2 - x)([1, 5]) == [1, -3]
    assert (x == 2)([1, 2]) == [False, True]
    assert (~(x > 1))([1, 2]) == [True, False]
    # comparisons of two sequences compare position by position (a SequenceMap), not each
    # value with the other SOp object (what tracr builds: true or false for every value)
    prev = rasp.numerical(rasp.Map(lambda v: v, rasp.indices))
    for compare, expected in [
        (x == prev, [False, True, False]),
        (x != prev, [True, False, True]),
        (x < prev, [False, False, True]),
        (x <= prev, [False, True, True]),
        (x > prev, [True, False, False]),
        (x >= prev, [True, True, False]),
    ]:
        assert isinstance(compare, rasp.SequenceMap)
        assert compare([1, 1, 0]) == expected
    composed = rasp.Map(lambda v: v * 10, rasp.Map(lambda v: v + 1, rasp.tokens))
    assert isinstance(composed.inner, rasp.TokensType)  # a Map of a Map is one Map
    assert composed([1, 2]) == [20, 30]


def test_encodings_default_to_categorical() -> None:
    x = rasp.Map(lambda v: v, rasp.tokens)
    assert rasp.is_categorical(x) and not rasp.is_numerical(x)
    assert rasp.is_numerical(rasp.numerical(x))
    assert rasp.get_encoding(rasp.numerical(x)) is rasp.Encoding.NUMERICAL


def test_names_and_labels() -> None:
    x = rasp.Map(lambda v: v + 1, rasp.tokens)
    assert x.named("plus_one").label == "plus_one"
    assert x.label.startswith("map_")
    assert rasp.Map(lambda v: v + 1, rasp.tokens).label == x.label  # the same computation
    assert rasp.Map(lambda v: v + 2, rasp.tokens).label != x.label
    assert rasp.numerical(x).label != x.label


class Adder:
    """A callable object: what it computes is in its state."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, x: int) -> int:
        return x + self.n


def _both(first: rasp.SOp, second: rasp.SOp) -> rasp.SOp:
    """One program reading both: a merged label would compute one of them twice."""
    return rasp.SequenceMap(lambda a, b: (a, b), first, second)


def test_partials_of_different_arguments_get_different_labels() -> None:
    one = rasp.Map(functools.partial(operator.add, 1), rasp.indices)
    two = rasp.Map(functools.partial(operator.add, 2), rasp.indices)
    assert one.label != two.label
    assert one.label == rasp.Map(functools.partial(operator.add, 1), rasp.indices).label
    program = _both(one, two)
    assert compile_rasp(program, {"a"}, 3).run("aaa") == [(1, 2), (2, 3), (3, 4)]


def test_two_instances_of_a_callable_class_get_different_labels() -> None:
    one, two = rasp.Map(Adder(1), rasp.indices), rasp.Map(Adder(2), rasp.indices)
    assert one.label != two.label and one.label == rasp.Map(Adder(1), rasp.indices).label
    assert compile_rasp(_both(one, two), {"a"}, 2).run("aa") == [(1, 2), (2, 3)]


def test_one_lambda_in_a_def_called_with_different_constants_gets_two_labels() -> None:
    """The lambda a .rasp def builds closes over its argument's value, so two calls are two
    SOps (they once shared a label, and compile_rasp refused the program)."""
    program = parse(
        "def shifted(s, c) { return s + c; }\n"
        "def scaled(s, c) { return map(lambda x: x * c, s); }\n"
        "both = zip(lambda a, b: (a, b), shifted(indices, 1), scaled(indices, 2));\n"
        "again = zip(lambda a, b: (a, b), shifted(indices, 3), scaled(indices, 4));\n"
        "result = zip(lambda a, b: a + b, both, again);"
    ).output
    labels = [sop.label for sop in program.children]
    assert len(set(labels)) == 2
    assert compile_rasp(program, {"a"}, 2).run("aa") == [(1, 0, 3, 0), (2, 2, 4, 4)]


def test_globals_a_function_reads_are_part_of_its_label() -> None:
    scope_a, scope_b = {"K": 1}, {"K": 2}
    exec("def f(x):\n    return x + K", scope_a)
    exec("def f(x):\n    return x + K", scope_b)
    assert rasp.Map(scope_a["f"], rasp.tokens).label != rasp.Map(scope_b["f"], rasp.tokens).label


def test_labels_see_bound_methods_keyword_defaults_arrays_and_cycles() -> None:
    def label(f) -> str:
        return rasp.Map(f, rasp.tokens).label

    assert label({"a": 1}.get) != label({"a": 2}.get)
    assert label(lambda x, *, k=1: x + k) != label(lambda x, *, k=2: x + k)
    one, two = np.zeros(2000), np.zeros(2000)
    two[1000] = 1  # the same truncated repr
    assert label(functools.partial(np.dot, one)) != label(functools.partial(np.dot, two))

    class Loop:
        def __init__(self) -> None:
            self.me = self

        def __call__(self, x):
            return x

    assert label(Loop()) == label(Loop())


LABELS = """
import functools, operator
from rasp import rasp, library
print(rasp.Map(lambda v: v + 1, rasp.tokens).label, library.make_sort_unique(
    rasp.tokens, rasp.tokens).children[0].label,
    rasp.Map(functools.partial(operator.add, 1), rasp.tokens).label,
    rasp.Map(lambda x: [y for y in x], rasp.tokens).label)
"""


def test_labels_do_not_depend_on_what_the_process_built_before() -> None:
    """tracr numbers unnamed expressions from a process-wide counter; ours hash structure."""
    first = subprocess.run([sys.executable, "-c", LABELS], capture_output=True, text=True)
    busy = "from rasp import rasp\n[rasp.Map(abs, rasp.tokens) for _ in range(50)]\n" + LABELS
    second = subprocess.run([sys.executable, "-c", busy], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout and first.stdout.strip()


def test_a_failing_function_names_the_expression() -> None:
    broken = rasp.Map(lambda v: 1 / v, rasp.numerical(rasp.tokens)).named("inverse")
    with pytest.raises(EvaluationError, match="inverse"):
        broken([1, 0])


def test_categorical_aggregate_of_several_values_is_refused() -> None:
    everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)
    with pytest.raises(EvaluationError, match="at most one value"):
        rasp.Aggregate(everything, rasp.tokens)("ab")


def test_constructors_check_their_arguments() -> None:
    with pytest.raises(TypeError, match="SOp"):
        rasp.Map(lambda v: v, "tokens")
    with pytest.raises(TypeError, match="Selector"):
        rasp.Aggregate(rasp.tokens, rasp.tokens)


TRACR_PROGRAM = """
from tracr.rasp import rasp
from tracr.compiler import compiling, lib


def make_length():
    all_true_selector = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)
    return rasp.SelectorWidth(all_true_selector)


length = make_length()
model = compiling.compile_rasp_to_model(length, vocab={1, 2, 3}, max_seq_len=5,
                                        compiler_bos="BOS")
out = model.apply(["BOS", 1, 2, 3]).decoded
frac = lib.make_frac_prevs(rasp.tokens == 1)
"""


def test_a_tracr_program_ports_by_changing_its_imports() -> None:
    """tracr's README example, with `tracr.` imports pointed at ours."""
    source = TRACR_PROGRAM.replace("from tracr.rasp import", "from rasp import")
    source = source.replace("from tracr.compiler import", "from rasp.compiler import")
    namespace: dict = {}
    exec(compile(source, "tracr_example", "exec"), namespace)
    assert namespace["out"] == ["BOS", 3, 3, 3]
    assert namespace["frac"]([1, 2, 1]) == [True, 0.5, 2 / 3]


def test_selector_or_is_not_a_selector_and() -> None:
    """A match or isinstance check on SelectorAnd must not take an or for an and."""
    assert not issubclass(rasp.SelectorOr, rasp.SelectorAnd)
    a = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.EQ)
    b = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LT)
    both, either = a & b, a | b
    assert isinstance(both, rasp.SelectorAnd) and not isinstance(either, rasp.SelectorAnd)
    width_and = rasp.SelectorWidth(both)([0, 1, 2])
    width_or = rasp.SelectorWidth(either)([0, 1, 2])
    assert width_and == [0, 0, 0] and width_or == [1, 2, 3]


def test_a_none_query_or_key_is_refused_as_tracr_refuses_it() -> None:
    """An Aggregate that selects nothing is None (tracr's default); a selector comparing it
    raises, naming the selector, instead of counting matches against None."""
    prev = rasp.Aggregate(
        rasp.Select(rasp.indices, rasp.indices - 1, rasp.Comparison.EQ), rasp.tokens
    )
    as_query = rasp.SelectorWidth(rasp.Select(rasp.tokens, prev, rasp.Comparison.EQ))
    as_key = rasp.SelectorWidth(rasp.Select(prev, rasp.tokens, rasp.Comparison.EQ))
    with pytest.raises(EvaluationError, match="a query is None"):
        as_query(list("abca"))
    with pytest.raises(EvaluationError, match="a key is None"):
        as_key(list("abca"))
