"""Circuit discovery: ACDC reproduces the ACDC paper's result on compiled RASP programs, its
batched evaluation equals the sequential algorithm, EAP equals finite differences, and the
evaluation measures are right on cases with known answers."""

from __future__ import annotations

import random

import pytest
import torch

import workbench
from circuits.ablation import Replacement
from circuits.acdc import AcdcState, acdc, acdc_nodes
from circuits.baselines import magnitude_baseline, random_baseline
from circuits.circuit import Circuit, node_scores
from circuits.eap import _GradReader, eap, eap_ig
from circuits.edges import sender_hooks, sender_outputs
from circuits.evaluation import faithfulness, roc
from circuits.graph import Edge, build_graph
from circuits.metrics import LogitDiff, OutputDistance, per_config
from circuits.problem import Problem
from rasp import library, rasp
from rasp.compiler.compiler import compile_rasp
from workbench.errors import InputError


def padded_inputs(compiled, per_length: int, seed: int = 0):
    """Inputs of every length 1..max_seq_len, right-padded, with their attention mask."""
    rng = random.Random(seed)
    rows, masks = [], []
    for n in range(1, compiled.max_seq_len + 1):
        for _ in range(per_length):
            ids = compiled.encode([[rng.choice(compiled.vocab) for _ in range(n)]])[0].tolist()
            pad = compiled.max_seq_len + 1 - len(ids)
            rows.append(ids + [0] * pad)
            masks.append([1] * len(ids) + [0] * pad)
    return torch.tensor(rows), torch.tensor(masks)


@pytest.mark.parametrize(
    ("program", "kind"),
    [
        (lambda: library.make_reverse(rasp.tokens), "kl"),
        (lambda: library.make_frac_prevs(rasp.tokens == "a"), "mse"),
    ],
    ids=["reverse", "frac_prevs"],
)
def test_acdc_recovers_compiled_circuits_exactly(program, kind) -> None:
    """The ACDC paper (Conmy et al. 2023): with zero ablation, ACDC finds the circuits of
    tracr's compiled reverse and frac_prevs exactly."""
    compiled = compile_rasp(program(), {"a", "b", "c"}, 5)
    tokens, mask = padded_inputs(compiled, 6)
    with torch.no_grad():
        reference = compiled.model(tokens, attention_mask=mask)
    distance = OutputDistance(reference, kind, start=1, valid=mask)
    graph = build_graph(compiled.model.config)
    problem = Problem(compiled.model, tokens, Replacement.of("zero"), distance, mask, graph=graph)
    circuit = acdc(problem, threshold=1e-3)
    truth = set(compiled.ground_truth.edges)
    assert set(circuit.edges) == truth
    assert roc(circuit, truth, graph).auc == pytest.approx(1.0)
    assert roc(random_baseline(graph, seed=1), truth, graph).auc < 0.9
    nodes = acdc_nodes(problem, threshold=1e-3)
    computing = {c for components in compiled.ground_truth.components.values() for c in components}
    assert set(nodes.settings["nodes"]) == (computing | {"embed"})


def tiny_task(seed: int = 0):
    model = workbench.build("gpt2-small-tiny", n_layers=2, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, model.config.d_vocab, (3, 6), generator=gen)
    corrupted = torch.randint(0, model.config.d_vocab, (3, 6), generator=gen)
    answer = torch.randint(0, model.config.d_vocab, (3,), generator=gen)
    wrong = torch.randint(0, model.config.d_vocab, (3,), generator=gen)
    return model, clean, corrupted, LogitDiff(answer, wrong)


def test_batched_acdc_equals_the_sequential_algorithm() -> None:
    model, clean, corrupted, _ = tiny_task()
    with torch.no_grad():
        reference = model(clean)
    distance = OutputDistance(reference, "kl")
    patch = Replacement.of("patch", source=corrupted)
    problem = Problem(model, clean, patch, distance)
    runs = [acdc(problem, threshold=0.01, batch_size=size) for size in (1, 7)]
    assert runs[0].edges == runs[1].edges
    assert 0 < len(runs[0].edges) < len(build_graph(model.config).edges)
    for edge, score in runs[0].scores.items():
        assert runs[1].scores[edge] == pytest.approx(score, abs=1e-5)


def test_acdc_resumes_from_its_state() -> None:
    model, clean, corrupted, _ = tiny_task(1)
    with torch.no_grad():
        reference = model(clean)
    distance = OutputDistance(reference, "kl")
    patch = Replacement.of("patch", source=corrupted)
    problem = Problem(model, clean, patch, distance)
    whole = acdc(problem, threshold=0.01)
    saved: list[AcdcState] = []

    def stop(done: int, total: int) -> None:
        if done > total // 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        acdc(problem, threshold=0.01, on_state=saved.append, progress=stop)
    state = AcdcState.from_json(saved[-1].to_json())  # as the job store keeps it
    assert 0 < len(state.scores) < len(whole.scores)
    resumed = acdc(problem, threshold=0.01, state=state)
    assert resumed.edges == whole.edges


