"""The lens's strings (TransformerLens's `to_tokens`, `to_str_tokens`, `to_string`,
`to_single_token`, `to_single_str_token`, `get_token_position`): text to token ids and back
through the attached tokenizer, with BOS and padding as TransformerLens adds them (see
`workbench.lens.model`)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Literal, cast

import torch
from jaxtyping import Int
from torch import Tensor

from workbench.errors import InputError
from workbench.lens.hooks import LensHooks

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

Side = Literal["left", "right"]


class LensStrings(LensHooks):
    """Text and token ids, for a lens whose `tokenizer` is attached (`set_tokenizer`)."""

    tokenizer: PreTrainedTokenizerFast | None

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
