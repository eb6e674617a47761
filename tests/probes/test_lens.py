"""What the model predicts: top-k tokens, the logit lens and direct logit attribution.

The top-k and the lens's last row are the model's own softmax; the lens's first row is the
embedding read out by hand. Direct logit attribution must add up to the model's logit
(difference) on every preset that decomposes (float64, every parameter perturbed so biases,
norm weights and DenseFormer weights are not their trivial initial values), and a last-layer
head or MLP zero-ablated with the norms' scales frozen must move the logit by exactly its
attribution (an independent route)."""

from __future__ import annotations

import json

import pytest
import torch

import probes.logit_attribution as dla_module
from probes.lens import logit_lens, top_predictions
from probes.logit_attribution import direct_logit_attribution
from workbench import names
from workbench.api import build
from workbench.errors import InputError
from workbench.options import Patches, Tokens
from workbench.presets import list_presets

# every token preset's tiny twin decomposes exactly, except these (and why)
REFUSED = {"bert-base-tiny": "masked-LM head"}
DECOMPOSING = 54


def model_of(preset: str, seed: int = 1):
    """The preset's tiny twin in float64, every parameter moved off its initial value."""
    model = build(preset, seed=0).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.3)
    return model.requires_grad_(False)


def tokens_for(model, n: int = 7, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.d_vocab, (min(n, model.config.n_ctx),), generator=gen)


def token_presets() -> list[str]:
    return [
        p.name
        for p in list_presets()
        if p.tiny_of is not None and isinstance(p.config.input, Tokens)
    ]


# ----- top-k ---------------------------------------------------------------------------------


def test_top_predictions_are_the_softmax_top_k() -> None:
    model = model_of("gpt2-small-tiny")
    tokens = tokens_for(model)
    top = top_predictions(model, tokens.tolist(), k=3)
    probs = model(tokens[None])[0].softmax(-1)
    assert top.ids.shape == (len(tokens), 3) and top.predicts == "next token"
    assert torch.equal(top.ids, probs.argsort(-1, descending=True)[:, :3])
    torch.testing.assert_close(top.probs, probs.gather(-1, top.ids), rtol=1e-12, atol=0)
    assert (top.probs[:, :-1] >= top.probs[:, 1:]).all()
    assert json.loads(top.to_json())["ids"] == top.ids.tolist()


def test_a_bidirectional_model_predicts_each_position_and_k_is_capped() -> None:
    model = model_of("bert-base-tiny")
    top = top_predictions(model, tokens_for(model), k=10_000)
    assert top.predicts == "token at this position"
    assert top.ids.shape[1] == model.config.d_vocab
    torch.testing.assert_close(top.probs.sum(-1), torch.ones(len(top.tokens), dtype=torch.float64))


@pytest.mark.parametrize("k", [0, -1, 2.5])
def test_a_bad_k_is_refused(k) -> None:
    model = model_of("attn-only-1l-tiny")
    with pytest.raises(InputError, match="k must be"):
        top_predictions(model, [1, 2, 3], k=k)


# ----- logit lens ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset",
    [
        "gpt2-small-tiny",  # LayerNorm
        "llama-7b-tiny",  # RMSNorm
        "attn-only-2l-tiny",  # no norm
        "vaswani-base-tiny",  # post-norm blocks: no final norm
        "bert-base-tiny",  # masked-LM head after the stream
        "denseformer-small-tiny",  # the final stream is a depth-weighted average
        "dual-stream-small-tiny",
    ],
)
def test_the_lens_last_row_is_the_models_own_prediction(preset: str) -> None:
    model = model_of(preset)
    tokens = tokens_for(model)
    lens = logit_lens(model, tokens, target=3)
    probs = model(tokens[None])[0].softmax(-1)
    n = model.config.n_layers
    assert lens.labels == (*(f"{layer}_pre" for layer in range(n)), "final_post")
    assert lens.top_probs.shape == (n + 1, len(tokens))
    assert torch.equal(lens.top_tokens[-1], probs.argmax(-1))
    torch.testing.assert_close(lens.top_probs[-1], probs.max(-1).values, rtol=1e-12, atol=0)
    torch.testing.assert_close(lens.target_probs[-1], probs[:, 3], rtol=1e-12, atol=0)
    assert not torch.equal(lens.top_probs[0], lens.top_probs[-1])  # the rows differ


