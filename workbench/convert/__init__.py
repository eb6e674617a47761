"""Converters from Hugging Face checkpoints (GPT-2, GPT-NeoX/Pythia, LLaMA/Mistral, BERT,
ViT) into workbench models: `from_hf(directory_or_model)`."""

from workbench.convert.hf import FAMILIES, convert, from_hf, is_hf_dir

__all__ = ["FAMILIES", "convert", "from_hf", "is_hf_dir"]
