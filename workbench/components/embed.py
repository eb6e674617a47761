"""Non-token inputs.

- Images for the vision transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16
  Words"): non-overlapping patches, each flattened as (channel, row, column) and projected,
  after a learned class token whose final state the classifier reads.
- Multivariate series for the iTransformer (Liu et al. 2024, "iTransformer: Inverted
  Transformers Are Effective for Time Series Forecasting"): each variate's whole lookback
  window becomes one token, so attention mixes variates, not time steps.
- The positional encoding generator of conditional positional encodings (Chu et al. 2023,
  "Conditional Positional Encodings for Vision Transformers"): a depthwise 3x3 convolution
  over the patch grid, added after the first block; the class token passes unchanged."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from workbench.components.hooks import HookPoint
from workbench.config import ModelConfig
from workbench.errors import InputError
from workbench.options import Patches, Series

if TYPE_CHECKING:
    from workbench.model import Transformer


class InputEmbedding:
    """What an input kind provides to the model: its parameters (installed on the model under
    their checkpoint names), the check of an input, and its embedding (before positions)."""

    def install(self, model: Transformer) -> None:
        raise NotImplementedError

    def check(self, model: Transformer, inputs: Any) -> None:
        """Raise `InputError` naming the problem unless the model can read `inputs`."""
        raise NotImplementedError

    def embed(self, model: Transformer, inputs: Tensor) -> Float[Tensor, "batch pos d_model"]:
        raise NotImplementedError


class TokenEmbedding(InputEmbedding):
    """Token ids through the embedding matrix `W_E` [d_vocab, d_model]."""

    def __init__(self, d_vocab: int, d_model: int) -> None:
        self.d_vocab, self.d_model = d_vocab, d_model

    def install(self, model: Transformer) -> None:
        model.W_E = nn.Parameter(torch.empty(self.d_vocab, self.d_model))

    def check(self, model: Transformer, inputs: Any) -> None:
        model.check_tokens(inputs)

    def embed(self, model: Transformer, inputs: Tensor) -> Float[Tensor, "batch pos d_model"]:
        return model.W_E[inputs]


class ModuleEmbedding(InputEmbedding):
    """An input embedded by a module of its own, the model's `input_embed` (patches, series)."""

    def __init__(self, module: type[PatchEmbed | SeriesEmbed], cfg: ModelConfig) -> None:
        self.module, self.cfg = module, cfg

    def install(self, model: Transformer) -> None:
        model.input_embed = self.module(self.cfg)

    def check(self, model: Transformer, inputs: Any) -> None:
        self._module(model).check(inputs)

    def embed(self, model: Transformer, inputs: Tensor) -> Float[Tensor, "batch pos d_model"]:
        return self._module(model)(inputs)

    def _module(self, model: Transformer) -> PatchEmbed | SeriesEmbed:
        assert model.input_embed is not None  # installed by install()
        return model.input_embed


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        image = cfg.input
        assert isinstance(image, Patches)
        self.patch, self.size, self.channels = image.patch_size, image.image_size, image.channels
        self.W_patch = nn.Parameter(torch.empty(image.channels * image.patch_size**2, cfg.d_model))
        self.b_patch = nn.Parameter(torch.zeros(cfg.d_model))
        self.cls_token = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(
        self, images: Float[Tensor, "batch channel height width"]
    ) -> Float[Tensor, "batch pos d_model"]:
        p = self.patch
        patches = images.unfold(2, p, p).unfold(3, p, p)  # [batch, c, rows, cols, p, p]
        patches = patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)  # [b, n, c*p*p]
        x = patches @ self.W_patch + self.b_patch
        return torch.cat([self.cls_token.expand(x.shape[0], 1, -1), x], dim=1)

    def check(self, images: Any) -> None:
        """Raise `InputError` unless `images` is a float [batch, channels, size, size] tensor."""
        want = (self.channels, self.size, self.size)
        if not isinstance(images, torch.Tensor) or not images.dtype.is_floating_point:
            got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(
                f"this is a vision model: pass images as a float tensor [batch, {want[0]}, "
                f"{want[1]}, {want[2]}], not {got} (token ids go to text models)"
            )
        if images.ndim != 4 or tuple(images.shape[1:]) != want:
            raise InputError(
                f"images must have shape [batch, {want[0]}, {want[1]}, {want[2]}], got "
                f"{tuple(images.shape)}"
            )
        if not len(images):
            raise InputError("images hold no images (batch size 0): pass at least one")
        _check_dtype("images", images, self.W_patch)


class SeriesEmbed(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        series = cfg.input
        assert isinstance(series, Series)
        self.lookback, self.max_variates = series.lookback, cfg.n_ctx
        self.W_series = nn.Parameter(torch.empty(series.lookback, cfg.d_model))
        self.b_series = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(
        self, series: Float[Tensor, "batch time variate"]
    ) -> Float[Tensor, "batch pos d_model"]:
        return series.transpose(1, 2) @ self.W_series + self.b_series  # a token per variate

    def check(self, series: Any) -> None:
        """Raise `InputError` unless `series` is a float [batch, lookback, variates] tensor."""
        if not isinstance(series, torch.Tensor) or not series.dtype.is_floating_point:
            raise InputError(
                f"this is a series model: pass a float tensor [batch, {self.lookback}, variates]"
                ", not token ids"
            )
        if series.ndim != 3 or series.shape[1] != self.lookback:
            raise InputError(
                f"series must have shape [batch, {self.lookback}, variates], got "
                f"{tuple(series.shape)}"
            )
        if not len(series):
            raise InputError("series hold no sequences (batch size 0): pass at least one")
        _check_dtype("series", series, self.W_series)
        if not 1 <= series.shape[2] <= self.max_variates:
            raise InputError(
                f"{series.shape[2]} variates: this model takes 1..{self.max_variates} (n_ctx)"
            )


def _check_dtype(name: str, values: Tensor, weight: Tensor) -> None:
    if values.dtype != weight.dtype:  # the matmul would refuse, naming neither
        raise InputError(
            f"{name} are {values.dtype} but the model's weights are {weight.dtype}: pass "
            f"{name}.to({weight.dtype}) (or convert the model with model.to({values.dtype}))"
        )


class PositionGenerator(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        assert isinstance(cfg.input, Patches)
        self.side = cfg.input.side
        self.W_conv = nn.Parameter(torch.empty(cfg.d_model, 1, 3, 3))
        self.b_conv = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_out = HookPoint("batch", "patch", "d_model")

    def forward(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        cls, patches = x[:, :1], x[:, 1:]
        grid = patches.transpose(1, 2).unflatten(2, (self.side, self.side))  # [b, d, rows, cols]
        conv = F.conv2d(grid, self.W_conv, self.b_conv, padding=1, groups=grid.shape[1])
        added = self.hook_out(conv.flatten(2).transpose(1, 2))  # [batch, patches, d_model]
        return torch.cat([cls, patches + added], dim=1)
