"""TransformerLens's utilities that take a model (or its tokenizer), run on the lens.

Ports, from TransformerLens at commit 4cd36aaeb5dad931d085bd5d46a12b402fe15272
(/work/.mirror/TransformerLensOrg+TransformerLens/repo): tests/unit/test_utils.py
(TestAttentionMask, the part that takes a model) and tests/integration/test_utils_tokens.py's
test_test_prompt; plus `get_act_name` (used by TransformerLens's test_attention_mask.py and
test_left_padding.py) against the lens's hook names. Models: "gpt2-small"/"opt-125m"/"solu-1l"
become the tiny GPT-2 of tests/lens/conftest.py; the printed prompt test compares with
TransformerLens's own model on the same files instead of GPT-2's tokens.

Not ported: the pure helpers of test_utils.py that never touch a model (Slice, is_square,
is_lower_triangular, override_or_use_default_value, is_library_available,
calc_fan_in_and_fan_out, init_kaiming_*/init_xavier_*, tokenize_and_concatenate): they test
TransformerLens's own functions, which the lens neither wraps nor changes.
"""

from __future__ import annotations

from unittest import mock

import pytest
import torch

PROMPTS = ["Hello world!", "How are you today?", "I'm fine, thank you.", "I am happy."]
PROMPTS_WITH_SEP = [
    "I like cats<|endoftext|>Cats are so cute",
    "Hello world!",
    "How are you<|endoftext|>I am fine, thanks",
]


@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("prepend_bos", [True, False])
@pytest.mark.parametrize("prompts_with_sep", [True, False])
def test_get_attention_mask(pair, monkeypatch, padding_side, prepend_bos, prompts_with_sep):
    from transformer_lens.utilities import get_attention_mask

    ours, _ = pair
    tok = ours.tokenizer
    monkeypatch.setattr(tok, "padding_side", padding_side)
    assert tok.sep_token_id is None or tok.sep_token_id == tok.pad_token_id
    prompts = PROMPTS_WITH_SEP if prompts_with_sep else PROMPTS
    tokens = ours.to_tokens(prompts, prepend_bos=prepend_bos)
    attention_mask = get_attention_mask(tok, tokens, prepend_bos=prepend_bos)
    assert attention_mask.shape == tokens.shape
    str_tokens = ours.to_str_tokens(prompts, prepend_bos=prepend_bos)
    n_attended = torch.tensor([len(t) for t in str_tokens])
    assert (n_attended == attention_mask.sum(dim=1)).all()
    assert (tokens[attention_mask == 0] == tok.pad_token_id).all()
    if padding_side == "right":
        assert (attention_mask[:, 0] == 1).all()
        for i, num in enumerate(n_attended.tolist()):
            assert (attention_mask[i, :num] == 1).all()
    else:
        assert (attention_mask[:, -1] == 1).all()
        for i, num in enumerate(n_attended.tolist()):
            assert (attention_mask[i, -num:] == 1).all()
    if not prompts_with_sep:
        non_pad = (tokens != tok.pad_token_id).int()
        attended_but_non_pad = attention_mask != non_pad
        if tok.bos_token == tok.pad_token and prepend_bos:
            assert attended_but_non_pad.sum() == tokens.shape[0]  # each row's BOS
        else:
            assert attended_but_non_pad.sum() == 0
    # and the lens runs a padded batch with this mask: the logits of its own
    logits = ours(prompts, prepend_bos=prepend_bos)
    torch.testing.assert_close(logits, ours(tokens, attention_mask=attention_mask))


@pytest.mark.parametrize("prepend_space_to_answer", [True, False])
def test_test_prompt(pair, prepend_space_to_answer) -> None:
    """utils.test_prompt tokenises the prompt and the answer apart (the prompt's last token and
    the answer's first are not merged), and prints what TransformerLens's model prints."""
    from transformer_lens.utilities import test_prompt

    ours, theirs = pair
    prompt, answer = "When Mary and John went to the sto", "re."
    calls = []
    for model in (theirs, ours):
        with mock.patch("builtins.print") as mocked_print:
            test_prompt(prompt, answer, model, prepend_space_to_answer=prepend_space_to_answer)
        calls.append(mocked_print.mock_calls)
    want_prompt = ours.to_str_tokens(prompt)
    want_answer = ours.to_str_tokens(
        (" " if prepend_space_to_answer else "") + answer, prepend_bos=False
    )
    assert calls[1][0] == mock.call("Tokenized prompt:", want_prompt)
    assert calls[1][1] == mock.call("Tokenized answer:", want_answer)
    assert [str(c) for c in calls[1]] == [str(c) for c in calls[0]]


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("embed",), "hook_embed"),
        (("pos_embed",), "hook_pos_embed"),
        (("k", 1, "a"), "blocks.1.attn.hook_k"),
        (("attn_scores", 0), "blocks.0.attn.hook_attn_scores"),
        (("attn", 0), "blocks.0.attn.hook_pattern"),
        (("pre", 1), "blocks.1.mlp.hook_pre"),
        (("scale", 1, "ln1"), "blocks.1.ln1.hook_scale"),
        (("resid_mid", 0), "blocks.0.hook_resid_mid"),
        (("normalized", 1, "ln2"), "blocks.1.ln2.hook_normalized"),
    ],
)
def test_get_act_name_reaches_the_lens_hooks(pair, args, name) -> None:
    from transformer_lens.utilities import get_act_name

    ours, _ = pair
    assert get_act_name(*args) == name
    _, cache = ours.run_with_cache("Hello world!", names_filter=name)
    assert name in ours.hook_dict and name in cache
