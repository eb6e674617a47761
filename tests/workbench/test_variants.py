"""Variant components against their papers' formulas or slow, obviously correct references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import workbench
from workbench import names
from workbench.components.positional import apply_rotary, rotary_angles, t5_buckets
from workbench.components.positions.embedded import AbacusPositions
from workbench.errors import ConfigError, InputError
from workbench.tasks import make_task


@pytest.mark.parametrize(
    ("kind", "act"), [("swiglu", F.silu), ("geglu", F.gelu), ("reglu", F.relu)]
)
def test_glu_family_matches_shazeer_formula(kind: str, act, gen: torch.Generator) -> None:
    model = workbench.build("gelu-2l-tiny", mlp=kind, seed=1)
    tokens = torch.randint(0, 50, (2, 7), generator=gen)
    _, cache = model.run_with_cache(tokens)
    mlp = model.blocks[0].mlp
    x = model.blocks[0].ln2(cache[names.resid_mid(0)])  # the MLP's input
    expected = (act(x @ mlp.W_gate) * (x @ mlp.W_in + mlp.b_in)) @ mlp.W_out + mlp.b_out
    torch.testing.assert_close(cache[names.mlp_out(0)], expected, atol=1e-5, rtol=1e-5)


def test_top_k_mlp_keeps_exactly_the_k_largest_activations(gen: torch.Generator) -> None:
    model = workbench.build("gelu-2l-tiny", mlp={"kind": "topk", "k": 5}, seed=1)
    _, cache = model.run_with_cache(torch.randint(0, 50, (3, 9), generator=gen))
    pre, post = cache[names.mlp(0, "pre")], cache[names.mlp(0, "post")]
    relu = pre.clamp(min=0)
    kept = post != 0
    assert (kept.sum(-1) <= 5).all() and (kept.sum(-1) == 5).any()
    # every kept unit equals its ReLU; no dropped unit is larger than the smallest kept one
    torch.testing.assert_close(post[kept], relu[kept])
    smallest_kept = torch.where(kept, post, torch.inf).min(-1).values
    largest_dropped = torch.where(kept, -torch.inf, relu).max(-1).values
    assert (largest_dropped <= smallest_kept).all()
    with pytest.raises(ConfigError, match="needs k"):
        workbench.build("gelu-2l-tiny", mlp="topk")
    with pytest.raises(ConfigError, match="1..d_mlp"):
        workbench.build("gelu-2l-tiny", mlp={"kind": "topk", "k": 65})


@pytest.mark.parametrize("mask", ["causal", "bidirectional"])
def test_sliding_window_hides_far_keys(mask: str, gen: torch.Generator) -> None:
    model = workbench.build("gpt2-small-tiny", window=3, mask=mask, seed=1)
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 10), generator=gen))
    pattern = cache[names.attn_pattern(1)]
    q, k = torch.arange(10)[:, None], torch.arange(10)[None, :]
    visible = (q - k).abs() < 3
    if mask == "causal":
        visible &= k <= q
    assert (pattern[..., ~visible] == 0).all()
    assert (pattern[..., visible] > 0).all()
    # a window as long as the input is full attention
    full = workbench.build("gpt2-small-tiny", mask=mask, seed=1)
    wide = workbench.build("gpt2-small-tiny", mask=mask, window=10, seed=1)
    tokens = torch.randint(0, 50, (2, 10), generator=gen)
    torch.testing.assert_close(wide(tokens), full(tokens))


def test_t5_bias_adds_the_bucket_table_to_the_scores(gen: torch.Generator) -> None:
    model = workbench.build("t5-bias-small-tiny", seed=2)
    attn = model.blocks[0].attn
    tokens = torch.randint(0, 50, (1, 12), generator=gen)
    _, cache = model.run_with_cache(tokens)
    bias = cache[names.attn(0, "rel_bias")]
    buckets = t5_buckets(12, 12, False, attn.rel_bias.shape[0], attn.rel_max_distance)
    torch.testing.assert_close(bias, attn.rel_bias[buckets].permute(2, 0, 1))
    q, k = cache[names.attn(0, "q")], cache[names.attn(0, "k")]
    raw = torch.einsum("bqhe,bkhe->bhqk", q, k) / q.shape[-1] ** 0.5 + bias
    raw = raw.masked_fill(torch.ones(12, 12, dtype=torch.bool).triu(1), float("-inf"))
    torch.testing.assert_close(cache[names.attn_scores(0)], raw, atol=1e-5, rtol=1e-5)


def _cache(preset: str, gen: torch.Generator, n: int = 9, **overrides):
    model = workbench.build(preset, seed=3, **overrides)
    tokens = torch.randint(0, model.config.d_vocab, (2, n), generator=gen)
    return model, tokens, model.run_with_cache(tokens)[1]


def test_clipped_softmax_matches_bondarenko_formula(gen: torch.Generator) -> None:
    model = workbench.build("clipped-softmax-small-tiny", seed=3)
    with torch.no_grad():
        model.blocks[0].attn.W_Q.mul_(100)  # peaked attention, as after training
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 9), generator=gen))
    gamma, zeta = model.config.attention.gamma, model.config.attention.zeta
    pattern = cache[names.attn_pattern(0)]
    expected = ((zeta - gamma) * cache[names.attn_scores(0)].softmax(-1) + gamma).clamp(0, 1)
    torch.testing.assert_close(pattern, expected)
    causal_part = pattern[..., torch.ones(9, 9, dtype=torch.bool).tril()]
    assert (causal_part == 0).any()  # exact zeros: a head can attend to nothing in particular


def test_gated_attention_scales_each_head_by_its_gate(gen: torch.Generator) -> None:
    model, tokens, cache = _cache("gated-attn-small-tiny", gen)
    attn = model.blocks[0].attn
    x = model.blocks[0].ln1(cache[names.resid_pre(0)])  # attention's input
    gate = torch.sigmoid(x @ attn.W_G + attn.b_G)
    torch.testing.assert_close(cache[names.attn(0, "gate")], gate)
    v = cache[names.attn(0, "v")]
    ungated = torch.einsum("bhqk,bkhe->bqhe", cache[names.attn_pattern(0)], v)
    torch.testing.assert_close(cache[names.attn_z(0)], ungated * gate[..., None])

    def close_head_2(g: torch.Tensor, hook) -> torch.Tensor:
        g = g.clone()
        g[:, :, 2] = 0
        return g

    with model.hooks(fwd_hooks=[(names.attn(0, "gate"), close_head_2)]):
        _, patched = model.run_with_cache(tokens, names_filter=[names.attn_result(0)])
    assert (patched[names.attn_result(0)][:, :, 2] == 0).all()


def test_forgetting_attention_matches_explicit_products_of_gates(gen: torch.Generator) -> None:
    _, _, cache = _cache("fox-small-tiny", gen)
    q, k = cache[names.attn(1, "q")].double(), cache[names.attn(1, "k")].double()
    f = cache[names.attn(1, "forget_gate")].double()  # [batch, pos, head]
    b, n, h, d = q.shape
    expected = torch.zeros(b, h, n, n, dtype=torch.float64)
    for bi in range(b):
        for hi in range(h):
            for i in range(n):
                weights = []
                for j in range(i + 1):
                    decay = torch.prod(f[bi, j + 1 : i + 1, hi])  # forget every step after j
                    weights.append(torch.exp(q[bi, i, hi] @ k[bi, j, hi] / d**0.5) * decay)
                row = torch.stack(weights)
                expected[bi, hi, i, : i + 1] = row / row.sum()
    torch.testing.assert_close(
        cache[names.attn_pattern(1)].double(), expected, atol=1e-5, rtol=1e-5
    )


def test_forgetting_attention_with_gates_open_is_plain_softmax(gen: torch.Generator) -> None:
    fox = workbench.build("fox-small-tiny", seed=3)
    plain = workbench.build("fox-small-tiny", attention="softmax", seed=3)
    state = {k: v for k, v in fox.state_dict().items() if "W_F" not in k and "b_F" not in k}
    plain.load_state_dict(state)
    tokens = torch.randint(0, 50, (2, 9), generator=gen)
    opened = fox.run_with_hooks(
        tokens,
        fwd_hooks=[(lambda name: name.endswith("forget_gate"), lambda g, hook: torch.ones_like(g))],
    )
    torch.testing.assert_close(opened, plain(tokens), atol=1e-5, rtol=1e-5)


def test_linear_attention_parallel_form_equals_recurrent_form(gen: torch.Generator) -> None:
    _, _, cache = _cache("linear-attn-small-tiny", gen, n=12)
    phi_q = F.elu(cache[names.attn(0, "q")].double()) + 1
    phi_k = F.elu(cache[names.attn(0, "k")].double()) + 1
    v = cache[names.attn(0, "v")].double()
    b, n, h, d = v.shape
    state = torch.zeros(b, h, d, d, dtype=torch.float64)  # sum of phi(k_j) v_j^T
    norm = torch.zeros(b, h, d, dtype=torch.float64)  # sum of phi(k_j)
    outputs = []
    for i in range(n):  # the RNN of Katharopoulos et al., one token at a time
        state = state + torch.einsum("bhe,bhf->bhef", phi_k[:, i], v[:, i])
        norm = norm + phi_k[:, i]
        num = torch.einsum("bhe,bhef->bhf", phi_q[:, i], state)
        den = torch.einsum("bhe,bhe->bh", phi_q[:, i], norm)[..., None]
        outputs.append(num / den)
    recurrent = torch.stack(outputs, dim=1)  # [batch, pos, head, d_head]
    torch.testing.assert_close(cache[names.attn_z(0)].double(), recurrent, atol=1e-5, rtol=1e-5)
    pattern = cache[names.attn_pattern(0)]
    torch.testing.assert_close(pattern.sum(-1), torch.ones_like(pattern.sum(-1)))
    assert (pattern[..., torch.ones(12, 12, dtype=torch.bool).triu(1)] == 0).all()


def test_incompatible_attention_options_fail_at_config_time() -> None:
    with pytest.raises(ConfigError, match="causal by construction"):
        workbench.build("fox-small-tiny", mask="bidirectional")
    with pytest.raises(ConfigError, match="linear attention"):
        workbench.build("linear-attn-small-tiny", pos="alibi")
    for kind in ("linear", "gated_linear", "delta"):  # FIRE was accepted and then ignored
        with pytest.raises(ConfigError, match="pos=fire adds a bias to softmax scores"):
            workbench.build("gpt2-small-tiny", attention=kind, pos="fire")
    with pytest.raises(ConfigError, match="attention.gamma <= 0"):
        workbench.build("clipped-softmax-small-tiny", **{"attention.gamma": 0.1})
    with pytest.raises(ConfigError, match="must be even"):
        workbench.build("llama-7b-tiny", d_head=7, **{"pos.dim": None})
    with pytest.raises(ConfigError, match="n_kv_heads=None"):
        workbench.build("gpt2-small-tiny", attention="pooling", n_kv_heads=2)
    with pytest.raises(ConfigError, match="odd"):
        workbench.build("poolformer-patch4-tiny", **{"attention.size": 2})
    with pytest.raises(ConfigError, match="n_kv_heads=None"):
        workbench.build("minimal-small-tiny", n_kv_heads=2)
    with pytest.raises(ConfigError, match="head_mixing='dense'"):
        workbench.build("minimal-small-tiny", head_mixing="kronecker")


def test_gated_linear_attention_parallel_form_equals_recurrence(gen: torch.Generator) -> None:
    _, _, cache = _cache("gla-small-tiny", gen, n=10)
    q, k, v = (cache[names.attn(0, s)].double() for s in ("q", "k", "v"))
    alpha = cache[names.attn(0, "decay")].double()  # [batch, pos, head, d_head]
    b, n, h, d = q.shape
    state = torch.zeros(b, h, d, d, dtype=torch.float64)  # [key dim, value dim]
    outputs = []
    for t in range(n):  # S_t = diag(alpha_t) S_(t-1) + k_t v_t^T ; o_t = S_t^T q_t
        state = alpha[:, t, :, :, None] * state + torch.einsum("bhe,bhf->bhef", k[:, t], v[:, t])
        outputs.append(torch.einsum("bhef,bhe->bhf", state, q[:, t]))
    recurrent = torch.stack(outputs, dim=1)
    torch.testing.assert_close(cache[names.attn_z(0)].double(), recurrent, atol=1e-5, rtol=1e-4)


# error bound as a fraction of the largest output: the rounding of the model's own
# half-precision steps (measured: bf16 0.6%, fp16 0.07%, float32 2e-7)
DELTA_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 4e-3}


@pytest.mark.parametrize("dtype", list(DELTA_TOLERANCE), ids=str)
def test_delta_rule_parallel_form_equals_recurrence(
    dtype: torch.dtype, gen: torch.Generator
) -> None:
    # in half precision the triangular solve runs in float32 (torch has none for half on
    # CPU); the recurrence runs in float64 on the model's own q, k, v and beta
    model = workbench.build("deltanet-small-tiny", seed=3).to(dtype)
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 10), generator=gen))
    q = F.normalize(cache[names.attn(0, "q")].double(), dim=-1)
    k = F.normalize(cache[names.attn(0, "k")].double(), dim=-1)
    v = cache[names.attn(0, "v")].double()
    beta = cache[names.attn(0, "beta")].double()  # [batch, pos, head]
    b, n, h, d = q.shape
    state = torch.zeros(b, h, d, d, dtype=torch.float64)  # S maps keys to values: [value, key]
    outputs = []
    for t in range(n):  # S_t = S_(t-1) + beta_t (v_t - S_(t-1) k_t) k_t^T ; o_t = S_t q_t
        predicted = torch.einsum("bhfe,bhe->bhf", state, k[:, t])
        update = beta[:, t, :, None] * (v[:, t] - predicted)
        state = state + torch.einsum("bhf,bhe->bhfe", update, k[:, t])
        outputs.append(torch.einsum("bhfe,bhe->bhf", state, q[:, t]))
    recurrent = torch.stack(outputs, dim=1)
    z = cache[names.attn_z(0)]
    assert z.dtype == dtype
    atol = DELTA_TOLERANCE[dtype] * recurrent.abs().max().item()
    torch.testing.assert_close(z.double(), recurrent, atol=atol, rtol=0)
    with pytest.raises(ConfigError, match="causal recurrence"):
        workbench.build("deltanet-small-tiny", window=4)


def test_kv_shifting_mixes_each_key_and_value_with_the_previous(gen: torch.Generator) -> None:
    model = workbench.build("kv-shift-small-tiny", seed=3)
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.shift_k.copy_(torch.randn(2, 4, generator=gen))
        attn.shift_v.copy_(torch.randn(2, 4, generator=gen))
    _, cache = model.run_with_cache(torch.randint(0, 50, (2, 8), generator=gen))
    for site, weights in (("k", attn.shift_k), ("v", attn.shift_v)):
        x = cache[names.attn(0, site)]
        shifted = cache[names.attn(0, f"shifted_{site}")]
        for t in range(8):
            expected = weights[0, :, None] * x[:, t]
            if t > 0:
                expected = expected + weights[1, :, None] * x[:, t - 1]
            torch.testing.assert_close(shifted[:, t], expected)


def test_momentum_shears_queries_and_keys_by_their_velocity(gen: torch.Generator) -> None:
    model, _, cache = _cache("momentum-small-tiny", gen)
    gamma = model.config.momentum
    for site in ("q", "k"):
        x = cache[names.attn(0, site)]
        velocity = torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)
        torch.testing.assert_close(cache[names.attn(0, f"momentum_{site}")], x + gamma * velocity)


def test_key_value_transformer_scores_are_symmetric(gen: torch.Generator) -> None:
    model, _, cache = _cache("kv-transformer-small-tiny", gen, mask="bidirectional")
    assert not hasattr(model.blocks[0].attn, "W_Q")
    torch.testing.assert_close(cache[names.attn(0, "q")], cache[names.attn(0, "k")])
    scores = cache[names.attn_scores(0)]
    torch.testing.assert_close(scores, scores.transpose(-1, -2))


def test_xpos_scores_decay_per_frequency_with_distance(gen: torch.Generator) -> None:
    model, _, cache = _cache("xpos-small-tiny", gen, n=12)
    cfg = model.config
    q, k = cache[names.attn(0, "q")].double(), cache[names.attn(0, "k")].double()
    cos, sin = rotary_angles(12, cfg.d_head, cfg.pos.base)
    rq, rk = (
        apply_rotary(q, cos.double(), sin.double()),
        apply_rotary(k, cos.double(), sin.double()),
    )
    half = cfg.d_head // 2
    zeta = (torch.arange(half, dtype=torch.float64) * 2 / cfg.d_head + 0.4) / 1.4
    for n in range(12):
        for m in range(n + 1):
            decay = zeta ** ((n - m) / cfg.pos.scale_base)  # Sun et al.: zeta^(n - m) / B
            pair = rq[:, n, :, :half] * rk[:, m, :, :half] + rq[:, n, :, half:] * rk[:, m, :, half:]
            expected = (pair * decay).sum(-1) / cfg.d_head**0.5  # [batch, head]
            got = cache[names.attn_scores(0)][:, :, n, m].double()
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="xpos"):
        workbench.build("xpos-small-tiny", mask="bidirectional")


def test_shaw_relative_positions_match_the_papers_equations(gen: torch.Generator) -> None:
    model = workbench.build("shaw-small-tiny", seed=3, **{"pos.max_distance": 3})
    tokens = torch.randint(0, 50, (2, 9), generator=gen)
    _, cache = model.run_with_cache(tokens)
    attn = model.blocks[1].attn
    q, k, v = (cache[names.attn(1, s)].double() for s in ("q", "k", "v"))
    wk, wv = attn.shaw_k.double(), attn.shaw_v.double()
    b, n, h, d = q.shape
    z = torch.zeros(b, n, h, d, dtype=torch.float64)
    for i in range(n):
        rel = [max(-3, min(3, j - i)) + 3 for j in range(i + 1)]  # clip(j - i, -k, k)
        e = torch.einsum(
            "bhe,jbhe->bhj", q[:, i], k[:, : i + 1].transpose(0, 1) + wk[rel][:, None, None]
        )
        alpha = (e / d**0.5).softmax(-1)  # eq. (4)-(5): e_ij = q_i (k_j + a^K_ij) / sqrt(d)
        values = v[:, : i + 1] + wv[rel][None, :, None]  # eq. (3): z_i = sum a_ij (v_j + a^V_ij)
        z[:, i] = torch.einsum("bhj,bjhe->bhe", alpha, values)
    torch.testing.assert_close(cache[names.attn_z(1)].double(), z, atol=1e-5, rtol=1e-5)


def test_fire_bias_matches_the_papers_formula(gen: torch.Generator) -> None:
    model = workbench.build("fire-small-tiny", seed=3)
    fire = model.blocks[0].attn.fire
    with torch.no_grad():
        fire.W_in.normal_(generator=gen)
        fire.W_out.normal_(generator=gen)
        fire.threshold.fill_(5.0)  # shorter than the input: both branches of max(L, i) occur
    _, cache = model.run_with_cache(torch.randint(0, 50, (1, 10), generator=gen))
    bias = cache[names.attn(0, "rel_bias")]
    c = float(fire.c.detach())
    for i in range(10):
        for j in range(i + 1):
            x = math.log(c * (i - j) + 1) / math.log(c * max(5.0, i) + 1)  # psi(i-j)/psi(max(L,i))
            hidden = torch.relu(x * fire.W_in[0] + fire.b_in)
            torch.testing.assert_close(bias[:, i, j], hidden @ fire.W_out + fire.b_out)


@pytest.mark.parametrize(
    "preset", ["looped-4x-tiny", "algoformer-tiny", "shared-layers-small-tiny"]
)
def test_weight_ties_share_parameters_and_keep_a_hook_tree_per_iteration(
    preset: str, gen: torch.Generator, tmp_path
) -> None:
    model = workbench.build(preset, seed=2)
    ties = model.config.weight_ties
    for layer, owner in enumerate(ties):
        assert model.blocks[layer].attn.W_Q is model.blocks[owner].attn.W_Q
    distinct = sum(p.numel() for p in model.parameters())
    untied = workbench.build(preset, weight_ties=None)
    assert distinct < sum(p.numel() for p in untied.parameters())
    # the shared model is the untied one with copied weights: same function
    state = untied.state_dict()
    for key in state:
        if key.startswith("blocks."):
            layer = int(key.split(".")[1])
            owner_key = key.replace(f"blocks.{layer}.", f"blocks.{ties[layer]}.", 1)
            state[key] = model.state_dict()[owner_key]
        else:
            state[key] = model.state_dict()[key]
    untied.load_state_dict(state)
    tokens = torch.randint(0, model.config.d_vocab, (2, 8), generator=gen)
    torch.testing.assert_close(model(tokens), untied(tokens))
    _, cache = model.run_with_cache(tokens)
    assert {names.resid_post(i) for i in range(len(ties))} <= set(cache.keys())
    # the loop iterations see different inputs with the same weights
    assert not torch.allclose(
        cache[names.attn_pattern(0)], cache[names.attn_pattern(len(ties) - 1)]
    )
    workbench.checkpoint.save(model, tmp_path / "ck")
    loaded = workbench.load(tmp_path / "ck")
    assert torch.equal(loaded(tokens), model(tokens))
    assert loaded.blocks[len(ties) - 1].attn.W_Q is loaded.blocks[ties[-1]].attn.W_Q
    with pytest.raises(ConfigError, match="weight_ties"):
        workbench.build(preset, weight_ties=(0, 1))


def test_denseformer_averages_all_earlier_outputs(gen: torch.Generator) -> None:
    model = workbench.build("denseformer-small-tiny", seed=2)
    tokens = torch.randint(0, 50, (2, 8), generator=gen)
    plain = workbench.build("denseformer-small-tiny", depth_weighted=False, seed=2)
    torch.testing.assert_close(model(tokens), plain(tokens))  # one-hot init: a plain stack
    with torch.no_grad():
        for weights in model.dwa_weights:
            weights.copy_(torch.randn(weights.shape, generator=gen))
    _, cache = model.run_with_cache(tokens)
    outputs = [cache[names.EMBED] + cache[names.POS_EMBED]]
    for layer in range(model.config.n_layers):
        outputs.append(cache[names.resid_post(layer)])
        weights = model.depth_weights()[layer, : layer + 2]
        expected = sum(w * out for w, out in zip(weights, outputs, strict=True))
        torch.testing.assert_close(cache[names.block(layer, "hook_dwa")], expected)
        if layer + 1 < model.config.n_layers:
            torch.testing.assert_close(cache[names.resid_pre(layer + 1)], expected)
    with pytest.raises(ConfigError, match="no depth-weighted"):
        plain.depth_weights()


def test_vit_patch_embedding_equals_a_strided_convolution(gen: torch.Generator) -> None:
    # Hugging Face's ViT embeds patches with Conv2d(kernel = stride = patch): the same map
    model = workbench.build("vit-base-patch16-tiny", seed=1)
    cfg, embed = model.config, model.input_embed
    images = torch.randn(
        2, cfg.input.channels, cfg.input.image_size, cfg.input.image_size, generator=gen
    )
    _, cache = model.run_with_cache(images)
    p = cfg.input.patch_size
    kernel = embed.W_patch.T.reshape(cfg.d_model, cfg.input.channels, p, p)
    conv = F.conv2d(images, kernel, embed.b_patch, stride=p).flatten(2).transpose(1, 2)
    torch.testing.assert_close(cache[names.EMBED][:, 1:], conv, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cache[names.EMBED][:, 0], embed.cls_token.expand(2, -1))
    assert cache[names.LOGITS].shape == (2, cfg.n_patches + 1, cfg.d_vocab)


def test_vision_model_refuses_token_ids_and_wrong_image_shapes(gen: torch.Generator) -> None:
    model = workbench.build("vit-tiny-patch4")
    with pytest.raises(InputError, match="this is a vision model: pass images"):
        model(torch.randint(0, 4, (2, 17)))
    with pytest.raises(InputError, match=r"\[batch, 1, 16, 16\], got \(2, 1, 8, 8\)"):
        model(torch.randn(2, 1, 8, 8))
    with pytest.raises(ConfigError, match="set n_ctx=17"):
        workbench.build("vit-tiny-patch4", n_ctx=16)
    with pytest.raises(ConfigError, match="dividing image_size"):
        workbench.build("vit-tiny-patch4", **{"input.patch_size": 5})


def test_mlm_head_is_dense_gelu_layernorm_then_tied_unembedding(gen: torch.Generator) -> None:
    model = workbench.build("bert-base-tiny", seed=2)
    tokens = torch.randint(0, 50, (2, 7), generator=gen)
    _, cache = model.run_with_cache(tokens)
    head = model.mlm
    hidden = cache[names.resid_post(model.config.n_layers - 1)]
    act = F.gelu(hidden @ head.W_dense + head.b_dense)
    torch.testing.assert_close(cache["mlm.hook_act"], act)
    normed = F.layer_norm(act, (act.shape[-1],), head.ln.w, head.ln.b, model.config.norm_eps)
    torch.testing.assert_close(cache[names.LOGITS], normed @ model.W_E.T + model.b_U)


def test_itransformer_embeds_each_variates_window_as_one_token(gen: torch.Generator) -> None:
    model = workbench.build("itransformer-tiny", seed=1)
    cfg, embed = model.config, model.input_embed
    series = torch.randn(2, cfg.input.lookback, 5, generator=gen)
    _, cache = model.run_with_cache(series)
    expected = torch.einsum("btv,td->bvd", series, embed.W_series) + embed.b_series
    torch.testing.assert_close(cache[names.EMBED], expected, atol=1e-5, rtol=1e-5)
    assert cache[names.attn_pattern(0)].shape == (2, cfg.n_heads, 5, 5)  # variates attend
    assert cache[names.LOGITS].shape == (2, 5, cfg.d_vocab)  # a forecast per variate
    # the variates are unordered: permuting them permutes the forecasts
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(
        model(series[:, :, perm]), model(series)[:, perm], atol=1e-5, rtol=1e-5
    )
    with pytest.raises(InputError, match="series model"):
        model(torch.randint(0, 5, (2, 5)))
    with pytest.raises(InputError, match=r"\[batch, 32, variates\]"):
        model(torch.randn(2, 10, 5))


def test_group_rational_kan_matches_the_safe_pade_formula(gen: torch.Generator) -> None:
    model = workbench.build("kan-small-tiny", seed=1)
    mlp = model.blocks[0].mlp
    tokens = torch.randint(0, 50, (2, 6), generator=gen)
    _, cache = model.run_with_cache(tokens)
    x = model.blocks[0].ln2(cache[names.resid_mid(0)])  # the MLP's input
    linear = (x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out
    torch.testing.assert_close(cache[names.mlp_out(0)], linear)  # identity init: a linear MLP
    with torch.no_grad():
        for rational in (mlp.rational_in, mlp.rational_out):
            rational.numerator.normal_(generator=gen)
            rational.denominator.normal_(generator=gen)
    _, cache = model.run_with_cache(tokens)
    x = model.blocks[0].ln2(cache[names.resid_mid(0)]).double()
    a, b = mlp.rational_in.numerator.double(), mlp.rational_in.denominator.double()
    width = x.shape[-1] // 8
    expected = torch.empty_like(x)
    for c in range(x.shape[-1]):  # channel c uses the rational function of group c // width
        g, v = c // width, x[..., c]
        p = sum(a[g, i] * v**i for i in range(6))
        q = sum(b[g, i - 1] * v**i for i in range(1, 5))
        expected[..., c] = p / (1 + q.abs())
    torch.testing.assert_close(
        cache[names.mlp(0, "in_act")].double(), expected, atol=1e-5, rtol=1e-4
    )
    with pytest.raises(ConfigError, match="mlp.groups"):
        workbench.build("kan-small-tiny", **{"mlp.groups": 5})


def test_peg_is_a_depthwise_convolution_over_the_patch_grid(gen: torch.Generator) -> None:
    model = workbench.build("cpvt-tiny-patch4", seed=1)
    images = torch.randn(2, 1, 16, 16, generator=gen)
    _, cache = model.run_with_cache(images)
    after_block = cache[names.resid_post(0)]
    conv = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64)  # torch's own depthwise conv
    with torch.no_grad():
        conv.weight.copy_(model.peg.W_conv)
        conv.bias.copy_(model.peg.b_conv)
    grid = after_block[:, 1:].transpose(1, 2).reshape(2, 64, 4, 4)
    expected = conv(grid).flatten(2).transpose(1, 2)
    torch.testing.assert_close(cache["peg.hook_out"], expected, atol=1e-5, rtol=1e-5)
    block1_in = cache[names.resid_pre(1)]
    torch.testing.assert_close(block1_in[:, 0], after_block[:, 0])  # class token unchanged
    torch.testing.assert_close(
        block1_in[:, 1:], after_block[:, 1:] + expected, atol=1e-5, rtol=1e-5
    )
    assert names.POS_EMBED not in model.hook_dict  # no absolute positions
    with pytest.raises(ConfigError, match="pos='peg'"):
        workbench.build("gpt2-small-tiny", pos="peg")


def test_abacus_positions_count_places_within_each_number(gen: torch.Generator) -> None:
    task = make_task("addition", max_digits=4)
    model = workbench.build("abacus-small-tiny", seed=1)
    batch = task.sample(8, gen)
    _, cache = model.run_with_cache(batch.tokens)
    for row, tokens in enumerate(batch.tokens.tolist()):
        place, expected = 0, []
        for token in tokens:  # count along each number, restart after any other token
            place = place + 1 if 5 <= token < 15 else 0
            expected.append(place)
        torch.testing.assert_close(cache[names.POS_EMBED][row], model.W_pos[torch.tensor(expected)])
    with pytest.raises(ConfigError, match="pos.digits"):
        workbench.build("abacus-small-tiny", **{"pos.digits": None})


def test_abacus_offset_shifts_digit_places_in_training_only(gen: torch.Generator) -> None:
    # McLeish et al. 2024: in training, every sequence's digit places move by a random offset
    task = make_task("addition", max_digits=3)
    model = workbench.build("abacus-small-tiny", **{"pos.max_offset": 6}, seed=1)
    tokens = task.sample(16, gen).tokens
    base = workbench.components.positional.abacus_positions(tokens, model.digit_ids)
    abacus = model.embedded_positions
    assert isinstance(abacus, AbacusPositions)
    model.train()
    shifted = abacus.places(model, tokens)
    assert (shifted[base == 0] == 0).all()  # non-digits keep place 0
    shift = (shifted - base).where(base > 0, -1).max(dim=1).values  # one offset per sequence
    assert ((shifted - base)[base > 0] == shift[:, None].expand_as(base)[base > 0]).all()
    assert shift.min() >= 0 and shift.max() <= 6 and len(set(shift.tolist())) > 1
    assert model.W_pos.shape[0] == model.config.n_ctx + 1 + 6
    model.eval()
    torch.testing.assert_close(abacus.places(model, tokens), base)
    with pytest.raises(ConfigError, match="no parameter 'max_offset'"):
        workbench.build("gelu-2l-tiny", **{"pos.max_offset": 4})
