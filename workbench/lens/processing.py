"""TransformerLens's weight processing (`HookedTransformer.process_weights_`) on a workbench
model, in place; each step leaves what the model computes unchanged (the logits, or their
log-probabilities for `center_unembed`) and makes direct logit attribution exact:

- `fold_layer_norm`: a norm's scale w and bias b move into the linear maps that read it
  (`W_Q`, `W_K`, `W_V`, an attention gate `W_G`, `W_in`, `W_gate`, the unembedding): W' = w W,
  b' = b_W + b W. The norms are then pure (w = 1, b = 0: TransformerLens's "LNPre"/"RMSPre"),
  so the residual stream divided by the cached scale is what the readers read, linearly.
  After a LayerNorm the readers' weights are also centred over d_model (the normalised
  input has mean 0, so the mean row contributes nothing).
- `center_writing_weights`: every matrix that writes to the residual stream (`W_E`, `W_pos`,
  `W_O`, `b_O`, `W_out`, `b_out`) loses its mean over d_model: every reader is a LayerNorm,
  which removes that mean anyway.
- `center_unembed`: `W_U` and `b_U` lose their mean over the vocabulary (softmax ignores a
  constant per position).
- `fold_value_biases`: each head's value bias b_V moves into the output bias
  (b_O += sum_h b_V[h] W_O[h]), because softmax patterns sum to one over the keys.

A step that would change the model's function on this architecture raises `InputError`
naming the part in the way (a post-norm block, a reader with no bias to take the norm's,
an attention kind whose patterns do not sum to one, ...). A tied unembedding is untied first
(TransformerLens holds GPT-2's W_U as its own copy too)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from workbench.config import Norm, NormPlacement
from workbench.errors import InputError
from workbench.model import Transformer

# per module kind: (weight, bias) pairs that read the module's input through `x @ W + b`
READERS = {
    "attn": (("W_Q", "b_Q"), ("W_K", "b_K"), ("W_V", "b_V"), ("W_G", "b_G")),
    "mlp": (("W_in", "b_in"), ("W_gate", "b_gate")),
}
# parameters of those modules that do not read their input: outputs, and position tables
# (Shaw et al.'s relative vectors, T5's bucket biases, FIRE's position MLP) that read positions
NOT_READERS = {
    "attn": {"W_O", "b_O", "shaw_k", "shaw_v", "rel_bias", "fire"},
    "mlp": {"W_out", "b_out"},
}


def fold_layer_norm(
    model: Transformer, fold_biases: bool = True, center_weights: bool = True
) -> None:
    """Fold each norm's w (and b, with `fold_biases`) into the maps that read it; centre
    those maps over d_model after a LayerNorm (`center_weights`)."""
    config = model.config
    if config.norm is Norm.NONE:
        return  # nothing to fold
    _check_pre_norm(model, "fold_layer_norm")
    jobs = []  # (norm, [(weight, bias or None)]) checked in full before anything changes
    for layer in range(config.n_layers):
        block = model.block(layer)
        jobs.append((block.ln1, list(_readers(block.attn, "attn", layer))))
        if block.mlp is not None:
            jobs.append((block.ln2, list(_readers(block.mlp, "mlp", layer))))
    if model.ln_final is not None:
        jobs.append((model.ln_final, None))  # the unembedding, untied below
    for norm, readers in jobs:
        b = _bias(norm)
        if not fold_biases or b is None or not bool(b.any()):
            continue
        takers = ["W_U"] if readers is None and not config.bias else []  # b_U is not added
        takers += [weight.name for weight, bias in readers or () if bias is None]
        if takers:
            raise InputError(
                f"{norm.name}'s bias cannot fold: {takers[0]} has no bias to take it (a "
                "model built with bias=False); pass fold_biases=False"
            )
    centre = center_weights and config.norm is Norm.LAYERNORM
    with torch.no_grad():
        for norm, readers in jobs:
            if readers is None:
                _untie(model)
                b_u = _Named(model.b_U, "b_U") if config.bias else None
                pairs = [(_Named(model.W_U, "W_U"), b_u)]
            else:
                pairs = readers
            for weight, bias in pairs:
                _fold(norm, weight.tensor, None if bias is None else bias.tensor, fold_biases)
                if centre:
                    weight.tensor.sub_(weight.tensor.mean(dim=-2, keepdim=True))
            norm.w.fill_(1.0)
            if _bias(norm) is not None and fold_biases:
                norm.b.zero_()
    if fold_biases or config.norm is Norm.RMSNORM:  # pure norms: TL's LNPre / RMSPre
        model.__dict__["lens_pure_norms"] = True


def center_writing_weights(model: Transformer) -> None:
    """Remove the mean over d_model from everything that writes to the residual stream."""
    config = model.config
    if config.norm is Norm.NONE:
        return  # nothing reads the stream through a norm: no mean is removed
    if config.norm is not Norm.LAYERNORM or model.ln_final is None:
        raise InputError(
            f"the writing weights centre only where every reader of the residual stream is "
            f"a LayerNorm (which removes the mean); this model has norm={config.norm}"
            + ("" if model.ln_final is not None else " and no final norm")
        )
    _check_pre_norm(model, "center_writing_weights")
    with torch.no_grad():
        _untie(model)  # W_E writes the stream; a tied W_U would read it centred as well
        for name in ("W_E", "W_pos"):
            tensor = model._parameters.get(name)
            if tensor is not None:
                tensor.sub_(tensor.mean(dim=-1, keepdim=True))
        for layer in range(config.n_layers):
            block = model.block(layer)
            for module, names in ((block.attn, ("W_O", "b_O")), (block.mlp, ("W_out", "b_out"))):
                for name in names:
                    tensor = None if module is None else module._parameters.get(name)
                    if tensor is not None:
                        tensor.sub_(tensor.mean(dim=-1, keepdim=True))


def center_unembed(model: Transformer) -> None:
    """Remove the mean over the vocabulary from W_U and b_U (the log-probabilities stay)."""
    with torch.no_grad():
        _untie(model)
        model.W_U.sub_(model.W_U.mean(dim=-1, keepdim=True))
        model.b_U.sub_(model.b_U.mean())


def fold_value_biases(model: Transformer) -> None:
    """Move each head's value bias into the attention output bias."""
    config = model.config
    attns = []
    for layer in range(config.n_layers):
        attn = model.block(layer).attn
        kind = config.layer(layer).attention
        if str(kind) != "softmax" or config.kv_shift or config.momentum is not None:
            raise InputError(
                f"the value biases fold only where attention patterns sum to one over the "
                f"keys and values reach the output only through them; layer {layer} has "
                f"attention={kind}"
                + (", kv_shift" if config.kv_shift else "")
                + (", momentum" if config.momentum is not None else "")
            )
        params = attn._parameters
        if "W_G" in params:
            raise InputError(
                f"layer {layer}'s heads are gated after the pattern, so the value bias does "
                "not reach the output as a constant"
            )
        if not all(isinstance(params.get(n), nn.Parameter) for n in ("W_O", "b_V", "b_O")):
            raise InputError(f"layer {layer} has no value and output biases to fold")
        attns.append(attn)
    if not config.bias:
        return  # the value biases are zero and never added
    with torch.no_grad():
        for attn in attns:
            group = config.n_heads // config.kv_heads
            b_v = attn.b_V.repeat_interleave(group, dim=0)  # [head, d_head]
            attn.b_O.add_(torch.einsum("hd,hdm->m", b_v, attn.W_O))
            attn.b_V.zero_()


