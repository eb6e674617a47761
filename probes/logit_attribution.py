"""Direct logit attribution (Elhage et al. 2021, "A Mathematical Framework for Transformer
Circuits"): how much each component writes, straight through the residual stream, to the logit
of an answer, or to the logit difference answer - wrong, at one position.

The residual stream the unembedding reads is a sum of component outputs: the token and
position embeddings, each attention head's result (`hook_result`), each attention output
bias b_O and each MLP's output (TransformerLens's `decompose_resid` with heads split; the
values are its `logit_attrs`). The final norm is not linear, so it is linearised with this
run's own scale: LayerNorm centres each component, divides it by the scale the run computed
and multiplies by the weight; RMSNorm divides by the run's rms and multiplies by the weight.
The norm's bias and the unembedding bias are components of their own. Then the components sum
to the model's logit (difference) exactly, up to float rounding.

Other wirings are decomposed exactly the same way: parallel and dual-stream blocks add the
same outputs; looped and weight-tied layers keep a component per iteration; post-norm blocks
linearise each block norm with its run's scale (its bias a component); a DenseFormer stream
is a learned average of earlier outputs, so each component enters with its averaging weight.
A model whose readout is not linear after the final norm (BERT's masked-LM head: dense, GELU,
LayerNorm) is refused with `InputError`, and so is any stream the components fail to sum to
(checked on every call against the cached stream): the numbers returned always add up."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor, nn

from probes.lens import Tokens, final_stream_hook, predicts, token_batch
from workbench import names
from workbench.errors import InputError
from workbench.functional import LayerNorm, RMSNorm
from workbench.model import Transformer

KINDS = ("embed", "pos_embed", "head", "attn_bias", "mlp", "norm_bias", "unembed_bias")


@dataclass(frozen=True)
class Component:
    """One component's direct contribution to the logit (difference)."""

    name: str  # embed, pos_embed, L0H3, L0 attn bias, L0 mlp, L0 ln1 bias, ln_final bias, ...
    kind: str  # one of KINDS
    layer: int | None
    head: int | None
    value: float


@dataclass(frozen=True)
class LogitAttribution:
    """Every component's contribution (`components`, in forward order), their sum `total`,
    and `logit`, the model's own logit (difference) at `position`, which `total` equals up
    to float rounding. `frozen_norms` names the scale hooks whose values linearised a norm."""

    tokens: tuple[int, ...]
    position: int  # counted from 0
    answer: int
    wrong: int | None
    components: tuple[Component, ...]
    total: float
    logit: float
    frozen_norms: tuple[str, ...]
    predicts: str  # what the logits at a position predict (`probes.lens.predicts`)

    @property
    def logit_attrs(self) -> Float[Tensor, " component"]:
        """The contributions in component order (TransformerLens's name)."""
        return torch.tensor([c.value for c in self.components], dtype=torch.float64)

    def head_attrs(self) -> Float[Tensor, "layer head"]:
        """The heads' contributions as a [layer, head] table."""
        heads = [c for c in self.components if c.kind == "head"]
        cells = [
            (c.layer, c.head, c.value) for c in heads if c.layer is not None and c.head is not None
        ]
        table = torch.zeros(
            max(layer for layer, _, _ in cells) + 1,
            max(head for _, head, _ in cells) + 1,
            dtype=torch.float64,
        )
        for layer, head, value in cells:
            table[layer, head] = value
        return table

    def to_json(self) -> str:
        out = {k: v for k, v in vars(self).items() if k != "components"}
        out["components"] = [vars(c) for c in self.components]
        return json.dumps(out)


