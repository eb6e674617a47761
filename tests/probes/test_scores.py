"""The neuron view's terms against the model's own scores and pattern hooks, for every
preset's tiny twin and more combinations of options, at every layer, head and query: the
terms add up to the scores hook's row, their softmax (clipped where the kind clips) is the
pattern's row, and the factors of the mixing kinds recombine to their pattern (GLA and
DeltaNet also against their recurrences, run with one-hot values). A hand-built model gives
known scores; bad input is refused."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import workbench
from probes.scores import ScoreTerms, score_hooks, score_terms, terms_from_cache
from tests.conftest import example_input, tiny_presets
from workbench import names
from workbench.config import ModelConfig
from workbench.errors import InputError
from workbench.options import ClippedSoftmax, Delta, GatedLinear, Linear, Pooling, Sinkhorn

# combinations no preset has: grouped keys through key shift, rotation and momentum into
# linear and recurrent kinds, biases in the reduced forms, clipped softmax with windows
COMBINATIONS = {
    "linear+rotary+gqa+shift+momentum": (
        "linear-attn-small-tiny",
        dict(pos="rotary", n_kv_heads=2, kv_shift=True, momentum=0.5),
    ),
    "linear+window": ("linear-attn-small-tiny", dict(window=3)),
    "gla+rotary+gqa": ("gla-small-tiny", dict(pos="rotary", n_kv_heads=2)),
    "delta+mqa+shift": ("deltanet-small-tiny", dict(n_kv_heads=1, kv_shift=True)),
    "clipped+alibi+bidirectional+window": (
        "bloom-560m-tiny",
        dict(attention="clipped_softmax", mask="bidirectional", window=3),
    ),
    "collapsed+t5+bidirectional": (
        "collapsed-qk-small-tiny",
        dict(pos="t5_bias", mask="bidirectional"),
    ),
    "symmetric+alibi": ("symmetric-wqk-small-tiny", dict(pos="alibi")),
    "shaw+clip+gqa+shift+momentum": (
        "shaw-small-tiny",
        {"pos.max_distance": 3, "n_kv_heads": 2, "kv_shift": True, "momentum": 0.3},
    ),
    "forgetting+fire+window": ("fox-small-tiny", dict(pos="fire", window=4)),
    "forgetting+alibi+rotary-free": ("fox-small-tiny", dict(pos="alibi")),
    "xpos+kv-transformer+partial": ("xpos-small-tiny", {"qk_form": "shared", "pos.dim": 4}),
    "pooling-causal-tokens": ("gpt2-small-tiny", dict(attention={"kind": "pooling", "size": 3})),
    "pooling-centred-tokens": (
        "bert-base-tiny",
        dict(attention={"kind": "pooling", "size": 3}, mask="bidirectional"),
    ),
}

# attention parameters scaled up so that every term is of order 1, not 0.02's order
SHARPENED = {"W_Q", "W_K", "W_QK", "W_QK_upper", "shaw_k", "rel_bias", "W_F", "W_alpha"}
SHARPENED |= {"W_beta", "W_in", "W_out"}  # W_in, W_out: FIRE's MLP (only those in .attn.)


def sharpened(preset: str, overrides: dict, factor: float = 10.0):
    """The preset's model with its attention parameters scaled by `factor`, and key shifts
    that mix in the previous key (they start as the identity)."""
    model = workbench.build(preset, seed=3, **overrides)
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if ".attn." in name and leaf in SHARPENED:
                p.mul_(factor)
            elif leaf == "shift_k":
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
    return model


CASES = {name: (name, {}) for name in tiny_presets()} | COMBINATIONS


@pytest.mark.parametrize("case", list(CASES))
def test_terms_reproduce_the_scores_and_pattern_hooks(case: str) -> None:
    preset, overrides = CASES[case]
    model = sharpened(preset, overrides)
    cfg = model.config
    gen = torch.Generator().manual_seed(5)
    example = example_input(model, 1, 9, gen)
    hooks = [h for layer in range(cfg.n_layers) for h in score_hooks(cfg, layer)]
    _, cache = model.run_with_cache(example, names_filter=hooks)
    n = cache[names.attn_pattern(0)].shape[-1]
    for layer in range(cfg.n_layers):
        for head in range(cfg.n_heads):
            for query in range(n):
                terms = terms_from_cache(cfg, cache, layer, head, query)
                check_terms(cfg, cache, terms)
    # the public entry point, from one example without its batch dimension, agrees
    layer, head, query = cfg.n_layers - 1, cfg.n_heads - 1, n // 2
    once = score_terms(model, example[0], layer, head, query)
    assert once.to_json() == terms_from_cache(cfg, cache, layer, head, query).to_json()


def check_terms(cfg: ModelConfig, cache, t: ScoreTerms) -> None:
    cfg = cfg.layer(t.layer)  # hybrids: this layer's attention kind and positions
    pattern_row = cache[names.attn_pattern(t.layer)][0, t.head, t.query].double()
    torch.testing.assert_close(t.pattern, pattern_row, rtol=1e-5, atol=1e-6)
    if isinstance(cfg.attention, Pooling):
        assert t.scores is None and t.query_vector is None and not t.terms
        return
    scores_row = cache[names.attn_scores(t.layer)][0, t.head, t.query].double()
    visible = ~t.masked
    first = next(iter(t.terms.values()))
    torch.testing.assert_close((t.product.sum(-1) * t.scale)[visible], first[visible])
    assert torch.isnan(first[t.masked]).all()
    total = torch.stack(list(t.terms.values())).sum(0)
    torch.testing.assert_close(total[visible], scores_row[visible], rtol=1e-5, atol=1e-6)
    if cfg.attention.softmax_scores:
        assert torch.equal(torch.isinf(scores_row), t.masked)
        pattern = total.masked_fill(t.masked, -math.inf).softmax(-1)
        if isinstance(cfg.attention, ClippedSoftmax):
            gamma, zeta = cfg.attention.gamma, cfg.attention.zeta
            pattern = ((zeta - gamma) * pattern + gamma).clamp(0, 1)
        if isinstance(cfg.attention, Sinkhorn):  # plain alternating normalisation, every row
            scores = cache[names.attn_scores(t.layer)][0, t.head].double()
            p = (scores - scores.max()).exp()
            p = p / p.sum(-1, keepdim=True)
            for step in range(1, cfg.attention.iterations):  # rows first, then in turn
                p = p / p.sum(-1 if step % 2 == 0 else -2, keepdim=True)
            pattern = p[t.query]
    else:
        assert (scores_row[t.masked] == 0).all()
        kernel = total.nan_to_num(0.0)
        pattern = {
            Linear: lambda: kernel / kernel.sum(),
            GatedLinear: lambda: gla_recurrence(cfg, cache, t),
            Delta: lambda: delta_recurrence(cfg, cache, t),
        }[type(cfg.attention)]()
    torch.testing.assert_close(pattern, pattern_row, rtol=1e-5, atol=1e-6)


def vectors(cfg: ModelConfig, cache, t: ScoreTerms) -> tuple[torch.Tensor, torch.Tensor]:
    """Every position's query (this head) and key (its key head), from the hook `t` names."""
    q_hook, k_hook = t.hooks[:2]
    q = cache[q_hook][0, :, t.head].double()
    k = cache[k_hook][0, :, t.head // (cfg.n_heads // cfg.kv_heads)].double()
    return q, k


def gla_recurrence(cfg: ModelConfig, cache, t: ScoreTerms) -> torch.Tensor:
    """S_t = diag(alpha_t) S_(t-1) + k_t v_t^T, o_t = S_t^T q_t with v_t = e_t: o_i is row i."""
    q, k = vectors(cfg, cache, t)
    alpha = cache[names.attn(t.layer, "decay")][0, :, t.head].double()
    n = q.shape[0]
    state = torch.zeros(q.shape[1], n, dtype=torch.float64)
    for step in range(t.query + 1):
        state = alpha[step][:, None] * state + torch.outer(k[step], torch.eye(n)[step].double())
    return state.T @ q[t.query]


def delta_recurrence(cfg: ModelConfig, cache, t: ScoreTerms) -> torch.Tensor:
    """S_t = S_(t-1) + beta_t (v_t - S_(t-1) k_t) k_t^T, o_t = S_t q_t, unit q and k, v_t = e_t."""
    q, k = (F.normalize(x, dim=-1) for x in vectors(cfg, cache, t))
    beta = cache[names.attn(t.layer, "beta")][0, :, t.head].double()
    n = q.shape[0]
    state = torch.zeros(n, q.shape[1], dtype=torch.float64)
    for step in range(t.query + 1):
        v = torch.eye(n, dtype=torch.float64)[step]
        state = state + beta[step] * torch.outer(v - state @ k[step], k[step])
    torch.testing.assert_close(t.transfer.tril(), t.transfer)  # T is lower triangular
    return state @ q[t.query]


def hand_built(**overrides) -> workbench.Transformer:
    """One layer, one head, no norm, no positions: token t embeds as e_t, so W_Q and W_K
    set the scores. q(0) = (1, 0), q(1) = (0, 1); k(0) = (2, 0), k(2) = (0, 3)."""
    fields = dict(
        n_layers=1,
        d_model=4,
        n_heads=1,
        d_head=2,
        d_vocab=4,
        n_ctx=8,
        mlp="none",
        norm="none",
        pos="none",
        bias=False,
    )
    cfg = ModelConfig(**(fields | overrides))
    model = workbench.build(cfg, seed=0)
    attn = model.blocks[0].attn
    with torch.no_grad():
        model.W_E.copy_(torch.eye(4))
        attn.W_Q.zero_()
        attn.W_Q[0, 0, 0], attn.W_Q[0, 1, 1] = 1.0, 1.0
        attn.W_K.zero_()
        attn.W_K[0, 0, 0], attn.W_K[0, 2, 1] = 2.0, 3.0
    return model


def test_known_scores_of_a_hand_built_model() -> None:
    model = hand_built()
    r2 = math.sqrt(2)
    t = score_terms(model, [0, 2, 1, 0], layer=0, head=0, query=3)  # token 0: q = (1, 0)
    assert t.query_vector.tolist() == [1.0, 0.0]
    assert t.key_vectors.tolist() == [[2, 0], [0, 3], [0, 0], [2, 0]]
    assert t.product.tolist() == [[2, 0], [0, 0], [0, 0], [2, 0]]
    torch.testing.assert_close(t.terms["content"], torch.tensor([2, 0, 0, 2.0]).double() / r2)
    e = math.exp(2 / r2)
    expected = torch.tensor([e, 1, 1, e], dtype=torch.float64) / (2 * e + 2)
    torch.testing.assert_close(t.pattern, expected)
    t = score_terms(model, torch.tensor([0, 2, 1, 0]), layer=0, head=0, query=2)  # q = (0, 1)
    assert t.masked.tolist() == [False, False, False, True]
    assert t.scores[3] == -math.inf and t.pattern[3] == 0 and math.isnan(t.terms["content"][3])
    torch.testing.assert_close(t.scores[:3], torch.tensor([0, 3 / r2, 0]).double())
    assert '"scores": [0.0, 2.12' in t.to_json() and "null" in t.to_json()  # -inf: null


def test_known_alibi_and_forget_terms() -> None:
    slope = 2.0**-8  # ALiBi's slope of a single head
    t = score_terms(hand_built(pos="alibi"), [0, 2, 1, 0], 0, 0, 3)
    torch.testing.assert_close(t.terms["alibi"], -slope * torch.tensor([3, 2, 1, 0.0]).double())
    model = hand_built(attention="forgetting")
    with torch.no_grad():  # f = sigmoid(0) = 1/2 everywhere: D_ij = (i - j) log 1/2
        model.blocks[0].attn.W_F.zero_()
        model.blocks[0].attn.b_F.zero_()
    t = score_terms(model, [0, 2, 1, 0], 0, 0, 3)
    expected = torch.tensor([3, 2, 1, 0.0]).double() * math.log(0.5)
    torch.testing.assert_close(t.terms["forget"], expected)
    torch.testing.assert_close(t.scores, t.terms["content"] + expected)


def test_bad_input_is_refused() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0)
    tokens = [1, 2, 3]
    for args, message in [
        ((2, 0, 0), "layer must be an int in 0..1"),
        ((0, 4, 0), "head must be an int in 0..3"),
        ((0, 0, 3), "query must be an int in 0..2"),
        ((0, 0, -1), "query must be"),
        ((0, True, 0), "head must be"),
    ]:
        with pytest.raises(InputError, match=message):
            score_terms(model, tokens, *args)
    with pytest.raises(InputError, match="one example"):
        score_terms(model, torch.tensor([tokens, tokens]), 0, 0, 0)
    with pytest.raises(InputError, match="no positions"):
        score_terms(model, [], 0, 0, 0)
    with pytest.raises(InputError, match="integer ids"):
        score_terms(model, torch.tensor([1.0, 2.0]), 0, 0, 0)
    with pytest.raises(InputError, match="token ids must lie"):
        score_terms(model, [1, 99], 0, 0, 0)
    with pytest.raises(InputError, match="workbench model"):
        score_terms(torch.nn.Linear(2, 2), tokens, 0, 0, 0)
    vit = workbench.build("vit-tiny-patch4-tiny", seed=0)
    with pytest.raises(InputError, match="one example"):
        score_terms(vit, torch.zeros(16, 16), 0, 0, 0)


def test_a_changed_score_is_refused_not_shown() -> None:
    """A hook that changes the scores (a decomposition the view does not know) is caught."""
    model = workbench.build("gpt2-small-tiny", seed=0)
    model.blocks[0].attn.hook_attn_scores.add_hook(lambda x, hook: x + 0.5)
    try:
        with pytest.raises(InputError, match="cannot decompose layer 0 head 1"):
            score_terms(model, [1, 2, 3], 0, 1, 2)
    finally:
        model.reset_hooks()
