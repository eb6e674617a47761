"""TransformerLens's own tests of the ActivationCache, ported to workbench models.

Ported from TransformerLens (TransformerLensOrg/TransformerLens at commit
4cd36aaeb5dad931d085bd5d46a12b402fe15272):

- tests/acceptance/test_activation_cache.py: solu-2l -> the tiny GPT-2 of `gpt2_dir` (two
  layers, a BPE tokenizer) opened by `HookedTransformer.from_pretrained` (fold_ln,
  center_writing_weights, center_unembed, as TransformerLens's `load_model` asks);
  attn-only-2l -> `workbench.build("attn-only-2l-tiny")` with LayerNorm (as TransformerLens's
  attn-only-2l) and that tokenizer's vocabulary, processed the same way. The IOI prompts use
  the names the tiny tokenizer has as single tokens (" Mary", " John", " dog", " Jo", " Ma"),
  so every prompt has the same length as in the original.
- tests/integration/test_cache_pos_slice.py: tiny-stories-1M -> the tiny GPT-2 of `gpt2_dir`.

Dropped, and why:

- `refactor_factored_attn_matrices=True` in `load_model`: the lens's `from_pretrained` has no
  such step; no test here depends on it (every assertion compares two computations from one
  cache).
- the `project_output_onto` tests run on TransformerLens 4 only: TransformerLens 3.0's
  ActivationCache has no such argument.
"""

from __future__ import annotations

import pytest
import torch
from fancy_einsum import einsum
from transformer_lens import ActivationCache
from transformer_lens.utilities import Slice, get_act_name

import workbench
from tests.lens.conftest import transformerlens_version
from workbench.config import Norm
from workbench.lens import HookedTransformer

needs_projection = pytest.mark.skipif(
    transformerlens_version()[0] < 4,
    reason="TransformerLens 3.0's ActivationCache has no project_output_onto",
)

IOI_PROMPT_FORMATS = [
    "When Mary and John went to the store,{} gave a drink to",
    "When dog and Mary went to the store,{} gave a drink to",
    "When John and dog went to the store,{} gave a drink to",
    "When Jo and Ma went to the store,{} gave a drink to",
]
IOI_NAMES = [(" Mary", " John"), (" dog", " Mary"), (" John", " dog"), (" Jo", " Ma")]


def get_ioi_tokens_and_answer_tokens(model):
    prompts, answer_tokens = [], []
    for i, template in enumerate(IOI_PROMPT_FORMATS):
        for j in range(2):
            correct, incorrect = IOI_NAMES[i][j], IOI_NAMES[i][1 - j]
            answer_tokens.append((model.to_single_token(correct), model.to_single_token(incorrect)))
            prompts.append(template.format(incorrect))  # the correct answer is the indirect object
    tokens = model.to_tokens(prompts, prepend_bos=True)
    assert (tokens != model.tokenizer.pad_token_id)[:, 1:].all()  # one length: no padding
    return tokens, torch.tensor(answer_tokens)


@pytest.fixture(scope="module")
def model(gpt2_dir) -> HookedTransformer:
    return HookedTransformer.from_pretrained(gpt2_dir)


@pytest.fixture(scope="module")
def attn_only(model) -> HookedTransformer:
    base = workbench.build(
        "attn-only-2l-tiny", seed=0, norm=Norm.LAYERNORM, d_vocab=model.cfg.d_vocab, n_ctx=64
    )
    lens = HookedTransformer.from_model(base, model.tokenizer)
    lens.process_weights_()
    return lens


@pytest.fixture(scope="module")
def ioi(model):
    return get_ioi_tokens_and_answer_tokens(model)


@pytest.fixture(scope="module")
def ioi_cache(model, ioi):
    with torch.no_grad():
        return model.run_with_cache(ioi[0])[1]


@pytest.fixture
def cache(model, ioi_cache):
    """A fresh copy of the IOI run's cache per test (some tests edit theirs)."""
    return ActivationCache({k: v.clone() for k, v in ioi_cache.items()}, model)


