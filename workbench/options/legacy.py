"""Configs written before the typed options (checkpoints' config.json): flat fields that are
now an option's parameters are folded into the option, so old checkpoints load unchanged."""

from __future__ import annotations

from typing import Any

# flat field -> (the option's config field, the option kinds it belonged to, its parameter)
MOVED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "rotary_dim": ("pos", ("rotary", "xpos"), "dim"),
    "rotary_base": ("pos", ("rotary", "xpos"), "base"),
    "xpos_scale_base": ("pos", ("xpos",), "scale_base"),
    "rel_buckets": ("pos", ("t5_bias",), "buckets"),
    "rel_max_distance": ("pos", ("t5_bias",), "max_distance"),
    "shaw_max_distance": ("pos", ("shaw",), "max_distance"),
    "digit_tokens": ("pos", ("abacus",), "digits"),
    "abacus_max_offset": ("pos", ("abacus",), "max_offset"),
    "clip_gamma": ("attention", ("clipped_softmax",), "gamma"),
    "clip_zeta": ("attention", ("clipped_softmax",), "zeta"),
    "pool_size": ("attention", ("pooling",), "size"),
    "mlp_top_k": ("mlp", ("topk",), "k"),
    "kan_groups": ("mlp", ("kan",), "groups"),
    "image_size": ("input", ("patches",), "image_size"),
    "patch_size": ("input", ("patches",), "patch_size"),
    "channels": ("input", ("patches",), "channels"),
    "lookback": ("input", ("series",), "lookback"),
}
DEFAULT_KINDS = {"pos": "learned", "attention": "softmax", "mlp": "gelu", "input": "tokens"}


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with the flat fields of an older config folded into their options (a flat
    field whose option is not chosen held its unused default and is dropped)."""
    if not (data.keys() & MOVED.keys() or "symmetric_qk" in data):
        return data
    out = {k: v for k, v in data.items() if k not in MOVED and k != "symmetric_qk"}
    for flat, (field, kinds, param) in MOVED.items():
        if flat not in data:
            continue
        option = out.get(field, DEFAULT_KINDS[field])
        kind = option if isinstance(option, str) else option.get("kind")
        if kind in kinds and data[flat] is not None:
            option = {"kind": kind} if isinstance(option, str) else dict(option)
            option.setdefault(param, data[flat])
            out[field] = option
    if data.get("symmetric_qk") is True:
        out["qk_form"] = "shared"
    return out


def hint(name: str) -> str | None:
    """Where the flat field `name` went, for the error of a config that still names it."""
    if name == "symmetric_qk":
        return "symmetric_qk is now qk_form='shared'"
    if name not in MOVED:
        return None
    field, kinds, param = MOVED[name]
    return f"{name} is now a parameter of {field}: write {field}={{'kind': {kinds[0]!r}, {param!r}: ...}}"
