"""The hooked transformer: embeddings, a stack of blocks, a final norm and the unembedding.

It is a TransformerLens `HookedRootModule`, so `run_with_hooks`, `hooks()`, `run_with_cache`
(returning an `ActivationCache`) and `transformer_lens.patching` work on it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, cast

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from torch import Tensor, nn
from transformer_lens import ActivationCache

try:  # TransformerLens 4 exports it at the top (importing it from hook_points warns there)
    from transformer_lens import HookedRootModule
except ImportError:  # TransformerLens 3
    from transformer_lens.hook_points import HookedRootModule

from workbench.components.attention import NO_PADDING, Sequences
from workbench.components.block import Block, StreamReader
from workbench.components.cache import KVCache, cache_unsupported
from workbench.components.embed import PatchEmbed, PositionGenerator, SeriesEmbed
from workbench.components.hooks import RESID, HookPoint
from workbench.components.norm import MLMHead, make_norm
from workbench.config import ModelConfig, Wiring
from workbench.errors import CheckpointError, ConfigError, InputError, unknown
from workbench.options import Peg, Tokens
from workbench.schema import HookSpec, hook_schema

if TYPE_CHECKING:
    from workbench.lens.config import TLConfig


def _tie_parameters(block: nn.Module, owner: nn.Module) -> None:
    """Make every parameter of `block` the very parameter of `owner` (weight sharing)."""
    for name, param in owner.named_parameters():
        *path, leaf = name.split(".")
        setattr(block.get_submodule(".".join(path)) if path else block, leaf, param)


# dtypes that index an embedding as ids (uint8 and bool tensors index as masks)
ID_DTYPES = (torch.int64, torch.int32)


def _real_tokens(mask: Tensor, validate: bool) -> Bool[Tensor, "batch pos"]:
    """The attention mask as booleans. With `validate`, refuse what `.bool()` would misread
    (values other than 0 and 1: an additive mask of 0 and -inf, weights) and rows with no
    real token, in one host sync."""
    if mask.dtype.is_complex:
        raise InputError(f"attention_mask must hold 0 and 1, got dtype {mask.dtype}")
    valid = mask if mask.dtype is torch.bool else mask != 0
    if not validate:
        return valid
    checks = [valid.any(-1).all()]
    if mask.dtype is not torch.bool:
        checks.append(((mask == 0) | (mask == 1)).all())
    rows_ok, *binary = torch.stack(checks).tolist()
    if binary and not binary[0]:
        odd = mask[(mask != 0) & (mask != 1)].unique()[:5].tolist()
        raise InputError(
            f"attention_mask must hold 1 (a real token) and 0 (padding) only, got {odd}; "
            "from an additive mask (0 and -inf) pass (mask == 0).long()"
        )
    if not rows_ok:
        empty = (~valid.any(-1)).nonzero().flatten()[:5].tolist()
        raise InputError(
            f"attention_mask rows {empty} have no real token (all 0): every sequence needs at "
            "least one 1; drop the empty rows from the batch"
        )
    return valid


@dataclass(frozen=True)
class Stream:
    """What a forward pass carries between blocks: the state that block `layer` reads, and the
    batch's padding. The state is the residual stream [batch, pos, d_model]; for a dual-stream
    model the pair (token stream, context stream); for a depth-weighted one (DenseFormer)
    the embedding and every block output so far."""

    layer: int
    state: Tensor | tuple[Tensor, ...]
    seqs: Sequences

    def tile(self, times: int) -> Stream:
        """The batch repeated `times` times: row `k * batch + b` is row `b` (for running many
        variants of one batch from here on, stacked on the batch dimension)."""

        def rows(t: Tensor) -> Tensor:
            return t.repeat(times, *([1] * (t.ndim - 1)))

        def some(t: Tensor | None) -> Tensor | None:
            return None if t is None else rows(t)

        state = self.state
        tiled = tuple(map(rows, state)) if isinstance(state, tuple) else rows(state)
        seqs = replace(
            self.seqs, padding=some(self.seqs.padding), position_ids=some(self.seqs.position_ids)
        )
        return Stream(self.layer, tiled, seqs)


class Transformer(HookedRootModule):
    """A decoder or encoder transformer whose every activation sits on a hook point."""

    # what the config's input kind and embedded positions install (components/embed.py,
    # components/positions/embedded.py)
    W_E: nn.Parameter  # token inputs: [d_vocab, d_model]
    W_pos: Tensor  # learned (a parameter), sinusoidal (a buffer) or Abacus positions
    hook_pos_embed: HookPoint
    digit_ids: Tensor  # Abacus positions: the token ids that are digits (a buffer)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.input_embed: PatchEmbed | SeriesEmbed | None = None  # None: token ids
        self.inputs = config.input.component(config)  # W_E, or the input_embed module
        self.inputs.install(self)
        self.hook_embed = HookPoint(*RESID)
        self.embedded_positions = config.pos.embedding(config)  # W_pos and hook_pos_embed
        self.embedded_positions.install(self)
        self.ln_embed = make_norm(config) if config.embed_norm else None
        self.blocks = nn.ModuleList(Block(config, layer) for layer in range(config.n_layers))
        for layer, owner in enumerate(config.weight_ties or ()):
            if owner != layer:  # each iteration keeps its own hook points, shares parameters
                _tie_parameters(self.blocks[layer], self.blocks[owner])
        self.dwa_weights: nn.ParameterList | None = None
        if config.depth_weighted:  # weights over [embedding, block 0 out, ..., block l out]
            self.dwa_weights = nn.ParameterList(
                nn.Parameter(torch.eye(layer + 2)[-1]) for layer in range(config.n_layers)
            )
        self.peg = PositionGenerator(config) if isinstance(config.pos, Peg) else None
        self.ln_final = make_norm(config) if config.has_final_norm else None
        self.mlm = MLMHead(config) if config.mlm_head else None
        if not config.tied_embeddings:
            self.W_U = nn.Parameter(torch.empty(config.d_model, config.vocab_out))
        self.b_U = nn.Parameter(torch.zeros(config.vocab_out), requires_grad=config.bias)
        self.hook_logits = HookPoint("batch", "pos", "d_vocab")
        # randomness the model itself draws in training (Abacus offsets); seeded by init_weights
        self.train_generator = torch.Generator().manual_seed(0)
        self.setup()  # and eval mode

    def setup(self) -> None:
        """`HookedRootModule.setup`: every module named, modules and hook points indexed by
        name; and every module in eval mode (`eval()`), in the same walk. The plain `name`
        and `training` attributes are written directly, not through `nn.Module`'s
        per-attribute checks, which were a tenth of building a compiled RASP model."""
        self.mod_dict, self.hook_dict = {}, {}
        for name, module in self.named_modules():
            module.__dict__["training"] = False
            if name:
                module.__dict__["name"] = name
                self.mod_dict[name] = module
                if isinstance(module, HookPoint):
                    self.hook_dict[name] = module

    # ----- TransformerLens compatibility -------------------------------------------------
    @property
    def cfg(self) -> TLConfig:
        """TransformerLens's config fields for this model, as its helpers (patching, the
        ActivationCache) read them (`workbench.lens.config`; the lens keeps one mutable
        object of them, with its tokenizer's settings)."""
        from workbench.lens.config import tl_config  # the lens imports this module

        key = (self.config, self.b_U.device, self.b_U.dtype)
        cached = self.__dict__.get("tl_cfg")
        if cached is None or cached[0] != key:  # derived once per config, device and dtype
            cached = self.__dict__["tl_cfg"] = (
                key,
                tl_config(self.config, device=key[1], dtype=key[2]),
            )
        return cached[1]

    @property
    def unembed_matrix(self) -> Float[Tensor, "d_model d_vocab"]:
        return self.W_E.T if self.config.tied_embeddings else self.W_U

    # ----- forward -----------------------------------------------------------------------
    def forward(
        self,
        tokens: Int[Tensor, "batch pos"] | Float[Tensor, "batch channel height width"],
        *,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        position_ids: Int[Tensor, "batch pos"] | None = None,
        validate: bool = True,
        cache: KVCache | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Logits at every position. Text models take token ids [batch, pos]; vision models
        (input='patches') take images, and their class logits sit at position 0; series
        models take [batch, time, variate] and return forecasts [batch, variate, horizon].

        Padded batches: `attention_mask` is 1 for real tokens and 0 for padding, on either
        side; no token attends to padding. Positions then count real tokens only
        (cumsum(mask) - 1), so a left-padded sequence gets the logits it gets alone; pass
        `position_ids` to set them yourself (learned, sinusoidal and rotary positions).

        With a `cache` (`KVCache`, causal models), the tokens continue the sequence the cache
        holds: they sit at positions cache.length, cache.length + 1, ... and attend to the
        cached keys and values, which the run extends unless the cache is `frozen()`."""
        return self.finish(self.start(tokens, attention_mask, position_ids, validate, cache))

    def start(
        self,
        tokens: Int[Tensor, "batch pos"] | Float[Tensor, "batch channel height width"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        position_ids: Int[Tensor, "batch pos"] | None = None,
        validate: bool = True,
        cache: KVCache | None = None,
    ) -> Stream:
        """The embedded input: the stream that block 0 reads (arguments as `forward`)."""
        reason = None if cache is None else cache_unsupported(self.config)
        if reason is not None:  # whatever the input, this model has no cached runs
            raise InputError(f"this model cannot run with a key/value cache: {reason}")
        if validate:  # then the input: the other arguments are checked against its shape
            self.inputs.check(self, tokens)
        seqs = self._sequences(tokens, attention_mask, position_ids, validate)
        if cache is not None:
            seqs = self._cached(tokens, seqs, cache)
        x = self.hook_embed(self.inputs.embed(self, tokens))
        x = self.embedded_positions.add(self, x, tokens, seqs)
        if self.ln_embed is not None:
            x = self.ln_embed(x)
        if self.config.wiring is Wiring.DUAL_STREAM:  # token stream, context stream
            return Stream(0, (x, torch.zeros_like(x)), seqs)
        if self.dwa_weights is not None:  # DenseFormer keeps every block output so far
            return Stream(0, (x,), seqs)
        return Stream(0, x, seqs)

    def block(self, layer: int) -> Block:
        """Block `layer` (negative: from the end), typed."""
        return cast(Block, self.blocks[layer])

    def advance(self, stream: Stream, to_layer: int, reader: StreamReader | None = None) -> Stream:
        """Run blocks `stream.layer` .. `to_layer - 1`: the stream that block `to_layer` reads.
        With `start` and `finish` this runs a forward pass in pieces, so a computation shared
        by many runs (a clean prefix) is done once and `Stream.tile`d. A `reader` gives each
        reader of the stream its own input (edge patching, `circuits.edges`)."""
        if not stream.layer <= to_layer <= self.config.n_layers:
            raise InputError(
                f"cannot advance a stream at layer {stream.layer} to layer {to_layer}: "
                f"the target must lie in {stream.layer}..{self.config.n_layers}"
            )
        state = stream.state
        for layer in range(stream.layer, to_layer):
            block = self.block(layer)
            if self.dwa_weights is not None:  # DenseFormer (Pagliardini et al. 2024)
                state = (
                    *state,
                    block(state[-1] if layer == 0 else self._dwa_in(state), stream.seqs),
                )
                continue
            single_or_pair = cast("Tensor | tuple[Tensor, Tensor]", state)  # no DenseFormer
            state = block.staged(single_or_pair, stream.seqs, reader)
            if layer == 0 and self.peg is not None:
                state = self.peg(state)
        return Stream(to_layer, state, stream.seqs)

    def finish(
        self,
        stream: Stream,
        reader: StreamReader | None = None,
        keep: int | Int[Tensor, " batch"] | None = None,
        columns: Int[Tensor, " column"] | None = None,
    ) -> Float[Tensor, "batch pos d_vocab"]:
        """Run the remaining blocks, the final norm and the unembedding: the logits. With
        `keep` (a position, or one per row), only that position's logits are computed
        ([batch, 1, d_vocab]): a metric that reads one position skips the rest of the
        unembedding, often the largest matrix of the model; with `columns` (token ids), only
        those tokens' logits ([..., column]), for a metric that reads a few logits. A causal model reading one
        position (`keep` an int) also runs its last block at that position alone, unless
        something hooks that block past its input (`Block.hooked_after_input`)."""
        if isinstance(keep, int) and self._last_block_narrows(stream, reader):
            state = self.advance(stream, self.config.n_layers - 1, reader).state
            assert isinstance(state, Tensor)  # one stream (`_last_block_narrows`)
            end = keep % state.shape[1] + 1
            state = state[:, :end]  # the keys a causal query reads
            if reader is not None:
                reader.narrow(end)
            state = self.block(-1).staged(state, stream.seqs, reader, last=1)
            stream, keep = Stream(self.config.n_layers, state, stream.seqs), 0
        state = self.advance(stream, self.config.n_layers, reader).state
        if isinstance(state, Tensor):
            x = state
        elif self.config.wiring is Wiring.DUAL_STREAM:  # token stream + context stream
            x = state[0] + state[1]
        else:  # DenseFormer: the embedding and every block output so far
            x = self._dwa_in(state)
        if reader is not None:
            x = reader.final(x)
        if isinstance(keep, int):
            x = x[:, keep][:, None]
        elif keep is not None:
            x = x[torch.arange(len(x), device=x.device), keep.to(x.device)][:, None]
        if self.ln_final is not None:
            x = self.ln_final(x)
        if self.mlm is not None:
            x = self.mlm(x)
        weight, bias = self.unembed_matrix.T, self.b_U if self.config.bias else None
        if columns is not None:
            columns = columns.to(weight.device)
            weight, bias = weight[columns], None if bias is None else bias[columns]
        return self.hook_logits(F.linear(x, weight, bias))

    def _last_block_narrows(self, stream: Stream, reader: StreamReader | None) -> bool:
        """Whether `finish` may run the last block at the read position alone: a causal
        model whose past is its keys and values (`cache_unsupported`), one stream, no
        padding or position ids, and no hooks in the last block past its input unless a
        reader that can `narrow` placed them (`StreamReader`)."""
        seqs = stream.seqs
        hooked = self.block(-1).hooked_after_input() if reader is None else not reader.narrowable
        return (
            not hooked
            and stream.layer < self.config.n_layers
            and isinstance(stream.state, Tensor)
            and self.dwa_weights is None
            and seqs.padding is None
            and seqs.position_ids is None
            and (seqs.cache is None or not seqs.cache.grow)
            and cache_unsupported(self.config) is None
        )

    def _sequences(
        self,
        tokens: Tensor,
        attention_mask: Tensor | None,
        position_ids: Tensor | None,
        validate: bool,
    ) -> Sequences:
        """Check the padding inputs against the batch and this architecture."""
        if attention_mask is None and position_ids is None:
            return NO_PADDING
        c = self.config
        shape = tuple(tokens.shape[:2])
        for name, value in (("attention_mask", attention_mask), ("position_ids", position_ids)):
            if value is not None and not isinstance(value, Tensor):
                raise InputError(
                    f"{name} must be a torch.Tensor [batch, pos], got {type(value).__name__}; "
                    f"pass torch.tensor({name})"
                )
            if value is not None and tuple(value.shape) != shape:
                raise InputError(
                    f"{name} must have shape [batch, pos] = {list(shape)} like the tokens, got "
                    f"{list(value.shape)}"
                )
        if not isinstance(c.input, Tokens):
            raise InputError("attention_mask and position_ids are for token inputs")
        unmaskable = [lc.attention for lc in c.layer_configs if not lc.attention.masks_padding]
        if attention_mask is not None and unmaskable:
            raise InputError(
                f"attention='{unmaskable[0]}' cannot skip padding tokens; pass batches of "
                "equal-length sequences (no attention_mask)"
            )
        positioned = c.pos.takes_position_ids
        if position_ids is not None and not positioned:
            raise InputError(
                f"position_ids apply to learned, sinusoidal and rotary positions, not "
                f"pos='{c.pos}' (relative positions need none; pass attention_mask only)"
            )
        valid = None if attention_mask is None else _real_tokens(attention_mask, validate)
        if position_ids is None and positioned and valid is not None:
            position_ids = (valid.long().cumsum(-1) - 1).clamp(min=0)
        elif position_ids is not None:
            if position_ids.dtype not in ID_DTYPES:  # a float would be truncated silently
                raise InputError(
                    f"position_ids must hold integer positions (int64 or int32), got dtype "
                    f"{position_ids.dtype}; round them yourself and pass position_ids.long()"
                )
            position_ids = position_ids.long()
            if validate and position_ids.numel():
                lo, hi = torch.stack(torch.aminmax(position_ids)).tolist()
                if lo < 0 or hi >= c.n_ctx:
                    raise InputError(
                        f"position_ids must lie in 0..{c.n_ctx - 1} (n_ctx), got {lo}..{hi}"
                    )
        return Sequences.of(valid, position_ids)

    def _cached(self, tokens: Tensor, seqs: Sequences, cache: KVCache) -> Sequences:
        """The batch's sequences continuing the cached prefix (`start` checked that this
        model can run with a cache)."""
        if seqs is not NO_PADDING:
            raise InputError("a cached run takes no attention_mask or position_ids")
        start, n = cache.length, tokens.shape[1]
        if start + n > self.config.n_ctx:
            raise InputError(
                f"the cache holds {start} positions and the tokens add {n}: more than "
                f"n_ctx={self.config.n_ctx}"
            )
        return Sequences(cache=cache, offset=start)

    def _dwa_in(self, outputs: tuple[Tensor, ...]) -> Float[Tensor, "batch pos d_model"]:
        """DenseFormer: after block l, the stream is a learned average of the embedding and
        every block output so far (initialised to the last output alone)."""
        layer = len(outputs) - 2
        assert self.dwa_weights is not None
        weights = self.dwa_weights[layer]
        return self.block(layer).hook_dwa(
            torch.einsum("j,jbpd->bpd", weights, torch.stack(outputs))
        )

    def depth_weights(self) -> Float[Tensor, "layer source"]:
        """DenseFormer averaging weights: row l weighs [embedding, block 0, ..., block l]
        (zero-padded on the right); raises for a model without depth-weighted averaging."""
        if self.dwa_weights is None:
            raise ConfigError("this model has no depth-weighted averaging (depth_weighted=False)")
        n = self.config.n_layers
        table = torch.zeros(n, n + 1)
        for layer, weights in enumerate(self.dwa_weights):
            table[layer, : layer + 2] = weights.detach().cpu()
        return table

    def check_tokens(self, tokens: Any) -> None:
        """Raise `InputError` naming the problem unless `tokens` is a valid [batch, pos] batch."""
        if not isinstance(tokens, torch.Tensor):
            raise InputError(
                f"tokens must be a torch.Tensor of token ids, got {type(tokens).__name__}; "
                "tokenize first (task.encode or a tokenizer) and pass torch.tensor(ids)"
            )
        if tokens.dtype not in ID_DTYPES:
            raise InputError(
                f"tokens must hold integer ids, got dtype {tokens.dtype}; use tokens.long() "
                "(ids are int64 or int32: uint8 and bool tensors would index as masks)"
            )
        if tokens.ndim != 2:
            raise InputError(
                f"tokens must have shape [batch, pos], got {tuple(tokens.shape)}; "
                "for one sequence use tokens.unsqueeze(0)"
            )
        if tokens.shape[0] == 0:
            raise InputError("tokens hold no sequences (batch size 0): pass at least one")
        n = tokens.shape[1]
        if n == 0 or n > self.config.n_ctx:
            raise InputError(
                f"sequence length {n} is outside 1..n_ctx={self.config.n_ctx}; "
                "shorten the input or build the model with a larger n_ctx"
            )
        if tokens.numel() == 0:
            return
        lo, hi = torch.stack(torch.aminmax(tokens)).tolist()  # one host sync for both bounds
        if lo < 0 or hi >= self.config.d_vocab:
            raise InputError(
                f"token ids must lie in 0..{self.config.d_vocab - 1} (d_vocab), "
                f"got values from {lo} to {hi}"
            )

    # ----- hooks -------------------------------------------------------------------------
    def hook_specs(self) -> list[HookSpec]:
        """Every hook point with its dimension names, from the config alone."""
        return hook_schema(self.config)

    def _check_hook_name(self, name: str) -> None:
        if name not in self.hook_dict:
            raise unknown("hook point", name, self.hook_dict)

    def _enable_hook_with_name(self, name: str, hook: Callable, dir: Any) -> None:
        self._check_hook_name(name)
        super()._enable_hook_with_name(name, hook, dir)

    def add_hook(self, name: Any, hook: Callable, *args: Any, **kwargs: Any) -> None:
        if isinstance(name, str):
            self._check_hook_name(name)
        super().add_hook(name, hook, *args, **kwargs)

    def run_with_cache(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, *model_args: Any, names_filter: Any = None, **kwargs: Any
    ):  # TransformerLens's, with checked names and the workbench's cache
        """Run the model and return (logits, `ActivationCache`) of the hooks `names_filter` picks."""
        listed = [names_filter] if isinstance(names_filter, str) else names_filter
        if isinstance(listed, list | tuple):
            for name in listed:
                self._check_hook_name(name)
        out, cache = super().run_with_cache(*model_args, names_filter=names_filter, **kwargs)
        return out, ActivationCache(cache, self, has_batch_dim=not kwargs.get("remove_batch_dim"))

    def unique_state_dict(self) -> dict[str, Tensor]:
        """The state dict with each shared (tied) tensor once, under its owner's name."""
        seen: set[tuple[int, tuple[int, ...]]] = set()
        out = {}
        for key, value in self.state_dict().items():
            identity = (value.data_ptr(), tuple(value.shape))
            if value.numel() == 0 or identity not in seen:
                seen.add(identity)
                out[key] = value
        return out

    def load_weights(self, tensors: dict[str, Tensor], source: str) -> None:
        """Load a full set of unique weights (as `unique_state_dict` names them), checking
        every name and shape first; raise `CheckpointError` naming what does not fit, with
        the model untouched."""
        expected = self.unique_state_dict()
        problems = [f"missing tensor {k!r}" for k in expected if k not in tensors]
        problems += [f"unexpected tensor {k!r}" for k in tensors if k not in expected]
        problems += [
            f"{k!r} has shape {tuple(tensors[k].shape)}, the config needs {tuple(v.shape)}"
            for k, v in expected.items()
            if k in tensors and tensors[k].shape != v.shape
        ]
        if problems:
            more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
            raise CheckpointError(
                f"weights of {source} do not match its config: {'; '.join(problems[:5])}{more}"
            )
        with torch.no_grad():
            for name, value in tensors.items():
                expected[name].copy_(value)

    # ----- initialisation ----------------------------------------------------------------
    def init_weights(self, seed: int) -> None:
        """GPT-2 style init: N(0, 0.02), output projections scaled by 1/sqrt(2 n_layers).

        Seeded from `seed` without touching the global random state."""
        gen = torch.Generator(device="cpu").manual_seed(seed)
        self.train_generator.manual_seed(seed + 1)
        out_std = 0.02 / math.sqrt(2 * self.config.n_layers)
        with torch.no_grad():
            for name, p in self.named_parameters():
                leaf = name.rsplit(".", 1)[-1]
                if leaf.startswith("W_") or leaf in ("rel_bias", "shaw_k", "shaw_v", "cls_token"):
                    std = out_std if leaf in ("W_O", "W_out") else 0.02
                    p.copy_(torch.randn(p.shape, generator=gen) * std)
