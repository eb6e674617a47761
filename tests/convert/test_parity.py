"""Converted checkpoints compute what Hugging Face computes (eager attention, fp32), padded
batches included."""

from __future__ import annotations

import pytest
import torch

from tests.convert.hf_models import TEXT_FAMILIES, tiny_hf
from workbench.convert import from_hf

pytest.importorskip("transformers")
ATOL = 1e-4


def padded(side: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = torch.randint(0, 50, (3, 10), generator=gen)
    mask = torch.ones(3, 10, dtype=torch.long)
    if side == "left":
        mask[0, :4], mask[1, :1] = 0, 0
    elif side == "right":
        mask[0, 6:], mask[1, 9:] = 0, 0
    return tokens, mask


@pytest.mark.parametrize("padding", ["none", "left", "right"])
@pytest.mark.parametrize("family", TEXT_FAMILIES)
def test_text_logits_match_hugging_face(family: str, padding: str, gen: torch.Generator) -> None:
    hf = tiny_hf(family)
    ours = from_hf(hf)
    tokens, mask = padded(padding, gen)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # what the workbench uses by default
    with torch.no_grad():
        expected = hf(tokens, attention_mask=mask, position_ids=positions).logits
    got = ours(tokens, attention_mask=None if padding == "none" else mask)
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=ATOL, rtol=ATOL)


@pytest.mark.parametrize("family", ["gpt2", "llama-gqa"])
def test_left_padded_sequence_gets_its_unpadded_logits(family: str, gen: torch.Generator) -> None:
    model = from_hf(tiny_hf(family))
    tokens, mask = padded("left", gen)
    batch = model(tokens, attention_mask=mask)
    alone = model(tokens[:1, 4:])
    torch.testing.assert_close(batch[0, 4:], alone[0], atol=1e-5, rtol=1e-5)


def test_vit_class_logits_match_hugging_face(gen: torch.Generator) -> None:
    hf = tiny_hf("vit")
    images = torch.randn(2, 3, 16, 16, generator=gen)
    with torch.no_grad():
        expected = hf(images).logits
    torch.testing.assert_close(from_hf(hf)(images)[:, 0], expected, atol=ATOL, rtol=ATOL)


def test_a_sharded_directory_converts_like_the_model_object(tmp_path, gen) -> None:
    hf = tiny_hf("llama-gqa")
    hf.save_pretrained(tmp_path, max_shard_size="20KB")  # several safetensors shards
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    tokens = torch.randint(0, 50, (2, 7), generator=gen)
    torch.testing.assert_close(from_hf(tmp_path)(tokens), from_hf(hf)(tokens))


@pytest.mark.parametrize(
    ("family", "preset"),
    [
        ("gpt2", "gpt2-small"),
        ("gpt_neox", "pythia-160m"),
        ("llama-gqa", "llama2-70b"),
        ("bert", "bert-base"),
    ],
)
def test_presets_make_the_choices_of_the_real_architecture(family: str, preset: str) -> None:
    # the preset tables are data; a converted Hugging Face model of the family is the reference
    from workbench.presets import get_preset

    sizes = {
        "n_layers",
        "d_model",
        "n_heads",
        "n_kv_heads",
        "d_head",
        "d_mlp",
        "d_vocab",
        "n_ctx",
        "norm_eps",
        "bias",
    }
    converted = from_hf(tiny_hf(family)).config.to_dict()
    table = get_preset(preset).config.to_dict()
    differ = {  # an option's kind is a choice; its parameters (rotary dims, base) are sizes
        k: (table[k], converted[k])
        for k in table
        if k not in sizes and _choice(table[k]) != _choice(converted[k])
    }
    assert differ == {}


def _choice(value: object) -> object:
    return value["kind"] if isinstance(value, dict) and "kind" in value else value
