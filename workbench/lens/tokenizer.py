"""A model's tokenizer as TransformerLens code expects it: a Hugging Face fast tokenizer
(`transformers.PreTrainedTokenizerFast`), built from what the checkpoint has.

- A checkpoint with `tokenizer.json` (converted Hugging Face models, MiniLM): that tokenizer,
  with the special tokens its `tokenizer_config.json` / `special_tokens_map.json` name (read
  from the checkpoint directory only; nothing is downloaded or unpickled).
- A model trained on a built-in task: a word-level tokenizer of the task vocabulary
  (whitespace-separated words, as `Task.encode`), decoding to words joined by spaces.

As TransformerLens's `HookedTransformer.set_tokenizer` does, a tokenizer without an end-of-text
token uses none, one without a padding or beginning-of-sequence token uses its end-of-text
token for them."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from workbench.errors import CheckpointError
from workbench.files import confined

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

    from workbench.checkpoint import Checkpoint

SPECIAL = (
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "sep_token",
    "cls_token",
    "mask_token",
)
# words of a task vocabulary that play a special token's part
VOCAB_SPECIAL = {
    "bos_token": ("BOS", "<bos>", "[BOS]", "<s>"),
    "eos_token": ("EOS", "<eos>", "[EOS]", "</s>"),
    "pad_token": ("PAD", "<pad>", "[PAD]"),
}


def checkpoint_tokenizer(ckpt: Checkpoint) -> PreTrainedTokenizerFast | None:
    """The tokenizer of `ckpt`'s model (None: a model without words for its ids)."""
    if ckpt.vocab is not None:
        return vocabulary_tokenizer(ckpt.vocab)
    if ckpt.has_tokenizer:
        return _fast(ckpt.tokenizer(), _special_tokens(ckpt))
    return None


def vocabulary_tokenizer(vocab: list[str]) -> PreTrainedTokenizerFast:
    """A word-level tokenizer of `vocab`: whitespace-separated words, id = index."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    tokenizer = Tokenizer(WordLevel({word: i for i, word in enumerate(vocab)}))
    tokenizer.pre_tokenizer = WhitespaceSplit()  # pyright: ignore[reportAttributeAccessIssue]
    special = {
        role: next(w for w in words if w in vocab)
        for role, words in VOCAB_SPECIAL.items()
        if any(w in vocab for w in words)
    }
    return _fast(tokenizer, special)


def _special_tokens(ckpt: Checkpoint) -> dict[str, str]:
    """The special tokens the checkpoint's tokenizer files name."""
    assert ckpt.directory is not None
    found: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        if not (ckpt.directory / name).is_file():
            continue
        try:
            data = json.loads(confined(ckpt.directory, name).read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read the tokenizer's {name}: {exc}") from None
        for role in SPECIAL:
            token = _content(data.get(role)) if isinstance(data, dict) else None
            if token is not None:
                found.setdefault(role, token)
    return found


def _content(token: Any) -> str | None:
    """A special token as the files write it: a string, or a dict with its `content`."""
    if isinstance(token, dict):
        token = token.get("content")
    return token if isinstance(token, str) and token else None


def _fast(tokenizer: Any, special: dict[str, str]) -> PreTrainedTokenizerFast:
    from transformers import PreTrainedTokenizerFast

    eos = special.get("eos_token")
    if eos is not None:  # as HookedTransformer.set_tokenizer
        special.setdefault("pad_token", eos)
        special.setdefault("bos_token", eos)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    fast.padding_side = "right"
    return fast
