"""TransformerLens's model-level weights over a workbench model: each block's attention and
MLP parameters stacked over layers, the embeddings under TransformerLens's names, the QK and
OV circuits as `FactoredMatrix`, head labels and composition scores (Elhage et al. 2021, "A
Mathematical Framework for Transformer Circuits").

Shapes are TransformerLens's: `W_Q`, `W_K`, `W_V` [layer, head, d_model, d_head] (grouped
keys and values repeated to every query head, as `HookedTransformer`'s grouped-query
attention shows them), `W_O` [layer, head, d_head, d_model], biases [layer, head, d_head] and
`b_O` [layer, d_model], `W_in`/`W_gate` [layer, d_model, d_mlp], `W_out` [layer, d_mlp,
d_model]. A model whose parts differ from layer to layer, or lack one (collapsed or shared
query-key forms, pooling attention, no MLP, KAN layers), raises `InputError` naming what it
has instead."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from jaxtyping import Float
from torch import Tensor

from workbench.config import Wiring
from workbench.errors import InputError
from workbench.model import Transformer

if TYPE_CHECKING:
    from transformer_lens.FactoredMatrix import FactoredMatrix


@dataclass(frozen=True)
class Part:
    """A TransformerLens module path (`model.embed`, `model.pos_embed`, `model.unembed`):
    its weights, the model's own tensors (`model.embed.W_E`), and its computation when
    called as TransformerLens code calls the module (`model.unembed(resid)`)."""

    tensors: dict[str, Tensor]
    compute: Callable[..., Tensor]

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.compute(*args, **kwargs)

    def __getattr__(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            have = ", ".join(self.tensors) or "nothing"
            raise AttributeError(f"this part has {have}, not {name}") from None


class HeadLabels(list[str]):
    """A list of head labels that returns itself when called."""

    def __call__(self) -> list[str]:
        return list(self)


class LensWeights(Transformer):
    """The weight attributes of `workbench.lens.HookedTransformer`."""

    def _stacked(self, part: str, name: str, kv: bool = False) -> Tensor:
        """`blocks[l].{part}.{name}` for every layer, stacked; `kv`: repeated from the
        key/value heads to every query head."""
        tensors = []
        for layer in range(self.config.n_layers):
            module = getattr(self.block(layer), part)
            tensor = None if module is None else getattr(module, name, None)
            if not isinstance(tensor, Tensor):
                what = "no MLP" if module is None else f"no {part}.{name}"
                raise InputError(
                    f"this model's block {layer} has {what} (attention={self.config.layer(layer).attention}, "
                    f"qk_form={self.config.qk_form}, mlp={self.config.layer(layer).mlp}): "
                    f"{name} is not defined for it"
                )
            if kv:
                group = self.config.n_heads // self.config.kv_heads
                tensor = tensor.repeat_interleave(group, dim=0)
            tensors.append(tensor)
        return torch.stack(tensors)

    @property
    def W_Q(self) -> Float[Tensor, "layer head d_model d_head"]:
        return self._stacked("attn", "W_Q")

    @property
    def W_K(self) -> Float[Tensor, "layer head d_model d_head"]:
        return self._stacked("attn", "W_K", kv=True)

    @property
    def W_V(self) -> Float[Tensor, "layer head d_model d_head"]:
        return self._stacked("attn", "W_V", kv=True)

    @property
    def W_O(self) -> Float[Tensor, "layer head d_head d_model"]:
        return self._stacked("attn", "W_O")

    @property
    def b_Q(self) -> Float[Tensor, "layer head d_head"]:
        return self._stacked("attn", "b_Q")

    @property
    def b_K(self) -> Float[Tensor, "layer head d_head"]:
        return self._stacked("attn", "b_K", kv=True)

    @property
    def b_V(self) -> Float[Tensor, "layer head d_head"]:
        return self._stacked("attn", "b_V", kv=True)

    @property
    def b_O(self) -> Float[Tensor, "layer d_model"]:
        return self._stacked("attn", "b_O")

    @property
    def W_in(self) -> Float[Tensor, "layer d_model d_mlp"]:
        return self._stacked("mlp", "W_in")

    @property
    def W_gate(self) -> Float[Tensor, "layer d_model d_mlp"] | None:
        return self._stacked("mlp", "W_gate") if self.config.mlp.gated else None

    @property
    def b_in(self) -> Float[Tensor, "layer d_mlp"]:
        return self._stacked("mlp", "b_in")

    @property
    def W_out(self) -> Float[Tensor, "layer d_mlp d_model"]:
        return self._stacked("mlp", "W_out")

    @property
    def b_out(self) -> Float[Tensor, "layer d_model"]:
        return self._stacked("mlp", "b_out")

    @property
    def W_U(self) -> Float[Tensor, "d_model d_vocab"]:
        """The unembedding, also on a model whose unembedding is W_E transposed (tied)."""
        if self.config.tied_embeddings:
            return self.W_E.T
        w_u = self._parameters["W_U"]  # the parameter this property stands in front of
        assert w_u is not None
        return w_u

    @property
    def W_E_pos(self) -> Float[Tensor, "vocab_and_pos d_model"]:
        """[W_E; W_pos]: token and position embeddings as one basis of the input space."""
        if not hasattr(self, "W_pos") or self.W_pos.shape[0] != self.config.n_ctx:
            raise InputError(
                f"W_E_pos needs a table of positions; pos='{self.config.pos}' embeds none"
            )
        return torch.cat([self.W_E, self.W_pos], dim=0)

    @property
    def QK(self) -> FactoredMatrix:
        """W_Q W_K^T per layer and head, factored: [layer, head, d_model, d_model]."""
        from transformer_lens.FactoredMatrix import FactoredMatrix

        return FactoredMatrix(self.W_Q, self.W_K.transpose(-2, -1))

    @property
    def OV(self) -> FactoredMatrix:
        """W_V W_O per layer and head, factored: [layer, head, d_model, d_model]."""
        from transformer_lens.FactoredMatrix import FactoredMatrix

        return FactoredMatrix(self.W_V, self.W_O)

    @property
    def all_head_labels(self) -> HeadLabels:
        """["L0H0", "L0H1", ...]: a list (TransformerLens 4's property) that can also be
        called (`all_head_labels()`, 3's method)."""
        heads = range(self.config.n_heads)
        return HeadLabels(f"L{layer}H{h}" for layer in range(self.config.n_layers) for h in heads)

    def all_composition_scores(self, mode: str) -> Float[Tensor, "layer head layer2 head2"]:
        """How much each head's output feeds each later head's query ("Q"), key ("K") or
        value ("V"): ||OV_1 C_2|| / (||OV_1|| ||C_2||) with Frobenius norms, zero unless the
        first head's layer is earlier (TransformerLens's `all_composition_scores`)."""
        left = self.OV
        match mode:
            case "Q":
                right = self.QK
            case "K":
                right = self.QK.T
            case "V":
                right = left
            case _:
                raise InputError(f"mode must be 'Q', 'K' or 'V', not {mode!r}")
        n = self.config.n_layers
        # every (left head, right head) pair: [layer, head, 1, 1] against [1, 1, layer, head],
        # norms from the collapsed factors (the full products are never formed)
        left_ = left.unsqueeze(2).unsqueeze(3).collapse_l()
        right_ = right.unsqueeze(0).unsqueeze(1).collapse_r()
        product = (left_ @ right_).norm(dim=[-2, -1])
        norms = product / left_.norm(dim=[-2, -1]) / right_.norm(dim=[-2, -1])
        layers = torch.arange(n, device=norms.device)
        earlier = layers[:, None, None, None] < layers[None, None, :, None]
        return torch.where(earlier, norms, torch.zeros_like(norms))

    # ----- direct logit attribution -------------------------------------------------------
    def tokens_to_residual_directions(
        self, tokens: str | int | Tensor
    ) -> Float[Tensor, "... d_model"]:
        """The unembedding direction of each token (a text of one token, an id, or ids of
        any shape): the vector whose dot product with the final norm's output is its logit,
        less b_U (TransformerLens's)."""
        if isinstance(tokens, str):
            tokens = cast(Any, self).to_single_token(tokens)  # the lens's (a subclass)
        ids = torch.as_tensor(tokens, device=self.b_U.device)
        if ids.numel() == 1:  # one token, however wrapped: [d_model], as TransformerLens
            ids = ids.reshape(())
        return self.W_U[:, ids].movedim(0, -1)

    def accumulated_bias(
        self, layer: int, mlp_input: bool = False, include_mlp_biases: bool = True
    ) -> Float[Tensor, " d_model"]:
        """The sum of the output biases written to the residual stream before block
        `layer` reads it (attention's b_O and the MLP's b_out of the blocks before it; with
        `mlp_input`, block `layer`'s b_O too), as TransformerLens's."""
        total = torch.zeros(self.config.d_model, device=self.b_U.device, dtype=self.b_U.dtype)
        for index in range(layer + (1 if mlp_input else 0)):
            block = self.block(index)
            if block.attn.biased:
                total = total + block.attn.b_O
            mlp = block.mlp if index < layer and include_mlp_biases else None
            if mlp is not None and mlp.biased:
                total = total + mlp.b_out
        return total

    # ----- weight processing (workbench.lens.processing) -----------------------------------
    def fold_layer_norm(self, fold_biases: bool = True, center_weights: bool = True) -> None:
        from workbench.lens.processing import fold_layer_norm

        fold_layer_norm(self, fold_biases, center_weights)
        self._refresh_norm_type()

    def center_writing_weights(self) -> None:
        from workbench.lens.processing import center_writing_weights

        center_writing_weights(self)

    def center_unembed(self) -> None:
        from workbench.lens.processing import center_unembed

        center_unembed(self)

    def fold_value_biases(self) -> None:
        from workbench.lens.processing import fold_value_biases

        fold_value_biases(self)

    def process_weights_(
        self,
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        fold_value_biases: bool = True,
    ) -> list[str]:
        """TransformerLens's `process_weights_`: the steps this architecture allows, in
        place; returns why any step was skipped (`workbench.lens.processing`)."""
        from workbench.lens.processing import process_weights

        skipped = process_weights(
            self, fold_ln, center_writing_weights, center_unembed, fold_value_biases
        )
        self._refresh_norm_type()
        return skipped

    def _refresh_norm_type(self) -> None:
        """`cfg.normalization_type` is TransformerLens's "LNPre"/"RMSPre" once the norms'
        scales and biases are folded away."""
        lens_cfg = self.__dict__.get("lens_cfg")
        pure = self.__dict__.get("lens_pure_norms", False)
        if lens_cfg is not None and pure and lens_cfg.normalization_type in ("LN", "RMS"):
            lens_cfg.normalization_type += "Pre"

    @property
    def embed(self) -> Part:
        """`embed(tokens)`: W_E's rows, [batch, pos, d_model]."""
        w_e = self.W_E
        return Part({"W_E": w_e}, lambda tokens: w_e[tokens])

    @property
    def pos_embed(self) -> Part:
        """`pos_embed(tokens, past_kv_pos_offset=0, attention_mask=None)`: the position
        table's rows for each token, as TransformerLens's PosEmbed (with a mask, positions
        count the real tokens and padding gets zeros)."""
        if not self.config.pos.embeds or self.W_pos.shape[0] != self.config.n_ctx:
            raise InputError(f"pos='{self.config.pos}' has no table of positions (pos_embed)")
        w_pos = self.W_pos

        def compute(
            tokens: Tensor, past_kv_pos_offset: int = 0, attention_mask: Tensor | None = None
        ) -> Tensor:
            batch, n = tokens.shape
            if attention_mask is None:
                rows = w_pos[past_kv_pos_offset : past_kv_pos_offset + n]
                return rows.expand(batch, -1, -1).clone()
            mask = attention_mask[:, -n:].bool()
            positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, -n:]
            return w_pos[positions].masked_fill(~mask[..., None], 0.0)

        return Part({"W_pos": w_pos}, compute)

    @property
    def unembed(self) -> Part:
        """`unembed(resid)`: resid W_U + b_U, the logits of the final norm's output."""
        w_u, b_u = self.W_U, self.b_U
        bias = b_u if self.config.bias else 0.0  # a model without biases adds no b_U
        return Part({"W_U": w_u, "b_U": b_u}, lambda resid: resid @ w_u + bias)

    def tl_state_dict(self) -> dict[str, Tensor]:
        """The weights under TransformerLens's `HookedTransformer` names and shapes
        (`embed.W_E`, `pos_embed.W_pos`, `blocks.{l}.ln1.w`, `blocks.{l}.attn.W_Q`, grouped
        keys and values as `_W_K`/`_W_V`/`_b_K`/`_b_V`, `unembed.W_U`, ...), for a model
        TransformerLens can express: token input, learned or no embedded positions,
        separate queries and keys, one stream; other models are refused by name."""
        c = self.config
        if not c.input.tokens or c.wiring not in (Wiring.SEQUENTIAL, Wiring.PARALLEL):
            raise InputError(
                f"TransformerLens has no HookedTransformer for input='{c.input}', "
                f"wiring='{c.wiring.value}'"
            )
        out: dict[str, Tensor] = {"embed.W_E": self.W_E}
        if c.pos.embeds:
            out["pos_embed.W_pos"] = self.pos_embed.W_pos
        grouped = c.kv_heads != c.n_heads
        for key, value in self.state_dict().items():
            if not key.startswith("blocks."):
                continue
            _, layer, *rest = key.split(".")
            leaf = ".".join(rest)
            if grouped and leaf in ("attn.W_K", "attn.W_V", "attn.b_K", "attn.b_V"):
                leaf = leaf.replace("attn.", "attn._")
            out[f"blocks.{layer}.{leaf}"] = value
        for norm in ("w", "b"):
            if self.ln_final is not None and hasattr(self.ln_final, norm):
                out[f"ln_final.{norm}"] = getattr(self.ln_final, norm)
        out["unembed.W_U"] = self.W_U
        out["unembed.b_U"] = self.b_U
        return out
