"""The hook schema: every hook point of a model, with its dimensions, from the config alone.

The model builds exactly these hook points (a test checks it), in this order, which is also
the order in which a forward pass reaches them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from workbench import names
from workbench.config import (
    ModelConfig,
    NormPlacement,
    QKForm,
    Wiring,
)
from workbench.options import (
    Delta,
    Fire,
    Forgetting,
    GatedLinear,
    Kan,
    Peg,
    Pooling,
    Shaw,
    T5Buckets,
)


@dataclass(frozen=True)
class HookSpec:
    """One hook point: its name, the names of its dimensions, and their sizes (None: varies)."""

    name: str
    dims: tuple[str, ...]
    shape: tuple[int | None, ...]

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "dims": list(self.dims), "shape": list(self.shape)}


def hook_schema(cfg: ModelConfig) -> list[HookSpec]:
    """All hook points of a model built from `cfg`, in forward order."""
    sizes: dict[str, int | None] = {
        "batch": None,
        "pos": None,
        "query_pos": None,
        "key_pos": None,
        "head": cfg.n_heads,
        "kv_head": cfg.kv_heads,
        "d_head": cfg.d_head,
        "d_model": cfg.d_model,
        "d_mlp": cfg.d_mlp,
        "d_vocab": cfg.vocab_out,  # the logits' width
        "patch": cfg.n_patches,
        "one": 1,
    }
    specs: list[HookSpec] = []

    def add(name: str, *dims: str) -> None:
        specs.append(HookSpec(name, dims, tuple(sizes[d] for d in dims)))

    resid = ("batch", "pos", "d_model")
    add(names.EMBED, *resid)
    if cfg.pos.embeds:
        add(names.POS_EMBED, *resid)
    if cfg.embed_norm and cfg.has_norm:
        add("ln_embed.hook_scale", "batch", "pos", "one")
        add("ln_embed.hook_normalized", *resid)
    for layer in range(cfg.n_layers):
        _block_schema(cfg.layer(layer), layer, add)
        if layer == 0 and isinstance(cfg.pos, Peg):
            add("peg.hook_out", "batch", "patch", "d_model")
    if cfg.has_final_norm:
        add(names.FINAL_SCALE, "batch", "pos", "one")
        add(names.FINAL_NORMALIZED, *resid)
    if cfg.mlm_head:
        add("mlm.hook_act", *resid)
        add("mlm.ln.hook_scale", "batch", "pos", "one")
        add("mlm.ln.hook_normalized", *resid)
    add(names.LOGITS, "batch", "pos", "d_vocab")
    return specs


def _block_schema(cfg: ModelConfig, layer: int, add) -> None:
    resid = ("batch", "pos", "d_model")
    pre = cfg.has_norm and cfg.norm_placement is NormPlacement.PRE
    post = cfg.has_norm and cfg.norm_placement is NormPlacement.POST

    def norm(which: int) -> None:
        add(names.norm_scale(layer, which), "batch", "pos", "one")
        add(names.norm_normalized(layer, which), *resid)

    def mlp() -> None:
        if isinstance(cfg.mlp, Kan):
            add(names.mlp(layer, "in_act"), *resid)
        add(names.mlp(layer, "pre"), "batch", "pos", "d_mlp")
        if cfg.mlp.gated:
            add(names.mlp(layer, "pre_linear"), "batch", "pos", "d_mlp")
        add(names.mlp(layer, "post"), "batch", "pos", "d_mlp")
        add(names.mlp_out(layer), *resid)

    add(names.resid_pre(layer), *resid)
    if pre:
        norm(1)
    _attention_schema(cfg, layer, add)
    add(names.attn_out(layer), *resid)
    if cfg.wiring is Wiring.DUAL_STREAM:
        add(names.block(layer, "hook_token_stream"), *resid)
    if cfg.wiring is Wiring.PARALLEL:
        if cfg.has_mlp:
            if pre:
                norm(2)
            mlp()
    else:
        if post:
            norm(1)
        add(names.resid_mid(layer), *resid)
        if cfg.has_mlp:
            if pre:
                norm(2)
            mlp()
            if post:
                norm(2)
    if cfg.wiring is Wiring.DUAL_STREAM:
        add(names.block(layer, "hook_context_stream"), *resid)
    add(names.resid_post(layer), *resid)
    if cfg.depth_weighted:
        add(names.block(layer, "hook_dwa"), *resid)


def _attention_schema(cfg: ModelConfig, layer: int, add) -> None:
    if isinstance(cfg.attention, Pooling):  # no queries, keys or scores
        add(names.attn(layer, "v"), "batch", "pos", "kv_head", "d_head")
        add(names.attn_pattern(layer), "batch", "head", "query_pos", "key_pos")
        if cfg.attn_gate:
            add(names.attn(layer, "gate"), "batch", "pos", "head")
        add(names.attn_z(layer), "batch", "pos", "head", "d_head")
        add(names.attn_result(layer), "batch", "pos", "head", "d_model")
        return
    if cfg.qk_form in (QKForm.SEPARATE, QKForm.SHARED):
        add(names.attn(layer, "q"), "batch", "pos", "head", "d_head")
        add(names.attn(layer, "k"), "batch", "pos", "kv_head", "d_head")
    else:  # x W_QK and x itself
        add(names.attn(layer, "q"), "batch", "pos", "head", "d_model")
        add(names.attn(layer, "k"), "batch", "pos", "head", "d_model")
    add(names.attn(layer, "v"), "batch", "pos", "kv_head", "d_head")
    if cfg.kv_shift:
        add(names.attn(layer, "shifted_k"), "batch", "pos", "kv_head", "d_head")
        add(names.attn(layer, "shifted_v"), "batch", "pos", "kv_head", "d_head")
    if cfg.pos.rotates:
        add(names.attn(layer, "rot_q"), "batch", "pos", "head", "d_head")
        add(names.attn(layer, "rot_k"), "batch", "pos", "kv_head", "d_head")
    if cfg.momentum is not None:
        add(names.attn(layer, "momentum_q"), "batch", "pos", "head", "d_head")
        add(names.attn(layer, "momentum_k"), "batch", "pos", "kv_head", "d_head")
    if isinstance(cfg.pos, T5Buckets | Fire):
        add(names.attn(layer, "rel_bias"), "head", "query_pos", "key_pos")
    if isinstance(cfg.pos, Shaw):
        add(names.attn(layer, "rel_scores"), "batch", "head", "query_pos", "key_pos")
    if isinstance(cfg.attention, Forgetting):
        add(names.attn(layer, "forget_gate"), "batch", "pos", "head")
    if isinstance(cfg.attention, GatedLinear):
        add(names.attn(layer, "decay"), "batch", "pos", "head", "d_head")
    if isinstance(cfg.attention, Delta):
        add(names.attn(layer, "beta"), "batch", "pos", "head")
    add(names.attn_scores(layer), "batch", "head", "query_pos", "key_pos")
    add(names.attn_pattern(layer), "batch", "head", "query_pos", "key_pos")
    if isinstance(cfg.pos, Shaw):
        add(names.attn(layer, "rel_values"), "batch", "pos", "head", "d_head")
    if cfg.attn_gate:
        add(names.attn(layer, "gate"), "batch", "pos", "head")
    add(names.attn_z(layer), "batch", "pos", "head", "d_head")
    add(names.attn_result(layer), "batch", "pos", "head", "d_model")


def schema_json(cfg: ModelConfig) -> str:
    return json.dumps([s.to_json() for s in hook_schema(cfg)], indent=1)