@torch.no_grad()
def test_logit_attrs_matches_reference_code(model, ioi, cache) -> None:
    tokens, answer_tokens = ioi
    accumulated_residual = cache.accumulated_resid(layer=-1, incl_mid=True, pos_slice=-1)
    answer_residual_directions = model.tokens_to_residual_directions(answer_tokens)
    logit_diff_directions = answer_residual_directions[:, 0] - answer_residual_directions[:, 1]
    scaled_residual_stack = cache.apply_ln_to_stack(accumulated_residual, layer=-1, pos_slice=-1)
    ref_ave_logit_diffs = einsum(
        "... batch d_model, batch d_model -> ...", scaled_residual_stack, logit_diff_directions
    ) / len(tokens)
    logit_diffs = cache.logit_attrs(
        accumulated_residual,
        pos_slice=-1,
        tokens=answer_tokens[:, 0],
        incorrect_tokens=answer_tokens[:, 1],
    )
    assert torch.isclose(ref_ave_logit_diffs, logit_diffs.mean(dim=-1), atol=1.1e-7).all()


@torch.no_grad()
def test_logit_accumulated_resid_on_last_layer_variants(model, cache) -> None:
    accumulated_resid = cache.accumulated_resid(layer=-1, incl_mid=True, pos_slice=-1)
    assert torch.equal(
        accumulated_resid,
        cache.accumulated_resid(layer=model.cfg.n_layers, incl_mid=True, pos_slice=-1),
    )
    assert torch.equal(
        accumulated_resid, cache.accumulated_resid(layer=None, incl_mid=True, pos_slice=-1)
    )


@torch.no_grad()
def test_logit_accumulated_resid_without_mid(cache) -> None:
    accumulated_resid, labels = cache.accumulated_resid(
        layer=-1, incl_mid=False, pos_slice=-1, return_labels=True
    )
    assert len(labels) == accumulated_resid.size(0)
    assert all("mid" not in label for label in labels)


@torch.no_grad()
def test_logit_attrs_works_for_all_input_shapes(model, ioi, cache) -> None:
    _, answer_tokens = ioi
    accumulated_residual = cache.accumulated_resid(
        layer=-1, incl_mid=True, pos_slice=-1, return_labels=False
    )
    answer_residual_directions = model.tokens_to_residual_directions(answer_tokens)
    logit_diff_directions = answer_residual_directions[:, 0] - answer_residual_directions[:, 1]
    scaled_residual_stack = cache.apply_ln_to_stack(accumulated_residual, layer=-1, pos_slice=-1)
    ref_logit_diffs = einsum(
        "... d_model, ... d_model -> ...", scaled_residual_stack, logit_diff_directions
    )

    logit_diffs = cache.logit_attrs(  # all tokens
        accumulated_residual,
        pos_slice=-1,
        tokens=answer_tokens[:, 0],
        incorrect_tokens=answer_tokens[:, 1],
    )
    assert torch.isclose(ref_logit_diffs, logit_diffs, atol=1e-6, rtol=1e-4).all()

    batch = -1
    logit_diffs = cache.logit_attrs(  # single token
        accumulated_residual,
        batch_slice=batch,
        pos_slice=Slice(-1),
        tokens=answer_tokens[batch, 0],
        incorrect_tokens=answer_tokens[batch, 1],
    )
    assert torch.isclose(ref_logit_diffs[:, batch], logit_diffs).all()

    logit_diffs = cache.logit_attrs(  # single token (int)
        accumulated_residual,
        batch_slice=Slice(batch),
        pos_slice=-1,
        tokens=int(answer_tokens[batch, 0]),
        incorrect_tokens=int(answer_tokens[batch, 1]),
    )
    assert torch.isclose(ref_logit_diffs[:, batch], logit_diffs).all()

    logit_diffs = cache.logit_attrs(  # single token (str)
        accumulated_residual,
        batch_slice=batch,
        pos_slice=-1,
        tokens=model.to_string(answer_tokens[batch, 0]),
        incorrect_tokens=model.to_string(answer_tokens[batch, 1]),
    )
    assert torch.isclose(ref_logit_diffs[:, batch], logit_diffs).all()

    logit_diffs = cache.logit_attrs(  # single token, residual stack without batch dim
        accumulated_residual[:, batch, :],
        has_batch_dim=False,
        batch_slice=batch,
        pos_slice=-1,
        tokens=answer_tokens[batch, 0],
        incorrect_tokens=answer_tokens[batch, 1],
    )
    assert torch.isclose(ref_logit_diffs[:, batch], logit_diffs).all()

    rows = [2, 5, 7]
    logit_diffs = cache.logit_attrs(  # array slice of tokens
        accumulated_residual,
        batch_slice=rows,
        pos_slice=-1,
        tokens=answer_tokens[rows, 0],
        incorrect_tokens=answer_tokens[rows, 1],
    )
    assert torch.isclose(ref_logit_diffs[:, rows], logit_diffs).all()

    with pytest.raises(ValueError):  # different shapes for tokens and incorrect_tokens
        cache.logit_attrs(
            accumulated_residual[:, rows, :],
            has_batch_dim=False,
            batch_slice=rows,
            pos_slice=-1,
            tokens=answer_tokens[rows, 0],
            incorrect_tokens=answer_tokens[rows, 0:1],
        )

    ref_logit_diffs = einsum(  # no incorrect tokens
        "... d_model, ... d_model -> ...", scaled_residual_stack, answer_residual_directions[:, 0]
    )
    logit_diffs = cache.logit_attrs(
        accumulated_residual, pos_slice=-1, tokens=answer_tokens[:, 0], incorrect_tokens=None
    )
    assert torch.isclose(ref_logit_diffs, logit_diffs, atol=1e-6, rtol=1e-4).all()


