"""Padded batches: with an attention mask, a left- or right-padded sequence gets the logits it
gets alone, for every position kind that can be padded; other kinds refuse the mask."""

from __future__ import annotations

import pytest
import torch

import workbench
from workbench.errors import InputError

PADDABLE = [
    "gpt2-small-tiny",  # learned
    "vaswani-base-tiny",  # sinusoidal, post-norm
    "llama-7b-tiny",  # rotary, GQA
    "pythia-160m-tiny",  # partial rotary, parallel
    "bloom-560m-tiny",  # ALiBi
    "t5-bias-small-tiny",
    "shaw-small-tiny",
    "fire-small-tiny",
    "xpos-small-tiny",
    "linear-attn-small-tiny",
    "dual-stream-small-tiny",
]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("preset", PADDABLE)
def test_padded_sequence_gets_its_logits_alone(preset: str, side: str, gen) -> None:
    model = workbench.build(preset, seed=1)
    tokens = torch.randint(0, model.config.d_vocab, (2, 9), generator=gen)
    mask = torch.ones(2, 9, dtype=torch.long)
    real = slice(3, 9) if side == "left" else slice(0, 6)
    mask[0] = 0
    mask[0, real] = 1
    batch = model(tokens, attention_mask=mask)
    alone = model(tokens[:1, real])
    torch.testing.assert_close(batch[0, real], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch[1], model(tokens[1:])[0], atol=1e-5, rtol=1e-5)


def test_padding_inputs_are_checked(gen) -> None:
    model = workbench.build("gpt2-small-tiny")
    tokens = torch.randint(0, 50, (2, 5), generator=gen)
    with pytest.raises(InputError, match="attention_mask must have shape"):
        model(tokens, attention_mask=torch.ones(2, 4))
    with pytest.raises(InputError, match="position_ids must lie"):
        model(tokens, position_ids=torch.full((2, 5), 99))
    with pytest.raises(InputError, match="cannot skip padding"):
        workbench.build("gla-small-tiny")(tokens, attention_mask=torch.ones(2, 5))
    with pytest.raises(InputError, match="position_ids apply to"):
        workbench.build("bloom-560m-tiny")(tokens, position_ids=torch.zeros(2, 5, dtype=int))
