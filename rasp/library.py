"""A library of RASP programs: tracr's `lib` (same names, arguments and answers) and the RASP
paper's examples. Each function returns the program's output SOp.

    from rasp import library, rasp
    library.make_reverse(rasp.tokens)("abc")  # ['c', 'b', 'a']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rasp import rasp
from rasp.rasp import Comparison, Select, SelectorWidth

__all__ = [
    "detect_pattern",
    "make_count",
    "make_count_less_freq",
    "make_double_hist",
    "make_first_occurrence",
    "make_frac_prevs",
    "make_hist",
    "make_length",
    "make_most_freq",
    "make_nary_sequencemap",
    "make_pair_balance",
    "make_reverse",
    "make_shuffle_dyck",
    "make_shuffle_dyck2",
    "make_sort",
    "make_sort_freq",
    "make_sort_unique",
    "shift_by",
]


def make_length() -> rasp.SOp:
    """The input's length at every position: length()("abcd") == [4, 4, 4, 4]."""
    everything = Select(rasp.tokens, rasp.tokens, Comparison.TRUE).named("all_true_selector")
    return SelectorWidth(everything).named("length")


def make_reverse(sop: rasp.SOp) -> rasp.SOp:
    """sop in reverse order: reverse(tokens)("abc") == ['c', 'b', 'a']."""
    opposite = (make_length() - rasp.indices).named("opp_idx")
    opposite = (opposite - 1).named("opp_idx-1")
    flip = Select(rasp.indices, opposite, Comparison.EQ).named("reverse_selector")
    return rasp.Aggregate(flip, sop).named("reverse")


def make_hist() -> rasp.SOp:
    """How often each token occurs: hist()("abac") == [2, 1, 2, 1]."""
    same = Select(rasp.tokens, rasp.tokens, Comparison.EQ).named("same_tok")
    return SelectorWidth(same).named("hist")


def make_sort_unique(vals: rasp.SOp, keys: rasp.SOp) -> rasp.SOp:
    """vals ordered by keys, which must be unique: each value moves to the position equal to
    the number of smaller keys."""
    smaller = Select(keys, keys, Comparison.LT).named("smaller")
    target = SelectorWidth(smaller).named("target_pos")
    place = Select(target, rasp.indices, Comparison.EQ).named("sel_new")
    return rasp.Aggregate(place, vals).named("sort")


def make_sort(vals: rasp.SOp, keys: rasp.SOp, *, max_seq_len: int, min_key: float) -> rasp.SOp:
    """vals ordered by numeric keys, ties kept in input order: each key gets a share of
    min_key * index / max_seq_len added, which makes keys unique without reordering them."""
    unique = rasp.SequenceMap(lambda x, i: x + min_key * i / max_seq_len, keys, rasp.indices)
    return make_sort_unique(vals, unique.named("keys"))


def make_sort_freq(max_seq_len: int) -> rasp.SOp:
    """Tokens ordered by how often they occur, most frequent first (ties in input order)."""
    hist = (-1 * make_hist()).named("neg_hist")
    return make_sort(rasp.tokens, hist, max_seq_len=max_seq_len, min_key=1).named("sort_freq")


def make_frac_prevs(bools: rasp.SOp) -> rasp.SOp:
    """The fraction of positions up to each one where `bools` holds (numerical)."""
    bools = rasp.numerical(bools)
    prevs = Select(rasp.indices, rasp.indices, Comparison.LEQ).named("prevs")
    return rasp.numerical(rasp.Aggregate(prevs, bools, default=0)).named("frac_prevs")


def make_pair_balance(sop: rasp.SOp, open_token: str, close_token: str) -> rasp.SOp:
    """The fraction of opens minus the fraction of closes up to each position (numerical)."""
    opens = rasp.numerical(make_frac_prevs(sop == open_token)).named(f"frac_{open_token}")
    closes = rasp.numerical(make_frac_prevs(sop == close_token)).named(f"frac_{close_token}")
    balance = rasp.LinearSequenceMap(opens, closes, 1, -1)
    return rasp.numerical(balance).named(f"pair_balance_{open_token}{close_token}")


