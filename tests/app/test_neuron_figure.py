"""The neuron view figure holds the numbers of its `ScoreTerms`: the query, keys and products
per dimension, one row per term, the pattern; a window of keys draws those keys only."""

from __future__ import annotations

import pytest
import torch

import workbench
from app.figures.neuron import MAX_KEYS, neuron_view
from probes.scores import ScoreTerms, score_terms
from workbench.errors import InputError

KINDS = {
    "alibi": ("bloom-560m-tiny", {}),
    "forgetting": ("fox-small-tiny", {}),
    "clipped": ("clipped-softmax-small-tiny", {}),
    "collapsed": ("collapsed-qk-small-tiny", {}),
    "linear": ("linear-attn-small-tiny", {}),
    "gla": ("gla-small-tiny", {}),
    "delta": ("deltanet-small-tiny", {}),
    "pooling": ("gpt2-small-tiny", {"attention": "pooling"}),
}


def traces(fig) -> dict:
    """The first trace of each name (the query column repeats per panel)."""
    out: dict = {}
    for trace in fig.data:
        out.setdefault(trace.name, trace)
    return out


def drawn(cells) -> torch.Tensor:
    """A trace's values as float64, its gaps (None) as NaN."""
    rows = [list(r) if isinstance(r, list | tuple) else r for r in cells]
    nan = float("nan")
    if rows and isinstance(rows[0], list):
        return torch.tensor([[nan if v is None else v for v in r] for r in rows]).double()
    return torch.tensor([nan if v is None else v for v in rows]).double()


def same(cells, expected: torch.Tensor) -> None:
    """The drawn cells are the numbers, with masked (infinite or NaN) ones as gaps."""
    gaps = expected.masked_fill(~torch.isfinite(expected), float("nan"))
    torch.testing.assert_close(drawn(cells), gaps, equal_nan=True)


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_figure_holds_the_terms(kind: str) -> None:
    preset, overrides = KINDS[kind]
    model = workbench.build(preset, seed=2, **overrides)
    tokens = [3, 1, 4, 1, 5, 9, 2, 6]
    t = score_terms(model, tokens, 1, 2, 5)
    fig = neuron_view(t, [str(i) for i in tokens])
    data = traces(fig)
    labels = [f"{i}:{tok}" for i, tok in enumerate(tokens)]
    assert list(data["pattern"].x) == labels
    same(data["pattern"].y, t.pattern)
    if t.key_vectors is None:  # pooling: the fixed row alone
        assert set(data) == {"pattern"}
        return
    same(data["query"].z, t.query_vector[:, None])
    same(data["keys"].z, t.key_vectors.T)
    same(data["product"].z, t.product.T)
    rows = dict(zip(data["terms"].y, data["terms"].z, strict=True))
    assert list(rows) == list(t.terms) + (["total"] if len(t.terms) > 1 else [])
    for name, values in t.terms.items():
        same(rows[name], values)
    if len(t.terms) > 1:
        same(rows["total"], t.scores)
    assert ("decay" in data) == (t.decay is not None)
    if t.decay is not None:
        same(data["decay"].z, t.decay.T)


def test_a_window_of_keys_and_the_default_window() -> None:
    model = workbench.build("fox-small-tiny", n_ctx=128, seed=2)
    tokens = torch.arange(100) % 50
    t = score_terms(model, tokens, 0, 1, 80)
    labels = [f"t{int(i)}" for i in tokens]
    fig = neuron_view(t, labels, keys=slice(10, 30))
    data = traces(fig)
    assert list(data["pattern"].x) == [f"{i}:t{i % 50}" for i in range(10, 30)]
    same(data["pattern"].y, t.pattern[10:30])
    same(data["product"].z, t.product[10:30].T)
    # by default, the MAX_KEYS keys ending at the query (the later ones are masked)
    shown = traces(neuron_view(t, labels))["pattern"].x
    assert len(shown) == MAX_KEYS and shown[-1] == "80:t30"


def test_bad_labels_and_windows_are_refused() -> None:
    model = workbench.build("gpt2-small-tiny", seed=2)
    t: ScoreTerms = score_terms(model, [1, 2, 3], 0, 0, 2)
    with pytest.raises(InputError, match="2 labels for 3 keys"):
        neuron_view(t, ["a", "b"])
    with pytest.raises(InputError, match="step 1"):
        neuron_view(t, ["a", "b", "c"], keys=slice(0, 3, 2))
    with pytest.raises(InputError, match="select 0 of the 3 keys"):
        neuron_view(t, ["a", "b", "c"], keys=slice(2, 1))
