"""The predictions view on the page's prompt: top-k, logit lens and an exact attribution that
adds up to the model's logit difference; bad choices are messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench
from app.main import create_app
from app.run import attention_patterns
from app.views.predictions import predictions
from workbench.errors import InputError

PROMPT = "BOS t1 t2 t3 t1 t2"


@pytest.fixture(scope="module")
def app():
    return create_app()


@torch.no_grad()
def test_the_answer_defaults_to_the_top_prediction_and_the_bars_add_up(app) -> None:
    model = app.registry.checkpoint("induction-2l").model
    vocab = app.registry.checkpoint("induction-2l").vocab
    ids = [vocab.index(w) for w in PROMPT.split()]
    logits = model(torch.tensor([ids]))[0, -1]
    top, lens, dla, note = predictions(app.registry, "induction-2l", PROMPT, 3)
    best = int(logits.argmax())
    assert f"{vocab[best]!r} at position 5:t2" in note
    assert top.data[0].text[5][0] == vocab[best]  # the last position's first choice
    bars = sum(sum(t.y) for t in dla.data if t.type == "bar")
    assert bars == pytest.approx(float(logits[best]), abs=1e-4)  # exact: the logit itself
    _, _, pair, note = predictions(app.registry, "induction-2l", PROMPT, 3, "t3", "t1", 4)
    expected = model(torch.tensor([ids]))[0, 4]
    diff = float(expected[vocab.index("t3")] - expected[vocab.index("t1")])
    assert sum(sum(t.y) for t in pair.data if t.type == "bar") == pytest.approx(diff, abs=1e-4)
    assert "'t3' minus 't1' at position 4:t1" in note
    probs = np.asarray(lens.data[0].z, dtype=float)  # the target's probability per row
    assert probs.shape == (3, 6)  # before layer 0 and 1, after the last; 6 positions
    final = torch.softmax(model(torch.tensor([ids]))[0].double(), -1)[:, vocab.index("t3")]
    np.testing.assert_allclose(
        np.asarray(predictions(app.registry, "induction-2l", PROMPT, 3, "t3")[1].data[0].z)[-1],
        final.numpy(),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    ("k", "right", "wrong", "position", "message"),
    [
        (0, None, None, None, "top-k must be a whole number from 1 to 20"),
        ("5", None, None, None, "top-k must be"),
        (3, "banana", None, None, "the answer 'banana' is not one token"),
        (3, "t1", "t1", None, "their difference is 0"),
        (3, None, None, 6, "position must be a whole number from 0 to 5"),
        (3, ["t1"], None, None, "the answer must be one token, got list"),
    ],
)
def test_bad_choices_are_messages(app, k, right, wrong, position, message) -> None:
    with pytest.raises(InputError, match=message):
        predictions(app.registry, "induction-2l", PROMPT, k, right, wrong, position)


def test_a_model_whose_logits_are_not_a_sum_keeps_top_k_and_lens(tmp_path) -> None:
    workbench.checkpoint.save(workbench.build("bert-base-tiny", seed=0), tmp_path / "bert")
    app = create_app([str(tmp_path / "bert")])
    top, lens, dla, _ = predictions(app.registry, "bert", "1 2 3 4", 2)
    assert len(top.data[0].text) == 4 and np.asarray(lens.data[0].z).shape[1] == 4
    assert "not a sum of component outputs" in dla.layout.annotations[0].text
    patterns, _ = attention_patterns(app.registry, "bert", "1 2 3 4")
    assert patterns.shape[-1] == 4
