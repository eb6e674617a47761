"""BERT (Devlin et al. 2019): a bidirectional post-norm encoder with a LayerNorm on the
embeddings and, for masked-LM checkpoints, the prediction transform before the tied
unembedding. Token types: the type-0 embedding is folded into the position table, so inputs
are single-segment (token_type_ids all 0). A checkpoint without the masked-LM head
(BertModel, e.g. sentence encoders) gives its hidden states at the last
`blocks.{L-1}.hook_resid_post`; its logits come from the tied embedding alone."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from workbench.config import Mask, ModelConfig, NormPlacement
from workbench.convert.fields import EPS, SIZE, model_sizes, need
from workbench.convert.weights import TensorSource, bias_heads, in_heads, out_heads
from workbench.options import Gelu

FIELDS = {
    "vocab_size": SIZE,
    "hidden_size": SIZE,
    "num_hidden_layers": SIZE,
    "num_attention_heads": SIZE,
    "intermediate_size": SIZE,
    "hidden_act": need("gelu"),
    "max_position_embeddings": SIZE,
    "type_vocab_size": SIZE,
    "layer_norm_eps": EPS,
    "position_embedding_type": need("absolute"),
    "is_decoder": need(False),
    "add_cross_attention": need(False),
    "tie_word_embeddings": need(True),
}
IGNORED = frozenset({"hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"})


def config(hf: dict[str, Any], tensors: TensorSource) -> ModelConfig:
    return ModelConfig(
        **model_sizes(hf),
        mask=Mask.BIDIRECTIONAL,
        mlp=Gelu(),
        norm_placement=NormPlacement.POST,
        embed_norm=True,
        mlm_head="cls.predictions.transform.dense.weight" in tensors,
        tied_embeddings=True,
        norm_eps=hf.get("layer_norm_eps", 1e-12),
    )


def weights(cfg: ModelConfig, src: TensorSource) -> dict[str, Tensor]:
    h = cfg.n_heads
    emb = "embeddings."
    out = {
        "W_E": src.get(emb + "word_embeddings.weight"),
        "W_pos": src.get(emb + "position_embeddings.weight")
        + src.get(emb + "token_type_embeddings.weight")[0],
        "ln_embed.w": src.get(emb + "LayerNorm.weight"),
        "ln_embed.b": src.get(emb + "LayerNorm.bias"),
    }
    for layer in range(cfg.n_layers):
        hf, us = f"encoder.layer.{layer}.", f"blocks.{layer}."
        for name, theirs in (("Q", "query"), ("K", "key"), ("V", "value")):
            out[us + f"attn.W_{name}"] = in_heads(
                src.get(hf + f"attention.self.{theirs}.weight"), h
            )
            out[us + f"attn.b_{name}"] = bias_heads(
                src.get(hf + f"attention.self.{theirs}.bias"), h
            )
        out[us + "attn.W_O"] = out_heads(src.get(hf + "attention.output.dense.weight"), h)
        out[us + "attn.b_O"] = src.get(hf + "attention.output.dense.bias")
        out[us + "ln1.w"] = src.get(hf + "attention.output.LayerNorm.weight")
        out[us + "ln1.b"] = src.get(hf + "attention.output.LayerNorm.bias")
        out[us + "mlp.W_in"] = src.get(hf + "intermediate.dense.weight").T
        out[us + "mlp.b_in"] = src.get(hf + "intermediate.dense.bias")
        out[us + "mlp.W_out"] = src.get(hf + "output.dense.weight").T
        out[us + "mlp.b_out"] = src.get(hf + "output.dense.bias")
        out[us + "ln2.w"] = src.get(hf + "output.LayerNorm.weight")
        out[us + "ln2.b"] = src.get(hf + "output.LayerNorm.bias")
    if cfg.mlm_head:
        head = "cls.predictions."
        out["mlm.W_dense"] = src.get(head + "transform.dense.weight").T
        out["mlm.b_dense"] = src.get(head + "transform.dense.bias")
        out["mlm.ln.w"] = src.get(head + "transform.LayerNorm.weight")
        out["mlm.ln.b"] = src.get(head + "transform.LayerNorm.bias")
        out["b_U"] = src.get(head + "bias")
        for tied in (head + "decoder.weight", head + "decoder.bias"):
            if tied in src:
                src.get(tied)  # the word embeddings and the bias again
    else:
        out["b_U"] = out["W_E"].new_zeros(cfg.d_vocab)
    # the pooler and next-sentence head are not part of the hidden states or the LM
    src.check_all_used(r"(^|\.)(pooler\.|cls\.seq_relationship\.)|embeddings\.position_ids$")
    return out
