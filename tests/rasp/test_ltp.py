"""The Transformer Programs primitives (`rasp.ltp`): their meaning in the interpreter, and
compiled models that equal the interpreter on every input the validator tries plus the
hand-checked cases here."""

from __future__ import annotations

import itertools

import pytest

from rasp import ltp, rasp
from rasp.compiler.compiler import CompiledProgram, compile_rasp
from rasp.compiler.errors import UnsupportedError

ABC = {"a", "b", "c"}


def test_select_closest_keeps_the_nearest_match_left_first_self_last_else_key_0() -> None:
    same = ltp.SelectClosest(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    chosen = [row.index(True) for row in rasp.evaluate(same, list("abab"))]
    assert chosen == [2, 3, 0, 1]  # each query's nearest other equal token
    chosen = [row.index(True) for row in rasp.evaluate(same, list("abca"))]
    assert chosen == [3, 1, 2, 0]  # b and c match only themselves; the a's each other
    # at equal distance the key to the left wins
    wanted = ltp.Match({"c": "a"})
    around = ltp.SelectClosest(rasp.tokens, rasp.tokens, wanted)
    assert [row.index(True) for row in rasp.evaluate(around, list("acab"))] == [0, 0, 0, 0]
    assert rasp.evaluate(around, list("bacab"))[2] == [False, True, False, False, False]
    # nothing matches: key 0; causal: only keys up to the query count
    late = ltp.SelectClosest(rasp.tokens, rasp.tokens, ltp.Match({"a": "b"}))
    assert [row.index(True) for row in rasp.evaluate(late, list("aab"))] == [2, 2, 0]
    causal = rasp.evaluate(late, list("aab"), causal=True)
    assert [row.index(True) for row in causal] == [0, 0, 0]


def test_closest_matches_the_learned_programs_rule() -> None:
    """`ltp.closest` is `rasp.learned.program.closest_key` on every match pattern of 5 keys."""
    import numpy as np

    from rasp.learned.program import closest_key

    for bits in itertools.product([False, True], repeat=5):
        matches = np.array([[list(bits)] * 5])
        rows = ltp.closest(matches[0].tolist())
        assert [row.index(True) for row in rows] == closest_key(matches)[0].tolist()


def test_sum_aggregate_sums_and_gives_0_for_nothing() -> None:
    ones = rasp.numerical(rasp.Map(lambda t: 2 if t == "a" else 1, rasp.tokens))
    before = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LT)
    total = rasp.numerical(ltp.SumAggregate(before, ones))
    assert rasp.evaluate(total, list("abac")) == [0, 2, 3, 5]
    assert rasp.evaluate(total, list("abac"), causal=True) == [0, 2, 3, 5]
    after = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.GT)
    assert rasp.evaluate(ltp.SumAggregate(after, ones), list("abac")) == [4, 3, 1, 0]


def test_readout_sums_scores_and_takes_the_first_largest() -> None:
    count = rasp.numerical(
        rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ))
    )
    scores = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.0, 0.0, 0.0]}
    out = ltp.Readout([rasp.tokens, count], [scores, [0.0, 0.0, 0.75]], ["x", "y", "z"])
    # a: 1 + z 0.75 n; b: y 1 vs z 0.75 n; c: z 0.75 n > 0 (ties go to the first)
    assert rasp.evaluate(out, list("abc")) == ["x", "y", "z"]
    assert rasp.evaluate(out, list("aab")) == ["z", "z", "y"]  # a: 1 vs 1.5
    with pytest.raises(ValueError, match="one row of 3"):
        ltp.Readout([count], [[1.0]], ["x", "y", "z"])
    with pytest.raises(ValueError, match="no scores for tokens = 'c'"):
        rasp.evaluate(ltp.Readout([rasp.tokens], [{"a": [1.0]}], ["x"]), list("ac"))


def _compiles_exactly(program: rasp.SOp, causal: bool = False) -> CompiledProgram:
    compiled = compile_rasp(program, ABC, 5, causal=causal, validation_budget=300)
    for length in range(1, 5):  # every input up to length 4 (validation tried length 5 too)
        for xs in itertools.product(sorted(ABC), repeat=length):
            want = rasp.evaluate(program, list(xs), causal=causal)
            got = compiled.run(list(xs))
            assert got == (pytest.approx(want, abs=1e-3) if rasp.is_numerical(program) else want)
    return compiled