@torch.no_grad()
def test_accumulated_resid_with_apply_ln(model, cache) -> None:
    accumulated_residual = cache.accumulated_resid(layer=-1, incl_mid=True, pos_slice=-1)
    ref_scaled_residual_stack = cache.apply_ln_to_stack(
        accumulated_residual, layer=-1, pos_slice=-1, recompute_ln=True
    )
    scaled_residual_stack = cache.accumulated_resid(
        layer=-1, incl_mid=True, pos_slice=-1, apply_ln=True
    )
    assert torch.isclose(ref_scaled_residual_stack, scaled_residual_stack, atol=1e-7).all()

    scaled_residual_stack, labels = cache.accumulated_resid(
        layer=None, incl_mid=True, pos_slice=Slice(-1), apply_ln=True, return_labels=True
    )
    assert torch.isclose(ref_scaled_residual_stack, scaled_residual_stack, atol=1e-7).all()
    expected_labels = [
        f"{layer}_{x}" for layer in range(model.cfg.n_layers) for x in ("pre", "mid")
    ]
    assert labels == [*expected_labels, "final_post"]


@torch.no_grad()
def test_apply_ln_recompute_ln_differs_from_cached(cache) -> None:
    accumulated = cache.accumulated_resid(layer=-1, incl_mid=True, pos_slice=-1)
    with_recompute = cache.apply_ln_to_stack(accumulated, layer=-1, pos_slice=-1, recompute_ln=True)
    with_cached = cache.apply_ln_to_stack(accumulated, layer=-1, pos_slice=-1, recompute_ln=False)
    assert with_recompute.shape == with_cached.shape
    assert not torch.isclose(with_recompute, with_cached, atol=1e-7).all()


@torch.no_grad()
def test_decompose_resid_with_apply_ln(cache) -> None:
    per_layer_residual = cache.decompose_resid(layer=-1, pos_slice=-1)
    ref_scaled_residual_stack = cache.apply_ln_to_stack(per_layer_residual, layer=-1, pos_slice=-1)
    scaled_residual_stack = cache.decompose_resid(layer=None, pos_slice=Slice(-1), apply_ln=True)
    assert torch.isclose(ref_scaled_residual_stack, scaled_residual_stack, atol=1e-7).all()