# TransformerLens's names for the steps, in its order (process_weights' flags shadow the names)
STEPS = {
    "fold_ln": fold_layer_norm,
    "center_writing_weights": center_writing_weights,
    "center_unembed": center_unembed,
    "fold_value_biases": fold_value_biases,
}


def process_weights(
    model: Transformer,
    fold_ln: bool = True,
    center_writing_weights: bool = True,
    center_unembed: bool = True,
    fold_value_biases: bool = True,
) -> list[str]:
    """TransformerLens's `process_weights_`: the steps asked for that this architecture
    allows, in TransformerLens's order; returns why any was skipped (nothing is changed by a
    skipped step)."""
    wanted = {
        "fold_ln": fold_ln,
        "center_writing_weights": center_writing_weights,
        "center_unembed": center_unembed,
        "fold_value_biases": fold_value_biases,
    }
    skipped = []
    for name, step in STEPS.items():
        if not wanted[name]:
            continue
        try:
            step(model)
        except InputError as err:
            skipped.append(f"{name}: {err}")
    return skipped


@dataclasses.dataclass
class _Named:
    tensor: Tensor
    name: str


def _readers(module: nn.Module, kind: str, layer: int) -> Iterator[tuple[_Named, _Named | None]]:
    """The (weight, bias) pairs of `module` that read its input; refuse a module whose
    input reaches anything else."""
    params = module._parameters
    known = {n for pair in READERS[kind] for n in pair} | NOT_READERS[kind]
    other = [n for n, _ in module.named_parameters() if n.split(".")[0] not in known]
    if other:
        raise InputError(
            f"layer {layer}'s {kind} has {', '.join(sorted(other))} besides linear maps of "
            "its input (x W + b): its norm does not fold into it"
        )
    for weight, bias in READERS[kind]:
        w = params.get(weight)
        if w is None:
            if weight in ("W_Q", "W_K", "W_V", "W_in"):
                raise InputError(
                    f"layer {layer}'s {kind} has no {weight} parameter (a collapsed or fixed "
                    "projection): its norm cannot fold into it"
                )
            continue
        b = params.get(bias)
        usable = b is not None and getattr(module, "biased", True) and b.requires_grad
        yield (
            _Named(w, f"blocks.{layer}.{kind}.{weight}"),
            (_Named(b, bias) if usable and b is not None else None),
        )


def _fold(norm: nn.Module, weight: Tensor, bias: Tensor | None, fold_biases: bool) -> None:
    """weight, bias <- w * weight, bias + b @ weight (over weight's d_model axis, -2)."""
    b = _bias(norm)
    if fold_biases and b is not None and bias is not None:
        bias.add_(torch.einsum("d,...do->...o", b, weight))
    w = norm._parameters["w"]
    assert w is not None
    weight.mul_(w[:, None])


def _bias(norm: nn.Module) -> Tensor | None:
    return norm._parameters.get("b")


def _check_pre_norm(model: Transformer, step: str) -> None:
    config = model.config
    if config.norm_placement is not NormPlacement.PRE:
        raise InputError(
            f"{step} needs norms before the sublayers; this model's are "
            f"{config.norm_placement}-norm (the norm's output is the residual stream itself)"
        )
    if model.mlm is not None:
        raise InputError(f"{step}: the masked-LM head reads the final norm through a GELU")


def _untie(model: Transformer) -> None:
    """Give a tied model an unembedding of its own (a copy of W_E^T)."""
    if not model.config.tied_embeddings:
        return
    # into _parameters directly: the lens's W_U property would stop nn.Module's setattr
    model._parameters["W_U"] = nn.Parameter(model.W_E.detach().T.clone())
    model.config = dataclasses.replace(model.config, tied_embeddings=False)
