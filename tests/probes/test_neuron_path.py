"""Influential neuron paths (Wang et al. 2025): the batched search equals the straightforward
one, the joint influence is the integrated gradient it claims to be (finite differences,
completeness), the paper's claim holds on a model whose answer is known, and the interface
(baselines, CLI, errors) works on vision and language presets."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import workbench
from probes.neuron_path import (
    _layer_scores,
    _Problem,
    activation_path,
    compare_paths,
    joint_influence,
    neuron_path,
    suppressed_output,
)
from tests.conftest import example_input
from workbench import names
from workbench.cli import cli
from workbench.errors import InputError


def _case(preset: str, **overrides):
    model = workbench.build(preset, seed=0, **overrides).eval()
    inputs = example_input(model, 1, 8, torch.Generator().manual_seed(0))
    position = 0 if model.input_embed is not None else -1
    with torch.no_grad():
        target = int(model(inputs)[0, position].argmax())
    return model, inputs, target


@pytest.mark.parametrize(
    "preset",
    # pre-norm (rank-one shortcut), vision, gated, parallel, post-norm and dual-stream (re-run)
    ["gpt2-small-tiny", "vit-tiny-patch4-tiny", "llama-7b-tiny", "pythia-160m-tiny",
     "vaswani-base-tiny", "dual-stream-small-tiny"],
)  # fmt: skip
def test_the_batched_layer_scores_equal_the_straightforward_joint_influence(preset: str) -> None:
    model, inputs, target = _case(preset)
    problem = _Problem(model, inputs, target, None, "mlp_post")
    path = [(0, 5)]
    fast = _layer_scores(problem, path, 1, steps=6, chunk=24)
    slow = torch.tensor(
        [
            joint_influence(model, inputs, target, [*path, (1, j)], steps=6)
            for j in range(model.config.d_mlp)
        ]
    )
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=1e-4)


@pytest.mark.parametrize("preset", ["gpt2-small-tiny", "llama-7b-tiny"])
def test_pre_activation_neurons_use_the_rerun_path_and_agree(preset: str) -> None:
    model, inputs, target = _case(preset)
    problem = _Problem(model, inputs, target, None, "mlp_pre")
    assert not problem.additive
    fast = _layer_scores(problem, [(0, 2)], 1, steps=4, chunk=32)
    slow = torch.tensor(
        [
            joint_influence(model, inputs, target, [(0, 2), (1, j)], steps=4, site="mlp_pre")
            for j in range(model.config.d_mlp)
        ]
    )
    torch.testing.assert_close(fast, slow, atol=1e-9, rtol=1e-4)
    path = activation_path(model, inputs, site="mlp_pre")
    _, cache = model.run_with_cache(inputs)
    assert path.neurons[0] == int(cache[names.mlp(0, "pre")][0].mean(0).argmax())


def test_joint_influence_is_the_integral_of_the_scaling_derivative() -> None:
    model, inputs, target = _planted_model()
    neurons = [(0, 11), (1, 22), (1, 5)]

    def output(alpha: float) -> float:
        def scale(act, hook):
            act = act.clone()
            act[..., [22, 5] if "blocks.1" in hook.name else [11]] *= alpha
            return act

        hooks = [(names.mlp_post(0), scale), (names.mlp_post(1), scale)]
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            return float(model(inputs)[0, -1].softmax(-1)[target])

    # one step reads the derivative at alpha = 1: against central differences
    eps = 1e-2
    derivative = (output(1 + eps) - output(1 - eps)) / (2 * eps)
    one = joint_influence(model, inputs, target, neurons, steps=1)
    assert one == pytest.approx(derivative, rel=2e-2, abs=1e-6)
    # completeness: the integral from 0 to 1 is F(1) - F(0) = the suppression drop
    full = joint_influence(model, inputs, target, neurons, steps=400)
    drop = output(1.0) - suppressed_output(model, inputs, target, neurons)
    assert drop > 0.01  # a real effect, not rounding
    assert full == pytest.approx(drop, rel=2e-2)


def _planted_model():
    """gelu-2l-tiny whose output for its target runs through one planted MLP neuron per
    layer: unit 11 of layer 0 (always on) feeds unit 22 of layer 1, which writes the
    target's unembedding direction; every other unit's input and output weights are
    shrunk. The answer is known: the path is (11, 22)."""
    model = workbench.build("gelu-2l-tiny", seed=0).eval()
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6]])
    target = 9
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.W_in.mul_(0.05)
            block.mlp.W_out.mul_(0.05)
        direction = model.W_U[:, target] / model.W_U[:, target].norm()
        model.blocks[0].mlp.W_in[:, 11] = 0.0  # fires at every position
        model.blocks[0].mlp.b_in[11] = 2.5
        relay = torch.randn(model.config.d_model, generator=torch.Generator().manual_seed(2))
        relay = relay - (relay @ direction) * direction
        model.blocks[0].mlp.W_out[11] = 0.3 * relay / relay.norm()
        model.blocks[1].mlp.W_in[:, 22] = 0.4 * relay / relay.norm()  # reads unit 11's write
        model.blocks[1].mlp.b_in[22] = -1.0  # silent unless unit 11 fires
        model.blocks[1].mlp.W_out[22] = 8 * direction
    return model, tokens, target


def test_the_joint_search_finds_a_planted_path_and_beats_the_baselines() -> None:
    model, tokens, target = _planted_model()
    result = compare_paths(model, tokens, target, steps=20, n_random=8)
    joint, activation, individual = result.paths
    assert joint.neurons == (11, 22)
    # the paper's evaluation: suppressing the joint path drops the output the most
    assert result.drop[0] > 0.4 * result.output
    assert result.drop[0] >= max(result.drop[1:])
    assert result.drop[0] > max(result.random_drop)
    assert result.influence[0] >= max(result.random_influence)
    assert json.loads(result.to_json())["paths"][0]["neurons"] == [11, 22]
    assert activation.method == "activation" and individual.method == "individual"


def test_activation_path_picks_the_largest_mean_activation() -> None:
    model, inputs, _ = _case("gpt2-small-tiny")
    _, cache = model.run_with_cache(inputs)
    path = activation_path(model, inputs)
    for layer, unit in path.pairs():
        assert unit == int(cache[names.mlp_post(layer)][0].mean(0).argmax())


def test_paths_on_a_vision_preset() -> None:
    model, image, target = _case("vit-tiny-patch4-tiny")
    path = neuron_path(model, image, target, steps=5)
    assert len(path.neurons) == model.config.n_layers
    assert all(0 <= n < model.config.d_mlp for n in path.neurons)
    assert path.scores[-1] == pytest.approx(
        joint_influence(model, image, target, path.pairs(), steps=5), rel=1e-5, abs=1e-10
    )


def test_bad_input_is_refused() -> None:
    model, inputs, target = _case("gpt2-small-tiny")
    with pytest.raises(InputError, match="batch 1"):
        neuron_path(model, inputs.repeat(2, 1), target)
    with pytest.raises(InputError, match="outside the outputs"):
        neuron_path(model, inputs, 10**6)
    with pytest.raises(InputError, match="does not exist"):
        joint_influence(model, inputs, target, [(7, 0)])
    with pytest.raises(InputError, match="unknown neuron site"):
        neuron_path(model, inputs, target, site="resid_post")
    with pytest.raises(InputError, match="steps"):
        joint_influence(model, inputs, target, [(0, 0)], steps=0)
    attn_only = workbench.build("attn-only-2l-tiny", seed=0)
    with pytest.raises(InputError, match="no MLP"):
        neuron_path(attn_only, inputs, 0)


def test_neuron_path_cli() -> None:
    args = ["neuron-path", "--model", "modadd-1l", "--n-prompts", "1", "--steps", "4"]
    result = CliRunner().invoke(cli, [*args, "--n-random", "3", "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.output)
    assert [p["method"] for p in report["paths"]] == ["joint", "activation", "individual"]
    assert len(report["random_drop"]) == 3


def test_compare_examples_is_compare_paths_for_each_and_counts_its_steps() -> None:
    from probes.neuron_path import compare_examples, comparison_steps

    model, inputs, target = _case("gpt2-small-tiny")
    other = inputs.flip(-1)
    examples = [(inputs, target, -1), (other, 1, -1)]
    seen: list[tuple[int, int]] = []
    report = compare_examples(
        model, examples, steps=3, n_random=2, seed=4,
        on_progress=lambda done, total: seen.append((done, total)),
    )  # fmt: skip
    for got, (x, t, p) in zip(report.comparisons, examples, strict=True):
        assert got == compare_paths(model, x, t, steps=3, n_random=2, seed=4, position=p)
    each = comparison_steps(model, 2)
    assert each == 2 * model.config.n_layers + 5
    assert seen == [(d, 2 * each) for d in range(1, 2 * each + 1)]
    assert json.loads(report.to_json()) == [json.loads(c.to_json()) for c in report.comparisons]
