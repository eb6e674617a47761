"""Stage 9: what the compiled model's parts mean, in the program's terms, written into its
checkpoint (`CompiledProgram.save`) so that a loaded model reads back without the program
(`rasp.readout`):

- `residual_sops`: the SOp each residual dimension belongs to (`length:3` -> `length`; a
  numerical SOp's dimension is labelled by the SOp alone), taken from the allocation, never
  by parsing labels (a value may hold a colon);
- `sublayers`: the sublayer that writes each SOp (-1 the embedding, 2l block l's attention,
  2l + 1 its MLP), read off the output matrices as the ground truth reads them;
- `heads`: per layer, per head, the SOp it computes and its operation in the language's
  syntax (`reverse = aggregate(select(indices, opp_index, ==), tokens)`), from the program as
  written (before the compiler merges an `or` of selectors into one Select on zipped SOps)."""

from __future__ import annotations

from typing import Any

import numpy as np

from rasp import rasp
from rasp.compiler.blocks import Blocks
from rasp.compiler.graph import program_graph
from rasp.describe import operation_text

EMBEDDING = -1


def describe(blocks: Blocks, program: rasp.SOp) -> dict[str, Any]:
    """The `residual_sops`, `sublayers` and `heads` entries of a checkpoint's RASP metadata."""
    return {
        "residual_sops": residual_sops(blocks),
        "sublayers": sublayers(blocks),
        "heads": heads(blocks, program),
    }


def residual_sops(blocks: Blocks) -> list[str]:
    r = blocks.residual
    sops = [""] * r.size
    for (sop, _), dim in r.categorical.items():
        sops[dim] = sop
    for sop, dim in r.numerical.items():
        sops[dim] = sop
    return sops


def sublayers(blocks: Blocks) -> dict[str, int]:
    """Each SOp's first writer: the embedding writes `one`, the tokens and the indices."""
    sops = residual_sops(blocks)
    first: dict[str, int] = {}

    def wrote(dims: list[int], sublayer: int) -> None:
        for dim in dims:
            first.setdefault(sops[dim], sublayer)

    inputs = (rasp.tokens.label, rasp.indices.label)
    wrote([blocks.residual.one], EMBEDDING)
    wrote([d for (sop, _), d in blocks.residual.categorical.items() if sop in inputs], EMBEDDING)
    for layer, block in enumerate(blocks.layers):
        for head in block.heads:
            wrote(_written(head.w_ov), 2 * layer)
        for mlp in block.mlps:
            wrote(_written(mlp.w_out), 2 * layer + 1)
    return first


def _written(out: np.ndarray) -> list[int]:
    return np.flatnonzero(np.abs(out).sum(axis=0)).tolist()


def heads(blocks: Blocks, program: rasp.SOp) -> list[list[dict[str, str]]]:
    written = _operations(program)
    graph = None
    table = []
    for block in blocks.layers:
        row = []
        for head in block.heads:
            expr = written.get(head.sop)
            if expr is None:  # `length`: the compiler's own selector width
                graph = graph or program_graph(program, check=False)
                expr = graph.exprs[head.sop]
                assert isinstance(expr, rasp.SelectorWidth)
            row.append({"sop": head.sop, "operation": operation_text(expr, head.sop)})
        table.append(row)
    return table


def _operations(program: rasp.SOp) -> dict[str, rasp.Aggregate | rasp.SelectorWidth]:
    """Every Aggregate and SelectorWidth of the program as written, by label."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    stack: list[rasp.RASPExpr] = [program]
    while stack:
        expr = stack.pop()
        if id(expr) in seen:
            continue
        seen.add(id(expr))
        if isinstance(expr, (rasp.Aggregate, rasp.SelectorWidth)):
            found.setdefault(expr.label, expr)
        stack.extend(expr.children)
    return found
