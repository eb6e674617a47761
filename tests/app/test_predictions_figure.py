"""The prediction figures build from the probes' results and hold their numbers: the top-k
table's cells are the probabilities and decoded tokens, the lens grid is coloured by the
target's (or the top token's) probability with the top token as text, and the attribution
bars are the components' values in forward order with the sum and the model's logit
difference in the title."""

from __future__ import annotations

import pytest
import torch

from app.figures.predictions import decoder, dla_bars, logit_lens_grid, top_k_table
from probes.lens import logit_lens, top_predictions
from probes.logit_attribution import direct_logit_attribution
from workbench.api import build
from workbench.errors import InputError

VOCAB = [f"t{i}" for i in range(50)]


@pytest.fixture(scope="module")
def model():
    model = build("gpt2-small-tiny", seed=0).requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():  # biases and norms off their initial values
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


TOKENS = [3, 1, 4, 1, 5, 9]
LABELS = [VOCAB[t] for t in TOKENS]


def test_the_top_k_table_holds_probabilities_and_tokens(model) -> None:
    top = top_predictions(model, TOKENS, k=3)
    fig = top_k_table(top, LABELS, VOCAB)
    heat = fig.data[0]
    assert [list(row) for row in heat.z] == top.probs.tolist()
    assert [list(row) for row in heat.text] == [[VOCAB[i] for i in r] for r in top.ids.tolist()]
    assert list(heat.y) == [f"{i}:{t}" for i, t in enumerate(LABELS)]
    assert list(heat.x) == ["#1", "#2", "#3"]
    assert "next token" in fig.layout.title.text


def test_the_lens_grid_is_coloured_by_the_target_or_the_top_token(model) -> None:
    lens = logit_lens(model, TOKENS, target=7)
    fig = logit_lens_grid(lens, LABELS, lambda i: f"<{i}>")
    heat = fig.data[0]
    assert [list(row) for row in heat.z] == lens.target_probs.tolist()
    assert list(heat.y) == list(lens.labels) and len(heat.x) == len(TOKENS)
    assert [list(row) for row in heat.text] == [
        [f"<{i}>" for i in row] for row in lens.top_tokens.tolist()
    ]
    assert [[c[0] for c in row] for row in heat.customdata] == lens.top_probs.tolist()
    assert [[c[1] for c in row] for row in heat.customdata] == lens.target_probs.tolist()
    assert "'<7>'" in fig.layout.title.text and "target" in heat.hovertemplate
    top = logit_lens_grid(lens, LABELS, VOCAB, colour="top").data[0]
    assert [list(row) for row in top.z] == lens.top_probs.tolist()
    untargeted = logit_lens_grid(logit_lens(model, TOKENS), LABELS, VOCAB)
    assert "the top token" in untargeted.layout.title.text
    assert "target" not in untargeted.data[0].hovertemplate


def test_the_attribution_bars_hold_every_component_and_the_totals(model) -> None:
    result = direct_logit_attribution(model, TOKENS, 7, 2, position=-1)
    fig = dla_bars(result, VOCAB)
    assert [t.name for t in fig.data] == ["embeddings", "L0 heads", "biases", "MLPs", "L1 heads"]
    bars = {x: y for trace in fig.data for x, y in zip(trace.x, trace.y, strict=True)}
    assert bars == {c.name: c.value for c in result.components}
    assert list(fig.layout.xaxis.categoryarray) == [c.name for c in result.components]
    assert sum(bars.values()) == pytest.approx(result.logit, abs=1e-5)
    title = fig.layout.title.text
    assert f"sum {result.total:.4f}" in title and f"difference {result.logit:.4f}" in title
    assert "'t7' − 't2'" in title and "position 5" in title
    alone = dla_bars(direct_logit_attribution(model, TOKENS, 7), VOCAB)
    assert "logit difference" not in alone.layout.title.text


def test_labels_must_match_the_positions_and_decode_falls_back_to_ids(model) -> None:
    with pytest.raises(InputError, match="5 token labels for 6 positions"):
        top_k_table(top_predictions(model, TOKENS), LABELS[:5], VOCAB)
    with pytest.raises(InputError, match="colour"):
        logit_lens_grid(logit_lens(model, TOKENS), LABELS, VOCAB, colour="red")
    assert decoder(["a", "b"])(1) == "b" and decoder(["a", "b"])(7) == "7"
