"""Strict reading of Hugging Face config fields: every field of a checkpoint's config is either
used, required to have a value the workbench reproduces, or known to be irrelevant to the
forward pass. Anything else is an error that names the field. Numeric fields are checked too:
a size is a positive integer, a real value is finite and in its range (an epsilon of NaN,
null or 0, a rotary base of 0, is an error naming the field)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from workbench.errors import ConvertError

# metadata and training-only fields of every Hugging Face config
COMMON_IGNORED = frozenset(
    {
        "_name_or_path",
        "architectures",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "id2label",
        "label2id",
        "problem_type",
        "return_dict",
        "output_attentions",
        "output_hidden_states",
        "use_cache",
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "sep_token_id",
        "initializer_range",
        "chunk_size_feed_forward",
        "is_encoder_decoder",
        "gradient_checkpointing",
        "tokenizer_class",
        "task_specific_params",
        "finetuning_task",
        "prefix",
        "model_type",
    }
)


@dataclass(frozen=True)
class Need:
    """A field whose value must be one of `values` (the ones the workbench reproduces)."""

    values: tuple[Any, ...]


READ = Need(())  # any value: the converter uses it


def need(*values: Any) -> Need:
    return Need(values)


@dataclass(frozen=True)
class Number:
    """A numeric field: an integer size (>= 1), or a finite real value >= `low` (> `low` when
    `open_low`) and <= `high`. `optional`: null means the converter's default."""

    integer: bool = False
    low: float = 0.0
    open_low: bool = False
    high: float | None = None
    optional: bool = False

    def describe(self) -> str:
        if self.integer:
            kind = "a positive integer"
        else:
            kind = f"a finite number {'>' if self.open_low else '>='} {self.low:g}"
            kind += f" and <= {self.high:g}" if self.high is not None else ""
        return kind + (" or null" if self.optional else "")


SIZE = Number(integer=True, low=1)
OPTIONAL_SIZE = Number(integer=True, low=1, optional=True)
EPS = Number(open_low=True)  # a norm's epsilon: > 0, as ModelConfig.norm_eps
BASE = Number(open_low=True)  # the rotary base: its powers set the frequencies
FRACTION = Number(open_low=True, high=1.0)  # the rotated part of each head


@dataclass(frozen=True)
class Nested:
    """A field holding a mapping (or null) whose listed keys are numbers; other keys are left
    to the converter."""

    numbers: Mapping[str, Number]


Spec = Need | Number | Nested


def check_fields(
    family: str,
    config: Mapping[str, Any],
    fields: Mapping[str, Spec],
    ignored: frozenset[str],
) -> None:
    """Raise `ConvertError` on a field the converter does not know, a value it cannot
    reproduce, or a number that is missing, out of range, NaN or infinite."""
    for name, value in config.items():
        if name in COMMON_IGNORED or name in ignored:
            continue
        if name not in fields:
            raise ConvertError(
                f"{family} config field {name}={value!r} is not handled by the converter; it "
                f"handles: {', '.join(sorted(fields))}"
            )
        match fields[name]:
            case Need(values=accepted) if accepted and value not in accepted:
                raise ConvertError(
                    f"{family} config field {name}={value!r} is not supported; the workbench "
                    f"reproduces {name} in {list(accepted)}"
                )
            case Number() as spec:
                check_number(f"{family} config field {name}", value, spec)
            case Nested(numbers=numbers) if value is not None:
                if not isinstance(value, Mapping):
                    raise ConvertError(
                        f"{family} config field {name}={value!r} must be a mapping or null"
                    )
                for key, spec in numbers.items():
                    if key in value:
                        where = f"{family} config field {name}.{key}"
                        check_number(where, value[key], spec)


def check_number(where: str, value: Any, spec: Number) -> None:
    if value is None and spec.optional:
        return
    wrong = ConvertError(
        f"{where}={value!r} must be {spec.describe()}; fix config.json (the original model's value)"
    )
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (spec.integer and not isinstance(value, int))
    ):
        raise wrong
    if not math.isfinite(value):  # no model computes with these
        raise ConvertError(f"{where}={value!r} is not finite; fix config.json")
    if (
        value < spec.low
        or (spec.open_low and value == spec.low)
        or (spec.high is not None and value > spec.high)
    ):
        raise wrong


class Sizes(TypedDict):
    """The sizes of the blocks, named as `ModelConfig`'s fields, to unpack into it."""

    n_layers: int
    d_model: int
    n_heads: int
    d_head: int
    d_mlp: int


class TextSizes(Sizes):
    """The sizes of a text model: its blocks', its vocabulary and its context."""

    d_vocab: int
    n_ctx: int


def block_sizes(hf: Mapping[str, Any]) -> Sizes:
    """The sizes of the blocks of a config in the common Hugging Face naming (BERT, NeoX,
    LLaMA, ViT)."""
    d, heads = hf["hidden_size"], hf["num_attention_heads"]
    return Sizes(
        n_layers=hf["num_hidden_layers"],
        d_model=d,
        n_heads=heads,
        d_head=hf.get("head_dim") or d // heads,
        d_mlp=hf["intermediate_size"],
    )


def model_sizes(hf: Mapping[str, Any]) -> TextSizes:
    """`block_sizes` and the vocabulary and context of a text model (a missing field is a
    KeyError, which the converter reports with its name)."""
    return TextSizes(
        **block_sizes(hf), d_vocab=hf["vocab_size"], n_ctx=hf["max_position_embeddings"]
    )
