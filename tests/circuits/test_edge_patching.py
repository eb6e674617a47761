"""Edge patching: equal to one forward pass per edge set with hand-written hooks, and to the
identities that must hold on every variant the graph covers."""

from __future__ import annotations

import pytest
import torch

import workbench
from circuits.ablation import Replacement
from circuits.edges import edge_sweep, patch_edges
from circuits.graph import build_graph
from circuits.metrics import LogitDiff, OutputDistance, per_config
from circuits.nodes import NodePatch, patch_nodes
from circuits.problem import Problem
from tests.circuits.reference import naive_edge_patching
from tests.conftest import example_input, tiny_presets
from workbench.components.attention import SparseHeadInputs
from workbench.errors import ConfigError, InputError, UnknownNameError
from workbench.staged import StreamReader

TOL = dict(atol=1e-5, rtol=1e-5)


def setup(preset: str, gen, batch: int = 2, n: int = 5):
    model = workbench.build(preset)
    clean = example_input(model, batch, n, gen)
    corrupted = example_input(model, batch, n, gen)
    return model, clean, corrupted


def metric_of(model, gen):
    if model.config.input.KIND != "tokens":
        return per_config(lambda out: out.float().square().mean() + out[..., 0].mean())
    v = model.config.d_vocab
    return LogitDiff(
        torch.randint(0, v, (2,), generator=gen), torch.randint(0, v, (2,), generator=gen)
    )


@pytest.mark.parametrize(
    "preset",
    [
        "gpt2-small-tiny",  # pre-norm
        "pythia-160m-tiny",  # parallel, rotary
        "llama2-70b-tiny",  # RMSNorm, grouped-query attention
        "dual-stream-small-tiny",
        "vaswani-base-tiny",  # post-norm
        "bert-base-tiny",  # post-norm, embedding norm, bidirectional
    ],
)
def test_equals_one_forward_pass_per_edge_set(preset, gen) -> None:
    model, clean, corrupted = setup(preset, gen)
    graph = build_graph(model.config)
    metric = metric_of(model, gen)
    picks = torch.randperm(len(graph.edges), generator=gen)[:40].tolist()
    configs = [[graph.edges[i]] for i in picks]  # single edges, then sets of edges
    configs += [[graph.edges[i] for i in picks[j : j + 7]] for j in range(0, 35, 7)]
    configs.append([])
    budget = 5 * 100_000  # a few configurations per chunk
    patch = Replacement.of("patch", source=clean)
    result = patch_edges(Problem(model, corrupted, patch, metric, memory_budget=budget), configs)
    expected = naive_edge_patching(model, corrupted, configs, clean, metric)
    torch.testing.assert_close(result.scores, expected, **TOL)
    assert result.scores[-1].item() == pytest.approx(result.target_baseline, abs=1e-5)


@pytest.mark.parametrize("preset", ["gpt2-small-tiny", "pythia-160m-tiny", "llama2-70b-tiny"])
def test_reading_one_position_runs_the_last_block_there_alone(preset, gen) -> None:
    # the last block runs at the read position only (keys and values at every position);
    # a read position before the end, and an output distance at the last position
    model, clean, corrupted = setup(preset, gen)
    graph = build_graph(model.config)
    picks = torch.randperm(len(graph.edges), generator=gen)[:12].tolist()
    configs = [[graph.edges[i]] for i in picks] + [[graph.edges[i] for i in picks]]
    answer, wrong = torch.tensor([1, 2]), torch.tensor([3, 0])
    with torch.no_grad():
        reference = model(clean)
    for metric in (LogitDiff(answer, wrong, 2), OutputDistance(reference, "kl", start=-1)):
        patch = Replacement.of("patch", source=clean)
        result = patch_edges(Problem(model, corrupted, patch, metric), configs)
        expected = naive_edge_patching(model, corrupted, configs, clean, metric)
        torch.testing.assert_close(result.scores, expected, **TOL)


def graph_presets() -> list[str]:
    out = []
    for name in tiny_presets():
        try:
            build_graph(workbench.build(name).config)
        except ConfigError:
            continue
        out.append(name)
    return out