@torch.no_grad()
def test_decompose_resid_including_attention(model, cache) -> None:
    ref_attention_resids = torch.stack(
        [cache["attn_out", layer][:, -1] for layer in range(model.cfg.n_layers)]
    )
    residual_stack = cache.decompose_resid(
        layer=1, pos_slice=Slice(-1), mlp_input=True, apply_ln=False, incl_embeds=False, mode="attn"
    )
    assert torch.isclose(ref_attention_resids, residual_stack, atol=1e-7).all()


@torch.no_grad()
def test_stack_head_results_with_apply_ln(cache) -> None:
    per_head_residual = cache.stack_head_results(layer=-1, pos_slice=-1)
    ref_scaled_residual_stack = cache.apply_ln_to_stack(
        per_head_residual, layer=None, pos_slice=Slice(-1)
    )
    scaled_residual_stack = cache.stack_head_results(layer=-1, pos_slice=-1, apply_ln=True)
    assert torch.isclose(ref_scaled_residual_stack, scaled_residual_stack, atol=1e-7).all()


@torch.no_grad()
def test_stack_head_results_including_remainder(model, cache) -> None:
    ref_resid_post = cache["resid_post", 0][None, :, -1]
    per_head_residual, labels = cache.stack_head_results(
        layer=1, pos_slice=-1, incl_remainder=True, return_labels=True
    )
    remainder = ref_resid_post - per_head_residual[:-1].sum(dim=0)
    assert torch.isclose(remainder, per_head_residual[-1]).all()
    assert labels[:-1] == [f"L0H{i}" for i in range(model.cfg.n_heads)]
    assert labels[-1] == "remainder"

    ref_resid_post = cache["resid_post", -1][None, :, -1]
    per_head_residual, labels = cache.stack_head_results(
        layer=0, pos_slice=-1, incl_remainder=True, return_labels=True
    )
    assert torch.isclose(ref_resid_post, per_head_residual, atol=1e-7).all()
    assert labels == ["remainder"]

    per_head_residual, labels = cache.stack_head_results(
        layer=0, pos_slice=-1, incl_remainder=False, return_labels=True
    )
    assert torch.isclose(per_head_residual, torch.zeros_like(per_head_residual)).all()
    assert len(labels) == 0


@torch.no_grad()
def test_stack_neuron_results_with_apply_ln(cache) -> None:
    neuron_result_stack = cache.stack_neuron_results(layer=-1, pos_slice=-1)
    ref_scaled_residual_stack = cache.apply_ln_to_stack(neuron_result_stack, layer=-1, pos_slice=-1)
    scaled_residual_stack = cache.stack_neuron_results(layer=-1, pos_slice=Slice(-1), apply_ln=True)
    assert torch.isclose(ref_scaled_residual_stack, scaled_residual_stack, atol=1e-7).all()


@torch.no_grad()
def test_stack_neuron_results_including_remainder(model, cache) -> None:
    ref_resid_post = cache["resid_post", 0][None, :, -1]
    neuron_result_stack, labels = cache.stack_neuron_results(
        layer=1, pos_slice=Slice(-1), incl_remainder=True, return_labels=True
    )
    remainder = ref_resid_post - neuron_result_stack[:-1].sum(dim=0)
    assert torch.isclose(remainder, neuron_result_stack[-1]).all()
    assert labels[:-1] == [f"L0N{i}" for i in range(model.cfg.d_mlp)]
    assert labels[-1] == "remainder"

    ref_resid_post = cache["resid_post", -1][None, :, -1]
    neuron_result_stack, labels = cache.stack_neuron_results(
        layer=0, pos_slice=-1, incl_remainder=True, return_labels=True
    )
    assert torch.isclose(ref_resid_post, neuron_result_stack, atol=1e-7).all()
    assert labels == ["remainder"]

    neuron_result_stack, labels = cache.stack_neuron_results(
        layer=0, pos_slice=-1, incl_remainder=False, return_labels=True
    )
    assert torch.isclose(neuron_result_stack, torch.zeros_like(neuron_result_stack)).all()
    assert len(labels) == 0


