"""The hooked-model protocol: hook points, caching, scoped hooks, TransformerLens patching."""

from __future__ import annotations

import pytest
import torch
from transformer_lens import ActivationCache, patching
from transformer_lens.hook_points import HookPoint

import workbench
from tests.conftest import example_input, input_length, tiny_presets
from workbench import names
from workbench.errors import InputError, UnknownNameError
from workbench.model import HookedRootModule  # where each TransformerLens version keeps it


@pytest.mark.parametrize("preset", tiny_presets())
def test_hook_points_equal_schema_and_fire_in_schema_order(preset: str) -> None:
    model = workbench.build(preset)
    assert isinstance(model, HookedRootModule)
    assert all(isinstance(hp, HookPoint) for hp in model.hook_dict.values())
    specs = model.hook_specs()
    assert [s.name for s in specs] == list(dict.fromkeys(s.name for s in specs))  # unique
    assert set(model.hook_dict) == {s.name for s in specs}
    fired: list[tuple[str, tuple[int, ...]]] = []
    hooks = [
        (name, lambda t, hook: fired.append((hook.name, tuple(t.shape))))
        for name in model.hook_dict
    ]
    inputs = example_input(model, 3, 7)
    model.run_with_hooks(inputs, fwd_hooks=hooks)
    assert [name for name, _ in fired] == [s.name for s in specs]
    n = input_length(model, inputs)
    sizes = {"batch": 3, "pos": n, "query_pos": n, "key_pos": n}
    for (name, shape), spec in zip(fired, specs, strict=True):
        want = tuple(sizes.get(d, s) for d, s in zip(spec.dims, spec.shape, strict=True))
        assert shape == want, name


def test_run_with_cache_returns_activation_cache() -> None:
    model = workbench.build("gpt2-small-tiny")
    tokens = torch.randint(0, 50, (2, 6))
    logits, cache = model.run_with_cache(tokens)
    assert isinstance(cache, ActivationCache)
    torch.testing.assert_close(cache[names.LOGITS], logits)
    # TransformerLens's own cache helpers read the model's cfg
    resid = cache.accumulated_resid(layer=2, incl_mid=True)
    assert resid.shape == (5, 2, 6, 32)
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())


def test_per_head_result_is_exact_and_only_computed_when_hooked() -> None:
    model = workbench.build("gpt2-small-tiny", seed=2)
    tokens = torch.randint(0, 50, (2, 6))
    seen: list[str] = []
    model.run_with_hooks(
        tokens, fwd_hooks=[(lambda n: True, lambda t, hook: seen.append(hook.name))]
    )
    assert names.attn_result(0) in seen
    plain = model(tokens)
    seen.clear()
    model.run_with_hooks(
        tokens, fwd_hooks=[(names.attn_out(0), lambda t, hook: seen.append(hook.name))]
    )
    assert seen == [names.attn_out(0)]
    logits, cache = model.run_with_cache(tokens)
    torch.testing.assert_close(logits, plain, atol=1e-5, rtol=1e-5)
    attn = model.blocks[0].attn
    torch.testing.assert_close(
        cache[names.attn_result(0)].sum(2) + attn.b_O,
        cache[names.attn_out(0)],
        atol=1e-5,
        rtol=1e-5,
    )


def test_patching_a_head_result_changes_the_output() -> None:
    # attention-only: the last block's resid_post is resid_pre plus the sum of head results
    model = workbench.build("attn-only-2l-tiny", seed=2)
    tokens = torch.randint(0, 50, (1, 6))

    def zero_head(t: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        t[:, :, 1] = 0
        return t

    patched = model.run_with_hooks(tokens, fwd_hooks=[(names.attn_result(1), zero_head)])
    _, cache = model.run_with_cache(tokens)
    manual = cache[names.resid_post(1)] - cache[names.attn_result(1)][:, :, 1]
    assert not torch.allclose(patched, model(tokens))
    reference = model.run_with_hooks(
        tokens, fwd_hooks=[(names.resid_post(1), lambda t, hook: manual)]
    )
    torch.testing.assert_close(patched, reference, atol=1e-5, rtol=1e-5)


def test_hooks_leave_nothing_behind_even_when_a_hook_raises() -> None:
    model = workbench.build("gpt2-small-tiny")
    tokens = torch.randint(0, 50, (1, 4))

    def boom(t: torch.Tensor, hook: HookPoint) -> None:
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        model.run_with_hooks(tokens, fwd_hooks=[(names.resid_pre(0), boom)])
    with (
        pytest.raises(RuntimeError, match="hook failed"),
        model.hooks(fwd_hooks=[(names.attn_pattern(1), boom)]),
    ):
        model(tokens)
    with pytest.raises(InputError):  # caching hooks are in place when the forward fails
        model.run_with_cache(tokens + 100)
    assert not any(hp.fwd_hooks or hp.bwd_hooks for hp in model.hook_dict.values())
    assert not any(m._forward_hooks for m in model.modules())


def test_unknown_hook_name_names_close_matches() -> None:
    model = workbench.build("gpt2-small-tiny")
    tokens = torch.randint(0, 50, (1, 4))
    with pytest.raises(UnknownNameError, match="blocks.0.hook_resid_pre"):
        model.run_with_hooks(tokens, fwd_hooks=[("blocks.0.hook_resid_pr", lambda t, hook: None)])
    with pytest.raises(UnknownNameError, match="attn.hook_pattern"):
        model.run_with_cache(tokens, names_filter=["blocks.1.attn.hook_patern"])
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())


