"""tracr's entry point under tracr's name, so that tracr code ports by changing its imports
(`from tracr.compiler import compiling` -> `from rasp.compiler import compiling`):

    model = compiling.compile_rasp_to_model(program, vocab={1, 2, 3}, max_seq_len=5,
                                            compiler_bos="BOS")
    model.apply(["BOS", 1, 2, 3]).decoded  # ["BOS", ...], as tracr gives it
"""

from __future__ import annotations

from typing import Any

from rasp import rasp
from rasp.compiler.compiler import CompiledProgram, compile_rasp

COMPILER_BOS = "compiler_bos"
COMPILER_PAD = "compiler_pad"


def compile_rasp_to_model(
    program: rasp.SOp,
    vocab: set[Any],
    max_seq_len: int,
    causal: bool = False,
    compiler_bos: str = COMPILER_BOS,
    compiler_pad: str = COMPILER_PAD,
    mlp_exactness: int = 100,
) -> CompiledProgram:
    """`compile_rasp` with tracr's signature. `compiler_pad` and `mlp_exactness` are accepted
    and unused: inputs are never padded, and the MLPs are exact on every value they can
    receive (the validator checks it)."""
    del compiler_pad, mlp_exactness
    return compile_rasp(program, vocab, max_seq_len, causal=causal, compiler_bos=compiler_bos)
