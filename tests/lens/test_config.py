"""`model.cfg` through the lens (issue 20): TransformerLens's fields, for every preset, equal
to a TransformerLens TransformerBridge's on a converted Hugging Face model."""

from __future__ import annotations

import pytest
import torch

import workbench
from tests.lens.conftest import transformerlens_version
from workbench.lens import HookedTransformer
from workbench.presets import list_presets

TINY = [p.name for p in list_presets() if p.name.endswith("-tiny")]
SHARED = ["n_layers", "d_model", "n_heads", "d_head", "d_mlp", "d_vocab", "d_vocab_out", "n_ctx"]
SHARED += ["act_fn", "normalization_type", "positional_embedding_type", "eps", "attn_only"]
SHARED += ["gated_mlp", "parallel_attn_mlp", "n_key_value_heads", "rotary_dim", "final_rms"]
SHARED += ["attention_dir", "default_prepend_bos", "model_name"]


@pytest.mark.skipif(
    transformerlens_version()[0] == 3,
    reason="TransformerLens 3's HookedTransformer reads a converted model's config from the "
    "Hub; its fields are checked on 4's bridge and by scripts/tl_roundtrip.py",
)
def test_config_equals_transformerlens_on_a_converted_model(gpt2_dir) -> None:
    from transformer_lens.model_bridge import TransformerBridge

    ours = HookedTransformer.from_pretrained_no_processing(gpt2_dir)
    bridge = TransformerBridge.boot_transformers(str(gpt2_dir), device="cpu")
    for name in SHARED:
        assert getattr(ours.cfg, name) == getattr(bridge.cfg, name), name
    processed = HookedTransformer.from_pretrained(gpt2_dir)  # norms folded: as HookedTransformer
    assert processed.cfg.normalization_type == "LNPre"  # (TL 4's bridge keeps saying "LN")
    assert ours.cfg.original_architecture == "GPT2LMHeadModel"  # from the HF config.json
    assert ours.cfg.to_dict()["n_layers"] == 2


@pytest.mark.parametrize("preset", TINY)
def test_every_preset_names_its_choices(preset) -> None:
    model = workbench.build(preset, seed=0)
    cfg = HookedTransformer.from_model(model).cfg
    c = model.config
    assert (cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_head) == (
        c.n_layers,
        c.d_model,
        c.n_heads,
        c.d_head,
    )
    assert (cfg.d_mlp is None) == (not c.has_mlp) == cfg.attn_only
    assert (cfg.n_key_value_heads is None) == (c.kv_heads == c.n_heads)
    assert cfg.parallel_attn_mlp == (c.wiring.value == "parallel")
    assert (cfg.rotary_dim is not None) == (cfg.positional_embedding_type in ("rotary", "xpos"))
    assert cfg.positional_embedding_type == {
        "learned": "standard",
        "t5_bias": "relative_positional_bias",
    }.get(c.pos.KIND, c.pos.KIND)
    if c.has_mlp:
        assert cfg.gated_mlp == c.mlp.gated
        assert cfg.act_fn in ("gelu", "gelu_new", "relu", "silu") or cfg.act_fn == c.mlp.KIND
    windows = [layer.window for layer in c.layer_configs]
    assert cfg.use_local_attn == any(w is not None for w in windows)
    assert cfg.device == model.b_U.device and cfg.dtype == model.b_U.dtype


def test_known_presets_read_as_transformerlens_names_them() -> None:
    def cfg(preset):
        return HookedTransformer.from_model(workbench.build(preset, seed=0)).cfg

    gpt2, llama, pythia = cfg("gpt2-small-tiny"), cfg("llama2-70b-tiny"), cfg("pythia-160m-tiny")
    assert (gpt2.act_fn, gpt2.normalization_type, gpt2.positional_embedding_type) == (
        "gelu_new",
        "LN",
        "standard",
    )
    assert (llama.act_fn, llama.gated_mlp, llama.normalization_type) == ("silu", True, "RMS")
    assert llama.positional_embedding_type == "rotary" and llama.n_key_value_heads is not None
    assert pythia.parallel_attn_mlp and pythia.rotary_dim is not None
    assert cfg("bloom-560m-tiny").positional_embedding_type == "alibi"
    assert cfg("mistral-7b-tiny").attn_types is not None


def test_config_is_mutable_and_read_back(gpt2_dir) -> None:
    lens = HookedTransformer.from_pretrained(gpt2_dir)
    with_bos = lens.to_tokens("Hello")
    lens.cfg.default_prepend_bos = False  # as TransformerLens users switch BOS off
    assert lens.to_tokens("Hello").shape[1] == with_bos.shape[1] - 1
    assert lens.cfg.default_prepend_bos is False  # the same object on every access


def test_a_plain_models_cfg_has_the_same_fields() -> None:
    """`Transformer.cfg` (what TransformerLens's helpers read from a model not seen through
    the lens) is the same derivation: one definition of TransformerLens's fields."""
    model = workbench.build("llama2-70b-tiny", seed=0)
    lens_cfg = HookedTransformer.from_model(workbench.build("llama2-70b-tiny", seed=0)).cfg
    fields = ["n_layers", "n_heads", "n_key_value_heads", "d_mlp", "act_fn", "gated_mlp"]
    fields += ["normalization_type", "positional_embedding_type", "rotary_dim", "eps"]
    for name in fields:
        assert getattr(model.cfg, name) == getattr(lens_cfg, name), name
    assert model.cfg.positional_embedding_type == "rotary"
    _, cache = model.run_with_cache(torch.randint(0, 50, (1, 5)))
    stack = cache.accumulated_resid(apply_ln=True)  # reads cfg.normalization_type
    assert stack.shape == (model.cfg.n_layers + 1, 1, 5, model.cfg.d_model)