def test_transformer_lens_resid_pre_patching_matches_hand_written_reference() -> None:
    model = workbench.build("gelu-2l-tiny", seed=5)
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50, (2, 5), generator=gen)
    corrupted = torch.randint(0, 50, (2, 5), generator=gen)
    answer = clean[:, -1]
    _, clean_cache = model.run_with_cache(clean)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[torch.arange(2), -1, answer].mean()

    ours = patching.get_act_patch_resid_pre(model, corrupted, clean_cache, metric)
    reference = torch.zeros(model.cfg.n_layers, clean.shape[1])
    for layer in range(model.cfg.n_layers):
        for pos in range(clean.shape[1]):
            patched = corrupted.clone()

            def hook(
                t: torch.Tensor, hook: HookPoint, pos: int = pos, layer: int = layer
            ) -> torch.Tensor:
                t = t.clone()
                t[:, pos] = clean_cache[names.resid_pre(layer)][:, pos]
                return t

            with model.hooks(fwd_hooks=[(names.resid_pre(layer), hook)]):
                reference[layer, pos] = metric(model(patched))
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    assert ours.std() > 0  # the sweep measured something
    assert not any(hp.fwd_hooks for hp in model.hook_dict.values())


def test_fast_hook_points_start_like_transformer_lens_ones() -> None:
    from transformer_lens.hook_points import HookPoint as LensHookPoint

    from workbench.components.hooks import HookPoint

    ours, theirs = HookPoint("batch", "pos", "d_model"), LensHookPoint()
    assert isinstance(ours, LensHookPoint)
    assert vars(ours).keys() == vars(theirs).keys() | {"dims"}  # and the dims it declares
    assert ours.dims == ("batch", "pos", "d_model")
    plain = [k for k in vars(theirs) if not k.startswith("_") and k != "training"]
    assert {k: vars(ours)[k] for k in plain} == {k: vars(theirs)[k] for k in plain}
    other = HookPoint()
    assert other.fwd_hooks is not ours.fwd_hooks and other.ctx is not ours.ctx  # not shared


def _halve_positions(t: torch.Tensor, hook: HookPoint) -> torch.Tensor:
    return t[:, : t.shape[1] // 2]  # broadcasts or slices silently downstream if accepted


@pytest.mark.parametrize(
    ("site", "hook", "message"),
    [
        (
            names.resid_pre(0),
            _halve_positions,
            r"_halve_positions at 'blocks.0.hook_resid_pre' returned a tensor of shape "
            r"\[2, 2, 32\], torch.float32, on cpu; the hook point holds a tensor of shape "
            r"\[2, 4, 32\]",
        ),
        (
            names.attn_pattern(1),
            lambda t, hook: t[:1],  # one row of the batch: broadcasts back to two
            r"at 'blocks.1.attn.hook_pattern' returned a tensor of shape \[1, 4, 4, 4\]",
        ),
        (names.mlp(0, "post"), lambda t, hook: t.double(), r"torch.float64.*holds.*float32"),
        (names.resid_mid(1), lambda t, hook: t.to("meta"), r"on meta; .* on cpu"),
        (names.attn_z(0), lambda t, hook: 0.0, r"returned float 0.0; the hook point holds"),
    ],
)
def test_a_hook_returning_the_wrong_tensor_is_named(site: str, hook, message: str) -> None:
    model = workbench.build("gpt2-small-tiny")
    tokens = torch.randint(0, 50, (2, 4))
    with pytest.raises(InputError, match=message):
        model.run_with_hooks(tokens, fwd_hooks=[(site, hook)])
    with pytest.raises(InputError, match=message), model.hooks(fwd_hooks=[(site, hook)]):
        model(tokens)
    model.add_hook(site, hook)
    with pytest.raises(InputError, match=message):
        model(tokens)
    model.reset_hooks()
    assert not any(m._forward_hooks for m in model.modules())


def test_checked_hooks_still_edit_and_list_as_the_callers_function() -> None:
    model = workbench.build("gpt2-small-tiny")
    tokens = torch.randint(0, 50, (2, 4))

    def zero_head(t: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        t = t.clone()
        t[:, :, 1] = 0
        return t

    def look(t: torch.Tensor, hook: HookPoint) -> None:
        seen.append(t)

    seen: list[torch.Tensor] = []
    with model.hooks(fwd_hooks=[(names.attn_z(0), zero_head), (names.attn_z(0), look)]):
        hooked = model.hook_dict[names.attn_z(0)]
        assert [h.user_hook for h in hooked.fwd_hooks] == [zero_head, look]
        edited = model(tokens)
    assert (seen[0][:, :, 1] == 0).all() and seen[0].abs().sum() > 0
    assert not torch.equal(edited, model(tokens))
