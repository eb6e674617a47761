"""TransformerLens's API over workbench models: `HookedTransformer.from_pretrained(name)` (a
built-in model, a checkpoint or a Hugging Face directory, with its tokenizer) or
`HookedTransformer.from_model(model)`; see `workbench.lens.model`."""

from workbench.lens.logits import lm_cross_entropy_loss
from workbench.lens.model import HookedTransformer, Output

__all__ = ["HookedTransformer", "Output", "lm_cross_entropy_loss"]
