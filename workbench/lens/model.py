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
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from workbench.config import Mask, ModelConfig, Wiring
from workbench.errors import InputError
from workbench.lens.config import TLConfig, tl_config
from workbench.lens.logits import lm_cross_entropy_loss, sample_logits
from workbench.lens.strings import LensStrings, Side
from workbench.model import Stream, Transformer
from workbench.options import Tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

log = logging.getLogger(__name__)
ReturnType = Literal["logits", "loss", "both"] | None


class Output(NamedTuple):
    """`return_type="both"`: the logits and the loss, as TransformerLens returns them."""

    logits: Float[Tensor, "batch pos d_vocab"]
    loss: Tensor


class HookedTransformer(LensStrings):
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

    # ----- strings: workbench.lens.strings; the embedding of an input -----------------
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