def make_shuffle_dyck(pairs: Sequence[str]) -> rasp.SOp:
    """True at the last position when the input is a shuffle of balanced bracket sequences,
    one per pair ("()", "{}"): no prefix closes more than it opened, and every bracket
    type ends balanced (Bhattamishra et al. 2020's Shuffle-Dyck)."""
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ValueError(f"pairs must be two-character strings like '()', got {pairs!r}")
    balances = [make_pair_balance(rasp.tokens, pair[0], pair[1]) for pair in pairs]
    negative = balances[0] < 0
    for balance in balances[1:]:
        negative = negative | (balance < 0)
    negative = rasp.numerical(rasp.Map(lambda x: x, negative)).named("any_negative")
    everything = Select(rasp.indices, rasp.indices, Comparison.TRUE).named("select_all")
    has_negative = rasp.numerical(rasp.Aggregate(everything, negative, default=0))
    has_negative = has_negative.named("has_neg")
    zero = balances[0] == 0
    for balance in balances[1:]:
        zero = zero & (balance == 0)
    last = Select(rasp.indices, make_length() - 1, Comparison.EQ).named("select_last")
    ends_balanced = rasp.Aggregate(last, zero.named("all_zero")).named("last_zero")
    return (ends_balanced & ~has_negative).named("shuffle_dyck")


def make_shuffle_dyck2() -> rasp.SOp:
    return make_shuffle_dyck(["()", "{}"]).named("shuffle_dyck2")


def shift_by(offset: int, /, sop: rasp.SOp) -> rasp.SOp:
    """sop moved `offset` positions later, None in the first `offset` positions."""
    back = Select(rasp.indices, rasp.indices, lambda k, q: q == k + offset)
    return rasp.Aggregate(back.named(f"select_shift_{offset}"), sop).named(f"shift_by({offset})")


def detect_pattern(sop: rasp.SOp, pattern: Sequence[rasp.Value]) -> rasp.SOp:
    """True where `pattern` ends in sop, None in the first len(pattern) - 1 positions."""
    if len(pattern) < 1:
        raise ValueError(f"pattern must hold at least one element, got {pattern!r}")
    found = sop == pattern[-1]
    for back, element in enumerate(reversed(pattern[:-1]), start=1):
        found = shift_by(back, sop == element) & found
    return found.named(f"detect_pattern({''.join(map(str, pattern))})")


def make_count_less_freq(n: int) -> rasp.SOp:
    """At every position: how many positions hold a token that occurs at most n times."""
    hist = make_hist()
    rare = Select(hist, hist, lambda key, query: key <= n).named("select_less")
    return SelectorWidth(rare).named("count_less_freq")


def make_count(sop: rasp.SOp, token: rasp.Value) -> rasp.SOp:
    """How often `token` occurs in sop, at every position."""
    return SelectorWidth(Select(sop, sop, lambda key, query: key == token)).named(f"count_{token}")


def make_nary_sequencemap(f: Callable[..., rasp.Value], *sops: rasp.SOp) -> rasp.SOp:
    """f of n SOps elementwise, built from binary SequenceMaps over growing tuples (each
    tuple is categorical, so the compiled width grows with the product of value sets)."""
    if not sops:
        raise ValueError("make_nary_sequencemap needs at least one SOp")
    values, *rest = sops
    for sop in rest:
        values = rasp.SequenceMap(
            lambda x, y: (*x, y) if isinstance(x, tuple) else (x, y), values, sop
        )
    return rasp.Map(lambda args: f(*args), values)


# ----- the RASP paper's programs (Weiss et al. 2021) -------------------------------------


def make_double_hist() -> rasp.SOp:
    """For each token, how many distinct tokens occur as often as it does:
    double_hist()("aaabbcd") == [1, 1, 1, 1, 1, 2, 2] ('a' 3 times alone; 'c', 'd' once)."""
    hist = make_hist()
    same_count = Select(hist, hist, Comparison.EQ).named("same_count")
    first = make_first_occurrence()
    is_first = Select(first, first, lambda key, query: key).named("select_first")
    return SelectorWidth(same_count & is_first).named("double_hist")


def make_first_occurrence() -> rasp.SOp:
    """True at the first occurrence of each token."""
    earlier_same = Select(rasp.tokens, rasp.tokens, Comparison.EQ) & Select(
        rasp.indices, rasp.indices, Comparison.LT
    )
    earlier = SelectorWidth(earlier_same.named("earlier_same")).named("earlier_count")
    return (earlier == 0).named("first_occurrence")


def make_most_freq(max_seq_len: int) -> rasp.SOp:
    """The distinct tokens ordered by frequency, most frequent first (ties in order of first
    occurrence), then None: most_freq(8)("abbccc") == ['c', 'b', 'a', None, None, None]."""
    first = make_first_occurrence()
    hist = make_hist()
    key = rasp.SequenceMap(lambda count, i: -count + i / max_seq_len, hist, rasp.indices).named(
        "freq_key"
    )
    # only first occurrences take part: the others never count as smaller
    smaller = Select(key, key, Comparison.LT) & Select(first, first, lambda k, q: k)
    target = SelectorWidth(smaller.named("smaller_first")).named("freq_rank")
    place = Select(target, rasp.indices, Comparison.EQ) & Select(first, first, lambda k, q: k)
    return rasp.Aggregate(place.named("place_first"), rasp.tokens).named("most_freq")
