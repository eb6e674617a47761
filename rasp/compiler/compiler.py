"""The orchestrator: a RASP program to a validated workbench model, stage by stage.

compiled = compile_rasp(library.make_reverse(rasp.tokens), vocab={"a", "b", "c"},
                        max_seq_len=5)
compiled.run(["a", "b", "c"])  # ['c', 'b', 'a'], computed by the model's weights
compiled.save("runs/reverse")  # workbench.load("runs/reverse") gives the model
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rasp import ltp, rasp
from rasp.compiler import validate
from rasp.compiler.assemble import assemble
from rasp.compiler.blocks import Blocks, build_blocks
from rasp.compiler.errors import UnsupportedError, ValidationError
from rasp.compiler.graph import program_graph
from rasp.compiler.ground_truth import GroundTruth, ground_truth
from rasp.compiler.labels import describe
from rasp.compiler.layers import place
from rasp.compiler.residual import allocate, sort_values
from rasp.compiler.values import MAX_VALUES, value_sets
from rasp.interpreter import evaluate
from workbench.model import Transformer

BOS = "BOS"
COLDNESS = 100.0  # softmax scores are multiplied by this: attention is hard to exp(-50)


@dataclass(frozen=True)
class Output:
    """What `CompiledProgram.apply` returns, as tracr's model output."""

    decoded: list[Any]  # BOS, then the program's values
    unembedded: torch.Tensor  # [pos, d_vocab_out]
    residuals: list[torch.Tensor]  # the residual stream after each block, [pos, d_model]


