"""What the dashboard feeds a model that does not read text, and the labels its views put on
the positions. Pure functions, no Dash: notebooks call them too.

- Vision models (input='patches') take an image [1, channels, H, W]: a sample of the
  checkpoint's `bars` task, a deterministic synthetic image when the model has no task, or an
  uploaded PNG (`decode_png`: decoded in memory, never written to disk; size-capped before
  anything is decoded). Positions are the class token `CLS` then the patches `r{row}c{col}`,
  row-major as `PatchEmbed` cuts them.
- Series models (input='series', the iTransformer) take [1, lookback, variates]: a sample of
  the `forecast` task. Each token is one variate's whole window, so attention is
  variate x variate; the labels say which variates the task made delayed copies of others."""

from __future__ import annotations

import base64
import binascii
import enum
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from workbench.checkpoint import Checkpoint
from workbench.config import ModelConfig
from workbench.errors import InputError
from workbench.options import NoPos, Patches, Series, Tokens
from workbench.tasks import Task
from workbench.tasks.forecast import ForecastTask
from workbench.tasks.vision import ORIENTATIONS, BarsTask

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # the PNG file
MAX_SIDE = 4096  # pixels on a side, checked from the PNG header before decoding
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DELAY = 3  # the forecast task's copies lag their source by this many steps


class PixelScale(enum.StrEnum):
    """How 8-bit pixels become the model's inputs."""

    UNIT = "unit"  # 0..1, black 0: the bars task draws bars of +1 on a background of 0
    SYMMETRIC = "symmetric"  # (x - 0.5) / 0.5 in -1..1: ViT's preprocessing (mean = std = 0.5)


@dataclass(frozen=True)
class ExampleInput:
    """One input for the model, what it shows, and a label per position."""

    inputs: Tensor  # [1, channels, H, W] or [1, lookback, variates]
    description: str
    labels: tuple[str, ...]


def example_input(checkpoint: Checkpoint, seed: int = 0) -> ExampleInput:
    """A sample of the checkpoint's task as the model's input (a synthetic one without it)."""
    config = checkpoint.model.config
    gen = torch.Generator().manual_seed(seed)
    task = checkpoint.task()
    match config.input:
        case Patches() as patches:
            return _image_example(config, patches, task, gen, seed)
        case Series() as series:
            return _series_example(checkpoint, series, task, gen, seed)
        case Tokens():
            raise InputError("this model reads token ids: type a prompt instead of an input")
        case other:
            raise InputError(f"no example input for a model reading {other.KIND}")


def _image_example(
    config: ModelConfig, patches: Patches, task: Task | None, gen, seed: int
) -> ExampleInput:
    size, channels = patches.image_size, patches.channels
    labels = tuple(patch_labels(config))
    if isinstance(task, BarsTask):
        batch = task.sample(1, gen)
        if tuple(batch.tokens.shape[1:]) != (channels, size, size):
            raise InputError(
                f"the checkpoint's bars task draws {task.size}x{task.size} images with "
                f"{task.channels} channel(s); the model takes {size}x{size} with {channels}"
            )
        bar = ORIENTATIONS[int(batch.targets[0])]
        text = f"bars task sample (seed {seed}): a {bar} bar, {size}x{size} pixels"
        return ExampleInput(batch.tokens, text, labels)
    if size >= 6:  # the bars task's smallest image
        label = int(torch.randint(0, len(ORIENTATIONS), (1,), generator=gen))
        image = BarsTask(image_size=size, channels=channels).draw(torch.tensor([label]), gen)
        bar = f"a {ORIENTATIONS[label]} bar on noise, as the bars task draws it"
    else:
        ramp = torch.linspace(0, 1, size)
        image = (ramp[:, None] + ramp[None, :]).div(2).expand(1, channels, size, size).clone()
        bar = "a diagonal ramp"
    text = f"synthetic image (seed {seed}; the model has no task): {bar}, {size}x{size} pixels"
    return ExampleInput(image, text, labels)


