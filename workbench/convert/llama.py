"""LLaMA (Touvron et al. 2023) and Mistral (Jiang et al. 2023): RMSNorm, SwiGLU, rotary
positions, grouped-query attention, and for Mistral a sliding attention window."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from workbench.config import ModelConfig, Norm
from workbench.convert.fields import BASE, EPS, OPTIONAL_SIZE, READ, SIZE, model_sizes, need
from workbench.convert.neox import ROPE, rope
from workbench.convert.weights import TensorSource, bias_heads, in_heads, out_heads
from workbench.errors import ConvertError
from workbench.options import Rotary, SwiGLU

FIELDS = {
    "vocab_size": SIZE,
    "hidden_size": SIZE,
    "intermediate_size": SIZE,
    "num_hidden_layers": SIZE,
    "num_attention_heads": SIZE,
    "num_key_value_heads": OPTIONAL_SIZE,
    "head_dim": OPTIONAL_SIZE,
    "hidden_act": need("silu"),
    "max_position_embeddings": SIZE,
    "rms_norm_eps": EPS,
    "rope_parameters": ROPE,
    "rope_theta": BASE,  # configs written before rope_parameters
    "rope_scaling": need(None),
    "attention_bias": READ,
    "mlp_bias": READ,
    "tie_word_embeddings": READ,
    "pretraining_tp": READ,  # how training sharded the matrices; the same function
    "sliding_window": OPTIONAL_SIZE,  # Mistral: None or the window
}
IGNORED = frozenset({"attention_dropout"})


def config(hf: dict[str, Any], family: str = "llama") -> ModelConfig:
    heads = hf["num_attention_heads"]
    kv = hf.get("num_key_value_heads") or heads
    base, fraction = rope(hf, family, 1.0)
    if fraction != 1.0:  # refused, not ignored: a partly rotated head would convert wrong
        raise ConvertError(
            f"{family} config field partial_rotary_factor={fraction} is not supported; the "
            "workbench reproduces LLaMA/Mistral with every head dimension rotated (1.0)"
        )
    return ModelConfig(
        **model_sizes(hf),
        n_kv_heads=None if kv == heads else kv,
        pos=Rotary(base=base),
        mlp=SwiGLU(),
        norm=Norm.RMSNORM,
        window=hf.get("sliding_window"),
        bias=bool(hf.get("attention_bias") or hf.get("mlp_bias")),
        tied_embeddings=bool(hf.get("tie_word_embeddings", False)),
        norm_eps=hf.get("rms_norm_eps", 1e-6),
    )


def weights(cfg: ModelConfig, src: TensorSource) -> dict[str, Tensor]:
    out = {"W_E": src.get("embed_tokens.weight")}
    zeros = out["W_E"].new_zeros
    for layer in range(cfg.n_layers):
        hf, us = f"layers.{layer}.", f"blocks.{layer}."
        for name, heads in (("q", cfg.n_heads), ("k", cfg.kv_heads), ("v", cfg.kv_heads)):
            proj = hf + f"self_attn.{name}_proj."
            out[us + f"attn.W_{name.upper()}"] = in_heads(src.get(proj + "weight"), heads)
            out[us + f"attn.b_{name.upper()}"] = (
                bias_heads(src.get(proj + "bias"), heads)
                if proj + "bias" in src
                else zeros(heads, cfg.d_head)
            )
        o_proj = hf + "self_attn.o_proj."
        out[us + "attn.W_O"] = out_heads(src.get(o_proj + "weight"), cfg.n_heads)
        out[us + "attn.b_O"] = (
            src.get(o_proj + "bias") if o_proj + "bias" in src else zeros(cfg.d_model)
        )
        out[us + "ln1.w"] = src.get(hf + "input_layernorm.weight")
        out[us + "ln2.w"] = src.get(hf + "post_attention_layernorm.weight")
        out[us + "mlp.W_gate"] = src.get(hf + "mlp.gate_proj.weight").T
        out[us + "mlp.W_in"] = src.get(hf + "mlp.up_proj.weight").T
        out[us + "mlp.W_out"] = src.get(hf + "mlp.down_proj.weight").T
        for ours, theirs, size in (
            ("b_in", "up_proj", cfg.d_mlp),
            ("b_out", "down_proj", cfg.d_model),
        ):
            key = hf + f"mlp.{theirs}.bias"
            out[us + f"mlp.{ours}"] = src.get(key) if key in src else zeros(size)
        if hf + "mlp.gate_proj.bias" in src:
            raise ConvertError(
                "the checkpoint has a gate_proj bias, which the workbench SwiGLU does not have"
            )
    out["ln_final.w"] = src.get("norm.weight")
    if not cfg.tied_embeddings:
        out["W_U"] = src.get("lm_head.weight").T
    out["b_U"] = zeros(cfg.d_vocab)
    src.check_all_used(r"rotary_emb\.inv_freq$")
    return out


def mistral_config(hf: dict[str, Any]) -> ModelConfig:
    return config(hf, "mistral")
