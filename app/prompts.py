"""What a text model reads from the page: a prompt in its tokenizer's text, its task
vocabulary's words, or raw token ids; checked against the model's context (nothing is cut
silently)."""

from __future__ import annotations

from collections.abc import Callable

from workbench.checkpoint import Checkpoint
from workbench.errors import InputError
from workbench.options import Patches, Series, Tokens
from workbench.tasks.base import encode_words

MAX_PROMPT_CHARS = 100_000  # far more than any model's context holds; a bound on what is read


def checked_text(prompt: object) -> str:
    """The page's input box, which comes from the browser: text of a bounded length."""
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(
            f"the prompt is {len(prompt):,} characters long; at most {MAX_PROMPT_CHARS:,} are "
            "read: shorten it"
        )
    return prompt


def example_prompt(ckpt: Checkpoint) -> str:
    """A first input for the model: its task's example, a compiled program's, `sample 0` for
    an image or series model."""
    if not isinstance(ckpt.model.config.input, Tokens):
        return "sample 0"
    if isinstance(ckpt.meta.get("rasp"), dict):
        from rasp.readout import rasp_labels

        return rasp_labels(ckpt).example_prompt()
    if (task := ckpt.task()) is not None:
        return task.example_prompt()
    if ckpt.has_tokenizer:
        return "The cat sat on the mat because it was tired."
    return " ".join(str(i) for i in range(min(8, ckpt.model.config.n_ctx)))


def encode(ckpt: Checkpoint, prompt: object) -> tuple[list[int], list[str]]:
    """Token ids and their labels: by the model's tokenizer, its task vocabulary, or as raw
    ids for a model without either. `prompt` comes from the browser: any type."""
    text = checked_text(prompt)
    words = text.split()
    if not words:
        raise InputError("the prompt is empty; type some text")
    if ckpt.has_tokenizer:
        tokenizer = ckpt.tokenizer()
        ids = tokenizer.encode(text).ids
        found = ids, [tokenizer.id_to_token(i) for i in ids]
    elif ckpt.vocab is None:
        if not all(w.isascii() and w.isdigit() and len(w) <= 9 for w in words):
            raise InputError(
                "this model has no vocabulary: type token ids, whole numbers from 0 to "
                f"{ckpt.model.config.d_vocab - 1} separated by spaces"
            )
        found = [int(w) for w in words], words
    else:
        found = encode_words(text, ckpt.vocab, "this model's vocabulary"), words
    n_ctx = ckpt.model.config.n_ctx
    if len(found[0]) > n_ctx:
        raise InputError(
            f"the prompt is {len(found[0])} tokens long; this model takes at most {n_ctx}: "
            "shorten it (nothing is cut silently)"
        )
    return found


def describe_vocab(ckpt: Checkpoint) -> str:
    """What the input box takes, shown under it."""
    config = ckpt.model.config
    if isinstance(config.input, Patches):
        return (
            f"images of {config.input.image_size}x{config.input.image_size} pixels, {config.input.channels} "
            f"channel(s), in {config.input.side**2} patches: type "
            "sample N for a sample of its task, or upload a PNG (at most 5 MB)"
        )
    if isinstance(config.input, Series):
        return (
            f"series of {config.input.lookback} steps, up to {config.n_ctx} variates: type sample N "
            "for a sample of its task"
        )
    limit = f"prompts of up to {config.n_ctx} tokens"
    if ckpt.has_tokenizer:
        size = ckpt.tokenizer().get_vocab_size()
        return f"{limit}; tokenizer of the checkpoint ({size} tokens), nothing cut silently"
    vocab = ckpt.vocab or []
    return f"{limit}; vocabulary ({len(vocab)}): {' '.join(vocab)}"


def token_id(ckpt: Checkpoint, text: object, what: str) -> int | None:
    """The id of one token the page names (`what`: e.g. "answer"): a word of the vocabulary,
    a token of the tokenizer, or an id; None for an empty box."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str | int) or isinstance(text, bool):
        raise InputError(f"the {what} must be one token, got {type(text).__name__}")
    word = str(text).strip()
    found = ckpt.token_id(word)
    if found is None:
        n = ckpt.model.config.vocab_out
        kind = (
            "tokenizer"
            if ckpt.has_tokenizer
            else "vocabulary"
            if ckpt.vocab
            else f"ids (0..{n - 1})"
        )
        raise InputError(
            f"the {what} {word[:40]!r} is not one token of this model: type one token of its {kind}"
        )
    return found


def token_names(ckpt: Checkpoint) -> Callable[[int], str]:
    """A token's text by id: the tokenizer's, the vocabulary's word, or the id."""
    return ckpt.token_names() or str
