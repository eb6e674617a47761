"""The seven RASP tasks of "Learning Transformer Programs" (Friedman, Wettig & Chen 2023,
Table 1), generated as the authors' code generates them (princeton-nlp/TransformerPrograms,
`src/utils/data_utils.py` and `scripts/rasp.sh`, `scripts/dyck.sh`), so a seed gives the same
examples, vocabulary and 81/9/10 split as theirs.

Their recipe: numpy's legacy global generator seeded with `seed` draws `n * size` examples for
n = 2, 3, 4, 5 until `size` distinct inputs exist (first occurrences kept in order; reverse and
sort have only 14,124 distinct inputs in 100,000 draws, so they keep that many); scikit-learn's
`train_test_split(test_size=0.1, random_state=seed)` splits off the test set, then the validation
set from what is left. Token ids: `<pad>` then the sorted words of the training split, the same
for tags. Each split is padded to its own longest example. One difference, on purpose: we draw
from a private `numpy.random.RandomState`, not the process-wide generator (same numbers).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

BOS, EOS, PAD = "<s>", "</s>", "<pad>"

Example = tuple[list[str], list[str]]


@dataclass(frozen=True)
class TaskSpec:
    """A task at the setting of the paper's Table 1 (the authors' scripts)."""

    name: str
    vocab_size: int  # the scripts' --vocab_size: words drawn = vocab_size - 2 or - 3
    min_length: int
    max_length: int
    autoregressive: bool  # Dyck: causal attention; the rest attend both ways
    description: str


TASKS = {
    t.name: t
    for t in (
        TaskSpec("reverse", 8, 1, 8, False, "the input reversed (between <s> and </s>)"),
        TaskSpec("hist", 8, 1, 8, False, "how often each token occurs in the input"),
        TaskSpec("double_hist", 8, 1, 8, False, "how many tokens occur as often as this one"),
        TaskSpec("sort", 8, 1, 8, False, "the input sorted (between <s> and </s>)"),
        TaskSpec("most_freq", 8, 1, 8, False, "the distinct tokens, most frequent first"),
        TaskSpec("dyck1", 1, 16, 16, True, "Dyck-1 prefixes: P(ending), T(balanced), F(ailed)"),
        TaskSpec("dyck2", 2, 16, 16, True, "Dyck-2 prefixes: P(ending), T(balanced), F(ailed)"),
    )
}


# The shape of the program the authors ship for each task (their programs/rasp/*, the runs
# behind Table 1's numbers), as `LearnSettings` fields; their RASP script's common setting
# (the `LearnSettings` defaults) is 3 layers, 4 + 4 heads, 2 + 2 MLPs.
TABLE_1_SHAPES = {
    "reverse": {"n_layers": 3, "cat_heads": 4, "num_heads": 4, "cat_mlps": 1, "num_mlps": 1},
    "hist": {"n_layers": 1, "cat_heads": 2, "num_heads": 2, "cat_mlps": 1, "num_mlps": 1},
    "double_hist": {"n_layers": 3, "cat_heads": 4, "num_heads": 4, "cat_mlps": 1, "num_mlps": 1},
    "sort": {"n_layers": 3, "cat_heads": 4, "num_heads": 4, "cat_mlps": 2, "num_mlps": 2},
    "most_freq": {"n_layers": 3, "cat_heads": 4, "num_heads": 4, "cat_mlps": 2, "num_mlps": 2},
    "dyck1": {"n_layers": 3, "cat_heads": 4, "num_heads": 4, "cat_mlps": 1, "num_mlps": 1},
    "dyck2": {"n_layers": 3, "cat_heads": 2, "num_heads": 2, "cat_mlps": 2, "num_mlps": 2},
}


def _choice(rng: np.random.RandomState, words: list[str], size: int) -> list[str]:
    """`rng.choice(words, size)`: the same draws (legacy `choice` with replacement draws
    `randint(0, len(words), size)`), without its slow conversion of strings to an array."""
    return [words[i] for i in rng.randint(0, len(words), size=size)]


Generator = Callable[[np.random.RandomState, TaskSpec], Iterator[Example]]


def _bracketed(tags: Callable[[list[str]], list[str]]) -> Generator:
    """A task whose input is 1 .. max_length - 2 words of vocab_size - 3 between <s> and </s>."""

    def make(rng: np.random.RandomState, spec: TaskSpec) -> Iterator[Example]:
        words = [str(i) for i in range(spec.vocab_size - 3)]
        while True:
            sent = _choice(rng, words, rng.randint(spec.min_length, spec.max_length - 1))
            yield [BOS, *sent, EOS], [PAD, *tags(sent), PAD]

    return make


def _counted(tags: Callable[[list[str]], list[str]]) -> Generator:
    """A task whose input is <s> and 1 .. max_length - 1 words of vocab_size - 2."""

    def make(rng: np.random.RandomState, spec: TaskSpec) -> Iterator[Example]:
        words = [str(i) for i in range(spec.vocab_size - 2)]
        while True:
            sent = _choice(rng, words, rng.randint(spec.min_length, spec.max_length))
            yield [BOS, *sent], [PAD, *tags(sent)]

    return make


def _hist(sent: list[str]) -> list[str]:
    counts = Counter(sent)
    return [str(counts[c]) for c in sent]


def _double_hist(sent: list[str]) -> list[str]:
    counts = Counter(sent)
    twice = Counter(counts.values())
    return [str(twice[counts[c]]) for c in sent]


def _most_freq(sent: list[str]) -> list[str]:
    counts = Counter(sent)
    first = {c: sent.index(c) for c in counts}
    order = sorted((-counts[c], first[c]) for c in counts)
    tags = [sent[i] for _, i in order]
    return tags + [BOS] * (len(sent) - len(tags))


def _dyck_tags(sent: list[str]) -> list[str]:
    """P: a prefix that can still be balanced, T: balanced, F: can never be (and all after)."""
    match = {")": "(", "}": "{"}
    stack: list[str] = []
    tags: list[str] = []
    for c in sent:
        if c not in match:
            stack.append(c)
            tags.append("P")
        elif not stack or stack[-1] != match[c]:
            return tags + ["F"] * (len(sent) - len(tags))
        else:
            stack.pop()
            tags.append("P" if stack else "T")
    return tags


def _dyck(rng: np.random.RandomState, spec: TaskSpec) -> Iterator[Example]:
    """Half balanced strings (padded with random brackets, or cut), half random brackets."""
    pairs = [("(", ")"), ("{", "}")][: spec.vocab_size]
    alphabet = [c for pair in pairs for c in pair]
    width = spec.max_length - 1
    while True:
        if rng.randint(2):
            sent = []
            depth_min, depth_max = spec.min_length // 2, spec.max_length // 2
            for _ in range(rng.randint(depth_min, depth_max + 1)):
                left, right = pairs[rng.randint(0, len(pairs))]
                sent = [*sent, left, right] if rng.randint(0, 2) == 0 else [left, *sent, right]
            if len(sent) < width:
                sent = sent + _choice(rng, alphabet, width - len(sent))
            sent = sent[:width]
        else:
            sent = _choice(rng, alphabet, width)
        yield [BOS, *sent], [PAD, *_dyck_tags(sent)]


GENERATORS: dict[str, Generator] = {
    "reverse": _bracketed(lambda sent: sent[::-1]),
    "hist": _counted(_hist),
    "double_hist": _counted(_double_hist),
    "sort": _bracketed(sorted),
    "most_freq": _counted(_most_freq),
    "dyck1": _dyck,
    "dyck2": _dyck,
}


@dataclass(frozen=True)
class Split:
    """Token ids, padded with 0 (`<pad>`) to the split's longest example."""

    inputs: np.ndarray  # (examples, pos) int64
    targets: np.ndarray  # (examples, pos) int64; 0 where nothing is scored