def _series_example(
    checkpoint: Checkpoint, inputs: Series, task: Task | None, gen, seed: int
) -> ExampleInput:
    config = checkpoint.model.config
    if isinstance(task, ForecastTask):
        series = task.sample(1, gen).tokens
        what = f"forecast task sample (seed {seed})"
    else:  # the task's generator at the model's sizes
        variates = min(8, config.n_ctx)
        drawn = ForecastTask(variates=max(2, variates), lookback=inputs.lookback)
        series = drawn.sample(1, gen).tokens[:, :, :variates]
        what = f"synthetic series (seed {seed}; the model has no task), drawn as the forecast task"
    if series.shape[1] != inputs.lookback or series.shape[2] > config.n_ctx:
        raise InputError(
            f"the checkpoint's task draws {series.shape[2]} variates of {series.shape[1]} "
            f"steps; the model takes up to {config.n_ctx} variates of {inputs.lookback} steps"
        )
    n = series.shape[2]
    text = f"{what}: {n} variates x {series.shape[1]} steps"
    return ExampleInput(series, text, tuple(variate_labels(checkpoint, n)))


def patch_labels(config: ModelConfig) -> list[str]:
    """`CLS`, then `r{row}c{col}` for each patch, row-major (the model's positions)."""
    if not isinstance(config.input, Patches):
        raise InputError("patch labels are for vision models (input='patches')")
    side = config.input.side
    return ["CLS"] + [f"r{row}c{col}" for row in range(side) for col in range(side)]


def _delayed_sources(checkpoint: Checkpoint, n: int) -> dict[int, int]:
    """Variate -> the variate it repeats DELAY steps later, in the forecast task."""
    task = checkpoint.task()
    if not isinstance(task, ForecastTask) or task.variates != n:
        return {}
    half = n // 2
    return {half + i: i for i in range(half)}


def variate_labels(checkpoint: Checkpoint, n: int | None = None) -> list[str]:
    """`v{i}` per variate (token); in the forecast task, a delayed copy says of which."""
    n = checkpoint.model.config.n_ctx if n is None else n
    sources = _delayed_sources(checkpoint, n)
    return [f"v{i} (v{sources[i]} lagged {DELAY})" if i in sources else f"v{i}" for i in range(n)]


def series_note(checkpoint: Checkpoint, n: int) -> str:
    """What a series model's pattern shows, for the view's caption."""
    config = checkpoint.model.config
    if not isinstance(config.input, Series):
        raise InputError("the series note is for series models (input='series')")
    note = (
        f"Each token is one variate's whole window of {config.input.lookback} steps (iTransformer), "
        "so a pattern is variate x variate: the row is the variate whose forecast is being "
        "formed, the column the variate it reads."
    )
    if isinstance(config.pos, NoPos):
        note += " The model has no positions: it sees the variates as a set, in no order."
    sources = _delayed_sources(checkpoint, n)
    if sources:
        first, last = min(sources), max(sources)
        cells = ", ".join(f"(v{copy}, v{source})" for copy, source in list(sources.items())[:3])
        note += (
            f" In the forecast task v{first}..v{last} repeat v0..v{sources[last]} {DELAY} "
            f"steps later (plus noise): a head that found this puts weight on {cells}"
            f"{', ...' if len(sources) > 3 else ''}."
        )
    return note


def pixel_scale(checkpoint: Checkpoint) -> PixelScale:
    """UNIT for a model of the bars task (bars are +1 on 0), else ViT's SYMMETRIC."""
    return PixelScale.UNIT if isinstance(checkpoint.task(), BarsTask) else PixelScale.SYMMETRIC


def decode_png(data: object, config: ModelConfig, scale: PixelScale = PixelScale.UNIT) -> Tensor:
    """An uploaded PNG (bytes, or a Dash upload's "data:image/png;base64,..." string) as the
    model's input [1, channels, image_size, image_size] (float32): grey or RGB as the model
    takes, transparent pixels over black, resized (stretched if not square) with bilinear
    filtering, pixels scaled by `scale`. Bad data raises `InputError`."""
    pixels = _pixels(data, config)  # [channels, H, W] in 0..1
    if scale is PixelScale.SYMMETRIC:
        pixels = (pixels - 0.5) / 0.5
    return torch.from_numpy(pixels).float()[None]


