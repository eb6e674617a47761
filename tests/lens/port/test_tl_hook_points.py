"""TransformerLens's own unit tests of hook points and `HookedRootModule`, ported to
workbench models.

Ported from TransformerLens (TransformerLensOrg/TransformerLens at commit
4cd36aaeb5dad931d085bd5d46a12b402fe15272):

- tests/unit/test_hook_points.py (on the workbench's `HookPoint`, a subclass that wraps each
  forward hook in a shape check);
- tests/unit/test_hooked_root_module.py (`_enable_hook*` on a workbench lens's real hook
  points instead of `Mock(HookPoint)`s);
- tests/unit/test_hook_introspection.py (`HookPoint.__repr__`, `LensHandle.user_hook`,
  `list_hooks` on a lens).

Dropped, and why:

- test_hook_points.py's `@mock.patch("torch.utils.hooks.RemovableHandle")` decorations: they
  only stub the handle's id; the tests run on real handles (the prepend test compares the real
  torch handle ids instead of mocked ones).
- test_hooked_root_module.py `test_legacy_hook_points_import_still_works` and
  `test_legacy_hook_points_attribute_error_for_unknown_names`: TransformerLens's own module
  layout (the deprecated `transformer_lens.hook_points.HookedRootModule` shim), not a property
  of any model.
- test_hook_introspection.py `test_mixin_works_on_class_with_hook_dict_attribute` /
  `..._property`: the duck-typed contract of `HookIntrospectionMixin` on arbitrary classes (the
  bridge's case), not of a model; `list_hooks` on the lens is tested.

Models' hooks, the optional hooks and the demo's workflow: test_tl_hooks.py.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import torch

import workbench
from tests.lens.conftest import transformerlens_version
from workbench.components.hooks import HookPoint
from workbench.lens import HookedTransformer

TL4 = transformerlens_version()[0] >= 4


def _identity(activation: torch.Tensor, hook: Any) -> torch.Tensor:
    return activation


def _other(activation: torch.Tensor, hook: Any) -> torch.Tensor:
    return activation


def _tiny_lens(preset: str = "gpt2-small-tiny", **overrides: Any) -> HookedTransformer:
    return HookedTransformer.from_model(workbench.build(preset, seed=0, **overrides))


# ----- tests/unit/test_hook_points.py ------------------------------------------------------


def test_add_hook_forward() -> None:
    hook_point = HookPoint()
    hook_point.add_hook(_identity, dir="fwd")
    assert len(hook_point.fwd_hooks) == 1


def test_add_hook_backward() -> None:
    hook_point = HookPoint()
    hook_point.add_hook(_identity, dir="bwd")
    assert len(hook_point.bwd_hooks) == 1


def test_add_hook_permanent() -> None:
    hook_point = HookPoint()
    hook_point.add_hook(_identity, dir="fwd", is_permanent=True)
    assert hook_point.fwd_hooks[0].is_permanent


def test_add_hook_with_level() -> None:
    hook_point = HookPoint()
    hook_point.add_hook(_identity, dir="fwd", level=5)
    assert hook_point.fwd_hooks[0].context_level == 5


def test_add_hook_prepend() -> None:
    hook_point = HookPoint()
    hook_point.add_hook(_identity, dir="fwd")
    hook_point.add_hook(_other, dir="fwd", prepend=True)
    assert len(hook_point.fwd_hooks) == 2
    first, second = hook_point.fwd_hooks
    assert first.hook.id > second.hook.id  # the prepended (later) handle comes first
    assert first.user_hook is _other and second.user_hook is _identity
    order: list[str] = []
    hook_point.add_hook(lambda x, hook: order.append("last"), dir="fwd")
    hook_point.add_hook(lambda x, hook: order.append("first"), dir="fwd", prepend=True)
    hook_point(torch.ones(2))
    assert order == ["first", "last"]


class _Doubling:
    """A `BaseTensorConversion`: doubles what the hook sees, adds 10 to what it returns."""

    @staticmethod
    def make() -> Any:
        from transformer_lens.conversion_utils.conversion_steps.base_tensor_conversion import (
            BaseTensorConversion,
        )

        class Conversion(BaseTensorConversion):
            def handle_conversion(self, input_value, *full_context):
                return input_value * 2

            def revert(self, input_value, *full_context):
                return input_value + 10

        return Conversion()


def test_enable_reshape() -> None:
    hook_point = HookPoint()
    conversion = _Doubling.make()
    hook_point.enable_reshape(conversion)
    assert hook_point.hook_conversion is conversion


def test_enable_reshape_with_none() -> None:
    hook_point = HookPoint()
    hook_point.enable_reshape(None)
    assert hook_point.hook_conversion is None


class _HookModule(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hook_point = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_point(x)


def test_reshape_functionality_integration() -> None:
    module = _HookModule()
    module.hook_point.enable_reshape(_Doubling.make())
    module.hook_point.add_hook(lambda activation, hook: activation + 1, dir="fwd")
    result = module(torch.tensor([1.0, 2.0, 3.0]))
    # [1,2,3] * 2 = [2,4,6]; hook: + 1 = [3,5,7]; revert: + 10 = [13,15,17]
    assert torch.equal(result, torch.tensor([13.0, 15.0, 17.0]))


def test_reshape_functionality_hook_returns_none_integration() -> None:
    module = _HookModule()
    module.hook_point.enable_reshape(_Doubling.make())
    module.hook_point.add_hook(lambda activation, hook: None, dir="fwd")
    test_input = torch.tensor([1.0, 2.0, 3.0])
    assert torch.equal(module(test_input), test_input)


class TestHookPointHasHooks:
    """HookPoint.has_hooks (the whole TransformerLens suite, on the workbench's HookPoint)."""

    def setup_method(self) -> None:
        self.hook_point = HookPoint()
        self.sample_hook = _identity

    def test_no_hooks_returns_false(self) -> None:
        assert not self.hook_point.has_hooks()
        assert not self.hook_point.has_hooks(dir="fwd")
        assert not self.hook_point.has_hooks(dir="bwd")
        assert not self.hook_point.has_hooks(dir="both")

    def test_forward_hook_detection(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd")
        assert self.hook_point.has_hooks()
        assert self.hook_point.has_hooks(dir="fwd")
        assert self.hook_point.has_hooks(dir="both")
        assert not self.hook_point.has_hooks(dir="bwd")

    def test_backward_hook_detection(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="bwd")
        assert self.hook_point.has_hooks()
        assert self.hook_point.has_hooks(dir="bwd")
        assert self.hook_point.has_hooks(dir="both")
        assert not self.hook_point.has_hooks(dir="fwd")

    def test_both_direction_hooks(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd")
        self.hook_point.add_hook(self.sample_hook, dir="bwd")
        for direction in ("both", "fwd", "bwd"):
            assert self.hook_point.has_hooks(dir=direction)

    def test_permanent_hook_detection(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", is_permanent=True)
        assert self.hook_point.has_hooks()
        assert self.hook_point.has_hooks(including_permanent=True)
        assert not self.hook_point.has_hooks(including_permanent=False)

    def test_non_permanent_hook_detection(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", is_permanent=False)
        assert self.hook_point.has_hooks()
        assert self.hook_point.has_hooks(including_permanent=True)
        assert self.hook_point.has_hooks(including_permanent=False)

    def test_mixed_permanent_hooks(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", is_permanent=True)
        self.hook_point.add_hook(self.sample_hook, dir="fwd", is_permanent=False)
        assert self.hook_point.has_hooks(including_permanent=True)
        assert self.hook_point.has_hooks(including_permanent=False)

    def test_only_permanent_hooks(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", is_permanent=True)
        self.hook_point.add_hook(self.sample_hook, dir="bwd", is_permanent=True)
        assert self.hook_point.has_hooks(including_permanent=True)
        assert self.hook_point.has_hooks(dir="fwd", including_permanent=True)
        assert self.hook_point.has_hooks(dir="bwd", including_permanent=True)
        assert not self.hook_point.has_hooks(including_permanent=False)
        assert not self.hook_point.has_hooks(dir="fwd", including_permanent=False)
        assert not self.hook_point.has_hooks(dir="bwd", including_permanent=False)

    def test_context_level_filtering(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", level=0)
        self.hook_point.add_hook(self.sample_hook, dir="fwd", level=1)
        self.hook_point.add_hook(self.sample_hook, dir="bwd", level=2)
        for level in (0, 1, 2, None):
            assert self.hook_point.has_hooks(level=level)
        assert not self.hook_point.has_hooks(level=3)
        assert not self.hook_point.has_hooks(level=-1)

    def test_context_level_with_direction(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", level=0)
        self.hook_point.add_hook(self.sample_hook, dir="bwd", level=1)
        assert self.hook_point.has_hooks(dir="fwd", level=0)
        assert self.hook_point.has_hooks(dir="bwd", level=1)
        assert not self.hook_point.has_hooks(dir="fwd", level=1)
        assert not self.hook_point.has_hooks(dir="bwd", level=0)

    def test_context_level_with_permanent_flags(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", level=0, is_permanent=True)
        self.hook_point.add_hook(self.sample_hook, dir="fwd", level=1, is_permanent=False)
        assert self.hook_point.has_hooks(level=0, including_permanent=True)
        assert not self.hook_point.has_hooks(level=0, including_permanent=False)
        assert self.hook_point.has_hooks(level=1, including_permanent=True)
        assert self.hook_point.has_hooks(level=1, including_permanent=False)

    def test_all_parameters_combined(self) -> None:
        hp = self.hook_point
        hp.add_hook(self.sample_hook, dir="fwd", level=0, is_permanent=True)
        hp.add_hook(self.sample_hook, dir="fwd", level=1, is_permanent=False)
        hp.add_hook(self.sample_hook, dir="bwd", level=0, is_permanent=False)
        hp.add_hook(self.sample_hook, dir="bwd", level=2, is_permanent=True)
        assert hp.has_hooks(dir="fwd", level=0, including_permanent=True)
        assert not hp.has_hooks(dir="fwd", level=0, including_permanent=False)
        assert hp.has_hooks(dir="fwd", level=1, including_permanent=False)
        assert hp.has_hooks(dir="bwd", level=0, including_permanent=False)
        assert not hp.has_hooks(dir="bwd", level=1, including_permanent=False)
        assert hp.has_hooks(dir="bwd", level=2, including_permanent=True)

    def test_invalid_direction_raises_error(self) -> None:
        # TransformerLens's test expects beartype's BeartypeCallHintParamViolation (its
        # type-checked build); the installed versions raise their own ValueError
        with pytest.raises(ValueError):
            self.hook_point.has_hooks(dir="invalid")  # type: ignore[arg-type]

    def test_multiple_hooks_same_criteria(self) -> None:
        for _ in range(3):
            self.hook_point.add_hook(self.sample_hook, dir="fwd", level=0, is_permanent=False)
        assert self.hook_point.has_hooks(dir="fwd", level=0, including_permanent=False)

    def test_hook_removal_affects_detection(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd")
        assert self.hook_point.has_hooks()
        self.hook_point.remove_hooks(dir="both")
        assert not self.hook_point.has_hooks()

    def test_default_parameter_values(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", is_permanent=True, level=0)
        self.hook_point.add_hook(self.sample_hook, dir="bwd", is_permanent=False, level=1)
        assert self.hook_point.has_hooks()
        assert self.hook_point.has_hooks(dir="both", including_permanent=True, level=None)

    def test_edge_case_empty_after_filtering(self) -> None:
        self.hook_point.add_hook(self.sample_hook, dir="fwd", is_permanent=True, level=5)
        assert not self.hook_point.has_hooks(including_permanent=False)
        assert not self.hook_point.has_hooks(dir="bwd")
        assert not self.hook_point.has_hooks(level=0)
        assert not self.hook_point.has_hooks(dir="bwd", level=5, including_permanent=True)

    def test_functional_hook_execution_still_works(self) -> None:
        results = []

        def test_hook(activation, hook):
            results.append("hook_called")
            return activation

        self.hook_point.add_hook(test_hook, dir="fwd")
        assert self.hook_point.has_hooks()
        test_input = torch.tensor([1.0, 2.0, 3.0])
        assert torch.equal(self.hook_point(test_input), test_input)
        assert "hook_called" in results

    def test_hook_point_with_conversions(self) -> None:
        self.hook_point.add_hook(lambda activation, hook: activation * 2, dir="fwd")
        assert self.hook_point.has_hooks()
        assert self.hook_point.has_hooks(dir="fwd")
        output = self.hook_point(torch.tensor([1.0, 2.0]))
        assert torch.allclose(output, torch.tensor([2.0, 4.0]))


# ----- tests/unit/test_hooked_root_module.py -----------------------------------------------


def test_enable_hook_with_name() -> None:
    model = _tiny_lens()
    model.context_level = 5
    with mock.patch.object(model.mod_dict["hook_embed"], "add_hook") as add_hook:
        model._enable_hook_with_name("hook_embed", hook=_identity, dir="fwd")
    add_hook.assert_called_with(_identity, dir="fwd", level=5)


def test_enable_hooks_for_points() -> None:
    model = _tiny_lens()
    model.context_level = 5
    points = {name: model.hook_dict[name] for name in ("hook_embed", "hook_pos_embed")}
    with (
        mock.patch.object(points["hook_embed"], "add_hook") as embed,
        mock.patch.object(points["hook_pos_embed"], "add_hook") as pos,
    ):
        model._enable_hooks_for_points(
            hook_points=points.items(),
            enabled=lambda name: name == "hook_pos_embed",
            hook=_identity,
            dir="bwd",
        )
    pos.assert_called_with(_identity, dir="bwd", level=5)
    embed.assert_not_called()


def test_enable_hook_with_string_param() -> None:
    model = _tiny_lens()
    model.context_level = 5
    with mock.patch.object(model.mod_dict["hook_embed"], "add_hook") as add_hook:
        model._enable_hook("hook_embed", hook=_identity, dir="fwd")
    add_hook.assert_called_with(_identity, dir="fwd", level=5)


def test_enable_hook_with_callable_param() -> None:
    model = _tiny_lens()
    model.context_level = 5
    with (
        mock.patch.object(model.hook_dict["hook_embed"], "add_hook") as embed,
        mock.patch.object(model.hook_dict["hook_pos_embed"], "add_hook") as pos,
    ):
        model._enable_hook(lambda name: name == "hook_pos_embed", hook=_identity, dir="fwd")
    pos.assert_called_with(_identity, dir="fwd", level=5)
    embed.assert_not_called()


# ----- tests/unit/test_hook_introspection.py -----------------------------------------------

needs_list_hooks = pytest.mark.skipif(
    not TL4, reason="TransformerLens 3 has no list_hooks (HookIntrospectionMixin is 4's)"
)


def test_lens_handle_stores_user_hook() -> None:
    hook_point = HookPoint()
    hook_point.add_hook(_identity, dir="fwd")
    assert hook_point.fwd_hooks[0].user_hook is _identity  # not the shape-checking wrapper


@pytest.mark.skipif(not TL4, reason="TransformerLens 3's HookPoint has no informative repr")
def test_hookpoint_repr_includes_hook_count() -> None:
    hook_point = HookPoint()
    hook_point.name = "blocks.0.hook_resid_post"
    assert "blocks.0.hook_resid_post" in repr(hook_point)
    hook_point.add_hook(_identity, dir="fwd")
    hook_point.add_hook(_other, dir="fwd")
    rep = repr(hook_point)
    assert "2 fwd" in rep
    assert "bwd" not in rep


def test_hookpoint_repr_with_no_name_and_no_hooks() -> None:
    assert repr(HookPoint()) == "HookPoint()"


@needs_list_hooks
def test_list_hooks_empty_model_returns_empty_dict() -> None:
    assert _tiny_lens().list_hooks() == {}


@needs_list_hooks
def test_list_hooks_returns_user_callable() -> None:
    model = _tiny_lens()
    model.hook_dict["hook_embed"].add_hook(_identity, dir="fwd")
    result = model.list_hooks()
    assert set(result.keys()) == {"hook_embed"}
    assert len(result["hook_embed"]) == 1
    assert result["hook_embed"][0].user_hook is _identity


@needs_list_hooks
def test_list_hooks_name_filter() -> None:  # the string, list and callable filters
    model = _tiny_lens()
    model.hook_dict["hook_embed"].add_hook(_identity, dir="fwd")
    model.hook_dict["hook_pos_embed"].add_hook(_other, dir="fwd")
    assert set(model.list_hooks(name_filter="hook_embed").keys()) == {"hook_embed"}
    both = ["hook_embed", "hook_pos_embed"]
    assert set(model.list_hooks(name_filter=both).keys()) == set(both)
    assert set(model.list_hooks(name_filter=["hook_pos_embed"]).keys()) == {"hook_pos_embed"}
    result = model.list_hooks(name_filter=lambda n: n.startswith("hook_pos"))
    assert set(result.keys()) == {"hook_pos_embed"}


@needs_list_hooks
def test_list_hooks_direction_filter() -> None:
    model = _tiny_lens()
    model.hook_dict["hook_embed"].add_hook(_identity, dir="fwd")
    model.hook_dict["hook_embed"].add_hook(_other, dir="bwd")
    assert len(model.list_hooks(dir="fwd")["hook_embed"]) == 1
    assert len(model.list_hooks(dir="bwd")["hook_embed"]) == 1
    assert len(model.list_hooks(dir="both")["hook_embed"]) == 2


@needs_list_hooks
def test_list_hooks_excludes_permanent_when_requested() -> None:
    model = _tiny_lens()
    model.hook_dict["hook_embed"].add_hook(_identity, dir="fwd", is_permanent=True)
    model.hook_dict["hook_embed"].add_hook(_other, dir="fwd", is_permanent=False)
    assert len(model.list_hooks(including_permanent=True)["hook_embed"]) == 2
    handles = model.list_hooks(including_permanent=False)["hook_embed"]
    assert len(handles) == 1
    assert handles[0].user_hook is _other
