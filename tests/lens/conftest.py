"""A tiny GPT-2 with a byte-level BPE tokenizer of its own, saved as a Hugging Face directory:
the workbench lens and TransformerLens's `TransformerBridge` open the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = [
    "When Mary and John went to the store, John gave a drink to Mary.",
    "The quick brown fox jumps over the lazy dog. The dog sleeps.",
    "Hello world! Hello there, general Kenobi. 1 + 2 = 3, 10 + 20 = 30.",
]
EOT = "<|endoftext|>"


def bpe_tokenizer(vocab_size: int):
    """A GPT-2-style tokenizer (byte-level BPE, end-of-text as BOS, EOS and padding) trained
    on CORPUS, `vocab_size` tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, unk_token=EOT
    )


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    """A Hugging Face GPT-2 directory (random weights, norms included) with its tokenizer
    files."""
    import torch
    import transformers as T

    path = tmp_path_factory.mktemp("gpt2")
    tokenizer = bpe_tokenizer(300)
    eot = tokenizer.bos_token_id
    cfg = T.GPT2Config(
        n_layer=2,
        n_embd=32,
        n_head=4,
        vocab_size=len(tokenizer),
        n_positions=64,
        bos_token_id=eot,
        eos_token_id=eot,
    )
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = T.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # norms that are not the identity: pre- and post-affine differ
        for name, p in model.named_parameters():
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                p.add_(0.3 * torch.randn_like(p))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def pair(gpt2_dir: Path):
    """The lens and TransformerLens's TransformerBridge on the same files, weights as stored."""
    from transformer_lens.model_bridge import TransformerBridge

    from workbench.lens import HookedTransformer

    ours = HookedTransformer.from_pretrained_no_processing(gpt2_dir)
    bridge = TransformerBridge.boot_transformers(str(gpt2_dir), device="cpu")
    return ours, bridge
