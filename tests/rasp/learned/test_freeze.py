"""A learned program frozen into a workbench model (attention kind `closest_match`, MLP kind
`lookup`) equals the program and the argmax training model on every real token; it saves,
loads and runs with hooks like any workbench model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import workbench
from rasp.learned.freeze import PROGRAM_META, freeze, program_meta, thawed
from rasp.learned.model import ProgramModel
from rasp.learned.program import LearnedProgram, hard_predictions, to_program
from tests.rasp.learned.helpers import CONFIGS, random_model, random_tokens
from workbench import checkpoint, names
from workbench.components.mixers.closest_match import closest_match
from workbench.errors import CheckpointError, ConfigError
from workbench.options import ClosestMatch, Lookup


def random_program(config: tuple[int, ...], autoregressive: bool, seed: int) -> ProgramModel:
    return random_model(
        config, autoregressive=autoregressive, seed=seed, d_vocab=6, d_out=5, n_ctx=8, d_var=9
    )


def frozen_predictions(model: workbench.Transformer, tokens: np.ndarray) -> np.ndarray:
    x = torch.as_tensor(tokens)
    with torch.no_grad():
        return model(x, attention_mask=(x != 0).long()).argmax(-1).numpy()


@pytest.mark.parametrize("autoregressive", [False, True])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_frozen_model_equals_the_program(config: tuple[int, ...], autoregressive: bool) -> None:
    gen = np.random.default_rng(len(config))
    for seed in range(2):
        trained = random_program(config, autoregressive, seed)
        program = to_program(trained)
        frozen = freeze(program, d_vocab=6, d_out=5)
        tokens = random_tokens(gen, 6, 8, 300)
        real = tokens != 0
        expected = hard_predictions(trained, tokens)
        np.testing.assert_array_equal(frozen_predictions(frozen, tokens)[real], expected[real])
        np.testing.assert_array_equal(program.run(tokens)[real], expected[real])


def test_saves_loads_and_runs_with_hooks(tmp_path: Path) -> None:
    trained = random_program(CONFIGS[5], False, 0)
    with torch.no_grad():
        trained.blocks[0].num_value[0] = torch.tensor([1.0])  # head 0 counts (reads `ones`)
    program: LearnedProgram = to_program(trained)
    frozen = freeze(program, d_vocab=6, d_out=5)
    checkpoint.save(frozen, tmp_path / "frozen", {"kind": "learned program"})
    loaded = workbench.load(tmp_path / "frozen")
    tokens = random_tokens(np.random.default_rng(1), 6, 8, 50)
    tokens[:, :] = np.where(tokens == 0, 1, tokens)  # full rows: no padding
    np.testing.assert_array_equal(frozen_predictions(loaded, tokens), program.run(tokens))

    _, cache = loaded.run_with_cache(torch.as_tensor(tokens))
    pattern = cache[names.attn_pattern(0)]  # [batch, head, query, key]
    closest, counting = pattern[:, :2], pattern[:, 2:]
    assert torch.equal(closest.sum(-1), torch.ones_like(closest.sum(-1)))  # one key per query
    assert set(counting.unique().tolist()) <= {0.0, 1.0}
    _, num = program.variables(tokens)
    head = program.layers[0].num_heads[0]
    assert head.value == "ones"  # a counting head: its output is its number of matches
    assert torch.equal(counting[:, 0].sum(-1), torch.as_tensor(num[head.name]).float())
    assert torch.equal(cache[names.attn_z(0)][:, :, 2, 0], counting[:, 0].sum(-1))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c)))
def test_a_saved_frozen_model_reads_back_to_its_program(config: tuple[int, ...], tmp_path) -> None:
    """`program_meta` in the checkpoint plus the weights give back the program (what the
    dashboard shows beside the model)."""
    program = to_program(random_program(config, True, 1))
    frozen = freeze(program, d_vocab=6, d_out=5)
    checkpoint.save(frozen, tmp_path / "frozen", {PROGRAM_META: program_meta(program)})
    ckpt = checkpoint.load_checkpoint(tmp_path / "frozen")
    back = thawed(ckpt.model, ckpt.meta[PROGRAM_META])
    heads = [(a.cat_heads, a.num_heads) for a in program.layers]
    assert [(a.cat_heads, a.num_heads) for a in back.layers] == heads
    for a, b in zip(back.layers, program.layers, strict=True):
        for mine, theirs in zip(
            (*a.cat_mlps, *a.num_mlps), (*b.cat_mlps, *b.num_mlps), strict=True
        ):
            assert mine.inputs == theirs.inputs
            np.testing.assert_array_equal(mine.table, theirs.table)
    assert back.readout.keys() == program.readout.keys()
    for name, rows in program.readout.items():
        np.testing.assert_allclose(back.readout[name], rows, rtol=1e-6)
    tokens = random_tokens(np.random.default_rng(2), 6, 8, 200)
    real = tokens != 0
    np.testing.assert_array_equal(back.run(tokens)[real], program.run(tokens)[real])
    with pytest.raises(CheckpointError, match="learned program cannot be read"):
        thawed(ckpt.model, {"d_var": 9})
    other = program_meta(to_program(random_program(CONFIGS[-1], True, 1)))
    if len(other["layers"]) != len(program.layers):  # another model's structure
        with pytest.raises(CheckpointError, match="learned program (cannot be read|does not fit)"):
            thawed(ckpt.model, other)
    bad = program_meta(program)
    first = bad["layers"][0]
    head = (first["cat_heads"] or first["num_heads"])[0]
    head["predicate"] = (99, *head["predicate"][1:])  # no such value
    with pytest.raises(CheckpointError, match="does not fit: .*predicate is not 9 values"):
        thawed(ckpt.model, bad)


def test_closest_match_with_a_query_offset() -> None:
    """A run of the last positions (a staged or cached run) ranks by absolute positions."""
    matches = torch.zeros(1, 2, 6, dtype=torch.bool)  # queries are positions 4 and 5
    matches[0, 0, [2, 4, 5]] = True
    matches[0, 1, [5]] = True
    assert closest_match(matches, offset=4).tolist() == [[5, 5]]
    matches[0, 1, 3] = True
    assert closest_match(matches, offset=4).tolist() == [[5, 3]]


def test_options_refuse_inconsistent_configs() -> None:
    base = {"n_layers": 1, "d_model": 8, "n_heads": 2, "d_head": 4, "d_vocab": 4, "n_ctx": 4}
    with pytest.raises(ConfigError, match="counting_heads=3 must be at most n_heads=2"):
        workbench.ModelConfig(**base, attention=ClosestMatch(counting_heads=3), d_mlp=4)
    with pytest.raises(ConfigError, match="2 tables of 4 values needs d_mlp=8, got 4"):
        workbench.ModelConfig(**base, mlp=Lookup(sizes=(16, 16), values=4), d_mlp=4)
    config = workbench.ModelConfig(
        **base, mlp={"kind": "lookup", "sizes": [16, 3], "values": 4}, d_mlp=8
    )
    assert config.mlp == Lookup(sizes=(16, 3), values=4)
    assert workbench.ModelConfig.from_dict(config.to_dict()) == config
