"""Built-in tasks: samples, targets, and prompt pairs are what each task says they are."""

from __future__ import annotations

import pytest
import torch

from workbench.errors import InputError
from workbench.tasks import IGNORE, TASKS, make_task
from workbench.tasks.dyck import OPEN, YES, is_balanced
from workbench.tasks.mlm import MASK

TEXT_TASKS = sorted(name for name, task in TASKS.items() if task.modality == "text")
# what each text task's targets are: the next token, the answer after the last token (each
# such task's answers have their own test below), or the symbols under the masks
TARGETS = {
    "induction": "next",
    "copy": "next",
    "reverse": "next",
    "sort": "next",
    "histogram": "next",
    "addition": "next",
    "modadd": "answer",
    "dyck": "answer",
    "ioi": "answer",
    "mlm": "masked",
}


def test_every_text_task_says_what_its_targets_are() -> None:
    assert set(TARGETS) == set(TEXT_TASKS)


@pytest.mark.parametrize("name", TEXT_TASKS)
def test_task_contract(name: str, gen: torch.Generator) -> None:
    task = make_task(name)
    batch = task.sample(16, gen)
    assert batch.tokens.shape == (16, task.seq_len) == batch.targets.shape
    assert batch.tokens.dtype == torch.long
    assert batch.tokens.min() >= 0 and batch.tokens.max() < task.d_vocab
    has_target = batch.targets != IGNORE
    assert has_target.any()
    match TARGETS[name]:
        case "next":  # wherever the next token is in the sequence, the target is it
            inside = has_target[:, :-1]
            assert inside.any()  # the check below is not vacuous
            assert torch.equal(batch.targets[:, :-1][inside], batch.tokens[:, 1:][inside])
        case "answer":  # one target, after the last token: the task's answer (own test)
            assert has_target[:, -1].all() and not has_target[:, :-1].any()
        case "masked":  # the original symbol under each [MASK], nothing elsewhere
            assert torch.equal(has_target, batch.tokens == MASK)
        case other:
            raise AssertionError(f"unknown target convention {other!r}")
    pairs = task.pairs(8, gen)
    assert pairs.clean.shape == pairs.corrupted.shape
    assert not torch.equal(pairs.clean, pairs.corrupted)
    assert (pairs.answer != pairs.wrong).all()
    assert task.decode(task.encode(task.example_prompt())) == task.example_prompt().split()
    perfect = torch.nn.functional.one_hot(batch.targets.clamp(min=0), task.d_vocab).float()
    assert task.accuracy(perfect, batch) == 1.0


def test_sort_histogram_reverse_outputs(gen: torch.Generator) -> None:
    for name, check in [
        ("sort", lambda x, y: torch.equal(y, x.sort(1).values)),
        ("reverse", lambda x, y: torch.equal(y, x.flip(1))),
        ("copy", lambda x, y: torch.equal(y, x)),
    ]:
        task = make_task(name)
        t = task.sample(32, gen).tokens
        x, y = t[:, 1 : task.length + 1] - 2, t[:, task.length + 2 :] - 2
        assert check(x, y), name
    hist = make_task("histogram")
    t = hist.sample(32, gen).tokens
    x, y = t[:, 1:9], t[:, 10:]
    words = hist.decode(y[0])
    assert words == [f"c{int((x[0] == v).sum())}" for v in x[0]]


def test_modadd_answers_and_split(gen: torch.Generator) -> None:
    task = make_task("modadd", p=13, train_fraction=0.3)
    b = task.sample(0, gen, "test")
    a, c = b.tokens[:, 0], b.tokens[:, 1]
    assert torch.equal(b.targets[:, -1], (a + c) % 13)
    train_pairs = set(map(tuple, task.sample(0, gen, "train").tokens[:, :2].tolist()))
    test_pairs = set(map(tuple, b.tokens[:, :2].tolist()))
    assert not train_pairs & test_pairs and len(train_pairs | test_pairs) == 169
    pairs = task.pairs(20, gen)
    assert torch.equal(pairs.wrong, (pairs.corrupted[:, 0] + pairs.corrupted[:, 1]) % 13)


def test_dyck_labels_and_near_misses(gen: torch.Generator) -> None:
    task = make_task("dyck")
    b = task.sample(256, gen)
    brackets = b.tokens[:, 1:-1]
    depth = torch.where(brackets == OPEN, 1, -1).cumsum(1)
    balanced = (depth.min(1).values >= 0) & (depth[:, -1] == 0)
    assert torch.equal(b.targets[:, -1] == YES, balanced)
    assert 0.3 < balanced.float().mean() < 0.7
    pairs = task.pairs(16, gen)
    assert (
        is_balanced(pairs.clean[:, 1:-1]).all() and not is_balanced(pairs.corrupted[:, 1:-1]).any()
    )


