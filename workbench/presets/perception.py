"""Presets whose inputs are not token ids: vision transformers (images in patches) and the
iTransformer (a multivariate series, one token per variate)."""

from __future__ import annotations

from workbench.config import Mask, QKForm
from workbench.options import NoMLP, NoPos, Patches, Peg, Pooling, Series, Sinkhorn
from workbench.presets.registry import Preset, sizes
from workbench.presets.registry import config as _c

VIT_TINY = _c(
    **sizes(2, 64, 4, 16, 256, 4, 17),
    input=Patches(image_size=16, patch_size=4),
    mask=Mask.BIDIRECTIONAL,
)


PERCEPTION: list[Preset] = [
    Preset(
        "vit-base-patch16",
        "ViT-B/16: 224x224 images in 16x16 patches plus a class token, bidirectional, 1000 classes",
        "Dosovitskiy et al. 2021, An Image is Worth 16x16 Words: Transformers for Image "
        "Recognition at Scale",
        _c(
            **sizes(12, 768, 12, 64, 3072, 1000, 197),
            input=Patches(image_size=224, patch_size=16, channels=3),
            mask=Mask.BIDIRECTIONAL,
            norm_eps=1e-12,
        ),
    ),
    Preset(
        "vit-tiny-patch4",
        "2-layer ViT for 16x16 images in 4x4 patches (the built-in bars task)",
        "Dosovitskiy et al. 2021, An Image is Worth 16x16 Words: Transformers for Image "
        "Recognition at Scale",
        VIT_TINY,
    ),
    Preset(
        "itransformer",
        "iTransformer: one token per variate (its 96-step window), attention across variates",
        "Liu et al. 2024, iTransformer: Inverted Transformers Are Effective for Time Series "
        "Forecasting",
        _c(
            **sizes(2, 512, 8, 64, 2048, 96, 862),
            input=Series(lookback=96),
            pos=NoPos(),
            mask=Mask.BIDIRECTIONAL,
        ),
    ),
    Preset(
        "cpvt-tiny-patch4",
        "vit-tiny-patch4 with conditional positions: a depthwise conv generates them after block 0",
        "Chu et al. 2023, Conditional Positional Encodings for Vision Transformers",
        VIT_TINY.replace(pos=Peg()),
    ),
    Preset(
        "minimal-vit-patch4",
        "vit-tiny-patch4 reduced to a minimum: no MLP, symmetric W_QK, no value or output matrix",
        "Bermeitinger et al. 2024, Reducing the Transformer Architecture to a Minimum",
        VIT_TINY.replace(mlp=NoMLP(), d_mlp=0, qk_form=QKForm.SYMMETRIC, value_output=False),
    ),
    Preset(
        "poolformer-patch4",
        "vit-tiny-patch4 whose token mixer is 3x3 average pooling minus the input (PoolFormer)",
        "Yu et al. 2022, MetaFormer Is Actually What You Need for Vision",
        VIT_TINY.replace(attention=Pooling(), value_output=False, pos=NoPos()),
    ),
    Preset(
        "sinkformer-patch4",
        "vit-tiny-patch4 with doubly stochastic attention: 3 Sinkhorn iterations normalise "
        "the rows and the columns of each pattern",
        "Sander et al. 2022, Sinkformers: Transformers with Doubly Stochastic Attention",
        VIT_TINY.replace(attention=Sinkhorn(iterations=3)),
    ),
]
