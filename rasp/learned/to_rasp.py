"""A learned program as a `rasp` program: the interpreter runs it, `rasp.compiler` compiles it
back to weights, and it equals the model on every token.

Each variable becomes a named SOp: `tokens` and `positions` are `rasp.tokens` and
`rasp.indices`, `ones` a numerical `Full(1)`; a categorical head is an `Aggregate` over a
`SelectClosest`, a numerical head a numerical `SelectorWidth` (it sums `ones`: a count) or a
`SumAggregate`, an MLP a `SequenceMap` with its lookup table (a `Map` of one input through a dict
when the table ignores the other, a `Full` when it has one output), and the output a `Readout` of
every variable. Values are written in their own terms: tokens (and heads that copy them) as
words, positions, counts and MLP outputs as numbers. The input is the words with the task's
BOS first, without padding; the output is a tag per position.
"""

from __future__ import annotations

import pprint
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rasp import ltp, rasp
from rasp.learned.program import Head, LearnedProgram, Table


@dataclass(frozen=True)
class RaspProgram:
    output: ltp.Readout  # named "output"
    causal: bool  # evaluate (and compile) with causal attention (Dyck)
    vocab: tuple[str, ...]  # the words an input may hold (not padding)
    max_len: int  # the longest input
    source: str = field(repr=False)  # Python that builds the same program (`python` of it)

    def python(self, title: str) -> str:
        """A Python module that builds this program as `program` (see `_HEADER`)."""
        settings = (
            f"CAUSAL = {self.causal}\nVOCAB = {list(self.vocab)!r}\nMAX_LEN = {self.max_len}\n"
        )
        return _HEADER.format(title=title) + settings + self.source

    def run(self, words: Sequence[str]) -> list[Any]:
        """The tags for one input (words, BOS first, no padding)."""
        return rasp.evaluate(self.output, list(words), causal=self.causal)


def to_rasp(program: LearnedProgram, words: Sequence[str], tags: Sequence[str]) -> RaspProgram:
    """The program in the `rasp` language."""
    build = _Builder(program, words)
    for index, layer in enumerate(program.layers):
        build.line(f"\n# layer {index}")
        for head in layer.cat_heads:
            build.cat_head(head)
        for head in layer.num_heads:
            build.num_head(head)
        for table in layer.cat_mlps:
            build.mlp(table, numerical=False)
        for table in layer.num_mlps:
            build.mlp(table, numerical=True)
    masked = set(program.masked_outputs)
    keep = [i for i in range(len(tags)) if i not in masked]
    sops, scores = [], []
    for name, sop in build.cat.items():
        rows = program.readout[name][:, keep]
        sops.append(sop)
        scores.append({value: rows[i] for i, value in enumerate(build.domain[name])})
    for name, sop in build.num.items():
        sops.append(sop)
        scores.append(program.readout[name][keep])
    outputs = [tags[i] for i in keep]
    output = ltp.Readout(sops, scores, outputs).named("output")
    build.line("\n# the readout: each variable's scores for " + ", ".join(outputs))
    names = [*build.cat, *build.num]
    tables = [_plain(table) for table in scores]
    build.line(
        f"program = ltp.Readout(\n    [{', '.join(names)}],\n    {_data(tables, 4)},\n    "
        f'{outputs!r},\n).named("output")'
    )
    vocab = tuple(w for i, w in enumerate(words) if i != 0)  # id 0 is padding
    source = "\n".join(build.lines) + "\n"
    return RaspProgram(output, program.autoregressive, vocab, program.n_ctx, source)


_HEADER = '''"""{title}: a learned Transformer Program as a RASP program (`workbench decompile
--rasp`). `program` is its output: run it with rasp.evaluate(program, ["<s>", ...],
causal=CAUSAL), compile it with rasp.compiler.compile_rasp(program, VOCAB, MAX_LEN,
causal=CAUSAL)."""

from rasp import ltp, rasp

'''