@torch.no_grad()
def direct_logit_attribution(
    model: Transformer,
    tokens: Tokens,
    answer: int,
    wrong: int | None = None,
    position: int = -1,
) -> LogitAttribution:
    """The direct logit attribution of `answer` (minus `wrong`, if given) at `position`."""
    batch = token_batch(model, tokens)
    cfg = model.config
    if model.mlm is not None:
        raise InputError(
            "this model's wiring is not a sum of component outputs at the logits: its masked-LM "
            "head (dense, GELU, LayerNorm) sits between the residual stream and the unembedding"
        )
    n = batch.shape[1]
    if not isinstance(position, int) or not -n <= position < n:
        raise InputError(f"position must be a whole number in {-n}..{n - 1}, got {position!r}")
    at = position % n
    _check_token(answer, "answer", cfg.vocab_out)
    if wrong is not None:
        _check_token(wrong, "wrong", cfg.vocab_out)
        if wrong == answer:
            raise InputError(f"answer and wrong are both {answer}: their difference is 0")
    logits, cache = model.run_with_cache(batch, names_filter=_hooks(model))
    stream = _decompose(model, cache, at)
    if model.ln_final is not None:  # the final norm's output: its hook is before w and b
        read, norm = names.FINAL_NORMALIZED, model.ln_final
        final = cache[read][0, at] * norm.w + getattr(norm, "b", 0.0)
    else:
        read = final_stream_hook(model)
        final = cache[read][0, at]
    _check_sum(stream, final, read, model)
    w_u = model.unembed_matrix.double()
    direction = w_u[:, answer] if wrong is None else w_u[:, answer] - w_u[:, wrong]
    values = (stream.x @ direction).tolist()
    if cfg.bias:
        b_u = model.b_U.double()
        values.append(float(b_u[answer] - (0.0 if wrong is None else b_u[wrong])))
        stream.parts.append(("unembed bias", "unembed_bias", None, None))
    row = logits[0, at].double()
    logit = float(row[answer] - (0.0 if wrong is None else row[wrong]))
    components = tuple(Component(*part, v) for part, v in zip(stream.parts, values, strict=True))
    return LogitAttribution(
        tuple(batch[0].tolist()),
        at,
        answer,
        wrong,
        components,
        float(sum(values)),
        logit,
        tuple(stream.frozen),
        predicts(model),
    )


def _scale_hook(norm: nn.Module) -> str:
    """The hook holding the divisor of a norm the decomposition linearises."""
    if not isinstance(norm, LayerNorm | RMSNorm) or norm.hook_scale.name is None:
        raise InputError(f"cannot linearise a {type(norm).__name__}")
    return norm.hook_scale.name


def _check_token(token: object, what: str, vocab: int) -> None:
    if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < vocab:
        raise InputError(f"{what} must be a token id in 0..{vocab - 1}, got {token!r}")


def _hooks(model: Transformer) -> list[str]:
    """The hooks the decomposition reads, and the one it checks its sum against."""
    cfg = model.config
    hooks = [names.EMBED] + ([names.POS_EMBED] if cfg.pos.embeds else [])
    if model.ln_embed is not None:
        hooks.append(_scale_hook(model.ln_embed))
    for layer in range(cfg.n_layers):
        block = model.block(layer)
        hooks.append(names.attn_result(layer))
        if block.mlp is not None:
            hooks.append(names.mlp_out(layer))
        if block.post_norm:
            hooks += [_scale_hook(norm) for norm in (block.ln1, block.ln2) if norm is not None]
    if model.ln_final is not None:
        hooks += [names.FINAL_SCALE, names.FINAL_NORMALIZED]
    else:
        hooks.append(final_stream_hook(model))
    return hooks


Part = tuple[str, str, int | None, int | None]  # name, kind, layer, head


