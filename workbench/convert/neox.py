"""GPT-NeoX and Pythia (Black et al. 2022; Biderman et al. 2023): parallel attention and MLP
(use_parallel_residual), partial rotary positions, a fused qkv laid out [head, 3, d_head]."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from workbench.config import ModelConfig, Wiring
from workbench.convert.fields import BASE, EPS, FRACTION, READ, SIZE, Nested, model_sizes, need
from workbench.convert.weights import TensorSource, out_heads
from workbench.errors import ConvertError
from workbench.options import Gelu, GeluTanh, Relu, Rotary

# rope_parameters (transformers 5) holds the rotary base and the rotated fraction of a head
ROPE = Nested({"rope_theta": BASE, "partial_rotary_factor": FRACTION})
FIELDS = {
    "vocab_size": SIZE,
    "hidden_size": SIZE,
    "num_hidden_layers": SIZE,
    "num_attention_heads": SIZE,
    "intermediate_size": SIZE,
    "hidden_act": need("gelu", "gelu_new", "gelu_pytorch_tanh", "relu"),
    "max_position_embeddings": SIZE,
    "layer_norm_eps": EPS,
    "use_parallel_residual": READ,
    "rope_parameters": ROPE,
    "rotary_pct": FRACTION,  # configs written before rope_parameters
    "rotary_emb_base": BASE,
    "rope_scaling": need(None),
    "attention_bias": READ,
    "tie_word_embeddings": READ,
    "is_decoder": READ,
}
IGNORED = frozenset({"attention_dropout", "hidden_dropout", "classifier_dropout"})
ACTIVATIONS = {
    "gelu": Gelu(),
    "gelu_new": GeluTanh(),
    "gelu_pytorch_tanh": GeluTanh(),
    "relu": Relu(),
}


def rope(hf: dict[str, Any], family: str, default_fraction: float) -> tuple[float, float]:
    """(base, rotated fraction of d_head) from rope_parameters or the older top-level keys."""
    params = hf.get("rope_parameters") or {}
    kind = params.get("rope_type", "default")
    if kind != "default":
        raise ConvertError(
            f"{family} config field rope_parameters.rope_type={kind!r} is not supported; the "
            "workbench reproduces rope_type 'default' (no scaling)"
        )
    base = params.get("rope_theta", hf.get("rotary_emb_base", hf.get("rope_theta", 10000.0)))
    fraction = params.get("partial_rotary_factor", hf.get("rotary_pct", default_fraction))
    return float(base), float(fraction)


def config(hf: dict[str, Any]) -> ModelConfig:
    base, fraction = rope(hf, "gpt_neox", 0.25)
    sizes = model_sizes(hf)
    return ModelConfig(
        **sizes,
        pos=Rotary(dim=int(sizes["d_head"] * fraction), base=base),
        mlp=ACTIVATIONS[hf.get("hidden_act", "gelu")],
        wiring=Wiring.PARALLEL if hf.get("use_parallel_residual", True) else Wiring.SEQUENTIAL,
        tied_embeddings=bool(hf.get("tie_word_embeddings", False)),
        norm_eps=hf.get("layer_norm_eps", 1e-5),
    )


def weights(cfg: ModelConfig, src: TensorSource) -> dict[str, Tensor]:
    h, d, dh = cfg.n_heads, cfg.d_model, cfg.d_head
    out = {"W_E": src.get("embed_in.weight")}
    for layer in range(cfg.n_layers):
        hf, us = f"layers.{layer}.", f"blocks.{layer}."
        qkv = src.get(hf + "attention.query_key_value.weight").reshape(h, 3, dh, d)
        has_bias = hf + "attention.query_key_value.bias" in src
        qkv_b = (
            src.get(hf + "attention.query_key_value.bias").reshape(h, 3, dh) if has_bias else None
        )
        for i, name in enumerate("QKV"):
            out[us + f"attn.W_{name}"] = qkv[:, i].transpose(1, 2)  # [head, d_model, d_head]
            out[us + f"attn.b_{name}"] = qkv.new_zeros(h, dh) if qkv_b is None else qkv_b[:, i]
        out[us + "attn.W_O"] = out_heads(src.get(hf + "attention.dense.weight"), h)
        out[us + "attn.b_O"] = (
            src.get(hf + "attention.dense.bias") if has_bias else qkv.new_zeros(d)
        )
        for ours, theirs in (("ln1", "input_layernorm"), ("ln2", "post_attention_layernorm")):
            out[us + f"{ours}.w"] = src.get(hf + f"{theirs}.weight")
            out[us + f"{ours}.b"] = src.get(hf + f"{theirs}.bias")
        out[us + "mlp.W_in"] = src.get(hf + "mlp.dense_h_to_4h.weight").T
        out[us + "mlp.b_in"] = src.get(hf + "mlp.dense_h_to_4h.bias")
        out[us + "mlp.W_out"] = src.get(hf + "mlp.dense_4h_to_h.weight").T
        out[us + "mlp.b_out"] = src.get(hf + "mlp.dense_4h_to_h.bias")
    out["ln_final.w"] = src.get("final_layer_norm.weight")
    out["ln_final.b"] = src.get("final_layer_norm.bias")
    if not cfg.tied_embeddings:
        head = "embed_out.weight" if "embed_out.weight" in src else "lm_head.weight"  # old, new
        out["W_U"] = src.get(head).T
    out["b_U"] = out["W_E"].new_zeros(cfg.d_vocab)
    src.check_all_used(r"attention\.(masked_bias|bias|rotary_emb\.inv_freq)$")
    return out
