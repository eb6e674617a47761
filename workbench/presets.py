"""The preset registry: named architectures, each with the paper it comes from.

A preset is data. Every preset has a tiny twin (`<name>-tiny`) with the same choice points and
small sizes, used by the tests and for quick experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.config import Mask, MLPKind, ModelConfig, Norm, NormPlacement, PosEncoding, Wiring
from workbench.errors import unknown


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    paper: str
    config: ModelConfig
    tiny_of: str | None = None  # the full preset this is the tiny twin of

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "paper": self.paper,
            "tiny_of": self.tiny_of,
            "config": self.config.to_dict(),
        }


def _c(**kw: object) -> ModelConfig:
    return ModelConfig(**kw)  # type: ignore[arg-type]


GPT2 = dict(pos=PosEncoding.LEARNED, mlp=MLPKind.GELU, norm=Norm.LAYERNORM, tied_embeddings=True)
LLAMA = dict(
    pos=PosEncoding.ROTARY, mlp=MLPKind.SWIGLU, norm=Norm.RMSNORM, bias=False, norm_eps=1e-6
)
TOY = dict(n_ctx=64, d_vocab=64, d_head=16, n_heads=4, d_model=64)

_FULL: list[Preset] = [
    Preset(
        "attn-only-1l",
        "1-layer attention-only toy model",
        "Elhage et al. 2021, A Mathematical Framework for Transformer Circuits",
        _c(n_layers=1, mlp=MLPKind.NONE, norm=Norm.NONE, **TOY),
    ),
    Preset(
        "attn-only-2l",
        "2-layer attention-only toy model (induction heads)",
        "Olsson et al. 2022, In-context Learning and Induction Heads",
        _c(n_layers=2, mlp=MLPKind.NONE, norm=Norm.NONE, **TOY),
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
        _c(
            n_layers=1,
            d_model=128,
            n_heads=4,
            d_head=32,
            d_mlp=512,
            d_vocab=128,
            n_ctx=8,
            mlp=MLPKind.RELU,
            norm=Norm.NONE,
            bias=False,
        ),
    ),
    Preset(
        "vaswani-base",
        "original Transformer (decoder): sinusoidal, post-norm, ReLU",
        "Vaswani et al. 2017, Attention Is All You Need",
        _c(
            n_layers=6,
            d_model=512,
            n_heads=8,
            d_head=64,
            d_mlp=2048,
            d_vocab=37000,
            n_ctx=512,
            pos=PosEncoding.SINUSOIDAL,
            mlp=MLPKind.RELU,
            norm_placement=NormPlacement.POST,
            tied_embeddings=True,
        ),
    ),
    Preset(
        "gpt2-small",
        "GPT-2 small: learned positions, pre-LayerNorm, GELU, tied unembedding",
        "Radford et al. 2019, Language Models are Unsupervised Multitask Learners",
        _c(
            n_layers=12,
            d_model=768,
            n_heads=12,
            d_head=64,
            d_mlp=3072,
            d_vocab=50257,
            n_ctx=1024,
            **GPT2,
        ),
    ),
    Preset(
        "gpt2-medium",
        "GPT-2 medium",
        "Radford et al. 2019, Language Models are Unsupervised Multitask Learners",
        _c(
            n_layers=24,
            d_model=1024,
            n_heads=16,
            d_head=64,
            d_mlp=4096,
            d_vocab=50257,
            n_ctx=1024,
            **GPT2,
        ),
    ),
    Preset(
        "bert-base",
        "BERT base encoder: bidirectional, post-LayerNorm, GELU",
        "Devlin et al. 2019, BERT",
        _c(
            n_layers=12,
            d_model=768,
            n_heads=12,
            d_head=64,
            d_mlp=3072,
            d_vocab=30522,
            n_ctx=512,
            mask=Mask.BIDIRECTIONAL,
            norm_placement=NormPlacement.POST,
            norm_eps=1e-12,
        ),
    ),
    Preset(
        "roformer-base",
        "RoFormer: bidirectional encoder with rotary positions",
        "Su et al. 2021, RoFormer: Enhanced Transformer with Rotary Position Embedding",
        _c(
            n_layers=12,
            d_model=768,
            n_heads=12,
            d_head=64,
            d_mlp=3072,
            d_vocab=50000,
            n_ctx=1536,
            mask=Mask.BIDIRECTIONAL,
            pos=PosEncoding.ROTARY,
            norm_placement=NormPlacement.POST,
            norm_eps=1e-12,
        ),
    ),
    Preset(
        "gptj-6b",
        "GPT-J: parallel attention+MLP, partial rotary",
        "Wang & Komatsuzaki 2021, GPT-J-6B",
        _c(
            n_layers=28,
            d_model=4096,
            n_heads=16,
            d_head=256,
            d_mlp=16384,
            d_vocab=50400,
            n_ctx=2048,
            pos=PosEncoding.ROTARY,
            rotary_dim=64,
            wiring=Wiring.PARALLEL,
        ),
    ),
    Preset(
        "pythia-160m",
        "Pythia: parallel block, 25% rotary, untied unembedding",
        "Biderman et al. 2023, Pythia",
        _c(
            n_layers=12,
            d_model=768,
            n_heads=12,
            d_head=64,
            d_mlp=3072,
            d_vocab=50304,
            n_ctx=2048,
            pos=PosEncoding.ROTARY,
            rotary_dim=16,
            wiring=Wiring.PARALLEL,
        ),
    ),
    Preset(
        "llama-7b",
        "LLaMA: rotary, RMSNorm, SwiGLU, no biases",
        "Touvron et al. 2023, LLaMA: Open and Efficient Foundation Language Models",
        _c(
            n_layers=32,
            d_model=4096,
            n_heads=32,
            d_head=128,
            d_mlp=11008,
            d_vocab=32000,
            n_ctx=2048,
            **LLAMA,
        ),
    ),
    Preset(
        "llama2-70b",
        "Llama 2 70B: grouped-query attention (8 KV heads)",
        "Touvron et al. 2023, Llama 2; Ainslie et al. 2023, GQA",
        _c(
            n_layers=80,
            d_model=8192,
            n_heads=64,
            n_kv_heads=8,
            d_head=128,
            d_mlp=28672,
            d_vocab=32000,
            n_ctx=4096,
            **LLAMA,
        ),
    ),
    Preset(
        "mistral-7b",
        "Mistral 7B: grouped-query attention, rotary, SwiGLU",
        "Jiang et al. 2023, Mistral 7B",
        _c(
            n_layers=32,
            d_model=4096,
            n_heads=32,
            n_kv_heads=8,
            d_head=128,
            d_mlp=14336,
            d_vocab=32000,
            n_ctx=8192,
            **LLAMA,
        ),
    ),
    Preset(
        "falcon-7b",
        "Falcon 7B: multi-query attention, parallel block, rotary",
        "Almazrouei et al. 2023, The Falcon Series of Open Language Models",
        _c(
            n_layers=32,
            d_model=4544,
            n_heads=71,
            n_kv_heads=1,
            d_head=64,
            d_mlp=18176,
            d_vocab=65024,
            n_ctx=2048,
            pos=PosEncoding.ROTARY,
            wiring=Wiring.PARALLEL,
            bias=False,
        ),
    ),
    Preset(
        "palm-8b",
        "PaLM: parallel block, multi-query, rotary, SwiGLU, no biases",
        "Chowdhery et al. 2022, PaLM: Scaling Language Modeling with Pathways",
        _c(
            n_layers=32,
            d_model=4096,
            n_heads=16,
            n_kv_heads=1,
            d_head=256,
            d_mlp=16384,
            d_vocab=256000,
            n_ctx=2048,
            pos=PosEncoding.ROTARY,
            mlp=MLPKind.SWIGLU,
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
            n_layers=24,
            d_model=1024,
            n_heads=16,
            d_head=64,
            d_mlp=4096,
            d_vocab=250880,
            n_ctx=2048,
            pos=PosEncoding.ALIBI,
            tied_embeddings=True,
        ),
    ),
    Preset(
        "nope-small",
        "decoder with no positional encoding (causal mask only)",
        "Kazemnejad et al. 2023, The Impact of Positional Encoding on Length Generalization",
        _c(
            n_layers=12,
            d_model=768,
            n_heads=12,
            d_head=64,
            d_mlp=3072,
            d_vocab=50257,
            n_ctx=1024,
            pos=PosEncoding.NONE,
        ),
    ),
    Preset(
        "rmsnorm-small",
        "GPT-2 small shape with RMSNorm instead of LayerNorm",
        "Zhang & Sennrich 2019, Root Mean Square Layer Normalization",
        _c(
            n_layers=12,
            d_model=768,
            n_heads=12,
            d_head=64,
            d_mlp=3072,
            d_vocab=50257,
            n_ctx=1024,
            norm=Norm.RMSNORM,
        ),
    ),
]


def _tiny(p: Preset) -> Preset:
    c = p.config
    # keep the attention kind: multi-head stays multi-head, MQA keeps 1 KV head, GQA gets 2
    kv = None if c.n_kv_heads in (None, c.n_heads) else (1 if c.kv_heads == 1 else 2)
    rotary_dim = None if c.rotary_dim is None else 4
    tiny = c.replace(
        n_layers=min(c.n_layers, 2),
        d_model=32,
        n_heads=4,
        n_kv_heads=kv,
        d_head=8,
        d_mlp=0 if c.d_mlp == 0 else 64,
        d_vocab=min(c.d_vocab, 50),
        n_ctx=min(c.n_ctx, 32),
        rotary_dim=rotary_dim,
    )
    return Preset(
        f"{p.name}-tiny", f"tiny twin of {p.name} for tests", p.paper, tiny, tiny_of=p.name
    )


_REGISTRY: dict[str, Preset] = {p.name: p for full in _FULL for p in (full, _tiny(full))}


def list_presets(*, include_tiny: bool = True) -> list[Preset]:
    """All presets, each full preset followed by its tiny twin."""
    return [p for p in _REGISTRY.values() if include_tiny or p.tiny_of is None]


def get_preset(name: str) -> Preset:
    if name not in _REGISTRY:
        raise unknown("preset", name, _REGISTRY)
    return _REGISTRY[name]