def test_eap_equals_finite_differences() -> None:
    """EAP's score of an edge is the derivative of the metric along the receiver's input
    change; check it against central differences with a hand-built reader."""
    model, clean, corrupted, metric = tiny_task(2)
    model = model.double()
    graph = build_graph(model.config)
    circuit = eap(Problem(model, clean, Replacement.of("patch", source=corrupted), metric))
    signed = circuit.settings["signed"]
    hooks = sender_hooks(graph)
    with torch.no_grad():
        _, a = model.run_with_cache(clean, names_filter=hooks)
        _, b = model.run_with_cache(corrupted, names_filter=hooks)
    change = sender_outputs(graph, dict(b.items())) - sender_outputs(graph, dict(a.items()))
    for name in ["embed->a1.h2.k", "a0.h1->a1.h0.q", "m0->logits", "a0.h3->m1", "embed->m0"]:
        edge = Edge.parse(name)
        delta = change[:, :, graph.sender_index[edge.sender]]
        receiver = graph.receivers[graph.receiver_index[edge.receiver]]

        def at(eps: float, receiver=receiver, delta=delta) -> float:
            reader = _Shift(graph, model.config.n_layers, receiver, eps * delta)
            with torch.no_grad():
                return float(metric(model.finish(model.start(clean), reader)[None])[0])

        numeric = (at(1e-4) - at(-1e-4)) / 2e-4
        assert signed[name] == pytest.approx(numeric, rel=1e-4, abs=1e-7), name


class _Shift(_GradReader):
    """Adds a fixed change to one receiver's input."""

    def __init__(self, graph, n_layers, receiver, change) -> None:
        super().__init__(graph, n_layers)
        self.receiver, self.change = receiver, change

    def _add(self, layer, kind, x, per_head):
        r = self.receiver
        if (layer, kind) != (r.layer, r.kind):
            return x  # every other reader sees the stream as it is
        if not per_head:
            return x + self.change
        heads = x[:, :, None, :].repeat(1, 1, len(self.groups[(layer, kind)]), 1)
        heads[:, :, r.head] += self.change
        return heads


def test_eap_ig_converges_and_needs_a_source() -> None:
    model, clean, corrupted, metric = tiny_task(3)
    patch = Replacement.of("patch", source=corrupted)
    fine = eap_ig(Problem(model, clean, patch, metric), steps=16).settings["signed"]
    finer = eap_ig(Problem(model, clean, patch, metric), steps=32).settings["signed"]
    top = sorted(fine, key=lambda e: -abs(fine[e]))[:20]
    for edge in top:
        assert finer[edge] == pytest.approx(fine[edge], rel=0.1, abs=1e-3)
    with pytest.raises(InputError, match="patch"):
        eap_ig(Problem(model, clean, Replacement.of("zero"), metric))


def test_roc_on_known_rankings() -> None:
    graph = build_graph(workbench.build("gpt2-small-tiny", n_layers=1).config)
    names = [e.name for e in graph.edges]
    truth = set(names[:5])
    perfect = Circuit("t", (), {n: float(n in truth) for n in names}, "m")
    inverted = Circuit("t", (), {n: float(n not in truth) for n in names}, "m")
    tied = Circuit("t", (), dict.fromkeys(names, 1.0), "m")
    assert roc(perfect, truth, graph).auc == pytest.approx(1.0)
    assert roc(inverted, truth, graph).auc == pytest.approx(0.0)
    assert roc(tied, truth, graph).auc == pytest.approx(0.5)
    with pytest.raises(InputError, match="does not have"):
        roc(perfect, {"a9.h0->logits"}, graph)


def test_faithfulness_curve_runs_from_ablated_to_full() -> None:
    model, clean, corrupted, metric = tiny_task(4)
    patch = Replacement.of("patch", source=corrupted)
    circuit = magnitude_baseline(model, clean)
    n = len(circuit.scores)
    curve = faithfulness(Problem(model, clean, patch, metric), circuit, [0, n // 2, n])
    assert curve.recovered[0] == pytest.approx(0.0, abs=1e-5)
    assert curve.recovered[-1] == pytest.approx(1.0, abs=1e-5)
    assert sum(node_scores(circuit, build_graph(model.config)).values()) > 0


def test_a_nan_metric_is_a_clear_error() -> None:
    model, clean, corrupted, _ = tiny_task(5)
    nan = per_config(lambda logits: logits.sum() * float("nan"), "broken")
    with pytest.raises(InputError, match="finite"):
        acdc(Problem(model, clean, Replacement.of("patch", source=corrupted), nan), threshold=0.1)


@pytest.mark.parametrize("preset", ["gpt2-small-tiny", "pythia-160m-tiny", "llama2-70b-tiny"])
def test_eap_ig_over_activations_is_complete(preset) -> None:
    """Integrated gradients along the path that moves every edge from the target's sender
    outputs to the source's: the edge scores sum to metric(source) - metric(target), up to
    the Riemann sum's O(1 / steps) error (pre-norm, parallel, RMSNorm/GQA)."""
    model = workbench.build(preset, n_layers=2, seed=0).double()
    _, clean, corrupted, metric = tiny_task(6)
    clean, corrupted = clean % model.config.d_vocab, corrupted % model.config.d_vocab
    metric = LogitDiff(metric.answer % model.config.d_vocab, metric.wrong % model.config.d_vocab)
    with torch.no_grad():
        gap = float(metric(model(corrupted)[None])[0] - metric(model(clean)[None])[0])
    patch = Replacement.of("patch", source=corrupted)
    errors = []
    for steps in (8, 200):
        circuit = eap_ig(Problem(model, clean, patch, metric), steps=steps, over="activations")
        errors.append(abs(sum(circuit.settings["signed"].values()) - gap))
    assert errors[1] <= 0.1 * abs(gap) + 1e-5
    assert errors[1] < errors[0] / 5  # the Riemann error shrinks about as 1 / steps
    post_norm = workbench.build("bert-base-tiny", n_layers=1)
    tokens = torch.randint(0, post_norm.config.d_vocab, (2, 4))
    with pytest.raises(InputError, match="additive stream"):
        eap_ig(Problem(post_norm, tokens, Replacement.of("zero"), metric), over="activations")
