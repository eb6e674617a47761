"""Hook semantics where the lens's names coincide with TransformerLens's (issue 20): every
cached activation equals a `TransformerBridge`'s on the same files, `hook_normalized` is
before the norm's scale and bias, and the optional hooks (`hook_result`, the split q/k/v
inputs, `hook_attn_in`, `hook_mlp_in`) appear when their `set_use_*` asks, with the same
values and the same effect when edited."""

from __future__ import annotations

import pytest
import torch

import workbench
from tests.lens.conftest import transformerlens_version
from workbench import names
from workbench.errors import InputError
from workbench.lens import HookedTransformer

TEXTS = ["When Mary and John went to the store", "The quick brown fox"]


def _close(mine: torch.Tensor, theirs: torch.Tensor, name: str) -> None:
    if name.endswith("hook_attn_scores"):  # masked: -inf here and in TL 3.x, finfo.min in TL 4
        keep = torch.isfinite(mine)
        assert (theirs[~keep] < -1e30).all(), name
        mine, theirs = mine[keep], theirs[keep]
    torch.testing.assert_close(mine, theirs, atol=2e-6, rtol=1e-5, msg=name)


def _shared(ours, bridge, tokens, **kwargs):
    """The two caches on the hook names both models have."""
    _, mine = ours.run_with_cache(tokens, **kwargs)
    _, theirs = bridge.run_with_cache(tokens, **kwargs)
    return mine, theirs, sorted(set(mine.keys()) & set(theirs.keys()))


def test_every_cached_activation_equals_transformerlens(pair) -> None:
    ours, bridge = pair
    tokens = ours.to_tokens(TEXTS)
    mine, theirs, shared = _shared(ours, bridge, tokens)
    assert set(mine.keys()) - set(shared) == {"hook_logits"}  # TL has no logits hook
    for name in shared:
        _close(mine[name], theirs[name], name)
    assert not any(name.endswith("hook_result") for name in mine.keys())  # noqa: SIM118 (a cache)


def test_hook_normalized_is_before_the_norms_scale_and_bias(pair) -> None:
    ours, _ = pair
    tokens = ours.to_tokens(TEXTS[0])
    _, cache = ours.run_with_cache(tokens)
    for layer in range(ours.cfg.n_layers):
        ln = ours.blocks[layer].ln1
        x = cache[names.resid_pre(layer)]
        centred = x - x.mean(-1, keepdim=True)
        pre = centred / cache[names.norm_scale(layer, 1)]
        torch.testing.assert_close(cache[names.norm_normalized(layer, 1)], pre)
        assert not torch.allclose(ln.w, torch.ones_like(ln.w))  # the fixture's norms are not 1
        torch.testing.assert_close(pre * ln.w + ln.b, ln(x), atol=1e-6, rtol=1e-5)
    _, cache = ours.run_with_cache(tokens, return_cache_object=True)
    final = cache[names.FINAL_NORMALIZED] * ours.ln_final.w + ours.ln_final.b
    torch.testing.assert_close(final @ ours.W_U + ours.b_U, ours(tokens), atol=1e-5, rtol=1e-5)


def _zero_head_one(x: torch.Tensor, hook) -> torch.Tensor:
    x = x.clone()
    x[:, :, 1] = 0.0
    return x


def _double(x: torch.Tensor, hook) -> torch.Tensor:
    return 2 * x