@dataclass(frozen=True)
class Dataset:
    spec: TaskSpec
    seed: int
    words: tuple[str, ...]  # input token id -> word; 0 is <pad>
    tags: tuple[str, ...]  # output id -> tag; 0 is <pad>
    train: Split
    val: Split
    test: Split

    @property
    def n_ctx(self) -> int:
        return self.train.inputs.shape[1]

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)


def examples(name: str, size: int = 20_000, seed: int = 0) -> list[Example]:
    """`size` distinct examples of task `name`, drawn as the authors' `get_dataset(unique=1)`."""
    # Their rounds of 2, 3, 4 and 5 x size draws each restart the generator, so each round's
    # draws begin with the previous round's: one pass over 5 x size draws, stopping at `size`
    # distinct inputs, keeps what they keep.
    seen: set[str] = set()
    drawn: list[Example] = []
    spec = task_spec(name)
    source = GENERATORS[name](np.random.RandomState(seed), spec)
    for sent, tags in itertools.islice(source, 5 * size):
        if (key := "".join(sent)) not in seen:
            seen.add(key)
            drawn.append((sent, tags))
            if len(drawn) == size:
                break
    return drawn


def load(name: str, size: int = 20_000, seed: int = 0) -> Dataset:
    """Task `name` as the authors train on it: `size` distinct examples split 81/9/10."""
    drawn = examples(name, size, seed)
    rest, test = train_test_split(np.arange(len(drawn)), test_size=0.1, random_state=seed)
    train, val = train_test_split(rest, test_size=0.1, random_state=seed)
    train, val, test = np.asarray(train), np.asarray(val), np.asarray(test)
    train_set = [drawn[i] for i in train]
    words = (PAD, *sorted({w for sent, _ in train_set for w in sent} - {PAD}))
    tags = (PAD, *sorted({t for _, ts in train_set for t in ts} - {PAD}))

    def encode(indices: np.ndarray) -> Split:
        chosen = [drawn[i] for i in indices]
        width = max(len(sent) for sent, _ in chosen)
        inputs = np.zeros((len(chosen), width), dtype=np.int64)
        targets = np.zeros((len(chosen), width), dtype=np.int64)
        word_id = {w: i for i, w in enumerate(words)}
        tag_id = {t: i for i, t in enumerate(tags)}
        for row, (sent, ts) in enumerate(chosen):
            inputs[row, : len(sent)] = [word_id.get(w, 0) for w in sent]
            targets[row, : len(ts)] = [tag_id.get(t, 0) for t in ts]
        return Split(inputs, targets)

    spec = task_spec(name)
    return Dataset(spec, seed, words, tags, encode(train), encode(val), encode(test))


def task_spec(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    return TASKS[name]