@torch.no_grad()
def test_stack_neuron_results_using_neuron_slice(cache) -> None:
    _, labels = cache.stack_neuron_results(
        layer=1, pos_slice=Slice(-1), neuron_slice=Slice([0, 1, 2]), return_labels=True
    )
    assert labels == [f"L0N{i}" for i in range(3)]


@torch.no_grad()
def test_remove_batch_dim(model, ioi) -> None:
    _, cache = model.run_with_cache(ioi[0][:1])
    assert cache.has_batch_dim
    shapes_before_removal = {key: cache.cache_dict[key].shape for key in cache.cache_dict}
    for _ in range(2):  # removing it again changes nothing
        cache.remove_batch_dim()
        assert not cache.has_batch_dim
        assert all(
            shapes_before_removal[key][1:] == cache.cache_dict[key].shape
            for key in shapes_before_removal
        )


@torch.no_grad()
def test_remove_batch_dim_fails_if_batch_gt_1(cache) -> None:
    assert cache.has_batch_dim
    with pytest.raises(AssertionError):
        cache.remove_batch_dim()


@torch.no_grad()
def test_retrieve_activations(model, cache) -> None:
    key = ("scale", 1, "ln1")
    assert torch.equal(cache[key], cache[get_act_name(*key)])
    key = ("scale", -1, "ln1")
    assert torch.equal(cache[key], cache[f"scale{model.cfg.n_layers - 1}ln1"])
    key = ("k", -1, None)
    assert torch.equal(cache[key], cache[f"blocks.{model.cfg.n_layers - 1}.attn.hook_k"])
    assert torch.equal(cache["embed"], cache[get_act_name("embed")])
    assert torch.equal(cache[("embed", None)], cache[get_act_name("embed", None)])


@torch.no_grad()
def test_get_items(cache) -> None:
    pairs = zip(cache.items(), cache.cache_dict.items(), strict=True)
    assert all(k1 == k2 and torch.equal(v1, v2) for (k1, v1), (k2, v2) in pairs)


@torch.no_grad()
def test_get_values(cache) -> None:
    pairs = zip(cache.values(), cache.cache_dict.values(), strict=True)
    assert all(torch.equal(v1, v2) for v1, v2 in pairs)


@torch.no_grad()
def test_get_keys(cache) -> None:
    assert list(cache.keys()) == list(cache.cache_dict.keys())


@torch.no_grad()
def test_apply_slice_to_batch_dim(cache) -> None:
    assert cache.has_batch_dim
    new_cache = cache.apply_slice_to_batch_dim(Slice((2, 4)))
    assert new_cache.has_batch_dim
    assert all(torch.equal(cache[key][2:4], new_cache[key]) for key in cache.cache_dict)
    new_cache = cache.apply_slice_to_batch_dim(2)
    assert not new_cache.has_batch_dim
    assert all(torch.equal(cache[key][2], new_cache[key]) for key in cache.cache_dict)


@torch.no_grad()
def test_toggle_autodiff(cache) -> None:  # no_grad restores the mode when the test ends
    assert not torch.is_grad_enabled()
    cache.toggle_autodiff(mode=True)
    assert torch.is_grad_enabled()


@torch.no_grad()
def test_stack_activation(model, cache) -> None:
    stack = cache.stack_activation("scale", -1, "ln1")
    assert all(
        torch.equal(cache[("scale", layer, "ln1")], stack[layer])
        for layer in range(model.cfg.n_layers)
    )
    stack = cache.stack_activation("scale", 1, "ln1")
    assert torch.equal(cache[("scale", 0, "ln1")], stack[0])


