"""What the model predicts: the top-k tokens at each position, and the logit lens (nostalgebraist
2020, "interpreting GPT: the logit lens"): the residual stream before each layer, and after the
last, read out through the model's own final norm and unembedding.

The logit lens rows are TransformerLens's `accumulated_resid` (`0_pre`, `1_pre`, ...,
`final_post`), each put through the final norm the model really has (LayerNorm, RMSNorm, none
for post-norm blocks; BERT's masked-LM transform too), so the last row is the model's own
logits. The direct logit attribution of one answer is in `probes.logit_attribution`.

Each function takes one sequence of token ids and returns a frozen result with `to_json`.
The caller holds the model (its lock, in the dashboard); nothing here adds a hook that
outlives the call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from workbench import names
from workbench.config import Mask
from workbench.errors import InputError
from workbench.model import Transformer

Tokens = Sequence[int] | Int[Tensor, " pos"]


def token_batch(model: Transformer, tokens: Tokens) -> Int[Tensor, "1 pos"]:
    """One sequence of token ids as the model's [1, pos] input, checked (`InputError`)."""
    if not isinstance(model, Transformer):
        raise InputError(
            f"these analyses read a workbench model's config, got {type(model).__name__}; "
            "load the model with workbench.api.load or build it from a preset"
        )
    if not model.config.input.tokens:
        raise InputError(
            f"this model reads {model.config.input.KIND}, not token ids: the prediction "
            "views are for token models"
        )
    ids = tokens if isinstance(tokens, Tensor) else torch.as_tensor(list(tokens))
    if ids.ndim != 1 or len(ids) == 0:
        raise InputError(
            f"tokens must be one non-empty sequence of ids (1-D), got shape {list(ids.shape)}"
        )
    batch = ids[None].to(model.b_U.device)
    model.check_tokens(batch)
    return batch


def predicts(model: Transformer) -> str:
    """What the logits at a position predict: the next token (causal models) or the token at
    that position (bidirectional models: a masked-LM reading)."""
    return "next token" if model.config.mask is Mask.CAUSAL else "token at this position"


@dataclass(frozen=True)
class TopPredictions:
    """The k most probable tokens at each position, `ids` and `probs` [pos, k], best first."""

    tokens: tuple[int, ...]
    ids: Int[Tensor, "pos k"]
    probs: Float[Tensor, "pos k"]
    predicts: str  # "next token" or "token at this position"

    def to_json(self) -> str:
        return json.dumps(
            {
                "tokens": list(self.tokens),
                "ids": self.ids.tolist(),
                "probs": self.probs.tolist(),
                "predicts": self.predicts,
            }
        )


@torch.no_grad()
def top_predictions(model: Transformer, tokens: Tokens, k: int = 5) -> TopPredictions:
    """The top-`k` tokens (softmax of the logits) at each position; `k` is capped at the
    vocabulary size."""
    batch = token_batch(model, tokens)
    if not isinstance(k, int) or k < 1:
        raise InputError(f"k must be a whole number >= 1, got {k!r}")
    probs = model(batch)[0].double().softmax(-1)  # [pos, vocab]
    top = probs.topk(min(k, probs.shape[-1]), dim=-1)
    return TopPredictions(
        tuple(batch[0].tolist()), top.indices.cpu(), top.values.cpu(), predicts(model)
    )


