"""A learned program as one readable, self-contained Python file (like the authors'
`--save_code` output, without pandas or a weights CSV): `run(tokens)` takes the input words
and returns the predicted tags, and equals the model on every token.

Values are written in their own terms: token variables (tokens and heads that copy them) as
words, positions and counts as numbers, MLP outputs as numbers. A categorical MLP is a dict
of the pairs that differ from its most common output; a numerical MLP, a piecewise-constant
function of two counts, is for each value of its first input the breakpoints along the second.
"""

from __future__ import annotations

import pprint
from collections import Counter

import numpy as np

from rasp.learned.program import Head, LearnedProgram, Table

HELPERS = '''
def select_closest(keys, queries, predicate):
    """For each query, the nearest key it matches (left first at equal distance; its own
    position only when nothing else matches; position 0 when nothing matches)."""
    out = []
    for i, q in enumerate(queries):
        matches = [j for j, k in enumerate(keys) if predicate(q, k) and (j <= i or not CAUSAL)]
        others = [j for j in matches if j != i]
        out.append(min(others, key=lambda j: (abs(i - j), j)) if others else i if matches else 0)
    return out


def select(keys, queries, predicate):
    return [
        [predicate(q, k) and (j <= i or not CAUSAL) for j, k in enumerate(keys)]
        for i, q in enumerate(queries)
    ]


def aggregate(selected, values):
    return [values[j] for j in selected]


def aggregate_sum(selection, values):
    return [sum(v for s, v in zip(row, values) if s) for row in selection]


def breakpoints(rows, a, b):
    """A numerical MLP's output: rows[a] lists (b_from, output) in increasing b_from."""
    return [out for start, out in rows[a] if start <= b][-1]
'''


def value_kinds(program: LearnedProgram) -> dict[str, str]:
    """Each variable's kind of value: "token", "position" or "number"."""
    kinds = {"tokens": "token", "positions": "position", "ones": "number"}
    for layer in program.layers:
        for head in layer.cat_heads:
            kinds[head.name] = kinds[head.value]
        for head in layer.num_heads:
            kinds[head.name] = "number"
        for mlp in (*layer.cat_mlps, *layer.num_mlps):
            kinds[mlp.name] = "number"
    return kinds


