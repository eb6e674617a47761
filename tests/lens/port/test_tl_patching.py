"""TransformerLens's own tests of activation patching, ported to workbench models.

Ported from TransformerLens (TransformerLensOrg/TransformerLens at commit
4cd36aaeb5dad931d085bd5d46a12b402fe15272):

- tests/unit/test_patching.py: solu-1l -> the tiny GPT-2 of `gpt2_dir` as
  `HookedTransformer.from_pretrained` opens it; prompts of equal length in its tokenizer
  ("The cat sat" / "The dog ran" are not). Added: the patching results equal those of
  TransformerLens's own model on the same processed weights.
- tests/unit/test_direct_path_patching.py: `HookedTransformer(HookedTransformerConfig(
  n_layers=3, d_model=64, d_head=16, n_heads=4, d_mlp=128, d_vocab=100, n_ctx=16,
  act_fn="gelu"))` + `process_weights_()` -> `workbench.build("gelu-2l-tiny", ...)` with the
  same sizes + the lens's `process_weights_()`. The functions are imported from
  `transformer_lens.patching`, where TransformerLens 4.3 has them (the mirror's
  `transformer_lens.tools.analysis.direct_path_patching` is a deprecated alias there);
  TransformerLens 3.0 has no direct path patching, so those tests skip on it.

Dropped, and why:

- `TestCheckFoldLn` (`test_folded_model_no_warning`, `test_unfolded_model_warns`,
  `test_no_crash_on_missing_attribute`): `_check_fold_ln` exists only at the mirror's commit;
  TransformerLens 4.3 removed it with the frozen-LayerNorm approximation it guarded (its direct
  path patching is exact, folded or not), and 3.0 never had it. Its
  `test_hooked_transformer_w_attribute` is kept (a property of the model).

TransformerLens 4.3's direct path patching hooks the bridge's names for the split inputs,
`blocks.{l}.attn.hook_{q,k,v}_input`; the lens answers to those as well as to
HookedTransformer's `blocks.{l}.hook_{q,k,v}_input`.
"""

from __future__ import annotations

import pytest
import torch
from transformer_lens.patching import get_act_patch_attn_head_all_pos_every

import workbench
from tests.lens.conftest import transformerlens_model
from workbench.lens import HookedTransformer

try:
    from transformer_lens.patching import (
        get_act_patch_direct_path,
        get_act_patch_direct_path_all_sources,
    )
except ImportError:  # TransformerLens 3.0
    get_act_patch_direct_path = get_act_patch_direct_path_all_sources = None

needs_direct_path = pytest.mark.skipif(
    get_act_patch_direct_path is None,
    reason="TransformerLens 3.0 has no direct path patching (get_act_patch_direct_path)",
)

# ----- tests/unit/test_patching.py ---------------------------------------------------------

CLEAN, CORRUPTED = "When Mary and John went", "When John and Mary went"


@pytest.fixture(scope="module")
def model(gpt2_dir) -> HookedTransformer:
    return HookedTransformer.from_pretrained(gpt2_dir)


@pytest.fixture(scope="module")
def clean_cache(model):
    return model.run_with_cache(CLEAN)[1]


@pytest.fixture(scope="module")
def corrupted_tokens(model):
    tokens = model.to_tokens(CORRUPTED)
    assert tokens.shape == model.to_tokens(CLEAN).shape
    return tokens


def metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, -1, :].sum()


@pytest.fixture(scope="module")
def every(model, corrupted_tokens, clean_cache) -> torch.Tensor:
    return get_act_patch_attn_head_all_pos_every(model, corrupted_tokens, clean_cache, metric)


def test_get_act_patch_attn_head_all_pos_every_shape(model, every) -> None:
    """A [5, n_layers, n_heads] tensor (output, query, key, value, pattern)."""
    assert every.shape == (5, model.cfg.n_layers, model.cfg.n_heads)


def test_get_act_patch_attn_head_all_pos_every_values_vary(every) -> None:
    assert not torch.all(every == every[0, 0, 0]), "All patch results are identical"
    assert torch.isfinite(every).all()