@dataclass(frozen=True)
class CompiledProgram:
    program: rasp.SOp
    model: Transformer
    blocks: Blocks  # the intermediate form (numpy)
    vocab: tuple[Any, ...]  # input tokens, id i + 1 (id 0 is BOS)
    outputs: tuple[Any, ...]  # categorical output values in logit order; () if numerical
    max_seq_len: int
    causal: bool
    ground_truth: GroundTruth
    bos: str = BOS
    token_ids: dict[Any, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_ids", {t: i + 1 for i, t in enumerate(self.vocab)})

    @property
    def numerical(self) -> bool:
        return rasp.is_numerical(self.program)

    @property
    def readout(self) -> bool:
        """The output is a `Readout`: every position decides (the largest logit)."""
        return isinstance(self.program, ltp.Readout)

    @property
    def residual_labels(self) -> tuple[str, ...]:
        """The meaning of every residual dimension (`sop:value`), for display."""
        return self.blocks.residual.labels

    def encode(self, batch: list[list[Any]]) -> torch.Tensor:
        """Token ids [batch, 1 + n], BOS first; every sequence the same length n."""
        lengths = {len(xs) for xs in batch}
        if len(lengths) != 1:
            raise ValueError(f"encode takes sequences of one length, got lengths {lengths}")
        n = lengths.pop()
        if not 1 <= n <= self.max_seq_len:
            raise ValueError(f"inputs hold 1..{self.max_seq_len} tokens (max_seq_len), got {n}")
        unknown = sorted({repr(t) for xs in batch for t in xs if t not in self.token_ids})
        if unknown:
            raise ValueError(
                f"tokens {', '.join(unknown)} are not in the compiled vocabulary "
                f"{list(self.vocab)!r}"
            )
        return torch.tensor([[0] + [self.token_ids[t] for t in xs] for xs in batch])

    def decode(self, logits: torch.Tensor) -> list[list[Any]]:
        """[batch, 1 + n, d_vocab_out] -> the program's values (BOS dropped)."""
        logits = logits[:, 1:].detach().cpu()
        if self.numerical:
            return logits[..., 0].tolist()
        best, index = logits.max(dim=-1)
        return [
            [
                self.outputs[i] if b > 0.5 or self.readout else None
                for b, i in zip(bs, ix, strict=True)
            ]
            for bs, ix in zip(best.tolist(), index.tolist(), strict=True)
        ]

    def run_batch(self, batch: list[list[Any]]) -> list[list[Any]]:
        with torch.no_grad():
            return self.decode(self.model(self.encode(batch)))

    def run_many(self, inputs: list[list[Any]], batch_size: int = 512) -> list[list[Any]]:
        """The model's outputs on inputs of any lengths (run in batches of one length)."""
        out: list[list[Any]] = [[] for _ in inputs]
        by_length: dict[int, list[int]] = {}
        for i, xs in enumerate(inputs):
            by_length.setdefault(len(xs), []).append(i)
        for rows in by_length.values():
            for start in range(0, len(rows), batch_size):
                batch = rows[start : start + batch_size]
                decoded = self.run_batch([list(inputs[i]) for i in batch])
                for i, values in zip(batch, decoded, strict=True):
                    out[i] = values
        return out

    def run(self, xs: list[Any] | str) -> list[Any]:
        """The model's output on one input (BOS added and dropped)."""
        return self.run_batch([list(xs)])[0]

    def apply(self, tokens: list[Any]) -> Output:
        """tracr's call: the input with BOS first; `decoded` has BOS first too."""
        if not tokens or tokens[0] != self.bos:
            raise ValueError(f"apply takes the input with {self.bos!r} first, as tracr does")
        encoded = self.encode([list(tokens[1:])])
        with torch.no_grad():
            logits, cache = self.model.run_with_cache(encoded)
        residuals = [cache[f"blocks.{i}.hook_resid_post"][0] for i in range(len(self.model.blocks))]
        return Output([self.bos, *self.decode(logits)[0]], logits[0], residuals)

    def run_blocks(self, xs: list[Any] | str) -> list[Any]:
        """The intermediate form's output on one input (numpy), decoded like the model's."""
        tokens = self.encode([list(xs)])[0]
        final = self.blocks.apply(self._embedded(tokens))[-1]
        unembed = self.model.W_U.detach().double().numpy()
        return self.decode(torch.from_numpy(final @ unembed)[None])[0]

    def _embedded(self, tokens: torch.Tensor) -> np.ndarray:
        e = (
            self.model.W_E.detach().double()[tokens]
            + self.model.W_pos.detach().double()[: len(tokens)]
        )
        return e.numpy()

    def meta(self) -> dict[str, Any]:
        """What a checkpoint of this program records beside the weights: the vocabulary, the
        output values, the residual labels (with each dimension's SOp and the sublayer
        writing each SOp), each head's operation and the ground truth (`rasp.readout` reads
        them back)."""
        return {
            "task": "rasp",
            "vocab": [self.bos, *map(str, self.vocab)],
            "rasp": {
                "program": self.program.label,
                "vocab": [str(t) for t in self.vocab],
                "outputs": [str(v) for v in self.outputs],
                "numerical": self.numerical,
                "max_seq_len": self.max_seq_len,
                "causal": self.causal,
                "bos": self.bos,
                "residual": list(self.residual_labels),
                **describe(self.blocks, self.program),
                "ground_truth": self.ground_truth.to_json(),
            },
        }

    def save(self, out_dir: str | Path, *, force: bool = False) -> Path:
        """A workbench checkpoint (loads with `workbench.load`) whose metadata is `meta()`.
        Written atomically; an existing checkpoint is replaced only with `force`."""
        from workbench.checkpoint import save

        return save(self.model, out_dir, self.meta(), force=force)


def compile_rasp(
    program: rasp.SOp,
    vocab: set[Any] | list[Any],
    max_seq_len: int,
    *,
    causal: bool = False,
    compiler_bos: str = BOS,
    coldness: float = COLDNESS,
    validation_budget: int = 2_000,
    seed: int = 0,
) -> CompiledProgram:
    """Compile, then validate against the interpreter (raises `ValidationError` on any
    difference, `UnsupportedError` for constructs without a compiled form)."""
    vocab_list = sort_values(set(vocab))
    if not vocab_list:
        raise UnsupportedError("the vocabulary is empty: pass the tokens the program reads")
    if compiler_bos in vocab_list:
        raise UnsupportedError(
            f"the BOS token {compiler_bos!r} is in the vocabulary; pick another compiler_bos"
        )
    if not 1 <= max_seq_len <= MAX_VALUES:
        raise UnsupportedError(
            f"max_seq_len must be between 1 and {MAX_VALUES:,} (the most values one SOp may "
            f"take; indices take max_seq_len), got {max_seq_len:,}"
        )
    graph = program_graph(program)
    values = value_sets(graph, set(vocab_list), max_seq_len)
    residual = allocate(graph, values, compiler_bos)
    blocks = build_blocks(graph.exprs, values, residual, place(graph), causal, coldness)
    output = graph.output
    if isinstance(output, ltp.Readout):
        outputs = list(output.outputs)
    else:
        outputs = [] if rasp.is_numerical(output) else sort_values(values[output.label])
    model = assemble(blocks, output, vocab_list, outputs, max_seq_len)
    compiled = CompiledProgram(
        output,
        model,
        blocks,
        tuple(vocab_list),
        tuple(outputs),
        max_seq_len,
        causal,
        ground_truth(blocks, output),
        compiler_bos,
    )
    _validate(compiled, validation_budget, seed)
    return compiled


def _validate(compiled: CompiledProgram, budget: int, seed: int) -> None:
    cases = list(validate.inputs(compiled.vocab, compiled.max_seq_len, budget, seed))

    def expected(xs: list) -> list:
        return evaluate(compiled.program, xs, causal=compiled.causal)

    numerical = compiled.numerical
    validate.check(expected, compiled.run_batch, cases, numerical, "the compiled model")
    few = cases[:: max(1, len(cases) // 50)]  # the numpy form is slow: a spread of inputs
    validate.check(
        expected,
        lambda group: [compiled.run_blocks(xs) for xs in group],
        few,
        numerical,
        "the intermediate form",
    )


__all__ = ["CompiledProgram", "UnsupportedError", "ValidationError", "compile_rasp"]
