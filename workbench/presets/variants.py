"""Presets that change one component of a GPT-2-small-shaped decoder: each isolates a variant
from the literature so that it can be trained and analysed on its own."""

from __future__ import annotations

from typing import Any

from workbench.config import (
    HeadMixing,
    ModelConfig,
    Norm,
    QKForm,
    Wiring,
)
from workbench.options import (
    Abacus,
    ClippedSoftmax,
    Delta,
    Fire,
    Forgetting,
    GatedLinear,
    GeGLU,
    Kan,
    Linear,
    NoMLP,
    NoPos,
    ReGLU,
    Relu,
    Shaw,
    T5Buckets,
    TopK,
    XPos,
)
from workbench.presets.models import GPT2_SMALL_SHAPE
from workbench.presets.registry import Preset

SMALL: dict[str, Any] = GPT2_SMALL_SHAPE


def _variant(name: str, description: str, paper: str, **changes: Any) -> Preset:
    return Preset(name, description, paper, ModelConfig(**{**SMALL, **changes}))


VARIANTS: list[Preset] = [
    _variant(
        "geglu-small",
        "GPT-2 small with a GEGLU MLP (d_mlp 2048 keeps the parameters)",
        "Shazeer 2020, GLU Variants Improve Transformer",
        mlp=GeGLU(),
        d_mlp=2048,
    ),
    _variant(
        "reglu-small",
        "GPT-2 small with a ReGLU MLP (d_mlp 2048 keeps the parameters)",
        "Shazeer 2020, GLU Variants Improve Transformer",
        mlp=ReGLU(),
        d_mlp=2048,
    ),
    _variant(
        "topk-small",
        "GPT-2 small whose MLP keeps only the 64 largest ReLU activations",
        "Li et al. 2023, The Lazy Neuron Phenomenon: On Emergence of Activation Sparsity "
        "in Transformers",
        mlp=TopK(k=64),
    ),
    _variant(
        "local-attn-small",
        "GPT-2 small with sliding-window attention over 256 positions",
        "Beltagy et al. 2020, Longformer: The Long-Document Transformer",
        window=256,
    ),
    _variant(
        "t5-bias-small",
        "decoder with T5 bucketed relative-position biases, RMSNorm, ReLU",
        "Raffel et al. 2020, Exploring the Limits of Transfer Learning with a Unified "
        "Text-to-Text Transformer",
        pos=T5Buckets(),
        norm=Norm.RMSNORM,
        mlp=Relu(),
        bias=False,
    ),
]
VARIANTS += [
    _variant(
        "clipped-softmax-small",
        "GPT-2 small with clipped softmax (gamma -0.03, zeta 1)",
        "Bondarenko et al. 2023, Quantizable Transformers: Removing Outliers by Helping "
        "Attention Heads Do Nothing",
        attention=ClippedSoftmax(),
    ),
    _variant(
        "gated-attn-small",
        "GPT-2 small with a sigmoid gate per head on the attention output",
        "Bondarenko et al. 2023, Quantizable Transformers: Removing Outliers by Helping "
        "Attention Heads Do Nothing",
        attn_gate=True,
    ),
    _variant(
        "fox-small",
        "Forgetting Transformer: forget gate on the softmax logits, no positions",
        "Lin et al. 2025, Forgetting Transformer: Softmax Attention with a Forget Gate",
        attention=Forgetting(),
        pos=NoPos(),
    ),
    _variant(
        "linear-attn-small",
        "GPT-2 small with causal linear attention (elu + 1 feature map)",
        "Katharopoulos et al. 2020, Transformers are RNNs: Fast Autoregressive Transformers "
        "with Linear Attention",
        attention=Linear(),
    ),
]
VARIANTS += [
    _variant(
        "gla-small",
        "GPT-2 small with gated linear attention (per-dimension decay gates)",
        "Yang et al. 2024, Gated Linear Attention Transformers with Hardware-Efficient Training",
        attention=GatedLinear(),
        pos=NoPos(),
    ),
    _variant(
        "deltanet-small",
        "GPT-2 small with delta-rule linear attention (DeltaNet)",
        "Yang et al. 2024, Parallelizing Linear Transformers with the Delta Rule over "
        "Sequence Length; Schlag et al. 2021, Linear Transformers Are Secretly Fast Weight "
        "Programmers",
        attention=Delta(),
        pos=NoPos(),
    ),
]
VARIANTS += [
    _variant(
        "kv-shift-small",
        "GPT-2 small with KV shifting attention (keys, values mix in the previous position's)",
        "Xu et al. 2024, KV Shifting Attention Enhances Language Modeling",
        kv_shift=True,
    ),
    _variant(
        "momentum-small",
        "GPT-2 small with momentum attention (q, k sheared by their velocity, gamma 0.5)",
        "Maitra 2026, Momentum Attention: The Physics of In-Context "
        "Learning and Spectral Forensics for Mechanistic Interpretability",
        momentum=0.5,
    ),
    _variant(
        "kv-transformer-small",
        "GPT-2 small whose keys serve as queries (symmetric scores)",
        "Borji 2023, Key-Value Transformer",
        qk_form=QKForm.SHARED,
    ),
]
VARIANTS += [
    _variant(
        "xpos-small",
        "GPT-2 small with xPos: rotary positions with a per-frequency decay",
        "Sun et al. 2022, A Length-Extrapolatable Transformer",
        pos=XPos(),
    ),
]
VARIANTS += [
    _variant(
        "shaw-small",
        "GPT-2 small with relative position representations on keys and "
        "values (clipped at 16) instead of absolute positions",
        "Shaw et al. 2018, Self-Attention with Relative Position Representations",
        pos=Shaw(),
    ),
]
VARIANTS += [
    _variant(
        "fire-small",
        "GPT-2 small with FIRE: a learned function of the normalised "
        "relative distance as the position bias",
        "Li et al. 2024, Functional Interpolation "
        "for Relative Positions Improves Long Context Transformers",
        pos=Fire(),
    ),
]

