"""TransformerLens interop: a TransformerBridge around a Hugging Face GPT-2 and the converted
workbench model give the same numbers for the same hook-based computation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformer_lens import patching

from probes.heads import head_scores
from tests.convert.hf_models import tiny_hf
from workbench import names
from workbench.convert import from_hf

SITES = [names.resid_pre(0), names.attn_pattern(1), names.attn_out(1), names.resid_post(1)]


def test_bridge_and_converted_model_agree_on_cache_and_patching(tmp_path: Path, gen) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    hf = tiny_hf("gpt2")
    hf.save_pretrained(tmp_path)
    ours = from_hf(hf)  # before booting: the bridge wraps the model's modules in place
    bridge = TransformerBridge.boot_transformers(str(tmp_path), hf_model=hf, device="cpu")
    clean = torch.randint(0, 50, (2, 7), generator=gen)
    corrupted = torch.randint(0, 50, (2, 7), generator=gen)
    results = []
    for model in (bridge, ours):
        logits, cache = model.run_with_cache(clean)
        effect = patching.get_act_patch_resid_pre(
            model, corrupted, cache, lambda out: out[:, -1, 3].mean()
        )
        results.append((logits, [cache[s] for s in SITES], effect))
    (bridge_logits, bridge_acts, bridge_effect), (logits, acts, effect) = results
    torch.testing.assert_close(logits, bridge_logits.detach(), atol=1e-5, rtol=1e-5)
    for ours_act, theirs in zip(acts, bridge_acts, strict=True):
        torch.testing.assert_close(ours_act, theirs.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(effect, bridge_effect.detach(), atol=1e-5, rtol=1e-5)
    # a workbench analysis takes either model (the hooked-model protocol)
    theirs = head_scores(bridge, half_len=5, n_sequences=8, vocab=(1, 50))
    mine = head_scores(ours, half_len=5, n_sequences=8, vocab=(1, 50))
    torch.testing.assert_close(mine.induction, theirs.induction, atol=1e-5, rtol=1e-5)


def test_staged_analyses_refuse_a_bridge_and_say_what_works(tmp_path: Path) -> None:
    # inversion runs the workbench's staged forward pass (workbench.staged); caches,
    # TransformerLens patching and head scores (above) work on the bridge too
    from transformer_lens.model_bridge import TransformerBridge

    from probes.invert import invert
    from workbench.errors import InputError

    hf = tiny_hf("gpt2")
    hf.save_pretrained(tmp_path)
    bridge = TransformerBridge.boot_transformers(str(tmp_path), hf_model=hf, device="cpu")
    with pytest.raises(InputError, match=r"exact inversion needs the workbench's staged .* any"):
        invert(bridge, torch.zeros(3, 32), layer=0)
