"""Importing a program in the format of the authors' shipped programs: the importer reads
the file as text; run as written (as their files run) it gives the same tags as the imported
program with their decompiler's rule for a query's own position, and the imported program
freezes into a workbench model equal to it. (Their 14 real programs are imported and scored
by benchmarks/ltp_shipped.py against a clone of their repository; docs/benchmarks.md.)"""

from __future__ import annotations

import itertools
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

from rasp.learned.freeze import freeze
from rasp.learned.shipped import FormatError, import_program, parse, their_closest

HERE = Path(__file__).parent / "shipped_format"
WORDS = ("<pad>", "a", "b", "<s>")
TAGS = ("<pad>", "1", "2", "3")


def every_input(n_ctx: int) -> np.ndarray:
    rows = [("<s>", *rest) for n in range(n_ctx) for rest in itertools.product("ab", repeat=n)]
    out = np.zeros((len(rows), n_ctx), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = [WORDS.index(w) for w in row]
    return out


def test_imported_program_equals_the_file_run_as_written() -> None:
    shipped = parse(HERE / "tiny.py")
    assert [h[0] for h in shipped.heads] == ["attn_0_0", "num_attn_0_0"]
    assert shipped.mlps[0][1] == ("tokens", "attn_0_0_outputs")
    program = import_program(
        shipped, words=WORDS, tags=TAGS, d_var=6, n_ctx=6, autoregressive=False
    )
    run = runpy.run_path(str(HERE / "tiny.py"))["run"]
    tokens = every_input(6)
    theirs = program.run(tokens, their_closest)
    ours = program.run(tokens)
    for row, want in zip(tokens, theirs, strict=True):
        words = [WORDS[i] for i in row if i]
        assert run(words) == [TAGS[i] for i in want[: len(words)]], words
    # the two rules for a query's own position pick other keys here ("a" matches itself)
    real = tokens != 0
    attended = program.variables(tokens)[0]["attn_0_0"]
    attended_theirs = program.variables(tokens, their_closest)[0]["attn_0_0"]
    assert (attended != attended_theirs)[real].any()

    frozen = freeze(program, len(WORDS), len(TAGS))
    x = torch.as_tensor(tokens)
    with torch.no_grad():
        out = frozen(x, attention_mask=(x != 0).long()).argmax(-1).numpy()
    np.testing.assert_array_equal(out[real], ours[real])


def test_their_rule_for_a_query_own_position() -> None:
    matches = np.zeros((1, 6, 6), dtype=bool)
    matches[0, 3, [3, 5]] = True  # 2 matches: self ranks 2, key 5 is at distance 2: self (first)
    matches[0, 2, [2, 0, 5]] = True  # 3 matches: self ranks 3; key 0 at 2 wins
    assert their_closest(matches)[0, 3] == 3
    assert their_closest(matches)[0, 2] == 0


def test_a_file_in_another_format_is_refused_with_its_name(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def run(tokens):\n    def predicate_0_0(q, k):\n        if q: return 1\n")
    with pytest.raises(FormatError, match=r"bad.py: predicate_0_0: expected `if VALUE in"):
        parse(bad)
    (tmp_path / "none.py").write_text("x = 1\n")
    with pytest.raises(FormatError, match="none.py is not a program in the format"):
        parse(tmp_path / "none.py")
