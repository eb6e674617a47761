"""Weight processing and direct logit attribution through the lens (issue 20): the processed
weights equal TransformerLens's (`TransformerBridge.enable_compatibility_mode`, which runs
HookedTransformer's `process_weights_`) on the same files; every step keeps what the model
computes; and the ActivationCache's decompositions equal TransformerLens's and add up to
the logit difference exactly."""

from __future__ import annotations

import logging

import pytest
import torch

import workbench
from tests.conftest import example_input, tiny_presets
from tests.lens.conftest import transformerlens_model
from workbench.errors import InputError
from workbench.lens import HookedTransformer

WEIGHTS = ["W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O"]
WEIGHTS += ["W_in", "b_in", "W_out", "b_out", "W_U", "b_U", "W_E", "W_pos"]
PROMPT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module")
def processed(gpt2_dir):
    """The lens and TransformerLens, both with TransformerLens's default processing."""
    theirs = transformerlens_model(gpt2_dir, processed=True)
    return HookedTransformer.from_pretrained(gpt2_dir), theirs


def test_processed_weights_and_logits_equal_transformerlens(processed, gpt2_dir) -> None:
    ours, bridge = processed
    for name in WEIGHTS:
        mine, theirs = getattr(ours, name), getattr(bridge, name).detach()
        assert mine.shape == theirs.shape, name
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5, msg=name)
    tokens = ours.to_tokens(["When Mary and John went", "The quick brown fox"])
    torch.testing.assert_close(ours(tokens), bridge(tokens), atol=1e-5, rtol=1e-5)
    raw = HookedTransformer.from_pretrained_no_processing(gpt2_dir)
    assert not torch.allclose(ours(tokens), raw(tokens))  # center_unembed moved the logits
    torch.testing.assert_close(
        ours(tokens).log_softmax(-1), raw(tokens).log_softmax(-1), atol=1e-5, rtol=1e-5
    )
    assert ours.cfg.normalization_type == "LNPre" and raw.cfg.normalization_type == "LN"


def _cache_methods(cache, model, answer: int, wrong: int) -> dict[str, torch.Tensor]:
    full = cache.get_full_resid_decomposition(pos_slice=-1, expand_neurons=False)
    return {
        "accumulated_resid": cache.accumulated_resid(apply_ln=True, pos_slice=-1),
        "decompose_resid": cache.decompose_resid(apply_ln=True, pos_slice=-1),
        "stack_head_results": cache.stack_head_results(apply_ln=True, pos_slice=-1),
        "full": cache.get_full_resid_decomposition(apply_ln=True, pos_slice=-1),
        "logit_attrs": cache.logit_attrs(full, tokens=answer, incorrect_tokens=wrong, pos_slice=-1),
        "apply_ln_to_stack": cache.apply_ln_to_stack(full, pos_slice=-1),
        "accumulated_bias": model.accumulated_bias(2, include_mlp_biases=True),
        "directions": model.tokens_to_residual_directions(torch.tensor([answer, wrong])),
    }


def test_direct_logit_attribution_equals_transformerlens_and_adds_up(processed) -> None:
    ours, bridge = processed
    tokens = ours.to_tokens(PROMPT)
    answer, wrong = ours.to_single_token(" Mary"), ours.to_single_token(" John")
    logits, cache = ours.run_with_cache(tokens)
    _, their_cache = bridge.run_with_cache(tokens)
    mine = _cache_methods(cache, ours, answer, wrong)
    theirs = _cache_methods(their_cache, bridge, answer, wrong)
    for name, value in mine.items():
        torch.testing.assert_close(value, theirs[name].detach(), atol=1e-5, rtol=1e-5, msg=name)
    # every component's attribution, plus the unembedding bias, is the logit difference
    difference = logits[0, -1, answer] - logits[0, -1, wrong]
    bias = ours.b_U[answer] - ours.b_U[wrong]
    total = mine["logit_attrs"].sum() + bias
    torch.testing.assert_close(total, difference, atol=1e-5, rtol=1e-5)
    # the logit lens of the last layer is the logits: the cached scale is exact
    last = mine["accumulated_resid"][-1]
    torch.testing.assert_close(last @ ours.W_U + ours.b_U, logits[:, -1], atol=1e-5, rtol=1e-5)


def test_tokens_to_residual_directions_takes_text_ids_and_tensors(processed) -> None:
    ours, _ = processed
    token = ours.to_single_token(" Mary")
    by_text = ours.tokens_to_residual_directions(" Mary")
    torch.testing.assert_close(by_text, ours.W_U[:, token])
    torch.testing.assert_close(ours.tokens_to_residual_directions(token), by_text)
    batch = ours.tokens_to_residual_directions(torch.tensor([[token, token]]))
    assert batch.shape == (1, 2, ours.cfg.d_model)


def test_every_preset_is_processed_or_skipped_and_keeps_its_function() -> None:
    gen = torch.Generator().manual_seed(0)
    done = {}
    for preset in tiny_presets():
        model = workbench.build(preset, seed=0)
        with torch.no_grad():  # norms that are not the identity
            for name, p in model.named_parameters():
                if name.endswith((".w", ".b")) and ("ln" in name):
                    p.add_(0.2 * torch.randn(p.shape, generator=gen))
        lens = HookedTransformer.from_model(model)
        x = example_input(model, 2, 6, gen)
        before = lens(x).log_softmax(-1)
        skipped = lens.process_weights_()
        after = lens(x).log_softmax(-1)
        torch.testing.assert_close(after, before, atol=2e-4, rtol=1e-4, msg=preset)
        done[preset] = skipped
    assert done["gpt2-small-tiny"] == [] and done["gptj-6b-tiny"] == []
    assert done["llama2-70b-tiny"] == [  # RMSNorm: no mean to remove
        "center_writing_weights: the writing weights centre only where every reader of the "
        "residual stream is a LayerNorm (which removes the mean); this model has norm=rmsnorm"
    ]
    assert any(s.startswith("fold_ln") for s in done["bert-base-tiny"])  # post-norm
    assert any(s.startswith("fold_value_biases") for s in done["linear-attn-small-tiny"])
    assert sum(not s for s in done.values()) >= 10


def test_steps_that_would_change_the_model_are_refused_whole() -> None:
    bert = HookedTransformer.from_model(workbench.build("bert-base-tiny", seed=0))
    with pytest.raises(InputError, match="norms before the sublayers"):
        bert.fold_layer_norm()
    linear = HookedTransformer.from_model(workbench.build("linear-attn-small-tiny", seed=0))
    with pytest.raises(InputError, match="sum to one"):
        linear.fold_value_biases()
    gated = HookedTransformer.from_model(workbench.build("gated-attn-small-tiny", seed=0))
    with pytest.raises(InputError, match="gated after the pattern"):
        gated.fold_value_biases()
    unbiased = workbench.build("gpt2-small-tiny", bias=False, seed=0)
    with torch.no_grad():
        unbiased.blocks[0].ln1.b.fill_(0.5)
    before = {k: v.clone() for k, v in unbiased.state_dict().items()}
    with pytest.raises(InputError, match="no bias to take it"):
        HookedTransformer.from_model(unbiased).fold_layer_norm()
    for key, value in unbiased.state_dict().items():  # nothing half-written
        torch.testing.assert_close(value, before[key], msg=key)


def test_from_pretrained_logs_the_steps_it_skips(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="workbench.lens.model"):
        lens = HookedTransformer.from_pretrained("all-minilm-l6-v2")  # post-norm (BERT)
    assert "fold_ln" in caplog.text and lens.cfg.normalization_type == "LN"
