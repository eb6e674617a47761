"""Presets of published architectures and toy models: data only, each with its paper."""

from __future__ import annotations

from workbench.config import Mask, Norm, NormPlacement, Wiring
from workbench.options import (
    ALiBi,
    GeGLU,
    GeluTanh,
    Learned,
    NoMLP,
    NoPos,
    Relu,
    Rotary,
    Sinusoidal,
    SwiGLU,
)
from workbench.presets.registry import Preset, sizes
from workbench.presets.registry import config as _c

# GPT-2's "gelu_new" is the tanh approximation of GELU (as in GPT-J, BLOOM and phi-1.5)
GPT2 = dict(pos=Learned(), mlp=GeluTanh(), norm=Norm.LAYERNORM, tied_embeddings=True)
LLAMA = dict(pos=Rotary(), mlp=SwiGLU(), norm=Norm.RMSNORM, bias=False, norm_eps=1e-6)
GPT2_SMALL_SHAPE = sizes(12, 768, 12, 64, 3072, 50257, 1024)


TOY = dict(n_ctx=64, d_vocab=64, d_head=16, n_heads=4, d_model=64)

MODELS: list[Preset] = [
    Preset(
        "attn-only-1l",
        "1-layer attention-only toy model",
        "Elhage et al. 2021, A Mathematical Framework for Transformer Circuits",
        _c(n_layers=1, mlp=NoMLP(), norm=Norm.NONE, **TOY),
    ),
    Preset(
        "attn-only-2l",
        "2-layer attention-only toy model (induction heads)",
        "Olsson et al. 2022, In-context Learning and Induction Heads",
        _c(n_layers=2, mlp=NoMLP(), norm=Norm.NONE, **TOY),
    ),
    Preset(
        "gelu-2l",
        "2-layer GELU toy model",
        "Elhage et al. 2021, A Mathematical Framework for Transformer Circuits",
        _c(n_layers=2, d_mlp=256, **TOY),
    ),
    Preset(
        "grokking-1l",
        "1-layer ReLU model without norms for modular addition",
        "Nanda et al. 2023, Progress Measures for Grokking via Mechanistic Interpretability",
        _c(**sizes(1, 128, 4, 32, 512, 128, 8), mlp=Relu(), norm=Norm.NONE, bias=False),
    ),
    Preset(
        "vaswani-base",
        "original Transformer (decoder): sinusoidal, post-norm, ReLU",
        "Vaswani et al. 2017, Attention Is All You Need",
        _c(
            **sizes(6, 512, 8, 64, 2048, 37000, 512),
            pos=Sinusoidal(),
            mlp=Relu(),
            norm_placement=NormPlacement.POST,
            tied_embeddings=True,
        ),
    ),
    Preset(
        "gpt2-small",
        "GPT-2 small: learned positions, pre-LayerNorm, GELU, tied unembedding",
        "Radford et al. 2019, Language Models are Unsupervised Multitask Learners",
        _c(
            **GPT2_SMALL_SHAPE,
            **GPT2,
        ),
    ),
    Preset(
        "gpt2-medium",
        "GPT-2 medium",
        "Radford et al. 2019, Language Models are Unsupervised Multitask Learners",
        _c(**sizes(24, 1024, 16, 64, 4096, 50257, 1024), **GPT2),
    ),
    Preset(
        "bert-base",
        "BERT base: bidirectional encoder, embedding LayerNorm, post-LayerNorm, GELU, "
        "masked-LM head",
        "Devlin et al. 2019, BERT",
        _c(
            **sizes(12, 768, 12, 64, 3072, 30522, 512),
            mask=Mask.BIDIRECTIONAL,
            norm_placement=NormPlacement.POST,
            embed_norm=True,
            norm_eps=1e-12,
            mlm_head=True,
            tied_embeddings=True,
        ),
    ),
    Preset(
        "roformer-base",
        "RoFormer: bidirectional encoder with rotary positions",
        "Su et al. 2021, RoFormer: Enhanced Transformer with Rotary Position Embedding",
        _c(
            **sizes(12, 768, 12, 64, 3072, 50000, 1536),
            mask=Mask.BIDIRECTIONAL,
            pos=Rotary(),
            norm_placement=NormPlacement.POST,
            norm_eps=1e-12,
        ),
    ),
    Preset(
        "gptj-6b",
        "GPT-J: parallel attention+MLP, partial rotary",
        "Wang & Komatsuzaki 2021, GPT-J-6B",
        _c(
            **sizes(28, 4096, 16, 256, 16384, 50400, 2048),
            pos=Rotary(dim=64),
            wiring=Wiring.PARALLEL,
            mlp=GeluTanh(),
        ),
    ),
    Preset(
        "pythia-160m",
        "Pythia: parallel block, 25% rotary, untied unembedding",
        "Biderman et al. 2023, Pythia",
        _c(
            **sizes(12, 768, 12, 64, 3072, 50304, 2048),
            pos=Rotary(dim=16),
            wiring=Wiring.PARALLEL,
        ),
    ),
    Preset(
        "llama-7b",
        "LLaMA: rotary, RMSNorm, SwiGLU, no biases",
        "Touvron et al. 2023, LLaMA: Open and Efficient Foundation Language Models",
        _c(**sizes(32, 4096, 32, 128, 11008, 32000, 2048), **LLAMA),
    ),
    Preset(
        "llama2-70b",
        "Llama 2 70B: grouped-query attention (8 KV heads)",
        "Touvron et al. 2023, Llama 2; Ainslie et al. 2023, GQA",
        _c(**sizes(80, 8192, 64, 128, 28672, 32000, 4096), n_kv_heads=8, **LLAMA),
    ),
    Preset(
        "mistral-7b",
        "Mistral 7B: grouped-query attention, rotary, SwiGLU",
        "Jiang et al. 2023, Mistral 7B",
        _c(**sizes(32, 4096, 32, 128, 14336, 32000, 8192), n_kv_heads=8, window=4096, **LLAMA),
    ),
    Preset(
        "falcon-7b",
        "Falcon 7B: multi-query attention, parallel block, rotary",
        "Almazrouei et al. 2023, The Falcon Series of Open Language Models",
        _c(
            **sizes(32, 4544, 71, 64, 18176, 65024, 2048),
            n_kv_heads=1,
            pos=Rotary(),
            wiring=Wiring.PARALLEL,
            bias=False,
        ),
    ),
    Preset(
        "palm-8b",
        "PaLM: parallel block, multi-query, rotary, SwiGLU, no biases",
        "Chowdhery et al. 2022, PaLM: Scaling Language Modeling with Pathways",
        _c(
            **sizes(32, 4096, 16, 256, 16384, 256000, 2048),
            n_kv_heads=1,
            pos=Rotary(),
            mlp=SwiGLU(),
            wiring=Wiring.PARALLEL,
            bias=False,
            tied_embeddings=True,
        ),
    ),
    Preset(
        "bloom-560m",
        "BLOOM: ALiBi positions, pre-LayerNorm, GELU",
        "Le Scao et al. 2022, BLOOM; Press et al. 2022, ALiBi",
        _c(
            **sizes(24, 1024, 16, 64, 4096, 250880, 2048),
            pos=ALiBi(),
            mlp=GeluTanh(),
            tied_embeddings=True,
        ),
    ),
    Preset(
        "nope-small",
        "decoder with no positional encoding (causal mask only)",
        "Kazemnejad et al. 2023, The Impact of Positional Encoding on Length Generalization",
        _c(
            **GPT2_SMALL_SHAPE,
            pos=NoPos(),
        ),
    ),
    Preset(
        "rmsnorm-small",
        "GPT-2 small shape with RMSNorm instead of LayerNorm",
        "Zhang & Sennrich 2019, Root Mean Square Layer Normalization",
        _c(
            **GPT2_SMALL_SHAPE,
            norm=Norm.RMSNORM,
        ),
    ),
    Preset(
        "opt-125m",
        "OPT: learned positions, pre-LayerNorm, ReLU, tied unembedding",
        "Zhang et al. 2022, OPT: Open Pre-trained Transformer Language Models",
        _c(**sizes(12, 768, 12, 64, 3072, 50272, 2048), mlp=Relu(), tied_embeddings=True),
    ),
    Preset(
        "gpt-neox-20b",
        "GPT-NeoX-20B: parallel block, 25% rotary, untied unembedding",
        "Black et al. 2022, GPT-NeoX-20B: An Open-Source Autoregressive Language Model",
        _c(
            **sizes(44, 6144, 64, 96, 24576, 50432, 2048),
            pos=Rotary(dim=24),
            wiring=Wiring.PARALLEL,
        ),
    ),
    Preset(
        "phi-1_5",
        "phi-1.5: parallel block, partial rotary (32 of 64), GELU",
        "Li et al. 2023, Textbooks Are All You Need II: phi-1.5 technical report",
        _c(
            **sizes(24, 2048, 32, 64, 8192, 51200, 2048),
            pos=Rotary(dim=32),
            wiring=Wiring.PARALLEL,
            mlp=GeluTanh(),
        ),
    ),
    Preset(
        "santacoder",
        "SantaCoder: GPT-2 block with multi-query attention",
        "Allal et al. 2023, SantaCoder: don't reach for the stars!",
        _c(**sizes(24, 2048, 16, 128, 8192, 49280, 2048), n_kv_heads=1, **GPT2),
    ),
    Preset(
        "gemma-2b",
        "Gemma 2B: multi-query attention, GEGLU, RMSNorm, rotary, tied unembedding",
        "Gemma Team 2024, Gemma: Open Models Based on Gemini Research and Technology",
        _c(
            **sizes(18, 2048, 8, 256, 16384, 256000, 8192),
            n_kv_heads=1,
            pos=Rotary(),
            mlp=GeGLU(),
            norm=Norm.RMSNORM,
            bias=False,
            tied_embeddings=True,
            norm_eps=1e-6,
        ),
    ),
]
