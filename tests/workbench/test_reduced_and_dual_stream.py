"""Reduced and re-wired variants against references: the minimal attention of Bermeitinger
et al. 2024, PoolFormer's pooling mixer (Yu et al. 2022) and the Dual-Stream Transformer with
its head mixing (Kerce & Fox 2026)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import workbench
from workbench import names
from workbench.errors import ConfigError


def test_collapsed_qk_scores_are_one_bilinear_form_per_head(gen: torch.Generator) -> None:
    # Bermeitinger et al. 2024: x_i W_Q W_K^T x_j^T is one matrix; the collapsed model with
    # W_QK = W_Q W_K^T computes the same function as the separate one (no query/key biases)
    separate = workbench.build("gpt2-small-tiny", bias=False, seed=1)
    collapsed = workbench.build("gpt2-small-tiny", bias=False, qk_form="collapsed", seed=2)
    with torch.no_grad():
        for name, p in collapsed.named_parameters():
            if name.endswith("W_QK"):
                p.copy_(separate.get_submodule(name[: -len(".W_QK")]).qk_matrix())
            else:
                p.copy_(separate.get_parameter(name))
    tokens = torch.randint(0, 50, (2, 9), generator=gen)
    torch.testing.assert_close(collapsed(tokens), separate(tokens), atol=1e-5, rtol=1e-5)
    _, cache = collapsed.run_with_cache(tokens)
    x = collapsed.blocks[0].ln1(cache[names.resid_pre(0)])  # attention's input
    w = collapsed.blocks[0].attn.W_QK
    scores = torch.einsum("bqd,hde,bke->bhqk", x, w, x) / math.sqrt(8)
    scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), -torch.inf)
    torch.testing.assert_close(cache[names.attn_scores(0)], scores, atol=1e-5, rtol=1e-5)
    assert cache[names.attn(0, "q")].shape == (2, 9, 4, 32)
    with pytest.raises(ConfigError, match="qk_form='collapsed'"):
        workbench.build("gpt2-small-tiny", qk_form="collapsed", pos="rotary")


def test_symmetric_wqk_has_half_the_parameters_and_symmetric_scores(gen: torch.Generator) -> None:
    model = workbench.build("symmetric-wqk-small-tiny", mask="bidirectional", seed=1)
    attn = model.blocks[0].attn
    assert attn.W_QK_upper.shape == (4, 32 * 33 // 2)
    w = attn.qk_matrix()
    torch.testing.assert_close(w, w.transpose(1, 2))
    assert w.triu().count_nonzero() == attn.W_QK_upper.count_nonzero()
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 7), generator=gen))
    scores = cache[names.attn_scores(1)]
    torch.testing.assert_close(scores, scores.transpose(-1, -2))  # sim(i, j) = sim(j, i)


def test_no_value_output_heads_read_and_write_their_own_slice(gen: torch.Generator) -> None:
    model = workbench.build("minimal-small-tiny", seed=1)
    assert not any(n.endswith(("W_V", "W_O")) for n, _ in model.named_parameters())
    tokens = torch.randint(0, 50, (2, 7), generator=gen)
    _, cache = model.run_with_cache(tokens)
    x = model.blocks[0].ln1(cache[names.resid_pre(0)])  # attention's input
    pattern = cache[names.attn_pattern(0)]
    heads = x.unflatten(-1, (4, 8))  # head h's slice of the stream is its value
    expected = torch.einsum("bhqk,bkhe->bqhe", pattern, heads).flatten(2)
    torch.testing.assert_close(cache[names.attn_out(0)], expected, atol=1e-6, rtol=1e-6)
    result = cache[names.attn_result(0)].unflatten(-1, (4, 8))  # [b, q, head, channel, e]
    off_channel = ~torch.eye(4, dtype=torch.bool)
    assert (result[:, :, off_channel] == 0).all()
    assert model.state_dict().keys() == model.unique_state_dict().keys()
    with pytest.raises(ConfigError, match="n_heads \\* d_head == d_model"):
        workbench.build("gpt2-small-tiny", value_output=False, d_head=4)


@pytest.mark.parametrize("mask", ["causal", "bidirectional"])
def test_pooling_mixer_on_sequences_averages_the_window_minus_self(
    mask: str, gen: torch.Generator
) -> None:
    model = workbench.build(
        "gpt2-small-tiny", attention="pooling", pos="learned", mask=mask, seed=1
    )
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 8), generator=gen))
    x = cache[names.attn(0, "v")]  # [batch, pos, head, d_head]
    z = cache[names.attn_z(0)]
    for t in range(8):
        keys = range(max(0, t - 2), t + 1) if mask == "causal" else range(max(0, t - 1), t + 2)
        keys = [k for k in keys if k < 8]
        expected = x[:, keys].mean(dim=1) - x[:, t]
        torch.testing.assert_close(z[:, t], expected, atol=1e-6, rtol=1e-6)
    assert names.attn(0, "q") not in model.hook_dict


def test_poolformer_mixer_equals_avg_pool2d_minus_input(gen: torch.Generator) -> None:
    # Yu et al. 2022: token mixer = AvgPool2d(3, stride 1, padding 1, no padding counted) - x
    model = workbench.build("poolformer-patch4-tiny", seed=1)
    _, cache = model.run_with_cache(torch.randn(2, 1, 16, 16, generator=gen))
    x = model.blocks[0].ln1(cache[names.resid_pre(0)])  # [batch, 1 + 16 patches, d_model]
    grid = x[:, 1:].transpose(1, 2).unflatten(2, (4, 4))
    pooled = F.avg_pool2d(grid, 3, stride=1, padding=1, count_include_pad=False) - grid
    out = cache[names.attn_out(0)]
    torch.testing.assert_close(out[:, 1:], pooled.flatten(2).transpose(1, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(out[:, 0], x[:, 1:].mean(1) - x[:, 0], atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="attention='pooling'"):
        workbench.build("poolformer-patch4-tiny", pos="rotary")


@pytest.fixture
def dual_and_plain(gen: torch.Generator):
    """A dense dual-stream model, the plain pre-norm model with the same weights, tokens."""
    dual = workbench.build("gpt2-small-tiny", wiring="dual_stream", seed=1)
    plain = workbench.build("gpt2-small-tiny", seed=1)
    return dual, plain, torch.randint(0, 50, (2, 9), generator=gen)


def test_dual_stream_sum_is_the_pre_norm_stream_and_each_stream_has_one_writer(
    dual_and_plain,
) -> None:
    # Kerce & Fox 2026: attention writes only the token stream, the MLP only the context
    # stream; with dense head mixing their sum is a standard pre-norm residual stream
    dual, plain, tokens = dual_and_plain
    torch.testing.assert_close(dual(tokens), plain(tokens), atol=1e-5, rtol=1e-5)
    _, cache = dual.run_with_cache(tokens)
    token, context = cache[names.EMBED] + cache[names.POS_EMBED], 0.0
    for layer in range(2):
        token = token + cache[names.attn_out(layer)]
        context = context + cache[names.mlp_out(layer)]
        torch.testing.assert_close(cache[names.block(layer, "hook_token_stream")], token)
        torch.testing.assert_close(cache[names.block(layer, "hook_context_stream")], context)
        torch.testing.assert_close(cache[names.resid_post(layer)], token + context)


def test_dual_stream_resid_patching_means_what_it_means_in_a_plain_model(
    dual_and_plain, gen: torch.Generator
) -> None:
    dual, plain, tokens = dual_and_plain
    replacement = torch.randn(2, 32, generator=gen)

    def patch(act, hook):
        act[:, 4] = replacement  # in place, as TransformerLens's patching hooks do
        return act

    for site in (names.resid_pre(1), names.resid_mid(0), names.resid_post(0)):
        hooks = [(site, patch)]
        torch.testing.assert_close(
            dual.run_with_hooks(tokens, fwd_hooks=hooks),
            plain.run_with_hooks(tokens, fwd_hooks=hooks),
            atol=1e-5,
            rtol=1e-5,
        )


@pytest.mark.parametrize("mixing", ["kronecker", "independent"])
def test_structured_head_mixing_builds_w_o_from_heads(mixing: str, gen: torch.Generator) -> None:
    model = workbench.build("dual-stream-small-tiny", head_mixing=mixing, seed=1)
    attn = model.blocks[0].attn
    with torch.no_grad():
        if mixing == "kronecker":
            attn.head_mix.copy_(torch.randn(4, 4, generator=gen))
    w_o = attn.W_O.reshape(4, 8, 4, 8)  # [head, e, channel, f]
    if mixing == "kronecker":  # W_heads kron I: head h adds M[h, g] z_h to channel g
        expected = torch.einsum("hg,ef->hegf", attn.head_mix, torch.eye(8))
    else:  # block-diagonal: head h writes only channel h
        expected = torch.einsum("hef,hg->hegf", attn.W_O_blocks, torch.eye(4))
    torch.testing.assert_close(w_o, expected)
    tokens = torch.randint(0, 50, (2, 7), generator=gen)
    _, cache = model.run_with_cache(tokens)
    z = cache[names.attn_z(0)]
    out = torch.einsum("bqhe,hed->bqd", z, attn.W_O) + attn.b_O
    torch.testing.assert_close(cache[names.attn_out(0)], out, atol=1e-6, rtol=1e-6)
    with pytest.raises(ConfigError, match="head_mixing"):
        workbench.build("gpt2-small-tiny", head_mixing=mixing, d_head=4)


def test_dual_stream_refuses_what_it_cannot_wire() -> None:
    with pytest.raises(ConfigError, match="dual_stream"):
        workbench.build("gpt2-small-tiny", wiring="dual_stream", norm_placement="post")
    with pytest.raises(ConfigError, match="dual_stream"):
        workbench.build("attn-only-1l-tiny", wiring="dual_stream")
