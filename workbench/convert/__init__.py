"""Converters from Hugging Face checkpoints (GPT-2, GPT-NeoX/Pythia, LLaMA/Mistral, BERT,
ViT) into workbench models: `from_hf(directory_or_model)`, and `convert_dir(hf_dir, out)`
for a workbench checkpoint on disk (`workbench convert`)."""

from workbench.convert.hf import (
    FAMILIES,
    convert,
    convert_dir,
    from_hf,
    is_hf_dir,
    source_meta,
)

__all__ = ["FAMILIES", "convert", "convert_dir", "from_hf", "is_hf_dir", "source_meta"]
