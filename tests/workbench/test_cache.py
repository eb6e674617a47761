"""Key/value cache: a sequence run in pieces through a cache gets the logits of one full run,
on every tiny preset the cache supports; the others refuse it with the reason."""

from __future__ import annotations

import pytest
import torch

import workbench
from tests.conftest import tiny_presets
from workbench.components.cache import KVCache, cache_unsupported
from workbench.errors import InputError
from workbench.presets import get_preset

CACHED = [p for p in tiny_presets() if cache_unsupported(get_preset(p).config) is None]
REFUSED = [p for p in tiny_presets() if p not in CACHED]


def test_the_cache_covers_the_common_decoders() -> None:
    for preset in ("gpt2-small-tiny", "llama-7b-tiny", "pythia-160m-tiny", "bloom-560m-tiny"):
        assert preset in CACHED
    assert "local-attn-small-tiny" in CACHED  # sliding window
    assert len(CACHED) >= 30


def model_and_tokens(preset: str, n: int, gen):
    """The preset (seed 2) and two random sequences of n tokens (at most n_ctx)."""
    model = workbench.build(preset, seed=2).eval()
    n = min(n, model.config.n_ctx)
    return model, torch.randint(0, model.config.d_vocab, (2, n), generator=gen), n


@pytest.mark.parametrize("preset", CACHED)
def test_pieces_through_a_cache_equal_one_full_run(preset: str, gen) -> None:
    model, tokens, n = model_and_tokens(preset, 11, gen)
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache()
        pieces = [model(tokens[:, a:b], cache=cache) for a, b in ((0, n - 5), (n - 5, n - 1))]
        pieces.append(model(tokens[:, n - 1 :], cache=cache))
        assert cache.length == n
        torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
        # a frozen batch-1 prefix serves many candidates and stays as it was
        prefix = KVCache()
        model(tokens[:1, : n - 1], cache=prefix)
        candidates = tokens[:, n - 1 :]
        last = model(candidates, cache=prefix.frozen())
        assert prefix.length == n - 1
    torch.testing.assert_close(last[0, 0], full[0, n - 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("preset", REFUSED)
def test_models_a_cache_cannot_reproduce_refuse_it(preset: str) -> None:
    model = workbench.build(preset, seed=0)
    with pytest.raises(InputError, match="cannot run with a key/value cache"):
        model.start(torch.zeros(1, 2, dtype=torch.long), cache=KVCache())


def test_a_cache_past_n_ctx_or_with_padding_is_refused() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0)
    n = model.config.n_ctx
    cache = KVCache()
    model(torch.zeros(1, n - 1, dtype=torch.long), cache=cache)
    with pytest.raises(InputError, match="n_ctx"):
        model(torch.zeros(1, 2, dtype=torch.long), cache=cache)
    with pytest.raises(InputError, match="attention_mask"):
        model(torch.zeros(1, 1, dtype=torch.long), attention_mask=torch.ones(1, 1), cache=cache)


@pytest.mark.parametrize("preset", CACHED)
def test_reading_one_position_runs_the_last_block_there_alone(preset: str, gen) -> None:
    model, tokens, _ = model_and_tokens(preset, 9, gen)
    with torch.no_grad():
        full = model(tokens)
        start = model.start(tokens)
        # every cached model but those whose state is several streams
        assert model._last_block_narrows(start, None) == isinstance(start.state, torch.Tensor)
        for keep in (-1, 3):
            torch.testing.assert_close(
                model.finish(start, keep=keep)[:, 0], full[:, keep], atol=1e-5, rtol=1e-5
            )
        # after a cached prefix, too
        prefix = KVCache()
        model(tokens[:, :4], cache=prefix)
        rest = model.start(tokens[:, 4:], cache=prefix.frozen())
        torch.testing.assert_close(
            model.finish(rest, keep=-1)[:, 0], full[:, -1], atol=1e-5, rtol=1e-5
        )


def test_finish_computes_the_columns_asked_for(gen) -> None:
    model = workbench.build("gpt2-small-tiny", seed=0)
    tokens = torch.randint(0, model.config.d_vocab, (2, 5), generator=gen)
    ids = torch.tensor([7, 2, 7, 30])
    with torch.no_grad():
        narrow = model.finish(model.start(tokens), keep=-1, columns=ids)
        torch.testing.assert_close(narrow[:, 0], model(tokens)[:, -1, ids], atol=1e-5, rtol=1e-5)


def test_a_hooked_last_block_runs_whole() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0)
    tokens = torch.zeros(1, 4, dtype=torch.long)
    last = model.config.n_layers - 1
    seen = []
    with model.hooks(fwd_hooks=[(f"blocks.{last}.hook_attn_out", lambda a, hook: seen.append(a))]):
        assert not model._last_block_narrows(model.start(tokens), None)
        model.finish(model.start(tokens), keep=-1)
    assert seen[0].shape[1] == 4
    with model.hooks(fwd_hooks=[(f"blocks.{last}.hook_resid_pre", lambda a, hook: a)]):
        assert model._last_block_narrows(model.start(tokens), None)
    bert = workbench.build("bert-base-tiny", seed=0)
    assert not bert._last_block_narrows(bert.start(tokens), None)
