"""A compiled RASP model read in its program's terms, for the dashboard and notebooks: the
residual stream's basis labels (`sop:value`), the operation each head computes
(`reverse = aggregate(select(indices, opp_index, ==), tokens)`), and the residual stream
after the embedding and after every sublayer decoded back to SOp values.

Decoding inverts the compiler's layout (`rasp.compiler.residual`): a categorical SOp is one-hot,
so its value is the one whose dimension is set (above 1/2; none set reads as None, as the
compiler encodes None); a numerical SOp is the number in its one dimension. A SOp counts as
present from the sublayer that writes it on. The readout is checked against the interpreter on
the shipped programs (tests/rasp/test_readout.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from workbench import names
from workbench.checkpoint import Checkpoint
from workbench.errors import InputError
from workbench.hooked import HookedModel
from workbench.sites import Sender

EMBEDDING = -1


@dataclass(frozen=True)
class HeadRole:
    """What attention head `head` of block `layer` computes."""

    layer: int
    head: int
    sop: str
    operation: str | None  # None: a checkpoint saved before operations were recorded

    @property
    def name(self) -> str:
        return self.operation or self.sop


@dataclass(frozen=True)
class RaspLabels:
    """The meaning of a compiled model's residual dimensions and heads."""

    program: str  # the output SOp's label
    residual: tuple[str, ...]  # every dimension's label, `sop:value` or a numerical `sop`
    sops: tuple[str, ...]  # every dimension's SOp
    sublayers: dict[str, int]  # SOp -> the sublayer writing it (-1 embedding, 2l, 2l + 1)
    heads: tuple[tuple[HeadRole | None, ...], ...]  # [layer][head]; None: an unused head
    vocab: tuple[str, ...]  # the input tokens by id, BOS (id 0) first
    max_seq_len: int
    causal: bool

    @property
    def sop_order(self) -> tuple[str, ...]:
        """Every SOp once, in residual order."""
        return tuple(dict.fromkeys(self.sops))

    def numerical(self, sop: str) -> bool:
        """A numerical SOp has one dimension, labelled by the SOp alone."""
        return self.residual[self.sops.index(sop)] == sop

    def value_text(self, dim: int) -> str:
        """The value a categorical dimension stands for (`length:3` -> `3`)."""
        return self.residual[dim][len(self.sops[dim]) + 1 :]

    def head_name(self, layer: int, head: int) -> str | None:
        row = self.heads[layer] if 0 <= layer < len(self.heads) else ()
        role = row[head] if 0 <= head < len(row) else None
        return None if role is None else role.name

    def example_prompt(self) -> str:
        """BOS and up to four input tokens: a prompt the model takes."""
        tokens = self.vocab[1:]
        n = min(4, self.max_seq_len)
        return " ".join([self.vocab[0], *(tokens[i % len(tokens)] for i in range(n))])

    def to_json(self) -> str:
        heads = [[None if r is None else r.__dict__ for r in row] for row in self.heads]
        return json.dumps({**self.__dict__, "heads": heads})


