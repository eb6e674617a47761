"""What a text model reads from the page: a prompt in its tokenizer's text, its task
vocabulary's words, or raw token ids; checked against the model's context (nothing is cut
silently)."""

from __future__ import annotations

from workbench.checkpoint import Checkpoint
from workbench.errors import InputError
from workbench.tasks import make_task
from workbench.tasks.base import encode_words


def example_prompt(ckpt: Checkpoint) -> str:
    task = ckpt.meta.get("task")
    if task:
        return make_task(task["name"], **task.get("params", {})).example_prompt()
    if ckpt.has_tokenizer:
        return "The cat sat on the mat because it was tired."
    return " ".join(str(i) for i in range(min(8, ckpt.model.config.n_ctx)))


def encode(ckpt: Checkpoint, prompt: object) -> tuple[list[int], list[str]]:
    """Token ids and their labels: by the model's tokenizer, its task vocabulary, or as raw
    ids for a model without either. `prompt` comes from the browser: any type."""
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
    words = prompt.split()
    if not words:
        raise InputError("the prompt is empty; type some text")
    if ckpt.has_tokenizer:
        tokenizer = ckpt.tokenizer()
        ids = tokenizer.encode(prompt).ids
        found = ids, [tokenizer.id_to_token(i) for i in ids]
    elif ckpt.vocab is None:
        if not all(w.isascii() and w.isdigit() and len(w) <= 9 for w in words):
            raise InputError(
                "this model has no vocabulary: type token ids, whole numbers from 0 to "
                f"{ckpt.model.config.d_vocab - 1} separated by spaces"
            )
        found = [int(w) for w in words], words
    else:
        found = encode_words(prompt, ckpt.vocab, "this model's vocabulary"), words
    n_ctx = ckpt.model.config.n_ctx
    if len(found[0]) > n_ctx:
        raise InputError(
            f"the prompt is {len(found[0])} tokens long; this model takes at most {n_ctx}: "
            "shorten it (nothing is cut silently)"
        )
    return found


def describe_vocab(ckpt: Checkpoint) -> str:
    limit = f"prompts of up to {ckpt.model.config.n_ctx} tokens"
    if ckpt.has_tokenizer:
        size = ckpt.tokenizer().get_vocab_size()
        return f"{limit}; tokenizer of the checkpoint ({size} tokens), nothing cut silently"
    vocab = ckpt.vocab or []
    return f"{limit}; vocabulary ({len(vocab)}): {' '.join(vocab)}"
