"""Inputs of vision and series models (`app.inputs`): task samples, synthetic inputs, the
labels of positions, and uploaded PNGs decoded in memory (and refused when bad)."""

from __future__ import annotations

import base64
import io

import pytest
import torch
from PIL import Image

from app.inputs import (
    MAX_UPLOAD_BYTES,
    PixelScale,
    decode_png,
    example_input,
    patch_labels,
    pixel_scale,
    series_note,
    variate_labels,
)
from workbench.api import build
from workbench.checkpoint import Checkpoint
from workbench.errors import InputError
from workbench.tasks import make_task

BARS = {"name": "bars", "params": {"image_size": 16}}
FORECAST = {"name": "forecast", "params": {"variates": 6, "lookback": 32, "noise": 0.0}}


@pytest.fixture(scope="module")
def vit() -> Checkpoint:
    return Checkpoint(build("vit-tiny-patch4-tiny", seed=0), {"task": BARS})


@pytest.fixture(scope="module")
def series() -> Checkpoint:
    return Checkpoint(build("itransformer-tiny", seed=0), {"task": FORECAST})


def _png(image: Image.Image, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def test_patch_labels_follow_the_models_own_patch_order(vit) -> None:
    labels = patch_labels(vit.model.config)
    assert labels[:3] == ["CLS", "r0c0", "r0c1"] and labels[-1] == "r3c3" and len(labels) == 17
    image = torch.zeros(1, 1, 16, 16)
    image[0, 0, 4:8, 8:12] = 1.0  # the patch in row 1, column 2 alone
    _, cache = vit.model.run_with_cache(image, names_filter="hook_embed")
    lit = cache["hook_embed"][0, 1:].abs().sum(-1).nonzero().flatten().tolist()
    assert [labels[1 + i] for i in lit] == ["r1c2"]


def test_a_vision_models_example_is_a_sample_of_its_bars_task(vit) -> None:
    example = example_input(vit, seed=3)
    want = make_task("bars", image_size=16).sample(1, torch.Generator().manual_seed(3))
    assert torch.equal(example.inputs, want.tokens)
    orientation = ["horizontal", "vertical", "diagonal", "antidiagonal"][int(want.targets[0])]
    assert f"a {orientation} bar" in example.description
    assert example.labels == tuple(patch_labels(vit.model.config))
    assert vit.model(example.inputs).shape == (1, 17, 4)


def test_a_vision_model_without_a_task_gets_a_deterministic_synthetic_image() -> None:
    bare = Checkpoint(build("vit-tiny-patch4-tiny", **{"input.channels": 3}), {})
    first, again, other = (example_input(bare, seed=s) for s in (5, 5, 6))
    assert first.inputs.shape == (1, 3, 16, 16) and "synthetic" in first.description
    assert torch.equal(first.inputs, again.inputs) and not torch.equal(first.inputs, other.inputs)
    small = Checkpoint(
        build(
            "vit-tiny-patch4-tiny",
            input={"kind": "patches", "image_size": 4, "patch_size": 2},
            n_ctx=5,
        ),
        {},
    )
    ramp = example_input(small).inputs
    assert ramp.shape == (1, 1, 4, 4) and float(ramp[0, 0, 0, 0]) == 0.0
    assert float(ramp[0, 0, 3, 3]) == 1.0


def test_a_series_example_and_its_labels_say_which_variates_are_delayed_copies(series) -> None:
    example = example_input(series, seed=2)
    task = make_task("forecast", **FORECAST["params"])
    want = task.sample(1, torch.Generator().manual_seed(2)).tokens
    assert torch.equal(example.inputs, want) and example.inputs.shape == (1, 32, 6)
    assert example.labels == (
        "v0", "v1", "v2", "v3 (v0 lagged 3)", "v4 (v1 lagged 3)", "v5 (v2 lagged 3)"
    )  # fmt: skip
    assert list(example.labels) == variate_labels(series, 6)
    assert variate_labels(series) == [f"v{i}" for i in range(32)]  # n_ctx, not the task's 6
    full = task.series(1, torch.Generator().manual_seed(2))[0]  # noise 0: exact copies
    assert torch.equal(full[3:, 3], full[:-3, 0]) and torch.equal(full[3:, 5], full[:-3, 2])
    note = series_note(series, 6)
    assert "(v3, v0), (v4, v1), (v5, v2)" in note and "32 steps" in note
    assert series.model(example.inputs).shape == (1, 6, 50)


def test_a_series_model_without_a_task_gets_plain_labels() -> None:
    bare = Checkpoint(build("itransformer-tiny"), {})
    example = example_input(bare)
    assert example.inputs.shape == (1, 32, 8) and "synthetic" in example.description
    assert example.labels == tuple(f"v{i}" for i in range(8))
    assert "lagged" not in series_note(bare, 8) and "as a set" in series_note(bare, 8)


def test_token_models_take_prompts() -> None:
    with pytest.raises(InputError, match="type a prompt"):
        example_input(Checkpoint(build("attn-only-2l-tiny"), {}))


def test_a_png_decodes_to_the_models_input(vit) -> None:
    config = vit.model.config
    grey = _png(Image.new("L", (40, 24), 128))
    unit = decode_png(grey, config)
    assert unit.shape == (1, 1, 16, 16) and unit.dtype == torch.float32
    assert torch.allclose(unit, torch.full_like(unit, 128 / 255))
    symmetric = decode_png(grey, config, PixelScale.SYMMETRIC)
    assert torch.allclose(symmetric, torch.full_like(unit, (128 / 255 - 0.5) / 0.5))
    url = "data:image/png;base64," + base64.b64encode(grey).decode()
    assert torch.equal(decode_png(url, config), unit)
    corner = Image.new("L", (32, 32), 0)
    corner.paste(255, (0, 0, 16, 16))  # the top-left quarter white
    pixels = decode_png(_png(corner), config)[0, 0]
    assert float(pixels[0, 0]) == 1.0 and float(pixels[-1, -1]) == 0.0
    assert float(pixels[0, -1]) == 0.0 and float(pixels[-1, 0]) == 0.0


def test_colour_transparency_and_16_bit_pngs_convert(vit) -> None:
    config = vit.model.config
    red = _png(Image.new("RGB", (16, 16), (255, 0, 0)))
    assert torch.allclose(
        decode_png(red, config), torch.full((1, 1, 16, 16), 76 / 255)
    )  # ITU-R 601
    rgb = decode_png(red, config.replace(**{"input.channels": 3}))[0, :, 0, 0]
    assert rgb.tolist() == [1.0, 0.0, 0.0]
    clear = _png(Image.new("RGBA", (16, 16), (255, 255, 255, 0)))
    assert float(decode_png(clear, config).abs().max()) == 0.0  # transparent: black
    deep = Image.new("I;16", (16, 16))
    deep.putdata([65535] * 128 + [0] * 128)
    decoded = decode_png(_png(deep), config)[0, 0]
    assert float(decoded[0, 0]) == 1.0 and float(decoded[-1, 0]) == 0.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_png(Image.new("RGB", (8, 8)), format="JPEG"), "not a PNG"),
        (
            "data:image/jpeg;base64,"
            + base64.b64encode(_png(Image.new("RGB", (8, 8)), format="JPEG")).decode(),
            r"not a PNG \(the upload says image/jpeg\)",
        ),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (MAX_UPLOAD_BYTES), "the most accepted is 5 MB"),
        ("data:image/png;base64," + "A" * (MAX_UPLOAD_BYTES * 2), "the most accepted is 5 MB"),
        (_png(Image.new("L", (5000, 2))), "5000x2 pixels"),
        (_png(Image.new("L", (64, 64)))[:60], "could not be decoded"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        ("image.png", "data URL"),
        (b"", "empty"),
        (12, "not int"),
    ],
    ids=[
        "jpeg",
        "jpeg-url",
        "too-many-bytes",
        "too-long-url",
        "too-many-pixels",
        "truncated",
        "bad-base64",
        "not-a-url",
        "empty",
        "not-data",
    ],
)
def test_bad_uploads_are_refused_clearly(vit, data, message) -> None:
    with pytest.raises(InputError, match=message):
        decode_png(data, vit.model.config)


def test_images_only_go_to_vision_models_with_grey_or_rgb_channels(vit, series) -> None:
    png = _png(Image.new("L", (8, 8)))
    with pytest.raises(InputError, match="does not take images"):
        decode_png(png, series.model.config)
    with pytest.raises(InputError, match="2-channel"):
        decode_png(png, vit.model.config.replace(**{"input.channels": 2}))
    assert pixel_scale(vit) is PixelScale.UNIT
    assert pixel_scale(Checkpoint(vit.model, {})) is PixelScale.SYMMETRIC