def test_the_lens_first_row_is_the_embedding_read_out_by_hand() -> None:
    model = model_of("attn-only-2l-tiny")  # no norm: the readout is x W_U + b_U
    tokens = tokens_for(model)
    lens = logit_lens(model, tokens, target=(tokens.roll(-1)).tolist())
    embedded = model.W_E[tokens] + model.W_pos[: len(tokens)]
    probs = (embedded @ model.W_U + model.b_U).softmax(-1)
    torch.testing.assert_close(lens.top_probs[0], probs.max(-1).values, rtol=1e-12, atol=0)
    wanted = probs[torch.arange(len(tokens)), tokens.roll(-1)]
    torch.testing.assert_close(lens.target_probs[0], wanted, rtol=1e-12, atol=0)
    assert json.loads(lens.to_json())["target"] == tokens.roll(-1).tolist()


@pytest.mark.parametrize("target", [[1, 2], 10_000, -1, "a"])
def test_a_bad_target_is_refused(target) -> None:
    model = model_of("attn-only-1l-tiny")
    with pytest.raises(InputError, match="target"):
        logit_lens(model, [1, 2, 3], target=target)


# ----- direct logit attribution --------------------------------------------------------------


@pytest.mark.parametrize(
    "preset",
    [
        "gpt2-small-tiny",  # LayerNorm, biases, tied unembedding
        "gelu-2l-tiny",  # LayerNorm, biases, own unembedding
        "llama-7b-tiny",  # RMSNorm, no biases
        "rmsnorm-small-tiny",  # RMSNorm with biases
        "pythia-160m-tiny",  # parallel attention and MLP, biases
        "palm-8b-tiny",  # parallel, tied, no biases
        "attn-only-2l-tiny",  # no norm at all
        "vaswani-base-tiny",  # post-norm blocks
        "denseformer-small-tiny",  # depth-weighted averages
        "dual-stream-small-tiny",  # token and context streams
        "algoformer-tiny",  # looped, weight-tied layers
    ],
)
@pytest.mark.parametrize("position", [0, 3, -1])
def test_attributions_sum_to_the_logit_difference(preset: str, position: int) -> None:
    model = model_of(preset)
    tokens = tokens_for(model)
    logits = model(tokens[None])[0, position]
    pair = direct_logit_attribution(model, tokens, 5, 9, position=position)
    alone = direct_logit_attribution(model, tokens, 5, position=position)
    assert pair.logit == pytest.approx(float(logits[5] - logits[9]), rel=1e-12)
    assert alone.logit == pytest.approx(float(logits[5]), rel=1e-12)
    for result in (pair, alone):
        assert result.total == pytest.approx(result.logit, rel=1e-9, abs=1e-9)
        assert float(result.logit_attrs.sum()) == pytest.approx(result.total, rel=1e-12)
    # the difference's attribution is the answer's minus the wrong token's, per component
    wrong = direct_logit_attribution(model, tokens, 9, position=position)
    torch.testing.assert_close(pair.logit_attrs, alone.logit_attrs - wrong.logit_attrs)


def test_every_token_tiny_twin_decomposes_or_says_why_not() -> None:
    decomposed, refused = [], {}
    for preset in token_presets():
        model = model_of(preset)
        tokens = tokens_for(model, n=5)
        try:
            result = direct_logit_attribution(model, tokens, 1, 2, position=-2)
        except InputError as exc:
            assert "not a sum of component outputs" in str(exc)
            refused[preset] = str(exc)
            continue
        assert result.total == pytest.approx(result.logit, rel=1e-9, abs=1e-9), preset
        decomposed.append(preset)
    assert {name: why for name, why in REFUSED.items() if why in refused.get(name, "")} == REFUSED
    assert set(refused) == set(REFUSED)
    assert len(decomposed) == DECOMPOSING  # a regression (or a new preset) shows here


