"""One table of RASP programs with known answers, checked three ways (the interpreter, the
compiler's numpy intermediate form, the compiled model's weights). The answers come from
tracr's library docstrings and the RASP paper, not from running our code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rasp import library as L
from rasp import rasp


@dataclass(frozen=True)
class Case:
    name: str
    program: Callable[[], rasp.SOp]
    vocab: tuple[Any, ...]
    max_seq_len: int
    examples: tuple[tuple[tuple[Any, ...], tuple[Any, ...]], ...]  # input -> output
    causal_ok: bool = False  # the same answers under causal evaluation


def _ex(*pairs: tuple[str | list, list]) -> tuple:
    return tuple((tuple(xs), tuple(ys)) for xs, ys in pairs)


CASES = [
    Case("length", L.make_length, ("a", "b", "c", "d"), 5, _ex(("abcd", [4, 4, 4, 4]))),
    Case("reverse", lambda: L.make_reverse(rasp.tokens), ("a", "b", "c", "d"), 5,
         _ex(("abc", ["c", "b", "a"]), ("abcd", ["d", "c", "b", "a"]))),
    Case("hist", L.make_hist, ("a", "b", "c", "d"), 5,
         _ex(("abac", [2, 1, 2, 1]), ("aaa", [3, 3, 3]))),
    Case("sort_unique", lambda: L.make_sort_unique(rasp.tokens, rasp.tokens), (1, 2, 3, 4), 4,
         _ex(([2, 4, 3, 1], [1, 2, 3, 4]))),
    Case("sort", lambda: L.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1),
         (1, 2, 3, 4), 4, _ex(([2, 4, 3, 1], [1, 2, 3, 4]), ([2, 4, 1, 2], [1, 2, 2, 4]))),
    Case("sort_freq", lambda: L.make_sort_freq(5), (1, 2, 4), 4,
         _ex(([2, 4, 2, 1], [2, 2, 4, 1]))),
    Case("frac_prevs", lambda: L.make_frac_prevs(rasp.tokens == "l"), ("h", "e", "l", "o"), 5,
         _ex(("hello", [0, 0, 1 / 3, 1 / 2, 2 / 5])), causal_ok=True),
    Case("pair_balance", lambda: L.make_pair_balance(rasp.tokens, "(", ")"), ("(", ")"), 5,
         _ex(("(()", [1, 1, 1 / 3]), ("())", [1, 0, -1 / 3])), causal_ok=True),
    Case("shuffle_dyck", lambda: L.make_shuffle_dyck(["()"]), ("(", ")"), 5,
         _ex(("(())", [True] * 4), ("())(", [False] * 4), ("(()", [False] * 3))),
    Case("shuffle_dyck2", L.make_shuffle_dyck2, ("(", ")", "{", "}"), 4,
         _ex(("({)}", [True] * 4), ("({)", [False] * 3), ("}{", [False] * 2))),
    Case("shift_by", lambda: L.shift_by(1, rasp.tokens), ("a", "b", "c"), 5,
         _ex(("abc", [None, "a", "b"])), causal_ok=True),
    Case("detect_pattern", lambda: L.detect_pattern(rasp.tokens, "abc"), ("a", "b", "c"), 6,
         _ex(("abcabc", [None, None, True, False, False, True])), causal_ok=True),
    Case("count_less_freq", lambda: L.make_count_less_freq(2), ("a", "b", "c", "d"), 6,
         _ex(("aaabbc", [3] * 6), ("aacbbc", [6] * 6))),
    Case("count", lambda: L.make_count(rasp.tokens, "a"), ("a", "b", "c"), 6,
         _ex(("aaabbc", [3] * 6), ("cabc", [1] * 4))),
    Case("nary_sequencemap",
         lambda: L.make_nary_sequencemap(lambda x, y, z: x + y - z, rasp.tokens, rasp.tokens,
                                         rasp.indices), (1, 2, 3), 4,
         _ex(([1, 2, 3], [2, 3, 4])), causal_ok=True),
    Case("double_hist", L.make_double_hist, ("a", "b", "c", "d"), 7,
         _ex(("aaabbcd", [1, 1, 1, 1, 1, 2, 2]), ("abab", [2, 2, 2, 2]))),
    Case("most_freq", lambda: L.make_most_freq(6), ("a", "b", "c"), 6,
         _ex(("abbccc", ["c", "b", "a", None, None, None]))),
]  # fmt: skip


def chain_program(n: int) -> str:
    """n statements, each reading the one before (and one further back): a program as deep as
    it is long. Every fourth adds 1 and the others keep the value, so it ends at indices +
    (n - 1) // 4."""
    lines = ["x0 = indices;"]
    kinds = [
        "x{i} = x{j} + 1;",
        "x{i} = aggregate(select(indices, indices, ==), x{j});",
        "x{i} = x{j} if indices >= 0 else 0;",
        "x{i} = zip(lambda a, b: a + 0 * b, x{j}, x{k});",
    ]
    lines += [kinds[i % 4].format(i=i, j=i - 1, k=i // 2) for i in range(1, n)]
    return "\n".join(lines) + "\n"