def test_get_act_patch_attn_head_all_pos_every_equals_transformerlens(gpt2_dir, every) -> None:
    """The same sweep on TransformerLens's own model, processed the same way, gives the same
    numbers (the metric is the sum of logits: center_unembed is on both sides)."""
    theirs = transformerlens_model(gpt2_dir, processed=True)
    tokens = theirs.to_tokens(CORRUPTED)
    _, cache = theirs.run_with_cache(CLEAN)
    want = get_act_patch_attn_head_all_pos_every(theirs, tokens, cache, metric)
    torch.testing.assert_close(every, want, atol=1e-4, rtol=1e-5)


# ----- tests/unit/test_direct_path_patching.py ---------------------------------------------


def _config_model() -> HookedTransformer:
    model = workbench.build(
        "gelu-2l-tiny",
        seed=0,
        n_layers=3,
        d_model=64,
        d_head=16,
        n_heads=4,
        d_mlp=128,
        d_vocab=100,
        n_ctx=16,
    )
    return HookedTransformer.from_model(model)


@pytest.fixture(scope="module")
def tiny_model() -> HookedTransformer:
    """A small, randomly initialised transformer with LN folded in."""
    model = _config_model()
    assert model.process_weights_() == []  # every step taken
    return model.eval()


@pytest.fixture(scope="module")
def tokens_and_caches(tiny_model):
    gen = torch.Generator().manual_seed(42)
    clean_tokens = torch.randint(0, 100, (1, 8), generator=gen)
    corrupted_tokens = torch.randint(0, 100, (1, 8), generator=gen)
    with torch.no_grad():
        _, clean_cache = tiny_model.run_with_cache(clean_tokens)
        _, corrupted_cache = tiny_model.run_with_cache(corrupted_tokens)
    return clean_tokens, corrupted_tokens, clean_cache, corrupted_cache


def simple_metric(logits: torch.Tensor) -> torch.Tensor:
    return logits[0, -1, :].sum()


def _direct(tiny_model, tokens_and_caches, src_layer=0, src_head=0, component="q", **kw):
    _, corrupted_tokens, clean_cache, corrupted_cache = tokens_and_caches
    with torch.no_grad():
        return get_act_patch_direct_path(
            model=tiny_model,
            corrupted_tokens=corrupted_tokens,
            clean_cache=clean_cache,
            corrupted_cache=corrupted_cache,
            patching_metric=kw.pop("patching_metric", simple_metric),
            src_layer=src_layer,
            src_head=src_head,
            component=component,
            verbose=False,
        )


def test_hooked_transformer_w_attribute() -> None:
    """Before process_weights_ the LayerNorm exposes its scale .w."""
    assert hasattr(_config_model().blocks[0].ln1, "w")


@needs_direct_path
def test_single_source_shape(tiny_model, tokens_and_caches) -> None:
    results = _direct(tiny_model, tokens_and_caches)
    assert results.shape == (tiny_model.cfg.n_layers, tiny_model.cfg.n_heads)


@needs_direct_path
def test_all_sources_shape(tiny_model, tokens_and_caches) -> None:
    _, corrupted_tokens, clean_cache, corrupted_cache = tokens_and_caches
    with torch.no_grad():
        results = get_act_patch_direct_path_all_sources(
            model=tiny_model,
            corrupted_tokens=corrupted_tokens,
            clean_cache=clean_cache,
            corrupted_cache=corrupted_cache,
            patching_metric=simple_metric,
            component="q",
            verbose=False,
        )
    n, h = tiny_model.cfg.n_layers, tiny_model.cfg.n_heads
    assert results.shape == (n, h, n, h)


@needs_direct_path
@pytest.mark.parametrize("component", ["q", "k", "v"])
def test_all_components(tiny_model, tokens_and_caches, component: str) -> None:
    results = _direct(tiny_model, tokens_and_caches, src_head=1, component=component)
    assert results.shape == (tiny_model.cfg.n_layers, tiny_model.cfg.n_heads)


@needs_direct_path
def test_earlier_layers_are_zero(tiny_model, tokens_and_caches) -> None:
    """Entries for dst_layer <= src_layer are exactly 0 (no causal path)."""
    results = _direct(tiny_model, tokens_and_caches, src_layer=1)
    assert results[:2].eq(0).all()


