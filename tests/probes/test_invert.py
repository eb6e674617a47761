"""SipIt exact inversion and the collision test (Nikolaou et al. 2025): the paper's claims
(100% exact recovery, no collisions) on random-init and trained causal models, exactness
under noise below half the separation margin, ambiguity reported for duplicated embedding
rows, and the cached verifier equal to whole-sequence verification."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import workbench
from probes.invert import collisions, hidden_states, invert
from workbench.api import open_checkpoint
from workbench.cli import cli
from workbench.errors import InputError


def _tokens(model, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.d_vocab, (min(n, model.config.n_ctx),), generator=g)


@pytest.mark.parametrize(
    "preset",
    [
        "gpt2-small-tiny",
        "llama-7b-tiny",
        "pythia-160m-tiny",
        "bloom-560m-tiny",
        "t5-bias-small-tiny",
    ],
)
def test_random_init_models_are_inverted_exactly_at_every_layer(preset: str) -> None:
    model = workbench.build(preset, seed=3, d_vocab=400).eval()  # a vocabulary > one batch
    tokens = _tokens(model, 16)
    for layer in range(model.config.n_layers):
        for site in ("resid_pre", "resid_post"):
            found = invert(model, hidden_states(model, tokens, layer, site), layer=layer, site=site)
            assert found.recovery(tokens) == 1.0, (preset, layer, site)
            assert set(found.status) == {"found"}
            assert max(found.verified) < 400  # the policy, not the exhaustive fallback


@pytest.mark.parametrize("name", ["induction-2l", "modadd-1l"])
def test_trained_models_are_inverted_exactly_and_uniquely(name: str) -> None:
    model = open_checkpoint(name).model.eval()
    tokens = _tokens(model, 20, seed=1)
    for layer in range(model.config.n_layers):
        found = invert(model, hidden_states(model, tokens, layer), layer=layer, certify=True)
        assert found.recovery(tokens) == 1.0
        assert set(found.status) == {"unique"}
        assert min(found.margins) > 100 * found.tolerance  # far from any collision


def test_the_cached_verifier_equals_whole_sequences_and_the_fallback() -> None:
    model = workbench.build("llama-7b-tiny", seed=0, d_vocab=300).eval()
    tokens = _tokens(model, 12)
    states = hidden_states(model, tokens, 1)
    cached = invert(model, states, layer=1)
    whole = invert(model, states, layer=1, use_cache=False)
    exhaustive = invert(model, states, layer=1, rounds=0, batch=50)  # no gradient proposals
    assert cached.cached and not whole.cached
    assert cached.tokens == whole.tokens == exhaustive.tokens == tuple(tokens.tolist())
    torch.testing.assert_close(
        torch.tensor(cached.distances), torch.tensor(whole.distances), atol=1e-5, rtol=0
    )
    assert sum(exhaustive.verified) > sum(cached.verified)


def test_recovery_is_exact_under_noise_below_half_the_margin() -> None:
    model = workbench.build("gpt2-small-tiny", seed=5).eval()
    tokens = _tokens(model, 16, seed=2)
    states = hidden_states(model, tokens, 1)
    margin = min(invert(model, states, layer=1, certify=True).margins)
    noise = torch.randn(states.shape, generator=torch.Generator().manual_seed(0))
    noisy = states + 0.45 * margin * noise / noise.norm(dim=-1, keepdim=True)
    found = invert(model, noisy, layer=1, tolerance=0.5 * margin, certify=True)
    assert found.recovery(tokens) == 1.0
    assert set(found.status) == {"unique"}
    # beyond the margin the answer is no longer guaranteed: a tolerance past it accepts two
    wide = invert(model, states, layer=1, tolerance=1.01 * margin, certify=True)
    assert "ambiguous" in wide.status


def test_duplicated_embedding_rows_are_ambiguous_not_wrong() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0).eval()
    with torch.no_grad():
        model.W_E[7] = model.W_E[3]
    tokens = torch.tensor([1, 3, 5, 7, 2])
    found = invert(model, hidden_states(model, tokens, 1), layer=1, certify=True)
    assert found.status == ("unique", "ambiguous", "unique", "ambiguous", "unique")
    assert set(found.accepted[1]) == set(found.accepted[3]) == {3, 7}
    assert found.recovery(tokens) == 1.0
    # the collision test sees it: two prompts that differ only by 3 <-> 7 collide
    prompts = torch.tensor([[1, 2, 3], [1, 2, 7], [4, 5, 6]])
    result = collisions(model, prompts, layers=[0, 1])
    assert result.below == (1, 1) and result.min_distance[0] < 1e-6


def test_no_collisions_among_distinct_prompts() -> None:
    model = workbench.build("gelu-2l-tiny", seed=0).eval()
    prompts = torch.randint(0, model.config.d_vocab, (300, 6), generator=torch.Generator())
    result = collisions(model, prompts)
    assert result.layers == (0, 1) and result.below == (0, 0)
    assert min(result.min_distance) > 1e-4
    assert result.n_pairs == result.n_prompts * (result.n_prompts - 1) // 2
    assert json.loads(result.to_json())["threshold"] == 1e-6


def test_bad_input_is_refused() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0)
    states = hidden_states(model, torch.tensor([1, 2, 3]), 0)
    with pytest.raises(InputError, match="not causal"):
        invert(workbench.build("bert-base-tiny", seed=0), states, layer=0)
    with pytest.raises(InputError, match="not tokens"):
        invert(workbench.build("vit-tiny-patch4", seed=0, mask="causal"), states, layer=0)
    with pytest.raises(InputError, match="d_model"):
        invert(model, states[:, :5], layer=0)
    with pytest.raises(InputError, match="unknown site"):
        invert(model, states, layer=0, site="mlp_out")
    with pytest.raises(InputError, match="out of range"):
        invert(model, states, layer=9)
    with pytest.raises(InputError, match="tolerance"):
        invert(model, states, layer=0, tolerance=0.0)
    with pytest.raises(InputError, match="2 different prompts"):
        collisions(model, torch.tensor([[1, 2], [1, 2]]))


def test_the_result_reports_per_token_costs() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0).eval()
    tokens = torch.tensor([4, 8, 15, 16])
    report = json.loads(invert(model, hidden_states(model, tokens, 0), layer=0).to_json())
    assert report["tokens"] == [4, 8, 15, 16]
    assert report["calls_per_token"] >= 1 and report["seconds_per_token"] > 0


def test_invert_cli() -> None:
    args = ["invert", "--model", "induction-2l", "--layer", "1", "--n-prompts", "2"]
    result = CliRunner().invoke(cli, [*args, "--n-collision", "64", "--certify", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["recovery"] == 1.0 and len(report["inversions"]) == 2
    assert report["collisions"]["below"] == [0, 0]
    refused = CliRunner().invoke(cli, ["invert", "--model", "all-minilm-l6-v2", "--layer", "0",
                                       "--task", "copy"])  # fmt: skip
    assert refused.exit_code != 0 and "not causal" in refused.output


def test_states_no_token_gives_are_not_found() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0).eval()
    states = hidden_states(model, torch.tensor([3, 4, 5]), 0)
    states[1] += 10.0  # no token reaches this state at position 1
    found = invert(model, states, layer=0)
    assert found.tokens == (3, -1, -1)
    assert found.status == ("found", "not found", "not found")
    assert found.verified[1] == model.config.d_vocab  # the exhaustive fallback ran
    assert found.recovery([3, 4, 5]) == pytest.approx(1 / 3)


def test_invert_prompts_is_each_inversion_and_the_collision_test() -> None:
    """What `workbench invert` reports equals its parts run one by one; its progress counts
    every position, then the collision test's batch."""
    from probes.invert import invert_prompts

    model = workbench.build("gpt2-small-tiny", seed=0, d_vocab=50).eval()
    prompts = [_tokens(model, 6, seed=s) for s in range(2)]
    seen: list[tuple[int, int]] = []
    report = invert_prompts(
        model, prompts, layer=1, certify=True, collision_prompts=torch.stack(prompts * 2),
        name=lambda i: f"w{i}", on_progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    alone = [invert(model, hidden_states(model, p, 1), layer=1, certify=True) for p in prompts]
    for got, want in zip(report.inversions, alone, strict=True):
        assert (got.tokens, got.status, got.margins) == (want.tokens, want.status, want.margins)
        assert got.distances == want.distances
    assert report.collisions == collisions(model, torch.stack(prompts))  # duplicates dropped
    assert report.recovery == 1.0 and report.truth == tuple(tuple(p.tolist()) for p in prompts)
    assert report.names == {t: f"w{t}" for t in sorted({int(t) for p in prompts for t in p})}
    assert seen == [(d, 13) for d in range(1, 14)]  # 12 positions, then one batch
    printed = json.loads(report.to_json())
    assert list(printed) == ["recovery", "inversions", "collisions"]
    with pytest.raises(InputError, match="at least one sequence"):
        invert_prompts(model, [], layer=0)
