"""Strict reading of Hugging Face config fields: every field of a checkpoint's config is either
used, required to have a value the workbench reproduces, or known to be irrelevant to the
forward pass. Anything else is an error that names the field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


def check_fields(
    family: str, config: Mapping[str, Any], fields: Mapping[str, Need], ignored: frozenset[str]
) -> None:
    """Raise `ConvertError` on a field the converter does not know or a value it cannot
    reproduce."""
    for name, value in config.items():
        if name in COMMON_IGNORED or name in ignored:
            continue
        if name not in fields:
            raise ConvertError(
                f"{family} config field {name}={value!r} is not handled by the converter; it "
                f"handles: {', '.join(sorted(fields))}"
            )
        accepted = fields[name].values
        if accepted and value not in accepted:
            raise ConvertError(
                f"{family} config field {name}={value!r} is not supported; the workbench "
                f"reproduces {name} in {list(accepted)}"
            )


def model_sizes(hf: Mapping[str, Any]) -> dict[str, int]:
    """The model sizes of a config in the common Hugging Face naming (BERT, NeoX, LLaMA, ViT
    minus its vocabulary and context, which come from the classifier and the image)."""
    d, heads = hf["hidden_size"], hf["num_attention_heads"]
    sizes = {
        "n_layers": hf["num_hidden_layers"],
        "d_model": d,
        "n_heads": heads,
        "d_head": hf.get("head_dim") or d // heads,
        "d_mlp": hf["intermediate_size"],
    }
    if "vocab_size" in hf:
        sizes |= {"d_vocab": hf["vocab_size"], "n_ctx": hf["max_position_embeddings"]}
    return sizes