def _pixels(data: object, config: ModelConfig) -> np.ndarray:
    """The upload's pixels at the model's size and channels, [channels, H, W] in 0..1."""
    if not isinstance(config.input, Patches):
        raise InputError("this model does not take images: only vision models (input='patches')")
    if config.input.channels not in (1, 3):
        raise InputError(
            f"this model takes {config.input.channels}-channel images; a PNG gives grey (1) or RGB (3)"
        )
    raw, declared = _upload_bytes(data)
    if not raw.startswith(PNG_SIGNATURE):
        kind = f" (the upload says {declared})" if declared and declared != "image/png" else ""
        raise InputError(f"the upload is not a PNG{kind}: upload a .png image")
    return _decoded(raw, config.input.image_size, config.input.channels)


def _upload_bytes(data: object) -> tuple[bytes, str | None]:
    """The file's bytes and the type the upload declares (None for raw bytes)."""
    declared = None
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    elif isinstance(data, str):
        header, comma, body = data.partition(",")
        if not comma or not header.startswith("data:") or not header.endswith(";base64"):
            raise InputError("an upload is a data URL 'data:image/png;base64,...'; this is not one")
        declared = header[len("data:") : -len(";base64")] or None
        if len(body) > 4 * math.ceil(MAX_UPLOAD_BYTES / 3) + 4:
            raise InputError(_too_large(len(body) * 3 // 4))
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InputError("the upload is not valid base64: upload the file again") from None
    else:
        raise InputError(f"an image upload is PNG bytes or a data URL, not {type(data).__name__}")
    if len(raw) > MAX_UPLOAD_BYTES:
        raise InputError(_too_large(len(raw)))
    if not raw:
        raise InputError("the upload is empty: upload a .png image")
    return raw, declared


def _too_large(size: int) -> str:
    return (
        f"the upload is {size / 2**20:.1f} MB; the most accepted is "
        f"{MAX_UPLOAD_BYTES / 2**20:.0f} MB: upload a smaller PNG"
    )


def _decoded(raw: bytes, size: int, channels: int) -> np.ndarray:
    """Decode, check the size from the header first, convert, resize: [channels, H, W]."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(raw), formats=["PNG"])  # reads the header only
        width, height = image.size
        if width > MAX_SIDE or height > MAX_SIDE:
            raise InputError(
                f"the PNG is {width}x{height} pixels; the most accepted is {MAX_SIDE} on a "
                "side: upload a smaller image"
            )
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit grey
            grey = image.convert("I").convert("F").resize((size, size), Image.Resampling.BILINEAR)
            plane = np.clip(np.asarray(grey, dtype=np.float64) / 65535.0, 0.0, 1.0)
            return np.repeat(plane[None], channels, axis=0)
        rgba = image.convert("RGBA")
        flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
        target = flat.convert("L" if channels == 1 else "RGB")
        resized = target.resize((size, size), Image.Resampling.BILINEAR)
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise InputError(
            f"the PNG could not be decoded ({str(exc)[:120]}): upload another"
        ) from None
    pixels = np.asarray(resized, dtype=np.float64) / 255.0  # [H, W] or [H, W, 3]
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1).copy()


def compact_png(data: object, config: ModelConfig) -> str:
    """An upload made small for the page to keep: the image as the model sees it (its channels,
    resized to its image size), re-encoded as an 8-bit PNG data URL, so that later requests
    carry a few kB instead of the upload. Bad data raises `InputError`, as `decode_png`.
    Decoding again what this returns gives these pixels, to 8 bits."""
    from PIL import Image

    pixels = _pixels(data, config)
    plane = np.round(pixels * 255).astype(np.uint8)
    image = Image.fromarray(plane[0] if len(plane) == 1 else plane.transpose(1, 2, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()