class _Stream:
    """The residual stream at one position as rows [part, d_model] (float64) that sum to it;
    parts are only ever appended, so an earlier state is a prefix of the rows. New rows wait
    in chunks and are joined when a norm or an average needs the whole (one copy per norm,
    not one per part)."""

    def __init__(self, d_model: int, device: torch.device) -> None:
        self.parts: list[Part] = []
        self._chunks = [torch.zeros(0, d_model, dtype=torch.float64, device=device)]
        self.frozen: list[str] = []

    @property
    def x(self) -> Float[Tensor, "part d_model"]:
        if len(self._chunks) > 1:
            self._chunks = [torch.cat(self._chunks)]
        return self._chunks[0]

    @x.setter
    def x(self, rows: Float[Tensor, "part d_model"]) -> None:
        self._chunks = [rows]

    def add(self, part: Part, vector: Float[Tensor, " d_model"]) -> None:
        self.parts.append(part)
        self._chunks.append(vector.double()[None])

    def norm(self, norm: nn.Module, cache, at: int, where: str, layer: int | None) -> None:
        """Linearise `norm` with the scale this run computed; its bias is a new part."""
        hook = _scale_hook(norm)
        scale = cache[hook][0, at, 0].double()
        self.frozen.append(hook)
        if isinstance(norm, LayerNorm):
            self.x = (self.x - self.x.mean(-1, keepdim=True)) / scale * norm.w.double()
            self.add((f"{where} bias", "norm_bias", layer, None), norm.b)
        elif isinstance(norm, RMSNorm):
            self.x = self.x / scale * norm.w.double()
        else:
            raise InputError(f"cannot linearise a {type(norm).__name__} ({hook})")

    def average(self, outputs: list[Tensor], weights: Float[Tensor, " source"]) -> None:
        """A DenseFormer average of earlier states (prefixes of the current rows)."""
        rows = torch.zeros_like(self.x)
        for weight, state in zip(weights.double(), outputs, strict=True):
            rows[: len(state)] += weight * state
        self.x = rows


def _decompose(model: Transformer, cache, at: int) -> _Stream:
    """The stream the unembedding reads at position `at`, as rows that sum to it."""
    stream = _Stream(model.config.d_model, model.b_U.device)
    stream.add(("embed", "embed", None, None), cache[names.EMBED][0, at])
    if model.config.pos.embeds:
        stream.add(("pos_embed", "pos_embed", None, None), cache[names.POS_EMBED][0, at])
    if model.ln_embed is not None:
        stream.norm(model.ln_embed, cache, at, "ln_embed", None)
    outputs = [stream.x]  # DenseFormer: the embedding and every block output so far
    for layer in range(model.config.n_layers):
        if model.dwa_weights is not None and layer > 0:
            stream.average(outputs, model.dwa_weights[layer - 1])
        _block(stream, model, cache, at, layer)
        if model.dwa_weights is not None:
            outputs.append(stream.x)
    if model.dwa_weights is not None:
        stream.average(outputs, model.dwa_weights[-1])
    if model.ln_final is not None:
        stream.norm(model.ln_final, cache, at, "ln_final", None)
    return stream


def _block(stream: _Stream, model: Transformer, cache, at: int, layer: int) -> None:
    """What block `layer` writes: each head's result, b_O, the MLP's output; a post-norm
    block normalises after each sublayer. Sequential, parallel and dual-stream blocks add
    the same outputs to the stream their resid hooks hold."""
    block = model.block(layer)
    for head, vector in enumerate(cache[names.attn_result(layer)][0, at]):
        stream.add((f"L{layer}H{head}", "head", layer, head), vector)
    attn = block.attn
    if attn.biased:
        stream.add((f"L{layer} attn bias", "attn_bias", layer, None), attn.b_O)
    if block.post_norm and block.ln1 is not None:
        stream.norm(block.ln1, cache, at, f"L{layer} ln1", layer)
    if block.mlp is None:
        return
    stream.add((f"L{layer} mlp", "mlp", layer, None), cache[names.mlp_out(layer)][0, at])
    if block.post_norm and block.ln2 is not None:
        stream.norm(block.ln2, cache, at, f"L{layer} ln2", layer)


def _check_sum(stream: _Stream, cached: Tensor, hook: str, model: Transformer) -> None:
    """Refuse (`InputError`) if the rows do not sum to the stream the model computed."""
    total = stream.x.sum(0)
    error = float((total - cached.double()).abs().max())
    size = float(stream.x.abs().sum(0).max())
    tolerance = max(1e-4, 100 * torch.finfo(cached.dtype).eps) * (size + 1e-12)
    if not error <= tolerance:
        raise InputError(
            f"this model's wiring is not a sum of component outputs: the components sum to a "
            f"stream {error:.3g} away from {hook} (scale {size:.3g}); direct logit attribution "
            "would not add up"
        )
