"""A tiny GPT-2 with a byte-level BPE tokenizer of its own, saved as a Hugging Face directory:
the workbench lens and TransformerLens (4: `TransformerBridge`; 3: `HookedTransformer`) run
the same weights. CI runs these tests on both versions (.ci/run)."""

from __future__ import annotations

import dataclasses
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


HOOKED = "HookedTransformer"  # TransformerLens 3 has it; 4 has only the TransformerBridge


def transformerlens_version() -> tuple[int, int]:
    """The installed TransformerLens's (major, minor)."""
    from importlib.metadata import version

    major, minor = version("transformer-lens").split(".")[:2]
    return int(major), int(minor)


def transformerlens_model(gpt2_dir: Path, processed: bool):
    """TransformerLens's own model on the files' weights: on TransformerLens 4 a
    `TransformerBridge` opening the directory (`enable_compatibility_mode` processing it as
    `HookedTransformer.from_pretrained` does); on 3 its `HookedTransformer`, built from the
    lens's `cfg` with the weights of `tl_state_dict()` (its `from_pretrained` needs the Hub),
    processed by its own `load_and_process_state_dict`."""
    import transformer_lens

    from workbench.lens import HookedTransformer

    if transformerlens_version()[0] == 4:
        from transformer_lens.model_bridge import TransformerBridge

        bridge = TransformerBridge.boot_transformers(str(gpt2_dir), device="cpu")
        if processed:
            bridge.enable_compatibility_mode(disable_warnings=True)
        return bridge
    raw = HookedTransformer.from_pretrained_no_processing(gpt2_dir)
    config = transformer_lens.HookedTransformerConfig
    known = {f.name for f in dataclasses.fields(config)}
    cfg = {k: v for k, v in raw.cfg.to_dict().items() if k in known and k != "device"}
    from transformers import AutoTokenizer  # TL 3 re-opens the tokenizer by its path

    tokenizer = AutoTokenizer.from_pretrained(gpt2_dir)
    model = getattr(transformer_lens, HOOKED)(config(**cfg), tokenizer=tokenizer)
    weights = {k: v.detach().clone() for k, v in raw.tl_state_dict().items()}
    model.load_and_process_state_dict(
        weights,
        fold_ln=processed,
        center_writing_weights=processed,
        center_unembed=processed,
        fold_value_biases=processed,
    )
    return model.eval()


@pytest.fixture(scope="module")
def pair(gpt2_dir: Path):
    """The lens and TransformerLens's model on the same files, weights as stored."""
    from workbench.lens import HookedTransformer

    ours = HookedTransformer.from_pretrained_no_processing(gpt2_dir)
    return ours, transformerlens_model(gpt2_dir, processed=False)
