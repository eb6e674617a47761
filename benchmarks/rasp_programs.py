"""The programs both RASP compilers are timed on (benchmarks/rasp_compile.py and
benchmarks/rasp_tracr.py): library function name, its arguments, vocabulary and max_seq_len.
Plain data, so that the tracr side (its own environment) reads the same table."""

from __future__ import annotations

# name: (library function, positional arguments as a source string, vocab, max_seq_len)
PROGRAMS: dict[str, tuple[str, str, list, int]] = {
    "length": ("make_length", "", ["a", "b", "c"], 5),
    "reverse": ("make_reverse", "rasp.tokens", ["a", "b", "c"], 5),
    "hist": ("make_hist", "", ["a", "b", "c"], 5),
    "sort_unique": ("make_sort_unique", "rasp.tokens, rasp.tokens", [1, 2, 3, 4], 5),
    "sort": ("make_sort", "rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1", [1, 2, 3], 5),
    "sort_freq": ("make_sort_freq", "max_seq_len=5", ["a", "b", "c"], 5),
    "frac_prevs": ("make_frac_prevs", "rasp.tokens == 'a'", ["a", "b", "c"], 5),
    "pair_balance": ("make_pair_balance", "rasp.tokens, '(', ')'", ["(", ")"], 5),
    "shuffle_dyck": ("make_shuffle_dyck", "['()']", ["(", ")"], 5),
    "shuffle_dyck2": ("make_shuffle_dyck2", "", ["(", ")", "{", "}"], 4),
    "shift_by": ("shift_by", "2, rasp.tokens", ["a", "b", "c"], 5),
    "detect_pattern": ("detect_pattern", "rasp.tokens, 'abc'", ["a", "b", "c"], 5),
    "count_less_freq": ("make_count_less_freq", "2", ["a", "b", "c"], 5),
    "count": ("make_count", "rasp.tokens, 'a'", ["a", "b", "c"], 5),
    "nary_sequencemap": (
        "make_nary_sequencemap",
        "lambda x, y, z: x + y - z, rasp.tokens, rasp.tokens, rasp.indices",
        [1, 2, 3],
        4,
    ),
}
