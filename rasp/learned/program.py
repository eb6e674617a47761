"""A learned Transformer Program read back as a program: which variables each module reads,
each predicate, each MLP's lookup table and the readout's weights; `run` executes it with numpy
alone (no torch, no model code), which is what makes "the program equals the model" a test.

Semantics (the argmax model's, which the authors' decompiler does not quite follow: it ranks a
query's own position by the number of matches):
- categorical head: each query value matches exactly one key value (`predicate`); the query
  attends to the closest matching key, a key to the left before one as far to the right, its
  own position only when that is the only match, and position 0 when nothing matches; it reads
  the value variable there (`select_closest` + `aggregate`).
- numerical head: the same kind of predicate; the query sums a numerical variable over every
  matching key (`select` + `aggregate_sum`: with `ones`, a count).
- MLP: a two-input lookup table, categorical or numerical inputs, categorical output.
- readout: logits = the sum of one weight row per categorical variable's value plus each
  numerical variable times its row; the prediction is the largest logit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from rasp import ltp
from rasp.learned.model import MLPs, ProgramModel, Sampler

Closest = Callable[[np.ndarray], np.ndarray]  # (b, query, key) matches -> (b, query) key


@dataclass(frozen=True)
class Head:
    name: str  # attn_{layer}_{head} or num_attn_{layer}_{head}
    query: str  # categorical variables
    key: str
    value: str  # categorical (attn_) or numerical (num_attn_)
    predicate: tuple[int, ...]  # query value i matches key value predicate[i] (-1: none)


@dataclass(frozen=True)
class Table:
    name: str  # mlp_{layer}_{i} or num_mlp_{layer}_{i}
    inputs: tuple[str, str]
    table: np.ndarray = field(repr=False)  # (values of input 0, values of input 1) -> output


@dataclass(frozen=True)
class Layer:
    cat_heads: tuple[Head, ...]
    num_heads: tuple[Head, ...]
    cat_mlps: tuple[Table, ...]
    num_mlps: tuple[Table, ...]


@dataclass(frozen=True)
class LearnedProgram:
    d_var: int  # values of each categorical variable
    n_ctx: int  # the longest input
    autoregressive: bool
    layers: tuple[Layer, ...]
    readout: dict[str, np.ndarray] = field(repr=False)  # variable -> (values, out) or (out,)
    masked_outputs: tuple[int, ...]

    def variables(
        self, tokens: np.ndarray, closest: Closest | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Every variable's value at every position of `tokens` (b, p; 0 is padding).
        `closest` replaces the rule that picks a key among the matches (for comparisons)."""
        closest = closest or closest_key
        b, p = tokens.shape
        mask = self.attention_mask(tokens)
        cat = {"tokens": tokens, "positions": np.broadcast_to(np.arange(p), (b, p))}
        num = {"ones": np.ones((b, p), dtype=np.int64)}
        for layer in self.layers:
            for head in layer.cat_heads:
                selected = matches(head, cat, mask)
                cat[head.name] = np.take_along_axis(cat[head.value], closest(selected), 1)
            for head in layer.num_heads:
                num[head.name] = np.einsum("bqp,bp->bq", matches(head, cat, mask), num[head.value])
            for mlp in layer.cat_mlps:
                cat[mlp.name] = mlp.table[cat[mlp.inputs[0]], cat[mlp.inputs[1]]]
            for mlp in layer.num_mlps:
                cat[mlp.name] = mlp.table[num[mlp.inputs[0]], num[mlp.inputs[1]]]
        return cat, num

    def attention_mask(self, tokens: np.ndarray) -> np.ndarray:
        """(b, query, key): both positions hold a token (0 is padding); causal for Dyck."""
        p = tokens.shape[1]
        mask = (tokens != 0)[:, :, None] & (tokens != 0)[:, None, :]
        if self.autoregressive:
            mask &= np.tril(np.ones((p, p), dtype=bool))
        return mask

    def logits(self, tokens: np.ndarray, closest: Closest | None = None) -> np.ndarray:
        cat, num = self.variables(tokens, closest)
        total = np.zeros((*tokens.shape, self.readout["ones"].shape[-1]))
        for name, values in cat.items():
            total += self.readout[name][values]
        for name, values in num.items():
            total += values[..., None] * self.readout[name]
        total[..., list(self.masked_outputs)] = -np.inf
        return total

    def run(self, tokens: np.ndarray, closest: Closest | None = None) -> np.ndarray:
        """Output ids (b, p) for token ids (b, p)."""
        return self.logits(tokens, closest).argmax(-1)