@pytest.mark.parametrize("causal", [False, True])
def test_select_closest_compiles(causal: bool) -> None:
    nearest_other = ltp.SelectClosest(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    copied = rasp.Aggregate(nearest_other, rasp.indices).named("copied")
    _compiles_exactly(copied, causal)
    shifted = ltp.Match({"a": "b", "b": "c", "c": "a"})
    keyed = rasp.Aggregate(ltp.SelectClosest(rasp.tokens, rasp.tokens, shifted), rasp.tokens)
    _compiles_exactly(keyed.named("keyed"), causal)


@pytest.mark.parametrize("causal", [False, True])
def test_select_closest_on_positions_compiles_with_one_pair_per_position(causal: bool) -> None:
    """Keys or queries that are `indices` are their own (value, index) pairs: n of them, not
    the n x n of a general zip."""
    mirror = ltp.Match({0: 3, 1: 2, 2: 1, 3: 0})
    reversed_ = rasp.Aggregate(ltp.SelectClosest(rasp.indices, rasp.indices, mirror), rasp.tokens)
    compiled = _compiles_exactly(reversed_.named("reversed"), causal)
    pairs = [x for x in compiled.residual_labels if x.startswith("zip(indices,indices):")]
    assert len(pairs) == 5  # max_seq_len 5
    at_first_b = ltp.Match({"a": 0, "b": 1, "c": 2})
    by_token = rasp.Aggregate(ltp.SelectClosest(rasp.indices, rasp.tokens, at_first_b), rasp.tokens)
    _compiles_exactly(by_token.named("by_token"), causal)
    a_at = ltp.Match({0: "a", 1: "b", 2: "c", 3: "a", 4: "b"})
    by_index = rasp.Aggregate(ltp.SelectClosest(rasp.tokens, rasp.indices, a_at), rasp.indices)
    _compiles_exactly(by_index.named("by_index"), causal)


def test_an_sop_named_indices_is_not_taken_for_the_positions() -> None:
    fake = rasp.Map(lambda t: "abc".index(t), rasp.tokens).named("indices")
    closest = ltp.SelectClosest(fake, rasp.tokens, ltp.Match({"a": 0}))
    with pytest.raises(UnsupportedError, match="both labelled 'indices'"):
        compile_rasp(rasp.Aggregate(closest, rasp.tokens).named("out"), ABC, 3)


@pytest.mark.parametrize("causal", [False, True])
def test_sum_aggregate_and_numerical_lookups_compile(causal: bool) -> None:
    """A count, a sum of counts, a table of two numerical SOps (read through categorical
    copies) and a readout of all of them."""
    same = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    count = rasp.numerical(rasp.SelectorWidth(same)).named("count")
    before = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)
    total = rasp.numerical(ltp.SumAggregate(before, count)).named("total")
    _compiles_exactly(total, causal)
    parity = rasp.SequenceMap(lambda a, b: (a + b) % 3, count, total).named("parity")
    _compiles_exactly(parity, causal)
    out = ltp.Readout(
        [parity, total],
        [
            {0: [1.0, 0.0], 1: [0.0, 1.0], 2: [0.0, 0.0]},
            [0.0, 0.13],
        ],  # never tied with 1: a sum is not exact in float32
        ["x", "y"],
    ).named("out")
    _compiles_exactly(out, causal)


def test_what_the_new_primitives_cannot_compile_is_named() -> None:
    closest = ltp.SelectClosest(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    with pytest.raises(UnsupportedError, match="wide: a SelectClosest selects one key"):
        compile_rasp(rasp.SelectorWidth(closest).named("wide"), ABC, 3)
    ones = rasp.numerical(rasp.Full(1))
    flat = ltp.SumAggregate(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ), ones)
    with pytest.raises(UnsupportedError, match="flat: a SumAggregate compiles as a numerical"):
        compile_rasp(flat.named("flat"), ABC, 3)
    inner = ltp.Readout([rasp.tokens], [{"a": [1.0], "b": [0.0], "c": [0.0]}], [1]).named("r")
    with pytest.raises(UnsupportedError, match="r: a Readout compiles only as the program's"):
        compile_rasp(rasp.Map(lambda x: x, inner), ABC, 3)


def test_heads_read_as_written() -> None:
    """How a compiled head's operation is shown (checkpoints, the CLI, the app)."""
    from rasp.describe import operation_text

    closest = ltp.SelectClosest(rasp.tokens, rasp.indices, ltp.Match({0: "b"}))
    copied = rasp.Aggregate(closest, rasp.tokens).named("copied")
    assert operation_text(copied) == (
        "copied = aggregate(select_closest(tokens, indices, Match), tokens, None)"
    )
    ones = rasp.numerical(rasp.Full(1)).named("ones")
    summed = ltp.SumAggregate(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ), ones)
    assert operation_text(rasp.numerical(summed).named("total")) == (
        "total = numerical aggregate_sum(select(tokens, tokens, ==), ones)"
    )


def test_a_select_closest_inside_and_or_not_is_refused() -> None:
    """It keeps one key per query: under &, | or ~ no single head computes it."""
    closest = ltp.SelectClosest(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    before = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LT)
    for selector in (closest & before, before | closest, ~closest):
        with pytest.raises(UnsupportedError, match="mixed: a SelectClosest is a head's whole"):
            compile_rasp(rasp.Aggregate(selector, rasp.tokens).named("mixed"), ABC, 3)


def test_a_compiled_readouts_ground_truth_reads_every_scored_sop() -> None:
    same = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    count = rasp.numerical(rasp.SelectorWidth(same)).named("count")
    out = ltp.Readout(
        [rasp.tokens, count],
        [{"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [0.0, 0.0]}, [0.0, 0.3]],
        ["x", "y"],
    ).named("out")
    compiled = compile_rasp(out, ABC, 4)
    into_logits = {e.split("->")[0] for e in compiled.ground_truth.edges if "logits" in e}
    assert "embed" in into_logits  # the tokens' scores
    assert any(sender.startswith("m") for sender in into_logits)  # the count's MLP


def test_value_sets_too_large_are_refused_before_they_are_built() -> None:
    from rasp.compiler import values

    many = rasp.numerical(rasp.Map(lambda i: 7**i, rasp.indices))  # distinct sums explode
    wide = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.TRUE)
    total = rasp.numerical(ltp.SumAggregate(wide, many)).named("total")
    with pytest.raises(UnsupportedError, match=f"more than {values.MAX_VALUES:,} possible sums"):
        compile_rasp(total, ABC, 12)
    pairs = rasp.SequenceMap(lambda a, b: a, rasp.indices, rasp.indices).named("pairs")
    with pytest.raises(UnsupportedError, match="pairs: its inputs take 4,000,000 pairs"):
        compile_rasp(pairs, ABC, 2_000)
