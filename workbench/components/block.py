"""Transformer blocks: how attention and MLP write to the residual stream.

- pre-norm sequential (GPT-2): x + attn(ln1(x)), then + mlp(ln2(.));
- post-norm sequential (Vaswani et al. 2017): ln1(x + attn(x)), then ln2(. + mlp(.));
- parallel (GPT-J, Wang & Komatsuzaki 2021; GPT-NeoX): x + attn(ln1(x)) + mlp(ln2(x));
- dual-stream (Kerce & Fox 2026, "The Dual-Stream Transformer"): the state is a token stream
  t, written only by attention, and a context stream e, written only by the MLP. Both sublayers
  read the normalised sum x = t + e, which the resid hooks hold:
  t += attn(ln1(t + e)), then e += mlp(ln2(t + e)). With dense head mixing the sum evolves
  exactly as a pre-norm sequential stream; what the split adds is attribution by construction
  (`hook_token_stream`, `hook_context_stream`) and, with structured head mixing, heads that
  keep to their own channels. An edit of a resid hook goes into the token stream, so patching
  the residual stream means what it means for a sequential model.

Where a block reads the stream (attention's input, the MLP's input), a `StreamReader` may give
each reader its own version of it: per head and per q/k/v for attention. Edge patching uses
this to change what flows along one edge only; a forward pass without a reader is unchanged.

TransformerLens's optional input hooks (`set_input_hooks`; off by default, as there) put the
same choice on hook points: `hook_attn_in` (the stream each head reads, [batch, pos, head,
d_model]), `hook_q_input` / `hook_k_input` / `hook_v_input` (per query head for q, per key/value
head for k and v) and `hook_mlp_in` (the MLP's input before its norm). Attention's norm then
normalises each head's copy (its hooks gain a head axis), as in TransformerLens. A staged run's
reader, where given, supplies those inputs instead and the input hooks do not fire.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import cast

from jaxtyping import Float
from torch import Tensor, nn

from workbench.components.attention import (
    NO_PADDING,
    Sequences,
    SparseHeadInputs,
    make_attention,
)
from workbench.components.hooks import RESID, HookPoint
from workbench.components.mlp import make_mlp
from workbench.components.norm import make_norm
from workbench.config import ModelConfig, NormPlacement, Wiring
from workbench.errors import InputError

Resid = Float[Tensor, "batch pos d_model"]
Streams = tuple[Resid, Resid]  # dual-stream state: (token stream, context stream)
# a run computing the last positions alone (`last`) reads every key but outputs fewer queries
Keys = Float[Tensor, "batch key_pos d_model"]
Queries = Float[Tensor, "batch query_pos d_model"]
HeadInputs = Float[Tensor, "batch pos head d_model"] | SparseHeadInputs


class StreamReader(ABC):
    """Gives the readers of the stream their inputs (before any read-side norm), in a staged
    run (`workbench.staged`). A reader whose `narrowable` is True also serves a run whose last
    block computes the position `end - 1` alone (`Transformer.finish` with `keep`): after
    `narrow(end)`, a stream of n positions it is handed holds positions end - n .. end - 1,
    and hooks it placed in the last block see those positions only."""

    @property
    def narrowable(self) -> bool:
        return False

    @abstractmethod
    def attention(self, layer: int, x: Resid) -> tuple[HeadInputs, HeadInputs, HeadInputs]:
        """Per-head query, key and value inputs (keys and values per kv head)."""

    @abstractmethod
    def mlp(self, layer: int, x: Resid) -> Resid: ...

    @abstractmethod
    def final(self, x: Resid) -> Resid:
        """The input of the final norm and unembedding (the logits' reader)."""

    def narrow(self, end: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} is not narrowable")


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        cfg = cfg.layer(layer)  # the layer's attention kind, window, positions and MLP
        self.wiring = cfg.wiring
        self.post_norm = cfg.norm_placement is NormPlacement.POST
        self.hook_resid_pre = HookPoint(*RESID)
        self.ln1 = make_norm(cfg)
        self.attn = make_attention(cfg)
        self.hook_attn_out = HookPoint(*RESID)
        if cfg.wiring is not Wiring.PARALLEL:
            self.hook_resid_mid = HookPoint(*RESID)
        self.ln2 = make_norm(cfg) if cfg.has_mlp else None
        self.mlp = make_mlp(cfg)
        if self.mlp is not None:
            self.hook_mlp_out = HookPoint(*RESID)
        self.hook_resid_post = HookPoint(*RESID)
        if cfg.depth_weighted:
            self.hook_dwa = HookPoint(*RESID)  # the depth-weighted average fed to the next block
        if cfg.wiring is Wiring.DUAL_STREAM:
            self.hook_token_stream = HookPoint(*RESID)  # the token stream after attention wrote
            self.hook_context_stream = HookPoint(*RESID)  # the context stream after the MLP wrote

    def set_input_hooks(self, *, attn_in: bool, split_qkv: bool, mlp_in: bool) -> None:
        """Add or remove TransformerLens's optional input hook points (the module docstring);
        the model's `setup()` must index them afterwards. `attn_in` needs one key/value head
        per query head, as in TransformerLens."""
        cfg = self.attn.cfg
        if attn_in and cfg.kv_heads != cfg.n_heads:
            raise InputError(
                f"hook_attn_in gives each of the {cfg.n_heads} query heads its input, but this "
                f"model's keys and values have {cfg.kv_heads} heads: use the split q/k/v input "
                "hooks (set_use_split_qkv_input) instead"
            )
        heads = ("batch", "pos", "head", "d_model")
        kv_heads = ("batch", "pos", "kv_head", "d_model")
        wanted = {
            "hook_attn_in": (attn_in, heads),
            "hook_q_input": (split_qkv, heads),
            "hook_k_input": (split_qkv, kv_heads),
            "hook_v_input": (split_qkv, kv_heads),
            "hook_mlp_in": (mlp_in and self.mlp is not None, RESID),
        }
        for name, (on, dims) in wanted.items():
            if on and not hasattr(self, name):
                setattr(self, name, HookPoint(*dims))
            elif not on and hasattr(self, name):
                delattr(self, name)

    def forward(self, x: Resid | Streams, seqs: Sequences = NO_PADDING) -> Resid | Streams:
        """The block's output stream."""
        return self.staged(x, seqs)

    def staged(
        self,
        x: Keys | Streams,
        seqs: Sequences = NO_PADDING,
        reader: StreamReader | None = None,
        last: int | None = None,
    ) -> Queries | Streams:
        """The block in a staged run (`workbench.staged`): a `reader` gives its readers their
        inputs; with `last`, only the last `last` positions' outputs are computed (their
        queries read the keys and values of every position): what a reader of the final
        position alone needs of the last block (`Transformer.finish`)."""
        if isinstance(x, tuple):
            if last is not None:
                raise ValueError("`last` runs a single stream")
            return self._dual_stream(*x, seqs, reader)
        return self._single(x, seqs, reader, last)

    def _single(
        self, x: Keys, seqs: Sequences, reader: StreamReader | None, last: int | None
    ) -> Queries:
        x = self.hook_resid_pre(x)
        out: Queries = x if last is None else x[:, x.shape[1] - last :]
        match self.wiring:
            case Wiring.SEQUENTIAL if self.post_norm:
                attn_out = self._attention(x, seqs, reader, last)
                x = self.hook_resid_mid(_norm(self.ln1, out + attn_out))
                if self.mlp is None:
                    return self.hook_resid_post(x)
                return self.hook_resid_post(_norm(self.ln2, x + self._mlp(x, reader)))
            case Wiring.SEQUENTIAL:
                x = self.hook_resid_mid(out + self._attention(x, seqs, reader, last))
                return self.hook_resid_post(x + self._mlp(x, reader))
            case Wiring.PARALLEL:
                attn_out = self._attention(x, seqs, reader, last)
                return self.hook_resid_post(out + attn_out + self._mlp(out, reader))
        raise TypeError("a dual-stream block takes (token stream, context stream)")

    def hooked_after_input(self) -> bool:
        """Whether any hook point past `hook_resid_pre` has a hook (they would see only the
        positions a `last` run computes)."""
        return any(
            isinstance(m, HookPoint) and m is not self.hook_resid_pre and m.has_hooks()
            for m in self.modules()
        )

    def _dual_stream(
        self, token: Resid, context: Resid, seqs: Sequences, reader: StreamReader | None
    ) -> Streams:
        x, token = _combined(self.hook_resid_pre, token, context)
        token = self.hook_token_stream(token + self._attention(x, seqs, reader))
        x, token = _combined(self.hook_resid_mid, token, context)
        context = self.hook_context_stream(context + self._mlp(x, reader))
        _, token = _combined(self.hook_resid_post, token, context)
        return token, context

    def _attention(
        self, x: Keys, seqs: Sequences, reader: StreamReader | None, last: int | None = None
    ) -> Queries:
        """Attention's output (hooked) from the stream x; a post-norm block reads x as is.
        With `last`, the queries are the last `last` positions."""
        norm = None if self.post_norm else self.ln1
        if reader is None and self._split_inputs:
            q_in, k_in, v_in = self._hooked_inputs(x)
            if last is not None:
                q_in = _tail(q_in, last)
            q_in, k_in, v_in = (_norm(norm, t) for t in (q_in, k_in, v_in))
            out = self.attn(q_in, k_in, v_in, seqs=seqs, layer=self.layer)
        elif reader is None:
            normed = x if norm is None else norm(x)
            q_in = normed if last is None else normed[:, normed.shape[1] - last :]
            out = self.attn(q_in, normed, normed, seqs=seqs, layer=self.layer)
        else:
            q_in, k_in, v_in = reader.attention(self.layer, x)
            if last is not None:
                q_in = _tail(q_in, last)
            q_in, k_in, v_in = (_norm(norm, t) for t in (q_in, k_in, v_in))
            out = self.attn(q_in, k_in, v_in, seqs=seqs, layer=self.layer)
        return self.hook_attn_out(out)

    def _mlp(self, x: Resid, reader: StreamReader | None) -> Resid | float:
        """The MLP's output (hooked) from the stream x, or 0 without an MLP."""
        if self.mlp is None:
            return 0.0
        if reader is not None:
            x = reader.mlp(self.layer, x)
        elif "hook_mlp_in" in self._modules:
            x = self._input_hook("hook_mlp_in")(x.clone())
        return self.hook_mlp_out(self.mlp(x if self.post_norm else _norm(self.ln2, x)))

    @property
    def _split_inputs(self) -> bool:
        """Whether attention's inputs go through TransformerLens's input hooks."""
        modules = self._modules
        return "hook_attn_in" in modules or "hook_q_input" in modules

    def _hooked_inputs(self, x: Keys) -> tuple[Tensor, Tensor, Tensor]:
        """Attention's per-head inputs through the input hooks, as TransformerLens's block
        makes them: each a copy of the stream per head; with split q/k/v inputs those are
        what attention reads (`hook_attn_in` fires but is not read, as there)."""
        cfg = self.attn.cfg
        per_head = x[:, :, None].expand(-1, -1, cfg.n_heads, -1)
        if "hook_attn_in" in self._modules:
            per_head = self._input_hook("hook_attn_in")(per_head.clone())
        if "hook_q_input" not in self._modules:
            return per_head, per_head, per_head
        per_kv_head = x[:, :, None].expand(-1, -1, cfg.kv_heads, -1)
        return (
            self._input_hook("hook_q_input")(per_head.clone()),
            self._input_hook("hook_k_input")(per_kv_head.clone()),
            self._input_hook("hook_v_input")(per_kv_head.clone()),
        )

    def _input_hook(self, name: str) -> HookPoint:
        return cast(HookPoint, self._modules[name])


def _combined(hook: HookPoint, token: Resid, context: Resid) -> Streams:
    """The hooked sum of the two streams, and the token stream carrying any edit of it."""
    x = token + context
    if not hook.has_hooks():
        return hook(x), token
    before = x.clone()  # hooks may edit x in place
    x = hook(x)
    return x, token + (x - before)


def _tail(x: Tensor | SparseHeadInputs, n: int) -> Tensor | SparseHeadInputs:
    """The last n positions of a stream or of per-head inputs."""
    return x.tail(n) if isinstance(x, SparseHeadInputs) else x[:, x.shape[1] - n :]


def _norm(norm: nn.Module | None, x: Resid | HeadInputs) -> Resid | HeadInputs:
    if norm is None:
        return x
    return x.map(norm) if isinstance(x, SparseHeadInputs) else norm(x)
