"""The compiler: clear errors for what it cannot compile, a validator that refuses wrong
models, the ground truth in the patching engine's format, and checkpoints."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import workbench
from circuits.ablation import Replacement
from circuits.edges import patch_edges
from circuits.graph import build_graph
from circuits.metrics import per_config
from circuits.problem import Problem
from rasp import library as L
from rasp import rasp
from rasp.compiler import compiler as C
from rasp.compiler.compiler import compile_rasp
from rasp.compiler.errors import UnsupportedError, ValidationError

ABC = {"a", "b", "c"}


@pytest.mark.parametrize("default", ["-", 0, None])
def test_an_aggregates_default_is_what_bos_holds(default) -> None:
    """Where nothing is selected the head attends to BOS, whose value is the default."""
    before = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == q - 1)
    shifted = rasp.Aggregate(before, rasp.tokens, default=default).named("shifted")
    compiled = compile_rasp(shifted, ABC, 4)
    for xs in ["abc", "c", "baca"]:
        assert compiled.run(xs) == [default, *xs[:-1]] == rasp.evaluate(shifted, list(xs))
    flags = rasp.numerical(rasp.Map(lambda t: 1 if t == "a" else 0, rasp.tokens))
    mean = rasp.numerical(rasp.Aggregate(before, flags, default=7)).named("mean")
    assert compile_rasp(mean, ABC, 4).run("aba") == pytest.approx([7, 1, 0])


def test_unsupported_constructs_name_the_node() -> None:
    prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)
    numerical_of_categorical = rasp.numerical(rasp.Aggregate(prevs, rasp.tokens)).named("avg")
    with pytest.raises(UnsupportedError, match="avg.*numerical Aggregate of the categorical"):
        compile_rasp(numerical_of_categorical, ABC, 4)
    flags = rasp.numerical(rasp.Map(lambda t: 1 if t == "a" else 0, rasp.tokens))
    default = rasp.numerical(rasp.Aggregate(prevs, flags, default="a")).named("with_default")
    with pytest.raises(UnsupportedError, match="with_default.*default is a number, got 'a'"):
        compile_rasp(default, ABC, 4)
    key = rasp.numerical(rasp.Map(lambda t: 1, rasp.tokens)).named("num_key")
    by_number = rasp.Aggregate(rasp.Select(key, rasp.tokens, rasp.Comparison.EQ), rasp.tokens)
    with pytest.raises(UnsupportedError, match="numerical SOp num_key as a key"):
        compile_rasp(by_number.named("agg"), ABC, 4)
    either = rasp.Select(key, rasp.tokens, rasp.Comparison.EQ) | prevs
    with pytest.raises(UnsupportedError, match="w: .*numerical SOp num_key as a key"):
        compile_rasp(rasp.SelectorWidth(either).named("w"), ABC, 4)
    constant = rasp.ConstantSOp([1, 2, 3]).named("const")
    with pytest.raises(UnsupportedError, match="const.*ConstantSOp"):
        compile_rasp(constant, ABC, 3)


def _all_inputs(vocab, max_len):
    return [list(xs) for n in range(1, max_len + 1) for xs in itertools.product(vocab, repeat=n)]


def test_any_selector_of_selects_compiles_to_one_head() -> None:
    """| and a ~ of an & (which no sum of scores computes) compile as one Select over the
    zipped SOps they compare; the paper's sort is one head after one zip."""
    eq = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)
    lt = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.LT)
    before = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LT)
    smaller = rasp.SelectorWidth(lt | (eq & before)).named("smaller")
    sort = rasp.Aggregate(rasp.Select(smaller, rasp.indices, rasp.Comparison.EQ), rasp.tokens)
    lonely = rasp.SelectorWidth(~(eq & ~before)).named("lonely")  # not (same, not earlier)
    odd = rasp.Map(lambda i: i % 2, rasp.indices).named("odd")
    three = rasp.SelectorWidth(eq | (before & rasp.Select(odd, odd, rasp.Comparison.NEQ)))
    for program in (sort.named("sort"), lonely, three.named("three")):
        compiled = compile_rasp(program, ABC, 4)
        heads = [h.sop for layer in compiled.blocks.layers for h in layer.heads]
        assert heads.count(program.label) == 1  # one head for the whole selector
        for xs in _all_inputs("abc", 4):
            assert compiled.run(xs) == rasp.evaluate(program, xs), (program.label, xs)
    labels = compile_rasp(sort.named("sort"), ABC, 4).residual_labels
    assert "zip(tokens,indices):('a', 0)" in labels  # the keys, one per (token, index)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(UnsupportedError, match="BOS"):
        compile_rasp(L.make_length(), {"BOS", "a"}, 3)
    with pytest.raises(UnsupportedError, match="empty"):
        compile_rasp(L.make_length(), set(), 3)
    with pytest.raises(UnsupportedError, match="a SOp"):
        compile_rasp(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ), ABC, 3)


