"""Selectors and head operations as text in the language's own syntax (`rasp.describe`), and
the text the parser reads back into the same selector."""

from __future__ import annotations

from rasp import rasp
from rasp.describe import operation_text, selector_text
from rasp.parser import expression

TOK, IDX = rasp.tokens, rasp.indices
EQ, LT = rasp.Comparison.EQ, rasp.Comparison.LT


def _is_odd(key, query) -> bool:
    return key % 2 == 1


def test_selectors_read_as_written() -> None:
    same, before = rasp.Select(TOK, TOK, EQ), rasp.Select(IDX, IDX, LT)
    assert selector_text(same) == "select(tokens, tokens, ==)"
    assert selector_text(~same) == "not select(tokens, tokens, ==)"
    assert selector_text(same & before & same) == (
        "select(tokens, tokens, ==) and select(indices, indices, <) and select(tokens, tokens, ==)"
    )
    assert selector_text(same | (same & before)) == (
        "select(tokens, tokens, ==) or (select(tokens, tokens, ==) and select(indices, indices, <))"
    )
    assert selector_text(~(same & before)) == (
        "not (select(tokens, tokens, ==) and select(indices, indices, <))"
    )
    assert selector_text(rasp.Select(IDX, IDX, _is_odd)) == "select(indices, indices, _is_odd)"
    assert (
        selector_text(rasp.Select(IDX, IDX, lambda k, q: k > q))
        == "select(indices, indices, <lambda>)"
    )


def test_operations_name_their_sop_and_encoding() -> None:
    flags = rasp.numerical(rasp.Map(lambda t: 1 if t == "a" else 0, TOK).named("is_a"))
    share = rasp.numerical(rasp.Aggregate(rasp.Select(IDX, IDX, rasp.Comparison.LEQ), flags, 0))
    assert operation_text(share.named("frac")) == (  # 0 is the language's default
        "frac = numerical aggregate(select(indices, indices, <=), is_a)"
    )
    tracr = rasp.Aggregate(rasp.Select(IDX, IDX, rasp.Comparison.LT), TOK).named("prev")
    assert operation_text(tracr) == "prev = aggregate(select(indices, indices, <), tokens, None)"
    width = rasp.SelectorWidth(rasp.Select(TOK, TOK, EQ)).named("hist")
    assert operation_text(width) == "hist = selector_width(select(tokens, tokens, ==))"


def test_the_text_parses_back_to_the_same_selector() -> None:
    source = (
        "not select(tokens, tokens, <) or "
        "(select(tokens, tokens, ==) and select(indices, indices, <))"
    )
    selector = expression(source)
    assert selector_text(selector) == source
    again = expression(selector_text(selector))
    for xs in ("abcab", "ba", "ccca"):
        assert rasp.evaluate(again, list(xs)) == rasp.evaluate(selector, list(xs))
