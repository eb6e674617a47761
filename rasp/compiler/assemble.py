"""Stage 6: the intermediate form as an ordinary workbench model: learned absolute positions,
softmax attention (causal or bidirectional), ReLU MLPs, no norms and no biases (the `one`
dimension carries them), d_model = the residual's labelled dimensions.

Input: BOS then the tokens; token t embeds as `one` + `tokens:t`, and position p >= 1 adds
`indices:(p - 1)`, so the program's indices count from the first real token. A head's
bilinear score x w_qk y is factored as W_Q = w_qk's key columns (times sqrt(d_head), which
undoes the model's 1 / sqrt(d_head)) and W_K = the matching unit vectors; W_V selects the
value rows of w_ov and W_O holds them. The unembedding reads the output SOp: one logit per
value of a categorical output, or its one dimension when numerical."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rasp import ltp, rasp
from rasp.compiler.blocks import Blocks, Head
from workbench.config import Mask, ModelConfig, Norm
from workbench.model import Transformer
from workbench.options import Learned, Relu, Softmax


def assemble(
    blocks: Blocks, output: rasp.SOp, vocab: list[Any], outputs: list[Any], max_seq_len: int
) -> Transformer:
    """`vocab`: input tokens in id order after BOS (id 0); `outputs`: the categorical output
    values in logit order (ignored for a numerical output)."""
    r = blocks.residual
    heads = [head for layer in blocks.layers for head in layer.heads]
    d_head = max([1] + [_rank(h)[0] for h in heads] + [_rank(h)[1] for h in heads])
    d_mlp = max([1] + [sum(m.w_in.shape[1] for m in layer.mlps) for layer in blocks.layers])
    n_heads = max([1] + [len(layer.heads) for layer in blocks.layers])
    numerical = rasp.is_numerical(output)
    config = ModelConfig(
        n_layers=len(blocks.layers),
        d_model=r.size,
        n_heads=n_heads,
        d_head=d_head,
        d_vocab=len(vocab) + 1,
        d_vocab_out=1 if numerical else max(1, len(outputs)),
        n_ctx=max_seq_len + 1,
        d_mlp=d_mlp,
        pos=Learned(),
        attention=Softmax(),
        mask=Mask.CAUSAL if blocks.causal else Mask.BIDIRECTIONAL,
        mlp=Relu(),
        norm=Norm.NONE,
        bias=False,
    )
    model = Transformer(config)
    weights = {name: p.data for name, p in model.named_parameters()}  # written in place
    for tensor in weights.values():
        tensor.zero_()
    _embeddings(weights, blocks, vocab, max_seq_len)
    for layer, block in enumerate(blocks.layers):
        for h, head in enumerate(block.heads):
            _head(weights, f"blocks.{layer}.attn", h, head, d_head)
        column = 0
        for mlp in block.mlps:
            width = mlp.w_in.shape[1]
            weights[f"blocks.{layer}.mlp.W_in"][:, column : column + width] = _t(mlp.w_in)
            weights[f"blocks.{layer}.mlp.W_out"][column : column + width] = _t(mlp.w_out)
            column += width
    unembed = weights["W_U"]
    if isinstance(output, ltp.Readout):
        _readout(unembed, blocks, output)
    elif numerical:
        unembed[r.numerical[output.label], 0] = 1.0
    else:
        for j, value in enumerate(outputs):
            unembed[r.categorical[(output.label, value)], j] = 1.0
    return model  # built in eval mode


def _readout(unembed: torch.Tensor, blocks: Blocks, output: ltp.Readout) -> None:
    """The unembedding as the readout's score tables: each categorical value's dimension
    holds its row, each numerical SOp's dimension its row."""
    r = blocks.residual
    for sop, table in zip(output.sops, output.scores, strict=True):
        if rasp.is_numerical(sop):
            unembed[r.numerical[sop.label]] += _t(table)
            continue
        for value, row in table.items():
            dim = r.categorical.get((sop.label, value))
            if dim is not None:  # a value the SOp never takes on this vocabulary
                unembed[dim] += _t(row)


def _embeddings(weights: dict, blocks: Blocks, vocab: list[Any], max_seq_len: int) -> None:
    r = blocks.residual
    embed = weights["W_E"]
    embed[:, r.one] = 1.0
    embed[0, r.bos_dim] = 1.0
    for i, token in enumerate(vocab, start=1):
        dim = r.categorical.get((rasp.tokens.label, token))
        if dim is not None:
            embed[i, dim] = 1.0
    positions = weights["W_pos"]
    for i in range(max_seq_len):
        dim = r.categorical.get((rasp.indices.label, i))
        if dim is not None:
            positions[i + 1, dim] = 1.0


def _rank(head: Head) -> tuple[int, int]:
    return len(_key_dims(head)), len(_value_dims(head))


def _key_dims(head: Head) -> list[int]:
    return np.flatnonzero(np.abs(head.w_qk).sum(axis=0)).tolist()


def _value_dims(head: Head) -> list[int]:
    return np.flatnonzero(np.abs(head.w_ov).sum(axis=1)).tolist()


def _head(weights: dict, prefix: str, h: int, head: Head, d_head: int) -> None:
    keys, values = _key_dims(head), _value_dims(head)
    weights[f"{prefix}.W_K"][h] = _t(_units(len(head.w_qk), keys, d_head))
    weights[f"{prefix}.W_Q"][h, :, : len(keys)] = _t(head.w_qk[:, keys]) * math.sqrt(d_head)
    weights[f"{prefix}.W_V"][h] = _t(_units(len(head.w_ov), values, d_head))
    weights[f"{prefix}.W_O"][h, : len(values), :] = _t(head.w_ov[values, :])


def _units(rows: int, dims: list[int], width: int) -> np.ndarray:
    """[rows, width] with a 1 at (dims[i], i): reads those residual dimensions in order."""
    out = np.zeros((rows, width), dtype=np.float32)
    out[dims, np.arange(len(dims))] = 1.0
    return out


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
