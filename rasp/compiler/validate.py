"""Stage 7: the compiled model against the interpreter. Every input up to `max_seq_len` over
the vocabulary when there are at most `budget` of them, else `budget` inputs drawn with a
seeded generator (every length equally often). Any difference raises `ValidationError`
naming the input, the interpreter's answer and the model's, so a wrong model is never
handed back. A numerical None (nothing selected) reads as 0, the model's encoding of it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rasp.compiler.errors import ValidationError

TOLERANCE = 1e-3  # numerical outputs


def inputs(vocab: Sequence[Any], max_seq_len: int, budget: int, seed: int) -> Iterator[list]:
    total = sum(len(vocab) ** n for n in range(1, max_seq_len + 1))
    if total <= budget:
        for n in range(1, max_seq_len + 1):
            yield from (list(xs) for xs in itertools.product(vocab, repeat=n))
        return
    rng = random.Random(seed)
    for i in range(budget):
        n = 1 + i % max_seq_len
        yield [rng.choice(list(vocab)) for _ in range(n)]


def check(
    expected: Callable[[list], list],
    got: Callable[[list[list]], list[list]],
    cases: list[list],
    numerical: bool,
    what: str,
) -> None:
    """Compare `got` (batched by length) with `expected` on every case."""
    by_length: dict[int, list[list]] = {}
    for xs in cases:
        by_length.setdefault(len(xs), []).append(xs)
    for group in by_length.values():
        for xs, answer in zip(group, got(group), strict=True):
            want = expected(xs)
            if not _same(want, answer, numerical):
                raise ValidationError(
                    f"{what} disagrees with the interpreter on input {xs!r}: the interpreter "
                    f"gives {want!r}, the model {answer!r}; the compiler refuses to hand back "
                    "a wrong model (report the program: this is a compiler bug)"
                )


def _same(want: list, got: list, numerical: bool) -> bool:
    if not numerical:
        return list(want) == list(got)
    return all(
        abs((0.0 if w is None else float(w)) - g) <= TOLERANCE
        for w, g in zip(want, got, strict=True)
    )