class _Writer:
    def __init__(self, program: LearnedProgram, words: tuple[str, ...]) -> None:
        self.program, self.words = program, words
        self.kinds = value_kinds(program)

    def value(self, variable: str, index: int) -> object:
        if self.kinds[variable] == "token":
            return self.words[index] if index < len(self.words) else f"#{index}"
        return index

    def predicate(self, head: Head, prefix: str) -> list[str]:
        groups: dict[int, list[object]] = {}
        for q, k in enumerate(head.predicate):
            if k >= 0:  # -1: the value matches nothing
                groups.setdefault(k, []).append(self.value(head.query, q))
        lines = [f"    def {prefix}predicate(q, k):  # q: {head.query}, k: {head.key}"]
        for n, (k, qs) in enumerate(sorted(groups.items(), key=lambda g: -len(g[1]))):
            test = "if" if n == 0 else "elif"
            lines.append(f"        {test} q in {set_literal(qs)}:")
            lines.append(f"            return k == {self.value(head.key, k)!r}")
        lines.append("        return False")
        return lines

    def head(self, head: Head, numerical: bool) -> list[str]:
        prefix = f"{head.name}_"
        lines = [f"    # {head.name} " + "#" * (60 - len(head.name)), *self.predicate(head, prefix)]
        call = "select" if numerical else "select_closest"
        lines.append(
            f"    {head.name}_pattern = {call}({head.key}, {head.query}, {prefix}predicate)"
        )
        aggregate = "aggregate_sum" if numerical else "aggregate"
        lines.append(f"    {head.name} = {aggregate}({head.name}_pattern, {head.value})")
        return lines

    def mlp(self, mlp: Table, numerical: bool) -> list[str]:
        a, b = mlp.inputs
        lines = [f"    # {mlp.name} " + "#" * (60 - len(mlp.name))]
        if numerical:
            rows = {i: breakpoint_row(row) for i, row in enumerate(mlp.table)}
            text = pprint.pformat(rows, width=92, compact=True)
            lines.append(f"    {mlp.name}_rows = " + text.replace("\n", "\n    "))
            call = f"breakpoints({mlp.name}_rows, x, y)"
        else:
            default = Counter(mlp.table.flatten().tolist()).most_common(1)[0][0]
            entries = {
                (self.value(a, i), self.value(b, j)): int(out)
                for (i, j), out in np.ndenumerate(mlp.table)
                if out != default
            }
            text = pprint.pformat(entries, width=92, compact=True)
            lines.append(f"    {mlp.name}_table = " + text.replace("\n", "\n    "))
            call = f"{mlp.name}_table.get((x, y), {default})"
        lines.append(f"    {mlp.name} = [{call} for x, y in zip({a}, {b})]")
        return lines

    def readout(self, tags: tuple[str, ...]) -> list[str]:
        weights = {}
        for name, table in self.program.readout.items():
            if table.ndim == 1:
                weights[name] = [float(w) for w in table]
            else:
                for index, row in enumerate(table):
                    weights[f"{name}={self.value(name, index)!r}"] = [float(w) for w in row]
        text = pprint.pformat(weights, width=92, sort_dicts=False)
        masked = set_literal(list(self.program.masked_outputs))
        return [
            "# the readout: a logit per tag, summed over each variable's value",
            f"TAGS = {list(tags)!r}",
            f"MASKED = {masked}  # tags never predicted",
            f"WEIGHTS = {text}",
            "",
            "",
            "def predict(categorical, numerical):",
            "    logits = [0.0] * len(TAGS)",
            "    for name, value in categorical.items():",
            "        for t, w in enumerate(WEIGHTS[f'{name}={value!r}']):",
            "            logits[t] += w",
            "    for name, value in numerical.items():",
            "        for t, w in enumerate(WEIGHTS[name]):",
            "            logits[t] += value * w",
            "    best = max((t for t in range(len(TAGS)) if t not in MASKED), key=logits.__getitem__)",
            "    return TAGS[best]",
        ]


def breakpoint_row(row: np.ndarray) -> list[tuple[int, int]]:
    starts = [0, *(np.flatnonzero(np.diff(row)) + 1).tolist()]
    return [(int(s), int(row[s])) for s in starts]


def set_literal(values: list[object]) -> str:
    return "{" + ", ".join(repr(v) for v in values) + "}"


def to_python(
    program: LearnedProgram, words: tuple[str, ...], tags: tuple[str, ...], title: str = ""
) -> str:
    """The program as Python source; `run(tokens)` maps input words to predicted tags."""
    w = _Writer(program, words)
    body = [
        "def run(tokens):",
        "    positions = list(range(len(tokens)))",
        "    ones = [1] * len(tokens)",
    ]
    cats, nums = ["tokens", "positions"], ["ones"]
    for layer in program.layers:
        for head in layer.cat_heads:
            body += w.head(head, numerical=False)
        for head in layer.num_heads:
            body += w.head(head, numerical=True)
        for mlp in layer.cat_mlps:
            body += w.mlp(mlp, numerical=False)
        for mlp in layer.num_mlps:
            body += w.mlp(mlp, numerical=True)
        cats += [v.name for v in (*layer.cat_heads, *layer.cat_mlps, *layer.num_mlps)]
        nums += [h.name for h in layer.num_heads]
    cat_dict = ", ".join(f"{n!r}: {n}[i]" for n in cats)
    num_dict = ", ".join(f"{n!r}: {n}[i]" for n in nums)
    body += [
        "    return [",
        f"        predict({{{cat_dict}}}, {{{num_dict}}})",
        "        for i in range(len(tokens))",
        "    ]",
    ]
    header = [
        f'"""{title or "A learned Transformer Program"}, decompiled by the workbench.',
        "",
        "run(tokens) takes the input words (with <s> first) and returns a tag per position.",
        '"""',
        "",
        f"CAUSAL = {program.autoregressive}  # attention reads only earlier positions",
        HELPERS,
    ]
    return "\n".join([*header, *w.readout(tags), "", "", *body, ""])