def matches(head: Head, cat: dict[str, np.ndarray], mask: np.ndarray) -> np.ndarray:
    """(b, query, key): the keys each query selects, within `mask` (real, causal)."""
    wanted = np.asarray(head.predicate)[cat[head.query]]  # (b, query): the key value it wants
    return (cat[head.key][:, None, :] == wanted[:, :, None]) & mask


def closest_key(matches: np.ndarray) -> np.ndarray:
    """(b, query) the key each query attends to: nearest match, left first, self last, else 0."""
    p = matches.shape[-1]
    order = np.array([[ltp.rank(q, k) for k in range(p)] for q in range(p)])  # the one rule
    ranked = np.where(matches, order, np.iinfo(order.dtype).max)
    chosen = ranked.argmin(-1)
    return np.where(matches.any(-1), chosen, 0)


def numeric_bounds(model: ProgramModel) -> list[int]:
    """The largest value each numerical variable can take (`ones`, then each head: a sum over
    at most n_ctx keys of the variable it reads)."""
    bounds = [1]
    for layer in model.blocks:
        reads = layer.num_value.argmax(-1).tolist()
        bounds += [model.shape.n_ctx * bounds[v] for v in reads]
    return bounds


@torch.no_grad()
def to_program(model: ProgramModel) -> LearnedProgram:
    """The argmax model as a program."""
    s, k = model.shape, model.shape.d_var
    cat_names, num_names = ["tokens", "positions"], ["ones"]
    bounds = numeric_bounds(model)
    layers = []
    for index, layer in enumerate(model.blocks):
        qkv = layer.cat_read.argmax(-1).tolist()
        cat_heads = tuple(
            Head(
                f"attn_{index}_{h}",
                query=cat_names[qkv[0][h]],
                key=cat_names[qkv[1][h]],
                value=cat_names[qkv[2][h]],
                predicate=tuple(layer.cat_pred[h].argmax(-1).tolist()),
            )
            for h in range(s.cat_heads)
        )
        qk, values = layer.num_read.argmax(-1).tolist(), layer.num_value.argmax(-1).tolist()
        num_heads = tuple(
            Head(
                f"num_attn_{index}_{h}",
                cat_names[qk[0][h]],
                cat_names[qk[1][h]],
                num_names[values[h]],
                tuple(layer.num_pred[h].argmax(-1).tolist()),
            )
            for h in range(s.num_heads)
        )
        cat_names += [h.name for h in cat_heads]
        num_names += [h.name for h in num_heads]
        cat_mlps = _tables(layer.cat_mlp, f"mlp_{index}", cat_names, [k] * len(cat_names), True)
        num_mlps = _tables(
            layer.num_mlp, f"num_mlp_{index}", num_names, [b + 1 for b in bounds], False
        )
        cat_names += [m.name for m in (*cat_mlps, *num_mlps)]
        layers.append(Layer(cat_heads, num_heads, cat_mlps, num_mlps))
    W_U = model.W_U.detach().double().cpu().numpy()
    n_cat = len(cat_names)
    readout = {name: W_U[i * k : (i + 1) * k] for i, name in enumerate(cat_names)}
    readout |= {name: W_U[n_cat * k + i] for i, name in enumerate(num_names)}
    return LearnedProgram(k, s.n_ctx, s.autoregressive, tuple(layers), readout, s.masked_outputs)


def _tables(
    mlps: MLPs, prefix: str, names: list[str], sizes: list[int], one_hot: bool
) -> tuple[Table, ...]:
    reads = mlps.read.argmax(-1).tolist()  # (n, 2)
    out = []
    for m, (a, b) in enumerate(reads):
        grid = torch.cartesian_prod(torch.arange(sizes[a]), torch.arange(sizes[b]))
        if one_hot:
            inputs = torch.nn.functional.one_hot(grid, sizes[a]).float().flatten(-2)
        else:
            inputs = grid.float()
        full = torch.zeros(mlps.W_in.shape[0], len(grid), inputs.shape[-1])
        full[m] = inputs
        table = mlps.table(full)[m].argmax(-1).reshape(sizes[a], sizes[b])
        out.append(Table(f"{prefix}_{m}", (names[a], names[b]), table.numpy()))
    return tuple(out)


def hard_predictions(model: ProgramModel, tokens: np.ndarray) -> np.ndarray:
    """The argmax model's outputs for token ids (b, p), as numpy."""
    with torch.no_grad():
        out = model(torch.as_tensor(tokens), Sampler(1.0, None, hard=True)).argmax(-1)
    return out.numpy()
