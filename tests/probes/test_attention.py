"""Per-head summaries of one prompt's patterns: known patterns give known scores, and the
prompt's induction score equals the definition computed position by position."""

from __future__ import annotations

import math

import pytest
import torch

import workbench
from probes.attention import pattern_summaries
from workbench import names
from workbench.errors import InputError


def one_hot_rows(targets: list[int], n: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(targets), n).float()


def test_known_patterns_give_known_scores() -> None:
    n = 6
    tokens = [0, 1, 2, 1, 2, 1]  # token 1 at 1, 3, 5; token 2 at 2, 4
    first = one_hot_rows([0] * n, n)
    previous = one_hot_rows([0, 0, 1, 2, 3, 4], n)
    # induction: query 3 (token 1, earlier at 1) -> 2; query 4 (2, earlier at 2) -> 3;
    # query 5 (1, earlier at 1 and 3) -> 4
    induction = one_hot_rows([0, 0, 0, 2, 3, 4], n)
    uniform = torch.ones(n, n).tril() / torch.arange(1, n + 1)[:, None]
    s = pattern_summaries(torch.stack([first, previous, induction, uniform])[None], tokens)
    v = {k: x[0].tolist() for k, x in s.values.items()}
    assert v["first_token"][0] == 1 and v["max_weight"][:3] == [1, 1, 1]
    assert v["previous_token"][1] == 1 and v["previous_token"][0] == pytest.approx(1 / 5)
    assert v["induction"][2] == 1 and v["induction"][0] == 0
    expected = sum(math.log(k) for k in range(2, n + 1)) / (n - 1)  # queries 1.. (0: trivial)
    assert v["entropy"][3] == pytest.approx(expected, rel=1e-6) and v["entropy"][0] == 0
    assert not s.signed


def test_the_induction_score_equals_its_definition_on_a_model() -> None:
    model = workbench.open_checkpoint("induction-2l").model
    tokens = [0, *torch.randperm(30, generator=torch.Generator().manual_seed(0))[:9].add(3)]
    tokens = tokens + tokens[1:]  # BOS r r: the second copy's queries have an earlier copy
    _, cache = model.run_with_cache(torch.tensor([tokens]))
    patterns = torch.stack([cache[names.attn_pattern(i)][0] for i in range(2)])
    got = pattern_summaries(patterns, [int(t) for t in tokens]).values["induction"]
    half = 9
    for layer in range(2):
        for head in range(patterns.shape[1]):
            p = patterns[layer, head]
            direct = sum(float(p[q, q - half + 1]) for q in range(1 + half, 1 + 2 * half)) / half
            assert float(got[layer, head]) == pytest.approx(direct, abs=1e-6)
    assert float(got[1].max()) > 0.5  # the model's induction heads show


def test_signed_mixing_matrices_and_bad_shapes() -> None:
    signed = torch.tensor([[[[1.0, 0.0], [-0.5, 1.5]]]])
    s = pattern_summaries(signed, [0, 1])
    assert s.signed and float(s.values["max_weight"]) == pytest.approx(1.5)  # query 1
    no_repeats = pattern_summaries(torch.eye(3)[None, None], [0, 1, 2]).values["induction"]
    assert torch.isnan(no_repeats).all()
    three = pattern_summaries(torch.eye(3)[None, None], [7, 7, 7]).values["induction"]
    assert float(three) == 0  # attending to itself is not reading an earlier copy's successor
    padded = torch.tensor([[[[1.0, 0, 0], [0.5, 0.5, 0], [0, 0, 0]]]])  # row 2: padding
    s = pattern_summaries(padded, [0, 1, 2]).values
    assert float(s["first_token"]) == 0.5 and float(s["entropy"]) == pytest.approx(math.log(2))
    with pytest.raises(InputError, match="patterns must be"):
        pattern_summaries(torch.zeros(2, 3, 3), [0, 1, 2])
    with pytest.raises(InputError, match="2 tokens for patterns over 3"):
        pattern_summaries(torch.zeros(1, 1, 3, 3), [0, 1])
