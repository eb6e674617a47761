"""The program read back from a Transformer Program equals the argmax model on every token:
two independent routes (the torch model with its Gumbel machinery at argmax, and the numpy
program of predicates, closest-match selection and lookup tables) on random untrained models
of every configuration, causal and not, and on every task's inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rasp.learned.model import ProgramModel, ProgramShape, position_bias
from rasp.learned.program import closest_key, hard_predictions, numeric_bounds, to_program
from rasp.learned.python import to_python
from tests.rasp.learned.helpers import CONFIGS, random_model, random_tokens


@pytest.mark.parametrize("autoregressive", [False, True])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_program_equals_the_argmax_model(config: tuple[int, ...], autoregressive: bool) -> None:
    gen = np.random.default_rng(sum(config))
    for seed in range(3):
        n_ctx = 6 + 2 * seed
        model = random_model(
            config,
            autoregressive=autoregressive,
            seed=seed,
            d_vocab=5 + seed,
            d_out=4 + seed,
            n_ctx=n_ctx,
            d_var=n_ctx + seed,
        )
        program = to_program(model)
        tokens = random_tokens(gen, model.shape.d_vocab, n_ctx, 300)
        np.testing.assert_array_equal(program.run(tokens), hard_predictions(model, tokens))


def test_closest_key_rule() -> None:
    """Nearest match; a key to the left before one as far to the right; the query's own
    position only when nothing else matches; position 0 when nothing matches at all."""
    p = 7
    cases = {  # (query, matching keys) -> chosen key
        (3, (1, 5)): 1,  # both at distance 2: left
        (3, (0, 5)): 5,  # right is nearer
        (3, (3, 6)): 6,  # self last, even against a far key
        (3, (3,)): 3,
        (3, ()): 0,
        (0, (0, 6)): 6,
        (6, (0,)): 0,
    }
    for (query, keys), chosen in cases.items():
        matches = np.zeros((1, p, p), dtype=bool)
        matches[0, query, list(keys)] = True
        assert closest_key(matches)[0, query] == chosen, (query, keys)


@pytest.mark.parametrize("n_ctx", [3, 8, 16])
def test_position_bias_is_the_authors_fixed_relative_bias(n_ctx: int) -> None:
    """Their FixedRelPosBias: a vector over key - query (negative offsets from its end)."""
    vector = torch.cat(
        [
            torch.tensor([-2.0]),
            torch.linspace(0.0, -n_ctx, n_ctx - 1) / n_ctx,
            torch.linspace(-n_ctx, 0.0, n_ctx) / n_ctx,
        ]
    )
    idxs = torch.arange(2 * n_ctx)
    theirs = vector[idxs[:n_ctx].unsqueeze(0) - idxs[:n_ctx].unsqueeze(-1)]
    torch.testing.assert_close(position_bias(n_ctx), theirs, rtol=0, atol=1e-6)


def test_numerical_tables_cover_every_reachable_value() -> None:
    """A head summing a count sums up to n_ctx counts: its bound is n_ctx squared, and an MLP
    reading it has a row for each value up to there."""
    shape = ProgramShape(d_vocab=4, d_out=3, n_ctx=5, d_var=5, n_layers=2, num_heads=1)
    model = ProgramModel(shape)
    with torch.no_grad():
        model.blocks[0].num_value.fill_(0)
        model.blocks[1].num_value.copy_(torch.tensor([[0.0, 1.0]]))  # reads layer 0's head
        model.blocks[1].num_mlp.read.copy_(torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]]))
    assert numeric_bounds(model) == [1, 5, 25]
    program = to_program(model)
    mlp = program.layers[1].num_mlps[0]
    assert mlp.inputs == ("num_attn_1_0", "num_attn_0_0")
    assert mlp.table.shape == (26, 6)


@pytest.mark.parametrize("autoregressive", [False, True])
@pytest.mark.parametrize("config", [CONFIGS[2], CONFIGS[5]], ids=lambda c: "-".join(map(str, c)))
def test_python_code_equals_the_model(config: tuple[int, ...], autoregressive: bool) -> None:
    """The decompiled Python file, run as Python on the input words, gives the model's tags."""
    words = ("<pad>", "a", "b", "c", "<s>")
    tags = ("<pad>", "x", "y", "z")
    model = random_model(
        config,
        autoregressive=autoregressive,
        seed=config[0],
        d_vocab=len(words),
        d_out=len(tags),
        n_ctx=8,
        d_var=8,
    )
    source = to_python(to_program(model), words, tags, "a random program")
    namespace: dict[str, object] = {}
    exec(compile(source, "decompiled.py", "exec"), namespace)  # our own output, not a file
    run = namespace["run"]
    assert callable(run)
    tokens = random_tokens(np.random.default_rng(0), len(words), 8, 200)
    tokens[:, 0] = words.index("<s>")
    expected = hard_predictions(model, tokens)
    for row, want in zip(tokens, expected, strict=True):
        n = int((row != 0).sum())
        assert run([words[i] for i in row[:n]]) == [tags[i] for i in want[:n]]
