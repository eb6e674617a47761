"""Canonical hook names (TransformerLens scheme). Analyses build names here, never by hand."""

from __future__ import annotations

EMBED = "hook_embed"
POS_EMBED = "hook_pos_embed"
LOGITS = "hook_logits"
FINAL_NORMALIZED = "ln_final.hook_normalized"
FINAL_SCALE = "ln_final.hook_scale"


def block(layer: int, site: str) -> str:
    return f"blocks.{layer}.{site}"


def resid_pre(layer: int) -> str:
    return block(layer, "hook_resid_pre")


def resid_mid(layer: int) -> str:
    return block(layer, "hook_resid_mid")


def resid_post(layer: int) -> str:
    return block(layer, "hook_resid_post")


def attn_out(layer: int) -> str:
    return block(layer, "hook_attn_out")


def mlp_out(layer: int) -> str:
    return block(layer, "hook_mlp_out")


def norm_normalized(layer: int, which: int) -> str:
    return block(layer, f"ln{which}.hook_normalized")


def norm_scale(layer: int, which: int) -> str:
    return block(layer, f"ln{which}.hook_scale")


def attn(layer: int, site: str) -> str:
    """`site` is one of q, k, v, rot_q, rot_k, attn_scores, pattern, z, result."""
    return block(layer, f"attn.hook_{site}")


def attn_pattern(layer: int) -> str:
    return attn(layer, "pattern")


def attn_scores(layer: int) -> str:
    return attn(layer, "attn_scores")


def attn_z(layer: int) -> str:
    return attn(layer, "z")


def attn_result(layer: int) -> str:
    return attn(layer, "result")


def mlp(layer: int, site: str) -> str:
    """`site` is one of pre, pre_linear, post."""
    return block(layer, f"mlp.hook_{site}")


def mlp_post(layer: int) -> str:
    return mlp(layer, "post")
