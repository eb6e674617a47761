"""GPT-2 (Radford et al. 2019): learned positions, pre-norm LayerNorm, fused Conv1D qkv
(stored [in, out]), the tanh GELU, unembedding tied to the token embedding."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from workbench.config import ModelConfig
from workbench.convert.fields import EPS, OPTIONAL_SIZE, READ, SIZE, need
from workbench.convert.weights import TensorSource
from workbench.options import Gelu, GeluTanh, Relu

FIELDS = {
    "vocab_size": SIZE,
    "n_positions": SIZE,
    "n_ctx": SIZE,  # old configs: equal to n_positions
    "n_embd": SIZE,
    "n_layer": SIZE,
    "n_head": SIZE,
    "n_inner": OPTIONAL_SIZE,
    "activation_function": need("gelu_new", "gelu_pytorch_tanh", "gelu", "relu"),
    "layer_norm_epsilon": EPS,
    "scale_attn_weights": need(True),
    "scale_attn_by_inverse_layer_idx": need(False),
    "reorder_and_upcast_attn": READ,  # the same numbers in fp32
    "add_cross_attention": need(False),
    "tie_word_embeddings": need(True),
}
IGNORED = frozenset(
    {
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
        "summary_type",
        "summary_use_proj",
        "summary_activation",
        "summary_proj_to_labels",
        "summary_first_dropout",
        "n_special",
        "predict_special_tokens",
    }
)
ACTIVATIONS = {
    "gelu_new": GeluTanh(),
    "gelu_pytorch_tanh": GeluTanh(),
    "gelu": Gelu(),
    "relu": Relu(),
}


def config(hf: dict[str, Any]) -> ModelConfig:
    d, heads = hf["n_embd"], hf["n_head"]
    return ModelConfig(
        n_layers=hf["n_layer"],
        d_model=d,
        n_heads=heads,
        d_head=d // heads,
        d_mlp=hf.get("n_inner") or 4 * d,
        d_vocab=hf["vocab_size"],
        n_ctx=hf["n_positions"],
        mlp=ACTIVATIONS[hf.get("activation_function", "gelu_new")],
        tied_embeddings=True,
        norm_eps=hf.get("layer_norm_epsilon", 1e-5),
    )


def weights(cfg: ModelConfig, src: TensorSource) -> dict[str, Tensor]:
    h, d = cfg.n_heads, cfg.d_model
    out = {"W_E": src.get("wte.weight"), "W_pos": src.get("wpe.weight")}
    for layer in range(cfg.n_layers):
        hf, us = f"h.{layer}.", f"blocks.{layer}."
        qkv_w = src.get(hf + "attn.c_attn.weight")  # [d_model, 3 d_model], x @ W
        qkv_b = src.get(hf + "attn.c_attn.bias")
        for i, name in enumerate("QKV"):
            w = qkv_w[:, i * d : (i + 1) * d]
            out[us + f"attn.W_{name}"] = w.reshape(d, h, -1).permute(1, 0, 2)
            out[us + f"attn.b_{name}"] = qkv_b[i * d : (i + 1) * d].reshape(h, -1)
        out[us + "attn.W_O"] = src.get(hf + "attn.c_proj.weight").reshape(h, -1, d)
        out[us + "attn.b_O"] = src.get(hf + "attn.c_proj.bias")
        for ours, theirs in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[us + f"{ours}.w"] = src.get(hf + f"{theirs}.weight")
            out[us + f"{ours}.b"] = src.get(hf + f"{theirs}.bias")
        out[us + "mlp.W_in"] = src.get(hf + "mlp.c_fc.weight")
        out[us + "mlp.b_in"] = src.get(hf + "mlp.c_fc.bias")
        out[us + "mlp.W_out"] = src.get(hf + "mlp.c_proj.weight")
        out[us + "mlp.b_out"] = src.get(hf + "mlp.c_proj.bias")
    out["ln_final.w"], out["ln_final.b"] = src.get("ln_f.weight"), src.get("ln_f.bias")
    out["b_U"] = out["W_E"].new_zeros(cfg.d_vocab)  # GPT-2's unembedding has no bias
    if "lm_head.weight" in src:
        src.get("lm_head.weight")  # tied: the same tensor as wte
    src.check_all_used(r"attn\.(masked_)?bias$")
    return out