@torch.no_grad()
def test_get_full_resid_decomposition(model, cache) -> None:
    n_layers = model.cfg.n_layers
    ref_head_stack, ref_head_stack_labels = cache.stack_head_results(
        layer=n_layers, pos_slice=Slice(-1), apply_ln=True, return_labels=True
    )
    ref_mlp_stack, ref_mlp_stack_labels = cache.decompose_resid(
        layer=n_layers,
        mlp_input=False,
        pos_slice=Slice(-1),
        incl_embeds=False,
        mode="mlp",
        apply_ln=True,
        return_labels=True,
    )
    ref_embed = cache.apply_ln_to_stack(
        cache["embed"][None, :, -1], pos_slice=Slice(-1), mlp_input=False
    )
    ref_pos_embed = cache.apply_ln_to_stack(
        cache["pos_embed"][None, :, -1], pos_slice=Slice(-1), mlp_input=False
    )
    ref_bias = model.accumulated_bias(n_layers, mlp_input=False, include_mlp_biases=False)
    ref_bias = ref_bias.expand((1, *ref_head_stack.shape[1:]))
    ref_bias = cache.apply_ln_to_stack(ref_bias, pos_slice=Slice(-1), mlp_input=False)

    heads, mlps = ref_head_stack.size(0), ref_mlp_stack.size(0)
    residual_stack, labels = cache.get_full_resid_decomposition(
        layer=-1, pos_slice=-1, apply_ln=True, expand_neurons=False, return_labels=True
    )
    assert torch.isclose(ref_head_stack, residual_stack[:heads], atol=1e-7).all()
    assert ref_head_stack_labels == labels[:heads]
    assert torch.isclose(ref_mlp_stack, residual_stack[heads : heads + mlps], atol=1e-7).all()
    assert ref_mlp_stack_labels == labels[heads : heads + mlps]
    rest = heads + mlps
    assert torch.isclose(ref_embed, residual_stack[rest : rest + 1], atol=1e-7).all()
    assert labels[rest] == "embed"
    assert torch.isclose(ref_pos_embed, residual_stack[rest + 1 : rest + 2], atol=1e-7).all()
    assert labels[rest + 1] == "pos_embed"
    assert torch.isclose(ref_bias, residual_stack[rest + 2 : rest + 3], atol=1e-7).all()
    assert labels[rest + 2] == "bias"


@torch.no_grad()
def test_get_full_resid_decomposition_with_neurons_expanded(cache) -> None:
    ref_head_stack = cache.stack_head_results(layer=1, pos_slice=Slice(-1), apply_ln=True)
    ref_neuron_stack, ref_neuron_labels = cache.stack_neuron_results(
        1, pos_slice=Slice(-1), return_labels=True
    )
    ref_neuron_stack = cache.apply_ln_to_stack(ref_neuron_stack, layer=1, pos_slice=Slice(-1))
    heads, neurons = ref_head_stack.size(0), ref_neuron_stack.size(0)
    residual_stack, labels = cache.get_full_resid_decomposition(
        layer=1, pos_slice=Slice(-1), apply_ln=True, expand_neurons=True, return_labels=True
    )
    assert torch.isclose(ref_neuron_stack, residual_stack[heads : heads + neurons], atol=1e-7).all()
    assert ref_neuron_labels == labels[heads : heads + neurons]


@torch.no_grad()
def test_get_full_resid_decomposition_without_applying_ln(cache) -> None:
    ref_head_stack = cache.stack_head_results(layer=1, pos_slice=Slice(-1), apply_ln=True)
    ref_neuron_stack = cache.stack_neuron_results(1, pos_slice=Slice(-1))
    heads, neurons = ref_head_stack.size(0), ref_neuron_stack.size(0)
    residual_stack = cache.get_full_resid_decomposition(
        layer=1, pos_slice=Slice(-1), apply_ln=False, expand_neurons=True
    )
    assert torch.isclose(ref_neuron_stack, residual_stack[heads : heads + neurons], atol=1e-7).all()


