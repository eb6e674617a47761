"""TransformerLens's optional hooks on the lens (docs/lens.md, "Hooks"): `hook_result` in
whole-model caches only after `set_use_attn_result(True)`; the blocks' input hook points
(`set_use_split_qkv_input`, `set_use_attn_in`, `set_use_hook_mlp_in`, or the same `cfg.use_*`
fields set directly), also under TransformerLens 4's names for attention's. A mixin of
`workbench.lens.HookedTransformer`, whose `cfg` is the one mutable object these read."""

from __future__ import annotations

from typing import Any

from workbench.components.hooks import HookPoint
from workbench.errors import InputError
from workbench.lens.weights import LensWeights

# attention's input hooks, which TransformerLens 4's bridge also names blocks.{l}.attn.{name}
INPUT_HOOKS = ("hook_q_input", "hook_k_input", "hook_v_input", "hook_attn_in")


class LensHooks(LensWeights):
    """The optional-hook methods of `workbench.lens.HookedTransformer`."""

    def set_use_attn_result(self, use_attn_result: bool) -> None:
        """Cache `attn.hook_result` (each head's output, [batch, pos, head, d_model]) when
        caching every hook or a filter function's choice; off by default, as in
        TransformerLens, because it is n_heads times the attention output. A hook or cache
        that names the hook point gets it either way."""
        self.cfg.use_attn_result = use_attn_result

    def set_use_split_qkv_input(self, use_split_qkv_input: bool) -> None:
        """`blocks.{l}.hook_q_input` / `hook_k_input` / `hook_v_input`: the stream each
        head's queries, keys and values read, per head, before the norm."""
        self._set_input_hooks(use_split_qkv_input=use_split_qkv_input)

    def set_use_attn_in(self, use_attn_in: bool) -> None:
        """`blocks.{l}.hook_attn_in`: the stream attention reads, one copy per head."""
        self._set_input_hooks(use_attn_in=use_attn_in)

    def set_use_hook_mlp_in(self, use_hook_mlp_in: bool) -> None:
        """`blocks.{l}.hook_mlp_in`: the stream the MLP reads, before its norm."""
        self._set_input_hooks(use_hook_mlp_in=use_hook_mlp_in)

    def _set_input_hooks(self, **flags: bool) -> None:
        cfg = self.cfg
        before = {name: getattr(cfg, name) for name in flags}
        for name, value in flags.items():
            setattr(cfg, name, bool(value))
        try:
            self._sync_input_hooks()
        except InputError:
            for name, value in before.items():
                setattr(cfg, name, value)
            raise

    def _sync_input_hooks(self) -> None:
        """Give the blocks the input hook points `cfg` asks for (TransformerLens code may
        set `cfg.use_split_qkv_input` etc. directly), and index them."""
        cfg = self.cfg
        want = (cfg.use_attn_in, cfg.use_split_qkv_input, cfg.use_hook_mlp_in)
        if self.__dict__.get("lens_input_hooks", (False, False, False)) == want:
            return
        for layer in range(self.config.n_layers):
            self.block(layer).set_input_hooks(attn_in=want[0], split_qkv=want[1], mlp_in=want[2])
        training = self.training
        self.setup()  # index the new hook points (setup puts every module in eval mode)
        self.train(training)
        for layer in range(self.config.n_layers):  # TransformerLens 4's names for them too
            for name in INPUT_HOOKS:
                point = self.mod_dict.get(f"blocks.{layer}.{name}")
                if point is not None:
                    self.mod_dict[f"blocks.{layer}.attn.{name}"] = point
        self.__dict__["lens_input_hooks"] = want

    def _check_hook_name(self, name: str) -> None:
        if not isinstance(self.mod_dict.get(name), HookPoint):  # an alias above, or unknown
            super()._check_hook_name(name)

    def _visible(self, names_filter: Any) -> Any:
        """A filter function (or None: every hook) without the hook points TransformerLens
        computes only when asked: `attn.hook_result` unless `cfg.use_attn_result`."""
        self._sync_input_hooks()
        if self.cfg.use_attn_result or isinstance(names_filter, str | list | tuple):
            return names_filter
        chosen = names_filter or (lambda name: True)
        return lambda name: chosen(name) and not name.endswith("attn.hook_result")

    def add_hook(self, name: Any, hook: Any, *args: Any, **kwargs: Any) -> None:
        super().add_hook(self._visible(name), hook, *args, **kwargs)

    def _enable_hook(self, name: Any, hook: Any, dir: Any) -> None:  # hooks(), run_with_hooks
        super()._enable_hook(self._visible(name), hook, dir)

    def get_caching_hooks(self, names_filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        return super().get_caching_hooks(self._visible(names_filter), *args, **kwargs)
