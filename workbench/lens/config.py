"""`model.cfg` as TransformerLens code reads it: the fields of TransformerLens's
`HookedTransformerConfig`, derived from the workbench config.

TransformerLens names a choice with a string (`act_fn="gelu_new"`,
`normalization_type="RMS"`, `positional_embedding_type="rotary"`); a workbench choice
TransformerLens has no name for keeps its own kind string (`act_fn="topk"`,
`positional_embedding_type="fire"`), so no field claims a mechanism the model does not have.
The object is mutable, as TransformerLens's is; the settings a TransformerLens user changes
through it (`use_attn_result`, ...) are read by the lens."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from workbench.config import ModelConfig, Norm, Wiring
from workbench.options import (
    ALiBi,
    GeGLU,
    Gelu,
    GeluTanh,
    Learned,
    NoPos,
    ReGLU,
    Relu,
    Rotary,
    Sinusoidal,
    SwiGLU,
    T5Buckets,
    XPos,
)

ACT_FN = {
    Gelu: "gelu",
    GeluTanh: "gelu_new",
    Relu: "relu",
    SwiGLU: "silu",
    GeGLU: "gelu",
    ReGLU: "relu",
}
NORMALIZATION = {Norm.LAYERNORM: "LN", Norm.RMSNORM: "RMS", Norm.NONE: None}
POSITIONS = {
    Learned: "standard",
    Sinusoidal: "sinusoidal",
    Rotary: "rotary",
    XPos: "xpos",
    ALiBi: "alibi",
    T5Buckets: "relative_positional_bias",
    NoPos: "none",
}


@dataclass
class TLConfig:
    """The fields of TransformerLens's `HookedTransformerConfig` for one workbench model."""

    n_layers: int
    d_model: int
    n_ctx: int
    d_head: int
    n_heads: int
    d_vocab: int
    d_vocab_out: int
    d_mlp: int | None
    act_fn: str | None
    gated_mlp: bool
    normalization_type: str | None
    eps: float
    positional_embedding_type: str
    rotary_dim: int | None
    rotary_base: float
    n_key_value_heads: int | None
    parallel_attn_mlp: bool
    attn_only: bool
    attention_dir: str
    original_architecture: str | None
    model_name: str
    device: torch.device
    dtype: torch.dtype
    default_prepend_bos: bool
    tokenizer_prepends_bos: bool | None
    window_size: int | None = None
    use_local_attn: bool = False
    attn_types: list[str] | None = None  # per layer: "global", or "local" (a window)
    final_rms: bool = False
    init_mode: str = "gpt2"
    n_devices: int = 1
    use_attn_scale: bool = True
    use_attn_result: bool = False
    use_split_qkv_input: bool = False
    use_hook_mlp_in: bool = False
    use_attn_in: bool = False
    default_padding_side: str = "right"
    tokenizer_name: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # workbench choices TL lacks

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def is_layer_norm_activation(self) -> bool:
        """TransformerLens's: whether the activation is SoLU's with a norm ("solu_ln"); no
        workbench activation is."""
        return self.act_fn is not None and self.act_fn.endswith("_ln")


def tl_config(
    config: ModelConfig,
    *,
    device: torch.device,
    dtype: torch.dtype,
    model_name: str = "",
    original_architecture: str | None = None,
    default_prepend_bos: bool = False,
    tokenizer_prepends_bos: bool | None = None,
) -> TLConfig:
    """TransformerLens's names for `config`'s choices."""
    pos = config.pos
    rotary = isinstance(pos, Rotary)
    windows = [layer.window for layer in config.layer_configs]
    mlp = config.mlp
    extra = {
        name: str(value)
        for name, value in (
            ("attention", config.attention),
            ("qk_form", config.qk_form),
            ("wiring", config.wiring),
            ("norm_placement", config.norm_placement),
        )
        if str(value) not in ("softmax", "separate", "sequential", "parallel", "pre")
    }
    return TLConfig(
        n_layers=config.n_layers,
        d_model=config.d_model,
        n_ctx=config.n_ctx,
        d_head=config.d_head,
        n_heads=config.n_heads,
        d_vocab=config.d_vocab,
        d_vocab_out=config.vocab_out,
        d_mlp=config.d_mlp if config.has_mlp else None,
        act_fn=ACT_FN.get(type(mlp), mlp.KIND) if config.has_mlp else None,
        gated_mlp=mlp.gated,
        normalization_type=NORMALIZATION[config.norm],
        eps=config.norm_eps,
        positional_embedding_type=POSITIONS.get(type(pos), pos.KIND),
        rotary_dim=pos.dims(config.d_head) if rotary else None,
        rotary_base=pos.base if rotary else 10000.0,
        n_key_value_heads=config.n_kv_heads if config.kv_heads != config.n_heads else None,
        parallel_attn_mlp=config.wiring is Wiring.PARALLEL,
        attn_only=not config.has_mlp,
        attention_dir=config.mask.value,
        original_architecture=original_architecture,
        model_name=model_name,
        device=device,
        dtype=dtype,
        default_prepend_bos=default_prepend_bos,
        tokenizer_prepends_bos=tokenizer_prepends_bos,
        window_size=next((w for w in windows if w is not None), None),
        use_local_attn=any(w is not None for w in windows),
        attn_types=["global" if w is None else "local" for w in windows]
        if any(w is not None for w in windows)
        else None,
        final_rms=config.norm is Norm.RMSNORM,
        extra=extra,
    )