def readout(model: Transformer, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_vocab"]:
    """The logits of residual stream vectors: the model's final norm, its masked-LM head if it
    has one, the unembedding and its bias, as the model's own forward pass applies them."""
    if model.ln_final is not None:
        x = model.ln_final.unhooked(x)
    if model.mlm is not None:
        x = model.mlm(x)
    bias = model.b_U if model.config.bias else None
    return F.linear(x, model.unembed_matrix.T, bias)


def final_stream_hook(model: Transformer) -> str:
    """The hook holding the stream the final norm reads: the last block's output, or for a
    depth-weighted (DenseFormer) model the last depth-weighted average."""
    last = model.config.n_layers - 1
    return names.block(last, "hook_dwa") if model.config.depth_weighted else names.resid_post(last)


def stream_hooks(model: Transformer) -> tuple[list[str], list[str]]:
    """TransformerLens's `accumulated_resid` rows: the hooks holding the stream each block
    reads (`resid_pre`; for DenseFormer the average it is fed) and the final stream, with the
    labels `0_pre`, `1_pre`, ..., `final_post`."""
    n = model.config.n_layers
    hooks = [names.resid_pre(layer) for layer in range(n)] + [final_stream_hook(model)]
    return hooks, [f"{layer}_pre" for layer in range(n)] + ["final_post"]


@dataclass(frozen=True)
class LogitLens:
    """The logit lens of one sequence: per row (a point of the residual stream, `labels`) and
    position, the most probable token, its probability, and the probability of the target
    there (when one was given). The last row is the model's own prediction."""

    tokens: tuple[int, ...]
    labels: tuple[str, ...]  # 0_pre, 1_pre, ..., final_post
    hooks: tuple[str, ...]
    top_tokens: Int[Tensor, "row pos"]
    top_probs: Float[Tensor, "row pos"]
    target: tuple[int, ...] | None  # the target token at each position
    target_probs: Float[Tensor, "row pos"] | None
    predicts: str  # "next token" or "token at this position"

    def to_json(self) -> str:
        return json.dumps(
            {
                "tokens": list(self.tokens),
                "labels": list(self.labels),
                "hooks": list(self.hooks),
                "top_tokens": self.top_tokens.tolist(),
                "top_probs": self.top_probs.tolist(),
                "target": None if self.target is None else list(self.target),
                "target_probs": None if self.target_probs is None else self.target_probs.tolist(),
                "predicts": self.predicts,
            }
        )


@torch.no_grad()
def logit_lens(
    model: Transformer, tokens: Tokens, target: int | Sequence[int] | None = None
) -> LogitLens:
    """The logit lens of `tokens`. `target` is one token id for every position, or one id per
    position (for a causal model, the tokens that follow: `tokens[1:] + [next]`)."""
    batch = token_batch(model, tokens)
    n = batch.shape[1]
    targets = _targets(model, target, n)
    hooks, labels = stream_hooks(model)
    _, cache = model.run_with_cache(batch, names_filter=hooks)
    top_tokens, top_probs, target_probs = [], [], []
    for hook in hooks:  # one row at a time: [pos, vocab] logits, never [row, pos, vocab]
        probs = readout(model, cache[hook][0]).double().softmax(-1)
        best = probs.max(-1)
        top_tokens.append(best.indices)
        top_probs.append(best.values)
        if targets is not None:
            target_probs.append(
                probs[torch.arange(n, device=probs.device), targets.to(probs.device)]
            )
    return LogitLens(
        tuple(batch[0].tolist()),
        tuple(labels),
        tuple(hooks),
        torch.stack(top_tokens).cpu(),
        torch.stack(top_probs).cpu(),
        None if targets is None else tuple(targets.tolist()),
        None if targets is None else torch.stack(target_probs).cpu(),
        predicts(model),
    )


def _targets(model: Transformer, target: int | Sequence[int] | None, n: int) -> Tensor | None:
    if target is None:
        return None
    if isinstance(target, Tensor):
        target = target.tolist()
    ids = [target] * n if isinstance(target, int) else list(target)
    if len(ids) != n:
        raise InputError(f"target has {len(ids)} ids for {n} positions: give one id or one each")
    vocab = model.config.vocab_out
    bad = [t for t in ids if not isinstance(t, int) or not 0 <= t < vocab]
    if bad:
        raise InputError(f"target ids must be whole numbers in 0..{vocab - 1}, got {bad[:5]}")
    return torch.tensor(ids)
