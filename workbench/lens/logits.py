"""What TransformerLens computes from logits: the next-token loss and the sampling of
`generate`, with its semantics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from workbench.errors import InputError


def lm_cross_entropy_loss(
    logits: Float[Tensor, "batch pos d_vocab"],
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    per_token: bool = False,
) -> Tensor:
    """Next-token cross-entropy as TransformerLens computes it: position i predicts token
    i + 1; with a mask, only pairs of real tokens count, and the mean is over them."""
    log_probs = F.log_softmax(logits, dim=-1)
    predicted = log_probs[..., :-1, :].gather(-1, tokens[..., 1:, None].to(logits.device))[..., 0]
    if attention_mask is None:
        return -predicted if per_token else -predicted.sum() / predicted.numel()
    mask = attention_mask.to(logits.device).bool()
    pairs = mask[:, :-1] & mask[:, 1:]
    predicted = predicted.masked_fill(~pairs, 0.0)  # a padded -inf must not make 0 * inf
    return -predicted if per_token else -predicted.sum() / pairs.sum()


def sample_logits(
    logits: Float[Tensor, "batch d_vocab"],
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float = 1.0,
    freq_penalty: float = 0.0,
    repetition_penalty: float = 1.0,
    tokens: Int[Tensor, "batch pos"] | None = None,
) -> Int[Tensor, " batch"]:
    """The next token of each row, as TransformerLens samples it: the repetition penalty
    (positive logits of seen tokens divided by it, negative ones multiplied), then greedy
    at temperature 0; otherwise logits / temperature, minus `freq_penalty` times each
    token's count so far, only the `top_k` largest (or the smallest set of probability
    `top_p`, the token crossing it included), one draw from the global RNG."""
    if freq_penalty < 0:
        raise InputError(f"freq_penalty must be non-negative, got {freq_penalty}")
    if top_k is not None and top_k < 1:
        raise InputError(f"top_k must be at least 1, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {top_p}")
    if repetition_penalty != 1.0 and tokens is not None:
        seen = torch.gather(logits, -1, tokens)
        seen = torch.where(seen > 0, seen / repetition_penalty, seen * repetition_penalty)
        logits = logits.scatter(-1, tokens, seen)
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if freq_penalty > 0:
        if tokens is None:
            raise InputError("a frequency penalty needs the tokens so far")
        counts = torch.stack([torch.bincount(row, minlength=logits.shape[-1]) for row in tokens])
        logits = logits - freq_penalty * counts
    if top_k is not None:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    elif top_p is not None:
        ordered, order = logits.sort(descending=True)
        beyond = ordered.softmax(dim=-1).cumsum(dim=-1) > top_p
        beyond[..., 1:] = beyond[..., :-1].clone()  # keep the token that crosses top_p
        beyond[..., 0] = False
        logits = logits.masked_fill(beyond.scatter(-1, order, beyond), -float("inf"))
    return torch.distributions.Categorical(logits=logits.float()).sample()