TOY_LOOP: dict[str, Any] = dict(n_ctx=64, d_vocab=64, d_model=64, n_heads=4, d_head=16, d_mlp=256)
VARIANTS += [
    Preset(
        "looped-4x",
        "one block applied 4 times with shared weights; a hook tree per iteration",
        "Giannou et al. 2023, Looped Transformers as Programmable Computers; Yang et al. "
        "2024, Looped Transformers are Better at Learning Learning Algorithms",
        ModelConfig(n_layers=4, weight_ties=(0, 0, 0, 0), **TOY_LOOP),
    ),
    Preset(
        "algoformer",
        "AlgoFormer: a pre-block, a 2-block loop run 3 times, a post-block",
        "Gao et al. 2024, AlgoFormer: An Efficient Transformer Framework with Algorithmic "
        "Structures",
        ModelConfig(n_layers=8, weight_ties=(0, 1, 2, 1, 2, 1, 2, 7), **TOY_LOOP),
    ),
    _variant(
        "shared-layers-small",
        "GPT-2 small whose 12 layers share 3 weight sets, cycled (sliced recursion)",
        "Reid et al. 2021, Subformer: Exploring Weight Sharing "
        "for Parameter Efficiency in Generative Transformers; Takase & Kiyono 2021, Lessons "
        "on Parameter Sharing across Layers in Transformers",
        weight_ties=(0, 1, 2) * 4,
    ),
]
VARIANTS += [
    _variant(
        "denseformer-small",
        "GPT-2 small with depth-weighted averaging after every block "
        "(inspectable weights: model.depth_weights())",
        "Pagliardini et al. 2024, DenseFormer: "
        "Enhancing Information Flow in Transformers via Depth Weighted Averaging",
        depth_weighted=True,
    ),
]
VARIANTS += [
    _variant(
        "kan-small",
        "GPT-2 small with group-rational KAN layers (8 groups) as its MLP",
        "Yang & Wang 2025, Kolmogorov-Arnold Transformer",
        mlp=Kan(),
    ),
]
VARIANTS += [
    _variant(
        "abacus-small",
        "GPT-2 small whose positions are Abacus digit places (digit ids of the "
        "built-in addition task), shifted by a random offset up to 100 in training",
        "McLeish et al. 2024, Transformers Can Do Arithmetic with the Right Embeddings",
        pos=Abacus(digits=tuple(range(5, 15)), max_offset=100),
    ),
]

MINIMUM = "Bermeitinger et al. 2024, Reducing the Transformer Architecture to a Minimum"
DUAL_STREAM = (
    "Kerce & Fox 2026, The Dual-Stream Transformer: Channelized Architecture for "
    "Interpretable Language Modeling"
)
VARIANTS += [
    _variant(
        "collapsed-qk-small",
        "GPT-2 small scoring x_i W_QK x_j^T with one collapsed matrix per head",
        MINIMUM,
        qk_form=QKForm.COLLAPSED,
    ),
    _variant(
        "symmetric-wqk-small",
        "GPT-2 small with a symmetric collapsed W_QK per head (half the parameters)",
        MINIMUM,
        qk_form=QKForm.SYMMETRIC,
    ),
    _variant(
        "minimal-small",
        "GPT-2 small reduced to a minimum: no MLP, symmetric W_QK, no value or output matrix",
        MINIMUM,
        mlp=NoMLP(),
        d_mlp=0,
        qk_form=QKForm.SYMMETRIC,
        value_output=False,
    ),
    _variant(
        "dual-stream-small",
        "GPT-2 small with a token stream (attention) and a context stream (MLP), Kronecker "
        "head mixing",
        DUAL_STREAM,
        wiring=Wiring.DUAL_STREAM,
        head_mixing=HeadMixing.KRONECKER,
    ),
    _variant(
        "dual-stream-independent-small",
        "dual-stream GPT-2 small whose heads write only their own channel (block-diagonal W_O)",
        DUAL_STREAM,
        wiring=Wiring.DUAL_STREAM,
        head_mixing=HeadMixing.INDEPENDENT,
    ),
]

# hybrids: a shared block spec with per-layer overrides (`layers`)
DELTANET = (
    "Yang et al. 2024, Parallelizing Linear Transformers with the Delta Rule over Sequence "
    "Length (the hybrid models)"
)
VARIANTS += [
    _variant(
        "masformer-small",
        "GPT-2 small with sliding-window attention over 256 positions except full attention in "
        "three of its twelve layers (here the first three; the paper studies the placement)",
        "Zhang et al. 2023, Efficient Long-Range Transformers: You Need to Attend More, but "
        "Not Necessarily at Every Layer (MASFormer)",
        window=256,
        layers=({"at": (0, 1, 2), "window": None},),
    ),
    _variant(
        "deltanet-swa-small",
        "DeltaNet with sliding-window softmax attention (256 positions, rotary) every other layer",
        DELTANET,
        attention=Delta(),
        pos=NoPos(),
        layers=(
            {"at": (1, 3, 5, 7, 9, 11), "attention": "softmax", "window": 256, "pos": "rotary"},
        ),
    ),
    _variant(
        "deltanet-global-small",
        "DeltaNet with global softmax attention (rotary) in two layers, the 2nd and the "
        "(N/2 + 1)-th",
        DELTANET,
        attention=Delta(),
        pos=NoPos(),
        layers=({"at": (1, 6), "attention": "softmax", "pos": "rotary"},),
    ),
]