def _plain(value: Any) -> Any:
    """Scores as plain Python numbers (repr round-trips a float exactly)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return [float(x) for x in value]


def _data(value: Any, indent: int) -> str:
    text = pprint.pformat(value, width=100 - indent, compact=True, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


class _Builder:
    def __init__(self, program: LearnedProgram, words: Sequence[str]) -> None:
        self.program = program
        n = program.d_var
        self.cat: dict[str, rasp.SOp] = {"tokens": rasp.tokens, "positions": rasp.indices}
        self.domain: dict[str, list[Any]] = {"tokens": list(words), "positions": list(range(n))}
        ones = rasp.numerical(rasp.Full(1)).named("ones")
        self.num: dict[str, rasp.SOp] = {"ones": ones}
        self.bounds: dict[str, int] = {"ones": 1}
        self.lines = [
            "tokens, positions = rasp.tokens, rasp.indices",
            'ones = rasp.numerical(rasp.Full(1)).named("ones")',
        ]

    def line(self, text: str) -> None:
        self.lines.append(text)

    def _match(self, head: Head) -> ltp.Match:
        queries, keys = self.domain[head.query], self.domain[head.key]
        wanted = {
            q: keys[k] for q, k in zip(queries, head.predicate, strict=False) if 0 <= k < len(keys)
        }
        return ltp.Match(wanted)

    def cat_head(self, head: Head) -> None:
        match = self._match(head)
        select = ltp.SelectClosest(self.cat[head.key], self.cat[head.query], match)
        self.cat[head.name] = rasp.Aggregate(select, self.cat[head.value]).named(head.name)
        self.domain[head.name] = self.domain[head.value]
        self.line(
            f"{head.name} = rasp.Aggregate(\n    ltp.SelectClosest({head.key}, {head.query}, "
            f"ltp.Match({match.wanted!r})),\n    {head.value},\n)"
            f".named({head.name!r})"
        )

    def num_head(self, head: Head) -> None:
        match = self._match(head)
        select = rasp.Select(self.cat[head.key], self.cat[head.query], match)
        selected = f"rasp.Select({head.key}, {head.query}, ltp.Match({match.wanted!r}))"
        if head.value == "ones":  # a count
            sop: rasp.SOp = rasp.SelectorWidth(select)
            text = f"rasp.SelectorWidth(\n    {selected}\n)"
        else:
            sop = ltp.SumAggregate(select, self.num[head.value])
            text = f"ltp.SumAggregate(\n    {selected},\n    {head.value},\n)"
        self.num[head.name] = rasp.numerical(sop).named(head.name)
        self.bounds[head.name] = self.program.n_ctx * self.bounds[head.value]
        self.line(f"{head.name} = rasp.numerical({text}).named({head.name!r})")

    def mlp(self, table: Table, numerical: bool) -> None:
        a, b = table.inputs
        if numerical:
            first, second = range(self.bounds[a] + 1), range(self.bounds[b] + 1)
            sops = self.num[a], self.num[b]
        else:
            first, second = self.domain[a], self.domain[b]
            sops = self.cat[a], self.cat[b]
        rows = table.table[: len(first), : len(second)]
        self.domain[table.name] = list(range(self.program.d_var))
        name = table.name
        if (rows == rows[0, 0]).all():  # a constant: it reads neither input
            self.cat[name] = rasp.Full(rows[0, 0].item()).named(name)
            self.line(f"{name} = rasp.Full({rows[0, 0].item()!r}).named({name!r})")
            return
        if (rows == rows[:, :1]).all():  # every row constant: it reads the first input only
            return self._map(name, first, rows[:, 0], sops[0], a)
        if (rows == rows[:1]).all():  # the second only
            return self._map(name, second, rows[0], sops[1], b)
        lookup = ltp.Lookup(list(first), list(second), rows)
        self.cat[name] = rasp.SequenceMap(lookup, *sops).named(name)
        self.line(
            f"{name} = rasp.SequenceMap(\n    ltp.Lookup(\n        "
            f"{_data(list(first), 8)},\n        {_data(list(second), 8)},\n        "
            f"{_data(rows.tolist(), 8)},\n    ),\n    {a},\n    {b},\n).named({name!r})"
        )

    def _map(
        self, name: str, values: Sequence[Any], outputs: Any, sop: rasp.SOp, source: str
    ) -> None:
        """A table that reads one input: a Map of it through a dict."""
        mapping = {v: out.item() for v, out in zip(values, outputs, strict=True)}
        self.cat[name] = rasp.Map(mapping.__getitem__, sop).named(name)
        self.line(
            f"{name} = rasp.Map(\n    {_data(mapping, 4)}.__getitem__,\n    {source},\n)"
            f".named({name!r})"
        )