def test_the_validator_refuses_a_wrong_model(monkeypatch) -> None:
    """Break the assembled weights of one head: compilation must fail, naming an input."""
    assemble = C.assemble

    def broken(*args, **kwargs):
        model = assemble(*args, **kwargs)
        with torch.no_grad():
            model.blocks[-1].attn.W_O.mul_(0.5)
        return model

    monkeypatch.setattr(C, "assemble", broken)
    with pytest.raises(ValidationError, match="disagrees with the interpreter on input"):
        compile_rasp(L.make_reverse(rasp.tokens), ABC, 4)


def test_validation_samples_when_inputs_are_too_many() -> None:
    from rasp.compiler.validate import inputs

    every = list(inputs(["a", "b"], 3, budget=100, seed=0))
    assert len(every) == 2 + 4 + 8
    sampled = list(inputs(list("abcdefgh"), 8, budget=50, seed=0))
    assert len(sampled) == 50 and {len(xs) for xs in sampled} == set(range(1, 9))


def test_residual_dimensions_are_labelled() -> None:
    compiled = compile_rasp(L.make_hist(), ABC, 4)
    labels = compiled.residual_labels
    assert len(labels) == compiled.model.config.d_model
    assert {"one", "tokens:BOS", "tokens:a", "hist:0", "hist:4", "hist.bos_share"} <= set(labels)


def test_ground_truth_is_in_the_patching_graph_and_is_the_whole_circuit() -> None:
    """Every ground-truth edge is an edge of the model's graph; zero-ablating every other
    edge leaves the output unchanged, and zero-ablating the ground truth changes it."""
    compiled = compile_rasp(L.make_reverse(rasp.tokens), ABC, 4)
    model, truth = compiled.model, compiled.ground_truth
    graph = build_graph(model.config)
    names = {e.name for e in graph.edges}
    assert set(truth.edges) <= names and truth.edges
    assert truth.components["reverse"] == ["a3.h0"]
    tokens = compiled.encode([["a", "b", "c", "a"], ["c", "c", "b", "a"]])
    with torch.no_grad():
        clean = model(tokens)

    def change(logits: torch.Tensor) -> torch.Tensor:
        return (logits[:, 1:] - clean[:, 1:]).abs().amax()

    outside = [e for e in graph.edges if e.name not in set(truth.edges)]
    problem = Problem(model, tokens, Replacement.of("zero"), per_config(change))
    result = patch_edges(problem, [outside, list(truth.edges)])
    assert result.scores[0].item() < 1e-3
    assert result.scores[1].item() > 0.5


def test_save_and_load_like_any_model(tmp_path) -> None:
    compiled = compile_rasp(L.make_sort_unique(rasp.tokens, rasp.tokens), {1, 2, 3}, 3)
    compiled.save(tmp_path / "sort")
    loaded = workbench.load(tmp_path / "sort")
    tokens = compiled.encode([[3, 1, 2]])
    torch.testing.assert_close(loaded(tokens), compiled.model(tokens))
    meta = workbench.checkpoint.read_meta(tmp_path / "sort")
    assert meta["rasp"]["residual"] == list(compiled.residual_labels)
    assert meta["rasp"]["ground_truth"]["edges"] == list(compiled.ground_truth.edges)


def test_intermediate_form_matches_the_model_residual() -> None:
    compiled = compile_rasp(L.make_sort_freq(4), {1, 2, 3}, 4)
    tokens = compiled.encode([[2, 3, 2, 1]])
    _, cache = compiled.model.run_with_cache(tokens)
    states = compiled.blocks.apply(compiled._embedded(tokens[0]))
    for layer in range(compiled.model.config.n_layers):
        model_state = cache[f"blocks.{layer}.hook_resid_post"][0].double().numpy()
        np.testing.assert_allclose(model_state, states[layer + 1], atol=1e-3)


@pytest.mark.parametrize("name", ["tokens", "indices"])
def test_numerical_tokens_and_indices_are_refused_up_front(name: str) -> None:
    """They were a raw KeyError ('tokens') and a 'compiler bug' validation failure."""
    primitive = getattr(rasp, name)
    program = rasp.numerical(rasp.Map(lambda x: x + 1, rasp.numerical(primitive)))
    with pytest.raises(UnsupportedError, match=rf"numerical\({name}\).*one-hot"):
        compile_rasp(program, {1, 2, 3}, 4)
    copy = rasp.numerical(rasp.Map(lambda x: x, primitive))  # what the message suggests
    fixed = compile_rasp(rasp.numerical(rasp.Map(lambda x: x + 1, copy)), {1, 2, 3}, 4)
    assert fixed.run([1, 3]) == [v + 1 for v in ([1, 3] if name == "tokens" else [0, 1])]
