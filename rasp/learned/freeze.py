"""A learned program frozen into an ordinary hooked workbench model, so that loading,
patching, ACDC, the probes and the dashboard work on it unchanged.

The residual stream holds every variable in its own slot, in the order the program makes
them: one-hot blocks of `d_var` for the categorical variables (tokens, positions, then each
layer's heads and MLPs), one unit for each numerical one (`ones`, then each layer's counting
heads). Attention is the `closest_match` kind (hard closest-match heads, then counting heads);
MLPs are the `lookup` kind (the program's tables); the unembedding is the program's readout.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from rasp.learned.program import Head, Layer, LearnedProgram, Table
from workbench.config import Mask, ModelConfig, Norm
from workbench.errors import CheckpointError
from workbench.model import Transformer
from workbench.options import ClosestMatch, Learned, Lookup, NoMLP
from workbench.options.layers import LayerOverride

MASKED_LOGIT = -1e9  # outputs the program never predicts (<pad>)


class Slots:
    """Where each variable lives in the residual stream."""

    def __init__(self, program: LearnedProgram) -> None:
        k = program.d_var
        cat = ["tokens", "positions"]
        num = ["ones"]
        for layer in program.layers:
            cat += [m.name for m in (*layer.cat_heads, *layer.cat_mlps, *layer.num_mlps)]
            num += [h.name for h in layer.num_heads]
        self.k = k
        self.cat = {name: i * k for i, name in enumerate(cat)}
        self.num = {name: len(cat) * k + i for i, name in enumerate(num)}
        self.d_model = len(cat) * k + len(num)


def frozen_config(program: LearnedProgram, d_vocab: int, d_out: int) -> ModelConfig:
    k = program.d_var
    first = program.layers[0]
    n_tables = len(first.cat_mlps) + len(first.num_mlps)
    counting = len(first.num_heads)

    def lookup(layer: Layer) -> Lookup:
        return Lookup(
            sizes=tuple(t.table.size for t in (*layer.cat_mlps, *layer.num_mlps)), values=k
        )

    overrides = (
        tuple(
            LayerOverride(at=(i,), changes=(("mlp", lookup(layer)),))
            for i, layer in enumerate(program.layers)
            if i
        )
        if n_tables
        else ()
    )
    return ModelConfig(
        n_layers=len(program.layers),
        d_model=Slots(program).d_model,
        n_heads=max(1, len(first.cat_heads) + counting),
        d_head=k,
        d_vocab=d_vocab,
        d_vocab_out=d_out,
        n_ctx=program.n_ctx,
        d_mlp=n_tables * k,
        pos=Learned(),
        attention=ClosestMatch(counting_heads=counting),
        mask=Mask.CAUSAL if program.autoregressive else Mask.BIDIRECTIONAL,
        mlp=lookup(first) if n_tables else NoMLP(),
        norm=Norm.NONE,
        layers=overrides,
    )


@torch.no_grad()
def freeze(program: LearnedProgram, d_vocab: int, d_out: int) -> Transformer:
    """The program as a workbench model: `d_vocab` input ids, `d_out` output ids."""
    model = Transformer(frozen_config(program, d_vocab, d_out))
    w = {name: p.data for name, p in model.named_parameters()}  # written in place
    for tensor in w.values():
        tensor.zero_()
    slots, k = Slots(program), program.d_var
    eye = torch.eye(k)
    w["W_E"][:, slots.cat["tokens"] : slots.cat["tokens"] + d_vocab] = eye[:d_vocab, :d_vocab]
    w["W_E"][:, slots.num["ones"]] = 1.0
    w["W_pos"][:, slots.cat["positions"] : slots.cat["positions"] + k] = eye[: program.n_ctx]
    for index, layer in enumerate(program.layers):
        attn = f"blocks.{index}.attn"
        heads = [(h, False) for h in layer.cat_heads] + [(h, True) for h in layer.num_heads]
        for h, (head, counting) in enumerate(heads):
            q, key = slots.cat[head.query], slots.cat[head.key]
            for value, target in enumerate(head.predicate):  # -1: the value matches nothing
                if target >= 0:
                    w[f"{attn}.W_Q"][h, q + value, target] = 1.0
            w[f"{attn}.W_K"][h, key : key + k] = eye
            if counting:
                w[f"{attn}.W_V"][h, slots.num[head.value], 0] = 1.0
                w[f"{attn}.W_O"][h, 0, slots.num[head.name]] = 1.0
            else:
                v, out = slots.cat[head.value], slots.cat[head.name]
                w[f"{attn}.W_V"][h, v : v + k] = eye
                w[f"{attn}.W_O"][h, :, out : out + k] = eye
        tables = [(t, False) for t in layer.cat_mlps] + [(t, True) for t in layer.num_mlps]
        start = 0
        for t, (table, numerical) in enumerate(tables):
            _table(w, f"blocks.{index}.mlp", slots, table, numerical, (t * k, start))
            start += table.table.size
    for name, offset in slots.cat.items():
        w["W_U"][offset : offset + k] = torch.as_tensor(program.readout[name]).float()
    for name, offset in slots.num.items():
        w["W_U"][offset] = torch.as_tensor(program.readout[name]).float()
    w["b_U"][list(program.masked_outputs)] = MASKED_LOGIT
    return model.eval()


def _table(
    w: dict[str, Tensor],
    mlp: str,
    slots: Slots,
    table: Table,
    numerical: bool,
    at: tuple[int, int],
) -> None:
    """W_in's index column (entry = a * size_b + b), the entries, W_out's placement."""
    (column, start), k = at, slots.k
    size_b = table.table.shape[1]
    a, b = table.inputs
    if numerical:
        w[f"{mlp}.W_in"][slots.num[a], column] += size_b
        w[f"{mlp}.W_in"][slots.num[b], column] += 1.0
    else:
        values = torch.arange(k, dtype=torch.float32)
        w[f"{mlp}.W_in"][slots.cat[a] : slots.cat[a] + k, column] += values * size_b
        w[f"{mlp}.W_in"][slots.cat[b] : slots.cat[b] + k, column] += values
    entries = torch.as_tensor(table.table).flatten().float()
    w[f"{mlp}.W_table"][start : start + table.table.size] = entries
    out = slots.cat[table.name]
    w[f"{mlp}.W_out"][column : column + k, out : out + k] = torch.eye(k)


PROGRAM_META = "program"  # the key a frozen checkpoint's metadata holds `program_meta` under


def program_meta(program: LearnedProgram) -> dict[str, Any]:
    """What a frozen checkpoint records of its program beside the weights: every variable's
    reads and predicates (the tables and the readout are in the weights)."""
    layers = []
    for layer in program.layers:
        heads = {
            kind: [dataclasses.asdict(h) for h in found]
            for kind, found in (("cat_heads", layer.cat_heads), ("num_heads", layer.num_heads))
        }
        tables = {
            kind: [
                {"name": t.name, "inputs": list(t.inputs), "shape": list(t.table.shape)}
                for t in found
            ]
            for kind, found in (("cat_mlps", layer.cat_mlps), ("num_mlps", layer.num_mlps))
        }
        layers.append(heads | tables)
    return {
        "d_var": program.d_var,
        "n_ctx": program.n_ctx,
        "autoregressive": program.autoregressive,
        "masked_outputs": list(program.masked_outputs),
        "layers": layers,
    }


@torch.no_grad()
def thawed(model: Transformer, meta: dict[str, Any]) -> LearnedProgram:
    """The program of a frozen model: `program_meta`'s structure with the tables and the
    readout read back from the weights (`freeze`'s layout)."""
    weights = {name: p.detach().cpu() for name, p in model.named_parameters()}
    try:
        k = int(meta["d_var"])
        layers = tuple(
            _layer(found, weights.get(f"blocks.{i}.mlp.W_table"))
            for i, found in enumerate(meta["layers"])
        )
        program = LearnedProgram(
            k,
            int(meta["n_ctx"]),
            bool(meta["autoregressive"]),
            layers,
            {},
            tuple(int(i) for i in meta["masked_outputs"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"this checkpoint's learned program cannot be read: {exc}") from None
    slots, unembed = Slots(program), weights["W_U"].double().numpy()
    _check_fits(program, slots, model)
    readout = {name: unembed[at : at + k] for name, at in slots.cat.items()}
    readout |= {name: unembed[at] for name, at in slots.num.items()}
    return dataclasses.replace(program, readout=readout)


def _check_fits(program: LearnedProgram, slots: Slots, model: Transformer) -> None:
    """The recorded structure is this model's: its width, depth, predicates and tables."""
    config, k = model.config, program.d_var
    problems = []
    if (config.d_model, config.n_layers) != (slots.d_model, len(program.layers)):
        problems.append(
            f"its program needs d_model {slots.d_model} and {len(program.layers)} layers, the "
            f"model has {config.d_model} and {config.n_layers}"
        )
    for layer in program.layers:
        for head in (*layer.cat_heads, *layer.num_heads):
            if len(head.predicate) != k or not all(-1 <= t < k for t in head.predicate):
                problems.append(f"{head.name}'s predicate is not {k} values in -1..{k - 1}")
        for table in (*layer.cat_mlps, *layer.num_mlps):
            if table.table.size and not (table.table.min() >= 0 and table.table.max() < k):
                problems.append(f"{table.name}'s table holds values outside 0..{k - 1}")
    if problems:
        raise CheckpointError(f"this checkpoint's learned program does not fit: {problems[0]}")


def _layer(found: dict[str, Any], entries: Tensor | None) -> Layer:
    heads = [
        tuple(
            Head(h["name"], h["query"], h["key"], h["value"], tuple(h["predicate"]))
            for h in found[kind]
        )
        for kind in ("cat_heads", "num_heads")
    ]
    tables, start = [], 0
    for kind in ("cat_mlps", "num_mlps"):
        made = []
        for t in found[kind]:
            rows, columns = t["shape"]
            if entries is None or start + rows * columns > len(entries):
                raise ValueError(f"{t['name']}'s table is not in the weights")
            values = entries[start : start + rows * columns].round().long().numpy()
            made.append(
                Table(t["name"], (t["inputs"][0], t["inputs"][1]), values.reshape(rows, columns))
            )
            start += rows * columns
        tables.append(tuple(made))
    return Layer(heads[0], heads[1], tables[0], tables[1])