def test_ioi_positions_and_abc_corruption(gen: torch.Generator) -> None:
    task = make_task("ioi")
    pairs = task.pairs(16, gen)
    rows = torch.arange(16)
    assert torch.equal(pairs.clean[rows, pairs.positions["io"]], pairs.answer)
    assert torch.equal(pairs.clean[rows, pairs.positions["s1"]], pairs.wrong)
    assert torch.equal(pairs.clean[rows, pairs.positions["s2"]], pairs.wrong)
    c = pairs.corrupted[rows, pairs.positions["s2"]]
    assert ((c != pairs.answer) & (c != pairs.wrong)).all()
    words = task.decode(pairs.clean[0])
    assert words[0] == "BOS" and words[-1] == "to"
    batch = task.sample(8, gen)
    io_first = batch.tokens[:, 2] == batch.targets[:, -1]
    io_second = batch.tokens[:, 4] == batch.targets[:, -1]
    assert (io_first ^ io_second).all()


def test_induction_sequences_repeat_with_varying_period(gen: torch.Generator) -> None:
    task = make_task("induction", max_period=6, min_period=3)
    batch = task.sample(64, gen)
    t = batch.tokens
    assert (t[:, 0] == 0).all() and t.shape[1] == 13
    periods = set()
    for row, targets in zip(t.tolist(), batch.targets.tolist(), strict=True):
        k = next(k for k in range(3, 7) if all(row[i] == row[i + k] for i in range(1, 13 - k)))
        assert len(set(row[1 : k + 1])) == k  # distinct within a period
        periods.add(k)
        # a target exactly where the current token occurred before
        known = [i for i, tgt in enumerate(targets) if tgt != IGNORE]
        assert known == list(range(k + 1, 12))
    assert periods == {3, 4, 5, 6}
    pairs = task.pairs(4, gen)
    assert torch.equal(pairs.clean[:, 1:6], pairs.clean[:, 7:12])
    assert torch.equal(pairs.answer, pairs.clean[:, 6])


def test_bars_images_show_their_orientation(gen: torch.Generator) -> None:
    task = make_task("bars", noise=0.0)
    batch = task.sample(32, gen)
    assert batch.tokens.shape == (32, 1, 16, 16) and batch.tokens.dtype == torch.float32
    for image, label in zip(batch.tokens[:, 0], batch.targets.tolist(), strict=True):
        rows, cols = (image > 0.5).nonzero(as_tuple=True)
        assert len(rows) >= 7
        kind = {
            (True, False): 0,  # one row: horizontal
            (False, True): 1,  # one column: vertical
        }.get((len(set(rows.tolist())) == 1, len(set(cols.tolist())) == 1))
        if kind is None:  # a diagonal: rows and columns move together or against
            kind = 2 if bool(((rows - rows[0]) == (cols - cols[0])).all()) else 3
        assert kind == label
    pairs = task.pairs(8, gen)
    assert pairs.read_at == 0 and (pairs.answer != pairs.wrong).all()
    assert pairs.clean.shape == pairs.corrupted.shape
    with pytest.raises(InputError, match="vision preset"):
        task.model_overrides(
            make_task("copy") and __import__("workbench").build("gpt2-small-tiny").config
        )


def test_mlm_masks_only_recoverable_symbols(gen: torch.Generator) -> None:
    task = make_task("mlm")
    batch = task.sample(256, gen)
    masked = batch.targets != IGNORE
    assert 0.05 < masked.float().mean() < 0.25 and not masked[:, 0].any()
    assert (batch.tokens[masked] == 1).all()  # MASK
    n = task.seq_len
    for row in range(256):
        for pos in masked[row].nonzero().flatten().tolist():
            mirror = n - pos
            assert not masked[row, mirror]  # its mirror image tells the answer
            assert batch.tokens[row, mirror] == batch.targets[row, pos]


def test_forecast_series_and_r2(gen: torch.Generator) -> None:
    task = make_task("forecast", variates=6, lookback=20, horizon=5)
    batch = task.sample(16, gen)
    assert batch.tokens.shape == (16, 20, 6) and batch.targets.shape == (16, 5, 6)
    whole = torch.cat([batch.tokens, batch.targets], dim=1)
    # variates 3..5 repeat variates 0..2 three steps later (up to noise)
    torch.testing.assert_close(whole[:, 3:, 3:], whole[:, :-3, :3], atol=0.5, rtol=0)
    perfect = batch.targets.transpose(1, 2)
    assert task.accuracy(perfect, batch) == 1.0
    assert abs(task.accuracy(torch.zeros_like(perfect) + batch.targets.mean(), batch)) < 0.1
    with pytest.raises(InputError, match="no answer/wrong pairs"):
        task.pairs(2, gen)


def test_addition_sums_are_right(gen: torch.Generator) -> None:
    task = make_task("addition", max_digits=6)
    batch = task.sample(64, gen)
    for row in batch.tokens.tolist():
        words = task.decode(row)
        plus, equals, end = words.index("+"), words.index("="), words.index("EOS")
        a, b, c = (
            int("".join(reversed(part)))
            for part in (words[1:plus], words[plus + 1 : equals], words[equals + 1 : end])
        )
        assert a + b == c