@torch.no_grad()
def test_get_full_resid_decomposition_attn_only_model(attn_only, ioi) -> None:
    _, cache = attn_only.run_with_cache(ioi[0])
    ref_head_stack = cache.stack_head_results(layer=1, pos_slice=Slice(-1), apply_ln=False)
    residual_stack = cache.get_full_resid_decomposition(
        layer=1, pos_slice=Slice(-1), apply_ln=False, expand_neurons=False
    )
    heads = ref_head_stack.size(0)
    assert torch.isclose(ref_head_stack, residual_stack[:heads], atol=1e-7).all()


@torch.no_grad()
def test_compute_test_head_results_does_not_compute_results_twice(attn_only, ioi) -> None:
    _, cache = attn_only.run_with_cache(ioi[0])
    assert "blocks.0.attn.hook_result" not in cache.cache_dict
    cache.compute_head_results()
    assert "blocks.0.attn.hook_result" in cache.cache_dict
    assert cache.cache_dict["blocks.0.attn.hook_result"][0, 0, 0, 0] != float("inf")
    cache.cache_dict["blocks.0.attn.hook_result"][0, 0, 0, 0] = float("inf")
    cache.compute_head_results()
    assert cache.cache_dict["blocks.0.attn.hook_result"][0, 0, 0, 0] == float("inf")


@torch.no_grad()
def test_get_neuron_results(model, cache) -> None:
    layer = 1
    w_out = model.blocks[layer].mlp.W_out
    ref_neuron_acts = cache[f"blocks.{layer}.mlp.hook_post"][:, -1, :2, None] * w_out[:2]
    neuron_acts = cache.get_neuron_results(layer, neuron_slice=[0, 1], pos_slice=-1)
    assert torch.isclose(ref_neuron_acts, neuron_acts).all()


@torch.no_grad()
def test_get_neuron_results_without_slice(model, cache) -> None:
    layer = 1
    w_out = model.blocks[layer].mlp.W_out
    ref_neuron_acts = cache[f"blocks.{layer}.mlp.hook_post"][..., None] * w_out
    neuron_acts = cache.get_neuron_results(layer, neuron_slice=None, pos_slice=None)
    assert torch.equal(ref_neuron_acts, neuron_acts)


def _directions(model, *shape: int) -> torch.Tensor:
    return torch.randn(model.cfg.d_model, *shape, generator=torch.Generator().manual_seed(0))


@needs_projection
@pytest.mark.parametrize("n_outs", [(), (3,)], ids=["1d", "2d"])
@torch.no_grad()
def test_get_neuron_results_project_output_onto(model, cache, n_outs) -> None:
    direction = _directions(model, *n_outs)
    expected = cache.get_neuron_results(1) @ direction
    projected = cache.get_neuron_results(1, project_output_onto=direction)
    assert projected.shape == expected.shape
    assert torch.allclose(projected, expected, atol=1e-5)


@needs_projection
@pytest.mark.parametrize("apply_ln", [False, True])
@pytest.mark.parametrize("incl_remainder", [False, True])
@pytest.mark.parametrize("n_outs", [(), (4,)], ids=["1d", "2d"])
@torch.no_grad()
def test_stack_neuron_results_project_output_onto(
    model, cache, apply_ln, incl_remainder, n_outs
) -> None:
    """Projection equals the unprojected stack @ direction, with and without apply_ln and
    incl_remainder (TransformerLens's *_matches_unprojected, *_incl_remainder and
    *_apply_ln_and_project_* tests)."""
    direction = _directions(model, *n_outs)
    kwargs = dict(pos_slice=-1, apply_ln=apply_ln, incl_remainder=incl_remainder)
    expected = cache.stack_neuron_results(model.cfg.n_layers, **kwargs) @ direction
    projected = cache.stack_neuron_results(
        model.cfg.n_layers, project_output_onto=direction, **kwargs
    )
    assert projected.shape == expected.shape
    assert torch.allclose(projected, expected, atol=1e-5)