def test_the_components_are_the_ones_the_model_has() -> None:
    gpt2 = direct_logit_attribution(model_of("gpt2-small-tiny"), [1, 2, 3], 4, 5)
    assert [c.name for c in gpt2.components[:7]] == [
        "embed", "pos_embed", "L0H0", "L0H1", "L0H2", "L0H3", "L0 attn bias",
    ]  # fmt: skip
    assert [c.name for c in gpt2.components[-3:]] == ["L1 mlp", "ln_final bias", "unembed bias"]
    assert gpt2.frozen_norms == (names.FINAL_SCALE,) and gpt2.head_attrs().shape == (2, 4)
    llama = direct_logit_attribution(model_of("llama-7b-tiny"), [1, 2, 3], 4)
    assert {c.kind for c in llama.components} == {"embed", "head", "mlp"}  # no biases, rotary
    post = direct_logit_attribution(model_of("vaswani-base-tiny"), [1, 2, 3], 4)
    assert post.frozen_norms == tuple(names.norm_scale(la, w) for la in (0, 1) for w in (1, 2))
    back = json.loads(post.to_json())
    assert [c["value"] for c in back["components"]] == post.logit_attrs.tolist()


def ablated_logit(model, tokens, result, hook: str, zero, held: list[str]) -> float:
    """The logit (difference) with `hook` edited by `zero`, and the hooks `held` and every
    norm scale the attribution froze kept at this run's values: only the edited output's
    direct path to the logits changes."""
    kept = [*result.frozen_norms, *held]
    _, cache = model.run_with_cache(tokens[None], names_filter=kept)

    def hold(value):
        return lambda act, hook: value

    hooks = [(name, hold(cache[name])) for name in kept] + [(hook, zero)]
    logits = model.run_with_hooks(tokens[None], fwd_hooks=hooks)[0, result.position]
    return float(logits[result.answer] - logits[result.wrong])


@pytest.mark.parametrize(
    "preset",
    ["attn-only-2l-tiny", "gpt2-small-tiny", "llama-7b-tiny", "vaswani-base-tiny", "denseformer-small-tiny", "pythia-160m-tiny"],
)  # fmt: skip
def test_ablating_a_last_layer_output_moves_the_logit_by_its_attribution(preset: str) -> None:
    model = model_of(preset)
    tokens = tokens_for(model)
    result = direct_logit_attribution(model, tokens, 5, 9, position=4)
    last = model.config.n_layers - 1
    mlp = [names.mlp_out(last)] if model.config.has_mlp else []  # it reads the heads' output
    by_name = {c.name: c.value for c in result.components}
    for head in range(model.config.n_heads):

        def zero_head(z, hook, head=head):
            z = z.clone()
            z[:, :, head] = 0
            return z

        moved = result.logit - ablated_logit(
            model, tokens, result, names.attn_z(last), zero_head, held=mlp
        )
        assert moved == pytest.approx(by_name[f"L{last}H{head}"], rel=1e-9, abs=1e-9)
        assert abs(moved) > 1e-3  # a head that writes nothing would prove nothing
    if mlp:
        zero = lambda out, hook: torch.zeros_like(out)  # noqa: E731
        moved = result.logit - ablated_logit(model, tokens, result, mlp[0], zero, held=[])
        assert moved == pytest.approx(by_name[f"L{last} mlp"], rel=1e-9, abs=1e-9)


def test_a_decomposition_that_does_not_add_up_is_refused(monkeypatch) -> None:
    real = dla_module._block

    def forgets_the_mlp(stream, model, cache, at, layer):
        real(stream, model, cache, at, layer)
        stream.parts.pop()
        stream.x = stream.x[:-1]

    monkeypatch.setattr(dla_module, "_block", forgets_the_mlp)
    with pytest.raises(InputError, match="not a sum of component outputs"):
        direct_logit_attribution(model_of("gelu-2l-tiny"), [1, 2, 3], 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"position": 7}, "position"),
        ({"position": -8}, "position"),
        ({"answer": 50}, "answer"),
        ({"wrong": -1}, "wrong"),
        ({"wrong": 4}, "both 4"),
        ({"tokens": [[1, 2]]}, "1-D"),
        ({"tokens": []}, "1-D"),
        ({"tokens": [1, 99]}, "0..49"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match: str) -> None:
    model = model_of("gpt2-small-tiny")
    args = {"tokens": list(range(7)), "answer": 4, **kwargs}
    with pytest.raises(InputError, match=match):
        direct_logit_attribution(model, **args)


def test_a_model_that_does_not_read_tokens_is_refused() -> None:
    vision = next(
        p.name for p in list_presets() if p.tiny_of and isinstance(p.config.input, Patches)
    )
    with pytest.raises(InputError, match="not token ids"):
        logit_lens(build(vision), [1, 2, 3])
