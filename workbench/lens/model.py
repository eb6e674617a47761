"""TransformerLens's `HookedTransformer` API over a workbench model (issue 20: the lens layer).

`HookedTransformer.from_pretrained(name)` opens a built-in model, a checkpoint directory or a
Hugging Face directory and attaches its tokenizer (`workbench.lens.tokenizer`);
`HookedTransformer.from_model(model, tokenizer)` views an existing model the same way. The
lens is the same model, not a copy: weights, hooks and settings are shared, and every
workbench analysis accepts it. What it adds is TransformerLens's surface:

- strings: `to_tokens` (BOS as `default_prepend_bos` or `prepend_bos`, padding on either
  side, truncation to `n_ctx` with a warning), `to_str_tokens`, `to_string`,
  `to_single_token`, `get_token_position`, `tokenizer`;
- the forward pass: text or token ids, `return_type` ("logits", "loss", "both", None),
  `loss_per_token`, `start_at_layer` / `stop_at_layer`, `attention_mask`; `generate`;
- the stacked weights, circuits and composition scores (`workbench.lens.weights`) and
  `cfg` with TransformerLens's fields (`workbench.lens.config`).

The semantics are TransformerLens's (`HookedTransformer` 2.x/3.x and `TransformerBridge`):
BOS is prepended by id unless the tokenizer adds it itself (and removed when it does but
`prepend_bos` is False); a batch of texts is padded with the padding token and run with an
attention mask; the loss is the mean next-token cross-entropy over the positions the mask
keeps (`lm_cross_entropy_loss`)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.config import Mask, ModelConfig, Wiring
from workbench.errors import InputError
from workbench.lens.config import TLConfig, tl_config
from workbench.lens.hooks import LensHooks
from workbench.lens.logits import lm_cross_entropy_loss, sample_logits
from workbench.model import Stream, Transformer
from workbench.options import Tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)
ReturnType = Literal["logits", "loss", "both"] | None
Side = Literal["left", "right"]


class Output(NamedTuple):
    """`return_type="both"`: the logits and the loss, as TransformerLens returns them."""

    logits: Float[Tensor, "batch pos d_vocab"]
    loss: Tensor


class HookedTransformer(LensHooks):
    """A workbench model with TransformerLens's `HookedTransformer` methods."""

    tokenizer: PreTrainedTokenizerFast | None

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)  # a fresh model (init_weights to initialise it)
        self.set_tokenizer(None)

    @classmethod
    def from_pretrained(
        cls,
        name: str | Path,
        *,
        fold_ln: bool = True,
        center_writing_weights: bool = True,
        center_unembed: bool = True,
        fold_value_biases: bool = True,
        revision: str | None = None,
        device: str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        default_prepend_bos: bool | None = None,
        default_padding_side: Side | None = None,
        allow_nonfinite: bool = False,
    ) -> HookedTransformer:
        """A built-in model, a checkpoint directory, a Hugging Face directory or a Hugging
        Face Hub id (`workbench.load`'s, `revision` pinning it), with the tokenizer or task
        vocabulary it came with; its weights processed as
        TransformerLens's `from_pretrained` processes them by default (`process_weights_`:
        the same numbers, logits equal up to a constant per position from
        `center_unembed`). A step this architecture does not allow is skipped and logged
        (as TransformerLens logs it); `from_pretrained_no_processing` keeps the weights as
        stored."""
        from workbench.api import open_checkpoint
        from workbench.lens.tokenizer import checkpoint_tokenizer

        ckpt = open_checkpoint(
            name, revision=revision, device=device, allow_nonfinite=allow_nonfinite
        )
        source = ckpt.meta.get("source")
        architecture = source.get("architecture") if isinstance(source, dict) else None
        lens = cls.from_model(
            ckpt.model, checkpoint_tokenizer(ckpt), name=str(name), architecture=architecture
        )
        skipped = lens.process_weights_(
            fold_ln, center_writing_weights, center_unembed, fold_value_biases
        )
        for reason in skipped:  # TransformerLens logs the steps it cannot take, too
            log.warning("%s: weight processing skipped %s", name, reason)
        lens.to(_dtype(dtype))  # after processing, which runs in the stored precision
        if default_prepend_bos is not None:
            lens.cfg.default_prepend_bos = default_prepend_bos
        if default_padding_side is not None:
            if default_padding_side not in ("left", "right") or lens.tokenizer is None:
                raise InputError(
                    f"default_padding_side must be 'left' or 'right' and needs a tokenizer, "
                    f"got {default_padding_side!r}"
                )
            lens.tokenizer.padding_side = default_padding_side
            lens.cfg.default_padding_side = default_padding_side
        return lens

    @classmethod
    def from_pretrained_no_processing(
        cls,
        name: str | Path,
        *,
        fold_ln: bool = False,
        center_writing_weights: bool = False,
        center_unembed: bool = False,
        fold_value_biases: bool = False,
        **kwargs: Any,
    ) -> HookedTransformer:
        """`from_pretrained` with the weights as stored unless asked (TransformerLens's)."""
        return cls.from_pretrained(
            name,
            fold_ln=fold_ln,
            center_writing_weights=center_writing_weights,
            center_unembed=center_unembed,
            fold_value_biases=fold_value_biases,
            **kwargs,
        )

    @classmethod
    def from_model(
        cls,
        model: Transformer,
        tokenizer: PreTrainedTokenizerFast | None = None,
        *,
        name: str = "",
        architecture: str | None = None,
    ) -> HookedTransformer:
        """`model` seen through this API: the same modules, weights and hooks (the lens and
        the model share their state; nothing is copied). `name` and `architecture` (the
        Hugging Face class it came from) are `cfg.model_name` and
        `cfg.original_architecture`."""
        if not isinstance(model, Transformer):
            raise InputError(
                f"from_model takes a workbench model (workbench.build or workbench.load), not "
                f"{type(model).__name__}"
            )
        lens = cls.__new__(cls)
        lens.__dict__ = model.__dict__  # one state, two views
        lens.__dict__["lens_source"] = (name, architecture)
        lens.set_tokenizer(tokenizer)
        return lens

    def set_tokenizer(self, tokenizer: PreTrainedTokenizerFast | None) -> None:
        """Attach `tokenizer`, and derive `cfg` again. By default (`cfg.default_prepend_bos`)
        a text starts as the tokenizer starts it when it adds a token of its own (BERT's
        [CLS]), else with BOS when the tokenizer has one and the model is causal (GPT-2's
        end-of-text token)."""
        self.tokenizer = tokenizer
        causal = self.config.mask is Mask.CAUSAL
        has_bos = tokenizer is not None and tokenizer.bos_token_id is not None
        adds = tokenizer is not None and len(tokenizer.encode("")) > 0
        name, architecture = self.__dict__.get("lens_source", ("", None))
        self.__dict__["lens_cfg"] = tl_config(
            self.config,
            device=self.b_U.device,
            dtype=self.b_U.dtype,
            model_name=name,
            original_architecture=architecture,
            default_prepend_bos=adds or (causal and has_bos),
            tokenizer_prepends_bos=adds if tokenizer is not None else None,
        )
        self._refresh_norm_type()

    @property
    def cfg(self) -> TLConfig:  # pyright: ignore[reportIncompatibleMethodOverride]
        """TransformerLens's config fields for this model (`workbench.lens.config`): one
        object, mutable as TransformerLens's is (`cfg.default_prepend_bos = False` changes
        what `to_tokens` does); device and dtype follow the weights."""
        tl_cfg: TLConfig = self.__dict__["lens_cfg"]
        tl_cfg.device, tl_cfg.dtype = self.b_U.device, self.b_U.dtype
        return tl_cfg

    # ----- strings ------------------------------------------------------------------------
    def to_tokens(
        self,
        input: str | list[str],
        prepend_bos: bool | None = None,
        padding_side: Side | None = None,
        move_to_device: bool = True,
        truncate: bool = True,
    ) -> Int[Tensor, "batch pos"]:
        """Token ids [batch, pos] of one text or a list of texts, padded to the longest."""
        return self._encode(input, prepend_bos, padding_side, move_to_device, truncate)[0]

    def _encode(
        self,
        input: str | list[str],
        prepend_bos: bool | None,
        padding_side: Side | None,
        move_to_device: bool,
        truncate: bool,
    ) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"] | None]:
        """The ids of `input` and, for texts of different lengths, the attention mask."""
        tok = self._tokenizer()
        texts = [input] if isinstance(input, str) else input
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise InputError(
                f"pass a text or a non-empty list of texts, not {type(input).__name__}"
            )
        prepend = self.cfg.default_prepend_bos if prepend_bos is None else prepend_bos
        side = padding_side or tok.padding_side
        if side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {side!r}")
        adds_bos = bool(self.cfg.tokenizer_prepends_bos)
        rows = []
        for text in texts:
            ids = list(tok(text)["input_ids"])
            if prepend and not adds_bos:
                if tok.bos_token_id is None:
                    raise InputError("this tokenizer has no BOS token: pass prepend_bos=False")
                ids = [tok.bos_token_id, *ids]
            elif not prepend and adds_bos:
                ids = ids[1:]
            rows.append(ids)
        n_ctx = self.config.n_ctx
        if truncate and any(len(r) > n_ctx for r in rows):
            longest = max(map(len, rows))
            warnings.warn(
                f"truncated a text of {longest} tokens to the model's n_ctx={n_ctx} "
                "(truncate=False keeps every token, and the model then refuses it)",
                stacklevel=3,
            )
            rows = [r[:n_ctx] for r in rows]
        if any(not r for r in rows):
            raise InputError("a text encodes to no tokens: pass a non-empty text or prepend_bos")
        width = max(map(len, rows))
        mask = None
        if any(len(r) != width for r in rows):
            if tok.pad_token_id is None:
                raise InputError(
                    "these texts have different lengths and the tokenizer has no padding "
                    "token: pass them one at a time"
                )
            pad = [[tok.pad_token_id] * (width - len(r)) for r in rows]
            ones = [[1] * len(r) for r in rows]
            zeros = [[0] * (width - len(r)) for r in rows]
            if side == "right":
                rows = [r + p for r, p in zip(rows, pad, strict=True)]
                mask = torch.tensor([o + z for o, z in zip(ones, zeros, strict=True)])
            else:
                rows = [p + r for r, p in zip(rows, pad, strict=True)]
                mask = torch.tensor([z + o for o, z in zip(ones, zeros, strict=True)])
        tokens = torch.tensor(rows, dtype=torch.long)
        if move_to_device:
            tokens = tokens.to(self.b_U.device)
            mask = None if mask is None else mask.to(self.b_U.device)
        return tokens, mask

    def to_str_tokens(
        self,
        input: str | list[str] | Tensor | list[int] | int,
        prepend_bos: bool | None = None,
        padding_side: Side | None = None,
    ) -> list[str] | list[list[str]]:
        """Each token's text: of a text (tokenised as `to_tokens` does), of each text of a
        list, or of ids (a 1-D tensor, a [1, pos] tensor, a list of ids, one id)."""
        tok = self._tokenizer()
        if isinstance(input, list) and input and all(isinstance(t, str) for t in input):
            return [self._str_tokens(cast(str, t), prepend_bos, padding_side) for t in input]
        if isinstance(input, str):
            return self._str_tokens(input, prepend_bos, padding_side)
        ids = torch.as_tensor(input)
        if ids.ndim == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.ndim > 1:
            raise InputError(
                f"to_str_tokens takes one sequence; got ids of shape {tuple(ids.shape)} (pass "
                "tokens[i] for row i)"
            )
        return tok.batch_decode(ids.reshape(-1, 1).tolist(), clean_up_tokenization_spaces=False)

    def _str_tokens(
        self, text: str, prepend_bos: bool | None, padding_side: Side | None
    ) -> list[str]:
        ids = self.to_tokens(text, prepend_bos, padding_side, move_to_device=False)[0]
        return self._tokenizer().batch_decode(
            ids.reshape(-1, 1).tolist(), clean_up_tokenization_spaces=False
        )

    def to_string(self, tokens: Tensor | list[int] | int) -> str | list[str]:
        """The text of ids: one text for a sequence, a list for a batch [batch, pos]."""
        tok = self._tokenizer()
        ids = torch.as_tensor(tokens)
        if ids.ndim == 2:
            return tok.batch_decode(ids.tolist(), clean_up_tokenization_spaces=False)
        if ids.ndim > 2:
            raise InputError(f"to_string takes ids [pos] or [batch, pos], got {tuple(ids.shape)}")
        return tok.decode(ids.reshape(-1).tolist(), clean_up_tokenization_spaces=False)

    def to_single_str_token(self, int_token: int) -> str:
        """The text of one token id."""
        return cast(list[str], self.to_str_tokens(torch.tensor([int_token])))[0]

    def input_to_embed(
        self,
        input: str | list[str] | Tensor,
        prepend_bos: bool | None = None,
        padding_side: Side | None = None,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
    ) -> tuple[Tensor, Tensor, None, Tensor | None]:
        """TransformerLens's: (the residual stream block 0 reads, the tokens, the
        shortformer position embedding (None: the workbench has none), the attention
        mask) of text or token ids."""
        if isinstance(input, str | list):
            tokens, mask = self._encode(input, prepend_bos, padding_side, True, True)
            attention_mask = mask if attention_mask is None else attention_mask
        else:
            tokens = input
        self._check_one_stream("input_to_embed")
        state = self.start(tokens, attention_mask).state
        assert isinstance(state, Tensor)  # one stream (checked above)
        return state, tokens, None, attention_mask

    def to_single_token(self, string: str) -> int:
        """The id of a text that is exactly one token (no BOS)."""
        ids = self.to_tokens(string, prepend_bos=False, move_to_device=False)[0]
        if len(ids) != 1:
            raise InputError(f"{string!r} is {len(ids)} tokens, not one: {self.to_str_tokens(ids)}")
        return int(ids[0])

    def get_token_position(
        self,
        single_token: str | int,
        input: str | Tensor,
        mode: Literal["first", "last"] = "first",
        prepend_bos: bool | None = None,
        padding_side: Side | None = None,
    ) -> int:
        """The position of `single_token` (its text or id) in `input` (a text, tokenised as
        `to_tokens` does, or ids [pos] / [1, pos]): its first or last occurrence."""
        if isinstance(input, str):
            tokens = self.to_tokens(input, prepend_bos, padding_side, move_to_device=False)
        else:
            tokens = torch.as_tensor(input)
        if tokens.ndim == 2 and tokens.shape[0] == 1:
            tokens = tokens[0]
        if tokens.ndim != 1:
            raise InputError(
                f"get_token_position takes one sequence, got shape {tuple(tokens.shape)}"
            )
        token = (
            self.to_single_token(single_token) if isinstance(single_token, str) else single_token
        )
        found = (tokens.cpu() == token).nonzero().flatten().tolist()
        if not found:
            raise InputError(f"token {token} ({self.to_str_tokens(token)}) is not in the input")
        if mode not in ("first", "last"):
            raise InputError(f"mode must be 'first' or 'last', got {mode!r}")
        return found[0] if mode == "first" else found[-1]

    def _tokenizer(self) -> PreTrainedTokenizerFast:
        if self.tokenizer is None:
            raise InputError(
                "this model has no tokenizer (no tokenizer.json and no task vocabulary): pass "
                "token ids, or attach one with model.set_tokenizer(tokenizer)"
            )
        return self.tokenizer

    # ----- forward ------------------------------------------------------------------------
    def forward(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        input: str | list[str] | Tensor,
        return_type: ReturnType = "logits",
        loss_per_token: bool = False,
        prepend_bos: bool | None = None,
        padding_side: Side | None = None,
        start_at_layer: int | None = None,
        tokens: Int[Tensor, "batch pos"] | None = None,
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        stop_at_layer: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """TransformerLens's forward: text or token ids in; the logits, the loss, both
        (`Output`) or None out. With `start_at_layer`, `input` is the residual stream that
        block reads ([batch, pos, d_model]; pass `tokens` for a loss); with
        `stop_at_layer`, the residual stream that block would read comes out instead.
        Other keywords (`position_ids`, `validate`, `cache`) are the workbench model's."""
        if return_type not in ("logits", "loss", "both", None):
            raise InputError(
                f"return_type must be 'logits', 'loss', 'both' or None, got {return_type!r}"
            )
        self._sync_input_hooks()
        if isinstance(input, str | list):
            input, mask = self._encode(input, prepend_bos, padding_side, True, True)
            if attention_mask is None:
                attention_mask = mask
        if kwargs.get("cache") is not None and (start_at_layer, stop_at_layer) != (None, None):
            raise InputError(
                "start_at_layer and stop_at_layer run without a key/value cache: run the "
                "cached positions from their tokens (forward(tokens, cache=...)), or pass the "
                "whole sequence"
            )
        if start_at_layer is None:
            tokens = input if tokens is None else tokens
            if stop_at_layer is None:
                logits = super().forward(input, attention_mask=attention_mask, **kwargs)
                return self._outputs(logits, tokens, attention_mask, return_type, loss_per_token)
            stream = self.start(input, attention_mask, kwargs.get("position_ids"))
        else:
            stream = self._stream_at(input, start_at_layer, attention_mask)
        stop = self._layer_index(stop_at_layer, "stop_at_layer")
        if stop is not None:
            if stop < stream.layer:
                raise InputError(
                    f"stop_at_layer={stop_at_layer} comes before start_at_layer={start_at_layer}"
                )
            self._check_one_stream("stop_at_layer")
            return self.advance(stream, stop).state
        logits = self.finish(stream)
        if return_type in ("loss", "both") and tokens is None:
            raise InputError("with start_at_layer, pass tokens=... to compute a loss")
        return self._outputs(logits, tokens, attention_mask, return_type, loss_per_token)

    def _outputs(
        self,
        logits: Tensor,
        tokens: Tensor | None,
        attention_mask: Tensor | None,
        return_type: ReturnType,
        per_token: bool,
    ) -> Any:
        if return_type == "logits":
            return logits
        if return_type is None:
            return None
        if not isinstance(self.config.input, Tokens) or tokens is None:
            raise InputError("a loss needs token inputs (next-token prediction)")
        loss = lm_cross_entropy_loss(logits, tokens, attention_mask, per_token)
        return loss if return_type == "loss" else Output(logits, loss)

    def loss_fn(
        self,
        logits: Float[Tensor, "batch pos d_vocab"],
        tokens: Int[Tensor, "batch pos"],
        attention_mask: Int[Tensor, "batch pos"] | None = None,
        per_token: bool = False,
    ) -> Tensor:
        return lm_cross_entropy_loss(logits, tokens, attention_mask, per_token)

    def run_with_cache(  # pyright: ignore[reportIncompatibleMethodOverride]
        self, *model_args: Any, return_cache_object: bool = True, **kwargs: Any
    ) -> tuple[Any, Any]:
        """TransformerLens's: the output and an `ActivationCache` (a plain dict with
        `return_cache_object=False`); `incl_bwd=True` also caches gradients (the output, e.g.
        `return_type="loss"`, must then be a scalar)."""
        out, cache = super().run_with_cache(*model_args, **kwargs)
        return (out, cache) if return_cache_object else (out, cache.cache_dict)

    # ----- generation ---------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        input: str | list[str] | Tensor = "",
        max_new_tokens: int = 10,
        stop_at_eos: bool = True,
        eos_token_id: int | list[int] | None = None,
        do_sample: bool = True,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float = 1.0,
        freq_penalty: float = 0.0,
        repetition_penalty: float = 1.0,
        use_past_kv_cache: bool = True,
        prepend_bos: bool | None = None,
        padding_side: Side | None = None,
        return_type: Literal["input", "str", "tokens"] = "input",
        verbose: bool = False,
    ) -> str | list[str] | Tensor:
        """Sample up to `max_new_tokens` tokens, as TransformerLens's `generate`: greedy
        (`do_sample=False` or `temperature=0`) or sampled from the logits divided by
        `temperature`, restricted to the `top_k` tokens or the smallest set of mass `top_p`,
        with frequency and repetition penalties (`sample_logits`; the global torch RNG
        draws). A row that produced an end-of-text token keeps producing it; generation
        stops when every row has. With `use_past_kv_cache` (and a model the cache
        reproduces: `workbench.staged.cache_unsupported`), each step runs the new position
        alone against the cached keys and values; the tokens equal a full run's per step.
        Texts of different lengths are padded on the left. Returns text for text input
        (special tokens dropped) and ids [batch, pos + new] for ids."""
        from workbench.staged import KVCache, cache_unsupported

        if return_type not in ("input", "str", "tokens"):
            raise InputError(
                f"return_type must be 'input', 'str' or 'tokens', got {return_type!r} "
                "(generation from or to embeddings is not supported)"
            )
        if isinstance(input, Tensor) and input.is_floating_point():
            raise InputError("generate takes text or token ids, not embeddings")
        if isinstance(input, str | list):
            side = padding_side or "left"  # appending after right padding would be wrong
            tokens, mask = self._encode(input, prepend_bos, side, True, True)
            if mask is not None and side == "right":
                raise InputError("generate pads texts of different lengths on the left")
            as_text = return_type in ("input", "str")
        else:
            tokens, mask = torch.as_tensor(input), None
            as_text = return_type == "str"
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, int)
            or max_new_tokens < 0
        ):
            raise InputError(
                f"max_new_tokens must be a non-negative integer, got {max_new_tokens!r}"
            )
        if tokens.shape[1] + max_new_tokens > self.config.n_ctx:
            raise InputError(
                f"{tokens.shape[1]} prompt tokens + {max_new_tokens} new ones exceed "
                f"n_ctx={self.config.n_ctx}: ask for fewer tokens or a shorter prompt"
            )
        stops = self._stop_tokens(stop_at_eos, eos_token_id)
        finished = torch.zeros(len(tokens), dtype=torch.bool, device=tokens.device)
        cached = use_past_kv_cache and mask is None and cache_unsupported(self.config) is None
        cache = KVCache() if cached else None
        new = tokens
        steps = range(max_new_tokens)
        if verbose:
            from tqdm.auto import tqdm

            steps = tqdm(steps)
        for _ in steps:
            if cache is not None:
                logits = Transformer.forward(self, new, cache=cache)
            else:
                logits = Transformer.forward(self, tokens, attention_mask=mask)
            temp = temperature if do_sample else 0.0
            step = sample_logits(
                logits[:, -1], top_k, top_p, temp, freq_penalty, repetition_penalty, tokens
            )
            if stops:
                step = step.masked_fill(finished, stops[0])
                finished |= torch.isin(step, torch.tensor(stops, device=step.device))
            new = step[:, None]
            tokens = torch.cat([tokens, new], dim=1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(new)], dim=1)
            if stops and bool(finished.all()):
                break
        if not as_text:
            return tokens
        tok = self._tokenizer()
        texts = [cast(str, tok.decode(row, skip_special_tokens=True)) for row in tokens.tolist()]
        return texts[0] if isinstance(input, str) or len(texts) == 1 else texts

    def _stop_tokens(self, stop_at_eos: bool, eos_token_id: int | list[int] | None) -> list[int]:
        """The tokens that end a row (the first also fills a finished row)."""
        if not stop_at_eos:
            return []
        if eos_token_id is None:
            eos = None if self.tokenizer is None else self.tokenizer.eos_token_id
            if eos is None:
                raise InputError(
                    "this model's tokenizer has no end-of-text token: pass eos_token_id or "
                    "stop_at_eos=False"
                )
            return [cast(int, eos)]
        return [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)

    def _layer_index(self, layer: int | None, name: str) -> int | None:
        """A layer index as Python slices read it (negative: from the end)."""
        if layer is None:
            return None
        n = self.config.n_layers
        if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer <= n:
            raise InputError(f"{name} must be an integer in {-n}..{n}, got {layer!r}")
        return layer % n if layer < 0 else layer

    def _stream_at(
        self, residual: Tensor, start_at_layer: int, attention_mask: Tensor | None
    ) -> Stream:
        """The stream block `start_at_layer` reads, from its residual stream."""
        layer = self._layer_index(start_at_layer, "start_at_layer")
        assert layer is not None
        self._check_one_stream("start_at_layer")
        if not isinstance(residual, Tensor) or residual.ndim != 3:
            raise InputError(
                "with start_at_layer, input is the residual stream [batch, pos, d_model]"
            )
        seqs = self._sequences(residual[..., 0], attention_mask, None, True)  # by its shape
        return Stream(layer, residual, seqs)

    def _check_one_stream(self, name: str) -> None:
        if self.config.wiring is Wiring.DUAL_STREAM or self.dwa_weights is not None:
            raise InputError(
                f"{name} needs a single residual stream; this model's blocks pass on more "
                "(a dual-stream or depth-weighted wiring)"
            )


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    """A torch dtype, or TransformerLens's names for one ("float32", "fp16", "bf16", ...)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16}
    names |= {"fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    names |= {"float64": torch.float64}
    if dtype not in names:
        raise InputError(f"dtype must be one of {', '.join(names)} or a torch.dtype, not {dtype!r}")
    return names[dtype]