@pytest.mark.parametrize("preset", graph_presets())
def test_identities_on_every_variant(preset, gen) -> None:
    model, clean, corrupted = setup(preset, gen)
    graph = build_graph(model.config)
    metric = metric_of(model, gen)
    layer = model.config.n_layers - 1
    head_out = [e for e in graph.edges if e.sender == f"a{layer}.h1"]
    patch = Replacement.of("patch", source=clean)
    result = patch_edges(
        Problem(model, corrupted, patch, metric), [list(graph.edges), head_out, []]
    )
    # every edge patched: every reader sees the source run's senders, so the source run
    assert result.scores[0].item() == pytest.approx(result.source_baseline, abs=1e-4)
    # every edge out of a head: the head's output patched (node patching of its result)
    node = patch_nodes(model, corrupted, [NodePatch("result", layer, head=1)], patch, metric)
    torch.testing.assert_close(result.scores[1], node.scores[0], **TOL)
    assert result.scores[2].item() == pytest.approx(result.target_baseline, abs=1e-6)


class _Reader(StreamReader):
    """Gives a block's heads the given per-head inputs (sparse or their dense form)."""

    def __init__(self, inputs) -> None:
        self.inputs = inputs

    def attention(self, layer, x):
        return self.inputs

    def mlp(self, layer, x):
        return x

    def final(self, x):
        return x


@pytest.mark.parametrize("preset", graph_presets())
def test_sparse_head_inputs_equal_their_dense_form(preset, gen) -> None:
    """Single edges give a few heads their own input (SparseHeadInputs); every attention
    kind, gate and norm must treat it as the dense [batch, pos, head, d_model] form."""
    model = workbench.build(preset)
    cfg, block = model.config, model.blocks[0]
    state = model.start(example_input(model, 3, 5, gen)).state  # a pair for dual streams
    x = sum(state) if isinstance(state, tuple) else state
    n = x.shape[1]

    def sparse(n_heads: int) -> SparseHeadInputs:
        rows, heads = torch.tensor([0, 2, 2]), torch.tensor([1, 0, n_heads - 1]) % n_heads
        values = torch.randn(len(rows), n, cfg.d_model, generator=gen)
        return SparseHeadInputs(x, rows, heads, values, n_heads)

    inputs = (sparse(cfg.n_heads), sparse(cfg.kv_heads), sparse(cfg.kv_heads))
    with torch.no_grad():
        got = block.staged(state, reader=_Reader(inputs))
        want = block.staged(state, reader=_Reader(tuple(i.dense() for i in inputs)))
    torch.testing.assert_close(got, want, **TOL)


def test_graph_of_gpt2_small_has_the_known_edge_count() -> None:
    # auto-circuit's GPT-2 small graph (separate q/k/v inputs): 32,491 edges
    graph = build_graph(workbench.build("gpt2-small").config)
    assert (len(graph.senders), len(graph.receivers), len(graph.edges)) == (157, 445, 32491)
    parallel = build_graph(workbench.build("pythia-160m-tiny").config)
    assert not any(e.name == "a0.h0->m0" for e in parallel.edges)
    assert any(
        e.name == "a0.h0->m0" for e in build_graph(workbench.build("gpt2-small-tiny").config).edges
    )


def test_zero_ablating_single_edges(gen) -> None:
    model, _, corrupted = setup("gpt2-small-tiny", gen)
    graph = build_graph(model.config)
    metric = metric_of(model, gen)
    sweep = edge_sweep(graph)[:30]
    zero = patch_edges(Problem(model, corrupted, Replacement.of("zero"), metric), sweep)
    # zero ablation is patching from a source whose sender outputs are all zero
    assert zero.ablation == "zero" and zero.scores.shape == (30,)
    assert not torch.allclose(zero.scores, torch.tensor(zero.target_baseline))


def test_bad_edges_are_refused_clearly(gen) -> None:
    model, clean, corrupted = setup("gpt2-small-tiny", gen)
    metric = metric_of(model, gen)
    problem = Problem(model, corrupted, Replacement.of("patch", source=clean), metric)
    with pytest.raises(UnknownNameError, match="unknown sender 'a9.h0'"):
        patch_edges(problem, [["a9.h0->logits"]])
    with pytest.raises(UnknownNameError, match="unknown receiver"):
        patch_edges(problem, [["a0.h0->a0.h0.x"]])
    with pytest.raises(ConfigError, match="there is no edge a1.h0->a0.h0.q"):
        patch_edges(problem, [["a1.h0->a0.h0.q"]])
    with pytest.raises(ConfigError, match="sender->receiver"):
        patch_edges(problem, [["a0.h0"]])
    with pytest.raises(InputError, match="no edge sets"):
        patch_edges(problem, [])
    with pytest.raises(ConfigError, match="DenseFormer"):
        build_graph(workbench.build("denseformer-small-tiny").config)
