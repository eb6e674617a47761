"""The seven tasks are generated as the authors' code generates them: the sizes of their
de-duplicated splits, and the examples their shipped programs end with (the first ten
validation examples of the run that produced each; tests/rasp/learned/shipped_examples.json,
extracted from princeton-nlp/TransformerPrograms by benchmarks/ltp_shipped_examples.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from rasp.learned import tasks

SHIPPED = json.loads((Path(__file__).parent / "shipped_examples.json").read_text())
# the seed of the run behind each shipped program: the one whose validation split begins with
# the program's examples (found by trying seeds 0-4; no other seed in that range matches)
SEEDS: dict[str, int] = json.loads((Path(__file__).parent / "shipped_seeds.json").read_text())


@functools.cache
def dataset(name: str, seed: int) -> tasks.Dataset:
    return tasks.load(name, seed=seed)


def decoded(data: tasks.Dataset, split: tasks.Split, n: int) -> list[list[list[str]]]:
    out = []
    for x, y in zip(split.inputs[:n], split.targets[:n], strict=True):
        length = int((x != 0).sum())
        out.append([[data.words[i] for i in x[:length]], [data.tags[i] for i in y[:length]]])
    return out


@pytest.mark.parametrize("program", sorted(SEEDS))
def test_validation_split_begins_with_the_shipped_programs_examples(program: str) -> None:
    data = dataset(program.split("/")[1], SEEDS[program])
    assert decoded(data, data.val, 10) == SHIPPED[program]


@pytest.mark.parametrize(
    ("name", "sizes"),
    [
        ("reverse", (11_439, 1_272, 1_413)),  # 14,124 distinct inputs: 5 words, length 1-6
        ("sort", (11_439, 1_272, 1_413)),
        ("hist", (16_200, 1_800, 2_000)),
        ("dyck1", (16_200, 1_800, 2_000)),
    ],
)
def test_distinct_examples_split_81_9_10(name: str, sizes: tuple[int, int, int]) -> None:
    data = dataset(name, 0)
    assert tuple(len(data.split(s).inputs) for s in ("train", "val", "test")) == sizes
    every = [tuple(row[row != 0]) for s in ("train", "val", "test") for row in data.split(s).inputs]
    assert len(set(every)) == len(every)


def test_vocabularies_and_targets() -> None:
    data = dataset("reverse", 0)
    assert data.words == ("<pad>", "0", "1", "2", "3", "4", "</s>", "<s>")
    assert data.tags == ("<pad>", "0", "1", "2", "3", "4")
    for sent, tags in decoded(data, data.test, 50):
        assert sent[0] == "<s>" and sent[-1] == "</s>"
        assert tags[1:-1] == sent[1:-1][::-1] and tags[0] == tags[-1] == "<pad>"
    assert data.n_ctx == 8
    dyck = dataset("dyck1", 0)
    assert dyck.spec.autoregressive and dyck.n_ctx == 16
    for sent, tags in decoded(dyck, dyck.test, 50):
        depth, failed = 0, False
        for c, t in zip(sent[1:], tags[1:], strict=True):
            depth += 1 if c == "(" else -1
            failed = failed or depth < 0
            assert t == ("F" if failed else "T" if depth == 0 else "P")


def test_unknown_task_names_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown task 'revers'; choose one of reverse, hist"):
        tasks.load("revers")
