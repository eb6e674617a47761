"""Node patching: equal to TransformerLens's patching functions and to one forward pass per
patch, on every variant, in chunks of any size."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import patching

import workbench
from circuits.ablation import Replacement
from circuits.engine import CausalSuffix, Job
from circuits.metrics import (
    AnswerLoss,
    AnswerProb,
    KLToClean,
    LogitDiff,
    per_config,
    read_positions,
)
from circuits.nodes import NodePatch, node_sweep, patch_nodes
from tests.circuits.reference import naive_node_patching
from tests.conftest import example_input, input_length, tiny_presets
from workbench.components.cache import cache_unsupported
from workbench.errors import InputError, UnknownNameError
from workbench.presets import get_preset

CACHED = [p for p in tiny_presets() if cache_unsupported(get_preset(p).config) is None]

TOL = dict(atol=1e-5, rtol=1e-5)


def pair(model, gen, batch: int = 3, n: int = 6):
    clean = example_input(model, batch, n, gen)
    corrupted = example_input(model, batch, n, gen)
    return clean, corrupted


def text_metric(model, gen, batch: int = 3):
    answer = torch.randint(0, model.config.d_vocab, (batch,), generator=gen)
    wrong = torch.randint(0, model.config.d_vocab, (batch,), generator=gen)
    return LogitDiff(answer, wrong)


# (TransformerLens function, our site, positions, heads)
LENS = [
    (patching.get_act_patch_resid_pre, "resid_pre", "each", "all"),
    (patching.get_act_patch_resid_mid, "resid_mid", "each", "all"),
    (patching.get_act_patch_attn_out, "attn_out", "each", "all"),
    (patching.get_act_patch_mlp_out, "mlp_out", "each", "all"),
    (patching.get_act_patch_attn_head_out_by_pos, "z", "each", "each"),
    (patching.get_act_patch_attn_head_out_all_pos, "z", "all", "each"),
    (patching.get_act_patch_attn_head_v_by_pos, "v", "each", "each"),
    (patching.get_act_patch_attn_head_pattern_all_pos, "pattern", "all", "each"),
]


@pytest.mark.parametrize("preset", ["gpt2-small-tiny", "pythia-160m-tiny", "llama-7b-tiny"])
@pytest.mark.parametrize(("lens_fn", "site", "positions", "heads"), LENS)
def test_equals_transformer_lens_patching(preset, lens_fn, site, positions, heads, gen) -> None:
    model = workbench.build(preset)
    if site == "resid_mid" and preset == "pythia-160m-tiny":
        pytest.skip("parallel blocks have no resid_mid")
    clean, corrupted = pair(model, gen)
    metric = text_metric(model, gen)
    _, cache = model.run_with_cache(clean)
    expected = lens_fn(model, corrupted, cache, lambda logits: metric(logits[None])[0])
    sweep = node_sweep(model, site, n_pos=clean.shape[1], positions=positions, heads=heads)
    budget = 3 * 200_000  # a few configurations per chunk: chunking is exercised
    result = patch_nodes(
        model, corrupted, sweep, Replacement.of("patch", source=clean), metric, memory_budget=budget
    )
    torch.testing.assert_close(result.grid(), expected, **TOL)


@pytest.mark.parametrize("preset", tiny_presets())
def test_every_variant_equals_one_pass_per_patch(preset, gen) -> None:
    model = workbench.build(preset)
    clean, corrupted = pair(model, gen, batch=2, n=5)
    n_pos = input_length(model, clean)
    metric = per_config(lambda out: out.float().square().mean() + out[..., 0].mean())
    patches = list(node_sweep(model, "resid_pre", n_pos=n_pos).patches)
    patches += node_sweep(model, "z", n_pos=n_pos, positions="all").patches
    patches = patches[::3]
    result = patch_nodes(model, corrupted, patches, Replacement.of("patch", source=clean), metric)
    hooks = {f"blocks.{p.layer}.hook_resid_pre" for p in patches}
    hooks |= {f"blocks.{p.layer}.attn.hook_z" for p in patches}
    _, cache = model.run_with_cache(clean, names_filter=sorted(hooks))
    expected = naive_node_patching(model, corrupted, patches, dict(cache.items()), metric)
    torch.testing.assert_close(result.scores, expected, **TOL)


@pytest.mark.parametrize("ablation", ["zero", "mean", "resample"])
def test_ablations_equal_one_pass_per_patch(ablation, gen) -> None:
    model = workbench.build("gelu-2l-tiny")
    _, target = pair(model, gen)
    reference = example_input(model, 5, 6, gen)
    metric = AnswerLoss(torch.tensor([1, 2, 3]))
    sweep = node_sweep(model, "mlp_post", n_pos=6, positions="each", neurons="all")
    patches = [*sweep.patches, NodePatch("mlp_post", 1, position=2, neuron=7)]
    replacement = Replacement.of(ablation, reference=reference, seed=3)
    result = patch_nodes(model, target, patches, replacement, metric)
    hooks = [f"blocks.{layer}.mlp.hook_post" for layer in range(2)]
    values, _ = replacement.values(model, hooks, batch=3)
    if ablation == "mean":
        _, cache = model.run_with_cache(reference, names_filter=hooks)
        torch.testing.assert_close(values[hooks[0]], cache[hooks[0]].mean(0, keepdim=True))
    expected = naive_node_patching(model, target, patches, values, metric)
    torch.testing.assert_close(result.scores, expected, **TOL)
    if ablation == "zero":  # zeroing a neuron everywhere changes the loss
        assert not torch.allclose(result.scores, torch.tensor(result.target_baseline))


def test_metrics_read_the_right_numbers(gen) -> None:
    logits = torch.randn(2, 3, 4, 5, generator=gen)  # [config, batch, pos, vocab]
    answer, wrong = torch.tensor([0, 1, 2]), torch.tensor([4, 3, 2])
    last = logits[:, :, -1]
    rows = torch.arange(3)
    torch.testing.assert_close(
        LogitDiff(answer, wrong)(logits), (last[:, rows, answer] - last[:, rows, wrong]).mean(1)
    )
    probs = last.softmax(-1)[:, rows, answer]
    torch.testing.assert_close(AnswerProb(answer)(logits), probs.mean(1))
    torch.testing.assert_close(AnswerLoss(answer)(logits), -probs.log().mean(1))
    read_at = torch.tensor([0, 2, 1])
    at = logits[:, rows, read_at]
    torch.testing.assert_close(
        LogitDiff(answer, wrong, read_at)(logits),
        (at[:, rows, answer] - at[:, rows, wrong]).mean(1),
    )
    # a logit difference reads its tokens' columns alone
    reading = read_positions(LogitDiff(answer, wrong))
    assert reading.at == -1 and sorted(reading.columns.tolist()) == [0, 1, 2, 3, 4]
    narrow = logits[:, :, -1:][..., reading.columns]
    torch.testing.assert_close(reading.metric(narrow), LogitDiff(answer, wrong)(logits))
    assert read_positions(AnswerProb(answer)).columns is None  # a softmax reads every column
    clean = logits[0]
    kl = KLToClean(clean)(logits)
    assert kl[0].abs() < 1e-6 and kl[1] > 0
    p, q = clean[:, -1].softmax(-1), logits[1, :, -1].softmax(-1)
    torch.testing.assert_close(kl[1], (p * (p / q).log()).sum(-1).mean())


def test_patching_the_whole_stream_gives_the_source_run(gen) -> None:
    model = workbench.build("gpt2-small-tiny")
    clean, corrupted = pair(model, gen)
    metric = text_metric(model, gen)
    sweep = node_sweep(model, "resid_pre", n_pos=6, positions="all")
    result = patch_nodes(model, corrupted, sweep, Replacement.of("patch", source=clean), metric)
    assert result.dims == ("layer",)
    for score in result.scores:
        assert abs(float(score) - result.source_baseline) < 1e-5
    rows = result.rows()
    assert rows[0] == {
        "site": "resid_pre",
        "layer": 0,
        "logit_diff": pytest.approx(rows[0]["logit_diff"]),
    }


def test_bad_input_is_refused_clearly(gen) -> None:
    model = workbench.build("gpt2-small-tiny")
    clean, corrupted = pair(model, gen)
    metric = text_metric(model, gen)
    patch = Replacement.of("patch", source=clean)
    with pytest.raises(UnknownNameError, match="unknown patch site 'resid'"):
        node_sweep(model, "resid", n_pos=6)
    with pytest.raises(InputError, match="layer 5 is out of range"):
        patch_nodes(model, corrupted, [NodePatch("resid_pre", 5)], patch, metric)
    with pytest.raises(InputError, match="head 9 is out of range"):
        patch_nodes(model, corrupted, [NodePatch("z", 0, head=9)], patch, metric)
    with pytest.raises(InputError, match="position 6 is out of range"):
        patch_nodes(model, corrupted, [NodePatch("resid_pre", 0, position=6)], patch, metric)
    with pytest.raises(InputError, match="has no head axis"):
        patch_nodes(model, corrupted, [NodePatch("resid_pre", 0, head=0)], patch, metric)
    with pytest.raises(InputError, match="same shape"):
        patch_nodes(model, corrupted[:, :4], [NodePatch("resid_pre", 0)], patch, metric)
    with pytest.raises(InputError, match="too small for one patch configuration"):
        patch_nodes(model, corrupted, [NodePatch("resid_pre", 0)], patch, metric, memory_budget=10)
    with pytest.raises(InputError, match="needs source prompts"):
        Replacement.of("patch")
    with pytest.raises(InputError, match="unknown ablation 'noise'"):
        Replacement.of("noise", source=clean)
    with pytest.raises(InputError, match="no 'mlp_out' site"):
        attn_only = workbench.build("attn-only-1l-tiny")
        node_sweep(attn_only, "mlp_out", n_pos=6)


@pytest.mark.parametrize("which", ["kl", "prob"])
def test_metrics_reading_per_prompt_positions_equal_one_pass_per_patch(which, gen) -> None:
    # the engine unembeds only the position a metric reads; the reference unembeds all
    model = workbench.build("gpt2-small-tiny")
    clean, corrupted = pair(model, gen)
    read_at = torch.tensor([2, 5, 4])
    answer = torch.tensor([3, 1, 4])
    metric = KLToClean(model(clean), read_at) if which == "kl" else AnswerProb(answer, read_at)
    patches = node_sweep(model, "attn_out", n_pos=6).patches
    result = patch_nodes(model, corrupted, patches, Replacement.of("patch", source=clean), metric)
    hooks = [f"blocks.{layer}.hook_attn_out" for layer in range(model.config.n_layers)]
    _, cache = model.run_with_cache(clean, names_filter=hooks)
    expected = naive_node_patching(model, corrupted, patches, dict(cache.items()), metric)
    torch.testing.assert_close(result.scores, expected, **TOL)


SUFFIX_SITES = [("resid_pre", "each", "all"), ("k", "each", "each"), ("pattern", "each", "each")]


@pytest.mark.parametrize("preset", CACHED)
def test_causal_suffix_equals_one_pass_per_patch(preset, gen) -> None:
    # patches by position run only the positions from the patch on, over the target's cache
    model = workbench.build(preset)
    clean, corrupted = pair(model, gen, batch=2, n=6)
    answer, wrong = torch.tensor([1, 2]), torch.tensor([3, 0])
    patches = []
    for site, positions, heads in SUFFIX_SITES:
        if site == "pattern" and model.config.attention.KIND != "softmax":
            continue
        sweep = node_sweep(model, site, n_pos=6, positions=positions, heads=heads)
        patches += sweep.patches[::2]
    hooks = sorted({site_hook(model, p) for p in patches})
    _, cache = model.run_with_cache(clean, names_filter=hooks)
    for read_at in (-1, 3):  # a patch after the read position cannot change it
        metric = LogitDiff(answer, wrong, read_at)
        budget = 8 * 100_000  # small chunks: several offsets per layer
        replacement = Replacement.of("patch", source=clean)
        result = patch_nodes(model, corrupted, patches, replacement, metric, memory_budget=budget)
        expected = naive_node_patching(model, corrupted, patches, dict(cache.items()), metric)
        torch.testing.assert_close(result.scores, expected, **TOL)


def site_hook(model, patch: NodePatch) -> str:
    from circuits.sites import site_axes

    return site_axes(model, patch.site, patch.layer).hook


def test_the_causal_suffix_is_used_where_it_applies(gen) -> None:
    model = workbench.build("gpt2-small-tiny")
    tokens = example_input(model, 2, 6, gen)
    start = model.start(tokens)
    suffix = CausalSuffix.of(model, start, -1)
    assert suffix is not None and suffix.limit == 5
    assert CausalSuffix.of(model, start, None) is None  # the metric reads every position
    assert CausalSuffix.of(model, start, 3).limit == 3
    padded = model.start(tokens, attention_mask=torch.ones_like(tokens))
    assert CausalSuffix.of(model, padded, -1) is None
    bert = workbench.build("bert-base-tiny")
    assert CausalSuffix.of(bert, bert.start(example_input(bert, 2, 6, gen)), -1) is None
    # the plan keeps every configuration once and starts late patches late
    first_layer = [layer for layer in range(2) for _ in range(6)]
    job = Job(first_layer, lambda chunk, offset: ([], None), [p % 6 for p in range(12)])
    chunks = suffix.plan(job, batch=2, max_chunk=4)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(12))
    assert all(len(chunk) <= 4 for chunk in chunks)
    assert any(min(job.first_position[i] for i in chunk) > 0 for chunk in chunks)
    # the stream at layer 1, position 4 is the unpatched run's there
    stream = suffix.stream(1, 4)
    assert stream.state.shape[1] == 2 and stream.seqs.offset == 4
    logits = model.finish(stream.tile(3))
    torch.testing.assert_close(logits[:2], model(tokens)[:, 4:], **TOL)
    torch.testing.assert_close(logits[4:], logits[:2], **TOL)