def rasp_labels(checkpoint: Checkpoint) -> RaspLabels:
    """The labels a compiled RASP checkpoint records (`CompiledProgram.save`); raises
    `InputError` for any other model. Checkpoints saved before the SOp of each dimension and
    each head's operation were recorded are read from their labels and ground truth."""
    meta = checkpoint.meta.get("rasp")
    if not isinstance(meta, dict) or "residual" not in meta:
        raise InputError(
            "this model is not a compiled RASP program (its checkpoint has no 'rasp' "
            "metadata); compile one with: workbench compile PROGRAM --vocab a,b,c "
            "--max-len 5 -o DIR"
        )
    config = checkpoint.model.config
    try:
        labels = from_meta(
            meta, checkpoint.meta.get("vocab") or [], config.n_layers, config.n_heads
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise InputError(
            f"the checkpoint's RASP metadata is malformed ({type(exc).__name__}: "
            f"{str(exc)[:80]}): compile the program again"
        ) from None
    if len(labels.residual) != config.d_model:
        raise InputError(
            f"the checkpoint labels {len(labels.residual)} residual dimensions but the model "
            f"has d_model={config.d_model}: its metadata does not belong to these weights"
        )
    return labels


def from_meta(meta: dict[str, Any], vocab: list[str], n_layers: int, n_heads: int) -> RaspLabels:
    """The labels from a checkpoint's `rasp` metadata (`CompiledProgram.meta()["rasp"]`)."""
    residual = tuple(meta["residual"])
    components = meta.get("ground_truth", {}).get("components", {})
    sops = tuple(meta.get("residual_sops") or (_sop_of(label) for label in residual))
    sublayers = meta.get("sublayers") or _sublayers_from(components)
    table: list[list[HeadRole | None]] = [[None] * n_heads for _ in range(n_layers)]
    if "heads" in meta:
        for layer, row in enumerate(meta["heads"]):
            for head, role in enumerate(row):
                table[layer][head] = HeadRole(layer, head, role["sop"], role["operation"])
    else:
        for sop, parts in components.items():
            for layer, head in _heads_in(parts):
                table[layer][head] = HeadRole(layer, head, sop, None)
    return RaspLabels(
        program=meta.get("program", ""),
        residual=residual,
        sops=sops,
        sublayers={str(k): int(v) for k, v in sublayers.items()},
        heads=tuple(tuple(row) for row in table),
        vocab=tuple(vocab),
        max_seq_len=int(meta.get("max_seq_len", len(vocab))),
        causal=bool(meta.get("causal", False)),
    )


def _sop_of(label: str) -> str:
    """An older checkpoint's dimension label to its SOp: the text before the first colon."""
    return label.partition(":")[0]


def _heads_in(parts: list[str]) -> list[tuple[int, int]]:
    senders = map(Sender.parse, parts)
    return [(s.layer, s.head) for s in senders if s.head is not None]


def _sublayers_from(components: dict[str, list[str]]) -> dict[str, int]:
    """From the ground truth: a head writes its Aggregate at 2l, or a selector width's BOS
    share, whose MLP (2l + 1) writes the width; an MLP writes its SOp at 2l + 1."""
    out = {"one": EMBEDDING, "tokens": EMBEDDING, "indices": EMBEDDING}
    for sop, parts in components.items():
        heads = _heads_in(parts)
        mlps = [s.layer for s in map(Sender.parse, parts) if s.layer >= 0 and s.head is None]
        if heads and mlps:
            out[f"{sop}.bos_share"] = 2 * heads[0][0]
        out[sop] = 2 * mlps[0] + 1 if mlps else 2 * heads[0][0]
    return out


@dataclass(frozen=True)
class ResidualReadout:
    """The residual stream of one input at every stage, decoded to SOp values."""

    stages: tuple[str, ...]  # "embed", "L0 attn", "L0 mlp", ...: after that sublayer
    hooks: tuple[str, ...]  # the hook point read at each stage
    positions: tuple[str, ...]  # the input's tokens, BOS first
    sops: tuple[str, ...]  # every SOp but `one`, in residual order
    numerical: tuple[bool, ...]  # per SOp
    # [stage][sop][position]: a categorical value's text, a number, or None (nothing set)
    values: tuple[tuple[tuple[str | float | None, ...], ...], ...]
    present: tuple[tuple[bool, ...], ...]  # [stage][sop]: written by then
    deviation: float  # the largest distance of a present one-hot entry from 0 or 1

    def value(self, stage: int, sop: str, position: int) -> str | float | None:
        return self.values[stage][self.sops.index(sop)][position]

    def cell(self, stage: int, position: int, *, new_only: bool = False) -> list[str]:
        """`sop:value` for every SOp present at `stage`, at `position`; with `new_only`, for
        the SOps that stage's sublayer wrote (all of them at the embedding)."""
        out = []
        for i, sop in enumerate(self.sops):
            if not self.present[stage][i] or (new_only and stage and self.present[stage - 1][i]):
                continue
            value = self.values[stage][i][position]
            shown = f"{value:.4g}" if isinstance(value, float) else value
            out.append(f"{sop}:{shown}")
        return out

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


@torch.no_grad()
def residual_by_layer(
    model: HookedModel, tokens: Sequence[int] | Tensor, labels: RaspLabels
) -> ResidualReadout:
    """The residual stream of `tokens` (ids, BOS first) after the embedding and after each
    block's attention and MLP, decoded with `labels` (`rasp_labels`)."""
    ids = _checked_ids(model, tokens, labels)
    n_layers = model.cfg.n_layers
    hooks = [names.resid_pre(0)]
    stages = ["embed"]
    for layer in range(n_layers):
        hooks += [names.resid_mid(layer), names.resid_post(layer)]
        stages += [f"L{layer} attn", f"L{layer} mlp"]
    _, cache = model.run_with_cache(
        torch.tensor([ids], device=model.cfg.device), names_filter=hooks
    )
    streams = [cache[hook][0].double().cpu() for hook in hooks]  # [pos, d_model] each
    sops = [s for s in labels.sop_order if s != "one"]
    numerical = [labels.numerical(s) for s in sops]
    values, present, deviation = [], [], 0.0
    for stage, x in enumerate(streams):
        written = tuple(labels.sublayers.get(s, 2 * n_layers) <= stage - 1 for s in sops)
        row, off = _decoded(x, labels, sops, written)
        values.append(row)
        present.append(written)
        deviation = max(deviation, off)
    return ResidualReadout(
        stages=tuple(stages),
        hooks=tuple(hooks),
        positions=tuple(labels.vocab[i] for i in ids),
        sops=tuple(sops),
        numerical=tuple(numerical),
        values=tuple(values),
        present=tuple(present),
        deviation=deviation,
    )


def _decoded(
    x: Tensor, labels: RaspLabels, sops: list[str], written: tuple[bool, ...]
) -> tuple[tuple[tuple[str | float | None, ...], ...], float]:
    """Each SOp's value per position in one residual stream [pos, d_model], and the largest
    distance from 0 or 1 of a written one-hot entry."""
    row, deviation = [], 0.0
    for sop, here in zip(sops, written, strict=True):
        dims = [d for d, owner in enumerate(labels.sops) if owner == sop]
        block = x[:, dims]  # [pos, values]
        if labels.numerical(sop):
            row.append(tuple(block[:, 0].tolist()))
            continue
        row.append(_one_hot(block, [labels.value_text(d) for d in dims]))
        if here:
            deviation = max(deviation, float(torch.minimum(block.abs(), (block - 1).abs()).max()))
    return tuple(row), deviation


def _one_hot(block: Tensor, values: list[str]) -> tuple[str | None, ...]:
    """Per position, the value whose dimension is set (above 1/2), else None."""
    best, index = block.max(dim=-1)
    return tuple(
        values[i] if b > 0.5 else None for b, i in zip(best.tolist(), index.tolist(), strict=True)
    )


def _checked_ids(
    model: HookedModel, tokens: Sequence[int] | Tensor, labels: RaspLabels
) -> list[int]:
    if isinstance(tokens, Tensor):
        if tokens.ndim == 2 and len(tokens) == 1:
            tokens = tokens[0]
        if tokens.ndim != 1:
            raise InputError(f"tokens must be one sequence of ids, got shape {list(tokens.shape)}")
        tokens = tokens.tolist()
    ids = [int(t) for t in tokens]
    if model.cfg.d_model != len(labels.residual):
        raise InputError(
            f"these labels describe {len(labels.residual)} residual dimensions; the model has "
            f"d_model={model.cfg.d_model}: pass the labels of this model (rasp_labels)"
        )
    if not ids or ids[0] != 0:
        raise InputError(
            f"a compiled RASP model reads {labels.vocab[0] if labels.vocab else 'BOS'} first "
            "(id 0): start the input with it"
        )
    if not 2 <= len(ids) <= labels.max_seq_len + 1 or not all(
        0 < i < len(labels.vocab) for i in ids[1:]
    ):
        raise InputError(
            f"the input must be {labels.vocab[0]} and then 1..{labels.max_seq_len} tokens "
            f"from: {' '.join(labels.vocab[1:])}"
        )
    return ids