@pytest.mark.parametrize(
    ("setting", "hooks", "edit"),
    [
        ("set_use_attn_result", ["blocks.{l}.attn.hook_result"], _zero_head_one),
        (
            "set_use_split_qkv_input",
            ["blocks.{l}.hook_q_input", "blocks.{l}.hook_k_input", "blocks.{l}.hook_v_input"],
            _zero_head_one,
        ),
        ("set_use_attn_in", ["blocks.{l}.hook_attn_in"], _zero_head_one),
        ("set_use_hook_mlp_in", ["blocks.{l}.hook_mlp_in"], _double),
    ],
)
def test_optional_hooks_appear_when_asked_and_equal_transformerlens(
    pair, setting, hooks, edit
) -> None:
    ours, bridge = pair
    tokens = ours.to_tokens(TEXTS)
    plain = ours(tokens)
    for model in (ours, bridge):
        getattr(model, setting)(True)
    try:
        torch.testing.assert_close(ours(tokens), plain, atol=1e-5, rtol=1e-5)
        mine, theirs, shared = _shared(ours, bridge, tokens)
        wanted = [h.format(l=layer) for h in hooks for layer in range(ours.cfg.n_layers)]
        assert set(wanted) <= set(shared)
        for name in wanted:
            _close(mine[name], theirs[name], name)
        for name in wanted:  # the same edit has the same effect on the logits
            edited = [(name, edit)]
            torch.testing.assert_close(
                ours.run_with_hooks(tokens, fwd_hooks=edited),
                bridge.run_with_hooks(tokens, fwd_hooks=edited),
                atol=1e-5,
                rtol=1e-5,
                msg=name,
            )
            assert not torch.allclose(ours.run_with_hooks(tokens, fwd_hooks=edited), plain)
    finally:
        for model in (ours, bridge):
            getattr(model, setting)(False)
    _, cache = ours.run_with_cache(tokens)
    assert not set(wanted) & set(cache.keys())


def test_split_inputs_normalise_each_heads_copy_and_keep_train_mode() -> None:
    lens = HookedTransformer.from_model(workbench.build("gpt2-small-tiny", seed=0))
    tokens = torch.randint(0, 50, (2, 6))
    lens.train()
    lens.cfg.use_split_qkv_input = True  # as TransformerLens code may set it
    _, cache = lens.run_with_cache(tokens)
    assert lens.training
    n_heads, d_model = lens.cfg.n_heads, lens.cfg.d_model
    assert cache[names.norm_normalized(0, 1)].shape == (2, 6, n_heads, d_model)
    assert cache["blocks.0.hook_k_input"].shape == (2, 6, n_heads, d_model)
    lens.cfg.use_split_qkv_input = False
    lens.eval()
    assert "blocks.0.hook_k_input" not in lens.run_with_cache(tokens)[1].keys()  # noqa: SIM118


def test_grouped_keys_have_split_inputs_per_kv_head_and_refuse_attn_in() -> None:
    lens = HookedTransformer.from_model(workbench.build("llama2-70b-tiny", seed=0))
    tokens = torch.randint(0, 50, (1, 5))
    plain = lens(tokens)
    lens.set_use_split_qkv_input(True)
    logits, cache = lens.run_with_cache(tokens)
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)
    assert cache["blocks.0.hook_k_input"].shape[2] == lens.config.kv_heads
    assert cache["blocks.0.hook_q_input"].shape[2] == lens.config.n_heads
    lens.set_use_split_qkv_input(False)
    with pytest.raises(InputError, match="set_use_split_qkv_input"):
        lens.set_use_attn_in(True)
    assert not lens.cfg.use_attn_in and "blocks.0.hook_attn_in" not in lens.hook_dict


def test_backward_hooks_cache_the_gradients_transformerlens_caches(pair) -> None:
    ours, bridge = pair
    tokens = ours.to_tokens(TEXTS[0])
    mine, theirs, shared = _shared(ours, bridge, tokens, return_type="loss", incl_bwd=True)
    grads = [name for name in shared if name.endswith("_grad")]
    assert {names.resid_pre(0) + "_grad", names.attn_pattern(1) + "_grad"} <= set(grads)
    version = transformerlens_version()[0]
    for name in grads:
        if "hook_resid_mid" in name and version == 4:
            continue  # TL 4 aliases it to ln2's input: the MLP's share only (TL 3: the whole)
        if ".ln1." in name and version == 3:
            continue  # TL 3 runs ln1 three times (q, k, v): its hook keeps one call's share
        _close(mine[name], theirs[name], name)
    for layer in range(ours.cfg.n_layers):  # resid_mid = resid_pre + attn_out: one gradient
        grad = mine[names.resid_mid(layer) + "_grad"]
        _close(grad, theirs[names.attn_out(layer) + "_grad"], "resid_mid")
