"""The trained models shipped inside the package do what they claim."""

from __future__ import annotations

import pytest
import torch

import workbench
from probes.heads import head_scores
from workbench.api import BUILTIN_DIR
from workbench.tasks import make_task


def test_builtin_models_are_listed_and_small() -> None:
    assert {"induction-2l", "modadd-1l"} <= set(workbench.list_builtin_models())
    for name in workbench.list_builtin_models():
        if not (BUILTIN_DIR / name).is_dir():
            continue  # a pretrained model of an installed extra, not shipped in the package
        size = sum(f.stat().st_size for f in (BUILTIN_DIR / name).iterdir())
        assert size < 2 * 1024 * 1024, name


def test_induction_model_has_an_induction_head() -> None:
    ckpt = workbench.open_checkpoint("induction-2l")
    task = ckpt.meta["task"]
    scores = head_scores(
        ckpt.model,
        half_len=task["params"]["max_period"],
        vocab=(1, 1 + task["params"]["n_symbols"]),
        n_sequences=128,
        seed=1,
    )
    layer, _, score = scores.top_induction_head()
    assert score > 0.5
    assert layer == 1  # the induction head composes with a layer-0 head
    # Olsson et al.: the layer-0 partner is a previous-token head
    assert scores.previous_token[0].max() > 0.5
    # a randomly initialised model of the same shape has no such head
    random = workbench.build("attn-only-2l", d_vocab=41, n_ctx=25)
    random_scores = head_scores(random, half_len=12, n_sequences=32)
    assert random_scores.induction.max() < 0.3


def test_modular_addition_model_is_above_95_percent_on_held_out_pairs() -> None:
    ckpt = workbench.open_checkpoint("modadd-1l")
    task = make_task(ckpt.meta["task"]["name"], **ckpt.meta["task"]["params"])
    assert ckpt.model.config.n_layers == 1
    held_out = task.sample(0, torch.Generator(), "test")
    with torch.no_grad():
        accuracy = task.accuracy(ckpt.model(held_out.tokens), held_out)
    assert len(held_out.tokens) > 0.4 * task.p**2
    assert accuracy > 0.95


@pytest.mark.parametrize("name", ["induction-2l", "modadd-1l"])
def test_builtin_metadata_records_how_it_was_made(name: str) -> None:
    meta = workbench.open_checkpoint(name).meta
    assert {"preset", "task", "settings", "seed", "vocab", "metrics", "versions"} <= set(meta)


def test_token_names_invert_encode() -> None:
    ckpt = workbench.open_checkpoint("induction-2l")
    name = ckpt.token_names()
    text = "BOS t1 t2 t3 t1"
    assert " ".join(name(i) for i in ckpt.encode(text)) == text
    assert name(10**6) == str(10**6)  # no word: its number
    bare = workbench.checkpoint.Checkpoint(ckpt.model)  # no vocabulary, no tokenizer
    assert bare.token_names() is None


def test_a_checkpoint_names_its_built_in_task() -> None:
    from workbench.checkpoint import Checkpoint

    task = workbench.open_checkpoint("induction-2l").task()
    assert task is not None and type(task).__name__ == "InductionTask"
    model = workbench.build("gpt2-small-tiny", n_layers=1)
    assert Checkpoint(model, {}).task() is None
    assert Checkpoint(model, {"task": "rasp"}).task() is None  # a compiled program's meta
    assert Checkpoint(model, {"task": {"name": "no-such-task"}}).task() is None
    modadd = Checkpoint(model, {"task": {"name": "modadd", "params": {"p": 59}}}).task()
    assert modadd is not None and modadd.p == 59


def test_a_checkpoint_finds_one_token_by_its_text() -> None:
    from workbench.checkpoint import Checkpoint

    ckpt = workbench.open_checkpoint("induction-2l")
    assert ckpt.token_id("t1") == ckpt.vocab.index("t1") and ckpt.token_id("banana") is None
    raw = Checkpoint(workbench.build("gpt2-small-tiny", n_layers=1), {})
    vocab = raw.model.config.vocab_out
    assert raw.token_id("7") == 7 and raw.token_id(str(vocab)) is None  # out of range
    assert raw.token_id("seven") is None and raw.token_id("-1") is None
