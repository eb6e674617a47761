"""ViT for image classification (Dosovitskiy et al. 2021): patches from a strided
convolution, a class token, learned positions, pre-norm encoder, a linear classifier on the
class token (the workbench's logits at position 0)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from workbench.config import Mask, ModelConfig
from workbench.convert.fields import EPS, SIZE, block_sizes, need
from workbench.convert.weights import TensorSource, bias_heads, in_heads, out_heads
from workbench.errors import ConvertError
from workbench.options import Gelu, Patches

FIELDS = {
    "hidden_size": SIZE,
    "num_hidden_layers": SIZE,
    "num_attention_heads": SIZE,
    "intermediate_size": SIZE,
    "hidden_act": need("gelu"),
    "layer_norm_eps": EPS,
    "image_size": SIZE,
    "patch_size": SIZE,
    "num_channels": SIZE,
    "qkv_bias": need(True),
}
IGNORED = frozenset(
    {
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "encoder_stride",  # masked-image-modeling decoder
        "pooler_output_size",
        "pooler_act",
    }
)


# per-layer module names: transformers 5 renamed them; checkpoints of 4.x use the old ones
NEW_NAMES = {
    "Q": "attention.q_proj.",
    "K": "attention.k_proj.",
    "V": "attention.v_proj.",
    "O": "attention.o_proj.",
    "in": "mlp.fc1.",
    "out": "mlp.fc2.",
}
OLD_NAMES = {
    "Q": "attention.attention.query.",
    "K": "attention.attention.key.",
    "V": "attention.attention.value.",
    "O": "attention.output.dense.",
    "in": "intermediate.dense.",
    "out": "output.dense.",
}


def config(hf: dict[str, Any], tensors: TensorSource) -> ModelConfig:
    if "classifier.weight" not in tensors:
        raise ConvertError(
            "this ViT checkpoint has no image-classification head (classifier.weight); the "
            "workbench converts ViTForImageClassification checkpoints"
        )
    size, patch = hf.get("image_size", 224), hf.get("patch_size", 16)
    return ModelConfig(
        **block_sizes(hf),
        d_vocab=tensors.get("classifier.weight").shape[0],
        n_ctx=(size // patch) ** 2 + 1,
        input=Patches(image_size=size, patch_size=patch, channels=hf.get("num_channels", 3)),
        mask=Mask.BIDIRECTIONAL,
        mlp=Gelu(),
        norm_eps=hf.get("layer_norm_eps", 1e-12),
    )


def weights(cfg: ModelConfig, src: TensorSource) -> dict[str, Tensor]:
    h, emb = cfg.n_heads, "embeddings."
    conv = src.get(emb + "patch_embeddings.projection.weight")  # [d_model, c, p, p]
    out = {
        "input_embed.W_patch": conv.reshape(conv.shape[0], -1).T,
        "input_embed.b_patch": src.get(emb + "patch_embeddings.projection.bias"),
        "input_embed.cls_token": src.get(emb + "cls_token").reshape(-1),
        "W_pos": src.get(emb + "position_embeddings")[0],
    }
    new = "layers.0.attention.q_proj.weight" in src  # transformers 5 names; else 4.x
    for layer in range(cfg.n_layers):
        hf, us = (f"layers.{layer}." if new else f"encoder.layer.{layer}."), f"blocks.{layer}."
        names = NEW_NAMES if new else OLD_NAMES
        for name in "QKV":
            w = hf + names[name]
            out[us + f"attn.W_{name}"] = in_heads(src.get(w + "weight"), h)
            out[us + f"attn.b_{name}"] = bias_heads(src.get(w + "bias"), h)
        out[us + "attn.W_O"] = out_heads(src.get(hf + names["O"] + "weight"), h)
        out[us + "attn.b_O"] = src.get(hf + names["O"] + "bias")
        for ours, theirs in (("ln1", "layernorm_before"), ("ln2", "layernorm_after")):
            out[us + f"{ours}.w"] = src.get(hf + f"{theirs}.weight")
            out[us + f"{ours}.b"] = src.get(hf + f"{theirs}.bias")
        out[us + "mlp.W_in"] = src.get(hf + names["in"] + "weight").T
        out[us + "mlp.b_in"] = src.get(hf + names["in"] + "bias")
        out[us + "mlp.W_out"] = src.get(hf + names["out"] + "weight").T
        out[us + "mlp.b_out"] = src.get(hf + names["out"] + "bias")
    out["ln_final.w"], out["ln_final.b"] = src.get("layernorm.weight"), src.get("layernorm.bias")
    out["W_U"] = src.get("classifier.weight").T
    out["b_U"] = src.get("classifier.bias")
    src.check_all_used(r"(^|\.)pooler\.")
    return out