@needs_projection
@pytest.mark.parametrize("apply_ln", [False, True])
@pytest.mark.parametrize("n_outs", [(), (2,)], ids=["1d", "2d"])
@torch.no_grad()
def test_get_full_resid_decomposition_project_output_onto(model, cache, apply_ln, n_outs) -> None:
    direction = _directions(model, *n_outs)
    kwargs = dict(layer=-1, pos_slice=-1, apply_ln=apply_ln, expand_neurons=True)
    expected = cache.get_full_resid_decomposition(**kwargs) @ direction
    projected = cache.get_full_resid_decomposition(project_output_onto=direction, **kwargs)
    assert projected.shape == expected.shape
    assert torch.allclose(projected, expected, atol=1e-4)


@needs_projection
@pytest.mark.parametrize("apply_ln", [False, True])
@torch.no_grad()
def test_stack_neuron_results_projection_skips_dmodel_materialization(
    model, cache, apply_ln
) -> None:
    """The projected path's largest tensor is much smaller than the unprojected one's: the
    [..., d_mlp, d_model] intermediate is never built."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class MaxTensorWatcher(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.max_numel = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            result = func(*args, **(kwargs or {}))
            for t in result if isinstance(result, list | tuple) else (result,):
                if isinstance(t, torch.Tensor):
                    self.max_numel = max(self.max_numel, t.numel())
            return result

    direction = _directions(model)
    kwargs = dict(layer=-1, pos_slice=-1, apply_ln=apply_ln)
    cache.stack_neuron_results(**kwargs)  # warm-up
    cache.stack_neuron_results(project_output_onto=direction, **kwargs)
    with MaxTensorWatcher() as unprojected:
        cache.stack_neuron_results(**kwargs)
    with MaxTensorWatcher() as projected:
        cache.stack_neuron_results(project_output_onto=direction, **kwargs)
    ratio = unprojected.max_numel / max(projected.max_numel, 1)
    assert ratio > 10, (unprojected.max_numel, projected.max_numel)


# ----- tests/integration/test_cache_pos_slice.py -------------------------------------------

POS_PROMPT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit."
PER_POSITION = ["resid_pre", "resid_post", "resid_mid", "attn_out", "pre", "post", "mlp_out"]
PER_POSITION_LN = [("scale", "ln1"), ("scale", "ln2"), ("normalized", "ln1"), ("normalized", "ln2")]


@pytest.mark.parametrize("remove_batch_dim", [False, True])
def test_run_with_cache_pos_slice(pair, remove_batch_dim: bool) -> None:
    """A cache of one position (pos_slice) holds exactly that position of the full cache."""
    model = pair[0]
    _, full = model.run_with_cache(POS_PROMPT, return_type=None, remove_batch_dim=remove_batch_dim)
    num_tokens = len(model.tokenizer.encode(POS_PROMPT))
    cfg = model.cfg
    row = (lambda x: x) if remove_batch_dim else (lambda x: x[0])  # the one batch row
    one = () if remove_batch_dim else (1,)

    for i in [0, num_tokens // 2, num_tokens - 1, -1]:
        _, sliced = model.run_with_cache(
            POS_PROMPT, return_type=None, remove_batch_dim=remove_batch_dim, pos_slice=i
        )
        assert sliced["embed"].shape == torch.Size([*one, 1, cfg.d_model])
        assert sliced["q", 0].shape == torch.Size([*one, 1, cfg.n_heads, cfg.d_head])
        for name in ("embed", "pos_embed"):
            assert torch.equal(row(full[name])[i], row(sliced[name])[0]), name
        for layer in range(cfg.n_layers):
            keys = [(name, layer) for name in [*PER_POSITION, "q", "k", "v", "z"]]
            keys += [(name, layer, ln) for name, ln in PER_POSITION_LN]
            for key in keys:
                assert torch.equal(row(full[key])[i], row(sliced[key])[0]), key
            for name in ("attn_scores", "pattern"):  # [head, query, key]: the query sliced
                assert torch.equal(row(full[name, layer])[:, i], row(sliced[name, layer])[:, 0])