@needs_direct_path
def test_later_layers_are_nonzero(tiny_model, tokens_and_caches) -> None:
    results = _direct(tiny_model, tokens_and_caches)
    assert not results[1:].eq(0).all()


@needs_direct_path
def test_clean_equals_corrupted_gives_zero_delta(tiny_model) -> None:
    """If clean == corrupted, every entry equals the baseline."""
    tokens = torch.randint(0, 100, (1, 6), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        baseline_logits, cache = tiny_model.run_with_cache(tokens)
    baseline = simple_metric(baseline_logits).item()
    results = _direct(tiny_model, (tokens, tokens, cache, cache))
    nonzero_entries = results[results != 0]
    assert nonzero_entries.numel() == 0 or torch.allclose(
        nonzero_entries, torch.full_like(nonzero_entries, baseline), atol=1e-4
    )


@needs_direct_path
def test_correctness_against_actual_ln_forward(tiny_model, tokens_and_caches) -> None:
    """The direct path result equals an independent reference: the source head's
    clean-minus-corrupted write added to the destination's residual, through the real
    LayerNorm, into that head's query alone."""
    _, corrupted_tokens, clean_cache, corrupted_cache = tokens_and_caches
    src_layer, src_head, dst_layer, dst_head = 0, 0, 2, 1
    correct_tok, incorrect_tok = 17, 42

    def logit_diff(logits):
        return logits[0, -1, correct_tok] - logits[0, -1, incorrect_tok]

    W_O = tiny_model.blocks[src_layer].attn.W_O
    clean_z = clean_cache[f"blocks.{src_layer}.attn.hook_z"][:, :, src_head, :]
    corrupted_z = corrupted_cache[f"blocks.{src_layer}.attn.hook_z"][:, :, src_head, :]
    delta_resid = (clean_z @ W_O[src_head]) - (corrupted_z @ W_O[src_head])
    corrupted_resid = corrupted_cache[f"blocks.{dst_layer}.hook_resid_pre"]
    with torch.no_grad():
        ln1 = tiny_model.blocks[dst_layer].ln1
        patched_normed = ln1(corrupted_resid + delta_resid)
        corrupted_normed = ln1(corrupted_resid)
        true_delta_q = (patched_normed - corrupted_normed) @ tiny_model.blocks[dst_layer].attn.W_Q[
            dst_head
        ]

    def true_hook(value, hook):
        value = value.clone()
        value[:, :, dst_head, :] = value[:, :, dst_head, :] + true_delta_q
        return value

    with torch.no_grad():
        ref_logits = tiny_model.run_with_hooks(
            corrupted_tokens, fwd_hooks=[(f"blocks.{dst_layer}.attn.hook_q", true_hook)]
        )
    ref_metric = logit_diff(ref_logits).item()
    results = _direct(
        tiny_model, tokens_and_caches, src_layer, src_head, patching_metric=logit_diff
    )
    assert abs(results[dst_layer, dst_head].item() - ref_metric) < 1e-3


@needs_direct_path
def test_all_sources_consistent_with_single(tiny_model, tokens_and_caches) -> None:
    _, corrupted_tokens, clean_cache, corrupted_cache = tokens_and_caches
    single = _direct(tiny_model, tokens_and_caches, src_layer=0, src_head=2)
    with torch.no_grad():
        all_sources = get_act_patch_direct_path_all_sources(
            model=tiny_model,
            corrupted_tokens=corrupted_tokens,
            clean_cache=clean_cache,
            corrupted_cache=corrupted_cache,
            patching_metric=simple_metric,
            component="q",
            verbose=False,
        )
    assert torch.allclose(single, all_sources[0, 2], atol=1e-5)


@needs_direct_path
def test_last_layer_source_all_zero(tiny_model, tokens_and_caches) -> None:
    """A source in the last layer has no downstream heads: all zeros."""
    results = _direct(tiny_model, tokens_and_caches, src_layer=tiny_model.cfg.n_layers - 1)
    assert results.eq(0).all()


@needs_direct_path
def test_returns_cpu_tensor(tiny_model, tokens_and_caches) -> None:
    results = _direct(tiny_model, tokens_and_caches)
    assert results.device.type == tiny_model.cfg.device.type or results.is_cpu
    assert not tiny_model.cfg.use_split_qkv_input  # the sweep restored the caller's flags
