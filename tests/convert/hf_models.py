"""Tiny randomly initialised Hugging Face models, built offline, eager attention."""

from __future__ import annotations

import torch

TEXT_FAMILIES = ["gpt2", "gpt_neox", "llama-mha", "llama-gqa", "mistral-gqa", "bert"]


def tiny_hf(name: str, seed: int = 0):
    import transformers as T

    torch.manual_seed(seed)
    sizes = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64)
    text = dict(vocab_size=50, max_position_embeddings=64)
    match name:
        case "gpt2":
            ids = dict(bos_token_id=0, eos_token_id=0)
            cfg = T.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=50, n_positions=64, **ids)
            cls = T.GPT2LMHeadModel
        case "gpt_neox":
            cfg = T.GPTNeoXConfig(**text, **sizes)
            cls = T.GPTNeoXForCausalLM
        case "llama-mha" | "llama-gqa":
            kv = 2 if name.endswith("gqa") else 4
            cfg = T.LlamaConfig(num_key_value_heads=kv, **text, **sizes)
            cls = T.LlamaForCausalLM
        case "mistral-gqa":
            cfg = T.MistralConfig(num_key_value_heads=2, sliding_window=4, **text, **sizes)
            cls = T.MistralForCausalLM
        case "bert":
            cfg = T.BertConfig(**text, **sizes)
            cls = T.BertForMaskedLM
        case "vit":
            cfg = T.ViTConfig(image_size=16, patch_size=4, num_channels=3, num_labels=5, **sizes)
            cls = T.ViTForImageClassification
        case _:
            raise ValueError(name)
    cfg._attn_implementation = "eager"
    model = cls(cfg).eval()
    with torch.no_grad():  # random biases and norms too, so that every tensor matters
        for p in model.parameters():
            if p.ndim == 1:
                p.add_(torch.randn_like(p) * 0.1)
    return model
